/*
 * Unit tests: the registrar (registrar.c) and its steps on the fake clock,
 * with the location service under it, and the SQLite store (store.c).
 * auth.c and location.c have theirs in test_auth.c and test_location.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "check_util.h"
#include "fake.h"
#include "location.h"
#include "log.h"
#include "registrar.h"
#include "sipmsg.h"
#include "tp.h"

/* The registrar on the fake clock. */
static struct registrar_settings rset;
static struct tp_sock fake_sock;
static struct tp_addr src;

static void
reg_setup(void)
{
	char	err[256];

	fake_reset();
	memset(&rset, 0, sizeof(rset));
	rset.enabled = true;
	rset.min_expires_s = 60;
	rset.max_expires_s = 3600;
	rset.default_expires_s = 1800;
	rset.max_contacts = 3;
	rset.max_per_source = 1000;
	ck_assert_int_eq(registrar_init(NULL, NULL, err, sizeof(err)), 0);
	registrar_set(&rset);
	snprintf(fake_sock.hostport, sizeof(fake_sock.hostport),
	    "127.0.0.1:5060");
	snprintf(fake_sock.name, sizeof(fake_sock.name), "127.0.0.1:5060");
	tp_addr_set(&src, S("198.51.100.9"), 40000);	/* behind NAT */
}

static void
reg_teardown(void)
{
	registrar_shutdown();
}

static const char *reg_aor = "alice@example.test";

/* A REGISTER for alice with the given extra header lines. */
static struct sipmsg *
reg_msg(const char *callid, unsigned cseq, const char *hdrs)
{
	char	text[2048];

	snprintf(text, sizeof(text),
	    "REGISTER sip:example.test SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKr%u\r\n"
	    "Max-Forwards: 70\r\n"
	    "To: <sip:alice@example.test>\r\n"
	    "From: <sip:alice@example.test>;tag=f1\r\n"
	    "Call-ID: %s\r\n"
	    "CSeq: %u REGISTER\r\n"
	    "%s"
	    "Content-Length: 0\r\n\r\n", cseq, callid, cseq, hdrs);
	return (parse(text));
}

/* registrar_register() on that REGISTER; out gets the header lines. */
static int
reg(const char *callid, unsigned cseq, const char *hdrs, struct buf *out)
{
	char		 err[128];
	struct sipmsg	*m = reg_msg(callid, cseq, hdrs);
	int		 code;

	out->len = 0;
	out->p[0] = '\0';
	code = registrar_register(m, S(reg_aor), &fake_sock, &src, true, out,
	    err, sizeof(err));
	sipmsg_free(m);
	return (code);
}

static unsigned
count_contacts(const char *s)
{
	unsigned	n = 0;

	while ((s = strstr(s, "Contact: ")) != NULL) {
		n++;
		s++;
	}
	return (n);
}

START_TEST(register_add_refresh_remove)
{
	struct buf	 b;
	struct aor	*a;

	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:alice@10.0.0.5:5062>\r\n",
	    &b), 200);
	ck_assert_ptr_nonnull(strstr(b.p,
	    "Contact: <sip:alice@10.0.0.5:5062>;expires=1800\r\n"));
	ck_assert_ptr_nonnull(strstr(b.p, "Date: "));
	ck_assert_ptr_nonnull(a = location_find(S("alice@example.test")));
	ck_assert_uint_eq(a->n, 1);
	/* Received from where it came (NAT), not from the Contact. */
	ck_assert_uint_eq(tp_addr_port(&a->b->received), 40000);
	/* A second phone with q and an Expires header; clamped to max. */
	ck_assert_int_eq(reg("c2", 1, "Expires: 7200\r\n"
	    "Contact: <sip:alice@10.0.0.6>;q=0.5\r\n", &b), 200);
	ck_assert_uint_eq(count_contacts(b.p), 2);
	ck_assert_ptr_nonnull(strstr(b.p,
	    "<sip:alice@10.0.0.6>;expires=3600;q=0.5\r\n"));
	/* The same Call-ID with an old CSeq: out of order, 500. */
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:alice@10.0.0.5:5062>\r\n",
	    &b), 500);
	/* Too brief: 423 with Min-Expires. */
	ck_assert_int_eq(reg("c1", 2, "Contact: <sip:alice@10.0.0.5:5062>"
	    ";expires=10\r\n", &b), 423);
	ck_assert_ptr_nonnull(strstr(b.p, "Min-Expires: 60\r\n"));
	/* A query lists both. */
	ck_assert_int_eq(reg("c3", 1, "", &b), 200);
	ck_assert_uint_eq(count_contacts(b.p), 2);
	/* Expires 0 removes one. */
	ck_assert_int_eq(reg("c1", 3, "Contact: <sip:alice@10.0.0.5:5062>"
	    ";expires=0\r\n", &b), 200);
	ck_assert_uint_eq(count_contacts(b.p), 1);
	/* Contact: * needs Expires: 0 ... */
	ck_assert_int_eq(reg("c4", 1, "Contact: *\r\n", &b), 400);
	ck_assert_int_eq(reg("c4", 1, "Expires: 0\r\nContact: *\r\n", &b),
	    200);
	ck_assert_uint_eq(count_contacts(b.p), 0);
	ck_assert_ptr_null(location_find(S("alice@example.test")));
	ck_assert_uint_eq(location_count(), 0);
	buf_cleanup(&b);
}
END_TEST

START_TEST(register_limits_and_instances)
{
	struct buf	 b;

	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>, "
	    "<sip:a@10.0.0.2>, <sip:a@10.0.0.3>\r\n", &b), 200);
	ck_assert_int_eq(reg("c1", 2, "Contact: <sip:a@10.0.0.4>\r\n", &b),
	    403);	/* max_contacts = 3 */
	/* Replacing one with another in the same request fits. */
	ck_assert_int_eq(reg("c1", 3, "Contact: <sip:a@10.0.0.3>;expires=0, "
	    "<sip:a@10.0.0.4>\r\n", &b), 200);
	ck_assert_uint_eq(location_count(), 3);
	ck_assert_int_eq(reg("c1", 4, "Contact: <sip:a@10.0.0.5>;q=2\r\n", &b),
	    400);	/* not a q-value */
	ck_assert_int_eq(reg("c1", 4, "Expires: soon\r\n", &b), 400);
	/* Beyond 2^32-1 is 2^32-1 (RFC 3261 20.19), then the maximum. */
	ck_assert_int_eq(reg("c1", 4, "Expires: 99999999999999999999\r\n"
	    "Contact: <sip:a@10.0.0.1>\r\n", &b), 200);
	ck_assert_ptr_nonnull(strstr(b.p, "<sip:a@10.0.0.1>;expires=3600\r\n"));
	ck_assert_int_eq(reg("c1", 5, "Expires: 0\r\nContact: *\r\n", &b),
	    200);
	/* RFC 5626: the instance names the binding, whatever the Contact. */
	ck_assert_int_eq(reg("c9", 1, "Supported: outbound, path\r\n"
	    "Path: <sip:edge.example.test;lr>\r\n"
	    "Contact: <sip:a@10.0.0.7>;+sip.instance=\"<urn:uuid:1>\";"
	    "reg-id=1\r\n", &b), 200);
	ck_assert_ptr_nonnull(strstr(b.p, "Require: outbound\r\n"));
	ck_assert_ptr_nonnull(strstr(b.p,
	    "Path: <sip:edge.example.test;lr>\r\n"));
	ck_assert_str_eq(location_find(S("alice@example.test"))->b->path,
	    "<sip:edge.example.test;lr>");
	ck_assert_int_eq(reg("c10", 1, "Contact: <sip:a@10.0.0.8>;"
	    "+sip.instance=\"<urn:uuid:1>\";reg-id=1\r\n", &b), 200);
	ck_assert_uint_eq(location_count(), 1);
	ck_assert_ptr_nonnull(strstr(b.p, "<sip:a@10.0.0.8>;expires=1800;"
	    "+sip.instance=\"<urn:uuid:1>\";reg-id=1\r\n"));
	/* The refresh came without a Path: the binding has none now. */
	ck_assert_ptr_null(location_find(S("alice@example.test"))->b->path);
	buf_cleanup(&b);
}
END_TEST

/* A Contact that cannot be a Request-URI is refused, not stored (fuzzer). */
START_TEST(register_contact_fits_ruri)
{
	struct buf	 b;

	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:al ice@10.0.0.1>\r\n",
	    &b), 400);
	ck_assert_int_eq(reg("c1", 2, "Contact: <sip:alice@10.0.0.1?X=y>\r\n",
	    &b), 400);
	ck_assert_int_eq(reg("c1", 3, "Contact: <sip:alice@10.0.0.1>, "
	    "<sip:al\tice@10.0.0.2>\r\n", &b), 400);
	ck_assert_uint_eq(location_count(), 0);
	ck_assert_int_eq(reg("c1", 4, "Contact: <sip:a?b@10.0.0.1;x=y>\r\n",
	    &b), 200);	/* "?" in the user part is no header */
	ck_assert_uint_eq(location_count(), 1);
	buf_cleanup(&b);
}
END_TEST

/* SECURITY-TESTS 2.8: many AORs from one address stop at the limit. */
START_TEST(register_limit_per_source)
{
	struct buf	b;
	char		aor[64], contact[96];
	unsigned	i;

	rset.max_per_source = 3;
	buf_init(&b, 256);
	for (i = 0; i < 5; i++) {
		snprintf(aor, sizeof(aor), "u%u@example.test", i);
		snprintf(contact, sizeof(contact), "Contact: <sip:u%u@10.0.0.9>"
		    "\r\n", i);
		reg_aor = aor;
		ck_assert_int_eq(reg("c1", i + 1, contact, &b), i < 3 ? 200 :
		    403);
	}
	ck_assert_uint_eq(location_count(), 3);
	ck_assert_uint_eq(location_from_source(&src), 3);
	/* A refresh adds nothing and passes; a removal makes room. */
	reg_aor = "u0@example.test";
	ck_assert_int_eq(reg("c1", 10, "Contact: <sip:u0@10.0.0.9>\r\n", &b),
	    200);
	ck_assert_int_eq(reg("c1", 11, "Expires: 0\r\nContact: *\r\n", &b),
	    200);
	ck_assert_uint_eq(location_from_source(&src), 2);
	reg_aor = "u4@example.test";
	ck_assert_int_eq(reg("c1", 12, "Contact: <sip:u4@10.0.0.9>\r\n", &b),
	    200);
	reg_aor = "alice@example.test";
	buf_cleanup(&b);
}
END_TEST

START_TEST(bindings_expire_on_the_clock)
{
	struct buf	b;

	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>;expires=120, "
	    "<sip:a@10.0.0.2>;expires=60\r\n", &b), 200);
	fake_advance(59000);
	ck_assert_uint_eq(location_count(), 2);
	fake_advance(1500);
	ck_assert_uint_eq(location_count(), 1);
	ck_assert_int_eq(reg("c2", 1, "", &b), 200);
	ck_assert_ptr_nonnull(strstr(b.p, "<sip:a@10.0.0.1>;expires=60\r\n"));
	fake_advance(60000);
	ck_assert_uint_eq(location_count(), 0);
	ck_assert_ptr_null(location_find(S("alice@example.test")));
	buf_cleanup(&b);
}
END_TEST

START_TEST(store_keeps_bindings)
{
	char		 db[] = "/tmp/osprey-store-XXXXXX", err[256], path[64];
	struct buf	 b;
	int		 fd = mkstemp(db);
	struct aor	*a;

	close(fd);
	unlink(db);
	registrar_shutdown();
	ck_assert_int_eq(registrar_init(NULL, db, err, sizeof(err)), 0);
	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>;q=0.7, "
	    "<sip:a@10.0.0.2>;expires=0\r\nUser-Agent: test/1\r\n", &b), 200);
	ck_assert_int_eq(reg("c1", 2, "Contact: <sip:a@10.0.0.3>\r\n", &b),
	    200);
	ck_assert_int_eq(reg("c1", 3, "Contact: <sip:a@10.0.0.3>;expires=0\r\n",
	    &b), 200);
	registrar_shutdown();	/* as systemctl restart would */
	ck_assert_uint_eq(location_count(), 0);
	ck_assert_int_eq(registrar_init(NULL, db, err, sizeof(err)), 0);
	ck_assert_uint_eq(location_count(), 1);
	ck_assert_ptr_nonnull(a = location_find(S("alice@example.test")));
	ck_assert_str_eq(a->b->contact, "sip:a@10.0.0.1");
	ck_assert_uint_eq(a->b->q, 700);
	ck_assert_str_eq(a->b->user_agent, "test/1");
	ck_assert_uint_eq(tp_addr_port(&a->b->received), 40000);
	ck_assert_uint_le(binding_expires_in(a->b), 1800);
	ck_assert_uint_ge(binding_expires_in(a->b), 1798);
	/* The same Call-ID and CSeq after the restart: still out of order. */
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n", &b),
	    500);
	buf_cleanup(&b);
	registrar_shutdown();
	ck_assert_int_eq(registrar_init(NULL, NULL, err, sizeof(err)), 0);
	unlink(db);
	snprintf(path, sizeof(path), "%s-wal", db);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", db);
	unlink(path);
}
END_TEST

/* One Contact value judged: parameters read, the errors named. */
START_TEST(contact_parse_one)
{
	static const struct {
		const char	*v;
		const char	*err;
	} bad[] = {
		{ "<sip:al ice@10.0.0.1>", "Bad Contact URI" },
		{ "<sip:10.0.0.1?X=y>", "Bad Contact URI" },
		{ "<mailto:a@b>", "Bad Contact URI" },
		{ "<sip:a@10.0.0.1>;expires=soon", "Bad expires parameter" },
		{ "<sip:a@10.0.0.1>;q=1.5", "Bad q value" },
		{ "<sip:a@10.0.0.1>;q=0.1234", "Bad q value" },
		{ "<sip:a@10.0.0.1>;reg-id=0", "Bad reg-id" },
		{ "<sip:a@10.0.0.1>;reg-id=x", "Bad reg-id" },
	};
	struct binding_info	bi;
	char			err[64];
	size_t			i;

	ck_assert_int_eq(registrar_contact_parse(S("\"A\" <sip:a@10.0.0.1:5062"
	    ";transport=udp>;expires=120;q=0.25;+sip.instance=\"<urn:x>\";"
	    "reg-id=2"), 600, &bi, err, sizeof(err)), 0);
	ck_assert_slice_eq(bi.contact, "sip:a@10.0.0.1:5062;transport=udp");
	ck_assert_uint_eq(bi.expires_s, 120);
	ck_assert_uint_eq(bi.q, 250);
	ck_assert_slice_eq(bi.instance, "\"<urn:x>\"");
	ck_assert_uint_eq(bi.reg_id, 2);
	/* Without parameters: the header's expiry, q 1. */
	ck_assert_int_eq(registrar_contact_parse(S("sip:a@10.0.0.1"), 600, &bi,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(bi.expires_s, 600);
	ck_assert_uint_eq(bi.q, 1000);
	ck_assert_uint_eq(bi.instance.len, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(registrar_contact_parse(S(bad[i].v), 600, &bi,
		    err, sizeof(err)) == 400, "%s", bad[i].v);
		ck_assert_str_eq(err, bad[i].err);
	}
}
END_TEST

/* A plan reads the request and the bindings; nothing changes. */
START_TEST(plan_changes_nothing)
{
	struct reg_plan	 p;
	struct sipmsg	*m;
	struct buf	 b;
	char		 err[64];

	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>, "
	    "<sip:a@10.0.0.2>\r\n", &b), 200);
	m = reg_msg("c1", 2, "Expires: 300\r\nPath: <sip:edge;lr>\r\n"
	    "Contact: <sip:a@10.0.0.1>;expires=0, <sip:a@10.0.0.2>, "
	    "<sip:a@10.0.0.3>;expires=30, <sip:a@10.0.0.4>;expires=0\r\n");
	ck_assert_int_eq(registrar_plan(m, S(reg_aor), &fake_sock, &src, &p,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(p.n, 4);
	ck_assert_uint_eq(p.added, 1);		/* .3 */
	ck_assert_uint_eq(p.removed, 1);	/* .1; .4 was never there */
	ck_assert(p.brief);			/* 30 < min_expires */
	ck_assert(!p.star);
	ck_assert_uint_eq(p.hdr_expires, 300);
	ck_assert_slice_eq(p.path, "<sip:edge;lr>");
	ck_assert(p.c[0].remove && p.c[0].old != NULL);
	ck_assert(!p.c[1].remove && p.c[1].old != NULL);
	ck_assert_uint_eq(p.c[1].bi.expires_s, 300);
	ck_assert_uint_eq(p.c[1].bi.cseq, 2);
	ck_assert_slice_eq(p.c[1].bi.callid, "c1");
	ck_assert_str_eq(p.c[1].bi.local, "127.0.0.1:5060");
	ck_assert(p.c[2].old == NULL && p.c[3].old == NULL);
	ck_assert_uint_eq(location_count(), 2);
	registrar_plan_cleanup(&p);
	sipmsg_free(m);
	/* Contact: * is a plan of its own. */
	m = reg_msg("c2", 1, "Expires: 0\r\nContact: *\r\n");
	ck_assert_int_eq(registrar_plan(m, S(reg_aor), &fake_sock, &src, &p,
	    err, sizeof(err)), 0);
	ck_assert(p.star);
	ck_assert_uint_eq(location_count(), 2);
	registrar_plan_cleanup(&p);
	sipmsg_free(m);
	buf_cleanup(&b);
}
END_TEST

/* What a plan refuses, with its status and reason. */
START_TEST(plan_refuses)
{
	static const struct {
		const char	*callid;
		unsigned	 cseq;
		const char	*hdrs;
		int		 code;
		const char	*err;
	} t[] = {
		{ "c9", 1, "Expires: soon\r\n", 400, "Bad Expires header" },
		{ "c9", 1, "Contact: *\r\n", 400,
		    "Contact: * needs Expires: 0 and no other Contact" },
		{ "c9", 1, "Expires: 0\r\nContact: *, <sip:a@10.0.0.1>\r\n",
		    400, "Contact: * needs Expires: 0 and no other Contact" },
		{ "c9", 1, "Expires: 60\r\nContact: *\r\n", 400,
		    "Contact: * needs Expires: 0 and no other Contact" },
		{ "c1", 1, "Expires: 0\r\nContact: *\r\n", 500,
		    "CSeq out of order" },
		{ "c1", 1, "Contact: <sip:a@10.0.0.1>\r\n", 500,
		    "CSeq out of order" },
		{ "c9", 1, "Contact: <sip:a@10.0.0.1>, <sip:a b@x>\r\n", 400,
		    "Bad Contact URI" },
	};
	struct reg_plan	 p;
	struct sipmsg	*m;
	struct buf	 b;
	char		 err[64], many[64 * 24 + 16];
	size_t		 i;

	buf_init(&b, 256);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n", &b),
	    200);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		m = reg_msg(t[i].callid, t[i].cseq, t[i].hdrs);
		err[0] = '\0';
		ck_assert_msg(registrar_plan(m, S(reg_aor), &fake_sock, &src,
		    &p, err, sizeof(err)) == t[i].code, "case %zu", i);
		ck_assert_str_eq(err, t[i].err);
		registrar_plan_cleanup(&p);
		sipmsg_free(m);
	}
	/* More Contact values than REG_MAX_VALUES. */
	snprintf(many, sizeof(many), "Contact: ");
	for (i = 0; i <= REG_MAX_VALUES; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		    "%s<sip:a@h%zu>", i ? "," : "", i);
	strcat(many, "\r\n");
	m = reg_msg("c9", 1, many);
	ck_assert_int_eq(registrar_plan(m, S(reg_aor), &fake_sock, &src, &p,
	    err, sizeof(err)), 400);
	ck_assert_str_eq(err, "Too many Contact values");
	registrar_plan_cleanup(&p);
	sipmsg_free(m);
	buf_cleanup(&b);
}
END_TEST

/* admit: 423 (with Min-Expires) before 403, per AOR then per source. */
START_TEST(admit_limits)
{
	struct reg_plan	p;
	struct buf	b;
	char		err[64];

	buf_init(&b, 256);
	memset(&p, 0, sizeof(p));
	p.added = 3;				/* max_contacts = 3 */
	ck_assert_int_eq(registrar_admit(&p, S(reg_aor), &src, true, &b, err,
	    sizeof(err)), 0);
	p.added = 4;
	ck_assert_int_eq(registrar_admit(&p, S(reg_aor), &src, true, &b, err,
	    sizeof(err)), 403);
	ck_assert_str_eq(err, "Too Many Contacts");
	p.brief = true;
	ck_assert_int_eq(registrar_admit(&p, S(reg_aor), &src, true, &b, err,
	    sizeof(err)), 423);
	ck_assert_str_eq(b.p, "Min-Expires: 60\r\n");
	p.star = true;				/* removes: no limit */
	ck_assert_int_eq(registrar_admit(&p, S(reg_aor), &src, true, &b, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(reg("c1", 1, "Contact: <sip:a@10.0.0.1>, "
	    "<sip:a@10.0.0.2>\r\n", &b), 200);
	memset(&p, 0, sizeof(p));
	p.added = 2;
	p.removed = 1;				/* 2 - 1 + 2 = 3 fits */
	ck_assert_int_eq(registrar_admit(&p, S(reg_aor), &src, true, &b, err,
	    sizeof(err)), 0);
	p.removed = 0;
	ck_assert_int_eq(registrar_admit(&p, S(reg_aor), &src, true, &b, err,
	    sizeof(err)), 403);
	rset.max_per_source = 3;		/* 2 from src already */
	p.added = 1;
	ck_assert_int_eq(registrar_admit(&p, S("bob@example.test"), &src,
	    true, &b, err, sizeof(err)), 0);
	p.added = 2;
	ck_assert_int_eq(registrar_admit(&p, S("bob@example.test"), &src,
	    true, &b, err, sizeof(err)), 403);
	ck_assert_str_eq(err, "Too Many Registrations From This Address");
	ck_assert_int_eq(registrar_admit(&p, S("bob@example.test"), &src,
	    false, &b, err, sizeof(err)), 0);	/* trusted: no limit */
	buf_cleanup(&b);
}
END_TEST

/* The 200's lines: Path only when supported, Require: outbound, Date. */
START_TEST(answer_lines)
{
	struct reg_plan	 p;
	struct sipmsg	*m;
	struct buf	 b;
	char		 err[64];

	buf_init(&b, 256);
	m = reg_msg("c1", 1, "Path: <sip:edge;lr>\r\n"
	    "Contact: <sip:a@10.0.0.1>;+sip.instance=\"<urn:x>\";reg-id=1\r\n");
	ck_assert_int_eq(registrar_plan(m, S(reg_aor), &fake_sock, &src, &p,
	    err, sizeof(err)), 0);
	registrar_apply(&p, S(reg_aor));
	ck_assert_uint_eq(location_count(), 1);
	b.len = 0;
	registrar_answer(m, S(reg_aor), &p, &b);
	ck_assert_ptr_null(strstr(b.p, "Path:"));
	ck_assert_ptr_null(strstr(b.p, "Require:"));
	ck_assert_ptr_nonnull(strstr(b.p, "Contact: <sip:a@10.0.0.1>;"
	    "expires=1800;+sip.instance=\"<urn:x>\";reg-id=1\r\nDate: "));
	registrar_plan_cleanup(&p);
	sipmsg_free(m);
	m = reg_msg("c1", 2, "Supported: path, outbound\r\n"
	    "Path: <sip:edge;lr>\r\n");
	ck_assert_int_eq(registrar_plan(m, S(reg_aor), &fake_sock, &src, &p,
	    err, sizeof(err)), 0);
	b.len = 0;
	registrar_answer(m, S(reg_aor), &p, &b);
	ck_assert_ptr_nonnull(strstr(b.p, "Path: <sip:edge;lr>\r\nContact: "));
	ck_assert_ptr_nonnull(strstr(b.p, "Require: outbound\r\nDate: "));
	registrar_plan_cleanup(&p);
	sipmsg_free(m);
	buf_cleanup(&b);
}
END_TEST

int
main(void)
{
	TCase	*tr = check_fixed("registrar", reg_setup, reg_teardown);

	sipmsg_init();
	log_init(true, LOG_LVL_WARNING);
	check_add(tr, register_add_refresh_remove,
	    register_limits_and_instances, register_contact_fits_ruri,
	    register_limit_per_source, bindings_expire_on_the_clock,
	    store_keeps_bindings, contact_parse_one, plan_changes_nothing,
	    plan_refuses, admit_limits, answer_lines);
	return (check_run("registrar"));
}
