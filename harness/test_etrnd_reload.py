"""SIGHUP: etrnd rereads its configuration; a broken file on SIGHUP keeps the old one."""
import signal

from lib import net, smtp, tools


def etrn_code(d, node):
    return smtp.etrn("127.0.0.1", d.port, node)[0]


def test_sighup_reloads_etrn_domains(make_etrnd, dns, sink, trap, sink_port):
    d = make_etrnd([("etrn_domains", "node.test")], dns=dns, sink_port=sink_port)
    assert etrn_code(d, "other.test") in (458, 459)
    assert etrn_code(d, "node.test") in (250, 251)

    d.settings = [(k, v) for k, v in d.settings if k != "etrn_domains"]
    d.settings.append(("etrn_domains", "node.test, other.test"))
    d.write_config()
    d.signal(signal.SIGHUP)
    net.wait_until(lambda: etrn_code(d, "other.test") in (250, 251), 20,
                   "ETRN other.test accepted after SIGHUP")
    assert d.running()

    # The new domain is now held: its mail waits for ETRN, then goes to the MX.
    assert tools.inject(d.port, 1, "reloaded", to="o@other.test") == ["<reloaded-0@etrnkit.test>"]
    assert etrn_code(d, "other.test") in (250, 252, 253)
    sink.wait_count(1)
    assert sink.message_ids() == ["<reloaded-0@etrnkit.test>"]
    assert trap.count() == 0


def test_broken_config_on_sighup_keeps_the_old_one(make_etrnd, dns, sink, sink_port):
    d = make_etrnd([("etrn_domains", "node.test, other.test")], dns=dns, sink_port=sink_port)
    assert etrn_code(d, "other.test") in (250, 251)
    good = open(d.conf).read()

    with open(d.conf, "w") as f:
        f.write(good.replace("etrn_domains = node.test, other.test",
                             "etrn_domains = node.test\nthis is not a setting\n"))
    d.signal(signal.SIGHUP)
    # Give the reload a chance to happen (the log says so, or we just poll a few times):
    # the broken file must not have been applied, even in part.
    net.wait_until(lambda: "etrnd.conf:" in d.log() or "etrnd.conf:" in d.output(), 20,
                   "etrnd to report the broken configuration with file:line")
    assert d.running(), d.diagnostics()
    assert etrn_code(d, "other.test") in (250, 251)
    assert etrn_code(d, "node.test") in (250, 251)
    assert tools.inject(d.port, 1, "after-bad-hup") == ["<after-bad-hup-0@etrnkit.test>"]
