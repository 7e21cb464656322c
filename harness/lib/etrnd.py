"""Running etrnd under test: its config file, its spool, start/kill/restart, --queue.

    d = Etrnd(procs, workdir, bindir, [("etrn_domains", "node.test"), ...])
    d.start()                 # writes etrnd.conf, runs `etrnd -c etrnd.conf -f`, waits for LISTEN
    d.kill(signal.SIGKILL); d.start()      # same spool, same port
    d.queue()                 # `etrnd -c etrnd.conf --queue` output
    d.spool_files("tmp")      # what is in the spool (areas: tmp, msg, env, corrupt)

Settings are (key, value) pairs so that repeatable keys (etrn_allow) keep their order.
The defaults: listen on 127.0.0.1 (a free port), spool and log in workdir, log_level debug,
mynetworks 127.0.0.0/8, retry_interval 0 (held mail waits for ETRN).
"""
import os
import signal

from . import net, procs as procs_mod


class Etrnd:
    def __init__(self, procs, workdir, bindir, settings=(), name="etrnd"):
        self.procs = procs
        self.workdir = str(workdir)
        self.bin = os.path.join(str(bindir), "etrnd")
        self.name = name
        self.port = net.free_port("127.0.0.1")
        self.spool = os.path.join(self.workdir, name + "-spool")
        self.log_file = os.path.join(self.workdir, name + ".log")
        self.conf = os.path.join(self.workdir, name + ".conf")
        os.makedirs(self.spool, exist_ok=True)
        self.settings = list(settings.items()) if isinstance(settings, dict) else list(settings)
        self.proc = None
        self.starts = 0

    def config_text(self, settings=None):
        base = [("listen", "127.0.0.1:%d" % self.port),
                ("myhostname", "relay.etrnkit.test"),
                ("spool", self.spool),
                ("log_file", self.log_file),
                ("log_level", "debug"),
                ("mynetworks", "127.0.0.0/8"),
                ("retry_interval", "0")]
        given = list(self.settings if settings is None else settings)
        keys = {k for k, _ in given}
        lines = ["# written by the etrnkit harness"]
        lines += ["%s = %s" % (k, v) for k, v in base if k not in keys]
        lines += ["%s = %s" % (k, v) for k, v in given]
        return "\n".join(lines) + "\n"

    def write_config(self, settings=None, text=None):
        if settings is not None:
            self.settings = list(settings.items()) if isinstance(settings, dict) else list(settings)
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text())

    def start(self, write=True):
        if write and (self.starts == 0 or not os.path.exists(self.conf)):
            self.write_config()
        self.starts += 1
        self.proc = self.procs.start([self.bin, "-c", self.conf, "-f"],
                                     "%s-%d" % (self.name, self.starts))
        net.wait_listening("127.0.0.1", self.port, self.proc, what="etrnd on port %d" % self.port)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        self.procs.kill(self.proc, sig)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)

    def output(self):
        """What etrnd printed on stdout/stderr in this run."""
        return self.procs.output(self.proc) if self.proc else ""

    def log(self):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def run(self, *args, timeout=60):
        return procs_mod.run([self.bin] + list(args), timeout=timeout)

    def queue(self):
        return self.run("-c", self.conf, "--queue")

    def check_config(self, path=None):
        return self.run("-c", path or self.conf, "--check-config")

    def spool_files(self, area=None):
        """Relative paths of every file in the spool (or in one area: tmp, msg, env,
        corrupt), sorted."""
        top = os.path.join(self.spool, area) if area else self.spool
        out = []
        for dirpath, _, files in os.walk(top):
            for f in files:
                out.append(os.path.relpath(os.path.join(dirpath, f), self.spool))
        return sorted(out)

    def spool_snapshot(self):
        """{path: (size, mtime_ns, inode)} of every file and directory in the spool."""
        snap = {}
        for dirpath, dirs, files in os.walk(self.spool):
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                snap[os.path.relpath(path, self.spool)] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return snap

    def sanitizer_reports(self):
        """Lines from every run of this etrnd (each start's output file) where ASan, LSan
        or UBSan reported an error; [] for a clean (or non-sanitizer) build."""
        import glob
        import re
        found = []
        for path in sorted(glob.glob(os.path.join(self.workdir, "%s-*.out" % self.name))):
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if re.search(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
                                 r"SUMMARY: (Address|Leak|Undefined)", line):
                        found.append("%s: %s" % (os.path.basename(path), line.rstrip()))
        return found

    def diagnostics(self):
        return "--- etrnd output ---\n%s\n--- etrnd log (tail) ---\n%s" % (
            self.output()[-4000:], self.log()[-6000:])


def parse_queue(text):
    """{domain: count} from `etrnd --queue` output: every line naming a domain and one
    number (in either order) counts; header and total lines are ignored."""
    import re
    counts = {}
    for line in text.splitlines():
        doms = re.findall(r"(?i)\b((?:[a-z0-9-]+\.)+[a-z]{2,})\b", line)
        nums = re.findall(r"(?<![\w.])(\d+)(?![\w.])", line)
        if len(doms) == 1 and nums:
            counts[doms[0].lower()] = int(nums[0])
    return counts
