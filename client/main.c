/* etrn — the site-side ETRN client: asks a relay to start delivering the mail it holds.
 *
 *   etrn -s relay.example node.example                 # once
 *   etrn -s 127.0.0.1:2525 --on-link-up 'ping -c1 -W1 gw' node.example
 *   etrn -s relay.example --every 30m -@ site.example
 *
 * Prints one line per node in words and exits with the code of the worst outcome
 * (etrn(1)): 0 started, 1 nothing waiting, 2 usage, 3 temporary, 4 refused,
 * 5 unsupported/syntax, 6 connection problem. Retries with exponential back-off apply
 * only to temporary failures and connection problems, never to 459 or 5xx. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <getopt.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "strbuf.h"
#include "etrn_outcome.h"
#include "etrn_session.h"
#include "relay_resolve.h"

#define ETRN_VERSION "etrn (etrnkit) 0.1"

struct client_opts {
    const char *relay;
    struct etrn_session_opts session;
    const char *on_link_up;
    int watch_route;
    unsigned long long every_ms;
    unsigned long max_runs;
    unsigned long retries;
    unsigned long long backoff_ms;
    unsigned long long poll_ms;
    int quiet;
};

struct run_state {
    enum etrn_outcome *outcomes;   /* per node, filled by the callback */
    const struct client_opts *co;
    char session_error[ETRN_ERR_MAX];
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: etrn [-s relay[:port]] [--starttls] [--auth user:passfile] [-@|-#]\n"
            "            [--helo NAME] [--force] [--timeout DUR] [--retries N] [--backoff DUR]\n"
            "            [--on-link-up CMD [--poll DUR]] [--watch-route] [--every DUR [--max-runs N]]\n"
            "            [-q] NODE...\n"
            "Exit: 0 started, 1 nothing waiting, 2 usage, 3 temporary failure, 4 refused,\n"
            "      5 ETRN unsupported or syntax error, 6 connection problem. See etrn(1).\n");
}

static int parse_duration(const char *opt, const char *text, unsigned long long *out)
{
    struct config_entry e = { (char *)opt, (char *)text, "command line", 0, 0 };
    struct etrn_err err = {{0}};
    if (config_parse_duration_ms(&e, out, &err) < 0) {
        fprintf(stderr, "etrn: --%s: '%s' is not a duration (e.g. 30s, 5m, 1h)\n", opt, text);
        return -1;
    }
    return 0;
}

static int parse_count(const char *opt, const char *text, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "etrn: --%s: '%s' is not a count\n", opt, text);
        return -1;
    }
    *out = v;
    return 0;
}

/* Reads "user:passfile": the password is the first line of passfile. */
static int parse_auth(const char *text, struct client_opts *co, char *user, size_t un, char *pass,
                      size_t pn)
{
    const char *colon = strchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0') {
        fprintf(stderr, "etrn: --auth: expected user:passfile, got '%s'\n", text);
        return -1;
    }
    size_t ul = (size_t)(colon - text);
    if (ul >= un) {
        fprintf(stderr, "etrn: --auth: user name too long\n");
        return -1;
    }
    memcpy(user, text, ul);
    user[ul] = '\0';
    FILE *f = fopen(colon + 1, "r");
    if (f == NULL) {
        perror(colon + 1);
        return -1;
    }
    if (fgets(pass, (int)pn, f) == NULL) {
        fprintf(stderr, "etrn: %s: empty password file\n", colon + 1);
        fclose(f);
        return -1;
    }
    fclose(f);
    pass[strcspn(pass, "\r\n")] = '\0';
    co->session.auth_user = user;
    co->session.auth_password = pass;
    return 0;
}

static void sleep_ms(unsigned long long ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* Runs CMD until it exits 0: the site's own test that its link is up. */
static void wait_for_link(const struct client_opts *co)
{
    for (;;) {
        int rc = system(co->on_link_up);
        if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0)
            return;
        if (!co->quiet)
            fprintf(stderr, "etrn: link not up yet (%s); checking again in %llu ms\n",
                    co->on_link_up, co->poll_ms);
        sleep_ms(co->poll_ms);
    }
}

static void session_done(void *arg, const struct etrn_node_result *results, size_t n,
                         const char *session_error)
{
    struct run_state *rs = arg;
    for (size_t i = 0; i < n; i++) {
        const struct etrn_node_result *r = &results[i];
        rs->outcomes[i] = r->outcome;
        if (rs->co->quiet)
            continue;
        if (r->code)
            printf("%s: %s (%d %s)\n", r->node, etrn_outcome_words(r->outcome), r->code, r->text);
        else if (r->text[0])
            printf("%s: %s (%s)\n", r->node, etrn_outcome_words(r->outcome), r->text);
        else
            printf("%s: %s (%s)\n", r->node, etrn_outcome_words(r->outcome),
                   session_error ? session_error : "not sent");
    }
    fflush(stdout);
    if (session_error)
        str_copy(rs->session_error, sizeof rs->session_error, session_error);
}

/* One connection asking for nodes[]; outcomes[] receives one outcome per node. */
static void run_session(const struct client_opts *co, const char *const *nodes, size_t n,
                        enum etrn_outcome *outcomes)
{
    struct run_state rs = { outcomes, co, "" };
    for (size_t i = 0; i < n; i++)
        outcomes[i] = ETRN_CONNECTION;
    struct etrn_session_opts so = co->session;
    struct etrn_err err = {{0}};
    if (relay_resolve(co->relay, 25, so.timeout_ms, &so.relay, &err) < 0) {
        fprintf(stderr, "etrn: %s\n", err.msg);
        return;
    }
    struct event_base *base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "etrn: cannot create an event loop\n");
        return;
    }
    if (etrn_session_start(base, &so, nodes, n, session_done, &rs, &err) < 0)
        fprintf(stderr, "etrn: %s\n", err.msg);
    else
        event_base_dispatch(base);
    event_base_free(base);
    if (rs.session_error[0] && !co->quiet)
        fprintf(stderr, "etrn: %s: %s\n", co->relay, rs.session_error);
}

/* One run: ask for every node, retrying the retryable ones with back-off. */
static enum etrn_outcome run_once(const struct client_opts *co, const char *const *nodes, size_t n)
{
    enum etrn_outcome *outcomes = calloc(n, sizeof *outcomes);
    const char **pending = calloc(n, sizeof *pending);
    size_t *index = calloc(n, sizeof *index);
    enum etrn_outcome *final = calloc(n, sizeof *final);
    if (!outcomes || !pending || !index || !final) {
        fprintf(stderr, "etrn: out of memory\n");
        free(outcomes);
        free(pending);
        free(index);
        free(final);
        return ETRN_CONNECTION;
    }
    size_t npending = n;
    for (size_t i = 0; i < n; i++) {
        pending[i] = nodes[i];
        index[i] = i;
        final[i] = ETRN_CONNECTION;
    }
    unsigned long long backoff = co->backoff_ms;
    for (unsigned long attempt = 0;; attempt++) {
        if (co->on_link_up)
            wait_for_link(co);
        run_session(co, pending, npending, outcomes);
        size_t still = 0;
        for (size_t i = 0; i < npending; i++) {
            final[index[i]] = outcomes[i];
            if (etrn_outcome_retryable(outcomes[i])) {
                pending[still] = pending[i];
                index[still] = index[i];
                still++;
            }
        }
        npending = still;
        if (npending == 0 || attempt >= co->retries)
            break;
        if (!co->quiet)
            fprintf(stderr, "etrn: retrying %zu node(s) in %llu ms\n", npending, backoff);
        sleep_ms(backoff);
        backoff = backoff * 2 > 300000 ? 300000 : backoff * 2;
    }
    enum etrn_outcome worst = ETRN_STARTED;
    for (size_t i = 0; i < n; i++)
        worst = etrn_outcome_worst(worst, final[i]);
    free(outcomes);
    free(pending);
    free(index);
    free(final);
    return worst;
}

int main(int argc, char **argv)
{
    static char auth_user[256], auth_pass[256], helo[256];
    struct client_opts co;
    memset(&co, 0, sizeof co);
    co.relay = "127.0.0.1:25";
    co.session.timeout_ms = 30000;
    co.backoff_ms = 5000;
    co.poll_ms = 5000;

    enum { O_STARTTLS = 256, O_AUTH, O_HELO, O_FORCE, O_TIMEOUT, O_RETRIES, O_BACKOFF,
           O_LINKUP, O_POLL, O_WATCH, O_EVERY, O_MAXRUNS, O_VERSION };
    static const struct option longopts[] = {
        { "server", required_argument, NULL, 's' },
        { "starttls", no_argument, NULL, O_STARTTLS },
        { "auth", required_argument, NULL, O_AUTH },
        { "helo", required_argument, NULL, O_HELO },
        { "force", no_argument, NULL, O_FORCE },
        { "timeout", required_argument, NULL, O_TIMEOUT },
        { "retries", required_argument, NULL, O_RETRIES },
        { "backoff", required_argument, NULL, O_BACKOFF },
        { "on-link-up", required_argument, NULL, O_LINKUP },
        { "poll", required_argument, NULL, O_POLL },
        { "watch-route", no_argument, NULL, O_WATCH },
        { "every", required_argument, NULL, O_EVERY },
        { "max-runs", required_argument, NULL, O_MAXRUNS },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, O_VERSION },
        { NULL, 0, NULL, 0 },
    };
    int retries_given = 0;
    int c;
    while ((c = getopt_long(argc, argv, "s:@#qh", longopts, NULL)) != -1) {
        unsigned long long ms;
        switch (c) {
        case 's': co.relay = optarg; break;
        case '@': co.session.option = '@'; break;
        case '#': co.session.option = '#'; break;
        case 'q': co.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: puts(ETRN_VERSION); return 0;
        case O_STARTTLS: co.session.starttls = 1; break;
        case O_AUTH:
            if (parse_auth(optarg, &co, auth_user, sizeof auth_user, auth_pass, sizeof auth_pass) < 0)
                return ETRN_EXIT_USAGE;
            break;
        case O_HELO:
            if (str_copy(helo, sizeof helo, optarg) < 0) {
                fprintf(stderr, "etrn: --helo: name too long\n");
                return ETRN_EXIT_USAGE;
            }
            co.session.helo_name = helo;
            break;
        case O_FORCE: co.session.force = 1; break;
        case O_TIMEOUT:
            if (parse_duration("timeout", optarg, &ms) < 0 || ms == 0 || ms > 3600000)
                return ETRN_EXIT_USAGE;
            co.session.timeout_ms = (unsigned)ms;
            break;
        case O_RETRIES:
            if (parse_count("retries", optarg, &co.retries) < 0)
                return ETRN_EXIT_USAGE;
            retries_given = 1;
            break;
        case O_BACKOFF:
            if (parse_duration("backoff", optarg, &co.backoff_ms) < 0)
                return ETRN_EXIT_USAGE;
            break;
        case O_LINKUP: co.on_link_up = optarg; break;
        case O_POLL:
            if (parse_duration("poll", optarg, &co.poll_ms) < 0)
                return ETRN_EXIT_USAGE;
            break;
        case O_WATCH: co.watch_route = 1; break;
        case O_EVERY:
            if (parse_duration("every", optarg, &co.every_ms) < 0 || co.every_ms == 0)
                return ETRN_EXIT_USAGE;
            break;
        case O_MAXRUNS:
            if (parse_count("max-runs", optarg, &co.max_runs) < 0)
                return ETRN_EXIT_USAGE;
            break;
        default:
            usage(stderr);
            return ETRN_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "etrn: name at least one node to ask for\n");
        usage(stderr);
        return ETRN_EXIT_USAGE;
    }
    if (co.session.auth_user && !co.session.starttls) {
        fprintf(stderr, "etrn: --auth needs --starttls: the password is never sent in clear\n");
        return ETRN_EXIT_USAGE;
    }
    if (co.session.helo_name == NULL) {
        if (gethostname(helo, sizeof helo) < 0 || helo[0] == '\0')
            str_copy(helo, sizeof helo, "localhost.localdomain");
        helo[sizeof helo - 1] = '\0';
        co.session.helo_name = helo;
    }
    /* Waiting for the link means connection problems are expected: keep trying. */
    if ((co.watch_route || co.on_link_up) && !retries_given)
        co.retries = 10;

    const char *const *nodes = (const char *const *)&argv[optind];
    size_t nnodes = (size_t)(argc - optind);
    enum etrn_outcome worst = ETRN_STARTED;
    for (unsigned long run = 1;; run++) {
        worst = run_once(&co, nodes, nnodes);
        if (co.every_ms == 0 || (co.max_runs && run >= co.max_runs))
            break;
        sleep_ms(co.every_ms);
    }
    return etrn_outcome_exit_code(worst);
}
