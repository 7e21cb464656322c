/* etrn_session.h — one ETRN client session: connect, EHLO, optional STARTTLS and AUTH,
 * one ETRN per node, QUIT. Runs on a libevent base; the result arrives in a callback.
 *
 *   struct etrn_session_opts o = { .relay = addr, .helo_name = "site.example", ... };
 *   etrn_session_start(base, &o, nodes, n, done_cb, arg, &err);
 *   event_base_dispatch(base);     // done_cb(arg, results, n, session_error_or_NULL)
 *
 * Guarantees: every step has a timeout; a 500/501 to an ETRN stops further ETRNs in the
 * session (RFC 1985 §5.2.1); the EHLO reply is read anew on every connection (RFC 1869);
 * ETRN is not sent unless the relay advertises it, except with force. */
#ifndef ETRN_SESSION_H
#define ETRN_SESSION_H

#include <stddef.h>
#include "err.h"
#include "netaddr.h"
#include "etrn_outcome.h"

struct event_base;

struct etrn_session_opts {
    struct netaddr relay;
    const char *helo_name;        /* our EHLO name */
    const char *relay_name;       /* for messages and TLS SNI; may be NULL */
    char option;                  /* 0, '@' or '#': prefix for every node */
    int starttls;                 /* require STARTTLS */
    const char *auth_user;        /* AUTH PLAIN after TLS, when set */
    const char *auth_password;
    int force;                    /* send ETRN even when not advertised */
    unsigned timeout_ms;          /* per step */
};

struct etrn_node_result {
    const char *node;
    int sent;                     /* 0: not sent (session failed or an earlier 500/501) */
    int code;                     /* reply code, 0 if none */
    char text[512];               /* reply text, first line */
    enum etrn_outcome outcome;
};

typedef void (*etrn_session_done_cb)(void *arg, const struct etrn_node_result *results,
                                     size_t n, const char *session_error);

int etrn_session_start(struct event_base *base, const struct etrn_session_opts *opts,
                       const char *const *nodes, size_t nnodes, etrn_session_done_cb cb,
                       void *arg, struct etrn_err *err);

#endif
