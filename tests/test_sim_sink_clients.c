/* test_sim_sink_clients.c — every sink behaviour observed from outside by real SMTP
 * clients: etrnd's delivery agent (server/smtp_client.h) and swaks, talking to a sink
 * through its link in a simulated world; the world's capture read back by tcpdump shows
 * what went over the wire (the tarpit's one-byte segments, the cut reply).
 *
 * Guarantees of the test: every client run is bounded (watchdog timer, `timeout`), and
 * each behaviour is judged by what the client saw, not by the sink's own state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "smtp_client.h"
#include "strbuf.h"
#include "world.h"

#define WATCHDOG_MS 20000

struct fixture {
    struct event_base *base;
    struct sim_world *w;
    char dir[64];
    char pcap[128];
    char body_path[128];
    int body_fd;
    int port;
    /* the delivery agent's run */
    struct smtp_client *c;
    struct smtp_client_config cfg;
    int ready, ready_ok, sent, closed;
    enum smtp_client_failure failure;
    char error[256];
    struct smtp_message_result res;
    int rcpt_code0;
    int pipelining, tls;
};

static int free_port(const char *addr)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        inet_pton(AF_INET, addr, &sin.sin_addr);
        socklen_t len = sizeof sin;
        if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0
            || getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        close(fd);
        return ntohs(sin.sin_port);
    }
    return -1;
}

static const char *message_text =
    "Message-ID: <agent-1@b.test>\r\n"
    "Subject: sink behaviours\r\n"
    "\r\n"
    "hello\r\n";

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    str_copy(f->dir, sizeof f->dir, "/tmp/test_sim_sink.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    str_format(f->pcap, sizeof f->pcap, "%s/run.pcap", f->dir);
    str_format(f->body_path, sizeof f->body_path, "%s/body.eml", f->dir);
    f->body_fd = open(f->body_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (f->body_fd < 0
        || write(f->body_fd, message_text, strlen(message_text)) != (ssize_t)strlen(message_text))
        return -1;
    f->base = event_base_new();
    f->port = free_port("127.0.0.120");
    struct sim_world_options o;
    sim_world_options_default(&o);
    o.dns_listen = NULL;
    o.sink_port = f->port;
    o.sink_addr_first = "127.0.0.120";
    o.pcap_path = f->pcap;
    struct etrn_err err = {{0}};
    if (f->base == NULL || f->port < 0 || sim_world_new(&f->w, f->base, &o, &err) < 0
        || sim_world_apply_line(f->w, "sink sink1", &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    f->cfg.helo_name = "relay.test";
    f->cfg.peer_name = "sink1.sim";
    f->cfg.timeout_connect_ms = 5000;
    f->cfg.timeout_greeting_ms = 5000;
    f->cfg.timeout_mail_ms = 5000;
    f->cfg.timeout_rcpt_ms = 5000;
    f->cfg.timeout_data_ms = 5000;
    f->cfg.timeout_block_ms = 5000;
    f->cfg.timeout_dot_ms = 5000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    smtp_client_free(f->c);
    sim_world_free(f->w);
    event_base_free(f->base);
    close(f->body_fd);
    unlink(f->body_path);
    unlink(f->pcap);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void behave(struct fixture *f, const char *words)
{
    char line[256];
    str_format(line, sizeof line, "sink-behave sink1 %s", words);
    struct etrn_err err = {{0}};
    int r = sim_world_apply_line(f->w, line, &err);
    if (r < 0)
        fprintf(stderr, "%s: %s\n", line, err.msg);
    assert_int_equal(r, 0);
}

/* --- etrnd's delivery agent ---------------------------------------------------------- */

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop until *flag is set or the watchdog fires (a bound, not an assertion). */
static void loop_until(struct fixture *f, const int *flag)
{
    struct event *dog = evtimer_new(f->base, on_watchdog, f->base);
    struct timeval tv = {WATCHDOG_MS / 1000, 0};
    evtimer_add(dog, &tv);
    for (int i = 0; i < 1000000 && !*flag; i++) {
        if (event_base_loop(f->base, EVLOOP_ONCE) < 0 || !evtimer_pending(dog, NULL))
            break;
    }
    event_free(dog);
}

static void on_ready(struct smtp_client *c, int ok, void *arg)
{
    struct fixture *f = arg;
    f->ready = 1;
    f->ready_ok = ok;
    f->failure = smtp_client_failure(c);
    str_copy(f->error, sizeof f->error, smtp_client_error(c));
    f->pipelining = smtp_client_pipelining(c);
    f->tls = smtp_client_tls_active(c);
}

static void on_sent(struct smtp_client *c, const struct smtp_message_result *res, void *arg)
{
    (void)c;
    struct fixture *f = arg;
    f->res = *res;
    f->rcpt_code0 = res->rcpt_code != NULL ? res->rcpt_code[0] : 0;
    f->res.rcpt_code = NULL;
    f->res.rcpt_reply = NULL;
    f->sent = 1;
}

static void on_closed(struct smtp_client *c, void *arg)
{
    (void)c;
    struct fixture *f = arg;
    f->closed = 1;
}

/* Connects to sink1's public address (through its link); returns on_ready's ok. */
static int agent_connect(struct fixture *f)
{
    socklen_t len;
    const struct sockaddr *sa = sim_world_node_sockaddr(f->w, "sink1", &len);
    assert_non_null(sa);
    struct etrn_err err = {{0}};
    f->ready = f->sent = f->closed = 0;
    assert_int_equal(smtp_client_connect(&f->c, f->base, sa, len, &f->cfg, on_ready, f, &err),
                     0);
    loop_until(f, &f->ready);
    assert_true(f->ready);
    return f->ready_ok;
}

/* Connects and sends the message to u@node.test; returns the outcome. */
static enum smtp_msg_outcome agent_deliver(struct fixture *f)
{
    assert_true(agent_connect(f));
    char *rcpts[] = {"u@node.test"};
    struct smtp_message m = {"a@b.test", rcpts, 1, strlen(message_text), f->body_fd};
    struct etrn_err err = {{0}};
    assert_int_equal(smtp_client_send(f->c, &m, on_sent, f, &err), 0);
    loop_until(f, &f->sent);
    assert_true(f->sent);
    return f->res.outcome;
}

static void agent_quit(struct fixture *f)
{
    if (f->c == NULL)
        return;
    smtp_client_quit(f->c, on_closed, f);
    loop_until(f, &f->closed);
    smtp_client_free(f->c);
    f->c = NULL;
}

/* --- swaks and tcpdump, run beside the loop ------------------------------------------ */

struct cmd {
    char line[1024];
    struct strbuf out;
    int status;
};

static int cmd_run(void *arg)
{
    struct cmd *c = arg;
    FILE *p = popen(c->line, "r");
    if (p == NULL)
        return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        strbuf_append(&c->out, buf, n);
    c->status = pclose(p);
    return 0;
}

static void run_cmd(struct fixture *f, struct cmd *c)
{
    strbuf_init(&c->out, 8 << 20);
    strbuf_append(&c->out, "", 0);
    struct etrn_err err = {{0}};
    assert_int_equal(sim_run_beside(f->base, cmd_run, c, 60000, &err), 0);
    if (c->out.data == NULL)
        strbuf_append(&c->out, "", 0);
}

static void swaks(struct fixture *f, struct cmd *c, const char *extra)
{
    assert_true(str_format(c->line, sizeof c->line,
                           "timeout 20 swaks --server %s:%d --to u@node.test --from a@b.test "
                           "--timeout 5 %s 2>&1",
                           sim_world_sink_addr(f->w, "sink1"), f->port, extra) > 0);
    run_cmd(f, c);
}

/* --- tests ----------------------------------------------------------------------------- */

static void test_sink_normal_delivery_by_agent_and_swaks(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    assert_int_equal(f->res.code, 250);
    assert_true(f->pipelining);
    agent_quit(f);
    struct cmd s;
    swaks(f, &s, "");
    assert_int_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, "<-  250 2.0.0 Message accepted"));
    strbuf_free(&s.out);
}

static void test_sink_reject_mail_451_defers_agent_and_fails_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-mail 451");
    assert_int_equal(agent_deliver(f), SMTP_MSG_DEFERRED);
    assert_int_equal(f->res.code, 451);
    agent_quit(f);
    behave(f, "reject-mail 550");
    struct cmd s;
    swaks(f, &s, "");
    assert_int_not_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, "<** 550 "));
    assert_non_null(strstr(s.out.data, "(reject-mail)"));
    strbuf_free(&s.out);
}

static void test_sink_reject_rcpt_550_fails_every_recipient(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-rcpt 550");
    assert_int_equal(agent_deliver(f), SMTP_MSG_RCPTS_FAILED);
    assert_int_equal(f->rcpt_code0, 550);
    agent_quit(f);
}

static void test_sink_reject_data_554_rejects_agent_and_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-data 554");
    assert_int_equal(agent_deliver(f), SMTP_MSG_REJECTED);
    assert_int_equal(f->res.code, 554);
    assert_false(f->res.dot_sent);
    agent_quit(f);
    struct cmd s;
    swaks(f, &s, "");
    assert_int_not_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, "<** 554 5.7.1 DATA refused"));
    strbuf_free(&s.out);
}

static void test_sink_reject_dot_451_defers_after_the_dot(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-dot 451");
    assert_int_equal(agent_deliver(f), SMTP_MSG_DEFERRED);
    assert_int_equal(f->res.code, 451);
    assert_true(f->res.dot_sent);
    agent_quit(f);
}

static void test_sink_reject_greeting_421_refuses_agent_and_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "reject-greeting 421");
    assert_false(agent_connect(f));
    assert_int_equal(f->failure, SMTP_CLIENT_REFUSED);
    assert_non_null(strstr(f->error, "421"));
    smtp_client_free(f->c);
    f->c = NULL;
    struct cmd s;
    swaks(f, &s, "");
    assert_int_not_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, "<** 421 "));
    strbuf_free(&s.out);
}

/* The duplicate window: the message went out whole, the reply never came. */
static void test_sink_drop_after_dot_loses_the_connection_after_the_dot(void **state)
{
    struct fixture *f = *state;
    behave(f, "drop-after-dot");
    assert_int_equal(agent_deliver(f), SMTP_MSG_CONN_LOST);
    assert_true(f->res.dot_sent);
    agent_quit(f);
    struct cmd s;
    swaks(f, &s, "");
    assert_int_not_equal(s.status, 0);
    assert_non_null(strstr(s.out.data, " -> ."));
    assert_null(strstr(s.out.data, "Message accepted"));
    strbuf_free(&s.out);
}

static void test_sink_close_mid_reply_cuts_replies_at_the_chosen_stage(void **state)
{
    struct fixture *f = *state;
    behave(f, "close-mid-reply dot");
    enum smtp_msg_outcome o = agent_deliver(f);
    assert_true(o == SMTP_MSG_CONN_LOST);
    assert_true(f->res.dot_sent);
    agent_quit(f);
    behave(f, "close-mid-reply rcpt");
    o = agent_deliver(f);
    assert_true(o == SMTP_MSG_CONN_LOST || o == SMTP_MSG_RCPTS_FAILED);
    assert_false(f->res.dot_sent);
    agent_quit(f);
    /* the capture shows the half reply "250 2.1" and nothing after it on that session */
    sim_world_free(f->w);
    f->w = NULL;
    struct cmd t;
    assert_true(str_format(t.line, sizeof t.line, "tcpdump -r %s -nn -A 2>&1", f->pcap) > 0);
    strbuf_init(&t.out, 8 << 20);
    assert_int_equal(cmd_run(&t), 0);
    assert_non_null(strstr(t.out.data, "RCPT TO:<u@node.test>"));
    assert_null(strstr(t.out.data, "(this reply is cut)\r\n"));
    strbuf_free(&t.out);
}

static void test_sink_helo_only_makes_agent_fall_back_to_helo(void **state)
{
    struct fixture *f = *state;
    behave(f, "helo-only");
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    assert_false(f->pipelining);   /* HELO carries no extensions */
    agent_quit(f);
    struct cmd s;
    swaks(f, &s, "");
    assert_non_null(strstr(s.out.data, " -> EHLO "));
    assert_non_null(strstr(s.out.data, "<** 500 "));
    strbuf_free(&s.out);
}

static void test_sink_no_pipelining_is_not_offered_to_agent_or_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "no-pipelining");
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    assert_false(f->pipelining);
    agent_quit(f);
    struct cmd s;
    swaks(f, &s, "--pipeline");
    assert_null(strstr(s.out.data, "PIPELINING"));
    /* lock-step: MAIL's reply comes before RCPT is sent */
    const char *mail = strstr(s.out.data, " -> MAIL FROM:");
    const char *rcpt = strstr(s.out.data, " -> RCPT TO:");
    const char *ok = strstr(s.out.data, "<-  250 2.1.0");
    assert_true(mail != NULL && rcpt != NULL && ok != NULL);
    assert_true(mail < ok && ok < rcpt);
    strbuf_free(&s.out);
}

/* One byte at a time: the capture holds many one-octet segments from the node, and the
 * agent still gets every reply whole. */
static void test_sink_tarpit_sends_one_byte_per_segment(void **state)
{
    struct fixture *f = *state;
    behave(f, "tarpit 2ms");
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    agent_quit(f);
    sim_world_free(f->w);
    f->w = NULL;
    struct cmd t;
    char from[64];
    str_format(from, sizeof from, "127.0.0.120.%d > ", f->port);
    assert_true(str_format(t.line, sizeof t.line, "tcpdump -r %s -nn 2>&1", f->pcap) > 0);
    strbuf_init(&t.out, 8 << 20);
    assert_int_equal(cmd_run(&t), 0);
    size_t ones = 0;
    for (const char *p = t.out.data; (p = strstr(p, from)) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *len = strstr(p, "length 1\n");
        if (len != NULL && eol != NULL && len < eol)
            ones++;
    }
    assert_true(ones >= 100);   /* greeting, EHLO reply, ... each byte alone */
    strbuf_free(&t.out);
}

static void test_sink_multiline_replies_are_understood_by_agent(void **state)
{
    struct fixture *f = *state;
    behave(f, "multiline-replies");
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    assert_int_equal(f->res.code, 250);
    agent_quit(f);
}

static void test_sink_bare_lf_replies_reach_swaks_without_cr(void **state)
{
    struct fixture *f = *state;
    behave(f, "bare-lf-replies");
    struct cmd s;
    swaks(f, &s, "");
    assert_int_equal(s.status, 0);   /* swaks tolerates LF-only replies */
    assert_non_null(strstr(s.out.data, "Message accepted"));
    strbuf_free(&s.out);
    sim_world_free(f->w);
    f->w = NULL;
    struct cmd t;
    assert_true(str_format(t.line, sizeof t.line, "tcpdump -r %s -nn -A 2>&1", f->pcap) > 0);
    strbuf_init(&t.out, 8 << 20);
    assert_int_equal(cmd_run(&t), 0);
    assert_non_null(strstr(t.out.data, "250 2.1.0 Sender OK\n"));
    assert_null(strstr(t.out.data, "250 2.1.0 Sender OK\r\n"));
    strbuf_free(&t.out);
}

static void test_sink_long_replies_exceed_512_octets_at_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "long-replies");
    struct cmd s;
    swaks(f, &s, "");
    const char *g = strstr(s.out.data, "<-  220 ");
    assert_non_null(g);
    const char *eol = strchr(g, '\n');
    assert_non_null(eol);
    assert_true(eol - g > 512);
    strbuf_free(&s.out);
}

static void test_sink_greeting_delay_outlasts_a_short_greeting_timeout(void **state)
{
    struct fixture *f = *state;
    behave(f, "greeting-delay 2s");
    f->cfg.timeout_greeting_ms = 200;
    assert_false(agent_connect(f));
    assert_int_equal(f->failure, SMTP_CLIENT_TIMEOUT);
    smtp_client_free(f->c);
    f->c = NULL;
    behave(f, "greeting-delay 100ms");
    f->cfg.timeout_greeting_ms = 10000;
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    agent_quit(f);
}

static void test_sink_no_greeting_times_the_agent_out(void **state)
{
    struct fixture *f = *state;
    behave(f, "no-greeting");
    f->cfg.timeout_greeting_ms = 200;
    assert_false(agent_connect(f));
    assert_int_equal(f->failure, SMTP_CLIENT_TIMEOUT);
    smtp_client_free(f->c);
    f->c = NULL;
}

static void test_sink_accept_limit_gives_452_to_the_second_swaks(void **state)
{
    struct fixture *f = *state;
    behave(f, "accept-limit 1");
    struct cmd a, b;
    swaks(f, &a, "");
    swaks(f, &b, "");
    assert_int_equal(a.status, 0);
    assert_int_not_equal(b.status, 0);
    assert_non_null(strstr(b.out.data, "<** 452 "));
    strbuf_free(&a.out);
    strbuf_free(&b.out);
}

static void test_sink_starttls_is_used_by_the_agent(void **state)
{
    struct fixture *f = *state;
    behave(f, "starttls");
    f->cfg.starttls = 1;
    assert_int_equal(agent_deliver(f), SMTP_MSG_SENT);
    assert_true(f->tls);
    agent_quit(f);
}

/* A behaviour switched while a session is open applies from its next reply on. */
static void test_sink_behaviour_switch_hits_an_open_agent_session(void **state)
{
    struct fixture *f = *state;
    assert_true(agent_connect(f));
    behave(f, "reject-mail 452");
    char *rcpts[] = {"u@node.test"};
    struct smtp_message m = {"a@b.test", rcpts, 1, strlen(message_text), f->body_fd};
    struct etrn_err err = {{0}};
    assert_int_equal(smtp_client_send(f->c, &m, on_sent, f, &err), 0);
    loop_until(f, &f->sent);
    assert_int_equal(f->res.outcome, SMTP_MSG_DEFERRED);
    assert_int_equal(f->res.code, 452);
    agent_quit(f);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sink_normal_delivery_by_agent_and_swaks),
        T(test_sink_reject_mail_451_defers_agent_and_fails_swaks),
        T(test_sink_reject_rcpt_550_fails_every_recipient),
        T(test_sink_reject_data_554_rejects_agent_and_swaks),
        T(test_sink_reject_dot_451_defers_after_the_dot),
        T(test_sink_reject_greeting_421_refuses_agent_and_swaks),
        T(test_sink_drop_after_dot_loses_the_connection_after_the_dot),
        T(test_sink_close_mid_reply_cuts_replies_at_the_chosen_stage),
        T(test_sink_helo_only_makes_agent_fall_back_to_helo),
        T(test_sink_no_pipelining_is_not_offered_to_agent_or_swaks),
        T(test_sink_tarpit_sends_one_byte_per_segment),
        T(test_sink_multiline_replies_are_understood_by_agent),
        T(test_sink_bare_lf_replies_reach_swaks_without_cr),
        T(test_sink_long_replies_exceed_512_octets_at_swaks),
        T(test_sink_greeting_delay_outlasts_a_short_greeting_timeout),
        T(test_sink_no_greeting_times_the_agent_out),
        T(test_sink_accept_limit_gives_452_to_the_second_swaks),
        T(test_sink_starttls_is_used_by_the_agent),
        T(test_sink_behaviour_switch_hits_an_open_agent_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
