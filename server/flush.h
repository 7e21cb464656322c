/* flush.h — etrnd's queue runner: turns an ETRN (or a retry timer) into deliveries.
 *
 *   struct flush *fl; flush_init(&fl, base, spool, cfg, &err);
 *   size_t n; if (flush_request(fl, "node.test", 0, &n, &err) < 0) reply 458;   // returns at once
 *   ... flush_free(fl);
 *
 * flush_request never blocks: it schedules delivery of every entry for the domain (and
 * its subdomains when asked) and returns the number of entries it covers. A domain
 * already being flushed is not started twice: its entries join the running flush
 * (repeated ETRNs coalesce). Deliveries go to the host the configuration (route.DOMAIN)
 * or DNS (MX, then address fallback, RFC 5321 §5.1; null MX per RFC 7505) names, never
 * to the ETRN client. Deliveries carry on after the requesting client disconnects.
 * Outcomes: 250 to DATA → spool_remove; 5xx → bounce (DSN) and removal; 4xx or a
 * connection problem → the entry stays, with the attempt noted. */
#ifndef ETRND_FLUSH_H
#define ETRND_FLUSH_H

#include <stddef.h>
#include "err.h"

struct event_base;
struct sockaddr;
struct spool;
struct etrnd_config;
struct flush;

int flush_init(struct flush **out, struct event_base *base, struct spool *sp,
               const struct etrnd_config *cfg, struct etrn_err *err);
/* After SIGHUP: new settings for deliveries started from now on. */
void flush_set_config(struct flush *fl, const struct etrnd_config *cfg);
int flush_request(struct flush *fl, const char *domain, int subdomains, size_t *queued,
                  struct etrn_err *err);
/* flush_request with the ETRN client's address. The address is never used to choose a
 * destination (only DNS and route.DOMAIN do); it is kept for logging and for the
 * test-only defect deliver_to_requester. requester may be NULL. */
int flush_request_from(struct flush *fl, const char *domain, int subdomains,
                       const struct sockaddr *requester, size_t *queued,
                       struct etrn_err *err);
/* A message for domain was just committed. If domain is not held for ETRN (not an
 * etrn_domain), it is delivered now; if a flush covering domain is running, the entry
 * joins it; otherwise it waits for an ETRN (or the retry timer). */
void flush_message_committed(struct flush *fl, const char *domain);
/* 1 while any delivery is in progress for domain. */
int flush_busy(struct flush *fl, const char *domain);
/* Number of deliveries in progress in total. */
size_t flush_active(struct flush *fl);
/* Stops starting new deliveries; cb(arg) runs once every active one has ended. */
void flush_drain(struct flush *fl, void (*cb)(void *arg), void *arg);
void flush_free(struct flush *fl);

#endif
