"""Resolver and network faults during flushes, driven through etrnsim: for each DNS quirk,
link fault and sink misbehaviour, N messages are queued in etrnd for node.test, the fault
is switched on, ETRN node.test starts a flush and runs to its end. Then every message is
either delivered once (etrnsim's journal: status `accepted`) or still queued (`etrnd
--queue`), never both and never neither. The fault is cleared, ETRN again: everything is
delivered and the queue is empty.

Faults marked PERMANENT (the node's DNS says it does not exist or takes no mail) may
bounce instead: delivered + queued + bounced = N, and bounced messages are not expected
after clearing. Faults in WINDOW can cut a connection after the sink's 250 left it, so a
message may arrive twice (RFC 1047); the count is reported, every other duplicate fails.

make test runs SHORT with 20 messages; -m faults (make check-faults) runs every fault with
100 (marked slow as well, so that make test leaves it out). Each fault
is bounded (flush_bound seconds for each flush). Figures: `faults network: ...` lines.
"""
import collections
import os
import re
import time

import pytest

from lib import etrnd as etrnd_mod, net, procs as procs_mod, smtp
from conftest import BIN

NODE = "node.test"

DNS_NODE = ["servfail", "refused", "nxdomain", "nodata", "rcode 4", "timeout", "delay 800ms",
            "truncate", "wrong-id", "wrong-question", "case-0x20", "oversize", "drop-tcp",
            "cname-chain 3", "cname-loop", "mx-to-cname", "mx-no-address", "null-mx", "ttl0",
            "flap", "flap servfail", "cut-off", "pointer-loop"]
DNS_HOST = ["servfail", "timeout", "nxdomain", "cut-off", "delay 800ms"]
LINK = ["down", "reject", "blackhole", "latency 100ms", "jitter 30ms", "bandwidth 20k",
        "reset-after 3k", "reset-after 40k", "reset-after-time 400ms", "stall-after 2k",
        "slice 7", "stall-after 40k"]
SINK = ["reject-rcpt 450", "reject-mail 421", "reject-data 451", "reject-dot 452",
        "drop-after-dot", "close-mid-reply dot", "close-mid-reply mail", "no-greeting",
        "reject-greeting 421", "tarpit 5ms", "accept-limit 7", "multiline-replies",
        "bare-lf-replies", "no-pipelining", "helo-only"]

FAULTS = ([("dns-quirk %s %s" % (NODE, q)) for q in DNS_NODE]
          + [("dns-quirk mx1.%s %s" % (NODE, q)) for q in DNS_HOST]
          + [("link sink1 %s" % w) for w in LINK]
          + [("sink-behave sink1 %s" % b) for b in SINK])
SHORT = ["dns-quirk %s servfail" % NODE, "dns-quirk %s flap" % NODE, "link sink1 down",
         "link sink1 reset-after 3k", "sink-behave sink1 drop-after-dot"]
PERMANENT = {"dns-quirk %s %s" % (NODE, q) for q in ("nxdomain", "null-mx", "nodata",
                                                        "mx-no-address", "cname-loop")}
PERMANENT |= {"dns-quirk mx1.%s nxdomain" % NODE}
WINDOW = {"link sink1 reset-after 3k", "link sink1 reset-after 40k",
          "link sink1 reset-after-time 400ms", "link sink1 stall-after 2k",
          "link sink1 stall-after 40k", "sink-behave sink1 drop-after-dot",
          "sink-behave sink1 close-mid-reply dot", "link sink1 blackhole"}
CLEAR = ["link sink1 up", "link sink1 clear", "sink-behave sink1 normal",
         "dns-clear %s" % NODE, "dns-clear mx1.%s" % NODE]


class Sim:
    """etrnsim with one node (sink1 behind its link) and its DNS, driven over --control."""

    def __init__(self, procs, workdir):
        self.procs, self.workdir = procs, str(workdir)
        self.bin = os.path.join(BIN, "etrnsim")
        self.sink_port = net.free_port("127.0.0.2", "127.0.0.1")
        self.journal = os.path.join(self.workdir, "sim.journal")
        self.control = os.path.join(self.workdir, "sim.sock")
        self.topo = os.path.join(self.workdir, "faults.topo")
        with open(self.topo, "w") as f:
            f.write("sink sink1\ndns %s MX 10 mx1.%s\ndns mx1.%s A $sink1\n" % (NODE, NODE, NODE))
        self.proc = procs.start([self.bin, "-c", self.topo, "--dns", "127.0.0.1:0",
                                 "--sink-port", str(self.sink_port), "--journal", self.journal,
                                 "--control", self.control, "--quiet"], "etrnsim")
        found = net.wait_until(lambda: self._dns_port(), 20, "etrnsim's ready lines")
        self.dns_port = found

    def _dns_port(self):
        if self.proc.poll() is not None:
            raise AssertionError("etrnsim exited: " + self.procs.output(self.proc))
        m = re.search(r"(?m)^dns 127\.0\.0\.1:(\d+)", self.procs.output(self.proc))
        return int(m.group(1)) if m and os.path.exists(self.control) else None

    def tell(self, line):
        r = procs_mod.run([self.bin, "--tell", self.control] + line.split(), timeout=20)
        assert r.returncode == 0, "etrnsim --tell %s: %s%s" % (line, r.stdout, r.stderr)

    def accepted(self):
        """Message-IDs of the deliveries etrnsim's sinks acknowledged, in order."""
        out = []
        try:
            with open(self.journal, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break
                    fields = line.rstrip("\n").split("\t")
                    if fields[0] == "delivery" and len(fields) >= 10 and fields[5] == "accepted":
                        out.append(fields[9])
        except FileNotFoundError:
            pass
        return out


@pytest.fixture
def sim(procs, tmp_path):
    if not os.access(os.path.join(BIN, "etrnsim"), os.X_OK):
        pytest.skip("bin/etrnsim is not built")
    return Sim(procs, tmp_path)


@pytest.fixture
def sim_relay(make_etrnd, sim):
    d = make_etrnd(settings=[("etrn_domains", NODE), ("dns_server", "127.0.0.1:%d" % sim.dns_port),
                             ("smtp_port", str(sim.sink_port)),
                             ("smtp_connect_timeout", "2s"), ("smtp_greeting_timeout", "3s"),
                             ("smtp_mail_timeout", "3s"), ("smtp_rcpt_timeout", "3s"),
                             ("smtp_data_timeout", "3s"), ("smtp_block_timeout", "3s"),
                             ("smtp_dot_timeout", "3s"), ("delivery_starttls", "no")])
    d.sim = sim
    return d


def queued(d):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    return etrnd_mod.parse_queue(r.stdout).get(NODE, 0)


def flushes_done(d):
    return d.log().count("flush %s: done" % NODE)


def bounced_ids(d):
    return set(re.findall(r"(?m)^.*?(\S+) to=<[^>]*@%s> relay=\S* status=bounced" % re.escape(NODE),
                          d.log()))


def flush_and_wait(d, bound):
    """ETRN NODE and wait (bounded) until etrnd logs the end of that flush."""
    before = flushes_done(d)
    code, text = smtp.etrn("127.0.0.1", d.port, NODE)
    assert code in (250, 251, 252, 253), "ETRN %s: %s %s" % (NODE, code, text)
    if code == 251:
        return           # nothing queued: no flush starts
    net.wait_until(lambda: flushes_done(d) > before or queued(d) == 0, bound,
                   "the end of the flush of %s" % NODE, interval=0.2)
    time.sleep(0.3)      # a sink's last journal line


def run_fault(d, fault, n):
    sim = d.sim
    msgids = ["<fault-%d-%d@etrnkit.test>" % (i, int(time.time() * 1000) % 100000) for i in range(n)]
    batch = [("s@example.org", ["u@%s" % NODE], smtp.make_message(m[1:-1], size=500)) for m in msgids]
    assert smtp.inject_pipelined("127.0.0.1", d.port, batch) == n
    assert queued(d) == n
    bound = 60 + n

    sim.tell(fault)
    flush_and_wait(d, bound)
    got = collections.Counter(sim.accepted())
    q1 = queued(d)
    bounced = len(bounced_ids(d))
    delivered1 = len(set(got) & set(msgids))
    dups1 = sum(k - 1 for k in got.values() if k > 1)

    for line in CLEAR:
        sim.tell(line)
    flush_and_wait(d, bound)
    net.wait_until(lambda: len(set(sim.accepted()) & set(msgids)) + bounced >= n, bound,
                   "every message delivered after clearing %r" % fault)
    got = collections.Counter(sim.accepted())
    q2 = queued(d)
    dups = {m: k for m, k in got.items() if k > 1}
    print("faults network: %-45s N=%d during: delivered %d queued %d bounced %d dup %d | "
          "after clearing: delivered %d queued %d duplicates %d"
          % (fault, n, delivered1, q1, bounced, dups1, len(set(got) & set(msgids)), q2, len(dups)))
    assert set(got) <= set(msgids), "deliveries of messages never sent: %s" % (set(got) - set(msgids))
    if fault in PERMANENT:
        assert delivered1 + q1 + bounced == n, (fault, delivered1, q1, bounced)
    elif fault in WINDOW:
        # A message whose 250 the fault swallowed is both delivered and still queued; it
        # goes out again after clearing (counted as a duplicate below).
        overlap = delivered1 + q1 - n
        assert bounced == 0, "%s bounced %d messages for a temporary fault" % (fault, bounced)
        assert overlap >= 0, "%s: %d delivered + %d queued < %d: lost" % (fault, delivered1, q1, n)
        assert overlap <= sum(k - 1 for k in dups.values()), (fault, overlap, dups)
    else:
        assert bounced == 0, "%s bounced %d messages for a temporary fault" % (fault, bounced)
        assert delivered1 + q1 == n, "%s: %d delivered + %d queued != %d" % (fault, delivered1, q1, n)
    assert q2 == 0, "%s: %d still queued after clearing and ETRN" % (fault, q2)
    assert len(set(got)) + bounced == n
    if fault not in WINDOW:
        assert not dups, "%s: duplicates outside the RFC 1047 window: %s" % (fault, dups)
    return {"delivered_during": delivered1, "queued_during": q1, "bounced": bounced,
            "duplicates": sum(k - 1 for k in dups.values())}


@pytest.mark.parametrize("fault", SHORT)
def test_flush_under_fault_delivers_once_or_keeps_queued(sim_relay, fault):
    run_fault(sim_relay, fault, 20)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("fault", FAULTS)
def test_flush_of_100_under_every_fault_delivers_once_or_keeps_queued(sim_relay, fault):
    run_fault(sim_relay, fault, 100)
