#!/usr/bin/python3
"""run_etrnd_bench.py — etrnd against Postfix on the same machine, in the same run.

    bench/run_etrnd_bench.py --quick            # make bench: queues of 1k/10k, flush of 2k
    bench/run_etrnd_bench.py                    # full: queues of 1k/100k, flush of 10k
    bench/run_etrnd_bench.py --only etrnd --out build/bench/results.json

What is measured (each system gets fresh instances with the same settings and queues):
  accept   smtp-source (20 sessions, 4 KiB messages) into the relay, messages/s; the same
           injection fills every queue below, so each fill is another accept figure.
  latency  ETRN reply time, send to reply, over ROUNDS commands on one connection, with N
           messages queued for node.test among BG other nodes. The node's next hop is a
           tarpit (accepts, never greets), so the queue stays full while ETRNs repeat:
           median, p99, and the first ETRN alone. growth = median at the big N / at 1k.
  flush    one ETRN for a node holding F messages, next hop smtp-sink: messages/s from
           the ETRN until smtp-sink has counted all F.
The table (metric, etrnd, postfix, ratio etrnd/postfix) is printed and written as JSON.
No figure is asserted: this is measurement, not a test. Every wait has a deadline and
every process started here is stopped in `finally:` (Postfix: its own master only).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.environ.get("ETRNKIT_ROOT",
                                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))
BIN = os.path.abspath(os.environ.get("ETRNKIT_BIN", os.path.join(ROOT, "bin")))
sys.path.insert(0, os.path.join(ROOT, "harness"))

from lib import etrnd as etrnd_mod      # noqa: E402
from lib import net, postfix as postfix_mod, procs as procs_mod  # noqa: E402

NODE = "node.test"
SINK_ADDR = "127.0.0.2"
BG_NODES = ["bg%02d.test" % i for i in range(20)]
SESSIONS = 20
MSG_SIZE = 4096


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Tarpit:
    """Accepts TCP connections on addr:port and never says anything."""

    def __init__(self, addr, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.held, self.stopping = [], False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except (socket.timeout, OSError):
                continue

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


class SmtpSink:
    """Postfix's smtp-sink on addr:port; count() is its message counter (-c)."""

    def __init__(self, procs, addr, port):
        self.procs = procs
        self.proc = procs.start(["smtp-sink", "-c", "-u", "postfix", "%s:%d" % (addr, port), "256"],
                                "smtp-sink-%d" % port)
        net.wait_listening(addr, port, self.proc, what="smtp-sink")

    def count(self):
        text = self.procs.output(self.proc)
        i = text.rfind("mesg=")
        if i < 0:
            return 0
        digits = ""
        for ch in text[i + 5:]:
            if not ch.isdigit():
                break
            digits += ch
        return int(digits or 0)


def smtp_source(port, count, to, timeout):
    """Injects count messages with smtp-source; returns (accepted_ok, seconds)."""
    t0 = time.perf_counter()
    r = procs_mod.run(["smtp-source", "-s", str(min(SESSIONS, count)), "-m", str(count),
                       "-l", str(MSG_SIZE), "-f", "sender@example.org", "-t", to,
                       "127.0.0.1:%d" % port], timeout=timeout)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        log("smtp-source to %s: exit %d: %s" % (to, r.returncode, (r.stdout + r.stderr)[-500:]))
    return r.returncode == 0, dt


def etrn_latencies(port, node, rounds, timeout=60.0):
    """[seconds] for rounds ETRN commands on one connection, plus the reply codes seen."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline(65536)
            if not line:
                raise RuntimeError("connection closed")
            if line[3:4] != b"-":
                return line

    try:
        reply()
        s.sendall(b"EHLO bench.test\r\n")
        reply()
        cmd = ("ETRN %s\r\n" % node).encode()
        times, codes = [], {}
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(cmd)
            line = reply()
            times.append(time.perf_counter() - t0)
            codes[line[:3].decode()] = codes.get(line[:3].decode(), 0) + 1
        s.sendall(b"QUIT\r\n")
        return times, codes
    finally:
        f.close()
        s.close()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]


# --- the two systems, behind one interface -------------------------------------------

class EtrndSystem:
    name = "etrnd"

    def __init__(self, workroot, next_hop_port):
        self.dir = tempfile.mkdtemp(prefix="etrnd-", dir=workroot)
        self.procs = procs_mod.Procs(self.dir)
        settings = [("etrn_domains", ", ".join([NODE] + BG_NODES)),
                    ("log_level", "warn"), ("etrn_rate_limit", "0")]
        settings += [("route." + d, "%s:%d" % (SINK_ADDR, next_hop_port)) for d in [NODE] + BG_NODES]
        self.d = etrnd_mod.Etrnd(self.procs, self.dir, BIN, settings)
        self.port = self.d.port

    def start(self):
        self.d.start()

    def queued(self, node):
        r = self.d.queue()
        return etrnd_mod.parse_queue(r.stdout).get(node, 0) if r.returncode == 0 else -1

    def settle(self, expected, timeout):
        net.wait_until(lambda: self.queued(NODE) >= expected, timeout,
                       "etrnd to hold %d messages for %s" % (expected, NODE), interval=0.5)

    def stop(self):
        self.procs.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostfixSystem:
    name = "postfix"

    def __init__(self, workroot, next_hop_port):
        self.pf = postfix_mod.PostfixInstance(ROOT, SINK_ADDR, next_hop_port, [NODE] + BG_NODES)
        self.port = self.pf.port

    def start(self):
        self.pf.setup()
        self.pf.start()

    def _deferred_files(self):
        n = 0
        for _, _, files in os.walk(os.path.join(self.pf.dir, "queue", "deferred")):
            n += len(files)
        return n

    def settle(self, expected, timeout):
        # Every message passes the queue manager once and lands in the deferred queue.
        net.wait_until(lambda: self._deferred_files() >= expected, timeout,
                       "Postfix to defer %d messages" % expected, interval=0.5)

    def stop(self):
        self.pf.stop()


SYSTEMS = {"etrnd": EtrndSystem, "postfix": PostfixSystem}


def fill(system, n, bg, timeout):
    """n messages for NODE and bg spread over BG_NODES; returns accept msgs/s for NODE's part."""
    ok, dt = smtp_source(system.port, n, "u@" + NODE, timeout)
    rate = n / dt if ok else None
    per = max(1, bg // len(BG_NODES))
    for node in BG_NODES:
        smtp_source(system.port, per, "u@" + node, timeout)
    return rate, dt


def bench_latency(kind, workroot, n, rounds, deadline):
    port = net.free_port(SINK_ADDR)
    tarpit = Tarpit(SINK_ADDR, port)
    system = SYSTEMS[kind](workroot, port)
    out = {}
    try:
        system.start()
        bg = len(BG_NODES) * max(50, n // 100)
        log("%s: filling %d messages for %s and %d for %d other nodes" % (kind, n, NODE, bg, len(BG_NODES)))
        rate, dt = fill(system, n, bg, timeout=max(60, deadline - time.monotonic()))
        out["fill_rate"] = rate
        t0 = time.perf_counter()
        system.settle(n + bg, timeout=max(60, deadline - time.monotonic()))
        out["settle_s"] = time.perf_counter() - t0
        first, _ = etrn_latencies(system.port, NODE, 1)
        times, codes = etrn_latencies(system.port, NODE, rounds)
        out.update(first=first[0], median=statistics.median(times), p99=pct(times, 0.99),
                   codes=codes)
        log("%s: %d queued: ETRN median %.3f ms p99 %.3f ms first %.3f ms replies %s"
            % (kind, n, out["median"] * 1e3, out["p99"] * 1e3, out["first"] * 1e3, codes))
    finally:
        system.stop()
        tarpit.stop()
    return out


def bench_flush(kind, workroot, n, deadline):
    port = net.free_port(SINK_ADDR)
    sinkprocs = procs_mod.Procs(workroot)
    system = SYSTEMS[kind](workroot, port)
    out = {}
    try:
        sink = SmtpSink(sinkprocs, SINK_ADDR, port)
        system.start()
        log("%s: filling %d messages for the flush" % (kind, n))
        rate, dt = fill(system, n, 0, timeout=max(60, deadline - time.monotonic()))
        out["accept_rate"] = rate
        system.settle(n, timeout=max(60, deadline - time.monotonic()))
        assert sink.count() == 0, "mail left before the ETRN"
        t0 = time.perf_counter()
        first, _ = etrn_latencies(system.port, NODE, 1)
        net.wait_until(lambda: sink.count() >= n, max(60, deadline - time.monotonic()),
                       "%s to flush %d messages" % (kind, n), interval=0.05)
        dt = time.perf_counter() - t0
        out.update(flush_s=dt, flush_rate=n / dt)
        log("%s: flushed %d in %.2f s (%.0f msg/s); accepted at %.0f msg/s"
            % (kind, n, dt, n / dt, rate or 0))
    finally:
        system.stop()
        sinkprocs.stop_all()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small queues (make bench)")
    ap.add_argument("--only", choices=sorted(SYSTEMS), action="append")
    ap.add_argument("--rounds", type=int, default=200, help="ETRN commands per latency sample")
    ap.add_argument("--max-minutes", type=float, default=None, help="deadline for the whole run")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "results.json"))
    args = ap.parse_args()

    sizes = [1000, 10000] if args.quick else [1000, 100000]
    flush_n = 2000 if args.quick else 10000
    minutes = args.max_minutes or (20 if args.quick else 90)
    deadline = time.monotonic() + minutes * 60
    kinds = args.only or ["etrnd", "postfix"]
    if "etrnd" in kinds and not os.access(os.path.join(BIN, "etrnd"), os.X_OK):
        log("no %s/etrnd: build it with make programs; etrnd is left out" % BIN)
        kinds = [k for k in kinds if k != "etrnd"]
    if "postfix" in kinds and not postfix_mod.available():
        log("postfix is not installed; it is left out")
        kinds = [k for k in kinds if k != "postfix"]
    for tool in ("smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            log("%s is missing (Debian package postfix)" % tool)
            return 2

    workroot = tempfile.mkdtemp(prefix="etrnkit-bench-", dir="/tmp")
    os.chmod(workroot, 0o755)
    res = {k: {} for k in kinds}
    try:
        for kind in kinds:
            res[kind]["flush"] = bench_flush(kind, workroot, flush_n, deadline)
            for n in sizes:
                res[kind]["latency_%d" % n] = bench_latency(kind, workroot, n, args.rounds, deadline)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)

    small, big = sizes
    rows = []

    def row(metric, unit, key, sub, scale=1.0):
        vals = {}
        for k in ("etrnd", "postfix"):
            v = res.get(k, {}).get(key, {}).get(sub)
            vals[k] = None if v is None else v * scale
        ratio = (vals["etrnd"] / vals["postfix"]) if vals["etrnd"] and vals["postfix"] else None
        rows.append({"metric": metric, "unit": unit, "etrnd": vals["etrnd"],
                     "postfix": vals["postfix"], "ratio": ratio})

    row("accept, smtp-source %d sessions, %d B" % (SESSIONS, MSG_SIZE), "msg/s", "flush", "accept_rate")
    for n in sizes:
        row("accept while filling %d" % n, "msg/s", "latency_%d" % n, "fill_rate")
    for n in sizes:
        row("ETRN reply median, %d queued" % n, "ms", "latency_%d" % n, "median", 1e3)
        row("ETRN reply p99, %d queued" % n, "ms", "latency_%d" % n, "p99", 1e3)
        row("first ETRN reply, %d queued" % n, "ms", "latency_%d" % n, "first", 1e3)
    growth = {}
    for k in kinds:
        a = res[k].get("latency_%d" % small, {}).get("median")
        b = res[k].get("latency_%d" % big, {}).get("median")
        growth[k] = b / a if a and b else None
    rows.append({"metric": "ETRN median growth %dk/%dk" % (big // 1000, small // 1000), "unit": "x",
                 "etrnd": growth.get("etrnd"), "postfix": growth.get("postfix"), "ratio": None})
    row("flush of %d to smtp-sink" % flush_n, "msg/s", "flush", "flush_rate")
    row("flush of %d to smtp-sink" % flush_n, "s", "flush", "flush_s")

    def fmt(v):
        if v is None:
            return "-"
        return "%.3f" % v if abs(v) < 10 else "%.0f" % v

    width = max(len(r["metric"]) + len(r["unit"]) + 3 for r in rows)
    print("%-*s %12s %12s %8s" % (width, "metric", "etrnd", "postfix", "ratio"))
    for r in rows:
        print("%-*s %12s %12s %8s" % (width, "%s (%s)" % (r["metric"], r["unit"]),
                                      fmt(r["etrnd"]), fmt(r["postfix"]), fmt(r["ratio"])))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"mode": "quick" if args.quick else "full", "sizes": sizes, "flush": flush_n,
                   "rounds": args.rounds, "systems": kinds, "rows": rows, "raw": res,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=2)
    print("written: %s" % os.path.relpath(args.out, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
