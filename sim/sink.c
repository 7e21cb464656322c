/* sink.c — the simulator's node mail server: SMTP in, journal records out (see sink.h).
 *
 *   sink_new(&s, base, "sink1", addr, len, journal, &err);
 *   sink_apply_words(s, argv, argc, &err);      // reject-rcpt 450, tarpit 1s, ...
 *   sink_free(s);
 *
 * Guarantees: a message whose final dot arrived is in the journal before any reply to
 * the dot is sent (so "received-unacknowledged" really means the client was never told);
 * replies leave in command order; memory per session is bounded (command lines by
 * smtp_line, message text is hashed as it streams, never stored). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "sim_words.h"
#include "sink.h"
#include "smtp_line.h"
#include "strbuf.h"

#define SINK_PEER_NOTES 256
#define SINK_IDLE_TIMEOUT_S 600
#define SINK_DATA_CHUNK (64 * 1024)     /* longest piece of a line without LF held at once */
#define SINK_LONG_REPLY_LINE 2000       /* octets in a "long-replies" line */
#define SINK_MESSAGE_ID_MAX 998
#define SINK_OUTPUT_MAX (4u * 1024 * 1024)
#define SINK_INPUT_MAX (1024 * 1024)

struct sink_peer_note {
    struct sockaddr_storage via;
    struct sockaddr_storage peer;
    unsigned long conn_id;
    int used;
};

enum session_state { SESSION_GREETING, SESSION_COMMAND, SESSION_DATA, SESSION_SILENT,
                     SESSION_CLOSING };

struct sink_session {
    struct sink *sink;
    struct sink_session *prev, *next;
    struct bufferevent *bev;
    unsigned long conn_id;
    char peer[NETADDR_TEXT_MAX];
    enum session_state state;
    struct smtp_line_reader rd;
    int said_hello;
    int tls;                      /* STARTTLS done: bev is the TLS filter */
    /* the transaction */
    int has_mail;
    char *mail_from;
    char **rcpts;
    size_t nrcpts;
    /* DATA */
    EVP_MD_CTX *md;
    size_t size;
    int too_big;
    int at_line_start;
    int in_headers;
    int in_message_id;
    struct strbuf message_id;
    /* output */
    struct event *timer;          /* greeting delay, then tarpit drip */
    struct evbuffer *drip;        /* reply bytes the tarpit has not sent yet */
};

struct sink {
    struct event_base *base;
    char name[SINK_NAME_MAX];
    struct evconnlistener *listener;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct sink_journal *journal;
    struct sink_behaviour b;
    unsigned long own_counter;
    unsigned long *counter;
    struct sink_peer_note notes[SINK_PEER_NOTES];
    size_t note_next;
    struct sink_session *sessions;
    size_t nsessions;
    unsigned long accepted;
    SSL_CTX *tls_ctx;             /* made at the first STARTTLS, self-signed */
};

static void session_process(struct sink_session *ss);
static void session_free(struct sink_session *ss);

/* --- behaviour words ------------------------------------------------------- */

void sink_behaviour_reset(struct sink_behaviour *b)
{
    memset(b, 0, sizeof *b);
    b->accept_limit = -1;
    b->close_mid_reply = SINK_STAGE_NONE;
}

static int stage_parse(const char *s, enum sink_stage *out)
{
    static const struct { const char *name; enum sink_stage stage; } stages[] = {
        {"greeting", SINK_STAGE_GREETING}, {"ehlo", SINK_STAGE_EHLO}, {"mail", SINK_STAGE_MAIL},
        {"rcpt", SINK_STAGE_RCPT}, {"data", SINK_STAGE_DATA}, {"dot", SINK_STAGE_DOT},
        {"off", SINK_STAGE_NONE},
    };
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
        if (strcmp(s, stages[i].name) == 0) {
            *out = stages[i].stage;
            return 0;
        }
    return -1;
}

int sink_behaviour_parse(struct sink_behaviour *out, char *const *argv, int argc,
                         struct etrn_err *err)
{
    struct sink_behaviour b = *out;
    unsigned long long v;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(w, "normal") == 0) {
            sink_behaviour_reset(&b);
        } else if (strcmp(w, "greeting-delay") == 0) {
            if (sim_words_duration_ms(w, arg, &v, err) < 0)
                return -1;
            if (v > 3600000)
                return err_set(err, "%s: '%s' is longer than an hour", w, arg);
            b.greeting_delay_ms = (unsigned)v;
            i++;
        } else if (strcmp(w, "reject-greeting") == 0) {
            if (sim_words_code(w, arg, &b.reject_greeting, err) < 0)
                return -1;
            i++;
        } else if (strcmp(w, "no-greeting") == 0) {
            b.no_greeting = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "reject-mail") == 0 || strcmp(w, "reject-rcpt") == 0
                   || strcmp(w, "reject-data") == 0 || strcmp(w, "reject-dot") == 0) {
            int *target = strcmp(w, "reject-mail") == 0   ? &b.reject_mail
                          : strcmp(w, "reject-rcpt") == 0 ? &b.reject_rcpt
                          : strcmp(w, "reject-data") == 0 ? &b.reject_data
                                                          : &b.reject_dot;
            if (sim_words_code(w, arg, target, err) < 0)
                return -1;
            i++;
        } else if (strcmp(w, "drop-after-dot") == 0) {
            b.drop_after_dot = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "no-pipelining") == 0) {
            b.no_pipelining = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "helo-only") == 0) {
            b.helo_only = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "tarpit") == 0) {
            if (arg != NULL && strcmp(arg, "off") == 0) {
                v = 0;
            } else if (sim_words_duration_ms(w, arg, &v, err) < 0) {
                return -1;
            }
            if (v > 60000)
                return err_set(err, "%s: '%s' is longer than a minute per byte", w, arg);
            b.tarpit_ms = (unsigned)v;
            i++;
        } else if (strcmp(w, "multiline-replies") == 0) {
            b.multiline_replies = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "bare-lf-replies") == 0) {
            b.bare_lf_replies = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "long-replies") == 0) {
            b.long_replies = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "close-mid-reply") == 0) {
            enum sink_stage st = SINK_STAGE_DOT;
            if (arg != NULL && stage_parse(arg, &st) == 0)
                i++;
            b.close_mid_reply = st;
        } else if (strcmp(w, "starttls") == 0) {
            b.starttls = sim_words_flag(argv, argc, &i);
        } else if (strcmp(w, "accept-limit") == 0) {
            if (arg != NULL && strcmp(arg, "off") == 0) {
                b.accept_limit = -1;
            } else {
                if (sim_words_uint(w, arg, 1000000000, &v, err) < 0)
                    return -1;
                b.accept_limit = (long)v;
            }
            i++;
        } else {
            return err_set(err, "unknown sink behaviour '%s'", w);
        }
    }
    *out = b;
    return 0;
}

int sink_apply_words(struct sink *s, char *const *argv, int argc, struct etrn_err *err)
{
    return sink_behaviour_parse(&s->b, argv, argc, err);
}

/* --- replies --------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void session_close_when_flushed(struct sink_session *ss)
{
    ss->state = SESSION_CLOSING;
    bufferevent_disable(ss->bev, EV_READ);
    if (evbuffer_get_length(ss->drip) == 0
        && evbuffer_get_length(bufferevent_get_output(ss->bev)) == 0)
        session_free(ss);
}

static void drip_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink_session *ss = arg;
    if (evbuffer_get_length(ss->drip) > 0) {
        evbuffer_remove_buffer(ss->drip, bufferevent_get_output(ss->bev), 1);
    }
    if (evbuffer_get_length(ss->drip) > 0) {
        unsigned ms = ss->sink->b.tarpit_ms ? ss->sink->b.tarpit_ms : 1;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(ss->timer, &tv);
    } else if (ss->state == SESSION_CLOSING
               && evbuffer_get_length(bufferevent_get_output(ss->bev)) == 0) {
        session_free(ss);
    }
}

/* Sends bytes of a reply for a stage, honouring tarpit and close-mid-reply.
 * Returns -1 if the session is now closing. */
static int session_send(struct sink_session *ss, enum sink_stage stage, const char *p, size_t n)
{
    const struct sink_behaviour *b = &ss->sink->b;
    int cut = b->close_mid_reply != SINK_STAGE_NONE && b->close_mid_reply == stage;
    if (cut)
        n = n / 2 > 0 ? n / 2 : 1;
    if (evbuffer_get_length(bufferevent_get_output(ss->bev)) + evbuffer_get_length(ss->drip)
        > SINK_OUTPUT_MAX) {
        /* The client does not read its replies: stop talking to it. */
        session_free(ss);
        return -1;
    }
    if (b->tarpit_ms > 0 || evbuffer_get_length(ss->drip) > 0) {
        evbuffer_add(ss->drip, p, n);
        if (!evtimer_pending(ss->timer, NULL)) {
            struct timeval tv = {0, 0};
            evtimer_add(ss->timer, &tv);
        }
    } else {
        bufferevent_write(ss->bev, p, n);
    }
    if (cut) {
        session_close_when_flushed(ss);
        return -1;
    }
    return 0;
}

/* Formats and sends a reply; text lines are separated by '\n'. The odd-but-legal
 * variants are applied here so every reply gets them. */
static int session_reply(struct sink_session *ss, enum sink_stage stage, int code,
                         const char *enh, const char *text)
{
    const struct sink_behaviour *b = &ss->sink->b;
    const char *eol = b->bare_lf_replies ? "\n" : "\r\n";
    struct strbuf out;
    strbuf_init(&out, 64 * 1024);
    const char *p = text;
    int first = 1;
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        int last = nl == NULL && !b->multiline_replies;
        strbuf_appendf(&out, "%d%c", code, last ? ' ' : '-');
        if (enh != NULL && *enh)
            strbuf_appendf(&out, "%s ", enh);
        strbuf_append(&out, p, len);
        if (first && b->long_replies) {
            strbuf_append_str(&out, " ");
            while (out.len < SINK_LONG_REPLY_LINE)
                strbuf_append_str(&out, "padding");
        }
        strbuf_append_str(&out, eol);
        first = 0;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    if (b->multiline_replies) {
        /* "250-" with no text, then a bare "250": both legal per RFC 5321 §4.2. */
        strbuf_appendf(&out, "%d-%s%d%s", code, eol, code, eol);
    }
    int r = session_send(ss, stage, out.data, out.len);
    strbuf_free(&out);
    return r;
}

/* --- transaction ----------------------------------------------------------- */

static void transaction_reset(struct sink_session *ss)
{
    free(ss->mail_from);
    ss->mail_from = NULL;
    for (size_t i = 0; i < ss->nrcpts; i++)
        free(ss->rcpts[i]);
    free(ss->rcpts);
    ss->rcpts = NULL;
    ss->nrcpts = 0;
    ss->has_mail = 0;
    ss->size = 0;
    ss->too_big = 0;
    strbuf_reset(&ss->message_id);
}

/* Extracts the path from "FROM:<path> params" / "TO:<path>". NULL on bad syntax. */
static char *path_extract(const char *arg, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (str_ncasecmp(arg, prefix, plen) != 0)
        return NULL;
    arg += plen;
    while (*arg == ' ')
        arg++;
    if (*arg != '<')
        return NULL;
    const char *end = strchr(arg, '>');
    if (end == NULL)
        return NULL;
    return strndup(arg + 1, (size_t)(end - arg - 1));
}

static void delivery_record(struct sink_session *ss, enum sink_delivery_status status, int code)
{
    struct sink_journal_entry e;
    memset(&e, 0, sizeof e);
    e.kind = SINK_JOURNAL_DELIVERY;
    e.time_ms = now_ms();
    str_copy(e.sink, sizeof e.sink, ss->sink->name);
    e.conn_id = ss->conn_id;
    str_copy(e.peer, sizeof e.peer, ss->peer);
    e.status = status;
    e.reply_code = code;
    e.mail_from = ss->mail_from;
    e.rcpts = ss->rcpts;
    e.nrcpts = ss->nrcpts;
    e.message_id = ss->message_id.data;
    e.size = ss->size;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(ss->md, md, &mdlen) != 1)
        mdlen = 0;
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        str_format(e.sha256 + 2 * i, 3, "%02x", md[i]);
    if (ss->sink->journal != NULL)
        sink_journal_append(ss->sink->journal, &e, NULL);
}

static void data_feed(struct sink_session *ss, const char *p, size_t n)
{
    if (ss->too_big || ss->size + n > SINK_MESSAGE_MAX) {
        ss->too_big = 1;
        ss->size += n;
        return;
    }
    EVP_DigestUpdate(ss->md, p, n);
    ss->size += n;
}

/* Header scanning for Message-ID, on whole lines only (without line end). */
static void header_line(struct sink_session *ss, const char *p, size_t n)
{
    if (!ss->in_headers)
        return;
    if (n == 0) {
        ss->in_headers = 0;
        ss->in_message_id = 0;
        return;
    }
    if (p[0] == ' ' || p[0] == '\t') {
        if (ss->in_message_id && ss->message_id.len + n <= SINK_MESSAGE_ID_MAX) {
            /* unfold: drop the leading whitespace of the continuation */
            while (n > 0 && (*p == ' ' || *p == '\t')) {
                p++;
                n--;
            }
            strbuf_append(&ss->message_id, p, n);
        }
        return;
    }
    ss->in_message_id = 0;
    static const char name[] = "message-id:";
    if (n >= sizeof name - 1 && str_ncasecmp(p, name, sizeof name - 1) == 0
        && ss->message_id.len == 0) {
        p += sizeof name - 1;
        n -= sizeof name - 1;
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n <= SINK_MESSAGE_ID_MAX)
            strbuf_append(&ss->message_id, p, n);
        ss->in_message_id = 1;
    }
}

/* Returns -1 if the session is gone or closing. */
static int message_end(struct sink_session *ss)
{
    struct sink *s = ss->sink;
    const struct sink_behaviour *b = &s->b;
    ss->state = SESSION_COMMAND;
    smtp_line_reader_init(&ss->rd, SMTP_COMMAND_LINE_MAX);
    if (ss->too_big) {
        delivery_record(ss, SINK_DELIVERY_REJECTED, 552);
        transaction_reset(ss);
        return session_reply(ss, SINK_STAGE_DOT, 552, "5.3.4", "Message too big for this sink");
    }
    if (b->drop_after_dot) {
        delivery_record(ss, SINK_DELIVERY_UNACKNOWLEDGED, 0);
        transaction_reset(ss);
        /* Replies already owed (EHLO, 354 ...) go out; the dot's reply never does. */
        session_close_when_flushed(ss);
        return -1;
    }
    if (b->reject_dot) {
        delivery_record(ss, SINK_DELIVERY_REJECTED, b->reject_dot);
        transaction_reset(ss);
        return session_reply(ss, SINK_STAGE_DOT, b->reject_dot,
                             b->reject_dot >= 500 ? "5.7.1" : "4.3.0",
                             "Message refused by the simulator (reject-dot)");
    }
    if (b->close_mid_reply == SINK_STAGE_DOT) {
        delivery_record(ss, SINK_DELIVERY_UNACKNOWLEDGED, 0);
        transaction_reset(ss);
        return session_reply(ss, SINK_STAGE_DOT, 250, "2.0.0",
                             "Message accepted (this reply is cut)");
    }
    s->accepted++;
    delivery_record(ss, SINK_DELIVERY_ACCEPTED, 250);
    char text[128];
    str_format(text, sizeof text, "Message accepted by %s as %lu.%lu", s->name, ss->conn_id,
               s->accepted);
    transaction_reset(ss);
    return session_reply(ss, SINK_STAGE_DOT, 250, "2.0.0", text);
}

/* Consumes DATA input. Returns 1 when the final dot was seen, 0 when more is needed,
 * -1 if the session was freed. */
static int data_read(struct sink_session *ss, struct evbuffer *in)
{
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return 0;
        struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
        if (lf.pos < 0) {
            if (avail < SINK_DATA_CHUNK)
                return 0;
            /* A very long line: hash what we have and keep going mid-line. */
            unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)avail);
            size_t skip = ss->at_line_start && p[0] == '.' ? 1 : 0;
            size_t take = avail;
            if (p[avail - 1] == '\r')
                take--;   /* might be the CR of CRLF: keep it for the next round */
            data_feed(ss, (const char *)p + skip, take - skip);
            evbuffer_drain(in, take);
            ss->at_line_start = 0;
            ss->in_message_id = 0;
            continue;
        }
        size_t total = (size_t)lf.pos + 1;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)total);
        size_t len = total - 1;
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (ss->at_line_start && len == 1 && p[0] == '.') {
            evbuffer_drain(in, total);
            ss->at_line_start = 1;
            return 1;
        }
        size_t skip = ss->at_line_start && len > 0 && p[0] == '.' ? 1 : 0;
        if (ss->at_line_start)
            header_line(ss, p + skip, len - skip);
        data_feed(ss, p + skip, len - skip);
        data_feed(ss, "\r\n", 2);
        evbuffer_drain(in, total);
        ss->at_line_start = 1;
    }
}

/* --- commands -------------------------------------------------------------- */

static int verb_is(const char *line, size_t len, const char *verb, const char **arg)
{
    size_t vlen = strlen(verb);
    if (len < vlen || str_ncasecmp(line, verb, vlen) != 0)
        return 0;
    if (len > vlen && line[vlen] != ' ')
        return 0;
    const char *a = line + vlen;
    while (*a == ' ')
        a++;
    if (arg != NULL)
        *arg = a;
    return 1;
}

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

/* A self-signed certificate for "NAME.sim", made once per sink. */
static SSL_CTX *tls_ctx_make(const char *name)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    int ok = ctx != NULL && key != NULL && cert != NULL;
    if (ok) {
        char cn[SINK_NAME_MAX + 8];
        str_format(cn, sizeof cn, "%s.sim", name);
        X509_NAME *subject = X509_get_subject_name(cert);
        ok = X509_set_version(cert, 2) == 1
             && ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) == 1
             && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != NULL
             && X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 86400) != NULL
             && X509_set_pubkey(cert, key) == 1
             && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                           (const unsigned char *)cn, -1, -1, 0) == 1
             && X509_set_issuer_name(cert, subject) == 1
             && X509_sign(cert, key, EVP_sha256()) > 0
             && SSL_CTX_use_certificate(ctx, cert) == 1
             && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* RFC 3207: 220, then the handshake; anything the client pipelined after STARTTLS is
 * discarded (§5), and the session starts over (no EHLO, no transaction). */
static int session_starttls(struct sink_session *ss)
{
    struct sink *s = ss->sink;
    if (ss->tls)
        return session_reply(ss, SINK_STAGE_NONE, 503, "5.5.1", "TLS already active");
    if (s->tls_ctx == NULL)
        s->tls_ctx = tls_ctx_make(s->name);
    SSL *ssl = s->tls_ctx != NULL ? SSL_new(s->tls_ctx) : NULL;
    if (ssl == NULL)
        return session_reply(ss, SINK_STAGE_NONE, 454, "4.7.0", "TLS not available");
    /* The 220 (and every reply owed before it) must reach the client before the
     * handshake starts, tarpit or not: write them straight to the socket. */
    evutil_socket_t fd = bufferevent_getfd(ss->bev);
    struct evbuffer *out = bufferevent_get_output(ss->bev);
    /* The bufferevent's output is frozen at its start: copy it out instead of draining. */
    struct strbuf owed;
    strbuf_init(&owed, SINK_OUTPUT_MAX);
    size_t olen = evbuffer_get_length(out), dlen = evbuffer_get_length(ss->drip);
    int ok = strbuf_append(&owed, "", 0) == 0
             && (olen == 0 || strbuf_append(&owed, evbuffer_pullup(out, -1), olen) == 0)
             && (dlen == 0 || strbuf_append(&owed, evbuffer_pullup(ss->drip, -1), dlen) == 0)
             && strbuf_append_str(&owed, "220 2.0.0 Ready to start TLS\r\n") == 0;
    evbuffer_drain(ss->drip, dlen);
    /* Blocking for this short write is fine: the client is waiting for exactly this. */
    int flags = fcntl(fd, F_GETFL);
    ok = ok && flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
    struct timeval wtv = {5, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wtv, sizeof wtv);
    ok = ok && fileio_write_all(fd, owed.data, owed.len) == 0;
    strbuf_free(&owed);
    struct evbuffer *in = bufferevent_get_input(ss->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    /* A socket-based TLS bufferevent (not a filter) so "output empty" means "handed to
     * the kernel", which closing after QUIT relies on. The plain one lets go of a copy. */
    evutil_socket_t tfd = ok ? dup(fd) : -1;
    if (tfd < 0) {
        SSL_free(ssl);
        session_free(ss);
        return -1;
    }
    bufferevent_free(ss->bev);
    ss->bev = NULL;
    (void)evutil_make_socket_nonblocking(tfd);
    (void)evutil_make_socket_closeonexec(tfd);
    struct bufferevent *tls = bufferevent_openssl_socket_new(
        s->base, tfd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL) {
        close(tfd);
        SSL_free(ssl);
        session_free(ss);
        return -1;
    }
    ss->bev = tls;
    ss->tls = 1;
    transaction_reset(ss);
    ss->said_hello = 0;
    smtp_line_reader_init(&ss->rd, SMTP_COMMAND_LINE_MAX);
    bufferevent_setcb(tls, session_read_cb, session_write_cb, session_event_cb, ss);
    struct timeval idle = {SINK_IDLE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(tls, &idle, &idle);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    return -1;   /* stop reading the old buffer; the filter's callbacks take over */
}

/* Handles one command line; returns -1 if the session is gone or closing. */
static int command_handle(struct sink_session *ss, const char *line, size_t len)
{
    struct sink *s = ss->sink;
    const struct sink_behaviour *b = &s->b;
    const char *arg;
    char text[256];

    if (verb_is(line, len, "EHLO", &arg)) {
        if (b->helo_only)
            return session_reply(ss, SINK_STAGE_EHLO, 500, "5.5.1", "Command unrecognized");
        transaction_reset(ss);
        ss->said_hello = 1;
        str_format(text, sizeof text,
                   "%s.sim Hello %s\n%s%s8BITMIME\nSIZE %u\nENHANCEDSTATUSCODES", s->name,
                   *arg ? arg : "unknown", b->no_pipelining ? "" : "PIPELINING\n",
                   b->starttls && !ss->tls ? "STARTTLS\n" : "", SINK_MESSAGE_MAX);
        return session_reply(ss, SINK_STAGE_EHLO, 250, NULL, text);
    }
    if (verb_is(line, len, "HELO", &arg)) {
        transaction_reset(ss);
        ss->said_hello = 1;
        str_format(text, sizeof text, "%s.sim Hello %s", s->name, *arg ? arg : "unknown");
        return session_reply(ss, SINK_STAGE_EHLO, 250, NULL, text);
    }
    if (verb_is(line, len, "MAIL", &arg)) {
        if (!ss->said_hello)
            return session_reply(ss, SINK_STAGE_MAIL, 503, "5.5.1", "Say EHLO or HELO first");
        if (ss->has_mail)
            return session_reply(ss, SINK_STAGE_MAIL, 503, "5.5.1", "Nested MAIL command");
        char *path = path_extract(arg, "FROM:");
        if (path == NULL)
            return session_reply(ss, SINK_STAGE_MAIL, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
        if (b->accept_limit >= 0 && s->accepted >= (unsigned long)b->accept_limit) {
            free(path);
            return session_reply(ss, SINK_STAGE_MAIL, 452, "4.3.1",
                                 "Insufficient system storage (accept-limit)");
        }
        if (b->reject_mail) {
            free(path);
            return session_reply(ss, SINK_STAGE_MAIL, b->reject_mail,
                                 b->reject_mail >= 500 ? "5.7.1" : "4.3.0",
                                 "Sender refused by the simulator (reject-mail)");
        }
        ss->mail_from = path;
        ss->has_mail = 1;
        return session_reply(ss, SINK_STAGE_MAIL, 250, "2.1.0", "Sender OK");
    }
    if (verb_is(line, len, "RCPT", &arg)) {
        if (!ss->has_mail)
            return session_reply(ss, SINK_STAGE_RCPT, 503, "5.5.1", "Need MAIL first");
        char *path = path_extract(arg, "TO:");
        if (path == NULL || *path == '\0') {
            free(path);
            return session_reply(ss, SINK_STAGE_RCPT, 501, "5.5.4", "Syntax: RCPT TO:<address>");
        }
        if (b->reject_rcpt) {
            free(path);
            return session_reply(ss, SINK_STAGE_RCPT, b->reject_rcpt,
                                 b->reject_rcpt >= 500 ? "5.1.1" : "4.2.0",
                                 "Recipient refused by the simulator (reject-rcpt)");
        }
        if (ss->nrcpts >= SINK_RCPTS_MAX) {
            free(path);
            return session_reply(ss, SINK_STAGE_RCPT, 452, "4.5.3", "Too many recipients");
        }
        char **v = realloc(ss->rcpts, (ss->nrcpts + 1) * sizeof *v);
        if (v == NULL) {
            free(path);
            return session_reply(ss, SINK_STAGE_RCPT, 451, "4.3.0", "Out of memory");
        }
        ss->rcpts = v;
        ss->rcpts[ss->nrcpts++] = path;
        return session_reply(ss, SINK_STAGE_RCPT, 250, "2.1.5", "Recipient OK");
    }
    if (verb_is(line, len, "DATA", NULL)) {
        if (!ss->has_mail || ss->nrcpts == 0)
            return session_reply(ss, SINK_STAGE_DATA, 503, "5.5.1", "Need RCPT first");
        if (b->reject_data)
            return session_reply(ss, SINK_STAGE_DATA, b->reject_data,
                                 b->reject_data >= 500 ? "5.7.1" : "4.3.0",
                                 "DATA refused by the simulator (reject-data)");
        if (EVP_DigestInit_ex(ss->md, EVP_sha256(), NULL) != 1)
            return session_reply(ss, SINK_STAGE_DATA, 451, "4.3.0", "Digest unavailable");
        ss->size = 0;
        ss->too_big = 0;
        ss->at_line_start = 1;
        ss->in_headers = 1;
        ss->in_message_id = 0;
        strbuf_reset(&ss->message_id);
        ss->state = SESSION_DATA;
        return session_reply(ss, SINK_STAGE_DATA, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    }
    if (verb_is(line, len, "RSET", NULL)) {
        transaction_reset(ss);
        return session_reply(ss, SINK_STAGE_NONE, 250, "2.0.0", "OK");
    }
    if (verb_is(line, len, "NOOP", NULL))
        return session_reply(ss, SINK_STAGE_NONE, 250, "2.0.0", "OK");
    if (verb_is(line, len, "VRFY", NULL))
        return session_reply(ss, SINK_STAGE_NONE, 252, "2.5.2", "Cannot VRFY user");
    if (verb_is(line, len, "QUIT", NULL)) {
        if (session_reply(ss, SINK_STAGE_NONE, 221, "2.0.0", "Bye") < 0)
            return -1;
        session_close_when_flushed(ss);
        return -1;
    }
    if (verb_is(line, len, "STARTTLS", NULL) && b->starttls)
        return session_starttls(ss);
    return session_reply(ss, SINK_STAGE_NONE, 500, "5.5.2", "Command unrecognized");
}

static void session_process(struct sink_session *ss)
{
    struct evbuffer *in = bufferevent_get_input(ss->bev);
    struct smtp_line line;
    for (;;) {
        if (ss->state == SESSION_SILENT) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (ss->state == SESSION_DATA) {
            int r = data_read(ss, in);
            if (r <= 0)
                return;
            if (message_end(ss) < 0)
                return;
            continue;
        }
        if (ss->state != SESSION_COMMAND)
            return;
        enum smtp_line_status st = smtp_line_read(&ss->rd, in, &line);
        if (st == SMTP_LINE_INCOMPLETE)
            return;
        if (st == SMTP_LINE_TOO_LONG) {
            if (session_reply(ss, SINK_STAGE_NONE, 500, "5.5.2", "Line too long") < 0)
                return;
            continue;
        }
        if (command_handle(ss, line.buf, line.len) < 0)
            return;
    }
}

/* --- connections ----------------------------------------------------------- */

static void session_greet(struct sink_session *ss)
{
    struct sink *s = ss->sink;
    const struct sink_behaviour *b = &s->b;
    char text[128];
    if (b->no_greeting) {
        ss->state = SESSION_SILENT;
        session_process(ss);
        return;
    }
    if (b->reject_greeting) {
        str_format(text, sizeof text, "%s.sim Service not available (reject-greeting)", s->name);
        if (session_reply(ss, SINK_STAGE_GREETING, b->reject_greeting, NULL, text) == 0)
            session_close_when_flushed(ss);
        return;
    }
    ss->state = SESSION_COMMAND;
    str_format(text, sizeof text, "%s.sim ESMTP etrnsim sink", s->name);
    if (session_reply(ss, SINK_STAGE_GREETING, 220, NULL, text) < 0)
        return;
    /* An early talker's commands wait until the greeting is out. */
    session_process(ss);
}

static void greeting_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink_session *ss = arg;
    /* From now on the timer drips tarpit bytes. */
    event_assign(ss->timer, ss->sink->base, -1, 0, drip_cb, ss);
    session_greet(ss);
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct sink_session *ss = arg;
    if (ss->state == SESSION_GREETING)
        return;   /* keep it until the greeting is out */
    session_process(ss);
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct sink_session *ss = arg;
    if (ss->state == SESSION_CLOSING && evbuffer_get_length(ss->drip) == 0)
        session_free(ss);
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;   /* the TLS handshake finished */
    /* EOF, error or idle timeout: an unfinished message is not a delivery. */
    session_free(arg);
}

static void session_free(struct sink_session *ss)
{
    struct sink *s = ss->sink;
    if (ss->prev != NULL)
        ss->prev->next = ss->next;
    else
        s->sessions = ss->next;
    if (ss->next != NULL)
        ss->next->prev = ss->prev;
    s->nsessions--;
    transaction_reset(ss);
    if (ss->timer != NULL) {
        event_del(ss->timer);
        event_free(ss->timer);
    }
    if (ss->drip != NULL)
        evbuffer_free(ss->drip);
    if (ss->md != NULL)
        EVP_MD_CTX_free(ss->md);
    strbuf_free(&ss->message_id);
    if (ss->bev != NULL)
        bufferevent_free(ss->bev);
    free(ss);
}

static void peer_lookup(struct sink *s, const struct sockaddr *from, struct sink_session *ss)
{
    for (size_t i = 0; i < SINK_PEER_NOTES; i++) {
        struct sink_peer_note *n = &s->notes[i];
        if (n->used && netaddr_equal_host((struct sockaddr *)&n->via, from)
            && netaddr_port((struct sockaddr *)&n->via) == netaddr_port(from)) {
            n->used = 0;
            ss->conn_id = n->conn_id;
            if (netaddr_format((struct sockaddr *)&n->peer, ss->peer, sizeof ss->peer) < 0)
                str_copy(ss->peer, sizeof ss->peer, "?");
            return;
        }
    }
    ss->conn_id = ++*s->counter;
    if (netaddr_format(from, ss->peer, sizeof ss->peer) < 0)
        str_copy(ss->peer, sizeof ss->peer, "?");
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *from,
                      int fromlen, void *arg)
{
    (void)l;
    (void)fromlen;
    struct sink *s = arg;
    struct sink_session *ss = calloc(1, sizeof *ss);
    if (ss == NULL) {
        close(fd);
        return;
    }
    ss->sink = s;
    strbuf_init(&ss->message_id, SINK_MESSAGE_ID_MAX + 1);
    smtp_line_reader_init(&ss->rd, SMTP_COMMAND_LINE_MAX);
    peer_lookup(s, from, ss);
    ss->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    ss->drip = evbuffer_new();
    ss->md = EVP_MD_CTX_new();
    ss->timer = evtimer_new(s->base, greeting_timer_cb, ss);
    ss->next = s->sessions;
    if (s->sessions != NULL)
        s->sessions->prev = ss;
    s->sessions = ss;
    s->nsessions++;
    if (ss->bev == NULL || ss->drip == NULL || ss->md == NULL || ss->timer == NULL) {
        if (ss->bev == NULL)
            close(fd);
        session_free(ss);
        return;
    }
    bufferevent_setcb(ss->bev, session_read_cb, session_write_cb, session_event_cb, ss);
    struct timeval idle = {SINK_IDLE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(ss->bev, &idle, &idle);
    /* An early talker or a flood cannot make the sink hold more than this. */
    bufferevent_setwatermark(ss->bev, EV_READ, 0, SINK_INPUT_MAX);
    bufferevent_enable(ss->bev, EV_READ | EV_WRITE);
    ss->state = SESSION_GREETING;
    if (s->nsessions > SINK_SESSIONS_MAX) {
        bufferevent_write(ss->bev, "421 4.3.2 Too many connections\r\n", 32);
        session_close_when_flushed(ss);
        return;
    }
    if (s->b.greeting_delay_ms > 0) {
        struct timeval tv = {s->b.greeting_delay_ms / 1000, (s->b.greeting_delay_ms % 1000) * 1000};
        evtimer_add(ss->timer, &tv);
        return;
    }
    event_assign(ss->timer, s->base, -1, 0, drip_cb, ss);
    session_greet(ss);
}

int sink_new(struct sink **out, struct event_base *base, const char *name,
             const struct sockaddr *listen, socklen_t listen_len, struct sink_journal *journal,
             struct etrn_err *err)
{
    *out = NULL;
    struct sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(err, "sink %s: out of memory", name);
    if (str_copy(s->name, sizeof s->name, name) < 0) {
        free(s);
        return err_set(err, "sink name '%s' is longer than %d characters", name,
                       SINK_NAME_MAX - 1);
    }
    s->base = base;
    s->journal = journal;
    s->counter = &s->own_counter;
    sink_behaviour_reset(&s->b);
    s->listener = evconnlistener_new_bind(base, accept_cb, s,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE
                                              | LEV_OPT_CLOSE_ON_EXEC,
                                          128, listen, (int)listen_len);
    if (s->listener == NULL) {
        char text[NETADDR_TEXT_MAX];
        if (netaddr_format(listen, text, sizeof text) < 0)
            str_copy(text, sizeof text, "?");
        err_set_errno(err, "sink %s: cannot listen on %s", name, text);
        free(s);
        return -1;
    }
    s->addrlen = sizeof s->addr;
    if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&s->addr,
                    &s->addrlen) < 0) {
        err_set_errno(err, "sink %s: getsockname", name);
        evconnlistener_free(s->listener);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void sink_free(struct sink *s)
{
    if (s == NULL)
        return;
    while (s->sessions != NULL)
        session_free(s->sessions);
    evconnlistener_free(s->listener);
    SSL_CTX_free(s->tls_ctx);
    free(s);
}

const char *sink_name(const struct sink *s)
{
    return s->name;
}

const struct sockaddr *sink_address(const struct sink *s, socklen_t *len)
{
    if (len != NULL)
        *len = s->addrlen;
    return (const struct sockaddr *)&s->addr;
}

struct sink_behaviour *sink_behaviour(struct sink *s)
{
    return &s->b;
}

void sink_note_peer(struct sink *s, const struct sockaddr *via, const struct sockaddr *peer,
                    unsigned long conn_id)
{
    struct sink_peer_note *n = &s->notes[s->note_next];
    s->note_next = (s->note_next + 1) % SINK_PEER_NOTES;
    memset(n, 0, sizeof *n);
    size_t vlen = via->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
    size_t plen = peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    memcpy(&n->via, via, vlen);
    memcpy(&n->peer, peer, plen);
    n->conn_id = conn_id;
    n->used = 1;
}

void sink_set_conn_counter(struct sink *s, unsigned long *counter)
{
    s->counter = counter != NULL ? counter : &s->own_counter;
}

unsigned long sink_accepted_count(const struct sink *s)
{
    return s->accepted;
}

size_t sink_session_count(const struct sink *s)
{
    return s->nsessions;
}
