/* bench_etrn.c — the measuring half of `make bench` (scripts/run-bench drives it): fills
 * etrnd's spool through the spool API, injects mail over SMTP, times ETRN replies and
 * flushes, and runs a tarpit. One client measures etrnd and Postfix alike.
 *
 *   build/bench/bench_etrn fill DIR COUNT SIZE NODES FIRST    # spool API: message i -> u<i>@n<i % NODES>.bench.test
 *   build/bench/bench_etrn etrn 127.0.0.1:PORT ROUNDS FIRST [GAP_MS]   # ETRN n<FIRST..FIRST+ROUNDS-1>.bench.test
 *   build/bench/bench_etrn flush 127.0.0.1:PORT NODE SINKLOG COUNT SECONDS   # until smtp-sink counted COUNT
 *   (also: inject, tarpit, port, wait — see bench_usage below)
 *
 * Each command prints one line of key=value pairs on stdout and exits 0, or explains on
 * stderr and exits 1. Only loopback addresses (127.0.0.0/8) are accepted. Every network
 * wait has a deadline, every loop a bound; nothing here asserts a figure. fill writes with
 * ETRND_SPOOL_NO_FSYNC=1 (the spool's switch for building benchmark spools) and syncs the
 * file system once at the end, so that writeback does not disturb what is measured next. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "strbuf.h"

#define BENCH_REPLY_TIMEOUT_S 120   /* one SMTP reply; Postfix's ETRN can be slow on a big queue */
#define BENCH_LINE_MAX 4096
#define BENCH_ROUNDS_MAX 100000
#define BENCH_SESSIONS_MAX 200
#define BENCH_TARPIT_MAX 8192
#define BENCH_SIZE_MAX (1024 * 1024)

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* "127.0.0.1:2525" -> sockaddr; loopback only, because benchmarks never leave the host. */
static int bench_parse_addr(const char *text, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) {
        fprintf(stderr, "bench_etrn: '%s' is not HOST:PORT\n", text);
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || *end || port <= 0 || port > 65535) {
        fprintf(stderr, "bench_etrn: '%s' is not an IPv4 HOST:PORT\n", text);
        return -1;
    }
    if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "bench_etrn: %s is not a loopback address (127.0.0.0/8 only)\n", host);
        return -1;
    }
    sa->sin_port = htons((uint16_t)port);
    return 0;
}

static int bench_parse_count(const char *text, const char *what, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < min || v > max) {
        fprintf(stderr, "bench_etrn: %s '%s' is not a number in %ld..%ld\n", what, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* --- a small blocking SMTP client ------------------------------------------------- */

struct bench_conn {
    int fd;
    char buf[BENCH_LINE_MAX];
    size_t len;
};

static int bench_connect(struct bench_conn *c, const struct sockaddr_in *sa)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("bench_etrn: socket");
        return -1;
    }
    struct timeval tv = { .tv_sec = BENCH_REPLY_TIMEOUT_S };
    int one = 1;
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void bench_close(struct bench_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int bench_send(struct bench_conn *c, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one reply (every continuation line) and returns its code, or -1. The text of the
 * last line goes to last (for error messages). */
static int bench_reply(struct bench_conn *c, char *last, size_t lastn)
{
    for (int lines = 0; lines < 1000; lines++) {
        char *nl;
        while (!(nl = memchr(c->buf, '\n', c->len))) {
            if (c->len == sizeof c->buf)
                return -1;                       /* a line longer than any reply may be */
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return -1;
            c->len += (size_t)r;
        }
        size_t linelen = (size_t)(nl - c->buf) + 1;
        int code = -1, more = 0;
        if (linelen >= 4 && c->buf[0] >= '2' && c->buf[0] <= '5') {
            code = (c->buf[0] - '0') * 100 + (c->buf[1] - '0') * 10 + (c->buf[2] - '0');
            more = c->buf[3] == '-';
        }
        if (last && lastn) {
            size_t k = linelen < lastn ? linelen : lastn - 1;
            memcpy(last, c->buf, k);
            last[k] = '\0';
            while (k > 0 && (last[k - 1] == '\n' || last[k - 1] == '\r'))
                last[--k] = '\0';
        }
        memmove(c->buf, c->buf + linelen, c->len - linelen);
        c->len -= linelen;
        if (code < 0)
            return -1;
        if (!more)
            return code;
    }
    return -1;
}

static int bench_command(struct bench_conn *c, const char *line, char *last, size_t lastn)
{
    if (bench_send(c, line, strlen(line)) < 0)
        return -1;
    return bench_reply(c, last, lastn);
}

/* Greeting and EHLO; 0 when both are 2xx. */
static int bench_hello(struct bench_conn *c)
{
    char last[256] = "";
    int code = bench_reply(c, last, sizeof last);
    if (code != 220) {
        fprintf(stderr, "bench_etrn: greeting: %d %s\n", code, last);
        return -1;
    }
    code = bench_command(c, "EHLO bench.client.test\r\n", last, sizeof last);
    if (code != 250) {
        fprintf(stderr, "bench_etrn: EHLO: %d %s\n", code, last);
        return -1;
    }
    return 0;
}

/* A message of about size bytes: headers, then 76-character lines, CRLF throughout.
 * No line starts with '.', so the same text is valid on the wire and in the spool. */
static char *bench_body(size_t size, size_t *len)
{
    struct strbuf sb;
    strbuf_init(&sb, BENCH_SIZE_MAX + 4096);
    if (strbuf_append_str(&sb, "From: bench@origin.test\r\nTo: node@bench.test\r\n"
                               "Subject: etrnkit benchmark\r\nMessage-ID: <bench@origin.test>\r\n\r\n") < 0)
        goto fail;
    static const char line[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    while (sb.len + sizeof line - 1 <= size)
        if (strbuf_append(&sb, line, sizeof line - 1) < 0)
            goto fail;
    *len = sb.len;
    char *copy = strbuf_detach(&sb);   /* a copy: sb still owns its buffer */
    strbuf_free(&sb);
    return copy;
fail:
    strbuf_free(&sb);
    return NULL;
}

/* --- fill: the spool API, as fast as the disk allows -------------------------------- */

static int bench_fill(int argc, char **argv)
{
    long count, size, nodes, first;
    if (argc != 7 || bench_parse_count(argv[3], "COUNT", 0, 100000000, &count) < 0 ||
        bench_parse_count(argv[4], "SIZE", 0, BENCH_SIZE_MAX, &size) < 0 ||
        bench_parse_count(argv[5], "NODES", 1, 10000000, &nodes) < 0 ||
        bench_parse_count(argv[6], "FIRST", 0, 100000000, &first) < 0)
        return 1;
    const char *dir = argv[2];
    size_t bodylen;
    char *body = bench_body((size_t)size, &bodylen);
    if (!body) {
        fprintf(stderr, "bench_etrn: out of memory\n");
        return 1;
    }
    log_open("bench_etrn", LOG_LEVEL_ERROR, NULL);   /* the spool warns that fsync is off */
    setenv("ETRND_SPOOL_NO_FSYNC", "1", 1);
    struct spool *sp;
    struct etrn_err err;
    double t0 = bench_now();
    int rc = spool_open(&sp, dir, &err);
    unsetenv("ETRND_SPOOL_NO_FSYNC");
    if (rc < 0) {
        fprintf(stderr, "bench_etrn: %s: %s\n", dir, err.msg);
        free(body);
        return 1;
    }
    double topen = bench_now() - t0;
    t0 = bench_now();
    for (long i = first; i < first + count; i++) {
        char rcpt[96];
        char *rcpts[1] = { rcpt };
        str_format(rcpt, sizeof rcpt, "u%ld@n%ld.bench.test", i, i % nodes);
        struct spool_writer *w;
        char qid[SPOOL_ID_MAX];
        if (spool_writer_begin(sp, &w, &err) < 0)
            goto fail;
        if (spool_writer_write(w, body, bodylen, &err) < 0) {
            spool_writer_abort(w);
            goto fail;
        }
        if (spool_writer_commit(w, "bench@origin.test", rcpts, 1, qid, &err) < 0)
            goto fail;
    }
    double tfill = bench_now() - t0;
    size_t total = spool_total(sp);
    spool_close(sp);
    free(body);
    t0 = bench_now();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || syncfs(dfd) < 0) {
        perror("bench_etrn: syncfs");
        if (dfd >= 0)
            close(dfd);
        return 1;
    }
    close(dfd);
    printf("added=%ld total=%zu open_s=%.3f fill_s=%.3f sync_s=%.3f rate=%.0f\n", count, total, topen, tfill,
           bench_now() - t0, tfill > 0 ? (double)count / tfill : 0.0);
    return 0;
fail:
    fprintf(stderr, "bench_etrn: %s: %s\n", dir, err.msg);
    spool_close(sp);
    free(body);
    return 1;
}

/* --- inject: SMTP from SESSIONS processes, one transaction after another ----------- */

static int bench_inject_session(const struct sockaddr_in *sa, long first, long step, long count, long nodes,
                                const char *body, size_t bodylen)
{
    struct bench_conn c;
    if (bench_connect(&c, sa) < 0 || bench_hello(&c) < 0) {
        fprintf(stderr, "bench_etrn: inject: cannot open a session\n");
        bench_close(&c);
        return 1;
    }
    char line[160], last[256];
    for (long i = first; i < count; i += step) {
        int code = bench_command(&c, "MAIL FROM:<bench@origin.test>\r\n", last, sizeof last);
        if (code == 250) {
            str_format(line, sizeof line, "RCPT TO:<u%ld@n%ld.bench.test>\r\n", i, i % nodes);
            code = bench_command(&c, line, last, sizeof last);
        }
        if (code == 250)
            code = bench_command(&c, "DATA\r\n", last, sizeof last);
        if (code == 354) {
            if (bench_send(&c, body, bodylen) < 0 || bench_send(&c, ".\r\n", 3) < 0)
                code = -1;
            else
                code = bench_reply(&c, last, sizeof last);
        }
        if (code != 250) {
            fprintf(stderr, "bench_etrn: inject: message %ld: %d %s\n", i, code, code < 0 ? "(connection)" : last);
            bench_close(&c);
            return 1;
        }
    }
    bench_command(&c, "QUIT\r\n", last, sizeof last);
    bench_close(&c);
    return 0;
}

static int bench_inject(int argc, char **argv)
{
    struct sockaddr_in sa;
    long count, size, nodes, sessions, first;
    if (argc != 8 || bench_parse_addr(argv[2], &sa) < 0 ||
        bench_parse_count(argv[3], "COUNT", 1, 100000000, &count) < 0 ||
        bench_parse_count(argv[4], "SIZE", 0, BENCH_SIZE_MAX, &size) < 0 ||
        bench_parse_count(argv[5], "NODES", 1, 10000000, &nodes) < 0 ||
        bench_parse_count(argv[6], "SESSIONS", 1, BENCH_SESSIONS_MAX, &sessions) < 0 ||
        bench_parse_count(argv[7], "FIRST", 0, 100000000, &first) < 0)
        return 1;
    size_t bodylen;
    char *body = bench_body((size_t)size, &bodylen);
    if (!body) {
        fprintf(stderr, "bench_etrn: out of memory\n");
        return 1;
    }
    pid_t pids[BENCH_SESSIONS_MAX];
    double t0 = bench_now();
    long started = 0;
    for (long s = 0; s < sessions; s++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench_etrn: fork");
            break;
        }
        if (pid == 0)
            _exit(bench_inject_session(&sa, first + s, sessions, first + count, nodes, body, bodylen));
        pids[started++] = pid;
    }
    int failed = started < sessions;
    for (long s = 0; s < started; s++) {
        int status;
        while (waitpid(pids[s], &status, 0) < 0)
            if (errno != EINTR) {
                status = 1;
                break;
            }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    double t = bench_now() - t0;
    free(body);
    printf("sent=%ld seconds=%.3f rate=%.1f ok=%d\n", count, t, t > 0 ? (double)count / t : 0.0, !failed);
    return failed;
}

/* --- etrn: reply latency ------------------------------------------------------------ */

static int bench_etrn(int argc, char **argv)
{
    struct sockaddr_in sa;
    long rounds, first, gap_ms = 0;
    if (argc < 5 || argc > 6 || bench_parse_addr(argv[2], &sa) < 0 ||
        bench_parse_count(argv[3], "ROUNDS", 1, BENCH_ROUNDS_MAX, &rounds) < 0 ||
        bench_parse_count(argv[4], "FIRST", 0, 100000000, &first) < 0 ||
        (argc == 6 && bench_parse_count(argv[5], "GAP_MS", 0, 10000, &gap_ms) < 0))
        return 1;
    long *order = malloc((size_t)rounds * sizeof *order);
    double *ms = malloc((size_t)rounds * sizeof *ms);
    if (!order || !ms) {
        fprintf(stderr, "bench_etrn: out of memory\n");
        free(order);
        free(ms);
        return 1;
    }
    /* Distinct nodes in a fixed shuffled order: every ETRN is a node's first, on both
     * systems (Postfix empties a node's flush log on ETRN, so repeats would be cheap). */
    for (long i = 0; i < rounds; i++)
        order[i] = first + i;
    srand(6);
    for (long i = rounds - 1; i > 0; i--) {
        long j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    struct bench_conn c;
    if (bench_connect(&c, &sa) < 0 || bench_hello(&c) < 0) {
        fprintf(stderr, "bench_etrn: cannot open a session with %s\n", argv[2]);
        bench_close(&c);
        free(order);
        free(ms);
        return 1;
    }
    int codes[600] = { 0 };
    char line[128], last[256] = "";
    int rc = 0;
    for (long i = 0; i < rounds; i++) {
        if (gap_ms > 0 && i > 0) {
            /* Paced: the work each ETRN starts (a flush) is done before the next one asks. */
            struct timespec ts = { gap_ms / 1000, (gap_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        str_format(line, sizeof line, "ETRN n%ld.bench.test\r\n", order[i]);
        double a = bench_now();
        int code = bench_command(&c, line, last, sizeof last);
        ms[i] = (bench_now() - a) * 1e3;
        if (code < 0) {
            fprintf(stderr, "bench_etrn: ETRN %ld: no reply\n", i);
            rc = 1;
            rounds = i;
            break;
        }
        codes[code]++;
    }
    bench_command(&c, "QUIT\r\n", NULL, 0);
    bench_close(&c);
    if (rounds > 0) {
        double firstms = ms[0];
        qsort(ms, (size_t)rounds, sizeof *ms, bench_cmp_double);
        double sum = 0;
        for (long i = 0; i < rounds; i++)
            sum += ms[i];
        printf("rounds=%ld gap_ms=%ld median_ms=%.4f p99_ms=%.4f mean_ms=%.4f max_ms=%.4f first_ms=%.4f", rounds, gap_ms,
               ms[rounds / 2], ms[(rounds * 99) / 100 < rounds ? (rounds * 99) / 100 : rounds - 1],
               sum / (double)rounds, ms[rounds - 1], firstms);
        for (int k = 200; k < 600; k++)
            if (codes[k])
                printf(" reply_%d=%d", k, codes[k]);
        printf(" last=\"%.60s\"\n", last);
    }
    free(order);
    free(ms);
    return rc;
}

/* --- flush: one ETRN, then smtp-sink's counter ---------------------------------------- */

/* The last "mesg=N" smtp-sink -c wrote to its log (its counter, updated with \r). */
static long bench_sink_count(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    char buf[512];
    long count = 0;
    if (fstat(fd, &st) == 0) {
        off_t off = st.st_size > (off_t)sizeof buf - 1 ? st.st_size - (off_t)(sizeof buf - 1) : 0;
        ssize_t n = pread(fd, buf, sizeof buf - 1, off);
        if (n > 0) {
            buf[n] = '\0';
            char *p = buf, *hit = NULL;
            while ((p = strstr(p, "mesg=")) != NULL)
                hit = p++;
            if (hit)
                count = strtol(hit + 5, NULL, 10);
        }
    }
    close(fd);
    return count;
}

static int bench_flush(int argc, char **argv)
{
    struct sockaddr_in sa;
    long count, seconds;
    if (argc != 7 || bench_parse_addr(argv[2], &sa) < 0 ||
        bench_parse_count(argv[5], "COUNT", 1, 100000000, &count) < 0 ||
        bench_parse_count(argv[6], "SECONDS", 1, 86400, &seconds) < 0)
        return 1;
    const char *node = argv[3], *sinklog = argv[4];
    long base = bench_sink_count(sinklog);
    if (base < 0) {
        fprintf(stderr, "bench_etrn: cannot read %s\n", sinklog);
        return 1;
    }
    struct bench_conn c;
    if (bench_connect(&c, &sa) < 0 || bench_hello(&c) < 0) {
        fprintf(stderr, "bench_etrn: cannot open a session with %s\n", argv[2]);
        bench_close(&c);
        return 1;
    }
    char line[300], last[256] = "";
    str_format(line, sizeof line, "ETRN %s\r\n", node);
    double t0 = bench_now();
    int code = bench_command(&c, line, last, sizeof last);
    double treply = bench_now() - t0;
    bench_command(&c, "QUIT\r\n", NULL, 0);
    bench_close(&c);
    if (code < 200 || code > 299) {
        fprintf(stderr, "bench_etrn: ETRN %s: %d %s\n", node, code, last);
        return 1;
    }
    long got = 0, half_at_ms = -1;
    double deadline = t0 + (double)seconds, t = t0;
    /* 10 ms polls: the error this adds is < 0.1% of a flush that takes seconds. */
    while ((t = bench_now()) < deadline) {
        got = bench_sink_count(sinklog) - base;
        if (half_at_ms < 0 && got >= count / 2)
            half_at_ms = (long)((t - t0) * 1e3);
        if (got >= count)
            break;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    double dt = t - t0;
    printf("delivered=%ld seconds=%.3f rate=%.1f reply_ms=%.3f half_ms=%ld complete=%d reply=\"%.60s\"\n",
           got, dt, dt > 0 ? (double)got / dt : 0.0, treply * 1e3, half_at_ms, got >= count, last);
    return got >= count ? 0 : 1;
}

/* --- tarpit: accepts connections and never says a word ------------------------------ */

static volatile sig_atomic_t bench_stop;

static void bench_on_signal(int sig)
{
    (void)sig;
    bench_stop = 1;
}

static int bench_listen(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 || listen(fd, 4096) < 0) {
        perror("bench_etrn: listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int bench_tarpit(int argc, char **argv)
{
    struct sockaddr_in sa;
    long seconds;
    if (argc != 4 || bench_parse_addr(argv[2], &sa) < 0 ||
        bench_parse_count(argv[3], "SECONDS", 1, 86400, &seconds) < 0)
        return 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            perror("bench_etrn: setrlimit");
    }
    struct sigaction act = { .sa_handler = bench_on_signal };
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    int lfd = bench_listen(&sa);
    if (lfd < 0)
        return 1;
    static int held[BENCH_TARPIT_MAX];
    size_t nheld = 0, dropped = 0;
    double deadline = bench_now() + (double)seconds;
    while (!bench_stop && bench_now() < deadline) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        int n = poll(&p, 1, 200);
        if (n <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (nheld < BENCH_TARPIT_MAX)
            held[nheld++] = fd;
        else {
            close(fd);                           /* over the bound: the peer sees a close */
            dropped++;
        }
    }
    for (size_t i = 0; i < nheld; i++)
        close(held[i]);
    close(lfd);
    printf("held=%zu dropped=%zu\n", nheld, dropped);
    return 0;
}

/* --- helpers for the driver --------------------------------------------------------- */

/* A free port on the address (bound and released: good enough on a quiet loopback). */
static int bench_port(int argc, char **argv)
{
    struct sockaddr_in sa;
    char text[80];
    if (argc != 3)
        return 1;
    str_format(text, sizeof text, "%s:1", argv[2]);
    if (bench_parse_addr(text, &sa) < 0)
        return 1;
    sa.sin_port = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("bench_etrn: port");
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    printf("%d\n", ntohs(sa.sin_port));
    return 0;
}

/* Waits until HOST:PORT greets with 220 (a server reading a big spool at start-up). */
static int bench_wait(int argc, char **argv)
{
    struct sockaddr_in sa;
    long seconds;
    if (argc != 4 || bench_parse_addr(argv[2], &sa) < 0 ||
        bench_parse_count(argv[3], "SECONDS", 1, 86400, &seconds) < 0)
        return 1;
    double t0 = bench_now(), deadline = t0 + (double)seconds;
    while (bench_now() < deadline) {
        struct bench_conn c;
        if (bench_connect(&c, &sa) == 0) {
            char last[256];
            int code = bench_reply(&c, last, sizeof last);
            bench_command(&c, "QUIT\r\n", NULL, 0);
            bench_close(&c);
            if (code == 220) {
                printf("ready_s=%.3f\n", bench_now() - t0);
                return 0;
            }
        }
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench_etrn: %s did not greet within %ld s\n", argv[2], seconds);
    return 1;
}

static void bench_usage(void)
{
    fprintf(stderr,
            "usage: bench_etrn fill DIR COUNT SIZE NODES FIRST\n"
            "       bench_etrn inject HOST:PORT COUNT SIZE NODES SESSIONS FIRST\n"
            "       bench_etrn etrn HOST:PORT ROUNDS FIRST [GAP_MS]\n"
            "       bench_etrn flush HOST:PORT NODE SINKLOG COUNT SECONDS\n"
            "       bench_etrn tarpit HOST:PORT SECONDS\n"
            "       bench_etrn port HOST\n"
            "       bench_etrn wait HOST:PORT SECONDS\n"
            "Message i goes to u<i>@n<i %% NODES>.bench.test (i from FIRST); etrn asks for\n"
            "n<FIRST>..n<FIRST+ROUNDS-1>.bench.test in a shuffled order, GAP_MS apart (default\n"
            "0: back to back). Loopback only.\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        bench_usage();
        return 2;
    }
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        { "fill", bench_fill }, { "inject", bench_inject }, { "etrn", bench_etrn }, { "flush", bench_flush },
        { "tarpit", bench_tarpit }, { "port", bench_port }, { "wait", bench_wait },
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].run(argc, argv);
            if (rc == 1 && argc < 3)
                bench_usage();
            return rc;
        }
    bench_usage();
    return 2;
}
