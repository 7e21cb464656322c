/* verdict.c — level → verdict mapping and aggregation per scenario and per requirement.
 *
 *   scenario_result_init(&res, sc);
 *   scenario_result_add_check(&res, verdict_for_level(lv), reqs, n, file, line, what, why);
 *   scenario_result_finish(&res);   run_results_add(&run, &res);
 *
 * Guarantees: verdicts only ever get worse as checks are added; a requirement's verdict
 * is never better than any check naming it; transcripts and check lists are bounded. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verdict.h"

static const char *const verdict_names[VERDICT_COUNT] = {"SKIP", "PASS", "INFO",
                                                          "WARN", "FAIL", "ERROR"};

const char *verdict_name(enum verdict v)
{
    return (unsigned)v < VERDICT_COUNT ? verdict_names[v] : "?";
}

int verdict_parse(const char *name, enum verdict *out)
{
    for (int i = 0; i < VERDICT_COUNT; i++)
        if (str_casecmp(name, verdict_names[i]) == 0) {
            *out = (enum verdict)i;
            return 0;
        }
    return -1;
}

enum verdict verdict_for_level(enum scenario_level l)
{
    switch (l) {
    case SCENARIO_LEVEL_SHOULD: return VERDICT_WARN;
    case SCENARIO_LEVEL_MAY:
    case SCENARIO_LEVEL_INFO: return VERDICT_INFO;
    case SCENARIO_LEVEL_MUST:
    case SCENARIO_LEVEL_NONE: break;
    }
    return VERDICT_FAIL;
}

enum verdict verdict_worse(enum verdict a, enum verdict b)
{
    return a > b ? a : b;
}

static char **strv_copy(char *const *v, size_t n)
{
    char **c = calloc(n ? n : 1, sizeof *c);
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((c[i] = strdup(v[i])) == NULL) {
            for (size_t k = 0; k < i; k++)
                free(c[k]);
            free(c);
            return NULL;
        }
    return c;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int scenario_result_init(struct scenario_result *res, const struct scenario *sc)
{
    memset(res, 0, sizeof *res);
    strbuf_init(&res->transcript, RESULT_TRANSCRIPT_MAX);
    res->id = dup_or_empty(sc->id);
    res->title = dup_or_empty(sc->title);
    res->file = dup_or_empty(sc->file);
    /* the area is the scenario's folder name: ".../scenarios/flush/basic.scn" → "flush" */
    const char *slash = sc->file ? strrchr(sc->file, '/') : NULL;
    const char *start = slash;
    if (slash)
        while (start > sc->file && start[-1] != '/')
            start--;
    res->area = slash ? strndup(start, (size_t)(slash - start)) : strdup("");
    res->level = sc->level;
    res->cites = strv_copy(sc->cites, sc->ncites);
    res->ncites = sc->ncites;
    res->verdict = VERDICT_PASS;
    if (!res->id || !res->title || !res->file || !res->area || !res->cites) {
        scenario_result_free(res);
        return -1;
    }
    return 0;
}

static void check_free(struct check_result *c)
{
    strv_free(c->reqs, c->nreqs);
    free(c->file);
    free(c->what);
    free(c->detail);
}

void scenario_result_free(struct scenario_result *res)
{
    free(res->id);
    free(res->title);
    free(res->file);
    free(res->area);
    strv_free(res->cites, res->ncites);
    free(res->reason);
    for (size_t i = 0; i < res->nchecks; i++)
        check_free(&res->checks[i]);
    free(res->checks);
    strbuf_free(&res->transcript);
    free(res->pcap);
    free(res->node);
    memset(res, 0, sizeof *res);
}

int scenario_result_add_check(struct scenario_result *res, enum verdict v, char *const *reqs,
                              size_t nreqs, const char *file, int line, const char *what,
                              const char *detail)
{
    if (res->nchecks >= RESULT_CHECKS_MAX) {
        /* Keep the severity so a flood of checks cannot hide a failure. */
        res->dropped_checks++;
        if (v > res->verdict && res->verdict != VERDICT_ERROR) {
            res->verdict = v;
        }
        return 0;
    }
    struct check_result *nv = realloc(res->checks, (res->nchecks + 1) * sizeof *nv);
    if (nv == NULL)
        return -1;
    res->checks = nv;
    struct check_result *c = &nv[res->nchecks];
    memset(c, 0, sizeof *c);
    c->verdict = v;
    c->reqs = strv_copy(reqs, nreqs);
    c->nreqs = nreqs;
    c->file = dup_or_empty(file);
    c->line = line;
    c->what = dup_or_empty(what);
    c->detail = dup_or_empty(detail);
    if (!c->reqs || !c->file || !c->what || !c->detail) {
        check_free(c);
        return -1;
    }
    res->nchecks++;
    return 0;
}

int scenario_result_set_final(struct scenario_result *res, enum verdict v, const char *reason)
{
    free(res->reason);
    res->reason = dup_or_empty(reason);
    res->verdict = v;
    return res->reason ? 0 : -1;
}

void scenario_result_finish(struct scenario_result *res)
{
    if (res->reason && (res->verdict == VERDICT_SKIP || res->verdict == VERDICT_ERROR))
        return;
    enum verdict worst = VERDICT_SKIP;
    const struct check_result *why = NULL;
    for (size_t i = 0; i < res->nchecks; i++) {
        const struct check_result *c = &res->checks[i];
        if (why == NULL || c->verdict > worst) {
            worst = c->verdict;
            why = c;
        }
    }
    if (res->dropped_checks && res->verdict > worst)
        worst = res->verdict;
    if (res->nchecks == 0 && res->dropped_checks == 0)
        worst = VERDICT_PASS;   /* nothing to check: the steps themselves ran */
    res->verdict = worst;
    free(res->reason);
    res->reason = NULL;
    if (why && worst != VERDICT_PASS && worst != VERDICT_SKIP) {
        size_t n = strlen(why->what) + strlen(why->detail) + 64;
        res->reason = malloc(n);
        if (res->reason)
            snprintf(res->reason, n, "line %d: %s: %s", why->line, why->what, why->detail);
    } else if (worst == VERDICT_SKIP && why) {
        res->reason = strdup(why->detail);
    }
}

void scenario_result_log(struct scenario_result *res, const char *fmt, ...)
{
    struct strbuf *t = &res->transcript;
    static const char cut[] = "[transcript cut: limit reached]\n";
    if (t->len + sizeof cut >= t->limit)
        return;
    size_t before = t->len;
    va_list ap;
    va_start(ap, fmt);
    int r = strbuf_vappendf(t, fmt, ap);
    va_end(ap);
    if (r == 0)
        r = strbuf_append(t, "\n", 1);
    if (r < 0 || t->len + sizeof cut >= t->limit) {
        t->len = before;
        t->data[before] = '\0';
        strbuf_append_str(t, cut);
        /* make later lines fail the size test */
        t->limit = t->len;
    }
}

void run_results_init(struct run_results *r)
{
    memset(r, 0, sizeof *r);
}

void run_results_free(struct run_results *r)
{
    for (size_t i = 0; i < r->n; i++)
        scenario_result_free(&r->v[i]);
    free(r->v);
    free(r->target);
    free(r->profile);
    free(r->run_id);
    free(r->note);
    memset(r, 0, sizeof *r);
}

int run_results_add(struct run_results *r, struct scenario_result *res)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        struct scenario_result *v = realloc(r->v, nc * sizeof *v);
        if (v == NULL)
            return -1;
        r->v = v;
        r->cap = nc;
    }
    r->v[r->n++] = *res;
    memset(res, 0, sizeof *res);
    return 0;
}

static int cmp_result(const void *a, const void *b)
{
    const struct scenario_result *x = a, *y = b;
    return strcmp(x->id, y->id);
}

void run_results_sort(struct run_results *r)
{
    if (r->n > 1)
        qsort(r->v, r->n, sizeof r->v[0], cmp_result);
}

void run_results_counts(const struct run_results *r, size_t counts[VERDICT_COUNT])
{
    memset(counts, 0, VERDICT_COUNT * sizeof counts[0]);
    for (size_t i = 0; i < r->n; i++)
        counts[r->v[i].verdict]++;
}

/* ---- per requirement ------------------------------------------------------------------ */

enum verdict scenario_result_requirement(const struct scenario_result *s, const char *req)
{
    int cited = 0;
    for (size_t c = 0; c < s->ncites; c++)
        if (strcmp(s->cites[c], req) == 0)
            cited = 1;
    if (s->verdict == VERDICT_SKIP || s->verdict == VERDICT_ERROR)
        return cited ? s->verdict : VERDICT_SKIP;
    enum verdict v = cited ? VERDICT_PASS : VERDICT_SKIP;
    for (size_t k = 0; k < s->nchecks; k++)
        for (size_t x = 0; x < s->checks[k].nreqs; x++)
            if (strcmp(s->checks[k].reqs[x], req) == 0 && s->checks[k].verdict != VERDICT_SKIP)
                v = verdict_worse(v, s->checks[k].verdict);
    return v;
}

struct req_builder {
    struct requirement_result *v;
    size_t n, cap;
    int failed;
};

static struct requirement_result *req_get(struct req_builder *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->v[i].id, id) == 0)
            return &b->v[i];
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        struct requirement_result *v = realloc(b->v, nc * sizeof *v);
        if (v == NULL) {
            b->failed = 1;
            return NULL;
        }
        b->v = v;
        b->cap = nc;
    }
    struct requirement_result *q = &b->v[b->n];
    memset(q, 0, sizeof *q);
    q->id = strdup(id);
    if (q->id == NULL) {
        b->failed = 1;
        return NULL;
    }
    q->verdict = VERDICT_SKIP;
    b->n++;
    return q;
}

static void req_note_scenario(struct req_builder *b, struct requirement_result *q,
                              const char *sid)
{
    for (size_t i = 0; i < q->nscenarios; i++)
        if (strcmp(q->scenarios[i], sid) == 0)
            return;
    char **v = realloc(q->scenarios, (q->nscenarios + 1) * sizeof *v);
    if (v == NULL) {
        b->failed = 1;
        return;
    }
    q->scenarios = v;
    if ((v[q->nscenarios] = strdup(sid)) == NULL) {
        b->failed = 1;
        return;
    }
    q->nscenarios++;
}

static int cmp_req(const void *a, const void *b)
{
    const struct requirement_result *x = a, *y = b;
    return strcmp(x->id, y->id);
}

int run_results_requirements(const struct run_results *r, struct requirement_result **out,
                             size_t *n)
{
    struct req_builder b = {0};
    for (size_t i = 0; i < r->n; i++) {
        const struct scenario_result *s = &r->v[i];
        int whole = s->verdict == VERDICT_SKIP || s->verdict == VERDICT_ERROR;
        for (size_t c = 0; c < s->ncites; c++) {
            struct requirement_result *q = req_get(&b, s->cites[c]);
            if (q == NULL)
                break;
            req_note_scenario(&b, q, s->id);
            if (whole) {
                /* ERROR must show, but a SKIP never hides a verdict from elsewhere */
                if (s->verdict == VERDICT_ERROR)
                    q->verdict = verdict_worse(q->verdict, VERDICT_ERROR);
                q->counts[s->verdict]++;
                continue;
            }
            /* A cited requirement with no failing check in a finished scenario passed. */
            q->verdict = verdict_worse(q->verdict, VERDICT_PASS);
        }
        if (whole)
            continue;
        for (size_t k = 0; k < s->nchecks; k++) {
            const struct check_result *ck = &s->checks[k];
            for (size_t x = 0; x < ck->nreqs; x++) {
                struct requirement_result *q = req_get(&b, ck->reqs[x]);
                if (q == NULL)
                    break;
                req_note_scenario(&b, q, s->id);
                q->counts[ck->verdict]++;
                if (ck->verdict != VERDICT_SKIP)
                    q->verdict = verdict_worse(q->verdict, ck->verdict);
            }
        }
    }
    if (b.failed) {
        requirement_results_free(b.v, b.n);
        return -1;
    }
    if (b.n > 1)
        qsort(b.v, b.n, sizeof b.v[0], cmp_req);
    *out = b.v;
    *n = b.n;
    return 0;
}

void requirement_results_free(struct requirement_result *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        strv_free(v[i].scenarios, v[i].nscenarios);
    }
    free(v);
}

size_t run_results_apply_baseline(struct run_results *r, const struct run_results *baseline)
{
    size_t regressions = 0;
    r->baseline_used = 1;
    for (size_t i = 0; i < r->n; i++) {
        struct scenario_result *s = &r->v[i];
        s->regression = 0;
        if (s->verdict != VERDICT_FAIL)
            continue;
        int was_failing = 0;
        for (size_t k = 0; k < baseline->n; k++)
            if (strcmp(baseline->v[k].id, s->id) == 0 && baseline->v[k].verdict == VERDICT_FAIL)
                was_failing = 1;
        if (!was_failing) {
            s->regression = 1;
            regressions++;
        }
    }
    return regressions;
}

int run_results_exit_code(const struct run_results *r)
{
    int fail = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct scenario_result *s = &r->v[i];
        if (s->verdict == VERDICT_ERROR)
            return 2;
        if (s->verdict == VERDICT_FAIL && (!r->baseline_used || s->regression))
            fail = 1;
    }
    return fail;
}
