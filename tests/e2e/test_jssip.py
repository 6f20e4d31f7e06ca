"""Interop with JsSIP, a SIP-over-WebSocket stack (RFC 7118) none of us
wrote, running in node (tests/e2e/peers/jssip/ua.js, JsSIP and
jssip-node-websocket from npm, installed by tools/install-deps).

JsSIP registers over ws (no auth, then with digest) and over wss (the test
CA); SIPp calls it over UDP and it rejects the call with 486; it sends a
MESSAGE to a UDP phone and gets one from it.  ua.js prints one JSON line
per event; with --trace, every SIP message it sent or got on the socket.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest

from conftest import HERE, OSPREYD, TOP
from peers import interop
from sip import Endpoint, build_request, build_response, match, new_branch
from sip import new_call_id, new_tag, parse

NODE = shutil.which("node") or shutil.which("nodejs")
PEER_DIR = os.path.join(HERE, "peers", "jssip")
UA_JS = os.path.join(PEER_DIR, "ua.js")
MAKE_CA = os.path.join(TOP, "tests", "tls", "make-test-ca")
OSPREYCTL = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")
TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}
# Non-ASCII on purpose: Content-Length counts bytes, WebSocket text
# frames carry UTF-8, and the body must arrive byte for byte.
BODY = "Hallo Bob, grüße über WebSocket ✓ 42"

pytestmark = pytest.mark.skipif(NODE is None, reason="node not installed")


@pytest.fixture(autouse=True)
def jssip_installed():
    """node is here: then JsSIP must be too (tools/install-deps)."""
    for mod in ("jssip", "jssip-node-websocket"):
        path = os.path.join(PEER_DIR, "node_modules", mod, "package.json")
        assert os.path.exists(path), (
            "%s missing: run tools/install-deps (npm ci in %s)" % (
                mod, PEER_DIR))


def port():
    return interop.free_udp_block(1, tcp=True)


def start(osprey_factory, tmp_path, wss=False, extra="", **kw):
    p, wp = port(), port()
    listen = [("udp", "127.0.0.1", p), ("ws", "127.0.0.1", wp)]
    if wss:
        ca = str(tmp_path / "ca")
        subprocess.run(["sh", MAKE_CA, ca], check=True, timeout=60,
                       capture_output=True)
        extra += ('\ntls = { certificate = "%s/server.pem"; '
                  'key = "%s/server.key"; };' % (ca, ca))
        sp = port()
        listen.append(("wss", "127.0.0.1", sp))
    o = osprey_factory(port=p, listen=listen, timers=TIMERS, extra=extra,
                       **kw)
    o.ws_port = wp
    if wss:
        o.wss_port, o.ca = sp, ca
    return o


class JsSIP:
    """One ua.js process; its JSON events, read by a thread."""

    def __init__(self, workdir, url, user="alice", timeout_s=20, **opts):
        self.url = url
        args = [NODE, UA_JS, "--ws", url, "--user", user,
                "--timeout", str(timeout_s), "--trace"]
        for k, v in opts.items():
            if v is True:
                args.append("--" + k.replace("_", "-"))
            elif v is not None and v is not False:
                args += ["--" + k.replace("_", "-"), str(v)]
        self.cmd = args
        self.errpath = os.path.join(workdir, "jssip-%s.err" % user)
        self.errf = open(self.errpath, "w")
        self.events = []            # every event, in order
        self.q = queue.Queue()
        self.proc = subprocess.Popen(
            ["timeout", "-k", "3", str(timeout_s + 5)] + args,
            cwd=PEER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.errf, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.pending = []

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "garbage", "line": line}
            self.events.append(ev)
            self.q.put(ev)
        self.q.put(None)

    def expect(self, name, timeout=5.0, pred=None):
        """The next event called name (that pred accepts); earlier other
        events stay in .events.  An "error" event fails at once."""
        for ev in self.pending:
            if ev["event"] == name and (pred is None or pred(ev)):
                self.pending.remove(ev)
                return ev
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.q.get(timeout=max(0.0, left))
            except queue.Empty:
                ev = None
            if ev is None:
                raise AssertionError("JsSIP: no %s event within %.1fs\n%s"
                                     % (name, timeout, self.report()))
            if ev["event"] == "error":
                raise AssertionError("JsSIP failed:\n" + self.report())
            if ev["event"] == name and (pred is None or pred(ev)):
                return ev
            self.pending.append(ev)

    def sip(self, direction, start):
        """Traced messages (sip_in / sip_out) whose start line begins so."""
        return [e["text"] for e in self.events
                if e["event"] == "sip_" + direction and
                e["text"].startswith(start)]

    def stop(self):
        """Close its stdin: JsSIP stops (unregisters) and exits 0."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            rc = self.proc.wait(6)
        except subprocess.TimeoutExpired:
            rc = interop.stop_proc(self.proc)
        self.reader.join(2)
        if not self.errf.closed:
            self.errf.close()
        return rc

    def report(self):
        lines = ["$ " + " ".join(self.cmd)]
        for e in self.events:
            if e["event"].startswith("sip_"):
                lines.append("%6d %s %s" % (e["t"], e["event"],
                                            e["text"].replace("\r\n", "\n  ")))
            else:
                lines.append(json.dumps(e))
        lines.append("---- stderr:\n" + interop.tail(self.errpath, 3000))
        return "\n".join(lines)


@pytest.fixture
def jssip(tmp_path):
    started = []

    def run(url, **kw):
        j = JsSIP(str(tmp_path), url, **kw)
        started.append(j)
        return j
    yield run
    for j in started:
        j.stop()


def registrations(o):
    p = subprocess.run([OSPREYCTL, "-s", o.ctl_socket, "-j",
                        "registrations"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def bare(contact):
    return contact.strip().lstrip("<").split(">")[0]


def check_registered(o, ua, scheme):
    """JsSIP's REGISTER went over the WebSocket (Via SIP/2.0/WS[S]) and
    got 200; the binding has its .invalid contact, received as
    scheme:127.0.0.1:<JsSIP's own port>."""
    conn = ua.expect("connected")
    reg = ua.expect("registered")
    assert reg["status"] == 200, ua.report()
    contact = bare(reg["contact"])
    assert contact.endswith(".invalid;transport=ws"), contact
    out = ua.sip("out", "REGISTER ")
    assert out and "\r\nVia: SIP/2.0/%s " % scheme.upper() in out[0], \
        ua.report()
    binds = [b for b in registrations(o) if b["aor"] == "alice@example.test"]
    assert len(binds) == 1, binds
    b = binds[0]
    assert bare(b["contact"]) == contact, (b, contact)
    assert conn["local_port"], conn
    assert b["received"] == "%s:127.0.0.1:%d" % (scheme,
                                                 conn["local_port"]), b
    assert b["user_agent"].startswith("osprey-e2e JsSIP/"), b
    return contact


def test_jssip_registers_over_ws(osprey_factory, tmp_path, jssip):
    """REGISTER over ws, no auth: 200, and `ospreyctl -j registrations`
    shows the .invalid contact received over ws from JsSIP's port; JsSIP's
    un-REGISTER on stop removes it."""
    o = start(osprey_factory, tmp_path)
    ua = jssip("ws://127.0.0.1:%d" % o.ws_port, register=True)
    check_registered(o, ua, "ws")
    assert ua.stop() == 0, ua.report()
    assert any(e["event"] == "unregistered" and e["status"] == 200
               for e in ua.events), ua.report()
    assert registrations(o) == []


def test_jssip_registers_with_digest(osprey_factory, tmp_path, jssip):
    """users = alice:pw: the REGISTER is challenged 401, JsSIP answers
    the challenge (Digest, MD5) and gets 200; a wrong password ends in
    registrationFailed and no binding."""
    o = start(osprey_factory, tmp_path, users={"alice": "pw"})
    bad = jssip("ws://127.0.0.1:%d" % o.ws_port, register=True,
                password="wrong")
    f = bad.expect("registrationFailed")
    assert f["status"] == 401 and f["cause"] == "Authentication Error", \
        bad.report()
    bad.stop()
    assert registrations(o) == []

    ua = jssip("ws://127.0.0.1:%d" % o.ws_port, register=True,
               password="pw")
    check_registered(o, ua, "ws")
    finals = [t.split("\r\n", 1)[0] for t in ua.sip("in", "SIP/2.0 ")]
    assert finals[:2] == ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"], \
        ua.report()
    challenge = ua.sip("in", "SIP/2.0 401")[0]
    assert "\r\nWWW-Authenticate: Digest " in challenge, challenge
    regs = ua.sip("out", "REGISTER ")
    assert len(regs) >= 2 and "Authorization:" not in regs[0], ua.report()
    auth = [ln for ln in regs[1].split("\r\n")
            if ln.startswith("Authorization:")]
    assert auth and 'username="alice"' in auth[0] and \
        "algorithm=MD5" in auth[0] and "qop=auth" in auth[0], regs[1]


def test_sipp_calls_jssip_which_rejects_486(osprey_factory, tmp_path,
                                            jssip):
    """SIPp (UDP) INVITEs alice; Osprey sends it over JsSIP's connection
    (Record-Route with a ws flow token); JsSIP fires newRTCSession and
    rejects with 486, which SIPp must get (uac_expect_486.xml), and
    Osprey's ACK for it reaches JsSIP.

    JsSIP lets an INVITE reach newRTCSession only when
    window.RTCPeerConnection exists (else it answers 488 itself); ua.js
    gives it one that throws if constructed, which rejecting never does."""
    if interop.SIPP is None:
        pytest.skip("SIPp not installed")
    o = start(osprey_factory, tmp_path)
    ua = jssip("ws://127.0.0.1:%d" % o.ws_port, register=True,
               invite_reply=486)
    contact = check_registered(o, ua, "ws")
    uac = interop.uac(str(tmp_path), "uac_expect_486.xml", o.port, port(),
                      service="alice", timeout_s=10)
    try:
        s = ua.expect("newRTCSession", timeout=8)
        rc = uac.wait(limit=12)
    finally:
        uac.stop()
    assert rc == 0, uac.report() + "\n" + ua.report()
    assert s["originator"] == "remote", s
    assert s["ruri"] == contact, (s, contact)
    assert s["from"].startswith("sip:sipp@127.0.0.1"), s
    rr = s["record_route"]
    assert rr and "transport=ws" in rr[0] and "@127.0.0.1:%d" % o.ws_port \
        in rr[0], rr
    f = ua.expect("session_failed")
    assert f["originator"] == "local" and f["cause"] == "Rejected", f
    sent = [t.split("\r\n", 1)[0] for t in ua.sip("out", "SIP/2.0 ")
            if "INVITE\r\n" in t]
    assert sent[-1] == "SIP/2.0 486 Busy Here", ua.report()
    assert ua.sip("in", "ACK "), "no ACK for the 486:\n" + ua.report()
    assert o.alive()


def test_jssip_sends_message_to_udp_phone(osprey_factory, tmp_path,
                                          jssip):
    """JsSIP's MESSAGE to bob (a route to a UDP socket) arrives with its
    body byte for byte; bob's 200 comes back to JsSIP (message
    succeeded)."""
    bob = Endpoint()
    try:
        o = start(osprey_factory, tmp_path,
                  routes=[("^bob$", ["sip:127.0.0.1:%d" % bob.port])])
        ua = jssip("ws://127.0.0.1:%d" % o.ws_port, register=True,
                   message_to="sip:bob@example.test", message_body=BODY)
        ua.expect("registered")
        m = bob.expect(match(method="MESSAGE"), timeout=5)
        assert m.body == BODY.encode(), m.body
        assert m.get("content-type") == "text/plain", m
        assert m.vias[0].sent_by == ("127.0.0.1", o.port), m.vias
        assert len(m.vias) == 2 and \
            m.values("via")[1].startswith("SIP/2.0/WS "), m.vias
        bob.send(build_response(m, 200, to_tag=new_tag()),
                 m.vias[0].response_addr())
        ok = ua.expect("message_succeeded")
        assert ok["status"] == 200, ua.report()
    finally:
        bob.close()


def test_udp_phone_sends_message_to_jssip(osprey_factory, tmp_path,
                                          jssip):
    """A MESSAGE from UDP to the registered JsSIP user reaches it over
    its connection (newMessage, body intact) and JsSIP's 200 comes back
    to the UDP sender."""
    o = start(osprey_factory, tmp_path)
    ua = jssip("ws://127.0.0.1:%d" % o.ws_port, register=True)
    contact = check_registered(o, ua, "ws")
    carol = Endpoint()
    try:
        body = BODY.encode()
        req = build_request("MESSAGE", "sip:alice@example.test", [
            ("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=%s" % (
                carol.port, new_branch())),
            ("Max-Forwards", "70"),
            ("From", "<sip:carol@example.test>;tag=%s" % new_tag()),
            ("To", "<sip:alice@example.test>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain;charset=UTF-8")], body)
        carol.send(req, o.addr)
        sent = parse(req)
        r = carol.expect(lambda m: m.is_response and m.code >= 200 and
                         m.call_id == sent.call_id, timeout=5)
        assert r.code == 200, r
        ev = ua.expect("newMessage")
        assert ev["body"] == BODY, ev
        assert ev["from"] == "sip:carol@example.test", ev
        assert ev["ruri"] == contact, (ev, contact)
        assert ev["content_type"].startswith("text/plain"), ev
    finally:
        carol.close()


def test_jssip_registers_over_wss(osprey_factory, tmp_path, jssip):
    """The same REGISTER over wss, JsSIP trusting only the test CA:
    200, Via SIP/2.0/WSS, received wss:127.0.0.1:PORT."""
    o = start(osprey_factory, tmp_path, wss=True)
    ua = jssip("wss://localhost:%d" % o.wss_port, register=True,
               ca=os.path.join(o.ca, "ca.pem"))
    check_registered(o, ua, "wss")
