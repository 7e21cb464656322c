"""etrnd end to end: mail injected with swaks is held for the node, fetchmail's ETRN mode
releases it, the node's MX (found through a real DNS server) receives every message once,
and nothing goes to the address the ETRN came from."""
import collections

from lib import etrnd as etrnd_mod, net, smtp, tools
from conftest import MX_ADDR


def node_count(d, node):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    return etrnd_mod.parse_queue(r.stdout).get(node, 0)


def test_etrnd_holds_mail_until_fetchmail_sends_etrn(relay, tmp_path):
    sent = tools.inject(relay.port, 3, "held")
    assert len(sent) == 3, "swaks did not get 250 for every message"

    # Control: mail for a domain that is not held goes out at once through the same
    # DNS and sink, so the held messages would have been delivered had etrnd not held them.
    assert tools.inject(relay.port, 1, "direct", to="d@direct.test") == ["<direct-0@etrnkit.test>"]
    relay.sink.wait_count(1)
    assert relay.sink.message_ids() == ["<direct-0@etrnkit.test>"]
    assert node_count(relay, "node.test") == 3

    r = tools.fetchmail_etrn(relay.port, ["node.test"], tmp_path)
    dialogue = r.stdout + r.stderr
    assert "ETRN node.test" in dialogue, dialogue
    assert any(("ETRN< 25%d" % k) in dialogue for k in range(4)), dialogue

    relay.sink.wait_count(4)
    net.wait_until(lambda: node_count(relay, "node.test") == 0, 20, "node.test's queue to empty")
    ids = relay.sink.message_ids()[1:]
    assert sorted(ids) == sorted(sent)
    assert max(collections.Counter(relay.sink.message_ids()).values()) == 1, "a duplicate"
    assert all(m["local"] == MX_ADDR for m in relay.sink.messages)
    assert all(m["rcpts"] == ["u@node.test"] for m in relay.sink.messages[1:])
    assert relay.trap.count() == 0, "mail went to the ETRN client's address"


def test_etrnd_delivers_bodies_unchanged(relay, root):
    import glob
    import os
    files = sorted(glob.glob(os.path.join(root, "fixtures", "messages", "*.eml")))
    assert files, "no fixtures/messages/*.eml"
    bodies = {}
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        c = smtp.SmtpConn("127.0.0.1", relay.port)
        try:
            c.ehlo()
            assert c.send_message("s@example.org", ["u@node.test"], data) == 250, path
        finally:
            c.close()
        bodies[path] = smtp.crlf(data)
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] in (250, 252, 253)
    relay.sink.wait_count(len(files))
    got = [m["data"] for m in relay.sink.messages]
    for path, expected in bodies.items():
        # The relay may add trace headers (Received:) on top; the original text follows.
        assert any(g.endswith(expected) for g in got), "%s changed in transit" % path


def test_etrn_replies_follow_rfc1985(relay):
    assert len(tools.inject(relay.port, 2, "codes")) == 2
    code, text = smtp.etrn("127.0.0.1", relay.port, "node.test")
    assert code == 253 and "2" in text.split(), text
    code, text = smtp.etrn("127.0.0.1", relay.port, "other.test")
    assert code == 251, text
    code, text = smtp.etrn("127.0.0.1", relay.port, "not-served.example")
    assert code == 459, text
    code, text = smtp.etrn("127.0.0.1", relay.port, "-bad-.test")
    assert code == 501, text
    relay.sink.wait_count(2)
    assert relay.trap.count() == 0


def test_etrnd_queue_lists_nodes_with_counts(relay):
    assert len(tools.inject(relay.port, 3, "q-node")) == 3
    assert len(tools.inject(relay.port, 2, "q-other", to="o@other.test")) == 2
    r = relay.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    counts = etrnd_mod.parse_queue(r.stdout)
    assert counts.get("node.test") == 3, r.stdout
    assert counts.get("other.test") == 2, r.stdout
    assert relay.sink.count() == 0
