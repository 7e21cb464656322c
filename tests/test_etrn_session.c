/* test_etrn_session.c — the etrn client's session against a scripted relay on loopback.
 *
 * The relay is a real TCP listener on 127.0.0.1 (ephemeral port) on the same event base:
 * it answers each command line with the next scripted reply and records the commands, so
 * the tests check what the client sent (RFC 1985 §5.2, RFC 5321 §4.2). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "etrn_session.h"
#include "smtp_line.h"
#include "strbuf.h"

#define MAX_STEPS 16

struct fake_relay {
    const char *greeting;
    const char *replies[MAX_STEPS];   /* one per command line received, in order */
    size_t nreplies;
    size_t next;
    char commands[MAX_STEPS][128];
    size_t ncommands;
    struct smtp_line_reader rd;
};

struct session_result {
    int done;
    struct etrn_node_result results[4];
    size_t n;
    char error[256];
};

static void relay_read_cb(struct bufferevent *bev, void *arg)
{
    struct fake_relay *fr = arg;
    struct smtp_line line;
    while (smtp_line_read(&fr->rd, bufferevent_get_input(bev), &line) == SMTP_LINE_OK) {
        if (fr->ncommands < MAX_STEPS)
            str_copy(fr->commands[fr->ncommands++], sizeof fr->commands[0], line.buf);
        const char *reply = fr->next < fr->nreplies ? fr->replies[fr->next++] : "500 5.5.2 unexpected\r\n";
        evbuffer_add(bufferevent_get_output(bev), reply, strlen(reply));
        if (strncmp(line.buf, "QUIT", 4) == 0)
            bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
    }
}

static void relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void relay_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    struct fake_relay *fr = arg;
    (void)sa;
    (void)salen;
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, relay_read_cb, NULL, relay_event_cb, fr);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    evbuffer_add(bufferevent_get_output(bev), fr->greeting, strlen(fr->greeting));
}

static void session_done_cb(void *arg, const struct etrn_node_result *results, size_t n,
                            const char *session_error)
{
    struct session_result *sr = arg;
    sr->done = 1;
    sr->n = n;
    memcpy(sr->results, results, n * sizeof *results);
    if (session_error)
        str_copy(sr->error, sizeof sr->error, session_error);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs one client session against fr, asking for nodes; bounded to 10 s. */
static void run_against(struct fake_relay *fr, const char *const *nodes, size_t n, int force,
                        struct session_result *sr)
{
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    smtp_line_reader_init(&fr->rd, SMTP_COMMAND_LINE_MAX);
    struct evconnlistener *l = evconnlistener_new_bind(base, relay_accept_cb, fr,
                                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                                       16, (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(l);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    assert_int_equal(getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen), 0);

    struct etrn_session_opts o;
    memset(&o, 0, sizeof o);
    memcpy(&o.relay.ss, &bound, blen);
    o.relay.len = blen;
    o.helo_name = "site.example";
    o.timeout_ms = 5000;
    o.force = force;
    struct etrn_err err = {{0}};
    memset(sr, 0, sizeof *sr);
    assert_int_equal(etrn_session_start(base, &o, nodes, n, session_done_cb, sr, &err), 0);
    struct timeval limit = { 10, 0 };
    struct event *stop = evtimer_new(base, stop_cb, base);
    evtimer_add(stop, &limit);
    while (!sr->done && event_base_loop(base, EVLOOP_ONCE) == 0)
        ;
    /* Let the relay read the QUIT and the client free itself. */
    struct timeval settle = { 0, 100000 };
    event_base_loopexit(base, &settle);
    event_base_dispatch(base);
    event_free(stop);
    evconnlistener_free(l);
    event_base_free(base);
    assert_true(sr->done);
}

static const char *EHLO_WITH_ETRN = "250-relay.test\r\n250-PIPELINING\r\n250 ETRN\r\n";

static void test_session_sends_one_etrn_per_node_and_reads_codes(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "220 relay.test ESMTP\r\n",
                             .replies = { EHLO_WITH_ETRN,
                                          "253 2.0.0 OK, 14 pending messages for node a.test started\r\n",
                                          "251 2.0.0 OK, no messages waiting for node b.test\r\n",
                                          "221 2.0.0 Bye\r\n" },
                             .nreplies = 4 };
    const char *nodes[] = { "a.test", "b.test" };
    struct session_result sr;
    run_against(&fr, nodes, 2, 0, &sr);
    assert_string_equal(fr.commands[0], "EHLO site.example");
    assert_string_equal(fr.commands[1], "ETRN a.test");
    assert_string_equal(fr.commands[2], "ETRN b.test");
    assert_string_equal(fr.commands[3], "QUIT");
    assert_int_equal(sr.results[0].code, 253);
    assert_int_equal(sr.results[0].outcome, ETRN_STARTED);
    assert_int_equal(sr.results[1].code, 251);
    assert_int_equal(sr.results[1].outcome, ETRN_NOTHING_WAITING);
    assert_string_equal(sr.error, "");
}

static void test_session_stops_sending_etrn_after_500(void **state)
{
    (void)state;
    /* RFC 1985 §5.2.1: after 500/501, no further ETRN for the other aliases. */
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { EHLO_WITH_ETRN, "500 5.5.2 Syntax error\r\n",
                                          "221 2.0.0 Bye\r\n" },
                             .nreplies = 3 };
    const char *nodes[] = { "a.test", "b.test", "c.test" };
    struct session_result sr;
    run_against(&fr, nodes, 3, 0, &sr);
    assert_int_equal(fr.ncommands, 3); /* EHLO, one ETRN, QUIT */
    assert_string_equal(fr.commands[2], "QUIT");
    assert_int_equal(sr.results[0].outcome, ETRN_UNSUPPORTED);
    assert_false(sr.results[1].sent);
    assert_false(sr.results[2].sent);
}

static void test_session_459_is_refused_and_later_nodes_still_asked(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { EHLO_WITH_ETRN,
                                          "459 4.7.1 Node a.test not allowed: policy\r\n",
                                          "250 2.0.0 OK, queuing for node b.test started\r\n",
                                          "221 2.0.0 Bye\r\n" },
                             .nreplies = 4 };
    const char *nodes[] = { "a.test", "b.test" };
    struct session_result sr;
    run_against(&fr, nodes, 2, 0, &sr);
    assert_int_equal(sr.results[0].outcome, ETRN_REFUSED);
    assert_non_null(strstr(sr.results[0].text, "not allowed"));
    assert_int_equal(sr.results[1].outcome, ETRN_STARTED);
}

static void test_session_refuses_to_send_etrn_when_not_advertised(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { "250-relay.test\r\n250 PIPELINING\r\n", "221 Bye\r\n" },
                             .nreplies = 2 };
    const char *nodes[] = { "a.test" };
    struct session_result sr;
    run_against(&fr, nodes, 1, 0, &sr);
    for (size_t i = 0; i < fr.ncommands; i++)
        assert_null(strstr(fr.commands[i], "ETRN"));
    assert_int_equal(sr.results[0].outcome, ETRN_UNSUPPORTED);
    assert_non_null(strstr(sr.error, "does not advertise ETRN"));
    /* the session was in order: it ends with QUIT, not a dropped connection */
    assert_string_equal(fr.commands[fr.ncommands - 1], "QUIT");
}

static void test_session_ehlo_refused_quits_without_etrn(void **state)
{
    (void)state;
    /* RFC 1869 §4.2: a server without ESMTP refuses EHLO and so cannot offer ETRN. */
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { "500 5.5.1 Command unrecognized\r\n", "221 Bye\r\n" },
                             .nreplies = 2 };
    const char *nodes[] = { "a.test", "b.test" };
    struct session_result sr;
    run_against(&fr, nodes, 2, 0, &sr);
    assert_int_equal(fr.ncommands, 2);
    assert_string_equal(fr.commands[1], "QUIT");
    assert_int_equal(sr.results[0].outcome, ETRN_UNSUPPORTED);
    assert_int_equal(sr.results[1].outcome, ETRN_UNSUPPORTED);
    assert_false(sr.results[0].sent);
}

static void test_session_greeting_554_quits(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "554 5.3.2 no service here\r\n",
                             .replies = { "221 Bye\r\n" }, .nreplies = 1 };
    const char *nodes[] = { "a.test" };
    struct session_result sr;
    run_against(&fr, nodes, 1, 0, &sr);
    assert_int_equal(fr.ncommands, 1);
    assert_string_equal(fr.commands[0], "QUIT");
    assert_int_equal(sr.results[0].outcome, ETRN_CONNECTION);
}

static void test_session_tls_required_530_stops_further_etrn(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { "250-relay.test\r\n250-STARTTLS\r\n250 ETRN\r\n",
                                          "530 5.7.0 Must issue a STARTTLS command first\r\n",
                                          "221 Bye\r\n" },
                             .nreplies = 3 };
    const char *nodes[] = { "a.test", "b.test" };
    struct session_result sr;
    run_against(&fr, nodes, 2, 0, &sr);
    assert_int_equal(fr.ncommands, 3);
    assert_string_equal(fr.commands[1], "ETRN a.test");
    assert_string_equal(fr.commands[2], "QUIT");
    assert_int_equal(sr.results[0].outcome, ETRN_UNSUPPORTED);
    assert_false(sr.results[1].sent);
}

static void test_session_force_sends_etrn_without_keyword(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { "250 relay.test\r\n", "250 OK\r\n", "221 Bye\r\n" },
                             .nreplies = 3 };
    const char *nodes[] = { "a.test" };
    struct session_result sr;
    run_against(&fr, nodes, 1, 1, &sr);
    assert_string_equal(fr.commands[1], "ETRN a.test");
    assert_int_equal(sr.results[0].outcome, ETRN_STARTED);
}

static void test_session_unknown_2xx_code_read_by_first_digit(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { EHLO_WITH_ETRN, "254 hi\r\n", "221 Bye\r\n" },
                             .nreplies = 3 };
    const char *nodes[] = { "a.test" };
    struct session_result sr;
    run_against(&fr, nodes, 1, 0, &sr);
    assert_int_equal(sr.results[0].code, 254);
    assert_int_equal(sr.results[0].outcome, ETRN_STARTED);
}

static void test_session_greeting_421_is_a_connection_problem(void **state)
{
    (void)state;
    struct fake_relay fr = { .greeting = "421 4.3.2 busy\r\n", .nreplies = 0 };
    const char *nodes[] = { "a.test" };
    struct session_result sr;
    run_against(&fr, nodes, 1, 0, &sr);
    assert_int_equal(sr.results[0].outcome, ETRN_CONNECTION);
    assert_false(sr.results[0].sent);
    assert_non_null(strstr(sr.error, "greeting"));
}

static void test_session_multiline_etrn_reply_counts_as_one(void **state)
{
    (void)state;
    /* RFC 2920 §3.1b: a multiline reply is one reply. */
    struct fake_relay fr = { .greeting = "220 relay.test\r\n",
                             .replies = { EHLO_WITH_ETRN,
                                          "250-2.0.0 OK\r\n250 2.0.0 queuing for node a.test started\r\n",
                                          "251 2.0.0 nothing for b.test\r\n", "221 Bye\r\n" },
                             .nreplies = 4 };
    const char *nodes[] = { "a.test", "b.test" };
    struct session_result sr;
    run_against(&fr, nodes, 2, 0, &sr);
    assert_int_equal(sr.results[0].code, 250);
    assert_int_equal(sr.results[1].code, 251);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_sends_one_etrn_per_node_and_reads_codes),
        cmocka_unit_test(test_session_stops_sending_etrn_after_500),
        cmocka_unit_test(test_session_459_is_refused_and_later_nodes_still_asked),
        cmocka_unit_test(test_session_refuses_to_send_etrn_when_not_advertised),
        cmocka_unit_test(test_session_ehlo_refused_quits_without_etrn),
        cmocka_unit_test(test_session_greeting_554_quits),
        cmocka_unit_test(test_session_tls_required_530_stops_further_etrn),
        cmocka_unit_test(test_session_force_sends_etrn_without_keyword),
        cmocka_unit_test(test_session_unknown_2xx_code_read_by_first_digit),
        cmocka_unit_test(test_session_greeting_421_is_a_connection_problem),
        cmocka_unit_test(test_session_multiline_etrn_reply_counts_as_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
