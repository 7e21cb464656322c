/* sink.h — a node mail server of the simulator: an SMTP server that accepts mail, records
 * every delivery in a journal, and misbehaves on request.
 *
 *   struct sink *s; sink_new(&s, base, "sink1", (struct sockaddr *)&addr, len, journal, &err);
 *   sink_apply_words(s, (char *[]){"reject-rcpt", "450"}, 2, &err);   // at any time
 *   ... event_base_dispatch(base) ...; sink_free(s);
 *
 * Behaviour words (docs/SIMULATOR.md has the table): normal, greeting-delay DUR,
 * reject-greeting CODE, no-greeting, reject-mail|reject-rcpt|reject-data|reject-dot CODE,
 * drop-after-dot, no-pipelining, helo-only, tarpit DUR, multiline-replies,
 * bare-lf-replies, long-replies, close-mid-reply [STAGE], accept-limit N, starttls. CODE may be
 * "off"; flag words take an optional "on"/"off". Changes apply to sessions already open
 * from their next reply on. Message text is dot-unstuffed; size and SHA-256 cover the
 * message as the client meant it, with CRLF line ends. */
#ifndef ETRN_SINK_H
#define ETRN_SINK_H

#include <stddef.h>
#include <sys/socket.h>
#include "err.h"
#include "sink_journal.h"

struct event_base;
struct sink;

#define SINK_MESSAGE_MAX (50u * 1024 * 1024)   /* larger messages get 552 after the dot */
#define SINK_RCPTS_MAX 1000                     /* more recipients get 452 */
#define SINK_SESSIONS_MAX 512                   /* more connections get 421 and are closed */

enum sink_stage {
    SINK_STAGE_NONE, SINK_STAGE_GREETING, SINK_STAGE_EHLO, SINK_STAGE_MAIL, SINK_STAGE_RCPT,
    SINK_STAGE_DATA, SINK_STAGE_DOT
};

struct sink_behaviour {
    unsigned greeting_delay_ms;
    int reject_greeting;        /* 0 or the code sent instead of 220 (then the sink closes) */
    int no_greeting;            /* accept TCP, never say anything */
    int reject_mail, reject_rcpt, reject_data, reject_dot;   /* 0 = accept */
    int drop_after_dot;         /* close after the final dot without replying */
    int no_pipelining;          /* do not advertise PIPELINING */
    int helo_only;              /* EHLO gets 500 */
    unsigned tarpit_ms;         /* send replies one byte per tarpit_ms */
    int multiline_replies;      /* every reply is multi-line (legal, unusual) */
    int bare_lf_replies;        /* replies end lines with LF only */
    int long_replies;           /* reply lines padded past 512 octets */
    enum sink_stage close_mid_reply;   /* send half of that stage's reply, then close */
    long accept_limit;          /* -1: unlimited; after this many accepted messages, 452 at MAIL */
    int starttls;               /* advertise and accept STARTTLS (self-signed certificate) */
};

/* listen: the address the sink listens on (port 0 picks one; see sink_address). */
int sink_new(struct sink **out, struct event_base *base, const char *name,
             const struct sockaddr *listen, socklen_t listen_len, struct sink_journal *journal,
             struct etrn_err *err);
void sink_free(struct sink *s);
const char *sink_name(const struct sink *s);
/* The bound address (after port 0 was resolved). */
const struct sockaddr *sink_address(const struct sink *s, socklen_t *len);
/* The live behaviour; changing fields takes effect at once. */
struct sink_behaviour *sink_behaviour(struct sink *s);
void sink_behaviour_reset(struct sink_behaviour *b);
/* Applies behaviour words; errors name the word ("unknown sink behaviour 'rejct-rcpt'").
 * Nothing changes unless every word is valid. */
int sink_apply_words(struct sink *s, char *const *argv, int argc, struct etrn_err *err);
int sink_behaviour_parse(struct sink_behaviour *b, char *const *argv, int argc,
                         struct etrn_err *err);
/* A link relaying to this sink tells it who the real client is: the next connection from
 * `via` (the link's own local address) belongs to `peer` with connection id conn_id. */
void sink_note_peer(struct sink *s, const struct sockaddr *via, const struct sockaddr *peer,
                    unsigned long conn_id);
/* Shares a connection-id counter (e.g. the world's) so ids are unique across sinks. */
void sink_set_conn_counter(struct sink *s, unsigned long *counter);
/* Messages accepted so far (what accept-limit counts). */
unsigned long sink_accepted_count(const struct sink *s);
/* Sessions open right now. */
size_t sink_session_count(const struct sink *s);

#endif
