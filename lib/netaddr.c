/* netaddr.c — numeric socket addresses and CIDR masks in text form.
 *
 *   netaddr_parse("[::1]:25", -1, &a, &err);  netmask_parse("127.0.0.0/8", &m, &err);
 *
 * Numeric only (AI_NUMERICHOST): parsing never waits on DNS. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "strbuf.h"

static int netaddr_from_parts(const char *host, const char *port, struct netaddr *out,
                              const char *text, struct etrn_err *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL)
        return err_set(err, "'%s': not a numeric address:port", text);
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int netaddr_parse(const char *text, int default_port, struct netaddr *out, struct etrn_err *err)
{
    char host[NETADDR_TEXT_MAX], port[16];
    const char *p = text;
    const char *portpart = NULL;
    size_t hl;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL)
            return err_set(err, "'%s': missing ']'", text);
        hl = (size_t)(close - p - 1);
        if (hl >= sizeof host)
            return err_set(err, "'%s': address too long", text);
        memcpy(host, p + 1, hl);
        host[hl] = '\0';
        if (close[1] == ':')
            portpart = close + 2;
        else if (close[1] != '\0')
            return err_set(err, "'%s': unexpected text after ']'", text);
    } else {
        const char *colon = strrchr(p, ':');
        if (colon && strchr(p, ':') == colon) {
            hl = (size_t)(colon - p);
            portpart = colon + 1;
        } else {
            hl = strlen(p); /* bare IPv4, or bare IPv6 without brackets */
        }
        if (hl >= sizeof host)
            return err_set(err, "'%s': address too long", text);
        memcpy(host, p, hl);
        host[hl] = '\0';
    }
    if (portpart) {
        char *end = NULL;
        long v = strtol(portpart, &end, 10);
        if (portpart[0] < '0' || portpart[0] > '9' || *end != '\0' || v < 0 || v > 65535)
            return err_set(err, "'%s': bad port", text);
        snprintf(port, sizeof port, "%ld", v);
    } else {
        if (default_port < 0)
            return err_set(err, "'%s': a port is required (address:port)", text);
        snprintf(port, sizeof port, "%d", default_port);
    }
    if (host[0] == '\0')
        return err_set(err, "'%s': missing address", text);
    return netaddr_from_parts(host, port, out, text, err);
}

int netaddr_format_host(const struct sockaddr *sa, char *buf, size_t n)
{
    if (sa->sa_family == AF_INET)
        return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n)
                   ? 0 : -1;
    if (sa->sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                         (socklen_t)n) ? 0 : -1;
    return str_copy(buf, n, "?");
}

int netaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int netaddr_format(const struct sockaddr *sa, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    if (netaddr_format_host(sa, host, sizeof host) < 0)
        return -1;
    if (sa->sa_family == AF_INET6)
        return str_format(buf, n, "[%s]:%d", host, netaddr_port(sa)) < 0 ? -1 : 0;
    return str_format(buf, n, "%s:%d", host, netaddr_port(sa)) < 0 ? -1 : 0;
}

/* The address bytes of sa, with v4-mapped v6 addresses seen as v4. */
static const unsigned char *netaddr_bytes(const struct sockaddr *sa, int *family, size_t *len)
{
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        *len = 4;
        return (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            *family = AF_INET;
            *len = 4;
            return a->s6_addr + 12;
        }
        *family = AF_INET6;
        *len = 16;
        return a->s6_addr;
    }
    *family = 0;
    *len = 0;
    return NULL;
}

int netaddr_equal_host(const struct sockaddr *a, const struct sockaddr *b)
{
    int fa, fb;
    size_t la, lb;
    const unsigned char *pa = netaddr_bytes(a, &fa, &la), *pb = netaddr_bytes(b, &fb, &lb);
    return pa && pb && fa == fb && la == lb && memcmp(pa, pb, la) == 0;
}

int netmask_parse(const char *text, struct netmask *out, struct etrn_err *err)
{
    char host[NETADDR_TEXT_MAX];
    const char *slash = strchr(text, '/');
    const char *h = text;
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {   /* "[::1]/128" */
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof host)
        return err_set(err, "'%s': not an address or network", text);
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct netaddr a;
    struct etrn_err ignored;
    if (netaddr_from_parts(host, "0", &a, text, &ignored) < 0)
        return err_set(err, "'%s': not an address or network", text);
    int maxbits = a.ss.ss_family == AF_INET ? 32 : 128;
    int prefix = maxbits;
    if (slash) {
        char *end = NULL;
        long v = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || v > maxbits)
            return err_set(err, "'%s': bad prefix length", text);
        prefix = (int)v;
    }
    memset(out, 0, sizeof *out);
    memcpy(&out->net, &a.ss, sizeof a.ss);
    out->prefix = prefix;
    return 0;
}

int netmask_contains(const struct netmask *m, const struct sockaddr *sa)
{
    int fm, fa;
    size_t lm, la;
    const unsigned char *pm = netaddr_bytes((const struct sockaddr *)&m->net, &fm, &lm);
    const unsigned char *pa = netaddr_bytes(sa, &fa, &la);
    if (!pm || !pa || fm != fa)
        return 0;
    int bits = m->prefix;
    if (fm == AF_INET && m->net.ss_family == AF_INET6)
        bits -= 96; /* a v4-mapped mask: its prefix counted the 96 mapping bits */
    if (bits < 0)
        bits = 0;
    size_t full = (size_t)bits / 8;
    if (full > la)
        return 0;
    if (memcmp(pm, pa, full) != 0)
        return 0;
    int rest = bits % 8;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (pm[full] & mask) == (pa[full] & mask);
}

int netmask_parse_list(const char *text, struct netmask **out, size_t *n, struct etrn_err *err)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " \t,");
        char item[NETADDR_TEXT_MAX + 8];
        if (len >= sizeof item) {
            free(*out);
            *out = NULL;
            *n = 0;
            return err_set(err, "'%.*s': not an address or network", (int)(len > 64 ? 64 : len), p);
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            struct netmask *v = realloc(*out, cap * sizeof *v);
            if (v == NULL) {
                free(*out);
                *out = NULL;
                *n = 0;
                return err_set(err, "out of memory");
            }
            *out = v;
        }
        if (netmask_parse(item, &(*out)[*n], err) < 0) {
            free(*out);
            *out = NULL;
            *n = 0;
            return -1;
        }
        (*n)++;
        p += len;
    }
    return 0;
}

int netmask_list_contains(const struct netmask *v, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; i < n; i++)
        if (netmask_contains(&v[i], sa))
            return 1;
    return 0;
}
