"""Interop: real Debian SIP clients register with digest credentials
against ospreyd and call each other through it.

- sipsak 0.9.8.1 (usrloc mode, -a password) registers alice from a users
  file; a wrong password is refused. sipsak answers only the first
  WWW-Authenticate and knows only MD5, and it cannot resolve
  example.test, so these runs use the domain "localhost" and
  auth.algorithms = [ "MD5", "SHA-256" ].
- Net::SIP 0.835 (libnet-sip-perl): bob registers and auto-answers; alice
  registers and calls sip:bob@example.test (407 answered), holds, hangs
  up. Net::SIP skips the SHA-256 challenge and answers the MD5 one, so the
  default algorithm order is used.
- baresip 1.0.0 (libre 1.1): two accounts with auth_pass register; alice
  (driven through ctrl_tcp) calls bob (answermode=manual, rings), then
  hangs up: CANCEL, and the call ends with 487 at the caller. libre 1.1
  fails ("Function not implemented") on any SHA-256 challenge, even when
  an MD5 one follows, so these runs use auth.algorithms = [ "MD5" ].

Each peer runs under coreutils `timeout`, on 127.0.0.1 and free ports."""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import free_udp_port
from peers import interop
from sip import Endpoint, Phone

USERS = {"alice": "wonderland", "bob": "builder"}
SIPSAK = shutil.which("sipsak")


def query(proxy, user, domain="example.test"):
    """The bindings of user@domain, by an authenticated REGISTER query."""
    ep = Endpoint()
    try:
        ph = Phone(ep, proxy.addr, user, USERS[user], domain=domain)
        return ph.query()
    finally:
        ep.close()


# ---------------------------------------------------------------- sipsak

def run_sipsak(proxy, user, password, port, expires=600):
    cmd = ["timeout", "-k", "2", "15", SIPSAK, "-U", "-S", "-i",
           "-u", user, "-a", password,
           "-C", "sip:%s@127.0.0.1:%d" % (user, port),
           "-s", "sip:%s@localhost" % user,
           "-p", "127.0.0.1:%d" % proxy.port, "-l", str(port),
           "-H", "127.0.0.1", "-x", str(expires), "-vv"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return p.returncode, "$ %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr)


@pytest.mark.skipif(SIPSAK is None, reason="sipsak not installed")
def test_sipsak_registers_with_password(osprey_factory):
    px = osprey_factory(domains=("localhost",), users=USERS,
                        realm="localhost",
                        auth={"algorithms": ["MD5", "SHA-256"]})
    port = free_udp_port()
    rc, out = run_sipsak(px, "alice", USERS["alice"], port)
    assert rc == 0 and "OK" in out, out
    got = query(px, "alice", "localhost")
    contact = "sip:alice@127.0.0.1:%d" % port
    assert list(got) == [contact], "bindings %r\n%s" % (got, out)
    assert 590 <= int(got[contact]["expires"]) <= 600


@pytest.mark.skipif(SIPSAK is None, reason="sipsak not installed")
def test_sipsak_wrong_password_refused(osprey_factory):
    px = osprey_factory(domains=("localhost",), users=USERS,
                        realm="localhost",
                        auth={"algorithms": ["MD5", "SHA-256"]})
    port = free_udp_port()
    rc, out = run_sipsak(px, "alice", "not-" + USERS["alice"], port)
    assert rc != 0, "sipsak registered with a wrong password\n" + out
    assert query(px, "alice", "localhost") == {}, out


# -------------------------------------------------------------- Net::SIP

NETSIP = interop.PERL is not None and interop.have_netsip()


class PerlPeer:
    """A Net::SIP script from tests/e2e/peers, output in a file."""

    def __init__(self, workdir, name, args, secs):
        self.out_file = os.path.join(workdir, name + ".out")
        self.out = open(self.out_file, "w")
        self.cmd = ["timeout", "-k", "5", str(secs), interop.PERL,
                    interop.netsip_script(name + ".pl")] + [str(a)
                                                           for a in args]
        self.proc = subprocess.Popen(self.cmd, stdout=self.out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def text(self):
        with open(self.out_file, errors="replace") as f:
            return f.read()

    def wait_for(self, needle, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.05)
        return False

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return interop.stop_proc(self.proc)

    def stop(self):
        rc = interop.stop_proc(self.proc)
        if not self.out.closed:
            self.out.close()
        return rc

    def report(self):
        return "==== %s (exit %s)\n%s" % (" ".join(self.cmd),
                                         self.proc.returncode, self.text())


@pytest.mark.skipif(not NETSIP, reason="Net::SIP (libnet-sip-perl) missing")
def test_netsip_registered_users_call(osprey_factory, tmp_path):
    """Net::SIP bob registers (401 answered) and waits; Net::SIP alice
    registers, calls sip:bob@example.test (407 answered), the call is
    answered by bob's registered UA, BYE ends it."""
    wd = str(tmp_path)
    px = osprey_factory(users=USERS, timers=interop_timers())
    bob_port, alice_port = free_udp_port(), free_udp_port()
    cap = interop.Capture(wd, [px.port, bob_port, alice_port])
    bob = alice = None
    try:
        bob = PerlPeer(wd, "netsip_reg_uas", [
            "127.0.0.1:%d" % px.port, bob_port, "bob", USERS["bob"],
            "example.test", 20], 30)
        assert bob.wait_for("registered", 10), bob.report()
        got = query(px, "bob")
        assert any(":%d" % bob_port in c for c in got), got
        alice = PerlPeer(wd, "netsip_reg_uac", [
            "127.0.0.1:%d" % px.port, alice_port, "alice",
            USERS["alice"], "example.test", "sip:bob@example.test"], 30)
        rc = alice.wait(25)
        time.sleep(0.5)
        why = "\n".join([alice.report(), bob.report(),
                         "==== wire\n" + cap.summary()])
        assert rc == 0, why
        assert "UAC final: " in alice.text() and \
            "UAC bye: done" in alice.text(), why
        assert "call established" in bob.text(), why
        if interop.TSHARK:
            assert "|407" in cap.summary() or "407 " in cap.summary(), why
        assert px.alive()
    finally:
        for p in (alice, bob):
            if p is not None:
                p.stop()
        cap.stop()


def interop_timers():
    return {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}


# --------------------------------------------------------------- baresip

class BaresipAccount:
    """baresip with one account that registers with auth_pass through
    the proxy; ctrl_tcp to drive it; -s SIP trace on stdout."""

    def __init__(self, workdir, user, password, proxy_port, answermode,
                 secs=40):
        self.dir = os.path.join(workdir, "baresip-" + user)
        os.makedirs(self.dir, exist_ok=True)
        self.port = interop.free_udp_block(2, tcp=True)
        self.ctrl = interop.free_udp_block(1, tcp=True)
        rtp = interop.free_udp_block(20)
        wav = os.path.join(self.dir, "silence8k.wav")
        interop.make_silence_wav(wav)
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join([
                "sip_listen\t\t127.0.0.1:%d" % self.port,
                "net_interface\t\t127.0.0.1",
                "audio_player\t\taufile,%s/played.wav" % self.dir,
                "audio_source\t\taufile,%s" % wav,
                "audio_alert\t\taufile,%s/alert.wav" % self.dir,
                "rtp_ports\t\t%d-%d" % (rtp, rtp + 19),
                "module_path\t\t%s" % interop.BARESIP_MODULES,
                "module\t\t\tg711.so",
                "module\t\t\taufile.so",
                "module_app\t\taccount.so",
                "module_app\t\tmenu.so",
                "module_app\t\tctrl_tcp.so",
                "ctrl_tcp_listen\t\t127.0.0.1:%d" % self.ctrl, ""]))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write('<sip:%s@example.test>;auth_pass=%s;'
                    'outbound="sip:127.0.0.1:%d";regint=600;'
                    'answermode=%s;audio_codecs=PCMU\n' % (
                        user, password, proxy_port, answermode))
        self.out_file = os.path.join(self.dir, "baresip.out")
        self.out = open(self.out_file, "w")
        cmd = [interop.BARESIP, "-f", self.dir, "-t", str(secs), "-s"]
        if interop.STDBUF:
            cmd = [interop.STDBUF, "-oL", "-eL"] + cmd
        self.cmd = ["timeout", "-k", "5", str(secs + 10)] + cmd
        self.proc = subprocess.Popen(self.cmd, stdout=self.out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        interop.wait_udp_bound(self.port, self.proc, "baresip", timeout=15)

    def text(self):
        with open(self.out_file, errors="replace") as f:
            return interop.ANSI.sub("", f.read())

    def wait_for(self, needle, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return needle in self.text()

    def command(self, command, params=""):
        """One ctrl_tcp command (JSON in a netstring); the reply."""
        s = socket.create_connection(("127.0.0.1", self.ctrl), timeout=5)
        try:
            m = json.dumps({"command": command, "params": params,
                            "token": "t1"}).encode()
            s.sendall(str(len(m)).encode() + b":" + m + b",")
            got = b""
            deadline = time.time() + 3
            while b'"response":true' not in got.replace(b" ", b"") and \
                    time.time() < deadline:
                s.settimeout(max(0.05, deadline - time.time()))
                try:
                    data = s.recv(4096)
                except socket.timeout:
                    break
                if not data:
                    break
                got += data
            return got.decode(errors="replace")
        finally:
            s.close()

    messages = interop.Baresip.messages

    def stop(self):
        rc = interop.stop_proc(self.proc)
        if not self.out.closed:
            self.out.close()
        return rc

    def report(self):
        return "==== baresip (exit %s)\n$ %s\n%s" % (
            self.proc.returncode, " ".join(self.cmd),
            interop.tail(self.out_file, 12000))


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_registered_call_cancelled_487(osprey_factory, tmp_path):
    """alice and bob (baresip, auth_pass) register; alice calls
    sip:bob@example.test, bob's registered UA rings (manual answer);
    alice hangs up: the CANCEL reaches bob with the INVITE's branch and
    alice ends with 487 Request Terminated."""
    wd = str(tmp_path)
    px = osprey_factory(users=USERS, timers=interop_timers(),
                        auth={"algorithms": ["MD5"]})
    bob = alice = cap = None
    try:
        bob = BaresipAccount(wd, "bob", USERS["bob"], px.port, "manual")
        alice = BaresipAccount(wd, "alice", USERS["alice"], px.port, "manual")
        cap = interop.Capture(wd, [px.port, bob.port, alice.port])
        for b in (bob, alice):
            assert b.wait_for("1 binding", 15), \
                "no registration\n" + b.report()
        got = query(px, "bob")
        assert any(":%d" % bob.port in c for c in got), \
            "bob's binding missing: %r\n%s" % (got, bob.report())

        deadline = time.time() + 8
        while time.time() < deadline:
            try:
                reply = alice.command("dial", "sip:bob@example.test")
                break
            except OSError:
                time.sleep(0.2)
        assert '"ok":true' in reply.replace(" ", ""), reply
        assert bob.wait_for("Incoming call", 12), \
            bob.report() + alice.report() + cap.summary()
        time.sleep(0.5)
        alice.command("hangup")
        time.sleep(1.5)
        bob.stop()
        alice.stop()
        cap.stop()
        why = "\n".join([alice.report(), bob.report(),
                         "==== wire\n" + cap.summary()])

        proxy = "127.0.0.1:%d" % px.port
        a_msgs = alice.messages()
        invites = [m for m in a_msgs if m["start"].startswith("INVITE ")
                   and m["dst"] == proxy]
        assert len(invites) >= 2, "alice must INVITE twice (407)\n" + why
        assert any("Proxy-Authorization" in m["text"] for m in invites), why
        assert any(m["start"].startswith("SIP/2.0 407")
                   for m in a_msgs), why
        assert any(m["start"].startswith("SIP/2.0 487") and
                   "INVITE" in " ".join(interop.header(m["text"], "CSeq"))
                   for m in a_msgs if m["src"] == proxy), \
            "alice got no 487 for her INVITE\n" + why

        b_msgs = bob.messages()
        binv = [m for m in b_msgs if m["start"].startswith("INVITE ")
                and m["src"] == proxy]
        assert binv, "bob got no INVITE\n" + why
        assert binv[0]["start"].split()[1].endswith(":%d" % bob.port), \
            "INVITE not sent to bob's registered contact\n" + why
        bcan = [m for m in b_msgs if m["start"].startswith("CANCEL ")
                and m["src"] == proxy]
        assert bcan, "no CANCEL reached bob\n" + why
        assert interop.top_branch(bcan[0]["text"]) == \
            interop.top_branch(binv[-1]["text"]), why
        assert "Call established" not in bob.text(), why
        assert px.alive()
    finally:
        for b in (alice, bob):
            if b is not None:
                b.stop()
        if cap is not None:
            cap.stop()


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_registered_call_answered(osprey_factory, tmp_path):
    """alice calls bob (both baresip, registered with auth_pass); bob
    auto-answers; alice hangs up: the BYE goes through the proxy's
    Record-Route without a new challenge and bob answers it."""
    wd = str(tmp_path)
    px = osprey_factory(users=USERS, timers=interop_timers(),
                        auth={"algorithms": ["MD5"]})
    bob = alice = cap = None
    try:
        bob = BaresipAccount(wd, "bob", USERS["bob"], px.port, "auto")
        alice = BaresipAccount(wd, "alice", USERS["alice"], px.port, "manual")
        cap = interop.Capture(wd, [px.port, bob.port, alice.port])
        for b in (bob, alice):
            assert b.wait_for("1 binding", 15), \
                "no registration\n" + b.report()
        deadline = time.time() + 8
        reply = ""
        while time.time() < deadline:
            try:
                reply = alice.command("dial", "sip:bob@example.test")
                break
            except OSError:
                time.sleep(0.2)
        assert '"ok":true' in reply.replace(" ", ""), reply
        ok = alice.wait_for("Call established", 12)
        assert ok, alice.report() + bob.report() + cap.summary()
        assert bob.wait_for("Call established", 6), bob.report()
        time.sleep(0.5)
        alice.command("hangup")
        bob.wait_for("session closed", 8)
        time.sleep(1.0)
        bob.stop()
        alice.stop()
        cap.stop()
        why = "\n".join([alice.report(), bob.report(),
                         "==== wire\n" + cap.summary()])
        proxy = "127.0.0.1:%d" % px.port
        b_msgs = bob.messages()
        byes = [m for m in b_msgs if m["start"].startswith("BYE ")
                and m["src"] == proxy]
        assert byes, "no BYE reached bob through the proxy\n" + why
        a_msgs = alice.messages()
        assert not [m for m in a_msgs if m["start"].startswith("SIP/2.0 407")
                    and "BYE" in " ".join(interop.header(m["text"],
                                                         "CSeq"))], \
            "the in-dialog BYE was challenged\n" + why
        assert any(m["start"].startswith("SIP/2.0 200") and "BYE" in
                   " ".join(interop.header(m["text"], "CSeq"))
                   for m in a_msgs if m["src"] == proxy), \
            "alice got no 200 for her BYE\n" + why
        assert px.alive()
    finally:
        for b in (alice, bob):
            if b is not None:
                b.stop()
        if cap is not None:
            cap.stop()
