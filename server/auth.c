/* auth.c — AUTH PLAIN and LOGIN checked against a "user:password" file.
 *
 *   auth_db_load(&db, path, &err);
 *   auth_plain(db, "AHNpdGUxAHMzY3JldA==", 20, user, sizeof user)  -> AUTH_OK
 *
 * File syntax: one "user:password" per line (the password is everything after the first
 * ':'); blank lines and lines starting with '#' are ignored. Guarantees: see auth.h; the
 * decoded credentials are wiped from the stack after use. */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fileio.h"
#include "strbuf.h"

struct auth_entry {
    char user[AUTH_USER_MAX + 1];
    size_t ulen;
    char pass[AUTH_PASSWORD_MAX + 1];
    size_t plen;
};

struct auth_db {
    struct auth_entry *v;
    size_t n;
};

/* Writes that the compiler may not drop even though the buffer dies right after. */
static void auth_wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;
    while (n--)
        *q++ = 0;
}

int auth_db_load(struct auth_db **out, const char *path, struct etrn_err *err)
{
    *out = NULL;
    struct strbuf sb;
    strbuf_init(&sb, AUTH_FILE_MAX);
    if (fileio_read_file(path, &sb, AUTH_FILE_MAX, err) < 0) {
        strbuf_free(&sb);
        return -1;
    }
    struct auth_db *db = calloc(1, sizeof *db);
    if (db == NULL) {
        strbuf_free(&sb);
        return err_set(err, "%s: out of memory", path);
    }
    size_t cap = 0;
    int lineno = 0;
    size_t pos = 0;
    int rc = 0;
    while (pos < sb.len && rc == 0) {
        lineno++;
        size_t end = pos;
        while (end < sb.len && sb.data[end] != '\n')
            end++;
        size_t len = end - pos;
        const char *line = sb.data + pos;
        pos = end + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', len) != NULL) {
            rc = err_set(err, "%s:%d: NUL byte in line", path, lineno);
            break;
        }
        const char *colon = memchr(line, ':', len);
        if (colon == NULL || colon == line) {
            rc = err_set(err, "%s:%d: expected 'user:password'", path, lineno);
            break;
        }
        size_t ul = (size_t)(colon - line), pl = len - ul - 1;
        if (ul > AUTH_USER_MAX || pl > AUTH_PASSWORD_MAX) {
            rc = err_set(err, "%s:%d: user or password longer than %d octets", path, lineno,
                         AUTH_USER_MAX);
            break;
        }
        if (db->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct auth_entry *v = realloc(db->v, nc * sizeof *v);
            if (v == NULL) {
                rc = err_set(err, "%s: out of memory", path);
                break;
            }
            db->v = v;
            cap = nc;
        }
        struct auth_entry *e = &db->v[db->n++];
        memset(e, 0, sizeof *e);
        memcpy(e->user, line, ul);
        e->ulen = ul;
        memcpy(e->pass, colon + 1, pl);
        e->plen = pl;
    }
    auth_wipe(sb.data, sb.len);
    strbuf_free(&sb);
    if (rc < 0) {
        auth_db_free(db);
        return -1;
    }
    *out = db;
    return 0;
}

void auth_db_free(struct auth_db *db)
{
    if (db == NULL)
        return;
    if (db->v != NULL)
        auth_wipe(db->v, db->n * sizeof *db->v);
    free(db->v);
    free(db);
}

size_t auth_db_count(const struct auth_db *db)
{
    return db ? db->n : 0;
}

/* 1 if a (alen) equals b (blen); time depends only on the fixed buffer size. */
static unsigned auth_ct_equal(const char *a, size_t alen, const char *stored, size_t slen,
                              size_t fixed)
{
    unsigned diff = (unsigned)(alen ^ slen);
    for (size_t i = 0; i < fixed; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < slen ? (unsigned char)stored[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    /* diff == 0 → 1, else 0, without a branch on the secret */
    return 1u & ((diff - 1u) >> (sizeof diff * 8 - 1));
}

int auth_db_check(const struct auth_db *db, const char *user, size_t ulen, const char *pass,
                  size_t plen)
{
    if (db == NULL || ulen > AUTH_USER_MAX || plen > AUTH_PASSWORD_MAX)
        return 0;
    unsigned found = 0;
    for (size_t i = 0; i < db->n; i++) {
        const struct auth_entry *e = &db->v[i];
        unsigned u = auth_ct_equal(user, ulen, e->user, e->ulen, AUTH_USER_MAX);
        unsigned p = auth_ct_equal(pass, plen, e->pass, e->plen, AUTH_PASSWORD_MAX);
        found |= u & p;
    }
    return found ? 1 : 0;
}

static int auth_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int auth_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                       size_t *outlen)
{
    *outlen = 0;
    if (len == 1 && in[0] == '=')
        return 0;
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0)
                return -1;   /* data after padding */
            v[k] = auth_b64_value(c);
            if (v[k] < 0)
                return -1;
        }
        unsigned long triple = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                               ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        size_t nbytes = 3 - (size_t)pad;
        if (o + nbytes > cap)
            return -1;
        out[o++] = (unsigned char)(triple >> 16);
        if (nbytes > 1)
            out[o++] = (unsigned char)(triple >> 8);
        if (nbytes > 2)
            out[o++] = (unsigned char)triple;
    }
    *outlen = o;
    return 0;
}

static enum auth_result auth_finish(const struct auth_db *db, const char *user, size_t ulen,
                                    const char *pass, size_t plen, char *user_out, size_t n)
{
    if (ulen == 0 || memchr(user, '\0', ulen) != NULL || memchr(pass, '\0', plen) != NULL)
        return AUTH_MALFORMED;
    if (!auth_db_check(db, user, ulen, pass, plen))
        return AUTH_FAILED;
    if (ulen + 1 > n)
        return AUTH_FAILED;
    memcpy(user_out, user, ulen);
    user_out[ulen] = '\0';
    return AUTH_OK;
}

enum auth_result auth_plain(const struct auth_db *db, const char *b64, size_t len,
                            char *user_out, size_t n)
{
    unsigned char buf[AUTH_USER_MAX * 2 + AUTH_PASSWORD_MAX + 3];
    size_t blen;
    if (auth_base64_decode(b64, len, buf, sizeof buf, &blen) < 0)
        return AUTH_MALFORMED;
    const char *p = (const char *)buf;
    const char *nul1 = memchr(p, '\0', blen);
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', blen - (size_t)(nul1 + 1 - p)) : NULL;
    enum auth_result r = AUTH_MALFORMED;
    if (nul1 != NULL && nul2 != NULL) {
        size_t zlen = (size_t)(nul1 - p);
        const char *user = nul1 + 1;
        size_t ulen = (size_t)(nul2 - user);
        const char *pass = nul2 + 1;
        size_t plen = blen - (size_t)(pass - p);
        if (zlen > 0 && (zlen != ulen || memcmp(p, user, ulen) != 0))
            r = AUTH_FAILED;   /* acting as another user is not offered */
        else
            r = auth_finish(db, user, ulen, pass, plen, user_out, n);
    }
    auth_wipe(buf, sizeof buf);
    return r;
}

enum auth_result auth_login(const struct auth_db *db, const char *user_b64, size_t ulen,
                            const char *pass_b64, size_t plen, char *user_out, size_t n)
{
    unsigned char u[AUTH_USER_MAX + 1], p[AUTH_PASSWORD_MAX + 1];
    size_t ul, pl;
    enum auth_result r = AUTH_MALFORMED;
    if (auth_base64_decode(user_b64, ulen, u, sizeof u, &ul) == 0 &&
        auth_base64_decode(pass_b64, plen, p, sizeof p, &pl) == 0)
        r = auth_finish(db, (const char *)u, ul, (const char *)p, pl, user_out, n);
    auth_wipe(u, sizeof u);
    auth_wipe(p, sizeof p);
    return r;
}
