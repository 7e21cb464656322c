/* test_domain.c — domain syntax (RFC 5321 §4.1.2, RFC 1985 §5) and label-aligned matching (§5.3). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "domain.h"
#include "netaddr.h"

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

static void test_netmask_contains_v4_v6_and_mapped(void **state)
{
    (void)state;
    struct etrn_err err;
    struct netmask m;
    struct netaddr a;
    assert_int_equal(netmask_parse("127.0.0.0/8", &m, &err), 0);
    assert_int_equal(netaddr_parse("127.9.9.9:25", 25, &a, &err), 0);
    assert_true(netmask_contains(&m, (struct sockaddr *)&a.ss));
    assert_int_equal(netaddr_parse("[::ffff:127.0.0.2]:25", 25, &a, &err), 0);
    assert_true(netmask_contains(&m, (struct sockaddr *)&a.ss));
    assert_int_equal(netaddr_parse("10.0.0.1", 25, &a, &err), 0);
    assert_false(netmask_contains(&m, (struct sockaddr *)&a.ss));
    assert_int_equal(netmask_parse("127.0.0.0/33", &m, &err), -1);
    char text[NETADDR_TEXT_MAX];
    assert_int_equal(netaddr_parse("[::1]:2525", -1, &a, &err), 0);
    assert_int_equal(netaddr_format((struct sockaddr *)&a.ss, text, sizeof text), 0);
    assert_string_equal(text, "[::1]:2525");
    assert_int_equal(netaddr_parse("127.0.0.1", -1, &a, &err), -1);
    assert_non_null(strstr(err.msg, "port is required"));
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
        cmocka_unit_test(test_netmask_contains_v4_v6_and_mapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
