"""Interop: SIPp (Debian sip-tester) and Net::SIP through a real ospreyd.

Each test starts ospreyd with a route "^bob$" -> a SIPp UAS on an ephemeral
loopback port, then a SIPp UAC calls sip:bob@127.0.0.1:<proxy port>. Both
SIPp runs must exit 0. The scenarios (tests/sipp/*.xml) hold the checks that
fail when the proxy is broken, e.g.:

- uas_call.xml: the INVITE, ACK and BYE arrive with the proxy's Via on top;
  the INVITE has Max-Forwards 69 and the proxy's Record-Route; the ACK and
  BYE no longer carry the proxy's Route;
- uac_call.xml: the 200 carries a Record-Route, and the ACK/BYE built from
  it ([routes], [next_url]) reach the UAS through the proxy;
- uas_ring.xml: the CANCEL has the INVITE's branch, Request-URI, CSeq
  number, a single Via, the caller's Reason; the ACK for the 487 has the
  INVITE's branch;
- uac_cancel.xml: a 487 for the INVITE comes back (200 for the CANCEL
  optional, either order);
- uac_unmatched_cancel.xml: a CANCEL for no transaction gets 481.

On failure the report has SIPp's error logs and the SIP flow captured on
lo with tshark (ospreyd's log is printed by the osprey_factory fixture).
"""

import socket
import subprocess

import pytest

from conftest import free_udp_port
from peers import interop

pytestmark = pytest.mark.skipif(
    interop.SIPP is None,
    reason="SIPp not installed (apt-get install sip-tester)")


def _report(osprey, cap, *peers):
    parts = [p.report() for p in peers if p is not None]
    parts.append("==== SIP on the wire (tshark, lo)\n" + cap.summary())
    if osprey is not None:
        parts.append("==== ospreyd alive: %s" % osprey.alive())
    return "\n".join(parts)


# uac_cancel.xml waits 2.5 s at most for the 487 (Net::SIP 5 s). The proxy
# generates a 487 of its own only after timers.cancel (8 s) or 64*T1 after
# its CANCEL (32 s), so a proxy that fails to relay the callee's 487 is
# caught. T1 = 500 ms also leaves loaded machines room for retransmissions.
INTEROP_TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}


def _run_pair(osprey_factory, tmp_path, uas_scn, uac_scn, calls=1,
              rate=None, uas_extra=(), timeout_s=20):
    """ospreyd + SIPp UAS (route target) + SIPp UAC; asserts both exit 0."""
    wd = str(tmp_path)
    uas_port = free_udp_port()
    uac_port = free_udp_port()
    osprey = osprey_factory(
        routes=[("^bob$", ["sip:127.0.0.1:%d" % uas_port])],
        timers=INTEROP_TIMERS)
    cap = interop.Capture(wd, [osprey.port, uas_port, uac_port])
    uas = uac = None
    try:
        uas = interop.uas(wd, uas_scn, uas_port, osprey.port, calls=calls,
                          extra=uas_extra, timeout_s=timeout_s)
        uac = interop.uac(wd, uac_scn, osprey.port, uac_port, calls=calls,
                          rate=rate, timeout_s=timeout_s)
        rc_uac = uac.wait()
        # a failed UAC leaves the UAS waiting for calls: do not wait long
        rc_uas = uas.wait(limit=5 if rc_uac else None)
        cap.stop()
        assert (rc_uac, rc_uas) == (0, 0), \
            "SIPp UAC exit %s, UAS exit %s\n%s" % (
                rc_uac, rc_uas, _report(osprey, cap, uac, uas))
        assert osprey.alive(), "ospreyd died\n" + _report(osprey, cap)
    finally:
        for p in (uac, uas):
            if p is not None:
                p.stop()
        cap.stop()
    return osprey, cap, uas, uac


def test_sipp_call_through_proxy(osprey_factory, tmp_path):
    """INVITE/180/200/ACK/BYE/200: a full call with record-routing."""
    _run_pair(osprey_factory, tmp_path, "uas_call.xml", "uac_call.xml")


def test_sipp_cancel_while_ringing(osprey_factory, tmp_path):
    """INVITE/180, CANCEL: the UAS sees a CANCEL matching the INVITE it got
    (same branch, Request-URI, CSeq number, one Via, Reason copied) and its
    487 reaches the caller, who ACKs it; the proxy ACKs the 487 hop by hop
    with the INVITE's branch."""
    osprey, cap, uas, uac = _run_pair(osprey_factory, tmp_path,
                                      "uas_ring.xml", "uac_cancel.xml")
    # The caller got a 487 for its INVITE (the UAC scenario requires it);
    # the UAS's own log shows the CANCEL it matched.
    logs = interop.tail(uas.log_file)
    assert "CANCEL CANCEL sip:bob@127.0.0.1:%d" % osprey.port in logs, logs


def test_sipp_unmatched_cancel_gets_481(osprey_factory, tmp_path):
    """A CANCEL that matches no INVITE: 481, and nothing is forwarded."""
    wd = str(tmp_path)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target_port = target.getsockname()[1]
    target.settimeout(0.5)
    uac_port = free_udp_port()
    osprey = osprey_factory(
        routes=[("^bob$", ["sip:127.0.0.1:%d" % target_port])])
    cap = interop.Capture(wd, [osprey.port, target_port, uac_port])
    uac = None
    try:
        uac = interop.uac(wd, "uac_unmatched_cancel.xml", osprey.port,
                          uac_port, timeout_s=10)
        rc = uac.wait()
        assert rc == 0, "expected 481 for the CANCEL (SIPp exit %s)\n%s" % (
            rc, _report(osprey, cap, uac))
        try:
            data, src = target.recvfrom(65535)
        except socket.timeout:
            data = None
        assert data is None, \
            "the unmatched CANCEL was forwarded to the route target:\n%s" % (
                data.decode(errors="replace"))
        assert osprey.alive()
    finally:
        target.close()
        if uac is not None:
            uac.stop()
        cap.stop()


@pytest.mark.parametrize("flow", ["call", "cancel"])
def test_sipp_50_calls_at_25_cps(osprey_factory, tmp_path, flow):
    """50 calls at 25 calls/s, overlapping: every one must succeed (call:
    full call with ACK/BYE through the proxy; cancel: CANCEL matched to
    the right INVITE among concurrent ones)."""
    if flow == "call":
        pair = ("uas_call.xml", "uac_call.xml")
    else:
        pair = ("uas_ring.xml", "uac_cancel.xml")
    _run_pair(osprey_factory, tmp_path, pair[0], pair[1], calls=50,
              rate=25, timeout_s=30)


@pytest.mark.skipif(not interop.have_netsip(),
                    reason="Net::SIP not installed (libnet-sip-perl)")
def test_netsip_uac_cancel_to_sipp_uas(osprey_factory, tmp_path):
    """Net::SIP UAC INVITEs, CANCELs on 180 and must get 487 within 5 s
    (relayed from the UAS, see INTEROP_TIMERS); the SIPp UAS
    (uas_ring.xml) checks the CANCEL the proxy forwarded. Net::SIP sends no
    Reason header, so that check is skipped (-set skip_reason 1)."""
    wd = str(tmp_path)
    uas_port = free_udp_port()
    uac_port = free_udp_port()
    osprey = osprey_factory(
        routes=[("^bob$", ["sip:127.0.0.1:%d" % uas_port])],
        timers=INTEROP_TIMERS)
    cap = interop.Capture(wd, [osprey.port, uas_port, uac_port])
    uas = None
    try:
        uas = interop.uas(wd, "uas_ring.xml", uas_port, osprey.port,
                          extra=["-set", "skip_reason", "1"], timeout_s=20)
        cmd = ["timeout", "-k", "5", "25", interop.PERL,
               interop.netsip_script("netsip_uac_cancel.pl"),
               "127.0.0.1:%d" % osprey.port, str(uac_port),
               "sip:bob@127.0.0.1:%d" % osprey.port, "5"]
        uac = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
        rc_uas = uas.wait()
        cap.stop()
        out = uac.stdout + uac.stderr
        assert uac.returncode == 0 and "UAC final: 487" in out, \
            "Net::SIP UAC exit %s:\n%s\n%s" % (
                uac.returncode, out, _report(osprey, cap, uas))
        assert rc_uas == 0, "SIPp UAS exit %s\n%s" % (
            rc_uas, _report(osprey, cap, uas))
        assert osprey.alive()
    finally:
        if uas is not None:
            uas.stop()
        cap.stop()
