/* report_json.c — the JSON result file, written and read back (merge, --baseline).
 *
 *   report_json_write(&run, "report/etrncheck.json", &err);
 *   report_json_read(&earlier, "report/etrncheck.json", &err);
 *
 * Format (stable; "etrncheck": 1 is its version):
 *   {"etrncheck":1,"target":..,"profile":..,"run":..,"started_ms":..,"wall_ms":..,
 *    "counts":{"PASS":n,..},"scenarios":[{"id","title","file","area","level","cites":[..],
 *    "verdict","reason","duration_ms","node","pcap","regression","checks":[{"verdict",
 *    "reqs":[..],"file","line","what","detail"}],"transcript"}],
 *    "requirements":[{"id","verdict","scenarios":[..],"counts":{..}}]}
 * The reader is a small bounded recursive-descent parser (depth 32, file 64 MiB) that
 * accepts any valid JSON and picks out the fields above; unknown fields are ignored.
 * Guarantees: output is valid UTF-8 JSON (bytes >= 0x80 are written as \u00XX). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "report.h"

#define JSON_FILE_MAX (64u * 1024 * 1024)
#define JSON_DEPTH_MAX 32

/* ---- writing ------------------------------------------------------------------------------- */

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p >= 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void jstrv(FILE *f, char *const *v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        jstr(f, v[i]);
    }
    fputc(']', f);
}

static void jcounts(FILE *f, const size_t counts[VERDICT_COUNT])
{
    fputc('{', f);
    for (int v = 0; v < VERDICT_COUNT; v++)
        fprintf(f, "%s\"%s\":%zu", v ? "," : "", verdict_name((enum verdict)v), counts[v]);
    fputc('}', f);
}

int report_json_write_stream(const struct run_results *r, FILE *f)
{
    size_t counts[VERDICT_COUNT];
    run_results_counts(r, counts);
    fputs("{\"etrncheck\":1,\"target\":", f);
    jstr(f, r->target);
    fputs(",\"profile\":", f);
    jstr(f, r->profile);
    fputs(",\"run\":", f);
    jstr(f, r->run_id);
    fputs(",\"note\":", f);
    jstr(f, r->note);
    fprintf(f, ",\"started_ms\":%lld,\"wall_ms\":%lld,\"counts\":", (long long)r->started_ms,
            (long long)r->wall_ms);
    jcounts(f, counts);
    fputs(",\n\"scenarios\":[", f);
    for (size_t i = 0; i < r->n; i++) {
        const struct scenario_result *s = &r->v[i];
        fputs(i ? ",\n{" : "\n{", f);
        fputs("\"id\":", f);
        jstr(f, s->id);
        fputs(",\"title\":", f);
        jstr(f, s->title);
        fputs(",\"file\":", f);
        jstr(f, s->file);
        fputs(",\"area\":", f);
        jstr(f, s->area);
        fputs(",\"level\":", f);
        jstr(f, scenario_level_name(s->level));
        fputs(",\"cites\":", f);
        jstrv(f, s->cites, s->ncites);
        fputs(",\"verdict\":", f);
        jstr(f, verdict_name(s->verdict));
        fputs(",\"reason\":", f);
        jstr(f, s->reason);
        fprintf(f, ",\"duration_ms\":%lld,\"regression\":%s", (long long)s->duration_ms,
                s->regression ? "true" : "false");
        fputs(",\"node\":", f);
        jstr(f, s->node);
        fputs(",\"pcap\":", f);
        jstr(f, s->pcap);
        fputs(",\"checks\":[", f);
        for (size_t k = 0; k < s->nchecks; k++) {
            const struct check_result *c = &s->checks[k];
            fputs(k ? ",{" : "{", f);
            fputs("\"verdict\":", f);
            jstr(f, verdict_name(c->verdict));
            fputs(",\"reqs\":", f);
            jstrv(f, c->reqs, c->nreqs);
            fputs(",\"file\":", f);
            jstr(f, c->file);
            fprintf(f, ",\"line\":%d,\"what\":", c->line);
            jstr(f, c->what);
            fputs(",\"detail\":", f);
            jstr(f, c->detail);
            fputc('}', f);
        }
        fputs("],\"transcript\":", f);
        jstr(f, s->transcript.data);
        fputc('}', f);
    }
    fputs("],\n\"requirements\":[", f);
    struct requirement_result *reqs = NULL;
    size_t nreqs = 0;
    if (run_results_requirements(r, &reqs, &nreqs) == 0) {
        for (size_t i = 0; i < nreqs; i++) {
            fputs(i ? ",\n{" : "\n{", f);
            fputs("\"id\":", f);
            jstr(f, reqs[i].id);
            fputs(",\"verdict\":", f);
            jstr(f, verdict_name(reqs[i].verdict));
            fputs(",\"scenarios\":", f);
            jstrv(f, reqs[i].scenarios, reqs[i].nscenarios);
            fputs(",\"counts\":", f);
            jcounts(f, reqs[i].counts);
            fputc('}', f);
        }
        requirement_results_free(reqs, nreqs);
    }
    fputs("]}\n", f);
    return ferror(f) ? -1 : 0;
}

int report_write_file(const struct run_results *r, const char *path,
                      int (*fn)(const struct run_results *, FILE *), struct etrn_err *err)
{
    if (strcmp(path, "-") == 0) {
        if (fn(r, stdout) < 0 || fflush(stdout) != 0)
            return err_set_errno(err, "writing to stdout");
        return 0;
    }
    char tmp[4200];
    if (str_format(tmp, sizeof tmp, "%s.tmp", path) < 0)
        return err_set(err, "%s: path too long", path);
    char dir[4200];
    if (fileio_dirname(path, dir, sizeof dir) == 0 && strcmp(dir, ".") != 0 &&
        fileio_mkdirs(dir, 0755, err) < 0)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return err_set_errno(err, "cannot write %s", tmp);
    int bad = fn(r, f) < 0;
    if (fclose(f) != 0)
        bad = 1;
    if (bad) {
        unlink(tmp);
        return err_set_errno(err, "writing %s failed", path);
    }
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return err_set_errno(err, "cannot rename %s to %s", tmp, path);
    }
    return 0;
}

int report_json_write(const struct run_results *r, const char *path, struct etrn_err *err)
{
    return report_write_file(r, path, report_json_write_stream, err);
}

/* ---- reading -------------------------------------------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
    enum jtype type;
    double num;
    int boolean;
    char *str;               /* J_STR */
    struct jval *items;      /* J_ARR and J_OBJ values */
    char **keys;             /* J_OBJ */
    size_t n;
};

struct jparser {
    const char *p, *end, *start;
    const char *name;
    struct etrn_err *err;
};

static void jfree(struct jval *v)
{
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

static int jerr(struct jparser *jp, const char *what)
{
    return err_set(jp->err, "%s: invalid JSON at offset %ld: %s", jp->name,
                   (long)(jp->p - jp->start), what);
}

static void jws(struct jparser *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r' || *jp->p == '\t'))
        jp->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int jstring(struct jparser *jp, char **out)
{
    if (*jp->p != '"')
        return jerr(jp, "expected a string");
    jp->p++;
    struct strbuf sb;
    strbuf_init(&sb, JSON_FILE_MAX);
    while (jp->p < jp->end && *jp->p != '"') {
        char c = *jp->p++;
        if ((unsigned char)c < 0x20) {
            strbuf_free(&sb);
            return jerr(jp, "control character in a string");
        }
        if (c == '\\') {
            if (jp->p >= jp->end) {
                strbuf_free(&sb);
                return jerr(jp, "unterminated escape");
            }
            char e = *jp->p++;
            switch (e) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                unsigned u;
                if (jp->end - jp->p < 4 || hex4(jp->p, &u) < 0) {
                    strbuf_free(&sb);
                    return jerr(jp, "bad \\u escape");
                }
                jp->p += 4;
                /* our writer uses \u00XX for single bytes; other code points as UTF-8 */
                if (u < 0x100) {
                    c = (char)u;
                } else {
                    char utf[3];
                    size_t k;
                    if (u < 0x800) {
                        utf[0] = (char)(0xc0 | (u >> 6));
                        utf[1] = (char)(0x80 | (u & 0x3f));
                        k = 2;
                    } else {
                        utf[0] = (char)(0xe0 | (u >> 12));
                        utf[1] = (char)(0x80 | ((u >> 6) & 0x3f));
                        utf[2] = (char)(0x80 | (u & 0x3f));
                        k = 3;
                    }
                    strbuf_append(&sb, utf, k);
                    continue;
                }
                break;
            }
            default:
                strbuf_free(&sb);
                return jerr(jp, "unknown escape");
            }
        }
        if (strbuf_append(&sb, &c, 1) < 0) {
            strbuf_free(&sb);
            return jerr(jp, "string too long");
        }
    }
    if (jp->p >= jp->end) {
        strbuf_free(&sb);
        return jerr(jp, "unterminated string");
    }
    jp->p++;
    *out = strbuf_detach(&sb);   /* a copy: the buffer itself is freed here */
    strbuf_free(&sb);
    return *out ? 0 : jerr(jp, "out of memory");
}

static int jvalue(struct jparser *jp, struct jval *v, int depth);

static int jpush(struct jval *v, char *key, struct jval *item)
{
    struct jval *ni = realloc(v->items, (v->n + 1) * sizeof *ni);
    if (ni == NULL)
        return -1;
    v->items = ni;
    if (v->type == J_OBJ) {
        char **nk = realloc(v->keys, (v->n + 1) * sizeof *nk);
        if (nk == NULL)
            return -1;
        v->keys = nk;
        nk[v->n] = key;
    }
    ni[v->n++] = *item;
    return 0;
}

static int jcontainer(struct jparser *jp, struct jval *v, int depth, int obj)
{
    v->type = obj ? J_OBJ : J_ARR;
    jp->p++;
    jws(jp);
    if (jp->p < jp->end && *jp->p == (obj ? '}' : ']')) {
        jp->p++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        jws(jp);
        if (obj) {
            if (jp->p >= jp->end || jstring(jp, &key) < 0)
                return jp->p >= jp->end ? jerr(jp, "unexpected end") : -1;
            jws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                return jerr(jp, "expected ':'");
            }
            jp->p++;
        }
        struct jval item;
        memset(&item, 0, sizeof item);
        if (jvalue(jp, &item, depth + 1) < 0) {
            free(key);
            jfree(&item);
            return -1;
        }
        if (jpush(v, key, &item) < 0) {
            free(key);
            jfree(&item);
            return jerr(jp, "out of memory");
        }
        jws(jp);
        if (jp->p >= jp->end)
            return jerr(jp, "unexpected end");
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p == (obj ? '}' : ']')) {
            jp->p++;
            return 0;
        }
        return jerr(jp, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jvalue(struct jparser *jp, struct jval *v, int depth)
{
    memset(v, 0, sizeof *v);
    if (depth > JSON_DEPTH_MAX)
        return jerr(jp, "nested too deep");
    jws(jp);
    if (jp->p >= jp->end)
        return jerr(jp, "unexpected end");
    char c = *jp->p;
    if (c == '{' || c == '[')
        return jcontainer(jp, v, depth, c == '{');
    if (c == '"') {
        v->type = J_STR;
        return jstring(jp, &v->str);
    }
    if (strncmp(jp->p, "true", 4) == 0 || strncmp(jp->p, "false", 5) == 0) {
        v->type = J_BOOL;
        v->boolean = c == 't';
        jp->p += v->boolean ? 4 : 5;
        return 0;
    }
    if (strncmp(jp->p, "null", 4) == 0) {
        jp->p += 4;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char *end;
        errno = 0;
        v->num = strtod(jp->p, &end);
        if (end == jp->p || errno)
            return jerr(jp, "bad number");
        v->type = J_NUM;
        jp->p = end;
        return 0;
    }
    return jerr(jp, "unexpected character");
}

static const struct jval *jget(const struct jval *o, const char *key)
{
    if (o == NULL || o->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

static char *jdup(const struct jval *o, const char *key)
{
    const struct jval *v = jget(o, key);
    return strdup(v && v->type == J_STR ? v->str : "");
}

static double jnum(const struct jval *o, const char *key)
{
    const struct jval *v = jget(o, key);
    return v && v->type == J_NUM ? v->num : 0;
}

static char **jstrings(const struct jval *o, const char *key, size_t *n)
{
    const struct jval *v = jget(o, key);
    *n = 0;
    size_t cnt = v && v->type == J_ARR ? v->n : 0;
    char **out = calloc(cnt ? cnt : 1, sizeof *out);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < cnt; i++)
        if (v->items[i].type == J_STR)
            out[(*n)++] = strdup(v->items[i].str);
    return out;
}

static int jverdict(const struct jval *o, const char *key, enum verdict *out)
{
    const struct jval *v = jget(o, key);
    return v && v->type == J_STR ? verdict_parse(v->str, out) : -1;
}

static int load_scenario(const struct jval *js, struct scenario_result *s, struct etrn_err *err,
                         const char *name)
{
    memset(s, 0, sizeof *s);
    strbuf_init(&s->transcript, RESULT_TRANSCRIPT_MAX);
    s->id = jdup(js, "id");
    s->title = jdup(js, "title");
    s->file = jdup(js, "file");
    s->area = jdup(js, "area");
    s->reason = jdup(js, "reason");
    s->node = jdup(js, "node");
    char *pcap = jdup(js, "pcap");
    if (pcap && pcap[0])
        s->pcap = pcap;
    else
        free(pcap);
    const struct jval *lv = jget(js, "level");
    enum scenario_level level = SCENARIO_LEVEL_NONE;
    if (lv && lv->type == J_STR)
        scenario_level_parse(lv->str, &level);
    s->level = level;
    s->cites = jstrings(js, "cites", &s->ncites);
    s->duration_ms = (int64_t)jnum(js, "duration_ms");
    const struct jval *reg = jget(js, "regression");
    s->regression = reg && reg->type == J_BOOL && reg->boolean;
    if (jverdict(js, "verdict", &s->verdict) < 0 || s->id == NULL || s->id[0] == '\0')
        return err_set(err, "%s: a scenario without id or verdict", name);
    if (s->reason && s->reason[0] == '\0') {
        free(s->reason);
        s->reason = NULL;
    }
    const struct jval *checks = jget(js, "checks");
    for (size_t k = 0; checks && checks->type == J_ARR && k < checks->n; k++) {
        const struct jval *c = &checks->items[k];
        enum verdict v;
        if (jverdict(c, "verdict", &v) < 0)
            return err_set(err, "%s: scenario %s: a check without verdict", name, s->id);
        size_t nr;
        char **reqs = jstrings(c, "reqs", &nr);
        char *file = jdup(c, "file"), *what = jdup(c, "what"), *detail = jdup(c, "detail");
        int r = scenario_result_add_check(s, v, reqs, nr, file, (int)jnum(c, "line"), what, detail);
        for (size_t i = 0; i < nr; i++)
            free(reqs[i]);
        free(reqs);
        free(file);
        free(what);
        free(detail);
        if (r < 0)
            return err_set(err, "out of memory");
    }
    const struct jval *t = jget(js, "transcript");
    if (t && t->type == J_STR)
        strbuf_append_str(&s->transcript, t->str);
    return 0;
}

int report_json_read_string(struct run_results *out, const char *name, const char *text,
                            struct etrn_err *err)
{
    struct jparser jp = {text, text + strlen(text), text, name, err};
    struct jval root;
    run_results_init(out);
    if (jvalue(&jp, &root, 0) < 0) {
        jfree(&root);
        return -1;
    }
    int rc = 0;
    const struct jval *ver = jget(&root, "etrncheck");
    const struct jval *scs = jget(&root, "scenarios");
    if (ver == NULL || scs == NULL || scs->type != J_ARR) {
        rc = err_set(err, "%s: not an etrncheck result file", name);
        goto out;
    }
    out->target = jdup(&root, "target");
    out->profile = jdup(&root, "profile");
    out->run_id = jdup(&root, "run");
    char *note = jdup(&root, "note");
    if (note && note[0])
        out->note = note;
    else
        free(note);
    out->started_ms = (int64_t)jnum(&root, "started_ms");
    out->wall_ms = (int64_t)jnum(&root, "wall_ms");
    for (size_t i = 0; i < scs->n; i++) {
        struct scenario_result s;
        if (load_scenario(&scs->items[i], &s, err, name) < 0) {
            scenario_result_free(&s);
            rc = -1;
            goto out;
        }
        if (run_results_add(out, &s) < 0) {
            scenario_result_free(&s);
            rc = err_set(err, "out of memory");
            goto out;
        }
    }
out:
    jfree(&root);
    if (rc < 0)
        run_results_free(out);
    return rc;
}

int report_json_read(struct run_results *out, const char *path, struct etrn_err *err)
{
    struct strbuf sb;
    strbuf_init(&sb, JSON_FILE_MAX + 1);
    run_results_init(out);
    if (fileio_read_file(path, &sb, JSON_FILE_MAX, err) < 0) {
        strbuf_free(&sb);
        return -1;
    }
    int r = report_json_read_string(out, path, sb.data, err);
    strbuf_free(&sb);
    return r;
}
