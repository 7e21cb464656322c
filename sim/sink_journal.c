/* sink_journal.c — the append-only record of deliveries and connections (see sink_journal.h).
 *
 *   sink_journal_open(&j, path, &err); sink_journal_append(j, &e, &err);
 *   sink_journal_get(j, i)->sha256; sink_journal_load(&j, path, &err);
 *
 * Guarantees: each record is one line written with a single write(2) on an O_APPEND
 * descriptor, so a reader never sees half a record from a live simulator except a line
 * without its LF (which readers skip); the format round-trips through format/parse. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "sink_journal.h"

struct sink_journal {
    int fd;                        /* -1: memory only */
    char *path;
    struct sink_journal_entry *entries;
    size_t n, cap;
    sink_journal_listener listener;
    void *listener_arg;
};

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

const char *sink_delivery_status_name(enum sink_delivery_status s)
{
    switch (s) {
    case SINK_DELIVERY_ACCEPTED: return "accepted";
    case SINK_DELIVERY_UNACKNOWLEDGED: return "received-unacknowledged";
    case SINK_DELIVERY_REJECTED: return "rejected";
    }
    return "?";
}

int sink_journal_open(struct sink_journal **out, const char *path, struct etrn_err *err)
{
    *out = NULL;
    struct sink_journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return err_set(err, "journal: out of memory");
    j->fd = -1;
    if (path != NULL) {
        j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (j->fd < 0) {
            free(j);
            return err_set_errno(err, "journal %s", path);
        }
        j->path = strdup(path);
        if (j->path == NULL) {
            close(j->fd);
            free(j);
            return err_set(err, "journal: out of memory");
        }
    }
    *out = j;
    return 0;
}

void sink_journal_entry_clear(struct sink_journal_entry *e)
{
    free(e->mail_from);
    for (size_t i = 0; i < e->nrcpts; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
    free(e->message_id);
    e->mail_from = NULL;
    e->rcpts = NULL;
    e->nrcpts = 0;
    e->message_id = NULL;
}

void sink_journal_free(struct sink_journal *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->n; i++)
        sink_journal_entry_clear(&j->entries[i]);
    free(j->entries);
    if (j->fd >= 0)
        close(j->fd);
    free(j->path);
    free(j);
}

static int entry_copy(struct sink_journal_entry *dst, const struct sink_journal_entry *src)
{
    *dst = *src;
    dst->mail_from = NULL;
    dst->rcpts = NULL;
    dst->nrcpts = 0;
    dst->message_id = NULL;
    if (src->kind != SINK_JOURNAL_DELIVERY)
        return 0;
    dst->mail_from = dup_or_empty(src->mail_from);
    dst->message_id = dup_or_empty(src->message_id);
    if (dst->mail_from == NULL || dst->message_id == NULL)
        goto fail;
    if (src->nrcpts > 0) {
        dst->rcpts = calloc(src->nrcpts, sizeof *dst->rcpts);
        if (dst->rcpts == NULL)
            goto fail;
        for (size_t i = 0; i < src->nrcpts; i++) {
            dst->rcpts[i] = dup_or_empty(src->rcpts[i]);
            if (dst->rcpts[i] == NULL) {
                dst->nrcpts = i;
                goto fail;
            }
        }
        dst->nrcpts = src->nrcpts;
    }
    return 0;
fail:
    sink_journal_entry_clear(dst);
    return -1;
}

/* Appends s with the journal's escapes; "-" stands for an empty field. */
static int field_append(struct strbuf *out, const char *s, int escape_comma)
{
    if (s == NULL || *s == '\0')
        return strbuf_append(out, "-", 1);
    if (strcmp(s, "-") == 0)
        return strbuf_append(out, "%2D", 3);
    for (const char *p = s; *p; p++) {
        int r;
        switch (*p) {
        case '%': r = strbuf_append(out, "%25", 3); break;
        case '\t': r = strbuf_append(out, "%09", 3); break;
        case '\r': r = strbuf_append(out, "%0D", 3); break;
        case '\n': r = strbuf_append(out, "%0A", 3); break;
        case ',':
            r = escape_comma ? strbuf_append(out, "%2C", 3) : strbuf_append(out, p, 1);
            break;
        default: r = strbuf_append(out, p, 1); break;
        }
        if (r < 0)
            return -1;
    }
    return 0;
}

static int time_append(struct strbuf *out, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return -1;
    char buf[32];
    if (strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return -1;
    return strbuf_appendf(out, "%s.%03dZ", buf, (int)(ms % 1000));
}

int sink_journal_format(const struct sink_journal_entry *e, struct strbuf *out)
{
    if (strbuf_append_str(out, e->kind == SINK_JOURNAL_DELIVERY ? "delivery\t" : "connect\t") < 0
        || time_append(out, e->time_ms) < 0 || strbuf_append(out, "\t", 1) < 0
        || field_append(out, e->sink, 0) < 0
        || strbuf_appendf(out, "\t%lu\t", e->conn_id) < 0
        || field_append(out, e->peer, 0) < 0 || strbuf_append(out, "\t", 1) < 0)
        return -1;
    if (e->kind == SINK_JOURNAL_CONNECT)
        return field_append(out, e->event, 0);
    if (strbuf_appendf(out, "%s\t%d\t", sink_delivery_status_name(e->status), e->reply_code) < 0)
        return -1;
    if (e->mail_from == NULL || *e->mail_from == '\0') {
        if (strbuf_append(out, "<>", 2) < 0)
            return -1;
    } else if (field_append(out, e->mail_from, 0) < 0) {
        return -1;
    }
    if (strbuf_append(out, "\t", 1) < 0)
        return -1;
    if (e->nrcpts == 0 && strbuf_append(out, "-", 1) < 0)
        return -1;
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (i > 0 && strbuf_append(out, ",", 1) < 0)
            return -1;
        if (field_append(out, e->rcpts[i], 1) < 0)
            return -1;
    }
    if (strbuf_append(out, "\t", 1) < 0 || field_append(out, e->message_id, 0) < 0
        || strbuf_appendf(out, "\t%zu\t", e->size) < 0 || field_append(out, e->sha256, 0) < 0)
        return -1;
    return 0;
}

int sink_journal_append(struct sink_journal *j, const struct sink_journal_entry *e,
                        struct etrn_err *err)
{
    if (j->fd >= 0) {
        struct strbuf line;
        strbuf_init(&line, SINK_JOURNAL_LINE_MAX);
        if (sink_journal_format(e, &line) < 0 || strbuf_append(&line, "\n", 1) < 0) {
            strbuf_free(&line);
            return err_set(err, "journal %s: record too long", j->path);
        }
        /* One write: O_APPEND keeps concurrent readers from seeing interleaved records. */
        if (fileio_write_all(j->fd, line.data, line.len) < 0) {
            strbuf_free(&line);
            return err_set_errno(err, "journal %s: write", j->path);
        }
        strbuf_free(&line);
    }
    if (j->n < SINK_JOURNAL_MEMORY_MAX) {
        if (j->n == j->cap) {
            size_t cap = j->cap ? j->cap * 2 : 64;
            struct sink_journal_entry *v = realloc(j->entries, cap * sizeof *v);
            if (v == NULL)
                return err_set(err, "journal: out of memory");
            j->entries = v;
            j->cap = cap;
        }
        if (entry_copy(&j->entries[j->n], e) < 0)
            return err_set(err, "journal: out of memory");
        j->n++;
    }
    if (j->listener != NULL)
        j->listener(e, j->listener_arg);
    return 0;
}

size_t sink_journal_count(const struct sink_journal *j)
{
    return j != NULL ? j->n : 0;
}

const struct sink_journal_entry *sink_journal_get(const struct sink_journal *j, size_t i)
{
    return j != NULL && i < j->n ? &j->entries[i] : NULL;
}

size_t sink_journal_count_deliveries(const struct sink_journal *j, const char *sink)
{
    size_t count = 0;
    for (size_t i = 0; j != NULL && i < j->n; i++)
        if (j->entries[i].kind == SINK_JOURNAL_DELIVERY
            && (sink == NULL || strcmp(j->entries[i].sink, sink) == 0))
            count++;
    return count;
}

void sink_journal_set_listener(struct sink_journal *j, sink_journal_listener cb, void *arg)
{
    j->listener = cb;
    j->listener_arg = arg;
}

/* --- parsing --------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes one field in place ("-" becomes ""); -1 on a bad escape. */
static int field_decode(char *s)
{
    if (strcmp(s, "-") == 0) {
        s[0] = '\0';
        return 0;
    }
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
            if (hi < 0 || lo < 0)
                return -1;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

static int time_parse(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL || rest[0] != '.')
        return -1;
    char *end;
    long ms = strtol(rest + 1, &end, 10);
    if (end != rest + 4 || strcmp(end, "Z") != 0 || ms < 0)
        return -1;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1)
        return -1;
    *out = (int64_t)secs * 1000 + ms;
    return 0;
}

static int parse_ulong(const char *s, unsigned long *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

#define JOURNAL_FIELDS_MAX 12

int sink_journal_parse(const char *line, struct sink_journal_entry *e, struct etrn_err *err)
{
    memset(e, 0, sizeof *e);
    char *copy = strdup(line);
    if (copy == NULL)
        return err_set(err, "out of memory");
    char *f[JOURNAL_FIELDS_MAX];
    size_t nf = 0;
    char *p = copy;
    for (;;) {
        if (nf == JOURNAL_FIELDS_MAX) {
            free(copy);
            return err_set(err, "too many fields");
        }
        f[nf++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    int rc = -1;
    unsigned long v;
    if (strcmp(f[0], "delivery") == 0) {
        e->kind = SINK_JOURNAL_DELIVERY;
        if (nf != 12) {
            err_set(err, "a delivery record has 12 fields, this one %zu", nf);
            goto out;
        }
    } else if (strcmp(f[0], "connect") == 0) {
        e->kind = SINK_JOURNAL_CONNECT;
        if (nf != 6) {
            err_set(err, "a connect record has 6 fields, this one %zu", nf);
            goto out;
        }
    } else {
        err_set(err, "unknown record kind '%s'", f[0]);
        goto out;
    }
    if (time_parse(f[1], &e->time_ms) < 0) {
        err_set(err, "bad time '%s'", f[1]);
        goto out;
    }
    if (field_decode(f[2]) < 0 || str_copy(e->sink, sizeof e->sink, f[2]) < 0
        || parse_ulong(f[3], &e->conn_id) < 0 || field_decode(f[4]) < 0
        || str_copy(e->peer, sizeof e->peer, f[4]) < 0) {
        err_set(err, "bad sink, connection id or peer field");
        goto out;
    }
    if (e->kind == SINK_JOURNAL_CONNECT) {
        if (field_decode(f[5]) < 0 || str_copy(e->event, sizeof e->event, f[5]) < 0) {
            err_set(err, "bad event '%s'", f[5]);
            goto out;
        }
        rc = 0;
        goto out;
    }
    if (strcmp(f[5], "accepted") == 0)
        e->status = SINK_DELIVERY_ACCEPTED;
    else if (strcmp(f[5], "received-unacknowledged") == 0)
        e->status = SINK_DELIVERY_UNACKNOWLEDGED;
    else if (strcmp(f[5], "rejected") == 0)
        e->status = SINK_DELIVERY_REJECTED;
    else {
        err_set(err, "unknown delivery status '%s'", f[5]);
        goto out;
    }
    if (parse_ulong(f[6], &v) < 0 || v > 599) {
        err_set(err, "bad reply code '%s'", f[6]);
        goto out;
    }
    e->reply_code = (int)v;
    if (strcmp(f[7], "<>") == 0)
        f[7][0] = '\0';
    if (field_decode(f[7]) < 0 || field_decode(f[9]) < 0) {
        err_set(err, "bad escape in sender or Message-ID");
        goto out;
    }
    e->mail_from = strdup(f[7]);
    e->message_id = strdup(f[9]);
    if (e->mail_from == NULL || e->message_id == NULL) {
        err_set(err, "out of memory");
        goto out;
    }
    if (strcmp(f[8], "-") != 0) {
        size_t n = 1;
        for (const char *c = f[8]; *c; c++)
            n += *c == ',';
        e->rcpts = calloc(n, sizeof *e->rcpts);
        if (e->rcpts == NULL) {
            err_set(err, "out of memory");
            goto out;
        }
        char *r = f[8];
        for (size_t i = 0; i < n; i++) {
            char *comma = strchr(r, ',');
            if (comma != NULL)
                *comma = '\0';
            if (field_decode(r) < 0 || (e->rcpts[i] = strdup(r)) == NULL) {
                err_set(err, "bad recipient field");
                goto out;
            }
            e->nrcpts = i + 1;
            r = comma != NULL ? comma + 1 : r + strlen(r);
        }
    }
    if (parse_ulong(f[10], &v) < 0) {
        err_set(err, "bad size '%s'", f[10]);
        goto out;
    }
    e->size = v;
    if (field_decode(f[11]) < 0 || strlen(f[11]) != 64
        || str_copy(e->sha256, sizeof e->sha256, f[11]) < 0) {
        err_set(err, "bad SHA-256 '%s'", f[11]);
        goto out;
    }
    rc = 0;
out:
    free(copy);
    if (rc < 0)
        sink_journal_entry_clear(e);
    return rc;
}

int sink_journal_load(struct sink_journal **out, const char *path, struct etrn_err *err)
{
    *out = NULL;
    struct strbuf text;
    strbuf_init(&text, (size_t)1 << 30);
    if (fileio_read_file(path, &text, (size_t)1 << 30, err) < 0) {
        strbuf_free(&text);
        return -1;
    }
    struct sink_journal *j;
    if (sink_journal_open(&j, NULL, err) < 0) {
        strbuf_free(&text);
        return -1;
    }
    int lineno = 0;
    char *p = text.data;
    while (*p) {
        char *lf = strchr(p, '\n');
        lineno++;
        if (lf == NULL)
            break;   /* a record still being written: not a record yet */
        *lf = '\0';
        if (*p != '\0' && *p != '#') {
            struct sink_journal_entry e;
            if (sink_journal_parse(p, &e, err) < 0) {
                err_prefix(err, "%s:%d", path, lineno);
                sink_journal_free(j);
                strbuf_free(&text);
                return -1;
            }
            int r = sink_journal_append(j, &e, err);
            sink_journal_entry_clear(&e);
            if (r < 0) {
                sink_journal_free(j);
                strbuf_free(&text);
                return -1;
            }
        }
        p = lf + 1;
    }
    strbuf_free(&text);
    *out = j;
    return 0;
}
