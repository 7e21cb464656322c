/* capture_import.h — reads a capture file (tcpdump -w: pcap or pcapng) through libpcap and
 * reassembles every TCP stream in it, both directions, and keeps the DNS datagrams, so that
 * capture_scenario.c can turn the SMTP sessions into a scenario.
 *
 *   struct capture cap; struct etrn_err err;
 *   if (capture_import_file(&cap, "field.pcap", &err) < 0) die(err.msg);  // "field.pcap: ..."
 *   for (i = 0; i < cap.nnotes; i++) warn(cap.notes[i]);  ... capture_free(&cap);
 *
 * Link types: Ethernet (802.1Q tags too), Linux cooked SLL and SLL2, raw IP (IPv4/IPv6),
 * BSD loopback/NULL. IPv4 and IPv6 (extension headers skipped; fragments are not
 * reassembled and are reported). TCP: segments out of order, retransmitted or overlapping are
 * put back in stream order (the first copy of a byte wins); bytes missing from a direction are
 * reported as a note naming the stream and the byte offset, and the direction's data stops
 * there (what follows a hole cannot be matched to a dialogue).
 *
 * Guarantees: never crashes on damaged input; memory is bounded (CAPTURE_STREAMS_MAX streams,
 * CAPTURE_DIRECTION_MAX bytes per direction, CAPTURE_TOTAL_MAX in all, CAPTURE_DNS_MAX
 * datagrams, CAPTURE_NOTES_MAX notes); a fatal problem (no such file, empty, not a capture,
 * unsupported link type) is one line in err naming the file; a recoverable one (truncated
 * after some packets, missing segments, limits reached) is a note and the import goes on. */
#ifndef ETRN_CAPTURE_IMPORT_H
#define ETRN_CAPTURE_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "err.h"

#define CAPTURE_STREAMS_MAX    2048
#define CAPTURE_DIRECTION_MAX  (8u * 1024 * 1024)
#define CAPTURE_TOTAL_MAX      (128u * 1024 * 1024)
#define CAPTURE_SEGMENTS_MAX   200000          /* segments held per direction */
#define CAPTURE_DNS_MAX        4096
#define CAPTURE_DNS_PORT_MAX   8               /* UDP ports taken as DNS */
#define CAPTURE_NOTES_MAX      64
#define CAPTURE_NOTE_LEN       400

struct capture_segment;

/* One direction of a TCP stream. */
struct capture_half {
    unsigned char *data;          /* the bytes in stream order, up to the first hole */
    size_t len;
    uint64_t missing_at;          /* offset of the first hole (valid when holes > 0) */
    uint64_t missing_len;         /* its size in bytes */
    size_t holes;                 /* holes found */
    size_t retransmitted;         /* segments wholly or partly seen before */
    int syn, fin, rst;
    /* during import */
    uint32_t isn, first_seq;
    int have_first;
    struct capture_segment *segs;
    size_t nsegs, capsegs;
    size_t held;                  /* payload bytes held (bounded) */
    int overflowed;
};

struct capture_stream {
    struct sockaddr_storage client, server;   /* client: the side that sent the SYN */
    struct capture_half to_server, to_client;
    int64_t first_us, last_us;
    unsigned index;               /* 1-based, in order of the first packet */
    int sure_of_roles;            /* 1 if the SYN said who the client is */
};

struct capture_dns {
    struct sockaddr_storage src, dst;
    unsigned char *data;
    size_t len;
    int64_t time_us;
};

struct capture {
    char *name;                   /* the file name used in messages */
    int linktype;                 /* DLT_ value */
    size_t npackets;              /* read */
    size_t nskipped;              /* not IP, not TCP/UDP, fragments, damaged headers */
    size_t nfragments;
    struct capture_stream *streams;
    size_t nstreams, capstreams;
    struct capture_dns *dns;
    size_t ndns, capdns;
    char **notes;                 /* one line each, naming the file */
    size_t nnotes;
    size_t total_held;
    int streams_full, dns_full;
};

struct capture_options {
    int dns_ports[CAPTURE_DNS_PORT_MAX];  /* 0-terminated; all zero: 53 and 5353 */
};

int capture_import_file(struct capture *cap, const char *path, const struct capture_options *o,
                        struct etrn_err *err);
/* The same from memory (name stands for the file in messages). */
int capture_import_memory(struct capture *cap, const char *name, const void *data, size_t n,
                          const struct capture_options *o, struct etrn_err *err);
void capture_free(struct capture *cap);

/* "127.0.0.1:40000 -> 127.0.0.1:2525" for messages. */
void capture_stream_describe(const struct capture_stream *s, char *buf, size_t n);

#endif
