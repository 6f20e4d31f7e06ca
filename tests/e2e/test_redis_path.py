"""Reaching a phone through the node that holds it (issue 14 item 2).

Nodes share registrations through a real Redis (test_redis.py's
Cluster).  A phone whose binding is a TCP connection to node A, or a
UDP phone behind a NAT whose pinhole A's socket opened, can only be
reached by A: the binding A writes to Redis carries a route through A
("<sip:pTOKEN@A;lr>", the token a MAC'd name of the flow), and a call
that comes in through another node goes to A along it, and from A over
the phone's flow.  A honours only tokens it made."""

import re
import socket
import time
import uuid

import pytest
from test_redis import (KEY, REDIS, REG, cluster, redis_server,  # noqa: F401
                        wait_for)

from conftest import ctl, free_udp_port
from sip import (NON2XX, SDP, UAC, Phone, build_request, build_response,
                 match, new_branch, parse, uri_of)

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed")


SECRET = "osprey:cluster:secret"
IN_USE = "cluster: the cluster secret is in use"


def node(c, name, host, tcp=False, users=None, redis=None, port=None,
         workdir=None, secret=True):
    """A node of cluster c on host: UDP, and TCP on the same port (port
    and workdir given: an earlier node's, started again); secret False:
    not waiting for the cluster secret."""
    port = port or free_udp_port(host)
    rc = {"address": "127.0.0.1:%d" % c.redis.port, "node_id": name,
          "timeout": c.timeout}
    rc.update(redis or {})
    extra = "redis = { %s };" % " ".join(
        '%s = %s;' % (k, '"%s"' % v if isinstance(v, str) else v)
        for k, v in rc.items())
    listen = [("udp", host, port)] + ([("tcp", host, port)] if tcp else [])
    o = c.factory(port=port, listen=listen, registrar=dict(REG),
                  users=users, extra=extra, workdir=workdir)
    o.addr = (host, port)
    c.nodes[name] = o
    wait_for(lambda: "location loaded from redis" in o.log_text() and
             (IN_USE in o.log_text() or not secret), 5,
             "%s never loaded the location and the secret" % name)
    return o


class TcpPhone:
    """A phone on one TCP connection to a node (raw SIP)."""

    def __init__(self, user, node_addr):
        self.user = user
        self.sock = socket.create_connection(node_addr, timeout=3)
        self.port = self.sock.getsockname()[1]
        self.buf = b""
        self.contact_uri = "sip:%s@127.0.0.1:%d;transport=tcp" % (
            user, self.port)

    def send(self, data):
        self.sock.sendall(data)

    def read(self, timeout=3):
        """The next message on the connection; None when it closed."""
        self.sock.settimeout(timeout)
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if sep:
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":", 1)[1])
                if len(rest) >= n:
                    self.buf = rest[n:]
                    return parse(head + sep + rest[:n])
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, pred, timeout=3):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.read(max(0.05, deadline - time.time()))
            if m is None:
                break
            if pred(m):
                return m
        raise AssertionError("nothing matching on the TCP connection")

    def register(self, expires=600):
        self.send(build_request("REGISTER", "sip:example.test", [
            ("Via", "SIP/2.0/TCP 127.0.0.1:%d;branch=%s;rport"
             % (self.port, new_branch())),
            ("Max-Forwards", "70"),
            ("From", "<sip:%s@example.test>;tag=r1" % self.user),
            ("To", "<sip:%s@example.test>" % self.user),
            ("Call-ID", "reg-%s" % uuid.uuid4().hex),
            ("CSeq", "1 REGISTER"),
            ("Contact", "<%s>" % self.contact_uri),
            ("Expires", str(expires))]))
        return self.expect(match(response=True, cseq_method="REGISTER"))

    def respond(self, req, code, body=b"", to_tag="tcp1"):
        hs = [("Contact", "<%s>" % self.contact_uri)]
        if body:
            hs.append(("Content-Type", "application/sdp"))
        self.send(build_response(req, code, to_tag=to_tag, headers=hs,
                                 body=body))

    def close(self):
        self.sock.close()


def route_of(c, user):
    """The ROUTE line of user's only binding in Redis."""
    h = c.redis.cmd("HGETALL", KEY % user)
    h = [v for f, v in zip(h[::2], h[1::2]) if f != "#v"]
    assert len(h) == 1, h
    lines = h[0].split("\n")
    assert lines[0] == "2" and len(lines) == 14, h[1]
    return lines[13]


def knows(n, what):
    return what in ctl(n, "registrations")


def rr_hosts(msg):
    return [re.search(r"@?(127\.0\.0\.\d+)", v).group(1)
            for v in msg.values("record-route")]


def test_tcp_phone_called_through_b(cluster):
    """alice registers on A over TCP: Redis holds a route through A; a
    call through B arrives on her connection with B's and A's
    Record-Route; the ACK and the caller's BYE follow; a second call is
    ended by alice's BYE over her connection, back through A and B."""
    c = cluster()
    a = node(c, "A", "127.0.0.2", tcp=True)
    b = node(c, "B", "127.0.0.3")
    alice = TcpPhone("alice", a.addr)
    assert alice.register().code == 200
    route = route_of(c, "alice")
    assert route.startswith("<sip:p") and \
        "@127.0.0.2:%d;transport=udp;lr>" % a.addr[1] in route, route
    wait_for(lambda: knows(b, alice.contact_uri), 3, "B never learnt alice")

    call = UAC(c.endpoint(), b.addr, "sip:alice@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = alice.expect(match(method="INVITE", call_id=call.call_id))
    assert inv.uri == alice.contact_uri, inv.start
    assert "127.0.0.3" in rr_hosts(inv) and "127.0.0.2" in rr_hosts(inv), \
        inv.values("record-route")
    assert inv.values("route") == [], inv.values("route")
    assert len(inv.vias) == 3, inv.vias      # caller, B, A
    alice.respond(inv, 180)
    call.ep.expect(call.resp(180))
    alice.respond(inv, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    call.ack(ok)
    alice.expect(match(method="ACK", call_id=call.call_id))
    call.bye()
    bye = alice.expect(match(method="BYE", call_id=call.call_id))
    alice.send(build_response(bye, 200))
    call.ep.expect(call.resp(200, "BYE"))

    # Second call: alice hangs up, over her connection.
    call = UAC(c.endpoint(), b.addr, "sip:alice@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = alice.expect(match(method="INVITE", call_id=call.call_id))
    alice.respond(inv, 200, body=SDP, to_tag="tcp2")
    ok = call.ep.expect(call.resp(200))
    call.ack(ok)
    alice.expect(match(method="ACK", call_id=call.call_id))
    hs = [("Via", "SIP/2.0/TCP 127.0.0.1:%d;branch=%s;rport"
           % (alice.port, new_branch())),
          ("Max-Forwards", "70"),
          ("From", inv.get("to") + ";tag=tcp2"),
          ("To", inv.get("from")),
          ("Call-ID", call.call_id), ("CSeq", "1 BYE")]
    hs += [("Route", r) for r in inv.values("record-route")]
    alice.send(build_request("BYE", uri_of(inv.get("contact")), hs))
    bye = call.ep.expect(match(method="BYE", call_id=call.call_id))
    assert bye.src == b.addr, bye.src
    call.ep.send(build_response(bye, 200), bye.src)
    r = alice.expect(match(response=True, cseq_method="BYE"))
    assert r.code == 200, r
    alice.close()


def test_cancel_through_c_reaches_tcp_phone(cluster):
    """A call to a TCP phone of A through C, CANCELed: the CANCEL reaches
    the phone on its connection; the caller ends with 487."""
    c = cluster()
    a = node(c, "A", "127.0.0.2", tcp=True)
    node(c, "B", "127.0.0.3")
    third = node(c, "C", "127.0.0.4")
    dan = TcpPhone("dan", a.addr)
    assert dan.register().code == 200
    wait_for(lambda: knows(third, dan.contact_uri), 3, "C never learnt dan")
    call = UAC(c.endpoint(), third.addr, "sip:dan@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = dan.expect(match(method="INVITE", call_id=call.call_id))
    dan.respond(inv, 180)
    call.ep.expect(call.resp(180))
    call.cancel()
    assert call.ep.expect(call.resp(None, "CANCEL")).code == 200
    cn = dan.expect(match(method="CANCEL", call_id=call.call_id))
    assert cn.branch == inv.branch
    dan.send(build_response(cn, 200))
    dan.respond(inv, 487)
    dan.expect(match(method="ACK", call_id=call.call_id))
    final = call.ep.expect(call.resp(NON2XX))
    assert final.code == 487, final
    call.ack(final)
    dan.close()


def test_nat_phone_reached_through_a(cluster):
    """bob, behind a "NAT" (his Contact names another port than the one
    his REGISTER came from), registers on A: a call through B comes to
    his NAT address from A's socket, not from B's; the BYE too."""
    c = cluster()
    a = node(c, "A", "127.0.0.2")
    b = node(c, "B", "127.0.0.3")
    bob = Phone(c.endpoint(), a.addr, "bob")
    contact = "sip:bob@127.0.0.1:%d" % free_udp_port()
    assert bob.register(contacts=["<%s>" % contact],
                        expires=600).code == 200
    assert route_of(c, "bob").startswith("<sip:p")
    wait_for(lambda: knows(b, contact), 3, "B never learnt bob")
    call = UAC(c.endpoint(), b.addr, "sip:bob@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == a.addr, inv.src
    assert inv.uri == contact, inv.start
    bob.uas.respond(inv, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    call.ack(ok)
    ack = bob.uas.expect("ACK", call_id=call.call_id)
    assert ack.src == a.addr, ack.src
    call.bye()
    bye = bob.uas.expect("BYE", call_id=call.call_id)
    assert bye.src == a.addr, bye.src
    bob.uas.respond(bye, 200)
    call.ep.expect(call.resp(200, "BYE"))


def nat_phone(c, user, n):
    """user, behind a "NAT", registered on node n: (phone, contact)."""
    p = Phone(c.endpoint(), n.addr, user)
    contact = "sip:%s@127.0.0.1:%d" % (user, free_udp_port())
    assert p.register(contacts=["<%s>" % contact], expires=600).code == 200
    assert route_of(c, user).startswith("<sip:p")
    return p, contact


def test_a_restarted_nat_phone_still_reached_through_b(cluster):
    """bob, behind a NAT, registers on A.  A is stopped (SIGTERM) and
    started again on the same address and port (the same node_uri): B's
    stored route to bob, whose token A's first run made, is taken by the
    second (the token's key comes from the cluster secret, not from the
    run), and a call through B reaches bob from A's socket without bob
    registering again; the BYE too."""
    c = cluster()
    a = node(c, "A", "127.0.0.2")
    b = node(c, "B", "127.0.0.3")
    bob, contact = nat_phone(c, "bob", a)
    route = route_of(c, "bob")
    wait_for(lambda: knows(b, contact), 3, "B never learnt bob")
    assert a.stop() == 0, a.log_text()
    a = node(c, "A", "127.0.0.2", port=a.addr[1], workdir=a.workdir)
    assert route_of(c, "bob") == route
    call = UAC(c.endpoint(), b.addr, "sip:bob@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == a.addr, inv.src
    assert inv.uri == contact, inv.start
    bob.uas.respond(inv, 200, body=SDP)
    ok = call.ep.expect(call.resp(200))
    call.ack(ok)
    assert bob.uas.expect("ACK", call_id=call.call_id).src == a.addr
    call.bye()
    bye = bob.uas.expect("BYE", call_id=call.call_id)
    assert bye.src == a.addr, bye.src
    bob.uas.respond(bye, 200)
    call.ep.expect(call.resp(200, "BYE"))


def test_tokens_made_before_the_secret_are_written_again(cluster):
    """A starts without the cluster secret (its Redis user may not touch
    osprey:cluster:secret, a warning): bob, behind a NAT, registers on A
    and his route carries a token of A's run key.  Once A reads the
    secret (the user may, A's connections cut), A writes bob's binding
    again with a token of the cluster's key; A restarted takes the route
    B holds: a call through B reaches bob without his registering
    again."""
    c = cluster()
    b = node(c, "B", "127.0.0.3")
    assert c.redis.cmd("ACL", "SETUSER", "early", "on", ">pw",
                       "~osprey:loc:*", "&*", "+@all") == "OK"
    user = {"user": "early", "password": "pw"}
    a = node(c, "A", "127.0.0.2", redis=user, secret=False)
    wait_for(lambda: "cluster: " + SECRET + " not read" in a.log_text(),
             5, "A read the secret")
    assert IN_USE not in a.log_text()
    bob, contact = nat_phone(c, "bob", a)
    early = route_of(c, "bob")

    assert c.redis.cmd("ACL", "SETUSER", "early", "~osprey:cluster:*") \
        == "OK"
    c.redis.cmd("CLIENT", "KILL", "USER", "early")
    wait_for(lambda: IN_USE in a.log_text(), 5, "A never read the secret")
    wait_for(lambda: route_of(c, "bob") != early, 5,
             "A never wrote bob again")
    assert "cluster secret read: re-published 1 binding(s)" in \
        a.log_text()
    route = route_of(c, "bob")
    tok = re.match(r"<sip:(p[0-9a-f]+)@", route).group(1)
    wait_for(lambda: tok in ctl(b, "-j", "registrations", "bob"), 3,
             "B never read bob's new route")

    assert a.stop() == 0, a.log_text()
    a = node(c, "A", "127.0.0.2", redis=user, port=a.addr[1],
             workdir=a.workdir)
    assert route_of(c, "bob") == route
    call = UAC(c.endpoint(), b.addr, "sip:bob@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == a.addr, inv.src
    bob.uas.respond(inv, 486)
    call.ack(call.ep.expect(call.resp(486)))


def stranger_invite(c, n, to, route):
    """A stranger's INVITE to n for Request-URI to along route: its
    endpoint and Call-ID."""
    ep = c.endpoint()
    cid = "stranger-%s" % uuid.uuid4().hex
    ep.send(build_request("INVITE", to, [
        ("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport"
         % (ep.port, new_branch())),
        ("Route", route),
        ("Max-Forwards", "70"),
        ("From", "<sip:mallory@elsewhere.test>;tag=m1"),
        ("To", "<sip:bob@example.test>"),
        ("Call-ID", cid), ("CSeq", "1 INVITE"),
        ("Contact", "<sip:mallory@127.0.0.1:%d>" % ep.port)], SDP), n.addr)
    return ep, cid


def final(ep, cid):
    return ep.expect(match(call_id=cid, code=range(200, 700)), 3)


def test_token_of_another_cluster_secret_refused(cluster):
    """bob, behind a NAT, registered on A and reached through B.  The
    cluster secret is replaced in Redis and every node's connection cut:
    each reads the new one (a notice).  A request along the route A wrote
    (its token MAC'd under the old secret's key) is refused by A: 403,
    bob hears nothing.  A writes bob's binding again with a token of the
    new key, and a call through B reaches him without his registering
    again."""
    c = cluster()
    a = node(c, "A", "127.0.0.2")
    b = node(c, "B", "127.0.0.3")
    bob, contact = nat_phone(c, "bob", a)
    old = route_of(c, "bob")
    tok = re.match(r"<sip:(p[0-9a-f]+)@", old).group(1)
    wait_for(lambda: tok in ctl(b, "-j", "registrations", "bob"), 3,
             "B never learnt bob's route")
    ep, cid = stranger_invite(c, a, contact, old)    # A's route: taken
    bob.uas.respond(bob.uas.expect("INVITE", call_id=cid, timeout=3), 486)
    assert final(ep, cid).code == 486

    assert c.redis.cmd("SET", SECRET, "5e" * 32) == "OK"
    c.redis.cmd("CLIENT", "KILL", "TYPE", "normal")
    for n in (a, b):
        wait_for(lambda: "cluster: the cluster secret changed gen=2" in
                 n.log_text(), 5, "the new secret not read")
    ep, cid = stranger_invite(c, a, contact, old)
    r = final(ep, cid)
    assert r.code == 403, r
    assert bob.ep.collect(0.3, match(method="INVITE", call_id=cid)) == []

    wait_for(lambda: "cluster secret changed: re-published 1 binding(s)"
             in a.log_text(), 5, "A never wrote bob again")
    new = route_of(c, "bob")
    assert new != old
    assert c.redis.cmd("GET", SECRET) == "5e" * 32
    tok = re.match(r"<sip:(p[0-9a-f]+)@", new).group(1)
    wait_for(lambda: tok in ctl(b, "-j", "registrations", "bob"), 3,
             "B never read bob's new route")
    call = UAC(c.endpoint(), b.addr, "sip:bob@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = bob.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == a.addr, inv.src
    bob.uas.respond(inv, 486)
    call.ack(call.ep.expect(call.resp(486)))


def test_udp_phone_with_public_address_direct(cluster):
    """A UDP phone that is no NAT's gets no route: B calls it directly
    (redis.via_node = "auto")."""
    c = cluster()
    a = node(c, "A", "127.0.0.2")
    b = node(c, "B", "127.0.0.3")
    carol = Phone(c.endpoint(), a.addr, "carol")
    assert carol.register(expires=600).code == 200
    assert route_of(c, "carol") == ""
    wait_for(lambda: knows(b, carol.contact_uri), 3, "B never learnt carol")
    call = UAC(c.endpoint(), b.addr, "sip:carol@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = carol.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == b.addr, inv.src
    carol.uas.respond(inv, 486)
    call.ep.expect(call.resp(486))


def test_connection_gone_flow_failed(cluster):
    """alice's connection to A closes: a call through B goes to A, which
    answers 430 Flow Failed (RFC 5626 5.3); the caller gets it."""
    c = cluster()
    a = node(c, "A", "127.0.0.2", tcp=True)
    b = node(c, "B", "127.0.0.3")
    alice = TcpPhone("alice", a.addr)
    assert alice.register().code == 200
    wait_for(lambda: knows(b, alice.contact_uri), 3, "B never learnt alice")
    alice.close()
    time.sleep(0.3)
    call = UAC(c.endpoint(), b.addr, "sip:alice@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    r = call.ep.expect(call.resp(NON2XX), timeout=5)
    assert r.code == 430 and r.reason == "Flow Failed", r
    call.ack(r)
    assert re.search(r"proxy %s: INVITE rejected code=430" %
                     re.escape(call.call_id), a.log_text()), \
        a.log_text()[-2000:]


def test_peer_not_challenged_stranger_refused(cluster):
    """With digest authentication on every node: bob (ours) calls alice
    through B, B challenges him; A takes B's request along its route
    without a challenge of its own.  A stranger that sends A the same
    request with a route whose token A did not make (a byte of its MAC
    changed, or an unknown token) is refused, and alice hears nothing."""
    c = cluster()
    users = {"alice": "pa", "bob": "pb"}
    a = node(c, "A", "127.0.0.2", users=users)
    b = node(c, "B", "127.0.0.3", users=users)
    alice = Phone(c.endpoint(), a.addr, "alice", password="pa")
    contact = "sip:alice@127.0.0.1:%d" % free_udp_port()
    assert alice.register(contacts=["<%s>" % contact],
                          expires=600).code == 200
    route = route_of(c, "alice")
    wait_for(lambda: knows(b, contact), 3, "B never learnt alice")
    bob = Phone(c.endpoint(), b.addr, "bob", password="pb")
    call = bob.call("sip:alice@example.test")
    assert bob.invite_auth(call).code == 407
    inv = alice.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == a.addr, inv.src
    alice.uas.respond(inv, 486)
    r = bob.ep.expect(call.resp(NON2XX))
    assert r.code == 486, r
    call.ack(r)
    assert "INVITE from bob@example.test challenged" not in a.log_text()

    tok = re.match(r"<sip:(p[0-9a-f]+)@", route).group(1)
    forged = tok[:-1] + ("0" if tok[-1] != "0" else "1")
    stranger = c.endpoint()
    for t in (forged, "p0201" + "0" * 30):
        cid = "forged-%s" % uuid.uuid4().hex
        stranger.send(build_request("INVITE", contact, [
            ("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport"
             % (stranger.port, new_branch())),
            ("Route", route.replace(tok, t)),
            ("Max-Forwards", "70"),
            ("From", "<sip:mallory@elsewhere.test>;tag=m1"),
            ("To", "<sip:alice@example.test>"),
            ("Call-ID", cid), ("CSeq", "1 INVITE"),
            ("Contact", "<sip:mallory@127.0.0.1:%d>" % stranger.port)],
            SDP), a.addr)
        r = stranger.expect(match(call_id=cid, code=range(300, 700)),
                            timeout=3)
        assert r.code == 403, r
        got = alice.ep.collect(0.3, match(method="INVITE", call_id=cid))
        assert got == [], got[0].text()


def test_redis_value_version_1_still_read(cluster):
    """A value written by a node of the version before (no ROUTE line) is
    still understood: a call through B reaches the phone directly."""
    c = cluster()
    b = node(c, "B", "127.0.0.3")
    ep = c.endpoint()
    contact = "sip:old@127.0.0.1:%d" % ep.port
    exp = int(time.time() * 1000) + 600000
    value = "\n".join(["1", str(exp), "A", "127.0.0.1:%d" % ep.port,
                       "127.0.0.2:5060", "0", "1", "1000", contact, "", "",
                       "cid-old", "old-phone"])
    c.redis.cmd("HSET", KEY % "old", "c:" + contact, value)
    c.redis.cmd("PUBLISH", "osprey:loc", "A old@example.test")
    wait_for(lambda: knows(b, contact), 3, "B never read the old value")
    call = UAC(c.endpoint(), b.addr, "sip:old@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = ep.expect(match(method="INVITE", call_id=call.call_id), 3)
    assert inv.src == b.addr, inv.src


def test_via_node_always_and_never(cluster):
    """redis.via_node "always" on A: even a UDP phone with a public
    address is called through A; "never" on C: a TCP phone of C gets no
    route (B then cannot reach it: its connection is C's)."""
    c = cluster()
    a = node(c, "A", "127.0.0.2", redis={"via_node": "always"})
    b = node(c, "B", "127.0.0.3")
    third = node(c, "C", "127.0.0.4", tcp=True, redis={"via_node": "never"})
    carol = Phone(c.endpoint(), a.addr, "carol")
    assert carol.register(expires=600).code == 200
    assert route_of(c, "carol").startswith("<sip:p")
    wait_for(lambda: knows(b, carol.contact_uri), 3, "B never learnt carol")
    call = UAC(c.endpoint(), b.addr, "sip:carol@example.test",
               from_uri="sip:eve@elsewhere.test")
    call.invite()
    inv = carol.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    assert inv.src == a.addr, inv.src
    carol.uas.respond(inv, 486)
    call.ep.expect(call.resp(486))

    dave = TcpPhone("dave", third.addr)
    assert dave.register().code == 200
    assert route_of(c, "dave") == ""
    dave.close()
