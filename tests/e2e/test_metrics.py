"""The Prometheus endpoint: GET /metrics (text format 0.0.4), its counters
after real traffic, HTTP errors, gateway health and the loop-lag timer."""

import http.client
import math
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import OSPREYD, conf_text, free_udp_port
from sip import (NON2XX, UAC, Endpoint, build_request,  # noqa: F401
                 match, new_branch, reglab, sipnet)

CONTENT_TYPE = "text/plain; version=0.0.4"

# The families every scrape has, with their types (UDP ones need the
# transport hook, so they are checked only when present).
FAMILIES = {
    "osprey_build_info": "gauge",
    "osprey_requests_received_total": "counter",
    "osprey_responses_received_total": "counter",
    "osprey_responses_sent_total": "counter",
    "osprey_responses_generated_total": "counter",
    "osprey_final_responses_sent_total": "counter",
    "osprey_requests_rejected_total": "counter",
    "osprey_parse_errors_total": "counter",
    "osprey_messages_dropped_total": "counter",
    "osprey_cancels_relayed_total": "counter",
    "osprey_responses_481_sent_total": "counter",
    "osprey_responses_487_sent_total": "counter",
    "osprey_transactions_open": "gauge",
    "osprey_transactions_created_total": "counter",
    "osprey_transactions_timed_out_total": "counter",
    "osprey_gateway_up": "gauge",
    "osprey_gateway_probes_total": "counter",
    "osprey_event_loop_last_lag_seconds": "gauge",
    "osprey_event_loop_max_lag_seconds": "gauge",
    "osprey_event_loop_lag_seconds": "histogram",
}
UDP_FAMILIES = {
    "osprey_udp_datagrams_received_total": "counter",
    "osprey_udp_send_errors_total": "counter",
}

# Families whose every series the traffic test accounts for exactly.
TRAFFIC = (
    "osprey_requests_received_total",
    "osprey_responses_received_total",
    "osprey_responses_sent_total",
    "osprey_responses_generated_total",
    "osprey_final_responses_sent_total",
    "osprey_requests_rejected_total",
    "osprey_parse_errors_total",
    "osprey_messages_dropped_total",
    "osprey_cancels_relayed_total",
    "osprey_responses_481_sent_total",
    "osprey_responses_487_sent_total",
    "osprey_transactions_timed_out_total",
)


# ------------------------------------------------ the text format, strictly

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r'"((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$" % NAME)
PAIR = re.compile(r"\s*(%s)=%s\s*(,|$)" % (LABEL, VALUE))
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1),
                                                     m.group(1)), v)


def parse_labels(text, line):
    out = {}
    pos = 0
    while pos < len(text):
        m = PAIR.match(text, pos)
        assert m and m.end() > pos, "bad labels in %r" % line
        assert m.group(1) not in out, "label twice in %r" % line
        out[m.group(1)] = unescape(m.group(2))
        pos = m.end()
        if m.group(3) == "":
            break
    assert pos == len(text), "bad labels in %r" % line
    return out


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in (
                "histogram", "summary"):
            return base
    raise AssertionError("sample %s has no # TYPE before it" % name)


class Scrape:
    """A parsed exposition: .types {family: type}, .helps, .samples
    {(name, frozenset(labels)): float}. Asserts the format as it goes."""

    def __init__(self, text):
        assert text.endswith("\n"), "exposition must end with a newline"
        self.text = text
        self.types, self.helps, self.samples = {}, {}, {}
        done, current = set(), None
        for line in text[:-1].split("\n"):
            assert line == line.strip() and line, "stray space: %r" % line
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    assert re.fullmatch(NAME, name), line
                    rest = parts[3] if len(parts) > 3 else ""
                    if parts[1] == "HELP":
                        assert name not in self.helps, "HELP twice: " + line
                        assert rest, "empty HELP: " + line
                        self.helps[name] = rest
                    else:
                        assert name not in self.types, "TYPE twice: " + line
                        assert rest in TYPES, line
                        self.types[name] = rest
                    if name != current:
                        assert name not in done, "%s split up" % name
                        if current is not None:
                            done.add(current)
                        current = name
                continue
            m = SAMPLE.match(line)
            assert m, "not `name{labels} value`: %r" % line
            name, labels, value = m.group(1), m.group(2), m.group(3)
            fam = family_of(name, self.types)
            assert fam == current, "%s outside its family" % line
            lab = parse_labels(labels, line) if labels else {}
            v = float(value)        # also +Inf, -Inf, NaN
            assert not math.isnan(v), line
            key = (name, frozenset(lab.items()))
            assert key not in self.samples, "series twice: " + line
            self.samples[key] = v
        for fam, t in self.types.items():
            if t == "histogram":
                self._check_histogram(fam)

    def _check_histogram(self, fam):
        buckets = sorted(
            (float(dict(k[1])["le"]), v) for k, v in self.samples.items()
            if k[0] == fam + "_bucket")
        assert buckets and math.isinf(buckets[-1][0]), fam + ": no +Inf"
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), fam + ": buckets not cumulative"
        assert counts[-1] == self.get(fam + "_count"), fam
        assert self.get(fam + "_sum") >= 0

    def get(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, fam):
        """{frozenset(labels): value} of one family's plain samples."""
        return {k[1]: v for k, v in self.samples.items() if k[0] == fam}


# ------------------------------------------------------------- helpers

def free_tcp_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metrics_conf(port, host="127.0.0.1"):
    return 'metrics = { address = "%s"; port = %d; };' % (host, port)


def fetch(port, path="/metrics", method="GET", host="127.0.0.1"):
    """(status, headers {lower name: value}, body text)."""
    c = http.client.HTTPConnection(host, port, timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode("utf-8")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def scrape(port, host="127.0.0.1"):
    status, hdrs, body = fetch(port, host=host)
    assert status == 200, (status, body)
    assert hdrs["content-type"].startswith(CONTENT_TYPE), hdrs
    s = Scrape(body)
    for fam, t in FAMILIES.items():
        assert s.types.get(fam) == t, "%s: TYPE %r" % (fam, s.types.get(fam))
        assert fam in s.helps, fam + ": no HELP"
    for fam, t in UDP_FAMILIES.items():
        if fam in s.types:
            assert s.types[fam] == t, fam
    return s


def delta(before, after, families):
    """{(name, labels): after - before} for the series that changed."""
    out = {}
    for key, v in after.samples.items():
        if key[0] in families:
            d = v - before.samples.get(key, 0)
            if d:
                out[key] = d
    for key in before.samples:
        assert key in after.samples or key[0] not in families, \
            "series vanished: %r" % (key,)
    return out


def series(name, n, **labels):
    return ((name, frozenset(labels.items())), n)


def wait_for(port, pred, timeout):
    """Scrape until pred(scrape) holds; the last scrape either way."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(port)
        if pred(s) or time.monotonic() >= deadline:
            return s
        time.sleep(0.1)


# --------------------------------------------------------------- tests

def test_counters_after_traffic(sipnet):
    """A full call, a 486, an unmatched CANCEL (481), a request failing
    validation (400), one failing to parse (400), garbage, OPTIONS to the
    proxy and a stray response: every traffic counter moves by exactly
    what was sent, and the transactions are gone after their timers."""
    mport = free_tcp_port()
    net = sipnet(timers={"t1": 20, "t4": 100}, extra=metrics_conf(mport))
    px, uas, caller = net.proxy, net.uas, net.caller
    before = scrape(mport)
    assert before.get("osprey_transactions_open") == 0
    sent = 0                                    # datagrams to the proxy

    net.simple_call()                           # INVITE ACK BYE; 180 200 200
    sent += 6

    call = net.call()
    call.invite()
    inv = uas.expect("INVITE", call_id=call.call_id)
    uas.respond(inv, 486)
    busy = caller.expect(call.resp(NON2XX))
    assert busy.code == 486, busy
    call.ack(busy)
    uas.expect("ACK", call_id=call.call_id)     # the proxy's own ACK
    sent += 3

    stray = net.call()
    stray.invite(send=False)
    stray.cancel()
    r = caller.expect(stray.resp(None, "CANCEL"))
    assert r.code == 481, r
    sent += 1

    bad = net.call("sip:bob@example.test:99999",   # parses; fails 16.3
                   to_uri="sip:bob@example.test")
    bad.invite()
    r = caller.expect(bad.resp(None))
    assert r.code == 400, r
    sent += 1

    bad = net.call()                            # does not parse, answered
    branch = new_branch()
    caller.send(build_request("INVITE", bad.ruri, [
        ("Via", bad.via(branch)), ("Max-Forwards", "70"),
        ("From", bad.from_hdr), ("To", bad.to_hdr()),
        ("Call-ID", bad.call_id), ("CSeq", "1 BYE")]), px.addr)
    r = caller.expect(match(response=True, branch=branch))
    assert r.code == 400, r
    sent += 1

    opt = net.call("sip:example.test")
    opt.request("OPTIONS")
    r = caller.expect(opt.resp(None, "OPTIONS"))
    assert r.code == 200, r
    sent += 1

    caller.send(b"hello, world\r\n\r\n", px.addr)    # cannot be answered
    uas.ep.send(("SIP/2.0 200 OK\r\n"
                 "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKnothing\r\n"
                 "From: <sip:a@example.test>;tag=1\r\n"
                 "To: <sip:bob@example.test>;tag=2\r\n"
                 "Call-ID: stray@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                 "Content-Length: 0\r\n\r\n" % px.addr).encode(), px.addr)
    sent += 2

    after = wait_for(mport, lambda s: s.get(
        "osprey_transactions_open") == 0, 6)
    req = "osprey_requests_received_total"
    rin = "osprey_responses_received_total"
    out = "osprey_responses_sent_total"
    gen = "osprey_responses_generated_total"
    fin = "osprey_final_responses_sent_total"
    want = dict([
        series(req, 2, method="INVITE"),
        series(req, 2, method="ACK"),           # 2xx ACK, hop-by-hop ACK
        series(req, 1, method="BYE"),
        series(req, 1, method="CANCEL"),
        series(req, 1, method="OPTIONS"),
        series(rin, 1, code="180"),
        series(rin, 3, code="200"),             # INVITE, BYE, stray
        series(rin, 1, code="486"),
        series(out, 2, code="100"),
        series(out, 1, code="180"),
        series(out, 3, code="200"),             # INVITE, BYE, OPTIONS
        series(out, 2, code="400"),
        series(out, 1, code="481"),
        series(out, 1, code="486"),
        series(gen, 2, code="100"),
        series(gen, 1, code="200"),
        series(gen, 2, code="400"),
        series(gen, 1, code="481"),
        series(fin, 1, cause="USER_BUSY", q850="17"),
        series(fin, 3, cause="NORMAL_TEMPORARY_FAILURE", q850="41"),
        series("osprey_requests_rejected_total", 1),
        series("osprey_parse_errors_total", 2),     # one answered
        series("osprey_messages_dropped_total", 1),
        series("osprey_responses_481_sent_total", 1),
    ])
    got = delta(before, after, TRAFFIC)
    assert got == want, "\nunexpected: %r\nmissing: %r" % (
        {k: v for k, v in got.items() if want.get(k) != v},
        {k: v for k, v in want.items() if got.get(k) != v})

    # Server and client transactions: INVITE x2 and BYE both sides, the
    # 481 and the OPTIONS answered in a server transaction each.
    created = "osprey_transactions_created_total"
    assert after.get(created) - before.get(created) == 8
    rx = "osprey_udp_datagrams_received_total"
    if rx in after.types:
        assert after.get(rx) - before.get(rx) == sent
        assert after.get("osprey_udp_send_errors_total") == 0
    # Timers J, L and D are 64*T1 = 1.28 s here; I and K are T4.
    assert after.get("osprey_transactions_open") == 0, \
        "transactions still open 6 s after the last request"
    assert px.alive()


def test_challenges_counted_apart(reglab):
    """Our digest challenges are no failed calls: a REGISTER answered 401
    twice and an INVITE answered 407 count in osprey_auth_challenges_total
    by code, and as responses sent and generated by code, but not in
    osprey_final_responses_sent_total (no CALL_REJECTED). A 403 for a
    wrong From, after a right password, is a failure and counts there."""
    mport = free_tcp_port()
    reglab.start(users={"alice": "wonderland", "bob": "builder"},
                 auth={"nonce_expiry": 300},
                 registrar={"min_expires": 60, "max_expires": 3600},
                 extra=metrics_conf(mport))
    before = scrape(mport)
    bob = reglab.phone("bob")                   # no password: 401 only
    assert bob.send_register().code == 401
    assert bob.send_register().code == 401
    alice = reglab.phone("alice")
    call = alice.call("sip:bob@example.test")
    r = alice.invite_auth(call)                 # ACKs the 407
    assert r.code == 407, r
    spoof = reglab.phone("alice", "wonderland")
    spoofed = UAC(spoof.ep, reglab.proxy.addr, "sip:bob@example.test",
                  from_uri="sip:bob@example.test")
    r = spoof.invite_auth(spoofed, user="alice")
    assert r.code == 407, r
    r = spoofed.ep.expect(spoofed.resp(NON2XX), 2.0)
    assert r.code == 403, r
    spoofed.ack(r)
    time.sleep(0.1)
    after = scrape(mport)
    ch = "osprey_auth_challenges_total"
    assert after.types.get(ch) == "counter", after.types.get(ch)
    got = delta(before, after, (ch, "osprey_final_responses_sent_total",
                                "osprey_responses_sent_total",
                                "osprey_responses_generated_total"))
    want = dict([
        series(ch, 2, code="401"),
        series(ch, 2, code="407"),
        series("osprey_responses_sent_total", 2, code="401"),
        series("osprey_responses_sent_total", 2, code="407"),
        series("osprey_responses_sent_total", 1, code="403"),
        series("osprey_responses_generated_total", 2, code="401"),
        series("osprey_responses_generated_total", 2, code="407"),
        series("osprey_responses_generated_total", 1, code="403"),
        series("osprey_final_responses_sent_total", 1,
               cause="CALL_REJECTED", q850="21"),      # the 403 alone
    ])
    assert got == want, "\nunexpected: %r\nmissing: %r" % (
        {k: v for k, v in got.items() if want.get(k) != v},
        {k: v for k, v in want.items() if got.get(k) != v})


def test_http_errors_and_format(osprey_factory):
    """404 off /metrics, 405 with Allow for other methods, HEAD without a
    body; no zero series by code; the lag timer ticks every 100 ms."""
    mport = free_tcp_port()
    osprey_factory(extra=metrics_conf(mport))
    status, hdrs, body = fetch(mport, "/other")
    assert status == 404, (status, body)
    status, _, _ = fetch(mport, "/metrics/x")
    assert status == 404
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        status, hdrs, body = fetch(mport, method=method)
        assert status == 405, (method, status, body)
        assert hdrs.get("allow") == "GET, HEAD", hdrs
    status, hdrs, body = fetch(mport, method="HEAD")
    assert status == 200 and body == "", (status, body)
    assert hdrs["content-type"].startswith(CONTENT_TYPE)
    status, _, _ = fetch(mport, "/metrics?x=1")
    assert status == 200

    start = time.monotonic()
    first = scrape(mport)
    time.sleep(0.6)
    s = scrape(mport)
    most = (time.monotonic() - start) / 0.1 + 1
    assert list(s.series("osprey_build_info").values()) == [1]
    n = "osprey_event_loop_lag_seconds_count"
    assert 3 <= s.get(n) - first.get(n) <= most, (first.get(n), s.get(n))
    last = s.get("osprey_event_loop_last_lag_seconds")
    top = s.get("osprey_event_loop_max_lag_seconds")
    assert 0 <= last <= top < 1, (last, top)
    methods = {dict(k)["method"] for k in s.series(
        "osprey_requests_received_total")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS",
            "other"} <= methods, methods
    for fam in ("osprey_responses_sent_total",
                "osprey_final_responses_sent_total"):
        assert s.series(fam) == {}, "zero series emitted: %s" % fam


def test_event_loop_lag(osprey_factory):
    """A daemon stopped for 0.5 s (SIGSTOP) sees its 100 ms timer fire
    that late: the last and the max lag, and the histogram, show it."""
    mport = free_tcp_port()
    px = osprey_factory(extra=metrics_conf(mport))
    time.sleep(0.3)
    before = scrape(mport)
    assert before.get("osprey_event_loop_max_lag_seconds") < 0.2
    px.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.5)
    px.proc.send_signal(signal.SIGCONT)
    s = scrape(mport)
    top = s.get("osprey_event_loop_max_lag_seconds")
    assert 0.35 < top < 2, top
    assert s.get("osprey_event_loop_last_lag_seconds") <= top
    late = (s.get("osprey_event_loop_lag_seconds_count") -
            s.get("osprey_event_loop_lag_seconds_bucket", le="0.25"))
    assert late == 1, "one late tick, not %r" % late
    assert s.get("osprey_event_loop_lag_seconds_sum") >= top


def test_parser_rejects_bad_text():
    """The format checker above is strict enough to mean something."""
    ok = ('# HELP a_total A.\n# TYPE a_total counter\n'
          'a_total{x="q\\"\\\\\\n",y="2"} 3\n')
    s = Scrape(ok)
    assert s.get("a_total", x='q"\\\n', y="2") == 3
    for bad in ('a_total 1\n',                                  # no TYPE
                '# TYPE a counter\na{x="1} 1\n',                # quote
                '# TYPE a counter\na{x="\\t"} 1\n',             # escape
                '# TYPE a counter\na 1\na 2\n',                 # twice
                '# TYPE a counter\na one\n',                    # value
                '# TYPE a counter\na 1',                        # newline
                '# TYPE a counter\n# TYPE b gauge\nb 1\na 1\n'):  # split
        with pytest.raises((AssertionError, ValueError)):
            Scrape(bad)


class Responder:
    """Answers the proxy's OPTIONS probes 200 while it is polled."""

    def __init__(self):
        self.ep = Endpoint()
        self.target = "sip:127.0.0.1:%d" % self.ep.port

    def serve(self, duration):
        deadline = time.monotonic() + duration
        while True:
            m = self.ep.recv(max(0.0, deadline - time.monotonic()),
                             match(method="OPTIONS"))
            if m is None:
                return
            self.ep.send(("SIP/2.0 200 OK\r\n%s\r\nContent-Length: 0"
                          "\r\n\r\n" % "\r\n".join(
                              "%s: %s" % (name, v) for key, name, v in
                              m.headers if key in ("via", "from", "to",
                                                   "call-id", "cseq"))
                          ).encode(),
                         m.vias[0].response_addr())


def libconfig_str(v):
    return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')


def test_gateway_health(osprey_factory):
    """osprey_gateway_up is 1 for a probed target that answers and 0 for
    one that does not; probes are counted per target URI, and the URI
    label is escaped (the dead one has a quote and a backslash)."""
    mport = free_tcp_port()
    alive = Responder()
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))             # nothing answers here
    dead_uri = 'sip:127.0.0.1:%d;x="a\\b"' % dead.getsockname()[1]
    try:
        osprey_factory(extra=(
            'probe = { interval = 500; timeout = 300; failures = 1; };\n'
            'routes = ( { user = "^bob$"; probe = true; targets = '
            '[ %s, %s ]; } );\n%s' % (
                libconfig_str(alive.target), libconfig_str(dead_uri),
                metrics_conf(mport))))
        a = frozenset({"uri": alive.target}.items())
        d = frozenset({"uri": dead_uri}.items())
        deadline = time.monotonic() + 4
        while True:
            alive.serve(0.2)
            s = scrape(mport)
            up = s.series("osprey_gateway_up")
            probes = s.series("osprey_gateway_probes_total")
            if (up.get(d) == 0 and probes.get(a, 0) >= 2 or
                    time.monotonic() > deadline):
                break
        assert set(up) == {a, d}, up
        assert up[a] == 1 and up[d] == 0, up
        assert probes[a] >= 2 and probes[d] >= 1, probes
        assert 'x=\\"a\\\\b\\""} ' in s.text, "escaping"
    finally:
        alive.ep.close()
        dead.close()


def test_ipv6_address(osprey_factory):
    """metrics.address may be an IPv6 literal."""
    try:
        mport = free_tcp_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    osprey_factory(extra=metrics_conf(mport, "::1"))
    s = scrape(mport, "::1")
    assert s.get("osprey_transactions_open") == 0


def test_port_in_use(tmp_path):
    """The daemon refuses to start when it cannot listen, and says why."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    conf = tmp_path / "osprey.conf"
    conf.write_text(conf_text(free_udp_port(), extra=metrics_conf(port)))
    try:
        r = subprocess.run([OSPREYD, "-f", "-c", str(conf)], timeout=5,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    finally:
        busy.close()
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 1, out
    assert ("metrics: listen 127.0.0.1 port %d: Address already in use" %
            port) in out, out
