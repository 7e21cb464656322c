/* test_policy.c — who may ETRN which node, and how often (server/policy.c).
 *
 *   build/tests/test_policy
 *
 * etrn_allow by network and by AUTH user, etrn_require_auth, held nodes (etrn_domains,
 * routes, queues, '@' subtrees), the order of refusals (a refused client learns nothing
 * about which nodes are held), the fixed-window rate limit and its bounded client table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "policy.h"
#include "strbuf.h"

static char test_dir[64];
static char test_file[128];

static int setup_dir(void **state)
{
    (void)state;
    str_copy(test_dir, sizeof test_dir, "/tmp/test_policy.XXXXXX");
    if (mkdtemp(test_dir) == NULL)
        return -1;
    return str_format(test_file, sizeof test_file, "%s/p.conf", test_dir) < 0 ? -1 : 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    unlink(test_file);
    rmdir(test_dir);
    return 0;
}

static struct etrnd_config *config(const char *extra)
{
    FILE *f = fopen(test_file, "w");
    assert_non_null(f);
    fprintf(f, "listen = 127.0.0.1:0\nspool = /tmp/etrnd-test-spool\n%s\n", extra);
    assert_int_equal(fclose(f), 0);
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&c, test_file, &err) < 0)
        fail_msg("%s", err.msg);
    return c;
}

static struct sockaddr_storage addr_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(40000);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(40000);
    }
    return ss;
}

/* The outcome of "ETRN arg" from ip (as user, or NULL) under cfg. */
static enum etrn_outcome check(const struct etrnd_config *cfg, const char *arg, const char *ip,
                               const char *user)
{
    struct etrn_request rq;
    struct etrn_err why;
    if (etrn_parse(arg, strlen(arg), 0, &rq, &why) != ETRN_SYNTAX_OK)
        fail_msg("'%s': %s", arg, why.msg);
    struct sockaddr_storage ss = addr_of(ip);
    return policy_etrn_check(cfg, &rq, (struct sockaddr *)&ss, user, 0);
}

#define STARTED ETRN_OUTCOME_STARTED

/* --- what is held ------------------------------------------------------------------------ */

static void test_policy_without_rules_any_client_may_etrn_held_nodes(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\nroute.routed.test = 127.0.0.5:25");
    assert_int_equal(check(c, "node.test", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "NODE.test", "192.0.2.77", NULL), STARTED);
    assert_int_equal(check(c, "a.node.test", "::1", NULL), STARTED);       /* subdomain of a held one */
    assert_int_equal(check(c, "routed.test", "127.0.0.1", NULL), STARTED); /* held by its route */
    assert_int_equal(check(c, "x.routed.test", "127.0.0.1", NULL), ETRN_OUTCOME_NOT_HELD);
    assert_int_equal(check(c, "other.test", "127.0.0.1", NULL), ETRN_OUTCOME_NOT_HELD);
    assert_int_equal(check(c, "xnode.test", "127.0.0.1", NULL), ETRN_OUTCOME_NOT_HELD);
    etrnd_config_free(c);
}

static void test_policy_at_covers_held_subtree_in_both_directions(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = a.foo.test, bar.test");
    /* something held lies within foo.test */
    assert_int_equal(check(c, "@foo.test", "127.0.0.1", NULL), STARTED);
    /* the node lies within something held */
    assert_int_equal(check(c, "@x.bar.test", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "@baz.test", "127.0.0.1", NULL), ETRN_OUTCOME_NOT_HELD);
    /* plain foo.test is not held: only its subdomain a.foo.test is */
    assert_int_equal(check(c, "foo.test", "127.0.0.1", NULL), ETRN_OUTCOME_NOT_HELD);
    etrnd_config_free(c);
}

static void test_policy_at_with_one_label_or_root_is_too_broad(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test");
    assert_int_equal(check(c, "@test", "127.0.0.1", NULL), ETRN_OUTCOME_TOO_BROAD);
    assert_int_equal(check(c, "@.", "127.0.0.1", NULL), ETRN_OUTCOME_TOO_BROAD);
    etrnd_config_free(c);
}

static void test_policy_hash_needs_a_configured_queue(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\nqueue.uucp = node.test");
    assert_int_equal(check(c, "#uucp", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "#UUCP", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "#nightly", "127.0.0.1", NULL), ETRN_OUTCOME_QUEUE_UNKNOWN);
    etrnd_config_free(c);
}

static void test_policy_node_held_case_sensitive_only_under_defect(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\nroute.r.test = 127.0.0.5:25");
    assert_int_equal(policy_node_held(c, "Node.Test", 0), 1);
    assert_int_equal(policy_node_held(c, "R.test", 0), 1);
    assert_int_equal(policy_node_held(c, "Node.Test", POLICY_CASE_SENSITIVE), 0);
    assert_int_equal(policy_node_held(c, "R.test", POLICY_CASE_SENSITIVE), 0);
    assert_int_equal(policy_node_held(c, "a.node.test", POLICY_CASE_SENSITIVE), 1);
    assert_int_equal(policy_node_held(c, "anode.test", POLICY_CASE_SENSITIVE), 0);
    etrnd_config_free(c);
}

/* --- etrn_allow -------------------------------------------------------------------------- */

static void test_policy_rules_admit_clients_by_network(void **state)
{
    (void)state;
    struct etrnd_config *c = config(
        "etrn_domains = node.test, other.test\n"
        "etrn_allow = @node.test : 127.0.0.0/30 2001:db8::/32\n"
        "etrn_allow = other.test : 192.0.2.9");
    assert_int_equal(check(c, "node.test", "127.0.0.3", NULL), STARTED);
    assert_int_equal(check(c, "@node.test", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "a.node.test", "2001:db8::5", NULL), STARTED);
    assert_int_equal(check(c, "node.test", "127.0.0.4", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "node.test", "192.0.2.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "other.test", "192.0.2.9", NULL), STARTED);
    /* a plain pattern covers only that node, plain */
    assert_int_equal(check(c, "a.other.test", "192.0.2.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "@other.test", "192.0.2.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    /* a v4-mapped IPv6 peer counts as its IPv4 address */
    assert_int_equal(check(c, "node.test", "::ffff:127.0.0.2", NULL), STARTED);
    etrnd_config_free(c);
}

static void test_policy_rules_admit_clients_by_auth_user(void **state)
{
    (void)state;
    struct etrnd_config *c = config(
        "etrn_domains = node.test\n"
        "etrn_allow = node.test : user:alice");
    assert_int_equal(check(c, "node.test", "192.0.2.1", "alice"), STARTED);
    assert_int_equal(check(c, "node.test", "192.0.2.1", "Alice"), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "node.test", "192.0.2.1", "bob"), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "node.test", "192.0.2.1", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    etrnd_config_free(c);
}

static void test_policy_star_rule_covers_every_held_node_but_holds_nothing_new(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\nqueue.q = node.test\n"
                                    "etrn_allow = * : 127.0.0.1");
    assert_int_equal(check(c, "node.test", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "@node.test", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "#q", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "elsewhere.test", "127.0.0.1", NULL), ETRN_OUTCOME_NOT_HELD);
    etrnd_config_free(c);
}

static void test_policy_queue_rule_covers_only_its_queue(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\nqueue.uucp = node.test\n"
                                    "etrn_allow = queue:uucp : 127.0.0.1");
    assert_int_equal(check(c, "#uucp", "127.0.0.1", NULL), STARTED);
    assert_int_equal(check(c, "node.test", "127.0.0.1", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "#uucp", "127.0.0.2", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    etrnd_config_free(c);
}

/* --- refusal order ------------------------------------------------------------------------- */

static void test_policy_refused_client_learns_nothing_about_held_nodes(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\nqueue.uucp = node.test\n"
                                    "etrn_allow = @node.test : 127.0.0.1");
    /* from a client no rule admits, held and unheld nodes, known and unknown queues all
     * get the same answer */
    assert_int_equal(check(c, "node.test", "127.0.0.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "nowhere.test", "127.0.0.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "#uucp", "127.0.0.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    assert_int_equal(check(c, "#unknown", "127.0.0.9", NULL), ETRN_OUTCOME_CLIENT_REFUSED);
    /* the admitted client learns what is held */
    assert_int_equal(check(c, "a.node.test", "127.0.0.1", NULL), STARTED);
    etrnd_config_free(c);
}

static void test_policy_auth_required_comes_before_rules_and_holdings(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\netrn_require_auth = yes\n"
                                    "etrn_allow = node.test : user:alice");
    assert_int_equal(check(c, "node.test", "127.0.0.1", NULL), ETRN_OUTCOME_AUTH_REQUIRED);
    assert_int_equal(check(c, "nowhere.test", "127.0.0.1", NULL), ETRN_OUTCOME_AUTH_REQUIRED);
    assert_int_equal(check(c, "node.test", "127.0.0.1", "alice"), STARTED);
    assert_int_equal(check(c, "node.test", "127.0.0.1", "mallory"), ETRN_OUTCOME_CLIENT_REFUSED);
    /* too broad is said first: it depends on nothing secret */
    assert_int_equal(check(c, "@test", "127.0.0.1", NULL), ETRN_OUTCOME_TOO_BROAD);
    etrnd_config_free(c);
}

static void test_policy_require_auth_without_rules_admits_any_user(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\netrn_require_auth = yes");
    assert_int_equal(check(c, "node.test", "127.0.0.1", "anyone"), STARTED);
    assert_int_equal(check(c, "node.test", "127.0.0.1", NULL), ETRN_OUTCOME_AUTH_REQUIRED);
    etrnd_config_free(c);
}

/* --- the rate limit -------------------------------------------------------------------------- */

static void test_policy_rate_limit_counts_per_fixed_window(void **state)
{
    (void)state;
    struct policy *p;
    assert_int_equal(policy_new(&p, 16), 0);
    struct sockaddr_storage a = addr_of("127.0.0.1");
    struct sockaddr *sa = (struct sockaddr *)&a;
    for (int i = 0; i < 3; i++)
        assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 5000 + (unsigned)i), 0);
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 5500), 1);
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 5999), 1);
    /* a new window starts window_ms after the first one began */
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 6000), 0);
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 6001), 0);
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 6002), 0);
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 6003), 1);
    /* a clock that goes backwards starts a window instead of wrapping */
    assert_int_equal(policy_rate_exceeded(p, sa, 3, 1000, 100), 0);
    assert_int_equal(policy_rate_clients(p), 1);
    policy_free(p);
}

static void test_policy_rate_limit_is_per_client_host(void **state)
{
    (void)state;
    struct policy *p;
    assert_int_equal(policy_new(&p, 16), 0);
    struct sockaddr_storage a = addr_of("127.0.0.1"), b = addr_of("127.0.0.2");
    struct sockaddr_storage mapped = addr_of("::ffff:127.0.0.1");
    struct sockaddr_in *a_other_port = (struct sockaddr_in *)&a;
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&a, 1, 60000, 0), 0);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&b, 1, 60000, 0), 0);
    /* the same host on another port, or v4-mapped, is the same client */
    a_other_port->sin_port = htons(40001);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&a, 1, 60000, 1), 1);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&mapped, 1, 60000, 1), 1);
    assert_int_equal(policy_rate_clients(p), 2);
    policy_free(p);
}

static void test_policy_rate_limit_zero_never_limits(void **state)
{
    (void)state;
    struct policy *p;
    assert_int_equal(policy_new(&p, 4), 0);
    struct sockaddr_storage a = addr_of("127.0.0.1");
    for (unsigned i = 0; i < 1000; i++)
        assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&a, 0, 60000, i), 0);
    assert_int_equal(policy_rate_clients(p), 0);   /* nothing remembered either */
    policy_free(p);
}

static void test_policy_client_table_is_bounded_and_forgets_least_recent(void **state)
{
    (void)state;
    struct policy *p;
    assert_int_equal(policy_new(&p, 4), 0);
    char ip[32];
    /* 127.0.0.1 is seen first and uses up its allowance */
    struct sockaddr_storage first = addr_of("127.0.0.1");
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&first, 1, 60000, 0), 0);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&first, 1, 60000, 1), 1);
    /* a flood of 1000 other addresses */
    for (unsigned i = 0; i < 1000; i++) {
        assert_true(str_format(ip, sizeof ip, "10.0.%u.%u", i / 250, i % 250 + 1) >= 0);
        struct sockaddr_storage s = addr_of(ip);
        assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&s, 1, 60000, 2 + i), 0);
        assert_true(policy_rate_clients(p) <= 4);
    }
    assert_int_equal(policy_rate_clients(p), 4);
    /* 127.0.0.1 was forgotten, so it starts afresh (bounded memory has this price) */
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&first, 1, 60000, 2000), 0);
    /* the most recent address is still remembered and still limited */
    struct sockaddr_storage last = addr_of(ip);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&last, 1, 60000, 2001), 1);
    policy_free(p);
}

static void test_policy_etrn_applies_rate_limit_before_anything_else(void **state)
{
    (void)state;
    struct etrnd_config *c = config("etrn_domains = node.test\netrn_rate_limit = 2\n"
                                    "etrn_rate_window = 10s");
    struct policy *p;
    assert_int_equal(policy_new(&p, POLICY_CLIENTS_DEFAULT), 0);
    struct etrn_request held, unheld;
    struct etrn_err why;
    assert_int_equal(etrn_parse("node.test", 9, 0, &held, &why), ETRN_SYNTAX_OK);
    assert_int_equal(etrn_parse("x.example", 9, 0, &unheld, &why), ETRN_SYNTAX_OK);
    struct sockaddr_storage a = addr_of("127.0.0.1");
    struct sockaddr *sa = (struct sockaddr *)&a;
    assert_int_equal(policy_etrn(p, c, &held, sa, NULL, 1000, 0), STARTED);
    assert_int_equal(policy_etrn(p, c, &unheld, sa, NULL, 1001, 0), ETRN_OUTCOME_NOT_HELD);
    /* refused requests count too: the third of any kind is limited */
    assert_int_equal(policy_etrn(p, c, &held, sa, NULL, 1002, 0), ETRN_OUTCOME_RATE_LIMITED);
    assert_int_equal(policy_etrn(p, c, &unheld, sa, NULL, 1003, 0), ETRN_OUTCOME_RATE_LIMITED);
    assert_int_equal(policy_etrn(p, c, &held, sa, NULL, 11000, 0), STARTED);
    /* without a table there is no limit */
    for (int i = 0; i < 5; i++)
        assert_int_equal(policy_etrn(NULL, c, &held, sa, NULL, 11001, 0), STARTED);
    policy_free(p);
    etrnd_config_free(c);
}

static void test_policy_new_with_zero_clients_still_works(void **state)
{
    (void)state;
    struct policy *p;
    assert_int_equal(policy_new(&p, 0), 0);
    struct sockaddr_storage a = addr_of("127.0.0.1"), b = addr_of("127.0.0.2");
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&a, 1, 1000, 0), 0);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&a, 1, 1000, 1), 1);
    assert_int_equal(policy_rate_exceeded(p, (struct sockaddr *)&b, 1, 1000, 2), 0);
    assert_int_equal(policy_rate_clients(p), 1);
    policy_free(p);
    policy_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_without_rules_any_client_may_etrn_held_nodes),
        cmocka_unit_test(test_policy_at_covers_held_subtree_in_both_directions),
        cmocka_unit_test(test_policy_at_with_one_label_or_root_is_too_broad),
        cmocka_unit_test(test_policy_hash_needs_a_configured_queue),
        cmocka_unit_test(test_policy_node_held_case_sensitive_only_under_defect),
        cmocka_unit_test(test_policy_rules_admit_clients_by_network),
        cmocka_unit_test(test_policy_rules_admit_clients_by_auth_user),
        cmocka_unit_test(test_policy_star_rule_covers_every_held_node_but_holds_nothing_new),
        cmocka_unit_test(test_policy_queue_rule_covers_only_its_queue),
        cmocka_unit_test(test_policy_refused_client_learns_nothing_about_held_nodes),
        cmocka_unit_test(test_policy_auth_required_comes_before_rules_and_holdings),
        cmocka_unit_test(test_policy_require_auth_without_rules_admits_any_user),
        cmocka_unit_test(test_policy_rate_limit_counts_per_fixed_window),
        cmocka_unit_test(test_policy_rate_limit_is_per_client_host),
        cmocka_unit_test(test_policy_rate_limit_zero_never_limits),
        cmocka_unit_test(test_policy_client_table_is_bounded_and_forgets_least_recent),
        cmocka_unit_test(test_policy_etrn_applies_rate_limit_before_anything_else),
        cmocka_unit_test(test_policy_new_with_zero_clients_still_works),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
