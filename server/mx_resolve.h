/* mx_resolve.h — where mail for a domain goes: MX selection per RFC 5321 §5.1 and RFC 7505,
 * with c-ares driven by libevent (never blocks the event loop).
 *
 *   struct mx_resolver *r; mx_resolver_new(&r, base, &opts, &err);
 *   mx_resolve(r, "node.test", on_result, arg, &err);   // on_result(res, arg) runs later
 *   mx_resolver_free(r);                                  // cancels lookups: no more callbacks
 *
 * The result lists the hosts to try, in order: MX records by preference (lowest first),
 * equal preferences shuffled (R5321-5.1e), every MX at or above our own preference
 * dropped when one of the MX names is opts.myhostname (R5321-5.1g), each host's addresses
 * in the order the resolver gave them (R5321-5.1f), hosts without an address skipped.
 * No MX (NODATA) → the domain itself as implicit MX (R5321-5.1b). MX present → the
 * domain's own address records are never used (R5321-5.1c). Null MX (RFC 7505),
 * NXDOMAIN, or MX hosts that all lack addresses → MX_PERMFAIL. SERVFAIL, timeouts,
 * refused queries → MX_TEMPFAIL. The callback always runs from the event loop, never
 * from inside mx_resolve(). */
#ifndef ETRND_MX_RESOLVE_H
#define ETRND_MX_RESOLVE_H

#include <stddef.h>
#include "err.h"
#include "netaddr.h"

struct event_base;
struct mx_resolver;

#define MX_HOSTS_MAX 16          /* MX records considered (RFC 5321 asks for at least 2) */
#define MX_ADDRS_PER_HOST_MAX 8  /* addresses kept per MX host */

struct mx_resolver_options {
    const struct netaddr *server;   /* DNS server to ask; NULL = the system resolver */
    const char *myhostname;         /* our own name, for MX self-pruning; NULL = none */
    int port;                       /* port put into every returned address (e.g. 25) */
    unsigned timeout_ms;            /* per try; 0 = c-ares default (5 s) */
    unsigned tries;                 /* 0 = c-ares default (4) */
};

enum mx_status {
    MX_OK,          /* hosts[] has at least one host with at least one address */
    MX_TEMPFAIL,    /* try again later (SERVFAIL, timeout, ...) */
    MX_PERMFAIL     /* the domain cannot receive mail (NXDOMAIN, null MX, no usable MX) */
};

struct mx_host {
    char name[256];                 /* MX exchange (or the domain itself for implicit MX) */
    int preference;
    struct netaddr addrs[MX_ADDRS_PER_HOST_MAX];
    size_t naddrs;
};

struct mx_result {
    enum mx_status status;
    char domain[256];
    const char *enh;                /* enhanced status for a failure ("5.1.10", "4.4.3", ...) */
    char error[256];                /* why, for logs and bounces; "" when MX_OK */
    int implicit_mx;                /* 1 if no MX existed and the domain's address is used */
    int null_mx;                    /* 1 if the domain published a null MX */
    struct mx_host hosts[MX_HOSTS_MAX];
    size_t nhosts;
};

typedef void (*mx_result_cb)(const struct mx_result *res, void *arg);

int mx_resolver_new(struct mx_resolver **out, struct event_base *base,
                    const struct mx_resolver_options *opts, struct etrn_err *err);
/* Starts a lookup; cb runs once, from the event loop. Several lookups may run at once. */
int mx_resolve(struct mx_resolver *r, const char *domain, mx_result_cb cb, void *arg,
               struct etrn_err *err);
/* Cancels every lookup in progress (their callbacks do not run) and frees r. Safe to
 * call from inside a result callback. */
void mx_resolver_free(struct mx_resolver *r);

#endif
