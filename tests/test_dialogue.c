/* test_dialogue.c — the runner's dialogue engine (conformance/dialogue) against a scripted
 * target on a real loopback socket: how a step's `else LEVEL` applies (to a reply's
 * conditions, never to silence or a close), and the automatic enhanced-code check once
 * ENHANCEDSTATUSCODES is advertised. Every wait is bounded by the step timeout and a loop
 * count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "dialogue.h"
#include "scenario.h"
#include "verdict.h"

#define SCRIPT_MAX 8
#define LOOP_MAX 5000
#define SILENT "<silent>"       /* script entry: read the line, answer nothing */
#define CLOSE "<close>"         /* script entry: close the connection instead of answering */

/* Answers the greeting with script[0] and the Nth line it receives with script[N]. */
struct fake_target {
    struct event_base *base;
    struct evconnlistener *lev;
    struct bufferevent *bev;
    const char *script[SCRIPT_MAX];
    size_t next;
    int closing;
    int port;
};

static void target_say(struct fake_target *t)
{
    const char *s = t->next < SCRIPT_MAX ? t->script[t->next] : NULL;
    t->next++;
    if (s == NULL || strcmp(s, SILENT) == 0)
        return;
    if (strcmp(s, CLOSE) == 0) {      /* after what was written so far has gone out */
        t->closing = 1;
        bufferevent_disable(t->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(t->bev)) == 0) {
            bufferevent_free(t->bev);
            t->bev = NULL;
        }
        return;
    }
    bufferevent_write(t->bev, s, strlen(s));
}

static void target_on_read(struct bufferevent *bev, void *arg)
{
    struct fake_target *t = arg;
    char *line;
    size_t len;
    while (t->bev == bev && !t->closing &&
           (line = evbuffer_readln(bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF))) {
        free(line);
        target_say(t);
    }
}

static void target_on_write(struct bufferevent *bev, void *arg)
{
    struct fake_target *t = arg;
    if (t->closing && t->bev == bev) {
        bufferevent_free(bev);
        t->bev = NULL;
    }
}

static void target_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct fake_target *t = arg;
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && t->bev == bev) {
        bufferevent_free(bev);
        t->bev = NULL;
    }
}

static void target_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                             int salen, void *arg)
{
    (void)lev;
    (void)sa;
    (void)salen;
    struct fake_target *t = arg;
    t->bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(t->bev);
    bufferevent_setcb(t->bev, target_on_read, target_on_write, target_on_event, t);
    bufferevent_enable(t->bev, EV_READ | EV_WRITE);
    target_say(t);
}

static void target_start(struct fake_target *t, struct event_base *base)
{
    t->base = base;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->lev = evconnlistener_new_bind(base, target_on_accept, t, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                     8, (struct sockaddr *)&a, sizeof a);
    assert_non_null(t->lev);
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    assert_int_equal(getsockname(evconnlistener_get_fd(t->lev), (struct sockaddr *)&got, &len), 0);
    t->port = ntohs(got.sin_port);
}

static void target_stop(struct fake_target *t)
{
    if (t->bev)
        bufferevent_free(t->bev);
    evconnlistener_free(t->lev);
}

/* ---- running one client block ------------------------------------------------------------ */

static const char *no_vars(const char *name, void *arg)
{
    (void)name;
    (void)arg;
    return NULL;
}

static void on_done(struct dialogue *d, void *arg)
{
    (void)d;
    *(int *)arg = 1;
}

/* Runs the scenario's first client block against a target answering with script (greeting
 * first); fills res (finished). */
static void run_against(const char *scenario_text, const char *const *script, size_t nscript,
                        struct scenario *sc, struct scenario_result *res)
{
    struct etrn_err err = {{0}};
    if (scenario_parse_string(sc, "test.scn", scenario_text, &err) < 0)
        fail_msg("%s", err.msg);
    const struct scenario_step *client = NULL;
    for (size_t i = 0; i < sc->nsteps && client == NULL; i++)
        if (sc->steps[i].kind == SCENARIO_STEP_CLIENT)
            client = &sc->steps[i];
    assert_non_null(client);
    assert_int_equal(scenario_result_init(res, sc), 0);

    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct fake_target t;
    memset(&t, 0, sizeof t);
    assert_true(nscript <= SCRIPT_MAX);
    for (size_t i = 0; i < nscript; i++)
        t.script[i] = script[i];
    target_start(&t, base);

    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)t.port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct dialogue_env env;
    memset(&env, 0, sizeof env);
    env.base = base;
    env.target = (struct sockaddr *)&to;
    env.target_len = sizeof to;
    env.step_timeout_ms = 300;
    env.lookup = no_vars;
    env.sc = sc;
    env.res = res;
    env.t0_ms = dialogue_now_ms();
    env.line = client->line;
    struct dialogue *d = NULL;
    int done = 0;
    if (dialogue_start(&d, &env, "c", client->children, client->nchildren, on_done, &done, &err) < 0)
        fail_msg("%s", err.msg);
    for (int i = 0; i < LOOP_MAX && !done; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_true(done);
    dialogue_free(d);
    target_stop(&t);
    event_base_free(base);
    scenario_result_finish(res);
}

static const char keyword_scenario[] =
    "scenario test.keyword\ntitle t\ncites R1985-5.1.1 R1985-2.2\nlevel MUST\n"
    "client\n"
    "  expect 220\n"
    "  send EHLO check.example\n"
    "  expect 250 with-keyword PIPELINING else INFO R1985-2.2\n"
    "  send QUIT\n"
    "  expect 221\n"
    "end\n";

static void expect_verdict(const char *const *script, size_t n, enum verdict want,
                           const char *reason_part)
{
    struct scenario sc;
    struct scenario_result res;
    run_against(keyword_scenario, script, n, &sc, &res);
    if (res.verdict != want || (reason_part && (!res.reason || !strstr(res.reason, reason_part))))
        fail_msg("got %s (%s), want %s with '%s'", verdict_name(res.verdict),
                 res.reason ? res.reason : "", verdict_name(want), reason_part ? reason_part : "");
    scenario_result_free(&res);
    scenario_free(&sc);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_dialogue_all_conditions_met_pass(void **state)
{
    (void)state;
    const char *script[] = { "220 t ESMTP\r\n", "250-t\r\n250 PIPELINING\r\n", "221 bye\r\n" };
    expect_verdict(script, 3, VERDICT_PASS, NULL);
}

static void test_dialogue_else_level_judges_a_missing_keyword(void **state)
{
    (void)state;
    const char *script[] = { "220 t ESMTP\r\n", "250-t\r\n250 8BITMIME\r\n", "221 bye\r\n" };
    expect_verdict(script, 3, VERDICT_INFO, "PIPELINING not advertised");
}

static void test_dialogue_else_level_does_not_excuse_silence(void **state)
{
    (void)state;
    const char *script[] = { "220 t ESMTP\r\n", SILENT };
    expect_verdict(script, 2, VERDICT_FAIL, "no reply within");
}

static void test_dialogue_else_level_does_not_excuse_a_close(void **state)
{
    (void)state;
    const char *script[] = { "220 t ESMTP\r\n", CLOSE };
    expect_verdict(script, 2, VERDICT_FAIL, "closed the connection before replying");
}

/* A SHOULD scenario whose step says `else FAIL`: silence is judged at the stricter else. */
static void test_dialogue_stricter_else_level_still_applies_to_silence(void **state)
{
    (void)state;
    struct scenario sc;
    struct scenario_result res;
    const char *script[] = { "220 t ESMTP\r\n", SILENT };
    run_against("scenario test.strict\ntitle t\ncites R1985-5.1.1\nlevel SHOULD\n"
                "client\n  expect 220\n  send NOOP\n  expect 250 else FAIL\nend\n",
                script, 2, &sc, &res);
    assert_int_equal(res.verdict, VERDICT_FAIL);
    scenario_result_free(&res);
    scenario_free(&sc);
}

/* Once ENHANCEDSTATUSCODES is advertised, a reply without a code is a WARN against R2034-3
 * (spec §3-A10), whatever the scenario's own level. */
static void test_dialogue_missing_enhanced_code_warns(void **state)
{
    (void)state;
    struct scenario sc;
    struct scenario_result res;
    const char *script[] = { "220 t ESMTP\r\n", "250-t\r\n250 ENHANCEDSTATUSCODES\r\n",
                             "250 ok\r\n", "221 2.0.0 bye\r\n" };
    run_against("scenario test.enh\ntitle t\ncites R1985-5.1.1\nlevel MUST\n"
                "client\n  expect 220\n  send EHLO check.example\n  expect 250\n"
                "  send NOOP\n  expect 250\n  send QUIT\n  expect 221\nend\n",
                script, 4, &sc, &res);
    assert_int_equal(res.verdict, VERDICT_WARN);
    assert_int_equal(scenario_result_requirement(&res, "R2034-3"), VERDICT_WARN);
    assert_int_equal(scenario_result_requirement(&res, "R1985-5.1.1"), VERDICT_PASS);
    scenario_result_free(&res);
    scenario_free(&sc);
}

/* `expect ... times N` over a pipelined burst: a 421 may end it early (any server may close
 * a session with 421, RFC 5321 §4.3.2), which passes if the replies before it matched, and
 * fails if one of them did not. */
static const char burst_scenario[] =
    "scenario test.burst\ntitle t\ncites R1985-5.1.1\nlevel MUST\n"
    "client\n  expect 220\n  send NOOP\n  send NOOP\n  send NOOP\n  expect 250 times 3\nend\n";

static void test_dialogue_421_may_end_a_burst(void **state)
{
    (void)state;
    struct scenario sc;
    struct scenario_result res;
    const char *ended[] = { "220 t ESMTP\r\n", "250 ok\r\n", "421 4.7.0 too many errors\r\n", CLOSE };
    run_against(burst_scenario, ended, 4, &sc, &res);
    if (res.verdict != VERDICT_PASS)
        fail_msg("%s: %s", verdict_name(res.verdict), res.reason ? res.reason : "");
    scenario_result_free(&res);
    scenario_free(&sc);

    const char *bad_first[] = { "220 t ESMTP\r\n", "500 no\r\n", "421 4.7.0 bye\r\n", CLOSE };
    run_against(burst_scenario, bad_first, 4, &sc, &res);
    assert_int_equal(res.verdict, VERDICT_FAIL);
    assert_non_null(strstr(res.reason, "reply 1: got 500 no"));
    scenario_result_free(&res);
    scenario_free(&sc);

    const char *all[] = { "220 t ESMTP\r\n", "250 a\r\n", "250 b\r\n", "250 c\r\n" };
    run_against(burst_scenario, all, 4, &sc, &res);
    assert_int_equal(res.verdict, VERDICT_PASS);
    scenario_result_free(&res);
    scenario_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialogue_all_conditions_met_pass),
        cmocka_unit_test(test_dialogue_else_level_judges_a_missing_keyword),
        cmocka_unit_test(test_dialogue_else_level_does_not_excuse_silence),
        cmocka_unit_test(test_dialogue_else_level_does_not_excuse_a_close),
        cmocka_unit_test(test_dialogue_stricter_else_level_still_applies_to_silence),
        cmocka_unit_test(test_dialogue_missing_enhanced_code_warns),
        cmocka_unit_test(test_dialogue_421_may_end_a_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
