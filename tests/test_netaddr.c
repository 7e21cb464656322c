/* test_netaddr.c — numeric addresses with ports and CIDR masks, IPv4 and IPv6. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "netaddr.h"

#define SA(a) ((const struct sockaddr *)&(a).ss)

static void format_of(const char *text, int default_port, const char *expect)
{
    struct netaddr a;
    struct etrn_err err = {{0}};
    char out[NETADDR_TEXT_MAX];
    assert_int_equal(netaddr_parse(text, default_port, &a, &err), 0);
    assert_int_equal(netaddr_format(SA(a), out, sizeof out), 0);
    assert_string_equal(out, expect);
}

static void test_netaddr_parses_v4_and_v6_with_and_without_port(void **state)
{
    (void)state;
    format_of("127.0.0.1:2525", -1, "127.0.0.1:2525");
    format_of("127.0.0.1", 25, "127.0.0.1:25");
    format_of("[::1]:25", -1, "[::1]:25");
    format_of("[::1]", 2525, "[::1]:2525");
    format_of("::1", 25, "[::1]:25");
    format_of("[2001:DB8::1]:0", -1, "[2001:db8::1]:0");
    format_of("127.0.0.2:65535", -1, "127.0.0.2:65535");
}

static void test_netaddr_family_port_and_length(void **state)
{
    (void)state;
    struct netaddr a;
    struct etrn_err err = {{0}};
    assert_int_equal(netaddr_parse("127.0.0.3:2526", -1, &a, &err), 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_int_equal(a.len, sizeof(struct sockaddr_in));
    assert_int_equal(netaddr_port(SA(a)), 2526);
    assert_int_equal(netaddr_parse("[::1]:53", -1, &a, &err), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(a.len, sizeof(struct sockaddr_in6));
    assert_int_equal(netaddr_port(SA(a)), 53);
    char host[NETADDR_TEXT_MAX];
    assert_int_equal(netaddr_format_host(SA(a), host, sizeof host), 0);
    assert_string_equal(host, "::1");
}

static void test_netaddr_refuses_names_and_bad_ports(void **state)
{
    (void)state;
    struct netaddr a;
    struct etrn_err err = {{0}};
    static const char *const bad[] = {
        "localhost:25", "example.test:25", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:+25", "127.0.0.1: 25", "127.0.0.1:25x", "[::1", "[::1]x", "[::1]:", ":25",
        "", "256.0.0.1:25", "[127.0.0.1:25",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        assert_int_equal(netaddr_parse(bad[i], 25, &a, &err), -1);
        assert_non_null(strchr(err.msg, '\''));   /* the message quotes the input */
    }
    assert_int_equal(netaddr_parse("127.0.0.1", -1, &a, &err), -1);
    assert_string_equal(err.msg, "'127.0.0.1': a port is required (address:port)");
    assert_int_equal(netaddr_parse("127.0.0.1", -1, &a, NULL), -1);
}

static void test_netaddr_format_refuses_small_buffers(void **state)
{
    (void)state;
    struct netaddr a;
    struct etrn_err err = {{0}};
    char out[8];
    assert_int_equal(netaddr_parse("127.0.0.1:2525", -1, &a, &err), 0);
    assert_int_equal(netaddr_format(SA(a), out, sizeof out), -1);
    assert_int_equal(netaddr_format_host(SA(a), out, 4), -1);
}

static void test_netaddr_equal_host_ignores_port_and_v4_mapping(void **state)
{
    (void)state;
    struct netaddr a, b, c;
    struct etrn_err err = {{0}};
    assert_int_equal(netaddr_parse("127.0.0.2:25", -1, &a, &err), 0);
    assert_int_equal(netaddr_parse("127.0.0.2:2525", -1, &b, &err), 0);
    assert_int_equal(netaddr_parse("[::ffff:127.0.0.2]:1", -1, &c, &err), 0);
    assert_true(netaddr_equal_host(SA(a), SA(b)));
    assert_true(netaddr_equal_host(SA(a), SA(c)));
    assert_int_equal(netaddr_parse("127.0.0.3:25", -1, &b, &err), 0);
    assert_false(netaddr_equal_host(SA(a), SA(b)));
    assert_int_equal(netaddr_parse("[::1]:25", -1, &b, &err), 0);
    assert_false(netaddr_equal_host(SA(a), SA(b)));
}

static int mask_contains(const char *mask, const char *addr)
{
    struct netmask m;
    struct netaddr a;
    struct etrn_err err = {{0}};
    assert_int_equal(netmask_parse(mask, &m, &err), 0);
    assert_int_equal(netaddr_parse(addr, 25, &a, &err), 0);
    return netmask_contains(&m, SA(a));
}

static void test_netmask_v4_prefixes(void **state)
{
    (void)state;
    assert_true(mask_contains("127.0.0.0/8", "127.9.9.9"));
    assert_false(mask_contains("127.0.0.0/8", "128.0.0.1"));
    assert_true(mask_contains("192.0.2.128/25", "192.0.2.200"));
    assert_false(mask_contains("192.0.2.128/25", "192.0.2.127"));
    assert_true(mask_contains("192.0.2.1", "192.0.2.1"));
    assert_false(mask_contains("192.0.2.1", "192.0.2.2"));
    assert_true(mask_contains("192.0.2.1/32", "192.0.2.1"));
    assert_true(mask_contains("0.0.0.0/0", "203.0.113.9"));
    /* host bits set in the mask's address do not matter */
    assert_true(mask_contains("10.1.2.3/16", "10.1.200.1"));
}

static void test_netmask_v6_and_mapped_clients(void **state)
{
    (void)state;
    assert_true(mask_contains("::1/128", "::1"));
    assert_true(mask_contains("::1", "::1"));
    assert_false(mask_contains("::1", "::2"));
    assert_true(mask_contains("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(mask_contains("2001:db8::/32", "2001:db9::1"));
    assert_true(mask_contains("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(mask_contains("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(mask_contains("[2001:db8::]/48", "2001:db8::5"));
    /* a v4 client seen through a v6 socket is matched by v4 masks */
    assert_true(mask_contains("127.0.0.0/8", "::ffff:127.0.0.2"));
    assert_false(mask_contains("127.0.0.0/8", "::ffff:10.0.0.1"));
    /* v4-mapped masks match v4 clients, counting the 96 mapping bits */
    assert_true(mask_contains("::ffff:10.0.0.0/104", "10.200.0.1"));
    assert_false(mask_contains("::ffff:10.0.0.0/104", "11.0.0.1"));
    /* the families do not mix otherwise */
    assert_false(mask_contains("::/0", "127.0.0.1"));
    assert_false(mask_contains("0.0.0.0/0", "::1"));
}

static void test_netmask_refuses_bad_text(void **state)
{
    (void)state;
    struct netmask m;
    struct etrn_err err = {{0}};
    static const char *const bad[] = {
        "127.0.0.0/33", "::/129", "127.0.0.0/", "127.0.0.0/-1", "127.0.0.0/8x", "/8",
        "", "localhost", "127.0.0.1:25", "127.0.0.0/ 8",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(netmask_parse(bad[i], &m, &err), -1);
    assert_int_equal(netmask_parse("127.0.0.0/33", &m, &err), -1);
    assert_string_equal(err.msg, "'127.0.0.0/33': bad prefix length");
}

static void test_netmask_list_parses_and_matches_any(void **state)
{
    (void)state;
    struct netmask *v = NULL;
    size_t n = 0;
    struct etrn_err err = {{0}};
    assert_int_equal(netmask_parse_list(" 127.0.0.0/8,  192.0.2.1 ,,::1/128\t10.0.0.0/8 ", &v, &n, &err), 0);
    assert_int_equal(n, 4);
    struct netaddr a;
    assert_int_equal(netaddr_parse("192.0.2.1:1", -1, &a, &err), 0);
    assert_true(netmask_list_contains(v, n, SA(a)));
    assert_int_equal(netaddr_parse("192.0.2.2:1", -1, &a, &err), 0);
    assert_false(netmask_list_contains(v, n, SA(a)));
    assert_int_equal(netaddr_parse("[::1]:1", -1, &a, &err), 0);
    assert_true(netmask_list_contains(v, n, SA(a)));
    free(v);
    assert_int_equal(netmask_parse_list("127.0.0.0/8, nonsense", &v, &n, &err), -1);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "'nonsense'"));
    assert_int_equal(netmask_parse_list("", &v, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_false(netmask_list_contains(v, n, SA(a)));
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_netaddr_parses_v4_and_v6_with_and_without_port),
        cmocka_unit_test(test_netaddr_family_port_and_length),
        cmocka_unit_test(test_netaddr_refuses_names_and_bad_ports),
        cmocka_unit_test(test_netaddr_format_refuses_small_buffers),
        cmocka_unit_test(test_netaddr_equal_host_ignores_port_and_v4_mapping),
        cmocka_unit_test(test_netmask_v4_prefixes),
        cmocka_unit_test(test_netmask_v6_and_mapped_clients),
        cmocka_unit_test(test_netmask_refuses_bad_text),
        cmocka_unit_test(test_netmask_list_parses_and_matches_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
