"""A plain socket SMTP client for the harness: exact bytes in, replies out.

    c = SmtpConn("127.0.0.1", port)            # reads the greeting
    code, lines = c.cmd("EHLO client.test")     # lines: text after the code, one per line
    c.send_raw(b"bad\\x00line\\r\\n"); code, _ = c.read_reply()
    code = c.send_message("s@example.org", ["u@node.test"], data_bytes)
    c.close()

Every read has a socket timeout (20 s by default): a missing reply is an error, never a hang.
read_reply returns (None, []) when the server closed the connection cleanly.
"""
import socket

from . import net


class SmtpConn:
    def __init__(self, host, port, timeout=20.0, read_greeting=True, source=None):
        net.check_loopback(host)
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=src)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.greeting = self.read_reply() if read_greeting else None

    def _readline(self, limit=1 << 20):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("reply line longer than %d bytes" % limit)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def read_reply(self):
        """(code, [text lines]) of one multi-line reply; (None, []) on a clean close."""
        lines = []
        while True:
            try:
                line = self._readline()
            except ConnectionResetError:
                line = None
            if line is None:
                return None, lines
            if len(line) < 3 or not line[:3].isdigit():
                raise ValueError("malformed reply line %r" % line)
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), lines

    def send_raw(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        self.send_raw(line.encode("latin-1") + b"\r\n")
        return self.read_reply()

    def ehlo(self, name="client.test"):
        code, lines = self.cmd("EHLO " + name)
        return code, [l.split(" ")[0].upper() for l in lines[1:]]

    def send_message(self, sender, rcpts, data):
        """One transaction (no pipelining); returns the reply code to the final dot,
        or the first failing code."""
        code, _ = self.cmd("MAIL FROM:<%s>" % sender)
        if code != 250:
            return code
        ok = 0
        for r in rcpts:
            code, _ = self.cmd("RCPT TO:<%s>" % r)
            if code in (250, 251):
                ok += 1
        if not ok:
            return code
        code, _ = self.cmd("DATA")
        if code != 354:
            return code
        self.send_raw(dot_stuff(data) + b".\r\n")
        code, _ = self.read_reply()
        return code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def crlf(data):
    """The text with CRLF line endings, ending with CRLF (as it travels, before stuffing)."""
    if isinstance(data, str):
        data = data.encode()
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(l + b"\r\n" for l in lines)


def dot_stuff(data):
    """CRLF line endings, leading dots doubled, ending with CRLF."""
    if isinstance(data, str):
        data = data.encode()
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


def make_message(msgid, to="u@node.test", sender="s@example.org", body=None, size=0):
    """A small RFC 5322 message with the given Message-ID (no angle brackets)."""
    body = body if body is not None else "Test message %s.\n" % msgid
    if size and len(body) < size:
        line = "x" * 76 + "\n"
        body += line * ((size - len(body)) // len(line) + 1)
    return ("From: <%s>\nTo: <%s>\nSubject: etrnkit %s\nMessage-ID: <%s>\n\n%s"
            % (sender, to, msgid, msgid, body)).encode()


def inject_pipelined(host, port, messages, timeout=60.0):
    """Sends [(sender, [rcpts], data)] over one connection with PIPELINING (RFC 2920): each
    message's text, its final dot and the next transaction's MAIL/RCPT/DATA go in one
    write. Returns the number of messages that got 250 after the final dot."""
    c = SmtpConn(host, port, timeout=timeout)
    try:
        c.ehlo()
        accepted = 0
        pending = b""
        for sender, rcpts, data in messages:
            out = [pending, ("MAIL FROM:<%s>\r\n" % sender).encode()]
            out += [("RCPT TO:<%s>\r\n" % r).encode() for r in rcpts]
            out.append(b"DATA\r\n")
            c.send_raw(b"".join(out))
            if pending and c.read_reply()[0] == 250:
                accepted += 1
            codes = [c.read_reply()[0] for _ in range(len(rcpts) + 2)]
            pending = dot_stuff(data) + b".\r\n" if codes[-1] == 354 else b""
        if pending:
            c.send_raw(pending)
            if c.read_reply()[0] == 250:
                accepted += 1
        c.cmd("QUIT")
        return accepted
    finally:
        c.close()


def etrn(host, port, node, ehlo=True):
    """One session: EHLO, ETRN node, QUIT. Returns (code, text of the ETRN reply)."""
    c = SmtpConn(host, port)
    try:
        if ehlo:
            c.ehlo()
        code, lines = c.cmd("ETRN " + node)
        try:
            c.cmd("QUIT")
        except OSError:
            pass
        return code, " ".join(lines)
    finally:
        c.close()
