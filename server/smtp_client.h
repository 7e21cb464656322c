/* smtp_client.h — etrnd's outbound SMTP client: one connection, several messages.
 *
 *   smtp_client_connect(&c, base, sa, salen, &cfg, on_ready, arg, &err);  // on_ready(c, ok, arg)
 *   smtp_client_send(c, &msg, on_sent, arg, &err);                         // on_sent(c, &result, arg)
 *   smtp_client_quit(c, on_closed, arg);  ...  smtp_client_free(c);
 *
 * Speaks RFC 5321 as a client: 220 greeting, EHLO (HELO when EHLO gets 5xx), opportunistic
 * STARTTLS (no certificate check), PIPELINING for MAIL+RCPT when offered (RFC 2920), SIZE,
 * DATA with dot-stuffing and CRLF line endings, RSET between messages when a transaction
 * was left open, QUIT. Each step has its own timeout (RFC 5321 §4.5.3.2). Callbacks run
 * from the event loop only, never from inside the call that started the step; a callback
 * may call smtp_client_send/quit/free on the client it was given. */
#ifndef ETRND_SMTP_CLIENT_H
#define ETRND_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "err.h"

struct event_base;
struct smtp_client;

#define SMTP_CLIENT_RCPTS_MAX 1000   /* recipients in one transaction */
#define SMTP_CLIENT_REPLY_MAX 512    /* reply text kept for logs and bounces */

struct smtp_client_config {
    const char *helo_name;           /* our name in EHLO/HELO */
    const char *peer_name;           /* the server's host name, for TLS SNI and messages */
    int starttls;                    /* 1 = use STARTTLS when offered */
    unsigned long long timeout_connect_ms;
    unsigned long long timeout_greeting_ms;  /* 220, EHLO/HELO replies, TLS handshake */
    unsigned long long timeout_mail_ms;      /* MAIL, RSET, STARTTLS, QUIT replies */
    unsigned long long timeout_rcpt_ms;
    unsigned long long timeout_data_ms;      /* the 354 */
    unsigned long long timeout_block_ms;     /* each block of the message text */
    unsigned long long timeout_dot_ms;       /* the reply after the final dot */
};

enum smtp_client_failure {
    SMTP_CLIENT_OK,
    SMTP_CLIENT_CONNECT,     /* TCP connection failed */
    SMTP_CLIENT_TIMEOUT,     /* a step timed out */
    SMTP_CLIENT_LOST,        /* the server closed the connection / I/O error */
    SMTP_CLIENT_REFUSED,     /* non-2xx greeting, or EHLO and HELO refused */
    SMTP_CLIENT_TLS,         /* STARTTLS accepted but the handshake failed */
    SMTP_CLIENT_PROTOCOL     /* the server sent something that is not an SMTP reply */
};

struct smtp_message {
    const char *sender;              /* reverse path without <>; "" = null sender */
    char *const *rcpts;              /* without <>; must stay valid until on_sent */
    size_t nrcpt;
    uint64_t size;                   /* message size, for SIZE */
    int body_fd;                     /* read from offset 0 to EOF; not closed by the client */
};

enum smtp_msg_outcome {
    SMTP_MSG_SENT,           /* 2xx after the dot; rcpt_code[] says who was accepted */
    SMTP_MSG_RCPTS_FAILED,   /* every RCPT refused (see rcpt_code[]); nothing sent */
    SMTP_MSG_DEFERRED,       /* 4xx to MAIL, DATA or the dot (code/reply say which) */
    SMTP_MSG_REJECTED,       /* 5xx to MAIL, DATA or the dot, or too big for SIZE */
    SMTP_MSG_CONN_LOST,      /* connection failed mid-transaction; see dot_sent */
    SMTP_MSG_LOCAL_ERROR     /* reading the message failed here; the server is not at fault */
};

struct smtp_message_result {
    enum smtp_msg_outcome outcome;
    int code;                        /* the deciding reply code, 0 if none */
    char reply[SMTP_CLIENT_REPLY_MAX];   /* "250 2.0.0 Ok: queued" or a local description */
    const int *rcpt_code;            /* per recipient: RCPT reply code, 0 if never answered */
    const char *const *rcpt_reply;   /* per recipient: that reply's text */
    int dot_sent;                    /* 1 if the final dot went out (duplicates possible) */
};

typedef void (*smtp_client_ready_cb)(struct smtp_client *c, int ok, void *arg);
typedef void (*smtp_client_sent_cb)(struct smtp_client *c, const struct smtp_message_result *res,
                                    void *arg);
typedef void (*smtp_client_closed_cb)(struct smtp_client *c, void *arg);

/* Connects and runs greeting, EHLO/HELO and STARTTLS; on_ready(c, 1) when a message can
 * be sent, on_ready(c, 0) on failure (then smtp_client_failure/error say why). */
int smtp_client_connect(struct smtp_client **out, struct event_base *base,
                        const struct sockaddr *sa, socklen_t salen,
                        const struct smtp_client_config *cfg, smtp_client_ready_cb on_ready,
                        void *arg, struct etrn_err *err);
/* One transaction; only when smtp_client_usable(c). */
int smtp_client_send(struct smtp_client *c, const struct smtp_message *msg,
                     smtp_client_sent_cb on_sent, void *arg, struct etrn_err *err);
/* Sends QUIT (if the connection is usable) and closes; on_closed runs once it is done. */
void smtp_client_quit(struct smtp_client *c, smtp_client_closed_cb on_closed, void *arg);
/* Closes at once; no callback runs afterwards. */
void smtp_client_free(struct smtp_client *c);

int smtp_client_usable(const struct smtp_client *c);     /* idle, connected, not closing */
enum smtp_client_failure smtp_client_failure(const struct smtp_client *c);
const char *smtp_client_error(const struct smtp_client *c);   /* "" if none */
int smtp_client_tls_active(const struct smtp_client *c);
int smtp_client_pipelining(const struct smtp_client *c);

#endif
