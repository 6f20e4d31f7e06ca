/* Unit tests: locredis.c (a binding in a Redis hash), redis.c helpers. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/time.h>

#include <check.h>
#include <event2/event.h>

#include "check_util.h"
#include "auth.h"
#include "cluster.h"
#include "buf.h"
#include "location.h"
#include "locredis.h"
#include "redis.h"
#include "resp_peer.h"
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

/*
 * A Redis for one node's location: an empty one, whose HGETALL replies
 * are held until the test lets them go (F.held), and whose pub/sub
 * connection the test publishes on (F.sub).
 */
static struct {
	struct resp_conn	*cmd, *sub;
	unsigned		 hgetall, scans;
} F;

static void
loc_redis(struct resp_conn *c, const redisReply *r, void *arg)
{
	static const char	info[] = "# Server\r\nrun_id:0123abcd\r\n";

	(void)arg;
	if (resp_arg_is(r, 0, "PING"))
		resp_sends(c, "+PONG\r\n");
	else if (resp_arg_is(r, 0, "SUBSCRIBE")) {
		F.sub = c;
		resp_sends(c, "*3\r\n$9\r\nsubscribe\r\n$10\r\n"
		    LOCREDIS_CHANNEL "\r\n:1\r\n");
	} else if (resp_arg_is(r, 0, "SCRIPT"))
		resp_sends(c, "-ERR not here\r\n");	/* EVAL then */
	else if (resp_arg_is(r, 0, "INFO"))
		resp_bulk(c, info, sizeof(info) - 1);
	else if (resp_arg_is(r, 0, "DBSIZE"))
		resp_sends(c, ":0\r\n");
	else if (resp_arg_is(r, 0, "SCAN")) {
		F.scans++;
		resp_sends(c, "*2\r\n$1\r\n0\r\n*0\r\n");
	} else if (resp_arg_is(r, 0, "HGETALL")) {
		F.cmd = c;
		F.hgetall++;		/* its reply: the test's */
	} else
		resp_sends(c, "-ERR unexpected\r\n");
}

/* A message on osprey:loc: "NODE AOR[ VERSION\nLEN:VALUE]". */
static void
publish(const char *node, const char *aor, unsigned ver, bool binding)
{
	struct locredis_row	r;
	struct buf		v, m;
	struct timeval		tv;

	buf_init(&m, 256);
	buf_addf(&m, "%s %s", node, aor);
	if (ver != 0) {
		gettimeofday(&tv, NULL);
		memset(&r, 0, sizeof(r));
		r.contact = S("sip:bob@192.0.2.9:5060");
		r.received = S("udp:192.0.2.9:5060");
		r.local = S("udp:127.0.0.2:5060");
		r.node = S(node);
		r.callid = S("c1@192.0.2.9");
		r.expires_ms = (int64_t)tv.tv_sec * 1000 + 600000;
		r.cseq = 2;
		r.q = 1000;
		buf_init(&v, 256);
		locredis_encode(&r, &v);
		buf_addf(&m, " %u\n", ver);
		if (binding)
			buf_addf(&m, "%zu:%.*s", v.len, (int)v.len, v.p);
		buf_cleanup(&v);
	}
	resp_sends(F.sub, "*3\r\n$7\r\nmessage\r\n$10\r\n"
	    LOCREDIS_CHANNEL "\r\n");
	resp_bulk(F.sub, m.p, m.len);
	buf_cleanup(&m);
}

static bool
loaded(void *arg)
{
	(void)arg;
	return (F.sub != NULL && F.scans > 0);
}

static bool
asked(void *arg)
{
	return (F.hgetall == *(unsigned *)arg);
}

static bool
bob_count(void *arg)
{
	return (location_count() == *(unsigned *)arg);
}

static bool
never(void *arg)
{
	(void)arg;
	return (false);
}

/*
 * A versionless message makes the node read bob's AOR; before the reply
 * (empty: Redis held nothing then), a message of a newer change, bob
 * registered, comes on the other connection.  The reply, older than what
 * the table holds now, must not wipe bob.  Then the same with a table
 * that does not move: the empty reply is taken.
 */
START_TEST(reply_overtaken_by_message)
{
	struct event_base	*base = event_base_new();
	struct resp_peer	*peer;
	struct redis_settings	 set;
	char			 addr[64], err[128];
	unsigned		 one = 1, two = 2, zero = 0;

	memset(&F, 0, sizeof(F));
	location_init(base);
	peer = resp_peer_start(base, loc_redis, NULL, addr, sizeof(addr));
	memset(&set, 0, sizeof(set));
	set.address = addr;
	set.timeout_ms = 3000;
	set.node_id = "N1";
	ck_assert_int_eq(locredis_start(base, &set, err, sizeof(err)), 0);
	ck_assert(resp_loop_until(base, loaded, NULL, 3000));

	publish("N2", "bob@example.test", 0, false);	/* read again */
	ck_assert(resp_loop_until(base, asked, &one, 3000));
	publish("N2", "bob@example.test", 7, true);	/* newer */
	ck_assert(resp_loop_until(base, bob_count, &one, 3000));
	resp_sends(F.cmd, "*0\r\n");			/* the old reply */
	(void)resp_loop_until(base, never, NULL, 200);
	ck_assert_uint_eq(location_count(), 1);

	/* Nothing newer came: an unversioned reply is what Redis holds. */
	publish("N2", "bob@example.test", 0, false);
	ck_assert(resp_loop_until(base, asked, &two, 3000));
	resp_sends(F.cmd, "*0\r\n");
	ck_assert(resp_loop_until(base, bob_count, &zero, 3000));

	locredis_stop();
	resp_peer_free(peer);
	location_shutdown();
	event_base_free(base);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("locredis");

	check_add(tc, round_trip, expiry_second, empty_and_folded,
	    decode_refuses, field_names, backoff_doubles_capped,
	    address_parse, path_token, path_token_cluster, addr_codec);
	tcase_set_timeout(tc, 30);
	check_add(tc, reply_overtaken_by_message);
	return (check_run("locredis"));
}
