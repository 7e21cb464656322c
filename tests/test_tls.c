/* test_tls.c — etrnd's TLS server context and STARTTLS wrapper (server/tls.c).
 *
 *   build/tests/test_tls          (runs `openssl req` to make throw-away certificates)
 *
 * A context loads a certificate and key made in the test; a key that does not match, a
 * missing file and a file that is not PEM are refused with the file named; a wrapped
 * bufferevent completes a real TLS handshake (TLS 1.2 or later) with an OpenSSL client
 * over a socketpair and carries data both ways; a TLS 1.1-only client is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "strbuf.h"
#include "tls.h"

static char dir[64];
static char cert_a[128], key_a[128], cert_b[128], key_b[128], junk[128];

static int run_quiet(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    char buf[256];
    while (fgets(buf, sizeof buf, p) != NULL)
        ;
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int make_cert(const char *cert, const char *key, const char *cn)
{
    char cmd[512];
    if (str_format(cmd, sizeof cmd,
                   "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=%s "
                   "-keyout %s -out %s 2>&1", cn, key, cert) < 0)
        return -1;
    return run_quiet(cmd);
}

static int setup(void **state)
{
    (void)state;
    str_copy(dir, sizeof dir, "/tmp/test_tls.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    if (str_format(cert_a, sizeof cert_a, "%s/a.crt", dir) < 0 ||
        str_format(key_a, sizeof key_a, "%s/a.key", dir) < 0 ||
        str_format(cert_b, sizeof cert_b, "%s/b.crt", dir) < 0 ||
        str_format(key_b, sizeof key_b, "%s/b.key", dir) < 0 ||
        str_format(junk, sizeof junk, "%s/junk.pem", dir) < 0)
        return -1;
    if (make_cert(cert_a, key_a, "relay.example") < 0 || make_cert(cert_b, key_b, "other.example") < 0)
        return -1;
    FILE *f = fopen(junk, "w");
    if (f == NULL)
        return -1;
    fputs("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cert_a);
    unlink(key_a);
    unlink(cert_b);
    unlink(key_b);
    unlink(junk);
    rmdir(dir);
    return 0;
}

static void test_tls_context_loads_matching_cert_and_key(void **state)
{
    (void)state;
    struct tls_server *t = NULL;
    struct etrn_err err = {{0}};
    if (tls_server_new(&t, cert_a, key_a, &err) < 0)
        fail_msg("%s", err.msg);
    assert_non_null(t);
    tls_server_free(t);
    tls_server_free(NULL);
}

static void test_tls_context_refuses_mismatched_key(void **state)
{
    (void)state;
    struct tls_server *t = (struct tls_server *)1;
    struct etrn_err err = {{0}};
    assert_int_equal(tls_server_new(&t, cert_a, key_b, &err), -1);
    assert_null(t);
    assert_non_null(strstr(err.msg, key_b));
    /* OpenSSL names the mismatch either when loading the key or when checking it */
    assert_true(strstr(err.msg, "does not match") != NULL || strstr(err.msg, "private key") != NULL);
}

static void test_tls_context_refuses_missing_or_junk_files(void **state)
{
    (void)state;
    struct tls_server *t = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(tls_server_new(&t, "/nonexistent/cert.pem", key_a, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem: cannot load the certificate"));
    assert_int_equal(tls_server_new(&t, cert_a, "/nonexistent/key.pem", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/key.pem: cannot load the private key"));
    assert_int_equal(tls_server_new(&t, junk, key_a, &err), -1);
    assert_non_null(strstr(err.msg, junk));
    /* a key where the certificate should be */
    assert_int_equal(tls_server_new(&t, key_a, key_a, &err), -1);
    assert_null(t);
    /* no OpenSSL error is left behind for the next caller */
    assert_int_equal(ERR_peek_error(), 0);
}

/* --- a real handshake over a socketpair ----------------------------------------------------- */

struct handshake {
    struct event_base *base;
    struct bufferevent *server, *client;
    int server_connected, client_connected;
    int client_error;
    char server_got[64];
    char client_got[64];
};

static void server_read(struct bufferevent *bev, void *arg)
{
    struct handshake *h = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n >= sizeof h->server_got)
        n = sizeof h->server_got - 1;
    evbuffer_remove(in, h->server_got, n);
    h->server_got[n] = '\0';
    bufferevent_write(bev, "pong\r\n", 6);
}

static void server_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct handshake *h = arg;
    if (what & BEV_EVENT_CONNECTED)
        h->server_connected = 1;
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        event_base_loopexit(h->base, NULL);
}

static void client_read(struct bufferevent *bev, void *arg)
{
    struct handshake *h = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n >= sizeof h->client_got)
        n = sizeof h->client_got - 1;
    evbuffer_remove(in, h->client_got, n);
    h->client_got[n] = '\0';
    event_base_loopexit(h->base, NULL);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
    struct handshake *h = arg;
    if (what & BEV_EVENT_CONNECTED) {
        h->client_connected = 1;
        bufferevent_write(bev, "ping\r\n", 6);
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        h->client_error = 1;
        event_base_loopexit(h->base, NULL);
    }
}

/* Runs a handshake between a wrapped server and a client limited to max_version (0: any).
 * Fills h; returns the describe text in desc. */
static void run_handshake(struct handshake *h, int max_version, char *desc, size_t n)
{
    memset(h, 0, sizeof *h);
    struct tls_server *t = NULL;
    struct etrn_err err = {{0}};
    if (tls_server_new(&t, cert_a, key_a, &err) < 0)
        fail_msg("%s", err.msg);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
    assert_int_equal(evutil_make_socket_nonblocking(sv[1]), 0);
    h->base = event_base_new();
    assert_non_null(h->base);

    struct bufferevent *plain = bufferevent_socket_new(h->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(plain);
    h->server = tls_server_wrap(t, h->base, plain, &err);
    if (h->server == NULL)
        fail_msg("%s", err.msg);
    /* the session keeps its own reference: the context may go at once (reload) */
    tls_server_free(t);
    bufferevent_setcb(h->server, server_read, NULL, server_event, h);
    bufferevent_enable(h->server, EV_READ | EV_WRITE);

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cctx);
    if (max_version) {
        SSL_CTX_set_min_proto_version(cctx, 0);
        SSL_CTX_set_max_proto_version(cctx, max_version);
        SSL_CTX_set_security_level(cctx, 0);   /* let the client offer old versions at all */
    }
    SSL *cssl = SSL_new(cctx);
    assert_non_null(cssl);
    SSL_CTX_free(cctx);   /* cssl holds a reference */
    h->client = bufferevent_openssl_socket_new(h->base, sv[1], cssl, BUFFEREVENT_SSL_CONNECTING,
                                               BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(h->client);
    bufferevent_setcb(h->client, client_read, NULL, client_event, h);
    bufferevent_enable(h->client, EV_READ | EV_WRITE);

    struct timeval limit = { 10, 0 };   /* a bound, not a timing assertion */
    event_base_loopexit(h->base, &limit);
    event_base_dispatch(h->base);
    tls_describe(h->server, desc, n);

    char why[256];
    tls_last_error(h->server, why, sizeof why);   /* must not crash either way */
    bufferevent_free(h->client);
    bufferevent_free(h->server);
    event_base_free(h->base);
}

static void test_tls_wrap_completes_handshake_and_carries_data(void **state)
{
    (void)state;
    struct handshake h;
    char desc[128];
    run_handshake(&h, 0, desc, sizeof desc);
    assert_int_equal(h.client_connected, 1);
    assert_string_equal(h.server_got, "ping\r\n");
    assert_string_equal(h.client_got, "pong\r\n");
    assert_non_null(strstr(desc, "TLSv1."));
    assert_non_null(strstr(desc, " with "));
    assert_null(strstr(desc, "TLSv1.1"));
}

static void test_tls_wrap_refuses_clients_older_than_tls12(void **state)
{
    (void)state;
    struct handshake h;
    char desc[128];
    run_handshake(&h, TLS1_1_VERSION, desc, sizeof desc);
    /* whichever side notices first ends the loop: neither may have a session */
    assert_int_equal(h.client_connected, 0);
    assert_int_equal(h.server_connected, 0);
    assert_string_equal(h.server_got, "");
    assert_string_equal(desc, "");
}

static void test_tls_describe_is_empty_for_plain_bufferevent(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    assert_non_null(bev);
    char buf[64] = "stale";
    tls_describe(bev, buf, sizeof buf);
    assert_string_equal(buf, "");
    bufferevent_free(bev);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_context_loads_matching_cert_and_key),
        cmocka_unit_test(test_tls_context_refuses_mismatched_key),
        cmocka_unit_test(test_tls_context_refuses_missing_or_junk_files),
        cmocka_unit_test(test_tls_wrap_completes_handshake_and_carries_data),
        cmocka_unit_test(test_tls_wrap_refuses_clients_older_than_tls12),
        cmocka_unit_test(test_tls_describe_is_empty_for_plain_bufferevent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
