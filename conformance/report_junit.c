/* report_junit.c — the run as JUnit XML, for CI systems that show test results.
 *
 *   report_junit_write(&run, "report/etrncheck.junit.xml", &err);
 *
 * One <testsuite> per scenario folder (syntax, flush, ...), one <testcase> per scenario:
 * FAIL is a <failure>, ERROR an <error>, SKIP <skipped>; WARN and INFO pass, with their
 * findings in <system-out> next to the transcript. Guarantees: well-formed XML 1.0 —
 * markup characters are escaped and bytes XML cannot carry (controls, non-ASCII from the
 * target) are replaced, so any reply text is safe. */
#include <stdio.h>
#include <string.h>

#include "report.h"

static void xml_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p >= 0x7f)
                fputc('?', f);
            else
                fputc(*p, f);
        }
    }
}

static int area_seen_before(const struct run_results *r, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(r->v[k].area, r->v[i].area) == 0)
            return 1;
    return 0;
}

static void findings(FILE *f, const struct scenario_result *s)
{
    for (size_t k = 0; k < s->nchecks; k++) {
        const struct check_result *c = &s->checks[k];
        if (c->verdict == VERDICT_PASS)
            continue;
        fprintf(f, "%s ", verdict_name(c->verdict));
        for (size_t x = 0; x < c->nreqs; x++) {
            xml_text(f, c->reqs[x]);
            fputc(' ', f);
        }
        fprintf(f, "line %d: ", c->line);
        xml_text(f, c->what);
        fputs(": ", f);
        xml_text(f, c->detail);
        fputc('\n', f);
    }
}

int report_junit_write_stream(const struct run_results *r, FILE *f)
{
    size_t counts[VERDICT_COUNT];
    run_results_counts(r, counts);
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f, "<testsuites name=\"etrncheck\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
               "skipped=\"%zu\" time=\"%.3f\">\n",
            r->n, counts[VERDICT_FAIL], counts[VERDICT_ERROR], counts[VERDICT_SKIP],
            (double)r->wall_ms / 1000.0);
    for (size_t i = 0; i < r->n; i++) {
        if (area_seen_before(r, i))
            continue;
        const char *area = r->v[i].area[0] ? r->v[i].area : "scenarios";
        size_t n = 0, fail = 0, err = 0, skip = 0;
        double t = 0;
        for (size_t k = i; k < r->n; k++)
            if (strcmp(r->v[k].area, r->v[i].area) == 0) {
                n++;
                fail += r->v[k].verdict == VERDICT_FAIL;
                err += r->v[k].verdict == VERDICT_ERROR;
                skip += r->v[k].verdict == VERDICT_SKIP;
                t += (double)r->v[k].duration_ms / 1000.0;
            }
        fputs("  <testsuite name=\"etrncheck.", f);
        xml_text(f, area);
        fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                   "time=\"%.3f\">\n",
                n, fail, err, skip, t);
        for (size_t k = i; k < r->n; k++) {
            const struct scenario_result *s = &r->v[k];
            if (strcmp(s->area, r->v[i].area) != 0)
                continue;
            fputs("    <testcase classname=\"etrncheck.", f);
            xml_text(f, area);
            fputs("\" name=\"", f);
            xml_text(f, s->id);
            fprintf(f, "\" time=\"%.3f\">\n", (double)s->duration_ms / 1000.0);
            const char *tag = s->verdict == VERDICT_FAIL    ? "failure"
                              : s->verdict == VERDICT_ERROR ? "error"
                              : s->verdict == VERDICT_SKIP  ? "skipped"
                                                            : NULL;
            if (tag) {
                fprintf(f, "      <%s message=\"", tag);
                xml_text(f, s->reason ? s->reason : verdict_name(s->verdict));
                fprintf(f, "\"%s>", s->verdict == VERDICT_SKIP ? "/" : "");
                if (s->verdict != VERDICT_SKIP) {
                    findings(f, s);
                    fprintf(f, "</%s>", tag);
                }
                fputc('\n', f);
            }
            fputs("      <system-out>", f);
            fprintf(f, "verdict %s: ", verdict_name(s->verdict));
            xml_text(f, s->title);
            fputc('\n', f);
            findings(f, s);
            xml_text(f, s->transcript.data);
            fputs("</system-out>\n    </testcase>\n", f);
        }
        fputs("  </testsuite>\n", f);
    }
    fputs("</testsuites>\n", f);
    return ferror(f) ? -1 : 0;
}

int report_junit_write(const struct run_results *r, const char *path, struct etrn_err *err)
{
    return report_write_file(r, path, report_junit_write_stream, err);
}
