/* client_check.h — client conformance: runs an ETRN client program against the scripted
 * relay of each client scenario and judges what the client sent.
 *
 *   struct client_check_options o = { .command = "bin/etrn -s {relay} {node}" };
 *   client_check_run(&o, &scenario, seq, &result, &err);     // one scenario, bounded
 *   client_check_evaluate(&scenario, &log, &facts, lookup, arg, &result);   // checks only
 *
 * The command is run with /bin/sh -c in its own process group, its output (stdout and
 * stderr, at most CLIENT_CHECK_OUTPUT_MAX octets) kept for `reports` checks and the
 * transcript. Placeholders: {relay} (127.0.0.1:PORT), {relay_host}, {relay_port}, {node},
 * {nodes} (space-separated), {nodes_comma}. Every run is bounded by the scenario's
 * timeout (default CLIENT_CHECK_TIMEOUT_MS); a client still running then is killed and
 * its checks are judged on what it did until then. Verdicts come from conformance/verdict.h. */
#ifndef ETRN_CLIENT_CHECK_H
#define ETRN_CLIENT_CHECK_H

#include <stddef.h>
#include "client_relay.h"
#include "err.h"
#include "scenario.h"
#include "verdict.h"

#define CLIENT_CHECK_OUTPUT_MAX (64 * 1024)
#define CLIENT_CHECK_TIMEOUT_MS 30000ULL
#define CLIENT_CHECK_NODES_MAX  8
#define CLIENT_CHECK_COMMAND_MAX 4096

struct client_check_options {
    const char *command;            /* template (placeholders above) */
    const char *tls_command;        /* for scenarios that `requires starttls`; NULL: SKIP */
    const char *caps;               /* further capabilities the client has ("a,b"); NULL */
    const char *node_suffix;        /* NULL: "etrn.test" */
    const char *run_id;             /* NULL: derived from the time and pid */
    unsigned long long timeout_ms;  /* default bound when the scenario has none */
};

/* What the client process did, besides what the relay saw. */
struct client_check_facts {
    int exited;                     /* 1: it exited by itself before the bound */
    int exit_status;                /* exit code, or 128+signal; -1 if killed at the bound */
    const char *output;             /* its stdout and stderr, NUL-terminated */
    int64_t ended_ms;               /* on the relay's clock */
};

/* Expands the command template into out. */
int client_check_expand_command(const char *tmpl, const char *relay_host, int relay_port,
                                const char *const *nodes, size_t nnodes, char *out,
                                size_t outlen, struct etrn_err *err);

/* 1 if line is "ETRN" SP [@|#] node with a valid node (a domain for none and @, printable
 * non-blank text for #); fills why otherwise. */
int client_check_etrn_valid(const char *line, size_t len, unsigned flags, char *why,
                            size_t whylen);

/* Judges every expect-client step of sc on the log and facts, adding check results. */
void client_check_evaluate(const struct scenario *sc, const struct client_relay_log *log,
                           const struct client_check_facts *facts, scenario_var_lookup lookup,
                           void *lookup_arg, struct scenario_result *res);

/* Runs one scenario (seq: its position, for the node names); fills res (initialised by
 * the caller with scenario_result_init). Returns -1 only when the run could not be set
 * up at all (res is then ERROR with the reason too). */
int client_check_run(const struct client_check_options *o, const struct scenario *sc,
                     unsigned seq, struct scenario_result *res, struct etrn_err *err);

#endif
