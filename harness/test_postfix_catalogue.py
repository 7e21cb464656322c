"""The whole catalogue against Debian's Postfix (fixtures/targets/postfix-run: a private
instance inside a network namespace): no ERROR, and every FAIL and WARN is one of the
known, hand-checked differences listed in docs/TARGETS.md ("Postfix") — so the suite never
blames Postfix for something the RFCs allow, and a new FAIL/WARN shows up here.

Slow (about 4 minutes: Postfix runs one scenario at a time) and needs root.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postfix]

# (verdict, scenario) -> the requirement IDs it may name; docs/TARGETS.md gives the reasons
KNOWN = {
    ("FAIL", "syntax.invalid-characters"): {"R5321-4.1.2", "R1985-5.1.9"},
    ("WARN", "flush.at-option"): {"R1985-5.3.1"},
    ("WARN", "syntax.bare-lf"): {"R5321-2.3.8"},
    ("WARN", "replies.enhanced-after-helo"): {"R2034-4c"},
}
# a missing enhanced status code on ETRN replies (spec §3-A10) may appear anywhere
ANYWHERE = {("WARN", "R2034-3")}


def test_catalogue_against_postfix_has_only_known_differences(tmp_path):
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("postfix"):
        pytest.skip("needs root, ip(8) and Debian's postfix")
    out = tmp_path / "postfix.json"
    env = dict(os.environ, ETRNKIT_ROOT=ROOT, ETRNKIT_BIN=BIN)
    r = subprocess.run([os.path.join(ROOT, "fixtures", "targets", "postfix-run"),
                        "--json", str(out), "--plain"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=580)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    errors = [s["id"] + ": " + s.get("reason", "") for s in result["scenarios"]
              if s["verdict"] == "ERROR"]
    assert errors == []
    unexpected = []
    for s in result["scenarios"]:
        for c in s["checks"]:
            v = c["verdict"]
            if v not in ("FAIL", "WARN"):
                continue
            reqs = set(c["reqs"])
            if all((v, q) in ANYWHERE for q in reqs):
                continue
            if reqs <= KNOWN.get((v, s["id"]), set()):
                continue
            unexpected.append("%s %s %s: %s" % (v, s["id"], sorted(reqs), c["detail"]))
    assert unexpected == []
    ran = [s for s in result["scenarios"] if s["verdict"] != "SKIP"]
    assert len(ran) >= 60
