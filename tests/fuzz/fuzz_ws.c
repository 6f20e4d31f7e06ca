/*
 * libFuzzer target for the WebSocket module (src/transport/tp_ws.c): the
 * opening handshake, then frames, on one connection.
 *
 * Input: 5 control bytes, then the bytes a client sends.
 *   byte 0: max_message_size = 16 * byte 0 (0 to 4080)
 *   byte 1: bit 0: a good request is put before the bytes (they are then
 *           all frames); bit 1: an Origin allow-list is set; bit 2: we
 *           start the closing handshake once open; bit 3: we send a ping
 *           once open; bit 4: we send a message once open
 *   bytes 2-3: the seed of the chunk sizes
 *   byte 4: max_handshake = 32 * (byte 4 + 1) (32 to 8192)
 * The stream goes through one connection whole and through another in
 * chunks the seed chooses (1 to 300 bytes); both must hand out the same
 * units and reasons and write the same bytes.  Then, read again here with
 * wslay's frame reader: every message handed out is the next message of
 * the client's frames, within max_message_size, UTF-8 if text; what we
 * wrote after the 101 is unmasked whole frames, each pong carries the
 * next ping's payload, a close frame is the last frame and is there when
 * the connection failed or closed while open; a refused handshake is an
 * HTTP answer with a Content-Length that is right.  Anything else aborts.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <wslay/wslay.h>

#include "tp_ws.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_ws: " __VA_ARGS__);		\
		fprintf(stderr, "\n");					\
		abort();						\
	}								\
} while (0)

#define GOOD_REQ							\
	"GET /sip HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"	\
	"Connection: Upgrade\r\n"					\
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"		\
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"	\
	"Origin: https://a.test\r\n\r\n"

#define F_PREFIX	0x01
#define F_ORIGINS	0x02
#define F_CLOSE		0x04
#define F_PING		0x08
#define F_SEND		0x10

static const char *const	origins[] = { "https://a.test", "null" };

struct unit {
	int		 rc;
	char		*bytes;
	size_t		 len;
	bool		 binary;
	char		 err[128];
};

struct run {
	struct unit	*u;
	size_t		 n;
	uint8_t		*out;		/* every byte written */
	size_t		 out_len;
	size_t		 hs_out;	/* bytes of it that are the HTTP answer */
	size_t		 left_at_done;	/* in's bytes when the 101 went */
	int		 status;
	bool		 closed_first;	/* our close went before the end */
	enum tp_ws_phase phase;
	uint16_t	 close_tx;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return (0);
}

static struct unit *
unit_add(struct run *r)
{
	r->u = realloc(r->u, (r->n + 1) * sizeof(*r->u));
	CHECK(r->u != NULL, "out of memory");
	memset(&r->u[r->n], 0, sizeof(r->u[0]));
	return (&r->u[r->n++]);
}

/* Feed until the module wants more; false once it is over. */
static bool
drain(struct tp_ws *ws, struct evbuffer *in, struct evbuffer *out,
    unsigned flags, struct run *r)
{
	struct tp_ws_msg	 m;
	struct unit		*u;
	char			 err[128];
	int			 rc;

	for (;;) {
		if (ws->phase == TP_WS_PHASE_HANDSHAKE) {
			rc = tp_ws_handshake(ws, in, out, err, sizeof(err));
			if (rc != TP_WS_MORE) {
				r->hs_out = evbuffer_get_length(out);
				r->status = ws->status;
			}
			if (rc == TP_WS_DONE) {
				r->left_at_done = evbuffer_get_length(in);
				if (flags & F_PING)
					CHECK(tp_ws_ping(ws, out) == 0, "ping");
				if (flags & F_SEND)
					CHECK(tp_ws_send(ws, "OPTIONS", 7,
					    out) == 0, "send");
				if (flags & F_CLOSE) {
					CHECK(tp_ws_close(ws, 1001, out) == 0,
					    "close");
					r->closed_first = true;
				}
			}
		} else
			rc = tp_ws_feed(ws, in, out, &m, err, sizeof(err));
		if (rc == TP_WS_MORE)
			return (true);
		u = unit_add(r);
		u->rc = rc;
		snprintf(u->err, sizeof(u->err), "%s", err);
		if (rc == TP_WS_MSG) {
			CHECK(m.p != NULL && m.p[m.len] == '\0',
			    "message not NUL-terminated");
			u->bytes = malloc(m.len + 1);
			CHECK(u->bytes != NULL, "out of memory");
			memcpy(u->bytes, m.p, m.len);
			u->len = m.len;
			u->binary = m.binary;
		} else
			CHECK(rc == TP_WS_DONE || err[0] != '\0',
			    "unit %d without a reason", rc);
		if (rc == TP_WS_ERROR || rc == TP_WS_CLOSED)
			return (false);
	}
}

static void
run_stream(const uint8_t *p, size_t n, const struct tp_ws_settings *set,
    unsigned flags, uint32_t seed, struct run *r)
{
	struct tp_ws	 ws;
	struct evbuffer	*in = evbuffer_new(), *out = evbuffer_new();
	size_t		 off = 0, k;
	bool		 ok = true;

	CHECK(in != NULL && out != NULL, "evbuffer_new");
	memset(r, 0, sizeof(*r));
	tp_ws_init(&ws, set);
	while (ok && off < n) {
		k = n - off;
		if (seed != 0) {
			seed = seed * 1103515245 + 12345;
			k = (seed >> 16) % 4 == 0 ? 1 : 1 + (seed >> 8) % 300;
			if (k > n - off)
				k = n - off;
		}
		evbuffer_add(in, p + off, k);
		off += k;
		ok = drain(&ws, in, out, flags, r);
	}
	r->phase = ws.phase;
	r->close_tx = ws.close_tx;
	r->out_len = evbuffer_get_length(out);
	r->out = malloc(r->out_len + 1);
	CHECK(r->out != NULL, "out of memory");
	evbuffer_remove(out, r->out, r->out_len);
	tp_ws_cleanup(&ws);
	evbuffer_free(in);
	evbuffer_free(out);
}

static void
run_free(struct run *r)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		free(r->u[i].bytes);
	free(r->u);
	free(r->out);
}

/* UTF-8, read by decoding each character (not as tp_ws.c does it). */
static bool
ref_utf8(const uint8_t *p, size_t n)
{
	size_t		i = 0, k, len;
	uint32_t	cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = p[i] & 0x1f;
			min = 0x80;
		} else if ((p[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = p[i] & 0x0f;
			min = 0x800;
		} else if ((p[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = p[i] & 0x07;
			min = 0x10000;
		} else
			return (false);
		if (i + len > n)
			return (false);
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return (false);
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 &&
		    cp <= 0xdfff))
			return (false);
		i += len;
	}
	return (true);
}

/* Frames read back with wslay's frame reader, from memory. */
struct reader {
	const uint8_t		*p;
	size_t			 n, off;
	wslay_frame_context_ptr	 ctx;
	bool			 in_frame;
	uint64_t		 left;
};

struct rframe {
	uint8_t		 op;
	bool		 fin, mask;
	uint8_t		 rsv;
	uint8_t		*data;
	size_t		 len;	/* the bytes there were */
	uint64_t	 payload_length;
};

static ssize_t
reader_recv(uint8_t *buf, size_t len, int flags, void *arg)
{
	struct reader	*rd = arg;

	(void)flags;
	if (len > rd->n - rd->off)
		len = rd->n - rd->off;
	memcpy(buf, rd->p + rd->off, len);
	rd->off += len;
	return ((ssize_t)len);
}

static ssize_t
reader_send(const uint8_t *d, size_t len, int flags, void *arg)
{
	(void)d;
	(void)len;
	(void)flags;
	(void)arg;
	return (-1);
}

static int
reader_genmask(uint8_t *b, size_t len, void *arg)
{
	(void)b;
	(void)len;
	(void)arg;
	return (-1);
}

static void
reader_init(struct reader *rd, const uint8_t *p, size_t n)
{
	struct wslay_frame_callbacks	cb = {
		reader_send, reader_recv, reader_genmask
	};

	memset(rd, 0, sizeof(*rd));
	rd->p = p;
	rd->n = n;
	CHECK(wslay_frame_context_init(&rd->ctx, &cb, rd) == 0, "wslay");
}

/*
 * The next frame, whole or as much of it as there is: 1, or 0 at the end
 * (-1 on a header wslay refuses).  f->data is the caller's to free.
 */
static int
reader_next(struct reader *rd, struct rframe *f)
{
	struct wslay_frame_iocb	iocb;
	ssize_t			r;

	memset(f, 0, sizeof(*f));
	for (;;) {
		memset(&iocb, 0, sizeof(iocb));
		r = wslay_frame_recv(rd->ctx, &iocb);
		if (r == WSLAY_ERR_WANT_READ)
			return (rd->in_frame ? 1 : 0);
		if (r < 0) {
			free(f->data);
			f->data = NULL;
			return (-1);
		}
		if (!rd->in_frame) {
			rd->in_frame = true;
			f->op = iocb.opcode;
			f->fin = iocb.fin;
			f->mask = iocb.mask;
			f->rsv = iocb.rsv;
			f->payload_length = iocb.payload_length;
			rd->left = iocb.payload_length;
		}
		if (iocb.data_length > 0) {
			f->data = realloc(f->data, f->len + iocb.data_length);
			CHECK(f->data != NULL, "out of memory");
			memcpy(f->data + f->len, iocb.data, iocb.data_length);
			f->len += iocb.data_length;
		}
		rd->left -= iocb.data_length;
		if (rd->left == 0) {
			rd->in_frame = false;
			return (1);
		}
	}
}

/* What we wrote after the 101: whole frames as a server sends them. */
static void
check_out(const struct run *r, const uint8_t *fr, size_t n)
{
	struct reader	 rd, rin;
	struct rframe	 f, g;
	size_t		 pongs = 0, closes = 0, frames = 0;
	int		 rc, rc2;
	bool		 last_close = false;

	reader_init(&rd, r->out + r->hs_out, r->out_len - r->hs_out);
	reader_init(&rin, fr, n);
	while ((rc = reader_next(&rd, &f)) == 1) {
		frames++;
		CHECK(f.len == f.payload_length, "frame %zu cut short", frames);
		CHECK(f.fin && f.rsv == 0 && !f.mask, "frame %zu: fin %d rsv "
		    "%u mask %d", frames, f.fin, f.rsv, f.mask);
		CHECK(closes == 0, "a frame after our close");
		last_close = f.op == WSLAY_CONNECTION_CLOSE;
		switch (f.op) {
		case WSLAY_CONNECTION_CLOSE:
			closes++;
			CHECK(f.len != 1, "close frame of 1 byte");
			break;
		case WSLAY_PONG:
			/* The payload of the client's next ping. */
			pongs++;
			do {
				rc2 = reader_next(&rin, &g);
				if (rc2 == 1 && g.op != WSLAY_PING)
					free(g.data);
			} while (rc2 == 1 && g.op != WSLAY_PING);
			CHECK(rc2 == 1, "pong %zu without a ping", pongs);
			CHECK(g.len == f.len && (f.len == 0 ||
			    memcmp(g.data, f.data, f.len) == 0),
			    "pong %zu is not its ping", pongs);
			free(g.data);
			break;
		case WSLAY_PING:
		case WSLAY_TEXT_FRAME:
		case WSLAY_BINARY_FRAME:
			break;
		default:
			CHECK(0, "frame %zu with opcode %u", frames, f.op);
		}
		free(f.data);
	}
	CHECK(rc == 0, "our frames do not read back");
	if (r->phase == TP_WS_PHASE_CLOSING || r->closed_first ||
	    r->phase == TP_WS_PHASE_CLOSED ||
	    (r->phase == TP_WS_PHASE_FAILED && r->close_tx != 0))
		CHECK(closes == 1 && last_close, "%zu close frames", closes);
	else
		CHECK(closes == 0, "a close frame while open");
	wslay_frame_context_free(rd.ctx);
	wslay_frame_context_free(rin.ctx);
}

/* Each message handed out is the next one of the client's frames. */
static void
check_msgs(const struct run *r, const uint8_t *fr, size_t n, size_t max)
{
	struct reader	 rd;
	struct rframe	 f;
	uint8_t		*msg = NULL;
	size_t		 len = 0, i;
	bool		 binary = false, got;
	int		 rc;

	reader_init(&rd, fr, n);
	for (i = 0; i < r->n; i++) {
		const struct unit	*u = &r->u[i];

		if (u->rc != TP_WS_MSG)
			continue;
		CHECK(u->len <= max, "message of %zu over %zu", u->len, max);
		CHECK(u->binary || ref_utf8((uint8_t *)u->bytes, u->len),
		    "text message %zu is not UTF-8", i);
		for (got = false; !got; ) {
			rc = reader_next(&rd, &f);
			CHECK(rc == 1, "message %zu is not in the frames", i);
			CHECK(f.len == f.payload_length, "message %zu: frame "
			    "cut short", i);
			CHECK(f.mask, "message %zu from unmasked frames", i);
			if (f.op == WSLAY_TEXT_FRAME ||
			    f.op == WSLAY_BINARY_FRAME) {
				len = 0;
				binary = f.op == WSLAY_BINARY_FRAME;
			}
			if (f.op <= WSLAY_BINARY_FRAME) {
				msg = realloc(msg, len + f.len + 1);
				CHECK(msg != NULL, "out of memory");
				if (f.len > 0)
					memcpy(msg + len, f.data, f.len);
				len += f.len;
				got = f.fin;
			}
			free(f.data);
		}
		CHECK(u->len == len && u->binary == binary && (len == 0 ||
		    memcmp(u->bytes, msg, len) == 0), "message %zu differs "
		    "from the frames", i);
	}
	free(msg);
	wslay_frame_context_free(rd.ctx);
}

/* A refused handshake: one HTTP answer whose Content-Length is right. */
static void
check_refusal(const struct run *r)
{
	const char	*p, *body, *cl;
	size_t		 n = r->out_len;
	char		*t;

	/* atoi() and strtoul() need a NUL after the answer. */
	if ((t = malloc(n + 1)) == NULL)
		abort();
	memcpy(t, r->out, n);
	t[n] = '\0';
	p = t;

	CHECK(r->status == 400 || r->status == 403 || r->status == 405 ||
	    r->status == 426 || r->status == 431 || r->status == 505 ||
	    r->status == 500, "status %d", r->status);
	CHECK(n > 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 &&
	    atoi(p + 9) == r->status, "answer \"%.*s\"", (int)n, p);
	body = memmem(p, n, "\r\n\r\n", 4);
	CHECK(body != NULL, "answer without an end");
	body += 4;
	cl = memmem(p, body - p, "\r\nContent-Length: ", 18);
	CHECK(cl != NULL, "answer without Content-Length");
	CHECK(strtoul(cl + 18, NULL, 10) == n - (size_t)(body - p),
	    "Content-Length is not the body");
	CHECK(memmem(p, body - p, "close\r\n", 7) != NULL,
	    "answer without Connection: close");
	free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_ws_settings	 set;
	struct run		 whole, chunked;
	const uint8_t		*s, *end;
	uint8_t			*buf;
	size_t			 n, i, pre;
	uint32_t		 seed;
	unsigned		 flags;

	if (size < 5)
		return (0);
	memset(&set, 0, sizeof(set));
	set.max_message_size = 16 * (size_t)data[0];
	flags = data[1];
	seed = ((uint32_t)data[2] << 8 | data[3]) + 1;
	set.max_handshake = 32 * ((size_t)data[4] + 1);
	if (flags & F_ORIGINS) {
		set.origins = origins;
		set.norigins = 2;
	}
	pre = flags & F_PREFIX ? strlen(GOOD_REQ) : 0;
	n = pre + size - 5;
	buf = malloc(n + 1);
	CHECK(buf != NULL, "out of memory");
	memcpy(buf, GOOD_REQ, pre);
	memcpy(buf + pre, data + 5, size - 5);
	s = buf;

	run_stream(s, n, &set, flags, 0, &whole);
	run_stream(s, n, &set, flags, seed, &chunked);
	CHECK(whole.n == chunked.n, "%zu units whole, %zu in chunks",
	    whole.n, chunked.n);
	for (i = 0; i < whole.n; i++) {
		const struct unit	*a = &whole.u[i], *b = &chunked.u[i];

		CHECK(a->rc == b->rc && a->len == b->len &&
		    a->binary == b->binary && strcmp(a->err, b->err) == 0 &&
		    (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0),
		    "unit %zu differs: %d \"%s\" whole, %d \"%s\" in chunks",
		    i, a->rc, a->err, b->rc, b->err);
	}
	CHECK(whole.out_len == chunked.out_len &&
	    memcmp(whole.out, chunked.out, whole.out_len) == 0,
	    "written bytes differ: %zu whole, %zu in chunks", whole.out_len,
	    chunked.out_len);
	CHECK(whole.status == chunked.status, "status %d whole, %d chunked",
	    whole.status, chunked.status);

	if (whole.n > 0 && whole.u[0].rc == TP_WS_DONE) {
		/* The request ends at the first CRLFCRLF; the rest is left. */
		end = memmem(s, n, "\r\n\r\n", 4);
		CHECK(end != NULL, "101 without a CRLFCRLF");
		end += 4;
		CHECK((size_t)(end - s) <= set.max_handshake,
		    "request over max_handshake taken");
		CHECK(whole.left_at_done == n - (size_t)(end - s),
		    "%zu bytes left after the request, want %zu",
		    whole.left_at_done, n - (size_t)(end - s));
		CHECK(whole.hs_out > 34 && memcmp(whole.out,
		    "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0 &&
		    memmem(whole.out, whole.hs_out,
		    "\r\nSec-WebSocket-Protocol: sip\r\n", 31) != NULL,
		    "a 101 that is not one");
		check_out(&whole, end, n - (size_t)(end - s));
		check_msgs(&whole, end, n - (size_t)(end - s),
		    set.max_message_size);
	} else if (whole.n > 0) {
		CHECK(whole.u[0].rc == TP_WS_ERROR, "first unit %d",
		    whole.u[0].rc);
		CHECK(whole.hs_out == whole.out_len, "more than the answer");
		check_refusal(&whole);
	} else
		CHECK(whole.out_len == 0, "bytes written before the end");
	run_free(&whole);
	run_free(&chunked);
	free(buf);
	return (0);
}
