/* test_sim_etrnsim.c — the etrnsim program run as a user runs it: every topology in
 * fixtures/topologies comes up and answers, zones and quirks given in a topology file are
 * seen by dig, a delivery by swaks is printed, and bad input (a broken file, an unknown
 * quirk, a port in use) gets one line naming the cause and exit code 2 — within a timeout,
 * so nothing hangs. Skipped when bin/etrnsim is not built. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strbuf.h"

struct fixture {
    char dir[64];
    char bin[256];
    char root[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    const char *bin = getenv("ETRNKIT_BIN");
    const char *root = getenv("ETRNKIT_ROOT");
    str_format(f->bin, sizeof f->bin, "%s/etrnsim", bin != NULL ? bin : "bin");
    str_copy(f->root, sizeof f->root, root != NULL ? root : ".");
    str_copy(f->dir, sizeof f->dir, "/tmp/test_sim_etrnsim.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[256];
    str_format(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void need_etrnsim(struct fixture *f)
{
    if (access(f->bin, X_OK) != 0)
        skip();
}

/* Runs cmd through the shell; its stdout and stderr end up in out. */
static int shell(const char *cmd, struct strbuf *out)
{
    strbuf_init(out, 1 << 20);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        strbuf_append(out, buf, n);
    if (out->data == NULL)
        strbuf_append(out, "", 0);
    return pclose(p);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A port free for TCP on addr and for UDP on 127.0.0.1 at the time of asking. */
static int free_port(const char *addr)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        inet_pton(AF_INET, addr, &sin.sin_addr);
        socklen_t len = sizeof sin;
        if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0
            || getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
            return -1;
        close(fd);
        int port = ntohs(sin.sin_port);
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Runs etrnsim with args (and a short timeout) and expects exit 2 with exactly one line. */
static void expect_one_line_error(struct fixture *f, const char *args, const char *want)
{
    char cmd[1024];
    struct strbuf out;
    str_format(cmd, sizeof cmd, "cd %s && timeout 10 %s%s %s </dev/null 2>&1; echo rc=$?",
               f->dir, f->bin[0] == '/' ? "" : "$OLDPWD/", f->bin, args);
    shell(cmd, &out);
    if (strstr(out.data, want) == NULL)
        fprintf(stderr, "got: %s\nwanted: %s\n", out.data, want);
    assert_non_null(strstr(out.data, want));
    assert_non_null(strstr(out.data, "\nrc=2\n"));   /* not 124: it did not hang */
    assert_int_equal(count_lines(out.data), 2);      /* the error and rc= */
    strbuf_free(&out);
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_etrnsim_check_accepts_every_fixture_topology(void **state)
{
    struct fixture *f = *state;
    need_etrnsim(f);
    char path[512], cmd[1024];
    str_format(path, sizeof path, "%s/fixtures/topologies", f->root);
    DIR *d = opendir(path);
    assert_non_null(d);
    int checked = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && checked < 100) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".topo") != 0)
            continue;
        struct strbuf out;
        str_format(cmd, sizeof cmd, "timeout 10 %s --check %s/%s 2>&1; echo rc=$?", f->bin,
                   path, e->d_name);
        shell(cmd, &out);
        if (strstr(out.data, ": ok\nrc=0\n") == NULL)
            fprintf(stderr, "%s: %s\n", e->d_name, out.data);
        assert_non_null(strstr(out.data, ": ok\nrc=0\n"));
        strbuf_free(&out);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 5);
}

/* Every topology really comes up: etrnsim prints its nodes and DNS, answers `nodes` on
 * the control socket and exits 0 on `quit`. */
static void test_etrnsim_brings_up_every_fixture_topology(void **state)
{
    struct fixture *f = *state;
    need_etrnsim(f);
    char path[512], cmd[2048];
    str_format(path, sizeof path, "%s/fixtures/topologies", f->root);
    DIR *d = opendir(path);
    assert_non_null(d);
    int run = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && run < 100) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".topo") != 0)
            continue;
        int port = free_port("127.0.0.90");
        int dport = free_port("127.0.0.1");
        assert_true(port > 0 && dport > 0);
        str_format(cmd, sizeof cmd,
                   "S=%s/ctl.sock; O=%s/out.txt; rm -f $S; "
                   "(timeout 30 %s -c %s/%s --dns 127.0.0.1:%d --pool 127.0.0.90 "
                   "--sink-port %d --control $S </dev/null >$O 2>&1; echo exit=$? >>$O) & "
                   "for i in $(seq 100); do [ -S $S ] && break; sleep 0.05; done; "
                   "%s --tell $S nodes; echo tell=$?; %s --tell $S quit >/dev/null; "
                   "for i in $(seq 100); do grep -q exit= $O && break; sleep 0.05; done; "
                   "cat $O",
                   f->dir, f->dir, f->bin, path, e->d_name, dport, port, f->bin, f->bin);
        struct strbuf out;
        shell(cmd, &out);
        char want[64];
        str_format(want, sizeof want, "dns 127.0.0.1:%d\nok\ntell=0\n", dport);
        if (strstr(out.data, want) == NULL || strstr(out.data, "exit=0") == NULL)
            fprintf(stderr, "%s: %s\n", e->d_name, out.data);
        assert_non_null(strstr(out.data, want));
        assert_non_null(strstr(out.data, "etrnsim 0.1 ready"));
        assert_non_null(strstr(out.data, "node sink1 127.0.0.90:"));
        assert_non_null(strstr(out.data, "exit=0"));
        strbuf_free(&out);
        run++;
    }
    closedir(d);
    assert_true(run >= 5);
}

/* quirky-dns.topo loads two zone files by relative path and sets a quirk; dig sees the
 * zone's MX records, the quirk and the ";! quirk" of the zone file; swaks delivers to a
 * sink and etrnsim prints the delivery and, with --log-dns, every query. */
static void test_etrnsim_serves_zones_and_quirks_from_a_topology(void **state)
{
    struct fixture *f = *state;
    need_etrnsim(f);
    int port = free_port("127.0.0.95");
    int dport = free_port("127.0.0.1");
    assert_true(port > 0 && dport > 0);
    char cmd[3072];
    str_format(cmd, sizeof cmd,
               "S=%s/ctl.sock; O=%s/out.txt; D='dig @127.0.0.1 -p %d +time=2 +tries=1'; "
               "(timeout 30 %s -c %s/fixtures/topologies/quirky-dns.topo --dns 127.0.0.1:%d "
               "--pool 127.0.0.95 --sink-port %d --control $S --log-dns </dev/null >$O 2>&1; "
               "echo exit=$? >>$O) & "
               "for i in $(seq 100); do [ -S $S ] && break; sleep 0.05; done; "
               "timeout 10 $D +short node.test MX | sort; "
               "timeout 10 $D flaky.node.test MX | grep -o 'status: [A-Z]*'; "
               "timeout 10 $D broken.quirks.test MX | grep -o 'status: [A-Z]*'; "
               "timeout 10 $D +short chained.quirks.test MX; "
               "%s --tell $S dns-clear flaky.node.test; "
               "timeout 10 $D +short flaky.node.test MX; "
               "timeout 20 swaks --server 127.0.0.95:%d --to u@node.test --from a@b.test "
               "--header 'Message-Id: <e2e@b.test>' --timeout 10 >/dev/null 2>&1; "
               "echo swaks=$?; "
               "%s --tell $S quit >/dev/null; "
               "for i in $(seq 100); do grep -q exit= $O && break; sleep 0.05; done; cat $O",
               f->dir, f->dir, dport, f->bin, f->root, dport, port, f->bin, port, f->bin);
    struct strbuf out;
    shell(cmd, &out);
    if (strstr(out.data, "exit=0") == NULL || strstr(out.data, "swaks=0") == NULL)
        fprintf(stderr, "%s\n", out.data);
    assert_non_null(strstr(out.data, "10 mx1.node.test.\n20 mx2.node.test.\n"));
    assert_non_null(strstr(out.data, "status: SERVFAIL\nstatus: SERVFAIL\n"));
    assert_non_null(strstr(out.data, "c1.chained.quirks.test.\n"));
    assert_non_null(strstr(out.data, "ok\n10 mx1.node.test.\n"));   /* after dns-clear */
    assert_non_null(strstr(out.data, "swaks=0"));
    assert_non_null(strstr(out.data, "delivery sink1 #1 from 127.0.0.1:"));
    assert_non_null(strstr(out.data, "id=<e2e@b.test>"));
    /* --log-dns: each query dig made, with its fate */
    assert_non_null(strstr(out.data, " dns      udp 127.0.0.1:"));
    assert_non_null(strstr(out.data, " flaky.node.test. MX -> SERVFAIL [servfail]\n"));
    assert_non_null(strstr(out.data, " chained.quirks.test. MX -> NOERROR [cname-chain]\n"));
    assert_non_null(strstr(out.data, "exit=0"));
    strbuf_free(&out);
}

static void test_etrnsim_broken_file_gets_file_and_line(void **state)
{
    struct fixture *f = *state;
    need_etrnsim(f);
    char path[128];
    str_format(path, sizeof path, "%s/broken.topo", f->dir);
    write_file(path, "sink sink1\n\ndns node.test MX ten mx1.node.test\n");
    expect_one_line_error(f, "--check broken.topo",
                          "etrnsim: broken.topo:3: dns: MX record for node.test: cannot parse");
    expect_one_line_error(f, "-c broken.topo --dns 127.0.0.1:0 --pool 127.0.0.96",
                          "etrnsim: broken.topo:3: dns: MX record for node.test");
    str_format(path, sizeof path, "%s/zone.topo", f->dir);
    write_file(path, "dns-zone bad.zone\n");
    str_format(path, sizeof path, "%s/bad.zone", f->dir);
    write_file(path, "$ORIGIN x.test.\n@ IN MX 10\n");
    /* the zone is found next to the topology, and its own line is named */
    expect_one_line_error(f, "--check zone.topo", "zone.topo:1: ");
    expect_one_line_error(f, "--check zone.topo", "bad.zone:2: MX record for x.test.");
    expect_one_line_error(f, "--check nosuch.topo", "etrnsim: nosuch.topo: ");
    str_format(path, sizeof path, "%s/var.topo", f->dir);
    write_file(path, "dns mx1.node.test A $sink9\n");
    expect_one_line_error(f, "--check var.topo", "var.topo:1: unknown variable '$sink9'");
}

static void test_etrnsim_unknown_quirk_is_named_on_one_line(void **state)
{
    struct fixture *f = *state;
    need_etrnsim(f);
    char path[128];
    str_format(path, sizeof path, "%s/quirk.topo", f->dir);
    write_file(path, "sink sink1\ndns-quirk node.test servfial\n");
    expect_one_line_error(f, "--check quirk.topo",
                          "quirk.topo:2: dns-quirk node.test: unknown DNS quirk 'servfial'");
    /* a line scheduled for later is checked when it is given */
    str_format(path, sizeof path, "%s/at.topo", f->dir);
    write_file(path, "sink sink1\nat 10s dns-quirk node.test servfial\n");
    expect_one_line_error(f, "--check at.topo",
                          "at.topo:2: at 10s: dns-quirk node.test: unknown DNS quirk 'servfial'");
    str_format(path, sizeof path, "%s/behave.topo", f->dir);
    write_file(path, "sink sink1 tarpti\n");
    expect_one_line_error(f, "--check behave.topo", "unknown sink behaviour 'tarpti'");
}

static void test_etrnsim_port_in_use_names_the_address(void **state)
{
    struct fixture *f = *state;
    need_etrnsim(f);
    char path[128], args[256], want[128];
    str_format(path, sizeof path, "%s/ok.topo", f->dir);
    write_file(path, "sink sink1\n");
    /* Hold a UDP port on 127.0.0.1 and a TCP port on 127.0.0.97 while etrnsim starts. */
    int udp = socket(AF_INET, SOCK_DGRAM, 0), tcp = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(udp >= 0 && tcp >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    socklen_t len = sizeof sin;
    assert_int_equal(bind(udp, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(udp, (struct sockaddr *)&sin, &len), 0);
    int dport = ntohs(sin.sin_port);
    sin.sin_port = 0;
    inet_pton(AF_INET, "127.0.0.97", &sin.sin_addr);
    assert_int_equal(bind(tcp, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(tcp, 4), 0);
    len = sizeof sin;
    assert_int_equal(getsockname(tcp, (struct sockaddr *)&sin, &len), 0);
    int sport = ntohs(sin.sin_port);

    str_format(args, sizeof args, "-c ok.topo --dns 127.0.0.1:%d --pool 127.0.0.98", dport);
    str_format(want, sizeof want, "etrnsim: dns: cannot listen on 127.0.0.1:%d (udp): Address "
                                  "already in use", dport);
    expect_one_line_error(f, args, want);
    str_format(args, sizeof args, "-c ok.topo --dns none --pool 127.0.0.97 --sink-port %d",
               sport);
    str_format(want, sizeof want, "ok.topo:1: link sink1: cannot listen on 127.0.0.97:%d: "
                                  "Address already in use", sport);
    expect_one_line_error(f, args, want);
    close(udp);
    close(tcp);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_etrnsim_check_accepts_every_fixture_topology),
        T(test_etrnsim_brings_up_every_fixture_topology),
        T(test_etrnsim_serves_zones_and_quirks_from_a_topology),
        T(test_etrnsim_broken_file_gets_file_and_line),
        T(test_etrnsim_unknown_quirk_is_named_on_one_line),
        T(test_etrnsim_port_in_use_names_the_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
