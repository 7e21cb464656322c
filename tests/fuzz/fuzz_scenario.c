/* fuzz_scenario.c — libFuzzer target for the scenario language (lib/scenario.c): scenario and
 * topology parsing, variable expansion, escapes, reply-code patterns and durations.
 *
 *   scripts/run-fuzz scenario 60
 *   seeds: fixtures/fuzz/scenario/ (catalogue scenarios and topologies, octet 0 = selector)
 *
 * Input: octet 0 selects what the rest is (0: a scenario, 1: a topology, 2: a line to
 * split, expand and unescape, 3: a code pattern and a duration). Guarantees checked: no
 * crash or undefined behaviour; a parsed scenario is consistent (an id and title, every
 * step with a kind name and a line inside the text, nested counts add up, outcome sinks
 * declared is the parser's job and not re-checked); every error names the input
 * ("fuzz:LINE: ..." or "fuzz: ..."); code patterns survive format → parse → format. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "strbuf.h"

static size_t fz_count_steps(const struct scenario_step *steps, size_t n, int maxline)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct scenario_step *s = &steps[i];
        if (scenario_step_kind_name(s->kind) == NULL || s->line < 1 || s->line > maxline)
            abort();
        total += 1 + fz_count_steps(s->children, s->nchildren, maxline);
    }
    return total;
}

static void fz_check_error(const struct etrn_err *err)
{
    if (strncmp(err->msg, "fuzz", 4) != 0)
        abort();   /* every error names the input */
}

static void fz_parse(const char *text, int topology, int maxline)
{
    struct scenario sc;
    struct etrn_err err = {{0}};
    int rc = topology ? scenario_parse_topology_string(&sc, "fuzz", text, &err)
                      : scenario_parse_string(&sc, "fuzz", text, &err);
    if (rc < 0) {
        fz_check_error(&err);
        return;
    }
    if (!topology && (sc.id == NULL || sc.id[0] == '\0' || sc.title == NULL))
        abort();
    if (sc.nsteps > sc.nsteps_total || sc.nsteps_total > SCENARIO_STEPS_MAX)
        abort();
    if (fz_count_steps(sc.steps, sc.nsteps, maxline) != sc.nsteps_total)
        abort();
    scenario_free(&sc);
}

static const char *fz_lookup(const char *name, void *arg)
{
    (void)arg;
    if (strcmp(name, "node") == 0)
        return "s1-ab.etrn.test";
    if (strcmp(name, "sink1") == 0)
        return "127.1.0.2";
    if (strcmp(name, "big") == 0)
        return "0123456789012345678901234567890123456789012345678901234567890123";
    return NULL;
}

static void fz_line(char *text)
{
    struct strbuf out;
    struct etrn_err err = {{0}};
    strbuf_init(&out, SCENARIO_EXPAND_MAX + 1);
    if (scenario_expand(text, fz_lookup, NULL, &out, &err) == 0 && out.len > SCENARIO_EXPAND_MAX)
        abort();
    strbuf_reset(&out);
    (void)scenario_unescape(text, &out, &err);
    strbuf_free(&out);
    char *words[SCENARIO_WORDS_MAX];
    int n = scenario_split_words(text, words, SCENARIO_WORDS_MAX, &err);
    if (n > SCENARIO_WORDS_MAX)
        abort();
    for (int i = 0; i < n; i++)
        if (words[i] == NULL)
            abort();
}

static void fz_codes(const char *text)
{
    struct scenario_codes c, again;
    struct etrn_err err = {{0}};
    char buf[512], buf2[512];
    if (scenario_codes_parse(text, &c, &err) == 0) {
        if (scenario_codes_format(&c, buf, sizeof buf) < 0)
            return;
        if (scenario_codes_parse(buf, &again, &err) < 0)
            abort();   /* what we print must read back */
        if (scenario_codes_format(&again, buf2, sizeof buf2) < 0 || strcmp(buf, buf2) != 0)
            abort();
        for (int code = 200; code < 600; code += 37)
            if (scenario_codes_match(&c, code) != scenario_codes_match(&again, code))
                abort();
    }
    unsigned long long ms;
    (void)scenario_duration_parse(text, &ms);
    (void)scenario_glob_match(text, "s1-ab.etrn.test");
    (void)scenario_glob_match("*.etrn.*", text);
    enum scenario_level l;
    (void)scenario_level_parse(text, &l);
    (void)scenario_requirement_id_valid(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > SCENARIO_FILE_MAX)
        return 0;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    int maxline = 1;
    for (size_t i = 0; i + 1 < size; i++)
        maxline += text[i] == '\n';
    switch (data[0] % 4) {
    case 0: fz_parse(text, 0, maxline); break;
    case 1: fz_parse(text, 1, maxline); break;
    case 2: fz_line(text); break;
    default: fz_codes(text); break;
    }
    free(text);
    return 0;
}
