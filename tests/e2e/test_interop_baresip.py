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

Then two baresips that register (auth_pass, MD5: baresip 1.0 gives up on
a SHA-256 challenge) and call each other, over UDP, TCP and TLS: the
account is <sip:alice@example.test;transport=T> with
outbound="sip:127.0.0.1:PORT;transport=T", so that REGISTER, INVITE and
the requests of the dialog all take T (TLS: the proxy's tls listen entry,
with the test CA of tests/tls/make-test-ca as sip_cafile).  Over a stream
the proxy must reach bob over the connection of bob's REGISTER (RFC 5626,
RFC 3261 18): ospreyctl shows one inbound connection per phone and no
outbound one, and bob's trace shows the INVITE and BYE coming in on the
connection his REGISTER went out on.

baresip 1.0 (libre 1.1) does not check the proxy's certificate: a
sip_cafile of a CA that did not sign it (the test CA's rogue-ca.pem) still
registers and calls (tried by hand; it is a property of the peer, not of
ospreyd, so no test asserts it).  The TLS run therefore shows TLS on the
wire between real peers, not certificate checking by the client; that is
tests/e2e/test_tls.py's stunnel (verifyChain, checkHost).
"""

import json
import os
import subprocess
import time

import pytest

from conftest import OSPREYD, TOP, free_udp_port
from peers import interop

OSPREYCTL = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")
MAKE_CA = os.path.join(TOP, "tests", "tls", "make-test-ca")
USERS = {"alice": "wonderland", "bob": "builder"}
INTEROP_TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}

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


# ------------------------------------------------ registered, per transport

@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ca"))
    subprocess.run(["sh", MAKE_CA, d], check=True, timeout=60)
    return d


def ctl_json(osprey, *args):
    p = subprocess.run([OSPREYCTL, "-j", "-s", osprey.ctl_socket] +
                       list(args), capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return json.loads(p.stdout)


class RegisteredPair:
    """ospreyd (UDP and TCP on one port, TLS on another, MD5 digest) and
    two registering baresips, alice (manual) and bob (bob_mode), whose
    accounts use `transport`."""

    def __init__(self, osprey_factory, wd, ca, transport, bob_mode):
        self.transport = transport
        port = interop.free_udp_block(1, tcp=True)
        tls_port = interop.free_udp_block(1, tcp=True)
        self.px = osprey_factory(
            users=USERS, port=port, timers=INTEROP_TIMERS,
            listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port),
                    ("tls", "127.0.0.1", tls_port)],
            extra='tls = { certificate = "%s/server.pem"; '
                  'key = "%s/server.key"; };' % (ca, ca))
        self.port = tls_port if transport == "tls" else port
        self.proxy = "127.0.0.1:%d" % self.port
        self.alice = self.bob = self.cap = None
        kw = dict(proxy_port=self.port, transport=transport, ctrl=True,
                  cafile=os.path.join(ca, "ca.pem"))
        self.bob = interop.Baresip(wd, "bob", bob_mode,
                                   password=USERS["bob"], **kw)
        self.alice = interop.Baresip(wd, "alice", "manual",
                                     password=USERS["alice"], **kw)
        self.cap = interop.Capture(wd, [port, self.bob.port,
                                        self.alice.port])

    def report(self):
        parts = [self.alice.report(), self.bob.report(),
                 "==== SIP on the wire (UDP only)\n" + self.cap.summary(),
                 "==== ospreyd alive: %s" % self.px.alive()]
        return "\n".join(parts)

    def stop(self):
        for p in (self.alice, self.bob):
            if p is not None:
                p.stop()
        if self.cap is not None:
            self.cap.stop()
        return self.report()

    def sent(self, who, start):
        """Messages `who` sent to the proxy whose start line begins so."""
        return [m for m in who.messages() if m["dst"] == self.proxy and
                m["start"].startswith(start)]

    def got(self, who, start):
        """Messages `who` got from the proxy whose start line begins so."""
        return [m for m in who.messages() if m["src"] == self.proxy and
                m["start"].startswith(start)]

    def wait_got(self, who, start, timeout=5):
        """got(), waiting up to timeout seconds for the first one (bob
        prints "Incoming call" before his 180 has reached alice)."""
        deadline = time.time() + timeout
        while True:
            ms = self.got(who, start)
            if ms or time.time() >= deadline:
                return ms
            time.sleep(0.05)


@pytest.fixture
def registered_pair(osprey_factory, tmp_path, test_ca):
    made = []

    def make(transport, bob_mode):
        made.append(RegisteredPair(osprey_factory, str(tmp_path), test_ca,
                                   transport, bob_mode))
        return made[-1]

    yield make
    for p in made:
        p.stop()


def cseq_method(m):
    return " ".join(interop.header(m["text"], "CSeq"))


def check_registered(pair):
    """Both registered over the transport: each one binding whose
    received address is the phone's end of its REGISTER's connection
    (tcp:/tls:), or its UDP port."""
    for b in (pair.bob, pair.alice):
        assert b.registration(15), "no registration\n" + pair.report()
    regs = ctl_json(pair.px, "registrations")
    got = {}
    for r in regs:
        got.setdefault(r["aor"].split("@")[0], []).append(r)
    why = "registrations: %r\n%s" % (regs, pair.report())
    assert sorted(got) == ["alice", "bob"], why
    ends = {}
    for b in (pair.bob, pair.alice):
        assert len(got[b.user]) == 1, why
        reg = pair.sent(b, "REGISTER ")
        assert reg, "%s sent no REGISTER to the proxy\n%s" % (b.user, why)
        assert {m["transport"] for m in reg} == {pair.transport.upper()}, \
            "%s registered over %s\n%s" % (
                b.user, {m["transport"] for m in reg}, why)
        src = reg[-1]["src"]
        ends[b.user] = src
        if pair.transport == "udp":
            want = src
        else:
            want = "%s:%s" % (pair.transport, src)
        assert got[b.user][0]["received"] == want, \
            "%s's binding came from %r, want %r\n%s" % (
                b.user, got[b.user][0]["received"], want, why)
    return ends


def check_connections(pair, ends, when):
    """Over a stream: exactly one connection per phone, accepted from the
    phone's end of its REGISTER's connection; nothing opened by the
    proxy.  Over UDP: none at all."""
    conns = ctl_json(pair.px, "connections")
    why = "%s: connections %r\n%s" % (when, conns, pair.report())
    if pair.transport == "udp":
        assert conns == [], why
        return
    assert sorted(c["peer"] for c in conns) == sorted(
        "%s:%s" % (pair.transport, e) for e in ends.values()), why
    assert {c["direction"] for c in conns} == {"in"}, why
    assert all(c["local"] == "%s:%s" % (pair.transport, pair.proxy)
               for c in conns), why


def check_on_flow(pair, who, ends, msgs, what):
    """Requests the proxy sent `who` came on who's REGISTER connection:
    from the proxy's listen address to who's end of that connection
    (over UDP: to its sip_listen port), over the same transport."""
    why = pair.report()
    assert msgs, "no %s reached %s\n%s" % (what, who.user, why)
    for m in msgs:
        assert m["transport"] == pair.transport.upper(), \
            "%s reached %s over %s\n%s" % (what, who.user, m["transport"],
                                           why)
        assert m["dst"] == ends[who.user], \
            "%s reached %s at %s, not on the REGISTER's flow %s\n%s" % (
                what, who.user, m["dst"], ends[who.user], why)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_registered_baresips_call_answered(registered_pair, transport):
    """alice and bob register over the transport and alice calls
    sip:bob@example.test (407, then with credentials); bob auto-answers;
    alice hangs up.  The INVITE and the BYE reach bob over his REGISTER's
    connection, the BYE goes through the Record-Route (which names the
    transport) and is answered, and the proxy opened no connection."""
    pair = registered_pair(transport, "auto")
    alice, bob = pair.alice, pair.bob
    ends = check_registered(pair)
    check_connections(pair, ends, "registered")
    alice.dial("sip:bob@example.test")
    assert alice.wait_for("Call established", 12), pair.report()
    assert bob.wait_for("Call established", 6), pair.report()
    check_connections(pair, ends, "in the call")
    time.sleep(0.5)
    alice.command("hangup")
    bob.wait_for("session closed", 8)
    time.sleep(1.0)
    check_connections(pair, ends, "after the call")
    why = pair.stop()

    invites = pair.got(bob, "INVITE ")
    check_on_flow(pair, bob, ends, invites, "the INVITE")
    inv = invites[0]["text"]
    via = interop.header(inv, "Via")[0]
    assert via.startswith("SIP/2.0/%s %s;" % (transport.upper(),
                                              pair.proxy)), \
        "the proxy's Via %r\n%s" % (via, why)
    rr = interop.header(inv, "Record-Route")
    assert rr and pair.proxy in rr[0], why
    if transport != "udp":
        assert "transport=%s" % transport in rr[0], \
            "Record-Route %r does not name %s\n%s" % (rr, transport, why)
    check_on_flow(pair, bob, ends, pair.got(bob, "BYE "), "the BYE")
    assert [m for m in pair.sent(bob, "SIP/2.0 200")
            if "BYE" in cseq_method(m)], "bob did not answer the BYE\n" + why
    assert any("BYE" in cseq_method(m)
               for m in pair.got(alice, "SIP/2.0 200")), \
        "alice got no 200 for her BYE\n" + why
    for who in (alice, bob):
        others = {m["transport"] for m in who.messages()} - {
            transport.upper()}
        assert not others, "%s also used %s\n%s" % (who.user, others, why)
    assert pair.px.alive()


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_registered_baresips_call_cancelled(registered_pair, transport):
    """The same over the transport with bob ringing (manual answer):
    alice hangs up before he answers; the CANCEL reaches bob on his
    REGISTER's connection with the INVITE's branch, and alice gets 487."""
    pair = registered_pair(transport, "manual")
    alice, bob = pair.alice, pair.bob
    ends = check_registered(pair)
    alice.dial("sip:bob@example.test")
    assert bob.wait_for("Incoming call", 12), pair.report()
    assert pair.wait_got(alice, "SIP/2.0 180"), "alice heard no ringing\n" + \
        pair.report()
    time.sleep(0.5)
    alice.command("hangup")
    time.sleep(1.5)
    check_connections(pair, ends, "after the call")
    why = pair.stop()

    invites = pair.got(bob, "INVITE ")
    check_on_flow(pair, bob, ends, invites, "the INVITE")
    cancels = pair.got(bob, "CANCEL ")
    check_on_flow(pair, bob, ends, cancels, "the CANCEL")
    assert interop.top_branch(cancels[0]["text"]) == \
        interop.top_branch(invites[-1]["text"]), why
    assert any("INVITE" in cseq_method(m)
               for m in pair.got(alice, "SIP/2.0 487")), \
        "alice got no 487 for her INVITE\n" + why
    assert "Call established" not in bob.text(), why
    assert pair.px.alive()
