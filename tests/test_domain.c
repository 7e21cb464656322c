/* test_domain.c — domain syntax (RFC 5321 §4.1.2, RFC 1985 §5) and label-aligned matching (§5.3). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "domain.h"

static int check(const char *s, unsigned flags, struct etrn_err *err)
{
    return domain_check(s, strlen(s), flags, err);
}

static void test_domain_valid_fqdns_pass(void **state)
{
    (void)state;
    struct etrn_err err;
    assert_int_equal(check("node.test", DOMAIN_REQUIRE_FQDN, &err), 0);
    assert_int_equal(check("Node.Test.", DOMAIN_REQUIRE_FQDN, &err), 0);
    assert_int_equal(check("a-b.c0.test", DOMAIN_REQUIRE_FQDN, &err), 0);
}

static void test_domain_unqualified_name_refused_with_reason(void **state)
{
    (void)state;
    struct etrn_err err;
    assert_int_equal(check("localname", DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_non_null(strstr(err.msg, "not fully qualified"));
    assert_int_equal(check("localname", 0, &err), 0);
}

static void test_domain_underscore_and_bad_hyphens_refused(void **state)
{
    (void)state;
    struct etrn_err err;
    assert_int_equal(check("a_b.test", DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_non_null(strstr(err.msg, "invalid character '_'"));
    assert_int_equal(check("-bad-.test", DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_int_equal(check("a..test", 0, &err), -1);
    assert_non_null(strstr(err.msg, "empty label"));
    assert_int_equal(check("[192.0.2.1]", 0, &err), -1);
}

static void test_domain_length_limits(void **state)
{
    (void)state;
    struct etrn_err err;
    char label[70];
    memset(label, 'a', 64);
    memcpy(label + 64, ".test", 6);
    assert_int_equal(check(label, 0, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 63"));
    char name[300];
    size_t p = 0;
    while (p + 10 < 260) {
        memcpy(name + p, "abcdefghi.", 10);
        p += 10;
    }
    memcpy(name + p, "test", 5);
    assert_int_equal(check(name, 0, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 253"));
}

static void test_domain_equal_ignores_case_and_trailing_dot(void **state)
{
    (void)state;
    assert_true(domain_equal("Node.TEST", "node.test."));
    assert_false(domain_equal("node.test", "node.tes"));
}

static void test_domain_within_is_label_aligned(void **state)
{
    (void)state;
    assert_true(domain_is_within("foo.test", "foo.test"));
    assert_true(domain_is_within("a.foo.test", "FOO.test"));
    assert_true(domain_is_within("a.b.c.d.e.f.g.foo.test", "foo.test"));
    assert_false(domain_is_within("xfoo.test", "foo.test"));
    assert_false(domain_is_within("test", "foo.test"));
}

static void test_domain_normalize_and_address_domain(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(domain_normalize("A.Test.", out, sizeof out), 0);
    assert_string_equal(out, "a.test");
    assert_int_equal(domain_normalize("much-too-long.example", out, sizeof out), -1);
    assert_string_equal(domain_of_address("u@x@Node.Test"), "Node.Test");
    assert_null(domain_of_address("postmaster"));
    assert_int_equal(domain_label_count("a.b.c"), 3);
}

static void test_domain_error_messages_name_the_problem(void **state)
{
    (void)state;
    struct etrn_err err;
    assert_int_equal(check("a_b.test", DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_string_equal(err.msg, "'a_b.test': label 'a_b' has invalid character '_'");
    assert_int_equal(check("localname", DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_string_equal(err.msg, "'localname' is not fully qualified");
    assert_int_equal(check("localname.", DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_int_equal(check("a..test", 0, &err), -1);
    assert_string_equal(err.msg, "'a..test': empty label");
    assert_int_equal(check(".a.test", 0, &err), -1);
    assert_non_null(strstr(err.msg, "empty label"));
    assert_int_equal(check("a.test..", 0, &err), -1);
    assert_non_null(strstr(err.msg, "empty label"));
    assert_int_equal(check("", 0, &err), -1);
    assert_int_equal(check(".", 0, &err), -1);
    assert_int_equal(check("-a.test", 0, &err), -1);
    assert_string_equal(err.msg, "'-a.test': label '-a' starts or ends with '-'");
    assert_int_equal(check("a-.test", 0, &err), -1);
    assert_int_equal(check("x.te st", 0, &err), -1);
    assert_string_equal(err.msg, "'x.te st': label 'te st' has invalid character ' '");
    assert_int_equal(domain_check("a\0b.test", 8, 0, &err), -1);
    assert_non_null(strstr(err.msg, "invalid byte 0x00"));
    assert_int_equal(check("caf\xc3\xa9.test", 0, &err), -1);
    assert_non_null(strstr(err.msg, "invalid byte 0xc3"));
}

static void test_domain_underscore_allowed_only_on_request(void **state)
{
    (void)state;
    struct etrn_err err;
    assert_int_equal(check("_dmarc.a.test", DOMAIN_ALLOW_UNDERSCORE | DOMAIN_REQUIRE_FQDN, &err), 0);
    assert_int_equal(check("_dmarc.a.test", DOMAIN_REQUIRE_FQDN, &err), -1);
}

static void test_domain_length_boundaries_63_and_253(void **state)
{
    (void)state;
    struct etrn_err err;
    char name[300];
    /* a label of exactly 63 octets is fine, 64 is not */
    memset(name, 'a', 63);
    memcpy(name + 63, ".test", 6);
    assert_int_equal(check(name, DOMAIN_REQUIRE_FQDN, &err), 0);
    memset(name, 'a', 64);
    memcpy(name + 64, ".test", 6);
    assert_int_equal(check(name, DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_non_null(strstr(err.msg, "label longer than 63 octets"));
    /* 4 labels of 63 + 3 dots = 255 octets; build exactly 253 = 63+1+63+1+63+1+61 */
    size_t p = 0;
    for (int i = 0; i < 3; i++) {
        memset(name + p, 'b', 63);
        p += 63;
        name[p++] = '.';
    }
    memset(name + p, 'c', 61);
    p += 61;
    name[p] = '\0';
    assert_int_equal(strlen(name), 253);
    assert_int_equal(check(name, DOMAIN_REQUIRE_FQDN, &err), 0);
    name[p] = '.';                /* with its trailing dot: still 253 */
    name[p + 1] = '\0';
    assert_int_equal(check(name, DOMAIN_REQUIRE_FQDN, &err), 0);
    name[p] = 'c';                /* 254 */
    assert_int_equal(check(name, DOMAIN_REQUIRE_FQDN, &err), -1);
    assert_non_null(strstr(err.msg, "name longer than 253 octets"));
    assert_true(strlen(err.msg) < sizeof err.msg - 1);   /* quoted name is shortened */
}

static void test_domain_within_and_equal_edge_cases(void **state)
{
    (void)state;
    assert_true(domain_is_within("A.Foo.Test.", "foo.test"));
    assert_true(domain_is_within("a.foo.test", "foo.test."));
    assert_false(domain_is_within("foo.test", "a.foo.test"));
    assert_false(domain_is_within("foo.test", ""));
    assert_false(domain_is_within("afoo.test", "foo.test"));
    assert_true(domain_equal("x.test", "X.TEST"));
    assert_false(domain_equal("x.test.", "x.test.."));
    assert_false(domain_equal("x.test", "y.test"));
}

static void test_domain_of_address_strips_angle_bracket(void **state)
{
    (void)state;
    assert_string_equal(domain_of_address("<user@Node.Test>"), "Node.Test");
    assert_string_equal(domain_of_address("user@node.test"), "node.test");
    const char *addr = "a@b.test";
    assert_ptr_equal(domain_of_address(addr), addr + 2);
    assert_string_equal(domain_of_address("user@"), "");
    assert_string_equal(domain_of_address("<user@>"), "");
    assert_null(domain_of_address("<>"));
    char big[400];
    memset(big, 'd', sizeof big);
    big[0] = 'u';
    big[1] = '@';
    big[sizeof big - 2] = '>';
    big[sizeof big - 1] = '\0';
    assert_null(domain_of_address(big));
}

static void test_domain_label_count_and_normalize(void **state)
{
    (void)state;
    assert_int_equal(domain_label_count(""), 0);
    assert_int_equal(domain_label_count("test"), 1);
    assert_int_equal(domain_label_count("a.b.c."), 3);
    char out[10];
    assert_int_equal(domain_normalize("ABC.TEST.", out, sizeof out), 0);
    assert_string_equal(out, "abc.test");
    assert_int_equal(domain_normalize("abcd.test", out, sizeof out), 0);
    assert_int_equal(domain_normalize("abcde.test", out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_valid_fqdns_pass),
        cmocka_unit_test(test_domain_unqualified_name_refused_with_reason),
        cmocka_unit_test(test_domain_underscore_and_bad_hyphens_refused),
        cmocka_unit_test(test_domain_length_limits),
        cmocka_unit_test(test_domain_equal_ignores_case_and_trailing_dot),
        cmocka_unit_test(test_domain_within_is_label_aligned),
        cmocka_unit_test(test_domain_normalize_and_address_domain),
        cmocka_unit_test(test_domain_error_messages_name_the_problem),
        cmocka_unit_test(test_domain_underscore_allowed_only_on_request),
        cmocka_unit_test(test_domain_length_boundaries_63_and_253),
        cmocka_unit_test(test_domain_within_and_equal_edge_cases),
        cmocka_unit_test(test_domain_of_address_strips_angle_bracket),
        cmocka_unit_test(test_domain_label_count_and_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
