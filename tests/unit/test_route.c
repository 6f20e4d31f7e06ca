/* Unit tests: causes and code sets (sipcause.c), target order (route.c). */
#include "config.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "route.h"
#include "sipcause.h"

START_TEST(cause_of_codes)
{
	ck_assert_int_eq(sip_cause(486), 17);
	ck_assert_int_eq(sip_cause(600), 17);
	ck_assert_int_eq(sip_cause(408), 18);
	ck_assert_int_eq(sip_cause(480), 19);
	ck_assert_int_eq(sip_cause(404), 1);
	ck_assert_int_eq(sip_cause(603), 21);
	ck_assert_int_eq(sip_cause(503), 41);
	ck_assert_int_eq(sip_cause(599), 41);	/* unknown: by class */
	ck_assert_str_eq(sip_cause_name(17), "USER_BUSY");
	ck_assert_str_eq(sip_cause_name(18), "NO_USER_RESPONSE");
	ck_assert_str_eq(sip_cause_name(19), "NO_ANSWER");
	ck_assert_str_eq(sip_cause_name(1), "UNALLOCATED_NUMBER");
	ck_assert_str_eq(sip_cause_name(21), "CALL_REJECTED");
	ck_assert_str_eq(sip_cause_name(41), "NORMAL_TEMPORARY_FAILURE");
	ck_assert_int_eq(sip_cause_by_name("user_busy"), 17);
	ck_assert_int_eq(sip_cause_by_name("NO_SUCH_CAUSE"), -1);
	ck_assert_int_eq(sip_cause_code(17), 486);
	ck_assert_int_eq(sip_cause_code(41), 503);
}
END_TEST

START_TEST(codeset_items)
{
	struct codeset	cs;
	char		err[256], buf[256];

	memset(&cs, 0, sizeof(cs));
	ck_assert_int_eq(codeset_add(&cs, "408", err, sizeof(err)), 0);
	ck_assert_int_eq(codeset_add(&cs, "5xx", err, sizeof(err)), 0);
	ck_assert_int_eq(codeset_add(&cs, "USER_BUSY", err, sizeof(err)), 0);
	ck_assert_int_eq(codeset_add(&cs, "Q.850:19", err, sizeof(err)), 0);
	ck_assert(codeset_match(&cs, 408));
	ck_assert(codeset_match(&cs, 500));
	ck_assert(codeset_match(&cs, 503));
	ck_assert(codeset_match(&cs, 486));
	ck_assert(codeset_match(&cs, 600));	/* USER_BUSY too */
	ck_assert(codeset_match(&cs, 480));	/* Q.850 19 */
	ck_assert(!codeset_match(&cs, 404));
	ck_assert(!codeset_match(&cs, 603));
	codeset_print(&cs, buf, sizeof(buf));
	ck_assert_str_eq(buf, "408, 5xx, USER_BUSY, NO_ANSWER");
	ck_assert_int_eq(codeset_add(&cs, "200", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "300..699"));
	ck_assert_int_eq(codeset_add(&cs, "BUSY", err, sizeof(err)), -1);
	ck_assert_int_eq(codeset_add(&cs, "7xx", err, sizeof(err)), -1);
	ck_assert_int_eq(codeset_add(&cs, "Q.850:0", err, sizeof(err)), -1);
}
END_TEST

static struct route *
three_targets(struct route_table *rt, enum balance bal)
{
	struct route	*r;
	char		 err[256];

	memset(rt, 0, sizeof(*rt));
	r = route_add(rt, "^x$", NULL, 1, err, sizeof(err));
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(route_add_target(r, "sip:127.0.0.1:5001", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(route_add_target(r, "sip:127.0.0.1:5002", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(route_add_target(r, "sip:gw.example.test", err,
	    sizeof(err)), 0);
	r->balance = bal;
	return (r);
}

START_TEST(order_as_listed_and_round_robin)
{
	struct route_table	 rt;
	struct route		*r = three_targets(&rt, BAL_ORDER);
	struct slice		 cid = { "abc", 3 };
	unsigned		 o[ROUTE_MAX_TARGETS];

	ck_assert_uint_eq(route_order(r, cid, o), 3);
	ck_assert_uint_eq(o[0], 0);
	ck_assert_uint_eq(o[1], 1);
	ck_assert_uint_eq(o[2], 2);
	ck_assert(r->targets[0].dest.numeric);
	ck_assert(!r->targets[2].dest.numeric);
	ck_assert_str_eq(r->targets[2].dest.host, "gw.example.test");
	ck_assert_uint_eq(r->targets[2].dest.port, 0);	/* SRV first */
	r->balance = BAL_ROUND_ROBIN;
	route_order(r, cid, o);
	ck_assert_uint_eq(o[0], 0);
	route_order(r, cid, o);
	ck_assert_uint_eq(o[0], 1);
	ck_assert_uint_eq(o[1], 2);
	ck_assert_uint_eq(o[2], 0);
	route_order(r, cid, o);
	ck_assert_uint_eq(o[0], 2);
	route_table_free(&rt);
}
END_TEST

START_TEST(order_hash_is_stable)
{
	struct route_table	 rt;
	struct route		*r = three_targets(&rt, BAL_HASH);
	unsigned		 a[ROUTE_MAX_TARGETS], b[ROUTE_MAX_TARGETS];
	unsigned		 firsts[3] = { 0, 0, 0 }, i;
	char			 id[32];

	route_order(r, (struct slice){ "call-1", 6 }, a);
	route_order(r, (struct slice){ "call-1", 6 }, b);
	ck_assert_int_eq(memcmp(a, b, 3 * sizeof(a[0])), 0);
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "call-%u", i);
		route_order(r, (struct slice){ id, strlen(id) }, a);
		firsts[a[0]]++;
	}
	for (i = 0; i < 3; i++)
		ck_assert_uint_gt(firsts[i], 50);	/* spread */
	route_table_free(&rt);
}
END_TEST

START_TEST(order_weight_follows_weights)
{
	struct route_table	 rt;
	struct route		*r = three_targets(&rt, BAL_WEIGHT);
	unsigned		 o[ROUTE_MAX_TARGETS], firsts[3] = { 0, 0, 0 };
	unsigned		 i;

	r->targets[0].weight = 8;
	r->targets[1].weight = 1;
	r->targets[2].weight = 0;	/* never first while others can be */
	srandom(7);
	for (i = 0; i < 900; i++) {
		ck_assert_uint_eq(route_order(r, (struct slice){ "x", 1 }, o),
		    3);
		ck_assert(o[0] != o[1] && o[1] != o[2] && o[0] != o[2]);
		firsts[o[0]]++;
	}
	ck_assert_uint_gt(firsts[0], 700);
	ck_assert_uint_gt(firsts[1], 40);
	ck_assert_uint_eq(firsts[2], 0);
	route_table_free(&rt);
}
END_TEST

START_TEST(dest_from_uris)
{
	struct dest	d;
	char		err[128];
	const char	*u1 = "sip:bob@127.0.0.1:5070;transport=udp";
	const char	*u2 = "sip:bob@host.test;maddr=10.0.0.1";
	const char	*u3 = "sip:bob@127.0.0.1;transport=tcp";
	const char	*u4 = "sip:gw.test:5080";
	const char	*u5 = "sips:bob@127.0.0.1";
	const char	*u6 = "sip:bob@127.0.0.1;transport=sctp";
	const char	*u7 = "sips:bob@127.0.0.1;transport=udp";

	ck_assert_int_eq(dest_from_uri((struct slice){ u1, strlen(u1) }, &d,
	    err, sizeof(err)), 0);
	ck_assert(d.numeric);
	ck_assert_int_eq(dest_from_uri((struct slice){ u2, strlen(u2) }, &d,
	    err, sizeof(err)), 0);
	ck_assert(d.numeric);		/* maddr wins */
	ck_assert_uint_eq(d.addr.proto, TP_UDP);
	ck_assert_int_eq(dest_from_uri((struct slice){ u3, strlen(u3) }, &d,
	    err, sizeof(err)), 0);
	ck_assert(d.numeric);
	ck_assert_uint_eq(d.addr.proto, TP_TCP);
	ck_assert_uint_eq(tp_addr_port(&d.addr), 5060);
	/* sips: TLS, on 5061 unless a port is given (RFC 3261 26.2.2) */
	ck_assert_int_eq(dest_from_uri((struct slice){ u5, strlen(u5) }, &d,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(d.addr.proto, TP_TLS);
	ck_assert_uint_eq(tp_addr_port(&d.addr), 5061);
	ck_assert_int_eq(dest_from_uri((struct slice){ u6, strlen(u6) }, &d,
	    err, sizeof(err)), 503);
	ck_assert_int_eq(dest_from_uri((struct slice){ u7, strlen(u7) }, &d,
	    err, sizeof(err)), 503);
	ck_assert_int_eq(dest_from_uri((struct slice){ u4, strlen(u4) }, &d,
	    err, sizeof(err)), 0);
	ck_assert(!d.numeric);
	ck_assert_str_eq(d.host, "gw.test");
	ck_assert_uint_eq(d.port, 5080);
}
END_TEST

/*
 * dest_addr_set() reads a dotted quad itself: the same address, or the
 * same refusal, as tp_addr_set() (inet_pton()) for every host.
 */
START_TEST(addr_set_as_inet_pton)
{
	static const char *const hosts[] = {
		"127.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.2.3",
		"256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04",
		"1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4a", "1.2.3.1000",
		"[127.0.0.1]", "[::1]", "::1", "host.test", "", "1.2.3.4 ",
		"0.0.0.00", "192.168.001.1", "9.9.9.9",
	};
	size_t	i;

	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		struct tp_addr	a, b;
		struct slice	h = { hosts[i], strlen(hosts[i]) };
		int		ra, rb;

		memset(&a, 0xa5, sizeof(a));
		memset(&b, 0x5a, sizeof(b));
		ra = dest_addr_set(&a, h, 5070);
		rb = tp_addr_set(&b, h, 5070);
		ck_assert_msg(ra == rb, "%s: %d, inet_pton %d", hosts[i], ra,
		    rb);
		if (ra == 0)
			ck_assert_msg(memcmp(&a, &b, sizeof(a)) == 0,
			    "%s: another address", hosts[i]);
	}
}
END_TEST

int
main(void)
{
	check_add(check_case("core"), cause_of_codes, codeset_items,
	    order_as_listed_and_round_robin, order_hash_is_stable,
	    order_weight_follows_weights, dest_from_uris,
	    addr_set_as_inet_pton);
	return (check_run("route"));
}
