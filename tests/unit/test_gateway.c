/*
 * Unit tests: gateway health probing (gateway.c) on the fake clock and the
 * capture-only transport of fake.c.  The probes are real OPTIONS client
 * transactions; the answers are parsed datagrams fed to the transaction
 * layer as the receive path would.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "buf.h"
#include "check_util.h"
#include "fake.h"
#include "gateway.h"
#include "log.h"
#include "route.h"
#include "sipbuild.h"
#include "sipmsg.h"
#include "txn.h"

#define INTERVAL	500
#define TIMEOUT		300
#define FAILURES	2

static struct tp		 tp;
static struct route_table	 rt;
static const struct gw_settings	 gs = { .interval_ms = INTERVAL,
				    .timeout_ms = TIMEOUT,
				    .failures = FAILURES };
static const struct txn_settings ts = { .t1_ms = 500, .t2_ms = 4000,
				    .t4_ms = 5000, .c_ms = 180000,
				    .d_ms = 32000 };
static const struct txn_ops	 none;

static struct route *
add_route(const char *user, const char *t1, const char *t2, bool probe)
{
	char		 err[256];
	struct route	*r;

	r = route_add(&rt, user, NULL, 1, err, sizeof(err));
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(route_add_target(r, t1, err, sizeof(err)), 0);
	if (t2 != NULL)
		ck_assert_int_eq(route_add_target(r, t2, err, sizeof(err)), 0);
	r->probe = probe;
	return (r);
}

/*
 * Two probed routes sharing the target :5070 (one gw for both), a third
 * probed target :5071, and an unprobed route to :5072.
 */
static void
setup(void)
{

	log_init(true, LOG_LVL_ERR);
	sipmsg_init();
	fake_reset();
	fake_tp_init(&tp);
	memset(&rt, 0, sizeof(rt));
	add_route("^a$", "sip:127.0.0.1:5070", "sip:127.0.0.1:5071", true);
	add_route("^b$", "sip:127.0.0.1:5070", NULL, true);
	add_route("^c$", "sip:127.0.0.1:5072", NULL, false);
	txn_init(NULL, &ts, &none);
	gw_start(NULL, &tp, &rt, &gs);
}

static void
teardown(void)
{
	gw_stop(&rt);
	txn_shutdown();
	route_table_free(&rt);
	fake_reset();
}

/* The CSeq number of datagram i. */
static uint32_t
cseq_of(int i)
{
	struct sipmsg	*m = parse_bytes(fake_sent(i), fake_sent_len(i), 0);
	uint32_t	 n = m->cseq;

	sipmsg_free(m);
	return (n);
}

/*
 * The newest probe sent to port since datagram from (the highest CSeq,
 * not a retransmission of an older one), or -1.
 */
static int
probe_to(uint16_t port, int from)
{
	int	i, found = -1;

	for (i = from; i < fake_nsent(); i++)
		if (fake_sent(i) != NULL &&
		    tp_addr_port(fake_sent_peer(i)) == port &&
		    strncmp(fake_sent(i), "OPTIONS ", 8) == 0 &&
		    (found == -1 || cseq_of(i) > cseq_of(found)))
			found = i;
	return (found);
}

/* Answer probe i with code, as the receive path would. */
static void
answer(int i, int code)
{
	struct sipmsg	*req, *resp;
	struct txn	*ct;
	struct buf	 b;

	ck_assert_int_ge(i, 0);
	req = parse_bytes(fake_sent(i), fake_sent_len(i), 0);
	buf_init(&b, 512);
	sipbuild_reply(req, code, NULL, "gwtag", &req->via, NULL, &b);
	resp = parse_bytes(b.p, b.len, 0);
	ct = txn_match_response(resp);
	if (ct != NULL)
		txn_client_response(ct, resp);
	sipmsg_free(resp);
	sipmsg_free(req);
	buf_cleanup(&b);
}

static const struct gw *
gw_of(const struct target *t)
{
	ck_assert_ptr_nonnull(t->gw);
	return (t->gw);
}

/* One gw per probed URI, shared by the routes; none for the unprobed. */
START_TEST(gw_per_uri)
{
	const struct gw	*g;
	unsigned	 n = 0;

	for (g = gw_list(); g != NULL; g = g->next)
		n++;
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_eq(rt.r[0]->targets[0].gw, rt.r[1]->targets[0].gw);
	ck_assert_ptr_ne(rt.r[0]->targets[0].gw, rt.r[0]->targets[1].gw);
	ck_assert_ptr_null(rt.r[2]->targets[0].gw);
	ck_assert(gw_target_usable(&rt.r[2]->targets[0]));
	ck_assert(gw_is_up(gw_of(&rt.r[0]->targets[0])));
}
END_TEST

/* The probe: OPTIONS to the target URI, from our socket, each its own. */
START_TEST(gw_probe_message)
{
	struct sipmsg	*m;
	int		 i, j;

	fake_advance(INTERVAL);
	i = probe_to(5070, 0);
	ck_assert_int_ge(i, 0);
	ck_assert_int_ge(probe_to(5071, 0), 0);
	ck_assert_int_eq(probe_to(5072, 0), -1);
	m = parse_bytes(fake_sent(i), fake_sent_len(i), 0);
	ck_assert(m->request && m->method == SM_OPTIONS);
	ck_assert(m->ruri.len == 18 && memcmp(m->ruri.p, "sip:127.0.0.1:5070",
	    18) == 0);
	ck_assert(m->via.len > 0 && strncmp(m->via.p,
	    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK", 41) == 0);
	ck_assert_int_eq(m->max_forwards, 70);
	sipmsg_free(m);
	answer(i, 200);
	fake_advance(INTERVAL);
	j = probe_to(5070, i + 1);
	ck_assert_int_gt(j, i);
	m = parse_bytes(fake_sent(j), fake_sent_len(j), 0);
	ck_assert_uint_eq(m->cseq, 2);
	sipmsg_free(m);
}
END_TEST

/*
 * `failures` missed probes in a row: down, and its targets unusable; one
 * answer: up again.  Any answer below 500 is alive (404 included).  The
 * probes of :5070 go at 10 ms, then every INTERVAL; each waits TIMEOUT.
 */
START_TEST(gw_down_and_up)
{
	const struct target	*t = &rt.r[0]->targets[0];
	int			 n;

	fake_advance(INTERVAL);		/* the first probe timed out */
	ck_assert(gw_is_up(gw_of(t)));
	ck_assert_uint_eq(gw_of(t)->misses, 1);
	fake_advance(INTERVAL);		/* and the second */
	ck_assert(!gw_is_up(gw_of(t)));
	ck_assert(!gw_target_usable(t));
	ck_assert(!gw_target_usable(&rt.r[1]->targets[0]));
	/* A late answer to a probe that timed out does not count. */
	answer(probe_to(5070, 0), 200);
	ck_assert(!gw_is_up(gw_of(t)));
	/* Still probed while down; the next answer brings it back. */
	n = fake_nsent();
	fake_advance(20);
	ck_assert_int_ge(probe_to(5070, n), n);
	answer(probe_to(5070, n), 404);
	ck_assert(gw_is_up(gw_of(t)));
	ck_assert(gw_target_usable(t));
	ck_assert_uint_eq(gw_of(t)->misses, 0);
}
END_TEST

/* A 5xx is a miss like silence; a late answer no longer counts. */
START_TEST(gw_5xx_is_a_miss)
{
	const struct target	*t = &rt.r[0]->targets[1];
	int			 first, i;

	fake_advance(50);		/* :5071 is probed at 47 ms */
	first = probe_to(5071, 0);
	answer(first, 503);
	ck_assert(gw_is_up(gw_of(t)));
	ck_assert_uint_eq(gw_of(t)->misses, 1);
	fake_advance(INTERVAL);
	i = probe_to(5071, first + 1);
	ck_assert_int_gt(i, first);
	answer(i, 500);
	ck_assert(!gw_is_up(gw_of(t)));
	/* The answer to the first probe again: it does not revive. */
	answer(first, 200);
	ck_assert(!gw_is_up(gw_of(t)));
}
END_TEST

/* gw_stop: the targets forget their gw and no new probe goes out. */
START_TEST(gw_stop_forgets)
{
	int	i, n;

	fake_advance(50);
	ck_assert_int_ge(probe_to(5070, 0), 0);
	gw_stop(&rt);
	ck_assert_ptr_null(gw_list());
	ck_assert_ptr_null(rt.r[0]->targets[0].gw);
	ck_assert(gw_target_usable(&rt.r[0]->targets[0]));
	n = fake_nsent();
	fake_advance(5 * INTERVAL);
	/* Retransmissions of the probe in flight only (Timer E). */
	for (i = n; i < fake_nsent(); i++)
		ck_assert_uint_eq(cseq_of(i), 1);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_fixed("probe", setup, teardown);

	check_add(tc, gw_per_uri, gw_probe_message, gw_down_and_up,
	    gw_5xx_is_a_miss, gw_stop_forgets);
	return (check_run("gateway"));
}
