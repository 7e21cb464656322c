/* mx_resolve.c — MX selection (RFC 5321 §5.1, RFC 7505) on c-ares, driven by libevent.
 *
 *   mx_resolver_new(&r, base, &opts, &err);
 *   mx_resolve(r, "node.test", cb, arg, &err);   // cb(res, arg) later, from the event loop
 *   mx_resolver_free(r);                          // cancels: no callback runs afterwards
 *
 * c-ares tells us which sockets to watch through its socket-state callback; each gets a
 * persistent libevent event, and one timer follows ares_timeout(). Results are handed
 * to the caller through a per-lookup event so that a caller may free the resolver from
 * its callback and never runs inside c-ares. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ares.h>
#include <event2/event.h>

#include "mx_resolve.h"
#include "domain.h"
#include "strbuf.h"

#define MX_DNS_CLASS_IN 1
#define MX_DNS_TYPE_MX 15
#define MX_RECORDS_MAX 64        /* MX records read from one answer before pruning */

struct mx_sock {
    ares_socket_t fd;
    struct event *ev;
};

struct mx_lookup;

struct mx_resolver {
    struct event_base *base;
    ares_channel chan;
    int chan_ready;
    struct event *timer;
    struct mx_sock *socks;
    size_t nsocks;
    struct mx_lookup *lookups;
    char myhostname[256];
    int port;
};

struct mx_lookup {
    struct mx_resolver *r;
    struct mx_lookup *next;
    mx_result_cb cb;
    void *arg;
    struct event *done_ev;
    int pending;              /* c-ares queries outstanding */
    int finished;             /* result is final; done_ev is active */
    unsigned addr_tempfail;   /* MX hosts whose address lookup failed temporarily */
    char last_addr_error[160];
    struct mx_result res;
};

struct mx_addr_query {
    struct mx_lookup *lk;
    size_t host;
};

static int mx_library_ready;

static void mx_resolver_rearm(struct mx_resolver *r)
{
    struct timeval buf;
    struct timeval *tv = ares_timeout(r->chan, NULL, &buf);
    if (tv)
        evtimer_add(r->timer, tv);
    else
        evtimer_del(r->timer);
}

static void mx_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mx_resolver *r = arg;
    (void)fd;
    (void)what;
    ares_process_fd(r->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    mx_resolver_rearm(r);
}

static void mx_on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct mx_resolver *r = arg;
    ares_process_fd(r->chan, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
    mx_resolver_rearm(r);
}

/* c-ares: start/stop watching fd. Runs inside c-ares calls, including ares_destroy. */
static void mx_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct mx_resolver *r = data;
    size_t i;
    for (i = 0; i < r->nsocks; i++)
        if (r->socks[i].fd == fd)
            break;
    if (i < r->nsocks) {
        event_free(r->socks[i].ev);
        r->socks[i] = r->socks[r->nsocks - 1];
        r->nsocks--;
    }
    if (!readable && !writable)
        return;
    struct mx_sock *grown = realloc(r->socks, (r->nsocks + 1) * sizeof(*grown));
    if (!grown)
        return;   /* the query times out instead; nothing better to do here */
    r->socks = grown;
    short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    struct event *ev = event_new(r->base, fd, what, mx_on_socket, r);
    if (!ev)
        return;
    if (event_add(ev, NULL) < 0) {
        event_free(ev);
        return;
    }
    r->socks[r->nsocks].fd = fd;
    r->socks[r->nsocks].ev = ev;
    r->nsocks++;
}

static void mx_lookup_unlink(struct mx_lookup *lk)
{
    struct mx_lookup **pp = &lk->r->lookups;
    while (*pp && *pp != lk)
        pp = &(*pp)->next;
    if (*pp)
        *pp = lk->next;
}

static void mx_on_done(evutil_socket_t fd, short what, void *arg)
{
    struct mx_lookup *lk = arg;
    (void)fd;
    (void)what;
    mx_lookup_unlink(lk);
    /* After cb the resolver may be gone: touch only lk. */
    lk->cb(&lk->res, lk->arg);
    event_free(lk->done_ev);
    free(lk);
}

static void mx_finish(struct mx_lookup *lk, enum mx_status st, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void mx_finish(struct mx_lookup *lk, enum mx_status st, const char *enh, const char *fmt, ...)
{
    if (lk->finished)
        return;
    lk->finished = 1;
    lk->res.status = st;
    lk->res.enh = enh;
    lk->res.error[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        struct strbuf sb;
        strbuf_init(&sb, sizeof lk->res.error - 1);
        if (strbuf_vappendf(&sb, fmt, ap) == 0)
            str_copy(lk->res.error, sizeof lk->res.error, sb.data);
        else
            str_copy(lk->res.error, sizeof lk->res.error, "DNS lookup failed");
        strbuf_free(&sb);
        va_end(ap);
    }
    event_active(lk->done_ev, EV_TIMEOUT, 0);
}

static const char *mx_status_text(int status)
{
    switch (status) {
    case ARES_ENODATA: return "no data";
    case ARES_ENOTFOUND: return "not found (NXDOMAIN)";
    case ARES_ESERVFAIL: return "server failure (SERVFAIL)";
    case ARES_ETIMEOUT: return "timed out";
    /* c-ares reports "every server answered SERVFAIL/REFUSED or was unreachable" so */
    case ARES_ECONNREFUSED: return "no usable answer from the DNS server (SERVFAIL, REFUSED or unreachable)";
    case ARES_EREFUSED: return "query refused";
    case ARES_EFORMERR: return "format error";
    case ARES_EBADRESP: return "malformed response";
    default: return ares_strerror(status);
    }
}

/* Removes hosts without addresses, keeping order, and decides the final status. */
static void mx_addresses_done(struct mx_lookup *lk)
{
    struct mx_result *res = &lk->res;
    size_t kept = 0;
    for (size_t i = 0; i < res->nhosts; i++) {
        if (res->hosts[i].naddrs == 0)
            continue;
        if (kept != i)
            res->hosts[kept] = res->hosts[i];
        kept++;
    }
    res->nhosts = kept;
    if (kept > 0) {
        mx_finish(lk, MX_OK, "", NULL);
        return;
    }
    if (lk->addr_tempfail > 0)
        mx_finish(lk, MX_TEMPFAIL, "4.4.3", "address lookup for %s failed: %s",
                  res->implicit_mx ? res->domain : "its MX hosts", lk->last_addr_error);
    else if (res->implicit_mx)
        mx_finish(lk, MX_PERMFAIL, "5.1.2", "%s has no MX and no address record", res->domain);
    else
        mx_finish(lk, MX_PERMFAIL, "5.4.4", "no MX host of %s has an address record (%s)",
                  res->domain, lk->last_addr_error);
}

static void mx_on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct mx_addr_query *q = arg;
    struct mx_lookup *lk = q->lk;
    (void)timeouts;
    lk->pending--;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        if (ai)
            ares_freeaddrinfo(ai);
        free(q);
        return;
    }
    struct mx_host *h = &lk->res.hosts[q->host];
    if (status == ARES_SUCCESS && ai) {
        for (struct ares_addrinfo_node *n = ai->nodes; n && h->naddrs < MX_ADDRS_PER_HOST_MAX;
             n = n->ai_next) {
            struct netaddr *a = &h->addrs[h->naddrs];
            memset(a, 0, sizeof(*a));
            if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
                memcpy(&a->ss, n->ai_addr, sizeof(struct sockaddr_in));
                ((struct sockaddr_in *)&a->ss)->sin_port = htons((unsigned short)lk->r->port);
                a->len = sizeof(struct sockaddr_in);
            } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                memcpy(&a->ss, n->ai_addr, sizeof(struct sockaddr_in6));
                ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((unsigned short)lk->r->port);
                a->len = sizeof(struct sockaddr_in6);
            } else {
                continue;
            }
            h->naddrs++;
        }
    } else {
        /* NXDOMAIN/NODATA: the host is skipped for good; anything else may heal. */
        if (status != ARES_ENOTFOUND && status != ARES_ENODATA && status != ARES_ENONAME)
            lk->addr_tempfail++;
        str_format(lk->last_addr_error, sizeof lk->last_addr_error, "%s: %s", h->name,
                   mx_status_text(status));
    }
    if (ai)
        ares_freeaddrinfo(ai);
    free(q);
    if (lk->pending == 0 && !lk->finished)
        mx_addresses_done(lk);
}

static void mx_lookup_addresses(struct mx_lookup *lk)
{
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT;   /* resolver order, R5321-5.1f */
    /* c-ares may answer synchronously (numeric names): hold a token while launching. */
    lk->pending++;
    for (size_t i = 0; i < lk->res.nhosts; i++) {
        struct mx_addr_query *q = calloc(1, sizeof(*q));
        if (!q) {
            lk->addr_tempfail++;
            str_copy(lk->last_addr_error, sizeof lk->last_addr_error, "out of memory");
            continue;
        }
        q->lk = lk;
        q->host = i;
        lk->pending++;
        ares_getaddrinfo(lk->r->chan, lk->res.hosts[i].name, NULL, &hints, mx_on_addrinfo, q);
    }
    lk->pending--;
    if (lk->pending == 0 && !lk->finished)
        mx_addresses_done(lk);
}

struct mx_record {
    char host[256];
    int pref;
};

static int mx_record_cmp(const void *a, const void *b)
{
    const struct mx_record *x = a, *y = b;
    return (x->pref > y->pref) - (x->pref < y->pref);
}

/* Sorted by preference; each run of equal preferences shuffled (Fisher-Yates). */
static void mx_records_order(struct mx_record *v, size_t n)
{
    qsort(v, n, sizeof(*v), mx_record_cmp);
    size_t start = 0;
    while (start < n) {
        size_t end = start + 1;
        while (end < n && v[end].pref == v[start].pref)
            end++;
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + arc4random_uniform((uint32_t)(i - start + 1));
            struct mx_record t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        start = end;
    }
}

static void mx_use_records(struct mx_lookup *lk, struct ares_mx_reply *mx)
{
    struct mx_record rec[MX_RECORDS_MAX];
    size_t n = 0, nnull = 0, total = 0;
    for (struct ares_mx_reply *p = mx; p; p = p->next) {
        total++;
        const char *h = p->host ? p->host : "";
        if (h[0] == '\0' || strcmp(h, ".") == 0) {
            nnull++;
            continue;
        }
        if (n < MX_RECORDS_MAX && domain_normalize(h, rec[n].host, sizeof rec[n].host) == 0) {
            rec[n].pref = p->priority;
            n++;
        }
    }
    if (nnull > 0 && total == 1) {
        lk->res.null_mx = 1;
        mx_finish(lk, MX_PERMFAIL, "5.1.10", "%s publishes a null MX (RFC 7505): it accepts no mail",
                  lk->res.domain);
        return;
    }
    if (n == 0) {
        /* Only unusable MX records: an MX exists, so no address fallback (R5321-5.1c). */
        mx_finish(lk, MX_PERMFAIL, "5.4.4", "%s has no usable MX record", lk->res.domain);
        return;
    }
    /* R5321-5.1g: drop ourselves and everything at or above our preference. */
    if (lk->r->myhostname[0]) {
        int self = -1;
        for (size_t i = 0; i < n; i++)
            if (domain_equal(rec[i].host, lk->r->myhostname) && (self < 0 || rec[i].pref < self))
                self = rec[i].pref;
        if (self >= 0) {
            size_t kept = 0;
            for (size_t i = 0; i < n; i++)
                if (rec[i].pref < self)
                    rec[kept++] = rec[i];
            n = kept;
            if (n == 0) {
                mx_finish(lk, MX_PERMFAIL, "5.4.6",
                          "mail for %s loops back to myself (%s is its best MX)",
                          lk->res.domain, lk->r->myhostname);
                return;
            }
        }
    }
    mx_records_order(rec, n);
    if (n > MX_HOSTS_MAX)
        n = MX_HOSTS_MAX;
    for (size_t i = 0; i < n; i++) {
        struct mx_host *h = &lk->res.hosts[i];
        memset(h, 0, sizeof(*h));
        str_copy(h->name, sizeof h->name, rec[i].host);
        h->preference = rec[i].pref;
    }
    lk->res.nhosts = n;
    mx_lookup_addresses(lk);
}

static void mx_use_implicit(struct mx_lookup *lk)
{
    lk->res.implicit_mx = 1;
    struct mx_host *h = &lk->res.hosts[0];
    memset(h, 0, sizeof(*h));
    str_copy(h->name, sizeof h->name, lk->res.domain);
    h->preference = 0;
    lk->res.nhosts = 1;
    mx_lookup_addresses(lk);
}

static void mx_on_mx_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct mx_lookup *lk = arg;
    (void)timeouts;
    lk->pending--;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        return;
    if (status == ARES_SUCCESS) {
        struct ares_mx_reply *mx = NULL;
        int st = ares_parse_mx_reply(abuf, alen, &mx);
        if (st == ARES_SUCCESS) {
            mx_use_records(lk, mx);
            ares_free_data(mx);
        } else if (st == ARES_ENODATA) {
            mx_use_implicit(lk);      /* e.g. a CNAME chain ending without MX */
        } else {
            mx_finish(lk, MX_TEMPFAIL, "4.4.3", "MX lookup for %s: %s", lk->res.domain,
                      mx_status_text(st));
        }
        return;
    }
    switch (status) {
    case ARES_ENODATA:
        mx_use_implicit(lk);
        break;
    case ARES_ENOTFOUND:
        mx_finish(lk, MX_PERMFAIL, "5.1.2", "domain %s does not exist (NXDOMAIN)", lk->res.domain);
        break;
    case ARES_EBADNAME:
        mx_finish(lk, MX_PERMFAIL, "5.1.2", "%s is not a valid domain name", lk->res.domain);
        break;
    default:
        mx_finish(lk, MX_TEMPFAIL, "4.4.3", "MX lookup for %s: %s", lk->res.domain,
                  mx_status_text(status));
        break;
    }
}

int mx_resolver_new(struct mx_resolver **out, struct event_base *base,
                    const struct mx_resolver_options *opts, struct etrn_err *err)
{
    *out = NULL;
    if (!mx_library_ready) {
        int st = ares_library_init(ARES_LIB_INIT_ALL);
        if (st != ARES_SUCCESS)
            return err_set(err, "c-ares: %s", ares_strerror(st));
        mx_library_ready = 1;
    }
    struct mx_resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return err_set(err, "mx resolver: out of memory");
    r->base = base;
    r->port = opts->port > 0 ? opts->port : 25;
    if (opts->myhostname)
        domain_normalize(opts->myhostname, r->myhostname, sizeof r->myhostname);
    r->timer = evtimer_new(base, mx_on_timer, r);
    if (!r->timer) {
        free(r);
        return err_set(err, "mx resolver: cannot create timer");
    }

    struct ares_options o;
    memset(&o, 0, sizeof o);
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS |
               ARES_OPT_NDOTS;
    o.sock_state_cb = mx_sock_state;
    o.sock_state_cb_data = r;
    /* No search list, no HOSTALIASES, no /etc/hosts: mail routing comes from DNS alone. */
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    o.domains = NULL;
    o.ndomains = 0;
    o.lookups = (char *)"b";
    o.ndots = 1;
    if (opts->timeout_ms) {
        o.timeout = (int)opts->timeout_ms;
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (opts->tries) {
        o.tries = (int)opts->tries;
        mask |= ARES_OPT_TRIES;
    }
    int st = ares_init_options(&r->chan, &o, mask);
    if (st != ARES_SUCCESS) {
        event_free(r->timer);
        free(r);
        return err_set(err, "c-ares init: %s", ares_strerror(st));
    }
    r->chan_ready = 1;
    if (opts->server) {
        char text[NETADDR_TEXT_MAX];
        if (netaddr_format((const struct sockaddr *)&opts->server->ss, text, sizeof text) < 0) {
            mx_resolver_free(r);
            return err_set(err, "dns_server: cannot format the address");
        }
        st = ares_set_servers_ports_csv(r->chan, text);
        if (st != ARES_SUCCESS) {
            mx_resolver_free(r);
            return err_set(err, "dns_server %s: %s", text, ares_strerror(st));
        }
    }
    *out = r;
    return 0;
}

int mx_resolve(struct mx_resolver *r, const char *domain, mx_result_cb cb, void *arg,
               struct etrn_err *err)
{
    struct mx_lookup *lk = calloc(1, sizeof(*lk));
    if (!lk)
        return err_set(err, "mx lookup: out of memory");
    if (domain_normalize(domain, lk->res.domain, sizeof lk->res.domain) < 0 ||
        lk->res.domain[0] == '\0') {
        free(lk);
        return err_set(err, "mx lookup: '%.64s' is not a domain", domain);
    }
    lk->done_ev = evtimer_new(r->base, mx_on_done, lk);
    if (!lk->done_ev) {
        free(lk);
        return err_set(err, "mx lookup: cannot create event");
    }
    lk->r = r;
    lk->cb = cb;
    lk->arg = arg;
    lk->next = r->lookups;
    r->lookups = lk;
    lk->pending++;
    ares_query(r->chan, lk->res.domain, MX_DNS_CLASS_IN, MX_DNS_TYPE_MX, mx_on_mx_answer, lk);
    mx_resolver_rearm(r);
    return 0;
}

void mx_resolver_free(struct mx_resolver *r)
{
    if (!r)
        return;
    /* ares_destroy runs every pending callback with ARES_EDESTRUCTION (they only free
     * their own query state) and closes the sockets through mx_sock_state. */
    if (r->chan_ready)
        ares_destroy(r->chan);
    while (r->lookups) {
        struct mx_lookup *lk = r->lookups;
        r->lookups = lk->next;
        event_free(lk->done_ev);
        free(lk);
    }
    for (size_t i = 0; i < r->nsocks; i++)
        event_free(r->socks[i].ev);
    free(r->socks);
    event_free(r->timer);
    free(r);
}
