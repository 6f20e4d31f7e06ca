"""SIP over TLS (RFC 3261 26.2, RFC 5922) through a real ospreyd, with a
test CA made by tests/tls/make-test-ca.

Debian's SIPp is built without TLS, so stunnel4 carries it: in client
mode (verifying ospreyd's certificate against the test CA and its name)
between a SIPp UAC on TCP and ospreyd's TLS listener; in server mode (with
the test CA's server certificate) in front of a SIPp UAS on TCP, as the
TLS next hop whose certificate ospreyd must verify, chain and name.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import HERE, TOP, reload_conf
from peers import interop

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
MAKE_CA = os.path.join(TOP, "tests", "tls", "make-test-ca")

pytestmark = [
    pytest.mark.skipif(interop.SIPP is None, reason="SIPp not installed"),
    pytest.mark.skipif(STUNNEL is None,
                       reason="stunnel4 not installed (apt-get install "
                       "stunnel4)"),
]

TIMERS = {"t1": 500, "t2": 4000, "t4": 5000, "cancel": 8000}


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ca"))
    subprocess.run(["sh", MAKE_CA, d], check=True, timeout=60)
    return d


def port():
    return interop.free_udp_block(1, tcp=True)


class Stunnel:
    """stunnel4 in the foreground with one service."""

    def __init__(self, workdir, name, lines):
        self.conf = os.path.join(workdir, "stunnel-%s.conf" % name)
        self.log = os.path.join(workdir, "stunnel-%s.log" % name)
        with open(self.conf, "w") as f:
            f.write("foreground = yes\npid =\noutput = %s\ndebug = 6\n"
                    "[%s]\n%s\n" % (self.log, name, "\n".join(lines)))
        self.proc = subprocess.Popen([STUNNEL, self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

    def wait_listening(self, p):
        deadline = time.time() + 10
        while time.time() < deadline:
            if interop.tcp_listening(p):
                return
            time.sleep(0.05)
        raise RuntimeError("stunnel did not listen on %d" % p)

    def text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        interop.stop_proc(self.proc)


def start_osprey(osprey_factory, ca, routes, tls_extra="", **kw):
    p, tp = port(), port()
    extra = ('tls = { certificate = "%s/server.pem"; key = "%s/server.key"; '
             'client_ca = "%s/ca.pem"; %s };' % (ca, ca, ca, tls_extra))
    o = osprey_factory(
        routes=routes, port=p, timers=TIMERS, extra=extra,
        listen=[("udp", "127.0.0.1", p), ("tcp", "127.0.0.1", p),
                ("tls", "127.0.0.1", tp)], **kw)
    o.tls_port = tp
    return o


def client_stunnel(wd, ca, osprey, check_host="localhost", cert=None):
    lp = port()
    lines = [
        "client = yes", "accept = 127.0.0.1:%d" % lp,
        "connect = 127.0.0.1:%d" % osprey.tls_port,
        "CAfile = %s/ca.pem" % ca, "verifyChain = yes",
        "checkHost = %s" % check_host]
    if cert:
        lines += ["cert = %s/%s.pem" % (ca, cert),
                  "key = %s/%s.key" % (ca, cert)]
    st = Stunnel(wd, "uac", lines)
    st.wait_listening(lp)
    return st, lp


def messages(peer):
    with open(peer.msg_file, errors="replace") as f:
        return f.read()


def run_uac_over_stunnel(osprey_factory, tmp_path, ca, uas_scn, uac_scn,
                         calls=1):
    """SIPp UAC (TCP) -> stunnel client -> ospreyd TLS -> SIPp UAS (TCP)."""
    wd = str(tmp_path)
    uas_port = port()
    o = start_osprey(osprey_factory, ca, [
        ("^bob$", ["sip:127.0.0.1:%d;transport=tcp" % uas_port])])
    st, lp = client_stunnel(wd, ca, o)
    uas = uac = None
    try:
        uas = interop.uas(wd, uas_scn, uas_port, o.port, calls=calls,
                          transport="t1")
        uac = interop.uac(wd, uac_scn, lp, port(), calls=calls,
                          transport="t1", rate=10 if calls > 1 else None)
        rc_uac = uac.wait()
        rc_uas = uas.wait(limit=5 if rc_uac else None)
        assert (rc_uac, rc_uas) == (0, 0), "\n".join([
            uac.report(), uas.report(), st.text()[-3000:]])
    finally:
        for p in (uac, uas):
            if p is not None:
                p.stop()
        st.stop()
    return o, uas, uac, st


def test_tls_call_from_a_verifying_client(osprey_factory, tmp_path, ca):
    """stunnel verifies ospreyd's chain and the name localhost; the call
    goes through to a TCP callee, whose INVITE carries two Record-Route
    entries: ;transport=tcp (the callee's side) and ;transport=tls."""
    o, uas, uac, st = run_uac_over_stunnel(osprey_factory, tmp_path, ca,
                                           "uas_call.xml", "uac_call.xml")
    rr = re.search(r"Record-Route: (.*)", messages(uas)).group(1)
    entries = re.findall(r"<sip:([^>]*)>", rr)
    assert len(entries) == 2, rr
    assert "transport=tcp" in entries[0], rr
    assert "127.0.0.1:%d" % o.tls_port in entries[1] and \
        "transport=tls" in entries[1], rr
    assert "Certificate accepted" in st.text() or \
        "verification succeeded" in st.text().lower() or \
        "Certificate verification" in st.text(), st.text()[-2000:]


def test_tls_cancel(osprey_factory, tmp_path, ca):
    """CANCEL over TLS: the callee sees a CANCEL with the INVITE's branch
    and the caller gets the 487 back over TLS."""
    run_uac_over_stunnel(osprey_factory, tmp_path, ca, "uas_ring.xml",
                         "uac_cancel.xml")


def test_tls_unmatched_cancel_gets_481(osprey_factory, tmp_path, ca):
    wd = str(tmp_path)
    o = start_osprey(osprey_factory, ca,
                     [("^bob$", ["sip:127.0.0.1:9;transport=tcp"])])
    st, lp = client_stunnel(wd, ca, o)
    uac = interop.uac(wd, "uac_unmatched_cancel.xml", lp, port(),
                      timeout_s=10, transport="t1")
    try:
        assert uac.wait() == 0, uac.report()
    finally:
        uac.stop()
        st.stop()


def test_client_refuses_wrong_name(osprey_factory, tmp_path, ca):
    """The same ospreyd certificate checked for another name fails in
    stunnel: the test above would catch a certificate without localhost."""
    wd = str(tmp_path)
    o = start_osprey(osprey_factory, ca, [])
    st, lp = client_stunnel(wd, ca, o, check_host="wrong.example.test")
    uac = interop.uac(wd, "uac_unmatched_cancel.xml", lp, port(),
                      timeout_s=3, transport="t1")
    try:
        assert uac.wait() != 0
    finally:
        uac.stop()
        st.stop()


KAMAILIO = shutil.which("kamailio")
KAM_CFG = os.path.join(HERE, "peers", "kamailio_tls.cfg")
KAM_TLS_MODULE = "/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so"


class Kamailio:
    """kamailio (kamailio-tls-modules) on a TLS and a UDP port, relaying
    INVITEs to uas_uri with record-routing (peers/kamailio_tls.cfg)."""

    def __init__(self, workdir, ca, cert, uas_uri):
        self.tls_port, self.udp_port = port(), port()
        self.dir = os.path.join(workdir, "kamailio")
        os.makedirs(self.dir, exist_ok=True)
        tls_cfg = os.path.join(self.dir, "tls.cfg")
        with open(tls_cfg, "w") as f:
            f.write("[server:default]\nmethod = TLSv1.2+\n"
                    "verify_certificate = no\nrequire_certificate = no\n"
                    "private_key = %s/%s.key\ncertificate = %s/%s.pem\n\n"
                    "[client:default]\nmethod = TLSv1.2+\n"
                    "verify_certificate = no\nrequire_certificate = no\n"
                    % (ca, cert, ca, cert))
        self.log = os.path.join(self.dir, "kamailio.log")
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen(
            [KAMAILIO, "-DD", "-E", "-f", KAM_CFG,
             "-l", "tls:127.0.0.1:%d" % self.tls_port,
             "-l", "udp:127.0.0.1:%d" % self.udp_port,
             "-A", 'TLS_CFG="%s"' % tls_cfg, "-A", 'UAS_URI="%s"' % uas_uri,
             "-Y", self.dir, "-P", os.path.join(self.dir, "kamailio.pid"),
             "-m", "64", "-M", "8"],
            stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + 15
        while time.time() < deadline:
            if interop.tcp_listening(self.tls_port) and \
                    interop.udp_bound(self.udp_port):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("kamailio did not start:\n" + self.text())

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.out.close()


needs_kamailio = pytest.mark.skipif(
    KAMAILIO is None or not os.path.exists(KAM_TLS_MODULE),
    reason="kamailio with its TLS module not installed (apt-get install "
    "kamailio kamailio-tls-modules)")


def call_to_kamailio(osprey_factory, tmp_path, ca, cert):
    """SIPp UAC (UDP) -> ospreyd -> TLS -> kamailio (cert) -> UDP ->
    SIPp UAS.  Returns (rc_uac, rc_uas, osprey, kamailio, uas, uac)."""
    wd = str(tmp_path)
    uas_port = port()
    kam = Kamailio(wd, ca, cert, "sip:127.0.0.1:%d" % uas_port)
    o = start_osprey(osprey_factory, ca, [
        ("^bob$", ["sip:127.0.0.1:%d;transport=tls" % kam.tls_port])])
    # the UAS checks the top Via and Record-Route: kamailio's UDP side
    uas = interop.uas(wd, "uas_call.xml", uas_port, kam.udp_port,
                      timeout_s=15)
    uac = interop.uac(wd, "uac_call.xml", o.port, port(), timeout_s=15)
    try:
        rc_uac = uac.wait()
        rc_uas = uas.wait(limit=3 if rc_uac else None)
    finally:
        uac.stop()
        uas.stop()
        kam.stop()
    return rc_uac, rc_uas, o, kam, uas, uac


@needs_kamailio
def test_tls_next_hop_kamailio_verified(osprey_factory, tmp_path, ca):
    """kamailio as the TLS next hop (sip:127.0.0.1:P;transport=tls):
    ospreyd verifies its chain against tls.client_ca and the name
    127.0.0.1 (an iPAddress subjectAltName), and the whole call, ACK and
    BYE included (they follow both proxies' Record-Routes), completes;
    kamailio saw every request of the call arrive over TLS."""
    rc_uac, rc_uas, o, kam, uas, uac = call_to_kamailio(
        osprey_factory, tmp_path, ca, "server")
    text = kam.text()
    assert (rc_uac, rc_uas) == (0, 0), "\n".join(
        [uac.report(), uas.report(), o.log_text()[-3000:], text[-3000:]])
    for method in ("INVITE", "ACK", "BYE"):
        assert re.search(r"kamailio: %s \S+ from tls:127\.0\.0\.1:" %
                         method, text), text[-3000:]


@needs_kamailio
def test_tls_next_hop_wrong_name_refused(osprey_factory, tmp_path, ca):
    """kamailio shows a valid certificate of the test CA, but for
    other.example.test, not 127.0.0.1: the handshake fails (RFC 5922,
    OpenSSL: "IP address mismatch"), the
    branch ends at once as a transport error, and kamailio never sees a
    request."""
    rc_uac, rc_uas, o, kam, uas, uac = call_to_kamailio(
        osprey_factory, tmp_path, ca, "other")
    log = o.log_text()
    assert rc_uac != 0, "the call went through a wrong-name TLS peer"
    assert "certificate verify failed: IP address mismatch" in log, \
        log[-3000:]
    assert "transport error" in log, log[-3000:]
    assert "kamailio: INVITE" not in kam.text()


@needs_kamailio
def test_tls_next_hop_untrusted_ca(osprey_factory, tmp_path, ca):
    """The right names, signed by a CA we do not trust: refused too."""
    rc_uac, rc_uas, o, kam, uas, uac = call_to_kamailio(
        osprey_factory, tmp_path, ca, "rogue")
    assert rc_uac != 0
    assert "transport error" in o.log_text()
    assert "kamailio: INVITE" not in kam.text()


def test_bad_certificate_refused_at_start_and_reload(osprey_factory, ca,
                                                     tmp_path):
    """A key that does not match its certificate: ospreyd -t names both
    files and exits 1."""
    conf = tmp_path / "bad.conf"
    conf.write_text(
        'listen = ( { transport = "tls"; address = "127.0.0.1"; '
        'port = 5061; } );\n'
        'tls = { certificate = "%s/server.pem"; key = "%s/other.key"; };\n'
        % (ca, ca))
    from conftest import OSPREYD
    p = subprocess.run([OSPREYD, "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "bad.conf:2: tls:" in p.stderr and "does not match" in \
        p.stderr, p.stderr


REGISTER = ("REGISTER sip:example.test SIP/2.0\r\n"
            "Via: SIP/2.0/%(via)s 127.0.0.1:%(lport)d;branch=z9hG4bK-%(tag)s"
            ";rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:alice@example.test>;tag=%(tag)s\r\n"
            "To: <sip:alice@example.test>\r\n"
            "Call-ID: %(tag)s@test\r\n"
            "CSeq: 1 REGISTER\r\n"
            "Contact: <sip:alice@127.0.0.1:%(lport)d;transport=%(tr)s>\r\n"
            "Expires: 60\r\n"
            "Content-Length: 0\r\n\r\n")


def test_require_tls_refuses_credentials_in_the_clear(osprey_factory, ca):
    """auth.require_tls: a REGISTER over UDP or TCP gets 403 "TLS Required
    (auth.require_tls)" and no challenge (no nonce, no digest crosses in
    the clear); the same REGISTER over TLS is challenged (401)."""
    import socket
    import ssl
    o = start_osprey(osprey_factory, ca, [], tls_extra="",
                     users={"alice": "secret"},
                     auth={"require_tls": True})
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(3)
    u.sendto((REGISTER % {"via": "UDP", "lport": u.getsockname()[1],
                          "tag": "u1", "tr": "udp"}).encode(), o.addr)
    r = u.recv(65535).decode()
    u.close()
    assert r.startswith("SIP/2.0 403 TLS Required (auth.require_tls)"), r
    assert "WWW-Authenticate" not in r, r

    t = socket.create_connection(o.addr, timeout=3)
    t.sendall((REGISTER % {"via": "TCP", "lport": t.getsockname()[1],
                           "tag": "t1", "tr": "tcp"}).encode())
    r = t.recv(65535).decode()
    t.close()
    assert r.startswith("SIP/2.0 403 TLS Required"), r

    ctx = ssl.create_default_context(cafile=os.path.join(ca, "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", o.tls_port), timeout=3)
    lport = raw.getsockname()[1]
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall((REGISTER % {"via": "TLS", "lport": lport,
                           "tag": "s1", "tr": "tls"}).encode())
    r = s.recv(65535).decode()
    s.close()
    assert r.startswith("SIP/2.0 401 "), r
    assert "WWW-Authenticate: Digest" in r, r


@pytest.mark.parametrize("trusted", [True, False])
def test_mutual_tls_trunk_trusted_by_certificate_name(osprey_factory,
                                                      tmp_path, ca,
                                                      trusted):
    """verify_client: the trunk (stunnel with the test CA's client
    certificate for trunk.example.test) must show a certificate.  With
    auth.trusted_names naming it, its INVITE (From one of our hosts, which
    would otherwise be challenged) goes through without credentials;
    without the name it is challenged (407) and the call fails."""
    wd = str(tmp_path)
    uas_port = port()
    auth = {"trusted_names": ["trunk.example.test"]} if trusted else {}
    o = start_osprey(osprey_factory, ca, [
        ("^bob$", ["sip:127.0.0.1:%d;transport=tcp" % uas_port])],
        tls_extra='ca = "%s/ca.pem"; verify_client = true;' % ca,
        users={"alice": "pw"}, auth=auth)
    st, lp = client_stunnel(wd, ca, o, cert="client")
    uas = interop.uas(wd, "uas_call.xml", uas_port, o.port,
                      transport="t1", timeout_s=10)
    uac = interop.uac(wd, "uac_call.xml", lp, port(), transport="t1",
                      timeout_s=10)
    try:
        rc = uac.wait()
        if trusted:
            assert rc == 0, uac.report() + o.log_text()[-2000:]
            assert uas.wait(limit=5) == 0
        else:
            assert rc != 0
            assert "challenged" in o.log_text()
    finally:
        uac.stop()
        uas.stop()
        st.stop()


def test_verify_client_refuses_a_client_without_certificate(
        osprey_factory, tmp_path, ca):
    """verify_client = true and a client that shows no certificate: the
    handshake fails (counted as tls_failed) and nothing is served."""
    wd = str(tmp_path)
    o = start_osprey(osprey_factory, ca, [],
                     tls_extra='ca = "%s/ca.pem"; verify_client = true;'
                     % ca)
    st, lp = client_stunnel(wd, ca, o)
    uac = interop.uac(wd, "uac_unmatched_cancel.xml", lp, port(),
                      timeout_s=3, transport="t1")
    try:
        assert uac.wait() != 0
        assert "connection 1 closed" in o.log_text()
    finally:
        uac.stop()
        st.stop()


def peer_cert_names(port_, ca, sni="localhost"):
    """The subjectAltName DNS names of the certificate the listener shows
    for this SNI name (verified against the test CA, names not checked)."""
    import socket
    import ssl as _ssl
    ctx = _ssl.create_default_context(cafile=os.path.join(ca, "ca.pem"))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port_), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return sorted(v for k, v in s.getpeercert()["subjectAltName"]
                          if k == "DNS")


def test_sni_picks_the_certificate(osprey_factory, ca):
    """tls.sni: a client asking for other.example.test gets that
    certificate; any other name gets the default one."""
    o = start_osprey(osprey_factory, ca, [], tls_extra=(
        'sni = ( { certificate = "%s/other.pem"; key = "%s/other.key"; } );'
        % (ca, ca)))
    assert "other.example.test" in peer_cert_names(o.tls_port, ca,
                                                   "other.example.test")
    assert "localhost" in peer_cert_names(o.tls_port, ca, "localhost")


def test_reload_new_certificate_open_connection_keeps_its_own(
        osprey_factory, ca):
    """A reload that names another certificate: new connections get it,
    a connection opened before keeps working on its own; a reload with a
    key that does not match is refused and the running one stays."""
    import socket
    import ssl as _ssl
    o = start_osprey(osprey_factory, ca, [])
    ctx = _ssl.create_default_context(cafile=os.path.join(ca, "ca.pem"))
    old = ctx.wrap_socket(socket.create_connection(
        ("127.0.0.1", o.tls_port), timeout=5), server_hostname="localhost")
    with open(o.conf) as f:
        text = f.read()
    reload_conf(o, text.replace("/server.pem", "/other.pem").replace(
        "/server.key", "/other.key"))
    assert "other.example.test" in peer_cert_names(o.tls_port, ca)
    opts = ("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:"
            "9;branch=z9hG4bK-r1\r\nMax-Forwards: 70\r\nFrom: <sip:r@example"
            ".test>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: r1@t\r\nCSeq: 1"
            " OPTIONS\r\nContent-Length: 0\r\n\r\n" % o.tls_port)
    old.sendall(opts.encode())
    assert old.recv(4096).startswith(b"SIP/2.0 200")
    old.close()
    # a key that does not match its certificate: refused, other.pem stays
    reload_conf(o, text.replace("/server.pem", "/other.pem"),
                logged="reload refused")
    assert "does not match" in o.log_text()
    assert "other.example.test" in peer_cert_names(o.tls_port, ca)
    assert o.alive()
