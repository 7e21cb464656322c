/* test_smtp_reply.c — reply parsing (RFC 5321 §4.2) and writing, including hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <event2/buffer.h>

#include "smtp_reply.h"
#include "smtp_line.h"

struct fixture {
    struct evbuffer *in;
    struct smtp_reply r;
    struct etrn_err err;
};

static int setup(void **state)
{
    static struct fixture f;
    f.in = evbuffer_new();
    smtp_reply_init(&f.r);
    memset(&f.err, 0, sizeof f.err);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    smtp_reply_free(&f->r);
    evbuffer_free(f->in);
    return 0;
}

static void test_reply_multiline_ehlo_parsed_with_keywords(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250-relay.test hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 etrn\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.code, 250);
    assert_int_equal(f->r.nlines, 4);
    const char *params = NULL;
    assert_true(smtp_reply_has_keyword(&f->r, "ETRN", NULL));
    assert_true(smtp_reply_has_keyword(&f->r, "size", &params));
    assert_int_equal(strncmp(params, "10240000", 8), 0);
    assert_false(smtp_reply_has_keyword(&f->r, "STARTTLS", NULL));
    assert_int_equal(evbuffer_get_length(f->in), 0);
}

static void test_reply_enhanced_code_taken_from_first_line(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "253 2.0.0 OK, 14 pending messages for node x.test started\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_string_equal(f->r.enh, "2.0.0");
    assert_string_equal(f->r.text.data, "2.0.0 OK, 14 pending messages for node x.test started");
}

static void test_reply_incomplete_until_last_line_arrives_byte_by_byte(void **state)
{
    struct fixture *f = *state;
    const char *text = "250-a\r\n250 b\r\n";
    for (size_t i = 0; i < strlen(text); i++) {
        evbuffer_add(f->in, text + i, 1);
        enum smtp_reply_status st = smtp_reply_parse(f->in, &f->r, &f->err);
        if (i + 1 < strlen(text))
            assert_int_equal(st, SMTP_REPLY_INCOMPLETE);
        else
            assert_int_equal(st, SMTP_REPLY_OK);
    }
    assert_string_equal(f->r.text.data, "a\nb");
}

static void test_reply_mismatched_codes_are_malformed(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250-a\r\n251 b\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_non_null(strstr(f->err.msg, "disagree"));
}

static void test_reply_garbage_is_malformed_and_consumed(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "hello there\r\n220 ok\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.code, 220);
}

static void test_reply_codes_outside_2_5_are_malformed(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "650 what\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    evbuffer_add_printf(f->in, "2x0 what\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
}

static void test_reply_bare_lf_and_code_only_are_tolerated_and_flagged(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_true(f->r.flags & SMTP_REPLY_BARE_LF);
    assert_true(f->r.flags & SMTP_REPLY_NO_SPACE);
}

static void test_reply_long_line_flagged_and_over_4096_malformed(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250 ");
    for (int i = 0; i < 600; i++)
        evbuffer_add(f->in, "x", 1);
    evbuffer_add_printf(f->in, "\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_true(f->r.flags & SMTP_REPLY_LONG_LINE);
    evbuffer_add_printf(f->in, "250 ");
    for (int i = 0; i < 5000; i++)
        evbuffer_add(f->in, "x", 1);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_true(evbuffer_get_length(f->in) < 100);
}

static void test_reply_writer_multiline_with_enhanced_code(void **state)
{
    struct fixture *f = *state;
    const char *lines[] = { "relay.test", "PIPELINING", "ETRN" };
    assert_int_equal(smtp_reply_write_lines(f->in, 250, NULL, lines, 3), 0);
    assert_int_equal(smtp_reply_write(f->in, 459, "4.7.1", "Node %s not allowed: %s", "x.test", "policy"), 0);
    char out[256] = {0};
    evbuffer_copyout(f->in, out, sizeof out - 1);
    assert_string_equal(out, "250-relay.test\r\n250-PIPELINING\r\n250 ETRN\r\n459 4.7.1 Node x.test not allowed: policy\r\n");
    /* and it parses back */
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.nlines, 3);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.code, 459);
}

static void test_reply_writer_truncates_to_512_and_strips_line_breaks(void **state)
{
    struct fixture *f = *state;
    char big[2000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[10] = '\n';
    assert_int_equal(smtp_reply_write(f->in, 500, "5.5.2", "%s", big), 0);
    size_t len = evbuffer_get_length(f->in);
    assert_true(len <= SMTP_REPLY_LINE_MAX);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.nlines, 1);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reply_multiline_ehlo_parsed_with_keywords),
        T(test_reply_enhanced_code_taken_from_first_line),
        T(test_reply_incomplete_until_last_line_arrives_byte_by_byte),
        T(test_reply_mismatched_codes_are_malformed),
        T(test_reply_garbage_is_malformed_and_consumed),
        T(test_reply_codes_outside_2_5_are_malformed),
        T(test_reply_bare_lf_and_code_only_are_tolerated_and_flagged),
        T(test_reply_long_line_flagged_and_over_4096_malformed),
        T(test_reply_writer_multiline_with_enhanced_code),
        T(test_reply_writer_truncates_to_512_and_strips_line_breaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
