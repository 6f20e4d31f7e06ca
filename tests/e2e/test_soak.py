"""Soak (SECURITY-TESTS.md part 2): a bounded run of mixed traffic
through one ospreyd: answered calls, cancelled calls, callees that never
answer (Timer B) or ring forever (Timer C), busy callees, callers that
never ACK, a flooder that gets banned again and again, and garbage.
Afterwards no transaction or call is left open and resident memory is
back at its baseline, measured after a warm-up with the same mix.  The
same mix again with every call's media relayed through a real rtpengine
(issue 13): afterwards no dialog is left in ospreyd and no session in
rtpengine.

OSPREY_SOAK_SECS (default 40) sets the length of the measured run."""

import os
import random
import select
import subprocess
import time

import pytest

from conftest import rss_kb
from sip import SDP, UAC, UAS, Endpoint, build_request, match, new_branch, \
    new_call_id, new_tag

SOAK_SECS = float(os.environ.get("OSPREY_SOAK_SECS", "40"))
OSPREYCTL = os.path.join(os.path.dirname(os.environ.get("OSPREYD") or
                                         "src/ospreyd"), "ospreyctl")
KINDS = ["answer"] * 5 + ["cancel"] * 2 + ["busy", "busy_noack", "silent",
                                           "ringing"]
CALLS_PER_SEC = 30
TIMERS = {"t1": 50, "t2": 400, "t4": 500, "c": 2000, "cancel": 1000}


def status(o):
    import json
    p = subprocess.run([OSPREYCTL, "-s", o.ctl_socket, "--json", "status"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def garbage(rng):
    kinds = [
        bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))),
        b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKno\r\n"
        b"Call-ID: nothing\r\nCSeq: 1 INVITE\r\n\r\n",
        b"OPTIONS sip:x SIP/7.0\r\n\r\n",
    ]
    return rng.choice(kinds)


class Driver:
    def __init__(self, o, uas, caller, flooder, junk, seed,
                 rate=CALLS_PER_SEC):
        self.o, self.uas, self.caller = o, uas, caller
        self.rate = rate
        self.flooder, self.junk = flooder, junk
        self.rng = random.Random(seed)
        self.calls = {}         # call_id -> (UAC, kind, state)
        self.done = 0
        self.failed = []

    def start_call(self):
        kind = self.rng.choice(KINDS)
        c = UAC(self.caller, self.o.addr)
        c.kind = kind
        c.state = "inviting"
        c.invite()
        self.calls[c.call_id] = c

    def on_uas(self, m):
        if m.is_response:
            return
        c = self.calls.get(m.call_id)
        kind = c.kind if c else "answer"
        if m.method == "INVITE":
            if kind == "answer":
                self.uas.respond(m, 180)
                self.uas.respond(m, 200, body=SDP)
            elif kind in ("cancel", "ringing"):
                self.uas.respond(m, 180)
            elif kind in ("busy", "busy_noack"):
                self.uas.respond(m, 486)
            # silent: nothing, the proxy's Timer B ends it
        elif m.method == "CANCEL":
            self.uas.respond(m, 200)
            inv = self.uas.invites.pop(m.call_id, None)
            if inv is not None:
                self.uas.respond(inv, 487)
        elif m.method in ("BYE", "OPTIONS"):
            self.uas.respond(m, 200)
        if m.method == "INVITE":
            self.uas.invites[m.call_id] = m

    def on_caller(self, m):
        if not m.is_response:
            return
        c = self.calls.get(m.call_id)
        if c is None:
            return
        if m.cseq_method == "INVITE":
            if m.code == 180 and c.kind == "cancel" and c.state == "inviting":
                c.state = "cancelling"
                c.cancel()
            elif 200 <= m.code < 300 and c.state != "up":
                c.state = "up"
                c.ack(m)
                c.bye()
            elif m.code >= 300 and c.state not in ("over",):
                if c.kind != "busy_noack":
                    c.ack(m)
                want = {"busy": 486, "busy_noack": 486, "cancel": 487,
                        "silent": 408, "ringing": 408}.get(c.kind)
                if want is not None and m.code != want:
                    self.failed.append((c.kind, m.code))
                c.state = "over"
                self.done += 1
        elif m.cseq_method == "BYE" and m.code >= 200:
            c.state = "over"
            self.done += 1

    def run(self, secs):
        end = time.monotonic() + secs
        next_call = time.monotonic()
        next_flood = time.monotonic() + 1
        socks = [self.uas.ep, self.caller]
        while time.monotonic() < end:
            now = time.monotonic()
            while next_call <= now:
                self.start_call()
                next_call += 1.0 / self.rate
            if next_flood <= now:   # a burst that trips the rate limit
                for _ in range(400):
                    self.flooder.send(options(self.flooder, self.o.addr),
                                      self.o.addr)
                for _ in range(5):
                    self.junk.send(garbage(self.rng), self.o.addr)
                next_flood += 3
            r, _, _ = select.select(socks, [], [], 0.01)
            for ep in r:
                m = ep.read(0)
                if m is None:
                    continue
                (self.on_uas if ep is self.uas.ep else self.on_caller)(m)
            for ep in (self.flooder, self.junk):
                while ep.read(0) is not None:
                    pass

    def drain(self, secs):
        """No new calls; answer what is still coming."""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            r, _, _ = select.select([self.uas.ep, self.caller], [], [], 0.05)
            for ep in r:
                m = ep.read(0)
                if m is not None:
                    (self.on_uas if ep is self.uas.ep else self.on_caller)(m)


def options(ep, proxy):
    hs = [("Via", "SIP/2.0/UDP %s:%d;branch=%s" % (ep.host, ep.port,
                                                   new_branch())),
          ("Max-Forwards", "70"), ("From", "<sip:f@x.test>;tag=" + new_tag()),
          ("To", "<sip:%s:%d>" % proxy), ("Call-ID", new_call_id()),
          ("CSeq", "1 OPTIONS")]
    return build_request("OPTIONS", "sip:%s:%d" % proxy, hs)


class Soak:
    """One soak: ospreyd with extra config routing ^bob$ to a UAS, a
    warm-up of the mix, then secs of it at rate calls/s, each followed by
    a drain past every timer.  Checks what every soak must hold: the
    daemon alive, no transaction or call left, every call ended as its
    kind says, the rate achieved.  base and after: RSS (KiB) after the
    warm-up and after the run."""

    def __init__(self, osprey_factory, extra, seed, rate, secs):
        uas = UAS(Endpoint())
        uas.invites = {}
        self.eps = [uas.ep, Endpoint("127.0.0.3"), Endpoint("127.0.0.2"),
                    Endpoint("127.0.0.4")]
        self.o = o = osprey_factory(
            routes=[("^bob$", [uas.target])], timers=TIMERS,
            extra='security = { rate_window = 1000; rate_requests = 300; '
                  'ban_time = 2; };\n' + extra)
        drain = (64 * TIMERS["t1"] + TIMERS["c"]) / 1000.0 + 3
        self.d = d = Driver(o, uas, *self.eps[1:], seed=seed, rate=rate)
        d.run(min(10, SOAK_SECS / 3))       # warm-up: the heap grows
        d.drain(drain)
        st = status(o)
        assert st["transactions"] == 0 and st["calls_pending"] == 0, st
        self.base = rss_kb(o.proc.pid)
        started = len(d.calls)
        d.run(secs)
        d.drain(drain)
        self.st = st = status(o)
        self.after = rss_kb(o.proc.pid)
        self.calls = len(d.calls) - started
        assert o.alive()
        assert st["transactions"] == 0 and st["calls_pending"] == 0, st
        assert not d.failed, d.failed[:10]
        # Every call ended (answered and hung up, or its failure arrived).
        assert d.done >= len(d.calls) * 0.999, (d.done, len(d.calls))
        assert self.calls >= secs * rate * 0.9, self.calls

    def close(self):
        for ep in self.eps:
            ep.close()


def test_soak_returns_to_baseline(osprey_factory):
    s = Soak(osprey_factory, 'log_level = "info";', 7, CALLS_PER_SEC,
             SOAK_SECS)
    o, base, after, calls = s.o, s.base, s.after, s.calls
    assert after <= base * 1.05 + 256, (base, after)
    log = o.log_text()
    assert log.count("guard 127.0.0.2: banned") >= SOAK_SECS / 3 - 2
    print("soak: %d calls in %.0f s, RSS %d -> %d KiB" % (
        calls, SOAK_SECS, base, after))
    s.close()


def rtpe_sessions(port):
    """The Call-IDs rtpengine holds (ng list)."""
    from test_media import ng
    r = ng(port, b"d7:command4:liste")
    assert r, "rtpengine did not answer list"
    assert b"6:result2:ok" in r, r
    i = r.index(b"5:callsl") + len(b"5:callsl")
    out = []
    while r[i:i + 1] != b"e":
        n, _, rest = r[i:].partition(b":")
        out.append(rest[:int(n)])
        i += len(n) + 1 + int(n)
    return out


@pytest.fixture
def rtpengine():
    """rtpengine with room for the soak's calls: a ringing or silent call
    holds 4 ports for up to Timer B (3.2 s), about 100 calls at once."""
    from test_media import running_rtpengine
    with running_rtpengine(9000, 1000) as r:
        yield r


def test_soak_media_relay_released(osprey_factory, rtpengine):
    """The mix (answered, cancelled, busy, unACKed busy, silent, ringing
    until Timer C, floods and garbage) at 50 calls/s, every call's SDP
    relayed through a real rtpengine (media.relay = "always"), dialogs on:
    afterwards ospreyd holds no dialog, no transaction, no call, rtpengine
    no session (each call's delete came: BYE, failure, CANCEL), and RSS is
    back at the warm-up's baseline."""
    from test_media import media_conf
    s = Soak(osprey_factory, 'log_level = "notice";\n' +
             media_conf(rtpengine.ng, timeout=1000), 11, 50, SOAK_SECS / 2)
    o, st, base, after = s.o, s.st, s.base, s.after
    assert st["calls_up"] == 0 and st["calls_early"] == 0, st
    left = rtpe_sessions(rtpengine.ng)
    assert left == [], "%d rtpengine sessions left, e.g. %r" % (
        len(left), left[:3])
    if not os.environ.get("OSPREY_SANITIZED"):
        # ASan's quarantine of freed blocks grows the RSS (run-sanitized).
        assert after <= base * 1.05 + 256, (base, after)
    assert "rtpengine offer failed" not in o.log_text(), \
        "every call's media must have been relayed"
    print("soak with rtpengine: %d calls (%d in all), RSS %d -> %d KiB" % (
        s.calls, len(s.d.calls), base, after))
    s.close()
