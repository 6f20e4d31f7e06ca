"""One call record per call when a call crosses two nodes (issue 14).

A phone on a TCP connection to node A (or behind a NAT, or any phone with
redis.via_node = "always") is reached from node B through a path token
of A's: the call goes caller -> B -> A -> phone, and both nodes
record-route and track it.  The node that gets the call through its own
path token (A here) marks it transit: it routes the call's in-dialog
requests as before, but writes no record, takes no limits, offers
nothing to rtpengine, keeps the dialog out of Redis and counts it apart
(osprey_dialogs_transit, osprey_calls_transit_total, `ospreyctl
dialogs`).  B, where the call entered the cluster, writes the one record.
The other way round too: a call from A to a phone held by B is B's
transit and A's record.

Every node has a real redis-server (test_redis.py's RedisServer),
dialog.backend = "redis" and a JSONL accounting file of its own.
Skipped when redis-server is not installed."""

import json
import select
import socket
import threading
import time

import pytest
from test_media import media_conf, rtpe_has_call, rtpengine  # noqa: F401
from test_media import sdp_addr, wait_gone
from test_metrics import metrics_conf, scrape
from test_redis import (REDIS, REG, free_tcp_port, redis_server,  # noqa: F401
                        wait_for)
from test_redis_dialog import port_free_on_all, records, utc
from test_redis_path import TcpPhone, knows, route_of

from conftest import ctl, lc
from peers import interop
from sip import NON2XX, SDP, UAC, Endpoint, build_request, build_response, \
    match, new_branch, uri_of

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed")

HOSTS = {"A": "127.0.0.2", "B": "127.0.0.3", "C": "127.0.0.4"}
# The failover advice: every node lists every node's address.
EVERY = {"A": (HOSTS["B"],), "B": (HOSTS["A"],)}


class Nodes:
    """Redis and nodes on 127.0.0.2-4, one port for all (UDP, and TCP on
    A and B), each with its own JSONL records and metrics port."""

    def __init__(self, factory, redis, tmp_path, names="AB", limits=None,
                 domains=None, hosts=None, media=None):
        self.factory = factory
        self.redis = redis
        self.tmp = tmp_path
        self.hosts = dict(HOSTS, **(hosts or {}))
        self.port = port_free_on_all([self.hosts[n] for n in names])
        self.limits = limits
        self.domains = domains or {}
        self.media = media
        self.nodes, self.cdr, self.mport, self.eps = {}, {}, {}, []
        for n in names:
            self.start(n)

    def start(self, name):
        host = self.hosts[name]
        self.cdr[name] = str(self.tmp / ("cdr-%s.jsonl" % name))
        self.mport[name] = free_tcp_port()
        more = [
            'redis = { address = "127.0.0.1:%d"; node_id = "%s"; };'
            % (self.redis.port, name),
            'dialog = { backend = "redis"; };',
            "accounting = %s;" % lc({"file": self.cdr[name],
                                     "format": "jsonl",
                                     "fsync": "always"}),
            metrics_conf(self.mport[name])]
        if self.limits:
            more.append("limits = %s;" % lc(self.limits))
        if self.media:
            more.append(media_conf(self.media))
        listen = [("udp", host, self.port)]
        if name in "AB":
            listen.append(("tcp", host, self.port))
        o = self.factory(port=self.port, listen=listen,
                         registrar=dict(REG),
                         domains=("example.test",) +
                         tuple(self.domains.get(name, ())),
                         extra="\n".join(more))
        o.addr = (host, self.port)
        self.nodes[name] = o
        wait_for(lambda: "location loaded from redis" in o.log_text() and
                 "cluster secret is in use" in o.log_text(), 5,
                 "%s is not up on redis" % name)
        return o

    def __getitem__(self, name):
        return self.nodes[name]

    def endpoint(self, host="127.0.0.1"):
        ep = Endpoint(host)
        self.eps.append(ep)
        return ep

    def caller(self, via, user="alice", host="127.0.0.1"):
        return UAC(self.endpoint(host), self.nodes[via].addr,
                   "sip:%s@example.test" % user,
                   from_uri="sip:eve@elsewhere.test")

    def phone(self, user, name):
        """A TCP phone registered on node name, known to every node."""
        p = TcpPhone(user, self.nodes[name].addr)
        assert p.register().code == 200
        assert route_of(self, user).startswith("<sip:p")
        for n, o in self.nodes.items():
            wait_for(lambda: knows(o, p.contact_uri), 3,
                     "%s never learnt %s" % (n, user))
        return p

    def recs(self, name, want=None, secs=3.0):
        return records(self.cdr[name], want, secs)

    def metrics(self, name):
        return scrape(self.mport[name])

    def close(self):
        for ep in self.eps:
            ep.close()


@pytest.fixture
def nodes(osprey_factory, redis_server, tmp_path):  # noqa: F811
    made = []

    def start(**kw):
        n = Nodes(osprey_factory, redis_server(), tmp_path, **kw)
        made.append(n)
        return n

    yield start
    for n in made:
        n.close()


def ring_and_answer(c, phone, call, to_tag="tcp1"):
    """The phone rings (180) and answers (200 with SDP); the caller ACKs.
    Returns (the INVITE as the phone got it, the caller's 200)."""
    call.invite(body=SDP)
    inv = phone.expect(match(method="INVITE", call_id=call.call_id))
    phone.respond(inv, 180, to_tag=to_tag)
    call.ep.expect(call.resp(180))
    phone.respond(inv, 200, body=SDP, to_tag=to_tag)
    ok = call.ep.expect(call.resp(200))
    call.ack(ok)
    phone.expect(match(method="ACK", call_id=call.call_id))
    return inv, ok


def caller_bye(call, phone):
    call.bye()
    bye = phone.expect(match(method="BYE", call_id=call.call_id))
    phone.send(build_response(bye, 200))
    r = call.ep.expect(call.resp(None, "BYE"))
    assert r.code == 200, r.text()


def phone_bye(call, phone, inv, to_tag):
    """The phone hangs up over its connection, along the Record-Route."""
    hs = [("Via", "SIP/2.0/TCP 127.0.0.1:%d;branch=%s;rport"
           % (phone.port, new_branch())),
          ("Max-Forwards", "70"),
          ("From", inv.get("to") + ";tag=" + to_tag),
          ("To", inv.get("from")),
          ("Call-ID", call.call_id), ("CSeq", "1 BYE")]
    hs += [("Route", r) for r in inv.values("record-route")]
    phone.send(build_request("BYE", uri_of(inv.get("contact")), hs))
    bye = call.ep.expect(match(method="BYE", call_id=call.call_id))
    call.ep.send(build_response(bye, 200), bye.src)
    r = phone.expect(match(response=True, cseq_method="BYE"))
    assert r.code == 200, r.text()


def found_in(c, key, text):
    """1 if the dialog record under key (binary) holds text, else 0;
    -1: no such key."""
    return c.redis.cmd(
        "EVAL", "local v = redis.call('GET', KEYS[1]) "
        "if not v then return -1 end "
        "if string.find(v, ARGV[1], 1, true) then return 1 end return 0",
        "1", key, text)


def set_calls(c):
    """SET commands Redis ran since its stats were reset."""
    for line in c.redis.cmd("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_set:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def dialogs_json(o):
    return json.loads(ctl(o, "dialogs", "--json"))


def status(o):
    return json.loads(ctl(o, "status", "--json"))


def test_call_through_b_one_record_on_b(nodes):
    """alice registers on A over TCP; eve's call through B goes B -> A ->
    alice, is answered and hung up by eve.  While it is up A lists it
    as transit (ospreyctl dialogs, status, osprey_dialogs_transit) and
    not among its calls; B counts it as its own.  Afterwards exactly one
    record in the cluster, on B, with the call's times and ended_by
    caller; A's metrics show the transit call ended."""
    c = nodes()
    a, b = c["A"], c["B"]
    alice = c.phone("alice", "A")
    call = c.caller("B")
    t0 = time.time()
    inv, _ = ring_and_answer(c, alice, call)
    t_answer = time.time()
    assert len(inv.vias) == 3, inv.vias         # caller, B, A

    wait_for(lambda: "confirmed (transit)" in a.log_text(), 3,
             "A never confirmed a transit dialog")
    da, db = dialogs_json(a), dialogs_json(b)
    assert len(da) == 1 and da[0]["transit"] is True, da
    assert da[0]["state"] == "confirmed" and da[0]["call_id"] == \
        call.call_id, da
    assert len(db) == 1 and db[0]["transit"] is False, db
    assert "transit (another node's call" in ctl(a, "dialogs")
    assert status(a)["calls_transit"] == 1 and \
        status(a)["calls_up"] == 0, status(a)
    assert status(b)["calls_transit"] == 0 and \
        status(b)["calls_up"] == 1, status(b)
    ma, mb = c.metrics("A"), c.metrics("B")
    assert ma.get("osprey_dialogs_transit", state="confirmed") == 1
    assert ma.get("osprey_dialogs", state="confirmed") == 0
    assert ma.get("osprey_calls_transit_total") == 1
    assert ma.get("osprey_calls_attempted_total") == 0
    assert mb.get("osprey_dialogs", state="confirmed") == 1
    assert mb.get("osprey_dialogs_transit", state="confirmed") == 0
    assert mb.get("osprey_calls_attempted_total") == 1

    time.sleep(1.0)
    t_bye = time.time()
    caller_bye(call, alice)
    t_end = time.time()
    recs = c.recs("B", 1)
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["call_id"] == call.call_id and r["ended_by"] == "caller", r
    assert r["code"] == 200 and r["to_tag"] == "tcp1", r
    assert r["src_ip"] == "127.0.0.1", r        # the caller, not a node
    assert t0 - 0.5 <= utc(r["start_time"]) <= t_answer + 0.5, r
    assert t0 - 0.5 <= utc(r["answer_time"]) <= t_answer + 0.5, r
    assert t_bye - 0.5 <= utc(r["end_time"]) <= t_end + 0.5, r
    assert float(r["duration"]) >= 0.9, r
    assert c.recs("A", secs=0.5) == [], c.recs("A")
    wait_for(lambda: "ended by caller" in a.log_text(), 3,
             "A's transit dialog did not end")
    ma, mb = c.metrics("A"), c.metrics("B")
    assert ma.get("osprey_dialogs_transit", state="confirmed") == 0
    assert sum(ma.series("osprey_dialogs_ended_total").values()) == 0
    assert mb.get("osprey_dialogs_ended_total", by="caller") == 1
    assert ma.get("osprey_call_duration_seconds_count") == 0
    assert dialogs_json(a) == [] and dialogs_json(b) == []
    assert c.redis.cmd("KEYS", "osprey:dlg:{*") == []
    alice.close()


def test_reverse_phone_on_a_calls_phone_held_by_b(nodes):
    """alice is on A, bob on a TCP connection to B.  alice's call goes
    A -> B (B's path token) -> bob: B is the transit node now.  bob
    answers and hangs up: one record, on A, ended_by callee."""
    c = nodes()
    a, b = c["A"], c["B"]
    bob = c.phone("bob", "B")
    call = UAC(c.endpoint(), a.addr, "sip:bob@example.test",
               from_uri="sip:alice@example.test")
    inv, _ = ring_and_answer(c, bob, call, to_tag="bob1")
    assert len(inv.vias) == 3, inv.vias         # alice, A, B
    assert [d["transit"] for d in dialogs_json(b)] == [True]
    assert [d["transit"] for d in dialogs_json(a)] == [False]
    time.sleep(0.5)
    phone_bye(call, bob, inv, "bob1")
    recs = c.recs("A", 1)
    assert len(recs) == 1, recs
    assert recs[0]["call_id"] == call.call_id, recs
    assert recs[0]["ended_by"] == "callee", recs
    assert recs[0]["caller"] == "sip:alice@example.test", recs
    assert c.recs("B", secs=0.5) == [], c.recs("B")
    mb = c.metrics("B")
    assert mb.get("osprey_calls_transit_total") == 1
    assert mb.get("osprey_calls_attempted_total") == 0
    assert c.metrics("A").get("osprey_calls_answered_total") == 1
    bob.close()


def test_busy_phone_one_failed_attempt_record(nodes):
    """A call through B to alice on A, answered 486 by alice: one record
    of the failed attempt, on B (code 486, no answer time, ended_by
    callee); A writes none and counts the attempt as transit."""
    c = nodes()
    a = c["A"]
    alice = c.phone("alice", "A")
    call = c.caller("B")
    call.invite(body=SDP)
    inv = alice.expect(match(method="INVITE", call_id=call.call_id))
    alice.respond(inv, 180)
    call.ep.expect(call.resp(180))
    alice.respond(inv, 486)
    alice.expect(match(method="ACK", call_id=call.call_id))
    final = call.ep.expect(call.resp(NON2XX))
    assert final.code == 486, final
    call.ack(final)
    recs = c.recs("B", 1)
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["call_id"] == call.call_id and r["code"] == 486, r
    assert r["answer_time"] is None and r["ended_by"] == "callee", r
    assert c.recs("A", secs=0.5) == [], c.recs("A")
    ma = c.metrics("A")
    assert ma.get("osprey_calls_transit_total") == 1
    assert ma.get("osprey_dialogs_transit", state="early") == 0
    assert ma.get("osprey_calls_attempted_total") == 0
    alice.close()


def test_flow_failed_on_transit_node_one_record(nodes):
    """alice's connection to A is gone: A refuses the call B sends it
    (430 Flow Failed) and writes no record of the refusal; B records
    the failed attempt with the 430 it got."""
    c = nodes()
    a = c["A"]
    alice = c.phone("alice", "A")
    alice.close()
    time.sleep(0.3)
    call = c.caller("B")
    call.invite()
    r = call.ep.expect(call.resp(NON2XX), timeout=5)
    assert r.code == 430, r
    call.ack(r)
    assert "INVITE rejected code=430" in a.log_text()
    recs = c.recs("B", 1)
    assert [(x["call_id"], x["code"]) for x in recs] == \
        [(call.call_id, 430)], recs
    assert c.recs("A", secs=0.5) == [], c.recs("A")


def test_transit_node_takes_no_limits(nodes):
    """limits.calls_per_source = 1 on every node: two callers (two
    addresses) call alice on A through B at once.  B counts each caller
    once; A, which sees both calls come from B, must not count B as
    one source twice: both calls ring and are answered."""
    c = nodes(limits={"calls_per_source": 1})
    alice = c.phone("alice", "A")
    calls = [c.caller("B", host=h) for h in ("127.0.0.5", "127.0.0.6")]
    for i, call in enumerate(calls):
        ring_and_answer(c, alice, call, to_tag="t%d" % i)
    for call in calls:
        caller_bye(call, alice)
    recs = c.recs("B", 2)
    assert sorted(r["call_id"] for r in recs) == \
        sorted(call.call_id for call in calls), recs
    assert c.recs("A", secs=0.5) == []
    assert c.metrics("A").get("osprey_calls_limited_total") == 0
    alice.close()


def test_entry_node_fails_adopter_writes_the_one_record(nodes):
    """The call goes caller -> B -> A -> alice and is answered; B dies
    (SIGKILL) and its address moves to C (here: C lists B's address as
    its own, and the caller sends its BYE to C).  C takes the dialog
    from Redis: the entry node's, whose next hop is A (a transit dialog
    is not in Redis, and does not overwrite it), so the BYE reaches
    alice through A.  Exactly one record in the cluster, C's, with the
    call's own start and answer times."""
    c = nodes(names="ABC", domains={"C": (HOSTS["B"],)})
    a, b, third = c["A"], c["B"], c["C"]
    alice = c.phone("alice", "A")
    c.redis.cmd("CONFIG", "RESETSTAT")
    call = c.caller("B")
    t0 = time.time()
    ring_and_answer(c, alice, call)
    t_answer = time.time()
    key = "osprey:dlg:{%s}:%s:tcp1" % (call.call_id, call.from_tag)
    wait_for(lambda: c.redis.cmd("EXISTS", key) == 1, 3,
             "B's dialog is not in Redis")
    # An in-dialog request: B, then A, take note of its CSeq (B rewrites
    # its record; a transit copy written after it would replace it).
    call.request("INFO")
    info = alice.expect(match(method="INFO", call_id=call.call_id))
    alice.send(build_response(info, 200))
    assert call.ep.expect(call.resp(None, "INFO")).code == 200
    time.sleep(0.5)
    # B's view: its next hop towards alice is A; A's own would name B.
    assert found_in(c, key, HOSTS["A"]) == 1
    assert found_in(c, key, HOSTS["B"]) == 0
    # Written by B: at the 180 (the early dialog and the INVITE's record,
    # for a CANCEL), at the 200 and at the INFO's CSeq.
    assert set_calls(c) == 4
    b.proc.kill()
    b.proc.wait()
    b.allowed_rc = (-9,)

    call.proxy = third.addr
    caller_bye(call, alice)
    assert "adopted from redis" in third.log_text(), third.log_text()
    recs = c.recs("C", 1)
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["call_id"] == call.call_id and r["ended_by"] == "caller", r
    assert t0 - 0.5 <= utc(r["start_time"]) <= t_answer + 0.5, r
    assert t0 - 0.5 <= utc(r["answer_time"]) <= t_answer + 0.5, r
    assert c.recs("A", secs=0.5) == [] and c.recs("B", secs=0) == []
    assert c.redis.cmd("EXISTS", key) == 0
    alice.close()


def test_every_node_in_domains_phone_bye_goes_through_b(nodes):
    """Every node lists every node's address in `domains` (the failover
    advice), both up.  The call goes caller -> B -> A -> alice; alice's
    BYE to A carries Route A, then B: A pops only its own entry (B's
    carries B's run mark) and sends the BYE to B, which ends its dialog
    and writes the one record, ended by the callee; A writes none and
    takes over nothing."""
    c = nodes(domains=EVERY)
    a, b = c["A"], c["B"]
    alice = c.phone("alice", "A")
    call = c.caller("B")
    inv, _ = ring_and_answer(c, alice, call)
    wait_for(lambda: "confirmed (transit)" in a.log_text(), 3,
             "A never confirmed a transit dialog")
    phone_bye(call, alice, inv, "tcp1")
    recs = c.recs("B", 1)
    assert len(recs) == 1, recs
    assert recs[0]["call_id"] == call.call_id, recs
    assert recs[0]["ended_by"] == "callee", recs
    assert "BYE from the callee" in b.log_text(), b.log_text()
    assert c.recs("A", secs=0.5) == [], c.recs("A")
    assert "entry node's route came back" not in a.log_text()
    assert dialogs_json(a) == [] and dialogs_json(b) == []
    alice.close()


def test_every_node_in_domains_caller_bye_goes_through_a(nodes):
    """As above, hung up by the caller: its BYE to B carries Route B,
    then A; B pops only its own entry and sends it to A (alice's flow is
    A's), whose transit copy ends; one record, B's, ended by the
    caller."""
    c = nodes(domains=EVERY)
    a, b = c["A"], c["B"]
    alice = c.phone("alice", "A")
    call = c.caller("B")
    ring_and_answer(c, alice, call)
    wait_for(lambda: "confirmed (transit)" in a.log_text(), 3,
             "A never confirmed a transit dialog")
    caller_bye(call, alice)
    recs = c.recs("B", 1)
    assert len(recs) == 1, recs
    assert recs[0]["call_id"] == call.call_id, recs
    assert recs[0]["ended_by"] == "caller", recs
    wait_for(lambda: "ended by caller" in a.log_text(), 3,
             "the BYE did not pass through A")
    assert c.recs("A", secs=0.5) == [], c.recs("A")
    assert dialogs_json(a) == [] and dialogs_json(b) == []
    alice.close()


class MovedAddress:
    """A dead node's address that leads to a survivor now (its virtual IP
    moved, or a DNAT rule): every UDP datagram to addr is sent on to dest
    from addr itself, so answers to addr come back this way too.  Bounded:
    stops at close() or after secs."""

    def __init__(self, addr, dest, secs=30.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.dest, self.secs, self.n = dest, secs, 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        end = time.time() + self.secs
        while not self.stop.is_set() and time.time() < end:
            if select.select([self.sock], [], [], 0.1)[0]:
                data, _ = self.sock.recvfrom(65535)
                self.n += 1
                self.sock.sendto(data, self.dest)

    def close(self):
        self.stop.set()
        self.t.join()
        self.sock.close()


def test_transit_node_takes_over_the_dead_entry_nodes_address(nodes):
    """Every node lists every node's address in `domains`.  Calls go
    caller -> B -> A -> alice and are answered; B dies and its address
    moves to A itself, the transit node (here a relay sends what reaches
    B's address on to A, as a moved virtual IP would deliver it; the
    caller sends to A).  The caller's BYE names B's Record-Route, which
    A now pops as its own (the top entry): A takes the entry node's
    dialog from Redis in place of its transit copy, so alice gets the
    BYE and there is exactly one record, A's, with the call's own start
    and answer times; the key is gone.  A second call, alice's INFO
    (Route A, then B): A pops its own entry only and sends it to B's
    address, which leads back to A; there B's entry is on top, popped,
    and A takes the dialog over; the INFO reaches the caller.  Then her
    BYE: A holds the call now, B's entry no next hop of it, so A pops
    both and the BYE goes straight to the caller; its one record is A's,
    ended by the callee."""
    c = nodes(domains=EVERY)
    a, b = c["A"], c["B"]
    alice = c.phone("alice", "A")
    calls = []
    for tag in ("tcp1", "tcp2"):
        call = c.caller("B")
        inv, _ = ring_and_answer(c, alice, call, to_tag=tag)
        key = "osprey:dlg:{%s}:%s:%s" % (call.call_id, call.from_tag, tag)
        wait_for(lambda: c.redis.cmd("EXISTS", key) == 1, 3,
                 "B's dialog is not in Redis")
        calls.append((call, inv, tag, key))
    t_answer = time.time()
    wait_for(lambda: a.log_text().count("confirmed (transit)") == 2, 3,
             "A has no transit copies")
    time.sleep(0.5)
    b.proc.kill()
    b.proc.wait()
    b.allowed_rc = (-9,)
    moved = MovedAddress(b.addr, a.addr)
    try:
        call, inv, tag, key = calls[0]
        call.proxy = a.addr
        caller_bye(call, alice)
        assert "the transit copy gives way to the entry node's dialog" in \
            a.log_text(), a.log_text()
        recs = c.recs("A", 1)
        assert len(recs) == 1, recs
        r = recs[0]
        assert r["call_id"] == call.call_id and r["ended_by"] == "caller", r
        assert r["code"] == 200 and r["src_ip"] == "127.0.0.1", r
        assert utc(r["start_time"]) <= t_answer + 0.5, r
        assert utc(r["answer_time"]) <= t_answer + 0.5, r
        wait_for(lambda: c.redis.cmd("EXISTS", key) == 0, 3,
                 "the entry node's dialog stayed in Redis")
        assert moved.n == 0         # A popped its own and B's entry

        call, inv, tag, key = calls[1]
        hs = [("Via", "SIP/2.0/TCP 127.0.0.1:%d;branch=%s;rport"
               % (alice.port, new_branch())),
              ("Max-Forwards", "70"),
              ("From", inv.get("to") + ";tag=" + tag),
              ("To", inv.get("from")),
              ("Call-ID", call.call_id), ("CSeq", "1 INFO")]
        hs += [("Route", r) for r in inv.values("record-route")]
        alice.send(build_request("INFO", uri_of(inv.get("contact")), hs))
        info = call.ep.expect(match(method="INFO", call_id=call.call_id))
        call.ep.send(build_response(info, 200), info.src)
        r = alice.expect(match(response=True, cseq_method="INFO"))
        assert r.code == 200, r.text()
        assert moved.n >= 1         # through B's address, back to A
        assert a.log_text().count("the transit copy gives way") == 2
        n = moved.n
        phone_bye(call, alice, inv, tag)
        assert moved.n == n         # A holds the call: no detour now
    finally:
        moved.close()
    recs = c.recs("A", 2)
    assert len(recs) == 2, recs
    r = recs[1]
    assert r["call_id"] == call.call_id and r["ended_by"] == "callee", r
    wait_for(lambda: c.redis.cmd("EXISTS", key) == 0, 3,
             "the entry node's dialog stayed in Redis")
    assert c.recs("B", secs=0) == []
    alice.close()


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_on_a_over_tcp_called_through_b(nodes, tmp_path):
    """A real phone: baresip bob registers on A (127.0.0.1) over TCP and
    answers by itself; a call through B reaches him through A, is
    answered and ended by the caller.  One record, B's; A lists the
    call as transit while it is up."""
    c = nodes(hosts={"A": "127.0.0.1"})
    a, b = c["A"], c["B"]
    bob = interop.Baresip(str(tmp_path), "bob", "auto", proxy_port=a.port,
                          password="unused", transport="tcp", regint=600)
    try:
        assert bob.registration(15), bob.report()
        wait_for(lambda: "transport=tcp" in ctl(b, "registrations"), 5,
                 "B never learnt bob")
        call = c.caller("B", user="bob")
        call.invite()
        ok = call.ep.expect(call.resp(200), 10)
        assert "m=audio" in ok.text(), ok.text()
        call.ack(ok)
        assert bob.wait_for("Call established", 5), bob.report()
        assert [d["transit"] for d in dialogs_json(a)] == [True]
        assert [d["transit"] for d in dialogs_json(b)] == [False]
        call.bye()
        assert call.ep.expect(call.resp(None, "BYE"), 5).code == 200
        recs = c.recs("B", 1)
        assert len(recs) == 1, recs
        assert recs[0]["call_id"] == call.call_id, recs
        assert recs[0]["ended_by"] == "caller", recs
        assert recs[0]["answer_time"] is not None, recs
        assert c.recs("A", secs=0.5) == [], c.recs("A")
    finally:
        bob.stop()


def test_media_anchored_once_by_the_entry_node(nodes, rtpengine):
    """media.relay = "always" on both nodes, one rtpengine: a call
    through B to alice on A is offered to rtpengine by B only (alice gets
    rtpengine's address, the caller too); A, the transit node, neither
    offers nor answers, nor deletes at the BYE: its dialog is not
    relayed (ospreyctl dialogs: media false, transit true).  B's BYE
    deletes the session."""
    c = nodes(media=rtpengine.ng)
    a, b = c["A"], c["B"]
    alice = c.phone("alice", "A")
    call = c.caller("B")
    inv, ok = ring_and_answer(c, alice, call)
    addr, port = sdp_addr(inv.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), inv.raw
    addr, port = sdp_addr(ok.body)
    assert addr == "127.0.0.1" and rtpengine.owns(port), ok.raw
    assert rtpe_has_call(rtpengine.ng, call.call_id)
    assert "media relayed by" in b.log_text()
    assert "media relayed by" not in a.log_text(), a.log_text()
    da, db = dialogs_json(a), dialogs_json(b)
    assert [(d["transit"], d["media"]) for d in da] == [(True, False)], da
    assert [(d["transit"], d["media"]) for d in db] == [(False, True)], db
    caller_bye(call, alice)
    assert wait_gone(rtpengine.ng, call.call_id), b.log_text()
    assert "rtpengine delete" in b.log_text()
    assert "rtpengine delete" not in a.log_text(), a.log_text()
    assert len(c.recs("B", 1)) == 1 and c.recs("A", secs=0.5) == []
    alice.close()
