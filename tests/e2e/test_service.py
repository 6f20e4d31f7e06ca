"""Running it as a service: sd_notify, reload (SIGHUP and ospreyctl),
graceful stop, and every ospreyctl verb, end to end."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import TOP, OSPREYD
from sip import NON2XX, SDP, match, reglab, sipnet, users_line  # noqa: F401

OSPREYCTL = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")


def ctl(o, *args, check=True):
    p = subprocess.run([OSPREYCTL, "-s", o.ctl_socket] + list(args),
                       capture_output=True, text=True, timeout=10)
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p


def rewrite_conf(o, old, new):
    with open(o.conf) as f:
        text = f.read()
    assert old in text, text
    with open(o.conf, "w") as f:
        f.write(text.replace(old, new))


@pytest.fixture
def notify(tmp_path, monkeypatch):
    """A NOTIFY_SOCKET listener; .messages() returns what came so far."""
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    got = []

    class N:
        @staticmethod
        def messages(wait=0.3):
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    got.append(s.recv(4096).decode())
                except socket.timeout:
                    pass
            return list(got)
    yield N
    s.close()


def test_sd_notify_ready_reload_stopping(sipnet, notify):
    net = sipnet()
    msgs = notify.messages()
    assert any("READY=1" in m for m in msgs), msgs
    assert any(m.startswith("STATUS=") and "transactions" in m
               for m in msgs), msgs
    assert any(re.search(r"STATUS=.*, 0 registrations", m) for m in msgs), msgs
    ctl(net.proxy, "reload")
    msgs = notify.messages()
    i = max(i for i, m in enumerate(msgs) if "RELOADING=1" in m)
    assert any("READY=1" in m for m in msgs[i + 1:]), msgs
    net.proxy.proc.send_signal(signal.SIGTERM)
    net.proxy.proc.wait(5)
    assert any("STOPPING=1" in m for m in notify.messages()), msgs


def test_reload_keeps_ringing_call_and_takes_new_routes(sipnet):
    """A call ringing during a reload completes; new calls use the new
    route; a bad config is refused and changes nothing."""
    net = sipnet()
    call = net.call()
    inv = net.ring(call)
    rewrite_conf(net.proxy, '"^bob$"', '"^carol$"')
    net.proxy.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert "config reloaded" in net.proxy.log_text()
    net.uas.respond(inv, 200, body=SDP)
    ok = net.caller.expect(call.resp(200))
    call.ack(ok)
    net.uas.expect("ACK", call_id=call.call_id)
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    net.caller.expect(call.resp(200, "BYE"))
    # the new routes: bob is gone, carol goes to the UAS
    c2 = net.call("sip:bob@example.test")
    c2.invite()
    r = net.caller.expect(c2.resp(NON2XX))
    assert r.code == 404, r
    c2.ack(r)
    c3 = net.call("sip:carol@example.test")
    c3.invite()
    inv3 = net.uas.expect("INVITE", call_id=c3.call_id)
    net.uas.respond(inv3, 486)
    c3.ack(net.caller.expect(c3.resp(486)))
    # a bad config: refused with file:line, the running one stays
    rewrite_conf(net.proxy, "log_level", "bogus_key = 1;\nlog_level")
    p = ctl(net.proxy, "reload", check=False)
    assert p.returncode == 1
    assert "unknown key bogus_key" in p.stderr and ":" in p.stderr, p.stderr
    c4 = net.call("sip:carol@example.test")
    c4.invite()
    net.uas.expect("INVITE", call_id=c4.call_id)
    assert net.proxy.alive()


def test_reload_during_cancel_still_gives_487(sipnet):
    net = sipnet()
    call = net.call()
    inv = net.ring(call)
    ctl(net.proxy, "reload")
    call.cancel()
    net.caller.expect(call.resp(200, "CANCEL"))
    can = net.uas.expect("CANCEL", call_id=call.call_id)
    assert can.branch == inv.branch
    net.uas.respond(can, 200)
    net.uas.respond(inv, 487)
    r = net.caller.expect(call.resp(NON2XX))
    assert r.code == 487
    call.ack(r)


def test_graceful_stop(sipnet):
    """SIGTERM: a new call gets 503 with Retry-After, the ringing one still
    completes, then the daemon exits 0 by itself."""
    net = sipnet(extra="shutdown_grace = 3000;")
    call = net.call()
    inv = net.ring(call)
    net.proxy.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    c2 = net.call()
    c2.invite()
    r = net.caller.expect(c2.resp(NON2XX))
    assert r.code == 503 and r.get("retry-after"), r
    c2.ack(r)
    assert net.proxy.alive(), "it must wait for the pending call"
    net.uas.respond(inv, 200, body=SDP)
    ok = net.caller.expect(call.resp(200))
    call.ack(ok)
    net.uas.expect("ACK", call_id=call.call_id)
    assert net.proxy.proc.wait(3) == 0


def test_graceful_stop_bound(sipnet):
    """A call that never ends does not keep the daemon: it stops after
    shutdown_grace."""
    net = sipnet(extra="shutdown_grace = 700;", timers={"c": 60000})
    call = net.call()
    net.ring(call)
    t0 = time.monotonic()
    net.proxy.proc.send_signal(signal.SIGTERM)
    assert net.proxy.proc.wait(3) == 0
    assert 0.5 < time.monotonic() - t0 < 2.0


def test_ospreyctl_verbs(sipnet):
    net = sipnet()
    o = net.proxy
    st = json.loads(ctl(o, "--json", "status").stdout)
    assert st["transactions"] == 0 and st["version"]
    assert "transactions open" in ctl(o, "status").stdout
    call = net.call()
    inv = net.ring(call)
    txs = json.loads(ctl(o, "--json", "transactions").stdout)
    kinds = {t["kind"] for t in txs if t["call_id"] == call.call_id}
    assert {"ist", "ict"} <= kinds, txs
    only = json.loads(ctl(o, "--json", "transactions", call.call_id).stdout)
    assert only and all(t["call_id"] == call.call_id for t in only)
    assert json.loads(ctl(o, "-j", "transactions", "nosuch").stdout) == []
    stats = json.loads(ctl(o, "--json", "stats").stdout)
    assert stats["requests.INVITE"] == 1, stats
    assert stats["responses_in.180"] == 1, stats
    assert ctl(o, "loglevel", "warning").returncode == 0
    assert ctl(o, "loglevel", "loud", check=False).returncode == 1
    # Nobody has registered: an empty list (test_registrar has the rest).
    p = ctl(o, "registrations")
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout
    assert ctl(o, "--json", "registrations").stdout.strip() == "[]"
    # a CSeq that is not a number is refused, not read as 0
    for bad in ("abc", "1x", "-1", "4294967296"):
        p = ctl(o, "cancel", call.call_id, bad, check=False)
        assert p.returncode == 1 and "must be a number" in p.stderr, p
    # cancel from the outside: CANCEL with the INVITE's branch, 487 up
    assert ctl(o, "cancel", call.call_id, "1").returncode == 0
    can = net.uas.expect("CANCEL", call_id=call.call_id)
    assert can.branch == inv.branch and can.cseq == (1, "CANCEL")
    net.uas.respond(can, 200)
    net.uas.respond(inv, 487)
    r = net.caller.expect(call.resp(NON2XX))
    assert r.code == 487
    call.ack(r)
    p = ctl(o, "cancel", call.call_id, "1", check=False)
    assert p.returncode == 1, p
    p = ctl(o, "cancel", "no-such-call", "1", check=False)
    assert p.returncode == 1 and "no INVITE" in p.stderr
    p = ctl(o, "frobnicate", check=False)
    assert p.returncode == 1 and "unknown command" in p.stderr


def test_ospreyctl_without_daemon(tmp_path):
    p = subprocess.run([OSPREYCTL, "-s", str(tmp_path / "none.sock"),
                        "status"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 3
    assert "is ospreyd running" in p.stderr


# ------------------------------------------------ ospreyctl and the config

def test_ospreyctl_finds_socket_in_config(sipnet, tmp_path):
    """-c FILE: the control socket is the one the config names (read by
    the daemon's own loader); a config without a socket is an error."""
    o = sipnet().proxy
    p = subprocess.run([OSPREYCTL, "-c", o.conf, "-j", "status"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["pid"] == o.proc.pid
    off = tmp_path / "off.conf"
    off.write_text(open(o.conf).read().replace(
        'socket = "%s"' % o.ctl_socket, 'socket = ""'))
    p = subprocess.run([OSPREYCTL, "-c", str(off), "status"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "control socket off" in p.stderr, p
    bad = tmp_path / "bad.conf"
    bad.write_text("listen = 5;\n")
    p = subprocess.run([OSPREYCTL, "-c", str(bad), "status"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and str(bad) + ":1:" in p.stderr, p


def can_overlay_etc():
    if os.geteuid() != 0:
        return False
    try:
        return subprocess.run(["unshare", "-m", "true"],
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_with_etc_osprey(tmp_path, conf_text, argv):
    """argv in a mount namespace whose /etc is an overlay with
    /etc/osprey/osprey.conf = conf_text (None: no such file) and whose
    /run/osprey is empty.  The host's /etc and /run are not touched."""
    up, work = tmp_path / "up", tmp_path / "work"
    up.mkdir()
    work.mkdir()
    script = ("mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,"
              "workdir=%s /etc || exit 99\n" % (up, work))
    script += "rm -rf /etc/osprey\n"
    # A daemon of the host's own on the default socket is not ours.
    script += "[ ! -d /run/osprey ] || mount -t tmpfs tmpfs /run/osprey\n"
    if conf_text is not None:
        src = tmp_path / "default.conf"
        src.write_text(conf_text)
        script += "mkdir /etc/osprey && cp %s /etc/osprey/osprey.conf\n" % src
    script += 'exec "$@"\n'
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh"] + argv,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 99, p.stderr
    return p


@pytest.mark.skipif(not can_overlay_etc(),
                    reason="needs root and mount namespaces")
def test_ospreyctl_default_config(sipnet, tmp_path):
    """Neither -s nor -c: the socket of /etc/osprey/osprey.conf; without
    that file, the default socket."""
    o = sipnet().proxy
    p = run_with_etc_osprey(tmp_path, open(o.conf).read(),
                            [OSPREYCTL, "-j", "status"])
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["pid"] == o.proc.pid
    (tmp_path / "b").mkdir()
    p = run_with_etc_osprey(tmp_path / "b", None, [OSPREYCTL, "status"])
    assert p.returncode == 3, p
    assert "/run/osprey/ospreyd.sock" in p.stderr, p


def test_check_config_prints_ok(tmp_path):
    """ospreyd -t: FILE: configuration OK on stdout, exit 0."""
    conf = tmp_path / "osprey.conf"
    conf.write_text('listen = ( { transport = "udp"; address = "127.0.0.1";'
                    ' port = 5999; } );\n')
    p = subprocess.run([OSPREYD, "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p
    assert p.stdout == "%s: configuration OK\n" % conf, p
    assert p.stderr == ""


def test_transactions_show_cseq(sipnet):
    """transactions: the CSeq number and method, in text and JSON; the
    number is the one cancel takes."""
    net = sipnet()
    o = net.proxy
    call = net.call()
    inv = net.ring(call)
    txs = json.loads(ctl(o, "-j", "transactions", call.call_id).stdout)
    assert txs, txs
    for t in txs:
        assert (t["cseq"], t["method"]) == inv.cseq, (t, inv.cseq)
    text = ctl(o, "transactions", call.call_id).stdout
    rows = [ln.split() for ln in text.splitlines()[1:]]
    assert text.splitlines()[0].split()[4] == "CSEQ", text
    assert rows and all(r[4:6] == [str(inv.cseq[0]), "INVITE"]
                        for r in rows), text
    assert ctl(o, "cancel", call.call_id, str(txs[0]["cseq"])).returncode == 0
    can = net.uas.expect("CANCEL", call_id=call.call_id)
    net.uas.respond(can, 200)
    net.uas.respond(inv, 487)
    r = net.caller.expect(call.resp(NON2XX))
    call.ack(r)


def test_reload_says_what_changed(osprey_factory):
    """ospreyctl reload prints 'reloaded' and each change; the log has the
    same lines; JSON has them as a list."""
    o = osprey_factory(extra='routes = ( { user = "^bob$"; targets = '
                       '[ "sip:127.0.0.1:5997" ]; }, { name = "gw"; '
                       'user = "^9"; targets = [ "sip:127.0.0.1:5999" ]; } );'
                       '\nlog_level = "info";')
    p = ctl(o, "reload")
    assert p.stdout == "reloaded\n  no configuration changes\n", p.stdout
    rewrite_conf(o, '"sip:127.0.0.1:5999"', '"sip:127.0.0.1:5998"')
    rewrite_conf(o, '"^bob$"', '"^carol$"')
    rewrite_conf(o, '"example.test"', '"example.test", "example.org"')
    rewrite_conf(o, "t1 = 50;", "t1 = 60;")
    rewrite_conf(o, 'log_level = "info"', 'log_level = "notice"')
    p = ctl(o, "reload")
    lines = p.stdout.splitlines()
    assert lines[0] == "reloaded", p.stdout
    got = {ln.strip() for ln in lines[1:]}
    want = {"route gw: changed: target sip:127.0.0.1:5999 removed; "
            "target sip:127.0.0.1:5998 added",
            "route user=^bob$ domain=*: removed",
            "route user=^carol$ domain=*: added",
            "domain added: example.org",
            "log_level: info -> notice"}
    assert want <= got, got
    # t1 and the timers derived from it (D = 64*T1)
    timers = [ln for ln in got if ln.startswith("timers: ")]
    assert len(timers) == 1 and timers[0].startswith("timers: t1=50 ") \
        and " -> t1=60 " in timers[0], got
    want |= set(timers)
    log = o.log_text()
    for ln in want:
        assert "ospreyd: reload: " + ln in log, (ln, log)
    assert "config reloaded from %s, %d change(s)" % (o.conf, len(got)) \
        in log, log
    p = ctl(o, "-j", "reload")
    assert json.loads(p.stdout) == {"reloaded": True,
                                    "changes": ["no configuration changes"]}


def test_reload_counts_users(reglab):
    """The users file is read again on reload, and the count is said."""
    o = reglab.start(users={"alice": "a", "bob": "b"})
    with open(os.path.join(o.workdir, "users"), "a") as f:
        f.write(users_line("carol", "example.test", "c") + "\n")
    p = ctl(o, "reload")
    assert "auth.users: %s read again, 3 user(s)" % os.path.join(
        o.workdir, "users") in p.stdout, p.stdout
    assert "auth: " in p.stdout, p.stdout
    assert "auth.users %s read again, 3 user(s)" % os.path.join(
        o.workdir, "users") in o.log_text()


def test_reload_listen_restart_warning_compares_with_bound(sipnet):
    """A listen change needs a restart and says so; changed back to the
    bound port, it no longer does (compared with what is bound, not with
    the last config)."""
    o = sipnet().proxy
    warn = "listen changes take effect at the next restart"
    port = "port = %d;" % o.port
    rewrite_conf(o, port, "port = %d;" % (o.port + 1 if o.port < 65535
                                          else o.port - 1))
    p1 = ctl(o, "reload")
    assert o.log_text().count(warn) == 1
    rewrite_conf(o, "port = %d;" % (o.port + 1 if o.port < 65535
                                    else o.port - 1), port)
    p2 = ctl(o, "reload")
    assert o.log_text().count(warn) == 1, o.log_text()
    assert "listen: takes effect at the next restart" in p1.stdout, p1.stdout
    assert "next restart" not in p2.stdout, p2.stdout
    assert "listen: " in p2.stdout, p2.stdout   # changed back, from the last
