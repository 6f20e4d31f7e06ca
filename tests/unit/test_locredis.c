/* Unit tests: locredis.c (a binding in a Redis hash), redis.c helpers. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "auth.h"
#include "cluster.h"
#include "buf.h"
#include "locredis.h"
#include "redis.h"
#include "tp.h"

static struct locredis_row
full_row(void)
{
	struct locredis_row	r;

	memset(&r, 0, sizeof(r));
	r.contact = S("sip:alice@192.0.2.7:5062;transport=tcp");
	r.instance = S("\"<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>\"");
	r.path = S("<sip:edge.example.test;lr>");
	r.callid = S("a84b4c76e66710@pc33");
	r.user_agent = S("Phone/1.0");
	r.received = S("tcp:192.0.2.7:40123");
	r.local = S("tcp:127.0.0.2:5060");
	r.node = S("node-a");
	r.route = S("<sip:p0102@127.0.0.2:5060;transport=udp;lr>");
	r.expires_ms = 1765000000123LL;
	r.reg_id = 2;
	r.cseq = 314159;
	r.q = 500;
	return (r);
}

START_TEST(round_trip)
{
	struct locredis_row	r = full_row(), d;
	struct buf		b;

	buf_init(&b, 64);
	locredis_encode(&r, &b);
	ck_assert_int_eq(locredis_decode(b.p, b.len, &d), 0);
	ck_assert_slice_eq(d.contact, "sip:alice@192.0.2.7:5062;transport=tcp");
	ck_assert_slice_eq(d.instance,
	    "\"<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>\"");
	ck_assert_slice_eq(d.path, "<sip:edge.example.test;lr>");
	ck_assert_slice_eq(d.callid, "a84b4c76e66710@pc33");
	ck_assert_slice_eq(d.user_agent, "Phone/1.0");
	ck_assert_slice_eq(d.received, "tcp:192.0.2.7:40123");
	ck_assert_slice_eq(d.local, "tcp:127.0.0.2:5060");
	ck_assert_slice_eq(d.node, "node-a");
	ck_assert_slice_eq(d.route,
	    "<sip:p0102@127.0.0.2:5060;transport=udp;lr>");
	ck_assert(d.expires_ms == 1765000000123LL);
	ck_assert_uint_eq(d.reg_id, 2);
	ck_assert_uint_eq(d.cseq, 314159);
	ck_assert_uint_eq(d.q, 500);
	buf_cleanup(&b);
}
END_TEST

/* The script reads the expiry with '^%d+\n(%d+)': version, then it. */
START_TEST(expiry_second)
{
	struct locredis_row	r = full_row();
	struct buf		b;

	buf_init(&b, 64);
	locredis_encode(&r, &b);
	ck_assert_msg(strncmp(b.p, "2\n1765000000123\nnode-a\n", 23) == 0,
	    "value starts \"%.30s\"", b.p);
	ck_assert(b.p[b.len - 1] != '\n');
	buf_cleanup(&b);
}
END_TEST

/* Empty optional parts, and CR LF of a folded header, stay 13 lines. */
START_TEST(empty_and_folded)
{
	struct locredis_row	r = full_row(), d;
	struct buf		b;

	r.instance = S("");
	r.path = S("");
	r.local = S("");
	r.route = S("");
	r.user_agent = S("Phone\r\n 2.0");
	buf_init(&b, 64);
	locredis_encode(&r, &b);
	ck_assert_int_eq(locredis_decode(b.p, b.len, &d), 0);
	ck_assert_uint_eq(d.instance.len, 0);
	ck_assert_uint_eq(d.path.len, 0);
	ck_assert_uint_eq(d.local.len, 0);
	ck_assert_uint_eq(d.route.len, 0);
	ck_assert_slice_eq(d.user_agent, "Phone   2.0");
	ck_assert_slice_eq(d.callid, "a84b4c76e66710@pc33");
	buf_cleanup(&b);
}
END_TEST

START_TEST(decode_refuses)
{
	static const char *const bad[] = {
		"",
		"2\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n",
		"1\nx\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n",
		"1\n1\nn\n1.2.3.4:5\n\n0\n1\n1001\nsip:a@b\n\n\n\n",
		"1\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\n\n\n\n\n",	/* contact */
		"1\n1\nn\n\n\n0\n1\n1000\nsip:a@b\n\n\n\n",	/* received */
		"1\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n",
		"1\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n\n",
		"1\n1\nn\n1.2.3.4:5\n\n4294967296\n1\n1000\nsip:a@b\n\n\n\n",
		"2\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n\n\n",
		"3\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n\n",
	};
	static const char	good[] =
	    "1\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n";
	struct locredis_row	d;
	size_t			i;

	static const char	good2[] =
	    "2\n1\nn\n1.2.3.4:5\n\n0\n1\n1000\nsip:a@b\n\n\n\n\n<sip:x;lr>";

	ck_assert_int_eq(locredis_decode(good, strlen(good), &d), 0);
	ck_assert_uint_eq(d.route.len, 0);	/* version 1: no route */
	ck_assert_int_eq(locredis_decode(good2, strlen(good2), &d), 0);
	ck_assert_slice_eq(d.route, "<sip:x;lr>");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(locredis_decode(bad[i], strlen(bad[i]), &d) ==
		    -1, "bad[%zu] decoded", i);
}
END_TEST

/* RFC 5626: instance and reg-id name a binding, else its Contact. */
START_TEST(field_names)
{
	struct buf	b;

	buf_init(&b, 64);
	locredis_field(S(""), 0, S("sip:bob@192.0.2.1"), &b);
	ck_assert_str_eq(b.p, "c:sip:bob@192.0.2.1");
	b.len = 0;
	locredis_field(S("\"<urn:uuid:1>\""), 1, S("sip:bob@192.0.2.1"), &b);
	b.p[b.len] = '\0';
	ck_assert_str_eq(b.p, "i:\"<urn:uuid:1>\";1");
	buf_cleanup(&b);
}
END_TEST

START_TEST(backoff_doubles_capped)
{
	uint32_t	ms = 0, seen[10];
	int		i;

	for (i = 0; i < 10; i++)
		seen[i] = ms = redis_backoff_next(ms);
	ck_assert_uint_eq(seen[0], REDIS_BACKOFF_MIN_MS);
	ck_assert_uint_eq(seen[1], 2 * REDIS_BACKOFF_MIN_MS);
	ck_assert_uint_eq(seen[2], 4 * REDIS_BACKOFF_MIN_MS);
	ck_assert_uint_eq(seen[9], REDIS_BACKOFF_MAX_MS);
	for (i = 1; i < 10; i++)
		ck_assert_uint_ge(seen[i], seen[i - 1]);
}
END_TEST

START_TEST(address_parse)
{
	char		host[64];
	uint16_t	port;

	ck_assert_int_eq(redis_address_parse("127.0.0.1:6379", host,
	    sizeof(host), &port), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_uint_eq(port, 6379);
	ck_assert_int_eq(redis_address_parse("[::1]:7000", host,
	    sizeof(host), &port), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_uint_eq(port, 7000);
	ck_assert_int_eq(redis_address_parse("redis.example.test:1", host,
	    sizeof(host), &port), 0);
	ck_assert_int_eq(redis_address_parse("127.0.0.1", host,
	    sizeof(host), &port), -1);
	ck_assert_int_eq(redis_address_parse("::1:6379", host,
	    sizeof(host), &port), -1);
	ck_assert_int_eq(redis_address_parse("h:0", host, sizeof(host),
	    &port), -1);
	ck_assert_int_eq(redis_address_parse("h:65536", host, sizeof(host),
	    &port), -1);
	ck_assert_int_eq(redis_address_parse(":6379", host, sizeof(host),
	    &port), -1);
}
END_TEST

/* A path token names the flow, under a MAC: a changed byte is refused. */
START_TEST(path_token)
{
	static const uint8_t	secret[32] = { 1, 2, 3 };
	struct tp_addr		a, b;
	char			tok[64], bad[64];
	size_t			i, n;

	auth_init(secret);
	ck_assert_int_eq(tp_addr_parse("tcp:192.0.2.7:40123", &a), 0);
	locredis_token(&a, tok, sizeof(tok));
	ck_assert(tok[0] == 'p');
	ck_assert(locredis_token_parse(S(tok), &b));
	ck_assert_uint_eq(b.proto, TP_TCP);
	ck_assert_uint_eq(b.flags, TP_ADDR_FLOW);
	ck_assert(tp_addr_eq(&a, &b));
	n = strlen(tok);
	for (i = 0; i < n; i++) {
		memcpy(bad, tok, n + 1);
		bad[i] = bad[i] == '0' ? '1' : '0';
		ck_assert_msg(!locredis_token_parse(S(bad), &b),
		    "byte %zu changed, still taken", i);
	}
	ck_assert(!locredis_token_parse(S("p"), &b));
	/* UDP (a NAT's address): a flow too, no connection. */
	ck_assert_int_eq(tp_addr_parse("[2001:db8::1]:5062", &a), 0);
	locredis_token(&a, tok, sizeof(tok));
	ck_assert(locredis_token_parse(S(tok), &b));
	ck_assert_uint_eq(b.proto, TP_UDP);
	ck_assert_uint_eq(b.flags, 0);
	ck_assert(tp_addr_eq(&a, &b));
	/* Under another secret (another node): not ours. */
	auth_shutdown();
	auth_init((const uint8_t[32]){ 9 });
	ck_assert(!locredis_token_parse(S(tok), &b));
	auth_shutdown();
}
END_TEST

#define CLUSTER_HEX	"0123456789abcdef0123456789abcdef" \
			"fedcba9876543210fedcba9876543210"

/*
 * With the cluster secret: a token checks in any run of the node (made
 * again after a restart: another run secret); one made under the run's
 * own key before Redis answered still checks in that run; under another
 * cluster secret, no token checks.
 */
START_TEST(path_token_cluster)
{
	struct tp_addr	a, b;
	char		tok[64], early[64];

	cluster_forget();
	auth_init((const uint8_t[32]){ 1 });
	ck_assert_int_eq(tp_addr_parse("198.51.100.9:5066", &a), 0);
	locredis_token(&a, early, sizeof(early));
	ck_assert_int_eq(cluster_adopt(CLUSTER_HEX, 64), 1);
	locredis_token(&a, tok, sizeof(tok));
	ck_assert_str_ne(tok, early);
	ck_assert(locredis_token_parse(S(early), &b));
	ck_assert(tp_addr_eq(&a, &b));
	ck_assert(locredis_token_parse(S(tok), &b));
	/* The node restarted (same cluster secret, a new run's). */
	auth_shutdown();
	auth_init((const uint8_t[32]){ 2 });
	ck_assert(locredis_token_parse(S(tok), &b));
	ck_assert(tp_addr_eq(&a, &b));
	ck_assert_uint_eq(b.flags, 0);
	ck_assert(!locredis_token_parse(S(early), &b));
	/* Another cluster secret. */
	ck_assert_int_eq(cluster_adopt("5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
	    "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e", 64), 1);
	ck_assert(!locredis_token_parse(S(tok), &b));
	cluster_forget();
	auth_shutdown();
}
END_TEST

/* tp_addr_encode()/decode(): the flow in a token, and what is refused. */
START_TEST(addr_codec)
{
	static const char *const addrs[] = { "tcp:192.0.2.7:40123",
	    "[2001:db8::1]:5062", "tls:[2001:db8::2]:5061", "10.0.0.1:65535" };
	static const char *const bad[] = { "", "0", "00", "0002c0000207",
	    "0002c00002079c", "0002c00002079c3b00", "ff02c00002079c3b",
	    "000ac00002079c3b", "0002c00002079c3g", "0102c0000207 c3b" };
	struct tp_addr	a, b;
	char		hex[64], up[64];
	size_t		i, n;

	for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		ck_assert_int_eq(tp_addr_parse(addrs[i], &a), 0);
		n = tp_addr_encode(&a, hex, sizeof(hex));
		ck_assert_uint_eq(n, strlen(hex));
		ck_assert_uint_eq(n, a.ss.ss_family == AF_INET ? 16 : 40);
		ck_assert_int_eq(tp_addr_decode((struct slice){ hex, n }, &b),
		    0);
		ck_assert(tp_addr_eq(&a, &b));
		ck_assert_uint_eq(b.proto, a.proto);
		ck_assert_uint_eq(b.flags, 0);
		for (n = 0; hex[n] != '\0'; n++)
			up[n] = (char)toupper((unsigned char)hex[n]);
		ck_assert_int_eq(tp_addr_decode((struct slice){ up, n }, &b),
		    0);
		ck_assert(tp_addr_eq(&a, &b));
	}
	ck_assert_uint_eq(tp_addr_encode(&a, hex, 16), 0);
	ck_assert_str_eq(hex, "");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(tp_addr_decode(S(bad[i]), &b) == -1,
		    "\"%s\" taken", bad[i]);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("locredis");

	check_add(tc, round_trip, expiry_second, empty_and_folded,
	    decode_refuses, field_names, backoff_doubles_capped,
	    address_parse, path_token, path_token_cluster, addr_codec);
	return (check_run("locredis"));
}
