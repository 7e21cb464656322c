/* test_dns_server.c — the simulator's DNS server seen from outside, by real resolvers.
 *
 *   make build/tests/test_dns_server && build/tests/test_dns_server
 *
 * Each test starts a server on 127.0.0.1 (ephemeral port), runs its event loop in a second
 * thread, and asks it with c-ares (ares_query against ares_set_servers_ports_csv) and with
 * dig (popen, +tries=1 +time=1). Between phases the loop is paused (the thread joins), so the
 * test changes records and quirks exactly as the scenario runner does: between queries, from
 * the loop's own thread of control. Every wait is bounded by a deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <ldns/ldns.h>

#include "dns_malformed.h"
#include "dns_quirks.h"
#include "dns_server.h"
#include "dns_zone.h"
#include "pcap_reader.h"
#include "pcap_writer.h"

#define T_MX 15
#define T_A 1
#define T_AAAA 28
#define T_TXT 16

/* --- the server in a thread ------------------------------------------------------------- */

struct fx {
    struct event_base *base;
    struct dns_server *srv;
    int port;
    char servers[64];              /* "127.0.0.1:PORT" for c-ares */
    int wake[2];
    struct event *wake_ev;
    pthread_t thread;
    int running;
};

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct fx *f = arg;
    char b[16];
    (void)what;
    while (read(fd, b, sizeof b) > 0)
        ;
    event_base_loopbreak(f->base);
}

static void *loop_main(void *arg)
{
    struct fx *f = arg;
    event_base_dispatch(f->base);
    return NULL;
}

static void fx_run(struct fx *f)
{
    assert_false(f->running);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
    f->running = 1;
}

static void fx_pause(struct fx *f)
{
    if (!f->running)
        return;
    assert_int_equal(write(f->wake[1], "x", 1), 1);
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    f->running = 0;
}

static void add(struct fx *f, const char *text)
{
    struct etrn_err err = {{0}};
    if (dns_server_add_record(f->srv, text, &err) < 0)
        fail_msg("add '%s': %s", text, err.msg);
}

static void quirk(struct fx *f, const char *name, const char *q)
{
    struct etrn_err err = {{0}};
    if (dns_server_set_quirk(f->srv, name, q, &err) < 0)
        fail_msg("quirk %s '%s': %s", name, q, err.msg);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct etrn_err err = {{0}};
    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    if (dns_server_new(&f->srv, f->base, "127.0.0.1:0", &err) < 0)
        fail_msg("dns_server_new: %s", err.msg);
    f->port = dns_server_port(f->srv);
    assert_true(f->port > 0);
    snprintf(f->servers, sizeof f->servers, "127.0.0.1:%d", f->port);
    assert_int_equal(pipe2(f->wake, O_NONBLOCK | O_CLOEXEC), 0);
    f->wake_ev = event_new(f->base, f->wake[0], EV_READ | EV_PERSIST, on_wake, f);
    assert_non_null(f->wake_ev);
    assert_int_equal(event_add(f->wake_ev, NULL), 0);
    /* The scenario short form and the full form, side by side. */
    add(f, "node.test MX 10 mx1.node.test");
    add(f, "node.test MX 20 mx2.node.test");
    add(f, "mx1.node.test. 300 IN A 127.0.0.2");
    add(f, "mx2.node.test A 127.0.0.3");
    add(f, "test SOA ns.test hostmaster.test 1 3600 600 86400 60");
    add(f, "alias.test CNAME node.test");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_pause(f);
    event_free(f->wake_ev);
    dns_server_free(f->srv);
    event_base_free(f->base);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f);
    return 0;
}

/* --- c-ares ------------------------------------------------------------------------------ */

struct cq {
    int done;
    int status;
    int order;
    int alen;
    unsigned char abuf[65536];
};

static int cq_order;

static void cq_callback(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct cq *q = arg;
    (void)timeouts;
    q->done = 1;
    q->status = status;
    q->order = ++cq_order;
    q->alen = 0;
    if (abuf != NULL && alen > 0 && (size_t)alen <= sizeof q->abuf) {
        memcpy(q->abuf, abuf, (size_t)alen);
        q->alen = alen;
    }
}

static ares_channel cares_channel(struct fx *f, int flags, int timeout_ms)
{
    ares_channel ch;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.timeout = timeout_ms;
    o.tries = 1;
    assert_int_equal(ares_init_options(&ch, &o,
                                       ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES),
                     ARES_SUCCESS);
    assert_int_equal(ares_set_servers_ports_csv(ch, f->servers), ARES_SUCCESS);
    return ch;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drives the channel until every query is done or 10 s have passed. */
static void cares_wait(ares_channel ch, struct cq **qs, int n)
{
    long long deadline = now_ms() + 10000;
    for (int rounds = 0; rounds < 100000 && now_ms() < deadline; rounds++) {
        int pending = 0;
        for (int i = 0; i < n; i++)
            pending += !qs[i]->done;
        if (pending == 0)
            return;
        fd_set r, w;
        FD_ZERO(&r);
        FD_ZERO(&w);
        int nfds = ares_fds(ch, &r, &w);
        struct timeval cap = {0, 100000}, tv, *t = ares_timeout(ch, &cap, &tv);
        if (select(nfds, &r, &w, NULL, t) < 0 && errno != EINTR)
            fail_msg("select: %s", strerror(errno));
        ares_process(ch, &r, &w);
    }
    for (int i = 0; i < n; i++)
        assert_true(qs[i]->done);
}

/* One query; the result lands in q (status, answer bytes). */
static void cares_query(struct fx *f, const char *name, int type, int flags, int timeout_ms,
                        struct cq *q)
{
    ares_channel ch = cares_channel(f, flags, timeout_ms);
    memset(q, 0, sizeof *q);
    ares_query(ch, name, 1 /* IN */, type, cq_callback, q);
    cares_wait(ch, &q, 1);
    ares_destroy(ch);
}

static struct cq *cq_new(void)
{
    struct cq *q = calloc(1, sizeof *q);
    assert_non_null(q);
    return q;
}

/* The MX records of an answer, "10 mx1.node.test,20 mx2.node.test", via ares_parse_mx_reply. */
static int mx_text(const struct cq *q, char *buf, size_t n)
{
    struct ares_mx_reply *mx = NULL;
    int rc = ares_parse_mx_reply(q->abuf, q->alen, &mx);
    buf[0] = '\0';
    if (rc != ARES_SUCCESS)
        return rc;
    size_t used = 0;
    for (struct ares_mx_reply *m = mx; m != NULL; m = m->next) {
        int w = snprintf(buf + used, n - used, "%s%d %s", used ? "," : "", m->priority, m->host);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    ares_free_data(mx);
    return ARES_SUCCESS;
}

static ldns_pkt *cq_packet(const struct cq *q)
{
    ldns_pkt *p = NULL;
    assert_true(q->alen > 0);
    assert_int_equal(ldns_wire2pkt(&p, q->abuf, (size_t)q->alen), LDNS_STATUS_OK);
    return p;
}

/* --- dig --------------------------------------------------------------------------------- */

static char dig_out[65536];

static const char *dig(struct fx *f, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "timeout 10 dig @127.0.0.1 -p %d +tries=1 +time=1 %s 2>&1", f->port, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(dig_out, 1, sizeof dig_out - 1, p);
    dig_out[n] = '\0';
    pclose(p);
    if (n == 0)
        fail_msg("dig printed nothing (is dnsutils installed?)");
    return dig_out;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* --- plain answers ----------------------------------------------------------------------- */

static void test_dns_answers_mx_with_target_addresses(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    const char *d = dig(f, "node.test MX");
    fx_pause(f);

    assert_int_equal(q->status, ARES_SUCCESS);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    ldns_pkt *p = cq_packet(q);
    assert_true(ldns_pkt_aa(p));
    assert_int_equal(ldns_pkt_arcount(p), 2);   /* A of mx1 and mx2 */
    ldns_pkt_free(p);
    assert_non_null(strstr(d, "status: NOERROR"));
    assert_non_null(strstr(d, "flags: qr aa rd ra"));
    assert_non_null(strstr(d, "mx1.node.test.\t\t300\tIN\tA\t127.0.0.2"));
    assert_non_null(strstr(d, "node.test.\t\t60\tIN\tMX\t10 mx1.node.test."));
    free(q);
}

static void test_dns_follows_cname_to_the_target_records(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    fx_run(f);
    cares_query(f, "alias.test", T_MX, 0, 2000, q);
    const char *d = dig(f, "alias.test MX");
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    assert_non_null(strstr(d, "alias.test.\t\t60\tIN\tCNAME\tnode.test."));
    free(q);
}

static void test_dns_tells_nodata_from_nxdomain(void **state)
{
    struct fx *f = *state;
    struct cq *nodata = cq_new(), *nx = cq_new();
    add(f, "a.b.empty.test A 127.0.0.5");
    fx_run(f);
    cares_query(f, "mx1.node.test", T_MX, 0, 2000, nodata);
    cares_query(f, "nothing.test", T_MX, 0, 2000, nx);
    const char *d = dig(f, "b.empty.test MX");   /* an empty non-terminal exists */
    assert_non_null(strstr(d, "status: NOERROR"));
    assert_non_null(strstr(d, "AUTHORITY: 1"));
    assert_non_null(strstr(d, "IN\tSOA\tns.test. hostmaster.test."));
    d = dig(f, "nothing.test MX");
    assert_non_null(strstr(d, "status: NXDOMAIN"));
    assert_non_null(strstr(d, "IN\tSOA"));
    fx_pause(f);
    assert_int_equal(nodata->status, ARES_ENODATA);
    assert_int_equal(nx->status, ARES_ENOTFOUND);
    free(nodata);
    free(nx);
}

static void test_dns_names_ignore_case(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    fx_run(f);
    cares_query(f, "NoDe.TEST", T_MX, 0, 2000, q);
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    /* Name compression is case-blind, so the targets may come back in the question's case. */
    assert_int_equal(strcasecmp(mx, "10 mx1.node.test,20 mx2.node.test"), 0);
    assert_int_equal(dns_server_query_count(f->srv, "node.TEST.", "MX"), 1);
    free(q);
}

static void test_dns_serves_tcp_on_the_same_port(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_USEVC, 2000, q);
    const char *d = dig(f, "node.test MX +tcp");
    assert_non_null(strstr(d, "status: NOERROR"));
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    struct dns_query_log_entry log[8];
    size_t n = dns_server_query_log(f->srv, log, 8);
    assert_int_equal(n, 2);
    assert_int_equal(log[0].transport, DNS_TRANSPORT_TCP);
    assert_int_equal(log[1].transport, DNS_TRANSPORT_TCP);
    free(q);
}

static void test_dns_sets_tc_when_the_answer_does_not_fit_512(void **state)
{
    struct fx *f = *state;
    struct cq *tc = cq_new(), *full = cq_new();
    char rec[128];
    for (int i = 1; i <= 40; i++) {
        snprintf(rec, sizeof rec, "many.test A 127.0.1.%d", i);
        add(f, rec);
    }
    fx_run(f);
    cares_query(f, "many.test", T_A, ARES_FLAG_IGNTC, 2000, tc);
    cares_query(f, "many.test", T_A, 0, 2000, full);   /* c-ares retries over TCP */
    const char *d = dig(f, "many.test A +noedns +ignore");
    assert_non_null(strstr(d, "flags: qr aa tc rd ra"));
    d = dig(f, "many.test A");   /* EDNS 1232: fits */
    assert_non_null(strstr(d, "ANSWER: 40"));
    fx_pause(f);
    ldns_pkt *p = cq_packet(tc);
    assert_true(ldns_pkt_tc(p));
    assert_int_equal(ldns_pkt_ancount(p), 0);
    ldns_pkt_free(p);
    assert_int_equal(full->status, ARES_SUCCESS);
    p = cq_packet(full);
    assert_int_equal(ldns_pkt_ancount(p), 40);
    ldns_pkt_free(p);
    free(tc);
    free(full);
}

static void test_dns_default_ttl_is_60_and_given_ttls_are_kept(void **state)
{
    struct fx *f = *state;
    struct cq *q1 = cq_new(), *q2 = cq_new();
    struct ares_addrttl ttls[4];
    int nttls = 4;
    fx_run(f);
    cares_query(f, "mx1.node.test", T_A, 0, 2000, q1);
    cares_query(f, "mx2.node.test", T_A, 0, 2000, q2);
    fx_pause(f);
    assert_int_equal(ares_parse_a_reply(q1->abuf, q1->alen, NULL, ttls, &nttls), ARES_SUCCESS);
    assert_int_equal(nttls, 1);
    assert_int_equal(ttls[0].ttl, 300);
    nttls = 4;
    assert_int_equal(ares_parse_a_reply(q2->abuf, q2->alen, NULL, ttls, &nttls), ARES_SUCCESS);
    assert_int_equal(ttls[0].ttl, 60);
    free(q1);
    free(q2);
}

static void test_dns_removed_records_are_gone(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    struct etrn_err err = {{0}};
    assert_int_equal(dns_server_remove_records(f->srv, "node.test", "MX", &err), 2);
    assert_int_equal(dns_server_remove_records(f->srv, "node.test", "MX", &err), 0);
    assert_int_equal(dns_server_remove_records(f->srv, "node.test", "BOGUS", &err), -1);
    assert_non_null(strstr(err.msg, "BOGUS"));
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    fx_pause(f);
    /* node.test still exists: mx1.node.test is below it (an empty non-terminal). */
    assert_int_equal(q->status, ARES_ENODATA);
    free(q);
}

static void test_dns_answers_change_between_queries(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);   /* also fills the answer cache */
    assert_int_equal(q->status, ARES_SUCCESS);
    fx_pause(f);
    add(f, "node.test MX 5 mx0.node.test");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    fx_pause(f);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_non_null(strstr(mx, "5 mx0.node.test"));
    quirk(f, "node.test", "servfail");
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_NOCHECKRESP, 2000, q);
    fx_pause(f);
    assert_int_equal(q->status, ARES_ESERVFAIL);
    struct etrn_err err = {{0}};
    assert_int_equal(dns_server_clear_quirk(f->srv, "node.test", NULL, &err), 1);
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);
    free(q);
}

/* --- quirks: the answer ------------------------------------------------------------------ */

/* Answers are cached (by query bytes) for names without quirks, also while other names have
 * some; every change of records or quirks must show at the very next query. */
static void test_answers_follow_every_change_while_other_names_are_quirked(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    quirk(f, "other.test", "servfail");
    fx_run(f);
    assert_string_equal(dig(f, "node.test MX +short"), "10 mx1.node.test.\n20 mx2.node.test.\n");
    assert_string_equal(dig(f, "node.test MX +short"), "10 mx1.node.test.\n20 mx2.node.test.\n");
    assert_non_null(strstr(dig(f, "other.test MX"), "status: SERVFAIL"));
    fx_pause(f);
    quirk(f, "node.test", "nxdomain");
    fx_run(f);
    assert_non_null(strstr(dig(f, "node.test MX"), "status: NXDOMAIN"));
    fx_pause(f);
    assert_int_equal(dns_server_clear_quirk(f->srv, "node.test", NULL, &err), 1);
    add(f, "node.test MX 30 mx3.node.test");
    fx_run(f);
    const char *d = dig(f, "node.test MX +short");
    assert_non_null(strstr(d, "30 mx3.node.test.\n"));
    assert_non_null(strstr(d, "10 mx1.node.test.\n"));
    fx_pause(f);
    assert_int_equal(dns_server_remove_records(f->srv, "node.test", "MX", &err), 3);
    dns_server_set_answer_cache(f->srv, 0);
    fx_run(f);
    assert_non_null(strstr(dig(f, "node.test MX"), "ANSWER: 0"));
    fx_pause(f);
    assert_int_equal(dns_server_query_count(f->srv, "node.test", "MX"), 5);
}

static void test_quirk_servfail_reaches_resolvers(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new(), *other = cq_new();
    quirk(f, "node.test", "servfail");
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_NOCHECKRESP, 2000, q);
    cares_query(f, "mx1.node.test", T_A, 0, 2000, other);
    const char *d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "status: SERVFAIL"));
    fx_pause(f);
    assert_int_equal(q->status, ARES_ESERVFAIL);
    assert_int_equal(other->status, ARES_SUCCESS);   /* only the quirked name */
    free(q);
    free(other);
}

static void test_quirk_refused_nxdomain_nodata_and_rcode(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    fx_run(f);
    fx_pause(f);
    quirk(f, "node.test", "refused");
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_NOCHECKRESP, 2000, q);
    assert_int_equal(q->status, ARES_EREFUSED);
    assert_non_null(strstr(dig(f, "node.test MX"), "status: REFUSED"));
    fx_pause(f);

    quirk(f, "node.test", "nxdomain");   /* replaces refused: one outcome at a time */
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    assert_int_equal(q->status, ARES_ENOTFOUND);
    const char *d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "status: NXDOMAIN"));
    assert_non_null(strstr(d, "IN\tSOA"));
    fx_pause(f);

    quirk(f, "node.test", "nodata");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    assert_int_equal(q->status, ARES_ENODATA);
    fx_pause(f);

    quirk(f, "node.test", "rcode NOTIMP");
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_NOCHECKRESP, 2000, q);
    assert_int_equal(q->status, ARES_ENOTIMP);
    assert_non_null(strstr(dig(f, "node.test MX"), "status: NOTIMP"));
    fx_pause(f);
    free(q);
}

static void test_quirk_timeout_sends_nothing(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    quirk(f, "node.test", "timeout");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 300, q);
    const char *d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "timed out"));
    assert_null(strstr(d, "status:"));
    fx_pause(f);
    assert_int_equal(q->status, ARES_ETIMEOUT);
    struct dns_query_log_entry log[4];
    assert_int_equal(dns_server_query_log(f->srv, log, 4), 2);
    assert_int_equal(log[0].rcode, -1);
    assert_string_equal(log[0].quirks, "timeout");
    free(q);
}

static void test_quirk_delay_answers_after_the_others(void **state)
{
    struct fx *f = *state;
    struct cq *slow = cq_new(), *fast = cq_new();
    char mx[256];
    quirk(f, "node.test", "delay 700ms");
    fx_run(f);
    ares_channel ch = cares_channel(f, 0, 5000);
    ares_query(ch, "node.test", 1, T_MX, cq_callback, slow);
    ares_query(ch, "mx1.node.test", 1, T_A, cq_callback, fast);
    struct cq *both[2] = {slow, fast};
    cares_wait(ch, both, 2);
    ares_destroy(ch);
    /* dig gives up after 1 s; a 1.5 s delay is past that. */
    fx_pause(f);
    quirk(f, "node.test", "delay 1500ms");
    fx_run(f);
    const char *d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "timed out"));
    fx_pause(f);
    assert_int_equal(slow->status, ARES_SUCCESS);
    assert_int_equal(mx_text(slow, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    assert_int_equal(fast->status, ARES_SUCCESS);
    assert_true(fast->order < slow->order);
    free(slow);
    free(fast);
}

static void test_quirk_truncate_sets_tc_over_udp_only(void **state)
{
    struct fx *f = *state;
    struct cq *udp = cq_new(), *retried = cq_new();
    char mx[256];
    quirk(f, "node.test", "truncate");
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_IGNTC, 2000, udp);
    cares_query(f, "node.test", T_MX, 0, 2000, retried);
    const char *d = dig(f, "node.test MX +ignore");
    assert_non_null(strstr(d, "flags: qr aa tc rd ra"));
    assert_non_null(strstr(d, "ANSWER: 0"));
    d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "Truncated, retrying in TCP mode"));
    assert_non_null(strstr(d, "ANSWER: 2"));
    fx_pause(f);
    ldns_pkt *p = cq_packet(udp);
    assert_true(ldns_pkt_tc(p));
    assert_int_equal(ldns_pkt_ancount(p), 0);
    ldns_pkt_free(p);
    assert_int_equal(retried->status, ARES_SUCCESS);
    assert_int_equal(mx_text(retried, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    free(udp);
    free(retried);
}

static void test_quirk_wrong_id_and_wrong_question_are_ignored_by_resolvers(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    quirk(f, "node.test", "wrong-id");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 300, q);
    assert_int_equal(q->status, ARES_ETIMEOUT);
    assert_non_null(strstr(dig(f, "node.test MX"), "ID mismatch"));
    fx_pause(f);
    assert_int_equal(dns_server_clear_quirk(f->srv, "node.test", "wrong-id", NULL), 1);
    quirk(f, "node.test", "wrong-question other.test");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 300, q);
    assert_int_equal(q->status, ARES_ETIMEOUT);
    assert_non_null(strstr(dig(f, "node.test MX"), "Question section mismatch: got other.test/MX/IN"));
    fx_pause(f);
    free(q);
}

static void test_quirk_case_0x20_echoes_a_differently_cased_question(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    quirk(f, "node.test", "case-0x20");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    const char *d = dig(f, "node.test MX");
    assert_null(strstr(d, ";node.test.\t"));
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);   /* c-ares compares questions ignoring case */
    ldns_pkt *p = cq_packet(q);
    char *qn = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
    assert_string_not_equal(qn, "node.test.");
    assert_int_equal(strcasecmp(qn, "node.test."), 0);
    free(qn);
    ldns_pkt_free(p);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_int_equal(strcasecmp(mx, "10 mx1.node.test,20 mx2.node.test"), 0);
    free(q);
}

static void test_quirk_oversize_sends_udp_over_512_without_tc(void **state)
{
    struct fx *f = *state;
    struct cq *cut = cq_new(), *retried = cq_new();
    quirk(f, "node.test", "oversize");
    fx_run(f);
    /* c-ares reads 512 octets of a plain UDP answer; the TC bit is clear all the same. */
    cares_query(f, "node.test", T_MX, ARES_FLAG_IGNTC, 2000, cut);
    /* Without IGNTC c-ares takes an over-long datagram as truncated and asks over TCP. */
    cares_query(f, "node.test", T_MX, 0, 2000, retried);
    const char *d = dig(f, "node.test MX +noedns");
    assert_null(strstr(d, " tc "));
    const char *size = strstr(d, "MSG SIZE  rcvd: ");
    assert_non_null(size);
    assert_true(atoi(size + 16) > 512);
    d = dig(f, "node.test MX");   /* EDNS 1232 advertised: the answer is over that */
    size = strstr(d, "MSG SIZE  rcvd: ");
    assert_non_null(size);
    assert_true(atoi(size + 16) > 1232);
    fx_pause(f);
    assert_int_equal(cut->alen, 512);
    assert_int_equal(cut->abuf[2] & 0x02, 0);
    assert_int_equal(retried->status, ARES_SUCCESS);
    struct dns_query_log_entry log[8];
    size_t n = dns_server_query_log(f->srv, log, 8);
    assert_true(n >= 3);
    assert_int_equal(log[1].transport, DNS_TRANSPORT_UDP);
    assert_int_equal(log[2].transport, DNS_TRANSPORT_TCP);
    free(cut);
    free(retried);
}

static void test_quirk_drop_tcp_resets_tcp_but_udp_answers(void **state)
{
    struct fx *f = *state;
    struct cq *tcp = cq_new(), *udp = cq_new();
    quirk(f, "node.test", "drop-tcp");
    fx_run(f);
    cares_query(f, "node.test", T_MX, ARES_FLAG_USEVC, 1000, tcp);
    cares_query(f, "node.test", T_MX, 0, 2000, udp);
    const char *d = dig(f, "node.test MX +tcp");
    assert_non_null(strstr(d, "connection reset"));
    fx_pause(f);
    assert_int_not_equal(tcp->status, ARES_SUCCESS);
    assert_int_equal(udp->status, ARES_SUCCESS);
    free(tcp);
    free(udp);
}

/* --- quirks: the records ----------------------------------------------------------------- */

static void test_quirk_cname_chain_leads_to_the_real_records(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new(), *mid = cq_new();
    char mx[256];
    quirk(f, "node.test", "cname-chain 3");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    cares_query(f, "c2.node.test", T_MX, 0, 2000, mid);
    const char *d = dig(f, "node.test MX");
    assert_int_equal(count_lines_with(d, "\tIN\tCNAME\t"), 3);
    assert_non_null(strstr(d, "c3.node.test.\t\t60\tIN\tMX\t10 mx1.node.test."));
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    ldns_pkt *p = cq_packet(mid);
    assert_int_equal(ldns_pkt_ancount(p), 3);   /* c2 -> c3, then c3's two MX */
    ldns_pkt_free(p);
    free(q);
    free(mid);
}

static void test_quirk_cname_loop_never_ends_in_records(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    quirk(f, "node.test", "cname-loop");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    const char *d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "node.test.\t\t60\tIN\tCNAME\tloop.node.test."));
    assert_non_null(strstr(d, "loop.node.test.\t\t60\tIN\tCNAME\tnode.test."));
    d = dig(f, "loop.node.test MX");
    assert_non_null(strstr(d, "loop.node.test.\t\t60\tIN\tCNAME\tnode.test."));
    fx_pause(f);
    /* c-ares finds no MX at the end of the chain. */
    int rc = mx_text(q, mx, sizeof mx);
    assert_true(q->status != ARES_SUCCESS || rc != ARES_SUCCESS || mx[0] == '\0');
    free(q);
}

static void test_quirk_mx_to_cname_points_mx_at_an_alias(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new(), *a = cq_new();
    char mx[256];
    struct ares_addrttl ttls[4];
    int nttls = 4;
    quirk(f, "node.test", "mx-to-cname");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    cares_query(f, "alias.mx1.node.test", T_A, 0, 2000, a);
    assert_non_null(strstr(dig(f, "alias.mx1.node.test A"),
                           "alias.mx1.node.test.\t60\tIN\tCNAME\tmx1.node.test."));
    fx_pause(f);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 alias.mx1.node.test,20 alias.mx2.node.test");
    assert_int_equal(ares_parse_a_reply(a->abuf, a->alen, NULL, ttls, &nttls), ARES_SUCCESS);
    assert_int_equal(nttls, 1);
    assert_int_equal(ntohl(ttls[0].ipaddr.s_addr), 0x7f000002);
    free(q);
    free(a);
}

static void test_quirk_mx_no_address_hides_the_target_addresses(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new(), *a = cq_new();
    char mx[256];
    quirk(f, "node.test", "mx-no-address");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    cares_query(f, "mx1.node.test", T_A, 0, 2000, a);
    fx_pause(f);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    ldns_pkt *p = cq_packet(q);
    assert_int_equal(ldns_pkt_arcount(p), 0);
    ldns_pkt_free(p);
    assert_int_equal(a->status, ARES_ENODATA);
    free(q);
    free(a);
}

static void test_quirk_null_mx_is_a_single_mx_0_root(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new(), *a = cq_new();
    char mx[256];
    add(f, "node.test A 127.0.0.2");
    quirk(f, "node.test", "null-mx");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    cares_query(f, "node.test", T_A, 0, 2000, a);
    const char *d = dig(f, "node.test MX +short");
    assert_string_equal(d, "0 .\n");
    fx_pause(f);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "0 ");
    assert_int_equal(a->status, ARES_SUCCESS);   /* the A record stays (R7505-3a) */
    free(q);
    free(a);
}

static void test_quirk_ttl0_zeroes_every_ttl(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    quirk(f, "node.test", "ttl0");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    fx_pause(f);
    ldns_pkt *p = cq_packet(q);
    assert_int_equal(ldns_pkt_ancount(p), 2);
    for (size_t i = 0; i < ldns_pkt_ancount(p); i++)
        assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), i)), 0);
    for (size_t i = 0; i < ldns_pkt_arcount(p); i++)
        assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_additional(p), i)), 0);
    ldns_pkt_free(p);
    free(q);
}

static void test_quirk_flap_alternates_answers(void **state)
{
    struct fx *f = *state;
    struct cq *q[4];
    char mx[256];
    for (int i = 0; i < 4; i++)
        q[i] = cq_new();
    quirk(f, "node.test", "flap");
    fx_run(f);
    for (int i = 0; i < 3; i++)
        cares_query(f, "node.test", T_MX, 0, 2000, q[i]);
    fx_pause(f);
    assert_int_equal(q[0]->status, ARES_SUCCESS);
    assert_int_equal(q[1]->status, ARES_ENOTFOUND);
    assert_int_equal(q[2]->status, ARES_SUCCESS);

    /* Two record sets: the zone's and the one given with flap. */
    dns_server_clear_quirk(f->srv, "node.test", "flap", NULL);
    dns_server_stats_reset(f->srv);
    quirk(f, "node.test", "flap MX 30 mx3.node.test");
    quirk(f, "node.test", "flap MX 40 mx4.node.test");
    fx_run(f);
    for (int i = 0; i < 4; i++)
        cares_query(f, "node.test", T_MX, 0, 2000, q[i]);
    fx_pause(f);
    assert_int_equal(mx_text(q[0], mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    assert_int_equal(mx_text(q[1], mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "30 mx3.node.test,40 mx4.node.test");
    assert_int_equal(mx_text(q[2], mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "10 mx1.node.test,20 mx2.node.test");
    assert_int_equal(mx_text(q[3], mx, sizeof mx), ARES_SUCCESS);
    assert_string_equal(mx, "30 mx3.node.test,40 mx4.node.test");
    for (int i = 0; i < 4; i++)
        free(q[i]);
}

/* --- quirks: broken packets -------------------------------------------------------------- */

static void test_quirk_cut_off_packet_is_malformed(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    quirk(f, "node.test", "cut-off");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    const char *d = dig(f, "node.test MX");
    assert_true(strstr(d, "malformed") != NULL || strstr(d, "unexpected end") != NULL);
    fx_pause(f);
    assert_int_equal(mx_text(q, mx, sizeof mx), ARES_EBADRESP);
    ldns_pkt *p = NULL;
    assert_int_not_equal(ldns_wire2pkt(&p, q->abuf, (size_t)q->alen), LDNS_STATUS_OK);
    struct dns_query_log_entry log[2];
    assert_int_equal(dns_server_query_log(f->srv, log, 1), 1);
    assert_int_equal(log[0].malformed, 1);
    free(q);
}

static void test_quirk_pointer_loop_is_rejected(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    char mx[256];
    quirk(f, "node.test", "pointer-loop");
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    const char *d = dig(f, "node.test MX");
    assert_non_null(strstr(d, "bad compression pointer"));
    fx_pause(f);
    assert_int_not_equal(mx_text(q, mx, sizeof mx), ARES_SUCCESS);
    free(q);
}

static void test_malformed_cut_off_ends_inside_the_first_answer(void **state)
{
    (void)state;
    ldns_pkt *p = ldns_pkt_new();
    ldns_rr *rr = NULL;
    uint8_t *w = NULL;
    size_t n = 0;
    assert_int_equal(dns_record_parse(&rr, "node.test MX 10 mx1.node.test", NULL, 60, NULL), 0);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(rr));
    ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    assert_int_equal(ldns_pkt2wire(&w, p, &n), LDNS_STATUS_OK);
    size_t cut = dns_malformed_cut_off(w, n);
    assert_true(cut > DNS_HEADER_LEN && cut < n);
    ldns_pkt *back = NULL;
    assert_int_not_equal(ldns_wire2pkt(&back, w, cut), LDNS_STATUS_OK);
    assert_int_equal(dns_malformed_cut_off(w, 5), 5);   /* too short to cut */
    free(w);
    ldns_pkt_free(p);
}

/* --- the quirk table --------------------------------------------------------------------- */

static void test_quirk_star_applies_to_every_name_and_own_quirks_win(void **state)
{
    struct fx *f = *state;
    struct cq *a = cq_new(), *b = cq_new();
    quirk(f, "*", "servfail");
    quirk(f, "node.test", "nodata");
    fx_run(f);
    cares_query(f, "mx1.node.test", T_A, ARES_FLAG_NOCHECKRESP, 2000, a);
    cares_query(f, "node.test", T_MX, ARES_FLAG_NOCHECKRESP, 2000, b);
    fx_pause(f);
    assert_int_equal(a->status, ARES_ESERVFAIL);
    assert_int_equal(b->status, ARES_ENODATA);
    free(a);
    free(b);
}

static void test_quirk_errors_name_the_problem(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    assert_int_equal(dns_server_set_quirk(f->srv, "node.test", "servfial", &err), -1);
    assert_non_null(strstr(err.msg, "unknown DNS quirk 'servfial'"));
    assert_non_null(strstr(err.msg, "servfail"));
    assert_int_equal(dns_server_set_quirk(f->srv, "node.test", "delay 50", &err), -1);
    assert_non_null(strstr(err.msg, "needs a unit"));
    assert_int_equal(dns_server_set_quirk(f->srv, "node.test", "cname-chain 17", &err), -1);
    assert_int_equal(dns_server_set_quirk(f->srv, "node.test", "servfail now", &err), -1);
    assert_non_null(strstr(err.msg, "takes no argument"));
    assert_int_equal(dns_server_set_quirk(f->srv, "node.test", "flap MXX 1 x", &err), -1);
    assert_non_null(strstr(err.msg, "unknown record type 'MXX'"));
    assert_int_equal(dns_server_clear_quirk(f->srv, "node.test", "bogus", &err), -1);
    assert_int_equal(dns_server_clear_quirk(f->srv, "node.test", NULL, &err), 0);
}

static void test_quirk_table_is_bounded(void **state)
{
    (void)state;
    struct dns_quirk_table *t;
    struct etrn_err err = {{0}};
    char name[64];
    assert_int_equal(dns_quirk_table_new(&t, &err), 0);
    for (int i = 0; i < DNS_QUIRK_TABLE_MAX; i++) {
        snprintf(name, sizeof name, "n%d.test", i);
        assert_int_equal(dns_quirk_table_set_text(t, name, "ttl0", NULL, &err), 0);
    }
    assert_int_equal(dns_quirk_table_set_text(t, "one-more.test", "ttl0", NULL, &err), -1);
    assert_non_null(strstr(err.msg, "too many names"));
    assert_int_equal(dns_quirk_table_set_text(t, "n1.test", "servfail", NULL, &err), 0);
    dns_quirk_table_free(t);
}

/* --- zone files -------------------------------------------------------------------------- */

static void test_zone_file_loads_with_origin_ttl_parentheses_and_directives(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    struct cq *mx = cq_new(), *txt = cq_new(), *broken = cq_new(), *chained = cq_new();
    char text[256];
    dns_server_remove_records(f->srv, "node.test", NULL, &err);
    if (dns_server_load_zone_file(f->srv, "fixtures/zones/node.test.zone", &err) < 0
        || dns_server_load_zone_file(f->srv, "fixtures/zones/quirks.test.zone", &err) < 0)
        fail_msg("%s", err.msg);
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, mx);
    cares_query(f, "node.test", T_TXT, 0, 2000, txt);
    cares_query(f, "broken.quirks.test", T_MX, ARES_FLAG_NOCHECKRESP, 2000, broken);
    cares_query(f, "chained.quirks.test", T_MX, 0, 2000, chained);
    const char *d = dig(f, "test SOA");
    assert_non_null(strstr(d, "test.\t\t\t300\tIN\tSOA\tns.test. hostmaster.test. 2026112201 3600 "
                              "600 86400 60"));
    fx_pause(f);
    assert_int_equal(mx_text(mx, text, sizeof text), ARES_SUCCESS);
    assert_string_equal(text, "10 mx1.node.test,20 mx2.node.test");
    ldns_pkt *p = cq_packet(txt);
    char *s = ldns_rr2str(ldns_rr_list_rr(ldns_pkt_answer(p), 0));
    assert_non_null(strstr(s, "\"v=spf1 -all ; not a comment inside quotes\""));
    free(s);
    ldns_pkt_free(p);
    assert_int_equal(broken->status, ARES_ESERVFAIL);
    p = cq_packet(chained);
    assert_int_equal(ldns_pkt_ancount(p), 4);   /* three CNAMEs and the MX */
    ldns_pkt_free(p);
    free(mx);
    free(txt);
    free(broken);
    free(chained);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void test_zone_file_errors_name_file_and_line_and_add_nothing(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    char path[] = "/tmp/test_dns_zone_XXXXXX";
    char want[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    write_file(path, "partial.test A 127.0.0.9\n; fine so far\npartial.test MXX 10 x\n");
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    snprintf(want, sizeof want, "%s:3: unknown record type 'MXX'", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(dns_server_remove_records(f->srv, "partial.test", NULL, &err), 0);

    write_file(path, "$ORIGIN x.test.\n@ SOA ns hm (\n 1 2 3 4\n");
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    snprintf(want, sizeof want, "%s:2: '(' is never closed", path);
    assert_string_equal(err.msg, want);

    write_file(path, "a.test A 127.0.0.1\n;! quirk a.test servfial\n");
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    snprintf(want, sizeof want, "%s:2: unknown DNS quirk 'servfial'", path);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);

    write_file(path, "a.test A 1.2.3\n");
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    snprintf(want, sizeof want, "%s:1: A record for a.test.: cannot parse", path);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);

    write_file(path, "  A 127.0.0.1\n");
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    assert_non_null(strstr(err.msg, ":1: a line starting with a blank"));

    write_file(path, "$INCLUDE other.zone\n");
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    assert_non_null(strstr(err.msg, ":1: $INCLUDE is not supported"));

    /* A line over the limit is an error, not a silent split. */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("long.test TXT \"", fp);
    for (int i = 0; i < DNS_ZONE_LINE_MAX; i++)
        fputc('a', fp);
    fputs("\"\n", fp);
    fclose(fp);
    assert_int_equal(dns_server_load_zone_file(f->srv, path, &err), -1);
    assert_non_null(strstr(err.msg, ":1: line is too long"));

    assert_int_equal(dns_server_load_zone_file(f->srv, "/nonexistent/x.zone", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/x.zone: "));
    unlink(path);
}

static void test_record_text_errors_are_clear(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    assert_int_equal(dns_server_add_record(f->srv, "node.test BOGUS 1", &err), -1);
    assert_non_null(strstr(err.msg, "unknown record type 'BOGUS'"));
    assert_int_equal(dns_server_add_record(f->srv, "node.test MX", &err), -1);
    assert_non_null(strstr(err.msg, "MX record for node.test needs data"));
    assert_int_equal(dns_server_add_record(f->srv, "a..b A 127.0.0.1", &err), -1);
    /* TTL and class in either order, as RFC 1035 allows. */
    assert_int_equal(dns_server_add_record(f->srv, "x.test IN 30 A 127.0.0.1", &err), 0);
    assert_int_equal(dns_server_add_record(f->srv, "y.test 30 IN A 127.0.0.1", &err), 0);
}

static void test_apply_takes_scenario_lines(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    struct cq *q = cq_new();
    char *rec[] = {"dns", "n2.test", "MX", "10", "mx1.node.test"};
    char *qk[] = {"dns-quirk", "n2.test", "delay", "10ms"};
    char *clr[] = {"dns-clear", "n2.test", "delay"};
    char *bad[] = {"dns-quirk", "n2.test"};
    assert_int_equal(dns_server_apply(f->srv, rec, 5, &err), 0);
    assert_int_equal(dns_server_apply(f->srv, qk, 4, &err), 0);
    assert_int_equal(dns_server_apply(f->srv, clr, 3, &err), 0);
    assert_int_equal(dns_server_apply(f->srv, bad, 2, &err), -1);
    assert_non_null(strstr(err.msg, "dns-quirk needs NAME QUIRK"));
    fx_run(f);
    cares_query(f, "n2.test", T_MX, 0, 2000, q);
    fx_pause(f);
    assert_int_equal(q->status, ARES_SUCCESS);
    free(q);
}

/* --- what the server saw ----------------------------------------------------------------- */

static void test_stats_and_query_log_record_every_query(void **state)
{
    struct fx *f = *state;
    struct cq *q = cq_new();
    fx_run(f);
    for (int i = 0; i < 3; i++)
        cares_query(f, "node.test", T_MX, 0, 2000, q);   /* the 2nd and 3rd hit the cache */
    cares_query(f, "mx1.node.test", T_A, 0, 2000, q);
    fx_pause(f);
    assert_int_equal(dns_server_query_count(f->srv, "node.test", "MX"), 3);
    assert_int_equal(dns_server_query_count(f->srv, "NODE.TEST.", NULL), 3);
    assert_int_equal(dns_server_query_count(f->srv, "mx1.node.test", "A"), 1);
    assert_int_equal(dns_server_query_count(f->srv, "mx1.node.test", "MX"), 0);
    struct dns_query_stat st[8];
    assert_int_equal(dns_server_stats(f->srv, st, 8), 2);
    assert_string_equal(st[0].name, "node.test.");
    assert_string_equal(st[0].type, "MX");
    assert_int_equal(st[0].count, 3);

    struct dns_query_log_entry log[8];
    size_t n = dns_server_query_log(f->srv, log, 8);
    assert_int_equal(n, 4);
    assert_string_equal(log[2].name, "node.test.");
    assert_string_equal(log[2].type, "MX");
    assert_int_equal(log[2].rcode, 0);
    assert_int_equal(strncmp(log[2].from, "127.0.0.1:", 10), 0);
    assert_string_equal(log[3].name, "mx1.node.test.");
    char line[512];
    assert_true(dns_query_log_format(&log[3], line, sizeof line) > 0);
    assert_non_null(strstr(line, " udp 127.0.0.1:"));
    assert_non_null(strstr(line, " mx1.node.test. A -> NOERROR"));

    dns_server_stats_reset(f->srv);
    assert_int_equal(dns_server_query_count(f->srv, "node.test", "MX"), 0);
    assert_int_equal(dns_server_query_log(f->srv, log, 8), 0);
    free(q);
}

static void test_query_log_keeps_only_the_most_recent(void **state)
{
    struct fx *f = *state;
    /* Raw UDP queries: fast enough to fill the ring without a resolver per query. */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    to.sin_addr.s_addr = htonl(0x7f000001);
    ldns_pkt *p = NULL;
    uint8_t *w = NULL;
    size_t n = 0;
    assert_int_equal(ldns_pkt_query_new_frm_str(&p, "node.test", LDNS_RR_TYPE_MX,
                                                LDNS_RR_CLASS_IN, LDNS_RD), LDNS_STATUS_OK);
    assert_int_equal(ldns_pkt2wire(&w, p, &n), LDNS_STATUS_OK);
    struct timeval tv = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    fx_run(f);
    int answered = 0;
    for (int i = 0; i < DNS_SERVER_LOG_MAX + 10; i++) {
        uint8_t buf[1500];
        w[0] = (uint8_t)(i >> 8), w[1] = (uint8_t)i;
        assert_int_equal(sendto(s, w, n, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)n);
        if (recv(s, buf, sizeof buf, 0) > 0)
            answered++;
    }
    fx_pause(f);
    close(s);
    free(w);
    ldns_pkt_free(p);
    assert_int_equal(answered, DNS_SERVER_LOG_MAX + 10);
    struct dns_query_log_entry *log = calloc(DNS_SERVER_LOG_MAX + 10, sizeof *log);
    assert_non_null(log);
    assert_int_equal(dns_server_query_log(f->srv, log, DNS_SERVER_LOG_MAX + 10),
                     DNS_SERVER_LOG_MAX);
    assert_int_equal(log[DNS_SERVER_LOG_MAX - 1].id, (DNS_SERVER_LOG_MAX + 9) & 0xffff);
    assert_int_equal(log[0].id, 10);
    assert_int_equal(dns_server_query_count(f->srv, "node.test", "MX"), DNS_SERVER_LOG_MAX + 10);
    free(log);
}

static void test_garbage_gets_formerr_or_nothing(void **state)
{
    struct fx *f = *state;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    to.sin_addr.s_addr = htonl(0x7f000001);
    struct timeval tv = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t junk[20] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 'x'};
    uint8_t buf[512];
    fx_run(f);
    assert_int_equal(sendto(s, junk, sizeof junk, 0, (struct sockaddr *)&to, sizeof to),
                     (ssize_t)sizeof junk);
    ssize_t n = recv(s, buf, sizeof buf, 0);
    assert_true(n >= 12);
    assert_int_equal(buf[0], 0x12);
    assert_int_equal(buf[1], 0x34);
    assert_int_equal(buf[3] & 0x0f, LDNS_RCODE_FORMERR);
    /* A packet with QR set is an answer, not a query: no reply. */
    junk[2] = 0x81;
    sendto(s, junk, sizeof junk, 0, (struct sockaddr *)&to, sizeof to);
    assert_true(recv(s, buf, sizeof buf, 0) < 0);
    fx_pause(f);
    close(s);
}

static void test_capture_holds_udp_and_tcp_exchanges(void **state)
{
    struct fx *f = *state;
    struct etrn_err err = {{0}};
    struct pcap_writer *pw = NULL;
    struct cq *q = cq_new();
    char path[] = "/tmp/test_dns_pcap_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (pcap_writer_open(&pw, path, &err) < 0)
        fail_msg("%s", err.msg);
    dns_server_set_capture(f->srv, pw);
    fx_run(f);
    cares_query(f, "node.test", T_MX, 0, 2000, q);
    cares_query(f, "node.test", T_MX, ARES_FLAG_USEVC, 2000, q);
    fx_pause(f);
    dns_server_free(f->srv);   /* closes the TCP flow in the capture */
    f->srv = NULL;
    pcap_writer_close(pw);

    struct pcap_reader *rd = NULL;
    struct pcap_packet pk;
    int udp_q = 0, udp_a = 0, tcp_syn = 0, tcp_data = 0;
    if (pcap_reader_open(&rd, path, &err) < 0)
        fail_msg("%s", err.msg);
    for (int i = 0; i < 1000 && pcap_reader_next(rd, &pk, &err) == 1; i++) {
        int sport = ntohs(((struct sockaddr_in *)&pk.src)->sin_port);
        int dport = ntohs(((struct sockaddr_in *)&pk.dst)->sin_port);
        if (pk.proto == IPPROTO_UDP && dport == f->port)
            udp_q++;
        if (pk.proto == IPPROTO_UDP && sport == f->port && pk.len > 12)
            udp_a++;
        if (pk.proto == IPPROTO_TCP && (pk.tcp_flags & PCAP_TCP_SYN) && dport == f->port)
            tcp_syn++;
        if (pk.proto == IPPROTO_TCP && pk.len > 2)
            tcp_data++;
    }
    pcap_reader_close(rd);
    unlink(path);
    assert_int_equal(udp_q, 1);
    assert_int_equal(udp_a, 1);
    assert_int_equal(tcp_syn, 1);
    assert_int_equal(tcp_data, 2);
    free(q);
}

static void test_server_refuses_non_loopback_addresses(void **state)
{
    struct fx *f = *state;
    struct dns_server *d = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(dns_server_new(&d, f->base, "192.0.2.1:5353", &err), -1);
    assert_non_null(strstr(err.msg, "not a loopback address"));
    assert_int_equal(dns_server_new(&d, f->base, "127.0.0.1", &err), -1);
    /* The fixed port of a running server is taken: a clear error, not a silent other port. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    assert_int_equal(dns_server_new(&d, f->base, addr, &err), -1);
    char want[160];
    snprintf(want, sizeof want, "dns: cannot listen on %s (udp): Address already in use", addr);
    assert_string_equal(err.msg, want);
}

int main(void)
{
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
        return 1;
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_dns_answers_mx_with_target_addresses),
        T(test_dns_follows_cname_to_the_target_records),
        T(test_dns_tells_nodata_from_nxdomain),
        T(test_dns_names_ignore_case),
        T(test_dns_serves_tcp_on_the_same_port),
        T(test_dns_sets_tc_when_the_answer_does_not_fit_512),
        T(test_dns_default_ttl_is_60_and_given_ttls_are_kept),
        T(test_dns_removed_records_are_gone),
        T(test_dns_answers_change_between_queries),
        T(test_answers_follow_every_change_while_other_names_are_quirked),
        T(test_quirk_servfail_reaches_resolvers),
        T(test_quirk_refused_nxdomain_nodata_and_rcode),
        T(test_quirk_timeout_sends_nothing),
        T(test_quirk_delay_answers_after_the_others),
        T(test_quirk_truncate_sets_tc_over_udp_only),
        T(test_quirk_wrong_id_and_wrong_question_are_ignored_by_resolvers),
        T(test_quirk_case_0x20_echoes_a_differently_cased_question),
        T(test_quirk_oversize_sends_udp_over_512_without_tc),
        T(test_quirk_drop_tcp_resets_tcp_but_udp_answers),
        T(test_quirk_cname_chain_leads_to_the_real_records),
        T(test_quirk_cname_loop_never_ends_in_records),
        T(test_quirk_mx_to_cname_points_mx_at_an_alias),
        T(test_quirk_mx_no_address_hides_the_target_addresses),
        T(test_quirk_null_mx_is_a_single_mx_0_root),
        T(test_quirk_ttl0_zeroes_every_ttl),
        T(test_quirk_flap_alternates_answers),
        T(test_quirk_cut_off_packet_is_malformed),
        T(test_quirk_pointer_loop_is_rejected),
        cmocka_unit_test(test_malformed_cut_off_ends_inside_the_first_answer),
        T(test_quirk_star_applies_to_every_name_and_own_quirks_win),
        T(test_quirk_errors_name_the_problem),
        cmocka_unit_test(test_quirk_table_is_bounded),
        T(test_zone_file_loads_with_origin_ttl_parentheses_and_directives),
        T(test_zone_file_errors_name_file_and_line_and_add_nothing),
        T(test_record_text_errors_are_clear),
        T(test_apply_takes_scenario_lines),
        T(test_stats_and_query_log_record_every_query),
        T(test_query_log_keeps_only_the_most_recent),
        T(test_garbage_gets_formerr_or_nothing),
        T(test_capture_holds_udp_and_tcp_exchanges),
        T(test_server_refuses_non_loopback_addresses),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ares_library_cleanup();
    return rc;
}
