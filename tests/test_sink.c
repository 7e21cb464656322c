/* test_sink.c — the simulator's node mail server seen from outside: swaks and raw sockets
 * talk SMTP to a sink on loopback while the test's event loop runs it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "misbehave.h"
#include "sink.h"
#include "sink_journal.h"
#include "strbuf.h"
#include "world.h"

struct fixture {
    struct event_base *base;
    struct sink_journal *journal;
    struct sink *sink;
    int port;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct etrn_err err = {{0}};
    f->base = event_base_new();
    if (f->base == NULL || sink_journal_open(&f->journal, NULL, &err) < 0)
        return -1;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sink_new(&f->sink, f->base, "sink1", (struct sockaddr *)&sin, sizeof sin, f->journal,
                 &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    const struct sockaddr_in *bound = (const struct sockaddr_in *)sink_address(f->sink, NULL);
    f->port = ntohs(bound->sin_port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sink_free(f->sink);
    sink_journal_free(f->journal);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void behave(struct fixture *f, const char *line)
{
    char buf[256];
    char *argv[16];
    int argc = 0;
    assert_true(str_copy(buf, sizeof buf, line) == 0);
    for (char *t = strtok(buf, " "); t != NULL && argc < 16; t = strtok(NULL, " "))
        argv[argc++] = t;
    struct etrn_err err = {{0}};
    int r = sink_apply_words(f->sink, argv, argc, &err);
    if (r < 0)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(r, 0);
}

/* --- a raw SMTP client, run beside the event loop ------------------------------- */

struct chat {
    int port;
    const char *script;       /* sent in one write after the greeting; NULL: send nothing */
    unsigned read_ms;         /* how long to wait for more (bound, not an assertion) */
    struct strbuf got;
    int closed;               /* the server closed (EOF or reset) */
    int greeted;
};

static int reply_complete(const char *buf, size_t len)
{
    /* complete when the last full line is a final reply line ("250 x" or "250") */
    if (len < 4 || buf[len - 1] != '\n')
        return 0;
    size_t end = len - 1;
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    size_t start = end;
    while (start > 0 && buf[start - 1] != '\n')
        start--;
    return end - start == 3 || (end - start > 3 && buf[start + 3] == ' ');
}

static int chat_run(void *arg)
{
    struct chat *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)c->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {0, (suseconds_t)(c->read_ms ? c->read_ms : 3000) * 1000};
    if (tv.tv_usec >= 1000000) {
        tv.tv_sec = tv.tv_usec / 1000000;
        tv.tv_usec %= 1000000;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        close(fd);
        return -1;
    }
    char buf[8192];
    /* the greeting */
    for (int i = 0; i < 10000 && !reply_complete(c->got.data, c->got.len); i++) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            c->closed = n == 0 || errno == ECONNRESET;
            close(fd);
            return 0;
        }
        strbuf_append(&c->got, buf, (size_t)n);
    }
    c->greeted = 1;
    if (c->script != NULL && send(fd, c->script, strlen(c->script), MSG_NOSIGNAL) < 0) {
        close(fd);
        return 0;
    }
    for (int i = 0; i < 100000; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            c->closed = 1;
            break;
        }
        if (n < 0)
            break;   /* the bound: nothing more within read_ms */
        strbuf_append(&c->got, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

static void chat(struct fixture *f, struct chat *c, const char *script)
{
    strbuf_init(&c->got, 1 << 20);
    c->port = f->port;
    c->script = script;
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, chat_run, c, 20000, &err), 0);
}

static const char *delivery_script =
    "EHLO relay.test\r\n"
    "MAIL FROM:<a@b.test>\r\n"
    "RCPT TO:<u@node.test>\r\n"
    "RCPT TO:<v@node.test>\r\n"
    "DATA\r\n"
    "Message-ID: <m1@b.test>\r\n"
    "Subject: dots\r\n"
    "\r\n"
    "..leading dot\r\n"
    "...\r\n"
    "plain\r\n"
    ".\r\n"
    "QUIT\r\n";

/* What the sink must have hashed: the text above unstuffed, CRLF line ends. */
static const char *delivery_text =
    "Message-ID: <m1@b.test>\r\n"
    "Subject: dots\r\n"
    "\r\n"
    ".leading dot\r\n"
    "..\r\n"
    "plain\r\n";

static void sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned len = 0;
    EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        str_format(out + 2 * i, 3, "%02x", md[i]);
}

static const struct sink_journal_entry *only_delivery(struct fixture *f)
{
    assert_int_equal(sink_journal_count_deliveries(f->journal, "sink1"), 1);
    for (size_t i = 0; i < sink_journal_count(f->journal); i++)
        if (sink_journal_get(f->journal, i)->kind == SINK_JOURNAL_DELIVERY)
            return sink_journal_get(f->journal, i);
    return NULL;
}

/* --- tests ------------------------------------------------------------------------ */

static void test_sink_records_envelope_message_id_and_unstuffed_digest(void **state)
{
    struct fixture *f = *state;
    struct chat c = {0};
    chat(f, &c, delivery_script);
    assert_true(c.closed);
    assert_non_null(strstr(c.got.data, "250 2.0.0 Message accepted"));
    assert_non_null(strstr(c.got.data, "221 "));
    const struct sink_journal_entry *e = only_delivery(f);
    assert_string_equal(e->mail_from, "a@b.test");
    assert_int_equal(e->nrcpts, 2);
    assert_string_equal(e->rcpts[0], "u@node.test");
    assert_string_equal(e->rcpts[1], "v@node.test");
    assert_string_equal(e->message_id, "<m1@b.test>");
    assert_int_equal(e->size, strlen(delivery_text));
    char want[65];
    sha256_hex(delivery_text, want);
    assert_string_equal(e->sha256, want);
    assert_int_equal(e->status, SINK_DELIVERY_ACCEPTED);
    assert_int_equal(e->reply_code, 250);
    assert_non_null(strstr(e->peer, "127.0.0.1:"));
    strbuf_free(&c.got);
}

struct swaks {
    char cmd[512];
    struct strbuf out;
    int status;
};

static int swaks_run(void *arg)
{
    struct swaks *s = arg;
    FILE *p = popen(s->cmd, "r");
    if (p == NULL)
        return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        strbuf_append(&s->out, buf, n);
    s->status = pclose(p);
    return 0;
}

static void swaks(struct fixture *f, struct swaks *s, const char *extra)
{
    strbuf_init(&s->out, 1 << 20);
    assert_true(str_format(s->cmd, sizeof s->cmd,
                           "timeout 20 swaks --server 127.0.0.1:%d --to u@node.test "
                           "--from a@b.test --timeout 10 %s 2>&1",
                           f->port, extra) > 0);
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, swaks_run, s, 30000, &err), 0);
}

static void test_sink_accepts_swaks_and_journals_it(void **state)
{
    struct fixture *f = *state;
    struct swaks s;
    swaks(f, &s, "--header 'Message-Id: <swaks-1@b.test>'");
    assert_int_equal(s.status, 0);
    const struct sink_journal_entry *e = only_delivery(f);
    assert_string_equal(e->mail_from, "a@b.test");
    assert_string_equal(e->rcpts[0], "u@node.test");
    assert_string_equal(e->message_id, "<swaks-1@b.test>");
    assert_true(e->size > 0);
    strbuf_free(&s.out);
}

static void test_sink_reject_rcpt_450_seen_by_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-rcpt 450");
    struct swaks s;
    swaks(f, &s, "");
    assert_int_not_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, "<** 450"));
    assert_int_equal(sink_journal_count_deliveries(f->journal, NULL), 0);
    strbuf_free(&s.out);
}

static void test_sink_reject_dot_554_records_rejected_message(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-dot 554");
    struct chat c = {0};
    chat(f, &c, delivery_script);
    assert_non_null(strstr(c.got.data, "554 5.7.1"));
    const struct sink_journal_entry *e = only_delivery(f);
    assert_int_equal(e->status, SINK_DELIVERY_REJECTED);
    assert_int_equal(e->reply_code, 554);
    strbuf_free(&c.got);
}

static void test_sink_drop_after_dot_records_unacknowledged_and_sends_no_reply(void **state)
{
    struct fixture *f = *state;
    behave(f, "drop-after-dot");
    struct chat c = {0};
    chat(f, &c, delivery_script);
    assert_true(c.closed);
    assert_non_null(strstr(c.got.data, "354 "));
    assert_null(strstr(c.got.data, "Message accepted"));
    assert_null(strstr(c.got.data, "221 "));
    const struct sink_journal_entry *e = only_delivery(f);
    assert_int_equal(e->status, SINK_DELIVERY_UNACKNOWLEDGED);
    assert_string_equal(sink_delivery_status_name(e->status), "received-unacknowledged");
    strbuf_free(&c.got);
}

static void test_sink_close_mid_reply_cuts_the_dot_reply(void **state)
{
    struct fixture *f = *state;
    behave(f, "close-mid-reply dot");
    struct chat c = {0};
    chat(f, &c, delivery_script);
    assert_true(c.closed);
    /* Half of "250 2.0.0 Message accepted (this reply is cut)\r\n" and nothing after. */
    const char *tail = strstr(c.got.data, "354 ");
    assert_non_null(tail);
    assert_non_null(strstr(tail, "\n250 2.0"));
    assert_null(strstr(tail, "(this reply is cut)\r\n"));
    assert_int_equal(only_delivery(f)->status, SINK_DELIVERY_UNACKNOWLEDGED);
    strbuf_free(&c.got);
}

static void test_sink_reject_greeting_421_then_closes(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-greeting 421");
    struct chat c = {0};
    chat(f, &c, "EHLO relay.test\r\n");
    assert_true(strncmp(c.got.data, "421 ", 4) == 0);
    assert_true(c.closed);
    strbuf_free(&c.got);
}

static void test_sink_helo_only_refuses_ehlo_accepts_helo(void **state)
{
    struct fixture *f = *state;
    behave(f, "helo-only");
    struct chat c = {0};
    chat(f, &c, "EHLO relay.test\r\nHELO relay.test\r\nQUIT\r\n");
    assert_non_null(strstr(c.got.data, "\r\n500 5.5.1"));
    assert_non_null(strstr(c.got.data, "\r\n250 sink1.sim Hello relay.test"));
    strbuf_free(&c.got);
}

static void test_sink_no_pipelining_drops_the_keyword(void **state)
{
    struct fixture *f = *state;
    struct chat c = {0};
    chat(f, &c, "EHLO relay.test\r\nQUIT\r\n");
    assert_non_null(strstr(c.got.data, "250-PIPELINING"));
    strbuf_free(&c.got);
    behave(f, "no-pipelining");
    struct chat d = {0};
    chat(f, &d, "EHLO relay.test\r\nQUIT\r\n");
    assert_null(strstr(d.got.data, "PIPELINING"));
    assert_non_null(strstr(d.got.data, "8BITMIME"));
    strbuf_free(&d.got);
}

static void test_sink_accept_limit_gives_452_at_mail(void **state)
{
    struct fixture *f = *state;
    behave(f, "accept-limit 1");
    struct chat c = {0};
    chat(f, &c,
         "EHLO r.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@node.test>\r\nDATA\r\nx\r\n.\r\n"
         "MAIL FROM:<a@b.test>\r\nQUIT\r\n");
    assert_non_null(strstr(c.got.data, "250 2.0.0 Message accepted"));
    assert_non_null(strstr(c.got.data, "452 4.3.1"));
    assert_int_equal(sink_accepted_count(f->sink), 1);
    strbuf_free(&c.got);
}

static void test_sink_bare_lf_replies_have_no_cr(void **state)
{
    struct fixture *f = *state;
    behave(f, "bare-lf-replies");
    struct chat c = {0};
    chat(f, &c, "NOOP\r\nQUIT\r\n");
    assert_null(strchr(c.got.data, '\r'));
    assert_non_null(strstr(c.got.data, "\n250 2.0.0 OK\n"));
    strbuf_free(&c.got);
}

static void test_sink_multiline_replies_are_legal_and_odd(void **state)
{
    struct fixture *f = *state;
    behave(f, "multiline-replies");
    struct chat c = {0};
    chat(f, &c, "NOOP\r\nQUIT\r\n");
    assert_non_null(strstr(c.got.data, "250-2.0.0 OK\r\n250-\r\n250\r\n"));
    strbuf_free(&c.got);
}

static void test_sink_long_replies_exceed_512_octets(void **state)
{
    struct fixture *f = *state;
    behave(f, "long-replies");
    struct chat c = {0};
    chat(f, &c, "QUIT\r\n");
    const char *eol = strstr(c.got.data, "\r\n");
    assert_non_null(eol);
    assert_true(eol - c.got.data > 512);
    strbuf_free(&c.got);
}

static void test_sink_tarpit_still_sends_whole_replies(void **state)
{
    struct fixture *f = *state;
    behave(f, "tarpit 1ms");
    struct chat c = {0};
    chat(f, &c, "NOOP\r\nQUIT\r\n");
    assert_true(strncmp(c.got.data, "220 sink1.sim ESMTP", 19) == 0);
    assert_non_null(strstr(c.got.data, "\r\n221 2.0.0 Bye\r\n"));
    strbuf_free(&c.got);
}

static void test_sink_no_greeting_stays_silent(void **state)
{
    struct fixture *f = *state;
    behave(f, "no-greeting");
    struct chat c = {0};
    c.read_ms = 300;
    chat(f, &c, NULL);
    assert_int_equal(c.got.len, 0);
    assert_false(c.closed);
    assert_false(c.greeted);
    strbuf_free(&c.got);
}

static void test_sink_greeting_delay_still_greets(void **state)
{
    struct fixture *f = *state;
    behave(f, "greeting-delay 50ms");
    struct chat c = {0};
    chat(f, &c, "QUIT\r\n");
    assert_true(strncmp(c.got.data, "220 ", 4) == 0);
    assert_true(c.closed);
    strbuf_free(&c.got);
}

static void test_sink_overlong_command_gets_500_and_session_continues(void **state)
{
    struct fixture *f = *state;
    char script[2048];
    memset(script, 'A', 1000);
    memcpy(script, "NOOP ", 5);
    assert_true(str_copy(script + 1000, sizeof script - 1000, "\r\nNOOP\r\nQUIT\r\n") == 0);
    struct chat c = {0};
    chat(f, &c, script);
    assert_non_null(strstr(c.got.data, "500 5.5.2 Line too long"));
    assert_non_null(strstr(c.got.data, "221 2.0.0"));
    strbuf_free(&c.got);
}

static void test_sink_behaviour_errors_name_the_word(void **state)
{
    struct fixture *f = *state;
    struct etrn_err err = {{0}};
    char *bad1[] = {"rejct-rcpt", "450"};
    assert_int_equal(sink_apply_words(f->sink, bad1, 2, &err), -1);
    assert_string_equal(err.msg, "unknown sink behaviour 'rejct-rcpt'");
    char *bad2[] = {"reject-rcpt", "250"};
    assert_int_equal(sink_apply_words(f->sink, bad2, 2, &err), -1);
    assert_non_null(strstr(err.msg, "not a 4xx or 5xx"));
    char *bad3[] = {"greeting-delay", "50"};
    assert_int_equal(sink_apply_words(f->sink, bad3, 2, &err), -1);
    assert_non_null(strstr(err.msg, "needs a unit"));
    /* a failed line changes nothing */
    char *mixed[] = {"reject-rcpt", "450", "bogus"};
    assert_int_equal(sink_apply_words(f->sink, mixed, 3, &err), -1);
    assert_int_equal(sink_behaviour(f->sink)->reject_rcpt, 0);
}

static void test_sink_behaviour_switch_applies_to_open_session(void **state)
{
    struct fixture *f = *state;
    /* The session is open when the behaviour changes: only the sink's live state decides. */
    behave(f, "reject-rcpt 550");
    behave(f, "reject-rcpt off");
    struct chat c = {0};
    chat(f, &c, "EHLO r.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@node.test>\r\nQUIT\r\n");
    assert_non_null(strstr(c.got.data, "250 2.1.5"));
    strbuf_free(&c.got);
}

static void test_sink_journal_file_round_trips(void **state)
{
    (void)state;
    char path[] = "/tmp/test_sink_journal.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct etrn_err err = {{0}};
    struct sink_journal *j;
    assert_int_equal(sink_journal_open(&j, path, &err), 0);
    char *rcpts[] = {"u@node.test", "odd,comma\t@node.test"};
    struct sink_journal_entry e;
    memset(&e, 0, sizeof e);
    e.kind = SINK_JOURNAL_DELIVERY;
    e.time_ms = 1795000000123;
    str_copy(e.sink, sizeof e.sink, "sink1");
    e.conn_id = 7;
    str_copy(e.peer, sizeof e.peer, "127.0.0.1:40000");
    e.status = SINK_DELIVERY_UNACKNOWLEDGED;
    e.mail_from = "";
    e.rcpts = rcpts;
    e.nrcpts = 2;
    e.message_id = "-";
    e.size = 42;
    memset(e.sha256, 'a', 64);
    assert_int_equal(sink_journal_append(j, &e, &err), 0);
    struct sink_journal_entry c;
    memset(&c, 0, sizeof c);
    c.kind = SINK_JOURNAL_CONNECT;
    c.time_ms = 1795000000999;
    str_copy(c.sink, sizeof c.sink, "sink2");
    c.conn_id = 8;
    str_copy(c.peer, sizeof c.peer, "127.0.0.1:40001");
    str_copy(c.event, sizeof c.event, "refused");
    assert_int_equal(sink_journal_append(j, &c, &err), 0);
    sink_journal_free(j);

    struct sink_journal *back;
    assert_int_equal(sink_journal_load(&back, path, &err), 0);
    assert_int_equal(sink_journal_count(back), 2);
    const struct sink_journal_entry *d = sink_journal_get(back, 0);
    assert_int_equal(d->kind, SINK_JOURNAL_DELIVERY);
    assert_int_equal(d->time_ms, 1795000000123);
    assert_string_equal(d->mail_from, "");
    assert_int_equal(d->nrcpts, 2);
    assert_string_equal(d->rcpts[1], "odd,comma\t@node.test");
    assert_string_equal(d->message_id, "-");
    assert_int_equal(d->status, SINK_DELIVERY_UNACKNOWLEDGED);
    assert_int_equal(d->size, 42);
    const struct sink_journal_entry *k = sink_journal_get(back, 1);
    assert_string_equal(k->event, "refused");
    assert_string_equal(k->sink, "sink2");
    sink_journal_free(back);

    /* a damaged line is reported with file:line */
    FILE *fp = fopen(path, "a");
    fputs("delivery\tnot-a-time\n", fp);
    fclose(fp);
    assert_int_equal(sink_journal_load(&back, path, &err), -1);
    assert_non_null(strstr(err.msg, ":3: "));
    unlink(path);
}

/* --- misbehaving clients (sim/misbehave.c) against the sink --------------------------- */

static void misbehave_at_sink(struct fixture *f, enum misbehave_kind kind, const char *script,
                              unsigned count, struct misbehave_result *r)
{
    struct sockaddr_in to;
    memcpy(&to, sink_address(f->sink, NULL), sizeof to);
    struct misbehave_spec s;
    misbehave_spec_default(&s);
    s.kind = kind;
    s.target = (struct sockaddr *)&to;
    s.target_len = sizeof to;
    s.script = script;
    s.count = count;
    s.interval_ms = 1;
    s.settle_ms = 300;
    struct etrn_err err = {{0}};
    assert_int_equal(misbehave_run(f->base, &s, r, &err), 0);
}

static void test_misbehave_pipelined_burst_gets_every_reply_in_order(void **state)
{
    struct fixture *f = *state;
    struct misbehave_result r;
    misbehave_at_sink(f, MISBEHAVE_PIPELINED_BURST, "NOOP\r\n", 20, &r);
    assert_true(r.connected);
    assert_int_equal(r.greeting_code, 220);
    assert_int_equal(r.nreplies, 21);             /* 20 NOOPs and the QUIT */
    assert_int_equal(misbehave_count_code(&r, 250), 20);
    assert_int_equal(r.codes[20], 221);
    assert_true(r.server_closed);
    assert_false(r.timed_out);
    misbehave_result_free(&r);
}

static void test_misbehave_slow_sender_is_answered(void **state)
{
    struct fixture *f = *state;
    struct misbehave_result r;
    misbehave_at_sink(f, MISBEHAVE_SLOW_SENDER, "NOOP\r\n", 0, &r);
    assert_int_equal(r.nreplies, 2);
    assert_int_equal(r.codes[0], 250);
    assert_int_equal(r.codes[1], 221);
    assert_int_equal(r.bytes_sent, 12);
    misbehave_result_free(&r);
}

static void test_misbehave_command_flood_is_answered_in_full(void **state)
{
    struct fixture *f = *state;
    struct misbehave_result r;
    misbehave_at_sink(f, MISBEHAVE_COMMAND_FLOOD, "RSET\r\n", 500, &r);
    assert_int_equal(misbehave_count_code(&r, 250), 500);
    assert_true(r.server_closed);
    misbehave_result_free(&r);
}

static void test_misbehave_garbage_and_overlong_lines_get_500_then_service(void **state)
{
    struct fixture *f = *state;
    struct misbehave_result r;
    misbehave_at_sink(f, MISBEHAVE_GARBAGE, "NOOP\r\n", 64, &r);
    assert_true(misbehave_count_code(&r, 500) >= 1);
    assert_int_equal(r.codes[r.nreplies - 2], 250);   /* the NOOP after the garbage */
    misbehave_result_free(&r);
    struct misbehave_result o;
    misbehave_at_sink(f, MISBEHAVE_OVERLONG_LINE, "NOOP\r\n", 2000, &o);
    assert_int_equal(o.nreplies, 3);
    assert_int_equal(o.codes[0], 500);
    assert_int_equal(o.codes[1], 250);
    assert_non_null(strstr(o.transcript.data, "Line too long"));
    misbehave_result_free(&o);
}

static void test_misbehave_disconnect_mid_command_leaves_sink_clean(void **state)
{
    struct fixture *f = *state;
    struct misbehave_result r;
    misbehave_at_sink(f, MISBEHAVE_DISCONNECT_MID_COMMAND, "MAIL FROM:<a@b.test>\r\n", 0, &r);
    assert_int_equal(r.bytes_sent, 10);
    assert_int_equal(r.nreplies, 0);
    assert_true(r.server_closed);   /* the sink saw our half-close and hung up */
    assert_int_equal(sink_session_count(f->sink), 0);
    misbehave_result_free(&r);
}

static void test_misbehave_refused_connection_is_a_result(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(1);   /* nothing listens on port 1 */
    struct misbehave_spec s;
    misbehave_spec_default(&s);
    s.target = (struct sockaddr *)&to;
    s.target_len = sizeof to;
    s.script = "ETRN node.test\r\n";
    struct misbehave_result r;
    struct etrn_err err = {{0}};
    assert_int_equal(misbehave_run(f->base, &s, &r, &err), 0);
    assert_false(r.connected);
    assert_int_equal(r.connect_errno, ECONNREFUSED);
    assert_false(r.timed_out);
    misbehave_result_free(&r);
    enum misbehave_kind k;
    assert_int_equal(misbehave_kind_parse("pipelined-burst", &k, &err), 0);
    assert_int_equal(k, MISBEHAVE_PIPELINED_BURST);
    assert_int_equal(misbehave_kind_parse("pipelined-brust", &k, &err), -1);
    assert_non_null(strstr(err.msg, "unknown misbehaviour 'pipelined-brust'"));
}

static void test_sink_starttls_with_openssl_client_then_delivers(void **state)
{
    struct fixture *f = *state;
    behave(f, "starttls");
    struct swaks s;
    strbuf_init(&s.out, 1 << 20);
    assert_true(str_format(s.cmd, sizeof s.cmd,
                           "printf 'EHLO r.test\\nMAIL FROM:<a@b.test>\\nRCPT TO:<u@node.test>\\n"
                           "DATA\\nSubject: tls\\n\\nhi\\n.\\nQUIT\\n' | timeout 20 openssl s_client "
                           "-connect 127.0.0.1:%d -starttls smtp -crlf -quiet 2>&1",
                           f->port) > 0);
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, swaks_run, &s, 30000, &err), 0);
    assert_non_null(strstr(s.out.data, "250 2.0.0 Message accepted"));
    const struct sink_journal_entry *e = only_delivery(f);
    assert_string_equal(e->rcpts[0], "u@node.test");
    strbuf_free(&s.out);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sink_records_envelope_message_id_and_unstuffed_digest),
        T(test_sink_accepts_swaks_and_journals_it),
        T(test_sink_reject_rcpt_450_seen_by_swaks),
        T(test_sink_reject_dot_554_records_rejected_message),
        T(test_sink_drop_after_dot_records_unacknowledged_and_sends_no_reply),
        T(test_sink_close_mid_reply_cuts_the_dot_reply),
        T(test_sink_reject_greeting_421_then_closes),
        T(test_sink_helo_only_refuses_ehlo_accepts_helo),
        T(test_sink_no_pipelining_drops_the_keyword),
        T(test_sink_accept_limit_gives_452_at_mail),
        T(test_sink_bare_lf_replies_have_no_cr),
        T(test_sink_multiline_replies_are_legal_and_odd),
        T(test_sink_long_replies_exceed_512_octets),
        T(test_sink_tarpit_still_sends_whole_replies),
        T(test_sink_no_greeting_stays_silent),
        T(test_sink_greeting_delay_still_greets),
        T(test_sink_overlong_command_gets_500_and_session_continues),
        T(test_sink_behaviour_errors_name_the_word),
        T(test_sink_behaviour_switch_applies_to_open_session),
        cmocka_unit_test(test_sink_journal_file_round_trips),
        T(test_sink_starttls_with_openssl_client_then_delivers),
        T(test_misbehave_pipelined_burst_gets_every_reply_in_order),
        T(test_misbehave_slow_sender_is_answered),
        T(test_misbehave_command_flood_is_answered_in_full),
        T(test_misbehave_garbage_and_overlong_lines_get_500_then_service),
        T(test_misbehave_disconnect_mid_command_leaves_sink_clean),
        T(test_misbehave_refused_connection_is_a_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
