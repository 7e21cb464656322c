/* pcap_reader.h — reads captures back (those pcap_writer writes, and live ones from "lo"),
 * one decoded TCP/UDP packet at a time, so checks need not shell out to tcpdump.
 *
 *   struct pcap_reader *rd; pcap_reader_open(&rd, "run.pcap", &err);
 *   struct pcap_packet p;
 *   while (pcap_reader_next(rd, &p) == 1) if (p.proto == IPPROTO_TCP && (p.tcp_flags & PCAP_TCP_SYN)) ...
 *   pcap_reader_close(rd);
 *
 * Understands LINKTYPE_RAW and Ethernet (what tcpdump -i lo writes), IPv4 and IPv6
 * without extension headers. Packets of other kinds are skipped. p.payload points into
 * the reader's buffer and is valid until the next call. */
#ifndef ETRN_PCAP_READER_H
#define ETRN_PCAP_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "err.h"

#define PCAP_TCP_FIN 0x01
#define PCAP_TCP_SYN 0x02
#define PCAP_TCP_RST 0x04
#define PCAP_TCP_PSH 0x08
#define PCAP_TCP_ACK 0x10

struct pcap_reader;

struct pcap_packet {
    int64_t time_us;                 /* Unix time, microseconds */
    int proto;                       /* IPPROTO_TCP or IPPROTO_UDP */
    struct sockaddr_storage src, dst;
    unsigned tcp_flags;
    uint32_t seq, ack;
    const unsigned char *payload;
    size_t len;
};

int pcap_reader_open(struct pcap_reader **out, const char *path, struct etrn_err *err);
/* 1: p holds a packet; 0: end of file; -1: a damaged file (err says why). */
int pcap_reader_next(struct pcap_reader *rd, struct pcap_packet *p, struct etrn_err *err);
void pcap_reader_close(struct pcap_reader *rd);

#endif
