/* test_strbuf.c — the bounded string type, the bounded copy/format helpers, and err.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "strbuf.h"
#include "err.h"

static void test_strbuf_starts_empty_and_terminated(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 16);
    assert_non_null(sb.data);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    strbuf_reset(&sb);   /* reset before any growth must not write to the shared "" */
    assert_string_equal(sb.data, "");
    strbuf_free(&sb);
    assert_non_null(sb.data);
    assert_string_equal(sb.data, "");
}

static void test_strbuf_appends_and_grows_past_initial_capacity(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, STRBUF_UNLIMITED);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(strbuf_appendf(&sb, "%03d,", i), 0);
    assert_int_equal(sb.len, 4000);
    assert_int_equal(sb.data[sb.len], '\0');
    assert_memory_equal(sb.data, "000,001,", 8);
    assert_memory_equal(sb.data + 3996, "999,", 4);
    strbuf_free(&sb);
}

static void test_strbuf_fills_exactly_to_limit(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 10);
    assert_int_equal(strbuf_append_str(&sb, "12345"), 0);
    assert_int_equal(strbuf_append_str(&sb, "67890"), 0);
    assert_int_equal(sb.len, 10);
    assert_string_equal(sb.data, "1234567890");
    assert_true(sb.cap <= 11);   /* doubling stops at the limit */
    strbuf_free(&sb);
}

static void test_strbuf_failed_append_leaves_contents_unchanged(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 10);
    assert_int_equal(strbuf_append_str(&sb, "abcdefgh"), 0);
    assert_int_equal(strbuf_append_str(&sb, "xyz"), -1);
    assert_int_equal(sb.len, 8);
    assert_string_equal(sb.data, "abcdefgh");
    assert_int_equal(strbuf_appendf(&sb, "%d", 123), -1);
    assert_string_equal(sb.data, "abcdefgh");
    assert_int_equal(strbuf_append(&sb, "ij", 2), 0);
    assert_string_equal(sb.data, "abcdefghij");
    assert_int_equal(strbuf_append(&sb, "k", 1), -1);
    assert_int_equal(strbuf_append(&sb, "", 0), 0);
    strbuf_free(&sb);
}

static void test_strbuf_huge_append_is_refused_without_overflow(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 100);
    assert_int_equal(strbuf_append_str(&sb, "x"), 0);
    assert_int_equal(strbuf_append(&sb, "y", (size_t)-1), -1);
    assert_int_equal(strbuf_append(&sb, "y", (size_t)-1 - 1), -1);
    assert_string_equal(sb.data, "x");
    strbuf_free(&sb);
}

static void test_strbuf_holds_binary_bytes(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 64);
    assert_int_equal(strbuf_append(&sb, "a\0b", 3), 0);
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb.data, "a\0b", 4);
    strbuf_free(&sb);
}

static void test_strbuf_reset_keeps_memory_and_empties(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 64);
    assert_int_equal(strbuf_append_str(&sb, "hello"), 0);
    char *before = sb.data;
    strbuf_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    assert_ptr_equal(sb.data, before);
    assert_int_equal(strbuf_append_str(&sb, "again"), 0);
    assert_string_equal(sb.data, "again");
    strbuf_free(&sb);
}

static void test_strbuf_detach_returns_an_owned_copy(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 64);
    char *empty = strbuf_detach(&sb);
    assert_non_null(empty);
    assert_string_equal(empty, "");
    free(empty);
    assert_int_equal(strbuf_append_str(&sb, "payload"), 0);
    char *copy = strbuf_detach(&sb);
    assert_non_null(copy);
    assert_string_equal(copy, "payload");
    assert_ptr_not_equal(copy, sb.data);
    free(copy);
    strbuf_free(&sb);
}

static void test_str_copy_truncates_and_reports(void **state)
{
    (void)state;
    char buf[6];
    assert_int_equal(str_copy(buf, sizeof buf, "hello"), 0);
    assert_string_equal(buf, "hello");
    assert_int_equal(str_copy(buf, sizeof buf, "hello!"), -1);
    assert_string_equal(buf, "hello");
    assert_int_equal(str_copy(buf, 1, "x"), -1);
    assert_string_equal(buf, "");
    assert_int_equal(str_copy(buf, 0, "x"), -1);
}

static void test_str_format_returns_length_or_minus_one(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(str_format(buf, sizeof buf, "%d-%s", 42, "ab"), 5);
    assert_string_equal(buf, "42-ab");
    assert_int_equal(str_format(buf, sizeof buf, "%s", "12345678"), -1);
    assert_string_equal(buf, "1234567");
    assert_int_equal(str_format(buf, sizeof buf, "%s", "1234567"), 7);
}

static void test_str_case_helpers_are_ascii_only(void **state)
{
    (void)state;
    assert_int_equal(str_casecmp("ETRN", "etrn"), 0);
    assert_true(str_casecmp("a", "b") < 0);
    assert_true(str_casecmp("b", "A") > 0);
    assert_true(str_casecmp("ab", "a") > 0);
    assert_int_equal(str_ncasecmp("EHLOx", "ehloY", 4), 0);
    assert_true(str_ncasecmp("EHLOx", "ehloY", 5) != 0);
    assert_int_equal(str_ncasecmp("ab", "AB", 10), 0);
    /* Bytes above 0x7f are not letters: no locale folding. */
    assert_true(str_casecmp("\xc4", "\xe4") != 0);
    char s[] = "Node.TEST\xc4";
    str_lower(s);
    assert_string_equal(s, "node.test\xc4");
}

static void test_str_trim_both_ends(void **state)
{
    (void)state;
    char a[] = " \t value with  space \r\n";
    assert_string_equal(str_trim(a), "value with  space");
    char b[] = "   ";
    assert_string_equal(str_trim(b), "");
    char c[] = "x";
    assert_string_equal(str_trim(c), "x");
}

static void test_err_set_formats_truncates_and_returns_minus_one(void **state)
{
    (void)state;
    struct etrn_err err;
    assert_int_equal(err_set(&err, "%s:%d: unknown setting '%s'", "etrnd.conf", 7, "x"), -1);
    assert_string_equal(err.msg, "etrnd.conf:7: unknown setting 'x'");
    char big[2 * ETRN_ERR_MAX];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(err_set(&err, "%s", big), -1);
    assert_int_equal(strlen(err.msg), ETRN_ERR_MAX - 1);
    assert_int_equal(err_set(NULL, "ignored %d", 1), -1);
}

static void test_err_set_errno_appends_reason_and_keeps_errno(void **state)
{
    (void)state;
    struct etrn_err err;
    errno = ENOENT;
    assert_int_equal(err_set_errno(&err, "%s", "spool/x"), -1);
    assert_string_equal(err.msg, "spool/x: No such file or directory");
    assert_int_equal(errno, ENOENT);
    assert_int_equal(err_set_errno(NULL, "x"), -1);
}

static void test_err_prefix_keeps_old_message(void **state)
{
    (void)state;
    struct etrn_err err;
    err_set(&err, "connection refused");
    assert_int_equal(err_prefix(&err, "%s", "127.0.0.2:25"), -1);
    assert_string_equal(err.msg, "127.0.0.2:25: connection refused");
    /* A long old message is cut, never overflowing. */
    char big[ETRN_ERR_MAX];
    memset(big, 'o', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    err_set(&err, "%s", big);
    assert_int_equal(err_prefix(&err, "prefix"), -1);
    assert_int_equal(strncmp(err.msg, "prefix: ooo", 11), 0);
    assert_int_equal(strlen(err.msg), ETRN_ERR_MAX - 1);
    assert_int_equal(err_prefix(NULL, "x"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strbuf_starts_empty_and_terminated),
        cmocka_unit_test(test_strbuf_appends_and_grows_past_initial_capacity),
        cmocka_unit_test(test_strbuf_fills_exactly_to_limit),
        cmocka_unit_test(test_strbuf_failed_append_leaves_contents_unchanged),
        cmocka_unit_test(test_strbuf_huge_append_is_refused_without_overflow),
        cmocka_unit_test(test_strbuf_holds_binary_bytes),
        cmocka_unit_test(test_strbuf_reset_keeps_memory_and_empties),
        cmocka_unit_test(test_strbuf_detach_returns_an_owned_copy),
        cmocka_unit_test(test_str_copy_truncates_and_reports),
        cmocka_unit_test(test_str_format_returns_length_or_minus_one),
        cmocka_unit_test(test_str_case_helpers_are_ascii_only),
        cmocka_unit_test(test_str_trim_both_ends),
        cmocka_unit_test(test_err_set_formats_truncates_and_returns_minus_one),
        cmocka_unit_test(test_err_set_errno_appends_reason_and_keeps_errno),
        cmocka_unit_test(test_err_prefix_keeps_old_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
