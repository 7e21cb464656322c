/* main.c — etrnsim, the fault-injecting simulator run by hand: brings up a topology (DNS,
 * sinks, links) from a file, prints each delivery as it arrives, and takes setup lines
 * as commands on stdin and on a control socket while it runs.
 *
 *   etrnsim -c fixtures/topologies/backup-mx.topo --pcap run.pcap --control /tmp/sim.sock
 *   > link sink1 down          (stdin or the control socket)
 *   etrnsim --check FILE       (validate only; errors as FILE:LINE: message)
 *
 * Exit codes: 0 after `quit` or a signal, 2 for bad input (a broken file, an unknown
 * word, a port in use), always with one line on stderr naming the cause. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "dns_server.h"
#include "fileio.h"
#include "strbuf.h"
#include "world.h"

#define ETRNSIM_VERSION "0.1"
#define COMMAND_LINE_MAX 4096
#define CONTROL_CLIENTS_MAX 16
#define TOPOLOGY_FILE_MAX (4 * 1024 * 1024)

struct sim {
    struct event_base *base;
    struct sim_world *w;
    struct strbuf stdin_buf;
    struct event *stdin_ev;
    struct evconnlistener *control;
    char control_path[sizeof ((struct sockaddr_un *)0)->sun_path];
    size_t control_clients;
    struct control_client *clients;     /* open control connections, freed at exit */
    int quiet;
};

static void usage(FILE *out)
{
    fputs("usage: etrnsim -c FILE [--pcap FILE] [--journal FILE] [--control PATH]\n"
          "               [--dns ADDR:PORT] [--sink-port N] [--pool FIRST-ADDR]\n"
          "               [--watch-refused] [--log-dns] [--quiet]\n"
          "       etrnsim --check FILE\n"
          "       etrnsim --tell PATH COMMAND...   (send one command to a --control socket)\n"
          "Commands (stdin or --control): any setup line (sink, sink-behave, link, external,\n"
          "dns, dns-quirk, dns-clear, dns-zone, at), journal, nodes, help, quit.\n"
          "See etrnsim(1) and docs/SIMULATOR.md.\n",
          out);
}

/* --- lines ------------------------------------------------------------------------------- */

/* Expands $name / ${name}: a node's address, $dns (the DNS address), $port (sink port). */
static int line_expand(const struct sim_world *w, const char *in, struct strbuf *out,
                       struct etrn_err *err)
{
    for (const char *p = in; *p;) {
        if (*p != '$') {
            if (strbuf_append(out, p, 1) < 0)
                return err_set(err, "line too long");
            p++;
            continue;
        }
        p++;
        int braced = *p == '{';
        if (braced)
            p++;
        const char *start = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
               || *p == '_' || *p == '-')
            p++;
        char name[SINK_NAME_MAX];
        size_t len = (size_t)(p - start);
        if (len == 0 || len >= sizeof name)
            return err_set(err, "bad variable after '$'");
        memcpy(name, start, len);
        name[len] = '\0';
        if (braced) {
            if (*p != '}')
                return err_set(err, "missing '}' after ${%s", name);
            p++;
        }
        const char *value;
        char port[16];
        if (strcmp(name, "port") == 0) {
            str_format(port, sizeof port, "%d", sim_world_sink_port(w));
            value = port;
        } else if (strcmp(name, "dns") == 0) {
            value = sim_world_dns_addr(w);
        } else {
            value = sim_world_sink_addr(w, name);
        }
        if (value == NULL)
            return err_set(err, "unknown variable '$%s' (no node of that name)", name);
        if (strbuf_append_str(out, value) < 0)
            return err_set(err, "line too long");
    }
    return 0;
}

/* "dns-zone PATH" in a topology file names PATH relative to that file, so a topology and
 * its zones move together; dir is the file's directory ("" or NULL: leave PATH alone). */
static int zone_path_resolve(const char *dir, struct strbuf *line, struct etrn_err *err)
{
    const char *p = line->data;
    while (*p == ' ' || *p == '\t')
        p++;
    if (dir == NULL || *dir == '\0' || strncmp(p, "dns-zone", 8) != 0
        || (p[8] != ' ' && p[8] != '\t'))
        return 0;
    const char *path = p + 8;
    while (*path == ' ' || *path == '\t')
        path++;
    if (*path == '\0' || *path == '/')
        return 0;
    struct strbuf out;
    strbuf_init(&out, COMMAND_LINE_MAX);
    int r = strbuf_appendf(&out, "dns-zone %s/%s", dir, path);
    if (r == 0) {
        strbuf_reset(line);
        r = strbuf_append(line, out.data, out.len);
    }
    strbuf_free(&out);
    return r < 0 ? err_set(err, "line too long") : 0;
}

static int line_apply_in(struct sim_world *w, const char *line, const char *dir,
                         struct etrn_err *err)
{
    struct strbuf x;
    strbuf_init(&x, COMMAND_LINE_MAX);
    int r = line_expand(w, line, &x, err);
    if (r == 0)
        r = zone_path_resolve(dir, &x, err);
    if (r == 0)
        r = sim_world_apply_line(w, x.data, err);
    strbuf_free(&x);
    return r;
}

static int line_apply(struct sim_world *w, const char *line, struct etrn_err *err)
{
    return line_apply_in(w, line, NULL, err);
}

/* Applies every line of a topology file; errors become "FILE:LINE: message". */
static int file_apply(struct sim_world *w, const char *path, struct etrn_err *err)
{
    struct strbuf text;
    strbuf_init(&text, TOPOLOGY_FILE_MAX);
    if (fileio_read_file(path, &text, TOPOLOGY_FILE_MAX, err) < 0) {
        strbuf_free(&text);
        return -1;
    }
    if (memchr(text.data, '\0', text.len) != NULL) {
        strbuf_free(&text);
        return err_set(err, "%s: contains NUL bytes: not a topology file", path);
    }
    char dir[PATH_MAX] = "";
    const char *slash = strrchr(path, '/');
    if (slash != NULL && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if (dir[0] == '\0')
            str_copy(dir, sizeof dir, "/");
    }
    int lineno = 0, r = 0;
    char *p = text.data;
    while (*p && r == 0) {
        char *lf = strchr(p, '\n');
        if (lf != NULL)
            *lf = '\0';
        lineno++;
        if (strlen(p) >= COMMAND_LINE_MAX) {
            r = err_set(err, "%s:%d: line longer than %d characters", path, lineno,
                        COMMAND_LINE_MAX - 1);
            break;
        }
        if (line_apply_in(w, p, dir, err) < 0)
            r = err_prefix(err, "%s:%d", path, lineno);
        if (lf == NULL)
            break;
        p = lf + 1;
    }
    strbuf_free(&text);
    return r;
}

/* --- output ------------------------------------------------------------------------------ */

static void entry_print(const struct sink_journal_entry *e, struct strbuf *out)
{
    time_t secs = (time_t)(e->time_ms / 1000);
    struct tm tm;
    char when[32] = "?";
    if (localtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof when, "%H:%M:%S", &tm);
    strbuf_appendf(out, "%s.%03d ", when, (int)(e->time_ms % 1000));
    if (e->kind == SINK_JOURNAL_CONNECT) {
        strbuf_appendf(out, "connect  %s #%lu from %s: %s\n", e->sink, e->conn_id, e->peer,
                       e->event);
        return;
    }
    strbuf_appendf(out, "delivery %s #%lu from %s: %s", e->sink, e->conn_id, e->peer,
                   sink_delivery_status_name(e->status));
    if (e->reply_code)
        strbuf_appendf(out, " %d", e->reply_code);
    strbuf_appendf(out, " <%s> ->", e->mail_from ? e->mail_from : "");
    for (size_t i = 0; i < e->nrcpts; i++)
        strbuf_appendf(out, "%s<%s>", i ? "," : " ", e->rcpts[i]);
    strbuf_appendf(out, " size=%zu", e->size);
    if (e->message_id != NULL && *e->message_id)
        strbuf_appendf(out, " id=%s", e->message_id);
    strbuf_appendf(out, " sha256=%.12s\n", e->sha256);
}

static void journal_listener(const struct sink_journal_entry *e, void *arg)
{
    struct sim *s = arg;
    if (s->quiet)
        return;
    struct strbuf out;
    strbuf_init(&out, 8192);
    entry_print(e, &out);
    fputs(out.data, stdout);
    fflush(stdout);
    strbuf_free(&out);
}

/* --log-dns: one line per DNS query, in the same shape as the journal lines. */
static void dns_observer(void *ctx, const struct dns_query_log_entry *e)
{
    (void)ctx;
    char line[512];
    if (dns_query_log_format(e, line, sizeof line) < 0)
        return;
    char *rest = strchr(line, ' ');
    if (rest == NULL)
        return;
    *rest++ = '\0';
    printf("%s dns      %s\n", line, rest);
    fflush(stdout);
}

static void nodes_print(struct sim *s, struct strbuf *out)
{
    const char *names[256];
    size_t n = sim_world_node_names(s->w, names, 256);
    for (size_t i = 0; i < n && i < 256; i++) {
        const struct link *l = sim_world_link(s->w, names[i]);
        strbuf_appendf(out, "node %s %s:%d %s %s\n", names[i], sim_world_sink_addr(s->w, names[i]),
                       sim_world_sink_port(s->w),
                       sim_world_sink(s->w, names[i]) != NULL ? "sink" : "external",
                       link_state_name(link_get_settings(l)->state));
    }
    const char *dns = sim_world_dns_addr(s->w);
    strbuf_appendf(out, "dns %s\n", dns != NULL ? dns : "none");
}

/* Runs one command; appends what it prints to out. Returns 1 for quit. */
static int command_run(struct sim *s, const char *line, struct strbuf *out)
{
    char word[32] = "";
    sscanf(line, " %31s", word);
    if (strcmp(word, "quit") == 0 || strcmp(word, "exit") == 0) {
        strbuf_append_str(out, "ok\n");
        return 1;
    }
    if (strcmp(word, "help") == 0) {
        strbuf_append_str(out, "setup lines: sink NAME [BEHAVIOUR...] | sink-behave NAME "
                               "BEHAVIOUR... | link NAME WORD... | external NAME HOST:PORT | "
                               "dns OWNER TYPE RDATA... | dns-quirk NAME QUIRK [ARG] | dns-clear "
                               "NAME [QUIRK] | dns-zone PATH | at DURATION LINE...\n"
                               "commands: journal, nodes, help, quit\nok\n");
        return 0;
    }
    if (strcmp(word, "journal") == 0) {
        struct sink_journal *j = sim_world_journal(s->w);
        size_t n = sink_journal_count(j), deliveries = 0;
        for (size_t i = 0; i < n; i++) {
            const struct sink_journal_entry *e = sink_journal_get(j, i);
            if (e->kind == SINK_JOURNAL_DELIVERY) {
                entry_print(e, out);
                deliveries++;
            }
        }
        strbuf_appendf(out, "%zu deliveries\nok\n", deliveries);
        return 0;
    }
    if (strcmp(word, "nodes") == 0) {
        nodes_print(s, out);
        strbuf_append_str(out, "ok\n");
        return 0;
    }
    struct etrn_err err = {{0}};
    if (line_apply(s->w, line, &err) < 0)
        strbuf_appendf(out, "error: %s\n", err.msg);
    else if (word[0] != '\0' && word[0] != '#')
        strbuf_append_str(out, "ok\n");
    return 0;
}

/* --- stdin ------------------------------------------------------------------------------- */

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sim *s = arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        /* End of input: keep simulating (stop with a signal or `quit` on the socket). */
        event_del(s->stdin_ev);
        return;
    }
    if (strbuf_append(&s->stdin_buf, buf, (size_t)n) < 0) {
        fputs("error: command line too long\n", stdout);
        strbuf_reset(&s->stdin_buf);
        return;
    }
    char *lf;
    while ((lf = memchr(s->stdin_buf.data, '\n', s->stdin_buf.len)) != NULL) {
        *lf = '\0';
        struct strbuf out;
        strbuf_init(&out, 1 << 24);
        int quit = command_run(s, s->stdin_buf.data, &out);
        fputs(out.data, stdout);
        fflush(stdout);
        strbuf_free(&out);
        size_t used = (size_t)(lf - s->stdin_buf.data) + 1;
        memmove(s->stdin_buf.data, lf + 1, s->stdin_buf.len - used);
        s->stdin_buf.len -= used;
        s->stdin_buf.data[s->stdin_buf.len] = '\0';
        if (quit) {
            event_base_loopexit(s->base, NULL);
            return;
        }
    }
}

/* stdin as a file or /dev/null cannot be watched with epoll (EPERM): then etrnsim takes no
 * commands from there (a harness starting it in the background does that). */
static int stdin_pollable(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    int ok = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0;
    close(ep);
    return ok;
}

/* --- the control socket --------------------------------------------------------------------- */

struct control_client {
    struct sim *s;
    struct bufferevent *bev;
    struct control_client *prev, *next;
};

static void control_client_free(struct control_client *c)
{
    c->s->control_clients--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->s->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

static void control_read_cb(struct bufferevent *bev, void *arg)
{
    struct control_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (evbuffer_get_length(in) > COMMAND_LINE_MAX) {
                bufferevent_write(bev, "error: command line too long\n", 29);
                evbuffer_drain(in, evbuffer_get_length(in));
            }
            return;
        }
        struct strbuf out;
        strbuf_init(&out, 1 << 24);
        int quit = command_run(c->s, line, &out);
        free(line);
        if (quit) {
            /* The loop ends now, so the answer cannot wait for it: write it directly. */
            (void)fileio_write_all(bufferevent_getfd(bev), out.data, out.len);
        } else {
            bufferevent_write(bev, out.data, out.len);
        }
        strbuf_free(&out);
        if (quit) {
            event_base_loopexit(c->s->base, NULL);
            return;
        }
    }
}

static void control_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    control_client_free(arg);
}

static void control_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                              struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    struct sim *s = arg;
    if (s->control_clients >= CONTROL_CLIENTS_MAX) {
        close(fd);
        return;
    }
    struct control_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->s = s;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        free(c);
        return;
    }
    s->control_clients++;
    c->next = s->clients;
    if (s->clients != NULL)
        s->clients->prev = c;
    s->clients = c;
    bufferevent_setcb(c->bev, control_read_cb, NULL, control_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static int control_open(struct sim *s, const char *path, struct etrn_err *err)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (str_copy(sun.sun_path, sizeof sun.sun_path, path) < 0)
        return err_set(err, "--control %s: path longer than %zu characters", path,
                       sizeof sun.sun_path - 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return err_set(err, "--control %s: exists and is not a socket", path);
        /* A socket file: in use if something answers, else left over from a crash. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
            close(fd);
            return err_set(err, "--control %s: another etrnsim is listening there", path);
        }
        if (fd >= 0)
            close(fd);
        if (unlink(path) < 0)
            return err_set_errno(err, "--control %s: cannot remove the old socket", path);
    }
    s->control = evconnlistener_new_bind(s->base, control_accept_cb, s,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                         (struct sockaddr *)&sun, sizeof sun);
    if (s->control == NULL)
        return err_set_errno(err, "--control %s", path);
    str_copy(s->control_path, sizeof s->control_path, path);
    return 0;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static void at_error(const char *msg, void *arg)
{
    (void)arg;
    printf("error: at: %s\n", msg);
    fflush(stdout);
}

/* --- main --------------------------------------------------------------------------------- */

/* etrnsim --tell PATH WORDS...: one command to a running etrnsim, its answer to stdout.
 * Exit 0 for "ok", 1 for "error: ...", 2 if the socket cannot be reached. */
static int tell(const char *path, char **words, int n)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (str_copy(sun.sun_path, sizeof sun.sun_path, path) < 0) {
        fprintf(stderr, "etrnsim: --tell %s: path too long\n", path);
        return 2;
    }
    struct strbuf line;
    strbuf_init(&line, COMMAND_LINE_MAX);
    for (int i = 0; i < n; i++)
        if ((i > 0 && strbuf_append(&line, " ", 1) < 0) || strbuf_append_str(&line, words[i]) < 0) {
            fprintf(stderr, "etrnsim: --tell: command too long\n");
            strbuf_free(&line);
            return 2;
        }
    strbuf_append(&line, "\n", 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        fprintf(stderr, "etrnsim: --tell %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        strbuf_free(&line);
        return 2;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc = 2;
    if (fileio_write_all(fd, line.data, line.len) == 0) {
        struct strbuf got;
        strbuf_init(&got, 1 << 24);
        char buf[4096];
        for (;;) {
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0 || strbuf_append(&got, buf, (size_t)r) < 0)
                break;
            /* The answer ends with a line "ok" or "error: ...". */
            if (got.len > 0 && got.data[got.len - 1] == '\n') {
                char *last = got.data + got.len - 1;
                while (last > got.data && last[-1] != '\n')
                    last--;
                if (strncmp(last, "ok\n", 3) == 0) {
                    rc = 0;
                    break;
                }
                if (strncmp(last, "error: ", 7) == 0) {
                    rc = 1;
                    break;
                }
            }
        }
        fputs(got.data, stdout);
        if (rc == 2)
            fprintf(stderr, "etrnsim: --tell %s: no answer\n", path);
        strbuf_free(&got);
    }
    close(fd);
    strbuf_free(&line);
    return rc;
}

static int check_file(const char *path)
{
    /* Validation runs the real setup code on a private world with throwaway ports, so
     * what --check accepts is exactly what -c accepts (except ports in use). */
    struct event_base *base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "etrnsim: cannot create an event loop\n");
        return 2;
    }
    struct sim_world_options o;
    sim_world_options_default(&o);
    o.dns_listen = "127.0.0.1:0";
    o.sink_port = 0;
    struct etrn_err err = {{0}};
    struct sim_world *w;
    int rc = 0;
    /* Port 0 is not a valid sink port for a real run; check mode uses a free one. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000002);
    socklen_t slen = sizeof sin;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0
        && getsockname(fd, (struct sockaddr *)&sin, &slen) == 0)
        o.sink_port = ntohs(sin.sin_port);
    if (fd >= 0)
        close(fd);
    if (sim_world_new(&w, base, &o, &err) < 0) {
        fprintf(stderr, "etrnsim: %s\n", err.msg);
        event_base_free(base);
        return 2;
    }
    if (file_apply(w, path, &err) < 0) {
        fprintf(stderr, "etrnsim: %s\n", err.msg);
        rc = 2;
    } else {
        printf("%s: ok\n", path);
    }
    sim_world_free(w);
    event_base_free(base);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *check = NULL, *pcap = NULL, *journal = NULL, *control = NULL;
    const char *dns = "127.0.0.1:5300", *pool = "127.0.0.2";
    int sink_port = 2526, watch = 0, quiet = 0, log_dns = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("etrnsim %s\n", ETRNSIM_VERSION);
            return 0;
        } else if (strcmp(a, "--tell") == 0) {
            if (i + 2 >= argc) {
                fprintf(stderr, "etrnsim: --tell PATH COMMAND...: missing path or command\n");
                return 2;
            }
            return tell(argv[i + 1], argv + i + 2, argc - i - 2);
        } else if (strcmp(a, "--watch-refused") == 0) {
            watch = 1;
            takes = 0;
        } else if (strcmp(a, "--log-dns") == 0) {
            log_dns = 1;
            takes = 0;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = 1;
            takes = 0;
        } else if (v == NULL) {
            fprintf(stderr, "etrnsim: %s: unknown option or missing value (try --help)\n", a);
            return 2;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--check") == 0) {
            check = v;
        } else if (strcmp(a, "--pcap") == 0) {
            pcap = v;
        } else if (strcmp(a, "--journal") == 0) {
            journal = v;
        } else if (strcmp(a, "--control") == 0) {
            control = v;
        } else if (strcmp(a, "--dns") == 0) {
            dns = strcmp(v, "none") == 0 ? NULL : v;
        } else if (strcmp(a, "--pool") == 0) {
            pool = v;
        } else if (strcmp(a, "--sink-port") == 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end != '\0' || p < 1 || p > 65535) {
                fprintf(stderr, "etrnsim: --sink-port '%s' is not a port\n", v);
                return 2;
            }
            sink_port = (int)p;
        } else {
            fprintf(stderr, "etrnsim: %s: unknown option (try --help)\n", a);
            return 2;
        }
        i += takes;
    }
    if (check != NULL)
        return check_file(check);
    if (config == NULL) {
        fprintf(stderr, "etrnsim: no topology given (etrnsim -c FILE; try --help)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    struct sim s;
    memset(&s, 0, sizeof s);
    s.quiet = quiet;
    strbuf_init(&s.stdin_buf, COMMAND_LINE_MAX);
    s.base = event_base_new();
    if (s.base == NULL) {
        fprintf(stderr, "etrnsim: cannot create an event loop\n");
        return 2;
    }
    struct sim_world_options o;
    sim_world_options_default(&o);
    o.dns_listen = dns;
    o.sink_port = sink_port;
    o.sink_addr_first = pool;
    o.pcap_path = pcap;
    o.journal_path = journal;
    o.watch_refused = watch;
    struct etrn_err err = {{0}};
    int rc = 0;
    if (sim_world_new(&s.w, s.base, &o, &err) < 0) {
        fprintf(stderr, "etrnsim: %s\n", err.msg);
        event_base_free(s.base);
        return 2;
    }
    sink_journal_set_listener(sim_world_journal(s.w), journal_listener, &s);
    sim_world_set_error_hook(s.w, at_error, &s);
    if (log_dns && sim_world_dns(s.w) != NULL)
        dns_server_set_observer(sim_world_dns(s.w), dns_observer, &s);
    if (file_apply(s.w, config, &err) < 0
        || (control != NULL && control_open(&s, control, &err) < 0)) {
        fprintf(stderr, "etrnsim: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    struct event *sigint = evsignal_new(s.base, SIGINT, signal_cb, s.base);
    struct event *sigterm = evsignal_new(s.base, SIGTERM, signal_cb, s.base);
    if (sigint != NULL)
        event_add(sigint, NULL);
    if (sigterm != NULL)
        event_add(sigterm, NULL);
    if (stdin_pollable()) {
        s.stdin_ev = event_new(s.base, 0, EV_READ | EV_PERSIST, stdin_cb, &s);
        if (s.stdin_ev != NULL && event_add(s.stdin_ev, NULL) < 0) {
            event_free(s.stdin_ev);
            s.stdin_ev = NULL;
        }
    }
    {
        struct strbuf banner;
        strbuf_init(&banner, 1 << 20);
        strbuf_appendf(&banner, "etrnsim %s ready: %s\n", ETRNSIM_VERSION, config);
        nodes_print(&s, &banner);
        fputs(banner.data, stdout);
        fflush(stdout);
        strbuf_free(&banner);
    }
    event_base_dispatch(s.base);
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
out:
    if (s.stdin_ev != NULL)
        event_free(s.stdin_ev);
    while (s.clients != NULL)
        control_client_free(s.clients);
    if (s.control != NULL) {
        evconnlistener_free(s.control);
        unlink(s.control_path);
    }
    sim_world_free(s.w);
    strbuf_free(&s.stdin_buf);
    event_base_free(s.base);
    return rc;
}
