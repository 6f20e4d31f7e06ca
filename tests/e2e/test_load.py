"""200 overlapping calls through one ospreyd, driven by one select loop.

Even calls are answered (180, 200, ACK, BYE, 200); odd calls are
cancelled after their 180 (CANCEL, 200, 487, ACK). Both sides retransmit
over UDP as RFC 3261 asks, so a lost datagram does not fail the test;
what must hold is the end state of every call and that nothing unexpected
arrives.
"""

import select
import time

from sip import SDP, sipnet  # noqa: F401

N = 200
RAMP = 0.002        # s between two INVITEs: all 200 calls overlap
HOLD = 0.5          # s from the 180 to the 200 (or to the CANCEL)
RETX = 0.5          # s, our own retransmission interval
DEADLINE = 20.0     # s for the whole run
LINGER = 0.5        # s of listening for strays once every call is done


class Leg:
    """Both ends of one call."""

    def __init__(self, i, call, start_at):
        self.i = i
        self.call = call
        self.cancelled = i % 2 == 1
        self.start_at = start_at
        # caller
        self.invite_sent = None
        self.got_resp = False
        self.final = None
        self.cancel_at = self.cancel_sent = self.cancel_bytes = None
        self.cancel_ok = False
        self.bye_at = self.bye_sent = self.bye_bytes = None
        self.bye_ok = False
        # UAS
        self.inv = None
        self.inv_branches = set()
        self.ringing = None
        self.answer_at = None
        self.final_bytes = None
        self.final_sent = None
        self.uas_acked = False
        self.uas_cancels = 0
        self.uas_byes = 0

    def done(self):
        if self.cancelled:
            return self.final == 487 and self.cancel_ok and self.uas_acked
        return self.final == 200 and self.bye_ok and self.uas_acked

    def state(self):
        return ("call %d %s: final=%s cancel_ok=%s bye_ok=%s uas_acked=%s "
                "uas_got_invite=%s" % (
                    self.i, "cancel" if self.cancelled else "answer",
                    self.final, self.cancel_ok, self.bye_ok, self.uas_acked,
                    self.inv is not None))


def test_200_overlapping_calls(sipnet):
    net = sipnet()
    caller, uas = net.caller, net.uas
    t0 = time.monotonic()
    legs = [Leg(i, net.call(), t0 + i * RAMP) for i in range(N)]
    by_cid = {leg.call.call_id: leg for leg in legs}
    stray = []

    def uas_send(leg, data):
        uas.ep.send(data, leg.inv.vias[0].response_addr())

    def tick(leg, now):
        c = leg.call
        if leg.invite_sent is None:
            if now >= leg.start_at:
                c.invite()
                leg.invite_sent = now
        elif not leg.got_resp and now - leg.invite_sent > RETX:
            c.resend_invite()
            leg.invite_sent = now
        if leg.cancel_at is not None and now >= leg.cancel_at:
            if leg.cancel_sent is None:
                leg.cancel_bytes = c.cancel()
                leg.cancel_sent = now
            elif not leg.cancel_ok and now - leg.cancel_sent > RETX:
                caller.send(leg.cancel_bytes, net.proxy.addr)
                leg.cancel_sent = now
        if leg.bye_at is not None and now >= leg.bye_at:
            if leg.bye_sent is None:
                leg.bye_bytes = c.bye()
                leg.bye_sent = now
            elif not leg.bye_ok and now - leg.bye_sent > RETX:
                caller.send(leg.bye_bytes, net.proxy.addr)
                leg.bye_sent = now
        if (leg.answer_at is not None and leg.final_bytes is None and
                now >= leg.answer_at):
            leg.final_bytes = uas.respond(leg.inv, 200, body=SDP)
            leg.final_sent = now
        if (leg.final_bytes is not None and not leg.uas_acked and
                now - leg.final_sent > RETX):
            uas_send(leg, leg.final_bytes)
            leg.final_sent = now

    def on_caller(m, now):
        leg = by_cid.get(m.call_id)
        if leg is None or m.is_request:
            stray.append(("caller", m))
            return
        method, code, c = m.cseq_method, m.code, leg.call
        if method == "INVITE" and code in (100, 180):
            leg.got_resp = True
            if code == 180 and leg.cancelled and leg.cancel_at is None:
                leg.cancel_at = now + HOLD
        elif method == "INVITE" and code == 200 and not leg.cancelled:
            leg.got_resp = True
            leg.final = 200
            c.ack(m)
            if leg.bye_at is None:
                leg.bye_at = now + 0.05
        elif method == "INVITE" and code == 487 and leg.cancelled:
            leg.got_resp = True
            leg.final = 487
            c.ack(m)
        elif method == "CANCEL" and code == 200 and leg.cancelled:
            leg.cancel_ok = True
        elif method == "BYE" and code == 200 and not leg.cancelled:
            leg.bye_ok = True
        else:
            stray.append(("caller", m))

    def on_uas(m, now):
        leg = by_cid.get(m.call_id)
        if leg is None or m.is_response:
            stray.append(("uas", m))
            return
        if m.method == "INVITE":
            leg.inv_branches.add(m.branch)
            if leg.inv is None:
                leg.inv = m
                leg.ringing = uas.respond(m, 180)
                if not leg.cancelled:
                    leg.answer_at = now + HOLD
            else:                       # retransmission: last response
                uas_send(leg, leg.final_bytes or leg.ringing)
        elif m.method == "CANCEL" and leg.cancelled and leg.inv:
            leg.uas_cancels += 1
            uas.respond(m, 200)
            if leg.final_bytes is None:
                leg.final_bytes = uas.respond(leg.inv, 487)
                leg.final_sent = now
        elif m.method == "ACK" and leg.final_bytes is not None:
            if leg.cancelled and m.branch != leg.inv.branch:
                stray.append(("uas", m))
            leg.uas_acked = True
        elif m.method == "BYE" and not leg.cancelled:
            leg.uas_byes += 1
            uas.respond(m, 200)
        else:
            stray.append(("uas", m))

    handlers = {caller.fileno(): (caller, on_caller),
                uas.ep.fileno(): (uas.ep, on_uas)}
    all_done_at = None
    while True:
        now = time.monotonic()
        if now - t0 > DEADLINE:
            break
        if all_done_at is None and all(leg.done() for leg in legs):
            all_done_at = now
        if all_done_at is not None and now - all_done_at > LINGER:
            break
        for leg in legs:
            tick(leg, now)
        ready, _, _ = select.select(list(handlers), [], [], 0.005)
        for fd in ready:
            ep, handle = handlers[fd]
            while True:
                m = ep.read(0)
                if m is None:
                    break
                handle(m, time.monotonic())

    elapsed = time.monotonic() - t0
    unfinished = [leg.state() for leg in legs if not leg.done()]
    assert not unfinished, "%d calls unfinished after %.1fs:\n%s" % (
        len(unfinished), elapsed, "\n".join(unfinished[:20]))
    assert stray == [], "%d stray messages: %r" % (len(stray), stray[:10])
    answered = [leg for leg in legs if not leg.cancelled]
    cancelled = [leg for leg in legs if leg.cancelled]
    assert len(answered) == len(cancelled) == N // 2
    assert all(leg.final == 200 and leg.bye_ok for leg in answered)
    assert all(leg.final == 487 and leg.cancel_ok for leg in cancelled)
    assert all(leg.uas_cancels >= 1 for leg in cancelled)
    assert all(leg.uas_byes >= 1 for leg in answered)
    multi = [leg.i for leg in legs if len(leg.inv_branches) != 1]
    assert multi == [], "calls forwarded on several branches: %r" % multi
    assert caller.garbage == [] and uas.ep.garbage == []
    assert net.proxy.alive()
    assert elapsed < DEADLINE
