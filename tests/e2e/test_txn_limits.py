"""security.max_transactions counts transactions in progress; completed
ones, kept only to absorb retransmissions until Timer D/J/K/L/M, count
against security.max_transaction_memory instead (osprey.conf(5)).

The ringing-calls case (transactions in progress past the limit get 503
Too Many Transactions) is test_guard.test_transaction_limit_answers_503."""

import os
import subprocess
import time

from conftest import OSPREYD
from sip import Endpoint, match, sipnet  # noqa: F401 (the fixture)
from test_guard import options

# Timers as shipped: completed transactions stay 64*T1 = 32 s.
SHIPPED_TIMERS = {"t1": 500, "t2": 4000, "t4": 5000}


def ctl_status(proxy):
    tool = os.path.join(os.path.dirname(OSPREYD), "ospreyctl")
    out = subprocess.run([tool, "-s", proxy.ctl_socket, "status"],
                         capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        if line.startswith("transactions open"):
            return int(line.split()[-1])
    raise AssertionError("no transaction count in %r" % out)


def test_completed_transactions_do_not_count(sipnet):
    """With max_transactions = 100, 40 completed calls leave about 120
    transactions waiting for their timers (an INVITE server and client
    pair in Accepted, the BYE's server transaction for Timer J), more than
    the limit: the next call still passes."""
    net = sipnet(timers=SHIPPED_TIMERS,
                 extra="security = { max_transactions = 100; };")
    for _ in range(40):
        net.simple_call()
    held = ctl_status(net.proxy)
    assert held > 100, held
    net.simple_call()
    assert "Too Many Transactions" not in net.proxy.log_text()


def test_flood_of_completed_transactions_stopped_by_memory(sipnet):
    """No rate limit, max_transaction_memory = 1 MB: OPTIONS answered by
    the proxy itself each leave a completed server transaction (Timer J,
    32 s). Those are not in progress, but their bytes stop the flood:
    503 Too Many Transactions with Retry-After, after some hundreds."""
    net = sipnet(timers=SHIPPED_TIMERS,
                 extra="security = { rate_window = 0; "
                       "max_transaction_memory = 1; };")
    ep = Endpoint()
    try:
        answered = refused = 0
        first_503 = None
        for i in range(3000):
            ep.send(options(ep, net.proxy.addr), net.proxy.addr)
            r = ep.recv(1.0, match(cseq_method="OPTIONS", response=True))
            assert r is not None, "no answer to OPTIONS %d" % i
            if r.code == 200:
                assert refused == 0, "200 after a 503 (%d)" % i
                answered += 1
            elif r.code == 503:
                refused += 1
                first_503 = first_503 or r
                if refused == 20:
                    break
            else:
                raise AssertionError(r.raw)
        assert 100 <= answered <= 2000, answered
        assert refused == 20, (answered, refused)
        assert "Too Many Transactions" in first_503.raw.decode().split(
            "\r\n")[0]
        assert first_503.get("retry-after")
        assert ctl_status(net.proxy) >= answered
        log = net.proxy.log_text()
        assert "max_transaction_memory" in log, log[-3000:]
    finally:
        ep.close()
