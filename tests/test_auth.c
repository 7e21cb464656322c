/* test_auth.c — AUTH PLAIN and LOGIN against a password file (server/auth.c).
 *
 *   build/tests/test_auth
 *
 * The password file (loading, comments, CRLF, malformed lines named file:line, size cap),
 * base64 as RFC 4648 with RFC 4954's "=" for an empty response, PLAIN with and without an
 * authzid, LOGIN, wrong and malformed credentials. Encodings are made with OpenSSL's
 * EVP_EncodeBlock so the decoder is checked against an independent encoder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "auth.h"
#include "strbuf.h"

static char test_dir[64];
static char test_file[128];

static int setup_dir(void **state)
{
    (void)state;
    str_copy(test_dir, sizeof test_dir, "/tmp/test_auth.XXXXXX");
    if (mkdtemp(test_dir) == NULL)
        return -1;
    return str_format(test_file, sizeof test_file, "%s/passwords", test_dir) < 0 ? -1 : 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    unlink(test_file);
    rmdir(test_dir);
    return 0;
}

static void write_file(const void *data, size_t n)
{
    FILE *f = fopen(test_file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static struct auth_db *load(const char *text)
{
    write_file(text, strlen(text));
    struct auth_db *db = NULL;
    struct etrn_err err = {{0}};
    if (auth_db_load(&db, test_file, &err) < 0)
        fail_msg("%s", err.msg);
    return db;
}

/* base64 of n bytes into out (NUL-terminated). */
static const char *b64(const void *data, size_t n, char *out, size_t cap)
{
    assert_true(cap >= 4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    return out;
}

#define USERS "# etrnd passwords\n\nsite1:s3cret\nalice:pa:ss:word\r\nbob:\n"

/* --- the password file ------------------------------------------------------------------ */

static void test_auth_db_loads_users_skipping_comments_and_blank_lines(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    assert_int_equal(auth_db_count(db), 3);
    assert_int_equal(auth_db_check(db, "site1", 5, "s3cret", 6), 1);
    /* the password is everything after the first ':'; CRLF endings are fine */
    assert_int_equal(auth_db_check(db, "alice", 5, "pa:ss:word", 10), 1);
    /* an empty password is a password like any other */
    assert_int_equal(auth_db_check(db, "bob", 3, "", 0), 1);
    assert_int_equal(auth_db_check(db, "site1", 5, "s3cre", 5), 0);
    assert_int_equal(auth_db_check(db, "site1", 5, "s3cret!", 7), 0);
    assert_int_equal(auth_db_check(db, "Site1", 5, "s3cret", 6), 0);
    assert_int_equal(auth_db_check(db, "site", 4, "s3cret", 6), 0);
    /* one user's password does not open another's account */
    assert_int_equal(auth_db_check(db, "alice", 5, "s3cret", 6), 0);
    auth_db_free(db);
}

static void test_auth_db_refuses_malformed_lines_with_file_and_line(void **state)
{
    (void)state;
    static const struct { const char *text; size_t len; int line; const char *want; } bad[] = {
        { "ok:pw\nno-colon-here\n", 0, 2, "expected 'user:password'" },
        { "ok:pw\n\n# c\n:nouser\n", 0, 4, "expected 'user:password'" },
        { "ok:p\0w\n", 7, 1, "NUL byte in line" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(bad[i].text, bad[i].len ? bad[i].len : strlen(bad[i].text));
        struct auth_db *db = (struct auth_db *)1;
        struct etrn_err err = {{0}};
        assert_int_equal(auth_db_load(&db, test_file, &err), -1);
        assert_null(db);
        char want[256];
        assert_true(str_format(want, sizeof want, "%s:%d: %s", test_file, bad[i].line, bad[i].want) >= 0);
        assert_string_equal(err.msg, want);
    }
}

static void test_auth_db_refuses_over_long_user_or_password(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 4096);
    for (int i = 0; i < AUTH_USER_MAX + 1; i++)
        assert_int_equal(strbuf_append_str(&sb, "u"), 0);
    assert_int_equal(strbuf_append_str(&sb, ":pw\n"), 0);
    write_file(sb.data, sb.len);
    struct auth_db *db = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(auth_db_load(&db, test_file, &err), -1);
    assert_non_null(strstr(err.msg, ":1: user or password longer than"));

    strbuf_reset(&sb);
    assert_int_equal(strbuf_append_str(&sb, "u:"), 0);
    for (int i = 0; i < AUTH_PASSWORD_MAX; i++)
        assert_int_equal(strbuf_append_str(&sb, "p"), 0);
    assert_int_equal(strbuf_append_str(&sb, "\n"), 0);
    write_file(sb.data, sb.len);   /* exactly the maximum: accepted */
    assert_int_equal(auth_db_load(&db, test_file, &err), 0);
    assert_int_equal(auth_db_check(db, "u", 1, sb.data + 2, AUTH_PASSWORD_MAX), 1);
    auth_db_free(db);
    strbuf_free(&sb);
}

static void test_auth_db_refuses_missing_and_oversized_files(void **state)
{
    (void)state;
    struct auth_db *db = NULL;
    struct etrn_err err = {{0}};
    assert_int_equal(auth_db_load(&db, "/nonexistent/passwords", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/passwords"));
    /* over AUTH_FILE_MAX: refused, not read without bound */
    char *big = malloc(AUTH_FILE_MAX + 2);
    assert_non_null(big);
    for (size_t i = 0; i < AUTH_FILE_MAX + 1; i++)
        big[i] = (i % 16 == 15) ? '\n' : 'a';
    big[3] = ':';
    write_file(big, AUTH_FILE_MAX + 1);
    free(big);
    assert_int_equal(auth_db_load(&db, test_file, &err), -1);
    assert_null(db);
}

static void test_auth_db_empty_file_admits_nobody(void **state)
{
    (void)state;
    struct auth_db *db = load("# nobody yet\n");
    assert_int_equal(auth_db_count(db), 0);
    assert_int_equal(auth_db_check(db, "", 0, "", 0), 0);
    char user[AUTH_USER_MAX + 1], enc[64];
    b64("\0a\0b", 4, enc, sizeof enc);
    assert_int_equal(auth_plain(db, enc, strlen(enc), user, sizeof user), AUTH_FAILED);
    auth_db_free(db);
    assert_int_equal(auth_db_check(NULL, "a", 1, "b", 1), 0);
}

/* --- base64 --------------------------------------------------------------------------------- */

static void test_auth_base64_decodes_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct { const char *in; const char *out; } v[] = {
        { "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
        { "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
        { "=", "" },   /* RFC 4954: an empty initial response */
        { "+/+/", "\xfb\xff\xbf" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char out[32];
        size_t n = 99;
        if (auth_base64_decode(v[i].in, strlen(v[i].in), out, sizeof out, &n) < 0)
            fail_msg("'%s' refused", v[i].in);
        assert_int_equal(n, strlen(v[i].out));
        assert_memory_equal(out, v[i].out, n);
    }
}

static void test_auth_base64_refuses_malformed_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm=v", "Zm9v YmFy", "Zm9v\n",
        "Zm9-", "Zm9_", "Zm9v\0\0\0\0", "==", "Zg=a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char out[32];
        size_t n = 0;
        size_t len = i == 11 ? 8 : strlen(bad[i]);
        if (auth_base64_decode(bad[i], len, out, sizeof out, &n) == 0)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_auth_base64_respects_output_capacity(void **state)
{
    (void)state;
    unsigned char out[6];
    size_t n;
    assert_int_equal(auth_base64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(auth_base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
    assert_int_equal(auth_base64_decode("Zm9vYg==", 8, out, 4, &n), 0);
    assert_int_equal(auth_base64_decode("Zm9vYg==", 8, out, 3, &n), -1);
}

/* --- PLAIN ------------------------------------------------------------------------------------ */

static enum auth_result plain(const struct auth_db *db, const void *raw, size_t n, char *user)
{
    char enc[1200];
    b64(raw, n, enc, sizeof enc);
    return auth_plain(db, enc, strlen(enc), user, AUTH_USER_MAX + 1);
}

static void test_auth_plain_accepts_good_credentials(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[AUTH_USER_MAX + 1] = "";
    /* the example in auth.c's synopsis */
    assert_int_equal(auth_plain(db, "AHNpdGUxAHMzY3JldA==", 20, user, sizeof user), AUTH_OK);
    assert_string_equal(user, "site1");
    memset(user, 0, sizeof user);
    assert_int_equal(plain(db, "\0alice\0pa:ss:word", 17, user), AUTH_OK);
    assert_string_equal(user, "alice");
    auth_db_free(db);
}

static void test_auth_plain_authzid_equal_to_user_is_accepted_other_refused(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[AUTH_USER_MAX + 1] = "";
    assert_int_equal(plain(db, "site1\0site1\0s3cret", 18, user), AUTH_OK);
    assert_string_equal(user, "site1");
    user[0] = '\0';
    assert_int_equal(plain(db, "alice\0site1\0s3cret", 18, user), AUTH_FAILED);
    assert_string_equal(user, "");
    auth_db_free(db);
}

static void test_auth_plain_refuses_wrong_password_and_unknown_user(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[AUTH_USER_MAX + 1] = "";
    assert_int_equal(plain(db, "\0site1\0wrong", 12, user), AUTH_FAILED);
    assert_int_equal(plain(db, "\0site1\0", 7, user), AUTH_FAILED);
    assert_int_equal(plain(db, "\0nobody\0s3cret", 14, user), AUTH_FAILED);
    assert_string_equal(user, "");
    auth_db_free(db);
}

static void test_auth_plain_refuses_malformed_responses(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[AUTH_USER_MAX + 1] = "";
    assert_int_equal(plain(db, "site1s3cret", 11, user), AUTH_MALFORMED);       /* no NULs */
    assert_int_equal(plain(db, "\0site1s3cret", 12, user), AUTH_MALFORMED);     /* one NUL */
    assert_int_equal(plain(db, "\0\0s3cret", 8, user), AUTH_MALFORMED);         /* empty user */
    assert_int_equal(plain(db, "\0site1\0s3c\0ret", 14, user), AUTH_MALFORMED); /* NUL in password */
    assert_int_equal(auth_plain(db, "not base64!", 11, user, sizeof user), AUTH_MALFORMED);
    assert_int_equal(auth_plain(db, "=", 1, user, sizeof user), AUTH_MALFORMED);
    assert_int_equal(auth_plain(db, "", 0, user, sizeof user), AUTH_MALFORMED);
    /* longer than any valid response: refused before decoding overflows anything */
    char big[2001];   /* 2000 base64 characters: 1500 octets, over the decoder cap */
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(auth_plain(db, big, strlen(big), user, sizeof user), AUTH_MALFORMED);
    assert_string_equal(user, "");
    auth_db_free(db);
}

static void test_auth_plain_user_buffer_too_small_fails_safely(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[4] = "xyz";
    char enc[64];
    b64("\0site1\0s3cret", 13, enc, sizeof enc);
    assert_int_equal(auth_plain(db, enc, strlen(enc), user, sizeof user), AUTH_FAILED);
    assert_string_equal(user, "xyz");
    auth_db_free(db);
}

/* --- LOGIN ------------------------------------------------------------------------------------ */

static void test_auth_login_accepts_good_and_refuses_bad(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[AUTH_USER_MAX + 1] = "", u[64], p[64];
    b64("site1", 5, u, sizeof u);
    b64("s3cret", 6, p, sizeof p);
    assert_int_equal(auth_login(db, u, strlen(u), p, strlen(p), user, sizeof user), AUTH_OK);
    assert_string_equal(user, "site1");
    user[0] = '\0';
    b64("S3cret", 6, p, sizeof p);
    assert_int_equal(auth_login(db, u, strlen(u), p, strlen(p), user, sizeof user), AUTH_FAILED);
    assert_string_equal(user, "");
    /* bob's empty password: "=" is the empty answer */
    b64("bob", 3, u, sizeof u);
    assert_int_equal(auth_login(db, u, strlen(u), "=", 1, user, sizeof user), AUTH_OK);
    assert_string_equal(user, "bob");
    auth_db_free(db);
}

static void test_auth_login_refuses_malformed_answers(void **state)
{
    (void)state;
    struct auth_db *db = load(USERS);
    char user[AUTH_USER_MAX + 1] = "", u[64], p[64];
    b64("site1", 5, u, sizeof u);
    b64("s3cret", 6, p, sizeof p);
    assert_int_equal(auth_login(db, "c2l0ZTE", 7, p, strlen(p), user, sizeof user), AUTH_MALFORMED);
    assert_int_equal(auth_login(db, u, strlen(u), "*", 1, user, sizeof user), AUTH_MALFORMED);
    assert_int_equal(auth_login(db, "=", 1, p, strlen(p), user, sizeof user), AUTH_MALFORMED);
    char nul[64];
    b64("site1\0", 6, nul, sizeof nul);
    assert_int_equal(auth_login(db, nul, strlen(nul), p, strlen(p), user, sizeof user), AUTH_MALFORMED);
    /* a user name longer than AUTH_USER_MAX does not fit the decoder: malformed */
    char longu[400], enc[600];
    memset(longu, 'u', sizeof longu);
    b64(longu, sizeof longu, enc, sizeof enc);
    assert_int_equal(auth_login(db, enc, strlen(enc), p, strlen(p), user, sizeof user), AUTH_MALFORMED);
    assert_string_equal(user, "");
    auth_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_db_loads_users_skipping_comments_and_blank_lines),
        cmocka_unit_test(test_auth_db_refuses_malformed_lines_with_file_and_line),
        cmocka_unit_test(test_auth_db_refuses_over_long_user_or_password),
        cmocka_unit_test(test_auth_db_refuses_missing_and_oversized_files),
        cmocka_unit_test(test_auth_db_empty_file_admits_nobody),
        cmocka_unit_test(test_auth_base64_decodes_rfc4648_vectors),
        cmocka_unit_test(test_auth_base64_refuses_malformed_input),
        cmocka_unit_test(test_auth_base64_respects_output_capacity),
        cmocka_unit_test(test_auth_plain_accepts_good_credentials),
        cmocka_unit_test(test_auth_plain_authzid_equal_to_user_is_accepted_other_refused),
        cmocka_unit_test(test_auth_plain_refuses_wrong_password_and_unknown_user),
        cmocka_unit_test(test_auth_plain_refuses_malformed_responses),
        cmocka_unit_test(test_auth_plain_user_buffer_too_small_fails_safely),
        cmocka_unit_test(test_auth_login_accepts_good_and_refuses_bad),
        cmocka_unit_test(test_auth_login_refuses_malformed_answers),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
