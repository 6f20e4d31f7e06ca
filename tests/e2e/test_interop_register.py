"""Interop: real Debian SIP clients register with digest credentials
against ospreyd and call each other through it.

With the shipped default (auth.algorithms = MD5 alone) every client
registers. Which of them cope when SHA-256 is offered too, measured on
Debian 12 and asserted by test_register_sha256_offered (osprey.conf(5)
says the same):

  offered          baresip  sipsak  SIPp  linphonec  Net::SIP
  MD5 (default)    yes      yes     yes   yes        yes
  MD5, SHA-256     no       yes     yes   yes        yes
  SHA-256, MD5     no       no      no    yes        yes
  SHA-256          no       no      no    yes        no

- baresip 1.0.0 (libre 1.1) gives up ("Register: Function not
  implemented") on any SHA-256 challenge, even when an MD5 one is there.
- sipsak 0.9.8.1 (usrloc mode, -a password) answers only the first
  WWW-Authenticate and knows only MD5 ("unsupported authentication
  algorithm"). It cannot resolve example.test, so its runs use the
  domain "localhost".
- SIPp 3.6.1 ([authentication], tests/bench/reg_auth.xml) reads only the
  first challenge, MD5 only ("authentication must use MD5 or AKAv1-MD5").
- linphonec 5.1.65 answers the first challenge, MD5 or SHA-256.
- Net::SIP 0.835 (libnet-sip-perl) answers the MD5 challenge wherever it
  stands, and nothing else.

Then calls between registered clients: Net::SIP alice calls Net::SIP bob
(407 answered); baresip alice calls baresip bob, who rings and is
cancelled (487) or answers (BYE through the Record-Route, unchallenged).

Each peer runs under coreutils `timeout`, on 127.0.0.1 and free ports."""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import TOP, free_udp_port
from peers import interop
from sip import Endpoint, Phone

USERS = {"alice": "wonderland", "bob": "builder"}
SIPSAK = shutil.which("sipsak")
LINPHONEC = shutil.which("linphonec")
NETSIP = interop.PERL is not None and interop.have_netsip()
REG_AUTH_XML = os.path.join(TOP, "tests", "bench", "reg_auth.xml")


def query(proxy, user, domain="example.test"):
    """The bindings of user@domain, by an authenticated REGISTER query."""
    ep = Endpoint()
    try:
        ph = Phone(ep, proxy.addr, user, USERS[user], domain=domain)
        return ph.query()
    finally:
        ep.close()


def interop_timers():
    return {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}


def wait_text(text, needles, timeout, proc=None):
    """The first of needles to appear in text() within timeout, or None."""
    deadline = time.time() + timeout
    while True:
        got = text()
        for n in needles:
            if n in got:
                return n
        if time.time() >= deadline or (proc is not None and
                                       proc.poll() is not None):
            return None
        time.sleep(0.05)


class PeerProc:
    """A peer process under `timeout`, output (stdout and stderr) in a
    file; stopped by its own pid."""

    def start(self, cmd, out_file, secs, stdin=subprocess.DEVNULL,
              cwd=None, env=None):
        self.out_file = out_file
        self.out = open(out_file, "w")
        self.cmd = ["timeout", "-k", "5", str(secs)] + [str(a) for a in cmd]
        self.proc = subprocess.Popen(self.cmd, stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=stdin,
                                     cwd=cwd, env=env)

    def text(self):
        with open(self.out_file, errors="replace") as f:
            return interop.ANSI.sub("", f.read())

    def wait_for(self, needle, timeout):
        return wait_text(self.text, [needle], timeout, self.proc) is not None

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
                                         self.proc.returncode,
                                         interop.tail(self.out_file, 12000))


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


def register_sipsak(px, wd, user, domain, bindings):
    port = free_udp_port()
    rc, out = run_sipsak(px, user, USERS[user], port)
    return rc == 0 and "OK" in out, port, bindings(), out


# ---------------------------------------------------------------- SIPp

def register_sipp(px, wd, user, domain, bindings):
    """tests/bench/reg_auth.xml, one call: REGISTER, 401, REGISTER with
    SIPp's own answer ([authentication]), 200."""
    inf = os.path.join(wd, "sipp_users.csv")
    with open(inf, "w") as f:
        f.write("SEQUENTIAL\n%s;%s;[authentication username=%s "
                "password=%s]\n" % (user, USERS[user], user, USERS[user]))
    port = free_udp_port()
    s = interop.Sipp(wd, "reg", REG_AUTH_XML,
                     ["127.0.0.1:%d" % px.port, "-i", "127.0.0.1",
                      "-p", port, "-m", 1, "-inf", inf,
                      "-auth_uri", domain], timeout_s=10)
    rc = s.wait()
    return rc == 0, port, bindings(), s.report()


# -------------------------------------------------------------- linphonec

class Linphonec(PeerProc):
    """linphonec 5.1 driven on stdin: its rc file binds UDP only on a
    free port (TCP and TLS 0: off), no video; HOME is its own folder, so
    nothing of the user's linphone is read or written."""

    def __init__(self, workdir, secs=40):
        self.home = os.path.join(workdir, "linphonec")
        os.makedirs(os.path.join(self.home, ".local", "share", "linphone"),
                    exist_ok=True)
        self.port = free_udp_port()
        rtp = interop.free_udp_block(10)
        rc = os.path.join(self.home, "linphonerc")
        with open(rc, "w") as f:
            f.write("[sip]\nsip_port=%d\nsip_tcp_port=0\nsip_tls_port=0\n"
                    "[rtp]\naudio_rtp_port=%d-%d\n[misc]\nenable_video=0\n"
                    % (self.port, rtp, rtp + 9))
        cmd = [LINPHONEC, "-c", rc, "-d", "5",
               "-l", os.path.join(self.home, "linphonec.log")]
        if interop.STDBUF:
            cmd = [interop.STDBUF, "-oL", "-eL"] + cmd
        self.start(cmd, os.path.join(self.home, "linphonec.out"), secs,
                   stdin=subprocess.PIPE, cwd=self.home,
                   env=dict(os.environ, HOME=self.home))
        interop.wait_udp_bound(self.port, self.proc, "linphonec", 15)
        self.command("soundcard use files")     # no sound card wanted

    def command(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def register(self, user, domain, proxy_port, password, timeout=10):
        """register, then `status register` until it says registered."""
        self.command("register sip:%s@%s sip:127.0.0.1:%d %s" % (
            user, domain, proxy_port, password))
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            self.command("status register")
            if self.wait_for("registered, identity=", 0.5):
                return True
        return False

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return PeerProc.stop(self)

    def report(self):
        return PeerProc.report(self) + "\n---- log (tail)\n" + \
            interop.tail(os.path.join(self.home, "linphonec.log"), 6000)


def register_linphonec(px, wd, user, domain, bindings):
    lp = Linphonec(wd)
    try:
        ok = lp.register(user, domain, px.port, USERS[user])
        got = bindings()
    finally:
        lp.stop()
    return ok, lp.port, got, lp.report()


# -------------------------------------------------------------- Net::SIP

class PerlPeer(PeerProc):
    """A Net::SIP script from tests/e2e/peers, output in a file."""

    def __init__(self, workdir, name, args, secs):
        self.start([interop.PERL, interop.netsip_script(name + ".pl")] +
                   list(args), os.path.join(workdir, name + ".out"), secs)


def register_netsip(px, wd, user, domain, bindings):
    port = free_udp_port()
    p = PerlPeer(wd, "netsip_reg_uas", [
        "127.0.0.1:%d" % px.port, port, user, USERS[user], domain, 1], 20)
    p.wait(15)
    p.stop()
    return "registered expires=" in p.text(), port, bindings(), p.report()


# --------------------------------------------------------------- baresip

class BaresipAccount(PeerProc):
    """baresip with one account that registers with auth_pass through
    the proxy; ctrl_tcp to drive it; -s SIP trace on stdout."""

    def __init__(self, workdir, user, password, proxy_port, answermode,
                 secs=40, domain="example.test"):
        self.dir = os.path.join(workdir, "baresip-" + user)
        os.makedirs(self.dir, exist_ok=True)
        self.user = user
        self.domain = domain
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
            f.write('<sip:%s@%s>;auth_pass=%s;'
                    'outbound="sip:127.0.0.1:%d";regint=600;'
                    'answermode=%s;audio_codecs=PCMU\n' % (
                        user, domain, password, proxy_port, answermode))
        cmd = [interop.BARESIP, "-f", self.dir, "-t", secs, "-s"]
        if interop.STDBUF:
            cmd = [interop.STDBUF, "-oL", "-eL"] + cmd
        self.start(cmd, os.path.join(self.dir, "baresip.out"), secs + 10,
                   cwd=self.dir)
        interop.wait_udp_bound(self.port, self.proc, "baresip", timeout=15)

    def registration(self, timeout=15):
        """True once registered ("1 binding"), False when baresip gave
        up ("Register: <error>") or on timeout."""
        got = wait_text(self.text, ["1 binding", "Register: "], timeout,
                        self.proc)
        return got == "1 binding"

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

    def dial(self, uri):
        """dial through ctrl_tcp, retried while the control port is not
        up yet; asserts baresip took it."""
        deadline = time.time() + 8
        reply = ""
        while time.time() < deadline:
            try:
                reply = self.command("dial", uri)
                break
            except OSError:
                time.sleep(0.2)
        assert '"ok":true' in reply.replace(" ", ""), reply

    messages = interop.Baresip.messages


def register_baresip(px, wd, user, domain, bindings):
    b = BaresipAccount(wd, user, USERS[user], px.port, "manual", secs=20,
                       domain=domain)
    try:
        ok = b.registration(10)
        got = bindings()
    finally:
        b.stop()
    return ok, b.port, got, b.report()


# -------------------------------------------------- who registers, when
#
# REGISTER[peer](px, workdir, user, domain, bindings) lets peer register
# user@domain through px; bindings() is called while the peer still
# holds its registration. Returns (the peer says registered, its port,
# what bindings() returned, a report).

REGISTER = {"baresip": register_baresip, "sipsak": register_sipsak,
            "sipp": register_sipp, "linphonec": register_linphonec,
            "netsip": register_netsip}
MISSING = {"baresip": interop.BARESIP is None, "sipsak": SIPSAK is None,
           "sipp": interop.SIPP is None, "linphonec": LINPHONEC is None,
           "netsip": not NETSIP}
# The peer's own words when it gives up on what it was offered.
REFUSAL = {"baresip": "Register: Function not implemented",
           "sipsak": "unsupported authentication algorithm",
           "sipp": "authentication must use MD5 or AKAv1-MD5",
           "netsip": "register failed: Failed with code 401"}
# auth.algorithms -> the peers that register (the table above).
COPES = {
    "MD5,SHA-256": {"sipsak", "sipp", "linphonec", "netsip"},
    "SHA-256,MD5": {"linphonec", "netsip"},
    "SHA-256": {"linphonec"},
}


def peer_params():
    return [pytest.param(p, marks=pytest.mark.skipif(
        MISSING[p], reason="%s not installed" % p)) for p in REGISTER]


def register_peer(osprey_factory, tmp_path, peer, auth=None):
    """Start ospreyd (auth settings as given, else the defaults), let
    peer register alice; (registered, alice's bindings, report)."""
    domain = "localhost" if peer == "sipsak" else "example.test"
    px = osprey_factory(domains=(domain,), users=USERS, realm=domain,
                        auth=auth, timers=interop_timers())
    ok, port, got, out = REGISTER[peer](
        px, str(tmp_path), "alice", domain,
        lambda: query(px, "alice", domain))
    mine = [c for c in got if ":%d" % port in c]
    return ok, mine, "bindings %r\n%s" % (got, out)


@pytest.mark.parametrize("peer", peer_params())
def test_register_with_default_config(osprey_factory, tmp_path, peer):
    """No auth.algorithms: every client here registers alice, and the
    registrar holds its binding."""
    ok, mine, why = register_peer(osprey_factory, tmp_path, peer)
    assert ok, why
    assert len(mine) == 1, why


@pytest.mark.parametrize("algs", sorted(COPES))
@pytest.mark.parametrize("peer", peer_params())
def test_register_sha256_offered(osprey_factory, tmp_path, peer, algs):
    """SHA-256 offered too (or alone): the clients in COPES register,
    the others give up with their own words and leave no binding.  A
    client that learns SHA-256 makes this fail: update the table, the
    docstring and osprey.conf(5)."""
    ok, mine, why = register_peer(osprey_factory, tmp_path, peer,
                                  auth={"algorithms": algs.split(",")})
    if peer in COPES[algs]:
        assert ok and len(mine) == 1, why
    else:
        assert not ok and mine == [], why
        assert REFUSAL[peer] in why, why


@pytest.mark.skipif(SIPSAK is None, reason="sipsak not installed")
def test_sipsak_wrong_password_refused(osprey_factory):
    px = osprey_factory(domains=("localhost",), users=USERS,
                        realm="localhost")
    port = free_udp_port()
    rc, out = run_sipsak(px, "alice", "not-" + USERS["alice"], port)
    assert rc != 0, "sipsak registered with a wrong password\n" + out
    assert query(px, "alice", "localhost") == {}, out


# ------------------------------------------------------------------ calls

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


class BaresipPair:
    """ospreyd with the default auth settings, baresip bob (bob_mode)
    and alice registered through it; alice dials bob. Stopped with
    stop(), which returns the failure report."""

    def __init__(self, osprey_factory):
        self.px = osprey_factory(users=USERS, timers=interop_timers())
        self.proxy = "127.0.0.1:%d" % self.px.port
        self.bob = self.alice = self.cap = None

    def start(self, wd, bob_mode):
        self.bob = BaresipAccount(wd, "bob", USERS["bob"], self.px.port,
                                  bob_mode)
        self.alice = BaresipAccount(wd, "alice", USERS["alice"],
                                    self.px.port, "manual")
        self.cap = interop.Capture(wd, [self.px.port, self.bob.port,
                                        self.alice.port])
        for b in (self.bob, self.alice):
            assert b.registration(15), "no registration\n" + b.report()
        got = query(self.px, "bob")
        assert any(":%d" % self.bob.port in c for c in got), \
            "bob's binding missing: %r\n%s" % (got, self.bob.report())
        self.alice.dial("sip:bob@example.test")

    def report(self):
        return "\n".join([self.alice.report(), self.bob.report(),
                          "==== wire\n" + self.cap.summary()])

    def stop(self):
        for p in (self.alice, self.bob):
            if p is not None:
                p.stop()
        if self.cap is not None:
            self.cap.stop()
        return self.report()

    def from_proxy(self, who, start):
        """Messages `who` got from the proxy whose start line begins so."""
        return [m for m in who.messages() if m["src"] == self.proxy and
                m["start"].startswith(start)]


def cseq_method(m):
    return " ".join(interop.header(m["text"], "CSeq"))


@pytest.fixture
def baresip_pair(osprey_factory, tmp_path):
    made = []

    def make(bob_mode):
        made.append(BaresipPair(osprey_factory))
        made[-1].start(str(tmp_path), bob_mode)
        return made[-1]

    yield make
    for p in made:
        p.stop()


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_registered_call_cancelled_487(baresip_pair):
    """alice and bob (baresip, auth_pass) register; alice calls
    sip:bob@example.test, bob's registered UA rings (manual answer);
    alice hangs up: the CANCEL reaches bob with the INVITE's branch and
    alice ends with 487 Request Terminated."""
    pair = baresip_pair("manual")
    alice, bob = pair.alice, pair.bob
    assert bob.wait_for("Incoming call", 12), pair.report()
    time.sleep(0.5)
    alice.command("hangup")
    time.sleep(1.5)
    why = pair.stop()

    invites = [m for m in alice.messages() if m["start"].startswith(
        "INVITE ") and m["dst"] == pair.proxy]
    assert len(invites) >= 2, "alice must INVITE twice (407)\n" + why
    assert any("Proxy-Authorization" in m["text"] for m in invites), why
    assert pair.from_proxy(alice, "SIP/2.0 407"), why
    assert any("INVITE" in cseq_method(m)
               for m in pair.from_proxy(alice, "SIP/2.0 487")), \
        "alice got no 487 for her INVITE\n" + why

    binv = pair.from_proxy(bob, "INVITE ")
    assert binv, "bob got no INVITE\n" + why
    assert binv[0]["start"].split()[1].endswith(":%d" % bob.port), \
        "INVITE not sent to bob's registered contact\n" + why
    bcan = pair.from_proxy(bob, "CANCEL ")
    assert bcan, "no CANCEL reached bob\n" + why
    assert interop.top_branch(bcan[0]["text"]) == \
        interop.top_branch(binv[-1]["text"]), why
    assert "Call established" not in bob.text(), why
    assert pair.px.alive()


@pytest.mark.skipif(interop.BARESIP is None, reason="baresip not installed")
def test_baresip_registered_call_answered(baresip_pair):
    """alice calls bob (both baresip, registered with auth_pass); bob
    auto-answers; alice hangs up: the BYE goes through the proxy's
    Record-Route without a new challenge and bob answers it."""
    pair = baresip_pair("auto")
    alice, bob = pair.alice, pair.bob
    assert alice.wait_for("Call established", 12), pair.report()
    assert bob.wait_for("Call established", 6), pair.report()
    time.sleep(0.5)
    alice.command("hangup")
    bob.wait_for("session closed", 8)
    time.sleep(1.0)
    why = pair.stop()

    assert pair.from_proxy(bob, "BYE "), \
        "no BYE reached bob through the proxy\n" + why
    assert not [m for m in alice.messages() if m["start"].startswith(
        "SIP/2.0 407") and "BYE" in cseq_method(m)], \
        "the in-dialog BYE was challenged\n" + why
    assert any("BYE" in cseq_method(m)
               for m in pair.from_proxy(alice, "SIP/2.0 200")), \
        "alice got no 200 for her BYE\n" + why
    assert pair.px.alive()
