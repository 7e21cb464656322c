/* test_smtpd.c — etrnd's ESMTP server over real loopback sockets (server/smtpd.c).
 *
 *   build/tests/test_smtpd        (runs `openssl req` once for a throw-away certificate)
 *
 * Each test starts smtpd on 127.0.0.1:0 with a spool in a fresh temp dir and a queue
 * runner (flush_init), wired as server/main.c does, and talks to it as a client. Server
 * and client share one thread: the client's waits pump the server's event loop
 * (EVLOOP_NONBLOCK) between non-blocking reads, so the spool can be inspected directly
 * between two replies. Every wait is bounded in iterations; nothing asserts on time.
 * The TLS client side is OpenSSL on the same non-blocking socket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "etrnd_config.h"
#include "flush.h"
#include "log.h"
#include "smtpd.h"
#include "spool.h"
#include "strbuf.h"

#define PUMP_LIMIT 4000          /* iterations of a wait, each at most 2 ms of poll */
#define CLIENT_BUF (256 * 1024)

static char cert_dir[64], cert_file[128], key_file[128], pw_file[128];

/* --- the server under test ------------------------------------------------------------------ */

struct srv {
    char dir[64];
    char conf[128];
    char spooldir[128];
    struct etrnd_config *cfg;
    struct spool *sp;
    struct event_base *base;
    struct flush *fl;
    struct smtpd *s;
    int port;
};

static void srv_start(struct srv *sv, const char *extra)
{
    memset(sv, 0, sizeof *sv);
    str_copy(sv->dir, sizeof sv->dir, "/tmp/test_smtpd.XXXXXX");
    assert_non_null(mkdtemp(sv->dir));
    assert_true(str_format(sv->conf, sizeof sv->conf, "%s/etrnd.conf", sv->dir) >= 0);
    assert_true(str_format(sv->spooldir, sizeof sv->spooldir, "%s/spool", sv->dir) >= 0);
    FILE *f = fopen(sv->conf, "w");
    assert_non_null(f);
    fprintf(f, "listen = 127.0.0.1:0\n"
               "myhostname = relay.example\n"
               "spool = %s\n"
               "etrn_domains = node.test\n"
               "route.node.test = 127.0.0.1:9\n"   /* a closed port: deliveries fail softly */
               "smtp_connect_timeout = 1s\n"
               "%s\n", sv->spooldir, extra ? extra : "");
    assert_int_equal(fclose(f), 0);
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&sv->cfg, sv->conf, &err) < 0)
        fail_msg("%s", err.msg);
    sv->base = event_base_new();
    assert_non_null(sv->base);
    if (spool_open(&sv->sp, sv->cfg->spool, &err) < 0)
        fail_msg("%s", err.msg);
    if (flush_init(&sv->fl, sv->base, sv->sp, sv->cfg, &err) < 0)
        fail_msg("%s", err.msg);
    if (smtpd_new(&sv->s, sv->base, sv->cfg, sv->sp, sv->fl, &err) < 0)
        fail_msg("%s", err.msg);
    if (smtpd_listen(sv->s, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(smtpd_listener_count(sv->s), 1);
    sv->port = smtpd_listener_port(sv->s, 0);
    assert_true(sv->port > 0);
}

static void srv_stop(struct srv *sv)
{
    smtpd_free(sv->s);
    flush_free(sv->fl);
    spool_close(sv->sp);
    event_base_free(sv->base);
    etrnd_config_free(sv->cfg);
    char cmd[128];
    assert_true(str_format(cmd, sizeof cmd, "rm -rf '%s'", sv->dir) >= 0);
    assert_int_equal(system(cmd), 0);
}

/* --- the client ------------------------------------------------------------------------------- */

struct client {
    struct srv *sv;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[CLIENT_BUF];
    size_t len;
    int eof;
};

/* Reads what is there without waiting; sets eof when the server closed. */
static void client_fill(struct client *c)
{
    while (!c->eof && c->len < sizeof c->buf - 1) {
        ssize_t n;
        if (c->ssl) {
            int r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - 1 - c->len));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return;
                c->eof = 1;
                return;
            }
            n = r;
        } else {
            n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
            if (n <= 0) {
                c->eof = 1;
                return;
            }
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
}

/* One round: the server's ready callbacks, then the client's input, then a short wait. */
static void pump(struct srv *sv, struct client *c)
{
    event_base_loop(sv->base, EVLOOP_NONBLOCK);
    if (c != NULL && c->fd >= 0) {
        client_fill(c);
        struct pollfd p = { c->fd, POLLIN, 0 };
        poll(&p, 1, 2);
    } else {
        struct pollfd p = { -1, 0, 0 };
        poll(&p, 0, 2);
    }
    event_base_loop(sv->base, EVLOOP_NONBLOCK);
}

/* Connects from source (a loopback address such as "127.0.0.5"; NULL: the kernel's choice). */
static void client_connect_from(struct client *c, struct srv *sv, const char *source)
{
    memset(c, 0, sizeof *c);
    c->sv = sv;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    if (source != NULL) {
        struct sockaddr_in b;
        memset(&b, 0, sizeof b);
        b.sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, source, &b.sin_addr), 1);
        assert_int_equal(bind(c->fd, (struct sockaddr *)&b, sizeof b), 0);
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)sv->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* the kernel completes the connection from the backlog; the loop accepts it later */
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    int fl = fcntl(c->fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(c->fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static void client_connect(struct client *c, struct srv *sv)
{
    client_connect_from(c, sv, NULL);
}

static void client_close(struct client *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    c->ssl = NULL;
    c->ctx = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void client_send_n(struct client *c, const char *data, size_t n)
{
    size_t off = 0;
    for (int i = 0; off < n && i < PUMP_LIMIT * 4; i++) {
        if (c->ssl) {
            int r = SSL_write(c->ssl, data + off, (int)(n - off));
            if (r > 0) {
                off += (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                fail_msg("SSL_write failed (%d)", e);
        } else {
            ssize_t r = send(c->fd, data + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r > 0) {
                off += (size_t)r;
                continue;
            }
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                fail_msg("send: %s", strerror(errno));
        }
        pump(c->sv, c);   /* the server reads, so the socket drains */
    }
    assert_int_equal(off, n);
}

static void client_send(struct client *c, const char *text)
{
    client_send_n(c, text, strlen(text));
}

/* Length of the first complete reply in buf (through the CRLF of its last line), or 0. */
static size_t reply_length(const char *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL)
            return 0;
        size_t linelen = (size_t)(nl - (buf + pos)) + 1;
        int last = linelen < 5 || buf[pos + 3] != '-';
        pos += linelen;
        if (last)
            return pos;
    }
    return 0;
}

/* Waits for one reply; returns its code (or -1 if the connection ended first) and copies
 * the whole reply text into text. */
static int client_reply(struct client *c, char *text, size_t cap)
{
    for (int i = 0; i < PUMP_LIMIT; i++) {
        size_t n = reply_length(c->buf, c->len);
        if (n > 0) {
            int code = atoi(c->buf);
            if (text != NULL) {
                size_t k = n < cap - 1 ? n : cap - 1;
                memcpy(text, c->buf, k);
                text[k] = '\0';
            }
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            c->buf[c->len] = '\0';
            return code;
        }
        if (c->eof)
            break;
        pump(c->sv, c);
    }
    if (text != NULL && cap > 0)
        text[0] = '\0';
    return -1;
}

/* Asserts the next reply starts with want (e.g. "250 2.1.5"). */
static void expect(struct client *c, const char *want)
{
    char text[4096];
    int code = client_reply(c, text, sizeof text);
    if (code < 0 || strncmp(text, want, strlen(want)) != 0)
        fail_msg("want '%s', got %d '%s'", want, code, text);
}

/* Waits until the server has closed the connection. */
static void expect_closed(struct client *c)
{
    for (int i = 0; i < PUMP_LIMIT && !c->eof; i++)
        pump(c->sv, c);
    assert_int_equal(c->eof, 1);
    assert_int_equal(c->len, 0);   /* and nothing came after the last reply read */
}

/* A few rounds with nothing expected: asserts no reply arrived. */
static void expect_silence(struct client *c)
{
    for (int i = 0; i < 50; i++)
        pump(c->sv, c);
    if (c->len != 0)
        fail_msg("unexpected output: '%s'", c->buf);
    assert_int_equal(c->eof, 0);
}

static void client_starttls(struct client *c)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    c->ssl = SSL_new(c->ctx);
    assert_non_null(c->ssl);
    assert_int_equal(SSL_set_fd(c->ssl, c->fd), 1);
    int done = 0;
    for (int i = 0; i < PUMP_LIMIT && !done; i++) {
        int r = SSL_connect(c->ssl);
        if (r == 1) {
            done = 1;
            break;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            fail_msg("TLS handshake failed (%d)", e);
        event_base_loop(c->sv->base, EVLOOP_NONBLOCK);
        struct pollfd p = { c->fd, POLLIN, 0 };
        poll(&p, 1, 2);
    }
    assert_int_equal(done, 1);
}

static void session_open(struct client *c, struct srv *sv)
{
    client_connect(c, sv);
    expect(c, "220 relay.example ESMTP");
}

static void wait_sessions(struct srv *sv, size_t n)
{
    for (int i = 0; i < PUMP_LIMIT && smtpd_session_count(sv->s) != n; i++)
        pump(sv, NULL);
    assert_int_equal(smtpd_session_count(sv->s), n);
}

/* The stored text of the only entry for domain. */
static void read_only_body(struct srv *sv, const char *domain, struct strbuf *out,
                           struct spool_entry **entry)
{
    char **ids = NULL;
    size_t n = 0;
    struct etrn_err err = {{0}};
    assert_int_equal(spool_collect(sv->sp, domain, 0, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    int fd = -1;
    if (spool_body_open(sv->sp, ids[0], &fd, &err) < 0)
        fail_msg("%s", err.msg);
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        assert_int_equal(strbuf_append(out, buf, (size_t)r), 0);
    assert_int_equal(r, 0);
    close(fd);
    if (entry != NULL && spool_entry_get(sv->sp, ids[0], entry, &err) < 0)
        fail_msg("%s", err.msg);
    spool_ids_free(ids, n);
}

/* --- tests: the greeting and EHLO ----------------------------------------------------------------- */

static void test_smtpd_greets_with_220_and_hostname(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    client_connect(&c, &sv);
    char text[512];
    assert_int_equal(client_reply(&c, text, sizeof text), 220);
    assert_string_equal(text, "220 relay.example ESMTP etrnd\r\n");
    client_send(&c, "QUIT\r\n");
    expect(&c, "221 2.0.0");
    expect_closed(&c);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static int ehlo_has(const char *reply, const char *kw)
{
    char pat[64];
    assert_true(str_format(pat, sizeof pat, "250-%s\r\n", kw) >= 0);
    char pat2[64];
    assert_true(str_format(pat2, sizeof pat2, "250 %s\r\n", kw) >= 0);
    return strstr(reply, pat) != NULL || strstr(reply, pat2) != NULL;
}

static void test_smtpd_ehlo_advertises_extensions(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "message_size_limit = 2M");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\n");
    char text[2048];
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_true(strncmp(text, "250-relay.example\r\n", 19) == 0);
    assert_true(ehlo_has(text, "PIPELINING"));
    assert_true(ehlo_has(text, "SIZE 2097152"));
    assert_true(ehlo_has(text, "8BITMIME"));
    assert_true(ehlo_has(text, "ENHANCEDSTATUSCODES"));
    assert_true(ehlo_has(text, "ETRN"));
    assert_false(ehlo_has(text, "STARTTLS"));      /* no certificate configured */
    assert_null(strstr(text, "AUTH"));
    /* HELO gets one line */
    client_send(&c, "HELO client.example\r\n");
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_string_equal(text, "250 relay.example\r\n");
    client_send(&c, "STARTTLS\r\n");
    expect(&c, "502 5.5.1");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_ehlo_without_etrn_when_disabled(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "etrn = no");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nETRN node.test\r\n");
    char text[2048];
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_false(ehlo_has(text, "ETRN"));
    expect(&c, "502 5.5.1");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

/* --- pipelining and the transaction ---------------------------------------------------------------- */

static void test_smtpd_pipelined_batch_gets_replies_in_order(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\n"
                    "MAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\n"
                    "RCPT TO:<u@elsewhere.example>\r\n"
                    "ETRN node.test\r\n"
                    "RSET\r\n"
                    "ETRN @node.test\r\n"
                    "NOOP\r\n"
                    "VRFY u\r\n"
                    "TURN\r\n"
                    "QUIT\r\n");
    expect(&c, "250-relay.example");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "554 5.7.1 <u@elsewhere.example>: Relay access denied");
    expect(&c, "503 5.5.1");
    expect(&c, "250 2.0.0 Reset");
    expect(&c, "251 2.0.0 OK, no messages waiting for node @node.test");
    expect(&c, "250 2.0.0 OK");
    expect(&c, "252 2.5.0");
    expect(&c, "502 5.5.1");
    expect(&c, "221 2.0.0");
    expect_closed(&c);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_refuses_relay_to_foreign_domain(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    client_send(&c, "RCPT TO:<u@elsewhere.example>\r\n");
    expect(&c, "554 5.7.1");
    client_send(&c, "RCPT TO:<u@[192.0.2.1]>\r\n");
    expect(&c, "554 5.7.1");
    /* a held domain's subdomain is accepted */
    client_send(&c, "RCPT TO:<u@sub.NODE.test>\r\n");
    expect(&c, "250 2.1.5");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_etrn_inside_transaction_is_503(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<>\r\nETRN node.test\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "503 5.5.1 ETRN is not allowed inside a mail transaction");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_data_is_unstuffed_and_stored_exactly(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nRCPT TO:<v@Node.Test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    client_send(&c, "Subject: dots\r\n"
                    "\r\n"
                    "..one dot\r\n"
                    "...two dots\r\n"
                    ". \r\n"
                    "..\r\n"
                    "8bit: \xc3\xa9t\xc3\xa9\r\n"
                    "last line\r\n"
                    ".\r\n");
    expect(&c, "250 2.0.0 Ok: queued as ");

    struct strbuf body;
    strbuf_init(&body, 1 << 20);
    struct spool_entry *e = NULL;
    read_only_body(&sv, "node.test", &body, &e);
    static const char want[] = "Subject: dots\r\n"
                               "\r\n"
                               ".one dot\r\n"
                               "..two dots\r\n"
                               " \r\n"
                               ".\r\n"
                               "8bit: \xc3\xa9t\xc3\xa9\r\n"
                               "last line\r\n";
    /* our trace header first, then the text exactly as sent, unstuffed */
    assert_true(strncmp(body.data, "Received: from client.example ([127.0.0.1])", 43) == 0);
    const char *subj = strstr(body.data, "Subject: dots");
    assert_non_null(subj);
    assert_string_equal(subj, want);
    assert_string_equal(e->sender, "a@sender.example");
    assert_int_equal(e->nrcpt, 2);
    assert_string_equal(e->rcpts[0], "u@node.test");
    assert_string_equal(e->rcpts[1], "v@Node.Test");
    assert_string_equal(e->domain, "node.test");
    spool_entry_free(e);
    strbuf_free(&body);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_250_only_after_commit(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    client_send(&c, "Subject: t\r\n\r\nbody\r\n");
    expect_silence(&c);
    assert_int_equal(spool_count(sv.sp, "node.test", 0), 0);
    assert_int_equal(spool_total(sv.sp), 0);
    client_send(&c, ".\r\n");
    expect(&c, "250 2.0.0");
    assert_int_equal(spool_count(sv.sp, "node.test", 0), 1);
    /* and the next transaction in the same session works */
    client_send(&c, "MAIL FROM:<b@sender.example>\r\nRCPT TO:<w@node.test>\r\nDATA\r\n");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    client_send(&c, "second\r\n.\r\n");
    expect(&c, "250 2.0.0");
    assert_int_equal(spool_count(sv.sp, "node.test", 0), 2);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_disconnect_mid_data_leaves_nothing(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    client_send(&c, "Subject: cut\r\n\r\nhalf a message\r\n.");   /* not the end: no CRLF */
    expect_silence(&c);
    client_close(&c);
    wait_sessions(&sv, 0);
    assert_int_equal(spool_total(sv.sp), 0);
    /* a fresh look at the disk agrees: nothing half-written survives */
    struct spool *ro = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(spool_open_readonly(&ro, sv.spooldir, &err), 0);
    assert_int_equal(spool_total(ro), 0);
    spool_close(ro);
    srv_stop(&sv);
}

static void test_smtpd_etrn_reports_count_and_refuses_unheld(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nETRN node.test\r\nETRN nowhere.test\r\nETRN\r\n"
                    "ETRN a_b.test\r\nETRN @test\r\n");
    expect(&c, "250-");
    expect(&c, "251 2.0.0");
    expect(&c, "459 4.7.1");
    expect(&c, "500 5.5.2");
    expect(&c, "501 5.5.4");
    expect(&c, "459 4.7.1 Node @test not allowed: too broad");
    client_send(&c, "MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    client_send(&c, "x\r\n.\r\n");
    expect(&c, "250 2.0.0");
    client_send(&c, "ETRN Node.Test\r\n");
    expect(&c, "253 2.0.0 OK, 1 pending messages for node node.test started");
    client_send(&c, "QUIT\r\n");
    expect(&c, "221 2.0.0");
    expect_closed(&c);
    client_close(&c);
    wait_sessions(&sv, 0);
    /* the delivery to the closed port fails softly: the message stays */
    for (int i = 0; i < PUMP_LIMIT && flush_active(sv.fl) > 0; i++)
        pump(&sv, NULL);
    assert_int_equal(spool_count(sv.sp, "node.test", 0), 1);
    srv_stop(&sv);
}

static void test_smtpd_commands_out_of_order_get_503(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "MAIL FROM:<a@sender.example>\r\n"
                    "EHLO client.example\r\n"
                    "RCPT TO:<u@node.test>\r\n"
                    "DATA\r\n"
                    "MAIL FROM:<a@sender.example>\r\n"
                    "MAIL FROM:<a@sender.example>\r\n"
                    "DATA\r\n"
                    "HELP\r\n"
                    "EXPN list\r\n");
    expect(&c, "503 5.5.1");            /* MAIL before EHLO */
    expect(&c, "250-relay.example");
    expect(&c, "503 5.5.1");            /* RCPT before MAIL */
    expect(&c, "503 5.5.1");            /* DATA before MAIL */
    expect(&c, "250 2.1.0");
    expect(&c, "503 5.5.1");            /* nested MAIL */
    expect(&c, "554 5.5.1");            /* DATA without a recipient */
    expect(&c, "214 2.0.0");
    expect(&c, "502 5.5.1");
    assert_int_equal(spool_total(sv.sp), 0);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_max_recipients_gets_452(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "max_recipients = 2");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<a@node.test>\r\nRCPT TO:<b@node.test>\r\nRCPT TO:<c@node.test>\r\n"
                    "DATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "250 2.1.5");
    expect(&c, "452 4.5.3");
    expect(&c, "354 ");
    client_send(&c, "x\r\n.\r\n");
    expect(&c, "250 2.0.0");
    struct strbuf body;
    strbuf_init(&body, 1 << 20);
    struct spool_entry *e = NULL;
    read_only_body(&sv, "node.test", &body, &e);
    assert_int_equal(e->nrcpt, 2);   /* the refused recipient is not in the envelope */
    spool_entry_free(e);
    strbuf_free(&body);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_mail_loop_is_refused_554_5_4_6(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    for (int i = 0; i < 101; i++)
        client_send(&c, "Received: from a by b; Thu, 1 Jan 2026 00:00:00 +0000\r\n");
    client_send(&c, "\r\nbody\r\n.\r\n");
    expect(&c, "554 5.4.6");
    assert_int_equal(spool_total(sv.sp), 0);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

/* 30000 pipelined commands, read slowly through small socket buffers so that replies
 * pile up in the server past SMTPD_OUTPUT_MAX and it must pause and resume reading:
 * every reply arrives, in order, and nothing is lost. The session runs on a socketpair
 * handed to smtpd_session_start, so that the server's send buffer can be made small. */
static void test_smtpd_pipelined_flood_is_answered_in_order(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "smtpd_max_errors = 100000");
    struct client c;
    memset(&c, 0, sizeof c);
    c.sv = &sv;
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    int small = 4096;
    assert_int_equal(setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    c.fd = pair[1];
    int fl = fcntl(c.fd, F_GETFL);
    assert_int_equal(fcntl(c.fd, F_SETFL, fl | O_NONBLOCK), 0);
    struct sockaddr_in peer;
    memset(&peer, 0, sizeof peer);
    peer.sin_family = AF_INET;
    peer.sin_port = htons(40000);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(smtpd_session_start(sv.s, pair[0], (struct sockaddr *)&peer, sizeof peer), 0);
    expect(&c, "220 ");

    enum { COMMANDS = 30000 };
    struct strbuf out;
    strbuf_init(&out, STRBUF_UNLIMITED);
    for (int i = 0; i < COMMANDS; i++)
        assert_int_equal(strbuf_append_str(&out, i % 7 == 6 ? "RSET\r\n" : "NOOP\r\n"), 0);
    size_t off = 0;
    int answered = 0, wrong = 0;
    for (int round = 0; round < PUMP_LIMIT * 50 && answered < COMMANDS; round++) {
        if (off < out.len) {
            ssize_t r = send(c.fd, out.data + off, out.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r > 0)
                off += (size_t)r;
        }
        event_base_loop(sv.base, EVLOOP_NONBLOCK);
        /* read a little at a time: the client is slow */
        char chunk[2048];
        ssize_t n = recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            assert_true(c.len + (size_t)n < sizeof c.buf);
            memcpy(c.buf + c.len, chunk, (size_t)n);
            c.len += (size_t)n;
            c.buf[c.len] = '\0';
        } else if (n == 0) {
            break;
        }
        size_t len;
        while ((len = reply_length(c.buf, c.len)) > 0) {
            const char *want = answered % 7 == 6 ? "250 2.0.0 Reset OK\r\n" : "250 2.0.0 OK\r\n";
            if (len != strlen(want) || memcmp(c.buf, want, len) != 0)
                wrong++;
            answered++;
            memmove(c.buf, c.buf + len, c.len - len);
            c.len -= len;
        }
        if (n <= 0 && off >= out.len) {
            struct pollfd p = { c.fd, POLLIN, 0 };
            poll(&p, 1, 1);
        }
    }
    assert_int_equal(off, out.len);
    assert_int_equal(answered, COMMANDS);
    assert_int_equal(wrong, 0);
    assert_int_equal(smtpd_session_count(sv.s), 1);   /* still up */
    strbuf_free(&out);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_etrn_policy_applies_in_session(void **state)
{
    (void)state;
    struct srv sv;
    /* other.test is held through its route */
    srv_start(&sv, "route.other.test = 127.0.0.1:9\n"
                   "etrn_allow = node.test : 127.0.0.1\n"
                   "etrn_rate_limit = 3\netrn_rate_window = 1h\netrn_require_helo = yes");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "ETRN node.test\r\n"
                    "EHLO client.example\r\n"
                    "ETRN other.test\r\n"
                    "ETRN node.test\r\n"
                    "ETRN node.test\r\n"
                    "ETRN node.test\r\n");
    expect(&c, "503 5.5.1 Send HELO or EHLO first");
    expect(&c, "250-");
    expect(&c, "459 4.7.1 Node other.test not allowed: not permitted for this client");
    expect(&c, "251 2.0.0");
    expect(&c, "251 2.0.0");
    expect(&c, "458 4.7.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

/* --- bad input ---------------------------------------------------------------------------------------- */

static void test_smtpd_refuses_bare_lf_command(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "NOOP\n");
    expect(&c, "500 5.5.2 Bare LF");
    client_send(&c, "NOOP\r\n");
    expect(&c, "250 2.0.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_refuses_nul_in_command(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    static const char line[] = "ETRN node\0.test\r\nNOOP\r\n";
    client_send_n(&c, line, sizeof line - 1);
    expect(&c, "500 5.5.2");
    expect(&c, "250 2.0.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_refuses_bare_lf_in_data_and_stores_nothing(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    /* "\n.\n" must not end the message (no SMTP smuggling) */
    client_send(&c, "Subject: lf\r\n\r\nbare\n.\nMAIL FROM:<evil@x.example>\r\n.\r\n");
    expect(&c, "554 5.6.0");
    expect_silence(&c);   /* the smuggled MAIL was message text, not a command */
    assert_int_equal(spool_total(sv.sp), 0);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_over_long_command_line_is_500_5_5_6(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    char line[700];
    memcpy(line, "ETRN ", 5);
    memset(line + 5, 'a', 600);
    memcpy(line + 605, "\r\n", 3);
    client_send(&c, line);
    expect(&c, "500 5.5.6");
    client_send(&c, "NOOP\r\n");
    expect(&c, "250 2.0.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_over_long_data_line_refuses_message(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    char line[1200];
    memset(line, 'b', 1100);
    memcpy(line + 1100, "\r\n.\r\n", 6);
    client_send(&c, line);
    expect(&c, "500 5.5.6");
    assert_int_equal(spool_total(sv.sp), 0);
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_too_many_errors_gets_421_and_close(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "smtpd_max_errors = 3");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "BOGUS\r\nBOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\nNOOP\r\n");
    expect(&c, "500 5.5.2");
    expect(&c, "500 5.5.2");
    expect(&c, "500 5.5.2");
    expect(&c, "500 5.5.2");
    expect(&c, "421 4.7.0");
    expect_closed(&c);   /* the pipelined NOOPs are never answered */
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_size_limit_552_at_mail_and_at_end_of_data(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "message_size_limit = 2k");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example> SIZE=5000\r\n");
    char text[1024];
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_non_null(strstr(text, "SIZE 2048"));
    expect(&c, "552 5.3.4");
    client_send(&c, "MAIL FROM:<a@sender.example> SIZE=100\r\nRCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    char big[200];
    memset(big, 'c', 98);
    memcpy(big + 98, "\r\n", 3);
    for (int i = 0; i < 40; i++)   /* 4000 octets, twice the limit */
        client_send(&c, big);
    client_send(&c, ".\r\n");
    expect(&c, "552 5.3.4");
    assert_int_equal(spool_total(sv.sp), 0);
    client_send(&c, "NOOP\r\n");
    expect(&c, "250 2.0.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

/* max_sessions_per_client: one address gets that many sessions, the next is refused with
 * 421 4.7.0 while other addresses are still served; mynetworks is exempt. */
static void test_smtpd_per_client_limit_refuses_only_that_client(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "max_sessions_per_client = 2\nmynetworks = 127.0.0.1/32");
    struct client a[2], extra, other, local[3];
    for (int i = 0; i < 2; i++) {
        client_connect_from(&a[i], &sv, "127.0.0.5");
        expect(&a[i], "220 relay.example ESMTP");
    }
    client_connect_from(&extra, &sv, "127.0.0.5");
    expect(&extra, "421 4.7.0 Too many connections from your address");
    expect_closed(&extra);
    client_close(&extra);
    client_connect_from(&other, &sv, "127.0.0.6");        /* another client is served */
    expect(&other, "220 relay.example ESMTP");
    for (int i = 0; i < 3; i++) {                         /* mynetworks: no limit */
        client_connect_from(&local[i], &sv, "127.0.0.1");
        expect(&local[i], "220 relay.example ESMTP");
    }
    client_send(&a[0], "NOOP\r\n");                        /* the admitted ones still work */
    expect(&a[0], "250 2.0.0");
    client_close(&a[0]);
    wait_sessions(&sv, 5);
    client_connect_from(&extra, &sv, "127.0.0.5");        /* a place is free again */
    expect(&extra, "220 relay.example ESMTP");
    client_close(&extra);
    client_close(&a[1]);
    client_close(&other);
    for (int i = 0; i < 3; i++)
        client_close(&local[i]);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_max_sessions_refuses_extra_connection_with_421(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "max_sessions = 2");
    struct client a, b, extra;
    session_open(&a, &sv);
    session_open(&b, &sv);
    client_connect(&extra, &sv);
    expect(&extra, "421 4.3.2");
    expect_closed(&extra);
    client_close(&extra);
    wait_sessions(&sv, 2);
    /* the first two still work */
    client_send(&a, "NOOP\r\n");
    expect(&a, "250 2.0.0");
    client_close(&a);
    wait_sessions(&sv, 1);
    /* a place is free again */
    struct client d;
    session_open(&d, &sv);
    client_close(&b);
    client_close(&d);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

/* --- STARTTLS and AUTH ------------------------------------------------------------------------------------ */

static void plain_response(const char *raw, size_t n, char *out, size_t cap)
{
    assert_true(cap >= 4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, (int)n);
}

static void test_smtpd_starttls_resets_and_discards_plaintext_pipelined_after_it(void **state)
{
    (void)state;
    char extra[512];
    assert_true(str_format(extra, sizeof extra, "tls_cert_file = %s\ntls_key_file = %s\n"
                           "auth_password_file = %s", cert_file, key_file, pw_file) >= 0);
    struct srv sv;
    srv_start(&sv, extra);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\n");
    char text[2048];
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_true(ehlo_has(text, "STARTTLS"));
    assert_null(strstr(text, "AUTH"));   /* not before TLS */
    char resp[128];
    plain_response("\0site1\0s3cret", 13, resp, sizeof resp);
    char cmd[256];
    assert_true(str_format(cmd, sizeof cmd, "AUTH PLAIN %s\r\n", resp) >= 0);
    client_send(&c, cmd);
    expect(&c, "503 5.5.1");

    /* a command injected after STARTTLS in the clear (CVE-2011-0411) */
    client_send(&c, "MAIL FROM:<a@sender.example>\r\nSTARTTLS\r\nRCPT TO:<u@node.test>\r\n");
    expect(&c, "250 2.1.0");
    expect(&c, "220 2.0.0");
    assert_int_equal(c.len, 0);
    client_starttls(&c);

    /* RFC 3207 §4.2: EHLO again, and nothing from before TLS is remembered */
    client_send(&c, "RCPT TO:<u@node.test>\r\n");
    expect(&c, "503 5.5.1");
    client_send(&c, "EHLO client.example\r\n");
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_false(ehlo_has(text, "STARTTLS"));
    assert_true(ehlo_has(text, "AUTH PLAIN LOGIN"));
    client_send(&c, "STARTTLS\r\n");
    expect(&c, "503 5.5.1");

    /* AUTH PLAIN over TLS: wrong, then right; then relaying is allowed */
    char bad[128];
    plain_response("\0site1\0wrong", 12, bad, sizeof bad);
    assert_true(str_format(cmd, sizeof cmd, "AUTH PLAIN %s\r\n", bad) >= 0);
    client_send(&c, cmd);
    expect(&c, "535 5.7.8");
    client_send(&c, "MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@elsewhere.example>\r\nRSET\r\n");
    expect(&c, "250 2.1.0");
    expect(&c, "554 5.7.1");
    expect(&c, "250 2.0.0");
    assert_true(str_format(cmd, sizeof cmd, "AUTH PLAIN %s\r\n", resp) >= 0);
    client_send(&c, cmd);
    expect(&c, "235 2.7.0");
    client_send(&c, cmd);
    expect(&c, "503 5.5.1");   /* already authenticated */
    client_send(&c, "MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@elsewhere.example>\r\n");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    /* (QUIT over TLS: see test_smtpd_quit_over_tls_gets_221) */
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_auth_login_after_tls(void **state)
{
    (void)state;
    char extra[512];
    assert_true(str_format(extra, sizeof extra, "tls_cert_file = %s\ntls_key_file = %s\n"
                           "auth_password_file = %s", cert_file, key_file, pw_file) >= 0);
    struct srv sv;
    srv_start(&sv, extra);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "STARTTLS\r\n");
    expect(&c, "220 2.0.0");
    client_starttls(&c);
    client_send(&c, "EHLO client.example\r\nAUTH LOGIN\r\n");
    expect(&c, "250-");
    expect(&c, "334 VXNlcm5hbWU6");
    client_send(&c, "c2l0ZTE=\r\n");   /* site1 */
    expect(&c, "334 UGFzc3dvcmQ6");
    client_send(&c, "czNjcmV0\r\n");   /* s3cret */
    expect(&c, "235 2.7.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

/* SIGTERM's path (server/main.c): stop accepting, then 421 to every session. */
static void test_smtpd_close_sessions_sends_421_and_discards_partial_message(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, NULL);
    struct client idle, busy;
    session_open(&idle, &sv);
    session_open(&busy, &sv);
    client_send(&busy, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                       "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&busy, "250-");
    expect(&busy, "250 2.1.0");
    expect(&busy, "250 2.1.5");
    expect(&busy, "354 ");
    client_send(&busy, "Subject: never finished\r\n\r\nhalf\r\n");
    expect_silence(&busy);
    smtpd_stop_accepting(sv.s);
    assert_int_equal(smtpd_listener_count(sv.s), 0);
    smtpd_close_sessions(sv.s);
    expect(&idle, "421 4.3.2");
    expect_closed(&idle);
    expect(&busy, "421 4.3.2");
    expect_closed(&busy);
    wait_sessions(&sv, 0);
    assert_int_equal(spool_total(sv.sp), 0);
    /* no new connections: the port is closed */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)sv.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), -1);
    close(fd);
    client_close(&idle);
    client_close(&busy);
    srv_stop(&sv);
}

/* SIGHUP's path: new settings reach running sessions; a TLS key that does not match is
 * refused and changes nothing. */
static void test_smtpd_reconfigure_applies_or_changes_nothing(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "message_size_limit = 2M");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\n");
    char text[2048];
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_true(ehlo_has(text, "SIZE 2097152"));

    /* a bad reload: the certificate is not a certificate */
    char path[160];
    assert_true(str_format(path, sizeof path, "%s/next.conf", sv.dir) >= 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "listen = 127.0.0.1:0\nspool = %s\netrn_domains = node.test\n"
               "message_size_limit = 3M\ntls_cert_file = %s\ntls_key_file = %s\n",
            sv.spooldir, pw_file, key_file);
    assert_int_equal(fclose(f), 0);
    struct etrnd_config *bad = NULL, *good = NULL;
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&bad, path, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(smtpd_reconfigure(sv.s, bad, &err), -1);
    assert_non_null(strstr(err.msg, pw_file));
    client_send(&c, "EHLO client.example\r\n");
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_true(ehlo_has(text, "SIZE 2097152"));
    assert_false(ehlo_has(text, "STARTTLS"));

    /* a good one */
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "listen = 127.0.0.1:0\nspool = %s\netrn_domains = node.test\n"
               "message_size_limit = 3M\ntls_cert_file = %s\ntls_key_file = %s\n",
            sv.spooldir, cert_file, key_file);
    assert_int_equal(fclose(f), 0);
    if (etrnd_config_load(&good, path, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(smtpd_reconfigure(sv.s, good, &err), 0);
    client_send(&c, "EHLO client.example\r\n");
    assert_int_equal(client_reply(&c, text, sizeof text), 250);
    assert_true(ehlo_has(text, "SIZE 3145728"));
    assert_true(ehlo_has(text, "STARTTLS"));
    client_close(&c);
    wait_sessions(&sv, 0);
    /* the server reads cfg until it is freed: give it back its own before swapping */
    assert_int_equal(smtpd_reconfigure(sv.s, sv.cfg, &err), 0);
    etrnd_config_free(bad);
    etrnd_config_free(good);
    srv_stop(&sv);
}

/* Regression (was bug smtpd-1): a session closing over TLS frees the TLS filter as soon as the filter's own
 * output is empty, but the encrypted bytes may still wait in the underlying bufferevent,
 * which is freed with them: the 221 to QUIT (and any reply pipelined with it, and 421s)
 * never reach a TLS client. */
static void test_smtpd_quit_over_tls_gets_221(void **state)
{
    (void)state;
    char extra[512];
    assert_true(str_format(extra, sizeof extra, "tls_cert_file = %s\ntls_key_file = %s",
                           cert_file, key_file) >= 0);
    struct srv sv;
    srv_start(&sv, extra);
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "STARTTLS\r\n");
    expect(&c, "220 2.0.0");
    client_starttls(&c);
    client_send(&c, "EHLO client.example\r\n");
    expect(&c, "250-");
    client_send(&c, "NOOP\r\nQUIT\r\n");
    expect(&c, "250 2.0.0");
    expect(&c, "221 2.0.0");
    client_close(&c);
    wait_sessions(&sv, 0);
    srv_stop(&sv);
}

static void test_smtpd_idle_client_gets_421_and_close(void **state)
{
    (void)state;
    struct srv sv;
    srv_start(&sv, "smtpd_timeout = 1s");
    struct client c;
    session_open(&c, &sv);
    client_send(&c, "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n"
                    "RCPT TO:<u@node.test>\r\nDATA\r\n");
    expect(&c, "250-");
    expect(&c, "250 2.1.0");
    expect(&c, "250 2.1.5");
    expect(&c, "354 ");
    client_send(&c, "a message that never ends\r\n");
    /* bounded wait (PUMP_LIMIT rounds of at least 2 ms) for the timeout to fire */
    expect(&c, "421 4.4.2");
    expect_closed(&c);
    client_close(&c);
    wait_sessions(&sv, 0);
    assert_int_equal(spool_total(sv.sp), 0);
    srv_stop(&sv);
}

/* --- set-up ------------------------------------------------------------------------------------------------ */

static int make_tls_files(void **state)
{
    (void)state;
    str_copy(cert_dir, sizeof cert_dir, "/tmp/test_smtpd_tls.XXXXXX");
    if (mkdtemp(cert_dir) == NULL)
        return -1;
    if (str_format(cert_file, sizeof cert_file, "%s/cert.pem", cert_dir) < 0 ||
        str_format(key_file, sizeof key_file, "%s/key.pem", cert_dir) < 0 ||
        str_format(pw_file, sizeof pw_file, "%s/passwords", cert_dir) < 0)
        return -1;
    char cmd[512];
    if (str_format(cmd, sizeof cmd,
                   "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=relay.example "
                   "-keyout %s -out %s >/dev/null 2>&1", key_file, cert_file) < 0)
        return -1;
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    FILE *f = fopen(pw_file, "w");
    if (f == NULL)
        return -1;
    fputs("site1:s3cret\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

static int remove_tls_files(void **state)
{
    (void)state;
    unlink(cert_file);
    unlink(key_file);
    unlink(pw_file);
    rmdir(cert_dir);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_open("test_smtpd", LOG_LEVEL_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtpd_greets_with_220_and_hostname),
        cmocka_unit_test(test_smtpd_ehlo_advertises_extensions),
        cmocka_unit_test(test_smtpd_ehlo_without_etrn_when_disabled),
        cmocka_unit_test(test_smtpd_pipelined_batch_gets_replies_in_order),
        cmocka_unit_test(test_smtpd_refuses_relay_to_foreign_domain),
        cmocka_unit_test(test_smtpd_etrn_inside_transaction_is_503),
        cmocka_unit_test(test_smtpd_data_is_unstuffed_and_stored_exactly),
        cmocka_unit_test(test_smtpd_250_only_after_commit),
        cmocka_unit_test(test_smtpd_disconnect_mid_data_leaves_nothing),
        cmocka_unit_test(test_smtpd_etrn_reports_count_and_refuses_unheld),
        cmocka_unit_test(test_smtpd_pipelined_flood_is_answered_in_order),
        cmocka_unit_test(test_smtpd_etrn_policy_applies_in_session),
        cmocka_unit_test(test_smtpd_commands_out_of_order_get_503),
        cmocka_unit_test(test_smtpd_max_recipients_gets_452),
        cmocka_unit_test(test_smtpd_mail_loop_is_refused_554_5_4_6),
        cmocka_unit_test(test_smtpd_refuses_bare_lf_command),
        cmocka_unit_test(test_smtpd_refuses_nul_in_command),
        cmocka_unit_test(test_smtpd_refuses_bare_lf_in_data_and_stores_nothing),
        cmocka_unit_test(test_smtpd_over_long_command_line_is_500_5_5_6),
        cmocka_unit_test(test_smtpd_over_long_data_line_refuses_message),
        cmocka_unit_test(test_smtpd_too_many_errors_gets_421_and_close),
        cmocka_unit_test(test_smtpd_size_limit_552_at_mail_and_at_end_of_data),
        cmocka_unit_test(test_smtpd_max_sessions_refuses_extra_connection_with_421),
        cmocka_unit_test(test_smtpd_per_client_limit_refuses_only_that_client),
        cmocka_unit_test(test_smtpd_starttls_resets_and_discards_plaintext_pipelined_after_it),
        cmocka_unit_test(test_smtpd_auth_login_after_tls),
        cmocka_unit_test(test_smtpd_idle_client_gets_421_and_close),
        cmocka_unit_test(test_smtpd_close_sessions_sends_421_and_discards_partial_message),
        cmocka_unit_test(test_smtpd_reconfigure_applies_or_changes_nothing),
        cmocka_unit_test(test_smtpd_quit_over_tls_gets_221),
    };
    return cmocka_run_group_tests(tests, make_tls_files, remove_tls_files);
}
