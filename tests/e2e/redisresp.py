"""A minimal blocking RESP2 client, for the tests' and the benchmarks' own
look at a Redis (tests/e2e/test_redis.py, tests/bench/benchlib.py, which
imports it by path).  Plain Python: no pytest here."""

import socket
import ssl


def resp_encode(args):
    """A command as RESP2: an array of bulk strings."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Resp:
    """One connection to the Redis on host:port (TLS when cafile is
    given, AUTH when password is); replies as str, int, list or None, an
    error reply raised as RuntimeError.  encoding: of the bulk strings."""

    def __init__(self, port, password=None, user=None, cafile=None,
                 host="127.0.0.1", timeout=5, encoding="utf-8"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if cafile is not None:
            ctx = ssl.create_default_context(cafile=cafile)
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        self.buf = b""
        self.encoding = encoding
        if password is not None:
            args = ["AUTH"] + ([user] if user else []) + [password]
            assert self.cmd(*args) == "OK"

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("redis closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode(self.encoding)
        if t == b"-":
            raise RuntimeError(rest.decode(self.encoding))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode(self.encoding)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("bad RESP %r" % line)

    def read(self):
        """The next reply or pushed message (SUBSCRIBE, MONITOR)."""
        return self._read()

    def cmd(self, *args):
        self.sock.sendall(resp_encode(args))
        return self._read()

    def close(self):
        self.sock.close()


def command(port, *args, timeout=5, encoding="utf-8", **kw):
    """One command on a connection of its own: its reply."""
    r = Resp(port, timeout=timeout, encoding=encoding, **kw)
    try:
        return r.cmd(*args)
    finally:
        r.close()
