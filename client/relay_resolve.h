/* relay_resolve.h — the relay named on etrn's command line, as a socket address.
 *
 *   relay_resolve("127.0.0.1:2525", 25, 5000, &addr, &err);
 *   relay_resolve("relay.example", 25, 5000, &addr, &err);   // c-ares look-up
 *
 * Numeric forms never touch DNS. A name resolves to its first address (A before AAAA is
 * c-ares' order for AF_UNSPEC); the look-up gives up after timeout_ms. */
#ifndef RELAY_RESOLVE_H
#define RELAY_RESOLVE_H

#include "err.h"
#include "netaddr.h"

int relay_resolve(const char *text, int default_port, unsigned timeout_ms, struct netaddr *out,
                  struct etrn_err *err);

#endif
