/* client_relay.h — the scripted ETRN relay that etrncheck's client conformance puts in front
 * of a client program: an SMTP server on 127.0.0.1:0 driven by a scenario's relay block.
 *
 *   struct client_relay *r;
 *   client_relay_new(base, relay_step, lookup, arg, &r, &err);   // listening
 *   ... run "etrn -s 127.0.0.1:<client_relay_port(r)> node" ... event_base_dispatch(base);
 *   const struct client_relay_log *log = client_relay_log(r);  client_relay_free(r);
 *
 * Guarantees: the relay answers every command line (by the first matching `on` rule, else
 * by the defaults in docs/SCENARIOS.md "Client scenarios"), records every command with
 * its connection, time and whether it arrived while a reply was still owed, and never
 * holds more than CLIENT_RELAY_COMMANDS_MAX commands or CLIENT_RELAY_CONNS_MAX
 * connections (later ones are counted, closed and not recorded). */
#ifndef ETRN_CLIENT_RELAY_H
#define ETRN_CLIENT_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "scenario.h"
#include "smtp_line.h"

struct event_base;

#define CLIENT_RELAY_CONNS_MAX    64
#define CLIENT_RELAY_COMMANDS_MAX 1000
#define CLIENT_RELAY_KEYWORDS_MAX 16

#define CLIENT_RELAY_NAME "relay.test"

struct client_relay_command {
    unsigned conn;                  /* connection number, 1-based */
    int64_t at_ms;                  /* since the relay started */
    char line[SMTP_COMMAND_LINE_MAX + 1];   /* without the line ending */
    size_t len;
    unsigned flags;                 /* SMTP_LINE_BARE_LF / _HAS_NUL / _BARE_CR */
    int too_long;                   /* over 512 octets: discarded, line is empty */
    int early;                      /* sent before the reply to the previous command was
                                       complete (a reply was still owed) */
    int in_tls;                     /* sent inside TLS */
    int reply_code;                 /* what the relay answered (0: nothing, it closed) */
    int etrn_advertised;            /* the last 250 EHLO reply of this connection listed
                                       ETRN (as the client could know when sending this) */
};

struct client_relay_conn {
    int64_t opened_ms;
    int64_t closed_ms;              /* -1 while open */
    int relay_closed;               /* the relay closed it (421, or a close rule) */
    int quit;                       /* the client sent QUIT */
    int tls;                        /* a TLS handshake completed */
    unsigned ncommands;
    unsigned netrn;                 /* ETRN commands in this connection */
};

struct client_relay_log {
    struct client_relay_command *cmds;
    size_t ncmds;
    size_t dropped_cmds;            /* beyond CLIENT_RELAY_COMMANDS_MAX */
    struct client_relay_conn conns[CLIENT_RELAY_CONNS_MAX];
    size_t nconns;
    size_t refused_conns;           /* beyond CLIENT_RELAY_CONNS_MAX */
};

/* A transcript line ("c1 < 220 relay.test ...", "c1 > ETRN x"); may be NULL. */
typedef void (*client_relay_note_fn)(void *arg, const char *line);

struct client_relay;

/* relay: the scenario's SCENARIO_STEP_RELAY step (NULL: every default). lookup expands
 * variables in reply texts. Listens on 127.0.0.1, an ephemeral port. */
int client_relay_new(struct event_base *base, const struct scenario_step *relay,
                     scenario_var_lookup lookup, void *lookup_arg, client_relay_note_fn note,
                     void *note_arg, struct client_relay **out, struct etrn_err *err);
int client_relay_port(const struct client_relay *r);
/* Nodes the client is asked for (the relay block's `nodes N`, default 1). */
unsigned client_relay_nodes(const struct client_relay *r);
const struct client_relay_log *client_relay_log(const struct client_relay *r);
/* Milliseconds since the relay started (the log's clock). */
int64_t client_relay_now_ms(const struct client_relay *r);
/* Stops listening and closes every connection (the log stays readable). */
void client_relay_stop(struct client_relay *r);
void client_relay_free(struct client_relay *r);

#endif
