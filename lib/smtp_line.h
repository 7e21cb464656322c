/* smtp_line.h — the SMTP line reader: takes one line at a time off a libevent buffer.
 *
 *   struct smtp_line_reader rd; smtp_line_reader_init(&rd, SMTP_COMMAND_LINE_MAX);
 *   struct smtp_line line;
 *   while ((st = smtp_line_read(&rd, input_evbuffer, &line)) == SMTP_LINE_OK) handle(line.buf, line.len, line.flags);
 *
 * Limits follow RFC 5321 §4.5.3.1: a command line is at most 512 octets and a text
 * line 1000 octets, both counting the CRLF (so 510 and 998 characters of text). A line
 * is ended by LF; if the LF is not preceded by CR the line is still returned but flagged
 * SMTP_LINE_BARE_LF so the caller can refuse it (RFC 5321 §2.3.8), and it is measured as
 * if it ended in CRLF. NUL bytes and bare CRs inside the line are
 * flagged, not stripped. A line over the limit is consumed and discarded up to and
 * including its LF (across as many calls as it takes), then reported once as
 * SMTP_LINE_TOO_LONG; memory held never exceeds the limit. */
#ifndef ETRN_SMTP_LINE_H
#define ETRN_SMTP_LINE_H

#include <stddef.h>

struct evbuffer;

#define SMTP_COMMAND_LINE_MAX 512   /* octets, CRLF included */
#define SMTP_TEXT_LINE_MAX    1000  /* octets, CRLF included */
#define SMTP_REPLY_LINE_MAX   512

#define SMTP_LINE_BARE_LF  0x1u     /* ended by LF without CR */
#define SMTP_LINE_HAS_NUL  0x2u     /* contains a NUL byte */
#define SMTP_LINE_BARE_CR  0x4u     /* contains a CR not followed by LF */

enum smtp_line_status {
    SMTP_LINE_OK,          /* line holds a complete line */
    SMTP_LINE_INCOMPLETE,  /* need more input; nothing returned */
    SMTP_LINE_TOO_LONG     /* an over-long line was discarded (consumed through its LF) */
};

struct smtp_line_reader {
    size_t limit;          /* octets including CRLF */
    int discarding;        /* inside an over-long line, waiting for its LF */
};

struct smtp_line {
    char buf[SMTP_TEXT_LINE_MAX + 1]; /* the line without its line ending, NUL-terminated
                                        (may also contain NULs: use len) */
    size_t len;
    unsigned flags;
};

void smtp_line_reader_init(struct smtp_line_reader *rd, size_t limit);
/* Changes the limit (e.g. SMTP_TEXT_LINE_MAX while in DATA). limit <= SMTP_TEXT_LINE_MAX. */
void smtp_line_reader_set_limit(struct smtp_line_reader *rd, size_t limit);
enum smtp_line_status smtp_line_read(struct smtp_line_reader *rd, struct evbuffer *in,
                                     struct smtp_line *line);

#endif
