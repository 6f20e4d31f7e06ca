/*
 * Digest state shared through Redis (registrar.backend "redis"), so that
 * a challenge from one node can be answered to another and a replay to a
 * third is refused:
 *
 * - the nonce key: the cluster secret's (cluster.c, osprey:cluster:secret)
 *   for CLUSTER_NONCE, given to auth.c each time the main loop's cluster
 *   connection reads the secret (start, reconnect).  Until then a node
 *   makes its nonces with its local secret: other nodes answer them stale.
 * - the nonce-count high-water of every nonce used: osprey:auth:nc:{nonce}
 *   (one key, its own hash slot), advanced by a script only when the count
 *   is above it, expiring after the nonce's lifetime.
 *
 * Each thread that checks credentials (the main loop for REGISTER, every
 * worker for the requests it challenges) has its own connection on its
 * own loop, found by shard_self(): no command, reply or callback crosses
 * threads.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "auth.h"
#include "cluster.h"
#include "log.h"
#include "redis.h"
#include "shard.h"
#include "xmalloc.h"

#define AUTHREDIS_SHARDS	64	/* worker.c's MAX_WORKERS */
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

/* The cluster secret was read (main loop): nonces made with its key. */
static void
authredis_secret(bool changed)
{
	uint8_t		key[CLUSTER_KEY_LEN];

	(void)changed;
	if (!cluster_key(CLUSTER_NONCE, key, NULL))
		return;
	auth_secret_share(key);
	explicit_bzero(key, sizeof(key));
	log_info("auth: nonce secret shared through redis");
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
	if ((conn[i] = redis_new(base, set, name, NULL, NULL, err,
	    errlen)) == NULL)
		return (-1);
	if (i == 0) {
		if (cluster_watch(authredis_secret) == -1) {
			snprintf(err, errlen, "auth: cluster: too many "
			    "watchers");
			return (-1);
		}
		authredis_secret(false);	/* read already */
	}
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
