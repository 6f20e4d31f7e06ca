"""Fixtures that start a real ospreyd on loopback with ephemeral ports."""

import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
OSPREYD = os.environ.get("OSPREYD") or os.path.join(
    os.environ.get("OSPREY_BUILDDIR", TOP), "src", "ospreyd")


def free_udp_port(host="127.0.0.1"):
    """A port that was free a moment ago for UDP and for TCP (bound,
    then released): the daemons listen on both with one number."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            s.close()
    raise RuntimeError("no port free for UDP and TCP on %s" % host)


def rss_kb(pid):
    """Resident memory of a process, KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


OSPREYCTL = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")


def ctl(o, *args):
    """ospreyctl against a running daemon's control socket; its output."""
    p = subprocess.run([OSPREYCTL, "-s", o.ctl_socket] + list(args),
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout


def reload_conf(o, text, logged="config reloaded", secs=10):
    """Write text as o's config, SIGHUP it, wait for logged in its log."""
    with open(o.conf, "w") as f:
        f.write(text)
    os.kill(o.proc.pid, signal.SIGHUP)
    deadline = time.time() + secs
    while logged not in o.log_text() and time.time() < deadline:
        time.sleep(0.1)
    assert logged in o.log_text(), "no %r after SIGHUP" % logged


def ctl_stats(o):
    """`ospreyctl stats` as {name: count}."""
    out = {}
    for line in ctl(o, "stats").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


# Worker loops of every ospreyd the tests start (osprey.conf "workers"):
# `make check` runs the suite with 1 and again with 2.
WORKERS = int(os.environ.get("OSPREY_TEST_WORKERS", "1"))


def conf_text(port, routes=(), domains=("example.test",), timers=None,
              extra="", listen=None, workdir=None):
    """A libconfig file for ospreyd. routes: (user_regex, [targets])."""
    t = {"t1": 50, "t2": 400, "t4": 500, "c": 5000, "cancel": 1000}
    t.update(timers or {})
    # A listen entry's port None: the daemon's own (picked again with
    # it when it was taken).
    lst = [(tr, a, port if p is None else p)
           for tr, a, p in listen or [("udp", "127.0.0.1", port)]]
    out = ["listen = (" + ", ".join(
        '{ transport = "%s"; address = "%s"; port = %d; }' % x
        for x in lst) + ");"]
    out.append("domains = [ %s ];" % ", ".join('"%s"' % d for d in domains))
    out.append("timers = { %s };" % " ".join(
        "%s = %d;" % kv for kv in t.items()))
    if routes:
        rs = []
        for user, targets in routes:
            rs.append('{ user = "%s"; targets = [ %s ]; }' % (
                user, ", ".join('"%s"' % x for x in targets)))
        out.append("routes = ( %s );" % ", ".join(rs))
    if "log_level" not in extra:
        out.append('log_level = "debug";')
    if "control" not in extra and workdir is not None:
        out.append('control = { socket = "%s/ctl.sock"; };' % workdir)
    if "shutdown_grace" not in extra:
        out.append("shutdown_grace = 300;")
    if "workers" not in extra:
        out.append("workers = %d;" % WORKERS)
    if "dns" not in extra:
        # Name lookups stay on loopback: a dead port, never the host's DNS.
        out.append('dns = { nameservers = [ "127.0.0.1:9" ]; timeout = 500; };')
    out.append(extra)
    return "\n".join(out) + "\n"


def lc(v):
    """A Python value as libconfig text: str -> "..", bool, int,
    list -> [ .. ] (array), tuple -> ( .. ) (list), dict -> { k = v; }."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, list):
        return "[ %s ]" % ", ".join(lc(x) for x in v)
    if isinstance(v, tuple):
        return "( %s )" % ", ".join(lc(x) for x in v)
    if isinstance(v, dict):
        return "{ %s }" % " ".join("%s = %s;" % (k, lc(x))
                                   for k, x in v.items())
    raise TypeError(v)


def write_users(path, users, realm="example.test"):
    """A users file (user:realm:HA1md5:HA1sha256 lines, htdigest format
    plus the SHA-256 HA1). users: {user: password} or a list of lines."""
    from sip import users_line
    if isinstance(users, dict):
        lines = ["# written by the e2e tests"] + [
            users_line(u, realm, pw) for u, pw in users.items()]
    else:
        lines = list(users)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Osprey:
    """A running ospreyd. .port, .addr, .log_text(), .stop().  wrapper is
    an argv prefix (valgrind ...); ready_s and stop_s bound the start and
    the stop (a wrapped daemon is slower)."""

    def __init__(self, text, port, workdir, name="ospreyd", wrapper=(),
                 ready_s=10, stop_s=5):
        self.port = port
        self.addr = ("127.0.0.1", port)
        self.workdir = workdir
        self.stop_s = stop_s
        self.conf = os.path.join(workdir, "osprey.conf")
        self.logpath = os.path.join(workdir, name + ".log")
        with open(self.conf, "w") as f:
            f.write(text)
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            list(wrapper) + [OSPREYD, "-f", "-c", self.conf],
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + ready_s
        while time.time() < deadline:
            if ": ready," in self.log_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("ospreyd exited %d:\n%s" % (
                    self.proc.returncode, self.log_text()))
            time.sleep(0.02)
        raise RuntimeError("ospreyd not ready:\n" + self.log_text())

    def log_text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, and the exit status: 0 when the daemon's handler ran
        and main() returned (only then do the ASan leak check and
        valgrind's run), negative for death by a signal."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


@pytest.fixture
def osprey_factory(request):
    """osprey_factory(routes=[("^bob$", ["sip:127.0.0.1:PORT"])], ...).

    Registrar and authentication (all optional):
      users={"alice": "pw"}  writes WORKDIR/users and sets auth.users;
      auth={...}, registrar={...}  become the auth / registrar groups
          (registrar database=True means WORKDIR/location.db);
      workdir=o.workdir  starts again in an earlier daemon's directory
          (same users file and database; a log file of its own)."""
    started = []
    workdirs = []

    def start(routes=(), port=None, users=None, auth=None, registrar=None,
              workdir=None, realm="example.test", wrapper=(), ready_s=10,
              stop_s=5, **kw):
        picked = port is None
        port = port or free_udp_port()
        wd = workdir or tempfile.mkdtemp(prefix="osprey-e2e-")
        workdirs.append(wd)
        auth = dict(auth or {})
        if users is not None:
            auth.setdefault("users", write_users(
                os.path.join(wd, "users"), users, realm))
        more = []
        if auth:
            more.append("auth = %s;" % lc(auth))
        if registrar is not None:
            registrar = dict(registrar)
            if registrar.get("database") is True:
                registrar["database"] = os.path.join(wd, "location.db")
            more.append("registrar = %s;" % lc(registrar))
        if wrapper and "workers" not in kw.get("extra", ""):
            # valgrind runs one thread at a time: a second loop only adds
            # its scheduling delays (T1 is 50 ms here).
            more.append("workers = 1;")
        if more:
            kw["extra"] = "\n".join([kw.get("extra", "")] + more)
        name = "ospreyd"
        if workdir is not None:
            name = "ospreyd-%d" % sum(1 for o in started
                                      if o.workdir == wd)
        # A port picked free can be taken before the daemon binds it
        # (tests run side by side): a port of our picking, picked again.
        for attempt in range(3):
            try:
                o = Osprey(conf_text(port, routes, workdir=wd, **kw),
                           port, wd, name=name, wrapper=wrapper,
                           ready_s=ready_s, stop_s=stop_s)
                break
            except RuntimeError as e:
                if picked and attempt < 2 and \
                        "Address already in use" in str(e):
                    port = free_udp_port()
                    continue
                raise
        o.ctl_socket = os.path.join(wd, "ctl.sock")
        started.append(o)
        return o

    yield start
    failed = getattr(request.node, "rep_call", None)
    for o in started:
        rc = o.stop()
        if (failed is not None and failed.failed) or rc not in (0, None):
            print("---- ospreyd log (%s) ----\n%s" % (o.logpath, o.log_text()))
        # Not -15: the daemon handles SIGTERM and returns from main();
        # death by the signal would skip the sanitizers' leak check.  An
        # ASan/UBSan/LSan report makes the exit status non-zero
        # (tests/sanitize/run-sanitized sets the exit codes).
        ok = (0,) + tuple(getattr(o, "allowed_rc", ()))
        assert rc in ok, "ospreyd did not exit cleanly: %r" % rc


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
