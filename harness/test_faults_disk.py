"""Full disk: etrnd's spool on a small tmpfs (mounted by the test, root only). When the
filesystem fills, etrnd answers 452 4.3.1 (never 5xx, never 250 for a message it could
not store), stays up, restarts on the full disk, accepts again when space returns, and
loses or corrupts nothing: every acknowledged message is delivered exactly once.

Bounded: at most MAX_MESSAGES injections, each with a socket timeout. Marked `faults`
(and runs in make test too: it takes a few seconds). Skipped when tmpfs cannot be mounted.
"""
import collections
import os
import signal
import subprocess

import pytest

from lib import etrnd as etrnd_mod, net, smtp

pytestmark = pytest.mark.faults

NODE = "node.test"
FS_SIZE = "3m"
MESSAGE_SIZE = 60 * 1024
MAX_MESSAGES = 200


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small-fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % FS_SIZE, "tmpfs",
                        str(mnt)], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.strip())
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


@pytest.fixture
def disk_relay(make_etrnd, small_fs, sink, trap, sink_port, tmp_path):
    spool = os.path.join(small_fs, "spool")
    os.mkdir(spool)
    d = make_etrnd(settings=[("spool", spool), ("route." + NODE, "127.0.0.2:%d" % sink_port),
                             ("smtp_port", str(sink_port))])
    d.sink, d.trap, d.fs = sink, trap, small_fs
    yield d
    d.stop()     # before the filesystem goes


def send_one(d, msgid):
    """(code to the final dot or the first refusal, stage) over a fresh session."""
    c = smtp.SmtpConn("127.0.0.1", d.port, timeout=20)
    try:
        c.ehlo()
        data = smtp.make_message(msgid[1:-1], size=MESSAGE_SIZE)
        for stage, line in (("MAIL", "MAIL FROM:<s@example.org>"), ("RCPT", "RCPT TO:<u@%s>" % NODE),
                            ("DATA", "DATA")):
            code, lines = c.cmd(line)
            if code not in (250, 354):
                return code, stage, " ".join(lines)
        c.send_raw(smtp.dot_stuff(data) + b".\r\n")
        code, lines = c.read_reply()
        c.cmd("QUIT")
        return code, "dot", " ".join(lines)
    finally:
        c.close()


def fill(d, prefix, acked, refusals, stop_after_refusals=3):
    for i in range(MAX_MESSAGES):
        msgid = "<%s-%d@etrnkit.test>" % (prefix, i)
        code, stage, text = send_one(d, msgid)
        if code == 250:
            acked.append(msgid)
        else:
            refusals.append((code, stage, text))
            if len(refusals) >= stop_after_refusals:
                return
    pytest.fail("the %s filesystem never filled after %d messages" % (FS_SIZE, MAX_MESSAGES))


def queued(d):
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    return etrnd_mod.parse_queue(r.stdout).get(NODE, 0)


def test_full_spool_answers_452_recovers_and_loses_nothing(disk_relay):
    d = disk_relay
    acked, refusals = [], []
    fill(d, "disk-a", acked, refusals)
    assert acked, "nothing was accepted on an empty %s filesystem" % FS_SIZE
    assert all(code == 452 for code, _, _ in refusals), "refusals on a full disk: %s" % refusals
    assert all("4.3.1" in text for _, _, text in refusals), refusals
    assert d.running()
    assert queued(d) == len(acked)

    # A crash on the full disk: etrnd starts again and the spool is intact.
    d.kill(signal.SIGKILL)
    d.start(write=False)
    assert queued(d) == len(acked)
    code, stage, text = send_one(d, "<disk-still-full@etrnkit.test>")
    assert code == 452, (code, stage, text)

    # Space returns: the flush empties the spool, then mail is accepted again.
    code, text = smtp.etrn("127.0.0.1", d.port, NODE)
    assert code in (250, 253), (code, text)
    d.sink.wait_count(len(acked), timeout=30 + len(acked) / 5)
    net.wait_until(lambda: queued(d) == 0, 30, "an empty spool after the flush")
    code, stage, text = send_one(d, "<disk-after@etrnkit.test>")
    assert code == 250, "not accepted after space returned: %s %s %s" % (code, stage, text)
    acked.append("<disk-after@etrnkit.test>")
    code, _ = smtp.etrn("127.0.0.1", d.port, NODE)
    d.sink.wait_count(len(acked), timeout=30)

    got = collections.Counter(d.sink.message_ids())
    print("\nfaults disk: %d accepted on a %s tmpfs, then %d refusals (%s), all delivered once: %s"
          % (len(acked) - 1, FS_SIZE, len(refusals),
             ",".join(sorted({"%d at %s" % (c, s) for c, s, _ in refusals})),
             set(got) == set(acked) and max(got.values()) == 1))
    assert set(got) == set(acked), "lost: %s" % (set(acked) - set(got))
    assert max(got.values()) == 1, {m: k for m, k in got.items() if k > 1}
    for m in d.sink.messages:
        assert len(m["data"]) >= MESSAGE_SIZE, "a truncated message reached the sink"
    corrupt = os.path.join(d.fs, "spool", "corrupt")
    assert not os.path.isdir(corrupt) or not os.listdir(corrupt), os.listdir(corrupt)
    assert d.trap.count() == 0
