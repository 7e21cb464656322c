/* replay.c — replays the client side of captured SMTP sessions against a server and finds
 * the first reply whose code differs from the captured one (etrncheck replay).
 *
 *   replay_result_init(&res);
 *   replay_run(&dialogues, &cap, &(struct replay_options){.target = "127.0.0.1:2525"}, &res, &err);
 *   res.differs ? res.what : "same replies";  replay_result_free(&res);
 *
 * Guarantees: blocking sockets driven by poll() with a deadline per step, so nothing waits
 * unbounded; at most REPLAY_INPUT_MAX octets of one reply are held; SIGPIPE is the caller's
 * business (etrncheck ignores it) and MSG_NOSIGNAL is used anyway. Never prints. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "netaddr.h"
#include "replay.h"
#include "scenario.h"

struct replay_conn {
    int fd;
    unsigned char buf[REPLAY_INPUT_MAX];
    size_t len;
    int closed;
};

void replay_result_init(struct replay_result *r)
{
    memset(r, 0, sizeof *r);
    strbuf_init(&r->transcript, REPLAY_TRANSCRIPT_MAX);
}

void replay_result_free(struct replay_result *r)
{
    strbuf_free(&r->transcript);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Transcript line with control characters shown as escapes. */
static void tlog(struct replay_result *r, const char *dir, const void *p, size_t n)
{
    const unsigned char *s = p;
    strbuf_append_str(&r->transcript, dir);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n' && i + 2 < n) {
            strbuf_append_str(&r->transcript, "\n");
            strbuf_append_str(&r->transcript, dir);
            i++;
            continue;
        }
        if (s[i] == '\r' && i + 2 == n && s[i + 1] == '\n')
            break;
        if (s[i] < 0x20 || s[i] >= 0x7f)
            strbuf_appendf(&r->transcript, "\\x%02x", s[i]);
        else
            strbuf_append(&r->transcript, &s[i], 1);
    }
    strbuf_append_str(&r->transcript, "\n");
}

static int conn_open(struct replay_conn *c, const struct netaddr *target, const struct netaddr *src,
                     unsigned long long timeout_ms, struct etrn_err *err)
{
    char t[NETADDR_TEXT_MAX];
    netaddr_format((const struct sockaddr *)&target->ss, t, sizeof t);
    c->len = 0;
    c->closed = 0;
    c->fd = socket(target->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return err_set_errno(err, "replay: socket");
    if (src && bind(c->fd, (const struct sockaddr *)&src->ss, src->len) < 0) {
        err_set_errno(err, "replay: cannot bind the source address");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    if (connect(c->fd, (const struct sockaddr *)&target->ss, target->len) < 0 &&
        errno != EINPROGRESS) {
        err_set_errno(err, "replay: cannot connect to %s", t);
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
    int pr;
    do
        pr = poll(&pfd, 1, (int)timeout_ms);
    while (pr < 0 && errno == EINTR);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (pr <= 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
        if (pr == 0)
            err_set(err, "replay: cannot connect to %s: no answer within %llu ms", t, timeout_ms);
        else {
            errno = soerr ? soerr : errno;
            err_set_errno(err, "replay: cannot connect to %s", t);
        }
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(struct replay_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int conn_send(struct replay_conn *c, const void *p, size_t n, unsigned long long timeout_ms)
{
    const char *s = p;
    long long deadline = now_ms() + (long long)timeout_ms;
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return -1;
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Reads one whole reply (all its lines). 1: a reply (code, or -1 if not "DDD"), 0: closed,
 * -2: no reply in time, -1: error or too long. *rlen is the reply's length in c->buf. */
static int conn_read_reply(struct replay_conn *c, unsigned long long timeout_ms, int *code,
                           size_t *rlen)
{
    long long deadline = now_ms() + (long long)timeout_ms;
    for (;;) {
        /* a complete reply in the buffer? */
        size_t pos = 0;
        while (pos < c->len) {
            unsigned char *nl = memchr(c->buf + pos, '\n', c->len - pos);
            if (nl == NULL)
                break;
            size_t ll = (size_t)(nl - (c->buf + pos));
            const unsigned char *l = c->buf + pos;
            pos += ll + 1;
            int is_code = ll >= 3 && l[0] >= '0' && l[0] <= '9' && l[1] >= '0' && l[1] <= '9' &&
                          l[2] >= '0' && l[2] <= '9';
            if (is_code && ll > 3 && l[3] == '-')
                continue;
            *code = is_code ? (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0') : -1;
            *rlen = pos;
            return 1;
        }
        if (c->closed)
            return 0;
        if (c->len == sizeof c->buf)
            return -1;
        long long left = deadline - now_ms();
        if (left <= 0)
            return -2;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -1;
        if (pr == 0)
            return -2;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            return c->len ? -1 : 0;   /* reset: as closed */
        if (r == 0)
            c->closed = 1;
        c->len += (size_t)r;
    }
}

static void conn_consume(struct replay_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

struct replay_lookup {
    const struct capture_dialogues *d;
    const char *node;
    char upper[256];
};

static const char *replay_var(const char *name, void *arg)
{
    struct replay_lookup *l = arg;
    if (l->node && strcmp(name, "node") == 0)
        return l->node;
    if (l->node && strcmp(name, "NODE") == 0) {
        str_copy(l->upper, sizeof l->upper, l->node);
        for (char *c = l->upper; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        return l->upper;
    }
    return capture_dialogues_lookup(name, (void *)l->d);
}

/* The bytes to send for a command or a message: the template with the node replaced, or the
 * captured bytes as they were. */
static int wire_bytes(const struct capture_exchange *x, int body, struct replay_lookup *l,
                      struct strbuf *out, struct etrn_err *err)
{
    strbuf_reset(out);
    if (l->node == NULL) {
        if (body)
            return strbuf_append(out, x->body, x->body_len);
        if (strbuf_append_str(out, x->command) < 0)
            return -1;
        return strbuf_append_str(out, x->bare_lf ? "\n" : "\r\n");
    }
    const char *templ = body ? x->body_templ : x->command_templ;
    struct strbuf exp;
    strbuf_init(&exp, REPLAY_INPUT_MAX);
    if (scenario_expand(templ ? templ : "", replay_var, l, &exp, err) < 0) {
        strbuf_free(&exp);
        return -1;
    }
    int rc;
    if (body || x->templ_raw)
        rc = scenario_unescape(exp.data, out, err);
    else
        rc = strbuf_append(out, exp.data, exp.len) < 0 || strbuf_append_str(out, "\r\n") < 0 ? -1 : 0;
    strbuf_free(&exp);
    return rc;
}

static void describe_command(const struct capture_exchange *x, char *buf, size_t n)
{
    if (x->body)
        snprintf(buf, n, "the message after DATA (%zu octets)", x->body_len);
    else if (x->command == NULL)
        snprintf(buf, n, "the greeting");
    else {
        char safe[120];
        size_t k = 0;
        for (size_t i = 0; x->command[i] && k + 1 < sizeof safe; i++) {
            unsigned char c = (unsigned char)x->command[i];
            safe[k++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
        }
        safe[k] = '\0';
        snprintf(buf, n, "`%s`", safe);
    }
}

int replay_run(const struct capture_dialogues *d, const struct capture *cap,
               const struct replay_options *o, struct replay_result *res, struct etrn_err *err)
{
    struct netaddr target, source;
    if (o->target == NULL)
        return err_set(err, "replay: no --target HOST:PORT given");
    if (netaddr_parse(o->target, 25, &target, err) < 0)
        return err_prefix(err, "replay: --target");
    if (o->source && netaddr_parse(o->source, 0, &source, err) < 0)
        return err_prefix(err, "replay: --source");
    unsigned long long tmo = o->step_timeout_ms ? o->step_timeout_ms : 10000;
    size_t kept = 0;
    for (size_t i = 0; i < d->n; i++)
        kept += d->v[i].kept;
    if (kept == 0)
        return err_set(err, "%s: no SMTP session to replay (%zu SMTP sessions, %zu with ETRN; "
                       "--all-sessions replays sessions without ETRN)", cap->name, d->nsmtp,
                       d->netrn);
    struct replay_conn *c = malloc(sizeof *c);
    if (c == NULL)
        return err_set(err, "replay: out of memory");
    c->fd = -1;
    struct replay_lookup lk = {.d = d, .node = o->node};
    struct strbuf wire;
    strbuf_init(&wire, 2 * REPLAY_INPUT_MAX);
    int rc = 0;
    size_t sess_no = 0;
    for (size_t i = 0; i < d->n && !res->differs; i++) {
        const struct capture_session *se = &d->v[i];
        if (!se->kept)
            continue;
        sess_no++;
        char desc[200];
        capture_stream_describe(&cap->streams[se->stream], desc, sizeof desc);
        strbuf_appendf(&res->transcript, "# session %zu (captured %s)\n", sess_no, desc);
        if (conn_open(c, &target, o->source ? &source : NULL, tmo, err) < 0) {
            rc = -1;
            break;
        }
        res->sessions++;
        for (size_t k = 0; k < se->n; k++) {
            const struct capture_exchange *x = &se->v[k];
            int ok = 1;
            if (x->command) {
                if (wire_bytes(x, 0, &lk, &wire, err) < 0) {
                    rc = -1;
                    break;
                }
                tlog(res, "> ", wire.data, wire.len);
                ok = conn_send(c, wire.data, wire.len, tmo) == 0;
            }
            if (ok && x->body) {
                if (wire_bytes(x, 1, &lk, &wire, err) < 0) {
                    rc = -1;
                    break;
                }
                strbuf_appendf(&res->transcript, "> (message, %zu octets)\n", wire.len);
                ok = conn_send(c, wire.data, wire.len, tmo) == 0;
            }
            if (x->code == 0)
                continue;   /* no reply was captured: nothing to compare */
            int code = 0;
            size_t rlen = 0;
            int rr = ok ? conn_read_reply(c, tmo, &code, &rlen) : 0;
            const char *why = NULL;
            char got[300] = "";
            if (rr == 1) {
                tlog(res, "< ", c->buf, rlen);
                size_t gl = rlen < sizeof got - 1 ? rlen : sizeof got - 1;
                for (size_t g = 0; g < gl; g++)
                    got[g] = (c->buf[g] == '\r' || c->buf[g] == '\n') ? ' ' :
                             (c->buf[g] < 0x20 || c->buf[g] >= 0x7f) ? '?' : (char)c->buf[g];
                got[gl] = '\0';
                while (gl > 0 && got[gl - 1] == ' ')
                    got[--gl] = '\0';
                conn_consume(c, rlen);
            } else {
                code = 0;
                why = rr == -2 ? "no reply within the step timeout" :
                      rr == 0  ? "the server closed the connection" : "an unreadable reply";
                strbuf_appendf(&res->transcript, "! %s\n", why);
            }
            res->compared++;
            if (x->code < 0 || (rr == 1 && code == x->code))
                continue;
            if (rr == 1 && o->class_only && code / 100 == x->code / 100) {
                strbuf_appendf(&res->transcript, "! captured %d, same class\n", x->code);
                continue;
            }
            res->differs = 1;
            res->session = sess_no;
            res->step = k + 1;
            res->captured_code = x->code;
            res->code = code;
            res->same_class = code > 0 && code / 100 == x->code / 100;
            char what[200];
            describe_command(x, what, sizeof what);
            if (code == 0)
                snprintf(res->what, sizeof res->what, "session %zu (%s), step %zu, %s: captured "
                         "%d, now %s", sess_no, desc, k + 1, what, x->code, why);
            else
                snprintf(res->what, sizeof res->what, "session %zu (%s), step %zu, %s: captured "
                         "%d, now %s (%s)", sess_no, desc, k + 1, what, x->code, got,
                         res->same_class ? "same class, another code" : "another reply class");
            break;
        }
        conn_close(c);
        if (rc < 0)
            break;
    }
    conn_close(c);
    free(c);
    strbuf_free(&wire);
    return rc;
}
