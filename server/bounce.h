/* bounce.h — delivery status notifications (RFC 3464 inside RFC 6522 multipart/report)
 * for mail etrnd could not deliver.
 *
 *   struct bounce_rcpt r = { "u@node.test", "5.1.1", "550 5.1.1 no such user", "mx1.node.test" };
 *   int n = bounce_send(sp, "relay.example", entry, &r, 1, "host mx1 said ...", time(NULL), qid, &err);
 *   if (n == 1) flush_message_committed(fl, domain_of_address(entry->sender));
 *
 * The DSN comes from MAILER-DAEMON@myhostname with the null reverse path (so it can never
 * cause another DSN), goes to the original sender, and carries the original header
 * section (text/rfc822-headers, at most BOUNCE_HEADERS_MAX octets), never the body.
 * Mail from the null sender is not bounced (RFC 5321 §4.5.5): bounce_send returns 0. */
#ifndef ETRND_BOUNCE_H
#define ETRND_BOUNCE_H

#include <stddef.h>
#include <time.h>
#include "err.h"
#include "spool.h"
#include "strbuf.h"

#define BOUNCE_HEADERS_MAX 65536
#define BOUNCE_TEXT_MAX (BOUNCE_HEADERS_MAX + 262144)  /* whole DSN */

struct bounce_rcpt {
    const char *addr;            /* the recipient that failed, without <> */
    const char *status;          /* enhanced status, "5.1.1" (RFC 3463) */
    const char *diagnostic;      /* the remote reply ("550 5.1.1 ...") or a local reason; may be NULL */
    const char *remote_mta;      /* host that gave the reply; NULL if none */
};

struct bounce_report {
    const char *myhostname;
    const char *qid;             /* the failed message's queue id */
    const char *sender;          /* its envelope sender: the DSN's recipient */
    time_t arrival;
    time_t now;
    const char *reason;          /* one sentence for people; may be NULL */
    const struct bounce_rcpt *rcpts;
    size_t nrcpt;
    const char *headers;         /* the original header section; may be NULL */
    size_t headers_len;
};

/* Writes the whole DSN message (header and MIME parts, CRLF line endings) into out. */
int bounce_compose(const struct bounce_report *rep, struct strbuf *out, struct etrn_err *err);
/* Reads the header section of the message on fd (from offset 0, up to the first empty
 * line, at most BOUNCE_HEADERS_MAX octets, cut at a line end) into out. */
int bounce_read_headers(int fd, struct strbuf *out, struct etrn_err *err);
/* Composes and commits a DSN for entry e to the spool. 1: committed (qid_out set);
 * 0: nothing to send (null sender); -1: failed (err), the caller keeps the entry. */
int bounce_send(struct spool *sp, const char *myhostname, const struct spool_entry *e,
                const struct bounce_rcpt *rcpts, size_t nrcpt, const char *reason, time_t now,
                char qid_out[SPOOL_ID_MAX], struct etrn_err *err);

#endif
