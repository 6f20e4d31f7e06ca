"""SIP over TCP (RFC 3261 18): SIPp over TCP (-t t1) through a real ospreyd.

The proxy listens on UDP and TCP on the same port. Calls, CANCEL and an
unmatched CANCEL run with both SIPp sides on TCP; a UDP caller reaches a
TCP callee with the Record-Route doubled (RFC 5658), so that the ACK and
BYE the caller builds from its route set reach the callee over TCP. The
scenarios are the UDP ones (tests/sipp); a SIPp started with -t t1 listens
and sends on TCP only, so a delivered message proves the transport.
"""

import os
import re
import socket
import time

import pytest

from conftest import free_udp_port
from peers import interop

pytestmark = pytest.mark.skipif(
    interop.SIPP is None,
    reason="SIPp not installed (apt-get install sip-tester)")

INTEROP_TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}


def both_ports():
    """A port free for UDP and TCP alike (ospreyd listens on both)."""
    return interop.free_udp_block(1, tcp=True)


def tcp_osprey(osprey_factory, routes, **kw):
    port = both_ports()
    return osprey_factory(
        routes=routes, port=port, timers=INTEROP_TIMERS,
        listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)],
        **kw)


def _report(osprey, cap, *peers):
    parts = [p.report() for p in peers if p is not None]
    parts.append("==== SIP on the wire (tshark, lo)\n" + cap.summary())
    parts.append("==== ospreyd alive: %s" % osprey.alive())
    return "\n".join(parts)


def run_pair(osprey_factory, tmp_path, uas_scn, uac_scn, uas_t, uac_t,
             calls=1, rate=None, timeout_s=20):
    wd = str(tmp_path)
    uas_port = interop.free_udp_block(1, tcp=True)
    uac_port = interop.free_udp_block(1, tcp=True)
    target = "sip:127.0.0.1:%d" % uas_port
    if uas_t == "t1":
        target += ";transport=tcp"
    osprey = tcp_osprey(osprey_factory, [("^bob$", [target])])
    cap = interop.Capture(wd, [osprey.port, uas_port, uac_port])
    uas = uac = None
    try:
        uas = interop.uas(wd, uas_scn, uas_port, osprey.port, calls=calls,
                          timeout_s=timeout_s, transport=uas_t)
        uac = interop.uac(wd, uac_scn, osprey.port, uac_port, calls=calls,
                          rate=rate, timeout_s=timeout_s, transport=uac_t)
        rc_uac = uac.wait()
        rc_uas = uas.wait(limit=5 if rc_uac else None)
        cap.stop()
        assert (rc_uac, rc_uas) == (0, 0), \
            "SIPp UAC exit %s, UAS exit %s\n%s" % (
                rc_uac, rc_uas, _report(osprey, cap, uac, uas))
        assert osprey.alive()
    finally:
        for p in (uac, uas):
            if p is not None:
                p.stop()
        cap.stop()
    return osprey, uas, uac


def messages(peer):
    with open(peer.msg_file, errors="replace") as f:
        return f.read()


def test_tcp_call_both_sides(osprey_factory, tmp_path):
    """A whole call, both SIPp sides on TCP: the callee sees our Via as
    SIP/2.0/TCP and two Record-Route entries with ;transport=tcp: its own
    side's, then the caller's, whose user part is a flow token naming the
    caller's connection (RFC 5626 5.2) so that the callee's BYE goes back
    on it.  The callee's side has no token: we opened that connection."""
    osprey, uas, uac = run_pair(osprey_factory, tmp_path, "uas_call.xml",
                                "uac_call.xml", "t1", "t1")
    msgs = messages(uas)
    assert re.search(r"Via: SIP/2\.0/TCP 127\.0\.0\.1:%d;branch=z9hG4bK"
                     % osprey.port, msgs), msgs[:3000]
    rr = re.search(r"Record-Route: (.*)", msgs).group(1)
    entries = re.findall(r"<sip:([^>]*)>", rr)
    assert len(entries) == 2, rr
    assert entries[0].startswith("127.0.0.1:%d;lr;transport=tcp" %
                                 osprey.port), rr
    assert re.match(r"f[0-9a-f]+@127\.0\.0\.1:%d;lr;transport=tcp" %
                    osprey.port, entries[1]), rr


def test_tcp_cancel_both_sides(osprey_factory, tmp_path):
    """CANCEL over TCP: the callee's CANCEL has the INVITE's branch (the
    scenario checks it) and its 487 reaches the caller."""
    run_pair(osprey_factory, tmp_path, "uas_ring.xml", "uac_cancel.xml",
             "t1", "t1")


def test_tcp_unmatched_cancel_gets_481(osprey_factory, tmp_path):
    """A CANCEL over TCP that matches nothing: 481 on the connection."""
    wd = str(tmp_path)
    osprey = tcp_osprey(osprey_factory,
                        [("^bob$", ["sip:127.0.0.1:9;transport=tcp"])])
    uac = interop.uac(wd, "uac_unmatched_cancel.xml", osprey.port,
                      interop.free_udp_block(1, tcp=True), timeout_s=10,
                      transport="t1")
    try:
        rc = uac.wait()
        assert rc == 0, "no 481 over TCP (SIPp exit %s)\n%s" % (
            rc, uac.report())
    finally:
        uac.stop()


def test_udp_caller_tcp_callee_doubles_record_route(osprey_factory,
                                                     tmp_path):
    """RFC 5658: a UDP caller, a TCP callee. The INVITE carries two
    Record-Route entries (TCP side first, then the UDP side); the caller's
    ACK and BYE, routed by its route set over UDP, reach the callee over
    TCP (the UAS scenario waits for them)."""
    osprey, uas, uac = run_pair(osprey_factory, tmp_path, "uas_call.xml",
                                "uac_call.xml", "t1", "u1")
    msgs = messages(uas)
    rr = re.search(r"Record-Route: (.*)", msgs).group(1)
    entries = re.findall(r"<sip:([^>]*)>", rr)
    assert len(entries) == 2, rr
    assert "transport=tcp" in entries[0], rr
    assert "transport" not in entries[1], rr


def test_tcp_caller_udp_callee(osprey_factory, tmp_path):
    """The other way: a TCP caller, a UDP callee; the Via the callee sees
    is SIP/2.0/UDP, and the call completes both ways."""
    osprey, uas, uac = run_pair(osprey_factory, tmp_path, "uas_call.xml",
                                "uac_call.xml", "u1", "t1")
    msgs = messages(uas)
    assert re.search(r"Via: SIP/2\.0/UDP 127\.0\.0\.1:%d;branch=z9hG4bK"
                     % osprey.port, msgs), msgs[:3000]


def test_tcp_20_calls(osprey_factory, tmp_path):
    """20 overlapping calls over one TCP connection each way."""
    run_pair(osprey_factory, tmp_path, "uas_call.xml", "uac_call.xml",
             "t1", "t1", calls=20, rate=10, timeout_s=30)


def big_call(osprey_factory, tmp_path, uas_t, target_suffix="", conf=""):
    """SIPp UAC over UDP with a ~5.5 KB SDP -> ospreyd -> SIPp UAS."""
    wd = str(tmp_path)
    uas_port = interop.free_udp_block(1, tcp=True)
    port = both_ports()
    osprey = osprey_factory(
        routes=[("^bob$", ["sip:127.0.0.1:%d%s" % (uas_port,
                                                   target_suffix)])],
        port=port, timers=INTEROP_TIMERS, extra=conf,
        listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)])
    uas = interop.uas(wd, "uas_call.xml", uas_port, osprey.port,
                      transport=uas_t, timeout_s=15)
    uac = interop.uac(wd, "uac_call_big.xml", osprey.port,
                      interop.free_udp_block(1, tcp=True), timeout_s=15)
    try:
        rc = (uac.wait(), uas.wait(limit=5))
    finally:
        uac.stop()
        uas.stop()
    return rc, osprey, uas, uac


def test_big_udp_invite_goes_over_tcp(osprey_factory, tmp_path):
    """RFC 3261 18.1.1: a 5.5 KB INVITE from a UDP caller, to a next hop
    that asked for no transport, is sent over TCP: the callee (SIPp that
    listens on TCP only) gets it with our Via SIP/2.0/TCP and the call
    completes."""
    rc, o, uas, uac = big_call(osprey_factory, tmp_path, "t1")
    assert rc == (0, 0), uac.report() + uas.report()
    assert re.search(r"Via: SIP/2\.0/TCP 127\.0\.0\.1:%d;branch=" % o.port,
                     messages(uas))
    assert "over TCP, not UDP (udp_mtu 1300)" in o.log_text()


def test_big_invite_falls_back_to_udp(osprey_factory, tmp_path):
    """The callee speaks UDP only: the TCP connection is refused, and the
    same INVITE goes over UDP at once (not after Timer B)."""
    rc, o, uas, uac = big_call(osprey_factory, tmp_path, "u1")
    assert rc == (0, 0), uac.report() + uas.report() + o.log_text()[-3000:]
    log = o.log_text()
    assert "over TCP, not UDP" in log and "transport error" in log, log


def test_big_invite_udp_mtu_off(osprey_factory, tmp_path):
    """udp_mtu = 0: no switch; a TCP-only callee never hears of the call."""
    rc, o, uas, uac = big_call(osprey_factory, tmp_path, "t1",
                               conf="udp_mtu = 0;")
    assert rc[0] != 0
    assert "over TCP" not in o.log_text()


def test_udp_caller_with_big_sdp_reaches_tcp_callee(osprey_factory,
                                                     tmp_path):
    """A next hop with ;transport=tcp: the big INVITE from UDP gets there
    over TCP, and the whole call completes."""
    rc, o, uas, uac = big_call(osprey_factory, tmp_path, "t1",
                               ";transport=tcp")
    assert rc == (0, 0), uac.report() + uas.report()
