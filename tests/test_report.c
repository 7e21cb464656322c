/* test_report.c — the report writers on a small result set with hostile text in it: JSON
 * (read back by our reader and by Python's json), JUnit (Python's ElementTree), TAP
 * (line structure) and HTML (escaping), plus the plain console. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fileio.h"
#include "report.h"

#define EVIL "<script>alert('x')</script> & \"quotes\" \x01\x1b[31m\xff # not a comment\n2nd line"

static void build(struct run_results *run)
{
    run_results_init(run);
    run->target = strdup("127.0.0.1:2525");
    run->profile = strdup("test<profile>");
    run->run_id = strdup("ab12");
    run->wall_ms = 1234;
    const char *ids[] = {"a.pass", "b.fail", "c.skip", "d.error", "e.warn"};
    enum verdict vs[] = {VERDICT_PASS, VERDICT_FAIL, VERDICT_SKIP, VERDICT_ERROR, VERDICT_WARN};
    for (int i = 0; i < 5; i++) {
        char text[400];
        snprintf(text, sizeof text,
                 "scenario %s\ntitle Title %d with <b>markup</b> & more\n"
                 "cites R1985-5.1.1 R5321-4.2b\nlevel MUST\nclient\n send NOOP\nend\n", ids[i], i);
        struct scenario sc;
        struct etrn_err err;
        if (scenario_parse_string(&sc, "fixtures/scenarios/replies/x.scn", text, &err) != 0)
            fail_msg("%s", err.msg);
        struct scenario_result res;
        scenario_result_init(&res, &sc);
        char *reqs[] = {"R1985-5.1.1"};
        if (vs[i] == VERDICT_SKIP || vs[i] == VERDICT_ERROR) {
            scenario_result_set_final(&res, vs[i], EVIL);
        } else {
            scenario_result_add_check(&res, VERDICT_PASS, reqs, 1, sc.file, 6, "expect 220", "got 220 hi");
            if (vs[i] != VERDICT_PASS)
                scenario_result_add_check(&res, vs[i], reqs, 1, sc.file, 7, "expect 250", EVIL);
        }
        scenario_result_log(&res, "[   0.001] c < %s", EVIL);
        res.duration_ms = 100 * i;
        if (i == 1)
            res.pcap = strdup("report/pcap/b.fail.pcap");
        scenario_result_finish(&res);
        run_results_add(run, &res);
        scenario_free(&sc);
    }
}

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void slurp(const char *path, struct strbuf *sb)
{
    struct etrn_err err;
    strbuf_init(sb, 16 * 1024 * 1024);
    if (fileio_read_file(path, sb, 16 * 1024 * 1024, &err) < 0)
        fail_msg("%s", err.msg);
}

static void test_report_json_round_trips(void **state)
{
    (void)state;
    struct run_results run, back;
    build(&run);
    struct etrn_err err;
    assert_int_equal(report_json_write(&run, "build/tests/report.json", &err), 0);
    assert_int_equal(report_json_read(&back, "build/tests/report.json", &err), 0);
    assert_int_equal(back.n, run.n);
    for (size_t i = 0; i < run.n; i++) {
        assert_string_equal(back.v[i].id, run.v[i].id);
        assert_int_equal(back.v[i].verdict, run.v[i].verdict);
        assert_int_equal(back.v[i].nchecks, run.v[i].nchecks);
        assert_string_equal(back.v[i].transcript.data, run.v[i].transcript.data);
        assert_int_equal(back.v[i].level, SCENARIO_LEVEL_MUST);
    }
    assert_string_equal(back.v[1].checks[1].detail, EVIL);
    assert_string_equal(back.v[1].pcap, "report/pcap/b.fail.pcap");
    assert_string_equal(back.target, "127.0.0.1:2525");
    /* a second tool agrees it is JSON */
    assert_int_equal(run_cmd("/usr/bin/python3 -c 'import json,sys; "
                             "d=json.load(open(\"build/tests/report.json\")); "
                             "sys.exit(0 if d[\"counts\"][\"FAIL\"]==1 and len(d[\"requirements\"])==2 else 3)'"),
                     0);
    run_results_free(&back);
    run_results_free(&run);
}

static void test_report_json_reader_refuses_bad_input(void **state)
{
    (void)state;
    struct run_results r;
    struct etrn_err err;
    assert_int_equal(report_json_read_string(&r, "x", "{\"etrncheck\":1,\"scenarios\":[", &err), -1);
    assert_non_null(strstr(err.msg, "x: invalid JSON"));
    assert_int_equal(report_json_read_string(&r, "x", "[1,2]", &err), -1);
    assert_int_equal(report_json_read_string(&r, "x", "{\"etrncheck\":1,\"scenarios\":[{\"id\":\"a\"}]}", &err), -1);
    /* deep nesting is bounded */
    char deep[200];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    assert_int_equal(report_json_read_string(&r, "x", deep, &err), -1);
    assert_int_equal(report_json_read_string(&r, "x", "{\"etrncheck\":1,\"scenarios\":[]}", &err), 0);
    assert_int_equal(r.n, 0);
    run_results_free(&r);
    assert_int_equal(report_json_read(&r, "build/tests/no-such.json", &err), -1);
}

static void test_report_junit_is_well_formed_xml(void **state)
{
    (void)state;
    struct run_results run;
    build(&run);
    struct etrn_err err;
    assert_int_equal(report_junit_write(&run, "build/tests/report.xml", &err), 0);
    assert_int_equal(run_cmd("/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; "
                             "r=E.parse(\"build/tests/report.xml\").getroot(); "
                             "c=r.findall(\".//testcase\"); "
                             "sys.exit(0 if len(c)==5 and len(r.findall(\".//failure\"))==1 and "
                             "len(r.findall(\".//error\"))==1 and len(r.findall(\".//skipped\"))==1 else 3)'"),
                     0);
    struct strbuf sb;
    slurp("build/tests/report.xml", &sb);
    assert_null(strstr(sb.data, "<script>"));
    assert_null(strchr(sb.data, '\x1b'));
    strbuf_free(&sb);
    run_results_free(&run);
}

static void test_report_tap_has_one_line_per_scenario(void **state)
{
    (void)state;
    struct run_results run;
    build(&run);
    struct etrn_err err;
    assert_int_equal(report_tap_write(&run, "build/tests/report.tap", &err), 0);
    FILE *f = fopen("build/tests/report.tap", "r");
    assert_non_null(f);
    char line[4096];
    int ok = 0, notok = 0, skip = 0, n = 0, in_yaml = 0;
    while (fgets(line, sizeof line, f) && n++ < 1000) {
        if (strcmp(line, "  ---\n") == 0) {
            in_yaml = 1;
            continue;
        }
        if (strcmp(line, "  ...\n") == 0) {
            in_yaml = 0;
            continue;
        }
        if (in_yaml) {
            assert_true(strncmp(line, "  ", 2) == 0);   /* YAML stays indented */
            continue;
        }
        if (strncmp(line, "ok ", 3) == 0) {
            ok++;
            if (strstr(line, "# SKIP"))
                skip++;
        } else if (strncmp(line, "not ok ", 7) == 0) {
            notok++;
        } else {
            assert_true(strcmp(line, "TAP version 13\n") == 0 || strcmp(line, "1..5\n") == 0);
        }
    }
    fclose(f);
    assert_int_equal(ok, 3);
    assert_int_equal(notok, 2);
    assert_int_equal(skip, 1);
    run_results_free(&run);
}

static void test_report_html_escapes_everything(void **state)
{
    (void)state;
    struct run_results run;
    build(&run);
    struct etrn_err err;
    assert_int_equal(report_html_write(&run, "build/tests/report.html", &err), 0);
    struct strbuf sb;
    slurp("build/tests/report.html", &sb);
    assert_null(strstr(sb.data, "<script>"));
    assert_null(strstr(sb.data, "<b>markup"));
    assert_non_null(strstr(sb.data, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert_null(strchr(sb.data, '\x1b'));
    assert_null(strchr(sb.data, '\x01'));
    assert_non_null(strstr(sb.data, "id=\"req-R1985-5.1.1\""));
    assert_non_null(strstr(sb.data, "href=\"#sc-b.fail\""));
    assert_non_null(strstr(sb.data, "href=\"pcap/b.fail.pcap\""));
    assert_non_null(strstr(sb.data, "</html>"));
    strbuf_free(&sb);
    assert_int_equal(run_cmd("/usr/bin/python3 -c 'import sys; from html.parser import HTMLParser\n"
                             "class P(HTMLParser):\n"
                             "  def __init__(s): super().__init__(); s.stack=[]\n"
                             "  def handle_starttag(s,t,a):\n"
                             "    if t not in (\"meta\",\"br\"): s.stack.append(t)\n"
                             "  def handle_endtag(s,t):\n"
                             "    assert s.stack.pop()==t, t\n"
                             "p=P(); p.feed(open(\"build/tests/report.html\").read()); sys.exit(len(p.stack))'"),
                     0);
    run_results_free(&run);
}

static void test_report_console_plain_lines(void **state)
{
    (void)state;
    struct run_results run;
    build(&run);
    FILE *f = tmpfile();
    assert_non_null(f);
    struct console con;
    console_init(&con, f, run.n, 1);
    assert_false(con.tty);
    for (size_t i = 0; i < run.n; i++)
        console_done(&con, &run.v[i], i + 1, run.n);
    console_summary(&con, &run);
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "FAIL  b.fail"));
    assert_non_null(strstr(buf, "PASS 1, INFO 0, WARN 1, FAIL 1, ERROR 1, SKIP 1"));
    assert_null(strchr(buf, '\x1b'));   /* no escape sequences in plain mode, none from the target */
    run_results_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_json_round_trips),
        cmocka_unit_test(test_report_json_reader_refuses_bad_input),
        cmocka_unit_test(test_report_junit_is_well_formed_xml),
        cmocka_unit_test(test_report_tap_has_one_line_per_scenario),
        cmocka_unit_test(test_report_html_escapes_everything),
        cmocka_unit_test(test_report_console_plain_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
