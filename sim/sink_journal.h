/* sink_journal.h — what the simulator's sinks and links saw: every delivery and every
 * connection, kept in memory and appended to a file that etrncheck and people read.
 *
 *   struct sink_journal *j; sink_journal_open(&j, "run.journal", &err);   // path NULL: memory only
 *   sink_journal_append(j, &entry, &err);          // one line, written with one write(2)
 *   for (i = 0; i < sink_journal_count(j); i++) use sink_journal_get(j, i);
 *   sink_journal_load(&j2, "run.journal", &err);   // read a file back (etrncheck)
 *
 * File format (docs/SIMULATOR.md): one record per line, fields separated by TAB, the
 * first field naming the record kind:
 *   delivery TIME SINK CONN PEER STATUS CODE MAIL-FROM RCPTS MESSAGE-ID SIZE SHA256
 *   connect  TIME SINK CONN PEER EVENT
 * TIME is UTC "2026-11-22T10:00:00.123Z"; RCPTS are comma-separated; an empty field is
 * written "-", the null sender "<>"; '%', TAB, CR, LF, ',' and a lone "-" are
 * percent-encoded (%25 %09 %0D %0A %2C %2D). Lines are appended and never rewritten, so
 * a reader may follow the file while the simulator runs. The in-memory list keeps at
 * most SINK_JOURNAL_MEMORY_MAX records (the file keeps all). */
#ifndef ETRN_SINK_JOURNAL_H
#define ETRN_SINK_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "netaddr.h"
#include "strbuf.h"

#define SINK_JOURNAL_MEMORY_MAX 100000
#define SINK_NAME_MAX 64
#define SINK_JOURNAL_LINE_MAX 65536

enum sink_journal_kind {
    SINK_JOURNAL_DELIVERY,   /* a whole message arrived at a sink */
    SINK_JOURNAL_CONNECT     /* a connection reached (or was refused by) a link or sink */
};

enum sink_delivery_status {
    SINK_DELIVERY_ACCEPTED,        /* "accepted": 250 sent after the final dot */
    SINK_DELIVERY_UNACKNOWLEDGED,  /* "received-unacknowledged": dropped before the reply */
    SINK_DELIVERY_REJECTED         /* "rejected": 4xx/5xx sent after the final dot */
};

struct sink_journal_entry {
    enum sink_journal_kind kind;
    int64_t time_ms;               /* Unix time, milliseconds */
    char sink[SINK_NAME_MAX];
    unsigned long conn_id;         /* the same id in a link's connect and a sink's delivery */
    char peer[NETADDR_TEXT_MAX];   /* the real client, "127.0.0.1:40312" */
    /* kind == SINK_JOURNAL_CONNECT: "accepted", "refused", "reset", "blackholed" */
    char event[32];
    /* kind == SINK_JOURNAL_DELIVERY: */
    enum sink_delivery_status status;
    int reply_code;                /* the reply to the final dot; 0 if none was sent */
    char *mail_from;               /* without angle brackets; "" is the null sender */
    char **rcpts;
    size_t nrcpts;
    char *message_id;              /* the header's value, e.g. "<x@y>"; "" if absent */
    size_t size;                   /* octets after dot-unstuffing, CRLF line ends */
    char sha256[65];               /* hex digest of those octets */
};

struct sink_journal;

typedef void (*sink_journal_listener)(const struct sink_journal_entry *e, void *arg);

int sink_journal_open(struct sink_journal **out, const char *path, struct etrn_err *err);
void sink_journal_free(struct sink_journal *j);
/* Copies e (and its strings) into the list and appends its line to the file. */
int sink_journal_append(struct sink_journal *j, const struct sink_journal_entry *e,
                        struct etrn_err *err);
size_t sink_journal_count(const struct sink_journal *j);
const struct sink_journal_entry *sink_journal_get(const struct sink_journal *j, size_t i);
/* Called after every append (e.g. etrnsim prints each delivery as it arrives). */
void sink_journal_set_listener(struct sink_journal *j, sink_journal_listener cb, void *arg);
/* Reads a journal file into a memory-only journal; errors name "path:line". */
int sink_journal_load(struct sink_journal **out, const char *path, struct etrn_err *err);

/* One record as its file line, without the trailing LF (appended to out). */
int sink_journal_format(const struct sink_journal_entry *e, struct strbuf *out);
/* Parses one line (without LF) into e; free with sink_journal_entry_clear. */
int sink_journal_parse(const char *line, struct sink_journal_entry *e, struct etrn_err *err);
void sink_journal_entry_clear(struct sink_journal_entry *e);
const char *sink_delivery_status_name(enum sink_delivery_status s);
/* Deliveries of one sink (name NULL: all) — counts only, for quick checks. */
size_t sink_journal_count_deliveries(const struct sink_journal *j, const char *sink);

#endif
