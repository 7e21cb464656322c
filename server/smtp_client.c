/* smtp_client.c — the outbound SMTP client etrnd uses to flush a queue to a node.
 *
 *   smtp_client_connect(&c, base, sa, len, &cfg, on_ready, arg, &err);
 *   smtp_client_send(c, &msg, on_sent, arg, &err);   // repeat while smtp_client_usable(c)
 *   smtp_client_quit(c, on_closed, arg);             // then smtp_client_free(c)
 *
 * A state machine on one libevent bufferevent (an OpenSSL filter after STARTTLS). One
 * timer covers whichever step is in progress. Replies are counted against the commands
 * sent, never matched by code (RFC 2920 §3.1). The message text is streamed from its
 * file in blocks with dot-stuffing and CRLF line endings; memory is bounded by the
 * output high-water mark. User callbacks may free the client: a depth counter defers
 * the actual free until the libevent callback that called them unwinds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "smtp_client.h"
#include "netaddr.h"
#include "smtp_reply.h"
#include "strbuf.h"

#define BODY_READ_CHUNK 16384
#define BODY_HIGH_WATER 65536     /* stop filling the output buffer above this */
#define BODY_LOW_WATER  16384     /* refill when the output drains below this */
#define QUIT_TIMEOUT_MAX_MS 10000 /* nobody waits long for a QUIT reply */
#define RCPT_REPLY_MAX 256

enum client_state {
    ST_CONNECTING,
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_TLS_HANDSHAKE,
    ST_IDLE,
    ST_TRANSACTION,           /* RSET/MAIL/RCPT replies outstanding */
    ST_DATA,                  /* waiting for 354 */
    ST_BODY,                  /* streaming the text */
    ST_DOT,                   /* waiting for the reply to the final dot */
    ST_QUIT,
    ST_DEAD
};

enum plan_kind { PLAN_RSET, PLAN_MAIL, PLAN_RCPT };

enum deferred_action { DEFER_NONE, DEFER_CONNECT_FAILED, DEFER_QUIT_DONE, DEFER_LOCAL_REFUSAL };

struct smtp_client {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *timer;
    struct event *defer_ev;
    enum deferred_action deferred;
    enum client_state state;

    char helo_name[256];
    char peer_name[256];
    char peer_addr[NETADDR_TEXT_MAX];
    struct smtp_client_config cfg;

    int depth;                /* libevent callbacks of ours on the stack */
    int zombie;               /* freed by the user while depth > 0 */
    int closing;              /* server said 421 or an error happened: not reusable */

    /* what the server offered */
    int esmtp, ext_pipelining, ext_starttls, ext_size_known;
    uint64_t ext_size;
    int tls;

    enum smtp_client_failure failure;
    char error[SMTP_CLIENT_REPLY_MAX];

    struct smtp_reply reply;

    smtp_client_ready_cb on_ready;
    void *ready_arg;
    smtp_client_sent_cb on_sent;
    void *sent_arg;
    smtp_client_closed_cb on_closed;
    void *closed_arg;

    /* the transaction in progress */
    struct smtp_message msg;
    int need_rset;
    size_t plan_len, plan_sent, plan_answered;
    int mail_code;
    char mail_reply[SMTP_CLIENT_REPLY_MAX];
    int *rcpt_code;
    char (*rcpt_text)[RCPT_REPLY_MAX];
    const char **rcpt_text_ptrs;
    size_t rcpt_cap;

    /* message text streaming */
    int body_eof;
    int line_start;
    int pending_cr;
};

static SSL_CTX *client_tls_ctx;
static int client_tls_ctx_failed;

static SSL_CTX *client_tls_context(void)
{
    if (client_tls_ctx || client_tls_ctx_failed)
        return client_tls_ctx;
    client_tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!client_tls_ctx) {
        client_tls_ctx_failed = 1;
        return NULL;
    }
    /* Opportunistic TLS (RFC 7435): encrypt when we can, verify nothing. */
    SSL_CTX_set_verify(client_tls_ctx, SSL_VERIFY_NONE, NULL);
    return client_tls_ctx;
}

/* ---------------------------------------------------------------- helpers */

static void client_format_reply(const struct smtp_reply *r, char *out, size_t n)
{
    struct strbuf sb;
    strbuf_init(&sb, n - 1);
    strbuf_appendf(&sb, "%d", r->code);
    if (r->text.len) {
        strbuf_append(&sb, " ", 1);
        for (size_t i = 0; i < r->text.len; i++) {
            char ch = r->text.data[i];
            if (ch == '\n')
                ch = ' ';
            else if ((unsigned char)ch < 0x20 || (unsigned char)ch > 0x7e)
                ch = '?';
            if (strbuf_append(&sb, &ch, 1) < 0)
                break;
        }
    }
    str_copy(out, n, sb.data);
    strbuf_free(&sb);
}

static void client_arm(struct smtp_client *c, unsigned long long ms)
{
    if (ms == 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(c->timer, &tv);
}

static void client_write(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void client_write(struct smtp_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
}

static void client_close_socket(struct smtp_client *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    evtimer_del(c->timer);
}

static void client_really_free(struct smtp_client *c)
{
    client_close_socket(c);
    event_free(c->timer);
    event_free(c->defer_ev);
    smtp_reply_free(&c->reply);
    free(c->rcpt_code);
    free(c->rcpt_text);
    free(c->rcpt_text_ptrs);
    free(c);
}

static void client_enter(struct smtp_client *c)
{
    c->depth++;
}

/* Returns 1 if c is gone and the caller must not touch it. */
static int client_leave(struct smtp_client *c)
{
    c->depth--;
    if (c->zombie) {
        if (c->depth == 0)
            client_really_free(c);
        return 1;
    }
    return 0;
}

static const char *client_state_text(enum client_state st)
{
    switch (st) {
    case ST_CONNECTING: return "while connecting";
    case ST_GREETING: return "waiting for the greeting";
    case ST_EHLO: return "after EHLO";
    case ST_HELO: return "after HELO";
    case ST_STARTTLS: return "after STARTTLS";
    case ST_TLS_HANDSHAKE: return "during the TLS handshake";
    case ST_IDLE: return "while idle";
    case ST_TRANSACTION: return "after MAIL/RCPT";
    case ST_DATA: return "after DATA";
    case ST_BODY: return "while sending the message text";
    case ST_DOT: return "after end of data";
    case ST_QUIT: return "after QUIT";
    default: return "after the connection ended";
    }
}

static void client_result_init(struct smtp_client *c, struct smtp_message_result *res,
                               enum smtp_msg_outcome outcome, int code, const char *reply)
{
    memset(res, 0, sizeof(*res));
    res->outcome = outcome;
    res->code = code;
    str_copy(res->reply, sizeof res->reply, reply ? reply : "");
    res->rcpt_code = c->rcpt_code;
    for (size_t i = 0; i < c->msg.nrcpt; i++)
        c->rcpt_text_ptrs[i] = c->rcpt_text[i];
    res->rcpt_reply = c->rcpt_text_ptrs;
}

/* Ends the message in progress with res; the callback is the last thing that happens. */
static void client_finish_message(struct smtp_client *c, const struct smtp_message_result *res)
{
    smtp_client_sent_cb cb = c->on_sent;
    void *arg = c->sent_arg;
    c->on_sent = NULL;
    if (c->state != ST_DEAD)
        c->state = ST_IDLE;
    evtimer_del(c->timer);
    if (cb)
        cb(c, res, arg);
}

/* The connection is over because of kind/text; tells whoever waits on it. */
static void client_fail(struct smtp_client *c, enum smtp_client_failure kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void client_fail(struct smtp_client *c, enum smtp_client_failure kind, const char *fmt, ...)
{
    enum client_state was = c->state;
    if (was == ST_DEAD)
        return;
    c->failure = kind;
    va_list ap;
    va_start(ap, fmt);
    struct strbuf sb;
    strbuf_init(&sb, sizeof c->error - 1);
    strbuf_vappendf(&sb, fmt, ap);
    str_copy(c->error, sizeof c->error, sb.data);
    strbuf_free(&sb);
    va_end(ap);
    c->state = ST_DEAD;
    c->closing = 1;
    client_close_socket(c);

    switch (was) {
    case ST_CONNECTING: case ST_GREETING: case ST_EHLO: case ST_HELO:
    case ST_STARTTLS: case ST_TLS_HANDSHAKE:
        if (c->on_ready) {
            smtp_client_ready_cb cb = c->on_ready;
            c->on_ready = NULL;
            cb(c, 0, c->ready_arg);
        }
        break;
    case ST_TRANSACTION: case ST_DATA: case ST_BODY: case ST_DOT: {
        struct smtp_message_result res;
        client_result_init(c, &res, SMTP_MSG_CONN_LOST, 0, c->error);
        res.dot_sent = (was == ST_DOT);
        client_finish_message(c, &res);
        break;
    }
    case ST_QUIT:
        if (c->on_closed) {
            smtp_client_closed_cb cb = c->on_closed;
            c->on_closed = NULL;
            cb(c, c->closed_arg);
        }
        break;
    default:
        break;
    }
}

static void client_ready(struct smtp_client *c)
{
    c->state = ST_IDLE;
    evtimer_del(c->timer);
    smtp_client_ready_cb cb = c->on_ready;
    c->on_ready = NULL;
    if (cb)
        cb(c, 1, c->ready_arg);
}

/* ---------------------------------------------------------------- session set-up */

static void client_send_ehlo(struct smtp_client *c)
{
    c->state = ST_EHLO;
    c->esmtp = c->ext_pipelining = c->ext_starttls = c->ext_size_known = 0;
    c->ext_size = 0;
    client_write(c, "EHLO %s\r\n", c->helo_name);
    client_arm(c, c->cfg.timeout_greeting_ms);
}

static void client_on_event(struct bufferevent *bev, short what, void *arg);
static void client_on_read(struct bufferevent *bev, void *arg);
static void client_on_write(struct bufferevent *bev, void *arg);

static int client_hostname_for_sni(const char *name)
{
    struct in6_addr a6;
    struct in_addr a4;
    return name[0] && strchr(name, '.') && inet_pton(AF_INET, name, &a4) != 1 &&
           inet_pton(AF_INET6, name, &a6) != 1;
}

static void client_start_tls(struct smtp_client *c)
{
    SSL_CTX *ctx = client_tls_context();
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (!ssl) {
        client_fail(c, SMTP_CLIENT_TLS, "TLS with %s[%s]: cannot create a TLS session",
                    c->peer_name, c->peer_addr);
        return;
    }
    if (client_hostname_for_sni(c->peer_name))
        SSL_set_tlsext_host_name(ssl, c->peer_name);
    /* Plaintext after the 220 must not be taken as protected (STARTTLS injection). */
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct bufferevent *tls = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
                                                             BUFFEREVENT_SSL_CONNECTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!tls) {
        SSL_free(ssl);
        client_fail(c, SMTP_CLIENT_TLS, "TLS with %s[%s]: cannot set up the filter",
                    c->peer_name, c->peer_addr);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    c->bev = tls;
    bufferevent_setcb(c->bev, client_on_read, client_on_write, client_on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOW_WATER, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = ST_TLS_HANDSHAKE;
    client_arm(c, c->cfg.timeout_greeting_ms);
}

static void client_on_ehlo_reply(struct smtp_client *c, const struct smtp_reply *r,
                                 const char *text)
{
    if (c->state == ST_EHLO && r->code / 100 == 2) {
        const char *params = NULL;
        c->esmtp = 1;
        c->ext_pipelining = smtp_reply_has_keyword(r, "PIPELINING", NULL);
        c->ext_starttls = smtp_reply_has_keyword(r, "STARTTLS", NULL);
        if (smtp_reply_has_keyword(r, "SIZE", &params)) {
            c->ext_size_known = 1;
            c->ext_size = params ? strtoull(params, NULL, 10) : 0;
        }
        if (c->ext_starttls && c->cfg.starttls && !c->tls && client_tls_context()) {
            c->state = ST_STARTTLS;
            client_write(c, "STARTTLS\r\n");
            client_arm(c, c->cfg.timeout_mail_ms);
            return;
        }
        client_ready(c);
        return;
    }
    if (c->state == ST_EHLO && r->code / 100 == 5 && !c->tls) {
        c->state = ST_HELO;
        client_write(c, "HELO %s\r\n", c->helo_name);
        client_arm(c, c->cfg.timeout_greeting_ms);
        return;
    }
    if (c->state == ST_HELO && r->code / 100 == 2) {
        client_ready(c);
        return;
    }
    client_fail(c, SMTP_CLIENT_REFUSED, "%s[%s] refused %s: %s", c->peer_name, c->peer_addr,
                c->state == ST_HELO ? "HELO" : "EHLO", text);
}

/* ---------------------------------------------------------------- transactions */

static enum plan_kind client_plan_kind(const struct smtp_client *c, size_t k, size_t *rcpt)
{
    if (c->need_rset) {
        if (k == 0)
            return PLAN_RSET;
        k--;
    }
    if (k == 0)
        return PLAN_MAIL;
    *rcpt = k - 1;
    return PLAN_RCPT;
}

static void client_plan_send_one(struct smtp_client *c)
{
    size_t i = 0;
    switch (client_plan_kind(c, c->plan_sent, &i)) {
    case PLAN_RSET:
        client_write(c, "RSET\r\n");
        break;
    case PLAN_MAIL:
        if (c->ext_size_known)
            client_write(c, "MAIL FROM:<%s> SIZE=%llu\r\n", c->msg.sender,
                         (unsigned long long)c->msg.size);
        else
            client_write(c, "MAIL FROM:<%s>\r\n", c->msg.sender);
        break;
    case PLAN_RCPT:
        client_write(c, "RCPT TO:<%s>\r\n", c->msg.rcpts[i]);
        break;
    }
    c->plan_sent++;
}

static unsigned long long client_plan_timeout(const struct smtp_client *c, size_t k)
{
    size_t i = 0;
    return client_plan_kind(c, k, &i) == PLAN_RCPT ? c->cfg.timeout_rcpt_ms : c->cfg.timeout_mail_ms;
}

static void client_transaction_decide(struct smtp_client *c)
{
    struct smtp_message_result res;
    c->need_rset = 0;
    if (c->mail_code / 100 != 2) {
        c->need_rset = 1;
        client_result_init(c, &res, c->mail_code / 100 == 5 ? SMTP_MSG_REJECTED : SMTP_MSG_DEFERRED,
                           c->mail_code, c->mail_reply);
        client_finish_message(c, &res);
        return;
    }
    size_t accepted = 0, first_refused = c->msg.nrcpt;
    for (size_t i = 0; i < c->msg.nrcpt; i++) {
        if (c->rcpt_code[i] / 100 == 2)
            accepted++;
        else if (first_refused == c->msg.nrcpt)
            first_refused = i;
    }
    if (c->closing) {
        /* 421 during RCPT: the server is going away; nothing was sent. */
        client_result_init(c, &res, SMTP_MSG_DEFERRED, 421, "421 server closing the connection");
        client_finish_message(c, &res);
        return;
    }
    if (accepted == 0) {
        c->need_rset = 1;
        client_result_init(c, &res, SMTP_MSG_RCPTS_FAILED,
                           first_refused < c->msg.nrcpt ? c->rcpt_code[first_refused] : 0,
                           first_refused < c->msg.nrcpt ? c->rcpt_text[first_refused] : "");
        client_finish_message(c, &res);
        return;
    }
    c->state = ST_DATA;
    client_write(c, "DATA\r\n");
    client_arm(c, c->cfg.timeout_data_ms);
}

static void client_on_transaction_reply(struct smtp_client *c, const struct smtp_reply *r,
                                        const char *text)
{
    size_t i = 0;
    enum plan_kind kind = client_plan_kind(c, c->plan_answered, &i);
    c->plan_answered++;
    if (r->code == 421)
        c->closing = 1;
    if (kind == PLAN_MAIL) {
        c->mail_code = r->code;
        str_copy(c->mail_reply, sizeof c->mail_reply, text);
    } else if (kind == PLAN_RCPT) {
        c->rcpt_code[i] = r->code;
        str_copy(c->rcpt_text[i], RCPT_REPLY_MAX, text);
    }
    if (!c->ext_pipelining) {
        if (kind == PLAN_MAIL && r->code / 100 != 2)
            c->plan_len = c->plan_sent;           /* no RCPT after a refused MAIL */
        if (c->plan_sent < c->plan_len && !c->closing)
            client_plan_send_one(c);
        else
            c->plan_len = c->plan_sent;
    }
    if (c->plan_answered < c->plan_sent) {
        client_arm(c, client_plan_timeout(c, c->plan_answered));
        return;
    }
    if (c->plan_answered == c->plan_len)
        client_transaction_decide(c);
}

/* Appends text from the file to out, dot-stuffed with CRLF line endings. */
static void client_stuff(struct smtp_client *c, const char *p, size_t n, struct evbuffer *out)
{
    char buf[2 * BODY_READ_CHUNK + 4];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (c->pending_cr) {
            c->pending_cr = 0;
            buf[o++] = '\r';
            buf[o++] = '\n';
            c->line_start = 1;
            if (ch == '\n')
                continue;
        }
        if (ch == '\r') {
            c->pending_cr = 1;
            continue;
        }
        if (ch == '\n') {                 /* bare LF: make it CRLF */
            buf[o++] = '\r';
            buf[o++] = '\n';
            c->line_start = 1;
            continue;
        }
        if (c->line_start && ch == '.')
            buf[o++] = '.';
        buf[o++] = ch;
        c->line_start = 0;
    }
    evbuffer_add(out, buf, o);
}

static void client_fill_body(struct smtp_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char chunk[BODY_READ_CHUNK];
    while (!c->body_eof && evbuffer_get_length(out) < BODY_HIGH_WATER) {
        ssize_t n = read(c->msg.body_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            struct smtp_message_result res;
            client_result_init(c, &res, SMTP_MSG_LOCAL_ERROR, 0, "");
            str_format(res.reply, sizeof res.reply, "reading the queued message: %s", strerror(e));
            /* Half a message must never be ended with a dot: drop the connection. */
            c->state = ST_DEAD;
            c->closing = 1;
            c->failure = SMTP_CLIENT_LOST;
            str_copy(c->error, sizeof c->error, res.reply);
            client_close_socket(c);
            client_finish_message(c, &res);
            return;
        }
        if (n == 0) {
            c->body_eof = 1;
            if (c->pending_cr || !c->line_start)
                evbuffer_add(out, "\r\n", 2);
            c->pending_cr = 0;
            evbuffer_add(out, ".\r\n", 3);
            c->state = ST_DOT;
            client_arm(c, c->cfg.timeout_block_ms);
            return;
        }
        client_stuff(c, chunk, (size_t)n, out);
    }
    client_arm(c, c->cfg.timeout_block_ms);
}

static void client_start_body(struct smtp_client *c)
{
    if (lseek(c->msg.body_fd, 0, SEEK_SET) < 0) {
        int e = errno;
        struct smtp_message_result res;
        client_result_init(c, &res, SMTP_MSG_LOCAL_ERROR, 0, "");
        str_format(res.reply, sizeof res.reply, "rewinding the queued message: %s", strerror(e));
        c->state = ST_DEAD;
        c->closing = 1;
        client_close_socket(c);
        client_finish_message(c, &res);
        return;
    }
    c->state = ST_BODY;
    c->body_eof = 0;
    c->line_start = 1;
    c->pending_cr = 0;
    client_fill_body(c);
}

static void client_on_message_reply(struct smtp_client *c, const struct smtp_reply *r,
                                    const char *text)
{
    struct smtp_message_result res;
    if (r->code == 421)
        c->closing = 1;
    if (c->state == ST_DATA && r->code == 354) {
        client_start_body(c);
        return;
    }
    enum smtp_msg_outcome outcome;
    if (r->code / 100 == 2 && c->state == ST_DOT)
        outcome = SMTP_MSG_SENT;
    else if (r->code / 100 == 4)
        outcome = SMTP_MSG_DEFERRED;
    else
        outcome = SMTP_MSG_REJECTED;
    int dot_sent = (c->state == ST_DOT);
    if (c->state == ST_BODY) {
        /* A reply while we are still sending: the server gave up on the message. */
        c->closing = 1;
    }
    if (c->state == ST_DATA)
        c->need_rset = 1;
    client_result_init(c, &res, outcome, r->code, text);
    res.dot_sent = dot_sent;
    if (c->closing) {
        c->state = ST_DEAD;
        c->failure = SMTP_CLIENT_LOST;
        str_format(c->error, sizeof c->error, "%s[%s] closing: %s", c->peer_name, c->peer_addr, text);
        client_close_socket(c);
    }
    client_finish_message(c, &res);
}

/* ---------------------------------------------------------------- libevent callbacks */

static void client_handle_reply(struct smtp_client *c)
{
    char text[SMTP_CLIENT_REPLY_MAX];
    client_format_reply(&c->reply, text, sizeof text);
    switch (c->state) {
    case ST_GREETING:
        if (c->reply.code / 100 == 2)
            client_send_ehlo(c);
        else
            client_fail(c, SMTP_CLIENT_REFUSED, "%s[%s] refused to talk to me: %s", c->peer_name,
                        c->peer_addr, text);
        break;
    case ST_EHLO:
    case ST_HELO:
        client_on_ehlo_reply(c, &c->reply, text);
        break;
    case ST_STARTTLS:
        if (c->reply.code == 220)
            client_start_tls(c);
        else
            client_ready(c);         /* STARTTLS refused: carry on in the clear */
        break;
    case ST_TRANSACTION:
        client_on_transaction_reply(c, &c->reply, text);
        break;
    case ST_DATA:
    case ST_BODY:
    case ST_DOT:
        client_on_message_reply(c, &c->reply, text);
        break;
    case ST_QUIT:
        client_fail(c, SMTP_CLIENT_OK, "closed after QUIT");
        break;
    case ST_IDLE:
        /* Unsolicited (typically 421 before an idle timeout): do not reuse. */
        c->closing = 1;
        c->state = ST_DEAD;
        c->failure = SMTP_CLIENT_LOST;
        str_format(c->error, sizeof c->error, "%s[%s] said while idle: %s", c->peer_name,
                   c->peer_addr, text);
        client_close_socket(c);
        break;
    default:
        break;
    }
}

static void client_on_read(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    (void)bev;
    client_enter(c);
    while (c->bev && c->state != ST_DEAD && !c->zombie) {
        struct etrn_err err;
        enum smtp_reply_status st = smtp_reply_parse(bufferevent_get_input(c->bev), &c->reply, &err);
        if (st == SMTP_REPLY_INCOMPLETE)
            break;
        if (st == SMTP_REPLY_MALFORMED) {
            client_fail(c, SMTP_CLIENT_PROTOCOL, "%s[%s] sent a malformed reply %s: %s", c->peer_name,
                        c->peer_addr, client_state_text(c->state), err.msg);
            break;
        }
        client_handle_reply(c);
    }
    client_leave(c);
}

static void client_on_write(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    (void)bev;
    client_enter(c);
    if (c->state == ST_BODY)
        client_fill_body(c);
    else if (c->state == ST_DOT && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        client_arm(c, c->cfg.timeout_dot_ms);
    client_leave(c);
}

static const char *client_tls_error_text(struct bufferevent *bev, char *buf, size_t n)
{
    unsigned long e = bufferevent_get_openssl_error(bev);
    if (e == 0)
        e = ERR_get_error();
    if (e == 0)
        return "handshake failed";
    ERR_error_string_n(e, buf, n);
    return buf;
}

static void client_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_client *c = arg;
    client_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == ST_CONNECTING) {
            c->state = ST_GREETING;
            client_arm(c, c->cfg.timeout_greeting_ms);
        } else if (c->state == ST_TLS_HANDSHAKE) {
            c->tls = 1;
            client_send_ehlo(c);
        }
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        int e = EVUTIL_SOCKET_ERROR();
        if (c->state == ST_CONNECTING) {
            client_fail(c, SMTP_CLIENT_CONNECT, "connect to %s[%s]: %s", c->peer_name, c->peer_addr,
                        e ? evutil_socket_error_to_string(e) : "failed");
        } else if (c->state == ST_TLS_HANDSHAKE) {
            char buf[256];
            client_fail(c, SMTP_CLIENT_TLS, "TLS with %s[%s]: %s", c->peer_name, c->peer_addr,
                        client_tls_error_text(bev, buf, sizeof buf));
        } else if (what & BEV_EVENT_EOF) {
            client_fail(c, SMTP_CLIENT_LOST, "lost connection with %s[%s] %s", c->peer_name,
                        c->peer_addr, client_state_text(c->state));
        } else {
            client_fail(c, SMTP_CLIENT_LOST, "lost connection with %s[%s] %s: %s", c->peer_name,
                        c->peer_addr, client_state_text(c->state),
                        e ? evutil_socket_error_to_string(e) : "I/O error");
        }
    }
    client_leave(c);
}

static void client_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    (void)fd;
    (void)what;
    client_enter(c);
    client_fail(c, SMTP_CLIENT_TIMEOUT, "timeout %s with %s[%s]", client_state_text(c->state),
                c->peer_name, c->peer_addr);
    client_leave(c);
}

static void client_on_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    (void)fd;
    (void)what;
    client_enter(c);
    enum deferred_action act = c->deferred;
    c->deferred = DEFER_NONE;
    if (act == DEFER_CONNECT_FAILED) {
        smtp_client_ready_cb cb = c->on_ready;
        c->on_ready = NULL;
        if (cb)
            cb(c, 0, c->ready_arg);
    } else if (act == DEFER_LOCAL_REFUSAL) {
        struct smtp_message_result res;
        client_result_init(c, &res, SMTP_MSG_REJECTED, c->mail_code, c->mail_reply);
        client_finish_message(c, &res);
    } else if (act == DEFER_QUIT_DONE) {
        smtp_client_closed_cb cb = c->on_closed;
        c->on_closed = NULL;
        if (cb)
            cb(c, c->closed_arg);
    }
    client_leave(c);
}

static void client_defer(struct smtp_client *c, enum deferred_action act)
{
    c->deferred = act;
    event_active(c->defer_ev, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- public API */

int smtp_client_connect(struct smtp_client **out, struct event_base *base,
                        const struct sockaddr *sa, socklen_t salen,
                        const struct smtp_client_config *cfg, smtp_client_ready_cb on_ready,
                        void *arg, struct etrn_err *err)
{
    *out = NULL;
    struct smtp_client *c = calloc(1, sizeof(*c));
    if (!c)
        return err_set(err, "smtp client: out of memory");
    c->base = base;
    c->cfg = *cfg;
    str_copy(c->helo_name, sizeof c->helo_name,
             cfg->helo_name && cfg->helo_name[0] ? cfg->helo_name : "localhost.localdomain");
    if (netaddr_format_host(sa, c->peer_addr, sizeof c->peer_addr) < 0)
        str_copy(c->peer_addr, sizeof c->peer_addr, "?");
    str_copy(c->peer_name, sizeof c->peer_name,
             cfg->peer_name && cfg->peer_name[0] ? cfg->peer_name : c->peer_addr);
    c->cfg.helo_name = c->helo_name;
    c->cfg.peer_name = c->peer_name;
    c->on_ready = on_ready;
    c->ready_arg = arg;
    smtp_reply_init(&c->reply);
    c->timer = evtimer_new(base, client_on_timer, c);
    c->defer_ev = evtimer_new(base, client_on_deferred, c);
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->timer || !c->defer_ev || !c->bev) {
        client_really_free(c);
        return err_set(err, "smtp client: cannot create events");
    }
    bufferevent_setcb(c->bev, client_on_read, client_on_write, client_on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOW_WATER, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = ST_CONNECTING;
    client_arm(c, c->cfg.timeout_connect_ms);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, (int)salen) < 0) {
        int e = errno;
        c->failure = SMTP_CLIENT_CONNECT;
        str_format(c->error, sizeof c->error, "connect to %s[%s]: %s", c->peer_name, c->peer_addr,
                   e ? strerror(e) : "failed");
        c->state = ST_DEAD;
        c->closing = 1;
        client_close_socket(c);
        client_defer(c, DEFER_CONNECT_FAILED);
    }
    *out = c;
    return 0;
}

static int client_address_ok(const char *a)
{
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '<' || *p == '>')
            return 0;
    return 1;
}

int smtp_client_send(struct smtp_client *c, const struct smtp_message *msg,
                     smtp_client_sent_cb on_sent, void *arg, struct etrn_err *err)
{
    if (!smtp_client_usable(c))
        return err_set(err, "connection to %s[%s] is not usable", c->peer_name, c->peer_addr);
    if (msg->nrcpt == 0 || msg->nrcpt > SMTP_CLIENT_RCPTS_MAX)
        return err_set(err, "%zu recipients in one transaction", msg->nrcpt);
    if (msg->nrcpt > c->rcpt_cap) {
        int *codes = realloc(c->rcpt_code, msg->nrcpt * sizeof(*codes));
        if (codes)
            c->rcpt_code = codes;
        char (*texts)[RCPT_REPLY_MAX] = realloc(c->rcpt_text, msg->nrcpt * sizeof(*texts));
        if (texts)
            c->rcpt_text = texts;
        const char **ptrs = realloc(c->rcpt_text_ptrs, msg->nrcpt * sizeof(*ptrs));
        if (ptrs)
            c->rcpt_text_ptrs = ptrs;
        if (!codes || !texts || !ptrs)
            return err_set(err, "smtp client: out of memory");
        c->rcpt_cap = msg->nrcpt;
    }
    c->msg = *msg;
    c->on_sent = on_sent;
    c->sent_arg = arg;
    c->mail_code = 0;
    c->mail_reply[0] = '\0';
    for (size_t i = 0; i < msg->nrcpt; i++) {
        c->rcpt_code[i] = 0;
        c->rcpt_text[i][0] = '\0';
    }

    int bad = !client_address_ok(msg->sender[0] ? msg->sender : "x");
    for (size_t i = 0; i < msg->nrcpt && !bad; i++)
        bad = !client_address_ok(msg->rcpts[i]);
    int too_big = c->ext_size_known && c->ext_size > 0 && msg->size > c->ext_size;
    if (bad || too_big) {
        /* Refused here, before any command goes out. */
        c->state = ST_TRANSACTION;
        c->plan_len = c->plan_sent = c->plan_answered = 0;
        c->mail_code = bad ? 553 : 552;
        if (bad)
            str_copy(c->mail_reply, sizeof c->mail_reply,
                     "553 5.1.7 address with characters SMTP cannot carry");
        else
            str_format(c->mail_reply, sizeof c->mail_reply,
                       "552 5.3.4 message size %llu exceeds the limit %llu of %s",
                       (unsigned long long)msg->size, (unsigned long long)c->ext_size, c->peer_name);
        client_defer(c, DEFER_LOCAL_REFUSAL);   /* reported from the event loop */
        return 0;
    }

    c->state = ST_TRANSACTION;
    c->plan_len = (c->need_rset ? 1 : 0) + 1 + msg->nrcpt;
    c->plan_sent = c->plan_answered = 0;
    if (c->ext_pipelining) {
        while (c->plan_sent < c->plan_len)
            client_plan_send_one(c);
    } else {
        client_plan_send_one(c);
    }
    client_arm(c, client_plan_timeout(c, 0));
    return 0;
}

void smtp_client_quit(struct smtp_client *c, smtp_client_closed_cb on_closed, void *arg)
{
    c->on_closed = on_closed;
    c->closed_arg = arg;
    c->on_sent = NULL;
    c->on_ready = NULL;
    if (c->bev && c->state == ST_IDLE) {
        c->state = ST_QUIT;
        client_write(c, "QUIT\r\n");
        unsigned long long ms = c->cfg.timeout_mail_ms;
        if (ms == 0 || ms > QUIT_TIMEOUT_MAX_MS)
            ms = QUIT_TIMEOUT_MAX_MS;
        client_arm(c, ms);
        return;
    }
    c->state = ST_DEAD;
    c->closing = 1;
    client_close_socket(c);
    client_defer(c, DEFER_QUIT_DONE);
}

void smtp_client_free(struct smtp_client *c)
{
    if (!c)
        return;
    if (c->depth > 0) {
        c->zombie = 1;
        c->on_ready = NULL;
        c->on_sent = NULL;
        c->on_closed = NULL;
        c->state = ST_DEAD;
        client_close_socket(c);
        return;
    }
    client_really_free(c);
}

int smtp_client_usable(const struct smtp_client *c)
{
    return c && c->bev && c->state == ST_IDLE && !c->closing && !c->zombie;
}

enum smtp_client_failure smtp_client_failure(const struct smtp_client *c)
{
    return c->failure;
}

const char *smtp_client_error(const struct smtp_client *c)
{
    return c->error;
}

int smtp_client_tls_active(const struct smtp_client *c)
{
    return c->tls;
}

int smtp_client_pipelining(const struct smtp_client *c)
{
    return c->ext_pipelining;
}
