"""Interop: baresip (a real UA, Debian baresip-core) as the called party.

baresip runs with an account that never registers (regint=0); ospreyd has a
static route to baresip's sip_listen port. A SIPp UAC calls through the
proxy:

- answermode=manual: baresip rings (180) and waits; the SIPp UAC
  (uac_cancel.xml) CANCELs on 180 and must get 487. baresip's SIP trace
  (-s) must show the CANCEL coming from the proxy with the INVITE's branch,
  its own 487, the proxy's hop-by-hop ACK, and the call closed, never
  answered.
- answermode=auto: a full call (uac_call.xml): 180, 200, ACK and BYE reach
  baresip through the proxy (loose routing on the Record-Route), the call is
  established and then terminated. The route target has a user part
  (sip:carol@...), so the proxy must also rewrite the Request-URI.
"""

import time

import pytest

from conftest import free_udp_port
from peers import interop

pytestmark = [
    pytest.mark.skipif(interop.SIPP is None,
                       reason="SIPp not installed (apt-get install "
                              "sip-tester)"),
    pytest.mark.skipif(interop.BARESIP is None,
                       reason="baresip not installed (apt-get install "
                              "baresip-core)"),
]


def _report(osprey, cap, *peers):
    parts = [p.report() for p in peers if p is not None]
    parts.append("==== SIP on the wire (tshark, lo)\n" + cap.summary())
    parts.append("==== ospreyd alive: %s" % osprey.alive())
    return "\n".join(parts)


def _find(msgs, pred):
    return [m for m in msgs if pred(m)]


def test_baresip_manual_answer_cancelled(osprey_factory, tmp_path):
    wd = str(tmp_path)
    uac_port = free_udp_port()
    bs = interop.Baresip(wd, user="bob", answermode="manual")
    uac = cap = None
    try:
        # uac_cancel.xml waits 2.5 s at most for the 487; the proxy would
        # only generate its own after 8 s (timers.cancel) or 32 s (64*T1):
        # baresip's 487 must be relayed.
        osprey = osprey_factory(
            routes=[("^bob$", ["sip:127.0.0.1:%d" % bs.port])],
            timers={"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000})
        cap = interop.Capture(wd, [osprey.port, bs.port, uac_port])
        uac = interop.uac(wd, "uac_cancel.xml", osprey.port, uac_port,
                          timeout_s=15)
        rc = uac.wait()
        # let baresip log the end of the session, then stop it (SIGTERM)
        time.sleep(0.5)
        bs.stop()
        cap.stop()
        why = _report(osprey, cap, uac, bs)
        assert rc == 0, "SIPp UAC exit %s (no 487?)\n%s" % (rc, why)

        proxy = "127.0.0.1:%d" % osprey.port
        me = "127.0.0.1:%d" % bs.port
        msgs = bs.messages()
        invites = _find(msgs, lambda m: m["start"].startswith("INVITE ")
                        and m["src"] == proxy)
        assert invites, "baresip got no INVITE from the proxy\n" + why
        inv_branch = interop.top_branch(invites[0]["text"])
        assert inv_branch and inv_branch.startswith("z9hG4bK"), why

        assert _find(msgs, lambda m: m["start"].startswith("SIP/2.0 180")
                     and m["dst"] == proxy), "baresip sent no 180\n" + why

        cancels = _find(msgs, lambda m: m["start"].startswith("CANCEL ")
                        and m["src"] == proxy and m["dst"] == me)
        assert cancels, "no CANCEL reached baresip from the proxy\n" + why
        c = cancels[0]["text"]
        assert interop.top_branch(c) == inv_branch, \
            "CANCEL branch %s != INVITE branch %s\n%s" % (
                interop.top_branch(c), inv_branch, why)
        assert cancels[0]["start"].split()[1] == \
            invites[0]["start"].split()[1], "CANCEL Request-URI differs\n" + why
        assert len(interop.header(c, "Via")) == 1, \
            "CANCEL must carry exactly one Via\n" + why

        r487 = _find(msgs, lambda m: m["start"].startswith("SIP/2.0 487")
                     and m["dst"] == proxy)
        assert r487, "baresip sent no 487\n" + why
        acks = _find(msgs, lambda m: m["start"].startswith("ACK ")
                     and m["src"] == proxy)
        assert acks, "the proxy did not ACK baresip's 487\n" + why
        assert interop.top_branch(acks[0]["text"]) == inv_branch, \
            "hop-by-hop ACK must use the INVITE's branch\n" + why

        text = bs.text()
        assert "Incoming call from" in text, why
        assert "session closed" in text, why
        assert "Call established" not in text, why
        assert not _find(msgs, lambda m: m["start"].startswith("SIP/2.0 200")
                         and "INVITE" in " ".join(
                             interop.header(m["text"], "CSeq"))), \
            "baresip answered a cancelled call\n" + why
        assert osprey.alive()
    finally:
        if uac is not None:
            uac.stop()
        if cap is not None:
            cap.stop()
        bs.stop()


def test_baresip_auto_answer_full_call(osprey_factory, tmp_path):
    wd = str(tmp_path)
    uac_port = free_udp_port()
    bs = interop.Baresip(wd, user="carol", answermode="auto")
    uac = cap = None
    try:
        osprey = osprey_factory(
            routes=[("^bob$", ["sip:carol@127.0.0.1:%d" % bs.port])])
        cap = interop.Capture(wd, [osprey.port, bs.port, uac_port])
        uac = interop.uac(wd, "uac_call.xml", osprey.port, uac_port,
                          timeout_s=15)
        rc = uac.wait()
        time.sleep(0.5)
        bs.stop()
        cap.stop()
        why = _report(osprey, cap, uac, bs)
        assert rc == 0, "SIPp UAC exit %s\n%s" % (rc, why)

        proxy = "127.0.0.1:%d" % osprey.port
        msgs = bs.messages()
        invites = _find(msgs, lambda m: m["start"].startswith("INVITE ")
                        and m["src"] == proxy)
        assert invites, "baresip got no INVITE from the proxy\n" + why
        assert invites[0]["start"].startswith(
            "INVITE sip:carol@127.0.0.1:%d" % bs.port), \
            "target with a user part must replace the Request-URI\n" + why
        rr = interop.header(invites[0]["text"], "Record-Route")
        assert rr and ("127.0.0.1:%d" % osprey.port) in rr[0], \
            "INVITE lacks the proxy's Record-Route\n" + why

        for method in ("ACK", "BYE"):
            got = _find(msgs, lambda m: m["start"].startswith(method + " ")
                        and m["src"] == proxy)
            assert got, "no %s reached baresip through the proxy\n%s" % (
                method, why)
            assert not interop.header(got[0]["text"], "Route"), \
                "%s still carries a Route to baresip\n%s" % (method, why)
        assert _find(msgs, lambda m: m["start"].startswith("SIP/2.0 200")
                     and m["dst"] == proxy
                     and "BYE" in " ".join(interop.header(m["text"], "CSeq"))
                     ), "baresip did not answer the BYE\n" + why

        text = bs.text()
        assert "Call established" in text, why
        assert "terminated" in text, why
        assert osprey.alive()
    finally:
        if uac is not None:
            uac.stop()
        if cap is not None:
            cap.stop()
        bs.stop()
