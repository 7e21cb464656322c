/* main.c — etrncheck, the ETRN conformance runner (docs/man/etrncheck.1).
 *
 *   etrncheck --profile fixtures/targets/etrnd.profile -j 8 --json report/r.json
 *   etrncheck --target 127.0.0.1:2525 --dns-listen 127.0.0.1:5353 --only etrn.flush.basic
 *   etrncheck merge shard1.json shard2.json --html report.html
 *
 * Exit status: 0 no FAIL; 1 FAIL (with --baseline: a regression); 2 usage error, a run
 * that could not start, or any ERROR. Only this file prints and exits. */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture_import.h"
#include "capture_scenario.h"
#include "catalogue.h"
#include "client_check.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "profile.h"
#include "replay.h"
#include "report.h"
#include "runner.h"
#include "scenario.h"
#include "verdict.h"

#define ETRNCHECK_VERSION "0.1"

struct outputs {
    const char *json, *junit, *tap, *html, *baseline;
};

static void usage(FILE *f)
{
    fputs("usage: etrncheck [--profile FILE] [--KEY VALUE ...] [options]\n"
          "       etrncheck merge [--json F] [--junit F] [--tap F] [--html F] [--baseline F] A.json B.json ...\n"
          "       etrncheck --check FILE.scn ...\n"
          "       etrncheck import CAPTURE [-o FILE.scn] [--all-sessions] [--id ID] [--dns-port N]\n"
          "       etrncheck replay CAPTURE --target HOST:PORT [--node NAME] [--source ADDR]\n"
          "                [--step-timeout DUR] [--class-only] [--all-sessions] [-v]\n"
          "       etrncheck client --client-cmd 'bin/etrn -s {relay} {node}' [--scenarios DIR] [--only ID]\n"
          "Target (profile keys, see docs/TARGETS.md): --target HOST:PORT --dns-listen ADDR:PORT\n"
          "  --node-suffix DOMAIN --sink-port N --source ADDR --denied-source ADDR --hostname NAME\n"
          "  --capabilities LIST --start CMD --stop CMD --reset CMD --queue-list CMD\n"
          "  --config-template FILE --config-file PATH --scenarios DIR --work-dir DIR\n"
          "  --step-timeout DUR --scenario-timeout DUR --flush-timeout DUR --quiet-timeout DUR\n"
          "Selection: --list --only ID[,ID] --filter GLOB --level MUST|SHOULD|MAY|INFO --shard I/N\n"
          "Running:   -j N (--jobs N) --no-start --keep-work --pcap-dir DIR --run-id TOKEN\n"
          "Output:    --json F --junit F --tap F --html F (\"-\" = stdout) --baseline F --plain -v\n"
          "Exit: 0 no FAIL, 1 FAIL (or a regression with --baseline), 2 usage or ERROR.\n",
          f);
}

static int die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "etrncheck: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    return 2;
}

static int write_outputs(struct run_results *r, const struct outputs *o)
{
    struct etrn_err err;
    int rc = 0;
    struct { const char *path; int (*fn)(const struct run_results *, const char *, struct etrn_err *); } w[] = {
        {o->json, report_json_write}, {o->junit, report_junit_write},
        {o->tap, report_tap_write}, {o->html, report_html_write},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (w[i].path && w[i].fn(r, w[i].path, &err) < 0) {
            fprintf(stderr, "etrncheck: %s\n", err.msg);
            rc = 2;
        }
    return rc;
}

static int apply_baseline(struct run_results *r, const char *path)
{
    struct run_results base;
    struct etrn_err err;
    if (report_json_read(&base, path, &err) < 0) {
        fprintf(stderr, "etrncheck: --baseline: %s\n", err.msg);
        return -1;
    }
    run_results_apply_baseline(r, &base);
    run_results_free(&base);
    return 0;
}

/* ---- merge ------------------------------------------------------------------------------------ */

static int cmd_merge(int argc, char **argv)
{
    struct outputs o = {0};
    struct run_results all;
    run_results_init(&all);
    int plain = 0, nfiles = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--json") == 0    ? &o.json
                            : strcmp(a, "--junit") == 0 ? &o.junit
                            : strcmp(a, "--tap") == 0   ? &o.tap
                            : strcmp(a, "--html") == 0  ? &o.html
                            : strcmp(a, "--baseline") == 0 ? &o.baseline
                                                           : NULL;
        if (slot) {
            if (i + 1 >= argc)
                return die_usage("%s needs a file", a);
            *slot = argv[++i];
            continue;
        }
        if (strcmp(a, "--plain") == 0) {
            plain = 1;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0')
            return die_usage("merge: unknown option %s", a);
        struct run_results part;
        struct etrn_err err;
        if (report_json_read(&part, a, &err) < 0) {
            fprintf(stderr, "etrncheck: merge: %s\n", err.msg);
            run_results_free(&all);
            return 2;
        }
        nfiles++;
        if (all.target == NULL) {
            all.target = part.target ? strdup(part.target) : NULL;
            all.profile = part.profile ? strdup(part.profile) : NULL;
            all.run_id = part.run_id ? strdup(part.run_id) : NULL;
            all.started_ms = part.started_ms;
        }
        if (part.wall_ms > all.wall_ms)
            all.wall_ms = part.wall_ms;   /* shards run side by side */
        for (size_t k = 0; k < part.n; k++) {
            int dup = 0;
            for (size_t j = 0; j < all.n; j++)
                if (strcmp(all.v[j].id, part.v[k].id) == 0)
                    dup = 1;
            if (dup) {
                fprintf(stderr, "etrncheck: merge: %s: scenario %s already merged; keeping the "
                                "first\n", a, part.v[k].id);
                continue;
            }
            run_results_add(&all, &part.v[k]);
        }
        run_results_free(&part);
    }
    if (nfiles == 0)
        return die_usage("%s", "merge needs result files");
    run_results_sort(&all);
    if (o.baseline && apply_baseline(&all, o.baseline) < 0) {
        run_results_free(&all);
        return 2;
    }
    struct console con;
    console_init(&con, stdout, all.n, plain);
    console_summary(&con, &all);
    int rc = write_outputs(&all, &o);
    int code = run_results_exit_code(&all);
    run_results_free(&all);
    return rc ? rc : code;
}

/* ---- the work folder ----------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

struct selection {
    char **only;
    size_t nonly;
    const char *filter;
    enum scenario_level level;
    unsigned shard_i, shard_n;
};

static int selected(const struct selection *s, const struct scenario *sc, unsigned seq)
{
    if (s->nonly) {
        int found = 0;
        for (size_t i = 0; i < s->nonly; i++)
            if (strcmp(s->only[i], sc->id) == 0)
                found = 1;
        if (!found)
            return 0;
    }
    if (s->filter && !scenario_glob_match(s->filter, sc->id))
        return 0;
    if (s->level && sc->level > s->level)
        return 0;
    if (s->shard_n && (seq - 1) % s->shard_n != s->shard_i - 1)
        return 0;
    return 1;
}

struct progress {
    struct console *con;
};

static void on_start(const struct scenario *sc, void *arg)
{
    struct progress *p = arg;
    console_started(p->con, sc);
}

static void on_done(const struct scenario_result *res, size_t done, size_t total, void *arg)
{
    struct progress *p = arg;
    console_done(p->con, res, done, total);
}

static int check_files(int argc, char **argv, int from)
{
    int bad = 0;
    for (int i = from; i < argc; i++) {
        struct scenario sc;
        struct etrn_err err;
        if (scenario_parse_file(&sc, argv[i], &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            bad = 1;
            continue;
        }
        printf("%s: ok (%s, %zu steps)\n", argv[i], sc.id, sc.nsteps_total);
        scenario_free(&sc);
    }
    return bad ? 2 : 0;
}

/* ---- client: conformance of an ETRN client program (conformance/client_check.h) ---------- */

static int cmd_client(int argc, char **argv)
{
    struct client_check_options co = {0};
    struct outputs o = {0};
    const char *dir = "fixtures/scenarios/client", *only = NULL;
    int plain = 0, verbose = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--client-cmd") == 0       ? &co.command
                            : strcmp(a, "--client-cmd-tls") == 0 ? &co.tls_command
                            : strcmp(a, "--client-caps") == 0    ? &co.caps
                            : strcmp(a, "--scenarios") == 0      ? &dir
                            : strcmp(a, "--only") == 0           ? &only
                            : strcmp(a, "--run-id") == 0         ? &co.run_id
                            : strcmp(a, "--json") == 0           ? &o.json
                            : strcmp(a, "--junit") == 0          ? &o.junit
                            : strcmp(a, "--tap") == 0            ? &o.tap
                            : strcmp(a, "--html") == 0           ? &o.html
                                                                 : NULL;
        if (slot) {
            if (i + 1 >= argc)
                return die_usage("%s needs a value", a);
            *slot = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            if (scenario_duration_parse(argv[++i], &co.timeout_ms) < 0)
                return die_usage("--timeout: '%s' is not a duration", argv[i]);
        } else if (strcmp(a, "--plain") == 0) {
            plain = 1;
        } else if (strcmp(a, "-v") == 0) {
            verbose = 1;
        } else {
            return die_usage("client: unknown option %s (--client-cmd CMD [--client-cmd-tls "
                             "CMD] [--client-caps LIST] [--scenarios DIR] [--only ID,...] "
                             "[--timeout DUR] [--json F ...])", a);
        }
    }
    if (co.command == NULL)
        return die_usage("client needs %s", "--client-cmd 'bin/etrn -s {relay} {node}'");
    struct scenario *scs;
    size_t n;
    struct etrn_err err;
    if (catalogue_load(dir, &scs, &n, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        return 2;
    }
    struct run_results results;
    run_results_init(&results);
    results.target = strdup(co.command);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    results.started_ms = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000;
    struct console con;
    console_init(&con, stdout, n, plain);
    con.verbose = verbose;
    for (size_t i = 0; i < n; i++) {
        if (only) {
            size_t il = strlen(scs[i].id);
            const char *hit = strstr(only, scs[i].id);
            if (!hit || (hit != only && hit[-1] != ',') || (hit[il] && hit[il] != ','))
                continue;
        }
        struct scenario_result res;
        if (scenario_result_init(&res, &scs[i]) < 0)
            break;
        console_started(&con, &scs[i]);
        if (client_check_run(&co, &scs[i], (unsigned)(i + 1), &res, &err) < 0)
            fprintf(stderr, "etrncheck: %s: %s\n", scs[i].id, err.msg);
        if (res.verdict == VERDICT_SKIP || res.verdict == VERDICT_ERROR)
            scenario_result_finish(&res);
        console_done(&con, &res, i + 1, n);
        run_results_add(&results, &res);
    }
    clock_gettime(CLOCK_REALTIME, &t1);
    results.wall_ms = (int64_t)t1.tv_sec * 1000 + t1.tv_nsec / 1000000 - results.started_ms;
    console_summary(&con, &results);
    int rc = write_outputs(&results, &o);
    int code = run_results_exit_code(&results);
    run_results_free(&results);
    catalogue_free(scs, n);
    return rc ? rc : code;
}

/* ---- import and replay (capture_import.h, capture_scenario.h, replay.h) -------------------- */

struct capture_args {
    const char *capture, *out, *id, *target, *source, *node;
    int all_sessions, verbose, class_only;
    unsigned long long step_ms;
    struct capture_options copt;
};

static int capture_args_parse(int argc, char **argv, struct capture_args *a, int replay)
{
    memset(a, 0, sizeof *a);
    size_t nports = 0;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(s, "--all-sessions") == 0) { a->all_sessions = 1; takes = 0; }
        else if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) { a->verbose = 1; takes = 0; }
        else if (!replay && (strcmp(s, "-o") == 0 || strcmp(s, "--output") == 0)) a->out = v;
        else if (!replay && strcmp(s, "--id") == 0) a->id = v;
        else if (replay && strcmp(s, "--class-only") == 0) { a->class_only = 1; takes = 0; }
        else if (replay && strcmp(s, "--target") == 0) a->target = v;
        else if (replay && strcmp(s, "--source") == 0) a->source = v;
        else if (replay && strcmp(s, "--node") == 0) a->node = v;
        else if (replay && strcmp(s, "--step-timeout") == 0) {
            if (v && scenario_duration_parse(v, &a->step_ms) < 0)
                return die_usage("--step-timeout: '%s' is not a duration (10s, 500ms)", v);
        } else if (strcmp(s, "--dns-port") == 0) {
            int p = v ? atoi(v) : 0;
            if (p < 1 || p > 65535 || nports + 1 >= CAPTURE_DNS_PORT_MAX)
                return die_usage("--dns-port: '%s' is not a port (at most 7)", v ? v : "");
            a->copt.dns_ports[nports++] = p;
        } else if (s[0] == '-' && s[1] != '\0') {
            return die_usage("unknown option %s", s);
        } else if (a->capture == NULL) {
            a->capture = s;
            takes = 0;
        } else {
            return die_usage("unexpected argument '%s'", s);
        }
        if (takes && v == NULL)
            return die_usage("%s needs a value", s);
        i += takes;
    }
    if (a->capture == NULL)
        return die_usage("%s needs a capture file", replay ? "replay" : "import");
    if (replay && a->target == NULL)
        return die_usage("%s", "replay needs --target HOST:PORT");
    return 0;
}

/* Reads the capture and pairs its sessions; notes go to stderr. */
static int capture_load(const struct capture_args *a, struct capture *cap,
                        struct capture_dialogues *d)
{
    struct etrn_err err;
    struct capture_scenario_options so = {.all_sessions = a->all_sessions, .id = a->id};
    if (capture_import_file(cap, a->capture, &a->copt, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < cap->nnotes; i++)
        fprintf(stderr, "etrncheck: %s\n", cap->notes[i]);
    if (capture_dialogues_build(d, cap, &so, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        capture_free(cap);
        return -1;
    }
    for (size_t i = 0; i < d->nnotes; i++)
        fprintf(stderr, "etrncheck: %s\n", d->notes[i]);
    return 0;
}

static int cmd_import(int argc, char **argv)
{
    struct capture_args a;
    if (capture_args_parse(argc, argv, &a, 0) != 0)
        return 2;
    struct capture cap;
    struct capture_dialogues d;
    if (capture_load(&a, &cap, &d) < 0)
        return 2;
    struct capture_scenario_options so = {.all_sessions = a.all_sessions, .id = a.id};
    struct strbuf text;
    strbuf_init(&text, SCENARIO_FILE_MAX);
    struct etrn_err err;
    struct scenario sc;
    int rc = 2;
    if (capture_scenario_format(&d, &cap, &so, &text, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        goto out;
    }
    const char *name = a.out ? a.out : "(stdout)";
    if (scenario_parse_string(&sc, name, text.data, &err) < 0) {
        fprintf(stderr, "etrncheck: %s: the scenario made from the capture does not parse: %s\n",
                a.capture, err.msg);
        goto out;
    }
    if (a.out == NULL) {
        rc = fwrite(text.data, 1, text.len, stdout) == text.len && fflush(stdout) == 0 ? 0 : 2;
    } else if (fileio_write_file_atomic(a.out, text.data, text.len, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
    } else {
        rc = 0;
    }
    if (rc == 0)
        fprintf(stderr, "etrncheck: %s: scenario %s, %zu steps, from %zu of %zu SMTP sessions\n",
                name, sc.id, sc.nsteps_total, d.netrn && !a.all_sessions ? d.netrn : d.nsmtp,
                d.nsmtp);
    scenario_free(&sc);
out:
    strbuf_free(&text);
    capture_dialogues_free(&d);
    capture_free(&cap);
    return rc;
}

static int cmd_replay(int argc, char **argv)
{
    struct capture_args a;
    if (capture_args_parse(argc, argv, &a, 1) != 0)
        return 2;
    struct capture cap;
    struct capture_dialogues d;
    if (capture_load(&a, &cap, &d) < 0)
        return 2;
    struct replay_options ro = {.target = a.target, .source = a.source, .node = a.node,
                                .step_timeout_ms = a.step_ms, .class_only = a.class_only};
    struct replay_result res;
    replay_result_init(&res);
    struct etrn_err err;
    int rc = 2;
    if (replay_run(&d, &cap, &ro, &res, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
    } else {
        if (a.verbose)
            fwrite(res.transcript.data, 1, res.transcript.len, stdout);
        if (res.differs) {
            printf("etrncheck: replay %s against %s: DIFFERS at %s\n", a.capture, a.target, res.what);
            rc = 1;
        } else {
            printf("etrncheck: replay %s against %s: %zu session(s), %zu replies, every %s as "
                   "captured\n", a.capture, a.target, res.sessions, res.compared,
                   a.class_only ? "reply class" : "code");
            rc = 0;
        }
    }
    replay_result_free(&res);
    capture_dialogues_free(&d);
    capture_free(&cap);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    log_open("etrncheck", LOG_LEVEL_WARN, NULL);
    if (argc > 1 && strcmp(argv[1], "merge") == 0)
        return cmd_merge(argc, argv);
    if (argc > 1 && strcmp(argv[1], "import") == 0)
        return cmd_import(argc, argv);
    if (argc > 1 && strcmp(argv[1], "replay") == 0)
        return cmd_replay(argc, argv);
    if (argc > 1 && strcmp(argv[1], "client") == 0)
        return cmd_client(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--check") == 0)
        return check_files(argc, argv, 2);

    struct target_profile prof;
    profile_init(&prof);
    struct etrn_err err;
    struct outputs out = {0};
    struct selection sel = {0};
    int list = 0, plain = 0, verbose = 0, keep_work = 0, no_start = 0;
    const char *pcap_dir = NULL, *run_id = NULL;
    long jobs = -1;
    int rc = 2;

    /* --profile first, so options given anywhere override it */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--profile") == 0) {
            if (i + 1 >= argc)
                return die_usage("%s needs a file", "--profile");
            if (profile_load_file(&prof, argv[i + 1], &err) < 0) {
                fprintf(stderr, "etrncheck: %s\n", err.msg);
                profile_free(&prof);
                return 2;
            }
        }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        char key[64];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            profile_free(&prof);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("etrncheck %s\n", ETRNCHECK_VERSION);
            profile_free(&prof);
            return 0;
        }
        if (strcmp(a, "--profile") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--list") == 0) { list = 1; continue; }
        if (strcmp(a, "--plain") == 0) { plain = 1; continue; }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) { verbose = 1; continue; }
        if (strcmp(a, "--keep-work") == 0) { keep_work = 1; continue; }
        if (strcmp(a, "--no-start") == 0) { no_start = 1; continue; }
        if (strncmp(a, "--", 2) != 0 && strcmp(a, "-j") != 0) {
            rc = die_usage("unexpected argument '%s'", a);
            goto out;
        }
        /* options with a value: --opt VALUE or --opt=VALUE */
        const char *name = a[1] == '-' ? a + 2 : a + 1;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen >= sizeof key) {
            rc = die_usage("unknown option %s", a);
            goto out;
        }
        memcpy(key, name, nlen);
        key[nlen] = '\0';
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                rc = die_usage("%s needs a value", a);
                goto out;
            }
            val = argv[++i];
        }
        for (char *c = key; *c; c++)
            if (*c == '-')
                *c = '_';
        if (strcmp(key, "j") == 0 || strcmp(key, "jobs") == 0) {
            char *end;
            jobs = strtol(val, &end, 10);
            if (*end || jobs < 1 || jobs > 64) {
                rc = die_usage("-j: '%s' is not a number from 1 to 64", val);
                goto out;
            }
        } else if (strcmp(key, "only") == 0) {
            char **items;
            size_t n;
            if (config_split_list(val, &items, &n) < 0)
                goto out;
            char **v = realloc(sel.only, (sel.nonly + n) * sizeof *v);
            if (v == NULL)
                goto out;
            sel.only = v;
            memcpy(v + sel.nonly, items, n * sizeof *v);
            sel.nonly += n;
            free(items);
        } else if (strcmp(key, "filter") == 0) {
            sel.filter = val;
        } else if (strcmp(key, "level") == 0) {
            if (scenario_level_parse(val, &sel.level) < 0) {
                rc = die_usage("--level: '%s' is not MUST, SHOULD, MAY or INFO", val);
                goto out;
            }
        } else if (strcmp(key, "shard") == 0) {
            if (sscanf(val, "%u/%u", &sel.shard_i, &sel.shard_n) != 2 || sel.shard_n == 0 ||
                sel.shard_i < 1 || sel.shard_i > sel.shard_n) {
                rc = die_usage("--shard: '%s' is not I/N with 1 <= I <= N", val);
                goto out;
            }
        } else if (strcmp(key, "json") == 0) {
            out.json = val;
        } else if (strcmp(key, "junit") == 0) {
            out.junit = val;
        } else if (strcmp(key, "tap") == 0) {
            out.tap = val;
        } else if (strcmp(key, "html") == 0) {
            out.html = val;
        } else if (strcmp(key, "baseline") == 0) {
            out.baseline = val;
        } else if (strcmp(key, "pcap_dir") == 0) {
            pcap_dir = val;
        } else if (strcmp(key, "run_id") == 0) {
            run_id = val;
        } else if (profile_is_key(key)) {
            char where[80];
            snprintf(where, sizeof where, "--%.60s", name);
            if (eq)
                where[2 + nlen < sizeof where ? 2 + nlen : sizeof where - 1] = '\0';
            if (profile_set(&prof, key, val, where, &err) < 0) {
                fprintf(stderr, "etrncheck: %s\n", err.msg);
                goto out;
            }
        } else {
            rc = die_usage("unknown option %s", a);
            goto out;
        }
    }

    /* the catalogue */
    struct scenario *scs = NULL;
    size_t nscs = 0;
    const char *dir = prof.scenarios ? prof.scenarios : "fixtures/scenarios";
    if (catalogue_load(dir, &scs, &nscs, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        goto out;
    }
    struct scenario *pick = calloc(nscs ? nscs : 1, sizeof *pick);
    unsigned *seq = calloc(nscs ? nscs : 1, sizeof *seq);
    size_t npick = 0;
    if (pick == NULL || seq == NULL) {
        free(pick);
        free(seq);
        catalogue_free(scs, nscs);
        goto out;
    }
    for (size_t i = 0; i < nscs; i++)
        if (selected(&sel, &scs[i], (unsigned)(i + 1))) {
            pick[npick] = scs[i];   /* shallow: scs owns the memory */
            seq[npick++] = (unsigned)(i + 1);
        }
    for (size_t i = 0; i < sel.nonly; i++) {
        int found = 0;
        for (size_t k = 0; k < nscs; k++)
            if (strcmp(scs[k].id, sel.only[i]) == 0)
                found = 1;
        if (!found)
            fprintf(stderr, "etrncheck: --only: no scenario '%s' in %s\n", sel.only[i], dir);
    }
    if (list) {
        console_list(stdout, pick, npick);
        printf("%zu scenario(s)\n", npick);
        rc = 0;
        goto done;
    }
    if (profile_finish(&prof, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        goto done;
    }
    if (npick == 0) {
        fprintf(stderr, "etrncheck: no scenario selected\n");
        goto done;
    }

    /* the work folder and program paths for {placeholders} */
    int made_work = 0;
    if (prof.work_dir == NULL) {
        char tmpl[] = "/tmp/etrncheck.XXXXXX";
        if (mkdtemp(tmpl) == NULL) {
            perror("etrncheck: mkdtemp");
            goto done;
        }
        prof.work_dir = strdup(tmpl);
        made_work = 1;
    } else if (fileio_mkdirs(prof.work_dir, 0755, &err) < 0) {
        fprintf(stderr, "etrncheck: work_dir: %s\n", err.msg);
        goto done;
    }
    const char *root = getenv("ETRNKIT_ROOT");
    const char *bin = getenv("ETRNKIT_BIN");
    prof.root = strdup(root ? root : ".");
    prof.bin = strdup(bin ? bin : "bin");
    if (pcap_dir && fileio_mkdirs(pcap_dir, 0755, &err) < 0) {
        fprintf(stderr, "etrncheck: --pcap-dir: %s\n", err.msg);
        goto done;
    }

    struct console con;
    console_init(&con, stdout, npick, plain);
    con.verbose = verbose;
    struct progress prog = {&con};
    struct runner_options ro = {
        .profile = &prof,
        .jobs = jobs > 0 ? (unsigned)jobs : prof.jobs,
        .pcap_dir = pcap_dir,
        .no_start = no_start,
        .run_id = run_id,
        .on_start = on_start,
        .on_done = on_done,
        .progress_arg = &prog,
    };
    struct run_results res;
    run_results_init(&res);
    if (runner_run(&ro, pick, seq, npick, &res, &err) < 0) {
        fprintf(stderr, "etrncheck: %s\n", err.msg);
        fprintf(stderr, "etrncheck: work folder kept: %s\n", prof.work_dir);
        run_results_free(&res);
        goto done;
    }
    run_results_sort(&res);
    if (out.baseline && apply_baseline(&res, out.baseline) < 0) {
        run_results_free(&res);
        goto done;
    }
    console_summary(&con, &res);
    int wrc = write_outputs(&res, &out);
    rc = run_results_exit_code(&res);
    if (wrc)
        rc = 2;
    run_results_free(&res);
    if (made_work && !keep_work && rc == 0)
        nftw(prof.work_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (made_work)
        printf("etrncheck: work folder kept: %s\n", prof.work_dir);
done:
    free(pick);
    free(seq);
    catalogue_free(scs, nscs);
out:
    for (size_t i = 0; i < sel.nonly; i++)
        free(sel.only[i]);
    free(sel.only);
    profile_free(&prof);
    return rc;
}
