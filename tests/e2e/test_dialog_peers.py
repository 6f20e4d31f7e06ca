"""Dialogs with real UAs as the parties (issue 13 item 3): the BYEs
Osprey sends itself on timers.dialog_timeout and `ospreyctl hangup` must
be ones a real UA takes as its peer's (RFC 3261 12.2.1.1, 15.1.2):
SIPp checks the tags, the Request-URI, the Via and the Route of the BYE
it gets; two baresips answer it 200 (a BYE that matched no dialog of
theirs would get 481) and close their calls."""

import json
import os
import subprocess
import time

import pytest

from conftest import OSPREYD
from peers import interop

OSPREYCTL = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")
TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}


def _report(osprey, cap, *peers):
    parts = [p.report() for p in peers if p is not None]
    if cap is not None:
        parts.append("==== SIP on the wire (tshark, lo)\n" + cap.summary())
    return "\n".join(parts)


@pytest.mark.skipif(interop.SIPP is None, reason="SIPp not installed")
@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_pair_hung_up_by_dialog_timeout(osprey_factory, tmp_path,
                                             transport):
    """Over TCP the BYEs go on the connections the parties' own requests
    came on (the caller's: SIPp listens for no new one)."""
    wd = str(tmp_path)
    uas_port = interop.free_udp_block(1, tcp=True)
    uac_port = interop.free_udp_block(1, tcp=True)
    port = interop.free_udp_block(1, tcp=True)
    target = "sip:127.0.0.1:%d" % uas_port
    if transport == "t1":
        target += ";transport=tcp"
    osprey = osprey_factory(
        routes=[("^bob$", [target])], port=port,
        listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)],
        timers=dict(TIMERS, dialog_timeout=2))
    cap = interop.Capture(wd, [osprey.port, uas_port, uac_port])
    uas = uac = None
    try:
        # uas_call.xml wants a BYE through the proxy (its Via on top, no
        # Route) and answers it; uac_hungup.xml checks the caller's.
        uas = interop.uas(wd, "uas_call.xml", uas_port, osprey.port,
                          timeout_s=20, transport=transport)
        uac = interop.uac(wd, "uac_hungup.xml", osprey.port, uac_port,
                          timeout_s=20, transport=transport)
        rc_uac = uac.wait()
        rc_uas = uas.wait(limit=5 if rc_uac else None)
        cap.stop()
        assert (rc_uac, rc_uas) == (0, 0), \
            "SIPp UAC exit %s, UAS exit %s\n%s" % (
                rc_uac, rc_uas, _report(osprey, cap, uac, uas))
        assert "ended by proxy" in osprey.log_text()
        assert "our BYE answered 200" in osprey.log_text()
    finally:
        for p in (uac, uas):
            if p is not None:
                p.stop()
        cap.stop()


def _bye_answers(bs, proxy):
    """Codes baresip answered the BYEs from the proxy with."""
    return [m["start"] for m in bs.messages()
            if m["dst"] == proxy and m["start"].startswith("SIP/2.0 ") and
            "BYE" in " ".join(interop.header(m["text"], "CSeq"))]


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_pair_hangup(osprey_factory, tmp_path):
    wd = str(tmp_path)
    callee = interop.Baresip(wd, user="bob", answermode="auto", secs=40)
    caller = None
    try:
        caller = interop.Baresip(wd, user="alice", answermode="manual",
                                 secs=40, ctrl=True)
        osprey = osprey_factory(
            routes=[("^bob$", ["sip:bob@127.0.0.1:%d" % callee.port])],
            timers=TIMERS)
        proxy = "127.0.0.1:%d" % osprey.port
        caller.dial("sip:bob@%s" % proxy)
        assert caller.wait_for("Call established", 10), \
            caller.report() + callee.report()
        deadline = time.time() + 5
        dialogs = []
        while time.time() < deadline:
            dialogs = json.loads(subprocess.run(
                [OSPREYCTL, "-s", osprey.ctl_socket, "-j", "dialogs"],
                capture_output=True, text=True, timeout=10).stdout)
            if dialogs and dialogs[0]["state"] == "confirmed":
                break
            time.sleep(0.1)
        assert len(dialogs) == 1, dialogs
        p = subprocess.run([OSPREYCTL, "-s", osprey.ctl_socket, "hangup",
                            dialogs[0]["call_id"]], capture_output=True,
                           text=True, timeout=10)
        assert p.returncode == 0, (p.stdout, p.stderr)
        for bs in (caller, callee):
            assert bs.wait_for(["terminated", "closed"], 10), bs.report()
        time.sleep(0.5)
        why = caller.report() + callee.report()
        assert _bye_answers(caller, proxy) == ["SIP/2.0 200 OK"], why
        assert _bye_answers(callee, proxy) == ["SIP/2.0 200 OK"], why
        assert osprey.log_text().count("our BYE answered 200") == 2
        assert json.loads(subprocess.run(
            [OSPREYCTL, "-s", osprey.ctl_socket, "-j", "dialogs"],
            capture_output=True, text=True, timeout=10).stdout) == []
    finally:
        if caller is not None:
            caller.stop()
        callee.stop()
