/* smtp_reply.h — writing and parsing SMTP replies, single- and multi-line (RFC 5321 §4.2).
 *
 * Writing:  smtp_reply_write(out, 250, "2.0.0", "OK, queuing for node %s started", node);
 *           smtp_reply_write_lines(out, 250, NULL, lines, n);   (EHLO-style multi-line)
 * Parsing:  struct smtp_reply r; smtp_reply_init(&r);
 *           switch (smtp_reply_parse(in, &r, &err)) { case SMTP_REPLY_OK: use r.code, r.text ... }
 *           smtp_reply_free(&r);
 *
 * The parser takes a reply off the buffer only when its last line has arrived, so it
 * can be called on every read event. It is strict about what RFC 5321 requires (three
 * digits 2-5/0-5/0-9, the same code on every line, '-' or SP or end after the code) and
 * records, rather than refuses, what a robust client tolerates (bare LF, over-long lines
 * up to SMTP_REPLY_PARSE_LINE_MAX, missing text). */
#ifndef ETRN_SMTP_REPLY_H
#define ETRN_SMTP_REPLY_H

#include <stddef.h>
#include "strbuf.h"
#include "err.h"

struct evbuffer;

#define SMTP_REPLY_PARSE_LINE_MAX 4096   /* longest reply line accepted at all (octets,
                                            line ending included) */
#define SMTP_REPLY_MAX_LINES      256    /* more lines in one reply: malformed */

#define SMTP_REPLY_BARE_LF   0x1u   /* some line ended with LF only */
#define SMTP_REPLY_LONG_LINE 0x2u   /* some line exceeded 512 octets (RFC 5321 §4.5.3.1.5) */
#define SMTP_REPLY_NO_SPACE  0x4u   /* last line was "250" with no SP/text */

struct smtp_reply {
    int code;                /* 200..599 */
    char enh[16];            /* enhanced status code of the first line ("2.0.0"), or "" */
    struct strbuf text;      /* the text of every line without code and separator,
                                lines joined by '\n' */
    struct strbuf raw;       /* the reply exactly as received (all lines, with endings) */
    size_t nlines;
    unsigned flags;
};

enum smtp_reply_status {
    SMTP_REPLY_OK,           /* r holds a complete reply, consumed from the buffer */
    SMTP_REPLY_INCOMPLETE,   /* need more input; nothing consumed */
    SMTP_REPLY_MALFORMED     /* err says why; the input through the offending line's LF is
                                consumed (all of it if no LF came within 4096 octets) */
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
enum smtp_reply_status smtp_reply_parse(struct evbuffer *in, struct smtp_reply *r,
                                        struct etrn_err *err);

/* Parses "X.Y.Z" at the start of text; returns its length (0 if none). */
size_t smtp_enhanced_code_parse(const char *text, size_t len, char out[16]);
/* Returns 1 if the text of a line (the part after the code) has the keyword kw
 * (case-insensitive) as its first word, as in EHLO replies. The first line is the
 * server's domain and greeting (RFC 5321 §4.1.1.1) and is not searched. If params is
 * not NULL it is set to the rest of that line after the spaces following the keyword;
 * it ends at '\n' (the next line) or at the NUL. */
int smtp_reply_has_keyword(const struct smtp_reply *r, const char *kw, const char **params);

/* Writers: one line each, CRLF appended; enh may be NULL or "" for none. Lines longer
 * than SMTP_REPLY_LINE_MAX are truncated. Return 0, or -1 if the buffer refused data. */
int smtp_reply_write(struct evbuffer *out, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int smtp_reply_write_lines(struct evbuffer *out, int code, const char *enh,
                           const char *const *lines, size_t n);

#endif
