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
    size_t i = 0;
    out[0] = '\0';
    if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
        return 0;
    i = 2;
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
    if (i >= 16)
        return 0;
    memcpy(out, text, i);
    out[i] = '\0';
    return i;
}

enum smtp_reply_status smtp_reply_parse(struct evbuffer *in, struct smtp_reply *r,
                                        struct etrn_err *err)
{
    char line[SMTP_REPLY_PARSE_LINE_MAX + 2];
    size_t off = 0;
    int first_code = 0;
    unsigned flags = 0;
    size_t nlines = 0;
    size_t buflen = evbuffer_get_length(in);

    /* Pass 1: find the last line, validating as we go, without consuming. */
    for (;;) {
        struct evbuffer_ptr start;
        if (off >= buflen)
            return SMTP_REPLY_INCOMPLETE;
        evbuffer_ptr_set(in, &start, off, EVBUFFER_PTR_SET);
        struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, &start);
        if (lf.pos < 0) {
            if (buflen - off > SMTP_REPLY_PARSE_LINE_MAX + 1) {
                evbuffer_drain(in, buflen);
                return err_set(err, "reply line longer than %d octets", SMTP_REPLY_PARSE_LINE_MAX),
                       SMTP_REPLY_MALFORMED;
            }
            return SMTP_REPLY_INCOMPLETE;
        }
        size_t len = (size_t)lf.pos - off; /* without the LF */
        if (len > SMTP_REPLY_PARSE_LINE_MAX + 1) {
            evbuffer_drain(in, (size_t)lf.pos + 1);
            err_set(err, "reply line longer than %d octets", SMTP_REPLY_PARSE_LINE_MAX);
            return SMTP_REPLY_MALFORMED;
        }
        evbuffer_copyout_from(in, &start, line, len);
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
                shown[k] = ((unsigned char)line[k] >= 0x20 && (unsigned char)line[k] < 0x7f) ? line[k] : '?';
            shown[k] = '\0';
            evbuffer_drain(in, (size_t)lf.pos + 1);
            err_set(err, "not a reply line: '%s'", shown);
            return SMTP_REPLY_MALFORMED;
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (nlines == 0)
            first_code = code;
        else if (code != first_code) {
            evbuffer_drain(in, (size_t)lf.pos + 1);
            err_set(err, "reply lines disagree on the code: %d then %d", first_code, code);
            return SMTP_REPLY_MALFORMED;
        }
        nlines++;
        if (nlines > SMTP_REPLY_MAX_LINES) {
            evbuffer_drain(in, (size_t)lf.pos + 1);
            err_set(err, "reply has more than %d lines", SMTP_REPLY_MAX_LINES);
            return SMTP_REPLY_MALFORMED;
        }
        int last;
        if (len == 3) {
            last = 1;
            flags |= SMTP_REPLY_NO_SPACE;
        } else if (line[3] == ' ') {
            last = 1;
        } else if (line[3] == '-') {
            last = 0;
        } else {
            evbuffer_drain(in, (size_t)lf.pos + 1);
            err_set(err, "reply code %d followed by '%c', not SP or '-'", code,
                    ((unsigned char)line[3] >= 0x20 && (unsigned char)line[3] < 0x7f) ? line[3] : '?');
            return SMTP_REPLY_MALFORMED;
        }
        off = (size_t)lf.pos + 1;
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
        struct evbuffer_ptr start;
        evbuffer_ptr_set(in, &start, pos, EVBUFFER_PTR_SET);
        struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, &start);
        size_t len = (size_t)lf.pos - pos;
        evbuffer_copyout_from(in, &start, line, len);
        strbuf_append(&r->raw, line, len);
        strbuf_append(&r->raw, "\n", 1);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        const char *t = len > 4 ? line + 4 : "";
        size_t tl = len > 4 ? len - 4 : 0;
        if (i == 0)
            smtp_enhanced_code_parse(t, tl, r->enh);
        if (i > 0)
            strbuf_append(&r->text, "\n", 1);
        strbuf_append(&r->text, t, tl);
        pos = (size_t)lf.pos + 1;
    }
    evbuffer_drain(in, off);
    return SMTP_REPLY_OK;
}

int smtp_reply_has_keyword(const struct smtp_reply *r, const char *kw, const char **params)
{
    size_t kl = strlen(kw);
    const char *p = r->text.data;
    while (p && *p) {
        const char *end = strchr(p, '\n');
        size_t ll = end ? (size_t)(end - p) : strlen(p);
        size_t wl = 0;
        while (wl < ll && p[wl] != ' ' && p[wl] != '=')
            wl++;
        if (wl == kl && str_ncasecmp(p, kw, kl) == 0) {
            if (params) {
                const char *q = p + wl;
                while (q < p + ll && (*q == ' ' || *q == '='))
                    q++;
                *params = q;
            }
            return 1;
        }
        p = end ? end + 1 : NULL;
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
