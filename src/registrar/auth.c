/*
 * Digest authentication.  Nonces carry their own time and an HMAC over it,
 * so a challenge keeps no state; only a nonce that has authenticated a
 * request gets an entry, holding the highest nonce-count seen (replays of
 * a lower or equal count fail).  Unknown users and wrong passwords take
 * the same path and get the same answer.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "digest.h"
#include "hashtab.h"
#include "log.h"
#include "xmalloc.h"

#define NONCE_LEN	56	/* hex: time 8, epoch 8, index 8, mac 32 */
#define NC_SLOTS	(1u << 20)	/* nonces whose counts are kept */

struct auth_user {
	struct hnode	 node;
	char		*key;		/* owned: "user:realm" */
	char		 ha1_md5[33];
	char		 ha1_sha256[65];
};

struct auth_users {
	struct hashtab	 tab;
	unsigned	 n;
};

static struct {
	uint8_t			 secret[32];
	uint64_t		 nonce_key[2][2];	/* SipHash-2-4, from
						   secret: the nonce MAC */
	/*
	 * With the shared replay set (authredis.c): the keys of the secret
	 * in Redis, and of the one it replaced; under key_mu.  Nonces made
	 * with them carry the epoch with AUTH_EPOCH_SHARED set.
	 */
	uint64_t		 shared_key[2][2][2];	/* [0] now, [1] before */
	unsigned		 nshared;	/* 0, 1 or 2 of them set */
	uint64_t		 stamp_key[2];	/* SipHash-2-4, from secret */
	uint32_t		 issued;	/* nonces so far, the index */
	uint32_t		 epoch;		/* this run: nonces of another
						   are stale (no nc memory) */
	const struct auth_settings *set;	/* borrowed from the config */
	struct auth_users	*users;		/* owned */
	/*
	 * The highest nonce-count of the last NC_SLOTS nonces, by index
	 * modulo NC_SLOTS: fixed memory, nothing to sweep.  An older nonce
	 * has lost its slot and is answered as stale.
	 */
	uint32_t		*nc_owner;	/* owned: the index in the slot */
	uint32_t		*nc_high;	/* owned: its highest count */
	bool			 init;
	struct auth_stats	 stats;
} A;

/*
 * Every worker checks credentials: the nonce-count slots change under
 * nc_mu, the counters and the nonce index are atomic.  The secret and the
 * settings change only while the workers are paused (a reload).
 */
static pthread_mutex_t	nc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t	key_mu = PTHREAD_MUTEX_INITIALIZER;

#define AUTH_EPOCH_SHARED	0x80000000u	/* made with the shared key */
static struct auth_stats stats_snap;	/* auth_stats(): the main thread's */

#define COUNT(x)	__atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)

const struct auth_stats *
auth_stats(void)
{
	stats_snap.challenges = __atomic_load_n(&A.stats.challenges,
	    __ATOMIC_RELAXED);
	stats_snap.failures = __atomic_load_n(&A.stats.failures,
	    __ATOMIC_RELAXED);
	stats_snap.successes = __atomic_load_n(&A.stats.successes,
	    __ATOMIC_RELAXED);
	stats_snap.nc_shared = __atomic_load_n(&A.stats.nc_shared,
	    __ATOMIC_RELAXED);
	stats_snap.nc_local = __atomic_load_n(&A.stats.nc_local,
	    __ATOMIC_RELAXED);
	stats_snap.nc_unavailable = __atomic_load_n(&A.stats.nc_unavailable,
	    __ATOMIC_RELAXED);
	pthread_mutex_lock(&key_mu);
	stats_snap.secret_shared = A.nshared > 0;
	pthread_mutex_unlock(&key_mu);
	return (&stats_snap);
}

/* H(data) in lower-case hex: 33 bytes of out for MD5, 65 for SHA-256. */
void
auth_hex_digest(unsigned alg, const char *data, size_t len, char *out)
{
	struct digest	d;

	digest_init(&d, alg == AUTH_SHA256 ? DIGEST_SHA256 : DIGEST_MD5);
	digest_update(&d, data, len);
	digest_final_hex(&d, out);
}

static bool
is_hex(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)p[i]))
			return (false);
	return (true);
}

static void
lower(char *p)
{
	for (; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

/*
 * user:realm:HA1-MD5[:HA1-SHA-256], as htdigest writes (plus the optional
 * SHA-256 field); '#' starts a comment.
 */
struct auth_users *
auth_users_load(const char *path, char *err, size_t errlen)
{
	struct auth_users	*u;
	FILE			*fp;
	char			 line[1024], *f[5], *p;
	unsigned		 lineno = 0, nf;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	u = xcalloc(1, sizeof(*u));
	hashtab_init(&u->tab, 64);
	while (fgets(line, sizeof(line), fp) != NULL) {
		struct auth_user	*e;
		size_t			 klen;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%u: line too long", path,
			    lineno);
			goto fail;
		}
		line[strcspn(line, "\r\n")] = '\0';
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (*p == '#' || *p == '\0')
			continue;
		for (nf = 0; nf < 5 && p != NULL; nf++)
			f[nf] = strsep(&p, ":");
		if (nf < 3 || nf > 4 || *f[0] == '\0' || *f[1] == '\0') {
			snprintf(err, errlen, "%s:%u: expected "
			    "user:realm:HA1[:HA1-SHA-256]", path, lineno);
			goto fail;
		}
		if (strlen(f[2]) != 32 || !is_hex(f[2], 32)) {
			snprintf(err, errlen, "%s:%u: the MD5 HA1 must be 32 "
			    "hex digits", path, lineno);
			goto fail;
		}
		if (nf == 4 && (strlen(f[3]) != 64 || !is_hex(f[3], 64))) {
			snprintf(err, errlen, "%s:%u: the SHA-256 HA1 must be "
			    "64 hex digits", path, lineno);
			goto fail;
		}
		klen = strlen(f[0]) + 1 + strlen(f[1]);
		e = xcalloc(1, sizeof(*e));
		e->key = xmalloc(klen + 1);
		snprintf(e->key, klen + 1, "%s:%s", f[0], f[1]);
		if (hashtab_find(&u->tab, e->key, klen) != NULL) {
			snprintf(err, errlen, "%s:%u: %s appears twice", path,
			    lineno, e->key);
			free(e->key);
			free(e);
			goto fail;
		}
		memcpy(e->ha1_md5, f[2], 33);
		lower(e->ha1_md5);
		if (nf == 4) {
			memcpy(e->ha1_sha256, f[3], 65);
			lower(e->ha1_sha256);
		}
		hashtab_insert(&u->tab, &e->node, e->key, klen);
		u->n++;
	}
	explicit_bzero(line, sizeof(line));
	fclose(fp);
	return (u);
fail:
	explicit_bzero(line, sizeof(line));
	fclose(fp);
	auth_users_free(u);
	return (NULL);
}

void
auth_users_free(struct auth_users *u)
{
	struct hashtab_iter	 it;
	struct hnode		*n;

	if (u == NULL)
		return;
	HASHTAB_FOREACH(n, &u->tab, it) {
		struct auth_user	*e = (struct auth_user *)n;

		explicit_bzero(e->ha1_md5, sizeof(e->ha1_md5));
		explicit_bzero(e->ha1_sha256, sizeof(e->ha1_sha256));
		free(e->key);
		free(e);
	}
	hashtab_cleanup(&u->tab);
	free(u);
}

unsigned
auth_users_count(const struct auth_users *u)
{
	return (u == NULL ? 0 : u->n);
}

/* fn with each "user:realm" of the file, in no particular order. */
void
auth_users_foreach(const struct auth_users *u, void (*fn)(const char *,
    void *), void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*n;

	if (u == NULL)
		return;
	HASHTAB_FOREACH(n, &u->tab, it)
		fn(((const struct auth_user *)n)->key, arg);
}

/* Users in the file in use. */
unsigned
auth_users_count_now(void)
{
	return (auth_users_count(A.users));
}

void
auth_settings_cleanup(struct auth_settings *s)
{
	free(s->users_file);
	s->users_file = NULL;
	strlist_free(&s->trusted_names);
}

void
auth_init(const uint8_t secret[32])
{
	struct digest_hmac	h;
	unsigned char		md[32];

	memcpy(A.secret, secret, sizeof(A.secret));
	/* Keys of their own for the stamp and the nonces, from the secret. */
	digest_hmac_init(&h, A.secret, sizeof(A.secret));
	digest_hmac(&h, "osprey record-route stamp", 25, md);
	memcpy(A.stamp_key, md, sizeof(A.stamp_key));
	digest_hmac(&h, "osprey nonce", 12, md);
	memcpy(A.nonce_key, md, sizeof(A.nonce_key));
	digest_hmac_cleanup(&h);
	explicit_bzero(md, sizeof(md));
	if (getrandom(&A.epoch, sizeof(A.epoch), 0) != sizeof(A.epoch))
		fatal("getrandom");
	A.epoch &= ~AUTH_EPOCH_SHARED;
	/* calloc: pages are only touched as nonces are used. */
	A.nc_owner = xcalloc(NC_SLOTS, sizeof(*A.nc_owner));
	A.nc_high = xcalloc(NC_SLOTS, sizeof(*A.nc_high));
	A.init = true;
}

/* New settings and users (taken over; NULL users: authentication off). */
void
auth_set(const struct auth_settings *set, struct auth_users *users)
{
	auth_users_free(A.users);
	A.set = set;
	A.users = users;
}

void
auth_shutdown(void)
{
	if (!A.init)
		return;
	free(A.nc_owner);
	free(A.nc_high);
	auth_users_free(A.users);
	explicit_bzero(A.secret, sizeof(A.secret));
	explicit_bzero(A.nonce_key, sizeof(A.nonce_key));
	explicit_bzero(A.shared_key, sizeof(A.shared_key));
	explicit_bzero(A.stamp_key, sizeof(A.stamp_key));
	memset(&A, 0, sizeof(A));
}

bool
auth_enabled(void)
{
	return (A.set != NULL && A.set->users_file != NULL && A.users != NULL);
}

bool
auth_trusted(const struct tp_addr *src)
{
	return (A.set != NULL && acl_match(&A.set->trusted, src));
}

/* auth.trusted_names: a verified client certificate name, trusted. */
bool
auth_trusted_name(const char *name)
{
	return (A.set != NULL && strlist_has(&A.set->trusted_names, name,
	    true));
}

/*
 * auth.require_tls: credentials may not cross this transport (plain UDP
 * or TCP), so nothing that would need them is challenged on it.
 */
bool
auth_insecure(const struct tp_addr *src)
{
	return (A.set != NULL && A.set->require_tls &&
	    !tp_proto_secure((enum tp_proto)src->proto));
}

static struct auth_user *
user_find(struct slice user, struct slice realm)
{
	char	key[512];

	if (A.users == NULL || user.len + realm.len + 1 >= sizeof(key))
		return (NULL);
	memcpy(key, user.p, user.len);
	key[user.len] = ':';
	memcpy(key + user.len + 1, realm.p, realm.len);
	return ((struct auth_user *)hashtab_find(&A.users->tab, key,
	    user.len + 1 + realm.len));
}

bool
auth_user_exists(struct slice user, struct slice realm)
{
	return (user_find(user, realm) != NULL);
}

/*
 * Nonces: the time, the epoch of this run, a salt, and a MAC of them and
 * the realm (128 bits: SipHash-2-4 under two keys derived from the
 * secret, a twentieth of an HMAC-SHA256's cost, twice per registration).
 * The nonce-counts seen live in memory, so a nonce of another run (after
 * a restart) is answered as stale: a replay of it cannot pass, and a
 * phone just authenticates again.
 */
static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t	hex32(const char *);

/* The MAC of a nonce, in hex. */
static void
nonce_mac(const uint64_t key[2][2], uint32_t issued, uint32_t epoch,
    uint32_t salt, struct slice realm, char out[33])
{
	unsigned char	msg[12 + 256];
	size_t		rlen = realm.len < 256 ? realm.len : 256;

	put32(msg, issued);
	put32(msg + 4, epoch);
	put32(msg + 8, salt);
	memcpy(msg + 12, realm.p, rlen);
	fmt_hex64(out, hashtab_mac(key[0], msg, 12 + rlen));
	fmt_hex64(out + 16, hashtab_mac(key[1], msg, 12 + rlen));
	explicit_bzero(msg, 12);
}

/*
 * The key every node shares (authredis.c: the cluster secret's key for
 * nonces, cluster.c), from which the nonces' MAC keys come: from now on
 * nonces are made with it, so that any node can check them; those made
 * with the local secret check here only, those of a secret it replaces
 * are stale.
 */
void
auth_secret_share(const uint8_t secret[32])
{
	struct digest_hmac	h;
	unsigned char		md[32];

	digest_hmac_init(&h, secret, 32);
	digest_hmac(&h, "osprey nonce", 12, md);
	digest_hmac_cleanup(&h);
	pthread_mutex_lock(&key_mu);
	/*
	 * Another secret (Redis restarted empty, its counts gone with it):
	 * the nonces of the old one go stale, so none is counted afresh.
	 * A rotation would keep the old one in [1] for a nonce lifetime.
	 */
	memcpy(A.shared_key[0], md, sizeof(A.shared_key[0]));
	A.nshared = 1;
	pthread_mutex_unlock(&key_mu);
	explicit_bzero(md, sizeof(md));
}

/* The shared keys (0, 1 or 2 of them), copied out from under key_mu. */
static unsigned
shared_keys(uint64_t out[2][2][2])
{
	unsigned	n;

	pthread_mutex_lock(&key_mu);
	n = A.nshared;
	memcpy(out, A.shared_key, sizeof(A.shared_key));
	pthread_mutex_unlock(&key_mu);
	return (n);
}

/* Was this nonce (checked by auth_nonce_check()) made by this run? */
bool
auth_nonce_ours(const char *nonce)
{
	return ((hex32(nonce + 8) & ~AUTH_EPOCH_SHARED) == A.epoch);
}

void
auth_nonce_make(struct slice realm, uint32_t now, char out[AUTH_NONCE_LEN + 1])
{
	unsigned char	head[12];
	uint64_t	sk[2][2][2];
	uint32_t	salt = COUNT(A.issued);	/* the index, never 0 */
	uint32_t	epoch = A.epoch;

	if (shared_keys(sk) > 0)
		epoch |= AUTH_EPOCH_SHARED;
	put32(head, now);
	put32(head + 4, epoch);
	put32(head + 8, salt);
	digest_hex(out, head, sizeof(head));
	nonce_mac(epoch & AUTH_EPOCH_SHARED ? (const uint64_t (*)[2])sk[0] :
	    (const uint64_t (*)[2])A.nonce_key, now, epoch, salt, realm,
	    out + 24);
	explicit_bzero(sk, sizeof(sk));
}

/* Eight hex digits (checked by the caller) as a number. */
static uint32_t
hex32(const char *p)
{
	uint32_t	v = 0;
	unsigned	i;

	for (i = 0; i < 8; i++) {
		unsigned char	c = (unsigned char)p[i];

		v = v << 4 | (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return (v);
}

/*
 * 0: fresh; 1: expired, or of another run (stale); -1: not ours.  A nonce
 * of another run is stale unchecked: nothing passes on it, and a
 * run whose MAC was made otherwise (before an upgrade) may have made it.
 * A nonce made with the shared secret (any node's) checks under it, or
 * the one it replaced; under neither it is stale (a secret this node
 * does not have yet, or no longer).
 */
int
auth_nonce_check(struct slice nonce, struct slice realm, uint32_t now)
{
	char		 mac[33];
	uint64_t	 sk[2][2][2];
	uint32_t	 issued, epoch, salt;
	unsigned	 i, n;
	bool		 ok = false;

	if (nonce.len != NONCE_LEN || !is_hex(nonce.p, NONCE_LEN))
		return (-1);
	issued = hex32(nonce.p);
	epoch = hex32(nonce.p + 8);
	salt = hex32(nonce.p + 16);
	if (epoch & AUTH_EPOCH_SHARED) {
		n = shared_keys(sk);
		for (i = 0; i < n && !ok; i++) {
			nonce_mac((const uint64_t (*)[2])sk[i], issued, epoch,
			    salt, realm, mac);
			ok = CRYPTO_memcmp(mac, nonce.p + 24, 32) == 0;
		}
		explicit_bzero(sk, sizeof(sk));
		if (!ok)
			return (1);
	} else if (epoch != A.epoch)
		return (1);
	else {
		nonce_mac((const uint64_t (*)[2])A.nonce_key, issued, epoch,
		    salt, realm, mac);
		if (CRYPTO_memcmp(mac, nonce.p + 24, 32) != 0)
			return (-1);
	}
	if (issued > now + 5)
		return (-1);
	if (A.set != NULL && now - issued > A.set->nonce_expiry_s)
		return (1);
	return (0);
}

/*
 * A nonce-count for the nonce of this index: it must be above the highest
 * seen so far, and is then recorded.  1: the nonce is too old to have a
 * slot (stale); -1: replayed; 0: fine.
 */
static int
nc_advance(uint32_t idx, uint32_t nc)
{
	uint32_t	slot = idx & (NC_SLOTS - 1);
	int		rc = 0;

	if (idx == 0 || __atomic_load_n(&A.issued, __ATOMIC_RELAXED) - idx >=
	    NC_SLOTS)
		return (1);
	pthread_mutex_lock(&nc_mu);
	if (A.nc_owner[slot] != idx) {
		A.nc_owner[slot] = idx;
		A.nc_high[slot] = 0;
	}
	if (nc <= A.nc_high[slot])
		rc = -1;
	else
		A.nc_high[slot] = nc;
	pthread_mutex_unlock(&nc_mu);
	return (rc);
}

/*
 * RFC 7616 3.4.1: the response for HA1, with qop=auth when nc is given
 * (RFC 2069 style without).  out holds 65 bytes.
 */
void
auth_digest_response(unsigned algo, const char *ha1, const char *nonce,
    const char *nc, const char *cnonce, struct slice method, const char *uri,
    char *out)
{
	struct digest	d;
	char		ha2[2 * DIGEST_MAX + 1];
	size_t		hlen;

	algo = algo == AUTH_SHA256 ? DIGEST_SHA256 : DIGEST_MD5;
	digest_init(&d, algo);
	digest_update(&d, method.p, method.len);
	digest_update(&d, ":", 1);
	digest_update(&d, uri, strlen(uri));
	hlen = digest_final_hex(&d, ha2);
	digest_init(&d, algo);
	digest_update(&d, ha1, strnlen(ha1, hlen));
	digest_update(&d, ":", 1);
	digest_update(&d, nonce, strlen(nonce));
	digest_update(&d, ":", 1);
	if (nc != NULL) {
		digest_update(&d, nc, strlen(nc));
		digest_update(&d, ":", 1);
		digest_update(&d, cnonce, strlen(cnonce));
		digest_update(&d, ":auth:", 6);
	}
	digest_update(&d, ha2, hlen);
	digest_final_hex(&d, out);
	explicit_bzero(&d, sizeof(d));
}

/*
 * RFC 7616 3.4.6 (RFC 3261 22.4): the digest-uri names the Request-URI.
 * Compared as SIP URIs: scheme, user, host (case-insensitive), port
 * (absent is 5060 for sip); parameters may differ.
 */
static bool
uri_matches(const char *uri, struct slice ruri)
{
	struct sipuri	a, b;
	struct slice	s = { uri, strlen(uri) };

	if (sipuri_parse(s, &a) == -1 || sipuri_parse(ruri, &b) == -1)
		return (slice_caseeq(s, ruri));
	return (slice_caseeq(a.scheme, b.scheme) && a.user.len == b.user.len &&
	    (a.user.len == 0 || memcmp(a.user.p, b.user.p, a.user.len) == 0) &&
	    slice_caseeq(a.host, b.host) &&
	    (a.port ? a.port : 5060) == (b.port ? b.port : 5060));
}

/* The parameters of one Digest credentials value. */
struct creds {
	struct slice	username, realm, nonce, uri, response, algorithm,
			cnonce, qop, nc;
};

/* Copy a quoted-string or token value out, unescaping; -1 if too long. */
static int
unquote(struct slice v, char *out, size_t len)
{
	size_t	i, o = 0;

	if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"') {
		v.p++;
		v.len -= 2;
	}
	for (i = 0; i < v.len; i++) {
		if (v.p[i] == '\\' && i + 1 < v.len)
			i++;
		if (o + 1 >= len)
			return (-1);
		out[o++] = v.p[i];
	}
	out[o] = '\0';
	return (0);
}

/* Split "Digest a=b, c="d"" into its parameters (slices, still quoted). */
static int
creds_parse(struct slice v, struct creds *c)
{
	size_t	i = 0;

	memset(c, 0, sizeof(*c));
	v = slice_trim(v);
	if (v.len < 7 || strncasecmp(v.p, "Digest", 6) != 0 ||
	    (v.p[6] != ' ' && v.p[6] != '\t'))
		return (-1);
	i = 7;
	while (i < v.len) {
		struct slice	name, val;
		size_t		s;

		while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' ||
		    v.p[i] == ',' || v.p[i] == '\r' || v.p[i] == '\n'))
			i++;
		if (i == v.len)
			break;
		for (s = i; i < v.len && v.p[i] != '=' && v.p[i] != ','; i++)
			;
		name = slice_trim((struct slice){ v.p + s, i - s });
		if (i == v.len || v.p[i] != '=' || name.len == 0)
			return (-1);
		i++;
		while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
			i++;
		s = i;
		if (i < v.len && v.p[i] == '"') {
			for (i++; i < v.len && v.p[i] != '"'; i++)
				if (v.p[i] == '\\')
					i++;
			if (i >= v.len)
				return (-1);	/* unterminated */
			i++;
		} else
			while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' &&
			    v.p[i] != '\t')
				i++;
		val = (struct slice){ v.p + s, i - s };
#define P(n)	if (slice_eq(name, #n)) c->n = val;	/* any case */
		P(username) else P(realm) else P(nonce) else P(uri)
		else P(response) else P(algorithm) else P(cnonce) else P(qop)
		else P(nc)
#undef P
	}
	return (0);
}

/* The Authorization (or Proxy-) value for realm, or an empty slice. */
static struct slice
creds_for(const struct sipmsg *m, bool proxy, struct slice realm,
    struct creds *c, bool *bad)
{
	enum sip_hdr_id	id = proxy ? SH_PROXY_AUTHORIZATION : SH_AUTHORIZATION;
	unsigned	i;
	char		r[256];

	*bad = false;
	for (i = 0; i < m->nh; i++) {
		struct slice	v;

		if (m->h[i].id != id)
			continue;
		v = sipmsg_hvalue(m, &m->h[i]);
		if (creds_parse(v, c) == -1) {
			*bad = true;
			continue;
		}
		if (unquote(c->realm, r, sizeof(r)) == 0 &&
		    strlen(r) == realm.len &&
		    strncasecmp(r, realm.p, realm.len) == 0)
			return (v);
	}
	return ((struct slice){ NULL, 0 });
}

/* The realm of one Digest credentials value, unquoted; false if none. */
bool
auth_creds_realm(struct slice v, char *out, size_t len)
{
	struct creds	c;

	return (creds_parse(v, &c) == 0 && c.realm.len > 0 &&
	    unquote(c.realm, out, len) == 0);
}

/*
 * The Digest credentials of m for realm, unquoted and judged as far as
 * they can be without the password: AUTH_NONE (none for this realm),
 * AUTH_BAD (malformed, incomplete, digest uri not the Request-URI; err
 * filled), AUTH_FAIL (too long, an algorithm not offered, a bad qop or
 * nonce-count), else AUTH_OK: c is complete and worth checking.
 */
enum auth_result
auth_creds_read(const struct sipmsg *m, bool proxy, struct slice realm,
    struct auth_creds *c, char *err, size_t errlen)
{
	struct creds	raw;
	struct slice	v;
	char		alg[32], *end;
	bool		bad;

	memset(c, 0, sizeof(*c));
	v = creds_for(m, proxy, realm, &raw, &bad);
	if (v.p == NULL) {
		if (bad) {
			snprintf(err, errlen, "Malformed %sAuthorization",
			    proxy ? "Proxy-" : "");
			return (AUTH_BAD);
		}
		return (AUTH_NONE);
	}
	if (unquote(raw.username, c->username, sizeof(c->username)) == -1 ||
	    unquote(raw.nonce, c->nonce, sizeof(c->nonce)) == -1 ||
	    unquote(raw.uri, c->uri, sizeof(c->uri)) == -1 ||
	    unquote(raw.response, c->response, sizeof(c->response)) == -1 ||
	    unquote(raw.algorithm, alg, sizeof(alg)) == -1 ||
	    unquote(raw.cnonce, c->cnonce, sizeof(c->cnonce)) == -1 ||
	    unquote(raw.qop, c->qop, sizeof(c->qop)) == -1 ||
	    unquote(raw.nc, c->nc, sizeof(c->nc)) == -1)
		return (AUTH_FAIL);
	if (c->username[0] == '\0' || c->uri[0] == '\0' ||
	    c->response[0] == '\0') {
		snprintf(err, errlen, "Incomplete %sAuthorization",
		    proxy ? "Proxy-" : "");
		return (AUTH_BAD);
	}
	if (!uri_matches(c->uri, m->ruri)) {
		snprintf(err, errlen, "Digest uri does not match the "
		    "Request-URI");
		return (AUTH_BAD);
	}
	if (alg[0] == '\0' || strcasecmp(alg, "MD5") == 0)
		c->algo = AUTH_MD5;
	else if (strcasecmp(alg, "SHA-256") == 0)
		c->algo = AUTH_SHA256;
	else
		return (AUTH_FAIL);	/* -sess and others: not offered */
	if ((A.set->algorithms & c->algo) == 0)
		return (AUTH_FAIL);
	c->with_qop = c->qop[0] != '\0';
	if (c->with_qop) {
		if (strcasecmp(c->qop, "auth") != 0 || c->cnonce[0] == '\0' ||
		    strlen(c->nc) != 8 || !is_hex(c->nc, 8))
			return (AUTH_FAIL);
		c->nc_value = (uint32_t)strtoul(c->nc, &end, 16);
		if (c->nc_value == 0)
			return (AUTH_FAIL);
	}
	/* The user name as sent, for the caller: a slice into m. */
	c->user = slice_trim(raw.username);
	if (c->user.len >= 2 && c->user.p[0] == '"') {
		c->user.p++;
		c->user.len -= 2;
	}
	return (AUTH_OK);
}

/*
 * Is c's response the one the user's password gives for method?  Unknown
 * users (and SHA-256 for a user with no SHA-256 hash on file) get the
 * same work done against a dummy HA1, and false.
 */
bool
auth_creds_match(const struct auth_creds *c, struct slice realm,
    struct slice method)
{
	struct auth_user	*u;
	const char		*ha1;
	char			 want[65], resp[sizeof(c->response)];

	u = user_find((struct slice){ c->username, strlen(c->username) },
	    realm);
	if (u != NULL && c->algo == AUTH_SHA256 && u->ha1_sha256[0] == '\0')
		u = NULL;
	ha1 = u == NULL ? "00000000000000000000000000000000"
	    "00000000000000000000000000000000" : c->algo == AUTH_SHA256 ?
	    u->ha1_sha256 : u->ha1_md5;
	auth_digest_response(c->algo, ha1, c->nonce, c->with_qop ? c->nc :
	    NULL, c->cnonce, method, c->uri, want);
	memcpy(resp, c->response, sizeof(resp));
	lower(resp);
	return (u != NULL && strlen(resp) == strlen(want) &&
	    CRYPTO_memcmp(resp, want, strlen(want)) == 0);
}

/*
 * Record c's nonce-count for its nonce: AUTH_OK, AUTH_STALE when the
 * nonce is too old to have kept its count, AUTH_FAIL for a count not
 * above the last (a replay; err filled).  Without qop a nonce is good
 * for one request.
 */
enum auth_result
auth_creds_count(const struct auth_creds *c, char *err, size_t errlen)
{
	switch (nc_advance(hex32(c->nonce + 16), c->with_qop ? c->nc_value :
	    UINT32_MAX)) {
	case 1:
		return (AUTH_STALE);
	case -1:
		snprintf(err, errlen, "nonce-count replayed");
		return (AUTH_FAIL);
	default:
		return (AUTH_OK);
	}
}

/*
 * Check the credentials of m for realm: read them, the nonce, the
 * response, and (unless c is given: the caller counts) the nonce-count.
 * On AUTH_OK *user is the authenticated user name (a slice into m).
 */
static enum auth_result
auth_verify(const struct sipmsg *m, bool proxy, struct slice realm,
    struct slice *user, struct auth_creds *cp, char *err, size_t errlen)
{
	struct auth_creds	c;
	enum auth_result	r;
	int			ns;

	if ((r = auth_creds_read(m, proxy, realm, &c, err, errlen)) !=
	    AUTH_OK)
		return (r);
	ns = auth_nonce_check((struct slice){ c.nonce, strlen(c.nonce) },
	    realm, (uint32_t)time(NULL));
	if (ns == -1 || !auth_creds_match(&c, realm, m->method_s))
		return (AUTH_FAIL);
	if (ns == 1)
		return (AUTH_STALE);
	if (cp != NULL)
		*cp = c;
	else if ((r = auth_creds_count(&c, err, errlen)) != AUTH_OK)
		return (r);
	*user = c.user;
	return (AUTH_OK);
}

/* A final result, in the counters. */
void
auth_result_count(enum auth_result r)
{
	if (r == AUTH_OK)
		COUNT(A.stats.successes);
	else if (r == AUTH_FAIL || r == AUTH_BAD)
		COUNT(A.stats.failures);
}

enum auth_result
auth_check(const struct sipmsg *m, bool proxy, struct slice realm,
    struct slice *user, char *err, size_t errlen)
{
	enum auth_result	r;

	r = auth_verify(m, proxy, realm, user, NULL, err, errlen);
	auth_result_count(r);
	return (r);
}

/*
 * What auth_check() does but count the nonce: on AUTH_OK c is filled for
 * the caller to count (authredis.c, in Redis), and the outcome is not in
 * the counters yet (auth_result_count()); otherwise it is.
 */
enum auth_result
auth_check_uncounted(const struct sipmsg *m, bool proxy, struct slice realm,
    struct slice *user, struct auth_creds *c, char *err, size_t errlen)
{
	enum auth_result	r;

	r = auth_verify(m, proxy, realm, user, c, err, errlen);
	if (r != AUTH_OK)
		auth_result_count(r);
	return (r);
}

/* How long a nonce-count must be kept: the nonce's life, a minute more. */
uint32_t
auth_count_lifetime_s(void)
{
	return ((A.set != NULL ? A.set->nonce_expiry_s : 300) + 60);
}

/*
 * Redis could not count a nonce: count it here if it is this run's
 * (AUTH_STALE for another node's: a new challenge from this one), and
 * say so in the counters.
 */
enum auth_result
auth_count_local(const char *nonce, uint32_t nc)
{
	COUNT(A.stats.nc_local);
	if (!auth_nonce_ours(nonce))
		return (AUTH_STALE);
	switch (nc_advance(hex32(nonce + 16), nc)) {
	case 1:
		return (AUTH_STALE);
	case -1:
		return (AUTH_FAIL);
	default:
		return (AUTH_OK);
	}
}

/* Redis counted a nonce of this run: the local table learns its count. */
void
auth_count_seen(const char *nonce, uint32_t nc, bool unavailable)
{
	if (unavailable) {
		COUNT(A.stats.nc_unavailable);
		return;
	}
	COUNT(A.stats.nc_shared);
	if (auth_nonce_ours(nonce))
		(void)nc_advance(hex32(nonce + 16), nc);
}

/* WWW-Authenticate (or Proxy-) headers: one per algorithm offered. */
void
auth_challenge(struct buf *b, bool proxy, struct slice realm, bool stale)
{
	static const unsigned	 order[2][2] = {
		{ AUTH_SHA256, AUTH_MD5 }, { AUTH_MD5, AUTH_SHA256 } };
	char			 nonce[NONCE_LEN + 1];
	unsigned		 i;

	COUNT(A.stats.challenges);
	auth_nonce_make(realm, (uint32_t)time(NULL), nonce);
	for (i = 0; i < 2; i++) {
		unsigned alg = order[A.set->sha256_first ? 0 : 1][i];

		if ((A.set->algorithms & alg) == 0)
			continue;
		buf_adds(b, proxy ? "Proxy-Authenticate: Digest realm=\"" :
		    "WWW-Authenticate: Digest realm=\"");
		buf_add(b, realm.p, realm.len);
		buf_adds(b, "\", nonce=\"");
		buf_add(b, nonce, NONCE_LEN);
		buf_adds(b, alg == AUTH_SHA256 ?
		    "\", qop=\"auth\", algorithm=SHA-256" :
		    "\", qop=\"auth\", algorithm=MD5");
		if (stale)
			buf_adds(b, ", stale=true");
		buf_add(b, "\r\n", 2);
	}
}

/*
 * The stamp in our Record-Route: a MAC of the Call-ID (SipHash-2-4 under
 * a key derived from the secret: a tenth of an HMAC-SHA256's cost, and it
 * runs on every request we record-route), so that a request coming back
 * through it is known to belong to a dialog we set up.
 */
void
auth_stamp(struct slice callid, char out[17])
{
	fmt_hex64(out, hashtab_mac(A.stamp_key, callid.p, callid.len));
}

bool
auth_stamp_ok(struct slice stamp, struct slice callid)
{
	char	want[17];

	auth_stamp(callid, want);
	return (stamp.len == 16 && CRYPTO_memcmp(stamp.p, want, 16) == 0);
}
