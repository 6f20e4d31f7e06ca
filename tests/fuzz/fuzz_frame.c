/*
 * libFuzzer target for the stream framer (src/transport/tp_frame.c).
 *
 * Input: 4 control bytes, then the bytes a peer sends on one connection.
 *   byte 0: max_message_size = 16 + 16 * byte 0 (16 to 4096)
 *   bytes 1-2: the seed of the chunk sizes
 *   byte 3: bit 0 set: we sent a ping first (a CRLF is then a pong)
 * The stream goes through one framer whole and through another in chunks
 * the seed chooses (1 to 300 bytes); both must hand out the same units,
 * errors and reasons.  Each message must be exactly its header section up
 * to the first CRLFCRLF plus Content-Length bytes (the Content-Length found
 * again here, by a simpler reading of the unfolded header lines), within
 * max_message_size, and the units must be the stream itself in order with
 * only CRLFs skipped.  The scanner must never look at a byte twice.
 * Anything else aborts.
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "tp_frame.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct unit {
	int		 rc;
	int		 status;
	char		*bytes;
	size_t		 len;
	char		 err[128];
};

struct run {
	struct unit	*u;
	size_t		 n;
	size_t		 examined;
	size_t		 left;	/* bytes still in the buffer at the end */
};

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_frame: " __VA_ARGS__);		\
		fprintf(stderr, "\n");					\
		abort();						\
	}								\
} while (0)

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return (0);
}

/* Feed until the framer wants more; false after an error. */
static bool
drain(struct tp_frame *f, struct evbuffer *in, struct run *r)
{
	struct tp_frame_msg	 m;
	struct unit		*u;
	int			 rc;

	for (;;) {
		char	err[128];

		rc = tp_frame_feed(f, in, &m, err, sizeof(err));
		if (rc == TP_FRAME_MORE)
			return (true);
		r->u = realloc(r->u, (r->n + 1) * sizeof(*r->u));
		CHECK(r->u != NULL, "out of memory");
		u = &r->u[r->n++];
		memset(u, 0, sizeof(*u));
		u->rc = rc;
		u->status = m.status;
		snprintf(u->err, sizeof(u->err), "%s", err);
		if (m.p != NULL) {
			u->bytes = malloc(m.len + 1);
			CHECK(u->bytes != NULL, "out of memory");
			memcpy(u->bytes, m.p, m.len);
			u->len = m.len;
		}
		if (rc == TP_FRAME_MSG) {
			CHECK(m.p != NULL && m.len == m.head_len + m.body_len,
			    "message length %zu != %zu + %zu", m.len,
			    m.head_len, m.body_len);
			CHECK(m.len <= f->max_size, "message of %zu over %zu",
			    m.len, f->max_size);
		}
		if (rc == TP_FRAME_ERROR) {
			CHECK(err[0] != '\0', "error without a reason");
			CHECK(m.status == 0 || m.status == 400 ||
			    m.status == 513, "status %d", m.status);
			CHECK(m.status == 0 || (m.p != NULL && m.len > 0),
			    "status %d without the header section", m.status);
			return (false);
		}
	}
}

static void
run_free(struct run *r)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		free(r->u[i].bytes);
	free(r->u);
}

/* The stream through one framer, in chunks if seed is not 0. */
static void
run_stream(const uint8_t *p, size_t n, size_t max, bool ping,
    uint32_t seed, struct run *r)
{
	struct tp_frame	 f;
	struct evbuffer	*in = evbuffer_new();
	size_t		 off = 0, k;
	bool		 ok = true;

	CHECK(in != NULL, "evbuffer_new");
	memset(r, 0, sizeof(*r));
	tp_frame_init(&f, max);
	if (ping)
		tp_frame_ping_sent(&f);
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
		ok = drain(&f, in, r);
	}
	r->examined = f.examined;
	r->left = evbuffer_get_length(in);
	CHECK(f.examined <= n, "scanned %zu bytes of %zu", (size_t)f.examined,
	    n);
	tp_frame_cleanup(&f);
	evbuffer_free(in);
}

/* Content-Length of a header section read plainly; -1 none, -2 bad. */
static long
ref_content_length(const char *h, size_t len)
{
	char	 line[4096];
	size_t	 i = 0, ll = 0, start;
	long	 cl = -1, v;
	bool	 first = true;

	/* Lines, unfolded; the start line skipped. */
	while (i < len) {
		start = i;
		while (i + 1 < len && !(h[i] == '\r' && h[i + 1] == '\n'))
			i++;
		if (i + 1 >= len)
			break;
		if (first) {
			first = false;
			i += 2;
			continue;
		}
		if (i == start)
			break;		/* the empty line */
		if (h[start] != ' ' && h[start] != '\t')
			ll = 0;
		if (ll + (i - start) >= sizeof(line))
			return (-3);
		memcpy(line + ll, h + start, i - start);
		ll += i - start;
		line[ll] = '\0';
		i += 2;
		if (i < len && (h[i] == ' ' || h[i] == '\t'))
			continue;	/* folded: more of this line */
		{
			char	*c = strchr(line, ':'), *e, *s;

			if (c == NULL)
				continue;
			e = c;
			while (e > line && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*e = '\0';
			if (strcasecmp(line, "content-length") != 0 &&
			    strcasecmp(line, "l") != 0)
				continue;
			s = c + 1;
			s += strspn(s, " \t");
			e = s + strspn(s, "0123456789");
			if (e == s || e[strspn(e, " \t")] != '\0')
				return (-2);
			v = 0;
			for (; s < e; s++)
				v = v > 100000 ? 100001 : v * 10 + (*s - '0');
			if (cl != -1 && cl != v)
				return (-2);
			cl = v;
		}
	}
	return (cl);
}

/* Every message: its first CRLFCRLF ends the head; then CL bytes. */
static void
check_units(const uint8_t *p, size_t n, const struct run *r, bool ping)
{
	size_t		 i, cur = 0;
	const char	*end;
	long		 cl;

	for (i = 0; i < r->n; i++) {
		const struct unit	*u = &r->u[i];

		/*
		 * Lone CRLFs before a start line are skipped, unless a ping
		 * of ours waits for its CRLF.
		 */
		while (!ping && cur + 2 <= n &&
		    memcmp(p + cur, "\r\n", 2) == 0 && !(cur + 4 <= n &&
		    memcmp(p + cur + 2, "\r\n", 2) == 0))
			cur += 2;
		switch (u->rc) {
		case TP_FRAME_KEEPALIVE:
			CHECK(cur + 4 <= n && memcmp(p + cur, "\r\n\r\n", 4) ==
			    0, "keepalive at %zu is not CRLFCRLF", cur);
			cur += 4;
			break;
		case TP_FRAME_PONG:
			CHECK(ping, "pong without a ping");
			CHECK(cur + 2 <= n && memcmp(p + cur, "\r\n", 2) == 0,
			    "pong at %zu is not CRLF", cur);
			ping = false;
			cur += 2;
			break;
		case TP_FRAME_MSG:
			CHECK(cur + u->len <= n &&
			    memcmp(p + cur, u->bytes, u->len) == 0,
			    "message %zu is not the stream at %zu", i, cur);
			CHECK(u->bytes[0] != '\r', "message starts with CR");
			end = memmem(u->bytes, u->len, "\r\n\r\n", 4);
			CHECK(end != NULL, "message without CRLFCRLF");
			cl = ref_content_length(u->bytes,
			    (size_t)(end - u->bytes) + 4);
			CHECK(cl >= 0, "message with Content-Length %ld", cl);
			CHECK((size_t)(end - u->bytes) + 4 + (size_t)cl ==
			    u->len, "message %zu: head %zu + CL %ld != %zu", i,
			    (size_t)(end - u->bytes) + 4, cl, u->len);
			cur += u->len;
			break;
		default:	/* an error; its head, if any, is next */
			CHECK(u->len == 0 || (cur + u->len <= n &&
			    memcmp(p + cur, u->bytes, u->len) == 0),
			    "error %zu: head is not the stream at %zu", i, cur);
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run	 whole, chunked;
	size_t		 max, i;
	uint32_t	 seed;
	bool		 ping;

	if (size < 4)
		return (0);
	max = 16 + 16 * (size_t)data[0];
	seed = ((uint32_t)data[1] << 8 | data[2]) + 1;
	ping = data[3] & 1;
	run_stream(data + 4, size - 4, max, ping, 0, &whole);
	run_stream(data + 4, size - 4, max, ping, seed, &chunked);
	CHECK(whole.n == chunked.n, "%zu units whole, %zu in chunks",
	    whole.n, chunked.n);
	for (i = 0; i < whole.n; i++) {
		const struct unit	*a = &whole.u[i], *b = &chunked.u[i];

		CHECK(a->rc == b->rc && a->status == b->status &&
		    a->len == b->len && strcmp(a->err, b->err) == 0 &&
		    (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0),
		    "unit %zu differs: %d/%d \"%s\" whole, %d/%d \"%s\" in "
		    "chunks", i, a->rc, a->status, a->err, b->rc, b->status,
		    b->err);
	}
	CHECK(whole.examined == chunked.examined, "%zu bytes scanned whole, "
	    "%zu in chunks", whole.examined, chunked.examined);
	if (whole.n == 0 || whole.u[whole.n - 1].rc != TP_FRAME_ERROR)
		CHECK(whole.left == chunked.left, "%zu bytes left whole, %zu "
		    "in chunks", whole.left, chunked.left);
	check_units(data + 4, size - 4, &whole, ping);
	run_free(&whole);
	run_free(&chunked);
	return (0);
}
