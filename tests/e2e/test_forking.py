"""Routing for operators (doc/BEHAVIOUR.md, issue 3): parallel and serial
forking, failover by code/class/cause, per-target timeouts, on_failure and
failure routes, the best response (RFC 3261 16.7), Q.850 Reason on
generated responses, 3xx recursion, gateway probing and round robin.

Every callee is a UAS on its own loopback socket; the routes are written
in libconfig text and passed to ospreyd through `extra`."""

import select
import time

import pytest

from conftest import lc
from sip import (FINAL, NON2XX, SDP, lab, match, params_of,  # noqa: F401
                 uri_of)

# --------------------------------------------------------------- helpers


def route(targets, user="^bob$", **opts):
    """One entry of routes: targets are URIs or { uri; timeout; } dicts."""
    d = {"user": user} if user is not None else {}
    d["targets"] = tuple(targets)
    d.update(opts)
    return d


def config(*routes, failure_routes=(), probe=None):
    out = ["routes = %s;" % lc(tuple(routes))]
    if failure_routes:
        out.append("failure_routes = %s;" % lc(tuple(failure_routes)))
    if probe:
        out.append("probe = %s;" % lc(probe))
    return "\n".join(out)


def reason_of(msg):
    """Reason header -> (protocol, {params}) or (None, {})."""
    v = msg.get("reason")
    if v is None:
        return None, {}
    proto, _, rest = v.partition(";")
    return proto.strip(), params_of(rest)


def check_cancel(cancel, inv):
    """A proxy CANCEL matches the INVITE it cancels (RFC 3261 9.1)."""
    assert len(cancel.vias) == 1, cancel.vias
    assert cancel.branch == inv.branch, (cancel.branch, inv.branch)
    assert cancel.uri == inv.uri
    assert cancel.call_id == inv.call_id
    assert cancel.get("from") == inv.get("from")
    assert cancel.get("to") == inv.get("to")
    assert cancel.cseq == (inv.cseq[0], "CANCEL")


def check_hop_ack(uas, inv, timeout=1.0):
    """The proxy ACKs a non-2xx final hop by hop with the INVITE's branch."""
    ack = uas.ep.expect(match(method="ACK", call_id=inv.call_id,
                              branch=inv.branch), timeout,
                        what="hop-by-hop ACK (branch %s)" % inv.branch)
    assert len(ack.vias) == 1, ack.vias
    assert ack.cseq == (inv.cseq[0], "ACK")
    assert ack.uri == inv.uri
    return ack


def check_forwarded(inv, call, proxy):
    """An INVITE of call as forwarded by the proxy on a branch of its own,
    whole: on a later branch too, body and all (the server transaction
    keeps only what its responses need once no branch can start)."""
    vias = inv.vias
    assert len(vias) == 2, vias
    assert vias[0].sent_by == proxy.addr, vias[0]
    assert vias[0].branch.startswith("z9hG4bK"), vias[0]
    assert vias[1].branch == call.invite_branch, vias[1]
    assert inv.call_id == call.call_id
    assert inv.cseq == (call.invite_cseq, "INVITE")
    assert inv.from_tag == call.from_tag
    assert inv.to_tag is None
    assert inv.body == SDP, inv.body


def finals(call, duration):
    """Every final response to the INVITE within duration; non-2xx ACKed."""
    out = []
    deadline = time.monotonic() + duration
    while True:
        m = call.ep.recv(max(0.0, deadline - time.monotonic()),
                         call.resp(FINAL))
        if m is None:
            return out
        out.append(m)
        if m.code >= 300:
            call.ack(m)


def no_invite(uas, duration, call_id=None):
    got = uas.ep.collect(duration, match(method="INVITE", call_id=call_id))
    assert got == [], "%s got INVITE(s) %r" % (uas.target, got)


def first_of(eps, pred, timeout):
    """(endpoint, message) for the first message passing pred on any of
    eps (queued ones first), others queued; (None, None) on timeout."""
    for ep in eps:
        for i, m in enumerate(ep.queue):
            if pred(m):
                del ep.queue[i]
                return ep, m
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, None
        r, _, _ = select.select([ep.sock for ep in eps], [], [], left)
        for ep in eps:
            if ep.sock in r:
                m = ep.read(0)
                if m is None:
                    continue
                if pred(m):
                    return ep, m
                ep.queue.append(m)


# ------------------------------------------------------ 1. parallel, 200


def test_parallel_200_cancels_other_branch(lab):
    """Both branches ring, B answers 200: the caller gets exactly one 200
    (and both 180s); A gets a CANCEL on its own branch with
    Reason: SIP;cause=200;text="Call completed elsewhere"; its 487 is
    ACKed by the proxy and never reaches the caller."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target])))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    ib = b.expect("INVITE", call_id=call.call_id)
    check_forwarded(ia, call, px)
    check_forwarded(ib, call, px)
    assert ia.branch != ib.branch, "both branches share %s" % ia.branch

    a.respond(ia, 180)
    b.respond(ib, 180)
    rings = [lab.caller.expect(call.resp(180)) for _ in range(2)]
    assert {r.to_tag for r in rings} == {a.tag(ia), b.tag(ib)}, rings

    b.respond(ib, 200, body=SDP)
    ok = lab.caller.expect(call.resp(200))
    call.check_vias(ok)
    assert ok.to_tag == b.tag(ib)

    cancel = a.expect("CANCEL", timeout=1, call_id=call.call_id)
    check_cancel(cancel, ia)
    proto, rp = reason_of(cancel)
    assert proto == "SIP" and rp.get("cause") == "200" and \
        rp.get("text") == '"Call completed elsewhere"', \
        "CANCEL Reason %r" % cancel.get("reason")
    a.respond(cancel, 200)
    a.respond(ia, 487)
    check_hop_ack(a, ia)

    call.ack(ok)
    ack = b.expect("ACK", call_id=call.call_id)
    assert ack.uri == b.contact_uri
    more = finals(call, 0.5)
    assert more == [], "caller got more finals after the 200: %r" % more
    assert b.ep.collect(0, match(method="CANCEL")) == [], \
        "the answering branch was CANCELled"
    assert px.alive()


# ------------------------------------------- 2. parallel, all branches fail


def www(realm):
    return 'Digest realm="%s", nonce="n%s", algorithm=MD5' % (realm, realm)


@pytest.mark.parametrize("ra,rb,want", [
    ((486, ()), (404, ()), 404),                    # same class: lower code
    ((486, ()), (503, ()), 486),                    # lower class
    ((503, ()), (503, ()), 500),                    # chosen 503 -> 500
    ((302, (("Contact", "<sip:carol@127.0.0.1:9>"),)), (486, ()), 302),
    ((401, (("WWW-Authenticate", www("a")),)),
     (407, (("Proxy-Authenticate", www("b")),)), (401, 407)),
], ids=["486+404", "486+503", "503+503", "302+486", "401+407"])
def test_parallel_all_fail_best_response(lab, ra, rb, want):
    """Every branch fails: the caller gets the best response (16.7) once,
    only when all are done; each branch's final is ACKed hop by hop."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target])))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    ib = b.expect("INVITE", call_id=call.call_id)
    assert ia.branch != ib.branch

    a.respond(ia, ra[0], headers=ra[1], contact=False)
    check_hop_ack(a, ia)
    early = lab.caller.collect(0.3, call.resp(NON2XX))
    assert early == [], "final before every branch was done: %r" % early
    b.respond(ib, rb[0], headers=rb[1], contact=False)
    check_hop_ack(b, ib)

    got = finals(call, 0.6)
    assert len(got) == 1, "caller finals %r" % got
    r = got[0]
    call.check_vias(r)
    assert r.to_tag, "a final needs a To tag"
    if isinstance(want, tuple):
        assert r.code in want, r
        assert r.lines("www-authenticate") == [www("a")], r.text()
        assert r.lines("proxy-authenticate") == [www("b")], r.text()
    else:
        assert r.code == want, r
    if want == 302:
        assert uri_of(r.get("contact")) == "sip:carol@127.0.0.1:9", r.text()
    if want in (404, 486):
        winner = (a, ia) if ra[0] == want else (b, ib)
        assert r.to_tag == winner[0].tag(winner[1]), "not the relayed one"
    assert px.alive()


def test_parallel_6xx_sent_at_once(lab):
    """A 603 on one branch goes to the caller at once; the ringing branch
    is CANCELled with Reason SIP;cause=603; its 487 is not relayed."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target])))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    ib = b.expect("INVITE", call_id=call.call_id)
    a.respond(ia, 180)
    lab.caller.expect(call.resp(180))

    t0 = time.monotonic()
    b.respond(ib, 603)
    r = lab.caller.expect(call.resp(NON2XX), timeout=1)
    assert r.code == 603, r
    assert r.time - t0 < 0.5, "603 after %.2fs" % (r.time - t0)
    assert r.to_tag == b.tag(ib)
    call.check_vias(r)
    call.ack(r)
    check_hop_ack(b, ib)

    cancel = a.expect("CANCEL", timeout=1, call_id=call.call_id)
    check_cancel(cancel, ia)
    proto, rp = reason_of(cancel)
    assert proto == "SIP" and rp.get("cause") == "603", \
        "CANCEL Reason %r" % cancel.get("reason")
    a.respond(cancel, 200)
    a.respond(ia, 487)
    check_hop_ack(a, ia)
    more = finals(call, 0.5)
    assert more == [], "caller got more finals after the 603: %r" % more
    assert px.alive()


# ------------------------------------------------------------ 3-6. serial


def test_serial_failover_on_486(lab):
    """fork = serial, failover = (486, 408): A gets the INVITE alone; its
    486 is ACKed and B gets the INVITE on a new branch; B's 200 is the
    caller's only final (no 486)."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target], fork="serial",
                                failover=(486, 408))))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    check_forwarded(ia, call, px)
    no_invite(b, 0.3)

    a.respond(ia, 486)
    check_hop_ack(a, ia)
    ib = b.expect("INVITE", timeout=1, call_id=call.call_id)
    check_forwarded(ib, call, px)
    assert ib.branch != ia.branch
    b.respond(ib, 180)
    b.respond(ib, 200, body=SDP)

    got = finals(call, 0.6)
    assert [m.code for m in got] == [200], "caller finals %r" % got
    assert got[0].to_tag == b.tag(ib)
    call.check_vias(got[0])
    call.ack(got[0])
    b.expect("ACK", call_id=call.call_id)
    assert px.alive()


def test_serial_default_failover_on_503(lab):
    """fork = serial with the default failover (408 and 5xx, no failover
    key): A answers 503; A gets its ACK, B gets the INVITE on a new
    branch, and the caller sees B's answer only (no 503, no 500)."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target], fork="serial")))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    check_forwarded(ia, call, px)
    no_invite(b, 0.2)

    a.respond(ia, 503)
    check_hop_ack(a, ia)
    ib = b.expect("INVITE", timeout=1, call_id=call.call_id)
    check_forwarded(ib, call, px)
    assert ib.branch != ia.branch
    b.respond(ib, 486)
    check_hop_ack(b, ib)

    got = finals(call, 0.6)
    assert [m.code for m in got] == [486], "caller finals %r" % got
    assert got[0].to_tag == b.tag(ib), "not B's answer"
    call.check_vias(got[0])
    assert px.alive()


@pytest.mark.parametrize("ringing", [False, True], ids=["silent", "180"])
def test_serial_failover_on_target_timeout(lab, ringing):
    """A has timeout = 1000 ms: after ~1 s it counts as 408 (in the default
    failover) and B gets the INVITE; a ringing A is CANCELled then, a
    silent A is not (no CANCEL before a provisional, 9.1)."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route(
        [{"uri": a.target, "timeout": 1000}, b.target], fork="serial")))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    t0 = ia.time
    if ringing:
        a.respond(ia, 180)
        lab.caller.expect(call.resp(180))
        cancel = a.expect("CANCEL", timeout=2, call_id=call.call_id)
        dt = cancel.time - t0
        assert 0.85 <= dt <= 1.5, "CANCEL %.2fs after the INVITE" % dt
        check_cancel(cancel, ia)
        a.respond(cancel, 200)
        a.respond(ia, 487)
        check_hop_ack(a, ia)

    ib = b.expect("INVITE", timeout=2.5, call_id=call.call_id)
    dt = ib.time - t0
    assert 0.85 <= dt <= 1.6, "B got the INVITE %.2fs after A" % dt
    check_forwarded(ib, call, px)
    assert ib.branch != ia.branch
    if not ringing:
        cancels = a.ep.collect(0, match(method="CANCEL"))
        assert cancels == [], "CANCEL to a silent branch: %r" % cancels

    b.respond(ib, 200, body=SDP)
    got = finals(call, 0.6)
    assert [m.code for m in got] == [200], "caller finals %r" % got
    call.ack(got[0])
    b.expect("ACK", call_id=call.call_id)
    if not ringing:
        cancels = a.ep.collect(0, match(method="CANCEL"))
        assert cancels == [], "CANCEL to a silent branch: %r" % cancels
    assert px.alive()


@pytest.mark.parametrize("code,failover", [
    (404, (486,)),                  # not in failover: stop
    (603, (486, 603, "6xx")),       # 6xx stops the search even if listed
], ids=["404-not-in-failover", "603-stops"])
def test_serial_search_stops(lab, code, failover):
    """A final that must not fail over goes to the caller and B never
    sees an INVITE."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target], fork="serial",
                                failover=failover)))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    a.respond(ia, code)
    check_hop_ack(a, ia)
    got = finals(call, 0.6)
    assert [m.code for m in got] == [code], "caller finals %r" % got
    assert got[0].to_tag == a.tag(ia)
    call.check_vias(got[0])
    no_invite(b, 0.3)
    assert px.alive()


# -------------------------------------------------------- 7. on_failure


@pytest.mark.parametrize("code,fork,dest", [
    (404, "parallel", "announce"),      # a plain code
    (486, "serial", "voicemail"),       # the cause name USER_BUSY
])
def test_on_failure_failure_route(lab, code, fork, dest):
    """The best response matches an on_failure rule: the request goes on
    along the named failure route in the same transaction (same Call-ID
    and CSeq, the caller's Via under a new proxy branch, R-URI replaced
    by the target's); the caller gets that route's 200, never the
    failure."""
    a, ann, vm = lab.uas(), lab.uas("announce"), lab.uas("vm")
    px = lab.start(config(
        route([a.target], fork=fork, on_failure=(
            {"code": 404, "route": "announce"},
            {"code": "USER_BUSY", "route": "voicemail"})),
        failure_routes=(
            {"name": "announce", "targets": [ann.contact_uri]},
            {"name": "voicemail", "targets": [vm.contact_uri]})))
    want, other = (ann, vm) if dest == "announce" else (vm, ann)
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    a.respond(ia, code)
    check_hop_ack(a, ia)

    inv = want.expect("INVITE", timeout=1, call_id=call.call_id)
    assert inv.uri == want.contact_uri, inv.uri
    check_forwarded(inv, call, px)
    assert inv.branch != ia.branch
    assert inv.get("max-forwards") == ia.get("max-forwards") == "69"
    no_invite(other, 0.2)

    want.respond(inv, 200, body=SDP)
    got = finals(call, 0.6)
    assert [m.code for m in got] == [200], "caller finals %r" % got
    ok = got[0]
    call.check_vias(ok)
    assert ok.to_tag == want.tag(inv)
    call.ack(ok)
    want.expect("ACK", call_id=call.call_id)
    assert px.alive()


# ------------------------------------------------ 8. CANCEL during serial


def test_cancel_during_serial_ringing(lab):
    """Caller CANCELs while A rings: A gets a CANCEL on its branch; its
    487 (listed in failover here) does not start B; the caller gets 487."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target], fork="serial",
                                failover=(486, 487, 408, "5xx"))))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    a.respond(ia, 180)
    lab.caller.expect(call.resp(180))

    call.cancel()
    lab.caller.expect(call.resp(200, "CANCEL"))
    cancel = a.expect("CANCEL", timeout=1, call_id=call.call_id)
    check_cancel(cancel, ia)
    a.respond(cancel, 200)
    a.respond(ia, 487)
    check_hop_ack(a, ia)

    got = finals(call, 0.6)
    assert [m.code for m in got] == [487], "caller finals %r" % got
    call.check_vias(got[0])
    no_invite(b, 0.3)
    assert px.alive()


def test_cancel_before_serial_target_timeout(lab):
    """A is silent with timeout = 800 ms; the caller CANCELs at 300 ms:
    no new branch starts when A's timeout passes; the caller gets 487."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route(
        [{"uri": a.target, "timeout": 800}, b.target], fork="serial")),
        timers={"cancel": 1000})
    call = lab.call()
    call.invite()
    t0 = time.monotonic()
    a.expect("INVITE", call_id=call.call_id)
    time.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))
    call.cancel()
    lab.caller.expect(call.resp(200, "CANCEL"))

    r = lab.caller.expect(call.resp(NON2XX), timeout=2.5)
    assert r.code == 487, r
    call.check_vias(r)
    call.ack(r)
    # wait until well past A's timeout (0.8 s) before judging B
    no_invite(b, max(0.3, t0 + 1.6 - time.monotonic()))
    more = finals(call, 0)
    assert more == [], "more finals %r" % more
    assert a.ep.collect(0, match(method="CANCEL")) == [], \
        "CANCEL to a branch that sent no provisional"
    assert px.alive()


# ----------------------------------------------- 9. Q.850 Reason headers


def test_generated_408_carries_q850_reason(lab):
    """Silent target, T1 = 20 ms: the proxy's own 408 (Timer B = 1.28 s)
    carries Reason: Q.850;cause=18;text="NO_USER_RESPONSE"."""
    a = lab.uas()
    px = lab.start(config(route([a.target])),
                   timers={"t1": 20, "t2": 400})
    call = lab.call()
    call.invite()
    a.expect("INVITE", call_id=call.call_id)
    r = lab.caller.expect(call.resp(NON2XX), timeout=3)
    assert r.code == 408, r
    call.check_vias(r)
    call.ack(r)
    proto, rp = reason_of(r)
    assert proto == "Q.850" and rp.get("cause") == "18" and \
        rp.get("text") == '"NO_USER_RESPONSE"', \
        "408 Reason %r" % r.get("reason")
    time.sleep(0.1)
    assert "cause=NO_USER_RESPONSE" in px.log_text()


@pytest.mark.parametrize("theirs", [None, 'Q.850;cause=34;text="X"'],
                         ids=["plain", "with-q850"])
def test_all_503_gives_500_with_q850_reason(lab, theirs):
    """Both branches answer 503: the caller gets 500 (16.7 step 6), a
    failure the proxy makes itself, so it carries Reason: Q.850;cause=41;
    text="NORMAL_TEMPORARY_FAILURE" (the cause of 500 and of 503), once.
    When the chosen 503 brought a Q.850 Reason of its own, that one stays
    and no second Q.850 value is added (RFC 3326: one per protocol)."""
    a, b = lab.uas(), lab.uas()
    lab.start(config(route([a.target, b.target])))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    ib = b.expect("INVITE", call_id=call.call_id)
    hs = [("Reason", theirs)] if theirs else []
    a.respond(ia, 503, headers=hs)
    b.respond(ib, 503, headers=hs)
    got = finals(call, 0.6)
    assert [m.code for m in got] == [500], "caller finals %r" % got
    reasons = got[0].values("reason")
    q850 = [r for r in reasons if r.upper().startswith("Q.850")]
    if theirs:
        assert q850 == [theirs], got[0].text()
    else:
        assert len(q850) == 1, got[0].text()
        proto, rp = reason_of(got[0])
        assert proto == "Q.850" and rp.get("cause") == "41" and \
            rp.get("text") == '"NORMAL_TEMPORARY_FAILURE"', got[0].text()


def test_generated_404_carries_q850_reason(lab):
    """Unknown user of our domain: 404 with Reason Q.850;cause=1
    (UNALLOCATED_NUMBER), and no INVITE anywhere."""
    a = lab.uas()
    px = lab.start(config(route([a.target])))
    call = lab.call("nobody")
    call.invite()
    r = lab.caller.expect(call.resp(NON2XX), timeout=1)
    assert r.code == 404, r
    call.ack(r)
    proto, rp = reason_of(r)
    assert proto == "Q.850" and rp.get("cause") == "1" and \
        rp.get("text") == '"UNALLOCATED_NUMBER"', \
        "404 Reason %r" % r.get("reason")
    no_invite(a, 0.2)
    assert px.alive()


def test_generated_404_log_names_cause(lab):
    """"log lines of finals say cause=NAME": the 404 for an unknown user
    is logged with cause=UNALLOCATED_NUMBER."""
    a = lab.uas()
    px = lab.start(config(route([a.target])))
    call = lab.call("nobody")
    call.invite()
    r = lab.caller.expect(call.resp(NON2XX), timeout=1)
    assert r.code == 404, r
    call.ack(r)
    time.sleep(0.1)
    lines = [ln for ln in px.log_text().splitlines() if "404" in ln]
    assert any("cause=UNALLOCATED_NUMBER" in ln for ln in lines), \
        "log lines about the 404: %r" % lines


# --------------------------------------------------- 10. 3xx recursion


@pytest.mark.parametrize("recurse", [True, False], ids=["recurse", "relay"])
def test_3xx_recursion(lab, recurse):
    """recurse = true: A's 302 Contact becomes a new branch (R-URI = the
    Contact), the caller gets B's 200 and never the 302. Default: the
    caller gets the 302 with its Contact."""
    a, b = lab.uas(), lab.uas("carol")
    opts = {"recurse": True} if recurse else {}
    px = lab.start(config(route([a.target], **opts)))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    a.respond(ia, 302, headers=[("Contact", "<%s>" % b.contact_uri)],
              contact=False)
    check_hop_ack(a, ia)
    if recurse:
        ib = b.expect("INVITE", timeout=1, call_id=call.call_id)
        assert ib.uri == b.contact_uri, ib.uri
        check_forwarded(ib, call, px)
        assert ib.branch != ia.branch
        b.respond(ib, 200, body=SDP)
        got = finals(call, 0.6)
        assert [m.code for m in got] == [200], "caller finals %r" % got
        call.ack(got[0])
        b.expect("ACK", call_id=call.call_id)
    else:
        got = finals(call, 0.6)
        assert [m.code for m in got] == [302], "caller finals %r" % got
        assert uri_of(got[0].get("contact")) == b.contact_uri
        no_invite(b, 0.2)
    call.check_vias(got[0])
    assert px.alive()


def test_3xx_recursion_new_branch_fails(lab):
    """recurse = true, A's 302 names B and B answers 486: the caller gets
    B's 486, the best of the new branches, and never the 302 the proxy
    recursed on (RFC 3261 16.7 step 4: a 3xx whose Contacts were all
    recursed on leaves the response context)."""
    a, b = lab.uas(), lab.uas("carol")
    px = lab.start(config(route([a.target], recurse=True)))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    a.respond(ia, 302, headers=[("Contact", "<%s>" % b.contact_uri)],
              contact=False)
    check_hop_ack(a, ia)
    ib = b.expect("INVITE", timeout=1, call_id=call.call_id)
    assert ib.uri == b.contact_uri, ib.uri
    b.respond(ib, 486)
    check_hop_ack(b, ib)
    got = finals(call, 0.6)
    assert [m.code for m in got] == [486], "caller finals %r" % got
    assert got[0].to_tag == b.tag(ib), "not B's answer"
    call.check_vias(got[0])
    assert px.alive()


def test_3xx_recursion_keeps_untried_contacts(lab):
    """max_redirects = 1 and A's 302 names B and C: only B is tried; when
    B answers 486 the 302 still wins (3xx beats 4xx) but carries C alone,
    the Contact the proxy did not recurse on (16.7 step 4)."""
    a, b, c = lab.uas(), lab.uas("carol"), lab.uas("dave")
    px = lab.start(config(route([a.target], recurse=True, max_redirects=1)))
    call = lab.call()
    call.invite()
    ia = a.expect("INVITE", call_id=call.call_id)
    a.respond(ia, 302, headers=[("Contact", "<%s>, <%s>" % (
        b.contact_uri, c.contact_uri))], contact=False)
    ib = b.expect("INVITE", timeout=1, call_id=call.call_id)
    no_invite(c, 0.2, call.call_id)
    b.respond(ib, 486)
    got = finals(call, 0.6)
    assert [m.code for m in got] == [302], "caller finals %r" % got
    assert got[0].to_tag == a.tag(ia)
    contacts = [uri_of(x) for x in got[0].values("contact")]
    assert contacts == [c.contact_uri], got[0].text()
    call.check_vias(got[0])
    assert px.alive()


# ---------------------------------------------------- 11. gateway probing


class Prober:
    """Services the proxy's OPTIONS probes on several endpoints: answers
    200 on the `alive` ones, records all of them; anything else is kept
    (queued) for the test."""

    def __init__(self, uases):
        self.uases = {u.ep: u for u in uases}
        self.alive = set()
        self.seen = []          # (uas, OPTIONS)

    def wait(self, pred=None, timeout=1.0):
        """Probes serviced until a message passing pred arrives:
        (uas, msg), or (None, None) after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, None
            ep, m = first_of(list(self.uases), lambda m: (
                (m.is_request and m.method == "OPTIONS") or
                (pred is not None and pred(m))), left)
            if m is None:
                return None, None
            u = self.uases[ep]
            if m.is_request and m.method == "OPTIONS":
                self.seen.append((u, m))
                if u in self.alive:
                    u.respond(m, 200)
                continue
            return u, m

    def run(self, duration):
        self.wait(None, duration)

    def probes(self, u):
        return [m for x, m in self.seen if x is u]


def test_probing_skips_dead_gateway(lab):
    """probe = true: each target gets OPTIONS <target uri>; A never answers
    and after 2 misses (interval 500, timeout 300) is skipped: the serial
    route's INVITE goes straight to B. When A answers the probes again,
    the next INVITE reaches A first."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(
        route([a.target, b.target], fork="serial", probe=True),
        probe={"interval": 500, "timeout": 300, "failures": 2}))
    pr = Prober([a, b])
    pr.alive.add(b)
    pr.run(1.8)

    pb, pa = pr.probes(b), pr.probes(a)
    assert len(pb) >= 2, "B got %d OPTIONS in 1.8 s" % len(pb)
    assert len(pa) >= 2, "A got %d OPTIONS in 1.8 s" % len(pa)
    for u, ms in ((a, pa), (b, pb)):
        for m in ms:
            assert m.uri == u.target, m.uri
            assert m.cseq_method == "OPTIONS"
            assert m.call_id and m.from_tag and m.get("to"), m.text()
            assert m.vias[0].sent_by == px.addr, m.vias
    down = [ln for ln in px.log_text().splitlines()
            if "warn" in ln and "down" in ln and a.target in ln]
    assert down, "no warning that A is down"
    assert not [ln for ln in px.log_text().splitlines()
                if "down" in ln and b.target in ln], "B marked down"

    call = lab.call()
    call.invite()
    u, inv = pr.wait(match(method="INVITE", call_id=call.call_id), 1.0)
    assert u is b, "first INVITE went to %r, A is down" % (
        u and u.target)
    b.respond(inv, 486)
    r = lab.caller.expect(call.resp(NON2XX), timeout=1)
    assert r.code == 486, r
    call.ack(r)
    assert not [m for m in a.ep.history if m.method == "INVITE"], \
        "A (down) got an INVITE"

    pr.alive.add(a)
    pr.run(1.3)
    assert pr.probes(a)[len(pa):], "no probe to A while it answered"
    up = [ln for ln in px.log_text().splitlines()
          if "notice" in ln and a.target in ln]
    assert up, "no notice that A is up again"
    call2 = lab.call()
    call2.invite()
    u, inv = pr.wait(match(method="INVITE", call_id=call2.call_id), 1.0)
    assert u is a, "first INVITE went to %r, A is up again" % (
        u and u.target)
    a.respond(inv, 486)
    r = lab.caller.expect(call2.resp(NON2XX), timeout=1)
    assert r.code == 486, r
    call2.ack(r)
    assert px.alive()


# ------------------------------------------------------ 12. round robin


def test_round_robin_alternates_first_target(lab):
    """balance = round_robin on a serial route: consecutive calls start
    on A and B alternately."""
    a, b = lab.uas(), lab.uas()
    px = lab.start(config(route([a.target, b.target], fork="serial",
                                balance="round_robin")))
    firsts = []
    for _ in range(4):
        call = lab.call()
        call.invite()
        ep, inv = first_of([a.ep, b.ep], match(
            method="INVITE", call_id=call.call_id), 1.0)
        assert inv is not None, "no INVITE for call %d" % len(firsts)
        u = a if ep is a.ep else b
        firsts.append("A" if u is a else "B")
        u.respond(inv, 486)
        r = lab.caller.expect(call.resp(NON2XX), timeout=1)
        assert r.code == 486, r
        call.ack(r)
        check_hop_ack(u, inv)
    assert all(x != y for x, y in zip(firsts, firsts[1:])), \
        "first targets %r do not alternate" % firsts
    assert px.alive()
