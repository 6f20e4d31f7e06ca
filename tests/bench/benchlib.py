"""Helpers shared by the bench scripts of this folder (imported by name:
Python puts a script's own folder first on sys.path).

load_run_bench(): run-bench as a module, for its proxies, SIPp steps and
/proc counters (cpu-ab, cpu-configs).
Rtpengine: a real rtpengine (rtpengine-daemon) in userspace on loopback,
its ng port and a media port range of its own, no config file and no
kernel forwarding, as tests/e2e/test_media.py starts it (callgrind-calls,
cpu-configs).
"""

import importlib.machinery
import importlib.util
import os
import secrets
import statistics
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RTPENGINE = os.environ.get("RTPENGINE", "/usr/bin/rtpengine")


def _load_by_path(name, path):
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# the RESP client the e2e tests use (a plain module: no pytest)
redisresp = _load_by_path("redisresp", os.path.join(HERE, "..", "e2e",
                                                    "redisresp.py"))


def load_run_bench():
    return _load_by_path("run_bench", os.path.join(HERE, "run-bench"))


def udp_port(kind=socket.SOCK_DGRAM):
    """A free port on 127.0.0.1 (UDP; kind SOCK_STREAM: TCP)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ng_ping(port, timeout=0.2):
    """Whether rtpengine answers an ng ping on 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(secrets.token_hex(6).encode() + b" d7:command4:pinge",
                 ("127.0.0.1", port))
        return b"pong" in s.recv(65536)
    except OSError:
        return False
    finally:
        s.close()


class Rtpengine:
    """rtpengine on 127.0.0.1: ng on a free UDP port, media ports from
    BENCH_RTPE_PORTS ("10000 11999": below the 12000-31999 of the e2e
    tests and run-bench's SIPp ports; a port another program holds is
    skipped by rtpengine), one worker thread (BENCH_RTPE_THREADS), log
    level BENCH_RTPE_LOG (4: warnings, as ospreyd's "warning"), under
    timeout(1) for at most limit seconds."""

    def __init__(self, wd, limit=3600):
        lo, hi = (int(x) for x in os.environ.get(
            "BENCH_RTPE_PORTS", "10000 11999").split())
        self.ng = udp_port()
        self.ports = (lo, hi)
        self.log = os.path.join(wd, "rtpengine.log")
        argv = [RTPENGINE, "--config-file=none", "--foreground",
                "--log-stderr", "--table=-1", "--no-fallback",
                "--interface=127.0.0.1",
                "--listen-ng=127.0.0.1:%d" % self.ng,
                "--port-min=%d" % lo, "--port-max=%d" % hi,
                "--delete-delay=0",
                "--num-threads=%s" % os.environ.get("BENCH_RTPE_THREADS", "1"),
                "--log-level=%s" % os.environ.get("BENCH_RTPE_LOG", "4")]
        self.p, self.pid = spawn_wrapped(wd, self.log, argv, limit,
                                         lambda: ng_ping(self.ng),
                                         "rtpengine (ng ping)")

    def uri(self):
        return "udp:127.0.0.1:%d" % self.ng

    def stop(self):
        stop_wrapped(self.p, getattr(self, "pid", None))


def spawn_wrapped(wd, log, argv, limit, ready, what):
    """argv under timeout(1) for at most limit seconds, its output to log,
    then wait up to 10 s until ready() is true: (process, pid of argv[0])."""
    with open(log, "wb") as out:
        p = subprocess.Popen(["timeout", "-k", "5", str(int(limit))] + argv,
                             cwd=wd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not ready():
        if p.poll() is not None or time.monotonic() > deadline:
            stop_wrapped(p, None)
            with open(log, encoding="latin-1") as f:
                raise RuntimeError("%s did not answer within 10 s:\n%s"
                                   % (what, f.read()[-2000:]))
        time.sleep(0.05)
    return p, child_of(p)


def child_of(p):
    """The process under timeout(1) p (p's own pid when none)."""
    try:
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    return kids[0] if kids else p.pid


def stop_wrapped(p, pid):
    """SIGTERM to timeout(1) p (it passes it on), SIGKILL to both after
    10 s."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for x in (pid, p.pid):
                try:
                    os.kill(x, signal.SIGKILL)
                except (OSError, TypeError):
                    pass
            p.wait()


def available():
    """None when rtpengine can run here, else why not."""
    if not os.access(RTPENGINE, os.X_OK):
        return ("%s missing (apt-get install -y --no-install-recommends "
                "rtpengine-daemon)" % RTPENGINE)
    return None


# ------------------------------------------- interleaved CPU steps (rb: run-bench)

def uac_sockets(rb, who):
    """Over UDP the UAC sends from BENCH_UAC_SOCKETS sockets (-t un) when
    run-bench's SIPp 3.7.7 is found, else from one."""
    if rb.UAC_SOCKETS > 1:
        sipp, why = rb.find_sipp_tls()
        if sipp:
            rb.UAC_SIPP.append(sipp)
        else:
            rb.log("%s: no SIPp 3.7.7 for -t un (%s): one UAC socket"
                   % (who, why))
            rb.UAC_SOCKETS = 1


def start_ospreyd(rb, binary, name, workers, conf=""):
    """A SIPp UAS and an ospreyd (workers, conf added to run-bench's
    calls config) routing to it: [proxy, uas, uas_dir] for rb.run_step.
    The caller stops them with stop_all (also when this raises)."""
    uas, uas_port, uas_dir = rb.start_uas("ospreyd", name, "uas.xml")
    proxy = rb.Proxy("ospreyd", binary, "udp", workers)
    proxy.label = "%s-%s" % (proxy.label, name)
    proxy.conf = conf
    env = [None, uas, uas_dir]
    try:
        proxy.start(name, uas_port, False)
    except BaseException:
        rb.stop(uas)
        raise
    env[0] = proxy
    return env


def stop_all(rb, envs):
    for proxy, uas, _ in envs:
        if proxy is not None:
            proxy.stop()
        if uas is not None:
            rb.stop(uas)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def round_ratios(xs, base):
    """Per-round ratios xs[i] / base[i] of the rounds both completed."""
    return [x / b for x, b in zip(xs, base)
            if x is not None and b is not None and b > 0]


def fmt_rounds(xs, f="%.0f"):
    return " ".join(f % x if x is not None else "-" for x in xs)


# ------------------------------------------------------------- redis-server

REDIS = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


def tcp_port():
    return udp_port(socket.SOCK_STREAM)


def resp(port, *args, timeout=5):
    """One command to the Redis on 127.0.0.1:port (RESP2, a connection of
    its own, tests/e2e/redisresp.py): its reply, a str, int or list;
    raises on an error reply."""
    return redisresp.command(port, *args, timeout=timeout,
                             encoding="latin-1")


def redis_ping(port):
    try:
        return resp(port, "PING", timeout=1) == "PONG"
    except (OSError, RuntimeError):
        return False


def redis_info(port, section="memory"):
    """INFO section as {field: value (str)}."""
    out = {}
    for line in resp(port, "INFO", section).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


class Redis:
    """redis-server on 127.0.0.1 on a free port, no persistence (--save ''
    --appendonly no), its files in wd, under timeout(1) for at most limit
    seconds, as tests/e2e/test_redis.py starts it."""

    def __init__(self, wd, limit=3600):
        self.port = tcp_port()
        self.log = os.path.join(wd, "redis.log")
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", wd]
        self.p, self.pid = spawn_wrapped(wd, self.log, argv, limit,
                                         lambda: redis_ping(self.port),
                                         "redis-server (PING)")

    def stop(self):
        stop_wrapped(self.p, getattr(self, "pid", None))


def redis_keys(port, pattern, sample=200):
    """(count of the keys matching pattern, mean MEMORY USAGE of up to
    sample of them in bytes, None without any), by SCAN."""
    cursor, n, seen = "0", 0, []
    while True:
        cursor, keys = resp(port, "SCAN", cursor, "MATCH", pattern,
                            "COUNT", 1000)
        n += len(keys)
        seen += keys[:max(sample - len(seen), 0)]
        if cursor == "0":
            break
    sizes = [resp(port, "MEMORY", "USAGE", k, "SAMPLES", 0) for k in seen]
    sizes = [x for x in sizes if x is not None]
    return n, (sum(sizes) / len(sizes) if sizes else None)


def redis_available():
    """None when redis-server can run here, else why not."""
    if not os.access(REDIS, os.X_OK):
        return ("%s missing (apt-get install -y --no-install-recommends "
                "redis-server)" % REDIS)
    return None
