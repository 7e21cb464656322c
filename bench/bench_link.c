/* bench_link.c — what a link (sim/link.c) adds to a connection: round-trip latency per hop
 * and throughput, against a direct loopback connection measured in the same run.
 *
 * Build and run (from the project root): `make benches` (or `make bench`, which also runs
 * scripts/run-bench), then build/bench/bench_link [ROUNDS] [MB]
 *
 * An echo server and a discard server run on the event loop; a client thread does ROUNDS
 * (default 20000) 64-byte ping-pongs and sends MB (default 256) megabytes, first straight
 * to the servers, then through a link with no shaping. A round trip through the link
 * crosses it twice (request and reply), so "added per hop" = (rtt_link - rtt_direct) / 2.
 * The goal is < 50 us added per hop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "link.h"
#include "world.h"

static int discard_mode_port;

static void echo_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void discard_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void server_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & BEV_EVENT_EOF) {
        /* discard server: tell the client everything arrived, then close */
        int fd = bufferevent_getfd(bev);
        (void)!write(fd, "k", 1);
    }
    bufferevent_free(bev);
}

static void server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int len, void *arg)
{
    (void)sa;
    (void)len;
    int discard = arg != NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, discard ? discard_read : echo_read, NULL, server_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static struct evconnlistener *server_new(struct event_base *base, const char *ip, int discard,
                                         struct sockaddr_in *bound)
{
    memset(bound, 0, sizeof *bound);
    bound->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &bound->sin_addr);
    struct evconnlistener *l = evconnlistener_new_bind(
        base, server_accept, discard ? &discard_mode_port : NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128, (struct sockaddr *)bound,
        sizeof *bound);
    if (l == NULL)
        return NULL;
    socklen_t slen = sizeof *bound;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)bound, &slen);
    return l;
}

struct job {
    struct sockaddr_in echo, discard;
    long rounds;
    long megabytes;
    double rtt_us;
    double mb_per_s;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(const struct sockaddr_in *to)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int job_run(void *arg)
{
    struct job *j = arg;
    char buf[65536];
    memset(buf, 'x', sizeof buf);
    int fd = connect_to(&j->echo);
    if (fd < 0)
        return -1;
    /* warm up, then measure */
    double t0 = 0;
    for (long i = -1000; i < j->rounds; i++) {
        if (i == 0)
            t0 = now_s();
        if (send(fd, buf, 64, 0) != 64)
            return -1;
        size_t got = 0;
        while (got < 64) {
            ssize_t n = recv(fd, buf, 64 - got, 0);
            if (n <= 0)
                return -1;
            got += (size_t)n;
        }
    }
    j->rtt_us = (now_s() - t0) * 1e6 / (double)j->rounds;
    close(fd);

    fd = connect_to(&j->discard);
    if (fd < 0)
        return -1;
    long total = j->megabytes * 1024 * 1024;
    t0 = now_s();
    for (long sent = 0; sent < total;) {
        ssize_t n = send(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return -1;
        sent += n;
    }
    shutdown(fd, SHUT_WR);
    char k;
    if (recv(fd, &k, 1, 0) != 1)
        return -1;
    j->mb_per_s = (double)j->megabytes / (now_s() - t0);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 20000;
    long mb = argc > 2 ? atol(argv[2]) : 256;
    struct event_base *base = event_base_new();
    struct sockaddr_in echo, discard;
    struct evconnlistener *le = server_new(base, "127.0.0.1", 0, &echo);
    struct evconnlistener *ld = server_new(base, "127.0.0.1", 1, &discard);
    if (le == NULL || ld == NULL) {
        fprintf(stderr, "bench_link: cannot listen\n");
        return 1;
    }
    struct sockaddr_in pub_echo, pub_discard;
    struct evconnlistener *tmp1 = server_new(base, "127.0.0.2", 0, &pub_echo);
    struct evconnlistener *tmp2 = server_new(base, "127.0.0.2", 0, &pub_discard);
    evconnlistener_free(tmp1);   /* just to find two free ports on 127.0.0.2 */
    evconnlistener_free(tmp2);
    struct etrn_err err = {{0}};
    struct link *l1, *l2;
    if (link_new(&l1, base, "echo", (struct sockaddr *)&pub_echo, sizeof pub_echo,
                 (struct sockaddr *)&echo, sizeof echo, &err) < 0
        || link_new(&l2, base, "discard", (struct sockaddr *)&pub_discard, sizeof pub_discard,
                    (struct sockaddr *)&discard, sizeof discard, &err) < 0) {
        fprintf(stderr, "bench_link: %s\n", err.msg);
        return 1;
    }

    struct job direct = {echo, discard, rounds, mb, 0, 0};
    struct job via = {pub_echo, pub_discard, rounds, mb, 0, 0};
    if (sim_run_beside(base, job_run, &direct, 600000, &err) != 0
        || sim_run_beside(base, job_run, &via, 600000, &err) != 0) {
        fprintf(stderr, "bench_link: a run failed %s\n", err.msg);
        return 1;
    }
    printf("%-28s %12s %12s\n", "path", "rtt (us)", "MB/s");
    printf("%-28s %12.1f %12.0f\n", "direct loopback", direct.rtt_us, direct.mb_per_s);
    printf("%-28s %12.1f %12.0f\n", "through a link (2 hops/rtt)", via.rtt_us, via.mb_per_s);
    printf("added per hop: %.1f us (goal < 50 us); throughput through the link: %.0f%% of direct\n",
           (via.rtt_us - direct.rtt_us) / 2, 100.0 * via.mb_per_s / direct.mb_per_s);
    link_free(l1);
    link_free(l2);
    evconnlistener_free(le);
    evconnlistener_free(ld);
    event_base_free(base);
    return 0;
}
