"""TCP connections as a resource (RFC 3261 18.3, RFC 5626 3.5.1): framing
errors, keepalives, deadlines, caps, clean close, and transport errors
that fail over at once.

Raw sockets speak to a real ospreyd here because the assertions are about
the connection itself (what comes back on it, when it is closed, what the
daemon counts); calls over TCP with SIPp are in test_tcp.py.
"""

import os
import socket
import time


from conftest import ctl, ctl_stats, reload_conf
from peers import interop


OPTIONS = ("OPTIONS sip:127.0.0.1:%(port)d SIP/2.0\r\n"
           "Via: SIP/2.0/TCP 127.0.0.1:%(lport)d;branch=z9hG4bK-%(tag)s\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:t@example.test>;tag=%(tag)s\r\n"
           "To: <sip:127.0.0.1:%(port)d>\r\n"
           "Call-ID: %(tag)s@test\r\n"
           "CSeq: 1 OPTIONS\r\n"
           "%(extra)s"
           "Content-Length: %(cl)s\r\n\r\n%(body)s")


stats = ctl_stats


def start(osprey_factory, conns=None, **kw):
    port = interop.free_udp_block(1, tcp=True)
    extra = kw.pop("extra", "")
    if conns:
        extra += "\nconnections = { %s };" % " ".join(
            "%s = %d;" % kv for kv in conns.items())
    return osprey_factory(
        port=port, extra=extra,
        listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)],
        **kw)


def connect(o, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", o.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def options(o, s, tag, extra="", body="", cl=None):
    return (OPTIONS % {
        "port": o.port, "lport": s.getsockname()[1], "tag": tag,
        "extra": extra, "body": body,
        "cl": len(body) if cl is None else cl}).encode()


def read_response(s):
    """One response off the stream, framed by Content-Length."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return buf.decode(errors="replace")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
            while len(rest) < n:
                rest += s.recv(65536)
    return head.decode(errors="replace")


def closed_by_peer(s, within):
    """True if the peer closes s (EOF or reset) within `within` seconds;
    anything it sends before is read and dropped."""
    s.settimeout(within)
    deadline = time.time() + within
    try:
        while time.time() < deadline:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
    return False


def status_line(text):
    return text.split("\r\n", 1)[0]


def test_options_over_tcp_and_keepalive(osprey_factory):
    """An OPTIONS to the proxy is answered on the connection it came on;
    a CRLFCRLF ping gets exactly one CRLF back (RFC 5626 3.5.1) and the
    connection stays usable."""
    o = start(osprey_factory)
    s = connect(o)
    s.sendall(options(o, s, "ka1"))
    r = read_response(s)
    assert status_line(r) == "SIP/2.0 200 OK", r
    assert "Via: SIP/2.0/TCP" in r, r
    s.sendall(b"\r\n\r\n")
    s.settimeout(2)
    assert s.recv(100) == b"\r\n"
    s.sendall(options(o, s, "ka2"))
    assert status_line(read_response(s)) == "SIP/2.0 200 OK"
    s.close()
    assert stats(o)["connections.keepalives"] == 1


def test_missing_content_length_gets_400_and_close(osprey_factory):
    """18.3: over a stream Content-Length is required. The request is
    answered 400 with a reason that names it, the connection is closed,
    and another connection is served as before."""
    o = start(osprey_factory)
    other = connect(o)
    s = connect(o)
    req = options(o, s, "nocl").replace(b"Content-Length: 0\r\n", b"")
    s.sendall(req)
    r = read_response(s)
    assert status_line(r).startswith("SIP/2.0 400 "), r
    assert "Content-Length" in status_line(r), r
    assert closed_by_peer(s, 3)
    other.sendall(options(o, other, "still"))
    assert status_line(read_response(other)) == "SIP/2.0 200 OK"
    assert stats(o)["connections.closed_framing"] == 1


def test_oversize_message_gets_513_before_the_body(osprey_factory):
    """A Content-Length past max_message_size is refused with 513 as soon
    as the header section is in, without waiting for (or buffering) the
    body."""
    o = start(osprey_factory, extra="max_message_size = 4096;")
    s = connect(o)
    s.sendall(options(o, s, "big", cl=100000))
    r = read_response(s)
    assert status_line(r).startswith("SIP/2.0 513 "), r
    assert closed_by_peer(s, 3)


def test_slowloris_first_data_and_message_deadlines(osprey_factory):
    """A connection that sends nothing is closed at first_data_timeout; one
    that trickles a header section is closed at message_timeout even
    though bytes keep coming; a normal caller is answered meanwhile."""
    o = start(osprey_factory, conns={"first_data_timeout": 1,
                                     "message_timeout": 2})
    silent = connect(o)
    trickle = connect(o)
    t0 = time.time()
    trickle.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n")
    good = connect(o)
    good.sendall(options(o, good, "good"))
    assert status_line(read_response(good)) == "SIP/2.0 200 OK"
    assert closed_by_peer(silent, 3), "silent connection kept open"
    # keep trickling one header line every 0.3 s: must still be cut off
    closed = False
    while time.time() - t0 < 5:
        try:
            trickle.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if closed_by_peer(trickle, 0.3):
            closed = True
            break
    assert closed, "trickled message never cut off"
    assert time.time() - t0 < 4.5
    st = stats(o)
    assert st["connections.closed_slow"] == 2, st


def test_idle_timeout_closes(osprey_factory):
    o = start(osprey_factory, conns={"idle_timeout": 1})
    s = connect(o)
    s.sendall(options(o, s, "idle"))
    assert status_line(read_response(s)) == "SIP/2.0 200 OK"
    assert closed_by_peer(s, 4)
    assert stats(o)["connections.closed_idle"] == 1


def test_idle_timeout_shortened_by_reload(osprey_factory):
    """A reload that shortens idle_timeout closes an open connection that
    has been quiet that long, not at the deadline it had before."""
    o = start(osprey_factory, conns={"idle_timeout": 600})
    s = connect(o)
    for tag in ("r1", "r2"):
        s.sendall(options(o, s, tag))
        assert status_line(read_response(s)) == "SIP/2.0 200 OK"
    with open(o.conf) as f:
        text = f.read()
    assert "idle_timeout = 600;" in text
    reload_conf(o, text.replace("idle_timeout = 600;", "idle_timeout = 1;"))
    assert closed_by_peer(s, 4), "still open 4 s after the reload"
    assert stats(o)["connections.closed_idle"] == 1


def test_per_ip_cap_and_global_cap(osprey_factory):
    """max_per_ip connections from one address; the next one is closed at
    once, and once one closes a new one is accepted."""
    o = start(osprey_factory, conns={"max_per_ip": 3})
    socks = [connect(o) for _ in range(3)]
    for i, s in enumerate(socks):
        s.sendall(options(o, s, "cap%d" % i))
        assert status_line(read_response(s)) == "SIP/2.0 200 OK"
    extra = connect(o)
    assert closed_by_peer(extra, 3)
    socks[0].close()
    time.sleep(0.3)
    again = connect(o)
    again.sendall(options(o, again, "again"))
    assert status_line(read_response(again)) == "SIP/2.0 200 OK"
    assert stats(o)["connections.refused_per_ip"] == 1
    for s in socks[1:] + [again]:
        s.close()


def test_connections_listing(osprey_factory):
    """ospreyctl connections shows each connection with its peer, and the
    status counts them."""
    o = start(osprey_factory)
    s = connect(o)
    s.sendall(options(o, s, "list"))
    read_response(s)
    out = ctl(o, "connections")
    assert "tcp:127.0.0.1:%d" % s.getsockname()[1] in out, out
    assert " in " in out and "open" in out, out
    assert "connections open: 1" in ctl(o, "status") or \
        "connections" in ctl(o, "status")
    s.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_thousands_of_dropped_connections_leave_nothing(osprey_factory):
    """Two rounds of 2,000 connections opened and dropped in every state
    (at once, after half a header, after a whole request, with a reset)
    leave no fd, no connection and no CLOSE_WAIT behind, and the second
    round does not grow the daemon's heap (the bytes its allocator has
    handed out, not the resident size, which keeps its high-water mark)."""
    o = start(osprey_factory, conns={"max_per_ip": 5000})
    pid = o.proc.pid
    base_fds = fd_count(pid)

    def round_(tag):
        for i in range(500):
            a = connect(o)
            a.close()
            b = connect(o)
            b.sendall(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP")
            b.close()
            c = connect(o)
            c.sendall(options(o, c, "drop%s%d" % (tag, i)))
            c.close()
            d = connect(o)
            d.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
            d.sendall(b"OPTIONS sip:")
            d.close()           # RST
        deadline = time.time() + 10
        while time.time() < deadline:
            if fd_count(pid) == base_fds and \
                    stats(o)["connections.open"] == 0:
                break
            time.sleep(0.2)
        assert fd_count(pid) == base_fds
        assert stats(o)["connections.open"] == 0
        return stats(o)["memory.heap_in_use"]

    first = round_("a")
    second = round_("b")
    # a connection costs several KB: 2,000 leaked would be megabytes
    if not os.environ.get("OSPREY_SANITIZED"):  # ASan keeps its own heap
        print("heap in use after each round:", first, second)
        assert first > 0 and second - first < 256 * 1024, (first, second)
    st = stats(o)
    assert st["connections.accepted"] == 4000, st
    with open("/proc/net/tcp") as f:
        close_wait = [l for l in f if l.split()[3] == "08" and
                      l.split()[1].endswith(":%04X" % o.port)]
    assert close_wait == []
    assert o.alive()


def test_transport_error_fails_over_at_once(osprey_factory, tmp_path):
    """17.1.4: a target whose TCP connect is refused counts as a 503 at
    once; the route goes on to its next target (a SIPp UAS over UDP) long
    before Timer B (32 s with T1 = 500 ms) would have fired."""
    wd = str(tmp_path)
    dead = interop.free_udp_block(1, tcp=True)
    uas_port = interop.free_udp_block(1, tcp=True)
    port = interop.free_udp_block(1, tcp=True)
    o = osprey_factory(
        port=port,
        routes=[("^bob$", ["sip:127.0.0.1:%d;transport=tcp" % dead,
                           "sip:127.0.0.1:%d" % uas_port])],
        timers={"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000},
        listen=[("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)])
    uas = interop.uas(wd, "uas_call.xml", uas_port, o.port, timeout_s=15)
    uac = interop.uac(wd, "uac_call.xml", o.port,
                      interop.free_udp_block(1, tcp=True), timeout_s=15)
    try:
        t0 = time.time()
        rc = uac.wait()
        took = time.time() - t0
        assert rc == 0, uac.report() + "\n" + o.log_text()[-3000:]
        assert uas.wait(limit=5) == 0, uas.report()
        assert took < 10, took
        assert "transport error" in o.log_text()
        assert stats(o)["connections.connect_failed"] == 1
    finally:
        uac.stop()
        uas.stop()


def test_banned_source_loses_its_connection_and_cannot_reconnect(
        osprey_factory):
    """The guard counts requests per source over TCP as over UDP: past
    security.rate_requests the source is banned, its connection is closed,
    and a new connection from it is closed at once while the ban lasts.
    Another source is served meanwhile.  (127.0.0.2: the proxy's own
    address is never limited.)"""
    o = start(osprey_factory, extra="security = { rate_window = 5000; "
              "rate_requests = 5; ban_time = 30; };")

    def from_2():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.2", 0))
        s.settimeout(3)
        s.connect(("127.0.0.1", o.port))
        return s
    s = from_2()
    for i in range(5):
        s.sendall(options(o, s, "g%d" % i))
        assert status_line(read_response(s)) == "SIP/2.0 200 OK"
    s.sendall(options(o, s, "g5"))          # the 6th: banned
    assert closed_by_peer(s, 3)
    again = from_2()
    assert closed_by_peer(again, 3)
    other = connect(o)                       # 127.0.0.1: not limited
    other.sendall(options(o, other, "other"))
    assert status_line(read_response(other)) == "SIP/2.0 200 OK"
    st = stats(o)
    assert st["connections.refused_banned"] == 1, st
    assert st["guard.bans"] == 1, st
