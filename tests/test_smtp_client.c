/* test_smtp_client.c — the outbound SMTP client against a scripted SMTP server in the test.
 *
 *   build/tests/test_smtp_client
 *
 * The server listens on 127.0.0.1 (ephemeral port) on the same event_base, answers
 * according to a per-test script (codes, extensions, silence, closing, TLS) and records
 * what it receives, so dot-stuffing, pipelining, reply handling, connection reuse and
 * timeouts are checked on real sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "smtp_client.h"
#include "strbuf.h"

/* ------------------------------------------------------------ scripted server */

struct sink_script {
    int greeting;            /* 220; 0 = never greet */
    int ehlo;                /* 250, or 5xx to force HELO */
    int pipelining;
    unsigned long long size; /* advertised SIZE, 0 = none */
    int starttls;            /* offer STARTTLS */
    int tls_break;           /* answer 220 to STARTTLS, then close */
    int mail;                /* 250 default */
    const char *rcpt_550;    /* this recipient gets 550 */
    const char *rcpt_450;    /* this recipient gets 450 */
    int data;                /* 354 default */
    int dot;                 /* 250 default; 0 = never answer */
    int close_at_dot;        /* close without answering the dot */
    unsigned hold_mail_for;  /* withhold MAIL/RCPT replies until this many RCPTs arrived */
};

struct sink {
    struct event_base *base;
    struct evconnlistener *lst;
    int port;
    struct sink_script s;
    SSL_CTX *tls_ctx;
    unsigned connections;
    unsigned tls_sessions;
    struct strbuf commands;  /* every command line, "\n"-separated */
    struct strbuf data;      /* every DATA text as received (still dot-stuffed), "<END>\n" after each */
    unsigned messages;
    struct sink_conn *conns;     /* open connections, closed at teardown */
};

struct sink_conn {
    struct sink_conn *next;
    struct sink *k;
    struct bufferevent *bev;
    int in_data;
    int holding;             /* the reply being written is one to MAIL/RCPT */
    unsigned rcpts_seen;
    struct strbuf held;      /* replies withheld for the pipelining check */
};

static void sink_conn_close(struct sink_conn *sc)
{
    struct sink_conn **pp = &sc->k->conns;
    while (*pp && *pp != sc)
        pp = &(*pp)->next;
    if (*pp)
        *pp = sc->next;
    bufferevent_free(sc->bev);
    strbuf_free(&sc->held);
    free(sc);
}

static void sink_reply(struct sink_conn *sc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sink_reply(struct sink_conn *sc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct strbuf line;
    strbuf_init(&line, 1024);
    strbuf_vappendf(&line, fmt, ap);
    va_end(ap);
    strbuf_append_str(&line, "\r\n");
    if (sc->holding && sc->k->s.hold_mail_for && sc->rcpts_seen < sc->k->s.hold_mail_for)
        strbuf_append(&sc->held, line.data, line.len);
    else
        evbuffer_add(bufferevent_get_output(sc->bev), line.data, line.len);
    strbuf_free(&line);
}

static void sink_on_read(struct bufferevent *bev, void *arg);
static void sink_on_event(struct bufferevent *bev, short what, void *arg);

static void sink_start_tls(struct sink_conn *sc)
{
    SSL *ssl = SSL_new(sc->k->tls_ctx);
    struct bufferevent *tls = bufferevent_openssl_filter_new(sc->k->base, sc->bev, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    sc->bev = tls;
    bufferevent_setcb(tls, sink_on_read, NULL, sink_on_event, sc);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    sc->k->tls_sessions++;
}

static void sink_command(struct sink_conn *sc, const char *line)
{
    struct sink *k = sc->k;
    strbuf_append_str(&k->commands, line);
    strbuf_append_str(&k->commands, "\n");
    if (strncasecmp(line, "EHLO", 4) == 0) {
        if (k->s.ehlo != 250) {
            sink_reply(sc, "%d 5.5.1 no EHLO here", k->s.ehlo);
            return;
        }
        struct strbuf r;
        strbuf_init(&r, 1024);
        strbuf_append_str(&r, "250-sink.test");
        if (k->s.pipelining)
            strbuf_append_str(&r, "\r\n250-PIPELINING");
        if (k->s.size)
            strbuf_appendf(&r, "\r\n250-SIZE %llu", k->s.size);
        if (k->s.starttls)
            strbuf_append_str(&r, "\r\n250-STARTTLS");
        strbuf_append_str(&r, "\r\n250 8BITMIME");
        sink_reply(sc, "%s", r.data);
        strbuf_free(&r);
    } else if (strncasecmp(line, "HELO", 4) == 0) {
        sink_reply(sc, "250 sink.test");
    } else if (strncasecmp(line, "STARTTLS", 8) == 0) {
        if (k->s.tls_break) {
            /* a 220, then bytes that are not TLS, then the connection ends */
            static const char junk[] = "220 2.0.0 go ahead\r\nthis is not TLS\r\n\r\n";
            assert_int_equal(write(bufferevent_getfd(sc->bev), junk, sizeof junk - 1),
                             (ssize_t)(sizeof junk - 1));
            sink_conn_close(sc);
            return;
        }
        sink_reply(sc, "220 2.0.0 go ahead");
        sink_start_tls(sc);
    } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
        sc->rcpts_seen = 0;
        sc->holding = 1;
        sink_reply(sc, "%d 2.1.0 sender", k->s.mail);
        sc->holding = 0;
    } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
        int code = 250;
        if (k->s.rcpt_550 && strstr(line, k->s.rcpt_550))
            code = 550;
        else if (k->s.rcpt_450 && strstr(line, k->s.rcpt_450))
            code = 450;
        sc->rcpts_seen++;
        sc->holding = 1;
        sink_reply(sc, "%d %s recipient", code, code == 250 ? "2.1.5" : code == 550 ? "5.1.1" : "4.2.0");
        sc->holding = 0;
        if (sc->rcpts_seen == k->s.hold_mail_for) {
            evbuffer_add(bufferevent_get_output(sc->bev), sc->held.data, sc->held.len);
            strbuf_reset(&sc->held);
        }
    } else if (strncasecmp(line, "DATA", 4) == 0) {
        if (k->s.data == 354)
            sc->in_data = 1;
        sink_reply(sc, "%d %s", k->s.data, k->s.data == 354 ? "go ahead" : "no data");
    } else if (strncasecmp(line, "RSET", 4) == 0) {
        sink_reply(sc, "250 2.0.0 reset");
    } else if (strncasecmp(line, "QUIT", 4) == 0) {
        sink_reply(sc, "221 2.0.0 bye");
    } else {
        sink_reply(sc, "500 5.5.2 what");
    }
}

static void sink_on_read(struct bufferevent *bev, void *arg)
{
    struct sink_conn *sc = arg;
    struct sink *k = sc->k;
    char *line;
    size_t len;
    while ((line = evbuffer_readln(bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF_STRICT))) {
        if (sc->in_data) {
            if (strcmp(line, ".") == 0) {
                sc->in_data = 0;
                k->messages++;
                strbuf_append_str(&k->data, "<END>\n");
                free(line);
                if (k->s.close_at_dot) {
                    sink_conn_close(sc);
                    return;
                }
                if (k->s.dot)
                    sink_reply(sc, "%d %s", k->s.dot, k->s.dot == 250 ? "2.0.0 Ok: queued" : "failed");
                continue;
            }
            strbuf_append(&k->data, line, len);
            strbuf_append_str(&k->data, "\r\n");
            free(line);
            continue;
        }
        struct bufferevent *before = sc->bev;
        sink_command(sc, line);
        free(line);
        if (k->s.tls_break && strstr(k->commands.data, "STARTTLS"))
            return;            /* connection closed */
        if (sc->bev != before)
            return;            /* now TLS: the rest arrives through the filter */
    }
}

static void sink_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sink_conn_close(arg);
}

static void sink_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
    struct sink *k = arg;
    (void)l;
    (void)sa;
    (void)salen;
    k->connections++;
    struct sink_conn *sc = calloc(1, sizeof(*sc));
    sc->k = k;
    sc->next = k->conns;
    k->conns = sc;
    strbuf_init(&sc->held, 65536);
    sc->bev = bufferevent_socket_new(k->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(sc->bev, sink_on_read, NULL, sink_on_event, sc);
    bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
    if (k->s.greeting)
        sink_reply(sc, "%d sink.test ESMTP", k->s.greeting);
}

static SSL_CTX *sink_tls_context(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"sink.test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, x);
    SSL_CTX_use_PrivateKey(ctx, key);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

/* ------------------------------------------------------------ fixture */

struct fixture {
    struct event_base *base;
    struct sink sink;
    struct smtp_client_config cfg;
    struct smtp_client *c;
    int ready_calls, ready_ok;
    int sent_calls;
    struct smtp_message_result res;
    int rcpt_code[8];
    size_t nrcpt_sent;
    int closed;
    char body_path[64];
    int body_fd;
};

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void run_loop(struct fixture *f)
{
    struct event *wd = evtimer_new(f->base, on_watchdog, f->base);
    struct timeval tv = { 5, 0 };
    evtimer_add(wd, &tv);
    event_base_dispatch(f->base);
    event_free(wd);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    struct sink *k = &f->sink;
    k->base = f->base;
    k->s = (struct sink_script){ .greeting = 220, .ehlo = 250, .pipelining = 1, .mail = 250,
                                 .data = 354, .dot = 250 };
    strbuf_init(&k->commands, 1 << 20);
    strbuf_init(&k->data, 1 << 22);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    k->lst = evconnlistener_new_bind(f->base, sink_on_accept, k, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                     16, (struct sockaddr *)&sin, sizeof sin);
    if (!k->lst)
        return -1;
    socklen_t sl = sizeof sin;
    getsockname(evconnlistener_get_fd(k->lst), (struct sockaddr *)&sin, &sl);
    k->port = ntohs(sin.sin_port);
    f->cfg = (struct smtp_client_config){ "relay.example", "sink.test", 0, 2000, 2000, 2000,
                                          2000, 2000, 2000, 2000 };
    str_copy(f->body_path, sizeof f->body_path, "/tmp/test_smtp_client.XXXXXX");
    f->body_fd = mkstemp(f->body_path);
    if (f->body_fd < 0)
        return -1;
    unlink(f->body_path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    smtp_client_free(f->c);
    evconnlistener_free(f->sink.lst);
    while (f->sink.conns)
        sink_conn_close(f->sink.conns);
    strbuf_free(&f->sink.commands);
    strbuf_free(&f->sink.data);
    if (f->sink.tls_ctx)
        SSL_CTX_free(f->sink.tls_ctx);
    close(f->body_fd);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void write_body(struct fixture *f, const char *text)
{
    assert_int_equal(ftruncate(f->body_fd, 0), 0);
    assert_int_equal(pwrite(f->body_fd, text, strlen(text), 0), (ssize_t)strlen(text));
}

static void on_ready(struct smtp_client *c, int ok, void *arg)
{
    struct fixture *f = arg;
    (void)c;
    f->ready_calls++;
    f->ready_ok = ok;
    event_base_loopbreak(f->base);
}

static void on_sent(struct smtp_client *c, const struct smtp_message_result *res, void *arg)
{
    struct fixture *f = arg;
    (void)c;
    f->sent_calls++;
    f->res = *res;
    for (size_t i = 0; i < 8; i++)
        f->rcpt_code[i] = 0;
    for (size_t i = 0; i < f->nrcpt_sent; i++)
        f->rcpt_code[i] = res->rcpt_code[i];
    f->res.rcpt_code = NULL;
    f->res.rcpt_reply = NULL;
    event_base_loopbreak(f->base);
}

static void on_closed(struct smtp_client *c, void *arg)
{
    struct fixture *f = arg;
    (void)c;
    f->closed = 1;
    event_base_loopbreak(f->base);
}

static void connect_to(struct fixture *f, int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((unsigned short)port);
    struct etrn_err err;
    f->ready_calls = 0;
    assert_int_equal(smtp_client_connect(&f->c, f->base, (struct sockaddr *)&sin, sizeof sin, &f->cfg,
                                         on_ready, f, &err), 0);
    assert_int_equal(f->ready_calls, 0);
    run_loop(f);
    assert_int_equal(f->ready_calls, 1);
}

static void connect_sink(struct fixture *f)
{
    connect_to(f, f->sink.port);
    assert_int_equal(f->ready_ok, 1);
    assert_true(smtp_client_usable(f->c));
}

static char *rcpts3[] = { "a@node.test", "b@node.test", "c@node.test" };

static void send_msg(struct fixture *f, size_t nrcpt)
{
    struct smtp_message m = { "sender@origin.test", rcpts3, nrcpt, 0, f->body_fd };
    struct stat_like { off_t size; } st = { lseek(f->body_fd, 0, SEEK_END) };
    m.size = (uint64_t)st.size;
    struct etrn_err err;
    f->sent_calls = 0;
    f->nrcpt_sent = nrcpt;
    assert_int_equal(smtp_client_send(f->c, &m, on_sent, f, &err), 0);
    assert_int_equal(f->sent_calls, 0);
    run_loop(f);
    assert_int_equal(f->sent_calls, 1);
}

/* ------------------------------------------------------------ tests */

static void test_client_stuffs_dots_and_ends_lines_with_crlf(void **state)
{
    struct fixture *f = *state;
    write_body(f, "Subject: dots\r\n\r\n.hidden\r\n..two\r\nbare lf\nbare cr\rok\r\n.\r\nlast line");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_int_equal(f->res.code, 250);
    assert_int_equal(f->res.dot_sent, 1);
    assert_string_equal(f->res.reply, "250 2.0.0 Ok: queued");
    assert_string_equal(f->sink.data.data,
                        "Subject: dots\r\n\r\n..hidden\r\n...two\r\nbare lf\r\nbare cr\r\nok\r\n..\r\n"
                        "last line\r\n<END>\n");
}

static void test_client_sends_empty_message_as_lone_dot(void **state)
{
    struct fixture *f = *state;
    write_body(f, "");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_string_equal(f->sink.data.data, "<END>\n");
}

static void test_client_pipelines_mail_and_rcpts(void **state)
{
    struct fixture *f = *state;
    f->sink.s.hold_mail_for = 3;   /* no reply until all three RCPTs are in: needs pipelining */
    write_body(f, "Subject: p\r\n\r\nhi\r\n");
    connect_sink(f);
    assert_true(smtp_client_pipelining(f->c));
    send_msg(f, 3);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_int_equal(f->rcpt_code[2], 250);
}

static void test_client_without_pipelining_sends_one_command_at_a_time(void **state)
{
    struct fixture *f = *state;
    f->sink.s.pipelining = 0;
    write_body(f, "x\r\n");
    connect_sink(f);
    assert_false(smtp_client_pipelining(f->c));
    send_msg(f, 2);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_non_null(strstr(f->sink.commands.data,
                           "MAIL FROM:<sender@origin.test>\nRCPT TO:<a@node.test>\nRCPT TO:<b@node.test>\nDATA\n"));
}

static void test_client_falls_back_to_helo_when_ehlo_is_refused(void **state)
{
    struct fixture *f = *state;
    f->sink.s.ehlo = 502;
    write_body(f, "x\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_non_null(strstr(f->sink.commands.data, "EHLO relay.example\nHELO relay.example\n"));
}

static void test_client_reports_each_recipient_reply(void **state)
{
    struct fixture *f = *state;
    f->sink.s.rcpt_550 = "b@node.test";
    f->sink.s.rcpt_450 = "c@node.test";
    write_body(f, "x\r\n");
    connect_sink(f);
    send_msg(f, 3);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_int_equal(f->rcpt_code[0], 250);
    assert_int_equal(f->rcpt_code[1], 550);
    assert_int_equal(f->rcpt_code[2], 450);
    assert_int_equal(f->sink.messages, 1);
}

static void test_client_sends_no_data_when_every_recipient_is_refused(void **state)
{
    struct fixture *f = *state;
    f->sink.s.rcpt_550 = "a@node.test";
    write_body(f, "x\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_RCPTS_FAILED);
    assert_int_equal(f->res.code, 550);
    assert_null(strstr(f->sink.commands.data, "DATA"));
}

static void test_client_reuses_connection_with_rset_after_failed_transaction(void **state)
{
    struct fixture *f = *state;
    f->sink.s.rcpt_550 = "a@node.test";
    write_body(f, "x\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_RCPTS_FAILED);
    assert_true(smtp_client_usable(f->c));
    send_msg(f, 3);                     /* a refused, b and c accepted */
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    send_msg(f, 3);                     /* after a completed one: no RSET needed */
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_int_equal(f->sink.connections, 1);
    assert_int_equal(f->sink.messages, 2);
    assert_non_null(strstr(f->sink.commands.data, "RCPT TO:<a@node.test>\nRSET\nMAIL FROM:"));
    assert_non_null(strstr(f->sink.commands.data, "DATA\nMAIL FROM:"));
    f->closed = 0;
    smtp_client_quit(f->c, on_closed, f);
    run_loop(f);
    assert_int_equal(f->closed, 1);
    assert_non_null(strstr(f->sink.commands.data, "QUIT\n"));
}

static void test_client_reports_mail_4xx_as_deferred_and_5xx_as_rejected(void **state)
{
    struct fixture *f = *state;
    write_body(f, "x\r\n");
    f->sink.s.mail = 451;
    connect_sink(f);
    send_msg(f, 2);
    assert_int_equal(f->res.outcome, SMTP_MSG_DEFERRED);
    assert_int_equal(f->res.code, 451);
    f->sink.s.mail = 553;
    send_msg(f, 2);
    assert_int_equal(f->res.outcome, SMTP_MSG_REJECTED);
    assert_int_equal(f->res.code, 553);
    assert_int_equal(f->sink.messages, 0);
}

static void test_client_reports_reply_after_dot(void **state)
{
    struct fixture *f = *state;
    write_body(f, "x\r\n");
    f->sink.s.dot = 452;
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_DEFERRED);
    assert_int_equal(f->res.dot_sent, 1);
    f->sink.s.dot = 554;
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_REJECTED);
    assert_int_equal(f->res.code, 554);
}

static void test_client_reports_data_refusal(void **state)
{
    struct fixture *f = *state;
    write_body(f, "x\r\n");
    f->sink.s.data = 554;
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_REJECTED);
    assert_int_equal(f->res.dot_sent, 0);
}

static void test_client_times_out_waiting_for_greeting(void **state)
{
    struct fixture *f = *state;
    f->sink.s.greeting = 0;
    f->cfg.timeout_greeting_ms = 150;
    connect_to(f, f->sink.port);
    assert_int_equal(f->ready_ok, 0);
    assert_int_equal(smtp_client_failure(f->c), SMTP_CLIENT_TIMEOUT);
    assert_non_null(strstr(smtp_client_error(f->c), "greeting"));
}

static void test_client_reports_refused_connection(void **state)
{
    struct fixture *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t sl = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);                       /* nobody listens on that port now */
    connect_to(f, ntohs(sin.sin_port));
    assert_int_equal(f->ready_ok, 0);
    assert_int_equal(smtp_client_failure(f->c), SMTP_CLIENT_CONNECT);
}

static void test_client_refuses_554_greeting(void **state)
{
    struct fixture *f = *state;
    f->sink.s.greeting = 554;
    connect_to(f, f->sink.port);
    assert_int_equal(f->ready_ok, 0);
    assert_int_equal(smtp_client_failure(f->c), SMTP_CLIENT_REFUSED);
    assert_non_null(strstr(smtp_client_error(f->c), "554"));
}

static void test_client_reports_connection_lost_after_dot(void **state)
{
    struct fixture *f = *state;
    f->sink.s.close_at_dot = 1;
    write_body(f, "x\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_CONN_LOST);
    assert_int_equal(f->res.dot_sent, 1);
    assert_false(smtp_client_usable(f->c));
}

static void test_client_times_out_waiting_after_dot(void **state)
{
    struct fixture *f = *state;
    f->sink.s.dot = 0;
    f->cfg.timeout_dot_ms = 150;
    write_body(f, "x\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_CONN_LOST);
    assert_int_equal(f->res.dot_sent, 1);
    assert_int_equal(smtp_client_failure(f->c), SMTP_CLIENT_TIMEOUT);
}

static void test_client_respects_advertised_size(void **state)
{
    struct fixture *f = *state;
    f->sink.s.size = 10;
    write_body(f, "this message is longer than ten octets\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_REJECTED);
    assert_int_equal(f->res.code, 552);
    assert_null(strstr(f->sink.commands.data, "MAIL FROM"));
    f->sink.s.size = 1000;
    send_msg(f, 1);                    /* the client still holds SIZE 10 from EHLO */
    assert_int_equal(f->res.outcome, SMTP_MSG_REJECTED);
    assert_true(smtp_client_usable(f->c));
}

static void test_client_declares_size_in_mail_from(void **state)
{
    struct fixture *f = *state;
    f->sink.s.size = 100000;
    write_body(f, "12345\r\n");
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_non_null(strstr(f->sink.commands.data, "MAIL FROM:<sender@origin.test> SIZE=7\n"));
}

static void test_client_upgrades_to_tls_when_offered(void **state)
{
    struct fixture *f = *state;
    f->sink.tls_ctx = sink_tls_context();
    f->sink.s.starttls = 1;
    f->cfg.starttls = 1;
    write_body(f, "secret\r\n");
    connect_sink(f);
    assert_true(smtp_client_tls_active(f->c));
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    assert_int_equal(f->sink.tls_sessions, 1);
    assert_non_null(strstr(f->sink.commands.data, "STARTTLS\nEHLO relay.example\nMAIL FROM"));
}

static void test_client_stays_plain_when_starttls_is_off(void **state)
{
    struct fixture *f = *state;
    f->sink.tls_ctx = sink_tls_context();
    f->sink.s.starttls = 1;
    f->cfg.starttls = 0;
    write_body(f, "x\r\n");
    connect_sink(f);
    assert_false(smtp_client_tls_active(f->c));
    assert_null(strstr(f->sink.commands.data, "STARTTLS"));
}

static void test_client_reports_failed_tls_handshake(void **state)
{
    struct fixture *f = *state;
    f->sink.s.starttls = 1;
    f->sink.s.tls_break = 1;
    f->cfg.starttls = 1;
    connect_to(f, f->sink.port);
    assert_int_equal(f->ready_ok, 0);
    assert_int_equal(smtp_client_failure(f->c), SMTP_CLIENT_TLS);
}

static void test_client_refuses_address_with_line_break(void **state)
{
    struct fixture *f = *state;
    write_body(f, "x\r\n");
    connect_sink(f);
    char *bad[] = { "a@node.test>\r\nRCPT TO:<b@node.test" };
    struct smtp_message m = { "s@origin.test", bad, 1, 3, f->body_fd };
    struct etrn_err err;
    f->sent_calls = 0;
    f->nrcpt_sent = 1;
    assert_int_equal(smtp_client_send(f->c, &m, on_sent, f, &err), 0);
    run_loop(f);
    assert_int_equal(f->sent_calls, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_REJECTED);
    assert_null(strstr(f->sink.commands.data, "RCPT"));
}

static void test_client_streams_large_message(void **state)
{
    struct fixture *f = *state;
    struct strbuf big;
    strbuf_init(&big, 1 << 22);
    for (int i = 0; i < 20000; i++)
        strbuf_appendf(&big, "%sline %d of a long message body\r\n", i % 7 == 0 ? "." : "", i);
    write_body(f, big.data);
    connect_sink(f);
    send_msg(f, 1);
    assert_int_equal(f->res.outcome, SMTP_MSG_SENT);
    /* every line arrived, the dotted ones doubled */
    assert_int_equal(f->sink.data.len, big.len + 20000 / 7 + 1 + strlen("<END>\n"));
    strbuf_free(&big);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_client_stuffs_dots_and_ends_lines_with_crlf),
        T(test_client_sends_empty_message_as_lone_dot),
        T(test_client_pipelines_mail_and_rcpts),
        T(test_client_without_pipelining_sends_one_command_at_a_time),
        T(test_client_falls_back_to_helo_when_ehlo_is_refused),
        T(test_client_reports_each_recipient_reply),
        T(test_client_sends_no_data_when_every_recipient_is_refused),
        T(test_client_reuses_connection_with_rset_after_failed_transaction),
        T(test_client_reports_mail_4xx_as_deferred_and_5xx_as_rejected),
        T(test_client_reports_reply_after_dot),
        T(test_client_reports_data_refusal),
        T(test_client_times_out_waiting_for_greeting),
        T(test_client_reports_refused_connection),
        T(test_client_refuses_554_greeting),
        T(test_client_reports_connection_lost_after_dot),
        T(test_client_times_out_waiting_after_dot),
        T(test_client_respects_advertised_size),
        T(test_client_declares_size_in_mail_from),
        T(test_client_upgrades_to_tls_when_offered),
        T(test_client_stays_plain_when_starttls_is_off),
        T(test_client_reports_failed_tls_handshake),
        T(test_client_refuses_address_with_line_break),
        T(test_client_streams_large_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
