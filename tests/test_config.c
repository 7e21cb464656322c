/* test_config.c — the key = value reader: values, continuations, comments, file:line errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static void test_config_reads_file_with_comments_and_continuation(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_file(&cfg, "fixtures/config/good.conf", &err), 0);
    const struct config_entry *e = config_get(&cfg, "listen");
    assert_non_null(e);
    assert_string_equal(e->value, "127.0.0.1:2525");
    e = config_get(&cfg, "etrn_domains");
    assert_string_equal(e->value, "a.test, b.test c.test");
    assert_int_equal(e->line, 4);
    char **items;
    size_t n;
    assert_int_equal(config_split_list(e->value, &items, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(items[2], "c.test");
    config_list_free(items, n);
    size_t pos = 0;
    e = config_next(&cfg, "route.", &pos);
    assert_non_null(e);
    assert_string_equal(e->key, "route.a.test");
    assert_null(config_next(&cfg, "route.", &pos));
    unsigned long long ms, size;
    assert_int_equal(config_parse_duration_ms(config_get(&cfg, "smtp_mail_timeout"), &ms, &err), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(config_parse_size(config_get(&cfg, "message_size_limit"), &size, &err), 0);
    assert_int_equal(size, 10 * 1024 * 1024);
    assert_int_equal(config_check_unused(&cfg, &err), 0);
    config_free(&cfg);
}

static void test_config_missing_equals_names_file_and_line(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_file(&cfg, "fixtures/config/missing-equals.conf", &err), -1);
    assert_string_equal(err.msg, "fixtures/config/missing-equals.conf:2: expected 'key = value'");
}

static void test_config_unknown_setting_is_reported_with_its_line(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "etrnd.conf", "listen = x\n\netrn_domian = a.test\n", &err), 0);
    config_get(&cfg, "listen");
    assert_int_equal(config_check_unused(&cfg, &err), -1);
    assert_string_equal(err.msg, "etrnd.conf:3: unknown setting 'etrn_domian'");
    config_free(&cfg);
}

static void test_config_last_value_wins_and_hash_after_space_is_comment(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "t", "a = 1\na = 2 # two\nb = x#y\n", &err), 0);
    assert_string_equal(config_get(&cfg, "a")->value, "2");
    assert_string_equal(config_get(&cfg, "b")->value, "x#y");
    config_free(&cfg);
}

static void test_config_bad_values_name_the_setting(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "c.conf", "n = 12x\nt = 5y\nb = maybe\nu = 70000\n", &err), 0);
    unsigned long long v;
    unsigned long u;
    int b;
    assert_int_equal(config_parse_size(config_get(&cfg, "n"), &v, &err), -1);
    assert_non_null(strstr(err.msg, "c.conf:1: n:"));
    assert_int_equal(config_parse_duration_ms(config_get(&cfg, "t"), &v, &err), -1);
    assert_non_null(strstr(err.msg, "c.conf:2: t:"));
    assert_int_equal(config_parse_bool(config_get(&cfg, "b"), &b, &err), -1);
    assert_int_equal(config_parse_uint(config_get(&cfg, "u"), 1, 65535, &u, &err), -1);
    assert_non_null(strstr(err.msg, "out of range"));
    config_free(&cfg);
}

static void test_config_rejects_bad_key_and_leading_continuation(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "k", "a b = 1\n", &err), -1);
    assert_non_null(strstr(err.msg, "k:1: invalid character"));
    assert_int_equal(config_load_string(&cfg, "k", "  x\n", &err), -1);
    assert_non_null(strstr(err.msg, "k:1: continuation"));
}

static void test_config_over_long_line_is_an_error_not_a_crash(void **state)
{
    (void)state;
    static char text[10000];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "long", text, &err), -1);
    assert_non_null(strstr(err.msg, "long:1: line longer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_reads_file_with_comments_and_continuation),
        cmocka_unit_test(test_config_missing_equals_names_file_and_line),
        cmocka_unit_test(test_config_unknown_setting_is_reported_with_its_line),
        cmocka_unit_test(test_config_last_value_wins_and_hash_after_space_is_comment),
        cmocka_unit_test(test_config_bad_values_name_the_setting),
        cmocka_unit_test(test_config_rejects_bad_key_and_leading_continuation),
        cmocka_unit_test(test_config_over_long_line_is_an_error_not_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
