"""SIP over WebSocket (RFC 7118, RFC 6455) through a real ospreyd.

The WebSocket side is Debian's python3-websockets (an RFC 6455 stack none
of us wrote: handshake, masking, framing, ping, close) carrying a browser
phone's SIP: a .invalid Via host and Contact, as JsSIP and SIP.js send.
The other side is SIPp over UDP.  A call from SIPp reaches the browser
phone over the connection of its REGISTER, and the ACK and BYE that SIPp
builds from its route set reach it too: the Record-Route entry on the
browser's side carries a flow token (RFC 5626 5.2) naming its connection.
"""

import asyncio
import os
import ssl
import subprocess
import time
import uuid

import pytest

from conftest import TOP
from peers import interop
from sip import SDP, build_response, parse

websockets = pytest.importorskip(
    "websockets", reason="python3-websockets not installed")
# websockets loads its submodules lazily: name the one used here
InvalidStatusCode = pytest.importorskip(
    "websockets.exceptions").InvalidStatusCode

pytestmark = pytest.mark.skipif(interop.SIPP is None,
                                reason="SIPp not installed")

TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}
MAKE_CA = os.path.join(TOP, "tests", "tls", "make-test-ca")


def port():
    return interop.free_udp_block(1, tcp=True)


def start(osprey_factory, tmp_path, extra="", wss=False, **kw):
    p, wp, sp = port(), port(), port()
    listen = [("udp", "127.0.0.1", p), ("ws", "127.0.0.1", wp)]
    if wss:
        ca = str(tmp_path / "ca")
        subprocess.run(["sh", MAKE_CA, ca], check=True, timeout=60)
        extra += ('\ntls = { certificate = "%s/server.pem"; '
                  'key = "%s/server.key"; };' % (ca, ca))
        listen.append(("wss", "127.0.0.1", sp))
    o = osprey_factory(port=p, listen=listen, timers=TIMERS, extra=extra,
                       **kw)
    o.ws_port, o.wss_port = wp, sp
    if wss:
        o.ca = ca
    return o


class BrowserPhone:
    """A browser's SIP over a python3-websockets connection."""

    def __init__(self, ws, user, transport="WS"):
        self.ws = ws
        self.user = user
        self.tr = transport
        self.host = uuid.uuid4().hex[:12] + ".invalid"
        self.contact = "<sip:%s@%s;transport=%s>" % (
            user, self.host, transport.lower())

    async def send(self, text):
        await self.ws.send(text if isinstance(text, str) else text.decode())

    async def recv(self, timeout=5.0):
        while True:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(data, str):
                data = data.encode()
            if data.strip(b"\r\n"):
                return parse(data)

    async def register(self, expires=300):
        tag = uuid.uuid4().hex[:8]
        await self.send(
            "REGISTER sip:example.test SIP/2.0\r\n"
            "Via: SIP/2.0/%s %s;branch=z9hG4bK%s\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:%s@example.test>;tag=%s\r\n"
            "To: <sip:%s@example.test>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 REGISTER\r\n"
            "Contact: %s;expires=%d\r\n"
            "Content-Length: 0\r\n\r\n" % (
                self.tr, self.host, uuid.uuid4().hex, self.user, tag,
                self.user, uuid.uuid4().hex, self.contact, expires))
        return await self.recv()

    async def answer_call(self):
        """INVITE -> 180, 200; ACK; BYE -> 200.  Returns the messages."""
        inv = await self.recv()
        assert inv.method == "INVITE", inv
        totag = uuid.uuid4().hex[:8]
        await self.send(build_response(inv, 180, to_tag=totag))
        await self.send(build_response(
            inv, 200, to_tag=totag, body=SDP,
            headers=[("Contact", self.contact),
                     ("Content-Type", "application/sdp")]))
        ack = await self.recv()
        bye = await self.recv()
        assert bye.method == "BYE", bye
        await self.send(build_response(bye, 200))
        return inv, ack, bye


def run_sipp_uac(wd, o, service, timeout_s=15):
    return interop.uac(wd, "uac_call.xml", o.port, port(), service=service,
                       timeout_s=timeout_s)


def call_browser(o, tmp_path, url, ssl_ctx=None):
    """Register a browser phone over url, then have SIPp (UDP) call it."""
    wd = str(tmp_path)

    async def scenario():
        async with websockets.connect(url, subprotocols=["sip"],
                                      ssl=ssl_ctx) as ws:
            assert ws.subprotocol == "sip"
            phone = BrowserPhone(ws, "alice",
                                 "WSS" if url.startswith("wss") else "WS")
            r = await phone.register()
            assert r.code == 200, r
            uac = run_sipp_uac(wd, o, "alice")
            try:
                inv, ack, bye = await phone.answer_call()
                rc = await asyncio.get_running_loop().run_in_executor(
                    None, uac.wait)
            finally:
                uac.stop()
            assert rc == 0, uac.report()
            return inv, ack, bye
    return asyncio.run(scenario())


def test_browser_registers_and_is_called_over_ws(osprey_factory, tmp_path):
    """REGISTER over ws gets 200; a SIPp call from UDP reaches the browser
    over that connection (our Via is SIP/2.0/WS, the Request-URI is the
    .invalid Contact), and SIPp's ACK and BYE, routed by the Record-Route
    (two entries: the browser's side, WS with a flow token, then the UDP
    side), reach it as well."""
    o = start(osprey_factory, tmp_path)
    inv, ack, bye = call_browser(o, tmp_path,
                                 "ws://127.0.0.1:%d" % o.ws_port)
    assert inv.values("via")[0].startswith(
        "SIP/2.0/WS 127.0.0.1:%d;branch=z9hG4bK" % o.ws_port), inv.vias
    assert ".invalid" in inv.uri, inv.uri
    rr = inv.values("record-route")
    assert len(rr) == 2, rr
    assert rr[0].startswith("<sip:f") and "transport=ws" in rr[0], rr
    assert "@" not in rr[1] and "transport" not in rr[1], rr
    assert ack.method == "ACK" and bye.method == "BYE"
    assert o.alive()


def test_browser_over_wss(osprey_factory, tmp_path):
    """The same over wss (TLS, the test CA): Via SIP/2.0/WSS."""
    o = start(osprey_factory, tmp_path, wss=True)
    ctx = ssl.create_default_context(cafile=os.path.join(o.ca, "ca.pem"))
    inv, ack, bye = call_browser(o, tmp_path,
                                 "wss://localhost:%d" % o.wss_port, ctx)
    assert inv.values("via")[0].startswith("SIP/2.0/WSS 127.0.0.1:%d" %
                                    o.wss_port), inv.vias


def test_handshake_without_sip_subprotocol_refused(osprey_factory,
                                                    tmp_path):
    """RFC 7118 5: no "sip" in Sec-WebSocket-Protocol: 400, and the
    reason names it."""
    o = start(osprey_factory, tmp_path)

    async def go():
        with pytest.raises(InvalidStatusCode) as e:
            async with websockets.connect(
                    "ws://127.0.0.1:%d" % o.ws_port,
                    subprotocols=["chat"]):
                pass
        return e.value.status_code
    assert asyncio.run(go()) == 400
    assert "WebSocket handshake refused (400)" in o.log_text()


def test_origin_allow_list(osprey_factory, tmp_path):
    """websocket.origins: a page from another origin gets 403; one from
    the listed origin gets in."""
    o = start(osprey_factory, tmp_path, extra='websocket = { origins = '
              '[ "https://phone.example.test" ]; };')

    async def go(origin):
        try:
            async with websockets.connect(
                    "ws://127.0.0.1:%d" % o.ws_port, subprotocols=["sip"],
                    origin=origin) as ws:
                phone = BrowserPhone(ws, "bob")
                return (await phone.register()).code
        except InvalidStatusCode as e:
            return e.status_code
    assert asyncio.run(go("https://evil.example.test")) == 403
    assert asyncio.run(go("https://phone.example.test")) == 200


def test_closed_browser_flow_fails_fast(osprey_factory, tmp_path):
    """The browser registered, then its connection closed: a call to it
    fails at once (the flow is gone; no new connection can be opened to
    a browser) instead of waiting for Timer B."""
    o = start(osprey_factory, tmp_path)

    async def reg():
        async with websockets.connect("ws://127.0.0.1:%d" % o.ws_port,
                                      subprotocols=["sip"]) as ws:
            r = await BrowserPhone(ws, "carol").register()
            assert r.code == 200
    asyncio.run(reg())
    time.sleep(0.3)
    uac = run_sipp_uac(str(tmp_path), o, "carol", timeout_s=10)
    t0 = time.time()
    rc = uac.wait()
    assert rc != 0          # the call does not complete
    assert time.time() - t0 < 8, "waited for a timer"
    log = o.log_text()
    assert "final 500 to caller" in log or "final 480" in log, log[-2000:]


def test_browser_calls_a_udp_phone(osprey_factory, tmp_path):
    """The other way: the browser INVITEs bob, a SIPp UAS over UDP (a
    route); it gets 180 and 200 back over its connection, and its ACK and
    BYE, sent with the route set of the 200's Record-Route, reach SIPp
    (the UAS scenario waits for both)."""
    wd = str(tmp_path)
    uas_port = port()
    o = start(osprey_factory, tmp_path,
              routes=[("^bob$", ["sip:127.0.0.1:%d" % uas_port])])
    uas = interop.uas(wd, "uas_call.xml", uas_port, o.port, timeout_s=15)

    async def go():
        async with websockets.connect("ws://127.0.0.1:%d" % o.ws_port,
                                      subprotocols=["sip"]) as ws:
            ph = BrowserPhone(ws, "alice")
            cid, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
            common = ("From: <sip:alice@example.test>;tag=%s\r\n"
                      "Call-ID: %s\r\nMax-Forwards: 70\r\n" % (tag, cid))
            await ph.send(
                "INVITE sip:bob@example.test SIP/2.0\r\n"
                "Via: SIP/2.0/WS %s;branch=z9hG4bK%s\r\n%s"
                "To: <sip:bob@example.test>\r\nCSeq: 1 INVITE\r\n"
                "Contact: %s\r\nContent-Type: application/sdp\r\n"
                "Content-Length: %d\r\n\r\n%s" % (
                    ph.host, uuid.uuid4().hex, common, ph.contact, len(SDP),
                    SDP.decode()))
            while True:
                r = await ph.recv()
                if r.code >= 200:
                    break
            assert r.code == 200, r
            routes = list(reversed(r.values("record-route")))
            assert len(routes) == 2 and "transport=ws" in routes[0], routes
            target = r.get("contact").strip("<>").split(">")[0]
            to = r.get("to")
            for method, cseq in (("ACK", 1), ("BYE", 2)):
                await ph.send(
                    "%s %s SIP/2.0\r\nVia: SIP/2.0/WS %s;branch=z9hG4bK%s"
                    "\r\n%sTo: %s\r\nCSeq: %d %s\r\n%s"
                    "Content-Length: 0\r\n\r\n" % (
                        method, target, ph.host, uuid.uuid4().hex, common,
                        to, cseq, method, "".join(
                            "Route: %s\r\n" % x for x in routes)))
            r = await ph.recv()
            assert r.code == 200 and r.cseq_method == "BYE", r
    try:
        asyncio.run(go())
        assert uas.wait(limit=10) == 0, uas.report()
    finally:
        uas.stop()
