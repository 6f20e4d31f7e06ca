"""Several ospreyd nodes sharing registrations through a real Redis
(registrar.backend = "redis", issue 14 items 1 and 5).

Each test starts its own redis-server on a free loopback port and two or
three nodes on 127.0.0.2, 127.0.0.3, 127.0.0.4; phones (tests/e2e/sip.py)
register on one node, calls come in through another.  Redis is read
back with a small RESP client of our own (redisresp.py, which the
benchmarks use too) to see what the nodes wrote, and watched with MONITOR
to see what they asked.
Skipped when redis-server is not installed."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import tempfile
import time

import pytest
from test_metrics import metrics_conf, scrape

from conftest import TOP, ctl, ctl_stats, free_udp_port
from peers import interop
from redisresp import Resp, resp_encode  # noqa: F401 (others import them)
from sip import (NON2XX, UAC, Endpoint, Phone, answer_call, invite_refused,
                 match, new_branch, parse, reply_to)

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed")

REG = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600,
       "backend": "redis"}
KEY = "osprey:loc:{%s@example.test}"
MAKE_CA = os.path.join(TOP, "tests", "tls", "make-test-ca")


def free_tcp_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """redis-server on a loopback port of its own, no persistence."""

    def __init__(self, extra=(), user=None, password=None, tls=None):
        """tls: (CA file, certificate, key): TLS only, on the port."""
        self.port = free_tcp_port()
        self.dir = tempfile.mkdtemp(prefix="osprey-redis-")
        self.extra = list(extra)
        self.cafile = None
        if tls is not None:
            self.cafile = tls[0]
            self.extra += ["--tls-port", str(self.port),
                           "--tls-ca-cert-file", tls[0],
                           "--tls-cert-file", tls[1],
                           "--tls-key-file", tls[2],
                           "--tls-auth-clients", "no"]
        self.proc = None
        self.password = password
        self.user = user
        self.start()

    def start(self):
        self.logf = open(os.path.join(self.dir, "redis.log"), "a")
        self.proc = subprocess.Popen(
            [REDIS, "--port", "0" if self.cafile else str(self.port),
             "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir] +
            self.extra, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                r = self.client()
                r.cmd("PING")
                r.close()
                return
            except (OSError, ConnectionError, RuntimeError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self):
        return Resp(self.port, self.password, self.user, self.cafile)

    def cmd(self, *args):
        r = self.client()
        try:
            return r.cmd(*args)
        finally:
            r.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    servers = []

    def start(extra=(), user=None, password=None, tls=None):
        s = RedisServer(extra, user, password, tls)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


class Cluster:
    """Nodes sharing one Redis; phones and callers on 127.0.0.1."""

    def __init__(self, factory, redis, redis_conf=None, timeout=300):
        self.factory = factory
        self.redis = redis
        self.redis_conf = redis_conf or {}
        self.timeout = timeout
        self.eps = []
        self.nodes = {}

    def node(self, name, host, registrar=None, more=""):
        port = free_udp_port(host)
        rc = {"address": "127.0.0.1:%d" % self.redis.port,
              "node_id": name, "timeout": self.timeout}
        rc.update(self.redis_conf)
        extra = "redis = { %s };" % " ".join(
            '%s = %s;' % (k, v if v in ("true", "false") or
                          not isinstance(v, str) else '"%s"' % v)
            for k, v in rc.items())
        o = self.factory(port=port, listen=[("udp", host, port)],
                         registrar=dict(registrar or REG),
                         extra=extra + "\n" + more)
        o.addr = (host, port)
        self.nodes[name] = o
        wait_for(lambda: "location loaded from redis" in o.log_text(), 5,
                 "%s never loaded the location" % name)
        return o

    def endpoint(self):
        ep = Endpoint("127.0.0.1")
        self.eps.append(ep)
        return ep

    def phone(self, user, node):
        return Phone(self.endpoint(), node.addr, user)

    def caller(self, user, node):
        return UAC(self.endpoint(), node.addr, "sip:%s@example.test" % user,
                   from_uri="sip:eve@elsewhere.test")

    def close(self):
        for ep in self.eps:
            ep.close()


@pytest.fixture
def cluster(osprey_factory, redis_server):
    made = []

    def start(redis_extra=(), redis_user=None, redis_password=None,
              redis_tls=None, **kw):
        r = redis_server(redis_extra, redis_user, redis_password, redis_tls)
        c = Cluster(osprey_factory, r, **kw)
        made.append(c)
        return c

    yield start
    for c in made:
        c.close()


def wait_for(pred, secs, what):
    deadline = time.time() + secs
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    assert pred(), what


def call_reaches(c, user, via, phone):
    """A stranger's call to user through node via rings phone; answered."""
    call = c.caller(user, via)
    call.invite()
    inv = phone.uas.expect("INVITE", call_id=call.call_id, timeout=3)
    answer_call(call, phone, inv)
    call.bye()
    bye = phone.uas.expect("BYE", call_id=call.call_id)
    phone.uas.respond(bye, 200)
    call.ep.expect(call.resp(200, "BYE"))


def known_on(node, user):
    """node's local table lists user (a REGISTER query would write)."""
    return ("%s@example.test" % user) in ctl(node, "registrations")


# ----------------------------------------------------------------- tests


def test_register_on_a_call_through_b(cluster):
    """alice registers on A: the 200 comes once Redis holds her binding
    (field, value with node A and the expiry, key expiry); a call that
    comes in through B reaches her.  She unregisters on A: B refuses the
    next call as the registrar does for an unknown user (404)."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    alice = c.phone("alice", a)
    r = alice.register(expires=600)
    assert r.code == 200, r.text()
    assert alice.contact_uri in alice.bindings(r), r.text()
    h = c.redis.cmd("HGETALL", KEY % "alice")
    assert len(h) == 4, h
    h = dict(zip(h[::2], h[1::2]))
    assert int(h.pop("#v")) > 0, h      # the AOR's version
    (field, value), = h.items()
    assert field == "c:" + alice.contact_uri, h
    lines = value.split("\n")
    assert lines[0] == "2" and lines[2] == "A", value
    assert abs(int(lines[1]) / 1000 - time.time() - 600) < 5, value
    ttl = c.redis.cmd("PTTL", KEY % "alice")
    assert 590000 < ttl <= 600000, ttl

    wait_for(lambda: known_on(b, "alice"), 3, "B never learnt alice")
    call_reaches(c, "alice", b, alice)

    r = alice.register(expires=0)
    assert r.code == 200, r.text()
    assert c.redis.cmd("EXISTS", KEY % "alice") == 0
    wait_for(lambda: not known_on(b, "alice"), 3, "B kept alice")
    invite_refused(c.caller("alice", b), 404, [alice], 0.2)


def test_node_starting_later_loads_everything(cluster):
    """Bindings taken on A and B are all in a node started after them
    (SCAN at start), and a call through it reaches each phone."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    phones = []
    for i, n in enumerate((a, b, a, b)):
        p = c.phone("u%d" % i, n)
        assert p.register(expires=300).code == 200
        phones.append(p)
    late = c.node("C", "127.0.0.4")
    assert "aors=4" in late.log_text(), late.log_text()
    for i, p in enumerate(phones):
        call_reaches(c, "u%d" % i, late, p)


def test_redis_down_register_500_calls_go_on(cluster):
    """Redis killed: a REGISTER is answered 500 with Retry-After, never
    200 (nothing stored), on the node where it came; a call to alice,
    registered before, still connects through B from B's local table;
    the nodes log the loss.  Redis back (empty): REGISTER works again."""
    c = cluster()
    mport = free_tcp_port()
    a = c.node("A", "127.0.0.2", more=metrics_conf(mport))
    b = c.node("B", "127.0.0.3")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    wait_for(lambda: known_on(b, "alice"), 3, "B never learnt alice")
    m = scrape(mport)
    assert m.get("osprey_redis_up") == 1, m.text
    ok_before = m.get("osprey_redis_commands_total", result="ok")
    assert ok_before >= 4, m.text   # INFO, DBSIZE, SCAN, the script

    c.redis.kill()
    wait_for(lambda: "redis location: down address" in a.log_text(), 3,
             "A did not see Redis go")
    assert scrape(mport).get("osprey_redis_up") == 0
    bob = c.phone("bob", a)
    r = bob.register(expires=600)
    assert r.code == 500, r.text()
    assert int(r.get("retry-after")) > 0, r.text()
    r = alice.register(expires=600)         # a refresh is not stored either
    assert r.code == 500, r.text()
    call_reaches(c, "alice", b, alice)
    invite_refused(c.caller("bob", b), 404, [bob], 0.2)

    c.redis.start()
    wait_for(lambda: "location loaded from redis" in
             a.log_text().split("redis location: down address")[-1], 10,
             "A did not come back")
    r = bob.register(expires=600)
    assert r.code == 200, r.text()
    m = scrape(mport)
    assert m.get("osprey_redis_up") == 1, m.text
    assert m.get("osprey_redis_commands_total", result="down") >= 2, m.text
    assert m.get("osprey_redis_reconnects_total") >= 1, m.text
    assert m.get("osprey_redis_commands_total", result="ok") > ok_before


def test_start_while_redis_down(cluster):
    """A node starts while Redis is down: it runs (calls need no Redis),
    answers REGISTER 500, and once Redis comes up stores them."""
    c = cluster()
    c.redis.kill()
    port = free_udp_port("127.0.0.2")
    a = c.factory(port=port, listen=[("udp", "127.0.0.2", port)],
                  registrar=dict(REG), extra='redis = { address = '
                  '"127.0.0.1:%d"; node_id = "A"; };' % c.redis.port)
    a.addr = ("127.0.0.2", port)
    alice = c.phone("alice", a)
    r = alice.register(expires=600)
    assert r.code == 500 and r.get("retry-after"), r.text()
    c.redis.start()
    wait_for(lambda: "location loaded from redis" in a.log_text(), 10,
             "A never reached Redis")
    assert alice.register(expires=600).code == 200
    assert c.redis.cmd("EXISTS", KEY % "alice") == 1


def test_redis_restarted_empty_nodes_republish(cluster):
    """Redis restarted empty: A writes back the binding it took (alice),
    so a node started afterwards, which knows only Redis, reaches alice
    without her registering again."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    c.node("B", "127.0.0.3")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    c.redis.kill()
    c.redis.start()
    assert len(c.redis.cmd("KEYS", "osprey:loc:*")) in (0, 1)
    wait_for(lambda: c.redis.cmd("EXISTS", KEY % "alice") == 1, 10,
             "A did not re-publish alice")
    assert "re-published 1 binding(s)" in a.log_text(), a.log_text()
    late = c.node("C", "127.0.0.4")
    call_reaches(c, "alice", late, alice)


def test_node_killed_phone_still_reachable(cluster):
    """A dies (SIGKILL) after alice registered there: B still reaches
    her, from its table and from Redis (a node started after A died)."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    wait_for(lambda: known_on(b, "alice"), 3, "B never learnt alice")
    a.proc.kill()
    a.proc.wait()
    a.allowed_rc = (-signal.SIGKILL,)
    call_reaches(c, "alice", b, alice)
    late = c.node("C", "127.0.0.4")
    call_reaches(c, "alice", late, alice)
    # alice moves to B when she notices A is gone: B takes her binding.
    alice.proxy = b.addr
    assert alice.register(expires=600).code == 200
    value = c.redis.cmd("HGET", KEY % "alice", "c:" + alice.contact_uri)
    assert value.split("\n")[2] == "B", value


def test_redis_acl_user_and_password(cluster):
    """AUTH with an ACL user: with the right password REGISTER is
    stored; a node with a wrong one logs why and answers 500."""
    c = cluster(redis_extra=["--user", "osprey", "on", ">s3cret",
                             "~osprey:*", "&osprey:*", "+@all",
                             "--user", "default", "off"],
                redis_user="osprey", redis_password="s3cret",
                redis_conf={"user": "osprey", "password": "s3cret"})
    a = c.node("A", "127.0.0.2")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    assert c.redis.cmd("EXISTS", KEY % "alice") == 1
    port = free_udp_port("127.0.0.3")
    bad = c.factory(port=port, listen=[("udp", "127.0.0.3", port)],
                    registrar=dict(REG), extra='redis = { address = '
                    '"127.0.0.1:%d"; user = "osprey"; password = "wrong"; '
                    'node_id = "B"; };' % c.redis.port)
    bad.addr = ("127.0.0.3", port)
    wait_for(lambda: "WRONGPASS" in bad.log_text(), 5, bad.log_text())
    assert "s3cret" not in bad.log_text() and "wrong" not in \
        bad.log_text().split("WRONGPASS")[0].split("\n")[-1]
    bob = c.phone("bob", bad)
    r = bob.register(expires=600)
    assert r.code == 500 and r.get("retry-after"), r.text()


def test_redis_stalled_register_500_after_timeout(cluster):
    """Redis stalls (SIGSTOP): a REGISTER waits for it no longer than
    redis.timeout, then gets 500 with Retry-After; its retransmission
    meanwhile is absorbed (one answer), and one after the 500 gets the
    same 500.  Redis resumes: REGISTERs are stored again."""
    c = cluster(timeout=400)
    a = c.node("A", "127.0.0.2")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    os.kill(c.redis.proc.pid, signal.SIGSTOP)
    try:
        req = parse(alice.register_bytes(expires=600))
        t0 = time.time()
        alice.ep.send(req.raw, a.addr)
        time.sleep(0.15)
        alice.ep.send(req.raw, a.addr)
        r = alice.ep.expect(reply_to(req), 3)
        waited = time.time() - t0
        assert r.code == 500 and int(r.get("retry-after")) > 0, r.text()
        assert 0.35 <= waited < 1.5, waited
        assert alice.ep.collect(0.3, reply_to(req)) == []
        alice.ep.send(req.raw, a.addr)
        again = alice.ep.expect(reply_to(req), 1)
        assert again.code == 500 and again.to_tag == r.to_tag, again.text()
    finally:
        os.kill(c.redis.proc.pid, signal.SIGCONT)
    deadline = time.time() + 10
    while alice.register(expires=600).code != 200:
        assert time.time() < deadline, "REGISTER never stored again"
        time.sleep(0.2)
    assert "no reply in time" in a.log_text(), a.log_text()


def test_stop_with_register_waiting(cluster):
    """ospreyd stops while a REGISTER waits on a stalled Redis: the
    REGISTER is answered 500 at once, and the daemon exits cleanly (the
    fixture wants exit status 0: no leak, no crash)."""
    c = cluster(timeout=5000)
    a = c.node("A", "127.0.0.2")
    alice = c.phone("alice", a)
    os.kill(c.redis.proc.pid, signal.SIGSTOP)
    try:
        req = parse(alice.register_bytes(expires=600))
        alice.ep.send(req.raw, a.addr)
        assert alice.ep.collect(0.3, reply_to(req)) == []
        t0 = time.time()
        assert a.stop() == 0, a.log_text()
        r = alice.ep.expect(reply_to(req), 1)
        assert r.code == 500, r.text()
        assert time.time() - t0 < 3
    finally:
        os.kill(c.redis.proc.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ca"))
    subprocess.run(["sh", MAKE_CA, d], check=True, timeout=60)
    return d


def test_redis_over_tls(cluster, ca):
    """redis.tls: the nodes reach a TLS-only Redis whose certificate the
    test CA signed (checked against 127.0.0.1); a node that trusts only
    another CA refuses the connection, logs why and answers 500."""
    c = cluster(redis_tls=(os.path.join(ca, "ca.pem"),
                           os.path.join(ca, "server.pem"),
                           os.path.join(ca, "server.key")),
                redis_conf={"tls": "true",
                            "ca_file": os.path.join(ca, "ca.pem")})
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    assert "tls=yes" in a.log_text()
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    assert c.redis.cmd("EXISTS", KEY % "alice") == 1
    wait_for(lambda: known_on(b, "alice"), 3, "B never learnt alice")
    call_reaches(c, "alice", b, alice)

    port = free_udp_port("127.0.0.4")
    rogue = c.factory(port=port, listen=[("udp", "127.0.0.4", port)],
                      registrar=dict(REG), extra='redis = { address = '
                      '"127.0.0.1:%d"; tls = true; ca_file = "%s"; '
                      'node_id = "C"; };' % (
                          c.redis.port, os.path.join(ca, "rogue-ca.pem")))
    rogue.addr = ("127.0.0.4", port)
    wait_for(lambda: "certificate verify failed" in rogue.log_text(), 5,
             rogue.log_text())
    bob = c.phone("bob", rogue)
    assert bob.register(expires=600).code == 500


def test_nat_keepalives_only_from_the_owner_drop_everywhere(cluster):
    """A phone behind a NAT registered on A gets its keepalives from A
    only (not from B, which also holds the binding); unanswered, A drops
    the binding from Redis too, and B forgets it."""
    nat = "nat = { interval = 1; failures = 1; };"
    c = cluster()
    a = c.node("A", "127.0.0.2", more=nat)
    b = c.node("B", "127.0.0.3", more=nat)
    bob = c.phone("bob", a)
    contact = "sip:bob@192.168.1.20:5062"
    via = "SIP/2.0/UDP 192.168.1.20:5062;branch=%s;rport" % new_branch()
    r = bob.register(contacts=["<%s>" % contact], expires=600, via=via)
    assert r.code == 200, r.text()
    wait_for(lambda: known_on(b, "bob"), 3, "B never learnt bob")
    opts = bob.ep.collect(2.5, match(method="OPTIONS"))
    assert opts, "no keepalive"
    assert {o.src for o in opts} == {a.addr}, [o.src for o in opts]
    wait_for(lambda: "keepalives unanswered" in a.log_text(), 10,
             "A never gave up on bob")
    wait_for(lambda: c.redis.cmd("EXISTS", KEY % "bob") == 0, 2,
             "bob still in Redis")
    wait_for(lambda: not known_on(b, "bob"), 2, "B kept bob")


def test_many_registrations_loaded_by_a_new_node(cluster):
    """400 users registered on A (one socket, 400 AORs): a node started
    afterwards reads them all (SCAN in batches, replies spread over many
    reads) and reaches the last one."""
    c = cluster()
    a = c.node("A", "127.0.0.2",
               more="security = { rate_requests = 100000; };")
    ep = c.endpoint()
    phones = [Phone(ep, a.addr, "user%03d" % i) for i in range(400)]
    for p in phones:
        r = p.register(expires=600, headers=[("User-Agent", "x" * 100)])
        assert r.code == 200, r.text()
    assert len(c.redis.cmd("KEYS", "osprey:loc:*")) == 400
    late = c.node("C", "127.0.0.4")
    assert "aors=400 bindings=400" in late.log_text(), late.log_text()
    call_reaches(c, "user399", late, phones[399])


def test_reload_redis_change_needs_restart(cluster):
    """A reload that changes the redis group says it takes a restart,
    and the node goes on with the Redis it has; a query REGISTER (no
    Contact) changes nothing and publishes nothing."""
    from conftest import reload_conf
    c = cluster()
    a = c.node("A", "127.0.0.2")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    with open(a.conf) as f:
        text = f.read()
    assert "timeout = 300;" in text
    reload_conf(a, text.replace("timeout = 300;", "timeout = 900;"))
    assert "redis changes take effect at the next restart" in a.log_text()
    sub = c.redis.client()
    sub.cmd("SUBSCRIBE", "osprey:loc")
    assert list(alice.query()) == [alice.contact_uri]
    sub.sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sub._read()
    assert alice.register(expires=600).code == 200
    sub.sock.settimeout(2)
    kind, chan, msg = sub._read()
    assert (kind, chan) == ("message", "osprey:loc"), (kind, chan)
    assert msg.split("\n")[0].rsplit(" ", 1)[0] == "A alice@example.test", \
        msg
    sub.close()


def test_script_flushed_loaded_again(cluster):
    """The nodes name the script by its SHA-1 (EVALSHA, loaded when they
    connect).  SCRIPT FLUSH on Redis: the next REGISTER gets 500 (never a
    200 for a write not made), the node loads the script again, and the
    one after is stored."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    assert c.redis.cmd("SCRIPT", "FLUSH") == "OK"
    r = alice.register(expires=600)
    assert r.code == 500 and r.get("retry-after"), r.text()
    assert "NOSCRIPT" in a.log_text()
    assert alice.register(expires=600).code == 200


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_registered_on_a_answers_a_call_through_b(cluster, tmp_path):
    """A real phone: baresip bob registers on A (it reaches its proxy on
    127.0.0.1) and auto-answers; a call that comes in through B rings
    him, is answered (200 with his SDP) and ended with a BYE."""
    c = cluster()
    a = c.node("A", "127.0.0.1")
    b = c.node("B", "127.0.0.3")
    bob = interop.Baresip(str(tmp_path), "bob", "auto", proxy_port=a.port,
                          password="unused", regint=600)
    try:
        assert bob.registration(15), bob.report()
        wait_for(lambda: known_on(b, "bob"), 3, "B never learnt bob")
        call = c.caller("bob", b)
        call.invite()
        ok = call.ep.expect(call.resp(200), 10)
        assert "m=audio" in ok.text(), ok.text()
        call.ack(ok)
        assert bob.wait_for("Call established", 5), bob.report()
        call.bye()
        call.ep.expect(call.resp(200, "BYE"), 5)
        inv = [m for m in bob.messages() if m["start"].startswith(
            "INVITE ")]
        assert inv and inv[0]["src"] == "%s:%d" % b.addr, bob.report()
    finally:
        bob.stop()


def test_cancel_through_a_third_node(cluster):
    """Three nodes: alice registers on A, bob on B; a call to both (one
    user, two phones) through C rings both, and C's CANCEL reaches each
    with its INVITE's branch; the caller ends with 487."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    third = c.node("C", "127.0.0.4")
    d1, d2 = c.phone("dan", a), c.phone("dan", b)
    assert d1.register(expires=600).code == 200
    r = d2.register(expires=600)
    assert r.code == 200 and len(d2.bindings(r)) == 2, r.text()
    wait_for(lambda: all(p.contact_uri in ctl(third, "registrations")
                         for p in (d1, d2)), 3,
             "C does not know both phones")
    call = c.caller("dan", third)
    call.invite()
    invs = {}
    for d in (d1, d2):
        invs[d] = d.uas.expect("INVITE", call_id=call.call_id, timeout=3)
        d.uas.respond(invs[d], 180)
    call.ep.expect(call.resp(180))
    call.cancel()
    assert call.ep.expect(call.resp(None, "CANCEL")).code == 200
    for d in (d1, d2):
        cn = d.uas.expect("CANCEL", call_id=call.call_id)
        assert cn.branch == invs[d].branch
        assert cn.src == third.addr, cn.src
        d.uas.respond(cn, 200)
        d.uas.respond(invs[d], 487)
        d.uas.expect("ACK", call_id=call.call_id)
    final = call.ep.expect(call.resp(NON2XX))
    assert final.code == 487, final
    call.ack(final)


class Monitor:
    """Every command Redis runs (MONITOR), read on a thread of its own."""

    def __init__(self, redis):
        self.r = redis.client()
        assert self.r.cmd("MONITOR") == "OK"
        self.r.sock.settimeout(0.1)
        self.lines = []
        self.done = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.done:
            try:
                self.lines.append(self.r.read())
            except socket.timeout:
                continue
            except (OSError, ConnectionError):
                return

    def hgetalls(self, settle=0.3):
        """The HGETALLs the nodes sent (not the script's own, which
        MONITOR shows as "[0 lua]"), after settle seconds."""
        time.sleep(settle)
        return [x for x in list(self.lines) if '"HGETALL"' in x and
                " lua]" not in x]

    def close(self):
        self.done = True
        self.t.join()
        self.r.close()


def regs_json(node, user=None):
    """`ospreyctl -j registrations [user]` of node: {contact: object}."""
    return {d["contact"]: d for d in json.loads(ctl(
        node, "--json", "registrations", *([user] if user else [])))}


def published_value(contact, node, exp_ms, received):
    """A binding's value as a node writes it (version 2)."""
    return "\n".join(["2", str(exp_ms), node, received, "127.0.0.2:5060",
                      "0", "1", "1000", contact, "", "", "cid-" + node,
                      "forged", ""])


def test_change_travels_in_the_message(cluster):
    """Each change alice makes on A reaches B in the osprey:loc message
    itself (her bindings and the AOR's version): B never reads the AOR
    back (no HGETALL from any node; the script's own inside Redis aside)
    through a new binding, a refresh, a second contact, one removed
    (expires=0), and all removed with "*".  `ospreyctl registrations` on
    B names A as the node of each binding, on A "A (this)"."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    mon = Monitor(c.redis)
    try:
        alice = c.phone("alice", a)
        assert alice.register(expires=600).code == 200
        wait_for(lambda: alice.contact_uri in regs_json(b), 3,
                 "B never learnt alice")
        d = regs_json(b)[alice.contact_uri]
        assert d["node"] == "A" and d["own"] is False, d
        assert 590 <= d["expires"] <= 600, d
        line = [x for x in ctl(b, "registrations").splitlines()
                if alice.contact_uri in x]
        assert len(line) == 1 and " node=A" in line[0] and \
            "(this)" not in line[0], line
        line = [x for x in ctl(a, "registrations").splitlines()
                if alice.contact_uri in x]
        assert len(line) == 1 and " node=A (this)" in line[0], line
        assert regs_json(a)[alice.contact_uri]["own"] is True

        assert alice.register(expires=300).code == 200      # a refresh
        wait_for(lambda: regs_json(b)[alice.contact_uri]["expires"] <= 300,
                 3, "B never saw the refresh")
        desk = "sip:alice-desk@127.0.0.1:%d" % alice.ep.port
        r = alice.register(contacts=["<%s>" % desk], expires=600)
        assert r.code == 200 and len(alice.bindings(r)) == 2, r.text()
        wait_for(lambda: desk in regs_json(b), 3, "B never saw the desk")
        assert len(regs_json(b)) == 2
        r = alice.register(contacts=["<%s>;expires=0" % desk])
        assert r.code == 200 and desk not in alice.bindings(r), r.text()
        wait_for(lambda: desk not in regs_json(b), 3, "B kept the desk")
        assert alice.contact_uri in regs_json(b)
        r = alice.register(contacts=["*"], expires=0)
        assert r.code == 200, r.text()
        assert c.redis.cmd("EXISTS", KEY % "alice") == 0
        wait_for(lambda: regs_json(b) == {}, 3, "B kept alice")
        assert mon.hgetalls() == [], mon.hgetalls()
        assert any('"EVALSHA"' in x for x in mon.lines), mon.lines[-5:]
        st = ctl_stats(b)
        assert st["location.messages_applied"] == 5, st
        assert st["location.messages_reread"] == 0, st
    finally:
        mon.close()


def test_expiry_reaches_every_node(cluster):
    """A binding that runs out (Expires 2) leaves B's table at its time,
    and Redis's (the key's PEXPIREAT), with no message."""
    c = cluster()
    reg = dict(REG, min_expires=1)
    a = c.node("A", "127.0.0.2", registrar=reg)
    b = c.node("B", "127.0.0.3", registrar=reg)
    alice = c.phone("alice", a)
    assert alice.register(expires=2).code == 200
    wait_for(lambda: known_on(b, "alice"), 2, "B never learnt alice")
    wait_for(lambda: not known_on(b, "alice") and
             not known_on(a, "alice"), 4, "alice never expired")
    assert c.redis.cmd("EXISTS", KEY % "alice") == 0
    # a new registration after the expiry is taken (a later version)
    assert alice.register(expires=600).code == 200
    wait_for(lambda: known_on(b, "alice"), 3, "B never learnt alice again")


def test_older_message_changes_nothing(cluster):
    """A message with a version at or below the one B holds for an AOR
    (a replay, one overtaken) changes nothing, also after the AOR left
    B's table (a deletion published); a later one without the
    bindings (as for an AOR over the 8 KB cap, or from a node of the
    version before: "NODE AOR") makes B read the AOR again, once."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    alice = c.phone("alice", a)
    assert alice.register(expires=600).code == 200
    wait_for(lambda: known_on(b, "alice"), 3, "B never learnt alice")
    ver = int(c.redis.cmd("HGET", KEY % "alice", "#v"))
    exp = int(time.time() * 1000) + 600000
    ghost = "sip:ghost@127.0.0.1:9"
    v = published_value(ghost, "A", exp, "127.0.0.1:9")
    mon = Monitor(c.redis)
    try:
        for old in (ver, ver - 1):
            c.redis.cmd("PUBLISH", "osprey:loc", "A alice@example.test %d\n"
                        "%d:%s" % (old, len(v), v))
        time.sleep(0.3)
        assert set(regs_json(b)) == {alice.contact_uri}, regs_json(b)
        assert mon.hgetalls(0) == []
        assert ctl_stats(b)["location.stale"] == 2
        # the same binding later: taken from the message
        c.redis.cmd("PUBLISH", "osprey:loc", "A alice@example.test %d\n"
                    "%d:%s" % (ver + 1, len(v), v))
        wait_for(lambda: set(regs_json(b)) == {ghost}, 3,
                 "B never took the later message")
        assert mon.hgetalls() == []
        # a later version without the bindings (what a node publishes for
        # an AOR over the cap): B reads it again, from Redis
        c.redis.cmd("HSET", KEY % "alice", "#v", ver + 5, "c:" + ghost, v)
        c.redis.cmd("PUBLISH", "osprey:loc", "A alice@example.test %d"
                    % (ver + 5))
        wait_for(lambda: set(regs_json(b)) == {alice.contact_uri, ghost}, 3,
                 "B never read alice again")
        got = mon.hgetalls()
        assert len(got) == 1 and KEY % "alice" in got[0], got
        # "NODE AOR", as a node of the version before sends: read again
        c.redis.cmd("HDEL", KEY % "alice", "c:" + ghost)
        c.redis.cmd("PUBLISH", "osprey:loc", "A alice@example.test")
        wait_for(lambda: set(regs_json(b)) == {alice.contact_uri}, 3,
                 "B never read alice again")
        assert len(mon.hgetalls()) == 2
        # alice gone (her AOR leaves B's table): a message older than
        # that deletion, overtaken on its way, does not bring her back
        assert alice.register(expires=0).code == 200
        wait_for(lambda: regs_json(b) == {}, 3, "B kept alice")
        stale = ctl_stats(b)["location.stale"]
        c.redis.cmd("PUBLISH", "osprey:loc", "A alice@example.test %d\n"
                    "%d:%s" % (ver + 6, len(v), v))
        time.sleep(0.3)
        assert regs_json(b) == {}, regs_json(b)
        assert ctl_stats(b)["location.stale"] == stale + 1
    finally:
        mon.close()


def test_bindings_over_the_cap_read_again(cluster):
    """An AOR whose bindings pass 8 KB is published without them: B reads
    it back (one HGETALL) and has every binding."""
    c = cluster()
    a = c.node("A", "127.0.0.2")
    b = c.node("B", "127.0.0.3")
    mon = Monitor(c.redis)
    try:
        alice = c.phone("alice", a)
        # 5 contacts of 1,800 bytes: about 9.5 KB in Redis
        contacts = ["<sip:alice-%d@127.0.0.1:%d;x=%s>" % (
            i, alice.ep.port, "u" * 1800) for i in range(5)]
        r = alice.register(contacts=contacts, expires=600)
        assert r.code == 200 and len(alice.bindings(r)) == 5, r.text()
        wait_for(lambda: len(regs_json(b)) == 5, 3,
                 "B does not have the 5 bindings")
        got = mon.hgetalls()
        assert len(got) == 1 and KEY % "alice" in got[0], got
        # one binding less (under the cap now): in the message again
        r = alice.register(contacts=[contacts[0] + ";expires=0"],
                           expires=600)
        assert r.code == 200 and len(alice.bindings(r)) == 4, r.text()
        wait_for(lambda: len(regs_json(b)) == 4, 3, "B kept 5")
        assert len(mon.hgetalls()) == 1
        st = ctl_stats(b)
        assert st["location.messages_reread"] == 1, st
        assert st["location.messages_applied"] == 1, st
    finally:
        mon.close()


class MuteRedis:
    """A TCP server that answers AUTH with +OK and nothing else: a Redis
    that hangs after accepting a client."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import select
        while not self.done:
            r, _, _ = select.select([self.sock] + self.conns, [], [], 0.1)
            for s in r:
                if s is self.sock:
                    self.conns.append(self.sock.accept()[0])
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.conns.remove(s)
                    s.close()
                elif b"AUTH" in data:
                    s.sendall(b"+OK\r\n")

    def close(self):
        self.done = True
        self.thread.join()
        for s in self.conns:
            s.close()
        self.sock.close()


def test_handshake_unanswered_times_out(osprey_factory):
    """A server that takes AUTH and then says nothing: both connections
    give up after redis.timeout (the subscriber's SUBSCRIBE unconfirmed
    too), log it, and try again; REGISTER gets 500 meanwhile."""
    mute = MuteRedis()
    try:
        port = free_udp_port("127.0.0.2")
        a = osprey_factory(port=port, listen=[("udp", "127.0.0.2", port)],
                           registrar=dict(REG), extra='redis = { address = '
                           '"127.0.0.1:%d"; password = "pw"; timeout = 300;'
                           ' node_id = "A"; };' % mute.port)
        a.addr = ("127.0.0.2", port)
        wait_for(lambda: 'location-events: down address' in a.log_text()
                 and 'location: down address' in a.log_text(), 5,
                 a.log_text())
        log = a.log_text()
        assert 'location: down address=127.0.0.1:%d reason="no reply in ' \
            'time"' % mute.port in log, log
        assert 'location-events: down address=127.0.0.1:%d reason="timed ' \
            'out connecting"' % mute.port in log, log
        ep = Endpoint("127.0.0.1")
        try:
            r = Phone(ep, a.addr, "alice").register(expires=600)
            assert r.code == 500, r.text()
        finally:
            ep.close()
    finally:
        mute.close()
