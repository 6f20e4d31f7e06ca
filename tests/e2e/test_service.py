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
from sip import NON2XX, SDP, match, sipnet  # noqa: F401

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
