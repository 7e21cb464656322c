/* smtp_line.c — takes SMTP lines off a libevent buffer with explicit limits.
 *
 *   smtp_line_reader_init(&rd, SMTP_COMMAND_LINE_MAX);
 *   while (smtp_line_read(&rd, in, &line) == SMTP_LINE_OK) ...
 *
 * Memory held for one line never exceeds the limit: an over-long line is drained as it
 * arrives and reported once, when its LF is seen (see smtp_line.h). */
#include <string.h>
#include <event2/buffer.h>

#include "smtp_line.h"

void smtp_line_reader_init(struct smtp_line_reader *rd, size_t limit)
{
    rd->limit = limit;
    rd->discarding = 0;
    smtp_line_reader_set_limit(rd, limit);
}

void smtp_line_reader_set_limit(struct smtp_line_reader *rd, size_t limit)
{
    if (limit > SMTP_TEXT_LINE_MAX)
        limit = SMTP_TEXT_LINE_MAX;
    if (limit < 3)
        limit = 3;
    rd->limit = limit;
}

enum smtp_line_status smtp_line_read(struct smtp_line_reader *rd, struct evbuffer *in,
                                     struct smtp_line *line)
{
    struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
    if (rd->discarding) {
        if (lf.pos < 0) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return SMTP_LINE_INCOMPLETE;
        }
        evbuffer_drain(in, (size_t)lf.pos + 1);
        rd->discarding = 0;
        return SMTP_LINE_TOO_LONG;
    }
    if (lf.pos < 0) {
        /* Without its LF the line already has as many octets as the limit allows in all:
         * it cannot fit, so stop holding it. */
        if (evbuffer_get_length(in) >= rd->limit) {
            evbuffer_drain(in, evbuffer_get_length(in));
            rd->discarding = 1;
        }
        return SMTP_LINE_INCOMPLETE;
    }
    size_t total = (size_t)lf.pos + 1;
    if (total > rd->limit) {
        evbuffer_drain(in, total);
        return SMTP_LINE_TOO_LONG;
    }
    size_t len = (size_t)lf.pos;
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
    line->buf[len] = '\0';
    line->len = len;
    if (memchr(line->buf, '\0', len) != NULL)
        line->flags |= SMTP_LINE_HAS_NUL;
    if (memchr(line->buf, '\r', len) != NULL)
        line->flags |= SMTP_LINE_BARE_CR;
    return SMTP_LINE_OK;
}
