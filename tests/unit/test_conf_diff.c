/* Unit tests: conf_diff.c, the reload summary. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "buf.h"
#include "check_util.h"
#include "conf_diff.h"

static const char *old_text =
    "listen udp 127.0.0.1 port 5060\n"
    "domain example.test\n"
    "relay no\n"
    "timers t1=500 t2=4000 t4=5000 c=180000 d=32000 cancel=5000\n"
    "route gw user=^9 domain=* fork=serial balance=order failover=[408]\n"
    "  target sip:192.0.2.1\n"
    "  target sip:192.0.2.2\n"
    "route - user=^bob$ domain=* fork=parallel balance=order failover=[]\n"
    "  target sip:127.0.0.1:5070\n"
    "dns nameserver 127.0.0.1 port 53\n"
    "dns timeout 2000\n"
    "log_level info\n";

/* The lines of a diff, in a buf the caller cleans up. */
static unsigned
diff(const char *a, const char *b, struct buf *out)
{
	buf_init(out, 64);
	return (conf_diff(a, b, out));
}

static char *
edit(const char *from, const char *to)
{
	const char	*at = strstr(old_text, from);
	char		*s;

	ck_assert_ptr_nonnull(at);
	s = malloc(strlen(old_text) + strlen(to) + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, old_text, (size_t)(at - old_text));
	strcpy(s + (at - old_text), to);
	strcat(s, at + strlen(from));
	return (s);
}

START_TEST(same)
{
	struct buf	b;

	ck_assert_uint_eq(diff(old_text, old_text, &b), 0);
	ck_assert_str_eq(b.p, "");
	buf_cleanup(&b);
}
END_TEST

START_TEST(single_values)
{
	struct buf	 b;
	char		*n = edit("t1=500 t2=4000 t4=5000 c=180000 d=32000",
			    "t1=100 t2=4000 t4=5000 c=180000 d=6400");
	char		*n2 = edit("log_level info", "log_level debug");

	ck_assert_uint_eq(diff(old_text, n, &b), 1);
	ck_assert_str_eq(b.p, "timers: t1=500 d=32000 -> t1=100 d=6400\n");
	buf_cleanup(&b);
	ck_assert_uint_eq(diff(old_text, n2, &b), 1);
	ck_assert_str_eq(b.p, "log_level: info -> debug\n");
	buf_cleanup(&b);
	free(n);
	free(n2);
}
END_TEST

START_TEST(listen_and_domains)
{
	struct buf	 b;
	char		*n = edit("domain example.test\n",
			    "domain example.test\ndomain example.org\n");
	char		*n2 = edit("port 5060\n", "port 5070\n"
			    "listen udp ::1 port 5060\n");

	ck_assert_uint_eq(diff(old_text, n, &b), 1);
	ck_assert_str_eq(b.p, "domain added: example.org\n");
	buf_cleanup(&b);
	ck_assert_uint_eq(diff(old_text, n2, &b), 3);
	ck_assert_str_eq(b.p, "listen removed: udp 127.0.0.1 port 5060\n"
	    "listen added: udp 127.0.0.1 port 5070\n"
	    "listen added: udp ::1 port 5060\n");
	buf_cleanup(&b);
	free(n);
	free(n2);
}
END_TEST

START_TEST(routes)
{
	struct buf	 b;
	char		*n = edit("  target sip:192.0.2.2\n",
			    "  target sip:192.0.2.3\n");
	char		*n2 = edit("user=^bob$", "user=^carol$");
	char		*n3 = edit("fork=serial", "fork=parallel");

	ck_assert_uint_eq(diff(old_text, n, &b), 1);
	ck_assert_str_eq(b.p, "route gw: changed: target sip:192.0.2.2 "
	    "removed; target sip:192.0.2.3 added\n");
	buf_cleanup(&b);
	ck_assert_uint_eq(diff(old_text, n2, &b), 2);
	ck_assert_str_eq(b.p, "route user=^bob$ domain=*: removed\n"
	    "route user=^carol$ domain=*: added\n");
	buf_cleanup(&b);
	ck_assert_uint_eq(diff(old_text, n3, &b), 1);
	ck_assert_str_eq(b.p, "route gw: changed: fork=serial -> "
	    "fork=parallel\n");
	buf_cleanup(&b);
	/* A route that goes away, with its targets. */
	ck_assert_uint_eq(diff(old_text, "", &b), 9);
	ck_assert_ptr_nonnull(strstr(b.p, "route gw: removed\n"));
	buf_cleanup(&b);
	free(n);
	free(n2);
	free(n3);
}
END_TEST

START_TEST(same_key_several_lines)
{
	struct buf	 b;
	char		*n = edit("dns timeout 2000", "dns timeout 500");

	/* dns has two records: compared as a set, not as one value. */
	ck_assert_uint_eq(diff(old_text, n, &b), 2);
	ck_assert_str_eq(b.p, "dns removed: timeout 2000\n"
	    "dns added: timeout 500\n");
	buf_cleanup(&b);
	free(n);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("conf_diff");

	check_add(tc, same, single_values, listen_and_domains, routes,
	    same_key_several_lines);
	return (check_run("conf_diff"));
}
