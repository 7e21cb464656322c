"""`make install PREFIX=/usr DESTDIR=tmp` installs the binaries (etrnd in sbin, the tools
in bin), every man page (etrnd(8), etrnd.conf(5), etrn(1), etrnsim(1), etrncheck(1)) and
the example configuration; the installed etrnd runs and accepts the installed example."""
import os
import stat

from lib import procs as procs_mod


def test_make_install_puts_binaries_man_pages_and_example_config_under_destdir(root, tmp_path):
    dest = tmp_path / "dest"
    r = procs_mod.run(["make", "-C", root, "--no-print-directory", "install", "PREFIX=/usr",
                       "DESTDIR=%s" % dest], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    usr = dest / "usr"

    for rel in ("sbin/etrnd", "bin/etrn", "bin/etrnsim", "bin/etrncheck"):
        p = usr / rel
        assert p.is_file(), "%s was not installed" % rel
        assert os.stat(p).st_mode & stat.S_IXUSR, "%s is not executable" % rel

    man = usr / "share" / "man"
    for rel in ("man8/etrnd.8", "man5/etrnd.conf.5", "man1/etrn.1", "man1/etrnsim.1",
                "man1/etrncheck.1"):
        assert (man / rel).is_file(), "man page %s was not installed" % rel
        text = (man / rel).read_text(errors="replace")
        assert text.lstrip().startswith((".TH", ".\\\"", "'\\\"", ".Dd")), "%s is not roff" % rel
    # The man pages render without groff warnings.
    for rel in ("man8/etrnd.8", "man5/etrnd.conf.5"):
        r = procs_mod.run(["man", "--warnings", "-E", "UTF-8", "-l", str(man / rel)], timeout=60,
                          env={"MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"})
        assert r.returncode == 0 and r.stdout.strip(), r.stderr
        assert "warning" not in r.stderr.lower(), r.stderr

    example = usr / "share" / "etrnkit" / "etrnd.conf.example"
    assert example.is_file(), "the example config was not installed"
    r = procs_mod.run([str(usr / "sbin" / "etrnd"), "-c", str(example), "--check-config"],
                      timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr

    # Nothing outside DESTDIR: every installed path is under dest/usr.
    for dirpath, _, files in os.walk(dest):
        for f in files:
            assert os.path.join(dirpath, f).startswith(str(usr) + os.sep)
