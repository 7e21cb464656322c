"""fetchmail's ETRN mode (Debian's fetchmail, `protocol ETRN`) against the client
conformance scenarios: `etrncheck client` plays the relay and runs fetchmail through a small
wrapper that writes a private rc file (poll 127.0.0.1 protocol ETRN port P fetchdomains ...)
and runs `timeout 25 fetchmail -f RC --nosyslog -v` with its own FETCHMAILHOME.

These tests do not require fetchmail to pass. They assert recorded facts: that fetchmail
really ran the dialogue (its own log lines), that each check's verdict agrees with what the
relay recorded, and that the verdicts are the ones docs/RESULTS-fetchmail.md documents, so
the document cannot drift from what the harness sees."""
import os
import re
import shutil
import stat

import pytest

from test_etrn_client_conformance import connections, etrn_lines, run_client_check

pytestmark = pytest.mark.skipif(shutil.which("fetchmail") is None,
                                reason="fetchmail is not installed (scripts/deps)")

WRAPPER = r"""#!/bin/sh
# fetchmail in ETRN mode: HOST PORT DOMAINS(comma-separated) [extra fetchmail options...]
# As root, fetchmail runs as nobody: root's fetchmail keeps one global lock
# (/var/run/fetchmail.pid), so two runs at once (two harness runs) would refuse each other.
host=$1 port=$2 domains=$3
shift 3
d=$(mktemp -d "${TMPDIR:-/tmp}/fetchmail-etrn.XXXXXX") || exit 70
printf 'poll %s protocol ETRN port %s fetchdomains %s\n' "$host" "$port" "$domains" > "$d/rc"
chmod 600 "$d/rc"
run=
if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup "$d" || exit 70
    run="setpriv --reuid=nobody --regid=nogroup --clear-groups --"
fi
FETCHMAILHOME=$d HOME=$d timeout --foreground -k 2 25 $run fetchmail -f "$d/rc" --nosyslog -v "$@"
rc=$?
rm -rf "$d"
exit $rc
"""

RESULTS_DOC = "docs/RESULTS-fetchmail.md"


def wrapper(tmp_path):
    path = tmp_path / "fetchmail-etrn.sh"
    path.write_text(WRAPPER)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def documented_verdicts(root, column):
    """{scenario id: verdict} from the results table ('single poll' or 'daemon' column)."""
    rows = {}
    with open(os.path.join(root, RESULTS_DOC)) as f:
        header = None
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3:
                continue
            if cells[0] == "scenario":
                header = cells
                continue
            if header and column in header and cells[0].startswith("`client."):
                v = cells[header.index(column)].strip("*` ")
                if v and v != "—":
                    rows[cells[0].strip("`")] = v
    return rows


@pytest.fixture(scope="module")
def fm_run(root, bindir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fetchmail")
    cmd = wrapper(tmp) + " {relay_host} {relay_port} {nodes_comma}"
    proc, results = run_client_check(root, bindir, tmp, cmd, name="fetchmail")
    return root, proc, results


def test_fetchmail_really_ran_every_scenario(fm_run):
    _, proc, results = fm_run
    assert len(results) >= 15
    for sid, s in results.items():
        if s["verdict"] == "SKIP":
            assert "starttls" in s["reason"], sid   # fetchmail has no STARTTLS for ETRN
            continue
        assert s["verdict"] != "ERROR", (sid, s["reason"])
        assert "client| fetchmail:" in s["transcript"], sid
        assert "querying 127.0.0.1 (protocol ETRN)" in s["transcript"], sid


def test_fetchmail_verdicts_match_the_relay_transcripts(fm_run):
    """Each check's verdict is consistent with the recorded dialogue."""
    _, _, results = fm_run
    for sid, s in results.items():
        if s["verdict"] == "SKIP":
            continue
        t = s["transcript"]
        for c in s["checks"]:
            what, ok = c["what"], c["verdict"] == "PASS"
            if what == "expect-client waits for replies":
                assert ok == ("[sent before the previous reply was complete]" not in t), sid
            elif what == "expect-client sends no ETRN":
                assert ok == (etrn_lines(s) == []), sid
            elif what.startswith("expect-client sends at most 1 ETRN"):
                per = {}
                for conn, _ in etrn_lines(s):
                    per[conn] = per.get(conn, 0) + 1
                assert ok == (max(per.values(), default=0) <= 1), sid
            elif what.startswith("expect-client retries within"):
                assert ok == (connections(s) > 1), sid


def test_fetchmail_asks_for_each_fetchdomain_in_one_session(fm_run):
    s = fm_run[2]["client.etrn.two-nodes"]
    sent = etrn_lines(s)
    assert len(sent) == 2 and {c for c, _ in sent} == {"c1"}
    assert s["verdict"] == "PASS"


def test_fetchmail_reads_multiline_etrn_reply_line_by_line(fm_run):
    """The finding: a paced three-line 250 makes fetchmail send its next ETRN after the
    first line, and later take the rest of the reply for the answers to later commands."""
    s = fm_run[2]["client.etrn.multiline-etrn-reply"]
    assert "[sent before the previous reply was complete]" in s["transcript"]
    assert "fetchmail: ETRN< 250-more text" in s["transcript"]
    assert s["verdict"] == "FAIL"


def test_fetchmail_single_poll_never_retries(fm_run):
    for sid in ("client.etrn.reply-458-retry", "client.etrn.reply-459-stop"):
        s = fm_run[2][sid]
        assert connections(s) == 1, (sid, s["transcript"])
    s = fm_run[2]["client.etrn.reply-458-retry"]
    assert "Unable to queue messages for node" in s["transcript"].split("client exited")[1]


def test_fetchmail_results_are_the_documented_ones(fm_run):
    root, _, results = fm_run
    doc = documented_verdicts(root, "single poll")
    assert len(doc) == len(results), "every scenario has a row in " + RESULTS_DOC
    observed = {sid: s["verdict"] for sid, s in results.items()}
    differ = {sid: (observed.get(sid), doc.get(sid), results[sid]["reason"] if sid in results
                    else "", results[sid]["transcript"][-1500:] if sid in results else "")
              for sid in set(observed) | set(doc) if observed.get(sid) != doc.get(sid)}
    assert differ == {}


@pytest.mark.slow
def test_fetchmail_daemon_mode_polls_again_whatever_the_reply(root, bindir, tmp_path):
    """In daemon mode (-d 2 --nodetach) fetchmail polls every 2 s: a retry after 458, but
    also after 459 and 500, where RFC 1985 gives no reason to ask again."""
    cmd = wrapper(tmp_path) + " {relay_host} {relay_port} {nodes_comma} -d 2 --nodetach"
    only = ["client.etrn.reply-458-retry", "client.etrn.reply-459-stop",
            "client.etrn.reply-500-stop"]
    _, results = run_client_check(root, bindir, tmp_path, cmd, only=only, name="daemon")
    for sid in only:
        assert connections(results[sid]) > 1, sid
    doc = documented_verdicts(root, "daemon -d 2")
    assert {sid: results[sid]["verdict"] for sid in only} == {sid: doc[sid] for sid in only}
