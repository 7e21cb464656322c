"""etrnd against the simulator's nodes (bin/etrnsim): its DNS serves the MX records, its
sinks behind links record every delivery in the journal (status, Message-ID, SHA-256).
The primary MX is down: etrnd falls through to the secondary; the only MX is down: the
mail stays queued (a temporary failure is not a bounce) until the link comes up and the
next ETRN delivers it, once."""
import collections
import os
import re

import pytest

from lib import etrnd as etrnd_mod, net, sink as sink_mod, smtp, tools

TWO_MX = """# two MX hosts for node.test; the primary (sink1) is down
sink sink1
sink sink2
dns node.test MX 10 mx1.node.test
dns node.test MX 20 mx2.node.test
dns mx1.node.test A $sink1
dns mx2.node.test A $sink2
link sink1 down
"""

ONE_MX = """# one MX host for node.test, down at first
sink sink1
dns node.test MX 10 mx1.node.test
dns mx1.node.test A $sink1
link sink1 down
"""


@pytest.fixture
def sim_factory(procs, tmp_path, bindir):
    def make(topology):
        if not os.access(os.path.join(bindir, "etrnsim"), os.X_OK):
            pytest.fail("bin/etrnsim is not built")
        return sink_mod.Etrnsim(procs, tmp_path, bindir, topology).start()
    return make


def relay_for(make_etrnd, sim):
    return make_etrnd([("dns_server", "127.0.0.1:%d" % sim.dns_port),
                       ("smtp_port", str(sim.sink_port)),
                       ("smtp_connect_timeout", "5s")])


def queued(d, node="node.test"):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    return etrnd_mod.parse_queue(r.stdout).get(node, 0)


def test_flush_falls_through_to_the_secondary_mx_when_the_primary_is_down(make_etrnd, sim_factory):
    sim = sim_factory(TWO_MX)
    d = relay_for(make_etrnd, sim)
    data = {}
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        c.ehlo()
        for i in range(3):
            msgid = "sim-mx2-%d@etrnkit.test" % i
            data["<%s>" % msgid] = smtp.make_message(msgid, size=2000 * (i + 1))
            assert c.send_message("s@example.org", ["u@node.test"], data["<%s>" % msgid]) == 250
    finally:
        c.close()
    assert sim.deliveries() == [], "held mail reached a sink before ETRN"

    code, text = smtp.etrn("127.0.0.1", d.port, "node.test")
    assert code == 253, text
    net.wait_until(lambda: len(sim.deliveries("sink2")) >= 3, 30, "3 deliveries at sink2")
    net.wait_until(lambda: queued(d) == 0, 20, "an empty queue")
    recs = sim.deliveries("sink2")
    assert sorted(r["message_id"] for r in recs) == sorted(data)
    assert sim.deliveries("sink1", status=None) == []
    for r in recs:
        assert r["peer"].startswith("127.0.0.1:"), r
        assert r["mail_from"] == "s@example.org" and r["rcpts"] == ["u@node.test"], r
        # The journal's SHA-256 covers what arrived: etrnd's Received: line + the original.
        original = smtp.crlf(data[r["message_id"]])
        assert 40 < r["size"] - len(original) < 400, r
    assert max(collections.Counter(r["message_id"] for r in recs).values()) == 1


def test_mail_stays_queued_while_the_only_mx_is_down_and_goes_when_it_is_up(make_etrnd, sim_factory):
    sim = sim_factory(ONE_MX)
    d = relay_for(make_etrnd, sim)
    sent = tools.inject(d.port, 2, "sim-down")
    assert len(sent) == 2

    assert smtp.etrn("127.0.0.1", d.port, "node.test")[0] == 253
    # The attempt fails (connection refused): temporary, so the mail stays, no bounce.
    # etrnd logs one `to=<...> ... status=WORD` line per entry when its attempt ends.
    net.wait_until(lambda: len(re.findall(r"to=<u@node.test>.*status=\w+", d.log())) >= 2, 30,
                   "etrnd to log the end of both delivery attempts")
    assert queued(d) == 2, "a temporary failure removed mail from the queue:\n" + d.log()[-3000:]
    assert "status=deferred" in d.log()
    assert sim.deliveries(status=None) == []

    sim.tell("link sink1 up")
    code, text = smtp.etrn("127.0.0.1", d.port, "node.test")
    assert code == 253, text
    net.wait_until(lambda: len(sim.deliveries("sink1")) >= 2, 30, "2 deliveries at sink1")
    net.wait_until(lambda: queued(d) == 0, 20, "an empty queue")
    got = collections.Counter(r["message_id"] for r in sim.deliveries("sink1"))
    assert set(got) == set(sent) and max(got.values()) == 1, got
    # No bounce went anywhere: the only deliveries are the two messages.
    assert len(sim.deliveries(status=None)) == 2



def test_flush_uses_the_most_preferred_mx_when_all_are_up(make_etrnd, sim_factory):
    # Listed in reverse order so that "first record wins" is not mistaken for preference.
    sim = sim_factory("""sink sink1
sink sink2
dns node.test MX 20 mx2.node.test
dns node.test MX 10 mx1.node.test
dns mx1.node.test A $sink1
dns mx2.node.test A $sink2
""")
    d = relay_for(make_etrnd, sim)
    sent = tools.inject(d.port, 4, "sim-pref")
    assert len(sent) == 4
    assert smtp.etrn("127.0.0.1", d.port, "node.test")[0] == 253
    net.wait_until(lambda: len(sim.deliveries(status=None)) >= 4, 30, "4 deliveries")
    net.wait_until(lambda: queued(d) == 0, 20, "an empty queue")
    assert sorted(r["message_id"] for r in sim.deliveries("sink1")) == sorted(sent)
    assert sim.deliveries("sink2", status=None) == [], "mail went to the MX 20 host"


def test_permanent_failure_bounces_to_the_sender_and_leaves_the_queue(make_etrnd, sim_factory):
    """sink1 (node.test's MX) answers 550 to every RCPT: etrnd sends a DSN (RFC 3464) to
    the sender, whose domain's MX is sink2, and the message leaves the queue."""
    sim = sim_factory("""sink sink1 reject-rcpt 550
sink sink2
dns node.test MX 10 mx1.node.test
dns mx1.node.test A $sink1
dns sender.test MX 10 mx.sender.test
dns mx.sender.test A $sink2
""")
    d = relay_for(make_etrnd, sim)
    r = tools.swaks(d.port, to="u@node.test", sender="alice@sender.test",
                    msgid="sim-bounce@etrnkit.test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert smtp.etrn("127.0.0.1", d.port, "node.test")[0] == 253
    net.wait_until(lambda: sim.deliveries("sink2"), 30, "a DSN at the sender's MX (sink2)")
    net.wait_until(lambda: queued(d) == 0, 20, "node.test's queue to empty")
    dsn = sim.deliveries("sink2")
    assert len(dsn) == 1, dsn
    assert dsn[0]["mail_from"] in ("", "<>"), "a DSN must have the null sender: %r" % dsn[0]
    assert dsn[0]["rcpts"] == ["alice@sender.test"], dsn[0]
    assert sim.deliveries("sink1") == []


def test_one_message_for_two_nodes_is_flushed_per_node(make_etrnd, sim_factory):
    sim = sim_factory("""sink sink1
sink sink2
dns node.test MX 10 mx1.node.test
dns mx1.node.test A $sink1
dns other.test MX 10 mx1.other.test
dns mx1.other.test A $sink2
""")
    d = relay_for(make_etrnd, sim)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        c.ehlo()
        assert c.send_message("s@example.org", ["u@node.test", "o@other.test", "v@node.test"],
                              smtp.make_message("sim-two@etrnkit.test")) == 250
    finally:
        c.close()
    assert queued(d, "node.test") == 1 and queued(d, "other.test") == 1
    assert smtp.etrn("127.0.0.1", d.port, "node.test")[0] == 253
    net.wait_until(lambda: sim.deliveries("sink1"), 30, "the node.test copy at sink1")
    net.wait_until(lambda: queued(d, "node.test") == 0, 20, "node.test's queue to empty")
    rec = sim.deliveries("sink1")
    assert len(rec) == 1 and sorted(rec[0]["rcpts"]) == ["u@node.test", "v@node.test"], rec
    assert sim.deliveries("sink2") == [] and queued(d, "other.test") == 1
    assert smtp.etrn("127.0.0.1", d.port, "other.test")[0] == 253
    net.wait_until(lambda: sim.deliveries("sink2"), 30, "the other.test copy at sink2")
    rec2 = sim.deliveries("sink2")
    assert len(rec2) == 1 and rec2[0]["rcpts"] == ["o@other.test"], rec2
    assert rec2[0]["sha256"] == rec[0]["sha256"], "the two copies differ"
