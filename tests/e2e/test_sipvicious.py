"""SECURITY-TESTS.md 2.1 with Debian's sipvicious against a real ospreyd
with authentication on: svwar cannot tell existing users from others, and
svcrack is banned after a few failed guesses while a real phone keeps
registering from another address.

sipvicious 0.3.3 ignores -b and sends from 0.0.0.0, so its packets to a
127.0.0.x destination leave from 127.0.0.1; ospreyd listens on 127.0.0.5
here, so that 127.0.0.1 is not one of its own (never limited) addresses."""

import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import free_udp_port
from sip import Endpoint, Phone, build_request, challenges, match, \
    new_branch, new_call_id, new_tag, parse, users_line

pytestmark = pytest.mark.skipif(shutil.which("svwar") is None,
                                reason="sipvicious not installed")

REALM = "example.test"
PW = {"1000": "s3cret-1000", "1001": "s3cret-1001"}
HOST = "127.0.0.5"


def start(osprey_factory, tmp_path, security=""):
    users = tmp_path / "users"
    users.write_text("".join(users_line(u, REALM, p) + "\n"
                             for u, p in PW.items()))
    port = free_udp_port(HOST)
    o = osprey_factory(
        port=port, listen=[("udp", HOST, port)], timers={"t1": 50},
        extra='auth = { users = "%s"; };\nsecurity = { %s };'
              % (users, security))
    o.addr = (HOST, port)
    return o


def sv(tool, o, *args, timeout=60):
    cmd = [tool, HOST, "-p", str(o.port), "-P",
           str(free_udp_port()), "-x", "127.0.0.1", "--domain", REALM]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return p.stdout + p.stderr


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_finds_nothing(osprey_factory, tmp_path, method):
    o = start(osprey_factory, tmp_path,
              "scanners = false; rate_requests = 100000;")
    out = sv("svwar", o, "-e900-1100", "-m", method)
    # It notices that a made-up user is challenged like any other, and
    # gives up; forced to go on, it still tells none apart.
    assert "found nothing" in out, out
    assert "authentication request for an unknown extension" in out, out
    out = sv("svwar", o, "--force", "-e990-1010", "-m", method)
    assert "found nothing" in out, out
    # Nothing reported as found: no extension number in svwar's table.
    assert not re.search(r"\|\s*10(00|01)\s*\|", out), out


def blank(msg):
    """A response with what differs per request blanked out."""
    t = msg.raw.decode()
    t = re.sub(r"tag=[^;\r\n>]+", "tag=X", t)
    t = re.sub(r"branch=[^;\r\n]+", "branch=X", t)
    t = re.sub(r"nonce=\"[^\"]+\"", "nonce=X", t)
    t = re.sub(r"Call-ID: .*", "Call-ID: X", t)
    t = re.sub(r"(rport|received)=[^;\r\n]+", r"\1=X", t)
    t = re.sub(r"sip:(1000|9999)@", "sip:U@", t)
    return t


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_existing_and_unknown_users_get_identical_answers(
        osprey_factory, tmp_path, method):
    """Byte for byte (tags, branch, nonce, Call-ID blanked), and as many
    datagrams each (no retransmissions for either) within 64*T1."""
    o = start(osprey_factory, tmp_path)
    ep = Endpoint("127.0.0.2")
    ruri = "sip:" + REALM if method == "REGISTER" else "sip:1001@" + REALM
    hdr = "Authorization" if method == "REGISTER" else "Proxy-Authorization"

    def request(user, nonce=None):
        hs = [("Via", "SIP/2.0/UDP %s:%d;branch=%s;rport"
               % (ep.host, ep.port, new_branch())),
              ("Max-Forwards", "70"),
              ("From", "<sip:%s@%s>;tag=%s" % (user, REALM, new_tag())),
              ("To", "<sip:%s@%s>" % (user, REALM)),
              ("Call-ID", new_call_id()),
              ("CSeq", "1 %s" % method),
              ("Contact", "<sip:%s@%s:%d>" % (user, ep.host, ep.port))]
        if nonce:       # a wrong password
            hs.append((hdr, 'Digest username="%s", realm="%s", nonce="%s", '
                       'uri="%s", response="%s", algorithm=MD5, qop=auth, '
                       'nc=00000001, cnonce="abc"' % (user, REALM, nonce,
                                                      ruri, "0" * 32)))
        return build_request(method, ruri, hs)

    answers = {}
    for attempt in ("plain", "wrong-password"):
        sent = {}
        for user in ("1000", "9999"):
            req = parse(request(user, answers.get((user, "plain")) and
                                challenges(answers[(user, "plain")])[0].nonce))
            sent[req.call_id] = user
            ep.send(req.raw, o.addr)
        # 64*T1: any retransmission would have come by now.
        got = ep.collect(64 * 0.05 + 0.2)
        assert len(got) == 2, (attempt, got)
        for m in got:
            answers[(sent[m.call_id], attempt)] = m
    for attempt in ("plain", "wrong-password"):
        a, b = answers[("1000", attempt)], answers[("9999", attempt)]
        assert a.code == b.code and a.code in (401, 407), (a, b)
        assert blank(a) == blank(b), (blank(a), blank(b))
    ep.close()


def test_svcrack_banned_while_a_phone_keeps_registering(osprey_factory,
                                                        tmp_path):
    o = start(osprey_factory, tmp_path,
              "scanners = false; auth_failures = 5; auth_window = 60; "
              "ban_time = 30;")
    phone = Phone(Endpoint("127.0.0.3"), o.addr, "1001", PW["1001"])
    results = []
    stop = threading.Event()

    def keep_registering():
        while not stop.is_set():
            results.append(phone.register(expires=60).code)
            time.sleep(0.3)
    t = threading.Thread(target=keep_registering)
    t.start()
    try:
        out = sv("svcrack", o, "-u", "1000", "-r", "100-160", timeout=90)
    finally:
        stop.set()
        t.join()
    assert "could not find the password" in out.lower() or \
        "found nothing" in out.lower() or "password" not in out.lower(), out
    log = o.log_text()
    assert re.search(r"guard 127\.0\.0\.1: banned for 30 s: 5 failed "
                     r"authentications", log), log[-3000:]
    # The daemon checked at most K+1 guesses: the rest were dropped unread.
    guesses = len(re.findall(r"registrar 1000@example\.test: challenged",
                             log))
    assert guesses <= 6 + 1, guesses
    # The phone on another address never failed.
    assert results and all(c == 200 for c in results), results
    # Even the right password from the banned address gets nothing now.
    cracker = Phone(Endpoint("127.0.0.1"), o.addr, "1000", PW["1000"])
    cracker.ep.send(cracker.register_bytes(expires=60), o.addr)
    assert cracker.ep.recv(1.0) is None
    cracker.ep.close()
    phone.ep.close()
