/* replay.h — sends the client side of captured SMTP sessions to a server again and compares
 * each reply's code with the one captured, stopping at the first difference.
 *
 *   struct replay_options o = {.target = "127.0.0.1:2525", .step_timeout_ms = 10000};
 *   struct replay_result res; replay_result_init(&res);
 *   if (replay_run(&dialogues, &cap, &o, &res, &err) < 0) die(err.msg);  // could not replay
 *   if (res.differs) puts(res.what);   // "session 1 (...), step 4 `ETRN node.test`: captured 251, now 253 ..."
 *   replay_result_free(&res);
 *
 * Only the kept sessions (capture_scenario.h) are replayed, one after the other, each on its
 * own connection, with the commands exactly as captured (or with another node for $node).
 * Guarantees: every connect and read is bounded by step_timeout_ms; input is bounded
 * (REPLAY_INPUT_MAX); a server that closes or stays silent is a difference, not a hang;
 * only loopback or the given target is contacted; never prints. */
#ifndef ETRN_REPLAY_H
#define ETRN_REPLAY_H

#include <stddef.h>
#include "capture_import.h"
#include "capture_scenario.h"
#include "err.h"
#include "strbuf.h"

#define REPLAY_INPUT_MAX (256u * 1024)
#define REPLAY_TRANSCRIPT_MAX (1024u * 1024)

struct replay_options {
    const char *target;                 /* HOST:PORT (port defaults to 25) */
    const char *source;                 /* bind address, or NULL */
    const char *node;                   /* sent in place of the captured node, or NULL */
    unsigned long long step_timeout_ms; /* 0: 10 s */
    int class_only;                     /* only a change of reply class (2xx→4xx) differs */
};

struct replay_result {
    size_t sessions;                    /* sessions replayed */
    size_t compared;                    /* replies compared */
    int differs;                        /* 1 if a reply differed */
    size_t session, step;               /* where (1-based), when differs */
    int captured_code, code;            /* code 0: no reply (closed or silent) */
    int same_class;                     /* the codes differ but the class (2xx...) is the same */
    char what[800];                     /* one line describing the difference */
    struct strbuf transcript;           /* "> EHLO x" / "< 250 ..." / "! ..." lines */
};

void replay_result_init(struct replay_result *r);
void replay_result_free(struct replay_result *r);

/* 0 when every kept session was replayed (res.differs says whether a reply differed);
 * -1 when replay could not run (bad target, nothing to replay, connect refused...). */
int replay_run(const struct capture_dialogues *d, const struct capture *cap,
               const struct replay_options *o, struct replay_result *res, struct etrn_err *err);

#endif
