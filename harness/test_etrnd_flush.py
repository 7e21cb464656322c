"""What an ETRN flush delivers, end to end: swaks (or a raw client) injects, etrnd holds,
the `etrn` client or a raw ETRN releases; the node's MX sink (found through dnsmasq) gets
each message once, with the original header and body intact under one Received: line that
etrnd added, dot-stuffing undone exactly once; `ETRN node` flushes only that node,
`ETRN @node` the node and its subdomains, `ETRN #name` the domains of queue.NAME."""
import collections
import glob
import os
import re

import pytest

from lib import etrnd as etrnd_mod, net, procs as procs_mod, smtp, tools


def queue_counts(d):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    return etrnd_mod.parse_queue(r.stdout)


def barrier(d, tag):
    """Sends one message to direct.test (relayed at once) and waits for it: every delivery
    etrnd started before has had the time to reach the sink too (same sink, same order of
    events), so counting after the barrier sees duplicates that were on their way."""
    msgid = "barrier-%s@etrnkit.test" % tag
    r = tools.swaks(d.port, to="b@direct.test", msgid=msgid)
    assert r.returncode == 0, r.stdout + r.stderr
    net.wait_until(lambda: "<%s>" % msgid in d.sink.message_ids(), 20, "the barrier message")


def etrn_client(d, *args):
    return procs_mod.run([os.path.join(os.path.dirname(d.bin), "etrn"), "-s",
                          "127.0.0.1:%d" % d.port, "--timeout", "20s"] + list(args), timeout=60)


def test_etrn_client_releases_held_mail_once(relay):
    sent = tools.inject(relay.port, 4, "client")
    assert len(sent) == 4
    assert queue_counts(relay).get("node.test") == 4
    assert relay.sink.count() == 0, "held mail was delivered before any ETRN"

    r = etrn_client(relay, "node.test")
    assert r.returncode == 0, r.stdout + r.stderr
    relay.sink.wait_count(4)
    net.wait_until(lambda: queue_counts(relay).get("node.test", 0) == 0, 20, "an empty queue")
    # Nothing left: the client says so (exit 1) and etrnd answers 251.
    r = etrn_client(relay, "node.test")
    assert r.returncode == 1, r.stdout + r.stderr
    barrier(relay, "client")
    ids = relay.sink.message_ids()
    got = collections.Counter(ids[:-1])
    assert set(got) == set(sent) and max(got.values()) == 1, got
    assert relay.trap.count() == 0


def test_etrn_client_is_refused_for_a_foreign_node(relay):
    r = etrn_client(relay, "foreign.example")
    assert r.returncode == 4, r.stdout + r.stderr
    assert relay.sink.count() == 0


def test_delivered_message_keeps_envelope_header_and_body_under_one_received(relay, root):
    files = sorted(glob.glob(os.path.join(root, "fixtures", "messages", "*.eml")))
    assert files, "fixtures/messages/*.eml is empty"
    expected = {}
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        m = re.search(rb"(?im)^Message-ID:\s*(<[^>]*>)", data)
        assert m, "%s has no Message-ID" % path
        c = smtp.SmtpConn("127.0.0.1", relay.port)
        try:
            c.ehlo("fixture-sender.test")
            assert c.send_message("s@example.org", ["u@node.test"], data) == 250, path
        finally:
            c.close()
        expected[m.group(1).decode()] = smtp.crlf(data)
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(len(files))
    by_id = {i: m for i, m in zip(relay.sink.message_ids(), relay.sink.messages)}
    assert set(by_id) == set(expected)
    for msgid, original in expected.items():
        m = by_id[msgid]
        assert m["mail_from"] == "s@example.org" and m["rcpts"] == ["u@node.test"], m
        data = m["data"]
        assert data.endswith(original), "%s changed in transit" % msgid
        trace = data[:len(data) - len(original)]
        # Exactly one header field, a Received: naming the client and this relay.
        assert trace.startswith(b"Received: from fixture-sender.test"), trace
        assert b"by relay.etrnkit.test" in trace, trace
        assert len(re.findall(rb"(?m)^Received:", trace)) == 1, trace
        assert re.fullmatch(rb"Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", trace), trace


def test_dot_stuffing_survives_the_round_trip(relay):
    body = "first\n.\n..\n...three\n. \n.leading\nlast ."
    r = tools.swaks(relay.port, msgid="dots@etrnkit.test", body=body)
    assert r.returncode == 0, r.stdout + r.stderr
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(1)
    data = relay.sink.messages[0]["data"]
    assert b"\r\n\r\nfirst\r\n.\r\n..\r\n...three\r\n. \r\n.leading\r\nlast .\r\n" in data, data


def test_etrn_node_flushes_only_that_node(relay):
    sub = tools.inject(relay.port, 1, "only-sub", to="u@sub.node.test")
    top = tools.inject(relay.port, 1, "only-top", to="u@node.test")
    assert len(sub) == 1 and len(top) == 1
    code, text = smtp.etrn("127.0.0.1", relay.port, "sub.node.test")
    assert code == 253, text
    relay.sink.wait_count(1)
    barrier(relay, "only")
    assert relay.sink.message_ids() == sub + ["<barrier-only@etrnkit.test>"]
    assert queue_counts(relay).get("node.test") == 1


def test_etrn_at_node_flushes_the_node_and_its_subdomains(relay):
    held = []
    for to in ("u@node.test", "u@sub.node.test", "u@deep.sub.node.test"):
        got = tools.inject(relay.port, 1, "at-" + to.split("@")[1], to=to)
        assert len(got) == 1, to
        held += got
    other = tools.inject(relay.port, 1, "at-other", to="o@other.test")
    assert len(other) == 1
    counts = queue_counts(relay)
    assert counts.get("sub.node.test") == 1 and counts.get("deep.sub.node.test") == 1, counts

    code, text = smtp.etrn("127.0.0.1", relay.port, "@node.test")
    assert code == 253 and re.search(r"\b3\b", text), text
    relay.sink.wait_count(3)
    barrier(relay, "at")
    assert sorted(relay.sink.message_ids()[:-1]) == sorted(held)
    assert queue_counts(relay).get("other.test") == 1, "ETRN @node.test flushed other.test"
    assert relay.trap.count() == 0


@pytest.fixture
def queue_relay(make_etrnd, dns, sink, trap, sink_port):
    d = make_etrnd([("queue.uucp", "other.test")], dns=dns, sink_port=sink_port)
    d.sink, d.trap = sink, trap
    return d


def test_etrn_hash_queue_flushes_the_named_queue(queue_relay):
    d = queue_relay
    other = tools.inject(d.port, 2, "hash-other", to="o@other.test")
    node = tools.inject(d.port, 1, "hash-node", to="u@node.test")
    assert len(other) == 2 and len(node) == 1
    code, text = smtp.etrn("127.0.0.1", d.port, "#uucp")
    assert code in (250, 253), text
    d.sink.wait_count(2)
    barrier(d, "hash")
    assert sorted(d.sink.message_ids()[:-1]) == sorted(other)
    assert queue_counts(d).get("node.test") == 1
    code, text = smtp.etrn("127.0.0.1", d.port, "#nosuch")
    assert code == 459, text


def test_etrn_node_name_is_case_insensitive(relay):
    sent = tools.inject(relay.port, 2, "case", to="u@Node.Test")
    assert len(sent) == 2
    code, text = smtp.etrn("127.0.0.1", relay.port, "NODE.test")
    assert code == 253 and re.search(r"\b2\b", text), text
    relay.sink.wait_count(2)
    assert sorted(relay.sink.message_ids()) == sorted(sent)


def test_repeated_etrns_during_a_flush_deliver_each_message_once(relay):
    sent = tools.inject(relay.port, 10, "coalesce")
    assert len(sent) == 10
    relay.sink.delay_after_dot = 0.05       # keep the first flush running while more ETRNs come
    codes = [smtp.etrn("127.0.0.1", relay.port, "node.test")[0] for _ in range(5)]
    codes += [smtp.etrn("127.0.0.1", relay.port, "@node.test")[0] for _ in range(3)]
    assert codes[0] == 253 and all(c in (250, 251, 253) for c in codes), codes
    relay.sink.wait_count(10, timeout=60)
    net.wait_until(lambda: queue_counts(relay).get("node.test", 0) == 0, 30, "an empty queue")
    barrier(relay, "coalesce")
    got = collections.Counter(relay.sink.message_ids()[:-1])
    assert set(got) == set(sent)
    assert max(got.values()) == 1, "repeated ETRNs delivered twice: %s" % got


def test_a_large_message_and_998_octet_lines_arrive_intact(relay):
    import hashlib
    line = b"y" * 998
    big = smtp.make_message("big@etrnkit.test", size=3 * 1024 * 1024)
    edge = ("Subject: edge\nMessage-ID: <edge@etrnkit.test>\n\n").encode() + line + b"\n.\n" + line + b"\n"
    c = smtp.SmtpConn("127.0.0.1", relay.port, timeout=60)
    try:
        c.ehlo()
        assert c.send_message("s@example.org", ["u@node.test"], big) == 250
        assert c.send_message("s@example.org", ["u@node.test"], edge) == 250
        too_long = b"Subject: long\nMessage-ID: <long@etrnkit.test>\n\n" + b"z" * 999 + b"\n"
        assert c.send_message("s@example.org", ["u@node.test"], too_long) == 500
    finally:
        c.close()
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(2, timeout=60)
    by_id = dict(zip(relay.sink.message_ids(), relay.sink.messages))
    assert set(by_id) == {"<big@etrnkit.test>", "<edge@etrnkit.test>"}
    for msgid, original in (("<big@etrnkit.test>", big), ("<edge@etrnkit.test>", edge)):
        data = by_id[msgid]["data"]
        assert hashlib.sha256(data[len(data) - len(smtp.crlf(original)):]).digest() == \
            hashlib.sha256(smtp.crlf(original)).digest(), "%s changed in transit" % msgid
