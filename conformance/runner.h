/* runner.h — runs scenarios against a target: one event_base, the simulator's DNS server
 * on the profile's dns_listen, a sink on the requester's own address, and for every
 * scenario a fresh world (its own sink addresses, journal and capture).
 *
 *   struct runner_options o = {.profile = &prof, .jobs = 4, .pcap_dir = "report/pcap"};
 *   struct run_results res; run_results_init(&res);
 *   if (runner_run(&o, scenarios, n, &res, &err) < 0) die(err.msg);   // setup failed
 *
 * Scenario i (its position in the full catalogue, `seq`) gets $node = s<seq>-<run>.<suffix>
 * and the sink addresses 127.1.0.0 + seq*16 + 1..14, so scenarios run in parallel (-j) never
 * share mail or addresses. Every scenario is bounded by its timeout; the runner never
 * waits on the target without a timer. runner_run fails only when the run cannot start
 * (DNS port in use, the target does not come up); everything else is a scenario verdict. */
#ifndef ETRN_RUNNER_H
#define ETRN_RUNNER_H

#include <stddef.h>
#include "err.h"
#include "profile.h"
#include "scenario.h"
#include "verdict.h"

#define RUNNER_SEQ_MAX 4000            /* sink pools must stay inside 127.1.0.0/16 */
#define RUNNER_POOL_SIZE 14

struct runner_options {
    struct target_profile *profile;
    unsigned jobs;                     /* scenarios at once (>= 1) */
    const char *pcap_dir;              /* one capture per scenario, or NULL */
    int no_start;                      /* do not run start/stop/reset even if given */
    const char *run_id;                /* NULL: random */
    /* live progress (console): called when a scenario starts and when it ends */
    void (*on_start)(const struct scenario *sc, void *arg);
    void (*on_done)(const struct scenario_result *res, size_t done, size_t total, void *arg);
    void *progress_arg;
};

/* scs[i] is run with seq[i] (its catalogue position; NULL: i + 1). */
int runner_run(const struct runner_options *o, const struct scenario *scs,
               const unsigned *seq, size_t n, struct run_results *out, struct etrn_err *err);

/* SKIP reason if the profile lacks a capability the scenario requires, else NULL. */
const char *runner_skip_reason(const struct target_profile *p, const struct scenario *sc,
                               char *buf, size_t n);

#endif
