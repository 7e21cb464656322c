"""A minimal SMTP sink for the harness: accepts every message and remembers it.

    sink = Sink("127.0.0.2", port).start()
    ... sink.wait_count(3) ... sink.messages[0]["data"], sink.message_ids() ...
    sink.stop()

Multi-line EHLO (PIPELINING, 8BITMIME, SIZE), dot-unstuffing, one record per message:
peer and local address, HELO name, envelope, the unstuffed body, whether the 250 was
sent. delay_after_dot makes a slow sink (the reply to the final dot waits); hold_after=K
withholds the reply to every message after the K-th until release(), which pins
deliveries "in flight" for crash tests.

Etrnsim (below) runs the simulator's sinks and DNS instead (bin/etrnsim -c TOPO): links
that go down and up, several MX hosts, and a journal of every delivery.
"""
import re
import socketserver
import threading
import time

from . import net

LINE_MAX = 1 << 20


class _Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def _reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        with sink.lock:
            sink.sessions += 1
        peer = self.client_address[0]
        local = self.request.getsockname()[0]
        helo, mail_from, rcpts = "", None, []
        try:
            self._reply("220 %s ESMTP etrnkit-harness-sink" % sink.name)
            while True:
                line = self.rfile.readline(LINE_MAX)
                if not line:
                    return
                cmd = line.decode("latin-1").rstrip("\r\n")
                verb = cmd[:4].upper()
                if verb == "EHLO":
                    helo = cmd[5:]
                    self.wfile.write(("250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                      "250 SIZE 104857600\r\n" % sink.name).encode())
                    self.wfile.flush()
                elif verb == "HELO":
                    helo = cmd[5:]
                    self._reply("250 %s" % sink.name)
                elif verb == "MAIL":
                    m = re.match(r"(?i)MAIL FROM:\s*<([^>]*)>", cmd)
                    mail_from, rcpts = (m.group(1) if m else cmd[10:]), []
                    self._reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    m = re.match(r"(?i)RCPT TO:\s*<([^>]*)>", cmd)
                    rcpts.append(m.group(1) if m else cmd[8:])
                    self._reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    if mail_from is None or not rcpts:
                        self._reply("503 5.5.1 need MAIL and RCPT")
                        continue
                    self._reply("354 go ahead")
                    body = []
                    while True:
                        dl = self.rfile.readline(LINE_MAX)
                        if not dl:
                            return          # vanished mid-DATA: nothing recorded
                        if dl in (b".\r\n", b".\n"):
                            break
                        if dl.startswith(b"."):
                            dl = dl[1:]
                        body.append(dl)
                    record = {"peer": peer, "local": local, "helo": helo,
                              "mail_from": mail_from, "rcpts": list(rcpts),
                              "data": b"".join(body), "time": time.time(), "replied": False}
                    with sink.lock:
                        sink.messages.append(record)
                        held = sink.hold_after is not None and len(sink.messages) > sink.hold_after
                    if held:
                        # The relay has sent the whole message and waits for our reply: this
                        # message is "in flight" until release() (or the relay dies).
                        sink.gate.wait(120)
                    if sink.delay_after_dot:
                        time.sleep(sink.delay_after_dot)
                    self._reply("250 2.0.0 Ok: queued")
                    record["replied"] = True
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    self._reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    self._reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    self._reply("221 2.0.0 Bye")
                    return
                else:
                    self._reply("502 5.5.2 command not implemented")
        except OSError:
            return


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


class Sink:
    def __init__(self, addr, port, name="sink.test", delay_after_dot=0.0, hold_after=None):
        net.check_loopback(addr)
        self.addr, self.port, self.name = addr, port, name
        self.delay_after_dot = delay_after_dot
        self.hold_after = hold_after      # after this many messages, withhold the 250s
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.messages = []
        self.sessions = 0
        self._server = None
        self._thread = None

    def start(self):
        self._server = _Server((self.addr, self.port), _Handler)
        self._server.sink = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def release(self):
        """Lets every withheld reply go and stops withholding."""
        with self.lock:
            self.hold_after = None
        self.gate.set()

    def held(self):
        """Messages received whose 250 has not been sent."""
        with self.lock:
            return [m for m in self.messages if not m["replied"]]

    def stop(self):
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def count(self):
        with self.lock:
            return len(self.messages)

    def wait_count(self, n, timeout=net.DEFAULT_TIMEOUT):
        net.wait_until(lambda: self.count() >= n, timeout,
                       "%d messages at the sink %s:%d (have %d)" % (n, self.addr, self.port, self.count()))

    def message_ids(self):
        """Message-ID header of every message received, in arrival order."""
        out = []
        with self.lock:
            for m in self.messages:
                found = re.search(rb"(?im)^Message-ID:\s*(<[^>\r\n]*>)", m["data"])
                out.append(found.group(1).decode() if found else None)
        return out


class Etrnsim:
    """The simulator as the node side of a test: `bin/etrnsim -c TOPO` with its DNS on a
    free loopback port, its sinks (127.0.0.2, .3, ... behind links) on a free common port,
    a journal file and a control socket.

        sim = Etrnsim(procs, workdir, bindir, "sink sink1\\ndns node.test MX 10 mx1.node.test\\n...").start()
        sim.dns_port, sim.sink_port; sim.tell("link sink1 up"); sim.deliveries(node="sink1")
    """

    def __init__(self, procs, workdir, bindir, topology, name="etrnsim", pool="127.0.0.2", nodes=4):
        import os
        self.procs, self.name = procs, name
        self.bin = os.path.join(str(bindir), "etrnsim")
        self.topo = os.path.join(str(workdir), name + ".topo")
        self.journal = os.path.join(str(workdir), name + ".journal")
        self.control = os.path.join(str(workdir), name + ".sock")
        with open(self.topo, "w") as f:
            f.write(topology)
        first = [int(x) for x in pool.split(".")]
        self.pool = ["127.0.0.%d" % (first[3] + i) for i in range(nodes)]
        self.dns_port = net.free_port("127.0.0.1", udp=True)
        self.sink_port = net.free_port(*self.pool)
        self.proc = None

    def start(self):
        self.proc = self.procs.start([self.bin, "-c", self.topo, "--dns", "127.0.0.1:%d" % self.dns_port,
                                      "--sink-port", str(self.sink_port), "--journal", self.journal,
                                      "--control", self.control, "--quiet"], self.name)
        net.wait_until(lambda: self._ready(), net.DEFAULT_TIMEOUT, "etrnsim to say ready")
        net.wait_listening("127.0.0.1", self.dns_port, self.proc, what="etrnsim's DNS (TCP)")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("etrnsim exited with %s:\n%s" % (self.proc.returncode, self.output()))
        return "ready" in self.output()

    def output(self):
        return self.procs.output(self.proc) if self.proc else ""

    def tell(self, line):
        """Sends one command over the control socket; returns etrnsim's answer (fails on error)."""
        import subprocess
        r = subprocess.run([self.bin, "--tell", self.control] + line.split(), capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError("etrnsim --tell %s: %s%s" % (line, r.stdout, r.stderr))
        return r.stdout

    def deliveries(self, node=None, status="accepted"):
        """Journal delivery records as dicts (sink, peer, status, code, mail_from, rcpts,
        message_id, size, sha256), optionally only one sink's and one status."""
        out = []
        try:
            with open(self.journal, encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")[:-1]     # a last line without LF is unfinished
        except OSError:
            return out
        for line in lines:
            f = line.split("\t")
            if not f or f[0] != "delivery" or len(f) < 12:
                continue
            rec = {"sink": f[2], "conn": f[3], "peer": f[4], "status": f[5], "code": f[6],
                   "mail_from": f[7], "rcpts": f[8].split(","), "message_id": _unescape(f[9]),
                   "size": int(f[10]), "sha256": f[11]}
            if (node is None or rec["sink"] == node) and (status is None or rec["status"] == status):
                out.append(rec)
        return out


def _unescape(field):
    """The journal's %XX escapes undone ('-' alone means empty)."""
    if field == "-":
        return ""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), field)
