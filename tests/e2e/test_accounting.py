"""accounting (call detail records) as the daemon runs it: the file is
opened at start, opened again at a reload (logrotate moves it away), a
reload to a folder that does not exist is refused, a database that is not
one stops the start.  The records of calls need the dialog layer; these
tests hold what the service does with the sinks."""
import os
import subprocess
import time

import pytest

from conftest import OSPREYD, conf_text, free_udp_port, lc, reload_conf
from sip import sipnet  # noqa: F401 (fixture)

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


def read_records(path, fmt):
    """The records of a CDR file: dicts, values as the sink wrote them
    (CSV: strings)."""
    import csv
    import json
    with open(path, newline="") as f:
        if fmt == "csv":
            return list(csv.DictReader(f))
        return [json.loads(x) for x in f if x.strip()]


def iso(t):
    """An ISO 8601 UTC time of a record, as seconds since the epoch."""
    import calendar
    import datetime
    d = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(d.timetuple()) + d.microsecond / 1e6


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_calls_up_at_a_stop_get_their_record(sipnet, tmp_path, fmt):
    """SIGTERM with a call answered and one ringing (no dialog.database):
    after shutdown_grace each gets exactly one record before the writer
    drains.  The answered one: code 200, ended by the proxy, Q.850 41
    NORMAL_TEMPORARY_FAILURE, its answer time and a duration up to the
    stop; the ringing one a failed attempt (503, 41, the proxy's)."""
    from test_dialog import answered
    path = str(tmp_path / ("cdr." + fmt))
    net = sipnet(extra="accounting = %s;" % lc(
        {"file": path, "format": fmt, "fsync": "always"}))
    t0 = time.time()
    call, inv = answered(net)
    ringing = net.call()
    net.ring(ringing)
    time.sleep(1.0)
    t_stop = time.time()
    assert net.proxy.stop() == 0
    recs = {}
    for r in read_records(path, fmt):
        assert r["call_id"] not in recs, "written twice: %r" % r
        recs[r["call_id"]] = r
    assert set(recs) == {call.call_id, ringing.call_id}, recs
    r = recs[call.call_id]
    assert (str(r["code"]), str(r["cause"]), r["ended_by"]) == \
        ("200", "41", "proxy"), r
    assert r["to_tag"] == net.uas.tag(inv) and r["from_tag"] == call.from_tag
    assert r["caller"] == "sip:alice@example.test", r
    assert t0 - 0.01 <= iso(r["start_time"]) <= iso(r["answer_time"]), r
    assert t_stop - 0.01 <= iso(r["end_time"]) <= time.time(), r
    assert 1.0 <= float(r["duration"]) < 5, r
    assert "ended by proxy (stopping)" in net.proxy.log_text()
    r = recs[ringing.call_id]
    assert (str(r["code"]), str(r["cause"]), r["ended_by"]) == \
        ("503", "41", "proxy"), r
    assert not r["answer_time"] and float(r["duration"]) == 0, r
    assert r["to_tag"] == "", r


def test_a_call_kept_over_a_restart_gets_one_record(osprey_factory,
                                                    tmp_path):
    """dialog.database: the call answered before the restart gets no
    record at the stop (it is not over) and exactly one when its BYE
    comes after the restart, with the start and answer times of the
    first run."""
    from sip import UAS, Endpoint, Net
    from test_dialog import answered, wait_dialogs
    path = str(tmp_path / "cdr.jsonl")
    uas, caller = UAS(Endpoint()), Endpoint()
    kw = dict(routes=[("^bob$", [uas.target])],
              extra='dialog = { database = "dialogs.db"; };\n'
                    'accounting = %s;' % lc({"file": path,
                                            "format": "jsonl",
                                            "fsync": "always"}))
    try:
        o = osprey_factory(**kw)
        net = Net(o, caller, uas)
        t0 = time.time()
        call, inv = answered(net)
        t1 = time.time()
        time.sleep(0.3)                 # one commit (100 ms)
        assert o.stop() == 0
        assert read_records(path, "jsonl") == [], "a record at the stop"
        net.proxy = osprey_factory(port=o.port, workdir=o.workdir, **kw)
        assert len(wait_dialogs(net.proxy, 1)) == 1
        time.sleep(0.5)
        call.bye()
        net.uas.respond(net.uas.expect("BYE", call_id=call.call_id), 200)
        net.caller.expect(call.resp(200, "BYE"))
        assert wait_dialogs(net.proxy, 0) == []
        assert net.proxy.stop() == 0
        recs = read_records(path, "jsonl")
        assert len(recs) == 1, recs
        r = recs[0]
        assert r["call_id"] == call.call_id
        assert (r["code"], r["cause"], r["ended_by"]) == \
            (200, 16, "caller"), r
        assert t0 - 0.01 <= iso(r["start_time"]) <= iso(r["answer_time"]) \
            <= t1 + 0.01, r
        assert r["duration"] >= 0.8, r
    finally:
        uas.ep.close()
        caller.close()
