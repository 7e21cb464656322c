/* spool.h — etrnd's durable, crash-safe message spool, indexed per destination domain.
 *
 *   struct spool *sp; spool_open(&sp, "/var/spool/etrnd", &err);       // recovers what is on disk
 *   struct spool_writer *w; spool_writer_begin(sp, &w, &err);
 *   spool_writer_write(w, data, n, &err) ...;                             // message text, as received
 *   spool_writer_commit(w, "<a@x>", rcpts, nrcpt, qid, &err);             // durable when it returns 0
 *   n = spool_count(sp, "node.test", 0);                                   // ETRN node.test
 *   spool_collect(sp, "foo.test", 1, &ids, &nids);                         // ETRN @foo.test
 *   spool_remove(sp, id, &err);                                            // after the remote 250 to DATA
 *
 * Entries. A committed message becomes one spool entry per recipient domain (domains
 * lowercased), so each entry has one destination; its recipients are all in that domain.
 * An entry's id is "<qid>.<n>". Entries share the message body on disk.
 *
 * Durability. spool_writer_commit returns 0 only after the body and every envelope are
 * written, fsynced, atomically renamed into place and the directories fsynced. A crash
 * at any instant leaves each message either wholly absent (the client got no 250) or
 * wholly present. Temporary files left by a crash are removed by spool_open. An entry
 * leaves the spool only through spool_remove (delivered) or spool_bounce_done.
 *
 * Index. Lookups by domain do not scan the spool: an in-memory hash from domain to its
 * entries is built at open and kept current; '@' lookups iterate domains, not messages. */
#ifndef ETRND_SPOOL_H
#define ETRND_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "err.h"

#define SPOOL_ID_MAX 48
#define SPOOL_ADDR_MAX 320   /* RFC 5321: local part 64 + @ + domain 255 */

struct spool;
struct spool_writer;

struct spool_entry {
    char id[SPOOL_ID_MAX];          /* "<qid>.<n>" */
    char qid[SPOOL_ID_MAX];         /* the message's queue id, as logged at acceptance */
    char domain[256];               /* destination domain (lowercase) */
    char sender[SPOOL_ADDR_MAX];    /* reverse path without <>; "" for the null sender */
    char **rcpts;                   /* recipients still to deliver, without <> */
    size_t nrcpt;
    uint64_t size;                  /* body bytes */
    time_t arrival;
    unsigned attempts;              /* delivery attempts so far */
    time_t last_attempt;            /* 0 if never */
    char last_error[256];           /* last temporary failure, "" if none */
};

int spool_open(struct spool **out, const char *dir, struct etrn_err *err);
void spool_close(struct spool *sp);

int spool_writer_begin(struct spool *sp, struct spool_writer **out, struct etrn_err *err);
int spool_writer_write(struct spool_writer *w, const void *data, size_t n, struct etrn_err *err);
uint64_t spool_writer_size(const struct spool_writer *w);
/* qid_out receives the message's queue id. Frees w in all cases. */
int spool_writer_commit(struct spool_writer *w, const char *sender, char *const *rcpts,
                        size_t nrcpt, char qid_out[SPOOL_ID_MAX], struct etrn_err *err);
void spool_writer_abort(struct spool_writer *w);   /* frees w, removes its temp file */

/* Number of entries for domain (subdomains: also every label-aligned subdomain). */
size_t spool_count(struct spool *sp, const char *domain, int subdomains);
/* Ids of those entries, oldest first: *ids is a malloc'd array of malloc'd strings
 * (free with spool_ids_free). */
int spool_collect(struct spool *sp, const char *domain, int subdomains, char ***ids,
                  size_t *n, struct etrn_err *err);
void spool_ids_free(char **ids, size_t n);
/* Every domain with entries, with its count; for `etrnd --queue` and the '#' queues. */
int spool_domains(struct spool *sp, char ***domains, size_t **counts, size_t *n,
                  struct etrn_err *err);
size_t spool_total(struct spool *sp);

/* Loads an entry's envelope (a copy the caller frees with spool_entry_free). */
int spool_entry_get(struct spool *sp, const char *id, struct spool_entry **out, struct etrn_err *err);
void spool_entry_free(struct spool_entry *e);
/* Opens the entry's message body for reading (caller closes). */
int spool_body_open(struct spool *sp, const char *id, int *fd_out, struct etrn_err *err);

/* Delivery outcomes. spool_remove: every recipient accepted (or the entry is done).
 * spool_rcpts_done: some recipients finished (accepted or permanently failed), the rest
 * stay; durable on return. spool_note_attempt: a temporary failure, recorded durably. */
int spool_remove(struct spool *sp, const char *id, struct etrn_err *err);
int spool_rcpts_done(struct spool *sp, const char *id, char *const *done, size_t ndone,
                     struct etrn_err *err);
int spool_note_attempt(struct spool *sp, const char *id, time_t when, const char *error,
                       struct etrn_err *err);

/* Free space check used before accepting DATA: 0 if at least bytes are free. */
int spool_space_ok(struct spool *sp, uint64_t bytes);

/* --- Added by the spool's owner (do not change the declarations above). --- */

/* What spool_open found on disk and repaired, for etrnd's startup log. A quarantined
 * envelope (unreadable, or its body is missing) is moved to <dir>/corrupt/, never dropped. */
#define SPOOL_RECOVERY_NAMES 8
struct spool_recovery {
    size_t entries;          /* entries in the index after recovery */
    size_t bodies;           /* message bodies they share */
    size_t tmp_removed;      /* temporary files of unacknowledged messages removed */
    size_t orphans_removed;  /* bodies without envelopes removed (never acknowledged, or done) */
    size_t completed;        /* envelopes of an interrupted multi-domain commit completed */
    size_t quarantined;      /* envelopes moved to <dir>/corrupt/ (read-only open: skipped) */
    size_t foreign;          /* files the spool did not write, left where they are */
    char quarantined_names[SPOOL_RECOVERY_NAMES][256];   /* "name: reason", the first few */
};
const struct spool_recovery *spool_recovery_report(const struct spool *sp);

/* Opens a spool another etrnd may hold, for `etrnd --queue`: takes no lock, repairs
 * nothing, and tolerates files changing under it. Counting, collecting, listing and
 * spool_entry_get work; writers, removal and updates fail. */
int spool_open_readonly(struct spool **out, const char *dir, struct etrn_err *err);

/* 1 when every commit and update is fsynced (always, unless the environment variable
 * ETRND_SPOOL_NO_FSYNC=1 was set at spool_open — for building benchmark spools only). */
int spool_is_durable(const struct spool *sp);

/* Removals are group-committed: spool_remove unlinks at once but leaves the directory
 * fsync to spool_sync_removals (one fsync per touched directory, or a single syncfs of the
 * spool's filesystem when four or more were touched), which the queue runner calls within a few milliseconds
 * (and spool_close calls too). A crash in between can only repeat a delivery the
 * destination already acknowledged (one more duplicate of the RFC 1047 kind), never
 * lose a message. Returns -1 if an fsync failed (every bucket is still tried). */
int spool_sync_removals(struct spool *sp, struct etrn_err *err);
size_t spool_removals_pending(const struct spool *sp);

/* A walk over one domain's entries, oldest first, without copying them: what a queue run
 * uses instead of spool_collect, so starting one costs the same whatever the domain holds.
 * It hands out each entry at most once, including entries committed after it was opened;
 * removals under it are fine. Close every cursor before spool_close.
 *
 *   spool_cursor_open(sp, "node.test", &c, &err);
 *   while (spool_cursor_next(c, id)) ...;    // 0: nothing more for now
 *   spool_cursor_remaining(c);              // entries it has still to hand out */
struct spool_cursor;
int spool_cursor_open(struct spool *sp, const char *domain, struct spool_cursor **out,
                      struct etrn_err *err);
int spool_cursor_next(struct spool_cursor *c, char id[SPOOL_ID_MAX]);
size_t spool_cursor_remaining(const struct spool_cursor *c);
void spool_cursor_close(struct spool_cursor *c);

#endif
