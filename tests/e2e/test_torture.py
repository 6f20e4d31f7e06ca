"""Torture corpora against a real ospreyd: RFC 4475, RFC 5118, PROTOS c07-sip.

The messages come from tests/data/ (see tests/data/README.md) and are sent
byte for byte, one UDP datagram each, to the daemon's port: nothing in them
is rewritten.

Network namespace
-----------------
The RFC messages name hosts that are not this machine, and most of their
Vias have no rport: RFC 3261 18.2.2 sends the replies to port 5060 (or the
Via's port) of the source address.  So the part that touches the network
(daemon, sender, UAS, catchers) runs in a child process,
`python3 test_torture.py --child rfc|protos OUT.json`, started under
`unshare -rn` (a user namespace that maps us to root, and a network
namespace of its own) which brings up `lo` (`ip link set lo up`, an ioctl
if `ip` is missing) and checks that `lo` is its only interface.  So no
datagram can leave the machine or reach a process of the host, and the
child can bind the ports the Vias name (5060, 5050, 6050, 19823) and see
every reply.  Root in the namespace may also open an AF_PACKET socket on
`lo`: a sniffer with a BPF filter records every datagram the daemon sends,
wherever to (replies to ports nobody listens on included).  The child
writes what it saw as JSON; the tests below judge it, one test case per
message.  If `unshare -rn` is not permitted (or OSPREY_TORTURE_NO_NETNS=1
is set) the child runs on the host's loopback instead, without the
sniffer: ports that are taken there cannot be watched and the checks that
need them are skipped, and a warning says so.

Routing
-------
One ospreyd for the RFC messages (restarted only if it dies; the death is
a failure of the message that caused it).  Our domains are the
Request-URI hosts whose messages all have a user part (example.org,
example.net, company.com, jasomi.com, chair-dnrc.example.com,
host.example.net, example.test).  The hosts of the user-less requests
(example.com and registrar.example.com for the REGISTERs, [2001:db8::10])
stay foreign: for one of our own domains the proxy itself would answer them
(405: it has no registrar); foreign, the static route relays them to the
UAS, standing in for that domain's registrar, and the forwarded bytes can be
checked.  One route, user regex ".*", sends everything to our UAS, so
whatever the daemon fails to reject shows up there.  mpart01's own Route
(sip:127.0.0.1:5080, a strict router) is honoured: a second UAS listens
there.  wsinv's Route names services.example.com: a small DNS server
(dnsserver.py) makes it our UAS.  The UAS answers INVITE with 486, an
unknown method with 501, anything else with 200.  Timers are short
(T1 = 20 ms); messages that share a transaction key (same branch, sent-by
and method, e.g. cparam01/cparam02) are sent 64*T1 + T4 + 0.3 s apart.

TCP
---
The same messages again, each on a TCP connection of its own to the same
daemon setup (it also listens on TCP; connections.message_timeout = 1 s),
`--child tcp`.  Framing comes first on a stream: TCP_DIFF lists the six
messages whose outcome differs from UDP, with the reason for each; every
other one must fare as EXPECT says, its answers on its connection, which
then still answers a CRLFCRLF ping.  After each message an OPTIONS on a
fresh connection must get 200.  TCP listeners on the Vias' ports (5060 ...)
catch the connections the daemon opens for answers whose connection is gone
(RFC 3261 18.2.2).
"""

import base64
import csv
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
# Worker loops of the daemon under test (conftest.conf_text sets them).
WORKERS = int(os.environ.get("OSPREY_TEST_WORKERS", "1"))

import pytest  # noqa: E402

from sip import (COMPACT, UAS, Endpoint, Msg, Net,  # noqa: E402
                 split_list, uri_of)

DATA = os.path.join(os.path.dirname(HERE), "data")
RFC4475 = os.path.join(DATA, "rfc4475")
RFC5118 = os.path.join(DATA, "rfc5118")
PROTOS = os.path.join(DATA, "protos-c07-sip")

# Short timers: a transaction is gone 64*T1 + T4 after its final response.
TIMERS = {"t1": 20, "t2": 160, "t4": 200, "c": 3000, "cancel": 500}
TXN_LIFE = (64 * TIMERS["t1"] + TIMERS["t4"]) / 1000.0 + 0.3
# The TCP run: a message not complete after this long closes the connection.
TCP_CONNS = {"message_timeout": 1, "first_data_timeout": 5}
MSG_TIMEOUT = TCP_CONNS["message_timeout"]
DOMAINS = ("example.test", "example.org", "example.net", "company.com",
           "jasomi.com", "chair-dnrc.example.com", "host.example.net")
ROUTE_PORT = 5080           # mpart01.dat: Route: <sip:127.0.0.1:5080>
KNOWN = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE",
         "INFO", "PRACK", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER",
         "PUBLISH"}
UAS_CODE = {"INVITE": 486}

# ---------------------------------------------------------------------------
# The corpus and lenient byte-level parsing (works on anything, never raises)


def read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def corpus():
    """[(test id, path, manifest row)] for every RFC 4475 / 5118 message."""
    out = []
    for row in read_tsv(os.path.join(RFC4475, "MANIFEST.tsv")):
        out.append(("rfc4475-" + row["file"][:-4],
                    os.path.join(RFC4475, row["file"]), row))
    for row in read_tsv(os.path.join(RFC5118, "MANIFEST.tsv")):
        out.append(("rfc5118-" + row["file"][:-4],
                    os.path.join(RFC5118, "wire", row["file"]), row))
    return out


def split_raw(data):
    """(start line, [(long lower name, value)], body) of a datagram, with
    folded lines joined; latin-1, so every byte survives."""
    text = data.decode("latin-1")
    sep = text.find("\r\n\r\n")
    head, body = (text, "") if sep < 0 else (text[:sep], text[sep + 4:])
    lines = head.split("\r\n")
    hdrs = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and hdrs:
            n, v = hdrs[-1]
            hdrs[-1] = (n, v + " " + line.strip(" \t"))
            continue
        name, _, value = line.partition(":")
        n = name.strip(" \t").lower()
        hdrs.append((COMPACT.get(n, n), value.strip(" \t")))
    return lines[0], hdrs, body


VIA_RE = re.compile(r"^\s*[^/\s]+\s*/\s*[^/\s]+\s*/\s*[^\s;,]+\s+"
                    r"(\[[^\]]*\]|[^;:\s,]+)(?:\s*:\s*(\d+))?")
BRANCH_RE = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.I)


def lws(s):
    return re.sub(r"\s+", " ", s).strip()


class Ident:
    """What identifies a message: start line, Call-ID, CSeq, Vias."""

    def __init__(self, data):
        self.start, self.hdrs, self.body = split_raw(data)
        self.response = self.start.startswith("SIP/")
        parts = self.start.split(" ")
        self.method = None if self.response else parts[0]
        self.code = None
        if self.response and len(parts) > 1 and parts[1].isdigit():
            self.code = int(parts[1])
        self.call_id = self.first("call-id")
        cseq = (self.first("cseq") or "").split()
        self.cseq_num = cseq[0] if cseq else None
        self.vias = []
        for v in self.all("via"):
            self.vias.extend(split_list(v))

    def first(self, name):
        for n, v in self.hdrs:
            if n == name:
                return v
        return None

    def all(self, name):
        return [v for n, v in self.hdrs if n == name]

    def branch(self, i=0):
        if len(self.vias) <= i:
            return None
        m = BRANCH_RE.search(self.vias[i])
        return m.group(1) if m else ""

    def sent_by(self, i=0):
        if len(self.vias) <= i:
            return None
        m = VIA_RE.match(self.vias[i])
        if not m:
            return None
        return m.group(1).lower(), int(m.group(2)) if m.group(2) else 5060

    def reply_port(self):
        """Where the daemon answers (RFC 3261 18.2.2): None = to the
        source port (rport), else the Via port or 5060."""
        if not self.vias or re.search(r";\s*rport\b", self.vias[0], re.I):
            return None
        sb = self.sent_by(0)
        return sb[1] if sb else 5060

    def keys(self):
        """Transaction keys this message occupies at the daemon."""
        meth = "INVITE" if self.method == "ACK" else (self.method or "")
        ks = {("cid", self.call_id, self.cseq_num)}
        if self.response:
            return ks
        b = self.branch(0)
        ks.add(("txn", b, self.sent_by(0), meth))
        return ks

    def matches(self, other, at_uas):
        """Is the datagram other (Ident) about this message?"""
        if self.call_id is not None and other.call_id is not None:
            if self.call_id.strip() != other.call_id.strip():
                return False
            if self.cseq_num and other.cseq_num:
                return self.cseq_num == other.cseq_num
            return True
        b = self.branch(0)
        if b:
            return other.branch(1 if at_uas else 0) == b
        return False


def norm_via(v):
    """A Via value without received/rport and whitespace, to compare."""
    v = re.sub(r";\s*received\s*=\s*[^;,]*", "", v, flags=re.I)
    v = re.sub(r";\s*rport(\s*=\s*\d+)?", "", v, flags=re.I)
    return re.sub(r"\s+", "", v).lower()


def declared_body(data):
    """The body of a datagram as its sender meant it: Content-Length
    bytes if given, else to the end of the datagram (RFC 3261 18.3)."""
    sep = data.find(b"\r\n\r\n")
    if sep < 0:
        return b""
    body = data[sep + 4:]
    cl = Ident(data).first("content-length")
    if cl is not None and cl.strip().isdigit():
        body = body[:int(cl)]
    return body


TOKEN_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]+$")


def malformed(data):
    """Why a request the proxy sent to the UAS is not a sane SIP request
    (empty list: it is)."""
    probs = []
    try:
        m = Msg(data)
    except ValueError as e:
        return ["does not parse: %s" % e]
    if not m.is_request:
        return ["a response reached the UAS"]
    if not TOKEN_RE.match(m.method):
        probs.append("method %r is not a token" % m.method)
    if not URI_RE.match(m.uri):
        probs.append("Request-URI %r" % m.uri)
    if m.version != "SIP/2.0":
        probs.append("version %r" % m.version)
    for h in ("via", "from", "to", "call-id", "cseq", "max-forwards"):
        if not m.lines(h):
            probs.append("no %s" % h)
    for h in ("from", "to", "call-id", "cseq", "max-forwards",
              "content-length"):
        if len(m.lines(h)) > 1:
            probs.append("%d %s headers" % (len(m.lines(h)), h))
    try:
        vias = m.vias
    except ValueError as e:
        vias = []
        probs.append(str(e))
    if vias and not (vias[0].branch or "").startswith("z9hG4bK"):
        probs.append("top Via has no RFC 3261 branch: %r" % vias[0].value)
    cs = (m.get("cseq") or "").split()
    if m.get("cseq") is not None:
        if (len(cs) != 2 or not cs[0].isdigit() or int(cs[0]) >= 2 ** 32
                or cs[1] != m.method):
            probs.append("CSeq %r for %s" % (m.get("cseq"), m.method))
    mf = m.get("max-forwards")
    if mf is not None and not (mf.isdigit() and int(mf) <= 255):
        probs.append("Max-Forwards %r" % mf)
    for h in ("from", "to"):
        v = m.get(h)
        if v is not None:
            try:
                if not URI_RE.match(uri_of(v)):
                    probs.append("%s URI %r" % (h, uri_of(v)))
            except ValueError:
                probs.append("%s %r" % (h, v))
    cl = m.get("content-length")
    if cl is not None and (not cl.isdigit() or int(cl) != len(m.body)):
        probs.append("Content-Length %r, body %d bytes" % (cl, len(m.body)))
    return probs


# ---------------------------------------------------------------------------
# Network namespace


def _lo_up():
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = struct.pack("16sh", b"lo", 0)
    flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    s.close()


_NETNS = None
FALLBACK = ("test_torture ran on the host's loopback, not in a network "
            "namespace of its own (unshare -rn not permitted, or "
            "OSPREY_TORTURE_NO_NETNS set): replies to the Via ports went "
            "to 127.0.0.1 of the host, and nothing was sniffed")


def netns_ok():
    """Can we run in a private network namespace (unshare -rn)?"""
    global _NETNS
    if _NETNS is None:
        _NETNS = False
        if (not os.environ.get("OSPREY_TORTURE_NO_NETNS") and
                shutil.which("unshare")):
            try:
                _NETNS = subprocess.run(
                    ["unshare", "-rn", "true"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, timeout=10).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _NETNS = False
    return _NETNS


def run_child(kind, out, timeout):
    """Run this file's child part (kind rfc | protos) and load its JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind,
           str(out)]
    if netns_ok():
        cmd = ["unshare", "-rn"] + cmd + ["--netns"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if p.returncode != 0 or not os.path.exists(out):
        pytest.fail("child %s exited %d\n%s\n%s" % (
            " ".join(cmd), p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace")[-6000:]))
    with open(out) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# The child: everything that touches the network happens here


def b64(data):
    return base64.b64encode(data).decode()


def unb64(s):
    return base64.b64decode(s)


class Sniffer:
    """Every UDP/IPv4 datagram the daemon sends from its port, whatever its
    destination: an AF_PACKET socket on lo (root in the namespace has
    CAP_NET_RAW there) with a BPF filter on outgoing packets."""

    SO_ATTACH_FILTER = 26

    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                                  socket.htons(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        self._prog = None

    def watch(self, port):
        """Keep only IPv4 UDP packets leaving from port."""
        import ctypes
        code = [(0x30, 0, 0, 0xfffff004),   # ldb pkttype
                (0x15, 0, 9, 4),            # jeq OUTGOING
                (0x30, 0, 0, 0),            # ldb [0]
                (0x54, 0, 0, 0xf0),         # and #0xf0
                (0x15, 0, 6, 0x40),         # jeq IPv4
                (0x30, 0, 0, 9),            # ldb [9]: protocol
                (0x15, 0, 4, 17),           # jeq UDP
                (0xb1, 0, 0, 0),            # ldxb 4*([0]&0xf)
                (0x48, 0, 0, 0),            # ldh [x+0]: source port
                (0x15, 0, 1, port),         # jeq port
                (0x06, 0, 0, 0x40000),      # accept
                (0x06, 0, 0, 0)]            # drop
        buf = ctypes.create_string_buffer(
            b"".join(struct.pack("HBBI", *c) for c in code))
        self._prog = buf
        fprog = struct.pack("HL", len(code), ctypes.addressof(buf))
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_ATTACH_FILTER, fprog)
        while select.select([self.sock], [], [], 0)[0]:
            self.sock.recv(70000)       # what came before the filter

    def read(self):
        """(payload, (dst ip, dst port)) of one packet, or None."""
        pkt = self.sock.recv(70000)
        ihl = (pkt[0] & 0xf) * 4
        if len(pkt) < ihl + 8 or pkt[9] != 17:
            return None
        dport, ulen = struct.unpack("!HH", pkt[ihl + 2:ihl + 6])
        return pkt[ihl + 8:ihl + ulen], (socket.inet_ntoa(pkt[16:20]), dport)


class Wire:
    """The sockets of the child and the loop that reads them.  The UAS
    (and the second one, on ROUTE_PORT) answer what they get; with a
    sniffer, sink also gets every datagram the daemon sends, as "out"."""

    def __init__(self, catcher_ports=(), sniff=False):
        self.uas = Endpoint()
        self.uas2 = self._bind(ROUTE_PORT)
        self.sender = Endpoint()
        self.catchers = {}
        self.unbound = []
        for p in sorted(set(catcher_ports)):
            ep = self._bind(p)
            if ep is None:
                self.unbound.append(p)
            else:
                self.catchers[p] = ep
        self.socks = {self.uas.sock: ("uas", self.uas),
                      self.sender.sock: ("sender", self.sender)}
        if self.uas2 is not None:
            self.socks[self.uas2.sock] = ("uas2", self.uas2)
        for p, ep in self.catchers.items():
            self.socks[ep.sock] = ("catcher:%d" % p, ep)
        self.extra = {}     # more sockets (TCP): socket -> fn(sink)
        self.sniffer = None
        if sniff:
            try:
                self.sniffer = Sniffer()
                self.socks[self.sniffer.sock] = ("out", None)
            except (OSError, AttributeError):
                self.sniffer = None

    def watch(self, port):
        """The daemon listens on port now (again: a restart)."""
        if self.sniffer is not None:
            self.sniffer.watch(port)

    @staticmethod
    def _bind(port):
        """An Endpoint on 127.0.0.1:port, or None if the port is taken."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            return None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        ep = Endpoint.__new__(Endpoint)
        ep.sock = sock
        ep.host, ep.port = sock.getsockname()[:2]
        ep.addr = (ep.host, ep.port)
        ep.queue, ep.history, ep.garbage = [], [], []
        return ep

    def answer(self, ep, data, src):
        """The UAS side: answer a request (ACK: nothing)."""
        try:
            req = Msg(data, src)
            if not req.is_request or req.method == "ACK":
                return
            code = UAS_CODE.get(req.method,
                                200 if req.method in KNOWN else 501)
            UAS(ep).respond(req, code, contact=False)
        except (ValueError, IndexError, OSError):
            pass

    def pump(self, duration, sink):
        """Read every socket for duration seconds (0: what is there);
        sink(label, data, src, time) gets each datagram."""
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            r, _, _ = select.select(list(self.socks) + list(self.extra), [],
                                    [], max(0, left))
            if not r:
                if left <= 0:
                    return
                continue
            for s in r:
                if s in self.extra:
                    self.extra[s](sink)
                    continue
                if s not in self.socks:
                    continue
                label, ep = self.socks[s]
                try:
                    if label == "out":
                        got = self.sniffer.read()
                        if got is None:
                            continue
                        data, src = got
                    else:
                        data, src = s.recvfrom(65535)
                except (BlockingIOError, ConnectionRefusedError,
                        InterruptedError):
                    continue
                if label.startswith("uas"):
                    self.answer(ep, data, src)
                sink(label, data, src, time.monotonic())

    def close(self):
        for s in list(self.socks) + list(self.extra):
            s.close()


WORKDIRS = []
DAEMONS = []


def start_proxy(uas_target, dns_port=None, tcp=False):
    """An ospreyd routing everything to uas_target (conftest's Osprey).
    tcp: it also listens on TCP on the same port, with the connection
    limits TCP_CONNS and a control socket (ospreyctl stats)."""
    import conftest
    workdir = tempfile.mkdtemp(prefix="osprey-torture-")
    WORKDIRS.append(workdir)
    port = conftest.free_udp_port()
    listen = None
    # relay: wsinv and mpart01 carry a preloaded Route that is not us.
    extra = "relay = true;\n"
    if dns_port:
        extra += ('dns = { nameservers = [ "127.0.0.1:%d" ]; timeout = 500; };'
                  % dns_port)
    if tcp:
        while not tcp_free(port):
            port = conftest.free_udp_port()
        listen = [("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port)]
        extra += "\nconnections = { %s };" % " ".join(
            "%s = %d;" % kv for kv in TCP_CONNS.items())
    text = conftest.conf_text(port, routes=[(".*", [uas_target])],
                              domains=DOMAINS, timers=TIMERS, extra=extra,
                              listen=listen,
                              workdir=workdir if tcp else None)
    d = conftest.Osprey(text, port, workdir)
    d.ctl_socket = os.path.join(workdir, "ctl.sock")
    DAEMONS.append(d)
    return d


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def normal_call(proxy, uas_ep):
    caller = Endpoint()
    try:
        Net(proxy, caller, UAS(uas_ep)).simple_call()
        return None
    except Exception as e:     # noqa: BLE001 - reported to the parent
        return "%s: %s" % (type(e).__name__, e)
    finally:
        caller.close()


def child_env(netns):
    info = {"netns": netns, "interfaces": [n for _, n in
                                           socket.if_nameindex()]}
    if netns:
        _lo_up()
        info["interfaces"] = [n for _, n in socket.if_nameindex()]
        assert info["interfaces"] == ["lo"], info
    return info


def child_rfc(out, netns):
    info = child_env(netns)
    msgs = []
    for name, path, row in corpus():
        with open(path, "rb") as f:
            data = f.read()
        msgs.append((name, data, Ident(data)))
    ports = {m[2].reply_port() for m in msgs} - {None}
    wire = Wire(ports, sniff=netns)
    # wsinv.dat's Route names services.example.com: it is our UAS.
    from dnsserver import DNSServer
    dns = DNSServer({
        ("_sip._udp.services.example.com", "SRV"):
            [(0, 0, wire.uas.port, "uas.torture.test")],
        ("uas.torture.test", "A"): ["127.0.0.1"],
        ("services.example.com", "A"): ["127.0.0.1"]})

    def start():
        p = start_proxy("sip:127.0.0.1:%d" % wire.uas.port, dns.port)
        wire.watch(p.port)
        return p

    proxy = start()
    info["sniffer"] = wire.sniffer is not None
    res = {"env": info, "uas_port": wire.uas.port,
           "sender_port": wire.sender.port, "route_port": ROUTE_PORT
           if wire.uas2 else None, "unbound": wire.unbound,
           "messages": {}, "stray": [], "deaths": []}
    recs = {}
    order = []             # (name, ident) in the order sent
    last_use = {}

    def sink(label, data, src, when):
        d = Ident(data)
        at_uas = label.startswith("uas") or (label == "out" and
                                             not d.response)
        item = {"at": label, "src": list(src), "raw": b64(data)}
        if label == "out":
            item["at"] = "out to %s:%d" % tuple(src)
        where = "out" if label == "out" else "uas" if at_uas else "resp"
        # The message in flight first, then the latest earlier one.
        for name, ident in reversed(order):
            if ident.matches(d, at_uas):
                recs[name][where].append(item)
                return
        if order:
            recs[order[-1][0]]["other"].append(item)
        else:
            res["stray"].append(item)

    pending = list(msgs)
    while pending:
        now = time.monotonic()
        pick = None
        for i, (name, data, ident) in enumerate(pending):
            if all(now - last_use.get(k, -1e9) > TXN_LIFE
                   for k in ident.keys()):
                pick = i
                break
        if pick is None:
            wire.pump(0.05, sink)
            continue
        name, data, ident = pending.pop(pick)
        recs[name] = {"resp": [], "uas": [], "other": [], "out": [],
                      "shares_key": [
            [n, round(now - last_use[k], 2)] for n, i in order
            for k in ident.keys() if k in i.keys() and k[0] == "txn"],
            "proxy_port": proxy.port}
        order.append((name, ident))
        log0 = os.path.getsize(proxy.logpath)
        wire.sender.sock.sendto(data, proxy.addr)
        # Until a final response for it and 0.1 s of quiet, at most 1 s.
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            n = len(recs[name]["resp"]) + len(recs[name]["uas"])
            wire.pump(0.1, sink)
            done = any(Ident(unb64(x["raw"])).code is not None and
                       Ident(unb64(x["raw"])).code >= 200
                       for x in recs[name]["resp"])
            if done and n == len(recs[name]["resp"]) + len(recs[name]["uas"]):
                break
            if not proxy.alive():
                break
        for k in ident.keys():
            last_use[k] = time.monotonic()
        recs[name]["alive"] = proxy.alive()
        with open(proxy.logpath, "rb") as f:
            f.seek(log0)
            recs[name]["log"] = f.read(20000).decode("utf-8", "replace")
        if not proxy.alive():
            # Note it, and go on with a fresh daemon.
            recs[name]["exit"] = proxy.stop()
            res["deaths"].append([name, recs[name]["exit"]])
            proxy = start()
            last_use = {}
    wire.pump(TXN_LIFE, sink)          # late retransmissions
    res["messages"] = recs
    res["alive_end"] = proxy.alive()
    res["call_error"] = normal_call(proxy, wire.uas) if proxy.alive() \
        else "daemon not running"
    res["exit"] = proxy.stop()
    res["log"] = proxy.log_text()[-200000:]
    res["dns_queries"] = dns.queries
    dns.stop()
    wire.close()
    with open(out, "w") as f:
        json.dump(res, f)


# ---------------------------------------------------------------------------
# The child, TCP: each message on a connection of its own


def tcp_free(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


CL_RE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I)


class StreamConn:
    """Our end of one TCP connection, read in Wire.pump: messages framed
    by Content-Length go to sink(label, data, peer, time); CRLFs between
    them are pongs; EOF or a reset is noted (closed_at), and bytes that
    never made a whole message are handed on as they are."""

    def __init__(self, wire, sock, label):
        self.wire, self.sock, self.label = wire, sock, label
        self.peer = sock.getpeername()[:2]
        self.buf = b""
        self.closed_at = None
        self.reset = False
        self.pongs = 0
        sock.setblocking(False)
        wire.extra[sock] = self.on_read

    def on_read(self, sink):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data, self.reset = b"", True
        now = time.monotonic()
        if not data:
            self.closed_at = now
            self.wire.extra.pop(self.sock, None)
            if self.buf:
                sink(self.label, self.buf, self.peer, now)
                self.buf = b""
            return
        self.buf += data
        while True:
            if self.buf.startswith(b"\r\n"):
                self.buf = self.buf[2:]
                self.pongs += 1
                continue
            sep = self.buf.find(b"\r\n\r\n")
            if sep < 0:
                return
            m = CL_RE.search(self.buf[:sep + 2])
            end = sep + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < end:
                return
            msg, self.buf = self.buf[:end], self.buf[end:]
            sink(self.label, msg, self.peer, now)

    def close(self):
        self.wire.extra.pop(self.sock, None)
        self.sock.close()


class TcpCatcher:
    """A TCP listener on 127.0.0.1:port for the connections the daemon
    opens itself (RFC 3261 18.2.2: a response whose connection is gone
    goes to the received address and the Via's sent-by port)."""

    def __init__(self, wire, port):
        self.wire, self.port = wire, port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.conns = []
        wire.extra[self.sock] = self.on_accept

    def on_accept(self, sink):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(StreamConn(self.wire, c, "tcp:%d" % self.port))


def ctl_stats(proxy):
    """ospreyctl stats of the daemon: {name: number}."""
    import conftest
    ctl = os.path.join(os.path.dirname(conftest.OSPREYD), "ospreyctl")
    try:
        p = subprocess.run([ctl, "-s", proxy.ctl_socket, "stats"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def conn_delta(before, after):
    """The connections.* counters that moved (closed_slow: 1 ...)."""
    out = {}
    for k, v in after.items():
        if k.startswith("connections.") and k not in (
                "connections.open", "connections.messages"):
            d = v - before.get(k, 0)
            if d:
                out[k[len("connections."):]] = d
    return out


FRESH = ("OPTIONS sip:127.0.0.1:%(port)d SIP/2.0\r\n"
         "Via: SIP/2.0/TCP 127.0.0.1:%(lport)d;branch=z9hG4bK-fresh%(n)d\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:torture@example.test>;tag=fresh%(n)d\r\n"
         "To: <sip:127.0.0.1:%(port)d>\r\n"
         "Call-ID: fresh%(n)d@torture.test\r\n"
         "CSeq: 1 OPTIONS\r\n"
         "Content-Length: 0\r\n\r\n")


def child_tcp(out, netns):
    """Every RFC 4475 / 5118 message on a TCP connection of its own, then
    a CRLFCRLF ping on it if it is still open, then an OPTIONS on a fresh
    connection; the connection counters of ospreyctl stats around it."""
    info = child_env(netns)
    msgs = []
    for name, path, row in corpus():
        with open(path, "rb") as f:
            data = f.read()
        msgs.append((name, data, Ident(data)))
    wire = Wire((), sniff=netns)
    catchers = {}
    ports = {m[2].sent_by(0)[1] for m in msgs if m[2].sent_by(0)} | {5060}
    for p in sorted(ports):
        if tcp_free(p):
            catchers[p] = TcpCatcher(wire, p)
    from dnsserver import DNSServer
    dns = DNSServer({
        ("_sip._udp.services.example.com", "SRV"):
            [(0, 0, wire.uas.port, "uas.torture.test")],
        ("uas.torture.test", "A"): ["127.0.0.1"],
        ("services.example.com", "A"): ["127.0.0.1"]})

    def start():
        p = start_proxy("sip:127.0.0.1:%d" % wire.uas.port, dns.port,
                        tcp=True)
        wire.watch(p.port)
        return p

    proxy = start()
    info["sniffer"] = wire.sniffer is not None
    res = {"env": info, "uas_port": wire.uas.port,
           "route_port": ROUTE_PORT if wire.uas2 else None,
           "catchers": sorted(catchers), "unbound": [],
           "messages": {}, "stray": [], "deaths": []}
    recs = {}
    order = []
    last_use = {}
    current = {}

    def sink(label, data, src, when):
        if label == "fresh":
            current["fresh"].append(b64(data))
            return
        d = Ident(data)
        at_uas = label.startswith("uas") or (label == "out" and
                                             not d.response)
        item = {"at": label, "src": list(src), "raw": b64(data)}
        if label == "out":
            item["at"] = "out to %s:%d" % tuple(src)
        where = "out" if label == "out" else "uas" if at_uas else "resp"
        for name, ident in reversed(order):
            if ident.matches(d, at_uas):
                recs[name][where].append(item)
                return
        if order:
            recs[order[-1][0]]["other"].append(item)
        else:
            res["stray"].append(item)

    def has_final(rec):
        for x in rec["resp"]:
            c = Ident(unb64(x["raw"])).code
            if c is not None and c >= 200:
                return True
        return False

    pending = list(msgs)
    n = 0
    while pending:
        now = time.monotonic()
        pick = None
        for i, (name, data, ident) in enumerate(pending):
            if all(now - last_use.get(k, -1e9) > TXN_LIFE
                   for k in ident.keys()):
                pick = i
                break
        if pick is None:
            wire.pump(0.05, sink)
            continue
        name, data, ident = pending.pop(pick)
        n += 1
        rec = recs[name] = {
            "resp": [], "uas": [], "other": [], "out": [], "fresh": [],
            "shares_key": [[m, round(now - last_use[k], 2)]
                           for m, i in order for k in ident.keys()
                           if k in i.keys() and k[0] == "txn"],
            "proxy_port": proxy.port}
        current.clear()
        current["fresh"] = rec["fresh"]
        order.append((name, ident))
        log0 = os.path.getsize(proxy.logpath)
        st0 = ctl_stats(proxy)
        sock = socket.create_connection(proxy.addr, timeout=3)
        sock.sendall(data)
        conn = StreamConn(wire, sock, "conn")
        t0 = time.monotonic()
        # A final answer and 0.1 s of quiet, or the close, within 1 s;
        # with neither, wait for the close up to message_timeout + 1.5 s.
        while time.monotonic() - t0 < 1.0:
            k = len(rec["resp"]) + len(rec["uas"])
            wire.pump(0.1, sink)
            if conn.closed_at is not None:
                wire.pump(0.2, sink)
                break
            if has_final(rec) and k == len(rec["resp"]) + len(rec["uas"]):
                break
            if not proxy.alive():
                break
        if not has_final(rec):
            while conn.closed_at is None and proxy.alive() and \
                    time.monotonic() - t0 < MSG_TIMEOUT + 1.5:
                wire.pump(0.1, sink)
        # Still open: does it still serve?  A ping, and its pong.
        pinged = False
        if conn.closed_at is None and proxy.alive():
            pinged = True
            try:
                sock.send(b"\r\n\r\n")
            except OSError:
                pass
            t1 = time.monotonic()
            while conn.pongs == 0 and conn.closed_at is None and \
                    time.monotonic() - t1 < 1.0:
                wire.pump(0.05, sink)
        st1 = ctl_stats(proxy)
        rec["tcp"] = {
            "closed_after": None if conn.closed_at is None else
            round(conn.closed_at - t0, 3),
            "reset": conn.reset, "pinged": pinged, "pongs": conn.pongs,
            "leftover": b64(conn.buf), "stats": conn_delta(st0, st1)}
        # The daemon keeps serving: an OPTIONS on a fresh connection.
        if proxy.alive():
            fs = socket.create_connection(proxy.addr, timeout=3)
            fs.sendall((FRESH % {"port": proxy.port, "n": n,
                                 "lport": fs.getsockname()[1]}).encode())
            fresh = StreamConn(wire, fs, "fresh")
            t1 = time.monotonic()
            while not rec["fresh"] and time.monotonic() - t1 < 2.0:
                wire.pump(0.05, sink)
            fresh.close()
        conn.close()
        wire.pump(0.05, sink)
        for k in ident.keys():
            last_use[k] = time.monotonic()
        rec["alive"] = proxy.alive()
        with open(proxy.logpath, "rb") as f:
            f.seek(log0)
            rec["log"] = f.read(20000).decode("utf-8", "replace")
        if not proxy.alive():
            rec["exit"] = proxy.stop()
            res["deaths"].append([name, rec["exit"]])
            proxy = start()
            last_use = {}
    wire.pump(TXN_LIFE, sink)
    res["messages"] = recs
    res["alive_end"] = proxy.alive()
    res["stats_end"] = ctl_stats(proxy) if proxy.alive() else {}
    res["call_error"] = normal_call(proxy, wire.uas) if proxy.alive() \
        else "daemon not running"
    res["exit"] = proxy.stop()
    res["log"] = proxy.log_text()[-200000:]
    dns.stop()
    wire.close()
    with open(out, "w") as f:
        json.dump(res, f)


MAX_PDU = 65507


def protos_pdus(blob):
    """The two <length> SP <PDU> records of a PROTOS case file."""
    out, i = [], 0
    while i < len(blob):
        sp = blob.index(b" ", i)
        n = int(blob[i:sp])
        out.append(blob[sp + 1:sp + 1 + n])
        i = sp + 1 + n
    return out


def protos_fill(pdu, case, port, method=b"CANCEL", to=b"bob@example.test"):
    """The PROTOS tool's substitutions (README.md), Content-Length last."""
    vals = {b"<To>": to, b"<From>": b"user@127.0.0.1",
            b"<From-Address>": b"127.0.0.1", b"<From-IP>": b"127.0.0.1",
            b"<Local-Port>": str(port).encode(),
            b"<Call-ID>": str(case).encode(),
            b"<Branch-ID>": b"%06d" % case, b"<CSeq>": b"1",
            b"<Teardown-Method>": method}
    for k, v in vals.items():
        pdu = pdu.replace(k, v)
    if b"<Content-Length>" in pdu:
        sep = pdu.find(b"\r\n\r\n")
        n = len(pdu) - sep - 4 if sep >= 0 else 0
        pdu = pdu.replace(b"<Content-Length>", str(n).encode())
    return pdu[:MAX_PDU]


CALLID_RE = re.compile(
    rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*(\d+)@127\.0\.0\.1\r\n", re.I)
BRANCH_NUM_RE = re.compile(rb"branch=z9hG4bK(\d{6,})(?=[;,\r ])")
PROBE_BASE = 900000         # Call-ID and branch numbers of the valid probes
MAX_DEATHS = 60


def case_of(data):
    """The PROTOS case a datagram belongs to: its Call-ID <n>@127.0.0.1,
    else the last 6 digits of a z9hG4bK<digits> branch."""
    m = CALLID_RE.search(data[:70000])
    if m:
        return int(m.group(1))
    m = BRANCH_NUM_RE.search(data[:70000])
    return int(m.group(1)[-6:]) if m else None


def child_protos(out, netns):
    info = child_env(netns)
    tmp = tempfile.mkdtemp(prefix="osprey-protos-")
    t_unpack = time.monotonic()
    with tarfile.open(os.path.join(PROTOS, "testcases.tar.xz")) as tf:
        tf.extractall(tmp)
    names = sorted(os.listdir(os.path.join(tmp, "testcases")))
    t_unpack = time.monotonic() - t_unpack
    wire = Wire(sniff=netns)
    sport = wire.sender.port

    def start():
        p = start_proxy("sip:127.0.0.1:%d" % wire.uas.port)
        wire.watch(p.port)
        return p

    proxy = start()
    stats = {"uas": 0, "uas_bad": 0, "resp": 0, "resp_noVia": 0,
             "garbage_to_sender": 0, "requests_to_sender": 0, "codes": {},
             "out": 0, "out_resp": 0, "out_req": 0, "out_dests": {}}
    bad_uas, bad_resp, bad_out, deaths, probes = [], [], [], [], []
    probe_ok = {}

    def sniffed(data, dst):
        """Whatever the daemon sent, to wherever."""
        stats["out"] += 1
        if dst[1] not in (sport, wire.uas.port):
            k = "%s:%d" % dst
            stats["out_dests"][k] = stats["out_dests"].get(k, 0) + 1
        try:
            m = Msg(data)
        except ValueError as e:
            problems = ["does not parse: %s" % e]
        else:
            if m.is_request:
                stats["out_req"] += 1
                problems = malformed(data)
            else:
                stats["out_resp"] += 1
                problems = [] if m.lines("via") else [
                    "response without a Via"]
        if problems and len(bad_out) < 40:
            bad_out.append({"case": case_of(data), "problems": problems,
                            "to": "%s:%d" % dst, "raw": b64(data[:3000])})

    def sink(label, data, src, when):
        if label == "out":
            sniffed(data, src)
            return
        if label.startswith("uas"):
            stats["uas"] += 1
            p = malformed(data)
            if p:
                stats["uas_bad"] += 1
                if len(bad_uas) < 40:
                    bad_uas.append({"case": case_of(data), "problems": p,
                                    "raw": b64(data[:3000])})
            return
        try:
            m = Msg(data)
        except ValueError as e:
            stats["garbage_to_sender"] += 1
            if len(bad_resp) < 40:
                bad_resp.append({"case": case_of(data), "problems":
                                 ["does not parse: %s" % e],
                                 "raw": b64(data[:3000])})
            return
        if m.is_request:
            stats["requests_to_sender"] += 1
            return
        stats["resp"] += 1
        stats["codes"][str(m.code)] = stats["codes"].get(str(m.code), 0) + 1
        if not m.lines("via"):
            stats["resp_noVia"] += 1
            if len(bad_resp) < 40:
                bad_resp.append({"case": case_of(data), "problems":
                                 ["response without a Via"],
                                 "raw": b64(data[:3000])})
        cid = m.call_id or ""
        if cid.startswith("9") and m.code and m.code >= 200:
            probe_ok[cid] = m.code

    def load(name):
        with open(os.path.join(tmp, "testcases", name), "rb") as f:
            return int(name), protos_pdus(f.read())

    def send_invite(case, pdus):
        wire.sender.sock.sendto(protos_fill(pdus[0], case, sport), proxy.addr)

    def send_teardown(case, pdus):
        """CANCEL then ACK, as the original tool's -teardown."""
        for meth in (b"CANCEL", b"ACK"):
            wire.sender.sock.sendto(protos_fill(pdus[-1], case, sport, meth),
                                    proxy.addr)

    valid = load(names[0])[1]

    def probe(after):
        """PROTOS -validcase: the valid INVITE still gets its answer."""
        n = PROBE_BASE + after
        cid = "%d@127.0.0.1" % n
        wire.sender.sock.sendto(protos_fill(valid[0], n, sport), proxy.addr)
        t0 = time.monotonic()
        while cid not in probe_ok and time.monotonic() - t0 < 3.0 and \
                proxy.alive():
            wire.pump(0.01, sink)
        probes.append({"after": after, "code": probe_ok.get(cid),
                       "ms": int((time.monotonic() - t0) * 1000)})
        wire.sender.sock.sendto(protos_fill(valid[1], n, sport, b"ACK"),
                                proxy.addr)

    def died():
        """Record the dead daemon's end, start a fresh one."""
        nonlocal proxy
        tail = proxy.log_text().splitlines()[-4:]
        code = proxy.stop()
        proxy = start()
        return code, tail

    info["sniffer"] = wire.sniffer is not None
    rss0 = rss_kb(proxy.proc.pid)
    t_start = time.monotonic()
    # A modest rate: 25 INVITEs, 80 ms for the answers, their CANCEL and
    # ACK, 80 ms again (about 130 cases a second; the original tool waits
    # 100 ms after each case, which would take 8 minutes).
    batch, sent = 25, 0
    for b0 in range(0, len(names), batch):
        if len(deaths) >= MAX_DEATHS:
            break
        cases = [load(name) for name in names[b0:b0 + batch]]
        for case, pdus in cases:
            send_invite(case, pdus)
            sent += 1
            wire.pump(0, sink)
        wire.pump(0.08, sink)
        for case, pdus in cases:
            send_teardown(case, pdus)
            wire.pump(0, sink)
        wire.pump(0.08, sink)
        if not proxy.alive():
            # Which case was it: the batch again, one by one, on fresh
            # daemons (a restart after each death).
            died()
            for case, pdus in cases:
                send_invite(case, pdus)
                wire.pump(0.02, sink)
                send_teardown(case, pdus)
                wire.pump(0.02, sink)
                if not proxy.alive():
                    code, tail = died()
                    deaths.append({"case": case, "exit": code, "log": tail,
                                   "invite": b64(protos_fill(
                                       pdus[0], case, sport)[:1500])})
                    if len(deaths) >= MAX_DEATHS:
                        break
        if (b0 // batch) % 4 == 3 or b0 + batch >= len(names):
            probe(cases[-1][0])
    t_send = time.monotonic() - t_start
    wire.pump(TXN_LIFE, sink)
    rss1 = rss_kb(proxy.proc.pid) if proxy.alive() else None
    res = {"env": info, "cases": len(names), "sent": sent,
           "unpack_s": round(t_unpack, 2), "send_s": round(t_send, 2),
           "stats": stats, "bad_uas": bad_uas, "bad_resp": bad_resp,
           "bad_out": bad_out, "uas_port": wire.uas.port,
           "probes": probes, "deaths": deaths,
           "alive_end": proxy.alive(), "rss_kb": [rss0, rss1]}
    res["call_error"] = normal_call(proxy, wire.uas) if proxy.alive() \
        else "daemon not running"
    res["exit"] = proxy.stop()
    log = proxy.log_text()
    res["log_lines"] = log.count("\n")
    res["log_tail"] = log[-20000:]
    res["log_severe"] = [ln for ln in log.splitlines()
                         if re.search(r"\b(crit|fatal|abort|assert|"
                                      r"sanitizer|segv)", ln, re.I)][:50]
    wire.close()
    shutil.rmtree(tmp, ignore_errors=True)
    with open(out, "w") as f:
        json.dump(res, f)


# ---------------------------------------------------------------------------
# What the manifests expect, per message


class Expect:
    """kind: forward | reject | drop.  codes: acceptable rejections.
    or_drop / or_forward: the manifest's alternatives.  where: the UAS that
    gets a forward.  check(orig, fwd): extra conditions on a forward."""

    def __init__(self, kind, codes=(), or_drop=False, or_forward=False,
                 check=None, where="uas"):
        self.kind, self.codes = kind, tuple(codes)
        self.or_drop, self.or_forward = or_drop, or_forward
        self.check, self.where = check, where


def fwd(check=None, where="uas"):
    return Expect("forward", check=check, where=where)


def rej(*codes, or_drop=False, or_forward=False, check=None):
    return Expect("reject", codes, or_drop=or_drop, or_forward=or_forward,
                  check=check)


DROP = Expect("drop")


def same_header(*names):
    """The forward keeps these headers' values (LWS runs aside)."""
    def check(o, f):
        for n in names:
            a = [lws(v) for v in o.all(n)]
            b = [lws(v) for v in f.all(n)]
            assert a == b, "%s changed: %r -> %r" % (n, a, b)
    return check


def same_ruri(o, f):
    assert f.start.split(" ")[1] == o.start.split(" ")[1], \
        "Request-URI changed: %r -> %r" % (o.start, f.start)


def checks(*fns):
    def check(o, f):
        for fn in fns:
            fn(o, f)
    return check


def max_forwards(value):
    def check(o, f):
        assert f.all("max-forwards") == [value], \
            "Max-Forwards %r, want %r" % (f.all("max-forwards"), value)
    return check


def clean_start_line(o, f):
    assert re.match(r"^\S+ \S+ SIP/2\.0$", f.start), \
        "forwarded start line %r" % f.start
    assert "<" not in f.start and ">" not in f.start, f.start


def no_uri_headers(o, f):
    assert "?" not in f.start.split(" ")[1], \
        "escaped headers left in the Request-URI: %r" % f.start
    assert len(f.all("route")) == len(o.all("route")), \
        "URI headers became Route headers: %r" % f.all("route")


def all_lines_kept(o, f):
    """Every header of the original is forwarded unchanged (longreq)."""
    skip = {"via", "max-forwards", "content-length"}
    for n, v in o.hdrs:
        if n in skip:
            continue
        assert lws(v) in [lws(x) for x in f.all(n)], \
            "header %s not forwarded unchanged: %r" % (n, v[:80])


def strict_route(o, f):
    """The Route (no ;lr) is a strict router: 16.6 step 6 puts its URI in
    the Request-URI and the Request-URI at the end of the Route set."""
    route = o.all("route")
    assert f.start.split(" ")[1] == uri_of(route[0]), f.start
    assert f.all("route") and uri_of(f.all("route")[-1]) == \
        o.start.split(" ")[1], "Route %r" % f.all("route")


def no_trailing_request(o, f):
    assert f.body == "", "REGISTER forwarded with a body %r" % f.body[:80]
    assert "INVITE" not in f.start and f.method == "REGISTER", f.start


def unsupported_lists(*tags):
    def check(resp):
        got = [x.lower() for x in resp.values("unsupported")]
        for t in tags:
            assert t.lower() in got, "Unsupported %r lacks %s" % (got, t)
    return check


EXPECT = {
    # RFC 4475 3.1.1: valid messages
    "rfc4475-wsinv": fwd(checks(
        max_forwards("67"), same_ruri,
        same_header("unknownheaderwithunusualvalue", "from", "to", "call-id",
                    "cseq", "contact", "subject", "newfangledheader"))),
    "rfc4475-intmeth": fwd(checks(same_ruri, same_header(
        "to", "from", "call-id", "cseq", "extension-header"))),
    "rfc4475-esc01": fwd(checks(same_ruri, same_header(
        "to", "from", "contact"))),
    "rfc4475-escnull": fwd(checks(same_ruri, same_header("to", "contact"))),
    "rfc4475-esc02": fwd(checks(same_ruri, same_header(
        "cseq", "to", "contact"))),
    "rfc4475-lwsdisp": fwd(same_header("from")),
    "rfc4475-longreq": fwd(checks(same_ruri, all_lines_kept)),
    "rfc4475-dblreq": fwd(no_trailing_request),
    "rfc4475-semiuri": fwd(same_ruri),
    "rfc4475-transports": fwd(),
    "rfc4475-mpart01": fwd(checks(same_header("content-type"),
                                  strict_route), where="uas2"),
    "rfc4475-unreason": DROP,
    "rfc4475-noreason": DROP,
    # 3.1.2: invalid messages
    "rfc4475-badinv01": rej(400),
    "rfc4475-clerr": rej(400),
    "rfc4475-ncl": rej(400),
    "rfc4475-scalar02": rej(400),
    "rfc4475-scalarlg": DROP,
    "rfc4475-quotbal": rej(400),
    "rfc4475-ltgtruri": rej(400),
    "rfc4475-lwsruri": rej(400),
    "rfc4475-lwsstart": rej(400, or_forward=True, check=clean_start_line),
    "rfc4475-trws": rej(400, or_forward=True, check=clean_start_line),
    "rfc4475-escruri": rej(400, or_forward=True, check=no_uri_headers),
    "rfc4475-baddate": rej(400, or_forward=True, check=same_header("date")),
    "rfc4475-regbadct": rej(400, or_forward=True,
                            check=same_header("contact")),
    "rfc4475-badaspec": rej(400),
    "rfc4475-baddn": rej(400, or_drop=True),
    "rfc4475-badvers": rej(505),
    "rfc4475-mismatch01": rej(400),
    "rfc4475-mismatch02": rej(501, 400),
    "rfc4475-bigcode": DROP,
    # 3.2, 3.3: transaction and application layer
    "rfc4475-badbranch": rej(400, or_forward=True),
    "rfc4475-insuf": rej(400),
    "rfc4475-unkscm": rej(416),
    "rfc4475-novelsc": rej(416, 404),
    "rfc4475-unksm2": fwd(same_header("to", "from", "contact")),
    "rfc4475-bext01": rej(420),
    "rfc4475-invut": fwd(same_header("content-type")),
    "rfc4475-regaut01": fwd(same_header("authorization")),
    "rfc4475-multi01": rej(400),
    "rfc4475-mcl01": rej(400),
    "rfc4475-bcast": DROP,
    "rfc4475-zeromf": rej(483, 200),
    "rfc4475-cparam01": fwd(same_header("contact")),
    "rfc4475-cparam02": fwd(same_header("contact")),
    "rfc4475-regescrt": fwd(same_header("contact")),
    "rfc4475-sdp01": fwd(same_header("accept")),
    # 3.4, and the archive's extra file
    "rfc4475-inv2543": fwd(max_forwards("70")),
    "rfc4475-test": rej(400, or_drop=True),
    # RFC 5118
    "rfc5118-ipv6-good": fwd(same_ruri),
    "rfc5118-ipv6-bad": rej(400),
    "rfc5118-port-ambiguous": fwd(same_ruri),
    "rfc5118-port-unambiguous": fwd(same_ruri),
    "rfc5118-via-received-param-with-delim": fwd(same_ruri),
    "rfc5118-via-received-param-no-delim": fwd(same_ruri),
    "rfc5118-ipv6-in-sdp": fwd(same_ruri),
    "rfc5118-mult-ip-in-header": fwd(same_ruri),
    "rfc5118-mult-ip-in-sdp": fwd(same_ruri),
    "rfc5118-ipv4-mapped-ipv6": fwd(same_header("contact")),
    "rfc5118-ipv6-bug-abnf-3-colons": fwd(same_ruri),
    "rfc5118-ipv6-correct-abnf-2-colons": fwd(same_ruri),
}
EXTRA_RESPONSE_CHECK = {
    "rfc4475-bext01": unsupported_lists("noProxiesSupportThis",
                                        "norDoAnyProxiesSupportThis"),
}

# ---------------------------------------------------------------------------
# The tests (parent side)

if __name__ != "__main__":
    CORPUS = corpus()
    IDS = [c[0] for c in CORPUS]
    ROWS = {c[0]: c for c in CORPUS}


@pytest.fixture(scope="module")
def rfc_run(tmp_path_factory):
    return run_child("rfc", tmp_path_factory.mktemp("torture") / "rfc.json",
                     timeout=150)


def test_corpus_files():
    """The data is in the repo, complete and byte-exact (SHA-256)."""
    assert len(CORPUS) == 62
    assert set(EXPECT) == set(IDS), set(EXPECT) ^ set(IDS)
    assert set(TCP_DIFF) <= set(IDS), set(TCP_DIFF) - set(IDS)
    assert all(c.why for c in TCP_DIFF.values())
    for name, path, row in CORPUS:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        want = row.get("sha256") or row.get("wire_sha256")
        assert digest == want, "%s: sha256 %s, manifest %s" % (
            path, digest, want)
    for d in (RFC4475, RFC5118, PROTOS):
        assert os.path.exists(os.path.join(d, "README.md")), d
    assert os.path.exists(os.path.join(PROTOS, "LICENSE.TXT"))
    assert os.path.exists(os.path.join(PROTOS, "testcases.tar.xz"))


def describe(items):
    out = []
    for x in items:
        data = unb64(x["raw"])
        out.append("  [%s] %r" % (x["at"], data[:300]))
    return "\n".join(out) or "  (nothing)"


def log_excerpt(rec, name, row):
    lines = rec.get("log", "").splitlines()
    return "\n".join(lines[-40:])


@pytest.mark.parametrize("name", IDS if __name__ != "__main__" else [])
def test_message(rfc_run, name):
    """One RFC 4475 / 5118 message against its manifest row."""
    try:
        judge(rfc_run, name)
        problem = None
    except AssertionError as e:
        problem = str(e)
    if problem:
        # The message says it all; the judge's source would only bury it.
        pytest.fail("%s: %s" % (name, problem), pytrace=False)


def judge(rfc_run, name, exp=None, tcp=False):
    """The checks of one message's run; exp: what to expect (default
    EXPECT[name]); tcp: the message came on a TCP connection, whose
    answers come back on it wherever its Via points."""
    _, path, row = ROWS[name]
    exp = exp or EXPECT[name]
    with open(path, "rb") as f:
        orig_bytes = f.read()
    o = Ident(orig_bytes)
    rec = rfc_run["messages"].get(name)
    assert rec is not None, "never sent"
    ctx = ("manifest: %s | %s\nobserved responses:\n%s\nat the UAS:\n%s\n"
           "unattributed in its window:\n%s\ndaemon log while it was "
           "handled:\n%s" % (row["rfc_verdict"], row["proxy_expected"],
                             describe(rec["resp"]), describe(rec["uas"]),
                             describe(rec["other"]),
                             log_excerpt(rec, name, row)))
    if rec["shares_key"] and not rec["resp"] and not rec["uas"]:
        ctx += ("\nnote: same transaction key (branch, sent-by, method) as "
                "%s [message, seconds between its final response and this "
                "one being sent]; its server transaction should have ended "
                "64*T1 = %d ms after that response" % (
                    rec["shares_key"], 64 * TIMERS["t1"]))

    assert rec["alive"], "ospreyd died on %s\n%s" % (name, ctx)
    # No response leaves without a Via; nothing garbled comes back.
    for x in rec["resp"] + rec["other"]:
        data = unb64(x["raw"])
        if x["at"].startswith(("uas", "out")):
            continue
        try:
            m = Msg(data)
        except ValueError as e:
            raise AssertionError("unparsable datagram to %s: %s\n%s" % (
                x["at"], e, ctx))
        assert m.is_response, "a request came back to %s\n%s" % (x["at"],
                                                                 ctx)
        assert m.lines("via"), "response without a Via\n%s" % ctx
    # Whatever the daemon sent for it, wherever to (sniffed on lo).
    for x in rec["out"] + [y for y in rec["other"]
                           if y["at"].startswith("out")]:
        data = unb64(x["raw"])
        try:
            m = Msg(data)
        except ValueError as e:
            raise AssertionError("daemon sent an unparsable datagram (%s): "
                                 "%s\n%s" % (x["at"], e, ctx)) from None
        if m.is_response:
            assert m.lines("via"), "response without a Via (%s)\n%s" % (
                x["at"], ctx)
        else:
            p = malformed(data)
            assert not p, "malformed request sent (%s): %s\n%s" % (
                x["at"], p, ctx)
    # Nothing malformed reaches a UAS.
    for x in rec["uas"] + [y for y in rec["other"]
                           if y["at"].startswith("uas")]:
        p = malformed(unb64(x["raw"]))
        assert not p, "malformed request forwarded: %s\n%s" % (p, ctx)

    port = o.reply_port()
    observable = tcp or port is None or port not in rfc_run["unbound"]
    if exp.where == "uas2" and rfc_run["route_port"] is None:
        observable = False
    if not observable:
        pytest.skip("port %s taken on the host loopback (no netns)" % port)

    finals = []
    for x in rec["resp"]:
        m = Msg(unb64(x["raw"]))
        if m.code >= 200:
            finals.append(m)
    fwds = [Ident(unb64(x["raw"])) for x in rec["uas"]]
    originals = [f for f in fwds if f.method == o.method]

    def forwarded_ok():
        where = [x["at"] for x in rec["uas"] if
                 Ident(unb64(x["raw"])).method == o.method]
        assert originals, "not forwarded\n%s" % ctx
        assert set(where) == {exp.where}, "forwarded to %s, want %s\n%s" % (
            where, exp.where, ctx)
        distinct = {x["raw"] for x in rec["uas"]
                    if Ident(unb64(x["raw"])).method == o.method}
        f = originals[0]
        assert len({lws(x.branch(0) or "") for x in originals}) == 1, \
            "forwarded %d times on different branches\n%s" % (
                len(distinct), ctx)
        sb = f.sent_by(0)
        assert sb == ("127.0.0.1", rec["proxy_port"]), \
            "top Via %r is not the proxy's\n%s" % (f.vias[:1], ctx)
        assert [norm_via(v) for v in f.vias[1:]] == \
            [norm_via(v) for v in o.vias], \
            "Vias %r, sent %r\n%s" % (f.vias[1:], o.vias, ctx)
        body = declared_body(orig_bytes)
        fbody = f.body.encode("latin-1")
        assert fbody == body, "body changed: %r -> %r\n%s" % (
            body[:120], fbody[:120], ctx)
        mf = o.all("max-forwards")
        if len(mf) == 1 and mf[0].isdigit():
            want = str(int(mf[0]) - 1)
        else:
            want = "70" if not mf else None
        if want is not None:
            assert f.all("max-forwards") == [want], \
                "Max-Forwards %r, sent %r, want %s\n%s" % (
                    f.all("max-forwards"), mf, want, ctx)
        if exp.check:
            try:
                exp.check(o, f)
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, ctx)) from None
        # The UAS's answer comes back, Vias as the caller sent them.
        code = UAS_CODE.get(o.method, 200 if o.method in KNOWN else 501)
        assert finals, "the UAS's %d was not relayed\n%s" % (code, ctx)
        r = finals[0]
        assert r.code == code, "relayed %d, the UAS said %d\n%s" % (
            r.code, code, ctx)
        assert [norm_via(v) for v in r.values("via")] == \
            [norm_via(v) for v in o.vias], "response Vias %r\n%s" % (
                r.values("via"), ctx)
        # RFC 3261 18.2.1: received= MUST hold the packet's source address
        # (a received= the client wrote itself is not what we saw).
        rcvd = re.findall(r";\s*received\s*=\s*([^;,\s]+)", f.vias[1], re.I)
        assert rcvd == ["127.0.0.1"], \
            "the caller's Via as forwarded: %r; received= must be the " \
            "source address 127.0.0.1 (RFC 3261 18.2.1)\n%s" % (f.vias[1],
                                                                 ctx)

    if exp.kind == "drop":
        assert not rec["resp"] and not rec["uas"] and not rec["out"], \
            "%s\n%s" % ("nothing may be answered or forwarded: there is "
                        "no whole message" if tcp else
                        "a response to send nowhere was acted on", ctx)
        return
    if exp.kind == "forward":
        assert not [r for r in finals if r.code == 400], \
            "valid message refused\n%s" % ctx
        forwarded_ok()
        return
    # reject
    if exp.or_forward and originals:
        forwarded_ok()
        return
    assert not rec["uas"], "invalid message forwarded to the UAS\n%s" % ctx
    assert not [x for x in rec["out"] + rec["other"]
                if x["at"].startswith("uas") or
                not Ident(unb64(x["raw"])).response], \
        "invalid message: the daemon sent a request for it\n%s" % ctx
    if not finals and exp.or_drop:
        return
    assert finals, "no answer, want %s\n%s" % (
        " or ".join(map(str, exp.codes)), ctx)
    r = finals[0]
    assert r.code in exp.codes, "answered %d %s, want %s\n%s" % (
        r.code, r.reason, " or ".join(map(str, exp.codes)), ctx)
    assert norm_via(r.values("via")[0]) == norm_via(o.vias[0]), \
        "response top Via %r, sent %r\n%s" % (r.values("via")[:1],
                                                o.vias[:1], ctx)
    if name in EXTRA_RESPONSE_CHECK:
        EXTRA_RESPONSE_CHECK[name](r)


def test_rfc_corpus_aftermath(rfc_run):
    """After the whole corpus: the daemon runs, a normal call completes,
    nothing arrived that belongs to no message, and it stops cleanly."""
    assert not rfc_run["deaths"], "ospreyd died on (message, exit): %s" % (
        rfc_run["deaths"],)
    assert rfc_run["alive_end"], rfc_run["log"][-5000:]
    assert rfc_run["call_error"] is None, "normal call after the corpus: " \
        "%s\n%s" % (rfc_run["call_error"], rfc_run["log"][-5000:])
    for x in rfc_run["stray"]:
        data = unb64(x["raw"])
        if not x["at"].startswith("uas"):
            assert Msg(data).lines("via"), data
    assert rfc_run["exit"] == 0, rfc_run["log"][-5000:]
    if not rfc_run["env"]["netns"]:
        warnings.warn(FALLBACK)


# ---------------------------------------------------------------------------
# The same messages over TCP (child_tcp): each on a connection of its own.
#
# Over a stream, framing comes first (RFC 3261 18.3): Content-Length is
# required and says where the message ends.  A message that cannot be framed
# (no Content-Length, or one that is not a number, or two that differ) is
# answered 400 with a reason phrase that names the problem when it has a Via
# to answer to, and the connection is closed: what follows has no known
# start.  A body shorter than its Content-Length is not a message yet: the
# daemon waits, and closes the connection at connections.message_timeout.
# Bytes past the Content-Length are the next message.  Answers go back on
# the connection, whatever the Via's port says; once it is gone, over a new
# one to the received address and the Via's sent-by port (18.2.2).
#
# Every other message frames as it does in a datagram and must fare as in
# EXPECT, its answers on its connection, which stays open and answers a
# CRLFCRLF ping with a CRLF (RFC 5626 3.5.1).  After every message an
# OPTIONS on a fresh connection must get 200.


class TcpCase:
    """How a message fares over TCP where that differs from UDP.
    exp: as in EXPECT; conn: "open", "framing" (closed at once for a
    framing error) or "slow" (no whole message: closed at
    message_timeout); phrase: the reason phrase of the answer;
    reconnect: the final answer comes over a connection the daemon opens
    (18.2.2), not the message's own; check(rec): more conditions."""

    def __init__(self, exp=None, conn="open", phrase=None, reconnect=False,
                 check=None, why=""):
        self.exp, self.conn, self.phrase = exp, conn, phrase
        self.reconnect, self.check, self.why = reconnect, check, why


SAME_OVER_TCP = TcpCase(why="frames as a datagram does")
NOTHING = Expect("drop")


def dblreq_tcp(rec):
    """The INVITE after the REGISTER is a message of its own over TCP:
    forwarded with the 150 bytes of body its Content-Length gives, 100
    Trying on the connection, the callee's 486 over a new connection."""
    with open(os.path.join(RFC4475, "dblreq.dat"), "rb") as f:
        data = f.read()
    tail = data[data.index(b"INVITE "):]
    body = tail[tail.index(b"\r\n\r\n") + 4:][:150]
    invites = [unb64(x["raw"]) for x in rec["other"]
               if x["at"] == "uas" and unb64(x["raw"]).startswith(
                   b"INVITE sip:joe@example.com ")]
    assert len(invites) == 1, "the INVITE after the REGISTER reached the " \
        "UAS %d times, want once" % len(invites)
    assert Ident(invites[0]).body.encode("latin-1") == body, \
        "the INVITE forwarded with body %r, want its 150 bytes %r" % (
            Ident(invites[0]).body[-20:], body[-20:])
    assert not malformed(invites[0]), malformed(invites[0])
    got = {(x["at"], Ident(unb64(x["raw"])).code) for x in rec["other"]
           if Ident(unb64(x["raw"])).response}
    assert ("conn", 100) in got, "no 100 Trying for the INVITE on the " \
        "connection: %r" % got
    assert ("tcp:5060", 486) in got or (WORKERS > 1 and ("conn", 486) in
                                        got), \
        "the 486 for the INVITE did not come over a new connection to " \
        "127.0.0.1:5060: %r" % got


TCP_DIFF = {
    "rfc4475-clerr": TcpCase(
        NOTHING, "slow",
        why="Content-Length 9999 and 154 bytes of body: over a stream the "
        "rest of the body has not come yet, so there is nothing to answer "
        "until the connection is closed at message_timeout (over UDP the "
        "datagram is all there is: 400)"),
    "rfc4475-baddn": TcpCase(
        NOTHING, "slow",
        why="the archive's file ends its last header line but has no empty "
        "line after it: over a stream the header section is not over, so "
        "nothing to answer until message_timeout (over UDP: 400 or a drop)"),
    "rfc4475-ncl": TcpCase(
        rej(400), "framing", phrase="Content-Length is not a number",
        why="Content-Length -999: the 400 of UDP, and the stream has lost "
        "its framing, so the connection is closed"),
    "rfc4475-mcl01": TcpCase(
        rej(400), "framing", phrase="Content-Length given twice, "
        "differently",
        why="Content-Length 13 and 5: the 400 of UDP, and no way to tell "
        "where the next message starts: closed"),
    "rfc4475-inv2543": TcpCase(
        rej(400), "framing", phrase="Missing Content-Length",
        why="no Content-Length, which a stream requires (18.3, 20.14): "
        "400 and closed (over UDP the body runs to the end of the datagram "
        "and the INVITE is forwarded)"),
    "rfc4475-dblreq": TcpCase(
        fwd(no_trailing_request), "framing", reconnect=True,
        check=dblreq_tcp,
        why="Content-Length 0 ends the REGISTER; over a stream the INVITE "
        "after it is the next message, not trailing octets: forwarded with "
        "the 150 bytes of body its Content-Length gives; the 5 bytes left "
        "(\"C\" CRLF CRLF) have no Content-Length and no Via to answer: "
        "closed.  The answers to the REGISTER and the INVITE come after "
        "the close, over a new connection to received:5060 (18.2.2)"),
}


@pytest.fixture(scope="module")
def tcp_run(tmp_path_factory):
    return run_child("tcp", tmp_path_factory.mktemp("torture") / "tcp.json",
                     timeout=240)


@pytest.mark.parametrize("name", IDS if __name__ != "__main__" else [])
def test_message_tcp(tcp_run, name):
    """One RFC 4475 / 5118 message on a TCP connection of its own."""
    try:
        judge_tcp(tcp_run, name)
        problem = None
    except AssertionError as e:
        problem = str(e)
    if problem:
        case = TCP_DIFF.get(name, SAME_OVER_TCP)
        pytest.fail("%s over TCP (%s): %s" % (name, case.why, problem),
                    pytrace=False)


def judge_tcp(run, name):
    case = TCP_DIFF.get(name, SAME_OVER_TCP)
    rec = run["messages"].get(name)
    assert rec is not None, "never sent"
    judge(run, name, case.exp, tcp=True)
    t = rec["tcp"]
    ctx = "connection: %r\nanswers: %s\ndaemon log:\n%s" % (
        t, describe(rec["resp"]), "\n".join(rec["log"].splitlines()[-30:]))
    finals = [(x["at"], Msg(unb64(x["raw"]))) for x in rec["resp"]
              if Ident(unb64(x["raw"])).code is not None and
              Ident(unb64(x["raw"])).code >= 200]
    if case.reconnect and 5060 not in run["catchers"]:
        pytest.skip("TCP port 5060 taken on the host loopback (no netns)")
    want_at = "tcp:5060" if case.reconnect else "conn"
    for at, m in finals:
        # With several worker loops the connection stops reading at the
        # bad framing but closes only once every worker has answered what
        # it read first (doc/HACKING.md, "Workers"); a final that comes
        # back from downstream in that time goes on it (18.2.2 allows
        # either).
        if case.reconnect and WORKERS > 1 and at == "conn":
            continue
        assert at == want_at, "final %d came %s, want %s\n%s" % (
            m.code, "on the connection" if at == "conn" else "over " + at,
            "over a new connection to 5060" if case.reconnect else
            "on the connection", ctx)
    if case.phrase is not None:
        assert finals and finals[0][1].reason == case.phrase, \
            "reason phrase %r, want %r\n%s" % (
                finals[0][1].reason if finals else None, case.phrase, ctx)
    # The counters of what happened to connections the daemon accepted
    # (connected and connect_failed are about next hops: a request over
    # udp_mtu tries TCP to the UDP-only UAS first, RFC 3261 18.1.1).
    moved = {k: v for k, v in t["stats"].items()
             if k in ("accepted", "keepalives") or
             k.startswith(("closed_", "refused_"))}
    if case.conn == "open":
        assert t["closed_after"] is None, "connection closed after " \
            "%.3fs\n%s" % (t["closed_after"], ctx)
        assert t["pongs"] == 1, "no CRLF pong for a CRLFCRLF ping\n" + ctx
        assert moved == {"accepted": 1, "keepalives": 1}, \
            "connection counters %r\n%s" % (moved, ctx)
    elif case.conn == "framing":
        assert t["closed_after"] is not None and t["closed_after"] < 0.5, \
            "not closed at once for a framing error\n" + ctx
        assert moved.get("closed_framing") == 1, \
            "closed_framing did not count it: %r\n%s" % (moved, ctx)
        assert "closed_slow" not in moved, ctx
    else:
        assert t["closed_after"] is not None, "never closed\n" + ctx
        assert MSG_TIMEOUT - 0.1 <= t["closed_after"] <= MSG_TIMEOUT + 1.2, \
            "closed after %.3fs, want message_timeout (%d s)\n%s" % (
                t["closed_after"], MSG_TIMEOUT, ctx)
        assert moved.get("closed_slow") == 1 and \
            "closed_framing" not in moved, \
            "counters %r, want closed_slow\n%s" % (moved, ctx)
    assert not t["leftover"], "bytes that were no whole message: %r\n%s" % (
        unb64(t["leftover"])[:200], ctx)
    fresh = [Msg(unb64(x)) for x in rec["fresh"]]
    assert fresh and fresh[0].code == 200, \
        "an OPTIONS on a fresh connection afterwards got %s\n%s" % (
            [m.start for m in fresh], ctx)
    if case.check:
        try:
            case.check(rec)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, ctx)) from None


def test_tcp_corpus_aftermath(tcp_run):
    """After the corpus over TCP: the daemon runs, a normal call (UDP)
    completes, it counted the closes the table says and no other, and it
    stops cleanly."""
    assert not tcp_run["deaths"], "ospreyd died on (message, exit): %s" % (
        tcp_run["deaths"],)
    assert tcp_run["alive_end"], tcp_run["log"][-5000:]
    assert tcp_run["call_error"] is None, tcp_run["call_error"]
    st = tcp_run["stats_end"]
    want = {"framing": 0, "slow": 0}
    for c in TCP_DIFF.values():
        if c.conn in want:
            want[c.conn] += 1
    got = {"framing": st.get("connections.closed_framing"),
           "slow": st.get("connections.closed_slow")}
    assert got == want, "closes by kind %r, the table says %r" % (got, want)
    for k in ("closed_write_queue", "refused_global", "refused_per_ip",
              "closed_idle"):
        assert st.get("connections." + k) == 0, st
    # Every connection we opened is gone; what is left is the one the
    # daemon opened to our catcher on 5060 (dblreq's answers).
    assert st.get("connections.open") == st.get("connections.connected"), st
    assert tcp_run["exit"] == 0, tcp_run["log"][-5000:]
    if not tcp_run["env"]["netns"]:
        warnings.warn(FALLBACK)


def test_protos_c07_sip(tmp_path):
    """All 4,527 PROTOS c07-sip INVITEs (then CANCEL and ACK, as the
    original tool's -teardown), 25 per batch; every 100 cases the valid
    INVITE must still be answered (the tool's -validcase).  A daemon that
    dies is restarted, after the batch is replayed case by case to name
    the case that killed it."""
    t0 = time.monotonic()
    res = run_child("protos", tmp_path / "protos.json", timeout=240)
    took = time.monotonic() - t0
    st = res["stats"]
    summary = ("%d cases sent in %.1fs (unpack %.1fs, total %.1fs); "
               "%d datagrams reached the UAS, %d responses came back %s; "
               "the daemon sent %s datagrams (%s responses, %s requests; "
               "elsewhere: %s); RSS %s kB; %d log lines" % (
                   res["sent"], res["send_s"], res["unpack_s"], took,
                   st["uas"], st["resp"], st["codes"],
                   st["out"] if res["env"]["sniffer"] else "?",
                   st["out_resp"], st["out_req"], st["out_dests"],
                   res["rss_kb"], res["log_lines"]))
    print(summary)
    errors = []
    if res["deaths"]:
        errors.append("ospreyd died %d times%s; the cases that killed it "
                      "(each replayed alone on a fresh daemon): %s" % (
                          len(res["deaths"]), " (gave up counting)" if
                          len(res["deaths"]) >= MAX_DEATHS else "",
                          [d["case"] for d in res["deaths"]]))
        for d in res["deaths"][:3]:
            errors.append("  case %d: exit %s, log ends %r\n  INVITE %r" % (
                d["case"], d["exit"], d["log"], unb64(d["invite"])[:300]))
    if not res["alive_end"]:
        errors.append("ospreyd not running at the end")
    if res["sent"] != res["cases"]:
        errors.append("only %d of %d cases sent" % (res["sent"],
                                                    res["cases"]))
    failed = [p for p in res["probes"] if p["code"] is None]
    if failed:
        errors.append("the valid INVITE went unanswered after cases %s" %
                      [p["after"] for p in failed])
    if res["call_error"]:
        errors.append("normal call after the run: %s" % res["call_error"])
    seen = set()
    for x in res["bad_uas"]:
        data = unb64(x["raw"])
        key = (x["case"], str(x["problems"]), data.split(b" ", 1)[0])
        if key in seen:
            continue
        seen.add(key)
        errors.append("case %s reached the UAS malformed: %s\n  %r" % (
            x["case"], x["problems"], data[:400]))
    if st["uas_bad"] > len(res["bad_uas"]):
        errors.append("... %d malformed datagrams at the UAS in all" %
                      st["uas_bad"])
    seen = set()
    for x in res["bad_out"]:
        if x["to"] == "127.0.0.1:%d" % res["uas_port"]:
            continue            # reported above, as it reached the UAS
        data = unb64(x["raw"])
        key = (x["case"], str(x["problems"]), data.split(b" ", 1)[0])
        if key in seen:
            continue
        seen.add(key)
        errors.append("case %s: the daemon sent to %s: %s\n  %r" % (
            x["case"], x["to"], x["problems"], data[:400]))
    for x in res["bad_resp"]:
        errors.append("case %s: %s\n  %r" % (x["case"], x["problems"],
                                             unb64(x["raw"])[:400]))
    if st["requests_to_sender"]:
        errors.append("%d requests came back to the sender" %
                      st["requests_to_sender"])
    if res["log_severe"]:
        errors.append("log: %s" % res["log_severe"])
    if res["exit"] != 0:
        errors.append("ospreyd exit %r" % res["exit"])
    if errors:
        pytest.fail(summary + "\n" + "\n".join(errors) +
                    "\n---- log tail (last daemon) ----\n" +
                    res["log_tail"][-1500:], pytrace=False)
    if not res["env"]["netns"]:
        warnings.warn(FALLBACK)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        try:
            {"rfc": child_rfc, "protos": child_protos,
             "tcp": child_tcp}[sys.argv[2]](
                sys.argv[3], "--netns" in sys.argv)
        finally:
            for d in DAEMONS:       # none may outlive the child
                d.stop()
            for d in WORKDIRS:      # the JSON has the logs that matter
                shutil.rmtree(d, ignore_errors=True)
    else:
        sys.exit("usage: %s --child rfc|tcp|protos OUT.json [--netns]" %
                 sys.argv[0])
