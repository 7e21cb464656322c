/* bench_spool.c — how long the spool takes to answer ETRN's questions (spool_count,
 * spool_collect, exact domain and '@' subdomains) with 1k, 100k and 1M entries queued
 * across 10,000 domains, plus what a durable commit and a reopen cost.
 *
 * Build and run by hand (from the project root): make build/bench/bench_spool &&
 *   build/bench/bench_spool [MAX_ENTRIES] [DIR]
 *
 * MAX_ENTRIES (default 1000000) stops the series early (1000, 100000, 1000000 up to it).
 * DIR (default a fresh /tmp/bench_spool.XXXXXX, removed at the end) holds the spool;
 * 1M entries need about 1.1 million inodes and 5 GB of disk (4 KiB blocks); the full
 * run takes about 4 minutes here, most of it filling and removing files.
 *
 * Each message goes to 10 domains (one entry each, one shared body), so 1M entries are
 * 100k messages. Domains are n<i>.d<i % 100>.bench.test, i < 10,000: "@d7.bench.test"
 * covers 100 of them. The spool is filled with ETRND_SPOOL_NO_FSYNC=1 — a switch for
 * building benchmark spools only — then reopened normally (durable) and every lookup is
 * timed against the index that spool_open built from the envelope files. Figures are
 * per call, median and 99th percentile over many calls on random domains. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "strbuf.h"

#define BENCH_DOMAINS 10000
#define BENCH_PARENTS 100
#define BENCH_RCPTS_PER_MSG 10
#define BENCH_CALLS 2000
#define BENCH_COLLECT_CALLS 200

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

static void bench_report(const char *what, double *us, size_t n)
{
    qsort(us, n, sizeof(*us), bench_cmp_double);
    printf("  %-34s median %9.2f us   p99 %9.2f us\n", what, us[n / 2], us[(n * 99) / 100]);
}

static long bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static int bench_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

/* Adds messages until the spool holds target entries; message m goes to domains
 * (m * 10 + k) % 10,000, k < 10, so the entries spread evenly. */
static int bench_fill(const char *dir, size_t *have, size_t target)
{
    setenv("ETRND_SPOOL_NO_FSYNC", "1", 1);
    struct spool *sp;
    struct etrn_err err;
    int rc = spool_open(&sp, dir, &err);
    unsetenv("ETRND_SPOOL_NO_FSYNC");
    if (rc < 0) {
        fprintf(stderr, "bench_spool: %s\n", err.msg);
        return -1;
    }
    static const char body[] =
        "From: bench@origin.test\r\nTo: node\r\nSubject: spool benchmark\r\n\r\nhello\r\n";
    double t0 = bench_now();
    size_t start = *have;
    while (*have < target) {
        size_t m = *have / BENCH_RCPTS_PER_MSG;
        char bufs[BENCH_RCPTS_PER_MSG][64];
        char *rcpts[BENCH_RCPTS_PER_MSG];
        for (size_t k = 0; k < BENCH_RCPTS_PER_MSG; k++) {
            size_t d = (m * BENCH_RCPTS_PER_MSG + k) % BENCH_DOMAINS;
            str_format(bufs[k], sizeof bufs[k], "u%zu@n%zu.d%zu.bench.test", m, d, d % BENCH_PARENTS);
            rcpts[k] = bufs[k];
        }
        struct spool_writer *w;
        char qid[SPOOL_ID_MAX];
        if (spool_writer_begin(sp, &w, &err) < 0 || spool_writer_write(w, body, sizeof body - 1, &err) < 0 ||
            spool_writer_commit(w, "bench@origin.test", rcpts, BENCH_RCPTS_PER_MSG, qid, &err) < 0) {
            fprintf(stderr, "bench_spool: commit: %s\n", err.msg);
            spool_close(sp);
            return -1;
        }
        *have += BENCH_RCPTS_PER_MSG;
    }
    double t = bench_now() - t0;
    printf("  filled %zu entries (no fsync) in %.1f s (%.0f messages/s)\n", *have - start, t,
           (double)(*have - start) / BENCH_RCPTS_PER_MSG / (t > 0 ? t : 1));
    spool_close(sp);
    return 0;
}

static void bench_measure(const char *dir, size_t entries)
{
    struct spool *sp;
    struct etrn_err err;
    double t0 = bench_now();
    if (spool_open(&sp, dir, &err) < 0) {
        fprintf(stderr, "bench_spool: %s\n", err.msg);
        return;
    }
    double topen = bench_now() - t0;
    printf("%zu entries: spool_open (reads every envelope) %.2f s, total %zu, RSS %ld MiB\n",
           entries, topen, spool_total(sp), bench_rss_kib() / 1024);
    size_t ndom = entries < BENCH_DOMAINS ? entries : BENCH_DOMAINS;
    static double us[BENCH_CALLS];
    char name[64];
    size_t sink = 0;

    for (size_t i = 0; i < BENCH_CALLS; i++) {
        size_t d = (size_t)rand() % ndom;
        str_format(name, sizeof name, "n%zu.d%zu.bench.test", d, d % BENCH_PARENTS);
        double a = bench_now();
        sink += spool_count(sp, name, 0);
        us[i] = (bench_now() - a) * 1e6;
    }
    bench_report("spool_count(node)", us, BENCH_CALLS);

    for (size_t i = 0; i < BENCH_CALLS; i++) {
        str_format(name, sizeof name, "d%zu.bench.test", (size_t)rand() % BENCH_PARENTS);
        double a = bench_now();
        sink += spool_count(sp, name, 1);
        us[i] = (bench_now() - a) * 1e6;
    }
    bench_report("spool_count(@parent, 100 domains)", us, BENCH_CALLS);

    size_t collected = 0;
    for (size_t i = 0; i < BENCH_COLLECT_CALLS; i++) {
        size_t d = (size_t)rand() % ndom;
        str_format(name, sizeof name, "n%zu.d%zu.bench.test", d, d % BENCH_PARENTS);
        char **ids;
        size_t n;
        double a = bench_now();
        if (spool_collect(sp, name, 0, &ids, &n, &err) == 0) {
            collected += n;
            spool_ids_free(ids, n);
        }
        us[i] = (bench_now() - a) * 1e6;
    }
    char what[80];
    str_format(what, sizeof what, "spool_collect(node) ~%zu ids", collected / BENCH_COLLECT_CALLS);
    bench_report(what, us, BENCH_COLLECT_CALLS);

    collected = 0;
    for (size_t i = 0; i < BENCH_COLLECT_CALLS; i++) {
        str_format(name, sizeof name, "d%zu.bench.test", (size_t)rand() % BENCH_PARENTS);
        char **ids;
        size_t n;
        double a = bench_now();
        if (spool_collect(sp, name, 1, &ids, &n, &err) == 0) {
            collected += n;
            spool_ids_free(ids, n);
        }
        us[i] = (bench_now() - a) * 1e6;
    }
    str_format(what, sizeof what, "spool_collect(@parent) ~%zu ids", collected / BENCH_COLLECT_CALLS);
    bench_report(what, us, BENCH_COLLECT_CALLS);

    if (sink == (size_t)-1)
        printf("(unreachable)\n");
    spool_close(sp);
}

/* The cost of the 250 after DATA (fully durable one-domain commits) and of removing a
 * delivered entry, in a spool of its own. */
static void bench_durable_commit(const char *dir)
{
    char sub[4200];
    str_format(sub, sizeof sub, "%s/durable", dir);
    struct spool *sp;
    struct etrn_err err;
    if (spool_open(&sp, sub, &err) < 0) {
        fprintf(stderr, "bench_spool: %s\n", err.msg);
        return;
    }
    static double us[200];
    for (size_t i = 0; i < 200; i++) {
        char *rcpt[1] = { "u@node.test" };
        struct spool_writer *w;
        char qid[SPOOL_ID_MAX];
        double a = bench_now();
        if (spool_writer_begin(sp, &w, &err) < 0 || spool_writer_write(w, "x\r\n", 3, &err) < 0 ||
            spool_writer_commit(w, "s@origin.test", rcpt, 1, qid, &err) < 0) {
            fprintf(stderr, "bench_spool: %s\n", err.msg);
            break;
        }
        us[i] = (bench_now() - a) * 1e6;
    }
    printf("durable spool (fsync on, 1 domain, %s):\n", spool_is_durable(sp) ? "durable" : "NOT durable");
    bench_report("spool_writer_begin..commit", us, 200);
    char **ids;
    size_t n;
    if (spool_collect(sp, "node.test", 0, &ids, &n, &err) == 0) {
        for (size_t i = 0; i < n && i < 200; i++) {
            double a = bench_now();
            if (spool_remove(sp, ids[i], &err) < 0)
                fprintf(stderr, "bench_spool: %s\n", err.msg);
            us[i] = (bench_now() - a) * 1e6;
        }
        if (n >= 200)
            bench_report("spool_remove (envelope + body)", us, 200);
        spool_ids_free(ids, n);
    }
    spool_close(sp);
}

int main(int argc, char **argv)
{
    size_t max = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    char dir[4096];
    int own = argc <= 2;
    if (own) {
        str_copy(dir, sizeof dir, "/tmp/bench_spool.XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    } else {
        str_copy(dir, sizeof dir, argv[2]);
    }
    log_open("bench_spool", LOG_LEVEL_ERROR, NULL);   /* the no-fsync warning is expected */
    srand(1);
    printf("spool benchmark in %s: %d domains, %d entries per message\n", dir, BENCH_DOMAINS,
           BENCH_RCPTS_PER_MSG);
    bench_durable_commit(dir);
    static const size_t sizes[] = { 1000, 100000, 1000000 };
    size_t have = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && sizes[i] <= max; i++) {
        if (bench_fill(dir, &have, sizes[i]) < 0)
            break;
        bench_measure(dir, have);
        fflush(stdout);
    }
    if (own) {
        double t0 = bench_now();
        nftw(dir, bench_remove_one, 16, FTW_DEPTH | FTW_PHYS);
        printf("removed %s in %.1f s\n", dir, bench_now() - t0);
    }
    return 0;
}
