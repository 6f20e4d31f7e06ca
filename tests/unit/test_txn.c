/*
 * Unit tests: the transaction layer (txn_table.c, txn_server.c,
 * txn_client.c) on the fake clock and the capture-only transport of fake.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <osipparser2/osip_parser.h>

#include "check_util.h"
#include "fake.h"
#include "log.h"
#include "sipbuild.h"
#include "sipmsg.h"
#include "tp.h"
#include "txn.h"

#define T1	500
#define T2	4000
#define T4	5000
#define TC	180000
#define TD	32000

static const struct txn_settings settings = {
	.t1_ms = T1, .t2_ms = T2, .t4_ms = T4, .c_ms = TC, .d_ms = TD,
};

#define NREC	32

/* What the transaction layer told its user. */
static struct {
	int		 nresp;
	int		 code[NREC];
	struct txn	*resp_txn[NREC];
	int		 ntimeout;
	bool		 timer_c[NREC];
	uint64_t	 timeout_at[NREC];
	enum txn_state	 timeout_state[NREC];
	int		 nterm;
	struct txn	*term[NREC];	/* never dereferenced: maybe freed */
	enum txn_state	 term_state;
} cb;

static int	owner;		/* its address marks a transaction as ours */

static void
on_response(struct txn *t, const struct sipmsg *resp)
{
	if (cb.nresp < NREC) {
		cb.code[cb.nresp] = resp->status;
		cb.resp_txn[cb.nresp] = t;
	}
	cb.nresp++;
}

static void
on_timeout(struct txn *t, bool timer_c)
{
	if (cb.ntimeout < NREC) {
		cb.timer_c[cb.ntimeout] = timer_c;
		cb.timeout_at[cb.ntimeout] = fake_now();
		cb.timeout_state[cb.ntimeout] = t->state;
	}
	cb.ntimeout++;
}

static void
on_terminated(struct txn *t)
{
	if (cb.nterm < NREC)
		cb.term[cb.nterm] = t;
	cb.term_state = t->state;
	cb.nterm++;
}

static int	ntransport_error;

static void
on_transport_error(struct txn *t)
{
	(void)t;
	ntransport_error++;
}

static const struct txn_ops ops = {
	.response = on_response,
	.timeout = on_timeout,
	.transport_error = on_transport_error,
	.terminated = on_terminated,
};

/* The proxy's way: its owner lets a transaction go once it is done. */
static int		 ndone;
static struct txn	*done_txn;

static void
on_done(struct txn *t)
{
	ndone++;
	done_txn = t;
	ck_assert_ptr_eq(t->owner, &owner);	/* still ours when told */
}

static const struct txn_ops ops_done = {
	.response = on_response,
	.timeout = on_timeout,
	.transport_error = on_transport_error,
	.terminated = on_terminated,
	.done = on_done,
};

static void
setup(void)
{
	log_init(true, LOG_LVL_WARNING);
	fake_reset();
	memset(&cb, 0, sizeof(cb));
	txn_init(NULL, &settings, &ops);
}

static void
setup_done(void)
{
	setup();
	txn_shutdown();
	ndone = 0;
	done_txn = NULL;
	txn_init(NULL, &settings, &ops_done);
}

static void
teardown(void)
{
	txn_shutdown();
	fake_reset();
}

/* A request as a UAC (or the previous hop) sends it to us. */
struct rq {
	const char	*method;
	const char	*ruri;
	const char	*via;
	const char	*from_tag;
	const char	*to_tag;	/* NULL: none */
	const char	*callid;
	unsigned	 cseq;
};

#define RQ(m, v)	((struct rq){ (m), "sip:bob@example.com", (v),	\
			    "a1", NULL, "call-1@example.org", 1 })

#define VIA_A		"SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKsrv1"

static struct sipmsg *
request(struct rq r)
{
	char	text[1024];

	snprintf(text, sizeof(text),
	    "%s %s SIP/2.0\r\n"
	    "Via: %s\r\n"
	    "Max-Forwards: 70\r\n"
	    "To: <sip:bob@example.com>%s%s\r\n"
	    "From: <sip:alice@example.org>;tag=%s\r\n"
	    "Call-ID: %s\r\n"
	    "CSeq: %u %s\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n", r.method, r.ruri, r.via, r.to_tag ? ";tag=" : "",
	    r.to_tag ? r.to_tag : "", r.from_tag, r.callid, r.cseq, r.method);
	return (parse(text));
}

static struct tp_addr
addr(const char *ip, uint16_t port)
{
	struct tp_addr	a;

	ck_assert_int_eq(tp_addr_set(&a, S(ip), port), 0);
	return (a);
}

static struct txn *
server_new(struct rq r)
{
	struct tp_addr	 src = addr("192.0.2.1", 5062);
	struct txn	*t = txn_server_new(request(r), NULL, &src);

	t->owner = &owner;
	return (t);
}

static const char *
reply_text(int code)
{
	static char	text[256];

	snprintf(text, sizeof(text), "SIP/2.0 %d %s\r\nX-Test: %d\r\n\r\n",
	    code, sip_reason(code), code);
	return (text);
}

static int
reply(struct txn *t, int code)
{
	const char	*text = reply_text(code);
	char		*bytes = strdup(text);

	ck_assert_ptr_nonnull(bytes);
	return (txn_server_reply(t, code, bytes, strlen(bytes)));
}

/* Was datagram i the response with this code? */
static void
ck_sent_reply(int i, int code)
{
	ck_assert_ptr_nonnull(fake_sent(i));
	ck_assert_str_eq(fake_sent(i), reply_text(code));
}

/* The times of the datagrams from first on, compared with want[]. */
static void
ck_sent_times(int first, const uint64_t *want, int n)
{
	int	i;

	ck_assert_int_eq(fake_nsent() - first, n);
	for (i = 0; i < n; i++)
		ck_assert_msg(fake_sent_at(first + i) == want[i],
		    "datagram %d sent at %llu, want %llu", i,
		    (unsigned long long)fake_sent_at(first + i),
		    (unsigned long long)want[i]);
}

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* The fake clock and transport themselves. */

static struct {
	int		 n;
	int		 id[16];
	uint64_t	 at[16];
} fired;

static struct timer	ftm[4];

static void
fake_fire(void *arg)
{
	int	id = (int)(intptr_t)arg;

	if (fired.n < 16) {
		fired.id[fired.n] = id;
		fired.at[fired.n] = fake_now();
	}
	fired.n++;
	if (id == 1)
		timer_set(&ftm[3], 50);		/* set while advancing */
	if (id == 2)
		timer_stop(&ftm[0]);
}

START_TEST(fake_timer_order)
{
	int	i;

	memset(&fired, 0, sizeof(fired));
	for (i = 0; i < 4; i++)
		timer_init(&ftm[i], NULL, fake_fire, (void *)(intptr_t)i);
	fake_advance(10);
	timer_set(&ftm[0], 300);	/* stopped by 2 before it is due */
	timer_set(&ftm[1], 100);
	timer_set(&ftm[2], 100);	/* same time, set later: after 1 */
	ck_assert(timer_pending(&ftm[0]));
	ck_assert(!timer_pending(&ftm[3]));
	ck_assert_uint_eq(fake_armed(), 3);
	fake_advance(99);
	ck_assert_int_eq(fired.n, 0);
	fake_advance(1000);
	ck_assert_uint_eq(fake_now(), 1109);
	ck_assert_int_eq(fired.n, 3);
	ck_assert_int_eq(fired.id[0], 1);
	ck_assert_uint_eq(fired.at[0], 110);
	ck_assert_int_eq(fired.id[1], 2);
	ck_assert_uint_eq(fired.at[1], 110);
	ck_assert_int_eq(fired.id[2], 3);
	ck_assert_uint_eq(fired.at[2], 160);
	ck_assert(!timer_pending(&ftm[0]));
	ck_assert_uint_eq(fake_armed(), 0);

	/* Setting again reschedules; 0 ms fires on the next advance. */
	fired.n = 0;
	timer_set(&ftm[2], 200);
	timer_set(&ftm[2], 500);
	timer_set(&ftm[1], 0);
	ck_assert_uint_eq(fake_armed(), 2);
	fake_advance(0);
	ck_assert_int_eq(fired.n, 1);
	ck_assert_int_eq(fired.id[0], 1);
	ck_assert_uint_eq(fired.at[0], 1109);
	fake_advance(499);
	ck_assert_int_eq(fired.n, 2);		/* 3, set by 1 at +50 */
	ck_assert_int_eq(fired.id[1], 3);
	ck_assert_uint_eq(fired.at[1], 1159);
	fake_advance(1);
	ck_assert_int_eq(fired.n, 3);
	ck_assert_int_eq(fired.id[2], 2);
	ck_assert_uint_eq(fired.at[2], 1609);
}
END_TEST

START_TEST(fake_capture)
{
	struct tp_addr	a = addr("192.0.2.9", 5099);
	char		msg[32];
	int		i;

	ck_assert_int_eq(fake_nsent(), 0);
	ck_assert_ptr_null(fake_sent_last());
	for (i = 0; i < FAKE_SENT_MAX + 44; i++) {
		snprintf(msg, sizeof(msg), "dgram %d", i);
		ck_assert_int_eq(tp_send(NULL, &a, msg, strlen(msg)), 0);
	}
	ck_assert_int_eq(fake_nsent(), FAKE_SENT_MAX + 44);
	ck_assert_ptr_null(fake_sent(0));
	ck_assert_ptr_null(fake_sent(43));
	ck_assert_str_eq(fake_sent(44), "dgram 44");
	ck_assert_str_eq(fake_sent_last(), "dgram 299");
	ck_assert_uint_eq(fake_sent_len(FAKE_SENT_MAX + 43), 9);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(100)), 5099);
	ck_assert_ptr_null(fake_sent(FAKE_SENT_MAX + 44));
	fake_sent_clear();
	ck_assert_int_eq(fake_nsent(), 0);
	ck_assert_ptr_null(fake_sent(0));
}
END_TEST

/* Server transaction keys and matching, RFC 3261 17.2.3. */

START_TEST(server_key_3261)
{
	struct txn	*t = server_new(RQ("INVITE", VIA_A));
	struct sipmsg	*m;

	ck_assert_int_eq(t->kind, TXN_IST);
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_uint_eq(txn_count(), 1);

	m = request(RQ("INVITE", VIA_A));
	ck_assert_ptr_eq(txn_match_request(m), t);
	sipmsg_free(m);
	/* The rest of the request does not matter, the branch does. */
	m = request((struct rq){ "INVITE", "sip:other@example.net", VIA_A,
	    "zz", NULL, "other-call", 77 });
	ck_assert_ptr_eq(txn_match_request(m), t);
	sipmsg_free(m);
	m = request(RQ("INVITE",
	    "SIP/2.0/UDP 192.0.2.1:5063;branch=z9hG4bKsrv1"));
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	m = request(RQ("INVITE",
	    "SIP/2.0/UDP 192.0.2.2:5062;branch=z9hG4bKsrv1"));
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	m = request(RQ("INVITE",
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKsrv2"));
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	m = request(RQ("BYE", VIA_A));
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);

	/* The ACK for a non-2xx final response shares the branch. */
	m = request((struct rq){ "ACK", "sip:bob@example.com", VIA_A, "a1",
	    "b0b", "call-1@example.org", 1 });
	ck_assert_ptr_eq(txn_match_request(m), t);
	ck_assert_ptr_eq(txn_match_cancel(m), t);
	sipmsg_free(m);

	/* A CANCEL is its own transaction but finds the INVITE. */
	m = request(RQ("CANCEL", VIA_A));
	ck_assert_ptr_null(txn_match_request(m));
	ck_assert_ptr_eq(txn_match_cancel(m), t);
	sipmsg_free(m);
	m = request(RQ("CANCEL",
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKsrv9"));
	ck_assert_ptr_null(txn_match_cancel(m));
	sipmsg_free(m);
}
END_TEST

/* Port 5060 by default: "host" and "host:5060" are one sent-by. */
START_TEST(server_key_default_port)
{
	struct txn	*t = server_new(RQ("OPTIONS",
	    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKdp"));
	struct sipmsg	*m;

	ck_assert_int_eq(t->kind, TXN_NIST);
	ck_assert_int_eq(t->state, TXN_TRYING);
	m = request(RQ("OPTIONS",
	    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKdp"));
	ck_assert_ptr_eq(txn_match_request(m), t);
	sipmsg_free(m);
	/* A CANCEL finds only INVITE transactions. */
	m = request(RQ("CANCEL", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKdp"));
	ck_assert_ptr_null(txn_match_cancel(m));
	sipmsg_free(m);
}
END_TEST

#define VIA_2543	"SIP/2.0/UDP 192.0.2.1:5062"

/* RFC 3261 17.2.3, the RFC 2543 rule: no magic cookie in the branch. */
START_TEST(server_key_2543)
{
	struct rq	 r = RQ("INVITE", VIA_2543);
	struct txn	*t = server_new(r);
	struct rq	 x;
	struct sipmsg	*m;

	m = request(r);
	ck_assert(!sipmsg_magic(m));
	ck_assert_ptr_eq(txn_match_request(m), t);
	sipmsg_free(m);

	x = r;
	x.ruri = "sip:carol@example.com";
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	x = r;
	x.from_tag = "other";
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	x = r;
	x.callid = "call-2@example.org";
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	x = r;
	x.cseq = 2;
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	x = r;
	x.via = "SIP/2.0/UDP 192.0.2.1:5063";
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	x = r;
	x.via = "SIP/2.0/UDP 192.0.2.1:5062;branch=1234";	/* no cookie */
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);

	/* ACK (with the To tag of our answer) and CANCEL find it. */
	x = r;
	x.method = "ACK";
	x.to_tag = "b0b";
	m = request(x);
	ck_assert_ptr_eq(txn_match_request(m), t);
	sipmsg_free(m);
	x = r;
	x.method = "CANCEL";
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	ck_assert_ptr_eq(txn_match_cancel(m), t);
	sipmsg_free(m);

	/* After a 2xx the ACK is a transaction of its own. */
	ck_assert_int_eq(reply(t, 200), 0);
	ck_assert_int_eq(t->state, TXN_ACCEPTED);
	x = r;
	x.method = "ACK";
	x.to_tag = "b0b";
	m = request(x);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
}
END_TEST

/* Responses go to the source address; the port per rport (RFC 3581). */
START_TEST(server_peer)
{
	struct tp_addr	 src = addr("198.51.100.7", 40000);
	struct txn	*t1, *t2;

	t1 = txn_server_new(request(RQ("OPTIONS",
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKp1")), NULL, &src);
	t2 = txn_server_new(request(RQ("OPTIONS",
	    "SIP/2.0/UDP 192.0.2.1:5062;rport;branch=z9hG4bKp2")), NULL, &src);
	ck_assert_int_eq(reply(t1, 200), 0);
	ck_assert_int_eq(reply(t2, 200), 0);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(0)), 5062);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(1)), 40000);
	ck_assert_int_eq(tp_addr_family(fake_sent_peer(0)), AF_INET);
}
END_TEST

/* INVITE server transaction, RFC 3261 17.2.1. */

START_TEST(ist_non2xx_timer_g_h)
{
	struct txn	*t = server_new(RQ("INVITE", VIA_A));
	struct sipmsg	*m;
	const uint64_t	 g[] = { 500, 1500, 3500, 7500, 11500, 15500, 19500,
	    23500, 27500, 31500 };
	uint64_t	 want[NELEM(g)];
	size_t		 i;

	fake_advance(100);
	ck_assert_int_eq(reply(t, 180), 0);
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_int_eq(fake_nsent(), 1);
	ck_sent_reply(0, 180);
	/* A retransmitted INVITE gets the last provisional again. */
	m = request(RQ("INVITE", VIA_A));
	ck_assert_ptr_eq(txn_match_request(m), t);
	txn_server_retransmit(t, m);
	sipmsg_free(m);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_sent_reply(1, 180);

	fake_advance(900);	/* at 1000 */
	fake_sent_clear();
	ck_assert_int_eq(reply(t, 486), 0);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(t->code, 486);
	ck_assert_int_eq(fake_nsent(), 1);
	ck_sent_reply(0, 486);
	/* Another final response is refused. */
	ck_assert_int_eq(reply(t, 603), -1);
	ck_assert_int_eq(fake_nsent(), 1);
	/* A retransmitted INVITE now gets the 486 again. */
	m = request(RQ("INVITE", VIA_A));
	txn_server_retransmit(t, m);
	sipmsg_free(m);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_sent_reply(1, 486);
	fake_sent_clear();
	ck_assert_int_eq(reply(t, 486), -1);	/* still refused */

	/* Timer G: T1, then doubling up to T2, until Timer H at 64*T1. */
	fake_advance(64 * T1 - 1);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_uint_eq(txn_count(), 1);
	ck_assert_int_eq(cb.nterm, 0);
	for (i = 0; i < NELEM(g); i++)
		want[i] = 1000 + g[i];		/* from COMPLETED at 1000 */
	ck_sent_times(0, want, NELEM(want));
	for (i = 0; i < NELEM(g); i++)
		ck_sent_reply(i, 486);
	fake_advance(1);	/* H */
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_ptr_eq(cb.term[0], t);
	ck_assert_int_eq(cb.term_state, TXN_TERMINATED);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_int_eq(fake_nsent(), (int)NELEM(g));
	m = request(RQ("INVITE", VIA_A));
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
	fake_advance(100000);
	ck_assert_int_eq(fake_nsent(), (int)NELEM(g));
	ck_assert_uint_eq(fake_armed(), 0);
}
END_TEST

START_TEST(ist_ack_confirmed_timer_i)
{
	struct txn	*t = server_new(RQ("INVITE", VIA_A));
	struct sipmsg	*ack;

	ck_assert_int_eq(reply(t, 486), 0);
	fake_advance(T1);			/* G once */
	ck_assert_int_eq(fake_nsent(), 2);
	ack = request((struct rq){ "ACK", "sip:bob@example.com", VIA_A, "a1",
	    "b0b", "call-1@example.org", 1 });
	ck_assert_ptr_eq(txn_match_request(ack), t);
	txn_server_retransmit(t, ack);
	ck_assert_int_eq(t->state, TXN_CONFIRMED);
	ck_assert_int_eq(fake_nsent(), 2);
	/* No more G; a retransmitted ACK is absorbed. */
	fake_advance(T4 - 1);
	txn_server_retransmit(t, ack);
	ck_assert_int_eq(t->state, TXN_CONFIRMED);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert_uint_eq(txn_count(), 1);
	fake_advance(1);			/* I */
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_ptr_null(txn_match_request(ack));
	ck_assert_int_eq(fake_nsent(), 2);
	sipmsg_free(ack);
}
END_TEST

/* RFC 6026: a 2xx moves to Accepted; later 2xx still go out. */
START_TEST(ist_2xx_accepted)
{
	struct txn	*t = server_new(RQ("INVITE", VIA_A));

	ck_assert_int_eq(reply(t, 183), 0);
	ck_assert_int_eq(reply(t, 200), 0);
	ck_assert_int_eq(t->state, TXN_ACCEPTED);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_sent_reply(1, 200);
	fake_advance(10000);
	ck_assert_int_eq(fake_nsent(), 2);	/* the TU retransmits 2xx */
	ck_assert_int_eq(reply(t, 202), 0);	/* another fork's 2xx */
	ck_assert_int_eq(fake_nsent(), 3);
	ck_sent_reply(2, 202);
	ck_assert_int_eq(t->state, TXN_ACCEPTED);
	ck_assert_int_eq(reply(t, 486), -1);
	ck_assert_int_eq(reply(t, 180), -1);
	ck_assert_int_eq(fake_nsent(), 3);
	fake_advance(64 * T1 - 10000 - 1);
	ck_assert_uint_eq(txn_count(), 1);
	fake_advance(1);			/* L */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_int_eq(fake_nsent(), 3);
}
END_TEST

/* Non-INVITE server transaction, RFC 3261 17.2.2. */
START_TEST(nist_final_timer_j)
{
	struct txn	*t = server_new(RQ("BYE", VIA_A));
	struct sipmsg	*m;

	ck_assert_int_eq(t->kind, TXN_NIST);
	ck_assert_int_eq(t->state, TXN_TRYING);
	/* TRYING: a retransmission is absorbed, nothing was said yet. */
	m = request(RQ("BYE", VIA_A));
	txn_server_retransmit(t, m);
	ck_assert_int_eq(fake_nsent(), 0);
	ck_assert_int_eq(reply(t, 100), 0);
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_int_eq(reply(t, 200), 0);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_sent_reply(1, 200);
	ck_assert_int_eq(reply(t, 500), -1);
	txn_server_retransmit(t, m);
	ck_assert_int_eq(fake_nsent(), 3);
	ck_sent_reply(2, 200);
	fake_advance(64 * T1 - 1);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(fake_nsent(), 3);	/* none of its own */
	fake_advance(1);			/* J */
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
}
END_TEST

/* Client transactions. */

#define ICT_BRANCH	"z9hG4bKict1"
#define SENT_INVITE							\
	"INVITE sip:bob@192.0.2.4:5080 SIP/2.0\r\n"			\
	"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=" ICT_BRANCH "\r\n"	\
	"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1;rport=5062\r\n" \
	"Max-Forwards: 69\r\n"						\
	"To: <sip:bob@example.com>\r\n"					\
	"From: <sip:alice@example.org>;tag=a1\r\n"			\
	"Call-ID: ict-call@example.org\r\n"				\
	"CSeq: 42 INVITE\r\n"						\
	"Content-Length: 0\r\n"						\
	"\r\n"

static struct txn *
client_new(enum txn_kind kind, const char *branch, const char *method,
    const char *text)
{
	struct tp_addr	 peer = addr("192.0.2.4", 5080);
	char		*bytes = strdup(text);

	ck_assert_ptr_nonnull(bytes);
	return (txn_client_new(kind, S(branch), S(method), bytes,
	    strlen(bytes), NULL, &peer, &owner, 3));
}

static struct txn *
ict_new(void)
{
	return (client_new(TXN_ICT, ICT_BRANCH, "INVITE", SENT_INVITE));
}

/* Over TCP: nothing is retransmitted; Timer B still ends it (17.1.1.2). */
START_TEST(ict_reliable_no_timer_a)
{
	struct tp_addr	 peer = addr("192.0.2.4", 5080);
	struct txn	*t;

	peer.proto = TP_TCP;
	t = txn_client_new(TXN_ICT, S(ICT_BRANCH), S("INVITE"),
	    strdup(SENT_INVITE), strlen(SENT_INVITE), NULL, &peer, &owner, 3);
	ck_assert_int_eq(fake_nsent(), 1);
	fake_advance(64 * T1 - 1);
	ck_assert_int_eq(fake_nsent(), 1);		/* no Timer A */
	ck_assert_int_eq(t->state, TXN_CALLING);
	fake_advance(1);				/* B */
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert_uint_eq(txn_count(), 0);
}
END_TEST

/* The connection is gone: a transport error at once, then terminated. */
START_TEST(ict_transport_lost)
{
	struct tp_addr	 peer = addr("192.0.2.4", 5080), other;
	struct txn	*t;

	peer.proto = TP_TCP;
	other = peer;
	other.proto = TP_UDP;			/* same address, not the flow */
	ntransport_error = 0;
	t = txn_client_new(TXN_ICT, S(ICT_BRANCH), S("INVITE"),
	    strdup(SENT_INVITE), strlen(SENT_INVITE), NULL, &peer, &owner, 3);
	txn_transport_lost(&other);
	ck_assert_int_eq(ntransport_error, 0);
	ck_assert_int_eq(t->state, TXN_CALLING);
	peer.flags = TP_ADDR_FLOW;		/* flags do not count */
	txn_transport_lost(&peer);
	ck_assert_int_eq(ntransport_error, 1);
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.ntimeout, 0);
}
END_TEST

/* Over TCP Timer J is zero: the final ends a NIST on the next turn. */
START_TEST(nist_reliable_timer_j_zero)
{
	struct tp_addr	 src = addr("192.0.2.1", 5062);
	struct txn	*t;

	src.proto = TP_TCP;
	t = txn_server_new(request(RQ("OPTIONS", VIA_A)), NULL, &src);
	t->owner = &owner;
	ck_assert_int_eq(reply(t, 200), 0);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	fake_advance(0);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.nterm, 1);
}
END_TEST

/* A response from the next hop to what we sent with branch. */
static struct sipmsg *
response(int code, const char *branch, const char *to_tag, unsigned cseq,
    const char *method)
{
	char	text[1024];

	snprintf(text, sizeof(text),
	    "SIP/2.0 %d %s\r\n"
	    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=%s\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1;rport=5062\r\n"
	    "To: <sip:bob@example.com>%s%s\r\n"
	    "From: <sip:alice@example.org>;tag=a1\r\n"
	    "Call-ID: ict-call@example.org\r\n"
	    "CSeq: %u %s\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n", code, sip_reason(code), branch, to_tag ? ";tag=" : "",
	    to_tag ? to_tag : "", cseq, method);
	return (parse(text));
}

/* Feed a response to the ICT the way the proxy does: matched first. */
static void
ict_recv(struct txn *t, int code, const char *to_tag)
{
	struct sipmsg	*r = response(code, ICT_BRANCH, to_tag, 42, "INVITE");

	ck_assert_ptr_eq(txn_match_response(r), t);
	txn_client_response(t, r);
	sipmsg_free(r);
}

START_TEST(ict_timer_a_b)
{
	struct txn	*t = ict_new();
	const uint64_t	 a[] = { 0, 500, 1500, 3500, 7500, 15500, 31500 };
	int		 i;

	ck_assert_int_eq(t->kind, TXN_ICT);
	ck_assert_int_eq(t->state, TXN_CALLING);
	ck_assert_uint_eq(txn_count(), 1);
	ck_assert_int_eq(fake_nsent(), 1);
	ck_assert_str_eq(fake_sent(0), SENT_INVITE);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(0)), 5080);
	fake_advance(64 * T1 - 1);
	ck_sent_times(0, a, NELEM(a));
	for (i = 0; i < fake_nsent(); i++)
		ck_assert_str_eq(fake_sent(i), SENT_INVITE);
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_int_eq(t->state, TXN_CALLING);
	fake_advance(1);			/* B */
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert(!cb.timer_c[0]);
	ck_assert_uint_eq(cb.timeout_at[0], 64 * T1);
	ck_assert_int_eq(cb.timeout_state[0], TXN_CALLING);
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_ptr_eq(cb.term[0], t);
	ck_assert_uint_eq(txn_count(), 0);
	fake_advance(100000);
	ck_assert_int_eq(fake_nsent(), (int)NELEM(a));
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert_uint_eq(fake_armed(), 0);
}
END_TEST

/*
 * The timer heap keys transactions by the low 32 bits of their due time:
 * across the wrap (49 days of clock) Timers A and B still fire in order,
 * and the earlier of two transactions first.
 */
START_TEST(timer_heap_wraps)
{
	const uint64_t	 start = (1ULL << 32) - 2000;
	const uint64_t	 a[] = { 0, 500, 1500, 3500, 7500, 15500, 31500 };
	struct txn	*t, *u;
	int		 i;

	fake_advance((uint32_t)start);
	t = ict_new();
	fake_advance(1000);
	u = client_new(TXN_NICT, "z9hG4bKwrap", "OPTIONS", SENT_INVITE);
	ck_assert_ptr_nonnull(u);
	fake_advance(64 * T1 - 1000 - 1);
	for (i = 0; i < (int)NELEM(a); i++)	/* t's, among u's */
		ck_assert_int_gt(fake_nsent(), i);
	ck_assert_int_eq(cb.ntimeout, 0);
	fake_advance(1);			/* B */
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert_uint_eq(cb.timeout_at[0], start + 64 * T1);
	ck_assert_ptr_eq(cb.term[0], t);	/* freed since */
	fake_advance(1000);			/* F, 1 s later */
	ck_assert_int_eq(cb.ntimeout, 2);
	ck_assert_uint_eq(cb.timeout_at[1], start + 1000 + 64 * T1);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_uint_eq(fake_armed(), 0);
}
END_TEST

START_TEST(ict_provisional_proceeding)
{
	struct txn	*t = ict_new();
	struct sipmsg	*r;

	fake_advance(600);			/* one retransmission */
	ck_assert_int_eq(fake_nsent(), 2);
	ict_recv(t, 180, "b0b");
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_int_eq(cb.nresp, 1);
	ck_assert_int_eq(cb.code[0], 180);
	ck_assert_ptr_eq(cb.resp_txn[0], t);
	fake_advance(200000);
	ck_assert_int_eq(fake_nsent(), 2);	/* no more A, no B */
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_uint_eq(txn_count(), 1);

	/* Only our branch and method match. */
	r = response(180, "z9hG4bKother", "b0b", 42, "INVITE");
	ck_assert_ptr_null(txn_match_response(r));
	sipmsg_free(r);
	r = response(200, ICT_BRANCH, "b0b", 42, "CANCEL");
	ck_assert_ptr_null(txn_match_response(r));
	sipmsg_free(r);
}
END_TEST

START_TEST(ict_non2xx_ack)
{
	struct txn	*t = ict_new();
	struct sipmsg	*ack, *r;
	const char	*sent;
	int		 n;

	ict_recv(t, 180, "b0b");
	fake_advance(1000);
	ict_recv(t, 486, "b0b");
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(cb.nresp, 2);
	ck_assert_int_eq(cb.code[1], 486);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert_ptr_nonnull(sent = fake_sent(1));
	ack = parse(sent);
	ck_assert_int_eq(ack->method, SM_ACK);
	ck_assert_slice_eq(ack->ruri, "sip:bob@192.0.2.4:5080");
	ck_assert_slice_eq(ack->branch, ICT_BRANCH);
	ck_assert_slice_eq(ack->via_host, "203.0.113.1");
	ck_assert_slice_eq(ack->to_tag, "b0b");
	ck_assert_slice_eq(ack->from_tag, "a1");
	ck_assert_slice_eq(ack->callid, "ict-call@example.org");
	ck_assert_uint_eq(ack->cseq, 42);
	ck_assert_slice_eq(ack->cseq_method, "ACK");
	sipmsg_free(ack);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(1)), 5080);

	/* The 486 again: the ACK again, nothing for the user. */
	ict_recv(t, 486, "b0b");
	ck_assert_int_eq(fake_nsent(), 3);
	ck_assert_str_eq(fake_sent(2), fake_sent(1));
	ck_assert_int_eq(cb.nresp, 2);
	/* A late provisional or 2xx changes nothing. */
	r = response(180, ICT_BRANCH, "b0b", 42, "INVITE");
	txn_client_response(t, r);
	sipmsg_free(r);
	ck_assert_int_eq(cb.nresp, 2);
	ck_assert_int_eq(t->state, TXN_COMPLETED);

	/* Timer D, then gone; no timeout reported. */
	n = fake_nsent();
	fake_advance(TD - 1);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(fake_nsent(), n);
	fake_advance(1);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_int_eq(cb.ntimeout, 0);
}
END_TEST

/* A final response straight in CALLING: ACKed, no more Timer A. */
START_TEST(ict_non2xx_from_calling)
{
	struct txn	*t = ict_new();
	struct sipmsg	*ack;

	fake_advance(T1);
	ck_assert_int_eq(fake_nsent(), 2);
	ict_recv(t, 603, "dec");
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(fake_nsent(), 3);
	ack = parse(fake_sent(2));
	ck_assert_int_eq(ack->method, SM_ACK);
	ck_assert_slice_eq(ack->branch, ICT_BRANCH);
	ck_assert_slice_eq(ack->to_tag, "dec");
	sipmsg_free(ack);
	fake_advance(TD - 1);
	ck_assert_int_eq(fake_nsent(), 3);
	ck_assert_int_eq(cb.ntimeout, 0);
}
END_TEST

/* RFC 6026: every 2xx reaches the user; the ACK is not ours to send. */
START_TEST(ict_2xx_accepted)
{
	struct txn	*t = ict_new();

	ict_recv(t, 200, "fork1");
	ck_assert_int_eq(t->state, TXN_ACCEPTED);
	ict_recv(t, 200, "fork2");
	ict_recv(t, 200, "fork1");
	ck_assert_int_eq(cb.nresp, 3);
	ck_assert_int_eq(cb.code[0], 200);
	ck_assert_int_eq(cb.code[1], 200);
	ck_assert_int_eq(cb.code[2], 200);
	ict_recv(t, 486, "fork3");
	ck_assert_int_eq(cb.nresp, 3);
	ck_assert_int_eq(fake_nsent(), 1);	/* the INVITE only */
	fake_advance(64 * T1 - 1);
	ck_assert_int_eq(t->state, TXN_ACCEPTED);
	ck_assert_int_eq(fake_nsent(), 1);
	fake_advance(1);			/* M */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_int_eq(cb.nterm, 1);
}
END_TEST

static void
ck_cancel(const char *text, const char *reason)
{
	struct sipmsg		*c = parse(text);
	const struct sip_hline	*h;

	ck_assert_int_eq(c->method, SM_CANCEL);
	ck_assert_slice_eq(c->ruri, "sip:bob@192.0.2.4:5080");
	ck_assert_slice_eq(c->branch, ICT_BRANCH);
	ck_assert_slice_eq(c->callid, "ict-call@example.org");
	ck_assert_slice_eq(c->from_tag, "a1");
	ck_assert_uint_eq(c->to_tag.len, 0);
	ck_assert_uint_eq(c->cseq, 42);
	ck_assert_slice_eq(c->cseq_method, "CANCEL");
	h = sipmsg_hdr(c, SH_REASON);
	if (reason == NULL)
		ck_assert_ptr_null(h);
	else {
		ck_assert_ptr_nonnull(h);
		ck_assert_slice_eq(sipmsg_hvalue(c, h), reason);
	}
	sipmsg_free(c);
}

/*
 * Once a provisional stops Timer A, the INVITE client transaction keeps of
 * its INVITE only the lines its CANCEL and ACK copy (compact names and a
 * folded line included), no body; both still carry exactly the INVITE's
 * Request-URI, top Via, From, To, Call-ID, CSeq number and Route set.
 */
#define SENT_INVITE_BODY						\
	"INVITE sip:bob@192.0.2.4:5080 SIP/2.0\r\n"			\
	"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=" ICT_BRANCH "\r\n"	\
	"Record-Route: <sip:203.0.113.1;lr>\r\n"			\
	"v: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1;rport=5062\r\n" \
	"Route: <sip:192.0.2.9;lr>\r\n"					\
	"route: <sip:192.0.2.4:5080;lr>\r\n"				\
	"Max-Forwards: 69\r\n"						\
	"t: <sip:bob@example.com>\r\n"					\
	"f: <sip:alice@example.org>\r\n"				\
	" ;tag=a1\r\n"							\
	"Contact: <sip:alice@192.0.2.1:5062>\r\n"			\
	"i: ict-call@example.org\r\n"					\
	"CSeq : 42 INVITE\r\n"						\
	"Content-Type: application/sdp\r\n"				\
	"Content-Length: 13\r\n"						\
	"\r\n"								\
	"v=0\r\ns=-\r\nt=0"

static void
ck_routes(const char *text)
{
	struct sipmsg	*m = parse(text);
	struct slice	 v[4];

	ck_assert_uint_eq(sipmsg_values(m, SH_ROUTE, v, 4), 2);
	ck_assert_slice_eq(v[0], "<sip:192.0.2.9;lr>");
	ck_assert_slice_eq(v[1], "<sip:192.0.2.4:5080;lr>");
	ck_assert_uint_eq(m->nvias, 1);
	ck_assert_ptr_null(sipmsg_hdr(m, SH_RECORD_ROUTE));
	ck_assert_ptr_null(sipmsg_hdr(m, SH_CONTACT));
	sipmsg_free(m);
}

START_TEST(ict_compact_after_provisional)
{
	struct txn	*t = client_new(TXN_ICT, ICT_BRANCH, "INVITE",
			    SENT_INVITE_BODY);
	size_t		 before = txn_bytes();
	const char	*sent;

	ck_assert_uint_eq(t->outlen, strlen(SENT_INVITE_BODY));
	fake_advance(T1);			/* A: the whole INVITE again */
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert_str_eq(fake_sent(1), SENT_INVITE_BODY);
	ict_recv(t, 180, "b0b");
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_uint_lt(t->outlen, strlen(SENT_INVITE_BODY) - 150);
	ck_assert_uint_lt(txn_bytes(), before);
	ck_assert_ptr_null(memmem(t->out, t->outlen, "v=0", 3));
	ck_routes(t->out);
	txn_client_cancel(t, NULL);
	ck_assert_int_eq(fake_nsent(), 3);
	ck_assert_ptr_nonnull(sent = fake_sent(2));
	ck_cancel(sent, NULL);
	ck_routes(sent);
	ict_recv(t, 487, "b0b");
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_ptr_nonnull(sent = fake_sent(fake_nsent() - 1));
	ck_assert_ptr_nonnull(strstr(sent, "ACK sip:bob@192.0.2.4:5080 "));
	ck_assert_ptr_nonnull(strstr(sent, "branch=" ICT_BRANCH "\r\n"));
	ck_assert_ptr_nonnull(strstr(sent, "f: <sip:alice@example.org>\r\n"
	    " ;tag=a1\r\n"));
	ck_assert_ptr_nonnull(strstr(sent, "CSeq: 42 ACK\r\n"));
	ck_routes(sent);
}
END_TEST

/* RFC 3261 9.1: no CANCEL before a provisional response. */
START_TEST(ict_cancel_waits_for_provisional)
{
	struct txn	*t = ict_new();
	struct txn	*ct;
	struct sipmsg	*r;
	int		 i;

	txn_client_cancel(t, NULL);
	ck_assert_int_eq(fake_nsent(), 1);
	ck_assert(t->cancel_pending);
	ck_assert(!t->cancel_sent);
	ck_assert_uint_eq(txn_count(), 1);
	fake_advance(1000);			/* A goes on meanwhile */
	ck_assert_int_eq(fake_nsent(), 2);
	for (i = 0; i < fake_nsent(); i++)
		ck_assert_str_eq(fake_sent(i), SENT_INVITE);

	ict_recv(t, 180, "b0b");
	ck_assert_int_eq(fake_nsent(), 3);
	ck_cancel(fake_sent(2), NULL);
	ck_assert(t->cancel_sent);
	ck_assert(!t->cancel_pending);
	ck_assert_uint_eq(txn_count(), 2);	/* the CANCEL's own */
	txn_client_cancel(t, NULL);		/* once only */
	ck_assert_int_eq(fake_nsent(), 3);

	/* The CANCEL is a NICT of its own: Timer E retransmits it. */
	fake_advance(T1);
	ck_assert_int_eq(fake_nsent(), 4);
	ck_cancel(fake_sent(3), NULL);
	r = response(200, ICT_BRANCH, "b0b", 42, "CANCEL");
	ck_assert_ptr_nonnull(ct = txn_match_response(r));
	ck_assert_ptr_ne(ct, t);
	ck_assert_int_eq(ct->kind, TXN_NICT);
	txn_client_response(ct, r);
	sipmsg_free(r);
	ck_assert_int_eq(ct->state, TXN_COMPLETED);
	ck_assert_int_eq(cb.nresp, 1);		/* the 180 only */

	ict_recv(t, 487, "b0b");
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(cb.nresp, 2);
	ck_assert_int_eq(cb.code[1], 487);
	r = parse(fake_sent_last());
	ck_assert_int_eq(r->method, SM_ACK);
	sipmsg_free(r);
	fake_advance(TD);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.ntimeout, 0);
}
END_TEST

/* In PROCEEDING the CANCEL goes at once; 64*T1 later the INVITE gives up. */
START_TEST(ict_cancel_in_proceeding)
{
	struct txn	*t = ict_new();

	ict_recv(t, 183, "b0b");
	fake_advance(5000);
	ck_assert_int_eq(fake_nsent(), 1);
	txn_client_cancel(t, "SIP;cause=480;text=\"Timeout\"");
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert_uint_eq(fake_sent_at(1), 5000);
	ck_cancel(fake_sent(1), "SIP;cause=480;text=\"Timeout\"");
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(1)), 5080);
	ck_assert_uint_eq(txn_count(), 2);
	fake_advance(64 * T1 - 1);
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	fake_advance(1);
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert(!cb.timer_c[0]);
	ck_assert_int_eq(cb.timeout_state[0], TXN_PROCEEDING);
	ck_assert_int_eq(cb.nterm, 1);		/* the CANCEL has no owner */
	ck_assert_uint_eq(txn_count(), 0);
}
END_TEST

START_TEST(ict_cancel_after_final)
{
	struct txn	*t = ict_new();

	ict_recv(t, 486, "b0b");
	ck_assert_int_eq(fake_nsent(), 2);
	txn_client_cancel(t, NULL);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert(!t->cancel_pending);
	ck_assert(!t->cancel_sent);
	ck_assert_uint_eq(txn_count(), 1);
}
END_TEST

#define NICT_BRANCH	"z9hG4bKnict1"
#define SENT_OPTIONS							\
	"OPTIONS sip:bob@192.0.2.4:5080 SIP/2.0\r\n"			\
	"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=" NICT_BRANCH "\r\n"	\
	"Max-Forwards: 70\r\n"						\
	"To: <sip:bob@example.com>\r\n"					\
	"From: <sip:alice@example.org>;tag=a1\r\n"			\
	"Call-ID: nict-call@example.org\r\n"				\
	"CSeq: 7 OPTIONS\r\n"						\
	"Content-Length: 0\r\n"						\
	"\r\n"

static struct txn *
nict_new(void)
{
	return (client_new(TXN_NICT, NICT_BRANCH, "OPTIONS", SENT_OPTIONS));
}

static void
nict_recv(struct txn *t, int code)
{
	struct sipmsg	*r = response(code, NICT_BRANCH, "b0b", 7, "OPTIONS");

	ck_assert_ptr_eq(txn_match_response(r), t);
	txn_client_response(t, r);
	sipmsg_free(r);
}

/* RFC 3261 17.1.2.2: E doubles up to T2; F after 64*T1. */
START_TEST(nict_timer_e_f)
{
	struct txn	*t = nict_new();
	const uint64_t	 e[] = { 0, 500, 1500, 3500, 7500, 11500, 15500,
	    19500, 23500, 27500, 31500 };
	int		 i;

	ck_assert_int_eq(t->kind, TXN_NICT);
	ck_assert_int_eq(t->state, TXN_TRYING);
	fake_advance(64 * T1 - 1);
	ck_sent_times(0, e, NELEM(e));
	for (i = 0; i < fake_nsent(); i++)
		ck_assert_str_eq(fake_sent(i), SENT_OPTIONS);
	ck_assert_int_eq(cb.ntimeout, 0);
	fake_advance(1);			/* F */
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert(!cb.timer_c[0]);
	ck_assert_int_eq(cb.timeout_state[0], TXN_TRYING);
	ck_assert_int_eq(cb.nterm, 1);
	ck_assert_uint_eq(txn_count(), 0);
	fake_advance(100000);
	ck_assert_int_eq(fake_nsent(), (int)NELEM(e));
}
END_TEST

/* In PROCEEDING, E fires every T2; F still counts from the start. */
START_TEST(nict_proceeding_t2)
{
	struct txn	*t = nict_new();
	const uint64_t	 e[] = { 0, 500, 4500, 8500, 12500, 16500, 20500,
	    24500, 28500 };

	fake_advance(100);
	nict_recv(t, 100);
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_int_eq(cb.nresp, 1);
	fake_advance(64 * T1 - 101);
	ck_sent_times(0, e, NELEM(e));
	ck_assert_int_eq(cb.ntimeout, 0);
	fake_advance(1);
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert_int_eq(cb.timeout_state[0], TXN_PROCEEDING);
	ck_assert_uint_eq(txn_count(), 0);
}
END_TEST

START_TEST(nict_final_timer_k)
{
	struct txn	*t = nict_new();

	fake_advance(700);
	ck_assert_int_eq(fake_nsent(), 2);
	nict_recv(t, 200);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(cb.nresp, 1);
	ck_assert_int_eq(cb.code[0], 200);
	nict_recv(t, 200);			/* absorbed */
	ck_assert_int_eq(cb.nresp, 1);
	fake_advance(T4 - 1);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	fake_advance(1);			/* K */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_int_eq(cb.nterm, 1);
}
END_TEST

/* Timer C (RFC 3261 16.6 step 11): reset by provisionals above 100. */
START_TEST(ict_timer_c)
{
	struct txn_settings	 s = settings;
	struct txn		*t;

	s.c_ms = 1000;
	txn_set_settings(&s);
	t = ict_new();
	txn_client_arm_c(t);
	fake_advance(100);
	ict_recv(t, 180, "b0b");		/* C again: due at 1100 */
	fake_advance(400);
	ict_recv(t, 100, NULL);			/* no reset */
	fake_advance(599);
	ck_assert_int_eq(cb.ntimeout, 0);
	fake_advance(1);
	ck_assert_int_eq(cb.ntimeout, 1);
	ck_assert(cb.timer_c[0]);
	ck_assert_uint_eq(cb.timeout_at[0], 1100);
	ck_assert_int_eq(cb.timeout_state[0], TXN_PROCEEDING);
	/* The user decides (CANCEL); the transaction stays. */
	ck_assert_int_eq(t->state, TXN_PROCEEDING);
	ck_assert_uint_eq(txn_count(), 1);
	fake_advance(100000);
	ck_assert_int_eq(cb.ntimeout, 1);
}
END_TEST

START_TEST(ict_timer_c_calling)
{
	struct txn_settings	 s = settings;
	struct txn		*t;

	s.c_ms = 1000;
	txn_set_settings(&s);
	t = ict_new();
	txn_client_arm_c(t);
	fake_advance(64 * T1);
	ck_assert_int_eq(cb.ntimeout, 2);
	ck_assert(cb.timer_c[0]);
	ck_assert_uint_eq(cb.timeout_at[0], 1000);
	ck_assert(!cb.timer_c[1]);		/* then B */
	ck_assert_uint_eq(cb.timeout_at[1], 64 * T1);
	ck_assert_ptr_eq(cb.term[0], t);
	ck_assert_uint_eq(txn_count(), 0);
}
END_TEST

START_TEST(ict_timer_c_stopped_by_final)
{
	struct txn_settings	 s = settings;
	struct txn		*t;

	s.c_ms = 1000;
	txn_set_settings(&s);
	t = ict_new();
	txn_client_arm_c(t);
	ict_recv(t, 180, "b0b");
	fake_advance(500);
	ict_recv(t, 486, "b0b");
	fake_advance(100000);
	ck_assert_int_eq(cb.ntimeout, 0);
	ck_assert_uint_eq(txn_count(), 0);
}
END_TEST

/* Transactions come and go by the thousand; the table ends empty. */
#define CHURN_TXNS	10000
#define CHURN_BATCH	1000

START_TEST(table_churn)
{
	int		 i, made = 0;
	char		 via[128];
	struct sipmsg	*m;

	for (i = 0; i < CHURN_TXNS; i++) {
		bool		 invite = i % 2 == 0;
		struct txn	*t;

		snprintf(via, sizeof(via),
		    "SIP/2.0/UDP 192.0.2.%d:5062;branch=z9hG4bKchurn%d",
		    1 + i % 200, i);
		t = server_new(RQ(invite ? "INVITE" : "OPTIONS", via));
		made++;
		ck_assert_ptr_eq(txn_match_request(t->req), t);
		ck_assert_int_eq(reply(t, invite ? 486 : 200), 0);
		if (invite && i % 4 == 0) {
			m = request((struct rq){ "ACK", "sip:bob@example.com",
			    via, "a1", "b0b", "call-1@example.org", 1 });
			ck_assert_ptr_eq(txn_match_request(m), t);
			txn_server_retransmit(t, m);
			ck_assert_int_eq(t->state, TXN_CONFIRMED);
			sipmsg_free(m);
		}
		if (made % CHURN_BATCH == 0) {
			ck_assert_uint_eq(txn_count(), made - cb.nterm);
			fake_advance(64 * T1 / 10);
			ck_assert_uint_eq(txn_count(), made - cb.nterm);
		}
	}
	ck_assert_int_gt(cb.nterm, 0);
	ck_assert_int_lt(cb.nterm, CHURN_TXNS);
	fake_advance(64 * T1);
	ck_assert_int_eq(cb.nterm, CHURN_TXNS);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_uint_eq(txn_open(), 0);
	ck_assert_uint_eq(txn_bytes(), 0);
	ck_assert_uint_eq(fake_armed(), 0);
	snprintf(via, sizeof(via),
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKchurn%d", 0);
	m = request(RQ("INVITE", via));
	ck_assert_ptr_null(txn_match_request(m));
	sipmsg_free(m);
}
END_TEST

/*
 * txn_open() counts the transactions with work left (a final to wait for,
 * or Timer G); the completed ones count only in txn_bytes(), and drop the
 * bytes they never send again.
 */
START_TEST(table_open_and_bytes)
{
	struct txn	*ist1, *ist2, *nist, *ict, *nict;
	struct sipmsg	*ack;
	size_t		 b;

	ck_assert_uint_eq(txn_open(), 0);
	ck_assert_uint_eq(txn_bytes(), 0);
	ist1 = server_new(RQ("INVITE", VIA_A));
	ck_assert_uint_eq(txn_open(), 1);
	ck_assert_uint_gt(txn_bytes(), sizeof(*ist1) + ist1->req->len);
	ck_assert_int_eq(reply(ist1, 486), 0);
	ck_assert_uint_eq(txn_open(), 1);	/* Timer G until the ACK */
	ack = request((struct rq){ "ACK", "sip:bob@example.com", VIA_A, "a1",
	    "b0b", "call-1@example.org", 1 });
	b = txn_bytes();
	txn_server_retransmit(ist1, ack);
	sipmsg_free(ack);
	ck_assert_int_eq(ist1->state, TXN_CONFIRMED);
	ck_assert_uint_eq(txn_open(), 0);
	ck_assert_ptr_null(ist1->out);
	ck_assert_uint_eq(txn_bytes(), b - strlen(reply_text(486)));

	ist2 = server_new(RQ("INVITE",
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKsrv2"));
	ck_assert_int_eq(reply(ist2, 200), 0);
	ck_assert_int_eq(ist2->state, TXN_ACCEPTED);
	ck_assert_ptr_null(ist2->out);		/* sent; the TU resends 2xx */
	ck_assert_int_eq(reply(ist2, 200), 0);	/* another fork's */
	ck_assert_ptr_null(ist2->out);
	nist = server_new(RQ("BYE",
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKsrv3"));
	ck_assert_uint_eq(txn_open(), 1);
	ck_assert_int_eq(reply(nist, 200), 0);
	ck_assert_ptr_nonnull(nist->out);	/* for a retransmitted BYE */
	ck_assert_uint_eq(txn_open(), 0);

	ict = ict_new();
	nict = nict_new();
	ck_assert_uint_eq(txn_open(), 2);
	ict_recv(ict, 200, "b0b");
	nict_recv(nict, 200);
	ck_assert_int_eq(ict->state, TXN_ACCEPTED);
	ck_assert_int_eq(nict->state, TXN_COMPLETED);
	ck_assert_ptr_null(ict->out);
	ck_assert_ptr_null(nict->out);
	ck_assert_uint_eq(txn_open(), 0);
	ck_assert_uint_eq(txn_count(), 5);
	ck_assert_uint_gt(txn_bytes(), 0);
	fake_advance(64 * T1);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_uint_eq(txn_bytes(), 0);
}
END_TEST


/*
 * With ops->done: once final, at the end of the turn (the reaper), the
 * owner lets the transaction go and its request is freed; it still
 * answers retransmissions from the bytes of its response until Timer J,
 * and is not reported terminated (the owner has gone).
 */
START_TEST(nist_done_detached)
{
	struct txn	*t = server_new(RQ("BYE", VIA_A));
	struct sipmsg	*m = request(RQ("BYE", VIA_A));
	size_t		 before;

	ck_assert_int_eq(reply(t, 200), 0);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(ndone, 0);		/* not in the same turn */
	ck_assert_ptr_nonnull(t->req);
	before = txn_bytes();
	txn_reap();				/* the turn ends */
	ck_assert_int_eq(ndone, 1);
	ck_assert_ptr_eq(done_txn, t);
	/* A compact record took its place (t is freed). */
	t = txn_match_request(m);
	ck_assert_ptr_nonnull(t);
	ck_assert(t->rec);
	ck_assert_ptr_null(t->owner);
	ck_assert_ptr_null(t->req);
	ck_assert_uint_lt(txn_bytes(), before);
	ck_assert_uint_eq(t->cseq, 1);
	ck_assert_int_eq(t->kind, TXN_NIST);
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_uint_eq(txn_records(), 1);
	txn_server_retransmit(t, m);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_sent_reply(1, 200);
	fake_advance(64 * T1);			/* J */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.nterm, 0);
	ck_assert_int_eq(ndone, 1);
	sipmsg_free(m);
}
END_TEST

/*
 * A server transaction keeps its request indexed in the turn it came in
 * only; then its bytes, indexed again in a turn that asks for them, the
 * same request (the Route set the owner took stays where it points).
 */
START_TEST(ist_request_unindexed)
{
	struct txn		*t = server_new(RQ("INVITE", VIA_A));
	const struct sipmsg	*m;
	const char		*buf = t->req->buf;
	size_t			 indexed = txn_bytes();

	ck_assert_ptr_nonnull(t->req);
	fake_advance(0);			/* the turn ends: reaper */
	ck_assert_ptr_null(t->req);
	ck_assert_ptr_eq(t->raw, buf);		/* the same bytes, kept */
	ck_assert_uint_lt(txn_bytes() + sizeof(struct sipmsg) / 2, indexed);
	m = txn_server_request(t);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_eq(t->req, m);
	ck_assert_int_eq(m->method, SM_INVITE);
	ck_assert_uint_eq(m->cseq, 1);
	ck_assert(slice_eq(m->branch, "z9hG4bKsrv1"));
	ck_assert_ptr_eq(txn_server_request(t), m);	/* once a turn */
	ck_assert_ptr_eq(txn_match_request(m), t);
	fake_advance(0);
	ck_assert_ptr_null(t->req);
	ck_assert_ptr_eq(t->raw, buf);
}
END_TEST

/*
 * Settled (its owner starts no branch any more), a server transaction
 * keeps from the end of the turn the request line, Vias (folded, compact
 * and several), From, To, Call-ID and CSeq of its request, no body: what
 * a response made from it copies, which is the same as before.
 */
#define BIG_INVITE							\
	"INVITE sip:bob@example.com SIP/2.0\r\n"			\
	"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKbig;rport=5062\r\n" \
	"v: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx,\r\n"		\
	"  SIP/2.0/TCP 192.0.2.8;branch=z9hG4bKy\r\n"			\
	"Max-Forwards: 70\r\n"						\
	"Route: <sip:192.0.2.9;lr>\r\n"					\
	"To: Bob <sip:bob@example.com>\r\n"				\
	"f: <sip:alice@example.org>;tag=a1\r\n"			\
	"Call-ID: big@example.org\r\n"					\
	"Contact: <sip:alice@192.0.2.1:5062>\r\n"			\
	"CSeq: 7 INVITE\r\n"						\
	"Content-Type: application/sdp\r\n"				\
	"Content-Length: 13\r\n"						\
	"\r\n"								\
	"v=0\r\ns=-\r\nt=0"

static char *
reply_of(const struct sipmsg *m)
{
	struct slice	 top = S("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKbig;"
			    "rport=5062;received=192.0.2.1");
	struct buf	 b;

	buf_init(&b, 512);
	sipbuild_reply(m, 487, NULL, "t0", &top, NULL, &b);
	return (buf_steal(&b, NULL));
}

START_TEST(ist_settled_keeps_reply_lines)
{
	struct tp_addr	 src = addr("192.0.2.1", 5062);
	struct sipmsg	*m = parse(BIG_INVITE);
	struct txn	*t = txn_server_new(m, NULL, &src);
	char		*before, *after;
	size_t		 full;

	t->owner = &owner;
	before = reply_of(txn_server_request(t));
	fake_advance(0);			/* the turn ends */
	full = txn_bytes();
	ck_assert_uint_eq(t->rawlen, strlen(BIG_INVITE));
	txn_server_settle(t);
	ck_assert_ptr_nonnull(txn_server_request(t));	/* still whole */
	ck_assert_uint_eq(t->req->body_len, 13);
	fake_advance(0);
	ck_assert(t->trimmed);
	ck_assert_uint_lt(t->rawlen, strlen(BIG_INVITE) - 120);
	ck_assert_uint_lt(txn_bytes(), full - 120);
	ck_assert_ptr_null(memmem(t->raw, t->rawlen, "v=0", 3));
	ck_assert_ptr_null(memmem(t->raw, t->rawlen, "Route:", 6));
	ck_assert_ptr_null(memmem(t->raw, t->rawlen, "Contact:", 8));
	m = (struct sipmsg *)txn_server_request(t);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->nvias, 3);
	ck_assert_ptr_eq(txn_match_request(m), t);
	after = reply_of(m);
	ck_assert_str_eq(after, before);
	free(after);
	fake_advance(0);
	txn_server_settle(t);			/* once is enough */
	fake_advance(0);
	ck_assert_ptr_nonnull(txn_server_request(t));

	/* Settled in a turn without the index: the same from the bytes. */
	txn_enter(t, TXN_TERMINATED);
	fake_advance(0);
	t = txn_server_new(parse(BIG_INVITE), NULL, &src);
	t->owner = &owner;
	fake_advance(0);
	txn_server_settle(t);
	ck_assert_ptr_null(t->req);
	fake_advance(0);
	ck_assert(t->trimmed);
	ck_assert_uint_lt(t->rawlen, strlen(BIG_INVITE) - 120);
	after = reply_of(txn_server_request(t));
	ck_assert_str_eq(after, before);
	free(before);
	free(after);
}
END_TEST

/* An open one is never let go; an ended one is not either. */
START_TEST(ist_open_not_done)
{
	struct txn	*t = server_new(RQ("INVITE", VIA_A));

	ck_assert_int_eq(reply(t, 180), 0);
	fake_advance(T1);
	ck_assert_int_eq(ndone, 0);
	ck_assert_ptr_nonnull(t->owner);
	ck_assert_int_eq(reply(t, 486), 0);	/* COMPLETED: Timer G, H */
	fake_advance(T1);
	ck_assert_int_eq(ndone, 0);
	ck_assert_ptr_nonnull(txn_server_request(t));
	fake_advance(64 * T1);			/* H */
	ck_assert_int_eq(ndone, 0);
	ck_assert_int_eq(cb.nterm, 1);
}
END_TEST

/*
 * An INVITE client transaction let go in Accepted no longer matches its
 * 2xx (the proxy relays them by the Via, as after Timer M) nor anything
 * else: it ends then (no record would ever match), unreported.
 */
START_TEST(ict_done_accepted_unmatched)
{
	struct txn	*t = ict_new();
	struct sipmsg	*r;

	ict_recv(t, 200, "fork1");
	ck_assert_int_eq(t->state, TXN_ACCEPTED);
	ict_recv(t, 200, "fork1");		/* same turn: still matched */
	ck_assert_int_eq(cb.nresp, 2);
	fake_advance(0);			/* the turn ends: reaper */
	ck_assert_int_eq(ndone, 1);
	r = response(200, ICT_BRANCH, "fork1", 42, "INVITE");
	ck_assert_ptr_null(txn_match_response(r));
	sipmsg_free(r);
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_uint_eq(txn_bytes(), 0);
	ck_assert_int_eq(cb.nterm, 0);
}
END_TEST

/*
 * Records: once let go, an absorbing transaction is replaced by a compact
 * record (no timer of its own, a fraction of struct txn) that answers
 * retransmissions as the transaction did and ends at its timer, on the
 * TXN_LAZY_MS grid, never early.
 */

/* Is the transaction matched by m a record?  Returns it. */
static struct txn *
ck_record_req(const struct sipmsg *m)
{
	struct txn	*r = txn_match_request(m);

	ck_assert_ptr_nonnull(r);
	ck_assert(r->rec);
	ck_assert_ptr_null(r->owner);
	return (r);
}

/* IST 486, ACK: Confirmed; the record absorbs ACK and INVITE until I. */
START_TEST(record_ist_confirmed)
{
	struct txn	*t = server_new(RQ("INVITE", VIA_A));
	struct sipmsg	*ack, *inv = request(RQ("INVITE", VIA_A));

	ck_assert_int_eq(reply(t, 486), 0);
	ack = request((struct rq){ "ACK", "sip:bob@example.com", VIA_A, "a1",
	    "b0b", "call-1@example.org", 1 });
	txn_server_retransmit(t, ack);
	ck_assert_int_eq(t->state, TXN_CONFIRMED);
	fake_advance(0);			/* the turn ends */
	ck_assert_int_eq(ndone, 1);
	t = ck_record_req(ack);
	ck_assert_int_eq(t->kind, TXN_IST);
	ck_assert_int_eq(t->state, TXN_CONFIRMED);
	ck_assert_ptr_eq(txn_match_cancel(inv), t);
	ck_assert_uint_eq(txn_records(), 1);
	ck_assert_uint_gt(txn_bytes(), 0);	/* a fraction of a txn */
	ck_assert_uint_lt(txn_bytes(), sizeof(struct txn));
	ck_assert_uint_eq(txn_open(), 0);
	ck_assert_uint_eq(fake_armed(), 1);	/* the records' timer */
	txn_server_retransmit(t, ack);		/* absorbed */
	ck_assert_ptr_eq(txn_match_request(inv), t);
	txn_server_retransmit(t, inv);		/* absorbed too */
	ck_assert_int_eq(t->state, TXN_CONFIRMED);
	ck_assert_int_eq(fake_nsent(), 1);
	fake_advance(T4 - 1);
	ck_assert_uint_eq(txn_count(), 1);
	fake_advance(TXN_LAZY_MS);		/* I, on the grid */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_uint_eq(txn_records(), 0);
	ck_assert_uint_eq(txn_bytes(), 0);
	ck_assert_ptr_null(txn_match_request(ack));
	ck_assert_uint_eq(fake_armed(), 0);
	ck_assert_int_eq(cb.nterm, 0);
	sipmsg_free(ack);
	sipmsg_free(inv);
}
END_TEST

/*
 * Many NIST records share one timer; each resends its own last response
 * to its own peer until J.
 */
START_TEST(record_nist_many)
{
	char		 via[128];
	struct sipmsg	*m[8];
	struct txn	*t;
	int		 i;

	for (i = 0; i < 8; i++) {
		snprintf(via, sizeof(via), "SIP/2.0/UDP 192.0.2.1:%d;"
		    "branch=z9hG4bKn%d", 5070 + i, i);
		t = server_new(RQ("BYE", via));
		ck_assert_int_eq(reply(t, 200 + i), 0);
		m[i] = request(RQ("BYE", via));
	}
	fake_advance(0);
	ck_assert_uint_eq(txn_records(), 8);
	ck_assert_uint_lt(txn_bytes(), 8 * sizeof(struct txn));
	ck_assert_uint_eq(fake_armed(), 1);
	fake_sent_clear();
	for (i = 7; i >= 0; i--) {
		t = ck_record_req(m[i]);
		ck_assert_int_eq(t->state, TXN_COMPLETED);
		txn_server_retransmit(t, m[i]);
		ck_sent_reply(7 - i, 200 + i);
		ck_assert_uint_eq(tp_addr_port(fake_sent_peer(7 - i)),
		    5070 + i);
	}
	fake_advance(64 * T1 - 1);
	ck_assert_uint_eq(txn_count(), 8);
	fake_advance(TXN_LAZY_MS);		/* J, all in one */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_uint_eq(txn_bytes(), 0);
	for (i = 0; i < 8; i++) {
		ck_assert_ptr_null(txn_match_request(m[i]));
		sipmsg_free(m[i]);
	}
}
END_TEST

/* ICT 486: the record sends its ACK again for each 486 until D. */
START_TEST(record_ict_completed_ack)
{
	struct txn	*t = ict_new();
	struct sipmsg	*r;
	char		 ack[1024];

	ict_recv(t, 486, "b0b");
	ck_assert_int_eq(t->state, TXN_COMPLETED);
	ck_assert_int_eq(fake_nsent(), 2);	/* INVITE, ACK */
	snprintf(ack, sizeof(ack), "%s", fake_sent(1));
	ck_assert(strncmp(ack, "ACK ", 4) == 0);
	fake_advance(0);
	ck_assert_int_eq(ndone, 1);
	r = response(486, ICT_BRANCH, "b0b", 42, "INVITE");
	t = txn_match_response(r);
	ck_assert_ptr_nonnull(t);
	ck_assert(t->rec);
	ck_assert_int_eq(t->kind, TXN_ICT);
	txn_client_response(t, r);
	ck_assert_int_eq(fake_nsent(), 3);
	ck_assert_str_eq(fake_sent(2), ack);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(2)), 5080);
	ck_assert_int_eq(cb.nresp, 1);		/* not delivered again */
	fake_advance(TD - 1);
	ck_assert_ptr_eq(txn_match_response(r), t);
	fake_advance(TXN_LAZY_MS);		/* D */
	ck_assert_ptr_null(txn_match_response(r));
	ck_assert_uint_eq(txn_count(), 0);
	sipmsg_free(r);
}
END_TEST

/* NICT 200: the record absorbs the retransmitted 200 until K. */
START_TEST(record_nict_completed)
{
	struct txn	*t = nict_new();
	struct sipmsg	*r;

	nict_recv(t, 200);
	fake_advance(0);
	r = response(200, NICT_BRANCH, "b0b", 7, "OPTIONS");
	t = txn_match_response(r);
	ck_assert_ptr_nonnull(t);
	ck_assert(t->rec);
	txn_client_response(t, r);
	ck_assert_int_eq(cb.nresp, 1);
	ck_assert_int_eq(fake_nsent(), 1);
	fake_advance(T4 - 1);
	ck_assert_uint_eq(txn_count(), 1);
	fake_advance(TXN_LAZY_MS);		/* K */
	ck_assert_uint_eq(txn_count(), 0);
	sipmsg_free(r);
}
END_TEST

/*
 * A reload that shortens T4: a record keeps its due time, and one made
 * after with the new value ends at its own, not after the older one.
 */
START_TEST(record_reload_shorter)
{
	struct txn_settings	 s = settings;
	struct txn		*a, *b;
	struct sipmsg		*r;

	a = client_new(TXN_NICT, "z9hG4bKra", "OPTIONS", SENT_OPTIONS);
	r = response(200, "z9hG4bKra", "x", 7, "OPTIONS");
	txn_client_response(a, r);
	sipmsg_free(r);
	fake_advance(0);
	s.t4_ms = 1000;
	txn_set_settings(&s);
	fake_advance(100);
	b = client_new(TXN_NICT, "z9hG4bKrb", "OPTIONS", SENT_OPTIONS);
	r = response(200, "z9hG4bKrb", "x", 7, "OPTIONS");
	txn_client_response(b, r);
	sipmsg_free(r);
	fake_advance(0);
	ck_assert_uint_eq(txn_records(), 2);
	fake_advance(1000 + TXN_LAZY_MS);	/* b's K */
	ck_assert_uint_eq(txn_records(), 1);
	ck_assert_ptr_nonnull(txn_find("c|z9hG4bKra|OPTIONS", 19));
	ck_assert_ptr_null(txn_find("c|z9hG4bKrb|OPTIONS", 19));
	fake_advance(T4 - 1100 - TXN_LAZY_MS - 1);
	ck_assert_uint_eq(txn_records(), 1);
	fake_advance(TXN_LAZY_MS + 1);		/* a's K */
	ck_assert_uint_eq(txn_count(), 0);
}
END_TEST

/* Nobody ever owned it (an answer the proxy sends alone): a record too. */
START_TEST(record_ownerless)
{
	struct tp_addr	 src = addr("192.0.2.1", 5062);
	struct txn	*t;
	struct sipmsg	*m = request(RQ("OPTIONS", VIA_A));

	t = txn_server_new(request(RQ("OPTIONS", VIA_A)), NULL, &src);
	ck_assert_int_eq(reply(t, 200), 0);
	fake_advance(0);
	t = ck_record_req(m);
	txn_server_retransmit(t, m);
	ck_assert_int_eq(fake_nsent(), 2);
	ck_sent_reply(1, 200);
	ck_assert_int_eq(txn_server_reply(t, 500, strdup("x"), 1), -1);
	sipmsg_free(m);
}
END_TEST

/*
 * The timers that only end an absorbing transaction are due on a grid of
 * TXN_LAZY_MS (one wake-up for the calls of a step), never early.
 */
START_TEST(lazy_timer_grid)
{
	struct txn	*a, *b;

	fake_advance(1234);
	a = server_new(RQ("BYE", VIA_A));
	ck_assert_int_eq(reply(a, 200), 0);	/* J at 33234 -> 33250 */
	fake_advance(7);
	b = server_new(RQ("BYE", "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKb"));
	ck_assert_int_eq(reply(b, 200), 0);	/* J at 33241 -> 33250 */
	fake_advance(64 * T1 - 1);		/* 33240 */
	ck_assert_uint_eq(txn_count(), 2);
	fake_advance(9);			/* 33249 */
	ck_assert_uint_eq(txn_count(), 2);
	fake_advance(1);			/* 33250: both */
	ck_assert_uint_eq(txn_count(), 0);
	ck_assert_int_eq(cb.nterm, 2);
	/* Timer A, B and H stay exact: only the ends are lazy. */
	fake_advance(3);
	a = ict_new();
	fake_advance(T1 - 1);
	ck_assert_int_eq(fake_nsent(), 3);
	fake_advance(1);			/* A, exactly T1 later */
	ck_assert_int_eq(fake_nsent(), 4);
	(void)a;
}
END_TEST

/* A record's address: only IPv4, IPv6 of a known transport is used. */
START_TEST(addr_ok_and_cut)
{
	struct tp_addr	 a, b;
	struct txn_addr	 c;

	ck_assert_int_eq(tp_addr_parse("udp:192.0.2.1:5060", &a), 0);
	txn_addr_put(&c, &a);
	ck_assert(txn_addr_ok(&c));
	ck_assert_int_eq(tp_addr_parse("tls:[2001:db8::1]:5061", &a), 0);
	txn_addr_put(&c, &a);
	ck_assert(txn_addr_ok(&c));
	txn_addr_get(&c, &b);
	ck_assert(tp_addr_eq(&a, &b));
	c.proto = TP_NPROTO;
	ck_assert(!txn_addr_ok(&c));
	c.proto = TP_TLS;
	c.sa.sin6.sin6_family = AF_INET;	/* IPv6 length, IPv4 */
	ck_assert(!txn_addr_ok(&c));
	c.sa.sin6.sin6_family = AF_INET6;
	c.len = sizeof(struct sockaddr_in);
	ck_assert(!txn_addr_ok(&c));
	c.len = 255;				/* tampered with */
	ck_assert(!txn_addr_ok(&c));
	memset(&b, 0xa5, sizeof(b));
	txn_addr_get(&c, &b);			/* cut: no over-read */
	ck_assert_uint_eq(b.len, sizeof(c.sa));
	ck_assert_uint_eq(((unsigned char *)&b.ss)[sizeof(c.sa)], 0);
	c.len = 0;
	ck_assert(!txn_addr_ok(&c));
}
END_TEST

int
main(void)
{
	TCase	*tc;

	sipmsg_init();
	tc = check_fixed("fake", setup, teardown);
	check_add(tc, fake_timer_order, fake_capture);
	tc = check_fixed("server", setup, teardown);
	check_add(tc, server_key_3261, server_key_default_port,
	    server_key_2543, server_peer, ist_non2xx_timer_g_h,
	    ist_ack_confirmed_timer_i, ist_2xx_accepted, nist_final_timer_j);
	tc = check_fixed("client", setup, teardown);
	check_add(tc, ict_reliable_no_timer_a, ict_transport_lost,
	    nist_reliable_timer_j_zero);
	check_add(tc, ict_timer_a_b, ict_provisional_proceeding,
	    ict_non2xx_ack, ict_non2xx_from_calling, ict_2xx_accepted,
	    ict_cancel_waits_for_provisional, ict_cancel_in_proceeding,
	    ict_compact_after_provisional, timer_heap_wraps,
	    ict_cancel_after_final, nict_timer_e_f, nict_proceeding_t2,
	    nict_final_timer_k, ict_timer_c, ict_timer_c_calling,
	    ict_timer_c_stopped_by_final);
	tc = check_fixed("done", setup_done, teardown);
	check_add(tc, nist_done_detached, ist_open_not_done,
	    ist_request_unindexed, ist_settled_keeps_reply_lines,
	    ict_done_accepted_unmatched);
	tc = check_fixed("record", setup_done, teardown);
	check_add(tc, record_ist_confirmed, record_nist_many,
	    record_ict_completed_ack, record_nict_completed,
	    record_reload_shorter, record_ownerless);
	tc = check_fixed("lazy", setup, teardown);
	check_add(tc, lazy_timer_grid);
	tc = check_fixed("addr", setup, teardown);
	check_add(tc, addr_ok_and_cut);
	tc = check_fixed("table", setup, teardown);
	tcase_set_timeout(tc, 60);
	check_add(tc, table_churn, table_open_and_bytes);
	return (check_run("txn"));
}
