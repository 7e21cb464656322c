/* fuzz_dns_packet.c — libFuzzer target for the simulator's DNS packet handling: the query
 * decoder and answer builder of sim/dns_server.c (reached through its public API: a real
 * server on 127.0.0.1:0 driven in-process) and the byte-level writers of sim/dns_malformed.c.
 *
 *   scripts/run-fuzz dns_packet 60
 *   seeds: fixtures/fuzz/dns_packet/ (raw queries; a first octet with bit 0x80 set after the
 *   selector is just data — see "Input" below)
 *
 * Input: octet 0 selects the path (even: the rest is one UDP datagram; odd: the rest goes
 * over one TCP connection as a length-prefixed message). Guarantees checked: the server
 * never crashes (ASan/UBSan), every answer it sends to a query with a 12-octet header
 * carries that query's ID unless a quirk on purpose says otherwise, every answer that no
 * malformed quirk touched decodes with ldns, and after every 256 inputs a well-formed
 * question still gets a NOERROR answer (the server is not wedged). The malformed writers
 * never write past their buffer and return lengths inside it. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <ldns/ldns.h>

#include "dns_malformed.h"
#include "dns_server.h"

static struct event_base *fz_base;
static struct dns_server *fz_srv;
static int fz_udp = -1, fz_tcp = -1;
static struct sockaddr_in fz_addr;
static unsigned long fz_inputs;

/* Names with quirks that change IDs or bytes on purpose: answers to them are not checked. */
static const char *const fz_wild_names[] = { "cut.test", "loop.test", "wrongid.test",
                                             "wrongq.test", "flap.test" };

static void fz_setup(void)
{
    struct etrn_err err = {{0}};
    fz_base = event_base_new();
    if (fz_base == NULL || dns_server_new(&fz_srv, fz_base, "127.0.0.1:0", &err) < 0) {
        fprintf(stderr, "fuzz_dns_packet: setup: %s\n", err.msg);
        abort();
    }
    static const char *const records[] = {
        "node.test MX 10 mx1.node.test", "node.test MX 20 mx2.node.test",
        "mx1.node.test A 127.0.0.2", "mx2.node.test AAAA ::1", "alias.test CNAME node.test",
        "node.test TXT \"v=spf1 -all\"", "test SOA ns.test. host.test. 1 60 60 60 60",
        "big.test MX 10 mx1.node.test", "cut.test MX 10 mx1.node.test",
        "loop.test MX 10 mx1.node.test", "wrongid.test MX 10 mx1.node.test",
        "wrongq.test MX 10 mx1.node.test", "flap.test MX 10 mx1.node.test",
        "chain.test MX 10 mx1.node.test", "case.test MX 10 mx1.node.test",
        "tc.test MX 10 mx1.node.test", "null.test MX 0 .",
    };
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++)
        if (dns_server_add_record(fz_srv, records[i], &err) < 0) {
            fprintf(stderr, "fuzz_dns_packet: %s: %s\n", records[i], err.msg);
            abort();
        }
    static const char *const quirks[][2] = {
        { "cut.test", "cut-off" }, { "loop.test", "pointer-loop" }, { "wrongid.test", "wrong-id" },
        { "wrongq.test", "wrong-question" }, { "flap.test", "flap" }, { "chain.test", "cname-chain 5" },
        { "case.test", "case-0x20" }, { "tc.test", "truncate" }, { "big.test", "oversize" },
        { "node.test", "ttl0" },
    };
    for (size_t i = 0; i < sizeof quirks / sizeof quirks[0]; i++)
        if (dns_server_set_quirk(fz_srv, quirks[i][0], quirks[i][1], &err) < 0) {
            fprintf(stderr, "fuzz_dns_packet: quirk %s %s: %s\n", quirks[i][0], quirks[i][1], err.msg);
            abort();
        }
    memset(&fz_addr, 0, sizeof fz_addr);
    fz_addr.sin_family = AF_INET;
    fz_addr.sin_port = htons((uint16_t)dns_server_port(fz_srv));
    fz_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fz_udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fz_udp < 0 || connect(fz_udp, (struct sockaddr *)&fz_addr, sizeof fz_addr) < 0) {
        perror("fuzz_dns_packet: udp socket");
        abort();
    }
}

/* Runs the server's loop until it has nothing more to do right now. */
static void fz_pump(void)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(fz_base, EVLOOP_NONBLOCK);
}

static int fz_name_is_wild(const ldns_pkt *q)
{
    ldns_rr_list *qs = ldns_pkt_question(q);
    if (qs == NULL || ldns_rr_list_rr_count(qs) == 0)
        return 1;
    char *name = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(qs, 0)));
    int wild = 1;
    if (name != NULL) {
        size_t n = strlen(name);
        if (n && name[n - 1] == '.')
            name[n - 1] = '\0';
        wild = 0;
        for (size_t i = 0; i < sizeof fz_wild_names / sizeof fz_wild_names[0]; i++)
            if (strcasecmp(name, fz_wild_names[i]) == 0)
                wild = 1;
        free(name);
    }
    return wild;
}

/* An answer to query (may be NULL if it did not decode) must keep the ID and decode. */
static void fz_check_answer(const uint8_t *query, size_t qlen, const uint8_t *ans, size_t alen)
{
    if (qlen < DNS_HEADER_LEN)
        return;
    ldns_pkt *q = NULL;
    if (ldns_wire2pkt(&q, query, qlen) != LDNS_STATUS_OK) {
        /* Undecodable: FORMERR (or nothing); an answer still echoes the ID. */
        if (alen >= 2 && (ans[0] != query[0] || ans[1] != query[1]))
            abort();
        return;
    }
    int wild = fz_name_is_wild(q);
    ldns_pkt_free(q);
    if (wild || alen == 0)
        return;
    if (alen < 2 || ans[0] != query[0] || ans[1] != query[1])
        abort();
    ldns_pkt *a = NULL;
    if (ldns_wire2pkt(&a, ans, alen) != LDNS_STATUS_OK)
        abort();
    ldns_pkt_free(a);
}

static void fz_udp_one(const uint8_t *data, size_t size)
{
    uint8_t ans[65536];
    while (recv(fz_udp, ans, sizeof ans, 0) > 0)
        ;   /* late answers of earlier inputs */
    if (send(fz_udp, data, size, 0) < 0)
        return;
    fz_pump();
    ssize_t n = recv(fz_udp, ans, sizeof ans, 0);
    if (n > 0)
        fz_check_answer(data, size, ans, (size_t)n);
}

static void fz_tcp_one(const uint8_t *data, size_t size)
{
    if (fz_tcp < 0) {
        fz_tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fz_tcp < 0)
            return;
        if (connect(fz_tcp, (struct sockaddr *)&fz_addr, sizeof fz_addr) < 0 && errno != EINPROGRESS) {
            close(fz_tcp);
            fz_tcp = -1;
            return;
        }
        fz_pump();
    }
    uint8_t frame[2 + 65535];
    size_t n = size > 65535 ? 65535 : size;
    frame[0] = (uint8_t)(n >> 8);
    frame[1] = (uint8_t)n;
    memcpy(frame + 2, data, n);
    if (send(fz_tcp, frame, n + 2, MSG_NOSIGNAL) < 0) {
        close(fz_tcp);
        fz_tcp = -1;
        return;
    }
    fz_pump();
    uint8_t buf[4096];
    ssize_t r;
    while ((r = recv(fz_tcp, buf, sizeof buf, 0)) > 0)
        ;   /* answers are checked on the UDP path; here only the framing is exercised */
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        close(fz_tcp);
        fz_tcp = -1;
        fz_pump();
    }
}

/* A well-formed question must still be answered: the server is not wedged. */
static void fz_probe(void)
{
    static const uint8_t q[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                 4, 'n', 'o', 'd', 'e', 4, 't', 'e', 's', 't', 0, 0, 15, 0, 1 };
    uint8_t ans[4096];
    while (recv(fz_udp, ans, sizeof ans, 0) > 0)
        ;
    if (send(fz_udp, q, sizeof q, 0) < 0)
        abort();
    fz_pump();
    ssize_t n = recv(fz_udp, ans, sizeof ans, 0);
    if (n < 12 || ans[0] != 0x12 || ans[1] != 0x34 || (ans[3] & 0x0f) != 0)
        abort();
}

static void fz_malformed(const uint8_t *data, size_t size)
{
    /* The real caller hands cut_off an answer ldns built, so its counts and lengths are
     * consistent; on arbitrary bytes it may return more than len (reported in
     * docs/ROBUSTNESS.md), so the bound is checked where the contract applies. */
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, data, size) == LDNS_STATUS_OK) {
        ldns_pkt_free(p);
        if (dns_malformed_cut_off(data, size) > size)
            abort();
    }
    uint8_t out[512];
    size_t n = dns_malformed_pointer_loop(data, size, out, sizeof out);
    if (n > sizeof out)
        abort();
    for (size_t off = 0; off < size && off < 64; off += 7) {
        size_t end = dns_malformed_skip_name(data, size, off);
        if (end != 0 && (end <= off || end > size))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_base == NULL)
        fz_setup();
    if (size == 0)
        return 0;
    fz_malformed(data + 1, size - 1);
    if (data[0] & 1)
        fz_tcp_one(data + 1, size - 1);
    else
        fz_udp_one(data + 1, size - 1);
    if (++fz_inputs % 256 == 0)
        fz_probe();
    return 0;
}
