/* etrn_cmd.h — the ETRN command (RFC 1985) as pure functions: parse the argument, choose
 * the reply. No I/O, no policy, no queue: smtpd.c glues them to policy.c and flush.c.
 *
 *   struct etrn_request rq; struct etrn_err why;
 *   switch (etrn_parse(args, len, 0, &rq, &why)) { case ETRN_SYNTAX_OK: ... }
 *   struct etrn_reply r; etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, queued, ETRN_REPLY_COUNTED, 0, &r);
 *   smtp_reply_write(out, r.code, r.enh, "%s", r.text);
 *
 * Replies (docs/man/etrnd.conf.5 lists them): 250/251/253 2.0.0 started; 458 4.3.0 unable
 * (internal failure); 458 4.7.0 rate limited; 459 4.7.1 not allowed (policy, node not
 * held here, '@' too broad, authentication required); 459 4.5.4 unknown '#' queue;
 * 500 5.5.2 no argument; 501 5.5.4 bad argument; 502 5.5.1 ETRN disabled; 503 5.5.1
 * out of sequence. Every reply carries an enhanced status code whose class matches. */
#ifndef ETRND_ETRN_CMD_H
#define ETRND_ETRN_CMD_H

#include <stddef.h>
#include "domain.h"
#include "err.h"
#include "smtp_line.h"

enum etrn_option {
    ETRN_OPTION_NONE,   /* ETRN node.test: that node */
    ETRN_OPTION_AT,     /* ETRN @foo.test: the node and every label-aligned subdomain */
    ETRN_OPTION_HASH    /* ETRN #name: a queue configured as queue.NAME */
};

#define ETRN_QUEUE_NAME_MAX 63

struct etrn_request {
    enum etrn_option option;
    char node[DOMAIN_MAX + 1];     /* domain (lowercase, no trailing dot) or queue name;
                                      "" only for "@." (the root: always too broad) */
    char display[DOMAIN_MAX + 2];  /* as named in replies and logs: "@foo.test", "#uucp" */
};

enum etrn_syntax {
    ETRN_SYNTAX_OK,
    ETRN_SYNTAX_MISSING,   /* no argument at all (RFC 1985 §7: 500) */
    ETRN_SYNTAX_BAD        /* an argument that is not [@|#]node (501); why says what */
};

/* Parse flags: test-only defects (etrnd.conf(5) TEST-ONLY DEFECTS). */
#define ETRN_PARSE_CASE_SENSITIVE 0x1u   /* etrn_case_sensitive: keep the node as typed */
#define ETRN_PARSE_IGNORE_AT      0x2u   /* etrn_ignore_at: '@node' read as 'node' */

/* args is the text after the verb (leading and trailing blanks are ignored); len its
 * length (it may contain NULs, which are refused). */
enum etrn_syntax etrn_parse(const char *args, size_t len, unsigned flags,
                            struct etrn_request *rq, struct etrn_err *why);

enum etrn_outcome {
    ETRN_OUTCOME_STARTED,          /* flush_request succeeded; count = entries covered */
    ETRN_OUTCOME_FAILED,           /* flush_request failed: 458 4.3.0 */
    ETRN_OUTCOME_SYNTAX_MISSING,   /* 500 5.5.2 */
    ETRN_OUTCOME_SYNTAX_BAD,       /* 501 5.5.4 with detail */
    ETRN_OUTCOME_DISABLED,         /* etrn = no: 502 5.5.1 */
    ETRN_OUTCOME_NEED_HELO,        /* etrn_require_helo and no HELO/EHLO yet: 503 5.5.1 */
    ETRN_OUTCOME_IN_TRANSACTION,   /* after MAIL (RFC 1985 §5 "illegal"): 503 5.5.1 */
    ETRN_OUTCOME_RATE_LIMITED,     /* 458 4.7.0 */
    ETRN_OUTCOME_NOT_HELD,         /* 459 4.7.1 not a node held here */
    ETRN_OUTCOME_TOO_BROAD,        /* 459 4.7.1 '@' with fewer than two labels */
    ETRN_OUTCOME_QUEUE_UNKNOWN,    /* 459 4.5.4 */
    ETRN_OUTCOME_AUTH_REQUIRED,    /* 459 4.7.1 etrn_require_auth */
    ETRN_OUTCOME_CLIENT_REFUSED    /* 459 4.7.1 no etrn_allow rule lets this client */
};

struct etrn_reply {
    int code;
    char enh[16];
    char text[SMTP_REPLY_LINE_MAX];
};

/* Reply flags: test-only defects. */
#define ETRN_REPLY_WRONG_COUNT     0x1u  /* etrn_wrong_count: 253 with count + 1 */
#define ETRN_REPLY_ACCEPT_MALFORMED 0x2u /* etrn_accept_malformed: 250 to syntax errors */

/* rq may be NULL for outcomes that come before parsing; detail is the syntax error
 * (ETRN_OUTCOME_SYNTAX_BAD) or NULL; style is ETRN_REPLY_COUNTED or ETRN_REPLY_PLAIN. */
void etrn_reply_choose(enum etrn_outcome o, const struct etrn_request *rq, size_t count,
                       int style, unsigned flags, const char *detail, struct etrn_reply *r);

/* A short word for logs: "started", "not-held", "syntax", ... */
const char *etrn_outcome_name(enum etrn_outcome o);

#endif
