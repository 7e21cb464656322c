/* test_mx_resolve.c — MX selection against a tiny DNS responder running inside the test.
 *
 *   build/tests/test_mx_resolve
 *
 * The responder answers UDP queries on 127.0.0.1 (ephemeral port) from a canned table
 * of records, on the same event_base as the resolver, so every case is deterministic:
 * MX order, implicit MX, null MX, NXDOMAIN, SERVFAIL, timeouts, MX hosts without address. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <event2/event.h>

#include "mx_resolve.h"
#include "strbuf.h"

#define RCODE_NXDOMAIN 3
#define RCODE_SERVFAIL 2
#define TYPE_A 1
#define TYPE_MX 15

struct test_rr {
    const char *name;
    int type;          /* TYPE_A or TYPE_MX; 0 = the name exists with no data of this kind */
    int pref;
    const char *data;  /* MX target or dotted IPv4 */
};

struct test_special {
    const char *name;
    int rcode;         /* answered with this rcode */
    int drop;          /* never answered */
};

static const struct test_rr zone[] = {
    { "mx.test", TYPE_MX, 20, "b.mx.test" },
    { "mx.test", TYPE_MX, 10, "a.mx.test" },
    { "mx.test", TYPE_MX, 30, "c.mx.test" },
    { "mx.test", TYPE_A, 0, "127.0.0.99" },
    { "a.mx.test", TYPE_A, 0, "127.0.0.2" },
    { "b.mx.test", TYPE_A, 0, "127.0.0.3" },
    { "c.mx.test", TYPE_A, 0, "127.0.0.4" },

    { "equal.test", TYPE_MX, 10, "one.equal.test" },
    { "equal.test", TYPE_MX, 10, "two.equal.test" },
    { "one.equal.test", TYPE_A, 0, "127.0.0.11" },
    { "two.equal.test", TYPE_A, 0, "127.0.0.12" },

    { "implicit.test", TYPE_A, 0, "127.0.0.9" },

    { "nullmx.test", TYPE_MX, 0, "" },
    { "nullmx.test", TYPE_A, 0, "127.0.0.9" },

    { "skip.test", TYPE_MX, 10, "ghost.skip.test" },
    { "skip.test", TYPE_MX, 20, "real.skip.test" },
    { "real.skip.test", TYPE_A, 0, "127.0.0.20" },

    { "noaddr.test", TYPE_MX, 10, "ghost.noaddr.test" },
    { "noaddr.test", TYPE_A, 0, "127.0.0.9" },

    { "backup.test", TYPE_MX, 10, "primary.backup.test" },
    { "backup.test", TYPE_MX, 20, "relay.example" },
    { "backup.test", TYPE_MX, 30, "tertiary.backup.test" },
    { "primary.backup.test", TYPE_A, 0, "127.0.0.30" },
    { "tertiary.backup.test", TYPE_A, 0, "127.0.0.31" },
    { "relay.example", TYPE_A, 0, "127.0.0.1" },

    { "selfbest.test", TYPE_MX, 10, "relay.example" },
    { "selfbest.test", TYPE_MX, 20, "other.selfbest.test" },
    { "other.selfbest.test", TYPE_A, 0, "127.0.0.40" },

    { "multi.test", TYPE_MX, 10, "mh.multi.test" },
    { "mh.multi.test", TYPE_A, 0, "127.0.0.52" },
    { "mh.multi.test", TYPE_A, 0, "127.0.0.51" },
    { "mh.multi.test", TYPE_A, 0, "127.0.0.53" },

    { "slowhost.test", TYPE_MX, 10, "dead.slowhost.test" },
};

static const struct test_special specials[] = {
    { "servfail.test", RCODE_SERVFAIL, 0 },
    { "timeout.test", 0, 1 },
    { "dead.slowhost.test", RCODE_SERVFAIL, 0 },
};

struct responder {
    int fd;
    int port;
    struct event *ev;
    unsigned queries;
    unsigned a_queries_for_noaddr;   /* A/AAAA queries for noaddr.test itself */
};

struct fixture {
    struct event_base *base;
    struct responder dns;
    struct netaddr server;
    struct mx_resolver *r;
    struct mx_result res;
    int done;
    unsigned calls;
};

static int name_decode(const unsigned char *p, size_t len, size_t *off, char *out, size_t n)
{
    size_t o = 0;
    while (*off < len) {
        unsigned l = p[(*off)++];
        if (l == 0) {
            out[o] = '\0';
            return 0;
        }
        if (l > 63 || *off + l > len || o + l + 2 > n)
            return -1;
        if (o)
            out[o++] = '.';
        for (unsigned i = 0; i < l; i++)
            out[o++] = (char)p[(*off)++];
    }
    return -1;
}

static size_t name_encode(const char *name, unsigned char *out)
{
    size_t o = 0;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        out[o++] = (unsigned char)l;
        memcpy(out + o, p, l);
        o += l;
        p += l;
        if (*p == '.')
            p++;
    }
    out[o++] = 0;
    return o;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void responder_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct responder *d = arg;
    (void)what;
    unsigned char q[512], a[1500];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 17)
        return;
    d->queries++;
    size_t off = 12;
    char qname[256];
    if (name_decode(q, (size_t)n, &off, qname, sizeof qname) < 0 || off + 4 > (size_t)n)
        return;
    int qtype = (q[off] << 8) | q[off + 1];
    size_t qend = off + 4;
    if (strcasecmp(qname, "noaddr.test") == 0 && qtype != TYPE_MX)
        d->a_queries_for_noaddr++;

    int rcode = 0;
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        if (strcasecmp(specials[i].name, qname) == 0) {
            if (specials[i].drop)
                return;
            rcode = specials[i].rcode;
        }
    int exists = 0;
    for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++)
        if (strcasecmp(zone[i].name, qname) == 0)
            exists = 1;
    if (!exists && rcode == 0)
        rcode = RCODE_NXDOMAIN;

    memcpy(a, q, qend);
    a[2] = (unsigned char)(0x80 | (q[2] & 0x01));   /* QR, keep RD */
    a[3] = (unsigned char)(0x80 | rcode);           /* RA */
    put16(a + 6, 0);
    put16(a + 8, 0);
    put16(a + 10, 0);
    size_t o = qend;
    unsigned an = 0;
    for (size_t i = 0; rcode == 0 && i < sizeof zone / sizeof zone[0]; i++) {
        if (strcasecmp(zone[i].name, qname) != 0 || zone[i].type != qtype)
            continue;
        a[o++] = 0xc0;        /* owner: pointer to the question name */
        a[o++] = 12;
        put16(a + o, (unsigned)qtype);
        put16(a + o + 2, 1);
        memset(a + o + 4, 0, 4);
        a[o + 7] = 60;        /* TTL */
        o += 8;
        if (qtype == TYPE_A) {
            put16(a + o, 4);
            inet_pton(AF_INET, zone[i].data, a + o + 2);
            o += 6;
        } else {
            size_t rdl = 2 + name_encode(zone[i].data, a + o + 4);
            put16(a + o, (unsigned)rdl);
            put16(a + o + 2, (unsigned)zone[i].pref);
            o += 2 + rdl;
        }
        an++;
    }
    put16(a + 6, an);
    sendto(fd, a, o, 0, (struct sockaddr *)&from, fl);
}

static int responder_start(struct event_base *base, struct responder *d)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (d->fd < 0 || bind(d->fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        return -1;
    socklen_t sl = sizeof sin;
    if (getsockname(d->fd, (struct sockaddr *)&sin, &sl) < 0)
        return -1;
    d->port = ntohs(sin.sin_port);
    d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, responder_on_read, d);
    return d->ev ? event_add(d->ev, NULL) : -1;
}

static void on_result(const struct mx_result *res, void *arg)
{
    struct fixture *f = arg;
    f->res = *res;
    f->done = 1;
    f->calls++;
    event_base_loopbreak(f->base);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void run_loop(struct fixture *f, int seconds)
{
    struct event *wd = evtimer_new(f->base, on_watchdog, f->base);
    struct timeval tv = { seconds, 0 };
    evtimer_add(wd, &tv);
    event_base_dispatch(f->base);
    event_free(wd);
}

static int make_resolver(struct fixture *f, unsigned timeout_ms)
{
    struct mx_resolver_options o = { &f->server, "relay.example", 2526, timeout_ms, 1 };
    struct etrn_err err;
    return mx_resolver_new(&f->r, f->base, &o, &err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    if (!f->base || responder_start(f->base, &f->dns) < 0)
        return -1;
    char text[64];
    str_format(text, sizeof text, "127.0.0.1:%d", f->dns.port);
    struct etrn_err err;
    if (netaddr_parse(text, -1, &f->server, &err) < 0)
        return -1;
    if (make_resolver(f, 300) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mx_resolver_free(f->r);
    event_free(f->dns.ev);
    close(f->dns.fd);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void resolve(struct fixture *f, const char *domain)
{
    struct etrn_err err;
    f->done = 0;
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(mx_resolve(f->r, domain, on_result, f, &err), 0);
    assert_int_equal(f->done, 0);          /* never answered from inside mx_resolve */
    run_loop(f, 5);
    assert_int_equal(f->done, 1);
}

static const char *addr_text(const struct netaddr *a)
{
    static char buf[NETADDR_TEXT_MAX];
    netaddr_format((const struct sockaddr *)&a->ss, buf, sizeof buf);
    return buf;
}

static void test_mx_hosts_sorted_by_preference(void **state)
{
    struct fixture *f = *state;
    resolve(f, "MX.test");
    assert_int_equal(f->res.status, MX_OK);
    assert_int_equal(f->res.implicit_mx, 0);
    assert_int_equal(f->res.nhosts, 3);
    assert_string_equal(f->res.hosts[0].name, "a.mx.test");
    assert_string_equal(f->res.hosts[1].name, "b.mx.test");
    assert_string_equal(f->res.hosts[2].name, "c.mx.test");
    assert_int_equal(f->res.hosts[0].naddrs, 1);
    assert_string_equal(addr_text(&f->res.hosts[0].addrs[0]), "127.0.0.2:2526");
    assert_string_equal(addr_text(&f->res.hosts[2].addrs[0]), "127.0.0.4:2526");
}

static void test_mx_equal_preferences_are_shuffled(void **state)
{
    struct fixture *f = *state;
    int seen_one_first = 0, seen_two_first = 0;
    for (int i = 0; i < 64 && !(seen_one_first && seen_two_first); i++) {
        resolve(f, "equal.test");
        assert_int_equal(f->res.status, MX_OK);
        assert_int_equal(f->res.nhosts, 2);
        if (strcmp(f->res.hosts[0].name, "one.equal.test") == 0)
            seen_one_first = 1;
        else
            seen_two_first = 1;
    }
    assert_true(seen_one_first);
    assert_true(seen_two_first);
}

static void test_mx_absent_uses_domain_address_as_implicit_mx(void **state)
{
    struct fixture *f = *state;
    resolve(f, "implicit.test");
    assert_int_equal(f->res.status, MX_OK);
    assert_int_equal(f->res.implicit_mx, 1);
    assert_int_equal(f->res.nhosts, 1);
    assert_string_equal(f->res.hosts[0].name, "implicit.test");
    assert_string_equal(addr_text(&f->res.hosts[0].addrs[0]), "127.0.0.9:2526");
}

static void test_mx_null_mx_fails_permanently_without_address_fallback(void **state)
{
    struct fixture *f = *state;
    resolve(f, "nullmx.test");
    assert_int_equal(f->res.status, MX_PERMFAIL);
    assert_int_equal(f->res.null_mx, 1);
    assert_int_equal(f->res.nhosts, 0);
    assert_string_equal(f->res.enh, "5.1.10");
}

static void test_mx_nxdomain_fails_permanently(void **state)
{
    struct fixture *f = *state;
    resolve(f, "nonexistent.test");
    assert_int_equal(f->res.status, MX_PERMFAIL);
    assert_non_null(strstr(f->res.error, "NXDOMAIN"));
}

static void test_mx_servfail_fails_temporarily(void **state)
{
    struct fixture *f = *state;
    resolve(f, "servfail.test");
    assert_int_equal(f->res.status, MX_TEMPFAIL);
    assert_int_equal(f->res.enh[0], '4');
}

static void test_mx_timeout_fails_temporarily(void **state)
{
    struct fixture *f = *state;
    resolve(f, "timeout.test");
    assert_int_equal(f->res.status, MX_TEMPFAIL);
    assert_non_null(strstr(f->res.error, "timed out"));
}

static void test_mx_host_without_address_is_skipped(void **state)
{
    struct fixture *f = *state;
    resolve(f, "skip.test");
    assert_int_equal(f->res.status, MX_OK);
    assert_int_equal(f->res.nhosts, 1);
    assert_string_equal(f->res.hosts[0].name, "real.skip.test");
    assert_string_equal(addr_text(&f->res.hosts[0].addrs[0]), "127.0.0.20:2526");
}

static void test_mx_present_never_falls_back_to_domain_address(void **state)
{
    struct fixture *f = *state;
    resolve(f, "noaddr.test");
    assert_int_equal(f->res.status, MX_PERMFAIL);
    assert_int_equal(f->res.nhosts, 0);
    assert_int_equal(f->dns.a_queries_for_noaddr, 0);
}

static void test_mx_address_servfail_is_temporary(void **state)
{
    struct fixture *f = *state;
    resolve(f, "slowhost.test");
    assert_int_equal(f->res.status, MX_TEMPFAIL);
}

static void test_mx_drops_own_preference_and_above(void **state)
{
    struct fixture *f = *state;
    resolve(f, "backup.test");
    assert_int_equal(f->res.status, MX_OK);
    assert_int_equal(f->res.nhosts, 1);
    assert_string_equal(f->res.hosts[0].name, "primary.backup.test");
}

static void test_mx_self_as_best_mx_is_undeliverable(void **state)
{
    struct fixture *f = *state;
    resolve(f, "selfbest.test");
    assert_int_equal(f->res.status, MX_PERMFAIL);
    assert_string_equal(f->res.enh, "5.4.6");
}

static void test_mx_multihomed_addresses_keep_resolver_order(void **state)
{
    struct fixture *f = *state;
    resolve(f, "multi.test");
    assert_int_equal(f->res.status, MX_OK);
    assert_int_equal(f->res.hosts[0].naddrs, 3);
    assert_string_equal(addr_text(&f->res.hosts[0].addrs[0]), "127.0.0.52:2526");
    assert_string_equal(addr_text(&f->res.hosts[0].addrs[1]), "127.0.0.51:2526");
    assert_string_equal(addr_text(&f->res.hosts[0].addrs[2]), "127.0.0.53:2526");
}

static void test_mx_free_cancels_pending_lookup(void **state)
{
    struct fixture *f = *state;
    struct etrn_err err;
    f->calls = 0;
    assert_int_equal(mx_resolve(f->r, "timeout.test", on_result, f, &err), 0);
    assert_int_equal(mx_resolve(f->r, "mx.test", on_result, f, &err), 0);
    mx_resolver_free(f->r);
    f->r = NULL;
    run_loop(f, 1);
    assert_int_equal(f->calls, 0);
    assert_int_equal(make_resolver(f, 300), 0);
}

static void test_mx_rejects_invalid_domain(void **state)
{
    struct fixture *f = *state;
    struct etrn_err err;
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mx_resolve(f->r, longname, on_result, f, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mx_hosts_sorted_by_preference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_equal_preferences_are_shuffled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_absent_uses_domain_address_as_implicit_mx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_null_mx_fails_permanently_without_address_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_nxdomain_fails_permanently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_servfail_fails_temporarily, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_timeout_fails_temporarily, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_host_without_address_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_present_never_falls_back_to_domain_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_address_servfail_is_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_drops_own_preference_and_above, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_self_as_best_mx_is_undeliverable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_multihomed_addresses_keep_resolver_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_free_cancels_pending_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_rejects_invalid_domain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
