"""Peers that send broken responses (../shared/REAL-PEERS.md: Net::SIP's
487 that carries only the CANCEL's Via)."""

import json
import os
import re
import subprocess

from conftest import OSPREYD
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


def _parse_errors(proxy):
    tool = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")
    out = subprocess.run([tool, "-j", "-s", proxy.ctl_socket, "stats"],
                         capture_output=True, text=True, timeout=10).stdout
    return json.loads(out)["parse_errors"]


def test_malformed_responses_dropped_and_counted(sipnet):
    """Responses from downstream are accepted whole or dropped (the fuzz
    findings: a NUL in a challenge merged upstream, a broken To in the
    ACK): a 180 with a NUL in a header, a 183 with a bare LF line end and a
    486 whose To cannot be parsed never reach the caller and are counted as
    parse errors; the good 486 after them is relayed and ACKed."""
    net = sipnet()
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    tag = net.uas.tag(inv)
    before = _parse_errors(net.proxy)
    r180 = build_response(inv, 180, to_tag=tag,
                          headers=[("X-Junk", "a\x00b")])
    r183 = build_response(inv, 183, to_tag=tag,
                          headers=[("X-Bare", "lf")])
    r183 = r183.replace(b"X-Bare: lf\r\n", b"X-Bare: lf\n")
    bad486 = build_response(inv, 486, to_tag=tag)
    bad486 = re.sub(rb"\r\nTo: [^\r]*", b"\r\nTo: <sip:bob@ exa mple>;;",
                    bad486)
    for m in (r180, r183, bad486):
        net.uas.ep.send(m, inv.src)
    got = net.caller.collect(0.5, match(response=True))
    assert got == [m for m in got if m.code == 100], got
    assert net.uas.ep.collect(0.3, match(method="ACK")) == []
    assert _parse_errors(net.proxy) - before == 3
    net.uas.respond(inv, 486)
    final = net.caller.expect(call.resp(NON2XX), timeout=3)
    assert final.code == 486
    assert b"\x00" not in final.raw
    ack = net.uas.expect("ACK", call_id=call.call_id)
    assert ack.branch == inv.branch
    assert net.proxy.alive()
