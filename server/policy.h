/* policy.h — who may ETRN which node (etrn_allow, etrn_require_auth, the nodes held
 * here) and how often (etrn_rate_limit per client address).
 *
 *   struct policy *p; policy_new(&p, POLICY_CLIENTS_DEFAULT);
 *   enum etrn_outcome o = policy_etrn(p, cfg, &rq, peer, auth_user, now_ms, 0);
 *   if (o == ETRN_OUTCOME_STARTED) flush ...; else reply etrn_reply_choose(o, ...);
 *   policy_free(p);
 *
 * Guarantees: the rate table holds at most the number of client addresses given to
 * policy_new (the least recently seen is forgotten first), so a flood of addresses costs
 * bounded memory. Nothing here blocks or does I/O. */
#ifndef ETRND_POLICY_H
#define ETRND_POLICY_H

#include <stddef.h>
#include <sys/socket.h>
#include "etrn_cmd.h"
#include "etrnd_config.h"

#define POLICY_CLIENTS_DEFAULT 4096

struct policy;

int policy_new(struct policy **out, size_t max_clients);
void policy_free(struct policy *p);

/* Counts one ETRN from addr's host at now_ms; 1 if that makes more than limit within the
 * current window of window_ms (fixed windows per address). limit 0: never limited. */
int policy_rate_exceeded(struct policy *p, const struct sockaddr *addr, unsigned limit,
                         unsigned long long window_ms, unsigned long long now_ms);
/* Client addresses currently remembered (for tests and logs). */
size_t policy_rate_clients(const struct policy *p);

#define POLICY_CASE_SENSITIVE 0x1u   /* test-only defect etrn_case_sensitive */

/* The decision without the rate limit: ETRN_OUTCOME_STARTED if allowed, otherwise
 * TOO_BROAD, AUTH_REQUIRED, CLIENT_REFUSED, QUEUE_UNKNOWN or NOT_HELD (checked in that
 * order, so a refused client learns nothing about which nodes are held). auth_user is
 * NULL for a client that has not authenticated. */
enum etrn_outcome policy_etrn_check(const struct etrnd_config *cfg, const struct etrn_request *rq,
                                    const struct sockaddr *addr, const char *auth_user,
                                    unsigned flags);
/* The rate limit (cfg->etrn_rate_limit per cfg->etrn_rate_window_ms), then the check. */
enum etrn_outcome policy_etrn(struct policy *p, const struct etrnd_config *cfg,
                              const struct etrn_request *rq, const struct sockaddr *addr,
                              const char *auth_user, unsigned long long now_ms, unsigned flags);

/* 1 if the node is held here: within an etrn_domain or a route.DOMAIN. */
int policy_node_held(const struct etrnd_config *cfg, const char *node, unsigned flags);

#endif
