"""A private Postfix instance (harness/postfix/setup-instance.sh) for tests and benchmarks.

    pf = PostfixInstance(root, sink_host="127.0.0.2", sink_port=p, domains=["node.test"])
    pf.start()                 # setup-instance.sh, then `postfix -c DIR/etc start`
    pf.queue_count()           # messages in the queue (postqueue -j)
    pf.flush("node.test")      # postqueue -s node.test (the ETRN equivalent)
    pf.stop()                  # postfix stop, bounded wait, then SIGKILL by pid; removes DIR

The instance lives in its own folder under /tmp (world-traversable, because Postfix's
daemons run as the postfix user). Nothing of the system's Postfix (/etc/postfix/main.cf,
/var/spool/postfix) is read or started. Stopping kills only the processes of this
instance: the master whose pid Postfix recorded, and that master's children.
"""
import json
import os
import shutil
import signal
import tempfile
import time

from . import net, procs as procs_mod


def available():
    return shutil.which("postfix") is not None and shutil.which("postconf") is not None


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # The field after the ")" that closes the command name: state, then ppid.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid:
            kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class PostfixInstance:
    def __init__(self, root, sink_host, sink_port, domains, port=None, keep=False):
        net.check_loopback(sink_host)
        self.root = str(root)
        self.sink_host, self.sink_port = sink_host, sink_port
        self.domains = list(domains)
        self.port = port or net.free_port("127.0.0.1")
        self.dir = tempfile.mkdtemp(prefix="etrnkit-postfix-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.cf = os.path.join(self.dir, "etc")
        self.keep = keep
        self.master_pid = None

    def setup(self):
        script = os.path.join(self.root, "harness", "postfix", "setup-instance.sh")
        r = procs_mod.run(["sh", script, self.dir, self.port, self.sink_host, self.sink_port]
                          + self.domains, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("setup-instance.sh failed:\n" + r.stdout + r.stderr)
        return self

    def postconf(self, *settings):
        r = procs_mod.run(["postconf", "-c", self.cf, "-e"] + list(settings), timeout=30)
        if r.returncode != 0:
            raise RuntimeError("postconf failed: " + r.stderr)

    def start(self):
        if not os.path.exists(os.path.join(self.cf, "main.cf")):
            self.setup()
        r = procs_mod.run(["postfix", "-c", self.cf, "start"], timeout=120)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed:\n" + r.stdout + r.stderr + self.maillog())
        pidfile = os.path.join(self.dir, "queue", "pid", "master.pid")
        net.wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(),
                       20, "Postfix master pid file")
        self.master_pid = int(open(pidfile).read().strip())
        net.wait_listening("127.0.0.1", self.port, what="Postfix smtpd on %d" % self.port)
        return self

    def reload(self):
        procs_mod.run(["postfix", "-c", self.cf, "reload"], timeout=60)

    def stop(self):
        if self.master_pid is not None:
            procs_mod.run(["postfix", "-c", self.cf, "stop"], timeout=60)
            deadline = time.monotonic() + 20
            while _alive(self.master_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(self.master_pid):
                for pid in _children(self.master_pid) + [self.master_pid]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.master_pid = None
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def queue_ids(self):
        r = procs_mod.run(["postqueue", "-c", self.cf, "-j"], timeout=120)
        ids = []
        for line in r.stdout.splitlines():
            line = line.strip()
            if line:
                ids.append(json.loads(line))
        return ids

    def queue_count(self):
        return len(self.queue_ids())

    def flush(self, domain):
        return procs_mod.run(["postqueue", "-c", self.cf, "-s", domain], timeout=60)

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""
