"""Starting and always stopping the processes a test or benchmark needs.

    procs = Procs(workdir)
    p = procs.start(["dnsmasq", ...], name="dnsmasq")        # output in workdir/dnsmasq.out
    procs.kill(p, signal.SIGKILL)                             # one process (its whole group)
    procs.stop_all()                                          # SIGTERM, bounded wait, SIGKILL

Every process runs in its own session, so stopping it also stops its children. stop_all
is idempotent and is called from fixture teardown and benchmark `finally:` blocks. If the
harness itself is killed (a `timeout` around pytest, ^C twice), teardown never runs: each
process also gets PR_SET_PDEATHSIG=SIGKILL, so the kernel ends it with the harness.
"""
import ctypes
import os
import signal
import subprocess

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the thread that started it (the test) exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


class Procs:
    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.procs = []

    def start(self, argv, name, env=None, stdin=subprocess.DEVNULL, cwd=None):
        out_path = os.path.join(self.workdir, name + ".out")
        out = open(out_path, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        p = subprocess.Popen([str(a) for a in argv], stdin=stdin, stdout=out,
                             stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                             start_new_session=True, preexec_fn=_die_with_parent)
        out.close()
        p.etrnkit_name = name
        p.etrnkit_out = out_path
        self.procs.append(p)
        return p

    def output(self, p):
        try:
            with open(p.etrnkit_out, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @staticmethod
    def _signal_group(p, sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill(self, p, sig=signal.SIGKILL, timeout=10.0):
        """Sends sig to p's process group; for SIGKILL/SIGTERM waits (bounded) for the exit."""
        self._signal_group(p, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(p, signal.SIGKILL)
                p.wait(5)

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            self._signal_group(p, signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            self._signal_group(p, signal.SIGKILL)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        # Children left behind in the group (e.g. a daemon's helpers) go too.
        self._signal_group(p, signal.SIGKILL)

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []


def run(argv, timeout=60, env=None, input=None, cwd=None):
    """Runs a command to completion (bounded); returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    if isinstance(input, bytes):
        return subprocess.run([str(a) for a in argv], input=input, capture_output=True,
                              timeout=timeout, env=full_env, cwd=cwd)
    return subprocess.run([str(a) for a in argv], input=input, capture_output=True,
                          timeout=timeout, env=full_env, cwd=cwd, text=True, errors="replace")
