/* dns_quirks.c — quirk names, their arguments, and the per-name quirk table.
 *
 *   dns_quirk_table_set_text(t, "node.test", "cname-chain 3", NULL, &err);
 *   dns_quirk_table_effective(t, qname, &set);   // "*" overlaid with node.test's own
 *   dns_quirk_table_clear(t, "node.test", "cname-chain", &err);
 *
 * Only bookkeeping lives here; dns_server.c decides what each quirk does to an answer.
 * Guarantees: a failed set or clear leaves the table as it was; the table holds at most
 * DNS_QUIRK_TABLE_MAX names and each flap set at most DNS_QUIRK_FLAP_RECORDS_MAX records. */
#include <stdlib.h>
#include <string.h>

#include "dns_quirks.h"
#include "sim_words.h"
#include "strbuf.h"

static const char *const quirk_names[DNS_QUIRK_COUNT] = {
    [DNS_QUIRK_SERVFAIL] = "servfail",
    [DNS_QUIRK_REFUSED] = "refused",
    [DNS_QUIRK_NXDOMAIN] = "nxdomain",
    [DNS_QUIRK_NODATA] = "nodata",
    [DNS_QUIRK_RCODE] = "rcode",
    [DNS_QUIRK_TIMEOUT] = "timeout",
    [DNS_QUIRK_DELAY] = "delay",
    [DNS_QUIRK_TRUNCATE] = "truncate",
    [DNS_QUIRK_WRONG_ID] = "wrong-id",
    [DNS_QUIRK_WRONG_QUESTION] = "wrong-question",
    [DNS_QUIRK_CASE_0X20] = "case-0x20",
    [DNS_QUIRK_OVERSIZE] = "oversize",
    [DNS_QUIRK_DROP_TCP] = "drop-tcp",
    [DNS_QUIRK_CNAME_CHAIN] = "cname-chain",
    [DNS_QUIRK_CNAME_LOOP] = "cname-loop",
    [DNS_QUIRK_MX_TO_CNAME] = "mx-to-cname",
    [DNS_QUIRK_MX_NO_ADDRESS] = "mx-no-address",
    [DNS_QUIRK_NULL_MX] = "null-mx",
    [DNS_QUIRK_TTL0] = "ttl0",
    [DNS_QUIRK_FLAP] = "flap",
    [DNS_QUIRK_CUT_OFF] = "cut-off",
    [DNS_QUIRK_POINTER_LOOP] = "pointer-loop",
};

static const char *const flap_words[] = {
    [DNS_FLAP_NXDOMAIN] = "nxdomain", [DNS_FLAP_SERVFAIL] = "servfail",
    [DNS_FLAP_REFUSED] = "refused",   [DNS_FLAP_NODATA] = "nodata",
    [DNS_FLAP_TIMEOUT] = "timeout",
};

struct quirk_entry {
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t keylen;
    ldns_rdf *name;
    struct dns_quirk_set set;
};

struct dns_quirk_table {
    struct quirk_entry *entries;
    size_t n, cap;
    struct dns_quirk_set wildcard;
    uint32_t bits_in_use;
    uint64_t generation;
};

const char *dns_quirk_name(enum dns_quirk_kind kind)
{
    return (unsigned)kind < DNS_QUIRK_COUNT ? quirk_names[kind] : NULL;
}

int dns_quirk_kind_parse(const char *word, enum dns_quirk_kind *out, struct etrn_err *err)
{
    char list[512];
    for (int k = 0; k < DNS_QUIRK_COUNT; k++) {
        if (str_casecmp(word, quirk_names[k]) == 0) {
            *out = (enum dns_quirk_kind)k;
            return 0;
        }
    }
    dns_quirk_bits_format((UINT32_C(1) << DNS_QUIRK_COUNT) - 1, list, sizeof list);
    return err_set(err, "unknown DNS quirk '%s' (expected one of %s)", word, list);
}

void dns_quirk_bits_format(uint32_t bits, char *buf, size_t n)
{
    struct strbuf sb;
    strbuf_init(&sb, n > 0 ? n - 1 : 0);
    for (int k = 0; k < DNS_QUIRK_COUNT; k++)
        if (bits & DNS_QUIRK_BIT(k))
            (void)strbuf_appendf(&sb, "%s%s", sb.len ? "," : "", quirk_names[k]);
    if (str_copy(buf, n, sb.data) < 0 && n > 0)
        buf[0] = '\0';
    strbuf_free(&sb);
}

void dns_quirk_release(struct dns_quirk *q)
{
    ldns_rdf_deep_free(q->name);
    ldns_rr_free(q->flap_record);
    q->name = NULL;
    q->flap_record = NULL;
}

static int parse_flap(struct dns_quirk *q, const ldns_rdf *owner, char *const *argv, int argc,
                      const ldns_rdf *origin, struct etrn_err *err)
{
    q->flap = DNS_FLAP_NXDOMAIN;
    if (argc == 1)
        return 0;
    if (argc == 2) {
        for (size_t i = 0; i < sizeof flap_words / sizeof flap_words[0]; i++) {
            if (str_casecmp(argv[1], flap_words[i]) == 0) {
                q->flap = (enum dns_flap_outcome)i;
                return 0;
            }
        }
    }
    if (owner == NULL)
        return err_set(err, "flap: alternative records need a name, not '*'");
    /* "flap MX 20 mx2.node.test": a record for owner, answered every other time. */
    struct strbuf sb;
    char ob[DNS_NAME_TEXT_MAX];
    strbuf_init(&sb, DNS_ZONE_RECORD_TEXT_MAX);
    dns_name_format(owner, ob, sizeof ob);
    int rc = strbuf_append_str(&sb, ob);
    for (int i = 1; i < argc && rc == 0; i++)
        rc = strbuf_appendf(&sb, " %s", argv[i]);
    if (rc < 0) {
        strbuf_free(&sb);
        return err_set(err, "flap: record is too long");
    }
    rc = dns_record_parse(&q->flap_record, sb.data, origin, DNS_ZONE_DEFAULT_TTL, err);
    strbuf_free(&sb);
    if (rc < 0)
        return err_prefix(err, "flap: expected nxdomain, servfail, refused, nodata, timeout "
                               "or a record (TYPE RDATA...)");
    q->flap = DNS_FLAP_RECORDS;
    return 0;
}

int dns_quirk_parse(struct dns_quirk *q, const ldns_rdf *owner, char *const *argv, int argc,
                    const ldns_rdf *origin, struct etrn_err *err)
{
    unsigned long long v = 0;

    memset(q, 0, sizeof *q);
    if (argc < 1)
        return err_set(err, "missing DNS quirk");
    if (dns_quirk_kind_parse(argv[0], &q->kind, err) < 0)
        return -1;
    const char *word = quirk_names[q->kind];
    switch (q->kind) {
    case DNS_QUIRK_DELAY:
        if (argc != 2)
            return err_set(err, "delay needs one duration ('delay 500ms')");
        if (sim_words_duration_ms("delay", argv[1], &v, err) < 0)
            return -1;
        if (v > DNS_QUIRK_DELAY_MAX_MS)
            return err_set(err, "delay: '%s' is over the limit of %d ms", argv[1],
                           DNS_QUIRK_DELAY_MAX_MS);
        q->delay_ms = v;
        return 0;
    case DNS_QUIRK_RCODE:
        if (argc != 2)
            return err_set(err, "rcode needs a response code ('rcode 4' or 'rcode NOTIMP')");
        if (str_casecmp(argv[1], "NOTIMP") == 0) {   /* dig's spelling of ldns's NOTIMPL */
            q->rcode = LDNS_RCODE_NOTIMPL;
            return 0;
        }
        {
            ldns_lookup_table *lt = ldns_lookup_by_name(ldns_rcodes, argv[1]);
            if (lt != NULL) {
                q->rcode = lt->id;
                return 0;
            }
        }
        if (sim_words_uint("rcode", argv[1], 15, &v, err) < 0)
            return -1;
        q->rcode = (int)v;
        return 0;
    case DNS_QUIRK_CNAME_CHAIN:
        if (argc != 2)
            return err_set(err, "cname-chain needs a length ('cname-chain 3')");
        if (sim_words_uint("cname-chain", argv[1], DNS_QUIRK_CHAIN_MAX, &v, err) < 0)
            return -1;
        if (v == 0)
            return err_set(err, "cname-chain: the length must be 1 to %d", DNS_QUIRK_CHAIN_MAX);
        q->chain_length = (unsigned)v;
        return 0;
    case DNS_QUIRK_OVERSIZE:
        if (argc > 2)
            return err_set(err, "oversize takes at most a size ('oversize 2k')");
        if (argc == 2) {
            if (sim_words_size("oversize", argv[1], &v, err) < 0)
                return -1;
            if (v < 513 || v > DNS_QUIRK_OVERSIZE_MAX)
                return err_set(err, "oversize: '%s' must be 513 to %d octets", argv[1],
                               DNS_QUIRK_OVERSIZE_MAX);
            q->oversize_bytes = (size_t)v;
        }
        return 0;
    case DNS_QUIRK_WRONG_QUESTION:
    case DNS_QUIRK_CNAME_LOOP:
        if (argc > 2)
            return err_set(err, "%s takes at most a name", word);
        if (argc == 2 && dns_name_parse(&q->name, argv[1], origin, err) < 0)
            return err_prefix(err, "%s", word);
        if (q->kind == DNS_QUIRK_CNAME_LOOP && q->name != NULL && owner != NULL
            && ldns_dname_compare(q->name, owner) == 0) {
            dns_quirk_release(q);
            return err_set(err, "cname-loop: the other name must differ from the name");
        }
        return 0;
    case DNS_QUIRK_FLAP:
        return parse_flap(q, owner, argv, argc, origin, err);
    default:
        if (argc != 1)
            return err_set(err, "%s takes no argument (got '%s')", word, argv[1]);
        return 0;
    }
}

int dns_quirk_table_new(struct dns_quirk_table **out, struct etrn_err *err)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : err_set(err, "dns quirks: out of memory");
}

static void set_release_kind(struct dns_quirk_set *s, enum dns_quirk_kind kind)
{
    s->active &= ~DNS_QUIRK_BIT(kind);
    if (kind == DNS_QUIRK_WRONG_QUESTION) {
        ldns_rdf_deep_free(s->wrong_question);
        s->wrong_question = NULL;
    } else if (kind == DNS_QUIRK_CNAME_LOOP) {
        ldns_rdf_deep_free(s->loop_target);
        s->loop_target = NULL;
    } else if (kind == DNS_QUIRK_FLAP) {
        ldns_rr_list_deep_free(s->flap_records);
        s->flap_records = NULL;
    }
}

static void set_release(struct dns_quirk_set *s)
{
    for (int k = 0; k < DNS_QUIRK_COUNT; k++)
        set_release_kind(s, (enum dns_quirk_kind)k);
    memset(s, 0, sizeof *s);
}

void dns_quirk_table_free(struct dns_quirk_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        set_release(&t->entries[i].set);
        ldns_rdf_deep_free(t->entries[i].name);
    }
    set_release(&t->wildcard);
    free(t->entries);
    free(t);
}

static void table_changed(struct dns_quirk_table *t)
{
    uint32_t bits = t->wildcard.active;
    for (size_t i = 0; i < t->n; i++)
        bits |= t->entries[i].set.active;
    t->bits_in_use = bits;
    t->generation++;
}

static struct quirk_entry *table_lookup(const struct dns_quirk_table *t, const ldns_rdf *name)
{
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t n = dns_name_key(name, key);
    for (size_t i = 0; i < t->n; i++)
        if (t->entries[i].keylen == n && memcmp(t->entries[i].key, key, n) == 0)
            return &t->entries[i];
    return NULL;
}

/* The set for name, created if needed; NULL (err filled) if the table is full. */
static struct dns_quirk_set *table_slot(struct dns_quirk_table *t, const ldns_rdf *name,
                                        struct etrn_err *err)
{
    if (name == NULL)
        return &t->wildcard;
    struct quirk_entry *e = table_lookup(t, name);
    if (e != NULL)
        return &e->set;
    if (t->n >= DNS_QUIRK_TABLE_MAX) {
        err_set(err, "too many names with DNS quirks (limit %d)", DNS_QUIRK_TABLE_MAX);
        return NULL;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct quirk_entry *v = realloc(t->entries, cap * sizeof *v);
        if (v == NULL) {
            err_set(err, "dns quirks: out of memory");
            return NULL;
        }
        t->entries = v;
        t->cap = cap;
    }
    e = &t->entries[t->n];
    memset(e, 0, sizeof *e);
    e->name = ldns_rdf_clone(name);
    if (e->name == NULL) {
        err_set(err, "dns quirks: out of memory");
        return NULL;
    }
    e->keylen = dns_name_key(name, e->key);
    t->n++;
    return &e->set;
}

/* name "*" -> *out NULL; otherwise an absolute name the caller frees. */
static int table_name_parse(const char *text, const ldns_rdf *origin, ldns_rdf **out,
                            struct etrn_err *err)
{
    *out = NULL;
    if (strcmp(text, "*") == 0)
        return 0;
    return dns_name_parse(out, text, origin, err);
}

int dns_quirk_table_set(struct dns_quirk_table *t, const char *name_text, struct dns_quirk *q,
                        const ldns_rdf *origin, struct etrn_err *err)
{
    ldns_rdf *name = NULL;
    struct dns_quirk_set *s;

    if (table_name_parse(name_text, origin, &name, err) < 0
        || (s = table_slot(t, name, err)) == NULL) {
        ldns_rdf_deep_free(name);
        dns_quirk_release(q);
        return -1;
    }
    ldns_rdf_deep_free(name);
    uint32_t bit = DNS_QUIRK_BIT(q->kind);
    if (q->kind == DNS_QUIRK_FLAP && q->flap_record != NULL) {
        size_t have = s->flap_records != NULL ? ldns_rr_list_rr_count(s->flap_records) : 0;
        if (!(s->active & bit) || s->flap != DNS_FLAP_RECORDS || s->flap_records == NULL)
            set_release_kind(s, DNS_QUIRK_FLAP), have = 0;
        if (have >= DNS_QUIRK_FLAP_RECORDS_MAX) {
            dns_quirk_release(q);
            return err_set(err, "flap: too many alternative records (limit %d)",
                           DNS_QUIRK_FLAP_RECORDS_MAX);
        }
        if (s->flap_records == NULL && (s->flap_records = ldns_rr_list_new()) == NULL) {
            dns_quirk_release(q);
            return err_set(err, "dns quirks: out of memory");
        }
        if (!ldns_rr_list_push_rr(s->flap_records, q->flap_record)) {
            dns_quirk_release(q);
            return err_set(err, "dns quirks: out of memory");
        }
        q->flap_record = NULL;
        s->flap = DNS_FLAP_RECORDS;
        s->active |= bit;
        table_changed(t);
        return 0;
    }
    /* Exclusive groups: one outcome, one kind of broken packet. */
    uint32_t group = (bit & DNS_QUIRK_OUTCOME_BITS)    ? DNS_QUIRK_OUTCOME_BITS
                     : (bit & DNS_QUIRK_MALFORMED_BITS) ? DNS_QUIRK_MALFORMED_BITS
                                                        : bit;
    for (int k = 0; k < DNS_QUIRK_COUNT; k++)
        if (group & DNS_QUIRK_BIT(k))
            set_release_kind(s, (enum dns_quirk_kind)k);
    switch (q->kind) {
    case DNS_QUIRK_DELAY: s->delay_ms = q->delay_ms; break;
    case DNS_QUIRK_RCODE: s->rcode = q->rcode; break;
    case DNS_QUIRK_CNAME_CHAIN: s->chain_length = q->chain_length; break;
    case DNS_QUIRK_OVERSIZE: s->oversize_bytes = q->oversize_bytes; break;
    case DNS_QUIRK_WRONG_QUESTION: s->wrong_question = q->name, q->name = NULL; break;
    case DNS_QUIRK_CNAME_LOOP: s->loop_target = q->name, q->name = NULL; break;
    case DNS_QUIRK_FLAP: s->flap = q->flap; break;
    default: break;
    }
    s->active |= bit;
    dns_quirk_release(q);
    table_changed(t);
    return 0;
}

int dns_quirk_table_set_text(struct dns_quirk_table *t, const char *name, const char *text,
                             const ldns_rdf *origin, struct etrn_err *err)
{
    char buf[DNS_ZONE_RECORD_TEXT_MAX];
    char *argv[64];
    int argc = 0;
    struct dns_quirk q;
    ldns_rdf *owner = NULL;

    if (str_copy(buf, sizeof buf, text) < 0)
        return err_set(err, "DNS quirk text is too long");
    for (char *p = buf; *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (argc == (int)(sizeof argv / sizeof argv[0]))
            return err_set(err, "DNS quirk has too many words");
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    if (table_name_parse(name, origin, &owner, err) < 0)
        return -1;
    int rc = dns_quirk_parse(&q, owner, argv, argc, origin, err);
    ldns_rdf_deep_free(owner);
    if (rc < 0)
        return -1;
    return dns_quirk_table_set(t, name, &q, origin, err);
}

int dns_quirk_table_clear(struct dns_quirk_table *t, const char *name_text, const char *quirk,
                          struct etrn_err *err)
{
    ldns_rdf *name = NULL;
    enum dns_quirk_kind kind = DNS_QUIRK_COUNT;
    struct dns_quirk_set *s;
    size_t index = 0;

    if (quirk != NULL && quirk[0] != '\0' && dns_quirk_kind_parse(quirk, &kind, err) < 0)
        return -1;
    if (table_name_parse(name_text, NULL, &name, err) < 0)
        return -1;
    if (name == NULL) {
        s = &t->wildcard;
    } else {
        struct quirk_entry *e = table_lookup(t, name);
        ldns_rdf_deep_free(name);
        if (e == NULL)
            return 0;
        s = &e->set;
        index = (size_t)(e - t->entries);
    }
    int removed = 0;
    for (int k = 0; k < DNS_QUIRK_COUNT; k++) {
        if ((kind == DNS_QUIRK_COUNT || k == (int)kind) && (s->active & DNS_QUIRK_BIT(k))) {
            set_release_kind(s, (enum dns_quirk_kind)k);
            removed++;
        }
    }
    if (s != &t->wildcard && s->active == 0) {
        set_release(s);
        ldns_rdf_deep_free(t->entries[index].name);
        t->entries[index] = t->entries[--t->n];
    }
    table_changed(t);
    return removed;
}

static void set_overlay_kind(struct dns_quirk_set *out, const struct dns_quirk_set *s, int k)
{
    out->active |= DNS_QUIRK_BIT(k);
    switch (k) {
    case DNS_QUIRK_DELAY: out->delay_ms = s->delay_ms; break;
    case DNS_QUIRK_RCODE: out->rcode = s->rcode; break;
    case DNS_QUIRK_CNAME_CHAIN: out->chain_length = s->chain_length; break;
    case DNS_QUIRK_OVERSIZE: out->oversize_bytes = s->oversize_bytes; break;
    case DNS_QUIRK_WRONG_QUESTION: out->wrong_question = s->wrong_question; break;
    case DNS_QUIRK_CNAME_LOOP: out->loop_target = s->loop_target; break;
    case DNS_QUIRK_FLAP:
        out->flap = s->flap;
        out->flap_records = s->flap_records;
        break;
    default: break;
    }
}

void dns_quirk_table_effective(const struct dns_quirk_table *t, const ldns_rdf *qname,
                               struct dns_quirk_set *out)
{
    memset(out, 0, sizeof *out);
    if (t->bits_in_use == 0)
        return;
    *out = t->wildcard;
    const struct quirk_entry *e = t->n > 0 ? table_lookup(t, qname) : NULL;
    if (e == NULL)
        return;
    const struct dns_quirk_set *s = &e->set;
    if (s->active & DNS_QUIRK_OUTCOME_BITS)
        out->active &= ~DNS_QUIRK_OUTCOME_BITS;
    if (s->active & DNS_QUIRK_MALFORMED_BITS)
        out->active &= ~DNS_QUIRK_MALFORMED_BITS;
    for (int k = 0; k < DNS_QUIRK_COUNT; k++)
        if (s->active & DNS_QUIRK_BIT(k))
            set_overlay_kind(out, s, k);
}

const struct dns_quirk_set *dns_quirk_table_find(const struct dns_quirk_table *t,
                                                 const ldns_rdf *qname)
{
    const struct quirk_entry *e = t->n > 0 ? table_lookup(t, qname) : NULL;
    return e != NULL ? &e->set : NULL;
}

uint32_t dns_quirk_table_bits_in_use(const struct dns_quirk_table *t)
{
    return t->bits_in_use;
}

size_t dns_quirk_table_count(const struct dns_quirk_table *t)
{
    return t->n + 1;
}

const struct dns_quirk_set *dns_quirk_table_entry(const struct dns_quirk_table *t, size_t i,
                                                  const ldns_rdf **name)
{
    if (i == t->n) {
        *name = NULL;
        return &t->wildcard;
    }
    if (i > t->n)
        return NULL;
    *name = t->entries[i].name;
    return &t->entries[i].set;
}

uint64_t dns_quirk_table_generation(const struct dns_quirk_table *t)
{
    return t->generation;
}
