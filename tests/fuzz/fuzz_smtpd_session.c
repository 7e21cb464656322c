/* fuzz_smtpd_session.c — libFuzzer target for etrnd's command parser: the whole ESMTP
 * session (server/smtpd.c with server/etrn_cmd.c and server/policy.c) fed arbitrary bytes.
 *
 *   scripts/run-fuzz smtpd_session 60
 *
 * Each input is written, as a client would, into one side of a socketpair whose other
 * side is an smtpd session (a real spool in a temporary folder, no queue runner). The
 * loop runs until the session has ended or a bounded number of turns. Checks: nothing
 * crashes or leaks past the sanitizers, and every reply line the session wrote is a
 * well-formed reply line ("NNN" followed by space, hyphen or the line end, codes 200-599). */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "etrnd_config.h"
#include "log.h"
#include "smtpd.h"
#include "spool.h"
#include "strbuf.h"

static struct event_base *fuzz_base;
static struct etrnd_config *fuzz_cfg;
static struct spool *fuzz_spool;
static struct smtpd *fuzz_smtpd;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/fuzz_smtpd.XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    char conf[256], text[1024];
    str_format(conf, sizeof conf, "%s/etrnd.conf", dir);
    str_format(text, sizeof text,
               "listen = 127.0.0.1:0\nmyhostname = relay.fuzz.test\nspool = %s/spool\n"
               "etrn_domains = node.test\nqueue.uucp = node.test\nmynetworks = 10.0.0.0/8\n"
               "smtpd_max_errors = 50\nmax_recipients = 5\nmessage_size_limit = 64k\n"
               "log_level = error\n",
               dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
    signal(SIGPIPE, SIG_IGN);   /* the client side closes while replies are pending */
    setenv("ETRND_SPOOL_NO_FSYNC", "1", 1);   /* speed: durability is not what is fuzzed */
    struct etrn_err err = {{0}};
    fuzz_base = event_base_new();
    if (fuzz_base == NULL || etrnd_config_load(&fuzz_cfg, conf, &err) < 0 ||
        spool_open(&fuzz_spool, fuzz_cfg->spool, &err) < 0 ||
        smtpd_new(&fuzz_smtpd, fuzz_base, fuzz_cfg, fuzz_spool, NULL, &err) < 0) {
        fprintf(stderr, "fuzz_smtpd_session: set-up failed: %s\n", err.msg);
        abort();
    }
    log_open("fuzz", LOG_LEVEL_ERROR, "/dev/null");
    return 0;
}

/* Every complete line in out[0..n) must look like an SMTP reply line. */
static void check_replies(const char *out, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i] != '\n')
            continue;
        size_t len = i - start;
        const char *l = out + start;
        if (len < 4 || l[len - 1] != '\r')
            abort();
        if (l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9')
            abort();
        if (len > 4 && l[3] != ' ' && l[3] != '-')
            abort();
        start = i + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
    peer.sin_addr.s_addr = htonl(size % 2 ? 0x7f000001 : 0x0a000001);   /* outside / mynetworks */
    if (smtpd_session_start(fuzz_smtpd, sv[0], (struct sockaddr *)&peer, sizeof peer) < 0) {
        close(sv[1]);
        return 0;
    }
    if (fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
        abort();
    size_t sent = 0, got = 0;
    static char out[1 << 20];
    int shut = 0;
    for (int turn = 0; turn < 2000 && smtpd_session_count(fuzz_smtpd) > 0; turn++) {
        if (sent < size) {
            ssize_t w = write(sv[1], data + sent, size - sent);
            if (w > 0)
                sent += (size_t)w;
        } else if (!shut) {
            shutdown(sv[1], SHUT_WR);
            shut = 1;
        }
        event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
        for (;;) {
            char buf[4096];
            ssize_t r = read(sv[1], buf, sizeof buf);
            if (r <= 0)
                break;
            size_t k = (size_t)r;
            if (got + k > sizeof out)
                k = sizeof out - got;
            memcpy(out + got, buf, k);
            got += k;
        }
    }
    check_replies(out, got);
    close(sv[1]);
    /* A session still open (e.g. a delayed reply) is closed before the next input. */
    smtpd_close_sessions(fuzz_smtpd);
    for (int turn = 0; turn < 100 && smtpd_session_count(fuzz_smtpd) > 0; turn++)
        event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
    return 0;
}
