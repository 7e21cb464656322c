/* test_world.c — a whole simulated topology built from setup lines, observed from outside:
 * swaks delivers to $sink1 through its link, the journal and the capture (read back by
 * tcpdump) show it, scheduled lines change the world, errors name the problem. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "strbuf.h"
#include "world.h"

struct fixture {
    struct event_base *base;
    struct sim_world *w;
    char dir[64];
    char pcap[128];
    char journal[128];
    int port;
};

static int free_port(void)
{
    /* A port free on the first two pool addresses; the test pool starts at 127.0.0.2. */
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
        socklen_t len = sizeof sin;
        if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0
            || getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
            return -1;
        close(fd);
        int port = ntohs(sin.sin_port);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        inet_pton(AF_INET, "127.0.0.3", &sin.sin_addr);
        int ok = bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
        close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    str_copy(f->dir, sizeof f->dir, "/tmp/test_world.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    str_format(f->pcap, sizeof f->pcap, "%s/run.pcap", f->dir);
    str_format(f->journal, sizeof f->journal, "%s/run.journal", f->dir);
    f->base = event_base_new();
    f->port = free_port();
    struct sim_world_options o;
    sim_world_options_default(&o);
    o.dns_listen = NULL;
    o.sink_port = f->port;
    o.pcap_path = f->pcap;
    o.journal_path = f->journal;
    struct etrn_err err = {{0}};
    if (f->base == NULL || f->port < 0 || sim_world_new(&f->w, f->base, &o, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sim_world_free(f->w);
    event_base_free(f->base);
    unlink(f->pcap);
    unlink(f->journal);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void apply(struct fixture *f, const char *line)
{
    struct etrn_err err = {{0}};
    int r = sim_world_apply_line(f->w, line, &err);
    if (r < 0)
        fprintf(stderr, "%s: %s\n", line, err.msg);
    assert_int_equal(r, 0);
}

struct cmd {
    char line[768];
    struct strbuf out;
    int status;
};

static int cmd_run(void *arg)
{
    struct cmd *c = arg;
    FILE *p = popen(c->line, "r");
    if (p == NULL)
        return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        strbuf_append(&c->out, buf, n);
    c->status = pclose(p);
    return 0;
}

static void run_cmd(struct fixture *f, struct cmd *c)
{
    strbuf_init(&c->out, 4 << 20);
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, cmd_run, c, 60000, &err), 0);
}

static void swaks_to(struct fixture *f, const char *node, struct cmd *c, const char *extra)
{
    const char *addr = sim_world_sink_addr(f->w, node);
    assert_non_null(addr);
    assert_true(str_format(c->line, sizeof c->line,
                           "timeout 20 swaks --server %s:%d --to u@node.test --from a@b.test "
                           "--timeout 10 %s 2>&1",
                           addr, f->port, extra) > 0);
    run_cmd(f, c);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_world_assigns_pool_addresses_in_order(void **state)
{
    struct fixture *f = *state;
    apply(f, "sink sink1");
    apply(f, "sink sink2 reject-rcpt 450");
    assert_string_equal(sim_world_sink_addr(f->w, "sink1"), "127.0.0.2");
    assert_string_equal(sim_world_sink_addr(f->w, "sink2"), "127.0.0.3");
    assert_null(sim_world_sink_addr(f->w, "sink3"));
    assert_int_equal(sink_behaviour(sim_world_sink(f->w, "sink2"))->reject_rcpt, 450);
}

static void test_world_swaks_delivery_lands_in_journal_file_and_capture(void **state)
{
    struct fixture *f = *state;
    apply(f, "sink sink1");
    struct cmd s;
    swaks_to(f, "sink1", &s, "--header 'Message-Id: <w1@b.test>'");
    assert_int_equal(s.status, 0);
    const struct sink_journal_entry *d[4];
    assert_int_equal(sim_world_deliveries(f->w, "sink1", d, 4), 1);
    assert_string_equal(d[0]->message_id, "<w1@b.test>");
    const struct sink_journal_entry *c[4];
    assert_int_equal(sim_world_connects(f->w, "sink1", c, 4), 1);
    assert_int_equal(c[0]->conn_id, d[0]->conn_id);

    /* the journal file, as etrncheck reads it */
    struct sink_journal *j;
    struct etrn_err err = {{0}};
    assert_int_equal(sink_journal_load(&j, f->journal, &err), 0);
    assert_int_equal(sink_journal_count_deliveries(j, "sink1"), 1);
    sink_journal_free(j);

    /* the capture, as tcpdump reads it: SMTP both ways, client -> public address */
    struct cmd t;
    assert_true(str_format(t.line, sizeof t.line, "tcpdump -r %s -nn -A 2>&1", f->pcap) > 0);
    run_cmd(f, &t);
    assert_int_equal(t.status, 0);
    assert_non_null(strstr(t.out.data, "220 sink1.sim ESMTP"));
    assert_non_null(strstr(t.out.data, "EHLO "));
    assert_non_null(strstr(t.out.data, "MAIL FROM:<a@b.test>"));
    assert_non_null(strstr(t.out.data, "RCPT TO:<u@node.test>"));
    assert_non_null(strstr(t.out.data, "250 2.0.0 Message accepted"));
    assert_non_null(strstr(t.out.data, "Message-Id: <w1@b.test>"));
    char hop[64];
    str_format(hop, sizeof hop, "> 127.0.0.2.%d:", f->port);
    assert_non_null(strstr(t.out.data, hop));
    assert_null(strstr(t.out.data, "truncated"));

    struct cmd v;
    assert_true(str_format(v.line, sizeof v.line, "tcpdump -r %s -nn -vv 2>&1", f->pcap) > 0);
    run_cmd(f, &v);
    assert_null(strstr(v.out.data, "incorrect"));

    struct cmd syn;
    assert_true(str_format(syn.line, sizeof syn.line,
                           "tcpdump -r %s -nn 'tcp[tcpflags] & tcp-syn != 0' 2>/dev/null",
                           f->pcap) > 0);
    run_cmd(f, &syn);
    assert_int_equal(count_lines(syn.out.data), 2);   /* SYN and SYN-ACK of one session */
    strbuf_free(&s.out);
    strbuf_free(&t.out);
    strbuf_free(&v.out);
    strbuf_free(&syn.out);
}

static void test_world_link_down_makes_swaks_fail_to_connect(void **state)
{
    struct fixture *f = *state;
    apply(f, "sink sink1");
    apply(f, "link sink1 down");
    struct cmd s;
    swaks_to(f, "sink1", &s, "");
    assert_int_not_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, "onnection refused"));
    assert_int_equal(sim_world_deliveries(f->w, NULL, NULL, 0), 0);
    strbuf_free(&s.out);
}

static void test_world_sink_behave_changes_a_running_sink(void **state)
{
    struct fixture *f = *state;
    apply(f, "sink sink1");
    apply(f, "sink-behave sink1 reject-dot 554");
    struct cmd s;
    swaks_to(f, "sink1", &s, "");
    assert_non_null(strstr(s.out.data, "<** 554"));
    const struct sink_journal_entry *d[2];
    assert_int_equal(sim_world_deliveries(f->w, "sink1", d, 2), 1);
    assert_int_equal(d[0]->status, SINK_DELIVERY_REJECTED);
    strbuf_free(&s.out);
}

static void test_world_external_node_fronts_a_real_server(void **state)
{
    struct fixture *f = *state;
    /* sink1 stands in for the real server: the external node relays to its address. */
    apply(f, "sink sink1");
    char line[128];
    str_format(line, sizeof line, "external real1 127.0.0.2:%d latency 1ms", f->port);
    apply(f, line);
    assert_string_equal(sim_world_sink_addr(f->w, "real1"), "127.0.0.3");
    struct cmd s;
    swaks_to(f, "real1", &s, "");
    assert_int_equal(s.status, 0);
    assert_int_equal(sim_world_deliveries(f->w, "sink1", NULL, 0), 1);
    assert_int_equal(sim_world_connects(f->w, "real1", NULL, 0), 1);
    strbuf_free(&s.out);
}

static void stop_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void run_for(struct fixture *f, unsigned ms)
{
    struct event *t = evtimer_new(f->base, stop_loop, f->base);
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(t, &tv);
    event_base_dispatch(f->base);
    event_free(t);
}

static void test_world_at_lines_apply_later(void **state)
{
    struct fixture *f = *state;
    apply(f, "sink sink1");
    apply(f, "link sink1 down");
    apply(f, "at 50ms link sink1 up");
    apply(f, "at 1h link sink1 down");
    assert_int_equal(link_get_settings(sim_world_link(f->w, "sink1"))->state, LINK_DOWN);
    assert_int_equal(sim_world_pending(f->w), 2);
    /* Loop until the first line ran; bounded by 100 rounds of 20 ms. */
    for (int i = 0; i < 100 && sim_world_pending(f->w) == 2; i++)
        run_for(f, 20);
    assert_int_equal(sim_world_pending(f->w), 1);
    assert_int_equal(link_get_settings(sim_world_link(f->w, "sink1"))->state, LINK_UP);
}

static void test_world_errors_name_the_problem(void **state)
{
    struct fixture *f = *state;
    struct etrn_err err = {{0}};
    assert_int_equal(sim_world_apply_line(f->w, "sink sink1 rejct-rcpt 450", &err), -1);
    assert_string_equal(err.msg, "sink sink1: unknown sink behaviour 'rejct-rcpt'");
    assert_null(sim_world_sink_addr(f->w, "sink1"));   /* nothing was created */
    assert_int_equal(sim_world_apply_line(f->w, "link nosuch down", &err), -1);
    assert_non_null(strstr(err.msg, "no such node"));
    assert_int_equal(sim_world_apply_line(f->w, "snik sink1", &err), -1);
    assert_non_null(strstr(err.msg, "unknown setup line 'snik'"));
    apply(f, "sink sink1");
    assert_int_equal(sim_world_apply_line(f->w, "sink sink1", &err), -1);
    assert_non_null(strstr(err.msg, "already defined"));
    assert_int_equal(sim_world_apply_line(f->w, "at 10 link sink1 up", &err), -1);
    assert_non_null(strstr(err.msg, "needs a unit"));
    assert_int_equal(sim_world_apply_line(f->w, "at 10s link sink1 sideways", &err), -1);
    assert_non_null(strstr(err.msg, "unknown link setting 'sideways'"));
    assert_int_equal(sim_world_apply_line(f->w, "sink bad/name", &err), -1);
    assert_non_null(strstr(err.msg, "invalid character"));
    assert_int_equal(sim_world_apply_line(f->w, "", &err), 0);
    assert_int_equal(sim_world_apply_line(f->w, "# a comment", &err), 0);
}

/* A world of its own with a DNS server: dig, a real resolver, asks it over UDP and TCP; the
 * capture (read back by tcpdump) holds the exchange. */
static void test_world_dns_answers_dig_and_lands_in_capture(void **state)
{
    struct fixture *f = *state;
    struct sim_world_options o;
    sim_world_options_default(&o);
    o.dns_listen = "127.0.0.1:0";
    o.sink_port = f->port;
    o.sink_addr_first = "127.0.0.60";
    char pcap[160];
    str_format(pcap, sizeof pcap, "%s/dns.pcap", f->dir);
    o.pcap_path = pcap;
    struct sim_world *w;
    struct etrn_err err = {{0}};
    assert_int_equal(sim_world_new(&w, f->base, &o, &err), 0);
    const char *addr = sim_world_dns_addr(w);
    assert_non_null(addr);
    assert_non_null(sim_world_dns(w));
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    assert_int_equal(sim_world_apply_line(w, "dns node.test MX 10 mx1.node.test", &err), 0);
    assert_int_equal(sim_world_apply_line(w, "dns mx1.node.test A 127.0.0.60", &err), 0);
    assert_int_equal(sim_world_apply_line(w, "dns-quirk slow.test servfail", &err), 0);
    assert_int_equal(sim_world_apply_line(w, "dns-quirk x.test no-such-quirk", &err), -1);
    assert_non_null(strstr(err.msg, "no-such-quirk"));

    struct cmd d;
    assert_true(str_format(d.line, sizeof d.line,
                           "timeout 20 dig @127.0.0.1 -p %s +time=2 +tries=1 node.test MX; "
                           "timeout 20 dig @127.0.0.1 -p %s +tcp +time=2 +tries=1 +short "
                           "mx1.node.test A; "
                           "timeout 20 dig @127.0.0.1 -p %s +time=2 +tries=1 slow.test A",
                           colon + 1, colon + 1, colon + 1) > 0);
    run_cmd(f, &d);
    assert_non_null(strstr(d.out.data, "status: NOERROR"));
    assert_non_null(strstr(d.out.data, "node.test.\t\t60\tIN\tMX\t10 mx1.node.test."));
    assert_non_null(strstr(d.out.data, "\n127.0.0.60\n"));
    assert_non_null(strstr(d.out.data, "status: SERVFAIL"));

    sim_world_free(w);   /* flushes the capture */
    struct cmd t;
    assert_true(str_format(t.line, sizeof t.line, "tcpdump -r %s -nn -T domain 2>&1", pcap) > 0);
    run_cmd(f, &t);   /* -T domain: the port is not 53, so tcpdump must be told */
    assert_int_equal(t.status, 0);
    assert_non_null(strstr(t.out.data, "MX? node.test."));
    assert_non_null(strstr(t.out.data, "A 127.0.0.60"));   /* the TCP answer */
    assert_non_null(strstr(t.out.data, "MX mx1.node.test. 10"));
    assert_non_null(strstr(t.out.data, "ServFail"));
    unlink(pcap);
    strbuf_free(&d.out);
    strbuf_free(&t.out);
}

static int can_watch_loopback(void)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_create("lo", ebuf);
    if (p == NULL)
        return 0;
    int ok = pcap_activate(p) >= 0;
    pcap_close(p);
    return ok;
}

struct refused_client {
    struct sockaddr_in to;
    int err;
};

static int refused_connect(void *arg)
{
    struct refused_client *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    r->err = connect(fd, (struct sockaddr *)&r->to, sizeof r->to) < 0 ? errno : 0;
    close(fd);
    /* give the watcher a moment to see the SYN while the loop runs */
    usleep(200000);
    return 0;
}

static void test_world_refused_attempts_are_recorded_when_watching(void **state)
{
    struct fixture *f = *state;
    if (!can_watch_loopback())
        skip();
    struct link *l;
    apply(f, "sink sink1");
    l = sim_world_link(f->w, "sink1");
    struct etrn_err err = {{0}};
    assert_int_equal(link_watch_refused(l, 1, &err), 0);
    apply(f, "link sink1 down");
    struct refused_client r;
    memcpy(&r.to, sim_world_node_sockaddr(f->w, "sink1", NULL), sizeof r.to);
    assert_int_equal(sim_run_beside(f->base, refused_connect, &r, 10000, &err), 0);
    assert_int_equal(r.err, ECONNREFUSED);
    for (int i = 0; i < 50 && sim_world_connects(f->w, "sink1", NULL, 0) == 0; i++)
        run_for(f, 20);
    const struct sink_journal_entry *c[2];
    assert_int_equal(sim_world_connects(f->w, "sink1", c, 2), 1);
    assert_string_equal(c[0]->event, "refused");
}

/* --- the etrnsim program, run as a user would ------------------------------------------ */

static const char *etrnsim_path(char *buf, size_t n)
{
    const char *dir = getenv("ETRNKIT_BIN");
    str_format(buf, n, "%s/etrnsim", dir != NULL ? dir : "bin");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

static void shell(const char *cmd, struct strbuf *out, int *status)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        strbuf_append(out, buf, n);
    *status = pclose(p);
}

static void test_etrnsim_check_names_file_and_line_and_exits_2(void **state)
{
    struct fixture *f = *state;
    char bin[256];
    if (etrnsim_path(bin, sizeof bin) == NULL)
        skip();
    char topo[160], cmd[512];
    str_format(topo, sizeof topo, "%s/bad.topo", f->dir);
    FILE *fp = fopen(topo, "w");
    fputs("# a comment\nsink sink1\nsink-behave sink1 rejct-rcpt 450\n", fp);
    fclose(fp);
    str_format(cmd, sizeof cmd, "timeout 20 %s --check %s 2>&1", bin, topo);
    struct strbuf out;
    strbuf_init(&out, 65536);
    int status;
    shell(cmd, &out, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(out.data, "bad.topo:3: sink sink1: unknown sink behaviour 'rejct-rcpt'"));
    assert_int_equal(count_lines(out.data), 1);
    unlink(topo);
    strbuf_free(&out);
}

static void test_etrnsim_runs_topology_takes_control_commands_and_quits(void **state)
{
    struct fixture *f = *state;
    char bin[256];
    if (etrnsim_path(bin, sizeof bin) == NULL)
        skip();
    /* The fixture's world holds its port on 127.0.0.2; etrnsim gets its own pool. */
    char topo[160], sock[160], outp[160], cmd[1536];
    str_format(topo, sizeof topo, "%s/run.topo", f->dir);
    str_format(sock, sizeof sock, "%s/ctl.sock", f->dir);
    str_format(outp, sizeof outp, "%s/out.txt", f->dir);
    FILE *fp = fopen(topo, "w");
    fputs("sink sinkA\nsink sinkB reject-rcpt 450\n", fp);
    fclose(fp);
    str_format(cmd, sizeof cmd,
               "(timeout 30 %s -c %s --dns none --pool 127.0.0.40 --sink-port %d "
               "--control %s </dev/null >%s 2>&1 &) ; "
               "for i in $(seq 50); do [ -S %s ] && break; sleep 0.1; done; "
               "timeout 20 swaks --server 127.0.0.40:%d --to u@node.test --from a@b.test "
               "--timeout 10 >/dev/null 2>&1; echo swaks=$?; "
               "%s --tell %s link sinkA down; "
               "%s --tell %s journal; "
               "%s --tell %s quit; echo quit=$?; "
               "for i in $(seq 50); do [ -S %s ] || break; sleep 0.1; done; cat %s",
               bin, topo, f->port, sock, outp, sock, f->port, bin, sock, bin, sock, bin, sock,
               sock, outp);
    struct strbuf out;
    strbuf_init(&out, 1 << 20);
    int status;
    shell(cmd, &out, &status);
    assert_non_null(strstr(out.data, "swaks=0"));
    assert_non_null(strstr(out.data, "node sinkA 127.0.0.40:"));
    assert_non_null(strstr(out.data, "node sinkB 127.0.0.41:"));
    assert_non_null(strstr(out.data, "delivery sinkA #1 from 127.0.0.1:"));
    assert_non_null(strstr(out.data, "1 deliveries\nok\n"));
    assert_non_null(strstr(out.data, "quit=0"));
    assert_null(strstr(out.data, "error"));
    unlink(topo);
    unlink(outp);
    strbuf_free(&out);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_world_assigns_pool_addresses_in_order),
        T(test_world_swaks_delivery_lands_in_journal_file_and_capture),
        T(test_world_link_down_makes_swaks_fail_to_connect),
        T(test_world_sink_behave_changes_a_running_sink),
        T(test_world_external_node_fronts_a_real_server),
        T(test_world_at_lines_apply_later),
        T(test_world_errors_name_the_problem),
        T(test_world_dns_answers_dig_and_lands_in_capture),
        T(test_world_refused_attempts_are_recorded_when_watching),
        T(test_etrnsim_check_names_file_and_line_and_exits_2),
        T(test_etrnsim_runs_topology_takes_control_commands_and_quits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
