/*
 * libFuzzer target for the media layer's readers of network bytes
 * (src/media/bencode.c, src/media/sdp.c).
 *
 * Input: 1 control byte, then the bytes.
 *   byte 0, bit 0 clear: the bytes are an rtpengine reply's dictionary.
 *     A decoded document must encode back to exactly the same bytes (the
 *     decoder takes only the canonical form: no leading zeros, no "-0";
 *     keys stay in their order), every string must lie inside the input,
 *     and every container's children must end where it ends.
 *   bit 0 set: the bytes are an SDP body.  What sdp_parse() takes must
 *     hold slices inside the input and at most SDP_MAX_MEDIA media; then
 *     the body goes into an INVITE with sdp_replace_body(), and the
 *     message must parse again with that body and a Content-Length equal
 *     to its length.  Bit 1 set: into an ACK with no body, no
 *     Content-Type and no Content-Length instead (the answer of a late
 *     offer), which must come out the same way, with application/sdp.
 * Anything else aborts.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bencode.h"
#include "buf.h"
#include "sdp.h"
#include "sipmsg.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz_media: " __VA_ARGS__);		\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

static const char	 invite[] =
	"INVITE sip:bob@example.com SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
	"Max-Forwards: 70\r\n"
	"To: <sip:bob@example.com>\r\n"
	"From: <sip:alice@example.com>;tag=1928301774\r\n"
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
	"CSeq: 314159 INVITE\r\n"
	"Content-Type: application/sdp\r\n"
	"Content-Length: 4\r\n"
	"\r\n"
	"v=0\n";

/* An ACK for a 2xx: no body, no Content-Type, no Content-Length. */
static const char	 ack[] =
	"ACK sip:bob@192.0.2.4 SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhdt\r\n"
	"Max-Forwards: 70\r\n"
	"To: <sip:bob@example.com>;tag=a6c85cf\r\n"
	"From: <sip:alice@example.com>;tag=1928301774\r\n"
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
	"CSeq: 314159 ACK\r\n"
	"\r\n";

static bool
inside(struct slice s, const char *p, size_t len)
{
	return (s.len == 0 || (s.p >= p && s.p + s.len <= p + len));
}

/* The document again, from its flat array: the value at *i and after. */
static void
reencode(const struct bencode_doc *doc, uint32_t *i, struct buf *out)
{
	const struct bencode	*b = &doc->v[*i];
	uint32_t		 end = b->end;

	CHECK(end > *i && end <= doc->n, "end %u at %u", end, *i);
	switch (b->type) {
	case BENCODE_INT:
		bencode_add_int(out, b->i);
		(*i)++;
		return;
	case BENCODE_STR:
		bencode_add_str(out, b->s.p, b->s.len);
		(*i)++;
		return;
	case BENCODE_LIST:
	case BENCODE_DICT:
		buf_add(out, b->type == BENCODE_LIST ? "l" : "d", 1);
		for ((*i)++; *i < end;)
			reencode(doc, i, out);
		CHECK(*i == end, "children overrun");
		bencode_close(out);
		return;
	}
	CHECK(0, "bad type %d", b->type);
}

static void
fuzz_bencode(const char *p, size_t len)
{
	struct bencode_doc	 doc = { NULL, 0, 0 };
	struct buf		 out;
	struct slice		 s;
	uint32_t		 i = 0;
	char			 err[128];

	if (bencode_decode(&doc, p, len, err, sizeof(err)) == -1) {
		CHECK(doc.n == 0 && strncmp(err, "bencode: ", 9) == 0,
		    "a refusal without a reason");
		bencode_doc_free(&doc);
		return;
	}
	for (i = 0; i < doc.n; i++)
		CHECK(doc.v[i].type != BENCODE_STR ||
		    inside(doc.v[i].s, p, len), "a string outside the input");
	buf_init(&out, len + 16);
	i = 0;
	reencode(&doc, &i, &out);
	CHECK(i == doc.n, "values left over");
	CHECK(out.len == len && memcmp(out.p, p, len) == 0,
	    "encodes to other bytes");
	(void)bencode_get_str(&doc, bencode_root(&doc), "result", &s);
	(void)bencode_get(&doc, bencode_root(&doc), "sdp");
	buf_cleanup(&out);
	bencode_doc_free(&doc);
}

static void
fuzz_sdp(const char *p, size_t len, bool to_ack)
{
	const char	*base = to_ack ? ack : invite;
	size_t		 baselen = to_ack ? sizeof(ack) - 1 :
			    sizeof(invite) - 1;
	struct slice	 ct;
	struct sdp	 sd;
	struct sipmsg	*m, *n;
	struct buf	 out;
	char		 err[256];
	unsigned	 i;

	if (sdp_parse(&sd, (struct slice){ p, len }, err, sizeof(err)) == 0) {
		CHECK(sd.nmedia <= SDP_MAX_MEDIA, "too many media");
		CHECK(inside(sd.conn.addr, p, len) &&
		    inside(sd.origin.addr, p, len), "c= or o= outside");
		for (i = 0; i < sd.nmedia; i++) {
			CHECK(inside(sd.media[i].type, p, len) &&
			    inside(sd.media[i].proto, p, len) &&
			    inside(sd.media[i].conn.addr, p, len) &&
			    inside(sd.media[i].rtcp_conn.addr, p, len),
			    "media %u outside", i);
			CHECK(sd.media[i].port == 0 ||
			    sdp_media_conn(&sd, i)->family != 0,
			    "media %u without an address", i);
		}
		(void)sdp_private(&sd);
		(void)sdp_has_ice(&sd);
	}
	m = sipmsg_new(base, baselen);
	CHECK(sipmsg_parse(m, err, sizeof(err)) == 0, "the base: %s", err);
	buf_init(&out, baselen + len + 64);
	CHECK(sdp_replace_body(m, (struct slice){ p, len }, &out, err,
	    sizeof(err)) == 0, "replace: %s", err);
	n = sipmsg_new(out.p, out.len);
	CHECK(sipmsg_parse(n, err, sizeof(err)) == 0, "the result does not "
	    "parse: %s", err);
	CHECK(n->content_length == len && n->body_len == len &&
	    memcmp(n->buf + n->body_off, p, len) == 0, "the body is not "
	    "the one put in");
	CHECK(sdp_body(n, &ct) == SDP_BODY_SDP || len == 0,
	    "not application/sdp");
	sipmsg_free(n);
	sipmsg_free(m);
	buf_cleanup(&out);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	sipmsg_init();
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return (0);
	if (data[0] & 1)
		fuzz_sdp((const char *)data + 1, size - 1, (data[0] & 2) != 0);
	else
		fuzz_bencode((const char *)data + 1, size - 1);
	return (0);
}
