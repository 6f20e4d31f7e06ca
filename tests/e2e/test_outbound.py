"""Osprey as the edge proxy of phones on TCP (RFC 5626 outbound, RFC 3327
Path): a REGISTER from a phone's connection, forwarded to a registrar
elsewhere, gets our Path with a flow token naming that connection (and
;ob when the phone asks for outbound); the registrar's requests for the
phone come back through that Path and go out on the very connection;
when it is gone, the registrar gets 430 Flow Failed (RFC 5626 5.3).

The registrar is a UDP endpoint of the test: what it receives and sends
is the assertion."""

import socket
import uuid

from peers import interop
from sip import (Endpoint, build_request, build_response, match, parse)


def read_msg(s, timeout=3):
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
    while len(rest) < n:
        rest += s.recv(65536)
    return parse(head + b"\r\n\r\n" + rest[:n])


def test_edge_proxy_path_flow_token_and_430(osprey_factory):
    registrar = Endpoint()
    p = interop.free_udp_block(1, tcp=True)
    o = osprey_factory(
        port=p, routes=[("^$", ["sip:127.0.0.1:%d" % registrar.port])],
        listen=[("udp", "127.0.0.1", p), ("tcp", "127.0.0.1", p)],
        extra="relay = true;")
    try:
        phone = socket.create_connection(("127.0.0.1", p), timeout=3)
        lport = phone.getsockname()[1]
        inst = "<urn:uuid:%s>" % uuid.uuid4()
        reg = build_request("REGISTER", "sip:registrar.test", [
            ("Via", "SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bK%s;rport"
             % (lport, uuid.uuid4().hex)),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@registrar.test>;tag=r1"),
            ("To", "<sip:alice@registrar.test>"),
            ("Call-ID", "reg-%s" % uuid.uuid4().hex),
            ("CSeq", "1 REGISTER"),
            ("Supported", "path, outbound"),
            ("Contact", '<sip:alice@127.0.0.1:%d;transport=tcp;ob>;reg-id=1;'
             '+sip.instance="%s"' % (lport, inst)),
            ("Expires", "600")])
        phone.sendall(reg)
        fwd = registrar.expect(match(method="REGISTER"), timeout=3)
        path = fwd.values("path")
        assert len(path) == 1, fwd.raw
        assert path[0].startswith("<sip:f") and \
            "@127.0.0.1:%d;lr;transport=tcp" % p in path[0] and \
            path[0].endswith(";ob>"), path
        registrar.send(build_response(fwd, 200, to_tag="reg"), o.addr)
        r = read_msg(phone)
        assert r.code == 200, r

        # The registrar calls alice through the Path: over her connection.
        def invite(cid):
            return build_request("INVITE", "sip:alice@127.0.0.1:%d;"
                                 "transport=tcp" % lport, [
                                     ("Via", "SIP/2.0/UDP 127.0.0.1:%d;"
                                      "branch=z9hG4bK%s" % (
                                          registrar.port, uuid.uuid4().hex)),
                                     ("Route", path[0]),
                                     ("Max-Forwards", "70"),
                                     ("From", "<sip:bob@registrar.test>;"
                                      "tag=b1"),
                                     ("To", "<sip:alice@registrar.test>"),
                                     ("Call-ID", cid),
                                     ("CSeq", "1 INVITE"),
                                     ("Contact", "<sip:bob@127.0.0.1:%d>"
                                      % registrar.port)])
        registrar.send(invite("call-1"), o.addr)
        inv = read_msg(phone)
        assert inv.method == "INVITE" and inv.call_id == "call-1", inv
        phone.sendall(build_response(inv, 486, to_tag="a1"))
        r = registrar.expect(match(code=486, call_id="call-1"), timeout=3)
        assert r.code == 486

        phone.close()
        import time
        time.sleep(0.3)
        registrar.send(invite("call-2"), o.addr)
        r = registrar.expect(match(call_id="call-2", code=range(300, 700)),
                             timeout=3)
        assert r.code == 430 and r.reason == "Flow Failed", r
    finally:
        registrar.close()


def test_no_path_without_supported_path(osprey_factory):
    """RFC 3327 5: a registrar that did not get Supported: path from the
    phone would refuse a Path; none is added."""
    registrar = Endpoint()
    p = interop.free_udp_block(1, tcp=True)
    osprey_factory(
        port=p, routes=[("^$", ["sip:127.0.0.1:%d" % registrar.port])],
        listen=[("udp", "127.0.0.1", p), ("tcp", "127.0.0.1", p)],
        extra="relay = true;")
    try:
        phone = socket.create_connection(("127.0.0.1", p), timeout=3)
        phone.sendall(build_request("REGISTER", "sip:registrar.test", [
            ("Via", "SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bK%s"
             % (phone.getsockname()[1], uuid.uuid4().hex)),
            ("Max-Forwards", "70"),
            ("From", "<sip:carol@registrar.test>;tag=c1"),
            ("To", "<sip:carol@registrar.test>"),
            ("Call-ID", "reg-%s" % uuid.uuid4().hex),
            ("CSeq", "1 REGISTER"),
            ("Contact", "<sip:carol@127.0.0.1;transport=tcp>")]))
        fwd = registrar.expect(match(method="REGISTER"), timeout=3)
        assert fwd.values("path") == [], fwd.raw
        phone.close()
    finally:
        registrar.close()
