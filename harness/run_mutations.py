#!/usr/bin/python3
"""run_mutations.py — the mutation check: the catalogue must catch every broken etrnd.

    harness/run_mutations.py [-j N] [--out report/mutations] [DEFECT ...]     (as root)

For each test-only defect of etrnd (server/etrnd_config.h, `defect = NAME`) it runs the
whole catalogue against an etrnd with that defect switched on (scripts/run-catalogue with
ETRND_DEFECT=NAME), each run in a private network namespace so that runs can go in
parallel without sharing ports, and checks that the result has at least one FAIL or WARN
on one of the requirements the defect breaks (EXPECTED below). It prints one line per
defect (the scenarios and requirements that caught it) and writes OUT/mutations.json.
Exit status: 0 every defect caught, 1 a defect escaped, 2 a run could not be made.
Guarantees: every namespace it creates is removed, whatever happens; the processes left
in one are killed by pid.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# defect -> the requirements a correct catalogue must FAIL (or WARN) when it is on
EXPECTED = {
    "never_deliver": ["R1985-5.1.2"],
    "deliver_to_requester": ["R1985-3.2"],
    "lose_after_failure": ["R5321-4.5.4.1a"],
    "deliver_twice": ["R5321-4.5.4.1a", "R1985-5.1.2"],
    "ignore_mx_preference": ["R5321-5.1d"],
    "no_mx_fallthrough": ["R5321-5.1d"],
    "etrn_not_advertised": ["R5321-4.1.1.1a", "R1985-2.2"],
    "etrn_accept_malformed": ["R1985-5.1.9", "R1985-5.4", "R5321-4.1.2", "R5321-2.3.5"],
    "etrn_wrong_count": ["R1985-5.1.7"],
    "etrn_case_sensitive": ["R5321-2.4"],
    "etrn_ignore_at": ["R1985-5.3.1"],
    "etrn_block_reply": ["R1985-5.1.4"],
}


def run_one(defect, out, timeout):
    ns = "etrnmut-%d-%s" % (os.getpid(), defect.replace("_", "")[:20])
    rdir = os.path.join(out, defect)
    os.makedirs(rdir, exist_ok=True)
    env = dict(os.environ, ETRND_DEFECT=defect, ETRNCHECK_REPORT=rdir,
               ETRNKIT_ROOT=ROOT)
    started = time.monotonic()
    log = open(os.path.join(rdir, "console.txt"), "w")
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
                       check=True, timeout=30)
        rc = subprocess.run(["ip", "netns", "exec", ns, "scripts/run-catalogue"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    finally:
        log.close()
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return judge(defect, rdir, rc, time.monotonic() - started)


def judge(defect, rdir, rc, seconds):
    res = {"defect": defect, "expected": EXPECTED.get(defect, []), "exit": rc,
           "seconds": round(seconds, 1), "caught": False, "by": [], "other": []}
    path = os.path.join(rdir, "etrncheck.json")
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        res["error"] = "no result (%s); see %s/console.txt" % (e, rdir)
        return res
    bad = {}
    for s in j.get("scenarios", []):
        for c in s.get("checks", []):
            if c.get("verdict") in ("FAIL", "WARN"):
                for r in c.get("reqs", []):
                    bad.setdefault(r, set()).add("%s:%s" % (c["verdict"], s["id"]))
    for r in res["expected"]:
        if r in bad:
            res["caught"] = True
            res["by"].append({"req": r, "scenarios": sorted(bad[r])})
    res["other"] = sorted(r for r in bad if r not in res["expected"])
    res["errors"] = j.get("counts", {}).get("ERROR", 0)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-j", type=int, default=3, help="catalogue runs at once (default 3)")
    ap.add_argument("--out", default="report/mutations")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run")
    ap.add_argument("defects", nargs="*")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run_mutations: needs root (network namespaces)", file=sys.stderr)
        return 2
    defects = a.defects or list(EXPECTED)
    unknown = [d for d in defects if d not in EXPECTED]
    if unknown:
        print("run_mutations: unknown defect(s): %s" % " ".join(unknown), file=sys.stderr)
        return 2
    out = a.out if os.path.isabs(a.out) else os.path.join(ROOT, a.out)
    os.makedirs(out, exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, a.j)) as ex:
        results = list(ex.map(lambda d: run_one(d, out, a.timeout), defects))
    caught = 0
    for r in results:
        if r.get("error"):
            line = "ERROR   %s" % r["error"]
        elif r["caught"]:
            caught += 1
            line = "CAUGHT  " + "; ".join("%s by %s" % (b["req"], ", ".join(b["scenarios"][:4]))
                                          for b in r["by"])
        else:
            line = "MISSED  no FAIL/WARN on %s (other: %s)" % (" ".join(r["expected"]),
                                                               " ".join(r["other"]) or "none")
        print("%-22s %5.1fs  %s" % (r["defect"], r["seconds"], line))
    print("run_mutations: %d of %d defects caught in %.0fs; details in %s/mutations.json"
          % (caught, len(results), time.monotonic() - started, out))
    with open(os.path.join(out, "mutations.json"), "w") as f:
        json.dump({"caught": caught, "total": len(results), "results": results}, f, indent=1)
    if any(r.get("error") for r in results):
        return 2
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
