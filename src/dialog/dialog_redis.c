/*
 * Dialogs shared through Redis (dialog.backend = "redis"; issue 14 item
 * 4).  See dialog_redis.h for the keys.  Each worker has its own two
 * connections (its dialogs are its own); the counts are the process's,
 * the stamps' key the cluster secret's (cluster.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "cluster.h"
#include "dialog_redis.h"
#include "log.h"
#include "redis.h"
#include "xmalloc.h"

/* Process-wide. */
static struct {
	struct redis_settings	 set;		/* address NULL: off */
	uint64_t		 errors;	/* atomic */
} G;

/* The worker's. */
static _Thread_local struct {
	struct redis		*cmd;
	struct redis		*sub;
	struct dlgr_hooks	 hooks;
	bool			 was_up;	/* a return republishes */
} W;

/* A fetch under way. */
struct dlgr_fetch {
	dlgr_fetch_fn	*fn;
	void		*arg;
};

static void
copy_str(char **to, const char *from)
{
	*to = from != NULL ? xstrdup(from) : NULL;
}

void
dlgr_configure(const struct redis_settings *s)
{
	redis_settings_cleanup(&G.set);
	if (s == NULL || s->address == NULL)
		return;
	copy_str(&G.set.address, s->address);
	copy_str(&G.set.user, s->user);
	copy_str(&G.set.password, s->password);
	copy_str(&G.set.ca_file, s->ca_file);
	copy_str(&G.set.node_id, s->node_id);
	G.set.tls = s->tls;
	G.set.timeout_ms = s->timeout_ms;
}

bool
dlgr_configured(void)
{
	return (G.set.address != NULL);
}

/*
 * The key of the dialog stamps, the cluster secret's, and its generation
 * (0: none); false: none yet (Redis not reached) or dialogs not shared.
 */
bool
dlgr_key(uint64_t key[2], uint32_t *gen)
{
	uint8_t	k[CLUSTER_KEY_LEN];

	*gen = 0;
	if (!dlgr_configured() || !cluster_key(CLUSTER_DIALOG_STAMP, k, gen))
		return (false);
	memcpy(key, k, 2 * sizeof(uint64_t));
	explicit_bzero(k, sizeof(k));
	return (true);
}

void
dlgr_counts(uint64_t *errors)
{
	*errors = __atomic_load_n(&G.errors, __ATOMIC_RELAXED);
}

static void
dlgr_failed(const char *what, enum redis_result res,
    const struct redisReply *r)
{
	__atomic_add_fetch(&G.errors, 1, __ATOMIC_RELAXED);
	log_warnx("dialog: redis %s failed: %s%s%s", what,
	    redis_result_name(res), r != NULL && r->type == REDIS_REPLY_ERROR ?
	    " " : "", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "");
}

static void
dlgr_write_reply(void *arg, enum redis_result res, const struct redisReply *r)
{
	const char	*what = arg;

	if (res != REDIS_R_OK)
		dlgr_failed(what, res, r);
}

static void
dlgr_cmd_state(void *arg, bool up)
{
	(void)arg;
	if (!up)
		return;
	/*
	 * Back after a loss (Redis restarted, maybe empty, or the link
	 * broke): what this worker holds is written again.
	 */
	if (W.was_up && W.hooks.republish != NULL)
		W.hooks.republish();
	W.was_up = true;
}

/* "CALLID\nFTAG\nTTAG": a node ended that dialog. */
static void
dlgr_message(void *arg, const char *channel, const char *msg, size_t len)
{
	const char	*a, *b;

	(void)arg;
	(void)channel;
	if ((a = memchr(msg, '\n', len)) == NULL ||
	    (b = memchr(a + 1, '\n', len - (size_t)(a + 1 - msg))) == NULL)
		return;
	if (W.hooks.ended != NULL)
		W.hooks.ended((struct slice){ msg, (size_t)(a - msg) },
		    (struct slice){ a + 1, (size_t)(b - a - 1) },
		    (struct slice){ b + 1, len - (size_t)(b + 1 - msg) });
}

int
dlgr_start(struct event_base *base, const struct dlgr_hooks *hooks)
{
	char	err[256];

	if (!dlgr_configured())
		return (0);
	W.hooks = *hooks;
	W.was_up = false;
	if ((W.cmd = redis_new(base, &G.set, "dialogs", dlgr_cmd_state, NULL,
	    err, sizeof(err))) == NULL ||
	    (W.sub = redis_new(base, &G.set, "dialog-events", NULL, NULL, err,
	    sizeof(err))) == NULL) {
		log_warnx("dialog: redis: %s; dialogs stay local", err);
		redis_free(W.cmd);
		W.cmd = NULL;
		return (-1);
	}
	redis_subscribe(W.sub, DLGR_CHANNEL, dlgr_message, NULL);
	redis_start(W.cmd);
	redis_start(W.sub);
	return (0);
}

void
dlgr_stop(void)
{
	redis_free(W.sub);
	redis_free(W.cmd);
	W.sub = W.cmd = NULL;
}

bool
dlgr_up(void)
{
	return (W.cmd != NULL && redis_is_up(W.cmd));
}

static void
dlgr_keyname(struct buf *b, struct slice callid, struct slice ftag,
    struct slice ttag)
{
	buf_adds(b, "osprey:dlg:{");
	buf_add(b, callid.p, callid.len);
	buf_adds(b, "}:");
	buf_add(b, ftag.p, ftag.len);
	buf_adds(b, ":");
	buf_add(b, ttag.p, ttag.len);
}

/* Not up: counted, not queued (-1). */
static int
dlgr_send(const char *what, int argc, const char **argv, const size_t *len)
{
	if (W.cmd == NULL)
		return (-1);
	if (redis_command(W.cmd, dlgr_write_reply, (void *)what, argc, argv,
	    len) == -1) {
		__atomic_add_fetch(&G.errors, 1, __ATOMIC_RELAXED);
		log_debug("dialog: redis %s not sent (down)", what);
		return (-1);
	}
	return (0);
}

/* 0: sent (its failure comes later, counted); -1: Redis is down. */
int
dlgr_put(struct slice callid, struct slice ftag, struct slice ttag,
    const void *rec, size_t reclen, uint32_t ttl_s)
{
	struct buf	 k;
	char		 ttl[16];
	const char	*argv[5];
	size_t		 len[5];
	int		 rc;

	if (W.cmd == NULL)
		return (-1);
	buf_init(&k, 128);
	dlgr_keyname(&k, callid, ftag, ttag);
	snprintf(ttl, sizeof(ttl), "%u", ttl_s);
	argv[0] = "SET";	len[0] = 3;
	argv[1] = k.p;		len[1] = k.len;
	argv[2] = rec;		len[2] = reclen;
	argv[3] = "EX";		len[3] = 2;
	argv[4] = ttl;		len[4] = strlen(ttl);
	rc = dlgr_send("SET", 5, argv, len);
	buf_cleanup(&k);
	return (rc);
}

void
dlgr_del(struct slice callid, struct slice ftag, struct slice ttag)
{
	struct buf	 k, m;
	const char	*argv[3];
	size_t		 len[3];

	if (W.cmd == NULL)
		return;
	buf_init(&k, 128);
	dlgr_keyname(&k, callid, ftag, ttag);
	argv[0] = "DEL";	len[0] = 3;
	argv[1] = k.p;		len[1] = k.len;
	dlgr_send("DEL", 2, argv, len);
	buf_init(&m, 128);
	buf_add(&m, callid.p, callid.len);
	buf_adds(&m, "\n");
	buf_add(&m, ftag.p, ftag.len);
	buf_adds(&m, "\n");
	buf_add(&m, ttag.p, ttag.len);
	argv[0] = "PUBLISH";	len[0] = 7;
	argv[1] = DLGR_CHANNEL;	len[1] = sizeof(DLGR_CHANNEL) - 1;
	argv[2] = m.p;		len[2] = m.len;
	dlgr_send("PUBLISH", 3, argv, len);
	buf_cleanup(&m);
	buf_cleanup(&k);
}

static void
dlgr_fetch_reply(void *arg, enum redis_result res,
    const struct redisReply *r)
{
	struct dlgr_fetch	*f = arg;
	size_t			 i;

	if (res != REDIS_R_OK || r->type != REDIS_REPLY_ARRAY) {
		dlgr_failed("MGET", res, r);
		f->fn(f->arg, NULL, 0, true);
		free(f);
		return;
	}
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING) {
			f->fn(f->arg, r->element[i]->str, r->element[i]->len,
			    false);
			free(f);
			return;
		}
	f->fn(f->arg, NULL, 0, false);
	free(f);
}

/*
 * The dialog of Call-ID and two tags (either order: the caller's or the
 * callee's request); fn is called once (never before this returns).
 * -1: Redis is not up, nothing asked.
 */
int
dlgr_fetch(struct slice callid, struct slice tag1, struct slice tag2,
    dlgr_fetch_fn *fn, void *arg)
{
	struct dlgr_fetch	*f;
	struct buf		 k1, k2;
	const char		*argv[3];
	size_t			 len[3];
	int			 rc;

	if (!dlgr_up())
		return (-1);
	buf_init(&k1, 128);
	buf_init(&k2, 128);
	dlgr_keyname(&k1, callid, tag1, tag2);
	dlgr_keyname(&k2, callid, tag2, tag1);
	argv[0] = "MGET";	len[0] = 4;
	argv[1] = k1.p;		len[1] = k1.len;
	argv[2] = k2.p;		len[2] = k2.len;
	f = xmalloc(sizeof(*f));
	f->fn = fn;
	f->arg = arg;
	if ((rc = redis_command(W.cmd, dlgr_fetch_reply, f, 3, argv,
	    len)) == -1)
		free(f);
	buf_cleanup(&k1);
	buf_cleanup(&k2);
	return (rc);
}

/* A GET (another node's INVITE record, DLGR_INVITE_KEY). */
static void
dlgr_get_reply(void *arg, enum redis_result res, const struct redisReply *r)
{
	struct dlgr_fetch	*f = arg;

	if (res != REDIS_R_OK || (r->type != REDIS_REPLY_STRING &&
	    r->type != REDIS_REPLY_NIL)) {
		dlgr_failed("GET", res, r);
		f->fn(f->arg, NULL, 0, true);
	} else if (r->type == REDIS_REPLY_STRING)
		f->fn(f->arg, r->str, r->len, false);
	else
		f->fn(f->arg, NULL, 0, false);
	free(f);
}

/*
 * The record of the INVITE of Call-ID and From tag that rang (its CANCEL
 * may reach another node): "osprey:dlg:{CALLID}:FTAG:" (no To tag).
 */
int
dlgr_put_invite(struct slice callid, struct slice ftag, const void *rec,
    size_t reclen, uint32_t ttl_s)
{
	return (dlgr_put(callid, ftag, (struct slice){ "", 0 }, rec, reclen,
	    ttl_s));
}

void
dlgr_del_invite(struct slice callid, struct slice ftag)
{
	struct buf	 k;
	const char	*argv[2];
	size_t		 len[2];

	if (W.cmd == NULL)
		return;
	buf_init(&k, 128);
	dlgr_keyname(&k, callid, ftag, (struct slice){ "", 0 });
	argv[0] = "DEL";	len[0] = 3;
	argv[1] = k.p;		len[1] = k.len;
	dlgr_send("DEL", 2, argv, len);
	buf_cleanup(&k);
}

/* As dlgr_fetch(), the INVITE's record. */
int
dlgr_fetch_invite(struct slice callid, struct slice ftag, dlgr_fetch_fn *fn,
    void *arg)
{
	struct dlgr_fetch	*f;
	struct buf		 k;
	const char		*argv[2];
	size_t			 len[2];
	int			 rc;

	if (!dlgr_up())
		return (-1);
	buf_init(&k, 128);
	dlgr_keyname(&k, callid, ftag, (struct slice){ "", 0 });
	argv[0] = "GET";	len[0] = 3;
	argv[1] = k.p;		len[1] = k.len;
	f = xmalloc(sizeof(*f));
	f->fn = fn;
	f->arg = arg;
	if ((rc = redis_command(W.cmd, dlgr_get_reply, f, 2, argv,
	    len)) == -1)
		free(f);
	buf_cleanup(&k);
	return (rc);
}

/* ---- another node's early dialog, adopted here ---- */

/* KEYS[1] the dialog; ARGV: its record, the TTL, the early byte's offset. */
static const char put_early_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "local o = tonumber(ARGV[3])\n"
    "if v and #v > o and string.byte(v, o + 1) == 1 then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/*
 * KEYS[1] the dialog; ARGV: the early byte's offset, "1" to take a
 * confirmed record, the channel, the end's message.  0: no record; 1:
 * the early record, deleted; else the confirmed record (deleted if
 * taken).
 */
static const char end_early_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return 0 end\n"
    "local o = tonumber(ARGV[1])\n"
    "local early = #v > o and string.byte(v, o + 1) == 1\n"
    "if early or ARGV[2] == '1' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', ARGV[3], ARGV[4])\n"
    "end\n"
    "if early then return 1 end\n"
    "return v\n";

/* 0: sent; -1: Redis is down. */
int
dlgr_put_early(struct slice callid, struct slice ftag, struct slice ttag,
    const void *rec, size_t reclen, uint32_t ttl_s, size_t early_off)
{
	struct buf	 k;
	char		 ttl[16], off[24];
	const char	*argv[7];
	size_t		 len[7];
	int		 rc;

	if (W.cmd == NULL)
		return (-1);
	buf_init(&k, 128);
	dlgr_keyname(&k, callid, ftag, ttag);
	snprintf(ttl, sizeof(ttl), "%u", ttl_s);
	snprintf(off, sizeof(off), "%zu", early_off);
	argv[0] = "EVAL";		len[0] = 4;
	argv[1] = put_early_lua;	len[1] = sizeof(put_early_lua) - 1;
	argv[2] = "1";			len[2] = 1;
	argv[3] = k.p;			len[3] = k.len;
	argv[4] = rec;			len[4] = reclen;
	argv[5] = ttl;			len[5] = strlen(ttl);
	argv[6] = off;			len[6] = strlen(off);
	rc = dlgr_send("EVAL (early SET)", 7, argv, len);
	buf_cleanup(&k);
	return (rc);
}

struct dlgr_end_req {
	dlgr_end_fn	*fn;
	void		*arg;
};

static void
dlgr_end_reply(void *arg, enum redis_result res, const struct redisReply *r)
{
	struct dlgr_end_req	*e = arg;

	if (res != REDIS_R_OK || (r->type != REDIS_REPLY_INTEGER &&
	    r->type != REDIS_REPLY_STRING)) {
		dlgr_failed("EVAL (early end)", res, r);
		if (e->fn != NULL)
			e->fn(e->arg, DLGR_END_FAILED, NULL, 0);
	} else if (e->fn == NULL)
		;
	else if (r->type == REDIS_REPLY_STRING)
		e->fn(e->arg, DLGR_END_CONFIRMED, r->str, r->len);
	else
		e->fn(e->arg, r->integer == 1 ? DLGR_END_EARLY :
		    DLGR_END_GONE, NULL, 0);
	free(e);
}

int
dlgr_end_early(struct slice callid, struct slice ftag, struct slice ttag,
    size_t early_off, bool take, dlgr_end_fn *fn, void *arg)
{
	struct dlgr_end_req	*e;
	struct buf		 k, m;
	char			 off[24];
	const char		*argv[8];
	size_t			 len[8];
	int			 rc;

	if (W.cmd == NULL || !redis_is_up(W.cmd))
		return (-1);
	buf_init(&k, 128);
	dlgr_keyname(&k, callid, ftag, ttag);
	buf_init(&m, 128);
	buf_add(&m, callid.p, callid.len);
	buf_adds(&m, "\n");
	buf_add(&m, ftag.p, ftag.len);
	buf_adds(&m, "\n");
	buf_add(&m, ttag.p, ttag.len);
	snprintf(off, sizeof(off), "%zu", early_off);
	argv[0] = "EVAL";		len[0] = 4;
	argv[1] = end_early_lua;	len[1] = sizeof(end_early_lua) - 1;
	argv[2] = "1";			len[2] = 1;
	argv[3] = k.p;			len[3] = k.len;
	argv[4] = off;			len[4] = strlen(off);
	argv[5] = take ? "1" : "0";	len[5] = 1;
	argv[6] = DLGR_CHANNEL;		len[6] = sizeof(DLGR_CHANNEL) - 1;
	argv[7] = m.p;			len[7] = m.len;
	e = xmalloc(sizeof(*e));
	e->fn = fn;
	e->arg = arg;
	if ((rc = redis_command(W.cmd, dlgr_end_reply, e, 8, argv,
	    len)) == -1) {
		__atomic_add_fetch(&G.errors, 1, __ATOMIC_RELAXED);
		free(e);
	}
	buf_cleanup(&m);
	buf_cleanup(&k);
	return (rc);
}
