"""STARTTLS and AUTH: AUTH is only offered after TLS, swaks authenticates over TLS, and
ETRN works inside the TLS session."""
import os
import ssl

import pytest

from lib import smtp, tools


@pytest.fixture
def tls_relay(make_etrnd, dns, sink, trap, sink_port, tmp_path):
    cert, key = tools.make_cert(tmp_path)
    pwfile = os.path.join(str(tmp_path), "passwords")
    with open(pwfile, "w") as f:
        f.write("site1:s3cret-pass\n")
    os.chmod(pwfile, 0o600)
    d = make_etrnd([("tls_cert_file", cert), ("tls_key_file", key),
                    ("auth_password_file", pwfile)], dns=dns, sink_port=sink_port)
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
        code, _ = c.cmd("AUTH PLAIN AHNpdGUxAHMzY3JldC1wYXNz")
        assert 500 <= code < 600 or code == 454 or code == 530, code
        starttls(c)
        code, exts = c.ehlo()
        assert code == 250 and any(e.startswith("AUTH") for e in exts), exts
        assert "STARTTLS" not in exts
        code, _ = c.cmd("AUTH PLAIN AHNpdGUxAHMzY3JldC1wYXNz")      # \0site1\0s3cret-pass
        assert code == 235
    finally:
        c.close()


def test_swaks_sends_over_tls_with_auth_and_etrn_works_after_tls(tls_relay):
    r = tools.swaks(tls_relay.port, msgid="tls-1@etrnkit.test",
                    extra=["--tls", "--auth", "PLAIN", "--auth-user", "site1",
                           "--auth-password", "s3cret-pass"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = tools.swaks(tls_relay.port, msgid="tls-bad@etrnkit.test",
                    extra=["--tls", "--auth", "PLAIN", "--auth-user", "site1",
                           "--auth-password", "wrong"])
    assert r.returncode != 0

    c = smtp.SmtpConn("127.0.0.1", tls_relay.port)
    try:
        c.ehlo()
        starttls(c)
        c.ehlo()
        code, text = c.cmd("ETRN node.test")
        assert code in (250, 252, 253), text
        c.cmd("QUIT")
    finally:
        c.close()
    tls_relay.sink.wait_count(1)
    assert tls_relay.sink.message_ids() == ["<tls-1@etrnkit.test>"]
    assert tls_relay.trap.count() == 0
