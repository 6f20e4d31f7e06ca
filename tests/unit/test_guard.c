/* Unit tests: the per-source guard (guard.c) on the fake clock. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "fake.h"
#include "guard.h"
#include "log.h"

static struct guard_settings	gs;
static struct acl		trusted;

static struct tp_addr
A(const char *ip)
{
	struct tp_addr	a;

	ck_assert_int_eq(tp_addr_set(&a, S(ip), 5060), 0);
	return (a);
}

static void
setup(void)
{
	char	err[128];

	fake_reset();
	memset(&gs, 0, sizeof(gs));
	memset(&trusted, 0, sizeof(trusted));
	gs.window_ms = 1000;
	gs.max_requests = 5;
	gs.ban_ms = 3000;
	gs.auth_failures = 3;
	gs.auth_window_ms = 60000;
	gs.max_sources = 100;
	gs.scanners = true;
	ck_assert_int_eq(regcomp(&gs.scanner_re, "friendly|sipvicious",
	    REG_EXTENDED | REG_ICASE | REG_NOSUB), 0);
	ck_assert_int_eq(acl_add(&gs.exempt, "10.0.0.0/8", err, sizeof(err)),
	    0);
	ck_assert_int_eq(acl_add(&trusted, "192.0.2.1", err, sizeof(err)), 0);
	guard_init(NULL);
	guard_add_self("127.0.0.1");
	guard_set(&gs, &trusted);
}

static void
teardown(void)
{
	guard_shutdown();
	regfree(&gs.scanner_re);
}

START_TEST(rate_limit_bans_and_lifts)
{
	struct tp_addr	x = A("198.51.100.7"), y = A("198.51.100.8");
	int		i;

	for (i = 0; i < 5; i++)
		ck_assert(guard_allow(&x, true));
	ck_assert(!guard_allow(&x, true));	/* the 6th in the window */
	ck_assert_uint_eq(guard_banned(), 1);
	ck_assert(!guard_allow(&x, false));	/* responses too, while banned */
	ck_assert(guard_allow(&y, true));	/* others are not touched */
	fake_advance(2999);
	ck_assert(!guard_allow(&x, true));
	fake_advance(2);
	ck_assert(guard_allow(&x, true));	/* served again */
	ck_assert_uint_eq(guard_banned(), 0);
	ck_assert_uint_eq(guard_stats()->bans, 1);
	ck_assert_uint_ge(guard_stats()->dropped, 3);
}
END_TEST

START_TEST(a_new_window_starts_afresh)
{
	struct tp_addr	x = A("198.51.100.7");
	int		i, round;

	for (round = 0; round < 10; round++) {
		for (i = 0; i < 5; i++)
			ck_assert(guard_allow(&x, true));
		fake_advance(1000);
	}
	ck_assert_uint_eq(guard_banned(), 0);
	/* Responses never count. */
	for (i = 0; i < 50; i++)
		ck_assert(guard_allow(&x, false));
}
END_TEST

START_TEST(exempt_trusted_and_self)
{
	const char	*ips[] = { "10.1.2.3", "192.0.2.1", "127.0.0.1" };
	unsigned	 i, j;

	for (i = 0; i < 3; i++) {
		struct tp_addr	x = A(ips[i]);

		for (j = 0; j < 100; j++)
			ck_assert(guard_allow(&x, true));
		for (j = 0; j < 10; j++)
			guard_auth_failed(&x);
		ck_assert(guard_allow(&x, true));
	}
	ck_assert_uint_eq(guard_banned(), 0);
}
END_TEST

START_TEST(auth_failures_ban)
{
	struct tp_addr	x = A("203.0.113.9");

	guard_auth_failed(&x);
	guard_auth_failed(&x);
	ck_assert(guard_allow(&x, true));
	guard_auth_failed(&x);			/* the third */
	ck_assert(!guard_allow(&x, true));
	fake_advance(3001);
	ck_assert(guard_allow(&x, true));
	/* Failures spread wider than the window do not add up. */
	guard_auth_failed(&x);
	fake_advance(60001);
	guard_auth_failed(&x);
	guard_auth_failed(&x);
	ck_assert(guard_allow(&x, true));
}
END_TEST

START_TEST(call_budget)
{
	struct tp_addr	x = A("198.51.100.7"), t = A("192.0.2.1");
	unsigned	i, n = 0;

	gs.call_rate = 10;		/* one token deep */
	fake_advance(1000);
	ck_assert(guard_call_allowed(&x));
	ck_assert(!guard_call_allowed(&x));
	ck_assert(guard_call_allowed(&t));	/* trusted: not counted */
	for (i = 0; i < 100; i++) {		/* 10 s at 10 calls/s */
		fake_advance(10);
		n += guard_call_allowed(&x);
	}
	ck_assert_uint_ge(n, 9);
	ck_assert_uint_le(n, 11);
	ck_assert_uint_ge(guard_stats()->call_rate, 90);
}
END_TEST

START_TEST(scanner_user_agents)
{
	ck_assert(guard_scanner(S("friendly-scanner")));
	ck_assert(guard_scanner(S("SIPVicious 0.3")));
	ck_assert(!guard_scanner(S("Linphone/5.2 (belle-sip/5.2)")));
	ck_assert(!guard_scanner(S("")));
	gs.scanners = false;
	ck_assert(!guard_scanner(S("friendly-scanner")));
}
END_TEST

START_TEST(bounded_table)
{
	char		ip[32];
	unsigned	i;
	struct tp_addr	late = A("203.0.113.1");

	for (i = 0; i < 100; i++) {
		struct tp_addr	x;

		snprintf(ip, sizeof(ip), "198.51.100.%u", i);
		x = A(ip);
		ck_assert(guard_allow(&x, true));
	}
	/* Full: a new source is not tracked (nor limited), memory bounded. */
	for (i = 0; i < 20; i++)
		ck_assert(guard_allow(&late, true));
	/*
	 * The sweep forgets sources idle for longer than the longest window
	 * (auth_window, 60 s here); then it is tracked again.
	 */
	fake_advance(65000);
	for (i = 0; i < 5; i++)
		ck_assert(guard_allow(&late, true));
	ck_assert(!guard_allow(&late, true));
}
END_TEST

int
main(void)
{
	TCase	*tc = check_fixed("core", setup, teardown);

	log_init(true, LOG_LVL_ERR);
	check_add(tc, rate_limit_bans_and_lifts, a_new_window_starts_afresh,
	    exempt_trusted_and_self, auth_failures_ban, call_budget,
	    scanner_user_agents, bounded_table);
	return (check_run("guard"));
}
