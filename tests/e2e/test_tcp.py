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
