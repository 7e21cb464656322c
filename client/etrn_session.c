/* etrn_session.c — the ETRN client's conversation with a relay, on libevent.
 *
 *   etrn_session_start(base, &opts, nodes, n, done, arg, &err);
 *   event_base_dispatch(base);
 *
 * A small state machine: each reply (parsed strictly by lib/smtp_reply) moves the session
 * one step. Every step is bounded by opts->timeout_ms through the bufferevent's read
 * timeout. The callback runs exactly once, after which the session has freed itself. */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <openssl/evp.h>

#include "etrn_session.h"
#include "smtp_reply.h"
#include "strbuf.h"
#include "smtp_line.h"

enum session_state {
    ST_CONNECT, ST_GREETING, ST_EHLO, ST_STARTTLS, ST_TLS_EHLO, ST_AUTH, ST_ETRN, ST_QUIT
};

struct etrn_session {
    struct event_base *base;
    struct etrn_session_opts opts;
    struct bufferevent *bev;
    SSL_CTX *ssl_ctx;
    enum session_state state;
    struct etrn_node_result *results;
    size_t nnodes;
    size_t next;                  /* index of the node whose ETRN reply we await */
    int etrn_advertised;
    int starttls_advertised;
    int auth_plain_advertised;
    int in_tls;
    int done;                     /* the callback has run; freeing is scheduled */
    etrn_session_done_cb cb;
    void *cb_arg;
    char error[ETRN_ERR_MAX];
    struct smtp_reply reply;
};

static void session_finish(struct etrn_session *s);
static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

static void session_fail(struct etrn_session *s, const char *fmt, const char *detail)
{
    if (s->done)
        return;
    if (s->error[0] == '\0')
        snprintf(s->error, sizeof s->error, fmt, detail ? detail : "");
    for (size_t i = 0; i < s->nnodes; i++)
        if (!s->results[i].sent)
            s->results[i].outcome = ETRN_CONNECTION;
    session_finish(s);
}

static void session_send(struct etrn_session *s, const char *line)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (evbuffer_add_printf(out, "%s\r\n", line) < 0)
        session_fail(s, "cannot queue command: %s", line);
}

/* Ends a session that is still in order with QUIT (RFC 5321 §4.1.1.10) instead of dropping
 * it: the relay did nothing wrong, it only cannot do what we need. Nodes not yet asked
 * for get outcome o; the callback runs when the relay answers QUIT or closes. */
static void session_give_up(struct etrn_session *s, enum etrn_outcome o, const char *fmt,
                            const char *detail)
{
    if (s->done)
        return;
    if (s->error[0] == '\0')
        snprintf(s->error, sizeof s->error, fmt, detail ? detail : "");
    for (size_t i = 0; i < s->nnodes; i++)
        if (!s->results[i].sent)
            s->results[i].outcome = o;
    s->next = s->nnodes;
    s->state = ST_QUIT;
    session_send(s, "QUIT");
}

static void session_first_line(const struct smtp_reply *r, char *out, size_t n)
{
    const char *nl = memchr(r->text.data, '\n', r->text.len);
    size_t len = nl ? (size_t)(nl - r->text.data) : r->text.len;
    if (len >= n)
        len = n - 1;
    memcpy(out, r->text.data, len);
    out[len] = '\0';
}

static void session_send_ehlo(struct etrn_session *s)
{
    char line[300];
    if (str_format(line, sizeof line, "EHLO %s", s->opts.helo_name) < 0) {
        session_fail(s, "EHLO name too long%s", NULL);
        return;
    }
    session_send(s, line);
}

/* Sends the next ETRN, or QUIT when all are done or ETRN must stop. */
static void session_send_next_etrn(struct etrn_session *s)
{
    if (s->next >= s->nnodes) {
        s->state = ST_QUIT;
        session_send(s, "QUIT");
        return;
    }
    char line[SMTP_COMMAND_LINE_MAX];
    const char *node = s->results[s->next].node;
    int rc = s->opts.option ? str_format(line, sizeof line, "ETRN %c%s", s->opts.option, node)
                            : str_format(line, sizeof line, "ETRN %s", node);
    if (rc < 0 || strlen(line) + 2 > SMTP_COMMAND_LINE_MAX) {
        /* Too long to be a valid command: never sent, reported as a syntax problem. */
        s->results[s->next].outcome = ETRN_UNSUPPORTED;
        snprintf(s->results[s->next].text, sizeof s->results[s->next].text,
                 "node name too long for an SMTP command line");
        s->next++;
        session_send_next_etrn(s);
        return;
    }
    s->state = ST_ETRN;
    s->results[s->next].sent = 1;
    session_send(s, line);
}

static int session_start_tls(struct etrn_session *s)
{
    if (s->ssl_ctx == NULL) {
        s->ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (s->ssl_ctx == NULL)
            return -1;
        /* The client authenticates the relay only by the fact that it answers at the
         * address it was given; ETRN discloses nothing, so no certificate check. */
        SSL_CTX_set_verify(s->ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL *ssl = SSL_new(s->ssl_ctx);
    if (ssl == NULL)
        return -1;
    if (s->opts.relay_name)
        SSL_set_tlsext_host_name(ssl, s->opts.relay_name);
    struct bufferevent *tls = bufferevent_openssl_filter_new(
        s->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tls == NULL) {
        SSL_free(ssl);
        return -1;
    }
    s->bev = tls;
    s->in_tls = 1;
    bufferevent_setcb(tls, session_read_cb, NULL, session_event_cb, s);
    unsigned ms = s->opts.timeout_ms ? s->opts.timeout_ms : 30000;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    bufferevent_set_timeouts(tls, &tv, &tv);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    return 0;
}

static void session_send_auth(struct etrn_session *s)
{
    /* AUTH PLAIN: base64("\0user\0password"), RFC 4616. */
    unsigned char raw[600];
    size_t ul = strlen(s->opts.auth_user), pl = strlen(s->opts.auth_password);
    if (ul + pl + 2 > sizeof raw) {
        session_fail(s, "AUTH credentials too long%s", NULL);
        return;
    }
    raw[0] = '\0';
    memcpy(raw + 1, s->opts.auth_user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, s->opts.auth_password, pl);
    char enc[820];
    int n = EVP_EncodeBlock((unsigned char *)enc, raw, (int)(ul + pl + 2));
    OPENSSL_cleanse(raw, sizeof raw);
    if (n < 0) {
        session_fail(s, "cannot encode AUTH credentials%s", NULL);
        return;
    }
    char line[840];
    str_format(line, sizeof line, "AUTH PLAIN %s", enc);
    OPENSSL_cleanse(enc, sizeof enc);
    s->state = ST_AUTH;
    session_send(s, line);
    OPENSSL_cleanse(line, sizeof line);
}

/* After a successful EHLO (first, or again after TLS): decide the next step. */
static void session_after_ehlo(struct etrn_session *s)
{
    if (s->opts.starttls && !s->in_tls) {
        if (!s->starttls_advertised) {
            session_give_up(s, ETRN_CONNECTION, "relay does not offer STARTTLS%s", NULL);
            return;
        }
        s->state = ST_STARTTLS;
        session_send(s, "STARTTLS");
        return;
    }
    if (s->opts.auth_user) {
        if (!s->auth_plain_advertised) {
            session_give_up(s, ETRN_CONNECTION, "relay does not offer AUTH PLAIN%s", NULL);
            return;
        }
        session_send_auth(s);
        return;
    }
    if (!s->etrn_advertised && !s->opts.force) {
        session_give_up(s, ETRN_UNSUPPORTED, "relay does not advertise ETRN in its EHLO reply%s",
                        NULL);
        return;
    }
    session_send_next_etrn(s);
}

static void session_read_ehlo_keywords(struct etrn_session *s)
{
    const char *params = NULL;
    s->etrn_advertised = smtp_reply_has_keyword(&s->reply, "ETRN", NULL);
    s->starttls_advertised = smtp_reply_has_keyword(&s->reply, "STARTTLS", NULL);
    s->auth_plain_advertised = 0;
    if (smtp_reply_has_keyword(&s->reply, "AUTH", &params) && params) {
        /* The parameter list is space-separated mechanism names. */
        const char *p = params;
        while (*p) {
            while (*p == ' ')
                p++;
            size_t len = strcspn(p, " \n");
            if (len == 5 && str_ncasecmp(p, "PLAIN", 5) == 0)
                s->auth_plain_advertised = 1;
            p += len;
            if (*p == '\n')
                break;
        }
    }
}

static void session_handle_reply(struct etrn_session *s)
{
    const struct smtp_reply *r = &s->reply;
    char first[512];
    session_first_line(r, first, sizeof first);

    switch (s->state) {
    case ST_CONNECT:
    case ST_GREETING:
        if (r->code == 554) {
            /* RFC 5321 §3.1: after a 554 greeting the client should QUIT. */
            session_give_up(s, ETRN_CONNECTION, "relay greeting: %s", first);
            return;
        }
        if (r->code != 220) {
            session_fail(s, "relay greeting: %s", first);
            return;
        }
        s->state = ST_EHLO;
        session_send_ehlo(s);
        return;
    case ST_EHLO:
    case ST_TLS_EHLO:
        if (r->code == 421) {
            session_fail(s, "EHLO refused: %s", first);
            return;
        }
        if (r->code != 250) {
            /* No ESMTP, so no way to learn that ETRN is offered (RFC 1869 §4.2). */
            session_give_up(s, r->code / 100 == 4 ? ETRN_TEMPORARY : ETRN_UNSUPPORTED,
                            "EHLO refused: %s", first);
            return;
        }
        session_read_ehlo_keywords(s);
        session_after_ehlo(s);
        return;
    case ST_STARTTLS:
        if (r->code == 421) {
            session_fail(s, "STARTTLS refused: %s", first);
            return;
        }
        if (r->code != 220) {
            session_give_up(s, ETRN_CONNECTION, "STARTTLS refused: %s", first);
            return;
        }
        if (session_start_tls(s) < 0) {
            session_fail(s, "cannot start TLS%s", NULL);
            return;
        }
        return; /* continues in the event callback once the handshake is done */
    case ST_AUTH:
        if (r->code == 421) {
            session_fail(s, "AUTH refused: %s", first);
            return;
        }
        if (r->code != 235) {
            session_give_up(s, ETRN_CONNECTION, "AUTH refused: %s", first);
            return;
        }
        if (!s->etrn_advertised && !s->opts.force) {
            session_give_up(s, ETRN_UNSUPPORTED,
                            "relay does not advertise ETRN in its EHLO reply%s", NULL);
            return;
        }
        session_send_next_etrn(s);
        return;
    case ST_ETRN: {
        struct etrn_node_result *res = &s->results[s->next];
        res->code = r->code;
        str_copy(res->text, sizeof res->text, first);
        res->outcome = etrn_outcome_of(r->code);
        s->next++;
        if (r->code == 421) {
            session_fail(s, "relay closing: %s", first);
            return;
        }
        if (res->outcome == ETRN_UNSUPPORTED) {
            /* RFC 1985 §5.2.1: after 500/501 assume ETRN is unsupported and send no more. */
            for (size_t i = s->next; i < s->nnodes; i++) {
                s->results[i].outcome = ETRN_UNSUPPORTED;
                str_copy(s->results[i].text, sizeof s->results[i].text,
                         "not sent: an earlier ETRN was refused as unsupported");
            }
            s->next = s->nnodes;
        }
        session_send_next_etrn(s);
        return;
    }
    case ST_QUIT:
        session_finish(s);
        return;
    }
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
    struct etrn_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct etrn_err err = {{0}};
        enum smtp_reply_status st = smtp_reply_parse(in, &s->reply, &err);
        if (st == SMTP_REPLY_INCOMPLETE)
            return;
        if (st == SMTP_REPLY_MALFORMED) {
            session_fail(s, "malformed reply from relay: %s", err.msg);
            return;
        }
        session_handle_reply(s);
        /* The session may have finished, or switched to TLS, in which case bytes after
         * the 220 belong to no one and must not be read as replies. */
        if (s->done || s->bev != bev)
            return;
    }
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct etrn_session *s = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (s->in_tls) {
            s->state = ST_TLS_EHLO;
            session_send_ehlo(s);   /* RFC 3207 §4.2: forget everything, EHLO again */
        } else {
            s->state = ST_GREETING;
        }
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        session_fail(s, "timed out waiting for the relay%s", NULL);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (s->state == ST_QUIT) {
            session_finish(s);
            return;
        }
        session_fail(s, "relay closed the connection%s", NULL);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        const char *why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
        session_fail(s, s->in_tls ? "TLS or connection error: %s" : "connection error: %s", why);
    }
}

static void session_free_cb(evutil_socket_t fd, short what, void *arg)
{
    struct etrn_session *s = arg;
    (void)fd;
    (void)what;
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    smtp_reply_free(&s->reply);
    free(s->results);
    free(s);
}

/* Runs the callback once; the memory is freed from the event loop afterwards, so that
 * callers further up the stack (read callbacks) may still look at s->done. */
static void session_finish(struct etrn_session *s)
{
    if (s->done)
        return;
    s->done = 1;
    if (s->bev)
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    s->cb(s->cb_arg, s->results, s->nnodes, s->error[0] ? s->error : NULL);
    if (event_base_once(s->base, -1, EV_TIMEOUT, session_free_cb, s, NULL) < 0)
        session_free_cb(-1, 0, s);
}

static void session_connect_failed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_fail(arg, "cannot connect to the relay%s", NULL);
}

int etrn_session_start(struct event_base *base, const struct etrn_session_opts *opts,
                       const char *const *nodes, size_t nnodes, etrn_session_done_cb cb,
                       void *arg, struct etrn_err *err)
{
    if (nnodes == 0)
        return err_set(err, "no node to ask for");
    struct etrn_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(err, "out of memory");
    s->results = calloc(nnodes, sizeof *s->results);
    if (s->results == NULL) {
        free(s);
        return err_set(err, "out of memory");
    }
    s->base = base;
    s->opts = *opts;
    s->nnodes = nnodes;
    s->cb = cb;
    s->cb_arg = arg;
    smtp_reply_init(&s->reply);
    for (size_t i = 0; i < nnodes; i++) {
        s->results[i].node = nodes[i];
        s->results[i].outcome = ETRN_CONNECTION;
    }
    s->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (s->bev == NULL) {
        smtp_reply_free(&s->reply);
        free(s->results);
        free(s);
        return err_set(err, "cannot create a socket buffer");
    }
    bufferevent_setcb(s->bev, session_read_cb, NULL, session_event_cb, s);
    unsigned ms = opts->timeout_ms ? opts->timeout_ms : 30000;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    s->state = ST_CONNECT;
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&opts->relay.ss,
                                   (int)opts->relay.len) < 0) {
        /* Reported through the callback like any other failure, once the loop runs. */
        if (event_base_once(base, -1, EV_TIMEOUT, session_connect_failed_cb, s, NULL) < 0) {
            bufferevent_free(s->bev);
            smtp_reply_free(&s->reply);
            free(s->results);
            free(s);
            return err_set(err, "cannot schedule the connection");
        }
    }
    return 0;
}
