"""Dialogs shared by several ospreyd nodes through a real Redis
(dialog.backend = "redis", issue 14 item 4).

Each test starts its own redis-server and two nodes, A on 127.0.0.2 and B
on 127.0.0.3, on the same port, each listing both addresses in `domains`:
what a failover looks like once the address in our Record-Route (a
virtual IP, or one name for both) leads to B.  The tests send B what the
caller would send A after the failover.  Calls go caller -> node -> a UAS
(a static route), in-dialog requests along the Record-Route.  Skipped
when redis-server is not installed."""

import datetime
import json
import socket
import time

import pytest
from test_metrics import metrics_conf, scrape
from test_redis import REDIS, RedisServer, free_tcp_port, wait_for

from conftest import lc
from sip import SDP, UAC, UAS, Endpoint

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed")

HOSTS = ("127.0.0.2", "127.0.0.3")
TIMEOUT_S = 600


def port_free_on_all(hosts):
    """A UDP port free on every host (bound on each, then released)."""
    for _ in range(50):
        s0 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s0.bind((hosts[0], 0))
        port = s0.getsockname()[1]
        socks = [s0]
        try:
            for h in hosts[1:]:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no port free on %r" % (hosts,))


class Pair:
    """Redis, nodes A and B, a caller and a UAS (bob)."""

    def __init__(self, factory, tmp_path, backend="redis", mports=None):
        self.redis = RedisServer()
        self.uas = UAS(Endpoint())
        self.caller = Endpoint()
        port = port_free_on_all(HOSTS)
        self.nodes = {}
        self.cdr = {}
        for i, (name, host) in enumerate(zip("AB", HOSTS)):
            self.cdr[name] = str(tmp_path / ("cdr-%s.jsonl" % name))
            more = [
                'redis = { address = "127.0.0.1:%d"; node_id = "%s"; };'
                % (self.redis.port, name),
                'dialog = { backend = "%s"; };' % backend,
                "accounting = %s;" % lc({"file": self.cdr[name],
                                         "format": "jsonl",
                                         "fsync": "always"})]
            if mports:
                more.append(metrics_conf(mports[i]))
            o = factory(port=port, listen=[("udp", host, port)],
                        routes=[("^bob$", [self.uas.target])],
                        domains=("example.test",) + HOSTS,
                        timers={"dialog_timeout": TIMEOUT_S},
                        extra="\n".join(more))
            o.addr = (host, port)
            self.nodes[name] = o
            if backend == "redis":
                wait_for(lambda: "cluster secret is in use" in
                         o.log_text(), 5, "%s has no cluster key" % name)

    def call(self, node):
        return UAC(self.caller, self.nodes[node].addr,
                   "sip:bob@example.test")

    def answered(self, node):
        """A call through node: INVITE/180/200/ACK.  Returns the call."""
        call = self.call(node)
        call.invite(body=SDP)
        inv = self.uas.expect("INVITE", call_id=call.call_id)
        self.uas.respond(inv, 180)
        self.caller.expect(call.resp(180))
        self.uas.respond(inv, 200, body=SDP)
        ok = self.caller.expect(call.resp(200))
        call.ack(ok)
        self.uas.expect("ACK", call_id=call.call_id)
        return call

    def bye_routes(self, call, to):
        """BYE sent to node `to`: it reaches bob, his 200 comes back."""
        call.proxy = self.nodes[to].addr
        call.bye()
        bye = self.uas.expect("BYE", call_id=call.call_id)
        self.uas.respond(bye, 200)
        r = self.caller.expect(call.resp(method="BYE"))
        assert r.code == 200, r.text()

    def keys(self, call):
        return self.redis.cmd("KEYS", "osprey:dlg:{%s}:*" % call.call_id)

    def close(self):
        self.uas.ep.close()
        self.caller.close()
        self.redis.stop()


@pytest.fixture
def pair(osprey_factory, tmp_path):
    made = []

    def start(**kw):
        p = Pair(osprey_factory, tmp_path, **kw)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


def records(path, want=None, secs=3.0):
    """The CDRs in path (jsonl); with want, waits until there are that
    many (then a little longer, so that a second one would show)."""
    deadline = time.time() + secs
    recs = []
    while True:
        try:
            with open(path) as f:
                recs = [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            recs = []
        if time.time() >= deadline or (want is not None and
                                       len(recs) >= want):
            break
        time.sleep(0.1)
    if want is not None:
        time.sleep(0.3)
        with open(path) as f:
            recs = [json.loads(x) for x in f if x.strip()]
    return recs


def utc(text):
    """A CDR time (ISO 8601, UTC) as Unix seconds."""
    text = text.rstrip("Z")
    frac = 0.0
    if "." in text:
        text, f = text.split(".", 1)
        frac = float("0." + f)
    d = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp() + frac


def test_bye_after_failover_routes_through_b(pair):
    """A call through A is answered; its dialog is in Redis (expiry
    dialog_timeout + 60 s).  A dies (SIGKILL); the caller's BYE, sent to
    B as a failover would, reaches bob and his 200 comes back: B took the
    dialog from Redis.  Exactly one CDR, written by B, with the call's
    own start and answer times (before A died); the key is gone.  A
    second BYE to B: 481 (no dialog in B's table nor in Redis)."""
    p = pair()
    a, b = p.nodes["A"], p.nodes["B"]
    t0 = time.time()
    call = p.answered("A")
    t_answer = time.time()
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    key = p.keys(call)[0]
    assert key == "osprey:dlg:{%s}:%s:%s" % (call.call_id, call.from_tag,
                                              call.to_tag), key
    ttl = p.redis.cmd("TTL", key)
    assert TIMEOUT_S < ttl <= TIMEOUT_S + 60, ttl
    time.sleep(1.0)
    a.proc.kill()
    a.proc.wait()
    a.allowed_rc = (-9,)
    t_kill = time.time()

    p.bye_routes(call, "B")
    assert "adopted from redis" in b.log_text(), b.log_text()
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["call_id"] == call.call_id, r
    assert r["ended_by"] == "caller", r
    assert t0 - 1 <= utc(r["start_time"]) <= t_answer + 0.5, r
    assert t0 - 1 <= utc(r["answer_time"]) <= t_answer + 0.5, r
    assert utc(r["end_time"]) >= t_kill - 0.5, r
    assert float(r["duration"]) >= 0.9, r
    assert records(p.cdr["A"]) == []
    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")

    call.bye()
    r = p.caller.expect(call.resp(method="BYE"))
    assert r.code == 481, r.text()
    assert p.uas.ep.collect(0.3) == []


def test_cdr_once_and_key_gone_after_bye_on_a(pair):
    """A call through A ended on A: one CDR (A's), none on B, and the
    dialog is no longer in Redis.  A BYE for it sent to B then: 481."""
    p = pair()
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.bye_routes(call, "A")
    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")
    assert len(records(p.cdr["A"], 1)) == 1
    assert records(p.cdr["B"], secs=0.5) == []
    call.proxy = p.nodes["B"].addr
    call.bye()
    r = p.caller.expect(call.resp(method="BYE"))
    assert r.code == 481, r.text()
    assert p.uas.ep.collect(0.3) == []


def test_copy_dropped_when_another_node_ends_it(pair):
    """B adopts A's dialog (an INFO sent to B) while A still runs; A then
    ends it (the callee's BYE through A): B drops its copy on the
    published end, and only A writes a record."""
    p = pair()
    a, b = p.nodes["A"], p.nodes["B"]
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    call.proxy = b.addr
    call.request("INFO")
    info = p.uas.expect("INFO", call_id=call.call_id)
    p.uas.respond(info, 200)
    assert p.caller.expect(call.resp(method="INFO")).code == 200
    assert "adopted from redis" in b.log_text()
    call.proxy = a.addr
    p.bye_routes(call, "A")
    wait_for(lambda: "ended on another node, dropped" in b.log_text(), 3,
             "B kept its copy")
    assert len(records(p.cdr["A"], 1)) == 1
    assert records(p.cdr["B"], secs=0.5) == []


def test_redis_down_calls_work_locally(pair):
    """Redis killed during a call: the call goes on and its BYE routes
    through A, one CDR, the failed delete counted
    (osprey_dialog_redis_errors_total); a new call while Redis is down
    works too.  Redis back, empty: A writes the dialogs it holds again."""
    mports = [free_tcp_port(), free_tcp_port()]
    p = pair(mports=mports)
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.redis.kill()
    wait_for(lambda: "redis dialogs: down" in p.nodes["A"].log_text(), 3,
             "A did not see Redis go")
    p.bye_routes(call, "A")
    assert len(records(p.cdr["A"], 1)) == 1
    s = scrape(mports[0])
    assert s.samples[("osprey_dialog_redis_errors_total",
                      frozenset())] >= 1, s.text
    second = p.answered("A")
    p.redis.start()
    wait_for(lambda: "re-published 1 dialog(s)" in p.nodes["A"].log_text(),
             8, "A did not re-publish its dialog")
    wait_for(lambda: len(p.keys(second)) == 1, 3, "not back in Redis")
    p.bye_routes(second, "A")
    wait_for(lambda: p.keys(second) == [], 3, "the dialog stayed in Redis")
    assert len(records(p.cdr["A"], 2)) == 2


def test_graceful_stop_leaves_the_dialog_to_b(pair):
    """A stopped cleanly (SIGTERM) with a call up writes no record for it
    and leaves it in Redis: its BYE through B routes, and B writes the
    one record."""
    p = pair()
    a = p.nodes["A"]
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    assert a.stop() == 0
    assert records(p.cdr["A"], secs=0.3) == []
    assert len(p.keys(call)) == 1
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["call_id"] == call.call_id, recs
    assert records(p.cdr["A"], secs=0.1) == []
    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")
