/* link.h — the network in front of a node: a TCP relay that owns the node's public address
 * and decides what a connecting client sees (up, down, blackhole, latency, resets ...).
 *
 *   struct link *l; link_new(&l, base, "sink1", public_sa, plen, target_sa, tlen, &err);
 *   link_apply_words(l, (char *[]){"latency", "50ms", "jitter", "10ms"}, 4, &err);
 *   link_apply_words(l, (char *[]){"down"}, 1, &err);    // listener closed: ECONNREFUSED
 *   link_free(l);
 *
 * Words (docs/SIMULATOR.md has the table): up, down, reject, blackhole, latency DUR,
 * jitter DUR, bandwidth SIZE, reset-after SIZE, reset-after-time DUR, stall-after SIZE,
 * slice SIZE, slice-gap DUR, clear. State words change what new connections see and act
 * on open ones at once (down resets them, blackhole silences them); shaping words apply
 * to open connections from their next byte. The target may be an in-process sink or any
 * real mail server. Every carried connection is written to the pcap writer (if set) as
 * the client saw it: client address -> public address. */
#ifndef ETRN_LINK_H
#define ETRN_LINK_H

#include <stddef.h>
#include <sys/socket.h>
#include "err.h"
#include "pcap_writer.h"
#include "sink_journal.h"

struct event_base;
struct link;

enum link_state {
    LINK_UP,         /* pass through */
    LINK_DOWN,       /* nothing listens: the client's connect() fails with ECONNREFUSED */
    LINK_REJECT,     /* accept, then RST at once: the client sees ECONNRESET */
    LINK_BLACKHOLE   /* accept, then silence both ways: the client sees a timeout */
};

struct link_settings {
    enum link_state state;
    unsigned latency_ms;                 /* added to every byte, each direction */
    unsigned jitter_ms;                  /* plus 0..jitter_ms, order kept */
    unsigned long long bandwidth;        /* bytes per second each direction; 0 = unlimited */
    unsigned long long reset_after_bytes;/* RST both sides after this many bytes (both
                                            directions counted); 0 = never */
    unsigned long long reset_after_ms;   /* RST both sides this long after accept; 0 = never */
    unsigned long long stall_after_bytes;/* carry this many bytes, then nothing more; 0 = never */
    size_t slice_bytes;                  /* deliver in pieces of this size; 0 = as read */
    unsigned slice_gap_ms;               /* pause between pieces (default 10ms with slice) */
};

/* Called as the relay connects to its target: `via` is the relay's own local address
 * (what the target will see as the peer), `peer` the real client. */
typedef void (*link_connect_hook)(const struct sockaddr *via, const struct sockaddr *peer,
                                  unsigned long conn_id, void *arg);

int link_new(struct link **out, struct event_base *base, const char *name,
             const struct sockaddr *public_addr, socklen_t public_len,
             const struct sockaddr *target, socklen_t target_len, struct etrn_err *err);
void link_free(struct link *l);
const char *link_name(const struct link *l);
const struct sockaddr *link_public_address(const struct link *l, socklen_t *len);

void link_settings_reset(struct link_settings *s);
/* Parses words onto s; nothing changes unless all are valid. */
int link_settings_parse(struct link_settings *s, char *const *argv, int argc,
                        struct etrn_err *err);
/* Applies words; fails (and changes nothing) on a bad word or if `up` cannot bind. */
int link_apply_words(struct link *l, char *const *argv, int argc, struct etrn_err *err);
int link_set_settings(struct link *l, const struct link_settings *s, struct etrn_err *err);
const struct link_settings *link_get_settings(const struct link *l);
const char *link_state_name(enum link_state s);

void link_set_pcap(struct link *l, struct pcap_writer *pw);
/* Connect records ("accepted", "reset", "blackholed", "refused") go here. */
void link_set_journal(struct link *l, struct sink_journal *j);
void link_set_conn_counter(struct link *l, unsigned long *counter);
void link_set_connect_hook(struct link *l, link_connect_hook hook, void *arg);
/* While down, watch loopback for connection attempts (SYNs) to the public address and
 * record each as "refused" in the journal and the capture. Needs CAP_NET_RAW; returns -1
 * with a reason if it cannot watch (the link still works). */
int link_watch_refused(struct link *l, int on, struct etrn_err *err);

size_t link_connection_count(const struct link *l);
unsigned long link_accepted_total(const struct link *l);

#endif
