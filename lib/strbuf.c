/* strbuf.c — growable, limited, always-terminated strings and bounded string helpers.
 *
 *   struct strbuf sb; strbuf_init(&sb, 4096);
 *   strbuf_appendf(&sb, "%s", x);  ...  strbuf_free(&sb);
 *
 * A failed append (limit or memory) leaves the contents exactly as they were. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static char strbuf_empty[1];

void strbuf_init(struct strbuf *sb, size_t limit)
{
    sb->data = strbuf_empty;
    sb->len = 0;
    sb->cap = 0;
    sb->limit = limit;
}

void strbuf_free(struct strbuf *sb)
{
    if (sb->cap)
        free(sb->data);
    sb->data = strbuf_empty;
    sb->len = 0;
    sb->cap = 0;
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->cap)
        sb->data[0] = '\0';
}

/* Makes room for extra more bytes plus the terminator. */
static int strbuf_reserve(struct strbuf *sb, size_t extra)
{
    if (extra > sb->limit || sb->len > sb->limit - extra)
        return -1;
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    /* Doubling stops at the limit: never hold more than limit + 1 bytes. */
    if (sb->limit != STRBUF_UNLIMITED && cap > sb->limit + 1)
        cap = sb->limit + 1;
    char *p = sb->cap ? realloc(sb->data, cap) : malloc(cap);
    if (p == NULL)
        return -1;
    if (sb->cap == 0)
        p[0] = '\0';
    sb->data = p;
    sb->cap = cap;
    return 0;
}

int strbuf_append(struct strbuf *sb, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (strbuf_reserve(sb, n) < 0)
        return -1;
    memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

int strbuf_append_str(struct strbuf *sb, const char *s)
{
    return strbuf_append(sb, s, strlen(s));
}

int strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -1;
    if (strbuf_reserve(sb, (size_t)n) < 0)
        return -1;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vappendf(sb, fmt, ap);
    va_end(ap);
    return rc;
}

char *strbuf_detach(struct strbuf *sb)
{
    char *p = malloc(sb->len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, sb->data, sb->len);
    p[sb->len] = '\0';
    return p;
}

int str_copy(char *dst, size_t n, const char *src)
{
    if (n == 0)
        return -1;
    size_t len = strlen(src);
    if (len >= n) {
        memcpy(dst, src, n - 1);
        dst[n - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

int str_format(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n)
        return -1;
    return r;
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

int str_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = ascii_lower((unsigned char)*a), cb = ascii_lower((unsigned char)*b);
        if (ca != cb || ca == 0)
            return ca - cb;
    }
}

int str_ncasecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ca = ascii_lower((unsigned char)a[i]), cb = ascii_lower((unsigned char)b[i]);
        if (ca != cb || ca == 0)
            return ca - cb;
    }
    return 0;
}

void str_lower(char *s)
{
    for (; *s; s++)
        *s = (char)ascii_lower((unsigned char)*s);
}

static int ascii_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

char *str_trim(char *s)
{
    while (ascii_space((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && ascii_space((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}
