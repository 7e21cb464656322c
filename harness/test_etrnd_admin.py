"""etrnd's command line and signals, end to end: --check-config on good and broken files
(file:line, exit 2, nothing started), --queue while the daemon runs (per-node counts,
ages and sizes; read-only: the spool is not touched), SIGTERM (a client in the middle of
DATA gets 421, the daemon exits, no half-written file remains, committed mail survives)."""
import collections
import os
import re
import shutil
import signal
import socket
import time

import pytest

from lib import net, procs as procs_mod, smtp, tools


def fixture_conf(root, name):
    return os.path.join(root, "fixtures", "etrnd", name)


# --------------------------------------------------------------------------- --check-config


def test_check_config_accepts_the_shipped_examples(etrnd_bin, root):
    for path in (os.path.join(root, "docs", "etrnd.conf.example"),
                 fixture_conf(root, "minimal.conf"), fixture_conf(root, "good.conf")):
        r = procs_mod.run([etrnd_bin, "-c", path, "--check-config"], timeout=30)
        assert r.returncode == 0, (path, r.stdout + r.stderr)


# (fixture file, line the error must name, a word the message must contain)
BROKEN = [
    ("unknown-key.conf", 6, "etrn_domian"),
    ("bad-listen.conf", 4, "listen"),
    ("bad-domain.conf", 5, "etrn_domains"),
    ("missing-equals.conf", 5, ""),
    ("bad-duration.conf", 6, "retry_interval"),
    ("bad-route.conf", 6, "route.node.test"),
]


@pytest.mark.parametrize("name,line,word", BROKEN, ids=[b[0] for b in BROKEN])
def test_check_config_refuses_a_broken_file_with_file_and_line(etrnd_bin, root, name, line, word):
    path = fixture_conf(root, name)
    r = procs_mod.run([etrnd_bin, "-c", path, "--check-config"], timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "%s:%d:" % (name, line) in out, out
    assert word in out, out


def test_broken_file_never_half_starts_the_daemon(etrnd_bin, root, procs, tmp_path):
    src = fixture_conf(root, "unknown-key.conf")
    port = net.free_port("127.0.0.1")
    text = open(src).read().replace("127.0.0.1:2525", "127.0.0.1:%d" % port)
    text = text.replace("/tmp/etrnd-harness-never-created", str(tmp_path / "spool"))
    conf = tmp_path / "unknown-key.conf"
    conf.write_text(text)
    p = procs.start([etrnd_bin, "-c", conf, "-f"], "etrnd-broken")
    try:
        p.wait(20)
    except Exception:
        pytest.fail("etrnd -f with a broken config is still running")
    assert p.returncode == 2, procs.output(p)
    assert "unknown-key.conf:6:" in procs.output(p)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not os.path.exists(str(tmp_path / "spool")), "a spool was created for a refused config"


def test_check_config_usage_errors_exit_2(etrnd_bin, tmp_path):
    r = procs_mod.run([etrnd_bin, "--check-config"], timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    r = procs_mod.run([etrnd_bin, "-c", str(tmp_path / "absent.conf"), "--check-config"], timeout=30)
    assert r.returncode == 2 and "absent.conf" in r.stdout + r.stderr, r.stdout + r.stderr


# --------------------------------------------------------------------------- --queue


def queue_rows(text):
    """{node: (messages, oldest, bytes, held)} from `etrnd --queue` (NODE MESSAGES OLDEST
    BYTES HELD columns)."""
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 5 and f[1].isdigit() and f[3].isdigit():
            rows[f[0]] = (int(f[1]), f[2], int(f[3]), f[4])
    return rows


def age_seconds(age):
    m = re.fullmatch(r"(\d+)([smhd])", age)
    assert m, "age %r is not N[smhd]" % age
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def test_queue_lists_counts_ages_and_sizes_without_touching_the_spool(relay):
    node_msgs = [smtp.make_message("q-node-%d@etrnkit.test" % i, size=3000) for i in range(2)]
    other_msg = smtp.make_message("q-other@etrnkit.test", to="o@other.test", size=500)
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        c.ehlo()
        for m in node_msgs:
            assert c.send_message("s@example.org", ["u@node.test"], m) == 250
        assert c.send_message("s@example.org", ["o@other.test"], other_msg) == 250
    finally:
        c.close()

    before = relay.spool_snapshot()
    r = relay.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    assert relay.spool_snapshot() == before, "etrnd --queue changed the spool"
    rows = queue_rows(r.stdout)
    assert set(rows) == {"node.test", "other.test"}, r.stdout
    n_count, n_age, n_bytes, n_held = rows["node.test"]
    assert n_count == 2 and n_held == "etrn", r.stdout
    stored = sum(len(smtp.crlf(m)) for m in node_msgs)
    # The spool holds the text as received plus etrnd's Received: line (< 400 bytes each).
    assert stored <= n_bytes <= stored + 2 * 400, (stored, r.stdout)
    assert age_seconds(n_age) < 300, r.stdout
    o_count, _, o_bytes, _ = rows["other.test"]
    assert o_count == 1 and len(smtp.crlf(other_msg)) <= o_bytes < n_bytes, r.stdout
    assert re.search(r"(?m)^total: 3 entries", r.stdout), r.stdout

    # Three hours later (faketime), the same messages are three hours old.
    if shutil.which("faketime"):
        # (faketime is an LD_PRELOAD library: an ASan build must be told not to mind.)
        r = procs_mod.run(["faketime", "-f", "+3h", relay.bin, "-c", relay.conf, "--queue"],
                          timeout=60, env={"ASAN_OPTIONS": ":".join(filter(None, [
                              os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))})
        assert r.returncode == 0, r.stdout + r.stderr
        age = age_seconds(queue_rows(r.stdout)["node.test"][1])
        assert 3 * 3600 - 600 <= age <= 3 * 3600 + 600, r.stdout

    # Still all there and deliverable: --queue took nothing away.
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(2)
    net.wait_until(lambda: "node.test" not in queue_rows(relay.queue().stdout), 20,
                   "node.test to leave the --queue listing after the flush")
    assert queue_rows(relay.queue().stdout)["other.test"][0] == 1


def test_queue_of_an_empty_spool(make_etrnd):
    d = make_etrnd()
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    assert queue_rows(r.stdout) == {} and re.search(r"(?m)^total: 0 ", r.stdout), r.stdout


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_answers_421_mid_data_and_leaves_nothing_half_written(relay):
    committed = tools.inject(relay.port, 2, "before-term")
    assert len(committed) == 2
    idle = smtp.SmtpConn("127.0.0.1", relay.port)
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        idle.ehlo()
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<u@node.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Message-ID: <half@etrnkit.test>\r\nSubject: half\r\n\r\n" + b"x" * 70000)
        # The half message is being written to the spool (the tmp area) by now.
        net.wait_until(lambda: relay.spool_files("tmp"), 20, "the message in progress in tmp/")
        relay.signal(signal.SIGTERM)
        code, lines = c.read_reply()
        assert code == 421, (code, lines)
        assert idle.read_reply()[0] == 421, "an idle session was not told 421"
        assert c.read_reply() == (None, []), "the connection stayed open after 421"
    finally:
        c.close()
        idle.close()
    try:
        relay.proc.wait(30)
    except Exception:
        pytest.fail("etrnd did not exit within 30 s of SIGTERM")
    assert relay.proc.returncode == 0, relay.diagnostics()
    assert relay.spool_files("tmp") == [], "half-written files remain"
    assert relay.spool_files("corrupt") == []

    relay.start(write=False)
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(2)
    assert sorted(relay.sink.message_ids()) == sorted(committed)
    assert "<half@etrnkit.test>" not in relay.sink.message_ids()
    assert relay.trap.count() == 0


def test_sigterm_during_a_flush_finishes_the_delivery_in_flight_and_loses_nothing(relay):
    sent = tools.inject(relay.port, 6, "term-flush")
    assert len(sent) == 6
    relay.sink.hold_after = 2            # the third message waits for its 250: in flight
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    net.wait_until(lambda: relay.sink.held(), 30, "a delivery in flight at the sink")
    relay.signal(signal.SIGTERM)
    # etrnd must wait for the reply of the message in flight rather than drop it.
    net.wait_until(lambda: "stopping" in relay.log(), 20, "etrnd to log that it is stopping")
    assert relay.running(), "etrnd exited with a delivery in flight"
    relay.sink.release()
    try:
        relay.proc.wait(30)
    except Exception:
        pytest.fail("etrnd did not exit within 30 s of SIGTERM once the sink answered")
    assert relay.proc.returncode == 0, relay.diagnostics()
    delivered = set(relay.sink.message_ids())
    # Two answered, then one in flight per connection (delivery_concurrency 2); after
    # SIGTERM no new delivery may start.
    assert 3 <= len(delivered) <= 4, "deliveries started after SIGTERM: %s" % sorted(delivered)

    relay.start(write=False)
    rows = queue_rows(relay.queue().stdout)
    left = rows.get("node.test", (0,))[0]
    assert left == 6 - len(delivered), (delivered, rows)
    if left:
        assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    net.wait_until(lambda: set(relay.sink.message_ids()) >= set(sent), 30, "every message")
    got = collections.Counter(relay.sink.message_ids())
    assert max(got.values()) == 1, "a message acknowledged before the stop came again: %s" % got
    assert relay.trap.count() == 0


def test_queue_during_a_flush_always_answers_and_counts_down(relay):
    n = 60
    c = smtp.SmtpConn("127.0.0.1", relay.port)
    try:
        c.ehlo()
        for i in range(n):
            assert c.send_message("s@example.org", ["u@node.test"],
                                  smtp.make_message("qf-%d@etrnkit.test" % i, size=4000)) == 250
    finally:
        c.close()
    relay.sink.delay_after_dot = 0.02       # a slow node: the flush takes a while
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:      # bounded: 60 s of listings, 20 ms apart
        time.sleep(0.02)
        r = relay.queue()
        assert r.returncode == 0, r.stdout + r.stderr
        count = queue_rows(r.stdout).get("node.test", (0,))[0]
        seen.append(count)
        if count == 0:
            break
    assert seen[-1] == 0, "the flush did not finish within 60 s: %s" % seen[-5:]
    assert all(a >= b for a, b in zip(seen, seen[1:])), "counts went up during a flush: %s" % seen
    assert all(k <= n for k in seen)
    relay.sink.wait_count(n)
    assert len(set(relay.sink.message_ids())) == n


# --------------------------------------------------------------------------- start-up


def test_a_second_etrnd_on_the_same_spool_is_refused(relay, tmp_path):
    sent = tools.inject(relay.port, 1, "first-owner")
    assert len(sent) == 1
    other_port = net.free_port("127.0.0.1")
    text = open(relay.conf).read().replace("127.0.0.1:%d" % relay.port, "127.0.0.1:%d" % other_port)
    conf = tmp_path / "second.conf"
    conf.write_text(text)
    r = procs_mod.run([relay.bin, "-c", conf, "-f"], timeout=30)
    assert r.returncode != 0, "a second etrnd ran on a spool in use"
    assert "in use" in r.stdout + r.stderr, r.stdout + r.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", other_port), timeout=2).close()
    assert relay.running()
    assert smtp.etrn("127.0.0.1", relay.port, "node.test")[0] == 253
    relay.sink.wait_count(1)
    assert relay.sink.message_ids() == sent


def pid_alive(pid):
    """True while pid runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def test_daemon_mode_detaches_writes_its_pid_and_stops_on_sigterm(make_etrnd, tmp_path):
    d = make_etrnd(start=False)
    pid_file = tmp_path / "etrnd.pid"
    d.settings.append(("pid_file", str(pid_file)))
    d.write_config()
    r = procs_mod.run([d.bin, "-c", d.conf], timeout=30)      # no -f: returns once listening
    pid = None
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        pid = int(pid_file.read_text().split()[0])
        assert pid_alive(pid)
        net.wait_listening("127.0.0.1", d.port, what="the daemon on port %d" % d.port)
        assert smtp.etrn("127.0.0.1", d.port, "other.test")[0] == 251
        os.kill(pid, signal.SIGTERM)
        net.wait_until(lambda: not pid_alive(pid), 30, "the daemon to exit")
        pid = None
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)       # the daemon this test started, by its pid
            except ProcessLookupError:
                pass
