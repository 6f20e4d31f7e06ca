"""Request validation (RFC 3261 16.3, 8.2, 18.3) and garbage input."""

import random

import pytest

from sip import (SDP, build_request, match, new_branch,  # noqa: F401
                 sipnet)

RURI = "sip:bob@example.test"


def headers(call, branch):
    return [("Via", call.via(branch)),
            ("Max-Forwards", "70"),
            ("From", call.from_hdr),
            ("To", call.to_hdr()),
            ("Call-ID", call.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", call.contact),
            ("Content-Type", "application/sdp")]


def drop(hs, name):
    return [(n, v) for n, v in hs if n.lower() != name.lower()]


def replace(hs, name, value):
    return [(n, value if n.lower() == name.lower() else v) for n, v in hs]


def invite(hs, uri=RURI, version="SIP/2.0", **kw):
    return build_request("INVITE", uri, hs, SDP, version=version, **kw)


# name, request from the base headers, code, words the reason must contain
CASES = [
    ("missing_call_id", lambda hs: invite(drop(hs, "Call-ID")),
     400, "Missing Call-ID"),
    ("missing_cseq", lambda hs: invite(drop(hs, "CSeq")),
     400, "Missing CSeq"),
    ("missing_from", lambda hs: invite(drop(hs, "From")),
     400, "Missing From"),
    ("missing_to", lambda hs: invite(drop(hs, "To")),
     400, "Missing To"),
    ("bad_cseq", lambda hs: invite(replace(hs, "CSeq", "one INVITE")),
     400, "Bad CSeq"),
    ("cseq_method_mismatch",
     lambda hs: invite(replace(hs, "CSeq", "1 BYE")),
     400, "CSeq method mismatch"),
    ("content_length_too_large",
     lambda hs: invite(hs + [("Content-Length", str(len(SDP) + 100))]),
     400, "Content-Length mismatch"),
    ("sip_3_0", lambda hs: invite(hs, version="SIP/3.0"),
     505, "Version Not Supported"),
    ("unknown_scheme", lambda hs: invite(hs, uri="xyz:bob@example.test"),
     416, "Unsupported URI Scheme"),
    ("proxy_require", lambda hs: invite(hs + [("Proxy-Require", "foo")]),
     420, "Bad Extension"),
    ("max_forwards_0",
     lambda hs: invite(replace(hs, "Max-Forwards", "0")),
     483, "Too Many Hops"),
]


@pytest.mark.parametrize("build,code,words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rejected(sipnet, build, code, words):
    net = sipnet()
    call = net.call()
    branch = new_branch()
    net.caller.send(build(headers(call, branch)), net.proxy.addr)
    r = net.caller.expect(match(response=True, branch=branch))
    assert r.code == code, r
    assert words.lower() in r.reason.lower(), \
        "reason %r should name %r" % (r.reason, words)
    call.check_vias(r, branch)
    if code == 420:
        assert "foo" in [x.lower() for x in r.values("unsupported")], \
            r.text()
    got = net.uas.ep.collect(0.3)
    assert got == [], "UAS got %r" % got
    assert net.proxy.alive()


def test_message_too_large_513(sipnet):
    net = sipnet(extra="max_message_size = 2000;")
    call = net.call()
    branch = new_branch()
    hs = headers(call, branch) + [("X-Padding", "p" * 2800)]
    data = invite(hs)
    assert len(data) > 2900
    net.caller.send(data, net.proxy.addr)
    r = net.caller.expect(match(response=True, branch=branch))
    assert r.code == 513, r
    assert "too large" in r.reason.lower(), r.reason
    call.check_vias(r, branch)
    got = net.uas.ep.collect(0.3)
    assert got == [], "UAS got %r" % got

    net.simple_call()                   # small messages still pass
    assert net.proxy.alive()


def test_garbage_then_call(sipnet):
    """Datagrams that cannot be answered are dropped; the daemon lives
    and a normal call goes through afterwards."""
    net = sipnet()
    me = net.caller.port
    rnd = random.Random(3261)
    junk = [
        b"",
        b"\r\n",
        b"\r\n\r\n",
        rnd.randbytes(1200),
        bytes(range(256)) * 4,
        b"\x00" * 100,
        b"A" * 60000,
        b"INVITE sip:bob@example.test SIP/2.0\r\n",
        b"INVITE sip:bob@example.test SIP/2.0\r\n\r\n",
        b"INVITE\r\n\r\n",
        b"INVITE sip:bob@example.test SIP/2.0\r\nVia:\r\n:\r\nFrom\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"SIP/2.0 999999999999 Huh\r\n\r\n",
        ("SIP/2.0 200 OK\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKnotours\r\n"
         "From: <sip:a@example.test>;tag=1\r\n"
         "To: <sip:bob@example.test>;tag=2\r\n"
         "Call-ID: junk@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
         "Content-Length: 0\r\n\r\n" % me).encode(),
        "INVITE sip:bob@example.test SIP/2.0\r\n".encode("utf-16"),
        b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP \xff\xfe"
        b"\x00;branch=\r\nContent-Length: -5\r\n\r\n",
    ]
    for j in junk:
        net.caller.send(j, net.proxy.addr)
    got = net.uas.ep.collect(0.5)
    assert got == [], "UAS got %r" % got
    assert net.proxy.alive()

    net.simple_call()
    assert net.proxy.alive()
