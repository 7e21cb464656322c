/* spool_envelope.c — writing and strictly reading the text envelope of one spool entry.
 *
 *   spool_envelope_format(&e, &sb, &err);            // ends with "end <checksum>\n"
 *   if (spool_envelope_parse(text, len, &e, &err) < 0) ... torn or corrupt
 *   spool_envelope_clear(&e);
 *
 * Guarantees: parse accepts only a complete file — the last line is "end" with the FNV-1a
 * 64 checksum of everything before it — so a torn write or a flipped byte is detected;
 * every value is length-checked against struct spool_entry before it is copied. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "spool_envelope.h"

#define SPOOL_ENVELOPE_MAGIC "etrnd-envelope 1"

static uint64_t spool_envelope_sum(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void spool_qid_format(uint64_t qid, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[qid & 0xf];
        qid >>= 4;
    }
    out[16] = '\0';
}

static int spool_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int spool_qid_parse(const char *s, size_t len, uint64_t *qid)
{
    if (len != 16)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < 16; i++) {
        int d = spool_hex_value(s[i]);
        if (d < 0)
            return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *qid = v;
    return 0;
}

/* Decimal without sign, leading zeros only for "0" itself, at most max. */
static int spool_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int spool_id_parse(const char *id, uint64_t *qid, uint32_t *n)
{
    const char *dot = strchr(id, '.');
    uint64_t v;
    if (!dot || spool_qid_parse(id, (size_t)(dot - id), qid) < 0 ||
        spool_parse_uint(dot + 1, strlen(dot + 1), UINT32_MAX, &v) < 0)
        return -1;
    *n = (uint32_t)v;
    return 0;
}

int spool_envelope_addr_ok(const char *s)
{
    size_t len = strlen(s);
    if (len >= SPOOL_ADDR_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int spool_envelope_format(const struct spool_entry *e, struct strbuf *out, struct etrn_err *err)
{
    if (!spool_envelope_addr_ok(e->sender))
        return err_set(err, "%s: sender cannot be stored", e->id);
    if (e->nrcpt == 0 || e->nrcpt > SPOOL_ENVELOPE_RCPT_MAX)
        return err_set(err, "%s: %zu recipients (1..%u allowed)", e->id, e->nrcpt,
                       SPOOL_ENVELOPE_RCPT_MAX);
    for (size_t i = 0; e->domain[i]; i++)
        if ((unsigned char)e->domain[i] <= 0x20 || e->domain[i] == 0x7f)
            return err_set(err, "%s: domain cannot be stored", e->id);
    if (e->domain[0] == '\0')
        return err_set(err, "%s: empty domain", e->id);
    char last_error[sizeof e->last_error];
    str_copy(last_error, sizeof last_error, e->last_error);
    for (char *p = last_error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    size_t start = out->len;
    int rc = strbuf_appendf(out,
                            SPOOL_ENVELOPE_MAGIC "\nqid %s\nentry %s\ndomain %s\nsender <%s>\n"
                            "arrival %lld\nsize %" PRIu64 "\nattempts %u\nlast_attempt %lld\n"
                            "last_error %s\n",
                            e->qid, strchr(e->id, '.') ? strchr(e->id, '.') + 1 : "0", e->domain,
                            e->sender, (long long)e->arrival, e->size, e->attempts,
                            (long long)e->last_attempt, last_error);
    for (size_t i = 0; rc == 0 && i < e->nrcpt; i++) {
        if (!spool_envelope_addr_ok(e->rcpts[i])) {
            out->len = start;
            out->data[start] = '\0';
            return err_set(err, "%s: recipient %zu cannot be stored", e->id, i + 1);
        }
        rc = strbuf_appendf(out, "rcpt <%s>\n", e->rcpts[i]);
    }
    if (rc == 0) {
        uint64_t sum = spool_envelope_sum(out->data + start, out->len - start);
        rc = strbuf_appendf(out, "end %016" PRIx64 "\n", sum);
    }
    if (rc < 0 || out->len - start > SPOOL_ENVELOPE_MAX) {
        out->len = start;
        out->data[start] = '\0';
        return err_set(err, "%s: envelope too big", e->id);
    }
    return 0;
}

void spool_envelope_clear(struct spool_entry *e)
{
    for (size_t i = 0; i < e->nrcpt; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
    e->rcpts = NULL;
    e->nrcpt = 0;
}

/* The value of "<addr>" without the brackets; -1 if not bracketed or too long. */
static int spool_envelope_addr(const char *v, size_t len, char *out, size_t n)
{
    if (len < 2 || v[0] != '<' || v[len - 1] != '>' || len - 2 >= n)
        return -1;
    memcpy(out, v + 1, len - 2);
    out[len - 2] = '\0';
    return spool_envelope_addr_ok(out) ? 0 : -1;
}

static int spool_envelope_set_time(const char *v, size_t len, time_t *out)
{
    uint64_t t;
    if (spool_parse_uint(v, len, (uint64_t)INT64_MAX, &t) < 0)
        return -1;
    *out = (time_t)t;
    return 0;
}

static int spool_envelope_line(struct spool_entry *e, const char *key, size_t klen,
                               const char *v, size_t vlen, size_t *cap, unsigned *seen)
{
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
    uint64_t u;
    if (KEY("qid")) {
        if (spool_qid_parse(v, vlen, &u) < 0)
            return -1;
        memcpy(e->qid, v, 16);
        e->qid[16] = '\0';
        *seen |= 1u;
    } else if (KEY("entry")) {
        if (spool_parse_uint(v, vlen, UINT32_MAX, &u) < 0)
            return -1;
        memcpy(e->id, v, vlen);   /* qid prefixed once both are known */
        e->id[vlen] = '\0';
        *seen |= 2u;
    } else if (KEY("domain")) {
        if (vlen == 0 || vlen >= sizeof e->domain)
            return -1;
        memcpy(e->domain, v, vlen);
        e->domain[vlen] = '\0';
        *seen |= 4u;
    } else if (KEY("sender")) {
        if (spool_envelope_addr(v, vlen, e->sender, sizeof e->sender) < 0)
            return -1;
        *seen |= 8u;
    } else if (KEY("arrival")) {
        if (spool_envelope_set_time(v, vlen, &e->arrival) < 0)
            return -1;
        *seen |= 16u;
    } else if (KEY("size")) {
        if (spool_parse_uint(v, vlen, UINT64_MAX, &e->size) < 0)
            return -1;
    } else if (KEY("attempts")) {
        if (spool_parse_uint(v, vlen, UINT32_MAX, &u) < 0)
            return -1;
        e->attempts = (unsigned)u;
    } else if (KEY("last_attempt")) {
        if (spool_envelope_set_time(v, vlen, &e->last_attempt) < 0)
            return -1;
    } else if (KEY("last_error")) {
        size_t n = vlen < sizeof e->last_error ? vlen : sizeof e->last_error - 1;
        memcpy(e->last_error, v, n);
        e->last_error[n] = '\0';
    } else if (KEY("rcpt")) {
        char addr[SPOOL_ADDR_MAX];
        if (spool_envelope_addr(v, vlen, addr, sizeof addr) < 0 || e->nrcpt >= SPOOL_ENVELOPE_RCPT_MAX)
            return -1;
        if (e->nrcpt == *cap) {
            size_t ncap = *cap ? *cap * 2 : 4;
            char **p = realloc(e->rcpts, ncap * sizeof(*p));
            if (!p)
                return -1;
            e->rcpts = p;
            *cap = ncap;
        }
        e->rcpts[e->nrcpt] = strdup(addr);
        if (!e->rcpts[e->nrcpt])
            return -1;
        e->nrcpt++;
    }
    return 0;
#undef KEY
}

int spool_envelope_parse(const char *text, size_t len, struct spool_entry *e, struct etrn_err *err)
{
    memset(e, 0, sizeof(*e));
    /* The end line: "end " + 16 hex + "\n", the last 21 bytes. */
    const size_t endlen = 4 + 16 + 1;
    if (len < endlen || text[len - 1] != '\n')
        return err_set(err, "torn envelope (no end line)");
    const char *end = text + len - endlen;
    uint64_t want;
    if ((end != text && end[-1] != '\n') || memcmp(end, "end ", 4) != 0 ||
        spool_qid_parse(end + 4, 16, &want) < 0)
        return err_set(err, "torn envelope (no end line)");
    if (spool_envelope_sum(text, (size_t)(end - text)) != want)
        return err_set(err, "corrupt envelope (checksum mismatch)");
    size_t magic = sizeof(SPOOL_ENVELOPE_MAGIC) - 1;
    if ((size_t)(end - text) < magic + 1 || memcmp(text, SPOOL_ENVELOPE_MAGIC "\n", magic + 1) != 0)
        return err_set(err, "not an etrnd envelope (version line missing)");
    size_t cap = 0;
    unsigned seen = 0;
    const char *p = text + magic + 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;   /* cannot happen: end is preceded by '\n' */
        const char *sp = memchr(p, ' ', (size_t)(nl - p));
        const char *key = p;
        size_t klen = sp ? (size_t)(sp - p) : (size_t)(nl - p);
        const char *v = sp ? sp + 1 : nl;
        size_t vlen = (size_t)(nl - v);
        if (memchr(p, '\0', (size_t)(nl - p)) ||
            spool_envelope_line(e, key, klen, v, vlen, &cap, &seen) < 0) {
            spool_envelope_clear(e);
            return err_set(err, "corrupt envelope: bad line '%.*s'", (int)(klen < 40 ? klen : 40), key);
        }
        p = nl + 1;
    }
    if ((seen & 31u) != 31u || e->nrcpt == 0) {
        spool_envelope_clear(e);
        return err_set(err, "corrupt envelope: %s missing",
                       !(seen & 1u) ? "qid" : !(seen & 2u) ? "entry" : !(seen & 4u) ? "domain" :
                       !(seen & 8u) ? "sender" : !(seen & 16u) ? "arrival" : "rcpt");
    }
    char n[SPOOL_ID_MAX];
    str_copy(n, sizeof n, e->id);
    if (str_format(e->id, sizeof e->id, "%s.%s", e->qid, n) < 0) {
        spool_envelope_clear(e);
        return err_set(err, "corrupt envelope: entry number too long");
    }
    return 0;
}
