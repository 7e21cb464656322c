/* test_etrn_cmd.c — the ETRN argument parser and reply chooser (server/etrn_cmd.c).
 *
 *   build/tests/test_etrn_cmd
 *
 * Syntax per RFC 1985 §5 (node, @node, #queue; case folding, trailing dot, address
 * literal, over-long, NUL, blanks, '@' alone, '@.'), then every outcome's code, enhanced
 * code (same class as the code, RFC 2034) and text, the 253 count, 251, the plain style
 * and the test-only defect flags. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "etrn_cmd.h"
#include "etrnd_config.h"

static enum etrn_syntax parse(const char *s, struct etrn_request *rq, struct etrn_err *why)
{
    return etrn_parse(s, strlen(s), 0, rq, why);
}

static void assert_parses(const char *arg, enum etrn_option opt, const char *node,
                          const char *display)
{
    struct etrn_request rq;
    struct etrn_err why = {{0}};
    if (parse(arg, &rq, &why) != ETRN_SYNTAX_OK)
        fail_msg("'%s' refused: %s", arg, why.msg);
    assert_int_equal(rq.option, opt);
    assert_string_equal(rq.node, node);
    assert_string_equal(rq.display, display);
}

static void assert_bad(const char *arg, size_t len, const char *want)
{
    struct etrn_request rq;
    struct etrn_err why = {{0}};
    enum etrn_syntax st = etrn_parse(arg, len, 0, &rq, &why);
    if (st != ETRN_SYNTAX_BAD || strstr(why.msg, want) == NULL)
        fail_msg("'%.*s': status %d, '%s' (want BAD with '%s')", (int)len, arg, st, why.msg, want);
}

/* --- syntax ------------------------------------------------------------------------------ */

static void test_etrn_parse_plain_node_is_lowercased_without_trailing_dot(void **state)
{
    (void)state;
    assert_parses("node.test", ETRN_OPTION_NONE, "node.test", "node.test");
    assert_parses("Node.TEST", ETRN_OPTION_NONE, "node.test", "node.test");
    assert_parses("node.test.", ETRN_OPTION_NONE, "node.test", "node.test");
    assert_parses("a-1.b2.node.test", ETRN_OPTION_NONE, "a-1.b2.node.test", "a-1.b2.node.test");
}

static void test_etrn_parse_ignores_surrounding_blanks(void **state)
{
    (void)state;
    assert_parses("  node.test\t ", ETRN_OPTION_NONE, "node.test", "node.test");
    assert_parses("\t@Foo.Test ", ETRN_OPTION_AT, "foo.test", "@foo.test");
}

static void test_etrn_parse_at_option_names_subtree(void **state)
{
    (void)state;
    assert_parses("@foo.test", ETRN_OPTION_AT, "foo.test", "@foo.test");
    assert_parses("@FOO.test.", ETRN_OPTION_AT, "foo.test", "@foo.test");
    /* a single label is valid syntax after '@'; policy refuses it as too broad */
    assert_parses("@test", ETRN_OPTION_AT, "test", "@test");
}

static void test_etrn_parse_at_dot_is_the_root_not_a_syntax_error(void **state)
{
    (void)state;
    assert_parses("@.", ETRN_OPTION_AT, "", "@.");
}

static void test_etrn_parse_hash_names_queue_as_typed(void **state)
{
    (void)state;
    assert_parses("#uucp", ETRN_OPTION_HASH, "uucp", "#uucp");
    assert_parses("#Queue-1", ETRN_OPTION_HASH, "Queue-1", "#Queue-1");
    char q[80] = "#";
    memset(q + 1, 'q', ETRN_QUEUE_NAME_MAX);
    q[1 + ETRN_QUEUE_NAME_MAX] = '\0';
    struct etrn_request rq;
    struct etrn_err why;
    assert_int_equal(parse(q, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(strlen(rq.node), ETRN_QUEUE_NAME_MAX);
    q[1 + ETRN_QUEUE_NAME_MAX] = 'q';
    q[2 + ETRN_QUEUE_NAME_MAX] = '\0';
    assert_bad(q, strlen(q), "queue name too long");
    assert_bad("#", 1, "a queue name must follow '#'");
}

static void test_etrn_parse_missing_argument_is_500_not_501(void **state)
{
    (void)state;
    struct etrn_request rq;
    struct etrn_err why;
    assert_int_equal(parse("", &rq, &why), ETRN_SYNTAX_MISSING);
    assert_int_equal(parse("   \t", &rq, &why), ETRN_SYNTAX_MISSING);
    assert_int_equal(etrn_parse(NULL, 0, 0, &rq, &why), ETRN_SYNTAX_MISSING);
}

static void test_etrn_parse_refuses_two_arguments(void **state)
{
    (void)state;
    assert_bad("node.test other.test", 20, "single node name");
    assert_bad("@ node.test", 11, "single node name");
}

static void test_etrn_parse_refuses_at_alone(void **state)
{
    (void)state;
    assert_bad("@", 1, "a domain must follow '@'");
    assert_bad(" @ ", 3, "a domain must follow '@'");
}

static void test_etrn_parse_refuses_unqualified_plain_node(void **state)
{
    (void)state;
    assert_bad("node", 4, "not fully qualified");
    assert_bad(".", 1, "not a domain name");
}

static void test_etrn_parse_refuses_address_literal(void **state)
{
    (void)state;
    assert_bad("[192.0.2.1]", 11, "address literals are not accepted");
    assert_bad("@[192.0.2.1]", 12, "address literals are not accepted");
}

static void test_etrn_parse_refuses_bad_labels(void **state)
{
    (void)state;
    assert_bad("a_b.test", 8, "invalid character '_'");
    assert_bad("-a.test", 7, "starts or ends with '-'");
    assert_bad("a..test", 7, "empty label");
    assert_bad("@.test", 6, "empty label");
    assert_bad("node@test.example", 17, "invalid character '@'");
}

static void test_etrn_parse_refuses_nul_and_control_bytes(void **state)
{
    (void)state;
    assert_bad("node\0.test", 10, "invalid character in node name");
    assert_bad("node.test\0", 10, "invalid character in node name");
    assert_bad("no\x01" "de.test", 10, "invalid character in node name");
    assert_bad("n\xc3\xb6" "de.test", 10, "invalid character in node name");
}

static void test_etrn_parse_refuses_over_long_names_without_overflow(void **state)
{
    (void)state;
    /* 300 characters, as in issue 2's "Bad input" list */
    char big[301];
    memset(big, 'a', 300);
    big[300] = '\0';
    assert_bad(big, 300, "node name too long");
    big[0] = '@';
    assert_bad(big, 300, "node name too long");
    /* a 64-octet label */
    char lbl[80];
    memset(lbl, 'b', 64);
    memcpy(lbl + 64, ".test", 6);
    assert_bad(lbl, strlen(lbl), "label longer than 63");
    /* the longest valid name: 253 octets in labels of 63 */
    char longest[260];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        size_t len = i < 3 ? 63 : 61;
        memset(longest + n, 'c', len);
        n += len;
        if (i < 3)
            longest[n++] = '.';
    }
    longest[n] = '\0';
    assert_int_equal(n, DOMAIN_MAX);
    struct etrn_request rq;
    struct etrn_err why;
    assert_int_equal(etrn_parse(longest, n, 0, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(strlen(rq.node), DOMAIN_MAX);
    /* ... with '@' it still fits display ("@" + 253) */
    char at[260];
    at[0] = '@';
    memcpy(at + 1, longest, n + 1);
    assert_int_equal(etrn_parse(at, n + 1, 0, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(strlen(rq.display), DOMAIN_MAX + 1);
    /* and with a trailing dot (254 octets on the wire) */
    longest[n] = '.';
    longest[n + 1] = '\0';
    assert_int_equal(etrn_parse(longest, n + 1, 0, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(strlen(rq.node), DOMAIN_MAX);
    /* '@', 253 octets and the trailing dot: 255 octets, still valid */
    at[n + 1] = '.';
    at[n + 2] = '\0';
    assert_int_equal(etrn_parse(at, n + 2, 0, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(strlen(rq.node), DOMAIN_MAX);
    assert_int_equal(rq.option, ETRN_OPTION_AT);
    /* one more octet is too long */
    char over[260];
    memset(over, 'd', DOMAIN_MAX + 1);
    over[DOMAIN_MAX + 1] = '\0';
    over[60] = '.';
    over[120] = '.';
    over[180] = '.';
    assert_bad(over, DOMAIN_MAX + 1, "longer than 253");
}

static void test_etrn_parse_error_quotes_argument_safely(void **state)
{
    (void)state;
    struct etrn_request rq;
    struct etrn_err why;
    char big[301];
    memset(big, 'z', 300);
    big[10] = ' ';
    big[300] = '\0';
    assert_int_equal(etrn_parse(big, 300, 0, &rq, &why), ETRN_SYNTAX_BAD);
    /* at most 64 octets of the argument are quoted, then "..." */
    assert_non_null(strstr(why.msg, "...':"));
    assert_true(strlen(why.msg) < 120);
    assert_int_equal(etrn_parse("a b\x07", 4, 0, &rq, &why), ETRN_SYNTAX_BAD);
    assert_null(strchr(why.msg, '\x07'));
}

static void test_etrn_parse_defect_flags_change_reading(void **state)
{
    (void)state;
    struct etrn_request rq;
    struct etrn_err why;
    assert_int_equal(etrn_parse("Node.Test", 9, ETRN_PARSE_CASE_SENSITIVE, &rq, &why), ETRN_SYNTAX_OK);
    assert_string_equal(rq.node, "Node.Test");
    assert_int_equal(etrn_parse("@foo.test", 9, ETRN_PARSE_IGNORE_AT, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(rq.option, ETRN_OPTION_NONE);
    assert_string_equal(rq.display, "foo.test");
    /* without the flags, the same input is read correctly */
    assert_int_equal(etrn_parse("@foo.test", 9, 0, &rq, &why), ETRN_SYNTAX_OK);
    assert_int_equal(rq.option, ETRN_OPTION_AT);
}

/* Random arguments from an alphabet that hits every branch: whatever the input, an OK
 * parse yields a valid lowercase node (or a queue name, or the root for "@."), and the
 * reply built from it fits one SMTP reply line. */
static void test_etrn_parse_random_input_yields_valid_nodes_only(void **state)
{
    (void)state;
    static const char alphabet[] = "aZ0-.@#[] \t\0_\xff.aaaa";
    unsigned long long seed = 1985;
    int ok = 0;
    for (int i = 0; i < 20000; i++) {
        char arg[320];
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = (size_t)(seed >> 33) % (i % 10 == 0 ? sizeof arg : 24);
        for (size_t k = 0; k < len; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            arg[k] = alphabet[(seed >> 40) % (sizeof alphabet - 1)];
        }
        struct etrn_request rq;
        struct etrn_err why = {{0}};
        enum etrn_syntax st = etrn_parse(arg, len, 0, &rq, &why);
        struct etrn_reply r;
        if (st != ETRN_SYNTAX_OK) {
            assert_true(why.msg[0] != '\0');
            etrn_reply_choose(st == ETRN_SYNTAX_MISSING ? ETRN_OUTCOME_SYNTAX_MISSING
                                                        : ETRN_OUTCOME_SYNTAX_BAD,
                              NULL, 0, ETRN_REPLY_COUNTED, 0, why.msg, &r);
            assert_true(r.code == 500 || r.code == 501);
            assert_null(strpbrk(r.text, "\r\n"));
            continue;
        }
        ok++;
        assert_true(strlen(rq.node) <= DOMAIN_MAX);
        if (rq.option == ETRN_OPTION_HASH) {
            assert_true(rq.node[0] != '\0' && strlen(rq.node) <= ETRN_QUEUE_NAME_MAX);
        } else if (rq.option == ETRN_OPTION_AT && rq.node[0] == '\0') {
            assert_string_equal(rq.display, "@.");
        } else {
            struct etrn_err e;
            if (domain_check(rq.node, strlen(rq.node), rq.option == ETRN_OPTION_AT ? 0 : DOMAIN_REQUIRE_FQDN, &e) < 0)
                fail_msg("accepted invalid node '%s': %s", rq.node, e.msg);
            for (const char *p = rq.node; *p; p++)
                assert_false(*p >= 'A' && *p <= 'Z');
        }
        etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 123456, ETRN_REPLY_COUNTED, 0, NULL, &r);
        assert_non_null(strstr(r.text, rq.display));
    }
    assert_true(ok > 0);   /* the alphabet does produce valid nodes */
}

/* --- replies ------------------------------------------------------------------------------ */

static struct etrn_request request(const char *arg)
{
    struct etrn_request rq;
    struct etrn_err why;
    assert_int_equal(parse(arg, &rq, &why), ETRN_SYNTAX_OK);
    return rq;
}

static void test_etrn_reply_counted_253_carries_the_count(void **state)
{
    (void)state;
    struct etrn_request rq = request("Node.Test");
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 14, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_int_equal(r.code, 253);
    assert_string_equal(r.enh, "2.0.0");
    assert_string_equal(r.text, "OK, 14 pending messages for node node.test started");
    etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 1, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_int_equal(r.code, 253);
    assert_non_null(strstr(r.text, " 1 pending"));
}

static void test_etrn_reply_251_when_nothing_waits(void **state)
{
    (void)state;
    struct etrn_request rq = request("@foo.test");
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_int_equal(r.code, 251);
    assert_string_equal(r.enh, "2.0.0");
    assert_string_equal(r.text, "OK, no messages waiting for node @foo.test");
}

static void test_etrn_reply_plain_style_is_always_250(void **state)
{
    (void)state;
    struct etrn_request rq = request("#uucp");
    struct etrn_reply r;
    for (size_t count = 0; count < 3; count++) {
        etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, count, ETRN_REPLY_PLAIN, 0, NULL, &r);
        assert_int_equal(r.code, 250);
        assert_string_equal(r.enh, "2.0.0");
        assert_string_equal(r.text, "OK, queuing for node #uucp started");
    }
}

static void test_etrn_reply_every_outcome_has_code_and_matching_enhanced_class(void **state)
{
    (void)state;
    static const struct { enum etrn_outcome o; int code; const char *enh; const char *name; } t[] = {
        { ETRN_OUTCOME_FAILED, 458, "4.3.0", "failed" },
        { ETRN_OUTCOME_SYNTAX_MISSING, 500, "5.5.2", "no-argument" },
        { ETRN_OUTCOME_SYNTAX_BAD, 501, "5.5.4", "syntax" },
        { ETRN_OUTCOME_DISABLED, 502, "5.5.1", "disabled" },
        { ETRN_OUTCOME_NEED_HELO, 503, "5.5.1", "need-helo" },
        { ETRN_OUTCOME_IN_TRANSACTION, 503, "5.5.1", "in-transaction" },
        { ETRN_OUTCOME_RATE_LIMITED, 458, "4.7.0", "rate-limited" },
        { ETRN_OUTCOME_NOT_HELD, 459, "4.7.1", "not-held" },
        { ETRN_OUTCOME_TOO_BROAD, 459, "4.7.1", "too-broad" },
        { ETRN_OUTCOME_QUEUE_UNKNOWN, 459, "4.5.4", "queue-unknown" },
        { ETRN_OUTCOME_AUTH_REQUIRED, 459, "4.7.1", "auth-required" },
        { ETRN_OUTCOME_CLIENT_REFUSED, 459, "4.7.1", "client-refused" },
        { ETRN_OUTCOME_STARTED, 253, "2.0.0", "started" },
    };
    struct etrn_request rq = request("node.test");
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct etrn_reply r;
        etrn_reply_choose(t[i].o, &rq, 2, ETRN_REPLY_COUNTED, 0, NULL, &r);
        if (r.code != t[i].code || strcmp(r.enh, t[i].enh) != 0)
            fail_msg("outcome %d: %d %s, want %d %s", (int)t[i].o, r.code, r.enh, t[i].code, t[i].enh);
        assert_int_equal(r.enh[0] - '0', r.code / 100);   /* class matches (RFC 3463) */
        assert_true(r.text[0] != '\0');
        assert_null(strpbrk(r.text, "\r\n"));
        assert_string_equal(etrn_outcome_name(t[i].o), t[i].name);
    }
}

static void test_etrn_reply_refusals_name_the_node_and_reason(void **state)
{
    (void)state;
    struct etrn_request rq = request("@foo.test");
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_NOT_HELD, &rq, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Node @foo.test not allowed: not a node held here");
    etrn_reply_choose(ETRN_OUTCOME_TOO_BROAD, &rq, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Node @foo.test not allowed: too broad");
    etrn_reply_choose(ETRN_OUTCOME_FAILED, &rq, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Unable to queue messages for node @foo.test");
    /* "@." displays as itself */
    struct etrn_request root = request("@.");
    etrn_reply_choose(ETRN_OUTCOME_TOO_BROAD, &root, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Node @. not allowed: too broad");
    /* no request (before parsing): a placeholder, never garbage */
    etrn_reply_choose(ETRN_OUTCOME_FAILED, NULL, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Unable to queue messages for node ?");
}

static void test_etrn_reply_syntax_error_carries_detail(void **state)
{
    (void)state;
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_SYNTAX_BAD, NULL, 0, ETRN_REPLY_COUNTED, 0,
                      "'a_b.test': label 'a_b' has invalid character '_'", &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(r.text,
                        "Syntax error in parameters: 'a_b.test': label 'a_b' has invalid character '_'");
    etrn_reply_choose(ETRN_OUTCOME_SYNTAX_BAD, NULL, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Syntax error in parameters: ETRN [@|#]node");
    etrn_reply_choose(ETRN_OUTCOME_SYNTAX_MISSING, NULL, 0, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_string_equal(r.text, "Syntax: ETRN [@|#]node");
}

static void test_etrn_reply_longest_node_fits_one_reply_line(void **state)
{
    (void)state;
    char name[DOMAIN_MAX + 2];
    memset(name, 'e', DOMAIN_MAX);
    for (int i = 62; i < DOMAIN_MAX; i += 64)
        name[i + 1] = '.';
    name[DOMAIN_MAX] = '\0';
    struct etrn_request rq;
    struct etrn_err why;
    assert_int_equal(etrn_parse(name, DOMAIN_MAX, 0, &rq, &why), ETRN_SYNTAX_OK);
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, (size_t)-1, ETRN_REPLY_COUNTED, 0, NULL, &r);
    assert_non_null(strstr(r.text, rq.node));   /* not truncated */
    /* "253 2.0.0 " + text + CRLF stays within the 512-octet reply line */
    assert_true(strlen(r.text) + 12 <= SMTP_REPLY_LINE_MAX);
}

static void test_etrn_reply_defect_wrong_count_adds_one(void **state)
{
    (void)state;
    struct etrn_request rq = request("node.test");
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 4, ETRN_REPLY_COUNTED, ETRN_REPLY_WRONG_COUNT, NULL, &r);
    assert_int_equal(r.code, 253);
    assert_non_null(strstr(r.text, " 5 pending"));
    /* even with nothing queued the defect claims one */
    etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 0, ETRN_REPLY_COUNTED, ETRN_REPLY_WRONG_COUNT, NULL, &r);
    assert_int_equal(r.code, 253);
    assert_non_null(strstr(r.text, " 1 pending"));
    /* refusals are unaffected */
    etrn_reply_choose(ETRN_OUTCOME_NOT_HELD, &rq, 4, ETRN_REPLY_COUNTED, ETRN_REPLY_WRONG_COUNT, NULL, &r);
    assert_int_equal(r.code, 459);
}

static void test_etrn_reply_defect_accept_malformed_says_250(void **state)
{
    (void)state;
    struct etrn_reply r;
    etrn_reply_choose(ETRN_OUTCOME_SYNTAX_BAD, NULL, 0, ETRN_REPLY_COUNTED,
                      ETRN_REPLY_ACCEPT_MALFORMED, "x", &r);
    assert_int_equal(r.code, 250);
    etrn_reply_choose(ETRN_OUTCOME_SYNTAX_MISSING, NULL, 0, ETRN_REPLY_COUNTED,
                      ETRN_REPLY_ACCEPT_MALFORMED, NULL, &r);
    assert_int_equal(r.code, 250);
    /* only syntax errors are "accepted" */
    etrn_reply_choose(ETRN_OUTCOME_RATE_LIMITED, NULL, 0, ETRN_REPLY_COUNTED,
                      ETRN_REPLY_ACCEPT_MALFORMED, NULL, &r);
    assert_int_equal(r.code, 458);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etrn_parse_plain_node_is_lowercased_without_trailing_dot),
        cmocka_unit_test(test_etrn_parse_ignores_surrounding_blanks),
        cmocka_unit_test(test_etrn_parse_at_option_names_subtree),
        cmocka_unit_test(test_etrn_parse_at_dot_is_the_root_not_a_syntax_error),
        cmocka_unit_test(test_etrn_parse_hash_names_queue_as_typed),
        cmocka_unit_test(test_etrn_parse_missing_argument_is_500_not_501),
        cmocka_unit_test(test_etrn_parse_refuses_two_arguments),
        cmocka_unit_test(test_etrn_parse_refuses_at_alone),
        cmocka_unit_test(test_etrn_parse_refuses_unqualified_plain_node),
        cmocka_unit_test(test_etrn_parse_refuses_address_literal),
        cmocka_unit_test(test_etrn_parse_refuses_bad_labels),
        cmocka_unit_test(test_etrn_parse_refuses_nul_and_control_bytes),
        cmocka_unit_test(test_etrn_parse_refuses_over_long_names_without_overflow),
        cmocka_unit_test(test_etrn_parse_error_quotes_argument_safely),
        cmocka_unit_test(test_etrn_parse_defect_flags_change_reading),
        cmocka_unit_test(test_etrn_parse_random_input_yields_valid_nodes_only),
        cmocka_unit_test(test_etrn_reply_counted_253_carries_the_count),
        cmocka_unit_test(test_etrn_reply_251_when_nothing_waits),
        cmocka_unit_test(test_etrn_reply_plain_style_is_always_250),
        cmocka_unit_test(test_etrn_reply_every_outcome_has_code_and_matching_enhanced_class),
        cmocka_unit_test(test_etrn_reply_refusals_name_the_node_and_reason),
        cmocka_unit_test(test_etrn_reply_syntax_error_carries_detail),
        cmocka_unit_test(test_etrn_reply_longest_node_fits_one_reply_line),
        cmocka_unit_test(test_etrn_reply_defect_wrong_count_adds_one),
        cmocka_unit_test(test_etrn_reply_defect_accept_malformed_says_250),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
