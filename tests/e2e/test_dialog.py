"""Dialogs (issue 13, items 1, 2, 4): the table a record-routing proxy
keeps (RFC 3261 12), in-dialog requests checked against it, BYEs of our
own on dialog_timeout and `ospreyctl hangup`.  Real SIP over loopback to
a real ospreyd; runs with OSPREY_TEST_WORKERS=1 and 2."""

import json
import subprocess
import time

import pytest

from conftest import OSPREYCTL, ctl
from sip import (SDP, UAC, Endpoint, build_request, build_response,
                 hostport, match,
                 new_branch, sipnet, uri_of)  # noqa: F401 (fixture)


def answered(net, **kw):
    """A call set up end to end: INVITE/180/200/ACK.  Returns (call,
    invite as the UAS got it)."""
    call = net.call(**kw)
    inv = net.ring(call)
    net.uas.respond(inv, 200, body=SDP)
    ok = net.caller.expect(call.resp(200))
    call.ack(ok)
    net.uas.expect("ACK", call_id=call.call_id)
    return call, inv


def callee_request(net, call, inv, method, uri=None, cseq=1, routes=None,
                   headers=()):
    """An in-dialog request from the UAS to the caller (12.2.1.1): From its
    tag, To the caller's, Route = the Record-Route of the INVITE in order,
    Request-URI the caller's Contact."""
    ep = net.uas.ep
    hs = [("Via", "SIP/2.0/UDP %s;branch=%s;rport" % (
        hostport(ep.host, ep.port), new_branch())),
        ("Max-Forwards", "70"),
        ("From", "<%s>;tag=%s" % (call.to_uri, net.uas.tag(inv))),
        ("To", call.from_hdr),
        ("Call-ID", call.call_id),
        ("CSeq", "%d %s" % (cseq, method))]
    rr = inv.values("record-route") if routes is None else routes
    hs += [("Route", r) for r in rr]
    hs += list(headers)
    data = build_request(method, uri or uri_of(inv.get("contact")), hs)
    ep.send(data, net.proxy.addr)
    return data


def ctl_json(o, *args):
    p = subprocess.run([OSPREYCTL, "-s", o.ctl_socket] + list(args) +
                       ["--json"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout)


def wait_dialogs(o, n, secs=3.0):
    deadline = time.time() + secs
    while True:
        d = ctl_json(o, "dialogs")
        if len(d) == n or time.time() > deadline:
            return d
        time.sleep(0.05)


def test_bye_from_caller_ends_dialog(sipnet):
    net = sipnet()
    call, inv = answered(net)
    d = wait_dialogs(net.proxy, 1)
    assert len(d) == 1 and d[0]["state"] == "confirmed", d
    assert d[0]["call_id"] == call.call_id
    assert d[0]["caller"] == "sip:alice@example.test"
    assert d[0]["callee_target"] == net.uas.contact_uri
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    net.caller.expect(call.resp(200, "BYE"))
    assert wait_dialogs(net.proxy, 0) == []
    # The dialog is gone: a request in it is refused here, not relayed.
    call.request("INFO")
    r = net.caller.expect(call.resp(method="INFO"))
    assert r.code == 481, r
    assert net.uas.ep.collect(0.3) == []


def test_bye_from_callee_ends_dialog(sipnet):
    net = sipnet()
    call, inv = answered(net)
    assert len(wait_dialogs(net.proxy, 1)) == 1
    callee_request(net, call, inv, "BYE")
    bye = net.caller.expect(match(method="BYE", call_id=call.call_id))
    assert bye.uri == uri_of(call.contact)
    net.caller.send(
        build_response(bye, 200), bye.vias[0].response_addr()
        or net.proxy.addr)
    net.uas.ep.expect(match(code=200, response=True, call_id=call.call_id,
                            cseq_method="BYE"))
    assert wait_dialogs(net.proxy, 0) == []


def test_forged_target_refused(sipnet):
    """A dialog party cannot use our stamped Route to reach a third host
    (the relay hole of issue 13): 403 naming the problem."""
    net = sipnet()
    call, inv = answered(net)
    third = Endpoint()
    try:
        call.remote_target = "sip:carol@%s" % hostport(third.host,
                                                       third.port)
        call.request("MESSAGE", body=b"hi")
        r = net.caller.expect(call.resp(method="MESSAGE"))
        assert r.code == 403, r
        assert "not this dialog's target" in r.reason, r.reason
        assert third.collect(0.3) == []
        # The callee cannot either (towards another than the caller).
        callee_request(net, call, inv, "INFO", cseq=5, uri="sip:x@%s" %
                       hostport(third.host, third.port))
        r = net.uas.ep.expect(match(response=True, call_id=call.call_id,
                                    cseq_method="INFO"))
        assert r.code == 403, r
        assert third.collect(0.3) == []
        # The dialog is still up: the right target goes through.
        call.remote_target = net.uas.contact_uri
        call.bye()
        net.uas.expect("BYE", call_id=call.call_id)
    finally:
        third.close()


def test_in_dialog_to_proxy_address_481(sipnet):
    """An in-dialog request (To tag) addressed to the proxy itself, with a
    user part and no Route: 481, not routed to that user."""
    net = sipnet()
    call = net.call(ruri="sip:bob@%s" % hostport(*net.proxy.addr))
    call.to_tag = "nosuchdialog"
    call.bye()
    r = net.caller.expect(call.resp(method="BYE"))
    assert r.code == 481, r
    assert net.uas.ep.collect(0.3) == []


def test_stamped_route_without_dialog_481(sipnet):
    """Our stamped Record-Route with tags of no dialog: 481."""
    net = sipnet()
    call, inv = answered(net)
    other = UAC(net.caller, net.proxy.addr)
    other.call_id = call.call_id      # the stamp is the Call-ID's
    other.to_tag = "forged"
    other.route_set = call.route_set
    other.remote_target = call.remote_target
    other.request("INFO")
    r = net.caller.expect(other.resp(method="INFO"))
    assert r.code == 481, r
    assert net.uas.ep.collect(0.3) == []


def test_reinvite_updates_target(sipnet):
    """A re-INVITE with a new Contact moves the caller's target: the
    callee's BYE goes to the new one, a request to the old is refused."""
    net = sipnet()
    call, inv = answered(net)
    moved = Endpoint()
    try:
        old_contact = uri_of(call.contact)
        new_contact = "sip:alice@%s" % hostport(moved.host, moved.port)
        call.invite(send=False)
        reinv = call.invite_bytes.replace(
            ("Contact: " + call.contact).encode(),
            ("Contact: <%s>" % new_contact).encode())
        net.caller.send(reinv, net.proxy.addr)
        got = net.uas.expect("INVITE", call_id=call.call_id)
        assert new_contact in got.get("contact")
        net.uas.respond(got, 200, body=SDP)
        ok = net.caller.expect(call.resp(200))
        call.ack(ok)
        net.uas.expect("ACK", call_id=call.call_id)
        callee_request(net, call, inv, "INFO", cseq=3, uri=old_contact)
        r = net.uas.ep.expect(match(response=True, call_id=call.call_id,
                                    cseq_method="INFO"))
        assert r.code == 403, r
        callee_request(net, call, inv, "BYE", cseq=4, uri=new_contact)
        moved.expect(match(method="BYE", call_id=call.call_id))
    finally:
        moved.close()


def check_our_bye(bye, call, net, to_caller, uas_tag):
    """A BYE Osprey made itself: our Via only, the dialog's tags each way,
    Call-ID, the remote target in the request line."""
    assert len(bye.vias) == 1, bye
    assert bye.call_id == call.call_id
    if to_caller:
        assert bye.from_tag == uas_tag and bye.to_tag == call.from_tag
        assert bye.uri == uri_of(call.contact)
    else:
        assert bye.from_tag == call.from_tag and bye.to_tag == uas_tag
        assert bye.uri == net.uas.contact_uri
        assert bye.cseq[0] > call.cseq
    assert not bye.has("route")


def test_dialog_timeout_byes_both(sipnet):
    net = sipnet(timers={"dialog_timeout": 1})
    call, inv = answered(net)
    tag = net.uas.tag(inv)
    b1 = net.uas.expect("BYE", call_id=call.call_id, timeout=4)
    b2 = net.caller.expect(match(method="BYE", call_id=call.call_id),
                           timeout=2)
    check_our_bye(b1, call, net, False, tag)
    check_our_bye(b2, call, net, True, tag)
    net.uas.respond(b1, 200)
    net.caller.send(build_response(b2, 200),
                    b2.vias[0].response_addr())
    assert wait_dialogs(net.proxy, 0) == []
    assert "ended by proxy" in net.proxy.log_text()


def test_hangup(sipnet):
    net = sipnet()
    call, inv = answered(net)
    wait_dialogs(net.proxy, 1)
    p = subprocess.run([OSPREYCTL, "-s", net.proxy.ctl_socket, "hangup",
                        "no-such-call"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1, (p.stdout, p.stderr)
    ctl(net.proxy, "hangup", call.call_id)
    b1 = net.uas.expect("BYE", call_id=call.call_id)
    b2 = net.caller.expect(match(method="BYE", call_id=call.call_id))
    tag = net.uas.tag(inv)
    check_our_bye(b1, call, net, False, tag)
    check_our_bye(b2, call, net, True, tag)
    assert b1.get("reason") and "operator" in b1.get("reason")
    assert wait_dialogs(net.proxy, 0) == []


def test_failed_call_leaves_no_dialog(sipnet):
    """Early dialogs (180 with a tag) end with the INVITE's failure."""
    net = sipnet()
    call = net.call()
    inv = net.ring(call)
    assert [d["state"] for d in wait_dialogs(net.proxy, 1)] == ["early"]
    net.uas.respond(inv, 486)
    net.caller.expect(call.resp(486))
    assert wait_dialogs(net.proxy, 0) == []


def test_dialogs_survive_reload(sipnet):
    from conftest import reload_conf
    net = sipnet()
    call, inv = answered(net)
    reload_conf(net.proxy, open(net.proxy.conf).read() + "\n# again\n")
    assert len(wait_dialogs(net.proxy, 1)) == 1
    call.bye()
    net.uas.expect("BYE", call_id=call.call_id)


def test_calls_per_user_limit(sipnet):
    net = sipnet(extra="limits = { calls_per_user = 1; };")
    call, inv = answered(net)
    second = net.call()
    second.invite()
    r = net.caller.expect(second.resp())
    assert r.code == 486, r
    assert "calls_per_user" in r.reason
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    third = net.call()
    third.invite()
    net.uas.expect("INVITE", call_id=third.call_id)


def test_calls_per_source_limit(sipnet):
    net = sipnet(extra="limits = { calls_per_source = 1; };")
    call = net.call()
    net.ring(call)          # being set up counts
    second = net.call(from_uri="sip:carol@example.test")
    second.invite()
    r = net.caller.expect(second.resp())
    assert r.code == 503, r
    assert r.get("retry-after")


def test_metrics_and_status(sipnet):
    """osprey_dialogs by state, the answer-seizure counters, the call
    duration histogram, and calls up in `ospreyctl status`."""
    from test_metrics import free_tcp_port, metrics_conf, scrape
    mport = free_tcp_port()
    net = sipnet(extra=metrics_conf(mport))

    def value(s, name, **labels):
        return s.samples.get((name, frozenset(labels.items())), 0)

    call, inv = answered(net)
    failed = net.call()
    finv = net.ring(failed)
    net.uas.respond(finv, 486)
    net.caller.expect(failed.resp(486))
    s = scrape(mport)
    assert s.types["osprey_dialogs"] == "gauge"
    assert value(s, "osprey_dialogs", state="confirmed") == 1
    assert value(s, "osprey_dialogs", state="early") == 0
    assert value(s, "osprey_calls_attempted_total") == 2
    assert value(s, "osprey_calls_answered_total") == 1
    assert 0 < value(s, "osprey_dialog_bytes") < 1024
    st = json.loads(subprocess.run(
        [OSPREYCTL, "-s", net.proxy.ctl_socket, "-j", "status"],
        capture_output=True, text=True, timeout=10).stdout)
    assert st["calls_up"] == 1 and st["calls_total"] == 1, st
    call.bye()
    net.uas.expect("BYE", call_id=call.call_id)
    wait_dialogs(net.proxy, 0)
    s = scrape(mport)
    assert value(s, "osprey_dialogs", state="confirmed") == 0
    assert value(s, "osprey_dialogs_ended_total", by="caller") == 1
    assert value(s, "osprey_call_duration_seconds_count") == 1
    assert value(s, "osprey_call_duration_seconds_bucket", le="10") == 1
    assert value(s, "osprey_dialog_bytes") == 0


def test_dialogs_survive_restart(osprey_factory):
    """dialog.database: a confirmed dialog is back after a restart, on the
    worker that owns its Call-ID now, still checked (a forged target is
    refused) and its BYE routes and ends it."""
    from sip import UAS, Net
    uas, caller = UAS(Endpoint()), Endpoint()
    kw = dict(routes=[("^bob$", [uas.target])],
              extra='dialog = { database = "dialogs.db"; };',
              timers={"dialog_timeout": 3600})
    try:
        o = osprey_factory(**kw)
        net = Net(o, caller, uas)
        call, inv = answered(net)
        call.request("INFO")            # CSeq 2 stored for our BYE
        info = net.uas.expect("INFO", call_id=call.call_id)
        net.uas.respond(info, 200)
        net.caller.expect(call.resp(200, "INFO"))
        time.sleep(0.3)                 # one commit (100 ms)
        assert o.stop() == 0
        net.proxy = osprey_factory(port=o.port, workdir=o.workdir, **kw)
        d = wait_dialogs(net.proxy, 1)
        assert len(d) == 1 and d[0]["state"] == "confirmed", d
        assert d[0]["callee_target"] == uas.contact_uri
        assert "1 dialog(s) from dialog.database" in net.proxy.log_text()
        third = "sip:x@127.0.0.1:9"
        good = call.remote_target
        call.remote_target = third
        call.request("INFO")
        r = net.caller.expect(call.resp(method="INFO"))
        assert r.code == 403, r
        call.remote_target = good
        call.bye()
        bye = net.uas.expect("BYE", call_id=call.call_id)
        net.uas.respond(bye, 200)
        net.caller.expect(call.resp(200, "BYE"))
        assert wait_dialogs(net.proxy, 0) == []
    finally:
        uas.ep.close()
        caller.close()


def read_cdrs(path, n, secs=5.0):
    deadline = time.time() + secs
    recs = []
    while time.time() < deadline:
        try:
            with open(path) as f:
                recs = [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            recs = []
        if len(recs) >= n:
            break
        time.sleep(0.1)
    return recs


def test_call_records(sipnet, tmp_path):
    """The dialog layer's call records reach accounting: an answered call
    the callee hangs up, a busy one, a cancelled one, one hung up by
    dialog_timeout, one the proxy refused (404), and one that timed out
    unanswered (the callee rings and never answers: Timer C, the proxy's
    408)."""
    from conftest import lc
    path = str(tmp_path / "cdr.jsonl")
    net = sipnet(timers={"dialog_timeout": 1}, extra="accounting = %s;" %
                 lc({"file": path, "format": "jsonl",
                     "fsync": "always"}))
    call, inv = answered(net)           # dialog_timeout hangs it up
    net.uas.respond(net.uas.expect("BYE", call_id=call.call_id,
                                   timeout=4), 200)
    busy = net.call()
    binv = net.ring(busy)
    net.uas.respond(binv, 486)
    net.caller.expect(busy.resp(486))
    gone = net.call()
    ginv = net.ring(gone)
    gone.cancel()
    cancel = net.uas.expect("CANCEL", call_id=gone.call_id)
    net.uas.respond(cancel, 200)
    net.uas.respond(ginv, 487)
    net.caller.expect(gone.resp(487))
    bye_call, bye_inv = answered(net)
    callee_request(net, bye_call, bye_inv, "BYE")
    nobody = net.call(ruri="sip:nobody@example.test")
    nobody.invite()
    assert net.caller.expect(nobody.resp()).code == 404
    late = net.call()
    linv = net.ring(late)                 # 180, then nothing: Timer C
    cancel = net.uas.expect("CANCEL", call_id=late.call_id, timeout=8)
    net.uas.respond(cancel, 200)
    net.uas.respond(linv, 487)
    assert net.caller.expect(late.resp(408), timeout=4).code == 408
    recs = {r["call_id"]: r for r in read_cdrs(path, 6)}
    assert len(recs) == 6, recs
    r = recs[late.call_id]
    assert (r["code"], r["ended_by"], r["cause"]) == (408, "proxy", 18), r
    assert not r["answer_time"] and r["duration"] == 0, r
    assert r["start_time"] < r["end_time"], r
    r = recs[nobody.call_id]
    assert (r["code"], r["ended_by"], r["cause"]) == (404, "proxy", 1), r
    r = recs[call.call_id]
    assert r["ended_by"] == "proxy" and r["code"] == 200, r
    assert r["to_tag"] == net.uas.tag(inv) and r["from_tag"] == call.from_tag
    assert r["caller"] == "sip:alice@example.test"
    assert r["callee"] == "sip:bob@example.test"
    assert r["ruri"] == "sip:bob@example.test"
    assert r["src_ip"] == "127.0.0.1" and r["transport"] == "udp", r
    assert r["answer_time"] and 0.8 < r["duration"] < 3, r
    r = recs[busy.call_id]
    assert (r["code"], r["ended_by"], r["to_tag"]) == (486, "callee", ""), r
    assert r["cause"] == 17, r          # USER_BUSY
    r = recs[gone.call_id]
    assert (r["code"], r["ended_by"]) == (487, "caller"), r
    assert recs[bye_call.call_id]["ended_by"] == "callee"


def test_dialog_paths_under_valgrind(sipnet, tmp_path):
    """memcheck over the dialog paths: limits, the store, a refused
    target, hangup's BYEs, a dialog_timeout, and dialogs (early and
    confirmed) still up at the stop: no error, nothing lost."""
    from test_valgrind import VALGRIND, check_valgrind, sanitized, \
        valgrind_argv
    if VALGRIND is None or sanitized():
        pytest.skip("valgrind not installed, or an ASan build")
    vglog = str(tmp_path / "valgrind.log")
    net = sipnet(wrapper=valgrind_argv(vglog), ready_s=60, stop_s=60,
                 timers={"dialog_timeout": 3},
                 extra='dialog = { database = "dialogs.db"; };\n'
                       'limits = { calls_per_user = 5; '
                       'calls_per_source = 5; };')
    call, inv = answered(net)
    ctl(net.proxy, "hangup", call.call_id)
    net.uas.respond(net.uas.expect("BYE", call_id=call.call_id,
                                   timeout=5), 200)
    b = net.caller.expect(match(method="BYE", call_id=call.call_id),
                          timeout=5)
    net.caller.send(build_response(b, 200), b.vias[0].response_addr())
    timed, tinv = answered(net)
    timed.remote_target = "sip:x@127.0.0.1:9"
    timed.request("INFO")
    assert net.caller.expect(timed.resp(method="INFO"), timeout=5).code \
        == 403
    net.uas.respond(net.uas.expect("BYE", call_id=timed.call_id,
                                   timeout=8), 200)
    up, uinv = answered(net)        # still up at the stop
    ringing = net.call()
    net.ring(ringing)               # early, at the stop
    time.sleep(0.3)
    check_valgrind(net.proxy, vglog)


def test_restart_rearms_what_is_left_of_the_timeout(osprey_factory):
    """A dialog back from dialog.database is hung up when its
    dialog_timeout from the answer runs out, not a whole one after the
    restart."""
    from sip import UAS, Net
    uas, caller = UAS(Endpoint()), Endpoint()
    kw = dict(routes=[("^bob$", [uas.target])],
              extra='dialog = { database = "dialogs.db"; };',
              timers={"dialog_timeout": 4})
    try:
        o = osprey_factory(**kw)
        net = Net(o, caller, uas)
        call, inv = answered(net)
        t0 = time.monotonic()
        time.sleep(1.5)
        assert o.stop() == 0
        net.proxy = osprey_factory(port=o.port, workdir=o.workdir, **kw)
        bye = net.uas.expect("BYE", call_id=call.call_id, timeout=6)
        took = time.monotonic() - t0
        assert 3.5 < took < 5.3, took
        net.uas.respond(bye, 200)
    finally:
        uas.ep.close()
        caller.close()


def test_dialogs_spread_over_two_workers(sipnet):
    """With workers = 2 every dialog lives on the worker its Call-ID names,
    wherever its messages come in: calls on both workers, each ended by a
    BYE from one side or the other, none left."""
    net = sipnet(extra="workers = 2;")
    # Random Call-IDs: 8 land on one worker once in 128 runs, so calls
    # are added (up to 24) until both workers hold some.
    calls = [answered(net) for _ in range(8)]
    while True:
        d = wait_dialogs(net.proxy, len(calls))
        assert len(d) == len(calls), d
        if {x["worker"] for x in d} == {0, 1} or len(calls) >= 24:
            break
        calls.append(answered(net))
    assert {x["worker"] for x in d} == {0, 1}, d
    for i, (call, inv) in enumerate(calls):
        if i % 2:
            call.bye()
            bye = net.uas.expect("BYE", call_id=call.call_id)
            net.uas.respond(bye, 200)
        else:
            callee_request(net, call, inv, "BYE")
            bye = net.caller.expect(match(method="BYE",
                                          call_id=call.call_id))
            net.caller.send(build_response(bye, 200),
                            bye.vias[0].response_addr())
    assert wait_dialogs(net.proxy, 0) == []


def test_restart_without_dialog_database_lets_old_calls_through(
        osprey_factory):
    """The server secret outlives the restart (registrar.database) but the
    dialogs do not: the stamp of a call from before the restart says
    which run made it, and that call's BYE still goes through (unchecked,
    as before dialogs were kept), where one of this run with no dialog
    gets 481."""
    from sip import UAS, Net
    uas, caller = UAS(Endpoint()), Endpoint()
    kw = dict(routes=[("^bob$", [uas.target])],
              registrar={"database": True})
    try:
        o = osprey_factory(**kw)
        net = Net(o, caller, uas)
        call, inv = answered(net)
        assert ";osr=" in call.route_set[0], call.route_set
        assert o.stop() == 0
        net.proxy = osprey_factory(port=o.port, workdir=o.workdir, **kw)
        assert wait_dialogs(net.proxy, 0) == []
        call.bye()
        bye = net.uas.expect("BYE", call_id=call.call_id)
        net.uas.respond(bye, 200)
        net.caller.expect(call.resp(200, "BYE"))
        # A call of this run whose dialog is gone: 481.
        again, ainv = answered(net)
        again.bye()
        net.uas.respond(net.uas.expect("BYE", call_id=again.call_id), 200)
        again.request("INFO")
        assert net.caller.expect(again.resp(method="INFO")).code == 481
    finally:
        uas.ep.close()
        caller.close()


def test_in_dialog_to_proxy_address_of_a_dialog_is_routed(sipnet):
    """A UA that ignores the Record-Route and sends its BYE to the proxy's
    address (SIPp's built-in uac does): it belongs to a dialog, so it is
    routed as a request for its user, and the dialog ends."""
    net = sipnet()
    call, inv = answered(net)
    call.route_set = []
    call.remote_target = "sip:bob@%s" % hostport(*net.proxy.addr)
    call.bye()
    bye = net.uas.expect("BYE", call_id=call.call_id)
    net.uas.respond(bye, 200)
    net.caller.expect(call.resp(200, "BYE"))
    assert wait_dialogs(net.proxy, 0) == []


def test_stop_with_transactions_in_flight(sipnet, tmp_path):
    """SIGTERM with a 2xx not yet ACKed (the callee retransmits it) and
    our own BYEs of a hangup unanswered (Timer E running): a clean exit
    (under ASan: nothing leaked), and one record per call: the
    unacknowledged call's at the stop, the hung up one's by admin."""
    from conftest import lc
    path = str(tmp_path / "cdr.jsonl")
    net = sipnet(extra="accounting = %s;" % lc(
        {"file": path, "format": "jsonl", "fsync": "always"}))
    noack = net.call()
    inv = net.ring(noack)
    ok = net.uas.respond(inv, 200, body=SDP)
    net.caller.expect(noack.resp(200))
    hung, hinv = answered(net)
    ctl(net.proxy, "hangup", hung.call_id)
    net.uas.expect("BYE", call_id=hung.call_id)
    net.caller.expect(match(method="BYE", call_id=hung.call_id))
    net.uas.ep.send(ok, inv.vias[0].response_addr() or inv.src)
    net.caller.expect(noack.resp(200))
    assert net.proxy.stop() == 0
    recs = read_cdrs(path, 2, secs=1)
    assert sorted((r["call_id"], r["ended_by"], r["cause"]) for r in recs) \
        == sorted([(noack.call_id, "proxy", 41),
                   (hung.call_id, "admin", 16)]), recs
