/* dns_server.h — the simulator's DNS server: authoritative answers from records given as text,
 * with quirks that misbehave on purpose, over UDP and TCP on one loopback address and port.
 *
 *   struct dns_server *d; dns_server_new(&d, base, "127.0.0.1:0", &err);  // port: dns_server_port(d)
 *   dns_server_add_record(d, "node.test MX 10 mx1.node.test", &err);       // TTL 60, names absolute
 *   dns_server_set_quirk(d, "node.test", "delay 500ms", &err);  ... event_base_dispatch(base);
 *
 * Answers are built by ldns (AA set, RA set so stub resolvers are content): exact names,
 * ignoring case; CNAMEs followed inside the records (the chain plus the target's records);
 * NODATA (NOERROR, SOA of the closest enclosing zone in authority when there is one) when the
 * name exists, NXDOMAIN when it does not; A/AAAA of MX and NS targets in the additional
 * section. UDP answers larger than the client accepts (512, or its EDNS size) are sent empty
 * with TC set. Everything can be changed while the loop runs; all calls must come from the
 * loop's thread. Every query and answer goes to the capture writer when one is set. */
#ifndef ETRN_DNS_SERVER_H
#define ETRN_DNS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "err.h"
#include "netaddr.h"

struct event_base;
struct pcap_writer;
struct dns_server;

enum dns_transport { DNS_TRANSPORT_UDP, DNS_TRANSPORT_TCP };

#define DNS_SERVER_LOG_MAX 1024        /* queries kept in the query log */
#define DNS_SERVER_STATS_MAX 8192      /* distinct name/type pairs counted */
#define DNS_SERVER_TCP_MAX 256         /* TCP connections at once; more are closed at accept */
#define DNS_SERVER_TCP_IDLE_MS 30000   /* an idle TCP connection is closed after this */

/* listen: "127.0.0.1:5353", "127.0.0.1:0" (a free port for UDP and TCP alike) or "[::1]:0".
 * Only loopback addresses are accepted: quirky DNS must not leak onto a network. */
int dns_server_new(struct dns_server **out, struct event_base *base, const char *listen,
                   struct etrn_err *err);
/* Closes the sockets and connections and drops delayed answers. NULL is fine. */
void dns_server_free(struct dns_server *srv);
int dns_server_port(const struct dns_server *srv);
/* "127.0.0.1:40213" */
const char *dns_server_addr(const struct dns_server *srv);
/* Every query and answer from now on is written to pw (NULL: none); the server does not own pw. */
void dns_server_set_capture(struct dns_server *srv, struct pcap_writer *pw);
/* The answer cache (on by default) keeps the wire answer of each distinct query to a name
 * without quirks until records or quirks change. Off: every query is parsed and encoded by
 * ldns (bench/bench_dns_qps.c measures both). */
void dns_server_set_answer_cache(struct dns_server *srv, int on);

/* --- records -------------------------------------------------------------------------- */

/* "mx1.node.test. 300 IN A 127.0.0.2" or the scenario short form "node.test MX 10 mx1.node.test":
 * TTL 60 unless given, class IN unless given, names without a trailing dot are absolute. */
int dns_server_add_record(struct dns_server *srv, const char *text, struct etrn_err *err);
/* An RFC 1035 master file; ";! quirk NAME QUIRK [ARG]" lines set quirks. Errors read
 * "path:line: what"; nothing is added or set unless the whole file is good. */
int dns_server_load_zone_file(struct dns_server *srv, const char *path, struct etrn_err *err);
/* Removes NAME's records of TYPE ("MX"; NULL or "" for all). Returns how many, or -1 for a bad
 * name or type. */
int dns_server_remove_records(struct dns_server *srv, const char *name, const char *type,
                              struct etrn_err *err);

/* --- quirks (docs/DNS-QUIRKS.md) ------------------------------------------------------- */

/* name: a domain or "*" (every name); quirk: "servfail", "delay 500ms", "cname-chain 3",
 * "flap", "flap MX 20 mx2.node.test", ... */
int dns_server_set_quirk(struct dns_server *srv, const char *name, const char *quirk,
                         struct etrn_err *err);
/* One quirk by its word ("delay"), or all of NAME's when quirk is NULL or "". Returns how
 * many were removed, or -1 for an unknown quirk word. */
int dns_server_clear_quirk(struct dns_server *srv, const char *name, const char *quirk,
                           struct etrn_err *err);
/* A setup line split into words: {"dns", OWNER, TYPE, RDATA...}, {"dns-quirk", NAME, QUIRK,
 * ARG...}, {"dns-clear", NAME[, QUIRK]} or {"dns-zone", PATH}. */
int dns_server_apply(struct dns_server *srv, char *const *argv, int argc, struct etrn_err *err);
/* Checks such a line (the same errors dns_server_apply would give) without any server: for
 * lines that run later (`at 10s dns-quirk ...`). A dns-zone file is not read here. */
int dns_server_check_line(char *const *argv, int argc, struct etrn_err *err);

/* --- what the server saw --------------------------------------------------------------- */

struct dns_query_stat {
    char name[256];           /* "node.test." lower case; longer names are cut */
    char type[16];            /* "MX", "TYPE65280" */
    unsigned long count;
};

/* Copies up to max entries (first seen first); returns how many there are in all. */
size_t dns_server_stats(const struct dns_server *srv, struct dns_query_stat *out, size_t max);
/* Queries seen for name (any case, dot optional) and type ("MX"; NULL: every type). */
unsigned long dns_server_query_count(const struct dns_server *srv, const char *name,
                                     const char *type);
/* Forgets counts and the query log (also restarts every flap at its first answer). */
void dns_server_stats_reset(struct dns_server *srv);

struct dns_query_log_entry {
    struct timeval when;
    char from[NETADDR_TEXT_MAX];
    enum dns_transport transport;
    uint16_t id;
    char name[256];           /* as asked, case kept */
    char type[16];
    int rcode;                /* the rcode sent; -1 when no answer was sent (timeout, drop) */
    int malformed;            /* 1 if the answer was cut off or broken on purpose */
    unsigned long long delay_ms;
    char quirks[192];         /* the quirks that changed this answer, "delay,ttl0" */
};

/* Copies the most recent queries (up to max, oldest first); returns how many were copied.
 * A delayed answer is logged when its query arrives. */
size_t dns_server_query_log(const struct dns_server *srv, struct dns_query_log_entry *out,
                            size_t max);
/* "12:00:01.250 udp 127.0.0.1:40000 id=4660 node.test. MX -> NOERROR [delay]" into buf. */
int dns_query_log_format(const struct dns_query_log_entry *e, char *buf, size_t n);

/* Called for every query once its fate is decided (before a delayed answer is sent). */
typedef void (*dns_server_observer_fn)(void *ctx, const struct dns_query_log_entry *e);
void dns_server_set_observer(struct dns_server *srv, dns_server_observer_fn fn, void *ctx);

#endif
