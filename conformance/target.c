/* target.c — starting, checking and stopping the target and running profile commands.
 *
 *   target_write_config(p, &err); target_start(p, &t, &err); target_wait_ready(p, &t, &err);
 *   target_run(p, p->reset, 30000, &out, &err);  target_stop(p, &t);
 *   target_cmd_start(&c, base, p, p->queue_list, 10000, done, arg, &err);   // async
 *
 * Guarantees: see target.h. Every child runs in its own process group so that a shell
 * wrapper and everything it started are signalled together. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fileio.h"
#include "netaddr.h"
#include "target.h"

void target_proc_init(struct target_proc *t)
{
    t->pid = 0;
    t->exited = 0;
    t->status = 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int target_write_config(const struct target_profile *p, struct etrn_err *err)
{
    if (p->config_template == NULL)
        return 0;
    struct strbuf path, tmpl, text, out;
    strbuf_init(&path, 4096);
    strbuf_init(&tmpl, 1024 * 1024);
    strbuf_init(&text, 2 * 1024 * 1024);
    strbuf_init(&out, 4096);
    int rc = -1;
    struct etrn_err e;
    /* a relative template is relative to the profile's folder */
    if (p->config_template[0] != '/')
        strbuf_appendf(&path, "%s/", p->dir ? p->dir : ".");
    strbuf_append_str(&path, p->config_template);
    if (fileio_read_file(path.data, &tmpl, 1024 * 1024, &e) < 0) {
        err_set(err, "config_template: %s", e.msg);
        goto out;
    }
    if (profile_expand(p, tmpl.data, &text, &e) < 0) {
        err_set(err, "%s: %s", path.data, e.msg);
        goto out;
    }
    if (profile_expand(p, p->config_file, &out, &e) < 0) {
        err_set(err, "config_file: %s", e.msg);
        goto out;
    }
    if (fileio_write_file_atomic(out.data, text.data, text.len, &e) < 0) {
        err_set(err, "cannot write the target's configuration: %s", e.msg);
        goto out;
    }
    rc = 0;
out:
    strbuf_free(&path);
    strbuf_free(&tmpl);
    strbuf_free(&text);
    strbuf_free(&out);
    return rc;
}

/* Forks sh -c cmd in a new process group; stdout to out_fd (or the log), stderr to the log. */
static pid_t spawn(const struct target_profile *p, const char *cmd, int out_fd,
                   struct etrn_err *err)
{
    struct strbuf exp, logpath;
    strbuf_init(&exp, 65536);
    strbuf_init(&logpath, 4096);
    struct etrn_err e;
    if (profile_expand(p, cmd, &exp, &e) < 0) {
        err_set(err, "command '%.200s': %s", cmd, e.msg);
        strbuf_free(&exp);
        strbuf_free(&logpath);
        return -1;
    }
    strbuf_appendf(&logpath, "%s/target.log", p->work_dir ? p->work_dir : ".");
    int logfd = open(logpath.data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        err_set_errno(err, "cannot open %s", logpath.data);
        strbuf_free(&exp);
        strbuf_free(&logpath);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        err_set_errno(err, "fork");
        close(logfd);
        strbuf_free(&exp);
        strbuf_free(&logpath);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : logfd, 1);
        dup2(logfd, 2);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", exp.data, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);   /* both sides, so there is no race with a kill */
    close(logfd);
    strbuf_free(&exp);
    strbuf_free(&logpath);
    return pid;
}

int target_start(const struct target_profile *p, struct target_proc *t, struct etrn_err *err)
{
    target_proc_init(t);
    if (p->start == NULL)
        return 0;
    pid_t pid = spawn(p, p->start, -1, err);
    if (pid < 0)
        return -1;
    t->pid = pid;
    return 0;
}

int target_has_exited(struct target_proc *t)
{
    if (t->pid <= 0)
        return 0;
    if (t->exited)
        return 1;
    int st;
    pid_t r = waitpid(t->pid, &st, WNOHANG);
    if (r == t->pid) {
        t->exited = 1;
        t->status = st;
        return 1;
    }
    return 0;
}

void target_log_tail(const struct target_profile *p, char *buf, size_t n)
{
    buf[0] = '\0';
    char path[4200];
    if (str_format(path, sizeof path, "%s/target.log", p->work_dir ? p->work_dir : ".") < 0)
        return;
    struct strbuf sb;
    strbuf_init(&sb, 8 * 1024 * 1024);
    if (fileio_read_file(path, &sb, 8 * 1024 * 1024, NULL) == 0 && sb.len > 0) {
        size_t start = sb.len > 600 ? sb.len - 600 : 0;
        snprintf(buf, n, "%s", sb.data + start);
        for (char *c = buf; *c; c++)
            if (*c == '\n')
                *c = '|';
    }
    strbuf_free(&sb);
}

int target_wait_ready(const struct target_profile *p, struct target_proc *t,
                      struct etrn_err *err)
{
    int64_t end = now_ms() + (int64_t)p->start_timeout_ms;
    for (;;) {
        int fd = socket(p->target_addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return err_set_errno(err, "socket");
        int r = connect(fd, (struct sockaddr *)&p->target_addr.ss, p->target_addr.len);
        close(fd);
        if (r == 0)
            return 0;
        if (target_has_exited(t)) {
            char tail[700];
            target_log_tail(p, tail, sizeof tail);
            return err_set(err, "the target exited during start-up (status %d): %s",
                           WIFEXITED(t->status) ? WEXITSTATUS(t->status) : 128 + WTERMSIG(t->status),
                           tail[0] ? tail : "(no output)");
        }
        if (now_ms() >= end)
            return err_set(err, "the target %s did not accept connections within %llums",
                           p->target, p->start_timeout_ms);
        sleep_ms(100);
    }
}

static int wait_pid_bounded(pid_t pid, long ms, int *status)
{
    for (long waited = 0;; waited += 20) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return 0;   /* already reaped */
        if (waited >= ms)
            return -1;
        sleep_ms(20);
    }
}

void target_stop(const struct target_profile *p, struct target_proc *t)
{
    if (p->stop) {
        struct etrn_err e;
        target_run(p, p->stop, 10000, NULL, &e);
    }
    if (t->pid <= 0 || t->exited)
        return;
    kill(-t->pid, SIGTERM);
    int st;
    if (wait_pid_bounded(t->pid, 5000, &st) < 0) {
        kill(-t->pid, SIGKILL);
        wait_pid_bounded(t->pid, 2000, &st);
    }
    /* anything left in the group (a daemonised child) goes too */
    kill(-t->pid, SIGKILL);
    t->exited = 1;
    t->status = st;
}

int target_run(const struct target_profile *p, const char *cmd, unsigned long long timeout_ms,
               struct strbuf *out, struct etrn_err *err)
{
    int fds[2] = {-1, -1};
    if (out && pipe2(fds, O_CLOEXEC) < 0)
        return err_set_errno(err, "pipe");
    pid_t pid = spawn(p, cmd, out ? fds[1] : -1, err);
    if (fds[1] >= 0)
        close(fds[1]);
    if (pid < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        return -1;
    }
    int64_t end = now_ms() + (int64_t)timeout_ms;
    if (out) {
        fileio_set_nonblock(fds[0]);
        char buf[4096];
        for (;;) {
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n > 0) {
                if (out->len + (size_t)n <= TARGET_OUTPUT_MAX)
                    strbuf_append(out, buf, (size_t)n);
                continue;
            }
            if (n == 0)
                break;
            if (errno != EAGAIN && errno != EINTR)
                break;
            if (now_ms() >= end)
                break;
            sleep_ms(10);
        }
        close(fds[0]);
    }
    int st = 0;
    long left = (long)(end - now_ms());
    if (wait_pid_bounded(pid, left > 0 ? left : 0, &st) < 0) {
        kill(-pid, SIGKILL);
        wait_pid_bounded(pid, 2000, &st);
        return err_set(err, "command '%.200s' did not finish within %llums", cmd, timeout_ms);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return err_set(err, "command '%.200s' failed (status %d)", cmd,
                       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 0;
}

/* ---- asynchronous commands --------------------------------------------------------------- */

struct target_cmd {
    pid_t pid;
    int fd;
    struct event *rev, *timer;
    struct strbuf out;
    target_cmd_cb cb;
    void *arg;
    char cmd[200];
};

static void cmd_end(struct target_cmd *c, int timed_out)
{
    event_del(c->rev);
    event_del(c->timer);
    int st = 0;
    if (timed_out) {
        kill(-c->pid, SIGKILL);
        wait_pid_bounded(c->pid, 2000, &st);
    } else if (wait_pid_bounded(c->pid, 2000, &st) < 0) {
        kill(-c->pid, SIGKILL);
        wait_pid_bounded(c->pid, 2000, &st);
        timed_out = 1;
    }
    c->pid = 0;
    char why[300] = "";
    int ok = !timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (timed_out)
        snprintf(why, sizeof why, "'%s' did not finish in time", c->cmd);
    else if (!ok)
        snprintf(why, sizeof why, "'%s' failed (status %d)", c->cmd,
                 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    c->cb(c, ok, c->out.data, why, c->arg);
}

static void cmd_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct target_cmd *c = arg;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (c->out.len + (size_t)n <= TARGET_OUTPUT_MAX)
                strbuf_append(&c->out, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        cmd_end(c, 0);
        return;
    }
}

static void cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cmd_end(arg, 1);
}

int target_cmd_start(struct target_cmd **out, struct event_base *base,
                     const struct target_profile *p, const char *cmd,
                     unsigned long long timeout_ms, target_cmd_cb cb, void *arg,
                     struct etrn_err *err)
{
    struct target_cmd *c = calloc(1, sizeof *c);
    if (c == NULL)
        return err_set(err, "out of memory");
    strbuf_init(&c->out, TARGET_OUTPUT_MAX + 1);
    snprintf(c->cmd, sizeof c->cmd, "%s", cmd);
    c->cb = cb;
    c->arg = arg;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        strbuf_free(&c->out);
        free(c);
        return err_set_errno(err, "pipe");
    }
    c->pid = spawn(p, cmd, fds[1], err);
    close(fds[1]);
    if (c->pid < 0) {
        close(fds[0]);
        strbuf_free(&c->out);
        free(c);
        return -1;
    }
    c->fd = fds[0];
    fileio_set_nonblock(c->fd);
    c->rev = event_new(base, c->fd, EV_READ | EV_PERSIST, cmd_read, c);
    c->timer = evtimer_new(base, cmd_timeout, c);
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if (c->rev == NULL || c->timer == NULL || event_add(c->rev, NULL) < 0 ||
        evtimer_add(c->timer, &tv) < 0) {
        target_cmd_free(c);
        return err_set(err, "out of memory");
    }
    *out = c;
    return 0;
}

void target_cmd_free(struct target_cmd *c)
{
    if (c == NULL)
        return;
    if (c->pid > 0) {
        kill(-c->pid, SIGKILL);
        int st;
        wait_pid_bounded(c->pid, 2000, &st);
    }
    if (c->rev)
        event_free(c->rev);
    if (c->timer)
        event_free(c->timer);
    if (c->fd > 0)
        close(c->fd);
    strbuf_free(&c->out);
    free(c);
}
