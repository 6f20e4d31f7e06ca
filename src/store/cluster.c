/*
 * The cluster secret (see cluster.h): one key in Redis for every secret
 * the nodes share - the digest nonces' (auth), the dialog stamps' and the
 * path tokens' - each derived from it with HMAC-SHA256 and its label, so
 * that a key of one purpose says nothing of another's.
 *
 * The secret is read on the main loop's own connection; the keys are
 * read by every worker (proxy_ctx_dialog_stamp(), path tokens) under
 * G.mu, the generation atomically so that a worker's cache of a MAC can
 * tell that the key changed.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "cluster.h"
#include "log.h"
#include "redis.h"
#include "xmalloc.h"

#define CLUSTER_WATCHERS	4

static const char *const LABEL[CLUSTER_NPURPOSES] = {
	[CLUSTER_NONCE] = "nonce",
	[CLUSTER_DIALOG_STAMP] = "dialog stamp",
	[CLUSTER_PATH_TOKEN] = "path token",
};

/* Process-wide. */
static struct {
	pthread_mutex_t	 mu;		/* secret, key, have */
	uint8_t		 secret[32];
	uint8_t		 key[CLUSTER_NPURPOSES][CLUSTER_KEY_LEN];
	bool		 have;
	uint32_t	 gen;		/* atomic; moves with the secret */
	/* The main loop's. */
	struct redis	*conn;
	cluster_fn	*watch[CLUSTER_WATCHERS];
	unsigned	 nwatch;
	bool		 split;		/* SET NX GET refused (Redis before
					   7.0): SET NX, then GET */
	bool		 wrote;		/* split: SET NX set ours */
} G = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int	cluster_send(char *);

const char *
cluster_label(enum cluster_purpose p)
{
	return ((unsigned)p < CLUSTER_NPURPOSES ? LABEL[p] : NULL);
}

/*
 * The secret (64 hex digits) in use from now on: -1 not one, 0 the one
 * in use already, 1 a new one (the generation moves on).
 */
int
cluster_adopt(const char *hex, size_t len)
{
	uint8_t		s[32], k[CLUSTER_NPURPOSES][CLUSTER_KEY_LEN];
	unsigned	i, mdlen;
	int		hi, lo, rc;

	if (len != 64)
		return (-1);
	for (i = 0; i < 32; i++) {
		if ((hi = hex_digit(hex[2 * i])) == -1 ||
		    (lo = hex_digit(hex[2 * i + 1])) == -1) {
			explicit_bzero(s, sizeof(s));
			return (-1);
		}
		s[i] = (uint8_t)(hi << 4 | lo);
	}
	for (i = 0; i < CLUSTER_NPURPOSES; i++)
		if (HMAC(EVP_sha256(), s, sizeof(s),
		    (const unsigned char *)LABEL[i], strlen(LABEL[i]), k[i],
		    &mdlen) == NULL || mdlen != CLUSTER_KEY_LEN)
			fatalx("cluster: HMAC-SHA256 failed");
	pthread_mutex_lock(&G.mu);
	if (G.have && CRYPTO_memcmp(G.secret, s, sizeof(s)) == 0)
		rc = 0;
	else {
		memcpy(G.secret, s, sizeof(s));
		memcpy(G.key, k, sizeof(k));
		G.have = true;
		__atomic_add_fetch(&G.gen, 1, __ATOMIC_RELEASE);
		rc = 1;
	}
	pthread_mutex_unlock(&G.mu);
	explicit_bzero(s, sizeof(s));
	explicit_bzero(k, sizeof(k));
	return (rc);
}

/* No secret any more (the unit tests; a new run starts with none). */
void
cluster_forget(void)
{
	pthread_mutex_lock(&G.mu);
	explicit_bzero(G.secret, sizeof(G.secret));
	explicit_bzero(G.key, sizeof(G.key));
	if (G.have)
		__atomic_add_fetch(&G.gen, 1, __ATOMIC_RELEASE);
	G.have = false;
	pthread_mutex_unlock(&G.mu);
}

/*
 * The key of a purpose and its generation (0: none yet); false: no
 * secret yet (Redis not reached, or no feature uses it).
 */
bool
cluster_key(enum cluster_purpose p, uint8_t out[CLUSTER_KEY_LEN],
    uint32_t *gen)
{
	bool	have;

	if ((unsigned)p >= CLUSTER_NPURPOSES)
		return (false);
	pthread_mutex_lock(&G.mu);
	have = G.have;
	if (have)
		memcpy(out, G.key[p], CLUSTER_KEY_LEN);
	if (gen != NULL)
		*gen = have ? __atomic_load_n(&G.gen, __ATOMIC_RELAXED) : 0;
	pthread_mutex_unlock(&G.mu);
	return (have);
}

uint32_t
cluster_gen(void)
{
	return (__atomic_load_n(&G.gen, __ATOMIC_ACQUIRE));
}

/* Told after each read of the secret (main loop, before cluster_start). */
int
cluster_watch(cluster_fn *fn)
{
	unsigned	i;

	for (i = 0; i < G.nwatch; i++)
		if (G.watch[i] == fn)
			return (0);
	if (G.nwatch == CLUSTER_WATCHERS)
		return (-1);
	G.watch[G.nwatch++] = fn;
	return (0);
}

/* Split: SET NX's answer, OK if ours was set (GET's comes next). */
static void
cluster_set_reply(void *arg, enum redis_result res,
    const struct redisReply *r)
{
	(void)arg;
	G.wrote = res == REDIS_R_OK && r->type == REDIS_REPLY_STATUS;
}

/*
 * SET NX GET's answer: nil, ours (arg) was set; a string, the cluster's.
 * Or, split, GET's: the cluster's (ours if SET NX set it).  A syntax
 * error: a Redis before 7.0 (no NX with GET), asked again split.
 */
static void
cluster_reply(void *arg, enum redis_result res, const struct redisReply *r)
{
	char		*mine = arg;
	const char	*hex;
	size_t		 len;
	uint32_t	 was = cluster_gen();
	bool		 first, wrote;
	unsigned	 i;
	int		 rc;

	first = !cluster_key(CLUSTER_NONCE, (uint8_t[CLUSTER_KEY_LEN]){ 0 },
	    NULL);
	if (res == REDIS_R_ERROR && !G.split && r->type == REDIS_REPLY_ERROR &&
	    strstr(r->str, "syntax") != NULL) {
		G.split = true;
		log_info("cluster: SET NX GET refused (redis before 7.0): "
		    "SET NX, then GET");
		if (cluster_send(mine) == 0)
			return;		/* mine is the GET's now */
		goto done;
	}
	if (res == REDIS_R_DOWN) {
		log_info("cluster: " CLUSTER_SECRET_KEY " not read: the "
		    "connection went (read again when it is back)");
		goto done;
	}
	if (res != REDIS_R_OK || (r->type != REDIS_REPLY_STRING &&
	    r->type != REDIS_REPLY_NIL)) {
		log_warnx("cluster: " CLUSTER_SECRET_KEY " not read: %s%s%s",
		    redis_result_name(res), r != NULL && r->type ==
		    REDIS_REPLY_ERROR ? " " : "", r != NULL && r->type ==
		    REDIS_REPLY_ERROR ? r->str : "");
		goto done;
	}
	if (r->type == REDIS_REPLY_NIL && G.split) {
		log_warnx("cluster: " CLUSTER_SECRET_KEY " not read: gone "
		    "after SET NX (read again at the next connection)");
		goto done;
	}
	wrote = G.split ? G.wrote : r->type == REDIS_REPLY_NIL;
	if (r->type == REDIS_REPLY_NIL) {
		hex = mine;
		len = strlen(mine);
	} else {
		hex = r->str;
		len = r->len;
	}
	if ((rc = cluster_adopt(hex, len)) == -1) {
		log_warnx("cluster: " CLUSTER_SECRET_KEY " in redis is not 64 "
		    "hex digits: %s", first ? "nothing is shared" :
		    "the secret known stays");
		goto done;
	}
	if (wrote)
		log_info("cluster: wrote " CLUSTER_SECRET_KEY " (%s)", first ?
		    "made here" : "redis had lost it");
	if (rc == 1 && first)
		log_notice("cluster: the cluster secret is in use gen=%u",
		    was + 1);
	else if (rc == 1)
		log_notice("cluster: the cluster secret changed gen=%u: what "
		    "the old one signed no longer checks", was + 1);
	else
		log_info("cluster: the cluster secret read again, unchanged");
	for (i = 0; i < G.nwatch; i++)
		G.watch[i](rc == 1);
done:
	explicit_bzero(mine, 65);
	free(mine);
}

/*
 * Ours (hex, 64 digits, owned) offered, the cluster's read: SET NX GET,
 * or SET NX then GET (split).  -1: not sent (hex still the caller's).
 */
static int
cluster_send(char *hex)
{
	const char	*argv[5] = { "SET", CLUSTER_SECRET_KEY, hex, "NX",
	    "GET" };
	size_t		 len[5] = { 3, sizeof(CLUSTER_SECRET_KEY) - 1,
	    64, 2, 3 };

	if (!G.split)
		return (redis_command(G.conn, cluster_reply, hex, 5, argv,
		    len));
	G.wrote = false;
	if (redis_command(G.conn, cluster_set_reply, NULL, 4, argv,
	    len) == -1)
		return (-1);
	argv[0] = "GET";
	argv[1] = CLUSTER_SECRET_KEY;
	return (redis_command(G.conn, cluster_reply, hex, 2, argv, len));
}

/* The connection came up: ours offered, the cluster's read. */
static void
cluster_state(void *arg, bool up)
{
	uint8_t		 s[32];
	char		*hex;
	bool		 have;

	(void)arg;
	if (!up)
		return;
	pthread_mutex_lock(&G.mu);
	if ((have = G.have))
		memcpy(s, G.secret, sizeof(s));
	pthread_mutex_unlock(&G.mu);
	if (!have && getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s))
		fatal("cluster: getrandom");
	hex = xmalloc(65);
	fmt_hex(hex, s, sizeof(s));
	explicit_bzero(s, sizeof(s));
	if (cluster_send(hex) == -1) {
		explicit_bzero(hex, 65);
		free(hex);
	}
}

/* On the main loop: its own connection, the secret read at each up. */
int
cluster_start(struct event_base *base, const struct redis_settings *set,
    char *err, size_t errlen)
{
	if (G.conn != NULL)
		return (0);
	if ((G.conn = redis_new(base, set, "cluster", cluster_state, NULL,
	    err, errlen)) == NULL)
		return (-1);
	redis_start(G.conn);
	return (0);
}

/* The connection goes; the keys stay (workers may still be running). */
void
cluster_stop(void)
{
	redis_free(G.conn);
	G.conn = NULL;
	G.nwatch = 0;
	G.split = false;
}
