/*
 * Digest state shared through Redis (registrar.backend "redis"), so that
 * a challenge from one node can be answered to another and a replay to a
 * third is refused:
 *
 * - the nonce secret: osprey:auth:secret, 32 random bytes in hex, set by
 *   the first node to get there (SET NX) and read by every node when its
 *   connection comes up (start, reconnect).  Until then a node makes its
 *   nonces with its local secret: other nodes answer them stale.
 * - the nonce-count high-water of every nonce used: osprey:auth:nc:{nonce}
 *   (one key, its own hash slot), advanced by a script only when the count
 *   is above it, expiring after the nonce's lifetime.
 *
 * Each thread that checks credentials (the main loop for REGISTER, every
 * worker for the requests it challenges) has its own connection on its
 * own loop, found by shard_self(): no command, reply or callback crosses
 * threads.  The main loop's connection also reads the secret.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis.h>

#include "auth.h"
#include "digest.h"
#include "log.h"
#include "redis.h"
#include "shard.h"
#include "xmalloc.h"

#define AUTHREDIS_SHARDS	64	/* worker.c's MAX_WORKERS */
#define SECRET_KEY		"osprey:auth:secret"
#define NC_KEY			"osprey:auth:nc:{"

/*
 * KEYS[1] the nonce's key; ARGV[1] the nonce-count, ARGV[2] the key's
 * lifetime (s).  1: above the high-water, now recorded; 0: a replay.
 */
static const char NC_SCRIPT[] =
    "local h = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tonumber(ARGV[1]) <= h then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "return 1\n";

/* Each entry is touched by the thread of its shard only. */
static struct redis	*conn[AUTHREDIS_SHARDS];
static bool		 closing[AUTHREDIS_SHARDS];	/* auth_unshare() */

struct nc_check {
	auth_done_fn	*fn;
	void		*arg;
	uint32_t	 nc;
	bool		 local_ok;
	char		 nonce[AUTH_NONCE_LEN + 1];
};

bool
authredis_here(void)
{
	unsigned	i = shard_self();

	return (i < AUTHREDIS_SHARDS && conn[i] != NULL);
}

static void
secret_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	uint8_t		secret[32];
	unsigned	i;

	(void)arg;
	if (res != REDIS_R_OK || rep->type != REDIS_REPLY_STRING ||
	    rep->len != 64) {
		log_warnx("auth: the shared nonce secret could not be read "
		    "(%s): nonces stay this node's", res == REDIS_R_OK ?
		    "not 64 hex digits" : redis_result_name(res));
		return;
	}
	for (i = 0; i < 32; i++) {
		unsigned	v;

		if (sscanf(rep->str + 2 * i, "%2x", &v) != 1) {
			log_warnx("auth: " SECRET_KEY " is not hex: nonces "
			    "stay this node's");
			explicit_bzero(secret, sizeof(secret));
			return;
		}
		secret[i] = (uint8_t)v;
	}
	auth_secret_share(secret);
	explicit_bzero(secret, sizeof(secret));
	log_info("auth: nonce secret shared through redis");
}

static void
set_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	(void)arg;
	if (res == REDIS_R_OK && rep->type == REDIS_REPLY_STATUS)
		log_info("auth: made the shared nonce secret");
}

/* The main loop's connection came up: the secret, made if none. */
static void
main_state(void *arg, bool up)
{
	uint8_t		 rnd[32];
	char		 hex[65];
	const char	*set[4] = { "SET", SECRET_KEY, hex, "NX" };
	const char	*get[2] = { "GET", SECRET_KEY };
	size_t		 setlen[4] = { 3, sizeof(SECRET_KEY) - 1, 64, 2 };
	size_t		 getlen[2] = { 3, sizeof(SECRET_KEY) - 1 };

	(void)arg;
	if (!up)
		return;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		fatal("getrandom");
	digest_hex(hex, rnd, sizeof(rnd));
	explicit_bzero(rnd, sizeof(rnd));
	/* In order on the connection: GET sees what SET NX left. */
	(void)redis_command(conn[0], set_reply, NULL, 4, set, setlen);
	(void)redis_command(conn[0], secret_reply, NULL, 2, get, getlen);
	explicit_bzero(hex, sizeof(hex));
}

/*
 * A connection on this thread's loop: shard 0 (the main loop) first, the
 * workers in their setup.
 */
int
auth_share(struct event_base *base, const struct redis_settings *set,
    char *err, size_t errlen)
{
	unsigned	i = shard_self();
	char		name[32];

	if (i >= AUTHREDIS_SHARDS) {
		snprintf(err, errlen, "auth: worker %u: too many", i);
		return (-1);
	}
	snprintf(name, sizeof(name), i == 0 ? "auth" : "auth-%u", i);
	if ((conn[i] = redis_new(base, set, name, i == 0 ? main_state : NULL,
	    NULL, err, errlen)) == NULL)
		return (-1);
	redis_start(conn[i]);
	return (0);
}

/* This thread's connection goes (checks waiting on it fail). */
void
auth_unshare(void)
{
	unsigned	 i = shard_self();
	struct redis	*r;

	if (i >= AUTHREDIS_SHARDS || conn[i] == NULL)
		return;
	r = conn[i];
	conn[i] = NULL;
	closing[i] = true;	/* what waits is refused, not counted here */
	redis_free(r);
	closing[i] = false;
}

/* Redis cannot say: count here, or refuse. */
static enum auth_result
nc_unknown(const struct nc_check *k, const char *why)
{
	static unsigned	warned;		/* racy by design: a rate limit */
	enum auth_result r;

	if (!k->local_ok || closing[shard_self()]) {
		auth_count_seen(k->nonce, k->nc, true);
		log_info("auth: nonce-count not checked (redis %s): 500",
		    why);
		return (AUTH_UNAVAILABLE);
	}
	r = auth_count_local(k->nonce, k->nc);
	if (__atomic_fetch_add(&warned, 1, __ATOMIC_RELAXED) % 100 == 0)
		log_warnx("auth: redis %s: nonce-counts checked on this node "
		    "only (result %s)", why, r == AUTH_OK ? "ok" :
		    r == AUTH_STALE ? "stale" : "replay");
	return (r);
}

static void
nc_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	struct nc_check	*k = arg;
	enum auth_result r;

	if (res == REDIS_R_OK && rep->type == REDIS_REPLY_INTEGER) {
		auth_count_seen(k->nonce, k->nc, false);
		r = rep->integer == 1 ? AUTH_OK : AUTH_FAIL;
		if (r == AUTH_FAIL)
			log_info("auth: nonce-count replayed nc=%08x",
			    (unsigned)k->nc);
	} else
		r = nc_unknown(k, res == REDIS_R_OK ? "error" :
		    redis_result_name(res));
	auth_result_count(r);
	k->fn(k->arg, r);
	free(k);
}

/*
 * Ask Redis whether nc is above the nonce's high-water (and make it the
 * new one): AUTH_PENDING and fn(arg, result) later, or a result now when
 * the command could not go (Redis down).
 */
static enum auth_result
authredis_count(const char *nonce, uint32_t nc, uint32_t ttl_s, bool local_ok,
    auth_done_fn *fn, void *arg)
{
	struct nc_check	*k;
	char		 key[sizeof(NC_KEY) + AUTH_NONCE_LEN + 1];
	char		 ncs[16], ttl[16];
	const char	*argv[6] = { "EVAL", NC_SCRIPT, "1", key, ncs, ttl };
	size_t		 lens[6];
	enum auth_result r;
	unsigned	 i;

	k = xcalloc(1, sizeof(*k));
	k->fn = fn;
	k->arg = arg;
	k->nc = nc;
	k->local_ok = local_ok;
	snprintf(k->nonce, sizeof(k->nonce), "%s", nonce);
	snprintf(key, sizeof(key), NC_KEY "%s}", nonce);
	snprintf(ncs, sizeof(ncs), "%u", (unsigned)nc);
	snprintf(ttl, sizeof(ttl), "%u", (unsigned)ttl_s);
	for (i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	if (redis_command(conn[shard_self()], nc_reply, k, 6, argv,
	    lens) == 0)
		return (AUTH_PENDING);
	r = nc_unknown(k, "down");
	free(k);
	return (r);
}

/*
 * auth_check(), with the nonce-count checked in Redis when this thread
 * shares the replay set: then AUTH_PENDING, *user filled, and fn(arg,
 * result) is called later, never from here.  local_ok: when Redis cannot
 * answer, a nonce of this run is counted in the local table (logged and
 * counted) and one of another node's is stale; else the result is
 * AUTH_UNAVAILABLE.
 */
enum auth_result
auth_check_async(const struct sipmsg *m, bool proxy, struct slice realm,
    bool local_ok, struct slice *user, char *err, size_t errlen,
    auth_done_fn *fn, void *arg)
{
	struct auth_creds	c;
	enum auth_result	r;

	if (!authredis_here())
		return (auth_check(m, proxy, realm, user, err, errlen));
	if ((r = auth_check_uncounted(m, proxy, realm, user, &c, err,
	    errlen)) != AUTH_OK)
		return (r);
	r = authredis_count(c.nonce, c.with_qop ? c.nc_value : UINT32_MAX,
	    auth_count_lifetime_s(), local_ok, fn, arg);
	if (r != AUTH_PENDING)
		auth_result_count(r);
	return (r);
}
