/* policy.c — ETRN access rules and the per-address rate limit (etrnd.conf(5) "ETRN POLICY").
 *
 *   policy_etrn_check(cfg, &rq, peer, NULL, 0)          -> STARTED (allowed) or a refusal
 *   policy_rate_exceeded(p, peer, 20, 60000, now_ms)    -> 1 on the 21st ETRN in a minute
 *
 * Rules (etrn_allow = PATTERN : CLIENT ...): with none, any client may ETRN any node held
 * here. With some, a request needs a rule whose pattern covers it ("*" everything;
 * "node.test" that node; "@foo.test" foo.test and its subdomains, plain or '@';
 * "#name" that queue) and whose clients include the peer's address or its AUTH user.
 * A rule never makes a node held that is not: etrn_domains, routes and queues say that.
 * '@' needs at least two labels (R1985-8.2: "ETRN @com" would flush the world).
 * Guarantees: bounded memory (see policy.h); the decision depends only on its inputs. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "strbuf.h"

struct policy_client {
    unsigned char host[16];
    int family;
    unsigned long long window_start_ms;
    unsigned long long last_seen_ms;
    unsigned count;
    int used;
};

struct policy {
    struct policy_client *clients;
    size_t max;
    size_t n;
};

int policy_new(struct policy **out, size_t max_clients)
{
    *out = NULL;
    if (max_clients == 0)
        max_clients = 1;
    struct policy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -1;
    p->clients = calloc(max_clients, sizeof *p->clients);
    if (p->clients == NULL) {
        free(p);
        return -1;
    }
    p->max = max_clients;
    *out = p;
    return 0;
}

void policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    free(p->clients);
    free(p);
}

/* The host part of an address as bytes; v4-mapped IPv6 counts as the IPv4 address. */
static int policy_host_key(const struct sockaddr *sa, unsigned char key[16], int *family)
{
    memset(key, 0, 16);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        *family = AF_INET;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr + 12, 4);
            *family = AF_INET;
        } else {
            memcpy(key, a->s6_addr, 16);
            *family = AF_INET6;
        }
        return 0;
    }
    *family = sa->sa_family;   /* e.g. AF_UNIX in tests: all such peers share one slot */
    return 0;
}

int policy_rate_exceeded(struct policy *p, const struct sockaddr *addr, unsigned limit,
                         unsigned long long window_ms, unsigned long long now_ms)
{
    if (limit == 0)
        return 0;
    unsigned char key[16];
    int family = 0;
    if (policy_host_key(addr, key, &family) < 0)
        return 0;
    struct policy_client *slot = NULL, *oldest = NULL, *freeslot = NULL;
    for (size_t i = 0; i < p->max; i++) {
        struct policy_client *c = &p->clients[i];
        if (!c->used) {
            if (freeslot == NULL)
                freeslot = c;
            continue;
        }
        if (c->family == family && memcmp(c->host, key, 16) == 0) {
            slot = c;
            break;
        }
        if (oldest == NULL || c->last_seen_ms < oldest->last_seen_ms)
            oldest = c;
    }
    if (slot == NULL) {
        slot = freeslot ? freeslot : oldest;   /* table full: forget the least recent */
        if (slot == NULL)
            return 0;
        if (freeslot)
            p->n++;
        memset(slot, 0, sizeof *slot);
        slot->used = 1;
        slot->family = family;
        memcpy(slot->host, key, 16);
        slot->window_start_ms = now_ms;
    }
    if (now_ms < slot->window_start_ms || now_ms - slot->window_start_ms >= window_ms) {
        slot->window_start_ms = now_ms;
        slot->count = 0;
    }
    slot->last_seen_ms = now_ms;
    if (slot->count < limit) {
        slot->count++;
        return 0;
    }
    return 1;
}

size_t policy_rate_clients(const struct policy *p)
{
    return p->n;
}

/* name within parent, optionally case-sensitive (the test-only defect). */
static int policy_within(const char *name, const char *parent, unsigned flags)
{
    if (!(flags & POLICY_CASE_SENSITIVE))
        return domain_is_within(name, parent);
    size_t ln = strlen(name), lp = strlen(parent);
    if (lp == 0 || ln < lp)
        return 0;
    if (strcmp(name + (ln - lp), parent) != 0)
        return 0;
    return ln == lp || name[ln - lp - 1] == '.';
}

int policy_node_held(const struct etrnd_config *cfg, const char *node, unsigned flags)
{
    for (size_t i = 0; i < cfg->netrn_domains; i++)
        if (policy_within(node, cfg->etrn_domains[i], flags))
            return 1;
    if (!(flags & POLICY_CASE_SENSITIVE))
        return etrnd_config_route(cfg, node) != NULL;   /* a binary search */
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(node, cfg->routes[i].domain) == 0)
            return 1;
    return 0;
}

/* '@node': held if node is within something held, or something held is within node. */
static int policy_subtree_held(const struct etrnd_config *cfg, const char *node, unsigned flags)
{
    if (policy_node_held(cfg, node, flags))
        return 1;
    for (size_t i = 0; i < cfg->netrn_domains; i++)
        if (policy_within(cfg->etrn_domains[i], node, flags))
            return 1;
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (policy_within(cfg->routes[i].domain, node, flags))
            return 1;
    return 0;
}

static int policy_rule_covers(const struct etrnd_etrn_rule *r, const struct etrn_request *rq)
{
    const char *pat = r->pattern;
    if (strcmp(pat, "*") == 0)
        return 1;
    if (pat[0] == '#')
        return rq->option == ETRN_OPTION_HASH && str_casecmp(pat + 1, rq->node) == 0;
    if (rq->option == ETRN_OPTION_HASH)
        return 0;
    if (pat[0] == '@')
        return rq->node[0] != '\0' && domain_is_within(rq->node, pat + 1);
    return rq->option == ETRN_OPTION_NONE && domain_equal(rq->node, pat);
}

static int policy_rule_admits(const struct etrnd_etrn_rule *r, const struct sockaddr *addr,
                              const char *auth_user)
{
    if (addr != NULL && netmask_list_contains(r->nets, r->nnets, addr))
        return 1;
    if (auth_user != NULL)
        for (size_t i = 0; i < r->nusers; i++)
            if (strcmp(r->users[i], auth_user) == 0)
                return 1;
    return 0;
}

enum etrn_outcome policy_etrn_check(const struct etrnd_config *cfg, const struct etrn_request *rq,
                                    const struct sockaddr *addr, const char *auth_user,
                                    unsigned flags)
{
    if (rq->option == ETRN_OPTION_AT && domain_label_count(rq->node) < 2)
        return ETRN_OUTCOME_TOO_BROAD;
    if (cfg->etrn_require_auth && auth_user == NULL)
        return ETRN_OUTCOME_AUTH_REQUIRED;
    if (cfg->netrn_rules > 0) {
        int ok = 0;
        for (size_t i = 0; i < cfg->netrn_rules && !ok; i++)
            ok = policy_rule_covers(&cfg->etrn_rules[i], rq) &&
                 policy_rule_admits(&cfg->etrn_rules[i], addr, auth_user);
        if (!ok)
            return ETRN_OUTCOME_CLIENT_REFUSED;
    }
    switch (rq->option) {
    case ETRN_OPTION_HASH:
        return etrnd_config_queue(cfg, rq->node) ? ETRN_OUTCOME_STARTED : ETRN_OUTCOME_QUEUE_UNKNOWN;
    case ETRN_OPTION_AT:
        return policy_subtree_held(cfg, rq->node, flags) ? ETRN_OUTCOME_STARTED : ETRN_OUTCOME_NOT_HELD;
    case ETRN_OPTION_NONE:
        break;
    }
    return policy_node_held(cfg, rq->node, flags) ? ETRN_OUTCOME_STARTED : ETRN_OUTCOME_NOT_HELD;
}

enum etrn_outcome policy_etrn(struct policy *p, const struct etrnd_config *cfg,
                              const struct etrn_request *rq, const struct sockaddr *addr,
                              const char *auth_user, unsigned long long now_ms, unsigned flags)
{
    if (p != NULL && policy_rate_exceeded(p, addr, cfg->etrn_rate_limit, cfg->etrn_rate_window_ms,
                                          now_ms))
        return ETRN_OUTCOME_RATE_LIMITED;
    return policy_etrn_check(cfg, rq, addr, auth_user, flags);
}
