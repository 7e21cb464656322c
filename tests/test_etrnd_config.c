/* test_etrnd_config.c — etrnd's configuration file (server/etrnd_config.c, etrnd.conf(5)).
 *
 *   build/tests/test_etrnd_config        (from the project root: reads fixtures/config/etrnd/)
 *
 * Every key is read from fixtures/config/etrnd/full.conf and checked; a minimal file
 * gets the documented defaults; each bad value, an unknown key and a duplicate key are
 * refused with "file:line:"; etrn_allow, route.DOMAIN, queue.NAME, durations, sizes
 * and defects are parsed as etrnd.conf(5) says; docs/etrnd.conf.example loads. */
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

#include "etrnd_config.h"
#include "fileio.h"
#include "log.h"
#include "strbuf.h"

static char test_dir[64];
static char test_file[128];

static int setup_dir(void **state)
{
    (void)state;
    str_copy(test_dir, sizeof test_dir, "/tmp/test_etrnd_config.XXXXXX");
    if (mkdtemp(test_dir) == NULL)
        return -1;
    return str_format(test_file, sizeof test_file, "%s/t.conf", test_dir) < 0 ? -1 : 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    unlink(test_file);
    rmdir(test_dir);
    return 0;
}

/* Writes text to test_file and loads it. */
static int load_text(const char *text, struct etrnd_config **c, struct etrn_err *err)
{
    FILE *f = fopen(test_file, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return etrnd_config_load(c, test_file, err);
}

/* The two settings every file needs, on lines 1 and 2; the line under test is line 3. */
#define BASE "listen = 127.0.0.1:2525\nspool = /tmp/etrnd-test-spool\n"

/* Asserts BASE + lines is refused at line lineno of test_file with a message containing want. */
static void assert_refused_at(int lineno, const char *line3, const char *want)
{
    char text[2048];
    assert_true(str_format(text, sizeof text, BASE "%s\n", line3) >= 0);
    struct etrnd_config *c = (struct etrnd_config *)1;
    struct etrn_err err = {{0}};
    int rc = load_text(text, &c, &err);
    if (rc == 0)
        fail_msg("accepted: %s", line3);
    assert_null(c);
    char prefix[160];
    assert_true(str_format(prefix, sizeof prefix, "%s:%d: ", test_file, lineno) >= 0);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0 || strstr(err.msg, want) == NULL)
        fail_msg("'%s': got '%s', want prefix '%s' and '%s'", line3, err.msg, prefix, want);
}

static void assert_refused_at_line3(const char *line3, const char *want)
{
    assert_refused_at(3, line3, want);
}

static struct etrnd_config *load_ok(const char *text)
{
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    if (load_text(text, &c, &err) < 0)
        fail_msg("refused: %s", err.msg);
    assert_non_null(c);
    return c;
}

static int port_of(const struct netaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* --- every key ------------------------------------------------------------------------ */

static void test_config_full_file_sets_every_key(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&c, "fixtures/config/etrnd/full.conf", &err) < 0)
        fail_msg("%s", err.msg);

    assert_string_equal(c->file, "fixtures/config/etrnd/full.conf");
    assert_int_equal(c->nlisten, 2);
    assert_int_equal(c->listen[0].ss.ss_family, AF_INET);
    assert_int_equal(port_of(&c->listen[0]), 2525);
    assert_int_equal(c->listen[1].ss.ss_family, AF_INET6);
    assert_int_equal(port_of(&c->listen[1]), 2526);
    assert_string_equal(c->myhostname, "relay.example");
    assert_string_equal(c->spool, "/tmp/etrnd-test-spool");
    assert_string_equal(c->log_file, "/tmp/etrnd-test.log");
    assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(c->pid_file, "/tmp/etrnd-test.pid");

    assert_int_equal(c->netrn_domains, 2);
    assert_string_equal(c->etrn_domains[0], "node.test");   /* lowercased */
    assert_string_equal(c->etrn_domains[1], "other.test");  /* trailing dot dropped */
    assert_int_equal(c->nmynetworks, 2);
    assert_int_equal(c->nqueues, 1);
    assert_string_equal(c->queues[0].name, "uucp");
    assert_int_equal(c->queues[0].ndomains, 2);

    assert_int_equal(c->etrn_enabled, 0);
    assert_int_equal(c->netrn_rules, 2);
    assert_string_equal(c->etrn_rules[0].pattern, "@node.test");
    assert_int_equal(c->etrn_rules[0].nnets, 2);
    assert_int_equal(c->etrn_rules[0].nusers, 1);
    assert_string_equal(c->etrn_rules[0].users[0], "alice");
    assert_string_equal(c->etrn_rules[1].pattern, "#uucp");
    assert_int_equal(c->etrn_rules[1].nnets, 2);   /* any = 0.0.0.0/0 and ::/0 */
    assert_int_equal(c->etrn_require_auth, 1);
    assert_int_equal(c->etrn_rate_limit, 7);
    assert_int_equal(c->etrn_rate_window_ms, 90000);
    assert_int_equal(c->etrn_reply_style, ETRN_REPLY_PLAIN);
    assert_int_equal(c->etrn_require_helo, 1);

    assert_int_equal(c->dns_server_set, 1);
    assert_int_equal(port_of(&c->dns_server), 5353);
    assert_int_equal(c->smtp_port, 2526);
    assert_int_equal(c->nroutes, 1);
    assert_string_equal(c->routes[0].domain, "other.test");
    assert_int_equal(port_of(&c->routes[0].addr), 2526);   /* smtp_port is the default */
    assert_int_equal(c->max_per_destination, 3);
    assert_int_equal(c->max_deliveries, 9);
    assert_int_equal(c->retry_interval_ms, 15ULL * 60000);
    assert_int_equal(c->max_queue_life_ms, 2ULL * 86400000);
    assert_int_equal(c->timeout_connect_ms, 1000);
    assert_int_equal(c->timeout_greeting_ms, 2000);
    assert_int_equal(c->timeout_mail_ms, 3000);
    assert_int_equal(c->timeout_rcpt_ms, 4000);
    assert_int_equal(c->timeout_data_ms, 5000);
    assert_int_equal(c->timeout_block_ms, 6000);
    assert_int_equal(c->timeout_dot_ms, 250);
    assert_int_equal(c->delivery_starttls, 0);

    assert_int_equal(c->message_size_limit, 2ULL * 1024 * 1024);
    assert_int_equal(c->max_recipients, 5);
    assert_int_equal(c->max_sessions, 6);
    assert_int_equal(c->max_sessions_per_client, 3);
    assert_int_equal(c->timeout_idle_ms, 120000);
    assert_int_equal(c->max_errors, 8);

    assert_string_equal(c->tls_cert_file, "/dev/null");
    assert_string_equal(c->tls_key_file, "/dev/null");
    assert_string_equal(c->auth_password_file, "/dev/null");
    assert_int_equal(c->auth_allow_plaintext, 1);

    assert_int_equal(c->ndefects, 2);
    assert_int_equal(etrnd_config_defect(c, "etrn_wrong_count"), 1);
    assert_int_equal(etrnd_config_defect(c, "never_deliver"), 1);
    assert_int_equal(etrnd_config_defect(c, "deliver_twice"), 0);
    etrnd_config_free(c);
}

static void test_config_minimal_file_gets_documented_defaults(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&c, "fixtures/config/etrnd/minimal.conf", &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->nlisten, 1);
    assert_int_equal(port_of(&c->listen[0]), 0);
    assert_true(c->myhostname[0] != '\0');
    assert_null(c->log_file);
    assert_null(c->pid_file);
    assert_int_equal(c->log_level, LOG_LEVEL_INFO);
    assert_int_equal(c->netrn_domains, 0);
    assert_int_equal(c->nmynetworks, 0);
    assert_int_equal(c->nqueues, 0);
    assert_int_equal(c->etrn_enabled, 1);
    assert_int_equal(c->netrn_rules, 0);
    assert_int_equal(c->etrn_require_auth, 0);
    assert_int_equal(c->etrn_rate_limit, 20);
    assert_int_equal(c->etrn_rate_window_ms, 60000);
    assert_int_equal(c->etrn_reply_style, ETRN_REPLY_COUNTED);
    assert_int_equal(c->etrn_require_helo, 0);
    assert_int_equal(c->dns_server_set, 0);
    assert_int_equal(c->smtp_port, 25);
    assert_int_equal(c->nroutes, 0);
    assert_int_equal(c->max_per_destination, 2);
    assert_int_equal(c->max_deliveries, 20);
    assert_int_equal(c->retry_interval_ms, 0);
    assert_int_equal(c->max_queue_life_ms, 5ULL * 86400000);
    assert_int_equal(c->timeout_connect_ms, 30000);
    assert_int_equal(c->timeout_greeting_ms, 300000);
    assert_int_equal(c->timeout_mail_ms, 300000);
    assert_int_equal(c->timeout_rcpt_ms, 300000);
    assert_int_equal(c->timeout_data_ms, 120000);
    assert_int_equal(c->timeout_block_ms, 180000);
    assert_int_equal(c->timeout_dot_ms, 600000);
    assert_int_equal(c->delivery_starttls, 1);
    assert_int_equal(c->message_size_limit, 10ULL * 1024 * 1024);
    assert_int_equal(c->max_recipients, 100);
    assert_int_equal(c->max_sessions, 1000);
    assert_int_equal(c->max_sessions_per_client, 50);
    assert_int_equal(c->timeout_idle_ms, 300000);
    assert_int_equal(c->max_errors, 20);
    assert_null(c->tls_cert_file);
    assert_null(c->tls_key_file);
    assert_null(c->auth_password_file);
    assert_int_equal(c->auth_allow_plaintext, 0);
    assert_int_equal(c->ndefects, 0);
    etrnd_config_free(c);
}

/* --- refusals -------------------------------------------------------------------------- */

static void test_config_refuses_each_bad_value_with_file_and_line(void **state)
{
    (void)state;
    static const struct { const char *line; const char *want; } bad[] = {
        { "myhostname = relay", "not fully qualified" },
        { "myhostname = re_lay.example", "invalid character" },
        { "log_level = loud", "not error, warn, info or debug" },
        { "log_file =", "empty value" },
        { "pid_file =", "empty value" },
        { "etrn_domains = node", "not fully qualified" },
        { "etrn_domains = node.test, -bad.test", "starts or ends with '-'" },
        { "etrn_domains = no..dots.test", "empty label" },
        { "mynetworks = 127.0.0.0/33", "mynetworks" },
        { "mynetworks = example.com", "mynetworks" },
        { "etrn = maybe", "not yes or no" },
        { "etrn_require_auth = 2", "not yes or no" },
        { "etrn_require_helo = si", "not yes or no" },
        { "etrn_rate_limit = -1", "not a number" },
        { "etrn_rate_limit = 1000001", "out of range" },
        { "etrn_rate_window = 0", "shorter than" },
        { "etrn_rate_window = 5 fortnights", "not a duration" },
        { "etrn_reply = verbose", "not counted or plain" },
        { "dns_server = resolver.example:53", "not a numeric address" },
        { "dns_server = 127.0.0.1:70000", "bad port" },
        { "smtp_port = 0", "out of range" },
        { "smtp_port = 65536", "out of range" },
        { "smtp_port = 25x", "not a number" },
        { "route.node.test = mx.node.test:25", "numeric host:port" },
        { "route.node.test = 127.0.0.5:0", "port 0" },
        { "route.no_de.test = 127.0.0.5:25", "invalid character" },
        { "delivery_concurrency = 0", "out of range" },
        { "delivery_max_connections = 10001", "out of range" },
        { "retry_interval = soon", "not a duration" },
        { "max_queue_lifetime = 10ms", "shorter than 1000ms" },
        { "max_queue_lifetime = 400d", "longer than a year" },
        { "smtp_connect_timeout = 0", "shorter than" },
        { "smtp_greeting_timeout = 5 min", "not a duration" },
        { "smtp_mail_timeout = 0s", "shorter than" },
        { "smtp_rcpt_timeout = x", "not a duration" },
        { "smtp_data_timeout = -1", "not a duration" },
        { "smtp_block_timeout = 1y", "not a duration" },
        { "smtp_dot_timeout = 367d", "longer than a year" },
        { "delivery_starttls = perhaps", "not yes or no" },
        { "message_size_limit = 100", "outside 1k..1T" },
        { "message_size_limit = 2T", "not a size" },
        { "message_size_limit = ten", "not a size" },
        { "max_recipients = 0", "out of range" },
        { "max_sessions = 100001", "out of range" },
        { "max_sessions_per_client = -1", "not a number" },
        { "max_sessions_per_client = 100001", "out of range" },
        { "smtpd_timeout = 500ms", "shorter than 1000ms" },
        { "smtpd_max_errors = 0", "out of range" },
        { "tls_cert_file = /dev/null", "needed together" },
        { "tls_key_file = /dev/null", "needed together" },
        { "auth_password_file = /nonexistent/etrnd-passwords", "cannot read" },
        { "auth_allow_plaintext = sure", "not yes or no" },
        { "defect = etrn_wrnog_count", "unknown defect 'etrn_wrnog_count'" },
        { "queue.uucp =", "at least one domain" },
        { "queue.uucp = a_b.test", "invalid character" },
        { "etrn_allow = node.test", "expected 'PATTERN : CLIENT" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused_at_line3(bad[i].line, bad[i].want);
}

static void test_config_refuses_unreadable_tls_files(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(load_text(BASE "tls_cert_file = /nonexistent/cert.pem\n"
                                    "tls_key_file = /dev/null\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:3: tls_cert_file: cannot read '/nonexistent/cert.pem'"));
    assert_null(c);
}

static void test_config_refuses_unknown_key_naming_it(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(etrnd_config_load(&c, "fixtures/config/etrnd/unknown-key.conf", &err), -1);
    assert_string_equal(err.msg,
                        "fixtures/config/etrnd/unknown-key.conf:4: unknown setting 'etrn_domain'");
    assert_null(c);
}

static void test_config_refuses_duplicate_key_naming_both_lines(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(etrnd_config_load(&c, "fixtures/config/etrnd/duplicate-key.conf", &err), -1);
    assert_string_equal(err.msg, "fixtures/config/etrnd/duplicate-key.conf:6: etrn_domains: "
                                 "set twice (first at line 4); only etrn_allow repeats");
    assert_null(c);
}

static void test_config_refuses_missing_required_settings(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(etrnd_config_load(&c, "fixtures/config/etrnd/missing-spool.conf", &err), -1);
    assert_string_equal(err.msg,
                        "fixtures/config/etrnd/missing-spool.conf: spool: required setting is missing");
    assert_int_equal(load_text("spool = /tmp/x\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf: listen: required setting is missing"));
    assert_int_equal(load_text("listen =\nspool = /tmp/x\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:1: listen: 1 to 64"));
    assert_int_equal(load_text("listen = 127.0.0.1:25\nspool =\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:2: spool: empty value"));
    assert_int_equal(load_text("listen = 127.0.0.1:70000\nspool = /tmp/x\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:1: listen: '127.0.0.1:70000': bad port"));
    assert_int_equal(load_text("listen = 127.0.0.1:25, localhost:25\nspool = /tmp/x\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:1: listen: 'localhost:25': not a numeric address"));
    assert_null(c);
}

static void test_config_refuses_missing_file(void **state)
{
    (void)state;
    struct etrnd_config *c = (struct etrnd_config *)1;
    struct etrn_err err = {{0}};
    assert_int_equal(etrnd_config_load(&c, "/nonexistent/etrnd.conf", &err), -1);
    assert_null(c);
    assert_non_null(strstr(err.msg, "/nonexistent/etrnd.conf"));
}

/* --- etrn_allow ------------------------------------------------------------------------- */

static void test_config_etrn_allow_rules_keep_file_order(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE
        "etrn_domains = node.test\n"
        "etrn_allow = Node.Test : 127.0.0.1\n"
        "etrn_allow = @Foo.Test: 192.0.2.0/24, ::1 user:bob user:carol\n"
        "etrn_allow = queue:UUCP : any\n"
        "etrn_allow = * : user:admin\n");
    assert_int_equal(c->netrn_rules, 4);
    assert_string_equal(c->etrn_rules[0].pattern, "node.test");
    assert_int_equal(c->etrn_rules[0].nnets, 1);
    assert_int_equal(c->etrn_rules[0].nusers, 0);
    assert_string_equal(c->etrn_rules[1].pattern, "@foo.test");
    assert_int_equal(c->etrn_rules[1].nnets, 2);
    assert_int_equal(c->etrn_rules[1].nusers, 2);
    assert_string_equal(c->etrn_rules[1].users[1], "carol");
    assert_string_equal(c->etrn_rules[2].pattern, "#UUCP");
    assert_string_equal(c->etrn_rules[3].pattern, "*");
    assert_int_equal(c->etrn_rules[3].nnets, 0);
    assert_string_equal(c->etrn_rules[3].users[0], "admin");
    etrnd_config_free(c);
}

static void test_config_etrn_allow_refuses_malformed_rules(void **state)
{
    (void)state;
    assert_refused_at_line3("etrn_allow = node.test :", "no clients after ':'");
    assert_refused_at_line3("etrn_allow = : 127.0.0.1", "missing node pattern");
    assert_refused_at_line3("etrn_allow = a.test b.test : 127.0.0.1", "one node pattern per rule");
    assert_refused_at_line3("etrn_allow = node : 127.0.0.1", "not fully qualified");
    assert_refused_at_line3("etrn_allow = node.test : user:", "expected user:NAME");
    assert_refused_at_line3("etrn_allow = node.test : user:a:b", "expected user:NAME");
    assert_refused_at_line3("etrn_allow = queue:"
                            "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq : 127.0.0.1",
                            "queue name of 1 to 63");
    assert_refused_at_line3("etrn_allow = node.test : 10.0.0.0/40", "not an address, network");
    /* '#' after a space starts a comment, so "#uucp" leaves an empty value: say why. */
    assert_refused_at_line3("etrn_allow = #uucp : 127.0.0.1", "write queue patterns as queue:NAME");

    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(etrnd_config_load(&c, "fixtures/config/etrnd/bad-etrn-allow.conf", &err), -1);
    assert_string_equal(err.msg, "fixtures/config/etrnd/bad-etrn-allow.conf:6: etrn_allow: "
                                 "'somehost.example': not an address, network, user:NAME or any");
}

/* --- route.DOMAIN and queue.NAME ---------------------------------------------------------- */

static void test_config_routes_take_smtp_port_and_match_case_insensitively(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE
        "route.Node.Test = 127.0.0.5\n"
        "route.b.test = [::1]:2600\n"
        "smtp_port = 2526\n");
    assert_int_equal(c->nroutes, 2);
    const struct etrnd_route *r = etrnd_config_route(c, "NODE.test.");
    assert_non_null(r);
    assert_string_equal(r->domain, "node.test");
    assert_int_equal(port_of(&r->addr), 2526);   /* smtp_port, although set after the route */
    r = etrnd_config_route(c, "b.test");
    assert_non_null(r);
    assert_int_equal(port_of(&r->addr), 2600);
    /* exact match only: a route is not inherited by subdomains */
    assert_null(etrnd_config_route(c, "a.node.test"));
    assert_null(etrnd_config_route(c, "test"));
    etrnd_config_free(c);

    assert_refused_at(4, "route.a.test = 127.0.0.5\nroute.A.test = 127.0.0.6",
                            "a route for a.test is already set");
}

/* A provider may route thousands of sites: every route is found (a binary search over
 * the sorted routes), whatever order the file gives them in, and nothing else is. */
static void test_config_many_routes_are_all_found(void **state)
{
    (void)state;
    enum { NROUTES = 2000 };
    struct strbuf text;
    strbuf_init(&text, STRBUF_UNLIMITED);
    assert_int_equal(strbuf_append_str(&text, BASE), 0);
    for (unsigned i = 0; i < NROUTES; i++) {
        unsigned k = (i * 7919u) % NROUTES;               /* a scrambled order */
        char line[96];
        int len = str_format(line, sizeof line, "route.N%u.Sites.test = 127.0.0.%u:%u\n", k,
                             2 + k % 200, 2000 + k);
        assert_true(len > 0);
        assert_int_equal(strbuf_append(&text, line, (size_t)len), 0);
    }
    struct etrnd_config *c = load_ok(text.data);
    strbuf_free(&text);
    assert_int_equal(c->nroutes, NROUTES);
    for (unsigned k = 0; k < NROUTES; k++) {
        char dom[64];
        assert_true(str_format(dom, sizeof dom, "n%u.sites.TEST.", k) > 0);
        const struct etrnd_route *r = etrnd_config_route(c, dom);
        if (r == NULL)
            fail_msg("no route for %s", dom);
        assert_int_equal(port_of(&r->addr), 2000 + k);
    }
    assert_null(etrnd_config_route(c, "n2000.sites.test"));
    assert_null(etrnd_config_route(c, "sites.test"));
    assert_null(etrnd_config_route(c, "a.n1.sites.test"));
    etrnd_config_free(c);
}

static void test_config_queues_are_named_case_insensitively(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE
        "queue.uucp = A.test, b.test c.test\n"
        "queue.Nightly-1 = d.test\n");
    assert_int_equal(c->nqueues, 2);
    const struct etrnd_queue *q = etrnd_config_queue(c, "UUCP");
    assert_non_null(q);
    assert_int_equal(q->ndomains, 3);
    assert_string_equal(q->domains[0], "a.test");
    assert_string_equal(q->domains[2], "c.test");
    assert_non_null(etrnd_config_queue(c, "nightly-1"));
    assert_null(etrnd_config_queue(c, "nightly"));
    etrnd_config_free(c);

    assert_refused_at(4, "queue.uucp = a.test\nqueue.UUCP = b.test", "already defined");
    char longname[200];
    memset(longname, 'q', 64);
    longname[64] = '\0';
    char line[300];
    assert_true(str_format(line, sizeof line, "queue.%s = a.test", longname) >= 0);
    assert_refused_at_line3(line, "1 to 63 characters");
}

/* --- values ------------------------------------------------------------------------------ */

static void test_config_durations_and_sizes_take_units(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE
        "etrn_rate_window = 250ms\n"
        "retry_interval = 2h\n"
        "max_queue_lifetime = 90\n"          /* no unit: seconds */
        "smtpd_timeout = 1 m\n"
        "message_size_limit = 64k\n");
    assert_int_equal(c->etrn_rate_window_ms, 250);
    assert_int_equal(c->retry_interval_ms, 2ULL * 3600000);
    assert_int_equal(c->max_queue_life_ms, 90000);
    assert_int_equal(c->timeout_idle_ms, 60000);
    assert_int_equal(c->message_size_limit, 64ULL * 1024);
    etrnd_config_free(c);

    c = load_ok(BASE "message_size_limit = 1G\nretry_interval = 0\n");
    assert_int_equal(c->message_size_limit, 1ULL << 30);
    assert_int_equal(c->retry_interval_ms, 0);
    etrnd_config_free(c);
}

static void test_config_per_destination_limit_never_exceeds_total(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE "delivery_concurrency = 50\n"
                                          "delivery_max_connections = 4\n");
    assert_int_equal(c->max_deliveries, 4);
    assert_int_equal(c->max_per_destination, 4);
    etrnd_config_free(c);
}

static void test_config_continuation_lines_extend_lists(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE "etrn_domains = a.test,\n   b.test\n\tc.test # comment\n");
    assert_int_equal(c->netrn_domains, 3);
    assert_string_equal(c->etrn_domains[2], "c.test");
    etrnd_config_free(c);
}

static void test_config_defects_known_and_unknown(void **state)
{
    (void)state;
    static const char *const known[] = {
        "etrn_not_advertised", "etrn_accept_malformed", "etrn_wrong_count",
        "etrn_case_sensitive", "etrn_ignore_at", "etrn_block_reply",
        "deliver_to_requester", "ignore_mx_preference", "no_mx_fallthrough",
        "deliver_twice", "never_deliver", "lose_after_failure",
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char text[256];
        assert_true(str_format(text, sizeof text, BASE "defect = %s\n", known[i]) >= 0);
        struct etrnd_config *c = load_ok(text);
        assert_int_equal(etrnd_config_defect(c, known[i]), 1);
        assert_int_equal(c->ndefects, 1);
        etrnd_config_free(c);
    }
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(etrnd_config_load(&c, "fixtures/config/etrnd/unknown-defect.conf", &err), -1);
    assert_string_equal(err.msg, "fixtures/config/etrnd/unknown-defect.conf:4: defect: "
                                 "unknown defect 'etrn_wrnog_count' (see etrnd.conf(5))");
    /* defect names are exact: case matters */
    assert_refused_at_line3("defect = ETRN_WRONG_COUNT", "unknown defect");
}

static void test_config_holds_etrn_domains_and_label_aligned_subdomains(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE "etrn_domains = foo.test, Bar.Test\n");
    assert_int_equal(etrnd_config_holds_domain(c, "foo.test"), 1);
    assert_int_equal(etrnd_config_holds_domain(c, "a.b.foo.test"), 1);
    assert_int_equal(etrnd_config_holds_domain(c, "BAR.test"), 1);
    assert_int_equal(etrnd_config_holds_domain(c, "xfoo.test"), 0);
    assert_int_equal(etrnd_config_holds_domain(c, "test"), 0);
    assert_int_equal(etrnd_config_holds_domain(c, "foo.test.example"), 0);
    etrnd_config_free(c);
}

static void test_config_etrn_allow_may_repeat_but_not_listen(void **state)
{
    (void)state;
    struct etrnd_config *c = load_ok(BASE "etrn_allow = a.test : 127.0.0.1\n"
                                          "etrn_allow = a.test : 127.0.0.2\n");
    assert_int_equal(c->netrn_rules, 2);
    etrnd_config_free(c);
    assert_refused_at_line3("listen = 127.0.0.1:2526", "set twice (first at line 1)");
    assert_refused_at(5, "etrn_allow = a.test : 127.0.0.1\nroute.a.test = 127.0.0.5\n"
                         "route.a.test = 127.0.0.6", "set twice (first at line 4)");
}

/* The shipped example is a real configuration: it must load as it stands. */
static void test_config_shipped_example_loads(void **state)
{
    (void)state;
    struct etrnd_config *c = NULL;
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&c, "docs/etrnd.conf.example", &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(c->netrn_domains >= 1);
    assert_true(c->nlisten >= 1);
    etrnd_config_free(c);
}

/* Lines assembled from real keys and hostile values: whatever happens, loading either
 * succeeds or says where (file name first), and never crashes (run it under ASan). */
static void test_config_random_lines_are_loaded_or_refused_by_name(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "listen", "etrn_domains", "etrn_allow", "route.a.test", "queue.q", "mynetworks",
        "message_size_limit", "smtpd_timeout", "defect", "etrn_reply", "smtp_port",
        "dns_server", "myhostname", "route.", "queue.", "etrn_rate_limit", "tls_cert_file",
    };
    static const char *const values[] = {
        "", "a.test", "@a.test : 127.0.0.1", "queue:q : any", "127.0.0.1:0", "[::1]:25",
        "99999999999999999999", "10M", "1k", "0", "-", ":", " : : ", "user:", "::", "[",
        "a..b", "*", "#x", "@", "@.", "etrn_wrong_count", "never_deliver,never_deliver",
        "127.0.0.0/8, ::1/128", "1.2.3.4/99", "18446744073709551616ms", "5d", "plain",
        "xn--bcher-kva.test", "a-.test", "/dev/null",
    };
    unsigned long long seed = 1985;
    char prefix[160];
    assert_true(str_format(prefix, sizeof prefix, "%s", test_file) >= 0);
    for (int i = 0; i < 3000; i++) {
        char text[1024] = BASE;
        size_t lines = 1 + i % 3;
        for (size_t l = 0; l < lines; l++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *k = keys[(seed >> 33) % (sizeof keys / sizeof keys[0])];
            const char *v1 = values[(seed >> 20) % (sizeof values / sizeof values[0])];
            const char *v2 = values[(seed >> 45) % (sizeof values / sizeof values[0])];
            char line[300];
            assert_true(str_format(line, sizeof line, "%s = %s%s%s\n", k, v1,
                                   (seed & 1) ? " " : "", (seed & 2) ? v2 : "") >= 0);
            assert_true(strlen(text) + strlen(line) < sizeof text);
            memcpy(text + strlen(text), line, strlen(line) + 1);
        }
        struct etrnd_config *c = NULL;
        struct etrn_err err = {{0}};
        if (load_text(text, &c, &err) == 0) {
            assert_non_null(c);
            etrnd_config_free(c);
        } else {
            assert_null(c);
            if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
                fail_msg("error does not name the file: '%s' for:\n%s", err.msg, text);
        }
    }
}

/* The setting names are a contract: etrnd.conf(5) documents each one, and the shipped
 * example shows each one (set or commented out). */
static const char *const every_key[] = {
    "listen", "myhostname", "spool", "log_file", "log_level", "pid_file",
    "etrn_domains", "mynetworks", "queue.", "etrn", "etrn_allow", "etrn_require_auth",
    "etrn_rate_limit", "etrn_rate_window", "etrn_reply", "etrn_require_helo",
    "dns_server", "smtp_port", "route.", "delivery_concurrency", "delivery_max_connections",
    "retry_interval", "max_queue_lifetime", "smtp_connect_timeout", "smtp_greeting_timeout",
    "smtp_mail_timeout", "smtp_rcpt_timeout", "smtp_data_timeout", "smtp_block_timeout",
    "smtp_dot_timeout", "delivery_starttls", "message_size_limit", "max_recipients",
    "max_sessions", "max_sessions_per_client", "smtpd_timeout", "smtpd_max_errors", "tls_cert_file", "tls_key_file",
    "auth_password_file", "auth_allow_plaintext", "defect",
};

static void test_config_every_key_and_defect_is_documented(void **state)
{
    (void)state;
    struct strbuf man, ex;
    struct etrn_err err = {{0}};
    strbuf_init(&man, 1 << 20);
    strbuf_init(&ex, 1 << 20);
    if (fileio_read_file("docs/man/etrnd.conf.5", &man, 1 << 20, &err) < 0 ||
        fileio_read_file("docs/etrnd.conf.example", &ex, 1 << 20, &err) < 0)
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < sizeof every_key / sizeof every_key[0]; i++) {
        const char *k = every_key[i];
        int prefix = k[strlen(k) - 1] == '.';
        char pat[96];
        assert_true(str_format(pat, sizeof pat, ".BI %s ", k) >= 0);
        if (strstr(man.data, pat) == NULL)
            fail_msg("etrnd.conf(5) does not document '%s'", k);
        char set[96], commented[96];
        assert_true(str_format(set, sizeof set, "\n%s%s", k, prefix ? "" : " ") >= 0);
        assert_true(str_format(commented, sizeof commented, "\n#%s%s", k, prefix ? "" : " ") >= 0);
        if (strstr(ex.data, set) == NULL && strstr(ex.data, commented) == NULL)
            fail_msg("docs/etrnd.conf.example does not show '%s'", k);
    }
    static const char *const defects[] = {
        "etrn_not_advertised", "etrn_accept_malformed", "etrn_wrong_count",
        "etrn_case_sensitive", "etrn_ignore_at", "etrn_block_reply",
        "deliver_to_requester", "ignore_mx_preference", "no_mx_fallthrough",
        "deliver_twice", "never_deliver", "lose_after_failure",
    };
    for (size_t i = 0; i < sizeof defects / sizeof defects[0]; i++) {
        char pat[96];
        assert_true(str_format(pat, sizeof pat, "\n.B %s\n", defects[i]) >= 0);
        if (strstr(man.data, pat) == NULL)
            fail_msg("etrnd.conf(5) TEST-ONLY DEFECTS does not describe '%s'", defects[i]);
    }
    strbuf_free(&man);
    strbuf_free(&ex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_full_file_sets_every_key),
        cmocka_unit_test(test_config_minimal_file_gets_documented_defaults),
        cmocka_unit_test(test_config_refuses_each_bad_value_with_file_and_line),
        cmocka_unit_test(test_config_refuses_unreadable_tls_files),
        cmocka_unit_test(test_config_refuses_unknown_key_naming_it),
        cmocka_unit_test(test_config_refuses_duplicate_key_naming_both_lines),
        cmocka_unit_test(test_config_refuses_missing_required_settings),
        cmocka_unit_test(test_config_refuses_missing_file),
        cmocka_unit_test(test_config_etrn_allow_rules_keep_file_order),
        cmocka_unit_test(test_config_etrn_allow_refuses_malformed_rules),
        cmocka_unit_test(test_config_routes_take_smtp_port_and_match_case_insensitively),
        cmocka_unit_test(test_config_many_routes_are_all_found),
        cmocka_unit_test(test_config_queues_are_named_case_insensitively),
        cmocka_unit_test(test_config_durations_and_sizes_take_units),
        cmocka_unit_test(test_config_per_destination_limit_never_exceeds_total),
        cmocka_unit_test(test_config_continuation_lines_extend_lists),
        cmocka_unit_test(test_config_defects_known_and_unknown),
        cmocka_unit_test(test_config_holds_etrn_domains_and_label_aligned_subdomains),
        cmocka_unit_test(test_config_etrn_allow_may_repeat_but_not_listen),
        cmocka_unit_test(test_config_shipped_example_loads),
        cmocka_unit_test(test_config_every_key_and_defect_is_documented),
        cmocka_unit_test(test_config_random_lines_are_loaded_or_refused_by_name),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
