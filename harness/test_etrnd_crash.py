"""Crash safety of etrnd: every message a client got 250 for survives SIGKILL, whether the
kill comes while mail is arriving, while it waits for ETRN, or in the middle of a flush.
A message may reach the node twice only if it was in flight (sent, its 250 not yet
seen by etrnd) at the moment of the kill. ETRNKIT_FAULT_ROUNDS sets the message count."""
import collections
import signal
import threading

import pytest

from lib import etrnd as etrnd_mod, net, smtp, tools
from conftest import FAULT_ROUNDS

pytestmark = pytest.mark.faults


def node_count(d, node="node.test"):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    return etrnd_mod.parse_queue(r.stdout).get(node, 0)


def restart_and_flush(d, tmp_path):
    d.start(write=False)
    r = tools.fetchmail_etrn(d.port, ["node.test"], tmp_path)
    assert "ETRN node.test" in r.stdout + r.stderr, r.stdout + r.stderr


def test_mail_accepted_before_sigkill_is_delivered_after_restart(relay, tmp_path):
    n = FAULT_ROUNDS
    accepted = tools.inject(relay.port, n, "crash-idle")
    assert len(accepted) == n
    relay.kill(signal.SIGKILL)
    assert relay.sink.count() == 0

    restart_and_flush(relay, tmp_path)
    relay.sink.wait_count(n, timeout=20 + n / 5)
    net.wait_until(lambda: node_count(relay) == 0, 20, "an empty queue for node.test")
    got = collections.Counter(relay.sink.message_ids())
    assert set(got) == set(accepted)
    assert max(got.values()) == 1, "duplicates without a flush in flight: %s" % got
    assert relay.trap.count() == 0


def test_mail_acknowledged_while_arriving_survives_sigkill(relay, tmp_path):
    n = max(FAULT_ROUNDS, 10)
    acked, stop = [], threading.Event()

    def sender():
        for i in range(n * 4):
            if stop.is_set():
                return
            msgid = "crash-arriving-%d@etrnkit.test" % i
            try:
                c = smtp.SmtpConn("127.0.0.1", relay.port, timeout=10)
                c.ehlo()
                if c.send_message("s@example.org", ["u@node.test"], smtp.make_message(msgid)) == 250:
                    acked.append("<%s>" % msgid)
                c.close()
            except (OSError, ValueError):
                return          # etrnd was killed under us

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    net.wait_until(lambda: len(acked) >= n or not t.is_alive(), 60, "%d acknowledged messages" % n)
    relay.kill(signal.SIGKILL)
    stop.set()
    t.join(30)
    acknowledged = list(acked)
    assert len(acknowledged) >= n

    restart_and_flush(relay, tmp_path)
    relay.sink.wait_count(len(acknowledged), timeout=20 + n / 5)
    net.wait_until(lambda: node_count(relay) == 0, 20, "an empty queue for node.test")
    got = collections.Counter(relay.sink.message_ids())
    missing = set(acknowledged) - set(got)
    assert not missing, "acknowledged but lost: %s" % sorted(missing)
    assert max(got.values()) == 1
    # Anything else delivered was sent but not acknowledged: allowed, never lost.
    assert relay.trap.count() == 0


def test_sigkill_during_a_flush_loses_nothing(relay, tmp_path):
    n = max(FAULT_ROUNDS, 6)
    accepted = tools.inject(relay.port, n, "crash-flush")
    assert len(accepted) == n
    relay.sink.hold_after = n // 2           # replies to the rest are withheld: in flight

    code, text = smtp.etrn("127.0.0.1", relay.port, "node.test")
    assert code in (250, 252, 253), text
    net.wait_until(lambda: relay.sink.held(), 30, "a delivery in flight at the sink")

    def replied_ones_removed():
        replied = sum(1 for m in relay.sink.messages if m["replied"])
        return node_count(relay) == n - replied
    # etrnd has acted on every 250 it was sent; only the withheld ones are in doubt.
    net.wait_until(replied_ones_removed, 20, "etrnd to remove what the sink acknowledged")
    in_flight = {relay.sink.message_ids()[i] for i, m in enumerate(relay.sink.messages)
                 if not m["replied"]}
    relay.kill(signal.SIGKILL)
    relay.sink.release()

    restart_and_flush(relay, tmp_path)
    net.wait_until(lambda: set(relay.sink.message_ids()) >= set(accepted), 20 + n / 5,
                   "every accepted message at the sink")
    net.wait_until(lambda: node_count(relay) == 0, 20, "an empty queue for node.test")
    got = collections.Counter(relay.sink.message_ids())
    assert set(got) == set(accepted)
    dups = {m: k for m, k in got.items() if k > 1}
    assert set(dups) <= in_flight, "duplicates of messages not in flight: %s" % dups
    assert all(k == 2 for k in dups.values()), dups
    assert relay.trap.count() == 0


def test_sigkill_in_the_middle_of_data_leaves_nothing_after_restart(relay, tmp_path):
    accepted = tools.inject(relay.port, 2, "crash-data-before")
    assert len(accepted) == 2
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<u@node.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Message-ID: <torn@etrnkit.test>\r\n\r\n" + b"t" * 200000)
        net.wait_until(lambda: relay.spool_files("tmp"), 20, "the torn message in tmp/")
        relay.kill(signal.SIGKILL)
    finally:
        c.close()
    assert relay.spool_files("tmp"), "nothing to recover: the test did not tear a write"
    relay.start(write=False)
    # Recovery at start-up removes the torn temporary files before serving.
    assert relay.spool_files("tmp") == [], relay.spool_files("tmp")
    assert relay.spool_files("corrupt") == []
    assert node_count(relay) == 2
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(2)
    net.wait_until(lambda: node_count(relay) == 0, 20, "an empty queue")
    assert sorted(relay.sink.message_ids()) == sorted(accepted)
