"""CANCEL through ospreyd (RFC 3261 9, 16.10) and 481 for unmatched."""

import time

import pytest

from sip import NON2XX, SDP, match, new_tag, sipnet  # noqa: F401


def check_cancel(cancel, inv):
    """A proxy CANCEL matches the INVITE it cancels (RFC 3261 9.1)."""
    assert len(cancel.vias) == 1, cancel.vias
    assert cancel.branch == inv.branch
    assert cancel.uri == inv.uri
    assert cancel.call_id == inv.call_id
    assert cancel.get("from") == inv.get("from")
    assert cancel.get("to") == inv.get("to")
    assert cancel.cseq == (inv.cseq[0], "CANCEL")


def finals_acked(call, duration):
    """Every final response to the INVITE within duration, each ACKed."""
    out = []
    deadline = time.monotonic() + duration
    while True:
        m = call.ep.recv(max(0.0, deadline - time.monotonic()),
                         call.resp(NON2XX))
        if m is None:
            return out
        out.append(m)
        call.ack(m)


def test_cancel_after_180(sipnet):
    net = sipnet()
    uas, caller = net.uas, net.caller
    call = net.call()
    inv = net.ring(call)

    call.cancel()
    ok = caller.expect(call.resp(200, "CANCEL"))
    call.check_vias(ok)

    cancel = uas.expect("CANCEL", call_id=call.call_id)
    check_cancel(cancel, inv)
    uas.respond(cancel, 200)
    uas.respond(inv, 487)

    final = caller.expect(call.resp(NON2XX))
    assert final.code == 487, final
    call.check_vias(final)
    assert final.to_tag == uas.tag(inv)

    ack = uas.expect("ACK", call_id=call.call_id)
    assert len(ack.vias) == 1, ack.vias
    assert ack.branch == inv.branch
    assert ack.to_tag == uas.tag(inv)
    assert ack.cseq == (inv.cseq[0], "ACK")

    call.ack(final)
    more = uas.ep.collect(0.5, match(method="ACK"))
    assert more == [], "caller's ACK for the 487 was forwarded: %r" % more
    assert net.proxy.alive()


def test_cancel_before_provisional_gets_proxy_487(sipnet):
    """No CANCEL goes to a branch that sent no provisional (9.1); the
    caller gets a 487 from the proxy after timers.cancel (1000 ms)."""
    net = sipnet(timers={"cancel": 1000})
    uas, caller = net.uas, net.caller
    call = net.call()
    call.invite()
    caller.expect(call.resp(100), timeout=1)
    uas.expect("INVITE", call_id=call.call_id)      # and stays silent

    call.cancel()
    t0 = time.monotonic()
    ok = caller.expect(call.resp(200, "CANCEL"))
    call.check_vias(ok)

    final = caller.expect(call.resp(NON2XX), timeout=3)
    elapsed = final.time - t0
    assert final.code == 487, final
    assert 0.7 <= elapsed <= 2.0, "487 after %.2fs, cancel=1s" % elapsed
    call.check_vias(final)
    assert final.to_tag, "a final response needs a To tag"
    call.ack(final)

    cancels = uas.ep.collect(0.2, match(method="CANCEL"))
    assert cancels == [], "CANCEL sent before any provisional: %r" % cancels
    assert net.proxy.alive()


def test_provisional_after_cancel_triggers_cancel(sipnet):
    """The caller CANCELs while the branch is silent; when the branch then
    sends 180, the proxy CANCELs it, and the caller gets one 487."""
    net = sipnet(timers={"cancel": 1000})
    uas, caller = net.uas, net.caller
    call = net.call()
    call.invite()
    inv = uas.expect("INVITE", call_id=call.call_id)
    call.cancel()
    caller.expect(call.resp(200, "CANCEL"))
    early = uas.ep.collect(0.15, match(method="CANCEL"))
    assert early == [], "CANCEL sent before any provisional: %r" % early

    uas.respond(inv, 180)
    cancel = uas.expect("CANCEL", timeout=1, call_id=call.call_id)
    check_cancel(cancel, inv)
    uas.respond(cancel, 200)
    uas.respond(inv, 487)

    finals = finals_acked(call, 1.6)    # past timers.cancel
    distinct = {(m.code, m.to_tag) for m in finals}
    assert distinct == {(487, uas.tag(inv))}, \
        "caller finals %r (UAS tag %s)" % (finals, uas.tag(inv))
    assert net.proxy.alive()


def test_cancel_retransmission(sipnet):
    """A retransmitted CANCEL gets 200 again and is not relayed again."""
    net = sipnet(timers={"t1": 500, "t2": 4000})  # Timer E: 0.5s
    uas, caller = net.uas, net.caller
    call = net.call()
    inv = net.ring(call)

    data = call.cancel()
    caller.expect(call.resp(200, "CANCEL"))
    cancel = uas.expect("CANCEL", call_id=call.call_id)
    uas.respond(cancel, 200)

    caller.send(data, net.proxy.addr)
    again = caller.expect(call.resp(200, "CANCEL"))
    call.check_vias(again)
    more = uas.ep.collect(0.4, match(method="CANCEL"))
    assert more == [], "retransmitted CANCEL relayed again: %r" % more

    uas.respond(inv, 487)
    final = caller.expect(call.resp(NON2XX))
    assert final.code == 487
    call.ack(final)
    assert net.proxy.alive()


@pytest.mark.parametrize("order", ["cancel_first", "ok_first"])
def test_cancel_races_200(sipnet, order):
    """A CANCEL crossing the UAS's 200: the 2xx still reaches the caller,
    who ACKs it end to end; no 487 (RFC 3261 16.7 step 10)."""
    net = sipnet()
    uas, caller = net.uas, net.caller
    call = net.call()
    inv = net.ring(call)
    if order == "cancel_first":
        call.cancel()
        uas.respond(inv, 200, body=SDP)
    else:
        uas.respond(inv, 200, body=SDP)
        call.cancel()

    ok = caller.expect(call.resp(200, "INVITE"))
    call.check_vias(ok)
    cr = caller.expect(call.resp(None, "CANCEL"))
    assert cr.code in (200, 481), cr
    cancel = uas.ep.recv(0.3, match(method="CANCEL"))
    if cancel is not None:              # too late: already answered
        uas.respond(cancel, 200)

    call.ack(ok)
    ack = uas.expect("ACK", call_id=call.call_id)
    assert ack.uri == uas.contact_uri
    assert ack.to_tag == uas.tag(inv)
    assert ack.cseq == (1, "ACK")
    stray = caller.collect(0.3, call.resp(NON2XX))
    assert stray == [], "caller got a non-2xx final too: %r" % stray

    call.bye()
    uas.respond(uas.expect("BYE", call_id=call.call_id), 200)
    caller.expect(call.resp(200, "BYE"))
    assert net.proxy.alive()


def test_unmatched_cancel_481(sipnet):
    net = sipnet()
    call = net.call()
    call.invite(send=False)             # a CANCEL for an INVITE never sent
    call.cancel()
    r = net.caller.expect(call.resp(None, "CANCEL"))
    assert r.code == 481, r
    assert r.reason == "Call/Transaction Does Not Exist"
    call.check_vias(r)
    got = net.uas.ep.collect(0.3)
    assert got == [], "UAS got %r" % got


def test_unmatched_in_dialog_bye_481(sipnet):
    """In-dialog BYE (To tag) for the proxy itself, no Route onward."""
    net = sipnet()
    call = net.call()
    call.to_tag = new_tag()
    call.remote_target = "sip:%s:%d" % net.proxy.addr
    call.cseq = 1
    call.bye()
    r = net.caller.expect(call.resp(None, "BYE"))
    assert r.code == 481, r
    assert r.reason == "Call/Transaction Does Not Exist"
    call.check_vias(r, call.last_branch)
    got = net.uas.ep.collect(0.3)
    assert got == [], "UAS got %r" % got
