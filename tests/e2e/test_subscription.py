"""Subscription dialogs (RFC 6665) through the proxy's Record-Route: made
by the 2xx to a SUBSCRIBE (or by a NOTIFY), refreshed by SUBSCRIBE, ended
by a NOTIFY with Subscription-State terminated or a 481, and checked as
calls are: an in-dialog request must go to the other party (else 403),
one of no subscription gets 481.  Real SIP over loopback to a real
ospreyd."""

import time

from sip import (Endpoint, build_response, hostport, match,
                 sipnet)  # noqa: F401 (fixture)
from test_dialog import callee_request, wait_dialogs


def subscribe(net, expires=600, notify_first=False):
    """SUBSCRIBE (Event: presence) from the caller socket to bob through
    the proxy; the UAS answers 200 with its Contact and Expires, then a
    NOTIFY (or the NOTIFY first).  Returns (subscription as the
    subscriber's UAC, the SUBSCRIBE as the notifier got it)."""
    sub = net.call()
    sub.request("SUBSCRIBE", headers=[
        ("Event", "presence"), ("Expires", str(expires)),
        ("Contact", sub.contact)])
    got = net.uas.expect("SUBSCRIBE", call_id=sub.call_id)
    assert got.values("record-route"), got
    ok = net.uas.respond(got, 200, send=False, headers=[
        ("Contact", "<%s>" % net.uas.contact_uri),
        ("Expires", str(expires))])
    if not notify_first:
        net.uas.ep.send(ok, got.vias[0].response_addr() or got.src)
        sub.learn(net.caller.expect(sub.resp(200, "SUBSCRIBE")))
    notify(net, sub, got, "active;expires=%d" % expires, cseq=1)
    if notify_first:
        net.uas.ep.send(ok, got.vias[0].response_addr() or got.src)
        sub.learn(net.caller.expect(sub.resp(200, "SUBSCRIBE")))
    return sub, got


def notify(net, sub, got, state, cseq, uri=None, code=200):
    """A NOTIFY from the notifier (the UAS) along the subscription's
    route; code: what the caller socket must see happen (200: it got the
    NOTIFY and answers it, else the notifier gets that code from the
    proxy)."""
    callee_request(net, sub, got, "NOTIFY", uri=uri, cseq=cseq, headers=[
        ("Event", "presence"), ("Subscription-State", state),
        ("Contact", "<%s>" % net.uas.contact_uri)])
    if code == 200:
        n = net.caller.expect(match(method="NOTIFY", call_id=sub.call_id))
        net.caller.send(build_response(n, 200), n.vias[0].response_addr())
    r = net.uas.ep.expect(match(response=True, call_id=sub.call_id,
                                cseq_method="NOTIFY"))
    assert r.code == code, r
    return r


def test_notify_to_a_third_host_is_refused(sipnet):
    """The notifier cannot use our stamped Route to reach a third host
    (nor the subscriber): 403 as for calls; the right target passes."""
    net = sipnet()
    sub, got = subscribe(net)
    third = Endpoint()
    try:
        r = notify(net, sub, got, "active;expires=600", cseq=2,
                   uri="sip:carol@%s" % hostport(third.host, third.port),
                   code=403)
        assert "not this dialog's target" in r.reason, r.reason
        assert third.collect(0.3) == []
        good = sub.remote_target
        sub.remote_target = "sip:x@%s" % hostport(third.host, third.port)
        sub.request("SUBSCRIBE", headers=[("Event", "presence"),
                                          ("Expires", "600")])
        r = net.caller.expect(sub.resp(method="SUBSCRIBE"))
        assert r.code == 403, r
        assert third.collect(0.3) == []
        sub.remote_target = good
        notify(net, sub, got, "active;expires=600", cseq=3)
        # Not a call: `ospreyctl dialogs` lists none.
        assert wait_dialogs(net.proxy, 0, secs=0.2) == []
    finally:
        third.close()


def test_notify_terminated_ends_it(sipnet):
    """It ends as the terminated NOTIFY is forwarded; osprey_subscriptions
    counts it while it is up, osprey_dialogs (calls) never."""
    from test_metrics import free_tcp_port, metrics_conf, scrape
    mport = free_tcp_port()
    net = sipnet(extra=metrics_conf(mport))

    def value(name, **labels):
        return scrape(mport).samples.get((name, frozenset(labels.items())),
                                         0)

    sub, got = subscribe(net)
    assert value("osprey_subscriptions") == 1
    assert value("osprey_dialogs", state="confirmed") == 0
    notify(net, sub, got, "terminated;reason=noresource", cseq=2)
    assert value("osprey_subscriptions") == 0
    r = notify(net, sub, got, "active;expires=600", cseq=3, code=481)
    assert net.caller.collect(0.3) == []
    sub.request("SUBSCRIBE", headers=[("Event", "presence"),
                                      ("Expires", "600")])
    assert net.caller.expect(sub.resp(method="SUBSCRIBE")).code == 481
    assert "subscription ended (NOTIFY terminated)" in \
        net.proxy.log_text()


def test_refresh_subscribe(sipnet):
    """An in-dialog SUBSCRIBE reaches the notifier and its 200 the
    subscriber; a new Contact in the refresh moves the subscriber's
    target (the old one is refused after it)."""
    net = sipnet()
    sub, got = subscribe(net)
    moved = Endpoint()
    try:
        new = "sip:alice@%s" % hostport(moved.host, moved.port)
        sub.request("SUBSCRIBE", headers=[
            ("Event", "presence"), ("Expires", "600"),
            ("Contact", "<%s>" % new)])
        ref = net.uas.expect("SUBSCRIBE", call_id=sub.call_id)
        assert ref.get("to").endswith(net.uas.tag(got)), ref
        net.uas.respond(ref, 200, headers=[("Expires", "600")])
        assert net.caller.expect(sub.resp(method="SUBSCRIBE")).code == 200
        notify(net, sub, got, "active;expires=600", cseq=2, code=403)
        callee_request(net, sub, got, "NOTIFY", uri=new, cseq=3, headers=[
            ("Event", "presence"),
            ("Subscription-State", "active;expires=600")])
        moved.expect(match(method="NOTIFY", call_id=sub.call_id))
    finally:
        moved.close()


def test_notify_before_the_2xx_makes_the_subscription(sipnet):
    """RFC 6665 4.1.2.4: the NOTIFY may come first; it is checked against
    the SUBSCRIBE's Contact (a forged target is refused) and makes the
    subscription, which later requests then pass."""
    net = sipnet()
    sub = net.call()
    sub.request("SUBSCRIBE", headers=[
        ("Event", "presence"), ("Expires", "600"),
        ("Contact", sub.contact)])
    got = net.uas.expect("SUBSCRIBE", call_id=sub.call_id)
    r = notify(net, sub, got, "active;expires=600", cseq=1,
               uri="sip:x@127.0.0.1:9", code=403)
    notify(net, sub, got, "active;expires=600", cseq=2)
    net.uas.respond(got, 200, headers=[
        ("Contact", "<%s>" % net.uas.contact_uri), ("Expires", "600")])
    sub.learn(net.caller.expect(sub.resp(200, "SUBSCRIBE")))
    notify(net, sub, got, "active;expires=600", cseq=3)
    assert r.code == 403


def test_a_481_ends_it(sipnet):
    """The notifier answers a refresh 481 (it forgot the subscription):
    the proxy forgets it too."""
    net = sipnet()
    sub, got = subscribe(net)
    sub.request("SUBSCRIBE", headers=[("Event", "presence"),
                                      ("Expires", "600")])
    ref = net.uas.expect("SUBSCRIBE", call_id=sub.call_id)
    net.uas.respond(ref, 481)
    assert net.caller.expect(sub.resp(method="SUBSCRIBE")).code == 481
    notify(net, sub, got, "active;expires=600", cseq=2, code=481)


def test_no_subscription_481(sipnet):
    """A NOTIFY through our stamp with tags of no subscription: 481."""
    net = sipnet()
    sub, got = subscribe(net)
    sub.to_tag = "forged"
    sub.request("SUBSCRIBE", headers=[("Event", "presence")])
    assert net.caller.expect(sub.resp(method="SUBSCRIBE")).code == 481
    assert net.uas.ep.collect(0.3) == []


def test_subscription_survives_a_restart(osprey_factory):
    """dialog.database keeps subscriptions too: after a restart a forged
    NOTIFY is still refused and the right one passes."""
    from sip import UAS, Net
    uas, caller = UAS(Endpoint()), Endpoint()
    kw = dict(routes=[("^bob$", [uas.target])],
              extra='dialog = { database = "dialogs.db"; };')
    try:
        o = osprey_factory(**kw)
        net = Net(o, caller, uas)
        sub, got = subscribe(net)
        time.sleep(0.3)                 # one commit (100 ms)
        assert o.stop() == 0
        net.proxy = osprey_factory(port=o.port, workdir=o.workdir, **kw)
        notify(net, sub, got, "active;expires=600", cseq=2,
               uri="sip:x@127.0.0.1:9", code=403)
        notify(net, sub, got, "active;expires=600", cseq=3)
    finally:
        uas.ep.close()
        caller.close()


def test_refer_subscription_is_checked(sipnet):
    """A REFER out of dialog (RFC 3515): its 202 makes the implicit
    subscription; its NOTIFYs (message/sipfrag) must go to the referrer,
    and the last one (terminated) ends it."""
    net = sipnet()
    ref = net.call()
    ref.request("REFER", headers=[
        ("Refer-To", "<sip:carol@example.test>"),
        ("Contact", ref.contact)])
    got = net.uas.expect("REFER", call_id=ref.call_id)
    net.uas.respond(got, 202, headers=[
        ("Contact", "<%s>" % net.uas.contact_uri)])
    ref.learn(net.caller.expect(ref.resp(202, "REFER")))
    sipfrag = [("Event", "refer"), ("Content-Type", "message/sipfrag"),
               ("Contact", "<%s>" % net.uas.contact_uri)]
    callee_request(net, ref, got, "NOTIFY", cseq=1, uri="sip:x@127.0.0.1:9",
                   headers=sipfrag + [("Subscription-State",
                                       "active;expires=60")])
    r = net.uas.ep.expect(match(response=True, call_id=ref.call_id,
                                cseq_method="NOTIFY"))
    assert r.code == 403, r
    notify(net, ref, got, "terminated;reason=noresource", cseq=2)
    callee_request(net, ref, got, "NOTIFY", cseq=3, headers=sipfrag + [
        ("Subscription-State", "active;expires=60")])
    r = net.uas.ep.expect(match(response=True, call_id=ref.call_id,
                                cseq_method="NOTIFY"))
    assert r.code == 481, r


def test_unsolicited_notify_dialog_is_checked(sipnet):
    """A NOTIFY out of dialog (no To tag: message waiting, say) that we
    record-route: its 2xx makes a dialog whose requests are checked."""
    net = sipnet()
    n = net.call()
    n.request("NOTIFY", headers=[
        ("Event", "message-summary"), ("Subscription-State",
                                       "active;expires=3600"),
        ("Contact", n.contact)])
    got = net.uas.expect("NOTIFY", call_id=n.call_id)
    net.uas.respond(got, 200, headers=[
        ("Contact", "<%s>" % net.uas.contact_uri)])
    n.learn(net.caller.expect(n.resp(200, "NOTIFY")))
    good = n.remote_target
    n.remote_target = "sip:x@127.0.0.1:9"
    n.request("NOTIFY", headers=[("Event", "message-summary"),
                                 ("Subscription-State", "active")])
    assert net.caller.expect(n.resp(method="NOTIFY")).code == 403
    n.remote_target = good
    n.request("NOTIFY", headers=[("Event", "message-summary"),
                                 ("Subscription-State", "active")])
    net.uas.expect("NOTIFY", call_id=n.call_id)
