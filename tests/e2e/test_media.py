"""Media relay wired into calls (issue 13, items 5 and 6): a real
rtpengine started by the test (userspace, loopback, ephemeral ports) and
ospreyd with media.relay.

- SIP-level (the test's own UAC and UAS): the INVITE the callee gets and
  the 2xx the caller gets carry rtpengine's address and ports; a 2xx
  retransmission gets the same rewritten body; rtpengine's session is
  gone (ng `query`: unknown call) after BYE, CANCEL and dialog_timeout;
  rtpengine down: the call goes on with the caller's SDP and a warning,
  or 503 with media.on_failure = "503"; a CANCEL while the offer is out
  gets 487 at once; relay "nat" relays a caller whose SDP names 192.168.x
  and not one that names its own address, and a call to a phone
  registered behind NAT; a re-INVITE gets its own offer and answer; a
  forked call one offer and an answer per To tag; `ospreyctl dialogs`
  says which calls are relayed.
- Offer/answer beyond the INVITE (issue 13, the remaining gaps): a late
  offer (INVITE without SDP: offer in the 2xx, answer in the ACK; or in a
  reliable 183 and its PRACK), UPDATE and PRACK with SDP, with the test's
  UAC/UAS and with SIPp on both sides; media.ice = "force" puts
  rtpengine's candidates in, the default strips them; a forked call's
  unanswered branch with early media, and a second answered dialog when
  it ends, release only their branch (ng `query`: their ports gone, the
  answered branch's kept) and the BYE deletes the call.
- NAT in dialogs: a caller whose Contact is private gets the callee's BYE
  at the address its INVITE came from, a callee registered behind NAT the
  caller's ACK and BYE at its source.
- Two registered baresip phones call each other through ospreyd and
  rtpengine: RTP goes phone -> rtpengine -> phone both ways (tshark on
  lo), never phone to phone, and what rtpengine sends the callee carries
  the caller's sine tone (PCMU payloads off the wire: baresip 1.0 has no
  audio player that writes a file, so its own recording cannot be read).

rtpengine missing fails these tests: CI installs rtpengine-daemon.
"""

import contextlib
import copy
import json
import os
import re
import secrets
import socket
import subprocess
import time

import pytest

from conftest import OSPREYCTL, free_udp_port, reload_conf
from peers import interop
from sip import (SDP, UAC, UAS, Endpoint, build_request,  # noqa: F401
                 build_response, hostport, match, new_branch, reglab,
                 sipnet, uri_of)

RTPENGINE = os.environ.get("RTPENGINE", "/usr/bin/rtpengine")
NPORTS = 40


def ng(port, msg, timeout=1.0):
    """One ng request (bencode text after the cookie): the reply."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        # A cookie of its own: rtpengine answers a known one from its cache.
        s.sendto(secrets.token_hex(6).encode() + b" " + msg,
                 ("127.0.0.1", port))
        return s.recv(65536)
    except OSError:
        return b""
    finally:
        s.close()


def bstr(s):
    s = s.encode() if isinstance(s, str) else s
    return b"%d:%s" % (len(s), s)


def rtpe_has_call(port, call_id):
    """rtpengine still holds the call (ng query)."""
    r = ng(port, b"d7:command5:query7:call-id" + bstr(call_id) + b"e")
    assert r, "rtpengine did not answer the query"
    return b"6:result2:ok" in r


def wait_gone(port, call_id, secs=3.0):
    deadline = time.time() + secs
    while rtpe_has_call(port, call_id) and time.time() < deadline:
        time.sleep(0.05)
    return not rtpe_has_call(port, call_id)


class Rtpe:
    def __init__(self, ng_port, lo, hi):
        self.ng = ng_port
        self.lo = lo
        self.hi = hi

    def owns(self, port):
        return self.lo <= port <= self.hi


@contextlib.contextmanager
def running_rtpengine(lo, nports):
    """A real rtpengine (userspace) on loopback: an ng port of its own and
    media ports lo .. lo + nports - 1."""
    assert os.access(RTPENGINE, os.X_OK), \
        "%s missing: install rtpengine-daemon (tools/install-deps)" % RTPENGINE
    ngp = free_udp_port()
    p = subprocess.Popen(
        [RTPENGINE, "--config-file=none", "--foreground", "--log-stderr",
         "--table=-1", "--no-fallback", "--interface=127.0.0.1",
         "--listen-ng=127.0.0.1:%d" % ngp, "--port-min=%d" % lo,
         "--port-max=%d" % (lo + nports - 1), "--delete-delay=0",
         "--num-threads=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not ng(ngp, b"d7:command4:pinge", 0.1):
            assert p.poll() is None, "rtpengine exited %r" % p.returncode
            assert time.monotonic() < deadline, "rtpengine silent for 5 s"
        yield Rtpe(ngp, lo, lo + nports - 1)
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def rtpengine():
    # Below the ephemeral ports (the phones' RTP blocks come from there)
    # and below test_rtpengine.py's 20000-31999; test_soak's 9000-9999
    # below that.
    with running_rtpengine(12000 + (os.getpid() % 200) * NPORTS,
                           NPORTS) as r:
        yield r


def media_conf(port, relay="always", on_failure=None, timeout=500, ice=None):
    more = ' on_failure = "%s";' % on_failure if on_failure else ""
    more += ' ice = "%s";' % ice if ice else ""
    return ('media = { relay = "%s"; rtpengine = ( "udp:127.0.0.1:%d" ); '
            "rtpengine_timeout = %d; rtpengine_tries = 1;%s };" % (
                relay, port, timeout, more))


def sdp_addr(body):
    """(connection address, first audio port) of an SDP body."""
    text = body.decode(errors="replace")
    c = re.search(r"^c=IN IP[46] (\S+)", text, re.M)
    m = re.search(r"^m=audio (\d+) ", text, re.M)
    return (c.group(1) if c else None, int(m.group(1)) if m else None)


def dialogs(o):
    p = subprocess.run([OSPREYCTL, "-s", o.ctl_socket, "dialogs", "--json"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return json.loads(p.stdout)


def check_length(msg):
    assert int(msg.get("content-length")) == len(msg.body), msg.raw


def answered(net, sdp=SDP, **kw):
    call = net.call(**kw)
    call.invite(body=sdp)
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    net.uas.respond(inv, 180)
    net.caller.expect(call.resp(180))
    ok_bytes = net.uas.respond(inv, 200, body=CALLEE_SDP)
    ok = net.caller.expect(call.resp(200))
    call.ack(ok)
    net.uas.expect("ACK", call_id=call.call_id)
    return call, inv, ok, ok_bytes


CALLEE_SDP = (b"v=0\r\n"
              b"o=bob 1 1 IN IP4 127.0.0.1\r\n"
              b"s=-\r\n"
              b"c=IN IP4 127.0.0.1\r\n"
              b"t=0 0\r\n"
              b"m=audio 40000 RTP/AVP 0\r\n"
              b"a=rtpmap:0 PCMU/8000\r\n")

PRIVATE_SDP = SDP.replace(b"127.0.0.1", b"192.168.1.20")


def test_relay_always_bye_deletes(sipnet, rtpengine):
    """relay "always": offer before the INVITE goes on (the callee sees
    rtpengine's address and port, Content-Length right), answer before the
    2xx goes up (the caller sees rtpengine's); a 2xx retransmission gets
    the same body; the BYE deletes the session."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call, inv, ok, ok_bytes = answered(net)
    addr, port = sdp_addr(inv.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), inv.raw
    check_length(inv)
    addr, port2 = sdp_addr(ok.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port2), ok.raw
    assert port2 != port, (inv.raw, ok.raw)
    check_length(ok)
    net.uas.ep.send(ok_bytes, net.proxy.addr)     # 2xx retransmitted
    again = net.caller.expect(call.resp(200))
    assert again.body == ok.body, (again.raw, ok.raw)
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    d = dialogs(net.proxy)
    assert len(d) == 1 and d[0]["media"] is True, d
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    net.caller.expect(call.resp(200, "BYE"))
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()
    assert "rtpengine delete" in net.proxy.log_text()


def test_reinvite_relayed(sipnet, rtpengine):
    """A re-INVITE of a relayed call (the callee's, hold/unhold) goes
    through rtpengine too: the caller sees rtpengine's address, the callee
    rtpengine's in the caller's 2xx; the session stays until the BYE."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call, inv, ok, _ = answered(net)
    ep = net.uas.ep
    tag = net.uas.tag(inv)
    hs = [("Via", "SIP/2.0/UDP %s;branch=%s;rport" % (
        hostport(ep.host, ep.port), new_branch())),
        ("Max-Forwards", "70"),
        ("From", "<%s>;tag=%s" % (call.to_uri, tag)),
        ("To", call.from_hdr), ("Call-ID", call.call_id),
        ("CSeq", "2 INVITE"), ("Contact", "<%s>" % net.uas.contact_uri),
        ("Content-Type", "application/sdp")]
    hs += [("Route", r) for r in inv.values("record-route")]
    body = CALLEE_SDP.replace(b"40000", b"40002")
    ep.send(build_request("INVITE", uri_of(inv.get("contact")), hs, body),
            net.proxy.addr)
    re_inv = net.caller.expect(match(method="INVITE", call_id=call.call_id))
    addr, port = sdp_addr(re_inv.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), re_inv.raw
    check_length(re_inv)
    net.caller.send(build_response(re_inv, 200, headers=[
        ("Contact", call.contact), ("Content-Type", "application/sdp")],
        body=SDP), re_inv.vias[0].response_addr())
    r = ep.expect(match(code=200, call_id=call.call_id,
                        cseq_method="INVITE"))
    addr, port = sdp_addr(r.body)
    assert r.code == 200 and addr == "127.0.0.1" and rtpengine.owns(port), \
        r.raw
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()


OTHER_SDP = CALLEE_SDP.replace(b"40000", b"40010")


class Forked:
    """A call to bob forked to two callees in parallel (net.uas and
    other), relayed through rtpengine: the INVITE sent, both branches'
    INVITEs received (ia, ib)."""

    def __init__(self, sipnet, rtpengine):
        self.rtpe = rtpengine
        self.other = UAS(Endpoint())
        self.net = sipnet(routes=lambda t: [("^bob$",
                                             [t, self.other.target])],
                          extra=media_conf(rtpengine.ng))
        self.call = self.net.call()
        self.call.invite()
        self.ia = self.net.uas.expect("INVITE", call_id=self.call.call_id)
        self.ib = self.other.expect("INVITE", call_id=self.call.call_id)

    def early_media(self):
        """Both callees send 183 with SDP; both reach the caller."""
        self.net.uas.respond(self.ia, 183, body=CALLEE_SDP)
        self.other.respond(self.ib, 183, body=OTHER_SDP)
        return [self.net.caller.expect(self.call.resp(183))
                for _ in range(2)]

    def other_answers(self):
        """other's 200 reaches the caller, who ACKs it; net.uas gets the
        CANCEL and ends its branch with 487."""
        self.other.respond(self.ib, 200, body=OTHER_SDP)
        ok = self.net.caller.expect(self.call.resp(200))
        self.call.ack(ok)
        c = self.net.uas.expect("CANCEL", call_id=self.call.call_id)
        self.net.uas.respond(c, 200)
        self.net.uas.respond(self.ia, 487)
        self.other.expect("ACK", call_id=self.call.call_id)
        return ok

    def branch_media_gone(self, tag):
        """{tag: ports} once tag's branch has no ports left (2 s)."""
        deadline = time.time() + 2
        while tag in rtpe_ports(self.rtpe.ng, self.call.call_id) and \
                time.time() < deadline:
            time.sleep(0.05)
        return rtpe_ports(self.rtpe.ng, self.call.call_id)

    def hang_up(self, uas=None):
        """The caller's BYE, answered by uas (other): rtpengine's call
        is deleted."""
        uas = uas or self.other
        self.call.bye()
        bye = uas.expect("BYE", call_id=self.call.call_id)
        uas.respond(bye, 200)
        assert wait_gone(self.rtpe.ng, self.call.call_id), \
            self.net.proxy.log_text()

    def close(self):
        self.other.ep.close()


@pytest.fixture
def forked(sipnet, rtpengine):
    made = []

    def make():
        made.append(Forked(sipnet, rtpengine))
        return made[-1]
    yield make
    for f in made:
        f.close()


def test_forked_one_offer_answer_per_tag(forked):
    """Two callees in parallel: one offer (both INVITEs carry the same
    rtpengine SDP), each 183 with SDP gets an answer for its To tag (the
    caller sees rtpengine's address in both), the 200 of one goes up
    with rtpengine's SDP, the other gets a CANCEL; the BYE deletes."""
    f = forked()
    assert f.ia.body == f.ib.body and f.rtpe.owns(sdp_addr(f.ia.body)[1])
    early = f.early_media()
    assert {e.to_tag for e in early} == {f.net.uas.tag(f.ia),
                                        f.other.tag(f.ib)}, early
    for e in early:
        addr, port = sdp_addr(e.body)
        assert addr == "127.0.0.1" and f.rtpe.owns(port), e.raw
    ok = f.other_answers()
    assert ok.to_tag == f.other.tag(f.ib)
    assert f.rtpe.owns(sdp_addr(ok.body)[1]), ok.raw
    assert f.net.caller.collect(0.3, f.call.resp(487)) == []
    assert rtpe_has_call(f.rtpe.ng, f.call.call_id)
    f.hang_up()


def with_sdp(data, body):
    """A request's bytes with body as its SDP (Content-Length fixed)."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    head = [h for h in head if not h.lower().startswith(b"content-length")]
    head += [b"Content-Type: application/sdp",
             b"Content-Length: %d" % len(body)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def test_late_offer(sipnet, rtpengine):
    """An INVITE without SDP: the callee's 200 carries the offer (the
    caller sees rtpengine's address and port), the caller's ACK the
    answer (the callee sees rtpengine's, Content-Length right); the BYE
    deletes the session."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call = net.call()
    call.invite(body=b"")
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    assert inv.body == b"", inv.raw
    ok_bytes = net.uas.respond(inv, 200, body=CALLEE_SDP)
    ok = net.caller.expect(call.resp(200))
    addr, port = sdp_addr(ok.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), ok.raw
    check_length(ok)
    net.uas.ep.send(ok_bytes, net.proxy.addr)     # 2xx retransmitted
    again = net.caller.expect(call.resp(200))
    assert again.body == ok.body, (again.raw, ok.raw)
    call.ep.send(with_sdp(call.ack(ok, send=False), SDP), net.proxy.addr)
    ack = net.uas.expect("ACK", call_id=call.call_id)
    addr, port2 = sdp_addr(ack.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port2), ack.raw
    assert port2 != port, (ok.raw, ack.raw)
    check_length(ack)
    assert b"a=rtpmap:0 PCMU/8000" in ack.body, ack.raw
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    assert dialogs(net.proxy)[0]["media"] is True
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()
    assert "(late offer)" in net.proxy.log_text()


def test_late_offer_prack(sipnet, rtpengine):
    """RFC 3262 with a late offer: the reliable 183's SDP is the callee's
    offer (the caller sees rtpengine's address), the PRACK's SDP the
    caller's answer (the callee sees rtpengine's); a PRACK with SDP after
    that is a new offer, its 2xx the answer; the 200 and ACK carry none;
    the BYE deletes the session."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call = net.call()
    call.invite(body=b"", headers=[("Supported", "100rel")])
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    net.uas.respond(inv, 183, headers=[
        ("Require", "100rel"), ("RSeq", "1"),
        ("Content-Type", "application/sdp")], body=CALLEE_SDP)
    early = net.caller.expect(call.resp(183))
    addr, port = sdp_addr(early.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), early.raw
    call.learn(early)
    call.request("PRACK", headers=[("RAck", "1 %d INVITE" % call.cseq),
                                   ("Content-Type", "application/sdp")],
                 body=SDP)
    pr = net.uas.expect("PRACK", call_id=call.call_id)
    addr, port2 = sdp_addr(pr.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port2), pr.raw
    assert port2 != port
    check_length(pr)
    net.uas.respond(pr, 200)
    net.caller.expect(call.resp(200, "PRACK"))
    # Asked as the answer (the tags swapped), not as a new offer.
    assert net.proxy.log_text().count("the PRACK answers the late offer") \
        == 1, net.proxy.log_text()
    # A second PRACK-borne offer (a new reliable 1xx, answered with SDP).
    net.uas.respond(inv, 183, headers=[("Require", "100rel"), ("RSeq", "2")])
    net.caller.expect(call.resp(183))
    call.request("PRACK", headers=[("RAck", "2 %d INVITE" % (call.cseq - 1)),
                                   ("Content-Type", "application/sdp")],
                 body=SDP.replace(b"49170", b"49180"))
    pr2 = net.uas.expect("PRACK", call_id=call.call_id)
    assert rtpengine.owns(sdp_addr(pr2.body)[1]), pr2.raw
    net.uas.respond(pr2, 200, headers=[("Content-Type", "application/sdp")],
                    body=CALLEE_SDP.replace(b"40000", b"40006"))
    r = net.caller.expect(call.resp(200, "PRACK"))
    assert rtpengine.owns(sdp_addr(r.body)[1]), r.raw
    net.uas.respond(inv, 200)
    ok = net.caller.expect(call.resp(200))
    call.ack(ok)
    net.uas.expect("ACK", call_id=call.call_id)
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()


def test_sipp_late_offer_update(osprey_factory, rtpengine, tmp_path):
    """SIPp on both sides (tests/sipp/uac_late_offer.xml and
    uas_late_offer.xml): an INVITE without SDP, the callee's offer in the
    200, the caller's answer in the ACK, then an UPDATE with SDP; each
    side checks it got rtpengine's SDP (its a=rtcp line, not the other
    side's port) and fails its call otherwise; the BYE deletes."""
    wd = str(tmp_path)
    uas_port = interop.free_udp_block(1)
    uac_port = interop.free_udp_block(1)
    o = osprey_factory(routes=[("^bob$", ["sip:127.0.0.1:%d" % uas_port])],
                       extra=media_conf(rtpengine.ng))
    uas = uac = None
    try:
        uas = interop.uas(wd, "uas_late_offer.xml", uas_port, o.port)
        uac = interop.uac(wd, "uac_late_offer.xml", o.port, uac_port)
        rc_uac = uac.wait()
        rc_uas = uas.wait(limit=5 if rc_uac else None)
        assert (rc_uac, rc_uas) == (0, 0), (
            "SIPp UAC exit %s, UAS exit %s\n%s\n%s" % (
                rc_uac, rc_uas, uac.report() + uas.report(), o.log_text()))
    finally:
        for p in (uac, uas):
            if p is not None:
                p.stop()
    log = o.log_text()
    assert "(late offer)" in log, log
    cid = re.search(r"proxy (\S+): media relayed by .* \(late offer\)",
                    log).group(1)
    assert log.count("proxy %s: media relayed by" % cid) == 2, log
    assert wait_gone(rtpengine.ng, cid), log


def test_update_relayed(sipnet, rtpengine):
    """An UPDATE with SDP of a relayed call (RFC 3311) is an offer: the
    callee sees rtpengine's address; its 2xx the answer: the caller sees
    rtpengine's; the session stays until the BYE."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call, inv, ok, _ = answered(net)
    body = SDP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 127.0.0.2")
    call.request("UPDATE", headers=[("Content-Type", "application/sdp"),
                                    ("Contact", call.contact)], body=body)
    up = net.uas.expect("UPDATE", call_id=call.call_id)
    addr, port = sdp_addr(up.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), up.raw
    assert b"127.0.0.2" not in up.body, up.raw
    check_length(up)
    net.uas.respond(up, 200, headers=[
        ("Content-Type", "application/sdp"),
        ("Contact", "<%s>" % net.uas.contact_uri)],
        body=CALLEE_SDP.replace(b"40000", b"40004"))
    r = net.caller.expect(call.resp(200, "UPDATE"))
    addr, port = sdp_addr(r.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), r.raw
    check_length(r)
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()


def test_ice_force(sipnet, rtpengine):
    """media.ice = "force": rtpengine offers itself as the ICE candidate
    (a=candidate in the INVITE the callee gets and the 2xx the caller
    gets); the default "remove" leaves none (test_relay_always...)."""
    net = sipnet(extra=media_conf(rtpengine.ng, ice="force"))
    call, inv, ok, _ = answered(net)
    assert b"a=candidate:" in inv.body and b"a=ice-ufrag:" in inv.body, \
        inv.raw
    assert b"a=candidate:" in ok.body, ok.raw
    check_length(inv)
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)


def test_ice_reload(sipnet, rtpengine):
    """media.ice changes on reload (logged as a change of the media
    section): the next call gets rtpengine's candidates."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call, inv, ok, _ = answered(net)
    assert b"a=candidate" not in inv.body, inv.raw
    call.bye()
    net.uas.respond(net.uas.expect("BYE", call_id=call.call_id), 200)
    text = open(net.proxy.conf).read()
    assert "rtpengine_tries = 1;" in text
    reload_conf(net.proxy, text.replace("rtpengine_tries = 1;",
                                        'rtpengine_tries = 1; ice = "force";'))
    assert "reload: media: ice=remove -> ice=force" in \
        net.proxy.log_text(), net.proxy.log_text()
    call, inv, ok, _ = answered(net)
    assert b"a=candidate:" in inv.body, inv.raw
    call.bye()
    net.uas.respond(net.uas.expect("BYE", call_id=call.call_id), 200)


def test_ice_remove_default(sipnet, rtpengine):
    """Without media.ice: ICE attributes of the caller are stripped."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    ice = SDP + b"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n"
    call, inv, ok, _ = answered(net, sdp=ice)
    assert b"a=ice-" not in inv.body and b"a=candidate" not in inv.body, \
        inv.raw
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)


def bdecode(b, i=0):
    """One bencoded value at b[i:]: (value, next index)."""
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        out = []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            out.append(v)
        if c == b"l":
            return out, i + 1
        return dict(zip(out[::2], out[1::2])), i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


def rtpe_ports(port, call_id):
    """{tag: [local ports]} of a call's monologues (ng query); a deleted
    branch has none."""
    r = ng(port, b"d7:command5:query7:call-id" + bstr(call_id) + b"e")
    d, _ = bdecode(r, r.index(b" ") + 1)
    out = {}
    for tag, ml in d.get(b"tags", {}).items():
        ps = [s[b"local port"] for m in ml.get(b"medias", [])
              for s in m.get(b"streams", []) if b"local port" in s]
        if ps:
            out[tag.decode()] = ps
    return out


def test_forked_losing_branch_released(forked):
    """Two callees with early media (183 with SDP each): when one answers,
    the other branch's media is deleted by its To tag (log line), the
    answered call's session stays (query) until the BYE deletes it."""
    f = forked()
    f.early_media()
    loser, winner = f.net.uas.tag(f.ia), f.other.tag(f.ib)
    ports = rtpe_ports(f.rtpe.ng, f.call.call_id)
    assert loser in ports and winner in ports, ports
    f.other_answers()
    # rtpengine keeps the deleted branch's tag, without its ports.
    ports = f.branch_media_gone(loser)
    assert loser not in ports, ports
    assert ports.get(winner) and ports.get(f.call.from_tag), ports
    assert "rtpengine delete of branch %s" % loser in \
        f.net.proxy.log_text()
    f.hang_up()


def test_forked_branch_fails_early_media_released(forked):
    """Two callees with early media; one gives up (486) while the other
    still rings: that branch's media goes at once (its ports, by its To
    tag), the other's stays; the other answers and keeps its media; the
    BYE deletes the call."""
    f = forked()
    f.early_media()
    loser, winner = f.net.uas.tag(f.ia), f.other.tag(f.ib)
    f.net.uas.respond(f.ia, 486)
    f.net.uas.expect("ACK", call_id=f.call.call_id)
    ports = f.branch_media_gone(loser)
    assert loser not in ports, ports
    assert ports.get(winner) and ports.get(f.call.from_tag), ports
    f.other.respond(f.ib, 200, body=OTHER_SDP)
    ok = f.net.caller.expect(f.call.resp(200))
    assert f.rtpe.owns(sdp_addr(ok.body)[1]), ok.raw
    f.call.ack(ok)
    f.other.expect("ACK", call_id=f.call.call_id)
    ports = rtpe_ports(f.rtpe.ng, f.call.call_id)
    assert ports.get(winner) and ports.get(f.call.from_tag), ports
    f.hang_up()


def test_forked_two_answers_second_bye(forked):
    """Both callees answer (two 200s, two dialogs): the caller hangs up the
    second; only its branch's media goes (delete with its To tag), the
    answered call's session stays with its ports (query), and the BYE of
    the answered dialog deletes the call."""
    f = forked()
    call = f.call
    f.other.respond(f.ib, 200, body=OTHER_SDP)
    ok = f.net.caller.expect(call.resp(200))
    f.net.uas.respond(f.ia, 200, body=CALLEE_SDP)
    ok2 = f.net.caller.expect(call.resp(200))
    winner, loser = f.other.tag(f.ib), f.net.uas.tag(f.ia)
    assert (ok.to_tag, ok2.to_tag) == (winner, loser)
    second = copy.copy(call)        # the caller in the other dialog
    call.ack(ok)
    f.other.expect("ACK", call_id=call.call_id)
    second.ack(ok2)
    f.net.uas.expect("ACK", call_id=call.call_id)
    ports = rtpe_ports(f.rtpe.ng, call.call_id)
    assert winner in ports and loser in ports, ports
    second.bye()
    bye = f.net.uas.expect("BYE", call_id=call.call_id)
    f.net.uas.respond(bye, 200)
    f.net.caller.expect(call.resp(200, "BYE"))
    ports = f.branch_media_gone(loser)
    assert rtpe_has_call(f.rtpe.ng, call.call_id), f.net.proxy.log_text()
    assert loser not in ports, ports
    assert ports.get(winner) and ports.get(call.from_tag), ports
    f.hang_up()


def test_cancel_deletes(sipnet, rtpengine):
    """A call cancelled while ringing: 487, and the session is gone."""
    net = sipnet(extra=media_conf(rtpengine.ng))
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    assert rtpengine.owns(sdp_addr(inv.body)[1]), inv.raw
    net.uas.respond(inv, 180)
    net.caller.expect(call.resp(180))
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    call.cancel()
    net.caller.expect(call.resp(200, "CANCEL"))
    c = net.uas.expect("CANCEL", call_id=call.call_id)
    net.uas.respond(c, 200)
    net.uas.respond(inv, 487)
    r = net.caller.expect(call.resp(487))
    call.ack(r)
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()


def test_dialog_timeout_deletes(sipnet, rtpengine):
    """dialog_timeout: our BYEs to both, and the session is gone."""
    net = sipnet(extra=media_conf(rtpengine.ng),
                 timers={"dialog_timeout": 1})
    call, inv, ok, _ = answered(net)
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    b1 = net.uas.expect("BYE", call_id=call.call_id, timeout=4)
    net.uas.respond(b1, 200)
    b2 = net.caller.expect(match(method="BYE", call_id=call.call_id))
    net.caller.send(build_response(b2, 200), b2.vias[0].response_addr())
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()


def dead_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))        # bound, never read: no answer
    return s


def test_rtpengine_down_call_goes_on(sipnet):
    """No answer from rtpengine: the call connects with the caller's own
    SDP, and a warning is logged."""
    dead = dead_port()
    net = sipnet(extra=media_conf(dead.getsockname()[1], timeout=100))
    call, inv, ok, _ = answered(net)
    assert inv.body == SDP, inv.raw
    assert ok.body == CALLEE_SDP, ok.raw
    d = dialogs(net.proxy)
    assert len(d) == 1 and d[0]["media"] is False, d
    assert "rtpengine offer failed" in net.proxy.log_text()
    assert "media not relayed" in net.proxy.log_text()
    dead.close()


def test_rtpengine_down_503(sipnet):
    """media.on_failure = "503": the INVITE gets 503, nothing forwarded."""
    dead = dead_port()
    net = sipnet(extra=media_conf(dead.getsockname()[1], timeout=100,
                                  on_failure="503"))
    call = net.call()
    call.invite()
    r = net.caller.expect(call.resp(503), timeout=3)
    assert "rtpengine" in r.raw.split(b"\r\n", 1)[0].decode(), r.raw
    call.ack(r)
    assert net.uas.ep.collect(0.3, match(method="INVITE")) == []
    dead.close()


def test_cancel_while_offer_pending(sipnet):
    """rtpengine slow (no answer for 1 s): the INVITE waits for it, its
    retransmission is absorbed, a CANCEL gets 200 and the INVITE 487 at
    once; nothing reaches the callee, and a late offer failure changes
    nothing."""
    dead = dead_port()
    net = sipnet(extra=media_conf(dead.getsockname()[1], timeout=1000))
    call = net.call()
    call.invite()
    net.caller.expect(call.resp(100))
    call.resend_invite()
    t0 = time.monotonic()
    call.cancel()
    net.caller.expect(call.resp(200, "CANCEL"), timeout=0.5)
    r = net.caller.expect(call.resp(487), timeout=0.5)
    assert time.monotonic() - t0 < 0.5
    call.ack(r)
    time.sleep(1.2)
    assert net.uas.ep.collect(0.2, match(method="INVITE")) == []
    assert net.caller.collect(0.2, call.resp(range(200, 700))) == []
    assert "CANCEL while rtpengine has the offer" in net.proxy.log_text()
    dead.close()


def test_relay_nat(sipnet, rtpengine):
    """relay "nat": an SDP that names 192.168.1.20 is relayed (rtpengine's
    address and port at the callee); one that names the caller's own
    address (127.0.0.1, its source) is not."""
    net = sipnet(extra=media_conf(rtpengine.ng, relay="nat"))
    call = net.call()
    call.invite(body=PRIVATE_SDP)
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    addr, port = sdp_addr(inv.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), inv.raw
    net.uas.respond(inv, 486)
    call.ack(net.caller.expect(call.resp(486)))
    assert wait_gone(rtpengine.ng, call.call_id), net.proxy.log_text()
    call = net.call()
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    assert inv.body == SDP, inv.raw
    net.uas.respond(inv, 486)
    call.ack(net.caller.expect(call.resp(486)))


class NatUAC(UAC):
    """A caller behind a NAT: its Contact names a private address, its
    messages come from the test's socket."""

    @property
    def contact(self):
        return "<sip:alice@192.168.1.20:5060>"


def test_bye_to_nat_party_goes_to_source(sipnet):
    """The callee's BYE to a caller whose Contact is private (no relay
    involved): the proxy sends it to the address the INVITE came from, its
    Request-URI still the caller's Contact."""
    net = sipnet()
    call = NatUAC(net.caller, net.proxy.addr)
    call.invite()
    inv = net.uas.expect("INVITE", call_id=call.call_id)
    assert uri_of(inv.get("contact")) == "sip:alice@192.168.1.20:5060", \
        "record_route = true: the Contact stays %r" % inv.get("contact")
    net.uas.respond(inv, 200, body=CALLEE_SDP)
    ok = net.caller.expect(call.resp(200))
    call.ack(ok)
    net.uas.expect("ACK", call_id=call.call_id)
    ep = net.uas.ep
    tag = net.uas.tag(inv)
    hs = [("Via", "SIP/2.0/UDP %s;branch=%s;rport" % (
        hostport(ep.host, ep.port), new_branch())),
        ("Max-Forwards", "70"),
        ("From", "<%s>;tag=%s" % (call.to_uri, tag)),
        ("To", call.from_hdr), ("Call-ID", call.call_id),
        ("CSeq", "1 BYE")]
    hs += [("Route", r) for r in inv.values("record-route")]
    ep.send(build_request("BYE", uri_of(inv.get("contact")), hs),
            net.proxy.addr)
    bye = net.caller.expect(match(method="BYE", call_id=call.call_id),
                            timeout=2)
    assert bye.raw.startswith(b"BYE sip:alice@192.168.1.20:5060 "), bye.raw
    net.caller.send(build_response(bye, 200), bye.vias[0].response_addr())
    net.uas.ep.expect(match(response=True, call_id=call.call_id,
                            cseq_method="BYE"))


def test_callee_behind_nat(reglab, rtpengine):
    """bob registers from behind a NAT (Contact 192.168.1.20:5062, sent
    from a loopback socket); a caller with a public SDP calls him with
    relay "nat": relayed because bob's binding is behind NAT.  bob answers
    with his private Contact; the caller's BYE through our Record-Route
    reaches bob's socket, its Request-URI bob's Contact."""
    reglab.start(registrar={"min_expires": 60}, extra=media_conf(
        rtpengine.ng, relay="nat"))
    bob = reglab.phone("bob")
    contact = "sip:bob@192.168.1.20:5062"
    r = bob.register(contacts=["<%s>" % contact], expires=600,
                     via="SIP/2.0/UDP 192.168.1.20:5062;branch=%s;rport"
                     % new_branch())
    assert r.code == 200, r
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id)
    assert inv.uri == contact, inv.start
    addr, port = sdp_addr(inv.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), inv.raw
    bob.uas.respond(inv, 200, body=CALLEE_SDP, contact=False,
                    headers=[("Contact", "<%s>" % contact)])
    ok = call.ep.expect(call.resp(200))
    assert rtpengine.owns(sdp_addr(ok.body)[1]), ok.raw
    call.ack(ok)
    ack = bob.uas.expect("ACK", call_id=call.call_id)
    assert ack.uri == contact, ack.start
    call.bye()
    bye = bob.uas.expect("BYE", call_id=call.call_id)
    assert bye.uri == contact, bye.start
    bob.uas.respond(bye, 200)
    call.ep.expect(call.resp(200, "BYE"))
    assert wait_gone(rtpengine.ng, call.call_id), reglab.proxy.log_text()


def test_no_record_route_fixes_nated_contacts(reglab):
    """record_route = false (Osprey sees no in-dialog request): the
    Contact of a caller behind NAT reaches the callee rewritten to the
    caller's source address, and the Contact of a callee registered behind
    NAT reaches the caller rewritten to the callee's; a caller not behind
    NAT keeps its Contact."""
    reglab.start(registrar={"min_expires": 60},
                 extra="record_route = false;")
    bob = reglab.phone("bob")
    contact = "sip:bob@192.168.1.20:5062"
    r = bob.register(contacts=["<%s>" % contact], expires=600,
                     via="SIP/2.0/UDP 192.168.1.20:5062;branch=%s;rport"
                     % new_branch())
    assert r.code == 200, r
    ep = reglab.endpoint()
    call = NatUAC(ep, reglab.proxy.addr, "sip:bob@example.test",
                  from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id)
    assert not inv.has("record-route"), inv.raw
    assert uri_of(inv.get("contact")) == "sip:alice@%s" % hostport(
        ep.host, ep.port), inv.get("contact")
    bob.uas.respond(inv, 200, body=CALLEE_SDP, contact=False,
                    headers=[("Contact", "<%s>;expires=60" % contact)])
    ok = ep.expect(call.resp(200))
    assert ok.get("contact") == "<sip:bob@%s>;expires=60" % hostport(
        bob.uas.ep.host, bob.uas.ep.port), ok.raw
    call.ack(ok)
    plain = reglab.caller("sip:bob@example.test")
    plain.invite()
    inv = bob.uas.expect("INVITE", call_id=plain.call_id)
    assert inv.get("contact") == plain.contact, inv.raw
    bob.uas.respond(inv, 486)
    plain.ack(plain.ep.expect(plain.resp(486)))


# ------------------------------------------------------------ baresip

USERS = {"alice": "wonderland", "bob": "builder"}


def udp_flows(pcap):
    """[(src port, dst port, payload bytes)] of the non-SIP UDP in pcap."""
    out = []
    p = subprocess.run(
        ["timeout", "30", interop.TSHARK, "-r", pcap, "-Y", "udp and not sip",
         "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport",
         "-e", "udp.payload"],
        capture_output=True, text=True, timeout=40)
    for line in p.stdout.splitlines():
        a = line.split()
        if len(a) == 3:
            out.append((int(a[0]), int(a[1]), bytes.fromhex(a[2])))
    return out


def ulaw(b):
    """One G.711 mu-law byte as a 16-bit sample."""
    b = ~b & 0xff
    t = (((b & 0x0f) << 3) + 0x84) << ((b & 0x70) >> 4)
    return (0x84 - t) if b & 0x80 else (t - 0x84)


def pcmu_rms(packets):
    """RMS of the PCMU payloads (RTP, payload type 0, 12-byte header) of
    packets; 0 when none."""
    samples = []
    for p in packets:
        if len(p) > 12 and p[0] >> 6 == 2 and p[1] & 0x7f == 0:
            samples += [ulaw(x) for x in p[12:]]
    if not samples:
        return 0
    return (sum(x * x for x in samples) / len(samples)) ** 0.5


@pytest.mark.skipif(interop.BARESIP is None or interop.TSHARK is None,
                    reason="baresip or tshark not installed")
def test_baresip_call_through_rtpengine(osprey_factory, rtpengine, tmp_path):
    """alice and bob register; alice (a 440 Hz tone as her source) calls
    bob, who answers; 3 s of audio; alice hangs up.  On the wire: RTP
    alice -> rtpengine -> bob and bob -> rtpengine -> alice, none between
    the phones; the SDPs each got name 127.0.0.1 and rtpengine's ports;
    the PCMU rtpengine sends bob carries the tone (bob's silence goes to
    alice); the session is gone after the BYE."""
    wd = str(tmp_path)
    tone = os.path.join(wd, "tone.wav")
    interop.make_tone_wav(tone, seconds=10)
    port = interop.free_udp_block(1, tcp=True)
    px = osprey_factory(users=USERS, port=port,
                        timers={"t1": 500, "t2": 4000, "t4": 5000},
                        extra=media_conf(rtpengine.ng))
    kw = dict(proxy_port=port, ctrl=True)
    bob = interop.Baresip(wd, "bob", "auto", password=USERS["bob"], **kw)
    alice = interop.Baresip(wd, "alice", "manual", password=USERS["alice"],
                            source_wav=tone, **kw)
    ports = list(range(rtpengine.lo, rtpengine.hi + 1))
    for b in (alice, bob):
        ports += list(range(b.rtp[0], b.rtp[1] + 1))
    cap = interop.Capture(wd, ports)
    try:
        assert alice.registration(15) and bob.registration(15)
        alice.dial("sip:bob@example.test")
        assert alice.wait_for("Call established", 12)
        assert bob.wait_for("Call established", 6)
        time.sleep(3)
        alice.command("hangup")
        bob.wait_for("session closed", 8)
        time.sleep(0.5)
    finally:
        for b in (alice, bob):
            b.stop()
        cap.stop()
    why = "\n".join([alice.report(), bob.report(), px.log_text()[-6000:]])
    inv = [m for m in bob.messages() if m["start"].startswith("INVITE ")]
    ok = [m for m in alice.messages()
          if m["start"].startswith("SIP/2.0 200") and
          "INVITE" in " ".join(interop.header(m["text"], "CSeq"))]
    assert inv and ok, why
    for m in (inv[0], ok[0]):
        addr, mport = sdp_addr(m["text"].split("\n\n", 1)[1].encode())
        assert addr == "127.0.0.1" and rtpengine.owns(mport), \
            "SDP not rtpengine's: %r\n%s" % (m["text"], why)
    flows = udp_flows(cap.pcap)

    def between(src, dst):
        return [p for s, d, p in flows
                if src[0] <= s <= src[1] and dst[0] <= d <= dst[1]]

    def count(src, dst):
        return len(between(src, dst))
    rt = (rtpengine.lo, rtpengine.hi)
    got = {"alice->rtpe": count(alice.rtp, rt),
           "rtpe->bob": count(rt, bob.rtp),
           "bob->rtpe": count(bob.rtp, rt),
           "rtpe->alice": count(rt, alice.rtp),
           "alice->bob": count(alice.rtp, bob.rtp),
           "bob->alice": count(bob.rtp, alice.rtp)}
    why = "flows %r\n%s" % (got, why)
    for k in ("alice->rtpe", "rtpe->bob", "bob->rtpe", "rtpe->alice"):
        assert got[k] >= 50, why      # 3 s of 20 ms packets: ~150
    assert got["alice->bob"] == 0 and got["bob->alice"] == 0, why
    # baresip 1.0's aufile plays nothing to a file (no audio player):
    # what bob hears is what rtpengine sends him, read off the wire.
    rms = pcmu_rms(between(rt, bob.rtp))
    assert rms > 1000, "bob gets silence (RMS %.0f)\n%s" % (rms, why)
    quiet = pcmu_rms(between(rt, alice.rtp))   # bob's source is silence
    assert quiet < 100, "alice gets RMS %.0f from a silent bob\n%s" % (
        quiet, why)
    cid = interop.header(inv[0]["text"], "Call-ID")[0]
    assert wait_gone(rtpengine.ng, cid), why
