/* dns_zone.c — the simulator DNS server's record store and its master-file reader.
 *
 *   dns_zone_new(&z, &err);
 *   dns_zone_add_text(z, "mx1.node.test A 127.0.0.2", &err);
 *   const ldns_rr_list *rrs = dns_zone_find(z, name);
 *
 * ldns parses every record (we never encode DNS ourselves here); this file only splits
 * master-file lines, makes owners absolute and keeps records in a hash table keyed by the
 * lower-case wire form of the owner. Guarantees: names are absolute, look-ups ignore case,
 * the store never holds more than DNS_ZONE_MAX_RECORDS, and a file loads whole or not at
 * all, with errors as "path:line: what". */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns_zone.h"
#include "strbuf.h"

#define DNS_ZONE_BUCKETS 4096

struct dns_zone_node {
    struct dns_zone_node *next;
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t keylen;
    ldns_rdf *name;
    ldns_rr_list *rrs;
};

struct dns_zone {
    struct dns_zone_node *buckets[DNS_ZONE_BUCKETS];
    size_t nrecords;
    uint64_t generation;
};

/* --- names ------------------------------------------------------------------------------ */

size_t dns_name_key(const ldns_rdf *dname, uint8_t key[DNS_NAME_KEY_MAX])
{
    size_t n = ldns_rdf_size(dname);
    if (n > DNS_NAME_KEY_MAX)
        n = DNS_NAME_KEY_MAX;
    memcpy(key, ldns_rdf_data(dname), n);
    /* Label length bytes are at most 63, below 'A', so only label text changes. */
    for (size_t i = 0; i < n; i++)
        if (key[i] >= 'A' && key[i] <= 'Z')
            key[i] = (uint8_t)(key[i] + ('a' - 'A'));
    return n;
}

void dns_name_format(const ldns_rdf *dname, char *buf, size_t n)
{
    char *text = dname != NULL ? ldns_rdf2str(dname) : NULL;
    if (text == NULL || str_copy(buf, n, text) < 0)
        str_copy(buf, n, "?");
    free(text);
}

void dns_name_format_key(const uint8_t *key, size_t keylen, char *buf, size_t n)
{
    ldns_rdf *d = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, keylen, key);
    dns_name_format(d, buf, n);
    ldns_rdf_deep_free(d);
}

static int text_is_absolute(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || text[n - 1] != '.')
        return 0;
    size_t slashes = 0;
    while (slashes + 1 < n && text[n - 2 - slashes] == '\\')
        slashes++;
    return slashes % 2 == 0;
}

int dns_name_parse(ldns_rdf **out, const char *text, const ldns_rdf *origin,
                   struct etrn_err *err)
{
    char full[DNS_NAME_TEXT_MAX];
    *out = NULL;
    if (text[0] == '\0')
        return err_set(err, "empty name");
    if (strcmp(text, "@") == 0) {
        *out = origin != NULL ? ldns_rdf_clone(origin) : ldns_dname_new_frm_str(".");
        return *out != NULL ? 0 : err_set(err, "out of memory");
    }
    if (text_is_absolute(text) || origin == NULL || ldns_dname_label_count(origin) == 0) {
        if (str_format(full, sizeof full, "%s%s", text, text_is_absolute(text) ? "" : ".") < 0)
            return err_set(err, "name '%.64s...' is too long", text);
    } else {
        char ob[DNS_NAME_TEXT_MAX];
        dns_name_format(origin, ob, sizeof ob);
        if (str_format(full, sizeof full, "%s.%s", text, ob) < 0)
            return err_set(err, "name '%.64s...' is too long", text);
    }
    *out = ldns_dname_new_frm_str(full);
    if (*out == NULL)
        return err_set(err, "'%s' is not a domain name (labels up to 63, names up to 255 "
                            "octets)", text);
    return 0;
}

/* --- records ---------------------------------------------------------------------------- */

/* Next blank-separated token of s (quotes kept together); NULL at the end. */
static const char *token_next(const char *s, const char **end)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return NULL;
    const char *p = s;
    int quoted = 0;
    while (*p != '\0' && (quoted || (*p != ' ' && *p != '\t'))) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '"')
            quoted = !quoted;
        p++;
    }
    *end = p;
    return s;
}

static int token_is_ttl(const char *tok)
{
    if (!isdigit((unsigned char)tok[0]))
        return 0;
    const char *end = NULL;
    (void)ldns_str2period(tok, &end);
    return end != NULL && *end == '\0';
}

int dns_record_parse(ldns_rr **out, const char *text, const ldns_rdf *origin,
                     uint32_t default_ttl, struct etrn_err *err)
{
    char owner_text[DNS_NAME_TEXT_MAX], tok[64], ttl_text[64] = "", class_text[16] = "IN";
    char type_text[64];
    const char *p = text, *end = NULL, *t;

    *out = NULL;
    t = token_next(p, &end);
    if (t == NULL)
        return err_set(err, "empty record");
    if ((size_t)(end - t) >= sizeof owner_text)
        return err_set(err, "owner name is too long");
    memcpy(owner_text, t, (size_t)(end - t));
    owner_text[end - t] = '\0';
    p = end;

    ldns_rdf *owner = NULL;
    if (dns_name_parse(&owner, owner_text, origin, err) < 0)
        return -1;

    /* TTL and class may come in either order (RFC 1035 5.1); ldns wants TTL first. */
    for (;;) {
        t = token_next(p, &end);
        if (t == NULL) {
            ldns_rdf_deep_free(owner);
            return err_set(err, "'%s': no record type", text);
        }
        if ((size_t)(end - t) >= sizeof tok) {
            ldns_rdf_deep_free(owner);
            return err_set(err, "'%.40s...': no record type where expected", text);
        }
        memcpy(tok, t, (size_t)(end - t));
        tok[end - t] = '\0';
        if (ttl_text[0] == '\0' && token_is_ttl(tok)) {
            str_copy(ttl_text, sizeof ttl_text, tok);
        } else if (strcmp(class_text, "IN") == 0 && ldns_get_rr_class_by_name(tok) != 0
                   && ldns_get_rr_type_by_name(tok) == 0) {
            str_copy(class_text, sizeof class_text, tok);
        } else {
            break;
        }
        p = end;
    }
    str_copy(type_text, sizeof type_text, tok);
    ldns_rr_type type = ldns_get_rr_type_by_name(type_text);
    if (type == 0) {
        ldns_rdf_deep_free(owner);
        return err_set(err, "unknown record type '%s'", type_text);
    }
    p = end;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0') {
        ldns_rdf_deep_free(owner);
        return err_set(err, "%s record for %s needs data", type_text, owner_text);
    }

    struct strbuf sb;
    strbuf_init(&sb, DNS_ZONE_RECORD_TEXT_MAX + DNS_NAME_TEXT_MAX);
    char abs_owner[DNS_NAME_TEXT_MAX];
    dns_name_format(owner, abs_owner, sizeof abs_owner);
    ldns_rdf_deep_free(owner);
    if (strbuf_appendf(&sb, "%s %s %s %s %s", abs_owner, ttl_text[0] ? ttl_text : "",
                       class_text, type_text, p) < 0) {
        strbuf_free(&sb);
        return err_set(err, "record is too long (limit %d)", DNS_ZONE_RECORD_TEXT_MAX);
    }
    ldns_rdf *root = origin == NULL ? ldns_dname_new_frm_str(".") : NULL;
    ldns_status st = ldns_rr_new_frm_str(out, sb.data, default_ttl,
                                         origin != NULL ? origin : root, NULL);
    ldns_rdf_deep_free(root);
    strbuf_free(&sb);
    if (st != LDNS_STATUS_OK) {
        *out = NULL;
        return err_set(err, "%s record for %s: cannot parse '%s' (%s)", type_text, owner_text,
                       p, ldns_get_errorstr_by_id(st));
    }
    return 0;
}

/* --- the table -------------------------------------------------------------------------- */

static uint32_t key_hash(const uint8_t *key, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

static struct dns_zone_node *zone_find_key(const struct dns_zone *z, const uint8_t *key,
                                           size_t n)
{
    struct dns_zone_node *node = z->buckets[key_hash(key, n) % DNS_ZONE_BUCKETS];
    for (; node != NULL; node = node->next)
        if (node->keylen == n && memcmp(node->key, key, n) == 0)
            return node;
    return NULL;
}

int dns_zone_new(struct dns_zone **out, struct etrn_err *err)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : err_set(err, "dns zone: out of memory");
}

static void node_free(struct dns_zone_node *node)
{
    ldns_rr_list_deep_free(node->rrs);
    ldns_rdf_deep_free(node->name);
    free(node);
}

void dns_zone_free(struct dns_zone *z)
{
    if (z == NULL)
        return;
    for (size_t b = 0; b < DNS_ZONE_BUCKETS; b++) {
        struct dns_zone_node *node = z->buckets[b], *next;
        for (; node != NULL; node = next) {
            next = node->next;
            node_free(node);
        }
    }
    free(z);
}

int dns_zone_add(struct dns_zone *z, ldns_rr *rr, struct etrn_err *err)
{
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t n = dns_name_key(ldns_rr_owner(rr), key);
    struct dns_zone_node *node = zone_find_key(z, key, n);

    if (node != NULL) {
        for (size_t i = 0; i < ldns_rr_list_rr_count(node->rrs); i++) {
            if (ldns_rr_compare(ldns_rr_list_rr(node->rrs, i), rr) == 0) {
                ldns_rr_free(rr);   /* already there: a set, not a bag */
                return 0;
            }
        }
    }
    if (z->nrecords >= DNS_ZONE_MAX_RECORDS) {
        ldns_rr_free(rr);
        return err_set(err, "too many DNS records (limit %d)", DNS_ZONE_MAX_RECORDS);
    }
    if (node == NULL) {
        node = calloc(1, sizeof *node);
        if (node == NULL || (node->rrs = ldns_rr_list_new()) == NULL
            || (node->name = ldns_rdf_clone(ldns_rr_owner(rr))) == NULL) {
            if (node != NULL) {
                ldns_rr_list_free(node->rrs);
                free(node);
            }
            ldns_rr_free(rr);
            return err_set(err, "dns zone: out of memory");
        }
        memcpy(node->key, key, n);
        node->keylen = n;
        size_t b = key_hash(key, n) % DNS_ZONE_BUCKETS;
        node->next = z->buckets[b];
        z->buckets[b] = node;
    }
    if (!ldns_rr_list_push_rr(node->rrs, rr)) {
        ldns_rr_free(rr);
        return err_set(err, "dns zone: out of memory");
    }
    z->nrecords++;
    z->generation++;
    return 0;
}

int dns_zone_add_text(struct dns_zone *z, const char *text, struct etrn_err *err)
{
    ldns_rr *rr = NULL;
    if (dns_record_parse(&rr, text, NULL, DNS_ZONE_DEFAULT_TTL, err) < 0)
        return -1;
    return dns_zone_add(z, rr, err);
}

int dns_zone_merge(struct dns_zone *z, struct dns_zone *src, struct etrn_err *err)
{
    if (z->nrecords + src->nrecords > DNS_ZONE_MAX_RECORDS)
        return err_set(err, "too many DNS records (limit %d)", DNS_ZONE_MAX_RECORDS);
    for (size_t b = 0; b < DNS_ZONE_BUCKETS; b++) {
        for (struct dns_zone_node *node = src->buckets[b]; node != NULL; node = node->next) {
            /* In file order: answers list a name's records as they were written. */
            size_t n = ldns_rr_list_rr_count(node->rrs);
            int rc = 0;
            for (size_t i = 0; i < n; i++) {
                ldns_rr *rr = ldns_rr_list_rr(node->rrs, i);
                src->nrecords--;
                if (rc == 0)
                    rc = dns_zone_add(z, rr, err);   /* only out of memory can fail */
                else
                    ldns_rr_free(rr);
            }
            ldns_rr_list_set_rr_count(node->rrs, 0);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

size_t dns_zone_remove(struct dns_zone *z, const ldns_rdf *name, ldns_rr_type type)
{
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t n = dns_name_key(name, key);
    size_t b = key_hash(key, n) % DNS_ZONE_BUCKETS;
    struct dns_zone_node **link = &z->buckets[b];

    for (; *link != NULL; link = &(*link)->next)
        if ((*link)->keylen == n && memcmp((*link)->key, key, n) == 0)
            break;
    if (*link == NULL)
        return 0;
    struct dns_zone_node *node = *link;
    ldns_rr_list *keep = ldns_rr_list_new();
    size_t removed = 0;
    if (keep == NULL)
        return 0;
    for (size_t i = 0; i < ldns_rr_list_rr_count(node->rrs); i++) {
        ldns_rr *rr = ldns_rr_list_rr(node->rrs, i);
        if (type == 0 || ldns_rr_get_type(rr) == type) {
            ldns_rr_free(rr);
            removed++;
        } else {
            ldns_rr_list_push_rr(keep, rr);   /* cannot fail: keep is never longer */
        }
    }
    ldns_rr_list_free(node->rrs);
    node->rrs = keep;
    z->nrecords -= removed;
    if (removed > 0)
        z->generation++;
    if (ldns_rr_list_rr_count(keep) == 0) {
        *link = node->next;
        node_free(node);
    }
    return removed;
}

const ldns_rr_list *dns_zone_find(const struct dns_zone *z, const ldns_rdf *name)
{
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t n = dns_name_key(name, key);
    struct dns_zone_node *node = zone_find_key(z, key, n);
    return node != NULL ? node->rrs : NULL;
}

int dns_zone_name_exists(const struct dns_zone *z, const ldns_rdf *name)
{
    if (dns_zone_find(z, name) != NULL)
        return 1;
    /* Empty non-terminals: rare questions, so a scan is fine. */
    for (size_t b = 0; b < DNS_ZONE_BUCKETS; b++)
        for (struct dns_zone_node *node = z->buckets[b]; node != NULL; node = node->next)
            if (ldns_dname_is_subdomain(node->name, name))
                return 1;
    return 0;
}

const ldns_rr *dns_zone_find_soa(const struct dns_zone *z, const ldns_rdf *name)
{
    uint8_t key[DNS_NAME_KEY_MAX];
    size_t n = dns_name_key(name, key), off = 0;
    for (;;) {
        struct dns_zone_node *node = zone_find_key(z, key + off, n - off);
        if (node != NULL)
            for (size_t i = 0; i < ldns_rr_list_rr_count(node->rrs); i++)
                if (ldns_rr_get_type(ldns_rr_list_rr(node->rrs, i)) == LDNS_RR_TYPE_SOA)
                    return ldns_rr_list_rr(node->rrs, i);
        if (off >= n || key[off] == 0)
            return NULL;
        off += (size_t)key[off] + 1;
    }
}

int dns_zone_is_mx_target(const struct dns_zone *z, const ldns_rdf *target)
{
    for (size_t b = 0; b < DNS_ZONE_BUCKETS; b++) {
        for (struct dns_zone_node *node = z->buckets[b]; node != NULL; node = node->next) {
            for (size_t i = 0; i < ldns_rr_list_rr_count(node->rrs); i++) {
                const ldns_rr *rr = ldns_rr_list_rr(node->rrs, i);
                if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_MX && ldns_rr_rd_count(rr) == 2
                    && ldns_dname_compare(ldns_rr_rdf(rr, 1), target) == 0)
                    return 1;
            }
        }
    }
    return 0;
}

size_t dns_zone_record_count(const struct dns_zone *z)
{
    return z->nrecords;
}

uint64_t dns_zone_generation(const struct dns_zone *z)
{
    return z->generation;
}

/* --- master files ----------------------------------------------------------------------- */

struct zone_reader {
    const char *label;
    unsigned line;           /* where the record being read began */
    ldns_rdf *origin;
    uint32_t ttl;
    char prev_owner[DNS_NAME_TEXT_MAX];
    struct dns_zone *tmp;
};

static int reader_fail(struct zone_reader *r, struct etrn_err *err)
{
    return err_prefix(err, "%s:%u", r->label, r->line);
}

/* $ORIGIN, $TTL; $INCLUDE is refused so a zone file names everything it serves. */
static int reader_control(struct zone_reader *r, const char *text, struct etrn_err *err)
{
    const char *end = NULL, *t = token_next(text, &end);
    char word[32], arg[DNS_NAME_TEXT_MAX];
    size_t wn = (size_t)(end - t);
    if (wn >= sizeof word)
        wn = sizeof word - 1;
    memcpy(word, t, wn);
    word[wn] = '\0';
    const char *a = token_next(end, &end);
    if (a == NULL || (size_t)(end - a) >= sizeof arg)
        arg[0] = '\0';
    else {
        memcpy(arg, a, (size_t)(end - a));
        arg[end - a] = '\0';
    }
    if (str_casecmp(word, "$ORIGIN") == 0) {
        if (arg[0] == '\0')
            return err_set(err, "$ORIGIN needs a name");
        ldns_rdf *o = NULL;
        if (dns_name_parse(&o, arg, r->origin, err) < 0)
            return -1;
        ldns_rdf_deep_free(r->origin);
        r->origin = o;
        return 0;
    }
    if (str_casecmp(word, "$TTL") == 0) {
        if (!token_is_ttl(arg))
            return err_set(err, "$TTL needs a time ('300', '1h'), not '%s'", arg);
        r->ttl = ldns_str2period(arg, &end);
        return 0;
    }
    if (str_casecmp(word, "$INCLUDE") == 0)
        return err_set(err, "$INCLUDE is not supported (list every zone file instead)");
    return err_set(err, "unknown control entry '%s' (expected $ORIGIN or $TTL)", word);
}

static int reader_record(struct zone_reader *r, const char *text, int continues_owner,
                         struct etrn_err *err)
{
    struct strbuf sb;
    ldns_rr *rr = NULL;
    int rc;

    strbuf_init(&sb, DNS_ZONE_RECORD_TEXT_MAX + DNS_NAME_TEXT_MAX);
    if (continues_owner) {
        if (r->prev_owner[0] == '\0')
            return err_set(err, "a line starting with a blank continues the previous owner, "
                                "but there is none yet");
        rc = strbuf_appendf(&sb, "%s %s", r->prev_owner, text);
    } else {
        const char *end = NULL, *t = token_next(text, &end);
        char owner[DNS_NAME_TEXT_MAX];
        ldns_rdf *o = NULL;
        if ((size_t)(end - t) >= sizeof owner)
            return err_set(err, "owner name is too long");
        memcpy(owner, t, (size_t)(end - t));
        owner[end - t] = '\0';
        if (dns_name_parse(&o, owner, r->origin, err) < 0)
            return -1;
        dns_name_format(o, r->prev_owner, sizeof r->prev_owner);
        ldns_rdf_deep_free(o);
        rc = strbuf_appendf(&sb, "%s %s", r->prev_owner, end);
    }
    if (rc < 0) {
        strbuf_free(&sb);
        return err_set(err, "record is too long (limit %d)", DNS_ZONE_RECORD_TEXT_MAX);
    }
    rc = dns_record_parse(&rr, sb.data, r->origin, r->ttl, err);
    strbuf_free(&sb);
    if (rc < 0)
        return -1;
    return dns_zone_add(r->tmp, rr, err);
}

int dns_zone_load_stream(struct dns_zone *z, FILE *fp, const char *label,
                         dns_zone_directive_fn fn, void *ctx, struct etrn_err *err)
{
    struct zone_reader r = {.label = label, .ttl = DNS_ZONE_DEFAULT_TTL};
    char line[DNS_ZONE_LINE_MAX + 2];
    struct strbuf rec;
    unsigned lineno = 0;
    int depth = 0, continues_owner = 0, rc = -1;

    strbuf_init(&rec, DNS_ZONE_RECORD_TEXT_MAX);
    r.origin = ldns_dname_new_frm_str(".");
    if (r.origin == NULL || dns_zone_new(&r.tmp, err) < 0) {
        err_set(err, "%s: out of memory", label);
        goto out;
    }
    while (fgets(line, sizeof line, fp) != NULL) {
        size_t len = strlen(line);
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(fp)) {
            r.line = lineno;
            err_set(err, "line is too long (limit %d)", DNS_ZONE_LINE_MAX);
            reader_fail(&r, err);
            goto out;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (depth == 0) {
            const char *p = line;
            while (*p == ' ' || *p == '\t')
                p++;
            r.line = lineno;
            if (p[0] == ';' && p[1] == '!') {
                char *text = str_trim(line + (p - line) + 2);
                if (fn == NULL)
                    err_set(err, "directive ';! %s' is not allowed here", text);
                if (fn == NULL || fn(ctx, text, r.origin, err) < 0) {
                    reader_fail(&r, err);
                    goto out;
                }
                continue;
            }
            continues_owner = line[0] == ' ' || line[0] == '\t';
            strbuf_reset(&rec);
        }
        /* Strip the comment, turn parentheses into blanks, keep quoted text intact. */
        int quoted = 0;
        for (size_t i = 0; i < len; i++) {
            char c = line[i];
            if (c == '\\' && i + 1 < len) {
                if (strbuf_append(&rec, line + i, 2) < 0)
                    goto too_long;
                i++;
                continue;
            }
            if (c == '"')
                quoted = !quoted;
            else if (!quoted && c == ';')
                break;
            else if (!quoted && (c == '(' || c == ')')) {
                depth += c == '(' ? 1 : -1;
                if (depth < 0) {
                    err_set(err, "')' without '('");
                    reader_fail(&r, err);
                    goto out;
                }
                c = ' ';
            }
            if (strbuf_append(&rec, &c, 1) < 0)
                goto too_long;
        }
        if (quoted) {
            r.line = lineno;
            err_set(err, "unterminated quoted string");
            reader_fail(&r, err);
            goto out;
        }
        if (depth > 0) {
            if (strbuf_append(&rec, " ", 1) < 0)
                goto too_long;
            continue;
        }
        char *text = str_trim(rec.data);
        if (text[0] == '\0')
            continue;
        if (text[0] == '$' && !continues_owner) {
            if (reader_control(&r, text, err) < 0) {
                reader_fail(&r, err);
                goto out;
            }
            continue;
        }
        if (reader_record(&r, text, continues_owner, err) < 0) {
            reader_fail(&r, err);
            goto out;
        }
    }
    if (ferror(fp)) {
        err_set_errno(err, "%s: read error", label);
        goto out;
    }
    if (depth > 0) {
        err_set(err, "'(' is never closed");
        reader_fail(&r, err);
        goto out;
    }
    if (dns_zone_merge(z, r.tmp, err) < 0) {
        err_prefix(err, "%s", label);
        goto out;
    }
    rc = 0;
    goto out;
too_long:
    err_set(err, "record is too long (limit %d)", DNS_ZONE_RECORD_TEXT_MAX);
    reader_fail(&r, err);
out:
    strbuf_free(&rec);
    ldns_rdf_deep_free(r.origin);
    dns_zone_free(r.tmp);
    return rc;
}

int dns_zone_load_file(struct dns_zone *z, const char *path, dns_zone_directive_fn fn,
                       void *ctx, struct etrn_err *err)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return err_set_errno(err, "%s", path);
    int rc = dns_zone_load_stream(z, fp, path, fn, ctx, err);
    if (fclose(fp) != 0 && rc == 0)
        return err_set_errno(err, "%s: close", path);
    return rc;
}
