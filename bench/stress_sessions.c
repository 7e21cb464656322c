/* stress_sessions.c — a load tool against an SMTP/ETRN server on loopback: many concurrent
 * sessions, a pipelined ETRN storm, slowloris clients and over-long lines at once, while a
 * fresh "probe" client checks that the server still greets and answers ETRN.
 *
 *   build/bench/stress_sessions --target 127.0.0.1:2525 --node node.test --sessions 1000 \
 *       --storm 2000 --slowloris 50 --long-lines 20 --pid $(pidof etrnd) --max-seconds 60
 *   (--slow-eol no: slowloris clients dribble one endless line instead of complete ones)
 *   (built by `make benches` as build/bench/stress_sessions, or by hand:
 *    cc -O2 -std=c11 -D_GNU_SOURCE -Ilib -o stress_sessions bench/stress_sessions.c build/libetrn.a)
 *
 * Prints one `key=value` line per figure (sessions_served, sessions_errors, storm_replies,
 * slowloris_closed_by_server, long_line_answered, probes_ok, peak_rss_kb, ...) for the
 * harness to read. Guarantees: bounded in time (--max-seconds, default 60) and in count;
 * every socket it opens is closed before it exits; it only connects to 127.0.0.0/8.
 * Exit 0 when the run completed (figures say how the server did), 2 on bad usage or when
 * the load could not be set up. Single-threaded, one epoll loop, non-blocking sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

#define INBUF_MAX 8192              /* reply bytes kept per connection (lines are consumed) */
#define LONG_LINE_DEFAULT (1 << 20) /* an over-long command line: 1 MiB without CRLF */
#define CONNS_MAX 20000
#define STORM_MAX 1000000

enum conn_kind { KIND_SESSION, KIND_STORM, KIND_SLOW, KIND_LONG, KIND_PROBE };

/* Where a conversation stands: which reply we wait for next. */
enum conn_step { STEP_GREETING, STEP_EHLO, STEP_HOLD, STEP_ETRN, STEP_QUIT, STEP_STORM,
                 STEP_SLOW, STEP_LONG, STEP_AFTER_LONG, STEP_DONE };

struct conn {
    int fd;
    enum conn_kind kind;
    enum conn_step step;
    int connected;
    char in[INBUF_MAX];
    size_t inlen;
    char *out;                      /* bytes still to send (owned) */
    size_t outlen, outoff;
    size_t replies;                 /* final reply lines seen */
    size_t slow_sent;               /* slowloris: bytes dribbled so far */
    double next_byte_at;            /* slowloris: when the next byte goes */
    double started;
};

struct stress_opts {
    struct sockaddr_in target;
    const char *node;
    unsigned sessions, storm, slowloris, long_lines;
    size_t long_line_bytes;
    double slow_interval, max_seconds, probe_interval, slow_seconds;
    int slow_endless;               /* slowloris never ends a line (no CRLF at all) */
    int pid;
};

struct stress_figures {
    unsigned sessions_connected, sessions_greeted, sessions_served, sessions_refused,
        sessions_errors, sessions_etrn_ok;
    unsigned long storm_replies, storm_2xx, storm_4xx, storm_5xx;
    int storm_closed;
    unsigned slow_closed_by_server, slow_still_open, slow_replied;
    unsigned long_answered, long_closed, long_unanswered, long_followup_ok;
    unsigned probes, probes_ok, probes_failed;
    double probe_worst;
    unsigned long peak_rss_kb, max_rss_sampled_kb;
    double seconds;
};

static int epfd = -1;
static struct stress_opts opt;
static struct stress_figures fig;
static struct conn *conns[CONNS_MAX];
static size_t nconns;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    if (pid <= 0 || str_format(path, sizeof path, "/proc/%d/status", pid) < 0)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long kb = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            kb = strtoul(line + klen + 1, NULL, 10);
    fclose(f);
    return kb;
}

static void conn_watch(struct conn *c, int want_out)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0),
                              .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        perror("stress_sessions: epoll_ctl");
}

static struct conn *conn_open(enum conn_kind kind)
{
    if (nconns >= CONNS_MAX)
        return NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int rc = connect(fd, (struct sockaddr *)&opt.target, sizeof opt.target);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->kind = kind;
    c->step = STEP_GREETING;
    c->started = now_seconds();
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(c);
        return NULL;
    }
    conns[nconns++] = c;
    return c;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->out);
    c->out = NULL;
    c->outlen = c->outoff = 0;
}

/* Queues bytes (copied) after whatever is still unsent. */
static int conn_send(struct conn *c, const char *data, size_t n)
{
    size_t left = c->outlen - c->outoff;
    char *buf = malloc(left + n);
    if (buf == NULL)
        return -1;
    if (left)
        memcpy(buf, c->out + c->outoff, left);
    memcpy(buf + left, data, n);
    free(c->out);
    c->out = buf;
    c->outlen = left + n;
    c->outoff = 0;
    conn_watch(c, 1);
    return 0;
}

static int conn_send_str(struct conn *c, const char *s)
{
    return conn_send(c, s, strlen(s));
}

static void conn_flush(struct conn *c)
{
    while (c->fd >= 0 && c->outoff < c->outlen) {
        ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->outoff = c->outlen;      /* the peer is gone: reading tells the rest */
            break;
        }
        c->outoff += (size_t)w;
    }
    if (c->fd >= 0)
        conn_watch(c, c->outoff < c->outlen);
}

/* The fate of a connection that ended (closed by the server, reset, or by us). */
static void conn_finish(struct conn *c, int server_closed)
{
    switch (c->kind) {
    case KIND_SESSION:
        if (c->step != STEP_DONE) {
            if (c->step == STEP_GREETING && !c->connected)
                fig.sessions_refused++;
            else
                fig.sessions_errors++;
        }
        break;
    case KIND_STORM:
        if (server_closed)
            fig.storm_closed = 1;
        break;
    case KIND_SLOW:
        if (server_closed)
            fig.slow_closed_by_server++;
        else
            fig.slow_still_open++;
        break;
    case KIND_LONG:
        if (c->step == STEP_LONG || c->step == STEP_AFTER_LONG) {
            if (server_closed)
                fig.long_closed++;
            else if (c->step == STEP_LONG)
                fig.long_unanswered++;
        }
        break;
    case KIND_PROBE:
        if (c->step != STEP_DONE)
            fig.probes_failed++;
        break;
    }
    c->step = STEP_DONE;
    conn_close(c);
}

/* One final reply (code) arrived; move the conversation on. */
static void conn_on_reply(struct conn *c, int code)
{
    c->replies++;
    switch (c->kind) {
    case KIND_SESSION:
        if (c->step == STEP_GREETING) {
            if (code != 220) {
                fig.sessions_refused++;
                c->step = STEP_DONE;
                conn_close(c);
                return;
            }
            fig.sessions_greeted++;
            conn_send_str(c, "EHLO stress.test\r\n");
            c->step = STEP_EHLO;
        } else if (c->step == STEP_EHLO) {
            c->step = STEP_HOLD;        /* released when every session is greeted */
        } else if (c->step == STEP_ETRN) {
            if (code / 100 == 2)
                fig.sessions_etrn_ok++;
            conn_send_str(c, "QUIT\r\n");
            c->step = STEP_QUIT;
        } else if (c->step == STEP_QUIT) {
            fig.sessions_served++;
            c->step = STEP_DONE;
            conn_close(c);
        }
        break;
    case KIND_STORM:
        if (c->step == STEP_GREETING) {
            if (code != 220) {
                conn_finish(c, 1);
                return;
            }
            /* EHLO, then every ETRN in one write: RFC 2920 lets a client pipeline them. */
            struct strbuf sb;
            strbuf_init(&sb, (size_t)opt.storm * 80 + 64);
            strbuf_append_str(&sb, "EHLO storm.test\r\n");
            for (unsigned i = 0; i < opt.storm; i++)
                strbuf_appendf(&sb, "ETRN %s\r\n", opt.node);
            strbuf_append_str(&sb, "QUIT\r\n");
            conn_send(c, sb.data, sb.len);
            strbuf_free(&sb);
            c->step = STEP_STORM;
        } else if (c->step == STEP_STORM) {
            if (c->replies == 2)
                return;                 /* the EHLO reply */
            if (c->replies > (size_t)opt.storm + 2) {
                c->step = STEP_DONE;    /* the 221 */
                conn_close(c);
                return;
            }
            fig.storm_replies++;
            if (code / 100 == 2)
                fig.storm_2xx++;
            else if (code / 100 == 4)
                fig.storm_4xx++;
            else
                fig.storm_5xx++;
        }
        break;
    case KIND_SLOW:
        if (c->step == STEP_GREETING) {
            c->step = STEP_SLOW;
            c->next_byte_at = now_seconds();
        } else {
            fig.slow_replied++;         /* the server answered a dribbled line (or said 421) */
        }
        break;
    case KIND_LONG:
        if (c->step == STEP_GREETING) {
            size_t n = opt.long_line_bytes + 16;
            char *line = malloc(n);
            if (line == NULL) {
                conn_finish(c, 0);
                return;
            }
            memcpy(line, "EHLO ", 5);
            memset(line + 5, 'a', opt.long_line_bytes);
            memcpy(line + 5 + opt.long_line_bytes, "\r\nNOOP\r\n", 8);
            conn_send(c, line, opt.long_line_bytes + 13);
            free(line);
            c->step = STEP_LONG;
        } else if (c->step == STEP_LONG) {
            fig.long_answered++;        /* any reply to the monster line counts */
            c->step = STEP_AFTER_LONG;
        } else if (c->step == STEP_AFTER_LONG) {
            if (code == 250)
                fig.long_followup_ok++;
            c->step = STEP_DONE;
            conn_close(c);
        }
        break;
    case KIND_PROBE:
        if (c->step == STEP_GREETING && code == 220) {
            conn_send_str(c, "EHLO probe.test\r\n");
            c->step = STEP_EHLO;
        } else if (c->step == STEP_EHLO && code == 250) {
            char line[300];
            str_format(line, sizeof line, "ETRN %s\r\n", opt.node);
            conn_send_str(c, line);
            c->step = STEP_ETRN;
        } else if (c->step == STEP_ETRN && code / 100 == 2) {
            double took = now_seconds() - c->started;
            if (took > fig.probe_worst)
                fig.probe_worst = took;
            fig.probes_ok++;
            conn_send_str(c, "QUIT\r\n");
            c->step = STEP_QUIT;
        } else if (c->step == STEP_QUIT) {
            c->step = STEP_DONE;
            conn_close(c);
        } else {
            fig.probes_failed++;
            c->step = STEP_DONE;
            conn_close(c);
        }
        break;
    }
}

/* Splits what arrived into lines; a line "DDD " or "DDD" ends a reply. Over-long reply lines
 * are cut at INBUF_MAX (we only need the code). */
static void conn_read(struct conn *c)
{
    for (;;) {
        if (c->fd < 0)
            return;
        if (c->inlen == sizeof c->in)
            c->inlen = 0;               /* an endless line: forget it, keep reading */
        ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_finish(c, 1);
            return;
        }
        if (r == 0) {
            conn_finish(c, 1);
            return;
        }
        c->inlen += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < c->inlen && c->fd >= 0; i++) {
            if (c->in[i] != '\n')
                continue;
            const char *l = c->in + start;
            size_t len = i - start;
            start = i + 1;
            if (len >= 3 && l[0] >= '0' && l[0] <= '9' && l[1] >= '0' && l[1] <= '9'
                && l[2] >= '0' && l[2] <= '9' && (len == 3 || l[3] == ' ' || l[3] == '\r'))
                conn_on_reply(c, (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0'));
        }
        if (c->fd < 0)
            return;
        memmove(c->in, c->in + start, c->inlen - start);
        c->inlen -= start;
    }
}

static void conn_event(struct conn *c, uint32_t events)
{
    if (!c->connected && (events & (EPOLLOUT | EPOLLIN))) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
            conn_finish(c, 0);
            return;
        }
        c->connected = 1;
        if (c->kind == KIND_SESSION)
            fig.sessions_connected++;
    }
    if (events & EPOLLIN)
        conn_read(c);
    if (c->fd >= 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
        conn_finish(c, 1);
        return;
    }
    if (c->fd >= 0 && (events & EPOLLOUT))
        conn_flush(c);
}

static int stress_parse_args(int argc, char **argv)
{
    memset(&opt, 0, sizeof opt);
    opt.node = "node.test";
    opt.sessions = 1000;
    opt.long_line_bytes = LONG_LINE_DEFAULT;
    opt.slow_interval = 0.5;
    opt.max_seconds = 60;
    opt.probe_interval = 0.5;
    const char *target = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(a, "--target") == 0) target = v;
        else if (strcmp(a, "--node") == 0) opt.node = v;
        else if (strcmp(a, "--sessions") == 0) opt.sessions = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--storm") == 0) opt.storm = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--slowloris") == 0) opt.slowloris = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--long-lines") == 0) opt.long_lines = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--long-line-bytes") == 0) opt.long_line_bytes = strtoul(v, NULL, 10);
        else if (strcmp(a, "--slow-interval") == 0) opt.slow_interval = strtod(v, NULL);
        else if (strcmp(a, "--probe-interval") == 0) opt.probe_interval = strtod(v, NULL);
        else if (strcmp(a, "--max-seconds") == 0) opt.max_seconds = strtod(v, NULL);
        else if (strcmp(a, "--slow-seconds") == 0) opt.slow_seconds = strtod(v, NULL);
        else if (strcmp(a, "--pid") == 0) opt.pid = atoi(v);
        else if (strcmp(a, "--slow-eol") == 0) opt.slow_endless = strcmp(v, "no") == 0;
        else return -1;
    }
    if (opt.slow_seconds <= 0 || opt.slow_seconds > opt.max_seconds)
        opt.slow_seconds = opt.max_seconds / 2;
    if (target == NULL || strlen(opt.node) > 255 || opt.storm > STORM_MAX
        || opt.long_line_bytes > (64u << 20) || opt.max_seconds <= 0 || opt.max_seconds > 3600
        || opt.slow_interval <= 0 || opt.probe_interval <= 0
        || (size_t)opt.sessions + opt.slowloris + opt.long_lines + 1000 > CONNS_MAX)
        return -1;
    char host[64];
    const char *colon = strrchr(target, ':');
    if (colon == NULL || (size_t)(colon - target) >= sizeof host)
        return -1;
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    opt.target.sin_family = AF_INET;
    opt.target.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &opt.target.sin_addr) != 1)
        return -1;
    if ((ntohl(opt.target.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "stress_sessions: %s is not a loopback address\n", host);
        return -1;
    }
    return 0;
}

static void stress_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            perror("stress_sessions: setrlimit");
    }
}

/* Every session held after EHLO goes on to ETRN once all are greeted (or time is short):
 * that is the moment of full concurrency. */
static int stress_release_sessions(double now, double t0, int released)
{
    if (released)
        return 1;
    unsigned waiting = 0, live = 0;
    for (size_t i = 0; i < nconns; i++) {
        struct conn *c = conns[i];
        if (c->kind != KIND_SESSION || c->fd < 0)
            continue;
        live++;
        if (c->step == STEP_HOLD)
            waiting++;
    }
    if (waiting < live && now - t0 < opt.max_seconds / 3)
        return 0;
    printf("concurrent_sessions=%u\n", waiting);
    char line[300];
    str_format(line, sizeof line, "ETRN %s\r\n", opt.node);
    for (size_t i = 0; i < nconns; i++) {
        struct conn *c = conns[i];
        if (c->kind == KIND_SESSION && c->fd >= 0 && c->step == STEP_HOLD) {
            conn_send_str(c, line);
            c->step = STEP_ETRN;
        }
    }
    return 1;
}

static int stress_work_left(void)
{
    for (size_t i = 0; i < nconns; i++) {
        const struct conn *c = conns[i];
        if (c->fd >= 0 && c->kind != KIND_SLOW && c->kind != KIND_PROBE)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (stress_parse_args(argc, argv) < 0) {
        fprintf(stderr, "usage: stress_sessions --target 127.0.0.1:PORT [--node D] [--sessions N]"
                        " [--storm N] [--slowloris N] [--long-lines N] [--long-line-bytes N]"
                        " [--slow-interval S] [--slow-eol yes|no] [--slow-seconds S]"
                        " [--probe-interval S] [--pid PID]"
                        " [--max-seconds S]\n");
        return 2;
    }
    stress_raise_fd_limit();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("stress_sessions: epoll_create1");
        return 2;
    }
    double t0 = now_seconds(), deadline = t0 + opt.max_seconds, next_probe = t0;
    unsigned opened = 0;
    for (unsigned i = 0; i < opt.slowloris; i++)
        opened += conn_open(KIND_SLOW) != NULL;
    for (unsigned i = 0; i < opt.long_lines; i++)
        opened += conn_open(KIND_LONG) != NULL;
    if (opt.storm)
        opened += conn_open(KIND_STORM) != NULL;
    unsigned sessions_opened = 0;
    int released = 0;
    struct epoll_event evs[256];
    for (;;) {
        double now = now_seconds();
        if (now >= deadline)
            break;
        /* Open sessions in batches so the listen backlog is not the only thing measured. */
        for (unsigned k = 0; k < 100 && sessions_opened < opt.sessions; k++) {
            if (conn_open(KIND_SESSION) == NULL)
                fig.sessions_errors++;
            sessions_opened++;
        }
        if (sessions_opened == opt.sessions)
            released = stress_release_sessions(now, t0, released);
        if (now >= next_probe && nconns < CONNS_MAX) {
            fig.probes++;
            if (conn_open(KIND_PROBE) == NULL)
                fig.probes_failed++;
            next_probe = now + opt.probe_interval;
        }
        for (size_t i = 0; i < nconns; i++) {
            struct conn *c = conns[i];
            if (c->kind == KIND_SLOW && c->fd >= 0 && c->step == STEP_SLOW && now >= c->next_byte_at) {
                static const char dribble[] = "EHLO slowloris.test.example.org\r\n";
                if (opt.slow_endless)   /* "EHLO aaaa..." and never a line end */
                    conn_send(c, c->slow_sent < 5 ? "EHLO " + c->slow_sent : "a", 1);
                else
                    conn_send(c, dribble + c->slow_sent % (sizeof dribble - 1), 1);
                c->slow_sent++;
                c->next_byte_at = now + opt.slow_interval;
            }
        }
        unsigned long rss = proc_status_kb(opt.pid, "VmRSS");
        if (rss > fig.max_rss_sampled_kb)
            fig.max_rss_sampled_kb = rss;
        /* Done when sessions, storm and long lines are finished and slowloris has had its
         * --slow-seconds (they only end by the server's timeout or ours). */
        if (released && !stress_work_left() && (opt.slowloris == 0 || now - t0 > opt.slow_seconds))
            break;
        int n = epoll_wait(epfd, evs, 256, 20);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("stress_sessions: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0)
                conn_event(c, evs[i].events);
        }
    }
    fig.seconds = now_seconds() - t0;
    /* What is still open at the end: sessions and long lines left hanging count against
     * the server; slowloris clients still open are reported as such. */
    for (size_t i = 0; i < nconns; i++) {
        struct conn *c = conns[i];
        if (c->fd >= 0) {
            if (c->kind == KIND_LONG && c->step == STEP_AFTER_LONG)
                c->step = STEP_DONE;    /* answered the long line; the NOOP reply is moot */
            if (c->kind == KIND_PROBE && c->step != STEP_DONE) {
                fig.probes--;           /* cut short by our own deadline: not a verdict */
                c->step = STEP_DONE;
            }
            conn_finish(c, 0);
        }
        free(c);
    }
    close(epfd);
    fig.peak_rss_kb = proc_status_kb(opt.pid, "VmHWM");
    printf("sessions_requested=%u\nsessions_connected=%u\nsessions_greeted=%u\n"
           "sessions_served=%u\nsessions_etrn_ok=%u\nsessions_refused=%u\nsessions_errors=%u\n",
           opt.sessions, fig.sessions_connected, fig.sessions_greeted, fig.sessions_served,
           fig.sessions_etrn_ok, fig.sessions_refused, fig.sessions_errors);
    printf("storm_sent=%u\nstorm_replies=%lu\nstorm_2xx=%lu\nstorm_4xx=%lu\nstorm_5xx=%lu\n"
           "storm_closed=%d\n", opt.storm, fig.storm_replies, fig.storm_2xx, fig.storm_4xx,
           fig.storm_5xx, fig.storm_closed);
    printf("slowloris=%u\nslowloris_closed_by_server=%u\nslowloris_still_open=%u\n"
           "slowloris_replies=%u\n", opt.slowloris, fig.slow_closed_by_server,
           fig.slow_still_open, fig.slow_replied);
    printf("long_lines=%u\nlong_line_bytes=%zu\nlong_line_answered=%u\nlong_line_closed=%u\n"
           "long_line_unanswered=%u\nlong_line_followup_ok=%u\n", opt.long_lines,
           opt.long_line_bytes, fig.long_answered, fig.long_closed, fig.long_unanswered,
           fig.long_followup_ok);
    printf("probes=%u\nprobes_ok=%u\nprobes_failed=%u\nprobe_worst_ms=%.0f\n", fig.probes,
           fig.probes_ok, fig.probes_failed, fig.probe_worst * 1000);
    printf("peak_rss_kb=%lu\nmax_rss_sampled_kb=%lu\nseconds=%.1f\n", fig.peak_rss_kb,
           fig.max_rss_sampled_kb, fig.seconds);
    return 0;
}
