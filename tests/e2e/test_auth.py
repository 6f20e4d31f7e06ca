"""Digest authentication (RFC 3261 22, RFC 7616, RFC 8760) of REGISTER
(401) and of requests from our users (407), and who may go where:
strangers reach our users but are no open relay, trusted sources skip
authentication, authenticated users cannot spoof From.

The daemon has auth.users = a users file written by the test
(user:realm:HA1md5:HA1sha256) and the realm example.test."""

import os
import subprocess
import time

import pytest

from conftest import TOP, lc
from sip import (FINAL, NON2XX, SDP, UAC, UAS, authorization, challenges,
                 answer_call, invite_refused, match, parse, pick_challenge,
                 reglab,  # noqa
                 reply_to, stranger_invite, uri_of)

REALM = "example.test"
USERS = {"alice": "wonderland", "bob": "builder", "carol": "c4r0l!"}
REG = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600}
AUTH = {"nonce_expiry": 300, "algorithms": ["SHA-256", "MD5"]}


def start(lab, users=USERS, auth=None, **kw):
    a = dict(AUTH)
    a.update(auth or {})
    kw.setdefault("registrar", REG)
    return lab.start(users=users, auth=a, **kw)


def check_challenge(r, code, header):
    """A digest challenge as the spec asks: one header per algorithm,
    SHA-256 first, realm = the domain, qop=auth, a nonce."""
    reason = {401: "Unauthorized", 407: "Proxy Authentication Required"}
    assert r.code == code, "expected %d, got %r:\n%s" % (code, r, r.text())
    assert r.reason == reason[code], r.start
    assert r.to_tag, "a final response needs a To tag"
    chs = challenges(r)
    assert [c.header for c in chs] == [header] * 2, r.text()
    assert [c.algorithm for c in chs] == ["SHA-256", "MD5"], r.text()
    for c in chs:
        assert c.scheme == "Digest", c
        assert c.realm == REALM, c
        assert "realm" in c.quoted and "nonce" in c.quoted, c
        assert "auth" in c.qop, c
        assert c.nonce, c
        assert not c.stale, c
    return chs


def registered(lab, user, **kw):
    """A Phone of user that registered with its password (200)."""
    ph = lab.phone(user, USERS[user])
    r = ph.register(expires=600, **kw)
    assert r.code == 200, "%s could not register: %r\n%s" % (
        user, r, r.text())
    return ph


def alice_calls_bob(reglab):
    """The daemon started, bob registered, alice's INVITE (407 answered)
    reaches him: (alice, bob, the call, the INVITE as bob got it)."""
    start(reglab)
    bob = registered(reglab, "bob")
    alice = reglab.phone("alice", USERS["alice"])
    call = alice.call("sip:bob@example.test")
    alice.invite_auth(call)
    return alice, bob, call, bob.uas.expect("INVITE", call_id=call.call_id)


# ------------------------------------------------------------ REGISTER


def test_register_challenged_401(reglab):
    start(reglab)
    alice = reglab.phone("alice")           # no password: no retry
    r = alice.register()
    check_challenge(r, 401, "www-authenticate")
    assert not r.has("proxy-authenticate")
    assert r.values("contact") == []
    # no binding was made: bob (authenticated) calling alice gets 480
    bob = registered(reglab, "bob")
    call = bob.call("sip:alice@example.test")
    assert bob.invite_auth(call).code == 407
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 480, r
    call.ack(r)


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_register_with_digest(reglab, alg):
    start(reglab)
    alice = reglab.phone("alice", USERS["alice"], algorithm=alg)
    r = alice.register(expires=600)
    assert r.code == 200, r.text()
    assert alice.last_challenge.algorithm == alg
    assert list(alice.bindings(r)) == [alice.contact_uri], r.text()
    auth = parse(alice.register_bytes()).get("authorization")
    assert auth is None                      # the helper adds it on demand
    assert list(alice.query()) == [alice.contact_uri]


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_users_file_with_one_algorithm_line(reglab, alg):
    """htdigest lines without the 4th field: MD5 only. A SHA-256 answer
    cannot be checked, so it is refused; MD5 works."""
    from sip import digest_ha1
    line = "alice:%s:%s" % (REALM, digest_ha1("alice", REALM, "pw"))
    start(reglab, users=["# md5 only", line])
    alice = reglab.phone("alice", "pw", algorithm=alg)
    r = alice.register()
    assert r.code == (200 if alg == "MD5" else 401), r


def test_reregister_and_unregister_with_auth(reglab):
    start(reglab)
    alice = registered(reglab, "alice")
    r = alice.register(expires=1200)
    assert r.code == 200, r
    got = alice.bindings(r)
    assert list(got) == [alice.contact_uri]
    assert 1195 <= int(got[alice.contact_uri]["expires"]) <= 1200
    r = alice.register(expires=0)
    assert r.code == 200 and alice.bindings(r) == {}, r.text()
    assert alice.query() == {}


def test_wrong_password_and_unknown_user_look_alike(reglab):
    """A wrong password gets a fresh challenge; an unknown user gets the
    same kind of 401 (no account enumeration); neither binds."""
    start(reglab)
    alice = reglab.phone("alice", "not-the-password")
    r1 = alice.register()
    assert alice.last_challenge is not None, "no first challenge"
    chs1 = check_challenge(r1, 401, "www-authenticate")

    mallory = reglab.phone("mallory", "whatever")
    r2 = mallory.register()
    chs2 = check_challenge(r2, 401, "www-authenticate")
    assert r1.reason == r2.reason
    assert sorted(n for n, _, _ in r1.headers) == \
        sorted(n for n, _, _ in r2.headers), (r1.text(), r2.text())
    assert [sorted(c.params) for c in chs1] == \
        [sorted(c.params) for c in chs2]
    assert len(r1.body) == len(r2.body)
    assert reglab.phone("alice", USERS["alice"]).query() == {}


def test_wrong_password_does_not_bind(reglab):
    start(reglab)
    bad = reglab.phone("alice", "guess")
    assert bad.register(expires=600).code == 401
    good = reglab.phone("alice", USERS["alice"])
    assert good.query() == {}, "a 401 REGISTER made a binding"


def test_auth_user_differs_from_to_403(reglab):
    """alice's credentials, To bob: 403, bob gets no binding."""
    start(reglab)
    alice = reglab.phone("bob")     # the AOR is bob's ...
    r = alice.send_register()
    assert r.code == 401, "first: challenge"
    ch = pick_challenge(r)
    auth = authorization(ch, "REGISTER", "sip:" + REALM, "alice",
                         USERS["alice"])
    r = alice.send_register(auth=auth)   # ... signed as alice
    assert r.code == 403, r
    bob = reglab.phone("bob", USERS["bob"])
    assert bob.query() == {}


def test_stale_nonce(reglab):
    """nonce_expiry 2 s: a correct answer to an old nonce gets a new
    challenge with stale=true; answering that one works. (Nonce times are
    whole seconds, so the test waits more than expiry + 1 s.)"""
    start(reglab, auth={"nonce_expiry": 2})
    alice = reglab.phone("alice", USERS["alice"])
    r = alice.send_register()
    old = pick_challenge(r, "MD5")
    time.sleep(3.2)         # whole seconds: expiry 2 s may mean < 3 s
    auth = alice.auth_for(old, "REGISTER", "sip:" + REALM)
    r = alice.send_register(auth=auth)
    assert r.code == 401, r
    chs = challenges(r)
    assert chs and all(c.stale for c in chs), r.text()
    new = pick_challenge(r, "MD5")
    assert new.nonce != old.nonce
    r = alice.send_register(auth=alice.auth_for(new, "REGISTER",
                                                "sip:" + REALM))
    assert r.code == 200, r


def test_stale_only_for_valid_credentials(reglab):
    """An expired nonce with a wrong password: no stale=true (the client
    would retry the same bad password without asking its user)."""
    start(reglab, auth={"nonce_expiry": 1})
    alice = reglab.phone("alice", "wrong")
    old = pick_challenge(alice.send_register())
    time.sleep(2.2)
    r = alice.send_register(auth=alice.auth_for(old, "REGISTER",
                                                "sip:" + REALM))
    assert r.code == 401, r
    assert not any(c.stale for c in challenges(r)), r.text()


def test_replayed_nonce_count_rejected(reglab):
    """The same Authorization (nonce, nc=1) replayed on a new REGISTER:
    401, not 200. A higher nc with the same nonce is fine."""
    start(reglab)
    alice = reglab.phone("alice", USERS["alice"])
    ch = pick_challenge(alice.send_register())
    auth1 = alice.auth_for(ch, "REGISTER", "sip:" + REALM, nc=1)
    assert alice.send_register(auth=auth1, expires=600).code == 200
    r = alice.send_register(auth=auth1, expires=0)      # replay
    assert r.code == 401, "replayed nc=1 accepted: %r" % r
    assert list(reglab.phone("alice", USERS["alice"]).query()) == \
        [alice.contact_uri], "the replay removed the binding"
    auth2 = alice.auth_for(ch, "REGISTER", "sip:" + REALM, nc=2)
    assert alice.send_register(auth=auth2, expires=600).code == 200
    r = alice.send_register(auth=auth2, expires=0)
    assert r.code == 401, "replayed nc=2 accepted: %r" % r


def test_challenge_sent_statelessly(reglab):
    """A retransmitted unauthenticated REGISTER gets a 401 again."""
    start(reglab)
    alice = reglab.phone("alice")
    req = parse(alice.register_bytes())
    alice.ep.send(req.raw, reglab.proxy.addr)
    r1 = alice.ep.expect(reply_to(req))
    alice.ep.send(req.raw, reglab.proxy.addr)
    r2 = alice.ep.expect(reply_to(req))
    assert (r1.code, r2.code) == (401, 401)


def test_tampered_response_rejected(reglab):
    start(reglab)
    alice = reglab.phone("alice", USERS["alice"])
    ch = pick_challenge(alice.send_register())
    auth = alice.auth_for(ch, "REGISTER", "sip:" + REALM,
                          response="0" * 64)
    assert alice.send_register(auth=auth).code == 401


def test_osprey_passwd_line_authenticates(reglab, tmp_path):
    """tools/osprey-passwd USER REALM prints a users line from the
    password on stdin; that line lets the user register (both
    algorithms); with a FILE argument it adds or replaces the user's
    line and keeps the others."""
    from sip import users_line
    tool = os.path.join(TOP, "tools", "osprey-passwd")
    assert os.access(tool, os.X_OK), "%s missing or not executable" % tool
    p = subprocess.run([tool, "dave", REALM], input="s3cret\n",
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert line.startswith("dave:%s:" % REALM), line
    # FILE mode: adds a line, then replaces it (one line per user)
    users = os.path.join(str(tmp_path), "users")
    with open(users, "w") as f:
        f.write("# ours\n" + users_line("bob", REALM, USERS["bob"]) + "\n")
    tricky = " p@ss:w\\rd \u00e9 "
    for pw in ("first", tricky):
        p = subprocess.run([tool, "erin", REALM, users], input=pw + "\n",
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
    with open(users) as f:
        text = f.read()
    assert text.count("erin:") == 1 and "bob:" in text, text
    start(reglab, users=[line] + text.splitlines())
    for alg in ("MD5", "SHA-256"):
        dave = reglab.phone("dave", "s3cret", algorithm=alg)
        assert dave.register().code == 200, alg
        assert reglab.phone("erin", tricky,
                            algorithm=alg).register().code == 200, alg
        assert reglab.phone("bob", USERS["bob"],
                            algorithm=alg).register().code == 200, alg
    # two failures only: security.auth_failures (5) bans the source
    assert reglab.phone("dave", "s3cretX").register().code == 401
    assert reglab.phone("erin", "first").register().code == 401


def test_osprey_passwd_file_is_0640(tmp_path):
    """osprey-passwd FILE under umask 022: a new file is 0640; a file
    that was 0644 (as git checks conf/users out) is 0640 afterwards, its
    group kept (checked when we may give it another group)."""
    tool = os.path.join(TOP, "tools", "osprey-passwd")

    def passwd(path, user):
        p = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" "$@"',
                            tool, user, REALM, path], input="pw\n",
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        return os.stat(path)

    fresh = os.path.join(str(tmp_path), "fresh")
    assert oct(passwd(fresh, "alice").st_mode & 0o7777) == oct(0o640)
    shipped = os.path.join(str(tmp_path), "users")
    with open(shipped, "w") as f:
        f.write("# an example, no users\n")
    os.chmod(shipped, 0o644)
    gid = os.stat(shipped).st_gid
    if os.geteuid() == 0:
        gid = 65534
        os.chown(shipped, -1, gid)
    st = passwd(shipped, "bob")
    assert oct(st.st_mode & 0o7777) == oct(0o640)
    assert st.st_gid == gid
    with open(shipped) as f:
        assert f.read().startswith("# an example, no users\nbob:")


# ------------------------------------------------- INVITE and others


def test_invite_from_our_user_challenged_407(reglab):
    start(reglab)
    bob = registered(reglab, "bob")
    alice = reglab.phone("alice")           # no password
    call = alice.call("sip:bob@example.test")
    r = alice.invite_auth(call)
    check_challenge(r, 407, "proxy-authenticate")
    assert not r.has("www-authenticate")
    call.check_vias(r)
    call.ack(r)
    assert bob.ep.collect(0.3, match(method="INVITE")) == [], \
        "unauthenticated INVITE forwarded"
    assert alice.ep.collect(0.3, call.resp(FINAL)) == [], \
        "the ACK for the 407 was answered (or the 407 retransmitted)"


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_authenticated_call_and_in_dialog_requests(reglab, alg):
    """alice authenticates her INVITE; bob answers; ACK and BYE (either
    direction, following the Record-Route) pass without credentials."""
    start(reglab)
    bob = registered(reglab, "bob")
    alice = reglab.phone("alice", USERS["alice"], algorithm=alg)
    call = alice.call("sip:bob@example.test")
    r = alice.invite_auth(call)
    assert alice.last_challenge is not None and \
        alice.last_challenge.algorithm == alg
    inv = bob.uas.expect("INVITE", call_id=call.call_id)
    assert inv.uri == bob.contact_uri
    assert r.code == 407, r
    ok = answer_call(call, bob, inv)
    assert call.route_set, "no Record-Route in the 200"

    # BYE from the callee back to alice, in dialog, no credentials
    bye_b = UAC(bob.ep, reglab.proxy.addr, uri_of(inv.get("contact")),
                from_uri="sip:bob@example.test")
    bye_b.call_id = call.call_id
    bye_b.from_tag = ok.to_tag
    bye_b.to_uri = alice.aor
    bye_b.to_tag = call.from_tag
    bye_b.remote_target = uri_of(inv.get("contact"))
    bye_b.route_set = inv.values("record-route")
    bye_b.cseq = 100
    bye_b.request("INFO")
    info = alice.uas.expect("INFO", call_id=call.call_id)
    alice.uas.respond(info, 200)
    r = bob.ep.expect(bye_b.resp(None, "INFO"))
    assert r.code == 200, "in-dialog INFO from bob: %r" % r

    call.bye()
    bye = bob.uas.expect("BYE", call_id=call.call_id)
    bob.uas.respond(bye, 200)
    r = alice.ep.expect(call.resp(None, "BYE"))
    assert r.code == 200, r


def test_from_spoofing_403(reglab):
    """Authenticated as alice, From bob@example.test: 403."""
    start(reglab)
    carol = registered(reglab, "carol")
    alice = reglab.phone("alice", USERS["alice"])
    call = UAC(alice.ep, reglab.proxy.addr, "sip:carol@example.test",
               from_uri="sip:bob@example.test")
    assert alice.invite_auth(call).code == 407
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 403, r
    call.ack(r)
    assert carol.ep.collect(0.3, match(method="INVITE")) == []


def test_cancel_and_ack_not_challenged(reglab):
    alice, bob, call, inv = alice_calls_bob(reglab)
    bob.uas.respond(inv, 180)
    call.ep.expect(call.resp(180))
    call.cancel()
    r = call.ep.expect(call.resp(None, "CANCEL"))
    assert r.code == 200, "CANCEL got %r" % r
    cancel = bob.uas.expect("CANCEL", call_id=call.call_id)
    assert cancel.branch == inv.branch
    bob.uas.respond(cancel, 200)
    bob.uas.respond(inv, 487)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 487, r
    call.ack(r)
    assert call.ep.collect(0.3, call.resp(407)) == []


def test_trusted_source_not_challenged(reglab):
    """127.0.0.2 is in auth.trusted: its INVITE From alice@example.test
    goes through without credentials; the same from 127.0.0.1 gets 407."""
    start(reglab, auth={"trusted": ["127.0.0.2/32"]})
    bob = registered(reglab, "bob")
    trunk = reglab.caller("sip:bob@example.test",
                          from_uri="sip:alice@example.test",
                          host="127.0.0.2")
    trunk.invite()
    inv = bob.uas.expect("INVITE", call_id=trunk.call_id)
    bob.uas.respond(inv, 486)
    r = trunk.ep.expect(trunk.resp(NON2XX))
    assert r.code == 486, r
    trunk.ack(r)

    other = reglab.caller("sip:bob@example.test",
                          from_uri="sip:alice@example.test")
    other.invite()
    r = other.ep.expect(other.resp(NON2XX))
    assert r.code == 407, r
    other.ack(r)


def test_stranger_calls_our_user_without_credentials(reglab):
    start(reglab)
    bob = registered(reglab, "bob")
    call = reglab.caller("sip:bob@example.test")   # From eve@elsewhere.test
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id)
    assert inv.uri == bob.contact_uri
    answer_call(call, bob, inv)
    call.bye()
    bob.uas.respond(bob.uas.expect("BYE", call_id=call.call_id), 200)
    assert call.ep.expect(call.resp(None, "BYE")).code == 200


def test_offline_user_480_unknown_user_404(reglab):
    start(reglab)
    call = reglab.caller("sip:bob@example.test")    # known, not registered
    call.invite()
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 480, r
    assert r.reason == "Temporarily Unavailable", r.start
    call.ack(r)
    call = reglab.caller("sip:zed@example.test")    # not in the users file
    invite_refused(call, 404)


def test_no_open_relay_for_strangers(reglab):
    """A stranger's INVITE to a foreign destination: 403, nothing sent;
    alice, authenticated, may call the same destination."""
    start(reglab)
    far = reglab.phone("carol")             # a UAS outside our domain
    dest = "sip:carol@127.0.0.1:%d" % far.ep.port
    call = reglab.caller(dest)
    invite_refused(call, 403, [far])    # relayed to a foreign destination?

    alice = reglab.phone("alice", USERS["alice"])
    call = alice.call(dest)
    alice.invite_auth(call)
    inv = far.uas.expect("INVITE", call_id=call.call_id)
    assert inv.uri == dest
    far.uas.respond(inv, 486)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 486, r
    call.ack(r)


def test_routes_public_only_for_strangers(reglab):
    """A route without public = true is for our (authenticated) users
    only; strangers get 403 there and reach public routes."""
    gw = UAS(reglab.endpoint(), "gw")
    desk = UAS(reglab.endpoint(), "desk")
    routes = ({"user": "^pstn", "targets": ["sip:127.0.0.1:%d" % gw.ep.port]},
              {"user": "^help$", "targets": [
                  "sip:127.0.0.1:%d" % desk.ep.port], "public": True})
    start(reglab, extra="routes = %s;" % lc(routes))

    call = reglab.caller("sip:pstn0123@example.test")
    invite_refused(call, 403, [gw], 0.3)

    call = reglab.caller("sip:help@example.test")
    call.invite()
    inv = desk.ep.expect(match(method="INVITE", call_id=call.call_id))
    desk.respond(inv, 486)
    assert call.ep.expect(call.resp(NON2XX)).code == 486

    alice = reglab.phone("alice", USERS["alice"])
    call = alice.call("sip:pstn0123@example.test")
    alice.invite_auth(call)
    inv = gw.ep.expect(match(method="INVITE", call_id=call.call_id))
    gw.respond(inv, 486)
    assert call.ep.expect(call.resp(NON2XX)).code == 486


def test_other_methods_challenged(reglab):
    """Non-INVITE out-of-dialog requests from our users get 407 too."""
    start(reglab)
    bob = registered(reglab, "bob")
    alice = reglab.phone("alice")
    call = alice.call("sip:bob@example.test")
    call.request("MESSAGE", headers=[("Content-Type", "text/plain")],
                 body=b"hi")
    r = alice.ep.expect(call.resp(None, "MESSAGE"))
    assert r.code == 407, r
    assert challenges(r), r.text()
    assert bob.ep.collect(0.3, match(method="MESSAGE")) == []


def test_from_domain_matched_case_insensitively(reglab):
    """From <sip:alice@EXAMPLE.Test> is still one of ours: 407, not a
    stranger's free pass (host names compare case-insensitively)."""
    start(reglab)
    bob = registered(reglab, "bob")
    call = reglab.caller("sip:bob@example.test",
                         from_uri="sip:alice@EXAMPLE.Test")
    invite_refused(call, 407, [bob], 0.3)


def test_reinvite_in_dialog_not_challenged(reglab):
    """A re-INVITE from alice inside her dialog (To tag, through our
    Record-Route) reaches bob without credentials."""
    alice, bob, call, inv = alice_calls_bob(reglab)
    answer_call(call, bob, inv)
    call.invite()                       # re-INVITE, no Proxy-Authorization
    re = bob.uas.expect("INVITE", call_id=call.call_id)
    assert re.to_tag == bob.uas.tag(inv)
    assert not re.has("proxy-authorization")
    bob.uas.respond(re, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    assert ok.cseq[0] == call.invite_cseq
    call.ack(ok)
    bob.uas.expect("ACK", call_id=call.call_id)


def established_stranger_call(reglab, bob):
    """eve (a stranger) calls bob, who answers; returns (call, 200)."""
    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    ok = answer_call(call, bob, inv)
    assert ok.values("record-route"), "no Record-Route to reuse"
    return call, ok


def reuse_record_route(reglab, ruri, in_dialog=False, gateway=False):
    """eve, a stranger, calls bob (who answers) and so learns our
    Record-Route for that Call-ID; then she INVITEs ruri with that Call-ID
    and that Route, as a new request or (in_dialog) with the dialog's
    tags. With gateway, the proxy has a route ^pstn -> a UAS that is not
    public. Returns (the rogue UAC, the gateway's UAS or None)."""
    gw = None
    if gateway:
        gw = UAS(reglab.endpoint(), "gw")
        routes = ({"user": "^pstn",
                   "targets": ["sip:127.0.0.1:%d" % gw.ep.port]},)
        start(reglab, extra="routes = %s;" % lc(routes))
    else:
        start(reglab)
    bob = registered(reglab, "bob")
    call, ok = established_stranger_call(reglab, bob)
    rogue = UAC(call.ep, reglab.proxy.addr, ruri, from_uri=call.from_uri)
    rogue.call_id = call.call_id
    rogue.cseq = 10
    rogue.route_set = list(reversed(ok.values("record-route")))
    if in_dialog:
        rogue.from_tag = call.from_tag
        rogue.to_tag = ok.to_tag
    rogue.invite()
    return rogue, gw


def test_record_route_reused_outside_dialog_is_not_a_pass(reglab):
    """A new INVITE (no To tag: not in a dialog) reusing eve's Call-ID and
    our Record-Route, to a route that is not public, must still be
    refused (403), never reach the gateway."""
    rogue, gw = reuse_record_route(reglab, "sip:pstn0900@example.test",
                                   gateway=True)
    got = gw.ep.collect(0.5, match(method="INVITE"))
    assert got == [], "a stranger reached a non-public route:\n%s" % (
        got[0].text())
    r = rogue.ep.expect(rogue.resp(NON2XX))
    assert r.code == 403, "out-of-dialog INVITE with a reused " \
        "Record-Route got %r" % r
    rogue.ack(r)


def test_record_route_reused_outside_dialog_no_relay(reglab):
    """The same reuse towards a foreign destination: no open relay."""
    far = UAS(reglab.endpoint(), "carol")
    rogue, _ = reuse_record_route(reglab,
                                  "sip:carol@127.0.0.1:%d" % far.ep.port)
    got = far.ep.collect(0.5, match(method="INVITE"))
    assert got == [], "relayed with a reused Record-Route:\n%s" % (
        got[0].text())
    r = rogue.ep.expect(rogue.resp(NON2XX))
    assert r.code == 403, "relayed with a reused Record-Route: %r" % r
    rogue.ack(r)


def test_route_to_us_without_stamp_is_challenged(reglab):
    """A request that only looks in-dialog (To tag, Route to the proxy,
    no Record-Route of ours behind it) is judged like any other: our
    user gets 407, a stranger to a foreign target 403."""
    start(reglab)
    bob = registered(reglab, "bob")
    px = "<sip:127.0.0.1:%d;lr>" % reglab.proxy.port
    alice = reglab.phone("alice")
    call = alice.call("sip:bob@example.test")
    call.to_tag = "forged"
    call.remote_target = bob.contact_uri
    call.route_set = [px]
    call.request("MESSAGE", headers=[("Content-Type", "text/plain")],
                 body=b"hi")
    r = alice.ep.expect(call.resp(None, "MESSAGE"))
    assert r.code == 407, r
    assert bob.ep.collect(0.3, match(method="MESSAGE")) == []

    eve = reglab.caller(bob.contact_uri)
    eve.to_tag = "forged"
    eve.route_set = [px]
    eve.request("MESSAGE", headers=[("Content-Type", "text/plain")],
                body=b"hi")
    r = eve.ep.expect(eve.resp(None, "MESSAGE"))
    assert r.code == 403, r
    assert bob.ep.collect(0.3, match(method="MESSAGE")) == []


@pytest.mark.parametrize("value", [
    'Digest',
    'Digest username=',
    'Digest username="alice", realm="example.test", nonce="x", '
    'uri="sip:example.test", response="00"',
    'Digest username="alice", realm="example.test", nonce="%s", '
    'uri="sip:example.test", response="%s", qop=auth, nc=zz, '
    'cnonce="c"' % ("0" * 48, "0" * 32),
    'Digest username="al\\"ice", realm="example.test", nonce="' + "f" * 300
    + '", uri="sip:example.test", response="' + "a" * 64 + '"',
    'Basic YWxpY2U6d29uZGVybGFuZA==',
    'Digest ' + ", ".join('p%d="v"' % i for i in range(200)),
])
def test_malformed_authorization(reglab, value):
    """Garbage credentials: 400 or a fresh 401, never a 200, never a
    crash."""
    start(reglab)
    alice = reglab.phone("alice")
    r = alice.send_register(auth=value)
    assert r.code in (400, 401), r
    assert reglab.proxy.alive()
    assert registered(reglab, "alice")


def test_other_realm_credentials_rejected(reglab):
    """A users line for another realm does not authenticate here, and
    credentials computed for another realm are refused."""
    from sip import users_line
    start(reglab, users=[users_line("alice", "other.test", "pw"),
                         users_line("bob", REALM, USERS["bob"])])
    assert reglab.phone("alice", "pw").register().code == 401
    bob = reglab.phone("bob", USERS["bob"])
    ch = pick_challenge(bob.send_register())
    auth = authorization(ch, "REGISTER", "sip:" + REALM, "bob",
                         USERS["bob"], realm="other.test")
    assert bob.send_register(auth=auth).code in (400, 401)
    assert bob.register().code == 200


def test_proxy_authorization_replayed_on_new_call(reglab):
    """alice's Proxy-Authorization copied onto a new call (new Call-ID,
    same nonce and nc): 407, the replay does not reach anyone."""
    alice, bob, call, inv = alice_calls_bob(reglab)
    cred = inv.get("proxy-authorization") or parse(
        call.invite_bytes).get("proxy-authorization")
    bob.uas.respond(inv, 486)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 486
    call.ack(r)

    again = alice.call("sip:bob@example.test")
    again.invite(headers=[("Proxy-Authorization", cred)])
    r = again.ep.expect(again.resp(NON2XX))
    assert r.code == 407, "replayed Proxy-Authorization got %r" % r
    again.ack(r)
    assert bob.ep.collect(0.3, match(method="INVITE")) == []


def test_ack_for_407_absorbed(reglab):
    start(reglab)
    bob = registered(reglab, "bob")
    alice = reglab.phone("alice")
    call = alice.call("sip:bob@example.test")
    r = alice.invite_auth(call)           # ACKs the 407
    assert r.code == 407
    got = bob.ep.collect(0.4)
    assert got == [], "bob got %r" % got


def test_foreign_aor_register_cannot_hijack_our_user(reglab):
    """A stranger REGISTERs To sip:bob@elsewhere.test at our registrar:
    refused, and calls to sip:bob@example.test never reach it."""
    start(reglab)
    bob = registered(reglab, "bob")
    eve = reglab.phone("bob", domain="elsewhere.test")
    req = parse(eve.register_bytes(expires=600))
    raw = req.raw.replace(b"REGISTER sip:elsewhere.test ",
                          b"REGISTER sip:example.test ")
    eve.ep.send(raw, reglab.proxy.addr)
    r = eve.ep.expect(reply_to(parse(raw)))
    assert r.code != 200, "foreign AOR registered:\n%s" % r.text()
    call, inv = stranger_invite(reglab, "sip:bob@example.test", bob)
    assert inv.uri == bob.contact_uri
    assert eve.ep.collect(0.3, match(method="INVITE")) == []


def test_replay_after_restart_rejected(reglab):
    """The nonce secret survives a restart (database), so the nonce-count
    memory must too: a captured Authorization (nc=1) replayed after a
    restart is refused, not accepted as new."""
    start(reglab, registrar=dict(REG, database=True))
    alice = reglab.phone("alice", USERS["alice"])
    ch = pick_challenge(alice.send_register())
    auth1 = alice.auth_for(ch, "REGISTER", "sip:" + REALM, nc=1)
    assert alice.send_register(auth=auth1, expires=600).code == 200
    reglab.restart()
    r = alice.send_register(auth=auth1, expires=0)      # the replay
    assert r.code == 401, "replayed after a restart: %r" % r
    assert list(reglab.phone("alice", USERS["alice"]).query()) == \
        [alice.contact_uri], "the replay removed the binding"


def test_default_algorithms_md5_alone(reglab):
    """Without auth.algorithms the challenge offers MD5 alone (baresip
    1.0 gives up on any SHA-256 challenge, sipsak and SIPp on a SHA-256
    one first: osprey.conf(5)); a SHA-256 answer is refused."""
    reglab.start(users=USERS, registrar=REG)
    alice = reglab.phone("alice")
    r = alice.send_register()
    assert r.code == 401
    assert [c.algorithm for c in challenges(r)] == ["MD5"], r.text()
    ch = pick_challenge(alice.send_register())
    auth = authorization(ch, "REGISTER", "sip:" + REALM, "alice",
                         USERS["alice"], algorithm="SHA-256")
    assert alice.send_register(auth=auth).code == 401
    auth = authorization(pick_challenge(alice.send_register()), "REGISTER",
                         "sip:" + REALM, "alice", USERS["alice"])
    assert alice.send_register(auth=auth).code == 200


@pytest.mark.parametrize("algs", [["MD5", "SHA-256"], ["MD5"], ["SHA-256"]])
def test_algorithms_setting(reglab, algs):
    """auth.algorithms: one challenge per algorithm, in that order; an
    answer with an algorithm not offered is refused."""
    start(reglab, auth={"algorithms": algs})
    alice = reglab.phone("alice")
    r = alice.send_register()
    assert r.code == 401
    assert [c.algorithm for c in challenges(r)] == algs, r.text()
    for alg in ("MD5", "SHA-256"):
        r = alice.send_register()       # a fresh nonce for each try
        ch = pick_challenge(r, alg if alg in algs else None)
        auth = authorization(ch, "REGISTER", "sip:" + REALM, "alice",
                             USERS["alice"], algorithm=alg)
        code = alice.send_register(auth=auth).code
        assert code == (200 if alg in algs else 401), (alg, code)


@pytest.mark.parametrize("from_uri", [
    "sip:alice@example.test:5999",
    "sip:alice@example.test:5060;transport=udp",
    "sip:alice@example.test;user=phone",
])
def test_from_our_domain_with_port_or_params_challenged(reglab, from_uri):
    """A From in our domain is one of ours whatever its port or
    parameters: no credentials, 407; bob never sees a call "from alice"
    that nobody authenticated."""
    start(reglab)
    bob = registered(reglab, "bob")
    call = reglab.caller("sip:bob@example.test", from_uri=from_uri)
    call.invite()
    got = bob.ep.collect(0.5, match(method="INVITE"))
    assert got == [], "unauthenticated From %s reached bob:\n%s" % (
        from_uri, got[0].text())
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code in (403, 407), r
    call.ack(r)


def test_two_domains_two_realms(reglab):
    """domains = [ example.test, other.test ]: each domain is its own
    realm; alice@other.test is another user, with her own password and
    bindings."""
    from sip import users_line
    lines = [users_line("alice", REALM, "pw-example"),
             users_line("alice", "other.test", "pw-other"),
             users_line("bob", REALM, USERS["bob"])]
    start(reglab, users=lines, domains=("example.test", "other.test"))
    a1 = reglab.phone("alice", "pw-example")
    a2 = reglab.phone("alice", "pw-other", domain="other.test")
    r = a2.send_register()
    assert {c.realm for c in challenges(r)} == {"other.test"}, r.text()
    assert reglab.phone("alice", "pw-example",
                        domain="other.test").register().code == 401
    assert a1.register(expires=600).code == 200
    assert a2.register(expires=600).code == 200
    assert list(a1.query()) == [a1.contact_uri]
    assert list(a2.query()) == [a2.contact_uri]
    for ph, uri in ((a1, "sip:alice@example.test"),
                    (a2, "sip:alice@other.test")):
        call = reglab.caller(uri)
        call.invite()
        inv = ph.uas.expect("INVITE", call_id=call.call_id)
        assert inv.uri == ph.contact_uri
        ph.uas.respond(inv, 486)
        call.ack(call.ep.expect(call.resp(NON2XX)))


def test_record_route_reused_with_forged_to_tag_no_route(reglab):
    """The same reuse dressed as in-dialog (a To tag): the pass through
    our Record-Route reaches a dialog's remote target, never a route
    (here one that is not public)."""
    rogue, gw = reuse_record_route(reglab, "sip:pstn0900@example.test",
                                   in_dialog=True, gateway=True)
    got = gw.ep.collect(0.5, match(method="INVITE"))
    assert got == [], "in-dialog pass reached a route:\n%s" % got[0].text()
    r = rogue.ep.recv(2.0, rogue.resp(NON2XX))
    assert r is not None and r.code >= 400, r
    rogue.ack(r)
