/*
 * Unit tests of the proxy core: the best-response rank of RFC 3261 16.7
 * (proxy_reply.c), Route processing and the routing decision (proxy.c),
 * and forking (proxy_fork.c) on the fake clock and the capture-only
 * transport of fake.c: requests and responses go in through proxy_recv()
 * as datagrams; what the proxy sends is read back from the capture.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "auth.h"
#include "check_util.h"
#include "fake.h"
#include "log.h"
#include "proxy_int.h"
#include "registrar.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Lower rank wins. */
#define ck_assert_beats(a, b)						\
	ck_assert_msg(proxy_reply_rank(a) < proxy_reply_rank(b),	\
	    "%d (rank %d) should beat %d (rank %d)", (a),		\
	    proxy_reply_rank(a), (b), proxy_reply_rank(b))

static const int global[] = { 600, 603, 604, 606, 607, 608, 699 };
static const int others[] = {
	300, 301, 302, 305, 380, 399,
	400, 401, 403, 404, 405, 407, 408, 415, 420, 480, 481, 483, 484, 486,
	487, 488, 491, 499,
	500, 501, 502, 503, 504, 505, 513, 580, 599,
};
static const int retry[] = { 401, 407, 415, 420, 484 };

/* RFC 3261 16.7 step 6: a 6xx is chosen over any other class. */
START_TEST(rank_6xx_first)
{
	size_t	i, j;

	for (i = 0; i < NELEM(global); i++)
		for (j = 0; j < NELEM(others); j++)
			ck_assert_beats(global[i], others[j]);
	ck_assert_beats(603, 486);
	ck_assert_beats(699, 300);
	ck_assert_beats(600, 401);
}
END_TEST

/* Otherwise the lowest class wins, whatever the codes inside it. */
START_TEST(rank_lowest_class)
{
	size_t	i, j;

	for (i = 0; i < NELEM(others); i++)
		for (j = 0; j < NELEM(others); j++)
			if (others[i] / 100 < others[j] / 100)
				ck_assert_beats(others[i], others[j]);
	ck_assert_beats(399, 401);
	ck_assert_beats(302, 484);
	ck_assert_beats(486, 500);
	ck_assert_beats(499, 500);
	ck_assert_beats(404, 503);
}
END_TEST

/*
 * Inside 4xx, the answers that let the caller retry (credentials, another
 * body or extension, more digits) lead: 401 407 415 420 484.
 */
START_TEST(rank_retry_4xx_lead)
{
	size_t	i, j;
	bool	is_retry;

	for (i = 0; i < NELEM(retry); i++) {
		for (j = 0; j < NELEM(others); j++) {
			size_t	k;

			if (others[j] / 100 != 4)
				continue;
			is_retry = false;
			for (k = 0; k < NELEM(retry); k++)
				is_retry |= others[j] == retry[k];
			if (!is_retry)
				ck_assert_beats(retry[i], others[j]);
		}
	}
	ck_assert_beats(401, 404);
	ck_assert_beats(407, 400);
	ck_assert_beats(484, 403);
	ck_assert_beats(415, 408);
	ck_assert_beats(420, 486);
	/* Only inside their class: a 3xx still beats them. */
	ck_assert_beats(380, 401);
	/* And 5xx gets no such favour. */
	ck_assert_beats(499, 501);
}
END_TEST

/*
 * Ties inside a class go to the lower code: 408 over 486, and 500 over 503
 * (a 503 would go upstream as 500 anyway, RFC 3261 16.7 step 6).
 */
START_TEST(rank_within_class)
{
	ck_assert_beats(408, 486);
	ck_assert_beats(404, 486);
	ck_assert_beats(486, 487);
	ck_assert_beats(500, 503);
	ck_assert_beats(500, 504);
	ck_assert_beats(302, 380);
	ck_assert_beats(600, 603);
}
END_TEST

/* The rank is a total order: distinct codes never tie. */
START_TEST(rank_no_ties)
{
	int	a, b;

	for (a = 300; a <= 699; a++)
		for (b = a + 1; b <= 699; b++)
			ck_assert_msg(proxy_reply_rank(a) !=
			    proxy_reply_rank(b), "%d and %d tie", a, b);
}
END_TEST


/* ------------------------------------------------------------ fixture */

#define CALLER	5099		/* the caller's port on 127.0.0.1 */

static struct tp	tp;
static struct registrar_settings rs = {
	.enabled = true, .min_expires_s = 1, .max_expires_s = 3600,
	.default_expires_s = 600, .max_contacts = 8, .max_per_source = 16,
};

static struct route *
add_route(struct proxy_settings *ps, const char *name, const char *user,
    const char *t1, const char *t2, enum fork_mode fork)
{
	char		 err[256];
	struct route	*r;

	r = route_add(&ps->routes, user, NULL, 1, err, sizeof(err));
	ck_assert_msg(r != NULL, "route: %s", err);
	ck_assert_msg(route_add_target(r, t1, err, sizeof(err)) == 0,
	    "target: %s", err);
	if (t2 != NULL)
		ck_assert_msg(route_add_target(r, t2, err, sizeof(err)) == 0,
		    "target: %s", err);
	r->fork = fork;
	if (name != NULL)
		r->name = strdup(name);
	r->matchable = user != NULL;
	/* The default of conf.c: the next target on 408 and 5xx. */
	codeset_add(&r->failover, "408", err, sizeof(err));
	codeset_add(&r->failover, "5xx", err, sizeof(err));
	return (r);
}

/*
 * The proxy at 127.0.0.1:5060 for example.test, with these routes:
 *	bob	-> :5070
 *	duo	-> :5080 and :5081 in parallel
 *	ser	-> :5071 then :5072 (serial, default failover)
 *	carol	-> sip:carol@127.0.0.1:5072 (replaces the R-URI)
 *	fail	-> :5073, on 404 the failure route "ann" (sip:ann@...:5074)
 *	redir	-> :5075, 3xx recursion, one redirect at most
 *	slow	-> :5076 with a 1000 ms timeout, then :5077 (serial)
 */
static void
proxy_setup(void)
{
	static const struct txn_settings ts = { .t1_ms = 500, .t2_ms = 4000,
	    .t4_ms = 5000, .c_ms = 180000, .d_ms = 32000 };
	struct proxy_settings	 ps;
	struct route		*r;
	char			 err[256];
	int			 line;

	log_init(true, LOG_LVL_ERR);
	sipmsg_init();
	fake_reset();
	fake_tp_init(&tp);
	memset(&ps, 0, sizeof(ps));
	ps.domains = calloc(1, sizeof(char *));
	ps.domains[ps.ndomains++] = strdup("example.test");
	ps.record_route = true;
	ps.cancel_ms = 1000;
	ps.max_message_size = 65535;
	ps.max_transactions = 1000;
	add_route(&ps, NULL, "^bob$", "sip:127.0.0.1:5070", NULL,
	    FORK_PARALLEL);
	add_route(&ps, NULL, "^duo$", "sip:127.0.0.1:5080",
	    "sip:127.0.0.1:5081", FORK_PARALLEL);
	add_route(&ps, NULL, "^ser$", "sip:127.0.0.1:5071",
	    "sip:127.0.0.1:5072", FORK_SERIAL);
	add_route(&ps, NULL, "^carol$", "sip:carol@127.0.0.1:5072", NULL,
	    FORK_PARALLEL);
	r = add_route(&ps, NULL, "^fail$", "sip:127.0.0.1:5073", NULL,
	    FORK_PARALLEL);
	codeset_add(&r->on_failure[0].codes, "404", err, sizeof(err));
	r->on_failure[0].route_name = strdup("ann");
	r->nfailure = 1;
	add_route(&ps, "ann", NULL, "sip:ann@127.0.0.1:5074", NULL,
	    FORK_PARALLEL);
	r = add_route(&ps, NULL, "^redir$", "sip:127.0.0.1:5075", NULL,
	    FORK_PARALLEL);
	r->recurse = true;
	r->max_redirects = 1;
	r = add_route(&ps, NULL, "^slow$", "sip:127.0.0.1:5076",
	    "sip:127.0.0.1:5077", FORK_SERIAL);
	r->targets[0].timeout_ms = 1000;
	ck_assert_msg(route_link(&ps.routes, &line, err, sizeof(err)) == 0,
	    "%s", err);
	proxy_init(NULL, &tp, proxy_settings_take(&ps), &ts);
}

/* Parsed messages that results point into: freed after the test. */
static struct sipmsg	*kept[32];
static unsigned		 nkept;

static struct sipmsg *
keep(struct sipmsg *m)
{
	ck_assert_uint_lt(nkept, 32);
	return (kept[nkept++] = m);
}

static void
proxy_teardown(void)
{
	while (nkept > 0)
		sipmsg_free(kept[--nkept]);
	registrar_set(NULL);
	proxy_shutdown();
	fake_reset();
}

/* A datagram from 127.0.0.1:port. */
static void
recv_from(uint16_t port, const char *p, size_t len)
{
	struct tp_addr	a;

	ck_assert_int_eq(tp_addr_set(&a, S("127.0.0.1"), port), 0);
	proxy_recv(NULL, &tp.socks[0], &a, p, len);
}

/* A request of the caller; its branch is z9hG4bKc<callid>. */
static void
caller_send(const char *method, const char *ruri, const char *callid,
    const char *more)
{
	char	b[2048];

	snprintf(b, sizeof(b), "%s %s SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKc%s\r\n"
	    "Max-Forwards: 70\r\n"
	    "From: <sip:alice@example.test>;tag=a1\r\n"
	    "To: <%s>\r\n"
	    "Call-ID: %s\r\n"
	    "CSeq: 1 %s\r\n"
	    "Contact: <sip:alice@127.0.0.1:5099>\r\n"
	    "%s"
	    "Content-Length: 0\r\n\r\n", method, ruri, callid, ruri, callid,
	    method, more != NULL ? more : "");
	recv_from(CALLER, b, strlen(b));
}

/*
 * The first datagram from index `from` on that went to port and starts
 * with start ("INVITE ", "SIP/2.0 487"); -1 if none.
 */
static int
next_to(uint16_t port, const char *start, int from)
{
	int	i;

	for (i = from; i < fake_nsent(); i++)
		if (fake_sent(i) != NULL &&
		    tp_addr_port(fake_sent_peer(i)) == port &&
		    strncmp(fake_sent(i), start, strlen(start)) == 0)
			return (i);
	return (-1);
}

static int
count_to(uint16_t port, const char *start)
{
	int	i, n = 0;

	for (i = 0; (i = next_to(port, start, i)) >= 0; i++)
		n++;
	return (n);
}

/* Answer the request sent as datagram i, from where it went. */
static void
answer(int i, int code, const char *extra)
{
	struct sipmsg	*m;
	struct buf	 b;
	char		 tag[16];
	uint16_t	 port;

	ck_assert_msg(i >= 0 && fake_sent(i) != NULL, "no request %d", i);
	m = parse(fake_sent(i));
	port = tp_addr_port(fake_sent_peer(i));
	snprintf(tag, sizeof(tag), "t%u", port);
	buf_init(&b, 512);
	sipbuild_reply(m, code, NULL, tag, &m->via, extra, &b);
	recv_from(port, b.p, b.len);
	buf_cleanup(&b);
	sipmsg_free(m);
}

/* The top Via branch of datagram i, in a static buffer. */
static const char *
branch_of(int i)
{
	static char	 out[2][128];
	static int	 k;
	struct sipmsg	*m = parse(fake_sent(i));

	k = !k;
	snprintf(out[k], sizeof(out[k]), SLICE_FMT, SLICE_ARG(m->branch));
	sipmsg_free(m);
	return (out[k]);
}

/* ------------------------------------------------- proxy_routes (16.4) */

#define REQ(ruri, more)							\
	"INVITE " ruri " SIP/2.0\r\n"					\
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n"		\
	"From: <sip:alice@example.test>;tag=a1\r\n"			\
	"To: <sip:bob@example.test>\r\n"				\
	"Call-ID: r1@test\r\n"						\
	"CSeq: 1 INVITE\r\n" more					\
	"Content-Length: 0\r\n\r\n"

struct routes_out {
	struct slice	 r[MAX_ROUTES];
	unsigned	 n;
	struct slice	 ruri;
	bool		 popped, stamp;
	char		*strict;
	int		 rc;
};

static void
routes_of(const char *text, struct routes_out *o)
{
	struct sipmsg	*m = keep(parse(text));	/* the slices point in */

	o->strict = NULL;
	o->n = 0;
	o->rc = proxy_routes(m, o->r, &o->n, &o->ruri, &o->popped,
	    &o->stamp, &o->strict);
}

/* No Route: the Request-URI as it came, nothing popped. */
START_TEST(routes_none)
{
	struct routes_out	o;

	routes_of(REQ("sip:bob@example.test", ""), &o);
	ck_assert_int_eq(o.rc, 0);
	ck_assert_uint_eq(o.n, 0);
	ck_assert_slice_eq(o.ruri, "sip:bob@example.test");
	ck_assert(!o.popped);
	ck_assert_ptr_null(o.strict);
}
END_TEST

/* Our own loose Route on top is removed; the rest is sent (16.4). */
START_TEST(routes_pop_ours)
{
	struct routes_out	o;

	routes_of(REQ("sip:bob@example.test", "Route: <sip:127.0.0.1:5060;lr>,"
	    " <sip:p2.example.org;lr>\r\n"), &o);
	ck_assert_int_eq(o.rc, 0);
	ck_assert(o.popped);
	ck_assert(!o.stamp);
	ck_assert_uint_eq(o.n, 1);
	ck_assert_slice_eq(o.r[0], "<sip:p2.example.org;lr>");
	ck_assert_slice_eq(o.ruri, "sip:bob@example.test");
	/* A foreign Route on top stays. */
	routes_of(REQ("sip:bob@example.test",
	    "Route: <sip:p2.example.org;lr>\r\n"), &o);
	ck_assert(!o.popped);
	ck_assert_uint_eq(o.n, 1);
}
END_TEST

/*
 * Below the top entry, only the same node's Record-Route is popped: this
 * proxy's listen address, this run's mark, the first one's, or no mark.
 * Another run's entry, ours only through `domains`, is a cluster peer's:
 * the next hop.
 */
START_TEST(routes_pop_cluster_peer)
{
	struct routes_out	o;
	struct slice		run = proxy_ctx_run();
	char			req[1024], rt[256];

	routes_of(REQ("sip:bob@example.test", "Route: "
	    "<sip:example.test;lr;osr=0000000a>, "
	    "<sip:example.test;lr;osr=0000000b>, "
	    "<sip:p2.example.org;lr>\r\n"), &o);
	ck_assert_int_eq(o.rc, 0);
	ck_assert(o.popped);
	ck_assert_uint_eq(o.n, 2);
	ck_assert_slice_eq(o.r[0],
	    "<sip:example.test;lr;osr=0000000b>");
	/* Two entries of one node (RFC 5658): the same run. */
	routes_of(REQ("sip:bob@example.test", "Route: "
	    "<sip:example.test;lr;osr=0000000a>, "
	    "<sip:example.test;lr;osr=0000000a>\r\n"), &o);
	ck_assert(o.popped);
	ck_assert_uint_eq(o.n, 0);
	/* Our own listen address, whatever its mark. */
	routes_of(REQ("sip:bob@example.test", "Route: "
	    "<sip:example.test;lr;osr=0000000a>, "
	    "<sip:127.0.0.1:5060;lr;osr=0000000b>\r\n"), &o);
	ck_assert(o.popped);
	ck_assert_uint_eq(o.n, 0);
	/* No cluster mark at all: as before. */
	routes_of(REQ("sip:bob@example.test", "Route: "
	    "<sip:example.test;lr>, <sip:example.test;lr>, "
	    "<sip:p2.example.org;lr>\r\n"), &o);
	ck_assert_uint_eq(o.n, 1);
	ck_assert_slice_eq(o.r[0], "<sip:p2.example.org;lr>");
	/* This run's mark, below another's (a failover to here). */
	snprintf(rt, sizeof(rt), "Route: <sip:example.test;lr;osr=0000000a>, "
	    "<sip:example.test;lr;osr=%.*s>\r\n", (int)run.len, run.p);
	snprintf(req, sizeof(req), REQ("sip:bob@example.test", "%s"), rt);
	routes_of(req, &o);
	ck_assert(o.popped);
	ck_assert_uint_eq(o.n, 0);
}
END_TEST

/*
 * A strict router before us put our Record-Route in the Request-URI: the
 * last Route value is the Request-URI again (16.4).
 */
START_TEST(routes_strict_before_us)
{
	struct routes_out	o;

	routes_of(REQ("sip:127.0.0.1:5060", "Route: <sip:p2.example.org;lr>,"
	    " <sip:bob@192.0.2.7:5062>\r\n"), &o);
	ck_assert_int_eq(o.rc, 0);
	ck_assert(o.popped);
	ck_assert_slice_eq(o.ruri, "sip:bob@192.0.2.7:5062");
	ck_assert_uint_eq(o.n, 1);
	ck_assert_slice_eq(o.r[0], "<sip:p2.example.org;lr>");
}
END_TEST

/*
 * A strict next hop (no lr): its URI becomes the Request-URI and the
 * Request-URI the last Route value (16.6 step 7).
 */
START_TEST(routes_strict_next_hop)
{
	struct routes_out	o;

	routes_of(REQ("sip:bob@example.test",
	    "Route: <sip:strict.example.org>, <sip:p3.example.org;lr>\r\n"),
	    &o);
	ck_assert_int_eq(o.rc, 0);
	ck_assert(!o.popped);
	ck_assert_slice_eq(o.ruri, "sip:strict.example.org");
	ck_assert_uint_eq(o.n, 2);
	ck_assert_slice_eq(o.r[0], "<sip:p3.example.org;lr>");
	ck_assert_slice_eq(o.r[1], "<sip:bob@example.test>");
	ck_assert_ptr_nonnull(o.strict);
	ck_assert(o.r[1].p == o.strict);
	free(o.strict);
}
END_TEST

/* Our Record-Route with this Call-ID's stamp, and with another's. */
START_TEST(routes_stamp)
{
	struct routes_out	o;
	char			st[17], text[1024];

	auth_stamp(S("r1@test"), st);
	snprintf(text, sizeof(text), REQ("sip:bob@example.test",
	    "Route: <sip:127.0.0.1:5060;lr;osp=%s>\r\n"), st);
	routes_of(text, &o);
	ck_assert(o.popped);
	ck_assert(o.stamp);
	ck_assert_uint_eq(o.n, 0);
	auth_stamp(S("other@test"), st);
	snprintf(text, sizeof(text), REQ("sip:bob@example.test",
	    "Route: <sip:127.0.0.1:5060;lr;osp=%s>\r\n"), st);
	routes_of(text, &o);
	ck_assert(o.popped);
	ck_assert(!o.stamp);
}
END_TEST

/* More Route values than we keep, or a bad one: 400. */
START_TEST(routes_bad)
{
	struct routes_out	o;
	char			text[8192], many[6000];
	size_t			n = 0;
	int			i;

	for (i = 0; i <= MAX_ROUTES; i++)
		n += snprintf(many + n, sizeof(many) - n, "Route: "
		    "<sip:p%d.example.org;lr>\r\n", i);
	snprintf(text, sizeof(text), REQ("sip:bob@example.test", "%s"),
	    many);
	routes_of(text, &o);
	ck_assert_int_eq(o.rc, 400);
	/* A strict next hop whose URI cannot be a Request-URI. */
	routes_of(REQ("sip:bob@example.test",
	    "Route: <sip:a b@strict.example.org>\r\n"), &o);
	ck_assert_int_eq(o.rc, 400);
}
END_TEST

/* ------------------------------------------- proxy_decide (16.4-16.5) */

static enum decision
decide(const char *text, struct hop *hop)
{
	struct sipmsg	*m = keep(parse(text));	/* hop points into it */

	return (proxy_decide(m, hop));
}

#define OPT(ruri, more)							\
	"OPTIONS " ruri " SIP/2.0\r\n"					\
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n"		\
	"From: <sip:alice@example.test>;tag=a1\r\n"			\
	"To: <sip:x@example.test>" more "\r\n"				\
	"Call-ID: d1@test\r\n"						\
	"CSeq: 1 OPTIONS\r\n"						\
	"Content-Length: 0\r\n\r\n"

START_TEST(decide_for_us)
{
	struct hop	hop;

	ck_assert_int_eq(decide(OPT("sip:example.test", ""), &hop),
	    DEC_FOR_US);
	ck_assert_int_eq(decide(OPT("sip:127.0.0.1:5060", ""), &hop),
	    DEC_FOR_US);
	ck_assert_int_eq(hop.code, 0);
	/* In a dialog: there is none with us (481). */
	ck_assert_int_eq(decide(OPT("sip:example.test", ";tag=x"), &hop),
	    DEC_REJECT);
	ck_assert_int_eq(hop.code, 481);
	/* Another method for the proxy itself: 405. */
	ck_assert_int_eq(decide(REQ("sip:example.test", ""), &hop),
	    DEC_REJECT);
	ck_assert_int_eq(hop.code, 405);
	ck_assert_str_eq(hop.err, "Method Not Allowed");
}
END_TEST

START_TEST(decide_route)
{
	struct hop	hop;

	ck_assert_int_eq(decide(REQ("sip:bob@example.test", ""), &hop),
	    DEC_ROUTE);
	ck_assert_ptr_nonnull(hop.route);
	ck_assert_str_eq(hop.route->targets[0].uri, "sip:127.0.0.1:5070");
	ck_assert_int_eq(decide(REQ("sip:ser@example.test", ""), &hop),
	    DEC_ROUTE);
	ck_assert_int_eq(hop.route->fork, FORK_SERIAL);
	/* A route applies to a foreign domain too (no domain regex). */
	ck_assert_int_eq(decide(REQ("sip:bob@elsewhere.example.org", ""),
	    &hop), DEC_ROUTE);
	/* A failure route is reached by on_failure only. */
	ck_assert_int_eq(decide(REQ("sip:ann@example.test", ""), &hop),
	    DEC_REJECT);
}
END_TEST

/* A user of ours without a route: 404, or the location service. */
START_TEST(decide_location)
{
	struct hop	hop;

	ck_assert_int_eq(decide(REQ("sip:nobody@example.test", ""), &hop),
	    DEC_REJECT);
	ck_assert_int_eq(hop.code, 404);
	registrar_set(&rs);
	ck_assert_int_eq(decide(REQ("sip:nobody@example.test", ""), &hop),
	    DEC_LOCATION);
	ck_assert_slice_eq(hop.user, "nobody");
	ck_assert_slice_eq(hop.domain, "example.test");
	/* Our address stands for our (first) domain. */
	ck_assert_int_eq(decide(REQ("sip:nobody@127.0.0.1:5060", ""), &hop),
	    DEC_LOCATION);
	ck_assert_slice_eq(hop.domain, "example.test");
	/* Case does not matter in a host. */
	ck_assert_int_eq(decide(REQ("sip:nobody@EXAMPLE.test", ""), &hop),
	    DEC_LOCATION);
	ck_assert_slice_eq(hop.domain, "example.test");
}
END_TEST

/* With no domain configured, our address is the domain itself. */
START_TEST(decide_location_no_domain)
{
	struct proxy_settings	*ps = proxy_settings();
	struct hop		 hop;
	unsigned		 n = ps->ndomains;

	registrar_set(&rs);
	ps->ndomains = 0;
	ck_assert_int_eq(decide(REQ("sip:nobody@127.0.0.1:5060", ""), &hop),
	    DEC_LOCATION);
	ck_assert_slice_eq(hop.domain, "127.0.0.1");
	ck_assert_int_eq(decide(REQ("sip:nobody@example.test", ""), &hop),
	    DEC_HOP);
	ck_assert(hop.foreign);
	ps->ndomains = n;
}
END_TEST

START_TEST(decide_register)
{
	struct hop	hop;
	const char	*reg = "REGISTER sip:example.test SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n"
	    "From: <sip:alice@example.test>;tag=a1\r\n"
	    "To: <sip:alice@example.test>\r\n"
	    "Call-ID: g1@test\r\nCSeq: 1 REGISTER\r\n"
	    "Content-Length: 0\r\n\r\n";

	/* Without a registrar a REGISTER is a request for the proxy. */
	ck_assert_int_eq(decide(reg, &hop), DEC_REJECT);
	ck_assert_int_eq(hop.code, 405);
	registrar_set(&rs);
	ck_assert_int_eq(decide(reg, &hop), DEC_REGISTER);
}
END_TEST

/* A foreign domain: one hop by the Request-URI, marked foreign. */
START_TEST(decide_foreign)
{
	struct hop	hop;

	ck_assert_int_eq(decide(REQ("sip:x@192.0.2.1:5080", ""), &hop),
	    DEC_HOP);
	ck_assert(hop.foreign);
	ck_assert(hop.dest.numeric);
	ck_assert_uint_eq(tp_addr_port(&hop.dest.addr), 5080);
	ck_assert_int_eq(decide(REQ("sip:x@biloxi.example.com", ""), &hop),
	    DEC_HOP);
	ck_assert(!hop.dest.numeric);
	ck_assert_str_eq(hop.dest.host, "biloxi.example.com");
	ck_assert_uint_eq(hop.dest.port, 0);
	ck_assert_int_eq(decide(REQ("sip:x@[::1", ""), &hop), DEC_REJECT);
}
END_TEST

/* A Route set: to its first value; back through ours: in a dialog. */
START_TEST(decide_route_set)
{
	struct hop	hop;

	ck_assert_int_eq(decide(REQ("sip:bob@example.test",
	    "Route: <sip:192.0.2.2:5090;lr>\r\n"), &hop), DEC_HOP);
	ck_assert(hop.foreign);
	ck_assert(!hop.dialog);
	ck_assert_uint_eq(tp_addr_port(&hop.dest.addr), 5090);
	ck_assert_uint_eq(hop.nroutes, 1);
	/* Ours on top (no auth, no stamp needed), then another proxy. */
	ck_assert_int_eq(decide(REQ("sip:bob@192.0.2.3:5064",
	    "Route: <sip:127.0.0.1:5060;lr>, <sip:192.0.2.2:5090;lr>\r\n"),
	    &hop), DEC_HOP);
	ck_assert(!hop.foreign);
	ck_assert(hop.dialog);
	ck_assert_uint_eq(tp_addr_port(&hop.dest.addr), 5090);
	/* Ours alone: to the Request-URI, the remote target. */
	ck_assert_int_eq(decide(REQ("sip:bob@192.0.2.3:5064",
	    "Route: <sip:127.0.0.1:5060;lr>\r\n"), &hop), DEC_HOP);
	ck_assert(hop.dialog);
	ck_assert(!hop.foreign);
	ck_assert_uint_eq(tp_addr_port(&hop.dest.addr), 5064);
	ck_assert_uint_eq(hop.nroutes, 0);
	/* A strict next hop: the destination is the new Request-URI. */
	ck_assert_int_eq(decide(REQ("sip:bob@example.test",
	    "Route: <sip:192.0.2.4:5066>\r\n"), &hop), DEC_HOP);
	ck_assert_slice_eq(hop.ruri, "sip:192.0.2.4:5066");
	ck_assert_uint_eq(tp_addr_port(&hop.dest.addr), 5066);
	ck_assert_ptr_nonnull(hop.strict);
	free(hop.strict);
	/* A Route we cannot use. */
	ck_assert_int_eq(decide(REQ("sip:bob@example.test",
	    "Route: <sip:p.example.org;lr;transport=tcp>\r\n"), &hop),
	    DEC_REJECT);
	ck_assert_int_eq(hop.code, 503);
}
END_TEST

/* ---------------------------------------- Via and branches (proxy_ctx.c) */

static struct dest
via_dest(const char *via, int want_rc)
{
	struct dest	d;

	ck_assert_int_eq(proxy_ctx_via_dest(S(via), &d), want_rc);
	return (d);
}

/* Addresses print as inet_ntop() prints them (the IPv4 path is our own). */
START_TEST(addr_ip_text)
{
	static const char	*ips[] = { "0.0.0.0", "127.0.0.1", "10.20.30.40",
				    "255.255.255.255", "192.0.2.199", "::1",
				    "2001:db8::7" };
	struct tp_addr		 a;
	char			 ip[INET6_ADDRSTRLEN];
	size_t			 i;

	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		ck_assert_int_eq(tp_addr_set(&a, (struct slice){ ips[i],
		    strlen(ips[i]) }, 5060), 0);
		memset(ip, 'x', sizeof(ip));
		tp_addr_ip(&a, ip, sizeof(ip));
		ck_assert_str_eq(ip, ips[i]);
	}
}
END_TEST

/* Where responses go: received and rport first (18.2.2, RFC 3581). */
START_TEST(ctx_via_dest)
{
	struct dest	d;
	char		ip[INET6_ADDRSTRLEN];

	d = via_dest("SIP/2.0/UDP 192.0.2.1:5080;branch=z9hG4bK1", 0);
	ck_assert(d.numeric);
	ck_assert_uint_eq(tp_addr_port(&d.addr), 5080);
	d = via_dest("SIP/2.0/UDP pc.example.org:5080;rport=4000;"
	    "received=192.0.2.9;branch=z9hG4bK1", 0);
	ck_assert(d.numeric);
	tp_addr_ip(&d.addr, ip, sizeof(ip));
	ck_assert_str_eq(ip, "192.0.2.9");
	ck_assert_uint_eq(tp_addr_port(&d.addr), 4000);
	d = via_dest("SIP / 2.0 / UDP  pc.example.org;rport;branch=z9hG4bK1",
	    0);
	ck_assert(!d.numeric);
	ck_assert_str_eq(d.host, "pc.example.org");
	ck_assert_uint_eq(d.port, 5060);
	d = via_dest("SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK1", 0);
	ck_assert(d.numeric);
	ck_assert_uint_eq(tp_addr_port(&d.addr), 5062);
	via_dest("SIP/2.0/UDP", -1);
	via_dest("SIP/2.0/UDP ;branch=z9hG4bK1", -1);
	via_dest("garbage", -1);
}
END_TEST

/*
 * Our branches carry a MAC of where their responses go: known as ours
 * for that next Via only, and not when one character changes.
 */
/* RFC 5626 flow tokens: they name a connection; forged ones do not. */
START_TEST(ctx_flow_token)
{
	struct tp_addr	a, b;
	char		tok[80];

	ck_assert_int_eq(tp_addr_set(&a, S("192.0.2.7"), 40123), 0);
	a.proto = TP_WS;
	proxy_ctx_flow_token(&a, tok, sizeof(tok));
	ck_assert_uint_eq(tok[0], 'f');
	ck_assert(proxy_ctx_flow_parse(S(tok), &b));
	ck_assert(tp_addr_eq(&a, &b));
	ck_assert_uint_eq(b.flags, TP_ADDR_FLOW);
	tok[3] ^= 1;			/* another address, the old MAC */
	ck_assert(!proxy_ctx_flow_parse(S(tok), &b));
	tok[3] ^= 1;
	tok[strlen(tok) - 1] = tok[strlen(tok) - 1] == '0' ? '1' : '0';
	ck_assert(!proxy_ctx_flow_parse(S(tok), &b));
	ck_assert(!proxy_ctx_flow_parse(S("f00"), &b));
	ck_assert(!proxy_ctx_flow_parse(S("alice"), &b));
	ck_assert_int_eq(tp_addr_set(&a, S("2001:db8::1"), 5061), 0);
	a.proto = TP_TLS;
	proxy_ctx_flow_token(&a, tok, sizeof(tok));
	ck_assert(proxy_ctx_flow_parse(S(tok), &b));
	ck_assert(tp_addr_eq(&a, &b));
}
END_TEST

START_TEST(ctx_branch_ours)
{
	const char	*top = "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKc1;"
			    "rport=5099;received=127.0.0.1";
	const char	*other = "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKc1;"
			    "rport=5098;received=127.0.0.1";
	char		 b[48], b2[48];
	struct dest	 d;

	proxy_ctx_branch(top, b, sizeof(b));
	proxy_ctx_branch(top, b2, sizeof(b2));
	ck_assert_uint_eq(strlen(b), SIP_MAGIC_LEN + 32);
	ck_assert_str_ne(b, b2);
	ck_assert(strncmp(b, SIP_MAGIC, SIP_MAGIC_LEN) == 0);
	ck_assert(proxy_ctx_branch_ours(S(b), S(top), &d));
	ck_assert_uint_eq(tp_addr_port(&d.addr), 5099);
	ck_assert(proxy_ctx_branch_ours(S(b2), S(top), &d));
	ck_assert(!proxy_ctx_branch_ours(S(b), S(other), &d));
	b[SIP_MAGIC_LEN + 3] ^= 1;
	ck_assert(!proxy_ctx_branch_ours(S(b), S(top), &d));
	b[SIP_MAGIC_LEN + 3] ^= 1;
	b[strlen(b) - 1] = b[strlen(b) - 1] == '0' ? '1' : '0';
	ck_assert(!proxy_ctx_branch_ours(S(b), S(top), &d));
	ck_assert(!proxy_ctx_branch_ours(S("z9hG4bKc1"), S(top), &d));
}
END_TEST

/* A late 2xx whose top Via is ours goes on by the next Via; others not. */
START_TEST(ctx_stray_response)
{
	const char	*fmt = "SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%s\r\n"
	    "Via: %s\r\n"
	    "From: <sip:alice@example.test>;tag=a1\r\n"
	    "To: <sip:bob@example.test>;tag=b1\r\n"
	    "Call-ID: st@test\r\nCSeq: 1 INVITE\r\n"
	    "Content-Length: 0\r\n\r\n";
	const char	*top = "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKc1;"
			    "rport=5099;received=127.0.0.1";
	char		 b[48], text[1024];

	proxy_ctx_branch(top, b, sizeof(b));
	snprintf(text, sizeof(text), fmt, 5061, b, top);	/* not us */
	recv_from(5070, text, strlen(text));
	snprintf(text, sizeof(text), fmt, 5060, "z9hG4bK0123", top);
	recv_from(5070, text, strlen(text));
	ck_assert_int_eq(fake_nsent(), 0);
	ck_assert_uint_eq(proxy_stats()->dropped, 2);
	snprintf(text, sizeof(text), fmt, 5060, b, top);
	recv_from(5070, text, strlen(text));
	ck_assert_int_eq(fake_nsent(), 1);
	ck_assert_uint_eq(tp_addr_port(fake_sent_peer(0)), CALLER);
	ck_assert_ptr_null(strstr(fake_sent(0), "5060;branch"));
	ck_assert_uint_eq(proxy_stats()->stateless_relayed, 1);
	ck_assert_uint_eq(proxy_stats()->responses_out[200], 1);
}
END_TEST

/* ----------------------------------------------- forking (proxy_fork.c) */

/* The forwarded INVITE: our Via on top, Record-Route, Max-Forwards - 1. */
START_TEST(fork_bytes)
{
	struct sipmsg	*m;
	struct slice	 v[4];
	char		 st[17], want[128];
	int		 i;

	caller_send("INVITE", "sip:bob@example.test", "fb@test", NULL);
	ck_assert_int_ge(next_to(CALLER, "SIP/2.0 100", 0), 0);
	i = next_to(5070, "INVITE sip:bob@example.test SIP/2.0", 0);
	ck_assert_int_ge(i, 0);
	m = keep(parse(fake_sent(i)));
	ck_assert_uint_eq(sipmsg_values(m, SH_VIA, v, 4), 2);
	ck_assert(strncmp(v[0].p, "SIP/2.0/UDP 127.0.0.1:5060;branch="
	    "z9hG4bK", 41) == 0);
	ck_assert(strncmp(v[1].p, "SIP/2.0/UDP 127.0.0.1:5099;branch="
	    "z9hG4bKcfb@test", 49) == 0);
	ck_assert_int_eq(m->max_forwards, 69);
	auth_stamp(S("fb@test"), st);
	snprintf(want, sizeof(want), "<sip:127.0.0.1:5060;lr;osp=%s>", st);
	ck_assert_uint_eq(sipmsg_values(m, SH_RECORD_ROUTE, v, 4), 1);
	ck_assert_slice_eq(v[0], want);
	/* A target with a user part replaces the Request-URI. */
	caller_send("INVITE", "sip:carol@example.test", "fc@test", NULL);
	ck_assert_int_ge(next_to(5072, "INVITE sip:carol@127.0.0.1:5072 ",
	    0), 0);
}
END_TEST

/* Parallel: every branch fails; the best answer goes up once (16.7). */
START_TEST(fork_parallel_best)
{
	int	ia, ib;

	caller_send("INVITE", "sip:duo@example.test", "fp@test", NULL);
	ia = next_to(5080, "INVITE ", 0);
	ib = next_to(5081, "INVITE ", 0);
	ck_assert_int_ge(ia, 0);
	ck_assert_int_ge(ib, 0);
	ck_assert_str_ne(branch_of(ia), branch_of(ib));
	answer(ia, 486, NULL);
	ck_assert_int_ge(next_to(5080, "ACK ", ia), 0);
	ck_assert_int_eq(next_to(CALLER, "SIP/2.0 486", 0), -1);
	answer(ib, 404, NULL);
	ck_assert_int_ge(next_to(5081, "ACK ", ib), 0);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 404"), 1);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 486"), 0);
}
END_TEST

/* A 6xx goes up at once; the ringing branch is CANCELled. */
START_TEST(fork_6xx_at_once)
{
	int	ia, ib;

	caller_send("INVITE", "sip:duo@example.test", "f6@test", NULL);
	ia = next_to(5080, "INVITE ", 0);
	ib = next_to(5081, "INVITE ", 0);
	answer(ia, 180, NULL);
	ck_assert_int_ge(next_to(CALLER, "SIP/2.0 180", 0), 0);
	answer(ib, 603, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 603"), 1);
	ck_assert_int_ge(next_to(5080, "CANCEL ", ia), 0);
	answer(ia, 487, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 487"), 0);
}
END_TEST

/* A 2xx goes up and CANCELs the others (Reason: cause 200). */
START_TEST(fork_2xx_cancels_others)
{
	int	ia, ib, c;

	caller_send("INVITE", "sip:duo@example.test", "f2@test", NULL);
	ia = next_to(5080, "INVITE ", 0);
	ib = next_to(5081, "INVITE ", 0);
	answer(ia, 180, NULL);
	answer(ib, 200, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 200"), 1);
	c = next_to(5080, "CANCEL ", ia);
	ck_assert_int_ge(c, 0);
	ck_assert_ptr_nonnull(strstr(fake_sent(c), "Reason: SIP;cause=200;"
	    "text=\"Call completed elsewhere\"\r\n"));
	ck_assert_int_eq(proxy_stats()->cancels_relayed, 1);
}
END_TEST

/* Serial with the default failover: 503 moves on to the next target. */
START_TEST(fork_serial_503_moves_on)
{
	int	ia, ib;

	caller_send("INVITE", "sip:ser@example.test", "fs@test", NULL);
	ia = next_to(5071, "INVITE ", 0);
	ck_assert_int_ge(ia, 0);
	ck_assert_int_eq(next_to(5072, "INVITE ", 0), -1);
	answer(ia, 503, NULL);
	ck_assert_int_ge(next_to(5071, "ACK ", ia), 0);
	ib = next_to(5072, "INVITE ", ia);
	ck_assert_int_ge(ib, 0);
	ck_assert_str_ne(branch_of(ia), branch_of(ib));
	answer(ib, 200, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 200"), 1);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 5"), 0);
}
END_TEST

/* Serial: a code outside failover (486) ends the search. */
START_TEST(fork_serial_stops)
{
	int	ia;

	caller_send("INVITE", "sip:ser@example.test", "ft@test", NULL);
	ia = next_to(5071, "INVITE ", 0);
	answer(ia, 486, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 486"), 1);
	ck_assert_int_eq(next_to(5072, "INVITE ", 0), -1);
}
END_TEST

/* A target's own timeout: the next target after it, not before. */
START_TEST(fork_target_timeout)
{
	caller_send("INVITE", "sip:slow@example.test", "fo@test", NULL);
	ck_assert_int_ge(next_to(5076, "INVITE ", 0), 0);
	fake_advance(999);
	ck_assert_int_eq(next_to(5077, "INVITE ", 0), -1);
	fake_advance(2);
	ck_assert_int_ge(next_to(5077, "INVITE ", 0), 0);
	/* A silent branch gets no CANCEL (9.1: no provisional yet). */
	ck_assert_int_eq(next_to(5076, "CANCEL ", 0), -1);
}
END_TEST

/* on_failure: the failure route's target, in the same transaction. */
START_TEST(fork_on_failure)
{
	int	ia, in;

	caller_send("INVITE", "sip:fail@example.test", "ff@test", NULL);
	ia = next_to(5073, "INVITE ", 0);
	answer(ia, 404, NULL);
	in = next_to(5074, "INVITE sip:ann@127.0.0.1:5074 ", ia);
	ck_assert_int_ge(in, 0);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 404"), 0);
	answer(in, 200, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 200"), 1);
}
END_TEST

/*
 * 3xx recursion: the Contacts become branches, up to max_redirects; the
 * ones tried leave the 3xx (16.7 step 4), which competes with the rest.
 */
START_TEST(fork_recurse)
{
	struct sipmsg	*m;
	struct slice	 v[4];
	int		 ia, ix, r;

	caller_send("INVITE", "sip:redir@example.test", "fr@test", NULL);
	ia = next_to(5075, "INVITE ", 0);
	answer(ia, 302, "Contact: <sip:x@127.0.0.1:5078>, "
	    "<sip:y@127.0.0.1:5079>\r\n");
	ix = next_to(5078, "INVITE sip:x@127.0.0.1:5078 ", ia);
	ck_assert_int_ge(ix, 0);
	ck_assert_int_eq(next_to(5079, "INVITE ", 0), -1);	/* limit 1 */
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 302"), 0);
	answer(ix, 486, NULL);
	r = next_to(CALLER, "SIP/2.0 302 ", 0);
	ck_assert_int_ge(r, 0);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 486"), 0);
	m = keep(parse(fake_sent(r)));
	ck_assert_uint_eq(sipmsg_values(m, SH_CONTACT, v, 4), 1);
	ck_assert_slice_eq(v[0], "<sip:y@127.0.0.1:5079>");
}
END_TEST

/*
 * Recursed on every Contact: the 3xx is out of the response context and
 * the best of the new branches goes up (RFC 3261 16.7 step 4).
 */
START_TEST(fork_recurse_all_fail)
{
	int	ia, ix;

	caller_send("INVITE", "sip:redir@example.test", "fq@test", NULL);
	ia = next_to(5075, "INVITE ", 0);
	answer(ia, 302, "Contact: <sip:x@127.0.0.1:5078>\r\n");
	ix = next_to(5078, "INVITE sip:x@127.0.0.1:5078 ", ia);
	ck_assert_int_ge(ix, 0);
	answer(ix, 486, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 486"), 1);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 302"), 0);
}
END_TEST

/* The caller's CANCEL; a branch that stays silent: 487 after cancel_ms. */
START_TEST(fork_cancel_timer)
{
	int	ia;

	caller_send("INVITE", "sip:bob@example.test", "fx@test", NULL);
	ia = next_to(5070, "INVITE ", 0);
	answer(ia, 180, NULL);
	caller_send("CANCEL", "sip:bob@example.test", "fx@test", NULL);
	ck_assert_int_ge(next_to(CALLER, "SIP/2.0 200", 0), 0);
	ck_assert_int_ge(next_to(5070, "CANCEL ", ia), 0);
	fake_advance(999);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 487"), 0);
	fake_advance(2);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 487"), 1);
}
END_TEST

/* Every branch 503: the caller gets 500 (16.7 step 6). */
START_TEST(fork_all_503)
{
	int	i;

	caller_send("INVITE", "sip:duo@example.test", "f5@test", NULL);
	answer(next_to(5080, "INVITE ", 0), 503, NULL);
	answer(next_to(5081, "INVITE ", 0), 503, NULL);
	ck_assert_int_eq(count_to(CALLER, "SIP/2.0 503"), 0);
	i = next_to(CALLER, "SIP/2.0 500 ", 0);
	ck_assert_int_ge(i, 0);
	/* Ours, so with our cause (that of 500 and 503). */
	ck_assert_ptr_nonnull(strstr(fake_sent(i), "\r\nReason: Q.850;"
	    "cause=41;text=\"NORMAL_TEMPORARY_FAILURE\"\r\n"));
}
END_TEST

int
main(void)
{
	TCase	*tc;

	check_add(check_case("reply_rank"), rank_6xx_first, rank_lowest_class,
	    rank_retry_4xx_lead, rank_within_class, rank_no_ties);
	tc = check_fixed("routes", proxy_setup, proxy_teardown);
	check_add(tc, routes_none, routes_pop_ours, routes_pop_cluster_peer,
	    routes_strict_before_us, routes_strict_next_hop, routes_stamp,
	    routes_bad);
	tc = check_fixed("decide", proxy_setup, proxy_teardown);
	check_add(tc, decide_for_us, decide_route, decide_location,
	    decide_location_no_domain, decide_register, decide_foreign,
	    decide_route_set);
	tc = check_fixed("ctx", proxy_setup, proxy_teardown);
	check_add(tc, addr_ip_text, ctx_via_dest, ctx_branch_ours, ctx_flow_token,
	    ctx_stray_response);
	tc = check_fixed("fork", proxy_setup, proxy_teardown);
	check_add(tc, fork_bytes, fork_parallel_best, fork_6xx_at_once,
	    fork_2xx_cancels_others, fork_serial_503_moves_on,
	    fork_serial_stops, fork_target_timeout, fork_on_failure,
	    fork_recurse, fork_recurse_all_fail, fork_cancel_timer,
	    fork_all_503);
	return (check_run("proxy"));
}
