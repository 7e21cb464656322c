/* verdict.h — verdicts and results of a conformance run: per check, per scenario, per
 * requirement ID, and the program's exit code.
 *
 *   enum verdict v = verdict_for_level(SCENARIO_LEVEL_SHOULD);          // VERDICT_WARN
 *   scenario_result_add_check(res, VERDICT_FAIL, reqs, n, file, line, "expect 250", "got 500");
 *   scenario_result_finish(res);  run_results_requirements(run, &reqs, &n);
 *
 * Verdicts, least to most severe: SKIP, PASS, INFO, WARN, FAIL, ERROR. A scenario's verdict
 * is the worst of its checks (SKIP only when nothing was checked or it was skipped whole);
 * a requirement's verdict is the worst of every check naming it across all scenarios.
 * ERROR means the run broke and is never counted as a failure of the target. */
#ifndef ETRN_VERDICT_H
#define ETRN_VERDICT_H

#include <stddef.h>
#include <stdint.h>
#include "scenario.h"
#include "strbuf.h"

enum verdict {
    VERDICT_SKIP = 0,
    VERDICT_PASS,
    VERDICT_INFO,
    VERDICT_WARN,
    VERDICT_FAIL,
    VERDICT_ERROR
};
#define VERDICT_COUNT 6

#define RESULT_TRANSCRIPT_MAX (256 * 1024)   /* per scenario; the rest is cut with a note */
#define RESULT_CHECKS_MAX 2000               /* per scenario; more are summarised */

const char *verdict_name(enum verdict v);          /* "PASS", "FAIL", ... */
int verdict_parse(const char *name, enum verdict *out);
/* MUST → FAIL, SHOULD → WARN, MAY/INFO → INFO (NONE → FAIL, the strict default). */
enum verdict verdict_for_level(enum scenario_level l);
enum verdict verdict_worse(enum verdict a, enum verdict b);

struct check_result {
    enum verdict verdict;
    char **reqs;
    size_t nreqs;
    char *file;
    int line;
    char *what;          /* "expect 250|251 (client c1)" */
    char *detail;        /* "got 500 5.5.2 Syntax error", "observed 252 OK ..." */
};

struct scenario_result {
    char *id;
    char *title;
    char *file;
    char *area;          /* the scenario's folder: syntax, flush, ... */
    enum scenario_level level;
    char **cites;
    size_t ncites;
    enum verdict verdict;
    char *reason;        /* why the verdict (first worst check, or the SKIP/ERROR reason) */
    struct check_result *checks;
    size_t nchecks;
    size_t dropped_checks;
    struct strbuf transcript;
    int64_t duration_ms;
    char *pcap;          /* capture file, or NULL */
    char *node;          /* the $node used */
    int regression;      /* set by run_results_apply_baseline */
};

struct requirement_result {
    char *id;
    enum verdict verdict;
    char **scenarios;    /* ids of the scenarios that name it */
    size_t nscenarios;
    size_t counts[VERDICT_COUNT];   /* check results per verdict */
};

struct run_results {
    struct scenario_result *v;
    size_t n, cap;
    char *target;        /* "127.0.0.1:2525" */
    char *profile;       /* profile name, or "" */
    char *run_id;
    int64_t started_ms;  /* Unix time */
    int64_t wall_ms;
    int baseline_used;
    char *note;          /* a run-level remark ("the target exited during the run ..."), or NULL */
};

/* Initialises res for a scenario (copies id, title, file, cites). */
int scenario_result_init(struct scenario_result *res, const struct scenario *sc);
void scenario_result_free(struct scenario_result *res);
/* Adds a check; reqs are copied. Over RESULT_CHECKS_MAX only the severity is kept. */
int scenario_result_add_check(struct scenario_result *res, enum verdict v,
                              char *const *reqs, size_t nreqs, const char *file, int line,
                              const char *what, const char *detail);
/* Ends the scenario as SKIP or ERROR with a reason (overrides the checks). */
int scenario_result_set_final(struct scenario_result *res, enum verdict v, const char *reason);
/* Computes verdict and reason from the checks (unless SKIP/ERROR was set). */
void scenario_result_finish(struct scenario_result *res);
/* Appends one transcript line (bounded; a note marks the cut). */
void scenario_result_log(struct scenario_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void run_results_init(struct run_results *r);
void run_results_free(struct run_results *r);
/* Takes ownership of res's contents (res is zeroed). */
int run_results_add(struct run_results *r, struct scenario_result *res);
void run_results_sort(struct run_results *r);   /* by scenario id */
void run_results_counts(const struct run_results *r, size_t counts[VERDICT_COUNT]);

/* The verdict one scenario gives one requirement: SKIP if it does not name it, its own
 * verdict if it ended as SKIP or ERROR, else the worst check naming it (PASS if cited and
 * never failed). */
enum verdict scenario_result_requirement(const struct scenario_result *s, const char *req);

/* Every requirement named by any scenario (cites) or check, sorted by ID. */
int run_results_requirements(const struct run_results *r, struct requirement_result **out,
                             size_t *n);
void requirement_results_free(struct requirement_result *v, size_t n);

/* Marks regressions against an earlier run: a FAIL (or WARN→FAIL...) now whose scenario
 * was not FAIL in the baseline. Returns the number of regressions. */
size_t run_results_apply_baseline(struct run_results *r, const struct run_results *baseline);

/* 2 if any ERROR, else 1 if any FAIL (with a baseline: any regression), else 0. */
int run_results_exit_code(const struct run_results *r);

#endif
