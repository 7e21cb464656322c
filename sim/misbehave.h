/* misbehave.h — misbehaving SMTP clients aimed at a server under test, each reporting what
 * it observed: the replies, whether the server closed or reset, how long it all took.
 *
 *   struct misbehave_spec s; misbehave_spec_default(&s);
 *   s.kind = MISBEHAVE_PIPELINED_BURST; s.target = sa; s.target_len = len;
 *   s.script = "ETRN node.test\r\n"; s.count = 20;
 *   struct misbehave_result r; misbehave_run(base, &s, &r, &err);   // loops base until done
 *   r.nreplies, r.codes[i], r.server_closed ...; misbehave_result_free(&r);
 *
 * Kinds (names for scenario files in brackets):
 *   SLOW_SENDER [slow-sender]            the script one byte every interval_ms
 *   COMMAND_FLOOD [command-flood]        the script count times, one write per copy, no waiting
 *   PIPELINED_BURST [pipelined-burst]    the script count times in a single write
 *   DISCONNECT_MID_COMMAND [disconnect-mid-command]  half the script's first line, then close
 *   GARBAGE [garbage]                    count pseudo-random bytes (with NULs), CRLF, then the script
 *   OVERLONG_LINE [overlong-line]        a command line of count octets, CRLF, then the script
 * Every run is bounded by timeout_ms; after the last byte is sent the client waits for the
 * server until it closes or stays quiet for settle_ms. The world keeps serving meanwhile
 * (misbehave_run dispatches the same event_base). */
#ifndef ETRN_MISBEHAVE_H
#define ETRN_MISBEHAVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "err.h"
#include "pcap_writer.h"
#include "strbuf.h"

struct event_base;
struct misbehave;

#define MISBEHAVE_CODES_MAX 4096     /* reply codes kept; nreplies counts all */
#define MISBEHAVE_TRANSCRIPT_MAX (1024 * 1024)
#define MISBEHAVE_PAYLOAD_MAX (16u * 1024 * 1024)

enum misbehave_kind {
    MISBEHAVE_SLOW_SENDER,
    MISBEHAVE_COMMAND_FLOOD,
    MISBEHAVE_PIPELINED_BURST,
    MISBEHAVE_DISCONNECT_MID_COMMAND,
    MISBEHAVE_GARBAGE,
    MISBEHAVE_OVERLONG_LINE
};

struct misbehave_spec {
    enum misbehave_kind kind;
    const struct sockaddr *target;
    socklen_t target_len;
    const struct sockaddr *source;   /* bind here first (e.g. 127.0.0.250); NULL: any */
    socklen_t source_len;
    const char *script;              /* CRLF-terminated commands, e.g. "ETRN node.test\r\n" */
    unsigned count;                  /* copies, garbage bytes or line length (see above) */
    unsigned interval_ms;            /* slow-sender pace */
    unsigned timeout_ms;             /* the whole run (default 10000) */
    unsigned settle_ms;              /* quiet time that ends the run (default 500) */
    int wait_greeting;               /* read the greeting before misbehaving (default 1) */
    int send_quit;                   /* end with QUIT (default 1; not for disconnect-mid-command) */
    uint32_t seed;                   /* garbage bytes (default 1) */
    struct pcap_writer *pcap;        /* record the session here, or NULL */
};

struct misbehave_result {
    int connected;
    int connect_errno;               /* when connected == 0 */
    int greeting_code;               /* 0 if none arrived */
    int codes[MISBEHAVE_CODES_MAX];  /* reply codes after the greeting, in order */
    size_t nreplies;
    size_t malformed;                /* reply lines the parser refused */
    int server_closed;               /* EOF from the server */
    int server_reset;                /* ECONNRESET or another error from the server side */
    int timed_out;                   /* timeout_ms passed first */
    size_t bytes_sent;
    int64_t elapsed_ms;
    struct strbuf transcript;        /* every byte received (bounded) */
    char error[ETRN_ERR_MAX];        /* the socket error text, if any */
};

typedef void (*misbehave_done_cb)(struct misbehave_result *r, void *arg);

void misbehave_spec_default(struct misbehave_spec *s);
const char *misbehave_kind_name(enum misbehave_kind k);
int misbehave_kind_parse(const char *name, enum misbehave_kind *out, struct etrn_err *err);
/* Starts a run on base; cb is called once with the result (owned by the run until cb
 * returns; copy what you need). */
int misbehave_start(struct misbehave **out, struct event_base *base,
                    const struct misbehave_spec *spec, misbehave_done_cb cb, void *arg,
                    struct etrn_err *err);
void misbehave_cancel(struct misbehave *m);
/* Starts a run and dispatches base until it finished; r is filled (free it). */
int misbehave_run(struct event_base *base, const struct misbehave_spec *spec,
                  struct misbehave_result *r, struct etrn_err *err);
void misbehave_result_free(struct misbehave_result *r);
/* How many replies had this code (e.g. to count 250s after a burst). */
size_t misbehave_count_code(const struct misbehave_result *r, int code);

#endif
