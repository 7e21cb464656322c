"""A real DNS server on a loopback port: dnsmasq serving MX records for the test nodes.

    dns = Dnsmasq(procs, workdir, {"node.test": "127.0.0.2"}).start()
    ... etrnd's dns_server = 127.0.0.1:dns.port ...

Each node NAME gets `NAME MX 10 mx1.NAME` and `mx1.NAME A ADDR`. Everything under .test
that is not listed is answered NXDOMAIN/NODATA (--local=/test/), nothing is forwarded.
"""
import shutil

from . import net, procs as procs_mod


class Dnsmasq:
    def __init__(self, procs, workdir, nodes, name="dnsmasq"):
        self.procs, self.workdir, self.nodes, self.name = procs, workdir, dict(nodes), name
        for addr in self.nodes.values():
            net.check_loopback(addr)
        self.port = None
        self.proc = None

    @staticmethod
    def available():
        return shutil.which("dnsmasq") is not None

    def argv(self):
        argv = ["dnsmasq", "--no-daemon", "--port=%d" % self.port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file", "--log-facility=-", "--log-queries", "--local=/test/",
                "--user=root"]
        for node, addr in sorted(self.nodes.items()):
            argv.append("--mx-host=%s,mx1.%s,10" % (node, node))
            argv.append("--host-record=mx1.%s,%s" % (node, addr))
        return argv

    def start(self):
        for _ in range(5):
            self.port = net.free_port("127.0.0.1", udp=True)
            self.proc = self.procs.start(self.argv(), self.name)
            try:
                net.wait_listening("127.0.0.1", self.port, self.proc, what="dnsmasq")
                return self
            except AssertionError:
                if self.proc.poll() is None:
                    raise
        raise AssertionError("dnsmasq did not start:\n" + self.procs.output(self.proc))

    def lookup(self, name, rtype="MX"):
        """dig's short answer, for checking the set-up itself."""
        r = procs_mod.run(["dig", "@127.0.0.1", "-p", str(self.port), rtype, name, "+short",
                           "+time=2", "+tries=2"], timeout=20)
        return r.stdout.split("\n")

    def log(self):
        return self.procs.output(self.proc)
