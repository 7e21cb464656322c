/* dns_malformed.h — deliberately broken DNS answers, written byte by byte.
 *
 *   size_t n = dns_malformed_cut_off(wire, len);                 // cut mid-record
 *   n = dns_malformed_pointer_loop(query, qlen, out, sizeof out); // name pointing at itself
 *
 * Only for the cut-off and pointer-loop quirks: every well-formed answer is built by ldns.
 * Each writer keeps the query's ID and question so a resolver takes the packet as the
 * answer to its query and then has to cope with what follows. */
#ifndef ETRN_DNS_MALFORMED_H
#define ETRN_DNS_MALFORMED_H

#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN 12

/* The length at which to cut a well-formed message so that it ends inside a record: half
 * way through the first answer record's data, or (no answers) inside the question's name.
 * The header counts are left as they were, so the record they promise is missing. Returns
 * len unchanged if the message is too short to cut (under 13 octets). */
size_t dns_malformed_cut_off(const uint8_t *wire, size_t len);

/* Writes a response to query (ID, RD and question copied; QR, AA set) whose one answer record
 * has an owner name that is a compression pointer to itself. Returns the length written, or
 * 0 if the query has no parsable question or out is too small (DNS_HEADER_LEN + question +
 * 16 octets are needed). */
size_t dns_malformed_pointer_loop(const uint8_t *query, size_t qlen, uint8_t *out,
                                  size_t outmax);

/* The offset just past the name starting at off (labels or a pointer), or 0 if the name
 * runs off the end or is not a valid label sequence. Exposed for the tests. */
size_t dns_malformed_skip_name(const uint8_t *wire, size_t len, size_t off);

#endif
