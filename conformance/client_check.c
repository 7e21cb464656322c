/* client_check.c — runs a client program against the scripted relay and judges it
 * (see client_check.h; the checks are documented in docs/SCENARIOS.md "Client scenarios").
 *
 *   client_check_run(&opts, &sc, seq, &res, &err);
 *   client_check_evaluate(&sc, log, &facts, lookup, arg, &res);   // used by _run, and tests
 *   client_check_etrn_valid("ETRN @a.test", 12, 0, why, sizeof why);
 *
 * One event loop per scenario holds the relay, the client's output pipe and three timers
 * (reaping the client, the bound, a short grace after the client exits so the relay sees
 * the connection close). Nothing here waits without a timer; the client is always reaped. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "client_check.h"
#include "strbuf.h"

#define GRACE_MS 300
#define REAP_POLL_MS 50

/* ---- variables and the command line ----------------------------------------------------- */

struct cc_vars {
    char host[32];
    char port[8];
    char relay[48];
    char suffix[200];
    char nodes[CLIENT_CHECK_NODES_MAX][256];
    char upper[256];
    char numbered[16];
    unsigned nnodes;
};

static const char *cc_lookup(const char *name, void *arg)
{
    struct cc_vars *v = arg;
    if (strcmp(name, "node") == 0)
        return v->nodes[0];
    if (strcmp(name, "NODE") == 0)
        return v->upper;
    if (strcmp(name, "relay") == 0)
        return v->relay;
    if (strcmp(name, "relay_host") == 0)
        return v->host;
    if (strcmp(name, "relay_port") == 0)
        return v->port;
    if (strcmp(name, "suffix") == 0)
        return v->suffix;
    if (strncmp(name, "node", 4) == 0 && name[4] >= '1' && name[4] <= '8' && name[5] == '\0') {
        unsigned i = (unsigned)(name[4] - '1');
        return i < v->nnodes ? v->nodes[i] : NULL;
    }
    return NULL;
}

int client_check_expand_command(const char *tmpl, const char *relay_host, int relay_port,
                                const char *const *nodes, size_t nnodes, char *out,
                                size_t outlen, struct etrn_err *err)
{
    struct strbuf sb;
    strbuf_init(&sb, outlen ? outlen - 1 : 0);
    int rc = 0;
    for (const char *p = tmpl; *p && rc == 0;) {
        if (*p != '{') {
            rc = strbuf_append(&sb, p++, 1);
            continue;
        }
        const char *close = strchr(p, '}');
        if (close == NULL) {
            rc = strbuf_append(&sb, p++, 1);
            continue;
        }
        size_t n = (size_t)(close - p - 1);
        const char *name = p + 1;
#define IS(s) (n == strlen(s) && strncmp(name, s, n) == 0)
        if (IS("relay"))
            rc = strbuf_appendf(&sb, "%s:%d", relay_host, relay_port);
        else if (IS("relay_host"))
            rc = strbuf_append_str(&sb, relay_host);
        else if (IS("relay_port"))
            rc = strbuf_appendf(&sb, "%d", relay_port);
        else if (IS("node"))
            rc = strbuf_append_str(&sb, nnodes ? nodes[0] : "");
        else if (IS("nodes") || IS("nodes_comma"))
            for (size_t i = 0; i < nnodes && rc == 0; i++)
                rc = strbuf_appendf(&sb, "%s%s", i ? (IS("nodes") ? " " : ",") : "", nodes[i]);
        else {
            strbuf_free(&sb);
            return err_set(err, "client command: unknown placeholder '{%.*s}' ({relay}, "
                                "{relay_host}, {relay_port}, {node}, {nodes}, {nodes_comma})",
                           (int)n, name);
        }
#undef IS
        p = close + 1;
    }
    if (rc < 0) {
        strbuf_free(&sb);
        return err_set(err, "client command longer than %zu octets", outlen);
    }
    str_copy(out, outlen, sb.data);
    strbuf_free(&sb);
    return 0;
}

/* ---- what an ETRN command must look like ---------------------------------------------- */

static int domain_valid(const char *d, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0))
            return 0;
        if (++label > 63)
            return 0;
    }
    /* A trailing dot is not allowed in SMTP domains (RFC 5321 §4.1.2). */
    return label > 0 && d[len - 1] != '-';
}

int client_check_etrn_valid(const char *line, size_t len, unsigned flags, char *why,
                            size_t whylen)
{
    if (flags & SMTP_LINE_BARE_LF)
        return str_format(why, whylen, "ended by a bare LF, not CRLF"), 0;
    if (flags & (SMTP_LINE_HAS_NUL | SMTP_LINE_BARE_CR))
        return str_format(why, whylen, "holds a NUL or a bare CR"), 0;
    if (len < 4 || str_ncasecmp(line, "ETRN", 4) != 0)
        return str_format(why, whylen, "not an ETRN command"), 0;
    if (len == 4)
        return str_format(why, whylen, "no node (ETRN needs one argument)"), 0;
    if (line[4] != ' ')
        return str_format(why, whylen, "no single space after ETRN"), 0;
    const char *arg = line + 5;
    size_t alen = len - 5;
    if (alen == 0 || arg[0] == ' ')
        return str_format(why, whylen, "more than one space before the node"), 0;
    if (memchr(arg, ' ', alen) || memchr(arg, '\t', alen))
        return str_format(why, whylen, "more than one argument (or trailing blanks)"), 0;
    if (arg[0] == '#') {
        for (size_t i = 1; i < alen; i++)
            if ((unsigned char)arg[i] <= ' ' || (unsigned char)arg[i] >= 127)
                return str_format(why, whylen, "queue name holds a control character"), 0;
        if (alen == 1)
            return str_format(why, whylen, "'#' without a queue name"), 0;
        return 1;
    }
    if (arg[0] == '@') {
        arg++;
        alen--;
    }
    if (!domain_valid(arg, alen))
        return str_format(why, whylen, "'%.*s' is not a domain name", (int)(alen > 100 ? 100 : alen),
                          arg), 0;
    return 1;
}

/* ---- judging ------------------------------------------------------------------------------ */

static int cmd_is(const struct client_relay_command *c, const char *verb)
{
    size_t vl = strlen(verb);
    return c->len >= vl && str_ncasecmp(c->line, verb, vl) == 0 &&
           (c->len == vl || c->line[vl] == ' ');
}

static void judge(struct scenario_result *res, const struct scenario *sc,
                  const struct scenario_step *st, int ok, const char *observed)
{
    char what[300];
    struct strbuf w;
    strbuf_init(&w, sizeof what - 1);
    for (int i = 0; i < st->argc && !(i > 1 && (strcmp(st->argv[i], "else") == 0 ||
                                                  strcmp(st->argv[i], "record") == 0));
         i++)
        strbuf_appendf(&w, "%s%s", i ? " " : "", st->argv[i]);
    str_copy(what, sizeof what, w.data);
    strbuf_free(&w);
    enum scenario_level lv = st->check.level ? st->check.level : sc->level;
    char *const *reqs = st->check.nreqs ? st->check.reqs : sc->cites;
    size_t nreqs = st->check.nreqs ? st->check.nreqs : sc->ncites;
    scenario_result_add_check(res, ok ? VERDICT_PASS : verdict_for_level(lv), reqs, nreqs,
                              st->file, st->line, what, observed);
    if (st->check.record) {
        char *const *rr = st->check.nrecord_reqs ? st->check.record_reqs : reqs;
        size_t nr = st->check.nrecord_reqs ? st->check.nrecord_reqs : nreqs;
        scenario_result_add_check(res, VERDICT_INFO, rr, nr, st->file, st->line, what,
                                  observed);
    }
}

/* Appends the ETRN lines the client sent, for details. */
static void list_etrns(const struct client_relay_log *log, struct strbuf *sb)
{
    size_t n = 0;
    for (size_t i = 0; i < log->ncmds; i++)
        if (cmd_is(&log->cmds[i], "ETRN")) {
            strbuf_appendf(sb, "%s'%s' (c%u)", n++ ? ", " : "", log->cmds[i].line,
                           log->cmds[i].conn);
        }
    if (n == 0)
        strbuf_append_str(sb, "no ETRN at all");
}

static void evaluate_step(const struct scenario *sc, const struct scenario_step *st,
                          const struct client_relay_log *log,
                          const struct client_check_facts *facts, scenario_var_lookup lookup,
                          void *lookup_arg, struct scenario_result *res)
{
    char **a = st->argv + 1;
    const char *k = a[0];
    struct strbuf d;
    strbuf_init(&d, 2000);
    int ok = 1;

    if (strcmp(k, "connects") == 0) {
        ok = log->nconns > 0;
        strbuf_appendf(&d, "%zu connection(s) to the relay", log->nconns);
    } else if (strcmp(k, "uses") == 0 && str_casecmp(a[1], "EHLO") == 0) {
        size_t checked = 0;
        for (size_t c = 1; c <= log->nconns; c++) {
            for (size_t i = 0; i < log->ncmds; i++) {
                if (log->cmds[i].conn != c)
                    continue;
                checked++;
                if (!cmd_is(&log->cmds[i], "EHLO")) {
                    ok = 0;
                    strbuf_appendf(&d, "c%zu opened with '%s'; ", c, log->cmds[i].line);
                }
                break;
            }
        }
        if (ok)
            strbuf_appendf(&d, "EHLO first in %zu of %zu connection(s)", checked, log->nconns);
    } else if (strcmp(k, "uses") == 0) {   /* STARTTLS */
        size_t etrn = 0, clear = 0;
        for (size_t i = 0; i < log->ncmds; i++)
            if (cmd_is(&log->cmds[i], "ETRN")) {
                etrn++;
                clear += !log->cmds[i].in_tls;
            }
        ok = etrn > 0 && clear == 0;
        strbuf_appendf(&d, "%zu ETRN sent, %zu of them outside TLS", etrn, clear);
    } else if (strcmp(k, "sends") == 0 && strcmp(a[1], "ETRN") == 0 && st->argc > 4 &&
               strcmp(a[2], "only") == 0) {
        size_t n = 0;
        for (size_t i = 0; i < log->ncmds; i++) {
            const struct client_relay_command *c = &log->cmds[i];
            if (!cmd_is(c, "ETRN"))
                continue;
            n++;
            if (!c->etrn_advertised) {
                ok = 0;
                strbuf_appendf(&d, "c%u: '%s' sent though the session's EHLO reply did not "
                                   "list ETRN; ", c->conn, c->line);
            }
        }
        if (ok)
            strbuf_appendf(&d, "%zu ETRN command(s), each after an EHLO reply listing ETRN", n);
    } else if (strcmp(k, "sends") == 0 && strcmp(a[1], "ETRN") == 0) {
        struct strbuf want;
        struct etrn_err err;
        strbuf_init(&want, 1024);
        if (scenario_expand(a[2], lookup, lookup_arg, &want, &err) < 0) {
            ok = 0;
            strbuf_appendf(&d, "%s", err.msg);
        } else {
            ok = 0;
            for (size_t i = 0; i < log->ncmds; i++) {
                const struct client_relay_command *c = &log->cmds[i];
                if (cmd_is(c, "ETRN") && c->len > 5 && str_casecmp(c->line + 5, want.data) == 0)
                    ok = 1;
            }
            strbuf_appendf(&d, "wanted 'ETRN %s'; sent: ", want.data);
            list_etrns(log, &d);
        }
        strbuf_free(&want);
    } else if (strcmp(k, "sends") == 0 && strcmp(a[1], "no") == 0) {
        for (size_t i = 0; i < log->ncmds; i++)
            if (cmd_is(&log->cmds[i], "ETRN"))
                ok = 0;
        strbuf_append_str(&d, "sent: ");
        list_etrns(log, &d);
    } else if (strcmp(k, "sends") == 0 && strcmp(a[1], "valid") == 0) {
        size_t n = 0;
        for (size_t i = 0; i < log->ncmds; i++) {
            const struct client_relay_command *c = &log->cmds[i];
            char why[200];
            if (c->too_long) {
                ok = 0;
                strbuf_appendf(&d, "c%u: a command line over 512 octets; ", c->conn);
                continue;
            }
            if (!cmd_is(c, "ETRN") && !(c->len >= 4 && str_ncasecmp(c->line, "ETRN", 4) == 0))
                continue;
            n++;
            if (!client_check_etrn_valid(c->line, c->len, c->flags, why, sizeof why)) {
                ok = 0;
                strbuf_appendf(&d, "'%s': %s; ", c->line, why);
            }
        }
        if (ok)
            strbuf_appendf(&d, "%zu ETRN command(s), all well-formed%s", n,
                           n ? "" : " (none sent: nothing to judge)");
    } else if (strcmp(k, "sends") == 0) {   /* at most N ETRN per-session */
        unsigned most = 0;
        for (size_t c = 0; c < log->nconns; c++)
            if (log->conns[c].netrn > most)
                most = log->conns[c].netrn;
        ok = most <= st->count;
        strbuf_appendf(&d, "at most %u ETRN in one session; sent: ", most);
        list_etrns(log, &d);
    } else if (strcmp(k, "quits") == 0) {
        size_t own = 0;
        for (size_t c = 0; c < log->nconns; c++) {
            const struct client_relay_conn *lc = &log->conns[c];
            if (lc->relay_closed && !lc->quit)
                continue;   /* the relay ended it (421, close rule): no QUIT owed */
            own++;
            if (!lc->quit) {
                ok = 0;
                strbuf_appendf(&d, "c%zu ended without QUIT%s; ", c + 1,
                               lc->closed_ms < 0 ? " (still open at the end)" : "");
            }
        }
        if (ok)
            strbuf_appendf(&d, "QUIT in %zu of %zu connection(s) the client ended", own, own);
    } else if (strcmp(k, "waits") == 0) {
        for (size_t i = 0; i < log->ncmds; i++) {
            const struct client_relay_command *c = &log->cmds[i];
            if (!c->early)
                continue;
            /* RFC 2920: RSET, MAIL and RCPT may be followed by more of a group. */
            const struct client_relay_command *prev = NULL;
            for (size_t j = i; j-- > 0;)
                if (log->cmds[j].conn == c->conn) {
                    prev = &log->cmds[j];
                    break;
                }
            if (prev && (cmd_is(prev, "RSET") || cmd_is(prev, "MAIL") || cmd_is(prev, "RCPT")))
                continue;
            ok = 0;
            strbuf_appendf(&d, "c%u: '%s' sent before the reply to '%s' was complete; ",
                           c->conn, c->line, prev ? prev->line : "(greeting)");
        }
        if (ok)
            strbuf_appendf(&d, "every one of %zu command(s) waited for the previous reply",
                           log->ncmds);
    } else if (strcmp(k, "retries") == 0 || strcmp(k, "no") == 0 || strcmp(k, "backs") == 0) {
        int64_t first_gap = -1, min_gap = -1;
        for (size_t c = 1; c < log->nconns; c++) {
            int64_t end = log->conns[c - 1].closed_ms >= 0 ? log->conns[c - 1].closed_ms
                                                           : log->conns[c - 1].opened_ms;
            int64_t gap = log->conns[c].opened_ms - end;
            if (first_gap < 0)
                first_gap = gap;
            if (min_gap < 0 || gap < min_gap)
                min_gap = gap;
        }
        int64_t bound = (int64_t)st->duration_ms;
        if (log->nconns > 1)
            strbuf_appendf(&d, "%zu connections; first retry %lld ms after the first session "
                               "ended, shortest gap %lld ms",
                           log->nconns, (long long)first_gap, (long long)min_gap);
        else
            strbuf_appendf(&d, "%zu connection(s), no retry (client %s)", log->nconns,
                           facts->exited ? "exited" : "was stopped at the bound");
        if (strcmp(k, "retries") == 0)
            ok = log->nconns > 1 && first_gap <= bound;
        else if (strcmp(k, "no") == 0)
            ok = log->nconns <= 1 || first_gap > bound;
        else
            ok = log->nconns <= 1 || min_gap >= bound;
    } else if (strcmp(k, "exits") == 0) {
        if (!facts->exited) {
            ok = 0;
            strbuf_append_str(&d, "the client did not exit by itself before the bound");
        } else {
            ok = strcmp(a[1], "zero") == 0 ? facts->exit_status == 0 : facts->exit_status != 0;
            strbuf_appendf(&d, "exit status %d", facts->exit_status);
        }
    } else if (strcmp(k, "reports") == 0) {
        struct strbuf pat;
        struct etrn_err err;
        strbuf_init(&pat, 4096);
        strbuf_append_str(&pat, "*");
        if (scenario_expand(a[1], lookup, lookup_arg, &pat, &err) < 0) {
            ok = 0;
            strbuf_append_str(&d, err.msg);
        } else {
            strbuf_append_str(&pat, "*");
            ok = scenario_glob_match(pat.data, facts->output ? facts->output : "");
            strbuf_appendf(&d, "output %s '%s'", ok ? "matches" : "does not match", pat.data);
        }
        strbuf_free(&pat);
    } else {
        ok = 0;
        strbuf_appendf(&d, "unknown check '%s'", k);
    }
    judge(res, sc, st, ok, d.data);
    strbuf_free(&d);
}

void client_check_evaluate(const struct scenario *sc, const struct client_relay_log *log,
                           const struct client_check_facts *facts, scenario_var_lookup lookup,
                           void *lookup_arg, struct scenario_result *res)
{
    for (size_t i = 0; i < sc->nsteps; i++)
        if (sc->steps[i].kind == SCENARIO_STEP_EXPECT_CLIENT && sc->steps[i].argc >= 2)
            evaluate_step(sc, &sc->steps[i], log, facts, lookup, lookup_arg, res);
    if (log->dropped_cmds || log->refused_conns)
        scenario_result_log(res, "note: %zu command(s) and %zu connection(s) beyond the "
                                 "relay's limits were not recorded",
                            log->dropped_cmds, log->refused_conns);
}

/* ---- running the client ---------------------------------------------------------------------- */

struct cc_run {
    struct event_base *base;
    struct scenario_result *res;
    struct client_relay *relay;
    pid_t pid;
    int out_fd;
    struct strbuf output;
    int output_cut;
    int exited, status, killed;
    int64_t ended_ms;
    struct event *reap, *deadline, *grace, *out_ev;
};

static void cc_note(void *arg, const char *line)
{
    scenario_result_log(arg, "%s", line);
}

static void cc_timer(struct event *ev, unsigned long long ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000 };
    evtimer_add(ev, &tv);
}

static void cc_read_output(struct cc_run *r)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(r->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 && r->out_ev)
                event_del(r->out_ev);
            return;
        }
        if (!r->output_cut && strbuf_append(&r->output, buf, (size_t)n) < 0)
            r->output_cut = 1;
    }
}

static void cc_output_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_read_output(arg);
}

static void cc_grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_run *r = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(r->base);
}

static void cc_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_run *r = arg;
    (void)fd;
    (void)what;
    int st;
    pid_t p = waitpid(r->pid, &st, WNOHANG);
    if (p == r->pid) {
        r->exited = 1;
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        r->ended_ms = client_relay_now_ms(r->relay);
        scenario_result_log(r->res, "client exited with status %d", r->status);
        evtimer_del(r->deadline);
        cc_timer(r->grace, GRACE_MS);
        return;
    }
    cc_timer(r->reap, REAP_POLL_MS);
}

static void cc_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_run *r = arg;
    (void)fd;
    (void)what;
    r->killed = 1;
    r->ended_ms = client_relay_now_ms(r->relay);
    scenario_result_log(r->res, "client still running at the bound: stopped");
    event_base_loopbreak(r->base);
}

/* Waits (bounded) until no process of group pg is left; reaps the leader on the way. */
static int cc_group_gone(struct cc_run *r, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        if (!r->exited) {
            int st;
            if (waitpid(r->pid, &st, WNOHANG) == r->pid)
                r->exited = -1;   /* reaped here: it did not exit by itself */
        }
        if (kill(-r->pid, 0) < 0 && errno == ESRCH)
            return 1;
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Ends the client's whole process group and reaps it: TERM, up to a second for a clean
 * exit (a client may hold a lock it removes on TERM), then KILL. Also ends what a client
 * that exited left behind in its group. */
static void cc_stop_client(struct cc_run *r)
{
    int exited_by_itself = r->exited == 1;
    if (kill(-r->pid, 0) == 0) {
        kill(-r->pid, SIGTERM);
        if (!cc_group_gone(r, 50)) {
            kill(-r->pid, SIGKILL);
            cc_group_gone(r, 50);
        }
    }
    if (!r->exited)
        while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    r->exited = exited_by_itself;
}

static int cc_spawn(struct cc_run *r, const char *command, struct etrn_err *err)
{
    int fds[2];
    if (pipe(fds) < 0)
        return err_set_errno(err, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return err_set_errno(err, "fork");
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);   /* both sides, so kill(-pid) works whoever runs first */
    close(fds[1]);
    int fl = fcntl(fds[0], F_GETFL);
    if (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) < 0) {
        close(fds[0]);
        r->pid = pid;
        cc_stop_client(r);
        return err_set_errno(err, "fcntl");
    }
    r->pid = pid;
    r->out_fd = fds[0];
    return 0;
}

static const char *cc_skip_reason(const struct client_check_options *o,
                                  const struct scenario *sc, char *buf, size_t n)
{
    for (size_t i = 0; i < sc->nrequires; i++) {
        const char *cap = sc->requires[i];
        if (strcmp(cap, "etrn-client") == 0)
            continue;
        if (strcmp(cap, "starttls") == 0) {
            if (o->tls_command == NULL) {
                str_format(buf, n, "requires starttls (no --client-cmd-tls given)");
                return buf;
            }
            continue;
        }
        int found = 0;
        if (o->caps) {
            const char *p = o->caps;
            size_t cl = strlen(cap);
            while (*p) {
                size_t l = strcspn(p, ", ");
                if (l == cl && strncmp(p, cap, l) == 0)
                    found = 1;
                p += l;
                p += strspn(p, ", ");
            }
        }
        if (!found) {
            str_format(buf, n, "requires %s", cap);
            return buf;
        }
    }
    return NULL;
}

int client_check_run(const struct client_check_options *o, const struct scenario *sc,
                     unsigned seq, struct scenario_result *res, struct etrn_err *err)
{
    char why[200];
    if (cc_skip_reason(o, sc, why, sizeof why)) {
        scenario_result_set_final(res, VERDICT_SKIP, why);
        return 0;
    }
    const struct scenario_step *relay_step = NULL;
    for (size_t i = 0; i < sc->nsteps; i++)
        if (sc->steps[i].kind == SCENARIO_STEP_RELAY)
            relay_step = &sc->steps[i];
    if (relay_step == NULL) {
        scenario_result_set_final(res, VERDICT_SKIP, "not a client scenario (no relay block)");
        return 0;
    }
    int needs_tls = 0;
    for (size_t i = 0; i < sc->nrequires; i++)
        if (strcmp(sc->requires[i], "starttls") == 0)
            needs_tls = 1;

    struct cc_vars vars;
    memset(&vars, 0, sizeof vars);
    char run_id[16];
    if (o->run_id)
        str_copy(run_id, sizeof run_id, o->run_id);
    else
        str_format(run_id, sizeof run_id, "%04x", (unsigned)(time(NULL) ^ getpid()) & 0xffffu);
    str_copy(vars.suffix, sizeof vars.suffix, o->node_suffix ? o->node_suffix : "etrn.test");
    str_copy(vars.host, sizeof vars.host, "127.0.0.1");

    struct cc_run r;
    memset(&r, 0, sizeof r);
    r.res = res;
    r.out_fd = -1;
    strbuf_init(&r.output, CLIENT_CHECK_OUTPUT_MAX);
    int rc = -1;
    r.base = event_base_new();
    if (r.base == NULL) {
        err_set(err, "cannot create an event loop");
        goto out;
    }
    if (client_relay_new(r.base, relay_step, cc_lookup, &vars, cc_note, res, &r.relay, err) < 0)
        goto out;
    vars.nnodes = client_relay_nodes(r.relay);
    if (vars.nnodes > CLIENT_CHECK_NODES_MAX)
        vars.nnodes = CLIENT_CHECK_NODES_MAX;
    const char *nodes[CLIENT_CHECK_NODES_MAX];
    for (unsigned i = 0; i < vars.nnodes; i++) {
        if (i == 0)
            str_format(vars.nodes[i], sizeof vars.nodes[i], "c%u-%s.%s", seq, run_id,
                       vars.suffix);
        else
            str_format(vars.nodes[i], sizeof vars.nodes[i], "c%u-%s-%u.%s", seq, run_id, i + 1,
                       vars.suffix);
        nodes[i] = vars.nodes[i];
    }
    for (size_t i = 0; vars.nodes[0][i] && i + 1 < sizeof vars.upper; i++)
        vars.upper[i] = (char)(vars.nodes[0][i] >= 'a' && vars.nodes[0][i] <= 'z'
                                   ? vars.nodes[0][i] - 32 : vars.nodes[0][i]);
    str_format(vars.port, sizeof vars.port, "%d", client_relay_port(r.relay));
    str_format(vars.relay, sizeof vars.relay, "127.0.0.1:%d", client_relay_port(r.relay));
    free(res->node);
    res->node = strdup(vars.nodes[0]);

    char command[CLIENT_CHECK_COMMAND_MAX];
    if (client_check_expand_command(needs_tls ? o->tls_command : o->command, vars.host,
                                    client_relay_port(r.relay), nodes, vars.nnodes, command,
                                    sizeof command, err) < 0)
        goto out;
    scenario_result_log(res, "relay 127.0.0.1:%d; client: %s", client_relay_port(r.relay),
                        command);

    r.reap = evtimer_new(r.base, cc_reap_cb, &r);
    r.deadline = evtimer_new(r.base, cc_deadline_cb, &r);
    r.grace = evtimer_new(r.base, cc_grace_cb, &r);
    if (!r.reap || !r.deadline || !r.grace) {
        err_set(err, "out of memory");
        goto out;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (cc_spawn(&r, command, err) < 0)
        goto out;
    r.out_ev = event_new(r.base, r.out_fd, EV_READ | EV_PERSIST, cc_output_cb, &r);
    if (r.out_ev == NULL || event_add(r.out_ev, NULL) < 0) {
        cc_stop_client(&r);
        err_set(err, "cannot watch the client's output");
        goto out;
    }
    cc_timer(r.reap, REAP_POLL_MS);
    cc_timer(r.deadline, sc->timeout_ms ? sc->timeout_ms
                                        : o->timeout_ms ? o->timeout_ms : CLIENT_CHECK_TIMEOUT_MS);
    event_base_dispatch(r.base);
    cc_stop_client(&r);
    cc_read_output(&r);
    client_relay_stop(r.relay);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->duration_ms = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;

    /* The client's own words, for the transcript and `reports` checks. */
    const char *p = r.output.data;
    while (*p) {
        size_t l = strcspn(p, "\n");
        scenario_result_log(res, "client| %.*s", (int)(l > 400 ? 400 : l), p);
        p += l;
        if (*p)
            p++;
    }
    if (r.output_cut)
        scenario_result_log(res, "client| (output cut at %d octets)", CLIENT_CHECK_OUTPUT_MAX);
    struct client_check_facts facts = { r.exited, r.exited ? r.status : -1, r.output.data,
                                        r.ended_ms };
    client_check_evaluate(sc, client_relay_log(r.relay), &facts, cc_lookup, &vars, res);
    scenario_result_finish(res);
    rc = 0;
out:
    if (rc < 0) {
        scenario_result_set_final(res, VERDICT_ERROR, err->msg);
        scenario_result_finish(res);
    }
    if (r.out_ev)
        event_free(r.out_ev);
    if (r.out_fd >= 0)
        close(r.out_fd);
    if (r.reap)
        event_free(r.reap);
    if (r.deadline)
        event_free(r.deadline);
    if (r.grace)
        event_free(r.grace);
    client_relay_free(r.relay);
    if (r.base)
        event_base_free(r.base);
    strbuf_free(&r.output);
    return rc;
}
