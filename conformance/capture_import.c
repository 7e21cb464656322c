/* capture_import.c — reads pcap/pcapng captures through libpcap, decodes the link, IP and
 * TCP/UDP layers, and reassembles every TCP stream (both directions) for etrncheck import.
 *
 *   struct capture cap;
 *   if (capture_import_file(&cap, "field.pcap", NULL, &err) < 0) die(err.msg);
 *   ... cap.streams[i].to_server.data ... cap.notes[] ...; capture_free(&cap);
 *
 * Guarantees: every length read from the file is checked against what was captured before
 * it is used; memory is bounded by the CAPTURE_*_MAX limits; a damaged or odd file gives a
 * one-line message naming it (fatal) or a note (the import goes on). Never prints. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcap/pcap.h>

#include "capture_import.h"
#include "netaddr.h"
#include "strbuf.h"

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif
#ifndef DLT_IPV4
#define DLT_IPV4 228
#endif
#ifndef DLT_IPV6
#define DLT_IPV6 229
#endif

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

struct capture_segment {
    uint32_t seq;
    int64_t offset;               /* relative to the direction's first sequence number */
    size_t order;                 /* arrival order, so the first copy wins */
    unsigned char *data;
    size_t len;
};

/* ---- notes ------------------------------------------------------------------------------ */

static void capture_note(struct capture *cap, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void capture_note(struct capture *cap, const char *fmt, ...)
{
    if (cap->nnotes >= CAPTURE_NOTES_MAX)
        return;
    if (cap->notes == NULL) {
        cap->notes = calloc(CAPTURE_NOTES_MAX, sizeof *cap->notes);
        if (cap->notes == NULL)
            return;
    }
    char body[CAPTURE_NOTE_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    char *line = malloc(CAPTURE_NOTE_LEN + 240);
    if (line == NULL)
        return;
    if (cap->nnotes == CAPTURE_NOTES_MAX - 1)
        snprintf(line, CAPTURE_NOTE_LEN + 240, "%.200s: more problems not listed", cap->name);
    else
        snprintf(line, CAPTURE_NOTE_LEN + 240, "%.200s: %s", cap->name, body);
    cap->notes[cap->nnotes++] = line;
}

void capture_stream_describe(const struct capture_stream *s, char *buf, size_t n)
{
    char a[NETADDR_TEXT_MAX], b[NETADDR_TEXT_MAX];
    if (netaddr_format((const struct sockaddr *)&s->client, a, sizeof a) < 0)
        str_copy(a, sizeof a, "?");
    if (netaddr_format((const struct sockaddr *)&s->server, b, sizeof b) < 0)
        str_copy(b, sizeof b, "?");
    snprintf(buf, n, "stream %u %s -> %s", s->index, a, b);
}

/* ---- streams ----------------------------------------------------------------------------- */

static int sockaddr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static void half_free(struct capture_half *h)
{
    for (size_t i = 0; i < h->nsegs; i++)
        free(h->segs[i].data);
    free(h->segs);
    h->segs = NULL;
    h->nsegs = h->capsegs = 0;
    free(h->data);
    h->data = NULL;
}

/* The stream that src→dst belongs to, and whether src is its client. A SYN without ACK on a
 * 4-tuple whose stream already carried a different SYN starts a new stream (port reuse). */
static struct capture_stream *stream_find(struct capture *cap, const struct sockaddr_storage *src,
                                          const struct sockaddr_storage *dst, unsigned flags,
                                          uint32_t seq, int64_t t_us, int *from_client)
{
    int pure_syn = (flags & TCP_SYN) && !(flags & TCP_ACK);
    for (size_t k = cap->nstreams; k-- > 0;) {
        struct capture_stream *s = &cap->streams[k];
        int fwd = sockaddr_same(&s->client, src) && sockaddr_same(&s->server, dst);
        int rev = sockaddr_same(&s->client, dst) && sockaddr_same(&s->server, src);
        if (!fwd && !rev)
            continue;
        if (pure_syn) {
            struct capture_half *h = fwd ? &s->to_server : &s->to_client;
            if ((h->syn && h->isn != seq) || (!h->syn && (h->nsegs || s->to_client.nsegs)))
                break;    /* a new connection on the same ports */
        }
        *from_client = fwd;
        s->last_us = t_us;
        return s;
    }
    if (cap->nstreams >= CAPTURE_STREAMS_MAX) {
        if (!cap->streams_full)
            capture_note(cap, "more than %d TCP streams; the rest are ignored", CAPTURE_STREAMS_MAX);
        cap->streams_full = 1;
        return NULL;
    }
    if (cap->nstreams == cap->capstreams) {
        size_t nc = cap->capstreams ? cap->capstreams * 2 : 16;
        struct capture_stream *v = realloc(cap->streams, nc * sizeof *v);
        if (v == NULL)
            return NULL;
        cap->streams = v;
        cap->capstreams = nc;
    }
    struct capture_stream *s = &cap->streams[cap->nstreams];
    memset(s, 0, sizeof *s);
    s->index = (unsigned)cap->nstreams + 1;
    s->first_us = s->last_us = t_us;
    /* Roles: the sender of a SYN without ACK is the client; otherwise (the capture began
     * mid-connection) the lower port is taken for the server's, as SMTP servers listen on
     * low or well-known ports and clients use ephemeral ones. */
    int src_is_client;
    if (flags & TCP_SYN) {
        src_is_client = !(flags & TCP_ACK);
        s->sure_of_roles = 1;
    } else {
        int sp = netaddr_port((const struct sockaddr *)src), dp = netaddr_port((const struct sockaddr *)dst);
        src_is_client = sp >= dp;
    }
    s->client = src_is_client ? *src : *dst;
    s->server = src_is_client ? *dst : *src;
    cap->nstreams++;
    *from_client = src_is_client;
    return s;
}

static void half_add(struct capture *cap, struct capture_stream *s, struct capture_half *h,
                     unsigned flags, uint32_t seq, const unsigned char *p, size_t n)
{
    if (flags & TCP_SYN) {
        if (!h->syn) {
            h->syn = 1;
            h->isn = seq;
        }
        seq++;   /* the SYN takes one sequence number */
    }
    if (flags & TCP_FIN)
        h->fin = 1;
    if (flags & TCP_RST)
        h->rst = 1;
    if (n == 0)
        return;
    if (!h->have_first) {
        h->have_first = 1;
        h->first_seq = h->syn ? h->isn + 1 : seq;
    }
    if (h->overflowed)
        return;
    if (h->held + n > CAPTURE_DIRECTION_MAX || cap->total_held + n > CAPTURE_TOTAL_MAX ||
        h->nsegs >= CAPTURE_SEGMENTS_MAX) {
        char d[160];
        capture_stream_describe(s, d, sizeof d);
        capture_note(cap, "%s: %s data over the import limit; the rest is ignored", d,
                     h == &s->to_server ? "client" : "server");
        h->overflowed = 1;
        return;
    }
    if (h->nsegs == h->capsegs) {
        size_t nc = h->capsegs ? h->capsegs * 2 : 16;
        struct capture_segment *v = realloc(h->segs, nc * sizeof *v);
        if (v == NULL)
            return;
        h->segs = v;
        h->capsegs = nc;
    }
    unsigned char *copy = malloc(n);
    if (copy == NULL)
        return;
    memcpy(copy, p, n);
    struct capture_segment *g = &h->segs[h->nsegs];
    g->seq = seq;
    g->offset = 0;   /* computed in half_finish, once the SYN is known */
    g->order = h->nsegs;
    g->data = copy;
    g->len = n;
    h->nsegs++;
    h->held += n;
    cap->total_held += n;
}

static int segment_cmp(const void *a, const void *b)
{
    const struct capture_segment *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Puts one direction's segments in order: duplicates and overlaps keep the first copy of
 * each byte; the data stops at the first hole, which is reported. */
static void half_finish(struct capture *cap, struct capture_stream *s, struct capture_half *h,
                        const char *who)
{
    if (h->nsegs == 0)
        return;
    /* Offsets count from the byte after the SYN; without a SYN the capture may have begun
     * mid-stream, and the lowest offset seen is the start. */
    uint32_t first = h->syn ? h->isn + 1 : h->first_seq;
    for (size_t i = 0; i < h->nsegs; i++)
        h->segs[i].offset = (int64_t)(int32_t)(h->segs[i].seq - first);
    qsort(h->segs, h->nsegs, sizeof *h->segs, segment_cmp);
    int64_t base = h->syn ? 0 : h->segs[0].offset;
    size_t total = 0;
    for (size_t i = 0; i < h->nsegs; i++)
        total += h->segs[i].len;
    h->data = malloc(total + 1);
    if (h->data == NULL)
        return;
    int64_t cursor = base;
    int stopped = 0;
    for (size_t i = 0; i < h->nsegs; i++) {
        struct capture_segment *g = &h->segs[i];
        int64_t end = g->offset + (int64_t)g->len;
        if (end <= cursor) {
            h->retransmitted++;
            continue;
        }
        if (g->offset > cursor) {
            h->holes++;
            if (h->holes == 1) {
                h->missing_at = (uint64_t)(cursor - base);
                h->missing_len = (uint64_t)(g->offset - cursor);
                stopped = 1;
            }
            cursor = g->offset;   /* go on, to count the holes */
        } else if (g->offset < cursor) {
            h->retransmitted++;
        }
        if (!stopped) {
            size_t skip = (size_t)(cursor - g->offset);
            memcpy(h->data + h->len, g->data + skip, g->len - skip);
            h->len += g->len - skip;
        }
        cursor = end;
    }
    h->data[h->len] = '\0';
    if (h->holes) {
        char d[160];
        capture_stream_describe(s, d, sizeof d);
        capture_note(cap, "%s: %s data missing %llu byte(s) at offset %llu%s; the session is "
                     "imported up to there", d, who, (unsigned long long)h->missing_len,
                     (unsigned long long)h->missing_at,
                     h->holes > 1 ? " (and more holes after it)" : "");
    }
    for (size_t i = 0; i < h->nsegs; i++)
        free(h->segs[i].data);
    free(h->segs);
    h->segs = NULL;
    h->nsegs = h->capsegs = 0;
}

/* ---- layers ------------------------------------------------------------------------------ */

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int is_dns_port(const struct capture_options *o, int port)
{
    if (o == NULL || o->dns_ports[0] == 0)
        return port == 53 || port == 5353;
    for (size_t i = 0; i < CAPTURE_DNS_PORT_MAX && o->dns_ports[i]; i++)
        if (o->dns_ports[i] == port)
            return 1;
    return 0;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void transport(struct capture *cap, const struct capture_options *o, int proto,
                      struct sockaddr_storage *src, struct sockaddr_storage *dst,
                      const unsigned char *p, size_t n, int64_t t_us)
{
    if (proto == IPPROTO_TCP) {
        if (n < 20) {
            cap->nskipped++;
            return;
        }
        size_t hl = (size_t)(p[12] >> 4) * 4;
        if (hl < 20 || hl > n) {
            cap->nskipped++;
            return;
        }
        set_port(src, get16(p));
        set_port(dst, get16(p + 2));
        uint32_t seq = get32(p + 4);
        unsigned flags = p[13];
        int from_client = 0;
        struct capture_stream *s = stream_find(cap, src, dst, flags, seq, t_us, &from_client);
        if (s == NULL)
            return;
        half_add(cap, s, from_client ? &s->to_server : &s->to_client, flags, seq, p + hl, n - hl);
        return;
    }
    if (proto == IPPROTO_UDP) {
        if (n < 8) {
            cap->nskipped++;
            return;
        }
        uint16_t sp = get16(p), dp = get16(p + 2);
        size_t ulen = get16(p + 4);
        if (ulen >= 8 && ulen <= n)
            n = ulen;
        if (!is_dns_port(o, sp) && !is_dns_port(o, dp))
            return;
        if (cap->ndns >= CAPTURE_DNS_MAX) {
            if (!cap->dns_full)
                capture_note(cap, "more than %d DNS datagrams; the rest are ignored", CAPTURE_DNS_MAX);
            cap->dns_full = 1;
            return;
        }
        if (cap->ndns == cap->capdns) {
            size_t nc = cap->capdns ? cap->capdns * 2 : 16;
            struct capture_dns *v = realloc(cap->dns, nc * sizeof *v);
            if (v == NULL)
                return;
            cap->dns = v;
            cap->capdns = nc;
        }
        struct capture_dns *d = &cap->dns[cap->ndns];
        d->data = malloc(n - 8 + 1);
        if (d->data == NULL)
            return;
        memcpy(d->data, p + 8, n - 8);
        d->len = n - 8;
        set_port(src, sp);
        set_port(dst, dp);
        d->src = *src;
        d->dst = *dst;
        d->time_us = t_us;
        cap->ndns++;
        return;
    }
    cap->nskipped++;
}

static void ip_packet(struct capture *cap, const struct capture_options *o,
                      const unsigned char *p, size_t n, int64_t t_us)
{
    struct sockaddr_storage src, dst;
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    if (n < 1) {
        cap->nskipped++;
        return;
    }
    int version = p[0] >> 4;
    if (version == 4) {
        if (n < 20) {
            cap->nskipped++;
            return;
        }
        size_t hl = (size_t)(p[0] & 0x0f) * 4;
        size_t total = get16(p + 2);
        if (hl < 20 || hl > n) {
            cap->nskipped++;
            return;
        }
        if (total >= hl && total < n)
            n = total;   /* Ethernet padding */
        uint16_t frag = get16(p + 6);
        if ((frag & 0x2000) || (frag & 0x1fff)) {
            if (cap->nfragments++ == 0)
                capture_note(cap, "IPv4 fragments are not reassembled; they are skipped");
            cap->nskipped++;
            return;
        }
        struct sockaddr_in *s4 = (struct sockaddr_in *)&src, *d4 = (struct sockaddr_in *)&dst;
        s4->sin_family = d4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, p + 12, 4);
        memcpy(&d4->sin_addr, p + 16, 4);
        transport(cap, o, p[9], &src, &dst, p + hl, n - hl, t_us);
        return;
    }
    if (version == 6) {
        if (n < 40) {
            cap->nskipped++;
            return;
        }
        size_t plen = get16(p + 4);
        if (40 + plen < n)
            n = 40 + plen;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src, *d6 = (struct sockaddr_in6 *)&dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, p + 8, 16);
        memcpy(&d6->sin6_addr, p + 24, 16);
        int next = p[6];
        size_t off = 40;
        for (int hops = 0; hops < 8; hops++) {
            if (next == 0 || next == 43 || next == 60) {   /* hop-by-hop, routing, dest opts */
                if (off + 8 > n) {
                    cap->nskipped++;
                    return;
                }
                size_t el = ((size_t)p[off + 1] + 1) * 8;
                next = p[off];
                off += el;
                if (off > n) {
                    cap->nskipped++;
                    return;
                }
                continue;
            }
            if (next == 44) {
                if (cap->nfragments++ == 0)
                    capture_note(cap, "IPv6 fragments are not reassembled; they are skipped");
                cap->nskipped++;
                return;
            }
            break;
        }
        transport(cap, o, next, &src, &dst, p + off, n - off, t_us);
        return;
    }
    cap->nskipped++;
}

static const char *supported_links =
    "Ethernet, Linux cooked SLL/SLL2, raw IP, loopback/NULL";

static int link_supported(int dlt)
{
    return dlt == DLT_EN10MB || dlt == DLT_RAW || dlt == DLT_NULL || dlt == DLT_LOOP ||
           dlt == DLT_LINUX_SLL || dlt == DLT_LINUX_SLL2 || dlt == DLT_IPV4 || dlt == DLT_IPV6
#ifdef DLT_RAW_ALT
           || dlt == DLT_RAW_ALT
#endif
           || dlt == 14 || dlt == 101;
}

static void link_packet(struct capture *cap, const struct capture_options *o, int dlt,
                        const unsigned char *p, size_t n, int64_t t_us)
{
    size_t off = 0;
    unsigned ethertype = 0;
    int have_type = 0;
    switch (dlt) {
    case DLT_EN10MB:
        if (n < 14)
            break;
        off = 14;
        ethertype = get16(p + 12);
        for (int tags = 0; tags < 2 && (ethertype == 0x8100 || ethertype == 0x88a8); tags++) {
            if (off + 4 > n)
                break;
            ethertype = get16(p + off + 2);
            off += 4;
        }
        have_type = 1;
        break;
    case DLT_LINUX_SLL:
        if (n < 16)
            break;
        off = 16;
        ethertype = get16(p + 14);
        have_type = 1;
        break;
    case DLT_LINUX_SLL2:
        if (n < 20)
            break;
        off = 20;
        ethertype = get16(p);
        have_type = 1;
        break;
    case DLT_NULL:
    case DLT_LOOP: {
        if (n < 4)
            break;
        /* the family is in the writer's byte order (NULL) or network order (LOOP) */
        uint32_t be = get32(p), le = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                     (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint32_t fam = be < 256 ? be : le;
        off = 4;
        if (fam == 2)
            ethertype = 0x0800;
        else if (fam == 24 || fam == 28 || fam == 30 || fam == 10)
            ethertype = 0x86dd;
        have_type = 1;
        break;
    }
    default:   /* raw IP in its various numbers */
        off = 0;
        have_type = 0;
        break;
    }
    if (off > n || (dlt == DLT_EN10MB && n < 14)) {
        cap->nskipped++;
        return;
    }
    if (have_type && ethertype != 0x0800 && ethertype != 0x86dd) {
        cap->nskipped++;
        return;
    }
    if (n - off == 0) {
        cap->nskipped++;
        return;
    }
    ip_packet(cap, o, p + off, n - off, t_us);
}

/* ---- the file ---------------------------------------------------------------------------- */

static void capture_finish(struct capture *cap)
{
    for (size_t i = 0; i < cap->nstreams; i++) {
        struct capture_stream *s = &cap->streams[i];
        half_finish(cap, s, &s->to_server, "client");
        half_finish(cap, s, &s->to_client, "server");
    }
}

/* Describes what libpcap said in words a user can act on. */
static int open_error(struct capture *cap, const char *pcap_msg, struct etrn_err *err)
{
    if (strstr(pcap_msg, "unknown file format") || strstr(pcap_msg, "bad dump file format"))
        return err_set(err, "%s: not a pcap or pcapng capture (libpcap: %s)", cap->name, pcap_msg);
    if (strstr(pcap_msg, "truncated"))
        return err_set(err, "%s: truncated capture: the file header is incomplete (libpcap: %s)",
                       cap->name, pcap_msg);
    return err_set(err, "%s: cannot read the capture (libpcap: %s)", cap->name, pcap_msg);
}

static int capture_read(struct capture *cap, pcap_t *pc, const struct capture_options *o,
                        struct etrn_err *err)
{
    int dlt = pcap_datalink(pc);
    cap->linktype = dlt;
    if (!link_supported(dlt)) {
        const char *name = pcap_datalink_val_to_name(dlt);
        err_set(err, "%s: link type %d (%s) is not supported; captures must be %s", cap->name,
                dlt, name ? name : "unknown", supported_links);
        pcap_close(pc);
        return -1;
    }
    for (;;) {
        struct pcap_pkthdr *hdr;
        const u_char *data;
        int rc = pcap_next_ex(pc, &hdr, &data);
        if (rc == PCAP_ERROR_BREAK)
            break;
        if (rc == PCAP_ERROR) {
            const char *m = pcap_geterr(pc);
            if (strstr(m, "truncated"))
                capture_note(cap, "truncated capture: the file ends inside packet %zu; the %zu "
                             "packet(s) before it are imported", cap->npackets + 1, cap->npackets);
            else
                capture_note(cap, "damaged after packet %zu (libpcap: %s); the packets before "
                             "it are imported", cap->npackets, m);
            break;
        }
        if (rc != 1)
            continue;
        cap->npackets++;
        size_t n = hdr->caplen;
        int64_t t_us = (int64_t)hdr->ts.tv_sec * 1000000 + hdr->ts.tv_usec;
        if (hdr->caplen < hdr->len && cap->npackets == 1)
            capture_note(cap, "packets were cut to the capture's snap length; data beyond it "
                         "shows up as missing bytes");
        link_packet(cap, o, dlt, data, n, t_us);
    }
    pcap_close(pc);
    capture_finish(cap);
    return 0;
}

static int capture_begin(struct capture *cap, const char *name, struct etrn_err *err)
{
    memset(cap, 0, sizeof *cap);
    size_t n = strlen(name) + 1;
    cap->name = malloc(n);
    if (cap->name == NULL)
        return err_set(err, "%s: out of memory", name);
    memcpy(cap->name, name, n);
    return 0;
}

int capture_import_file(struct capture *cap, const char *path, const struct capture_options *o,
                        struct etrn_err *err)
{
    if (capture_begin(cap, path, err) < 0)
        return -1;
    struct stat st;
    if (stat(path, &st) < 0) {
        err_set_errno(err, "%s: cannot open the capture", path);
        capture_free(cap);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        err_set(err, "%s: is a folder, not a capture file", path);
        capture_free(cap);
        return -1;
    }
    if (st.st_size == 0) {
        err_set(err, "%s: empty file (0 bytes), not a capture", path);
        capture_free(cap);
        return -1;
    }
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_open_offline(path, ebuf);
    if (pc == NULL) {
        open_error(cap, ebuf, err);
        capture_free(cap);
        return -1;
    }
    if (capture_read(cap, pc, o, err) < 0) {
        capture_free(cap);
        return -1;
    }
    return 0;
}

int capture_import_memory(struct capture *cap, const char *name, const void *data, size_t n,
                          const struct capture_options *o, struct etrn_err *err)
{
    if (capture_begin(cap, name, err) < 0)
        return -1;
    if (n == 0) {
        err_set(err, "%s: empty file (0 bytes), not a capture", name);
        capture_free(cap);
        return -1;
    }
    FILE *f = fmemopen((void *)data, n, "rb");
    if (f == NULL) {
        err_set_errno(err, "%s: fmemopen", name);
        capture_free(cap);
        return -1;
    }
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_fopen_offline(f, ebuf);
    if (pc == NULL) {
        fclose(f);
        open_error(cap, ebuf, err);
        capture_free(cap);
        return -1;
    }
    if (capture_read(cap, pc, o, err) < 0) {
        capture_free(cap);
        return -1;
    }
    return 0;
}

void capture_free(struct capture *cap)
{
    if (cap == NULL)
        return;
    for (size_t i = 0; i < cap->nstreams; i++) {
        half_free(&cap->streams[i].to_server);
        half_free(&cap->streams[i].to_client);
    }
    free(cap->streams);
    for (size_t i = 0; i < cap->ndns; i++)
        free(cap->dns[i].data);
    free(cap->dns);
    for (size_t i = 0; i < cap->nnotes; i++)
        free(cap->notes[i]);
    free(cap->notes);
    free(cap->name);
    memset(cap, 0, sizeof *cap);
}
