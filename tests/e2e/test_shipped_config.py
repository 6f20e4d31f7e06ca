"""The shipped conf/osprey.conf as a newcomer runs it (README: add users
with osprey-passwd, start ospreyd with this file).

Its copy in a temporary directory differs only where a test must: the
listen port (an ephemeral one), the users file and the control socket
(in the temporary directory). Every substitution must hit, so that a
changed shipped file fails here instead of being tested half.

- Two baresip phones register as alice and bob; alice calls
  sip:bob@example.test and bob's phone rings. The example route of the
  shipped file must not take the call (the old one, "^bob$" to
  127.0.0.1:5070, did: a registered bob was never called).
- A route whose user pattern matches a name in the users file is
  reported: `ospreyd -t` prints the warning (exit 0), and the daemon logs
  it at reload when such a user is added to the file.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import OSPREYD, TOP, Osprey, free_udp_port, write_users
from peers import interop
from test_interop_register import USERS, BaresipAccount, query

SHIPPED = os.path.join(TOP, "conf", "osprey.conf")


def shipped_conf(workdir, port, users, md5_only=True):
    """The shipped config, made runnable in workdir; its path."""
    with open(SHIPPED) as f:
        text = f.read()
    subs = [
        (r'(\{ transport = "udp"; address = "127\.0\.0\.1"; port = )5060;',
         r"\g<1>%d;" % port),
        (r'(\n\tusers = )"users";', r'\1"%s";' % users),
        (r'(\ncontrol = \{ socket = )"/run/osprey/ospreyd\.sock";',
         r'\1"%s";' % os.path.join(workdir, "ctl.sock")),
    ]
    if md5_only:
        # baresip 1.0 (libre 1.1) fails on any SHA-256 challenge.
        subs.append((r'(\n\talgorithms = )\[ "MD5", "SHA-256" \];',
                     r'\1[ "MD5" ];'))
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text, count=1)
        assert n == 1, "conf/osprey.conf no longer has %r" % pat
    path = os.path.join(workdir, "osprey.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


class Shipped(Osprey):
    """ospreyd on a copy of the shipped config."""

    def __init__(self, workdir, users):
        port = free_udp_port()
        uf = write_users(os.path.join(workdir, "users"), users)
        path = shipped_conf(workdir, port, uf)
        with open(path) as f:
            Osprey.__init__(self, f.read(), port, workdir)
        self.users_file = uf


@pytest.fixture
def shipped(tmp_path):
    started = []

    def start(users):
        o = Shipped(str(tmp_path), users)
        started.append(o)
        return o

    yield start
    for o in started:
        rc = o.stop()
        assert rc == 0, "ospreyd exit %r\n%s" % (rc, o.log_text())


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_shipped_config_registered_bob_gets_the_call(shipped, tmp_path):
    """README's first steps with two phones: alice and bob register with
    the shipped config, alice calls bob, and bob's phone rings."""
    wd = str(tmp_path)
    px = shipped(USERS)
    assert "matches registered user" not in px.log_text(), px.log_text()
    bob = alice = cap = None
    try:
        bob = BaresipAccount(wd, "bob", USERS["bob"], px.port, "manual")
        alice = BaresipAccount(wd, "alice", USERS["alice"], px.port,
                               "manual")
        cap = interop.Capture(wd, [px.port, bob.port, alice.port])
        for b in (bob, alice):
            assert b.wait_for("1 binding", 15), \
                "no registration\n" + b.report() + px.log_text()
        got = query(px, "bob")
        assert any(":%d" % bob.port in c for c in got), got

        # Registered: ctrl_tcp, loaded before, listens.
        reply = alice.command("dial", "sip:bob@example.test")
        assert '"ok":true' in reply.replace(" ", ""), reply
        rang = bob.wait_for("Incoming call", 12)
        why = "\n".join([bob.report(), alice.report(),
                         "==== wire\n" + cap.summary(),
                         "==== ospreyd\n" + px.log_text()[-6000:]])
        assert rang, "bob's registered phone never rang\n" + why
        proxy = "127.0.0.1:%d" % px.port
        binv = [m for m in bob.messages() if m["start"].startswith("INVITE ")
                and m["src"] == proxy]
        assert binv and binv[0]["start"].split()[1].endswith(
            ":%d" % bob.port), why
        alice.command("hangup")
        time.sleep(0.5)
        assert px.alive()
    finally:
        for b in (alice, bob):
            if b is not None:
                b.stop()
        if cap is not None:
            cap.stop()


def test_shipped_config_warns_when_a_route_shadows_a_user(shipped,
                                                          tmp_path):
    """The shipped route is a number range: with alice and bob it says
    nothing. A user named like a phone number is shadowed by it: ospreyd
    -t warns (exit 0), and a reload of the running daemon logs it."""
    wd = str(tmp_path)
    px = shipped(USERS)
    log = px.log_text()
    assert ": ready," in log and "warning" not in log, log

    chk = subprocess.run([OSPREYD, "-t", "-c", px.conf],
                         capture_output=True, text=True, timeout=10)
    assert chk.returncode == 0 and chk.stderr == "", chk

    more = dict(USERS, **{"4930123456": "did"})
    write_users(px.users_file, more)
    chk = subprocess.run([OSPREYD, "-t", "-c", px.conf],
                         capture_output=True, text=True, timeout=10)
    want = ('warning: route outbound: user pattern "^\\+?[0-9]{6,}$" '
            'matches registered user "4930123456" in %s: calls to '
            '4930123456 will take this route, not the registrar'
            % px.users_file)
    assert chk.returncode == 0, chk
    assert chk.stderr.startswith(px.conf + ":"), chk.stderr
    assert want in chk.stderr and "bob" not in chk.stderr, chk.stderr

    px.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and \
            "config reloaded" not in px.log_text():
        time.sleep(0.05)
    log = px.log_text()
    assert "config reloaded" in log, log
    warned = [ln for ln in log.splitlines() if "warning:" in ln and
              'matches registered user "4930123456"' in ln]
    assert len(warned) == 1 and "route outbound" in warned[0], log
    assert px.alive()
