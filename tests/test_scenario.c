/* test_scenario.c — the scenario language parser (lib/scenario.h): every step kind, every
 * error naming file:line, variable expansion, escapes, code patterns, topology files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "scenario.h"

#define HEADER "scenario t.x\ntitle A test\ncites R1985-5.1.2 R1985-5.1.1 R5321-4.2b\nlevel MUST\n"

static void parse_ok(const char *text, struct scenario *sc)
{
    struct etrn_err err = {{0}};
    int r = scenario_parse_string(sc, "t.scn", text, &err);
    if (r != 0)
        fail_msg("unexpected parse error: %s", err.msg);
}

/* Parses text that must fail and checks the message contains want. */
static void parse_fails(const char *text, const char *want)
{
    struct scenario sc;
    struct etrn_err err = {{0}};
    int r = scenario_parse_string(&sc, "t.scn", text, &err);
    if (r == 0) {
        scenario_free(&sc);
        fail_msg("expected an error containing '%s'", want);
    }
    if (strstr(err.msg, want) == NULL)
        fail_msg("error '%s' does not contain '%s'", err.msg, want);
}

static void test_scenario_parses_the_full_example(void **state)
{
    (void)state;
    const char *text =
        "scenario  etrn.flush.basic\n"
        "title     Mail queued for a node is delivered after ETRN\n"
        "description  first line\n"
        "description  second line\n"
        "cites     R1985-5.1.2 R5321-5.1d\n"
        "level     SHOULD\n"
        "requires  queue-list\n"
        "timeout   90s\n"
        "dns       $node MX 10 mx1.$node\n"
        "dns       mx1.$node A $sink1\n"
        "sink      sink1\n"
        "link      sink1 down               # offline while mail arrives\n"
        "queue     3 to user@$node from a@b.test size 10k\n"
        "at 2s link sink1 up\n"
        "wait 1s\n"
        "client c1 from 127.0.0.9 copies 2\n"
        "  expect  220\n"
        "  send    EHLO check.example\n"
        "  expect  250 with-keyword ETRN without-keyword TURN bare-keyword ETRN\n"
        "  send    ETRN $node\n"
        "  expect  250|251|252|253 queued 3 within 5s record INFO R1985-5.1.2\n"
        "  send-raw ETRN $node\\n\n"
        "  send-repeat 5 NOOP\n"
        "  expect 250 times 5 text \"*ok*\" enhanced single-line\n"
        "  expect-silence 500ms else WARN R5321-5.1d\n"
        "  starttls\n"
        "  drain 200ms\n"
        "  sleep 100ms\n"
        "  repeat 3\n"
        "    send NOOP\n"
        "    expect 2xx\n"
        "  end\n"
        "  expect-close within 2s\n"
        "  close\n"
        "end\n"
        "hostile pipelined-burst count 20 interval 10ms script ETRN $node\\r\\n\n"
        "outcome   delivered 3 to sink1 within 60s\n"
        "outcome   nothing delivered to the requester\n"
        "outcome   no duplicates\n";
    struct scenario sc;
    parse_ok(text, &sc);
    assert_string_equal(sc.id, "etrn.flush.basic");
    assert_string_equal(sc.title, "Mail queued for a node is delivered after ETRN");
    assert_string_equal(sc.description, "first line\nsecond line");
    assert_int_equal(sc.ncites, 2);
    assert_string_equal(sc.cites[1], "R5321-5.1d");
    assert_int_equal(sc.level, SCENARIO_LEVEL_SHOULD);
    assert_int_equal(sc.nrequires, 1);
    assert_int_equal(sc.timeout_ms, 90000);
    assert_int_equal(sc.nsinks, 1);
    assert_string_equal(sc.sinks[0], "sink1");
    assert_int_equal(sc.nsteps, 12);

    assert_int_equal(sc.steps[0].kind, SCENARIO_STEP_WORLD);
    assert_int_equal(sc.steps[0].line, 9);
    assert_string_equal(sc.steps[0].file, "t.scn");
    assert_int_equal(sc.steps[0].argc, 5);
    assert_string_equal(sc.steps[0].argv[4], "mx1.$node");
    assert_int_equal(sc.steps[3].argc, 3);   /* the comment is gone */

    const struct scenario_step *q = &sc.steps[4];
    assert_int_equal(q->kind, SCENARIO_STEP_QUEUE);
    assert_int_equal(q->queue.count, 3);
    assert_string_equal(q->queue.to, "user@$node");
    assert_string_equal(q->queue.from, "a@b.test");
    assert_int_equal(q->queue.size, 10240);

    assert_int_equal(sc.steps[5].kind, SCENARIO_STEP_AT);
    assert_int_equal(sc.steps[5].duration_ms, 2000);
    assert_string_equal(sc.steps[5].argv[2], "link");
    assert_int_equal(sc.steps[6].kind, SCENARIO_STEP_WAIT);

    const struct scenario_step *c = &sc.steps[7];
    assert_int_equal(c->kind, SCENARIO_STEP_CLIENT);
    assert_string_equal(c->client.name, "c1");
    assert_string_equal(c->client.from, "127.0.0.9");
    assert_int_equal(c->client.copies, 2);
    assert_int_equal(c->nchildren, 15);
    const struct scenario_step *ch = c->children;
    assert_int_equal(ch[0].kind, SCENARIO_STEP_EXPECT);
    assert_int_equal(ch[1].kind, SCENARIO_STEP_SEND);
    assert_string_equal(ch[1].text, "EHLO check.example");
    assert_int_equal(ch[2].expect.nwith, 1);
    assert_int_equal(ch[2].expect.nwithout, 1);
    assert_int_equal(ch[2].expect.nbare, 1);
    assert_int_equal(ch[4].expect.codes.n, 4);
    assert_int_equal(ch[4].expect.queued, 3);
    assert_int_equal(ch[4].expect.within_ms, 5000);
    assert_int_equal(ch[4].check.record, SCENARIO_LEVEL_INFO);
    assert_int_equal(ch[4].check.nrecord_reqs, 1);
    assert_int_equal(ch[5].kind, SCENARIO_STEP_SEND_RAW);
    assert_string_equal(ch[5].text, "ETRN $node\\n");
    assert_int_equal(ch[6].kind, SCENARIO_STEP_SEND_REPEAT);
    assert_int_equal(ch[6].count, 5);
    assert_string_equal(ch[6].text, "NOOP");
    assert_int_equal(ch[7].expect.times, 5);
    assert_string_equal(ch[7].expect.text_glob, "*ok*");
    assert_true(ch[7].expect.enhanced);
    assert_true(ch[7].expect.single_line);
    assert_int_equal(ch[8].kind, SCENARIO_STEP_EXPECT_SILENCE);
    assert_int_equal(ch[8].duration_ms, 500);
    assert_int_equal(ch[8].check.level, SCENARIO_LEVEL_SHOULD);
    assert_string_equal(ch[8].check.reqs[0], "R5321-5.1d");
    assert_int_equal(ch[9].kind, SCENARIO_STEP_STARTTLS);
    assert_int_equal(ch[10].kind, SCENARIO_STEP_DRAIN);
    assert_int_equal(ch[10].duration_ms, 200);
    assert_int_equal(ch[11].kind, SCENARIO_STEP_WAIT);
    assert_int_equal(ch[12].kind, SCENARIO_STEP_REPEAT);
    assert_int_equal(ch[12].count, 3);
    assert_int_equal(ch[12].nchildren, 2);
    assert_int_equal(ch[13].kind, SCENARIO_STEP_EXPECT_CLOSE);
    assert_int_equal(ch[13].duration_ms, 2000);
    assert_int_equal(ch[14].kind, SCENARIO_STEP_CLOSE);

    const struct scenario_step *h = &sc.steps[8];
    assert_int_equal(h->kind, SCENARIO_STEP_HOSTILE);
    assert_string_equal(h->hostile.kind, "pipelined-burst");
    assert_int_equal(h->hostile.count, 20);
    assert_int_equal(h->hostile.interval_ms, 10);
    assert_string_equal(h->hostile.script, "ETRN $node\\r\\n");

    assert_int_equal(sc.steps[9].outcome.kind, SCENARIO_OUTCOME_DELIVERED);
    assert_int_equal(sc.steps[9].outcome.count, 3);
    assert_string_equal(sc.steps[9].outcome.sink, "sink1");
    assert_int_equal(sc.steps[9].outcome.within_ms, 60000);
    assert_int_equal(sc.steps[10].outcome.kind, SCENARIO_OUTCOME_NOTHING_TO_REQUESTER);
    assert_int_equal(sc.steps[11].outcome.kind, SCENARIO_OUTCOME_NO_DUPLICATES);
    scenario_free(&sc);
}

static void test_scenario_parses_every_outcome_form(void **state)
{
    (void)state;
    const char *text = HEADER
        "sink a\nsink b\n"
        "outcome delivered all to a\n"
        "outcome nothing delivered to a within 3s\n"
        "outcome not delivered to b\n"
        "outcome nothing delivered to requester within 1s\n"
        "outcome at most 2 copies\n"
        "outcome connected to a within 5s\n"
        "outcome no connection to b\n"
        "outcome tried a before b\n"
        "outcome still queued 4\n"
        "outcome still queued\n"
        "outcome target alive within 3s else WARN R1985-5.1.1\n";
    struct scenario sc;
    parse_ok(text, &sc);
    const struct scenario_step *s = sc.steps + 2;
    assert_int_equal(s[0].outcome.kind, SCENARIO_OUTCOME_DELIVERED);
    assert_int_equal(s[0].outcome.count, -1);
    assert_int_equal(s[1].outcome.kind, SCENARIO_OUTCOME_NOT_DELIVERED);
    assert_int_equal(s[1].outcome.within_ms, 3000);
    assert_int_equal(s[2].outcome.kind, SCENARIO_OUTCOME_NOT_DELIVERED);
    assert_string_equal(s[2].outcome.sink, "b");
    assert_int_equal(s[3].outcome.kind, SCENARIO_OUTCOME_NOTHING_TO_REQUESTER);
    assert_int_equal(s[4].outcome.kind, SCENARIO_OUTCOME_AT_MOST_COPIES);
    assert_int_equal(s[4].outcome.count, 2);
    assert_int_equal(s[5].outcome.kind, SCENARIO_OUTCOME_CONNECTED);
    assert_int_equal(s[6].outcome.kind, SCENARIO_OUTCOME_NO_CONNECTION);
    assert_int_equal(s[7].outcome.kind, SCENARIO_OUTCOME_TRIED_BEFORE);
    assert_string_equal(s[7].outcome.sink2, "b");
    assert_int_equal(s[8].outcome.kind, SCENARIO_OUTCOME_STILL_QUEUED);
    assert_int_equal(s[8].outcome.count, 4);
    assert_int_equal(s[9].outcome.count, -1);
    assert_int_equal(s[10].outcome.kind, SCENARIO_OUTCOME_TARGET_ALIVE);
    assert_int_equal(s[10].check.level, SCENARIO_LEVEL_SHOULD);
    scenario_free(&sc);
}

static void test_scenario_declarations_may_follow_their_use(void **state)
{
    (void)state;
    struct scenario sc;
    parse_ok(HEADER "link late down\noutcome connected to late\nsink late\n", &sc);
    assert_int_equal(sc.nsinks, 1);
    scenario_free(&sc);
}

static void test_scenario_send_keeps_hash_and_spacing(void **state)
{
    (void)state;
    struct scenario sc;
    parse_ok(HEADER "client\n send ETRN #uucp  x\n expect 2xx # a comment\n"
             " send MAIL FROM:<\"a\n send-repeat 2 \"x # y\nend\n"
             "hostile garbage count 5 script NOOP \"#\n", &sc);
    assert_string_equal(sc.steps[0].children[0].text, "ETRN #uucp  x");
    assert_int_equal(sc.steps[0].children[1].argc, 2);
    assert_string_equal(sc.steps[0].children[2].text, "MAIL FROM:<\"a");
    assert_string_equal(sc.steps[0].children[3].text, "\"x # y");
    assert_string_equal(sc.steps[1].hostile.script, "NOOP \"#");
    scenario_free(&sc);
}

static void test_scenario_errors_name_file_and_line(void **state)
{
    (void)state;
    parse_fails(HEADER "client\n expcet 250\nend\n", "t.scn:6: unknown step 'expcet'");
    parse_fails(HEADER "bogus x\n", "t.scn:5: unknown step 'bogus'");
    parse_fails(HEADER "client\n expect 250\n", "t.scn:5: client block is not closed");
    parse_fails(HEADER "end\n", "t.scn:5: 'end' without an open");
    parse_fails(HEADER "client\nend\n", "empty client block");
    parse_fails(HEADER "expect 250\n", "t.scn:5: 'expect' is only allowed inside a client");
    parse_fails(HEADER "client\n outcome no duplicates\nend\n", "t.scn:6: 'outcome' is not allowed inside");
    parse_fails(HEADER "client\n client\n end\nend\n", "not allowed inside");
    parse_fails(HEADER "client\n dns a A 1.2.3.4\nend\n", "not allowed inside");
    parse_fails(HEADER "client\n title x\nend\n", "header line");
    parse_fails(HEADER "wait 10\n", "t.scn:5: wait: '10' is not a duration");
    parse_fails(HEADER "wait 2d\n", "is not a duration");
    parse_fails(HEADER "client\n expect 2500\nend\n", "t.scn:6: reply code '2500'");
    parse_fails(HEADER "client\n expect 650\nend\n", "not a valid reply code");
    parse_fails(HEADER "client\n expect\nend\n", "expect needs reply codes");
    parse_fails(HEADER "client\n expect 250 with-keyword\nend\n", "needs a value");
    parse_fails(HEADER "client\n expect 250 shiny\nend\n", "is unknown");
    parse_fails(HEADER "client\n expect 250 else PANIC\nend\n", "unknown level 'PANIC'");
    parse_fails(HEADER "client\n expect 250 else WARN nonsense\nend\n",
                "'nonsense' is not a requirement ID");
    parse_fails(HEADER "client\n expect 250 else WARN R1985-9.9\nend\n",
                "t.scn:6: requirement 'R1985-9.9' is not in this scenario's cites");
    parse_fails(HEADER "client\n expect 250 record INFO record INFO\nend\n", "given twice");
    parse_fails(HEADER "client\n send-raw bad\\q\nend\n", "unknown escape");
    parse_fails(HEADER "client\n send-raw x\\x4\nend\n", "two hex digits");
    parse_fails(HEADER "client\n send-repeat 0 NOOP\nend\n", "is not a number");
    parse_fails(HEADER "client\n repeat 2\n end\nend\n", "empty repeat block");
    parse_fails(HEADER "client\n expect-silence\nend\n", "usage: expect-silence");
    parse_fails(HEADER "client\n expect-close soon\nend\n", "usage: expect-close");
    parse_fails(HEADER "client copies 0\n send x\nend\n", "copies");
    parse_fails(HEADER "client from\n send x\nend\n", "needs a value");
    parse_fails(HEADER "queue 3 user@x\n", "queue needs N to ADDR");
    parse_fails(HEADER "queue 3 to nobody\n", "is not an address");
    parse_fails(HEADER "queue 3 to a@b color red\n", "unknown queue option");
    parse_fails(HEADER "queue 2 to a@b size huge\n", "queue size");
    parse_fails(HEADER "outcome delivered 3 to nosuch\n", "t.scn:5: node 'nosuch' is not declared");
    parse_fails(HEADER "link ghost down\n", "node 'ghost' is not declared");
    parse_fails(HEADER "outcome fabulous\n", "unknown outcome 'fabulous'");
    parse_fails(HEADER "outcome no duplicates within 2s\n", "takes no 'within'");
    parse_fails(HEADER "sink a\nsink a\n", "t.scn:6: node 'a' is declared twice");
    parse_fails(HEADER "sink requester\n", "reserved");
    parse_fails(HEADER "sink bad.name\n", "node name");
    parse_fails(HEADER "at 2s sink x\n", "cannot be delayed");
    parse_fails(HEADER "at 2s wait 1s\n", "is not a world line");
    parse_fails(HEADER "dns a MX\n", "dns needs OWNER TYPE RDATA");
    parse_fails(HEADER "hostile dance\n", "unknown hostile kind 'dance'");
    parse_fails(HEADER "hostile garbage count\n", "needs a value");
    parse_fails(HEADER "client\n expect \"250\nend\n", "unterminated quote");
    parse_fails("title x\ncites R1985-5.1\nlevel MUST\nwait 1s\n", "t.scn:4: missing 'scenario");
    parse_fails("scenario a\ncites R1985-5.1\nlevel MUST\nwait 1s\n", "missing 'title'");
    parse_fails("scenario a\ntitle x\nlevel MUST\nwait 1s\n", "missing 'cites'");
    parse_fails("scenario a\ntitle x\ncites R1985-5.1\nwait 1s\n", "missing 'level'");
    parse_fails("scenario a\ntitle x\ncites R1985-5.1\nlevel MUST\n", "no steps");
    parse_fails("scenario A.B\n", "t.scn:1: scenario ID 'A.B' may hold only");
    parse_fails("scenario a\nscenario b\n", "t.scn:2: 'scenario' given twice");
    parse_fails("scenario a\nlevel FAIL\n", "level needs MUST");
    parse_fails("scenario a\ncites R1985-5.1 R1985-5.1\n", "cited twice");
    parse_fails("scenario a\ncites 1985\n", "not a requirement ID");
    parse_fails("scenario a\ntimeout forever\n", "not a duration");
    parse_fails("scenario a\nrequires star!tls\n", "capability");
}

static void test_scenario_limits_are_errors(void **state)
{
    (void)state;
    /* a line over the limit */
    static char text[SCENARIO_LINE_MAX + 200];
    int n = snprintf(text, sizeof text, "%s", HEADER "client\n send ");
    memset(text + n, 'x', SCENARIO_LINE_MAX);
    text[n + SCENARIO_LINE_MAX] = '\0';
    parse_fails(text, "t.scn:6: line longer than");
    /* too many words */
    struct strbuf sb;
    strbuf_init(&sb, 1 << 20);
    strbuf_append_str(&sb, HEADER "dns a TXT");
    for (int i = 0; i < SCENARIO_WORDS_MAX + 2; i++)
        strbuf_append_str(&sb, " w");
    strbuf_append_str(&sb, "\n");
    parse_fails(sb.data, "more than 64 words");
    /* too deep */
    strbuf_reset(&sb);
    strbuf_append_str(&sb, HEADER "client\n");
    for (int i = 0; i < 5; i++)
        strbuf_append_str(&sb, "repeat 2\n");
    parse_fails(sb.data, "nested more than");
    strbuf_free(&sb);
    /* a file with NUL bytes is refused by the file reader path */
    FILE *f = fopen("build/tests/nul.scn", "wb");
    assert_non_null(f);
    fwrite("scenario a\0\n", 1, 12, f);
    fclose(f);
    struct scenario sc;
    struct etrn_err err;
    assert_int_equal(scenario_parse_file(&sc, "build/tests/nul.scn", &err), -1);
    assert_non_null(strstr(err.msg, "NUL"));
    assert_int_equal(scenario_parse_file(&sc, "build/tests/does-not-exist.scn", &err), -1);
}

static const char *vars(const char *name, void *arg)
{
    (void)arg;
    if (strcmp(name, "node") == 0)
        return "s1-ab.etrn.test";
    if (strcmp(name, "sink1") == 0)
        return "127.1.0.17";
    if (strcmp(name, "sink10") == 0)
        return "127.1.0.26";
    return NULL;
}

static void test_scenario_expands_variables(void **state)
{
    (void)state;
    struct strbuf out;
    strbuf_init(&out, 4096);
    struct etrn_err err;
    assert_int_equal(scenario_expand("mx1.$node A $sink1", vars, NULL, &out, &err), 0);
    assert_string_equal(out.data, "mx1.s1-ab.etrn.test A 127.1.0.17");
    strbuf_reset(&out);
    assert_int_equal(scenario_expand("${sink1}0 $sink10 $$5 x", vars, NULL, &out, &err), 0);
    assert_string_equal(out.data, "127.1.0.170 127.1.0.26 $5 x");
    strbuf_reset(&out);
    assert_int_equal(scenario_expand("@$node.", vars, NULL, &out, &err), 0);
    assert_string_equal(out.data, "@s1-ab.etrn.test.");
    strbuf_reset(&out);
    strbuf_append_str(&out, "keep:");
    assert_int_equal(scenario_expand("a $nosuch b", vars, NULL, &out, &err), -1);
    assert_string_equal(err.msg, "unknown variable '$nosuch'");
    assert_string_equal(out.data, "keep:");   /* nothing half-expanded is left */
    assert_int_equal(scenario_expand("a $ b", vars, NULL, &out, &err), -1);
    assert_non_null(strstr(err.msg, "'$$'"));
    assert_int_equal(scenario_expand("${node", vars, NULL, &out, &err), -1);
    assert_int_equal(scenario_expand("${}", vars, NULL, &out, &err), -1);
    strbuf_free(&out);
}

static void test_scenario_unescape_decodes_bytes(void **state)
{
    (void)state;
    struct strbuf out;
    strbuf_init(&out, 64);
    struct etrn_err err;
    assert_int_equal(scenario_unescape("A\\r\\n\\t\\\\\\x00\\x7f", &out, &err), 0);
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.data, "A\r\n\t\\\0\x7f", 7);
    strbuf_reset(&out);
    assert_int_equal(scenario_unescape("x\\", &out, &err), -1);
    strbuf_free(&out);
}

static void test_scenario_codes_match_patterns(void **state)
{
    (void)state;
    struct scenario_codes c;
    struct etrn_err err;
    assert_int_equal(scenario_codes_parse("250|45x|5xx", &c, &err), 0);
    assert_true(scenario_codes_match(&c, 250));
    assert_true(scenario_codes_match(&c, 458));
    assert_true(scenario_codes_match(&c, 459));
    assert_true(scenario_codes_match(&c, 502));
    assert_false(scenario_codes_match(&c, 251));
    assert_false(scenario_codes_match(&c, 421));
    char buf[64];
    assert_int_equal(scenario_codes_format(&c, buf, sizeof buf), 0);
    assert_string_equal(buf, "250|45x|5xx");
    assert_int_equal(scenario_codes_parse("any", &c, &err), 0);
    assert_true(scenario_codes_match(&c, 221));
    assert_int_equal(scenario_codes_parse("250|", &c, &err), -1);
    assert_int_equal(scenario_codes_parse("199", &c, &err), -1);
    assert_int_equal(scenario_codes_parse("260", &c, &err), -1);
}

static void test_scenario_small_parsers(void **state)
{
    (void)state;
    unsigned long long ms;
    assert_int_equal(scenario_duration_parse("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(scenario_duration_parse("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(scenario_duration_parse("1h", &ms), 0);
    assert_int_equal(scenario_duration_parse("25h", &ms), -1);
    assert_int_equal(scenario_duration_parse("s", &ms), -1);
    assert_int_equal(scenario_duration_parse("-1s", &ms), -1);
    assert_true(scenario_requirement_id_valid("R1985-5.1.4"));
    assert_true(scenario_requirement_id_valid("R821-TURN"));
    assert_true(scenario_requirement_id_valid("R3463/5248-1"));
    assert_true(scenario_requirement_id_valid("R3463/5248"));
    assert_false(scenario_requirement_id_valid("R3463"));
    assert_true(scenario_requirement_id_valid("R5321-4.5.3.1"));
    assert_false(scenario_requirement_id_valid("R1985-"));
    assert_false(scenario_requirement_id_valid("X1985-5.1"));
    assert_false(scenario_requirement_id_valid("R1985-5.1."));
    assert_false(scenario_requirement_id_valid("R1985_5.1"));
    enum scenario_level l;
    assert_int_equal(scenario_level_parse("warn", &l), 0);
    assert_int_equal(l, SCENARIO_LEVEL_SHOULD);
    assert_int_equal(scenario_level_parse("MAY", &l), 0);
    assert_int_equal(l, SCENARIO_LEVEL_MAY);
    assert_int_equal(scenario_level_parse("maybe", &l), -1);
    assert_true(scenario_glob_match("*queuing*started*", "OK, Queuing for node x started"));
    assert_true(scenario_glob_match("2.?.0 *", "2.0.0 ok"));
    assert_false(scenario_glob_match("*started", "started later"));
    assert_true(scenario_glob_match("", ""));
    char *w[8];
    char line[] = "a \"b c\" d # e";
    struct etrn_err err;
    assert_int_equal(scenario_split_words(line, w, 8, &err), 3);
    assert_string_equal(w[1], "b c");
}

static void test_scenario_topology_accepts_world_lines_only(void **state)
{
    (void)state;
    struct scenario sc;
    struct etrn_err err;
    assert_int_equal(scenario_parse_topology_string(&sc, "t.topo",
                     "# comment\nsink sink1\ndns node.test MX 10 mx1.node.test\nlink sink1 down\n"
                     "at 10s link sink1 up\nwait 1s\n", &err), 0);
    assert_int_equal(sc.nsteps, 5);
    assert_true(sc.topology);
    scenario_free(&sc);
    assert_int_equal(scenario_parse_topology_string(&sc, "t.topo", "sink a\nclient\n", &err), -1);
    assert_string_equal(err.msg, "t.topo:2: unknown topology line 'client' (dns, dns-quirk, "
                                 "dns-clear, sink, sink-behave, external, link, at, wait)");
    assert_int_equal(scenario_parse_topology_string(&sc, "t.topo", "title x\n", &err), -1);
    assert_non_null(strstr(err.msg, "t.topo:1:"));
    /* the project's own topology files parse */
    assert_int_equal(scenario_parse_topology(&sc, "fixtures/topologies/backup-mx.topo", &err), 0);
    scenario_free(&sc);
}

static void test_scenario_catalogue_files_parse(void **state)
{
    (void)state;
    /* Every scenario in the catalogue must parse; a broken file is named here. */
    FILE *p = popen("find fixtures/scenarios -name '*.scn' | sort", "r");
    assert_non_null(p);
    char path[1024];
    int n = 0;
    while (fgets(path, sizeof path, p) && n < 5000) {
        path[strcspn(path, "\n")] = '\0';
        struct scenario sc;
        struct etrn_err err;
        if (scenario_parse_file(&sc, path, &err) != 0)
            fail_msg("%s", err.msg);
        scenario_free(&sc);
        n++;
    }
    pclose(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario_parses_the_full_example),
        cmocka_unit_test(test_scenario_parses_every_outcome_form),
        cmocka_unit_test(test_scenario_declarations_may_follow_their_use),
        cmocka_unit_test(test_scenario_send_keeps_hash_and_spacing),
        cmocka_unit_test(test_scenario_errors_name_file_and_line),
        cmocka_unit_test(test_scenario_limits_are_errors),
        cmocka_unit_test(test_scenario_expands_variables),
        cmocka_unit_test(test_scenario_unescape_decodes_bytes),
        cmocka_unit_test(test_scenario_codes_match_patterns),
        cmocka_unit_test(test_scenario_small_parsers),
        cmocka_unit_test(test_scenario_topology_accepts_world_lines_only),
        cmocka_unit_test(test_scenario_catalogue_files_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
