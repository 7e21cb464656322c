/* smtp_line.c — takes SMTP lines off a libevent buffer with explicit limits.
 *
 *   smtp_line_reader_init(&rd, SMTP_COMMAND_LINE_MAX);
 *   while (smtp_line_read(&rd, in, &line) == SMTP_LINE_OK) ...
 *
 * Memory held for one line never exceeds the limit: an over-long line is drained as it
 * arrives and reported once, when its LF is seen (see smtp_line.h). The search for LF
 * never looks further than the limit, so a flood without LF costs O(limit) per call. */
#include <string.h>
#include <event2/buffer.h>

#include "smtp_line.h"

void smtp_line_reader_init(struct smtp_line_reader *rd, size_t limit)
{
    rd->discarding = 0;
    smtp_line_reader_set_limit(rd, limit);
}

void smtp_line_reader_set_limit(struct smtp_line_reader *rd, size_t limit)
{
    /* The line buffer holds SMTP_TEXT_LINE_MAX octets; a limit below 3 could not even
     * hold "x\r\n" and would make every line too long. */
    if (limit > SMTP_TEXT_LINE_MAX)
        limit = SMTP_TEXT_LINE_MAX;
    if (limit < 3)
        limit = 3;
    rd->limit = limit;
}

/* Position of the first LF within the first `window` octets of in, or -1. */
static ev_ssize_t smtp_line_find_lf(struct evbuffer *in, size_t window)
{
    size_t avail = evbuffer_get_length(in);
    if (window > avail)
        window = avail;
    if (window == 0)
        return -1;
    struct evbuffer_ptr end;
    if (evbuffer_ptr_set(in, &end, window, EVBUFFER_PTR_SET) < 0)
        return -1;
    struct evbuffer_ptr lf = evbuffer_search_range(in, "\n", 1, NULL, &end);
    return lf.pos;
}

enum smtp_line_status smtp_line_read(struct smtp_line_reader *rd, struct evbuffer *in,
                                     struct smtp_line *line)
{
    size_t avail = evbuffer_get_length(in);
    if (rd->discarding) {
        ev_ssize_t pos = smtp_line_find_lf(in, avail);
        if (pos < 0) {
            evbuffer_drain(in, avail);
            return SMTP_LINE_INCOMPLETE;
        }
        evbuffer_drain(in, (size_t)pos + 1);
        rd->discarding = 0;
        return SMTP_LINE_TOO_LONG;
    }
    /* A line that fits has its LF at index limit-1 at the latest. */
    ev_ssize_t pos = smtp_line_find_lf(in, rd->limit);
    if (pos < 0) {
        if (avail < rd->limit)
            return SMTP_LINE_INCOMPLETE;
        /* limit octets and still no LF: the line cannot fit. Drop what we have and
         * keep dropping until its LF; any LF already buffered ends it right now. */
        evbuffer_drain(in, rd->limit);
        rd->discarding = 1;
        return smtp_line_read(rd, in, line);
    }
    size_t total = (size_t)pos + 1;
    size_t len = (size_t)pos;
    if (evbuffer_copyout(in, line->buf, len) != (ev_ssize_t)len) {
        evbuffer_drain(in, total);
        return SMTP_LINE_TOO_LONG;
    }
    evbuffer_drain(in, total);
    line->flags = 0;
    if (len > 0 && line->buf[len - 1] == '\r')
        len--;
    else
        line->flags |= SMTP_LINE_BARE_LF;
    /* A bare-LF line is measured as if it ended in CRLF: the limit bounds the text,
     * and a sloppy peer does not earn an extra octet. */
    if (len + 2 > rd->limit)
        return SMTP_LINE_TOO_LONG;
    line->buf[len] = '\0';
    line->len = len;
    if (memchr(line->buf, '\0', len) != NULL)
        line->flags |= SMTP_LINE_HAS_NUL;
    if (memchr(line->buf, '\r', len) != NULL)
        line->flags |= SMTP_LINE_BARE_CR;
    return SMTP_LINE_OK;
}
