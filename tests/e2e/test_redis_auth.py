"""Digest state shared through Redis (registrar.backend = "redis", issue
14 item 3): the nonce key (derived from the cluster secret,
osprey:cluster:secret) and the nonce-count high-water of every nonce used
(osprey:auth:nc:{nonce}), so that a challenge from one node answered to
another works and a replay to a third is refused - at once, checked in
Redis, not once a copy catches up.

A real redis-server and three nodes on 127.0.0.2-4, each with the same
users file; phones and callers on 127.0.0.1.  The nodes that handle
INVITEs run two worker loops (each with its own Redis connection)."""

import os
import signal
import time

import pytest

from test_redis import (KEY, REG, REDIS, Cluster, free_tcp_port,  # noqa
                        redis_server, wait_for)
from conftest import ctl, ctl_stats, free_udp_port
from sip import NON2XX, Phone, challenges, match, parse, pick_challenge

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed")

REALM = "example.test"
USERS = {"alice": "wonderland", "bob": "builder"}
AUTH = {"nonce_expiry": 300, "algorithms": ["SHA-256", "MD5"]}
SECRET = "osprey:cluster:secret"
MADE = "cluster: wrote osprey:cluster:secret (made here)"
IN_USE = "cluster: the cluster secret is in use"
SHARED = "auth: nonce secret shared through redis"


def node(c, name, host, workers=2, wait=True, more=""):
    """A node of cluster c with authentication (USERS)."""
    port = free_udp_port(host)
    o = c.factory(port=port, listen=[("udp", host, port)],
                  registrar=dict(REG), users=USERS, auth=dict(AUTH),
                  extra='redis = { address = "127.0.0.1:%d"; node_id = '
                  '"%s"; };\nworkers = %d;\n%s' % (c.redis.port, name, workers,
                                                    more))
    o.addr = (host, port)
    c.nodes[name] = o
    if wait:
        wait_for(lambda: SHARED in o.log_text(), 5,
                 "%s never read the shared secret" % name)
    return o


@pytest.fixture
def lab(osprey_factory, redis_server):
    c = Cluster(osprey_factory, redis_server())
    yield c
    c.close()


def phone(c, user, n):
    return Phone(c.endpoint(), n.addr, user, USERS[user])


def send_register(p, n, **kw):
    p.proxy = n.addr
    return p.send_register(**kw)


def challenged(p, n):
    """p's REGISTER to n without credentials: 401; the challenge."""
    r = send_register(p, n)
    assert r.code == 401, r.text()
    return pick_challenge(r)


def answered(p, ch, n, nc=1, expires=600):
    """p's REGISTER to n answering ch with nonce-count nc: the response."""
    return send_register(p, n, auth=p.auth_for(ch, "REGISTER",
                                               "sip:" + REALM, nc=nc),
                         expires=expires)


def invite_challenged(p, n, to="sip:bob@example.test"):
    """p's call to `to` through n, challenged (407, ACKed): the call and
    Proxy-Authorization for it (nc=1)."""
    call = p.call(to, proxy=n.addr)
    call.invite()
    r = call.ep.expect(call.resp(407))
    call.ack(r)
    return call, p.auth_for(pick_challenge(r), "INVITE", call.ruri, nc=1)


def stat(n, name):
    return int(ctl_stats(n)[name])


def stale(r):
    return [ch.stale for ch in challenges(r)]


# ----------------------------------------------------------- REGISTER


def test_register_challenged_by_a_answered_to_b_replay_to_c(lab):
    """alice's REGISTER challenged by A (401), answered to B: 200, stored.
    The same Authorization (nonce, nc=1) replayed to C: 401 without
    stale (as one node answers a replay), nothing removed; to B again:
    401.  nc=2 of the same nonce on C: 200."""
    a = node(lab, "A", "127.0.0.2", workers=1)
    b = node(lab, "B", "127.0.0.3", workers=1)
    cn = node(lab, "C", "127.0.0.4", workers=1)
    assert lab.redis.cmd("STRLEN", SECRET) == 64
    alice = phone(lab, "alice", a)
    ch = challenged(alice, a)
    auth1 = alice.auth_for(ch, "REGISTER", "sip:" + REALM, nc=1)
    r = send_register(alice, b, auth=auth1, expires=600)
    assert r.code == 200, r.text()
    assert lab.redis.cmd("EXISTS", KEY % "alice") == 1
    assert lab.redis.cmd("GET", "osprey:auth:nc:{%s}" % ch.nonce) == "1"
    ttl = lab.redis.cmd("TTL", "osprey:auth:nc:{%s}" % ch.nonce)
    assert 300 < ttl <= 360, ttl

    r = send_register(alice, cn, auth=auth1, expires=0)     # the replay
    assert r.code == 401, "replay to C accepted: %s" % r.text()
    assert stale(r) == [False, False], r.text()
    assert lab.redis.cmd("EXISTS", KEY % "alice") == 1, "replay unbound"
    r = send_register(alice, b, auth=auth1, expires=0)
    assert r.code == 401, "replay to B accepted: %s" % r.text()
    r = answered(alice, ch, cn, nc=2)
    assert r.code == 200, r.text()
    assert stat(cn, "auth.nc_shared") >= 2
    assert stat(b, "auth.failures") >= 1


def test_register_retransmitted_while_checked(lab):
    """A REGISTER and its retransmission sent at once to B: one 200 (the
    server transaction absorbed the second while Redis counted the
    nonce: no replay refused), a third copy later gets the 200 again,
    and the nonce was counted once."""
    a = node(lab, "A", "127.0.0.2", workers=1)
    b = node(lab, "B", "127.0.0.3", workers=1)
    alice = phone(lab, "alice", a)
    ch = challenged(alice, a)
    auth = alice.auth_for(ch, "REGISTER", "sip:" + REALM, nc=1)
    req = parse(alice.register_bytes(auth=auth, expires=600))
    alice.ep.send(req.raw, b.addr)
    alice.ep.send(req.raw, b.addr)
    got = alice.ep.collect(1.0, match(call_id=req.call_id))
    assert [m.code for m in got] == [200], [m.code for m in got]
    alice.ep.send(req.raw, b.addr)
    assert alice.ep.expect(match(call_id=req.call_id)).code == 200
    assert stat(b, "auth.nc_shared") == 1
    assert stat(b, "auth.failures") == 0


# ------------------------------------------------------------- INVITE


def test_invite_challenged_by_b_answered_to_c_replay_to_a(lab):
    """bob registers on A.  alice's INVITE challenged by B (407); the
    INVITE again with Proxy-Authorization, to C: it reaches bob.  The
    same credentials on a new call to A: 407, bob gets nothing."""
    a = node(lab, "A", "127.0.0.2")
    b = node(lab, "B", "127.0.0.3")
    cn = node(lab, "C", "127.0.0.4")
    bob = phone(lab, "bob", a)
    assert bob.register(expires=600).code == 200
    wait_for(lambda: "bob@example.test" in ctl(cn, "registrations"), 3,
             "C never learnt bob")
    alice = phone(lab, "alice", b)
    call, cred = invite_challenged(alice, b)     # by B
    call.proxy = cn.addr
    call.invite(headers=[("Proxy-Authorization", cred)])
    inv = bob.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    bob.uas.respond(inv, 486)
    r = call.ep.expect(call.resp(NON2XX))
    assert r.code == 486, r.text()
    call.ack(r)

    again = alice.call("sip:bob@example.test", proxy=a.addr)
    again.invite(headers=[("Proxy-Authorization", cred)])
    r = again.ep.expect(match(code=range(101, 700), call_id=again.call_id,
                              cseq_method="INVITE"), 3.0)
    assert r.code == 407, "replay to A: %s" % r.text()
    assert stale(r) == [False, False], r.text()
    assert bob.ep.collect(0.3, match(method="INVITE",
                                     call_id=again.call_id)) == []
    assert stat(cn, "auth.nc_shared") >= 1
    assert stat(a, "auth.nc_shared") >= 1


def test_invite_cancelled_while_its_count_is_in_redis(lab):
    """Redis paused (CLIENT PAUSE): alice's authenticated INVITE waits
    for its nonce-count; a retransmission is absorbed, her CANCEL gets
    200 and the INVITE 487 at once; once Redis answers, the INVITE does
    not go on to bob."""
    a = node(lab, "A", "127.0.0.2")
    b = node(lab, "B", "127.0.0.3")
    bob = phone(lab, "bob", a)
    assert bob.register(expires=600).code == 200
    wait_for(lambda: "bob@example.test" in ctl(b, "registrations"), 3,
             "B never learnt bob")
    alice = phone(lab, "alice", b)
    call, cred = invite_challenged(alice, b)
    assert lab.redis.cmd("CLIENT", "PAUSE", "600") == "OK"
    call.invite(headers=[("Proxy-Authorization", cred)])
    call.resend_invite()
    time.sleep(0.1)
    assert call.ep.collect(0.1, match(call_id=call.call_id)) == []
    call.cancel()
    got = call.ep.collect(0.3, match(call_id=call.call_id))
    assert {(m.code, m.cseq_method) for m in got} == \
        {(200, "CANCEL"), (487, "INVITE")}, got
    call.ack([m for m in got if m.code == 487][0])
    time.sleep(0.6)                             # Redis answers
    assert bob.ep.collect(0.3, match(method="INVITE",
                                     call_id=call.call_id)) == []
    assert "a request authenticated is gone" in b.log_text()


def test_stop_with_counts_waiting(lab):
    """The node stops while Redis (stopped) holds the nonce-counts of a
    REGISTER and of an INVITE: the REGISTER is answered 500, the INVITE
    503, neither goes on, and the daemon exits cleanly."""
    a = node(lab, "A", "127.0.0.2")
    b = node(lab, "B", "127.0.0.3")
    bob = phone(lab, "bob", a)
    assert bob.register(expires=600).code == 200
    wait_for(lambda: "bob@example.test" in ctl(b, "registrations"), 3,
             "B never learnt bob")
    alice = phone(lab, "alice", b)
    ch = challenged(alice, b)
    call, cred = invite_challenged(alice, b)
    os.kill(lab.redis.proc.pid, signal.SIGSTOP)
    try:
        req = parse(alice.register_bytes(expires=600, auth=alice.auth_for(
            ch, "REGISTER", "sip:" + REALM)))
        alice.ep.send(req.raw, b.addr)
        call.invite(headers=[("Proxy-Authorization", cred)])
        assert alice.ep.collect(0.3, match(call_id=req.call_id)) == []
        assert call.ep.collect(0.1, match(call_id=call.call_id)) == []
        assert b.stop() == 0, b.log_text()
        got = alice.ep.collect(0.5, match(code=range(200, 700)))
        codes = {(m.cseq_method, m.code) for m in got}
        assert codes == {("REGISTER", 500), ("INVITE", 503)}, got
    finally:
        os.kill(lab.redis.proc.pid, signal.SIGCONT)
    assert bob.ep.collect(0.3, match(method="INVITE",
                                     call_id=call.call_id)) == []


# ------------------------------------------------------- start orders


def test_one_cluster_secret_nonces_cross_nodes(lab):
    """Registrations and dialogs both shared through Redis: it holds one
    secret, osprey:cluster:secret (64 hex digits), and neither key of
    before (osprey:auth:secret, osprey:dlg:secret); each node logged it
    in use; a nonce of A answered to B works, and one of B's to A."""
    more = 'dialog = { backend = "redis"; };'
    a = node(lab, "A", "127.0.0.2", workers=1, more=more)
    b = node(lab, "B", "127.0.0.3", workers=1, more=more)
    for n in (a, b):
        assert n.log_text().count(IN_USE) == 1, n.log_text()
    assert lab.redis.cmd("STRLEN", SECRET) == 64
    assert lab.redis.cmd("EXISTS", "osprey:auth:secret",
                         "osprey:dlg:secret") == 0
    alice = phone(lab, "alice", a)
    for first, second in ((a, b), (b, a)):
        r = answered(alice, challenged(alice, first), second)
        assert r.code == 200, r.text()



def test_nodes_started_in_either_order_share_the_secret(lab):
    """A starts first and makes the secret; B, started later, reads it:
    A's nonces work on B and B's on A.  A node started while Redis is
    down makes its nonces with its own secret (another node answers them
    stale), and with the shared one once Redis is up."""
    a = node(lab, "A", "127.0.0.2", workers=1)
    secret = lab.redis.cmd("GET", SECRET)
    assert MADE in a.log_text()
    b = node(lab, "B", "127.0.0.3", workers=1)
    assert MADE not in b.log_text()
    assert lab.redis.cmd("GET", SECRET) == secret
    alice = phone(lab, "alice", a)
    for first, second in ((a, b), (b, a)):
        r = answered(alice, challenged(alice, first), second)
        assert r.code == 200, r.text()

    lab.redis.kill()
    late = node(lab, "C", "127.0.0.4", workers=1, wait=False)
    ch = challenged(alice, late)
    lab.redis.start()
    wait_for(lambda: SHARED in late.log_text(), 10, "C never shared")
    # B is back too: its own reconnection, the same secret (SET NX).
    wait_for(lambda: b.log_text().count(SHARED) >= 2, 10, "B not back")
    r = answered(alice, ch, b)
    assert r.code == 401 and stale(r) == [True, True], r.text()
    r = answered(alice, challenged(alice, late), b)
    assert r.code == 200, r.text()


# --------------------------------------------------------- Redis down


def test_redis_down_register_500_invite_counted_locally(lab):
    """Redis killed: a REGISTER with good credentials gets 500 with
    Retry-After (its nonce-count cannot be checked, and it could not be
    stored).  An INVITE challenged by B and answered to B still goes
    through, its nonce-count checked on B alone (counted), and its
    replay to B is refused; credentials of A's nonce answered to B: 407
    stale (B cannot count them), and with B's own nonce the call goes."""
    a = node(lab, "A", "127.0.0.2")
    b = node(lab, "B", "127.0.0.3")
    bob = phone(lab, "bob", a)
    assert bob.register(expires=600).code == 200
    wait_for(lambda: "bob@example.test" in ctl(b, "registrations"), 3,
             "B never learnt bob")
    alice = phone(lab, "alice", a)
    ch_a = challenged(alice, a)
    call0 = alice.call("sip:bob@example.test", proxy=a.addr)
    r = alice.invite_auth(call0)
    assert r.code == 407
    ch_a_inv = alice.last_challenge

    lab.redis.kill()
    wait_for(lambda: b.log_text().count("redis auth") >= 2 and
             "redis auth: down" in a.log_text(), 3, "Redis not seen gone")
    time.sleep(0.2)
    r = answered(alice, ch_a, a)
    assert r.code == 500, r.text()
    assert int(r.get("retry-after")) > 0, r.text()
    assert stat(a, "auth.nc_unavailable") >= 1

    call = alice.call("sip:bob@example.test", proxy=b.addr)
    r = alice.invite_auth(call)
    assert r.code == 407, r.text()
    inv = bob.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    bob.uas.respond(inv, 486)
    r = call.ep.expect(call.resp(NON2XX))
    call.ack(r)
    assert stat(b, "auth.nc_local") >= 1
    assert "nonce-counts checked on this node only" in b.log_text()
    cred = alice.auth_for(alice.last_challenge, "INVITE", call.ruri, nc=1)
    again = alice.call("sip:bob@example.test", proxy=b.addr)
    again.invite(headers=[("Proxy-Authorization", cred)])
    r = again.ep.expect(match(code=range(101, 700), call_id=again.call_id,
                              cseq_method="INVITE"), 3.0)
    assert r.code == 407 and stale(r) == [False, False], r.text()

    cred = alice.auth_for(ch_a_inv, "INVITE", "sip:bob@example.test")
    other = alice.call("sip:bob@example.test", proxy=b.addr)
    other.invite(headers=[("Proxy-Authorization", cred)])
    r = other.ep.expect(match(code=range(101, 700), call_id=other.call_id,
                              cseq_method="INVITE"), 3.0)
    assert r.code == 407 and stale(r) == [True, True], r.text()
    got = bob.ep.collect(0.3, match(method="INVITE"))
    assert [m for m in got if m.call_id in (again.call_id,
                                            other.call_id)] == [], got
