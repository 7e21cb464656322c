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

static void add_reply_line_of(struct evbuffer *in, const char *prefix, size_t total_octets)
{
    /* prefix, then 'x' up to total_octets including the CRLF */
    size_t pl = strlen(prefix);
    evbuffer_add(in, prefix, pl);
    for (size_t i = pl; i + 2 < total_octets; i++)
        evbuffer_add(in, "x", 1);
    evbuffer_add(in, "\r\n", 2);
}

static void test_reply_line_limits_512_flag_and_4096_boundary(void **state)
{
    struct fixture *f = *state;
    add_reply_line_of(f->in, "250 ", 512);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_false(f->r.flags & SMTP_REPLY_LONG_LINE);
    assert_int_equal(f->r.text.len, 506);
    add_reply_line_of(f->in, "250 ", 513);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_true(f->r.flags & SMTP_REPLY_LONG_LINE);
    add_reply_line_of(f->in, "250 ", SMTP_REPLY_PARSE_LINE_MAX);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.text.len, SMTP_REPLY_PARSE_LINE_MAX - 6);
    assert_int_equal(f->r.raw.len, SMTP_REPLY_PARSE_LINE_MAX);
    add_reply_line_of(f->in, "250 ", SMTP_REPLY_PARSE_LINE_MAX + 1);
    evbuffer_add_printf(f->in, "220 next\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_non_null(strstr(f->err.msg, "longer than 4096"));
}

static void test_reply_mismatch_after_valid_lines_consumes_through_offender(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250-a\r\n250-b\r\n451 c\r\n221 bye\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_string_equal(f->err.msg, "reply lines disagree on the code: 250 then 451");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.code, 221);
    assert_string_equal(f->r.text.data, "bye");
}

static void test_reply_code_followed_by_other_than_sp_or_dash_is_malformed(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250ok\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_non_null(strstr(f->err.msg, "'o'"));
    evbuffer_add_printf(f->in, "25\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    evbuffer_add(f->in, "\r\n", 2);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_int_equal(evbuffer_get_length(f->in), 0);
}

static void test_reply_with_more_than_256_lines_is_malformed(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < SMTP_REPLY_MAX_LINES; i++)
        evbuffer_add_printf(f->in, "250-line %d\r\n", i);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_INCOMPLETE);
    evbuffer_add_printf(f->in, "250 last\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_MALFORMED);
    assert_non_null(strstr(f->err.msg, "more than 256 lines"));
}

static void test_reply_of_exactly_256_lines_is_accepted(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i + 1 < SMTP_REPLY_MAX_LINES; i++)
        evbuffer_add_printf(f->in, "250-line %d\r\n", i);
    evbuffer_add_printf(f->in, "250 last\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.nlines, SMTP_REPLY_MAX_LINES);
    assert_int_equal(evbuffer_get_length(f->in), 0);
}

static void test_reply_ehlo_split_at_every_byte_parses_the_same(void **state)
{
    struct fixture *f = *state;
    const char *text = "250-relay.test greets you\r\n250-ETRN\r\n250-SIZE 1000\r\n250 8BITMIME\r\n221 2.0.0 bye\r\n";
    size_t n = strlen(text);
    int replies = 0;
    for (size_t i = 0; i < n; i++) {
        evbuffer_add(f->in, text + i, 1);
        enum smtp_reply_status st = smtp_reply_parse(f->in, &f->r, &f->err);
        assert_int_not_equal(st, SMTP_REPLY_MALFORMED);
        if (st == SMTP_REPLY_OK) {
            replies++;
            if (replies == 1) {
                assert_int_equal(f->r.nlines, 4);
                assert_string_equal(f->r.text.data, "relay.test greets you\nETRN\nSIZE 1000\n8BITMIME");
                assert_string_equal(f->r.raw.data, "250-relay.test greets you\r\n250-ETRN\r\n250-SIZE 1000\r\n250 8BITMIME\r\n");
                assert_true(smtp_reply_has_keyword(&f->r, "8bitmime", NULL));
            } else {
                assert_int_equal(f->r.code, 221);
                assert_string_equal(f->r.enh, "2.0.0");
            }
        }
    }
    assert_int_equal(replies, 2);
}

static void test_reply_enhanced_code_forms(void **state)
{
    (void)state;
    char enh[16];
    assert_int_equal(smtp_enhanced_code_parse("2.0.0 ok", 8, enh), 5);
    assert_string_equal(enh, "2.0.0");
    assert_int_equal(smtp_enhanced_code_parse("5.123.456", 9, enh), 9);
    assert_string_equal(enh, "5.123.456");
    assert_int_equal(smtp_enhanced_code_parse("5.1234.1 x", 10, enh), 0);
    assert_string_equal(enh, "");
    assert_int_equal(smtp_enhanced_code_parse("2.0.0x", 6, enh), 0);
    assert_int_equal(smtp_enhanced_code_parse("2.0. ok", 7, enh), 0);
    assert_int_equal(smtp_enhanced_code_parse("2.0", 3, enh), 0);
    assert_int_equal(smtp_enhanced_code_parse("OK 2.0.0", 8, enh), 0);
    /* length bounds the scan, not the NUL */
    assert_int_equal(smtp_enhanced_code_parse("4.7.19", 5, enh), 5);
    assert_string_equal(enh, "4.7.1");
}

static void test_reply_enhanced_code_absent_when_text_has_none(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250 OK\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_string_equal(f->r.enh, "");
    evbuffer_add_printf(f->in, "250-first line\r\n250 2.0.0 second\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_string_equal(f->r.enh, "");
}

static void test_reply_keyword_params_and_first_line_not_a_keyword(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250-ETRN says hello\r\n250-AUTH  PLAIN LOGIN\r\n250-AUTH=LOGIN\r\n250 SIZE\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    const char *params = NULL;
    /* The first line names the server, whatever it says. */
    assert_false(smtp_reply_has_keyword(&f->r, "ETRN", NULL));
    assert_true(smtp_reply_has_keyword(&f->r, "auth", &params));
    assert_int_equal(strncmp(params, "PLAIN LOGIN\n", 12), 0);
    assert_true(smtp_reply_has_keyword(&f->r, "SIZE", &params));
    assert_string_equal(params, "");
    assert_false(smtp_reply_has_keyword(&f->r, "SIZ", NULL));
    assert_false(smtp_reply_has_keyword(&f->r, "", NULL));
    assert_true(smtp_reply_has_keyword(&f->r, "AUTH=LOGIN", NULL));
}

static void test_reply_single_line_has_no_keywords(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "250 ETRN\r\n");
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_false(smtp_reply_has_keyword(&f->r, "ETRN", NULL));
}

static void test_reply_writer_prefixes_enhanced_code_on_every_line(void **state)
{
    struct fixture *f = *state;
    const char *lines[] = { "one", "two" };
    assert_int_equal(smtp_reply_write_lines(f->in, 550, "5.7.1", lines, 2), 0);
    assert_int_equal(smtp_reply_write_lines(f->in, 250, "", lines, 1), 0);
    assert_int_equal(smtp_reply_write_lines(f->in, 250, NULL, NULL, 0), 0);
    char out[128] = {0};
    evbuffer_copyout(f->in, out, sizeof out - 1);
    assert_string_equal(out, "550-5.7.1 one\r\n550 5.7.1 two\r\n250 one\r\n250 \r\n");
}

static void test_reply_writer_truncates_at_exactly_512_octets(void **state)
{
    struct fixture *f = *state;
    char text[600];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    assert_int_equal(smtp_reply_write(f->in, 250, NULL, "%s", text), 0);
    assert_int_equal(evbuffer_get_length(f->in), SMTP_REPLY_LINE_MAX);
    char out[SMTP_REPLY_LINE_MAX];
    evbuffer_remove(f->in, out, sizeof out);
    assert_memory_equal(out, "250 aaa", 7);
    assert_memory_equal(out + SMTP_REPLY_LINE_MAX - 3, "a\r\n", 3);
    /* 508 characters of text fit exactly, untouched */
    text[508] = '\0';
    assert_int_equal(smtp_reply_write(f->in, 250, NULL, "%s", text), 0);
    assert_int_equal(evbuffer_get_length(f->in), SMTP_REPLY_LINE_MAX);
    evbuffer_drain(f->in, SMTP_REPLY_LINE_MAX);
    const char *lines[] = { text, text };
    assert_int_equal(smtp_reply_write_lines(f->in, 250, "2.0.0", lines, 2), 0);
    assert_int_equal(evbuffer_get_length(f->in), 2 * SMTP_REPLY_LINE_MAX);
    assert_int_equal(smtp_reply_parse(f->in, &f->r, &f->err), SMTP_REPLY_OK);
    assert_int_equal(f->r.nlines, 2);
    assert_false(f->r.flags & SMTP_REPLY_LONG_LINE);
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
        T(test_reply_line_limits_512_flag_and_4096_boundary),
        T(test_reply_mismatch_after_valid_lines_consumes_through_offender),
        T(test_reply_code_followed_by_other_than_sp_or_dash_is_malformed),
        T(test_reply_with_more_than_256_lines_is_malformed),
        T(test_reply_of_exactly_256_lines_is_accepted),
        T(test_reply_ehlo_split_at_every_byte_parses_the_same),
        T(test_reply_enhanced_code_forms),
        T(test_reply_enhanced_code_absent_when_text_has_none),
        T(test_reply_keyword_params_and_first_line_not_a_keyword),
        T(test_reply_single_line_has_no_keywords),
        T(test_reply_writer_prefixes_enhanced_code_on_every_line),
        T(test_reply_writer_truncates_at_exactly_512_octets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
