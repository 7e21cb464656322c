/* domain.c — domain-name syntax, case-insensitive comparison, label-aligned subdomains.
 *
 *   domain_check("a_b.test", 8, DOMAIN_REQUIRE_FQDN, &err)  -> -1, "label 'a_b' has invalid character '_'"
 *   domain_is_within("a.foo.test", "foo.test")  -> 1
 *
 * ASCII only (RFC 5321 §4.1.2 LDH syntax); no locale is consulted. */
#include <string.h>

#include "domain.h"
#include "strbuf.h"

static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Quotes at most 64 bytes of a name for messages, replacing non-printables. */
static void domain_quote(const char *s, size_t len, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 4 < n && i < 64; i++)
        out[j++] = ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
    if (len > 64 && j + 4 < n) {
        out[j++] = '.';
        out[j++] = '.';
        out[j++] = '.';
    }
    out[j] = '\0';
}

int domain_check(const char *name, size_t len, unsigned flags, struct etrn_err *err)
{
    char q[80];
    domain_quote(name, len, q, sizeof q);
    if (len == 0)
        return err_set(err, "empty domain name");
    if (len > 1 && name[len - 1] == '.')
        len--;
    else if (len == 1 && name[0] == '.')
        return err_set(err, "'.' is not a domain name");
    if (len > DOMAIN_MAX)
        return err_set(err, "'%s': name longer than %d octets", q, DOMAIN_MAX);
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        size_t ll = i - start;
        const char *label = name + start;
        char lq[80];
        domain_quote(label, ll, lq, sizeof lq);
        if (ll == 0)
            return err_set(err, "'%s': empty label", q);
        if (ll > DOMAIN_LABEL_MAX)
            return err_set(err, "'%s': label longer than %d octets", q, DOMAIN_LABEL_MAX);
        for (size_t k = 0; k < ll; k++) {
            unsigned char c = (unsigned char)label[k];
            if (is_alnum(c) || c == '-')
                continue;
            if (c == '_' && (flags & DOMAIN_ALLOW_UNDERSCORE))
                continue;
            if (c >= 0x20 && c < 0x7f)
                return err_set(err, "'%s': label '%s' has invalid character '%c'", q, lq, c);
            return err_set(err, "'%s': label '%s' has invalid byte 0x%02x", q, lq, c);
        }
        if (label[0] == '-' || label[ll - 1] == '-')
            return err_set(err, "'%s': label '%s' starts or ends with '-'", q, lq);
        labels++;
        start = i + 1;
    }
    if ((flags & DOMAIN_REQUIRE_FQDN) && labels < 2)
        return err_set(err, "'%s' is not fully qualified", q);
    return 0;
}

/* Length without one trailing dot. */
static size_t domain_len(const char *s)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    return n;
}

int domain_equal(const char *a, const char *b)
{
    size_t la = domain_len(a), lb = domain_len(b);
    if (la != lb)
        return 0;
    for (size_t i = 0; i < la; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

int domain_is_within(const char *name, const char *parent)
{
    size_t ln = domain_len(name), lp = domain_len(parent);
    if (lp == 0 || ln < lp)
        return 0;
    const char *tail = name + (ln - lp);
    for (size_t i = 0; i < lp; i++)
        if (lower((unsigned char)tail[i]) != lower((unsigned char)parent[i]))
            return 0;
    return ln == lp || tail[-1] == '.';
}

int domain_normalize(const char *name, char *out, size_t n)
{
    size_t len = domain_len(name);
    if (len >= n)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)lower((unsigned char)name[i]);
    out[len] = '\0';
    return 0;
}

size_t domain_label_count(const char *name)
{
    size_t len = domain_len(name);
    if (len == 0)
        return 0;
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '.')
            n++;
    return n;
}

const char *domain_of_address(const char *addr)
{
    /* Room for the longest domain plus its optional trailing dot and the NUL. */
    static _Thread_local char unbracketed[DOMAIN_MAX + 2];
    const char *at = strrchr(addr, '@');
    if (at == NULL)
        return NULL;
    const char *dom = at + 1;
    size_t len = strlen(dom);
    if (len == 0 || dom[len - 1] != '>')
        return dom;
    /* "<user@dom.test>": the caller's string cannot be cut, so hand out a copy. */
    len--;
    if (len >= sizeof unbracketed)
        return NULL;
    memcpy(unbracketed, dom, len);
    unbracketed[len] = '\0';
    return unbracketed;
}
