"""Loopback ports and bounded waits.

    port = free_port("127.0.0.1", "127.0.0.2")      # free for TCP (and UDP if asked) on each
    wait_until(lambda: sink.count() >= 3, 20, "3 messages at the sink")
    wait_listening("127.0.0.1", port, proc)           # LISTEN socket seen in /proc/net/tcp

Only 127.0.0.0/8 addresses are accepted: every helper refuses anything else.
"""
import ipaddress
import random
import socket
import time

DEFAULT_TIMEOUT = 20.0


def check_loopback(addr):
    if not ipaddress.ip_address(addr) in ipaddress.ip_network("127.0.0.0/8"):
        raise ValueError("not a loopback address: %s" % addr)


def _port_free(addr, port, udp):
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(*addrs, udp=False):
    """A port that is free on every address given (default 127.0.0.1)."""
    addrs = addrs or ("127.0.0.1",)
    for a in addrs:
        check_loopback(a)
    for _ in range(200):
        port = random.randint(20000, 59999)
        if all(_port_free(a, port, udp) for a in addrs):
            return port
    raise RuntimeError("no free port found on %s" % (addrs,))


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, what="condition", interval=0.05):
    """Polls predicate until it returns a true value or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def _listening(addr, port):
    want = "%s:%04X" % (socket.inet_aton(addr)[::-1].hex().upper(), port)
    any_addr = "00000000:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and fields[1] in (want, any_addr):
                    return True
    except OSError:
        pass
    return False


def wait_listening(addr, port, proc=None, timeout=DEFAULT_TIMEOUT, what=None):
    """Waits for a TCP listener on addr:port; fails early if proc (a Popen) has exited."""
    check_loopback(addr)
    what = what or "a listener on %s:%d" % (addr, port)

    def ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s: process exited with %s before listening" % (what, proc.returncode))
        return _listening(addr, port)
    wait_until(ready, timeout, what)
