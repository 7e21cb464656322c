"""Mutation check: the catalogue catches every deliberately broken etrnd.

Each test switches on one test-only defect of etrnd (`defect = NAME`, server/etrnd_config.h),
runs the whole catalogue against it through harness/run_mutations.py (a private network
namespace per run) and asserts at least one FAIL or WARN on a requirement that the defect
really breaks (harness/run_mutations.py: EXPECTED). Slow: 25 s to 3 min per defect.
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT

pytestmark = pytest.mark.slow


def _expected():
    path = os.path.join(ROOT, "harness", "run_mutations.py")
    loader = importlib.machinery.SourceFileLoader("run_mutations", path)
    spec = importlib.util.spec_from_loader("run_mutations", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod.EXPECTED


EXPECTED = _expected()


@pytest.mark.parametrize("defect", sorted(EXPECTED))
def test_catalogue_catches_etrnd_defect(defect, tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and ip(8) for network namespaces")
    env = dict(os.environ, ETRNKIT_ROOT=ROOT, ETRNKIT_BIN=BIN)
    r = subprocess.run([os.path.join(ROOT, "harness", "run_mutations.py"), "-j", "1",
                        "--out", str(tmp_path), "--timeout", "500", defect],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=560)
    summary = json.loads((tmp_path / "mutations.json").read_text())
    res = summary["results"][0]
    assert "error" not in res, res.get("error")
    assert res["caught"], "defect %s escaped: no FAIL/WARN on %s\n%s" % (
        defect, EXPECTED[defect], r.stdout)
    assert r.returncode == 0
