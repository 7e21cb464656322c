/* world_dns.c — adapter from world setup lines to the DNS server (see world_dns.h).
 *
 *   world_dns_new(&d, base, "127.0.0.1:0", pcap, &err); world_dns_apply(d, argv, argc, &err);
 *
 * Placeholder until sim/dns_server.h exists: it accepts no DNS lines and says so. */
#include <stdlib.h>
#include <string.h>

#include "world_dns.h"

struct world_dns {
    char addr[64];
};

int world_dns_new(struct world_dns **out, struct event_base *base, const char *listen,
                  struct pcap_writer *pw, struct etrn_err *err)
{
    (void)base;
    (void)pw;
    (void)listen;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : err_set(err, "dns: out of memory");
}

void world_dns_free(struct world_dns *d)
{
    free(d);
}

int world_dns_apply(struct world_dns *d, char *const *argv, int argc, struct etrn_err *err)
{
    (void)d;
    (void)argc;
    return err_set(err, "%s: the DNS server is not built in yet", argv[0]);
}

const char *world_dns_addr(const struct world_dns *d)
{
    (void)d;
    return NULL;
}

void *world_dns_server(struct world_dns *d)
{
    (void)d;
    return NULL;
}
