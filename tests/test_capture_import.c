/* test_capture_import.c — capture import (conformance/capture_import.c), scenario making
 * (capture_scenario.c) and replay (replay.c).
 *
 *   make build/tests/test_capture_import && build/tests/test_capture_import
 *
 * Captures come from two places: tcpdump on "lo" (and "any") recording a real session with a
 * small scripted SMTP server in this process (skipped when tcpdump cannot capture), and
 * captures built byte by byte here, with each link type, pcapng, and deliberate damage
 * (holes, reordering, truncation, wrong link type, garbage, empty files). bin/etrnd (or
 * $ETRNKIT_BIN/etrnd), when built, is captured too and replayed with a test-only defect.
 * KEEP_TMP=1 keeps the captures made in /tmp/test_capture_import.XXXXXX. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ldns/ldns.h>

#include "capture_import.h"
#include "capture_scenario.h"
#include "replay.h"
#include "scenario.h"
#include "strbuf.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    str_copy(tmpdir, sizeof tmpdir, "/tmp/test_capture_import.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    if (getenv("KEEP_TMP")) return 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- building captures ------------------------------------------------------------------- */

struct pw {
    struct strbuf b;
    int link;
    int ng;            /* pcapng */
};

static void put16le(struct strbuf *b, uint16_t v) { unsigned char x[2] = {v & 255, v >> 8}; strbuf_append(b, x, 2); }
static void put32le(struct strbuf *b, uint32_t v)
{
    unsigned char x[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
    strbuf_append(b, x, 4);
}

static void pw_begin(struct pw *w, int link, int ng)
{
    strbuf_init(&w->b, 64u * 1024 * 1024);
    w->link = link;
    w->ng = ng;
    if (!ng) {
        put32le(&w->b, 0xa1b2c3d4);
        put16le(&w->b, 2);
        put16le(&w->b, 4);
        put32le(&w->b, 0);
        put32le(&w->b, 0);
        put32le(&w->b, 262144);
        put32le(&w->b, (uint32_t)link);
        return;
    }
    /* section header block, then one interface description block */
    put32le(&w->b, 0x0a0d0d0a);
    put32le(&w->b, 28);
    put32le(&w->b, 0x1a2b3c4d);
    put16le(&w->b, 1);
    put16le(&w->b, 0);
    put32le(&w->b, 0xffffffff);
    put32le(&w->b, 0xffffffff);
    put32le(&w->b, 28);
    put32le(&w->b, 1);
    put32le(&w->b, 20);
    put16le(&w->b, (uint16_t)link);
    put16le(&w->b, 0);
    put32le(&w->b, 262144);
    put32le(&w->b, 20);
}

static void pw_record(struct pw *w, const unsigned char *frame, size_t n)
{
    static uint32_t t = 1700000000;
    t++;
    if (!w->ng) {
        put32le(&w->b, t);
        put32le(&w->b, 0);
        put32le(&w->b, (uint32_t)n);
        put32le(&w->b, (uint32_t)n);
        strbuf_append(&w->b, frame, n);
        return;
    }
    size_t pad = (4 - n % 4) % 4;
    uint32_t total = (uint32_t)(32 + n + pad);
    put32le(&w->b, 6);
    put32le(&w->b, total);
    put32le(&w->b, 0);
    put32le(&w->b, 0);
    put32le(&w->b, t);
    put32le(&w->b, (uint32_t)n);
    put32le(&w->b, (uint32_t)n);
    strbuf_append(&w->b, frame, n);
    strbuf_append(&w->b, "\0\0\0", pad);
    put32le(&w->b, total);
}

/* One IP packet (v4 or v6) with a TCP or UDP header, behind w's link header. */
static void pw_ip(struct pw *w, int proto, const char *src, int sport, const char *dst, int dport,
                  uint32_t seq, uint32_t ack, unsigned flags, const void *data, size_t n)
{
    unsigned char f[70000];
    size_t o = 0;
    int v6 = strchr(src, ':') != NULL;
    unsigned ethertype = v6 ? 0x86dd : 0x0800;
    switch (w->link) {
    case 1:   /* Ethernet */
        memset(f, 0, 12);
        f[12] = (unsigned char)(ethertype >> 8);
        f[13] = ethertype & 255;
        o = 14;
        break;
    case 113: /* Linux SLL */
        memset(f, 0, 16);
        f[14] = (unsigned char)(ethertype >> 8);
        f[15] = ethertype & 255;
        o = 16;
        break;
    case 276: /* Linux SLL2 */
        memset(f, 0, 20);
        f[0] = (unsigned char)(ethertype >> 8);
        f[1] = ethertype & 255;
        o = 20;
        break;
    case 0:   /* BSD loopback, host byte order */
        f[0] = v6 ? 30 : 2;
        f[1] = f[2] = f[3] = 0;
        o = 4;
        break;
    default:  /* raw */
        o = 0;
    }
    size_t l4 = proto == IPPROTO_TCP ? 20 : 8;
    size_t iph = v6 ? 40 : 20;
    unsigned char *ip = f + o;
    memset(ip, 0, iph);
    if (v6) {
        ip[0] = 0x60;
        ip[4] = (unsigned char)((l4 + n) >> 8);
        ip[5] = (l4 + n) & 255;
        ip[6] = (unsigned char)proto;
        ip[7] = 64;
        inet_pton(AF_INET6, src, ip + 8);
        inet_pton(AF_INET6, dst, ip + 24);
    } else {
        ip[0] = 0x45;
        ip[2] = (unsigned char)((iph + l4 + n) >> 8);
        ip[3] = (iph + l4 + n) & 255;
        ip[8] = 64;
        ip[9] = (unsigned char)proto;
        inet_pton(AF_INET, src, ip + 12);
        inet_pton(AF_INET, dst, ip + 16);
    }
    unsigned char *t = ip + iph;
    memset(t, 0, l4);
    t[0] = (unsigned char)(sport >> 8);
    t[1] = sport & 255;
    t[2] = (unsigned char)(dport >> 8);
    t[3] = dport & 255;
    if (proto == IPPROTO_TCP) {
        t[4] = seq >> 24; t[5] = (seq >> 16) & 255; t[6] = (seq >> 8) & 255; t[7] = seq & 255;
        t[8] = ack >> 24; t[9] = (ack >> 16) & 255; t[10] = (ack >> 8) & 255; t[11] = ack & 255;
        t[12] = 5 << 4;
        t[13] = (unsigned char)flags;
    } else {
        t[4] = (unsigned char)((8 + n) >> 8);
        t[5] = (8 + n) & 255;
    }
    memcpy(t + l4, data, n);
    pw_record(w, f, o + iph + l4 + n);
}

struct flow {
    struct pw *w;
    const char *c, *s;
    int cp, sp;
    uint32_t cisn, sisn;
    uint32_t coff, soff;     /* bytes sent so far per direction */
};

static void flow_open(struct flow *f, struct pw *w, const char *c, int cp, const char *s, int sp)
{
    memset(f, 0, sizeof *f);
    f->w = w;
    f->c = c;
    f->s = s;
    f->cp = cp;
    f->sp = sp;
    f->cisn = 0xfffff000u;   /* wraps during the session */
    f->sisn = 1000;
    pw_ip(w, IPPROTO_TCP, c, cp, s, sp, f->cisn, 0, 0x02, "", 0);
    pw_ip(w, IPPROTO_TCP, s, sp, c, cp, f->sisn, f->cisn + 1, 0x12, "", 0);
    pw_ip(w, IPPROTO_TCP, c, cp, s, sp, f->cisn + 1, f->sisn + 1, 0x10, "", 0);
}

/* A segment at byte offset off of a direction (does not advance). */
static void flow_seg(struct flow *f, int from_client, uint32_t off, const char *p, size_t n)
{
    if (from_client)
        pw_ip(f->w, IPPROTO_TCP, f->c, f->cp, f->s, f->sp, f->cisn + 1 + off, f->sisn + 1, 0x18, p, n);
    else
        pw_ip(f->w, IPPROTO_TCP, f->s, f->sp, f->c, f->cp, f->sisn + 1 + off, f->cisn + 1, 0x18, p, n);
}

static void flow_send(struct flow *f, int from_client, const char *text)
{
    size_t n = strlen(text);
    uint32_t *off = from_client ? &f->coff : &f->soff;
    flow_seg(f, from_client, *off, text, n);
    *off += (uint32_t)n;
}

static void flow_close(struct flow *f)
{
    pw_ip(f->w, IPPROTO_TCP, f->c, f->cp, f->s, f->sp, f->cisn + 1 + f->coff, f->sisn + 1 + f->soff, 0x11, "", 0);
    pw_ip(f->w, IPPROTO_TCP, f->s, f->sp, f->c, f->cp, f->sisn + 1 + f->soff, f->cisn + 2 + f->coff, 0x11, "", 0);
}

/* The session most tests use: greeting, EHLO, ETRN (253 for 2), QUIT. */
static void flow_etrn_session(struct flow *f)
{
    flow_send(f, 0, "220 relay.example ESMTP\r\n");
    flow_send(f, 1, "EHLO site.example\r\n");
    flow_send(f, 0, "250-relay.example\r\n250-ETRN\r\n250 PIPELINING\r\n");
    flow_send(f, 1, "ETRN Node.Test\r\n");
    flow_send(f, 0, "253 2.0.0 OK, 2 pending messages for node node.test started\r\n");
    flow_send(f, 1, "QUIT\r\n");
    flow_send(f, 0, "221 2.0.0 Bye\r\n");
    flow_close(f);
}

static char *pw_save(struct pw *w, const char *name)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(w->b.data, 1, w->b.len, fp), w->b.len);
    assert_int_equal(fclose(fp), 0);
    strbuf_free(&w->b);
    return path;
}

/* Imports, builds and formats; the scenario text must parse. */
static void import_to_scenario(const char *path, int all, struct capture *cap,
                               struct capture_dialogues *d, struct strbuf *text)
{
    struct etrn_err err = {{0}};
    int rc = capture_import_file(cap, path, NULL, &err);
    if (rc < 0)
        fail_msg("import failed: %s", err.msg);
    struct capture_scenario_options so = {.all_sessions = all};
    assert_int_equal(capture_dialogues_build(d, cap, &so, &err), 0);
    strbuf_init(text, SCENARIO_FILE_MAX);
    if (capture_scenario_format(d, cap, &so, text, &err) < 0)
        fail_msg("format failed: %s", err.msg);
    struct scenario sc;
    if (scenario_parse_string(&sc, "imported.scn", text->data, &err) < 0)
        fail_msg("the scenario does not parse: %s\n%s", err.msg, text->data);
    scenario_free(&sc);
}

static int count_notes_with(const struct capture *cap, const char *needle)
{
    int n = 0;
    for (size_t i = 0; i < cap->nnotes; i++)
        if (strstr(cap->notes[i], needle))
            n++;
    return n;
}

/* ---- synthetic captures ------------------------------------------------------------------ */

static void check_etrn_scenario(const char *text)
{
    assert_non_null(strstr(text, "  expect    220\n"));
    assert_non_null(strstr(text, "  send      EHLO site.example\n"));
    assert_non_null(strstr(text, "  expect    250 with-keyword ETRN\n"));
    assert_non_null(strstr(text, "  send      ETRN $node\n"));
    assert_non_null(strstr(text, "  expect    253 queued 2\n"));
    assert_non_null(strstr(text, "queue       2 to user@$node\n"));
    assert_non_null(strstr(text, "  expect    221\n"));
}

static void import_link(int link, int ng, int v6)
{
    struct pw w;
    pw_begin(&w, link, ng);
    struct flow f;
    flow_open(&f, &w, v6 ? "::1" : "127.0.0.1", 40001, v6 ? "::1" : "127.0.0.1", 2525);
    flow_etrn_session(&f);
    char name[64];
    snprintf(name, sizeof name, "link%d-%d-%d.pcap", link, ng, v6);
    const char *path = pw_save(&w, name);
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_int_equal(cap.nstreams, 1);
    assert_int_equal(d.netrn, 1);
    assert_string_equal(d.node, "node.test");
    check_etrn_scenario(text.data);
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_import_reads_ethernet_ipv4(void **s) { (void)s; import_link(1, 0, 0); }
static void test_capture_import_reads_ethernet_ipv6(void **s) { (void)s; import_link(1, 0, 1); }
static void test_capture_import_reads_linux_cooked_sll(void **s) { (void)s; import_link(113, 0, 0); }
static void test_capture_import_reads_linux_cooked_sll2(void **s) { (void)s; import_link(276, 0, 1); }
static void test_capture_import_reads_raw_ip(void **s) { (void)s; import_link(101, 0, 0); }
static void test_capture_import_reads_bsd_loopback(void **s) { (void)s; import_link(0, 0, 0); }
static void test_capture_import_reads_pcapng(void **s) { (void)s; import_link(1, 1, 0); }

static void test_capture_import_reorders_and_drops_retransmissions(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40002, "127.0.0.1", 2525);
    const char *greet = "220 relay.example ESMTP\r\n";
    const char *cmds = "EHLO site.example\r\nETRN node.test\r\nQUIT\r\n";
    const char *reps = "250 relay.example\r\n251 OK, no messages waiting for node node.test\r\n221 Bye\r\n";
    flow_seg(&f, 0, 0, greet, strlen(greet));
    uint32_t g = (uint32_t)strlen(greet);
    /* the client's bytes: second half first, then an overlapping copy, then the first half twice */
    flow_seg(&f, 1, 19, cmds + 19, strlen(cmds) - 19);
    flow_seg(&f, 1, 10, cmds + 10, 20);
    flow_seg(&f, 1, 0, cmds, 19);
    flow_seg(&f, 1, 0, cmds, 19);
    flow_seg(&f, 0, g + 19, reps + 19, strlen(reps) - 19);
    flow_seg(&f, 0, g, reps, 19);
    const char *path = pw_save(&w, "reorder.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_int_equal(cap.streams[0].to_server.len, strlen(cmds));
    assert_memory_equal(cap.streams[0].to_server.data, cmds, strlen(cmds));
    assert_true(cap.streams[0].to_server.retransmitted >= 2);
    assert_int_equal(cap.streams[0].to_server.holes, 0);
    assert_int_equal(cap.nnotes, 0);
    assert_non_null(strstr(text.data, "  send      ETRN $node\n  expect    251\n"));
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_import_reports_missing_segment_with_stream_and_offset(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40003, "127.0.0.1", 2525);
    flow_send(&f, 0, "220 relay.example ESMTP\r\n");
    flow_send(&f, 1, "EHLO site.example\r\n");
    flow_send(&f, 0, "250 relay.example\r\n");
    flow_send(&f, 1, "ETRN node.test\r\n");
    f.coff += 6;   /* a lost segment of the client's */
    flow_send(&f, 1, "NOOP\r\n");
    flow_send(&f, 0, "251 OK\r\n");
    const char *path = pw_save(&w, "hole.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_int_equal(cap.streams[0].to_server.holes, 1);
    assert_int_equal(cap.streams[0].to_server.missing_at, 35);
    assert_int_equal(cap.streams[0].to_server.missing_len, 6);
    assert_int_equal(count_notes_with(&cap, "missing 6 byte(s) at offset 35"), 1);
    assert_int_equal(count_notes_with(&cap, "127.0.0.1:40003 -> 127.0.0.1:2525"), 1);
    assert_non_null(strstr(cap.notes[0], path));
    assert_non_null(strstr(text.data, "(incomplete)"));
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_import_truncated_file_keeps_packets_before(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40004, "127.0.0.1", 2525);
    flow_etrn_session(&f);
    w.b.len -= 30;   /* cut inside the last packet */
    const char *path = pw_save(&w, "truncated.pcap");
    struct capture cap;
    struct etrn_err err;
    assert_int_equal(capture_import_file(&cap, path, NULL, &err), 0);
    assert_int_equal(count_notes_with(&cap, "truncated capture"), 1);
    assert_non_null(strstr(cap.notes[0], path));
    assert_true(cap.npackets > 5);
    capture_free(&cap);
}

static void expect_fatal(const char *name, const void *bytes, size_t n, const char *needle)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n)
        assert_int_equal(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
    struct capture cap;
    struct etrn_err err = {{0}};
    assert_int_equal(capture_import_file(&cap, path, NULL, &err), -1);
    if (strstr(err.msg, needle) == NULL || strstr(err.msg, path) == NULL || strchr(err.msg, '\n'))
        fail_msg("message '%s' lacks '%s' or the file name", err.msg, needle);
    assert_int_equal(capture_import_memory(&cap, name, bytes, n, NULL, &err), -1);
    assert_non_null(strstr(err.msg, needle));
}

static void test_capture_import_refuses_empty_file(void **state)
{
    (void)state;
    expect_fatal("empty.pcap", "", 0, "empty file");
}

static void test_capture_import_refuses_garbage(void **state)
{
    (void)state;
    const char garbage[] = "this is not a capture at all, just some text from a mail log\n";
    expect_fatal("garbage.pcap", garbage, sizeof garbage - 1, "not a pcap or pcapng capture");
}

static void test_capture_import_refuses_truncated_header(void **state)
{
    (void)state;
    const unsigned char head[] = {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0};
    expect_fatal("header.pcap", head, sizeof head, "truncated capture");
}

static void test_capture_import_refuses_wrong_link_type(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 105, 0);   /* IEEE 802.11 */
    unsigned char frame[40] = {0};
    pw_record(&w, frame, sizeof frame);
    expect_fatal("wifi.pcap", w.b.data, w.b.len, "link type 105");
    strbuf_free(&w.b);
}

static void test_capture_import_refuses_missing_file(void **state)
{
    (void)state;
    struct capture cap;
    struct etrn_err err;
    assert_int_equal(capture_import_file(&cap, "/nonexistent/x.pcap", NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/x.pcap"));
}

/* ---- names, sessions, DNS ----------------------------------------------------------------- */

static size_t dns_response(unsigned char *out, size_t max)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_qr(p, 1);
    ldns_pkt_set_id(p, 4242);
    ldns_rr *rr = NULL;
    const char *recs[] = {"node.test. 60 IN MX 10 mx1.node.test.", "mx1.node.test. 60 IN A 127.0.0.2",
                          "other.example. 60 IN A 192.0.2.9"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ldns_rr_new_frm_str(&rr, recs[i], 0, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(p, i < 1 ? LDNS_SECTION_ANSWER : LDNS_SECTION_ADDITIONAL, rr);
    }
    uint8_t *wire = NULL;
    size_t n = 0;
    assert_int_equal(ldns_pkt2wire(&wire, p, &n), LDNS_STATUS_OK);
    assert_true(n <= max);
    memcpy(out, wire, n);
    free(wire);
    ldns_pkt_free(p);
    return n;
}

static void test_capture_scenario_names_node_sinks_and_dns(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40005, "127.0.0.1", 2525);
    flow_etrn_session(&f);
    unsigned char dns[512];
    size_t dn = dns_response(dns, sizeof dns);
    pw_ip(&w, IPPROTO_UDP, "127.0.0.1", 5353, "127.0.0.1", 41000, 0, 0, 0, dns, dn);
    /* the relay delivers two messages to the node's server */
    struct flow g;
    flow_open(&g, &w, "127.0.0.1", 40006, "127.0.0.2", 2526);
    flow_send(&g, 0, "220 sink ESMTP\r\n");
    flow_send(&g, 1, "EHLO relay.example\r\n");
    flow_send(&g, 0, "250 sink\r\n");
    for (int i = 0; i < 2; i++) {
        flow_send(&g, 1, "MAIL FROM:<a@example.org>\r\n");
        flow_send(&g, 0, "250 OK\r\n");
        flow_send(&g, 1, "RCPT TO:<bob@node.test>\r\n");
        flow_send(&g, 0, "250 OK\r\n");
        flow_send(&g, 1, "DATA\r\n");
        flow_send(&g, 0, "354 go\r\n");
        flow_send(&g, 1, "Subject: $5 for bob@node.test\r\n\r\nhi\r\n.\r\n");
        flow_send(&g, 0, "250 queued\r\n");
    }
    flow_send(&g, 1, "QUIT\r\n");
    flow_send(&g, 0, "221 bye\r\n");
    flow_close(&g);
    const char *path = pw_save(&w, "world.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_int_equal(d.nsinks, 1);
    assert_string_equal(d.sinks[0], "127.0.0.2");
    assert_non_null(strstr(text.data, "sink        sink1\n"));
    assert_non_null(strstr(text.data, "dns         $node MX 10 mx1.$node\n"));
    assert_non_null(strstr(text.data, "dns         mx1.$node A $sink1\n"));
    assert_null(strstr(text.data, "other.example"));
    assert_non_null(strstr(text.data, "queue       2 to bob@$node\n"));
    assert_non_null(strstr(text.data, "outcome     delivered 2 to sink1 within 30s\n"));
    /* the delivery is not a client block of the scenario */
    assert_null(strstr(text.data, "EHLO relay.example"));
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_scenario_drops_sessions_without_etrn_unless_asked(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40007, "127.0.0.1", 25);
    flow_send(&f, 0, "220 mx ESMTP\r\n");
    flow_send(&f, 1, "HELO me\r\n");
    flow_send(&f, 0, "250 mx\r\n");
    flow_send(&f, 1, "MAIL FROM:<$x@example.org>\r\n");
    flow_send(&f, 0, "250 OK\r\n");
    flow_send(&f, 1, "RCPT TO:<u@example.net>\r\n");
    flow_send(&f, 0, "250 OK\r\n");
    flow_send(&f, 1, "DATA\r\n");
    flow_send(&f, 0, "354 go\r\n");
    flow_send(&f, 1, "Subject: t\r\n\r\n\x01\tbinary\\ \xff\r\n..dot\r\n.\r\n");
    flow_send(&f, 0, "250 queued\r\n");
    flow_send(&f, 1, " NOOP \n");
    flow_send(&f, 0, "250 OK\r\n");
    flow_send(&f, 1, "QUIT\r\n");
    flow_send(&f, 0, "221 bye\r\n");
    const char *path = pw_save(&w, "plain.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct etrn_err err;
    assert_int_equal(capture_import_file(&cap, path, NULL, &err), 0);
    struct capture_scenario_options so = {0};
    assert_int_equal(capture_dialogues_build(&d, &cap, &so, &err), 0);
    struct strbuf text;
    strbuf_init(&text, SCENARIO_FILE_MAX);
    assert_int_equal(capture_scenario_format(&d, &cap, &so, &text, &err), -1);
    assert_non_null(strstr(err.msg, "no SMTP session with ETRN"));
    assert_non_null(strstr(err.msg, path));
    capture_dialogues_free(&d);
    strbuf_free(&text);
    capture_free(&cap);

    import_to_scenario(path, 1, &cap, &d, &text);
    assert_non_null(strstr(text.data, "  send      MAIL FROM:<$$x@example.org>\n"));
    assert_non_null(strstr(text.data, "\\x01\\tbinary\\\\ \\xff\\r\\n..dot\\r\\n.\\r\\n"));
    assert_non_null(strstr(text.data, "  send-raw   NOOP \\n\n"));
    /* the templates give back the captured bytes */
    struct strbuf out, raw;
    strbuf_init(&out, 1 << 20);
    strbuf_init(&raw, 1 << 20);
    for (size_t k = 0; k < d.v[0].n; k++) {
        const struct capture_exchange *x = &d.v[0].v[k];
        if (!x->body_templ)
            continue;
        strbuf_reset(&out);
        strbuf_reset(&raw);
        assert_int_equal(scenario_expand(x->body_templ, capture_dialogues_lookup, &d, &out, &err), 0);
        assert_int_equal(scenario_unescape(out.data, &raw, &err), 0);
        assert_int_equal(raw.len, x->body_len);
        assert_memory_equal(raw.data, x->body, x->body_len);
    }
    strbuf_free(&out);
    strbuf_free(&raw);
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_scenario_keeps_other_domains_and_uppercase(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40008, "127.0.0.1", 2525);
    flow_send(&f, 0, "220 relay\r\n");
    flow_send(&f, 1, "ETRN node.test\r\n");
    flow_send(&f, 0, "251 OK\r\n");
    flow_send(&f, 1, "ETRN NODE.TEST\r\n");
    flow_send(&f, 0, "251 OK\r\n");
    flow_send(&f, 1, "ETRN node.test.example\r\n");
    flow_send(&f, 0, "459 no\r\n");
    flow_send(&f, 1, "ETRN mx1.node.test\r\n");
    flow_send(&f, 0, "459 no\r\n");
    flow_send(&f, 1, "ETRN #queue\r\n");
    flow_send(&f, 0, "458 later\r\n");
    const char *path = pw_save(&w, "names.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_non_null(strstr(text.data, "  send      ETRN $NODE\n"));
    assert_non_null(strstr(text.data, "  send      ETRN node.test.example\n"));
    assert_non_null(strstr(text.data, "  send      ETRN mx1.$node\n"));
    assert_non_null(strstr(text.data, "  send      ETRN #queue\n  expect    458\n"));
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_scenario_routes_deliveries_without_dns_and_keeps_servfail(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40010, "127.0.0.1", 2525);
    flow_send(&f, 0, "220 relay\r\n");
    flow_send(&f, 1, "ETRN node.test\r\n");
    flow_send(&f, 0, "250 OK, queuing for node node.test started\r\n");
    /* a SERVFAIL for the node's MX, then the relay delivers one message by its own route */
    ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str("node.test."), LDNS_RR_TYPE_MX,
                                     LDNS_RR_CLASS_IN, 0);
    assert_non_null(p);
    ldns_pkt_set_qr(p, 1);
    ldns_pkt_set_rcode(p, LDNS_RCODE_SERVFAIL);
    uint8_t *wire = NULL;
    size_t wn = 0;
    assert_int_equal(ldns_pkt2wire(&wire, p, &wn), LDNS_STATUS_OK);
    pw_ip(&w, IPPROTO_UDP, "127.0.0.1", 53, "127.0.0.1", 41001, 0, 0, 0, wire, wn);
    free(wire);
    ldns_pkt_free(p);
    struct flow g;
    flow_open(&g, &w, "127.0.0.1", 40011, "127.0.0.3", 2526);
    flow_send(&g, 0, "220 sink\r\n");
    flow_send(&g, 1, "HELO relay\r\n");
    flow_send(&g, 0, "250 sink\r\n");
    flow_send(&g, 1, "MAIL FROM:<>\r\n");
    flow_send(&g, 0, "250 OK\r\n");
    flow_send(&g, 1, "RCPT TO:<x@node.test>\r\n");
    flow_send(&g, 0, "250 OK\r\n");
    flow_send(&g, 1, "DATA\r\n");
    flow_send(&g, 0, "354 go\r\n");
    flow_send(&g, 1, "x\r\n.\r\n");
    flow_send(&g, 0, "250 OK\r\n");
    const char *path = pw_save(&w, "route.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_non_null(strstr(text.data, "dns-quirk   $node servfail\n"));
    assert_non_null(strstr(text.data, "dns         $node MX 10 mx1.$node\n"));
    assert_non_null(strstr(text.data, "dns         mx1.$node A $sink1\n"));
    assert_non_null(strstr(text.data, "queue       1 to x@$node\n"));
    assert_non_null(strstr(text.data, "outcome     delivered 1 to sink1 within 30s\n"));
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

/* ---- live: tcpdump and a scripted server ------------------------------------------------- */

struct script_server {
    int lfd;
    int port;
    const char *etrn_reply;
    int sessions;       /* to serve, then stop */
    pthread_t th;
};

static int read_line(int fd, char *buf, size_t n)
{
    size_t k = 0;
    while (k + 1 < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            return -1;
        if (c == '\n') {
            buf[k] = '\0';
            if (k && buf[k - 1] == '\r')
                buf[k - 1] = '\0';
            return 0;
        }
        buf[k++] = c;
    }
    return -1;
}

static void say(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) < 0)
        return;
}

static void *script_serve(void *arg)
{
    struct script_server *sv = arg;
    for (int i = 0; i < sv->sessions; i++) {
        struct pollfd p = {.fd = sv->lfd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        int fd = accept(sv->lfd, NULL, NULL);
        if (fd < 0)
            break;
        say(fd, "220 script.example ESMTP\r\n");
        char line[1024];
        for (int k = 0; k < 100 && read_line(fd, line, sizeof line) == 0; k++) {
            if (strncasecmp(line, "EHLO", 4) == 0)
                say(fd, "250-script.example\r\n250-ETRN\r\n250 ENHANCEDSTATUSCODES\r\n");
            else if (strncasecmp(line, "ETRN", 4) == 0)
                say(fd, sv->etrn_reply);
            else if (strncasecmp(line, "QUIT", 4) == 0) {
                say(fd, "221 2.0.0 Bye\r\n");
                break;
            } else
                say(fd, "250 2.0.0 OK\r\n");
        }
        close(fd);
    }
    return NULL;
}

static void script_start(struct script_server *sv, const char *etrn_reply, int sessions)
{
    sv->etrn_reply = etrn_reply;
    sv->sessions = sessions;
    sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sv->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(sv->lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(sv->lfd, (struct sockaddr *)&a, &al);
    sv->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&sv->th, NULL, script_serve, sv), 0);
}

static void script_stop(struct script_server *sv)
{
    shutdown(sv->lfd, SHUT_RDWR);
    pthread_join(sv->th, NULL);
    close(sv->lfd);
}

/* Talks to the server as a site would; records the codes read. */
static void client_session(int port, int codes[8], int *ncodes)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *cmds[] = {NULL, "EHLO site.example\r\n", "ETRN node.test\r\n", "QUIT\r\n"};
    *ncodes = 0;
    for (size_t i = 0; i < 4; i++) {
        if (cmds[i])
            say(fd, cmds[i]);
        char line[1024];
        do
            assert_int_equal(read_line(fd, line, sizeof line), 0);
        while (line[3] == '-');
        codes[(*ncodes)++] = atoi(line);
    }
    close(fd);
}

/* Starts tcpdump; 0 when it is listening, -1 if it cannot capture here. */
static int tcpdump_start(pid_t *pid, const char *iface, const char *path, int port)
{
    char errpath[200], filter[32];
    snprintf(errpath, sizeof errpath, "%s.err", path);
    snprintf(filter, sizeof filter, "tcp port %d", port);
    *pid = fork();
    if (*pid < 0)
        return -1;
    if (*pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execlp("tcpdump", "tcpdump", "-i", iface, "--immediate-mode", "-U", "-Z", "root", "-w", path, filter, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {   /* up to 10 s for "listening on" */
        FILE *fp = fopen(errpath, "r");
        char buf[512] = "";
        if (fp) {
            size_t n = fread(buf, 1, sizeof buf - 1, fp);
            buf[n] = '\0';
            fclose(fp);
        }
        if (strstr(buf, "listening on"))
            return 0;
        int st;
        if (waitpid(*pid, &st, WNOHANG) == *pid)
            return -1;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    return -1;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void tcpdump_stop(pid_t pid, const char *path)
{
    /* let the last packets reach the file: wait (at most 10 s) until it has not grown for 1 s */
    off_t last = -1;
    int stable = 0;
    for (int i = 0; i < 100 && stable < 10; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        off_t now = file_size(path);
        stable = now > 24 && now == last ? stable + 1 : 0;
        last = now;
    }
    kill(pid, SIGINT);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        struct timespec t2 = {0, 100 * 1000 * 1000};
        nanosleep(&t2, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Records one client session with tcpdump. A busy machine can make tcpdump miss a packet
 * (the importer then reports the hole, which other tests check) or stop before it read the
 * last ones; such a capture is taken again, at most three times. -1: tcpdump cannot
 * capture here. */
static int capture_client_session(const char *iface, int port, const char *path, int codes[8],
                                  int *n)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        pid_t td;
        if (tcpdump_start(&td, iface, path, port) < 0)
            return -1;
        client_session(port, codes, n);
        tcpdump_stop(td, path);
        struct capture cap;
        struct etrn_err err;
        assert_int_equal(capture_import_file(&cap, path, NULL, &err), 0);
        int bad = cap.nstreams != 1 || cap.streams[0].to_server.holes || cap.streams[0].to_client.holes;
        const char *quit_reply = "221 2.0.0 Bye\r\n";
        size_t ql = strlen(quit_reply);
        if (!bad && (cap.streams[0].to_client.len < ql ||
                     memcmp(cap.streams[0].to_client.data + cap.streams[0].to_client.len - ql,
                            quit_reply, ql) != 0))
            bad = 1;
        capture_free(&cap);
        if (!bad)
            break;
    }
    return 0;
}

static void live_capture(const char *iface)
{
    struct script_server sv;
    script_start(&sv, "253 2.0.0 OK, 3 pending messages for node node.test started\r\n", 5);
    char path[160];
    snprintf(path, sizeof path, "%s/live-%s.pcap", tmpdir, iface);
    int codes[8], n = 0;
    if (capture_client_session(iface, sv.port, path, codes, &n) < 0) {
        sv.sessions = 0;
        script_stop(&sv);
        skip();
    }
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    assert_int_equal(d.netrn, 1);
    if (strcmp(iface, "lo") == 0)
        assert_int_equal(cap.linktype, 1);            /* Ethernet */
    else
        assert_true(cap.linktype == 113 || cap.linktype == 276);   /* Linux cooked */
    /* the expectations are the codes the client read, in order */
    const char *p = text.data;
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "  expect    %03d", codes[i]);
        p = strstr(p, want);
        if (p == NULL)
            fail_msg("expect %d missing in order:\n%s", codes[i], text.data);
        p += strlen(want);
    }
    assert_non_null(strstr(text.data, "expect    253 queued 3"));
    assert_non_null(strstr(text.data, "queue       3 to user@$node"));

    /* replay against the same server: every code as captured */
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", sv.port);
    struct replay_options ro = {.target = target, .step_timeout_ms = 5000};
    struct replay_result res;
    struct etrn_err err;
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), 0);
    assert_int_equal(res.differs, 0);
    assert_int_equal(res.compared, (size_t)n);
    replay_result_free(&res);
    /* with another node, the command is rewritten */
    ro.node = "other.test";
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), 0);
    assert_non_null(strstr(res.transcript.data, "> ETRN other.test"));
    replay_result_free(&res);
    script_stop(&sv);

    /* a server that now answers 251: the difference is found at the ETRN step */
    struct script_server sv2;
    script_start(&sv2, "251 2.0.0 OK, no messages waiting for node node.test\r\n", 2);
    snprintf(target, sizeof target, "127.0.0.1:%d", sv2.port);
    ro.target = target;
    ro.node = NULL;
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), 0);
    assert_int_equal(res.differs, 1);
    assert_int_equal(res.step, 3);
    assert_int_equal(res.captured_code, 253);
    assert_int_equal(res.code, 251);
    assert_true(res.same_class);
    assert_non_null(strstr(res.what, "ETRN node.test"));
    replay_result_free(&res);
    /* 251 for 253 is the same class: not a difference with class_only */
    ro.class_only = 1;
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), 0);
    assert_int_equal(res.differs, 0);
    replay_result_free(&res);
    script_stop(&sv2);

    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_capture_import_live_tcpdump_on_lo(void **s) { (void)s; live_capture("lo"); }
static void test_capture_import_live_tcpdump_on_any(void **s) { (void)s; live_capture("any"); }

/* ---- live: tcpdump and bin/etrnd ---------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts bin/etrnd on a free port (with a test-only defect, or none); 0 once it accepts. */
static int etrnd_start(pid_t *pid, int *port, const char *tag, const char *defect)
{
    char conf[200], spool[200], log[200];
    *port = free_port();
    snprintf(conf, sizeof conf, "%s/etrnd-%s.conf", tmpdir, tag);
    snprintf(spool, sizeof spool, "%s/spool-%s", tmpdir, tag);
    snprintf(log, sizeof log, "%s/etrnd-%s.log", tmpdir, tag);
    FILE *fp = fopen(conf, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "listen = 127.0.0.1:%d\nmyhostname = relay.example\nspool = %s\n"
                "etrn_domains = node.test\nroute.node.test = 127.0.0.2:%d\n"
                "etrn_allow = @node.test : 127.0.0.1\n%s%s\n",
            *port, spool, *port + 1, defect ? "defect = " : "", defect ? defect : "");
    fclose(fp);
    *pid = fork();
    if (*pid < 0)
        return -1;
    if (*pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char prog[300];
        const char *bin = getenv("ETRNKIT_BIN");
        snprintf(prog, sizeof prog, "%s/etrnd", bin ? bin : "bin");
        execl(prog, "etrnd", "-c", conf, "-f", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {   /* up to 10 s */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return 0;
        if (waitpid(*pid, NULL, WNOHANG) == *pid)
            return -1;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void etrnd_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_capture_import_live_etrnd_session_and_defect(void **state)
{
    (void)state;
    char prog[300];
    const char *bin = getenv("ETRNKIT_BIN");
    snprintf(prog, sizeof prog, "%s/etrnd", bin ? bin : "bin");
    if (access(prog, X_OK) != 0)
        skip();   /* etrnd not built yet */
    pid_t good, bad;
    int gport, bport;
    if (etrnd_start(&good, &gport, "good", NULL) < 0)
        fail_msg("bin/etrnd did not start (see %s/etrnd-good.log)", tmpdir);
    char path[160];
    snprintf(path, sizeof path, "%s/live-etrnd.pcap", tmpdir);
    int codes[8], n = 0;
    if (capture_client_session("lo", gport, path, codes, &n) < 0) {
        etrnd_stop(good);
        skip();
    }
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    const char *p = text.data;
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "  expect    %03d", codes[i]);
        if ((p = strstr(p, want)) == NULL)
            fail_msg("expect %d missing in order:\n%s", codes[i], text.data);
        p += strlen(want);
    }
    assert_int_equal(codes[2], 251);   /* nothing queued for node.test */

    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", gport);
    struct replay_options ro = {.target = target, .step_timeout_ms = 5000};
    struct replay_result res;
    struct etrn_err err;
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), 0);
    assert_int_equal(res.differs, 0);
    replay_result_free(&res);
    etrnd_stop(good);

    /* the same capture against etrnd with `defect = etrn_wrong_count` */
    if (etrnd_start(&bad, &bport, "defect", "etrn_wrong_count") < 0)
        fail_msg("bin/etrnd with a defect did not start (see %s/etrnd-defect.log)", tmpdir);
    snprintf(target, sizeof target, "127.0.0.1:%d", bport);
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), 0);
    etrnd_stop(bad);
    assert_int_equal(res.differs, 1);
    assert_int_equal(res.step, 3);
    assert_int_equal(res.captured_code, 251);
    assert_int_equal(res.code, 253);
    replay_result_free(&res);
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

static void test_replay_reports_connect_failure(void **state)
{
    (void)state;
    struct pw w;
    pw_begin(&w, 1, 0);
    struct flow f;
    flow_open(&f, &w, "127.0.0.1", 40009, "127.0.0.1", 2525);
    flow_etrn_session(&f);
    const char *path = pw_save(&w, "replay.pcap");
    struct capture cap;
    struct capture_dialogues d;
    struct strbuf text;
    import_to_scenario(path, 0, &cap, &d, &text);
    /* a port nobody listens on: bind one, close it */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
    struct replay_options ro = {.target = target, .step_timeout_ms = 2000};
    struct replay_result res;
    struct etrn_err err;
    replay_result_init(&res);
    assert_int_equal(replay_run(&d, &cap, &ro, &res, &err), -1);
    assert_non_null(strstr(err.msg, "cannot connect"));
    replay_result_free(&res);
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_import_reads_ethernet_ipv4),
        cmocka_unit_test(test_capture_import_reads_ethernet_ipv6),
        cmocka_unit_test(test_capture_import_reads_linux_cooked_sll),
        cmocka_unit_test(test_capture_import_reads_linux_cooked_sll2),
        cmocka_unit_test(test_capture_import_reads_raw_ip),
        cmocka_unit_test(test_capture_import_reads_bsd_loopback),
        cmocka_unit_test(test_capture_import_reads_pcapng),
        cmocka_unit_test(test_capture_import_reorders_and_drops_retransmissions),
        cmocka_unit_test(test_capture_import_reports_missing_segment_with_stream_and_offset),
        cmocka_unit_test(test_capture_import_truncated_file_keeps_packets_before),
        cmocka_unit_test(test_capture_import_refuses_empty_file),
        cmocka_unit_test(test_capture_import_refuses_garbage),
        cmocka_unit_test(test_capture_import_refuses_truncated_header),
        cmocka_unit_test(test_capture_import_refuses_wrong_link_type),
        cmocka_unit_test(test_capture_import_refuses_missing_file),
        cmocka_unit_test(test_capture_scenario_names_node_sinks_and_dns),
        cmocka_unit_test(test_capture_scenario_drops_sessions_without_etrn_unless_asked),
        cmocka_unit_test(test_capture_scenario_keeps_other_domains_and_uppercase),
        cmocka_unit_test(test_capture_scenario_routes_deliveries_without_dns_and_keeps_servfail),
        cmocka_unit_test(test_capture_import_live_tcpdump_on_lo),
        cmocka_unit_test(test_capture_import_live_tcpdump_on_any),
        cmocka_unit_test(test_capture_import_live_etrnd_session_and_defect),
        cmocka_unit_test(test_replay_reports_connect_failure),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
