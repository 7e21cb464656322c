/* world_dns.h — the world's adapter to the simulator's DNS server (sim/dns_server.h), so
 * the world speaks setup lines and the DNS module keeps its own API.
 *
 *   world_dns_new(&d, base, "127.0.0.1:0", pcap, &err);
 *   world_dns_apply(d, (char *[]){"dns", "node.test", "MX", "10", "mx1.node.test"}, 5, &err);
 *   world_dns_addr(d) -> "127.0.0.1:40213";  world_dns_free(d);
 */
#ifndef ETRN_WORLD_DNS_H
#define ETRN_WORLD_DNS_H

#include "err.h"
#include "pcap_writer.h"

struct event_base;
struct world_dns;

int world_dns_new(struct world_dns **out, struct event_base *base, const char *listen,
                  struct pcap_writer *pw, struct etrn_err *err);
void world_dns_free(struct world_dns *d);
/* argv[0] is "dns", "dns-quirk", "dns-clear" or "dns-zone". */
int world_dns_apply(struct world_dns *d, char *const *argv, int argc, struct etrn_err *err);
const char *world_dns_addr(const struct world_dns *d);
void *world_dns_server(struct world_dns *d);

#endif
