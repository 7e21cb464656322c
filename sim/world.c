/* world.c — one simulated topology on one event_base (see world.h).
 *
 *   sim_world_new(&w, base, &opts, &err);
 *   sim_world_apply(w, argv, argc, &err);        // dns ..., sink ..., link ..., at 10s ...
 *   sim_world_free(w);
 *
 * Every node gets the next address of the pool and the common sink port; what listens
 * there is always a link, which relays to the node itself (an in-process sink on an
 * ephemeral 127.0.0.1 port, or an external server). Connection ids come from one counter,
 * so a link's connect record and the sink's delivery record of one connection match.
 * Guarantee: a line that fails leaves the world as it was. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns_server.h"
#include "netaddr.h"
#include "sim_words.h"
#include "world.h"
#include "world_dns.h"

#define WORLD_LINE_WORDS_MAX 64
#define WORLD_PENDING_MAX 10000

struct world_node {
    struct world_node *next;
    char name[SINK_NAME_MAX];
    char addr_text[NETADDR_TEXT_MAX];   /* host only */
    struct sockaddr_in pub;
    struct sink *sink;                  /* NULL for an external node */
    struct link *link;
};

struct world_at {
    struct world_at *prev, *next;
    struct sim_world *w;
    struct event *ev;
    int argc;
    char **argv;
};

struct sim_world {
    struct event_base *base;
    struct sim_world_options opts;
    struct in_addr pool_first;
    unsigned pool_used;
    struct world_node *nodes, *nodes_tail;
    struct sink_journal *journal;
    struct pcap_writer *pcap;
    struct world_dns *dns;
    unsigned long conn_counter;
    struct world_at *pending;
    size_t npending;
    sim_world_error_hook error_hook;
    void *error_arg;
};

void sim_world_options_default(struct sim_world_options *o)
{
    memset(o, 0, sizeof *o);
    o->dns_listen = "127.0.0.1:0";
    o->sink_port = 2526;
    o->sink_addr_first = "127.0.0.2";
    o->sink_addr_count = 200;
}

static struct world_node *node_find(const struct sim_world *w, const char *name)
{
    for (struct world_node *n = w->nodes; n != NULL; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static int name_check(const char *name, struct etrn_err *err)
{
    size_t len = strlen(name);
    if (len == 0 || len >= SINK_NAME_MAX)
        return err_set(err, "node name '%s' must be 1 to %d characters", name,
                       SINK_NAME_MAX - 1);
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_' || c == '.'))
            return err_set(err, "node name '%s' has invalid character '%c'", name, c);
    }
    return 0;
}

static void sink_peer_hook(const struct sockaddr *via, const struct sockaddr *peer,
                           unsigned long conn_id, void *arg)
{
    sink_note_peer(arg, via, peer, conn_id);
}

/* Creates a node (the link at the next pool address, in front of target). */
static int node_add(struct sim_world *w, const char *name, struct sink *sink,
                    const struct sockaddr *target, socklen_t target_len,
                    struct world_node **out, struct etrn_err *err)
{
    if (w->pool_used >= w->opts.sink_addr_count)
        return err_set(err, "node %s: the address pool (%u addresses from %s) is used up",
                       name, w->opts.sink_addr_count, w->opts.sink_addr_first);
    struct world_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        return err_set(err, "node %s: out of memory", name);
    str_copy(n->name, sizeof n->name, name);
    n->pub.sin_family = AF_INET;
    n->pub.sin_port = htons((uint16_t)w->opts.sink_port);
    n->pub.sin_addr.s_addr = htonl(ntohl(w->pool_first.s_addr) + w->pool_used);
    if (inet_ntop(AF_INET, &n->pub.sin_addr, n->addr_text, sizeof n->addr_text) == NULL) {
        free(n);
        return err_set(err, "node %s: bad address", name);
    }
    if (link_new(&n->link, w->base, name, (struct sockaddr *)&n->pub, sizeof n->pub, target,
                 target_len, err) < 0) {
        free(n);
        return -1;
    }
    link_set_pcap(n->link, w->pcap);
    link_set_journal(n->link, w->journal);
    link_set_conn_counter(n->link, &w->conn_counter);
    if (sink != NULL)
        link_set_connect_hook(n->link, sink_peer_hook, sink);
    if (w->opts.watch_refused)
        (void)link_watch_refused(n->link, 1, NULL);
    n->sink = sink;
    w->pool_used++;
    if (w->nodes_tail != NULL)
        w->nodes_tail->next = n;
    else
        w->nodes = n;
    w->nodes_tail = n;
    *out = n;
    return 0;
}

static int apply_sink(struct sim_world *w, char *const *argv, int argc, struct etrn_err *err)
{
    if (argc < 2)
        return err_set(err, "sink: missing name (sink NAME [BEHAVIOUR...])");
    const char *name = argv[1];
    if (name_check(name, err) < 0)
        return -1;
    if (node_find(w, name) != NULL)
        return err_set(err, "sink %s: already defined (change it with sink-behave)", name);
    struct sink_behaviour b;
    sink_behaviour_reset(&b);
    if (sink_behaviour_parse(&b, argv + 2, argc - 2, err) < 0)
        return err_prefix(err, "sink %s", name);
    struct sockaddr_in internal;
    memset(&internal, 0, sizeof internal);
    internal.sin_family = AF_INET;
    internal.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sink *s;
    if (sink_new(&s, w->base, name, (struct sockaddr *)&internal, sizeof internal, w->journal,
                 err) < 0)
        return -1;
    *sink_behaviour(s) = b;
    sink_set_conn_counter(s, &w->conn_counter);
    socklen_t slen;
    const struct sockaddr *sa = sink_address(s, &slen);
    struct world_node *n;
    if (node_add(w, name, s, sa, slen, &n, err) < 0) {
        sink_free(s);
        return -1;
    }
    return 0;
}

static int apply_external(struct sim_world *w, char *const *argv, int argc,
                          struct etrn_err *err)
{
    if (argc < 3)
        return err_set(err, "external: usage: external NAME HOST:PORT [LINK-WORD...]");
    const char *name = argv[1];
    if (name_check(name, err) < 0)
        return -1;
    if (node_find(w, name) != NULL)
        return err_set(err, "external %s: already defined", name);
    struct netaddr target;
    if (netaddr_parse(argv[2], -1, &target, err) < 0)
        return err_prefix(err, "external %s", name);
    struct link_settings ls;
    link_settings_reset(&ls);
    if (link_settings_parse(&ls, argv + 3, argc - 3, err) < 0)
        return err_prefix(err, "external %s", name);
    struct world_node *n;
    if (node_add(w, name, NULL, (struct sockaddr *)&target.ss, target.len, &n, err) < 0)
        return -1;
    return link_set_settings(n->link, &ls, err);
}

static int apply_link(struct sim_world *w, char *const *argv, int argc, struct etrn_err *err)
{
    if (argc < 3)
        return err_set(err, "link: usage: link NAME up|down|reject|blackhole|latency DUR|...");
    struct world_node *n = node_find(w, argv[1]);
    if (n == NULL)
        return err_set(err, "link %s: no such node (declare it with 'sink %s' first)", argv[1],
                       argv[1]);
    if (link_apply_words(n->link, argv + 2, argc - 2, err) < 0)
        return err_prefix(err, "link %s", argv[1]);
    return 0;
}

static int apply_sink_behave(struct sim_world *w, char *const *argv, int argc,
                             struct etrn_err *err)
{
    if (argc < 3)
        return err_set(err, "sink-behave: usage: sink-behave NAME BEHAVIOUR...");
    struct world_node *n = node_find(w, argv[1]);
    if (n == NULL)
        return err_set(err, "sink-behave %s: no such sink", argv[1]);
    if (n->sink == NULL)
        return err_set(err, "sink-behave %s: an external node has no sink behaviours", argv[1]);
    if (sink_apply_words(n->sink, argv + 2, argc - 2, err) < 0)
        return err_prefix(err, "sink %s", argv[1]);
    return 0;
}

/* --- at: scheduled lines ----------------------------------------------------------- */

static void at_free(struct world_at *a)
{
    struct sim_world *w = a->w;
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        w->pending = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    w->npending--;
    if (a->ev != NULL) {
        event_del(a->ev);
        event_free(a->ev);
    }
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    free(a);
}

static void at_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct world_at *a = arg;
    struct sim_world *w = a->w;
    struct etrn_err err = {{0}};
    if (sim_world_apply(w, a->argv, a->argc, &err) < 0 && w->error_hook != NULL)
        w->error_hook(err.msg, w->error_arg);
    at_free(a);
}

/* Checks a line without applying it, as far as that is possible before its time. */
static int line_precheck(struct sim_world *w, char *const *argv, int argc, struct etrn_err *err)
{
    const char *verb = argv[0];
    if (strcmp(verb, "link") == 0) {
        if (argc < 3)
            return err_set(err, "link: usage: link NAME up|down|reject|blackhole|...");
        struct link_settings ls;
        link_settings_reset(&ls);
        if (link_settings_parse(&ls, argv + 2, argc - 2, err) < 0)
            return err_prefix(err, "link %s", argv[1]);
        return 0;
    }
    if (strcmp(verb, "sink-behave") == 0) {
        if (argc < 3)
            return err_set(err, "sink-behave: usage: sink-behave NAME BEHAVIOUR...");
        struct sink_behaviour b;
        sink_behaviour_reset(&b);
        if (sink_behaviour_parse(&b, argv + 2, argc - 2, err) < 0)
            return err_prefix(err, "sink %s", argv[1]);
        return 0;
    }
    if (strcmp(verb, "at") == 0)
        return err_set(err, "at: a scheduled line cannot schedule another");
    if (strcmp(verb, "dns") == 0 || strcmp(verb, "dns-quirk") == 0
        || strcmp(verb, "dns-clear") == 0 || strcmp(verb, "dns-zone") == 0) {
        if (w->dns == NULL)
            return err_set(err, "%s: this world has no DNS server", verb);
        return dns_server_check_line(argv, argc, err);
    }
    if (strcmp(verb, "sink") == 0 || strcmp(verb, "external") == 0)
        return 0;
    return err_set(err, "unknown setup line '%s'", verb);
}

static int apply_at(struct sim_world *w, char *const *argv, int argc, struct etrn_err *err)
{
    if (argc < 3)
        return err_set(err, "at: usage: at DURATION LINE... (e.g. at 10s link sink1 up)");
    unsigned long long ms;
    if (sim_words_duration_ms("at", argv[1], &ms, err) < 0)
        return -1;
    if (ms > 7ull * 86400000)
        return err_set(err, "at: '%s' is more than a week away", argv[1]);
    if (line_precheck(w, argv + 2, argc - 2, err) < 0)
        return err_prefix(err, "at %s", argv[1]);
    if (w->npending >= WORLD_PENDING_MAX)
        return err_set(err, "at: more than %d lines scheduled", WORLD_PENDING_MAX);
    struct world_at *a = calloc(1, sizeof *a);
    if (a == NULL)
        return err_set(err, "at: out of memory");
    a->w = w;
    a->argv = calloc((size_t)(argc - 2), sizeof *a->argv);
    a->ev = evtimer_new(w->base, at_cb, a);
    a->next = w->pending;
    if (w->pending != NULL)
        w->pending->prev = a;
    w->pending = a;
    w->npending++;
    if (a->argv == NULL || a->ev == NULL) {
        at_free(a);
        return err_set(err, "at: out of memory");
    }
    for (int i = 2; i < argc; i++) {
        a->argv[a->argc] = strdup(argv[i]);
        if (a->argv[a->argc] == NULL) {
            at_free(a);
            return err_set(err, "at: out of memory");
        }
        a->argc++;
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(a->ev, &tv);
    return 0;
}

/* --- the public surface --------------------------------------------------------------- */

int sim_world_apply(struct sim_world *w, char *const *argv, int argc, struct etrn_err *err)
{
    if (argc < 1)
        return 0;
    const char *verb = argv[0];
    if (strcmp(verb, "sink") == 0)
        return apply_sink(w, argv, argc, err);
    if (strcmp(verb, "sink-behave") == 0)
        return apply_sink_behave(w, argv, argc, err);
    if (strcmp(verb, "link") == 0)
        return apply_link(w, argv, argc, err);
    if (strcmp(verb, "external") == 0)
        return apply_external(w, argv, argc, err);
    if (strcmp(verb, "at") == 0)
        return apply_at(w, argv, argc, err);
    if (strcmp(verb, "dns") == 0 || strcmp(verb, "dns-quirk") == 0
        || strcmp(verb, "dns-clear") == 0 || strcmp(verb, "dns-zone") == 0) {
        if (w->dns == NULL)
            return err_set(err, "%s: this world has no DNS server", verb);
        return world_dns_apply(w->dns, argv, argc, err);
    }
    return err_set(err, "unknown setup line '%s' (expected dns, dns-quirk, dns-clear, "
                        "dns-zone, sink, sink-behave, external, link or at)", verb);
}

int sim_world_apply_line(struct sim_world *w, const char *line, struct etrn_err *err)
{
    char buf[4096];
    if (str_copy(buf, sizeof buf, line) < 0)
        return err_set(err, "line longer than %zu characters", sizeof buf - 1);
    char *argv[WORLD_LINE_WORDS_MAX];
    int argc = 0;
    char *p = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0' || *p == '#')
            break;
        if (argc == WORLD_LINE_WORDS_MAX)
            return err_set(err, "more than %d words on one line", WORLD_LINE_WORDS_MAX);
        argv[argc++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        if (*p == '\0')
            break;
        *p++ = '\0';
    }
    return sim_world_apply(w, argv, argc, err);
}

int sim_world_new(struct sim_world **out, struct event_base *base,
                  const struct sim_world_options *opts, struct etrn_err *err)
{
    *out = NULL;
    struct sim_world *w = calloc(1, sizeof *w);
    if (w == NULL)
        return err_set(err, "world: out of memory");
    w->base = base;
    if (opts != NULL)
        w->opts = *opts;
    else
        sim_world_options_default(&w->opts);
    int bad = 0;
    if (w->opts.sink_addr_first == NULL)
        w->opts.sink_addr_first = "127.0.0.2";
    if (w->opts.sink_addr_count == 0)
        w->opts.sink_addr_count = 200;
    if (w->opts.sink_port <= 0 || w->opts.sink_port > 65535)
        bad = err_set(err, "world: sink port %d is not a port", w->opts.sink_port);
    else if (inet_pton(AF_INET, w->opts.sink_addr_first, &w->pool_first) != 1
             || (ntohl(w->pool_first.s_addr) >> 24) != 127)
        bad = err_set(err, "world: sink pool '%s' is not a 127.0.0.0/8 address",
                      w->opts.sink_addr_first);
    else if ((ntohl(w->pool_first.s_addr) & 0xffffff) + w->opts.sink_addr_count > 0xffffff)
        bad = err_set(err, "world: sink pool from %s with %u addresses leaves 127.0.0.0/8",
                      w->opts.sink_addr_first, w->opts.sink_addr_count);
    if (bad < 0) {
        free(w);
        return -1;
    }
    if (sink_journal_open(&w->journal, w->opts.journal_path, err) < 0) {
        free(w);
        return -1;
    }
    if (w->opts.pcap_path != NULL && pcap_writer_open(&w->pcap, w->opts.pcap_path, err) < 0) {
        sink_journal_free(w->journal);
        free(w);
        return -1;
    }
    if (w->opts.dns_listen != NULL
        && world_dns_new(&w->dns, base, w->opts.dns_listen, w->pcap, err) < 0) {
        pcap_writer_close(w->pcap);
        sink_journal_free(w->journal);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void sim_world_free(struct sim_world *w)
{
    if (w == NULL)
        return;
    while (w->pending != NULL)
        at_free(w->pending);
    struct world_node *n = w->nodes;
    while (n != NULL) {
        struct world_node *next = n->next;
        link_free(n->link);
        sink_free(n->sink);
        free(n);
        n = next;
    }
    world_dns_free(w->dns);
    pcap_writer_close(w->pcap);
    sink_journal_free(w->journal);
    free(w);
}

const char *sim_world_sink_addr(const struct sim_world *w, const char *name)
{
    const struct world_node *n = node_find(w, name);
    return n != NULL ? n->addr_text : NULL;
}

const struct sockaddr *sim_world_node_sockaddr(const struct sim_world *w, const char *name,
                                               socklen_t *len)
{
    const struct world_node *n = node_find(w, name);
    if (n == NULL)
        return NULL;
    if (len != NULL)
        *len = sizeof n->pub;
    return (const struct sockaddr *)&n->pub;
}

int sim_world_sink_port(const struct sim_world *w)
{
    return w->opts.sink_port;
}

const char *sim_world_dns_addr(const struct sim_world *w)
{
    return w->dns != NULL ? world_dns_addr(w->dns) : NULL;
}

struct sink_journal *sim_world_journal(struct sim_world *w)
{
    return w->journal;
}

static size_t journal_select(const struct sim_world *w, enum sink_journal_kind kind,
                             const char *name, const struct sink_journal_entry **out,
                             size_t max)
{
    size_t count = 0;
    size_t total = sink_journal_count(w->journal);
    for (size_t i = 0; i < total; i++) {
        const struct sink_journal_entry *e = sink_journal_get(w->journal, i);
        if (e->kind != kind || (name != NULL && strcmp(e->sink, name) != 0))
            continue;
        if (out != NULL && count < max)
            out[count] = e;
        count++;
    }
    return count;
}

size_t sim_world_deliveries(const struct sim_world *w, const char *sink,
                            const struct sink_journal_entry **out, size_t max)
{
    return journal_select(w, SINK_JOURNAL_DELIVERY, sink, out, max);
}

size_t sim_world_connects(const struct sim_world *w, const char *node,
                          const struct sink_journal_entry **out, size_t max)
{
    return journal_select(w, SINK_JOURNAL_CONNECT, node, out, max);
}

struct sink *sim_world_sink(struct sim_world *w, const char *name)
{
    struct world_node *n = node_find(w, name);
    return n != NULL ? n->sink : NULL;
}

struct link *sim_world_link(struct sim_world *w, const char *name)
{
    struct world_node *n = node_find(w, name);
    return n != NULL ? n->link : NULL;
}

void *sim_world_dns(struct sim_world *w)
{
    return w->dns != NULL ? world_dns_server(w->dns) : NULL;
}

size_t sim_world_node_names(const struct sim_world *w, const char **out, size_t max)
{
    size_t count = 0;
    for (const struct world_node *n = w->nodes; n != NULL; n = n->next) {
        if (out != NULL && count < max)
            out[count] = n->name;
        count++;
    }
    return count;
}

void sim_world_set_error_hook(struct sim_world *w, sim_world_error_hook hook, void *arg)
{
    w->error_hook = hook;
    w->error_arg = arg;
}

size_t sim_world_pending(const struct sim_world *w)
{
    return w->npending;
}

/* --- running a blocking client beside the loop ------------------------------------------- */

struct beside {
    int (*fn)(void *);
    void *arg;
    int result;
    int pipefd[2];
    struct event_base *base;
    int done;
    int timed_out;
};

static void *beside_thread(void *p)
{
    struct beside *b = p;
    b->result = b->fn(b->arg);
    char c = 'x';
    while (write(b->pipefd[1], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void beside_done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct beside *b = arg;
    b->done = 1;
    event_base_loopbreak(b->base);
}

static void beside_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct beside *b = arg;
    b->timed_out = 1;
    event_base_loopbreak(b->base);
}

int sim_run_beside(struct event_base *base, int (*fn)(void *), void *arg, unsigned timeout_ms,
                   struct etrn_err *err)
{
    struct beside b;
    memset(&b, 0, sizeof b);
    b.fn = fn;
    b.arg = arg;
    b.base = base;
    if (pipe2(b.pipefd, O_CLOEXEC) < 0)
        return err_set_errno(err, "pipe");
    struct event *done = event_new(base, b.pipefd[0], EV_READ, beside_done_cb, &b);
    struct event *timer = evtimer_new(base, beside_timeout_cb, &b);
    pthread_t th;
    if (done == NULL || timer == NULL || pthread_create(&th, NULL, beside_thread, &b) != 0) {
        if (done != NULL)
            event_free(done);
        if (timer != NULL)
            event_free(timer);
        close(b.pipefd[0]);
        close(b.pipefd[1]);
        return err_set(err, "cannot start a helper thread");
    }
    event_add(done, NULL);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(timer, &tv);
    while (!b.done && !b.timed_out)
        if (event_base_loop(base, 0) < 0)
            break;
    pthread_join(th, NULL);
    event_free(done);
    event_free(timer);
    close(b.pipefd[0]);
    close(b.pipefd[1]);
    if (!b.done && b.timed_out)
        return err_set(err, "the helper did not finish within %u ms", timeout_ms);
    return b.result;
}
