/* dialogue.h — the client dialogue engine: runs the steps of one `client ... end` block
 * against the target over a libevent bufferevent (TLS after `starttls`), judging every
 * reply and writing the transcript.
 *
 *   struct dialogue_env env = {.base = base, .target = sa, ..., .res = res, .sc = sc};
 *   dialogue_start(&d, &env, "c1", step->children, step->nchildren, on_done, arg, &err);
 *   ... on_done(d, arg): dialogue_connect_failed(d) ...; dialogue_free(d);
 *
 * Guarantees: every wait is bounded (the step's `within`, else env.step_timeout_ms); a
 * target that floods, hangs or closes ends the dialogue with a failed check, never a
 * hang; input held per session is bounded (DIALOGUE_INPUT_MAX). Checks go into env.res:
 * written checks at their level, and one summary per session for the automatic checks
 * (well-formed replies R5321-4.2b, line length R5321-4.5.3.1, CRLF R5321-2.3.8, enhanced
 * codes R2034-3/R2034-4a once advertised). on_done is called once, from the event loop. */
#ifndef ETRN_DIALOGUE_H
#define ETRN_DIALOGUE_H

#include <stdint.h>
#include <sys/socket.h>
#include "err.h"
#include "pcap_writer.h"
#include "scenario.h"
#include "verdict.h"

struct event_base;
struct ssl_ctx_st;
struct dialogue;

#define DIALOGUE_INPUT_MAX (1024 * 1024)   /* unread input bytes before reading pauses */

struct dialogue_env {
    struct event_base *base;
    struct ssl_ctx_st *tls;            /* client context for starttls; NULL: starttls fails */
    const struct sockaddr *target;
    socklen_t target_len;
    const char *source;                /* bind address ("127.0.0.250"), or NULL */
    unsigned long long step_timeout_ms;
    struct pcap_writer *pcap;          /* or NULL */
    scenario_var_lookup lookup;        /* expands $variables in sent text */
    void *lookup_arg;
    const struct scenario *sc;         /* default level and cites */
    struct scenario_result *res;       /* checks and transcript go here */
    int64_t t0_ms;                     /* transcript times are relative to this */
    int quiet;                         /* count failures only; record nothing in res */
    int line;                          /* the client step's line (for automatic checks) */
};

typedef void (*dialogue_done_cb)(struct dialogue *d, void *arg);

/* Starts connecting; the steps are run in order. steps must outlive the dialogue. */
int dialogue_start(struct dialogue **out, const struct dialogue_env *env, const char *label,
                   const struct scenario_step *steps, size_t nsteps, dialogue_done_cb cb,
                   void *arg, struct etrn_err *err);
/* Cancels (if still running; on_done is not called) and frees. */
void dialogue_free(struct dialogue *d);
/* 1 if the TCP connection could not be made (reason in dialogue_first_failure). */
int dialogue_connect_failed(const struct dialogue *d);
/* Number of checks that failed at any level (for quiet dialogues such as target alive). */
unsigned dialogue_failures(const struct dialogue *d);
const char *dialogue_first_failure(const struct dialogue *d);

/* Monotonic milliseconds (for transcripts and timing). */
int64_t dialogue_now_ms(void);
/* Appends text with control characters shown as \r \n \xNN (for transcripts). */
void dialogue_escape(const char *p, size_t n, struct strbuf *out);

#endif
