"""Peers that send broken responses (../shared/REAL-PEERS.md: Net::SIP's
487 that carries only the CANCEL's Via)."""

from sip import NON2XX, build_response, match, sipnet  # noqa: F401


def test_viafree_487_never_relayed(sipnet):
    """A 487 carrying only the proxy's Via must not be forwarded (no Via
    would remain, RFC 3261 16.7 step 3).  The proxy still ACKs it, and the
    caller still ends with a proper 487 that carries its own Via."""
    net = sipnet()
    call = net.call()
    inv = net.ring(call)
    call.cancel()
    net.caller.expect(call.resp(200, "CANCEL"))
    cancel = net.uas.expect("CANCEL", call_id=call.call_id)
    net.uas.respond(cancel, 200)
    # The broken 487: built from the CANCEL (one Via) with the INVITE CSeq.
    bad = build_response(cancel, 487, to_tag=net.uas.tag(inv))
    bad = bad.replace(b" CANCEL\r\n", b" INVITE\r\n")
    net.uas.ep.send(bad, cancel.vias[0].response_addr() or cancel.src)

    ack = net.uas.expect("ACK", call_id=call.call_id)
    assert ack.branch == inv.branch
    final = net.caller.expect(call.resp(NON2XX), timeout=3)
    assert final.code == 487, final
    call.check_vias(final)
    call.ack(final)
    for m in net.caller.collect(0.5):
        assert m.vias, "a response without a Via reached the caller: %r" % m
    assert net.proxy.alive()


def test_viafree_2xx_not_relayed(sipnet):
    """A 200 that carries only the proxy's Via goes nowhere."""
    net = sipnet()
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    ok = build_response(inv, 200, to_tag=net.uas.tag(inv),
                        headers=[("Contact", "<%s>" % net.uas.contact_uri)])
    lines = ok.split(b"\r\n")
    vias = [i for i, ln in enumerate(lines) if ln.lower().startswith(b"via")]
    del lines[vias[1]]
    net.uas.ep.send(b"\r\n".join(lines), inv.src)
    got = net.caller.collect(0.5, match(code=200))
    assert got == [], got
    assert net.proxy.alive()
