"""Full disk (issue 6): etrnd's spool on a 2 MiB tmpfs mounted for the test. When it fills,
etrnd answers 452 4.3.1 (at MAIL, RCPT, DATA or after the final dot) and stays up; when
space returns it accepts again; nothing is lost or corrupted: every message that got 250
is delivered afterwards, once, byte for byte, and no partial file remains in the spool.

The tmpfs is mounted in the test's temporary folder and always unmounted (lazily if
etrnd somehow still holds it). Needs root (mount)."""
import collections
import hashlib
import os
import signal

import pytest

from lib import net, procs as procs_mod, smtp

pytestmark = pytest.mark.faults

FS_SIZE = "2m"


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "spoolfs"
    mnt.mkdir()
    r = procs_mod.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % FS_SIZE,
                       "etrnkit-fulldisk", str(mnt)], timeout=30)
    assert r.returncode == 0, "mount -t tmpfs failed: " + r.stderr
    try:
        yield str(mnt)
    finally:
        r = procs_mod.run(["umount", str(mnt)], timeout=30)
        if r.returncode != 0:
            procs_mod.run(["umount", "-l", str(mnt)], timeout=30)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def body_digest(data):
    """Digest of the message as sent (CRLF form), to compare with what the sink got."""
    return hashlib.sha256(smtp.crlf(data)).hexdigest()


def send_until_refused(d, prefix, size, limit, sent):
    """Sends messages of about size bytes over one session until one is refused (4xx) or
    limit is reached. Adds {msgid: digest} of each acknowledged message to sent. Returns
    (code, enhanced code, stage) of the refusal, or None if none was refused."""
    c = smtp.SmtpConn("127.0.0.1", d.port, timeout=30)
    try:
        assert c.ehlo()[0] == 250
        for i in range(limit):
            msgid = "%s-%d@etrnkit.test" % (prefix, i)
            data = smtp.make_message(msgid, size=size)
            for stage, line in (("MAIL", "MAIL FROM:<s@example.org>"), ("RCPT", "RCPT TO:<u@node.test>"),
                                ("DATA", "DATA")):
                code, lines = c.cmd(line)
                if code not in (250, 354):
                    assert 400 <= code < 500, (stage, code, lines)
                    assert c.cmd("RSET")[0] == 250, "the session is unusable after %d" % code
                    return code, lines[0].split(" ")[0], stage
            c.send_raw(smtp.dot_stuff(data) + b".\r\n")
            code, lines = c.read_reply()
            if code == 250:
                sent["<%s>" % msgid] = body_digest(data)
                continue
            assert code is not None and 400 <= code < 500, ("after the dot", code, lines)
            assert c.cmd("RSET")[0] == 250, "the session is unusable after %d" % code
            return code, lines[0].split(" ")[0], "dot"
        c.cmd("QUIT")
        return None
    finally:
        c.close()


def delivered_digests(sink):
    out = collections.defaultdict(list)
    for msgid, m in zip(sink.message_ids(), sink.messages):
        data = m["data"]
        # Strip etrnd's Received: field (first header field and its continuation lines).
        head, sep, rest = data.partition(b"\r\n")
        while rest[:1] in (b" ", b"\t"):
            _, _, rest = rest.partition(b"\r\n")
        assert head.startswith(b"Received:"), head
        out[msgid].append(hashlib.sha256(rest).hexdigest())
    return out


def test_full_spool_answers_452_then_accepts_again_and_loses_nothing(make_etrnd, dns, sink, trap,
                                                                      sink_port, small_fs):
    d = make_etrnd([("spool", os.path.join(small_fs, "spool"))], dns=dns, sink_port=sink_port)
    filler = os.path.join(small_fs, "filler")
    # Leave room for only a few messages: the rest of the tmpfs is a file we remove later.
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free_bytes(small_fs) - 600 * 1024))
    sent = {}

    # Big messages until the first refusal, then small ones into the last free blocks, so
    # that the disk fills at every step of a commit (body, envelope, rename).
    refusals = []
    for size, prefix in ((120 * 1024, "big"), (16 * 1024, "mid"), (2 * 1024, "small")):
        r = send_until_refused(d, prefix, size, 80, sent)
        assert r is not None, "%d messages of %d bytes fitted in a full %s tmpfs" % (80, size, FS_SIZE)
        refusals.append(r)
    print("full disk: %d acknowledged before full; refusals %s" % (len(sent), refusals))
    for code, enh, stage in refusals:
        assert (code, enh) == (452, "4.3.1"), refusals
    assert sent, "not a single message fitted"
    assert d.running(), d.diagnostics()
    assert d.spool_files("tmp") == [], "a refused message left files in tmp/"
    assert d.spool_files("corrupt") == []
    assert sink.count() == 0

    # Space returns: the same daemon accepts again.
    os.unlink(filler)
    before = len(sent)
    assert send_until_refused(d, "after", 8 * 1024, 5, sent) is None
    assert len(sent) == before + 5

    # A restart recovers exactly the acknowledged messages (nothing torn, nothing quarantined).
    d.kill(signal.SIGKILL)
    d.start(write=False)
    assert d.spool_files("corrupt") == []
    r = d.queue()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node.test" in r.stdout and " %d " % len(sent) in r.stdout, (len(sent), r.stdout)

    code, text = smtp.etrn("127.0.0.1", d.port, "node.test")
    assert code == 253, text
    net.wait_until(lambda: sink.count() >= len(sent), 60,
                   "all %d acknowledged messages at the sink" % len(sent))
    got = delivered_digests(sink)
    missing = set(sent) - set(got)
    assert not missing, "acknowledged but lost: %s" % sorted(missing)
    corrupted = [m for m in sent if sent[m] not in got[m]]
    assert not corrupted, "delivered with other content: %s" % corrupted
    dups = {m: len(v) for m, v in got.items() if len(v) > 1}
    assert not dups, "duplicates: %s" % dups
    assert trap.count() == 0


def test_flush_frees_space_for_new_mail(make_etrnd, dns, sink, sink_port, small_fs):
    """No filler: the spool itself fills the tmpfs; ETRN delivers and removes the messages,
    and the space they took is usable again."""
    d = make_etrnd([("spool", os.path.join(small_fs, "spool"))], dns=dns, sink_port=sink_port)
    sent = {}
    r = send_until_refused(d, "fill", 100 * 1024, 60, sent)
    assert r is not None and r[:2] == (452, "4.3.1"), r
    assert smtp.etrn("127.0.0.1", d.port, "node.test")[0] == 253
    net.wait_until(lambda: sink.count() >= len(sent), 60, "the flush of the full spool")
    net.wait_until(lambda: d.queue().stdout.find("node.test") < 0, 20, "an empty queue")
    assert set(sink.message_ids()) == set(sent)
    again = {}
    assert send_until_refused(d, "again", 100 * 1024, 3, again) is None
    assert len(again) == 3
    assert d.spool_files("tmp") == []


def test_tmpfs_is_unmounted_after_use(tmp_path):
    """The fixture above leaves no mount behind (checked by the next test's view of
    /proc/mounts: no etrnkit-fulldisk mount remains once its test is over)."""
    with open("/proc/mounts") as f:
        mounts = [l for l in f if l.startswith("etrnkit-fulldisk ")]
    assert mounts == [], mounts
