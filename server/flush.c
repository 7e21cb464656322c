/* flush.c — etrnd's queue runner: ETRN, a committed message or the retry timer becomes
 * delivery jobs, one per destination domain, carried out over outbound SMTP.
 *
 *   flush_init(&fl, base, spool, cfg, &err);
 *   flush_request_from(fl, "node.test", 0, requester, &n, &err);   // returns at once
 *   flush_drain(fl, done, arg);  ...  flush_free(fl);
 *
 * A job resolves its destination once (route.DOMAIN, else MX per RFC 5321 §5.1 through
 * mx_resolve), then up to max_per_destination workers take entries from its queue, each
 * over its own connection, reusing it for the next entry while the same host is first in
 * line. An entry walks the hosts in order: a connection failure marks that address dead
 * for the rest of the job; a 4xx moves only that entry to the next host. Entries leave the
 * spool only after the remote 250 to the final dot (or after their DSN is committed);
 * anything else leaves them in place with the attempt noted. A job walks its domain's
 * entries with a spool cursor (oldest first, each at most once, mail committed meanwhile
 * included), so starting one costs the same however much the domain holds; repeated
 * requests for a domain join its running job. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "flush.h"
#include "bounce.h"
#include "domain.h"
#include "etrnd_config.h"
#include "log.h"
#include "mx_resolve.h"
#include "netaddr.h"
#include "smtp_client.h"
#include "smtp_reply.h"
#include "spool.h"
#include "strbuf.h"

#define FLUSH_DESTS_MAX 16                     /* addresses tried per entry */
#define FLUSH_NONHELD_RETRY_MS (30ULL * 60 * 1000)   /* relayed mail when retry_interval = 0 */
#define FLUSH_DNS_TIMEOUT_MS 5000
#define FLUSH_DNS_TRIES 2
#define FLUSH_ERROR_MAX 512

enum job_state { JOB_STARTING, JOB_RESOLVING, JOB_DELIVERING };

struct flush_dest {
    char host[256];
    struct netaddr addr;
    char relay[320];          /* "host[addr]:port", for logs */
    int dead;                 /* failed at connection level during this job */
    int no_tls;               /* TLS failed once: go on without it */
};

struct flush_item {
    struct spool_entry *e;
    char **rcpts;             /* remaining recipients (point into e->rcpts) */
    size_t nrcpt;
    size_t dest;              /* index into job->dests being tried */
    char last_error[FLUSH_ERROR_MAX];
    int body_fd;
    int sent_once;            /* deliver_twice */
};

struct flush_job;

struct flush_worker {
    struct flush_job *job;
    struct flush_worker *next;
    struct smtp_client *conn;
    size_t conn_dest;
    int has_item;
    struct flush_item item;
};

struct flush_job {
    struct flush *fl;
    struct flush_job *next;
    char domain[256];
    struct sockaddr_storage requester;
    socklen_t requester_len;
    enum job_state state;
    struct event *start_ev;
    struct mx_resolver *resolver;
    struct flush_dest dests[FLUSH_DESTS_MAX];
    size_t ndests;
    struct spool_cursor *cursor;   /* the domain's entries not yet taken */
    int stopped;                   /* shutting down: take nothing more */
    struct flush_worker *workers;
    size_t nworkers;
};

struct flush_closing {
    struct flush *fl;
    struct smtp_client *c;
    struct flush_closing *next;
};

struct flush {
    struct event_base *base;
    struct spool *sp;
    const struct etrnd_config *cfg;
    struct flush_job *jobs;
    struct flush_closing *closing;
    size_t nclosing;          /* connections still saying QUIT: they count as open */
    size_t nworkers;
    int draining;
    void (*drain_cb)(void *);
    void *drain_arg;
    struct event *drain_ev;
    struct event *kick_ev;
    struct event *retry_ev;
    struct event *startup_ev;
    struct event *sync_ev;    /* group commit of removals (spool_sync_removals) */
    struct flush_pending *pending;   /* ETRNs answered, not yet turned into jobs */
    struct event *pending_ev;
};

/* An ETRN is answered from spool_count (constant time per domain); collecting the
 * node's entries into a job, which costs time per entry, happens right after the reply
 * has been queued, in the next turn of the event loop. */
struct flush_pending {
    struct flush_pending *next;
    char domain[256];
    int subdomains;
    size_t count;
    struct sockaddr_storage requester;
    socklen_t requester_len;
};

static void flush_on_pending(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------- removal commit */

#define FLUSH_SYNC_DELAY_MS 5   /* removals are made durable in groups, this often */

static void flush_on_sync(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct flush *fl = arg;
    struct etrn_err err;
    if (spool_sync_removals(fl->sp, &err) < 0)
        log_error("spool: removals may not survive a crash: %s", err.msg);
}

static void flush_schedule_sync(struct flush *fl)
{
    if (fl->sync_ev == NULL) {
        flush_on_sync(-1, 0, fl);   /* no timer: commit at once */
        return;
    }
    if (!evtimer_pending(fl->sync_ev, NULL)) {
        struct timeval tv = { 0, FLUSH_SYNC_DELAY_MS * 1000 };
        evtimer_add(fl->sync_ev, &tv);
    }
}

/* ---------------------------------------------------------------- small helpers */

static int flush_defect(const struct flush *fl, const char *name)
{
    return fl->cfg && fl->cfg->ndefects && etrnd_config_defect(fl->cfg, name);
}

static unsigned flush_per_destination(const struct flush *fl)
{
    return fl->cfg->max_per_destination ? fl->cfg->max_per_destination : 1;
}

static unsigned flush_max_total(const struct flush *fl)
{
    return fl->cfg->max_deliveries ? fl->cfg->max_deliveries : 1;
}

static unsigned long long flush_ms(unsigned long long configured, unsigned default_seconds)
{
    return configured ? configured : default_seconds * 1000ULL;
}

static void flush_kick(struct flush *fl)
{
    event_active(fl->kick_ev, EV_TIMEOUT, 0);
}

/* Enhanced status from a reply ("550 5.1.1 no" -> "5.1.1"), else class.0.0. */
static void flush_reply_status(const char *reply, int code, char out[16])
{
    size_t len = strlen(reply);
    if (len > 4 && smtp_enhanced_code_parse(reply + 4, len - 4, out) > 0 && out[0] == '0' + code / 100)
        return;
    str_copy(out, 16, code / 100 == 4 ? "4.0.0" : "5.0.0");
}

static int flush_entry_expired(const struct flush *fl, const struct spool_entry *e, time_t now)
{
    unsigned long long life_ms = fl->cfg->max_queue_life_ms;
    return life_ms > 0 && e->arrival > 0 && now > e->arrival &&
           (unsigned long long)(now - e->arrival) * 1000ULL > life_ms;
}

static void flush_log_rcpts(const struct spool_entry *e, char *const *rcpts, size_t n,
                            const char *relay, const char *status, const char *why)
{
    for (size_t i = 0; i < n; i++)
        log_info("%s to=<%s> relay=%s status=%s (%s)", e->id, rcpts[i], relay, status, why);
}

static void flush_check_drained(struct flush *fl)
{
    if (fl->draining && fl->drain_cb && !fl->jobs && !fl->closing && !fl->pending)
        event_active(fl->drain_ev, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- outcomes */

/* Sends a DSN for rcpts of e. 0: done (sent, or dropped for the null sender); -1: the
 * DSN could not be committed and the caller must keep the entry. */
static int flush_bounce(struct flush *fl, const struct spool_entry *e, char *const *rcpts, size_t n,
                        const char *status, const char *diagnostic, const char *remote_mta,
                        const char *reason)
{
    struct bounce_rcpt *br = calloc(n ? n : 1, sizeof(*br));
    if (!br) {
        log_error("%s: cannot bounce: out of memory", e->id);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        br[i] = (struct bounce_rcpt){ rcpts[i], status, diagnostic, remote_mta };
    char qid[SPOOL_ID_MAX];
    struct etrn_err err;
    int rc = bounce_send(fl->sp, fl->cfg->myhostname, e, br, n, reason, time(NULL), qid, &err);
    free(br);
    if (rc < 0) {
        log_error("%s: cannot queue the non-delivery notification: %s", e->id, err.msg);
        return -1;
    }
    if (rc == 0) {
        log_info("%s: from=<> undeliverable, no notification for the null sender: dropped", e->id);
        return 0;
    }
    log_info("%s: sender non-delivery notification: %s", e->id, qid);
    const char *dom = domain_of_address(e->sender);
    if (dom && dom[0])
        flush_message_committed(fl, dom);
    return 0;
}

/* Bounces rcpts (every recipient the entry still has) and removes the entry. 0 if it is gone. */
static int flush_entry_fail(struct flush *fl, const struct spool_entry *e, char *const *rcpts,
                            size_t n, const char *relay, const char *status,
                            const char *diagnostic, const char *remote_mta)
{
    flush_log_rcpts(e, rcpts, n, relay, "bounced", diagnostic);
    if (flush_bounce(fl, e, rcpts, n, status, diagnostic, remote_mta, NULL) < 0) {
        struct etrn_err err;
        if (spool_note_attempt(fl->sp, e->id, time(NULL), "bounce could not be queued", &err) < 0)
            log_error("%s: %s", e->id, err.msg);
        return -1;
    }
    struct etrn_err err;
    if (spool_remove(fl->sp, e->id, &err) < 0) {
        log_error("%s: %s", e->id, err.msg);
        return -1;
    }
    flush_schedule_sync(fl);
    return 0;
}

/* A temporary failure: the entry stays, with the attempt noted. */
static void flush_entry_defer(struct flush *fl, const struct spool_entry *e, char *const *rcpts,
                              size_t n, const char *relay, const char *why)
{
    struct etrn_err err;
    if (flush_defect(fl, "lose_after_failure")) {
        flush_log_rcpts(e, rcpts, n, relay, "deferred", why);
        log_warn("%s: defect lose_after_failure: removing the deferred entry", e->id);
        if (spool_remove(fl->sp, e->id, &err) < 0)
            log_error("%s: %s", e->id, err.msg);
        return;
    }
    flush_log_rcpts(e, rcpts, n, relay, "deferred", why);
    if (spool_note_attempt(fl->sp, e->id, time(NULL), why, &err) < 0)
        log_error("%s: %s", e->id, err.msg);
}

static void flush_entry_expire(struct flush *fl, const struct spool_entry *e)
{
    char why[FLUSH_ERROR_MAX];
    str_format(why, sizeof why, "message expired after %lld seconds in queue%s%s",
               (long long)(time(NULL) - e->arrival), e->last_error[0] ? "; last error: " : "",
               e->last_error);
    flush_entry_fail(fl, e, e->rcpts, e->nrcpt, "none", "4.4.7", why, NULL);
}

/* ---------------------------------------------------------------- jobs */

static struct flush_job *flush_job_find(struct flush *fl, const char *domain)
{
    for (struct flush_job *j = fl->jobs; j; j = j->next)
        if (strcmp(j->domain, domain) == 0)
            return j;
    return NULL;
}

static size_t flush_job_queued(const struct flush_job *j)
{
    return j->stopped ? 0 : spool_cursor_remaining(j->cursor);
}

/* The next entry id the job has not taken yet; 0 when there is none for now. */
static int flush_job_next(struct flush_job *j, char id[SPOOL_ID_MAX])
{
    return !j->stopped && spool_cursor_next(j->cursor, id);
}

static void flush_worker_destroy(struct flush_worker *w);

static void flush_job_free(struct flush_job *j)
{
    while (j->workers) {
        struct flush_worker *w = j->workers;
        j->workers = w->next;
        flush_worker_destroy(w);
    }
    mx_resolver_free(j->resolver);
    if (j->start_ev)
        event_free(j->start_ev);
    spool_cursor_close(j->cursor);
    free(j);
}

static void flush_job_end(struct flush_job *j)
{
    struct flush *fl = j->fl;
    struct flush_job **pp = &fl->jobs;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
    log_debug("flush %s: done", j->domain);
    flush_job_free(j);
    flush_check_drained(fl);
}

static struct spool_entry *flush_load(struct flush *fl, const char *id)
{
    struct spool_entry *e = NULL;
    struct etrn_err err;
    if (spool_entry_get(fl->sp, id, &e, &err) < 0) {
        log_debug("%s: no longer queued: %s", id, err.msg);
        return NULL;
    }
    if (e->nrcpt == 0) {
        spool_entry_free(e);
        return NULL;
    }
    return e;
}

/* DNS said the domain cannot take mail now (temp) or ever (perm): settle every queued entry. */
static void flush_job_settle_all(struct flush_job *j, int permanent, const char *status,
                                 const char *why)
{
    struct flush *fl = j->fl;
    char id[SPOOL_ID_MAX];
    while (flush_job_next(j, id)) {
        struct spool_entry *e = flush_load(fl, id);
        if (!e)
            continue;
        if (permanent)
            flush_entry_fail(fl, e, e->rcpts, e->nrcpt, "none", status, why, NULL);
        else if (flush_entry_expired(fl, e, time(NULL)))
            flush_entry_expire(fl, e);
        else
            flush_entry_defer(fl, e, e->rcpts, e->nrcpt, "none", why);
        spool_entry_free(e);
    }
}

static void flush_dest_set(struct flush_dest *d, const char *host, const struct netaddr *a)
{
    memset(d, 0, sizeof(*d));
    str_copy(d->host, sizeof d->host, host);
    d->addr = *a;
    char text[NETADDR_TEXT_MAX];
    if (netaddr_format_host((const struct sockaddr *)&a->ss, text, sizeof text) < 0)
        str_copy(text, sizeof text, "?");
    str_format(d->relay, sizeof d->relay, "%s[%s]:%d", host, text,
               netaddr_port((const struct sockaddr *)&a->ss));
}

static void flush_on_mx(const struct mx_result *res, void *arg)
{
    struct flush_job *j = arg;
    if (res->status != MX_OK) {
        log_info("flush %s: %s", j->domain, res->error);
        flush_job_settle_all(j, res->status == MX_PERMFAIL, res->enh, res->error);
        j->state = JOB_DELIVERING;     /* nothing left: the scheduler ends the job */
        flush_kick(j->fl);
        return;
    }
    size_t order[MX_HOSTS_MAX];
    for (size_t i = 0; i < res->nhosts; i++)
        order[i] = flush_defect(j->fl, "ignore_mx_preference") ? res->nhosts - 1 - i : i;
    j->ndests = 0;
    for (size_t k = 0; k < res->nhosts; k++) {
        const struct mx_host *h = &res->hosts[order[k]];
        for (size_t a = 0; a < h->naddrs && j->ndests < FLUSH_DESTS_MAX; a++)
            flush_dest_set(&j->dests[j->ndests++], h->name, &h->addrs[a]);
    }
    log_debug("flush %s: %zu address(es), first %s", j->domain, j->ndests, j->dests[0].relay);
    j->state = JOB_DELIVERING;
    flush_kick(j->fl);
}

static void flush_job_start(evutil_socket_t fd, short what, void *arg)
{
    struct flush_job *j = arg;
    struct flush *fl = j->fl;
    const struct etrnd_config *cfg = fl->cfg;
    (void)fd;
    (void)what;
    if (j->requester_len && flush_defect(fl, "deliver_to_requester")) {
        struct netaddr a;
        memset(&a, 0, sizeof a);
        memcpy(&a.ss, &j->requester, j->requester_len);
        a.len = j->requester_len;
        if (a.ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&a.ss)->sin_port = htons((unsigned short)cfg->smtp_port);
        else if (a.ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&a.ss)->sin6_port = htons((unsigned short)cfg->smtp_port);
        char host[NETADDR_TEXT_MAX];
        netaddr_format_host((const struct sockaddr *)&a.ss, host, sizeof host);
        log_warn("flush %s: defect deliver_to_requester: delivering to the ETRN client %s",
                 j->domain, host);
        flush_dest_set(&j->dests[0], host, &a);
        j->ndests = 1;
        j->state = JOB_DELIVERING;
        flush_kick(fl);
        return;
    }
    const struct etrnd_route *route = etrnd_config_route(cfg, j->domain);
    if (route) {
        char host[NETADDR_TEXT_MAX];
        netaddr_format_host((const struct sockaddr *)&route->addr.ss, host, sizeof host);
        flush_dest_set(&j->dests[0], host, &route->addr);
        j->ndests = 1;
        j->state = JOB_DELIVERING;
        flush_kick(fl);
        return;
    }
    struct mx_resolver_options o = { cfg->dns_server_set ? &cfg->dns_server : NULL,
                                     cfg->myhostname, cfg->smtp_port, FLUSH_DNS_TIMEOUT_MS,
                                     FLUSH_DNS_TRIES };
    struct etrn_err err;
    if (mx_resolver_new(&j->resolver, fl->base, &o, &err) < 0 ||
        mx_resolve(j->resolver, j->domain, flush_on_mx, j, &err) < 0) {
        log_error("flush %s: %s", j->domain, err.msg);
        flush_job_settle_all(j, 0, "4.4.3", err.msg);
        j->state = JOB_DELIVERING;
        flush_kick(fl);
        return;
    }
    j->state = JOB_RESOLVING;
}

static struct flush_job *flush_job_new(struct flush *fl, const char *domain,
                                       const struct sockaddr *requester)
{
    struct flush_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    struct etrn_err err;
    if (spool_cursor_open(fl->sp, domain, &j->cursor, &err) < 0) {
        log_error("flush %s: %s", domain, err.msg);
        free(j);
        return NULL;
    }
    j->fl = fl;
    str_copy(j->domain, sizeof j->domain, domain);
    if (requester) {
        socklen_t len = requester->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in);
        memcpy(&j->requester, requester, len);
        j->requester_len = len;
    }
    j->start_ev = evtimer_new(fl->base, flush_job_start, j);
    if (!j->start_ev) {
        spool_cursor_close(j->cursor);
        free(j);
        return NULL;
    }
    j->state = JOB_STARTING;
    j->next = fl->jobs;
    fl->jobs = j;
    event_active(j->start_ev, EV_TIMEOUT, 0);
    return j;
}

/* Starts a job for exactly domain when it has entries and create is set, or wakes the
 * running one (which finds entries committed since it started by itself). Constant time:
 * no entry is looked at here. Returns how many entries the domain has. */
static size_t flush_domain(struct flush *fl, const char *domain, const struct sockaddr *requester,
                           int create)
{
    size_t n = spool_count(fl->sp, domain, 0);
    if (n == 0)
        return 0;
    struct flush_job *j = flush_job_find(fl, domain);
    if (j) {
        if (j->state == JOB_DELIVERING && flush_job_queued(j) > 0)
            flush_kick(fl);
    } else if (create && !flush_job_new(fl, domain, requester)) {
        log_error("flush %s: cannot start a queue run (out of memory)", domain);
    }
    return n;
}

/* ---------------------------------------------------------------- workers */

static void flush_item_clear(struct flush_worker *w)
{
    if (w->item.body_fd >= 0)
        close(w->item.body_fd);
    if (w->item.e)
        spool_entry_free(w->item.e);
    free(w->item.rcpts);
    memset(&w->item, 0, sizeof w->item);
    w->item.body_fd = -1;
    w->has_item = 0;
}

static void flush_on_closed(struct smtp_client *c, void *arg)
{
    struct flush_closing *cl = arg;
    struct flush *fl = cl->fl;
    struct flush_closing **pp = &fl->closing;
    while (*pp && *pp != cl)
        pp = &(*pp)->next;
    if (*pp)
        *pp = cl->next;
    smtp_client_free(c);
    free(cl);
    fl->nclosing--;
    flush_kick(fl);
    flush_check_drained(fl);
}

/* Lets go of the worker's connection: QUIT if it is healthy, else just close. */
static void flush_worker_drop_conn(struct flush_worker *w)
{
    struct smtp_client *c = w->conn;
    if (!c)
        return;
    w->conn = NULL;
    struct flush_closing *cl = smtp_client_usable(c) ? calloc(1, sizeof(*cl)) : NULL;
    if (!cl) {
        smtp_client_free(c);
        return;
    }
    struct flush *fl = w->job->fl;
    cl->fl = fl;
    cl->c = c;
    cl->next = fl->closing;
    fl->closing = cl;
    fl->nclosing++;
    smtp_client_quit(c, flush_on_closed, cl);
}

static void flush_worker_destroy(struct flush_worker *w)
{
    smtp_client_free(w->conn);
    w->conn = NULL;
    flush_item_clear(w);
    w->job->fl->nworkers--;
    free(w);
}

static void flush_worker_end(struct flush_worker *w)
{
    struct flush_job *j = w->job;
    flush_worker_drop_conn(w);
    struct flush_worker **pp = &j->workers;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    j->nworkers--;
    flush_worker_destroy(w);
    flush_kick(j->fl);
}

/* Takes the next deliverable entry off the job's queue; 0 if there is none. */
static int flush_worker_take(struct flush_worker *w)
{
    struct flush_job *j = w->job;
    struct flush *fl = j->fl;
    char id[SPOOL_ID_MAX];
    while (!fl->draining && flush_job_next(j, id)) {
        struct spool_entry *e = flush_load(fl, id);
        if (!e)
            continue;
        if (flush_entry_expired(fl, e, time(NULL))) {
            flush_entry_expire(fl, e);
            spool_entry_free(e);
            continue;
        }
        char **r = calloc(e->nrcpt, sizeof(*r));
        if (!r) {
            spool_entry_free(e);
            continue;
        }
        for (size_t i = 0; i < e->nrcpt; i++)
            r[i] = e->rcpts[i];
        w->item.e = e;
        w->item.rcpts = r;
        w->item.nrcpt = e->nrcpt;
        w->item.dest = 0;
        w->item.last_error[0] = '\0';
        w->item.body_fd = -1;
        w->item.sent_once = 0;
        w->has_item = 1;
        return 1;
    }
    return 0;
}

/* The entry is finished with this job (delivered, bounced or deferred). */
static void flush_item_defer(struct flush_worker *w)
{
    struct flush_item *it = &w->item;
    const char *why = it->last_error[0] ? it->last_error : "no destination could be reached";
    flush_entry_defer(w->job->fl, it->e, it->rcpts, it->nrcpt, "none", why);
    flush_item_clear(w);
}

enum attempt { ATTEMPT_PENDING, ATTEMPT_DONE };

static enum attempt flush_worker_attempt(struct flush_worker *w);

/* Runs the worker until it waits for the network or has nothing left (then it ends and
 * w is gone). Iterative, so a long queue of undeliverable entries cannot deepen the stack. */
static void flush_worker_run(struct flush_worker *w)
{
    for (;;) {
        if (!w->has_item && !flush_worker_take(w)) {
            flush_worker_end(w);
            return;
        }
        if (flush_worker_attempt(w) == ATTEMPT_PENDING)
            return;
    }
}

static size_t flush_dest_limit(const struct flush_worker *w)
{
    size_t n = w->job->ndests;
    if (flush_defect(w->job->fl, "no_mx_fallthrough") && n > 1)
        n = 1;
    return n;
}

static void flush_on_sent(struct smtp_client *c, const struct smtp_message_result *res, void *arg);
static void flush_on_ready(struct smtp_client *c, int ok, void *arg);

static enum attempt flush_worker_send(struct flush_worker *w)
{
    struct flush *fl = w->job->fl;
    struct flush_item *it = &w->item;
    struct etrn_err err;
    if (it->body_fd >= 0) {
        close(it->body_fd);
        it->body_fd = -1;
    }
    if (spool_body_open(fl->sp, it->e->id, &it->body_fd, &err) < 0) {
        str_copy(it->last_error, sizeof it->last_error, err.msg);
        flush_item_defer(w);
        return ATTEMPT_DONE;
    }
    struct smtp_message m = { it->e->sender, it->rcpts, it->nrcpt, it->e->size, it->body_fd };
    if (smtp_client_send(w->conn, &m, flush_on_sent, w, &err) < 0) {
        str_copy(it->last_error, sizeof it->last_error, err.msg);
        flush_worker_drop_conn(w);
        flush_item_defer(w);
        return ATTEMPT_DONE;
    }
    return ATTEMPT_PENDING;
}

static enum attempt flush_worker_attempt(struct flush_worker *w)
{
    struct flush_job *j = w->job;
    struct flush *fl = j->fl;
    struct flush_item *it = &w->item;
    size_t limit = flush_dest_limit(w);
    while (it->dest < limit && j->dests[it->dest].dead)
        it->dest++;
    if (it->dest >= limit) {
        flush_item_defer(w);
        return ATTEMPT_DONE;
    }
    if (w->conn && w->conn_dest == it->dest && smtp_client_usable(w->conn))
        return flush_worker_send(w);
    flush_worker_drop_conn(w);

    const struct etrnd_config *cfg = fl->cfg;
    struct flush_dest *d = &j->dests[it->dest];
    /* A zero setting means the RFC 5321 §4.5.3.2 value, never "wait forever". */
    struct smtp_client_config cc = {
        cfg->myhostname, d->host, cfg->delivery_starttls && !d->no_tls,
        flush_ms(cfg->timeout_connect_ms, 30), flush_ms(cfg->timeout_greeting_ms, 300),
        flush_ms(cfg->timeout_mail_ms, 300), flush_ms(cfg->timeout_rcpt_ms, 300),
        flush_ms(cfg->timeout_data_ms, 120), flush_ms(cfg->timeout_block_ms, 180),
        flush_ms(cfg->timeout_dot_ms, 600)
    };
    struct etrn_err err;
    w->conn_dest = it->dest;
    if (smtp_client_connect(&w->conn, fl->base, (const struct sockaddr *)&d->addr.ss, d->addr.len,
                            &cc, flush_on_ready, w, &err) < 0) {
        w->conn = NULL;
        str_copy(it->last_error, sizeof it->last_error, err.msg);
        flush_item_defer(w);
        return ATTEMPT_DONE;
    }
    log_debug("%s: connecting to %s", it->e->id, d->relay);
    return ATTEMPT_PENDING;
}

static void flush_on_ready(struct smtp_client *c, int ok, void *arg)
{
    struct flush_worker *w = arg;
    struct flush_job *j = w->job;
    struct flush_item *it = &w->item;
    if (ok) {
        if (flush_worker_send(w) == ATTEMPT_DONE)
            flush_worker_run(w);
        return;
    }
    struct flush_dest *d = &j->dests[w->conn_dest];
    enum smtp_client_failure why = smtp_client_failure(c);
    str_copy(it->last_error, sizeof it->last_error, smtp_client_error(c));
    w->conn = NULL;
    smtp_client_free(c);
    if (why == SMTP_CLIENT_TLS && !d->no_tls) {
        /* Opportunistic TLS must not cost the delivery: once more, in the clear. */
        log_info("%s: %s: %s; retrying without TLS", it->e->id, d->relay, it->last_error);
        d->no_tls = 1;
    } else {
        log_info("%s: relay=%s: %s", it->e->id, d->relay, it->last_error);
        d->dead = 1;
        if (flush_defect(j->fl, "no_mx_fallthrough"))
            it->dest = j->ndests;
    }
    flush_worker_run(w);
}

/* Applies per-recipient results: accepted ones are done, 5xx bounced, the rest stay for
 * the next host. Returns 1 if the item is finished. */
static int flush_item_settle(struct flush_worker *w, const struct smtp_message_result *res,
                             const char *relay, const char *remote)
{
    struct flush *fl = w->job->fl;
    struct flush_item *it = &w->item;
    size_t n = it->nrcpt, nok = 0, nperm = 0, ntemp = 0;
    char **ok = calloc(n, sizeof(*ok)), **perm = calloc(n, sizeof(*perm)),
         **temp = calloc(n, sizeof(*temp)), **done = calloc(n, sizeof(*done));
    if (!ok || !perm || !temp || !done) {
        free(ok), free(perm), free(temp), free(done);
        str_copy(it->last_error, sizeof it->last_error, "out of memory");
        flush_item_defer(w);
        return 1;
    }
    int sent = res->outcome == SMTP_MSG_SENT;
    const char *perm_reply = "";
    int perm_code = 550;
    for (size_t i = 0; i < n; i++) {
        int code = res->rcpt_code[i];
        const char *text = res->rcpt_reply[i];
        if (sent && code / 100 == 2) {
            ok[nok++] = it->rcpts[i];
            log_info("%s to=<%s> relay=%s status=sent (%s)", it->e->id, it->rcpts[i], relay, res->reply);
        } else if (code / 100 == 5) {
            perm[nperm++] = it->rcpts[i];
            perm_reply = text;
            perm_code = code;
        } else {
            temp[ntemp++] = it->rcpts[i];
            log_info("%s to=<%s> relay=%s status=deferred (%s)", it->e->id, it->rcpts[i], relay,
                     code ? text : "no reply to RCPT");
            str_format(it->last_error, sizeof it->last_error, "host %s said: %s", relay,
                       code ? text : "no reply to RCPT");
        }
    }
    size_t ndone = 0;
    struct etrn_err err;
    if (nperm) {
        char status[16];
        flush_reply_status(perm_reply, perm_code, status);
        /* One DSN per distinct reply would be nicer; one per attempt is what we do. */
        flush_log_rcpts(it->e, perm, nperm, relay, "bounced", perm_reply);
        if (flush_bounce(fl, it->e, perm, nperm, status, perm_reply, remote, NULL) == 0) {
            for (size_t i = 0; i < nperm; i++)
                done[ndone++] = perm[i];
        } else {
            for (size_t i = 0; i < nperm; i++)
                temp[ntemp++] = perm[i];
        }
    }
    for (size_t i = 0; i < nok; i++)
        done[ndone++] = ok[i];
    int finished = 1;
    if (ntemp == 0) {
        if (spool_remove(fl->sp, it->e->id, &err) < 0)
            log_error("%s: %s", it->e->id, err.msg);
        flush_schedule_sync(fl);
        flush_item_clear(w);
    } else {
        if (ndone && spool_rcpts_done(fl->sp, it->e->id, done, ndone, &err) < 0)
            log_error("%s: %s", it->e->id, err.msg);
        for (size_t i = 0; i < ntemp; i++)
            it->rcpts[i] = temp[i];
        it->nrcpt = ntemp;
        it->dest++;                    /* the rest try the next host */
        finished = 0;
    }
    free(ok), free(perm), free(temp), free(done);
    return finished;
}

static void flush_on_sent(struct smtp_client *c, const struct smtp_message_result *res, void *arg)
{
    struct flush_worker *w = arg;
    struct flush_job *j = w->job;
    struct flush *fl = j->fl;
    struct flush_item *it = &w->item;
    struct flush_dest *d = &j->dests[w->conn_dest];
    if (it->body_fd >= 0) {
        close(it->body_fd);
        it->body_fd = -1;
    }
    switch (res->outcome) {
    case SMTP_MSG_SENT:
        if (flush_defect(fl, "deliver_twice") && !it->sent_once) {
            it->sent_once = 1;
            log_warn("%s: defect deliver_twice: sending again to %s", it->e->id, d->relay);
            if (flush_worker_send(w) == ATTEMPT_PENDING)
                return;
            break;
        }
        /* fall through */
    case SMTP_MSG_RCPTS_FAILED:
        flush_item_settle(w, res, d->relay, d->host);
        break;
    case SMTP_MSG_DEFERRED:
        flush_log_rcpts(it->e, it->rcpts, it->nrcpt, d->relay, "deferred", res->reply);
        str_format(it->last_error, sizeof it->last_error, "host %s said: %s", d->relay, res->reply);
        it->dest = flush_defect(fl, "no_mx_fallthrough") ? j->ndests : it->dest + 1;
        break;
    case SMTP_MSG_REJECTED: {
        char status[16];
        flush_reply_status(res->reply, res->code ? res->code : 550, status);
        flush_entry_fail(fl, it->e, it->rcpts, it->nrcpt, d->relay, status, res->reply, d->host);
        flush_item_clear(w);
        break;
    }
    case SMTP_MSG_CONN_LOST:
        str_copy(it->last_error, sizeof it->last_error, res->reply);
        d->dead = 1;
        w->conn = NULL;
        smtp_client_free(c);
        if (res->dot_sent) {
            /* The message may have arrived: keep it (a later run may duplicate it, the
             * RFC 1047 window) rather than risk losing it. */
            flush_item_defer(w);
        } else if (flush_defect(fl, "no_mx_fallthrough")) {
            it->dest = j->ndests;
        }
        break;
    case SMTP_MSG_LOCAL_ERROR:
        str_copy(it->last_error, sizeof it->last_error, res->reply);
        w->conn = NULL;
        smtp_client_free(c);
        flush_item_defer(w);
        break;
    }
    flush_worker_run(w);
}

/* ---------------------------------------------------------------- scheduling */

static void flush_schedule(struct flush *fl)
{
    struct flush_job *j = fl->jobs;
    while (j) {
        struct flush_job *next = j->next;
        if (j->state == JOB_DELIVERING) {
            while (!fl->draining && flush_job_queued(j) > 0 && j->nworkers < flush_per_destination(fl) &&
                   fl->nworkers + fl->nclosing < flush_max_total(fl)) {
                struct flush_worker *w = calloc(1, sizeof(*w));
                if (!w)
                    break;
                w->job = j;
                w->item.body_fd = -1;
                w->next = j->workers;
                j->workers = w;
                j->nworkers++;
                fl->nworkers++;
                flush_worker_run(w);
            }
            if (j->nworkers == 0 && (flush_job_queued(j) == 0 || fl->draining))
                flush_job_end(j);
        }
        j = next;
    }
}

static void flush_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_schedule(arg);
}

static void flush_on_drained(evutil_socket_t fd, short what, void *arg)
{
    struct flush *fl = arg;
    (void)fd;
    (void)what;
    void (*cb)(void *) = fl->drain_cb;
    fl->drain_cb = NULL;
    if (cb)
        cb(fl->drain_arg);
}

/* Starts a run for every domain with entries (only relayed ones when held_too is 0). */
static void flush_run_all(struct flush *fl, int held_too)
{
    if (fl->draining || flush_defect(fl, "never_deliver"))
        return;
    char **domains = NULL;
    size_t *counts = NULL, n = 0;
    struct etrn_err err;
    if (spool_domains(fl->sp, &domains, &counts, &n, &err) < 0) {
        log_error("queue run: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (held_too || !etrnd_config_holds_domain(fl->cfg, domains[i]))
            flush_domain(fl, domains[i], NULL, 1);
    for (size_t i = 0; i < n; i++)
        free(domains[i]);
    free(domains);
    free(counts);
}

static void flush_arm_retry(struct flush *fl)
{
    unsigned long long ms = fl->cfg->retry_interval_ms ? fl->cfg->retry_interval_ms
                                                       : FLUSH_NONHELD_RETRY_MS;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(fl->retry_ev, &tv);
}

static void flush_on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct flush *fl = arg;
    (void)fd;
    (void)what;
    flush_run_all(fl, fl->cfg->retry_interval_ms > 0);
    flush_arm_retry(fl);
}

static void flush_on_startup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    /* Relayed mail left over from a previous run is not held for anyone's ETRN. */
    flush_run_all(arg, 0);
}

/* ---------------------------------------------------------------- public API */

int flush_init(struct flush **out, struct event_base *base, struct spool *sp,
               const struct etrnd_config *cfg, struct etrn_err *err)
{
    *out = NULL;
    struct flush *fl = calloc(1, sizeof(*fl));
    if (!fl)
        return err_set(err, "flush: out of memory");
    fl->base = base;
    fl->sp = sp;
    fl->cfg = cfg;
    fl->kick_ev = evtimer_new(base, flush_on_kick, fl);
    fl->drain_ev = evtimer_new(base, flush_on_drained, fl);
    fl->retry_ev = evtimer_new(base, flush_on_retry, fl);
    fl->startup_ev = evtimer_new(base, flush_on_startup, fl);
    fl->sync_ev = evtimer_new(base, flush_on_sync, fl);
    fl->pending_ev = evtimer_new(base, flush_on_pending, fl);
    if (!fl->kick_ev || !fl->drain_ev || !fl->retry_ev || !fl->startup_ev || !fl->sync_ev ||
        !fl->pending_ev) {
        flush_free(fl);
        return err_set(err, "flush: cannot create events");
    }
    flush_arm_retry(fl);
    event_active(fl->startup_ev, EV_TIMEOUT, 0);
    *out = fl;
    return 0;
}

void flush_set_config(struct flush *fl, const struct etrnd_config *cfg)
{
    fl->cfg = cfg;
    flush_arm_retry(fl);
}

int flush_request_from(struct flush *fl, const char *domain, int subdomains,
                       const struct sockaddr *requester, size_t *queued,
                       struct etrn_err *err)
{
    char dom[256];
    if (queued)
        *queued = 0;
    if (domain_normalize(domain, dom, sizeof dom) < 0 || dom[0] == '\0')
        return err_set(err, "flush: '%.64s' is not a domain", domain);
    if (flush_defect(fl, "never_deliver")) {
        if (queued)
            *queued = spool_count(fl->sp, dom, subdomains);
        log_warn("flush %s: defect never_deliver: nothing will be sent", dom);
        return 0;
    }
    if (fl->draining)
        return err_set(err, "flush: shutting down");
    size_t total = spool_count(fl->sp, dom, subdomains);
    if (total > 0) {
        struct flush_pending *p = calloc(1, sizeof *p);
        if (p == NULL)
            return err_set(err, "flush: out of memory");
        str_copy(p->domain, sizeof p->domain, dom);
        p->subdomains = subdomains;
        p->count = total;
        if (requester) {
            socklen_t len = requester->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : sizeof(struct sockaddr_in);
            memcpy(&p->requester, requester, len);
            p->requester_len = len;
        }
        struct flush_pending **tail = &fl->pending;   /* first asked, first collected */
        while (*tail)
            tail = &(*tail)->next;
        *tail = p;
        event_active(fl->pending_ev, EV_TIMEOUT, 0);
    }
    log_info("flush %s%s: %zu queued entr%s scheduled", subdomains ? "@" : "", dom, total,
             total == 1 ? "y" : "ies");
    if (queued)
        *queued = total;
    return 0;
}

/* Turns answered ETRNs into jobs (see struct flush_pending). */
static void flush_on_pending(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct flush *fl = arg;
    while (fl->pending) {
        struct flush_pending *p = fl->pending;
        fl->pending = p->next;
        const struct sockaddr *req = p->requester_len ? (const struct sockaddr *)&p->requester : NULL;
        if (fl->draining) {
            /* shutting down: the entries stay queued for the next start */
        } else if (!p->subdomains) {
            flush_domain(fl, p->domain, req, 1);
        } else {
            char **domains = NULL;
            size_t *counts = NULL, n = 0;
            struct etrn_err err;
            if (spool_domains(fl->sp, &domains, &counts, &n, &err) < 0)
                log_error("flush @%s: %s", p->domain, err.msg);
            for (size_t i = 0; i < n; i++)
                if (domain_is_within(domains[i], p->domain))
                    flush_domain(fl, domains[i], req, 1);
            for (size_t i = 0; i < n; i++)
                free(domains[i]);
            free(domains);
            free(counts);
        }
        free(p);
    }
    flush_check_drained(fl);
}

int flush_request(struct flush *fl, const char *domain, int subdomains, size_t *queued,
                  struct etrn_err *err)
{
    return flush_request_from(fl, domain, subdomains, NULL, queued, err);
}

void flush_message_committed(struct flush *fl, const char *domain)
{
    char dom[256];
    if (fl->draining || flush_defect(fl, "never_deliver"))
        return;
    if (domain_normalize(domain, dom, sizeof dom) < 0 || dom[0] == '\0')
        return;
    if (flush_job_find(fl, dom)) {
        flush_domain(fl, dom, NULL, 0);        /* joins the running flush */
        return;
    }
    if (!etrnd_config_holds_domain(fl->cfg, dom))
        flush_domain(fl, dom, NULL, 1);        /* not held for ETRN: deliver now */
}

int flush_busy(struct flush *fl, const char *domain)
{
    char dom[256];
    if (domain_normalize(domain, dom, sizeof dom) < 0)
        return 0;
    if (flush_job_find(fl, dom) != NULL)
        return 1;
    for (const struct flush_pending *p = fl->pending; p; p = p->next)
        if (p->subdomains ? domain_is_within(dom, p->domain) : strcmp(dom, p->domain) == 0)
            return 1;
    return 0;
}

size_t flush_active(struct flush *fl)
{
    size_t n = 0;
    for (const struct flush_pending *p = fl->pending; p; p = p->next)
        n += p->count;
    for (struct flush_job *j = fl->jobs; j; j = j->next) {
        n += flush_job_queued(j);
        for (struct flush_worker *w = j->workers; w; w = w->next)
            n += w->has_item;
    }
    return n;
}

void flush_drain(struct flush *fl, void (*cb)(void *arg), void *arg)
{
    fl->draining = 1;
    fl->drain_cb = cb;
    fl->drain_arg = arg;
    evtimer_del(fl->retry_ev);
    /* Jobs not yet delivering end now (their entries stay queued); running workers
     * finish the entry in hand, then stop. */
    struct flush_job *j = fl->jobs;
    while (j) {
        struct flush_job *next = j->next;
        j->stopped = 1;
        if (j->state != JOB_DELIVERING || j->nworkers == 0)
            flush_job_end(j);
        j = next;
    }
    flush_check_drained(fl);
}

void flush_free(struct flush *fl)
{
    if (!fl)
        return;
    while (fl->jobs) {
        struct flush_job *j = fl->jobs;
        fl->jobs = j->next;
        flush_job_free(j);
    }
    while (fl->closing) {
        struct flush_closing *cl = fl->closing;
        fl->closing = cl->next;
        smtp_client_free(cl->c);
        free(cl);
    }
    if (fl->kick_ev)
        event_free(fl->kick_ev);
    if (fl->drain_ev)
        event_free(fl->drain_ev);
    if (fl->retry_ev)
        event_free(fl->retry_ev);
    if (fl->startup_ev)
        event_free(fl->startup_ev);
    while (fl->pending) {
        struct flush_pending *p = fl->pending;
        fl->pending = p->next;
        free(p);
    }
    if (fl->pending_ev)
        event_free(fl->pending_ev);
    if (fl->sync_ev) {
        flush_on_sync(-1, 0, fl);
        event_free(fl->sync_ev);
    }
    free(fl);
}
