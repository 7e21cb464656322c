"""STARTTLS and AUTH, end to end with a throw-away self-signed certificate (openssl): AUTH
is offered only after TLS (unless auth_allow_plaintext), swaks authenticates with PLAIN
over TLS, a wrong password is refused, an authenticated stranger may relay, ETRN works
inside the TLS session, and QUIT under TLS still gets its 221."""
import base64
import os
import ssl

import pytest

from lib import smtp, tools

PLAIN_OK = base64.b64encode(b"\0site1\0s3cret-pass").decode()
PLAIN_BAD = base64.b64encode(b"\0site1\0wrong").decode()


def swaks_or_fail(port, **kw):
    r = tools.swaks(port, **kw)
    if "requires Net::SSLeay" in r.stderr:
        pytest.fail("swaks cannot do TLS: Debian's libnet-ssleay-perl is missing "
                    "(scripts/deps installs with --no-install-recommends)")
    return r


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tools.make_cert(tmp_path)
    pwfile = os.path.join(str(tmp_path), "passwords")
    with open(pwfile, "w") as f:
        f.write("site1:s3cret-pass\n")
    os.chmod(pwfile, 0o600)
    return [("tls_cert_file", cert), ("tls_key_file", key), ("auth_password_file", pwfile)]


@pytest.fixture
def tls_relay(make_etrnd, dns, sink, trap, sink_port, tls_files):
    # Only 127.0.0.1 is in mynetworks: clients from 127.0.0.5 relay only after AUTH.
    d = make_etrnd(tls_files + [("mynetworks", "127.0.0.1/32")], dns=dns, sink_port=sink_port)
    d.sink, d.trap = sink, trap
    return d


def starttls(c):
    code, _ = c.cmd("STARTTLS")
    assert code == 220
    assert c.buf == b"", "bytes after the 220 to STARTTLS (RFC 3207 §4.2 injection)"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")


def test_auth_is_offered_only_after_starttls(tls_relay):
    c = smtp.SmtpConn("127.0.0.1", tls_relay.port)
    try:
        code, exts = c.ehlo()
        assert code == 250 and "STARTTLS" in exts
        assert not any(e.startswith("AUTH") for e in exts), exts
        code, _ = c.cmd("AUTH PLAIN " + PLAIN_OK)
        assert code in (503, 530, 538, 454, 504), code
        starttls(c)
        code, exts = c.ehlo()
        assert code == 250 and "AUTH" in exts, exts
        assert "STARTTLS" not in exts
        assert c.cmd("AUTH PLAIN " + PLAIN_BAD)[0] == 535
        assert c.cmd("AUTH PLAIN " + PLAIN_OK)[0] == 235
        assert c.cmd("AUTH PLAIN " + PLAIN_OK)[0] == 503, "a second AUTH was accepted"
    finally:
        c.close()


def test_auth_login_over_tls(tls_relay):
    c = smtp.SmtpConn("127.0.0.1", tls_relay.port)
    try:
        c.ehlo()
        starttls(c)
        c.ehlo()
        assert c.cmd("AUTH LOGIN")[0] == 334
        assert c.cmd(base64.b64encode(b"site1").decode())[0] == 334
        assert c.cmd(base64.b64encode(b"s3cret-pass").decode())[0] == 235
    finally:
        c.close()


def test_swaks_sends_over_tls_with_auth_and_etrn_works_after_tls(tls_relay):
    r = swaks_or_fail(tls_relay.port, msgid="tls-1@etrnkit.test",
                      extra=["--tls", "--auth", "PLAIN", "--auth-user", "site1",
                             "--auth-password", "s3cret-pass"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout and "235 " in r.stdout, r.stdout
    r = swaks_or_fail(tls_relay.port, msgid="tls-bad@etrnkit.test",
                      extra=["--tls", "--auth", "PLAIN", "--auth-user", "site1",
                             "--auth-password", "wrong"])
    assert r.returncode != 0 and "535" in r.stdout, r.stdout

    c = smtp.SmtpConn("127.0.0.1", tls_relay.port)
    try:
        c.ehlo()
        starttls(c)
        c.ehlo()
        code, text = c.cmd("ETRN node.test")
        assert code == 253, text
    finally:
        c.close()
    tls_relay.sink.wait_count(1)
    assert tls_relay.sink.message_ids() == ["<tls-1@etrnkit.test>"]
    # etrnd's trace header says the message came over TLS with AUTH (ESMTPSA, RFC 3848).
    assert b"with ESMTPSA" in tls_relay.sink.messages[0]["data"].split(b"\r\n\r\n")[0]
    assert tls_relay.trap.count() == 0


def test_authenticated_stranger_may_relay_and_anonymous_may_not(tls_relay):
    auth = ["--tls", "--auth", "PLAIN", "--auth-user", "site1", "--auth-password", "s3cret-pass",
            "--local-interface", "127.0.0.5"]
    r = swaks_or_fail(tls_relay.port, to="x@direct.test", msgid="auth-relay@etrnkit.test",
                      extra=auth)
    assert r.returncode == 0, r.stdout + r.stderr
    r = swaks_or_fail(tls_relay.port, to="x@direct.test", msgid="anon-relay@etrnkit.test",
                      extra=["--tls", "--local-interface", "127.0.0.5"])
    assert r.returncode != 0 and "5.7.1" in r.stdout, r.stdout
    tls_relay.sink.wait_count(1)
    assert tls_relay.sink.message_ids() == ["<auth-relay@etrnkit.test>"]


def test_quit_in_a_tls_session_gets_221(tls_relay):
    c = smtp.SmtpConn("127.0.0.1", tls_relay.port)
    try:
        c.ehlo()
        starttls(c)
        c.ehlo()
        code, lines = c.cmd("QUIT")
        assert code == 221, "QUIT under TLS: %r %r (see etrnd-bugs.md)" % (code, lines)
    finally:
        c.close()


def test_auth_allow_plaintext_offers_auth_without_tls(make_etrnd, dns, sink, sink_port, tls_files):
    d = make_etrnd([tls_files[2], ("auth_allow_plaintext", "yes"), ("mynetworks", "127.0.0.1/32")],
                   dns=dns, sink_port=sink_port)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        code, exts = c.ehlo()
        assert "AUTH" in exts and "STARTTLS" not in exts, exts
        assert c.cmd("AUTH PLAIN " + PLAIN_OK)[0] == 235
    finally:
        c.close()
    r = tools.swaks(d.port, to="x@direct.test", msgid="plain-auth@etrnkit.test",
                    extra=["--auth", "PLAIN", "--auth-user", "site1", "--auth-password",
                           "s3cret-pass", "--local-interface", "127.0.0.5"])
    assert r.returncode == 0, r.stdout + r.stderr
    sink.wait_count(1)
    assert sink.message_ids() == ["<plain-auth@etrnkit.test>"]


def test_without_auth_allow_plaintext_no_auth_in_the_clear(make_etrnd, dns, sink_port, tls_files):
    d = make_etrnd([tls_files[2]], dns=dns, sink_port=sink_port)
    c = smtp.SmtpConn("127.0.0.1", d.port)
    try:
        code, exts = c.ehlo()
        assert code == 250 and "AUTH" not in exts, exts
        assert c.cmd("AUTH PLAIN " + PLAIN_OK)[0] in (503, 530, 538, 454, 504)
    finally:
        c.close()


def test_commands_pipelined_after_starttls_are_discarded(tls_relay):
    """RFC 3207 §4.2 / CVE-2011-0411: plaintext sent together with STARTTLS must not be
    executed inside the TLS session."""
    c = smtp.SmtpConn("127.0.0.1", tls_relay.port)
    try:
        c.ehlo()
        c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        code, _ = c.read_reply()
        assert code == 220
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.buf = b""
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        code, lines = c.cmd("EHLO client.test")
        assert code == 250 and len(lines) > 1, "first reply inside TLS: %r %r" % (code, lines)
        # Had the injected MAIL run, a second MAIL would be "nested" (503).
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    finally:
        c.close()
