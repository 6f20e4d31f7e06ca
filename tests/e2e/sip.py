"""Our small SIP toolkit for the end-to-end tests.

Build requests and responses as bytes, parse datagrams, and play UAC and
UAS over real UDP sockets on 127.0.0.1.  Standard library only, plus the
`sipnet` pytest fixture at the bottom (import it into a test module).
"""

import hashlib
import re
import secrets
import select
import socket
import struct
import time

import pytest

# Compact header forms (RFC 3261 7.3.3, 20; RFC 3265, 3515, 3903).
COMPACT = {
    "v": "via", "f": "from", "t": "to", "i": "call-id",
    "l": "content-length", "m": "contact", "c": "content-type",
    "k": "supported", "s": "subject", "e": "content-encoding",
    "o": "event", "r": "refer-to", "u": "allow-events",
}

# Headers whose values may be comma-separated lists (RFC 3261 7.3.1).
LISTS = frozenset({
    "via", "route", "record-route", "contact", "allow", "supported",
    "unsupported", "require", "proxy-require", "accept", "allow-events",
    "accept-encoding", "accept-language", "content-encoding",
})

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded",
    183: "Session Progress", 200: "OK", 400: "Bad Request",
    403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 486: "Busy Here",
    487: "Request Terminated", 500: "Server Internal Error",
    503: "Service Unavailable", 603: "Decline",
}

SDP = (b"v=0\r\n"
       b"o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n"
       b"s=-\r\n"
       b"c=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\n"
       b"m=audio 49170 RTP/AVP 0\r\n"
       b"a=rtpmap:0 PCMU/8000\r\n")

# Linux asm-generic value; this Python does not export the name.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

FINAL = range(200, 700)
NON2XX = range(300, 700)


def new_branch():
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag():
    return secrets.token_hex(4)


def new_call_id():
    return secrets.token_hex(10) + "@127.0.0.1"


def _split_outside(value, sep, brackets):
    """Split at sep outside double quotes (and <...> when brackets)."""
    out, cur, depth, quoted, esc = [], [], 0, False, False
    for ch in value:
        if quoted:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif brackets and ch == "<":
            depth += 1
        elif brackets and ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def split_list(value):
    """A comma-separated header value as a list of its elements."""
    return [x.strip() for x in _split_outside(value, ",", True) if x.strip()]


def params_of(text):
    """';k=v;flag' -> {'k': 'v', 'flag': None} (keys lower case)."""
    d = {}
    for p in _split_outside(text, ";", False):
        p = p.strip()
        if not p:
            continue
        k, eq, v = p.partition("=")
        d[k.strip().lower()] = v.strip() if eq else None
    return d


def uri_of(value):
    """The URI of a name-addr or addr-spec header value."""
    if "<" in value:
        i = value.index("<")
        return value[i + 1:value.index(">", i)].strip()
    return _split_outside(value, ";", False)[0].strip()


def header_params(value):
    """Header parameters (tag=, expires=...) of a From/To/Contact value."""
    if "<" in value:
        return params_of(value[value.index(">", value.index("<")) + 1:])
    return params_of(value.partition(";")[2])


def hostport(host, port):
    """host:port for a URI or Via, IPv6 in brackets."""
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def _hostport(text):
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    return host, (int(port) if port else None)


class URI:
    """sip:user@host:port;params?headers, parsed loosely."""

    RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?:([^@;?]*)@)?([^;?]*)"
                    r"(;[^?]*)?(\?.*)?$")

    def __init__(self, text):
        self.text = text
        m = self.RE.match(text.strip())
        if not m:
            raise ValueError("bad URI %r" % text)
        self.scheme = m.group(1).lower()
        self.user = m.group(2)
        self.host, self.port = _hostport(m.group(3))
        self.params = params_of(m.group(4) or "")

    def __repr__(self):
        return "URI(%r)" % self.text


def parse_uri(text):
    return URI(text)


class Via:
    """One Via value: protocol, transport, host, port, params."""

    RE = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*(\S+)\s+([^;]+)(.*)$",
                    re.S)

    def __init__(self, value):
        self.value = value.strip()
        m = self.RE.match(value)
        if not m:
            raise ValueError("bad Via %r" % value)
        self.protocol = "/".join(x.upper() for x in m.group(1, 2, 3))
        self.transport = m.group(3).upper()
        self.host, self.port = _hostport(m.group(4))
        self.params = params_of(m.group(5))

    @property
    def branch(self):
        return self.params.get("branch")

    @property
    def sent_by(self):
        return (self.host, self.port)

    def response_addr(self):
        """Where a response goes (RFC 3261 18.2.2, RFC 3581 4)."""
        host = self.params.get("received") or self.host
        port = self.params.get("rport") or self.port
        return (host, int(port)) if port else None

    def __repr__(self):
        return "Via(%r)" % self.value


class Msg:
    """A parsed SIP datagram. Header names are kept lower case, long form."""

    def __init__(self, data, src=None):
        self.raw = data
        self.src = src
        self.time = time.monotonic()
        sep = data.find(b"\r\n\r\n")
        if sep < 0:
            raise ValueError("no empty line after the headers")
        head = data[:sep].decode("utf-8", "replace")
        self.body = data[sep + 4:]
        lines = head.split("\r\n")
        self.start = lines[0]
        if self.start.startswith("SIP/"):
            parts = self.start.split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError("bad status line %r" % self.start)
            self.is_request = False
            self.version = parts[0]
            self.code = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            self.method = self.uri = None
        else:
            parts = self.start.split(" ")
            if len(parts) != 3:
                raise ValueError("bad request line %r" % self.start)
            self.is_request = True
            self.method, self.uri, self.version = parts
            self.code = self.reason = None
        self.headers = []           # (long lower-case name, name, value)
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, name, v = self.headers[-1]
                self.headers[-1] = (n, name, v + " " + line.strip())
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError("bad header line %r" % line)
            n = name.strip().lower()
            self.headers.append((COMPACT.get(n, n), name.strip(),
                                 value.strip()))

    @property
    def is_response(self):
        return not self.is_request

    def _key(self, name):
        n = name.lower()
        return COMPACT.get(n, n)

    def get(self, name, default=None):
        """The first header line of that name, as is."""
        k = self._key(name)
        for n, _, v in self.headers:
            if n == k:
                return v
        return default

    def lines(self, name):
        """Every header line of that name, as is."""
        k = self._key(name)
        return [v for n, _, v in self.headers if n == k]

    def values(self, name):
        """Every value of that header, comma lists split."""
        k = self._key(name)
        out = []
        for v in self.lines(k):
            out.extend(split_list(v) if k in LISTS else [v])
        return out

    def has(self, name):
        return self.get(name) is not None

    @property
    def vias(self):
        return [Via(v) for v in self.values("via")]

    @property
    def branch(self):
        v = self.values("via")
        return Via(v[0]).branch if v else None

    @property
    def call_id(self):
        return self.get("call-id")

    @property
    def cseq(self):
        """(number, METHOD); ValueError if missing or bad."""
        v = self.get("cseq")
        if v is None:
            raise ValueError("no CSeq")
        num, method = v.split()
        return int(num), method

    @property
    def cseq_method(self):
        try:
            return self.cseq[1]
        except ValueError:
            return None

    @property
    def from_tag(self):
        v = self.get("from")
        return header_params(v).get("tag") if v else None

    @property
    def to_tag(self):
        v = self.get("to")
        return header_params(v).get("tag") if v else None

    @property
    def content_length(self):
        v = self.get("content-length")
        return int(v) if v is not None else None

    def text(self):
        return self.raw.decode("utf-8", "replace")

    def __repr__(self):
        return "<%s | %s | %s>" % (self.start, self.get("cseq"),
                                   self.get("call-id"))


def parse(data, src=None):
    return Msg(data, src)


def _bytes(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def build_request(method, uri, headers, body=b"", version="SIP/2.0",
                  content_length=True):
    """headers: [(name, value)]; Content-Length is added unless present
    or content_length is False."""
    body = _bytes(body)
    lines = ["%s %s %s" % (method, uri, version)]
    lines += ["%s: %s" % hv for hv in headers]
    if content_length and not any(
            n.lower() in ("content-length", "l") for n, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build_response(req, code, reason=None, to_tag=None, headers=(),
                   body=b"", copy_record_route=True):
    """A response to req (a Msg) copying Via, From, To, Call-ID, CSeq and,
    for 101..299, Record-Route; to_tag is added to To unless it has one."""
    body = _bytes(body)
    lines = ["SIP/2.0 %d %s" % (code, reason or REASONS.get(code, "Unknown"))]
    for n, name, value in req.headers:
        if n in ("via", "from", "call-id", "cseq"):
            lines.append("%s: %s" % (name, value))
        elif n == "to":
            if to_tag and "tag" not in header_params(value):
                value += ";tag=" + to_tag
            lines.append("%s: %s" % (name, value))
        elif (n == "record-route" and copy_record_route and
              100 < code < 300):
            lines.append("%s: %s" % (name, value))
    lines += ["%s: %s" % hv for hv in headers]
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def match(method=None, code=None, call_id=None, cseq_method=None,
          branch=None, response=None):
    """A predicate on Msg. code: an int, or a collection (range, tuple)."""
    def pred(m):
        try:
            if method is not None and (not m.is_request or
                                       m.method != method):
                return False
            if code is not None:
                if m.is_request:
                    return False
                if isinstance(code, int):
                    if m.code != code:
                        return False
                elif m.code not in code:
                    return False
            if response is not None and m.is_response != response:
                return False
            if call_id is not None and m.call_id != call_id:
                return False
            if cseq_method is not None and m.cseq_method != cseq_method:
                return False
            if branch is not None and m.branch != branch:
                return False
            return True
        except ValueError:
            return False
    pred.desc = ", ".join("%s=%r" % kv for kv in dict(
        method=method, code=code, call_id=call_id, cseq_method=cseq_method,
        branch=branch, response=response).items() if kv[1] is not None)
    return pred


def reply_to(req, codes=FINAL):
    """Predicate: a response to req (same Call-ID and CSeq, top Via
    branch) with a code in codes."""
    def pred(m):
        try:
            return (m.is_response and m.code in codes and
                    m.call_id == req.call_id and m.cseq == req.cseq and
                    m.branch == req.branch)
        except ValueError:
            return False
    pred.desc = "%s response to %s (CSeq %s)" % (
        "final" if codes is FINAL else codes, req.start, req.get("cseq"))
    return pred


class Endpoint:
    """A UDP socket on 127.0.0.1 (or host, "::1" too), ephemeral port.
    Messages that a recv() filter skips are kept, in order, for later."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        try:                # Msg.time = arrival in the kernel, not read
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        self.addr = (self.host, self.port)
        self.queue = []
        self.history = []       # every parsed message, in arrival order
        self.garbage = []       # datagrams that did not parse

    def fileno(self):
        return self.sock.fileno()

    def send(self, data, addr):
        if isinstance(data, Msg):
            data = data.raw
        self.sock.sendto(_bytes(data), addr)

    def read(self, timeout):
        """One datagram from the socket (not the queue), or None."""
        try:
            r, _, _ = select.select([self.sock], [], [], max(0, timeout))
            if not r:
                return None
            data, anc, _, src = self.sock.recvmsg(65535, 64)
        except (ConnectionRefusedError, BlockingIOError, InterruptedError):
            return None
        try:
            m = Msg(data, src)
        except ValueError as e:
            self.garbage.append((data, src, str(e)))
            return None
        for level, kind, cdata in anc:
            if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                sec, nsec = struct.unpack("qq", cdata[:16])
                m.time -= time.time() - (sec + nsec / 1e9)
        self.history.append(m)
        return m

    def recv(self, timeout=2.0, filter=None):
        """The first message (queued or new) that passes filter, or None."""
        for i, m in enumerate(self.queue):
            if filter is None or filter(m):
                del self.queue[i]
                return m
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline - time.monotonic())
            if m is not None:
                if filter is None or filter(m):
                    return m
                self.queue.append(m)
            elif time.monotonic() >= deadline:
                return None

    def expect(self, filter=None, timeout=2.0, what=None):
        m = self.recv(timeout, filter)
        if m is None:
            raise AssertionError(
                "%s:%d got no %s within %.1fs; unmatched: %r%s" % (
                    self.host, self.port,
                    what or getattr(filter, "desc", "message"), timeout,
                    self.queue, (" garbage: %r" % self.garbage
                                 if self.garbage else "")))
        return m

    def collect(self, duration, filter=None):
        """Every matching message queued or arriving within duration."""
        out = []
        deadline = time.monotonic() + duration
        while True:
            m = self.recv(max(0.0, deadline - time.monotonic()), filter)
            if m is None:
                return out
            out.append(m)

    def close(self):
        self.sock.close()


class UAC:
    """One call (dialog) from the caller's side; requests go to proxy."""

    def __init__(self, ep, proxy, ruri="sip:bob@example.test",
                 from_uri="sip:alice@example.test", to_uri=None):
        self.ep = ep
        self.proxy = proxy
        self.ruri = ruri
        self.from_uri = from_uri
        self.to_uri = to_uri or ruri
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.cseq = 0
        self.invite_bytes = None
        self.invite_branch = None
        self.invite_cseq = None
        self.last_branch = None
        self.to_tag = None
        self.remote_target = None
        self.route_set = []

    def via(self, branch):
        return "SIP/2.0/UDP %s;branch=%s;rport" % (
            hostport(self.ep.host, self.ep.port), branch)

    @property
    def contact(self):
        return "<sip:alice@%s>" % hostport(self.ep.host, self.ep.port)

    @property
    def from_hdr(self):
        return "<%s>;tag=%s" % (self.from_uri, self.from_tag)

    def to_hdr(self, tag=None):
        return "<%s>" % self.to_uri + (";tag=" + tag if tag else "")

    def _send(self, data, send):
        if send:
            self.ep.send(data, self.proxy)
        return data

    def invite(self, body=SDP, headers=(), send=True):
        """A new INVITE transaction (new branch, next CSeq)."""
        self.cseq += 1
        self.invite_cseq = self.cseq
        self.invite_branch = self.last_branch = new_branch()
        hs = [("Via", self.via(self.invite_branch)),
              ("Max-Forwards", "70"),
              ("From", self.from_hdr),
              ("To", self.to_hdr(self.to_tag)),
              ("Call-ID", self.call_id),
              ("CSeq", "%d INVITE" % self.cseq),
              ("Contact", self.contact)]
        hs += [("Route", r) for r in self.route_set]
        if body:
            hs.append(("Content-Type", "application/sdp"))
        hs += list(headers)
        self.invite_bytes = build_request(
            "INVITE", self.remote_target or self.ruri, hs, body)
        return self._send(self.invite_bytes, send)

    def resend_invite(self):
        self.ep.send(self.invite_bytes, self.proxy)

    def cancel(self, headers=(), send=True):
        """CANCEL for the last INVITE (RFC 3261 9.1)."""
        hs = [("Via", self.via(self.invite_branch)),
              ("Max-Forwards", "70"),
              ("From", self.from_hdr),
              ("To", self.to_hdr()),
              ("Call-ID", self.call_id),
              ("CSeq", "%d CANCEL" % self.invite_cseq)]
        hs += list(headers)
        return self._send(build_request("CANCEL", self.ruri, hs), send)

    def learn(self, resp):
        """Take the dialog state from a 2xx (or 1xx with a tag) (12.1.2)."""
        self.to_tag = resp.to_tag
        if resp.has("contact"):
            self.remote_target = uri_of(resp.get("contact"))
        self.route_set = list(reversed(resp.values("record-route")))

    def ack(self, resp, send=True):
        """ACK for a final response to the last INVITE: end to end along
        the route set for 2xx, hop by hop with the INVITE's branch else."""
        if 200 <= resp.code < 300:
            self.learn(resp)
            self.last_branch = branch = new_branch()
            uri = self.remote_target
            routes = self.route_set
            to = self.to_hdr(self.to_tag)
        else:
            branch = self.invite_branch
            uri = self.ruri
            routes = []
            to = resp.get("to")
        hs = [("Via", self.via(branch)), ("Max-Forwards", "70"),
              ("From", self.from_hdr), ("To", to),
              ("Call-ID", self.call_id),
              ("CSeq", "%d ACK" % self.invite_cseq)]
        hs += [("Route", r) for r in routes]
        return self._send(build_request("ACK", uri, hs), send)

    def request(self, method, headers=(), body=b"", send=True):
        """A new non-INVITE request, in the dialog if there is one."""
        self.cseq += 1
        self.last_branch = new_branch()
        hs = [("Via", self.via(self.last_branch)),
              ("Max-Forwards", "70"),
              ("From", self.from_hdr),
              ("To", self.to_hdr(self.to_tag)),
              ("Call-ID", self.call_id),
              ("CSeq", "%d %s" % (self.cseq, method))]
        hs += [("Route", r) for r in self.route_set]
        hs += list(headers)
        return self._send(build_request(
            method, self.remote_target or self.ruri, hs, body), send)

    def bye(self, send=True):
        return self.request("BYE", send=send)

    def resp(self, code=None, method="INVITE"):
        """Predicate: a response of this call to method."""
        return match(code=code, response=True, call_id=self.call_id,
                     cseq_method=method)

    def check_vias(self, resp, branch=None):
        """The response carries exactly our own Via (proxy's removed)."""
        vias = resp.vias
        assert len(vias) == 1, "caller got Vias %r in %r" % (vias, resp)
        assert vias[0].branch == (branch or self.invite_branch), vias
        assert vias[0].sent_by == self.ep.addr, vias


class UAS:
    """The called side: answers what the proxy forwards to its socket."""

    def __init__(self, ep, user="bob"):
        self.ep = ep
        self.user = user
        self.tags = {}

    @property
    def target(self):
        """The route target for the config (no user: RURI unchanged)."""
        return "sip:" + hostport(self.ep.host, self.ep.port)

    @property
    def contact_uri(self):
        return "sip:%s@%s" % (self.user, hostport(self.ep.host, self.ep.port))

    def tag(self, req):
        """Our To tag in this call (one per Call-ID)."""
        return self.tags.setdefault(req.call_id, new_tag())

    def respond(self, req, code, reason=None, headers=(), body=b"",
                to_tag=None, contact=True, send=True):
        """Answer req (to its top Via); To tag except on 100; Contact on
        1xx/2xx to INVITE."""
        tag = None if code == 100 else (to_tag or self.tag(req))
        hs = list(headers)
        if contact and req.method == "INVITE" and 100 < code < 300:
            hs.append(("Contact", "<%s>" % self.contact_uri))
        if body and req.method == "INVITE":
            hs.append(("Content-Type", "application/sdp"))
        data = build_response(req, code, reason, tag, hs, body)
        if send:
            self.ep.send(data, req.vias[0].response_addr() or req.src)
        return data

    def expect(self, method, timeout=2.0, **kw):
        return self.ep.expect(match(method=method, **kw), timeout)


class Net:
    """One running ospreyd, a caller socket and a UAS routed for ^bob$."""

    def __init__(self, proxy, caller, uas):
        self.proxy = proxy
        self.caller = caller
        self.uas = uas

    def call(self, ruri="sip:bob@example.test", **kw):
        return UAC(self.caller, self.proxy.addr, ruri, **kw)

    def ring(self, call, code=180):
        """INVITE through the proxy, the UAS answers code, the caller gets
        it. Returns the INVITE as the UAS got it."""
        call.invite()
        inv = self.uas.expect("INVITE", call_id=call.call_id)
        self.uas.respond(inv, code)
        self.caller.expect(call.resp(code))
        return inv

    def simple_call(self):
        """INVITE/180/200/ACK/BYE/200 end to end; asserts each step."""
        call = self.call()
        inv = self.ring(call)
        self.uas.respond(inv, 200, body=SDP)
        ok = self.caller.expect(call.resp(200))
        call.ack(ok)
        self.uas.expect("ACK", call_id=call.call_id)
        call.bye()
        bye = self.uas.expect("BYE", call_id=call.call_id)
        self.uas.respond(bye, 200)
        self.caller.expect(call.resp(200, "BYE"))
        return call


@pytest.fixture
def sipnet(osprey_factory):
    """sipnet(timers=..., extra=..., routes=...) -> Net. routes defaults to
    ^bob$ -> our UAS; a callable gets the UAS target and returns routes."""
    made = []

    def make(routes=None, user="^bob$", **kw):
        uas = UAS(Endpoint())
        caller = Endpoint()
        made.extend([uas.ep, caller])
        if routes is None:
            routes = [(user, [uas.target])]
        elif callable(routes):
            routes = routes(uas.target)
        return Net(osprey_factory(routes=routes, **kw), caller, uas)

    yield make
    for ep in made:
        ep.close()


# ------------------------------------------------- digest authentication
#
# RFC 7616 (RFC 2617) Digest with qop=auth: HA1 = H(user:realm:password),
# HA2 = H(method:uri), response = H(HA1:nonce:nc:cnonce:qop:HA2).

DIGEST_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_hash(algorithm, text):
    """H(text) as lower-case hex; algorithm "MD5" or "SHA-256"."""
    fn = DIGEST_HASHES[algorithm.upper()]
    return fn(_bytes(text)).hexdigest()


def digest_ha1(user, realm, password, algorithm="MD5"):
    return digest_hash(algorithm, "%s:%s:%s" % (user, realm, password))


def digest_response(algorithm, ha1, nonce, method, uri, nc=1, cnonce="",
                    qop="auth"):
    """The request-digest; qop None gives the RFC 2069 form."""
    ha2 = digest_hash(algorithm, "%s:%s" % (method, uri))
    if qop is None:
        return digest_hash(algorithm, "%s:%s:%s" % (ha1, nonce, ha2))
    return digest_hash(algorithm, "%s:%s:%08x:%s:%s:%s" % (
        ha1, nonce, nc, cnonce, qop, ha2))


def users_line(user, realm, password, sha256=True):
    """A line of the users file: user:realm:HA1md5[:HA1sha256]."""
    out = "%s:%s:%s" % (user, realm, digest_ha1(user, realm, password))
    if sha256:
        out += ":" + digest_ha1(user, realm, password, "SHA-256")
    return out


class Challenge:
    """One WWW-Authenticate / Proxy-Authenticate value (RFC 7616 3.3).
    .scheme, .params (keys lower case, values unquoted), .realm, .nonce,
    .algorithm (MD5 when absent), .qop (list), .opaque, .stale."""

    def __init__(self, value, header=None):
        self.value = value
        self.header = header
        scheme, _, rest = value.strip().partition(" ")
        self.scheme = scheme
        self.params = {}
        self.quoted = set()
        for item in _split_outside(rest, ",", False):
            k, eq, v = item.strip().partition("=")
            if not k:
                continue
            k = k.strip().lower()
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = re.sub(r"\\(.)", r"\1", v[1:-1])
                self.quoted.add(k)
            self.params[k] = v if eq else None

    realm = property(lambda self: self.params.get("realm"))
    nonce = property(lambda self: self.params.get("nonce"))
    opaque = property(lambda self: self.params.get("opaque"))

    @property
    def algorithm(self):
        return (self.params.get("algorithm") or "MD5").upper()

    @property
    def qop(self):
        return [x.strip() for x in
                (self.params.get("qop") or "").split(",") if x.strip()]

    @property
    def stale(self):
        return (self.params.get("stale") or "").lower() == "true"

    def __repr__(self):
        return "Challenge(%r)" % self.value


def parse_challenge(value, header=None):
    return Challenge(value, header)


def challenges(msg):
    """The Digest challenges of a 401/407, in header order."""
    name = "proxy-authenticate" if msg.code == 407 else "www-authenticate"
    return [Challenge(v, name) for v in msg.lines(name)]


def pick_challenge(msg, algorithm=None):
    """The challenge for algorithm (the first one when None)."""
    chs = challenges(msg)
    if not chs:
        raise AssertionError("no challenge in %r:\n%s" % (msg, msg.text()))
    if algorithm is None:
        return chs[0]
    for ch in chs:
        if ch.algorithm == algorithm.upper():
            return ch
    raise AssertionError("no %s challenge in %r" % (algorithm, chs))


def authorization(ch, method, uri, user, password=None, nc=1, cnonce=None,
                  ha1=None, realm=None, algorithm=None, response=None):
    """The Authorization / Proxy-Authorization value answering challenge
    ch (a Challenge). realm/algorithm override the challenge's;
    response overrides the computed digest."""
    alg = (algorithm or ch.algorithm).upper()
    realm = realm if realm is not None else ch.realm
    cnonce = cnonce or secrets.token_hex(8)
    qop = "auth" if "auth" in ch.qop else None
    if ha1 is None:
        ha1 = digest_ha1(user, realm, password, alg)
    if response is None:
        response = digest_response(alg, ha1, ch.nonce, method, uri, nc,
                                   cnonce, qop)
    out = ['username="%s"' % user, 'realm="%s"' % realm,
           'nonce="%s"' % ch.nonce, 'uri="%s"' % uri,
           'response="%s"' % response, "algorithm=%s" % alg]
    if qop:
        out += ['cnonce="%s"' % cnonce, "qop=%s" % qop, "nc=%08x" % nc]
    if ch.opaque is not None:
        out.append('opaque="%s"' % ch.opaque)
    return "Digest " + ", ".join(out)


# ------------------------------------------- a user agent of our domain


class Phone:
    """A UA of our domain on its own Endpoint: registers its AOR through
    the proxy (answering digest challenges when it has a password), calls
    and answers. One Call-ID and a rising CSeq for all its REGISTERs, as
    RFC 3261 10.2.4 asks."""

    def __init__(self, ep, proxy, user, password=None, domain="example.test",
                 algorithm=None):
        self.ep = ep
        self.proxy = proxy
        self.user = user
        self.password = password
        self.domain = domain
        self.algorithm = algorithm
        self.aor = "sip:%s@%s" % (user, domain)
        self.reg_call_id = new_call_id()
        self.reg_tag = new_tag()
        self.cseq = 0
        self.uas = UAS(ep, user)
        self.last_challenge = None

    @property
    def contact_uri(self):
        return "sip:%s@%s" % (self.user, hostport(self.ep.host, self.ep.port))

    def register_bytes(self, contacts=None, expires=None, headers=(),
                       auth=None, cseq=None, call_id=None, branch=None,
                       to=None, frm=None, via=None):
        """A REGISTER request. contacts: None = our own Contact, [] = none
        (a query), else a list of Contact values (strings)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        if contacts is None:
            contacts = ["<%s>" % self.contact_uri]
        hs = [("Via", via or "SIP/2.0/UDP %s;branch=%s;rport" % (
                  hostport(self.ep.host, self.ep.port),
                  branch or new_branch())),
              ("Max-Forwards", "70"),
              ("From", frm or "<%s>;tag=%s" % (self.aor, self.reg_tag)),
              ("To", to or "<%s>" % self.aor),
              ("Call-ID", call_id or self.reg_call_id),
              ("CSeq", "%d REGISTER" % cseq)]
        hs += [("Contact", c) for c in contacts]
        if expires is not None:
            hs.append(("Expires", str(expires)))
        if auth:
            hs.append(("Authorization", auth))
        hs += list(headers)
        return build_request("REGISTER", "sip:" + self.domain, hs)

    def send_register(self, **kw):
        """Send one REGISTER; returns (its CSeq number, the final reply)."""
        req = parse(self.register_bytes(**kw))
        self.ep.send(req.raw, self.proxy)
        return self.ep.expect(reply_to(req), 2.0)

    def auth_for(self, ch, method, uri, user=None, password=None, **kw):
        return authorization(ch, method, uri, user or self.user,
                             password if password is not None
                             else self.password, **kw)

    def register(self, contacts=None, expires=None, headers=(),
                 algorithm=None, user=None, password=None, **kw):
        """REGISTER, answering one 401 with credentials; the final reply."""
        r = self.send_register(contacts=contacts, expires=expires,
                               headers=headers, **kw)
        if r.code != 401 or (self.password is None and password is None):
            return r
        ch = pick_challenge(r, algorithm or self.algorithm)
        self.last_challenge = ch
        auth = self.auth_for(ch, "REGISTER", "sip:" + self.domain,
                             user=user, password=password)
        return self.send_register(contacts=contacts, expires=expires,
                                  headers=headers, auth=auth, **kw)

    def bindings(self, resp):
        """{contact URI: header params} of a 200 to REGISTER."""
        return {uri_of(c): header_params(c) for c in resp.values("contact")}

    def query(self):
        """The bindings listed by a REGISTER without Contact."""
        r = self.register(contacts=[])
        assert r.code == 200, "query got %r" % r
        return self.bindings(r)

    def call(self, ruri, proxy=None):
        c = UAC(self.ep, proxy or self.proxy, ruri, from_uri=self.aor)
        return c

    def invite_auth(self, call, headers=(), algorithm=None, user=None,
                    password=None, body=SDP):
        """INVITE; a 407 is ACKed and, when we have a password, answered
        at once by the INVITE again (next CSeq) with Proxy-Authorization.
        Returns the first response to the first INVITE other than 100
        (the 407, unless it was not challenged)."""
        call.invite(headers=headers, body=body)
        r = self.ep.expect(match(code=range(101, 700), call_id=call.call_id,
                                 cseq_method="INVITE"), 2.0)
        if r.code != 407:
            return r
        call.ack(r)
        if password is None and self.password is None:
            return r
        ch = pick_challenge(r, algorithm or self.algorithm)
        self.last_challenge = ch
        auth = self.auth_for(ch, "INVITE", call.ruri, user=user,
                             password=password)
        call.invite(headers=list(headers) + [("Proxy-Authorization", auth)],
                    body=body)
        return r


class LabBase:
    """One ospreyd (.proxy, started by the test through the factory) and
    the loopback endpoints around it, closed together."""

    def __init__(self, factory):
        self.factory = factory
        self.eps = []
        self.proxy = None

    def endpoint(self, host="127.0.0.1"):
        ep = Endpoint(host)
        self.eps.append(ep)
        return ep

    def close(self):
        for ep in self.eps:
            ep.close()


class Lab(LabBase):
    """A caller, several UAS and one ospreyd configured with routes text
    (the `lab` fixture)."""

    def __init__(self, factory):
        super().__init__(factory)
        self.caller = self.endpoint()

    def uas(self, user="bob"):
        return UAS(self.endpoint(), user)

    def start(self, text, timers=None):
        self.proxy = self.factory(routes=(), extra=text, timers=timers)
        return self.proxy

    def call(self, user="bob"):
        return UAC(self.caller, self.proxy.addr,
                   "sip:%s@example.test" % user)


class RegLab(LabBase):
    """One ospreyd with registrar/auth settings plus any number of Phones
    and callers, each on its own loopback socket (the `reglab` fixture)."""

    def __init__(self, factory):
        super().__init__(factory)
        self.kw = {}

    def start(self, **kw):
        """osprey_factory(**kw); registrar/auth/users as conftest says."""
        self.kw = kw
        self.proxy = self.factory(**kw)
        return self.proxy

    def restart(self, **kw):
        """Stop the daemon and start it again: same port, same workdir
        (users file, database), same settings unless overridden."""
        old = self.proxy
        rc = old.stop()
        ok = (0,) + tuple(getattr(old, "allowed_rc", ()))
        assert rc in ok, "ospreyd exit %r" % rc
        args = dict(self.kw)
        args.update(kw)
        args.update(port=old.port, workdir=old.workdir)
        self.proxy = self.factory(**args)
        return self.proxy

    def phone(self, user, password=None, host="127.0.0.1", **kw):
        return Phone(self.endpoint(host), self.proxy.addr, user, password,
                     **kw)

    def caller(self, ruri, from_uri="sip:eve@elsewhere.test",
               host="127.0.0.1"):
        """A stranger's call (From a foreign domain) unless from_uri."""
        return UAC(self.endpoint(host), self.proxy.addr, ruri,
                   from_uri=from_uri)


@pytest.fixture
def lab(osprey_factory):
    """A Lab; import the fixture into the test module, as sipnet."""
    lb = Lab(osprey_factory)
    yield lb
    lb.close()


@pytest.fixture
def reglab(osprey_factory):
    lb = RegLab(osprey_factory)
    yield lb
    lb.close()
