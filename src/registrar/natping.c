/*
 * NAT keepalives: a registered phone behind a NAT is reachable only while
 * the NAT keeps the mapping its REGISTER made, which a UDP NAT forgets
 * after 30 s to a few minutes of silence.  Every interval each such
 * binding gets an OPTIONS request (or a bare CRLF CRLF) from the socket it
 * registered on, to the address its REGISTER came from, so traffic crosses
 * the NAT again; a phone that leaves `failures` OPTIONS in a row
 * unanswered is dropped from the location service (what Kamailio's
 * nathelper pings and usrloc's keepalive removal do).
 *
 * Runs on the main loop, the location service's one writer.  Bindings
 * with a Path (an edge proxy keeps their NAT open) and RFC 5626 flows
 * (reg-id: the phone sends its own keepalives) are left alone.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "location.h"
#include "locredis.h"
#include "log.h"
#include "natping.h"
#include "shard.h"
#include "timer.h"
#include "txn.h"
#include "xmalloc.h"

#define NATPING_TICK_MS	1000	/* how often due bindings are looked for */

/* One OPTIONS out: names its binding, which may be gone by the answer. */
struct ping {
	uint64_t	 id;		/* the binding's */
	char		 aor[];
};

static struct {
	struct event_base	*base;
	struct tp		*tp;
	struct timer		 tick;
	struct natping_settings	 set;
	struct natping_stats	 st;
	uint64_t		 seq;
	bool			 on;
} N;

static void	natping_response(struct txn *, const struct sipmsg *);
static void	natping_timeout(struct txn *, bool);
static void	natping_transport_error(struct txn *);
static void	natping_gone(struct txn *);

static const struct txn_ops natping_ops = {
	.response = natping_response,
	.timeout = natping_timeout,
	.transport_error = natping_transport_error,
	.terminated = natping_gone,
};

/* A keepalive answered (alive) or not; the binding may have gone. */
static void
natping_result(const struct ping *p, bool alive, const char *why)
{
	struct binding	*b;

	b = location_find_id((struct slice){ p->aor, strlen(p->aor) }, p->id);
	if (b == NULL)
		return;
	b->ping_out = false;
	if (alive) {
		b->ping_misses = 0;
		return;
	}
	N.st.failed++;
	if (b->ping_misses < UINT8_MAX)
		b->ping_misses++;
	log_info("natping %s: %s: keepalive failed (%s), %u in a row",
	    p->aor, b->contact, why, b->ping_misses);
	if (N.set.failures == 0 || b->ping_misses < N.set.failures)
		return;
	log_notice("natping %s: %s removed: %u keepalives unanswered",
	    p->aor, b->contact, b->ping_misses);
	N.st.dropped++;
	if (locredis_active())
		locredis_forget(b);	/* the other nodes' copies too */
	location_write_lock();
	location_remove(b);
	location_unlock();
}

static void
natping_response(struct txn *ct, const struct sipmsg *resp)
{
	/* Any final answer is the phone's: 404 and 405 too. */
	if (ct->owner != NULL && resp->status >= 200)
		natping_result(ct->owner, true, NULL);
}

static void
natping_timeout(struct txn *ct, bool timer_c)
{
	(void)timer_c;
	if (ct->owner != NULL)
		natping_result(ct->owner, false, "no answer");
}

static void
natping_transport_error(struct txn *ct)
{
	if (ct->owner != NULL)
		natping_result(ct->owner, false, "connection lost");
}

static void
natping_gone(struct txn *ct)
{
	struct ping	*p = ct->owner;
	struct binding	*b;

	if (p == NULL)
		return;
	/* Ended with no word (a full table, a shutdown): ping again. */
	b = location_find_id((struct slice){ p->aor, strlen(p->aor) }, p->id);
	if (b != NULL)
		b->ping_out = false;
	free(p);
	ct->owner = NULL;
}

/* What names b in an answer that may come after it is gone. */
static struct ping *
ping_new(const struct binding *b)
{
	size_t		 alen = strlen(b->aor->key);
	struct ping	*p = xmalloc(sizeof(*p) + alen + 1);

	p->id = b->id;
	memcpy(p->aor, b->aor->key, alen + 1);
	return (p);
}

/* The socket b registered on, else one for its address family. */
static struct tp_sock *
natping_sock(const struct binding *b)
{
	unsigned	i;

	for (i = 0; i < N.tp->nsocks; i++)
		if (strcmp(N.tp->socks[i].name, b->local) == 0)
			return (&N.tp->socks[i]);
	return (tp_sock_for(N.tp, &b->received, NULL));
}

static void
natping_options(struct binding *b, struct tp_sock *out)
{
	struct ping	*p;
	struct buf	 req;
	char		 branch[48], callid[128], *bytes;
	size_t		 len;
	int		 n;

	/* Its answer must come back to this loop (shard.h). */
	do {
		n = snprintf(callid, sizeof(callid), "natping-%llx@%s",
		    (unsigned long long)++N.seq, out->hostport);
	} while (shard_of(callid, (size_t)n) != shard_self());
	snprintf(branch, sizeof(branch), SIP_MAGIC "np%llx",
	    (unsigned long long)N.seq);
	buf_init(&req, 512);
	buf_addf(&req, "OPTIONS %s SIP/2.0\r\n"
	    "Via: SIP/2.0/%s %s;branch=%s\r\n"
	    "Max-Forwards: 70\r\n"
	    "From: <sip:osprey@%s>;tag=np%llx\r\n"
	    "To: <%s>\r\n"
	    "Call-ID: %s\r\n"
	    "CSeq: 1 OPTIONS\r\n"
	    "User-Agent: Osprey/" PACKAGE_VERSION "\r\n"
	    "Content-Length: 0\r\n\r\n", b->contact, tp_proto_via(out->proto),
	    out->hostport, branch, out->hostport, (unsigned long long)N.seq,
	    b->contact, callid);
	bytes = buf_steal(&req, &len);
	p = ping_new(b);
	b->ping_out = true;
	txn_set_ops(txn_client_new_named(TXN_NICT, (struct slice){ branch,
	    strlen(branch) }, (struct slice){ "OPTIONS", 7 }, bytes, len, out,
	    &b->received, NULL, p, 0), &natping_ops);
}

/* One binding, on each tick: its keepalive if one is due. */
static void
natping_one(void *arg, struct binding *b)
{
	uint64_t	 now = *(const uint64_t *)arg;
	struct tp_sock	*out;

	if (b->path != NULL || b->reg_id != 0 || b->node != NULL ||
	    (!b->nat && N.set.ping != NATPING_ALL))
		return;
	if (b->ping_due_ms == 0) {	/* new: its REGISTER just crossed */
		b->ping_due_ms = now + N.set.interval_ms;
		return;
	}
	/*
	 * Due by the tick nearest its time: a tick a little early (timer
	 * slack) would otherwise put it off by a whole tick, every time.
	 * The next one is due an interval after this one was due, so the
	 * pings keep the interval rather than drifting a tick each.
	 */
	if (b->ping_due_ms > now + NATPING_TICK_MS / 2)
		return;
	b->ping_due_ms += N.set.interval_ms;
	if (b->ping_due_ms <= now)
		b->ping_due_ms = now + N.set.interval_ms;
	if (b->ping_out)
		return;		/* the last one is still out */
	if ((out = natping_sock(b)) == NULL)
		return;
	N.st.sent++;
	if (N.set.keepalive == NATPING_OPTIONS) {
		natping_options(b, out);
		return;
	}
	/* RFC 5626 3.5.1: a CRLF CRLF; a WebSocket has its own pings. */
	if (b->received.proto == TP_WS || b->received.proto == TP_WSS)
		return;
	if (tp_send(out, &b->received, "\r\n\r\n", 4) == -1) {
		struct ping	*p = ping_new(b);

		natping_result(p, false, "send failed");
		free(p);
	}
}

static void
natping_tick(void *arg)
{
	uint64_t	now = timer_now_ms();

	(void)arg;
	timer_set(&N.tick, NATPING_TICK_MS);
	location_walk(natping_one, &now);
}

void
natping_start(struct event_base *base, struct tp *tp)
{
	N.base = base;
	N.tp = tp;
	timer_init(&N.tick, base, natping_tick, NULL);
	N.on = true;
	if (N.set.keepalive != NATPING_NONE)
		timer_set(&N.tick, NATPING_TICK_MS);
}

/* At start and on reload (the workers paused): the new settings. */
void
natping_set(const struct natping_settings *s)
{
	N.set = *s;
	if (!N.on)
		return;
	if (N.set.keepalive == NATPING_NONE)
		timer_stop(&N.tick);
	else if (!timer_pending(&N.tick))
		timer_set(&N.tick, NATPING_TICK_MS);
}

void
natping_stop(void)
{
	if (N.on)
		timer_stop(&N.tick);
	N.on = false;
}

void
natping_stats(struct natping_stats *st)
{
	*st = N.st;
}

static void
count_nat(void *arg, const struct binding *b)
{
	if (b->nat)
		(*(unsigned *)arg)++;
}

/* Bindings found behind a NAT now (the main loop reads them). */
unsigned
natping_nat_bindings(void)
{
	unsigned	n = 0;

	location_foreach(count_nat, &n);
	return (n);
}
