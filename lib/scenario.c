/* scenario.c — parser for the scenario language (see scenario.h and docs/SCENARIOS.md).
 *
 *   scenario_parse_file(&sc, path, &err);      // "path:14: unknown step 'expcet'"
 *   scenario_expand("mx1.$node", lookup, arg, &out, &err);
 *   scenario_free(&sc);
 *
 * The parser reads a whole file (bounded), splits it into lines and words, and builds a
 * tree of steps: blocks (client, repeat) are collected on a stack and attached to their
 * opening step at `end`. Everything that can be checked without running is checked here,
 * so the runner only meets errors that depend on the target or the world. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "scenario.h"

#define BLOCK_DEPTH_MAX 4

struct step_list {
    struct scenario_step *v;
    size_t n, cap;
};

struct parse_block {
    struct step_list list;
    enum scenario_step_kind kind;   /* CLIENT or REPEAT */
    int line;                       /* where the block opened */
};

struct parser {
    struct scenario *sc;
    const char *file;               /* sc->file */
    int line;
    struct etrn_err *err;
    struct step_list top;
    struct parse_block blocks[BLOCK_DEPTH_MAX];
    int depth;
    int seen_level;
    /* node names used by link / sink-behave / outcomes, checked at the end */
    char **used;
    int *used_line;
    size_t nused, capused;
};

/* ---- small helpers --------------------------------------------------------------- */

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(struct parser *p, const char *fmt, ...)
{
    char msg[ETRN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(p->err, "%s:%d: %s", p->file, p->line, msg);
}

static int oom(struct parser *p)
{
    return perr(p, "out of memory");
}

static int str_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return -1;
    *v = nv;
    nv[*n] = strdup(s);
    if (nv[*n] == NULL)
        return -1;
    (*n)++;
    return 0;
}

static void str_vec_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int word_is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

const char *scenario_level_name(enum scenario_level l)
{
    switch (l) {
    case SCENARIO_LEVEL_MUST: return "MUST";
    case SCENARIO_LEVEL_SHOULD: return "SHOULD";
    case SCENARIO_LEVEL_MAY: return "MAY";
    case SCENARIO_LEVEL_INFO: return "INFO";
    case SCENARIO_LEVEL_NONE: break;
    }
    return "";
}

int scenario_level_parse(const char *w, enum scenario_level *out)
{
    static const struct { const char *word; enum scenario_level level; } words[] = {
        {"must", SCENARIO_LEVEL_MUST},     {"fail", SCENARIO_LEVEL_MUST},
        {"should", SCENARIO_LEVEL_SHOULD}, {"warn", SCENARIO_LEVEL_SHOULD},
        {"may", SCENARIO_LEVEL_MAY},       {"info", SCENARIO_LEVEL_INFO},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (str_casecmp(w, words[i].word) == 0) {
            *out = words[i].level;
            return 0;
        }
    return -1;
}

const char *scenario_step_kind_name(enum scenario_step_kind k)
{
    switch (k) {
    case SCENARIO_STEP_WORLD: return "world";
    case SCENARIO_STEP_AT: return "at";
    case SCENARIO_STEP_QUEUE: return "queue";
    case SCENARIO_STEP_CLIENT: return "client";
    case SCENARIO_STEP_HOSTILE: return "hostile";
    case SCENARIO_STEP_OUTCOME: return "outcome";
    case SCENARIO_STEP_WAIT: return "wait";
    case SCENARIO_STEP_SEND: return "send";
    case SCENARIO_STEP_SEND_RAW: return "send-raw";
    case SCENARIO_STEP_SEND_REPEAT: return "send-repeat";
    case SCENARIO_STEP_EXPECT: return "expect";
    case SCENARIO_STEP_EXPECT_CLOSE: return "expect-close";
    case SCENARIO_STEP_EXPECT_SILENCE: return "expect-silence";
    case SCENARIO_STEP_STARTTLS: return "starttls";
    case SCENARIO_STEP_DRAIN: return "drain";
    case SCENARIO_STEP_CLOSE: return "close";
    case SCENARIO_STEP_REPEAT: return "repeat";
    case SCENARIO_STEP_RELAY: return "relay";
    case SCENARIO_STEP_RELAY_RULE: return "relay rule";
    case SCENARIO_STEP_EXPECT_CLIENT: return "expect-client";
    }
    return "?";
}

static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

int scenario_requirement_id_valid(const char *id)
{
    const char *p = id;
    if (*p++ != 'R' || !is_digit(*p))
        return 0;
    while (is_digit(*p))
        p++;
    if (*p == '/') {
        p++;
        if (!is_digit(*p))
            return 0;
        while (is_digit(*p))
            p++;
        if (*p == '\0')
            return 1;   /* "R3463/5248": a pair of RFCs cited as a whole */
    }
    if (*p++ != '-' || !is_alnum(*p))
        return 0;
    for (; *p; p++)
        if (!is_alnum(*p) && *p != '.')
            return 0;
    return p[-1] != '.' && strlen(id) < 64;
}

int scenario_duration_parse(const char *t, unsigned long long *out_ms)
{
    if (!is_digit(t[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(t, &end, 10);
    if (errno != 0 || v > 86400000ULL)
        return -1;
    unsigned long long mul;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -1;
    if (v * mul > 86400000ULL)   /* a day bounds every wait in a scenario */
        return -1;
    *out_ms = v * mul;
    return 0;
}

static int number_parse(const char *t, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!is_digit(t[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(t, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int size_parse(const char *t, unsigned long long *out)
{
    if (!is_digit(t[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(t, &end, 10);
    if (errno != 0)
        return -1;
    if (*end == 'k' && end[1] == '\0')
        v *= 1024;
    else if (*end == 'M' && end[1] == '\0')
        v *= 1024 * 1024;
    else if (*end != '\0')
        return -1;
    if (v > 64ULL * 1024 * 1024)
        return -1;
    *out = v;
    return 0;
}

int scenario_codes_parse(const char *text, struct scenario_codes *out, struct etrn_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (out->n == SCENARIO_CODES_MAX)
            return err_set(err, "code pattern '%s' has more than %d alternatives", text,
                           SCENARIO_CODES_MAX);
        char *alt = out->alt[out->n];
        if (len == 3 && strncmp(p, "any", 3) == 0) {
            memcpy(alt, "xxx", 4);
        } else if (len == 4 && strncmp(p, "none", 4) == 0) {
            out->none = 1;
            goto next;
        } else {
            if (len != 3)
                return err_set(err, "reply code '%.*s' in '%s' is not three digits", (int)len,
                               p, text);
            for (size_t i = 0; i < 3; i++) {
                char c = p[i];
                if (c == 'X')
                    c = 'x';
                int ok = c == 'x' || (i == 0 && c >= '2' && c <= '5') ||
                         (i == 1 && c >= '0' && c <= '5') || (i == 2 && is_digit(c));
                if (!ok)
                    return err_set(err, "reply code '%.*s' in '%s' is not a valid reply code",
                                   (int)len, p, text);
                alt[i] = c;
            }
            alt[3] = '\0';
        }
        out->n++;
    next:
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return 0;
}

int scenario_codes_match(const struct scenario_codes *c, int code)
{
    if (code < 100 || code > 999)
        return 0;
    char d[3] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10), (char)('0' + code % 10)};
    for (size_t i = 0; i < c->n; i++) {
        int ok = 1;
        for (size_t k = 0; k < 3; k++)
            if (c->alt[i][k] != 'x' && c->alt[i][k] != d[k])
                ok = 0;
        if (ok)
            return 1;
    }
    return 0;
}

int scenario_codes_format(const struct scenario_codes *c, char *buf, size_t n)
{
    struct strbuf sb;
    strbuf_init(&sb, 256);
    for (size_t i = 0; i < c->n; i++) {
        const char *a = strcmp(c->alt[i], "xxx") == 0 ? "any" : c->alt[i];
        if (strbuf_appendf(&sb, "%s%s", i ? "|" : "", a) < 0) {
            strbuf_free(&sb);
            return -1;
        }
    }
    if (c->none && strbuf_appendf(&sb, "%snone", c->n ? "|" : "") < 0) {
        strbuf_free(&sb);
        return -1;
    }
    int r = str_copy(buf, n, sb.data);
    strbuf_free(&sb);
    return r;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int scenario_glob_match(const char *pat, const char *text)
{
    /* Iterative matcher with one backtrack point: linear in practice, never recursive. */
    const char *star = NULL, *resume = NULL;
    while (*text) {
        if (*pat == '*') {
            star = pat++;
            resume = text;
        } else if (*pat == '?' || (*pat && lower((unsigned char)*pat) == lower((unsigned char)*text))) {
            pat++;
            text++;
        } else if (star) {
            pat = star + 1;
            text = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* ---- words -------------------------------------------------------------------------- */

/* Splits line in place; offs[i] is word i's start offset in the original line (for
 * rest-of-line texts). */
static int split_words_until(char *line, char **words, size_t *offs, int max, int stop_after,
                             const char *stop_word, struct etrn_err *err)
{
    int n = 0;
    char *base = line, *p = line;
    for (;;) {
        /* free text follows: the rest of the line is not split (no quotes, no comments) */
        if ((stop_after > 0 && n == stop_after) ||
            (stop_word && n > 0 && strcmp(words[n - 1], stop_word) == 0)) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '\0')
                break;
            if (n == max)
                return err_set(err, "more than %d words on one line", max);
            if (offs)
                offs[n] = (size_t)(p - base);
            words[n++] = p;
            break;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            break;
        if (n == max)
            return err_set(err, "more than %d words on one line", max);
        if (offs)
            offs[n] = (size_t)(p - base);
        if (*p == '"') {
            char *w = ++p, *o = p;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                *o++ = *p++;
            }
            if (*p != '"')
                return err_set(err, "unterminated quote");
            p++;
            if (*p != '\0' && *p != ' ' && *p != '\t')
                return err_set(err, "text after a closing quote");
            char *next = *p ? p + 1 : p;
            *o = '\0';
            words[n++] = w;
            p = next;
            continue;
        }
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

static int split_words(char *line, char **words, size_t *offs, int max, struct etrn_err *err)
{
    return split_words_until(line, words, offs, max, 0, NULL, err);
}

int scenario_split_words(char *line, char **words, int max, struct etrn_err *err)
{
    return split_words(line, words, NULL, max, err);
}

/* ---- expansion and escapes ------------------------------------------------------------ */

static int var_char(int c)
{
    return is_alnum(c) || c == '_';
}

int scenario_expand(const char *in, scenario_var_lookup lookup, void *arg, struct strbuf *out,
                    struct etrn_err *err)
{
    size_t start = out->len;
    for (const char *p = in; *p;) {
        if (*p != '$') {
            const char *q = strchr(p, '$');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (strbuf_append(out, p, n) < 0)
                goto too_long;
            p += n;
            continue;
        }
        if (p[1] == '$') {
            if (strbuf_append(out, "$", 1) < 0)
                goto too_long;
            p += 2;
            continue;
        }
        char name[64];
        size_t n = 0;
        const char *q = p + 1;
        if (*q == '{') {
            q++;
            while (var_char((unsigned char)*q) && n < sizeof name - 1)
                name[n++] = *q++;
            if (*q != '}' || n == 0) {
                out->len = start;
                out->data[start] = '\0';
                return err_set(err, "bad variable reference '%.20s'", p);
            }
            q++;
        } else {
            while (var_char((unsigned char)*q) && n < sizeof name - 1)
                name[n++] = *q++;
            if (n == 0) {
                out->len = start;
                out->data[start] = '\0';
                return err_set(err, "'$' without a variable name (write '$$' for a dollar)");
            }
        }
        name[n] = '\0';
        const char *v = lookup ? lookup(name, arg) : NULL;
        if (v == NULL) {
            out->len = start;
            out->data[start] = '\0';
            return err_set(err, "unknown variable '$%s'", name);
        }
        if (strbuf_append_str(out, v) < 0)
            goto too_long;
        p = q;
    }
    if (out->len - start > SCENARIO_EXPAND_MAX)
        goto too_long;
    return 0;
too_long:
    out->len = start;
    out->data[start] = '\0';
    return err_set(err, "expanded text is longer than %d octets", SCENARIO_EXPAND_MAX);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int scenario_unescape(const char *in, struct strbuf *out, struct etrn_err *err)
{
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'r': c = '\r'; break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case '\\': c = '\\'; break;
            case 'x': {
                int h = hexval((unsigned char)p[1]), l = h < 0 ? -1 : hexval((unsigned char)p[2]);
                if (h < 0 || l < 0)
                    return err_set(err, "bad escape '\\x%.2s' (two hex digits needed)", p + 1);
                c = (char)(h * 16 + l);
                p += 2;
                break;
            }
            case '\0':
                return err_set(err, "a lone '\\' ends the text");
            default:
                return err_set(err, "unknown escape '\\%c' (use \\r \\n \\t \\\\ \\xNN)", *p);
            }
        }
        if (strbuf_append(out, &c, 1) < 0)
            return err_set(err, "text is longer than %zu octets", out->limit);
    }
    return 0;
}

/* ---- building ------------------------------------------------------------------------- */

static void step_free(struct scenario_step *s)
{
    str_vec_free(s->argv, (size_t)s->argc);
    free(s->text);
    str_vec_free(s->check.reqs, s->check.nreqs);
    str_vec_free(s->check.record_reqs, s->check.nrecord_reqs);
    for (size_t i = 0; i < s->expect.nwith; i++)
        free(s->expect.with_keyword[i]);
    for (size_t i = 0; i < s->expect.nwithout; i++)
        free(s->expect.without_keyword[i]);
    for (size_t i = 0; i < s->expect.nbare; i++)
        free(s->expect.bare_keyword[i]);
    free(s->expect.text_glob);
    free(s->outcome.sink);
    free(s->outcome.sink2);
    free(s->queue.to);
    free(s->queue.from);
    free(s->client.name);
    free(s->client.from);
    free(s->client.to);
    free(s->hostile.kind);
    free(s->hostile.from);
    free(s->hostile.script);
    free(s->relay.verb);
    for (size_t i = 0; i < s->nchildren; i++)
        step_free(&s->children[i]);
    free(s->children);
}

static void list_free(struct step_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        step_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static struct step_list *current_list(struct parser *p)
{
    return p->depth ? &p->blocks[p->depth - 1].list : &p->top;
}

/* Appends a zeroed step with argv copied; returns it or NULL (error set). */
static struct scenario_step *step_add(struct parser *p, enum scenario_step_kind kind,
                                      char **words, int nwords)
{
    if (p->sc->nsteps_total >= SCENARIO_STEPS_MAX) {
        perr(p, "more than %d steps", SCENARIO_STEPS_MAX);
        return NULL;
    }
    struct step_list *l = current_list(p);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        struct scenario_step *v = realloc(l->v, nc * sizeof *v);
        if (v == NULL) {
            oom(p);
            return NULL;
        }
        l->v = v;
        l->cap = nc;
    }
    struct scenario_step *s = &l->v[l->n];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->file = p->sc->file;
    s->line = p->line;
    s->expect.queued = -1;
    s->expect.times = 1;
    s->client.copies = 1;
    s->argv = calloc((size_t)nwords + 1, sizeof *s->argv);
    if (s->argv == NULL) {
        oom(p);
        return NULL;
    }
    l->n++;
    for (int i = 0; i < nwords; i++) {
        s->argv[i] = strdup(words[i]);
        if (s->argv[i] == NULL) {
            oom(p);
            return NULL;
        }
        s->argc = i + 1;
    }
    p->sc->nsteps_total++;
    return s;
}

static int dup_into(struct parser *p, char **dst, const char *src)
{
    *dst = strdup(src);
    return *dst ? 0 : oom(p);
}

static int node_name_valid(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 40)
        return 0;
    for (const char *c = n; *c; c++)
        if (!is_alnum(*c) && *c != '-' && *c != '_')
            return 0;
    return 1;
}

static int note_used_node(struct parser *p, const char *name)
{
    if (strcmp(name, "any") == 0)
        return 0;   /* outcomes: every node of the scenario */
    if (p->nused == p->capused) {
        size_t nc = p->capused ? p->capused * 2 : 8;
        char **v = realloc(p->used, nc * sizeof *v);
        int *l = realloc(p->used_line, nc * sizeof *l);
        if (v)
            p->used = v;
        if (l)
            p->used_line = l;
        if (v == NULL || l == NULL)
            return oom(p);
        p->capused = nc;
    }
    p->used[p->nused] = strdup(name);
    if (p->used[p->nused] == NULL)
        return oom(p);
    p->used_line[p->nused++] = p->line;
    return 0;
}

static int declare_node(struct parser *p, const char *name)
{
    if (!node_name_valid(name))
        return perr(p, "node name '%s' must be 1-40 letters, digits, '-' or '_'", name);
    if (strcmp(name, "requester") == 0 || strcmp(name, "any") == 0)
        return perr(p, "'%s' is a reserved node name", name);
    for (size_t i = 0; i < p->sc->nsinks; i++)
        if (strcmp(p->sc->sinks[i], name) == 0)
            return perr(p, "node '%s' is declared twice", name);
    if (str_push(&p->sc->sinks, &p->sc->nsinks, name) < 0)
        return oom(p);
    return 0;
}

static int is_world_word(const char *w)
{
    static const char *const words[] = {"dns", "dns-quirk", "dns-clear", "sink",
                                        "sink-behave", "external", "link"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(w, words[i]) == 0)
            return 1;
    return 0;
}

/* Checks a world line's shape (the world checks the words themselves at run time).
 * declare: sink/external lines may declare nodes here. */
static int check_world_line(struct parser *p, char **w, int n, int declare)
{
    const char *k = w[0];
    if (word_is(k, "dns")) {
        if (n < 4)
            return perr(p, "dns needs OWNER TYPE RDATA (e.g. 'dns $node MX 10 mx1.$node')");
    } else if (word_is(k, "dns-quirk")) {
        if (n < 3 || n > 4)
            return perr(p, "dns-quirk needs NAME QUIRK [ARG]");
    } else if (word_is(k, "dns-clear")) {
        if (n < 2 || n > 3)
            return perr(p, "dns-clear needs NAME [QUIRK]");
    } else if (word_is(k, "sink") || word_is(k, "external")) {
        if (n < 2)
            return perr(p, "%s needs a node NAME", k);
        if (word_is(k, "external") && n < 3)
            return perr(p, "external needs NAME HOST:PORT");
        if (!declare)
            return perr(p, "'%s' declares a node and cannot be delayed with 'at'", k);
        return declare_node(p, w[1]);
    } else if (word_is(k, "link") || word_is(k, "sink-behave")) {
        if (n < 3)
            return perr(p, "%s needs NAME and at least one word", k);
        return note_used_node(p, w[1]);
    }
    return 0;
}

/* Parses trailing "else LEVEL [REQ...]" and "record LEVEL [REQ...]"; returns the index
 * of the first word belonging to them (n if none). */
static int split_check_tail(struct parser *p, char **w, int n, struct scenario_check *c,
                            int *tail)
{
    int i;
    for (i = 0; i < n; i++)
        if (word_is(w[i], "else") || word_is(w[i], "record"))
            break;
    *tail = i;
    while (i < n) {
        int is_else = word_is(w[i], "else");
        if (!is_else && !word_is(w[i], "record"))
            return perr(p, "unexpected '%s' (after else/record only requirement IDs follow)",
                        w[i]);
        if ((is_else && c->level) || (!is_else && c->record))
            return perr(p, "'%s' given twice", w[i]);
        if (i + 1 >= n)
            return perr(p, "'%s' needs a level (FAIL|WARN|INFO or MUST|SHOULD|MAY)", w[i]);
        enum scenario_level lv;
        if (scenario_level_parse(w[i + 1], &lv) < 0)
            return perr(p, "unknown level '%s' (FAIL|WARN|INFO or MUST|SHOULD|MAY)", w[i + 1]);
        if (is_else)
            c->level = lv;
        else
            c->record = lv;
        i += 2;
        while (i < n && !word_is(w[i], "else") && !word_is(w[i], "record")) {
            if (!scenario_requirement_id_valid(w[i]))
                return perr(p, "'%s' is not a requirement ID (like R1985-5.1.1)", w[i]);
            int r = is_else ? str_push(&c->reqs, &c->nreqs, w[i])
                            : str_push(&c->record_reqs, &c->nrecord_reqs, w[i]);
            if (r < 0)
                return oom(p);
            i++;
        }
    }
    return 0;
}

static int parse_duration_word(struct parser *p, const char *what, const char *w,
                               unsigned long long *out)
{
    if (scenario_duration_parse(w, out) < 0)
        return perr(p, "%s: '%s' is not a duration (250ms, 10s, 5m, 1h; at most a day)", what,
                    w);
    return 0;
}

static int parse_count_word(struct parser *p, const char *what, const char *w,
                            unsigned long min, unsigned long max, unsigned long *out)
{
    if (number_parse(w, min, max, out) < 0)
        return perr(p, "%s: '%s' is not a number from %lu to %lu", what, w, min, max);
    return 0;
}

/* The rest of the raw line from word index `from` (offsets into the raw line). */
static int rest_of_line(struct parser *p, const char *raw, const size_t *offs, int nwords,
                        int from, char **out)
{
    if (from >= nwords) {
        *out = strdup("");
    } else {
        size_t len = strlen(raw + offs[from]);
        while (len > 0 && raw[offs[from] + len - 1] == '\r')
            len--;
        *out = strndup(raw + offs[from], len);
    }
    return *out ? 0 : oom(p);
}

/* ---- step parsers -------------------------------------------------------------------- */

static int parse_expect(struct parser *p, struct scenario_step *s, char **w, int n)
{
    int tail;
    if (split_check_tail(p, w, n, &s->check, &tail) < 0)
        return -1;
    if (tail < 2)
        return perr(p, "expect needs reply codes (e.g. 'expect 250|251')");
    struct etrn_err e;
    if (scenario_codes_parse(w[1], &s->expect.codes, &e) < 0)
        return perr(p, "%s", e.msg);
    struct scenario_expect *x = &s->expect;
    for (int i = 2; i < tail; i++) {
        const char *o = w[i];
        int has_arg = i + 1 < tail;
        if (word_is(o, "enhanced")) {
            x->enhanced = 1;
            continue;
        }
        if (word_is(o, "single-line")) {
            x->single_line = 1;
            continue;
        }
        if (!has_arg)
            return perr(p, "expect option '%s' %s", o,
                        (word_is(o, "with-keyword") || word_is(o, "without-keyword") ||
                         word_is(o, "bare-keyword") || word_is(o, "text") ||
                         word_is(o, "queued") || word_is(o, "times") || word_is(o, "within"))
                            ? "needs a value"
                            : "is unknown");
        const char *a = w[++i];
        if (word_is(o, "with-keyword") || word_is(o, "without-keyword") ||
            word_is(o, "bare-keyword")) {
            char **slot;
            size_t *cnt;
            if (word_is(o, "with-keyword")) {
                slot = x->with_keyword;
                cnt = &x->nwith;
            } else if (word_is(o, "without-keyword")) {
                slot = x->without_keyword;
                cnt = &x->nwithout;
            } else {
                slot = x->bare_keyword;
                cnt = &x->nbare;
            }
            if (*cnt == SCENARIO_KEYWORDS_MAX)
                return perr(p, "more than %d %s options", SCENARIO_KEYWORDS_MAX, o);
            if (dup_into(p, &slot[*cnt], a) < 0)
                return -1;
            (*cnt)++;
        } else if (word_is(o, "text")) {
            if (x->text_glob)
                return perr(p, "'text' given twice");
            if (dup_into(p, &x->text_glob, a) < 0)
                return -1;
        } else if (word_is(o, "queued")) {
            unsigned long v = 0;
            if (parse_count_word(p, "queued", a, 0, SCENARIO_QUEUE_MAX, &v) < 0)
                return -1;
            x->queued = (long)v;
        } else if (word_is(o, "times")) {
            if (parse_count_word(p, "times", a, 1, SCENARIO_REPEAT_MAX, &x->times) < 0)
                return -1;
        } else if (word_is(o, "within")) {
            if (parse_duration_word(p, "within", a, &x->within_ms) < 0)
                return -1;
        } else {
            return perr(p, "unknown expect option '%s'", o);
        }
    }
    return 0;
}

static int parse_outcome(struct parser *p, struct scenario_step *s, char **w, int n)
{
    int tail;
    if (split_check_tail(p, w, n, &s->check, &tail) < 0)
        return -1;
    struct scenario_outcome *o = &s->outcome;
    int i = 1;   /* w[0] == "outcome" */
    int m = tail;
#define AT(k, word) (i + (k) < m && word_is(w[i + (k)], word))
    if (AT(0, "delivered") && i + 3 < m && word_is(w[i + 2], "to")) {
        o->kind = SCENARIO_OUTCOME_DELIVERED;
        if (word_is(w[i + 1], "all")) {
            o->count = -1;
        } else {
            unsigned long v = 0;
            if (parse_count_word(p, "delivered", w[i + 1], 0, SCENARIO_QUEUE_MAX, &v) < 0)
                return -1;
            o->count = (long)v;
        }
        if (dup_into(p, &o->sink, w[i + 3]) < 0)
            return -1;
        i += 4;
    } else if (AT(0, "nothing") && AT(1, "delivered") && AT(2, "to") && AT(3, "the") &&
               AT(4, "requester")) {
        o->kind = SCENARIO_OUTCOME_NOTHING_TO_REQUESTER;
        i += 5;
    } else if (AT(0, "nothing") && AT(1, "delivered") && AT(2, "to") && AT(3, "requester")) {
        o->kind = SCENARIO_OUTCOME_NOTHING_TO_REQUESTER;
        i += 4;
    } else if ((AT(0, "nothing") || AT(0, "not")) && AT(1, "delivered") && AT(2, "to") &&
               i + 3 < m) {
        o->kind = SCENARIO_OUTCOME_NOT_DELIVERED;
        if (dup_into(p, &o->sink, w[i + 3]) < 0)
            return -1;
        i += 4;
    } else if (AT(0, "no") && AT(1, "duplicates")) {
        o->kind = SCENARIO_OUTCOME_NO_DUPLICATES;
        i += 2;
    } else if (AT(0, "at") && AT(1, "most") && AT(3, "copies")) {
        o->kind = SCENARIO_OUTCOME_AT_MOST_COPIES;
        unsigned long v = 0;
        if (parse_count_word(p, "at most", w[i + 2], 1, 1000, &v) < 0)
            return -1;
        o->count = (long)v;
        i += 4;
    } else if (AT(0, "connected") && AT(1, "to") && i + 2 < m) {
        o->kind = SCENARIO_OUTCOME_CONNECTED;
        if (dup_into(p, &o->sink, w[i + 2]) < 0)
            return -1;
        i += 3;
    } else if (AT(0, "no") && AT(1, "connection") && AT(2, "to") && i + 3 < m) {
        o->kind = SCENARIO_OUTCOME_NO_CONNECTION;
        if (dup_into(p, &o->sink, w[i + 3]) < 0)
            return -1;
        i += 4;
    } else if (AT(0, "tried") && AT(2, "before") && i + 3 < m) {
        o->kind = SCENARIO_OUTCOME_TRIED_BEFORE;
        if (dup_into(p, &o->sink, w[i + 1]) < 0 || dup_into(p, &o->sink2, w[i + 3]) < 0)
            return -1;
        i += 4;
    } else if (AT(0, "still") && AT(1, "queued")) {
        o->kind = SCENARIO_OUTCOME_STILL_QUEUED;
        o->count = -1;
        i += 2;
        if (i < m && !word_is(w[i], "within")) {
            if (!word_is(w[i], "all")) {
                unsigned long v = 0;
                if (parse_count_word(p, "still queued", w[i], 0, SCENARIO_QUEUE_MAX, &v) < 0)
                    return -1;
                o->count = (long)v;
            }
            i++;
        }
    } else if (AT(0, "target") && AT(1, "alive")) {
        o->kind = SCENARIO_OUTCOME_TARGET_ALIVE;
        i += 2;
    } else {
        return perr(p, "unknown outcome '%s' (delivered N to SINK, nothing delivered to SINK, "
                       "nothing delivered to the requester, no duplicates, at most N copies, "
                       "connected to SINK, no connection to SINK, tried SINK before SINK2, "
                       "still queued, target alive)",
                    n > 1 ? w[1] : "");
    }
#undef AT
    if (i + 1 < m && word_is(w[i], "within")) {
        if (o->kind == SCENARIO_OUTCOME_NO_DUPLICATES || o->kind == SCENARIO_OUTCOME_AT_MOST_COPIES ||
            o->kind == SCENARIO_OUTCOME_TRIED_BEFORE || o->kind == SCENARIO_OUTCOME_STILL_QUEUED)
            return perr(p, "this outcome takes no 'within'");
        if (parse_duration_word(p, "within", w[i + 1], &o->within_ms) < 0)
            return -1;
        i += 2;
    }
    if (i < m)
        return perr(p, "unexpected '%s' in outcome", w[i]);
    if (o->sink && strcmp(o->sink, "any") == 0 && o->kind != SCENARIO_OUTCOME_DELIVERED &&
        o->kind != SCENARIO_OUTCOME_NOT_DELIVERED)
        return perr(p, "'any' only works with delivered and nothing delivered");
    if (o->sink && note_used_node(p, o->sink) < 0)
        return -1;
    if (o->sink2 && note_used_node(p, o->sink2) < 0)
        return -1;
    return 0;
}

static int parse_queue(struct parser *p, struct scenario_step *s, char **w, int n)
{
    if (n < 4 || !word_is(w[2], "to"))
        return perr(p, "queue needs N to ADDR (e.g. 'queue 3 to user@$node')");
    if (parse_count_word(p, "queue", w[1], 1, SCENARIO_QUEUE_MAX, &s->queue.count) < 0)
        return -1;
    if (strchr(w[3], '@') == NULL)
        return perr(p, "queue: '%s' is not an address (user@domain)", w[3]);
    if (dup_into(p, &s->queue.to, w[3]) < 0)
        return -1;
    for (int i = 4; i < n; i += 2) {
        if (i + 1 >= n)
            return perr(p, "queue option '%s' needs a value", w[i]);
        if (word_is(w[i], "from")) {
            free(s->queue.from);
            if (dup_into(p, &s->queue.from, w[i + 1]) < 0)
                return -1;
        } else if (word_is(w[i], "size")) {
            if (size_parse(w[i + 1], &s->queue.size) < 0)
                return perr(p, "queue size '%s' is not a size up to 64M (100, 10k, 2M)",
                            w[i + 1]);
        } else {
            return perr(p, "unknown queue option '%s' (from, size)", w[i]);
        }
    }
    return 0;
}

static int parse_client(struct parser *p, struct scenario_step *s, char **w, int n)
{
    int i = 1;
    if (i < n && !word_is(w[i], "from") && !word_is(w[i], "copies") && !word_is(w[i], "to")) {
        if (!node_name_valid(w[i]))
            return perr(p, "client name '%s' must be letters, digits, '-' or '_'", w[i]);
        if (dup_into(p, &s->client.name, w[i]) < 0)
            return -1;
        i++;
    }
    for (; i < n; i += 2) {
        if (i + 1 >= n)
            return perr(p, "client option '%s' needs a value", w[i]);
        if (word_is(w[i], "from")) {
            free(s->client.from);
            if (dup_into(p, &s->client.from, w[i + 1]) < 0)
                return -1;
        } else if (word_is(w[i], "to")) {
            free(s->client.to);
            if (dup_into(p, &s->client.to, w[i + 1]) < 0)
                return -1;
        } else if (word_is(w[i], "copies")) {
            if (parse_count_word(p, "copies", w[i + 1], 1, SCENARIO_COPIES_MAX,
                                 &s->client.copies) < 0)
                return -1;
        } else {
            return perr(p, "unknown client option '%s' (from, to, copies)", w[i]);
        }
    }
    return 0;
}

static int parse_hostile(struct parser *p, struct scenario_step *s, char **w, int n,
                         const char *raw, const size_t *offs)
{
    static const char *const kinds[] = {"slow-sender", "command-flood", "pipelined-burst",
                                        "disconnect-mid-command", "garbage", "overlong-line"};
    if (n < 2)
        return perr(p, "hostile needs a KIND (slow-sender, command-flood, pipelined-burst, "
                       "disconnect-mid-command, garbage, overlong-line)");
    int known = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (word_is(w[1], kinds[k]))
            known = 1;
    if (!known)
        return perr(p, "unknown hostile kind '%s' (slow-sender, command-flood, pipelined-burst, "
                       "disconnect-mid-command, garbage, overlong-line)", w[1]);
    if (dup_into(p, &s->hostile.kind, w[1]) < 0)
        return -1;
    for (int i = 2; i < n; i += 2) {
        if (word_is(w[i], "script")) {
            if (rest_of_line(p, raw, offs, n, i + 1, &s->hostile.script) < 0)
                return -1;
            struct strbuf sb;
            strbuf_init(&sb, SCENARIO_EXPAND_MAX);
            struct etrn_err e;
            int r = scenario_unescape(s->hostile.script, &sb, &e);
            strbuf_free(&sb);
            if (r < 0)
                return perr(p, "script: %s", e.msg);
            if (s->hostile.script[0] == '\0')
                return perr(p, "script needs text");
            break;
        }
        if (i + 1 >= n)
            return perr(p, "hostile option '%s' needs a value", w[i]);
        if (word_is(w[i], "count")) {
            if (parse_count_word(p, "count", w[i + 1], 1, 16u * 1024 * 1024,
                                 &s->hostile.count) < 0)
                return -1;
        } else if (word_is(w[i], "interval")) {
            if (parse_duration_word(p, "interval", w[i + 1], &s->hostile.interval_ms) < 0)
                return -1;
        } else if (word_is(w[i], "from")) {
            free(s->hostile.from);
            if (dup_into(p, &s->hostile.from, w[i + 1]) < 0)
                return -1;
        } else {
            return perr(p, "unknown hostile option '%s' (count, interval, from, script)", w[i]);
        }
    }
    return 0;
}

static int parse_check_only(struct parser *p, struct scenario_step *s, char **w, int n,
                            int min_args, int max_args, const char *usage)
{
    int tail;
    if (split_check_tail(p, w, n, &s->check, &tail) < 0)
        return -1;
    if (tail - 1 < min_args || tail - 1 > max_args)
        return perr(p, "usage: %s", usage);
    return tail;
}

/* ---- client conformance: relay blocks and expect-client ----------------------------- */

static int in_relay(const struct parser *p)
{
    return p->depth > 0 && p->blocks[p->depth - 1].kind == SCENARIO_STEP_RELAY;
}

static int is_relay_word(const char *k)
{
    return strcmp(k, "on") == 0 || strcmp(k, "ehlo-keywords") == 0 || strcmp(k, "tls") == 0 ||
           strcmp(k, "nodes") == 0;
}

/* on VERB [conn N] [nth N] [delay DUR] [pace DUR] reply CODE [TEXT] | ... close */
static int parse_relay_on(struct parser *p, struct scenario_step *s, char **w, int n)
{
    static const char *const verbs[] = {"CONNECT", "EHLO", "HELO", "ETRN", "STARTTLS",
                                        "QUIT", "NOOP", "RSET", "OTHER"};
    struct scenario_relay_rule *r = &s->relay;
    const char *usage = "usage: on VERB [conn N] [nth N] [delay DUR] [pace DUR] "
                        "(reply CODE [TEXT] | close)";
    if (n < 3)
        return perr(p, "%s", usage);
    int known = 0;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (str_casecmp(w[1], verbs[i]) == 0 && dup_into(p, &r->verb, verbs[i]) == 0)
            known = 1;
    if (!known)
        return perr(p, "on: unknown verb '%s' (CONNECT, EHLO, HELO, ETRN, STARTTLS, QUIT, NOOP, "
                       "RSET, OTHER)", w[1]);
    int i = 2;
    for (; i < n; i += 2) {
        if (word_is(w[i], "reply") || word_is(w[i], "close"))
            break;
        if (i + 1 >= n)
            return perr(p, "on: '%s' needs a value", w[i]);
        int rc;
        if (word_is(w[i], "conn"))
            rc = parse_count_word(p, "conn", w[i + 1], 1, 1000, &r->conn);
        else if (word_is(w[i], "nth"))
            rc = parse_count_word(p, "nth", w[i + 1], 1, 1000, &r->nth);
        else if (word_is(w[i], "delay"))
            rc = parse_duration_word(p, "delay", w[i + 1], &r->delay_ms);
        else if (word_is(w[i], "pace"))
            rc = parse_duration_word(p, "pace", w[i + 1], &r->pace_ms);
        else
            return perr(p, "on: unknown option '%s' (conn, nth, delay, pace, reply, close)",
                        w[i]);
        if (rc < 0)
            return -1;
    }
    if (i >= n)
        return perr(p, "%s", usage);
    if (word_is(w[i], "close")) {
        if (i + 1 != n)
            return perr(p, "on: nothing may follow 'close'");
        r->close = 1;
        return 0;
    }
    /* reply: the splitter left "CODE TEXT" as one raw word */
    if (i + 1 >= n)
        return perr(p, "on: reply needs a code (e.g. 'reply 250 OK')");
    const char *t = w[i + 1];
    if (!(t[0] >= '2' && t[0] <= '5' && t[1] >= '0' && t[1] <= '9' && t[2] >= '0' &&
          t[2] <= '9' && (t[3] == '\0' || t[3] == ' ' || t[3] == '\t')))
        return perr(p, "on: reply code '%.8s' is not 200-599", t);
    r->code = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
    r->close = r->code == 421;
    const char *text = t + 3;
    text += strspn(text, " \t");
    if (dup_into(p, &s->text, text) < 0)
        return -1;
    size_t len = strlen(s->text);
    while (len > 0 && (s->text[len - 1] == '\r' || s->text[len - 1] == ' '))
        s->text[--len] = '\0';
    struct strbuf sb;
    struct etrn_err e;
    strbuf_init(&sb, SCENARIO_EXPAND_MAX);
    int rc = scenario_unescape(s->text, &sb, &e);
    strbuf_free(&sb);
    if (rc < 0)
        return perr(p, "on: reply text: %s", e.msg);
    return 0;
}

static int parse_relay_line(struct parser *p, char **w, int n)
{
    if (!in_relay(p))
        return perr(p, "'%s' is only allowed inside a relay block", w[0]);
    struct scenario_step *s = step_add(p, SCENARIO_STEP_RELAY_RULE, w, n);
    if (s == NULL)
        return -1;
    if (word_is(w[0], "on"))
        return parse_relay_on(p, s, w, n);
    if (word_is(w[0], "ehlo-keywords")) {
        if (n < 2)
            return perr(p, "ehlo-keywords needs keywords (or 'none')");
        for (int i = 1; i < n; i++)
            for (const char *c = w[i]; *c; c++)
                if (!is_alnum(*c) && *c != '-')
                    return perr(p, "ehlo-keywords: '%s' is not an EHLO keyword", w[i]);
        return 0;
    }
    if (word_is(w[0], "tls")) {
        if (n != 2 || (!word_is(w[1], "offered") && !word_is(w[1], "required")))
            return perr(p, "usage: tls offered|required");
        return 0;
    }
    /* nodes N */
    if (n != 2)
        return perr(p, "usage: nodes N (how many nodes the client is asked for, 1-8)");
    return parse_count_word(p, "nodes", w[1], 1, 8, &s->count);
}

/* expect-client CHECK [else ...] [record ...]; the forms are listed in docs/SCENARIOS.md. */
static int parse_expect_client(struct parser *p, struct scenario_step *s, char **w, int n)
{
    int tail;
    if (split_check_tail(p, w, n, &s->check, &tail) < 0)
        return -1;
    int m = tail - 1;
    char **a = w + 1;
    if (m == 1 && (word_is(a[0], "quits") || word_is(a[0], "connects")))
        return 0;
    if (m == 2 && word_is(a[0], "uses") && (word_is(a[1], "EHLO") || word_is(a[1], "STARTTLS")))
        return 0;
    if (m == 3 && word_is(a[0], "waits") && word_is(a[1], "for") && word_is(a[2], "replies"))
        return 0;
    if (m == 3 && word_is(a[0], "sends") && word_is(a[1], "ETRN"))
        return 0;   /* sends ETRN ARG */
    if (m == 5 && word_is(a[0], "sends") && word_is(a[1], "ETRN") && word_is(a[2], "only") &&
        word_is(a[3], "where") && word_is(a[4], "advertised"))
        return 0;
    if (m == 3 && word_is(a[0], "sends") && word_is(a[1], "no") && word_is(a[2], "ETRN"))
        return 0;
    if (m == 3 && word_is(a[0], "sends") && word_is(a[1], "valid") && word_is(a[2], "ETRN"))
        return 0;
    if (m == 6 && word_is(a[0], "sends") && word_is(a[1], "at") && word_is(a[2], "most") &&
        word_is(a[4], "ETRN") && word_is(a[5], "per-session"))
        return parse_count_word(p, "sends at most", a[3], 0, 1000, &s->count);
    if (m == 3 && word_is(a[0], "retries") && word_is(a[1], "within"))
        return parse_duration_word(p, "retries within", a[2], &s->duration_ms);
    if (m == 4 && word_is(a[0], "no") && word_is(a[1], "retry") && word_is(a[2], "within"))
        return parse_duration_word(p, "no retry within", a[3], &s->duration_ms);
    if (m == 4 && word_is(a[0], "backs") && word_is(a[1], "off") && word_is(a[2], "at-least"))
        return parse_duration_word(p, "backs off at-least", a[3], &s->duration_ms);
    if (m == 2 && word_is(a[0], "exits") &&
        (word_is(a[1], "zero") || word_is(a[1], "nonzero")))
        return 0;
    if (m == 2 && word_is(a[0], "reports"))
        return 0;   /* reports GLOB: the client's output matches */
    return perr(p, "unknown expect-client check (connects, uses EHLO, uses STARTTLS, sends ETRN "
                   "ARG, sends ETRN only where advertised, sends no ETRN, sends valid ETRN, sends at most N ETRN per-session, "
                   "quits, waits for replies, retries within DUR, no retry within DUR, backs "
                   "off at-least DUR, exits zero|nonzero, reports GLOB)");
}

/* ---- the line dispatcher ---------------------------------------------------------------- */

static int header_line(struct parser *p, char **w, int n, const char *raw, const size_t *offs)
{
    struct scenario *sc = p->sc;
    const char *k = w[0];
    if (p->depth)
        return perr(p, "'%s' is a header line and belongs outside blocks", k);
    if (word_is(k, "scenario")) {
        if (sc->id)
            return perr(p, "'scenario' given twice");
        if (n != 2)
            return perr(p, "scenario needs one ID (e.g. 'scenario etrn.flush.basic')");
        const char *id = w[1];
        if (!is_alnum(id[0]) || strlen(id) > 100)
            return perr(p, "scenario ID '%s' must start with a letter or digit (at most 100)",
                        id);
        for (const char *c = id; *c; c++)
            if (!(is_alnum(*c) && !(*c >= 'A' && *c <= 'Z')) && *c != '.' && *c != '-' &&
                *c != '_')
                return perr(p, "scenario ID '%s' may hold only a-z 0-9 . - _", id);
        return dup_into(p, &sc->id, id);
    }
    if (word_is(k, "title")) {
        if (sc->title)
            return perr(p, "'title' given twice");
        if (n < 2)
            return perr(p, "title needs text");
        return rest_of_line(p, raw, offs, n, 1, &sc->title);
    }
    if (word_is(k, "description")) {
        char *t;
        if (rest_of_line(p, raw, offs, n, 1, &t) < 0)
            return -1;
        size_t a = sc->description ? strlen(sc->description) : 0, b = strlen(t);
        char *d = realloc(sc->description, a + b + 2);
        if (d == NULL) {
            free(t);
            return oom(p);
        }
        if (a)
            d[a++] = '\n';
        memcpy(d + a, t, b + 1);
        sc->description = d;
        free(t);
        return 0;
    }
    if (word_is(k, "cites")) {
        if (n < 2)
            return perr(p, "cites needs requirement IDs");
        for (int i = 1; i < n; i++) {
            if (!scenario_requirement_id_valid(w[i]))
                return perr(p, "'%s' is not a requirement ID (like R1985-5.1.1)", w[i]);
            for (size_t j = 0; j < sc->ncites; j++)
                if (strcmp(sc->cites[j], w[i]) == 0)
                    return perr(p, "'%s' is cited twice", w[i]);
            if (str_push(&sc->cites, &sc->ncites, w[i]) < 0)
                return oom(p);
        }
        return 0;
    }
    if (word_is(k, "level")) {
        if (p->seen_level)
            return perr(p, "'level' given twice");
        if (n != 2 || scenario_level_parse(w[1], &sc->level) < 0 ||
            str_casecmp(w[1], "fail") == 0 || str_casecmp(w[1], "warn") == 0)
            return perr(p, "level needs MUST, SHOULD, MAY or INFO");
        p->seen_level = 1;
        return 0;
    }
    if (word_is(k, "requires")) {
        if (n < 2)
            return perr(p, "requires needs capability words (e.g. 'requires starttls')");
        for (int i = 1; i < n; i++) {
            for (const char *c = w[i]; *c; c++)
                if (!is_alnum(*c) && *c != '-' && *c != '_')
                    return perr(p, "capability '%s' may hold only letters, digits, - and _",
                                w[i]);
            if (str_push(&sc->requires, &sc->nrequires, w[i]) < 0)
                return oom(p);
        }
        return 0;
    }
    if (word_is(k, "timeout")) {
        if (n != 2)
            return perr(p, "timeout needs one duration");
        return parse_duration_word(p, "timeout", w[1], &sc->timeout_ms);
    }
    return perr(p, "unknown header line '%s'", k);
}

static int is_header_word(const char *k)
{
    static const char *const words[] = {"scenario", "title", "description", "cites",
                                        "level", "requires", "timeout"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(k, words[i]) == 0)
            return 1;
    return 0;
}

static int is_client_word(const char *k)
{
    static const char *const words[] = {"send", "send-raw", "send-repeat", "expect",
                                        "expect-close", "expect-silence", "starttls", "drain",
                                        "close", "repeat", "sleep"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(k, words[i]) == 0)
            return 1;
    return 0;
}

static int open_block(struct parser *p, enum scenario_step_kind kind)
{
    if (p->depth == BLOCK_DEPTH_MAX)
        return perr(p, "blocks nested more than %d deep", BLOCK_DEPTH_MAX);
    struct parse_block *b = &p->blocks[p->depth++];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->line = p->line;
    return 0;
}

static int close_block(struct parser *p)
{
    if (p->depth == 0)
        return perr(p, "'end' without an open client or repeat block");
    struct parse_block *b = &p->blocks[--p->depth];
    struct step_list *parent = current_list(p);
    struct scenario_step *owner = &parent->v[parent->n - 1];
    if (b->list.n == 0) {
        list_free(&b->list);
        return perr(p, "empty %s block (opened at line %d)", scenario_step_kind_name(b->kind),
                    b->line);
    }
    owner->children = b->list.v;
    owner->nchildren = b->list.n;
    memset(&b->list, 0, sizeof b->list);
    return 0;
}

static int in_client(const struct parser *p)
{
    for (int i = 0; i < p->depth; i++)
        if (p->blocks[i].kind == SCENARIO_STEP_CLIENT)
            return 1;
    return 0;
}

static int parse_line(struct parser *p, const char *raw, int topology)
{
    char copy[SCENARIO_LINE_MAX + 1];
    if (str_copy(copy, sizeof copy, raw) < 0)
        return perr(p, "line longer than %d octets", SCENARIO_LINE_MAX);
    char *w[SCENARIO_WORDS_MAX];
    size_t offs[SCENARIO_WORDS_MAX];
    struct etrn_err e;
    /* send, send-raw and send-repeat N carry free text; so does hostile ... script */
    const char *k0 = copy + strspn(copy, " \t");
    size_t k0len = strcspn(k0, " \t");
    int stop_after = 0;
    const char *stop_word = NULL;
    if ((k0len == 4 && strncmp(k0, "send", 4) == 0) ||
        (k0len == 8 && strncmp(k0, "send-raw", 8) == 0))
        stop_after = 1;
    else if (k0len == 11 && strncmp(k0, "send-repeat", 11) == 0)
        stop_after = 2;
    else if (k0len == 7 && strncmp(k0, "hostile", 7) == 0)
        stop_word = "script";
    else if (k0len == 2 && strncmp(k0, "on", 2) == 0)
        stop_word = "reply";
    int n = split_words_until(copy, w, offs, SCENARIO_WORDS_MAX, stop_after, stop_word, &e);
    if (n < 0)
        return perr(p, "%s", e.msg);
    if (n == 0)
        return 0;
    const char *k = w[0];
    struct scenario_step *s;

    if (!topology && (is_relay_word(k) || in_relay(p))) {
        if (word_is(k, "end"))
            return n == 1 ? close_block(p) : perr(p, "'end' takes no words");
        if (!is_relay_word(k))
            return perr(p, "'%s' is not allowed inside a relay block (on, ehlo-keywords, tls, "
                           "nodes, end)", k);
        return parse_relay_line(p, w, n);
    }
    if (!topology && (word_is(k, "relay") || word_is(k, "expect-client"))) {
        if (p->depth)
            return perr(p, "'%s' is not allowed inside a %s block", k,
                        scenario_step_kind_name(p->blocks[p->depth - 1].kind));
        if (word_is(k, "expect-client")) {
            if ((s = step_add(p, SCENARIO_STEP_EXPECT_CLIENT, w, n)) == NULL)
                return -1;
            return parse_expect_client(p, s, w, n);
        }
        if (n != 1)
            return perr(p, "'relay' takes no words (its lines follow, up to 'end')");
        for (size_t i = 0; i < p->top.n; i++)
            if (p->top.v[i].kind == SCENARIO_STEP_RELAY)
                return perr(p, "a scenario has at most one relay block");
        if ((s = step_add(p, SCENARIO_STEP_RELAY, w, n)) == NULL)
            return -1;
        return open_block(p, SCENARIO_STEP_RELAY);
    }

    if (is_header_word(k)) {
        if (topology)
            return perr(p, "'%s' belongs in a scenario, not a topology file", k);
        return header_line(p, w, n, raw, offs);
    }
    if (word_is(k, "end")) {
        if (n != 1)
            return perr(p, "'end' takes no words");
        return close_block(p);
    }
    if (word_is(k, "wait") || (word_is(k, "sleep") && in_client(p))) {
        if (n != 2)
            return perr(p, "%s needs one duration", k);
        if ((s = step_add(p, SCENARIO_STEP_WAIT, w, n)) == NULL)
            return -1;
        return parse_duration_word(p, k, w[1], &s->duration_ms);
    }
    if (is_world_word(k) || word_is(k, "at")) {
        if (p->depth)
            return perr(p, "'%s' is not allowed inside a %s block", k,
                        scenario_step_kind_name(p->blocks[p->depth - 1].kind));
        if (word_is(k, "at")) {
            if (n < 3)
                return perr(p, "at needs DURATION and a line (e.g. 'at 2s link sink1 down')");
            if ((s = step_add(p, SCENARIO_STEP_AT, w, n)) == NULL)
                return -1;
            if (parse_duration_word(p, "at", w[1], &s->duration_ms) < 0)
                return -1;
            if (!is_world_word(w[2]))
                return perr(p, "at: '%s' is not a world line (dns, dns-quirk, dns-clear, "
                               "sink-behave, link)", w[2]);
            return check_world_line(p, w + 2, n - 2, 0);
        }
        if ((s = step_add(p, SCENARIO_STEP_WORLD, w, n)) == NULL)
            return -1;
        return check_world_line(p, w, n, 1);
    }
    if (topology)
        return perr(p, "unknown topology line '%s' (dns, dns-quirk, dns-clear, sink, "
                       "sink-behave, external, link, at, wait)", k);

    static const char *const top_words[] = {"queue", "client", "hostile", "outcome"};
    for (size_t i = 0; i < sizeof top_words / sizeof top_words[0]; i++)
        if (word_is(k, top_words[i]) && p->depth)
            return perr(p, "'%s' is not allowed inside a %s block", k,
                        scenario_step_kind_name(p->blocks[p->depth - 1].kind));
    if (is_client_word(k) && !in_client(p))
        return perr(p, "'%s' is only allowed inside a client block", k);

    if (word_is(k, "queue")) {
        if ((s = step_add(p, SCENARIO_STEP_QUEUE, w, n)) == NULL)
            return -1;
        return parse_queue(p, s, w, n);
    }
    if (word_is(k, "client")) {
        if ((s = step_add(p, SCENARIO_STEP_CLIENT, w, n)) == NULL)
            return -1;
        if (parse_client(p, s, w, n) < 0)
            return -1;
        return open_block(p, SCENARIO_STEP_CLIENT);
    }
    if (word_is(k, "hostile")) {
        if ((s = step_add(p, SCENARIO_STEP_HOSTILE, w, n)) == NULL)
            return -1;
        return parse_hostile(p, s, w, n, raw, offs);
    }
    if (word_is(k, "outcome")) {
        if ((s = step_add(p, SCENARIO_STEP_OUTCOME, w, n)) == NULL)
            return -1;
        return parse_outcome(p, s, w, n);
    }
    if (word_is(k, "send") || word_is(k, "send-raw")) {
        enum scenario_step_kind kind = k[4] ? SCENARIO_STEP_SEND_RAW : SCENARIO_STEP_SEND;
        if ((s = step_add(p, kind, w, 1)) == NULL)
            return -1;
        if (rest_of_line(p, raw, offs, n, 1, &s->text) < 0)
            return -1;
        if (kind == SCENARIO_STEP_SEND_RAW) {
            if (s->text[0] == '\0')
                return perr(p, "send-raw needs text");
            struct strbuf sb;
            strbuf_init(&sb, SCENARIO_EXPAND_MAX);
            int r = scenario_unescape(s->text, &sb, &e);
            strbuf_free(&sb);
            if (r < 0)
                return perr(p, "send-raw: %s", e.msg);
        } else if (strchr(s->text, '\n') || strchr(s->text, '\r')) {
            return perr(p, "send text holds a line break (use send-raw)");
        }
        return 0;
    }
    if (word_is(k, "send-repeat")) {
        if (n < 3)
            return perr(p, "send-repeat needs N and text");
        if ((s = step_add(p, SCENARIO_STEP_SEND_REPEAT, w, 2)) == NULL)
            return -1;
        if (parse_count_word(p, "send-repeat", w[1], 1, SCENARIO_REPEAT_MAX, &s->count) < 0)
            return -1;
        return rest_of_line(p, raw, offs, n, 2, &s->text);
    }
    if (word_is(k, "expect")) {
        if ((s = step_add(p, SCENARIO_STEP_EXPECT, w, n)) == NULL)
            return -1;
        return parse_expect(p, s, w, n);
    }
    if (word_is(k, "expect-close")) {
        if ((s = step_add(p, SCENARIO_STEP_EXPECT_CLOSE, w, n)) == NULL)
            return -1;
        int tail = parse_check_only(p, s, w, n, 0, 2, "expect-close [within DUR] [else ...]");
        if (tail < 0)
            return -1;
        if (tail == 3) {
            if (!word_is(w[1], "within"))
                return perr(p, "usage: expect-close [within DUR] [else ...]");
            return parse_duration_word(p, "within", w[2], &s->duration_ms);
        }
        if (tail == 2)
            return perr(p, "usage: expect-close [within DUR] [else ...]");
        return 0;
    }
    if (word_is(k, "expect-silence")) {
        if ((s = step_add(p, SCENARIO_STEP_EXPECT_SILENCE, w, n)) == NULL)
            return -1;
        if (parse_check_only(p, s, w, n, 1, 1, "expect-silence DUR [else ...]") < 0)
            return -1;
        return parse_duration_word(p, "expect-silence", w[1], &s->duration_ms);
    }
    if (word_is(k, "starttls")) {
        if ((s = step_add(p, SCENARIO_STEP_STARTTLS, w, n)) == NULL)
            return -1;
        return parse_check_only(p, s, w, n, 0, 0, "starttls [else ...]") < 0 ? -1 : 0;
    }
    if (word_is(k, "drain")) {
        if (n > 2)
            return perr(p, "usage: drain [DUR]");
        if ((s = step_add(p, SCENARIO_STEP_DRAIN, w, n)) == NULL)
            return -1;
        s->duration_ms = 500;
        return n == 2 ? parse_duration_word(p, "drain", w[1], &s->duration_ms) : 0;
    }
    if (word_is(k, "close")) {
        if (n != 1)
            return perr(p, "'close' takes no words");
        return step_add(p, SCENARIO_STEP_CLOSE, w, n) ? 0 : -1;
    }
    if (word_is(k, "repeat")) {
        if (n != 2)
            return perr(p, "usage: repeat N ... end");
        if ((s = step_add(p, SCENARIO_STEP_REPEAT, w, n)) == NULL)
            return -1;
        if (parse_count_word(p, "repeat", w[1], 1, SCENARIO_REPEAT_MAX, &s->count) < 0)
            return -1;
        return open_block(p, SCENARIO_STEP_REPEAT);
    }
    return perr(p, "unknown step '%s'", k);
}

/* ---- whole files ------------------------------------------------------------------------ */

static int check_reqs_cited(struct parser *p, const struct scenario_step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct scenario_step *st = &s[i];
        p->line = st->line;
        for (size_t r = 0; r < st->check.nreqs + st->check.nrecord_reqs; r++) {
            const char *id = r < st->check.nreqs ? st->check.reqs[r]
                                                 : st->check.record_reqs[r - st->check.nreqs];
            int found = 0;
            for (size_t c = 0; c < p->sc->ncites; c++)
                if (strcmp(p->sc->cites[c], id) == 0)
                    found = 1;
            if (!found)
                return perr(p, "requirement '%s' is not in this scenario's cites line", id);
        }
        if (check_reqs_cited(p, st->children, st->nchildren) < 0)
            return -1;
    }
    return 0;
}

static int finish(struct parser *p, int topology, int last_line)
{
    struct scenario *sc = p->sc;
    if (p->depth) {
        p->line = p->blocks[p->depth - 1].line;
        return perr(p, "%s block is not closed with 'end'",
                    scenario_step_kind_name(p->blocks[p->depth - 1].kind));
    }
    for (size_t i = 0; i < p->nused; i++) {
        int found = 0;
        for (size_t j = 0; j < sc->nsinks; j++)
            if (strcmp(sc->sinks[j], p->used[i]) == 0)
                found = 1;
        if (!found) {
            p->line = p->used_line[i];
            return perr(p, "node '%s' is not declared (sink %s / external %s HOST:PORT)",
                        p->used[i], p->used[i], p->used[i]);
        }
    }
    if (topology)
        return 0;
    p->line = last_line > 0 ? last_line : 1;
    if (sc->id == NULL)
        return perr(p, "missing 'scenario ID' line");
    if (sc->title == NULL)
        return perr(p, "missing 'title' line");
    if (sc->ncites == 0)
        return perr(p, "missing 'cites' line (the requirement IDs this scenario checks)");
    if (!p->seen_level)
        return perr(p, "missing 'level' line (MUST, SHOULD, MAY or INFO)");
    if (p->top.n == 0)
        return perr(p, "no steps");
    int has_relay = 0;
    for (size_t i = 0; i < p->top.n; i++)
        if (p->top.v[i].kind == SCENARIO_STEP_RELAY)
            has_relay = 1;
    for (size_t i = 0; i < p->top.n && !has_relay; i++)
        if (p->top.v[i].kind == SCENARIO_STEP_EXPECT_CLIENT) {
            p->line = p->top.v[i].line;
            return perr(p, "expect-client needs a relay block in the scenario");
        }
    return check_reqs_cited(p, p->top.v, p->top.n);
}

static int parse_text(struct scenario *sc, const char *name, const char *text, size_t len,
                      int topology, struct etrn_err *err)
{
    memset(sc, 0, sizeof *sc);
    struct parser p;
    memset(&p, 0, sizeof p);
    p.sc = sc;
    p.err = err;
    sc->topology = topology;
    sc->file = strdup(name);
    if (sc->file == NULL)
        return err_set(err, "%s: out of memory", name);
    p.file = sc->file;
    int rc = 0;
    if (len > SCENARIO_FILE_MAX) {
        rc = err_set(err, "%s: larger than %d octets", name, SCENARIO_FILE_MAX);
    } else if (memchr(text, '\0', len)) {
        rc = err_set(err, "%s: contains NUL bytes", name);
    }
    const char *pos = text, *end = text + len;
    int lineno = 0;
    char line[SCENARIO_LINE_MAX + 1];
    while (rc == 0 && pos < end) {
        const char *nl = memchr(pos, '\n', (size_t)(end - pos));
        size_t l = nl ? (size_t)(nl - pos) : (size_t)(end - pos);
        p.line = ++lineno;
        if (l > SCENARIO_LINE_MAX) {
            rc = perr(&p, "line longer than %d octets", SCENARIO_LINE_MAX);
            break;
        }
        memcpy(line, pos, l);
        if (l > 0 && line[l - 1] == '\r')
            l--;
        line[l] = '\0';
        rc = parse_line(&p, line, topology);
        pos = nl ? nl + 1 : end;
    }
    if (rc == 0)
        rc = finish(&p, topology, lineno);
    for (size_t i = 0; i < p.nused; i++)
        free(p.used[i]);
    free(p.used);
    free(p.used_line);
    while (p.depth > 0)
        list_free(&p.blocks[--p.depth].list);
    if (rc != 0) {
        list_free(&p.top);
        scenario_free(sc);
        return -1;
    }
    sc->steps = p.top.v;
    sc->nsteps = p.top.n;
    if (sc->description == NULL && (sc->description = strdup("")) == NULL) {
        scenario_free(sc);
        return err_set(err, "%s: out of memory", name);
    }
    return 0;
}

static int parse_path(struct scenario *sc, const char *path, int topology, struct etrn_err *err)
{
    struct strbuf sb;
    strbuf_init(&sb, SCENARIO_FILE_MAX + 1);
    memset(sc, 0, sizeof *sc);
    if (fileio_read_file(path, &sb, SCENARIO_FILE_MAX, err) < 0) {
        strbuf_free(&sb);
        return -1;
    }
    int r = parse_text(sc, path, sb.data, sb.len, topology, err);
    strbuf_free(&sb);
    return r;
}

int scenario_parse_file(struct scenario *sc, const char *path, struct etrn_err *err)
{
    return parse_path(sc, path, 0, err);
}

int scenario_parse_string(struct scenario *sc, const char *name, const char *text,
                          struct etrn_err *err)
{
    return parse_text(sc, name, text, strlen(text), 0, err);
}

int scenario_parse_topology(struct scenario *sc, const char *path, struct etrn_err *err)
{
    return parse_path(sc, path, 1, err);
}

int scenario_parse_topology_string(struct scenario *sc, const char *name, const char *text,
                                   struct etrn_err *err)
{
    return parse_text(sc, name, text, strlen(text), 1, err);
}

void scenario_free(struct scenario *sc)
{
    for (size_t i = 0; i < sc->nsteps; i++)
        step_free(&sc->steps[i]);
    free(sc->steps);
    free(sc->file);
    free(sc->id);
    free(sc->title);
    free(sc->description);
    str_vec_free(sc->cites, sc->ncites);
    str_vec_free(sc->requires, sc->nrequires);
    str_vec_free(sc->sinks, sc->nsinks);
    memset(sc, 0, sizeof *sc);
}
