"""Route processing (RFC 3261 16.4, 16.6 steps 6-7), "is this us?" by host
and port and transport, and IPv6 with a Record-Route for each side."""

import re
import socket

import pytest

from conftest import free_udp_port
from sip import (Endpoint, build_request, match, new_branch, new_call_id,
                 new_tag, parse, sipnet)  # noqa: F401


class Endpoint6(Endpoint):
    """An Endpoint on ::1."""

    def __init__(self):     # pylint: disable=super-init-not-called
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.bind(("::1", 0))
        self.host, self.port = self.sock.getsockname()[:2]
        self.addr = (self.host, self.port)
        self.queue = []
        self.history = []
        self.garbage = []


def request(ep, method, ruri, routes=(), to_tag=None, branch=None,
            cseq=1):
    hs = [("Via", "SIP/2.0/UDP %s:%d;branch=%s;rport" % (
        ep.host, ep.port, branch or new_branch())),
          ("Max-Forwards", "70"),
          ("From", "<sip:alice@example.test>;tag=%s" % new_tag()),
          ("To", "<sip:bob@example.test>" + (
              ";tag=" + to_tag if to_tag else "")),
          ("Call-ID", new_call_id()),
          ("CSeq", "%d %s" % (cseq, method))]
    hs += [("Route", r) for r in routes]
    return build_request(method, ruri, hs)


@pytest.fixture
def eps():
    made = []

    def make(v6=False):
        ep = Endpoint6() if v6 else Endpoint()
        made.append(ep)
        return ep
    yield make
    for ep in made:
        ep.close()


def test_preloaded_loose_route_popped(osprey_factory, eps):
    """Our own Route is removed; the next loose Route is the next hop and
    the Request-URI stays as it is."""
    caller, uas = eps(), eps()
    o = osprey_factory()
    ours = "<sip:127.0.0.1:%d;lr>" % o.port
    nxt = "<sip:127.0.0.1:%d;lr>" % uas.port
    caller.send(request(caller, "OPTIONS", "sip:carol@elsewhere.test",
                        routes=[ours, nxt]), o.addr)
    got = uas.expect(match(method="OPTIONS"))
    assert got.uri == "sip:carol@elsewhere.test"
    assert got.values("route") == [nxt]


def test_same_host_other_port_is_not_us(osprey_factory, eps):
    """A Route with our IP but another port names another element: it is
    not popped, the request goes there."""
    caller, uas = eps(), eps()
    o = osprey_factory(extra="relay = true;")  # a preloaded Route, not us
    nxt = "<sip:127.0.0.1:%d;lr>" % uas.port
    caller.send(request(caller, "OPTIONS", "sip:carol@elsewhere.test",
                        routes=[nxt]), o.addr)
    got = uas.expect(match(method="OPTIONS"))
    assert got.values("route") == [nxt]
    assert got.vias[0].sent_by == ("127.0.0.1", o.port)


def test_same_host_port_other_transport_is_not_us(osprey_factory, eps):
    """Our address and port with transport=tcp is not this UDP proxy: the
    request is not treated as ours, and as TCP is not available here the
    caller is told so (503), not looped back."""
    caller = eps()
    o = osprey_factory()
    tcp = "<sip:127.0.0.1:%d;transport=tcp;lr>" % o.port
    caller.send(request(caller, "OPTIONS", "sip:carol@elsewhere.test",
                        routes=[tcp]), o.addr)
    r = caller.expect(match(response=True))
    assert r.code == 503, r


def test_next_hop_strict_router(osprey_factory, eps):
    """16.6 step 7: the next hop lacks ;lr, so the Request-URI goes to the
    end of the Route set and the strict router's URI becomes the R-URI."""
    caller, uas = eps(), eps()
    o = osprey_factory()
    ours = "<sip:127.0.0.1:%d;lr>" % o.port
    strict = "<sip:127.0.0.1:%d>" % uas.port
    caller.send(request(caller, "OPTIONS", "sip:carol@elsewhere.test",
                        routes=[ours, strict]), o.addr)
    got = uas.expect(match(method="OPTIONS"))
    assert got.uri == "sip:127.0.0.1:%d" % uas.port
    assert got.values("route") == ["<sip:carol@elsewhere.test>"]


def test_previous_hop_strict_router(osprey_factory, eps):
    """16.4: a strict router before us put our Record-Route into the R-URI;
    the last Route value becomes the R-URI again and is removed."""
    caller, uas = eps(), eps()
    o = osprey_factory()
    target = "sip:bob@127.0.0.1:%d" % uas.port
    caller.send(request(caller, "BYE", "sip:127.0.0.1:%d;lr" % o.port,
                        routes=["<%s>" % target], to_tag=new_tag()),
                o.addr)
    got = uas.expect(match(method="BYE"))
    assert got.uri == target
    assert not got.has("route")


def test_in_dialog_via_record_route_to_foreign_target(osprey_factory, eps):
    """An in-dialog request that follows our Record-Route goes to its
    Request-URI even for a foreign domain with relay off."""
    caller, uas = eps(), eps()
    o = osprey_factory()
    target = "sip:bob@127.0.0.1:%d" % uas.port
    caller.send(request(caller, "BYE", target, to_tag=new_tag(),
                        routes=["<sip:127.0.0.1:%d;lr>" % o.port]), o.addr)
    got = uas.expect(match(method="BYE"))
    assert got.uri == target


def test_ipv6_call_double_record_route(osprey_factory, eps):
    """IPv4 caller, IPv6 callee: the proxy sends from its ::1 socket (its
    Via names it), records a route for each side, and the ACK that comes
    back along that route set reaches the callee over IPv6."""
    caller, uas = eps(), eps(v6=True)
    p4, p6 = free_udp_port(), free_udp_port("::1")
    o = osprey_factory(
        routes=[("^bob$", ["sip:[::1]:%d" % uas.port])], port=p4,
        listen=[("udp", "127.0.0.1", p4), ("udp", "::1", p6)])
    branch = new_branch()
    inv = request(caller, "INVITE", "sip:bob@example.test", branch=branch)
    caller.send(inv, o.addr)
    got = uas.expect(match(method="INVITE"))
    assert got.vias[0].sent_by == ("[::1]", p6) or \
        got.vias[0].sent_by == ("::1", p6), got.vias[0]
    rr = got.values("record-route")
    # Each carries the dialog's stamp (an HMAC of the Call-ID; an INVITE's
    # whose dialogs are kept also the run that made it, ;osr=).
    stamp = r";lr;osp=[0-9a-f]{16};osr=[0-9a-f]{8}>"
    assert re.fullmatch(r"<sip:\[::1\]:%d" % p6 + stamp, rr[0]), rr
    assert re.fullmatch(r"<sip:127\.0\.0\.1:%d" % p4 + stamp, rr[1]), rr

    # 200 back over IPv6, with our contact
    tag = new_tag()
    lines = got.raw.decode().split("\r\n")
    hdrs = [ln for ln in lines[1:] if ln and ln.split(":")[0].lower() in (
        "via", "from", "to", "call-id", "cseq", "record-route")]
    hdrs = [h + (";tag=" + tag if h.lower().startswith("to:") else "")
            for h in hdrs]
    ok = "\r\n".join(["SIP/2.0 200 OK"] + hdrs + [
        "Contact: <sip:bob@[::1]:%d>" % uas.port, "Content-Length: 0",
        "", ""])
    uas.send(ok.encode(), (o.addr[0].replace("127.0.0.1", "::1"), p6))
    r = caller.expect(match(response=True, code=200))
    assert r.values("record-route") == rr

    # ACK along the route set (reversed Record-Route), to the contact
    routes = list(reversed(rr))
    hs = [("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (
        caller.port, new_branch())), ("Max-Forwards", "70"),
          ("From", r.get("from")), ("To", r.get("to")),
          ("Call-ID", r.call_id), ("CSeq", "1 ACK")]
    hs += [("Route", x) for x in routes]
    caller.send(build_request("ACK", "sip:bob@[::1]:%d" % uas.port, hs),
                o.addr)
    ack = uas.expect(match(method="ACK"))
    assert ack.uri == "sip:bob@[::1]:%d" % uas.port
    assert not ack.has("route"), ack
