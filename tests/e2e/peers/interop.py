"""Run real SIP peers (SIPp, baresip, Net::SIP) against ospreyd on loopback.

Every peer runs under coreutils `timeout`, binds only 127.0.0.1 and ephemeral
ports, and is stopped through the process id we started. A `Capture`
records the test's own ports on `lo` with tshark (when available) so that a
failure report can show the messages on the wire.
"""

import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import struct
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SIPP_DIR = os.path.join(TOP, "tests", "sipp")

SIPP = shutil.which("sipp")
BARESIP = shutil.which("baresip")
TSHARK = shutil.which("tshark")
PERL = shutil.which("perl")
STDBUF = shutil.which("stdbuf")
BARESIP_MODULES = "/usr/lib/baresip/modules"


# ---------------------------------------------------------------- ports

def _bindable(port, kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_udp_block(count, tcp=False, tries=200):
    """First port of `count` consecutive free UDP (and TCP) ports, even."""
    for _ in range(tries):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1] & ~1
        s.close()
        if base + count > 65535 or base < 1024:
            continue
        ok = all(_bindable(base + i, socket.SOCK_DGRAM) for i in range(count))
        if ok and tcp:
            ok = all(_bindable(base + i, socket.SOCK_STREAM)
                     for i in range(count))
        if ok:
            return base
    raise RuntimeError("no block of %d free ports" % count)


def udp_bound(port):
    """True if some socket is bound to UDP 127.0.0.1:port or *:port.

    Reads /proc/net/udp rather than probing with bind(), which could race
    with the peer that is starting up."""
    want = ":%04X" % port
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    local = line.split()[1]
                    if local.endswith(want):
                        return True
        except OSError:
            pass
    return False


def tcp_listening(port):
    """True if some socket listens on TCP 127.0.0.1:port or *:port
    (/proc/net/tcp state 0A), without connecting to it."""
    want = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def wait_udp_bound(port, proc, what, timeout=10.0, tcp=False):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (tcp_listening(port) if tcp else udp_bound(port)):
            return
        if proc.poll() is not None:
            raise RuntimeError("%s exited (%s) before binding UDP port %d"
                               % (what, proc.returncode, port))
        time.sleep(0.02)
    raise RuntimeError("%s did not bind UDP port %d within %.0fs"
                       % (what, port, timeout))


def stop_proc(proc, sig=signal.SIGTERM, wait=5):
    """Stop one process we started, by its pid; returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def tail(path, limit=6000):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return "(no %s)" % os.path.basename(path)
    if len(text) > limit:
        text = "...\n" + text[-limit:]
    return text


# ---------------------------------------------------------------- tshark

class Capture:
    """tshark on lo, limited to the given UDP ports; best effort."""

    def __init__(self, workdir, ports, max_s=180):
        self.pcap = os.path.join(workdir, "lo.pcap")
        self.ports = sorted(set(ports))
        self.proc = None
        self.note = ""
        if not TSHARK or os.environ.get("OSPREY_INTEROP_NO_PCAP"):
            self.note = "(no capture: tshark unavailable or disabled)"
            return
        flt = " or ".join("udp port %d" % p for p in self.ports)
        self.errpath = os.path.join(workdir, "tshark.err")
        self.errf = open(self.errpath, "w")
        self.proc = subprocess.Popen(
            ["timeout", "-s", "INT", "-k", "5", str(max_s), TSHARK, "-q",
             "-i", "lo", "-f", flt, "-w", self.pcap],
            stdout=subprocess.DEVNULL, stderr=self.errf)
        deadline = time.time() + 10
        while time.time() < deadline:
            if "Capturing on" in tail(self.errpath):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.note = "(no capture: %s)" % tail(self.errpath, 500).strip()
        stop_proc(self.proc, signal.SIGINT)
        self.proc = None

    def stop(self):
        if self.proc is not None:
            time.sleep(0.2)     # let the last datagrams reach the buffer
            stop_proc(self.proc, signal.SIGINT)
            self.proc = None
            self.errf.close()

    def summary(self, limit=200):
        """One line per SIP message: time, ports, start line, CSeq, branch."""
        self.stop()
        if not os.path.exists(self.pcap):
            return self.note or "(no capture)"
        fields = ["frame.time_relative", "udp.srcport", "udp.dstport",
                  "sip.Request-Line", "sip.Status-Line", "sip.CSeq",
                  "sip.Via.branch"]
        cmd = ["timeout", "30", TSHARK, "-r", self.pcap, "-Y", "sip",
               "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
               "-E", "aggregator=,"]
        for f in fields:
            cmd += ["-e", f]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 timeout=40).stdout
        except (OSError, subprocess.SubprocessError) as e:
            return "(tshark -r failed: %s)" % e
        lines = out.splitlines()
        if len(lines) > limit:
            lines = lines[:limit // 2] + ["..."] + lines[-limit // 2:]
        return "time|src|dst|request|status|cseq|via branches\n" + \
            "\n".join(lines)


# ---------------------------------------------------------------- SIPp

def scenario(name):
    return os.path.join(SIPP_DIR, name)


class Sipp:
    """One SIPp process running an XML scenario from tests/sipp/.

    Always: -nostdin, local IPs 127.0.0.1, explicit control and media ports
    (SIPp binds them even when unused), error/message/log traces in
    `workdir`, a global -timeout with -timeout_error, and a `timeout`
    wrapper. Exit code 0 means every call of the scenario succeeded."""

    # SIPp's exit code when it cannot bind one of its sockets (-2): a port
    # picked free was taken by another test before SIPp bound it
    BIND_FAILED = 254
    BIND_RETRIES = 3

    def __init__(self, workdir, name, scn, args, timeout_s=20,
                 local_port_free=False):
        """local_port_free: the -p port may be replaced by another free
        port when SIPp could not bind it (a caller's own port)."""
        self.name = name
        self.scenario = scn
        self.workdir = workdir
        base = os.path.join(workdir, name)
        self.err_file = base + "_errors.log"
        self.msg_file = base + "_messages.log"
        self.log_file = base + "_logs.log"
        self.out_file = base + ".out"
        self.timeout_s = timeout_s
        self.args = [str(a) for a in args]
        self.local_port_free = local_port_free
        self.bind_retries = 0
        self.out = None
        self._start()

    def _start(self):
        cport = free_udp_block(1)
        mport = free_udp_block(4)
        self.cmd = (["timeout", "-k", "5", str(self.timeout_s + 15), SIPP]
                    + self.args
                    + ["-sf", scenario(self.scenario), "-nostdin",
                       "-ci", "127.0.0.1", "-cp", str(cport),
                       "-mi", "127.0.0.1", "-mp", str(mport),
                       "-trace_err", "-error_file", self.err_file,
                       "-trace_msg", "-message_file", self.msg_file,
                       "-trace_logs", "-log_file", self.log_file,
                       "-timeout", "%ds" % self.timeout_s, "-timeout_error"])
        if self.out is not None and not self.out.closed:
            self.out.close()
        self.out = open(self.out_file, "a")
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir,
                                     stdout=self.out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def rebind(self):
        """After SIPp exited because a port it was given had been taken in
        the meantime: start it again on freshly picked ports. False when
        the retries are used up."""
        if self.bind_retries >= self.BIND_RETRIES:
            return False
        self.bind_retries += 1
        if self.local_port_free and "-p" in self.args:
            i = self.args.index("-p") + 1
            self.args[i] = str(free_udp_block(1, tcp=True))
        self.out.write("\n==== SIPp could not bind a port; started again "
                       "(%d)\n" % self.bind_retries)
        self.out.flush()
        self._start()
        return True

    def wait(self, extra_s=20, limit=None):
        """Exit code; stops SIPp after `limit` seconds if given. A SIPp
        that could not bind its ports ran no call: it is started again."""
        while True:
            try:
                rc = self.proc.wait(limit if limit is not None
                                    else self.timeout_s + extra_s)
            except subprocess.TimeoutExpired:
                rc = stop_proc(self.proc)
            if rc != self.BIND_FAILED or not self.rebind():
                break
        self.out.close()
        return rc

    def stop(self):
        rc = stop_proc(self.proc)
        if not self.out.closed:
            self.out.close()
        return rc

    def report(self):
        return "\n".join([
            "==== SIPp %s (%s): exit %s" % (self.name, self.scenario,
                                            self.proc.returncode),
            "$ " + " ".join(self.cmd),
            "---- errors log:", tail(self.err_file),
            "---- <log> actions:", tail(self.log_file, 3000),
            "---- screen (tail):", tail(self.out_file, 2500),
        ])


def uas(workdir, scn, port, proxy_port, calls=1, extra=(), timeout_s=20,
        transport="u1"):
    """A SIPp UAS on 127.0.0.1:port; returns once it is bound.
    transport: SIPp's -t, "u1" (UDP) or "t1" (one TCP connection)."""
    s = Sipp(workdir, "uas", scn,
             ["-i", "127.0.0.1", "-p", port, "-m", calls, "-t", transport,
              "-set", "proxy_port", proxy_port] + list(extra),
             timeout_s=timeout_s)
    while True:
        try:
            wait_udp_bound(port, s.proc, "SIPp UAS", tcp=transport != "u1")
            return s
        except RuntimeError:
            # its control or media port taken since it was picked
            if s.proc.returncode != Sipp.BIND_FAILED or not s.rebind():
                raise


def uac(workdir, scn, proxy_port, port, calls=1, rate=None, service="bob",
        extra=(), timeout_s=20, transport="u1"):
    args = ["127.0.0.1:%d" % proxy_port, "-s", service,
            "-i", "127.0.0.1", "-p", port, "-m", calls, "-t", transport]
    if rate:
        args += ["-r", rate, "-rp", "1000"]
    else:
        args += ["-l", 1]
    return Sipp(workdir, "uac", scn, args + list(extra), timeout_s=timeout_s,
                local_port_free=True)


# ---------------------------------------------------------------- baresip

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make_tone_wav(path, seconds=5, rate=8000, hz=440, amp=8000):
    """16-bit mono PCM sine (a source the callee's recording can be told
    from silence by)."""
    import math
    w = wave.open(path, "wb")
    try:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", int(amp * math.sin(2 * math.pi * hz * i /
                                                 rate)))
            for i in range(int(rate * seconds))))
    finally:
        w.close()


def make_silence_wav(path, seconds=5, rate=8000):
    """16-bit mono PCM silence (aufile needs 8 kHz for PCMU)."""
    w = wave.open(path, "wb")
    try:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(rate * seconds))
    finally:
        w.close()


class Baresip:
    """baresip as a UA.

    By default a UAS with an account that never registers (regint=0).
    `answermode` is "auto" (180 then 200, handles BYE) or "manual" (180,
    then waits; answers a CANCEL with 487). Runs with -s (SIP trace on
    stdout) so the messages it exchanged can be asserted on.

    With `proxy_port` the account registers with the proxy (auth_pass
    `password`, address-of-record user@domain) and sends every request
    there (outbound=); `transport` ("udp", "tcp" or "tls") goes into the
    account's URI and its outbound proxy, so that REGISTER, INVITE and the
    requests of the dialog all take that transport.  `cafile` is the CA
    (sip_cafile) that TLS connections use; `ctrl` adds ctrl_tcp (command,
    dial) on a port of its own."""

    def __init__(self, workdir, user="bob", answermode="auto", secs=40,
                 proxy_port=None, password=None, domain="example.test",
                 transport="udp", cafile=None, ctrl=False, regint=600,
                 source_wav=None):
        self.dir = os.path.join(workdir, "baresip-" + user)
        os.makedirs(self.dir, exist_ok=True)
        # UDP+TCP on sip port, TLS on sip port + 1: keep all three free.
        self.port = free_udp_block(2, tcp=True)
        self.ctrl = free_udp_block(1, tcp=True) if ctrl else None
        rtp = free_udp_block(20)
        self.rtp = (rtp, rtp + 19)     # its RTP/RTCP ports
        self.user = user
        self.transport = transport
        wav = source_wav or os.path.join(self.dir, "silence8k.wav")
        if source_wav is None:
            make_silence_wav(wav)
        more = []
        if cafile:
            more.append("sip_cafile\t\t%s" % cafile)
        if self.ctrl:
            more += ["module_app\t\tctrl_tcp.so",
                     "ctrl_tcp_listen\t\t127.0.0.1:%d" % self.ctrl]
        with open(os.path.join(HERE, "baresip_config.template")) as f:
            tmpl = string.Template(f.read())
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(tmpl.substitute(
                sip_listen="127.0.0.1:%d" % self.port, dir=self.dir,
                source=wav, rtp_lo=rtp, rtp_hi=rtp + 19,
                module_path=BARESIP_MODULES, more="\n".join(more)))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            if proxy_port is None:
                f.write("<sip:%s@127.0.0.1>;regint=0;answermode=%s;"
                        "audio_codecs=PCMU\n" % (user, answermode))
            else:
                tp = "" if transport == "udp" else \
                    ";transport=%s" % transport
                f.write('<sip:%s@%s%s>;auth_pass=%s;'
                        'outbound="sip:127.0.0.1:%d%s";regint=%d;'
                        'answermode=%s;audio_codecs=PCMU\n' % (
                            user, domain, tp, password, proxy_port, tp,
                            regint, answermode))
        self.out_file = os.path.join(self.dir, "baresip.out")
        self.out = open(self.out_file, "w")
        cmd = [BARESIP, "-f", self.dir, "-t", str(secs), "-s"]
        if STDBUF:
            cmd = [STDBUF, "-oL", "-eL"] + cmd
        self.cmd = ["timeout", "-k", "5", str(secs + 10)] + cmd
        self.proc = subprocess.Popen(self.cmd, stdout=self.out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        wait_udp_bound(self.port, self.proc, "baresip", timeout=15)
        # Bound is not quite "ready": give it a moment to finish start-up.
        deadline = time.time() + 5
        while time.time() < deadline and \
                "baresip is ready" not in self.text():
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.proc.poll() is not None:
            raise RuntimeError("baresip exited %s:\n%s" % (
                self.proc.returncode, self.text()))

    def text(self):
        with open(self.out_file, errors="replace") as f:
            return ANSI.sub("", f.read())

    def wait_for(self, needles, timeout):
        """The first of needles (a string or a list) that baresip prints
        within timeout seconds, or None (also when it exits)."""
        if isinstance(needles, str):
            needles = [needles]
        deadline = time.time() + timeout
        while True:
            got = self.text()
            for n in needles:
                if n in got:
                    return n
            if time.time() >= deadline or self.proc.poll() is not None:
                return None
            time.sleep(0.05)

    def registration(self, timeout=15):
        """True once registered ("1 binding"), False when baresip gave
        up ("Register: <error>") or on timeout."""
        return self.wait_for(["1 binding", "Register: "],
                             timeout) == "1 binding"

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
        up yet; raises unless baresip took it."""
        deadline = time.time() + 8
        reply = ""
        while time.time() < deadline:
            try:
                reply = self.command("dial", uri)
                break
            except OSError:
                time.sleep(0.2)
        if '"ok":true' not in reply.replace(" ", ""):
            raise RuntimeError("baresip refused dial %s: %s" % (uri, reply))

    def stop(self):
        rc = stop_proc(self.proc)
        if not self.out.closed:
            self.out.close()
        return rc

    def messages(self):
        """SIP trace blocks (-s): dicts with transport, src, dst, start
        (line), text.

        baresip prints each message as ESC[36;1m#\nUDP a -> b\n...ESC[;m."""
        with open(self.out_file, errors="replace") as f:
            raw = f.read()
        out = []
        for m in re.finditer(
                r"#[ \t]*\r?\n(UDP|TCP|TLS) (\S+) -> (\S+)\r?\n(.*?)"
                r"(?:\x1b\[;m|\Z)", raw, re.S):
            body = ANSI.sub("", m.group(4)).replace("\r\n", "\n")
            out.append({"transport": m.group(1), "src": m.group(2),
                        "dst": m.group(3),
                        "start": body.split("\n", 1)[0].strip(),
                        "text": body})
        return out

    def report(self):
        return "==== baresip (exit %s)\n$ %s\n%s" % (
            self.proc.returncode, " ".join(self.cmd), tail(self.out_file,
                                                            12000))


def header(text, name):
    """Values of header `name` (case-insensitive) in a message's text."""
    vals = []
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            if k.strip().lower() == name.lower():
                vals.append(v.strip())
    return vals


def top_branch(text):
    vias = header(text, "Via") + header(text, "v")
    if not vias:
        return None
    m = re.search(r";\s*branch=([^;,\s]+)", vias[0])
    return m.group(1) if m else None


# ---------------------------------------------------------------- Net::SIP

def have_netsip():
    if not PERL:
        return False
    return subprocess.run([PERL, "-MNet::SIP", "-e", "1"],
                          capture_output=True).returncode == 0


def netsip_script(name):
    return os.path.join(HERE, name)
