"""A tiny authoritative DNS responder on loopback for the RFC 3263 tests:
NAPTR, SRV, A and AAAA from a table; a name it knows without records of
the type asked answers NOERROR with none (NODATA), any other NXDOMAIN.
Runs in a thread and records every question it was asked."""

import socket
import struct
import threading


def _name(labels):
    out = b""
    for part in labels.rstrip(".").split("."):
        if part:
            out += bytes([len(part)]) + part.encode()
    return out + b"\0"


def _read_name(data, off):
    labels = []
    while True:
        n = data[off]
        if n == 0:
            return ".".join(labels), off + 1
        labels.append(data[off + 1:off + 1 + n].decode())
        off += 1 + n


class DNSServer:
    """records: {("gw.test", "NAPTR"): [(order, pref, flags, service,
    regexp, replacement)], ("_sip._udp.gw.test", "SRV"): [(prio, weight,
    port, target)], ("a.test", "A"): ["127.0.0.1"], ...}"""

    def __init__(self, records):
        self.records = records
        self.queries = []
        self.silent = set()     # names asked about and never answered
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _answer(self, data):
        qid, _flags, qd = struct.unpack("!HHH", data[:6])
        if qd != 1:
            return None
        name, off = _read_name(data, 12)
        qtype, _qclass = struct.unpack("!HH", data[off:off + 4])
        question = data[12:off + 4]
        kind = {1: "A", 28: "AAAA", 33: "SRV", 35: "NAPTR"}.get(
            qtype, str(qtype))
        self.queries.append((name.lower(), kind))
        if name.lower() in self.silent:
            return None
        answers = []
        for rdata in self.records.get((name.lower(), kind), []):
            if kind == "A":
                rd = socket.inet_aton(rdata)
            elif kind == "AAAA":
                rd = socket.inet_pton(socket.AF_INET6, rdata)
            elif kind == "NAPTR":
                order, pref, flags, service, regexp, repl = rdata
                rd = struct.pack("!HH", order, pref)
                for text in (flags, service, regexp):
                    rd += bytes([len(text)]) + text.encode()
                rd += _name(repl)
            else:
                prio, weight, port, target = rdata
                rd = struct.pack("!HHH", prio, weight, port) + _name(target)
            answers.append(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 30,
                                                     len(rd)) + rd)
        known = any(k[0] == name.lower() for k in self.records)
        rcode = 0 if known else 3
        flags = 0x8400 | 0x0100 | rcode
        head = struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0)
        return head + question + b"".join(answers)

    def _run(self):
        while not self.stopped:
            try:
                data, src = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue
            if reply is not None:
                self.sock.sendto(reply, src)

    def stop(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()
