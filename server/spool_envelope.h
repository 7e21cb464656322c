/* spool_envelope.h — the text form of one spool entry's envelope (env/<bb>/<qid>.<n>).
 *
 *   spool_envelope_format(&entry, &sb, &err);              // text ending in "end <sum>\n"
 *   spool_envelope_parse(sb.data, sb.len, &entry, &err);   // -1: torn, corrupt or too big
 *   spool_envelope_clear(&entry);                          // frees entry.rcpts
 *
 * Format (one "key value" per line, UTF-8/ASCII, no control characters in values):
 *   etrnd-envelope 1
 *   qid 0600ab12cd34e000        entry 0            (two lines)
 *   domain node.test            sender <a@b>       arrival 1700000000   size 1234
 *   attempts 0                  last_attempt 0     last_error <text to end of line>
 *   rcpt <c@node.test>          (one line per recipient still to deliver)
 *   end <16 hex: FNV-1a 64 of every byte before "end">
 * A file whose last line is not a matching "end" line is torn or corrupt: parse fails.
 * Unknown keys are ignored so later versions can add fields. */
#ifndef ETRND_SPOOL_ENVELOPE_H
#define ETRND_SPOOL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "spool.h"
#include "strbuf.h"

#define SPOOL_ENVELOPE_MAX (4u << 20)       /* bytes: a bigger file is corrupt */
#define SPOOL_ENVELOPE_RCPT_MAX 10000u      /* recipients per entry */

/* qid as 16 lowercase hex digits <-> its value. parse: -1 unless exactly 16 hex digits. */
void spool_qid_format(uint64_t qid, char out[17]);
int spool_qid_parse(const char *s, size_t len, uint64_t *qid);
/* "<16 hex>.<n>" -> qid, n; -1 if malformed. */
int spool_id_parse(const char *id, uint64_t *qid, uint32_t *n);

/* e->id, e->qid, e->domain, sender, rcpts, size, arrival, attempts, last_attempt and
 * last_error are written; control characters in last_error become '?'. Appends to out.
 * -1 if a value cannot be stored (a control character in an address, too big). */
int spool_envelope_format(const struct spool_entry *e, struct strbuf *out, struct etrn_err *err);
/* Fills *e (zeroed first; rcpts malloc'd). -1 with the reason on any defect. */
int spool_envelope_parse(const char *text, size_t len, struct spool_entry *e, struct etrn_err *err);
void spool_envelope_clear(struct spool_entry *e);

/* 1 if s can be stored in an envelope line as an address (no control characters, fits). */
int spool_envelope_addr_ok(const char *s);

#endif
