/* report_html.c — the run as one self-contained HTML page (no external files or scripts).
 *
 *   report_html_write(&run, "report/etrncheck.html", &err);
 *
 * Sections: the summary (verdict counts, and per level a row of counts), a table per
 * requirement ID (verdict, the scenarios naming it, linked), then each scenario with its
 * checks, its transcript and a link to its capture. Guarantees: everything that came from
 * the target or the scenario files is HTML-escaped (& < > " '), so a hostile reply cannot
 * inject markup; the page is plain HTML5 with inline CSS. */
#include <stdio.h>
#include <string.h>

#include "report.h"

static void h(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p >= 0x7f)
                fprintf(f, "&#x%02x;", *p < 0x20 ? 0x2400 + *p : 0xfffd);
            else
                fputc(*p, f);
        }
    }
}

/* An id usable as an HTML anchor: letters, digits, '-', '_', '.'; others become '_'. */
static void anchor(FILE *f, const char *prefix, const char *s)
{
    fputs(prefix, f);
    for (const char *p = s ? s : ""; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        fputc(ok ? c : '_', f);
    }
}

static void badge(FILE *f, enum verdict v)
{
    fprintf(f, "<span class=\"v %s\">%s</span>", verdict_name(v), verdict_name(v));
}

static const char css[] =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
    "text-align:left;vertical-align:top}th{background:#f0f0f0}"
    ".v{font-weight:bold;padding:0 .4em;border-radius:3px;color:#fff}"
    ".PASS{background:#2a7d2a}.INFO{background:#3b6ea8}.WARN{background:#b8860b}"
    ".FAIL{background:#b22222}.ERROR{background:#6a1b9a}.SKIP{background:#888}"
    "pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:85%;max-height:30em}"
    "section{border-top:1px solid #ddd;margin-top:1.5em}details{margin:.5em 0}";

int report_html_write_stream(const struct run_results *r, FILE *f)
{
    size_t counts[VERDICT_COUNT];
    run_results_counts(r, counts);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<title>etrncheck report</title><style>", f);
    fputs(css, f);
    fputs("</style></head><body>\n<h1>etrncheck report</h1>\n<p>Target <code>", f);
    h(f, r->target);
    fputs("</code>", f);
    if (r->profile && r->profile[0]) {
        fputs(", profile <code>", f);
        h(f, r->profile);
        fputs("</code>", f);
    }
    fputs(", run <code>", f);
    h(f, r->run_id);
    fprintf(f, "</code>, %zu scenarios in %.1f s.</p>\n", r->n, (double)r->wall_ms / 1000.0);
    if (r->note) {
        fputs("<p><b>Note:</b> ", f);
        h(f, r->note);
        fputs("</p>\n", f);
    }

    /* summary per level */
    fputs("<h2>Summary</h2>\n<table><tr><th>level</th>", f);
    for (int v = 0; v < VERDICT_COUNT; v++) {
        fputs("<th>", f);
        badge(f, (enum verdict)v);
        fputs("</th>", f);
    }
    fputs("<th>total</th></tr>\n", f);
    static const enum scenario_level levels[] = {SCENARIO_LEVEL_MUST, SCENARIO_LEVEL_SHOULD,
                                                 SCENARIO_LEVEL_MAY, SCENARIO_LEVEL_INFO};
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        size_t c[VERDICT_COUNT] = {0}, t = 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->v[i].level == levels[l]) {
                c[r->v[i].verdict]++;
                t++;
            }
        if (t == 0)
            continue;
        fprintf(f, "<tr><td>%s</td>", scenario_level_name(levels[l]));
        for (int v = 0; v < VERDICT_COUNT; v++)
            fprintf(f, "<td>%zu</td>", c[v]);
        fprintf(f, "<td>%zu</td></tr>\n", t);
    }
    fputs("<tr><th>all</th>", f);
    for (int v = 0; v < VERDICT_COUNT; v++)
        fprintf(f, "<th>%zu</th>", counts[v]);
    fprintf(f, "<th>%zu</th></tr></table>\n", r->n);

    /* requirements */
    struct requirement_result *reqs = NULL;
    size_t nreqs = 0;
    if (run_results_requirements(r, &reqs, &nreqs) == 0) {
        fputs("<h2>Requirements</h2>\n<table><tr><th>requirement</th><th>verdict</th>"
              "<th>scenarios</th></tr>\n", f);
        for (size_t i = 0; i < nreqs; i++) {
            fputs("<tr id=\"", f);
            anchor(f, "req-", reqs[i].id);
            fputs("\"><td>", f);
            h(f, reqs[i].id);
            fputs("</td><td>", f);
            badge(f, reqs[i].verdict);
            fputs("</td><td>", f);
            for (size_t k = 0; k < reqs[i].nscenarios; k++) {
                enum verdict sv = VERDICT_SKIP;
                for (size_t j = 0; j < r->n; j++)
                    if (strcmp(r->v[j].id, reqs[i].scenarios[k]) == 0)
                        sv = scenario_result_requirement(&r->v[j], reqs[i].id);
                fputs(k ? ", <a href=\"#" : "<a href=\"#", f);
                anchor(f, "sc-", reqs[i].scenarios[k]);
                fputs("\">", f);
                h(f, reqs[i].scenarios[k]);
                fprintf(f, "</a>&nbsp;<small>%s</small>", verdict_name(sv));
            }
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
        requirement_results_free(reqs, nreqs);
    }

    /* scenarios */
    fputs("<h2>Scenarios</h2>\n<table><tr><th>scenario</th><th>level</th><th>verdict</th>"
          "<th>reason</th></tr>\n", f);
    for (size_t i = 0; i < r->n; i++) {
        const struct scenario_result *s = &r->v[i];
        fputs("<tr><td><a href=\"#", f);
        anchor(f, "sc-", s->id);
        fputs("\">", f);
        h(f, s->id);
        fprintf(f, "</a></td><td>%s</td><td>", scenario_level_name(s->level));
        badge(f, s->verdict);
        fputs(s->regression ? " (regression)</td><td>" : "</td><td>", f);
        h(f, s->reason);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    for (size_t i = 0; i < r->n; i++) {
        const struct scenario_result *s = &r->v[i];
        fputs("<section id=\"", f);
        anchor(f, "sc-", s->id);
        fputs("\"><h3>", f);
        badge(f, s->verdict);
        fputc(' ', f);
        h(f, s->id);
        fputs("</h3>\n<p>", f);
        h(f, s->title);
        fputs("<br><small>", f);
        h(f, s->file);
        fprintf(f, " &middot; level %s &middot; %.2f s &middot; node <code>",
                scenario_level_name(s->level), (double)s->duration_ms / 1000.0);
        h(f, s->node);
        fputs("</code> &middot; cites ", f);
        for (size_t k = 0; k < s->ncites; k++) {
            fputs(k ? ", <a href=\"#" : "<a href=\"#", f);
            anchor(f, "req-", s->cites[k]);
            fputs("\">", f);
            h(f, s->cites[k]);
            fputs("</a>", f);
        }
        if (s->pcap) {
            fputs(" &middot; <a href=\"", f);
            /* An absolute path is linked as is; a relative one by its last folder and
             * name, which is right when the captures sit next to the page (report/pcap). */
            const char *link = s->pcap;
            if (s->pcap[0] != '/') {
                const char *last = strrchr(s->pcap, '/');
                if (last) {
                    const char *prev = last;
                    while (prev > s->pcap && prev[-1] != '/')
                        prev--;
                    link = prev;
                }
            }
            h(f, link);
            fputs("\">capture</a>", f);
        }
        fputs("</small></p>\n", f);
        if (s->reason) {
            fputs("<p><b>", f);
            h(f, s->reason);
            fputs("</b></p>\n", f);
        }
        if (s->nchecks) {
            fputs("<table><tr><th>verdict</th><th>line</th><th>requirements</th><th>check</th>"
                  "<th>detail</th></tr>\n", f);
            for (size_t k = 0; k < s->nchecks; k++) {
                const struct check_result *c = &s->checks[k];
                fputs("<tr><td>", f);
                badge(f, c->verdict);
                fprintf(f, "</td><td>%d</td><td>", c->line);
                for (size_t x = 0; x < c->nreqs; x++) {
                    if (x)
                        fputs(" ", f);
                    h(f, c->reqs[x]);
                }
                fputs("</td><td>", f);
                h(f, c->what);
                fputs("</td><td>", f);
                h(f, c->detail);
                fputs("</td></tr>\n", f);
            }
            fputs("</table>\n", f);
        }
        fputs("<details><summary>transcript</summary><pre>", f);
        h(f, s->transcript.data);
        fputs("</pre></details></section>\n", f);
    }
    fputs("</body></html>\n", f);
    return ferror(f) ? -1 : 0;
}

int report_html_write(const struct run_results *r, const char *path, struct etrn_err *err)
{
    return report_write_file(r, path, report_html_write_stream, err);
}
