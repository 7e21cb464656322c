/* smtpd.c — etrnd's ESMTP server: listeners, sessions and the SMTP command set
 * (RFC 5321), ETRN (RFC 1985), PIPELINING (RFC 2920), STARTTLS (RFC 3207), AUTH (RFC 4954).
 *
 *   smtpd_new(&s, base, cfg, spool, flush, &err); smtpd_listen(s, &err);
 *   event_base_dispatch(base);   ...   smtpd_stop_accepting(s); smtpd_close_sessions(s);
 *
 * One session per connection, on a libevent bufferevent. Input is taken a line at a time
 * and every command is answered synchronously, in order, so pipelined commands get their
 * replies in the order they were sent. Processing pauses (reading stops) while replies wait
 * for a slow client, while a test-only delayed ETRN reply is pending, and while a session is
 * closing; no input is lost by pausing. A message is acknowledged only after
 * spool_writer_commit returned 0 (durable on disk); any other end of a transaction aborts
 * the writer, which leaves nothing in the spool. Sessions are freed only from the top-level
 * libevent callbacks, never from inside command handlers. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth.h"
#include "domain.h"
#include "etrn_cmd.h"
#include "etrnd_config.h"
#include "flush.h"
#include "log.h"
#include "netaddr.h"
#include "policy.h"
#include "smtp_line.h"
#include "smtp_reply.h"
#include "smtpd.h"
#include "spool.h"
#include "strbuf.h"
#include "tls.h"

#define SMTPD_MAX_HOPS 100          /* Received: headers before a message is a loop (RFC 5321 §6.3) */
#define SMTPD_DATA_CHUNK (64 * 1024)
/* Free space a new transaction needs besides its declared SIZE: a body's first blocks,
 * its envelopes and the directory entries. Refusing at MAIL (452 4.3.1) on a nearly full
 * spool spares the client sending a message that cannot be stored. */
#define SMTPD_SPACE_RESERVE (64 * 1024)

enum session_close {
    SESSION_OPEN,
    SESSION_CLOSE_AFTER_FLUSH,      /* 221/421 queued: close once the output is written */
    SESSION_DEAD                    /* free as soon as control returns to the callback */
};

enum session_auth_step {
    AUTH_STEP_NONE,
    AUTH_STEP_PLAIN,                /* 334 sent, waiting for the PLAIN response */
    AUTH_STEP_LOGIN_USER,           /* 334 Username: sent */
    AUTH_STEP_LOGIN_PASS            /* 334 Password: sent */
};

struct smtpd_listener {
    struct evconnlistener *lev;
    int port;
};

struct session;

struct smtpd {
    struct event_base *base;
    const struct etrnd_config *cfg;
    struct spool *spool;
    struct flush *flush;
    struct policy *policy;
    struct tls_server *tls;
    struct auth_db *auth;
    struct smtpd_listener *listeners;
    size_t nlisteners;
    struct session *sessions;       /* doubly linked */
    size_t nsessions;
    unsigned long long next_session_id;
};

struct session {
    struct smtpd *s;
    struct session *prev, *next;
    unsigned long long id;
    struct bufferevent *bev;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char peer_text[NETADDR_TEXT_MAX];
    struct smtp_line_reader reader;
    struct smtp_line line;
    enum session_close closing;
    int paused_output;              /* reading stopped until the output drains */
    int starttls_pending;           /* 220 to STARTTLS queued: wrap after this batch */
    int tls_active;
    struct event *close_timer;      /* TLS: waits for the socket to take the last reply */
    unsigned close_polls;
    struct event *etrn_delay;       /* test-only defect etrn_block_reply */
    int etrn_delaying;
    struct evbuffer *etrn_delayed_reply;
    unsigned errors;
    unsigned long long line_started_ms;  /* first octet of the unfinished line; 0 if none */

    int helo;                       /* 0 none, 1 HELO, 2 EHLO */
    char helo_name[DOMAIN_MAX + 1];
    char auth_user[AUTH_USER_MAX + 1];
    enum session_auth_step auth_step;
    char auth_login_user[AUTH_USER_MAX * 2 + 8];   /* base64 of the LOGIN user name */

    /* transaction */
    int have_mail;
    char sender[SPOOL_ADDR_MAX + 1];
    char **rcpts;
    size_t nrcpts;
    int in_data;
    struct spool_writer *writer;
    struct strbuf data_buf;         /* message text not yet handed to the writer */
    int data_in_headers;
    unsigned data_hops;
    size_t data_trace_len;          /* our Received: header, not counted against SIZE */
    int data_failed;                /* writer error: answer 451 at the end */
    int data_too_big;               /* over message_size_limit: answer 552 at the end */
    int data_long_line;             /* a line over 1000 octets: answer 500 at the end */
    int data_bare_lf;               /* bare LF in the text: answer 554 at the end */
    char data_error[ETRN_ERR_MAX];
};

/* --- helpers --------------------------------------------------------------------------- */

static unsigned long long smtpd_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0;
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

static int smtpd_defect(const struct smtpd *s, const char *name)
{
    return s->cfg->ndefects && etrnd_config_defect(s->cfg, name);
}

static struct evbuffer *session_out(struct session *ss)
{
    return bufferevent_get_output(ss->bev);
}

static void session_reply(struct session *ss, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void session_reply(struct session *ss, int code, const char *enh, const char *fmt, ...)
{
    char text[SMTP_REPLY_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (smtp_reply_write(session_out(ss), code, enh, "%s", text) < 0)
        ss->closing = SESSION_DEAD;
    if (code >= 400 && code != 421)
        ss->errors++;
}

/* Queues a final reply and closes the session once it is written. */
static void session_reply_and_close(struct session *ss, int code, const char *enh, const char *text)
{
    session_reply(ss, code, enh, "%s", text);
    if (ss->closing == SESSION_OPEN)
        ss->closing = SESSION_CLOSE_AFTER_FLUSH;
}

static void session_reset_transaction(struct session *ss)
{
    if (ss->writer) {
        spool_writer_abort(ss->writer);
        ss->writer = NULL;
    }
    for (size_t i = 0; i < ss->nrcpts; i++)
        free(ss->rcpts[i]);
    free(ss->rcpts);
    ss->rcpts = NULL;
    ss->nrcpts = 0;
    ss->have_mail = 0;
    ss->sender[0] = '\0';
    ss->in_data = 0;
    strbuf_reset(&ss->data_buf);
    ss->data_failed = ss->data_too_big = ss->data_long_line = ss->data_bare_lf = 0;
    ss->data_in_headers = 0;
    ss->data_hops = 0;
    ss->data_trace_len = 0;
    ss->data_error[0] = '\0';
    smtp_line_reader_set_limit(&ss->reader, SMTP_COMMAND_LINE_MAX);
}

static void session_free(struct session *ss)
{
    struct smtpd *s = ss->s;
    session_reset_transaction(ss);
    strbuf_free(&ss->data_buf);
    if (ss->close_timer)
        event_free(ss->close_timer);
    if (ss->etrn_delay)
        event_free(ss->etrn_delay);
    if (ss->etrn_delayed_reply)
        evbuffer_free(ss->etrn_delayed_reply);
    if (ss->bev)
        bufferevent_free(ss->bev);
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        s->sessions = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    s->nsessions--;
    log_debug("session %llu %s: closed", ss->id, ss->peer_text);
    free(ss);
}

/* "<addr> PARAMS" after "FROM:" or "TO:". Fills path (without <>) and returns the
 * parameters (may be ""), or NULL on a syntax error with why set. */
static const char *smtpd_parse_path(const char *arg, char *path, size_t pathcap, const char **why)
{
    while (*arg == ' ')
        arg++;    /* a space after the colon is common and harmless (RFC 5321 §4.1.2 is strict) */
    if (*arg != '<') {
        *why = "the address must be in angle brackets";
        return NULL;
    }
    const char *end = strchr(arg + 1, '>');
    if (end == NULL) {
        *why = "missing '>'";
        return NULL;
    }
    const char *start = arg + 1;
    /* A source route (RFC 5321 §4.1.2 A-d-l) is accepted and ignored. */
    if (*start == '@') {
        const char *colon = memchr(start, ':', (size_t)(end - start));
        if (colon == NULL) {
            *why = "bad source route";
            return NULL;
        }
        start = colon + 1;
    }
    size_t len = (size_t)(end - start);
    if (len >= pathcap || len > SPOOL_ADDR_MAX - 1) {
        *why = "address too long";
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)start[i];
        if (c <= ' ' || c == '<' || c == '>' || c == 0x7f) {
            *why = "invalid character in the address";
            return NULL;
        }
    }
    memcpy(path, start, len);
    path[len] = '\0';
    const char *params = end + 1;
    if (*params != '\0' && *params != ' ') {
        *why = "text after the address";
        return NULL;
    }
    while (*params == ' ')
        params++;
    return params;
}

/* Checks a recipient or sender address: local@domain with a valid domain (or address
 * literal). Returns the domain part or NULL. */
static const char *smtpd_address_domain(const char *addr, const char **why)
{
    const char *at = strrchr(addr, '@');
    if (at == NULL || at == addr) {
        *why = "the address needs local-part@domain";
        return NULL;
    }
    if ((size_t)(at - addr) > 64) {
        *why = "local part longer than 64 octets";
        return NULL;
    }
    const char *dom = at + 1;
    if (*dom == '[') {
        size_t n = strlen(dom);
        if (n < 3 || dom[n - 1] != ']') {
            *why = "bad address literal";
            return NULL;
        }
        return dom;
    }
    struct etrn_err e = {{0}};
    if (domain_check(dom, strlen(dom), 0, &e) < 0) {
        *why = "bad domain";
        return NULL;
    }
    return dom;
}

/* --- commands ---------------------------------------------------------------------------- */

static void cmd_ehlo(struct session *ss, const char *arg, int extended)
{
    const struct etrnd_config *cfg = ss->s->cfg;
    if (*arg == '\0') {
        session_reply(ss, 501, "5.5.4", "Syntax: %s hostname", extended ? "EHLO" : "HELO");
        return;
    }
    if (strlen(arg) > DOMAIN_MAX + 2 || strchr(arg, ' ') != NULL) {
        session_reply(ss, 501, "5.5.4", "Invalid host name");
        return;
    }
    session_reset_transaction(ss);
    str_copy(ss->helo_name, sizeof ss->helo_name, arg);
    ss->helo = extended ? 2 : 1;
    if (!extended) {
        session_reply(ss, 250, NULL, "%s", cfg->myhostname);
        return;
    }
    char size_line[64];
    str_format(size_line, sizeof size_line, "SIZE %llu", cfg->message_size_limit);
    const char *lines[12];
    size_t n = 0;
    lines[n++] = cfg->myhostname;
    lines[n++] = "PIPELINING";
    lines[n++] = size_line;
    if (cfg->etrn_enabled && !smtpd_defect(ss->s, "etrn_not_advertised"))
        lines[n++] = "ETRN";
    if (ss->s->tls && !ss->tls_active)
        lines[n++] = "STARTTLS";
    if (ss->s->auth && (ss->tls_active || cfg->auth_allow_plaintext))
        lines[n++] = "AUTH PLAIN LOGIN";
    lines[n++] = "ENHANCEDSTATUSCODES";
    lines[n++] = "8BITMIME";
    if (smtp_reply_write_lines(session_out(ss), 250, NULL, lines, n) < 0)
        ss->closing = SESSION_DEAD;
}

/* The "FROM:<path> params" or "TO:<path>" argument of MAIL or RCPT (syntax is "MAIL
 * FROM:" or "RCPT TO:"). Fills path (SPOOL_ADDR_MAX + 1 octets) and returns the
 * parameters, or NULL after answering 501. */
static const char *session_path_arg(struct session *ss, const char *arg, const char *syntax,
                                    const char *enh, const char *what, char *path)
{
    const char *keyword = strchr(syntax, ' ') + 1;   /* "FROM:" or "TO:" */
    size_t klen = strlen(keyword);
    if (str_ncasecmp(arg, keyword, klen) != 0) {
        session_reply(ss, 501, "5.5.4", "Syntax: %s<address>", syntax);
        return NULL;
    }
    const char *why = NULL;
    const char *params = smtpd_parse_path(arg + klen, path, SPOOL_ADDR_MAX + 1, &why);
    if (params == NULL)
        session_reply(ss, 501, enh, "Bad %s address syntax: %s", what, why);
    return params;
}

static void cmd_mail(struct session *ss, const char *arg)
{
    const struct etrnd_config *cfg = ss->s->cfg;
    if (ss->helo == 0) {
        session_reply(ss, 503, "5.5.1", "Send EHLO or HELO first");
        return;
    }
    if (ss->have_mail) {
        session_reply(ss, 503, "5.5.1", "Nested MAIL command");
        return;
    }
    const char *why = NULL;
    char path[SPOOL_ADDR_MAX + 1];
    const char *params = session_path_arg(ss, arg, "MAIL FROM:", "5.1.7", "sender", path);
    if (params == NULL)
        return;
    if (path[0] != '\0' && smtpd_address_domain(path, &why) == NULL) {
        session_reply(ss, 501, "5.1.7", "Bad sender address: %s", why);
        return;
    }
    /* ESMTP parameters: SIZE (RFC 1870), BODY (RFC 6152), AUTH (RFC 4954). */
    char pbuf[SMTP_COMMAND_LINE_MAX];
    str_copy(pbuf, sizeof pbuf, params);
    char *save = NULL;
    for (char *p = strtok_r(pbuf, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
        if (str_ncasecmp(p, "SIZE=", 5) == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long sz = strtoull(p + 5, &end, 10);
            if (errno || end == p + 5 || *end != '\0') {
                session_reply(ss, 501, "5.5.4", "Bad SIZE parameter");
                return;
            }
            if (cfg->message_size_limit && sz > cfg->message_size_limit) {
                session_reply(ss, 552, "5.3.4", "Message size exceeds fixed limit");
                return;
            }
            if (spool_space_ok(ss->s->spool, sz + SMTPD_SPACE_RESERVE) != 0) {
                session_reply(ss, 452, "4.3.1", "Insufficient system storage");
                return;
            }
        } else if (str_ncasecmp(p, "BODY=", 5) == 0) {
            if (str_casecmp(p + 5, "7BIT") != 0 && str_casecmp(p + 5, "8BITMIME") != 0) {
                session_reply(ss, 501, "5.5.4", "Unsupported BODY type");
                return;
            }
        } else if (str_ncasecmp(p, "AUTH=", 5) == 0) {
            /* accepted and ignored: we do not vouch for the original submitter */
        } else {
            session_reply(ss, 555, "5.5.4", "Unsupported MAIL parameter");
            return;
        }
    }
    if (spool_space_ok(ss->s->spool, SMTPD_SPACE_RESERVE) != 0) {
        session_reply(ss, 452, "4.3.1", "Insufficient system storage");
        return;
    }
    str_copy(ss->sender, sizeof ss->sender, path);
    ss->have_mail = 1;
    session_reply(ss, 250, "2.1.0", "Sender OK");
}

static int session_may_relay(const struct session *ss)
{
    const struct etrnd_config *cfg = ss->s->cfg;
    if (ss->auth_user[0] != '\0')
        return 1;
    return netmask_list_contains(cfg->mynetworks, cfg->nmynetworks,
                                 (const struct sockaddr *)&ss->peer);
}

static void cmd_rcpt(struct session *ss, const char *arg)
{
    const struct etrnd_config *cfg = ss->s->cfg;
    if (!ss->have_mail) {
        session_reply(ss, 503, "5.5.1", "Need MAIL before RCPT");
        return;
    }
    const char *why = NULL;
    char path[SPOOL_ADDR_MAX + 1];
    const char *params = session_path_arg(ss, arg, "RCPT TO:", "5.1.3", "recipient", path);
    if (params == NULL)
        return;
    if (*params != '\0') {
        session_reply(ss, 555, "5.5.4", "Unsupported RCPT parameter");
        return;
    }
    const char *dom = smtpd_address_domain(path, &why);
    if (dom == NULL) {
        session_reply(ss, 501, "5.1.3", "Bad recipient address: %s", why);
        return;
    }
    if (*dom == '[') {
        /* Address literals name a host, not a domain we hold; only trusted clients may
         * relay to them. */
        if (!session_may_relay(ss)) {
            session_reply(ss, 554, "5.7.1", "<%s>: Relay access denied", path);
            return;
        }
    } else {
        char norm[DOMAIN_MAX + 2];
        if (domain_normalize(dom, norm, sizeof norm) < 0) {
            session_reply(ss, 501, "5.1.3", "Bad recipient domain");
            return;
        }
        if (!etrnd_config_holds_domain(cfg, norm) && etrnd_config_route(cfg, norm) == NULL &&
            !session_may_relay(ss)) {
            session_reply(ss, 554, "5.7.1", "<%s>: Relay access denied", path);
            return;
        }
    }
    if (cfg->max_recipients && ss->nrcpts >= cfg->max_recipients) {
        session_reply(ss, 452, "4.5.3", "Too many recipients");
        return;
    }
    char **grown = realloc(ss->rcpts, (ss->nrcpts + 1) * sizeof *grown);
    if (grown == NULL) {
        session_reply(ss, 451, "4.3.0", "Out of memory");
        return;
    }
    ss->rcpts = grown;
    ss->rcpts[ss->nrcpts] = strdup(path);
    if (ss->rcpts[ss->nrcpts] == NULL) {
        session_reply(ss, 451, "4.3.0", "Out of memory");
        return;
    }
    ss->nrcpts++;
    session_reply(ss, 250, "2.1.5", "Recipient OK");
}

static void session_data_flush(struct session *ss)
{
    struct etrn_err e = {{0}};
    if (!ss->data_failed && ss->data_buf.len &&
        spool_writer_write(ss->writer, ss->data_buf.data, ss->data_buf.len, &e) < 0) {
        ss->data_failed = 1;
        str_copy(ss->data_error, sizeof ss->data_error, e.msg);
    }
    strbuf_reset(&ss->data_buf);
}

/* Message text goes to the spool writer in chunks of SMTPD_DATA_CHUNK. */
static void session_data_append(struct session *ss, const char *p, size_t n)
{
    if (ss->data_failed || ss->data_too_big)
        return;
    const struct etrnd_config *cfg = ss->s->cfg;
    if (cfg->message_size_limit &&
        spool_writer_size(ss->writer) + ss->data_buf.len + n >
            cfg->message_size_limit + ss->data_trace_len) {
        ss->data_too_big = 1;
        return;
    }
    if (ss->data_buf.len + n > SMTPD_DATA_CHUNK)
        session_data_flush(ss);
    if (ss->data_failed)
        return;
    if (strbuf_append(&ss->data_buf, p, n) < 0) {
        ss->data_failed = 1;
        str_copy(ss->data_error, sizeof ss->data_error, "message buffer over its limit");
    }
}

static void cmd_data(struct session *ss, const char *arg)
{
    const struct etrnd_config *cfg = ss->s->cfg;
    if (*arg != '\0') {
        session_reply(ss, 501, "5.5.4", "Syntax: DATA");
        return;
    }
    if (!ss->have_mail) {
        session_reply(ss, 503, "5.5.1", "Need MAIL command");
        return;
    }
    if (ss->nrcpts == 0) {
        session_reply(ss, 554, "5.5.1", "No valid recipients");
        return;
    }
    if (spool_space_ok(ss->s->spool, SMTPD_SPACE_RESERVE) != 0) {
        session_reply(ss, 452, "4.3.1", "Insufficient system storage");
        return;
    }
    struct etrn_err e = {{0}};
    if (spool_writer_begin(ss->s->spool, &ss->writer, &e) < 0) {
        log_error("session %llu %s: %s", ss->id, ss->peer_text, e.msg);
        ss->writer = NULL;
        session_reply(ss, 451, "4.3.0", "Local error in processing");
        return;
    }
    ss->in_data = 1;
    ss->data_in_headers = 1;
    smtp_line_reader_set_limit(&ss->reader, SMTP_TEXT_LINE_MAX);
    session_reply(ss, 354, NULL, "End data with <CR><LF>.<CR><LF>");

    /* Our trace header (RFC 5321 §4.4). */
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL || strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        str_copy(date, sizeof date, "Thu, 01 Jan 1970 00:00:00 +0000");
    char host[NETADDR_TEXT_MAX];
    if (netaddr_format_host((const struct sockaddr *)&ss->peer, host, sizeof host) < 0)
        str_copy(host, sizeof host, "unknown");
    char hdr[1024];
    str_format(hdr, sizeof hdr,
               "Received: from %s ([%s])\r\n\tby %s (etrnd) with %s%s%s;\r\n\t%s\r\n",
               ss->helo_name[0] ? ss->helo_name : "unknown", host, cfg->myhostname,
               ss->helo == 2 ? "ESMTP" : "SMTP", ss->tls_active ? "S" : "",
               ss->auth_user[0] ? "A" : "", date);
    ss->data_trace_len = strlen(hdr);
    session_data_append(ss, hdr, ss->data_trace_len);
}

static void session_data_end(struct session *ss)
{
    struct etrn_err e = {{0}};
    int code = 0;
    const char *enh = NULL, *text = NULL;
    if (ss->data_too_big) {
        code = 552; enh = "5.3.4"; text = "Message size exceeds fixed limit";
    } else if (ss->data_long_line) {
        code = 500; enh = "5.5.6"; text = "Message has a line longer than 998 characters";
    } else if (ss->data_bare_lf) {
        code = 554; enh = "5.6.0"; text = "Message has a bare LF (RFC 5321 section 2.3.8)";
    } else if (ss->data_hops > SMTPD_MAX_HOPS) {
        code = 554; enh = "5.4.6"; text = "Too many Received headers: mail loop";
    }
    if (code == 0)
        session_data_flush(ss);
    strbuf_reset(&ss->data_buf);
    if (code == 0 && ss->data_failed) {
        log_error("session %llu %s: message not stored: %s", ss->id, ss->peer_text, ss->data_error);
        code = 452; enh = "4.3.1"; text = "Insufficient system storage or local error";
    }
    if (code != 0) {
        session_reply(ss, code, enh, "%s", text);
        session_reset_transaction(ss);
        return;
    }
    char qid[SPOOL_ID_MAX];
    struct spool_writer *w = ss->writer;
    ss->writer = NULL;   /* commit frees it in all cases */
    if (spool_writer_commit(w, ss->sender, ss->rcpts, ss->nrcpts, qid, &e) < 0) {
        log_error("session %llu %s: commit failed: %s", ss->id, ss->peer_text, e.msg);
        session_reply(ss, 452, "4.3.1", "Message not accepted: insufficient system storage or local error");
        session_reset_transaction(ss);
        return;
    }
    log_info("%s: accepted from %s <%s> %zu recipient(s)", qid, ss->peer_text, ss->sender, ss->nrcpts);
    session_reply(ss, 250, "2.0.0", "Ok: queued as %s", qid);
    /* Tell the queue runner about each destination domain once. */
    if (ss->s->flush) {
        for (size_t i = 0; i < ss->nrcpts; i++) {
            const char *dom = domain_of_address(ss->rcpts[i]);
            if (dom == NULL)
                continue;
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++) {
                const char *d2 = domain_of_address(ss->rcpts[j]);
                seen = d2 && str_casecmp(d2, dom) == 0;
            }
            if (!seen) {
                char norm[DOMAIN_MAX + 2];
                if (dom[0] == '[' || domain_normalize(dom, norm, sizeof norm) < 0)
                    str_copy(norm, sizeof norm, dom);
                flush_message_committed(ss->s->flush, norm);
            }
        }
    }
    session_reset_transaction(ss);
}

static void session_data_line(struct session *ss, const struct smtp_line *ln,
                              enum smtp_line_status st)
{
    if (st == SMTP_LINE_TOO_LONG) {
        ss->data_long_line = 1;
        return;
    }
    if (ln->flags & SMTP_LINE_BARE_LF) {
        /* A bare LF never ends the message (no SMTP smuggling); the message is refused. */
        ss->data_bare_lf = 1;
        return;
    }
    if (ln->len == 1 && ln->buf[0] == '.') {
        session_data_end(ss);
        return;
    }
    const char *p = ln->buf;
    size_t n = ln->len;
    if (n > 0 && p[0] == '.') {   /* dot-unstuffing (RFC 5321 §4.5.2) */
        p++;
        n--;
    }
    if (ss->data_in_headers) {
        if (n == 0)
            ss->data_in_headers = 0;
        else if (n >= 9 && str_ncasecmp(p, "Received:", 9) == 0)
            ss->data_hops++;
    }
    session_data_append(ss, p, n);
    session_data_append(ss, "\r\n", 2);
}

static void session_etrn_delay_done(evutil_socket_t fd, short what, void *arg);

static void cmd_etrn(struct session *ss, const char *arg, size_t arglen)
{
    struct smtpd *s = ss->s;
    const struct etrnd_config *cfg = s->cfg;
    unsigned parse_flags = 0, policy_flags = 0, reply_flags = 0;
    if (smtpd_defect(s, "etrn_case_sensitive")) {
        parse_flags |= ETRN_PARSE_CASE_SENSITIVE;
        policy_flags |= POLICY_CASE_SENSITIVE;
    }
    if (smtpd_defect(s, "etrn_ignore_at"))
        parse_flags |= ETRN_PARSE_IGNORE_AT;
    if (smtpd_defect(s, "etrn_wrong_count"))
        reply_flags |= ETRN_REPLY_WRONG_COUNT;
    if (smtpd_defect(s, "etrn_accept_malformed"))
        reply_flags |= ETRN_REPLY_ACCEPT_MALFORMED;

    struct etrn_request rq;
    memset(&rq, 0, sizeof rq);
    struct etrn_err why = {{0}};
    enum etrn_outcome o;
    size_t count = 0;
    const char *detail = NULL;
    if (!cfg->etrn_enabled) {
        o = ETRN_OUTCOME_DISABLED;
    } else if (ss->have_mail) {
        o = ETRN_OUTCOME_IN_TRANSACTION;
    } else if (cfg->etrn_require_helo && ss->helo == 0) {
        o = ETRN_OUTCOME_NEED_HELO;
    } else {
        switch (etrn_parse(arg, arglen, parse_flags, &rq, &why)) {
        case ETRN_SYNTAX_MISSING:
            o = ETRN_OUTCOME_SYNTAX_MISSING;
            break;
        case ETRN_SYNTAX_BAD:
            o = ETRN_OUTCOME_SYNTAX_BAD;
            detail = why.msg;
            break;
        default:
            o = policy_etrn(s->policy, cfg, &rq, (const struct sockaddr *)&ss->peer,
                            ss->auth_user[0] ? ss->auth_user : NULL, smtpd_now_ms(), policy_flags);
            break;
        }
    }
    if (o == ETRN_OUTCOME_STARTED) {
        struct etrn_err e = {{0}};
        int rc = 0;
        const struct sockaddr *req = (const struct sockaddr *)&ss->peer;
        if (s->flush == NULL) {
            rc = err_set(&e, "no queue runner");
        } else if (rq.option == ETRN_OPTION_HASH) {
            const struct etrnd_queue *q = etrnd_config_queue(cfg, rq.node);
            for (size_t i = 0; q && i < q->ndomains && rc == 0; i++) {
                size_t n = 0;
                rc = flush_request_from(s->flush, q->domains[i], 0, req, &n, &e);
                count += n;
            }
        } else {
            rc = flush_request_from(s->flush, rq.node, rq.option == ETRN_OPTION_AT, req, &count, &e);
        }
        if (rc < 0) {
            log_error("session %llu %s: ETRN %s: %s", ss->id, ss->peer_text, rq.display, e.msg);
            o = ETRN_OUTCOME_FAILED;
        }
    }
    struct etrn_reply r;
    etrn_reply_choose(o, o == ETRN_OUTCOME_SYNTAX_MISSING ? NULL : &rq, count,
                      cfg->etrn_reply_style, reply_flags, detail, &r);
    log_info("session %llu %s: ETRN %s: %s (%d, %zu queued)", ss->id, ss->peer_text,
             rq.display[0] ? rq.display : "-", etrn_outcome_name(o), r.code, count);
    if (r.code >= 400)
        ss->errors++;

    if (o == ETRN_OUTCOME_STARTED && smtpd_defect(s, "etrn_block_reply")) {
        /* Test-only: a server that holds the reply back (as if it waited for the queue
         * run), which RFC 1985 §5 forbids. Input processing pauses meanwhile. */
        if (ss->etrn_delayed_reply == NULL)
            ss->etrn_delayed_reply = evbuffer_new();
        if (ss->etrn_delay == NULL)
            ss->etrn_delay = evtimer_new(s->base, session_etrn_delay_done, ss);
        if (ss->etrn_delayed_reply && ss->etrn_delay) {
            smtp_reply_write(ss->etrn_delayed_reply, r.code, r.enh, "%s", r.text);
            struct timeval tv = { SMTPD_ETRN_BLOCK_DELAY_MS / 1000, (SMTPD_ETRN_BLOCK_DELAY_MS % 1000) * 1000 };
            evtimer_add(ss->etrn_delay, &tv);
            ss->etrn_delaying = 1;
            bufferevent_disable(ss->bev, EV_READ);
            return;
        }
    }
    if (smtp_reply_write(session_out(ss), r.code, r.enh, "%s", r.text) < 0)
        ss->closing = SESSION_DEAD;
}

static void cmd_auth(struct session *ss, const char *arg)
{
    struct smtpd *s = ss->s;
    if (s->auth == NULL || (!ss->tls_active && !s->cfg->auth_allow_plaintext)) {
        session_reply(ss, 503, "5.5.1", "AUTH not available%s", s->auth ? " before STARTTLS" : "");
        return;
    }
    if (ss->helo != 2) {
        session_reply(ss, 503, "5.5.1", "Send EHLO first");
        return;
    }
    if (ss->auth_user[0] != '\0') {
        session_reply(ss, 503, "5.5.1", "Already authenticated");
        return;
    }
    if (ss->have_mail) {
        session_reply(ss, 503, "5.5.1", "AUTH not allowed during a mail transaction");
        return;
    }
    char mech[32];
    const char *sp = strchr(arg, ' ');
    size_t mlen = sp ? (size_t)(sp - arg) : strlen(arg);
    if (mlen == 0 || mlen >= sizeof mech) {
        session_reply(ss, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        return;
    }
    memcpy(mech, arg, mlen);
    mech[mlen] = '\0';
    const char *initial = sp ? sp + 1 : NULL;
    if (str_casecmp(mech, "PLAIN") == 0) {
        if (initial == NULL) {
            ss->auth_step = AUTH_STEP_PLAIN;
            session_reply(ss, 334, NULL, "%s", "");
            return;
        }
        char user[AUTH_USER_MAX + 1];
        enum auth_result ar = auth_plain(s->auth, initial, strlen(initial), user, sizeof user);
        if (ar == AUTH_OK) {
            str_copy(ss->auth_user, sizeof ss->auth_user, user);
            log_info("session %llu %s: authenticated as %s", ss->id, ss->peer_text, user);
            session_reply(ss, 235, "2.7.0", "Authentication successful");
        } else if (ar == AUTH_MALFORMED) {
            session_reply(ss, 501, "5.5.2", "Cannot decode the response");
        } else {
            log_warn("session %llu %s: authentication failed", ss->id, ss->peer_text);
            session_reply(ss, 535, "5.7.8", "Authentication credentials invalid");
        }
        return;
    }
    if (str_casecmp(mech, "LOGIN") == 0) {
        if (initial != NULL) {
            str_copy(ss->auth_login_user, sizeof ss->auth_login_user, initial);
            ss->auth_step = AUTH_STEP_LOGIN_PASS;
            session_reply(ss, 334, NULL, "UGFzc3dvcmQ6");
        } else {
            ss->auth_step = AUTH_STEP_LOGIN_USER;
            session_reply(ss, 334, NULL, "VXNlcm5hbWU6");
        }
        return;
    }
    session_reply(ss, 504, "5.5.4", "Unrecognized authentication type");
}

static void session_auth_line(struct session *ss, const struct smtp_line *ln)
{
    struct smtpd *s = ss->s;
    enum session_auth_step step = ss->auth_step;
    ss->auth_step = AUTH_STEP_NONE;
    if (ln->len == 1 && ln->buf[0] == '*') {
        session_reply(ss, 501, "5.0.0", "Authentication cancelled");
        return;
    }
    if ((ln->flags & SMTP_LINE_HAS_NUL) || s->auth == NULL) {
        session_reply(ss, 501, "5.5.2", "Cannot decode the response");
        return;
    }
    char user[AUTH_USER_MAX + 1];
    enum auth_result ar;
    if (step == AUTH_STEP_LOGIN_USER) {
        if (ln->len >= sizeof ss->auth_login_user) {
            session_reply(ss, 501, "5.5.2", "Cannot decode the response");
            return;
        }
        memcpy(ss->auth_login_user, ln->buf, ln->len);
        ss->auth_login_user[ln->len] = '\0';
        ss->auth_step = AUTH_STEP_LOGIN_PASS;
        session_reply(ss, 334, NULL, "UGFzc3dvcmQ6");
        return;
    }
    if (step == AUTH_STEP_LOGIN_PASS)
        ar = auth_login(s->auth, ss->auth_login_user, strlen(ss->auth_login_user), ln->buf,
                        ln->len, user, sizeof user);
    else
        ar = auth_plain(s->auth, ln->buf, ln->len, user, sizeof user);
    ss->auth_login_user[0] = '\0';
    if (ar == AUTH_OK) {
        str_copy(ss->auth_user, sizeof ss->auth_user, user);
        log_info("session %llu %s: authenticated as %s", ss->id, ss->peer_text, user);
        session_reply(ss, 235, "2.7.0", "Authentication successful");
    } else if (ar == AUTH_MALFORMED) {
        session_reply(ss, 501, "5.5.2", "Cannot decode the response");
    } else {
        log_warn("session %llu %s: authentication failed", ss->id, ss->peer_text);
        session_reply(ss, 535, "5.7.8", "Authentication credentials invalid");
    }
}

static void session_command(struct session *ss, const struct smtp_line *ln, enum smtp_line_status st)
{
    if (st == SMTP_LINE_TOO_LONG) {
        session_reply(ss, 500, "5.5.6", "Line too long");
        return;
    }
    if (ln->flags & SMTP_LINE_BARE_LF) {
        session_reply(ss, 500, "5.5.2", "Bare LF is not a line ending (RFC 5321 section 2.3.8)");
        return;
    }
    if (ln->flags & (SMTP_LINE_HAS_NUL | SMTP_LINE_BARE_CR)) {
        session_reply(ss, 500, "5.5.2", "Invalid character in the command");
        return;
    }
    if (ss->auth_step != AUTH_STEP_NONE) {
        session_auth_line(ss, ln);
        return;
    }
    char verb[16];
    size_t i = 0;
    while (i < ln->len && ln->buf[i] != ' ' && i < sizeof verb - 1) {
        verb[i] = ln->buf[i];
        i++;
    }
    verb[i] = '\0';
    if (i < ln->len && ln->buf[i] != ' ') {
        session_reply(ss, 500, "5.5.2", "Command unrecognized");
        return;
    }
    const char *arg = ln->buf + i;
    while (*arg == ' ')
        arg++;
    size_t arglen = ln->len - (size_t)(arg - ln->buf);
    char argbuf[SMTP_COMMAND_LINE_MAX + 1];
    str_copy(argbuf, sizeof argbuf, arg);
    /* trailing blanks are tolerated everywhere */
    size_t al = strlen(argbuf);
    while (al > 0 && argbuf[al - 1] == ' ')
        argbuf[--al] = '\0';

    if (str_casecmp(verb, "EHLO") == 0) {
        cmd_ehlo(ss, argbuf, 1);
    } else if (str_casecmp(verb, "HELO") == 0) {
        cmd_ehlo(ss, argbuf, 0);
    } else if (str_casecmp(verb, "MAIL") == 0) {
        cmd_mail(ss, argbuf);
    } else if (str_casecmp(verb, "RCPT") == 0) {
        cmd_rcpt(ss, argbuf);
    } else if (str_casecmp(verb, "DATA") == 0) {
        cmd_data(ss, argbuf);
    } else if (str_casecmp(verb, "RSET") == 0) {
        session_reset_transaction(ss);
        session_reply(ss, 250, "2.0.0", "Reset OK");
    } else if (str_casecmp(verb, "NOOP") == 0) {
        session_reply(ss, 250, "2.0.0", "OK");
    } else if (str_casecmp(verb, "QUIT") == 0) {
        session_reset_transaction(ss);
        session_reply_and_close(ss, 221, "2.0.0", "Bye");
    } else if (str_casecmp(verb, "ETRN") == 0) {
        cmd_etrn(ss, arg, arglen);
    } else if (str_casecmp(verb, "VRFY") == 0) {
        if (argbuf[0] == '\0')
            session_reply(ss, 501, "5.5.4", "Syntax: VRFY address");
        else
            session_reply(ss, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
    } else if (str_casecmp(verb, "EXPN") == 0) {
        session_reply(ss, 502, "5.5.1", "EXPN not implemented");
    } else if (str_casecmp(verb, "HELP") == 0) {
        session_reply(ss, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP ETRN%s%s",
                      ss->s->tls ? " STARTTLS" : "", ss->s->auth ? " AUTH" : "");
    } else if (str_casecmp(verb, "TURN") == 0) {
        /* RFC 1985 §1: TURN lets anyone take a site's mail; never supported. */
        session_reply(ss, 502, "5.5.1", "TURN not implemented; use ETRN");
    } else if (str_casecmp(verb, "STARTTLS") == 0) {
        if (ss->s->tls == NULL) {
            session_reply(ss, 502, "5.5.1", "STARTTLS not available");
        } else if (ss->tls_active) {
            session_reply(ss, 503, "5.5.1", "TLS already active");
        } else if (argbuf[0] != '\0') {
            session_reply(ss, 501, "5.5.4", "Syntax: STARTTLS");
        } else {
            session_reply(ss, 220, "2.0.0", "Ready to start TLS");
            ss->starttls_pending = 1;
        }
    } else if (str_casecmp(verb, "AUTH") == 0) {
        cmd_auth(ss, argbuf);
    } else {
        session_reply(ss, 500, "5.5.2", "Command unrecognized");
    }
}

/* --- the session's event handling -------------------------------------------------------- */

#define SESSION_CLOSE_POLL_MS 10
#define SESSION_CLOSE_POLLS_MAX 500    /* 5 s for the last reply to reach the socket */

/* Octets of replies not yet handed to the kernel. Under TLS the session's bufferevent is
 * a filter whose output empties as soon as OpenSSL has encrypted it; the ciphertext then
 * still waits in the underlying socket bufferevent. */
static size_t session_output_pending(struct session *ss)
{
    size_t n = evbuffer_get_length(session_out(ss));
    struct bufferevent *under = bufferevent_get_underlying(ss->bev);
    if (under)
        n += evbuffer_get_length(bufferevent_get_output(under));
    return n;
}

static void session_close_poll(evutil_socket_t fd, short what, void *arg);

/* For a session closing after its last reply: frees it once everything is written.
 * Returns -1 when the session has been freed. */
static int session_try_close(struct session *ss)
{
    if (session_output_pending(ss) == 0 || ss->close_polls >= SESSION_CLOSE_POLLS_MAX) {
        session_free(ss);
        return -1;
    }
    if (evbuffer_get_length(session_out(ss)) == 0) {
        /* only the socket below a TLS filter still holds data: it has no callback of
         * ours, so look again shortly */
        if (ss->close_timer == NULL)
            ss->close_timer = evtimer_new(ss->s->base, session_close_poll, ss);
        if (ss->close_timer == NULL) {
            session_free(ss);
            return -1;
        }
        struct timeval tv = { 0, SESSION_CLOSE_POLL_MS * 1000 };
        ss->close_polls++;
        evtimer_add(ss->close_timer, &tv);
    }
    return 0;
}

static void session_close_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_try_close(arg);
}

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

static void session_set_timeouts(struct session *ss)
{
    unsigned long long ms = ss->s->cfg->timeout_idle_ms;
    if (ms == 0)
        return;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    bufferevent_set_timeouts(ss->bev, &tv, &tv);
}

static void session_start_tls(struct session *ss)
{
    ss->starttls_pending = 0;
    /* Anything the client pipelined after STARTTLS was sent in the clear: drop it, so it
     * cannot be taken as having come through TLS (CVE-2011-0411). */
    struct evbuffer *in = bufferevent_get_input(ss->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct etrn_err e = {{0}};
    struct bufferevent *tls = tls_server_wrap(ss->s->tls, ss->s->base, ss->bev, &e);
    if (tls == NULL) {
        log_error("session %llu %s: %s", ss->id, ss->peer_text, e.msg);
        ss->closing = SESSION_DEAD;
        return;
    }
    ss->bev = tls;
    ss->tls_active = 1;
    /* RFC 3207 §4.2: the server forgets everything it learnt before TLS. */
    session_reset_transaction(ss);
    ss->helo = 0;
    ss->helo_name[0] = '\0';
    ss->auth_user[0] = '\0';
    smtp_line_reader_init(&ss->reader, SMTP_COMMAND_LINE_MAX);
    bufferevent_setcb(ss->bev, session_read_cb, session_write_cb, session_event_cb, ss);
    bufferevent_setwatermark(ss->bev, EV_READ, 0, SMTPD_INPUT_MAX);
    session_set_timeouts(ss);
    bufferevent_enable(ss->bev, EV_READ | EV_WRITE);
}

/* Runs every complete line waiting in the input, unless something pauses the session.
 * Returns -1 when the session has been freed. */
static int session_process(struct session *ss)
{
    struct evbuffer *in = bufferevent_get_input(ss->bev);
    while (ss->closing == SESSION_OPEN && !ss->etrn_delaying && !ss->starttls_pending) {
        if (evbuffer_get_length(session_out(ss)) > SMTPD_OUTPUT_MAX) {
            ss->paused_output = 1;
            bufferevent_disable(ss->bev, EV_READ);
            break;
        }
        enum smtp_line_status st = smtp_line_read(&ss->reader, in, &ss->line);
        if (st == SMTP_LINE_INCOMPLETE)
            break;
        ss->line_started_ms = 0;
        if (ss->in_data)
            session_data_line(ss, &ss->line, st);
        else
            session_command(ss, &ss->line, st);
        if (ss->s->cfg->max_errors && ss->errors > ss->s->cfg->max_errors && ss->closing == SESSION_OPEN) {
            log_warn("session %llu %s: too many errors", ss->id, ss->peer_text);
            session_reset_transaction(ss);
            session_reply_and_close(ss, 421, "4.7.0", "Too many errors, closing connection");
        }
    }
    /* smtpd_timeout bounds each line, not just the silence between octets: a client that
     * trickles an endless line would otherwise hold its session for ever. */
    if (ss->closing == SESSION_OPEN && !ss->etrn_delaying && !ss->paused_output &&
        !ss->starttls_pending) {
        if (evbuffer_get_length(in) == 0 && !ss->reader.discarding) {
            ss->line_started_ms = 0;
        } else {
            unsigned long long now = smtpd_now_ms();
            if (ss->line_started_ms == 0)
                ss->line_started_ms = now;
            else if (ss->s->cfg->timeout_idle_ms &&
                     now - ss->line_started_ms > ss->s->cfg->timeout_idle_ms) {
                log_info("session %llu %s: a line took longer than smtpd_timeout", ss->id, ss->peer_text);
                session_reset_transaction(ss);
                session_reply_and_close(ss, 421, "4.4.2", "Timeout, closing connection");
            }
        }
    }
    if (ss->starttls_pending && ss->closing == SESSION_OPEN)
        session_start_tls(ss);
    if (ss->closing == SESSION_DEAD) {
        session_free(ss);
        return -1;
    }
    if (ss->closing == SESSION_CLOSE_AFTER_FLUSH) {
        bufferevent_disable(ss->bev, EV_READ);
        return session_try_close(ss);
    }
    return 0;
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    session_process(arg);
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct session *ss = arg;
    if (ss->closing == SESSION_CLOSE_AFTER_FLUSH) {
        session_try_close(ss);
        return;
    }
    if (ss->paused_output && evbuffer_get_length(session_out(ss)) <= SMTPD_OUTPUT_MAX / 2) {
        ss->paused_output = 0;
        if (!ss->etrn_delaying)
            bufferevent_enable(ss->bev, EV_READ);
        session_process(ss);
    }
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct session *ss = arg;
    if (what & BEV_EVENT_TIMEOUT) {
        if (ss->closing != SESSION_OPEN || (what & BEV_EVENT_WRITING)) {
            session_free(ss);    /* the client does not read: give up */
            return;
        }
        log_info("session %llu %s: idle timeout", ss->id, ss->peer_text);
        session_reset_transaction(ss);
        session_reply_and_close(ss, 421, "4.4.2", "Timeout, closing connection");
        bufferevent_disable(ss->bev, EV_READ);
        bufferevent_enable(ss->bev, EV_WRITE);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (ss->in_data)
            log_info("session %llu %s: connection lost during DATA; message discarded", ss->id, ss->peer_text);
        if (what & BEV_EVENT_ERROR && ss->tls_active) {
            char why[256];
            tls_last_error(ss->bev, why, sizeof why);
            if (why[0])
                log_info("session %llu %s: TLS: %s", ss->id, ss->peer_text, why);
        }
        session_free(ss);
    }
}

static void session_etrn_delay_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *ss = arg;
    ss->etrn_delaying = 0;
    if (ss->etrn_delayed_reply)
        evbuffer_add_buffer(session_out(ss), ss->etrn_delayed_reply);
    if (ss->closing == SESSION_OPEN && !ss->paused_output)
        bufferevent_enable(ss->bev, EV_READ);
    session_process(ss);
}

/* --- listeners and the server -------------------------------------------------------------- */

/* Open sessions from ss's address other than ss (0 when the limit is off or the address is
 * in mynetworks, which is exempt as with Postfix's smtpd_client_event_limit_exceptions). */
static size_t smtpd_sessions_from(const struct smtpd *s, const struct session *ss)
{
    const struct etrnd_config *cfg = s->cfg;
    const struct sockaddr *peer = (const struct sockaddr *)&ss->peer;
    if (cfg->max_sessions_per_client == 0 ||
        netmask_list_contains(cfg->mynetworks, cfg->nmynetworks, peer))
        return 0;
    size_t n = 0;
    for (const struct session *o = s->sessions; o; o = o->next)
        if (o != ss && o->closing == SESSION_OPEN &&
            netaddr_equal_host(peer, (const struct sockaddr *)&o->peer))
            n++;
    return n;
}

int smtpd_session_start(struct smtpd *s, evutil_socket_t fd, const struct sockaddr *peer,
                        socklen_t peerlen)
{
    struct session *ss = calloc(1, sizeof *ss);
    if (ss == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    ss->s = s;
    ss->id = ++s->next_session_id;
    if (peerlen > sizeof ss->peer)
        peerlen = sizeof ss->peer;
    memcpy(&ss->peer, peer, peerlen);
    ss->peerlen = peerlen;
    if (netaddr_format(peer, ss->peer_text, sizeof ss->peer_text) < 0)
        str_copy(ss->peer_text, sizeof ss->peer_text, "unknown");
    smtp_line_reader_init(&ss->reader, SMTP_COMMAND_LINE_MAX);
    strbuf_init(&ss->data_buf, SMTPD_DATA_CHUNK + SMTP_TEXT_LINE_MAX + 1024);
    evutil_make_socket_nonblocking(fd);
    ss->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (ss->bev == NULL) {
        strbuf_free(&ss->data_buf);
        free(ss);
        evutil_closesocket(fd);
        return -1;
    }
    ss->next = s->sessions;
    if (s->sessions)
        s->sessions->prev = ss;
    s->sessions = ss;
    s->nsessions++;
    bufferevent_setcb(ss->bev, session_read_cb, session_write_cb, session_event_cb, ss);
    bufferevent_setwatermark(ss->bev, EV_READ, 0, SMTPD_INPUT_MAX);
    session_set_timeouts(ss);
    log_debug("session %llu %s: connect", ss->id, ss->peer_text);
    if (s->cfg->max_sessions && s->nsessions > s->cfg->max_sessions) {
        log_warn("session %llu %s: refused, %zu sessions", ss->id, ss->peer_text, s->nsessions - 1);
        session_reply_and_close(ss, 421, "4.3.2", "Too many connections, try again later");
        bufferevent_enable(ss->bev, EV_WRITE);
        return 0;
    }
    size_t same = smtpd_sessions_from(s, ss);
    if (same >= s->cfg->max_sessions_per_client && s->cfg->max_sessions_per_client > 0) {
        log_warn("session %llu %s: refused, %zu sessions from this address", ss->id,
                 ss->peer_text, same);
        session_reply_and_close(ss, 421, "4.7.0",
                                "Too many connections from your address, try again later");
        bufferevent_enable(ss->bev, EV_WRITE);
        return 0;
    }
    session_reply(ss, 220, NULL, "%s ESMTP etrnd", s->cfg->myhostname);
    bufferevent_enable(ss->bev, EV_READ | EV_WRITE);
    return 0;
}

static void smtpd_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    (void)lev;
    smtpd_session_start(arg, fd, sa, (socklen_t)salen);
}

static void smtpd_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    (void)arg;
    /* EMFILE and friends: libevent keeps the listener; log and carry on. */
    log_error("accept: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static int smtpd_load_extras(const struct etrnd_config *cfg, struct tls_server **tls,
                             struct auth_db **auth, struct etrn_err *err)
{
    *tls = NULL;
    *auth = NULL;
    if (cfg->tls_cert_file && cfg->tls_key_file &&
        tls_server_new(tls, cfg->tls_cert_file, cfg->tls_key_file, err) < 0)
        return -1;
    if (cfg->auth_password_file && auth_db_load(auth, cfg->auth_password_file, err) < 0) {
        tls_server_free(*tls);
        *tls = NULL;
        return -1;
    }
    return 0;
}

int smtpd_new(struct smtpd **out, struct event_base *base, const struct etrnd_config *cfg,
              struct spool *sp, struct flush *fl, struct etrn_err *err)
{
    struct smtpd *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(err, "smtpd: out of memory");
    s->base = base;
    s->cfg = cfg;
    s->spool = sp;
    s->flush = fl;
    if (policy_new(&s->policy, POLICY_CLIENTS_DEFAULT) < 0) {
        free(s);
        return err_set(err, "smtpd: out of memory");
    }
    if (smtpd_load_extras(cfg, &s->tls, &s->auth, err) < 0) {
        policy_free(s->policy);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int smtpd_listen(struct smtpd *s, struct etrn_err *err)
{
    const struct etrnd_config *cfg = s->cfg;
    s->listeners = calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof *s->listeners);
    if (s->listeners == NULL)
        return err_set(err, "smtpd: out of memory");
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct netaddr *a = &cfg->listen[i];
        char text[NETADDR_TEXT_MAX];
        netaddr_format((const struct sockaddr *)&a->ss, text, sizeof text);
        struct evconnlistener *lev = evconnlistener_new_bind(
            s->base, smtpd_accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
            1024, (const struct sockaddr *)&a->ss, (int)a->len);
        if (lev == NULL)
            return err_set_errno(err, "listen %s", text);
        evconnlistener_set_error_cb(lev, smtpd_accept_error_cb);
        s->listeners[s->nlisteners].lev = lev;
        struct sockaddr_storage bound;
        socklen_t blen = sizeof bound;
        s->listeners[s->nlisteners].port =
            getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&bound, &blen) == 0
                ? netaddr_port((struct sockaddr *)&bound) : -1;
        s->nlisteners++;
        log_info("listening on %s", text);
    }
    return 0;
}

size_t smtpd_listener_count(const struct smtpd *s)
{
    return s->nlisteners;
}

int smtpd_listener_port(const struct smtpd *s, size_t i)
{
    return i < s->nlisteners ? s->listeners[i].port : -1;
}

int smtpd_reconfigure(struct smtpd *s, const struct etrnd_config *cfg, struct etrn_err *err)
{
    struct tls_server *tls;
    struct auth_db *auth;
    if (smtpd_load_extras(cfg, &tls, &auth, err) < 0)
        return -1;
    tls_server_free(s->tls);   /* running TLS sessions hold their own reference */
    auth_db_free(s->auth);
    s->tls = tls;
    s->auth = auth;
    s->cfg = cfg;
    return 0;
}

void smtpd_stop_accepting(struct smtpd *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        evconnlistener_free(s->listeners[i].lev);
        s->listeners[i].lev = NULL;
    }
    s->nlisteners = 0;
}

void smtpd_close_sessions(struct smtpd *s)
{
    struct session *ss = s->sessions;
    while (ss) {
        struct session *next = ss->next;
        if (ss->closing == SESSION_OPEN) {
            if (ss->in_data)
                log_info("session %llu %s: shutting down during DATA; message discarded", ss->id, ss->peer_text);
            session_reset_transaction(ss);
            session_reply_and_close(ss, 421, "4.3.2", "Service shutting down");
            bufferevent_disable(ss->bev, EV_READ);
            bufferevent_enable(ss->bev, EV_WRITE);
            if (ss->etrn_delay)
                evtimer_del(ss->etrn_delay);
            ss->etrn_delaying = 0;
        }
        if (ss->closing == SESSION_DEAD)
            session_free(ss);
        else
            session_try_close(ss);
        ss = next;
    }
}

size_t smtpd_session_count(const struct smtpd *s)
{
    return s->nsessions;
}

void smtpd_free(struct smtpd *s)
{
    if (s == NULL)
        return;
    smtpd_stop_accepting(s);
    while (s->sessions)
        session_free(s->sessions);
    free(s->listeners);
    tls_server_free(s->tls);
    auth_db_free(s->auth);
    policy_free(s->policy);
    free(s);
}
