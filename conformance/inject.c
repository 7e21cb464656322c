/* inject.c — SMTP injection of a scenario's messages into the target (see inject.h).
 *
 *   inject_start(&ij, &spec, done, arg, &err);   // EHLO; per message MAIL RCPT.. DATA body .
 *   done(ij, ok, why, arg);  inject_free(ij);
 *
 * A small state machine over one bufferevent: it knows which reply it waits for next
 * (a queue of expected stages, so pipelined groups are matched by counting, RFC 2920),
 * and a timer bounds every wait. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "fileio.h"
#include "inject.h"
#include "netaddr.h"
#include "smtp_reply.h"
#include "strbuf.h"

enum stage { ST_GREETING, ST_EHLO, ST_MAIL, ST_RCPT, ST_DATA, ST_DOT, ST_QUIT };

#define EXPECT_MAX 1100   /* MAIL + up to 1000 RCPT + DATA per group */

struct inject {
    struct inject_spec spec;
    inject_done_cb cb;
    void *arg;
    struct bufferevent *bev;
    struct event *timer, *done_ev;
    struct smtp_reply reply;
    enum stage expect[EXPECT_MAX];
    size_t nexpect, head;
    int pipelining;
    unsigned long sent, accepted;
    int rcpt_ok;                 /* recipients accepted in the current transaction */
    int finished, ok;
    char why[ETRN_ERR_MAX];
    struct pcap_tcp_flow *flow;
    char *from;                  /* copies of the spec's strings */
    char **rcpts;
};

int inject_message_id(unsigned seq, const char *run, unsigned long index, char *buf, size_t n)
{
    return str_format(buf, n, "<s%u.m%lu.%s@etrncheck.invalid>", seq, index, run);
}

int inject_message_index(const char *id, unsigned seq, const char *run, unsigned long *index)
{
    unsigned s;
    unsigned long m;
    int used = 0;
    char tail[64];
    if (id == NULL || sscanf(id, "<s%u.m%lu.%n", &s, &m, &used) != 2 || used == 0 || s != seq)
        return -1;
    if (str_format(tail, sizeof tail, "%s@etrncheck.invalid>", run) < 0 ||
        strcmp(id + used, tail) != 0)
        return -1;
    *index = m;
    return 0;
}

static void finish(struct inject *ij, int ok, const char *why)
{
    if (ij->finished)
        return;
    ij->finished = 1;
    ij->ok = ok;
    snprintf(ij->why, sizeof ij->why, "%.500s", why ? why : "");
    evtimer_del(ij->timer);
    if (ij->flow) {
        pcap_tcp_flow_close(ij->flow, PCAP_FROM_CLIENT);
        ij->flow = NULL;
    }
    if (ij->bev) {
        bufferevent_free(ij->bev);
        ij->bev = NULL;
    }
    event_active(ij->done_ev, EV_TIMEOUT, 0);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct inject *ij = arg;
    ij->cb(ij, ij->ok, ij->why, ij->arg);   /* may free ij */
}

static void arm(struct inject *ij)
{
    unsigned long long ms = ij->spec.timeout_ms ? ij->spec.timeout_ms : 10000;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ij->timer, &tv);
}

static void push(struct inject *ij, enum stage s)
{
    if (ij->nexpect < EXPECT_MAX)
        ij->expect[(ij->head + ij->nexpect++) % EXPECT_MAX] = s;
}

static void put(struct inject *ij, const char *p, size_t n)
{
    bufferevent_write(ij->bev, p, n);
    pcap_tcp_flow_data(ij->flow, PCAP_FROM_CLIENT, p, n);
}

static void putf(struct inject *ij, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct inject *ij, const char *fmt, ...)
{
    char line[1100];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof line)
        put(ij, line, (size_t)n);
}

/* Sends MAIL, RCPT..., DATA for the next message (as one group when pipelining). */
static void send_envelope(struct inject *ij)
{
    ij->rcpt_ok = 0;
    putf(ij, "MAIL FROM:<%s>\r\n", ij->spec.from);
    push(ij, ST_MAIL);
    for (size_t i = 0; i < ij->spec.nrcpts; i++) {
        putf(ij, "RCPT TO:<%s>\r\n", ij->spec.rcpts[i]);
        push(ij, ST_RCPT);
        if (!ij->pipelining)
            return;   /* the rest follows reply by reply */
    }
    putf(ij, "DATA\r\n");
    push(ij, ST_DATA);
}

static void send_body(struct inject *ij)
{
    char id[160];
    unsigned long index = ij->spec.first_index + ij->sent;
    inject_message_id(ij->spec.seq, ij->spec.run, index, id, sizeof id);
    struct strbuf b;
    strbuf_init(&b, 80u * 1024 * 1024);
    strbuf_appendf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: etrncheck s%u message %lu\r\n"
                       "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: %s\r\n\r\n",
                   ij->spec.from, ij->spec.rcpts[0], ij->spec.seq, index, id);
    strbuf_appendf(&b, "Message %lu of scenario %u, run %s.\r\n", index, ij->spec.seq,
                   ij->spec.run);
    static const char pad[] = "etrncheck padding line: the quick brown fox jumps over the lazy dog\r\n";
    while (b.len + sizeof pad < ij->spec.size)
        if (strbuf_append(&b, pad, sizeof pad - 1) < 0)
            break;
    strbuf_append_str(&b, ".\r\n");
    put(ij, b.data, b.len);
    strbuf_free(&b);
    push(ij, ST_DOT);
}

static const char *stage_name(enum stage s)
{
    static const char *const n[] = {"greeting", "EHLO", "MAIL FROM", "RCPT TO", "DATA",
                                    "the final dot", "QUIT"};
    return n[s];
}

static void handle_reply(struct inject *ij, const struct smtp_reply *r)
{
    if (ij->nexpect == 0) {
        finish(ij, 0, "queue: an unexpected extra reply from the target");
        return;
    }
    enum stage s = ij->expect[ij->head];
    ij->head = (ij->head + 1) % EXPECT_MAX;
    ij->nexpect--;
    int good = 0;
    switch (s) {
    case ST_GREETING: good = r->code == 220; break;
    case ST_EHLO: good = r->code == 250; break;
    case ST_MAIL: good = r->code == 250; break;
    case ST_RCPT: good = r->code == 250 || r->code == 251; break;
    case ST_DATA: good = r->code == 354; break;
    case ST_DOT: good = r->code == 250; break;
    case ST_QUIT: good = 1; break;
    }
    if (!good) {
        char msg[700], line[300];
        size_t k = 0;
        for (size_t i = 0; i < r->raw.len && k < sizeof line - 1; i++) {
            char c = r->raw.data[i];
            if (c == '\r' || c == '\n')
                break;
            line[k++] = c;
        }
        line[k] = '\0';
        snprintf(msg, sizeof msg, "queue: the target refused %s (message %lu of %lu): %s",
                 stage_name(s), ij->sent + 1, ij->spec.count, line);
        finish(ij, 0, msg);
        return;
    }
    switch (s) {
    case ST_GREETING:
        putf(ij, "EHLO %s\r\n", ij->spec.ehlo_name);
        push(ij, ST_EHLO);
        break;
    case ST_EHLO:
        ij->pipelining = smtp_reply_has_keyword(r, "PIPELINING", NULL);
        send_envelope(ij);
        break;
    case ST_MAIL:
        break;
    case ST_RCPT:
        ij->rcpt_ok++;
        if (!ij->pipelining) {
            if ((size_t)ij->rcpt_ok < ij->spec.nrcpts) {
                putf(ij, "RCPT TO:<%s>\r\n", ij->spec.rcpts[ij->rcpt_ok]);
                push(ij, ST_RCPT);
            } else {
                putf(ij, "DATA\r\n");
                push(ij, ST_DATA);
            }
        }
        break;
    case ST_DATA:
        send_body(ij);
        break;
    case ST_DOT:
        ij->accepted++;
        ij->sent++;
        if (ij->sent < ij->spec.count) {
            send_envelope(ij);
        } else {
            putf(ij, "QUIT\r\n");
            push(ij, ST_QUIT);
        }
        break;
    case ST_QUIT:
        finish(ij, 1, NULL);
        return;
    }
    arm(ij);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct inject *ij = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!ij->finished) {
        struct etrn_err e;
        enum smtp_reply_status st = smtp_reply_parse(in, &ij->reply, &e);
        if (st == SMTP_REPLY_INCOMPLETE)
            return;
        if (st == SMTP_REPLY_MALFORMED) {
            char msg[700];
            snprintf(msg, sizeof msg, "queue: malformed reply from the target: %.500s", e.msg);
            finish(ij, 0, msg);
            return;
        }
        pcap_tcp_flow_data(ij->flow, PCAP_FROM_SERVER, ij->reply.raw.data, ij->reply.raw.len);
        handle_reply(ij, &ij->reply);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct inject *ij = arg;
    if (what & BEV_EVENT_CONNECTED) {
        socklen_t len;
        struct sockaddr_storage local;
        len = sizeof local;
        if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &len) == 0)
            ij->flow = pcap_tcp_flow_open(ij->spec.pcap, (struct sockaddr *)&local,
                                          ij->spec.target);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        int e = EVUTIL_SOCKET_ERROR();
        char msg[400];
        char a[NETADDR_TEXT_MAX] = "?";
        netaddr_format(ij->spec.target, a, sizeof a);
        if (ij->nexpect && ij->expect[ij->head] == ST_QUIT) {
            finish(ij, 1, NULL);   /* closed right after QUIT: fine */
            return;
        }
        if (what & BEV_EVENT_EOF)
            snprintf(msg, sizeof msg,
                     "queue: the target closed the connection (after %lu of %lu messages)",
                     ij->accepted, ij->spec.count);
        else
            snprintf(msg, sizeof msg,
                     "queue: cannot talk to the target %s: %s (after %lu of %lu messages)", a,
                     e ? strerror(e) : "connection error", ij->accepted, ij->spec.count);
        finish(ij, 0, msg);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct inject *ij = arg;
    char msg[300];
    enum stage s = ij->nexpect ? ij->expect[ij->head] : ST_GREETING;
    snprintf(msg, sizeof msg, "queue: no reply to %s within %llums (after %lu of %lu messages)",
             stage_name(s), ij->spec.timeout_ms ? ij->spec.timeout_ms : 10000, ij->accepted,
             ij->spec.count);
    finish(ij, 0, msg);
}

int inject_start(struct inject **out, const struct inject_spec *spec, inject_done_cb cb,
                 void *arg, struct etrn_err *err)
{
    if (spec->nrcpts == 0 || spec->nrcpts > 1000)
        return err_set(err, "queue: 1 to 1000 recipients needed");
    struct inject *ij = calloc(1, sizeof *ij);
    if (ij == NULL)
        return err_set(err, "out of memory");
    ij->spec = *spec;
    /* The caller's strings may be temporaries: keep our own copies. */
    ij->from = strdup(spec->from ? spec->from : "");
    ij->rcpts = calloc(spec->nrcpts, sizeof *ij->rcpts);
    if (ij->from == NULL || ij->rcpts == NULL) {
        inject_free(ij);
        return err_set(err, "out of memory");
    }
    for (size_t i = 0; i < spec->nrcpts; i++)
        if ((ij->rcpts[i] = strdup(spec->rcpts[i])) == NULL) {
            inject_free(ij);
            return err_set(err, "out of memory");
        }
    ij->spec.from = ij->from;
    ij->spec.rcpts = ij->rcpts;
    ij->cb = cb;
    ij->arg = arg;
    smtp_reply_init(&ij->reply);
    ij->timer = evtimer_new(spec->base, timer_cb, ij);
    ij->done_ev = event_new(spec->base, -1, 0, done_cb, ij);
    int fd = ij->timer && ij->done_ev ? socket(spec->target->sa_family, SOCK_STREAM, 0) : -1;
    if (fd < 0) {
        inject_free(ij);
        return err_set_errno(err, "queue: socket");
    }
    if (fileio_set_nonblock(fd) < 0) {
        close(fd);
        inject_free(ij);
        return err_set_errno(err, "queue: socket flags");
    }
    if (spec->source) {
        struct netaddr src;
        if (netaddr_parse(spec->source, 0, &src, err) < 0 ||
            bind(fd, (struct sockaddr *)&src.ss, src.len) < 0) {
            if (errno)
                err_set_errno(err, "queue: cannot bind to %s", spec->source);
            close(fd);
            inject_free(ij);
            return -1;
        }
    }
    ij->bev = bufferevent_socket_new(spec->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (ij->bev == NULL) {
        close(fd);
        inject_free(ij);
        return err_set(err, "out of memory");
    }
    bufferevent_setcb(ij->bev, read_cb, NULL, event_cb, ij);
    bufferevent_enable(ij->bev, EV_READ | EV_WRITE);
    push(ij, ST_GREETING);
    arm(ij);
    if (bufferevent_socket_connect(ij->bev, spec->target, (int)spec->target_len) < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "queue: cannot connect to the target: %s", strerror(errno));
        finish(ij, 0, msg);
    }
    *out = ij;
    return 0;
}

void inject_free(struct inject *ij)
{
    if (ij == NULL)
        return;
    if (ij->flow)
        pcap_tcp_flow_close(ij->flow, PCAP_FROM_CLIENT);
    if (ij->bev)
        bufferevent_free(ij->bev);
    if (ij->timer)
        event_free(ij->timer);
    if (ij->done_ev)
        event_free(ij->done_ev);
    smtp_reply_free(&ij->reply);
    for (size_t i = 0; ij->rcpts && i < ij->spec.nrcpts; i++)
        free(ij->rcpts[i]);
    free(ij->rcpts);
    free(ij->from);
    free(ij);
}

unsigned long inject_accepted(const struct inject *ij)
{
    return ij->accepted;
}
