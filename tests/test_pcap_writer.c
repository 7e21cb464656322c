/* test_pcap_writer.c — captures written by pcap/pcap_writer.c, read back by tcpdump. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcap_reader.h"
#include "pcap_writer.h"
#include "strbuf.h"

static char capture_dir[64];
static char capture_path[128];

static int setup(void **state)
{
    (void)state;
    if (str_copy(capture_dir, sizeof capture_dir, "/tmp/test_pcap_writer.XXXXXX") < 0
        || mkdtemp(capture_dir) == NULL)
        return -1;
    return str_format(capture_path, sizeof capture_path, "%s/run.pcap", capture_dir) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(capture_path);
    rmdir(capture_dir);
    return 0;
}

static struct sockaddr_in v4(const char *ip, int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return sin;
}

/* Runs a shell command, returns its stdout+stderr (bounded) and exit status. */
static int run_capture(const char *cmd, struct strbuf *out)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        if (strbuf_append(out, buf, n) < 0)
            break;
    return pclose(p);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

static void write_smtp_session(struct pcap_writer *pw)
{
    struct sockaddr_in client = v4("127.0.0.1", 40001);
    struct sockaddr_in server = v4("127.0.0.2", 2526);
    struct pcap_tcp_flow *f = pcap_tcp_flow_open(pw, (struct sockaddr *)&client,
                                                 (struct sockaddr *)&server);
    assert_non_null(f);
    const char *greet = "220 sink1 ESMTP\r\n";
    const char *ehlo = "EHLO relay.test\r\n";
    const char *etrn = "ETRN node.test\r\n";
    const char *ok = "250 OK queuing started\r\n";
    pcap_tcp_flow_data(f, PCAP_FROM_SERVER, greet, strlen(greet));
    pcap_tcp_flow_data(f, PCAP_FROM_CLIENT, ehlo, strlen(ehlo));
    pcap_tcp_flow_data(f, PCAP_FROM_CLIENT, etrn, strlen(etrn));
    pcap_tcp_flow_data(f, PCAP_FROM_SERVER, ok, strlen(ok));
    pcap_tcp_flow_close(f, PCAP_FROM_CLIENT);
}

static void test_pcap_tcpdump_shows_smtp_commands_and_replies(void **state)
{
    (void)state;
    struct etrn_err err = {0};
    struct pcap_writer *pw;
    assert_int_equal(pcap_writer_open(&pw, capture_path, &err), 0);
    write_smtp_session(pw);
    pcap_writer_close(pw);

    char cmd[256];
    assert_true(str_format(cmd, sizeof cmd, "tcpdump -r %s -nn -A 2>&1", capture_path) >= 0);
    struct strbuf out;
    strbuf_init(&out, 1 << 20);
    int rc = run_capture(cmd, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out.data, "220 sink1 ESMTP"));
    assert_non_null(strstr(out.data, "EHLO relay.test"));
    assert_non_null(strstr(out.data, "ETRN node.test"));
    assert_non_null(strstr(out.data, "250 OK queuing started"));
    assert_non_null(strstr(out.data, "127.0.0.1.40001 > 127.0.0.2.2526"));
    assert_null(strstr(out.data, "truncated"));
    assert_null(strstr(out.data, "bad"));
    strbuf_free(&out);
}

static void test_pcap_checksums_verify_in_tcpdump(void **state)
{
    (void)state;
    struct etrn_err err = {0};
    struct pcap_writer *pw;
    assert_int_equal(pcap_writer_open(&pw, capture_path, &err), 0);
    write_smtp_session(pw);
    struct sockaddr_in dns = v4("127.0.0.1", 5353), res = v4("127.0.0.1", 40002);
    const unsigned char query[12] = {0x12, 0x34, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    pcap_udp_packet(pw, (struct sockaddr *)&res, (struct sockaddr *)&dns, query, sizeof query);
    pcap_writer_close(pw);

    char cmd[256];
    assert_true(str_format(cmd, sizeof cmd, "tcpdump -r %s -nn -vv 2>&1", capture_path) >= 0);
    struct strbuf out;
    strbuf_init(&out, 1 << 20);
    assert_int_equal(run_capture(cmd, &out), 0);
    /* -vv verifies IP/TCP/UDP checksums and prints "incorrect" on a mismatch. */
    assert_null(strstr(out.data, "incorrect"));
    assert_non_null(strstr(out.data, "cksum"));
    strbuf_free(&out);
}

static void test_pcap_syn_filter_counts_each_handshake(void **state)
{
    (void)state;
    struct etrn_err err = {0};
    struct pcap_writer *pw;
    assert_int_equal(pcap_writer_open(&pw, capture_path, &err), 0);
    write_smtp_session(pw);
    write_smtp_session(pw);
    struct sockaddr_in c = v4("127.0.0.1", 40003), s = v4("127.0.0.3", 2526);
    pcap_tcp_refused(pw, (struct sockaddr *)&c, (struct sockaddr *)&s);
    pcap_writer_close(pw);

    char cmd[256];
    assert_true(str_format(cmd, sizeof cmd,
                                "tcpdump -r %s -nn 'tcp[tcpflags] & tcp-syn != 0' 2>/dev/null",
                                capture_path) >= 0);
    struct strbuf out;
    strbuf_init(&out, 1 << 20);
    assert_int_equal(run_capture(cmd, &out), 0);
    /* Two sessions: SYN + SYN-ACK each; the refused attempt: one SYN. */
    assert_int_equal(count_lines(out.data), 5);
    strbuf_reset(&out);
    assert_true(str_format(cmd, sizeof cmd,
                                "tcpdump -r %s -nn 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null",
                                capture_path) >= 0);
    assert_int_equal(run_capture(cmd, &out), 0);
    assert_int_equal(count_lines(out.data), 1);
    strbuf_free(&out);
}

static void test_pcap_large_data_split_into_segments_with_contiguous_seq(void **state)
{
    (void)state;
    struct etrn_err err = {0};
    struct pcap_writer *pw;
    assert_int_equal(pcap_writer_open(&pw, capture_path, &err), 0);
    struct sockaddr_in client = v4("127.0.0.1", 40004), server = v4("127.0.0.2", 2526);
    struct pcap_tcp_flow *f = pcap_tcp_flow_open(pw, (struct sockaddr *)&client,
                                                 (struct sockaddr *)&server);
    static char big[5000];
    memset(big, 'x', sizeof big);
    pcap_tcp_flow_data(f, PCAP_FROM_CLIENT, big, sizeof big);
    pcap_tcp_flow_reset(f, PCAP_FROM_SERVER);
    pcap_writer_close(pw);

    char cmd[256];
    assert_true(str_format(cmd, sizeof cmd,
                                "tcpdump -r %s -nn -S 'tcp[tcpflags] & tcp-push != 0' 2>/dev/null",
                                capture_path) >= 0);
    struct strbuf out;
    strbuf_init(&out, 1 << 20);
    assert_int_equal(run_capture(cmd, &out), 0);
    assert_int_equal(count_lines(out.data), 4);     /* 1400+1400+1400+800 */
    /* Absolute sequence numbers: the client ISN is 1000 (the first flow), +1 for the SYN. */
    assert_non_null(strstr(out.data, "seq 1001:2401"));
    assert_non_null(strstr(out.data, "seq 5201:6001"));
    strbuf_free(&out);
}

static void test_pcap_null_writer_is_a_no_op(void **state)
{
    (void)state;
    struct sockaddr_in a = v4("127.0.0.1", 1), b = v4("127.0.0.2", 2);
    struct pcap_tcp_flow *f = pcap_tcp_flow_open(NULL, (struct sockaddr *)&a,
                                                 (struct sockaddr *)&b);
    assert_null(f);
    pcap_tcp_flow_data(NULL, PCAP_FROM_CLIENT, "x", 1);
    pcap_tcp_flow_close(NULL, PCAP_FROM_CLIENT);
    pcap_tcp_flow_reset(NULL, PCAP_FROM_CLIENT);
    pcap_tcp_refused(NULL, (struct sockaddr *)&a, (struct sockaddr *)&b);
    pcap_udp_packet(NULL, (struct sockaddr *)&a, (struct sockaddr *)&b, "x", 1);
    pcap_writer_close(NULL);
}

static void test_pcap_open_fails_with_path_in_message(void **state)
{
    (void)state;
    struct etrn_err err = {0};
    struct pcap_writer *pw = (struct pcap_writer *)1;
    assert_int_equal(pcap_writer_open(&pw, "/nonexistent-dir/x.pcap", &err), -1);
    assert_null(pw);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.pcap"));
}

static void test_pcap_reader_reads_back_what_the_writer_wrote(void **state)
{
    (void)state;
    struct etrn_err err = {0};
    struct pcap_writer *pw;
    assert_int_equal(pcap_writer_open(&pw, capture_path, &err), 0);
    write_smtp_session(pw);
    struct sockaddr_in6 a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.sin6_family = b.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    b.sin6_addr = in6addr_loopback;
    a.sin6_port = htons(5300);
    b.sin6_port = htons(40000);
    pcap_udp_packet(pw, (struct sockaddr *)&a, (struct sockaddr *)&b, "dns!", 4);
    pcap_writer_close(pw);

    struct pcap_reader *rd;
    assert_int_equal(pcap_reader_open(&rd, capture_path, &err), 0);
    struct pcap_packet p;
    int n = 0, syns = 0, udp = 0;
    struct strbuf client_bytes;
    strbuf_init(&client_bytes, 4096);
    while (n < 100 && pcap_reader_next(rd, &p, &err) == 1) {
        n++;
        if (p.proto == IPPROTO_TCP && (p.tcp_flags & PCAP_TCP_SYN))
            syns++;
        if (p.proto == IPPROTO_TCP && p.len > 0
            && ntohs(((struct sockaddr_in *)&p.dst)->sin_port) == 2526)
            strbuf_append(&client_bytes, p.payload, p.len);
        if (p.proto == IPPROTO_UDP) {
            udp++;
            assert_int_equal(p.src.ss_family, AF_INET6);
            assert_int_equal(p.len, 4);
            assert_memory_equal(p.payload, "dns!", 4);
        }
    }
    pcap_reader_close(rd);
    assert_int_equal(n, 11);   /* 3 handshake + 4 data + 3 close + 1 UDP */
    assert_int_equal(syns, 2);
    assert_int_equal(udp, 1);
    assert_string_equal(client_bytes.data, "EHLO relay.test\r\nETRN node.test\r\n");
    strbuf_free(&client_bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pcap_tcpdump_shows_smtp_commands_and_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pcap_checksums_verify_in_tcpdump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pcap_syn_filter_counts_each_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pcap_large_data_split_into_segments_with_contiguous_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pcap_reader_reads_back_what_the_writer_wrote, setup, teardown),
        cmocka_unit_test(test_pcap_null_writer_is_a_no_op),
        cmocka_unit_test(test_pcap_open_fails_with_path_in_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
