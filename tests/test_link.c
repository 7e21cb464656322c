/* test_link.c — links in front of a sink, observed by a connecting client on loopback:
 * refused, reset, blackholed, delayed, sliced and cut connections. No timing assertions:
 * where time matters, only "not before" is checked, which a slow machine cannot break. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "link.h"
#include "sink.h"
#include "sink_journal.h"
#include "strbuf.h"
#include "world.h"

struct fixture {
    struct event_base *base;
    struct sink_journal *journal;
    struct sink *sink;
    struct link *link;
    struct sockaddr_in pub;
    unsigned long ids;
};

static void hook(const struct sockaddr *via, const struct sockaddr *peer, unsigned long id,
                 void *arg)
{
    sink_note_peer(arg, via, peer, id);
}

static int free_port(const char *ip)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin.sin_addr);
    socklen_t len = sizeof sin;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0
        || getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    close(fd);
    return ntohs(sin.sin_port);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct etrn_err err = {{0}};
    f->base = event_base_new();
    if (f->base == NULL || sink_journal_open(&f->journal, NULL, &err) < 0)
        return -1;
    struct sockaddr_in internal;
    memset(&internal, 0, sizeof internal);
    internal.sin_family = AF_INET;
    internal.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sink_new(&f->sink, f->base, "sink1", (struct sockaddr *)&internal, sizeof internal,
                 f->journal, &err) < 0)
        return -1;
    sink_set_conn_counter(f->sink, &f->ids);
    socklen_t slen;
    const struct sockaddr *target = sink_address(f->sink, &slen);
    f->pub.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &f->pub.sin_addr);
    int port = free_port("127.0.0.2");
    if (port < 0)
        return -1;
    f->pub.sin_port = htons((uint16_t)port);
    if (link_new(&f->link, f->base, "sink1", (struct sockaddr *)&f->pub, sizeof f->pub, target,
                 slen, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    link_set_journal(f->link, f->journal);
    link_set_conn_counter(f->link, &f->ids);
    link_set_connect_hook(f->link, hook, f->sink);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    link_free(f->link);
    sink_free(f->sink);
    sink_journal_free(f->journal);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void set(struct fixture *f, const char *line)
{
    char buf[256];
    char *argv[16];
    int argc = 0;
    assert_true(str_copy(buf, sizeof buf, line) == 0);
    for (char *t = strtok(buf, " "); t != NULL && argc < 16; t = strtok(NULL, " "))
        argv[argc++] = t;
    struct etrn_err err = {{0}};
    int r = link_apply_words(f->link, argv, argc, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(r, 0);
}

/* --- the client -------------------------------------------------------------------------- */

struct client {
    struct sockaddr_in to;
    const char *script;        /* sent right after connecting (or after first data) */
    int wait_greeting;         /* send the script only after something arrived */
    unsigned first_read_ms;    /* timeout of the first recv */
    unsigned read_ms;          /* timeout of later recvs (the bound of the whole read) */
    int connect_errno;
    int first_read_errno;      /* errno of a first recv that got nothing, 0 if it got data */
    ssize_t first_read_len;
    struct strbuf got;
    int eof, reset;
};

static void set_timeout(int fd, unsigned ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int client_run(void *arg)
{
    struct client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&c->to, sizeof c->to) < 0) {
        c->connect_errno = errno;
        close(fd);
        return 0;
    }
    char buf[8192];
    if (c->script != NULL && !c->wait_greeting)
        send(fd, c->script, strlen(c->script), MSG_NOSIGNAL);
    set_timeout(fd, c->first_read_ms ? c->first_read_ms : 3000);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    c->first_read_len = n;
    if (n < 0)
        c->first_read_errno = errno;
    if (n > 0)
        strbuf_append(&c->got, buf, (size_t)n);
    if (n == 0)
        c->eof = 1;
    if (n < 0 && errno == ECONNRESET)
        c->reset = 1;
    if (n > 0 && c->script != NULL && c->wait_greeting)
        send(fd, c->script, strlen(c->script), MSG_NOSIGNAL);
    set_timeout(fd, c->read_ms ? c->read_ms : 3000);
    for (int i = 0; i < 100000 && !c->eof && !c->reset; i++) {
        n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            c->eof = 1;
        else if (n < 0 && errno == ECONNRESET)
            c->reset = 1;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->first_read_len < 0 && c->got.len == 0 && i == 0)
                continue;   /* the first recv only timed out: give the rest one more round */
            break;
        } else if (n > 0)
            strbuf_append(&c->got, buf, (size_t)n);
        else
            break;
    }
    close(fd);
    return 0;
}

static void run(struct fixture *f, struct client *c)
{
    strbuf_init(&c->got, 1 << 20);
    c->to = f->pub;
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, client_run, c, 30000, &err), 0);
}

static const char *session =
    "EHLO r.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@node.test>\r\nDATA\r\n"
    "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";

/* --- tests ------------------------------------------------------------------------------- */

static void test_link_up_passes_a_whole_session_and_names_the_real_client(void **state)
{
    struct fixture *f = *state;
    struct client c = {0};
    c.script = session;
    c.wait_greeting = 1;
    run(f, &c);
    assert_true(c.eof);
    assert_non_null(strstr(c.got.data, "220 sink1.sim"));
    assert_non_null(strstr(c.got.data, "250 2.0.0 Message accepted"));
    assert_non_null(strstr(c.got.data, "221 2.0.0 Bye"));
    assert_int_equal(sink_journal_count(f->journal), 2);
    const struct sink_journal_entry *conn = sink_journal_get(f->journal, 0);
    const struct sink_journal_entry *del = sink_journal_get(f->journal, 1);
    assert_int_equal(conn->kind, SINK_JOURNAL_CONNECT);
    assert_string_equal(conn->event, "accepted");
    assert_int_equal(del->kind, SINK_JOURNAL_DELIVERY);
    /* the sink names the client the link saw, and the same connection id */
    assert_string_equal(del->peer, conn->peer);
    assert_int_equal(del->conn_id, conn->conn_id);
    assert_int_equal(link_connection_count(f->link), 0);
    strbuf_free(&c.got);
}

static void test_link_down_refuses_with_econnrefused(void **state)
{
    struct fixture *f = *state;
    set(f, "down");
    struct client c = {0};
    run(f, &c);
    assert_int_equal(c.connect_errno, ECONNREFUSED);
    set(f, "up");
    struct client d = {0};
    d.script = "QUIT\r\n";
    d.wait_greeting = 1;
    run(f, &d);
    assert_int_equal(d.connect_errno, 0);
    assert_non_null(strstr(d.got.data, "221 "));
    strbuf_free(&c.got);
    strbuf_free(&d.got);
}

static void test_link_reject_accepts_then_resets(void **state)
{
    struct fixture *f = *state;
    set(f, "reject");
    struct client c = {0};
    run(f, &c);
    assert_int_equal(c.connect_errno, 0);
    assert_true(c.reset);
    assert_int_equal(c.got.len, 0);
    assert_string_equal(sink_journal_get(f->journal, 0)->event, "reset");
    strbuf_free(&c.got);
}

static void test_link_blackhole_accepts_and_stays_silent(void **state)
{
    struct fixture *f = *state;
    set(f, "blackhole");
    struct client c = {0};
    c.script = "EHLO r.test\r\n";
    c.first_read_ms = 300;
    c.read_ms = 100;
    run(f, &c);
    assert_int_equal(c.connect_errno, 0);
    assert_int_equal(c.got.len, 0);
    assert_false(c.eof);
    assert_false(c.reset);
    assert_string_equal(sink_journal_get(f->journal, 0)->event, "blackholed");
    assert_int_equal(sink_session_count(f->sink), 0);   /* the sink never heard of it */
    strbuf_free(&c.got);
}

static void test_link_latency_holds_the_greeting_back(void **state)
{
    struct fixture *f = *state;
    set(f, "latency 800ms");
    struct client c = {0};
    c.first_read_ms = 100;    /* far less than the latency: nothing can have arrived */
    c.read_ms = 5000;
    c.script = "QUIT\r\n";
    run(f, &c);
    assert_true(c.first_read_len < 0);
    assert_true(c.first_read_errno == EAGAIN || c.first_read_errno == EWOULDBLOCK);
    assert_non_null(strstr(c.got.data, "220 sink1.sim"));
    assert_non_null(strstr(c.got.data, "221 "));
    strbuf_free(&c.got);
}

static void test_link_slice_delivers_small_pieces(void **state)
{
    struct fixture *f = *state;
    set(f, "slice 5 slice-gap 100ms");
    struct client c = {0};
    c.read_ms = 3000;
    c.script = "QUIT\r\n";
    c.wait_greeting = 1;
    run(f, &c);
    assert_int_equal(c.first_read_len, 5);
    assert_true(strncmp(c.got.data, "220 sink1.sim ESMTP", 19) == 0);
    strbuf_free(&c.got);
}

static void test_link_reset_after_bytes_cuts_the_greeting(void **state)
{
    struct fixture *f = *state;
    set(f, "reset-after 10");
    struct client c = {0};
    run(f, &c);
    assert_true(c.reset || c.eof);
    assert_int_equal(c.got.len, 10);
    assert_memory_equal(c.got.data, "220 sink1.", 10);
    strbuf_free(&c.got);
}

static void test_link_stall_after_bytes_goes_silent_but_stays_open(void **state)
{
    struct fixture *f = *state;
    set(f, "stall-after 12");
    struct client c = {0};
    c.read_ms = 300;
    run(f, &c);
    assert_int_equal(c.got.len, 12);
    assert_false(c.eof);
    assert_false(c.reset);
    strbuf_free(&c.got);
}

static void test_link_bandwidth_still_delivers_everything(void **state)
{
    struct fixture *f = *state;
    set(f, "bandwidth 2k");
    struct client c = {0};
    c.script = session;
    c.wait_greeting = 1;
    run(f, &c);
    assert_non_null(strstr(c.got.data, "221 2.0.0 Bye"));
    assert_int_equal(sink_journal_count_deliveries(f->journal, "sink1"), 1);
    strbuf_free(&c.got);
}

static void test_link_clear_removes_shaping_keeps_state(void **state)
{
    struct fixture *f = *state;
    set(f, "latency 50ms jitter 5ms bandwidth 10k slice 3 reset-after 100 stall-after 9");
    const struct link_settings *s = link_get_settings(f->link);
    assert_int_equal(s->latency_ms, 50);
    assert_int_equal(s->jitter_ms, 5);
    assert_int_equal(s->bandwidth, 10240);
    assert_int_equal(s->slice_bytes, 3);
    assert_int_equal(s->slice_gap_ms, 10);
    set(f, "blackhole clear");
    assert_int_equal(s->latency_ms, 0);
    assert_int_equal(s->bandwidth, 0);
    assert_int_equal(s->state, LINK_BLACKHOLE);
}

static void test_link_bad_words_are_named_and_change_nothing(void **state)
{
    struct fixture *f = *state;
    struct etrn_err err = {{0}};
    char *bad[] = {"down", "lantency", "50ms"};
    assert_int_equal(link_apply_words(f->link, bad, 3, &err), -1);
    assert_string_equal(err.msg, "unknown link setting 'lantency'");
    assert_int_equal(link_get_settings(f->link)->state, LINK_UP);
    char *nounit[] = {"latency", "50"};
    assert_int_equal(link_apply_words(f->link, nounit, 2, &err), -1);
    assert_non_null(strstr(err.msg, "needs a unit"));
}

struct holder {
    struct sockaddr_in to;
    int fd;
    int result_errno;
    ssize_t n;
};

static int open_and_read_greeting(void *arg)
{
    struct holder *h = arg;
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&h->to, sizeof h->to) < 0)
        return -1;
    set_timeout(h->fd, 3000);
    char buf[512];
    h->n = recv(h->fd, buf, sizeof buf, 0);
    return h->n > 0 ? 0 : -1;
}

static int read_after_down(void *arg)
{
    struct holder *h = arg;
    char buf[512];
    h->n = recv(h->fd, buf, sizeof buf, 0);
    h->result_errno = h->n < 0 ? errno : 0;
    close(h->fd);
    return 0;
}

static void test_link_down_resets_open_connections(void **state)
{
    struct fixture *f = *state;
    struct holder h = {0};
    h.to = f->pub;
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, open_and_read_greeting, &h, 10000, &err), 0);
    assert_int_equal(link_connection_count(f->link), 1);
    set(f, "down");
    assert_int_equal(link_connection_count(f->link), 0);
    assert_int_equal(sim_run_beside(f->base, read_after_down, &h, 10000, &err), 0);
    assert_true(h.n == 0 || h.result_errno == ECONNRESET);
}

static void test_link_up_fails_cleanly_when_the_port_is_taken(void **state)
{
    struct fixture *f = *state;
    set(f, "down");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&f->pub, sizeof f->pub), 0);
    assert_int_equal(listen(fd, 1), 0);
    struct etrn_err err = {{0}};
    char *up[] = {"up"};
    assert_int_equal(link_apply_words(f->link, up, 1, &err), -1);
    assert_non_null(strstr(err.msg, "cannot listen on 127.0.0.2:"));
    assert_non_null(strstr(err.msg, "in use"));
    assert_int_equal(link_get_settings(f->link)->state, LINK_DOWN);
    close(fd);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_link_up_passes_a_whole_session_and_names_the_real_client),
        T(test_link_down_refuses_with_econnrefused),
        T(test_link_reject_accepts_then_resets),
        T(test_link_blackhole_accepts_and_stays_silent),
        T(test_link_latency_holds_the_greeting_back),
        T(test_link_slice_delivers_small_pieces),
        T(test_link_reset_after_bytes_cuts_the_greeting),
        T(test_link_stall_after_bytes_goes_silent_but_stays_open),
        T(test_link_bandwidth_still_delivers_everything),
        T(test_link_clear_removes_shaping_keeps_state),
        T(test_link_bad_words_are_named_and_change_nothing),
        T(test_link_down_resets_open_connections),
        T(test_link_up_fails_cleanly_when_the_port_is_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
