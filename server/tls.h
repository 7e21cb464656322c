/* tls.h — etrnd's TLS server side: an OpenSSL context from tls_cert_file/tls_key_file,
 * and STARTTLS (RFC 3207) as a libevent OpenSSL filter over the session's bufferevent.
 *
 *   struct tls_server *t; if (tls_server_new(&t, cert, key, &err) < 0) die(err.msg);
 *   struct bufferevent *tls = tls_server_wrap(t, base, plain, &err);   // after "220 2.0.0"
 *   tls_describe(tls, text, sizeof text);  tls_server_free(t);
 *
 * Guarantees: TLS 1.2 or later, no renegotiation; a context that loads has a matching
 * key and certificate. Sessions keep their own reference to the context, so a context
 * replaced on reload can be freed while old sessions continue. */
#ifndef ETRND_TLS_H
#define ETRND_TLS_H

#include <stddef.h>
#include "err.h"

struct event_base;
struct bufferevent;
struct tls_server;

int tls_server_new(struct tls_server **out, const char *cert_file, const char *key_file,
                   struct etrn_err *err);
void tls_server_free(struct tls_server *t);
/* A filter bufferevent accepting TLS over plain (which it then owns and frees); NULL on
 * failure (plain then stays allocated, possibly disabled: the caller frees it). */
struct bufferevent *tls_server_wrap(struct tls_server *t, struct event_base *base,
                                    struct bufferevent *plain, struct etrn_err *err);
/* "TLSv1.3 with TLS_AES_256_GCM_SHA384", or "" before the handshake. */
void tls_describe(struct bufferevent *bev, char *buf, size_t n);
/* The last OpenSSL error of bev, for logs ("" if none). */
void tls_last_error(struct bufferevent *bev, char *buf, size_t n);

#endif
