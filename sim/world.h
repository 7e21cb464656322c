/* world.h — the topology of one simulated run: the DNS server, the nodes (sinks and
 * external servers), the links in front of them, the journal and the capture, all on
 * one event_base.
 *
 *   struct sim_world_options o; sim_world_options_default(&o); o.pcap_path = "run.pcap";
 *   struct sim_world *w; sim_world_new(&w, base, &o, &err);
 *   sim_world_apply(w, (char *[]){"sink", "sink1", "reject-rcpt", "450"}, 4, &err);
 *   sim_world_apply(w, (char *[]){"dns", "node.test", "MX", "10", "mx1.node.test"}, 5, &err);
 *   sim_world_sink_addr(w, "sink1")  -> "127.0.0.2"    (for $sink1)
 *   ... event_base_dispatch(base) ...; sim_world_free(w);
 *
 * Setup lines (already tokenized and variable-expanded; docs/SIMULATOR.md has the tables):
 *   dns OWNER TYPE RDATA...            a record for the simulator's DNS
 *   dns-quirk NAME QUIRK [ARG]         a DNS misbehaviour for NAME
 *   dns-clear NAME [QUIRK]             remove NAME's quirks (or one of them)
 *   dns-zone PATH                      load an RFC 1035 master file (";! quirk" lines too)
 *   sink NAME [BEHAVIOUR...]           a node mail server on the next pool address
 *   sink-behave NAME BEHAVIOUR...      change a sink's behaviour (at run time too)
 *   external NAME HOST:PORT [LINK...]  a real mail server as a node, behind a link
 *   link NAME LINK-WORD...             what clients of node NAME see (up, down, latency 50ms..)
 *   at DURATION LINE...                apply LINE that long after this line is applied
 * Errors name the problem and the word ("unknown sink behaviour 'rejct-rcpt'"). */
#ifndef ETRN_SIM_WORLD_H
#define ETRN_SIM_WORLD_H

#include <stddef.h>
#include <sys/socket.h>
#include "err.h"
#include "link.h"
#include "pcap_writer.h"
#include "sink.h"
#include "sink_journal.h"

struct event_base;
struct sim_world;

struct sim_world_options {
    const char *dns_listen;        /* "127.0.0.1:0" (a free port) or "127.0.0.1:5353";
                                      NULL: no DNS server */
    int sink_port;                 /* the common port of every node (default 2526) */
    const char *sink_addr_first;   /* first pool address (default "127.0.0.2") */
    unsigned sink_addr_count;      /* pool size (default 200: 127.0.0.2 .. 127.0.0.201) */
    const char *pcap_path;         /* NULL: no capture */
    const char *journal_path;      /* NULL: the journal lives in memory only */
    int watch_refused;             /* record attempts on down links (needs CAP_NET_RAW) */
};

void sim_world_options_default(struct sim_world_options *o);
int sim_world_new(struct sim_world **out, struct event_base *base,
                  const struct sim_world_options *opts, struct etrn_err *err);
void sim_world_free(struct sim_world *w);

/* Applies one setup line; nothing changes if it fails. */
int sim_world_apply(struct sim_world *w, char *const *argv, int argc, struct etrn_err *err);
/* Splits a line on blanks ('#' starts a comment) and applies it; "" is a no-op. */
int sim_world_apply_line(struct sim_world *w, const char *line, struct etrn_err *err);

/* A node's public address without port ("127.0.0.2"), or NULL if there is no such node. */
const char *sim_world_sink_addr(const struct sim_world *w, const char *name);
/* The same as a socket address (with the sink port); NULL if unknown. */
const struct sockaddr *sim_world_node_sockaddr(const struct sim_world *w, const char *name,
                                               socklen_t *len);
int sim_world_sink_port(const struct sim_world *w);
/* The DNS server's "127.0.0.1:PORT", or NULL if it has none. */
const char *sim_world_dns_addr(const struct sim_world *w);

struct sink_journal *sim_world_journal(struct sim_world *w);
/* Fills out[] with up to max delivery records of sink (NULL: every sink), oldest first;
 * returns how many exist in all (which may be more than max). */
size_t sim_world_deliveries(const struct sim_world *w, const char *sink,
                            const struct sink_journal_entry **out, size_t max);
/* Connect records ("accepted", "refused", ...) of one node, the same way. */
size_t sim_world_connects(const struct sim_world *w, const char *node,
                          const struct sink_journal_entry **out, size_t max);
struct sink *sim_world_sink(struct sim_world *w, const char *name);
struct link *sim_world_link(struct sim_world *w, const char *name);
/* The DNS server (struct dns_server *), or NULL. */
void *sim_world_dns(struct sim_world *w);
/* Node names in creation order; returns the count. */
size_t sim_world_node_names(const struct sim_world *w, const char **out, size_t max);

/* Errors of lines scheduled with `at` are reported here (default: dropped). */
typedef void (*sim_world_error_hook)(const char *msg, void *arg);
void sim_world_set_error_hook(struct sim_world *w, sim_world_error_hook hook, void *arg);
/* Scheduled `at` lines not yet applied. */
size_t sim_world_pending(const struct sim_world *w);

/* Runs fn(arg) on a helper thread while base keeps dispatching on this one, so a blocking
 * client (swaks, a raw socket) can talk to the world. fn must bound its own time and must
 * not touch the base. Returns fn's result, or -1 with err if it did not finish within
 * timeout_ms (the call still waits for fn). */
int sim_run_beside(struct event_base *base, int (*fn)(void *), void *arg, unsigned timeout_ms,
                   struct etrn_err *err);

#endif
