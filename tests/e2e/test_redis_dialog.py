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
import os
import signal
import socket
import time

import pytest
from test_metrics import metrics_conf, scrape
from redisresp import command
from test_redis import REDIS, RedisServer, free_tcp_port, wait_for

from conftest import lc
from sip import SDP, UAC, UAS, Endpoint, match, parse

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed")

HOSTS = ("127.0.0.2", "127.0.0.3")
TIMEOUT_S = 600


def port_free_on_all(hosts):
    """A port free on every host for UDP and for TCP (bound on each,
    then released): nodes listen on both with one number, and a TCP
    connection's ephemeral port (Redis clients, phones) can hold it."""
    for _ in range(50):
        s0 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s0.bind((hosts[0], 0))
        port = s0.getsockname()[1]
        socks = [s0]
        try:
            for h in hosts:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    if h == hosts[0] and kind == socket.SOCK_DGRAM:
                        continue
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    if kind == socket.SOCK_STREAM:
                        s.setsockopt(socket.SOL_SOCKET,
                                     socket.SO_REUSEADDR, 1)
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

    def __init__(self, factory, tmp_path, backend="redis", mports=None,
                 timeout=None, forked=False):
        self.redis = RedisServer()
        self.uas = UAS(Endpoint())
        # forked: a second UAS, bob's calls fork to both (in parallel).
        self.uas2 = UAS(Endpoint()) if forked else None
        targets = [self.uas.target] + ([self.uas2.target] if forked else [])
        self.caller = Endpoint()
        port = port_free_on_all(HOSTS)
        self.nodes = {}
        self.cdr = {}
        for i, (name, host) in enumerate(zip("AB", HOSTS)):
            self.cdr[name] = str(tmp_path / ("cdr-%s.jsonl" % name))
            more = [
                'redis = { address = "127.0.0.1:%d"; node_id = "%s";%s };'
                % (self.redis.port, name,
                   "" if timeout is None else " timeout = %d;" % timeout),
                'dialog = { backend = "%s"; };' % backend,
                "accounting = %s;" % lc({"file": self.cdr[name],
                                         "format": "jsonl",
                                         "fsync": "always"})]
            if mports:
                more.append(metrics_conf(mports[i]))
            o = factory(port=port, listen=[("udp", host, port)],
                        routes=[("^bob$", targets)],
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

    def kill(self, name):
        o = self.nodes[name]
        o.proc.kill()
        o.proc.wait()
        o.allowed_rc = (-9,)

    def early(self, node):
        """A call through node rung (180 with bob's tag, the caller took
        the early dialog from it).  Returns (call, bob's INVITE)."""
        call = self.call(node)
        call.invite(body=SDP)
        inv = self.uas.expect("INVITE", call_id=call.call_id)
        self.uas.respond(inv, 180, headers=[("Require", "100rel"),
                                            ("RSeq", "1")])
        call.learn(self.caller.expect(call.resp(180)))
        return call, inv

    def stalled(self):
        """Redis stops answering (SIGSTOP) until resumed()."""
        os.kill(self.redis.proc.pid, signal.SIGSTOP)

    def resumed(self):
        os.kill(self.redis.proc.pid, signal.SIGCONT)

    def keys(self, call):
        """The call's dialog keys (not its INVITE's, no To tag)."""
        return [k for k in self.redis.cmd("KEYS", "osprey:dlg:{%s}:*" %
                                          call.call_id)
                if not k.endswith(":")]

    def close(self):
        self.uas.ep.close()
        if self.uas2 is not None:
            self.uas2.ep.close()
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


def test_bye_retransmitted_while_b_fetches(pair):
    """A killed; the caller's BYE reaches B while Redis is slow
    (SIGSTOP, shorter than redis.timeout), and is retransmitted twice
    meanwhile: B's server transaction absorbs them, so bob gets exactly
    one BYE once Redis answers; every retransmission after bob's 200 gets
    that 200 again, and bob sees no second BYE."""
    p = pair()
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.kill("A")
    call.proxy = p.nodes["B"].addr
    p.stalled()
    try:
        req = parse(call.bye())
        for _ in range(2):
            time.sleep(0.15)
            p.caller.send(req.raw, call.proxy)
        assert p.uas.ep.collect(0.1, match(method="BYE")) == []
    finally:
        p.resumed()
    bye = p.uas.expect("BYE", call_id=call.call_id)
    # B's client transaction may retransmit it (Timer E): one branch.
    more = p.uas.ep.collect(0.4, match(method="BYE"))
    assert {m.branch for m in more} <= {bye.branch}, more
    p.uas.respond(bye, 200)
    r = p.caller.expect(call.resp(method="BYE"))
    assert r.code == 200, r.text()
    for _ in range(2):
        p.caller.send(req.raw, call.proxy)
        again = p.caller.expect(call.resp(method="BYE"))
        assert again.code == 200 and again.to_tag == r.to_tag, again.text()
    more = p.uas.ep.collect(0.3, match(method="BYE"))
    assert {m.branch for m in more} <= {bye.branch}, more
    assert len(records(p.cdr["B"], 1)) == 1


def test_reinvite_gets_100_while_b_fetches(pair):
    """A re-INVITE reaching B while Redis is slow gets 100 Trying at once
    (its INVITE server transaction), its retransmission another 100, and
    goes on to bob once Redis answers; bob's 200 reaches the caller."""
    p = pair()
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.kill("A")
    call.proxy = p.nodes["B"].addr
    p.stalled()
    try:
        call.invite(body=SDP)
        t = p.caller.expect(call.resp(100), 0.5)
        assert t.code == 100, t.text()
        call.resend_invite()
        assert p.caller.expect(call.resp(100), 0.5).code == 100
        assert p.uas.ep.collect(0.1, match(method="INVITE")) == []
    finally:
        p.resumed()
    inv = p.uas.expect("INVITE", call_id=call.call_id)
    p.uas.respond(inv, 200, body=SDP)
    ok = p.caller.expect(call.resp(200))
    call.ack(ok)
    p.uas.expect("ACK", call_id=call.call_id)
    assert p.uas.ep.collect(0.3, match(method="INVITE")) == []


def test_redis_too_slow_bye_500_retry_after(pair):
    """Redis stalls longer than redis.timeout while B asks it for a
    dialog: the BYE gets 500 + Retry-After (the dialog is not said gone,
    as a 481 would), a retransmission meanwhile is absorbed and one after
    gets the same 500; nothing reaches bob.  Redis back: the BYE (a new
    transaction) routes."""
    p = pair(timeout=400)
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.kill("A")
    call.proxy = p.nodes["B"].addr
    p.stalled()
    try:
        req = parse(call.bye())
        time.sleep(0.15)
        p.caller.send(req.raw, call.proxy)
        r = p.caller.expect(call.resp(method="BYE"), 2)
        assert r.code == 500 and int(r.get("retry-after")) > 0, r.text()
        assert p.caller.collect(0.3, call.resp(method="BYE")) == []
        p.caller.send(req.raw, call.proxy)
        again = p.caller.expect(call.resp(method="BYE"), 1)
        assert again.code == 500 and again.to_tag == r.to_tag, again.text()
    finally:
        p.resumed()
    assert p.uas.ep.collect(0.2, match(method="BYE")) == []
    deadline = time.time() + 10
    while True:
        call.bye()
        bye = p.uas.ep.collect(1.0, match(method="BYE"))
        if bye:
            break
        r = p.caller.expect(call.resp(method="BYE"), 1)
        assert r.code == 500, r.text()
        assert time.time() < deadline, "B never asked Redis again"
        time.sleep(0.3)
    p.uas.respond(bye[0], 200)
    assert p.caller.expect(call.resp(method="BYE")).code == 200


def test_ack_after_failover_reaches_bob(pair):
    """A call through A is answered; A dies before the caller's ACK.  The
    ACK sent to B (a dialog B does not hold) makes B fetch the dialog
    from Redis and route the ACK to bob; its retransmission while Redis
    is asked is dropped (bob gets one), a later one routes normally.  An
    ACK of a dialog Redis does not have is dropped with a log line."""
    p = pair()
    b = p.nodes["B"]
    call = p.call("A")
    call.invite(body=SDP)
    inv = p.uas.expect("INVITE", call_id=call.call_id)
    p.uas.respond(inv, 200, body=SDP)
    ok = p.caller.expect(call.resp(200))
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.kill("A")
    call.proxy = b.addr
    p.stalled()
    try:
        ack = call.ack(ok)
        time.sleep(0.1)
        p.caller.send(ack, call.proxy)
        assert p.uas.ep.collect(0.1, match(method="ACK")) == []
    finally:
        p.resumed()
    got = p.uas.expect("ACK", call_id=call.call_id)
    assert got.cseq == (ok.cseq[0], "ACK"), got.text()
    assert p.uas.ep.collect(0.4, match(method="ACK")) == []
    assert "adopted from redis" in b.log_text()
    p.caller.send(ack, call.proxy)
    p.uas.expect("ACK", call_id=call.call_id)
    p.bye_routes(call, "B")
    assert len(records(p.cdr["B"], 1)) == 1

    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")
    p.caller.send(ack, call.proxy)  # its dialog is gone everywhere
    wait_for(lambda: "ACK not forwarded" in b.log_text(), 3,
             "no log line for the ACK of no dialog")
    assert p.uas.ep.collect(0.3, match(method="ACK")) == []


def set_calls(p):
    """SETs Redis has run so far (INFO commandstats)."""
    info = p.redis.cmd("INFO", "commandstats")
    if isinstance(info, bytes):
        info = info.decode()
    for line in info.splitlines():
        if line.startswith("cmdstat_set:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_early_dialog_in_redis_prack_update_bye_via_b(pair):
    """bob rings (180 with his tag, retransmitted): A writes the early
    dialog to Redis once, and its INVITE's record once (two SETs, not
    two per 180).  A dies; the
    caller's PRACK and UPDATE in the early dialog, sent to B, reach bob
    (B adopts the early dialog) and their 200s come back; the caller's
    BYE in the early dialog through B ends it: bob gets it, one CDR (B's),
    the key is gone."""
    p = pair()
    b = p.nodes["B"]
    before = set_calls(p)
    call, inv = p.early("A")
    for _ in range(3):
        p.uas.respond(inv, 180, headers=[("Require", "100rel"),
                                         ("RSeq", "1")])
        p.caller.expect(call.resp(180))
    wait_for(lambda: len(p.keys(call)) == 1, 3,
             "the early dialog is not in Redis")
    time.sleep(0.3)
    # The early dialog, and the INVITE's record (for a CANCEL): once.
    assert set_calls(p) - before == 2, set_calls(p) - before
    p.kill("A")
    call.proxy = b.addr
    for method, hs in (("PRACK", [("RAck", "1 1 INVITE")]), ("UPDATE", [])):
        call.request(method, headers=hs)
        req = p.uas.expect(method, call_id=call.call_id)
        p.uas.respond(req, 200)
        r = p.caller.expect(call.resp(method=method))
        assert r.code == 200, r.text()
    assert "adopted from redis (early)" in b.log_text(), b.log_text()
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["call_id"] == call.call_id, recs
    assert recs[0]["code"] == 487 and not recs[0].get("answer_time"), recs
    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")


def test_early_dialog_confirmed_overwrites_and_failed_deletes(pair):
    """The early dialog's key is overwritten by the confirmed dialog (B
    adopts it confirmed: a BYE from bob through B routes); a call that
    rings and then fails (486) leaves no key behind."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3,
             "the early dialog is not in Redis")
    p.uas.respond(inv, 200, body=SDP)
    ok = p.caller.expect(call.resp(200))
    call.ack(ok)
    p.uas.expect("ACK", call_id=call.call_id)
    time.sleep(0.3)
    assert len(p.keys(call)) == 1
    call.proxy = b.addr
    call.request("INFO")
    info = p.uas.expect("INFO", call_id=call.call_id)
    p.uas.respond(info, 200)
    assert p.caller.expect(call.resp(method="INFO")).code == 200
    assert "adopted from redis" in b.log_text(), b.log_text()
    assert "adopted from redis (early)" not in b.log_text(), b.log_text()
    call.proxy = p.nodes["A"].addr
    p.bye_routes(call, "A")

    failed, inv = p.early("A")
    wait_for(lambda: len(p.keys(failed)) == 1, 3,
             "the early dialog is not in Redis")
    p.uas.respond(inv, 486)
    assert p.caller.expect(failed.resp(486)).code == 486
    wait_for(lambda: p.keys(failed) == [], 3, "the early dialog stayed")


def invite_key(p, call):
    return "osprey:dlg:{%s}:%s:" % (call.call_id, call.from_tag)


def test_cancel_after_failover_relayed_with_the_invites_branch(pair):
    """bob rings through A (A writes the INVITE's record once); A dies.
    The caller's CANCEL reaches B: 200 for it, and B relays a CANCEL to
    bob with exactly A's Via (branch and sent-by) of that INVITE, so bob
    finds his INVITE transaction.  bob's 487 (sent where A's address now
    leads: B) reaches the caller with only the caller's Via; B ACKs it to
    bob with the INVITE's branch, and absorbs the caller's ACK.  A
    retransmitted CANCEL gets 200 again, no second CANCEL to bob.  B
    writes the attempt's one record (487, ended by the caller) and the
    early dialog leaves Redis."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    wait_for(lambda: p.redis.cmd("EXISTS", invite_key(p, call)) == 1, 3,
             "the INVITE's record is not in Redis")
    p.kill("A")
    call.proxy = b.addr
    req = parse(call.cancel())
    r = p.caller.expect(call.resp(method="CANCEL"))
    assert r.code == 200, r.text()
    cancel = p.uas.expect("CANCEL", call_id=call.call_id)
    assert cancel.branch == inv.branch, (cancel.text(), inv.text())
    assert cancel.vias[0].sent_by == inv.vias[0].sent_by, cancel.text()
    assert len(cancel.vias) == 1, cancel.text()
    assert cancel.cseq == (inv.cseq[0], "CANCEL"), cancel.text()
    p.uas.ep.send(p.uas.respond(cancel, 200, send=False), b.addr)
    p.uas.ep.send(p.uas.respond(inv, 487, send=False), b.addr)
    fin = p.caller.expect(call.resp(487))
    call.check_vias(fin)
    ack = p.uas.expect("ACK", call_id=call.call_id)
    assert ack.branch == inv.branch and ack.cseq == (inv.cseq[0], "ACK"), \
        ack.text()
    call.ack(fin)
    assert p.uas.ep.collect(0.3, match(method="ACK")) == []
    p.caller.send(req.raw, b.addr)
    assert p.caller.expect(call.resp(method="CANCEL")).code == 200
    assert p.uas.ep.collect(0.3, match(method="CANCEL")) == []
    # The attempt's one record: B's (it took the early dialog).
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 487, recs
    assert recs[0]["ended_by"] == "caller", recs
    wait_for(lambda: p.keys(call) == [], 3, "the early dialog stayed")


def test_answer_reaching_b_confirms_the_early_dialog(pair):
    """bob rings through A; A dies; the caller's CANCEL reaches B and
    crosses bob's 200: the 2xx reaching B is sent on to the caller, B
    takes the early dialog from Redis and confirms it, so the caller's
    ACK and BYE through B reach bob, and B writes exactly one record (an
    answered call)."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    wait_for(lambda: p.redis.cmd("EXISTS", invite_key(p, call)) == 1, 3,
             "the INVITE's record is not in Redis")
    p.kill("A")
    call.proxy = b.addr
    call.cancel()
    assert p.caller.expect(call.resp(method="CANCEL")).code == 200
    cancel = p.uas.expect("CANCEL", call_id=call.call_id)
    p.uas.ep.send(p.uas.respond(inv, 200, body=SDP, send=False), b.addr)
    p.uas.ep.send(p.uas.respond(cancel, 200, send=False), b.addr)
    ok = p.caller.expect(call.resp(200))
    call.check_vias(ok)
    wait_for(lambda: "confirmed" in b.log_text(), 3, "B did not confirm")
    call.ack(ok)
    p.uas.expect("ACK", call_id=call.call_id)
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 200, recs
    assert recs[0].get("answer_time"), recs


def test_redis_down_bye_to_b_500_ack_dropped(pair):
    """Redis down when B gets the BYE (and the ACK) of a dialog it does
    not hold: 500 + Retry-After for the BYE (the call is not said gone),
    the same 500 to its retransmission; the ACK is dropped with a log
    line; nothing reaches bob."""
    p = pair()
    b = p.nodes["B"]
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    p.kill("A")
    p.redis.kill()
    wait_for(lambda: "redis dialogs: down" in b.log_text(), 3,
             "B did not see Redis go")
    call.proxy = b.addr
    req = parse(call.bye())
    r = p.caller.expect(call.resp(method="BYE"))
    assert r.code == 500 and int(r.get("retry-after")) > 0, r.text()
    p.caller.send(req.raw, call.proxy)
    again = p.caller.expect(call.resp(method="BYE"))
    assert again.code == 500 and again.to_tag == r.to_tag, again.text()
    call.request("ACK")
    wait_for(lambda: "ACK dropped, redis is down" in b.log_text(), 3,
             "no log line for the ACK")
    assert p.uas.ep.collect(0.3) == []
    assert p.caller.collect(0.1, call.resp(method="BYE")) == []


def test_answer_without_cancel_reaches_b(pair):
    """bob rings through A (180 with his tag); A dies (SIGKILL); bob
    answers and his 200 reaches B (A's address leads there), once while
    Redis is slow (SIGSTOP) and again, retransmitted, meanwhile.  No
    CANCEL went through B: B asks Redis for the INVITE's record, finds
    A's branch of it and sends both 200s on to the caller with only his
    Via (a 2xx retransmission must pass).  The early dialog is confirmed
    on B: the caller's ACK and BYE through B reach bob, and there is
    exactly one record, B's: code 200, the call's own start time (before
    A died)."""
    p = pair()
    b = p.nodes["B"]
    t0 = time.time()
    call, inv = p.early("A")
    wait_for(lambda: p.redis.cmd("EXISTS", invite_key(p, call)) == 1, 3,
             "the INVITE's record is not in Redis")
    t_ring = time.time()
    time.sleep(1.0)
    p.kill("A")
    call.proxy = b.addr
    ok200 = p.uas.respond(inv, 200, body=SDP, send=False)
    p.stalled()
    try:
        p.uas.ep.send(ok200, b.addr)
        time.sleep(0.15)
        p.uas.ep.send(ok200, b.addr)
        time.sleep(0.15)
        assert p.caller.collect(0.1, call.resp(200)) == []
    finally:
        p.resumed()
    oks = [p.caller.expect(call.resp(200)) for _ in range(2)]
    for ok in oks:
        call.check_vias(ok)
        assert ok.to_tag == call.to_tag, ok.text()
    assert "an answer to another node's INVITE, taken from redis" in \
        b.log_text(), b.log_text()
    wait_for(lambda: "confirmed" in b.log_text(), 3, "B did not confirm")
    call.ack(oks[0])
    ack = p.uas.expect("ACK", call_id=call.call_id)
    assert ack.cseq == (inv.cseq[0], "ACK"), ack.text()
    time.sleep(0.3)
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["call_id"] == call.call_id and r["code"] == 200, r
    assert t0 - 1 <= utc(r["start_time"]) <= t_ring + 0.5, r
    assert r.get("answer_time"), r
    assert records(p.cdr["A"], secs=0.2) == []
    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")
    assert p.redis.cmd("EXISTS", invite_key(p, call)) == 0


def test_failure_without_cancel_reaching_b_acked(pair):
    """bob rings through A; A dies; bob declines (486) and his answer
    reaches B: B sends it on to the caller, ACKs it to bob with A's
    branch, absorbs the caller's ACK, and writes the attempt's one record
    (486, by the callee); the early dialog leaves Redis."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    wait_for(lambda: p.redis.cmd("EXISTS", invite_key(p, call)) == 1, 3,
             "the INVITE's record is not in Redis")
    p.kill("A")
    call.proxy = b.addr
    p.uas.ep.send(p.uas.respond(inv, 486, send=False), b.addr)
    fin = p.caller.expect(call.resp(486))
    call.check_vias(fin)
    ack = p.uas.expect("ACK", call_id=call.call_id)
    assert ack.branch == inv.branch, ack.text()
    call.ack(fin)
    assert p.uas.ep.collect(0.3, match(method="ACK")) == []
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 486, recs
    assert recs[0]["ended_by"] == "callee", recs
    wait_for(lambda: p.keys(call) == [], 3, "the early dialog stayed")


def forked_rung(p):
    """A call through A forked to bob's two phones, both ringing (180,
    each its own tag) and both branches in the INVITE's record.  Returns
    (call, [INVITE at uas, INVITE at uas2])."""
    call = p.call("A")
    call.invite(body=SDP)
    invs = [u.expect("INVITE", call_id=call.call_id)
            for u in (p.uas, p.uas2)]
    assert invs[0].branch != invs[1].branch
    for u, inv in zip((p.uas, p.uas2), invs):
        u.respond(inv, 180)
        call.learn(p.caller.expect(call.resp(180)))

    def both():
        rec = command(p.redis.port, "GET", invite_key(p, call),
                      encoding="latin-1")
        return rec is not None and all(i.branch in rec for i in invs)
    wait_for(both, 3, "the INVITE's record does not name both branches")
    return call, invs


def test_forked_cancel_after_failover_reaches_each_branch(pair):
    """A call through A forks to two phones; both ring (the INVITE's
    record names both branches).  A dies; the caller's CANCEL reaches B:
    each phone gets a CANCEL with A's Via of its own branch; their 487s
    are ACKed with their own branch and reach the caller; one record (B's,
    487)."""
    p = pair(forked=True)
    b = p.nodes["B"]
    call, invs = forked_rung(p)
    p.kill("A")
    call.proxy = b.addr
    call.cancel()
    assert p.caller.expect(call.resp(method="CANCEL")).code == 200
    for u, inv in zip((p.uas, p.uas2), invs):
        cancel = u.expect("CANCEL", call_id=call.call_id)
        assert cancel.branch == inv.branch, (cancel.text(), inv.text())
        assert cancel.vias[0].sent_by == inv.vias[0].sent_by
        assert cancel.uri == inv.uri, (cancel.uri, inv.uri)
        u.ep.send(u.respond(cancel, 200, send=False), b.addr)
        u.ep.send(u.respond(inv, 487, send=False), b.addr)
        ack = u.expect("ACK", call_id=call.call_id)
        assert ack.branch == inv.branch, ack.text()
        fin = p.caller.expect(call.resp(487))
        call.check_vias(fin)
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 487, recs
    assert recs[0]["ended_by"] == "caller", recs
    wait_for(lambda: p.keys(call) == [], 3, "an early dialog stayed")


def test_forked_answer_reaching_b_cancels_the_other_branch(pair):
    """A call through A forks to two phones, both ring; A dies.  The
    second phone answers, its 200 reaching B: the caller gets it, the
    first phone gets a CANCEL with its own branch (16.7 step 10), its 487
    is ACKed; the call's ACK and BYE through B reach the phone that
    answered; one record (B's, 200); the INVITE's record is deleted."""
    p = pair(forked=True)
    b = p.nodes["B"]
    call, invs = forked_rung(p)
    p.kill("A")
    call.proxy = b.addr
    p.uas2.ep.send(p.uas2.respond(invs[1], 200, body=SDP, send=False),
                   b.addr)
    ok = p.caller.expect(call.resp(200))
    call.check_vias(ok)
    cancel = p.uas.expect("CANCEL", call_id=call.call_id)
    assert cancel.branch == invs[0].branch, cancel.text()
    p.uas.ep.send(p.uas.respond(cancel, 200, send=False), b.addr)
    p.uas.ep.send(p.uas.respond(invs[0], 487, send=False), b.addr)
    assert p.uas.expect("ACK", call_id=call.call_id).branch == \
        invs[0].branch
    wait_for(lambda: "confirmed" in b.log_text(), 3, "B did not confirm")
    wait_for(lambda: p.redis.cmd("EXISTS", invite_key(p, call)) == 0, 3,
             "the INVITE's record stayed after its answer")
    call.ack(ok)
    p.uas2.expect("ACK", call_id=call.call_id)
    call.proxy = b.addr
    call.bye()
    bye = p.uas2.expect("BYE", call_id=call.call_id)
    p.uas2.respond(bye, 200)
    assert p.caller.expect(call.resp(method="BYE")).code == 200
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 200, recs
    assert records(p.cdr["A"], secs=0.2) == []


def test_answer_with_another_tag_reaching_b_makes_the_dialog(pair):
    """bob rings through A (180, tag one); A dies; his 200 carries
    another To tag (no early dialog had it) and reaches B: the caller
    gets it, B makes the dialog from the branch's early dialog and the
    200 (its To tag, Contact), so the caller's ACK and BYE through B
    reach bob; one record (B's, 200, bob's new tag); no key left."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    wait_for(lambda: p.redis.cmd("EXISTS", invite_key(p, call)) == 1, 3,
             "the INVITE's record is not in Redis")
    p.kill("A")
    call.proxy = b.addr
    p.uas.ep.send(p.uas.respond(inv, 200, body=SDP, to_tag="other",
                                send=False), b.addr)
    ok = p.caller.expect(call.resp(200))
    call.check_vias(ok)
    assert ok.to_tag == "other", ok.text()
    wait_for(lambda: "confirmed" in b.log_text(), 3, "B did not confirm")
    call.ack(ok)
    assert p.uas.expect("ACK", call_id=call.call_id).to_tag == "other"
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 200, recs
    assert recs[0]["to_tag"] == "other", recs
    wait_for(lambda: p.redis.cmd("KEYS", "osprey:dlg:{%s}*" %
                                 call.call_id) == [], 3,
             "a key of the call stayed in Redis")


def prack_through_b(p, call):
    """The caller's PRACK in the early dialog, sent to B (A alive): B
    adopts the early dialog from Redis and routes it to bob."""
    wait_for(lambda: len(p.keys(call)) == 1, 3,
             "the early dialog is not in Redis")
    call.proxy = p.nodes["B"].addr
    call.request("PRACK", headers=[("RAck", "1 1 INVITE")])
    req = p.uas.expect("PRACK", call_id=call.call_id)
    p.uas.respond(req, 200)
    assert p.caller.expect(call.resp(method="PRACK")).code == 200
    assert "adopted from redis (early)" in p.nodes["B"].log_text()


def answer_through_a(p, call, inv):
    """bob answers: his 200 goes to A (its Via), the caller ACKs A."""
    p.uas.respond(inv, 200, body=SDP)
    ok = p.caller.expect(call.resp(200))
    call.proxy = p.nodes["A"].addr
    call.ack(ok)
    p.uas.expect("ACK", call_id=call.call_id)


def test_early_copy_on_b_bye_through_b_after_answer_on_a(pair):
    """B adopted the early dialog (the caller's PRACK reached it while A
    was alive); bob answers through A, A confirms.  The caller's BYE
    through B ends the answered call: bob gets it, the call's one record
    says 200 with its answer time (B's: it took A's confirmed record from
    Redis), not a 487 for the early copy, and A drops its dialog without
    a record of its own."""
    p = pair()
    a = p.nodes["A"]
    call, inv = p.early("A")
    prack_through_b(p, call)
    answer_through_a(p, call, inv)
    time.sleep(0.3)
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 200, recs
    assert recs[0]["answer_time"] and recs[0]["ended_by"] == "caller", recs
    assert records(p.cdr["A"], secs=0.5) == []
    wait_for(lambda: "ended on another node, dropped" in a.log_text(), 3,
             "A kept its copy")
    wait_for(lambda: p.keys(call) == [], 3, "the dialog stayed in Redis")


def test_early_copy_on_b_expiring_leaves_the_call_answered_on_a(
        osprey_factory, tmp_path):
    """B adopted the early dialog; bob answers through A.  B's early copy
    expires (Timer C + 64*T1: 9.4 s here) with nothing in it answered
    there: Redis holds the confirmed call, so B drops its copy with no
    record and A's call lives on: the caller's BYE to A reaches bob, one
    record (A's, 200)."""
    def fac(**kw):
        t = dict(kw.pop("timers", {}))
        t.update({"c": 3000, "t1": 100})
        return osprey_factory(timers=t, **kw)
    p = Pair(fac, tmp_path)
    try:
        b = p.nodes["B"]
        call, inv = p.early("A")
        prack_through_b(p, call)
        answer_through_a(p, call, inv)
        wait_for(lambda: "ended by proxy" in b.log_text(), 15,
                 "B's early copy did not expire")
        time.sleep(0.3)
        assert len(p.keys(call)) == 1
        p.bye_routes(call, "A")
        recs = records(p.cdr["A"], 1)
        assert len(recs) == 1 and recs[0]["code"] == 200, recs
        assert records(p.cdr["B"], secs=0.3) == []
        assert "answered on another node" in b.log_text()
    finally:
        p.close()


def test_early_copy_on_b_expiring_unanswered_one_attempt_record(
        osprey_factory, tmp_path):
    """B adopted the early dialog while A was alive; A dies and nothing
    answers: B's early copy expires (Timer C + 64*T1: 9.4 s here) and,
    Redis still holding the early record, writes the attempt's one record:
    408, ended by the proxy, no answer time; the key is gone."""
    def fac(**kw):
        t = dict(kw.pop("timers", {}))
        t.update({"c": 3000, "t1": 100})
        return osprey_factory(timers=t, **kw)
    p = Pair(fac, tmp_path)
    try:
        call, inv = p.early("A")
        prack_through_b(p, call)
        p.kill("A")
        recs = records(p.cdr["B"], 1, secs=15)
        assert len(recs) == 1 and recs[0]["code"] == 408, recs
        assert recs[0]["ended_by"] == "proxy", recs
        assert not recs[0].get("answer_time"), recs
        wait_for(lambda: p.keys(call) == [], 3, "the early dialog stayed")
    finally:
        p.close()


def test_early_copy_on_b_unanswered_one_attempt_record(pair):
    """B adopted the early dialog while A was alive; A dies unanswered;
    the caller's BYE in the early dialog through B ends the attempt:
    exactly one record, B's, 487 with no answer time."""
    p = pair()
    call, inv = p.early("A")
    prack_through_b(p, call)
    p.kill("A")
    p.bye_routes(call, "B")
    recs = records(p.cdr["B"], 1)
    assert len(recs) == 1 and recs[0]["code"] == 487, recs
    assert not recs[0].get("answer_time"), recs
    wait_for(lambda: p.keys(call) == [], 3, "the early dialog stayed")


def test_invite_record_with_a_bad_address_refused(pair):
    """An INVITE's record in Redis whose branch address says it is 255
    bytes long (tampered): the CANCEL reaching B gets 481, B logs it and
    goes on serving (a call through B still works)."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    key = invite_key(p, call)
    wait_for(lambda: p.redis.cmd("EXISTS", key) == 1, 3,
             "the INVITE's record is not in Redis")
    rec = bytearray(command(p.redis.port, "GET", key, encoding="latin-1")
                    .encode("latin-1"))
    # struct irec (12 bytes), the caller's branch, struct ibr: the
    # address's length byte after three lengths and the sockaddr.
    off = 12 + len(call.invite_branch) + 12 + 28
    assert rec[off] == 16, rec[off]
    rec[off] = 255
    command(p.redis.port, "SET", key, bytes(rec))
    p.kill("A")
    call.proxy = b.addr
    call.cancel()
    r = p.caller.expect(call.resp(method="CANCEL"))
    assert r.code == 481, r.text()
    assert "record in redis is not one of ours" in b.log_text()
    assert p.uas.ep.collect(0.3, match(method="CANCEL")) == []
    assert b.proc.poll() is None
    p.bye_routes(p.answered("B"), "B")


def test_early_copy_on_b_bye_through_b_a_alive_one_record(pair):
    """B adopted the early dialog while A was alive; the caller's BYE in
    it through B reaches bob, whose 487 to the INVITE goes back through
    A (alive): the attempt has one record (B's, 487), not a second one
    from A."""
    p = pair()
    call, inv = p.early("A")
    prack_through_b(p, call)
    p.bye_routes(call, "B")
    p.uas.respond(inv, 487)
    fin = p.caller.expect(call.resp(487))
    call.ack(fin)
    recs = records(p.cdr["B"], 1) + records(p.cdr["A"], secs=1.0)
    assert len(recs) == 1 and recs[0]["code"] == 487, recs
    assert not recs[0].get("answer_time"), recs


def test_early_copy_on_b_request_after_answer_on_a(pair):
    """B adopted the early dialog; bob answers through A.  The caller's
    INFO through B (a request an early dialog refuses) is not refused by
    B's stale early copy: B takes the confirmed dialog from Redis and
    routes it to bob (200)."""
    p = pair()
    b = p.nodes["B"]
    call, inv = p.early("A")
    prack_through_b(p, call)
    answer_through_a(p, call, inv)
    time.sleep(0.3)
    call.proxy = b.addr
    call.request("INFO")
    info = p.uas.expect("INFO", call_id=call.call_id)
    p.uas.respond(info, 200)
    r = p.caller.expect(call.resp(method="INFO"))
    assert r.code == 200, r.text()
    assert "early copy dropped" in b.log_text(), b.log_text()
    p.bye_routes(call, "A")
    recs = records(p.cdr["A"], 1) + records(p.cdr["B"], secs=0.5)
    assert len(recs) == 1 and recs[0]["code"] == 200, recs


def test_dialog_record_with_a_bad_address_refused(pair):
    """A dialog's record in Redis whose caller address says it is 255
    bytes long (tampered): B refuses it as not one of ours, so the BYE
    reaching B after A died gets 481 (no BYE to bob), and B goes on
    serving."""
    p = pair()
    b = p.nodes["B"]
    call = p.answered("A")
    wait_for(lambda: len(p.keys(call)) == 1, 3, "the dialog is not in Redis")
    key = p.keys(call)[0]
    rec = bytearray(command(p.redis.port, "GET", key, encoding="latin-1")
                    .encode("latin-1"))
    # struct drec: version, 14 string offsets, the caller's address
    # (a sockaddr union of 28 bytes, then its length).
    off = 4 + 14 * 4 + 28
    assert rec[off] == 16, rec[off]
    rec[off] = 255
    command(p.redis.port, "SET", key, bytes(rec))
    p.kill("A")
    call.proxy = b.addr
    call.bye()
    r = p.caller.expect(call.resp(method="BYE"))
    assert r.code == 481, r.text()
    assert p.uas.ep.collect(0.3, match(method="BYE")) == []
    assert "the record in redis is not one of ours" in b.log_text()
    p.bye_routes(p.answered("B"), "B")
