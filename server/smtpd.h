/* smtpd.h — etrnd's ESMTP server: listeners and sessions (RFC 5321, RFC 1985 ETRN,
 * RFC 2920 PIPELINING, RFC 3207 STARTTLS, RFC 4954 AUTH) on libevent bufferevents.
 *
 *   struct smtpd *s; smtpd_new(&s, base, cfg, spool, flush, &err);   // loads TLS and AUTH
 *   smtpd_listen(s, &err);                     // binds every cfg->listen address
 *   event_base_dispatch(base);                 // sessions run in the loop
 *   smtpd_reconfigure(s, newcfg, &err);        // SIGHUP; -1 leaves everything as it was
 *   smtpd_stop_accepting(s); smtpd_close_sessions(s); smtpd_free(s);
 *
 * Guarantees: a message is acknowledged (250 after the final dot) only after
 * spool_writer_commit returned 0; a session that ends any other way leaves nothing in
 * the spool. Replies go out in command order and no input is lost while pipelining.
 * Memory per session is bounded: input is read at most SMTPD_INPUT_MAX ahead and reading
 * stops while more than SMTPD_OUTPUT_MAX octets of replies wait for the client. */
#ifndef ETRND_SMTPD_H
#define ETRND_SMTPD_H

#include <stddef.h>
#include <sys/socket.h>
#include <event2/util.h>
#include "err.h"

struct event_base;
struct etrnd_config;
struct spool;
struct flush;
struct smtpd;

#define SMTPD_INPUT_MAX  (64 * 1024)    /* read-ahead per session */
#define SMTPD_OUTPUT_MAX (256 * 1024)   /* queued replies before input is paused */
#define SMTPD_ETRN_BLOCK_DELAY_MS 10000 /* test-only defect etrn_block_reply */

/* cfg, sp and fl stay owned by the caller and must outlive s (or be replaced through
 * smtpd_reconfigure). fl may be NULL (ETRN then answers 458; mail is still spooled). */
int smtpd_new(struct smtpd **out, struct event_base *base, const struct etrnd_config *cfg,
              struct spool *sp, struct flush *fl, struct etrn_err *err);
int smtpd_listen(struct smtpd *s, struct etrn_err *err);
size_t smtpd_listener_count(const struct smtpd *s);
/* The port listener i is bound to (useful with "127.0.0.1:0"); -1 if none. */
int smtpd_listener_port(const struct smtpd *s, size_t i);
/* Serves a connected socket (takes fd). peer is the client's address as the session will
 * see it (logs, mynetworks, policy). -1 if the session could not be set up (fd closed). */
int smtpd_session_start(struct smtpd *s, evutil_socket_t fd, const struct sockaddr *peer,
                        socklen_t peerlen);
/* New settings for new and running sessions; the TLS context and password file of cfg
 * are loaded first and a failure changes nothing. Listen addresses are not changed. */
int smtpd_reconfigure(struct smtpd *s, const struct etrnd_config *cfg, struct etrn_err *err);
void smtpd_stop_accepting(struct smtpd *s);
/* Sends 421 4.3.2 to every session (aborting any message being received) and closes
 * each once its replies are written. */
void smtpd_close_sessions(struct smtpd *s);
size_t smtpd_session_count(const struct smtpd *s);
void smtpd_free(struct smtpd *s);

#endif
