"""NAT keepalives (osprey.conf(5) "nat"): a phone whose REGISTER came
through a NAT (its Via or Contact names another address or port than the
datagram came from) gets an OPTIONS from the proxy every interval, at the
address its REGISTER came from; one that leaves `failures` of them in a
row unanswered is removed from the location service.  Phones not behind
a NAT get none unless ping = "all"; keepalive = "crlf" sends CRLF CRLF.

T1 is 50 ms here, so an unanswered OPTIONS fails after Timer F (3.2 s)."""

import http.client
import socket
import time

from sip import match, new_branch, reglab  # noqa: F401

REG = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600}


def nat_register(lab, phone, contact_host="192.168.1.20", contact_port=5062,
                 via_host=None):
    """phone REGISTERs from its own socket, naming a private address in
    its Contact (and Via, unless via_host): what a phone behind a NAT
    sends.  Returns the Contact URI registered."""
    contact = "sip:%s@%s:%d" % (phone.user, contact_host, contact_port)
    via = "SIP/2.0/UDP %s:%d;branch=%s;rport" % (
        via_host or contact_host, contact_port, new_branch())
    r = phone.register(contacts=["<%s>" % contact], expires=600, via=via)
    assert r.code == 200, r
    return contact


def options_for(phone, timeout):
    return phone.ep.collect(timeout, match(method="OPTIONS"))


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError("%s not in /metrics" % name)


def test_nat_phone_gets_options_at_its_source(reglab):
    """bob's REGISTER names 192.168.1.20:5062 but comes from a loopback
    socket: every second an OPTIONS reaches that socket, its Request-URI
    the registered Contact; answered, the binding stays."""
    mport = free_tcp_port()
    reglab.start(registrar=REG, extra='nat = { interval = 1; failures = 2; '
                 '};\nmetrics = { address = "127.0.0.1"; port = %d; };'
                 % mport)
    bob = reglab.phone("bob")
    contact = nat_register(reglab, bob)
    assert metric(mport, "osprey_registrations_nat") == 1
    got = []
    deadline = time.time() + 5
    while len(got) < 2 and time.time() < deadline:
        opt = bob.uas.expect("OPTIONS", timeout=max(0.1, deadline -
                                                    time.time()))
        assert opt.uri == contact, opt.start
        assert opt.src == reglab.proxy.addr, opt.src
        assert opt.get("max-forwards") == "70", opt.text()
        bob.uas.respond(opt, 200)
        got.append(time.time())
    assert len(got) == 2, "want two keepalives in 5 s, got %d" % len(got)
    assert 0.5 < got[1] - got[0] < 2.5, "keepalives %.2f s apart, want " \
        "about the 1 s interval" % (got[1] - got[0])
    assert list(bob.query()) == [contact], "an answered phone stays"
    assert metric(mport, "osprey_nat_keepalives_total") >= 2
    assert metric(mport, "osprey_nat_keepalive_failures_total") == 0


def test_unanswered_keepalives_remove_the_binding(reglab):
    """No answer to two OPTIONS in a row (failures = 2): the binding is
    removed, and a call to bob gets 404 (no users file: no binding is no
    such user); the log says why."""
    mport = free_tcp_port()
    reglab.start(registrar=REG, extra='nat = { interval = 1; failures = 2; '
                 '};\nmetrics = { address = "127.0.0.1"; port = %d; };'
                 % mport)
    bob = reglab.phone("bob")
    contact = nat_register(reglab, bob)
    deadline = time.time() + 20
    while time.time() < deadline and "keepalives unanswered" not in \
            reglab.proxy.log_text():
        time.sleep(0.2)
    log = reglab.proxy.log_text()
    assert "%s removed: 2 keepalives unanswered" % contact in log, log[-2000:]
    assert reglab.phone("bob").query() == {}, "the binding must be gone"
    call = reglab.caller("sip:bob@example.test")
    call.invite()
    r = call.ep.expect(match(code=range(300, 700), call_id=call.call_id),
                       2.0)
    assert r.code == 404, r
    call.ack(r)
    assert metric(mport, "osprey_nat_bindings_dropped_total") == 1
    assert metric(mport, "osprey_nat_keepalive_failures_total") == 2


def test_phone_not_behind_nat_gets_none_unless_ping_all(reglab):
    """alice registers her own address: no keepalive; with ping = "all"
    she gets them too."""
    reglab.start(registrar=REG, extra='nat = { interval = 1; };')
    alice = reglab.phone("alice")
    assert alice.register(expires=600).code == 200
    assert options_for(alice, 2.5) == [], "alice is not behind a NAT"
    reglab.proxy.stop()

    reglab.start(registrar=REG, extra='nat = { interval = 1; ping = "all"; '
                 '};')
    alice = reglab.phone("alice")
    assert alice.register(expires=600).code == 200
    opt = alice.uas.expect("OPTIONS", timeout=3.0)
    assert opt.uri == alice.contact_uri, opt.start


def test_via_alone_shows_the_nat(reglab):
    """A Contact with a domain name says nothing; the Via's private
    address shows the NAT."""
    reglab.start(registrar=REG, extra='nat = { interval = 1; };')
    bob = reglab.phone("bob")
    contact = "sip:bob@phone.example.net"
    via = "SIP/2.0/UDP 10.1.2.3:5060;branch=%s;rport" % new_branch()
    assert bob.register(contacts=["<%s>" % contact], expires=600,
                        via=via).code == 200
    opt = bob.uas.expect("OPTIONS", timeout=3.0)
    assert opt.uri == contact, opt.start


def test_crlf_keepalive(reglab):
    """keepalive = "crlf": the phone's socket gets CRLF CRLF datagrams,
    no OPTIONS."""
    reglab.start(registrar=REG, extra='nat = { interval = 1; keepalive = '
                 '"crlf"; };')
    bob = reglab.phone("bob")
    nat_register(reglab, bob)
    deadline = time.time() + 3
    while time.time() < deadline and not bob.ep.garbage:
        bob.ep.read(0.2)
    assert [g[0] for g in bob.ep.garbage][:1] == [b"\r\n\r\n"], \
        bob.ep.garbage
    assert bob.ep.garbage[0][1] == reglab.proxy.addr
    assert options_for(bob, 0.5) == []


def test_keepalive_none(reglab):
    reglab.start(registrar=REG, extra='nat = { interval = 1; keepalive = '
                 '"none"; };')
    bob = reglab.phone("bob")
    nat_register(reglab, bob)
    assert options_for(bob, 2.5) == [], "keepalive none sends nothing"
    assert bob.ep.garbage == []


def test_sipp_phone_behind_nat_answers_keepalives(reglab, tmp_path):
    """SIPp (an independent SIP stack) registers carol with a private Via
    and Contact, then answers every OPTIONS that comes out of call
    (its -oocsf scenario checks the Request-URI is the registered
    Contact). Both keepalives in its 4 s are answered: none failed, and
    carol is still registered after them."""
    from peers import interop
    from conftest import free_udp_port
    mport = free_tcp_port()
    reglab.start(registrar=REG, extra='nat = { interval = 1; failures = 1; '
                 '};\nmetrics = { address = "127.0.0.1"; port = %d; };'
                 % mport, timers={"t1": 100})
    p = interop.uac(str(tmp_path), "uac_nat_register.xml",
                    reglab.proxy.port, free_udp_port(), service="carol",
                    extra=["-oocsf", interop.scenario("uas_ooc_options.xml")],
                    timeout_s=15)
    rc = p.wait()
    assert rc == 0, p.report()
    log = open(p.log_file).read()
    assert log.count("keepalive OPTIONS OPTIONS sip:carol@192.168.1.20:5062 "
                     "SIP/2.0 answered") >= 2, p.report()
    assert metric(mport, "osprey_nat_keepalives_total") >= 2
    assert metric(mport, "osprey_nat_keepalive_failures_total") == 0
    assert list(reglab.phone("carol").query()) == [
        "sip:carol@192.168.1.20:5062"]
