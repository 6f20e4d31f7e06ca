/*
 * Unit tests: digest authentication (auth.c), networks (acl.c), the
 * registrar and location service (registrar.c, location.c) on the fake
 * clock, and the SQLite store (store.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "acl.h"
#include "auth.h"
#include "check_util.h"
#include "fake.h"
#include "location.h"
#include "log.h"
#include "registrar.h"
#include "sipmsg.h"
#include "tp.h"

/* RFC 7616 3.9.1: the example, MD5 and SHA-256. */
START_TEST(digest_rfc7616_vectors)
{
	char	ha1[65], out[65];
	const char *a1 = "Mufasa:http-auth@example.org:Circle of Life";
	const char *nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
	const char *cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

	auth_hex_digest(AUTH_MD5, a1, strlen(a1), ha1);
	auth_digest_response(AUTH_MD5, ha1, nonce, "00000001", cnonce,
	    S("GET"), "/dir/index.html", out);
	ck_assert_str_eq(out, "8ca523f5e9506fed4657c9700eebdbec");
	auth_hex_digest(AUTH_SHA256, a1, strlen(a1), ha1);
	auth_digest_response(AUTH_SHA256, ha1, nonce, "00000001", cnonce,
	    S("GET"), "/dir/index.html", out);
	ck_assert_str_eq(out, "753927fa0e85d155564e2e272a28d180"
	    "2ca10daf4496794697cf8db5856cb6c1");
}
END_TEST

static char users_path[64];
static struct auth_settings aset;

static void
auth_setup(void)
{
	static const uint8_t	secret[32] = { 1, 2, 3 };
	char			md5[33], sha[65], err[256];
	const char		*a = "alice:example.test:secret";
	const char		*c = "carol:example.test:pw";
	struct auth_users	*u;
	FILE			*fp;
	int			 fd;

	fake_reset();
	snprintf(users_path, sizeof(users_path), "/tmp/osprey-users-XXXXXX");
	ck_assert_int_ge(fd = mkstemp(users_path), 0);
	fp = fdopen(fd, "w");
	auth_hex_digest(AUTH_MD5, a, strlen(a), md5);
	auth_hex_digest(AUTH_SHA256, a, strlen(a), sha);
	fprintf(fp, "# comment\n\nalice:example.test:%s:%s\n", md5, sha);
	auth_hex_digest(AUTH_MD5, c, strlen(c), md5);
	fprintf(fp, "carol:example.test:%s\n", md5);	/* MD5 only */
	fclose(fp);
	ck_assert_ptr_nonnull(u = auth_users_load(users_path, err,
	    sizeof(err)));
	ck_assert_uint_eq(auth_users_count(u), 2);
	memset(&aset, 0, sizeof(aset));
	aset.users_file = users_path;
	aset.nonce_expiry_s = 300;
	aset.algorithms = AUTH_MD5 | AUTH_SHA256;
	auth_init(secret);
	auth_set(&aset, u);
}

static void
auth_teardown(void)
{
	auth_shutdown();
	unlink(users_path);
}

/* A REGISTER with credentials computed for password pw. */
static const char *digest_uri = "sip:example.test";

static struct sipmsg *
register_with(const char *user, const char *pw, unsigned algo,
    const char *nonce, const char *nc)
{
	char	a1[128], ha1[65], resp[65], text[2048];
	const char *uri = digest_uri;

	snprintf(a1, sizeof(a1), "%s:example.test:%s", user, pw);
	auth_hex_digest(algo, a1, strlen(a1), ha1);
	auth_digest_response(algo, ha1, nonce, nc, "abc123", S("REGISTER"), uri,
	    resp);
	snprintf(text, sizeof(text),
	    "REGISTER sip:example.test SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKr1\r\n"
	    "Max-Forwards: 70\r\n"
	    "To: <sip:%s@example.test>\r\n"
	    "From: <sip:%s@example.test>;tag=f1\r\n"
	    "Call-ID: reg-1@192.0.2.7\r\n"
	    "CSeq: 1 REGISTER\r\n"
	    "Authorization: Digest username=\"%s\", realm=\"example.test\", "
	    "nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s, "
	    "cnonce=\"abc123\", qop=auth, nc=%s\r\n"
	    "Contact: <sip:%s@192.0.2.7:5062>\r\n"
	    "Content-Length: 0\r\n\r\n", user, user, user, nonce, uri, resp,
	    algo == AUTH_SHA256 ? "SHA-256" : "MD5", nc, user);
	return (parse(text));
}

/* *user is copied out: auth_check() leaves it pointing into m. */
static enum auth_result
check(struct sipmsg *m, struct slice *user)
{
	static char		name[64];
	char			err[128];
	enum auth_result	r;

	*user = (struct slice){ "", 0 };
	r = auth_check(m, false, S("example.test"), user, err, sizeof(err));
	snprintf(name, sizeof(name), SLICE_FMT, SLICE_ARG(*user));
	*user = S(name);
	sipmsg_free(m);
	return (r);
}

START_TEST(auth_nonces)
{
	char		n[AUTH_NONCE_LEN + 1];
	uint32_t	now = (uint32_t)time(NULL);

	auth_nonce_make(S("example.test"), now, n);
	ck_assert_int_eq(strlen(n), AUTH_NONCE_LEN);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), 0);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"),
	    now + 301), 1);			/* stale */
	ck_assert_int_eq(auth_nonce_check(S(n), S("other.test"), now), -1);
	n[30] = n[30] == 'a' ? 'b' : 'a';	/* tampered */
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), -1);
	ck_assert_int_eq(auth_nonce_check(S("abc"), S("example.test"), now),
	    -1);
	/* After a restart (a new epoch) a genuine nonce is stale. */
	auth_nonce_make(S("example.test"), now, n);
	auth_shutdown();
	auth_init((const uint8_t[32]){ 1, 2, 3 });
	auth_set(&aset, NULL);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), 1);
}
END_TEST

START_TEST(auth_passwords_and_replay)
{
	char		n[AUTH_NONCE_LEN + 1], n2[AUTH_NONCE_LEN + 1];
	struct slice	user;

	auth_nonce_make(S("example.test"), (uint32_t)time(NULL), n);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000001"), &user), AUTH_OK);
	ck_assert(slice_eq(user, "alice"));
	/* The same count again is a replay; a higher one is fine. */
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000001"), &user), AUTH_FAIL);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_SHA256,
	    n, "00000002"), &user), AUTH_OK);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000002"), &user), AUTH_FAIL);
	/* Wrong password and unknown user: the same answer. */
	auth_nonce_make(S("example.test"), (uint32_t)time(NULL), n2);
	ck_assert_int_eq(check(register_with("alice", "wrong", AUTH_MD5, n2,
	    "00000001"), &user), AUTH_FAIL);
	ck_assert_int_eq(check(register_with("mallory", "x", AUTH_MD5, n2,
	    "00000001"), &user), AUTH_FAIL);
	/* carol has no SHA-256 hash on file: only MD5 works for her. */
	ck_assert_int_eq(check(register_with("carol", "pw", AUTH_SHA256, n2,
	    "00000001"), &user), AUTH_FAIL);
	ck_assert_int_eq(check(register_with("carol", "pw", AUTH_MD5, n2,
	    "00000001"), &user), AUTH_OK);
	ck_assert(auth_user_exists(S("carol"), S("example.test")));
	ck_assert(!auth_user_exists(S("mallory"), S("example.test")));
	ck_assert(!auth_user_exists(S("carol"), S("other.test")));
}
END_TEST

START_TEST(auth_stale_nonce)
{
	char		n[AUTH_NONCE_LEN + 1];
	struct slice	user;

	/* Issued 301 s ago with the right password: stale, not a failure. */
	auth_nonce_make(S("example.test"), (uint32_t)time(NULL) - 301, n);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000001"), &user), AUTH_STALE);
	/* With a wrong password an old nonce is just a failure. */
	ck_assert_int_eq(check(register_with("alice", "bad", AUTH_MD5, n,
	    "00000001"), &user), AUTH_FAIL);
}
END_TEST

START_TEST(auth_uri_must_match)
{
	char		n[AUTH_NONCE_LEN + 1];
	struct slice	user;

	auth_nonce_make(S("example.test"), (uint32_t)time(NULL), n);
	digest_uri = "sip:elsewhere.test";	/* answered for another URI */
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000001"), &user), AUTH_BAD);
	digest_uri = "sip:EXAMPLE.test:5060";	/* the same URI, written so */
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000001"), &user), AUTH_OK);
	digest_uri = "sip:example.test";
}
END_TEST

/* Counts are kept for the last 2^20 nonces; an older one is stale. */
START_TEST(auth_old_nonce_loses_its_count)
{
	char		n[AUTH_NONCE_LEN + 1], m[AUTH_NONCE_LEN + 1];
	struct slice	user;
	uint32_t	now = (uint32_t)time(NULL);
	unsigned	i;

	auth_nonce_make(S("example.test"), now, n);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000001"), &user), AUTH_OK);
	for (i = 0; i < (1u << 20); i++)
		auth_nonce_make(S("example.test"), now, m);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, n,
	    "00000002"), &user), AUTH_STALE);
	ck_assert_int_eq(check(register_with("alice", "secret", AUTH_MD5, m,
	    "00000001"), &user), AUTH_OK);
}
END_TEST

START_TEST(auth_challenge_headers)
{
	struct buf	b;

	buf_init(&b, 256);
	auth_challenge(&b, true, S("example.test"), true);
	ck_assert_ptr_nonnull(strstr(b.p, "Proxy-Authenticate: Digest "
	    "realm=\"example.test\", nonce=\""));
	ck_assert_ptr_nonnull(strstr(b.p, "algorithm=MD5, stale=true\r\n"));
	ck_assert_ptr_nonnull(strstr(b.p, "algorithm=SHA-256, stale=true\r\n"));
	ck_assert(strstr(b.p, "MD5") < strstr(b.p, "SHA-256"));
	buf_cleanup(&b);
}
END_TEST

START_TEST(auth_users_file_errors)
{
	char		 path[] = "/tmp/osprey-users-XXXXXX", err[256];
	int		 fd = mkstemp(path);
	FILE		*fp = fdopen(fd, "w");

	fprintf(fp, "alice:example.test:0123456789abcdef0123456789abcdef\n"
	    "bob:example.test:nothex\n");
	fclose(fp);
	ck_assert_ptr_null(auth_users_load(path, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, ":2: the MD5 HA1 must be 32 hex"));
	unlink(path);
}
END_TEST

START_TEST(acl_networks)
{
	struct acl	a;
	struct tp_addr	x;
	char		err[128];

	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(acl_add(&a, "192.0.2.0/25", err, sizeof(err)), 0);
	ck_assert_int_eq(acl_add(&a, "2001:db8::/32", err, sizeof(err)), 0);
	ck_assert_int_eq(acl_add(&a, "10.0.0.1", err, sizeof(err)), 0);
	ck_assert_int_eq(acl_add(&a, "10.0.0.0/33", err, sizeof(err)), -1);
	ck_assert_int_eq(acl_add(&a, "nonsense", err, sizeof(err)), -1);
	tp_addr_set(&x, S("192.0.2.127"), 5060);
	ck_assert(acl_match(&a, &x));
	tp_addr_set(&x, S("192.0.2.128"), 5060);
	ck_assert(!acl_match(&a, &x));
	tp_addr_set(&x, S("10.0.0.1"), 1);
	ck_assert(acl_match(&a, &x));
	tp_addr_set(&x, S("10.0.0.2"), 1);
	ck_assert(!acl_match(&a, &x));
	tp_addr_set(&x, S("2001:db8:ffff::1"), 1);
	ck_assert(acl_match(&a, &x));
	tp_addr_set(&x, S("2001:db9::1"), 1);
	ck_assert(!acl_match(&a, &x));
	tp_addr_set(&x, S("::ffff:192.0.2.1"), 1);	/* v4-mapped */
	ck_assert(acl_match(&a, &x));
}
END_TEST

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
	tp_addr_set(&src, S("198.51.100.9"), 40000);	/* behind NAT */
}

static void
reg_teardown(void)
{
	registrar_shutdown();
}

static const char *reg_aor = "alice@example.test";

/* REGISTER for alice with the given extra header lines. */
static int
reg(const char *callid, unsigned cseq, const char *hdrs, struct buf *out)
{
	char		 text[2048], err[128];
	struct sipmsg	*m;
	int		 code;

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
	m = parse(text);
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

/* Many AORs with scattered expiries leave in expiry order (the heap). */
START_TEST(heap_expires_in_order)
{
	struct binding_info	bi;
	char			key[32], uri[32];
	unsigned		i, left;

	memset(&bi, 0, sizeof(bi));
	bi.callid = S("x");
	bi.received = &src;
	for (i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "u%u@example.test", i);
		snprintf(uri, sizeof(uri), "sip:u%u@10.1.0.1", i);
		bi.contact = S(uri);
		bi.expires_s = 1 + (i * 7919) % 500;
		location_save(S(key), NULL, &bi);
	}
	ck_assert_uint_eq(location_count(), 500);
	for (left = 500; left > 0; left--) {
		fake_advance(1000);
		ck_assert_uint_eq(location_count(), left - 1);
	}
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

int
main(void)
{
	TCase	*ta = check_fixed("auth", auth_setup, auth_teardown);
	TCase	*tr = check_fixed("registrar", reg_setup, reg_teardown);

	sipmsg_init();
	log_init(true, LOG_LVL_WARNING);
	tcase_set_timeout(ta, 120);	/* 2^20 nonces, under ASan too */
	check_add(ta, digest_rfc7616_vectors, auth_nonces,
	    auth_passwords_and_replay, auth_stale_nonce,
	    auth_challenge_headers, auth_uri_must_match,
	    auth_old_nonce_loses_its_count, auth_users_file_errors,
	    acl_networks);
	check_add(tr, register_add_refresh_remove,
	    register_limits_and_instances, register_contact_fits_ruri,
	    register_limit_per_source, bindings_expire_on_the_clock,
	    heap_expires_in_order, store_keeps_bindings);
	return (check_run("registrar"));
}
