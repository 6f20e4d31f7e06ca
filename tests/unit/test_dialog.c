/* Unit tests: dialog.c, on the fake clock and the capturing transport. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "dialog.h"
#include "fake.h"
#include "txn.h"

#define STAMP	"0123456789abcdef"

static struct tp	 tp;
static struct cdr	 last_cdr;
static int		 ncdr;
static char		 cdr_callee[128], cdr_to_tag[64], cdr_identity[64];

static void
take_cdr(const struct cdr *r)
{
	last_cdr = *r;
	/* Borrowed for the call only: what the checks read is copied. */
	snprintf(cdr_callee, sizeof(cdr_callee), "%.*s", (int)r->callee.len,
	    r->callee.p);
	snprintf(cdr_to_tag, sizeof(cdr_to_tag), "%.*s", (int)r->to_tag.len,
	    r->to_tag.p);
	snprintf(cdr_identity, sizeof(cdr_identity), "%.*s",
	    (int)r->identity.len, r->identity.p);
	ncdr++;
}

static void
txn_ignore(struct txn *t)
{
	(void)t;
}

static const struct txn_ops ops = { .terminated = txn_ignore };

static void
setup(void)
{
	struct dialog_settings	s = { .enable = true, .timeout_s = 10,
				    .calls_per_user = 2 };
	struct txn_settings	ts = { 500, 4000, 5000, 180000, 32000 };

	fake_reset();
	fake_tp_init(&tp);
	txn_init(NULL, &ts, &ops);
	dialog_init(NULL, &tp);
	dialog_set_settings(&s);
	dialog_set_cdr(take_cdr);
	ncdr = 0;
}

static void
teardown(void)
{
	dialog_shutdown();
	txn_shutdown();
}

START_TEST(uri_same)
{
	ck_assert(dialog_uri_same(S("sip:bob@10.0.0.1:5060"),
	    S("sip:bob@10.0.0.1")));
	ck_assert(dialog_uri_same(S("sip:bob@Host.Example;lr"),
	    S("sip:bob@host.example;ob")));
	ck_assert(!dialog_uri_same(S("sip:bob@10.0.0.1"),
	    S("sip:bob@10.0.0.2")));
	ck_assert(!dialog_uri_same(S("sip:bob@10.0.0.1:5070"),
	    S("sip:bob@10.0.0.1:5080")));
	ck_assert(!dialog_uri_same(S("sip:bob@10.0.0.1"),
	    S("sip:eve@10.0.0.1")));
	ck_assert(!dialog_uri_same(S("sip:bob@10.0.0.1;transport=tcp"),
	    S("sip:bob@10.0.0.1")));
	ck_assert(dialog_uri_same(S("sips:bob@h"), S("sips:bob@h:5061")));
	ck_assert(!dialog_uri_same(S("not a uri"), S("sip:bob@h")));
}
END_TEST

START_TEST(rr_split)
{
	struct slice	rr[4];
	unsigned	after;

	rr[0] = S("<sip:10.0.0.2:5070;lr>");
	rr[1] = S("<sip:127.0.0.1:5060;lr;osp=" STAMP ">");
	rr[2] = S("<sip:[::1]:5060;lr;osp=" STAMP ">");
	rr[3] = S("<sip:10.0.0.1:5080;lr>");
	ck_assert_uint_eq(dialog_rr_split(rr, 4, STAMP, &after), 1);
	ck_assert_uint_eq(after, 3);
	/* Another run's (or another proxy's) stamp is not ours. */
	ck_assert_uint_eq(dialog_rr_split(rr, 4, "fedcba9876543210", &after),
	    4);
	ck_assert_uint_eq(after, 4);
}
END_TEST

#define INVITE \
	"INVITE sip:bob@example.test SIP/2.0\r\n" \
	"Via: SIP/2.0/UDP 10.0.0.1:5080;branch=z9hG4bKp1\r\n" \
	"Via: SIP/2.0/UDP 10.0.0.7:5099;branch=z9hG4bKa1\r\n" \
	"Record-Route: <sip:10.0.0.1:5080;lr>\r\n" \
	"From: Alice <sip:alice@example.test>;tag=fa\r\n" \
	"To: <sip:bob@example.test>\r\n" \
	"Call-ID: c1@test\r\n" \
	"CSeq: 7 INVITE\r\n" \
	"Contact: <sip:alice@10.0.0.7:5099>\r\n" \
	"Max-Forwards: 70\r\n" \
	"Content-Length: 0\r\n\r\n"

#define RESP(code, tag) \
	"SIP/2.0 " code "\r\n" \
	"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKus\r\n" \
	"Via: SIP/2.0/UDP 10.0.0.1:5080;branch=z9hG4bKp1\r\n" \
	"Via: SIP/2.0/UDP 10.0.0.7:5099;branch=z9hG4bKa1\r\n" \
	"Record-Route: <sip:10.0.0.2:5070;lr>, " \
	"<sip:127.0.0.1:5060;lr;osp=" STAMP ">\r\n" \
	"Record-Route: <sip:10.0.0.1:5080;lr>\r\n" \
	"From: Alice <sip:alice@example.test>;tag=fa\r\n" \
	"To: <sip:bob@example.test>;tag=" tag "\r\n" \
	"Call-ID: c1@test\r\n" \
	"CSeq: 7 INVITE\r\n" \
	"Contact: <sip:bob@10.0.0.9:5090>\r\n" \
	"Content-Length: 0\r\n\r\n"

static struct dialog_call *
call_up(const char *tag)
{
	struct sipmsg		*inv = parse(INVITE), *r;
	struct dialog_call	*c;
	struct tp_addr		 src, callee;
	char			 err[128];
	char			 text[2048];

	ck_assert_int_eq(tp_addr_parse("10.0.0.1:5080", &src), 0);
	ck_assert_int_eq(tp_addr_parse("10.0.0.2:5070", &callee), 0);
	ck_assert_int_eq(dialog_call_admit(S("alice"), &src, err,
	    sizeof(err)), 0);
	c = dialog_call_new(inv, &src, &tp.socks[0], S("alice"), S("alice"),
	    STAMP);
	sipmsg_free(inv);
	snprintf(text, sizeof(text), RESP("180 Ringing", "%s"), tag);
	r = parse(text);
	dialog_call_response(c, r, &callee, &tp.socks[0]);
	sipmsg_free(r);
	snprintf(text, sizeof(text), RESP("200 OK", "%s"), tag);
	r = parse(text);
	dialog_call_response(c, r, &callee, &tp.socks[0]);
	sipmsg_free(r);
	return (c);
}

static int
request(const char *method, const char *ftag, const char *ttag,
    const char *next, char *err, size_t errlen)
{
	struct sipmsg	*m;
	char		 text[1024];
	int		 rc;

	snprintf(text, sizeof(text), "%s sip:x@h SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 10.0.0.7:5099;branch=z9hG4bKq\r\n"
	    "From: <sip:a@example.test>;tag=%s\r\n"
	    "To: <sip:b@example.test>;tag=%s\r\n"
	    "Call-ID: c1@test\r\nCSeq: 9 %s\r\nMax-Forwards: 70\r\n"
	    "Content-Length: 0\r\n\r\n", method, ftag, ttag, method);
	m = parse(text);
	rc = dialog_request(m, S(next), err, errlen);
	sipmsg_free(m);
	return (rc);
}

START_TEST(in_dialog_checks)
{
	struct dialog_call	*c = call_up("tb");
	struct dialog_totals	 t;
	char			 err[128];

	dialog_totals(&t);
	ck_assert_uint_eq(t.by_state[DLG_CONFIRMED], 1);
	ck_assert_uint_eq(t.by_state[DLG_EARLY], 0);
	/* Caller to callee: the next hop is the proxy on the callee's side. */
	ck_assert_int_eq(request("INFO", "fa", "tb", "sip:10.0.0.2:5070;lr",
	    err, sizeof(err)), 0);
	ck_assert_int_eq(request("INFO", "fa", "tb", "sip:10.6.6.6:5070;lr",
	    err, sizeof(err)), 403);
	ck_assert_str_eq(err, "Forbidden (not this dialog's target)");
	/* Callee to caller: the caller's side. */
	ck_assert_int_eq(request("INFO", "tb", "fa", "sip:10.0.0.1:5080;lr",
	    err, sizeof(err)), 0);
	ck_assert_int_eq(request("INFO", "tb", "fa", "sip:10.0.0.2:5070;lr",
	    err, sizeof(err)), 403);
	/* Tags of no dialog. */
	ck_assert_int_eq(request("INFO", "fa", "zz", "sip:10.0.0.2:5070;lr",
	    err, sizeof(err)), 481);
	dialog_call_free(c);	/* the context goes; the dialog stays */
	ck_assert_uint_eq(dialog_count(), 1);
	ck_assert_int_eq(request("BYE", "tb", "fa", "sip:10.0.0.1:5080;lr",
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(dialog_count(), 0);
	ck_assert_int_eq(ncdr, 1);
	ck_assert_int_eq(last_cdr.ended_by, CDR_BY_CALLEE);
	ck_assert_str_eq(cdr_to_tag, "tb");
	ck_assert_str_eq(cdr_callee, "sip:bob@example.test");
	ck_assert_str_eq(cdr_identity, "alice");
	dialog_totals(&t);
	ck_assert_uint_eq(t.bytes, 0);
}
END_TEST

/* The BYE Osprey sends a party: as that party's peer would. */
static const char *
sent_to(const char *prefix)
{
	int	i;

	for (i = 0; i < fake_nsent(); i++)
		if (fake_sent(i) != NULL && strncmp(fake_sent(i), prefix,
		    strlen(prefix)) == 0)
			return (fake_sent(i));
	return (NULL);
}

START_TEST(timeout_byes)
{
	struct dialog_call	*c = call_up("tb");
	const char		*b;

	dialog_call_free(c);
	fake_sent_clear();
	fake_advance(9999);
	ck_assert_int_eq(fake_nsent(), 0);
	fake_advance(1);
	ck_assert_int_eq(fake_nsent(), 2);
	b = sent_to("BYE sip:bob@10.0.0.9:5090 SIP/2.0\r\n");
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(strstr(b, "\r\nRoute: <sip:10.0.0.2:5070;lr>"
	    "\r\n"));
	ck_assert_ptr_nonnull(strstr(b, "\r\nFrom: Alice "
	    "<sip:alice@example.test>;tag=fa\r\nTo: <sip:bob@example.test>;"
	    "tag=tb\r\n"));
	ck_assert_ptr_nonnull(strstr(b, "\r\nCSeq: 8 BYE\r\n"));
	ck_assert_ptr_nonnull(strstr(b, "\r\nVia: SIP/2.0/UDP "
	    "127.0.0.1:5060;branch=z9hG4bK"));
	b = sent_to("BYE sip:alice@10.0.0.7:5099 SIP/2.0\r\n");
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(strstr(b, "\r\nRoute: <sip:10.0.0.1:5080;lr>"
	    "\r\n"));
	ck_assert_ptr_nonnull(strstr(b, "\r\nFrom: <sip:bob@example.test>;"
	    "tag=tb\r\nTo: Alice <sip:alice@example.test>;tag=fa\r\n"));
	ck_assert_ptr_nonnull(strstr(b, "\r\nCSeq: 1 BYE\r\n"));
	ck_assert_uint_eq(dialog_count(), 0);
	ck_assert_int_eq(last_cdr.ended_by, CDR_BY_PROXY);
}
END_TEST

START_TEST(failure_ends_early)
{
	struct sipmsg		*inv = parse(INVITE), *r;
	struct dialog_call	*c;
	struct tp_addr		 src;
	char			 text[2048];

	ck_assert_int_eq(tp_addr_parse("10.0.0.1:5080", &src), 0);
	c = dialog_call_new(inv, &src, NULL, S(""), S(""), STAMP);
	sipmsg_free(inv);
	snprintf(text, sizeof(text), RESP("183 Session Progress", "e1"));
	r = parse(text);
	dialog_call_response(c, r, &src, NULL);
	sipmsg_free(r);
	snprintf(text, sizeof(text), RESP("180 Ringing", "e2"));
	r = parse(text);
	dialog_call_response(c, r, &src, NULL);
	sipmsg_free(r);
	ck_assert_uint_eq(dialog_count(), 2);
	dialog_call_final(c, 486, CDR_BY_CALLEE);
	ck_assert_uint_eq(dialog_count(), 0);
	ck_assert_int_eq(ncdr, 1);
	ck_assert_int_eq(last_cdr.code, 486);
	ck_assert_str_eq(cdr_to_tag, "");
	dialog_call_free(c);
}
END_TEST

START_TEST(limits)
{
	struct tp_addr	src;
	char		err[128];

	ck_assert_int_eq(tp_addr_parse("10.0.0.1:5080", &src), 0);
	ck_assert_int_eq(dialog_call_admit(S("carol"), &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(dialog_call_admit(S("carol"), &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(dialog_call_admit(S("carol"), &src, err,
	    sizeof(err)), 486);
	ck_assert_int_eq(dialog_call_admit(S("dave"), &src, err,
	    sizeof(err)), 0);
}
END_TEST


#define SUBSCRIBE \
	"SUBSCRIBE sip:bob@example.test SIP/2.0\r\n" \
	"Via: SIP/2.0/UDP 10.0.0.7:5099;branch=z9hG4bKs1\r\n" \
	"Record-Route: <sip:10.0.0.1:5080;lr>\r\n" \
	"From: <sip:alice@example.test>;tag=sa\r\n" \
	"To: <sip:bob@example.test>\r\n" \
	"Call-ID: s1@test\r\nCSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\n" \
	"Contact: <sip:alice@10.0.0.7:5099>\r\nEvent: presence\r\n" \
	"Expires: 600\r\nContent-Length: 0\r\n\r\n"

static int
sub_request(const char *method, const char *ftag, const char *ttag,
    const char *next, const char *more)
{
	struct sipmsg	*m;
	char		 text[1024], err[128];
	int		 rc;

	snprintf(text, sizeof(text), "%s sip:x@h SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 10.0.0.9:5090;branch=z9hG4bKn\r\n"
	    "From: <sip:b@example.test>;tag=%s\r\n"
	    "To: <sip:a@example.test>;tag=%s\r\n"
	    "Call-ID: s1@test\r\nCSeq: 9 %s\r\nMax-Forwards: 70\r\n"
	    "Contact: <sip:bob@10.0.0.9:5090>\r\n%s"
	    "Content-Length: 0\r\n\r\n", method, ftag, ttag, method, more);
	m = parse(text);
	rc = dialog_request(m, S(next), err, sizeof(err));
	sipmsg_free(m);
	return (rc);
}

/*
 * A SUBSCRIBE's NOTIFY before its 2xx makes the subscription; it is
 * checked as a call, counted apart, lasts as its NOTIFY says plus the
 * margin, and makes no record.
 */
START_TEST(subscription)
{
	struct sipmsg		*m = parse(SUBSCRIBE);
	struct dialog_call	*c;
	struct dialog_totals	 t;
	struct tp_addr		 src;

	ck_assert_int_eq(tp_addr_parse("10.0.0.1:5080", &src), 0);
	c = dialog_call_new(m, &src, &tp.socks[0], S(""), S(""), STAMP);
	sipmsg_free(m);
	/* To another than the subscriber's first route: refused. */
	ck_assert_int_eq(sub_request("NOTIFY", "nb", "sa",
	    "sip:10.6.6.6:5080;lr", "Subscription-State: active\r\n"), 403);
	ck_assert_uint_eq(dialog_count(), 0);
	ck_assert_int_eq(sub_request("NOTIFY", "nb", "sa",
	    "sip:10.0.0.1:5080;lr",
	    "Subscription-State: active;expires=60\r\n"), 0);
	ck_assert_uint_eq(dialog_count(), 1);
	dialog_totals(&t);
	ck_assert_uint_eq(t.subscriptions, 1);
	ck_assert_uint_eq(t.by_state[DLG_CONFIRMED], 0);
	/* The subscriber towards the notifier: its Contact, no route. */
	ck_assert_int_eq(sub_request("SUBSCRIBE", "sa", "nb",
	    "sip:bob@10.0.0.9:5090", ""), 0);
	ck_assert_int_eq(sub_request("SUBSCRIBE", "sa", "nb",
	    "sip:bob@10.6.6.6:5090", ""), 403);
	ck_assert_int_eq(sub_request("NOTIFY", "nb", "zz",
	    "sip:10.0.0.1:5080;lr", ""), 481);
	dialog_call_free(c);
	/* 60 s and the 32 s margin. */
	fake_advance(91999);
	ck_assert_uint_eq(dialog_count(), 1);
	fake_advance(1);
	ck_assert_uint_eq(dialog_count(), 0);
	ck_assert_int_eq(ncdr, 0);
	dialog_totals(&t);
	ck_assert_uint_eq(t.subscriptions, 0);
	ck_assert_uint_eq(t.bytes, 0);
}
END_TEST

/* A stop: the call up gets its record (41, the proxy's), once. */
START_TEST(stop_records)
{
	struct dialog_call	*c = call_up("tb");

	dialog_call_free(c);
	dialog_stop();
	dialog_shutdown();
	ck_assert_int_eq(ncdr, 1);
	ck_assert_int_eq(last_cdr.ended_by, CDR_BY_PROXY);
	ck_assert_int_eq(last_cdr.code, 200);
	ck_assert_int_eq(last_cdr.cause, 41);
	ck_assert_int_ne(last_cdr.answer.tv_sec, 0);
	dialog_shutdown();
	ck_assert_int_eq(ncdr, 1);
}
END_TEST

/* A stop with an INVITE on: a failed attempt, 503, whatever came. */
START_TEST(stop_attempt)
{
	struct sipmsg		*inv = parse(INVITE);
	struct dialog_call	*c;
	struct tp_addr		 src;

	ck_assert_int_eq(tp_addr_parse("10.0.0.1:5080", &src), 0);
	c = dialog_call_new(inv, &src, NULL, S(""), S(""), STAMP);
	sipmsg_free(inv);
	dialog_stop();
	dialog_call_final(c, 408, CDR_BY_PROXY);
	dialog_call_free(c);
	ck_assert_int_eq(ncdr, 1);
	ck_assert_int_eq(last_cdr.code, 503);
	ck_assert_int_eq(last_cdr.cause, 41);
	ck_assert_int_eq(last_cdr.ended_by, CDR_BY_PROXY);
}
END_TEST

static void
count_transit(const struct dialog_info *di, void *arg)
{
	if (di->transit)
		(*(int *)arg)++;
}

/*
 * Another node's call through our path token: tracked and routed, but no
 * record (answered, failed, at the stop), no limits, counted apart.
 */
START_TEST(transit_no_record)
{
	struct sipmsg		*inv, *r;
	struct dialog_call	*c;
	struct dialog_totals	 t0, t;
	struct tp_addr		 src, callee;
	char			 err[128];
	int			 ntransit = 0;

	ck_assert_int_eq(tp_addr_parse("10.0.0.1:5080", &src), 0);
	ck_assert_int_eq(tp_addr_parse("10.0.0.2:5070", &callee), 0);
	dialog_totals(&t0);
	inv = parse(INVITE);
	c = dialog_transit_new(inv, &src, &tp.socks[0], STAMP);
	sipmsg_free(inv);
	ck_assert(dialog_call_transit(c));
	r = parse(RESP("180 Ringing", "tb"));
	dialog_call_response(c, r, &callee, &tp.socks[0]);
	sipmsg_free(r);
	dialog_totals(&t);
	ck_assert_uint_eq(t.transit_by_state[DLG_EARLY], 1);
	ck_assert_uint_eq(t.by_state[DLG_EARLY], 0);
	r = parse(RESP("200 OK", "tb"));
	dialog_call_response(c, r, &callee, &tp.socks[0]);
	sipmsg_free(r);
	dialog_call_free(c);
	dialog_totals(&t);
	ck_assert_uint_eq(t.transit_by_state[DLG_CONFIRMED], 1);
	ck_assert_uint_eq(t.transit_by_state[DLG_EARLY], 0);
	ck_assert_uint_eq(t.by_state[DLG_CONFIRMED], 0);
	ck_assert_uint_eq(t.attempted, t0.attempted);
	ck_assert_uint_eq(t.answered, t0.answered);
	ck_assert_uint_eq(t.created, t0.created);
	ck_assert_uint_eq(t.transit_attempted, t0.transit_attempted + 1);
	dialog_foreach(count_transit, &ntransit);
	ck_assert_int_eq(ntransit, 1);
	/* The limits: none taken (calls_per_user is 2 here). */
	ck_assert_int_eq(dialog_call_admit(S("alice"), &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(dialog_call_admit(S("alice"), &src, err,
	    sizeof(err)), 0);
	/* Routed as any, ended by the BYE: no record, no end counted. */
	ck_assert_int_eq(request("INFO", "fa", "tb", "sip:10.0.0.2:5070;lr",
	    err, sizeof(err)), 0);
	ck_assert_int_eq(request("BYE", "tb", "fa", "sip:10.0.0.1:5080;lr",
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(dialog_count(), 0);
	ck_assert_int_eq(ncdr, 0);
	dialog_totals(&t);
	ck_assert_uint_eq(t.transit_by_state[DLG_CONFIRMED], 0);
	ck_assert_uint_eq(t.ended[CDR_BY_CALLEE], t0.ended[CDR_BY_CALLEE]);
	ck_assert_uint_eq(t.duration_count, t0.duration_count);
	/* A failed transit attempt, and one up at the stop: no record. */
	inv = parse(INVITE);
	c = dialog_transit_new(inv, &src, NULL, STAMP);
	sipmsg_free(inv);
	dialog_call_final(c, 486, CDR_BY_CALLEE);
	dialog_call_free(c);
	inv = parse(INVITE);
	c = dialog_transit_new(inv, &src, NULL, STAMP);
	sipmsg_free(inv);
	r = parse(RESP("200 OK", "t2"));
	dialog_call_response(c, r, &callee, NULL);
	sipmsg_free(r);
	dialog_call_free(c);
	dialog_shutdown();
	ck_assert_int_eq(ncdr, 0);
	dialog_init(NULL, &tp);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("pure");

	check_add(tc, uri_same, rr_split);
	tc = check_fixed("table", setup, teardown);
	check_add(tc, in_dialog_checks, timeout_byes, failure_ends_early,
	    limits, subscription, stop_records, stop_attempt,
	    transit_no_record);
	return (check_run("dialog"));
}
