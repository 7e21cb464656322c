"""The outside tools the harness drives: swaks (injects mail), fetchmail (sends ETRN the
way a real site does), openssl (a throw-away certificate).

    r = swaks(port, to="u@node.test", msgid="m1@etrnkit.test", body="hello")  # r.returncode 0 = 250
    r = fetchmail_etrn(port, ["node.test"], workdir)                            # r.stdout: the dialogue
    cert, key = make_cert(workdir)
"""
import os

from . import procs as procs_mod


def swaks(port, to="u@node.test", sender="s@example.org", msgid=None, body=None,
          server="127.0.0.1", extra=(), timeout=60):
    argv = ["swaks", "--server", "%s:%d" % (server, port), "--to", to, "--from", sender,
            "--helo", "client.test", "--timeout", "20"]
    if msgid:
        argv += ["--header", "Message-Id: <%s>" % msgid]
    if body is not None:
        argv += ["--body", body]
    argv += list(extra)
    return procs_mod.run(argv, timeout=timeout)


def fetchmail_etrn(port, domains, workdir, server="127.0.0.1", timeout=60):
    """`fetchmail -p ETRN` against server:port asking for domains; a private rc file and
    HOME, in the foreground, verbose. Returns the CompletedProcess."""
    home = os.path.join(str(workdir), "fetchmail-home")
    os.makedirs(home, exist_ok=True)
    rc = os.path.join(home, "fetchmailrc")
    with open(rc, "w") as f:
        f.write("# empty: everything is on the command line\n")
    os.chmod(rc, 0o600)
    argv = ["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "-v",
            "--pidfile", os.path.join(home, "fetchmail.pid"),
            "-p", "ETRN", "--service", str(port), "--timeout", "20",
            "--fetchdomains", ",".join(domains), server]
    return procs_mod.run(argv, timeout=timeout,
                         env={"HOME": home, "FETCHMAILHOME": home, "LC_ALL": "C"})


def make_cert(workdir):
    """A self-signed RSA certificate for CN=localhost valid one day: (cert path, key path)."""
    cert = os.path.join(str(workdir), "cert.pem")
    key = os.path.join(str(workdir), "key.pem")
    r = procs_mod.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                       "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                      timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: " + r.stderr)
    return cert, key


def inject(port, count, prefix, to="u@node.test", server="127.0.0.1"):
    """Sends count messages with swaks, Message-ID <prefix-I@etrnkit.test>; returns the
    Message-IDs (with <>) of those swaks saw accepted (exit 0: 250 after the final dot)."""
    accepted = []
    for i in range(count):
        msgid = "%s-%d@etrnkit.test" % (prefix, i)
        r = swaks(port, to=to, msgid=msgid, body="message %s number %d" % (prefix, i),
                  server=server)
        if r.returncode == 0:
            accepted.append("<%s>" % msgid)
    return accepted
