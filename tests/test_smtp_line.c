/* test_smtp_line.c — the SMTP line reader: limits, line endings, NUL, pieces (RFC 5321 §4.5.3.1, §2.3.8). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <event2/buffer.h>

#include "smtp_line.h"

struct fixture {
    struct evbuffer *in;
    struct smtp_line_reader rd;
    struct smtp_line line;
};

static int setup(void **state)
{
    static struct fixture f;
    f.in = evbuffer_new();
    smtp_line_reader_init(&f.rd, SMTP_COMMAND_LINE_MAX);
    *state = &f;
    return f.in ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    evbuffer_free(f->in);
    return 0;
}

static void add_line_of(struct evbuffer *in, size_t chars, const char *ending)
{
    for (size_t i = 0; i < chars; i++)
        evbuffer_add(in, "x", 1);
    evbuffer_add(in, ending, strlen(ending));
}

static void test_line_crlf_stripped_and_flags_clear(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "ETRN node.test\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "ETRN node.test");
    assert_int_equal(f->line.len, 14);
    assert_int_equal(f->line.flags, 0);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
}

static void test_line_of_exactly_512_octets_with_crlf_is_accepted(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 510, "\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 510);
}

static void test_line_of_513_octets_is_too_long_and_consumed(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 511, "\r\n");
    evbuffer_add_printf(f->in, "NOOP\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "NOOP");
}

static void test_text_limit_1000_accepts_998_chars(void **state)
{
    struct fixture *f = *state;
    smtp_line_reader_set_limit(&f->rd, SMTP_TEXT_LINE_MAX);
    add_line_of(f->in, 998, "\r\n");
    add_line_of(f->in, 999, "\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 998);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
}

static void test_over_long_line_in_pieces_holds_bounded_memory_and_reports_once(void **state)
{
    struct fixture *f = *state;
    int too_long = 0;
    for (int i = 0; i < 100; i++) {
        add_line_of(f->in, 100, "");
        enum smtp_line_status st;
        while ((st = smtp_line_read(&f->rd, f->in, &f->line)) != SMTP_LINE_INCOMPLETE)
            too_long += st == SMTP_LINE_TOO_LONG;
        assert_true(evbuffer_get_length(f->in) < SMTP_COMMAND_LINE_MAX);
    }
    assert_int_equal(too_long, 0);
    evbuffer_add_printf(f->in, "tail\r\nQUIT\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "QUIT");
}

static void test_bare_lf_is_flagged(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "ETRN node.test\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_true(f->line.flags & SMTP_LINE_BARE_LF);
    assert_string_equal(f->line.buf, "ETRN node.test");
}

static void test_nul_and_bare_cr_are_flagged_not_stripped(void **state)
{
    struct fixture *f = *state;
    evbuffer_add(f->in, "ET\0RN a\rb\r\n", 11);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 9);
    assert_true(f->line.flags & SMTP_LINE_HAS_NUL);
    assert_true(f->line.flags & SMTP_LINE_BARE_CR);
}

static void test_line_split_across_many_adds(void **state)
{
    struct fixture *f = *state;
    const char *text = "MAIL FROM:<a@b.test>\r\n";
    for (size_t i = 0; i < strlen(text); i++) {
        if (i > 0)
            assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
        evbuffer_add(f->in, text + i, 1);
    }
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "MAIL FROM:<a@b.test>");
}

static void test_many_lines_in_one_buffer_come_out_in_order(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "RSET\r\n\r\nETRN x.test\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "RSET");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 0);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "ETRN x.test");
}

static void test_line_of_511_chars_and_cr_then_lf_in_pieces_is_too_long(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 511, "\r");
    /* 512 octets without LF: the line cannot fit any more, so nothing is held. */
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
    assert_true(evbuffer_get_length(f->in) < SMTP_COMMAND_LINE_MAX);
    evbuffer_add_printf(f->in, "\nRSET\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "RSET");
}

static void test_line_of_510_chars_and_cr_then_lf_in_pieces_is_accepted(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 510, "\r");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
    assert_int_equal(evbuffer_get_length(f->in), 511);
    evbuffer_add(f->in, "\n", 1);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 510);
    assert_int_equal(f->line.flags, 0);
}

static void test_bare_lf_line_is_measured_as_if_it_had_crlf(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 510, "\n");
    add_line_of(f->in, 511, "\n");     /* 512 octets as sent, 513 with CRLF */
    add_line_of(f->in, 512, "\n");
    evbuffer_add_printf(f->in, "QUIT\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 510);
    assert_true(f->line.flags & SMTP_LINE_BARE_LF);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "QUIT");
    assert_int_equal(evbuffer_get_length(f->in), 0);
}

static void test_text_limit_boundary_in_pieces_and_bounded(void **state)
{
    struct fixture *f = *state;
    smtp_line_reader_set_limit(&f->rd, SMTP_TEXT_LINE_MAX);
    add_line_of(f->in, 600, "");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
    add_line_of(f->in, 398, "\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 998);
    assert_int_equal(f->line.buf[998], '\0');
    int too_long = 0;
    for (int i = 0; i < 50; i++) {
        add_line_of(f->in, 333, "");
        assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
        assert_true(evbuffer_get_length(f->in) < SMTP_TEXT_LINE_MAX);
    }
    evbuffer_add_printf(f->in, "\r\n.\r\n");
    too_long += smtp_line_read(&f->rd, f->in, &f->line) == SMTP_LINE_TOO_LONG;
    assert_int_equal(too_long, 1);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, ".");
}

static void test_over_long_line_in_one_buffer_reported_once_then_next_lines(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 3000, "\r\n");
    evbuffer_add_printf(f->in, "NOOP\r\nQUIT\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "NOOP");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_string_equal(f->line.buf, "QUIT");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_INCOMPLETE);
}

static void test_empty_lines_crlf_and_bare_lf(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "\r\n\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 0);
    assert_string_equal(f->line.buf, "");
    assert_int_equal(f->line.flags, 0);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 0);
    assert_int_equal(f->line.flags, SMTP_LINE_BARE_LF);
}

static void test_cr_before_crlf_is_a_bare_cr(void **state)
{
    struct fixture *f = *state;
    evbuffer_add_printf(f->in, "DATA\r\r\n");
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 5);
    assert_memory_equal(f->line.buf, "DATA\r", 5);
    assert_int_equal(f->line.flags, SMTP_LINE_BARE_CR);
}

static void test_limit_switches_between_command_and_text(void **state)
{
    struct fixture *f = *state;
    add_line_of(f->in, 700, "\r\n");
    add_line_of(f->in, 700, "\r\n");
    smtp_line_reader_set_limit(&f->rd, SMTP_TEXT_LINE_MAX);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_OK);
    assert_int_equal(f->line.len, 700);
    smtp_line_reader_set_limit(&f->rd, SMTP_COMMAND_LINE_MAX);
    assert_int_equal(smtp_line_read(&f->rd, f->in, &f->line), SMTP_LINE_TOO_LONG);
    /* Limits above what struct smtp_line can hold are clamped. */
    smtp_line_reader_set_limit(&f->rd, 100000);
    assert_int_equal(f->rd.limit, SMTP_TEXT_LINE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_crlf_stripped_and_flags_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_of_exactly_512_octets_with_crlf_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_of_513_octets_is_too_long_and_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_limit_1000_accepts_998_chars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_long_line_in_pieces_holds_bounded_memory_and_reports_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_lf_is_flagged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_and_bare_cr_are_flagged_not_stripped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_split_across_many_adds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_lines_in_one_buffer_come_out_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_of_511_chars_and_cr_then_lf_in_pieces_is_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_of_510_chars_and_cr_then_lf_in_pieces_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_lf_line_is_measured_as_if_it_had_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_limit_boundary_in_pieces_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_long_line_in_one_buffer_reported_once_then_next_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_lines_crlf_and_bare_lf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cr_before_crlf_is_a_bare_cr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_switches_between_command_and_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
