"""The private Postfix instance used as the benchmark baseline really is an ETRN relay:
it holds mail for a node until ETRN, then delivers it to the node's sink.

These tests check harness/postfix/setup-instance.sh (and fetchmail's ETRN mode, which the
etrnd tests use the same way), not etrnd.
"""
import pytest

from lib import net, postfix as postfix_mod, tools
from conftest import MX_ADDR, ROOT

pytestmark = pytest.mark.postfix


@pytest.fixture
def postfix_relay(sink, sink_port):
    if not postfix_mod.available():
        pytest.skip("postfix is not installed")
    pf = postfix_mod.PostfixInstance(ROOT, MX_ADDR, sink_port, ["node.test", "other.test"])
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()


def _deferred(pf, n):
    entries = pf.queue_ids()
    held = [e for e in entries if e.get("queue_name") == "deferred"]
    return len(held) >= n and held


def test_postfix_instance_holds_mail_until_etrn(postfix_relay, sink, trap, tmp_path):
    pf = postfix_relay
    sent = ["pf-%d@etrnkit.test" % i for i in range(3)]
    for i, msgid in enumerate(sent):
        r = tools.swaks(pf.port, to="u%d@node.test" % i, msgid=msgid, body="held %d" % i)
        assert r.returncode == 0, r.stdout + r.stderr

    net.wait_until(lambda: _deferred(pf, 3), 20, "3 deferred messages in Postfix")
    assert sink.count() == 0, "Postfix delivered before ETRN"

    r = tools.fetchmail_etrn(pf.port, ["node.test"], tmp_path)
    assert "ETRN node.test" in r.stdout + r.stderr
    assert "250" in r.stdout + r.stderr, r.stdout + r.stderr

    sink.wait_count(3)
    assert sorted(sink.message_ids()) == sorted("<%s>" % m for m in sent)
    assert trap.count() == 0
    net.wait_until(lambda: pf.queue_count() == 0, 20, "an empty Postfix queue")


def test_postfix_instance_flushes_only_the_named_node(postfix_relay, sink):
    pf = postfix_relay
    assert tools.swaks(pf.port, to="a@node.test", msgid="n1@etrnkit.test").returncode == 0
    assert tools.swaks(pf.port, to="b@other.test", msgid="o1@etrnkit.test").returncode == 0
    net.wait_until(lambda: _deferred(pf, 2), 20, "2 deferred messages in Postfix")

    r = pf.flush("other.test")
    assert r.returncode == 0, r.stderr
    sink.wait_count(1)
    assert sink.message_ids() == ["<o1@etrnkit.test>"]
    assert pf.queue_count() == 1
