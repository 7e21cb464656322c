/* strbuf.h — a growable, always NUL-terminated byte string with a hard size limit.
 *
 *   struct strbuf sb; strbuf_init(&sb, 4096);
 *   if (strbuf_appendf(&sb, "250 %s", host) < 0) ... (over limit or out of memory)
 *   use sb.data / sb.len; strbuf_free(&sb);
 *
 * Guarantees: data is never NULL after init (points at "" until first growth),
 * data[len] == 0, len <= limit. A failed append leaves the contents unchanged. */
#ifndef ETRN_STRBUF_H
#define ETRN_STRBUF_H

#include <stddef.h>
#include <stdarg.h>

#define STRBUF_UNLIMITED ((size_t)-1)

struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
};

void strbuf_init(struct strbuf *sb, size_t limit);
void strbuf_free(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);               /* len = 0, keeps memory */
int strbuf_append(struct strbuf *sb, const void *p, size_t n);
int strbuf_append_str(struct strbuf *sb, const char *s);
int strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap);
/* Returns a malloc'd copy of the contents (caller frees), or NULL. */
char *strbuf_detach(struct strbuf *sb);

/* Bounded copy: copies at most n-1 bytes, always terminates, returns -1 if truncated. */
int str_copy(char *dst, size_t n, const char *src);
/* snprintf that returns -1 on truncation or error instead of a length. */
int str_format(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* ASCII case-insensitive helpers (locale-independent). */
int str_casecmp(const char *a, const char *b);
int str_ncasecmp(const char *a, const char *b, size_t n);
void str_lower(char *s);
/* Trims ASCII whitespace in place; returns s advanced past leading space. */
char *str_trim(char *s);

#endif
