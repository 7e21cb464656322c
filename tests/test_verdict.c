/* test_verdict.c — level → verdict mapping, aggregation per scenario and per requirement,
 * baselines and exit codes (conformance/verdict.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "verdict.h"

static struct scenario make_scenario(const char *text)
{
    struct scenario sc;
    struct etrn_err err;
    if (scenario_parse_string(&sc, "fixtures/scenarios/flush/x.scn", text, &err) != 0)
        fail_msg("%s", err.msg);
    return sc;
}

static const char sc_text[] =
    "scenario a.b\ntitle t\ncites R1985-5.1.1 R1985-5.1.2\nlevel SHOULD\n"
    "client\n send NOOP\n expect 250\nend\n";

static void test_verdict_levels_map_to_verdicts(void **state)
{
    (void)state;
    assert_int_equal(verdict_for_level(SCENARIO_LEVEL_MUST), VERDICT_FAIL);
    assert_int_equal(verdict_for_level(SCENARIO_LEVEL_SHOULD), VERDICT_WARN);
    assert_int_equal(verdict_for_level(SCENARIO_LEVEL_MAY), VERDICT_INFO);
    assert_int_equal(verdict_for_level(SCENARIO_LEVEL_INFO), VERDICT_INFO);
    assert_int_equal(verdict_for_level(SCENARIO_LEVEL_NONE), VERDICT_FAIL);
    assert_int_equal(verdict_worse(VERDICT_PASS, VERDICT_INFO), VERDICT_INFO);
    assert_int_equal(verdict_worse(VERDICT_FAIL, VERDICT_WARN), VERDICT_FAIL);
    assert_int_equal(verdict_worse(VERDICT_SKIP, VERDICT_PASS), VERDICT_PASS);
    assert_int_equal(verdict_worse(VERDICT_ERROR, VERDICT_FAIL), VERDICT_ERROR);
    enum verdict v;
    assert_int_equal(verdict_parse("warn", &v), 0);
    assert_int_equal(v, VERDICT_WARN);
    assert_int_equal(verdict_parse("bogus", &v), -1);
    assert_string_equal(verdict_name(VERDICT_ERROR), "ERROR");
}

static void test_verdict_scenario_takes_worst_check(void **state)
{
    (void)state;
    struct scenario sc = make_scenario(sc_text);
    struct scenario_result res;
    assert_int_equal(scenario_result_init(&res, &sc), 0);
    assert_string_equal(res.area, "flush");
    char *r1[] = {"R1985-5.1.1"};
    scenario_result_add_check(&res, VERDICT_PASS, r1, 1, "f", 3, "expect 250", "got 250");
    scenario_result_finish(&res);
    assert_int_equal(res.verdict, VERDICT_PASS);
    assert_null(res.reason);
    scenario_result_add_check(&res, VERDICT_INFO, r1, 1, "f", 4, "expect 250", "observed");
    scenario_result_add_check(&res, VERDICT_WARN, r1, 1, "f", 5, "expect 458", "got 250");
    scenario_result_add_check(&res, VERDICT_PASS, r1, 1, "f", 6, "expect 221", "got 221");
    scenario_result_finish(&res);
    assert_int_equal(res.verdict, VERDICT_WARN);
    assert_non_null(strstr(res.reason, "line 5"));
    /* SKIP/ERROR set explicitly override the checks */
    scenario_result_set_final(&res, VERDICT_ERROR, "world: port in use");
    scenario_result_finish(&res);
    assert_int_equal(res.verdict, VERDICT_ERROR);
    assert_string_equal(res.reason, "world: port in use");
    scenario_result_free(&res);
    scenario_free(&sc);
}

static void test_verdict_check_flood_keeps_severity(void **state)
{
    (void)state;
    struct scenario sc = make_scenario(sc_text);
    struct scenario_result res;
    scenario_result_init(&res, &sc);
    char *r1[] = {"R1985-5.1.1"};
    for (int i = 0; i < RESULT_CHECKS_MAX + 10; i++)
        scenario_result_add_check(&res, VERDICT_PASS, r1, 1, "f", 1, "w", "d");
    scenario_result_add_check(&res, VERDICT_FAIL, r1, 1, "f", 1, "w", "late failure");
    assert_int_equal(res.nchecks, RESULT_CHECKS_MAX);
    assert_int_equal(res.dropped_checks, 11);
    scenario_result_finish(&res);
    assert_int_equal(res.verdict, VERDICT_FAIL);
    scenario_result_free(&res);
    scenario_free(&sc);
}

static void test_verdict_transcript_is_bounded(void **state)
{
    (void)state;
    struct scenario sc = make_scenario(sc_text);
    struct scenario_result res;
    scenario_result_init(&res, &sc);
    char line[1000];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    for (int i = 0; i < 1000; i++)
        scenario_result_log(&res, "%s", line);
    assert_true(res.transcript.len < RESULT_TRANSCRIPT_MAX);
    assert_non_null(strstr(res.transcript.data, "transcript cut"));
    scenario_result_free(&res);
    scenario_free(&sc);
}

static void add_result(struct run_results *run, const char *id, enum verdict v, char **reqs,
                       size_t n)
{
    char text[300];
    snprintf(text, sizeof text,
             "scenario %s\ntitle t\ncites R1985-5.1.1 R1985-5.1.2\nlevel MUST\n"
             "client\n send NOOP\nend\n", id);
    struct scenario sc = make_scenario(text);
    struct scenario_result res;
    scenario_result_init(&res, &sc);
    if (v == VERDICT_SKIP || v == VERDICT_ERROR)
        scenario_result_set_final(&res, v, "reason");
    else
        scenario_result_add_check(&res, v, reqs, n, "f", 1, "w", "d");
    scenario_result_finish(&res);
    run_results_add(run, &res);
    scenario_free(&sc);
}

static struct requirement_result *find_req(struct requirement_result *v, size_t n,
                                           const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}

static void test_verdict_requirements_aggregate_across_scenarios(void **state)
{
    (void)state;
    struct run_results run;
    run_results_init(&run);
    char *only1[] = {"R1985-5.1.1"};
    char *auto_req[] = {"R5321-4.2b"};
    add_result(&run, "s.pass", VERDICT_PASS, only1, 1);
    add_result(&run, "s.warn", VERDICT_WARN, only1, 1);
    add_result(&run, "s.auto", VERDICT_FAIL, auto_req, 1);
    add_result(&run, "s.skip", VERDICT_SKIP, NULL, 0);
    struct requirement_result *reqs;
    size_t n;
    assert_int_equal(run_results_requirements(&run, &reqs, &n), 0);
    assert_int_equal(n, 3);
    /* sorted by id */
    assert_string_equal(reqs[0].id, "R1985-5.1.1");
    struct requirement_result *a = find_req(reqs, n, "R1985-5.1.1");
    struct requirement_result *b = find_req(reqs, n, "R1985-5.1.2");
    struct requirement_result *c = find_req(reqs, n, "R5321-4.2b");
    assert_int_equal(a->verdict, VERDICT_WARN);      /* worst check naming it */
    assert_int_equal(b->verdict, VERDICT_PASS);      /* cited, never failed */
    assert_int_equal(c->verdict, VERDICT_FAIL);      /* an automatic check, not cited */
    assert_int_equal(a->nscenarios, 4);
    assert_int_equal(c->nscenarios, 1);
    assert_int_equal(a->counts[VERDICT_SKIP], 1);
    requirement_results_free(reqs, n);
    /* one scenario's verdict for one requirement */
    assert_int_equal(scenario_result_requirement(&run.v[1], "R1985-5.1.1"), VERDICT_WARN);
    assert_int_equal(scenario_result_requirement(&run.v[1], "R1985-5.1.2"), VERDICT_PASS);
    assert_int_equal(scenario_result_requirement(&run.v[1], "R5321-4.2b"), VERDICT_SKIP);
    assert_int_equal(scenario_result_requirement(&run.v[2], "R5321-4.2b"), VERDICT_FAIL);
    assert_int_equal(scenario_result_requirement(&run.v[3], "R1985-5.1.2"), VERDICT_SKIP);

    size_t counts[VERDICT_COUNT];
    run_results_counts(&run, counts);
    assert_int_equal(counts[VERDICT_FAIL], 1);
    assert_int_equal(counts[VERDICT_SKIP], 1);
    assert_int_equal(run_results_exit_code(&run), 1);
    add_result(&run, "s.error", VERDICT_ERROR, NULL, 0);
    assert_int_equal(run_results_exit_code(&run), 2);
    assert_int_equal(run_results_requirements(&run, &reqs, &n), 0);
    assert_int_equal(find_req(reqs, n, "R1985-5.1.2")->verdict, VERDICT_ERROR);
    requirement_results_free(reqs, n);
    run_results_free(&run);
}

static void test_verdict_only_skips_give_skip(void **state)
{
    (void)state;
    struct run_results run;
    run_results_init(&run);
    add_result(&run, "s.skip", VERDICT_SKIP, NULL, 0);
    struct requirement_result *reqs;
    size_t n;
    assert_int_equal(run_results_requirements(&run, &reqs, &n), 0);
    assert_int_equal(reqs[0].verdict, VERDICT_SKIP);
    requirement_results_free(reqs, n);
    assert_int_equal(run_results_exit_code(&run), 0);
    run_results_free(&run);
}

static void test_verdict_baseline_fails_only_on_regressions(void **state)
{
    (void)state;
    char *r1[] = {"R1985-5.1.1"};
    struct run_results old, now;
    run_results_init(&old);
    run_results_init(&now);
    add_result(&old, "known.bad", VERDICT_FAIL, r1, 1);
    add_result(&old, "was.good", VERDICT_PASS, r1, 1);
    add_result(&now, "known.bad", VERDICT_FAIL, r1, 1);
    add_result(&now, "was.good", VERDICT_PASS, r1, 1);
    assert_int_equal(run_results_apply_baseline(&now, &old), 0);
    assert_int_equal(run_results_exit_code(&now), 0);
    run_results_free(&now);
    run_results_init(&now);
    add_result(&now, "known.bad", VERDICT_FAIL, r1, 1);
    add_result(&now, "was.good", VERDICT_FAIL, r1, 1);
    add_result(&now, "brand.new", VERDICT_FAIL, r1, 1);
    assert_int_equal(run_results_apply_baseline(&now, &old), 2);
    assert_int_equal(now.v[0].regression, 0);
    assert_int_equal(now.v[1].regression, 1);
    assert_int_equal(run_results_exit_code(&now), 1);
    run_results_free(&now);
    run_results_free(&old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_levels_map_to_verdicts),
        cmocka_unit_test(test_verdict_scenario_takes_worst_check),
        cmocka_unit_test(test_verdict_check_flood_keeps_severity),
        cmocka_unit_test(test_verdict_transcript_is_bounded),
        cmocka_unit_test(test_verdict_requirements_aggregate_across_scenarios),
        cmocka_unit_test(test_verdict_only_skips_give_skip),
        cmocka_unit_test(test_verdict_baseline_fails_only_on_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
