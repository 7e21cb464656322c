/* pcap_reader.c — decodes captures into TCP/UDP packets (see pcap_reader.h).
 *
 *   pcap_reader_open(&rd, path, &err); while (pcap_reader_next(rd, &p, &err) == 1) ...;
 *   pcap_reader_close(rd);
 *
 * Guarantees: never reads past a packet's captured length; truncated or foreign packets
 * are skipped, not misread. */
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "pcap_reader.h"

struct pcap_reader {
    pcap_t *p;
    int linktype;
};

int pcap_reader_open(struct pcap_reader **out, const char *path, struct etrn_err *err)
{
    *out = NULL;
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline(path, ebuf);
    if (p == NULL)
        return err_set(err, "pcap %s: %s", path, ebuf);
    struct pcap_reader *rd = calloc(1, sizeof *rd);
    if (rd == NULL) {
        pcap_close(p);
        return err_set(err, "pcap %s: out of memory", path);
    }
    rd->p = p;
    rd->linktype = pcap_datalink(p);
    *out = rd;
    return 0;
}

void pcap_reader_close(struct pcap_reader *rd)
{
    if (rd == NULL)
        return;
    pcap_close(rd->p);
    free(rd);
}

static uint16_t get16(const unsigned char *b)
{
    return (uint16_t)((b[0] << 8) | b[1]);
}

static uint32_t get32(const unsigned char *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Decodes one IP datagram; 1 if it is TCP or UDP and fits, else 0. */
static int decode_ip(const unsigned char *ip, size_t left, struct pcap_packet *p)
{
    const unsigned char *l4;
    size_t l4len;
    memset(&p->src, 0, sizeof p->src);
    memset(&p->dst, 0, sizeof p->dst);
    if (left >= 20 && (ip[0] >> 4) == 4) {
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        size_t total = get16(ip + 2);
        if (ihl < 20 || total < ihl || left < ihl)
            return 0;
        if (total > left)
            total = left;
        struct sockaddr_in *s = (struct sockaddr_in *)&p->src, *d = (struct sockaddr_in *)&p->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, ip + 12, 4);
        memcpy(&d->sin_addr, ip + 16, 4);
        p->proto = ip[9];
        l4 = ip + ihl;
        l4len = total - ihl;
    } else if (left >= 40 && (ip[0] >> 4) == 6) {
        size_t plen = get16(ip + 4);
        if (plen > left - 40)
            plen = left - 40;
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p->src,
                            *d = (struct sockaddr_in6 *)&p->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, ip + 8, 16);
        memcpy(&d->sin6_addr, ip + 24, 16);
        p->proto = ip[6];
        l4 = ip + 40;
        l4len = plen;
    } else {
        return 0;
    }
    uint16_t sport, dport;
    if (p->proto == IPPROTO_TCP) {
        if (l4len < 20)
            return 0;
        size_t off = (size_t)(l4[12] >> 4) * 4;
        if (off < 20 || off > l4len)
            return 0;
        sport = get16(l4);
        dport = get16(l4 + 2);
        p->seq = get32(l4 + 4);
        p->ack = get32(l4 + 8);
        p->tcp_flags = l4[13];
        p->payload = l4 + off;
        p->len = l4len - off;
    } else if (p->proto == IPPROTO_UDP) {
        if (l4len < 8)
            return 0;
        sport = get16(l4);
        dport = get16(l4 + 2);
        p->tcp_flags = 0;
        p->seq = p->ack = 0;
        p->payload = l4 + 8;
        p->len = l4len - 8;
    } else {
        return 0;
    }
    if (p->src.ss_family == AF_INET) {
        ((struct sockaddr_in *)&p->src)->sin_port = htons(sport);
        ((struct sockaddr_in *)&p->dst)->sin_port = htons(dport);
    } else {
        ((struct sockaddr_in6 *)&p->src)->sin6_port = htons(sport);
        ((struct sockaddr_in6 *)&p->dst)->sin6_port = htons(dport);
    }
    return 1;
}

int pcap_reader_next(struct pcap_reader *rd, struct pcap_packet *p, struct etrn_err *err)
{
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int r = pcap_next_ex(rd->p, &h, &data);
        if (r == PCAP_ERROR_BREAK)
            return 0;
        if (r != 1)
            return err_set(err, "pcap: %s", pcap_geterr(rd->p));
        const unsigned char *ip = data;
        size_t left = h->caplen;
        if (rd->linktype == DLT_EN10MB) {
            if (left < 14 || (get16(data + 12) != 0x0800 && get16(data + 12) != 0x86dd))
                continue;
            ip += 14;
            left -= 14;
        } else if (rd->linktype != DLT_RAW
#ifdef DLT_IPV4
                   && rd->linktype != DLT_IPV4 && rd->linktype != DLT_IPV6
#endif
                   && rd->linktype != 101 /* LINKTYPE_RAW as stored in files */) {
            return err_set(err, "pcap: link type %d is not supported", rd->linktype);
        }
        p->time_us = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
        if (decode_ip(ip, left, p))
            return 1;
    }
}
