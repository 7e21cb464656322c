/* netaddr.h — socket addresses in text form: "127.0.0.1:2525", "[::1]:25", CIDR masks.
 *
 *   struct netaddr a; if (netaddr_parse("127.0.0.1:2525", 25, &a, &err) < 0) ...
 *   struct netmask m; netmask_parse("127.0.0.0/8", &m, &err); netmask_contains(&m, sa);
 *   char text[NETADDR_TEXT_MAX]; netaddr_format((struct sockaddr *)&a.ss, text, sizeof text);
 *
 * Only numeric addresses: no DNS look-ups happen here. */
#ifndef ETRN_NETADDR_H
#define ETRN_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>
#include "err.h"

#define NETADDR_TEXT_MAX 64   /* "[ipv6]:port" fits */

struct netaddr {
    struct sockaddr_storage ss;
    socklen_t len;
};

struct netmask {
    struct sockaddr_storage net;
    int prefix;               /* bits */
};

/* "addr:port", "[v6]:port", or a bare address (then default_port; -1 = port required). */
int netaddr_parse(const char *text, int default_port, struct netaddr *out, struct etrn_err *err);
/* "127.0.0.1:2525" or "[::1]:25"; returns 0 or -1 if it does not fit. */
int netaddr_format(const struct sockaddr *sa, char *buf, size_t n);
/* The address only, no port. */
int netaddr_format_host(const struct sockaddr *sa, char *buf, size_t n);
int netaddr_port(const struct sockaddr *sa);
int netaddr_equal_host(const struct sockaddr *a, const struct sockaddr *b);

/* "127.0.0.0/8", "::1/128", or a bare address (full-length prefix). */
int netmask_parse(const char *text, struct netmask *out, struct etrn_err *err);
int netmask_contains(const struct netmask *m, const struct sockaddr *sa);
/* Parses a list ("127.0.0.0/8, 192.0.2.1") into a malloc'd array. */
int netmask_parse_list(const char *text, struct netmask **out, size_t *n, struct etrn_err *err);
int netmask_list_contains(const struct netmask *v, size_t n, const struct sockaddr *sa);

#endif
