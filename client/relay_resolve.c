/* relay_resolve.c — turns the relay given on etrn's command line into an address.
 *
 *   struct netaddr a;
 *   if (relay_resolve("relay.example:2525", 25, 5000, &a, &err) < 0) ...
 *
 * Numeric addresses are parsed directly; names are looked up with c-ares (A, then AAAA),
 * waiting at most timeout_ms. The client resolves once per run before any connection,
 * so a short blocking wait on c-ares' own descriptors is the simplest correct loop. */
#include <string.h>
#include <stdlib.h>
#include <poll.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <ares.h>

#include "relay_resolve.h"
#include "strbuf.h"

struct resolve_state {
    int done;
    int status;
    struct netaddr *out;
    int port;
};

static void relay_resolve_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct resolve_state *st = arg;
    (void)timeouts;
    st->done = 1;
    st->status = status;
    if (status == ARES_SUCCESS && res && res->nodes) {
        struct ares_addrinfo_node *n = res->nodes;
        memcpy(&st->out->ss, n->ai_addr, (size_t)n->ai_addrlen);
        st->out->len = (socklen_t)n->ai_addrlen;
        if (n->ai_family == AF_INET)
            ((struct sockaddr_in *)&st->out->ss)->sin_port = htons((uint16_t)st->port);
        else if (n->ai_family == AF_INET6)
            ((struct sockaddr_in6 *)&st->out->ss)->sin6_port = htons((uint16_t)st->port);
        else
            st->status = ARES_ENOTFOUND;
    } else if (status == ARES_SUCCESS) {
        st->status = ARES_ENODATA;
    }
    if (res)
        ares_freeaddrinfo(res);
}

/* Splits "host[:port]" (or "[v6]:port"); host_out gets the host part. */
static int relay_split(const char *text, int default_port, char *host_out, size_t n, int *port,
                       struct etrn_err *err)
{
    const char *colon = strrchr(text, ':');
    *port = default_port;
    if (text[0] == '[' || colon == NULL || strchr(text, ':') != colon) {
        return str_copy(host_out, n, text) < 0 ? err_set(err, "relay name too long") : 0;
    }
    size_t hl = (size_t)(colon - text);
    if (hl == 0 || hl >= n)
        return err_set(err, "'%s': bad relay name", text);
    memcpy(host_out, text, hl);
    host_out[hl] = '\0';
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
        return err_set(err, "'%s': bad port", text);
    *port = (int)p;
    return 0;
}

int relay_resolve(const char *text, int default_port, unsigned timeout_ms, struct netaddr *out,
                  struct etrn_err *err)
{
    struct etrn_err ignored;
    if (netaddr_parse(text, default_port, out, &ignored) == 0)
        return 0;

    char host[256];
    int port;
    if (relay_split(text, default_port, host, sizeof host, &port, err) < 0)
        return -1;
    if (netaddr_parse(host, port, out, &ignored) == 0)
        return 0;

    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS)
        return err_set(err, "c-ares: %s", ares_strerror(rc));
    ares_channel ch;
    struct ares_options opts;
    memset(&opts, 0, sizeof opts);
    opts.timeout = (int)(timeout_ms < 1000 ? timeout_ms : 1000);
    opts.tries = 3;
    rc = ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        ares_library_cleanup();
        return err_set(err, "c-ares: %s", ares_strerror(rc));
    }
    struct resolve_state st = { 0, ARES_ETIMEOUT, out, port };
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(ch, host, NULL, &hints, relay_resolve_cb, &st);

    unsigned waited = 0;
    while (!st.done && waited < timeout_ms) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        int npfd = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;
            if (ARES_GETSOCK_READABLE(bits, i))
                ev |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(bits, i))
                ev |= POLLOUT;
            if (ev) {
                pfd[npfd].fd = socks[i];
                pfd[npfd].events = ev;
                pfd[npfd].revents = 0;
                npfd++;
            }
        }
        int slice = 100;
        int r = poll(pfd, (nfds_t)npfd, slice);
        waited += (unsigned)slice;
        if (r < 0)
            continue; /* EINTR: ares_process_fd below still advances its timers */
        if (r == 0) {
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (int i = 0; i < npfd; i++) {
            ares_socket_t rfd = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_socket_t wfd = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;
            if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
                ares_process_fd(ch, rfd, wfd);
        }
    }
    ares_destroy(ch); /* runs the callback with ARES_EDESTRUCTION if still pending */
    ares_library_cleanup();
    if (!st.done || st.status == ARES_EDESTRUCTION)
        return err_set(err, "%s: name lookup timed out", host);
    if (st.status != ARES_SUCCESS)
        return err_set(err, "%s: %s", host, ares_strerror(st.status));
    return 0;
}
