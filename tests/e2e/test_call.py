"""Calls through ospreyd: forwarding, relaying, retransmissions, timers."""

import time

from conftest import ctl, ctl_stats
from sip import (NON2XX, SDP, Endpoint, match, new_branch,  # noqa: F401
                 parse_uri, reglab, sipnet, uri_of)


def test_full_call(sipnet):
    """INVITE/100/180/200/ACK/BYE/200 through the proxy (RFC 3261 16.6,
    16.7): proxy Via on top downstream, removed upstream, Max-Forwards
    decremented, Record-Route with lr, ACK and BYE follow the route set."""
    net = sipnet()
    px, uas, caller = net.proxy, net.uas, net.caller
    call = net.call()
    call.invite()

    trying = caller.expect(call.resp(100), timeout=1)
    call.check_vias(trying)

    inv = uas.expect("INVITE", call_id=call.call_id)
    assert inv.uri == "sip:bob@example.test"
    vias = inv.vias
    assert len(vias) == 2, vias
    top = vias[0]
    assert top.transport == "UDP"
    assert top.sent_by == px.addr, "proxy Via sent-by %r" % (top.sent_by,)
    assert top.branch and top.branch.startswith("z9hG4bK"), top
    assert top.branch != call.invite_branch
    assert vias[1].branch == call.invite_branch
    assert vias[1].sent_by == caller.addr
    assert inv.get("max-forwards") == "69"
    rr = inv.values("record-route")
    assert len(rr) == 1, rr
    rru = parse_uri(uri_of(rr[0]))
    assert (rru.host, rru.port) == px.addr, rr
    assert "lr" in rru.params, rr
    assert inv.call_id == call.call_id
    assert inv.from_tag == call.from_tag
    assert inv.to_tag is None
    assert inv.cseq == (1, "INVITE")
    assert inv.body == SDP
    assert inv.content_length == len(SDP)

    uas.respond(inv, 180)
    ringing = caller.expect(call.resp(180))
    call.check_vias(ringing)
    assert ringing.to_tag == uas.tag(inv)

    uas.respond(inv, 200, body=SDP)
    ok = caller.expect(call.resp(200))
    call.check_vias(ok)
    assert ok.to_tag == uas.tag(inv)
    assert uri_of(ok.get("contact")) == uas.contact_uri
    assert ok.body == SDP

    call.ack(ok)
    assert call.route_set == rr, "route set learnt from the 2xx"
    ack = uas.expect("ACK", call_id=call.call_id)
    assert ack.uri == uas.contact_uri
    assert ack.vias[0].sent_by == px.addr
    assert ack.vias[1].branch == call.last_branch
    assert ack.values("route") == [], "proxy must remove its own Route"
    assert ack.to_tag == uas.tag(inv)
    assert ack.cseq == (1, "ACK")

    call.bye()
    bye = uas.expect("BYE", call_id=call.call_id)
    assert bye.uri == uas.contact_uri
    assert bye.vias[0].sent_by == px.addr
    assert bye.vias[0].branch.startswith("z9hG4bK")
    assert bye.values("route") == []
    assert bye.get("max-forwards") == "69"
    assert bye.cseq == (2, "BYE")
    uas.respond(bye, 200)
    bye_ok = caller.expect(call.resp(200, "BYE"))
    call.check_vias(bye_ok, call.last_branch)
    assert px.alive()


def test_invite_retransmission_absorbed(sipnet):
    """A retransmitted INVITE is not forwarded again; the caller gets the
    last response again (100, later 180) (RFC 3261 17.2.1)."""
    net = sipnet(timers={"t1": 500, "t2": 4000})  # Timer A: 0.5s
    uas, caller = net.uas, net.caller
    call = net.call()
    call.invite()
    caller.expect(call.resp(100), timeout=1)
    inv = uas.expect("INVITE", call_id=call.call_id)
    uas.respond(inv, 100)               # stops the proxy's Timer A

    call.resend_invite()
    again = caller.expect(call.resp(100), timeout=1)
    call.check_vias(again)
    dup = uas.ep.collect(0.3, match(method="INVITE"))
    assert dup == [], "retransmitted INVITE forwarded: %r" % dup

    uas.respond(inv, 180)
    caller.expect(call.resp(180))
    call.resend_invite()
    again = caller.expect(call.resp(180), timeout=1)
    assert again.to_tag == uas.tag(inv)
    dup = uas.ep.collect(0.3, match(method="INVITE"))
    assert dup == [], "retransmitted INVITE forwarded: %r" % dup

    uas.respond(inv, 200, body=SDP)
    ok = caller.expect(call.resp(200))
    call.ack(ok)
    uas.expect("ACK", call_id=call.call_id)
    assert net.proxy.alive()


def test_2xx_retransmissions_forwarded(sipnet):
    """Every 2xx from the UAS, retransmissions too, reaches the caller
    (RFC 3261 16.7 step 10 / RFC 6026)."""
    net = sipnet()
    uas, caller = net.uas, net.caller
    call = net.call()
    inv = net.ring(call)
    for _ in range(3):
        uas.respond(inv, 200, body=SDP)
        time.sleep(0.05)
    oks = caller.collect(0.7, call.resp(200))
    assert len(oks) == 3, "caller got %d of 3 200 OKs" % len(oks)
    for ok in oks:
        call.check_vias(ok)
    call.ack(oks[0])
    uas.expect("ACK", call_id=call.call_id)
    call.bye()
    uas.respond(uas.expect("BYE", call_id=call.call_id), 200)
    caller.expect(call.resp(200, "BYE"))


def test_busy_here_acked_hop_by_hop(sipnet):
    """486 is relayed; the proxy ACKs it itself with its INVITE's branch
    (17.1.1.3) and absorbs the caller's ACK."""
    net = sipnet(timers={"t1": 500, "t2": 4000})   # Timer D: 32 s
    uas, caller = net.uas, net.caller
    call = net.call()
    call.invite()
    inv = uas.expect("INVITE", call_id=call.call_id)
    uas.respond(inv, 486)

    busy = caller.expect(call.resp(486))
    call.check_vias(busy)
    assert busy.to_tag == uas.tag(inv)

    ack = uas.expect("ACK", call_id=call.call_id)
    assert len(ack.vias) == 1, ack.vias
    assert ack.branch == inv.branch
    assert ack.uri == inv.uri
    assert ack.to_tag == uas.tag(inv)
    assert ack.from_tag == inv.from_tag
    assert ack.cseq == (inv.cseq[0], "ACK")

    call.ack(busy)
    more = uas.ep.collect(0.5, match(method="ACK"))
    assert more == [], "caller's ACK for the 486 was forwarded: %r" % more
    assert net.proxy.alive()

    # The client transaction is now a compact record until Timer D (the
    # server's too, until Timer I), and it still answers a retransmitted
    # 486 with its ACK (17.1.1.2).
    end = time.time() + 5
    while ctl_stats(net.proxy).get("memory.transaction_records", 0) < 1:
        assert time.time() < end, ctl(net.proxy, "stats")
        time.sleep(0.05)
    uas.respond(inv, 486)
    again = uas.expect("ACK", call_id=call.call_id)
    assert again.branch == inv.branch
    assert caller.collect(0.5, call.resp(486)) == [], \
        "a retransmitted 486 went upstream"


def test_silent_target_408_after_timer_b(sipnet):
    """A target that never answers: INVITE retransmitted (Timer A), then
    408 to the caller after Timer B = 64*T1 = 3.2 s."""
    net = sipnet()                      # t1 = 50 ms
    uas, caller = net.uas, net.caller
    call = net.call()
    t0 = time.monotonic()
    call.invite()
    caller.expect(call.resp(100), timeout=1)
    final = caller.expect(call.resp(NON2XX), timeout=6)
    elapsed = final.time - t0
    assert final.code == 408, final
    assert 2.5 <= elapsed <= 4.7, "408 after %.2fs, Timer B is 3.2s" % elapsed
    call.check_vias(final)
    assert final.to_tag
    call.ack(final)

    invs = uas.ep.collect(0, match(method="INVITE", call_id=call.call_id))
    assert len(invs) >= 5, "UAS got %d INVITEs, Timer A" % len(invs)
    assert len({m.branch for m in invs}) == 1, [m.branch for m in invs]
    gaps = [b.time - a.time for a, b in zip(invs, invs[1:])]
    assert gaps[0] >= 0.03, gaps
    assert gaps[-1] > gaps[0], "Timer A doubles: %r" % gaps
    assert net.proxy.alive()


def test_timer_c_cancels_ringing_branch(sipnet):
    """Timer C: a branch that rings without a final gets CANCELled, and
    the caller gets a final (487 relayed, or 408) (RFC 3261 16.8)."""
    net = sipnet(timers={"c": 1500})
    uas, caller = net.uas, net.caller
    call = net.call()
    call.invite()
    inv = uas.expect("INVITE", call_id=call.call_id)
    uas.respond(inv, 180)
    t180 = time.monotonic()
    caller.expect(call.resp(180))

    cancel = uas.expect("CANCEL", timeout=4, call_id=call.call_id)
    dt = cancel.time - t180
    assert 1.2 <= dt <= 2.5, "CANCEL %.2fs after the 180, Timer C 1.5s" % dt
    assert cancel.branch == inv.branch
    assert cancel.uri == inv.uri
    assert cancel.cseq == (inv.cseq[0], "CANCEL")
    uas.respond(cancel, 200)
    uas.respond(inv, 487)

    final = caller.expect(call.resp(NON2XX), timeout=2)
    assert final.code in (408, 487), final
    call.check_vias(final)
    call.ack(final)
    assert net.proxy.alive()


DOWNSTREAM_CRED = ('Digest username="alice", realm="far.example.org", '
                   'nonce="0123456789abcdef", uri="sip:bob@example.test", '
                   'response="00112233445566778899aabbccddeeff", '
                   'algorithm=MD5')


def test_own_realm_credentials_consumed(reglab):
    """alice authenticates her INVITE for bob with Proxy-Authorization for
    our realm and carries another for a proxy further on: bob gets the
    other one only. Credentials for our realm are ours to consume (RFC
    3261 20.28, 22.3; Kamailio's consume_credentials()), so the next hop
    never sees the user's digest; another realm's are not ours."""
    reglab.start(users={"alice": "wonderland", "bob": "builder"},
                 auth={"nonce_expiry": 300},
                 registrar={"min_expires": 60, "max_expires": 3600})
    bob = reglab.phone("bob", "builder")
    assert bob.register(expires=600).code == 200
    alice = reglab.phone("alice", "wonderland")
    call = alice.call("sip:bob@example.test")
    r = alice.invite_auth(call, headers=[
        ("Proxy-Authorization", DOWNSTREAM_CRED)])
    assert r.code == 407, r
    sent = [ln for ln in call.invite_bytes.decode(errors="replace")
            .split("\r\n") if ln.lower().startswith("proxy-authorization")]
    assert len(sent) == 2 and 'realm="example.test"' in " ".join(sent), \
        "alice did not send both credentials: %r" % sent
    inv = bob.uas.expect("INVITE", call_id=call.call_id)
    assert inv.lines("proxy-authorization") == [DOWNSTREAM_CRED], \
        inv.text()
    bob.uas.respond(inv, 486)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 486, r
    call.ack(r)
    assert reglab.proxy.alive()


def _via_lines(data):
    """The lines of a message and the indexes of its Via lines."""
    lines = data.split(b"\r\n")
    return lines, [i for i, ln in enumerate(lines)
                   if ln.lower().startswith(b"via:")]


def test_late_2xx_sent_on_statelessly(sipnet):
    """The callee's 200 comes again after both transactions are gone
    (T1 = 20 ms: Timers L and M end at 1.28 s). No state is left, but the
    top Via is the proxy's (its sent-by, and a branch it made for that
    next Via), so the 200 goes on by the next Via to the caller (RFC 3261
    16.7, 16.11). Not ours, still dropped: another sent-by, our sent-by
    with a branch we did not make, and our Via over a next Via rewritten
    to point elsewhere (no reflection to a third party)."""
    net = sipnet(timers={"t1": 20, "t2": 400})
    px, uas, caller = net.proxy, net.uas, net.caller
    call = net.call()
    call.invite()
    inv = uas.expect("INVITE", call_id=call.call_id)
    ok = uas.respond(inv, 200, body=SDP)
    first = caller.expect(call.resp(200))
    time.sleep(64 * 0.020 + 0.5)       # Timers L and M, and a margin

    victim = Endpoint()
    try:
        lines, vias = _via_lines(ok)
        assert len(vias) == 2, ok
        top, nxt = lines[vias[0]], lines[vias[1]]
        port = str(px.port).encode()
        forged = [
            ok.replace(top, top.replace(b":" + port, b":1")),
            ok.replace(top, top.split(b";branch=")[0] + b";branch=" +
                       new_branch().encode() + b"0123456789abcdef"),
            ok.replace(nxt, nxt.replace(
                b"rport=%d" % caller.port, b"rport=%d" % victim.port)),
        ]
        assert all(f != ok for f in forged), "a forgery changed nothing"
        for f in forged:
            uas.ep.send(f, px.addr)
        got = caller.collect(0.5, call.resp(200))
        assert got == [], "a forged 200 went on: %r" % got
        assert victim.collect(0.2) == [], "reflected to a third party"

        uas.ep.send(ok, px.addr)
        again = caller.expect(call.resp(200), timeout=1)
        assert again.to_tag == first.to_tag
        call.check_vias(again)
        assert again.body == first.body
        call.ack(again)
        uas.expect("ACK", call_id=call.call_id)
    finally:
        victim.close()
    time.sleep(0.05)
    log = px.log_text()
    assert log.count("sent on statelessly") == 1, log
    assert px.alive()
