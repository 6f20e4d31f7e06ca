/* Unit tests: tp_ws.c, SIP over WebSocket (RFC 6455, RFC 7118). */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "check_util.h"
#include "tp_ws.h"

#define MAXU	32

/* RFC 6455 1.3 and 4.2.2: the example key and its accept value. */
#define KEY	"dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT	"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define REQ_HEAD							\
	"GET /sip HTTP/1.1\r\n"						\
	"Host: proxy.example.test\r\n"					\
	"Upgrade: websocket\r\n"					\
	"Connection: Upgrade\r\n"
#define REQ_TAIL							\
	"Sec-WebSocket-Key: " KEY "\r\n"				\
	"Origin: https://www.example.test\r\n"				\
	"Sec-WebSocket-Protocol: sip\r\n"				\
	"Sec-WebSocket-Version: 13\r\n"					\
	"\r\n"
#define REQ	REQ_HEAD REQ_TAIL

#define RESP_101							\
	"HTTP/1.1 101 Switching Protocols\r\n"				\
	"Upgrade: websocket\r\n"					\
	"Connection: Upgrade\r\n"					\
	"Sec-WebSocket-Accept: " ACCEPT "\r\n"				\
	"Sec-WebSocket-Protocol: sip\r\n"				\
	"\r\n"

#define OPT	"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n"

static const uint8_t	 maskkey[4] = { 0x37, 0xfa, 0x21, 0x3d };

static struct tp_ws_settings	 set;
static struct tp_ws		 ws;
static struct evbuffer		*in, *out;

static void
setup(void)
{
	memset(&set, 0, sizeof(set));
	set.max_message_size = 4096;
	set.max_handshake = 8192;
	tp_ws_init(&ws, &set);
	in = evbuffer_new();
	out = evbuffer_new();
	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
}

static void
teardown(void)
{
	tp_ws_cleanup(&ws);
	evbuffer_free(in);
	evbuffer_free(out);
}

/*
 * A client frame as RFC 6455 5.2 draws it, built here by hand: the length
 * in its shortest form unless ext says 126 or 127, masked with maskkey
 * unless mask is false.
 */
static size_t
frame_ext(uint8_t *b, bool fin, uint8_t rsv, uint8_t op, bool mask,
    const void *p, size_t len, int ext)
{
	size_t	n = 0, i;

	b[n++] = (fin ? 0x80 : 0) | (rsv << 4) | op;
	if (ext == 0)
		ext = len < 126 ? 0 : len < 65536 ? 126 : 127;
	if (ext == 0)
		b[n++] = (mask ? 0x80 : 0) | len;
	else if (ext == 126) {
		b[n++] = (mask ? 0x80 : 0) | 126;
		b[n++] = len >> 8;
		b[n++] = len & 0xff;
	} else {
		b[n++] = (mask ? 0x80 : 0) | 127;
		for (i = 0; i < 8; i++)
			b[n++] = (uint64_t)len >> (56 - 8 * i);
	}
	if (mask) {
		memcpy(b + n, maskkey, 4);
		n += 4;
	}
	for (i = 0; i < len; i++)
		b[n + i] = ((const uint8_t *)p)[i] ^ (mask ? maskkey[i % 4] : 0);
	return (n + len);
}

static size_t
frame(uint8_t *b, bool fin, uint8_t op, const void *p, size_t len)
{
	return (frame_ext(b, fin, 0, op, true, p, len, 0));
}

/* Append one masked frame to an evbuffer. */
static void
add_frame(struct evbuffer *b, bool fin, uint8_t op, const void *p,
    size_t len)
{
	uint8_t	*f = malloc(len + 14);

	ck_assert_ptr_nonnull(f);
	evbuffer_add(b, f, frame(f, fin, op, p, len));
	free(f);
}

static void
add_str(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, s, strlen(s));
}

/* A frame of ours, read back from out by a reader of our own. */
struct sframe {
	bool	 fin;
	uint8_t	 rsv;
	uint8_t	 op;
	bool	 masked;
	size_t	 len;
	uint8_t	 data[256];
};

/* Take every frame from out; returns how many. */
static size_t
out_frames(struct evbuffer *b, struct sframe *f, size_t max)
{
	uint8_t	*p;
	size_t	 n = 0, off = 0, len = evbuffer_get_length(b), hl, i;

	p = evbuffer_pullup(b, -1);
	while (off < len) {
		ck_assert_uint_lt(n, max);
		ck_assert_uint_ge(len - off, 2);
		f[n].fin = p[off] >> 7;
		f[n].rsv = (p[off] >> 4) & 7;
		f[n].op = p[off] & 0xf;
		f[n].masked = p[off + 1] >> 7;
		f[n].len = p[off + 1] & 0x7f;
		hl = 2;
		if (f[n].len == 126) {
			f[n].len = p[off + 2] << 8 | p[off + 3];
			hl = 4;
		} else if (f[n].len == 127) {
			f[n].len = 0;
			for (i = 0; i < 8; i++)
				f[n].len = f[n].len << 8 | p[off + 2 + i];
			hl = 10;
		}
		ck_assert_uint_ge(len - off, hl + f[n].len);
		if (f[n].len <= sizeof(f[n].data))
			memcpy(f[n].data, p + off + hl, f[n].len);
		off += hl + f[n].len;
		n++;
	}
	evbuffer_drain(b, len);
	return (n);
}

/* out holds exactly one close frame with this code. */
static void
assert_close(struct evbuffer *b, uint16_t code)
{
	struct sframe	f[4];

	ck_assert_uint_eq(out_frames(b, f, 4), 1);
	ck_assert_uint_eq(f[0].op, 0x8);
	ck_assert(f[0].fin && !f[0].masked && f[0].rsv == 0);
	if (code == 0) {
		ck_assert_uint_eq(f[0].len, 0);
		return;
	}
	ck_assert_uint_ge(f[0].len, 2);
	ck_assert_uint_eq(f[0].data[0] << 8 | f[0].data[1], code);
}

static void
open_ws(void)
{
	char	err[128];

	add_str(in, REQ);
	ck_assert_int_eq(tp_ws_handshake(&ws, in, out, err, sizeof(err)),
	    TP_WS_DONE);
	evbuffer_drain(out, evbuffer_get_length(out));
}

/* What one stream gave: the units in order, and every byte written. */
struct unit {
	int		 rc;
	size_t		 len;
	bool		 binary;
	char		 bytes[8192];
	char		 err[128];
};

struct run {
	struct unit	 u[MAXU];
	size_t		 n;
	char		 out[16384];
	size_t		 out_len;
};

/* Feed until the module wants more, closes or fails; record each unit. */
static bool
drain(struct tp_ws *w, struct evbuffer *b, struct evbuffer *o,
    struct run *r)
{
	struct tp_ws_msg	 m;
	struct unit		*u;
	char			 err[128];
	int			 rc;

	for (;;) {
		if (w->phase == TP_WS_PHASE_HANDSHAKE)
			rc = tp_ws_handshake(w, b, o, err, sizeof(err));
		else
			rc = tp_ws_feed(w, b, o, &m, err, sizeof(err));
		if (rc == TP_WS_MORE)
			return (true);
		ck_assert_uint_lt(r->n, MAXU);
		u = &r->u[r->n++];
		memset(u, 0, sizeof(*u));
		u->rc = rc;
		snprintf(u->err, sizeof(u->err), "%s", err);
		if (rc == TP_WS_MSG) {
			ck_assert_uint_lt(m.len, sizeof(u->bytes));
			memcpy(u->bytes, m.p, m.len);
			u->len = m.len;
			u->binary = m.binary;
		}
		if (rc == TP_WS_ERROR || rc == TP_WS_CLOSED)
			return (false);
	}
}

/* A stream through a new connection in the given chunks (0 ends). */
static void
run_chunks(const uint8_t *s, size_t n, const size_t *chunk, struct run *r)
{
	struct tp_ws	 w;
	struct evbuffer	*b = evbuffer_new(), *o = evbuffer_new();
	size_t		 off = 0, k, i = 0;

	memset(r, 0, sizeof(*r));
	tp_ws_init(&w, &set);
	while (off < n) {
		k = chunk != NULL && chunk[i] != 0 ? chunk[i++] : n - off;
		if (k > n - off)
			k = n - off;
		evbuffer_add(b, s + off, k);
		off += k;
		if (!drain(&w, b, o, r))
			break;
	}
	r->out_len = evbuffer_get_length(o);
	ck_assert_uint_lt(r->out_len, sizeof(r->out));
	evbuffer_remove(o, r->out, r->out_len);
	tp_ws_cleanup(&w);
	evbuffer_free(b);
	evbuffer_free(o);
}

static void
runs_equal(const struct run *a, const struct run *b, const char *how)
{
	size_t	i;

	ck_assert_msg(a->n == b->n, "%s: %zu units, want %zu", how, b->n,
	    a->n);
	for (i = 0; i < a->n; i++)
		ck_assert_msg(a->u[i].rc == b->u[i].rc &&
		    a->u[i].len == b->u[i].len &&
		    a->u[i].binary == b->u[i].binary &&
		    memcmp(a->u[i].bytes, b->u[i].bytes, a->u[i].len) == 0 &&
		    strcmp(a->u[i].err, b->u[i].err) == 0,
		    "%s: unit %zu differs", how, i);
	ck_assert_msg(a->out_len == b->out_len &&
	    memcmp(a->out, b->out, a->out_len) == 0, "%s: out differs", how);
}

START_TEST(accept_key_rfc6455)
{
	char	acc[29];

	tp_ws_accept_key(KEY, strlen(KEY), acc);
	ck_assert_str_eq(acc, ACCEPT);
}
END_TEST

START_TEST(handshake_ok)
{
	char	 err[128];
	size_t	 n;
	char	*p;

	add_str(in, REQ);
	ck_assert_int_eq(tp_ws_handshake(&ws, in, out, err, sizeof(err)),
	    TP_WS_DONE);
	ck_assert_int_eq(ws.status, 101);
	ck_assert_int_eq(ws.phase, TP_WS_PHASE_OPEN);
	n = evbuffer_get_length(out);
	p = (char *)evbuffer_pullup(out, -1);
	ck_assert_msg(n == strlen(RESP_101) && memcmp(p, RESP_101, n) == 0,
	    "101 is \"%.*s\"", (int)n, p);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
}
END_TEST

/* What the request may look like and still be taken. */
START_TEST(handshake_variants)
{
	static const char *const ok[] = {
		"GET / HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\n"
		"connection: keep-alive, Upgrade\r\nsec-websocket-key: " KEY
		"\r\nsec-websocket-version: 13\r\n"
		"sec-websocket-protocol: xmpp, sip\r\n\r\n",
		"GET ws://h/ HTTP/1.1\r\nHost:h\r\nUpgrade:\twebsocket \r\n"
		"Connection: upgrade\r\nSec-WebSocket-Key:  " KEY " \r\n"
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a\r\n"
		"Sec-WebSocket-Protocol: sip\r\nContent-Length: 0\r\n\r\n",
		"GET /x?y=1 HTTP/1.2\r\nHost: h\r\nUpgrade: foo, websocket\r\n"
		"Connection: Upgrade\r\nConnection: close\r\n"
		"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
		"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
	};
	struct tp_ws	 w;
	char		 err[128];
	size_t		 i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		tp_ws_init(&w, &set);
		add_str(in, ok[i]);
		ck_assert_msg(tp_ws_handshake(&w, in, out, err, sizeof(err)) ==
		    TP_WS_DONE, "request %zu: %s", i, err);
		/* No extension is answered: none is supported. */
		ck_assert_int_eq(evbuffer_search(out, "Extensions", 10,
		    NULL).pos, -1);
		evbuffer_drain(out, evbuffer_get_length(out));
		tp_ws_cleanup(&w);
	}
}
END_TEST

struct refusal {
	const char	*req;
	int		 status;
	const char	*reason;
};

#define H_HOST	"Host: h\r\n"
#define H_UPG	"Upgrade: websocket\r\n"
#define H_CONN	"Connection: Upgrade\r\n"
#define H_KEY	"Sec-WebSocket-Key: " KEY "\r\n"
#define H_VER	"Sec-WebSocket-Version: 13\r\n"
#define H_PROTO	"Sec-WebSocket-Protocol: sip\r\n"
#define GET	"GET / HTTP/1.1\r\n"
#define ALL_BUT_HOST	H_UPG H_CONN H_KEY H_VER H_PROTO

static const struct refusal	refusals[] = {
	{ "POST / HTTP/1.1\r\n" H_HOST ALL_BUT_HOST "\r\n", 405,
	    "Method Not Allowed" },
	{ "get / HTTP/1.1\r\n" H_HOST ALL_BUT_HOST "\r\n", 405,
	    "Method Not Allowed" },
	{ "GET / HTTP/1.0\r\n" H_HOST ALL_BUT_HOST "\r\n", 505,
	    "HTTP Version Not Supported" },
	{ "GET / HTTP/2.0\r\n" H_HOST ALL_BUT_HOST "\r\n", 505,
	    "HTTP Version Not Supported" },
	{ "GET / HTTP/1.1x\r\n" H_HOST ALL_BUT_HOST "\r\n", 400,
	    "Bad Request Line" },
	{ "GET /\r\n" H_HOST ALL_BUT_HOST "\r\n", 400, "Bad Request Line" },
	{ "GET  / HTTP/1.1\r\n" H_HOST ALL_BUT_HOST "\r\n", 400,
	    "Bad Request Line" },
	{ "GET * HTTP/1.1\r\n" H_HOST ALL_BUT_HOST "\r\n", 400,
	    "Bad Request-Target" },
	{ "\r\n" GET H_HOST ALL_BUT_HOST "\r\n", 400, "Bad Request Line" },
	{ GET ALL_BUT_HOST "\r\n", 400, "Missing Host" },
	{ GET "Host:\r\n" ALL_BUT_HOST "\r\n", 400, "Missing Host" },
	{ GET H_HOST H_HOST ALL_BUT_HOST "\r\n", 400, "Host Given Twice" },
	{ GET H_HOST H_CONN H_KEY H_VER H_PROTO "\r\n", 400,
	    "Upgrade Is Not websocket" },
	{ GET H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VER H_PROTO "\r\n",
	    400, "Upgrade Is Not websocket" },
	{ GET H_HOST H_UPG "Connection: keep-alive\r\n" H_KEY H_VER H_PROTO
	    "\r\n", 400, "Connection Lacks Upgrade" },
	{ GET H_HOST H_UPG H_CONN H_KEY H_PROTO "\r\n", 426,
	    "Sec-WebSocket-Version Must Be 13" },
	{ GET H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n"
	    H_PROTO "\r\n", 426, "Sec-WebSocket-Version Must Be 13" },
	{ GET H_HOST H_UPG H_CONN H_KEY H_VER H_VER H_PROTO "\r\n", 426,
	    "Sec-WebSocket-Version Must Be 13" },
	{ GET H_HOST H_UPG H_CONN H_VER H_PROTO "\r\n", 400,
	    "Missing Sec-WebSocket-Key" },
	{ GET H_HOST H_UPG H_CONN H_KEY H_KEY H_VER H_PROTO "\r\n", 400,
	    "Bad Sec-WebSocket-Key" },
	/* 15 bytes; 17 bytes; not base64; bits below the last 2 set. */
	{ GET H_HOST H_UPG H_CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n"
	    H_VER H_PROTO "\r\n", 400, "Bad Sec-WebSocket-Key" },
	{ GET H_HOST H_UPG H_CONN
	    "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" H_VER H_PROTO
	    "\r\n", 400, "Bad Sec-WebSocket-Key" },
	{ GET H_HOST H_UPG H_CONN
	    "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA.A==\r\n" H_VER H_PROTO
	    "\r\n", 400, "Bad Sec-WebSocket-Key" },
	{ GET H_HOST H_UPG H_CONN
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" H_VER H_PROTO
	    "\r\n", 400, "Bad Sec-WebSocket-Key" },
	/* RFC 7118 5: no sip, no connection. */
	{ GET H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400,
	    "Sec-WebSocket-Protocol Lacks sip" },
	{ GET H_HOST H_UPG H_CONN H_KEY H_VER
	    "Sec-WebSocket-Protocol: xmpp, sips\r\n\r\n", 400,
	    "Sec-WebSocket-Protocol Lacks sip" },
	{ GET H_HOST H_UPG H_CONN H_KEY H_VER
	    "Sec-WebSocket-Protocol: SIP\r\n\r\n", 400,
	    "Sec-WebSocket-Protocol Lacks sip" },
	{ GET H_HOST " folded\r\n" ALL_BUT_HOST "\r\n", 400,
	    "Obsolete Line Folding" },
	{ GET H_HOST "No colon here\r\n" ALL_BUT_HOST "\r\n", 400,
	    "Malformed Header Line" },
	{ GET H_HOST "Upgrade : websocket\r\n" H_CONN H_KEY H_VER H_PROTO
	    "\r\n", 400, "Malformed Header Line" },
	{ GET "Host: h\001\r\n" ALL_BUT_HOST "\r\n", 400,
	    "Control Character in Header" },
	{ GET H_HOST ALL_BUT_HOST "Content-Length: 4\r\n\r\nabcd", 400,
	    "Request Has a Body" },
	{ GET H_HOST ALL_BUT_HOST "Transfer-Encoding: chunked\r\n\r\n", 400,
	    "Request Has a Body" },
	{ GET H_HOST "X: a\nb\r\n" ALL_BUT_HOST "\r\n", 400,
	    "Bare CR or LF in Request" },
	{ GET H_HOST "X: a\rb\r\n" ALL_BUT_HOST "\r\n", 400,
	    "Bare CR or LF in Request" },
	{ "GET / HTTP/1.1\n" H_HOST ALL_BUT_HOST "\n", 400,
	    "Bare CR or LF in Request" },
};

/* The answer is an HTTP response with that status and a sound body. */
static void
assert_refusal(struct evbuffer *b, int status, const char *reason)
{
	char	 line[256], *p, *body;
	size_t	 n, cl;

	n = evbuffer_get_length(b);
	p = (char *)evbuffer_pullup(b, -1);
	snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, reason);
	ck_assert_msg(n > strlen(line) && memcmp(p, line, strlen(line)) == 0,
	    "answer is \"%.*s\", want \"%s\"", (int)n, p, line);
	body = memmem(p, n, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(body);
	body += 4;
	ck_assert_ptr_nonnull(memmem(p, n, "\r\nContent-Length: ", 18));
	cl = strtoul((char *)memmem(p, n, "\r\nContent-Length: ", 18) + 18,
	    NULL, 10);
	ck_assert_uint_eq(cl, n - (size_t)(body - p));
	ck_assert_ptr_nonnull(memmem(body, n - (body - p), reason,
	    strlen(reason)));
	ck_assert_ptr_nonnull(memmem(p, body - p, "close\r\n", 7));
	ck_assert_ptr_nonnull(memmem(p, body - p, "\r\nConnection: ", 14));
	if (status == 426)
		ck_assert_ptr_nonnull(memmem(p, body - p,
		    "\r\nSec-WebSocket-Version: 13\r\n", 29));
	if (status == 405)
		ck_assert_ptr_nonnull(memmem(p, body - p, "\r\nAllow: GET\r\n",
		    14));
	evbuffer_drain(b, n);
}

START_TEST(handshake_refused)
{
	struct tp_ws_msg	 m;
	char			 err[128];
	size_t			 i;

	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		struct tp_ws	 w;

		tp_ws_init(&w, &set);
		evbuffer_drain(in, evbuffer_get_length(in));
		add_str(in, refusals[i].req);
		ck_assert_msg(tp_ws_handshake(&w, in, out, err, sizeof(err)) ==
		    TP_WS_ERROR, "request %zu taken", i);
		ck_assert_msg(w.status == refusals[i].status, "request %zu: "
		    "%d, want %d (%s)", i, w.status, refusals[i].status, err);
		ck_assert_str_eq(err, refusals[i].reason);
		assert_refusal(out, refusals[i].status, refusals[i].reason);
		ck_assert_int_eq(w.phase, TP_WS_PHASE_FAILED);
		/* Failed is for good, and nothing more is written. */
		ck_assert_int_eq(tp_ws_handshake(&w, in, out, err,
		    sizeof(err)), TP_WS_ERROR);
		ck_assert_int_eq(tp_ws_feed(&w, in, out, &m, err,
		    sizeof(err)), TP_WS_ERROR);
		ck_assert_uint_eq(evbuffer_get_length(out), 0);
		tp_ws_cleanup(&w);
	}
}
END_TEST

START_TEST(origin_allow_list)
{
	static const char *const allow[] = { "https://www.example.test",
	    "http://other.test:8080" };
	static const char *const reqs[] = {
		REQ,
		REQ_HEAD "Origin: HTTPS://WWW.EXAMPLE.TEST\r\n" H_KEY H_VER
		    H_PROTO "\r\n",
		REQ_HEAD "Origin: http://other.test:8080\r\n" H_KEY H_VER
		    H_PROTO "\r\n",
		REQ_HEAD H_KEY H_VER H_PROTO "\r\n",	/* no Origin */
		REQ_HEAD "Origin: https://evil.test\r\n" H_KEY H_VER H_PROTO
		    "\r\n",
		REQ_HEAD "Origin: https://www.example.test.evil\r\n" H_KEY
		    H_VER H_PROTO "\r\n",
		REQ_HEAD "Origin: null\r\n" H_KEY H_VER H_PROTO "\r\n",
		REQ_HEAD "Origin: https://www.example.test\r\n"
		    "Origin: https://evil.test\r\n" H_KEY H_VER H_PROTO "\r\n",
	};
	static const int	want[] = { 101, 101, 101, 101, 403, 403, 403,
	    400 };
	struct tp_ws_settings	s = set;
	struct tp_ws		w;
	char			err[128];
	size_t			i;

	s.origins = allow;
	s.norigins = 2;
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		tp_ws_init(&w, &s);
		add_str(in, reqs[i]);
		tp_ws_handshake(&w, in, out, err, sizeof(err));
		ck_assert_msg(w.status == want[i], "request %zu: %d, want %d",
		    i, w.status, want[i]);
		if (want[i] == 403)
			assert_refusal(out, 403, "Origin Not Allowed");
		evbuffer_drain(out, evbuffer_get_length(out));
		evbuffer_drain(in, evbuffer_get_length(in));
		tp_ws_cleanup(&w);
	}
	/* Without a list any Origin will do. */
	tp_ws_init(&w, &set);
	add_str(in, reqs[4]);
	ck_assert_int_eq(tp_ws_handshake(&w, in, out, err, sizeof(err)),
	    TP_WS_DONE);
	tp_ws_cleanup(&w);
}
END_TEST

/* One byte at a time: MORE until the last byte, then the same 101. */
START_TEST(handshake_one_byte)
{
	const char	*s = REQ;
	char		 err[128];
	size_t		 i, n = strlen(s);

	for (i = 0; i < n - 1; i++) {
		evbuffer_add(in, s + i, 1);
		ck_assert_int_eq(tp_ws_handshake(&ws, in, out, err,
		    sizeof(err)), TP_WS_MORE);
		ck_assert_uint_eq(evbuffer_get_length(out), 0);
	}
	ck_assert_uint_eq(ws.hs_scanned, n - 1);
	evbuffer_add(in, s + i, 1);
	ck_assert_int_eq(tp_ws_handshake(&ws, in, out, err, sizeof(err)),
	    TP_WS_DONE);
	ck_assert_uint_eq(evbuffer_get_length(out), strlen(RESP_101));
	ck_assert(memcmp(evbuffer_pullup(out, -1), RESP_101,
	    strlen(RESP_101)) == 0);
}
END_TEST

/* A request of max_handshake bytes passes; one more is refused at once. */
START_TEST(handshake_limit)
{
	struct tp_ws_settings	 s = set;
	struct tp_ws		 w;
	char			 err[128], req[512];
	size_t			 n = strlen(REQ);

	s.max_handshake = n;
	tp_ws_init(&w, &s);
	add_str(in, REQ);
	ck_assert_int_eq(tp_ws_handshake(&w, in, out, err, sizeof(err)),
	    TP_WS_DONE);
	tp_ws_cleanup(&w);
	evbuffer_drain(out, evbuffer_get_length(out));

	s.max_handshake = n - 1;
	tp_ws_init(&w, &s);
	add_str(in, REQ);
	ck_assert_int_eq(tp_ws_handshake(&w, in, out, err, sizeof(err)),
	    TP_WS_ERROR);
	ck_assert_int_eq(w.status, 431);
	assert_refusal(out, 431, "Request Header Fields Too Large");
	ck_assert_uint_eq(w.hs_scanned, n - 1);
	tp_ws_cleanup(&w);
	evbuffer_drain(in, evbuffer_get_length(in));

	/* A request that never ends: cut off at the limit, not after. */
	s.max_handshake = 200;
	tp_ws_init(&w, &s);
	snprintf(req, sizeof(req), GET H_HOST "X: ");
	add_str(in, req);
	while (evbuffer_get_length(in) < 199) {
		evbuffer_add(in, "a", 1);
		ck_assert_int_eq(tp_ws_handshake(&w, in, out, err,
		    sizeof(err)), TP_WS_MORE);
	}
	evbuffer_add(in, "a", 1);
	ck_assert_int_eq(tp_ws_handshake(&w, in, out, err, sizeof(err)),
	    TP_WS_ERROR);
	ck_assert_int_eq(w.status, 431);
	tp_ws_cleanup(&w);
}
END_TEST

/* What follows the request is left for the frames, byte for byte. */
START_TEST(handshake_leftover)
{
	struct tp_ws_msg	 m;
	char			 err[128];

	add_str(in, REQ);
	add_frame(in, true, 0x1, OPT, strlen(OPT));
	ck_assert_int_eq(tp_ws_handshake(&ws, in, out, err, sizeof(err)),
	    TP_WS_DONE);
	ck_assert_uint_eq(evbuffer_get_length(in), strlen(OPT) + 6);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_uint_eq(m.len, strlen(OPT));
	ck_assert(memcmp(m.p, OPT, m.len) == 0);
	ck_assert(!m.binary);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
}
END_TEST

START_TEST(feed_before_handshake)
{
	struct tp_ws_msg	m;
	char			err[128];

	add_frame(in, true, 0x1, "x", 1);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	ck_assert_str_eq(err, "handshake not done");
	ck_assert_int_eq(tp_ws_send(&ws, "x", 1, out), -1);
	ck_assert_int_eq(tp_ws_ping(&ws, out), -1);
	ck_assert_int_eq(tp_ws_close(&ws, 1000, out), -1);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
}
END_TEST

START_TEST(text_and_binary)
{
	struct tp_ws_msg	 m;
	char			 err[128];
	const uint8_t		 bin[] = { 'S', 'I', 'P', 0xff, 0x00, 0xfe };

	open_ws();
	add_frame(in, true, 0x1, OPT, strlen(OPT));
	add_frame(in, true, 0x2, bin, sizeof(bin));
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert(!m.binary);
	ck_assert_uint_eq(m.len, strlen(OPT));
	ck_assert(memcmp(m.p, OPT, m.len) == 0);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert(m.binary);
	ck_assert_uint_eq(m.len, sizeof(bin));
	ck_assert(memcmp(m.p, bin, m.len) == 0);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
	ck_assert_uint_eq(ws.rx_msgs, 2);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
}
END_TEST

/* Fragments with a ping between them: one message, and a pong. */
START_TEST(fragmented)
{
	struct tp_ws_msg	 m;
	struct sframe		 f[4];
	char			 err[128];

	open_ws();
	add_frame(in, false, 0x1, "OPTIONS sip:x ", 14);
	add_frame(in, true, 0x9, "hi", 2);
	add_frame(in, false, 0x0, "", 0);
	add_frame(in, false, 0x0, "SIP/2.0\r\nl: 0", 13);
	add_frame(in, true, 0x0, "\r\n\r\n", 4);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_uint_eq(m.len, strlen(OPT));
	ck_assert(memcmp(m.p, OPT, m.len) == 0);
	ck_assert(!m.binary);
	ck_assert_uint_eq(out_frames(out, f, 4), 1);
	ck_assert_uint_eq(f[0].op, 0xa);
	ck_assert(f[0].fin && !f[0].masked);
	ck_assert_uint_eq(f[0].len, 2);
	ck_assert(memcmp(f[0].data, "hi", 2) == 0);
	/* A binary one, fragmented too. */
	add_frame(in, false, 0x2, "\x01\x02", 2);
	add_frame(in, true, 0x0, "\xff", 1);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert(m.binary);
	ck_assert_uint_eq(m.len, 3);
	ck_assert(memcmp(m.p, "\x01\x02\xff", 3) == 0);
}
END_TEST

START_TEST(ping_pong)
{
	struct tp_ws_msg	 m;
	struct sframe		 f[4];
	char			 err[128], big[125];

	open_ws();
	memset(big, 'p', sizeof(big));
	add_frame(in, true, 0x9, "", 0);
	add_frame(in, true, 0x9, big, sizeof(big));
	add_frame(in, true, 0xa, "late", 4);	/* a pong: nothing back */
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
	ck_assert_uint_eq(out_frames(out, f, 4), 2);
	ck_assert(f[0].op == 0xa && f[0].len == 0 && !f[0].masked);
	ck_assert(f[1].op == 0xa && f[1].len == 125 && !f[1].masked);
	ck_assert(memcmp(f[1].data, big, 125) == 0);
	ck_assert_uint_eq(ws.rx_pings, 2);
	ck_assert_uint_eq(ws.rx_pongs, 1);
	/* Our ping: an empty one, unmasked; its pong counts. */
	ck_assert_int_eq(tp_ws_ping(&ws, out), 0);
	ck_assert_uint_eq(out_frames(out, f, 4), 1);
	ck_assert(f[0].op == 0x9 && f[0].len == 0 && f[0].fin &&
	    !f[0].masked);
	add_frame(in, true, 0xa, "", 0);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
	ck_assert_uint_eq(ws.rx_pongs, 2);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
}
END_TEST

/* They close: we echo the code, and the connection is over. */
START_TEST(close_by_peer)
{
	struct tp_ws_msg	 m;
	char			 err[128];
	const uint8_t		 c[] = { 0x03, 0xe8, 'b', 'y', 'e' };

	open_ws();
	add_frame(in, true, 0x8, c, sizeof(c));
	add_frame(in, true, 0x1, OPT, strlen(OPT));	/* after: not read */
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_CLOSED);
	assert_close(out, 1000);
	ck_assert_int_eq(ws.phase, TP_WS_PHASE_CLOSED);
	ck_assert_uint_eq(ws.close_rx, 1000);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_CLOSED);
	ck_assert_uint_eq(ws.rx_msgs, 0);
	ck_assert_int_eq(tp_ws_send(&ws, OPT, strlen(OPT), out), -1);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);

	/* A close without a code gets one without a code. */
	tp_ws_cleanup(&ws);
	tp_ws_init(&ws, &set);
	evbuffer_drain(in, evbuffer_get_length(in));
	open_ws();
	add_frame(in, true, 0x8, "", 0);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_CLOSED);
	assert_close(out, 0);
	ck_assert_uint_eq(ws.close_rx, 1005);
}
END_TEST

/* We close: messages still come in, pings are not answered. */
START_TEST(close_by_us)
{
	struct tp_ws_msg	 m;
	char			 err[128];
	const uint8_t		 c[] = { 0x03, 0xe9 };

	open_ws();
	ck_assert_int_eq(tp_ws_close(&ws, 1001, out), 0);
	assert_close(out, 1001);
	ck_assert_int_eq(ws.phase, TP_WS_PHASE_CLOSING);
	ck_assert_int_eq(tp_ws_close(&ws, 1001, out), -1);
	ck_assert_int_eq(tp_ws_send(&ws, OPT, strlen(OPT), out), -1);
	ck_assert_int_eq(tp_ws_ping(&ws, out), -1);
	add_frame(in, true, 0x1, OPT, strlen(OPT));
	add_frame(in, true, 0x9, "", 0);
	add_frame(in, true, 0x8, c, sizeof(c));
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_CLOSED);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	ck_assert_uint_eq(ws.close_rx, 1001);
	ck_assert_int_eq(ws.phase, TP_WS_PHASE_CLOSED);
}
END_TEST

/* Over max_message_size: refused at the frame's header, 1009. */
START_TEST(oversize)
{
	struct tp_ws_msg	 m;
	char			 err[128], *big;
	uint8_t			*f;
	size_t			 n;

	big = malloc(70000);
	f = malloc(70016);
	memset(big, 'a', 70000);
	open_ws();
	/* The header of a 5000-byte frame: nothing kept, nothing said. */
	n = frame(f, true, 0x1, big, 5000);
	evbuffer_add(in, f, 8);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
	ck_assert_uint_lt(ws.msg_cap, 5000);
	/* Its first payload byte: refused; the rest never comes in. */
	evbuffer_add(in, f + 8, 1);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	ck_assert_str_eq(err, "message over 4096 bytes");
	assert_close(out, 1009);
	ck_assert_uint_lt(ws.msg_cap, 5000);
	ck_assert_uint_eq(ws.rx_bytes, 0);
	ck_assert_int_eq(ws.phase, TP_WS_PHASE_FAILED);
	evbuffer_add(in, f + 9, n - 9);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);

	/* Fragments adding up to one byte too many. */
	tp_ws_cleanup(&ws);
	tp_ws_init(&ws, &set);
	evbuffer_drain(in, evbuffer_get_length(in));
	open_ws();
	add_frame(in, false, 0x1, big, 4000);
	add_frame(in, true, 0x0, big, 97);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	assert_close(out, 1009);

	/* Exactly max_message_size is fine, in one frame or two. */
	tp_ws_cleanup(&ws);
	tp_ws_init(&ws, &set);
	evbuffer_drain(in, evbuffer_get_length(in));
	open_ws();
	add_frame(in, true, 0x1, big, 4096);
	add_frame(in, false, 0x1, big, 4000);
	add_frame(in, true, 0x0, big, 96);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_uint_eq(m.len, 4096);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_uint_eq(m.len, 4096);

	/* A 64-bit length far over: the same. */
	tp_ws_cleanup(&ws);
	tp_ws_init(&ws, &set);
	evbuffer_drain(in, evbuffer_get_length(in));
	open_ws();
	{
		const uint8_t	h[] = { 0x81, 0xff, 0x7f, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 'x' };

		evbuffer_add(in, h, sizeof(h));
	}
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	assert_close(out, 1009);
	free(big);
	free(f);
}
END_TEST

/* RFC 6455 5.1: a client masks every frame. */
START_TEST(unmasked)
{
	struct tp_ws_msg	 m;
	char			 err[128];
	uint8_t			 f[64];

	open_ws();
	evbuffer_add(in, f, frame_ext(f, true, 0, 0x1, false, "abc", 3, 0));
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	ck_assert_str_eq(err, "unmasked frame from a client");
	assert_close(out, 1002);
	ck_assert_uint_eq(ws.rx_msgs, 0);
	/* An empty unmasked ping too. */
	tp_ws_cleanup(&ws);
	tp_ws_init(&ws, &set);
	evbuffer_drain(in, evbuffer_get_length(in));
	open_ws();
	evbuffer_add(in, f, frame_ext(f, true, 0, 0x9, false, "", 0, 0));
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	assert_close(out, 1002);
}
END_TEST

struct bad {
	const char	*what;
	uint16_t	 code;
	const char	*err;
};

/* Each protocol error: our close frame with its code, then nothing. */
START_TEST(protocol_errors)
{
	static const struct bad	bad[] = {
		{ "continuation first", 1002, "continuation frame without" },
		{ "text inside fragmented", 1002, "new message inside" },
		{ "opcode 3", 1002, "reserved opcode 3" },
		{ "opcode 11", 1002, "reserved opcode 11" },
		{ "rsv1", 1002, "reserved bits 4 set" },
		{ "long ping", 1002, "bad frame header" },
		{ "fragmented ping", 1002, "bad frame header" },
		{ "non-minimal 16", 1002, "bad frame header" },
		{ "non-minimal 64", 1002, "bad frame header" },
		{ "close of 1 byte", 1002, "close frame of 1 byte" },
		{ "close 1005", 1002, "close code 1005" },
		{ "close 999", 1002, "close code 999" },
		{ "close 5000", 1002, "close code 5000" },
		{ "close reason not UTF-8", 1007, "close reason is not" },
		{ "text not UTF-8", 1007, "text message is not UTF-8" },
		{ "text surrogate", 1007, "text message is not UTF-8" },
		{ "text overlong", 1007, "text message is not UTF-8" },
		{ "text cut", 1007, "text message is not UTF-8" },
	};
	struct tp_ws_msg	 m;
	char			 err[128], big[200];
	uint8_t			 f[512];
	size_t			 i, n;

	memset(big, 'x', sizeof(big));
	tp_ws_cleanup(&ws);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tp_ws_init(&ws, &set);
		add_str(in, REQ);
		ck_assert_int_eq(tp_ws_handshake(&ws, in, out, err,
		    sizeof(err)), TP_WS_DONE);
		evbuffer_drain(out, evbuffer_get_length(out));
		n = 0;
		switch (i) {
		case 0:
			n = frame(f, true, 0x0, "a", 1);
			break;
		case 1:
			n = frame(f, false, 0x1, "a", 1);
			n += frame(f + n, true, 0x1, "b", 1);
			break;
		case 2:
			n = frame(f, true, 0x3, "a", 1);
			break;
		case 3:
			n = frame(f, true, 0xb, "", 0);
			break;
		case 4:
			n = frame_ext(f, true, 4, 0x1, true, "a", 1, 0);
			break;
		case 5:
			n = frame(f, true, 0x9, big, 126);
			break;
		case 6:
			n = frame(f, false, 0x9, "a", 1);
			break;
		case 7:
			n = frame_ext(f, true, 0, 0x1, true, "abc", 3, 126);
			break;
		case 8:
			n = frame_ext(f, true, 0, 0x1, true, big, 200, 127);
			break;
		case 9:
			n = frame(f, true, 0x8, "\x03", 1);
			break;
		case 10:
			n = frame(f, true, 0x8, "\x03\xed", 2);
			break;
		case 11:
			n = frame(f, true, 0x8, "\x03\xe7", 2);
			break;
		case 12:
			n = frame(f, true, 0x8, "\x13\x88", 2);
			break;
		case 13:
			n = frame(f, true, 0x8, "\x03\xe8\xc0\xaf", 4);
			break;
		case 14:
			n = frame(f, true, 0x1, "OPTIONS \xff", 9);
			break;
		case 15:
			n = frame(f, true, 0x1, "a\xed\xa0\x80", 4);
			break;
		case 16:
			n = frame(f, true, 0x1, "\xe0\x80\xaf", 3);
			break;
		case 17:
			/* A character cut by the fragment edge is fine... */
			n = frame(f, false, 0x1, "\xc3", 1);
			n += frame(f + n, true, 0x0, "\xa9", 1);
			/* ...one cut by the message's end is not. */
			n += frame(f + n, true, 0x1, "ab\xe2\x82", 4);
			break;
		}
		evbuffer_add(in, f, n);
		if (i == 17)
			ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err,
			    sizeof(err)), TP_WS_MSG);
		ck_assert_msg(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)) ==
		    TP_WS_ERROR, "%s: taken", bad[i].what);
		ck_assert_msg(strstr(err, bad[i].err) != NULL, "%s: \"%s\"",
		    bad[i].what, err);
		assert_close(out, bad[i].code);
		ck_assert_int_eq(ws.phase, TP_WS_PHASE_FAILED);
		ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err,
		    sizeof(err)), TP_WS_ERROR);
		ck_assert_uint_eq(evbuffer_get_length(out), 0);
		tp_ws_cleanup(&ws);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
	tp_ws_init(&ws, &set);
}
END_TEST

/* Several messages and a ping in one read: one message a call. */
START_TEST(several_in_one_read)
{
	struct tp_ws_msg	 m;
	struct sframe		 f[4];
	char			 err[128], s[64];
	int			 i;

	open_ws();
	for (i = 0; i < 5; i++) {
		snprintf(s, sizeof(s), "MESSAGE %d", i);
		add_frame(in, true, 0x1, s, strlen(s));
		if (i == 2)
			add_frame(in, true, 0x9, "k", 1);
	}
	for (i = 0; i < 5; i++) {
		snprintf(s, sizeof(s), "MESSAGE %d", i);
		ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err,
		    sizeof(err)), TP_WS_MSG);
		ck_assert_uint_eq(m.len, strlen(s));
		ck_assert(memcmp(m.p, s, m.len) == 0);
		ck_assert_uint_eq(m.p[m.len], '\0');
	}
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
	ck_assert_uint_eq(out_frames(out, f, 4), 1);
	ck_assert(f[0].op == 0xa && f[0].len == 1 && f[0].data[0] == 'k');
}
END_TEST

START_TEST(empty_message)
{
	struct tp_ws_msg	m;
	char			err[128];

	open_ws();
	add_frame(in, true, 0x1, "", 0);
	add_frame(in, false, 0x2, "", 0);
	add_frame(in, true, 0x0, "", 0);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_uint_eq(m.len, 0);
	ck_assert(!m.binary);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert_uint_eq(m.len, 0);
	ck_assert(m.binary);
}
END_TEST

/* Our messages: one frame each, unmasked, in the shortest length form. */
START_TEST(send_frames)
{
	struct sframe	 f[4];
	char		*big = malloc(70000);
	uint8_t		*p;
	const uint8_t	 bin[] = { 'a', 0xff };

	memset(big, 'b', 70000);
	ck_assert_int_eq(tp_ws_send(&ws, OPT, strlen(OPT), out), -1);
	open_ws();
	ck_assert_int_eq(tp_ws_send(&ws, OPT, strlen(OPT), out), 0);
	ck_assert_int_eq(tp_ws_send(&ws, bin, sizeof(bin), out), 0);
	ck_assert_int_eq(tp_ws_send(&ws, "", 0, out), 0);
	ck_assert_uint_eq(out_frames(out, f, 4), 3);
	ck_assert(f[0].op == 0x1 && f[0].fin && !f[0].masked &&
	    f[0].rsv == 0 && f[0].len == strlen(OPT));
	ck_assert(memcmp(f[0].data, OPT, f[0].len) == 0);
	ck_assert(f[1].op == 0x2 && f[1].len == 2);	/* not UTF-8 */
	ck_assert(f[2].op == 0x1 && f[2].len == 0);
	ck_assert_int_eq(tp_ws_send(&ws, big, 200, out), 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 204);
	p = evbuffer_pullup(out, 4);
	ck_assert(p[0] == 0x81 && p[1] == 126 && p[2] == 0 && p[3] == 200);
	evbuffer_drain(out, 204);
	ck_assert_int_eq(tp_ws_send(&ws, big, 70000, out), 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 70010);
	p = evbuffer_pullup(out, 10);
	ck_assert(p[0] == 0x81 && p[1] == 127 && p[7] == 0x01 &&
	    p[8] == 0x11 && p[9] == 0x70);
	ck_assert_uint_eq(ws.tx_msgs, 5);
	free(big);
}
END_TEST

/* A whole conversation, split everywhere: the same units and bytes out. */
static size_t
conversation(uint8_t *s)
{
	struct evbuffer	*b = evbuffer_new();
	char		 big[300];
	size_t		 n;

	memset(big, 'z', sizeof(big));
	add_str(b, REQ);
	add_frame(b, true, 0x1, OPT, strlen(OPT));
	add_frame(b, false, 0x1, "INVITE ", 7);
	add_frame(b, true, 0x9, "ping", 4);
	add_frame(b, true, 0x0, big, sizeof(big));
	add_frame(b, true, 0xa, "", 0);
	add_frame(b, true, 0x2, "\x00\x01\x02", 3);
	add_frame(b, true, 0x1, "\xc3\xa9t\xc3\xa9", 6);
	add_frame(b, true, 0x8, "\x03\xe8", 2);
	n = evbuffer_get_length(b);
	evbuffer_remove(b, s, n);
	evbuffer_free(b);
	return (n);
}

START_TEST(split_every_byte)
{
	static uint8_t	s[2048];
	static size_t	ch[2048];
	static struct run whole, r;
	size_t		n = conversation(s), k, i, iter;
	uint64_t	x = 0x9e3779b97f4a7c15ULL;

	run_chunks(s, n, NULL, &whole);
	ck_assert_uint_eq(whole.n, 6);	/* 101, 4 messages, closed */
	ck_assert_int_eq(whole.u[0].rc, TP_WS_DONE);
	ck_assert_int_eq(whole.u[2].rc, TP_WS_MSG);
	ck_assert_uint_eq(whole.u[2].len, 307);
	ck_assert_int_eq(whole.u[5].rc, TP_WS_CLOSED);
	for (k = 1; k < n; k++) {
		ch[0] = k;
		ch[1] = 0;
		run_chunks(s, n, ch, &r);
		runs_equal(&whole, &r, "split");
	}
	for (i = 0; i < n; i++)
		ch[i] = 1;
	run_chunks(s, n, ch, &r);
	runs_equal(&whole, &r, "one byte at a time");
	for (iter = 0; iter < 200; iter++) {
		for (i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			ch[i] = 1 + x % 40;
		}
		run_chunks(s, n, ch, &r);
		runs_equal(&whole, &r, "random chunks");
	}
}
END_TEST

/* Two connections: one's state is not the other's. */
START_TEST(connections_apart)
{
	struct tp_ws		 w;
	struct tp_ws_msg	 m;
	struct evbuffer		*in2 = evbuffer_new(), *out2 = evbuffer_new();
	uint8_t			 f[64], g[64];
	char			 err[128];
	size_t			 n;

	tp_ws_init(&w, &set);
	open_ws();
	add_str(in2, REQ);
	ck_assert_int_eq(tp_ws_handshake(&w, in2, out2, err, sizeof(err)),
	    TP_WS_DONE);
	n = frame(f, true, 0x1, "hello", 5);
	evbuffer_add(in, f, 4);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MORE);
	evbuffer_add(in2, g, frame_ext(g, true, 0, 0x1, false, "x", 1, 0));
	ck_assert_int_eq(tp_ws_feed(&w, in2, out2, &m, err, sizeof(err)),
	    TP_WS_ERROR);
	evbuffer_add(in, f + 4, n - 4);
	ck_assert_int_eq(tp_ws_feed(&ws, in, out, &m, err, sizeof(err)),
	    TP_WS_MSG);
	ck_assert(m.len == 5 && memcmp(m.p, "hello", 5) == 0);
	tp_ws_cleanup(&w);
	evbuffer_free(in2);
	evbuffer_free(out2);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_fixed("ws", setup, teardown);

	tcase_set_timeout(tc, 60);
	check_add(tc, accept_key_rfc6455, handshake_ok, handshake_variants,
	    handshake_refused, origin_allow_list, handshake_one_byte,
	    handshake_limit, handshake_leftover, feed_before_handshake,
	    text_and_binary, fragmented, ping_pong, close_by_peer,
	    close_by_us, oversize, unmasked, protocol_errors,
	    several_in_one_read, empty_message, send_frames, split_every_byte,
	    connections_apart);
	return (check_run("ws"));
}
