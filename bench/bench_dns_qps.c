/* bench_dns_qps.c — queries per second of the simulator's DNS server (sim/dns_server.c)
 * against dnsmasq, with the same records, the same client and the same query, in one run.
 *
 * Build and run (from the project root): `make benches` (or `make bench`, which also runs
 * scripts/run-bench), then build/bench/bench_dns_qps [QUERIES] [WINDOW] [ROUNDS]
 *
 * QUERIES (default 200000) UDP queries "node.test MX" are sent with WINDOW (default 64) in
 * flight from one client socket on 127.0.0.1; a query unanswered for 200 ms counts as lost
 * and is replaced. Each server first gets 10000 warm-up queries. Our server runs in a forked
 * child (its own event loop); dnsmasq (dnsmasq-base) is started as
 *   dnsmasq --no-daemon --port=PORT --listen-address=127.0.0.1 --bind-interfaces --no-resolv
 *           --no-hosts --mx-host=node.test,mx1.node.test,10
 *           --host-record=mx1.node.test,127.0.0.2 --conf-file=/dev/null
 * Both answer the MX with mx1's A record in the additional section. Every process started is
 * stopped at the end, on error too, and the whole run has a 120 s deadline. The goal: at
 * least dnsmasq's rate (ratio >= 1.0). Rows: "etrnsim" is our server as scenarios run it
 * (answer cache on); "etrnsim+quirk" has a quirk set on another name, as a scenario does
 * (the cache still serves names without quirks); "etrnsim-nc" has the answer cache off
 * (dns_server_set_answer_cache(srv, 0)): every query parsed, looked up and encoded by
 * ldns. ROUNDS (default 2) rounds measure every server in turn; each row keeps its best
 * round, so a busy moment on the shared machine hurts neither side alone. Nothing here
 * asserts; it prints figures. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <ldns/ldns.h>

#include "dns_server.h"

#define LOST_AFTER_MS 200
#define DEADLINE_MS 120000

static long long start_ms;

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int past_deadline(void)
{
    return now_us() / 1000 - start_ms > DEADLINE_MS;
}

struct result {
    long answered, lost;
    double seconds;
};

/* Sends `total` queries keeping `window` in flight; counts answers with a matching ID. */
static int run_client(int port, long total, int window, struct result *res)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int big = 4 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        close(fd);
        return -1;
    }
    ldns_pkt *q = NULL;
    uint8_t *wire = NULL;
    size_t len = 0;
    if (ldns_pkt_query_new_frm_str(&q, "node.test", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN, LDNS_RD)
            != LDNS_STATUS_OK
        || ldns_pkt2wire(&wire, q, &len) != LDNS_STATUS_OK) {
        close(fd);
        return -1;
    }
    ldns_pkt_free(q);

    /* Slot per ID: when it was sent (0: free). */
    static long long sent_at[65536];
    memset(sent_at, 0, sizeof sent_at);
    long sent = 0, answered = 0, lost = 0;
    int inflight = 0;
    unsigned next_id = 1;
    long long t0 = now_us();
    while ((answered + lost < total) && !past_deadline()) {
        while (inflight < window && sent < total) {
            while (sent_at[next_id & 0xffff] != 0)
                next_id++;
            unsigned id = next_id++ & 0xffff;
            wire[0] = (uint8_t)(id >> 8);
            wire[1] = (uint8_t)id;
            if (send(fd, wire, len, 0) != (ssize_t)len)
                break;
            sent_at[id] = now_us();
            sent++;
            inflight++;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, LOST_AFTER_MS);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr == 0) {
            /* Nothing for a while: whatever is in flight is lost. */
            for (int i = 0; i < 65536; i++)
                if (sent_at[i] != 0)
                    sent_at[i] = 0, lost++, inflight--;
            continue;
        }
        for (int i = 0; i < window * 2; i++) {
            uint8_t buf[1500];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n < 0)
                break;
            if (n < 12)
                continue;
            unsigned id = (unsigned)buf[0] << 8 | buf[1];
            if (sent_at[id] != 0) {
                sent_at[id] = 0;
                answered++;
                inflight--;
            }
        }
    }
    res->seconds = (double)(now_us() - t0) / 1e6;
    res->answered = answered;
    res->lost = lost;
    free(wire);
    close(fd);
    return answered + lost >= total ? 0 : -1;
}

static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0
        || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

enum ours_mode { OURS_CACHED, OURS_QUIRK_ELSEWHERE, OURS_NO_CACHE };

static pid_t start_ours(int *port, enum ours_mode mode)
{
    struct event_base *base = event_base_new();
    struct dns_server *srv = NULL;
    struct etrn_err err = {{0}};
    if (base == NULL || dns_server_new(&srv, base, "127.0.0.1:0", &err) < 0
        || dns_server_add_record(srv, "node.test MX 10 mx1.node.test", &err) < 0
        || dns_server_add_record(srv, "mx1.node.test A 127.0.0.2", &err) < 0
        || (mode == OURS_QUIRK_ELSEWHERE
            && dns_server_set_quirk(srv, "other.test", "servfail", &err) < 0)) {
        fprintf(stderr, "bench_dns_qps: our server: %s\n", err.msg);
        return -1;
    }
    if (mode == OURS_NO_CACHE)
        dns_server_set_answer_cache(srv, 0);
    *port = dns_server_port(srv);
    pid_t pid = fork();
    if (pid == 0) {
        event_reinit(base);
        event_base_dispatch(base);
        _exit(0);
    }
    /* The parent never runs this loop; the child owns the sockets now. */
    return pid;
}

static pid_t start_dnsmasq(int port)
{
    char portarg[32];
    snprintf(portarg, sizeof portarg, "--port=%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("dnsmasq", "dnsmasq", "--no-daemon", portarg, "--listen-address=127.0.0.1",
               "--bind-interfaces", "--no-resolv", "--no-hosts",
               "--mx-host=node.test,mx1.node.test,10", "--host-record=mx1.node.test,127.0.0.2",
               "--conf-file=/dev/null", "--log-facility=/dev/null", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Warm-up, then the measured run. Also waits for the server to start answering. */
static int measure(const char *label, int port, long total, int window, struct result *res)
{
    struct result warm;
    for (int attempt = 0; attempt < 50; attempt++) {
        if (run_client(port, 1, 1, &warm) == 0 && warm.answered == 1)
            break;
        if (attempt == 49) {
            fprintf(stderr, "bench_dns_qps: %s does not answer on port %d\n", label, port);
            return -1;
        }
        usleep(100000);
    }
    if (run_client(port, 10000, window, &warm) < 0 || run_client(port, total, window, res) < 0) {
        fprintf(stderr, "bench_dns_qps: %s: run did not finish\n", label);
        return -1;
    }
    printf("  %-14s %9ld answered %6ld lost %7.3f s %10.0f q/s\n", label, res->answered,
           res->lost, res->seconds, (double)res->answered / res->seconds);
    fflush(stdout);
    return 0;
}

static double qps(const struct result *r)
{
    return r->seconds > 0 ? (double)r->answered / r->seconds : 0;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 200000;
    int window = argc > 2 ? atoi(argv[2]) : 64;
    int rounds = argc > 3 ? atoi(argv[3]) : 2;
    static const char *labels[] = {"etrnsim", "etrnsim+quirk", "etrnsim-nc", "dnsmasq"};
    double best[4] = {0, 0, 0, 0};

    if (total < 1 || total > 10000000 || window < 1 || window > 1024 || rounds < 1
        || rounds > 10) {
        fprintf(stderr, "usage: bench_dns_qps [QUERIES 1..10000000] [WINDOW 1..1024] "
                        "[ROUNDS 1..10]\n");
        return 2;
    }
    start_ms = now_us() / 1000;
    printf("%ld UDP queries 'node.test MX', %d in flight, one client, 127.0.0.1, %d rounds\n",
           total, window, rounds);
    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < 4; k++) {
            struct result res = {0};
            int port = 0;
            pid_t pid;
            if (k < 3) {
                pid = start_ours(&port, (enum ours_mode)k);
            } else {
                port = free_udp_port();
                pid = port > 0 ? start_dnsmasq(port) : -1;
            }
            int ok = pid > 0 && measure(labels[k], port, total, window, &res) == 0;
            stop(pid);
            if (!ok)
                return 1;
            if (qps(&res) > best[k])
                best[k] = qps(&res);
        }
    }
    /* The table: one line per server ending in "queries/s" (scripts/run-bench reads the
     * first and the second-to-last word of such lines). */
    printf("\n%-14s %10s %12s\n", "server", "/dnsmasq", "best");
    for (int k = 0; k < 4; k++)
        printf("%-14s %10.2f %12.0f queries/s\n", labels[k],
               best[3] > 0 ? best[k] / best[3] : 0, best[k]);
    printf("goal: etrnsim/dnsmasq >= 1.0\n");
    return 0;
}
