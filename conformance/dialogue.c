/* dialogue.c — one SMTP client session of a scenario, driven by its `client` steps.
 *
 *   dialogue_start(&d, &env, "c1", steps, n, on_done, arg, &err);
 *   (the event loop runs; on_done(d, arg) once)  dialogue_free(d);
 *
 * Structure: a pump loop executes steps until one has to wait (for a reply, a close,
 * silence, a timer or the TLS handshake); libevent callbacks only record what happened
 * and call the pump again, so no callback recurses into another. Every wait has a timer.
 * Guarantees: see dialogue.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "dialogue.h"
#include "fileio.h"
#include "netaddr.h"
#include "smtp_reply.h"

#define DIALOGUE_DEPTH_MAX 8
#define DIALOGUE_FIFO_MAX 200000        /* commands sent but not yet answered */
#define DIALOGUE_SEND_MAX (8u * 1024 * 1024)

enum wait_kind {
    WAIT_NONE, WAIT_CONNECT, WAIT_REPLY, WAIT_TLS_REPLY, WAIT_TLS_HANDSHAKE, WAIT_CLOSE,
    WAIT_SILENCE, WAIT_SLEEP, WAIT_DRAIN
};

struct frame {
    const struct scenario_step *steps;
    size_t n, idx;
    unsigned long left;          /* passes still to run (repeat) */
};

struct dialogue {
    struct dialogue_env env;
    char label[64];
    dialogue_done_cb cb;
    void *cb_arg;
    struct frame frames[DIALOGUE_DEPTH_MAX];
    int depth;

    struct bufferevent *bev;
    struct event *timer;
    struct event *done_ev;
    enum wait_kind wait;
    const struct scenario_step *cur;
    unsigned long times_left;
    int times_failed;            /* a reply of `expect ... times N` did not match */
    char times_detail[512];
    int timed_out, closed, tls_ok, tls_failed, pumping, repump, finished, aborted;
    int connect_failed;
    int64_t wait_started;
    struct smtp_reply reply;

    /* automatic checks */
    unsigned long nreplies;
    char malformed[300], long_line[300], bare_lf[300], enh_bad[300], enh_missing[300];
    int enh_advertised;
    unsigned long enh_checked;
    int in_data;

    /* commands sent and not yet answered (verbs), a ring */
    char (*fifo)[16];
    size_t fifo_head, fifo_n, fifo_cap;

    unsigned failures;
    char first_failure[ETRN_ERR_MAX];
    struct pcap_tcp_flow *flow;
    struct sockaddr_storage local;
};

int64_t dialogue_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dialogue_escape(const char *p, size_t n, struct strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            strbuf_append_str(out, "\\r");
        else if (c == '\n')
            strbuf_append_str(out, "\\n");
        else if (c == '\t')
            strbuf_append_str(out, "\\t");
        else if (c < 0x20 || c >= 0x7f)
            strbuf_appendf(out, "\\x%02x", c);
        else
            strbuf_append(out, &p[i], 1);
    }
}

static void pump(struct dialogue *d);

/* ---- transcript and results ------------------------------------------------------------ */

static void tlog(struct dialogue *d, const char *dir, const char *p, size_t n)
{
    if (d->env.quiet || d->env.res == NULL)
        return;
    struct strbuf sb;
    strbuf_init(&sb, 4096);
    dialogue_escape(p, n, &sb);
    int64_t t = dialogue_now_ms() - d->env.t0_ms;
    scenario_result_log(d->env.res, "[%4lld.%03lld] %s %s %s", (long long)(t / 1000),
                        (long long)(t % 1000), d->label, dir, sb.data);
    strbuf_free(&sb);
}

static void tnote(struct dialogue *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tnote(struct dialogue *d, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tlog(d, "--", msg, strlen(msg));
}

static void note_failure(struct dialogue *d, const char *detail)
{
    d->failures++;
    if (d->first_failure[0] == '\0')
        snprintf(d->first_failure, sizeof d->first_failure, "%.500s", detail);
}

/* Records a written check's result at its level (or the scenario's). */
/* Records a check. A step's `else LEVEL [REQ...]` judges its conditions on a reply; with
 * no_reply set (the target never answered, or closed first) there was nothing to judge
 * them on, so the failure counts at least at the scenario's level: `expect 250
 * with-keyword PIPELINING else INFO` is INFO for a missing keyword, not for silence. */
static void judge_as(struct dialogue *d, const struct scenario_step *s, int ok, int no_reply,
                     const char *what, const char *detail)
{
    const struct scenario *sc = d->env.sc;
    const struct scenario_check *c = &s->check;
    int use_else = c->level && !(no_reply && c->level > sc->level);   /* MUST < ... < INFO */
    enum scenario_level lv = use_else ? c->level : sc->level;
    char *const *reqs = use_else && c->nreqs ? c->reqs : sc->cites;
    size_t nreqs = use_else && c->nreqs ? c->nreqs : sc->ncites;
    enum verdict v = ok ? VERDICT_PASS : verdict_for_level(lv);
    char full[600];
    snprintf(full, sizeof full, "%s (%s)", what, d->label);
    if (!ok) {
        note_failure(d, detail);
        tnote(d, "%s: %s: %s", verdict_name(v), what, detail);
    }
    if (d->env.quiet || d->env.res == NULL)
        return;
    scenario_result_add_check(d->env.res, v, reqs, nreqs, s->file, s->line, full, detail);
}

static void judge(struct dialogue *d, const struct scenario_step *s, int ok, const char *what,
                  const char *detail)
{
    judge_as(d, s, ok, 0, what, detail);
}

static void record_observation(struct dialogue *d, const struct scenario_step *s,
                               const char *what, const char *observed)
{
    const struct scenario *sc = d->env.sc;
    const struct scenario_check *c = &s->check;
    if (c->record == SCENARIO_LEVEL_NONE || d->env.quiet || d->env.res == NULL)
        return;
    char *const *reqs = c->nrecord_reqs ? c->record_reqs : c->nreqs ? c->reqs : sc->cites;
    size_t n = c->nrecord_reqs ? c->nrecord_reqs : c->nreqs ? c->nreqs : sc->ncites;
    char full[600], det[600];
    snprintf(full, sizeof full, "%s (%s)", what, d->label);
    snprintf(det, sizeof det, "observed: %s", observed);
    scenario_result_add_check(d->env.res, verdict_for_level(c->record), reqs, n, s->file,
                              s->line, full, det);
}

static void auto_check(struct dialogue *d, const char *req, const char *req2,
                       enum verdict fail_verdict, const char *what, const char *bad)
{
    if (d->env.quiet || d->env.res == NULL)
        return;
    char *reqs[2] = {(char *)req, (char *)req2};
    size_t n = req2 ? 2 : 1;
    char det[400];
    if (bad[0])
        snprintf(det, sizeof det, "%s", bad);
    else
        snprintf(det, sizeof det, "%lu replies checked", what[0] == 'e' ? d->enh_checked
                                                                         : d->nreplies);
    scenario_result_add_check(d->env.res, bad[0] ? fail_verdict : VERDICT_PASS, reqs, n,
                              d->env.sc ? d->env.sc->file : "", d->env.line, what, det);
}

/* ---- the command FIFO (which command a reply answers) ----------------------------------- */

static void fifo_push(struct dialogue *d, const char *line, size_t len)
{
    if (d->in_data) {
        if (len == 1 && line[0] == '.')
            d->in_data = 0;
        else
            return;
    }
    if (d->fifo_n == DIALOGUE_FIFO_MAX)
        return;
    if (d->fifo_n == d->fifo_cap) {
        size_t nc = d->fifo_cap ? d->fifo_cap * 2 : 64;
        char (*v)[16] = malloc(nc * sizeof *v);
        if (v == NULL)
            return;
        for (size_t i = 0; i < d->fifo_n; i++)
            memcpy(v[i], d->fifo[(d->fifo_head + i) % d->fifo_cap], 16);
        free(d->fifo);
        d->fifo = v;
        d->fifo_head = 0;
        d->fifo_cap = nc;
    }
    char *slot = d->fifo[(d->fifo_head + d->fifo_n) % d->fifo_cap];
    size_t k = 0;
    while (k < len && k < 15 && line[k] != ' ') {
        char c = line[k];
        slot[k++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    slot[k] = '\0';
    d->fifo_n++;
}

static void fifo_pop(struct dialogue *d, char out[16])
{
    out[0] = '\0';
    if (d->fifo_n == 0)
        return;
    memcpy(out, d->fifo[d->fifo_head], 16);
    d->fifo_head = (d->fifo_head + 1) % d->fifo_cap;
    d->fifo_n--;
}

/* Everything sent after DATA up to the final "." is message content, not commands. */
static void fifo_enter_data(struct dialogue *d)
{
    size_t i;
    for (i = 0; i < d->fifo_n; i++)
        if (strcmp(d->fifo[(d->fifo_head + i) % d->fifo_cap], ".") == 0)
            break;
    if (i < d->fifo_n) {
        d->fifo_head = (d->fifo_head + i) % d->fifo_cap;
        d->fifo_n -= i;
    } else {
        d->fifo_n = 0;
        d->in_data = 1;
    }
}

static void fifo_note_sent(struct dialogue *d, const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n') {
            size_t len = i - start;
            if (len > 0 && p[start + len - 1] == '\r')
                len--;
            fifo_push(d, p + start, len);
            start = i + 1;
        }
}

/* ---- timers and waits ------------------------------------------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dialogue *d = arg;
    d->timed_out = 1;
    pump(d);
}

static void wait_begin(struct dialogue *d, enum wait_kind w, unsigned long long ms)
{
    d->wait = w;
    d->timed_out = 0;
    d->wait_started = dialogue_now_ms();
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(d->timer, &tv);
}

static void wait_end(struct dialogue *d)
{
    d->wait = WAIT_NONE;
    d->timed_out = 0;
    evtimer_del(d->timer);
}

static unsigned long long step_within(const struct dialogue *d, const struct scenario_step *s)
{
    if (s->kind == SCENARIO_STEP_EXPECT && s->expect.within_ms)
        return s->expect.within_ms;
    if (s->kind == SCENARIO_STEP_EXPECT_CLOSE && s->duration_ms)
        return s->duration_ms;
    return d->env.step_timeout_ms ? d->env.step_timeout_ms : 10000;
}

/* ---- replies ----------------------------------------------------------------------------- */

static void first_line(const struct smtp_reply *r, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < r->raw.len && k + 1 < n; i++) {
        char c = r->raw.data[i];
        if (c == '\r' || c == '\n')
            break;
        out[k++] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    out[k] = '\0';
    if (r->nlines > 1 && k + 24 < n)
        snprintf(out + k, n - k, " (+%zu lines)", r->nlines - 1);
}

static void check_enhanced(struct dialogue *d, const struct smtp_reply *r, const char *verb)
{
    if (!d->enh_advertised || r->code / 100 == 3)
        return;
    if (strcmp(verb, "EHLO") == 0 || strcmp(verb, "HELO") == 0 || strcmp(verb, "LHLO") == 0 ||
        strcmp(verb, "<GREETING>") == 0)
        return;
    d->enh_checked++;
    char fl[200];
    first_line(r, fl, sizeof fl);
    if (r->enh[0] == '\0') {
        /* A missing code is spec §3-A10 (Postfix's ETRN replies): at most WARN. */
        if (!d->enh_missing[0])
            snprintf(d->enh_missing, sizeof d->enh_missing,
                     "ENHANCEDSTATUSCODES advertised, but no enhanced code in reply to %s: %s",
                     verb[0] ? verb : "?", fl);
        return;
    }
    if (d->enh_bad[0])
        return;
    if (r->enh[0] - '0' != r->code / 100) {
        snprintf(d->enh_bad, sizeof d->enh_bad, "enhanced code class disagrees with %d: %s",
                 r->code, fl);
        return;
    }
    /* R2034-4b: every line carries the same enhanced code. */
    const char *p = r->text.data;
    size_t el = strlen(r->enh);
    while (p) {
        if (strncmp(p, r->enh, el) != 0 || (p[el] != ' ' && p[el] != '\n' && p[el] != '\0')) {
            snprintf(d->enh_bad, sizeof d->enh_bad,
                     "a line of a multi-line reply lacks the enhanced code %s: %s", r->enh, fl);
            return;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
}

/* Bookkeeping every reply gets, whatever step is waiting for it. */
static void reply_seen(struct dialogue *d, const struct smtp_reply *r)
{
    d->nreplies++;
    pcap_tcp_flow_data(d->flow, PCAP_FROM_SERVER, r->raw.data, r->raw.len);
    /* transcript: each line */
    size_t start = 0;
    for (size_t i = 0; i < r->raw.len; i++)
        if (r->raw.data[i] == '\n' || i + 1 == r->raw.len) {
            size_t end = i + 1;
            size_t len = end - start;
            while (len > 0 && (r->raw.data[start + len - 1] == '\n' ||
                               r->raw.data[start + len - 1] == '\r'))
                len--;
            tlog(d, "<", r->raw.data + start, len);
            start = end;
        }
    char fl[200];
    first_line(r, fl, sizeof fl);
    if ((r->flags & SMTP_REPLY_LONG_LINE) && !d->long_line[0])
        snprintf(d->long_line, sizeof d->long_line, "reply line over 512 octets: %.120s", fl);
    if ((r->flags & SMTP_REPLY_BARE_LF) && !d->bare_lf[0])
        snprintf(d->bare_lf, sizeof d->bare_lf, "reply line ended by LF without CR: %.120s", fl);
    char verb[16];
    if (d->nreplies == 1 && d->fifo_n == 0)
        memcpy(verb, "<GREETING>", 11);
    else
        fifo_pop(d, verb);
    if (strcmp(verb, "EHLO") == 0 && r->code == 250)
        d->enh_advertised = smtp_reply_has_keyword(r, "ENHANCEDSTATUSCODES", NULL);
    check_enhanced(d, r, verb);
    if (r->code == 354)
        fifo_enter_data(d);
}

static long first_number(const char *text)
{
    char enh[16];
    size_t skip = smtp_enhanced_code_parse(text, strlen(text), enh);
    for (const char *p = text + skip; *p && *p != '\n'; p++)
        if (*p >= '0' && *p <= '9') {
            long v = 0;
            while (*p >= '0' && *p <= '9' && v < 100000000)
                v = v * 10 + (*p++ - '0');
            return v;
        }
    return -1;
}

/* Returns 1 if r satisfies the expect step; else fills why. */
static int expect_matches(const struct scenario_step *s, const struct smtp_reply *r, char *why,
                          size_t n)
{
    const struct scenario_expect *x = &s->expect;
    char codes[128];
    scenario_codes_format(&x->codes, codes, sizeof codes);
    if (!scenario_codes_match(&x->codes, r->code)) {
        snprintf(why, n, "expected %s", codes);
        return 0;
    }
    for (size_t i = 0; i < x->nwith; i++)
        if (!smtp_reply_has_keyword(r, x->with_keyword[i], NULL)) {
            snprintf(why, n, "EHLO keyword %s not advertised", x->with_keyword[i]);
            return 0;
        }
    for (size_t i = 0; i < x->nwithout; i++)
        if (smtp_reply_has_keyword(r, x->without_keyword[i], NULL)) {
            snprintf(why, n, "EHLO keyword %s advertised", x->without_keyword[i]);
            return 0;
        }
    for (size_t i = 0; i < x->nbare; i++) {
        const char *params = NULL;
        if (!smtp_reply_has_keyword(r, x->bare_keyword[i], &params)) {
            snprintf(why, n, "EHLO keyword %s not advertised", x->bare_keyword[i]);
            return 0;
        }
        if (params && *params && *params != '\n') {
            snprintf(why, n, "EHLO keyword %s has parameters (it takes none)", x->bare_keyword[i]);
            return 0;
        }
    }
    if (x->text_glob && !scenario_glob_match(x->text_glob, r->text.data)) {
        snprintf(why, n, "text does not match '%s'", x->text_glob);
        return 0;
    }
    if (x->queued >= 0) {
        if (r->code == 251 && x->queued != 0) {
            snprintf(why, n, "251 (no messages waiting) but %ld are queued", x->queued);
            return 0;
        }
        if ((r->code == 252 || r->code == 253) && x->queued == 0) {
            snprintf(why, n, "%d (pending messages) but none are queued", r->code);
            return 0;
        }
        if (r->code == 253) {
            long got = first_number(r->text.data);
            if (got != x->queued) {
                if (got < 0)
                    snprintf(why, n, "253 without a message count (%ld queued)", x->queued);
                else
                    snprintf(why, n, "253 says %ld pending, but %ld are queued", got, x->queued);
                return 0;
            }
        }
    }
    if (x->enhanced && (r->enh[0] == '\0' || r->enh[0] - '0' != r->code / 100)) {
        snprintf(why, n, "%s", r->enh[0] ? "enhanced code class disagrees with the reply"
                                         : "no enhanced status code");
        return 0;
    }
    if (x->single_line && r->nlines != 1) {
        snprintf(why, n, "a %zu-line reply (expected one line)", r->nlines);
        return 0;
    }
    return 1;
}

static void expect_what(const struct scenario_step *s, char *out, size_t n)
{
    char codes[128];
    scenario_codes_format(&s->expect.codes, codes, sizeof codes);
    if (s->expect.times > 1)
        snprintf(out, n, "expect %s times %lu", codes, s->expect.times);
    else
        snprintf(out, n, "expect %s", codes);
}

/* A reply while `expect` waits. Returns 1 when the step is complete. */
static int expect_take(struct dialogue *d, const struct smtp_reply *r)
{
    const struct scenario_step *s = d->cur;
    char why[400], fl[300], what[200], det[800];
    first_line(r, fl, sizeof fl);
    expect_what(s, what, sizeof what);
    int ok = expect_matches(s, r, why, sizeof why);
    if (s->expect.times > 1 && r->code == 421 && d->times_left > 1) {
        /* A burst may end in 421: a server may close any session with 421 (RFC 5321
         * §4.3.2, R5321-4.3.2), e.g. an error limit. The replies so far were checked. */
        snprintf(det, sizeof det, "%lu replies, then %.200s (a 421 may end any session)",
                 s->expect.times - d->times_left, fl);
        if (d->times_failed)
            judge(d, s, 0, what, d->times_detail);
        else
            judge(d, s, 1, what, det);
        record_observation(d, s, what, fl);
        d->aborted = 1;   /* the server is closing: the rest of the session cannot run */
        return 1;
    }
    if (s->expect.times > 1) {
        if (!ok && !d->times_failed) {
            d->times_failed = 1;
            snprintf(d->times_detail, sizeof d->times_detail, "reply %lu: got %.200s; %.250s",
                     s->expect.times - d->times_left + 1, fl, why);
        }
        if (--d->times_left > 0)
            return 0;
        judge(d, s, !d->times_failed, what,
              d->times_failed ? d->times_detail : "every reply matched");
        record_observation(d, s, what, fl);
        return 1;
    }
    if (ok)
        snprintf(det, sizeof det, "got %s", fl);
    else
        snprintf(det, sizeof det, "got %s; %s", fl, why);
    judge(d, s, ok, what, det);
    record_observation(d, s, what, fl);
    return 1;
}

/* Parses complete replies off the input. For each: bookkeeping, then the waiting step.
 * Returns 1 if the wait was resolved. */
static int take_replies(struct dialogue *d)
{
    if (d->bev == NULL)
        return 0;
    struct evbuffer *in = bufferevent_get_input(d->bev);
    while (evbuffer_get_length(in) > 0 && d->wait != WAIT_NONE) {
        char peek[160];
        ev_ssize_t got = evbuffer_copyout(in, peek, sizeof peek - 1);
        struct etrn_err e = {{0}};
        enum smtp_reply_status st = smtp_reply_parse(in, &d->reply, &e);
        if (st == SMTP_REPLY_INCOMPLETE)
            return 0;
        if (st == SMTP_REPLY_MALFORMED) {
            size_t k = got > 0 ? (size_t)got : 0;
            for (size_t i = 0; i < k; i++)
                if (peek[i] == '\n') {
                    k = i + 1;
                    break;
                }
            tlog(d, "<", peek, k);
            d->nreplies++;
            if (!d->malformed[0])
                snprintf(d->malformed, sizeof d->malformed, "malformed reply: %.250s", e.msg);
            if (d->wait == WAIT_REPLY || d->wait == WAIT_TLS_REPLY) {
                char what[200], det[400];
                if (d->wait == WAIT_REPLY)
                    expect_what(d->cur, what, sizeof what);
                else
                    snprintf(what, sizeof what, "starttls");
                snprintf(det, sizeof det, "malformed reply: %.350s", e.msg);
                judge(d, d->cur, 0, what, det);
                wait_end(d);
                return 1;
            }
            continue;
        }
        reply_seen(d, &d->reply);
        switch (d->wait) {
        case WAIT_REPLY:
            if (expect_take(d, &d->reply)) {
                wait_end(d);
                return 1;
            }
            /* `times N`: each reply gets the full bound again */
            wait_begin(d, WAIT_REPLY, step_within(d, d->cur));
            break;
        case WAIT_TLS_REPLY:
            if (d->reply.code != 220) {
                char fl[300], det[400];
                first_line(&d->reply, fl, sizeof fl);
                snprintf(det, sizeof det, "STARTTLS refused: %s", fl);
                judge(d, d->cur, 0, "starttls", det);
                wait_end(d);
                return 1;
            }
            return -1;   /* caller starts the handshake */
        case WAIT_SILENCE: {
            char fl[300], det[400];
            first_line(&d->reply, fl, sizeof fl);
            snprintf(det, sizeof det, "the target replied: %s", fl);
            judge(d, d->cur, 0, "expect-silence", det);
            wait_end(d);
            return 1;
        }
        case WAIT_DRAIN:
            wait_begin(d, WAIT_DRAIN, d->cur->duration_ms);
            break;
        default:
            break;
        }
    }
    return 0;
}

/* ---- TLS --------------------------------------------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void tls_begin(struct dialogue *d)
{
    if (d->env.tls == NULL) {
        judge(d, d->cur, 0, "starttls", "the runner has no TLS context");
        wait_end(d);
        return;
    }
    SSL *ssl = SSL_new(d->env.tls);
    if (ssl == NULL) {
        judge(d, d->cur, 0, "starttls", "SSL_new failed");
        wait_end(d);
        return;
    }
    /* Input already buffered after the 220 must not be read as TLS (RFC 3207 §4.2:
     * the client discards what it knew); drop it. */
    evbuffer_drain(bufferevent_get_input(d->bev), evbuffer_get_length(bufferevent_get_input(d->bev)));
    struct bufferevent *tb = bufferevent_openssl_filter_new(
        d->env.base, d->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (tb == NULL) {
        SSL_free(ssl);
        judge(d, d->cur, 0, "starttls", "cannot start TLS on the connection");
        wait_end(d);
        return;
    }
    d->bev = tb;
    bufferevent_setcb(tb, read_cb, NULL, event_cb, d);
    bufferevent_setwatermark(tb, EV_READ, 0, DIALOGUE_INPUT_MAX);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    d->fifo_n = 0;
    d->enh_advertised = 0;
    d->tls_ok = d->tls_failed = 0;
    wait_end(d);
    wait_begin(d, WAIT_TLS_HANDSHAKE, step_within(d, d->cur));
    tnote(d, "TLS handshake");
}

/* ---- sending ------------------------------------------------------------------------------ */

static int send_bytes(struct dialogue *d, const char *p, size_t n)
{
    if (d->closed || d->bev == NULL) {
        tnote(d, "not sent (connection closed): %.60s", p);
        return -1;
    }
    if (bufferevent_write(d->bev, p, n) < 0) {
        tnote(d, "write failed");
        return -1;
    }
    pcap_tcp_flow_data(d->flow, PCAP_FROM_CLIENT, p, n);
    fifo_note_sent(d, p, n);
    return 0;
}

static void exec_send(struct dialogue *d, const struct scenario_step *s)
{
    struct strbuf exp, out;
    strbuf_init(&exp, SCENARIO_EXPAND_MAX + 16);
    strbuf_init(&out, DIALOGUE_SEND_MAX);
    struct etrn_err e;
    if (scenario_expand(s->text, d->env.lookup, d->env.lookup_arg, &exp, &e) < 0) {
        char det[600];
        snprintf(det, sizeof det, "%s:%d: %s", s->file, s->line, e.msg);
        note_failure(d, det);
        tnote(d, "%s", det);
        d->aborted = 1;
        goto out;
    }
    if (s->kind == SCENARIO_STEP_SEND) {
        strbuf_append(&out, exp.data, exp.len);
        strbuf_append(&out, "\r\n", 2);
        tlog(d, ">", exp.data, exp.len);
    } else if (s->kind == SCENARIO_STEP_SEND_RAW) {
        if (scenario_unescape(exp.data, &out, &e) < 0) {
            note_failure(d, e.msg);
            d->aborted = 1;
            goto out;
        }
        tlog(d, ">", out.data, out.len);
    } else {   /* send-repeat */
        for (unsigned long i = 0; i < s->count; i++)
            if (strbuf_append(&out, exp.data, exp.len) < 0 || strbuf_append(&out, "\r\n", 2) < 0) {
                note_failure(d, "send-repeat: more than 8 MiB");
                d->aborted = 1;
                goto out;
            }
        char note[600];
        snprintf(note, sizeof note, "%lu x %.400s", s->count, exp.data);
        tlog(d, ">", note, strlen(note));
    }
    send_bytes(d, out.data, out.len);
out:
    strbuf_free(&exp);
    strbuf_free(&out);
}

/* ---- the pump ----------------------------------------------------------------------------- */

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dialogue *d = arg;
    d->cb(d, d->cb_arg);   /* may free d: nothing after this */
}

static void close_connection(struct dialogue *d, enum pcap_direction closer)
{
    if (d->flow) {
        pcap_tcp_flow_close(d->flow, closer);
        d->flow = NULL;
    }
    if (d->bev) {
        bufferevent_free(d->bev);
        d->bev = NULL;
    }
    d->closed = 1;
}

static void finish(struct dialogue *d)
{
    if (d->finished)
        return;
    d->finished = 1;
    evtimer_del(d->timer);
    if (!d->connect_failed) {
        auto_check(d, "R5321-4.2b", NULL, VERDICT_FAIL, "automatic: every reply well-formed",
                   d->malformed);
        auto_check(d, "R5321-4.5.3.1", NULL, VERDICT_FAIL,
                   "automatic: reply lines at most 512 octets", d->long_line);
        auto_check(d, "R5321-2.3.8", NULL, VERDICT_FAIL,
                   "automatic: reply lines end with CRLF", d->bare_lf);
        if (d->enh_checked) {
            auto_check(d, "R2034-3", NULL, VERDICT_WARN,
                       "enhanced code on every reply (automatic; missing = WARN, spec 3-A10)",
                       d->enh_missing);
            auto_check(d, "R2034-4a", "R2034-4b", VERDICT_FAIL,
                       "enhanced codes agree with every reply (automatic)", d->enh_bad);
        }
        if (d->malformed[0])
            note_failure(d, d->malformed);
        if (d->enh_bad[0])
            note_failure(d, d->enh_bad);
        tnote(d, "session ends (%lu replies)", d->nreplies);
    }
    close_connection(d, PCAP_FROM_CLIENT);
    event_active(d->done_ev, EV_TIMEOUT, 0);
}

static const struct scenario_step *next_step(struct dialogue *d)
{
    while (d->depth > 0) {
        struct frame *f = &d->frames[d->depth - 1];
        if (f->idx < f->n)
            return &f->steps[f->idx++];
        if (f->left > 1) {
            f->left--;
            f->idx = 0;
            continue;
        }
        d->depth--;
    }
    return NULL;
}

static void exec_step(struct dialogue *d, const struct scenario_step *s)
{
    d->cur = s;
    switch (s->kind) {
    case SCENARIO_STEP_SEND:
    case SCENARIO_STEP_SEND_RAW:
    case SCENARIO_STEP_SEND_REPEAT:
        exec_send(d, s);
        return;
    case SCENARIO_STEP_EXPECT:
        d->times_left = s->expect.times;
        d->times_failed = 0;
        wait_begin(d, WAIT_REPLY, step_within(d, s));
        return;
    case SCENARIO_STEP_EXPECT_CLOSE:
        wait_begin(d, WAIT_CLOSE, step_within(d, s));
        return;
    case SCENARIO_STEP_EXPECT_SILENCE:
        wait_begin(d, WAIT_SILENCE, s->duration_ms);
        return;
    case SCENARIO_STEP_STARTTLS:
        if (send_bytes(d, "STARTTLS\r\n", 10) == 0)
            tlog(d, ">", "STARTTLS", 8);
        wait_begin(d, WAIT_TLS_REPLY, step_within(d, s));
        return;
    case SCENARIO_STEP_WAIT:
        wait_begin(d, WAIT_SLEEP, s->duration_ms);
        return;
    case SCENARIO_STEP_DRAIN:
        wait_begin(d, WAIT_DRAIN, s->duration_ms);
        return;
    case SCENARIO_STEP_CLOSE:
        tnote(d, "client closes the connection");
        close_connection(d, PCAP_FROM_CLIENT);
        return;
    case SCENARIO_STEP_REPEAT:
        if (d->depth == DIALOGUE_DEPTH_MAX) {
            note_failure(d, "repeat nested too deep");
            d->aborted = 1;
            return;
        }
        d->frames[d->depth++] = (struct frame){s->children, s->nchildren, 0, s->count};
        return;
    default: {
        char det[300];
        snprintf(det, sizeof det, "%s:%d: '%s' cannot run inside a client block", s->file,
                 s->line, scenario_step_kind_name(s->kind));
        note_failure(d, det);
        d->aborted = 1;
        return;
    }
    }
}

/* Advances the current wait. Returns 1 when it is over. */
static int service_wait(struct dialogue *d)
{
    const struct scenario_step *s = d->cur;
    char det[400];
    switch (d->wait) {
    case WAIT_CONNECT:
        return 0;
    case WAIT_REPLY:
    case WAIT_TLS_REPLY: {
        int r = take_replies(d);
        if (r == -1) {
            tls_begin(d);
            return d->wait == WAIT_NONE;
        }
        if (r == 1)
            return 1;
        const char *what = d->wait == WAIT_TLS_REPLY ? "starttls" : "expect";
        char w[200];
        if (d->wait == WAIT_REPLY)
            expect_what(s, w, sizeof w);
        else
            snprintf(w, sizeof w, "%s", what);
        if (d->closed) {
            snprintf(det, sizeof det, "the target closed the connection before replying");
            judge_as(d, s, 0, 1, w, det);
            wait_end(d);
            d->aborted = 1;   /* nothing more can be said on this session */
            return 1;
        }
        if (d->timed_out) {
            if (d->wait == WAIT_REPLY && s->expect.codes.none) {
                snprintf(det, sizeof det, "no reply within %.1fs (silence accepted)",
                         (double)step_within(d, s) / 1000.0);
                judge(d, s, 1, w, det);
                record_observation(d, s, w, "no reply");
                wait_end(d);
                return 1;
            }
            snprintf(det, sizeof det, "no reply within %.1fs",
                     (double)step_within(d, s) / 1000.0);
            judge_as(d, s, 0, 1, w, det);
            wait_end(d);
            d->aborted = 1;   /* the dialogue can no longer be matched */
            return 1;
        }
        return 0;
    }
    case WAIT_TLS_HANDSHAKE:
        if (d->tls_ok) {
            tnote(d, "TLS established");
            judge(d, s, 1, "starttls", "TLS handshake completed");
            wait_end(d);
            return 1;
        }
        if (d->tls_failed || d->closed || d->timed_out) {
            judge(d, s, 0, "starttls",
                  d->timed_out ? "TLS handshake did not complete in time" : "TLS handshake failed");
            wait_end(d);
            d->aborted = 1;
            return 1;
        }
        return 0;
    case WAIT_CLOSE:
        take_replies(d);
        if (d->closed) {
            judge(d, s, 1, "expect-close", "the target closed the connection");
            wait_end(d);
            return 1;
        }
        if (d->timed_out) {
            snprintf(det, sizeof det, "connection still open after %.1fs",
                     (double)step_within(d, s) / 1000.0);
            judge(d, s, 0, "expect-close", det);
            wait_end(d);
            return 1;
        }
        return 0;
    case WAIT_SILENCE:
        if (take_replies(d) == 1)
            return 1;
        if (d->bev && evbuffer_get_length(bufferevent_get_input(d->bev)) > 0 && d->timed_out) {
            judge(d, s, 0, "expect-silence", "the target sent a partial reply");
            wait_end(d);
            return 1;
        }
        if (d->timed_out || d->closed) {
            judge(d, s, 1, "expect-silence",
                  d->closed ? "no reply (the target closed the connection)" : "no reply");
            wait_end(d);
            return 1;
        }
        return 0;
    case WAIT_SLEEP:
        if (d->timed_out) {
            wait_end(d);
            return 1;
        }
        return 0;
    case WAIT_DRAIN:
        take_replies(d);
        if (d->timed_out || d->closed) {
            /* drop a partial reply left over */
            if (d->bev)
                evbuffer_drain(bufferevent_get_input(d->bev),
                               evbuffer_get_length(bufferevent_get_input(d->bev)));
            wait_end(d);
            return 1;
        }
        return 0;
    case WAIT_NONE:
        return 1;
    }
    return 1;
}

static void step_loop(struct dialogue *d)
{
    while (!d->finished) {
        if (d->wait != WAIT_NONE) {
            if (!service_wait(d))
                return;
            continue;
        }
        if (d->aborted) {
            tnote(d, "remaining steps not run");
            finish(d);
            return;
        }
        const struct scenario_step *s = next_step(d);
        if (s == NULL) {
            finish(d);
            return;
        }
        exec_step(d, s);
    }
}

static void pump(struct dialogue *d)
{
    if (d->pumping) {
        d->repump = 1;
        return;
    }
    d->pumping = 1;
    do {
        d->repump = 0;
        step_loop(d);
    } while (d->repump && !d->finished);
    d->pumping = 0;
}

/* ---- libevent callbacks -------------------------------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pump(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct dialogue *d = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (d->wait == WAIT_CONNECT) {
            socklen_t len = sizeof d->local;
            if (getsockname(bufferevent_getfd(d->bev), (struct sockaddr *)&d->local, &len) == 0)
                d->flow = pcap_tcp_flow_open(d->env.pcap, (struct sockaddr *)&d->local,
                                             d->env.target);
            char a[NETADDR_TEXT_MAX] = "?";
            netaddr_format((struct sockaddr *)&d->local, a, sizeof a);
            tnote(d, "connected from %s", a);
            wait_end(d);
        } else if (d->wait == WAIT_TLS_HANDSHAKE) {
            d->tls_ok = 1;
        }
        pump(d);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        int e = EVUTIL_SOCKET_ERROR();
        if (d->wait == WAIT_CONNECT) {
            d->connect_failed = 1;
            char a[NETADDR_TEXT_MAX] = "?", det[300];
            netaddr_format(d->env.target, a, sizeof a);
            snprintf(det, sizeof det, "cannot connect to the target %s: %s", a,
                     e ? strerror(e) : "connection failed");
            note_failure(d, det);
            tnote(d, "%s", det);
            wait_end(d);
            d->closed = 1;
            finish(d);
            return;
        }
        if (d->wait == WAIT_TLS_HANDSHAKE)
            d->tls_failed = 1;
        /* Read what is still buffered before declaring the connection gone. */
        struct dialogue *dd = d;
        if (what & BEV_EVENT_EOF)
            tnote(dd, "the target closed the connection");
        else
            tnote(dd, "connection error: %s", e ? strerror(e) : "reset");
        /* keep the buffered input: mark closed, pump parses what is left */
        d->closed = 1;
        if (d->flow) {
            pcap_tcp_flow_close(d->flow, PCAP_FROM_SERVER);
            d->flow = NULL;
        }
        pump(d);
    }
}

/* ---- public ------------------------------------------------------------------------------- */

int dialogue_start(struct dialogue **out, const struct dialogue_env *env, const char *label,
                   const struct scenario_step *steps, size_t nsteps, dialogue_done_cb cb,
                   void *arg, struct etrn_err *err)
{
    struct dialogue *d = calloc(1, sizeof *d);
    if (d == NULL)
        return err_set(err, "out of memory");
    d->env = *env;
    snprintf(d->label, sizeof d->label, "%s", label ? label : "client");
    d->cb = cb;
    d->cb_arg = arg;
    d->frames[0] = (struct frame){steps, nsteps, 0, 1};
    d->depth = 1;
    smtp_reply_init(&d->reply);
    d->timer = evtimer_new(env->base, timer_cb, d);
    d->done_ev = event_new(env->base, -1, 0, done_cb, d);
    if (d->timer == NULL || d->done_ev == NULL) {
        dialogue_free(d);
        return err_set(err, "out of memory");
    }
    int fd = socket(env->target->sa_family, SOCK_STREAM, 0);
    if (fd < 0) {
        dialogue_free(d);
        return err_set_errno(err, "socket");
    }
    if (fileio_set_nonblock(fd) < 0) {
        close(fd);
        dialogue_free(d);
        return err_set_errno(err, "socket flags");
    }
    if (env->source) {
        struct netaddr src;
        struct etrn_err e;
        if (netaddr_parse(env->source, 0, &src, &e) < 0) {
            close(fd);
            dialogue_free(d);
            return err_set(err, "client source: %s", e.msg);
        }
        if (bind(fd, (struct sockaddr *)&src.ss, src.len) < 0) {
            err_set_errno(err, "cannot bind the client to %s", env->source);
            close(fd);
            dialogue_free(d);
            return -1;
        }
    }
    d->bev = bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (d->bev == NULL) {
        close(fd);
        dialogue_free(d);
        return err_set(err, "out of memory");
    }
    bufferevent_setcb(d->bev, read_cb, NULL, event_cb, d);
    bufferevent_setwatermark(d->bev, EV_READ, 0, DIALOGUE_INPUT_MAX);
    bufferevent_enable(d->bev, EV_READ | EV_WRITE);
    d->wait = WAIT_CONNECT;
    wait_begin(d, WAIT_CONNECT, env->step_timeout_ms ? env->step_timeout_ms : 10000);
    if (bufferevent_socket_connect(d->bev, env->target, (int)env->target_len) < 0) {
        /* reported through the event callback on most errors; here: immediate failure */
        d->connect_failed = 1;
        char det[300], a[NETADDR_TEXT_MAX] = "?";
        netaddr_format(env->target, a, sizeof a);
        snprintf(det, sizeof det, "cannot connect to the target %s: %s", a, strerror(errno));
        note_failure(d, det);
        d->closed = 1;
        finish(d);
    }
    *out = d;
    return 0;
}

void dialogue_free(struct dialogue *d)
{
    if (d == NULL)
        return;
    if (d->flow)
        pcap_tcp_flow_close(d->flow, PCAP_FROM_CLIENT);
    if (d->bev)
        bufferevent_free(d->bev);
    if (d->timer)
        event_free(d->timer);
    if (d->done_ev)
        event_free(d->done_ev);
    smtp_reply_free(&d->reply);
    free(d->fifo);
    free(d);
}

int dialogue_connect_failed(const struct dialogue *d)
{
    return d->connect_failed;
}

unsigned dialogue_failures(const struct dialogue *d)
{
    return d->failures;
}

const char *dialogue_first_failure(const struct dialogue *d)
{
    return d->first_failure;
}
