/* dns_quirks.h — DNS misbehaviours by name: what each quirk is called, its argument, and the
 * per-name table the simulator's DNS server consults for every question.
 *
 *   struct dns_quirk_table *t; dns_quirk_table_new(&t, &err);
 *   dns_quirk_table_set_text(t, "node.test", "delay 500ms", NULL, &err);   // or "*" for all
 *   struct dns_quirk_set eff; dns_quirk_table_effective(t, qname, &eff);
 *
 * Quirk text is "NAME [ARG...]" as in the scenario line `dns-quirk NAME QUIRK [ARG]` and the
 * zone-file directive `;! quirk NAME QUIRK [ARG]`; docs/DNS-QUIRKS.md says what a resolver
 * sees for each. Names are matched exactly, ignoring case; "*" applies to every name, and
 * a name's own quirks win over "*" ones of the same kind. The table is bounded
 * (DNS_QUIRK_TABLE_MAX names). */
#ifndef ETRN_DNS_QUIRKS_H
#define ETRN_DNS_QUIRKS_H

#include <stddef.h>
#include <stdint.h>
#include <ldns/ldns.h>

#include "err.h"
#include "dns_zone.h"

#define DNS_QUIRK_TABLE_MAX 4096
#define DNS_QUIRK_CHAIN_MAX 16          /* cname-chain N: 1..16 */
#define DNS_QUIRK_DELAY_MAX_MS 600000   /* delay: up to 10 minutes */
#define DNS_QUIRK_OVERSIZE_MAX 60000    /* oversize SIZE: a UDP datagram must still fit */
#define DNS_QUIRK_FLAP_RECORDS_MAX 64

enum dns_quirk_kind {
    /* What the answer is (mutually exclusive: setting one clears the others). */
    DNS_QUIRK_SERVFAIL,
    DNS_QUIRK_REFUSED,
    DNS_QUIRK_NXDOMAIN,
    DNS_QUIRK_NODATA,
    DNS_QUIRK_RCODE,
    DNS_QUIRK_TIMEOUT,
    /* When and how it is sent. */
    DNS_QUIRK_DELAY,
    DNS_QUIRK_TRUNCATE,
    DNS_QUIRK_WRONG_ID,
    DNS_QUIRK_WRONG_QUESTION,
    DNS_QUIRK_CASE_0X20,
    DNS_QUIRK_OVERSIZE,
    DNS_QUIRK_DROP_TCP,
    /* What the records look like. */
    DNS_QUIRK_CNAME_CHAIN,
    DNS_QUIRK_CNAME_LOOP,
    DNS_QUIRK_MX_TO_CNAME,
    DNS_QUIRK_MX_NO_ADDRESS,
    DNS_QUIRK_NULL_MX,
    DNS_QUIRK_TTL0,
    DNS_QUIRK_FLAP,
    /* Broken packets (written by dns_malformed.c; mutually exclusive). */
    DNS_QUIRK_CUT_OFF,
    DNS_QUIRK_POINTER_LOOP,
    DNS_QUIRK_COUNT
};

#define DNS_QUIRK_BIT(kind) (UINT32_C(1) << (kind))
#define DNS_QUIRK_OUTCOME_BITS                                                        \
    (DNS_QUIRK_BIT(DNS_QUIRK_SERVFAIL) | DNS_QUIRK_BIT(DNS_QUIRK_REFUSED)               \
     | DNS_QUIRK_BIT(DNS_QUIRK_NXDOMAIN) | DNS_QUIRK_BIT(DNS_QUIRK_NODATA)              \
     | DNS_QUIRK_BIT(DNS_QUIRK_RCODE) | DNS_QUIRK_BIT(DNS_QUIRK_TIMEOUT))
#define DNS_QUIRK_MALFORMED_BITS                                                      \
    (DNS_QUIRK_BIT(DNS_QUIRK_CUT_OFF) | DNS_QUIRK_BIT(DNS_QUIRK_POINTER_LOOP))

/* What every other query gets under `flap`. */
enum dns_flap_outcome {
    DNS_FLAP_NXDOMAIN,
    DNS_FLAP_SERVFAIL,
    DNS_FLAP_REFUSED,
    DNS_FLAP_NODATA,
    DNS_FLAP_TIMEOUT,
    DNS_FLAP_RECORDS    /* the alternative records given with flap */
};

/* One parsed quirk with its argument. */
struct dns_quirk {
    enum dns_quirk_kind kind;
    unsigned long long delay_ms;
    unsigned chain_length;
    int rcode;
    size_t oversize_bytes;          /* 0: just over what the client accepts */
    ldns_rdf *name;                 /* wrong-question / cname-loop target, or NULL */
    enum dns_flap_outcome flap;
    ldns_rr *flap_record;           /* flap TYPE RDATA..., or NULL */
};

/* Every quirk in force for one name. */
struct dns_quirk_set {
    uint32_t active;                /* DNS_QUIRK_BIT(kind) */
    unsigned long long delay_ms;
    unsigned chain_length;
    int rcode;
    size_t oversize_bytes;
    ldns_rdf *wrong_question;       /* NULL: "wrong-question.invalid." */
    ldns_rdf *loop_target;          /* NULL: "loop.NAME" */
    enum dns_flap_outcome flap;
    ldns_rr_list *flap_records;     /* DNS_FLAP_RECORDS: owned by the table */
};

struct dns_quirk_table;

/* "servfail", "delay", ... ; NULL for an out-of-range kind. */
const char *dns_quirk_name(enum dns_quirk_kind kind);
/* The kind named by word; -1 if none (err lists the names). */
int dns_quirk_kind_parse(const char *word, enum dns_quirk_kind *out, struct etrn_err *err);
/* Parses argv = {"delay", "500ms"} for quirks on owner (flap records get it as owner);
 * relative names in arguments are completed with origin (NULL: "."). */
int dns_quirk_parse(struct dns_quirk *out, const ldns_rdf *owner, char *const *argv, int argc,
                    const ldns_rdf *origin, struct etrn_err *err);
/* Frees what a parsed quirk holds (not q itself). */
void dns_quirk_release(struct dns_quirk *q);
/* "delay,ttl0" — the names of the bits set, comma-separated, into buf. */
void dns_quirk_bits_format(uint32_t bits, char *buf, size_t n);

int dns_quirk_table_new(struct dns_quirk_table **out, struct etrn_err *err);
void dns_quirk_table_free(struct dns_quirk_table *t);
/* Sets q on name ("*" = every name); takes what q holds. Setting a kind again replaces its
 * argument, except flap records, which add to the alternative set. */
int dns_quirk_table_set(struct dns_quirk_table *t, const char *name, struct dns_quirk *q,
                        const ldns_rdf *origin, struct etrn_err *err);
/* Parses text ("delay 500ms") and sets it. */
int dns_quirk_table_set_text(struct dns_quirk_table *t, const char *name, const char *text,
                             const ldns_rdf *origin, struct etrn_err *err);
/* Clears one quirk (by its name word) or all of name's quirks (quirk NULL or "").
 * Returns the number of quirks removed, or -1 for an unknown quirk word or bad name. */
int dns_quirk_table_clear(struct dns_quirk_table *t, const char *name, const char *quirk,
                          struct etrn_err *err);

/* The quirks for qname: "*" overlaid with qname's own. The result points into the table
 * and is valid until the table changes. */
void dns_quirk_table_effective(const struct dns_quirk_table *t, const ldns_rdf *qname,
                               struct dns_quirk_set *out);
/* qname's own set (no "*"), or NULL. */
const struct dns_quirk_set *dns_quirk_table_find(const struct dns_quirk_table *t,
                                                 const ldns_rdf *qname);
/* Union of the active bits over every entry: lets the server skip work for unused kinds. */
uint32_t dns_quirk_table_bits_in_use(const struct dns_quirk_table *t);
/* Walks the entries; name is NULL for "*". Returns the number of entries. */
size_t dns_quirk_table_count(const struct dns_quirk_table *t);
const struct dns_quirk_set *dns_quirk_table_entry(const struct dns_quirk_table *t, size_t i,
                                                  const ldns_rdf **name);
/* Changes on every set and clear. */
uint64_t dns_quirk_table_generation(const struct dns_quirk_table *t);

#endif
