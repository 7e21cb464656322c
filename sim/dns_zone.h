/* dns_zone.h — the simulator DNS server's records, read from RFC 1035 master-file text.
 *
 *   struct dns_zone *z; dns_zone_new(&z, &err);
 *   dns_zone_add_text(z, "node.test MX 10 mx1.node.test", &err);   // short form, TTL 60
 *   dns_zone_load_file(z, "fixtures/zones/node.zone", on_directive, ctx, &err);  // "path:line: ..."
 *
 * Records are ldns_rr objects parsed by ldns (any type ldns knows). Names are absolute:
 * text without a trailing dot is taken relative to the origin ("." for record text,
 * $ORIGIN in files). Look-ups are case-insensitive. The store is bounded
 * (DNS_ZONE_MAX_RECORDS); loading a file is all or nothing. */
#ifndef ETRN_DNS_ZONE_H
#define ETRN_DNS_ZONE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <ldns/ldns.h>

#include "err.h"

#define DNS_ZONE_DEFAULT_TTL 60
#define DNS_ZONE_MAX_RECORDS 100000
#define DNS_ZONE_LINE_MAX 4096          /* one physical line of a zone file */
#define DNS_ZONE_RECORD_TEXT_MAX 16384  /* one record, parentheses joined */
#define DNS_NAME_KEY_MAX 256            /* a name in lower-case wire form */
#define DNS_NAME_TEXT_MAX 1024          /* a name in presentation form, escapes included */

struct dns_zone;

/* A directive found in a zone file as a comment line ";! TEXT". origin is the $ORIGIN in
 * force there. Returns 0, or -1 with err filled (the loader adds "path:line: "). */
typedef int (*dns_zone_directive_fn)(void *ctx, const char *text, const ldns_rdf *origin,
                                     struct etrn_err *err);

int dns_zone_new(struct dns_zone **out, struct etrn_err *err);
void dns_zone_free(struct dns_zone *z);

/* Parses a name; relative names get origin appended ("." when origin is NULL), "@" is the
 * origin itself. */
int dns_name_parse(ldns_rdf **out, const char *text, const ldns_rdf *origin,
                   struct etrn_err *err);
/* The name's lower-case wire form, the key every table uses; returns its length. */
size_t dns_name_key(const ldns_rdf *dname, uint8_t key[DNS_NAME_KEY_MAX]);
/* "node.test." (presentation form, with the trailing dot) into buf; "?" if it does not fit. */
void dns_name_format(const ldns_rdf *dname, char *buf, size_t n);
/* Same from a wire-form key. */
void dns_name_format_key(const uint8_t *key, size_t keylen, char *buf, size_t n);

/* Parses "OWNER [TTL] [CLASS] TYPE RDATA..." (the order of TTL and CLASS is free) into a
 * record; errors say what is wrong ("unknown record type 'MXX'"). */
int dns_record_parse(ldns_rr **out, const char *text, const ldns_rdf *origin,
                     uint32_t default_ttl, struct etrn_err *err);

/* Adds a record; always takes ownership of rr. An identical record is not added twice. */
int dns_zone_add(struct dns_zone *z, ldns_rr *rr, struct etrn_err *err);
/* dns_record_parse with origin "." and TTL 60, then dns_zone_add. */
int dns_zone_add_text(struct dns_zone *z, const char *text, struct etrn_err *err);
/* Moves every record of src into z (src is left empty). Fails without change if z would
 * exceed DNS_ZONE_MAX_RECORDS. */
int dns_zone_merge(struct dns_zone *z, struct dns_zone *src, struct etrn_err *err);

/* Reads master-file text: $ORIGIN, $TTL, "@", owners omitted on continuation lines,
 * parentheses over several lines, ';' comments, quoted strings. Lines ";! TEXT" go to fn
 * (may be NULL: then they are errors). label names the input in errors ("label:line: ...").
 * All or nothing: on error z is unchanged. */
int dns_zone_load_stream(struct dns_zone *z, FILE *fp, const char *label,
                         dns_zone_directive_fn fn, void *ctx, struct etrn_err *err);
int dns_zone_load_file(struct dns_zone *z, const char *path, dns_zone_directive_fn fn,
                       void *ctx, struct etrn_err *err);

/* Removes NAME's records of the type (0: all types); returns how many went. */
size_t dns_zone_remove(struct dns_zone *z, const ldns_rdf *name, ldns_rr_type type);

/* NAME's records (owners as stored), or NULL if it has none. Valid until the next change. */
const ldns_rr_list *dns_zone_find(const struct dns_zone *z, const ldns_rdf *name);
/* 1 if NAME has records or a name below it has (an "empty non-terminal"), else 0. */
int dns_zone_name_exists(const struct dns_zone *z, const ldns_rdf *name);
/* The SOA of the closest enclosing zone (NAME or an ancestor), or NULL. */
const ldns_rr *dns_zone_find_soa(const struct dns_zone *z, const ldns_rdf *name);
/* 1 if some MX record anywhere names TARGET as its exchange. */
int dns_zone_is_mx_target(const struct dns_zone *z, const ldns_rdf *target);

size_t dns_zone_record_count(const struct dns_zone *z);
/* Changes on every add or remove; lets caches know they are stale. */
uint64_t dns_zone_generation(const struct dns_zone *z);

#endif
