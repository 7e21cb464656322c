/* smtp_reply.c — SMTP replies: strict parsing of what peers send, correct writing of ours.
 *
 *   smtp_reply_parse(in, &r, &err)   // OK / INCOMPLETE / MALFORMED, see smtp_reply.h
 *   smtp_reply_write(out, 253, "2.0.0", "OK, %zu pending messages for node %s started", n, node);
 *
 * The parser looks ahead without consuming until the last line of a reply is buffered,
 * so it can be called on every read event with any split of the input. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

#include "smtp_reply.h"
#include "smtp_line.h"

void smtp_reply_init(struct smtp_reply *r)
{
    r->code = 0;
    r->enh[0] = '\0';
    strbuf_init(&r->text, SMTP_REPLY_PARSE_LINE_MAX * SMTP_REPLY_MAX_LINES);
    strbuf_init(&r->raw, (SMTP_REPLY_PARSE_LINE_MAX + 2) * SMTP_REPLY_MAX_LINES);
    r->nlines = 0;
    r->flags = 0;
}

void smtp_reply_free(struct smtp_reply *r)
{
    strbuf_free(&r->text);
    strbuf_free(&r->raw);
}

size_t smtp_enhanced_code_parse(const char *text, size_t len, char out[16])
{
    /* RFC 3463: class "." subject "." detail, subject and detail 1..3 digits, followed
     * by SP or the end of the text. */
    out[0] = '\0';
    if (len < 5 || text[0] < '0' || text[0] > '9' || text[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9' && digits < 4) {
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ')
        return 0;
    memcpy(out, text, i); /* i <= 9 */
    out[i] = '\0';
    return i;
}

/* Offset of the first LF at or after off and before off + window, or -1. */
static ev_ssize_t smtp_reply_find_lf(struct evbuffer *in, size_t off, size_t window)
{
    size_t avail = evbuffer_get_length(in);
    if (off >= avail)
        return -1;
    if (window > avail - off)
        window = avail - off;
    struct evbuffer_ptr start, end;
    if (evbuffer_ptr_set(in, &start, off, EVBUFFER_PTR_SET) < 0 ||
        evbuffer_ptr_set(in, &end, off + window, EVBUFFER_PTR_SET) < 0)
        return -1;
    struct evbuffer_ptr lf = evbuffer_search_range(in, "\n", 1, &start, &end);
    return lf.pos;
}

/* Consumes through `through` (exclusive end offset) and reports a malformed reply. */
static enum smtp_reply_status smtp_reply_reject(struct evbuffer *in, size_t through)
{
    evbuffer_drain(in, through);
    return SMTP_REPLY_MALFORMED;
}

static char smtp_reply_printable(char c)
{
    return ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f) ? c : '?';
}

enum smtp_reply_status smtp_reply_parse(struct evbuffer *in, struct smtp_reply *r,
                                        struct etrn_err *err)
{
    char line[SMTP_REPLY_PARSE_LINE_MAX + 1];
    size_t ends[SMTP_REPLY_MAX_LINES];   /* offset just past each line's LF */
    size_t off = 0;
    int first_code = 0;
    unsigned flags = 0;
    size_t nlines = 0;
    size_t buflen = evbuffer_get_length(in);

    /* Pass 1: find the last line, validating as we go, consuming nothing unless the
     * input is already known to be malformed. */
    for (;;) {
        ev_ssize_t lfpos = smtp_reply_find_lf(in, off, SMTP_REPLY_PARSE_LINE_MAX);
        if (lfpos < 0) {
            if (buflen - off >= SMTP_REPLY_PARSE_LINE_MAX) {
                /* No LF within the longest line we accept: whatever comes is garbage
                 * and holding it would let a peer grow our buffer without bound. */
                err_set(err, "reply line longer than %d octets", SMTP_REPLY_PARSE_LINE_MAX);
                return smtp_reply_reject(in, buflen);
            }
            return SMTP_REPLY_INCOMPLETE;
        }
        size_t end = (size_t)lfpos + 1;
        size_t len = (size_t)lfpos - off;   /* without the LF, at most PARSE_LINE_MAX - 1 */
        struct evbuffer_ptr start;
        evbuffer_ptr_set(in, &start, off, EVBUFFER_PTR_SET);
        if (evbuffer_copyout_from(in, &start, line, len) != (ev_ssize_t)len) {
            err_set(err, "reply buffer could not be read");
            return smtp_reply_reject(in, end);
        }
        line[len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            len--;
        else
            flags |= SMTP_REPLY_BARE_LF;
        if (len + 2 > SMTP_REPLY_LINE_MAX)
            flags |= SMTP_REPLY_LONG_LINE;
        if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
            line[2] < '0' || line[2] > '9') {
            char shown[40];
            size_t k;
            for (k = 0; k < len && k < 32; k++)
                shown[k] = smtp_reply_printable(line[k]);
            shown[k] = '\0';
            err_set(err, "not a reply line: '%s'", shown);
            return smtp_reply_reject(in, end);
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (nlines == 0) {
            first_code = code;
        } else if (code != first_code) {
            err_set(err, "reply lines disagree on the code: %d then %d", first_code, code);
            return smtp_reply_reject(in, end);
        }
        if (nlines == SMTP_REPLY_MAX_LINES) {
            err_set(err, "reply has more than %d lines", SMTP_REPLY_MAX_LINES);
            return smtp_reply_reject(in, end);
        }
        ends[nlines++] = end;
        int last;
        if (len == 3) {
            last = 1;
            flags |= SMTP_REPLY_NO_SPACE;
        } else if (line[3] == ' ') {
            last = 1;
        } else if (line[3] == '-') {
            last = 0;
        } else {
            err_set(err, "reply code %d followed by '%c', not SP or '-'", code,
                    smtp_reply_printable(line[3]));
            return smtp_reply_reject(in, end);
        }
        off = end;
        if (last)
            break;
    }

    /* Pass 2: the whole reply is buffered; take it. */
    strbuf_reset(&r->text);
    strbuf_reset(&r->raw);
    r->code = first_code;
    r->nlines = nlines;
    r->flags = flags;
    r->enh[0] = '\0';
    size_t pos = 0;
    for (size_t i = 0; i < nlines; i++) {
        size_t len = ends[i] - pos;   /* with the LF */
        evbuffer_remove(in, line, len);
        /* Both strbufs are sized for SMTP_REPLY_MAX_LINES full lines: these fit. */
        strbuf_append(&r->raw, line, len);
        len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        const char *t = len > 4 ? line + 4 : "";
        size_t tl = len > 4 ? len - 4 : 0;
        if (i == 0)
            smtp_enhanced_code_parse(t, tl, r->enh);
        if (i > 0)
            strbuf_append(&r->text, "\n", 1);
        strbuf_append(&r->text, t, tl);
        pos = ends[i];
    }
    return SMTP_REPLY_OK;
}

int smtp_reply_has_keyword(const struct smtp_reply *r, const char *kw, const char **params)
{
    /* RFC 5321 §4.1.1.1: the first line of an EHLO reply is the server's domain and
     * greeting; keywords start on the second line. */
    size_t kl = strlen(kw);
    const char *p = r->nlines > 1 ? strchr(r->text.data, '\n') : NULL;
    while (p != NULL) {
        p++;
        const char *end = strchr(p, '\n');
        size_t ll = end ? (size_t)(end - p) : strlen(p);
        size_t wl = 0;
        while (wl < ll && p[wl] != ' ')
            wl++;
        if (kl > 0 && wl == kl && str_ncasecmp(p, kw, kl) == 0) {
            if (params) {
                const char *q = p + wl;
                while (q < p + ll && *q == ' ')
                    q++;
                *params = q;
            }
            return 1;
        }
        p = end;
    }
    return 0;
}

static int smtp_reply_emit(struct evbuffer *out, int code, char sep, const char *enh,
                           const char *text)
{
    char line[SMTP_REPLY_LINE_MAX + 1];
    int n;
    if (enh && enh[0])
        n = snprintf(line, sizeof line - 2, "%03d%c%s %s", code, sep, enh, text);
    else
        n = snprintf(line, sizeof line - 2, "%03d%c%s", code, sep, text);
    if (n < 0)
        return -1;
    size_t len = (size_t)n < sizeof line - 3 ? (size_t)n : sizeof line - 3;
    /* Never let text carry a line break into the reply. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    line[len++] = '\r';
    line[len++] = '\n';
    return evbuffer_add(out, line, len);
}

int smtp_reply_write(struct evbuffer *out, int code, const char *enh, const char *fmt, ...)
{
    char text[SMTP_REPLY_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return smtp_reply_emit(out, code, ' ', enh, text);
}

int smtp_reply_write_lines(struct evbuffer *out, int code, const char *enh,
                           const char *const *lines, size_t n)
{
    if (n == 0)
        return smtp_reply_emit(out, code, ' ', enh, "");
    for (size_t i = 0; i < n; i++)
        if (smtp_reply_emit(out, code, i + 1 < n ? '-' : ' ', enh, lines[i]) < 0)
            return -1;
    return 0;
}
