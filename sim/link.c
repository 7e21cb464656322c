/* link.c — a shaping TCP relay in front of a node (see link.h).
 *
 *   link_new(&l, base, "sink1", public, plen, target, tlen, &err);
 *   link_apply_words(l, argv, argc, &err);    // up | down | blackhole | latency 50ms ...
 *   link_free(l);
 *
 * Each accepted connection gets a relay: bytes read from one side are held with a release
 * time (latency + jitter, never reordered), then let out through a token bucket
 * (bandwidth) and in slices, and counted against reset-after / stall-after. With no
 * shaping the bytes move at once (buffer chains are handed over, not copied).
 * Guarantees: memory per connection is bounded (reading pauses while LINK_HELD_MAX bytes
 * wait); closing is propagated as half-close in the order it happened; an error on one
 * side resets the other. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pcap/pcap.h>
#include <stdint.h>
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
#include "netaddr.h"
#include "sim_words.h"
#include "strbuf.h"

#define LINK_HELD_MAX (1024 * 1024)      /* bytes waiting in one direction before reads pause */
#define LINK_MARKS_MAX 65536             /* release marks per direction */
#define LINK_DEFAULT_SLICE_GAP_MS 10
#define LINK_IDLE_TIMEOUT_S 3600
#define LINK_IO_CHUNK (256 * 1024)

struct link_mark {
    int64_t release_us;
    size_t n;
};

struct link_conn;

struct link_dir {
    struct link_conn *c;
    int from_client;                /* 1: client -> server */
    struct evbuffer *held;
    struct link_mark *marks;        /* ring of release marks */
    size_t mark_head, mark_count, mark_cap;
    int64_t last_release_us;
    double tokens;
    int64_t refill_us;
    int64_t last_slice_us;
    struct event *timer;
    int eof;                        /* the source side finished sending */
    int shut;                       /* we passed that on with shutdown(SHUT_WR) */
};

struct link_conn {
    struct link *l;
    struct link_conn *prev, *next;
    unsigned long id;
    struct bufferevent *client, *server;
    struct link_dir up, down;       /* up: client -> server; down: server -> client */
    int connected;
    int silenced;                   /* blackholed or stalled: nothing more is carried */
    int reset_pending;              /* reset-after reached: RST once the last bytes are out */
    unsigned long long carried;
    struct event *reset_timer;
    struct pcap_tcp_flow *flow;
    int first_closer_known;
    enum pcap_direction first_closer;
    struct sockaddr_storage client_sa;
};

struct link {
    struct event_base *base;
    char name[SINK_NAME_MAX];
    struct sockaddr_storage pub, target;
    socklen_t publen, targetlen;
    struct evconnlistener *listener;
    struct link_settings set;
    struct pcap_writer *pcap;
    struct sink_journal *journal;
    unsigned long own_counter, *counter;
    link_connect_hook hook;
    void *hook_arg;
    struct link_conn *conns;
    size_t nconns;
    unsigned long accepted_total;
    uint64_t rng;
    /* refused-connection watcher (down state) */
    int watch_wanted;
    pcap_t *watch;
    struct event *watch_ev;
};

static int dir_pump(struct link_dir *d);
static void conn_free(struct link_conn *c);
static void conn_reset(struct link_conn *c, enum pcap_direction from);
static int watch_update(struct link *l, struct etrn_err *err);

static size_t output_length(struct bufferevent *bev)
{
    return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Returns -1 if the connection was reset (and is gone). */
static int conn_reset_if_flushed(struct link_conn *c)
{
    if (!c->reset_pending || output_length(c->client) > 0 || output_length(c->server) > 0)
        return 0;
    conn_reset(c, PCAP_FROM_SERVER);
    return -1;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t link_random(struct link *l)
{
    /* xorshift64: reproducible jitter for a given sequence of events */
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return l->rng;
}

const char *link_state_name(enum link_state s)
{
    switch (s) {
    case LINK_UP: return "up";
    case LINK_DOWN: return "down";
    case LINK_REJECT: return "reject";
    case LINK_BLACKHOLE: return "blackhole";
    }
    return "?";
}

/* --- words ------------------------------------------------------------------ */

void link_settings_reset(struct link_settings *s)
{
    memset(s, 0, sizeof *s);
    s->state = LINK_UP;
}

static int size_or_off(const char *w, const char *arg, unsigned long long *out,
                       struct etrn_err *err)
{
    if (arg != NULL && strcmp(arg, "off") == 0) {
        *out = 0;
        return 0;
    }
    return sim_words_size(w, arg, out, err);
}

static int duration_or_off(const char *w, const char *arg, unsigned long long max,
                           unsigned long long *out, struct etrn_err *err)
{
    if (arg != NULL && strcmp(arg, "off") == 0) {
        *out = 0;
        return 0;
    }
    if (sim_words_duration_ms(w, arg, out, err) < 0)
        return -1;
    if (*out > max)
        return err_set(err, "%s: '%s' is longer than %llu ms", w, arg, max);
    return 0;
}

int link_settings_parse(struct link_settings *out, char *const *argv, int argc,
                        struct etrn_err *err)
{
    struct link_settings s = *out;
    unsigned long long v;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(w, "up") == 0) {
            s.state = LINK_UP;
        } else if (strcmp(w, "down") == 0) {
            s.state = LINK_DOWN;
        } else if (strcmp(w, "reject") == 0) {
            s.state = LINK_REJECT;
        } else if (strcmp(w, "blackhole") == 0) {
            s.state = LINK_BLACKHOLE;
        } else if (strcmp(w, "clear") == 0) {
            enum link_state keep = s.state;
            link_settings_reset(&s);
            s.state = keep;
        } else if (strcmp(w, "latency") == 0 || strcmp(w, "jitter") == 0) {
            if (duration_or_off(w, arg, 600000, &v, err) < 0)
                return -1;
            if (strcmp(w, "latency") == 0)
                s.latency_ms = (unsigned)v;
            else
                s.jitter_ms = (unsigned)v;
            i++;
        } else if (strcmp(w, "bandwidth") == 0) {
            if (size_or_off(w, arg, &s.bandwidth, err) < 0)
                return -1;
            i++;
        } else if (strcmp(w, "reset-after") == 0) {
            if (size_or_off(w, arg, &s.reset_after_bytes, err) < 0)
                return -1;
            i++;
        } else if (strcmp(w, "reset-after-time") == 0) {
            if (duration_or_off(w, arg, 86400000, &s.reset_after_ms, err) < 0)
                return -1;
            i++;
        } else if (strcmp(w, "stall-after") == 0) {
            if (size_or_off(w, arg, &s.stall_after_bytes, err) < 0)
                return -1;
            i++;
        } else if (strcmp(w, "slice") == 0) {
            if (size_or_off(w, arg, &v, err) < 0)
                return -1;
            if (v > LINK_HELD_MAX)
                return err_set(err, "%s: '%s' is larger than %d", w, arg, LINK_HELD_MAX);
            s.slice_bytes = (size_t)v;
            if (s.slice_bytes > 0 && s.slice_gap_ms == 0)
                s.slice_gap_ms = LINK_DEFAULT_SLICE_GAP_MS;
            i++;
        } else if (strcmp(w, "slice-gap") == 0) {
            if (duration_or_off(w, arg, 60000, &v, err) < 0)
                return -1;
            s.slice_gap_ms = (unsigned)v;
            i++;
        } else {
            return err_set(err, "unknown link setting '%s'", w);
        }
    }
    *out = s;
    return 0;
}

/* --- connections: the relay ------------------------------------------------- */

static struct bufferevent *dir_src(struct link_dir *d)
{
    return d->from_client ? d->c->client : d->c->server;
}

static struct bufferevent *dir_dst(struct link_dir *d)
{
    return d->from_client ? d->c->server : d->c->client;
}

static int mark_push(struct link_dir *d, int64_t release_us, size_t n)
{
    /* Same release time as the newest mark: merge, so a stream without shaping never
     * needs more than one mark. */
    if (d->mark_count > 0) {
        struct link_mark *last = &d->marks[(d->mark_head + d->mark_count - 1) % d->mark_cap];
        if (last->release_us >= release_us) {
            last->n += n;
            return 0;
        }
    }
    if (d->mark_count == d->mark_cap) {
        if (d->mark_cap >= LINK_MARKS_MAX)
            return -1;
        size_t cap = d->mark_cap ? d->mark_cap * 2 : 8;
        struct link_mark *v = malloc(cap * sizeof *v);
        if (v == NULL)
            return -1;
        for (size_t i = 0; i < d->mark_count; i++)
            v[i] = d->marks[(d->mark_head + i) % d->mark_cap];
        free(d->marks);
        d->marks = v;
        d->mark_cap = cap;
        d->mark_head = 0;
    }
    d->marks[(d->mark_head + d->mark_count) % d->mark_cap] = (struct link_mark){release_us, n};
    d->mark_count++;
    return 0;
}

static void marks_consume(struct link_dir *d, size_t n)
{
    while (n > 0 && d->mark_count > 0) {
        struct link_mark *m = &d->marks[d->mark_head];
        size_t take = m->n < n ? m->n : n;
        m->n -= take;
        n -= take;
        if (m->n == 0) {
            d->mark_head = (d->mark_head + 1) % d->mark_cap;
            d->mark_count--;
        }
    }
}

static void conn_update_reading(struct link_conn *c)
{
    struct link_dir *dirs[2] = {&c->up, &c->down};
    for (int i = 0; i < 2; i++) {
        struct link_dir *d = dirs[i];
        struct bufferevent *src = dir_src(d), *dst = dir_dst(d);
        if (src == NULL || d->eof)
            continue;
        size_t waiting = evbuffer_get_length(d->held)
                         + (dst != NULL ? evbuffer_get_length(bufferevent_get_output(dst)) : 0);
        if (waiting > LINK_HELD_MAX)
            bufferevent_disable(src, EV_READ);
        else
            bufferevent_enable(src, EV_READ);
    }
}

/* Passes on a half-close once everything before it has been delivered.
 * Returns -1 if the connection is gone. */
static int dir_check_shut(struct link_dir *d)
{
    struct link_conn *c = d->c;
    struct bufferevent *dst = dir_dst(d);
    if (!d->eof || d->shut || evbuffer_get_length(d->held) > 0 || dst == NULL)
        return 0;
    if (evbuffer_get_length(bufferevent_get_output(dst)) > 0)
        return 0;   /* the write callback comes back here */
    if (shutdown(bufferevent_getfd(dst), SHUT_WR) < 0 && errno != ENOTCONN) {
        conn_reset(c, d->from_client ? PCAP_FROM_CLIENT : PCAP_FROM_SERVER);
        return -1;
    }
    d->shut = 1;
    if (c->up.shut && c->down.shut) {
        conn_free(c);
        return -1;
    }
    return 0;
}

/* Moves n held bytes to the destination, honouring reset-after and stall-after.
 * Returns -1 if the connection is gone. */
static int dir_forward(struct link_dir *d, size_t n)
{
    struct link_conn *c = d->c;
    const struct link_settings *s = &c->l->set;
    int reset = 0, stall = 0;
    if (s->reset_after_bytes > 0 && c->carried + n >= s->reset_after_bytes) {
        n = (size_t)(s->reset_after_bytes - c->carried);
        reset = 1;
    }
    if (s->stall_after_bytes > 0 && c->carried + n >= s->stall_after_bytes) {
        n = (size_t)(s->stall_after_bytes - c->carried);
        stall = 1;
    }
    if (n > 0) {
        struct bufferevent *dst = dir_dst(d);
        if (!d->from_client && c->flow != NULL) {
            /* What the client receives is recorded as it is handed to the client. */
            struct evbuffer_iovec vec[16];
            int nv = evbuffer_peek(d->held, (ev_ssize_t)n, NULL, vec, 16);
            size_t left = n;
            for (int i = 0; i < nv && i < 16 && left > 0; i++) {
                size_t part = vec[i].iov_len < left ? vec[i].iov_len : left;
                pcap_tcp_flow_data(c->flow, PCAP_FROM_SERVER, vec[i].iov_base, part);
                left -= part;
            }
            if (left > 0) {
                unsigned char *p = evbuffer_pullup(d->held, (ev_ssize_t)n);
                pcap_tcp_flow_data(c->flow, PCAP_FROM_SERVER, p + (n - left), left);
            }
        }
        evbuffer_remove_buffer(d->held, bufferevent_get_output(dst), n);
        marks_consume(d, n);
        c->carried += n;
    }
    if (reset || stall) {
        c->silenced = 1;
        evbuffer_drain(c->up.held, evbuffer_get_length(c->up.held));
        evbuffer_drain(c->down.held, evbuffer_get_length(c->down.held));
        c->up.mark_count = c->down.mark_count = 0;
    }
    if (reset) {
        /* The bytes up to the limit must reach the peer before the RST does. */
        c->reset_pending = 1;
        return conn_reset_if_flushed(c);
    }
    return 0;
}

static void dir_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)dir_pump(arg);
}

static void dir_schedule(struct link_dir *d, int64_t wait_us)
{
    if (wait_us < 1000)
        wait_us = 1000;
    struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
    evtimer_add(d->timer, &tv);
}

/* Lets out what may go now and schedules the rest. Returns -1 if the connection is gone. */
static int dir_pump(struct link_dir *d)
{
    struct link_conn *c = d->c;
    const struct link_settings *s = &c->l->set;
    if (c->silenced) {
        evbuffer_drain(d->held, evbuffer_get_length(d->held));
        d->mark_count = 0;
        return 0;
    }
    if (dir_dst(d) == NULL || !c->connected)
        return 0;
    size_t held = evbuffer_get_length(d->held);
    if (held > 0) {
        int64_t now = mono_us();
        size_t releasable = 0;
        for (size_t i = 0; i < d->mark_count; i++) {
            const struct link_mark *m = &d->marks[(d->mark_head + i) % d->mark_cap];
            if (m->release_us > now)
                break;
            releasable += m->n;
        }
        size_t allowed = releasable;
        if (s->bandwidth > 0) {
            double cap = (double)s->bandwidth / 50.0;
            if (cap < 1.0)
                cap = 1.0;
            d->tokens += (double)s->bandwidth * (double)(now - d->refill_us) / 1e6;
            if (d->tokens > cap)
                d->tokens = cap;
            d->refill_us = now;
            if ((double)allowed > d->tokens)
                allowed = (size_t)d->tokens;
        }
        int64_t gap_us = (int64_t)s->slice_gap_ms * 1000;
        if (s->slice_bytes > 0) {
            if (d->last_slice_us != 0 && now - d->last_slice_us < gap_us)
                allowed = 0;
            else if (allowed > s->slice_bytes)
                allowed = s->slice_bytes;
        }
        if (allowed > 0) {
            if (s->bandwidth > 0)
                d->tokens -= (double)allowed;
            if (s->slice_bytes > 0)
                d->last_slice_us = now;
            if (dir_forward(d, allowed) < 0)
                return -1;
            if (c->silenced)
                return 0;
        }
        if (evbuffer_get_length(d->held) > 0) {
            int64_t wait = 0;
            if (releasable > allowed) {
                if (s->slice_bytes > 0)
                    wait = gap_us - (now - d->last_slice_us);
                if (s->bandwidth > 0 && d->tokens < 1.0) {
                    int64_t need = (int64_t)((1.0 - d->tokens) * 1e6 / (double)s->bandwidth);
                    if (need > wait)
                        wait = need;
                }
            } else if (d->mark_count > 0) {
                wait = d->marks[d->mark_head].release_us - now;
            }
            dir_schedule(d, wait);
        }
    }
    conn_update_reading(c);
    return dir_check_shut(d);
}

/* Takes what the source sent. Returns -1 if the connection is gone. */
static int dir_take_input(struct link_dir *d)
{
    struct link_conn *c = d->c;
    const struct link_settings *s = &c->l->set;
    struct evbuffer *in = bufferevent_get_input(dir_src(d));
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return 0;
    if (d->from_client && c->flow != NULL) {
        unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
        pcap_tcp_flow_data(c->flow, PCAP_FROM_CLIENT, p, n);
    }
    if (c->silenced) {
        evbuffer_drain(in, n);
        return 0;
    }
    int64_t now = mono_us();
    int64_t release = now + (int64_t)s->latency_ms * 1000;
    if (s->jitter_ms > 0)
        release += (int64_t)(link_random(c->l) % ((uint64_t)s->jitter_ms * 1000 + 1));
    if (release < d->last_release_us)
        release = d->last_release_us;   /* jitter never reorders bytes */
    d->last_release_us = release;
    if (mark_push(d, release, n) < 0) {
        conn_reset(c, PCAP_FROM_SERVER);
        return -1;
    }
    evbuffer_add_buffer(d->held, in);
    return dir_pump(d);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct link_conn *c = arg;
    (void)dir_take_input(&c->up);
}

static void server_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct link_conn *c = arg;
    (void)dir_take_input(&c->down);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct link_conn *c = arg;
    if (conn_reset_if_flushed(c) < 0)
        return;
    conn_update_reading(c);
    (void)dir_check_shut(&c->down);
}

static void server_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct link_conn *c = arg;
    if (conn_reset_if_flushed(c) < 0)
        return;
    conn_update_reading(c);
    (void)dir_check_shut(&c->up);
}

static void note_closer(struct link_conn *c, enum pcap_direction who)
{
    if (!c->first_closer_known) {
        c->first_closer_known = 1;
        c->first_closer = who;
    }
}

static void conn_eof(struct link_conn *c, struct link_dir *d)
{
    note_closer(c, d->from_client ? PCAP_FROM_CLIENT : PCAP_FROM_SERVER);
    d->eof = 1;
    if (c->silenced || dir_dst(d) == NULL) {
        /* Blackholed: nobody else to tell. The client leaving ends it all. */
        if (d->from_client) {
            conn_free(c);
            return;
        }
        d->shut = 1;
        return;
    }
    (void)dir_pump(d);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct link_conn *c = arg;
    if (what & BEV_EVENT_EOF) {
        if (dir_take_input(&c->up) < 0)
            return;
        conn_eof(c, &c->up);
        return;
    }
    /* error or idle timeout */
    conn_reset(c, PCAP_FROM_CLIENT);
}

static void server_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct link_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->connected = 1;
        (void)dir_pump(&c->up);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (dir_take_input(&c->down) < 0)
            return;
        conn_eof(c, &c->down);
        return;
    }
    conn_reset(c, PCAP_FROM_SERVER);
}

static void dir_clear(struct link_dir *d)
{
    if (d->timer != NULL) {
        event_del(d->timer);
        event_free(d->timer);
        d->timer = NULL;
    }
    if (d->held != NULL)
        evbuffer_free(d->held);
    d->held = NULL;
    free(d->marks);
    d->marks = NULL;
}

static void conn_unlink(struct link_conn *c)
{
    struct link *l = c->l;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    l->nconns--;
    dir_clear(&c->up);
    dir_clear(&c->down);
    if (c->reset_timer != NULL) {
        event_del(c->reset_timer);
        event_free(c->reset_timer);
    }
}

/* Orderly end: both sides have finished (or the client left a blackhole). */
static void conn_free(struct link_conn *c)
{
    conn_unlink(c);
    if (c->flow != NULL)
        pcap_tcp_flow_close(c->flow, c->first_closer_known ? c->first_closer : PCAP_FROM_CLIENT);
    if (c->client != NULL)
        bufferevent_free(c->client);
    if (c->server != NULL)
        bufferevent_free(c->server);
    free(c);
}

static void fd_abort(struct bufferevent *bev)
{
    if (bev == NULL)
        return;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0) {
        struct linger lg = {1, 0};
        /* SO_LINGER 0 makes close() send RST: the peer sees "connection reset". */
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    bufferevent_free(bev);
}

static void conn_reset(struct link_conn *c, enum pcap_direction from)
{
    conn_unlink(c);
    if (c->flow != NULL) {
        /* The capture shows the client's view: a reset from the client side is its own. */
        pcap_tcp_flow_reset(c->flow, from);
    }
    fd_abort(c->client);
    fd_abort(c->server);
    free(c);
}

static void reset_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_reset(arg, PCAP_FROM_SERVER);
}

static void journal_connect(struct link *l, unsigned long id, const struct sockaddr *peer,
                            const char *event)
{
    if (l->journal == NULL)
        return;
    struct sink_journal_entry e;
    memset(&e, 0, sizeof e);
    e.kind = SINK_JOURNAL_CONNECT;
    e.time_ms = wall_ms();
    str_copy(e.sink, sizeof e.sink, l->name);
    e.conn_id = id;
    if (netaddr_format(peer, e.peer, sizeof e.peer) < 0)
        str_copy(e.peer, sizeof e.peer, "?");
    str_copy(e.event, sizeof e.event, event);
    sink_journal_append(l->journal, &e, NULL);
}

/* Larger reads and writes than libevent's 16 KiB default: a bulk transfer then costs
 * fewer loop turns (measured with bench/bench_link.c). */
static void relay_tune(struct bufferevent *bev)
{
    (void)bufferevent_set_max_single_read(bev, LINK_IO_CHUNK);
    (void)bufferevent_set_max_single_write(bev, LINK_IO_CHUNK);
}

static int dir_init(struct link_dir *d, struct link_conn *c, int from_client)
{
    d->c = c;
    d->from_client = from_client;
    d->held = evbuffer_new();
    d->timer = evtimer_new(c->l->base, dir_timer_cb, d);
    d->refill_us = mono_us();
    return d->held != NULL && d->timer != NULL ? 0 : -1;
}

static void accept_cb(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *from,
                      int fromlen, void *arg)
{
    (void)lst;
    struct link *l = arg;
    unsigned long id = ++*l->counter;
    l->accepted_total++;
    if (l->set.state == LINK_REJECT) {
        journal_connect(l, id, from, "reset");
        struct pcap_tcp_flow *f = pcap_tcp_flow_open(l->pcap, from, (struct sockaddr *)&l->pub);
        pcap_tcp_flow_reset(f, PCAP_FROM_SERVER);
        struct linger lg = {1, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
        return;
    }
    struct link_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->l = l;
    c->id = id;
    memcpy(&c->client_sa, from, (size_t)fromlen < sizeof c->client_sa ? (size_t)fromlen
                                                                      : sizeof c->client_sa);
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    c->client = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->client == NULL) {
        close(fd);
        conn_reset(c, PCAP_FROM_SERVER);
        return;
    }
    if (dir_init(&c->up, c, 1) < 0 || dir_init(&c->down, c, 0) < 0) {
        conn_reset(c, PCAP_FROM_SERVER);
        return;
    }
    c->flow = pcap_tcp_flow_open(l->pcap, from, (struct sockaddr *)&l->pub);
    bufferevent_setcb(c->client, client_read_cb, client_write_cb, client_event_cb, c);
    relay_tune(c->client);
    struct timeval idle = {LINK_IDLE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->client, &idle, NULL);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    if (l->set.state == LINK_BLACKHOLE) {
        journal_connect(l, id, from, "blackholed");
        c->silenced = 1;
        return;
    }
    journal_connect(l, id, from, "accepted");
    if (l->set.reset_after_ms > 0) {
        c->reset_timer = evtimer_new(l->base, reset_timer_cb, c);
        if (c->reset_timer != NULL) {
            struct timeval tv = {(time_t)(l->set.reset_after_ms / 1000),
                                 (suseconds_t)(l->set.reset_after_ms % 1000) * 1000};
            evtimer_add(c->reset_timer, &tv);
        }
    }
    c->server = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->server == NULL) {
        conn_reset(c, PCAP_FROM_SERVER);
        return;
    }
    bufferevent_setcb(c->server, server_read_cb, server_write_cb, server_event_cb, c);
    relay_tune(c->server);
    bufferevent_enable(c->server, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->server, (struct sockaddr *)&l->target,
                                   (int)l->targetlen) < 0) {
        conn_reset(c, PCAP_FROM_SERVER);
        return;
    }
    evutil_socket_t sfd = bufferevent_getfd(c->server);
    if (sfd >= 0) {
        int one = 1;
        (void)setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (l->hook != NULL && sfd >= 0) {
        struct sockaddr_storage via;
        socklen_t vlen = sizeof via;
        if (getsockname(sfd, (struct sockaddr *)&via, &vlen) == 0)
            l->hook((struct sockaddr *)&via, from, id, l->hook_arg);
    }
}

/* --- the listener and state changes ------------------------------------------ */

static int listener_open(struct link *l, struct etrn_err *err)
{
    if (l->listener != NULL)
        return 0;
    l->listener = evconnlistener_new_bind(l->base, accept_cb, l,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE
                                              | LEV_OPT_CLOSE_ON_EXEC,
                                          128, (struct sockaddr *)&l->pub, (int)l->publen);
    if (l->listener == NULL) {
        char text[NETADDR_TEXT_MAX];
        if (netaddr_format((struct sockaddr *)&l->pub, text, sizeof text) < 0)
            str_copy(text, sizeof text, "?");
        return err_set_errno(err, "link %s: cannot listen on %s", l->name, text);
    }
    return 0;
}

static void listener_close(struct link *l)
{
    if (l->listener != NULL)
        evconnlistener_free(l->listener);
    l->listener = NULL;
}

int link_set_settings(struct link *l, const struct link_settings *s, struct etrn_err *err)
{
    if (s->state != LINK_DOWN && listener_open(l, err) < 0)
        return -1;
    enum link_state old = l->set.state;
    l->set = *s;
    if (s->state == LINK_DOWN) {
        listener_close(l);
        /* The node is gone: open connections die with it. */
        while (l->conns != NULL)
            conn_reset(l->conns, PCAP_FROM_SERVER);
    } else if (s->state == LINK_BLACKHOLE && old != LINK_BLACKHOLE) {
        for (struct link_conn *c = l->conns; c != NULL; c = c->next) {
            c->silenced = 1;
            evbuffer_drain(c->up.held, evbuffer_get_length(c->up.held));
            evbuffer_drain(c->down.held, evbuffer_get_length(c->down.held));
            c->up.mark_count = c->down.mark_count = 0;
        }
    } else {
        /* New shaping (or no shaping) applies to bytes already held too. */
        for (struct link_conn *c = l->conns; c != NULL;) {
            struct link_conn *next = c->next;
            if (evbuffer_get_length(c->up.held) > 0 || evbuffer_get_length(c->down.held) > 0) {
                event_active(c->up.timer, EV_TIMEOUT, 0);
                event_active(c->down.timer, EV_TIMEOUT, 0);
            }
            c = next;
        }
    }
    (void)watch_update(l, NULL);
    return 0;
}

int link_apply_words(struct link *l, char *const *argv, int argc, struct etrn_err *err)
{
    struct link_settings s = l->set;
    if (link_settings_parse(&s, argv, argc, err) < 0)
        return -1;
    return link_set_settings(l, &s, err);
}

const struct link_settings *link_get_settings(const struct link *l)
{
    return &l->set;
}

int link_new(struct link **out, struct event_base *base, const char *name,
             const struct sockaddr *public_addr, socklen_t public_len,
             const struct sockaddr *target, socklen_t target_len, struct etrn_err *err)
{
    *out = NULL;
    struct link *l = calloc(1, sizeof *l);
    if (l == NULL)
        return err_set(err, "link %s: out of memory", name);
    if (str_copy(l->name, sizeof l->name, name) < 0 || public_len > sizeof l->pub
        || target_len > sizeof l->target) {
        free(l);
        return err_set(err, "link '%s': name or address too long", name);
    }
    l->base = base;
    memcpy(&l->pub, public_addr, public_len);
    l->publen = public_len;
    memcpy(&l->target, target, target_len);
    l->targetlen = target_len;
    l->counter = &l->own_counter;
    l->rng = 0x9e3779b97f4a7c15ull;
    link_settings_reset(&l->set);
    if (listener_open(l, err) < 0) {
        free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void link_free(struct link *l)
{
    if (l == NULL)
        return;
    l->watch_wanted = 0;
    l->set.state = LINK_UP;
    (void)watch_update(l, NULL);
    while (l->conns != NULL)
        conn_reset(l->conns, PCAP_FROM_SERVER);
    listener_close(l);
    free(l);
}

const char *link_name(const struct link *l)
{
    return l->name;
}

const struct sockaddr *link_public_address(const struct link *l, socklen_t *len)
{
    if (len != NULL)
        *len = l->publen;
    return (const struct sockaddr *)&l->pub;
}

void link_set_pcap(struct link *l, struct pcap_writer *pw)
{
    l->pcap = pw;
}

void link_set_journal(struct link *l, struct sink_journal *j)
{
    l->journal = j;
}

void link_set_conn_counter(struct link *l, unsigned long *counter)
{
    l->counter = counter != NULL ? counter : &l->own_counter;
}

void link_set_connect_hook(struct link *l, link_connect_hook hook, void *arg)
{
    l->hook = hook;
    l->hook_arg = arg;
}

size_t link_connection_count(const struct link *l)
{
    return l->nconns;
}

unsigned long link_accepted_total(const struct link *l)
{
    return l->accepted_total;
}

/* --- watching refused attempts while down -------------------------------------- */

static void watch_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *pkt)
{
    struct link *l = (struct link *)user;
    /* DLT_EN10MB on "lo": 14-byte Ethernet header, then IPv4 or IPv6. */
    if (h->caplen < 14 + 20)
        return;
    const u_char *ip = pkt + 14;
    size_t left = h->caplen - 14;
    struct sockaddr_storage client;
    memset(&client, 0, sizeof client);
    const u_char *tcp;
    if ((ip[0] >> 4) == 4) {
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        if (left < ihl + 20)
            return;
        struct sockaddr_in *sin = (struct sockaddr_in *)&client;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, ip + 12, 4);
        tcp = ip + ihl;
        memcpy(&sin->sin_port, tcp, 2);
    } else if ((ip[0] >> 4) == 6) {
        if (left < 40 + 20)
            return;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&client;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, ip + 8, 16);
        tcp = ip + 40;
        memcpy(&sin6->sin6_port, tcp, 2);
    } else {
        return;
    }
    unsigned long id = ++*l->counter;
    journal_connect(l, id, (struct sockaddr *)&client, "refused");
    pcap_tcp_refused(l->pcap, (struct sockaddr *)&client, (struct sockaddr *)&l->pub);
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct link *l = arg;
    if (l->watch != NULL)
        pcap_dispatch(l->watch, 64, watch_packet, (u_char *)l);
}

static void watch_stop(struct link *l)
{
    if (l->watch_ev != NULL) {
        event_del(l->watch_ev);
        event_free(l->watch_ev);
        l->watch_ev = NULL;
    }
    if (l->watch != NULL)
        pcap_close(l->watch);
    l->watch = NULL;
}

static int watch_update(struct link *l, struct etrn_err *err)
{
    int want = l->watch_wanted && l->set.state == LINK_DOWN;
    if (!want) {
        watch_stop(l);
        return 0;
    }
    if (l->watch != NULL)
        return 0;
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    char host[NETADDR_TEXT_MAX], filter[256];
    if (netaddr_format_host((struct sockaddr *)&l->pub, host, sizeof host) < 0)
        return err_set(err, "link %s: bad public address", l->name);
    /* Only first SYNs (no ACK) to this node's address and port. */
    if (str_format(filter, sizeof filter,
                   "tcp and dst host %s and dst port %d and tcp[tcpflags] & tcp-syn != 0 "
                   "and tcp[tcpflags] & tcp-ack == 0",
                   host, netaddr_port((struct sockaddr *)&l->pub)) < 0)
        return err_set(err, "link %s: filter too long", l->name);
    pcap_t *p = pcap_create("lo", ebuf);
    if (p == NULL)
        return err_set(err, "link %s: cannot watch lo: %s", l->name, ebuf);
    struct bpf_program prog;
    if (pcap_set_snaplen(p, 128) != 0 || pcap_set_immediate_mode(p, 1) != 0
        || pcap_set_timeout(p, 10) != 0 || pcap_activate(p) < 0
        || pcap_datalink(p) != DLT_EN10MB || pcap_setnonblock(p, 1, ebuf) < 0
        || pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        err_set(err, "link %s: cannot watch lo: %s", l->name, pcap_geterr(p));
        pcap_close(p);
        return -1;
    }
    int r = pcap_setfilter(p, &prog);
    pcap_freecode(&prog);
    int fd = r == 0 ? pcap_get_selectable_fd(p) : -1;
    if (fd < 0) {
        err_set(err, "link %s: cannot watch lo: %s", l->name, pcap_geterr(p));
        pcap_close(p);
        return -1;
    }
    l->watch = p;
    l->watch_ev = event_new(l->base, fd, EV_READ | EV_PERSIST, watch_cb, l);
    if (l->watch_ev == NULL || event_add(l->watch_ev, NULL) < 0) {
        watch_stop(l);
        return err_set(err, "link %s: cannot watch lo: out of memory", l->name);
    }
    return 0;
}

int link_watch_refused(struct link *l, int on, struct etrn_err *err)
{
    l->watch_wanted = on;
    if (watch_update(l, err) < 0) {
        l->watch_wanted = 0;
        return -1;
    }
    return 0;
}
