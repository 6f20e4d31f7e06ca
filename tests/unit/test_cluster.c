/* Unit tests: cluster.c (the cluster secret and the keys derived from it). */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "check_util.h"
#include "cluster.h"
#include "log.h"
#include "redis.h"
#include "timer.h"

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
 * and GET is a syntax error (as 6.2 answers it), SET NX and GET work.  One
 * connection at a time, on loopback.
 */
static struct {
	struct redisReader	*rd;
	char			 val[65];	/* "" none */
	unsigned		 nxget, setnx, get;
} F;

static bool
arg_is(const redisReply *r, size_t i, const char *s)
{
	return (i < r->elements && r->element[i]->len == strlen(s) &&
	    strncasecmp(r->element[i]->str, s, r->element[i]->len) == 0);
}

static void
fake_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 n;
	void		*rep;
	redisReply	*r;
	char		 out[128];

	(void)arg;
	while ((n = evbuffer_get_length(in)) > 0) {
		ck_assert_int_eq(redisReaderFeed(F.rd,
		    (const char *)evbuffer_pullup(in, -1), n), REDIS_OK);
		evbuffer_drain(in, n);
	}
	while (redisReaderGetReply(F.rd, &rep) == REDIS_OK && rep != NULL) {
		r = rep;
		ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
		if (arg_is(r, 0, "PING"))
			snprintf(out, sizeof(out), "+PONG\r\n");
		else if (arg_is(r, 0, "SET") && r->elements == 5) {
			F.nxget++;
			snprintf(out, sizeof(out), "-ERR syntax error\r\n");
		} else if (arg_is(r, 0, "SET") && r->elements == 4 &&
		    arg_is(r, 3, "NX")) {
			F.setnx++;
			if (F.val[0] != '\0')
				snprintf(out, sizeof(out), "$-1\r\n");
			else {
				ck_assert_uint_eq(r->element[2]->len, 64);
				memcpy(F.val, r->element[2]->str, 64);
				F.val[64] = '\0';
				snprintf(out, sizeof(out), "+OK\r\n");
			}
		} else if (arg_is(r, 0, "GET")) {
			F.get++;
			if (F.val[0] == '\0')
				snprintf(out, sizeof(out), "$-1\r\n");
			else
				snprintf(out, sizeof(out), "$64\r\n%s\r\n",
				    F.val);
		} else
			snprintf(out, sizeof(out), "-ERR unknown command\r\n");
		bufferevent_write(bev, out, strlen(out));
		freeReplyObject(r);
	}
}

static void
fake_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void
fake_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent	*bev;

	(void)sa;
	(void)salen;
	(void)arg;
	bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, fake_read, NULL, fake_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* The secret read from the fake Redis (holding held, "" none). */
static void
read_from_old_redis(const char *held, uint8_t key[CLUSTER_KEY_LEN])
{
	struct event_base	*base = event_base_new();
	struct evconnlistener	*l;
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	struct redis_settings	 set;
	char			 addr[64], err[128];
	uint64_t		 end;

	memset(&F, 0, sizeof(F));
	F.rd = redisReaderCreate();
	snprintf(F.val, sizeof(F.val), "%s", held);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(base, fake_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(getsockname(evconnlistener_get_fd(l),
	    (struct sockaddr *)&sin, &slen), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	memset(&set, 0, sizeof(set));
	set.address = addr;
	set.timeout_ms = 2000;
	cluster_forget();
	ck_assert_int_eq(cluster_start(base, &set, err, sizeof(err)), 0);
	end = timer_now_ms() + 3000;
	while (!cluster_key(CLUSTER_NONCE, key, NULL) &&
	    timer_now_ms() < end) {
		struct timeval	tv = { 0, 50000 };

		event_base_loopexit(base, &tv);
		event_base_loop(base, 0);
	}
	ck_assert_msg(cluster_key(CLUSTER_NONCE, key, NULL),
	    "no secret read");
	cluster_stop();
	evconnlistener_free(l);
	event_base_free(base);
	redisReaderFree(F.rd);
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
