/* etrnd — the etrnkit reference ETRN relay (etrnd(8)).
 *
 *   etrnd -c /etc/etrnd/etrnd.conf            # daemon: returns once it is listening
 *   etrnd -c etrnd.conf -f                    # foreground (tests, systemd Type=simple)
 *   etrnd -c etrnd.conf --check-config        # validate, print file:line errors, exit 0/2
 *   etrnd -c etrnd.conf --queue               # per-node counts, ages and sizes (read-only)
 *
 * Start-up opens the spool (recovering what a crash left) and binds the listeners in the
 * process that serves; when daemonizing, the parent waits for the child to report that it
 * is listening, so a start-up error reaches the caller's terminal and exit status.
 * Signals: SIGTERM/SIGINT stop gracefully (no new connections, 421 to open sessions,
 * deliveries in flight finish or are abandoned after a bounded wait — an abandoned
 * delivery leaves its message in the spool), SIGHUP reloads the configuration (a broken
 * file is refused and the running settings stay). Exit: 0 ok, 1 runtime failure,
 * 2 usage or configuration error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "err.h"
#include "etrnd_config.h"
#include "fileio.h"
#include "flush.h"
#include "log.h"
#include "smtpd.h"
#include "spool.h"
#include "strbuf.h"

#define ETRND_VERSION "etrnd (etrnkit) 0.1"
#define ETRND_STOP_GRACE_S 20   /* deliveries in flight get this long after SIGTERM */

struct etrnd {
    struct event_base *base;
    struct etrnd_config *cfg;
    struct etrnd_config **retired;   /* replaced by reloads; deliveries may still point at them */
    size_t nretired;
    struct spool *spool;
    struct flush *flush;
    struct smtpd *smtpd;
    struct event *sig_term, *sig_int, *sig_hup, *stop_timer, *stop_poll;
    int stopping;
    int drained;                     /* no delivery runs any more */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: etrnd -c FILE [-f]            run the relay (-f: stay in the foreground)\n"
            "       etrnd -c FILE --check-config  validate the configuration\n"
            "       etrnd -c FILE --queue         list the spool per node (read-only)\n"
            "       etrnd --version | --help\n"
            "Exit: 0 ok, 1 runtime failure, 2 usage or configuration error. See etrnd(8), etrnd.conf(5).\n");
}

/* --- etrnd --queue ------------------------------------------------------------------------ */

static void format_age(time_t secs, char *buf, size_t n)
{
    if (secs < 0)
        secs = 0;
    if (secs < 120)
        str_format(buf, n, "%llds", (long long)secs);
    else if (secs < 7200)
        str_format(buf, n, "%lldm", (long long)(secs / 60));
    else if (secs < 172800)
        str_format(buf, n, "%lldh", (long long)(secs / 3600));
    else
        str_format(buf, n, "%lldd", (long long)(secs / 86400));
}

static int queue_list(const struct etrnd_config *cfg)
{
    struct etrn_err err = {{0}};
    struct spool *sp;
    if (spool_open_readonly(&sp, cfg->spool, &err) < 0) {
        fprintf(stderr, "etrnd: %s\n", err.msg);
        return 1;
    }
    char **domains = NULL;
    size_t *counts = NULL, n = 0;
    if (spool_domains(sp, &domains, &counts, &n, &err) < 0) {
        fprintf(stderr, "etrnd: %s\n", err.msg);
        spool_close(sp);
        return 1;
    }
    time_t now = time(NULL);
    size_t total = 0;
    unsigned long long total_bytes = 0;
    printf("%-40s %8s %8s %12s %s\n", "NODE", "MESSAGES", "OLDEST", "BYTES", "HELD");
    for (size_t i = 0; i < n; i++) {
        char **ids = NULL;
        size_t nids = 0;
        time_t oldest = now;
        unsigned long long bytes = 0;
        if (spool_collect(sp, domains[i], 0, &ids, &nids, &err) == 0) {
            for (size_t k = 0; k < nids; k++) {
                struct spool_entry *e;
                if (spool_entry_get(sp, ids[k], &e, &err) < 0)
                    continue;   /* delivered meanwhile */
                if (e->arrival < oldest)
                    oldest = e->arrival;
                bytes += e->size;
                spool_entry_free(e);
            }
            spool_ids_free(ids, nids);
        }
        char age[32];
        format_age(now - oldest, age, sizeof age);
        printf("%-40s %8zu %8s %12llu %s\n", domains[i], counts[i], age, bytes,
               etrnd_config_holds_domain(cfg, domains[i]) ? "etrn" : "relay");
        total += counts[i];
        total_bytes += bytes;
        free(domains[i]);
    }
    printf("total: %zu entr%s for %zu node%s, %llu bytes\n", total, total == 1 ? "y" : "ies", n,
           n == 1 ? "" : "s", total_bytes);
    free(domains);
    free(counts);
    spool_close(sp);
    return 0;
}

/* --- signals -------------------------------------------------------------------------------- */

/* Stopping ends when deliveries have drained and every session has written its 421. */
static void etrnd_stop_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct etrnd *d = arg;
    if (d->drained && smtpd_session_count(d->smtpd) == 0) {
        log_info("deliveries finished and sessions closed; exiting");
        event_base_loopexit(d->base, NULL);
        return;
    }
    if (d->stop_poll) {
        struct timeval tv = { 0, 20 * 1000 };
        evtimer_add(d->stop_poll, &tv);
    }
}

static void etrnd_drained(void *arg)
{
    struct etrnd *d = arg;
    d->drained = 1;
    etrnd_stop_check(-1, 0, d);
}

static void etrnd_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct etrnd *d = arg;
    log_warn("deliveries still running after %ds; their messages stay in the spool", ETRND_STOP_GRACE_S);
    event_base_loopexit(d->base, NULL);
}

static void etrnd_on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct etrnd *d = arg;
    if (d->stopping) {
        log_info("signal %d again: exiting now", (int)sig);
        event_base_loopexit(d->base, NULL);
        return;
    }
    d->stopping = 1;
    log_info("signal %d: stopping", (int)sig);
    smtpd_stop_accepting(d->smtpd);
    smtpd_close_sessions(d->smtpd);
    d->stop_poll = evtimer_new(d->base, etrnd_stop_check, d);
    d->stop_timer = evtimer_new(d->base, etrnd_stop_timeout, d);
    if (d->stop_timer) {
        struct timeval tv = { ETRND_STOP_GRACE_S, 0 };
        evtimer_add(d->stop_timer, &tv);
    }
    flush_drain(d->flush, etrnd_drained, d);
}

static void etrnd_on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct etrnd *d = arg;
    struct etrn_err err = {{0}};
    struct etrnd_config *nc;
    if (etrnd_config_load(&nc, d->cfg->file, &err) < 0) {
        log_error("reload refused, running settings kept: %s", err.msg);
        return;
    }
    if (smtpd_reconfigure(d->smtpd, nc, &err) < 0) {
        log_error("reload refused, running settings kept: %s", err.msg);
        etrnd_config_free(nc);
        return;
    }
    flush_set_config(d->flush, nc);
    log_set_level((enum log_level)nc->log_level);
    if (strcmp(nc->spool, d->cfg->spool) != 0)
        log_warn("reload: spool changes need a restart; still using %s", d->cfg->spool);
    if (nc->nlisten != d->cfg->nlisten)
        log_warn("reload: listen changes need a restart");
    struct etrnd_config **grown = realloc(d->retired, (d->nretired + 1) * sizeof *grown);
    if (grown) {
        d->retired = grown;
        d->retired[d->nretired++] = d->cfg;
    }   /* else: leak the old settings rather than free what deliveries may still read */
    d->cfg = nc;
    log_info("configuration reloaded from %s", nc->file);
}

/* --- start-up --------------------------------------------------------------------------------- */

static int write_pid_file(const char *path, struct etrn_err *err)
{
    char text[32];
    str_format(text, sizeof text, "%ld\n", (long)getpid());
    return fileio_write_file_atomic(path, text, strlen(text), err);
}

/* Everything that can fail at start-up, in the serving process. */
static int etrnd_start(struct etrnd *d, struct etrn_err *err)
{
    d->base = event_base_new();
    if (d->base == NULL)
        return err_set(err, "cannot create the event loop");
    if (spool_open(&d->spool, d->cfg->spool, err) < 0)
        return -1;
    const struct spool_recovery *rec = spool_recovery_report(d->spool);
    log_info("spool %s: %zu entries, %zu messages; recovery removed %zu temporary and %zu orphan "
             "files, completed %zu, quarantined %zu",
             d->cfg->spool, rec->entries, rec->bodies, rec->tmp_removed, rec->orphans_removed,
             rec->completed, rec->quarantined);
    for (size_t i = 0; i < rec->quarantined && i < SPOOL_RECOVERY_NAMES; i++)
        log_warn("spool: quarantined %s", rec->quarantined_names[i]);
    if (!spool_is_durable(d->spool))
        log_warn("spool: ETRND_SPOOL_NO_FSYNC is set: commits are NOT durable (benchmarks only)");
    if (flush_init(&d->flush, d->base, d->spool, d->cfg, err) < 0)
        return -1;
    if (smtpd_new(&d->smtpd, d->base, d->cfg, d->spool, d->flush, err) < 0)
        return -1;
    if (smtpd_listen(d->smtpd, err) < 0)
        return -1;
    if (d->cfg->pid_file && write_pid_file(d->cfg->pid_file, err) < 0)
        return -1;
    d->sig_term = evsignal_new(d->base, SIGTERM, etrnd_on_stop, d);
    d->sig_int = evsignal_new(d->base, SIGINT, etrnd_on_stop, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, etrnd_on_hup, d);
    if (!d->sig_term || !d->sig_int || !d->sig_hup || evsignal_add(d->sig_term, NULL) < 0 ||
        evsignal_add(d->sig_int, NULL) < 0 || evsignal_add(d->sig_hup, NULL) < 0)
        return err_set(err, "cannot install signal handlers");
    if (d->cfg->ndefects)
        log_warn("TEST-ONLY DEFECTS are switched on (%zu): this relay misbehaves on purpose",
                 d->cfg->ndefects);
    return 0;
}

static void etrnd_free(struct etrnd *d)
{
    if (d->sig_term) event_free(d->sig_term);
    if (d->sig_int) event_free(d->sig_int);
    if (d->sig_hup) event_free(d->sig_hup);
    if (d->stop_timer) event_free(d->stop_timer);
    if (d->stop_poll) event_free(d->stop_poll);
    smtpd_free(d->smtpd);
    if (d->flush)
        flush_free(d->flush);
    if (d->spool)
        spool_close(d->spool);
    if (d->base)
        event_base_free(d->base);
    if (d->cfg && d->cfg->pid_file)
        unlink(d->cfg->pid_file);
    for (size_t i = 0; i < d->nretired; i++)
        etrnd_config_free(d->retired[i]);
    free(d->retired);
    etrnd_config_free(d->cfg);
}

/* Forks; the parent waits until the child writes "" (ready) or an error to the pipe and
 * exits with the matching status. Returns in the child with *report_fd set. */
static int daemonize(int *report_fd)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("etrnd: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("etrnd: fork");
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        char msg[ETRN_ERR_MAX + 1];
        ssize_t got = 0, r;
        while ((size_t)got < sizeof msg - 1 &&
               ((r = read(p[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0 || (r < 0 && errno == EINTR)))
            if (r > 0)
                got += r;
        msg[got] = '\0';
        if (got == 0) {
            fprintf(stderr, "etrnd: the daemon exited during start-up\n");
            _exit(1);
        }
        if (strcmp(msg, "ok") == 0)
            _exit(0);
        fprintf(stderr, "etrnd: %s\n", msg);
        _exit(1);
    }
    close(p[0]);
    if (setsid() < 0)
        return -1;
    pid = fork();   /* never reacquire a terminal */
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return -1;
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        if (nul > 1)
            close(nul);
    }
    *report_fd = p[1];
    return 0;
}

static void report_start(int fd, const char *msg)
{
    if (fd < 0)
        return;
    size_t n = strlen(msg);
    if (fileio_write_all(fd, msg, n) < 0) {
        /* the parent is gone: nothing to tell */
    }
    close(fd);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int foreground = 0, check_only = 0, queue_only = 0;
    enum { OPT_CHECK = 1000, OPT_QUEUE, OPT_VERSION };
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "foreground", no_argument, NULL, 'f' },
        { "check-config", no_argument, NULL, OPT_CHECK },
        { "queue", no_argument, NULL, OPT_QUEUE },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'f': foreground = 1; break;
        case OPT_CHECK: check_only = 1; break;
        case OPT_QUEUE: queue_only = 1; break;
        case OPT_VERSION: puts(ETRND_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "etrnd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (config_path == NULL) {
        fprintf(stderr, "etrnd: -c FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (check_only + queue_only > 1) {
        fprintf(stderr, "etrnd: --check-config and --queue exclude each other\n");
        return 2;
    }

    struct etrnd d;
    memset(&d, 0, sizeof d);
    struct etrn_err err = {{0}};
    if (etrnd_config_load(&d.cfg, config_path, &err) < 0) {
        fprintf(stderr, "etrnd: %s\n", err.msg);
        return 2;
    }
    if (check_only) {
        printf("etrnd: %s: configuration OK (%zu listen address%s, %zu ETRN domain%s)\n", config_path,
               d.cfg->nlisten, d.cfg->nlisten == 1 ? "" : "es", d.cfg->netrn_domains,
               d.cfg->netrn_domains == 1 ? "" : "s");
        etrnd_config_free(d.cfg);
        return 0;
    }
    if (queue_only) {
        int rc = queue_list(d.cfg);
        etrnd_config_free(d.cfg);
        return rc;
    }

    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("etrnd: signal");
        return 1;
    }
    int report_fd = -1;
    if (!foreground && daemonize(&report_fd) < 0) {
        etrnd_config_free(d.cfg);
        return 1;
    }
    if (!foreground && d.cfg->log_file == NULL) {
        /* A daemon has no terminal: without log_file its log is discarded (start-up
         * errors still reach the caller through the report pipe). */
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, 2);
            close(nul);
        }
    }
    if (log_open("etrnd", (enum log_level)d.cfg->log_level, d.cfg->log_file) < 0) {
        char msg[ETRN_ERR_MAX];
        str_format(msg, sizeof msg, "cannot open log file %s: %s", d.cfg->log_file, strerror(errno));
        if (foreground)
            fprintf(stderr, "etrnd: %s\n", msg);
        report_start(report_fd, msg);
        etrnd_config_free(d.cfg);
        return 1;
    }
    if (etrnd_start(&d, &err) < 0) {
        log_error("start-up failed: %s", err.msg);
        if (foreground && d.cfg->log_file)
            fprintf(stderr, "etrnd: %s\n", err.msg);
        report_start(report_fd, err.msg);
        etrnd_free(&d);
        log_close();
        return 1;
    }
    log_info("%s ready as %s (pid %ld)", ETRND_VERSION, d.cfg->myhostname, (long)getpid());
    report_start(report_fd, "ok");
    if (!foreground) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, 2);
            close(nul);
        }
    }
    int rc = event_base_dispatch(d.base) < 0 ? 1 : 0;
    log_info("stopped");
    etrnd_free(&d);
    log_close();
    return rc;
}
