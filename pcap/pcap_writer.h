/* pcap_writer.h — writes what the simulator carries as a capture file tcpdump and Wireshark read.
 *
 *   struct pcap_writer *pw; pcap_writer_open(&pw, "run.pcap", &err);
 *   struct pcap_tcp_flow *f = pcap_tcp_flow_open(pw, client_sa, server_sa);   // SYN, SYN-ACK, ACK
 *   pcap_tcp_flow_data(f, PCAP_FROM_CLIENT, buf, n);   // segments with consistent seq/ack
 *   pcap_tcp_flow_close(f);                            // FIN handshake (or _reset for RST)
 *   pcap_udp_packet(pw, from_sa, to_sa, dns_bytes, n);
 *   pcap_writer_close(pw);
 *
 * Packets are written as raw IPv4 or IPv6 (DLT_RAW / LINKTYPE_RAW) with the real endpoints'
 * addresses and ports, correct IP and TCP/UDP checksums, and TCP sequence and
 * acknowledgement numbers that follow the bytes actually carried, so `tcpdump -r` lists them
 * and "Follow TCP Stream" shows each session whole. Data larger than 1400 bytes is split
 * into several segments. Timestamps are the wall clock at the call. Writing is through
 * libpcap (pcap_open_dead + pcap_dump_open); each call flushes so a crash loses at most
 * the packet being written. All functions accept a NULL writer/flow and then do nothing,
 * so callers need no "capture enabled?" tests. */
#ifndef ETRN_PCAP_WRITER_H
#define ETRN_PCAP_WRITER_H

#include <stddef.h>
#include <sys/socket.h>
#include "err.h"

struct pcap_writer;
struct pcap_tcp_flow;

enum pcap_direction { PCAP_FROM_CLIENT, PCAP_FROM_SERVER };

int pcap_writer_open(struct pcap_writer **out, const char *path, struct etrn_err *err);
void pcap_writer_close(struct pcap_writer *pw);

/* Writes the three-way handshake; returns NULL if pw is NULL or memory runs out. */
struct pcap_tcp_flow *pcap_tcp_flow_open(struct pcap_writer *pw, const struct sockaddr *client,
                                         const struct sockaddr *server);
void pcap_tcp_flow_data(struct pcap_tcp_flow *f, enum pcap_direction dir, const void *data,
                        size_t n);
/* FIN from the side that closed first, then the other side's FIN, ACKs; frees f. */
void pcap_tcp_flow_close(struct pcap_tcp_flow *f, enum pcap_direction closer);
/* RST from the given side; frees f. */
void pcap_tcp_flow_reset(struct pcap_tcp_flow *f, enum pcap_direction from);
/* A connection attempt refused: SYN then RST. */
void pcap_tcp_refused(struct pcap_writer *pw, const struct sockaddr *client,
                      const struct sockaddr *server);
void pcap_udp_packet(struct pcap_writer *pw, const struct sockaddr *from,
                     const struct sockaddr *to, const void *data, size_t n);

#endif
