/* dns_server.c — the simulator's DNS server: UDP and TCP on one loopback port, authoritative
 * answers from dns_zone, bent by the quirks in dns_quirks.
 *
 *   dns_server_new(&d, base, "127.0.0.1:0", &err);
 *   dns_server_add_record(d, "node.test MX 10 mx1.node.test", &err);
 *   dns_server_set_quirk(d, "node.test", "servfail", &err);   // takes effect for the next query
 *
 * Every well-formed answer is an ldns_pkt encoded by ldns_pkt2wire; only the cut-off and
 * pointer-loop quirks go through dns_malformed.c. Guarantees: every query is counted and
 * logged (bounded tables), every packet in and out goes to the capture writer, delayed
 * answers never outlive the server or their TCP connection, and memory per connection is
 * bounded by the read watermark. Answers to names without a quirk of their own are cached
 * by the exact query bytes (ID aside) until the records or quirks change; UDP queries are read
 * and answered in bursts (recvmmsg/sendmmsg) and answers encoded into one reused buffer. That
 * is what makes the server as fast as dnsmasq even while other names misbehave. UDP
 * datagrams over 4096 octets are dropped unanswered. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "dns_malformed.h"
#include "dns_quirks.h"
#include "dns_server.h"
#include "dns_zone.h"
#include "pcap_writer.h"
#include "strbuf.h"

#define DNS_UDP_MAX 65535
#define DNS_UDP_PLAIN_LIMIT 512
#define DNS_EDNS_SIZE_SENT 1232          /* what we advertise back (the DNS flag day value) */
#define DNS_CNAME_HOPS_MAX 24
#define DNS_UDP_READS_PER_EVENT 64       /* fairness with TCP and timers */
#define DNS_TCP_READ_HIGH_WATER (256 * 1024)
#define DNS_DIRECTIVES_MAX 1024
#define DNS_CACHE_SLOTS 1024             /* a power of two */
#define DNS_WIRE_BUF_START 4096          /* the encoding buffer grows as ldns needs */
#define DNS_UDP_BATCH 32                 /* datagrams per recvmmsg/sendmmsg */
#define DNS_UDP_BATCH_SLOT 4096          /* bytes per batched datagram; larger ones go alone */
#define DNS_CACHE_QUERY_MAX 300
#define DNS_CACHE_ANSWER_MAX 1232
#define DNS_STATS_HASH (DNS_SERVER_STATS_MAX * 2)

struct dns_tcp_conn {
    struct dns_tcp_conn *prev, *next;
    struct dns_server *srv;
    struct bufferevent *bev;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct pcap_tcp_flow *flow;
    int drop;                      /* drop-tcp: reset once the current read is done */
};

struct dns_pending {
    struct dns_pending *prev, *next;
    struct dns_server *srv;
    struct dns_tcp_conn *conn;     /* NULL for UDP */
    struct event *timer;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    size_t len;
    uint8_t wire[];
};

struct stat_entry {
    uint8_t key[DNS_NAME_KEY_MAX];
    uint16_t keylen;
    uint16_t type;
    unsigned long count;
    unsigned long flap_turns;
};

struct log_slot {
    struct timeval when;
    struct sockaddr_storage from;
    uint8_t qname[DNS_NAME_KEY_MAX];
    uint16_t qname_len;
    uint16_t type;
    uint16_t id;
    uint8_t transport;
    uint8_t malformed;
    int16_t rcode;
    uint32_t quirks;
    unsigned long long delay_ms;
};

/* A burst of UDP queries read with one recvmmsg, and their answers sent with one sendmmsg:
 * two system calls per burst instead of two per query. */
struct udp_batch {
    struct mmsghdr in[DNS_UDP_BATCH];
    struct iovec in_iov[DNS_UDP_BATCH];
    struct sockaddr_storage in_peer[DNS_UDP_BATCH];
    uint8_t in_buf[DNS_UDP_BATCH][DNS_UDP_BATCH_SLOT];
    struct mmsghdr out[DNS_UDP_BATCH];
    struct iovec out_iov[DNS_UDP_BATCH];
    struct sockaddr_storage out_peer[DNS_UDP_BATCH];
    uint8_t out_buf[DNS_UDP_BATCH][DNS_UDP_BATCH_SLOT];
    unsigned nout;
    int active;                          /* answers are being collected */
};

struct cache_slot {
    uint64_t generation;           /* 0: empty */
    uint8_t transport;
    uint16_t qlen, alen;
    uint32_t stat_index;
    uint8_t query[DNS_CACHE_QUERY_MAX];   /* from offset 2: everything but the ID */
    uint8_t answer[DNS_CACHE_ANSWER_MAX];
};

struct dns_server {
    struct event_base *base;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_text[NETADDR_TEXT_MAX];
    int port;
    int udp_fd;
    struct event *udp_ev;
    struct evconnlistener *listener;
    struct pcap_writer *pcap;

    struct dns_zone *zone;
    struct dns_quirk_table *quirks;

    struct dns_tcp_conn *conns;
    size_t nconns;
    struct dns_pending *pendings;

    struct stat_entry *stats;
    size_t nstats, stats_cap;
    uint32_t *stats_hash;          /* index + 1; 0 empty */
    unsigned long stats_overflow;

    struct log_slot *log;
    size_t log_next, log_count;

    struct cache_slot *cache;
    uint64_t cache_generation;
    int cache_off;                      /* dns_server_set_answer_cache(srv, 0) */
    ldns_buffer *wire_buf;              /* answers are encoded here, one at a time */
    struct udp_batch *batch;            /* recvmmsg/sendmmsg buffers */

    dns_server_observer_fn observer;
    void *observer_ctx;
    uint64_t rng;
    uint8_t udp_buf[DNS_UDP_MAX + 2];   /* a TCP message with its length prefix fits */
};

/* What one query is, while it is being answered. */
struct dns_request {
    struct dns_server *srv;
    enum dns_transport transport;
    const struct sockaddr *peer;
    socklen_t peerlen;
    struct dns_tcp_conn *conn;
    const uint8_t *wire;
    size_t len;
    ldns_pkt *query;
    const ldns_rdf *qname;
    ldns_rr_type qtype;
    struct dns_quirk_set eff;      /* quirks for qname */
    int flap_alternate;            /* this answer is flap's "other" one, with records */
    struct log_slot *slot;
    uint32_t stat_index;
};

/* --- small helpers ---------------------------------------------------------------------- */

static uint64_t rng_next(struct dns_server *srv)
{
    uint64_t x = srv->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    srv->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static ldns_rdf *name_with_label(const char *label, const ldns_rdf *parent)
{
    ldns_rdf *d = ldns_dname_new_frm_str(label);
    if (d == NULL)
        return NULL;
    if (ldns_dname_cat(d, parent) != LDNS_STATUS_OK || ldns_rdf_size(d) > 255) {
        ldns_rdf_deep_free(d);
        return NULL;
    }
    return d;
}

static ldns_rr *rr_cname(const ldns_rdf *owner, const ldns_rdf *target)
{
    ldns_rr *rr = ldns_rr_new();
    ldns_rdf *o = ldns_rdf_clone(owner), *t = ldns_rdf_clone(target);
    if (rr == NULL || o == NULL || t == NULL) {
        ldns_rr_free(rr);
        ldns_rdf_deep_free(o);
        ldns_rdf_deep_free(t);
        return NULL;
    }
    ldns_rr_set_owner(rr, o);
    ldns_rr_set_type(rr, LDNS_RR_TYPE_CNAME);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_ttl(rr, DNS_ZONE_DEFAULT_TTL);
    ldns_rr_push_rdf(rr, t);
    return rr;
}

static void rr_set_owner(ldns_rr *rr, const ldns_rdf *owner)
{
    ldns_rdf *old = ldns_rr_owner(rr), *o = ldns_rdf_clone(owner);
    if (o == NULL)
        return;   /* out of memory: keep the stored owner, same name */
    ldns_rr_set_owner(rr, o);
    ldns_rdf_deep_free(old);
}

static void rr_list_push_or_free(ldns_rr_list *l, ldns_rr *rr)
{
    if (rr != NULL && !ldns_rr_list_push_rr(l, rr))
        ldns_rr_free(rr);
}

static ldns_rr_list *list_of(ldns_rr *rr)
{
    ldns_rr_list *l = ldns_rr_list_new();
    if (l == NULL) {
        ldns_rr_free(rr);
        return NULL;
    }
    rr_list_push_or_free(l, rr);
    return l;
}

static const char *type_text(uint16_t type, char *buf, size_t n)
{
    char *t = ldns_rr_type2str((ldns_rr_type)type);
    if (t == NULL || str_copy(buf, n, t) < 0)
        str_format(buf, n, "TYPE%u", (unsigned)type);
    free(t);
    return buf;
}

/* --- stats and the query log ------------------------------------------------------------ */

static uint32_t stat_hash(const uint8_t *key, size_t n, uint16_t type)
{
    uint32_t h = 2166136261u ^ type;
    for (size_t i = 0; i < n; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

/* The entry for (key, type), created if there is room; UINT32_MAX if not. */
static uint32_t stats_slot(struct dns_server *srv, const uint8_t *key, size_t n, uint16_t type)
{
    uint32_t h = stat_hash(key, n, type) % DNS_STATS_HASH;
    for (size_t probe = 0; probe < DNS_STATS_HASH; probe++, h = (h + 1) % DNS_STATS_HASH) {
        uint32_t idx = srv->stats_hash[h];
        if (idx == 0)
            break;
        struct stat_entry *e = &srv->stats[idx - 1];
        if (e->type == type && e->keylen == n && memcmp(e->key, key, n) == 0)
            return idx - 1;
    }
    if (srv->nstats >= DNS_SERVER_STATS_MAX)
        return UINT32_MAX;
    if (srv->nstats == srv->stats_cap) {
        size_t cap = srv->stats_cap ? srv->stats_cap * 2 : 64;
        struct stat_entry *v = realloc(srv->stats, cap * sizeof *v);
        if (v == NULL)
            return UINT32_MAX;
        srv->stats = v;
        srv->stats_cap = cap;
    }
    struct stat_entry *e = &srv->stats[srv->nstats];
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, n);
    e->keylen = (uint16_t)n;
    e->type = type;
    srv->stats_hash[h] = (uint32_t)++srv->nstats;
    return (uint32_t)(srv->nstats - 1);
}

static struct log_slot *log_begin(struct dns_server *srv, const struct dns_request *r,
                                  const ldns_rdf *qname, uint16_t type, uint16_t id)
{
    struct log_slot *s = &srv->log[srv->log_next];
    srv->log_next = (srv->log_next + 1) % DNS_SERVER_LOG_MAX;
    if (srv->log_count < DNS_SERVER_LOG_MAX)
        srv->log_count++;
    event_base_gettimeofday_cached(srv->base, &s->when);
    memset(&s->from, 0, sizeof s->from);
    memcpy(&s->from, r->peer, r->peerlen <= sizeof s->from ? r->peerlen : sizeof s->from);
    s->qname_len = 0;
    if (qname != NULL) {
        size_t n = ldns_rdf_size(qname);
        if (n > sizeof s->qname)
            n = sizeof s->qname;
        memcpy(s->qname, ldns_rdf_data(qname), n);
        s->qname_len = (uint16_t)n;
    }
    s->type = type;
    s->id = id;
    s->transport = (uint8_t)r->transport;
    s->rcode = -1;
    s->malformed = 0;
    s->quirks = 0;
    s->delay_ms = 0;
    return s;
}

static void log_slot_export(const struct log_slot *s, struct dns_query_log_entry *e)
{
    memset(e, 0, sizeof *e);
    e->when = s->when;
    if (netaddr_format((const struct sockaddr *)&s->from, e->from, sizeof e->from) < 0)
        str_copy(e->from, sizeof e->from, "?");
    e->transport = (enum dns_transport)s->transport;
    e->id = s->id;
    if (s->qname_len > 0)
        dns_name_format_key(s->qname, s->qname_len, e->name, sizeof e->name);
    type_text(s->type, e->type, sizeof e->type);
    e->rcode = s->rcode;
    e->malformed = s->malformed;
    e->delay_ms = s->delay_ms;
    dns_quirk_bits_format(s->quirks, e->quirks, sizeof e->quirks);
}

static void log_done(struct dns_server *srv, const struct log_slot *s)
{
    if (srv->observer == NULL)
        return;
    struct dns_query_log_entry e;
    log_slot_export(s, &e);
    srv->observer(srv->observer_ctx, &e);
}

/* --- sending ---------------------------------------------------------------------------- */

static void conn_free(struct dns_tcp_conn *c, int reset);

static void send_now(struct dns_server *srv, enum dns_transport transport,
                     struct dns_tcp_conn *conn, const struct sockaddr *peer, socklen_t peerlen,
                     const uint8_t *wire, size_t len)
{
    if (transport == DNS_TRANSPORT_UDP) {
        struct udp_batch *b = srv->batch;
        if (b != NULL && b->active && len <= DNS_UDP_BATCH_SLOT && b->nout < DNS_UDP_BATCH
            && peerlen <= sizeof b->out_peer[0]) {
            unsigned k = b->nout++;
            memcpy(b->out_buf[k], wire, len);
            memcpy(&b->out_peer[k], peer, peerlen);
            b->out_iov[k].iov_base = b->out_buf[k];
            b->out_iov[k].iov_len = len;
            memset(&b->out[k], 0, sizeof b->out[k]);
            b->out[k].msg_hdr.msg_name = &b->out_peer[k];
            b->out[k].msg_hdr.msg_namelen = peerlen;
            b->out[k].msg_hdr.msg_iov = &b->out_iov[k];
            b->out[k].msg_hdr.msg_iovlen = 1;
            return;
        }
        ssize_t n;
        do
            n = sendto(srv->udp_fd, wire, len, 0, peer, peerlen);
        while (n < 0 && errno == EINTR);
        /* A full socket buffer loses the datagram, as UDP may; the client retries. */
        if (n == (ssize_t)len)
            pcap_udp_packet(srv->pcap, (struct sockaddr *)&srv->addr, peer, wire, len);
        return;
    }
    uint8_t prefix[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    if (evbuffer_add(out, prefix, 2) < 0 || evbuffer_add(out, wire, len) < 0)
        return;
    if (conn->flow != NULL) {
        uint8_t *both = malloc(len + 2);
        if (both != NULL) {
            memcpy(both, prefix, 2);
            memcpy(both + 2, wire, len);
            pcap_tcp_flow_data(conn->flow, PCAP_FROM_SERVER, both, len + 2);
            free(both);
        }
    }
}

static void pending_free(struct dns_pending *p)
{
    struct dns_server *srv = p->srv;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        srv->pendings = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    if (p->timer != NULL)
        event_free(p->timer);
    free(p);
}

static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
    struct dns_pending *p = arg;
    (void)fd;
    (void)what;
    send_now(p->srv, p->conn != NULL ? DNS_TRANSPORT_TCP : DNS_TRANSPORT_UDP, p->conn,
             (struct sockaddr *)&p->peer, p->peerlen, p->wire, p->len);
    pending_free(p);
}

static void send_later(struct dns_request *r, const uint8_t *wire, size_t len,
                       unsigned long long delay_ms)
{
    struct dns_server *srv = r->srv;
    struct dns_pending *p = calloc(1, sizeof *p + len);
    if (p == NULL)
        return;
    p->srv = srv;
    p->conn = r->conn;
    memcpy(&p->peer, r->peer, r->peerlen <= sizeof p->peer ? r->peerlen : sizeof p->peer);
    p->peerlen = r->peerlen;
    p->len = len;
    memcpy(p->wire, wire, len);
    p->timer = evtimer_new(srv->base, pending_fire, p);
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000};
    p->next = srv->pendings;
    if (srv->pendings != NULL)
        srv->pendings->prev = p;
    srv->pendings = p;
    if (p->timer == NULL || evtimer_add(p->timer, &tv) < 0)
        pending_free(p);
}

/* --- the view: records as this query sees them ------------------------------------------ */

static void effective_for(const struct dns_server *srv, const ldns_rdf *name,
                          struct dns_quirk_set *out)
{
    dns_quirk_table_effective(srv->quirks, name, out);
}

/* 1 if zone MX records of owner (NULL: of any name) name target. */
static int owner_has_mx_to(const struct dns_server *srv, const ldns_rdf *owner,
                           const ldns_rdf *target)
{
    if (owner == NULL)
        return dns_zone_is_mx_target(srv->zone, target);
    const ldns_rr_list *l = dns_zone_find(srv->zone, owner);
    for (size_t i = 0; l != NULL && i < ldns_rr_list_rr_count(l); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(l, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_MX && ldns_rr_rd_count(rr) == 2
            && ldns_dname_compare(ldns_rr_rdf(rr, 1), target) == 0)
            return 1;
    }
    return 0;
}

/* 1 if some name with the given quirk has an MX pointing at target. */
static int quirked_mx_points_at(const struct dns_server *srv, enum dns_quirk_kind kind,
                                const ldns_rdf *target)
{
    if (!(dns_quirk_table_bits_in_use(srv->quirks) & DNS_QUIRK_BIT(kind)))
        return 0;
    size_t n = dns_quirk_table_count(srv->quirks);
    for (size_t i = 0; i < n; i++) {
        const ldns_rdf *name = NULL;
        const struct dns_quirk_set *s = dns_quirk_table_entry(srv->quirks, i, &name);
        if (s != NULL && (s->active & DNS_QUIRK_BIT(kind)) && owner_has_mx_to(srv, name, target))
            return 1;
    }
    return 0;
}

/* Names the quirks invent: cK.NAME (cname-chain), alias.TARGET (mx-to-cname), the other end
 * of a cname-loop. NULL if name is not one of them. */
static ldns_rr_list *view_records(struct dns_request *r, const ldns_rdf *name, int is_qname,
                                  int *exists);

static ldns_rr_list *view_synthetic(struct dns_request *r, const ldns_rdf *name, int *exists)
{
    struct dns_server *srv = r->srv;
    uint32_t bits = dns_quirk_table_bits_in_use(srv->quirks);
    const uint8_t *d = ldns_rdf_data(name);
    size_t llen = d[0];
    ldns_rr_list *out = NULL;

    if (bits & DNS_QUIRK_BIT(DNS_QUIRK_CNAME_LOOP)) {
        /* An explicit other end ("cname-loop b.test") points back at its owner. */
        size_t n = dns_quirk_table_count(srv->quirks);
        for (size_t i = 0; i < n; i++) {
            const ldns_rdf *owner = NULL;
            const struct dns_quirk_set *s = dns_quirk_table_entry(srv->quirks, i, &owner);
            if (owner != NULL && s != NULL && (s->active & DNS_QUIRK_BIT(DNS_QUIRK_CNAME_LOOP))
                && s->loop_target != NULL && ldns_dname_compare(s->loop_target, name) == 0) {
                *exists = 1;
                return list_of(rr_cname(name, owner));
            }
        }
    }
    if (llen == 0)
        return NULL;
    ldns_rdf *parent = ldns_dname_left_chop(name);
    if (parent == NULL)
        return NULL;
    struct dns_quirk_set pe;
    effective_for(srv, parent, &pe);
    char label[64];
    memcpy(label, d + 1, llen);
    label[llen] = '\0';
    str_lower(label);

    if ((pe.active & DNS_QUIRK_BIT(DNS_QUIRK_CNAME_CHAIN)) && label[0] == 'c' && llen >= 2
        && llen <= 3 && strspn(label + 1, "0123456789") == llen - 1) {
        unsigned k = (unsigned)atoi(label + 1);
        if (k >= 1 && k <= pe.chain_length) {
            *exists = 1;
            if (k < pe.chain_length) {
                char next[8];
                str_format(next, sizeof next, "c%u", k + 1);
                ldns_rdf *t = name_with_label(next, parent);
                out = t != NULL ? list_of(rr_cname(name, t)) : NULL;
                ldns_rdf_deep_free(t);
            } else {
                /* The end of the chain holds the parent's own records. */
                int pex = 0;
                out = view_records(r, parent, -1, &pex);
                for (size_t i = 0; out != NULL && i < ldns_rr_list_rr_count(out); i++)
                    rr_set_owner(ldns_rr_list_rr(out, i), name);
                if (out == NULL || ldns_rr_list_rr_count(out) == 0)
                    *exists = pex;
            }
        }
    } else if ((bits & DNS_QUIRK_BIT(DNS_QUIRK_MX_TO_CNAME)) && strcmp(label, "alias") == 0
               && dns_zone_find(srv->zone, parent) != NULL
               && quirked_mx_points_at(srv, DNS_QUIRK_MX_TO_CNAME, parent)) {
        *exists = 1;
        out = list_of(rr_cname(name, parent));
    } else if ((pe.active & DNS_QUIRK_BIT(DNS_QUIRK_CNAME_LOOP)) && pe.loop_target == NULL
               && strcmp(label, "loop") == 0) {
        *exists = 1;
        out = list_of(rr_cname(name, parent));
    }
    ldns_rdf_deep_free(parent);
    return out;
}

/* The records at name for this query, cloned (the caller owns the list). is_qname: 1 for
 * the question's own name (flap applies), 0 for a name reached through a CNAME, -1 for the
 * end of a cname-chain (the name's records without chain or loop). */
static ldns_rr_list *view_records(struct dns_request *r, const ldns_rdf *name, int is_qname,
                                  int *exists)
{
    struct dns_server *srv = r->srv;
    uint32_t bits = dns_quirk_table_bits_in_use(srv->quirks);
    struct dns_quirk_set eff;
    ldns_rr_list *out;

    *exists = 0;
    if (is_qname >= 0 && (bits & (DNS_QUIRK_BIT(DNS_QUIRK_CNAME_CHAIN)
                                  | DNS_QUIRK_BIT(DNS_QUIRK_CNAME_LOOP)
                                  | DNS_QUIRK_BIT(DNS_QUIRK_MX_TO_CNAME)))) {
        out = view_synthetic(r, name, exists);
        if (out != NULL)
            return out;
    }
    if (is_qname == 1)
        eff = r->eff;
    else
        effective_for(srv, name, &eff);

    if (is_qname >= 0 && (eff.active & DNS_QUIRK_BIT(DNS_QUIRK_CNAME_CHAIN))) {
        ldns_rdf *t = name_with_label("c1", name);
        *exists = 1;
        out = t != NULL ? list_of(rr_cname(name, t)) : NULL;
        ldns_rdf_deep_free(t);
        return out;
    }
    if (is_qname >= 0 && (eff.active & DNS_QUIRK_BIT(DNS_QUIRK_CNAME_LOOP))) {
        ldns_rdf *t = eff.loop_target != NULL ? ldns_rdf_clone(eff.loop_target)
                                              : name_with_label("loop", name);
        *exists = 1;
        out = t != NULL ? list_of(rr_cname(name, t)) : NULL;
        ldns_rdf_deep_free(t);
        return out;
    }

    out = ldns_rr_list_new();
    if (out == NULL)
        return NULL;
    const ldns_rr_list *zl = dns_zone_find(srv->zone, name);
    const ldns_rr_list *alt = is_qname == 1 && r->flap_alternate ? eff.flap_records : NULL;
    for (size_t i = 0; zl != NULL && i < ldns_rr_list_rr_count(zl); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(zl, i);
        ldns_rr_type t = ldns_rr_get_type(rr);
        int replaced = 0;
        for (size_t j = 0; alt != NULL && j < ldns_rr_list_rr_count(alt); j++)
            if (ldns_rr_get_type(ldns_rr_list_rr(alt, j)) == t)
                replaced = 1;
        if (!replaced)
            rr_list_push_or_free(out, ldns_rr_clone(rr));
    }
    for (size_t j = 0; alt != NULL && j < ldns_rr_list_rr_count(alt); j++)
        rr_list_push_or_free(out, ldns_rr_clone(ldns_rr_list_rr(alt, j)));

    if (eff.active & DNS_QUIRK_BIT(DNS_QUIRK_NULL_MX)) {
        ldns_rr_list *keep = ldns_rr_list_new();
        ldns_rr *nullmx = NULL;
        ldns_rdf *pref = ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0);
        ldns_rdf *root = ldns_dname_new_frm_str(".");
        if (keep != NULL) {
            for (size_t i = 0; i < ldns_rr_list_rr_count(out); i++) {
                ldns_rr *rr = ldns_rr_list_rr(out, i);
                if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_MX)
                    ldns_rr_free(rr);
                else
                    rr_list_push_or_free(keep, rr);
            }
            ldns_rr_list_free(out);
            out = keep;
        }
        if (pref != NULL && root != NULL && (nullmx = ldns_rr_new()) != NULL) {
            ldns_rr_set_owner(nullmx, ldns_rdf_clone(name));
            ldns_rr_set_type(nullmx, LDNS_RR_TYPE_MX);
            ldns_rr_set_class(nullmx, LDNS_RR_CLASS_IN);
            ldns_rr_set_ttl(nullmx, DNS_ZONE_DEFAULT_TTL);
            ldns_rr_push_rdf(nullmx, pref);
            ldns_rr_push_rdf(nullmx, root);
            pref = root = NULL;
            rr_list_push_or_free(out, nullmx);
        }
        ldns_rdf_deep_free(pref);
        ldns_rdf_deep_free(root);
    }
    if (eff.active & DNS_QUIRK_BIT(DNS_QUIRK_MX_TO_CNAME)) {
        for (size_t i = 0; i < ldns_rr_list_rr_count(out); i++) {
            ldns_rr *rr = ldns_rr_list_rr(out, i);
            if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ldns_rr_rd_count(rr) != 2
                || ldns_dname_label_count(ldns_rr_rdf(rr, 1)) == 0)
                continue;
            ldns_rdf *alias = name_with_label("alias", ldns_rr_rdf(rr, 1));
            if (alias != NULL)
                ldns_rdf_deep_free(ldns_rr_set_rdf(rr, alias, 1));
        }
    }
    if ((bits & DNS_QUIRK_BIT(DNS_QUIRK_MX_NO_ADDRESS))
        && quirked_mx_points_at(srv, DNS_QUIRK_MX_NO_ADDRESS, name)) {
        ldns_rr_list *keep = ldns_rr_list_new();
        if (keep != NULL) {
            for (size_t i = 0; i < ldns_rr_list_rr_count(out); i++) {
                ldns_rr *rr = ldns_rr_list_rr(out, i);
                ldns_rr_type t = ldns_rr_get_type(rr);
                if (t == LDNS_RR_TYPE_A || t == LDNS_RR_TYPE_AAAA)
                    ldns_rr_free(rr);
                else
                    rr_list_push_or_free(keep, rr);
            }
            ldns_rr_list_free(out);
            out = keep;
        }
        *exists = 1;   /* the target exists; it just has no address */
    }
    if (ldns_rr_list_rr_count(out) > 0)
        *exists = 1;
    else if (!*exists)
        *exists = dns_zone_name_exists(srv->zone, name);
    return out;
}

/* --- building answers ------------------------------------------------------------------- */

static ldns_pkt *response_new(const struct dns_request *r, ldns_pkt_rcode rcode)
{
    ldns_pkt *p = ldns_pkt_new();
    if (p == NULL)
        return NULL;
    const ldns_pkt *q = r->query;
    ldns_pkt_set_id(p, ldns_pkt_id(q));
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_opcode(p, ldns_pkt_get_opcode(q));
    ldns_pkt_set_aa(p, true);
    ldns_pkt_set_rd(p, ldns_pkt_rd(q));
    ldns_pkt_set_cd(p, ldns_pkt_cd(q));
    ldns_pkt_set_ra(p, true);
    ldns_pkt_set_rcode(p, (uint8_t)rcode);
    if (ldns_pkt_qdcount(q) == 1) {
        ldns_rr *qr = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0));
        if (qr == NULL || !ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, qr)) {
            ldns_rr_free(qr);
            ldns_pkt_free(p);
            return NULL;
        }
    }
    if (ldns_pkt_edns(q))
        ldns_pkt_set_edns_udp_size(p, DNS_EDNS_SIZE_SENT);
    return p;
}

static void push_soa(struct dns_request *r, ldns_pkt *p, const ldns_rdf *name)
{
    const ldns_rr *soa = dns_zone_find_soa(r->srv->zone, name);
    ldns_rr *c = soa != NULL ? ldns_rr_clone(soa) : NULL;
    if (c != NULL && !ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, c))
        ldns_rr_free(c);
}

static int name_in(ldns_rdf *const *v, size_t n, const ldns_rdf *name)
{
    for (size_t i = 0; i < n; i++)
        if (ldns_dname_compare(v[i], name) == 0)
            return 1;
    return 0;
}

/* A and AAAA of MX and NS targets, unless a quirk is meant to make the resolver ask. */
static void add_additional(struct dns_request *r, ldns_pkt *p)
{
    struct dns_server *srv = r->srv;
    ldns_rr_list *ans = ldns_pkt_answer(p);
    size_t n = ldns_rr_list_rr_count(ans);
    for (size_t i = 0; i < n; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ans, i);
        const ldns_rdf *target;
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_MX && ldns_rr_rd_count(rr) == 2)
            target = ldns_rr_rdf(rr, 1);
        else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NS && ldns_rr_rd_count(rr) == 1)
            target = ldns_rr_rdf(rr, 0);
        else
            continue;
        if (ldns_dname_label_count(target) == 0)
            continue;
        if (dns_quirk_table_bits_in_use(srv->quirks) != 0) {
            struct dns_quirk_set oe;
            effective_for(srv, ldns_rr_owner(rr), &oe);
            if ((oe.active & DNS_QUIRK_BIT(DNS_QUIRK_MX_NO_ADDRESS))
                || dns_quirk_table_find(srv->quirks, target) != NULL
                || quirked_mx_points_at(srv, DNS_QUIRK_MX_NO_ADDRESS, target))
                continue;
        }
        const ldns_rr_list *zl = dns_zone_find(srv->zone, target);
        for (size_t j = 0; zl != NULL && j < ldns_rr_list_rr_count(zl); j++) {
            const ldns_rr *a = ldns_rr_list_rr(zl, j);
            ldns_rr_type t = ldns_rr_get_type(a);
            if ((t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA)
                || ldns_pkt_rr(p, LDNS_SECTION_ADDITIONAL, a))
                continue;
            ldns_rr *c = ldns_rr_clone(a);
            if (c != NULL && !ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, c))
                ldns_rr_free(c);
        }
    }
}

/* The authoritative answer: the CNAME chain, then the records of the type asked for. */
static void resolve(struct dns_request *r, ldns_pkt *p)
{
    ldns_rdf *visited[DNS_CNAME_HOPS_MAX + 1];
    size_t nvisited = 0;
    ldns_rdf *name = ldns_rdf_clone(r->qname);
    int any = r->qtype == LDNS_RR_TYPE_ANY;

    for (int hop = 0; name != NULL && hop <= DNS_CNAME_HOPS_MAX; hop++) {
        int exists = 0;
        ldns_rr_list *recs = view_records(r, name, hop == 0, &exists);
        if (recs == NULL)
            break;
        size_t n = ldns_rr_list_rr_count(recs);
        ldns_rr *cname = NULL;
        if (r->qtype != LDNS_RR_TYPE_CNAME && !any)
            for (size_t i = 0; i < n && cname == NULL; i++)
                if (ldns_rr_get_type(ldns_rr_list_rr(recs, i)) == LDNS_RR_TYPE_CNAME)
                    cname = ldns_rr_list_rr(recs, i);
        if (cname != NULL) {
            ldns_rdf *target = ldns_rdf_clone(ldns_rr_rdf(cname, 0));
            for (size_t i = 0; i < n; i++) {
                ldns_rr *rr = ldns_rr_list_rr(recs, i);
                if (rr != cname)
                    ldns_rr_free(rr);
            }
            ldns_rr_list_free(recs);
            if (hop == 0)
                rr_set_owner(cname, r->qname);
            if (!ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, cname))
                ldns_rr_free(cname);
            visited[nvisited++] = name;
            name = target;
            /* A loop ends where it closes: the answer shows it, as BIND's does. */
            if (name == NULL || name_in(visited, nvisited, name) || hop == DNS_CNAME_HOPS_MAX)
                break;
            continue;
        }
        size_t added = 0;
        for (size_t i = 0; i < n; i++) {
            ldns_rr *rr = ldns_rr_list_rr(recs, i);
            if ((any || ldns_rr_get_type(rr) == r->qtype)
                && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN) {
                if (hop == 0)
                    rr_set_owner(rr, r->qname);
                if (ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr)) {
                    added++;
                    continue;
                }
            }
            ldns_rr_free(rr);
        }
        ldns_rr_list_free(recs);
        if (added == 0) {
            if (!exists)
                ldns_pkt_set_rcode(p, LDNS_RCODE_NXDOMAIN);
            push_soa(r, p, name);
        }
        break;
    }
    ldns_rdf_deep_free(name);
    for (size_t i = 0; i < nvisited; i++)
        ldns_rdf_deep_free(visited[i]);
    add_additional(r, p);
}

static void pkt_for_each_rr(ldns_pkt *p, void (*fn)(struct dns_server *, ldns_rr *),
                            struct dns_server *srv)
{
    ldns_rr_list *lists[3] = {ldns_pkt_answer(p), ldns_pkt_authority(p),
                              ldns_pkt_additional(p)};
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; lists[s] != NULL && i < ldns_rr_list_rr_count(lists[s]); i++)
            fn(srv, ldns_rr_list_rr(lists[s], i));
}

static void rr_ttl_zero(struct dns_server *srv, ldns_rr *rr)
{
    (void)srv;
    ldns_rr_set_ttl(rr, 0);
}

static void rdf_random_case(struct dns_server *srv, ldns_rdf *d)
{
    uint8_t *b = ldns_rdf_data(d);
    size_t n = ldns_rdf_size(d);
    uint64_t bits = rng_next(srv);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i] | 0x20;
        if (c >= 'a' && c <= 'z') {
            b[i] = (bits & 1) ? (uint8_t)(c - 0x20) : c;
            bits >>= 1;
            if (bits <= 1)
                bits = rng_next(srv);
        }
    }
}

static void rr_random_case(struct dns_server *srv, ldns_rr *rr)
{
    rdf_random_case(srv, ldns_rr_owner(rr));
}

/* Questions echo with letters in random case, but never the exact case asked. */
static void question_random_case(struct dns_request *r, ldns_pkt *p)
{
    ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
    if (q == NULL)
        return;
    ldns_rdf *d = ldns_rr_owner(q);
    rdf_random_case(r->srv, d);
    if (ldns_rdf_size(d) != ldns_rdf_size(r->qname)
        || memcmp(ldns_rdf_data(d), ldns_rdf_data(r->qname), ldns_rdf_size(d)) != 0)
        return;
    uint8_t *b = ldns_rdf_data(d);
    for (size_t i = 0; i < ldns_rdf_size(d); i++) {
        uint8_t c = b[i] | 0x20;
        if (c >= 'a' && c <= 'z') {
            b[i] ^= 0x20;
            return;
        }
    }
}

/* Adds TXT records for qname to the additional section until the message is over target. */
static void pad_oversize(struct dns_request *r, ldns_pkt *p, size_t target)
{
    char text[256 + 64];
    for (int round = 0; round < 400; round++) {
        uint8_t *w = NULL;
        size_t len = 0;
        if (ldns_pkt2wire(&w, p, &len) != LDNS_STATUS_OK)
            return;
        free(w);
        if (len > target)
            return;
        size_t need = (target - len) / 230 + 1;
        for (size_t i = 0; i < need; i++) {
            ldns_rr *rr = NULL;
            char owner[DNS_NAME_TEXT_MAX];
            dns_name_format(r->qname, owner, sizeof owner);
            str_format(text, sizeof text, "%s TXT \"padding-%03d-%0200d\"", owner, round,
                       (int)i);
            if (dns_record_parse(&rr, text, NULL, DNS_ZONE_DEFAULT_TTL, NULL) < 0)
                return;
            if (!ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, rr)) {
                ldns_rr_free(rr);
                return;
            }
        }
    }
}

/* The largest UDP answer the client said it accepts. */
static size_t udp_limit(const ldns_pkt *q)
{
    size_t s = ldns_pkt_edns(q) ? ldns_pkt_edns_udp_size(q) : DNS_UDP_PLAIN_LIMIT;
    return s < DNS_UDP_PLAIN_LIMIT ? DNS_UDP_PLAIN_LIMIT : s;
}

/* Encodes p (and the truncated form if needed) and sends or schedules it. Consumes p. */
static void cache_store(struct dns_server *srv, const struct dns_request *r, const uint8_t *a,
                        size_t alen);

static void finish(struct dns_request *r, ldns_pkt *p, uint32_t applied)
{
    struct dns_server *srv = r->srv;
    const struct dns_quirk_set *e = &r->eff;
    const uint8_t *wire = NULL;
    uint8_t *owned = NULL;     /* wire when it is not in srv->wire_buf */
    size_t len = 0;
    int udp = r->transport == DNS_TRANSPORT_UDP;

    if (e->active & DNS_QUIRK_BIT(DNS_QUIRK_TTL0))
        pkt_for_each_rr(p, rr_ttl_zero, srv), applied |= DNS_QUIRK_BIT(DNS_QUIRK_TTL0);
    if (e->active & DNS_QUIRK_BIT(DNS_QUIRK_CASE_0X20)) {
        pkt_for_each_rr(p, rr_random_case, srv);
        question_random_case(r, p);
        applied |= DNS_QUIRK_BIT(DNS_QUIRK_CASE_0X20);
    }
    if (e->active & DNS_QUIRK_BIT(DNS_QUIRK_WRONG_QUESTION)) {
        ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        ldns_rdf *other = e->wrong_question != NULL
                              ? ldns_rdf_clone(e->wrong_question)
                              : ldns_dname_new_frm_str("wrong-question.invalid.");
        if (q != NULL && other != NULL) {
            ldns_rdf *old = ldns_rr_owner(q);
            ldns_rr_set_owner(q, other);
            ldns_rdf_deep_free(old);
            other = NULL;
        }
        ldns_rdf_deep_free(other);
        applied |= DNS_QUIRK_BIT(DNS_QUIRK_WRONG_QUESTION);
    }
    if (e->active & DNS_QUIRK_BIT(DNS_QUIRK_WRONG_ID)) {
        ldns_pkt_set_id(p, ldns_pkt_id(p) ^ 0x5a5a);
        applied |= DNS_QUIRK_BIT(DNS_QUIRK_WRONG_ID);
    }
    if (udp && (e->active & DNS_QUIRK_BIT(DNS_QUIRK_OVERSIZE))) {
        size_t target = udp_limit(r->query) + 1;
        if (e->oversize_bytes > target)
            target = e->oversize_bytes;
        pad_oversize(r, p, target);
        applied |= DNS_QUIRK_BIT(DNS_QUIRK_OVERSIZE);
    }
    /* One reused buffer: ldns_pkt2wire would allocate (and free) 64 KiB per answer. */
    ldns_buffer_clear(srv->wire_buf);
    if (ldns_pkt2buffer_wire(srv->wire_buf, p) != LDNS_STATUS_OK) {
        ldns_pkt_free(p);
        return;
    }
    wire = ldns_buffer_begin(srv->wire_buf);
    len = ldns_buffer_position(srv->wire_buf);
    int too_big = udp && len > udp_limit(r->query)
                  && !(e->active & DNS_QUIRK_BIT(DNS_QUIRK_OVERSIZE));
    int tc_quirk = udp && (e->active & DNS_QUIRK_BIT(DNS_QUIRK_TRUNCATE));
    if (too_big || tc_quirk) {
        /* RFC 2181 9: an answer that does not fit goes out empty with TC set. */
        ldns_pkt *t = ldns_pkt_new();
        if (t != NULL) {
            ldns_pkt_set_id(t, ldns_pkt_id(p));
            ldns_pkt_set_qr(t, true);
            ldns_pkt_set_aa(t, true);
            ldns_pkt_set_tc(t, true);
            ldns_pkt_set_rd(t, ldns_pkt_rd(p));
            ldns_pkt_set_ra(t, true);
            ldns_pkt_set_opcode(t, ldns_pkt_get_opcode(p));
            ldns_pkt_set_rcode(t, ldns_pkt_get_rcode(p));
            ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
            ldns_rr *qc = q != NULL ? ldns_rr_clone(q) : NULL;
            if (qc != NULL && !ldns_pkt_push_rr(t, LDNS_SECTION_QUESTION, qc))
                ldns_rr_free(qc);
            if (ldns_pkt_edns(p))
                ldns_pkt_set_edns_udp_size(t, DNS_EDNS_SIZE_SENT);
            uint8_t *tw = NULL;
            size_t tl = 0;
            if (ldns_pkt2wire(&tw, t, &tl) == LDNS_STATUS_OK) {
                free(owned);
                wire = owned = tw;
                len = tl;
            }
            ldns_pkt_free(t);
        }
        if (tc_quirk)
            applied |= DNS_QUIRK_BIT(DNS_QUIRK_TRUNCATE);
    }
    r->slot->rcode = (int16_t)ldns_pkt_get_rcode(p);
    ldns_pkt_free(p);
    if (e->active == 0 && applied == 0 && !too_big)
        cache_store(srv, r, wire, len);   /* see handle_query: no quirk bent this answer */

    uint8_t *broken = NULL;
    const uint8_t *out = wire;
    if (e->active & DNS_QUIRK_BIT(DNS_QUIRK_CUT_OFF)) {
        len = dns_malformed_cut_off(wire, len);
        r->slot->malformed = 1;
        applied |= DNS_QUIRK_BIT(DNS_QUIRK_CUT_OFF);
    } else if (e->active & DNS_QUIRK_BIT(DNS_QUIRK_POINTER_LOOP)) {
        size_t cap = r->len + 32;
        size_t n = (broken = malloc(cap)) != NULL
                       ? dns_malformed_pointer_loop(r->wire, r->len, broken, cap) : 0;
        if (n > 0) {
            out = broken;
            len = n;
            r->slot->malformed = 1;
            applied |= DNS_QUIRK_BIT(DNS_QUIRK_POINTER_LOOP);
        }
    }
    unsigned long long delay = (e->active & DNS_QUIRK_BIT(DNS_QUIRK_DELAY)) ? e->delay_ms : 0;
    if (delay > 0)
        applied |= DNS_QUIRK_BIT(DNS_QUIRK_DELAY);
    r->slot->quirks = applied;
    r->slot->delay_ms = delay;
    log_done(srv, r->slot);
    if (delay > 0)
        send_later(r, out, len, delay);
    else
        send_now(srv, r->transport, r->conn, r->peer, r->peerlen, out, len);
    free(owned);
    free(broken);
}

/* --- the answer cache ------------------------------------------------------------------- */

static uint64_t cache_generation(const struct dns_server *srv)
{
    /* Both counters only grow, so their sum changes on every change; +1 keeps 0 = empty. */
    return dns_zone_generation(srv->zone) + dns_quirk_table_generation(srv->quirks)
           + srv->cache_generation + 1;
}

static struct cache_slot *cache_lookup(struct dns_server *srv, const uint8_t *q, size_t len,
                                       enum dns_transport t)
{
    if (len > DNS_CACHE_QUERY_MAX + 2 || len < DNS_HEADER_LEN)
        return NULL;
    uint32_t h = 2166136261u ^ (uint32_t)t;
    for (size_t i = 2; i < len; i++)
        h = (h ^ q[i]) * 16777619u;
    return &srv->cache[h & (DNS_CACHE_SLOTS - 1)];
}

static int cache_hit(struct dns_server *srv, const struct dns_request *r)
{
    struct cache_slot *c =
        srv->cache_off ? NULL : cache_lookup(srv, r->wire, r->len, r->transport);
    if (c == NULL || c->generation != cache_generation(srv) || c->transport != r->transport
        || c->qlen != r->len - 2 || memcmp(c->query, r->wire + 2, c->qlen) != 0)
        return 0;
    uint8_t out[DNS_CACHE_ANSWER_MAX];
    memcpy(out, c->answer, c->alen);
    out[0] = r->wire[0];
    out[1] = r->wire[1];
    struct stat_entry *st = &srv->stats[c->stat_index];
    st->count++;
    struct log_slot *s = log_begin(srv, r, NULL, st->type, (uint16_t)(r->wire[0] << 8 | r->wire[1]));
    /* The question as asked: the cache key holds it byte for byte. */
    size_t qend = dns_malformed_skip_name(r->wire, r->len, DNS_HEADER_LEN);
    if (qend > DNS_HEADER_LEN) {
        s->qname_len = (uint16_t)(qend - DNS_HEADER_LEN);
        memcpy(s->qname, r->wire + DNS_HEADER_LEN, s->qname_len);
    }
    s->rcode = (int16_t)(out[3] & 0x0f);
    log_done(srv, s);
    send_now(srv, r->transport, r->conn, r->peer, r->peerlen, out, c->alen);
    return 1;
}

static void cache_store(struct dns_server *srv, const struct dns_request *r, const uint8_t *a,
                        size_t alen)
{
    struct cache_slot *c =
        srv->cache_off ? NULL : cache_lookup(srv, r->wire, r->len, r->transport);
    if (c == NULL || alen > DNS_CACHE_ANSWER_MAX || r->stat_index == UINT32_MAX)
        return;
    c->generation = cache_generation(srv);
    c->transport = (uint8_t)r->transport;
    c->qlen = (uint16_t)(r->len - 2);
    memcpy(c->query, r->wire + 2, c->qlen);
    c->alen = (uint16_t)alen;
    memcpy(c->answer, a, alen);
    c->stat_index = r->stat_index;
}

/* --- one query -------------------------------------------------------------------------- */

static void answer_error(struct dns_server *srv, const struct dns_request *r, uint16_t id,
                         ldns_pkt_rcode rcode)
{
    ldns_pkt *p = r->query != NULL ? response_new(r, rcode) : ldns_pkt_new();
    uint8_t *w = NULL;
    size_t n = 0;
    if (p == NULL)
        return;
    if (r->query == NULL) {
        ldns_pkt_set_id(p, id);
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_opcode(p, (ldns_pkt_opcode)((r->wire[2] >> 3) & 0x0f));
        ldns_pkt_set_rcode(p, (uint8_t)rcode);
    }
    if (ldns_pkt2wire(&w, p, &n) == LDNS_STATUS_OK)
        send_now(srv, r->transport, r->conn, r->peer, r->peerlen, w, n);
    free(w);
    ldns_pkt_free(p);
}

static void handle_query(struct dns_server *srv, struct dns_request *r)
{
    if (r->len < DNS_HEADER_LEN || (r->wire[2] & 0x80))
        return;   /* too short to answer, or itself an answer */
    uint16_t id = (uint16_t)(r->wire[0] << 8 | r->wire[1]);

    /* Only answers given with no quirk on their question name are ever stored (below), and
     * any change of records or quirks empties the cache, so a hit is always current. */
    if (cache_hit(srv, r))
        return;
    if (ldns_wire2pkt(&r->query, r->wire, r->len) != LDNS_STATUS_OK) {
        r->query = NULL;
        struct log_slot *s = log_begin(srv, r, NULL, 0, id);
        s->rcode = LDNS_RCODE_FORMERR;
        log_done(srv, s);
        answer_error(srv, r, id, LDNS_RCODE_FORMERR);
        return;
    }
    ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(r->query), 0);
    if (ldns_pkt_get_opcode(r->query) != LDNS_PACKET_QUERY || ldns_pkt_qdcount(r->query) != 1
        || qrr == NULL) {
        ldns_pkt_rcode rc = ldns_pkt_get_opcode(r->query) != LDNS_PACKET_QUERY
                                ? LDNS_RCODE_NOTIMPL : LDNS_RCODE_FORMERR;
        struct log_slot *s = log_begin(srv, r, qrr ? ldns_rr_owner(qrr) : NULL,
                                       qrr ? ldns_rr_get_type(qrr) : 0, id);
        s->rcode = (int16_t)rc;
        log_done(srv, s);
        answer_error(srv, r, id, rc);
        goto out;
    }
    r->qname = ldns_rr_owner(qrr);
    r->qtype = ldns_rr_get_type(qrr);

    uint8_t key[DNS_NAME_KEY_MAX];
    size_t keylen = dns_name_key(r->qname, key);
    r->stat_index = stats_slot(srv, key, keylen, (uint16_t)r->qtype);
    struct stat_entry *st = r->stat_index != UINT32_MAX ? &srv->stats[r->stat_index] : NULL;
    if (st != NULL)
        st->count++;
    else
        srv->stats_overflow++;
    r->slot = log_begin(srv, r, r->qname, (uint16_t)r->qtype, id);

    ldns_rr_class qclass = ldns_rr_get_class(qrr);
    if ((qclass != LDNS_RR_CLASS_IN && qclass != LDNS_RR_CLASS_ANY)
        || r->qtype == LDNS_RR_TYPE_AXFR || r->qtype == LDNS_RR_TYPE_IXFR) {
        ldns_pkt_rcode rc = qclass != LDNS_RR_CLASS_IN && qclass != LDNS_RR_CLASS_ANY
                                ? LDNS_RCODE_REFUSED : LDNS_RCODE_NOTIMPL;
        r->slot->rcode = (int16_t)rc;
        log_done(srv, r->slot);
        answer_error(srv, r, id, rc);
        goto out;
    }

    effective_for(srv, r->qname, &r->eff);
    uint32_t active = r->eff.active, applied = 0;
    if (r->transport == DNS_TRANSPORT_TCP && (active & DNS_QUIRK_BIT(DNS_QUIRK_DROP_TCP))) {
        r->conn->drop = 1;
        r->slot->quirks = DNS_QUIRK_BIT(DNS_QUIRK_DROP_TCP);
        log_done(srv, r->slot);
        goto out;
    }
    uint32_t outcome = active & DNS_QUIRK_OUTCOME_BITS;
    if (active & DNS_QUIRK_BIT(DNS_QUIRK_FLAP)) {
        unsigned long turn = st != NULL ? st->flap_turns++ : 0;
        if (turn % 2 == 1) {
            static const uint32_t flap_outcome[] = {
                [DNS_FLAP_NXDOMAIN] = DNS_QUIRK_BIT(DNS_QUIRK_NXDOMAIN),
                [DNS_FLAP_SERVFAIL] = DNS_QUIRK_BIT(DNS_QUIRK_SERVFAIL),
                [DNS_FLAP_REFUSED] = DNS_QUIRK_BIT(DNS_QUIRK_REFUSED),
                [DNS_FLAP_NODATA] = DNS_QUIRK_BIT(DNS_QUIRK_NODATA),
                [DNS_FLAP_TIMEOUT] = DNS_QUIRK_BIT(DNS_QUIRK_TIMEOUT),
                [DNS_FLAP_RECORDS] = 0,
            };
            outcome = flap_outcome[r->eff.flap];
            r->flap_alternate = r->eff.flap == DNS_FLAP_RECORDS;
            applied |= DNS_QUIRK_BIT(DNS_QUIRK_FLAP);
        }
    }
    applied |= outcome;
    if (outcome & DNS_QUIRK_BIT(DNS_QUIRK_TIMEOUT)) {
        r->slot->quirks = applied;
        log_done(srv, r->slot);
        goto out;
    }
    ldns_pkt *p;
    if (outcome & DNS_QUIRK_BIT(DNS_QUIRK_SERVFAIL))
        p = response_new(r, LDNS_RCODE_SERVFAIL);
    else if (outcome & DNS_QUIRK_BIT(DNS_QUIRK_REFUSED))
        p = response_new(r, LDNS_RCODE_REFUSED);
    else if (outcome & DNS_QUIRK_BIT(DNS_QUIRK_RCODE))
        p = response_new(r, (ldns_pkt_rcode)r->eff.rcode);
    else if (outcome & (DNS_QUIRK_BIT(DNS_QUIRK_NXDOMAIN) | DNS_QUIRK_BIT(DNS_QUIRK_NODATA))) {
        p = response_new(r, (outcome & DNS_QUIRK_BIT(DNS_QUIRK_NXDOMAIN)) ? LDNS_RCODE_NXDOMAIN
                                                                          : LDNS_RCODE_NOERROR);
        if (p != NULL)
            push_soa(r, p, r->qname);
    } else {
        p = response_new(r, LDNS_RCODE_NOERROR);
        if (p != NULL)
            resolve(r, p);
        applied |= active & (DNS_QUIRK_BIT(DNS_QUIRK_CNAME_CHAIN)
                             | DNS_QUIRK_BIT(DNS_QUIRK_CNAME_LOOP)
                             | DNS_QUIRK_BIT(DNS_QUIRK_MX_TO_CNAME)
                             | DNS_QUIRK_BIT(DNS_QUIRK_MX_NO_ADDRESS)
                             | DNS_QUIRK_BIT(DNS_QUIRK_NULL_MX));
    }
    if (p == NULL)
        goto out;
    /* finish() stores the answer in the cache when no quirk on this name (nor "*") bent
     * it: then it depends only on the query bytes, the records and the quirk table as it is
     * now — quirks of other names (a CNAME target's, an MX target's) bend it the same way
     * every time, and the stateful or random ones (flap, case-0x20, delay, ...) act on the
     * question's name only. */
    finish(r, p, applied);
out:
    ldns_pkt_free(r->query);
    r->query = NULL;
}

/* --- UDP -------------------------------------------------------------------------------- */

/* Sends the answers collected during a burst; a full socket buffer loses the rest, as UDP
 * may (the clients retry). Each answer that left goes to the capture. */
static void udp_batch_flush(struct dns_server *srv)
{
    struct udp_batch *b = srv->batch;
    unsigned done = 0;
    while (done < b->nout) {
        int n = sendmmsg(srv->udp_fd, b->out + done, b->nout - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (int k = 0; k < n; k++) {
            const struct mmsghdr *m = &b->out[done + (unsigned)k];
            if (m->msg_len == b->out_iov[done + (unsigned)k].iov_len)
                pcap_udp_packet(srv->pcap, (struct sockaddr *)&srv->addr,
                                (struct sockaddr *)m->msg_hdr.msg_name,
                                b->out_buf[done + (unsigned)k], m->msg_len);
        }
        done += (unsigned)n;
    }
    b->nout = 0;
}

static void on_udp_readable(evutil_socket_t fd, short what, void *arg)
{
    struct dns_server *srv = arg;
    struct udp_batch *b = srv->batch;
    (void)what;
    for (int round = 0; round * DNS_UDP_BATCH < DNS_UDP_READS_PER_EVENT; round++) {
        for (unsigned k = 0; k < DNS_UDP_BATCH; k++) {
            b->in_iov[k].iov_base = b->in_buf[k];
            b->in_iov[k].iov_len = sizeof b->in_buf[k];
            memset(&b->in[k], 0, sizeof b->in[k]);
            b->in[k].msg_hdr.msg_name = &b->in_peer[k];
            b->in[k].msg_hdr.msg_namelen = sizeof b->in_peer[k];
            b->in[k].msg_hdr.msg_iov = &b->in_iov[k];
            b->in[k].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, b->in, DNS_UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;   /* EAGAIN, or an ICMP error from an earlier send: nothing to do */
        b->active = 1;
        for (int k = 0; k < n; k++) {
            struct mmsghdr *m = &b->in[k];
            size_t len = m->msg_len;
            pcap_udp_packet(srv->pcap, (struct sockaddr *)&b->in_peer[k],
                            (struct sockaddr *)&srv->addr, b->in_buf[k], len);
            if (m->msg_hdr.msg_flags & MSG_TRUNC)
                continue;   /* larger than any query we answer: dropped, as a server may */
            struct dns_request r = {
                .srv = srv, .transport = DNS_TRANSPORT_UDP,
                .peer = (struct sockaddr *)&b->in_peer[k], .peerlen = m->msg_hdr.msg_namelen,
                .wire = b->in_buf[k], .len = len,
            };
            handle_query(srv, &r);
        }
        b->active = 0;
        udp_batch_flush(srv);
        if (n < DNS_UDP_BATCH)
            return;   /* the socket is drained */
    }
}

/* --- TCP -------------------------------------------------------------------------------- */

static void conn_free(struct dns_tcp_conn *c, int reset)
{
    struct dns_server *srv = c->srv;
    for (struct dns_pending *p = srv->pendings, *next; p != NULL; p = next) {
        next = p->next;
        if (p->conn == c)
            pending_free(p);
    }
    if (reset) {
        /* SO_LINGER 0 turns close() into a RST: what a crashed or filtered server gives. */
        struct linger lg = {1, 0};
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (fd >= 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        pcap_tcp_flow_reset(c->flow, PCAP_FROM_SERVER);
    } else {
        pcap_tcp_flow_close(c->flow, PCAP_FROM_CLIENT);
    }
    bufferevent_free(c->bev);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    free(c);
}

static void on_tcp_readable(struct bufferevent *bev, void *arg)
{
    struct dns_tcp_conn *c = arg;
    struct dns_server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        uint8_t prefix[2];
        if (evbuffer_copyout(in, prefix, 2) < 2)
            return;
        size_t len = (size_t)prefix[0] << 8 | prefix[1];
        if (evbuffer_get_length(in) < len + 2)
            return;
        uint8_t *msg = srv->udp_buf;   /* one query at a time: the UDP buffer is free */
        if (evbuffer_remove(in, msg, len + 2) != (int)(len + 2))
            return;
        pcap_tcp_flow_data(c->flow, PCAP_FROM_CLIENT, msg, len + 2);
        struct dns_request r = {
            .srv = srv, .transport = DNS_TRANSPORT_TCP, .peer = (struct sockaddr *)&c->peer,
            .peerlen = c->peerlen, .conn = c, .wire = msg + 2, .len = len,
        };
        handle_query(srv, &r);
        if (c->drop) {
            conn_free(c, 1);
            return;
        }
    }
}

static void on_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    struct dns_tcp_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_TIMEOUT) {
        pcap_tcp_flow_close(c->flow, PCAP_FROM_SERVER);
        c->flow = NULL;
        conn_free(c, 0);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        conn_free(c, 0);
    }
}

static void on_tcp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    struct dns_server *srv = arg;
    (void)l;
    if (srv->nconns >= DNS_SERVER_TCP_MAX) {
        close(fd);
        return;
    }
    struct dns_tcp_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = srv;
    memcpy(&c->peer, sa, (size_t)salen <= sizeof c->peer ? (size_t)salen : sizeof c->peer);
    c->peerlen = (socklen_t)salen;
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        free(c);
        return;
    }
    c->flow = pcap_tcp_flow_open(srv->pcap, sa, (struct sockaddr *)&srv->addr);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    struct timeval idle = {DNS_SERVER_TCP_IDLE_MS / 1000, (DNS_SERVER_TCP_IDLE_MS % 1000) * 1000};
    bufferevent_setcb(c->bev, on_tcp_readable, NULL, on_tcp_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, DNS_TCP_READ_HIGH_WATER);
    bufferevent_set_timeouts(c->bev, &idle, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* --- life cycle ------------------------------------------------------------------------- */

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

static int socket_bound(int type, struct sockaddr_storage *ss, socklen_t len,
                        struct etrn_err *err, const char *what)
{
    int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set_errno(err, "dns: %s socket", what);
    int one = 1;
    if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        err_set_errno(err, "dns: %s SO_REUSEADDR", what);
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)ss, len) < 0) {
        int saved = errno;
        char text[NETADDR_TEXT_MAX] = "?";
        netaddr_format((struct sockaddr *)ss, text, sizeof text);
        errno = saved;
        err_set_errno(err, "dns: cannot listen on %s (%s)", text, what);
        close(fd);
        errno = saved;   /* the caller retries another port on EADDRINUSE */
        return -1;
    }
    return fd;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* UDP and TCP on the same port; with port 0 the kernel picks one for UDP and TCP follows,
 * retrying a few times in case that port is taken for TCP. */
static int server_bind(struct dns_server *srv, const struct netaddr *a, struct etrn_err *err)
{
    int want = netaddr_port((const struct sockaddr *)&a->ss);
    for (int attempt = 0; attempt < 16; attempt++) {
        struct sockaddr_storage ss = a->ss;
        int ufd = socket_bound(SOCK_DGRAM, &ss, a->len, err, "udp");
        if (ufd < 0)
            return -1;
        socklen_t len = sizeof ss;
        if (getsockname(ufd, (struct sockaddr *)&ss, &len) < 0) {
            err_set_errno(err, "dns: getsockname");
            close(ufd);
            return -1;
        }
        int tfd = socket_bound(SOCK_STREAM, &ss, len, err, "tcp");
        if (tfd < 0) {
            close(ufd);
            if (want == 0 && errno == EADDRINUSE)
                continue;
            return -1;
        }
        if (listen(tfd, 64) < 0) {
            err_set_errno(err, "dns: listen");
            close(ufd);
            close(tfd);
            return -1;
        }
        srv->udp_fd = ufd;
        srv->addr = ss;
        srv->addrlen = len;
        srv->port = netaddr_port((struct sockaddr *)&ss);
        srv->listener = evconnlistener_new(srv->base, on_tcp_accept, srv,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
                                           tfd);
        if (srv->listener == NULL) {
            close(tfd);
            return err_set(err, "dns: cannot listen for TCP");
        }
        return 0;
    }
    return err_set(err, "dns: no port free for both UDP and TCP");
}

int dns_server_new(struct dns_server **out, struct event_base *base, const char *listen_text,
                   struct etrn_err *err)
{
    struct netaddr a;
    *out = NULL;
    if (netaddr_parse(listen_text, -1, &a, err) < 0)
        return err_prefix(err, "dns: %s", listen_text);
    if (!is_loopback((struct sockaddr *)&a.ss))
        return err_set(err, "dns: %s is not a loopback address (the simulator's DNS serves "
                            "127.0.0.0/8 and ::1 only)", listen_text);
    struct dns_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return err_set(err, "dns: out of memory");
    srv->base = base;
    srv->udp_fd = -1;
    srv->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)srv;
    if (srv->rng == 0)
        srv->rng = 0x9e3779b97f4a7c15ULL;
    srv->stats_hash = calloc(DNS_STATS_HASH, sizeof *srv->stats_hash);
    srv->log = calloc(DNS_SERVER_LOG_MAX, sizeof *srv->log);
    srv->cache = calloc(DNS_CACHE_SLOTS, sizeof *srv->cache);
    srv->wire_buf = ldns_buffer_new(DNS_WIRE_BUF_START);
    srv->batch = calloc(1, sizeof *srv->batch);
    if (srv->stats_hash == NULL || srv->log == NULL || srv->cache == NULL
        || srv->wire_buf == NULL || srv->batch == NULL) {
        dns_server_free(srv);
        return err_set(err, "dns: out of memory");
    }
    if (dns_zone_new(&srv->zone, err) < 0 || dns_quirk_table_new(&srv->quirks, err) < 0
        || server_bind(srv, &a, err) < 0) {
        dns_server_free(srv);
        return -1;
    }
    set_port(&a.ss, srv->port);
    netaddr_format((struct sockaddr *)&srv->addr, srv->addr_text, sizeof srv->addr_text);
    srv->udp_ev = event_new(base, srv->udp_fd, EV_READ | EV_PERSIST, on_udp_readable, srv);
    if (srv->udp_ev == NULL || event_add(srv->udp_ev, NULL) < 0) {
        dns_server_free(srv);
        return err_set(err, "dns: cannot watch the UDP socket");
    }
    *out = srv;
    return 0;
}

void dns_server_free(struct dns_server *srv)
{
    if (srv == NULL)
        return;
    while (srv->conns != NULL)
        conn_free(srv->conns, 0);
    while (srv->pendings != NULL)
        pending_free(srv->pendings);
    if (srv->udp_ev != NULL)
        event_free(srv->udp_ev);
    if (srv->listener != NULL)
        evconnlistener_free(srv->listener);
    if (srv->udp_fd >= 0)
        close(srv->udp_fd);
    dns_zone_free(srv->zone);
    dns_quirk_table_free(srv->quirks);
    free(srv->stats);
    free(srv->stats_hash);
    free(srv->log);
    free(srv->cache);
    if (srv->wire_buf != NULL)
        ldns_buffer_free(srv->wire_buf);
    free(srv->batch);
    free(srv);
}

int dns_server_port(const struct dns_server *srv)
{
    return srv->port;
}

const char *dns_server_addr(const struct dns_server *srv)
{
    return srv->addr_text;
}

void dns_server_set_answer_cache(struct dns_server *srv, int on)
{
    srv->cache_off = !on;
    srv->cache_generation++;   /* nothing stored before counts any more */
}

void dns_server_set_capture(struct dns_server *srv, struct pcap_writer *pw)
{
    srv->pcap = pw;
}

void dns_server_set_observer(struct dns_server *srv, dns_server_observer_fn fn, void *ctx)
{
    srv->observer = fn;
    srv->observer_ctx = ctx;
}

/* --- records and quirks ----------------------------------------------------------------- */

int dns_server_add_record(struct dns_server *srv, const char *text, struct etrn_err *err)
{
    if (dns_zone_add_text(srv->zone, text, err) < 0)
        return err_prefix(err, "dns");
    return 0;
}

struct zone_directive {
    char name[DNS_NAME_TEXT_MAX];
    struct dns_quirk q;
};

struct directive_list {
    struct zone_directive *v;
    size_t n;
};

static int on_zone_directive(void *ctx, const char *text, const ldns_rdf *origin,
                             struct etrn_err *err)
{
    struct directive_list *dl = ctx;
    char buf[DNS_ZONE_RECORD_TEXT_MAX];
    char *argv[64];
    int argc = 0;

    if (str_copy(buf, sizeof buf, text) < 0)
        return err_set(err, "directive is too long");
    for (char *p = strtok(buf, " \t"); p != NULL; p = strtok(NULL, " \t")) {
        if (argc == (int)(sizeof argv / sizeof argv[0]))
            return err_set(err, "directive has too many words");
        argv[argc++] = p;
    }
    if (argc == 0 || strcmp(argv[0], "quirk") != 0)
        return err_set(err, "unknown directive ';! %s' (expected ';! quirk NAME QUIRK [ARG]')",
                       argc > 0 ? argv[0] : "");
    if (argc < 3)
        return err_set(err, "';! quirk' needs NAME QUIRK [ARG]");
    if (dl->n >= DNS_DIRECTIVES_MAX)
        return err_set(err, "too many quirk directives (limit %d)", DNS_DIRECTIVES_MAX);
    struct zone_directive *d = &dl->v[dl->n];
    ldns_rdf *owner = NULL;
    if (strcmp(argv[1], "*") == 0) {
        str_copy(d->name, sizeof d->name, "*");
    } else {
        if (dns_name_parse(&owner, argv[1], origin, err) < 0)
            return -1;
        dns_name_format(owner, d->name, sizeof d->name);
    }
    int rc = dns_quirk_parse(&d->q, owner, argv + 2, argc - 2, origin, err);
    ldns_rdf_deep_free(owner);
    if (rc < 0)
        return -1;
    dl->n++;
    return 0;
}

int dns_server_load_zone_file(struct dns_server *srv, const char *path, struct etrn_err *err)
{
    struct directive_list dl = {.v = calloc(DNS_DIRECTIVES_MAX, sizeof *dl.v)};
    if (dl.v == NULL)
        return err_set(err, "dns: out of memory");
    int rc = dns_zone_load_file(srv->zone, path, on_zone_directive, &dl, err);
    for (size_t i = 0; i < dl.n; i++) {
        if (rc == 0 && dns_quirk_table_set(srv->quirks, dl.v[i].name, &dl.v[i].q, NULL, err) < 0)
            rc = err_prefix(err, "%s", path);
        dns_quirk_release(&dl.v[i].q);
    }
    free(dl.v);
    return rc;
}

int dns_server_remove_records(struct dns_server *srv, const char *name, const char *type,
                              struct etrn_err *err)
{
    ldns_rdf *d = NULL;
    ldns_rr_type t = 0;
    if (type != NULL && type[0] != '\0' && (t = ldns_get_rr_type_by_name(type)) == 0)
        return err_set(err, "dns: unknown record type '%s'", type);
    if (dns_name_parse(&d, name, NULL, err) < 0)
        return err_prefix(err, "dns");
    size_t n = dns_zone_remove(srv->zone, d, t);
    ldns_rdf_deep_free(d);
    return (int)n;
}

int dns_server_set_quirk(struct dns_server *srv, const char *name, const char *quirk,
                         struct etrn_err *err)
{
    if (dns_quirk_table_set_text(srv->quirks, name, quirk, NULL, err) < 0)
        return err_prefix(err, "dns-quirk %s", name);
    return 0;
}

int dns_server_clear_quirk(struct dns_server *srv, const char *name, const char *quirk,
                           struct etrn_err *err)
{
    int n = dns_quirk_table_clear(srv->quirks, name, quirk, err);
    return n < 0 ? err_prefix(err, "dns-clear %s", name) : n;
}

static int join_words(char *buf, size_t n, char *const *argv, int argc)
{
    struct strbuf sb;
    strbuf_init(&sb, n - 1);
    int rc = 0;
    for (int i = 0; i < argc && rc == 0; i++)
        rc = strbuf_appendf(&sb, "%s%s", i ? " " : "", argv[i]);
    if (rc == 0)
        rc = str_copy(buf, n, sb.data);
    strbuf_free(&sb);
    return rc;
}

/* One setup line against a zone and a quirk table: the server's own (srv set), or scratch
 * ones that only check it (srv NULL; a dns-zone file is then not read). */
static int line_apply_to(struct dns_server *srv, struct dns_zone *zone,
                         struct dns_quirk_table *quirks, char *const *argv, int argc,
                         struct etrn_err *err)
{
    char text[DNS_ZONE_RECORD_TEXT_MAX];
    if (argc < 1)
        return err_set(err, "dns: empty line");
    const char *verb = argv[0];
    if (strcmp(verb, "dns") == 0) {
        if (argc < 4)
            return err_set(err, "dns needs OWNER TYPE RDATA (e.g. 'dns node.test MX 10 "
                                "mx1.node.test')");
        if (join_words(text, sizeof text, argv + 1, argc - 1) < 0)
            return err_set(err, "dns: record is too long");
        return dns_zone_add_text(zone, text, err) < 0 ? err_prefix(err, "dns") : 0;
    }
    if (strcmp(verb, "dns-quirk") == 0) {
        if (argc < 3)
            return err_set(err, "dns-quirk needs NAME QUIRK [ARG]");
        if (join_words(text, sizeof text, argv + 2, argc - 2) < 0)
            return err_set(err, "dns-quirk: too long");
        if (dns_quirk_table_set_text(quirks, argv[1], text, NULL, err) < 0)
            return err_prefix(err, "dns-quirk %s", argv[1]);
        return 0;
    }
    if (strcmp(verb, "dns-clear") == 0) {
        if (argc < 2 || argc > 3)
            return err_set(err, "dns-clear needs NAME [QUIRK]");
        if (dns_quirk_table_clear(quirks, argv[1], argc == 3 ? argv[2] : NULL, err) < 0)
            return err_prefix(err, "dns-clear %s", argv[1]);
        return 0;
    }
    if (strcmp(verb, "dns-zone") == 0) {
        if (argc != 2)
            return err_set(err, "dns-zone needs PATH");
        return srv != NULL ? dns_server_load_zone_file(srv, argv[1], err) : 0;
    }
    return err_set(err, "unknown DNS line '%s' (expected dns, dns-quirk, dns-clear, dns-zone)",
                   verb);
}

int dns_server_apply(struct dns_server *srv, char *const *argv, int argc, struct etrn_err *err)
{
    return line_apply_to(srv, srv->zone, srv->quirks, argv, argc, err);
}

int dns_server_check_line(char *const *argv, int argc, struct etrn_err *err)
{
    struct dns_zone *zone = NULL;
    struct dns_quirk_table *quirks = NULL;
    int rc = -1;
    if (dns_zone_new(&zone, err) == 0 && dns_quirk_table_new(&quirks, err) == 0)
        rc = line_apply_to(NULL, zone, quirks, argv, argc, err);
    dns_quirk_table_free(quirks);
    dns_zone_free(zone);
    return rc;
}

/* --- what the server saw ---------------------------------------------------------------- */

size_t dns_server_stats(const struct dns_server *srv, struct dns_query_stat *out, size_t max)
{
    for (size_t i = 0; i < srv->nstats && i < max; i++) {
        const struct stat_entry *e = &srv->stats[i];
        dns_name_format_key(e->key, e->keylen, out[i].name, sizeof out[i].name);
        type_text(e->type, out[i].type, sizeof out[i].type);
        out[i].count = e->count;
    }
    return srv->nstats;
}

unsigned long dns_server_query_count(const struct dns_server *srv, const char *name,
                                     const char *type)
{
    ldns_rdf *d = NULL;
    ldns_rr_type t = 0;
    if (type != NULL && (t = ldns_get_rr_type_by_name(type)) == 0)
        return 0;
    if (dns_name_parse(&d, name, NULL, NULL) < 0)
        return 0;
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t n = dns_name_key(d, key);
    ldns_rdf_deep_free(d);
    unsigned long total = 0;
    for (size_t i = 0; i < srv->nstats; i++) {
        const struct stat_entry *e = &srv->stats[i];
        if (e->keylen == n && memcmp(e->key, key, n) == 0 && (t == 0 || e->type == t))
            total += e->count;
    }
    return total;
}

void dns_server_stats_reset(struct dns_server *srv)
{
    srv->nstats = 0;
    srv->stats_overflow = 0;
    memset(srv->stats_hash, 0, DNS_STATS_HASH * sizeof *srv->stats_hash);
    srv->log_next = srv->log_count = 0;
    srv->cache_generation++;   /* cached answers point at stats entries */
}

size_t dns_server_query_log(const struct dns_server *srv, struct dns_query_log_entry *out,
                            size_t max)
{
    size_t n = srv->log_count < max ? srv->log_count : max;
    size_t start = (srv->log_next + DNS_SERVER_LOG_MAX - n) % DNS_SERVER_LOG_MAX;
    for (size_t i = 0; i < n; i++)
        log_slot_export(&srv->log[(start + i) % DNS_SERVER_LOG_MAX], &out[i]);
    return n;
}

int dns_query_log_format(const struct dns_query_log_entry *e, char *buf, size_t n)
{
    struct tm tm;
    time_t t = e->when.tv_sec;
    char rc[32];
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    if (e->rcode < 0) {
        str_copy(rc, sizeof rc, "no answer");
    } else {
        char *s = ldns_pkt_rcode2str((ldns_pkt_rcode)e->rcode);
        if (s == NULL || str_copy(rc, sizeof rc, s) < 0)
            str_format(rc, sizeof rc, "RCODE%d", e->rcode);
        free(s);
    }
    return str_format(buf, n, "%02d:%02d:%02d.%03ld %s %s id=%u %s %s -> %s%s%s%s%s",
                      tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(e->when.tv_usec / 1000),
                      e->transport == DNS_TRANSPORT_TCP ? "tcp" : "udp", e->from,
                      (unsigned)e->id, e->name[0] ? e->name : "?", e->type, rc,
                      e->malformed ? " (malformed)" : "", e->quirks[0] ? " [" : "", e->quirks,
                      e->quirks[0] ? "]" : "");
}
