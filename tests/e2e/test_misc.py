"""Routing decisions, OPTIONS to the proxy itself, RFC 3581 rport."""

import pytest

from sip import NON2XX, build_request, parse, sipnet  # noqa: F401


@pytest.mark.parametrize("ruri,code", [
    ("sip:alice@foreign.test", 403),    # foreign domain, no route, relay off
    ("sip:alice@example.test", 404),    # our domain, no route
])
def test_no_route(sipnet, ruri, code):
    net = sipnet()
    call = net.call(ruri)
    call.invite()
    r = net.caller.expect(call.resp(NON2XX))
    assert r.code == code, r
    call.check_vias(r)
    assert r.to_tag, "a final response needs a To tag"
    call.ack(r)
    got = net.uas.ep.collect(0.3)
    assert got == [], "UAS got %r" % got
    assert net.proxy.alive()


@pytest.mark.parametrize("ruri", ["sip:example.test", "sip:{proxy}"])
def test_options_to_proxy(sipnet, ruri):
    """OPTIONS without a user part for one of our hosts: the proxy
    answers 200 itself with Allow (RFC 3261 11.2)."""
    net = sipnet()
    call = net.call(ruri.format(proxy="%s:%d" % net.proxy.addr))
    call.request("OPTIONS", headers=[("Accept", "application/sdp")])
    r = net.caller.expect(call.resp(None, "OPTIONS"))
    assert r.code == 200, r
    call.check_vias(r, call.last_branch)
    allow = {x.upper() for x in r.values("allow")}
    assert {"INVITE", "CANCEL", "ACK", "BYE", "OPTIONS"} <= allow, allow
    got = net.uas.ep.collect(0.3)
    assert got == [], "UAS got %r" % got


def test_rport_and_received(sipnet):
    """The caller's Via gets rport=<source port> and received= (RFC 3581),
    and the responses come back to the source port."""
    net = sipnet()
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    theirs = inv.vias[1]
    assert theirs.branch == call.invite_branch
    assert theirs.params.get("rport") == str(net.caller.port), theirs
    assert theirs.params.get("received") == "127.0.0.1", theirs
    net.uas.respond(inv, 486)
    r = net.caller.expect(call.resp(486))
    call.ack(r)
    net.uas.expect("ACK", call_id=call.call_id)


def test_record_route_off(sipnet):
    """record_route = false: no Record-Route, yet the call still works."""
    net = sipnet(extra="record_route = false;")
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    assert inv.values("record-route") == []
    assert inv.vias[0].sent_by == net.proxy.addr
    net.uas.respond(inv, 486)
    call.ack(net.caller.expect(call.resp(486)))
    assert net.proxy.alive()


def test_target_with_user_replaces_ruri(sipnet):
    """A route target with a user part replaces the Request-URI."""
    net = sipnet(routes=lambda t: [
        ("^bob$", [t.replace("sip:", "sip:carol@")])])
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    assert inv.uri == "sip:carol@%s:%d" % net.uas.ep.addr, inv.uri
    assert inv.get("to") == call.to_hdr(), "To is not changed"
    net.uas.respond(inv, 486)
    call.ack(net.caller.expect(call.resp(486)))
    assert net.proxy.alive()


def test_stray_response_dropped(sipnet):
    """A response whose top Via is not the proxy's goes nowhere."""
    net = sipnet()
    call = net.call()
    req = parse(build_request("INVITE", "sip:bob@example.test", [
        ("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bKstray" % net.caller.addr),
        ("Via", call.via("z9hG4bKinner")),
        ("From", call.from_hdr), ("To", call.to_hdr()),
        ("Call-ID", call.call_id), ("CSeq", "1 INVITE")]))
    net.uas.ep.send(net.uas.respond(req, 200, send=False), net.proxy.addr)
    got = net.caller.collect(0.3) + net.uas.ep.collect(0)
    assert got == [], "stray response went somewhere: %r" % got
    assert net.proxy.alive()
