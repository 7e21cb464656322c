/* tls.c — OpenSSL server context and the STARTTLS switch-over for etrnd's sessions.
 *
 *   tls_server_new(&t, "cert.pem", "key.pem", &err);
 *   bev = tls_server_wrap(t, base, bev, &err);      // the filter now owns the plain one
 *
 * Guarantees: see tls.h. Unclean TLS shutdowns by the peer are tolerated (mail clients
 * routinely close without close_notify); the SMTP layer decides what a close means. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "strbuf.h"
#include "tls.h"

struct tls_server {
    SSL_CTX *ctx;
};

static void tls_openssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        str_copy(buf, n, "unknown OpenSSL error");
    else
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
}

int tls_server_new(struct tls_server **out, const char *cert_file, const char *key_file,
                   struct etrn_err *err)
{
    *out = NULL;
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_openssl_reason(why, sizeof why);
        return err_set(err, "TLS: cannot create a context: %s", why);
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_openssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return err_set(err, "%s: cannot load the certificate: %s", cert_file, why);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        tls_openssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return err_set(err, "%s: cannot load the private key: %s", key_file, why);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_openssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return err_set(err, "%s: the key does not match %s: %s", key_file, cert_file, why);
    }
    struct tls_server *t = calloc(1, sizeof *t);
    if (t == NULL) {
        SSL_CTX_free(ctx);
        return err_set(err, "TLS: out of memory");
    }
    t->ctx = ctx;
    *out = t;
    return 0;
}

void tls_server_free(struct tls_server *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);   /* live SSL objects hold their own reference */
    free(t);
}

struct bufferevent *tls_server_wrap(struct tls_server *t, struct event_base *base,
                                    struct bufferevent *plain, struct etrn_err *err)
{
    char why[256];
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL) {
        tls_openssl_reason(why, sizeof why);
        err_set(err, "TLS: SSL_new: %s", why);
        return NULL;
    }
    /* When the filter cannot be made, libevent (2.1 and 2.2) has already freed ssl
     * (BEV_OPT_CLOSE_ON_FREE: so no SSL_free here) and may have released plain as the
     * filter's underlying bufferevent. Our own reference keeps plain allocated, so the
     * caller's bufferevent_free(plain) stays valid (tls.h); on success the filter holds
     * its own reference and ours is dropped. */
    bufferevent_incref(plain);
    struct bufferevent *bev = bufferevent_openssl_filter_new(
        base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        err_set(err, "TLS: cannot create the filter");
        return NULL;
    }
    bufferevent_decref(plain);
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

void tls_describe(struct bufferevent *bev, char *buf, size_t n)
{
    buf[0] = '\0';
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    /* A failed or unfinished handshake would name the version merely attempted
     * ("TLSv1.1 with (NONE)"): only a finished one describes a session. */
    if (ssl == NULL || !SSL_is_init_finished(ssl))
        return;
    const char *cipher = SSL_get_cipher_name(ssl);
    str_format(buf, n, "%s with %s", SSL_get_version(ssl), cipher ? cipher : "?");
}

void tls_last_error(struct bufferevent *bev, char *buf, size_t n)
{
    buf[0] = '\0';
    unsigned long e = bufferevent_get_openssl_error(bev);
    if (e != 0)
        ERR_error_string_n(e, buf, n);
}
