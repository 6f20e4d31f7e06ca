"""accounting (call detail records) as the daemon runs it: the file is
opened at start, opened again at a reload (logrotate moves it away), a
reload to a folder that does not exist is refused, a database that is not
one stops the start.  The records of calls need the dialog layer; these
tests hold what the service does with the sinks."""
import os
import subprocess
import time

from conftest import OSPREYD, conf_text, free_udp_port, lc, reload_conf

HEADER = ("call_id,from_tag,to_tag,caller,callee,ruri,identity,src_ip,"
          "src_port,transport,start_time,answer_time,end_time,duration,"
          "setup_time,code,cause,ended_by\n")


def acct_conf(o, **acct):
    return conf_text(o.port, workdir=o.workdir,
                     extra="accounting = %s;" % lc(acct))


def test_reload_opens_a_moved_file_again(osprey_factory, tmp_path):
    cdr = str(tmp_path / "cdr.csv")
    o = osprey_factory(extra="accounting = %s;" % lc({"file": cdr}))
    with open(cdr) as f:
        assert f.read() == HEADER
    # What logrotate does, then its postrotate: systemctl reload.
    os.rename(cdr, cdr + ".1")
    reload_conf(o, acct_conf(o, file=cdr))
    deadline = time.time() + 5
    while not os.path.exists(cdr) and time.time() < deadline:
        time.sleep(0.05)
    with open(cdr) as f:
        assert f.read() == HEADER, "no new file after the reload"
    with open(cdr + ".1") as f:
        assert f.read() == HEADER
    assert o.stop() == 0


def test_reload_to_a_missing_folder_is_refused(osprey_factory, tmp_path):
    cdr = str(tmp_path / "cdr.jsonl")
    o = osprey_factory(extra="accounting = %s;" % lc(
        {"file": cdr, "format": "jsonl"}))
    bad = str(tmp_path / "nowhere" / "cdr.jsonl")
    reload_conf(o, acct_conf(o, file=bad, format="jsonl"),
                logged="reload refused")
    assert ("accounting.file: no directory %s" % (tmp_path / "nowhere")
            in o.log_text())
    assert not os.path.exists(bad)
    assert o.alive()


def test_a_database_that_is_not_one_stops_the_start(tmp_path):
    db = tmp_path / "cdr.db"
    db.write_bytes(b"this is not an SQLite database\n" * 64)
    conf = tmp_path / "osprey.conf"
    conf.write_text(conf_text(free_udp_port(), workdir=str(tmp_path),
                              extra="accounting = %s;" % lc(
                                  {"database": str(db)})))
    # The path can be written: the check passes, the start does not.
    p = subprocess.run([OSPREYD, "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([OSPREYD, "-f", "-c", str(conf)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "accounting: %s: file is not a database" % db in p.stderr
