"""TCP and TLS connections spread over the worker loops.

ospreyd runs with workers = 2 here, whatever OSPREY_TEST_WORKERS says.
Each worker accepts on a stream listener of its own (SO_REUSEPORT on the
same address: the kernel spreads the connections by their addresses and
ports) and owns what it accepted; a message read on one worker's
connection whose call belongs to the other is handed over, and the
answers to it go back to the connection's owner (doc/HACKING.md,
"Workers").  The tests open connections until they have one on each
worker (`ospreyctl -j connections` names each connection's worker) and
put a phone on each, so that every call crosses between the workers.

tests/sanitize/run-sanitized runs this file again against a
ThreadSanitizer build.
"""

import json
import os
import select
import socket
import ssl
import subprocess
import time

import pytest

from conftest import OSPREYD, TOP, conf_text, ctl, ctl_stats, reload_conf
from peers import interop
from sip import (SDP, Endpoint, Msg, Phone, UAC, _bytes, build_response,
                 hostport, match, new_branch, new_tag)

W2 = "workers = 2;"
MAKE_CA = os.path.join(TOP, "tests", "tls", "make-test-ca")
REG = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600}


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ca"))
    subprocess.run(["sh", MAKE_CA, d], check=True, timeout=60)
    return d


def start(osprey_factory, ca, extra="", **kw):
    """ospreyd with two workers on udp, tcp (same port) and tls."""
    p = interop.free_udp_block(1, tcp=True)
    tp = interop.free_udp_block(1, tcp=True)
    tls = ('tls = { certificate = "%s/server.pem"; key = "%s/server.key"; '
           '};' % (ca, ca))
    o = osprey_factory(
        port=p, extra="\n".join([W2, tls, extra]),
        listen=[("udp", "127.0.0.1", p), ("tcp", "127.0.0.1", p),
                ("tls", "127.0.0.1", tp)], **kw)
    o.tls_port = tp
    o.ca = ca
    return o


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=os.path.join(ca, "ca.pem"))
    return ctx


class StreamEndpoint(Endpoint):
    """A TCP or TLS connection to ospreyd with Endpoint's interface: send()
    writes on the connection (the address is ignored), read() frames
    messages by Content-Length."""

    def __init__(self, o, transport="tcp", timeout=5.0):
        port = o.tls_port if transport == "tls" else o.port
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if transport == "tls":
            s = tls_context(o.ca).wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.transport = transport
        self.remote = ("127.0.0.1", port)
        self.host, self.port = s.getsockname()[:2]
        self.addr = (self.host, self.port)
        self.queue, self.history, self.garbage = [], [], []
        self.buf = b""
        self.eof = False

    def send(self, data, addr=None):
        if isinstance(data, Msg):
            data = data.raw
        self.sock.sendall(_bytes(data))

    def _frame(self):
        self.buf = self.buf.lstrip(b"\r\n")
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return None
        n = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, v = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                n = int(v)
        if len(rest) < n:
            return None
        data = head + sep + rest[:n]
        self.buf = rest[n:]
        return data

    def read(self, timeout):
        deadline = time.monotonic() + max(0, timeout)
        while True:
            data = self._frame()
            if data is not None:
                m = Msg(data, self.remote)
                self.history.append(m)
                return m
            if self.eof:
                return None
            pending = getattr(self.sock, "pending", lambda: 0)()
            if not pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    return None
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except (ConnectionResetError, OSError):
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def closed_by_peer(self, within):
        self.read(within)
        return self.eof


class StreamUAC(UAC):
    """A call from a StreamEndpoint: its Via and Contact name the
    transport."""

    def via(self, branch):
        return "SIP/2.0/%s %s;branch=%s;rport" % (
            self.ep.transport.upper(), hostport(self.ep.host, self.ep.port),
            branch)

    @property
    def contact(self):
        return "<sip:alice@%s;transport=%s>" % (
            hostport(self.ep.host, self.ep.port), self.ep.transport)


class StreamPhone(Phone):
    """A phone registered over its StreamEndpoint's connection."""

    @property
    def contact_uri(self):
        return "sip:%s@%s;transport=%s" % (
            self.user, hostport(self.ep.host, self.ep.port),
            self.ep.transport)

    def register_bytes(self, **kw):
        kw.setdefault("via", "SIP/2.0/%s %s;branch=%s;rport" % (
            self.ep.transport.upper(), hostport(self.ep.host, self.ep.port),
            new_branch()))
        return super().register_bytes(**kw)


def conn_workers(o):
    """{local port of the peer: worker} of every connection."""
    out = {}
    for c in json.loads(ctl(o, "-j", "connections")):
        out[int(c["peer"].rsplit(":", 1)[1])] = c["worker"]
    return out


def endpoint_on(o, worker, transport, tries=64):
    """A connection that the kernel gave to worker; the ones it gave the
    other are closed again."""
    others = []
    try:
        for _ in range(tries):
            ep = StreamEndpoint(o, transport)
            # The owner knows it once it has accepted it (TLS: and the
            # handshake is done, which create_connection waited for).
            deadline = time.time() + 3
            w = None
            while w is None and time.time() < deadline:
                w = conn_workers(o).get(ep.port)
                if w is None:
                    time.sleep(0.02)
            if w == worker:
                return ep
            others.append(ep)
        raise AssertionError("no %s connection on worker %d in %d tries" %
                             (transport, worker, tries))
    finally:
        for ep in others:
            ep.close()


def per_worker(stats, what):
    return [stats.get("workers.%d.%s" % (i, what), 0) for i in range(2)]


def test_connections_land_on_both_workers(osprey_factory, ca):
    """16 TCP and 16 TLS clients: every one is served (OPTIONS, 200 on its
    connection), both workers accepted and hold some of them, and the
    totals are the sums of the workers' figures."""
    o = start(osprey_factory, ca)
    eps = [StreamEndpoint(o, t) for t in ("tcp", "tls") for _ in range(16)]
    try:
        for i, ep in enumerate(eps):
            call = StreamUAC(ep, o.addr, "sip:127.0.0.1:%d" % o.port)
            call.request("OPTIONS")
            r = ep.expect(call.resp(200, "OPTIONS"))
            assert r.vias[0].sent_by == ep.addr, r
        st = ctl_stats(o)
        conns = per_worker(st, "connections")
        acc = per_worker(st, "accepted")
        assert all(n > 0 for n in conns), st
        assert all(n > 0 for n in acc), st
        assert sum(conns) == 32 == st["connections.open"], st
        assert sum(acc) == 32 == st["connections.accepted"], st
        status = ctl(o, "status")
        assert "connections open         32\n" in status, status
        ws = conn_workers(o)
        assert sorted(set(ws[ep.port] for ep in eps)) == [0, 1], ws
    finally:
        for ep in eps:
            ep.close()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_calls_between_phones_on_different_workers(osprey_factory, ca,
                                                   transport):
    """bob registers over a connection of worker 1, alice calls from a
    connection of worker 0 (and the other way round): 8 calls, so that
    the Call-IDs fall to both workers.  Even calls are cancelled
    (INVITE, 180, CANCEL, 200, 487, ACK), odd ones answered and hung up
    (200, ACK end to end, BYE, 200).  Whichever worker holds a call,
    its messages go out on connections the other worker may own."""
    o = start(osprey_factory, ca, registrar=REG)
    for bob_w, alice_w in ((1, 0), (0, 1)):
        bob_ep = endpoint_on(o, bob_w, transport)
        alice_ep = endpoint_on(o, alice_w, transport)
        try:
            bob = StreamPhone(bob_ep, o.addr, "bob")
            r = bob.send_register(expires=600)
            assert r.code == 200, r
            for i in range(8):
                call = StreamUAC(alice_ep, o.addr, "sip:bob@example.test")
                call.invite()
                inv = bob.uas.expect("INVITE", call_id=call.call_id)
                bob.uas.respond(inv, 180)
                alice_ep.expect(call.resp(180))
                if i % 2 == 0:
                    call.cancel()
                    alice_ep.expect(call.resp(200, "CANCEL"))
                    can = bob.uas.expect("CANCEL", call_id=call.call_id)
                    bob.uas.respond(can, 200)
                    bob.uas.respond(inv, 487)
                    r = alice_ep.expect(call.resp(487))
                    call.ack(r)
                    # the proxy's own ACK for the 487 (17.1.1.3)
                    bob.uas.expect("ACK", call_id=call.call_id)
                    continue
                bob.uas.respond(inv, 200, body=SDP)
                ok = alice_ep.expect(call.resp(200))
                call.ack(ok)
                bob.uas.expect("ACK", call_id=call.call_id)
                call.bye()
                bye = bob.uas.expect("BYE", call_id=call.call_id)
                bob.uas.respond(bye, 200)
                alice_ep.expect(call.resp(200, "BYE"))
            ws = conn_workers(o)
            assert (ws[bob_ep.port], ws[alice_ep.port]) == (bob_w, alice_w)
        finally:
            bob_ep.close()
            alice_ep.close()
    st = ctl_stats(o)
    # the calls' owners sent on connections the other worker holds
    assert all(n > 0 for n in per_worker(st, "stream_out")), st


def test_phone_registered_on_worker_1_is_reachable_and_kept(
        osprey_factory, ca):
    """A phone registers over TCP on a connection worker 1 owns (the
    registrar is worker 0's).  A call from UDP reaches it on that
    connection, and the registration keeps it open past idle_timeout
    (worker 0 tells worker 1 to keep it); a connection that registered
    nothing is closed idle meanwhile."""
    o = start(osprey_factory, ca, registrar=REG,
              extra="connections = { idle_timeout = 1; };")
    bob_ep = endpoint_on(o, 1, "tcp")
    idle_ep = endpoint_on(o, 1, "tcp")
    caller = Endpoint()
    try:
        bob = StreamPhone(bob_ep, o.addr, "bob")
        assert bob.send_register(expires=600).code == 200
        idle_ep.send(b"\r\n\r\n")
        assert idle_ep.closed_by_peer(4), "an idle connection stayed open"
        assert not bob_ep.eof
        assert conn_workers(o).get(bob_ep.port) == 1
        for _ in range(4):
            call = UAC(caller, o.addr, "sip:bob@example.test",
                       from_uri="sip:eve@elsewhere.test")
            call.invite()
            inv = bob.uas.expect("INVITE", call_id=call.call_id)
            bob.uas.respond(inv, 486)
            r = caller.expect(call.resp(486))
            call.ack(r)
        st = ctl_stats(o)
        assert st["connections.closed_idle"] >= 1, st
    finally:
        bob_ep.close()
        idle_ep.close()
        caller.close()


def test_connection_limits_count_every_worker(osprey_factory, ca):
    """connections.max = 16 with two workers: 16 connections in all,
    spread over both (all 16 on one worker: 1 run in 32768), and the
    next ones are closed at once, whichever worker took them; max_per_ip
    counts the address's connections on every worker."""
    o = start(osprey_factory, ca,
              extra="connections = { max = 16; max_per_ip = 100; };")
    eps = [StreamEndpoint(o) for _ in range(16)]
    try:
        for ep in eps:
            call = StreamUAC(ep, o.addr, "sip:127.0.0.1:%d" % o.port)
            call.request("OPTIONS")
            ep.expect(call.resp(200, "OPTIONS"))
        assert all(n > 0 for n in per_worker(ctl_stats(o), "connections"))
        for _ in range(4):
            extra = StreamEndpoint(o)
            assert extra.closed_by_peer(3), "over connections.max: kept"
        st = ctl_stats(o)
        assert st["connections.refused_global"] == 4, st
        assert st["connections.open"] == 16, st
    finally:
        for ep in eps:
            ep.close()
    o2 = start(osprey_factory, ca,
               extra="connections = { max = 100; max_per_ip = 16; };")
    eps = [StreamEndpoint(o2) for _ in range(16)]
    try:
        for ep in eps:
            call = StreamUAC(ep, o2.addr, "sip:127.0.0.1:%d" % o2.port)
            call.request("OPTIONS")
            ep.expect(call.resp(200, "OPTIONS"))
        assert all(n > 0 for n in per_worker(ctl_stats(o2), "connections"))
        for _ in range(4):
            extra = StreamEndpoint(o2)
            assert extra.closed_by_peer(3), "over max_per_ip: kept"
        st = ctl_stats(o2)
        assert st["connections.refused_per_ip"] == 4, st
        # one closes: a new one from the address is served again
        eps[0].close()
        time.sleep(0.3)
        again = StreamEndpoint(o2)
        eps.append(again)
        call = StreamUAC(again, o2.addr, "sip:127.0.0.1:%d" % o2.port)
        call.request("OPTIONS")
        again.expect(call.resp(200, "OPTIONS"))
    finally:
        for ep in eps:
            ep.close()


def cert_names(o):
    """The DNS names of the certificate a new TLS connection is shown,
    and the local port of that connection (kept open: returned)."""
    raw = socket.create_connection(("127.0.0.1", o.tls_port), timeout=5)
    ctx = tls_context(o.ca)
    ctx.check_hostname = False      # other.pem is not for localhost
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    names = sorted(v for k, v in s.getpeercert()["subjectAltName"]
                   if k == "DNS")
    return names, s


def test_reload_certificate_reaches_every_worker(osprey_factory, ca):
    """A reload that names another certificate: 16 new TLS connections,
    taken by both workers, are all shown the new one."""
    o = start(osprey_factory, ca)
    before = per_worker(ctl_stats(o), "accepted")
    with open(o.conf) as f:
        text = f.read()
    reload_conf(o, text.replace("/server.pem", "/other.pem").replace(
        "/server.key", "/other.key"))
    socks = []
    try:
        for _ in range(16):
            names, s = cert_names(o)
            socks.append(s)
            assert "other.example.test" in names, names
        after = per_worker(ctl_stats(o), "accepted")
        assert all(a > b for a, b in zip(after, before)), (before, after)
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_second_daemon_on_the_stream_port_is_refused(osprey_factory, ca,
                                                     tmp_path, transport):
    """The workers' stream listeners share the port (SO_REUSEPORT) with
    each other only: a second ospreyd (its UDP port its own) that listens
    on the first one's TCP or TLS port exits with the bind error, and every
    connection still goes to the first."""
    o = start(osprey_factory, ca)
    p2 = interop.free_udp_block(1, tcp=True)
    lport = o.tls_port if transport == "tls" else o.port
    conf = tmp_path / "second.conf"
    conf.write_text(conf_text(
        p2, workdir=str(tmp_path), extra="\n".join([W2, (
            'tls = { certificate = "%s/server.pem"; key = "%s/server.key"; '
            '};' % (ca, ca))]),
        listen=[("udp", "127.0.0.1", p2), (transport, "127.0.0.1", lport)]))
    p = subprocess.run([OSPREYD, "-f", "-c", str(conf)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0, p
    assert "bind %s 127.0.0.1 port %d: Address already in use" % (
        transport, lport) in p.stdout + p.stderr, p
    eps = [StreamEndpoint(o, transport) for _ in range(8)]
    try:
        for ep in eps:
            call = StreamUAC(ep, o.addr, "sip:127.0.0.1:%d" % o.port)
            call.request("OPTIONS")
            ep.expect(call.resp(200, "OPTIONS"))
    finally:
        for ep in eps:
            ep.close()


def test_lost_connection_fails_calls_on_every_worker(osprey_factory, ca):
    """bob, registered over a connection worker 1 owns, rings in 8 calls
    from UDP (their Call-IDs fall to both workers), then his connection
    drops: every call fails over at once (17.1.4: a final answer to the
    caller long before Timer C), whichever worker holds it, because the
    owner of the connection tells every worker it is lost."""
    o = start(osprey_factory, ca, registrar=REG)
    bob_ep = endpoint_on(o, 1, "tcp")
    caller = Endpoint()
    try:
        bob = StreamPhone(bob_ep, o.addr, "bob")
        assert bob.send_register(expires=600).code == 200
        calls = []
        for _ in range(8):
            call = UAC(caller, o.addr, "sip:bob@example.test",
                       from_uri="sip:eve@elsewhere.test")
            call.invite()
            inv = bob.uas.expect("INVITE", call_id=call.call_id)
            bob.uas.respond(inv, 180)
            caller.expect(call.resp(180))
            calls.append(call)
        t0 = time.monotonic()
        bob_ep.close()
        for call in calls:
            r = caller.expect(match(response=True, call_id=call.call_id,
                                    cseq_method="INVITE",
                                    code=range(300, 700)), timeout=3.0)
            call.ack(r)
        # Timer C is 5 s here: the last one came long before
        assert time.monotonic() - t0 < 2.0, time.monotonic() - t0
    finally:
        caller.close()


def test_graceful_stop_with_connections_on_both_workers(osprey_factory,
                                                         ca):
    """SIGTERM while 4 calls ring between phones on connections of
    different workers (bob on worker 1, alice on worker 0): every new
    call, whichever worker holds it, gets 503 with Retry-After on alice's
    connection, the ringing ones
    are still answered over both connections, then the daemon exits 0
    by itself."""
    import signal
    o = start(osprey_factory, ca, registrar=REG,
              extra="shutdown_grace = 5000;")
    bob_ep = endpoint_on(o, 1, "tcp")
    alice_ep = endpoint_on(o, 0, "tls")
    try:
        bob = StreamPhone(bob_ep, o.addr, "bob")
        assert bob.send_register(expires=600).code == 200
        ringing = []
        for _ in range(4):
            call = StreamUAC(alice_ep, o.addr, "sip:bob@example.test")
            call.invite()
            inv = bob.uas.expect("INVITE", call_id=call.call_id)
            bob.uas.respond(inv, 180)
            alice_ep.expect(call.resp(180))
            ringing.append((call, inv))
        o.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        for _ in range(8):          # their Call-IDs fall to both workers
            late = StreamUAC(alice_ep, o.addr, "sip:bob@example.test")
            late.invite()
            r = alice_ep.expect(match(response=True, call_id=late.call_id,
                                      cseq_method="INVITE",
                                      code=range(300, 700)))
            assert r.code == 503 and r.get("retry-after"), r
            late.ack(r)
        assert o.alive(), "it must wait for the calls ringing"
        for call, inv in ringing:
            bob.uas.respond(inv, 200, body=SDP)
            call.ack(alice_ep.expect(call.resp(200)))
        assert o.proc.wait(3) == 0
    finally:
        bob_ep.close()
        alice_ep.close()


class AcceptedEndpoint(StreamEndpoint):
    """A connection a test server accepted: StreamEndpoint's framing."""

    def __init__(self, sock, transport="tcp"):
        self.sock = sock
        self.sock.settimeout(5)
        self.transport = transport
        self.remote = sock.getpeername()[:2]
        self.host, self.port = sock.getsockname()[:2]
        self.addr = (self.host, self.port)
        self.queue, self.history, self.garbage = [], [], []
        self.buf = b""
        self.eof = False


def test_one_connection_to_a_next_hop_from_both_workers(osprey_factory,
                                                         ca):
    """16 callers (UDP, their Call-IDs on both workers) call at once
    through a TCP next hop: the worker that opens the connection first
    claims the next hop in the directory, the other hands its INVITEs to
    it, and the next hop sees one connection carrying all 16."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    uas_port = srv.getsockname()[1]
    o = start(osprey_factory, ca, routes=[
        ("^carol$", ["sip:127.0.0.1:%d;transport=tcp" % uas_port])])
    callers = [Endpoint() for _ in range(16)]
    conns = []
    try:
        calls = []
        for ep in callers:
            call = UAC(ep, o.addr, "sip:carol@example.test")
            call.invite()
            calls.append(call)
        srv.settimeout(3)
        conns.append(AcceptedEndpoint(srv.accept()[0]))
        carol = conns[0]
        got = set()
        while len(got) < 16:
            inv = carol.expect(match(method="INVITE"), timeout=3)
            got.add(inv.call_id)
            carol.send(build_response(inv, 486, to_tag=new_tag()))
        for call in calls:
            r = call.ep.expect(call.resp(486))
            call.ack(r)
        srv.settimeout(0.5)
        try:
            conns.append(AcceptedEndpoint(srv.accept()[0]))
        except socket.timeout:
            pass
        assert len(conns) == 1, "the next hop got %d connections" % len(
            conns)
        st = ctl_stats(o)
        assert st["connections.connected"] == 1, st
        assert sum(per_worker(st, "stream_out")) > 0, st
    finally:
        for ep in callers + conns:
            ep.close()
        srv.close()
