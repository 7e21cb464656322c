/* auth.h — SMTP AUTH (RFC 4954) PLAIN (RFC 4616) and LOGIN against a password file of
 * "user:password" lines.
 *
 *   struct auth_db *db; auth_db_load(&db, "/etc/etrnd/passwords", &err);  // "file:3: ..."
 *   char user[AUTH_USER_MAX + 1];
 *   if (auth_plain(db, b64, len, user, sizeof user) == AUTH_OK) ... 235
 *   auth_db_free(db);
 *
 * Guarantees: password comparison takes the same time whichever user or byte differs
 * (every entry is compared in full, in constant time); the file is read once, bounded
 * (AUTH_FILE_MAX), and a malformed line is refused with file:line. */
#ifndef ETRND_AUTH_H
#define ETRND_AUTH_H

#include <stddef.h>
#include "err.h"

#define AUTH_USER_MAX 255
#define AUTH_PASSWORD_MAX 255
#define AUTH_FILE_MAX (1024 * 1024)

struct auth_db;

enum auth_result {
    AUTH_OK,          /* 235 2.7.0 */
    AUTH_FAILED,      /* 535 5.7.8 */
    AUTH_MALFORMED    /* 501 5.5.2: not base64, or not the mechanism's format */
};

int auth_db_load(struct auth_db **out, const char *path, struct etrn_err *err);
void auth_db_free(struct auth_db *db);
size_t auth_db_count(const struct auth_db *db);
/* 1 if user and password match an entry (constant time over the whole file). */
int auth_db_check(const struct auth_db *db, const char *user, size_t ulen, const char *pass,
                  size_t plen);

/* Decodes base64 (RFC 4648, padding required, no whitespace). "=" decodes to nothing,
 * as RFC 4954 uses it for an empty initial response. -1 if malformed or over cap. */
int auth_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                       size_t *outlen);

/* PLAIN: b64 is "[authzid] NUL authcid NUL passwd" encoded; an authzid other than the
 * authcid is refused. user_out receives the authenticated user on AUTH_OK. */
enum auth_result auth_plain(const struct auth_db *db, const char *b64, size_t len,
                            char *user_out, size_t n);
/* LOGIN: the two answers to "Username:" and "Password:", each base64. */
enum auth_result auth_login(const struct auth_db *db, const char *user_b64, size_t ulen,
                            const char *pass_b64, size_t plen, char *user_out, size_t n);

#endif
