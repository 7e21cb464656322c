/* test_config.c — the key = value reader: values, continuations, comments, file:line errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "strbuf.h"

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

static struct config_entry entry_of(const char *key, char *value)
{
    struct config_entry e = { (char *)key, value, "t.conf", 9, 0 };
    return e;
}

static void test_config_durations_all_units(void **state)
{
    (void)state;
    static const struct { const char *text; unsigned long long ms; } cases[] = {
        { "90", 90000 }, { "90s", 90000 }, { "250ms", 250 }, { "15m", 900000 },
        { "2h", 7200000 }, { "5d", 432000000 }, { "0", 0 }, { "10 s", 10000 },
    };
    struct etrn_err err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char v[32];
        str_copy(v, sizeof v, cases[i].text);
        struct config_entry e = entry_of("t", v);
        unsigned long long ms = 1;
        assert_int_equal(config_parse_duration_ms(&e, &ms, &err), 0);
        assert_int_equal(ms, cases[i].ms);
    }
    static const char *const bad[] = { "", "s", "5x", "5 m x", "-5s", "5.5s", "99999999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char v[32];
        str_copy(v, sizeof v, bad[i]);
        struct config_entry e = entry_of("timeout", v);
        unsigned long long ms;
        assert_int_equal(config_parse_duration_ms(&e, &ms, &err), -1);
        assert_int_equal(strncmp(err.msg, "t.conf:9: timeout: ", 19), 0);
    }
    char v[] = "99999999999999999d";
    struct config_entry e = entry_of("t", v);
    unsigned long long ms;
    assert_int_equal(config_parse_duration_ms(&e, &ms, &err), -1);
    assert_non_null(strstr(err.msg, "too large"));
}

static void test_config_sizes_are_1024_based(void **state)
{
    (void)state;
    static const struct { const char *text; unsigned long long bytes; } cases[] = {
        { "1024", 1024 }, { "10k", 10240 }, { "10K", 10240 }, { "3m", 3145728 },
        { "3M", 3145728 }, { "2g", 2147483648ULL }, { "2G", 2147483648ULL }, { "0", 0 },
    };
    struct etrn_err err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char v[32];
        str_copy(v, sizeof v, cases[i].text);
        struct config_entry e = entry_of("s", v);
        unsigned long long b = 1;
        assert_int_equal(config_parse_size(&e, &b, &err), 0);
        assert_int_equal(b, cases[i].bytes);
    }
    char v[] = "10T";
    struct config_entry e = entry_of("message_size_limit", v);
    unsigned long long b;
    assert_int_equal(config_parse_size(&e, &b, &err), -1);
    assert_int_equal(strncmp(err.msg, "t.conf:9: message_size_limit: '10T'", 35), 0);
}

static void test_config_uint_and_bool(void **state)
{
    (void)state;
    struct etrn_err err = {{0}};
    unsigned long u;
    int b;
    char v1[] = "25";
    struct config_entry e = entry_of("port", v1);
    assert_int_equal(config_parse_uint(&e, 1, 65535, &u, &err), 0);
    assert_int_equal(u, 25);
    char v2[] = "0";
    e = entry_of("port", v2);
    assert_int_equal(config_parse_uint(&e, 1, 65535, &u, &err), -1);
    assert_string_equal(err.msg, "t.conf:9: port: 0 is out of range 1..65535");
    char v3[] = "-1";
    e = entry_of("port", v3);
    assert_int_equal(config_parse_uint(&e, 0, 65535, &u, &err), -1);
    char v4[] = "99999999999999999999999";
    e = entry_of("port", v4);
    assert_int_equal(config_parse_uint(&e, 0, (unsigned long)-1, &u, &err), -1);
    static const char *const yes[] = { "yes", "TRUE", "on", "1" };
    static const char *const no[] = { "no", "False", "OFF", "0" };
    for (int i = 0; i < 4; i++) {
        char v[8];
        str_copy(v, sizeof v, yes[i]);
        e = entry_of("b", v);
        b = 0;
        assert_int_equal(config_parse_bool(&e, &b, &err), 0);
        assert_int_equal(b, 1);
        str_copy(v, sizeof v, no[i]);
        b = 1;
        assert_int_equal(config_parse_bool(&e, &b, &err), 0);
        assert_int_equal(b, 0);
    }
}

static void test_config_split_list_skips_empty_items(void **state)
{
    (void)state;
    char **items;
    size_t n;
    assert_int_equal(config_split_list(" a.test,,b.test ,\tc.test d.test, ", &items, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(items[0], "a.test");
    assert_string_equal(items[1], "b.test");
    assert_string_equal(items[2], "c.test");
    assert_string_equal(items[3], "d.test");
    config_list_free(items, n);
    assert_int_equal(config_split_list("", &items, &n), 0);
    assert_int_equal(n, 0);
    config_list_free(items, n);
    assert_int_equal(config_split_list(" , ,", &items, &n), 0);
    assert_int_equal(n, 0);
    config_list_free(items, n);
}

static void test_config_get_marks_earlier_duplicates_used(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "d.conf", "x = 1\ny = 2\nx = 3\n", &err), 0);
    assert_int_equal(cfg.n, 3);
    const struct config_entry *e = config_get(&cfg, "x");
    assert_string_equal(e->value, "3");
    assert_int_equal(e->line, 3);
    assert_int_equal(config_check_unused(&cfg, &err), -1);
    assert_string_equal(err.msg, "d.conf:2: unknown setting 'y'");
    assert_null(config_get(&cfg, "X"));   /* keys are case-sensitive */
    assert_non_null(config_get(&cfg, "y"));
    assert_int_equal(config_check_unused(&cfg, &err), 0);
    config_free(&cfg);
}

static void test_config_continuation_crlf_and_empty_value(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    const char *text = "# head\r\nlist = a,\r\n\tb   # tail comment\r\n    c\r\nempty =\r\nk.@#-_9=v=w\r\n";
    assert_int_equal(config_load_string(&cfg, "crlf.conf", text, &err), 0);
    assert_string_equal(config_get(&cfg, "list")->value, "a, b c");
    assert_string_equal(config_get(&cfg, "empty")->value, "");
    const struct config_entry *e = config_get(&cfg, "k.@#-_9");
    assert_non_null(e);
    assert_string_equal(e->value, "v=w");
    assert_int_equal(e->line, 6);
    assert_string_equal(e->file, "crlf.conf");
    config_free(&cfg);
}

static void test_config_err_names_file_line_and_key(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "etrnd.conf", "\n\n\n\n\n\netrn_domains = no..dots\n", &err), 0);
    const struct config_entry *e = config_get(&cfg, "etrn_domains");
    assert_int_equal(config_err(&err, e, "'%s' is not a domain", e->value), -1);
    assert_string_equal(err.msg, "etrnd.conf:7: etrn_domains: 'no..dots' is not a domain");
    assert_int_equal(config_err(NULL, e, "x"), -1);
    config_free(&cfg);
}

static void test_config_line_without_equals_names_line_7(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "path", "a = 1\n#\n\nb = 2\n\n  # c\nlisten 127.0.0.1\n", &err), -1);
    assert_string_equal(err.msg, "path:7: expected 'key = value'");
    assert_int_equal(config_load_string(&cfg, "path", "= 1\n", &err), -1);
    assert_non_null(strstr(err.msg, "path:1: missing key"));
}

static void test_config_missing_file_names_the_path(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_file(&cfg, "/nonexistent/etrnd.conf", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/etrnd.conf"));
    assert_non_null(strstr(err.msg, "No such file"));
}

static void test_config_next_iterates_prefix_in_file_order(void **state)
{
    (void)state;
    struct config cfg;
    struct etrn_err err = {{0}};
    assert_int_equal(config_load_string(&cfg, "r", "route.b = 1\nother = 2\nroute.a = 3\nrouteX = 4\n", &err), 0);
    size_t pos = 0;
    const struct config_entry *e = config_next(&cfg, "route.", &pos);
    assert_string_equal(e->key, "route.b");
    e = config_next(&cfg, "route.", &pos);
    assert_string_equal(e->key, "route.a");
    assert_null(config_next(&cfg, "route.", &pos));
    assert_null(config_next(&cfg, "route.", &pos));
    assert_int_equal(config_check_unused(&cfg, &err), -1);
    assert_string_equal(err.msg, "r:2: unknown setting 'other'");
    config_free(&cfg);
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
        cmocka_unit_test(test_config_durations_all_units),
        cmocka_unit_test(test_config_sizes_are_1024_based),
        cmocka_unit_test(test_config_uint_and_bool),
        cmocka_unit_test(test_config_split_list_skips_empty_items),
        cmocka_unit_test(test_config_get_marks_earlier_duplicates_used),
        cmocka_unit_test(test_config_continuation_crlf_and_empty_value),
        cmocka_unit_test(test_config_err_names_file_line_and_key),
        cmocka_unit_test(test_config_line_without_equals_names_line_7),
        cmocka_unit_test(test_config_missing_file_names_the_path),
        cmocka_unit_test(test_config_next_iterates_prefix_in_file_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
