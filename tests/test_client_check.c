/* test_client_check.c — the scripted relay (conformance/client_relay) and the client
 * checker (conformance/client_check): relay rules and defaults on a real loopback socket,
 * early-command detection, ETRN syntax, check verdicts on built logs, and whole runs of a
 * small shell client. Every wait is bounded by a loop count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "client_check.h"
#include "client_relay.h"
#include "scenario.h"
#include "strbuf.h"
#include "verdict.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void parse(struct scenario *sc, const char *text)
{
    struct etrn_err err = {{0}};
    int rc = scenario_parse_string(sc, "test.scn", text, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
}

static const struct scenario_step *relay_step(const struct scenario *sc)
{
    for (size_t i = 0; i < sc->nsteps; i++)
        if (sc->steps[i].kind == SCENARIO_STEP_RELAY)
            return &sc->steps[i];
    return NULL;
}

static const char *test_lookup(const char *name, void *arg)
{
    (void)arg;
    if (strcmp(name, "node") == 0 || strcmp(name, "node1") == 0)
        return "a.test";
    if (strcmp(name, "node2") == 0)
        return "b.test";
    return NULL;
}

static void pause_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

/* Turns the loop and reads until a final reply line ("NNN " or "NNN\r\n") or EOF; at most
 * 3 s in 5 ms steps. Returns the bytes read (NUL-terminated in buf). */
static size_t read_reply(struct event_base *base, int fd, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < 600; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t r = recv(fd, buf + len, n - len - 1, MSG_DONTWAIT);
        if (r == 0)
            return len;
        if (r > 0) {
            len += (size_t)r;
            buf[len] = '\0';
            /* the last complete line is final when a blank or CR follows its code */
            if (len >= 2 && buf[len - 1] == '\n') {
                char *last = buf + len - 2;
                while (last > buf && last[-1] != '\n')
                    last--;
                if (strlen(last) >= 4 && (last[3] == ' ' || last[3] == '\r'))
                    return len;
            }
            continue;
        }
        pause_ms(5);
    }
    return len;
}

static void say(int fd, const char *line)
{
    size_t n = strlen(line);
    assert_int_equal(send(fd, line, n, 0), (ssize_t)n);
}

/* Lets the relay notice a close; bounded. */
static void settle(struct event_base *base)
{
    for (int i = 0; i < 40; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        pause_ms(5);
    }
}

/* ---- the relay ---------------------------------------------------------------------------- */

static void test_relay_default_dialogue_advertises_etrn_and_records_commands(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R1985-5.2\nlevel MUST\nrelay\n  nodes 1\nend\n"
               "expect-client connects\n");
    struct event_base *base = event_base_new();
    struct client_relay *r;
    struct etrn_err err = {{0}};
    assert_int_equal(client_relay_new(base, relay_step(&sc), test_lookup, NULL, NULL, NULL, &r,
                                      &err), 0);
    int fd = connect_to(client_relay_port(r));
    char buf[2048];
    read_reply(base, fd, buf, sizeof buf);
    assert_true(strncmp(buf, "220 ", 4) == 0);
    say(fd, "EHLO site.test\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_non_null(strstr(buf, "250 ETRN\r\n"));
    say(fd, "ETRN a.test\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_true(strncmp(buf, "250 ", 4) == 0);
    say(fd, "QUIT\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_true(strncmp(buf, "221 ", 4) == 0);
    close(fd);
    settle(base);
    const struct client_relay_log *log = client_relay_log(r);
    assert_int_equal(log->nconns, 1);
    assert_int_equal(log->ncmds, 3);
    assert_string_equal(log->cmds[1].line, "ETRN a.test");
    assert_int_equal(log->cmds[1].reply_code, 250);
    assert_true(log->cmds[1].etrn_advertised);
    assert_false(log->cmds[1].early);
    assert_true(log->conns[0].quit);
    assert_int_equal(log->conns[0].netrn, 1);
    assert_true(log->conns[0].closed_ms >= 0);
    client_relay_free(r);
    event_base_free(base);
    scenario_free(&sc);
}

static void test_relay_uses_first_matching_rule_by_nth_and_expands_text(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R1985-5.2\nlevel MUST\nrelay\n"
               "  on ETRN nth 2 reply 458 busy with $node\n"
               "  on ETRN reply 250 first\\nsecond\n"
               "end\nexpect-client connects\n");
    struct event_base *base = event_base_new();
    struct client_relay *r;
    struct etrn_err err = {{0}};
    assert_int_equal(client_relay_new(base, relay_step(&sc), test_lookup, NULL, NULL, NULL, &r,
                                      &err), 0);
    int fd = connect_to(client_relay_port(r));
    char buf[2048];
    read_reply(base, fd, buf, sizeof buf);
    say(fd, "ETRN a.test\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_string_equal(buf, "250-first\r\n250 second\r\n");
    say(fd, "ETRN b.test\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_string_equal(buf, "458 busy with a.test\r\n");
    close(fd);
    settle(base);
    client_relay_free(r);
    event_base_free(base);
    scenario_free(&sc);
}

static void test_relay_marks_command_sent_during_paced_reply_as_early(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R2920-3.1b\nlevel MUST\nrelay\n"
               "  on ETRN pace 300ms reply 250 one\\ntwo\nend\nexpect-client waits for replies\n");
    struct event_base *base = event_base_new();
    struct client_relay *r;
    struct etrn_err err = {{0}};
    assert_int_equal(client_relay_new(base, relay_step(&sc), test_lookup, NULL, NULL, NULL, &r,
                                      &err), 0);
    int fd = connect_to(client_relay_port(r));
    char buf[2048];
    read_reply(base, fd, buf, sizeof buf);
    say(fd, "ETRN a.test\r\n");
    /* Read only the first line, then talk: the mistake of a line-at-a-time reader. */
    for (int i = 0; i < 100 && strstr(buf, "250-one") == NULL; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n > 0)
            buf[n] = '\0';
        pause_ms(5);
    }
    assert_non_null(strstr(buf, "250-one"));
    say(fd, "QUIT\r\n");
    read_reply(base, fd, buf, sizeof buf);
    read_reply(base, fd, buf, sizeof buf);
    close(fd);
    settle(base);
    const struct client_relay_log *log = client_relay_log(r);
    assert_int_equal(log->ncmds, 2);
    assert_string_equal(log->cmds[1].line, "QUIT");
    assert_true(log->cmds[1].early);

    struct scenario_result res;
    assert_int_equal(scenario_result_init(&res, &sc), 0);
    struct client_check_facts facts = { 1, 0, "", 0 };
    client_check_evaluate(&sc, log, &facts, test_lookup, NULL, &res);
    scenario_result_finish(&res);
    assert_int_equal(res.verdict, VERDICT_FAIL);
    assert_non_null(strstr(res.checks[0].detail, "before the reply"));
    scenario_result_free(&res);
    client_relay_free(r);
    event_base_free(base);
    scenario_free(&sc);
}

static void test_relay_421_greeting_closes_the_connection(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R5321-3.8\nlevel MUST\nrelay\n"
               "  on CONNECT reply 421 busy\nend\nexpect-client connects\n");
    struct event_base *base = event_base_new();
    struct client_relay *r;
    struct etrn_err err = {{0}};
    assert_int_equal(client_relay_new(base, relay_step(&sc), test_lookup, NULL, NULL, NULL, &r,
                                      &err), 0);
    int fd = connect_to(client_relay_port(r));
    char buf[256];
    read_reply(base, fd, buf, sizeof buf);
    assert_string_equal(buf, "421 busy\r\n");
    /* the relay closes: the next read sees EOF (bounded) */
    ssize_t got = -1;
    for (int i = 0; i < 200 && got != 0; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (got < 0)
            pause_ms(5);
    }
    assert_int_equal(got, 0);
    assert_true(client_relay_log(r)->conns[0].relay_closed);
    close(fd);
    client_relay_free(r);
    event_base_free(base);
    scenario_free(&sc);
}

static void test_relay_tls_required_refuses_etrn_in_clear(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R3207-4.2\nlevel MUST\nrelay\n  tls required\nend\n"
               "expect-client connects\n");
    struct event_base *base = event_base_new();
    struct client_relay *r;
    struct etrn_err err = {{0}};
    assert_int_equal(client_relay_new(base, relay_step(&sc), test_lookup, NULL, NULL, NULL, &r,
                                      &err), 0);
    int fd = connect_to(client_relay_port(r));
    char buf[2048];
    read_reply(base, fd, buf, sizeof buf);
    say(fd, "EHLO site.test\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_non_null(strstr(buf, "STARTTLS"));
    say(fd, "ETRN a.test\r\n");
    read_reply(base, fd, buf, sizeof buf);
    assert_true(strncmp(buf, "530 5.7.0", 9) == 0);
    close(fd);
    settle(base);
    client_relay_free(r);
    event_base_free(base);
    scenario_free(&sc);
}

static void test_relay_answers_a_pipelined_burst_in_order_and_marks_it_early(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R2920-3.1b\nlevel MUST\nrelay\n  nodes 1\nend\n"
               "expect-client waits for replies\n");
    struct event_base *base = event_base_new();
    struct client_relay *r;
    struct etrn_err err = {{0}};
    assert_int_equal(client_relay_new(base, relay_step(&sc), test_lookup, NULL, NULL, NULL, &r,
                                      &err), 0);
    int fd = connect_to(client_relay_port(r));
    char buf[8192];
    read_reply(base, fd, buf, sizeof buf);
    enum { BURST = 300 };
    static char burst[BURST * 6 + 1];
    for (int i = 0; i < BURST; i++)
        memcpy(burst + i * 6, "NOOP\r\n", 6);
    say(fd, burst);
    size_t replies = 0;
    for (int i = 0; i < 600 && replies < BURST; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = '\0';
            for (char *p = buf; (p = strstr(p, "250 OK\r\n")) != NULL; p += 8)
                replies++;
        } else {
            pause_ms(5);
        }
    }
    assert_int_equal(replies, BURST);
    close(fd);
    settle(base);
    const struct client_relay_log *log = client_relay_log(r);
    assert_int_equal(log->ncmds, BURST);
    assert_false(log->cmds[0].early);
    assert_true(log->cmds[1].early);
    assert_true(log->cmds[BURST - 1].early);
    client_relay_free(r);
    event_base_free(base);
    scenario_free(&sc);
}

/* ---- the checker ---------------------------------------------------------------------------- */

static void test_etrn_syntax_accepts_domains_and_options_and_refuses_the_rest(void **state)
{
    (void)state;
    char why[200];
    assert_true(client_check_etrn_valid("ETRN a.test", 11, 0, why, sizeof why));
    assert_true(client_check_etrn_valid("etrn @a-b.test", 14, 0, why, sizeof why));
    assert_true(client_check_etrn_valid("ETRN #uucp", 10, 0, why, sizeof why));
    assert_false(client_check_etrn_valid("ETRN", 4, 0, why, sizeof why));
    assert_non_null(strstr(why, "no node"));
    assert_false(client_check_etrn_valid("ETRN  a.test", 12, 0, why, sizeof why));
    assert_false(client_check_etrn_valid("ETRN a.test b.test", 18, 0, why, sizeof why));
    assert_non_null(strstr(why, "more than one argument"));
    assert_false(client_check_etrn_valid("ETRN -a.test", 12, 0, why, sizeof why));
    assert_false(client_check_etrn_valid("ETRN a..test", 12, 0, why, sizeof why));
    assert_false(client_check_etrn_valid("ETRN a.test", 11, SMTP_LINE_BARE_LF, why, sizeof why));
    assert_non_null(strstr(why, "bare LF"));
}

static void test_command_template_expands_placeholders_and_refuses_unknown(void **state)
{
    (void)state;
    const char *nodes[] = { "a.test", "b.test" };
    char out[256];
    struct etrn_err err = {{0}};
    assert_int_equal(client_check_expand_command("etrn -s {relay} {nodes} -- {nodes_comma} {node}",
                                                 "127.0.0.1", 2525, nodes, 2, out, sizeof out,
                                                 &err), 0);
    assert_string_equal(out, "etrn -s 127.0.0.1:2525 a.test b.test -- a.test,b.test a.test");
    assert_int_equal(client_check_expand_command("x {nope}", "127.0.0.1", 1, nodes, 1, out,
                                                 sizeof out, &err), -1);
    assert_non_null(strstr(err.msg, "{nope}"));
    assert_int_equal(client_check_expand_command("{relay}", "127.0.0.1", 1, nodes, 1, out, 8,
                                                 &err), -1);
}

static struct client_relay_command mk_cmd(unsigned conn, const char *line, int advertised)
{
    struct client_relay_command c;
    memset(&c, 0, sizeof c);
    c.conn = conn;
    str_copy(c.line, sizeof c.line, line);
    c.len = strlen(line);
    c.etrn_advertised = advertised;
    return c;
}

static void test_checks_judge_a_built_log_at_their_levels(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t\ntitle t\ncites R1985-5.2.1 R1869-4.2b R5321-4.1.1.10\n"
               "level SHOULD\nrelay\n  nodes 2\nend\n"
               "expect-client sends ETRN $node2\n"                                  /* PASS */
               "expect-client sends at most 1 ETRN per-session\n"                   /* WARN */
               "expect-client sends ETRN only where advertised else FAIL R1869-4.2b\n" /* FAIL */
               "expect-client quits else INFO R5321-4.1.1.10\n"                     /* INFO */
               "expect-client retries within 5s\n"                                  /* PASS */
               "expect-client backs off at-least 3s\n"                              /* WARN */
               "expect-client exits nonzero\n"                                      /* PASS */
               "expect-client reports \"*refused*\"\n");                            /* PASS */
    struct client_relay_command cmds[5] = {
        mk_cmd(1, "EHLO s", 0), mk_cmd(1, "ETRN a.test", 1), mk_cmd(1, "ETRN b.test", 1),
        mk_cmd(2, "EHLO s", 0), mk_cmd(2, "ETRN a.test", 0),
    };
    struct client_relay_log log;
    memset(&log, 0, sizeof log);
    log.cmds = cmds;
    log.ncmds = 5;
    log.nconns = 2;
    log.conns[0] = (struct client_relay_conn){ 0, 1000, 0, 1, 0, 3, 2 };
    log.conns[1] = (struct client_relay_conn){ 2000, 2500, 0, 0, 0, 2, 1 };
    struct client_check_facts facts = { 1, 3, "etrn: a.test: refused by the relay", 2600 };
    struct scenario_result res;
    assert_int_equal(scenario_result_init(&res, &sc), 0);
    client_check_evaluate(&sc, &log, &facts, test_lookup, NULL, &res);
    scenario_result_finish(&res);
    assert_int_equal(res.nchecks, 8);
    enum verdict want[8] = { VERDICT_PASS, VERDICT_WARN, VERDICT_FAIL, VERDICT_INFO,
                             VERDICT_PASS, VERDICT_WARN, VERDICT_PASS, VERDICT_PASS };
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(res.checks[i].verdict, want[i]);
    assert_int_equal(res.verdict, VERDICT_FAIL);
    assert_non_null(strstr(res.checks[3].detail, "c2 ended without QUIT"));
    scenario_result_free(&res);
    scenario_free(&sc);
}

static void test_scenario_parser_refuses_bad_client_lines(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        { "relay\n  on FETCH reply 250 x\nend\n", "unknown verb" },
        { "relay\n  on ETRN reply 99 x\nend\n", "not 200-599" },
        { "relay\n  on ETRN delay soon reply 250 x\nend\n", "not a duration" },
        { "relay\n  send ETRN x\nend\n", "not allowed inside a relay block" },
        { "relay\n  nodes 1\nend\nexpect-client flies\n", "unknown expect-client check" },
        { "client\n  expect 220\nend\nexpect-client connects\n", "needs a relay block" },
        { "on ETRN reply 250 x\n", "only allowed inside a relay block" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "scenario t\ntitle t\ncites R1985-5.2\nlevel MUST\n%s",
                 bad[i][0]);
        struct scenario sc;
        struct etrn_err err = {{0}};
        assert_int_equal(scenario_parse_string(&sc, "bad.scn", text, &err), -1);
        if (strstr(err.msg, bad[i][1]) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i][1]);
        assert_non_null(strstr(err.msg, "bad.scn:"));
    }
}

/* ---- whole runs with a real process ---------------------------------------------------------- */

static void test_run_judges_a_shell_client_that_only_quits(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t.run\ntitle t\ncites R1985-5.2 R5321-4.1.1.10\nlevel MUST\n"
               "timeout 10s\nrelay\n  nodes 1\nend\n"
               "expect-client connects\nexpect-client sends no ETRN\nexpect-client quits\n"
               "expect-client exits zero\nexpect-client reports \"*got 220*\"\n"
               "expect-client sends ETRN $node else INFO\n");
    struct client_check_options o = {
        .command = "bash -c 'exec 3<>/dev/tcp/{relay_host}/{relay_port}; read -r g <&3; "
                   "printf \"QUIT\\r\\n\" >&3; read -r b <&3; echo got $g'",
    };
    struct scenario_result res;
    struct etrn_err err = {{0}};
    assert_int_equal(scenario_result_init(&res, &sc), 0);
    assert_int_equal(client_check_run(&o, &sc, 1, &res, &err), 0);
    assert_int_equal(res.nchecks, 6);
    for (size_t i = 0; i < 5; i++)
        if (res.checks[i].verdict != VERDICT_PASS)
            fail_msg("check %zu (%s): %s\n%s", i, res.checks[i].what, res.checks[i].detail,
                     res.transcript.data);
    assert_int_equal(res.checks[5].verdict, VERDICT_INFO);
    assert_int_equal(res.verdict, VERDICT_INFO);
    assert_non_null(strstr(res.transcript.data, "c1 > QUIT"));
    scenario_result_free(&res);
    scenario_free(&sc);
}

static void test_run_stops_a_client_that_outlives_the_bound(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t.slow\ntitle t\ncites R1985-5.2\nlevel MUST\ntimeout 500ms\n"
               "relay\n  nodes 1\nend\nexpect-client exits zero\n");
    struct client_check_options o = { .command = "sleep 20" };
    struct scenario_result res;
    struct etrn_err err = {{0}};
    assert_int_equal(scenario_result_init(&res, &sc), 0);
    time_t t0 = time(NULL);
    assert_int_equal(client_check_run(&o, &sc, 2, &res, &err), 0);
    assert_true(time(NULL) - t0 < 10);
    assert_int_equal(res.verdict, VERDICT_FAIL);
    assert_non_null(strstr(res.checks[0].detail, "did not exit"));
    assert_non_null(strstr(res.transcript.data, "still running at the bound"));
    scenario_result_free(&res);
    scenario_free(&sc);
}

static void test_run_skips_tls_scenario_without_tls_command(void **state)
{
    (void)state;
    struct scenario sc;
    parse(&sc, "scenario t.tls\ntitle t\ncites R3207-4.2\nlevel MUST\n"
               "requires etrn-client starttls\nrelay\n  tls required\nend\n"
               "expect-client uses STARTTLS\n");
    struct client_check_options o = { .command = "true" };
    struct scenario_result res;
    struct etrn_err err = {{0}};
    assert_int_equal(scenario_result_init(&res, &sc), 0);
    assert_int_equal(client_check_run(&o, &sc, 3, &res, &err), 0);
    assert_int_equal(res.verdict, VERDICT_SKIP);
    assert_non_null(strstr(res.reason, "starttls"));
    scenario_result_free(&res);
    scenario_free(&sc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_default_dialogue_advertises_etrn_and_records_commands),
        cmocka_unit_test(test_relay_uses_first_matching_rule_by_nth_and_expands_text),
        cmocka_unit_test(test_relay_marks_command_sent_during_paced_reply_as_early),
        cmocka_unit_test(test_relay_421_greeting_closes_the_connection),
        cmocka_unit_test(test_relay_answers_a_pipelined_burst_in_order_and_marks_it_early),
        cmocka_unit_test(test_relay_tls_required_refuses_etrn_in_clear),
        cmocka_unit_test(test_etrn_syntax_accepts_domains_and_options_and_refuses_the_rest),
        cmocka_unit_test(test_command_template_expands_placeholders_and_refuses_unknown),
        cmocka_unit_test(test_checks_judge_a_built_log_at_their_levels),
        cmocka_unit_test(test_scenario_parser_refuses_bad_client_lines),
        cmocka_unit_test(test_run_judges_a_shell_client_that_only_quits),
        cmocka_unit_test(test_run_stops_a_client_that_outlives_the_bound),
        cmocka_unit_test(test_run_skips_tls_scenario_without_tls_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
