/* report_console.c — what etrncheck prints while it runs and when it ends.
 *
 *   console_init(&con, stdout, total, 0);
 *   console_started(&con, sc);  console_done(&con, res, done, total);
 *   console_summary(&con, &results);
 *
 * On a terminal a one-line progress bar is redrawn in place ("[#####.....] 23/65 ...")
 * and only problems (FAIL, WARN, ERROR) are printed above it; otherwise (CI logs) each
 * finished scenario is one plain line "PASS  etrn.flush.basic  1.2s". Guarantees: the bar
 * never exceeds 79 columns; text from the target is printed on one line without control
 * characters. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

static void clean(FILE *f, const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && n < max; p++, n++)
        fputc(*p >= 0x20 && *p < 0x7f ? *p : ' ', f);
}

void console_init(struct console *c, FILE *out, size_t total, int force_plain)
{
    memset(c, 0, sizeof *c);
    c->out = out;
    c->total = total;
    c->tty = !force_plain && isatty(fileno(out));
}

static void bar_clear(struct console *c)
{
    if (c->tty && c->bar_drawn) {
        fputs("\r\033[K", c->out);
        c->bar_drawn = 0;
    }
}

static void bar_draw(struct console *c, size_t done)
{
    if (!c->tty)
        return;
    const int width = 24;
    int fill = c->total ? (int)(done * (size_t)width / c->total) : width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    char line[200];
    int n = snprintf(line, sizeof line, "[%s] %zu/%zu  F%zu W%zu E%zu ", bar, done, c->total,
                     c->counts[VERDICT_FAIL], c->counts[VERDICT_WARN], c->counts[VERDICT_ERROR]);
    for (int i = 0; i < 4 && n > 0 && n < 79; i++)
        if (c->running[i][0])
            n += snprintf(line + n, sizeof line - (size_t)n, " %s", c->running[i]);
    if (n > 79)
        n = 79;
    line[n > 0 ? n : 0] = '\0';
    fprintf(c->out, "\r\033[K%s", line);
    fflush(c->out);
    c->bar_drawn = 1;
}

void console_started(struct console *c, const struct scenario *sc)
{
    for (int i = 0; i < 4; i++)
        if (!c->running[i][0]) {
            snprintf(c->running[i], sizeof c->running[i], "%s", sc->id);
            break;
        }
    size_t done = 0;
    for (int v = 0; v < VERDICT_COUNT; v++)
        done += c->counts[v];
    bar_draw(c, done);
}

void console_done(struct console *c, const struct scenario_result *res, size_t done,
                  size_t total)
{
    (void)total;
    c->counts[res->verdict]++;
    for (int i = 0; i < 4; i++)
        if (strcmp(c->running[i], res->id) == 0)
            c->running[i][0] = '\0';
    int problem = res->verdict == VERDICT_FAIL || res->verdict == VERDICT_WARN ||
                  res->verdict == VERDICT_ERROR;
    if (!c->tty || problem || c->verbose) {
        bar_clear(c);
        fprintf(c->out, "%-5s %-44s %6.1fs", verdict_name(res->verdict), res->id,
                (double)res->duration_ms / 1000.0);
        if (res->reason && res->verdict != VERDICT_PASS) {
            fputs("  ", c->out);
            clean(c->out, res->reason, 300);
        }
        fputc('\n', c->out);
        if (c->verbose)
            for (size_t k = 0; k < res->nchecks; k++) {
                const struct check_result *ck = &res->checks[k];
                fprintf(c->out, "      %-5s line %-3d ", verdict_name(ck->verdict), ck->line);
                clean(c->out, ck->what, 80);
                fputs(": ", c->out);
                clean(c->out, ck->detail, 200);
                fputc('\n', c->out);
            }
    }
    bar_draw(c, done);
    fflush(c->out);
}

void console_summary(struct console *c, const struct run_results *r)
{
    bar_clear(c);
    size_t counts[VERDICT_COUNT];
    run_results_counts(r, counts);
    fprintf(c->out, "\netrncheck: %zu scenarios against %s in %.1fs:", r->n,
            r->target ? r->target : "?", (double)r->wall_ms / 1000.0);
    for (int v = VERDICT_PASS; v < VERDICT_COUNT; v++)
        fprintf(c->out, " %s %zu,", verdict_name((enum verdict)v), counts[v]);
    fprintf(c->out, " SKIP %zu\n", counts[VERDICT_SKIP]);
    struct requirement_result *reqs = NULL;
    size_t nreqs = 0;
    if (run_results_requirements(r, &reqs, &nreqs) == 0) {
        size_t rc[VERDICT_COUNT] = {0};
        for (size_t i = 0; i < nreqs; i++)
            rc[reqs[i].verdict]++;
        fprintf(c->out, "requirements: %zu (", nreqs);
        for (int v = VERDICT_PASS; v < VERDICT_COUNT; v++)
            fprintf(c->out, "%s %zu%s", verdict_name((enum verdict)v), rc[v],
                    v + 1 < VERDICT_COUNT ? ", " : "");
        fprintf(c->out, ", SKIP %zu)\n", rc[VERDICT_SKIP]);
        for (size_t i = 0; i < nreqs; i++)
            if (reqs[i].verdict == VERDICT_FAIL || reqs[i].verdict == VERDICT_WARN ||
                reqs[i].verdict == VERDICT_ERROR) {
                fprintf(c->out, "  %-5s %s:", verdict_name(reqs[i].verdict), reqs[i].id);
                size_t shown = 0;
                for (size_t k = 0; k < r->n && shown < 6; k++)
                    if (scenario_result_requirement(&r->v[k], reqs[i].id) == reqs[i].verdict) {
                        fprintf(c->out, " %s", r->v[k].id);
                        shown++;
                    }
                fputc('\n', c->out);
            }
        requirement_results_free(reqs, nreqs);
    }
    if (r->note)
        fprintf(c->out, "note: %s\n", r->note);
    if (r->baseline_used) {
        size_t reg = 0;
        for (size_t i = 0; i < r->n; i++)
            reg += r->v[i].regression;
        fprintf(c->out, "baseline: %zu regression(s)\n", reg);
    }
    fflush(c->out);
}

void console_list(FILE *out, const struct scenario *scs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct scenario *s = &scs[i];
        fprintf(out, "%-44s %-6s", s->id, scenario_level_name(s->level));
        for (size_t k = 0; k < s->ncites; k++)
            fprintf(out, " %s", s->cites[k]);
        if (s->nrequires) {
            fputs("  [requires", out);
            for (size_t k = 0; k < s->nrequires; k++)
                fprintf(out, " %s", s->requires[k]);
            fputc(']', out);
        }
        fputs("\n    ", out);
        clean(out, s->title, 200);
        fputc('\n', out);
    }
}
