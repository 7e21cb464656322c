/* etrn_outcome.h — what an ETRN reply means to the site, and the etrn client's exit codes.
 *
 *   enum etrn_outcome o = etrn_outcome_of(reply_code);
 *   printf("%s: %s\n", node, etrn_outcome_words(o));
 *   exit(etrn_outcome_exit_code(worst));
 *
 * The mapping follows RFC 1985 §5.2 (erratum 4130 applied) and RFC 5321 §4.2: a client acts
 * on the code, never the text; an unknown code is read by its first digit. */
#ifndef ETRN_OUTCOME_H
#define ETRN_OUTCOME_H

enum etrn_outcome {
    ETRN_STARTED = 0,        /* 250, 252, 253 (and unknown 2xx): queue run started */
    ETRN_NOTHING_WAITING,    /* 251: accepted, nothing queued */
    ETRN_TEMPORARY,          /* 458 and other 4xx except 459: try again later */
    ETRN_REFUSED,            /* 459: not allowed for this node; do not retry blindly */
    ETRN_UNSUPPORTED,        /* 500, 501, 502, 504, 530 and other 5xx: ETRN unsupported or
                                broken (R1985-5.2.1: send no further ETRN in this session);
                                also a relay that does not offer ETRN (EHLO) at all */
    ETRN_CONNECTION,         /* no usable session: connect, greeting, 421, timeout, TLS or
                                AUTH failed */
    ETRN_OUTCOME_COUNT
};

enum etrn_outcome etrn_outcome_of(int code);
const char *etrn_outcome_words(enum etrn_outcome o);
/* Documented in etrn(1): 0 started, 1 nothing waiting, 2 usage, 3 temporary failure,
 * 4 refused, 5 ETRN unsupported or syntax error, 6 connection problem. */
int etrn_outcome_exit_code(enum etrn_outcome o);
/* The outcome that decides the exit code when several nodes were asked for: the worst. */
enum etrn_outcome etrn_outcome_worst(enum etrn_outcome a, enum etrn_outcome b);
/* 1 if a later retry (back-off) makes sense: temporary failures and connection problems. */
int etrn_outcome_retryable(enum etrn_outcome o);

#define ETRN_EXIT_USAGE 2

#endif
