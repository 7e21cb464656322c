/* world_dns.c — adapter from world setup lines to the simulator's DNS server (world_dns.h).
 *
 *   world_dns_new(&d, base, "127.0.0.1:0", pcap, &err); world_dns_apply(d, argv, argc, &err);
 *   world_dns_addr(d) -> "127.0.0.1:40213"; world_dns_server(d) -> struct dns_server *
 *
 * Guarantees: the server listens on UDP and TCP at the bound address once world_dns_new
 * returns 0; every query and answer goes to the world's capture when there is one; a line
 * that fails changes nothing (dns_server_apply's own guarantee). */
#include <stdlib.h>
#include <string.h>

#include "dns_server.h"
#include "world_dns.h"

struct world_dns {
    struct dns_server *srv;
};

int world_dns_new(struct world_dns **out, struct event_base *base, const char *listen,
                  struct pcap_writer *pw, struct etrn_err *err)
{
    *out = NULL;
    struct world_dns *d = calloc(1, sizeof *d);
    if (d == NULL)
        return err_set(err, "dns: out of memory");
    if (dns_server_new(&d->srv, base, listen, err) < 0) {
        free(d);
        return -1;
    }
    dns_server_set_capture(d->srv, pw);
    *out = d;
    return 0;
}

void world_dns_free(struct world_dns *d)
{
    if (d == NULL)
        return;
    dns_server_free(d->srv);
    free(d);
}

int world_dns_apply(struct world_dns *d, char *const *argv, int argc, struct etrn_err *err)
{
    return dns_server_apply(d->srv, argv, argc, err);
}

const char *world_dns_addr(const struct world_dns *d)
{
    return d != NULL ? dns_server_addr(d->srv) : NULL;
}

void *world_dns_server(struct world_dns *d)
{
    return d != NULL ? d->srv : NULL;
}
