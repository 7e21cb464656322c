/* report.h — writing a run's results: the live console view, JSON (also read back for
 * `etrncheck merge` and --baseline), JUnit XML, TAP and a self-contained HTML page.
 *
 *   report_json_write(&results, "report/etrncheck.json", &err);
 *   report_json_read(&earlier, "baseline.json", &err);
 *   report_junit_write(&results, path, &err);  report_tap_write(...);  report_html_write(...);
 *   struct console con; console_init(&con, stdout, total);  console_done(&con, res, i, n);
 *   console_summary(&con, &results);
 *
 * Guarantees: every writer escapes what it copies from the target (transcripts, reply
 * texts) for its format, writes to a temporary file and renames it into place, so a
 * report is either complete or absent. A path of "-" writes to stdout. */
#ifndef ETRN_REPORT_H
#define ETRN_REPORT_H

#include <stdio.h>
#include "err.h"
#include "scenario.h"
#include "verdict.h"

int report_json_write(const struct run_results *r, const char *path, struct etrn_err *err);
int report_json_write_stream(const struct run_results *r, FILE *f);
/* Reads a file written by report_json_write (scenarios, checks, transcripts). */
int report_json_read(struct run_results *out, const char *path, struct etrn_err *err);
int report_json_read_string(struct run_results *out, const char *name, const char *text,
                            struct etrn_err *err);

int report_junit_write(const struct run_results *r, const char *path, struct etrn_err *err);
int report_junit_write_stream(const struct run_results *r, FILE *f);
int report_tap_write(const struct run_results *r, const char *path, struct etrn_err *err);
int report_tap_write_stream(const struct run_results *r, FILE *f);
int report_html_write(const struct run_results *r, const char *path, struct etrn_err *err);
int report_html_write_stream(const struct run_results *r, FILE *f);

/* Shared by the writers: opens path.tmp (or stdout for "-"), calls fn, renames. */
int report_write_file(const struct run_results *r, const char *path,
                      int (*fn)(const struct run_results *, FILE *), struct etrn_err *err);

/* The console. On a terminal: a progress bar redrawn in place, with problems printed
 * above it; otherwise one plain line per finished scenario. */
struct console {
    FILE *out;
    int tty;
    int verbose;               /* print every scenario's checks, not only problems */
    size_t total;
    size_t counts[VERDICT_COUNT];
    char running[4][80];       /* a few scenario ids in progress, for the bar */
    int bar_drawn;
};

void console_init(struct console *c, FILE *out, size_t total, int force_plain);
void console_started(struct console *c, const struct scenario *sc);
void console_done(struct console *c, const struct scenario_result *res, size_t done,
                  size_t total);
void console_summary(struct console *c, const struct run_results *r);
/* Lists scenarios (for --list): id, level, area, cites, title. */
void console_list(FILE *out, const struct scenario *scs, size_t n);

#endif
