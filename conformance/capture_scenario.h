/* capture_scenario.h — turns the SMTP sessions and DNS answers of an imported capture into
 * dialogues (commands paired with the replies the server gave) and those into scenario text.
 *
 *   struct capture_dialogues d;
 *   if (capture_dialogues_build(&d, &cap, &opts, &err) < 0) die(err.msg);
 *   capture_scenario_format(&d, &cap, &opts, &text, &err);   // parses with scenario_parse_string
 *   capture_dialogues_free(&d);
 *
 * Sessions: a TCP stream is SMTP when its server speaks "DDD " / "DDD-" lines or its client
 * opens with EHLO/HELO/LHLO. Each client line is paired, in order, with the next reply (so
 * pipelining and AUTH's 334 continuations pair up); after DATA and 354 the message up to
 * "." is one step. A session is *kept* (becomes a `client` block and is replayed) when it
 * holds ETRN, or with all_sessions when it is not the relay's own delivery to a node.
 * Deliveries (the relay connecting out to a node's mail server) declare sinks and outcomes.
 *
 * Names: the first ETRN node becomes $node (upper-case spellings $NODE), its subdomains
 * sub.$node, the address of each node mail server $sink1, $sink2 ... (from deliveries, then
 * A/AAAA answers for the node's names); a '$' in captured text becomes "$$". Every kept
 * command also keeps its captured text, so replay can send it unchanged.
 *
 * Guarantees: bounded (CAPTURE_SESSION_STEPS_MAX exchanges per session, CAPTURE_SINKS_MAX
 * sinks, CAPTURE_DNS_LINES_MAX dns lines; the text stays under SCENARIO_STEPS_MAX steps and
 * SCENARIO_LINE_MAX per line, cutting with a comment and a note); the text parses with
 * scenario_parse_string whenever the build succeeded. */
#ifndef ETRN_CAPTURE_SCENARIO_H
#define ETRN_CAPTURE_SCENARIO_H

#include <stddef.h>
#include "capture_import.h"
#include "err.h"
#include "strbuf.h"

#define CAPTURE_SESSION_STEPS_MAX 2000
#define CAPTURE_SINKS_MAX         14       /* the runner's pool per scenario */
#define CAPTURE_DNS_LINES_MAX     200
#define CAPTURE_REPLY_TEXT_MAX    4096
#define CAPTURE_COMMAND_MAX       2000     /* longer client lines are cut (noted) */
#define CAPTURE_BODY_MAX          (64u * 1024)

enum capture_session_role {
    CAPTURE_ROLE_CLIENT,          /* a client talking to the relay (or any SMTP server) */
    CAPTURE_ROLE_DELIVERY         /* the relay delivering to a node's mail server */
};

struct capture_exchange {
    char *command;                /* the client line without its line ending; NULL for the
                                     greeting or a reply nobody asked for */
    char *command_templ;          /* the same with names replaced by $variables */
    int templ_raw;                /* command_templ is send-raw text (escapes, line ending) */
    unsigned char *body;          /* DATA: the message as sent (dot-stuffed, ending "\r\n.\r\n") */
    size_t body_len;
    char *body_templ;             /* escaped for send-raw, names replaced */
    int bare_lf;                  /* the command ended with LF alone */
    int code;                     /* the reply's code; 0: no reply captured; -1: not SMTP */
    char *reply;                  /* reply text, lines joined by '\n' (code removed) */
    size_t nlines;
    int lists_etrn;               /* an EHLO reply listing the ETRN keyword */
    long count;                   /* 253's pending count, or -1 */
};

struct capture_session {
    size_t stream;                /* index into capture.streams */
    enum capture_session_role role;
    struct capture_exchange *v;
    size_t n;
    int has_etrn;
    int kept;                     /* a client block of the scenario, replayed */
    int starttls;                 /* the session went on under TLS (not imported) */
    int incomplete;               /* cut at a hole or a limit */
    unsigned accepted;            /* messages accepted (deliveries: 2xx after the dot) */
    int sink;                     /* deliveries: the sink's index, else -1 */
};

struct capture_dialogues {
    struct capture_session *v;
    size_t n;
    size_t nsmtp, netrn;
    char node[256];               /* the first ETRN node, lower case, or "" */
    char *sinks[CAPTURE_SINKS_MAX];   /* addresses (host text), $sink1 is sinks[0] */
    size_t nsinks;
    char *dns_lines[CAPTURE_DNS_LINES_MAX];   /* "dns $node MX 10 mx1.$node" */
    size_t ndns_lines;
    long queue_count;             /* messages the scenario queues first (0: none) */
    char queue_to[300];
    char **notes;                 /* problems found while pairing, one line each */
    size_t nnotes;
};

struct capture_scenario_options {
    int all_sessions;             /* keep sessions without ETRN */
    const char *id;               /* scenario ID; NULL: capture.<file name> */
};

int capture_dialogues_build(struct capture_dialogues *d, const struct capture *cap,
                            const struct capture_scenario_options *o, struct etrn_err *err);
void capture_dialogues_free(struct capture_dialogues *d);

/* Appends the scenario. Fails only on memory or size limits, or when no session is kept
 * ("FILE: no SMTP session with ETRN (N TCP streams, M SMTP sessions; --all-sessions ...)"). */
int capture_scenario_format(const struct capture_dialogues *d, const struct capture *cap,
                            const struct capture_scenario_options *o, struct strbuf *out,
                            struct etrn_err *err);

/* The value of a variable for the captured world ($node → the captured node, $sink1 → its
 * address...): a scenario_var_lookup for replaying the templates unchanged. arg is the
 * struct capture_dialogues. */
const char *capture_dialogues_lookup(const char *name, void *arg);

#endif
