"""The whole conformance catalogue against the reference relay etrnd (`make run`'s job):
zero FAIL, WARN and ERROR, and every scenario runs to a verdict.

The run uses free loopback ports (target, simulator DNS, sinks) instead of the profile's
fixed ones, so it does not collide with a `make run` going on at the same time.
"""
import json
import os
import subprocess

import pytest

from lib import net
from conftest import BIN, ROOT


def _catalogue(tmp_path, *extra, timeout=300):
    out = tmp_path / "report"
    target = net.free_port("127.0.0.1")
    dns = net.free_port("127.0.0.1", udp=True)
    sink_port = net.free_port("127.0.0.1", "127.0.0.250")
    env = dict(os.environ, ETRNKIT_ROOT=ROOT, ETRNKIT_BIN=BIN, ETRNCHECK_REPORT=str(out),
               ETRNCHECK_JOBS="8")
    r = subprocess.run([os.path.join(ROOT, "scripts", "run-catalogue"),
                        "--target", "127.0.0.1:%d" % target,
                        "--dns-listen", "127.0.0.1:%d" % dns,
                        "--sink-port", str(sink_port), "--plain"] + list(extra),
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    path = out / "etrncheck.json"
    assert path.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    return r, json.loads(path.read_text())


def _not_passing(result):
    return ["%s %s: %s" % (s["verdict"], s["id"], s.get("reason", ""))
            for s in result["scenarios"] if s["verdict"] in ("FAIL", "WARN", "ERROR")]


@pytest.mark.slow
def test_catalogue_against_etrnd_has_no_fail_warn_or_error(tmp_path):
    r, result = _catalogue(tmp_path)
    assert _not_passing(result) == [], r.stdout[-4000:]
    assert r.returncode == 0
    assert len(result["scenarios"]) >= 60
    ran = [s for s in result["scenarios"] if s["verdict"] != "SKIP"]
    assert len(ran) >= 60, "only %d scenarios ran" % len(ran)


def test_catalogue_core_flush_scenarios_pass_against_etrnd(tmp_path):
    r, result = _catalogue(tmp_path, "--filter", "flush.*")
    assert _not_passing(result) == [], r.stdout[-4000:]
    verdicts = {s["id"]: s["verdict"] for s in result["scenarios"]}
    assert verdicts.get("flush.basic") in ("PASS", "INFO")
    assert verdicts.get("flush.never-the-requester") in ("PASS", "INFO")
