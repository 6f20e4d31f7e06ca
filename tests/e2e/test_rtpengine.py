"""The media section wired into ospreyd: the rtpengine client starts on
every worker, worker 0 probes the instances (a real rtpengine and a dead
port), /metrics shows their health, a reload that changes the instances
says a restart is needed.  The client itself (offer, answer, failover,
probing) is tested against a real rtpengine in tests/unit/test_rtpengine.c;
the proxy does not call it yet (doc/BEHAVIOUR.md, Media relay).

rtpengine missing fails these tests: CI installs rtpengine-daemon.
"""

import os
import socket
import subprocess
import time

import pytest

from conftest import free_udp_port, reload_conf
from test_metrics import free_tcp_port, metrics_conf, wait_for

RTPENGINE = os.environ.get("RTPENGINE", "/usr/bin/rtpengine")


def ng_ping(port, timeout=0.1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(b"p1 d7:command4:pinge", ("127.0.0.1", port))
        return b"pong" in s.recv(256)
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def rtpengine():
    """A real rtpengine on loopback: its ng port and media port range."""
    assert os.access(RTPENGINE, os.X_OK), \
        "%s missing: install rtpengine-daemon (tools/install-deps)" % RTPENGINE
    ng = free_udp_port()
    lo = 20000 + (os.getpid() % 600) * 20  # below the ephemeral ports
    p = subprocess.Popen(
        [RTPENGINE, "--config-file=none", "--foreground", "--log-stderr",
         "--table=-1", "--no-fallback", "--interface=127.0.0.1",
         "--listen-ng=127.0.0.1:%d" % ng, "--port-min=%d" % lo,
         "--port-max=%d" % (lo + 19), "--delete-delay=0",
         "--num-threads=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not ng_ping(ng):
        assert p.poll() is None, "rtpengine exited %r" % p.returncode
        assert time.monotonic() < deadline, "rtpengine silent for 5 s"
    yield ng
    p.kill()
    p.wait()


def media_conf(instances, timeout=100, tries=1, probe=1):
    return ('media = { relay = "nat"; rtpengine = ( %s ); '
            "rtpengine_timeout = %d; rtpengine_tries = %d; "
            "probe_interval = %d; };" % (
                ", ".join('"udp:127.0.0.1:%d"' % p for p in instances),
                timeout, tries, probe))


def up(s, port):
    return s.get("osprey_rtpengine_up", instance="udp:127.0.0.1:%d" % port)


def test_probe_health_in_metrics(osprey_factory, rtpengine):
    """Worker 0 pings each instance at start: the real one stays up, the
    dead port is marked down after its one 100 ms try, and is probed each
    second after that (the requests counter moves)."""
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))		# bound, never read: no answer
    dport = dead.getsockname()[1]
    mport = free_tcp_port()
    o = osprey_factory(extra=metrics_conf(mport) + "\n" +
                       media_conf([rtpengine, dport]))
    s = wait_for(mport, lambda s: up(s, dport) == 0, 3)
    assert up(s, rtpengine) == 1
    assert up(s, dport) == 0
    assert s.get("osprey_rtpengine_instances_up") == 1
    assert s.get("osprey_rtpengine_timeouts_total") >= 1
    before = s.get("osprey_rtpengine_requests_total")
    s = wait_for(mport, lambda s: s.get("osprey_rtpengine_requests_total")
                 >= before + 2, 4)
    assert s.get("osprey_rtpengine_requests_total") >= before + 2
    assert "rtpengine udp:127.0.0.1:%d: down" % dport in o.log_text()
    dead.close()


def test_reload_instances_need_restart(osprey_factory, rtpengine):
    """The timings reload; another instance list waits for a restart."""
    o = osprey_factory(extra=media_conf([rtpengine]))
    text = open(o.conf).read()
    reload_conf(o, text.replace("rtpengine_timeout = 100",
                                "rtpengine_timeout = 200"))
    assert "media.rtpengine: takes effect" not in o.log_text()
    other = free_udp_port()
    reload_conf(o, text.replace('"udp:127.0.0.1:%d"' % rtpengine,
                                '"udp:127.0.0.1:%d"' % other),
                logged="reload: media.rtpengine changes take effect at "
                "the next restart")
