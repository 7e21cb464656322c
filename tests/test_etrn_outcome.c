/* test_etrn_outcome.c — the etrn client's reading of ETRN reply codes (RFC 1985 §5.2). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "etrn_outcome.h"

static void test_outcome_started_for_250_252_253_and_unknown_2xx(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_of(250), ETRN_STARTED);
    assert_int_equal(etrn_outcome_of(252), ETRN_STARTED);
    assert_int_equal(etrn_outcome_of(253), ETRN_STARTED);
    /* RFC 5321 §4.2c: an unknown code is read by its first digit. */
    assert_int_equal(etrn_outcome_of(254), ETRN_STARTED);
}

static void test_outcome_251_means_nothing_waiting(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_of(251), ETRN_NOTHING_WAITING);
    assert_int_equal(etrn_outcome_exit_code(ETRN_NOTHING_WAITING), 1);
}

static void test_outcome_459_is_refusal_not_unsupported(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_of(459), ETRN_REFUSED);
    assert_false(etrn_outcome_retryable(ETRN_REFUSED));
}

static void test_outcome_458_and_other_4xx_are_temporary_and_retryable(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_of(458), ETRN_TEMPORARY);
    assert_int_equal(etrn_outcome_of(421), ETRN_TEMPORARY);
    assert_int_equal(etrn_outcome_of(450), ETRN_TEMPORARY);
    assert_true(etrn_outcome_retryable(ETRN_TEMPORARY));
}

static void test_outcome_500_501_502_mean_unsupported_and_are_not_retried(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_of(500), ETRN_UNSUPPORTED);
    assert_int_equal(etrn_outcome_of(501), ETRN_UNSUPPORTED);
    assert_int_equal(etrn_outcome_of(502), ETRN_UNSUPPORTED);
    assert_false(etrn_outcome_retryable(ETRN_UNSUPPORTED));
}

static void test_outcome_530_tls_required_is_unsupported_not_retried(void **state)
{
    (void)state;
    /* A relay that requires TLS answers 530 5.7.0 to ETRN in clear: asking again in clear
     * changes nothing (client scenario client.etrn.tls-required-plain). */
    assert_int_equal(etrn_outcome_of(530), ETRN_UNSUPPORTED);
    assert_int_equal(etrn_outcome_exit_code(etrn_outcome_of(530)), 5);
    assert_false(etrn_outcome_retryable(etrn_outcome_of(530)));
}

static void test_outcome_words_name_every_outcome(void **state)
{
    (void)state;
    for (int o = 0; o < ETRN_OUTCOME_COUNT; o++)
        assert_string_not_equal(etrn_outcome_words((enum etrn_outcome)o), "unknown outcome");
    assert_string_equal(etrn_outcome_words(ETRN_OUTCOME_COUNT), "unknown outcome");
}

static void test_outcome_exit_codes_are_distinct_and_documented(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_exit_code(ETRN_STARTED), 0);
    assert_int_equal(etrn_outcome_exit_code(ETRN_TEMPORARY), 3);
    assert_int_equal(etrn_outcome_exit_code(ETRN_REFUSED), 4);
    assert_int_equal(etrn_outcome_exit_code(ETRN_UNSUPPORTED), 5);
    assert_int_equal(etrn_outcome_exit_code(ETRN_CONNECTION), 6);
    for (int a = 0; a < ETRN_OUTCOME_COUNT; a++)
        for (int b = a + 1; b < ETRN_OUTCOME_COUNT; b++)
            assert_int_not_equal(etrn_outcome_exit_code(a), etrn_outcome_exit_code(b));
}

static void test_outcome_worst_prefers_connection_problems(void **state)
{
    (void)state;
    assert_int_equal(etrn_outcome_worst(ETRN_STARTED, ETRN_REFUSED), ETRN_REFUSED);
    assert_int_equal(etrn_outcome_worst(ETRN_CONNECTION, ETRN_STARTED), ETRN_CONNECTION);
    assert_int_equal(etrn_outcome_worst(ETRN_NOTHING_WAITING, ETRN_STARTED), ETRN_NOTHING_WAITING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_started_for_250_252_253_and_unknown_2xx),
        cmocka_unit_test(test_outcome_251_means_nothing_waiting),
        cmocka_unit_test(test_outcome_459_is_refusal_not_unsupported),
        cmocka_unit_test(test_outcome_458_and_other_4xx_are_temporary_and_retryable),
        cmocka_unit_test(test_outcome_500_501_502_mean_unsupported_and_are_not_retried),
        cmocka_unit_test(test_outcome_530_tls_required_is_unsupported_not_retried),
        cmocka_unit_test(test_outcome_words_name_every_outcome),
        cmocka_unit_test(test_outcome_exit_codes_are_distinct_and_documented),
        cmocka_unit_test(test_outcome_worst_prefers_connection_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
