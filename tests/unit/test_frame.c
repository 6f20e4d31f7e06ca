/* Unit tests: tp_frame.c, SIP framing on a stream transport. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "check_util.h"
#include "tp_frame.h"

#define MAXU	16

/* What one run of a stream gave: the units in order. */
struct unit {
	int		 rc;
	int		 status;
	size_t		 len, head_len, body_len;
	bool		 response;
	char		 bytes[2048];
	char		 err[128];
};

struct run {
	struct unit	 u[MAXU];
	size_t		 n;
	size_t		 left;		/* bytes still buffered */
	uint64_t	 examined;
};

static struct tp_frame	 fr;
static struct evbuffer	*in;

static void
setup(void)
{
	tp_frame_init(&fr, 4096);
	in = evbuffer_new();
	ck_assert_ptr_nonnull(in);
}

static void
teardown(void)
{
	tp_frame_cleanup(&fr);
	evbuffer_free(in);
}

/* Feed until the framer wants more or fails; record each unit. */
static void
drain(struct tp_frame *f, struct evbuffer *b, struct run *r)
{
	struct tp_frame_msg	 m;
	struct unit		*u;
	char			 err[128];
	int			 rc;

	while ((rc = tp_frame_feed(f, b, &m, err, sizeof(err))) !=
	    TP_FRAME_MORE) {
		ck_assert_uint_lt(r->n, MAXU);
		u = &r->u[r->n++];
		memset(u, 0, sizeof(*u));
		u->rc = rc;
		u->status = m.status;
		u->len = m.len;
		u->head_len = m.head_len;
		u->body_len = m.body_len;
		u->response = m.response;
		snprintf(u->err, sizeof(u->err), "%s", err);
		if (m.p != NULL) {
			ck_assert_uint_lt(m.len, sizeof(u->bytes));
			memcpy(u->bytes, m.p, m.len);
		}
		if (rc == TP_FRAME_ERROR)
			break;
	}
	r->left = evbuffer_get_length(b);
	r->examined = f->examined;
}

/* A stream through a new framer in the given chunks (0-terminated). */
static void
run_chunks(const char *s, size_t n, size_t max, const size_t *chunk,
    struct run *r)
{
	struct tp_frame	 f;
	struct evbuffer	*b = evbuffer_new();
	size_t		 off = 0, k, i = 0;

	memset(r, 0, sizeof(*r));
	tp_frame_init(&f, max);
	while (off < n) {
		k = chunk != NULL && chunk[i] != 0 ? chunk[i++] : n - off;
		if (k > n - off)
			k = n - off;
		evbuffer_add(b, s + off, k);
		off += k;
		drain(&f, b, r);
		if (r->n > 0 && r->u[r->n - 1].rc == TP_FRAME_ERROR)
			break;
	}
	tp_frame_cleanup(&f);
	evbuffer_free(b);
}

static void
run_whole(const char *s, size_t max, struct run *r)
{
	run_chunks(s, strlen(s), max, NULL, r);
}

static void
runs_equal(const struct run *a, const struct run *b, const char *how)
{
	size_t	i;

	ck_assert_msg(a->n == b->n, "%s: %zu units, want %zu", how, b->n,
	    a->n);
	for (i = 0; i < a->n; i++) {
		ck_assert_msg(a->u[i].rc == b->u[i].rc &&
		    a->u[i].status == b->u[i].status &&
		    a->u[i].len == b->u[i].len &&
		    memcmp(a->u[i].bytes, b->u[i].bytes, a->u[i].len) == 0 &&
		    strcmp(a->u[i].err, b->u[i].err) == 0,
		    "%s: unit %zu differs", how, i);
	}
	ck_assert_uint_eq(a->left, b->left);
}

#define INV(cl, body)							\
	"INVITE sip:bob@example.test SIP/2.0\r\n"			\
	"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK-1\r\n"		\
	"Call-ID: a@b\r\n" cl "\r\n" body
#define OPT	"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n"
#define RESP	"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n" \
	"\r\nv=0"

static void
assert_msg(const struct unit *u, const char *want, size_t body_len)
{
	ck_assert_int_eq(u->rc, TP_FRAME_MSG);
	ck_assert_uint_eq(u->len, strlen(want));
	ck_assert_msg(memcmp(u->bytes, want, u->len) == 0, "message is "
	    "\"%.*s\"", (int)u->len, u->bytes);
	ck_assert_uint_eq(u->body_len, body_len);
	ck_assert_uint_eq(u->head_len + u->body_len, u->len);
	ck_assert_msg(memcmp(u->bytes + u->head_len - 4, "\r\n\r\n", 4) == 0,
	    "head does not end in CRLFCRLF");
}

static void
assert_error(const struct run *r, int status, const char *reason)
{
	const struct unit	*u = &r->u[r->n - 1];

	ck_assert_uint_gt(r->n, 0);
	ck_assert_int_eq(u->rc, TP_FRAME_ERROR);
	ck_assert_int_eq(u->status, status);
	ck_assert_msg(strstr(u->err, reason) != NULL, "reason \"%s\", want "
	    "\"%s\"", u->err, reason);
}

START_TEST(one_message)
{
	struct tp_frame_msg	 m;
	char			 err[128];
	const char		*s = INV("Content-Length: 4\r\n", "v=0\n");

	evbuffer_add(in, s, strlen(s));
	ck_assert_int_eq(tp_frame_feed(&fr, in, &m, err, sizeof(err)),
	    TP_FRAME_MSG);
	ck_assert_uint_eq(m.len, strlen(s));
	ck_assert_uint_eq(m.body_len, 4);
	ck_assert_uint_eq(m.head_len, strlen(s) - 4);
	ck_assert(!m.response);
	ck_assert(memcmp(m.p, s, m.len) == 0);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	ck_assert_int_eq(tp_frame_feed(&fr, in, &m, err, sizeof(err)),
	    TP_FRAME_MORE);
}
END_TEST

START_TEST(response_framed)
{
	struct run	r;

	run_whole(RESP, 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_msg(&r.u[0], RESP, 3);
	ck_assert(r.u[0].response);
}
END_TEST

/* Compact form, any case, whitespace around the colon and the value. */
START_TEST(content_length_forms)
{
	static const char *const forms[] = {
		"l:3\r\n", "L : 3\r\n", "CONTENT-LENGTH   :\t 3 \t\r\n",
		"content-length: 003\r\n", "Content-Length:\r\n 3\r\n",
		"Content-Length\r\n :\r\n\t3\r\n",
		"Content-Length: 3\r\nl: 3\r\n",	/* the same twice */
		"Subject: x\r\n\tContent-Length: 9\r\nl: 3\r\n",
	};
	char		s[512];
	struct run	r;
	size_t		i;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(s, sizeof(s), INV("%s", "abc"), forms[i]);
		run_whole(s, 4096, &r);
		ck_assert_msg(r.n == 1 && r.u[0].rc == TP_FRAME_MSG,
		    "form %zu: %s", i, r.n > 0 ? r.u[0].err : "nothing");
		assert_msg(&r.u[0], s, 3);
	}
}
END_TEST

/* Content-Length counts only at the start of a header line. */
START_TEST(content_length_inside_value)
{
	struct run	r;
	const char	*s = INV("Subject: Content-Length: 5\r\n"
	    "X-Content-Length: 7\r\nl: 1\r\n", "a");

	run_whole(s, 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_msg(&r.u[0], s, 1);
	run_whole(INV("Subject: Content-Length: 5\r\nX-Content-Length: 7\r\n"
	    "Subject: a\r\n l: 0\r\n", ""), 4096, &r);
	assert_error(&r, 400, "Missing Content-Length");
}
END_TEST

START_TEST(missing_content_length)
{
	const char	*head = INV("", "");
	struct run	 r;

	run_whole(head, 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_error(&r, 400, "Missing Content-Length");
	/* The header section to answer from. */
	ck_assert_uint_eq(r.u[0].len, strlen(head));
	ck_assert(memcmp(r.u[0].bytes, head, r.u[0].len) == 0);
	/* A response has nobody to answer: closed without a word. */
	run_whole("SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\n\r\n", 4096, &r);
	assert_error(&r, 0, "Missing Content-Length");
	ck_assert_uint_eq(r.u[0].len, 0);
}
END_TEST

START_TEST(content_length_conflict)
{
	struct run	r;

	run_whole(INV("Content-Length: 3\r\nl: 4\r\n", "abcd"), 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_error(&r, 400, "Content-Length given twice");
	run_whole("SIP/2.0 200 OK\r\nl: 1\r\nl: 2\r\n\r\nab", 4096, &r);
	assert_error(&r, 0, "Content-Length given twice");
}
END_TEST

START_TEST(content_length_not_a_number)
{
	static const char *const bad[] = {
		"l: 4x\r\n", "l: \r\n", "l: 4 4\r\n", "l: -1\r\n", "l: +4\r\n",
		"l: 0x4\r\n", "l:\r\n \r\n", "l: 4\r\nl: four\r\n",
	};
	char		s[512];
	struct run	r;
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(s, sizeof(s), INV("%s", "abcd"), bad[i]);
		run_whole(s, 4096, &r);
		ck_assert_msg(r.n == 1, "value %zu", i);
		assert_error(&r, 400, "Content-Length is not a number");
	}
}
END_TEST

/* Too large by Content-Length: known before a byte of the body is in. */
START_TEST(body_too_large)
{
	const char	*head = INV("Content-Length: 4000\r\n", "");
	struct run	 r;
	char		 s[512];
	size_t		 cl;

	run_whole(head, 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_error(&r, 513, "message over 4096 bytes");
	ck_assert_uint_eq(r.u[0].len, strlen(head));
	run_whole(INV("Content-Length: 99999999999999999999999\r\n", ""), 4096,
	    &r);
	assert_error(&r, 513, "message over");
	/* Exactly max_message_size is fine; one more byte is not. */
	cl = 4096 - strlen(INV("Content-Length: \r\n", "")) - 4;
	snprintf(s, sizeof(s), INV("Content-Length: %zu\r\n", ""), cl);
	run_whole(s, 4096, &r);
	ck_assert_uint_eq(r.n, 0);	/* waiting for the body */
	ck_assert_uint_eq(strlen(s) + cl, 4096);
	snprintf(s, sizeof(s), INV("Content-Length: %zu\r\n", ""), cl + 1);
	run_whole(s, 4096, &r);
	assert_error(&r, 513, "message over");
}
END_TEST

/* A header section that never ends: cut off when the limit is reached. */
START_TEST(head_never_ends)
{
	struct run	 r;
	const char	*start = "INVITE sip:x SIP/2.0\r\nX: ";
	size_t		 i;

	memset(&r, 0, sizeof(r));
	evbuffer_add(in, start, strlen(start));
	drain(&fr, in, &r);
	for (i = strlen(start); i < 4095; i++) {
		evbuffer_add(in, "a", 1);
		drain(&fr, in, &r);
		ck_assert_uint_eq(r.n, 0);
	}
	evbuffer_add(in, "a", 1);
	drain(&fr, in, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_error(&r, 0, "header section over 4096 bytes");
	ck_assert_uint_eq(fr.examined, 4096);
	/* Failed is for good. */
	evbuffer_add(in, "\r\n\r\n", 4);
	drain(&fr, in, &r);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_int_eq(r.u[1].rc, TP_FRAME_ERROR);
}
END_TEST

/* A header section of exactly max bytes passes; one more does not. */
START_TEST(head_at_limit)
{
	char		s[200];
	struct run	r;
	size_t		n;

	n = strlen(OPT);
	memcpy(s, OPT, n + 1);
	run_whole(s, n, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_msg(&r.u[0], OPT, 0);
	run_whole(s, n - 1, &r);
	assert_error(&r, 0, "header section over");
}
END_TEST

/* The body is exactly Content-Length bytes; the next starts after it. */
START_TEST(pipelined)
{
	const char	*a = INV("Content-Length: 5\r\n", "INVIT");
	char		 s[2048];
	struct run	 r;

	snprintf(s, sizeof(s), "%s%s", a, OPT);
	run_whole(s, 4096, &r);
	ck_assert_uint_eq(r.n, 2);
	assert_msg(&r.u[0], a, 5);
	assert_msg(&r.u[1], OPT, 0);
	snprintf(s, sizeof(s), "%s%s%s", RESP, a, OPT);
	run_whole(s, 4096, &r);
	ck_assert_uint_eq(r.n, 3);
	assert_msg(&r.u[0], RESP, 3);
	assert_msg(&r.u[1], a, 5);
	assert_msg(&r.u[2], OPT, 0);
	ck_assert_uint_eq(r.left, 0);
	/* Half of a fourth stays buffered. */
	snprintf(s, sizeof(s), "%s%sOPTIONS sip:x SIP/2.0\r\nl: 0\r\n", a,
	    OPT);
	run_whole(s, 4096, &r);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_uint_eq(r.left, strlen("OPTIONS sip:x SIP/2.0\r\nl: 0\r\n"));
}
END_TEST

START_TEST(keepalive_and_crlf)
{
	struct run	r;
	char		s[2048];

	run_whole("\r\n\r\n", 4096, &r);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.u[0].rc, TP_FRAME_KEEPALIVE);
	ck_assert_uint_eq(r.left, 0);
	/* A lone CRLF may be half a ping: wait. */
	run_whole("\r\n", 4096, &r);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_eq(r.left, 2);
	/* CRLFs before a start line are skipped (RFC 3261 7.5). */
	snprintf(s, sizeof(s), "\r\n%s\r\n\r\n\r\n%s\r\n\r\n", OPT, OPT);
	run_whole(s, 4096, &r);
	ck_assert_uint_eq(r.n, 4);
	assert_msg(&r.u[0], OPT, 0);
	ck_assert_int_eq(r.u[1].rc, TP_FRAME_KEEPALIVE);
	assert_msg(&r.u[2], OPT, 0);
	ck_assert_int_eq(r.u[3].rc, TP_FRAME_KEEPALIVE);
	ck_assert_uint_eq(r.left, 0);
}
END_TEST

/* After our ping, a CRLF is its pong, at once. */
START_TEST(pong)
{
	struct run	r;

	memset(&r, 0, sizeof(r));
	tp_frame_ping_sent(&fr);
	evbuffer_add(in, "\r\n", 2);
	drain(&fr, in, &r);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.u[0].rc, TP_FRAME_PONG);
	ck_assert_uint_eq(r.left, 0);
	/* Only one: the next CRLF is not a pong. */
	evbuffer_add(in, "\r\n", 2);
	drain(&fr, in, &r);
	ck_assert_uint_eq(r.n, 1);
	evbuffer_add(in, OPT, strlen(OPT));
	drain(&fr, in, &r);
	ck_assert_uint_eq(r.n, 2);
	assert_msg(&r.u[1], OPT, 0);
}
END_TEST

START_TEST(bare_cr_lf)
{
	struct run	r;

	run_whole(INV("Via: x\nContent-Length: 0\r\n", ""), 4096, &r);
	assert_error(&r, 0, "bare LF");
	run_whole(INV("Via: x\rContent-Length: 0\r\n", ""), 4096, &r);
	assert_error(&r, 0, "bare CR");
	run_whole("OPTIONS sip:x SIP/2.0\nl: 0\r\n\r\n", 4096, &r);
	assert_error(&r, 0, "bare LF");
	run_whole("\r\n\rOPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n", 4096, &r);
	assert_error(&r, 0, "bare CR");
	run_whole("OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\r\n", 4096, &r);
	assert_error(&r, 0, "bare CR");
}
END_TEST

#define STREAM	"\r\n" RESP "\r\n\r\n" INV("Content-Length: 5\r\n", "v=0\r\n") \
	"\r\n" OPT "\r\n\r\n" INV("l:\r\n 2\r\n", "ab")

/* Split at every byte: the same units as fed whole. */
START_TEST(split_every_byte)
{
	struct run	whole, r;
	size_t		n = strlen(STREAM), k, ch[2] = { 0, 0 };

	run_whole(STREAM, 4096, &whole);
	ck_assert_uint_eq(whole.n, 6);
	ck_assert_uint_eq(whole.left, 0);
	for (k = 1; k < n; k++) {
		ch[0] = k;
		run_chunks(STREAM, n, 4096, ch, &r);
		runs_equal(&whole, &r, "split");
		ck_assert_uint_eq(r.examined, whole.examined);
	}
}
END_TEST

START_TEST(one_byte_and_random_chunks)
{
	static size_t	ch[sizeof(STREAM)];
	struct run	whole, r;
	size_t		n = strlen(STREAM), i, iter;
	uint64_t	x = 0x9e3779b97f4a7c15ULL;

	run_whole(STREAM, 4096, &whole);
	for (i = 0; i < n; i++)
		ch[i] = 1;
	run_chunks(STREAM, n, 4096, ch, &r);
	runs_equal(&whole, &r, "one byte at a time");
	for (iter = 0; iter < 500; iter++) {
		for (i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			ch[i] = 1 + x % 40;
		}
		run_chunks(STREAM, n, 4096, ch, &r);
		runs_equal(&whole, &r, "random chunks");
	}
}
END_TEST

/* 64 KB fed one byte at a time: each byte scanned once. */
START_TEST(scan_linear)
{
	struct tp_frame		 f;
	struct tp_frame_msg	 m;
	char			 err[128];
	const char		*start = "INVITE sip:x SIP/2.0\r\nX: ";
	size_t			 i, n = 65536;

	tp_frame_init(&f, 2 * n);
	evbuffer_add(in, start, strlen(start));
	for (i = strlen(start); i < n; i++) {
		/* A folded line now and then: the fold is scanned once too. */
		evbuffer_add(in, i % 80 == 0 ? "\r" : i % 80 == 1 ? "\n" :
		    i % 80 == 2 ? " " : "a", 1);
		ck_assert_int_eq(tp_frame_feed(&f, in, &m, err, sizeof(err)),
		    TP_FRAME_MORE);
	}
	ck_assert_uint_eq(f.scanned, n);
	ck_assert_uint_eq(f.examined, n);
	evbuffer_add(in, "\r\nl: 0\r\n\r\n", 10);
	ck_assert_int_eq(tp_frame_feed(&f, in, &m, err, sizeof(err)),
	    TP_FRAME_MSG);
	ck_assert_uint_eq(m.len, n + 10);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	ck_assert_uint_eq(f.examined, n + 10);
	tp_frame_cleanup(&f);
}
END_TEST

/* Two connections, two framers: one's state is not the other's. */
START_TEST(connections_apart)
{
	struct tp_frame	 g;
	struct evbuffer	*in2 = evbuffer_new();
	struct run	 r, r2;
	const char	*a = INV("Content-Length: 3\r\n", "abc");

	memset(&r, 0, sizeof(r));
	memset(&r2, 0, sizeof(r2));
	tp_frame_init(&g, 4096);
	evbuffer_add(in, a, 30);
	drain(&fr, in, &r);
	evbuffer_add(in2, "OPTIONS sip:x SIP/2.0\r\n\r\n", 25);
	drain(&g, in2, &r2);
	assert_error(&r2, 400, "Missing Content-Length");
	evbuffer_add(in, a + 30, strlen(a) - 30);
	drain(&fr, in, &r);
	ck_assert_uint_eq(r.n, 1);
	assert_msg(&r.u[0], a, 3);
	tp_frame_cleanup(&g);
	evbuffer_free(in2);
}
END_TEST

/*
 * tp_frame_next() on the caller's bytes: each message where it lies, the
 * bytes to drop, and a partial one shown again from its first byte.
 */
START_TEST(next_in_place)
{
	struct tp_frame_msg	 m;
	const char		*a = INV("Content-Length: 3\r\n", "abc");
	char			 buf[1024], err[128];
	size_t			 la = strlen(a), n = 0, off, used;

	memcpy(buf, "\r\n", 2);
	n = 2;
	memcpy(buf + n, a, la);
	n += la;
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	memcpy(buf + n, a, 40);
	n += 40;
	ck_assert_int_eq(tp_frame_next(&fr, buf, n, &used, &m, err,
	    sizeof(err)), TP_FRAME_MSG);
	ck_assert_ptr_eq(m.p, buf + 2);		/* not a copy */
	ck_assert_uint_eq(m.len, la);
	ck_assert_uint_eq(m.body_len, 3);
	ck_assert_uint_eq(used, 2 + la);
	off = used;
	ck_assert_int_eq(tp_frame_next(&fr, buf + off, n - off, &used, &m,
	    err, sizeof(err)), TP_FRAME_KEEPALIVE);
	ck_assert_uint_eq(used, 4);
	off += used;
	ck_assert_int_eq(tp_frame_next(&fr, buf + off, n - off, &used, &m,
	    err, sizeof(err)), TP_FRAME_MORE);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(fr.scanned, 40);
	memcpy(buf + n, a + 40, la - 40);
	n += la - 40;
	ck_assert_int_eq(tp_frame_next(&fr, buf + off, n - off, &used, &m,
	    err, sizeof(err)), TP_FRAME_MSG);
	ck_assert_ptr_eq(m.p, buf + off);
	ck_assert_uint_eq(m.len, la);
	ck_assert_uint_eq(used, la);
	ck_assert_mem_eq(m.p, a, la);
	/* Every byte of both header sections scanned once. */
	ck_assert_uint_eq(fr.examined, 2 * (la - 3));
}
END_TEST

int
main(void)
{
	TCase	*tc = check_fixed("frame", setup, teardown);

	tcase_set_timeout(tc, 60);
	check_add(tc, one_message, response_framed, content_length_forms,
	    content_length_inside_value, missing_content_length,
	    content_length_conflict, content_length_not_a_number,
	    body_too_large, head_never_ends, head_at_limit, pipelined,
	    keepalive_and_crlf, pong, bare_cr_lf, split_every_byte,
	    one_byte_and_random_chunks, scan_linear, connections_apart,
	    next_in_place);
	return (check_run("frame"));
}
