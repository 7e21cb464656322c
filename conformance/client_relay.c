/* client_relay.c — the scripted relay for client conformance (see client_relay.h).
 *
 *   client_relay_new(base, relay_step, lookup, arg, note, note_arg, &relay, &err);
 *   port = client_relay_port(relay);   ... the client talks to 127.0.0.1:port ...
 *   log = client_relay_log(relay);     client_relay_free(relay);
 *
 * Each connection answers one command at a time. A reply may be delayed (`delay`) or
 * written line by line (`pace`); bytes that arrive while a reply is still owed, or that
 * were already waiting when a reply was written, mark the next command as early, which
 * is how a client that does not wait for the end of a (multi-line) reply is caught. The
 * STARTTLS certificate is a fresh self-signed one per relay (clients are not asked to
 * verify it: nothing secret crosses an ETRN session). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "client_relay.h"
#include "strbuf.h"

enum relay_verb { V_CONNECT, V_EHLO, V_HELO, V_ETRN, V_STARTTLS, V_QUIT, V_NOOP, V_RSET,
                  V_OTHER, V_COUNT };
static const char *const verb_names[V_COUNT] = {"CONNECT", "EHLO", "HELO", "ETRN", "STARTTLS",
                                                "QUIT", "NOOP", "RSET", "OTHER"};

#define REPLY_LINES_MAX 64
#define REPLY_TEXT_MAX  8192
#define REPLY_LINE_OUT_MAX 1024    /* one written reply line, CRLF included */

enum tls_mode { TLS_NONE, TLS_OFFERED, TLS_REQUIRED };

struct relay_conn {
    struct client_relay *relay;
    struct relay_conn *next;
    unsigned index;                 /* 1-based */
    struct bufferevent *bev;
    struct smtp_line_reader rd;
    struct event *timer;
    int in_tls;
    int busy;                       /* a reply is owed or being written */
    int early_pending;              /* bytes came while busy */
    int closing;                    /* close once the output is written */
    int start_tls_after;            /* wrap in TLS once the current reply is written */
    int close_after;
    unsigned verb_count[V_COUNT];
    int etrn_advertised;            /* the last 250 EHLO reply listed ETRN */
    int in_process;                 /* conn_process is on the stack: it goes on by itself */
    int dead;                       /* closed; memory kept until the relay frees it */
    size_t cmd_slot;                /* log slot of the command being answered, or SIZE_MAX */
    char lines[REPLY_LINES_MAX][REPLY_LINE_OUT_MAX];
    size_t nlines, next_line;
    unsigned long long pace_ms;
};

struct client_relay {
    struct event_base *base;
    const struct scenario_step *step;
    scenario_var_lookup lookup;
    void *lookup_arg;
    client_relay_note_fn note;
    void *note_arg;
    struct evconnlistener *listener;
    int port;
    struct timespec started;
    SSL_CTX *ssl_ctx;
    enum tls_mode tls;
    const char *keywords[CLIENT_RELAY_KEYWORDS_MAX];
    size_t nkeywords;
    unsigned nodes;
    struct relay_conn *conns;
    struct relay_conn *dead_conns;  /* closed, freed outside any of their callbacks */
    struct client_relay_log log;
};

static void conn_close(struct relay_conn *c, int by_relay);
static void conn_process(struct relay_conn *c);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

int64_t client_relay_now_ms(const struct client_relay *r)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
        return 0;
    return (int64_t)(now.tv_sec - r->started.tv_sec) * 1000 +
           (now.tv_nsec - r->started.tv_nsec) / 1000000;
}

static void relay_note(struct client_relay *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void relay_note(struct client_relay *r, const char *fmt, ...)
{
    if (r->note == NULL)
        return;
    char line[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->note(r->note_arg, line);
}

/* ---- TLS: a throw-away self-signed certificate -------------------------------------- */

static SSL_CTX *relay_tls_context(struct etrn_err *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    SSL_CTX *ctx = NULL;
    if (key == NULL || cert == NULL) {
        err_set(err, "relay: cannot make a TLS key");
        goto out;
    }
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * 30);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)CLIENT_RELAY_NAME,
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (X509_sign(cert, key, EVP_sha256()) == 0) {
        err_set(err, "relay: cannot sign the TLS certificate");
        goto out;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        err_set(err, "relay: cannot set up the TLS context");
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

/* ---- choosing and writing replies ---------------------------------------------------- */

static enum relay_verb verb_of(const char *line, size_t len, const char **arg)
{
    size_t vl = strcspn(line, " ");
    if (vl > len)
        vl = len;
    *arg = line + vl;
    while (**arg == ' ')
        (*arg)++;
    for (int v = V_EHLO; v < V_OTHER; v++)
        if (strlen(verb_names[v]) == vl && str_ncasecmp(line, verb_names[v], vl) == 0)
            return (enum relay_verb)v;
    return V_OTHER;
}

static const struct scenario_step *rule_find(const struct client_relay *r, enum relay_verb v,
                                             unsigned conn, unsigned nth)
{
    if (r->step == NULL)
        return NULL;
    for (size_t i = 0; i < r->step->nchildren; i++) {
        const struct scenario_step *s = &r->step->children[i];
        if (s->kind != SCENARIO_STEP_RELAY_RULE || s->relay.verb == NULL)
            continue;
        if (strcmp(s->relay.verb, verb_names[v]) != 0)
            continue;
        if (s->relay.conn && s->relay.conn != conn)
            continue;
        if (s->relay.nth && s->relay.nth != nth)
            continue;
        return s;
    }
    return NULL;
}

static int relay_keyword_listed(const struct client_relay *r, const char *kw)
{
    for (size_t i = 0; i < r->nkeywords; i++)
        if (str_casecmp(r->keywords[i], kw) == 0)
            return 1;
    return 0;
}

/* Splits text at '\n' into the connection's reply lines, each "CODE-text" / "CODE text". */
static void conn_set_lines(struct relay_conn *c, int code, const char *text)
{
    c->nlines = 0;
    c->next_line = 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, "\n");
        int last = p[len] == '\0' || c->nlines + 1 == REPLY_LINES_MAX;
        char *out = c->lines[c->nlines++];
        if (len > REPLY_LINE_OUT_MAX - 8)
            len = REPLY_LINE_OUT_MAX - 8;
        size_t rl = len;
        while (rl > 0 && p[rl - 1] == '\r')
            rl--;
        if (rl == 0 && last)
            snprintf(out, REPLY_LINE_OUT_MAX, "%d\r\n", code);
        else
            snprintf(out, REPLY_LINE_OUT_MAX, "%d%c%.*s\r\n", code, last ? ' ' : '-', (int)rl,
                     p);
        if (last)
            break;
        p += strcspn(p, "\n") + 1;
    }
}

/* 1 if a line after the first of the prepared reply has ETRN as its keyword. */
static int conn_lines_list_etrn(const struct relay_conn *c)
{
    for (size_t i = 1; i < c->nlines; i++) {
        const char *kw = c->lines[i] + 4;
        if (str_ncasecmp(kw, "ETRN", 4) == 0 && (kw[4] == '\r' || kw[4] == ' '))
            return 1;
    }
    return 0;
}

/* The reply the relay gives by default (no matching `on` rule). */
static int default_reply(struct relay_conn *c, enum relay_verb v, const char *arg,
                         struct strbuf *text)
{
    struct client_relay *r = c->relay;
    int tls_missing = r->tls == TLS_REQUIRED && !c->in_tls;
    switch (v) {
    case V_CONNECT:
        strbuf_appendf(text, "%s ESMTP etrnkit scripted relay", CLIENT_RELAY_NAME);
        return 220;
    case V_EHLO:
        strbuf_appendf(text, "%s greets %.200s", CLIENT_RELAY_NAME, arg[0] ? arg : "you");
        for (size_t i = 0; i < r->nkeywords; i++)
            strbuf_appendf(text, "\n%s", r->keywords[i]);
        if (r->tls != TLS_NONE && !c->in_tls)
            strbuf_append_str(text, "\nSTARTTLS");
        return 250;
    case V_HELO:
        strbuf_append_str(text, CLIENT_RELAY_NAME);
        return 250;
    case V_ETRN:
        if (tls_missing) {
            strbuf_append_str(text, "5.7.0 Must issue a STARTTLS command first");
            return 530;
        }
        if (!relay_keyword_listed(r, "ETRN")) {
            strbuf_append_str(text, "5.5.1 Command not implemented");
            return 502;
        }
        if (arg[0] == '\0') {
            strbuf_append_str(text, "Syntax: ETRN node");
            return 500;
        }
        strbuf_appendf(text, "Queuing for node %.200s started", arg);
        return 250;
    case V_STARTTLS:
        if (r->tls == TLS_NONE) {
            strbuf_append_str(text, "5.5.1 STARTTLS not offered");
            return 502;
        }
        if (c->in_tls) {
            strbuf_append_str(text, "5.5.1 TLS already active");
            return 503;
        }
        strbuf_append_str(text, "2.0.0 Ready to start TLS");
        return 220;
    case V_QUIT:
        strbuf_appendf(text, "%s closing connection", CLIENT_RELAY_NAME);
        return 221;
    case V_NOOP:
    case V_RSET:
        strbuf_append_str(text, "OK");
        return 250;
    case V_OTHER:
    case V_COUNT:
        break;
    }
    if (tls_missing) {
        strbuf_append_str(text, "5.7.0 Must issue a STARTTLS command first");
        return 530;
    }
    strbuf_append_str(text, "5.5.2 Command not recognized");
    return 502;
}

/* The current reply is written: close, start TLS, or read the next command. */
static void conn_finish_reply(struct relay_conn *c)
{
    c->busy = 0;
    if (c->close_after) {
        c->closing = 1;
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_close(c, 1);
        return;
    }
    if (c->start_tls_after) {
        c->start_tls_after = 0;
        SSL *ssl = SSL_new(c->relay->ssl_ctx);
        struct bufferevent *tls = ssl ? bufferevent_openssl_filter_new(
                                            c->relay->base, c->bev, ssl,
                                            BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
                                      : NULL;
        if (tls == NULL) {
            if (ssl)
                SSL_free(ssl);
            relay_note(c->relay, "c%u: cannot start TLS", c->index);
            conn_close(c, 1);
            return;
        }
        c->bev = tls;
        c->in_tls = 1;
        bufferevent_setcb(tls, conn_read_cb, conn_write_cb, conn_event_cb, c);
        bufferevent_enable(tls, EV_READ | EV_WRITE);
        return;
    }
    /* Bytes already waiting were sent before the client could have read this reply. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        c->early_pending = 1;
    conn_process(c);   /* returns at once when called from inside conn_process */
}

/* Writes the next reply line (all of them when not paced). */
static void conn_write_lines(struct relay_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->next_line < c->nlines) {
        const char *l = c->lines[c->next_line++];
        if (evbuffer_add(out, l, strlen(l)) < 0) {
            conn_close(c, 1);
            return;
        }
        relay_note(c->relay, "c%u < %.*s", c->index, (int)strcspn(l, "\r"), l);
        if (c->pace_ms && c->next_line < c->nlines) {
            struct timeval tv = { (time_t)(c->pace_ms / 1000), (long)(c->pace_ms % 1000) * 1000 };
            evtimer_add(c->timer, &tv);
            return;
        }
    }
    conn_finish_reply(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_write_lines(arg);
}

/* Answers verb (CONNECT for the greeting): the first matching rule, else the default. */
static void conn_reply(struct relay_conn *c, enum relay_verb v, const char *arg)
{
    struct client_relay *r = c->relay;
    unsigned nth = ++c->verb_count[v];
    const struct scenario_step *rule = rule_find(r, v, c->index, nth);
    struct strbuf text;
    strbuf_init(&text, REPLY_TEXT_MAX);
    int code;
    unsigned long long delay = 0;
    c->pace_ms = 0;
    c->close_after = 0;
    c->busy = 1;
    if (rule) {
        code = rule->relay.code;
        delay = rule->relay.delay_ms;
        c->pace_ms = rule->relay.pace_ms;
        c->close_after = rule->relay.close;
        if (code && rule->text && rule->text[0]) {
            struct strbuf exp;
            struct etrn_err err;
            strbuf_init(&exp, REPLY_TEXT_MAX);
            if (scenario_expand(rule->text, r->lookup, r->lookup_arg, &exp, &err) < 0 ||
                scenario_unescape(exp.data, &text, &err) < 0) {
                relay_note(r, "c%u: %s:%d: %s", c->index, rule->file, rule->line, err.msg);
                strbuf_reset(&text);
                strbuf_append_str(&text, "relay scenario error");
            }
            strbuf_free(&exp);
        }
    } else {
        code = default_reply(c, v, arg, &text);
        c->close_after = code == 221 || code == 421;
    }
    if (c->cmd_slot != SIZE_MAX)
        r->log.cmds[c->cmd_slot].reply_code = code;
    if (v == V_STARTTLS && code == 220 && r->ssl_ctx && !c->in_tls && !c->close_after)
        c->start_tls_after = 1;
    if (code == 0) {
        strbuf_free(&text);
        relay_note(r, "c%u: closing without a reply (%s:%d)", c->index, rule->file, rule->line);
        conn_close(c, 1);
        return;
    }
    conn_set_lines(c, code, text.data);
    strbuf_free(&text);
    if (v == V_EHLO || v == V_HELO || v == V_STARTTLS)
        c->etrn_advertised = v == V_EHLO && code == 250 && conn_lines_list_etrn(c);
    if (delay) {
        struct timeval tv = { (time_t)(delay / 1000), (long)(delay % 1000) * 1000 };
        evtimer_add(c->timer, &tv);
        return;
    }
    conn_write_lines(c);
}

static void conn_record(struct relay_conn *c, const struct smtp_line *line, int too_long)
{
    struct client_relay *r = c->relay;
    struct client_relay_conn *lc = &r->log.conns[c->index - 1];
    lc->ncommands++;
    c->cmd_slot = SIZE_MAX;
    if (r->log.ncmds >= CLIENT_RELAY_COMMANDS_MAX) {
        r->log.dropped_cmds++;
        c->early_pending = 0;
        return;
    }
    struct client_relay_command *cmd = &r->log.cmds[r->log.ncmds];
    memset(cmd, 0, sizeof *cmd);
    cmd->conn = c->index;
    cmd->at_ms = client_relay_now_ms(r);
    cmd->too_long = too_long;
    cmd->early = c->early_pending;
    cmd->in_tls = c->in_tls;
    cmd->etrn_advertised = c->etrn_advertised;
    if (!too_long) {
        size_t n = line->len < SMTP_COMMAND_LINE_MAX ? line->len : SMTP_COMMAND_LINE_MAX;
        memcpy(cmd->line, line->buf, n);
        cmd->line[n] = '\0';
        cmd->len = n;
        cmd->flags = line->flags;
    }
    c->early_pending = 0;
    c->cmd_slot = r->log.ncmds++;
    relay_note(r, "c%u > %s%s%s", c->index, too_long ? "(line over 512 octets)" : cmd->line,
               cmd->early ? "   [sent before the previous reply was complete]" : "",
               (cmd->flags & SMTP_LINE_BARE_LF) ? "   [bare LF]" : "");
}

/* Reads and answers complete command lines while no reply is owed. Iterative: replies
 * written at once come back here through the loop, never by recursion, so a burst of
 * pipelined lines costs no stack. */
static void conn_process(struct relay_conn *c)
{
    if (c->in_process)
        return;
    c->in_process = 1;
    while (!c->dead && !c->busy && !c->closing) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct smtp_line line;
        enum smtp_line_status st = smtp_line_read(&c->rd, in, &line);
        if (st == SMTP_LINE_INCOMPLETE)
            break;
        if (st == SMTP_LINE_TOO_LONG) {
            conn_record(c, NULL, 1);
            c->busy = 1;
            c->close_after = 0;
            c->pace_ms = 0;
            conn_set_lines(c, 500, "5.5.2 Line too long");
            conn_write_lines(c);
            continue;
        }
        conn_record(c, &line, 0);
        const char *arg;
        enum relay_verb v = verb_of(line.buf, line.len, &arg);
        struct client_relay_conn *lc = &c->relay->log.conns[c->index - 1];
        if (v == V_QUIT)
            lc->quit = 1;
        if (v == V_ETRN)
            lc->netrn++;
        conn_reply(c, v, arg);
    }
    c->in_process = 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct relay_conn *c = arg;
    (void)bev;
    if (c->busy) {
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            c->early_pending = 1;
        return;
    }
    conn_process(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct relay_conn *c = arg;
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_close(c, 1);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct relay_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        c->relay->log.conns[c->index - 1].tls = 1;
        relay_note(c->relay, "c%u: TLS handshake done", c->index);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        /* Record complete lines the client sent before it went away (unanswered). */
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct smtp_line line;
        while (!c->closing && smtp_line_read(&c->rd, in, &line) == SMTP_LINE_OK) {
            conn_record(c, &line, 0);
            const char *a;
            enum relay_verb v = verb_of(line.buf, line.len, &a);
            if (v == V_QUIT)
                c->relay->log.conns[c->index - 1].quit = 1;
            if (v == V_ETRN)
                c->relay->log.conns[c->index - 1].netrn++;
        }
        relay_note(c->relay, "c%u: %s", c->index,
                   (what & BEV_EVENT_EOF) ? "client closed the connection"
                                          : c->in_tls ? "connection or TLS error"
                                                      : "connection error");
        conn_close(c, 0);
    }
}

static void conn_close(struct relay_conn *c, int by_relay)
{
    struct client_relay *r = c->relay;
    if (c->dead)
        return;
    c->dead = 1;
    struct client_relay_conn *lc = &r->log.conns[c->index - 1];
    if (lc->closed_ms < 0) {
        lc->closed_ms = client_relay_now_ms(r);
        lc->relay_closed = by_relay;
        if (by_relay)
            relay_note(r, "c%u: relay closed the connection", c->index);
    }
    for (struct relay_conn **pp = &r->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->timer)
        event_free(c->timer);
    c->timer = NULL;
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    /* Callers up the stack may still look at c->dead. */
    c->next = r->dead_conns;
    r->dead_conns = c;
}

static void relay_free_dead(struct client_relay *r)
{
    while (r->dead_conns) {
        struct relay_conn *c = r->dead_conns;
        r->dead_conns = c->next;
        free(c);
    }
}

static void relay_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct client_relay *r = arg;
    (void)l;
    (void)sa;
    (void)salen;
    relay_free_dead(r);
    if (r->log.nconns >= CLIENT_RELAY_CONNS_MAX) {
        r->log.refused_conns++;
        evutil_closesocket(fd);
        return;
    }
    struct relay_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    c->relay = r;
    c->cmd_slot = SIZE_MAX;
    c->index = (unsigned)++r->log.nconns;
    struct client_relay_conn *lc = &r->log.conns[c->index - 1];
    memset(lc, 0, sizeof *lc);
    lc->opened_ms = client_relay_now_ms(r);
    lc->closed_ms = -1;
    smtp_line_reader_init(&c->rd, SMTP_COMMAND_LINE_MAX);
    c->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    c->timer = evtimer_new(r->base, conn_timer_cb, c);
    c->next = r->conns;
    r->conns = c;
    if (c->bev == NULL || c->timer == NULL) {
        if (c->bev == NULL)
            evutil_closesocket(fd);
        conn_close(c, 1);
        return;
    }
    relay_note(r, "c%u: client connected", c->index);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    conn_reply(c, V_CONNECT, "");
}

/* ---- the relay -------------------------------------------------------------------------- */

int client_relay_new(struct event_base *base, const struct scenario_step *relay,
                     scenario_var_lookup lookup, void *lookup_arg, client_relay_note_fn note,
                     void *note_arg, struct client_relay **out, struct etrn_err *err)
{
    struct client_relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return err_set(err, "relay: out of memory");
    r->log.cmds = calloc(CLIENT_RELAY_COMMANDS_MAX, sizeof *r->log.cmds);
    if (r->log.cmds == NULL) {
        free(r);
        return err_set(err, "relay: out of memory");
    }
    r->base = base;
    r->step = relay;
    r->lookup = lookup;
    r->lookup_arg = lookup_arg;
    r->note = note;
    r->note_arg = note_arg;
    r->nodes = 1;
    if (clock_gettime(CLOCK_MONOTONIC, &r->started) < 0) {
        client_relay_free(r);
        return err_set_errno(err, "relay: clock_gettime");
    }
    static const char *const default_keywords[] = {"PIPELINING", "8BITMIME", "ETRN"};
    for (size_t i = 0; i < 3; i++)
        r->keywords[r->nkeywords++] = default_keywords[i];
    for (size_t i = 0; relay && i < relay->nchildren; i++) {
        const struct scenario_step *s = &relay->children[i];
        if (s->kind != SCENARIO_STEP_RELAY_RULE || s->argc < 1)
            continue;
        if (strcmp(s->argv[0], "ehlo-keywords") == 0) {
            r->nkeywords = 0;
            for (int k = 1; k < s->argc && r->nkeywords < CLIENT_RELAY_KEYWORDS_MAX; k++)
                if (str_casecmp(s->argv[k], "none") != 0)
                    r->keywords[r->nkeywords++] = s->argv[k];
        } else if (strcmp(s->argv[0], "tls") == 0 && s->argc == 2) {
            r->tls = str_casecmp(s->argv[1], "required") == 0 ? TLS_REQUIRED : TLS_OFFERED;
        } else if (strcmp(s->argv[0], "nodes") == 0) {
            r->nodes = (unsigned)s->count;
        }
    }
    if (r->tls != TLS_NONE && (r->ssl_ctx = relay_tls_context(err)) == NULL) {
        client_relay_free(r);
        return -1;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->listener = evconnlistener_new_bind(base, relay_accept_cb, r,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                          (struct sockaddr *)&sin, sizeof sin);
    if (r->listener == NULL) {
        client_relay_free(r);
        return err_set_errno(err, "relay: cannot listen on 127.0.0.1");
    }
    socklen_t len = sizeof sin;
    if (getsockname(evconnlistener_get_fd(r->listener), (struct sockaddr *)&sin, &len) < 0) {
        client_relay_free(r);
        return err_set_errno(err, "relay: getsockname");
    }
    r->port = ntohs(sin.sin_port);
    *out = r;
    return 0;
}

int client_relay_port(const struct client_relay *r)
{
    return r->port;
}

unsigned client_relay_nodes(const struct client_relay *r)
{
    return r->nodes;
}

const struct client_relay_log *client_relay_log(const struct client_relay *r)
{
    return &r->log;
}

void client_relay_stop(struct client_relay *r)
{
    if (r->listener) {
        evconnlistener_free(r->listener);
        r->listener = NULL;
    }
    while (r->conns)
        conn_close(r->conns, 1);
}

void client_relay_free(struct client_relay *r)
{
    if (r == NULL)
        return;
    client_relay_stop(r);
    relay_free_dead(r);
    if (r->ssl_ctx)
        SSL_CTX_free(r->ssl_ctx);
    free(r->log.cmds);
    free(r);
}
