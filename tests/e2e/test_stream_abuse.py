"""Abuse of TCP connections from one source must not stop other callers
(RFC 3261 18, RFC 5626 3.5.1; osprey.conf(5) "connections").

- Slowloris: 200 connections that send half a header section and stall,
  and 200 that send a CRLFCRLF keepalive and then nothing, all from
  127.0.0.2, while a SIPp UAC over TCP from 127.0.0.1 makes 20 calls to a
  SIPp UAS over TCP through the proxy.  Held: the daemon keeps all 400
  open (max_per_ip raised) and must still serve the calls: one event
  loop, nothing blocks on a stalled peer.  Capped: connections.max = 300
  and the default max_per_ip = 256: the source gets its 256 and no more,
  so the 44 left are there for the callers (with the per-source cap
  lifted, the flood takes all 300 and the calls are refused).
- A reader that never reads: 2,000 OPTIONS pipelined on one connection
  whose receive buffer is small, nothing read back; the answers pile up
  in the daemon until connections.write_queue_max, where it closes the
  connection (closed_write_queue) instead of growing: its RSS stays
  within a bound that the unread answers (about 8 MB) would break.
- connections.max = 50: the 51st connection is closed as soon as it is
  accepted (refused_global) while the 50 open ones keep working, and a
  slot freed is a slot for a new one.

Every loop is bounded in count and in time; everything stays on loopback.
"""

import os
import socket
import time

import pytest

from conftest import ctl_stats, rss_kb
from peers import interop

INTEROP_TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}

OPTIONS = ("OPTIONS sip:127.0.0.1:%(port)d SIP/2.0\r\n"
           "Via: SIP/2.0/TCP 127.0.0.1:%(lport)d;branch=z9hG4bK-%(tag)s\r\n"
           "Max-Forwards: 70\r\n"
           "From: %(name)s<sip:t@example.test>;tag=%(tag)s\r\n"
           "To: <sip:127.0.0.1:%(port)d>\r\n"
           "Call-ID: %(tag)s@abuse.test\r\n"
           "CSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n")


stats = ctl_stats


def start(osprey_factory, conns, routes=(), **kw):
    port = interop.free_udp_block(1, tcp=True)
    extra = "connections = { %s };" % " ".join(
        "%s = %d;" % kv for kv in conns.items())
    return osprey_factory(
        port=port, routes=routes, extra=extra,
        listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)],
        **kw)


def connect(o, source="127.0.0.1", timeout=3.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", o.port))
    return s


def options(o, s, tag, name=""):
    return (OPTIONS % {"port": o.port, "lport": s.getsockname()[1],
                       "tag": tag, "name": name}).encode()


def read_response(s):
    """One response off the stream (framed by Content-Length); its start
    line, or "" at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return ""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
    return head.decode(errors="replace").split("\r\n", 1)[0]


def closed_by_peer(s, within):
    """True if the peer closes s (EOF or reset) within `within` seconds;
    whatever comes before is read and dropped."""
    deadline = time.time() + within
    try:
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def ping(s, within=2.0):
    """A CRLFCRLF keepalive; True if the CRLF pong comes back."""
    try:
        s.sendall(b"\r\n\r\n")
        s.settimeout(within)
        return s.recv(16) == b"\r\n"
    except OSError:
        return False


def served(o):
    """A fresh connection from 127.0.0.1 gets 200 for an OPTIONS."""
    s = connect(o)
    try:
        s.sendall(options(o, s, "fresh%d" % s.getsockname()[1]))
        return read_response(s)
    finally:
        s.close()


# ------------------------------------------------------------ (a) slowloris

HALF = (b"INVITE sip:bob@example.test SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK")


def flood(o, half=200, idle=200, source="127.0.0.2"):
    """half connections that send half a header section and stall, then
    idle ones that send a keepalive and stall; all from source.  Returns
    (sockets, half admitted, idle admitted): admitted means not closed
    at once (a half one gets nothing back, an idle one its pong)."""
    socks, half_ok, idle_ok = [], 0, 0
    deadline = time.time() + 60
    for i in range(half):
        assert time.time() < deadline, "flood took over 60 s"
        s = connect(o, source)
        try:
            s.sendall(HALF + b"%d" % i)
        except OSError:
            pass
        socks.append(("half", s))
    for i in range(idle):
        assert time.time() < deadline, "flood took over 60 s"
        s = connect(o, source)
        if ping(s):
            idle_ok += 1
        socks.append(("idle", s))
    # A half one refused at accept is closed: EOF or reset at once.
    for kind, s in socks:
        if kind == "half" and not closed_by_peer(s, 0.01):
            half_ok += 1
    return socks, half_ok, idle_ok


def run_calls(o, wd, uas_port, calls=20):
    """calls SIPp calls over TCP (127.0.0.1, -t t1 both sides) through
    the proxy to a UAS on uas_port; (UAC exit, UAS exit, report)."""
    uas = interop.uas(wd, "uas_call.xml", uas_port, o.port, calls=calls,
                      timeout_s=30, transport="t1")
    uac = interop.uac(wd, "uac_call.xml", o.port,
                      interop.free_udp_block(1, tcp=True), calls=calls,
                      rate=10, timeout_s=30, transport="t1")
    try:
        rc_uac = uac.wait()
        rc_uas = uas.wait(limit=5 if rc_uac else None)
        return rc_uac, rc_uas, uac.report() + "\n" + uas.report()
    finally:
        uac.stop()
        uas.stop()


SLOWLORIS = {
    # name: (connections group, half-open admitted, idle admitted)
    "held": ({"max_per_ip": 1000}, 200, 200),
    "capped": ({"max": 300, "max_per_ip": 256}, 200, 56),
}


@pytest.mark.skipif(interop.SIPP is None, reason="SIPp not installed")
@pytest.mark.parametrize("case", sorted(SLOWLORIS))
def test_slowloris_does_not_stop_callers(osprey_factory, tmp_path, case):
    conns, want_half, want_idle = SLOWLORIS[case]
    wd = str(tmp_path)
    uas_port = interop.free_udp_block(1, tcp=True)
    o = start(osprey_factory, dict(conns, message_timeout=60),
              routes=[("^bob$", ["sip:127.0.0.1:%d;transport=tcp" %
                                 uas_port])],
              timers=INTEROP_TIMERS)
    socks = []
    try:
        t0 = time.time()
        socks, half_ok, idle_ok = flood(o)
        took = time.time() - t0
        st = stats(o)
        why = "flood in %.1fs: half admitted %d, idle %d; stats %r" % (
            took, half_ok, idle_ok, st)
        assert (half_ok, idle_ok) == (want_half, want_idle), why
        assert st["connections.open"] == want_half + want_idle, why
        assert st["connections.refused_per_ip"] == \
            400 - want_half - want_idle, why

        t1 = time.time()
        rc_uac, rc_uas, report = run_calls(o, wd, uas_port)
        calls_s = time.time() - t1
        st = stats(o)
        print("slowloris %s: %s; 20 calls in %.1fs" % (case, why, calls_s))
        assert (rc_uac, rc_uas) == (0, 0), "SIPp UAC exit %s, UAS exit " \
            "%s with the flood open (%s)\n%s" % (rc_uac, rc_uas, why,
                                                 report)
        # The flood was there all along: nothing of it was closed.
        assert st["connections.closed_slow"] == 0, st
        assert st["connections.open"] >= want_half + want_idle, st
        stalled = [s for k, s in socks if k == "idle"][:want_idle]
        assert all(ping(s) for s in stalled[:5]), \
            "idle connections of the flood no longer answered"
        assert served(o) == "SIP/2.0 200 OK"
        assert o.alive()
    finally:
        for _, s in socks:
            s.close()


# ---------------------------------------------- (b) a reader that never reads

# A display name that makes each answer about 4 KB: 2,000 of them unread
# are about 8 MB, far over the write queue mark and the RSS bound below.
BIG_NAME = '"%s" ' % ("x" * 3800)
WRITE_QUEUE_MAX = 65536
RSS_BOUND_KB = 8192


def test_reader_that_never_reads_is_closed(osprey_factory):
    o = start(osprey_factory, {"write_queue_max": WRITE_QUEUE_MAX})
    assert served(o) == "SIP/2.0 200 OK"
    rss0 = rss_kb(o.proc.pid)
    s = connect(o, rcvbuf=4096)
    sent, err, peak = 0, None, rss0
    t0 = time.time()
    try:
        for i in range(2000):
            if time.time() - t0 > 30:
                err = "still sending after 30 s"
                break
            try:
                s.sendall(options(o, s, "nr%d" % i, BIG_NAME))
            except socket.timeout:
                err = "send blocked for 3 s"
                break
            except (BrokenPipeError, ConnectionResetError) as e:
                err = "%s" % type(e).__name__
                break
            sent += 1
            if i % 100 == 0:
                peak = max(peak, rss_kb(o.proc.pid))
        # Give the daemon time to work through what it has read.
        deadline = time.time() + 10
        while time.time() < deadline and \
                stats(o)["connections.closed_write_queue"] == 0:
            peak = max(peak, rss_kb(o.proc.pid))
            time.sleep(0.1)
        peak = max(peak, rss_kb(o.proc.pid))
        st = stats(o)
        why = ("sent %d OPTIONS (stopped: %s) in %.1fs; RSS %d kB before, "
               "peak %d kB; stats %r" % (sent, err, time.time() - t0, rss0,
                                         peak, st))
        print("never-reading reader: " + why)
        # One close for this connection.  With workers > 1 the answers to
        # what it sent last may still be on their way from the other
        # worker when it closes; they take RFC 3261 18.2.2's fallback (a
        # new connection to the sent-by port), which the same bound
        # closes again: more than one close is the bound working.
        assert st["connections.closed_write_queue"] >= 1, why
        assert closed_by_peer(s, 5), "connection still open\n" + why
        if not os.environ.get("OSPREY_SANITIZED"):  # ASan: shadow memory
            assert peak - rss0 < RSS_BOUND_KB, why
        assert served(o) == "SIP/2.0 200 OK", why
        assert o.alive()
    finally:
        s.close()


# ------------------------------------------------- (c) connections.max

def test_max_connections_refuses_the_next_one(osprey_factory):
    o = start(osprey_factory, {"max": 50})
    socks = []
    try:
        for i in range(50):
            s = connect(o)
            socks.append(s)
            s.sendall(options(o, s, "m%d" % i))
            assert read_response(s) == "SIP/2.0 200 OK", i
        assert stats(o)["connections.open"] == 50
        extra = connect(o)
        assert closed_by_peer(extra, 3), "the 51st connection was kept"
        extra.close()
        st = stats(o)
        assert st["connections.refused_global"] == 1, st
        assert st["connections.open"] == 50, st
        # Every one of the 50 still works.
        for i, s in enumerate(socks):
            s.sendall(options(o, s, "again%d" % i))
            assert read_response(s) == "SIP/2.0 200 OK", i
        # A slot freed is a slot for a new connection.
        socks.pop().close()
        deadline = time.time() + 3
        while time.time() < deadline and stats(o)["connections.open"] > 49:
            time.sleep(0.05)
        assert served(o) == "SIP/2.0 200 OK"
        assert stats(o)["connections.refused_global"] == 1
        assert o.alive()
    finally:
        for s in socks:
            s.close()
