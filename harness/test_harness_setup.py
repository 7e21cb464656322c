"""The harness's own pieces work before they are used against etrnd: dnsmasq answers MX
for the nodes, the sink stores what swaks sends (dot-unstuffed, with its Message-ID), and
withheld replies stay withheld, sanitizer reports in etrnd's output are found, and the
per-test alarm of conftest interrupts a hang."""
import pytest

from lib import smtp, tools
from conftest import MX_ADDR


def test_dnsmasq_serves_mx_for_the_nodes(dns):
    assert dns.lookup("node.test", "MX") [0] == "10 mx1.node.test."
    assert dns.lookup("mx1.node.test", "A")[0] == MX_ADDR
    assert dns.lookup("unknown.test", "A")[0] == ""


def test_sink_stores_what_swaks_sends(sink, sink_port):
    r = tools.swaks(sink_port, server=MX_ADDR, msgid="setup-1@etrnkit.test",
                    body="line one\n.leading dot\nend")
    assert r.returncode == 0, r.stdout + r.stderr
    sink.wait_count(1)
    m = sink.messages[0]
    assert sink.message_ids() == ["<setup-1@etrnkit.test>"]
    assert m["rcpts"] == ["u@node.test"] and m["local"] == MX_ADDR
    assert b"\r\n.leading dot\r\n" in m["data"]


def test_sink_withholds_replies_after_the_limit(sink, sink_port):
    sink.hold_after = 1
    c = smtp.SmtpConn(MX_ADDR, sink_port)
    try:
        c.ehlo()
        assert c.send_message("s@example.org", ["u@node.test"], smtp.make_message("h1")) == 250
        c.sock.settimeout(0.5)
        try:
            c.send_message("s@example.org", ["u@node.test"], smtp.make_message("h2"))
            answered = True
        except OSError:
            answered = False
        assert not answered and len(sink.held()) == 1
        sink.release()
        c.sock.settimeout(20)
        assert c.read_reply()[0] == 250
    finally:
        c.close()


def test_sanitizer_reports_are_found_in_etrnd_output(tmp_path):
    from lib import etrnd as etrnd_mod
    d = etrnd_mod.Etrnd(None, tmp_path, "/nonexistent", name="etrnd")
    (tmp_path / "etrnd-1.out").write_text("info: ready\n")
    assert d.sanitizer_reports() == []
    (tmp_path / "etrnd-2.out").write_text(
        "==12==ERROR: LeakSanitizer: detected memory leaks\nserver/x.c:3:5: runtime error: shift\n")
    assert len(d.sanitizer_reports()) == 2


def test_a_hanging_test_is_stopped_by_the_alarm():
    """The autouse bound of conftest works: a 1-second alarm interrupts a blocking read."""
    import signal
    import socket
    import conftest
    if conftest.TEST_TIMEOUT <= 0:
        pytest.skip("ETRNKIT_TEST_TIMEOUT=0 switched the bound off")
    a, b = socket.socketpair()
    try:
        signal.alarm(1)
        try:
            a.recv(1)
            stopped = False
        except conftest.HarnessTimeout:
            stopped = True
        finally:
            signal.alarm(conftest.TEST_TIMEOUT)
        assert stopped
    finally:
        a.close()
        b.close()
