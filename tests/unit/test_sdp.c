/* Unit tests: sdp.c, reading SDP bodies and putting new ones in. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "buf.h"
#include "sdp.h"
#include "sipmsg.h"

#define OFFER								\
	"v=0\r\n"							\
	"o=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\n"		\
	"s=-\r\n"							\
	"c=IN IP4 192.168.1.10\r\n"					\
	"t=0 0\r\n"							\
	"m=audio 49170 RTP/AVP 0 8 101\r\n"				\
	"a=rtpmap:0 PCMU/8000\r\n"					\
	"a=rtcp:49171 IN IP4 192.168.1.10\r\n"				\
	"m=video 0 RTP/AVP 31\r\n"					\
	"m=audio 5004/2 RTP/SAVPF 111\r\n"				\
	"c=IN IP6 2001:db8::7\r\n"					\
	"a=ice-ufrag:F7gI\r\n"						\
	"a=candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host\r\n"	\
	"a=rtcp-mux\r\n"

static char *
invite(const char *extra, const char *body)
{
	char	*m;

	if (asprintf(&m, "INVITE sip:bob@example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
	    "Max-Forwards: 70\r\n"
	    "To: <sip:bob@example.com>\r\n"
	    "From: <sip:alice@example.com>;tag=1928301774\r\n"
	    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
	    "CSeq: 314159 INVITE\r\n"
	    "Contact: <sip:alice@192.0.2.1>\r\n"
	    "%s"
	    "\r\n%s", extra, body) == -1)
		abort();
	return (m);
}

static struct slice
body_of(const char *s)
{
	return ((struct slice){ s, strlen(s) });
}

START_TEST(read_offer)
{
	struct sdp		 sd;
	const struct sdp_conn	*c;
	char			 err[128];

	ck_assert_int_eq(sdp_parse(&sd, body_of(OFFER), err, sizeof(err)), 0);
	ck_assert_slice_eq(sd.origin.addr, "192.168.1.10");
	ck_assert_slice_eq(sd.conn.addr, "192.168.1.10");
	ck_assert_uint_eq(sd.conn.family, 4);
	ck_assert(sd.conn.numeric);
	ck_assert_uint_eq(sd.nmedia, 3);
	ck_assert_slice_eq(sd.media[0].type, "audio");
	ck_assert_slice_eq(sd.media[0].proto, "RTP/AVP");
	ck_assert_uint_eq(sd.media[0].port, 49170);
	ck_assert_uint_eq(sd.media[0].nports, 1);
	ck_assert_uint_eq(sd.media[0].rtcp_port, 49171);
	ck_assert_slice_eq(sd.media[0].rtcp_conn.addr, "192.168.1.10");
	ck_assert(!sd.media[0].ice);
	ck_assert_uint_eq(sd.media[1].port, 0);
	ck_assert_uint_eq(sd.media[2].port, 5004);
	ck_assert_uint_eq(sd.media[2].nports, 2);
	ck_assert(sd.media[2].ice);
	ck_assert(sd.media[2].rtcp_mux);
	c = sdp_media_conn(&sd, 0);
	ck_assert_slice_eq(c->addr, "192.168.1.10");
	c = sdp_media_conn(&sd, 2);
	ck_assert_slice_eq(c->addr, "2001:db8::7");
	ck_assert_uint_eq(c->family, 6);
	ck_assert(sdp_has_ice(&sd));
	ck_assert(sdp_private(&sd));
}
END_TEST

/* A bare LF ends a line too (RFC 4566 5); the last line may lack one. */
START_TEST(read_lf)
{
	struct sdp	 sd;
	char		 err[128];

	ck_assert_int_eq(sdp_parse(&sd, body_of("v=0\no=- 1 1 IN IP4 "
	    "203.0.113.5\ns=-\nc=IN IP4 203.0.113.5/127\nt=0 0\nm=audio 4000 "
	    "RTP/AVP 0"), err, sizeof(err)), 0);
	ck_assert_slice_eq(sd.conn.addr, "203.0.113.5");
	ck_assert_uint_eq(sd.media[0].port, 4000);
	ck_assert(!sdp_private(&sd));
	ck_assert(!sdp_has_ice(&sd));
}
END_TEST

static const char *const bad_sdp[] = {
	"",
	"v=1\r\n",
	"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n",	/* v= not first */
	"v=0\r\nc=IN IP4\r\n",
	"v=0\r\nc=IN IP5 1.2.3.4\r\n",
	"v=0\r\nc=ON IP4 1.2.3.4\r\n",
	"v=0\r\nc=IN IP4 1.2.3.4;x\r\n",	/* not a host name */
	"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
	"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
	"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n",
	"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000/0 RTP/AVP 0\r\n",
	"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",	/* no c= */
	"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n"
	    "a=rtcp:x\r\n",
	"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n"
	    "a=rtcp:4001 IN IP4\r\n",
	"v=0\r\nX=1\r\n",
	"v=0\r\n\r\ns=-\r\n",			/* an empty line */
	"v=0\r\ns=a\rb\r\n",			/* a bare CR */
	"v=0\r\no=- 1 IN IP4 1.2.3.4\r\n",	/* o= short */
};

START_TEST(malformed)
{
	struct sdp	 sd;
	char		 err[128];
	size_t		 i;

	for (i = 0; i < sizeof(bad_sdp) / sizeof(bad_sdp[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(sdp_parse(&sd, body_of(bad_sdp[i]), err,
		    sizeof(err)) == -1, "bad SDP %zu taken", i);
		ck_assert_msg(strncmp(err, "SDP", 3) == 0, "%zu: no reason",
		    i);
	}
	/* A NUL inside. */
	ck_assert_int_eq(sdp_parse(&sd, (struct slice){ "v=0\r\ns=\0\r\n", 9 },
	    err, sizeof(err)), -1);
}
END_TEST

START_TEST(too_many_media)
{
	struct sdp	 sd;
	struct buf	 b;
	char		 err[128];
	unsigned	 i;

	buf_init(&b, 512);
	buf_adds(&b, "v=0\r\nc=IN IP4 1.2.3.4\r\n");
	for (i = 0; i < SDP_MAX_MEDIA; i++)
		buf_adds(&b, "m=audio 4000 RTP/AVP 0\r\n");
	ck_assert_int_eq(sdp_parse(&sd, (struct slice){ b.p, b.len }, err,
	    sizeof(err)), 0);
	buf_adds(&b, "m=audio 4000 RTP/AVP 0\r\n");
	ck_assert_int_eq(sdp_parse(&sd, (struct slice){ b.p, b.len }, err,
	    sizeof(err)), -1);
	buf_cleanup(&b);
}
END_TEST

static bool
private4(const char *a)
{
	struct sdp_conn	c = { { a, strlen(a) }, 4, true };

	return (sdp_addr_private(&c));
}

static bool
private6(const char *a)
{
	struct sdp_conn	c = { { a, strlen(a) }, 6, true };

	return (sdp_addr_private(&c));
}

START_TEST(private_addresses)
{
	struct sdp_conn	name = { { "pbx.lan", 7 }, 4, false };

	ck_assert(private4("10.0.0.1"));
	ck_assert(private4("10.255.255.255"));
	ck_assert(private4("172.16.0.1"));
	ck_assert(private4("172.31.255.255"));
	ck_assert(!private4("172.15.255.255"));
	ck_assert(!private4("172.32.0.1"));
	ck_assert(private4("192.168.0.1"));
	ck_assert(!private4("192.169.0.1"));
	ck_assert(private4("100.64.0.1"));
	ck_assert(private4("100.127.255.255"));
	ck_assert(!private4("100.128.0.1"));
	ck_assert(!private4("100.63.255.255"));
	ck_assert(private4("169.254.1.1"));
	ck_assert(!private4("192.0.2.1"));
	ck_assert(!private4("8.8.8.8"));
	ck_assert(!private4("127.0.0.1"));
	ck_assert(!private4("0.0.0.0"));	/* hold, not NAT */
	ck_assert(!private4("10.0.0"));		/* not an address */
	ck_assert(private6("fd00::1"));
	ck_assert(private6("fc12::1"));
	ck_assert(private6("fe80::1"));
	ck_assert(private6("febf::1"));
	ck_assert(!private6("fec0::1"));
	ck_assert(!private6("2001:db8::1"));
	ck_assert(!private6("::1"));
	ck_assert(!sdp_addr_private(&name));
}
END_TEST

/* Only media in use count: a disabled stream's private address does not. */
START_TEST(private_media)
{
	struct sdp	 sd;
	char		 err[128];

	ck_assert_int_eq(sdp_parse(&sd, body_of("v=0\r\nc=IN IP4 192.0.2.1\r\n"
	    "m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n"
	    "c=IN IP4 10.0.0.1\r\n"), err, sizeof(err)), 0);
	ck_assert(!sdp_private(&sd));
	ck_assert_int_eq(sdp_parse(&sd, body_of("v=0\r\nc=IN IP4 192.0.2.1\r\n"
	    "m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 10.0.0.1\r\n"), err,
	    sizeof(err)), 0);
	ck_assert(sdp_private(&sd));
}
END_TEST

START_TEST(find_body)
{
	struct sipmsg	*m;
	struct slice	 b;
	char		*raw;

	raw = invite("Content-Type: Application/SDP ; x=1\r\n"
	    "Content-Length: 10\r\n", "v=0\r\ns=-\r\n");
	m = parse(raw);
	ck_assert_int_eq(sdp_body(m, &b), SDP_BODY_SDP);
	ck_assert_slice_eq(b, "v=0\r\ns=-\r\n");
	sipmsg_free(m);
	free(raw);
	raw = invite("Content-Type: multipart/mixed;boundary=x\r\n"
	    "Content-Length: 3\r\n", "abc");
	m = parse(raw);
	ck_assert_int_eq(sdp_body(m, &b), SDP_BODY_OTHER);
	sipmsg_free(m);
	free(raw);
	raw = invite("Content-Length: 3\r\n", "abc");	/* no type */
	m = parse(raw);
	ck_assert_int_eq(sdp_body(m, &b), SDP_BODY_OTHER);
	sipmsg_free(m);
	free(raw);
	raw = invite("Content-Type: application/sdp\r\n"
	    "Content-Length: 0\r\n", "");
	m = parse(raw);
	ck_assert_int_eq(sdp_body(m, &b), SDP_BODY_NONE);
	sipmsg_free(m);
	free(raw);
}
END_TEST

/* The new message parses, with the new body and a Content-Length to match. */
static struct sipmsg *
replaced(const char *raw, const char *body)
{
	struct sipmsg	*m = parse(raw), *n;
	struct buf	 out;
	char		 err[128];

	buf_init(&out, 64);
	ck_assert_int_eq(sdp_replace_body(m, body_of(body), &out, err,
	    sizeof(err)), 0);
	n = parse_bytes(out.p, out.len, 0);
	ck_assert_uint_eq(n->content_length, strlen(body));
	ck_assert_uint_eq(n->body_len, strlen(body));
	ck_assert(memcmp(n->buf + n->body_off, body, n->body_len) == 0);
	ck_assert_uint_eq(n->hcount[SH_CONTENT_LENGTH], 1);
	ck_assert_slice_eq(n->callid, "a84b4c76e66710@pc33.example.com");
	sipmsg_free(m);
	buf_cleanup(&out);
	return (n);
}

START_TEST(replace_body)
{
	static const char	*nb = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
				    "c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
				    "m=audio 30000 RTP/AVP 0\r\n";
	struct sipmsg		*n;
	char			*raw, cl[128];

	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n"
	    "Content-Type: application/sdp\r\n", strlen(OFFER));
	/* Content-Length in the middle, compact l: form, several. */
	raw = invite(cl, OFFER);
	n = replaced(raw, nb);
	ck_assert_uint_eq(strlen(nb), 88);
	ck_assert_ptr_nonnull(strstr(n->buf, "Contact: <sip:alice@192.0.2.1>"
	    "\r\nContent-Length: 88\r\nContent-Type: application/sdp\r\n"
	    "\r\nv=0"));
	sipmsg_free(n);
	free(raw);
	snprintf(cl, sizeof(cl), "l: %zu\r\nSubject: x\r\n"
	    "c: application/sdp\r\n", strlen(OFFER));
	raw = invite(cl, OFFER);
	n = replaced(raw, nb);
	ck_assert_ptr_nonnull(strstr(n->buf, ">\r\nContent-Length: 88\r\n"
	    "Subject: x\r\nc: application/sdp\r\n\r\n"));
	ck_assert_ptr_null(strstr(n->buf, "l: "));
	ck_assert_ptr_null(strstr(n->buf, "Content-Type"));
	sipmsg_free(n);
	free(raw);
	/* No Content-Length at all (UDP): one is added. */
	raw = invite("", OFFER);
	n = replaced(raw, nb);
	sipmsg_free(n);
	free(raw);
	/* A body that grows and one that shrinks to nothing. */
	raw = invite(cl, OFFER);
	n = replaced(raw, OFFER OFFER);
	sipmsg_free(n);
	n = replaced(raw, "");
	ck_assert_ptr_nonnull(strstr(n->buf, "Content-Length: 0\r\n"));
	sipmsg_free(n);
	free(raw);
}
END_TEST

/* Into a message without a body or a Content-Type: both are added. */
START_TEST(replace_adds_type)
{
	struct sipmsg	*n;
	char		*raw;

	raw = invite("Content-Length: 0\r\n", "");
	n = replaced(raw, "v=0\r\n");
	ck_assert_ptr_nonnull(strstr(n->buf,
	    "Content-Type: application/sdp\r\n"));
	sipmsg_free(n);
	free(raw);
}
END_TEST

int
main(void)
{
	check_add(check_case("read"), read_offer, read_lf, malformed,
	    too_many_media);
	check_add(check_case("private"), private_addresses, private_media);
	check_add(check_case("body"), find_body, replace_body,
	    replace_adds_type);
	return (check_run("sdp"));
}
