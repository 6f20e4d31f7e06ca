"""Worker loops (osprey.conf "workers"): every message of a call reaches
the worker that holds its transactions, whichever socket took it.

ospreyd runs with workers = 2 here, whatever OSPREY_TEST_WORKERS says.
Each worker has its own UDP socket on the listen address (SO_REUSEPORT);
the kernel picks one by the sender's address and port, and the worker of
the call's Call-ID handles the message (doc/HACKING.md, "Workers").  So
the tests send from many source ports: the INVITE from one, the CANCEL
and the ACK from another, the callee's answers from a third, and check
that nothing was answered by a worker that did not know the call (a
CANCEL or an ACK matched against the wrong table gets 481 or is relayed
as if new).  `ospreyctl stats` counts the hand-overs (workers.N.*).

tests/sanitize/run-sanitized runs this file again against a
ThreadSanitizer build (any report fails the test: the daemon's exit
status is checked when the fixture stops it).
"""

import os
import signal
import time

import pytest

from conftest import (OSPREYD, conf_text, ctl, ctl_stats, free_udp_port,
                      reload_conf)
from peers import interop
from sip import NON2XX, Endpoint, UAC, UAS, match, reglab  # noqa: F401

REG = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600}

W2 = "workers = 2;"


def handed(stats):
    """(handed out, handed in, stream sends given to worker 0), summed."""
    out = sum(v for k, v in stats.items()
              if k.startswith("workers.") and k.endswith(".handed_out"))
    got = sum(v for k, v in stats.items()
              if k.startswith("workers.") and k.endswith(".handed_in"))
    streams = sum(v for k, v in stats.items()
                  if k.startswith("workers.") and k.endswith(".stream_out"))
    return out, got, streams


def test_status_counts_workers(osprey_factory):
    o = osprey_factory(extra=W2)
    assert "workers                  2" in ctl(o, "status")
    stats = ctl_stats(o)
    assert "workers.1.handed_in" in stats, stats


def test_workers_auto_is_one_per_cpu(osprey_factory):
    o = osprey_factory(extra="workers = 0;")
    want = len(os.sched_getaffinity(0))
    line = [x for x in ctl(o, "status").splitlines()
            if x.startswith("workers ")]
    assert line and line[0].split()[-1] == str(want), line


def test_cancel_and_ack_from_other_ports(osprey_factory):
    """16 calls: each INVITE from its own port, its CANCEL and the ACK for
    the 487 from another; the callee answers from a third.  Every CANCEL
    must get its 200 and cancel the INVITE downstream (hop by hop, with
    the INVITE's branch), and every caller its 487."""
    uas = UAS(Endpoint())
    o = osprey_factory(routes=[("^bob$", [uas.target])], extra=W2)
    eps = [Endpoint() for _ in range(32)]
    try:
        calls = []
        for i in range(16):
            call = UAC(eps[2 * i], o.addr)
            call.invite()
            inv = uas.expect("INVITE", call_id=call.call_id)
            uas.respond(inv, 180)
            call.ep.expect(call.resp(180))
            calls.append((call, inv, eps[2 * i + 1]))
        for call, inv, other in calls:
            other.send(call.cancel(send=False), o.addr)
            ok = other.expect(match(code=200, cseq_method="CANCEL",
                                    call_id=call.call_id))
            assert ok.code == 200, ok
            cancel = uas.expect("CANCEL", call_id=call.call_id)
            assert cancel.branch == inv.branch
            uas.respond(cancel, 200)
            uas.respond(inv, 487)
            final = call.ep.expect(call.resp(NON2XX))
            assert final.code == 487, final
            ack = uas.expect("ACK", call_id=call.call_id)
            assert ack.branch == inv.branch
            other.send(call.ack(final, send=False), o.addr)
        # The callers' ACKs were absorbed hop by hop, none forwarded.
        more = uas.ep.collect(0.5, match(method="ACK"))
        assert more == [], more
        stats = ctl_stats(o)
        out, got, _ = handed(stats)
        assert out > 0 and got == out, stats
        assert stats["sent_481"] == 0, stats
    finally:
        for ep in eps:
            ep.close()
        uas.ep.close()


def test_full_calls_answered_from_other_ports(osprey_factory):
    """A full call per caller port, ACK and BYE from another port, the
    2xx from the callee's port: all complete, and the proxy's own
    retransmission absorption (the callee's 200 to the BYE sent twice)
    happens on the worker that has the transaction."""
    uas = UAS(Endpoint())
    o = osprey_factory(routes=[("^bob$", [uas.target])], extra=W2)
    eps = [Endpoint() for _ in range(20)]
    try:
        for i in range(10):
            call = UAC(eps[2 * i], o.addr)
            inv_bytes = call.invite()
            inv = uas.expect("INVITE", call_id=call.call_id)
            uas.respond(inv, 200)
            ok = call.ep.expect(call.resp(200))
            ack = call.ack(ok, send=False)
            eps[2 * i + 1].send(ack, o.addr)
            uas.expect("ACK", call_id=call.call_id)
            # The caller retransmits its INVITE after the 2xx: absorbed.
            eps[2 * i + 1].send(inv_bytes, o.addr)
            bye = call.bye(send=False)
            eps[2 * i + 1].send(bye, o.addr)
            got = uas.expect("BYE", call_id=call.call_id)
            uas.respond(got, 200)
            uas.respond(got, 200)       # a retransmission: absorbed
            eps[2 * i + 1].expect(match(code=200, cseq_method="BYE",
                                        call_id=call.call_id))
            dup = eps[2 * i + 1].collect(0.2, match(
                code=200, cseq_method="BYE", call_id=call.call_id))
            assert dup == [], "the BYE's 200 relayed twice: %r" % dup
        invites = uas.ep.collect(0.3, match(method="INVITE"))
        assert invites == [], "INVITE retransmission forwarded: %r" % invites
        out, got, _ = handed(ctl_stats(o))
        assert out > 0 and got == out
    finally:
        for ep in eps:
            ep.close()
        uas.ep.close()


def _sipp_calls(osprey_factory, tmp_path, transport, uacs=4, calls=40):
    uas_port = free_udp_port()
    lst = [("udp", "127.0.0.1", None)]     # the daemon's port
    if transport == "t1":
        lst.append(("tcp", "127.0.0.1", None))
    o = osprey_factory(routes=[("^bob$", ["sip:127.0.0.1:%d" % uas_port])],
                       listen=lst,
                       timers={"t1": 500, "t2": 4000, "t4": 5000,
                               "cancel": 8000}, extra=W2)
    wd = str(tmp_path)
    uas = interop.uas(os.path.join(wd), "uas_call.xml", uas_port, o.port,
                      calls=uacs * calls, timeout_s=60)
    procs = []
    try:
        for i in range(uacs):
            d = os.path.join(wd, "uac%d" % i)
            os.mkdir(d)
            procs.append(interop.uac(d, "uac_call.xml", o.port,
                                     free_udp_port(), calls=calls, rate=20,
                                     timeout_s=60, transport=transport))
        rcs = [p.wait() for p in procs]
        rc_uas = uas.wait(limit=5 if any(rcs) else None)
        assert rcs == [0] * uacs and rc_uas == 0, "\n".join(
            p.report() for p in procs + [uas])
    finally:
        for p in procs + [uas]:
            p.stop()
    stats = ctl_stats(o)
    assert stats["requests.INVITE"] == uacs * calls, stats
    return stats


@pytest.mark.skipif(interop.SIPP is None, reason="SIPp not installed")
def test_sipp_calls_over_udp(osprey_factory, tmp_path):
    """SIPp callers on four ports, a SIPp callee: 160 full calls with
    Record-Route, every scenario check passes."""
    stats = _sipp_calls(osprey_factory, tmp_path, "u1")
    out, got, _ = handed(stats)
    assert out > 0 and got == out, stats


@pytest.mark.skipif(interop.SIPP is None, reason="SIPp not installed")
def test_sipp_calls_over_tcp(osprey_factory, tmp_path):
    """SIPp callers over TCP (connections are worker 0's), the callee over
    UDP: the calls another worker owns send their responses to the caller
    through worker 0 (workers.N.stream_out)."""
    stats = _sipp_calls(osprey_factory, tmp_path, "t1", uacs=2)
    out, got, streams = handed(stats)
    assert out > 0 and got == out and streams > 0, stats


def test_registered_user_called_from_every_worker(reglab):
    """REGISTER (the main loop's) and then calls to the user from many
    ports, so that both workers look the user up in the location."""
    reglab.start(registrar=REG, extra=W2)
    bob = reglab.phone("bob")
    assert bob.register(expires=600).code == 200
    for _ in range(12):
        call = reglab.caller("sip:bob@example.test")
        call.invite()
        inv = bob.uas.expect("INVITE", call_id=call.call_id)
        assert inv.uri == bob.contact_uri, inv.start
        bob.uas.respond(inv, 486)
        final = call.ep.expect(call.resp(NON2XX))
        assert final.code == 486, final
        call.ack(final)
    stats = ctl_stats(reglab.proxy)
    out, got, _ = handed(stats)
    assert out > 0 and got == out, stats
    assert stats["registrations"] == 1, stats


def test_reload_reaches_every_worker(osprey_factory):
    """After a reload that moves ^bob$ to another callee, calls from many
    ports (owned by both workers) all go to the new one."""
    old, new = UAS(Endpoint()), UAS(Endpoint())
    o = osprey_factory(routes=[("^bob$", [old.target])], extra=W2)
    text = conf_text(o.port, [("^bob$", [new.target])], workdir=o.workdir,
                     extra=W2)
    reload_conf(o, text)
    eps = [Endpoint() for _ in range(12)]
    try:
        for ep in eps:
            call = UAC(ep, o.addr)
            call.invite()
            inv = new.expect("INVITE", call_id=call.call_id)
            new.respond(inv, 486)
            final = ep.expect(call.resp(NON2XX))
            call.ack(final)
        assert old.ep.collect(0.3, match(method="INVITE")) == []
        out, got, _ = handed(ctl_stats(o))
        assert out > 0
    finally:
        for ep in eps + [old.ep, new.ep]:
            ep.close()


def test_graceful_stop_with_workers(osprey_factory):
    """SIGTERM with a call pending on each worker: the pending calls get
    their answers within shutdown_grace, then every thread ends and the
    daemon exits 0."""
    uas = UAS(Endpoint())
    o = osprey_factory(routes=[("^bob$", [uas.target])],
                       extra=W2 + "\nshutdown_grace = 3000;")
    eps = [Endpoint() for _ in range(8)]
    try:
        pending = []
        for ep in eps:
            call = UAC(ep, o.addr)
            call.invite()
            pending.append((call, uas.expect("INVITE",
                                             call_id=call.call_id)))
        o.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert o.alive(), "stopped with calls pending"
        late = UAC(Endpoint(), o.addr)
        late.invite()
        refused = late.ep.expect(late.resp(NON2XX))
        assert refused.code == 503, refused
        late.ep.close()
        for call, inv in pending:
            uas.respond(inv, 486)
            final = call.ep.expect(call.resp(NON2XX))
            assert final.code == 486, final
            call.ack(final)
        o.proc.wait(5)
        assert o.proc.returncode == 0
        assert "ospreyd: stopped" in o.log_text()
    finally:
        for ep in eps:
            ep.close()
        uas.ep.close()


def test_second_daemon_on_the_port_is_refused(osprey_factory, tmp_path):
    """SO_REUSEPORT lets the workers share the port, not another daemon:
    a second ospreyd on the same address and port exits with the bind
    error, as it did with one loop, and the first keeps every datagram."""
    import subprocess
    o = osprey_factory(extra=W2)
    conf = tmp_path / "second.conf"
    conf.write_text(conf_text(o.port, workdir=str(tmp_path), extra=W2))
    p = subprocess.run([OSPREYD, "-f", "-c", str(conf)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0, p
    assert "Address already in use" in p.stdout + p.stderr, p
    assert "workers                  2" in ctl(o, "status")
