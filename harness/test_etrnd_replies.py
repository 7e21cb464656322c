"""etrnd's replies, end to end over real sockets: ETRN's 250/251/253 (with the exact count),
459 for a node not held here, 500/501 for syntax; TURN 502, VRFY 252, HELP 214; a whole
pipelined session sent in one write gets its replies in order; and etrnd is not an open
relay (a client outside mynetworks gets 554 5.7.1 for a foreign domain)."""
import re

import pytest

from lib import smtp, tools


def etrn(d, arg, source=None):
    """(code, enhanced code, text) of `ETRN arg` in a fresh EHLO session."""
    c = smtp.SmtpConn("127.0.0.1", d.port, source=source)
    try:
        c.ehlo()
        code, lines = c.cmd("ETRN " + arg if arg is not None else "ETRN")
        c.cmd("QUIT")
    finally:
        c.close()
    text = " ".join(lines)
    enh = text.split(" ", 1)[0] if re.match(r"^\d\.\d{1,3}\.\d{1,3}\b", text) else None
    return code, enh, text


def test_etrn_with_mail_queued_answers_253_with_the_exact_count(relay):
    assert len(tools.inject(relay.port, 3, "count")) == 3
    code, enh, text = etrn(relay, "node.test")
    assert (code, enh) == (253, "2.0.0"), text
    assert re.search(r"\b3\b", text), "253 must carry the count 3: %r" % text
    assert "node.test" in text
    relay.sink.wait_count(3)
    assert relay.trap.count() == 0


def test_etrn_with_nothing_queued_answers_251(relay):
    code, enh, text = etrn(relay, "other.test")
    assert (code, enh) == (251, "2.0.0"), text
    assert relay.sink.count() == 0


def test_etrn_plain_reply_style_answers_250(make_etrnd, dns, sink, sink_port):
    d = make_etrnd([("etrn_reply", "plain")], dns=dns, sink_port=sink_port)
    assert etrn(d, "other.test")[0] == 250
    assert len(tools.inject(d.port, 1, "plain")) == 1
    code, _, text = etrn(d, "node.test")
    assert code == 250, text
    sink.wait_count(1)


@pytest.mark.parametrize("arg,code,enh", [
    ("foreign.example", 459, "4.7.1"),           # not a node held here
    ("@test", 459, "4.7.1"),                     # '@' too broad (one label)
    ("#nosuchqueue", 459, "4.5.4"),              # unknown named queue
    (None, 500, "5.5.2"),                        # no argument (RFC 1985 §7)
    ("", 500, "5.5.2"),
    ("bad..node.test", 501, "5.5.4"),
    ("node.test extra", 501, "5.5.4"),
    ("a" * 300 + ".test", 501, "5.5.4"),
])
def test_etrn_refusals_carry_their_codes(relay, arg, code, enh):
    got = etrn(relay, arg)
    assert got[:2] == (code, enh), got
    assert relay.sink.count() == 0


def test_etrn_inside_a_mail_transaction_is_refused_with_503(relay):
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert c.cmd("ETRN node.test")[0] == 503
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("ETRN node.test")[0] == 251
    finally:
        c.close()


def test_turn_vrfy_help_expn_and_unknown_commands(relay):
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        assert c.greeting[0] == 220
        code, exts = c.ehlo()
        assert code == 250
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "ETRN"):
            assert ext in exts, exts
        code, lines = c.cmd("TURN")
        assert code == 502 and lines[0].startswith("5.5.1"), lines
        code, lines = c.cmd("VRFY u@node.test")
        assert code == 252 and lines[0].startswith("2."), lines
        code, lines = c.cmd("HELP")
        assert code == 214 and "ETRN" in " ".join(lines), lines
        assert c.cmd("EXPN list")[0] == 502
        code, lines = c.cmd("XYZZY")
        assert code == 500 and lines[0].startswith("5.5."), lines
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd("QUIT")[0] == 221
        assert c.read_reply() == (None, []), "the connection stays open after QUIT"
    finally:
        c.close()


def test_helo_session_gets_single_line_250_and_etrn_works(relay):
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        code, lines = c.cmd("HELO client.test")
        assert code == 250 and len(lines) == 1, lines
        assert c.cmd("ETRN other.test")[0] == 251
    finally:
        c.close()


@pytest.fixture
def strict_relay(make_etrnd, dns, sink, trap, sink_port):
    """etrnd whose mynetworks is only 127.0.0.1: clients from 127.0.0.5 are strangers."""
    d = make_etrnd([("mynetworks", "127.0.0.1/32")], dns=dns, sink_port=sink_port)
    d.sink, d.trap = sink, trap
    return d


def test_not_an_open_relay(strict_relay):
    d = strict_relay
    c = smtp.SmtpConn("127.0.0.1", d.port, source="127.0.0.5")
    try:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        for rcpt in ("x@direct.test", "x@elsewhere.example", "x@node.test.evil.example",
                     "x%elsewhere.example@node.test.evil.example"):
            code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
            assert code in (550, 554) and lines[0].startswith("5.7.1"), (rcpt, code, lines)
        # Mail for the held node (and its subdomains) is accepted from anyone.
        assert c.cmd("RCPT TO:<u@node.test>")[0] == 250
        assert c.cmd("RCPT TO:<u@sub.node.test>")[0] == 250
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<x@direct.test>")[0] in (550, 554)
        assert c.cmd("DATA")[0] == 554, "DATA with no valid recipient"
    finally:
        c.close()
    # A client inside mynetworks may relay (the control).
    r = tools.swaks(d.port, to="x@direct.test", msgid="relayed@etrnkit.test")
    assert r.returncode == 0, r.stdout + r.stderr
    d.sink.wait_count(1)
    assert d.sink.message_ids() == ["<relayed@etrnkit.test>"]
    # swaks from a stranger is refused the same way.
    r = tools.swaks(d.port, to="x@direct.test", extra=["--local-interface", "127.0.0.5"])
    assert r.returncode != 0 and "5.7.1" in r.stdout, r.stdout


def test_a_pipelined_session_gets_every_reply_in_order(strict_relay):
    d = strict_relay
    c = smtp.SmtpConn("127.0.0.1", d.port, source="127.0.0.5")
    try:
        c.send_raw(b"EHLO client.test\r\nNOOP\r\nVRFY u@node.test\r\nETRN other.test\r\n"
                   b"MAIL FROM:<s@example.org>\r\nRCPT TO:<u@node.test>\r\n"
                   b"RCPT TO:<x@elsewhere.example>\r\nRCPT TO:<v@node.test>\r\nDATA\r\n")
        codes = [c.read_reply()[0] for _ in range(9)]
        assert codes == [250, 250, 252, 251, 250, 250, 554, 250, 354], codes
        c.send_raw(smtp.dot_stuff(smtp.make_message("pipelined@etrnkit.test")) +
                   b".\r\nETRN node.test\r\nTURN\r\nHELP\r\nQUIT\r\n")
        replies = [c.read_reply() for _ in range(5)]
        assert [r[0] for r in replies] == [250, 253, 502, 214, 221], replies
        assert re.search(r"\b1\b", replies[1][1][0]), replies[1]
    finally:
        c.close()
    d.sink.wait_count(1)
    m = d.sink.messages[0]
    assert d.sink.message_ids() == ["<pipelined@etrnkit.test>"]
    assert sorted(m["rcpts"]) == ["u@node.test", "v@node.test"]
    assert d.trap.count() == 0


def test_etrn_allow_limits_who_may_flush_a_node(make_etrnd, dns, sink, sink_port):
    d = make_etrnd([("etrn_allow", "node.test : 127.0.0.5"), ("etrn_allow", "other.test : any")],
                   dns=dns, sink_port=sink_port)
    assert len(tools.inject(d.port, 1, "allow")) == 1
    code, enh, text = etrn(d, "node.test", source="127.0.0.6")
    assert (code, enh) == (459, "4.7.1"), text
    assert etrn(d, "other.test", source="127.0.0.6")[0] == 251
    code, _, text = etrn(d, "node.test", source="127.0.0.5")
    assert code == 253, text
    sink.wait_count(1)


def test_etrn_rate_limit_answers_458(make_etrnd, dns, sink_port):
    d = make_etrnd([("etrn_rate_limit", "3"), ("etrn_rate_window", "1h")], dns=dns,
                   sink_port=sink_port)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        c.ehlo()
        codes = [c.cmd("ETRN other.test")[0] for _ in range(3)]
        assert codes == [251, 251, 251], codes
        code, lines = c.cmd("ETRN other.test")
        assert code == 458 and lines[0].startswith("4.7.0"), (code, lines)
    finally:
        c.close()
    # The limit is per client address: another address is still served.
    assert etrn(d, "other.test", source="127.0.0.7")[0] == 251


def test_size_limit_recipient_limit_and_loop_detection(make_etrnd, dns, sink, sink_port):
    d = make_etrnd([("message_size_limit", "20k"), ("max_recipients", "3")], dns=dns,
                   sink_port=sink_port)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        code, exts = c.ehlo()
        assert "SIZE" in exts
        # Declared too big: refused at MAIL.
        assert c.cmd("MAIL FROM:<s@example.org> SIZE=50000")[0] == 552
        # Not declared, but too big: refused after the dot, nothing stored.
        assert c.send_message("s@example.org", ["u@node.test"],
                              smtp.make_message("too-big@etrnkit.test", size=30000)) == 552
        # Recipient limit.
        assert c.cmd("MAIL FROM:<>")[0] == 250, "the null sender was refused"
        codes = [c.cmd("RCPT TO:<u%d@node.test>" % i)[0] for i in range(4)]
        assert codes == [250, 250, 250, 452], codes
        assert c.cmd("RSET")[0] == 250
        # A message that has been through too many relays (RFC 5321 §6.3) is refused.
        hops = "".join("Received: from hop%d.example by hop%d.example; "
                       "Mon, 2 Jun 2025 10:00:00 +0000\n" % (i, i + 1) for i in range(120))
        looped = (hops + "Message-ID: <loop@etrnkit.test>\n\nlooping\n").encode()
        code = c.send_message("s@example.org", ["u@node.test"], looped)
        assert code == 554, code
        assert c.send_message("s@example.org", ["u@node.test"],
                              smtp.make_message("fits@etrnkit.test", size=10000)) == 250
    finally:
        c.close()
    assert smtp.etrn("127.0.0.1", d.port, "node.test")[0] == 253
    sink.wait_count(1)
    assert sink.message_ids() == ["<fits@etrnkit.test>"]


def test_too_many_errors_end_the_session_with_421(make_etrnd, dns, sink_port):
    d = make_etrnd([("smtpd_max_errors", "5")], dns=dns, sink_port=sink_port)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        c.ehlo()
        codes = []
        for _ in range(10):
            code, _ = c.cmd("BOGUS")
            codes.append(code)
            if code in (None, 421):
                break
        assert 421 in codes and codes.index(421) <= 6, codes
        assert c.read_reply() == (None, []), "the connection stayed open after 421"
    finally:
        c.close()
    assert smtp.etrn("127.0.0.1", d.port, "other.test")[0] == 251, "etrnd stopped serving"


def test_sighup_applies_to_sessions_already_open(make_etrnd, dns, sink_port):
    import signal
    from lib import net
    d = make_etrnd([("etrn_domains", "node.test")], dns=dns, sink_port=sink_port)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        c.ehlo()
        assert c.cmd("ETRN other.test")[0] == 459
        d.settings = [(k, v) for k, v in d.settings if k != "etrn_domains"]
        d.settings.append(("etrn_domains", "node.test, other.test"))
        d.write_config()
        d.signal(signal.SIGHUP)
        net.wait_until(lambda: "reloaded" in d.log(), 20, "etrnd to log the reload")
        assert c.cmd("ETRN other.test")[0] == 251, "the open session kept the old settings"
    finally:
        c.close()
