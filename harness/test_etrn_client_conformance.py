"""Client conformance of our own etrn client: `etrncheck client` runs bin/etrn against the
scripted relay of every scenario in fixtures/scenarios/client and must find nothing wrong;
a deliberately misconfigured client (--force, no retries) must be caught, which shows the
checks can fail. Assertions are on the recorded dialogue (the relay's transcript), not only
on verdicts. Everything runs on 127.0.0.1; each scenario is bounded by its own timeout."""
import json
import os
import subprocess

import pytest

ETRN_CMD = "{bin}/etrn -s {{relay}} --timeout 10s --retries 2 --backoff 2s {{nodes}}"
ETRN_TLS_CMD = "{bin}/etrn -s {{relay}} --starttls --timeout 10s {{nodes}}"
CLIENT_DIR = "fixtures/scenarios/client"


def run_client_check(root, bindir, tmp_path, command, tls_command=None, only=None, name="r"):
    out = tmp_path / (name + ".json")
    argv = [os.path.join(bindir, "etrncheck"), "client", "--client-cmd", command,
            "--scenarios", os.path.join(root, CLIENT_DIR), "--plain", "--json", str(out)]
    if tls_command:
        argv += ["--client-cmd-tls", tls_command]
    if only:
        argv += ["--only", ",".join(only)]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=900)
    assert out.exists(), proc.stdout + proc.stderr
    with open(out) as f:
        report = json.load(f)
    return proc, {s["id"]: s for s in report["scenarios"]}


def etrn_lines(scenario):
    """The ETRN commands the relay received, as (connection, line)."""
    found = []
    for line in scenario["transcript"].splitlines():
        head, sep, rest = line.partition(" > ")
        if sep and rest.upper().startswith("ETRN"):
            found.append((head, rest.split("   [")[0]))
    return found


def connections(scenario):
    return sum(1 for l in scenario["transcript"].splitlines() if l.endswith(": client connected"))


@pytest.fixture(scope="module")
def our_run(root, bindir, tmp_path_factory):
    if not os.access(os.path.join(bindir, "etrn"), os.X_OK):
        pytest.skip("bin/etrn is not built (make programs)")
    tmp = tmp_path_factory.mktemp("client")
    proc, results = run_client_check(root, bindir, tmp, ETRN_CMD.format(bin=bindir),
                                     ETRN_TLS_CMD.format(bin=bindir))
    return root, bindir, tmp, proc, results


def test_client_catalogue_has_at_least_fifteen_scenarios(our_run):
    root, _, _, _, results = our_run
    files = [f for f in os.listdir(os.path.join(root, CLIENT_DIR)) if f.endswith(".scn")]
    assert len(files) >= 15
    assert len(results) == len(files)


def test_our_etrn_passes_every_client_scenario(our_run):
    _, _, _, proc, results = our_run
    bad = {i: (s["verdict"], s["reason"]) for i, s in results.items() if s["verdict"] != "PASS"}
    assert bad == {}, proc.stdout
    assert proc.returncode == 0


def test_our_etrn_sends_one_etrn_then_stops_after_500(our_run):
    s = our_run[4]["client.etrn.reply-500-stop"]
    assert len(etrn_lines(s)) == 1
    assert "c1 > QUIT" in s["transcript"]
    assert connections(s) == 1


def test_our_etrn_retries_after_458_in_a_new_session_after_a_pause(our_run):
    s = our_run[4]["client.etrn.reply-458-retry"]
    sent = etrn_lines(s)
    assert [c for c, _ in sent] == ["c1", "c2"]
    assert "c1 < 458" in s["transcript"] and "c2 < 250" in s["transcript"]
    gap = [c for c in s["checks"] if c["what"].startswith("expect-client backs off")][0]
    assert gap["verdict"] == "PASS", gap["detail"]


def test_our_etrn_never_retries_after_459_and_reports_the_reason(our_run):
    s = our_run[4]["client.etrn.reply-459-stop"]
    assert connections(s) == 1
    assert "client exited with status 4" in s["transcript"]   # etrn(1): 4 = refused
    assert "not allowed" in s["transcript"].split("client exited")[1]


def test_our_etrn_sends_no_etrn_when_not_advertised_and_quits(our_run):
    for sid in ("client.etrn.no-etrn-keyword", "client.etrn.ehlo-refused"):
        s = our_run[4][sid]
        assert etrn_lines(s) == [], sid
        assert "c1 > QUIT" in s["transcript"], sid
        assert "client exited with status 5" in s["transcript"], sid   # unsupported


def test_our_etrn_uses_starttls_when_told_to(our_run):
    s = our_run[4]["client.etrn.tls-required-starttls"]
    t = s["transcript"]
    assert t.index("c1 > STARTTLS") < t.index("TLS handshake done") < t.index("c1 > ETRN")
    # RFC 3207 §4.2: EHLO again inside TLS
    assert t.count("c1 > EHLO") == 2


def test_checker_catches_a_client_forcing_etrn_without_the_keyword(our_run, tmp_path):
    root, bindir, _, _, _ = our_run
    cmd = "%s/etrn -s {relay} --timeout 10s --force {nodes}" % bindir
    _, results = run_client_check(root, bindir, tmp_path, cmd,
                                  only=["client.etrn.no-etrn-keyword"], name="force")
    s = results["client.etrn.no-etrn-keyword"]
    assert len(etrn_lines(s)) == 1
    assert s["verdict"] == "WARN"
    check = [c for c in s["checks"] if "only where advertised" in c["what"]][0]
    assert check["verdict"] == "WARN" and "did not list ETRN" in check["detail"]


def test_checker_notes_a_client_that_does_not_retry_after_458(our_run, tmp_path):
    root, bindir, _, _, _ = our_run
    cmd = "%s/etrn -s {relay} --timeout 10s --retries 0 {nodes}" % bindir
    _, results = run_client_check(root, bindir, tmp_path, cmd,
                                  only=["client.etrn.reply-458-retry"], name="noretry")
    s = results["client.etrn.reply-458-retry"]
    assert connections(s) == 1
    assert s["verdict"] == "INFO"
