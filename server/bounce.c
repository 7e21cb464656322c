/* bounce.c — etrnd's non-delivery reports: RFC 3464 delivery-status inside RFC 6522
 * multipart/report, committed to the spool like any other message.
 *
 *   bounce_compose(&report, &text, &err);                 // the DSN text
 *   bounce_send(sp, myhostname, entry, rcpts, n, reason, now, qid, &err);
 *   // 1 = committed, 0 = null sender (log and drop), -1 = error (keep the original)
 *
 * Guarantees: every line ends in CRLF and is ASCII except the copied original headers;
 * the DSN's reverse path is null so it can never bounce again; its size is bounded. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bounce.h"
#include "domain.h"

static unsigned bounce_counter;

static void bounce_date(time_t t, char *out, size_t n)
{
    struct tm tm;
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    gmtime_r(&t, &tm);
    /* Locale-independent RFC 5322 date. */
    str_format(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
               months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Appends s with control and 8-bit characters replaced, so a remote reply cannot break
 * the DSN's structure. */
static int bounce_append_clean(struct strbuf *out, const char *s, size_t max)
{
    size_t i;
    for (i = 0; s && s[i] && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        char c = (ch < 0x20 || ch > 0x7e) ? ' ' : (char)ch;
        if (strbuf_append(out, &c, 1) < 0)
            return -1;
    }
    return 0;
}

/* Appends text with every line ending made CRLF, guaranteeing a final CRLF. */
static int bounce_append_crlf(struct strbuf *out, const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && p[i] != '\r')
            continue;
        if (strbuf_append(out, p + start, i - start) < 0 || strbuf_append(out, "\r\n", 2) < 0)
            return -1;
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    if (start < n && (strbuf_append(out, p + start, n - start) < 0 || strbuf_append(out, "\r\n", 2) < 0))
        return -1;
    return 0;
}

int bounce_compose(const struct bounce_report *rep, struct strbuf *out, struct etrn_err *err)
{
    char date[64], arrival[64], boundary[160];
    bounce_date(rep->now, date, sizeof date);
    bounce_date(rep->arrival, arrival, sizeof arrival);
    bounce_counter++;
    /* RFC 2046: at most 70 characters; what varies most comes first so a cut keeps it. */
    str_format(boundary, sizeof boundary, "=_etrnd_%lld_%u_%s", (long long)rep->now, bounce_counter,
               rep->qid);
    boundary[70] = '\0';
    const char *me = rep->myhostname;
    int bad = 0;

    bad |= strbuf_appendf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", me);
    bad |= strbuf_appendf(out, "To: <%s>\r\n", rep->sender);
    bad |= strbuf_appendf(out, "Subject: Undelivered Mail Returned to Sender\r\n");
    bad |= strbuf_appendf(out, "Date: %s\r\n", date);
    bad |= strbuf_appendf(out, "Message-ID: <%s.%lld.%u.dsn@%s>\r\n", rep->qid,
                          (long long)rep->now, bounce_counter, me);
    bad |= strbuf_appendf(out, "Auto-Submitted: auto-replied\r\n");
    bad |= strbuf_appendf(out, "MIME-Version: 1.0\r\n");
    bad |= strbuf_appendf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                               "\tboundary=\"%s\"\r\n\r\n", boundary);
    bad |= strbuf_appendf(out, "This is a MIME-encapsulated message.\r\n\r\n");

    /* 1: for people */
    bad |= strbuf_appendf(out, "--%s\r\n", boundary);
    bad |= strbuf_appendf(out, "Content-Description: Notification\r\n"
                               "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    bad |= strbuf_appendf(out, "This is the mail system at host %s.\r\n\r\n", me);
    bad |= strbuf_appendf(out, "I'm sorry to have to inform you that your message could not\r\n"
                               "be delivered to one or more recipients.\r\n\r\n");
    if (rep->reason && rep->reason[0]) {
        bad |= bounce_append_clean(out, rep->reason, 900);
        bad |= strbuf_append_str(out, "\r\n\r\n");
    }
    for (size_t i = 0; i < rep->nrcpt; i++) {
        const struct bounce_rcpt *r = &rep->rcpts[i];
        bad |= strbuf_appendf(out, "<%s>: ", r->addr);
        if (r->remote_mta && r->diagnostic) {
            bad |= strbuf_appendf(out, "host %s said: ", r->remote_mta);
        }
        bad |= bounce_append_clean(out, r->diagnostic ? r->diagnostic : "delivery failed", 900);
        bad |= strbuf_append_str(out, "\r\n");
    }
    bad |= strbuf_append_str(out, "\r\n");

    /* 2: for machines (RFC 3464) */
    bad |= strbuf_appendf(out, "--%s\r\n", boundary);
    bad |= strbuf_appendf(out, "Content-Description: Delivery report\r\n"
                               "Content-Type: message/delivery-status\r\n\r\n");
    bad |= strbuf_appendf(out, "Reporting-MTA: dns; %s\r\n", me);
    bad |= strbuf_appendf(out, "X-Etrnd-Queue-ID: %s\r\n", rep->qid);
    bad |= strbuf_appendf(out, "Arrival-Date: %s\r\n", arrival);
    for (size_t i = 0; i < rep->nrcpt; i++) {
        const struct bounce_rcpt *r = &rep->rcpts[i];
        bad |= strbuf_appendf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", r->addr);
        bad |= strbuf_appendf(out, "Action: failed\r\n");
        bad |= strbuf_appendf(out, "Status: %s\r\n", r->status && r->status[0] ? r->status : "5.0.0");
        if (r->remote_mta)
            bad |= strbuf_appendf(out, "Remote-MTA: dns; %s\r\n", r->remote_mta);
        if (r->diagnostic && r->diagnostic[0]) {
            /* "smtp;" only for what a server said; local reasons are "x-etrnd;". */
            bad |= strbuf_appendf(out, "Diagnostic-Code: %s; ", r->remote_mta ? "smtp" : "x-etrnd");
            bad |= bounce_append_clean(out, r->diagnostic, 900);
            bad |= strbuf_append_str(out, "\r\n");
        }
        bad |= strbuf_appendf(out, "Last-Attempt-Date: %s\r\n", date);
    }
    bad |= strbuf_append_str(out, "\r\n");

    /* 3: the original headers */
    bad |= strbuf_appendf(out, "--%s\r\n", boundary);
    bad |= strbuf_appendf(out, "Content-Description: Undelivered Message Headers\r\n"
                               "Content-Type: text/rfc822-headers\r\n\r\n");
    if (rep->headers && rep->headers_len)
        bad |= bounce_append_crlf(out, rep->headers, rep->headers_len);
    bad |= strbuf_appendf(out, "\r\n--%s--\r\n", boundary);
    if (bad)
        return err_set(err, "DSN for %s is larger than %zu octets", rep->qid, out->limit);
    return 0;
}

int bounce_read_headers(int fd, struct strbuf *out, struct etrn_err *err)
{
    char buf[8192];
    off_t off = 0;
    int at_line_start = 1;   /* the previous octet was LF (or nothing yet) */
    size_t last_line_end = out->len;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set_errno(err, "reading the message headers");
        if (n == 0)
            return 0;
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (at_line_start && (ch == '\n' || (ch == '\r' && (i + 1 >= n || buf[i + 1] == '\n'))))
                return 0;      /* the empty line that ends the header section */
            if (out->len >= BOUNCE_HEADERS_MAX) {
                out->len = last_line_end;          /* cut at the last complete line */
                out->data[out->len] = '\0';
                return 0;
            }
            if (strbuf_append(out, &ch, 1) < 0) {
                out->len = last_line_end;
                out->data[out->len] = '\0';
                return 0;
            }
            if (ch == '\n') {
                at_line_start = 1;
                last_line_end = out->len;
            } else if (ch != '\r') {
                at_line_start = 0;
            }
        }
        off += n;
    }
}

int bounce_send(struct spool *sp, const char *myhostname, const struct spool_entry *e,
                const struct bounce_rcpt *rcpts, size_t nrcpt, const char *reason, time_t now,
                char qid_out[SPOOL_ID_MAX], struct etrn_err *err)
{
    if (e->sender[0] == '\0')
        return 0;            /* never bounce a bounce */
    struct strbuf headers, text;
    strbuf_init(&headers, BOUNCE_HEADERS_MAX);
    strbuf_init(&text, BOUNCE_TEXT_MAX);
    int fd = -1;
    struct etrn_err ignored;
    if (spool_body_open(sp, e->id, &fd, &ignored) == 0) {
        /* Without the original text the DSN still goes out, just without headers. */
        bounce_read_headers(fd, &headers, &ignored);
        close(fd);
    }
    struct bounce_report rep = { myhostname, e->qid, e->sender, e->arrival, now, reason,
                                 rcpts, nrcpt, headers.data, headers.len };
    int rc = bounce_compose(&rep, &text, err);
    strbuf_free(&headers);
    if (rc < 0) {
        strbuf_free(&text);
        return -1;
    }
    struct spool_writer *w;
    if (spool_writer_begin(sp, &w, err) < 0) {
        strbuf_free(&text);
        return err_prefix(err, "DSN for %s", e->qid);
    }
    if (spool_writer_write(w, text.data, text.len, err) < 0) {
        spool_writer_abort(w);
        strbuf_free(&text);
        return err_prefix(err, "DSN for %s", e->qid);
    }
    strbuf_free(&text);
    char *to[1] = { (char *)e->sender };
    if (spool_writer_commit(w, "", to, 1, qid_out, err) < 0)
        return err_prefix(err, "DSN for %s", e->qid);
    return 1;
}
