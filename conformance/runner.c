/* runner.c — executes scenarios: worlds, injection, client dialogues, hostile clients,
 * timed world changes and outcome checks, several scenarios at once on one event_base.
 *
 *   runner_run(&opts, scenarios, seq, n, &results, &err);
 *
 * Each running scenario is a `struct sc_run`: a cursor over its top-level steps and at
 * most one asynchronous operation in flight (injection, clients, a wait, an outcome being
 * polled, a hostile client, a queue listing). When an operation ends it schedules the
 * scenario's `kick` event, which advances the cursor; nothing recurses. A deadline timer
 * bounds every scenario. Guarantees: see runner.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "dialogue.h"
#include "inject.h"
#include "misbehave.h"
#include "netaddr.h"
#include "pcap_writer.h"
#include "runner.h"
#include "sink_journal.h"
#include "target.h"
#include "world.h"

#define POLL_MS 50
#define DEFAULT_SENDER "etrncheck@etrncheck.invalid"

struct runner;

struct at_ev {
    struct at_ev *next;
    struct sc_run *run;
    struct event *ev;
    char **argv;
    int argc;
    int line;
};

enum op_kind { OP_NONE, OP_INJECT, OP_CLIENTS, OP_WAIT, OP_OUTCOME, OP_HOSTILE, OP_QUEUE_LIST,
               OP_ALIVE };

struct sc_run {
    struct runner *r;
    const struct scenario *sc;
    unsigned seq;
    struct scenario_result res;
    struct sim_world *world;
    struct pcap_writer *pcap;
    char node[300], NODE[300], foreign[300], locked[300], seqtext[16], pool_first[32];
    size_t step;
    int64_t t0;
    unsigned long queued;
    enum op_kind op;
    const struct scenario_step *cur;
    struct inject *inject;
    struct dialogue **dialogues;
    size_t ndialogues, ndone;
    struct misbehave *hostile;
    struct target_cmd *cmd;
    struct event *timer, *kick, *deadline;
    int64_t op_deadline;
    unsigned long op_count;           /* outcome: the N being waited for */
    struct at_ev *ats;
    char error[ETRN_ERR_MAX];         /* set: the scenario ends as ERROR */
    int finished;
    struct sc_run *next_active;
};

struct runner {
    const struct runner_options *o;
    struct target_profile *p;
    struct event_base *base;
    struct sim_world *shared;         /* the DNS server and the requester's sink */
    SSL_CTX *tls;
    char run_id[16];
    const struct scenario *scs;
    const unsigned *seq;
    size_t n, next, running, done;
    struct run_results *out;
    struct sc_run *active;
    int interrupted;
    struct event *sigint, *sigterm;
    struct scenario alive;            /* the built-in `target alive` dialogue */
    struct target_proc *proc;         /* the target we started, or NULL */
    int target_gone;
};

static void sc_kick(struct sc_run *run);
static void sc_finish(struct sc_run *run);
static void schedule(struct runner *r);

/* ---- small helpers -------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    return dialogue_now_ms();
}

static void tnote(struct sc_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tnote(struct sc_run *run, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int64_t t = now_ms() - run->t0;
    scenario_result_log(&run->res, "[%4lld.%03lld] ** %s", (long long)(t / 1000),
                        (long long)(t % 1000), msg);
}

static void sc_error(struct sc_run *run, const struct scenario_step *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sc_error(struct sc_run *run, const struct scenario_step *s, const char *fmt, ...)
{
    if (run->error[0])
        return;
    char msg[ETRN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s)
        snprintf(run->error, sizeof run->error, "%s:%d: %.400s", s->file, s->line, msg);
    else
        snprintf(run->error, sizeof run->error, "%.500s", msg);
    tnote(run, "ERROR: %s", run->error);
}

static void timer_set(struct event *ev, unsigned long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

const char *runner_skip_reason(const struct target_profile *p, const struct scenario *sc,
                               char *buf, size_t n)
{
    for (size_t i = 0; i < sc->nrequires; i++)
        if (!profile_has_capability(p, sc->requires[i])) {
            snprintf(buf, n, "requires %s", sc->requires[i]);
            return buf;
        }
    return NULL;
}

/* ---- variables ------------------------------------------------------------------------------ */

static int is_declared(const struct scenario *sc, const char *name)
{
    for (size_t i = 0; i < sc->nsinks; i++)
        if (strcmp(sc->sinks[i], name) == 0)
            return 1;
    return 0;
}

static const char *lookup(const char *name, void *arg)
{
    struct sc_run *run = arg;
    struct target_profile *p = run->r->p;
    static __thread char port[16], tport[16];
    if (strcmp(name, "node") == 0)
        return run->node;
    if (strcmp(name, "NODE") == 0)
        return run->NODE;
    if (strcmp(name, "foreign") == 0)
        return run->foreign;
    if (strcmp(name, "suffix") == 0)
        return p->node_suffix;
    if (strcmp(name, "source") == 0 || strcmp(name, "requester") == 0)
        return p->source;
    if (strcmp(name, "denied_source") == 0)
        return p->denied_source;
    if (strcmp(name, "target") == 0)
        return p->target;
    if (strcmp(name, "target_host") == 0)
        return p->target_host;
    if (strcmp(name, "target_port") == 0) {
        snprintf(tport, sizeof tport, "%d", p->target_port);
        return tport;
    }
    if (strcmp(name, "relay") == 0)
        return p->hostname;
    if (strcmp(name, "locked") == 0)
        return p->locked_suffix ? run->locked : NULL;
    if (strcmp(name, "hashqueue") == 0)
        return p->hash_queue;
    if (strcmp(name, "hashdomain") == 0)
        return p->hash_queue_domain;
    if (strcmp(name, "submission") == 0)
        return p->submission;
    if (strcmp(name, "port") == 0) {
        snprintf(port, sizeof port, "%d", p->sink_port);
        return port;
    }
    if (strcmp(name, "dns") == 0)
        return p->dns_addr;
    if (strcmp(name, "run") == 0)
        return run->r->run_id;
    if (strcmp(name, "seq") == 0)
        return run->seqtext;
    if (run->world && is_declared(run->sc, name))
        return sim_world_sink_addr(run->world, name);
    return NULL;
}

/* Expands every word; out[] are malloc'd. */
static int expand_words(struct sc_run *run, char *const *argv, int argc, char **out,
                        struct etrn_err *err)
{
    for (int i = 0; i < argc; i++) {
        struct strbuf sb;
        strbuf_init(&sb, SCENARIO_EXPAND_MAX + 1);
        if (scenario_expand(argv[i], lookup, run, &sb, err) < 0) {
            strbuf_free(&sb);
            for (int k = 0; k < i; k++)
                free(out[k]);
            return -1;
        }
        out[i] = strbuf_detach(&sb);   /* a copy */
        strbuf_free(&sb);
        if (out[i] == NULL) {
            for (int k = 0; k < i; k++)
                free(out[k]);
            return err_set(err, "out of memory");
        }
    }
    return 0;
}

static void free_words(char **w, int n)
{
    for (int i = 0; i < n; i++)
        free(w[i]);
}

static int apply_world(struct sc_run *run, char *const *argv, int argc, struct etrn_err *err)
{
    char *w[SCENARIO_WORDS_MAX];
    if (argc > SCENARIO_WORDS_MAX)
        return err_set(err, "too many words");
    if (expand_words(run, argv, argc, w, err) < 0)
        return -1;
    struct sim_world *target = strncmp(w[0], "dns", 3) == 0 ? run->r->shared : run->world;
    int rc = sim_world_apply(target, w, argc, err);
    if (rc == 0) {
        struct strbuf line;
        strbuf_init(&line, 2048);
        for (int i = 0; i < argc; i++)
            strbuf_appendf(&line, "%s%s", i ? " " : "", w[i]);
        tnote(run, "world: %s", line.data);
        strbuf_free(&line);
    }
    free_words(w, argc);
    return rc;
}

/* ---- checks ------------------------------------------------------------------------------- */

static void judge(struct sc_run *run, const struct scenario_step *s, enum verdict pass_verdict,
                  int ok, const char *what, const char *detail)
{
    const struct scenario *sc = run->sc;
    enum scenario_level lv = s->check.level ? s->check.level : sc->level;
    char *const *reqs = s->check.nreqs ? s->check.reqs : sc->cites;
    size_t n = s->check.nreqs ? s->check.nreqs : sc->ncites;
    enum verdict v = ok ? pass_verdict : verdict_for_level(lv);
    scenario_result_add_check(&run->res, v, reqs, n, s->file, s->line, what, detail);
    tnote(run, "%s: %s: %s", verdict_name(v), what, detail);
    if (s->check.record && ok) {
        char *const *rr = s->check.nrecord_reqs ? s->check.record_reqs : reqs;
        size_t rn = s->check.nrecord_reqs ? s->check.nrecord_reqs : n;
        char det[600];
        snprintf(det, sizeof det, "observed: %.500s", detail);
        scenario_result_add_check(&run->res, verdict_for_level(s->check.record), rr, rn,
                                  s->file, s->line, what, det);
    }
}

/* Deliveries of this scenario's messages. seen[i] counts accepted copies of message i. */
struct tally {
    unsigned long distinct;         /* messages with at least one accepted copy */
    unsigned long max_copies;
    unsigned long worst_index;
    unsigned long any;              /* accepted deliveries of any message */
};

static size_t fetch(const struct sim_world *w, const char *sink,
                    const struct sink_journal_entry ***out,
                    size_t (*fn)(const struct sim_world *, const char *,
                                 const struct sink_journal_entry **, size_t))
{
    size_t n = fn(w, sink, NULL, 0);
    *out = NULL;
    if (n == 0)
        return 0;
    if (n > SINK_JOURNAL_MEMORY_MAX)
        n = SINK_JOURNAL_MEMORY_MAX;
    *out = calloc(n, sizeof **out);
    if (*out == NULL)
        return 0;
    size_t got = fn(w, sink, *out, n);
    return got < n ? got : n;
}

static void tally_world(struct sc_run *run, const struct sim_world *w, const char *sink,
                        unsigned long *copies, struct tally *t)
{
    const struct sink_journal_entry **v;
    size_t n = fetch(w, sink, &v, sim_world_deliveries);
    for (size_t i = 0; i < n; i++) {
        const struct sink_journal_entry *e = v[i];
        if (e->kind != SINK_JOURNAL_DELIVERY || e->status != SINK_DELIVERY_ACCEPTED)
            continue;
        unsigned long idx;
        if (inject_message_index(e->message_id, run->seq, run->r->run_id, &idx) < 0 ||
            idx >= run->queued) {
            if (w == run->world)
                t->any++;
            continue;
        }
        t->any++;
        if (copies[idx]++ == 0)
            t->distinct++;
        if (copies[idx] > t->max_copies) {
            t->max_copies = copies[idx];
            t->worst_index = idx;
        }
    }
    free(v);
}

static int tally(struct sc_run *run, const char *sink, int include_requester, struct tally *t)
{
    memset(t, 0, sizeof *t);
    unsigned long *copies = calloc(run->queued + 1, sizeof *copies);
    if (copies == NULL)
        return -1;
    if (sink && strcmp(sink, "any") == 0)
        sink = NULL;
    if (sink == NULL || strcmp(sink, "requester") != 0)
        tally_world(run, run->world, sink, copies, t);
    if (include_requester)
        tally_world(run, run->r->shared, "requester", copies, t);
    free(copies);
    return 0;
}

static size_t connects(struct sc_run *run, const char *sink, int64_t *first_time,
                       unsigned long *first_conn)
{
    const struct sink_journal_entry **v;
    size_t n = fetch(run->world, sink, &v, sim_world_connects);
    *first_time = 0;
    *first_conn = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->kind != SINK_JOURNAL_CONNECT)
            continue;
        if (count == 0 || v[i]->time_ms < *first_time ||
            (v[i]->time_ms == *first_time && v[i]->conn_id < *first_conn)) {
            *first_time = v[i]->time_ms;
            *first_conn = v[i]->conn_id;
        }
        count++;
    }
    free(v);
    return count;
}

/* ---- outcomes --------------------------------------------------------------------------- */

static void outcome_what(const struct scenario_step *s, char *buf, size_t n)
{
    struct strbuf sb;
    strbuf_init(&sb, 1024);
    for (int i = 1; i < s->argc; i++) {
        if (strcmp(s->argv[i], "else") == 0 || strcmp(s->argv[i], "record") == 0)
            break;
        strbuf_appendf(&sb, "%s%s", i > 1 ? " " : "", s->argv[i]);
    }
    snprintf(buf, n, "outcome %s", sb.data);
    strbuf_free(&sb);
}

/* Evaluates the outcome now. Returns 1 when decided (judged), 0 to poll again. */
static int outcome_poll(struct sc_run *run, int final)
{
    const struct scenario_step *s = run->cur;
    const struct scenario_outcome *o = &s->outcome;
    char what[300], det[600];
    outcome_what(s, what, sizeof what);
    struct tally t;
    switch (o->kind) {
    case SCENARIO_OUTCOME_DELIVERED:
        if (tally(run, o->sink, 0, &t) < 0)
            return 0;
        if (t.distinct > run->op_count) {
            snprintf(det, sizeof det, "%lu of this scenario's messages reached %s, expected %lu",
                     t.distinct, o->sink, run->op_count);
            judge(run, s, VERDICT_PASS, 0, what, det);
            return 1;
        }
        if (t.distinct == run->op_count) {
            snprintf(det, sizeof det, "%lu delivered to %s after %.1fs", t.distinct, o->sink,
                     (double)(now_ms() - (run->op_deadline - (int64_t)(o->within_ms ? o->within_ms : run->r->p->flush_timeout_ms))) / 1000.0);
            judge(run, s, VERDICT_PASS, 1, what, det);
            return 1;
        }
        if (final) {
            snprintf(det, sizeof det, "only %lu of %lu messages reached %s within %.1fs",
                     t.distinct, run->op_count, o->sink,
                     (double)(o->within_ms ? o->within_ms : run->r->p->flush_timeout_ms) / 1000.0);
            judge(run, s, VERDICT_PASS, 0, what, det);
            return 1;
        }
        return 0;
    case SCENARIO_OUTCOME_NOT_DELIVERED:
        if (tally(run, o->sink, 0, &t) < 0)
            return 0;
        if (t.any > 0) {
            snprintf(det, sizeof det, "%lu message(s) reached %s", t.any, o->sink);
            judge(run, s, VERDICT_PASS, 0, what, det);
            return 1;
        }
        if (final) {
            snprintf(det, sizeof det, "nothing reached %s", o->sink);
            judge(run, s, VERDICT_PASS, 1, what, det);
            return 1;
        }
        return 0;
    case SCENARIO_OUTCOME_NOTHING_TO_REQUESTER:
        if (tally(run, "requester", 1, &t) < 0)
            return 0;
        if (t.distinct > 0) {
            snprintf(det, sizeof det, "%lu message(s) were delivered to the requester's own "
                                      "address %s", t.distinct, run->r->p->source);
            judge(run, s, VERDICT_PASS, 0, what, det);
            return 1;
        }
        if (final) {
            judge(run, s, VERDICT_PASS, 1, what, "nothing reached the requester's address");
            return 1;
        }
        return 0;
    case SCENARIO_OUTCOME_NO_DUPLICATES:
    case SCENARIO_OUTCOME_AT_MOST_COPIES: {
        unsigned long limit = o->kind == SCENARIO_OUTCOME_NO_DUPLICATES ? 1 : (unsigned long)o->count;
        if (tally(run, NULL, 1, &t) < 0)
            return 0;
        if (t.max_copies > limit) {
            char id[160];
            inject_message_id(run->seq, run->r->run_id, t.worst_index, id, sizeof id);
            snprintf(det, sizeof det, "message %s was accepted %lu times", id, t.max_copies);
            judge(run, s, VERDICT_PASS, 0, what, det);
        } else {
            snprintf(det, sizeof det, "%lu messages delivered, none more than %lu time%s",
                     t.distinct, limit, limit == 1 ? "" : "s");
            judge(run, s, VERDICT_PASS, 1, what, det);
        }
        return 1;
    }
    case SCENARIO_OUTCOME_CONNECTED:
    case SCENARIO_OUTCOME_NO_CONNECTION: {
        int64_t ft;
        unsigned long fc;
        size_t c = connects(run, o->sink, &ft, &fc);
        int want = o->kind == SCENARIO_OUTCOME_CONNECTED;
        if (c > 0) {
            snprintf(det, sizeof det, "%zu connection(s) to %s", c, o->sink);
            judge(run, s, VERDICT_PASS, want, what, det);
            return 1;
        }
        if (final) {
            snprintf(det, sizeof det, "no connection to %s", o->sink);
            judge(run, s, VERDICT_PASS, !want, what, det);
            return 1;
        }
        return 0;
    }
    case SCENARIO_OUTCOME_TRIED_BEFORE: {
        int64_t t1, t2;
        unsigned long c1, c2;
        size_t n1 = connects(run, o->sink, &t1, &c1);
        size_t n2 = connects(run, o->sink2, &t2, &c2);
        if (n1 == 0)
            snprintf(det, sizeof det, "%s was never tried", o->sink);
        else if (n2 == 0)
            snprintf(det, sizeof det, "%s tried; %s never", o->sink, o->sink2);
        else
            snprintf(det, sizeof det, "first connection to %s #%lu, to %s #%lu", o->sink, c1,
                     o->sink2, c2);
        int ok = n1 > 0 && (n2 == 0 || t1 < t2 || (t1 == t2 && c1 < c2));
        judge(run, s, VERDICT_PASS, ok, what, det);
        return 1;
    }
    default:
        return 1;
    }
}

static void outcome_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sc_run *run = arg;
    int final = now_ms() >= run->op_deadline;
    if (outcome_poll(run, final)) {
        run->op = OP_NONE;
        sc_kick(run);
        return;
    }
    int64_t left = run->op_deadline - now_ms();
    timer_set(run->timer, (unsigned long long)(left < POLL_MS ? (left > 0 ? left : 0) : POLL_MS));
}

static void queue_list_done(struct target_cmd *c, int ok, const char *output, const char *why,
                            void *arg)
{
    struct sc_run *run = arg;
    const struct scenario_step *s = run->cur;
    char what[300], det[600];
    outcome_what(s, what, sizeof what);
    run->cmd = NULL;
    if (!ok) {
        sc_error(run, s, "queue_list: %s", why);
    } else {
        /* Count the lines that hold a recipient address at this scenario's node
         * ("@node", case-insensitive, not followed by more domain characters). Lines that
         * start with '(' are a queue listing's reasons (Postfix: "(host mx1.node said:
         * 450 ...)") and name the node without being an entry. */
        unsigned long lines = 0;
        size_t nl = strlen(run->node);
        for (const char *p = output; *p;) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            size_t lead = 0;
            while (lead < len && (p[lead] == ' ' || p[lead] == '\t'))
                lead++;
            for (size_t i = 1; lead < len && p[lead] != '(' && i + nl <= len; i++) {
                if (p[i - 1] != '@' || str_ncasecmp(p + i, run->node, nl) != 0)
                    continue;
                char after = i + nl < len ? p[i + nl] : '\0';
                if (isalnum((unsigned char)after) || after == '.' || after == '-')
                    continue;
                lines++;
                break;
            }
            p = e ? e + 1 : p + len;
        }
        unsigned long want = s->outcome.count < 0 ? run->queued : (unsigned long)s->outcome.count;
        snprintf(det, sizeof det, "%lu queue entr%s for %s (expected %lu)", lines,
                 lines == 1 ? "y" : "ies", run->node, want);
        judge(run, s, VERDICT_PASS, lines == want, what, det);
    }
    target_cmd_free(c);
    run->op = OP_NONE;
    sc_kick(run);
}

static void alive_done(struct dialogue *d, void *arg)
{
    struct sc_run *run = arg;
    const struct scenario_step *s = run->cur;
    char what[300], det[600];
    outcome_what(s, what, sizeof what);
    unsigned f = dialogue_failures(d);
    if (f == 0)
        snprintf(det, sizeof det, "a new session got 220, NOOP 250 and QUIT 221");
    else
        snprintf(det, sizeof det, "%.500s", dialogue_first_failure(d));
    judge(run, s, VERDICT_PASS, f == 0, what, det);
    dialogue_free(d);
    free(run->dialogues);
    run->dialogues = NULL;
    run->ndialogues = 0;
    run->op = OP_NONE;
    sc_kick(run);
}

static struct dialogue_env make_env(struct sc_run *run, const char *source)
{
    struct runner *r = run->r;
    struct dialogue_env env = {
        .base = r->base,
        .tls = r->tls,
        .target = (struct sockaddr *)&r->p->target_addr.ss,
        .target_len = r->p->target_addr.len,
        .source = source,
        .step_timeout_ms = r->p->step_timeout_ms,
        .pcap = run->pcap,
        .lookup = lookup,
        .lookup_arg = run,
        .sc = run->sc,
        .res = &run->res,
        .t0_ms = run->t0,
    };
    return env;
}

static void start_outcome(struct sc_run *run, const struct scenario_step *s)
{
    const struct scenario_outcome *o = &s->outcome;
    struct target_profile *p = run->r->p;
    struct etrn_err err;
    run->cur = s;
    switch (o->kind) {
    case SCENARIO_OUTCOME_STILL_QUEUED: {
        if (p->queue_list == NULL) {
            char what[300];
            outcome_what(s, what, sizeof what);
            char *const *reqs = s->check.nreqs ? s->check.reqs : run->sc->cites;
            size_t n = s->check.nreqs ? s->check.nreqs : run->sc->ncites;
            scenario_result_add_check(&run->res, VERDICT_SKIP, reqs, n, s->file, s->line, what,
                                      "the profile gives no queue_list command");
            tnote(run, "SKIP: %s: no queue_list command", what);
            return;
        }
        if (target_cmd_start(&run->cmd, run->r->base, p, p->queue_list, p->step_timeout_ms,
                             queue_list_done, run, &err) < 0) {
            sc_error(run, s, "queue_list: %s", err.msg);
            return;
        }
        run->op = OP_QUEUE_LIST;
        return;
    }
    case SCENARIO_OUTCOME_TARGET_ALIVE: {
        struct dialogue_env env = make_env(run, p->source);
        env.quiet = 1;
        env.line = s->line;
        if (o->within_ms)
            env.step_timeout_ms = o->within_ms;
        run->dialogues = calloc(1, sizeof *run->dialogues);
        if (run->dialogues == NULL) {
            sc_error(run, s, "out of memory");
            return;
        }
        const struct scenario_step *cl = &run->r->alive.steps[0];
        if (dialogue_start(&run->dialogues[0], &env, "alive", cl->children, cl->nchildren,
                           alive_done, run, &err) < 0) {
            sc_error(run, s, "target alive: %s", err.msg);
            return;
        }
        run->ndialogues = 1;
        run->op = OP_ALIVE;
        return;
    }
    default:
        break;
    }
    unsigned long long within = o->within_ms;
    if (within == 0)
        within = (o->kind == SCENARIO_OUTCOME_DELIVERED || o->kind == SCENARIO_OUTCOME_CONNECTED)
                     ? p->flush_timeout_ms
                     : p->quiet_timeout_ms;
    run->op_count = o->count < 0 ? run->queued : (unsigned long)o->count;
    run->op_deadline = now_ms() + (int64_t)within;
    if (outcome_poll(run, 0))
        return;
    run->op = OP_OUTCOME;
    event_assign(run->timer, run->r->base, -1, 0, outcome_timer_cb, run);
    timer_set(run->timer, POLL_MS);
}

/* ---- other asynchronous steps ----------------------------------------------------------- */

static void wait_done_cb(evutil_socket_t fd, short what, void *arg);

static void inject_done(struct inject *ij, int ok, const char *why, void *arg)
{
    struct sc_run *run = arg;
    const struct scenario_step *s = run->cur;
    unsigned long got = inject_accepted(ij);
    if (ok) {
        tnote(run, "queued %lu message(s) (ids m%lu..m%lu)", got, run->queued,
              run->queued + got - 1);
    } else {
        sc_error(run, s, "%s", why);
    }
    run->queued += got;
    inject_free(ij);
    run->inject = NULL;
    unsigned long long settle = run->r->p->queue_settle_ms;
    if (ok && settle > 0) {
        /* the profile's queue_settle: the same as a `wait` step after the injection */
        run->op = OP_WAIT;
        event_assign(run->timer, run->r->base, -1, 0, wait_done_cb, run);
        timer_set(run->timer, settle);
        tnote(run, "queue_settle %llums", settle);
        return;
    }
    run->op = OP_NONE;
    sc_kick(run);
}

static void start_queue(struct sc_run *run, const struct scenario_step *s)
{
    struct strbuf to, from;
    strbuf_init(&to, 65536);
    strbuf_init(&from, 4096);
    struct etrn_err err;
    char **rcpts = NULL;
    size_t n = 0;
    run->cur = s;
    if (scenario_expand(s->queue.to, lookup, run, &to, &err) < 0 ||
        (s->queue.from && scenario_expand(s->queue.from, lookup, run, &from, &err) < 0)) {
        sc_error(run, s, "%s", err.msg);
        goto out;
    }
    if (config_split_list(to.data, &rcpts, &n) < 0 || n == 0) {
        sc_error(run, s, "queue: no recipients in '%s'", to.data);
        goto out;
    }
    struct inject_spec spec = {
        .base = run->r->base,
        .target = (struct sockaddr *)&run->r->p->target_addr.ss,
        .target_len = run->r->p->target_addr.len,
        .source = run->r->p->source,
        .ehlo_name = run->r->p->ehlo_name,
        .from = s->queue.from ? from.data : DEFAULT_SENDER,
        .rcpts = rcpts,
        .nrcpts = n,
        .count = s->queue.count,
        .first_index = run->queued,
        .size = s->queue.size,
        .seq = run->seq,
        .run = run->r->run_id,
        .timeout_ms = run->r->p->step_timeout_ms,
        .pcap = run->pcap,
    };
    tnote(run, "queue %lu to %s", s->queue.count, to.data);
    if (inject_start(&run->inject, &spec, inject_done, run, &err) < 0) {
        sc_error(run, s, "%s", err.msg);
        goto out;
    }
    run->op = OP_INJECT;
out:
    for (size_t i = 0; i < n; i++)
        free(rcpts[i]);
    free(rcpts);
    strbuf_free(&to);
    strbuf_free(&from);
}

static void client_done(struct dialogue *d, void *arg)
{
    struct sc_run *run = arg;
    if (dialogue_connect_failed(d))
        sc_error(run, run->cur, "%s", dialogue_first_failure(d));
    run->ndone++;
    if (run->ndone < run->ndialogues)
        return;
    for (size_t i = 0; i < run->ndialogues; i++)
        dialogue_free(run->dialogues[i]);
    free(run->dialogues);
    run->dialogues = NULL;
    run->ndialogues = 0;
    run->op = OP_NONE;
    sc_kick(run);
}

static void start_client(struct sc_run *run, const struct scenario_step *s)
{
    struct etrn_err err;
    struct strbuf from;
    strbuf_init(&from, 256);
    run->cur = s;
    if (s->client.from && scenario_expand(s->client.from, lookup, run, &from, &err) < 0) {
        sc_error(run, s, "%s", err.msg);
        strbuf_free(&from);
        return;
    }
    struct dialogue_env env = make_env(run, s->client.from ? from.data : run->r->p->source);
    env.line = s->line;
    struct netaddr to;
    if (s->client.to) {
        struct strbuf tt;
        strbuf_init(&tt, 256);
        int bad = scenario_expand(s->client.to, lookup, run, &tt, &err) < 0 ||
                  netaddr_parse(tt.data, 25, &to, &err) < 0;
        strbuf_free(&tt);
        if (bad) {
            sc_error(run, s, "client to: %s", err.msg);
            strbuf_free(&from);
            return;
        }
        env.target = (struct sockaddr *)&to.ss;
        env.target_len = to.len;
    }
    unsigned long copies = s->client.copies;
    run->dialogues = calloc(copies, sizeof *run->dialogues);
    run->ndone = 0;
    if (run->dialogues == NULL) {
        sc_error(run, s, "out of memory");
        strbuf_free(&from);
        return;
    }
    run->op = OP_CLIENTS;
    run->ndialogues = 0;
    for (unsigned long i = 0; i < copies; i++) {
        char label[64];
        const char *name = s->client.name ? s->client.name : "c";
        if (copies > 1)
            snprintf(label, sizeof label, "%s#%lu", name, i + 1);
        else
            snprintf(label, sizeof label, "%s", name);
        if (dialogue_start(&run->dialogues[i], &env, label, s->children, s->nchildren,
                           client_done, run, &err) < 0) {
            sc_error(run, s, "client: %s", err.msg);
            break;
        }
        run->ndialogues++;
    }
    strbuf_free(&from);
    if (run->ndialogues == 0) {
        free(run->dialogues);
        run->dialogues = NULL;
        run->op = OP_NONE;
    }
}

static void hostile_done(struct misbehave_result *mr, void *arg)
{
    struct sc_run *run = arg;
    tnote(run, "hostile %s: %s, sent %zu bytes, %zu replies (%zu malformed), greeting %d, "
               "server %s, %lldms",
          run->cur->hostile.kind, mr->connected ? "connected" : "could not connect",
          mr->bytes_sent, mr->nreplies, mr->malformed, mr->greeting_code,
          mr->server_reset ? "reset the connection"
          : mr->server_closed ? "closed the connection"
          : mr->timed_out ? "still talking at the time limit" : "kept the connection open",
          (long long)mr->elapsed_ms);
    if (mr->nreplies) {
        struct strbuf sb;
        strbuf_init(&sb, 2048);
        size_t k = mr->nreplies < 40 ? mr->nreplies : 40;
        for (size_t i = 0; i < k && i < MISBEHAVE_CODES_MAX; i++)
            strbuf_appendf(&sb, "%s%d", i ? " " : "", mr->codes[i]);
        tnote(run, "hostile reply codes: %s%s", sb.data, mr->nreplies > k ? " ..." : "");
        strbuf_free(&sb);
    }
    run->hostile = NULL;   /* the run frees itself after the callback */
    run->op = OP_NONE;
    sc_kick(run);
}

static void start_hostile(struct sc_run *run, const struct scenario_step *s)
{
    struct misbehave_spec spec;
    struct etrn_err err;
    misbehave_spec_default(&spec);
    run->cur = s;
    if (misbehave_kind_parse(s->hostile.kind, &spec.kind, &err) < 0) {
        sc_error(run, s, "%s", err.msg);
        return;
    }
    struct strbuf exp, script, from;
    strbuf_init(&exp, SCENARIO_EXPAND_MAX + 1);
    strbuf_init(&script, SCENARIO_EXPAND_MAX + 4);
    strbuf_init(&from, 256);
    const char *text = s->hostile.script ? s->hostile.script : "NOOP";
    struct netaddr src;
    if (scenario_expand(text, lookup, run, &exp, &err) < 0 ||
        scenario_unescape(exp.data, &script, &err) < 0 ||
        (s->hostile.from && scenario_expand(s->hostile.from, lookup, run, &from, &err) < 0) ||
        netaddr_parse(s->hostile.from ? from.data : run->r->p->source, 0, &src, &err) < 0) {
        sc_error(run, s, "%s", err.msg);
        goto out;
    }
    if (script.len < 2 || strcmp(script.data + script.len - 2, "\r\n") != 0)
        strbuf_append(&script, "\r\n", 2);
    spec.target = (struct sockaddr *)&run->r->p->target_addr.ss;
    spec.target_len = run->r->p->target_addr.len;
    spec.source = (struct sockaddr *)&src.ss;
    spec.source_len = src.len;
    spec.script = script.data;
    if (s->hostile.count)
        spec.count = (unsigned)s->hostile.count;
    if (s->hostile.interval_ms)
        spec.interval_ms = (unsigned)s->hostile.interval_ms;
    spec.timeout_ms = (unsigned)run->r->p->step_timeout_ms * 2;
    spec.pcap = run->pcap;
    tnote(run, "hostile %s count %u", s->hostile.kind, spec.count);
    if (misbehave_start(&run->hostile, run->r->base, &spec, hostile_done, run, &err) < 0) {
        sc_error(run, s, "hostile: %s", err.msg);
        goto out;
    }
    run->op = OP_HOSTILE;
out:
    strbuf_free(&exp);
    strbuf_free(&script);
    strbuf_free(&from);
}

static void wait_done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sc_run *run = arg;
    run->op = OP_NONE;
    sc_kick(run);
}

static void at_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct at_ev *a = arg;
    struct sc_run *run = a->run;
    struct etrn_err err;
    struct sim_world *target = strncmp(a->argv[0], "dns", 3) == 0 ? run->r->shared : run->world;
    if (sim_world_apply(target, a->argv, a->argc, &err) < 0) {
        if (!run->error[0])
            snprintf(run->error, sizeof run->error, "%s:%d: at: %.400s", run->sc->file,
                     a->line, err.msg);
        tnote(run, "ERROR: at line %d: %s", a->line, err.msg);
        return;
    }
    struct strbuf line;
    strbuf_init(&line, 2048);
    for (int i = 0; i < a->argc; i++)
        strbuf_appendf(&line, "%s%s", i ? " " : "", a->argv[i]);
    tnote(run, "at (line %d): %s", a->line, line.data);
    strbuf_free(&line);
}

static void start_at(struct sc_run *run, const struct scenario_step *s)
{
    struct etrn_err err;
    struct at_ev *a = calloc(1, sizeof *a);
    int argc = s->argc - 2;
    if (a == NULL || (a->argv = calloc((size_t)argc + 1, sizeof *a->argv)) == NULL) {
        free(a);
        sc_error(run, s, "out of memory");
        return;
    }
    if (expand_words(run, s->argv + 2, argc, a->argv, &err) < 0) {
        free(a->argv);
        free(a);
        sc_error(run, s, "%s", err.msg);
        return;
    }
    a->argc = argc;
    a->run = run;
    a->line = s->line;
    a->ev = evtimer_new(run->r->base, at_fire, a);
    a->next = run->ats;
    run->ats = a;
    if (a->ev == NULL) {
        sc_error(run, s, "out of memory");
        return;
    }
    timer_set(a->ev, s->duration_ms);
}

/* ---- the cursor ----------------------------------------------------------------------- */

static void advance(struct sc_run *run)
{
    struct etrn_err err;
    while (!run->finished && run->op == OP_NONE) {
        if (run->error[0] || run->r->interrupted || run->step >= run->sc->nsteps) {
            sc_finish(run);
            return;
        }
        const struct scenario_step *s = &run->sc->steps[run->step++];
        switch (s->kind) {
        case SCENARIO_STEP_WORLD:
            if (strcmp(s->argv[0], "sink") == 0 || strcmp(s->argv[0], "external") == 0)
                break;   /* applied at the start */
            if (apply_world(run, s->argv, s->argc, &err) < 0)
                sc_error(run, s, "%s", err.msg);
            break;
        case SCENARIO_STEP_AT:
            start_at(run, s);
            break;
        case SCENARIO_STEP_QUEUE:
            start_queue(run, s);
            break;
        case SCENARIO_STEP_WAIT:
            run->op = OP_WAIT;
            event_assign(run->timer, run->r->base, -1, 0, wait_done_cb, run);
            timer_set(run->timer, s->duration_ms);
            tnote(run, "wait %llums", s->duration_ms);
            break;
        case SCENARIO_STEP_CLIENT:
            start_client(run, s);
            break;
        case SCENARIO_STEP_HOSTILE:
            start_hostile(run, s);
            break;
        case SCENARIO_STEP_OUTCOME:
            start_outcome(run, s);
            break;
        default:
            sc_error(run, s, "'%s' cannot run at the top level", scenario_step_kind_name(s->kind));
            break;
        }
    }
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    advance(arg);
}

static void sc_kick(struct sc_run *run)
{
    event_active(run->kick, EV_TIMEOUT, 0);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sc_run *run = arg;
    const struct scenario_step *s = run->step > 0 ? &run->sc->steps[run->step - 1] : NULL;
    unsigned long long t = run->sc->timeout_ms ? run->sc->timeout_ms : run->r->p->scenario_timeout_ms;
    sc_error(run, s, "the scenario did not finish within %.0fs (waiting in this step)",
             (double)t / 1000.0);
    sc_finish(run);
}

/* ---- start and finish ----------------------------------------------------------------- */

static void sc_cleanup(struct sc_run *run)
{
    if (run->inject)
        inject_free(run->inject);
    for (size_t i = 0; i < run->ndialogues; i++)
        dialogue_free(run->dialogues[i]);
    free(run->dialogues);
    if (run->hostile)
        misbehave_cancel(run->hostile);
    if (run->cmd)
        target_cmd_free(run->cmd);
    while (run->ats) {
        struct at_ev *a = run->ats;
        run->ats = a->next;
        if (a->ev)
            event_free(a->ev);
        free_words(a->argv, a->argc);
        free(a->argv);
        free(a);
    }
    if (run->timer)
        event_free(run->timer);
    if (run->kick)
        event_free(run->kick);
    if (run->deadline)
        event_free(run->deadline);
    if (run->world)
        sim_world_free(run->world);
    if (run->pcap)
        pcap_writer_close(run->pcap);
}

static void sc_finish(struct sc_run *run)
{
    if (run->finished)
        return;
    run->finished = 1;
    struct runner *r = run->r;
    run->res.duration_ms = now_ms() - run->t0;
    if (r->interrupted && !run->error[0])
        snprintf(run->error, sizeof run->error, "interrupted");
    if (run->error[0])
        scenario_result_set_final(&run->res, VERDICT_ERROR, run->error);
    scenario_result_finish(&run->res);
    tnote(run, "verdict %s%s%s", verdict_name(run->res.verdict), run->res.reason ? ": " : "",
          run->res.reason ? run->res.reason : "");
    sc_cleanup(run);
    /* unlink from the active list */
    for (struct sc_run **pp = &r->active; *pp; pp = &(*pp)->next_active)
        if (*pp == run) {
            *pp = run->next_active;
            break;
        }
    r->running--;
    r->done++;
    if (r->proc && !r->target_gone && target_has_exited(r->proc)) {
        /* Every later scenario would only fail to connect: say why, once. */
        r->target_gone = 1;
        char note[600], tail[400];
        target_log_tail(r->p, tail, sizeof tail);
        int st = r->proc->status;
        snprintf(note, sizeof note, "the target exited during the run (%s %d, after %s): %s",
                 WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                 run->sc->id, tail[0] ? tail : "no output");
        free(r->out->note);
        r->out->note = strdup(note);
    }
    if (r->o->on_done)
        r->o->on_done(&run->res, r->done, r->n, r->o->progress_arg);
    run_results_add(r->out, &run->res);
    free(run);
    schedule(r);
}

static int sc_setup_world(struct sc_run *run)
{
    struct runner *r = run->r;
    struct etrn_err err;
    struct sim_world_options wo;
    sim_world_options_default(&wo);
    wo.dns_listen = NULL;
    wo.sink_port = r->p->sink_port;
    uint32_t first = (127u << 24) | (1u << 16) | (run->seq * 16u + 1u);
    struct in_addr ia = {htonl(first)};
    inet_ntop(AF_INET, &ia, run->pool_first, sizeof run->pool_first);
    wo.sink_addr_first = run->pool_first;
    wo.sink_addr_count = RUNNER_POOL_SIZE;
    if (sim_world_new(&run->world, r->base, &wo, &err) < 0) {
        sc_error(run, NULL, "world: %s", err.msg);
        return -1;
    }
    if (r->o->pcap_dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.pcap", r->o->pcap_dir, run->sc->id);
        if (pcap_writer_open(&run->pcap, path, &err) < 0) {
            sc_error(run, NULL, "capture: %s", err.msg);
            return -1;
        }
        run->res.pcap = strdup(path);
    }
    /* Declarations first, wherever they are written, so $sink1 works everywhere. */
    for (size_t i = 0; i < run->sc->nsteps; i++) {
        const struct scenario_step *s = &run->sc->steps[i];
        if (s->kind != SCENARIO_STEP_WORLD ||
            (strcmp(s->argv[0], "sink") != 0 && strcmp(s->argv[0], "external") != 0))
            continue;
        if (apply_world(run, s->argv, s->argc, &err) < 0) {
            sc_error(run, s, "%s", err.msg);
            return -1;
        }
        if (run->pcap) {
            struct link *l = sim_world_link(run->world, s->argv[1]);
            if (l)
                link_set_pcap(l, run->pcap);
        }
    }
    return 0;
}

static void sc_start(struct runner *r, size_t i)
{
    struct sc_run *run = calloc(1, sizeof *run);
    const struct scenario *sc = &r->scs[i];
    if (run == NULL || scenario_result_init(&run->res, sc) < 0) {
        free(run);
        r->done++;
        return;
    }
    run->r = r;
    run->sc = sc;
    run->seq = r->seq ? r->seq[i] : (unsigned)(i + 1);
    run->t0 = now_ms();
    snprintf(run->seqtext, sizeof run->seqtext, "%u", run->seq);
    snprintf(run->node, sizeof run->node, "s%u-%s.%s", run->seq, r->run_id, r->p->node_suffix);
    snprintf(run->foreign, sizeof run->foreign, "s%u-%s.%s", run->seq, r->run_id,
             r->p->foreign_suffix);
    snprintf(run->locked, sizeof run->locked, "s%u-%s.%s", run->seq, r->run_id,
             r->p->locked_suffix ? r->p->locked_suffix : "invalid");
    snprintf(run->NODE, sizeof run->NODE, "%s", run->node);
    for (char *c = run->NODE; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 32);
    run->res.node = strdup(run->node);
    run->next_active = r->active;
    r->active = run;
    r->running++;
    if (r->o->on_start)
        r->o->on_start(sc, r->o->progress_arg);
    run->timer = evtimer_new(r->base, wait_done_cb, run);
    run->kick = event_new(r->base, -1, 0, kick_cb, run);
    run->deadline = evtimer_new(r->base, deadline_cb, run);
    if (!run->timer || !run->kick || !run->deadline) {
        sc_error(run, NULL, "out of memory");
        sc_finish(run);
        return;
    }
    tnote(run, "scenario %s (%s) node %s", sc->id, sc->file, run->node);
    char why[200];
    if (runner_skip_reason(r->p, sc, why, sizeof why)) {
        scenario_result_set_final(&run->res, VERDICT_SKIP, why);
        tnote(run, "SKIP: %s", why);
        sc_finish(run);   /* no world was built */
        return;
    }
    timer_set(run->deadline, sc->timeout_ms ? sc->timeout_ms : r->p->scenario_timeout_ms);
    if (sc_setup_world(run) < 0) {
        sc_finish(run);
        return;
    }
    sc_kick(run);
}

static void schedule(struct runner *r)
{
    while (!r->interrupted && r->next < r->n && r->running < (r->o->jobs ? r->o->jobs : 1))
        sc_start(r, r->next++);
    if (r->running == 0 && (r->next >= r->n || r->interrupted))
        event_base_loopbreak(r->base);
}

static void signal_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct runner *r = arg;
    if (r->interrupted) {
        event_base_loopbreak(r->base);
        return;
    }
    r->interrupted = 1;
    /* end every running scenario now */
    while (r->active)
        sc_finish(r->active);
}

/* ---- the whole run --------------------------------------------------------------------- */

static const char alive_text[] =
    "scenario runner.target-alive\ntitle built-in\ncites R5321-3.8\nlevel MUST\n"
    "client alive\n expect 220\n send NOOP\n expect 250\n send QUIT\n expect 221\nend\n";

int runner_run(const struct runner_options *o, const struct scenario *scs, const unsigned *seq,
               size_t n, struct run_results *out, struct etrn_err *err)
{
    struct runner r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.p = o->profile;
    r.scs = scs;
    r.seq = seq;
    r.n = n;
    r.out = out;
    int rc = -1;
    struct target_proc proc;
    target_proc_init(&proc);
    int started = 0;

    for (size_t i = 0; i < n; i++)
        if ((seq ? seq[i] : i + 1) >= RUNNER_SEQ_MAX)
            return err_set(err, "more than %d scenarios", RUNNER_SEQ_MAX - 1);
    if (o->run_id)
        snprintf(r.run_id, sizeof r.run_id, "%s", o->run_id);
    else
        snprintf(r.run_id, sizeof r.run_id, "%04x",
                 (unsigned)((getpid() * 2654435761u) ^ (unsigned)time(NULL)) & 0xffff);
    if (scenario_parse_string(&r.alive, "built-in", alive_text, err) < 0)
        return -1;
    free(out->run_id);
    out->run_id = strdup(r.run_id);
    free(out->target);
    out->target = strdup(r.p->target);
    free(out->profile);
    out->profile = strdup(r.p->name ? r.p->name : "");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    out->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t t_start = now_ms();

    r.base = event_base_new();
    r.tls = SSL_CTX_new(TLS_client_method());
    if (r.base == NULL || r.tls == NULL) {
        err_set(err, "cannot create the event loop or the TLS context");
        goto out;
    }
    SSL_CTX_set_verify(r.tls, SSL_VERIFY_NONE, NULL);

    struct sim_world_options wo;
    sim_world_options_default(&wo);
    wo.dns_listen = r.p->dns_listen;
    wo.sink_port = r.p->sink_port;
    wo.sink_addr_first = r.p->source;
    wo.sink_addr_count = 1;
    if (sim_world_new(&r.shared, r.base, &wo, err) < 0) {
        err_prefix(err, "simulator DNS on %s", r.p->dns_listen);
        goto out;
    }
    const char *dns = sim_world_dns_addr(r.shared);
    free(r.p->dns_addr);
    r.p->dns_addr = strdup(dns ? dns : r.p->dns_listen);
    char *req[] = {"sink", "requester"};
    if (sim_world_apply(r.shared, req, 2, err) < 0) {
        err_prefix(err, "the requester's sink on %s port %d", r.p->source, r.p->sink_port);
        goto out;
    }

    if (!o->no_start) {
        if (target_write_config(r.p, err) < 0)
            goto out;
        if (target_start(r.p, &proc, err) < 0)
            goto out;
        started = proc.pid > 0;
        if (started)
            r.proc = &proc;
        if (r.p->start && target_wait_ready(r.p, &proc, err) < 0)
            goto out;
        if (r.p->reset && target_run(r.p, r.p->reset, r.p->start_timeout_ms, NULL, err) < 0) {
            err_prefix(err, "reset");
            goto out;
        }
    }

    r.sigint = evsignal_new(r.base, SIGINT, signal_cb, &r);
    r.sigterm = evsignal_new(r.base, SIGTERM, signal_cb, &r);
    if (r.sigint)
        event_add(r.sigint, NULL);
    if (r.sigterm)
        event_add(r.sigterm, NULL);
    schedule(&r);
    if (r.running > 0)
        event_base_dispatch(r.base);
    while (r.active)   /* a second signal broke the loop: close what is left */
        sc_finish(r.active);
    rc = 0;
out:
    if (!o->no_start && (started || r.p->stop))
        target_stop(r.p, &proc);
    if (r.sigint)
        event_free(r.sigint);
    if (r.sigterm)
        event_free(r.sigterm);
    if (r.shared)
        sim_world_free(r.shared);
    if (r.tls)
        SSL_CTX_free(r.tls);
    if (r.base)
        event_base_free(r.base);
    scenario_free(&r.alive);
    out->wall_ms = now_ms() - t_start;
    return rc;
}
