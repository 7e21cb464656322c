"""Fixtures for the etrnkit end-to-end harness: paths, processes that are always stopped,
a DNS server (dnsmasq), SMTP sinks and etrnd itself.

Environment: ETRNKIT_ROOT (the tree, default: this folder's parent), ETRNKIT_BIN (the
binaries, default ROOT/bin), ETRNKIT_FAULT_ROUNDS (size of the fault tests, default 20),
ETRNKIT_ETRND_DEFECT (a test-only etrnd defect switched on everywhere: the harness's own
mutation check, where some test must fail).
Only loopback addresses are used: etrnd and dnsmasq on 127.0.0.1, the node's MX sink on
127.0.0.2, and a trap sink on 127.0.0.1 at the sink port that must never receive mail
(127.0.0.1 is where the ETRN client connects from: "delivered to the requester").
"""
import os
import signal
import sys

import pytest

HARNESS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HARNESS)

from lib import dns as dns_mod          # noqa: E402
from lib import etrnd as etrnd_mod      # noqa: E402
from lib import net, procs as procs_mod, sink as sink_mod  # noqa: E402

ROOT = os.path.abspath(os.environ.get("ETRNKIT_ROOT", os.path.dirname(HARNESS)))
BIN = os.path.abspath(os.environ.get("ETRNKIT_BIN", os.path.join(ROOT, "bin")))
FAULT_ROUNDS = max(1, int(os.environ.get("ETRNKIT_FAULT_ROUNDS", "20")))
# Mutation check of the harness itself: ETRNKIT_ETRND_DEFECT=name runs every etrnd with that
# test-only defect (etrnd.conf(5)); some test must then fail, e.g.
#   ETRNKIT_ETRND_DEFECT=deliver_twice python3 -m pytest -q harness -k etrnd
ETRND_DEFECT = os.environ.get("ETRNKIT_ETRND_DEFECT", "").strip()

# DNS: every node's MX is the sink on 127.0.0.2. HELD are etrnd's etrn_domains (their
# subdomains sub.node.test and deep.sub.node.test are held too, for `ETRN @node.test`);
# direct.test is relayed at once (a control that shows the delivery path works without ETRN).
NODES = {"node.test": "127.0.0.2", "other.test": "127.0.0.2", "direct.test": "127.0.0.2",
         "sub.node.test": "127.0.0.2", "deep.sub.node.test": "127.0.0.2"}
HELD = ["node.test", "other.test"]
MX_ADDR = "127.0.0.2"
REQUESTER_ADDR = "127.0.0.1"


# A last-resort bound on every test (no pytest-timeout on Debian 12's pytest): SIGALRM
# raises in the test after ETRNKIT_TEST_TIMEOUT seconds (default 600; 0 = off); fault tests
# get more in proportion to ETRNKIT_FAULT_ROUNDS. Every wait inside a test has its own,
# much shorter bound; this one only turns a hang nobody foresaw into a failure.
TEST_TIMEOUT = int(os.environ.get("ETRNKIT_TEST_TIMEOUT", "600"))


class HarnessTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _bounded_test(request):
    limit = TEST_TIMEOUT
    if limit <= 0:
        yield
        return
    if request.node.get_closest_marker("faults") is not None:
        limit = int(limit * max(1.0, FAULT_ROUNDS / 20.0))

    def expired(signum, frame):
        raise HarnessTimeout("test still running after %d s (ETRNKIT_TEST_TIMEOUT)" % limit)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def bindir():
    return BIN


@pytest.fixture(scope="session")
def etrnd_bin():
    path = os.path.join(BIN, "etrnd")
    if not os.access(path, os.X_OK):
        # A failure, not a skip: `make harness-test` builds it first, so a missing etrnd
        # means a broken build, and a skipped suite would look like a passing one.
        pytest.fail("%s is not built (make programs)" % path, pytrace=False)
    return path


@pytest.fixture
def procs(tmp_path):
    p = procs_mod.Procs(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture
def sink_port():
    return net.free_port(MX_ADDR, REQUESTER_ADDR)


def _sink_fixture(addr, name):
    @pytest.fixture
    def fixture(sink_port):
        s = sink_mod.Sink(addr, sink_port, name=name).start()
        try:
            yield s
        finally:
            s.stop()
    return fixture


sink = _sink_fixture(MX_ADDR, "mx1.node.test")
trap = _sink_fixture(REQUESTER_ADDR, "requester.trap")


@pytest.fixture
def dns(procs, tmp_path):
    if not dns_mod.Dnsmasq.available():
        pytest.fail("dnsmasq is not installed (scripts/deps installs dnsmasq-base)", pytrace=False)
    return dns_mod.Dnsmasq(procs, tmp_path, NODES).start()


@pytest.fixture
def make_etrnd(procs, tmp_path, etrnd_bin, request):
    """make_etrnd(settings=[...], dns=d, sink_port=p, name="etrnd") -> a started Etrnd
    (start=False to only write its config). Defaults hold node.test and other.test for ETRN."""
    made = []

    def make(settings=(), dns=None, sink_port=None, name="etrnd", start=True):
        base = [("etrn_domains", ", ".join(HELD)), ("etrn_rate_limit", "0")]
        if ETRND_DEFECT:
            base.append(("defect", ETRND_DEFECT))
        if dns is not None:
            base.append(("dns_server", "127.0.0.1:%d" % dns.port))
        if sink_port is not None:
            base.append(("smtp_port", str(sink_port)))
        given = list(settings.items()) if isinstance(settings, dict) else list(settings)
        keys = {k for k, _ in given}
        d = etrnd_mod.Etrnd(procs, tmp_path, BIN, [kv for kv in base if kv[0] not in keys] + given,
                            name=name)
        made.append(d)
        if start:
            d.start()
        else:
            d.write_config()
        return d

    yield make
    if _failed(request):
        for d in made:
            sys.stderr.write(d.diagnostics() + "\n")
    for d in made:
        d.stop()
    # The ASan/UBSan build reports at exit (leaks) or when it happens: any report fails the test.
    reports = [line for d in made for line in d.sanitizer_reports()]
    if reports:
        pytest.fail("sanitizer reports from etrnd:\n" + "\n".join(reports[:40]), pytrace=False)


@pytest.fixture
def relay(make_etrnd, dns, sink, trap, sink_port):
    """The usual set-up: dnsmasq (MX for the nodes → 127.0.0.2), the MX sink, the trap
    sink on the requester's address, and etrnd holding mail for the nodes."""
    d = make_etrnd(dns=dns, sink_port=sink_port)
    d.sink, d.trap, d.dns = sink, trap, dns
    return d


def _children_of(pid):
    """PIDs whose parent is pid (from /proc), with their command names."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold blanks, so split after the last ')'.
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid and comm != "ps":
            found.append((int(entry), comm))
    return found


def pytest_sessionfinish(session, exitstatus):
    """No process the harness started may outlive it: any child still running here is
    reported, killed (by its pid) and fails the run."""
    left = [(pid, comm) for pid, comm in _children_of(os.getpid()) if comm not in ("pytest",)]
    alive = []
    for pid, comm in left:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    continue            # a zombie is already dead (reaped when we exit)
        except OSError:
            continue
        alive.append((pid, comm))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if alive:
        sys.stderr.write("\nharness: processes left running by the tests (killed now): %s\n"
                         % ", ".join("%s[%d]" % (c, p) for p, c in alive))
        session.exitstatus = 1
