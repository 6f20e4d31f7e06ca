/* Unit tests: sipmsg.c (parsing, checks, header helpers), sipbuild.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <osipparser2/osip_parser.h>

#include "buf.h"
#include "check_util.h"
#include "sipbuild.h"
#include "sipmsg.h"

static char	err[256];

#define INVITE_MSG							\
	"INVITE sip:bob@example.com SIP/2.0\r\n"			\
	"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK776asdhds;rport\r\n" \
	"Max-Forwards: 70\r\n"						\
	"To: Bob <sip:bob@example.com>\r\n"				\
	"From: Alice <sip:alice@example.org>;tag=1928301774\r\n"	\
	"Call-ID: a84b4c76e66710@pc33.example.org\r\n"			\
	"CSeq: 314159 INVITE\r\n"					\
	"Contact: <sip:alice@192.0.2.1:5062>\r\n"			\
	"Content-Type: application/sdp\r\n"				\
	"Content-Length: 4\r\n"						\
	"\r\n"								\
	"v=0\r\n"

START_TEST(parse_invite_fields)
{
	struct sipmsg	*m = parse(INVITE_MSG);

	ck_assert(m->request);
	ck_assert_int_eq(m->method, SM_INVITE);
	ck_assert_slice_eq(m->method_s, "INVITE");
	ck_assert_slice_eq(m->ruri, "sip:bob@example.com");
	ck_assert_slice_eq(m->version, "SIP/2.0");
	ck_assert_slice_eq(m->callid, "a84b4c76e66710@pc33.example.org");
	ck_assert_slice_eq(m->from_tag, "1928301774");
	ck_assert_int_eq(m->to_tag.len, 0);
	ck_assert_uint_eq(m->cseq, 314159);
	ck_assert_slice_eq(m->cseq_method, "INVITE");
	ck_assert_slice_eq(m->via,
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK776asdhds;rport");
	ck_assert_slice_eq(m->via_proto, "UDP");
	ck_assert_slice_eq(m->via_host, "192.0.2.1");
	ck_assert_uint_eq(m->via_port, 5062);
	ck_assert_slice_eq(m->branch, "z9hG4bK776asdhds");
	ck_assert(m->via_rport);
	ck_assert(sipmsg_magic(m));
	ck_assert_int_eq(m->max_forwards, 70);
	ck_assert_uint_eq(m->content_length, 4);
	sipmsg_free(m);
}
END_TEST

/* RFC 3261 18.3: bytes past Content-Length are dropped. */
START_TEST(parse_body_shorter_content_length)
{
	struct sipmsg	*m = parse(INVITE_MSG);

	ck_assert_uint_eq(m->body_len, 4);
	ck_assert_mem_eq(m->buf + m->body_off, "v=0\r", 4);
	ck_assert_uint_eq(m->body_off + 5, m->len);
	sipmsg_free(m);
}
END_TEST

/*
 * A response's bytes share its allocation and a request's do not: taking a
 * request's bytes keeps their address (what the proxy took from them
 * points into them), taking a response's copies them.
 */
START_TEST(take_buf)
{
	const char	*req = "BYE sip:bob@192.0.2.2 SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKt1\r\n"
	    "To: <sip:bob@example.com>;tag=b0b\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: take-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
	    "Content-Length: 0\r\n\r\n";
	const char	*resp = "SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKt1\r\n"
	    "To: <sip:bob@example.com>;tag=b0b\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: take-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
	struct sipmsg	*m = parse(req);
	const char	*callid = m->callid.p;
	char		*b;

	ck_assert(m->request);
	ck_assert_ptr_ne(m->buf, m->inl);
	b = sipmsg_take_buf(m);
	ck_assert_ptr_null(m->buf);
	sipmsg_free(m);
	ck_assert(callid >= b && callid < b + strlen(req));
	ck_assert_str_eq(b, req);
	free(b);

	m = parse(resp);
	ck_assert(!m->request);
	ck_assert_ptr_eq(m->buf, m->inl);
	ck_assert_slice_eq(m->callid, "take-1");
	b = sipmsg_take_buf(m);
	ck_assert_ptr_ne(b, m->inl);
	sipmsg_free(m);
	ck_assert_str_eq(b, resp);
	free(b);
}
END_TEST

START_TEST(parse_response)
{
	struct sipmsg	*m = parse(
	    "SIP/2.0 486 Busy Here\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1\r\n"
	    "To: <sip:bob@example.com>;tag=b0b\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: resp-1\r\n"
	    "CSeq: 9 INVITE\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n");

	ck_assert(!m->request);
	ck_assert_int_eq(m->status, 486);
	ck_assert_slice_eq(m->reason, "Busy Here");
	ck_assert_int_eq(m->method, SM_INVITE);
	ck_assert_slice_eq(m->to_tag, "b0b");
	ck_assert_slice_eq(m->from_tag, "a11ce");
	ck_assert_slice_eq(m->branch, "z9hG4bKr1");
	ck_assert(!m->via_rport);
	ck_assert_int_eq(m->max_forwards, -1);
	sipmsg_free(m);

	/*
	 * A To that is only a scheme and a colon: its To would go into the
	 * ACK we send for a non-2xx, which nobody can parse (fuzzer).
	 */
	m = parse_as("SIP/2.0 487 Request Terminated\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1\r\n"
	    "To: o:\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: resp-1\r\n"
	    "CSeq: 9 INVITE\r\n"
	    "\r\n", -1);
	ck_assert_str_eq(parse_err, "Bad To header");
	sipmsg_free(m);

	/* The same for a To libosip2 refuses: the display name "o:". */
#define RESP_487(to)							\
	"SIP/2.0 487 Request Terminated\r\n"				\
	"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1\r\n"	\
	"To: " to "\r\n"						\
	"From: <sip:alice@example.org>;tag=a11ce\r\n"			\
	"Call-ID: resp-1\r\n"						\
	"CSeq: 9 INVITE\r\n"						\
	"\r\n"
	sipmsg_free(parse_as(RESP_487("o: <sip:bob@example.com>;tag=1"), -1));
	ck_assert_str_eq(parse_err, "Bad To header");
	/* Tokens, a quoted string, a folded line: fine. */
	sipmsg_free(parse(RESP_487("Bob B. <sip:bob@example.com>;tag=1")));
	sipmsg_free(parse(RESP_487("\"o: \" <sip:bob@example.com>;tag=1")));
	sipmsg_free(parse(RESP_487("Bob\r\n <sip:bob@example.com>;tag=1")));
#undef RESP_487
	/* A Via line without a value is a bad Via (fuzzer: relayed empty). */
	sipmsg_free(parse_as("SIP/2.0 180 Ringing\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1\r\n"
	    "Via: \r\n"
	    "To: <sip:bob@example.com>;tag=1\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: resp-1\r\n"
	    "CSeq: 9 INVITE\r\n"
	    "\r\n", -1));
	sipmsg_free(parse_as("OPTIONS sip:bob@example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1\r\n"
	    "v: ,\r\n"
	    "To: <sip:bob@example.com>\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: req-1\r\n"
	    "CSeq: 9 OPTIONS\r\n"
	    "\r\n", 400));
	ck_assert_str_eq(parse_err, "Bad Via header");
	/*
	 * A provisional is relayed upstream with its To: the same rule,
	 * whatever the status (it once held for non-2xx finals only).
	 */
	sipmsg_free(parse_as("SIP/2.0 180 Ringing\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1\r\n"
	    "To: o: <sip:bob@example.com>;tag=1\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: resp-1\r\n"
	    "CSeq: 9 INVITE\r\n"
	    "\r\n", -1));
	ck_assert_str_eq(parse_err, "Bad To header");
}
END_TEST

START_TEST(parse_compact_headers)
{
	struct sipmsg		*m = parse(
	    "OPTIONS sip:carol@example.com SIP/2.0\r\n"
	    "v: SIP/2.0/UDP host.example.org;branch=z9hG4bKcmp\r\n"
	    "f: <sip:a@example.org>;tag=ft\r\n"
	    "t: <sip:carol@example.com>;tag=tt\r\n"
	    "i: cid-compact\r\n"
	    "CSeq: 7 OPTIONS\r\n"
	    "l: 0\r\n"
	    "\r\n");
	const struct sip_hline	*h;

	ck_assert_int_eq(m->method, SM_OPTIONS);
	ck_assert_slice_eq(m->via_host, "host.example.org");
	ck_assert_uint_eq(m->via_port, 0);
	ck_assert_slice_eq(m->branch, "z9hG4bKcmp");
	ck_assert_slice_eq(m->from_tag, "ft");
	ck_assert_slice_eq(m->to_tag, "tt");
	ck_assert_slice_eq(m->callid, "cid-compact");
	ck_assert_uint_eq(m->content_length, 0);
	ck_assert_uint_eq(m->body_len, 0);
	ck_assert_int_eq(m->max_forwards, -1);
	ck_assert_ptr_nonnull(h = sipmsg_hdr(m, SH_CONTENT_LENGTH));
	ck_assert_slice_eq(sipmsg_hvalue(m, h), "0");
	ck_assert_ptr_nonnull(h = sipmsg_hdr(m, SH_FROM));
	ck_assert_slice_eq(sipmsg_hvalue(m, h), "<sip:a@example.org>;tag=ft");
	sipmsg_free(m);
}
END_TEST

START_TEST(parse_folded_headers)
{
	struct sipmsg		*m = parse(
	    "BYE sip:bob@192.0.2.4 SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.7:5070\r\n"
	    " ;branch=z9hG4bKfold\r\n"
	    "From: Alice\r\n"
	    "\t<sip:alice@example.org>;tag=88\r\n"
	    "To: <sip:bob@example.com>;tag=99\r\n"
	    "Subject: I know you're there,\r\n"
	    "   pick up the phone\r\n"
	    "Call-ID: fold-1\r\n"
	    "CSeq: 2 BYE\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n");
	const struct sip_hline	*h;
	unsigned		 i;

	ck_assert_int_eq(m->method, SM_BYE);
	ck_assert_slice_eq(m->via_host, "192.0.2.7");
	ck_assert_uint_eq(m->via_port, 5070);
	ck_assert_slice_eq(m->branch, "z9hG4bKfold");
	ck_assert_slice_eq(m->from_tag, "88");
	ck_assert_slice_eq(m->to_tag, "99");
	ck_assert_slice_eq(m->callid, "fold-1");
	ck_assert_ptr_nonnull(h = sipmsg_hdr(m, SH_FROM));
	ck_assert_slice_eq(sipmsg_hvalue(m, h),
	    "Alice\r\n\t<sip:alice@example.org>;tag=88");
	/* The folded line is one header: its line covers both lines. */
	ck_assert_uint_eq(h->len, strlen("From: Alice\r\n"
	    "\t<sip:alice@example.org>;tag=88\r\n"));
	for (i = 0; i < m->nh; i++)
		if (m->h[i].id == SH_OTHER)
			break;
	ck_assert_uint_lt(i, m->nh);
	ck_assert_slice_eq(sipmsg_hvalue(m, &m->h[i]),
	    "I know you're there,\r\n   pick up the phone");
	ck_assert_uint_eq(m->nh, 7);
	sipmsg_free(m);
}
END_TEST

START_TEST(parse_via_multi_values)
{
	struct sipmsg	*m = parse(
	    "INVITE sip:bob@example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1 , "
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKz9\r\n"
	    "Max-Forwards: 69\r\n"
	    "To: <sip:bob@example.com>\r\n"
	    "From: <sip:alice@example.org>;tag=1\r\n"
	    "Call-ID: multi-via\r\n"
	    "CSeq: 1 INVITE\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n");
	struct slice	 v[4];

	ck_assert_slice_eq(m->via,
	    "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1");
	ck_assert_slice_eq(m->via_host, "proxy.example.com");
	ck_assert_uint_eq(m->via_port, 0);
	ck_assert_slice_eq(m->branch, "z9hG4bKp1");
	ck_assert_uint_eq(sipmsg_values(m, SH_VIA, v, 4), 3);
	ck_assert_slice_eq(v[1], "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1");
	ck_assert_slice_eq(v[2], "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKz9");
	/* Fewer slots than values: the count is still right. */
	ck_assert_uint_eq(sipmsg_values(m, SH_VIA, v, 1), 3);
	ck_assert_slice_eq(v[0],
	    "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1");
	/* Counting only; NULL + 0 was computed (UBSan, fuzzer). */
	ck_assert_uint_eq(sipmsg_values(m, SH_VIA, NULL, 0), 3);
	sipmsg_free(m);
}
END_TEST

START_TEST(parse_via_ipv6)
{
	struct sipmsg	*m = parse(
	    "MESSAGE sip:bob@[2001:db8::2] SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP [2001:db8::1]:5070;rport;branch=z9hG4bKv6\r\n"
	    "To: <sip:bob@[2001:db8::2]>\r\n"
	    "From: <sip:alice@[2001:db8::1]>;tag=six\r\n"
	    "Call-ID: v6\r\n"
	    "CSeq: 3 MESSAGE\r\n"
	    "Content-Length: 2\r\n"
	    "\r\n"
	    "hi");

	ck_assert_int_eq(m->method, SM_MESSAGE);
	ck_assert_slice_eq(m->via_host, "[2001:db8::1]");
	ck_assert_uint_eq(m->via_port, 5070);
	ck_assert_slice_eq(m->branch, "z9hG4bKv6");
	ck_assert(m->via_rport);
	ck_assert_uint_eq(m->body_len, 2);
	sipmsg_free(m);
}
END_TEST

/* Header names are case-insensitive; LWS is allowed inside Via. */
START_TEST(parse_case_and_lws)
{
	struct sipmsg	*m = parse(
	    "INVITE sip:bob@example.com SIP/2.0\r\n"
	    "via: SIP / 2.0 / UDP 192.0.2.1 : 5070 ; branch = z9hG4bKlws\r\n"
	    "TO: <sip:bob@example.com>\r\n"
	    "from: <sip:alice@example.org>;TAG=7\r\n"
	    "CALL-ID: case-1\r\n"
	    "cseq: 2147483647 INVITE\r\n"
	    "max-forwards: 300\r\n"
	    "CONTENT-LENGTH: 0\r\n"
	    "\r\n");

	ck_assert_slice_eq(m->via_proto, "UDP");
	ck_assert_slice_eq(m->via_host, "192.0.2.1");
	ck_assert_uint_eq(m->via_port, 5070);
	ck_assert_slice_eq(m->branch, "z9hG4bKlws");
	ck_assert_slice_eq(m->from_tag, "7");
	ck_assert_slice_eq(m->callid, "case-1");
	ck_assert_uint_eq(m->cseq, 2147483647U);
	ck_assert_int_eq(m->max_forwards, 255);	/* clamped */
	ck_assert_uint_eq(m->content_length, 0);
	sipmsg_free(m);
}
END_TEST

/* Error cases: the message, the code, the reason text (NULL: any). */
static const struct {
	const char	*text;
	int		 code;
	const char	*reason;
} bad_msgs[] = {
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Missing Call-ID header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Missing From header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Missing To header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Missing CSeq header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: one INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Bad CSeq header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Bad CSeq header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 2147483648 INVITE\r\n"	/* RFC 3261 8.1.1.5: < 2**31 */
	  "Content-Length: 0\r\n\r\n", 400, "Bad CSeq header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 BYE\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "CSeq method mismatch" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 invite\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "CSeq method mismatch" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 10\r\n\r\nv=0\r\n",
	  400, "Content-Length mismatch (larger than body)" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n"
	  "l: 0\r\n\r\n", 400, "Multiple Content-Length headers" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "Call-ID: c2\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", 400, "Multiple Call-ID headers" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", -1, "Missing or bad Via header" },
	{ "INVITE sip:b@example.com SIP/2.0\r\n"
	  "Via: garbage\r\n"
	  "To: <sip:b@example.com>\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "Call-ID: c1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", -1, "Missing or bad Via header" },
	/* A response that cannot be parsed is dropped, never answered. */
	{ "SIP/2.0 200 OK\r\n"
	  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
	  "To: <sip:b@example.com>;tag=2\r\n"
	  "From: <sip:a@example.org>;tag=1\r\n"
	  "CSeq: 1 INVITE\r\n"
	  "Content-Length: 0\r\n\r\n", -1, "Missing Call-ID header" },
	{ "hello world\r\n\r\n", -1, NULL },
	{ "\x01\x02\x03 \xff\xfe \r\n\r\n", -1, NULL },
	{ "\r\n", -1, NULL },
	{ "", -1, NULL },
};

START_TEST(parse_errors)
{
	const char	*text = bad_msgs[_i].text;
	struct sipmsg	*m = parse_as(text, bad_msgs[_i].code);

	if (bad_msgs[_i].reason != NULL)
		ck_assert_str_eq(parse_err, bad_msgs[_i].reason);
	sipmsg_free(m);
}
END_TEST

/* Scanned only: the steps of sipmsg_parse(), if any, are the test's. */
static struct sipmsg *
scanned(const char *text)
{
	struct sipmsg	*m = sipmsg_new(text, strlen(text));

	ck_assert_int_eq(sipmsg_scan(m, err, sizeof(err)), 0);
	err[0] = '\0';
	return (m);
}

/*
 * A response from downstream, as the 407 of a forked INVITE would come
 * (fuzz input regress-merged-challenge-nul): call is its Call-ID, to its
 * To, more are header lines before Content-Length, end what follows that.
 */
#define RESP_407(call, to, more, end)					\
	"SIP/2.0 407 Proxy Authentication Required\r\n"			\
	"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"		\
	"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKup1\r\n"		\
	"To: " to "\r\n"						\
	"From: <sip:alice@example.test>;tag=a1\r\n"			\
	"Call-ID: " call "\r\n"						\
	"CSeq: 1 INVITE\r\n"						\
	more								\
	"Content-Length: 0\r\n" end
#define TO_OK	"<sip:duo@example.test>;tag=b2"
#define RESP_180(to)							\
	"SIP/2.0 180 Ringing\r\n"					\
	"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"		\
	"To: " to "\r\nFrom: <sip:alice@example.test>;tag=a1\r\n"	\
	"Call-ID: r6\r\nCSeq: 1 INVITE\r\n\r\n"
#define BYTES(s)	s, sizeof(s) - 1	/* NUL bytes included */

/* Responses refused whole: dropped, never relayed, never ACKed. */
static const struct {
	const char	*text;
	size_t		 len;
	const char	*reason;
} bad_resps[] = {
	/* The fuzzer's: a NUL in a challenge that is merged (16.7). */
	{ BYTES(RESP_407("r6", TO_OK, "Proxy-Authenticate: Diges\0t "
	    "realm=\"b\", nonce=\"2\"\r\n", "\r\n")),
	    "NUL byte in a challenge" },
	{ BYTES(RESP_407("r6", TO_OK, "WWW-Authenticate: Digest realm=\"a\", "
	    "\x06\0\x92\0nonce=\"1\"\r\n", "\r\n")),
	    "NUL byte in a challenge" },
	/* Even in a quoted-pair, which RFC 3261 25.1 allows elsewhere. */
	{ BYTES(RESP_407("r6", TO_OK, "Proxy-Authenticate: Digest "
	    "realm=\"\\\0\"\r\n", "\r\n")), "NUL byte in a challenge" },
	/* Elsewhere, outside a quoted-pair; at the datagram's end too. */
	{ BYTES(RESP_407("r6", TO_OK, "", "X: \0")),
	    "NUL byte in the headers" },
	{ BYTES(RESP_407("r6", TO_OK, "Subject: \"\0\"\r\n", "\r\n")),
	    "NUL byte in the headers" },
	{ BYTES(RESP_407("r6", TO_OK, "Subject: \\\0\r\n", "\r\n")),
	    "NUL byte in the headers" },
	/* The fuzzer's 302: a To that starts with NUL bytes. */
	{ BYTES(RESP_407("r6", "\0\0\0\0007\x01\xb9\xe0 " TO_OK, "", "\r\n")),
	    "NUL byte in the headers" },
	/* Framing: every line ends in CRLF (RFC 3261 7). */
	{ BYTES(RESP_407("r6", TO_OK, "X-A: a\nX-B: b\r\n", "\r\n")),
	    "Bare LF in the headers" },
	{ BYTES(RESP_407("r6", TO_OK, "Subject: a\n b\r\n", "\r\n")),
	    "Bare LF in the headers" },
	{ BYTES(RESP_407("r6", TO_OK, "", "\n")), "Bare LF in the headers" },
	{ BYTES(RESP_407("r6", TO_OK, "X-A: a\rX-B: b\r\n", "\r\n")),
	    "Bare CR in the headers" },
	{ BYTES("SIP/2.0 180 Ringing\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"
	    "To: " TO_OK "\r\nFrom: <sip:a@example.test>;tag=a1\r\n"
	    "Call-ID: r6\r\nCSeq: 1 INVITE\r\n\r\n"),
	    "Bare LF in the headers" },
	/* Call-ID = word [ "@" word ] (RFC 3261 25.1). */
	{ BYTES(RESP_407("r 6", TO_OK, "", "\r\n")), "Bad Call-ID header" },
	{ BYTES(RESP_407("r6@a@b", TO_OK, "", "\r\n")),
	    "Bad Call-ID header" },
	{ BYTES(RESP_407("@r6", TO_OK, "", "\r\n")), "Bad Call-ID header" },
	{ BYTES(RESP_407("r6@", TO_OK, "", "\r\n")), "Bad Call-ID header" },
	{ BYTES(RESP_407("r\x01", TO_OK, "", "\r\n")),
	    "Bad Call-ID header" },
	/* To and From: what libosip2 takes, whatever the status. */
	{ BYTES(RESP_407("r6", "\x01\xb9\xe0 " TO_OK, "", "\r\n")),
	    "Bad To header" },
	{ BYTES(RESP_407("r6", "o: " TO_OK, "", "\r\n")), "Bad To header" },
	{ BYTES(RESP_407("r6", "<sip:duo@example.test", "", "\r\n")),
	    "Bad To header" },
	/* A provisional, whose To no ACK takes: RFC 3261 25.1 still. */
	{ BYTES(RESP_180("<sip:duo@example.test>;tag=b2 x")), "Bad To header" },
	{ BYTES(RESP_180("<sip:duo@example.test> <sip:x@y>")),
	    "Bad To header" },
	{ BYTES(RESP_180("x@y <sip:duo@example.test>")), "Bad To header" },
	{ BYTES(RESP_180("\"a\x01\" <sip:duo@example.test>")),
	    "Bad To header" },
	{ BYTES(RESP_180("\"a\\\r\n b\" <sip:duo@example.test>")),
	    "Bad To header" },
	{ BYTES(RESP_180("\"a\" b <sip:duo@example.test>")), "Bad To header" },
	{ BYTES(RESP_180("sip:duo@example.test, sip:x@example.test")),
	    "Bad To header" },
	{ BYTES(RESP_180("<sip:duo@example.test>;=b2")), "Bad To header" },
	{ BYTES(RESP_180("<sip:duo@example.test>;tag=")), "Bad To header" },
	{ BYTES(RESP_180("<sip:duo@example.test>;tag=\"b2")),
	    "Bad To header" },
	{ BYTES("SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"
	    "To: " TO_OK "\r\nFrom: a b: <sip:a@example.test>;tag=a1\r\n"
	    "Call-ID: r6\r\nCSeq: 1 INVITE\r\n\r\n"), "Bad From header" },
	{ BYTES("SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"
	    "To: " TO_OK "\r\nFrom: a\r\n"
	    "Call-ID: r6\r\nCSeq: 1 INVITE\r\n\r\n"), "Bad From header" },
	{ BYTES("SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"
	    "To: " TO_OK "\r\nFrom: <sip:a@example.test>;tag=a1\r\n"
	    "Call-ID: r6\r\nCSeq: one INVITE\r\n\r\n"), "Bad CSeq header" },
	{ BYTES("SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=\"z9\r\n"
	    "To: " TO_OK "\r\nFrom: <sip:a@example.test>;tag=a1\r\n"
	    "Call-ID: r6\r\nCSeq: 1 INVITE\r\n\r\n"), "Bad Via header" },
};

START_TEST(response_refused)
{
	struct sipmsg	*m = parse_bytes(bad_resps[_i].text, bad_resps[_i].len,
			    -1);

	ck_assert_str_eq(parse_err, bad_resps[_i].reason);
	ck_assert(!m->parsed);
	sipmsg_free(m);
}
END_TEST

/* What a response may carry: tolerated, and relayed as it came. */
START_TEST(response_tolerated)
{
	static const char	body_nul[] = "SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb2\r\n"
	    "To: " TO_OK "\r\nFrom: <sip:a@example.test>;tag=a1\r\n"
	    "Call-ID: r6\r\nCSeq: 1 INVITE\r\nContent-Type: a/b\r\n"
	    "Content-Length: 3\r\n\r\na\0b";
	struct sipmsg		*m;

	/* A body is not ours to judge: a NUL there is fine. */
	m = parse_bytes(body_nul, sizeof(body_nul) - 1, 0);
	ck_assert(m->parsed);
	ck_assert_uint_eq(m->body_len, 3);
	sipmsg_free(m);
	/* No empty line at the end of the datagram (RFC 3261 18.3). */
	sipmsg_free(parse(RESP_407("r6", TO_OK, "", "")));
	sipmsg_free(parse(RESP_407("r6", TO_OK, "X: 1", "")));
	/* Folding, a quoted display name, every word character. */
	sipmsg_free(parse(RESP_407("r6",
	    "Duo\r\n <sip:duo@example.test>;tag=b2", "Subject: a\r\n\tb\r\n",
	    "\r\n")));
	sipmsg_free(parse(RESP_407("r6", "\"o: \\\"x\\\"\" " TO_OK, "",
	    "\r\n")));
	sipmsg_free(parse(RESP_407("a-.!%*_+`'~()<>:\\\"/[]?{}@x", TO_OK, "",
	    "\r\n")));
	/* Display names: tokens and LWS, a quoted string; params after. */
	sipmsg_free(parse(RESP_180("Bob\tB. <sip:duo@example.test> ;tag=b2")));
	sipmsg_free(parse(RESP_180("\"B\\\"\tob\"<sip:duo@example.test>")));
	sipmsg_free(parse(RESP_180("sip:duo@example.test;tag=b2")));
	sipmsg_free(parse(RESP_180("<sip:duo@example.test>;tag=b2;lr;"
	    "x = \"a, b\" ; y=[2001:db8::1]")));
	/* Control bytes in other headers: relayed as they came. */
	sipmsg_free(parse(RESP_407("r6", TO_OK, "X: \x01\x7f\r\n", "\r\n")));
	/*
	 * A NUL in a quoted-pair (RFC 3261 25.1), as a UAS echoes the To of
	 * RFC 4475 3.1.1.2 (intmeth) into its 501: relayed.
	 */
	m = parse_bytes(BYTES(RESP_407("r6", "\"NUL:\\\0 DEL:\\\x7f\" "
	    TO_OK, "Subject: \"a\\\0b\"\r\n", "\r\n")), 0);
	ck_assert(sipmsg_addr_ok(m, SH_TO));
	sipmsg_free(m);
}
END_TEST

/* The From or To test that the ACK builder and the parser share. */
START_TEST(addr_ok_cases)
{
	static const struct {
		const char	*to;
		bool		 ok;
	} cases[] = {
		{ "<sip:b@x>", true }, { "sip:b@x;tag=1", true },
		{ "Bob <sip:b@x>;tag=1", true }, { "\"o: \" <sip:b@x>", true },
		{ "Bob\r\n <sip:b@x>", true }, { "", false }, { "o:", false },
		{ "o: <sip:b@x>", false }, { "\x01 <sip:b@x>", false },
	};
	char		 text[256];
	struct sipmsg	*m;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "SIP/2.0 180 Ringing\r\n"
		    "To: %s\r\nFrom: <sip:a@x>\r\n\r\n", cases[i].to);
		m = scanned(text);
		ck_assert_msg(sipmsg_addr_ok(m, SH_TO) == cases[i].ok,
		    "To: %s", cases[i].to);
		ck_assert(sipmsg_addr_ok(m, SH_FROM));
		ck_assert(!sipmsg_addr_ok(m, SH_VIA));
		sipmsg_free(m);
	}
}
END_TEST

/* Header names: any case, compact forms, and near misses. */
START_TEST(scan_header_ids)
{
	static const struct {
		const char	*name;
		enum sip_hdr_id	 id;
	} cases[] = {
		{ "Via", SH_VIA }, { "vIA", SH_VIA }, { "v", SH_VIA },
		{ "V", SH_VIA }, { "Vias", SH_OTHER }, { "Vi", SH_OTHER },
		{ "Record-Route", SH_RECORD_ROUTE }, { "record-route",
		    SH_RECORD_ROUTE }, { "Record-Routes", SH_OTHER },
		{ "Route", SH_ROUTE }, { "Max-Forwards", SH_MAX_FORWARDS },
		{ "l", SH_CONTENT_LENGTH }, { "Content-Length",
		    SH_CONTENT_LENGTH }, { "f", SH_FROM }, { "FROM", SH_FROM },
		{ "t", SH_TO }, { "to", SH_TO }, { "To2", SH_OTHER },
		{ "i", SH_CALL_ID }, { "call-id", SH_CALL_ID },
		{ "CSEQ", SH_CSEQ }, { "Proxy-Require", SH_PROXY_REQUIRE },
		{ "m", SH_CONTACT }, { "Contact", SH_CONTACT },
		{ "Reason", SH_REASON }, { "c", SH_CONTENT_TYPE },
		{ "Content-Type", SH_CONTENT_TYPE }, { "User-Agent",
		    SH_USER_AGENT }, { "WWW-Authenticate", SH_WWW_AUTHENTICATE },
		{ "Proxy-Authenticate", SH_PROXY_AUTHENTICATE },
		{ "Authorization", SH_AUTHORIZATION }, { "Proxy-Authorization",
		    SH_PROXY_AUTHORIZATION }, { "Expires", SH_EXPIRES },
		{ "Require", SH_REQUIRE }, { "k", SH_SUPPORTED },
		{ "Supported", SH_SUPPORTED }, { "Path", SH_PATH },
		{ "x", SH_OTHER }, { "e", SH_OTHER }, { "Subject", SH_OTHER },
		{ "Tath", SH_OTHER }, { "Pat", SH_OTHER }, { "7o", SH_OTHER },
	};
	char		 text[256];
	struct sipmsg	*m;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "OPTIONS sip:a@x SIP/2.0\r\n"
		    "%s: 1\r\n\r\n", cases[i].name);
		m = scanned(text);
		ck_assert_uint_eq(m->nh, 1);
		ck_assert_msg(m->h[0].id == cases[i].id, "%s: %d, want %d",
		    cases[i].name, m->h[0].id, cases[i].id);
		sipmsg_free(m);
	}
}
END_TEST

#define STEP_REQ(first, via, rest)					\
	first "\r\nVia: " via "\r\n"					\
	"To: <sip:b@example.com>\r\nFrom: <sip:a@example.org>;tag=1\r\n" \
	"Call-ID: st\r\n" rest "\r\n"

/* Each step on its own: what it fills, what it answers. */
START_TEST(parse_step_via)
{
	struct sipmsg	*m;

	m = scanned(STEP_REQ("INVITE sip:b@example.com SIP/2.0",
	    "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKs1;rport",
	    "CSeq: 1 INVITE\r\n"));
	ck_assert_int_eq(sipmsg_parse_via(m, err, sizeof(err)), 0);
	ck_assert_slice_eq(m->branch, "z9hG4bKs1");
	ck_assert_slice_eq(m->via_host, "192.0.2.1");
	ck_assert_uint_eq(m->via_port, 5070);
	ck_assert(m->via_rport);
	ck_assert_uint_eq(m->nvias, 1);
	ck_assert(!m->parsed);
	sipmsg_free(m);
	/* Via values are counted over every line (relayable or not, 16.7). */
	m = scanned(STEP_REQ("SIP/2.0 200 OK",
	    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1, SIP/2.0/UDP b;branch=z9hG4bK2"
	    "\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK3", "CSeq: 1 INVITE\r\n"));
	ck_assert_int_eq(sipmsg_parse_via(m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m->nvias, 3);
	sipmsg_free(m);
	/* branch and rport are read in the same pass as the rest. */
	{
		static const struct {
			const char	*via, *branch;
			bool		 rport;
		} cases[] = {
			{ "SIP/2.0/UDP h;rport;BRANCH = z9hG4bKa ;x", "z9hG4bKa",
			    true },
			{ "SIP/2.0/UDP h;branch=z9hG4bKa;branch=z9hG4bKb",
			    "z9hG4bKa", false },
			{ "SIP/2.0/UDP h;branchx=1;rportx;branch=z9hG4bKc",
			    "z9hG4bKc", false },
			{ "SIP/2.0/UDP h;branch=\"a;b\";rport=5", "\"a;b\"",
			    true },
			{ "SIP/2.0/UDP h;branch;x=1", "", false },
			{ "SIP/2.0/UDP h;x=\"branch=z9hG4bKq\"", "", false },
		};
		size_t	i;

		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char	text[512];

			snprintf(text, sizeof(text), STEP_REQ("INVITE "
			    "sip:b@example.com SIP/2.0", "%s",
			    "CSeq: 1 INVITE\r\n"), cases[i].via);
			m = scanned(text);
			ck_assert_int_eq(sipmsg_parse_via(m, err, sizeof(err)),
			    0);
			ck_assert_slice_eq(m->branch, cases[i].branch);
			ck_assert(m->via_rport == cases[i].rport);
			sipmsg_free(m);
		}
	}
	/* A reply address with broken params: answerable. */
	m = scanned(STEP_REQ("INVITE sip:b@example.com SIP/2.0",
	    "SIP/2.0/UDP 192.0.2.1;;", "CSeq: 1 INVITE\r\n"));
	ck_assert_int_eq(sipmsg_parse_via(m, err, sizeof(err)), 400);
	ck_assert_str_eq(err, "Bad Via header");
	ck_assert(m->via_bad);
	sipmsg_free(m);
	/* No reply address: not even a 400. */
	m = scanned(STEP_REQ("INVITE sip:b@example.com SIP/2.0",
	    "SIP/2.0/UDP", "CSeq: 1 INVITE\r\n"));
	ck_assert_int_eq(sipmsg_parse_via(m, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "Missing or bad Via header");
	sipmsg_free(m);
	/* A request line that did not scan, once the Via is known. */
	m = scanned(STEP_REQ("INVITE sip:b@example.com",
	    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1", "CSeq: 1 INVITE\r\n"));
	ck_assert(m->start_bad);
	ck_assert_int_eq(sipmsg_parse_via(m, err, sizeof(err)), 400);
	ck_assert_str_eq(err, "Bad request line");
	sipmsg_free(m);
}
END_TEST

START_TEST(parse_step_counts)
{
	static const struct {
		const char	*rest;
		const char	*reason;
	} cases[] = {
		{ "CSeq: 1 INVITE\r\n", NULL },
		{ "", "Missing CSeq header" },
		{ "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n",
		    "Multiple CSeq headers" },
		{ "CSeq: 1 INVITE\r\ni: again\r\n", "Multiple Call-ID headers" },
		{ "CSeq: 1 INVITE\r\nMax-Forwards: 1\r\nMax-Forwards: 2\r\n",
		    "Multiple Max-Forwards headers" },
		{ "CSeq: 1 INVITE\r\nl: 0\r\nContent-Length: 0\r\n",
		    "Multiple Content-Length headers" },
	};
	struct sipmsg	*m;
	size_t		 i;
	char		 text[512];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), STEP_REQ("INVITE sip:b@x SIP/2.0",
		    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1", "%s"),
		    cases[i].rest);
		m = scanned(text);
		ck_assert_int_eq(sipmsg_parse_counts(m, err, sizeof(err)),
		    cases[i].reason == NULL ? 0 : 400);
		if (cases[i].reason != NULL)
			ck_assert_str_eq(err, cases[i].reason);
		sipmsg_free(m);
	}
	/* The same for a response: no answer. */
	m = scanned("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\n"
	    "To: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
	ck_assert_int_eq(sipmsg_parse_counts(m, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "Missing From header");
	sipmsg_free(m);
}
END_TEST

START_TEST(parse_step_fields)
{
	struct sipmsg	*m;

	m = scanned(STEP_REQ("INVITE sip:b@example.com SIP/2.0",
	    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1",
	    "CSeq: 42 INVITE\r\nMax-Forwards: 300\r\nContent-Length: 2\r\n"
	    "\r\nabcd"));
	ck_assert_int_eq(sipmsg_parse_fields(m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m->cseq, 42);
	ck_assert_slice_eq(m->cseq_method, "INVITE");
	ck_assert_slice_eq(m->callid, "st");
	ck_assert_slice_eq(m->from_tag, "1");
	ck_assert_slice_eq(m->to_tag, "");
	ck_assert_int_eq(m->max_forwards, 255);		/* capped */
	ck_assert_uint_eq(m->content_length, 2);
	ck_assert_uint_eq(m->body_len, 2);		/* "ab": cut */
	sipmsg_free(m);
	m = scanned(STEP_REQ("INVITE sip:b@example.com SIP/2.0",
	    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1", "CSeq: 1 invite\r\n"));
	ck_assert_int_eq(sipmsg_parse_fields(m, err, sizeof(err)), 400);
	ck_assert_str_eq(err, "CSeq method mismatch");
	sipmsg_free(m);
	m = scanned(STEP_REQ("INVITE sip:b@example.com SIP/2.0",
	    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1",
	    "CSeq: 1 INVITE\r\nContent-Length: 9\r\n\r\nab"));
	ck_assert_int_eq(sipmsg_parse_fields(m, err, sizeof(err)), 400);
	ck_assert_str_eq(err, "Content-Length mismatch (larger than body)");
	sipmsg_free(m);
	/* A response takes its method from CSeq. */
	m = scanned("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\n"
	    "To: <sip:b@x>;tag=t\r\nFrom: <sip:a@x>\r\nCall-ID: c\r\n"
	    "CSeq: 7 BYE\r\n\r\n");
	ck_assert_int_eq(sipmsg_parse_fields(m, err, sizeof(err)), 0);
	ck_assert_int_eq(m->method, SM_BYE);
	ck_assert_slice_eq(m->to_tag, "t");
	sipmsg_free(m);
}
END_TEST

START_TEST(parse_step_request)
{
	static const struct {
		const char	*first;
		const char	*rest;
		int		 line, osip;
		const char	*reason;
	} cases[] = {
		{ "INVITE sip:b@example.com SIP/2.0", "", 0, 0, NULL },
		{ "INVITE sip:b@example.com SIP/2.1", "", 505, 0,
		    "Version Not Supported" },
		{ "INVITE tel:+123 SIP/2.0", "", 416, 0,
		    "Unsupported URI Scheme" },
		{ "INVITE :b SIP/2.0", "", 400, 0, "Bad Request-URI" },
		{ "INVITE s_p:b SIP/2.0", "", 400, 0, "Bad Request-URI" },
		{ "INVITE sip:b@example.com SIP/2.0", "Content-Type: a\r\n",
		    400, 0, "Bad Content-Type header" },
		/* libosip2's turn: a display name that is not tokens. */
		{ "INVITE sip:b@example.com SIP/2.0",
		    "Contact: o: <sip:c@x>\r\n", 0, 400, NULL },
	};
	struct sipmsg	*m;
	size_t		 i;
	char		 text[512];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s\r\nVia: SIP/2.0/UDP h;"
		    "branch=z9hG4bKs1\r\nTo: <sip:b@x>\r\nFrom: <sip:a@x>;"
		    "tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n%s\r\n",
		    cases[i].first, cases[i].rest);
		m = scanned(text);
		ck_assert_int_eq(sipmsg_parse_request_line(m, err,
		    sizeof(err)), cases[i].line);
		if (cases[i].line != 0)
			ck_assert_str_eq(err, cases[i].reason);
		else {
			ck_assert_int_eq(sipmsg_parse_fields(m, err,
			    sizeof(err)), 0);
			ck_assert_int_eq(sipmsg_parse_osip(m, err,
			    sizeof(err)), cases[i].osip);
		}
		sipmsg_free(m);
	}
	m = scanned("INVITE sip:b@example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nTo: o: <sip:b@x>\r\n"
	    "From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
	ck_assert_int_eq(sipmsg_parse_fields(m, err, sizeof(err)), 0);
	ck_assert_int_eq(sipmsg_parse_osip(m, err, sizeof(err)), 400);
	ck_assert_str_eq(err, "Malformed message");
	sipmsg_free(m);
	/* A From tag that is there must not be empty, in or out of a dialog. */
	for (i = 0; i < 2; i++) {
		snprintf(text, sizeof(text), "%s sip:b@example.com SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nTo: <sip:b@x>%s\r\n"
		    "From: <sip:a@x>;tag=\r\nCall-ID: c\r\nCSeq: 1 %s\r\n\r\n",
		    i ? "BYE" : "INVITE", i ? ";tag=2" : "", i ? "BYE" : "INVITE");
		m = sipmsg_new(text, strlen(text));
		ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), 400);
		ck_assert_str_eq(err, "Bad From tag");
		sipmsg_free(m);
	}
}
END_TEST

/*
 * libosip2 gets only the headers it judges: a value it would not parse in
 * one it ignores changes nothing, but a fold it calls malformed (a
 * continuation line of white space, then another one) does, in any
 * header.  The second failed when only the judged headers went to it.
 */
START_TEST(parse_osip_headers)
{
	static const struct {
		const char	*hdr;
		int		 want;
	} cases[] = {
		{ "Route: <<<\"\r\n", 0 },
		{ "Record-Route: ,\r\n", 0 },
		{ "Accept: a,\r\n \r\n b\r\n", 400 },
		{ "X-Long: a\r\n \r\n\tb\r\n", 400 },
		{ "X-Long: a\r\n b\r\n", 0 },
		{ "Contact: <\r\n", 400 },
	};
	struct sipmsg	*m;
	size_t		 i;
	char		 text[512];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "INVITE sip:b@example.com SIP/2.0"
		    "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\n%sTo: "
		    "<sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
		    "CSeq: 1 INVITE\r\n\r\n", cases[i].hdr);
		m = sipmsg_new(text, strlen(text));
		ck_assert_msg(sipmsg_parse(m, err, sizeof(err)) ==
		    cases[i].want, "%s: %s", cases[i].hdr, err);
		if (cases[i].want != 0)
			ck_assert_str_eq(err, "Malformed message");
		sipmsg_free(m);
	}
}
END_TEST

/*
 * The requests spared libosip2 (sipmsg_osip_plain()): the common forms
 * are; anything outside them goes to libosip2, and is answered as before
 * (tests/fuzz/osip_plain checks that libosip2 takes every plain one).
 */
START_TEST(osip_plain_cases)
{
	static const struct {
		const char	*from, *to;
		bool		 plain;
		int		 want;
	} cases[] = {
		{ "", "", true, 0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>", "Contact: sip:a@b",
		    true, 0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>",
		    "Contact: \"A\" <sip:a@b;lr>;expires=60;q=0.5", true, 0 },
		{ "To: Bob <sip:bob@example.com>", "t: Bob B <sips:bob@x>",
		    true, 0 },
		{ "INVITE sip:bob@example.com",
		    "INVITE sip:b@x:5060;user=phone", true, 0 },
		/* Outside the plain forms: libosip2 judges, as before. */
		{ "Contact: <sip:alice@192.0.2.1:5062>",
		    "Contact: <sip:a@b>;+sip.instance=\"<urn:x>\"", false, 0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>", "Contact: *", false,
		    0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>",
		    "Contact: <sip:a@b>, <sip:c@d>", false, 0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>",
		    "Contact: <sip:%61@b>", false, 0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>",
		    "Contact: <sip:a@[2001:db8::1]>", false, 0 },
		{ "Contact: <sip:alice@192.0.2.1:5062>",
		    "Contact: o: <sip:c@x>", false, 400 },
		{ "Contact: <sip:alice@192.0.2.1:5062>", "Contact: <\r\n",
		    false, 400 },
		{ "192.0.2.1:5062;", "192.0.2.1:5062 ;", false, 0 },
		{ "192.0.2.1:5062;", "[2001:db8::1]:5062;", false, 0 },
		{ "Max-Forwards: 70", "Max-Forwards:\r\n 70", false, 0 },
		{ "Max-Forwards: 70", "Max-Forwards : 70", false, 0 },
		{ "CSeq: 314159 INVITE", "CSeq: 314159  INVITE", false, 0 },
		{ "INVITE sip:bob@example.com",
		    "INVITE sip:bob@example.com?a=b", false, 0 },
	};
	char		 text[1024];
	struct sipmsg	*m;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char	*at = strstr(INVITE_MSG, cases[i].from);
		size_t		 n = (size_t)(at - INVITE_MSG);

		ck_assert_ptr_nonnull(at);
		snprintf(text, sizeof(text), "%.*s%s%s", (int)n, INVITE_MSG,
		    cases[i].to, at + strlen(cases[i].from));
		m = sipmsg_new(text, strlen(text));
		ck_assert_msg(sipmsg_parse(m, err, sizeof(err)) ==
		    cases[i].want, "%s: %s", cases[i].to, err);
		if (cases[i].want == 0) {
			ck_assert_msg(sipmsg_osip_plain(m) == cases[i].plain,
			    "%s", cases[i].to);
			ck_assert_int_eq(sipmsg_parse_osip(m, err, sizeof(err)),
			    0);
		} else
			ck_assert_str_eq(err, "Malformed message");
		sipmsg_free(m);
	}
}
END_TEST

/*
 * The scanner reads lines 16 bytes at a time: a CR outside a CRLF is
 * found wherever it stands, a CRLF or a bare LF split across two steps
 * ends its line, and a line without an end is the rest.
 */
START_TEST(scan_line_ends_everywhere)
{
	char		 text[512], pad[64];
	struct sipmsg	*m;
	size_t		 k, i;

	for (k = 0; k < 40; k++) {
		memset(pad, 'x', k);
		pad[k] = '\0';
		/* A good message, the Subject's line end at each alignment. */
		snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0"
		    "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nSubject: %s\r\n"
		    "To: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
		    "CSeq: 1 OPTIONS\r\n\r\n", pad);
		m = sipmsg_new(text, strlen(text));
		ck_assert_msg(sipmsg_parse(m, err, sizeof(err)) == 0, "%zu: %s",
		    k, err);
		ck_assert(slice_eq(sipmsg_hvalue(m, &m->h[1]), pad) || k == 0);
		ck_assert(!m->lf_bare);
		sipmsg_free(m);
		/* A bare LF there instead. */
		snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0"
		    "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nSubject: %s\n"
		    "To: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
		    "CSeq: 1 OPTIONS\r\n\r\n", pad);
		m = sipmsg_new(text, strlen(text));
		ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), 0);
		ck_assert(m->lf_bare);
		sipmsg_free(m);
		/* A CR at k in a value, or two before the CRLF. */
		for (i = 0; i < 2; i++) {
			snprintf(text, sizeof(text), "OPTIONS sip:b@x "
			    "SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1"
			    "\r\nSubject: %s\r%s\r\nTo: <sip:b@x>\r\n"
			    "From: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
			    "CSeq: 1 OPTIONS\r\n\r\n", pad, i ? "\r" : "yz");
			m = sipmsg_new(text, strlen(text));
			ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), -1);
			ck_assert_str_eq(err, "Bare CR in the headers");
			sipmsg_free(m);
		}
		/* No line end at all: the last line is the rest; a CR there. */
		snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0"
		    "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\n"
		    "To: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
		    "CSeq: 1 OPTIONS\r\nSubject: %s", pad);
		m = sipmsg_new(text, strlen(text));
		ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), 0);
		ck_assert_uint_eq(m->hdr_end, strlen(text));
		sipmsg_free(m);
		strcat(text, "\r");
		m = sipmsg_new(text, strlen(text));
		ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), -1);
		ck_assert_str_eq(err, "Bare CR in the headers");
		sipmsg_free(m);
	}
}
END_TEST

/* More header lines than struct sipmsg holds: the index goes on. */
START_TEST(scan_many_headers)
{
	struct sipmsg	*m;
	struct slice	 v[40];
	struct buf	 b;
	int		 i;

	buf_init(&b, 2048);
	buf_adds(&b, "INVITE sip:b@example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP h;branch=z9hG4bKs1\r\n");
	for (i = 0; i < 3 * SIPMSG_HINLINE; i++) {
		buf_addf(&b, "X-%d: %d\r\n", i, i);
		if (i % 10 == 9)
			buf_addf(&b, "Route: <sip:r%d@x;lr>\r\n", i);
	}
	buf_adds(&b, "To: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\n"
	    "Call-ID: c\r\nCSeq: 1 INVITE\r\nv: SIP/2.0/UDP h2\r\n\r\n");
	m = parse_bytes(b.p, b.len, 0);
	ck_assert_uint_eq(m->nh, 3 * SIPMSG_HINLINE + 4 + 6);
	ck_assert_ptr_ne(m->h, m->hin);
	ck_assert_uint_eq(m->nvias, 2);
	ck_assert_uint_eq(sipmsg_values(m, SH_ROUTE, v, 40), 4);
	ck_assert(slice_eq(v[3], "<sip:r39@x;lr>"));
	ck_assert(slice_eq(sipmsg_hvalue(m, sipmsg_hdr(m, SH_ROUTE)),
	    "<sip:r9@x;lr>"));
	ck_assert(slice_eq(sipmsg_hvalue(m, sipmsg_hdr(m, SH_CSEQ)),
	    "1 INVITE"));
	ck_assert(slice_eq(m->from_tag, "1"));
	sipmsg_free(m);
	buf_cleanup(&b);
}
END_TEST

/*
 * A request in a dialog or a transaction skips libosip2, but what it
 * carries on is checked: Call-ID, From and To by the grammar, NULs.
 */
START_TEST(in_dialog_checked_without_osip)
{
	static const struct {
		const char	*method, *to, *from, *callid, *reason;
		int		 osip, status;
	} cases[] = {
		{ "BYE", "<sip:b@x>;tag=2", "<sip:a@x>;tag=1", "c@h", "", 0, 0 },
		{ "INVITE", "<sip:b@x>;tag=2", "<sip:a@x>;tag=1", "c", "", 0, 0 },
		{ "ACK", "<sip:b@x>", "<sip:a@x>;tag=1", "c", "", 0, 0 },
		{ "CANCEL", "<sip:b@x>", "<sip:a@x>;tag=1", "c", "", 0, 0 },
		{ "BYE", "<sip:b@x>;tag=2", "<sip:a@x;tag=1", "c",
		    "Bad From header", 0, 400 },
		{ "BYE", "<sip:b@x>;tag=2", "<sip:a@x>;tag=1", "c d",
		    "Bad Call-ID header", 0, 400 },
		{ "ACK", "\"b\" <sip:b@x>>;tag=2", "<sip:a@x>;tag=1", "c",
		    "Bad To header", 0, 400 },
		{ "CANCEL", "<sip:b@x>", "\"a <sip:a@x>;tag=1", "c",
		    "Bad From header", 0, 400 },
		/* Out of a dialog, libosip2 judges. */
		{ "INVITE", "<sip:b@x>", "<sip:a@x>;tag=1", "c", "", 1, 0 },
		{ "OPTIONS", "<sip:b@x>", "<sip:a@x>;tag=1", "c", "", 1, 0 },
	};
	char		 text[1024];
	struct sipmsg	*m;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s sip:b@example.com SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nTo: %s\r\n"
		    "From: %s\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n"
		    "Max-Forwards: 70\r\n\r\n", cases[i].method, cases[i].to,
		    cases[i].from, cases[i].callid, cases[i].method);
		m = sipmsg_new(text, strlen(text));
		err[0] = '\0';
		ck_assert_msg(sipmsg_parse(m, err, sizeof(err)) ==
		    cases[i].status, "case %zu: %s", i, err);
		ck_assert_str_eq(err, cases[i].reason);
		if (cases[i].status == 0)
			ck_assert_int_eq(sipmsg_in_dialog(m), !cases[i].osip);
		sipmsg_free(m);
	}
	/* A NUL outside a quoted-pair: 400; inside one (RFC 4475): fine. */
	{
		static const char	bad[] = "BYE sip:b@example.com SIP/2.0"
		    "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nTo: <sip:b@x>;"
		    "tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 "
		    "BYE\r\nSubject: a\0b\r\n\r\n";
		static const char	ok[] = "BYE sip:b@example.com SIP/2.0"
		    "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nTo: <sip:b@x>;"
		    "tag=2\r\nFrom: \"a\\\0\" <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
		    "CSeq: 1 BYE\r\n\r\n";

		m = sipmsg_new(bad, sizeof(bad) - 1);
		ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), 400);
		ck_assert_str_eq(err, "NUL byte in the headers");
		sipmsg_free(m);
		m = sipmsg_new(ok, sizeof(ok) - 1);
		ck_assert_int_eq(sipmsg_parse(m, err, sizeof(err)), 0);
		sipmsg_free(m);
	}
}
END_TEST

/* The answer a request gets: from the syntax checks, else from 16.3. */
static int
check_request(const char *text)
{
	struct sipmsg	*m = sipmsg_new(text, strlen(text));
	int		 rc;

	err[0] = '\0';
	if ((rc = sipmsg_parse(m, err, sizeof(err))) == 0)
		rc = sipmsg_check_request(m, err, sizeof(err));
	sipmsg_free(m);
	return (rc);
}

#define REQ_REST							\
	"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKchk\r\n"		\
	"To: <sip:b@example.com>\r\n"					\
	"From: <sip:a@example.org>;tag=1\r\n"				\
	"Call-ID: chk\r\n"

START_TEST(check_request_ok)
{
	ck_assert_int_eq(check_request("INVITE sip:b@example.com SIP/2.0\r\n"
	    REQ_REST "Max-Forwards: 70\r\nCSeq: 1 INVITE\r\n\r\n"), 0);
	ck_assert_int_eq(check_request("INVITE sips:b@example.com SIP/2.0\r\n"
	    REQ_REST "CSeq: 1 INVITE\r\n\r\n"), 0);
}
END_TEST

START_TEST(check_request_version)
{
	ck_assert_int_eq(check_request("INVITE sip:b@example.com SIP/3.0\r\n"
	    REQ_REST "CSeq: 1 INVITE\r\n\r\n"), 505);
	ck_assert_str_eq(err, "Version Not Supported");
}
END_TEST

START_TEST(check_request_scheme)
{
	ck_assert_int_eq(check_request("INVITE tel:+15551234567 SIP/2.0\r\n"
	    REQ_REST "CSeq: 1 INVITE\r\n\r\n"), 416);
	ck_assert_str_eq(err, "Unsupported URI Scheme");
	ck_assert_int_eq(check_request("INVITE http://example.com/ SIP/2.0\r\n"
	    REQ_REST "CSeq: 1 INVITE\r\n\r\n"), 416);
}
END_TEST

START_TEST(check_request_max_forwards)
{
	ck_assert_int_eq(check_request("INVITE sip:b@example.com SIP/2.0\r\n"
	    REQ_REST "Max-Forwards: 0\r\nCSeq: 1 INVITE\r\n\r\n"), 483);
	ck_assert_str_eq(err, "Too Many Hops");
	ck_assert_int_eq(check_request("INVITE sip:b@example.com SIP/2.0\r\n"
	    REQ_REST "Max-Forwards: 1\r\nCSeq: 1 INVITE\r\n\r\n"), 0);
}
END_TEST

START_TEST(check_request_proxy_require)
{
	ck_assert_int_eq(check_request("INVITE sip:b@example.com SIP/2.0\r\n"
	    REQ_REST "Proxy-Require: foo\r\nCSeq: 1 INVITE\r\n\r\n"), 420);
	ck_assert_str_eq(err, "Bad Extension");
	/* RFC 3261 16.3: not for ACK and CANCEL. */
	ck_assert_int_eq(check_request("CANCEL sip:b@example.com SIP/2.0\r\n"
	    REQ_REST "Proxy-Require: foo\r\nCSeq: 1 CANCEL\r\n\r\n"), 0);
}
END_TEST

START_TEST(hdr_param_cases)
{
	struct slice	v;

	ck_assert(hdr_param(S("<sip:a@b;lr>;tag=abc;foo"), "tag", &v));
	ck_assert_slice_eq(v, "abc");
	ck_assert(hdr_param(S("<sip:a@b;lr>;tag=abc;foo"), "foo", &v));
	ck_assert_uint_eq(v.len, 0);
	ck_assert(!hdr_param(S("<sip:a@b;lr>;tag=abc;foo"), "lr", &v));
	ck_assert(!hdr_param(S("<sip:a@b>;tag=abc"), "ta", &v));
	ck_assert(!hdr_param(S("<sip:a@b>;tagx=abc"), "tag", &v));
	ck_assert(hdr_param(S("\"x;tag=no\" <sip:a@b>;tag=yes"), "tag", &v));
	ck_assert_slice_eq(v, "yes");
	ck_assert(hdr_param(S("SIP/2.0/UDP h ; BRANCH = z9hG4bKx ;rport"),
	    "branch", &v));
	ck_assert_slice_eq(v, "z9hG4bKx");
	ck_assert(hdr_param(S("SIP/2.0/UDP h;rport;branch=z9"), "rport",
	    NULL));
	/* Stops at the first value. */
	ck_assert(!hdr_param(S("<sip:a@x>;x=1, <sip:b@x>;y=2"), "y", &v));
	ck_assert(hdr_param(S("<sip:a@x>;x=1, <sip:b@x>;y=2"), "x", &v));
	ck_assert_slice_eq(v, "1");
	ck_assert(hdr_param(S("a;q=\"b;c\";d=e"), "q", &v));
	ck_assert_slice_eq(v, "\"b;c\"");
}
END_TEST

START_TEST(hdr_uri_cases)
{
	ck_assert_slice_eq(hdr_uri(S("\"Bob, <the> builder\" <sip:bob@x>"
	    ";tag=1")), "sip:bob@x");
	ck_assert_slice_eq(hdr_uri(S("<sip:a@b;lr>;tag=2")), "sip:a@b;lr");
	ck_assert_slice_eq(hdr_uri(S("sip:bob@x;tag=1")), "sip:bob@x");
	ck_assert_slice_eq(hdr_uri(S("  sip:bob@x  ")), "sip:bob@x");
	ck_assert_slice_eq(hdr_uri(S("Bob <sips:bob@[2001:db8::1]:5061>")),
	    "sips:bob@[2001:db8::1]:5061");
}
END_TEST

START_TEST(split_values_cases)
{
	struct slice	v[4];

	ck_assert_uint_eq(split_values(S("\"A, B\" <sip:a@x>, "
	    "<sip:b@x;p=1,2>,sip:c@x"), v, 4), 3);
	ck_assert_slice_eq(v[0], "\"A, B\" <sip:a@x>");
	ck_assert_slice_eq(v[1], "<sip:b@x;p=1,2>");
	ck_assert_slice_eq(v[2], "sip:c@x");
	ck_assert_uint_eq(split_values(S("a, ,b,"), v, 4), 2);
	ck_assert_slice_eq(v[0], "a");
	ck_assert_slice_eq(v[1], "b");
	ck_assert_uint_eq(split_values(S("\"q\\\",\" <x>, y"), v, 4), 2);
	ck_assert_slice_eq(v[0], "\"q\\\",\" <x>");
	ck_assert_uint_eq(split_values(S("a,b,c"), v, 1), 3);
	ck_assert_slice_eq(v[0], "a");
	ck_assert_uint_eq(split_values(S(""), v, 4), 0);
}
END_TEST

START_TEST(sipuri_parse_cases)
{
	struct sipuri	u;
	struct slice	v;

	ck_assert_int_eq(sipuri_parse(S("sip:alice:secret@example.com:5070"
	    ";transport=udp;lr"), &u), 0);
	ck_assert_slice_eq(u.scheme, "sip");
	ck_assert_slice_eq(u.user, "alice");
	ck_assert_slice_eq(u.host, "example.com");
	ck_assert_uint_eq(u.port, 5070);
	ck_assert_slice_eq(u.params, ";transport=udp;lr");
	ck_assert(sipuri_param(&u, "lr", NULL));
	ck_assert(sipuri_param(&u, "transport", &v));
	ck_assert_slice_eq(v, "udp");

	ck_assert_int_eq(sipuri_parse(S("sips:[2001:db8::2]:5061"), &u), 0);
	ck_assert_slice_eq(u.scheme, "sips");
	ck_assert_uint_eq(u.user.len, 0);
	ck_assert_slice_eq(u.host, "[2001:db8::2]");
	ck_assert_uint_eq(u.port, 5061);
	ck_assert_uint_eq(u.params.len, 0);

	ck_assert_int_eq(sipuri_parse(S("sip:bob@[2001:db8::3];maddr=x"), &u),
	    0);
	ck_assert_slice_eq(u.user, "bob");
	ck_assert_slice_eq(u.host, "[2001:db8::3]");
	ck_assert_uint_eq(u.port, 0);
	ck_assert_slice_eq(u.params, ";maddr=x");

	ck_assert_int_eq(sipuri_parse(S("sip:example.com?subject=x"), &u), 0);
	ck_assert_slice_eq(u.host, "example.com");
	ck_assert_uint_eq(u.port, 0);

	/* Another scheme: accepted, only the scheme is filled. */
	ck_assert_int_eq(sipuri_parse(S("tel:+15551234567"), &u), 0);
	ck_assert_slice_eq(u.scheme, "tel");
	ck_assert_uint_eq(u.host.len, 0);
	/* Nothing after the scheme: libosip2 refuses it, so do we. */
	ck_assert_int_eq(sipuri_parse(S("o:"), &u), -1);
	ck_assert_int_eq(sipuri_parse(S("tel: "), &u), -1);
	ck_assert_int_eq(sipuri_parse(S("sip:"), &u), -1);
}
END_TEST

/* What may go in a request line: found by fuzzing a strict Route. */
START_TEST(sipuri_printable_cases)
{
	struct sipuri	u;

	ck_assert(sipuri_printable(S("sip:alice@example.com;lr")));
	ck_assert(sipuri_printable(S("sip:a?b/c;d,e@example.com")));
	ck_assert(sipuri_printable(S("tel:+1-555-123-4567")));
	/* sipuri_parse() takes these; none may become a Request-URI. */
	ck_assert_int_eq(sipuri_parse(S("sip: @9.0.2.1"), &u), 0);
	ck_assert(!sipuri_printable(S("sip: @9.0.2.1")));
	ck_assert(!sipuri_printable(S("sip:a\tb@example.com")));
	ck_assert(!sipuri_printable(S("sip:a\r\n b@example.com")));
	ck_assert(!sipuri_printable(S("sip:\xe9t\xe9@example.com")));
	ck_assert(!sipuri_printable(S("sip:example.com;x=<y>")));
	ck_assert(!sipuri_printable(S("sip:\"x\"@example.com")));
	ck_assert(!sipuri_printable(S("")));
}
END_TEST

/* What a Route, 3xx or registered Contact may put in our request line. */
START_TEST(sipuri_fits_ruri_cases)
{
	ck_assert(sipuri_fits_ruri(S("sip:alice@example.com:5070;lr")));
	ck_assert(sipuri_fits_ruri(S("sip:a?b@example.com")));
	ck_assert(sipuri_fits_ruri(S("tel:+15551234567")));
	ck_assert(!sipuri_fits_ruri(S("sip:127.0.0.1:50?0;lr")));
	ck_assert(!sipuri_fits_ruri(S("sip:fred@example.com?X=y")));
	ck_assert(!sipuri_fits_ruri((struct slice){ "sip:d\0ave@h", 12 }));
	ck_assert(!sipuri_fits_ruri(S("sip:e ve@example.com")));
	ck_assert(!sipuri_fits_ruri(S("sip:example.com:0")));
	ck_assert(!sipuri_fits_ruri(S("o:")));
}
END_TEST

static const char *const bad_uris[] = {
	"sip:example.com:0", "sip:example.com:65536", "sip:example.com:",
	"sip:example.com:50x0", "sip:example.com:1234567", "sip:@example.com",
	"sip:", "sip:[2001:db8::1", "sip:exa mple.com", "example.com",
	":foo", "s/p:x", "sip:dave:@127.0.0.1:5074", "sip::pw@example.com",
};

START_TEST(sipuri_parse_rejects)
{
	struct sipuri	u;

	ck_assert_msg(sipuri_parse(S(bad_uris[_i]), &u) == -1,
	    "%s accepted", bad_uris[_i]);
}
END_TEST

START_TEST(sip_reason_cases)
{
	ck_assert_str_eq(sip_reason(100), "Trying");
	ck_assert_str_eq(sip_reason(180), "Ringing");
	ck_assert_str_eq(sip_reason(200), "OK");
	ck_assert_str_eq(sip_reason(408), "Request Timeout");
	ck_assert_str_eq(sip_reason(481), "Call/Transaction Does Not Exist");
	ck_assert_str_eq(sip_reason(486), "Busy Here");
	ck_assert_str_eq(sip_reason(487), "Request Terminated");
	ck_assert_str_eq(sip_reason(489), "Bad Event");
	ck_assert_str_eq(sip_reason(491), "Request Pending");
	ck_assert_str_eq(sip_reason(493), "Undecipherable");
	ck_assert_str_eq(sip_reason(494), "Security Agreement Required");
	ck_assert_str_eq(sip_reason(503), "Service Unavailable");
	ck_assert_str_eq(sip_reason(505), "Version Not Supported");
	ck_assert_str_eq(sip_reason(603), "Decline");
	ck_assert_str_eq(sip_reason(608), "Rejected");
	/* Unknown codes: the reason of the class. */
	ck_assert_str_eq(sip_reason(499), "Client Error");
	ck_assert_str_eq(sip_reason(299), "OK");
	ck_assert_str_eq(sip_reason(399), "Redirection");
	ck_assert_str_eq(sip_reason(599), "Server Error");
	ck_assert_str_eq(sip_reason(699), "Global Failure");
}
END_TEST

/* sipbuild */

static char *
build_response(const char *text, int code)
{
	struct sipmsg	*m = parse(text);
	struct buf	 b;

	buf_init(&b, 256);
	sipbuild_response(m, code, NULL, &b);
	sipmsg_free(m);
	return (buf_steal(&b, NULL));
}

#define RESP_TAIL							\
	"To: <sip:bob@example.com>;tag=b0b\r\n"				\
	"From: <sip:alice@example.org>;tag=a11ce\r\n"			\
	"Call-ID: r1\r\n"						\
	"CSeq: 5 INVITE\r\n"						\
	"Content-Length: 5\r\n"						\
	"\r\n"								\
	"hello, more than Content-Length"

START_TEST(build_response_via_alone)
{
	char	*out = build_response("SIP/2.0 180 Ringing\r\n"
	    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1"
	    ";received=192.0.2.1\r\n"
	    RESP_TAIL, 0);

	ck_assert_str_eq(out, "SIP/2.0 180 Ringing\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1"
	    ";received=192.0.2.1\r\n"
	    "To: <sip:bob@example.com>;tag=b0b\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: r1\r\n"
	    "CSeq: 5 INVITE\r\n"
	    "Content-Length: 5\r\n"
	    "\r\n"
	    "hello");
	free(out);
}
END_TEST

START_TEST(build_response_via_shared)
{
	char	*out = build_response("SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, "
	    "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKb8\r\n"
	    RESP_TAIL, 0);

	ck_assert_str_eq(out, "SIP/2.0 200 OK\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKb8\r\n"
	    "To: <sip:bob@example.com>;tag=b0b\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: r1\r\n"
	    "CSeq: 5 INVITE\r\n"
	    "Content-Length: 5\r\n"
	    "\r\n"
	    "hello");
	free(out);
}
END_TEST

/* A chosen 503 goes up as 500 (RFC 3261 16.7 step 6). */
START_TEST(build_response_new_code)
{
	char	*out = build_response("SIP/2.0 503 Service Unavailable\r\n"
	    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1\r\n"
	    RESP_TAIL, 500);

	ck_assert_str_eq(out, "SIP/2.0 500 Server Internal Error\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1\r\n"
	    "To: <sip:bob@example.com>;tag=b0b\r\n"
	    "From: <sip:alice@example.org>;tag=a11ce\r\n"
	    "Call-ID: r1\r\n"
	    "CSeq: 5 INVITE\r\n"
	    "Content-Length: 5\r\n"
	    "\r\n"
	    "hello");
	free(out);
}
END_TEST

static char *
build_top_via(const char *via, const char *ip, uint16_t port)
{
	struct buf	 b;
	struct sipmsg	*m;
	char		*text;

	buf_init(&b, 512);
	buf_addf(&b, "OPTIONS sip:b@example.com SIP/2.0\r\nVia: %s\r\n"
	    "To: <sip:b@example.com>\r\nFrom: <sip:a@example.org>;tag=1\r\n"
	    "Call-ID: tv\r\nCSeq: 1 OPTIONS\r\n\r\n", via);
	text = buf_steal(&b, NULL);
	m = parse(text);
	free(text);
	buf_init(&b, 256);
	sipbuild_top_via(m, ip, port, &b);
	sipmsg_free(m);
	return (buf_steal(&b, NULL));
}

START_TEST(build_top_via_cases)
{
	char	*out;

	out = build_top_via("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa;rport",
	    "198.51.100.7", 40000);
	ck_assert_str_eq(out, "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa"
	    ";rport=40000;received=198.51.100.7");
	free(out);

	out = build_top_via("SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bKb",
	    "192.0.2.1", 5060);
	ck_assert_str_eq(out, "SIP/2.0/UDP 192.0.2.1;rport=5060"
	    ";branch=z9hG4bKb;received=192.0.2.1");
	free(out);

	/* No rport, the sent-by is the source: unchanged. */
	out = build_top_via("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKc",
	    "192.0.2.1", 5062);
	ck_assert_str_eq(out, "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKc");
	free(out);

	/* No rport, a host name: received only. */
	out = build_top_via("SIP/2.0/UDP pc33.example.org;branch=z9hG4bKd",
	    "192.0.2.3", 5060);
	ck_assert_str_eq(out, "SIP/2.0/UDP pc33.example.org;branch=z9hG4bKd"
	    ";received=192.0.2.3");
	free(out);

	out = build_top_via("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKe",
	    "2001:db8::1", 5070);
	ck_assert_str_eq(out, "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKe");
	free(out);
}
END_TEST

#define SENT_INVITE							\
	"INVITE sip:bob@192.0.2.4:5080 SIP/2.0\r\n"			\
	"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKprx1\r\n"	\
	"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1;rport=5062\r\n" \
	"Route: <sip:next.example.com;lr>\r\n"				\
	"Max-Forwards: 69\r\n"						\
	"To: Bob <sip:bob@example.com>\r\n"				\
	"From: Alice <sip:alice@example.org>;tag=1928301774\r\n"	\
	"Call-ID: a84b4c76e66710@pc33.example.org\r\n"			\
	"CSeq: 314159 INVITE\r\n"					\
	"Contact: <sip:alice@192.0.2.1:5062>\r\n"			\
	"Content-Type: application/sdp\r\n"				\
	"Content-Length: 4\r\n"						\
	"\r\n"								\
	"v=0\r\n"

/* A 420 lists every option, however long the list (fuzzer: cut at 256). */
START_TEST(build_unsupported)
{
	static const char	*opt = "an-option-with-a-rather-long-name";
	struct sipmsg		*m;
	struct buf		 req, b, want;
	int			 i;

	buf_init(&req, 1024);
	buf_init(&want, 1024);
	buf_adds(&req, "INVITE sip:b@example.com SIP/2.0\r\n" REQ_REST
	    "CSeq: 1 INVITE\r\nProxy-Require: ");
	buf_adds(&want, "Unsupported: ");
	for (i = 0; i < 12; i++) {
		buf_addf(&req, "%s%s%d", i == 0 ? "" : i == 6 ?
		    "\r\nProxy-Require: " : ", ", opt, i);
		buf_addf(&want, "%s%s%d", i == 0 ? "" : ", ", opt, i);
	}
	buf_adds(&req, "\r\n\r\n");
	buf_adds(&want, "\r\n");
	m = parse(req.p);
	buf_init(&b, 64);
	sipbuild_unsupported(m, &b);
	ck_assert_str_eq(b.p, want.p);
	buf_cleanup(&b);
	buf_cleanup(&want);
	buf_cleanup(&req);
	sipmsg_free(m);
}
END_TEST

START_TEST(build_cancel)
{
	struct sipmsg		*inv = parse(SENT_INVITE), *c;
	struct buf		 b;
	struct slice		 v[4];
	const struct sip_hline	*h;
	char			*out;

	buf_init(&b, 512);
	sipbuild_cancel(inv, "SIP;cause=200;text=\"Call completed elsewhere\"",
	    &b);
	out = buf_steal(&b, NULL);
	ck_assert_msg(strncmp(out, "CANCEL sip:bob@192.0.2.4:5080 SIP/2.0\r\n",
	    39) == 0, "%s", out);
	c = parse(out);
	ck_assert_int_eq(c->method, SM_CANCEL);
	ck_assert_slice_eq(c->ruri, "sip:bob@192.0.2.4:5080");
	ck_assert_slice_eq(c->branch, "z9hG4bKprx1");
	ck_assert_slice_eq(c->via_host, "203.0.113.1");
	ck_assert_uint_eq(sipmsg_values(c, SH_VIA, v, 4), 1);
	ck_assert_slice_eq(c->callid, "a84b4c76e66710@pc33.example.org");
	ck_assert_slice_eq(c->from_tag, "1928301774");
	ck_assert_uint_eq(c->to_tag.len, 0);
	ck_assert_ptr_nonnull(h = sipmsg_hdr(c, SH_TO));
	ck_assert_slice_eq(sipmsg_hvalue(c, h), "Bob <sip:bob@example.com>");
	ck_assert_uint_eq(c->cseq, 314159);
	ck_assert_slice_eq(c->cseq_method, "CANCEL");
	ck_assert_ptr_nonnull(h = sipmsg_hdr(c, SH_ROUTE));
	ck_assert_slice_eq(sipmsg_hvalue(c, h), "<sip:next.example.com;lr>");
	ck_assert_ptr_nonnull(h = sipmsg_hdr(c, SH_REASON));
	ck_assert_slice_eq(sipmsg_hvalue(c, h),
	    "SIP;cause=200;text=\"Call completed elsewhere\"");
	ck_assert_int_eq(c->max_forwards, 70);
	ck_assert_uint_eq(c->body_len, 0);
	ck_assert_ptr_null(sipmsg_hdr(c, SH_CONTACT));
	sipmsg_free(c);
	free(out);

	buf_init(&b, 512);
	sipbuild_cancel(inv, NULL, &b);
	c = parse(b.p);
	ck_assert_ptr_null(sipmsg_hdr(c, SH_REASON));
	sipmsg_free(c);
	buf_cleanup(&b);
	sipmsg_free(inv);
}
END_TEST

START_TEST(build_ack)
{
	struct sipmsg		*inv = parse(SENT_INVITE), *resp, *a;
	struct buf		 b;
	struct slice		 v[4];
	const struct sip_hline	*h;

	resp = parse("SIP/2.0 486 Busy Here\r\n"
	    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKprx1\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1;rport=5062\r\n"
	    "To: Bob <sip:bob@example.com>;tag=xyz\r\n"
	    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
	    "Call-ID: a84b4c76e66710@pc33.example.org\r\n"
	    "CSeq: 314159 INVITE\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n");
	buf_init(&b, 512);
	ck_assert_int_eq(sipbuild_ack(inv, resp, &b), 0);
	a = parse(b.p);
	ck_assert_int_eq(a->method, SM_ACK);
	ck_assert_slice_eq(a->ruri, "sip:bob@192.0.2.4:5080");
	ck_assert_slice_eq(a->branch, "z9hG4bKprx1");
	ck_assert_uint_eq(sipmsg_values(a, SH_VIA, v, 4), 1);
	ck_assert_slice_eq(a->callid, "a84b4c76e66710@pc33.example.org");
	ck_assert_slice_eq(a->from_tag, "1928301774");
	ck_assert_slice_eq(a->to_tag, "xyz");
	ck_assert_ptr_nonnull(h = sipmsg_hdr(a, SH_TO));
	ck_assert_slice_eq(sipmsg_hvalue(a, h),
	    "Bob <sip:bob@example.com>;tag=xyz");
	ck_assert_uint_eq(a->cseq, 314159);
	ck_assert_slice_eq(a->cseq_method, "ACK");
	ck_assert_ptr_nonnull(h = sipmsg_hdr(a, SH_ROUTE));
	ck_assert_slice_eq(sipmsg_hvalue(a, h), "<sip:next.example.com;lr>");
	ck_assert_uint_eq(a->body_len, 0);
	sipmsg_free(a);
	buf_cleanup(&b);
	sipmsg_free(resp);
	sipmsg_free(inv);
}
END_TEST

/* Every LF in b ends a CRLF, every CR starts one. */
static void
ck_assert_crlf(const struct buf *b)
{
	size_t	i;

	for (i = 0; i < b->len; i++) {
		if (b->p[i] == '\n')
			ck_assert_msg(i > 0 && b->p[i - 1] == '\r',
			    "bare LF at %zu: %.*s", i, (int)b->len, b->p);
		if (b->p[i] == '\r')
			ck_assert_msg(i + 1 < b->len && b->p[i + 1] == '\n',
			    "bare CR at %zu: %.*s", i, (int)b->len, b->p);
	}
}

/*
 * A request whose lines end in a bare LF (tolerated on the way in) goes
 * out with CRLF everywhere, folded lines too: forwarded, answered, and
 * CANCELled (fuzzer: relayed as they came, mixed with our CRLF lines).
 */
START_TEST(build_bare_lf_framed)
{
	static const char	 req[] = "INVITE sip:bob@example.com SIP/2.0\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKlf1\n"
	    "Route: <sip:a.example.com;lr>,\n <sip:b.example.com;lr>\n"
	    "To: Bob\n <sip:bob@example.com>\n"
	    "From: <sip:alice@example.org>;tag=1\n"
	    "Call-ID: lf-1\nCSeq: 1 INVITE\nSubject: a\n\tb\n"
	    "Date: Sat, 15 Oct 2005 04:44:56\n"
	    "Content-Length: 0\n\n";
	struct slice		 routes[2] = {
		{ "<sip:a.example.com;lr>", 22 },
		{ "<sip:b\n c>", 10 },
	};
	struct fwd		 f;
	struct sipmsg		*m = parse(req), *out;
	struct buf		 b;

	memset(&f, 0, sizeof(f));
	f.ruri = S("sip:bob@192.0.2.4");
	f.via = "SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKprx9";
	f.topvia = m->via;
	f.routes = routes;
	f.nroutes = 2;
	f.max_forwards = 69;
	buf_init(&b, 512);
	sipbuild_request(m, &f, &b);
	ck_assert_crlf(&b);
	buf_add(&b, "", 1);
	b.len--;
	out = parse(b.p);	/* whole, and as we read the original */
	ck_assert_slice_eq(sipmsg_hvalue(out, sipmsg_hdr(out, SH_TO)),
	    "Bob\r\n <sip:bob@example.com>");
	sipmsg_free(out);
	b.len = 0;
	sipbuild_reply(m, 486, NULL, "t1", &m->via, NULL, &b);
	ck_assert_crlf(&b);
	b.len = 0;
	sipbuild_cancel(m, NULL, &b);
	ck_assert_crlf(&b);
	buf_cleanup(&b);
	sipmsg_free(m);
}
END_TEST

/*
 * No ACK from a response that did not parse, whatever its status: a 487
 * and then a 302 with a broken To became ACKs nobody could parse (fuzzer,
 * regress-ack-for-3xx-broken-to).
 */
START_TEST(build_ack_refused)
{
	static const char	 r302[] = "SIP/2.0 302 Moved Temporarily\r\n"
	    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKprx1\r\n"
	    "To:\0\0\0\0007\x01\xb9\xe0 <sip:bob@example.com>;tag=b1\r\n"
	    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
	    "Call-ID: a84b4c76e66710@pc33.example.org\r\n"
	    "CSeq: 314159 INVITE\r\n"
	    "Contact: <sip:carol@127.0.0.1:5073>\r\n"
	    "Content-Length: 0\r\n\r\n";
	struct sipmsg		*inv = parse(SENT_INVITE), *resp;
	struct buf		 b;
	int			 code;

	buf_init(&b, 512);
	resp = parse_bytes(r302, sizeof(r302) - 1, -1);
	ck_assert_int_eq(sipbuild_ack(inv, resp, &b), -1);
	ck_assert_uint_eq(b.len, 0);
	sipmsg_free(resp);
	/* Scanned but never parsed, with any status: refused too. */
	for (code = 100; code <= 600; code += 100) {
		char	text[512];

		snprintf(text, sizeof(text), "SIP/2.0 %d X\r\n"
		    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKprx1\r\n"
		    "To: <sip:bob@example.com>;tag=b1\r\n"
		    "From: <sip:alice@example.org>;tag=1928301774\r\n"
		    "Call-ID: c\r\nCSeq: 314159 INVITE\r\n\r\n", code);
		resp = scanned(text);
		ck_assert_int_eq(sipbuild_ack(inv, resp, &b), -1);
		ck_assert_int_eq(sipmsg_parse(resp, err, sizeof(err)), 0);
		ck_assert_int_eq(sipbuild_ack(inv, resp, &b), 0);
		ck_assert_uint_gt(b.len, 0);
		b.len = 0;
		sipmsg_free(resp);
	}
	buf_cleanup(&b);
	sipmsg_free(inv);
}
END_TEST

int
main(void)
{
	TCase	*tc;

	sipmsg_init();
	tc = check_case("parse");
	check_add(tc, parse_invite_fields, parse_body_shorter_content_length,
	    take_buf, parse_response, parse_compact_headers, parse_folded_headers,
	    parse_via_multi_values, parse_via_ipv6, parse_case_and_lws);
	tcase_add_loop_test(tc, parse_errors, 0,
	    sizeof(bad_msgs) / sizeof(bad_msgs[0]));
	tc = check_case("responses");
	tcase_add_loop_test(tc, response_refused, 0,
	    sizeof(bad_resps) / sizeof(bad_resps[0]));
	check_add(tc, response_tolerated, addr_ok_cases);
	check_add(check_case("parse_steps"), scan_header_ids, parse_step_via,
	    parse_step_counts, parse_step_fields, parse_step_request,
	    parse_osip_headers, osip_plain_cases, scan_line_ends_everywhere,
	    scan_many_headers,
	    in_dialog_checked_without_osip);
	check_add(check_case("check_request"), check_request_ok,
	    check_request_version, check_request_scheme,
	    check_request_max_forwards, check_request_proxy_require);
	tc = check_case("helpers");
	check_add(tc, hdr_param_cases, hdr_uri_cases, split_values_cases,
	    sipuri_parse_cases, sipuri_printable_cases,
	    sipuri_fits_ruri_cases);
	tcase_add_loop_test(tc, sipuri_parse_rejects, 0,
	    sizeof(bad_uris) / sizeof(bad_uris[0]));
	tcase_add_test(tc, sip_reason_cases);
	check_add(check_case("sipbuild"), build_response_via_alone,
	    build_response_via_shared, build_response_new_code,
	    build_top_via_cases, build_unsupported, build_cancel, build_ack,
	    build_ack_refused, build_bare_lf_framed);
	return (check_run("sipmsg"));
}
