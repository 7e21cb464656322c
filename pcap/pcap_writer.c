/* pcap_writer.c — turns what the simulator carries into a capture file (see pcap_writer.h).
 *
 *   pcap_writer_open(&pw, "run.pcap", &err);
 *   f = pcap_tcp_flow_open(pw, client, server); pcap_tcp_flow_data(f, PCAP_FROM_CLIENT, p, n);
 *   pcap_tcp_flow_close(f, PCAP_FROM_SERVER); pcap_writer_close(pw);
 *
 * The simulator never sees real packets (it works with sockets), so this module invents
 * them: raw IPv4/IPv6 datagrams (LINKTYPE_RAW) with the real endpoints, valid checksums
 * and TCP sequence numbers that advance by exactly the bytes carried, so tcpdump and
 * Wireshark's stream reassembly accept the file. Every packet is flushed at once. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "pcap_writer.h"

#define PCAP_SEGMENT_MAX 1400          /* payload bytes per TCP segment */
#define PCAP_SNAPLEN 262144
#define PCAP_UDP_PAYLOAD_MAX 65507     /* largest payload an IPv4 UDP datagram holds */

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct pcap_writer {
    pcap_t *dead;
    pcap_dumper_t *dumper;
    uint16_t ip_id;
    uint32_t next_isn;
};

/* One endpoint as it appears in packet headers (network byte order kept as bytes). */
struct pcap_endpoint {
    int family;                /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint16_t port;             /* host order */
};

struct pcap_tcp_flow {
    struct pcap_writer *pw;
    struct pcap_endpoint ep[2];  /* [PCAP_FROM_CLIENT] client, [PCAP_FROM_SERVER] server */
    uint32_t seq[2];             /* next sequence number each side sends */
};

static int endpoint_from_sockaddr(const struct sockaddr *sa, struct pcap_endpoint *ep)
{
    memset(ep, 0, sizeof *ep);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        ep->family = AF_INET;
        memcpy(ep->addr, &sin->sin_addr, 4);
        ep->port = ntohs(sin->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        ep->family = AF_INET6;
        memcpy(ep->addr, &sin6->sin6_addr, 16);
        ep->port = ntohs(sin6->sin6_port);
        return 0;
    }
    return -1;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t checksum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)((p[i] << 8) | p[i + 1]);
    if (i < n)
        sum += (uint32_t)(p[i] << 8);
    return sum;
}

static uint16_t checksum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Builds the IP header in front of an already-filled transport segment at pkt+iphdr_len,
 * computes the transport checksum (at csum_off within the segment) and writes the packet. */
static void packet_emit(struct pcap_writer *pw, const struct pcap_endpoint *src,
                        const struct pcap_endpoint *dst, uint8_t proto, uint8_t *pkt,
                        size_t seg_len, size_t csum_off)
{
    size_t ip_len = src->family == AF_INET ? 20 : 40;
    uint8_t *seg = pkt + ip_len;
    uint8_t pseudo[40];
    size_t pseudo_len;
    uint32_t sum;

    put16(seg + csum_off, 0);
    if (src->family == AF_INET) {
        memcpy(pseudo, src->addr, 4);
        memcpy(pseudo + 4, dst->addr, 4);
        pseudo[8] = 0;
        pseudo[9] = proto;
        put16(pseudo + 10, (uint16_t)seg_len);
        pseudo_len = 12;
    } else {
        memcpy(pseudo, src->addr, 16);
        memcpy(pseudo + 16, dst->addr, 16);
        put32(pseudo + 32, (uint32_t)seg_len);
        pseudo[36] = pseudo[37] = pseudo[38] = 0;
        pseudo[39] = proto;
        pseudo_len = 40;
    }
    sum = checksum_add(0, pseudo, pseudo_len);
    sum = checksum_add(sum, seg, seg_len);
    uint16_t csum = checksum_fold(sum);
    if (proto == IPPROTO_UDP && csum == 0)
        csum = 0xffff;   /* RFC 768: zero means "no checksum" */
    put16(seg + csum_off, csum);

    if (src->family == AF_INET) {
        pkt[0] = 0x45;
        pkt[1] = 0;
        put16(pkt + 2, (uint16_t)(20 + seg_len));
        put16(pkt + 4, pw->ip_id++);
        put16(pkt + 6, 0x4000);        /* don't fragment */
        pkt[8] = 64;
        pkt[9] = proto;
        put16(pkt + 10, 0);
        memcpy(pkt + 12, src->addr, 4);
        memcpy(pkt + 16, dst->addr, 4);
        put16(pkt + 10, checksum_fold(checksum_add(0, pkt, 20)));
    } else {
        put32(pkt, 0x60000000u);
        put16(pkt + 4, (uint16_t)seg_len);
        pkt[6] = proto;
        pkt[7] = 64;
        memcpy(pkt + 8, src->addr, 16);
        memcpy(pkt + 24, dst->addr, 16);
    }

    struct pcap_pkthdr hdr;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    hdr.ts = tv;
    hdr.caplen = (bpf_u_int32)(ip_len + seg_len);
    hdr.len = hdr.caplen;
    pcap_dump((u_char *)pw->dumper, &hdr, pkt);
    pcap_dump_flush(pw->dumper);
}

static void tcp_emit(struct pcap_tcp_flow *f, enum pcap_direction dir, uint8_t flags,
                     const void *data, size_t n)
{
    uint8_t pkt[40 + 20 + PCAP_SEGMENT_MAX];
    const struct pcap_endpoint *src = &f->ep[dir];
    const struct pcap_endpoint *dst = &f->ep[dir == PCAP_FROM_CLIENT ? PCAP_FROM_SERVER
                                                                    : PCAP_FROM_CLIENT];
    size_t ip_len = src->family == AF_INET ? 20 : 40;
    uint8_t *tcp = pkt + ip_len;
    enum pcap_direction other = dir == PCAP_FROM_CLIENT ? PCAP_FROM_SERVER : PCAP_FROM_CLIENT;

    put16(tcp, src->port);
    put16(tcp + 2, dst->port);
    put32(tcp + 4, f->seq[dir]);
    put32(tcp + 8, (flags & TCP_ACK) ? f->seq[other] : 0);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put16(tcp + 14, 65535);
    put16(tcp + 16, 0);
    put16(tcp + 18, 0);
    if (n > 0)
        memcpy(tcp + 20, data, n);
    packet_emit(f->pw, src, dst, IPPROTO_TCP, pkt, 20 + n, 16);
    f->seq[dir] += (uint32_t)n;
    if (flags & (TCP_SYN | TCP_FIN))
        f->seq[dir] += 1;
}

int pcap_writer_open(struct pcap_writer **out, const char *path, struct etrn_err *err)
{
    *out = NULL;
    struct pcap_writer *pw = calloc(1, sizeof *pw);
    if (pw == NULL)
        return err_set(err, "pcap %s: out of memory", path);
    pw->dead = pcap_open_dead(DLT_RAW, PCAP_SNAPLEN);
    if (pw->dead == NULL) {
        free(pw);
        return err_set(err, "pcap %s: pcap_open_dead failed", path);
    }
    pw->dumper = pcap_dump_open(pw->dead, path);
    if (pw->dumper == NULL) {
        err_set(err, "pcap %s: %s", path, pcap_geterr(pw->dead));
        pcap_close(pw->dead);
        free(pw);
        return -1;
    }
    pcap_dump_flush(pw->dumper);
    pw->ip_id = 1;
    pw->next_isn = 1000;
    *out = pw;
    return 0;
}

void pcap_writer_close(struct pcap_writer *pw)
{
    if (pw == NULL)
        return;
    pcap_dump_flush(pw->dumper);
    pcap_dump_close(pw->dumper);
    pcap_close(pw->dead);
    free(pw);
}

static uint32_t writer_next_isn(struct pcap_writer *pw)
{
    /* Distinct, readable initial sequence numbers per flow. */
    uint32_t isn = pw->next_isn;
    pw->next_isn += 100000;
    return isn;
}

struct pcap_tcp_flow *pcap_tcp_flow_open(struct pcap_writer *pw, const struct sockaddr *client,
                                         const struct sockaddr *server)
{
    if (pw == NULL)
        return NULL;
    struct pcap_tcp_flow *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    if (endpoint_from_sockaddr(client, &f->ep[PCAP_FROM_CLIENT]) < 0
        || endpoint_from_sockaddr(server, &f->ep[PCAP_FROM_SERVER]) < 0
        || f->ep[0].family != f->ep[1].family) {
        free(f);
        return NULL;
    }
    f->pw = pw;
    f->seq[PCAP_FROM_CLIENT] = writer_next_isn(pw);
    f->seq[PCAP_FROM_SERVER] = writer_next_isn(pw);
    tcp_emit(f, PCAP_FROM_CLIENT, TCP_SYN, NULL, 0);
    /* The SYN-ACK acknowledges the client's SYN, which tcp_emit already counted. */
    tcp_emit(f, PCAP_FROM_SERVER, TCP_SYN | TCP_ACK, NULL, 0);
    tcp_emit(f, PCAP_FROM_CLIENT, TCP_ACK, NULL, 0);
    return f;
}

void pcap_tcp_flow_data(struct pcap_tcp_flow *f, enum pcap_direction dir, const void *data,
                        size_t n)
{
    if (f == NULL)
        return;
    const uint8_t *p = data;
    while (n > 0) {
        size_t chunk = n > PCAP_SEGMENT_MAX ? PCAP_SEGMENT_MAX : n;
        tcp_emit(f, dir, TCP_PSH | TCP_ACK, p, chunk);
        p += chunk;
        n -= chunk;
    }
}

void pcap_tcp_flow_close(struct pcap_tcp_flow *f, enum pcap_direction closer)
{
    if (f == NULL)
        return;
    enum pcap_direction other = closer == PCAP_FROM_CLIENT ? PCAP_FROM_SERVER : PCAP_FROM_CLIENT;
    tcp_emit(f, closer, TCP_FIN | TCP_ACK, NULL, 0);
    tcp_emit(f, other, TCP_FIN | TCP_ACK, NULL, 0);
    tcp_emit(f, closer, TCP_ACK, NULL, 0);
    free(f);
}

void pcap_tcp_flow_reset(struct pcap_tcp_flow *f, enum pcap_direction from)
{
    if (f == NULL)
        return;
    tcp_emit(f, from, TCP_RST | TCP_ACK, NULL, 0);
    free(f);
}

void pcap_tcp_refused(struct pcap_writer *pw, const struct sockaddr *client,
                      const struct sockaddr *server)
{
    if (pw == NULL)
        return;
    struct pcap_tcp_flow f;
    memset(&f, 0, sizeof f);
    if (endpoint_from_sockaddr(client, &f.ep[PCAP_FROM_CLIENT]) < 0
        || endpoint_from_sockaddr(server, &f.ep[PCAP_FROM_SERVER]) < 0
        || f.ep[0].family != f.ep[1].family)
        return;
    f.pw = pw;
    f.seq[PCAP_FROM_CLIENT] = writer_next_isn(pw);
    f.seq[PCAP_FROM_SERVER] = 0;
    tcp_emit(&f, PCAP_FROM_CLIENT, TCP_SYN, NULL, 0);
    /* The refusing side's RST carries seq 0 and acknowledges the SYN. */
    tcp_emit(&f, PCAP_FROM_SERVER, TCP_RST | TCP_ACK, NULL, 0);
}

void pcap_udp_packet(struct pcap_writer *pw, const struct sockaddr *from,
                     const struct sockaddr *to, const void *data, size_t n)
{
    if (pw == NULL)
        return;
    struct pcap_endpoint src, dst;
    if (endpoint_from_sockaddr(from, &src) < 0 || endpoint_from_sockaddr(to, &dst) < 0
        || src.family != dst.family)
        return;
    if (n > PCAP_UDP_PAYLOAD_MAX)
        n = PCAP_UDP_PAYLOAD_MAX;
    size_t ip_len = src.family == AF_INET ? 20 : 40;
    uint8_t *pkt = malloc(ip_len + 8 + n);
    if (pkt == NULL)
        return;
    uint8_t *udp = pkt + ip_len;
    put16(udp, src.port);
    put16(udp + 2, dst.port);
    put16(udp + 4, (uint16_t)(8 + n));
    put16(udp + 6, 0);
    if (n > 0)
        memcpy(udp + 8, data, n);
    packet_emit(pw, &src, &dst, IPPROTO_UDP, pkt, 8 + n, 6);
    free(pkt);
}
