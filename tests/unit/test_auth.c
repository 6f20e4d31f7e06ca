/*
 * Unit tests: digest authentication (auth.c) and its steps
 * (auth_creds_read, auth_creds_match, auth_creds_count), trusted
 * networks (acl.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "acl.h"
#include "auth.h"
#include "check_util.h"
#include "digest.h"
#include "fake.h"
#include "hashtab.h"
#include "log.h"
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

/*
 * digest.c against OpenSSL: MD5 and SHA-256 of every length from 0 to
 * 300 bytes, fed whole and in uneven pieces (block boundaries, the 55/56
 * byte padding edge), and HMAC-SHA256 with keys shorter and longer than a
 * block.
 */
START_TEST(digest_matches_openssl)
{
	static const unsigned	 algos[2] = { DIGEST_MD5, DIGEST_SHA256 };
	unsigned char		 data[300], want[EVP_MAX_MD_SIZE];
	uint8_t			 got[DIGEST_MAX];
	char			 hex[2 * DIGEST_MAX + 1], whex[2 * DIGEST_MAX + 1];
	struct digest		 d;
	struct digest_hmac	 h;
	unsigned		 wlen, i, a;
	size_t			 len, off, step;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + 7 + (i >> 3));
	for (a = 0; a < 2; a++)
		for (len = 0; len <= sizeof(data); len++) {
			EVP_Digest(data, len, want, &wlen, algos[a] ==
			    DIGEST_SHA256 ? EVP_sha256() : EVP_md5(), NULL);
			digest_init(&d, algos[a]);
			digest_update(&d, data, len);
			ck_assert_uint_eq(digest_final(&d, got), wlen);
			ck_assert_mem_eq(got, want, wlen);
			/* the same in pieces of 1, 7, 13 ... bytes */
			step = 1 + (len % 5) * 6;
			digest_init(&d, algos[a]);
			for (off = 0; off < len; off += step)
				digest_update(&d, data + off, len - off < step ?
				    len - off : step);
			ck_assert_uint_eq(digest_final_hex(&d, hex),
			    2 * wlen);
			digest_hex(whex, want, wlen);
			ck_assert_str_eq(hex, whex);
		}
	for (len = 0; len <= 100; len += 9) {
		digest_hmac_init(&h, data + 50, len);
		for (off = 0; off <= 200; off += 37) {
			HMAC(EVP_sha256(), data + 50, (int)len, data, off,
			    want, &wlen);
			digest_hmac(&h, data, off, got);
			ck_assert_mem_eq(got, want, 32);
		}
		digest_hmac_cleanup(&h);
	}
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

/*
 * The keys behind the MACs: the Record-Route stamp is SipHash-2-4 under
 * HMAC-SHA256(secret, "osprey record-route stamp") (what earlier releases
 * made, so that stamps outlive an upgrade), the nonce's MAC SipHash-2-4
 * under the two halves of HMAC-SHA256(secret, "osprey nonce") over its
 * first twelve bytes and the realm.
 */
START_TEST(auth_macs_are_keyed_from_the_secret)
{
	static const uint8_t	 secret[32] = { 1, 2, 3 };
	char			 n[AUTH_NONCE_LEN + 1], want[33], stamp[17];
	unsigned char		 msg[12 + 12], md[EVP_MAX_MD_SIZE];
	uint64_t		 key[4];
	unsigned		 mdlen, i;

	auth_nonce_make(S("example.test"), 0x5f000000u, n);
	ck_assert(strncmp(n, "5f000000", 8) == 0);
	for (i = 0; i < 12; i++) {
		char	two[3] = { n[2 * i], n[2 * i + 1], '\0' };

		msg[i] = (unsigned char)strtoul(two, NULL, 16);
	}
	memcpy(msg + 12, "example.test", 12);
	HMAC(EVP_sha256(), secret, 32, (const unsigned char *)"osprey nonce",
	    12, md, &mdlen);
	memcpy(key, md, sizeof(key));
	fmt_hex64(want, hashtab_mac(key, msg, sizeof(msg)));
	fmt_hex64(want + 16, hashtab_mac(key + 2, msg, sizeof(msg)));
	ck_assert_str_eq(n + 24, want);
	HMAC(EVP_sha256(), secret, 32,
	    (const unsigned char *)"osprey record-route stamp", 25, md, &mdlen);
	memcpy(key, md, 16);
	fmt_hex64(want, hashtab_mac(key, "call-1@host", 11));
	auth_stamp(S("call-1@host"), stamp);
	ck_assert_str_eq(stamp, want);
}
END_TEST

/*
 * A nonce of another run is stale whatever its MAC (a run before an
 * upgrade made it otherwise), and still only with the right password.
 */
START_TEST(auth_nonce_of_another_run)
{
	char		 n[AUTH_NONCE_LEN + 1];
	struct slice	 user;
	struct sipmsg	*m;
	char		 err[128];
	uint32_t	 now = (uint32_t)time(NULL);

	auth_nonce_make(S("example.test"), now, n);
	n[8] = n[8] == 'a' ? 'b' : 'a';		/* another epoch */
	memset(n + 24, 'f', 32);		/* and not our MAC */
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), 1);
	m = register_with("alice", "secret", AUTH_MD5, n, "00000001");
	ck_assert_int_eq(auth_check(m, false, S("example.test"), &user, err,
	    sizeof(err)), AUTH_STALE);
	sipmsg_free(m);
	m = register_with("alice", "wrong", AUTH_MD5, n, "00000001");
	ck_assert_int_eq(auth_check(m, false, S("example.test"), &user, err,
	    sizeof(err)), AUTH_FAIL);
	sipmsg_free(m);
	/* this run's epoch with a MAC not ours: not ours */
	auth_nonce_make(S("example.test"), now, n);
	memset(n + 24, 'f', 32);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), -1);
}
END_TEST

/*
 * The shared secret (registrar.backend redis): nonces made with it carry
 * the epoch's top bit and its MAC (SipHash-2-4 under HMAC-SHA256(secret,
 * "osprey nonce")), and check in another run that shares it; those of
 * the local secret and of a secret replaced are stale there.  Counted
 * locally (Redis down) only when of this run.
 */
START_TEST(auth_nonce_shared_secret)
{
	static const uint8_t	 s1[32] = { 7, 7, 7 }, s2[32] = { 8 };
	char			 local[AUTH_NONCE_LEN + 1];
	char			 n[AUTH_NONCE_LEN + 1], want[33];
	char			 mine[AUTH_NONCE_LEN + 1];
	unsigned char		 msg[12 + 12], md[EVP_MAX_MD_SIZE];
	uint64_t		 key[4];
	unsigned		 mdlen, i;
	uint32_t		 now = (uint32_t)time(NULL);

	auth_nonce_make(S("example.test"), now, local);
	ck_assert(local[8] < '8');		/* top bit clear: local */
	ck_assert(auth_nonce_ours(local));
	ck_assert(!auth_stats()->secret_shared);
	auth_secret_share(s1);
	ck_assert(auth_stats()->secret_shared);
	auth_nonce_make(S("example.test"), now, n);
	ck_assert(strchr("89abcdef", n[8]) != NULL);	/* top bit set */
	ck_assert(auth_nonce_ours(n));
	for (i = 0; i < 12; i++) {
		char	two[3] = { n[2 * i], n[2 * i + 1], '\0' };

		msg[i] = (unsigned char)strtoul(two, NULL, 16);
	}
	memcpy(msg + 12, "example.test", 12);
	HMAC(EVP_sha256(), s1, 32, (const unsigned char *)"osprey nonce",
	    12, md, &mdlen);
	memcpy(key, md, sizeof(key));
	fmt_hex64(want, hashtab_mac(key, msg, sizeof(msg)));
	fmt_hex64(want + 16, hashtab_mac(key + 2, msg, sizeof(msg)));
	ck_assert_str_eq(n + 24, want);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), 0);
	ck_assert_int_eq(auth_nonce_check(S(local), S("example.test"), now),
	    0);				/* still checks here */

	/* Another node (run) sharing s1. */
	auth_shutdown();
	auth_init((const uint8_t[32]){ 9, 9 });
	auth_set(&aset, NULL);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), 1);
	auth_secret_share(s1);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"), now), 0);
	ck_assert_int_eq(auth_nonce_check(S(n), S("example.test"),
	    now + 301), 1);
	ck_assert_int_eq(auth_nonce_check(S(local), S("example.test"), now),
	    1);				/* the other's local secret */
	ck_assert(!auth_nonce_ours(n));
	/* Redis down: another node's nonce is stale, ours counted here. */
	ck_assert_int_eq(auth_count_local(n, 1), AUTH_STALE);
	auth_nonce_make(S("example.test"), now, mine);
	ck_assert(auth_nonce_ours(mine));
	ck_assert_int_eq(auth_count_local(mine, 1), AUTH_OK);
	ck_assert_int_eq(auth_count_local(mine, 1), AUTH_FAIL);
	auth_count_seen(mine, 5, false);	/* Redis counted 5 */
	ck_assert_int_eq(auth_count_local(mine, 5), AUTH_FAIL);
	ck_assert_int_eq(auth_count_local(mine, 6), AUTH_OK);
	ck_assert_uint_eq(auth_stats()->nc_local, 5);
	ck_assert_uint_eq(auth_stats()->nc_shared, 1);
	/* A MAC under no shared key: stale, not an error. */
	memcpy(mine, n, sizeof(mine));
	memset(mine + 24, 'f', 32);
	ck_assert_int_eq(auth_nonce_check(S(mine), S("example.test"), now),
	    1);
	/* The secret replaced (Redis restarted empty): its nonces stale. */
	auth_secret_share(s2);
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

/* A REGISTER carrying one header line hdr (name and value). */
static struct sipmsg *
with_header(const char *hdr)
{
	char	text[4096];

	snprintf(text, sizeof(text),
	    "REGISTER sip:example.test SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKr1\r\n"
	    "Max-Forwards: 70\r\n"
	    "To: <sip:alice@example.test>\r\n"
	    "From: <sip:alice@example.test>;tag=f1\r\n"
	    "Call-ID: reg-1@192.0.2.7\r\n"
	    "CSeq: 1 REGISTER\r\n"
	    "%s\r\n"
	    "Content-Length: 0\r\n\r\n", hdr);
	return (parse(text));
}

/*
 * auth_creds_read on one header line; err gets the reason.  The slices of
 * c point into the message, so it is kept until the next call.
 */
static struct sipmsg	*creds_msg;

static enum auth_result
read_creds(const char *hdr, bool proxy, struct auth_creds *c, char *err,
    size_t errlen)
{
	sipmsg_free(creds_msg);
	creds_msg = with_header(hdr);
	err[0] = '\0';
	return (auth_creds_read(creds_msg, proxy, S("example.test"), c, err,
	    errlen));
}

/* As long as ours (56 hex digits), not ours. */
#define GOOD_NONCE	"0123456789abcdef0123456789abcdef" \
			"0123456789abcdef01234567"

/* What can be judged without the password, in the order it is judged. */
START_TEST(creds_read_judges)
{
	static const struct {
		const char		*hdr;
		bool			 proxy;
		enum auth_result	 want;
		const char		*err;
	} t[] = {
		{ "Subject: none", false, AUTH_NONE, "" },
		/* Another realm's credentials are none of ours. */
		{ "Authorization: Digest username=\"alice\", realm=\"x.test\", "
		    "nonce=\"n\", uri=\"sip:example.test\", response=\"r\"",
		    false, AUTH_NONE, "" },
		/* WWW credentials do not answer a 407. */
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\", response=\"r\"",
		    true, AUTH_NONE, "" },
		{ "Authorization: Basic YWxpY2U6eA==", false, AUTH_BAD,
		    "Malformed Authorization" },
		{ "Proxy-Authorization: Digest realm=\"example.test\", "
		    "nonce=\"unterminated", true, AUTH_BAD,
		    "Malformed Proxy-Authorization" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\"", false, AUTH_BAD,
		    "Incomplete Authorization" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:other.test\", response=\"r\"", false, AUTH_BAD,
		    "Digest uri does not match the Request-URI" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\", response=\"r\", "
		    "algorithm=MD5-sess", false, AUTH_FAIL, "" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\", response=\"r\", "
		    "qop=auth-int, cnonce=\"c\", nc=00000001", false,
		    AUTH_FAIL, "" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\", response=\"r\", "
		    "qop=auth, nc=00000001", false, AUTH_FAIL, "" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\", response=\"r\", "
		    "qop=auth, cnonce=\"c\", nc=1", false, AUTH_FAIL, "" },
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"n\", "
		    "uri=\"sip:example.test\", response=\"r\", "
		    "qop=auth, cnonce=\"c\", nc=00000000", false, AUTH_FAIL,
		    "" },
		/* A nonce longer than ours cannot be ours. */
		{ "Authorization: Digest username=\"alice\", "
		    "realm=\"example.test\", nonce=\"" GOOD_NONCE "0\", "
		    "uri=\"sip:example.test\", response=\"r\"", false,
		    AUTH_FAIL, "" },
	};
	struct auth_creds	c;
	char			err[128];
	size_t			i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_msg(read_creds(t[i].hdr, t[i].proxy, &c, err,
		    sizeof(err)) == t[i].want, "case %zu: %s", i, t[i].hdr);
		ck_assert_str_eq(err, t[i].err);
	}
	/* SHA-256 only when offered. */
	aset.algorithms = AUTH_MD5;
	ck_assert_int_eq(read_creds("Authorization: Digest username=\"alice\", "
	    "realm=\"example.test\", nonce=\"n\", uri=\"sip:example.test\", "
	    "response=\"r\", algorithm=SHA-256", false, &c, err, sizeof(err)),
	    AUTH_FAIL);
}
END_TEST

START_TEST(creds_read_fields)
{
	struct auth_creds	c;
	char			err[128];

	ck_assert_int_eq(read_creds("Proxy-Authorization: Digest "
	    "username=\"al\\\"ice\", realm=\"EXAMPLE.test\", "
	    "nonce=\"" GOOD_NONCE "\", uri=\"sip:EXAMPLE.test:5060\", "
	    "response=\"ABC\", algorithm=sha-256, cnonce=\"c1\", qop=auth, "
	    "nc=0000001f", true, &c, err, sizeof(err)), AUTH_OK);
	ck_assert_str_eq(c.username, "al\"ice");	/* unescaped */
	ck_assert_slice_eq(c.user, "al\\\"ice");	/* as sent */
	ck_assert_str_eq(c.nonce, GOOD_NONCE);
	ck_assert_str_eq(c.uri, "sip:EXAMPLE.test:5060");
	ck_assert_str_eq(c.response, "ABC");
	ck_assert_uint_eq(c.algo, AUTH_SHA256);
	ck_assert(c.with_qop);
	ck_assert_uint_eq(c.nc_value, 31);
	/* No qop (RFC 2069), no algorithm: MD5. */
	ck_assert_int_eq(read_creds("Authorization: Digest username=bob, "
	    "realm=\"example.test\", nonce=\"" GOOD_NONCE "\", "
	    "uri=\"sip:example.test\", response=\"r\"", false, &c, err,
	    sizeof(err)), AUTH_OK);
	ck_assert_slice_eq(c.user, "bob");
	ck_assert_uint_eq(c.algo, AUTH_MD5);
	ck_assert(!c.with_qop);
}
END_TEST

/* Credentials as a phone computes them for user, password pw. */
static void
creds_for_password(struct auth_creds *c, const char *user, const char *pw,
    unsigned algo, const char *nonce, const char *nc)
{
	char	a1[128], ha1[65];

	memset(c, 0, sizeof(*c));
	snprintf(c->username, sizeof(c->username), "%s", user);
	snprintf(c->nonce, sizeof(c->nonce), "%s", nonce);
	snprintf(c->uri, sizeof(c->uri), "sip:example.test");
	snprintf(c->cnonce, sizeof(c->cnonce), "abc");
	snprintf(c->qop, sizeof(c->qop), nc ? "auth" : "");
	snprintf(c->nc, sizeof(c->nc), "%s", nc ? nc : "");
	c->algo = algo;
	c->with_qop = nc != NULL;
	c->nc_value = nc ? (uint32_t)strtoul(nc, NULL, 16) : 0;
	snprintf(a1, sizeof(a1), "%s:example.test:%s", user, pw);
	auth_hex_digest(algo, a1, strlen(a1), ha1);
	auth_digest_response(algo, ha1, nonce, nc, "abc", S("REGISTER"),
	    c->uri, c->response);
}

START_TEST(creds_match_password)
{
	struct auth_creds	c;
	char			*p;

	creds_for_password(&c, "alice", "secret", AUTH_MD5, GOOD_NONCE,
	    "00000001");
	ck_assert(auth_creds_match(&c, S("example.test"), S("REGISTER")));
	ck_assert(!auth_creds_match(&c, S("example.test"), S("INVITE")));
	ck_assert(!auth_creds_match(&c, S("other.test"), S("REGISTER")));
	for (p = c.response; *p; p++)		/* hex in upper case: fine */
		*p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
	ck_assert(auth_creds_match(&c, S("example.test"), S("REGISTER")));
	creds_for_password(&c, "alice", "secret", AUTH_SHA256, GOOD_NONCE,
	    NULL);
	ck_assert(auth_creds_match(&c, S("example.test"), S("REGISTER")));
	creds_for_password(&c, "alice", "wrong", AUTH_MD5, GOOD_NONCE,
	    "00000001");
	ck_assert(!auth_creds_match(&c, S("example.test"), S("REGISTER")));
	creds_for_password(&c, "mallory", "x", AUTH_MD5, GOOD_NONCE,
	    "00000001");
	ck_assert(!auth_creds_match(&c, S("example.test"), S("REGISTER")));
	/* carol has only an MD5 hash on file. */
	creds_for_password(&c, "carol", "pw", AUTH_SHA256, GOOD_NONCE,
	    "00000001");
	ck_assert(!auth_creds_match(&c, S("example.test"), S("REGISTER")));
	creds_for_password(&c, "carol", "pw", AUTH_MD5, GOOD_NONCE,
	    "00000001");
	ck_assert(auth_creds_match(&c, S("example.test"), S("REGISTER")));
}
END_TEST

START_TEST(creds_count_replays)
{
	struct auth_creds	c;
	char			n[AUTH_NONCE_LEN + 1], err[64] = "";

	auth_nonce_make(S("example.test"), (uint32_t)time(NULL), n);
	creds_for_password(&c, "alice", "secret", AUTH_MD5, n, "00000002");
	ck_assert_int_eq(auth_creds_count(&c, err, sizeof(err)), AUTH_OK);
	ck_assert_int_eq(auth_creds_count(&c, err, sizeof(err)), AUTH_FAIL);
	ck_assert_str_eq(err, "nonce-count replayed");
	c.nc_value = 1;				/* lower: a replay too */
	ck_assert_int_eq(auth_creds_count(&c, err, sizeof(err)), AUTH_FAIL);
	c.nc_value = 3;
	ck_assert_int_eq(auth_creds_count(&c, err, sizeof(err)), AUTH_OK);
	/* Without qop a nonce is good for one request. */
	auth_nonce_make(S("example.test"), (uint32_t)time(NULL), n);
	creds_for_password(&c, "alice", "secret", AUTH_MD5, n, NULL);
	ck_assert_int_eq(auth_creds_count(&c, err, sizeof(err)), AUTH_OK);
	ck_assert_int_eq(auth_creds_count(&c, err, sizeof(err)), AUTH_FAIL);
}
END_TEST

/* One challenge per algorithm offered, in the configured order. */
START_TEST(challenge_per_algorithm)
{
	struct buf	b;

	buf_init(&b, 256);
	aset.algorithms = AUTH_MD5;
	auth_challenge(&b, false, S("example.test"), false);
	ck_assert_ptr_nonnull(strstr(b.p, "WWW-Authenticate: Digest "
	    "realm=\"example.test\", nonce=\""));
	ck_assert_ptr_nonnull(strstr(b.p, "qop=\"auth\", algorithm=MD5\r\n"));
	ck_assert_ptr_null(strstr(b.p, "SHA-256"));
	b.len = 0;
	aset.algorithms = AUTH_MD5 | AUTH_SHA256;
	aset.sha256_first = true;
	auth_challenge(&b, false, S("example.test"), false);
	ck_assert_ptr_nonnull(strstr(b.p, "MD5"));
	ck_assert(strstr(b.p, "SHA-256") < strstr(b.p, "MD5"));
	buf_cleanup(&b);
}
END_TEST

int
main(void)
{
	TCase	*ta = check_fixed("auth", auth_setup, auth_teardown);

	sipmsg_init();
	log_init(true, LOG_LVL_WARNING);
	tcase_set_timeout(ta, 120);	/* 2^20 nonces, under ASan too */
	check_add(ta, digest_rfc7616_vectors, digest_matches_openssl,
	    auth_macs_are_keyed_from_the_secret, auth_nonce_of_another_run,
	    auth_nonces, auth_nonce_shared_secret,
	    auth_passwords_and_replay, auth_stale_nonce,
	    auth_challenge_headers, auth_uri_must_match,
	    auth_old_nonce_loses_its_count, auth_users_file_errors,
	    acl_networks, creds_read_judges, creds_read_fields,
	    creds_match_password, creds_count_replays,
	    challenge_per_algorithm);
	return (check_run("auth"));
}
