"""Crash injection: etrnd is killed with SIGKILL at random instants, ETRNKIT_FAULT_ROUNDS
rounds, each round bounded in time. A round has two kills:

  1. while accepting: two raw-socket clients send messages (one transaction after another;
     one client's messages go to node.test and other.test at once, so a kill can land in
     the middle of a two-entry commit), etrnd is killed after a random number of
     acknowledgements plus a random 0-15 ms;
  2. while flushing: ETRN node.test, etrnd is killed after the sink received a random
     number of the queued messages plus a random 0-15 ms.

After every restart the spool is checked against the books (`etrnd --queue`): it holds
every acknowledged, undelivered message, and at most the messages whose fate was in
doubt at the kill (final dot sent but no reply read; delivered but etrnd may not have
seen the 250). At the end everything is flushed and counted: lost acknowledged messages
must be 0; duplicates are reported and allowed only for messages that were in the
RFC 1047 window (the sink had the whole message, etrnd had not confirmed it).
ETRNKIT_FAULT_SEED fixes the random instants (the seed is printed with the figures).

The sink here is the test's own (not lib/sink.py) because it has to tell, per connection,
whether etrnd went on after a 250 (a later command on the same connection proves etrnd
read the 250 and, since smtp_client does not pipeline past the final dot, removed the
entry first). Figures are printed as `faults crash: ...` (pytest -s shows them).
"""
import collections
import os
import random
import re
import signal
import socketserver
import threading
import time

import pytest

from lib import etrnd as etrnd_mod, net, smtp
from conftest import FAULT_ROUNDS, MX_ADDR

pytestmark = pytest.mark.faults

NODE = "node.test"
OTHER = "other.test"
DOMAINS = (NODE, OTHER)
MSGID_RE = re.compile(rb"(?im)^Message-ID:\s*(<[^>\r\n]*>)")


# --------------------------------------------------------------------------- the sink


class _SinkHandler(socketserver.StreamRequestHandler):
    timeout = 30

    def _reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        with sink.lock:
            sink.conns += 1
            conn = sink.conns
        last = None          # the record whose 250 was the last thing we sent
        domain = None        # of this transaction's recipients (one domain per entry)
        try:
            self._reply("220 crash-sink ESMTP")
            while True:
                line = self.rfile.readline(1 << 16)
                if not line:
                    return
                if last is not None:
                    # etrnd sent something after reading our 250: it has acted on it.
                    with sink.lock:
                        last["followed"] = True
                    last = None
                verb = line[:4].upper()
                if verb == b"EHLO":
                    self.wfile.write(b"250-crash-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    self.wfile.flush()
                elif verb == b"RCPT":
                    m = re.search(rb"@([^>\s]+)>", line)
                    domain = m.group(1).decode().lower() if m else None
                    self._reply("250 ok")
                elif verb in (b"HELO", b"MAIL", b"RSET", b"NOOP"):
                    self._reply("250 ok")
                elif verb == b"DATA":
                    self._reply("354 go ahead")
                    body = []
                    while True:
                        dl = self.rfile.readline(1 << 20)
                        if not dl:
                            return
                        if dl in (b".\r\n", b".\n"):
                            break
                        body.append(dl[1:] if dl.startswith(b".") else dl)
                    m = MSGID_RE.search(b"".join(body))
                    rec = {"msgid": m.group(1).decode() if m else None, "conn": conn,
                           "domain": domain,
                           "replied": False, "followed": False}
                    with sink.lock:
                        sink.messages.append(rec)
                        delay = sink.delay
                    if delay:
                        time.sleep(random.uniform(0, delay))
                    self._reply("250 2.0.0 ok")
                    rec["replied"] = True
                    last = rec
                elif verb == b"QUIT":
                    self._reply("221 bye")
                    if last is not None:
                        with sink.lock:
                            last["followed"] = True
                    return
                else:
                    self._reply("502 not here")
        except OSError:
            return


class _SinkServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64


class CrashSink:
    def __init__(self, addr, port, delay=0.004):
        net.check_loopback(addr)
        self.addr, self.port, self.delay = addr, port, delay
        self.lock = threading.Lock()
        self.messages = []
        self.conns = 0
        self._server = _SinkServer((addr, port), _SinkHandler)
        self._server.sink = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def count(self):
        with self.lock:
            return len(self.messages)

    def snapshot(self):
        with self.lock:
            return [dict(m) for m in self.messages]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --------------------------------------------------------------------------- the clients


class Injector(threading.Thread):
    """Sends messages one transaction after another over one connection (reconnecting),
    until stopped or etrnd is gone, each to one recipient in every domain of `domains`
    (two domains: one message, two spool entries, committed together). acked: got 250
    after the dot; doubt: the dot was (perhaps partly) sent and no reply was read."""

    def __init__(self, port, prefix, books, domains):
        super().__init__(daemon=True)
        self.port, self.prefix, self.books, self.domains = port, prefix, books, tuple(domains)
        self.stop = threading.Event()
        self.n = 0

    def _one(self, c):
        self.n += 1
        msgid = "<%s-%d@etrnkit.test>" % (self.prefix, self.n)
        data = smtp.make_message(msgid[1:-1], size=random.choice((0, 300, 3000)))
        lines = ["MAIL FROM:<s@example.org>"] + ["RCPT TO:<u@%s>" % dom for dom in self.domains]
        for line in lines:
            code, _ = c.cmd(line)
            if code != 250:
                raise OSError("refused: %s" % code)
        code, _ = c.cmd("DATA")
        if code != 354:
            raise OSError("DATA refused: %s" % code)
        self.books.note_doubt(msgid, self.domains)
        c.send_raw(smtp.dot_stuff(data) + b".\r\n")
        code, _ = c.read_reply()
        if code == 250:
            self.books.note_acked(msgid)
        elif code is not None:
            self.books.note_refused(msgid)

    def run(self):
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                c = smtp.SmtpConn("127.0.0.1", self.port, timeout=5)
            except OSError:
                return              # etrnd is gone
            try:
                if c.greeting[0] != 220:
                    return
                c.ehlo()
                while not self.stop.is_set() and time.monotonic() < deadline:
                    self._one(c)
            except (OSError, ValueError):
                pass
            finally:
                c.close()


class Books:
    """What the clients know: acknowledged, refused, and in doubt (dot sent, no reply),
    and the domains each message went to."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked, self.doubt, self.refused = set(), set(), set()
        self.domains = {}

    def note_doubt(self, m, domains):
        with self.lock:
            self.doubt.add(m)
            self.domains[m] = domains

    def note_acked(self, m):
        with self.lock:
            self.doubt.discard(m)
            self.acked.add(m)

    def note_refused(self, m):
        with self.lock:
            self.doubt.discard(m)
            self.refused.add(m)

    def count(self, which, domain):
        with self.lock:
            return sum(1 for m in which if domain in self.domains[m])


def queued(d):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    counts = etrnd_mod.parse_queue(r.stdout)
    return {dom: counts.get(dom, 0) for dom in DOMAINS}, r.stdout


def etrn_node(d, node=NODE):
    code, text = smtp.etrn("127.0.0.1", d.port, node)
    assert code in (250, 251, 252, 253), "ETRN %s after restart: %s %s" % (node, code, text)


def restart(d):
    d.start(write=False)


# --------------------------------------------------------------------------- the test


@pytest.fixture
def crash_relay(make_etrnd, sink_port, trap):
    sink = CrashSink(MX_ADDR, sink_port)
    try:
        d = make_etrnd(settings=[("etrn_domains", ", ".join(DOMAINS))]
                       + [("route." + dom, "%s:%d" % (MX_ADDR, sink_port)) for dom in DOMAINS]
                       + [("smtp_port", str(sink_port)), ("smtp_connect_timeout", "5s")])
        d.sink, d.trap = sink, trap
        yield d
    finally:
        sink.stop()


def test_sigkill_at_random_instants_loses_no_acknowledged_mail(crash_relay):
    d = crash_relay
    sink = d.sink
    seed = int(os.environ.get("ETRNKIT_FAULT_SEED") or time.time())
    rnd = random.Random(seed)
    books = Books()
    q = {dom: 0 for dom in DOMAINS}     # entries known to be in the spool (exact, --queue)
    in_window = set()     # (msgid, domain) at the sink but not confirmed to etrnd at a kill
    kills = {"accepting": 0, "flushing": 0}
    consistency_failures = []
    t0 = time.monotonic()

    def check(label, lo, hi):
        now, text = queued(d)
        for dom in DOMAINS:
            if not lo[dom] <= now[dom] <= hi[dom]:
                consistency_failures.append("round %d %s: --queue says %d for %s, the books "
                                            "say %d..%d\n%s" % (rnd_no, label, now[dom], dom,
                                                                 lo[dom], hi[dom], text))
        return now

    for rnd_no in range(FAULT_ROUNDS):
        # ---- 1. kill while accepting: one client sends to NODE, one to NODE and OTHER
        acked_before, doubt_before = set(books.acked), set(books.doubt)
        injectors = [Injector(d.port, "r%d-c0" % rnd_no, books, [NODE]),
                     Injector(d.port, "r%d-c1" % rnd_no, books, [NODE, OTHER])]
        for t in injectors:
            t.start()
        target = rnd.randint(0, 12)
        net.wait_until(lambda: len(books.acked) - len(acked_before) >= target
                       or not any(t.is_alive() for t in injectors), 30,
                       "round %d: %d acknowledgements" % (rnd_no, target), interval=0.002)
        time.sleep(rnd.uniform(0, 0.015))
        d.kill(signal.SIGKILL)
        kills["accepting"] += 1
        for t in injectors:
            t.stop.set()
        for t in injectors:
            t.join(10)
            assert not t.is_alive(), "an injector did not stop"
        new_acked = books.acked - acked_before
        new_doubt = books.doubt - doubt_before

        restart(d)
        lo = {dom: q[dom] + books.count(new_acked, dom) for dom in DOMAINS}
        hi = {dom: lo[dom] + books.count(new_doubt, dom) for dom in DOMAINS}
        q = check("after the accepting kill", lo, hi)

        # ---- 2. kill while flushing NODE (OTHER waits for the end)
        before = sink.count()
        if q[NODE] == 0:
            continue
        etrn_node(d)
        target = rnd.randint(0, q[NODE])
        net.wait_until(lambda: sink.count() - before >= target, 30,
                       "round %d: %d deliveries of %d" % (rnd_no, target, q[NODE]), interval=0.002)
        time.sleep(rnd.uniform(0, 0.015))
        d.kill(signal.SIGKILL)
        kills["flushing"] += 1
        time.sleep(0.05)                     # the sink's last replies go out or fail
        got = [m for m in sink.snapshot()[before:] if m["domain"] == NODE]
        confirmed = [m for m in got if m["followed"]]
        unsure = [m for m in got if not m["followed"]]
        in_window |= {(m["msgid"], NODE) for m in unsure}

        restart(d)
        lo = dict(q, **{NODE: q[NODE] - len(confirmed) - len(unsure)})
        hi = dict(q, **{NODE: q[NODE] - len(confirmed)})
        q = check("after the flushing kill", lo, hi)

    # ---- the end: everything still queued goes out, then count
    for dom in DOMAINS:
        if q[dom]:
            etrn_node(d, dom)
    net.wait_until(lambda: not any(queued(d)[0].values()), 60 + sum(q.values()) / 5,
                   "an empty queue")
    time.sleep(0.2)
    delivered = collections.Counter((m["msgid"], m["domain"]) for m in sink.snapshot())
    wanted = {(m, dom) for m in books.acked for dom in books.domains[m]}
    lost = wanted - set(delivered)
    dups = {k: n for k, n in delivered.items() if n > 1}
    unexplained_dups = set(dups) - in_window
    sent = books.acked | books.doubt
    never_sent = {k for k in delivered if k[0] not in sent or k[1] not in books.domains.get(k[0], ())}
    print("\nfaults crash: seed %d, %d rounds, %d kills while accepting, %d while flushing, "
          "%d messages acknowledged (%d spool entries), %d in doubt at a kill, %d deliveries "
          "(%d distinct), lost %d, duplicates %d (all in the 250 window: %s), spool checks "
          "failed %d, %.0f s"
          % (seed, FAULT_ROUNDS, kills["accepting"], kills["flushing"], len(books.acked),
             len(wanted), len(books.doubt), sum(delivered.values()), len(delivered), len(lost),
             len(dups), "yes" if not unexplained_dups else "no", len(consistency_failures),
             time.monotonic() - t0))
    assert d.trap.count() == 0, "mail went to the requester's address"
    assert not lost, "acknowledged but lost: %s" % sorted(lost)[:20]
    assert not unexplained_dups, "duplicates outside the 250 window: %s" % sorted(unexplained_dups)[:20]
    assert not never_sent, "delivered but never sent whole by a client: %s" % sorted(never_sent)[:20]
    assert not consistency_failures, "\n".join(consistency_failures[:5])
