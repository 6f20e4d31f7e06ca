/* Unit tests: cluster.c (the cluster secret and the keys derived from it). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/event.h>
#include <hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "check_util.h"
#include "cluster.h"
#include "redis.h"
#include "resp_peer.h"

#define HEX1	"000102030405060708090a0b0c0d0e0f" \
		"101112131415161718191a1b1c1d1e1f"
#define HEX2	"5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e" \
		"5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

/* What a purpose's key must be: HMAC-SHA256(secret, label). */
static void
expected(const char *hex, const char *label, uint8_t out[CLUSTER_KEY_LEN])
{
	uint8_t		s[32];
	unsigned	i, len;

	for (i = 0; i < 32; i++) {
		unsigned	v;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		s[i] = (uint8_t)v;
	}
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), s, sizeof(s),
	    (const unsigned char *)label, strlen(label), out, &len));
	ck_assert_uint_eq(len, CLUSTER_KEY_LEN);
}

/* Nothing before a secret; refused unless 64 hex digits. */
START_TEST(adopt_refuses)
{
	uint8_t		k[CLUSTER_KEY_LEN];
	uint32_t	gen = 7, g0;
	char		bad[65];

	cluster_forget();
	g0 = cluster_gen();
	ck_assert(!cluster_key(CLUSTER_NONCE, k, &gen));
	ck_assert_uint_eq(gen, 0);
	ck_assert_int_eq(cluster_adopt(HEX1, 63), -1);
	ck_assert_int_eq(cluster_adopt(HEX1 "0", 65), -1);
	memcpy(bad, HEX1, sizeof(bad));
	bad[40] = 'g';
	ck_assert_int_eq(cluster_adopt(bad, 64), -1);
	ck_assert_int_eq(cluster_adopt("", 0), -1);
	ck_assert(!cluster_key(CLUSTER_PATH_TOKEN, k, NULL));
	ck_assert(!cluster_key(CLUSTER_NPURPOSES, k, NULL));
	ck_assert_uint_eq(cluster_gen(), g0);
}
END_TEST

/*
 * Each purpose's key is HMAC-SHA256(secret, its label): the labels are
 * "nonce", "dialog stamp" and "path token", and no two keys are alike.
 */
START_TEST(keys_derived)
{
	static const char *const labels[CLUSTER_NPURPOSES] = {
		"nonce", "dialog stamp", "path token" };
	uint8_t		k[CLUSTER_NPURPOSES][CLUSTER_KEY_LEN];
	uint8_t		want[CLUSTER_KEY_LEN];
	uint32_t	gen;
	unsigned	i, j;

	cluster_forget();
	ck_assert_int_eq(cluster_adopt(HEX1, 64), 1);
	for (i = 0; i < CLUSTER_NPURPOSES; i++) {
		ck_assert_str_eq(cluster_label(i), labels[i]);
		ck_assert(cluster_key(i, k[i], &gen));
		ck_assert_uint_eq(gen, cluster_gen());
		ck_assert_uint_ne(gen, 0);
		expected(HEX1, labels[i], want);
		ck_assert_mem_eq(k[i], want, CLUSTER_KEY_LEN);
		for (j = 0; j < i; j++)
			ck_assert(memcmp(k[i], k[j], CLUSTER_KEY_LEN) != 0);
	}
}
END_TEST

/*
 * The generation moves only when the secret changes (read again after a
 * reconnection: the same, in either case), and when it is forgotten.
 */
START_TEST(generation)
{
	uint8_t		k1[CLUSTER_KEY_LEN], k2[CLUSTER_KEY_LEN];
	uint32_t	g1, g2;
	char		upper[65];
	unsigned	i;

	cluster_forget();
	ck_assert_int_eq(cluster_adopt(HEX1, 64), 1);
	ck_assert(cluster_key(CLUSTER_DIALOG_STAMP, k1, &g1));
	for (i = 0; i < 64; i++)
		upper[i] = HEX1[i] >= 'a' ? HEX1[i] - 'a' + 'A' : HEX1[i];
	upper[64] = '\0';
	ck_assert_int_eq(cluster_adopt(upper, 64), 0);
	ck_assert_int_eq(cluster_adopt(HEX1, 64), 0);
	ck_assert_uint_eq(cluster_gen(), g1);
	/* A refused value keeps the secret known. */
	ck_assert_int_eq(cluster_adopt("not hex", 7), -1);
	ck_assert(cluster_key(CLUSTER_DIALOG_STAMP, k2, &g2));
	ck_assert_uint_eq(g2, g1);
	ck_assert_mem_eq(k1, k2, CLUSTER_KEY_LEN);
	/* Another secret: new keys, the next generation. */
	ck_assert_int_eq(cluster_adopt(HEX2, 64), 1);
	ck_assert(cluster_key(CLUSTER_DIALOG_STAMP, k2, &g2));
	ck_assert_uint_eq(g2, g1 + 1);
	ck_assert(memcmp(k1, k2, CLUSTER_KEY_LEN) != 0);
	cluster_forget();
	ck_assert(!cluster_key(CLUSTER_DIALOG_STAMP, k2, &g2));
	ck_assert_uint_eq(cluster_gen(), g1 + 2);
}
END_TEST

/* util's hex helpers, which the secret is read and written with. */
START_TEST(hex_helpers)
{
	const uint8_t	b[] = { 0x00, 0x5e, 0xa0, 0xff };
	char		out[2 * sizeof(b) + 1];
	const char	*d = "09afAF";
	int		want[] = { 0, 9, 10, 15, 10, 15 };
	unsigned	i;

	memset(out, 'x', sizeof(out));
	fmt_hex(out, b, sizeof(b));
	ck_assert_str_eq(out, "005ea0ff");
	fmt_hex(out, b, 0);
	ck_assert_str_eq(out, "");
	for (i = 0; d[i] != '\0'; i++)
		ck_assert_int_eq(hex_digit(d[i]), want[i]);
	ck_assert_int_eq(hex_digit('g'), -1);
	ck_assert_int_eq(hex_digit('G'), -1);
	ck_assert_int_eq(hex_digit('/'), -1);
	ck_assert_int_eq(hex_digit(':'), -1);
	ck_assert_int_eq(hex_digit('\0'), -1);
}
END_TEST

/*
 * A Redis before 7.0, as far as the cluster secret goes: SET with both NX
 * and GET is a syntax error (as 6.2 answers it), SET NX and GET work.
 */
static struct {
	char		 val[65];	/* "" none */
	unsigned	 nxget, setnx, get;
} F;

static void
old_redis(struct resp_conn *c, const redisReply *r, void *arg)
{
	(void)arg;
	if (resp_arg_is(r, 0, "PING"))
		resp_sends(c, "+PONG\r\n");
	else if (resp_arg_is(r, 0, "SET") && r->elements == 5) {
		F.nxget++;
		resp_sends(c, "-ERR syntax error\r\n");
	} else if (resp_arg_is(r, 0, "SET") && r->elements == 4 &&
	    resp_arg_is(r, 3, "NX")) {
		F.setnx++;
		if (F.val[0] != '\0')
			resp_sends(c, "$-1\r\n");
		else {
			ck_assert_uint_eq(r->element[2]->len, 64);
			memcpy(F.val, r->element[2]->str, 64);
			F.val[64] = '\0';
			resp_sends(c, "+OK\r\n");
		}
	} else if (resp_arg_is(r, 0, "GET")) {
		F.get++;
		if (F.val[0] == '\0')
			resp_sends(c, "$-1\r\n");
		else
			resp_bulk(c, F.val, 64);
	} else
		resp_sends(c, "-ERR unknown command\r\n");
}

static bool
have_secret(void *arg)
{
	return (cluster_key(CLUSTER_NONCE, arg, NULL));
}

/* The secret read from the old Redis (holding held, "" none). */
static void
read_from_old_redis(const char *held, uint8_t key[CLUSTER_KEY_LEN])
{
	struct event_base	*base = event_base_new();
	struct resp_peer	*peer;
	struct redis_settings	 set;
	char			 addr[64], err[128];

	memset(&F, 0, sizeof(F));
	snprintf(F.val, sizeof(F.val), "%s", held);
	peer = resp_peer_start(base, old_redis, NULL, addr, sizeof(addr));
	memset(&set, 0, sizeof(set));
	set.address = addr;
	set.timeout_ms = 2000;
	cluster_forget();
	ck_assert_int_eq(cluster_start(base, &set, err, sizeof(err)), 0);
	ck_assert_msg(resp_loop_until(base, have_secret, key, 3000),
	    "no secret read");
	cluster_stop();
	resp_peer_free(peer);
	event_base_free(base);
}

/*
 * Redis before 7.0 refuses SET NX GET (a syntax error): SET NX, then GET,
 * on the same connection.  An empty one takes ours; one that holds a
 * secret gives it.
 */
START_TEST(split_before_7)
{
	uint8_t	k[CLUSTER_KEY_LEN], want[CLUSTER_KEY_LEN];

	read_from_old_redis("", k);
	ck_assert_uint_eq(F.nxget, 1);
	ck_assert_uint_eq(F.setnx, 1);
	ck_assert_uint_eq(F.get, 1);
	ck_assert_uint_eq(strlen(F.val), 64);
	expected(F.val, "nonce", want);
	ck_assert_mem_eq(k, want, CLUSTER_KEY_LEN);

	read_from_old_redis(HEX2, k);
	ck_assert_uint_eq(F.nxget, 1);
	ck_assert_uint_eq(F.setnx, 1);
	ck_assert_str_eq(F.val, HEX2);
	expected(HEX2, "nonce", want);
	ck_assert_mem_eq(k, want, CLUSTER_KEY_LEN);
	cluster_forget();
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("cluster");

	check_add(tc, adopt_refuses, keys_derived, generation, hex_helpers);
	tcase_set_timeout(tc, 20);
	check_add(tc, split_before_7);
	return (check_run("cluster"));
}
