/* misbehave.c — misbehaving SMTP clients toward a server under test (see misbehave.h).
 *
 *   misbehave_spec_default(&s); s.kind = MISBEHAVE_SLOW_SENDER; s.target = sa; ...
 *   misbehave_run(base, &s, &r, &err);      // or misbehave_start(..., cb, arg, ...)
 *   misbehave_result_free(&r);
 *
 * Guarantees: every run ends within timeout_ms (plus one loop turn) and calls its callback
 * exactly once; what the server sent is kept up to MISBEHAVE_TRANSCRIPT_MAX bytes and
 * parsed into reply codes with lib/smtp_reply; nothing here blocks the event loop. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "misbehave.h"
#include "smtp_reply.h"

enum run_state { RUN_CONNECTING, RUN_GREETING, RUN_SENDING, RUN_SETTLING, RUN_DONE };

struct misbehave {
    struct event_base *base;
    struct misbehave_spec spec;
    char *script;
    struct misbehave_result *r;
    struct misbehave_result own;
    misbehave_done_cb cb;
    void *cb_arg;
    struct bufferevent *bev;
    enum run_state state;
    unsigned char *payload;
    size_t payload_len, sent;
    size_t piece;                  /* command-flood: bytes per write */
    struct event *deadline, *step, *settle;
    int64_t start_ms;
    struct pcap_tcp_flow *flow;
    struct evbuffer *replies;      /* received bytes still to parse */
    int half_closed;
};

static const char *const kind_names[] = {
    "slow-sender", "command-flood", "pipelined-burst", "disconnect-mid-command", "garbage",
    "overlong-line",
};

const char *misbehave_kind_name(enum misbehave_kind k)
{
    return (size_t)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "?";
}

int misbehave_kind_parse(const char *name, enum misbehave_kind *out, struct etrn_err *err)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (enum misbehave_kind)i;
            return 0;
        }
    return err_set(err, "unknown misbehaviour '%s' (slow-sender, command-flood, "
                        "pipelined-burst, disconnect-mid-command, garbage, overlong-line)", name);
}

void misbehave_spec_default(struct misbehave_spec *s)
{
    memset(s, 0, sizeof *s);
    s->kind = MISBEHAVE_PIPELINED_BURST;
    s->count = 1;
    s->interval_ms = 100;
    s->timeout_ms = 10000;
    s->settle_ms = 500;
    s->wait_greeting = 1;
    s->send_quit = 1;
    s->seed = 1;
}

void misbehave_result_free(struct misbehave_result *r)
{
    strbuf_free(&r->transcript);
}

size_t misbehave_count_code(const struct misbehave_result *r, int code)
{
    size_t n = 0;
    size_t kept = r->nreplies < MISBEHAVE_CODES_MAX ? r->nreplies : MISBEHAVE_CODES_MAX;
    for (size_t i = 0; i < kept; i++)
        n += r->codes[i] == code;
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the payload ---------------------------------------------------------------------- */

static int payload_add(struct strbuf *p, const void *data, size_t n)
{
    return strbuf_append(p, data, n);
}

static int payload_build(struct misbehave *m, struct etrn_err *err)
{
    const struct misbehave_spec *s = &m->spec;
    const char *script = m->script;
    size_t slen = strlen(script);
    struct strbuf p;
    strbuf_init(&p, MISBEHAVE_PAYLOAD_MAX);
    int r = 0;
    unsigned count = s->count ? s->count : 1;
    switch (s->kind) {
    case MISBEHAVE_SLOW_SENDER:
        r = payload_add(&p, script, slen);
        break;
    case MISBEHAVE_COMMAND_FLOOD:
    case MISBEHAVE_PIPELINED_BURST:
        for (unsigned i = 0; i < count && r == 0; i++)
            r = payload_add(&p, script, slen);
        m->piece = slen;
        break;
    case MISBEHAVE_DISCONNECT_MID_COMMAND: {
        size_t line = strcspn(script, "\r\n");
        size_t half = line / 2 > 0 ? line / 2 : line;
        r = payload_add(&p, script, half);
        break;
    }
    case MISBEHAVE_GARBAGE: {
        uint32_t x = s->seed ? s->seed : 1;
        for (unsigned i = 0; i < count && r == 0; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            unsigned char c = (unsigned char)(i % 16 == 3 ? 0 : x >> 24);
            r = payload_add(&p, &c, 1);
        }
        if (r == 0)
            r = payload_add(&p, "\r\n", 2);
        if (r == 0)
            r = payload_add(&p, script, slen);
        break;
    }
    case MISBEHAVE_OVERLONG_LINE: {
        /* The script's first verb (or NOOP) followed by padding up to count octets. */
        size_t vlen = strcspn(script, " \r\n");
        const char *verb = vlen > 0 ? script : "NOOP";
        if (vlen == 0)
            vlen = 4;
        r = payload_add(&p, verb, vlen);
        if (r == 0)
            r = payload_add(&p, " ", 1);
        for (size_t i = vlen + 1; i + 2 < count && r == 0; i++)
            r = payload_add(&p, "a", 1);
        if (r == 0)
            r = payload_add(&p, "\r\n", 2);
        if (r == 0)
            r = payload_add(&p, script, slen);
        break;
    }
    }
    if (r == 0 && s->send_quit && s->kind != MISBEHAVE_DISCONNECT_MID_COMMAND)
        r = payload_add(&p, "QUIT\r\n", 6);
    if (r < 0) {
        strbuf_free(&p);
        return err_set(err, "misbehave %s: payload larger than %u bytes",
                       misbehave_kind_name(s->kind), MISBEHAVE_PAYLOAD_MAX);
    }
    m->payload_len = p.len;
    m->payload = (unsigned char *)strbuf_detach(&p);   /* a copy: p still owns its memory */
    strbuf_free(&p);
    if (m->payload == NULL && m->payload_len > 0)
        return err_set(err, "misbehave: out of memory");
    return 0;
}

/* --- the run ------------------------------------------------------------------------------ */

static void run_finish(struct misbehave *m)
{
    if (m->state == RUN_DONE)
        return;
    m->state = RUN_DONE;
    struct misbehave_result *r = m->r;
    r->elapsed_ms = now_ms() - m->start_ms;
    if (m->flow != NULL) {
        if (r->server_reset)
            pcap_tcp_flow_reset(m->flow, PCAP_FROM_SERVER);
        else
            pcap_tcp_flow_close(m->flow, r->server_closed ? PCAP_FROM_SERVER : PCAP_FROM_CLIENT);
        m->flow = NULL;
    }
    if (m->bev != NULL) {
        bufferevent_free(m->bev);
        m->bev = NULL;
    }
    event_del(m->deadline);
    event_del(m->step);
    event_del(m->settle);
    if (m->cb != NULL)
        m->cb(r, m->cb_arg);
    misbehave_cancel(m);
}

static void settle_restart(struct misbehave *m)
{
    if (m->state != RUN_SETTLING)
        return;
    unsigned ms = m->spec.settle_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(m->settle, &tv);
}

static void send_bytes(struct misbehave *m, size_t n)
{
    if (n > m->payload_len - m->sent)
        n = m->payload_len - m->sent;
    if (n == 0)
        return;
    bufferevent_write(m->bev, m->payload + m->sent, n);
    pcap_tcp_flow_data(m->flow, PCAP_FROM_CLIENT, m->payload + m->sent, n);
    m->sent += n;
    m->r->bytes_sent += n;
}

static void sending_done_check(struct misbehave *m)
{
    if (m->state != RUN_SENDING || m->sent < m->payload_len
        || evbuffer_get_length(bufferevent_get_output(m->bev)) > 0)
        return;
    if (m->spec.kind == MISBEHAVE_DISCONNECT_MID_COMMAND && !m->half_closed) {
        /* The client is gone mid-command; keep listening to see what the server does. */
        m->half_closed = 1;
        (void)shutdown(bufferevent_getfd(m->bev), SHUT_WR);
    }
    m->state = RUN_SETTLING;
    settle_restart(m);
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct misbehave *m = arg;
    send_bytes(m, 1);
    if (m->sent < m->payload_len) {
        unsigned ms = m->spec.interval_ms;
        struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(m->step, &tv);
    }
}

static void sending_start(struct misbehave *m)
{
    m->state = RUN_SENDING;
    switch (m->spec.kind) {
    case MISBEHAVE_SLOW_SENDER:
        step_cb(-1, 0, m);
        break;
    case MISBEHAVE_COMMAND_FLOOD:
        send_bytes(m, m->piece ? m->piece : m->payload_len);
        break;
    default:
        send_bytes(m, m->payload_len);
        break;
    }
    sending_done_check(m);
}

static void replies_parse(struct misbehave *m)
{
    struct misbehave_result *r = m->r;
    for (int guard = 0; guard < 100000; guard++) {
        struct smtp_reply rep;
        smtp_reply_init(&rep);
        struct etrn_err err = {{0}};
        enum smtp_reply_status st = smtp_reply_parse(m->replies, &rep, &err);
        if (st == SMTP_REPLY_INCOMPLETE) {
            smtp_reply_free(&rep);
            return;
        }
        if (st == SMTP_REPLY_MALFORMED) {
            r->malformed++;
            smtp_reply_free(&rep);
            continue;
        }
        if (m->state == RUN_GREETING && r->greeting_code == 0) {
            r->greeting_code = rep.code;
            smtp_reply_free(&rep);
            sending_start(m);
            continue;
        }
        if (r->nreplies < MISBEHAVE_CODES_MAX)
            r->codes[r->nreplies] = rep.code;
        r->nreplies++;
        smtp_reply_free(&rep);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct misbehave *m = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
    pcap_tcp_flow_data(m->flow, PCAP_FROM_SERVER, p, n);
    struct strbuf *t = &m->r->transcript;
    size_t room = t->len < MISBEHAVE_TRANSCRIPT_MAX ? MISBEHAVE_TRANSCRIPT_MAX - t->len : 0;
    (void)strbuf_append(t, p, n < room ? n : room);
    evbuffer_add_buffer(m->replies, in);
    replies_parse(m);
    settle_restart(m);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct misbehave *m = arg;
    if (m->state == RUN_SENDING && m->spec.kind == MISBEHAVE_COMMAND_FLOOD
        && m->sent < m->payload_len) {
        send_bytes(m, m->piece ? m->piece : m->payload_len);
        return;
    }
    sending_done_check(m);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct misbehave *m = arg;
    struct misbehave_result *r = m->r;
    if (what & BEV_EVENT_CONNECTED) {
        r->connected = 1;
        struct sockaddr_storage local;
        socklen_t llen = sizeof local;
        if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &llen) == 0)
            m->flow = pcap_tcp_flow_open(m->spec.pcap, (struct sockaddr *)&local,
                                         m->spec.target);
        if (m->spec.wait_greeting)
            m->state = RUN_GREETING;
        else
            sending_start(m);
        return;
    }
    int e = EVUTIL_SOCKET_ERROR();
    if (!r->connected) {
        r->connect_errno = e;
        str_copy(r->error, sizeof r->error, strerror(e));
        run_finish(m);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        read_cb(bev, m);
        r->server_closed = 1;
    } else {
        r->server_reset = 1;
        str_copy(r->error, sizeof r->error, strerror(e));
    }
    run_finish(m);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct misbehave *m = arg;
    m->r->timed_out = 1;
    run_finish(m);
}

static void settle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_finish(arg);
}

void misbehave_cancel(struct misbehave *m)
{
    if (m == NULL)
        return;
    if (m->bev != NULL)
        bufferevent_free(m->bev);
    if (m->flow != NULL)
        pcap_tcp_flow_close(m->flow, PCAP_FROM_CLIENT);
    if (m->deadline != NULL)
        event_free(m->deadline);
    if (m->step != NULL)
        event_free(m->step);
    if (m->settle != NULL)
        event_free(m->settle);
    if (m->replies != NULL)
        evbuffer_free(m->replies);
    if (m->r == &m->own)
        misbehave_result_free(&m->own);
    free(m->payload);
    free(m->script);
    free(m);
}

static int run_start(struct misbehave **out, struct event_base *base,
                     const struct misbehave_spec *spec, struct misbehave_result *result,
                     misbehave_done_cb cb, void *arg, struct etrn_err *err)
{
    *out = NULL;
    if (spec->target == NULL)
        return err_set(err, "misbehave: no target address");
    struct misbehave *m = calloc(1, sizeof *m);
    if (m == NULL)
        return err_set(err, "misbehave: out of memory");
    m->base = base;
    m->spec = *spec;
    m->cb = cb;
    m->cb_arg = arg;
    m->r = result != NULL ? result : &m->own;
    memset(m->r, 0, sizeof *m->r);
    strbuf_init(&m->r->transcript, MISBEHAVE_TRANSCRIPT_MAX);
    m->script = strdup(spec->script != NULL ? spec->script : "");
    m->deadline = evtimer_new(base, deadline_cb, m);
    m->step = evtimer_new(base, step_cb, m);
    m->settle = evtimer_new(base, settle_cb, m);
    m->replies = evbuffer_new();
    if (m->script == NULL || m->deadline == NULL || m->step == NULL || m->settle == NULL
        || m->replies == NULL) {
        misbehave_cancel(m);
        return err_set(err, "misbehave: out of memory");
    }
    if (payload_build(m, err) < 0) {
        misbehave_cancel(m);
        return -1;
    }
    evutil_socket_t fd = socket(spec->target->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        misbehave_cancel(m);
        return err_set_errno(err, "misbehave: socket");
    }
    if (spec->source != NULL && bind(fd, spec->source, spec->source_len) < 0) {
        err_set_errno(err, "misbehave: cannot bind the source address");
        close(fd);
        misbehave_cancel(m);
        return -1;
    }
    m->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (m->bev == NULL) {
        close(fd);
        misbehave_cancel(m);
        return err_set(err, "misbehave: out of memory");
    }
    bufferevent_setcb(m->bev, read_cb, write_cb, event_cb, m);
    bufferevent_enable(m->bev, EV_READ | EV_WRITE);
    m->start_ms = now_ms();
    m->state = RUN_CONNECTING;
    unsigned ms = spec->timeout_ms ? spec->timeout_ms : 10000;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(m->deadline, &tv);
    if (bufferevent_socket_connect(m->bev, spec->target, (int)spec->target_len) < 0) {
        /* An immediate failure (e.g. ECONNREFUSED on loopback) is a result, not an
         * error: report it from the loop like any other ending. */
        m->r->connect_errno = EVUTIL_SOCKET_ERROR();
        str_copy(m->r->error, sizeof m->r->error, strerror(m->r->connect_errno));
        event_del(m->deadline);
        event_active(m->settle, EV_TIMEOUT, 0);
    }
    *out = m;
    return 0;
}

int misbehave_start(struct misbehave **out, struct event_base *base,
                    const struct misbehave_spec *spec, misbehave_done_cb cb, void *arg,
                    struct etrn_err *err)
{
    return run_start(out, base, spec, NULL, cb, arg, err);
}

struct run_wait {
    struct event_base *base;
    int done;
};

static void run_wait_cb(struct misbehave_result *r, void *arg)
{
    (void)r;
    struct run_wait *w = arg;
    w->done = 1;
    event_base_loopbreak(w->base);
}

int misbehave_run(struct event_base *base, const struct misbehave_spec *spec,
                  struct misbehave_result *r, struct etrn_err *err)
{
    struct run_wait w = {base, 0};
    struct misbehave *m;
    if (run_start(&m, base, spec, r, run_wait_cb, &w, err) < 0)
        return -1;
    /* Bounded by the run's own deadline timer. */
    while (!w.done)
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            break;
    if (!w.done) {
        misbehave_cancel(m);
        return err_set(err, "misbehave: the event loop failed");
    }
    return 0;
}
