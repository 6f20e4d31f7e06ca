"""Registrar and location service (RFC 3261 10, RFC 3327 Path), without
authentication (no auth.users): bindings, expiry, Contact: *, 423, 500
for an old CSeq, max_contacts, calls to registered users (parallel and
serial forking by q, NAT-aware delivery, Path), persistence in SQLite
across a restart, and `ospreyctl registrations`.

Every user agent is a Phone (tests/e2e/sip.py) on its own loopback
socket; the daemon's domain (and realm) is example.test."""

import json
import os
import subprocess
import time

import pytest

from conftest import OSPREYD
from sip import (FINAL, NON2XX, SDP, answer_call, invite_refused,  # noqa
                 match, new_branch, parse, parse_uri, phones_with_q, reglab,
                 reply_to, stranger_invite, uri_of)

REG = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600,
       "max_contacts": 10}


def ctl_path():
    return os.path.join(os.path.dirname(OSPREYD), "ospreyctl")


def expires_of(params):
    return int(params["expires"])


def check_reply(r, req_phone, code=200):
    """A registrar reply: code, one Via (ours), To tag on finals."""
    assert r.code == code, "expected %d, got %r:\n%s" % (code, r, r.text())
    assert len(r.vias) == 1, r.vias
    assert r.vias[0].sent_by == req_phone.ep.addr, r.vias
    assert r.to_tag, "a final response needs a To tag"
    assert uri_of(r.get("to")) == req_phone.aor


def ring_and_answer(call, phone, inv):
    """The callee rings and answers; the caller gets the 200 and ACKs;
    BYE from the caller reaches the callee. Returns the 200."""
    ok = answer_call(call, phone, inv)
    call.bye()
    bye = phone.uas.expect("BYE", call_id=call.call_id)
    phone.uas.respond(bye, 200)
    call.ep.expect(call.resp(200, "BYE"))
    return ok


# ------------------------------------------------------------ bindings


def test_register_default_expires_and_query(reglab):
    """No Expires anywhere: default_expires. The 200 lists the binding
    with its remaining time; a REGISTER without Contact (another Call-ID,
    another device) is a query that lists the AOR's bindings."""
    reglab.start(registrar=dict(REG, default_expires=1800))
    alice = reglab.phone("alice")
    r = alice.register()
    check_reply(r, alice)
    b = alice.bindings(r)
    assert list(b) == [alice.contact_uri], r.text()
    assert 1795 <= expires_of(b[alice.contact_uri]) <= 1800, r.text()

    other = reglab.phone("alice")           # a second device, query only
    listed = other.query()
    assert list(listed) == [alice.contact_uri], listed
    assert 1795 <= expires_of(listed[alice.contact_uri]) <= 1800

    nobody = reglab.phone("carol")
    assert nobody.query() == {}, "carol has no bindings"


def test_contact_expires_param_wins_over_header(reglab):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    a = "sip:bob@127.0.0.1:%d;dev=a" % bob.ep.port
    b = "sip:bob@127.0.0.1:%d;dev=b" % bob.ep.port
    r = bob.register(contacts=["<%s>;expires=120" % a, "<%s>" % b],
                     expires=300)
    check_reply(r, bob)
    got = bob.bindings(r)
    assert set(got) == {a, b}, r.text()
    assert 115 <= expires_of(got[a]) <= 120, r.text()
    assert 295 <= expires_of(got[b]) <= 300, r.text()


def test_q_instance_and_reg_id_echoed(reglab):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    inst = '"<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>"'
    c = "<%s>;q=0.5;+sip.instance=%s;reg-id=1" % (bob.contact_uri, inst)
    r = bob.register(contacts=[c], expires=600)
    check_reply(r, bob)
    p = bob.bindings(r)[bob.contact_uri]
    assert float(p["q"]) == 0.5, r.text()
    assert p.get("+sip.instance") == inst, r.text()
    assert p.get("reg-id") == "1", r.text()
    assert 595 <= expires_of(p) <= 600


def test_reregister_refreshes_binding(reglab):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=100), bob)
    r = bob.register(expires=900)           # same Call-ID, higher CSeq
    check_reply(r, bob)
    got = bob.bindings(r)
    assert list(got) == [bob.contact_uri], "one binding: %s" % r.text()
    assert 895 <= expires_of(got[bob.contact_uri]) <= 900, r.text()


def test_unregister_one_contact(reglab):
    """Expires 0 removes that contact only; the others stay."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    a = "sip:bob@127.0.0.1:%d;dev=a" % bob.ep.port
    b = "sip:bob@127.0.0.1:%d;dev=b" % bob.ep.port
    r = bob.register(contacts=["<%s>" % a, "<%s>" % b], expires=600)
    assert set(bob.bindings(r)) == {a, b}, r.text()
    r = bob.register(contacts=["<%s>;expires=0" % a])
    check_reply(r, bob)
    assert set(bob.bindings(r)) == {b}, r.text()
    assert set(reglab.phone("bob").query()) == {b}


def test_unregister_with_expires_header_zero(reglab):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    r = bob.register(expires=0)
    check_reply(r, bob)
    assert bob.bindings(r) == {}, r.text()
    assert reglab.phone("bob").query() == {}


def test_star_removes_all_bindings(reglab):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    other = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    check_reply(other.register(expires=600), other)
    assert len(bob.query()) == 2
    r = bob.register(contacts=["*"], expires=0)
    check_reply(r, bob)
    assert r.values("contact") == [], r.text()
    assert reglab.phone("bob").query() == {}


@pytest.mark.parametrize("how", ["nonzero_expires", "with_other_contact",
                                 "no_expires"])
def test_star_misuse_400(reglab, how):
    """Contact: * needs Expires: 0 and no other Contact (10.2.2)."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    if how == "nonzero_expires":
        r = bob.register(contacts=["*"], expires=60)
    elif how == "with_other_contact":
        r = bob.register(contacts=["*", "<sip:bob@127.0.0.1:9>"], expires=0)
    else:
        r = bob.register(contacts=["*"])
    check_reply(r, bob, 400)
    assert list(reglab.phone("bob").query()) == [bob.contact_uri], \
        "a rejected Contact: * must not remove bindings"


@pytest.mark.parametrize("cseq_delta", [0, -1])
def test_old_cseq_same_call_id_500(reglab, cseq_delta):
    """Same Call-ID, CSeq not higher than the stored one: 500, and the
    binding keeps its old state (RFC 3261 10.3 step 7)."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    bob.cseq = 10
    check_reply(bob.register(expires=600), bob)     # CSeq 11
    r = bob.register(expires=0, cseq=11 + cseq_delta)
    check_reply(r, bob, 500)
    got = reglab.phone("bob").query()
    assert list(got) == [bob.contact_uri], "binding removed by an old CSeq"
    r = bob.register(expires=0, cseq=12)
    check_reply(r, bob)
    assert reglab.phone("bob").query() == {}


@pytest.mark.parametrize("where", ["header", "param"])
def test_interval_too_brief_423(reglab, where):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    if where == "header":
        r = bob.register(expires=30)
    else:
        r = bob.register(contacts=["<%s>;expires=10" % bob.contact_uri])
    check_reply(r, bob, 423)
    assert r.get("min-expires") == "60", r.text()
    assert reglab.phone("bob").query() == {}, "a 423 must not bind"


def test_expires_clamped_to_max(reglab):
    reglab.start(registrar=dict(REG, max_expires=1200, default_expires=600))
    bob = reglab.phone("bob")
    r = bob.register(expires=7200)
    check_reply(r, bob)
    n = expires_of(bob.bindings(r)[bob.contact_uri])
    assert 1195 <= n <= 1200, r.text()


def test_remaining_time_counts_down(reglab):
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=120), bob)
    time.sleep(2.2)
    n = expires_of(reglab.phone("bob").query()[bob.contact_uri])
    assert 115 <= n <= 118, "remaining %d s after 2.2 s of 120" % n


def test_too_many_contacts_403(reglab):
    reglab.start(registrar=dict(REG, max_contacts=2))
    bob = reglab.phone("bob")
    c = ["<sip:bob@127.0.0.1:%d;dev=%d>" % (bob.ep.port, i) for i in range(3)]
    r = bob.register(contacts=c, expires=600)
    check_reply(r, bob, 403)
    assert reglab.phone("bob").query() == {}, "403 must not bind"
    check_reply(bob.register(contacts=c[:2], expires=600), bob)
    r = bob.register(contacts=c[2:], expires=600)
    check_reply(r, bob, 403)
    assert len(reglab.phone("bob").query()) == 2
    # refreshing an existing binding is not an extra contact
    check_reply(bob.register(contacts=c[:1], expires=900), bob)


def test_binding_expires(reglab):
    """Expires: 2 (min_expires 1): after 3 s the binding is gone from
    queries and calls to the user get 404 (no users file)."""
    reglab.start(registrar=dict(REG, min_expires=1))
    bob = reglab.phone("bob")
    r = bob.register(expires=2)
    check_reply(r, bob)
    assert expires_of(bob.bindings(r)[bob.contact_uri]) <= 2

    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    bob.uas.respond(inv, 486)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 486, r
    call.ack(r)

    time.sleep(3.0)
    assert reglab.phone("bob").query() == {}
    call = reglab.caller("sip:bob@example.test")
    invite_refused(call, 404, [bob], 0.2)


# --------------------------------------------------------------- calls


def test_call_reaches_registered_contact(reglab):
    """INVITE sip:bob@example.test -> bob's Contact URI, full call."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    assert inv.uri == bob.contact_uri, inv.start
    assert inv.vias[0].sent_by == reglab.proxy.addr
    assert inv.get("max-forwards") == "69"
    assert uri_of(inv.get("to")) == "sip:bob@example.test"
    ring_and_answer(call, bob, inv)


def test_unregistered_user_404_without_users_file(reglab):
    reglab.start(registrar=REG)
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 404, r
    call.check_vias(r)
    call.ack(r)


def test_config_route_wins_over_location(reglab):
    target = reglab.endpoint()
    reglab.start(registrar=REG,
                 routes=[("^bob$", ["sip:127.0.0.1:%d" % target.port])])
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    inv = target.expect(match(method="INVITE", call_id=call.call_id))
    assert inv.uri == "sip:bob@example.test"
    assert bob.ep.collect(0.3, match(method="INVITE")) == [], \
        "the registered contact got the call although a route matched"


def test_parallel_fork_equal_q(reglab):
    """Two devices, equal q: both ring; the second answers; the first gets
    a CANCEL with its INVITE's branch, its 487 is ACKed by the proxy and
    never reaches the caller, who gets exactly one 200."""
    reglab.start(registrar=REG)
    d1, d2 = reglab.phone("bob"), reglab.phone("bob")
    check_reply(d1.register(expires=600), d1)
    check_reply(d2.register(expires=600), d2)
    call, i1 = stranger_invite(reglab, "sip:bob@example.test", d1)
    i2 = d2.uas.expect("INVITE", call_id=call.call_id)
    assert i1.uri == d1.contact_uri and i2.uri == d2.contact_uri
    assert i1.branch != i2.branch
    d1.uas.respond(i1, 180)
    d2.uas.respond(i2, 180)
    call.ep.expect(call.resp(180))
    call.ep.expect(call.resp(180))
    d2.uas.respond(i2, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    assert ok.to_tag == d2.uas.tag(i2)

    cancel = d1.uas.expect("CANCEL", call_id=call.call_id)
    assert cancel.branch == i1.branch, (cancel.branch, i1.branch)
    assert cancel.uri == i1.uri
    assert cancel.cseq == (i1.cseq[0], "CANCEL")
    assert len(cancel.vias) == 1
    d1.uas.respond(cancel, 200)
    d1.uas.respond(i1, 487)
    ack = d1.uas.expect("ACK", call_id=call.call_id)
    assert ack.branch == i1.branch
    assert d2.ep.collect(0.1, match(method="CANCEL")) == []

    call.ack(ok)
    d2.uas.expect("ACK", call_id=call.call_id)
    stray = call.ep.collect(0.4, call.resp(NON2XX))
    assert stray == [], "the caller got the losing branch's final: %r" % stray


def test_serial_fork_by_q(reglab):
    """q=1.0 before q=0.5: the lower group gets the INVITE only after the
    higher one failed (486); the caller sees only the final 200."""
    reglab.start(registrar=REG)
    lo, hi = phones_with_q(reglab, "bob", ["0.5", "1.0"])
    call, ih = stranger_invite(reglab, "sip:bob@example.test", hi)
    assert lo.ep.collect(0.4, match(method="INVITE")) == [], \
        "q=0.5 contact tried in parallel with q=1.0"
    hi.uas.respond(ih, 486)
    hi.uas.expect("ACK", call_id=call.call_id)
    il = lo.uas.expect("INVITE", call_id=call.call_id)
    assert il.uri == lo.contact_uri
    lo.uas.respond(il, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    assert ok.to_tag == lo.uas.tag(il)
    call.ack(ok)
    lo.uas.expect("ACK", call_id=call.call_id)
    assert call.ep.collect(0.3, call.resp(NON2XX)) == [], \
        "the 486 of the first group reached the caller"


def test_serial_fork_stops_on_6xx(reglab):
    reglab.start(registrar=REG)
    lo, hi = phones_with_q(reglab, "bob", ["0.2", "0.9"])
    call, ih = stranger_invite(reglab, "sip:bob@example.test", hi)
    hi.uas.respond(ih, 603)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 603, r
    call.ack(r)
    assert lo.ep.collect(0.4, match(method="INVITE")) == [], \
        "a 6xx must end the search"


def test_nat_call_goes_to_register_source(reglab):
    """The REGISTER comes from socket S1 but its Contact (and Via
    sent-by, with rport) name socket S2: the 200 and later the INVITE go
    to S1, the address the REGISTER came from; the Request-URI is still
    the registered Contact."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    s2 = reglab.endpoint()
    contact = "sip:bob@127.0.0.1:%d" % s2.port
    via = "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (s2.port,
                                                         new_branch())
    r = bob.register(contacts=["<%s>" % contact], expires=600, via=via)
    assert r.code == 200, r            # received on S1 thanks to rport
    assert list(bob.bindings(r)) == [contact], r.text()
    assert s2.collect(0.1) == [], "the 200 went to the Via sent-by"

    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    assert inv.uri == contact, inv.start
    assert s2.collect(0.3, match(method="INVITE")) == [], \
        "INVITE sent to the Contact address instead of the REGISTER source"
    ring_and_answer(call, bob, inv)


def test_path_stored_and_used_as_route(reglab):
    """RFC 3327: an edge proxy forwards bob's REGISTER with a Path of its
    own; the 200 echoes the Path (Supported: path), and a call to bob is
    sent to the edge with the Path as Route and bob's Contact as the
    Request-URI."""
    reglab.start(registrar=REG)
    edge = reglab.phone("bob")          # the edge proxy's socket
    ua_contact = "sip:bob@192.0.2.10:5062"
    path = "<sip:edge@127.0.0.1:%d;lr>" % edge.ep.port
    vias = "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport, " \
        "SIP/2.0/UDP 192.0.2.10:5062;branch=%s;received=192.0.2.10" % (
            edge.ep.port, new_branch(), new_branch())
    r = edge.register(contacts=["<%s>" % ua_contact], expires=600, via=vias,
                      headers=[("Path", path), ("Supported", "path")])
    assert r.code == 200, r
    assert r.values("path") == [path], r.text()
    assert list(edge.bindings(r)) == [ua_contact]

    call = reglab.caller("sip:bob@example.test")
    call.invite()
    inv = edge.ep.expect(match(method="INVITE", call_id=call.call_id))
    assert inv.uri == ua_contact, inv.start
    routes = inv.values("route")
    assert routes and routes[0] == path, "Route set %r" % routes


# -------------------------------------------------------- persistence


def test_restart_keeps_bindings(reglab):
    reglab.start(registrar=dict(REG, database=True))
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600, headers=[
        ("User-Agent", "e2e-phone/1.0")]), bob)
    assert os.path.exists(os.path.join(reglab.proxy.workdir, "location.db"))
    reglab.restart()

    got = reglab.phone("bob").query()
    assert list(got) == [bob.contact_uri], "bindings lost: %r" % got
    assert 590 <= expires_of(got[bob.contact_uri]) <= 600
    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    assert inv.uri == bob.contact_uri
    ring_and_answer(call, bob, inv)


def kill_and_restart(reglab):
    """SIGKILL (no clean stop, no final flush of the store), then start
    again on the same database."""
    reglab.proxy.proc.kill()
    reglab.proxy.proc.wait()
    reglab.proxy.allowed_rc = (-9,)
    reglab.restart()


def test_changes_survive_a_kill(reglab):
    """registrar.database commits its changes within 100 ms, without a
    clean stop: a binding added (and one removed) a second before a
    SIGKILL is (is not) there after the restart."""
    reglab.start(registrar=dict(REG, database=True))
    bob = reglab.phone("bob")
    carol = reglab.phone("carol")
    check_reply(bob.register(expires=600), bob)
    check_reply(carol.register(expires=600), carol)
    time.sleep(1.0)
    check_reply(carol.register(expires=0), carol)
    time.sleep(1.0)
    kill_and_restart(reglab)
    got = reglab.phone("bob").query()
    assert list(got) == [bob.contact_uri], "binding lost: %r" % got
    assert reglab.phone("carol").query() == {}, "removal lost"


def test_database_private_whatever_the_umask(reglab):
    """The database keeps the server secret: under umask 022 it comes
    out 0600, and so do its -wal and -shm; one left 0644 (by an older
    ospreyd) is 0600 again after a restart, and the log says so."""
    umask022 = ("sh", "-c", 'umask 022 && exec "$0" "$@"')
    reglab.start(registrar=dict(REG, database=True), wrapper=umask022)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    db = os.path.join(reglab.proxy.workdir, "location.db")

    def modes():
        return {f: oct(os.stat(db + f).st_mode & 0o7777)
                for f in ("", "-wal", "-shm") if os.path.exists(db + f)}

    assert modes() == {"": "0o600", "-wal": "0o600", "-shm": "0o600"}
    reglab.proxy.stop()
    os.chmod(db, 0o644)
    reglab.restart()
    assert modes() == {"": "0o600", "-wal": "0o600", "-shm": "0o600"}
    assert "mode 0644, now 0600" in reglab.proxy.log_text()
    assert list(reglab.phone("bob").query()) == [bob.contact_uri]


def test_restart_without_database_forgets(reglab):
    """The contrast: no database, memory only."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    reglab.restart()
    assert reglab.phone("bob").query() == {}


def test_expired_binding_not_restored(reglab):
    reglab.start(registrar=dict(REG, min_expires=1, database=True))
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=2), bob)
    reglab.proxy.stop()
    time.sleep(2.5)
    reglab.restart()
    assert reglab.phone("bob").query() == {}


# ------------------------------------------------------------- ospreyctl


def ctl(proxy, *args):
    p = subprocess.run([ctl_path(), "-s", proxy.ctl_socket] + list(args),
                       capture_output=True, text=True, timeout=10)
    return p.returncode, p.stdout + p.stderr


def test_ospreyctl_registrations(reglab):
    reglab.start(registrar=REG)
    alice = reglab.phone("alice")
    bob = reglab.phone("bob")
    check_reply(alice.register(expires=600, headers=[
        ("User-Agent", "AliceFone/2.1")]), alice)
    check_reply(bob.register(expires=600, headers=[
        ("User-Agent", "BobFone/3.4")]), bob)

    rc, out = ctl(reglab.proxy, "registrations")
    assert rc == 0, out
    for ph, ua in ((alice, "AliceFone/2.1"), (bob, "BobFone/3.4")):
        assert ph.aor.split(":", 1)[1] in out, out
        assert ph.contact_uri in out, out
        assert "127.0.0.1:%d" % ph.ep.port in out, out
        assert ua in out, out

    rc, out = ctl(reglab.proxy, "registrations", "bob")
    assert rc == 0, out
    assert bob.contact_uri in out and alice.contact_uri not in out, out

    rc, out = ctl(reglab.proxy, "--json", "registrations")
    assert rc == 0, out
    doc = json.loads(out)
    assert isinstance(doc, list) and len(doc) == 2, doc
    by = {d["contact"]: d for d in doc}
    for ph, ua in ((alice, "AliceFone/2.1"), (bob, "BobFone/3.4")):
        d = by[ph.contact_uri]
        assert d["aor"] == ph.aor.split(":", 1)[1], d
        assert d["received"] == "127.0.0.1:%d" % ph.ep.port, d
        assert d["user_agent"] == ua, d
        assert 590 <= int(d["expires"]) <= 600, d

    check_reply(bob.register(expires=0), bob)
    rc, out = ctl(reglab.proxy, "registrations", "bob")
    assert rc == 0 and bob.contact_uri not in out, out


# ------------------------------------------------------------- more


def test_new_call_id_same_contact_replaces_binding(reglab):
    """A rebooted phone registers the same Contact with a new Call-ID:
    the binding is updated, not doubled (RFC 3261 10.3 step 7)."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=300), bob)
    bob.reg_call_id = "rebooted-" + bob.reg_call_id
    bob.cseq = 0
    r = bob.register(expires=900)
    check_reply(r, bob)
    got = bob.bindings(r)
    assert list(got) == [bob.contact_uri], r.text()
    assert 895 <= expires_of(got[bob.contact_uri]) <= 900


def test_serial_fork_group_of_two(reglab):
    """Two contacts at q=0.9 ring in parallel; the q=0.1 contact is tried
    only when both have failed."""
    reglab.start(registrar=REG)
    a, b, lo = phones_with_q(reglab, "bob", ["0.9", "0.9", "0.1"])
    call, ia = stranger_invite(reglab, "sip:bob@example.test", a)
    ib = b.uas.expect("INVITE", call_id=call.call_id)
    a.uas.respond(ia, 486)
    a.uas.expect("ACK", call_id=call.call_id)
    assert lo.ep.collect(0.4, match(method="INVITE")) == [], \
        "next group tried before the whole group failed"
    b.uas.respond(ib, 480)
    b.uas.expect("ACK", call_id=call.call_id)
    il = lo.uas.expect("INVITE", call_id=call.call_id)
    lo.uas.respond(il, 486)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code in (480, 486), r
    call.ack(r)


def test_restart_keeps_source_path_and_q(reglab):
    """What the database keeps is enough to route after a restart: the
    source address (NAT), the Path and the q order."""
    reglab.start(registrar=dict(REG, database=True))
    hi, lo = reglab.phone("bob"), reglab.phone("bob")
    elsewhere = "sip:bob@127.0.0.1:%d" % reglab.endpoint().port
    check_reply(lo.register(contacts=["<%s>;q=0.2" % lo.contact_uri],
                            expires=600), lo)
    path = "<sip:edge@127.0.0.1:%d;lr>" % hi.ep.port
    r = hi.register(contacts=["<%s>;q=0.8" % elsewhere], expires=600,
                    headers=[("Path", path), ("Supported", "path")])
    assert r.code == 200, r
    reglab.restart()

    call = reglab.caller("sip:bob@example.test")
    call.invite()
    inv = hi.ep.expect(match(method="INVITE", call_id=call.call_id))
    assert inv.uri == elsewhere, inv.start
    assert inv.values("route")[:1] == [path], inv.values("route")
    assert lo.ep.collect(0.3, match(method="INVITE")) == [], \
        "q order lost in the restart"
    hi.uas.respond(inv, 486)
    il = lo.uas.expect("INVITE", call_id=call.call_id)
    assert il.uri == lo.contact_uri
    lo.uas.respond(il, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    call.ack(ok)


def test_reload_keeps_bindings(reglab):
    """SIGHUP re-reads the config; the location service is not reset."""
    import signal
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    reglab.proxy.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and "reload" not in \
            reglab.proxy.log_text().lower():
        time.sleep(0.05)
    time.sleep(0.2)
    assert list(reglab.phone("bob").query()) == [bob.contact_uri]
    assert reglab.proxy.alive()


def test_foreign_aor_register_cannot_hijack_our_user(reglab):
    """No auth configured: REGISTER sip:example.test with To
    sip:bob@elsewhere.test is not for our domain (404 or 403) and must not
    bind bob@example.test."""
    reglab.start(registrar=REG)
    eve = reglab.phone("bob", domain="elsewhere.test")
    raw = eve.register_bytes(expires=600).replace(
        b"REGISTER sip:elsewhere.test ", b"REGISTER sip:example.test ")
    eve.ep.send(raw, reglab.proxy.addr)
    r = eve.ep.expect(reply_to(parse(raw)))
    assert r.code in (403, 404), r
    assert reglab.phone("bob").query() == {}


def test_aor_host_case_insensitive(reglab):
    """To sip:bob@EXAMPLE.Test is the AOR sip:bob@example.test."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob", domain="EXAMPLE.Test")
    r = bob.register(expires=600)
    check_reply(r, bob)
    assert list(reglab.phone("bob").query()) == [bob.contact_uri]
    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    assert inv.uri == bob.contact_uri


def test_path_without_supported_not_echoed(reglab):
    """RFC 3327 5.3: no Supported: path in the REGISTER, no Path in the
    200 (or a 420/421 refusal); a Path may not be echoed to a UA that did
    not ask."""
    reglab.start(registrar=REG)
    edge = reglab.phone("bob")
    path = "<sip:edge@127.0.0.1:%d;lr>" % edge.ep.port
    r = edge.register(expires=600, headers=[("Path", path)])
    assert r.code in (200, 420, 421), r
    if r.code != 200:
        return
    assert r.values("path") == [], r.text()
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    inv = edge.ep.expect(match(method="INVITE", call_id=call.call_id))
    assert inv.values("route")[:1] == [path], "Path stored but not used"


def test_registrar_disabled(reglab):
    reglab.start(registrar=dict(REG, enabled=False))
    bob = reglab.phone("bob")
    r = bob.register(expires=600)
    assert r.code != 200 and r.code >= 400, r
    call = reglab.caller("sip:bob@example.test")
    invite_refused(call, 404, [bob], 0.2)


@pytest.mark.parametrize("which", ["proxy_address", "own_aor"])
def test_contact_pointing_back_at_us_does_not_loop(reglab, which):
    """A Contact that leads back to the proxy (its own address, or the AOR
    itself) must end the call with an error, not loop or crash."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    if which == "proxy_address":
        contact = "sip:bob@127.0.0.1:%d" % reglab.proxy.port
    else:
        contact = "sip:bob@example.test"
    r = bob.register(contacts=["<%s>" % contact], expires=600)
    assert r.code in (200, 400, 403, 482, 483), r
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    final = call.ep.expect(call.resp(FINAL), timeout=8)
    assert 400 <= final.code < 700, final
    call.ack(final)
    assert reglab.proxy.alive()
    # still serving
    assert reglab.phone("carol").query() == {}


@pytest.mark.parametrize("contact,expires", [
    ("<sip:bob@127.0.0.1:9>;expires=99999999999", None),
    ("<sip:bob@127.0.0.1:9>;expires=-5", None),
    ("<sip:bob@127.0.0.1:9>;q=7", "600"),
    ("<sip:bob@127.0.0.1:9>;q=abc", "600"),
    ("<sip:bob@127.0.0.1:9>", "abc"),
    ("<sip:bob@127.0.0.1:9>", "4294967296"),
    ("<sip:bob@127.0.0.1:9", "600"),
    ("<>", "600"),
])
def test_odd_register_values(reglab, contact, expires):
    """Odd numbers and broken Contacts: a 4xx or a clamped 200, never a
    crash nor an expires outside min..max."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    hs = [("Expires", expires)] if expires is not None else []
    r = bob.register(contacts=[contact], headers=hs)
    assert r.code in (200, 400, 423), r
    if r.code == 200:
        for p in bob.bindings(r).values():
            assert 60 <= expires_of(p) <= 3600, r.text()
            if "q" in p:
                assert 0.0 <= float(p["q"]) <= 1.0, r.text()
    assert reglab.proxy.alive()
    assert reglab.phone("carol").query() == {}


def test_unregister_and_refresh_persisted(reglab):
    """Removals and refreshes reach the database too."""
    reglab.start(registrar=dict(REG, database=True))
    gone, kept = reglab.phone("bob"), reglab.phone("bob")
    check_reply(gone.register(expires=600), gone)
    check_reply(kept.register(expires=100), kept)
    check_reply(gone.register(expires=0), gone)
    check_reply(kept.register(expires=900), kept)
    reglab.restart()
    got = reglab.phone("bob").query()
    assert list(got) == [kept.contact_uri], got
    assert 890 <= expires_of(got[kept.contact_uri]) <= 900, got


def test_binding_survives_sigkill(reglab):
    """A 200 for a REGISTER means the binding is in the database: killed
    without warning a moment later, the daemon comes back with it."""
    import signal
    reglab.start(registrar=dict(REG, database=True))
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    time.sleep(0.3)
    reglab.proxy.allowed_rc = (-signal.SIGKILL,)
    reglab.proxy.proc.send_signal(signal.SIGKILL)
    reglab.proxy.proc.wait(5)
    reglab.restart()
    assert list(reglab.phone("bob").query()) == [bob.contact_uri]


def test_cancel_reaches_every_registered_device(reglab):
    """Parallel fork to two devices, the caller CANCELs: each device gets
    a CANCEL with its own INVITE's branch; the caller gets one 487."""
    reglab.start(registrar=REG)
    d1, d2 = reglab.phone("bob"), reglab.phone("bob")
    check_reply(d1.register(expires=600), d1)
    check_reply(d2.register(expires=600), d2)
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    invs = {}
    for d in (d1, d2):
        invs[d] = d.uas.expect("INVITE", call_id=call.call_id)
        d.uas.respond(invs[d], 180)
    call.ep.expect(call.resp(180))
    call.cancel()
    assert call.ep.expect(call.resp(None, "CANCEL")).code == 200
    for d in (d1, d2):
        c = d.uas.expect("CANCEL", call_id=call.call_id)
        assert c.branch == invs[d].branch
        d.uas.respond(c, 200)
        d.uas.respond(invs[d], 487)
        d.uas.expect("ACK", call_id=call.call_id)
    final = call.ep.expect(call.resp(NON2XX))
    assert final.code == 487, final
    call.ack(final)
    more = call.ep.collect(0.6, call.resp(NON2XX))
    for m in more:                      # retransmissions only
        call.ack(m)
    assert {(m.code, m.to_tag) for m in more} <= {(487, final.to_tag)}, \
        "more than one final for the caller: %r" % more


def test_message_to_registered_user(reglab):
    """Non-INVITE requests use the location service too."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    check_reply(bob.register(expires=600), bob)
    call = reglab.caller("sip:bob@example.test")
    call.request("MESSAGE", headers=[("Content-Type", "text/plain")],
                 body=b"hello bob")
    m = bob.uas.expect("MESSAGE", call_id=call.call_id)
    assert m.uri == bob.contact_uri and m.body == b"hello bob"
    bob.uas.respond(m, 200)
    assert call.ep.expect(call.resp(None, "MESSAGE")).code == 200


@pytest.mark.parametrize("contact,expires", [
    ("<sip:bob@127.0.0.1:9>;expires=99999999999", None),
    ("<sip:bob@127.0.0.1:9>", "4294967296"),
])
def test_huge_expires_saturates_to_max(reglab, contact, expires):
    """delta-seconds beyond 2^32-1 saturate (RFC 3261 20.19 range), then
    max_expires clamps: 200 with expires = max_expires."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    hs = [("Expires", expires)] if expires is not None else []
    r = bob.register(contacts=[contact], headers=hs)
    check_reply(r, bob)
    assert expires_of(bob.bindings(r)["sip:bob@127.0.0.1:9"]) == 3600, \
        r.text()


def test_register_with_user_in_request_uri(reglab):
    """REGISTER sip:bob@example.test (some phones put the AOR in the
    Request-URI) is still for the registrar, not forwarded by location."""
    reglab.start(registrar=REG)
    bob = reglab.phone("bob")
    raw = bob.register_bytes(expires=600).replace(
        b"REGISTER sip:example.test ", b"REGISTER sip:bob@example.test ")
    bob.ep.send(raw, reglab.proxy.addr)
    r = bob.ep.expect(reply_to(parse(raw)))
    check_reply(r, bob)
    assert list(bob.bindings(r)) == [bob.contact_uri]
    assert bob.ep.collect(0.3, match(method="REGISTER")) == [], \
        "the REGISTER was forwarded to the binding"
