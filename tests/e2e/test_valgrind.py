"""A short scenario with ospreyd under valgrind (memcheck): calls, a busy
callee, a CANCEL, OPTIONS, garbage and malformed requests, the control
socket, then SIGTERM.  Valgrind must report no error at all and no
definitely or indirectly lost block (--errors-for-leak-kinds, so a leak is
an error and makes the exit status 99).  Skipped without valgrind, and for
a sanitized build (ASan and valgrind do not mix).  The registration
scenario also runs without valgrind, so that the sanitized pass of make
check sees the registrar, digest authentication and the SQLite store."""

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from conftest import OSPREYD
from sip import (NON2XX, SDP, UAC, Endpoint, build_request,  # noqa: F401
                 build_response, match, new_branch, new_call_id, new_tag,
                 sipnet)

VALGRIND = shutil.which("valgrind")
OSPREYCTL = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")


def sanitized():
    if os.environ.get("OSPREY_SANITIZED"):
        return True
    try:
        with open(OSPREYD, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


needs_valgrind = [
    pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed"),
    pytest.mark.skipif(sanitized(), reason="ospreyd is built with ASan"),
]


def valgrind_argv(logpath):
    return [VALGRIND, "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99", "--track-origins=yes",
            "--num-callers=40", "--log-file=" + logpath]


def summary(text):
    """The figures of valgrind's summaries, in bytes and counts."""
    def num(pat):
        m = re.search(pat, text)
        return None if m is None else int(m.group(1).replace(",", ""))
    return {
        "errors": num(r"ERROR SUMMARY: ([\d,]+) errors"),
        "definite": num(r"definitely lost: ([\d,]+) bytes"),
        "indirect": num(r"indirectly lost: ([\d,]+) bytes"),
        "possible": num(r"possibly lost: ([\d,]+) bytes"),
        "heap": "HEAP SUMMARY" in text,
        "all_freed": "All heap blocks were freed" in text,
    }


def request(call, method, branch, hs_extra=(), body=b"", drop=(),
            uri="sip:bob@example.test", version="SIP/2.0"):
    hs = [("Via", call.via(branch)), ("Max-Forwards", "70"),
          ("From", call.from_hdr), ("To", call.to_hdr()),
          ("Call-ID", call.call_id), ("CSeq", "1 %s" % method),
          ("Contact", call.contact)]
    hs = [(n, v) for n, v in hs if n not in drop] + list(hs_extra)
    return build_request(method, uri, hs, body, version=version)


def check_valgrind(px, vglog):
    """SIGTERM, then valgrind's verdict: no error, nothing lost."""
    rc = px.stop()
    with open(vglog, errors="replace") as f:
        text = f.read()
    s = summary(text)
    why = "valgrind (exit %r) %r\n%s" % (rc, s, text[-20000:])
    assert s["heap"], why
    assert s["errors"] == 0, why
    assert s["all_freed"] or (s["definite"] == 0 and s["indirect"] == 0), why
    assert rc == 0, why
    assert "ospreyd: stopped" in px.log_text()


@pytest.mark.parametrize("x", [pytest.param(0, marks=needs_valgrind)],
                         ids=["valgrind"])
def test_scenario_under_valgrind(sipnet, tmp_path, x):
    vglog = str(tmp_path / "valgrind.log")
    net = sipnet(wrapper=valgrind_argv(vglog), ready_s=60, stop_s=60)
    px, uas, caller = net.proxy, net.uas, net.caller

    # Two full calls.
    for _ in range(2):
        net.simple_call()

    # A busy callee: 486 upstream, hop-by-hop ACK downstream.
    call = net.call()
    call.invite()
    inv = uas.expect("INVITE", call_id=call.call_id, timeout=5)
    uas.respond(inv, 486)
    call.ack(caller.expect(call.resp(486), timeout=5))
    uas.expect("ACK", call_id=call.call_id, timeout=5)

    # CANCEL while ringing.
    call = net.call()
    inv = net.ring(call)
    call.cancel()
    caller.expect(call.resp(200, "CANCEL"), timeout=5)
    cancel = uas.expect("CANCEL", call_id=call.call_id, timeout=5)
    uas.respond(cancel, 200)
    uas.respond(inv, 487)
    final = caller.expect(call.resp(NON2XX), timeout=5)
    assert final.code == 487, final
    call.ack(final)
    uas.expect("ACK", call_id=call.call_id, timeout=5)

    # A CANCEL that matches nothing: 481.
    call = net.call()
    call.invite(send=False)
    call.cancel()
    r = caller.expect(call.resp(None, "CANCEL"), timeout=5)
    assert r.code == 481, r

    # OPTIONS to the proxy itself, and one forwarded to bob.
    call = net.call("sip:example.test")
    call.request("OPTIONS")
    r = caller.expect(call.resp(None, "OPTIONS"), timeout=5)
    assert r.code == 200, r
    call = net.call()
    call.request("OPTIONS")
    opt = uas.expect("OPTIONS", call_id=call.call_id, timeout=5)
    uas.respond(opt, 200)
    r = caller.expect(call.resp(None, "OPTIONS"), timeout=5)
    assert r.code == 200, r

    # Malformed requests that get an answer, and garbage that does not.
    call = net.call()
    for kw, code in [({"drop": ("Call-ID",)}, 400),
                     ({"drop": ("CSeq",)}, 400),
                     ({"hs_extra": [("Content-Length", "999")]}, 400),
                     ({"version": "SIP/3.0"}, 505),
                     ({"uri": "xyz:bob@example.test"}, 416),
                     ({"hs_extra": [("Proxy-Require", "foo")]}, 420)]:
        branch = new_branch()
        caller.send(request(call, "INVITE", branch, body=SDP, **kw), px.addr)
        r = caller.expect(match(response=True, branch=branch), timeout=5)
        assert r.code == code, (kw, r)
    for junk in [b"", b"\r\n\r\n", bytes(range(256)) * 4, b"A" * 60000,
                 b"INVITE sip:bob@example.test SIP/2.0\r\nVia:\r\n:\r\n\r\n",
                 b"SIP/2.0 200 OK\r\n\r\n",
                 b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP "
                 b"\xff\xfe\x00;branch=\r\nContent-Length: -5\r\n\r\n"]:
        caller.send(junk, px.addr)
    assert uas.ep.collect(0.5) == []

    # The control socket, then a last call: the daemon is still sane.
    if os.access(OSPREYCTL, os.X_OK):
        p = subprocess.run([OSPREYCTL, "-s", px.ctl_socket, "stats"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p
    net.simple_call()
    assert px.alive()

    check_valgrind(px, vglog)


# ---------------------------------------------------------------------------
# Registration, digest authentication, calls to a registered phone

REALM = "example.test"


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Phone:
    """alice's phone: REGISTERs through the proxy, answers its calls."""

    def __init__(self, proxy):
        self.ep = Endpoint()
        self.proxy = proxy
        self.call_id = new_call_id()
        self.tag = new_tag()
        self.cseq = 0
        self.nc = 0

    @property
    def contact(self):
        return "<sip:alice@127.0.0.1:%d>" % self.ep.port

    def register(self, expires=600, contact=None, auth=None, extra=()):
        self.cseq += 1
        branch = new_branch()
        hs = [("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (
                  self.ep.port, branch)),
              ("Max-Forwards", "70"),
              ("From", "<sip:alice@%s>;tag=%s" % (REALM, self.tag)),
              ("To", "<sip:alice@%s>" % REALM),
              ("Call-ID", self.call_id),
              ("CSeq", "%d REGISTER" % self.cseq),
              ("Contact", contact or self.contact),
              ("Expires", str(expires))]
        if auth:
            hs.append(("Authorization", auth))
        hs += list(extra)
        self.ep.send(build_request("REGISTER", "sip:" + REALM, hs),
                     self.proxy)
        return self.ep.expect(match(response=True, branch=branch),
                              timeout=10)

    def digest(self, challenge, password, uri="sip:" + REALM):
        """Authorization for a WWW-Authenticate (MD5, qop=auth)."""
        nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
        self.nc += 1
        nc = "%08x" % self.nc
        ha1 = md5("alice:%s:%s" % (REALM, password))
        ha2 = md5("REGISTER:" + uri)
        resp = md5(":".join([ha1, nonce, nc, "c0ffee", "auth", ha2]))
        return ('Digest username="alice", realm="%s", nonce="%s", '
                'uri="%s", response="%s", algorithm=MD5, cnonce="c0ffee", '
                'qop=auth, nc=%s' % (REALM, nonce, uri, resp, nc))

    def authed_register(self, password="secret", **kw):
        r = self.register(**kw)
        assert r.code == 401, r
        md5s = [c for c in r.values("www-authenticate")
                if "MD5" in c.upper()]
        assert md5s, r
        return self.register(auth=self.digest(md5s[0], password), **kw)


@pytest.mark.parametrize("under", [
    "direct", pytest.param("valgrind", marks=needs_valgrind)])
def test_register_scenario(osprey_factory, tmp_path, under):
    """A phone registers (401, then 200 with digest), is called through
    the location service (ringing, then CANCEL; then answered), a caller
    from our domain without credentials gets 407, broken REGISTERs get
    400/401/423, the phone unregisters (Contact: *) and its user then
    gets 480; the daemon stops cleanly (exit 0; ASan's and valgrind's
    checks run at that exit)."""
    users = tmp_path / "users"
    users.write_text("alice:%s:%s\n" % (REALM, md5("alice:%s:secret" %
                                                   REALM)))
    extra = ('registrar = { min_expires = 60; database = "%s"; };\n'
             'auth = { users = "%s"; algorithms = [ "MD5", "SHA-256" ]; };'
             % (tmp_path / "location.db", users))
    kw = {}
    if under == "valgrind":
        vglog = str(tmp_path / "valgrind.log")
        kw = dict(wrapper=valgrind_argv(vglog), ready_s=60, stop_s=60)
    px = osprey_factory(extra=extra, **kw)
    phone = Phone(px.addr)
    caller = Endpoint()
    try:
        r = phone.authed_register()
        assert r.code == 200, r
        assert any(str(phone.ep.port) in c for c in r.values("contact")), r

        # Wrong password, too short an expiry, a broken Contact.
        r = phone.register(auth=phone.digest(
            'Digest realm="%s", nonce="x"' % REALM, "wrong"))
        assert r.code in (400, 401, 403), r
        r = phone.authed_register(expires=5)
        assert r.code == 423, r
        r = phone.register(contact="<sip:>;expires=abc")
        assert r.code == 400, r

        # From outside, to alice: her phone rings; CANCEL.
        call = UAC(caller, px.addr, "sip:alice@" + REALM,
                   from_uri="sip:carol@elsewhere.test")
        call.invite()
        inv = phone.ep.expect(match(method="INVITE", call_id=call.call_id),
                              timeout=10)
        phone.ep.send(build_response_for(inv, 180), back(inv))
        caller.expect(call.resp(180), timeout=10)
        call.cancel()
        caller.expect(call.resp(200, "CANCEL"), timeout=10)
        cancel = phone.ep.expect(match(method="CANCEL"), timeout=10)
        phone.ep.send(build_response_for(cancel, 200), back(cancel))
        phone.ep.send(build_response_for(inv, 487), back(inv))
        final = caller.expect(call.resp(NON2XX), timeout=10)
        assert final.code == 487, final
        call.ack(final)
        phone.ep.expect(match(method="ACK"), timeout=10)

        # Answered, then BYE.
        call = UAC(caller, px.addr, "sip:alice@" + REALM,
                   from_uri="sip:carol@elsewhere.test")
        call.invite()
        inv = phone.ep.expect(match(method="INVITE", call_id=call.call_id),
                              timeout=10)
        phone.ep.send(build_response_for(inv, 200, contact=phone.contact,
                                         body=SDP), inv.src)
        ok = caller.expect(call.resp(200), timeout=10)
        call.ack(ok)
        phone.ep.expect(match(method="ACK", call_id=call.call_id),
                        timeout=10)
        call.bye()
        bye = phone.ep.expect(match(method="BYE", call_id=call.call_id),
                              timeout=10)
        phone.ep.send(build_response_for(bye, 200), back(bye))
        caller.expect(call.resp(200, "BYE"), timeout=10)

        # From our domain without credentials: 407.
        call = UAC(caller, px.addr, "sip:alice@" + REALM)
        call.invite()
        r = caller.expect(call.resp(NON2XX), timeout=10)
        assert r.code == 407, r
        call.ack(r)

        # Unregister everything; alice is then unreachable.
        r = phone.authed_register(expires=0, contact="*")
        assert r.code == 200, r
        call = UAC(caller, px.addr, "sip:alice@" + REALM,
                   from_uri="sip:carol@elsewhere.test")
        call.invite()
        r = caller.expect(call.resp(NON2XX), timeout=10)
        assert r.code == 480, r
        call.ack(r)
        assert px.alive()
    finally:
        phone.ep.close()
        caller.close()
    if under == "valgrind":
        check_valgrind(px, vglog)


def back(req):
    """Where a response to req goes (its top Via)."""
    return req.vias[0].response_addr() or req.src


def build_response_for(req, code, contact=None, body=b""):
    """The phone's response to req (its To tag fixed per dialog)."""
    hs = [("Contact", contact)] if contact else []
    if body:
        hs.append(("Content-Type", "application/sdp"))
    return build_response(req, code, to_tag=None if code == 100 else
                          "ph" + req.call_id[:8], headers=hs, body=body)



@pytest.mark.parametrize("x", [pytest.param(0, marks=needs_valgrind)],
                         ids=["valgrind"])
def test_streams_under_valgrind(osprey_factory, tmp_path, x):
    """TCP, TLS and WebSocket under valgrind: OPTIONS over each, a framing
    error (400 and close), a TLS handshake that fails, a WebSocket
    handshake refused, connections left open and half-sent at SIGTERM, and
    a call whose next hop is still being resolved when the daemon stops
    (the DNS server never answers): no error, nothing lost."""
    import asyncio
    import socket
    import ssl
    import time as _time
    from peers import interop
    from conftest import TOP
    ca = str(tmp_path / "ca")
    subprocess.run(["sh", os.path.join(TOP, "tests", "tls", "make-test-ca"),
                    ca], check=True, timeout=60)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))           # a DNS server that never answers
    vglog = str(tmp_path / "valgrind.log")
    for attempt in range(3):
        # valgrind starts slowly: a port picked free may be taken by then
        p, tp, wp = (interop.free_udp_block(1, tcp=True) for _ in range(3))
        try:
            o = osprey_factory(
                port=p, routes=[("^bob$", ["sip:gw.example.test"])],
                listen=[("udp", "127.0.0.1", p), ("tcp", "127.0.0.1", p),
                        ("tls", "127.0.0.1", tp), ("ws", "127.0.0.1", wp)],
                extra='tls = { certificate = "%s/server.pem"; '
                'key = "%s/server.key"; };\ndns = { nameservers = '
                '[ "127.0.0.1:%d" ]; timeout = 5000; };'
                % (ca, ca, silent.getsockname()[1]),
                wrapper=valgrind_argv(vglog), ready_s=60, stop_s=60)
            break
        except RuntimeError as e:
            if "Address already in use" not in str(e) or attempt == 2:
                raise
    opts = ("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/%%s 127.0.0.1:9"
            ";branch=z9hG4bK-%%s\r\nMax-Forwards: 70\r\nFrom: <sip:v@example"
            ".test>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: %%s@v\r\nCSeq: "
            "1 OPTIONS\r\nContent-Length: 0\r\n\r\n" % p)
    try:
        t = socket.create_connection(("127.0.0.1", p), timeout=10)
        t.sendall((opts % ("TCP", "t1", "t1")).encode())
        assert t.recv(4096).startswith(b"SIP/2.0 200")
        bad = socket.create_connection(("127.0.0.1", p), timeout=10)
        bad.sendall((opts % ("TCP", "b1", "b1")).replace(
            "Content-Length: 0\r\n", "").encode())
        assert bad.recv(4096).startswith(b"SIP/2.0 400")
        ctx = ssl.create_default_context(cafile=os.path.join(ca, "ca.pem"))
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tp),
                                                     timeout=10),
                            server_hostname="localhost")
        s.sendall((opts % ("TLS", "s1", "s1")).encode())
        assert s.recv(4096).startswith(b"SIP/2.0 200")
        junk = socket.create_connection(("127.0.0.1", tp), timeout=10)
        junk.sendall(b"this is not a TLS client hello\r\n" * 4)
        try:
            junk.recv(100)
        except OSError:
            pass
        import websockets

        async def ws():
            async with websockets.connect("ws://127.0.0.1:%d" % wp,
                                          subprotocols=["sip"]) as w:
                await w.send(opts % ("WS", "w1", "w1"))
                r = await asyncio.wait_for(w.recv(), 10)
                assert r.startswith("SIP/2.0 200"), r
                return w
        asyncio.run(ws())
        refused = socket.create_connection(("127.0.0.1", wp), timeout=10)
        refused.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert refused.recv(4096).startswith(b"HTTP/1.1 400")
        half = socket.create_connection(("127.0.0.1", p), timeout=10)
        half.sendall(b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.sendto(("INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP "
                  "127.0.0.1:%d;branch=z9hG4bK-dns1\r\nMax-Forwards: 70\r\n"
                  "From: <sip:c@example.org>;tag=1\r\nTo: <sip:bob@example."
                  "test>\r\nCall-ID: dns1@v\r\nCSeq: 1 INVITE\r\nContact: "
                  "<sip:c@127.0.0.1>\r\nContent-Length: 0\r\n\r\n" %
                  u.getsockname()[1]).encode(), ("127.0.0.1", p))
        u.settimeout(10)
        assert u.recv(4096).startswith(b"SIP/2.0 100")
        _time.sleep(0.5)                     # the lookup is out
        check_valgrind(o, vglog)
        # stricter than check_valgrind: a context left waiting on DNS at
        # shutdown stays "reachable" (the resolver's memory), not "lost"
        with open(vglog, errors="replace") as f:
            text = f.read()
        assert summary(text)["all_freed"], text[-8000:]
    finally:
        silent.close()
