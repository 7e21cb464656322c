/* report_tap.c — the run as TAP version 13 (Test Anything Protocol).
 *
 *   report_tap_write(&run, "report/etrncheck.tap", &err);
 *
 * One test point per scenario: PASS/INFO/WARN are "ok" (WARN and INFO carry a YAML block
 * with the findings), FAIL and ERROR are "not ok", SKIP is "ok ... # SKIP reason".
 * Guarantees: every line starts with a TAP keyword or is inside a YAML block; text from
 * the target never contains a newline or '#' that could be misread. */
#include <stdio.h>
#include <string.h>

#include "report.h"

/* One line of text: newlines and '#' replaced, controls dropped. */
static void tap_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '\n' || *p == '\r')
            fputs(" / ", f);
        else if (*p == '#')
            fputs("(hash)", f);
        else if (*p >= 0x20 && *p < 0x7f)
            fputc(*p, f);
    }
}

static void yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p >= 0x20 && *p < 0x7f)
            fputc(*p, f);
        else
            fprintf(f, "\\x%02x", *p);
    }
    fputc('"', f);
}

int report_tap_write_stream(const struct run_results *r, FILE *f)
{
    fprintf(f, "TAP version 13\n1..%zu\n", r->n);
    for (size_t i = 0; i < r->n; i++) {
        const struct scenario_result *s = &r->v[i];
        int bad = s->verdict == VERDICT_FAIL || s->verdict == VERDICT_ERROR;
        fprintf(f, "%s %zu - ", bad ? "not ok" : "ok", i + 1);
        tap_text(f, s->id);
        fputs(": ", f);
        tap_text(f, s->title);
        if (s->verdict == VERDICT_SKIP) {
            fputs(" # SKIP ", f);
            tap_text(f, s->reason);
        }
        fputc('\n', f);
        if (s->verdict == VERDICT_PASS || s->verdict == VERDICT_SKIP)
            continue;
        fputs("  ---\n  verdict: ", f);
        fputs(verdict_name(s->verdict), f);
        fputs("\n  reason: ", f);
        yaml_quoted(f, s->reason);
        fputs("\n  findings:\n", f);
        for (size_t k = 0; k < s->nchecks; k++) {
            const struct check_result *c = &s->checks[k];
            if (c->verdict == VERDICT_PASS)
                continue;
            fprintf(f, "    - verdict: %s\n      line: %d\n      requirements: [",
                    verdict_name(c->verdict), c->line);
            for (size_t x = 0; x < c->nreqs; x++)
                fprintf(f, "%s%s", x ? ", " : "", c->reqs[x]);
            fputs("]\n      what: ", f);
            yaml_quoted(f, c->what);
            fputs("\n      detail: ", f);
            yaml_quoted(f, c->detail);
            fputc('\n', f);
        }
        fputs("  ...\n", f);
    }
    return ferror(f) ? -1 : 0;
}

int report_tap_write(const struct run_results *r, const char *path, struct etrn_err *err)
{
    return report_write_file(r, path, report_tap_write_stream, err);
}
