/*
 * Dialogs seen from a record-routing proxy (RFC 3261 section 12), one
 * table per worker.  See dialog.h for who calls what, and doc/HACKING.md
 * ("Dialogs") for the design.
 */
#include "config.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dialog.h"
#include "dialog_int.h"
#include "dialog_redis.h"
#include "dialog_store.h"
#include "hashtab.h"
#include "log.h"
#include "resolver.h"
#include "shard.h"
#include "sipbuild.h"
#include "sipcause.h"
#include "timer.h"
#include "txn.h"
#include "xmalloc.h"

/* A confirmed dialog in dialog.database: this, then its strings. */
#define DREC_VERSION	1
struct drec {
	uint32_t		 version;
	uint32_t		 off[DS_N + 1];
	struct txn_addr		 caller_addr;
	struct txn_addr		 callee_addr;
	int64_t			 start_s, start_ns;
	int64_t			 answer_s, answer_ns;
	uint32_t		 caller_cseq;
	uint32_t		 callee_cseq;
	uint8_t			 caller_sock;
	uint8_t			 callee_sock;
	uint8_t			 cnt_user;
	uint8_t			 cnt_src;
	uint8_t			 media;		/* in the padding: 0 before */
	uint8_t			 kind;		/* in the padding: 0, a call */
	uint8_t			 transit;	/* in the padding: 0 before */
	uint8_t			 early;		/* in the padding: Redis only */
};

/*
 * Another node's INVITE this node cancelled (its record from Redis): the
 * INVITE's lines as that node sent them, so that its final answer, which
 * comes back here, is relayed and ACKed (as its client transaction
 * would), and the caller's ACK for it absorbed.
 */
struct dinv {
	struct dinv		*next;
	struct sipmsg		*inv;		/* owned: the INVITE sent */
	struct tp_addr		 peer;
	struct tp_sock		*sock;
	struct timer		 life;
	char			 up[96];	/* the caller's branch */
	char			 ttag[96];	/* its first early dialog's */
	int			 final;		/* a failure came while ... */
	bool			 fetching;	/* ... its early dialog was
						   asked of Redis */
	bool			 cancelled;	/* our CANCEL went */
	int			 code;		/* its final answer, once */
};

/*
 * An answer to another node's INVITE (no transaction here) while its
 * INVITE's record is asked of Redis: the answer and its retransmissions
 * (held by the proxy) wait for it.
 */
#define DPEND_WAITERS	8
struct dpend {
	struct dpend		*next;
	struct {
		dialog_answer_fn	*fn;
		void			*arg;
	}			 w[DPEND_WAITERS];
	unsigned		 nw;
	uint32_t		 cseq;
	char			 down[96];	/* the INVITE's branch */
	char			 up[96];	/* the caller's */
};

/*
 * A dialog asked of Redis, and the in-dialog requests waiting for it (a
 * few: others of the same dialog meanwhile are dropped).
 */
#define DFETCH_WAITERS	8
struct dfetch {
	struct hnode		 node;
	struct {
		dialog_fetched_fn	*fn;
		void			*arg;
	}			 w[DFETCH_WAITERS];
	unsigned		 nw;
	struct slice		 key_callid;	/* in key */
	size_t			 klen;
	char			 key[];
};

/* Per user and per source address: open calls (G.lim, under G.mu). */
struct lim {
	struct hnode	 node;
	unsigned	 n;
	char		 key[];
};

const unsigned dialog_duration_bounds_s[DIALOG_NBUCKETS] = {
	10, 30, 60, 180, 600, 1800, 3600, 14400
};

/*
 * An early dialog of another node's call, adopted here (its INVITE is not
 * ours): it does not own its key in Redis (dlgr_put_early(),
 * dlgr_end_early()).
 */
static bool
dialog_adopted_early(const struct dialog *d)
{
	return (d->state == DLG_EARLY && d->call == NULL &&
	    d->kind == DLG_CALL && !d->transit);
}

#define DREC_EARLY_OFF	offsetof(struct drec, early)

static void	dinv_free(struct dinv *);
static void	dialog_call_uninvite(struct dialog_call *);
static void	dialog_early_record(const struct dialog *, enum cdr_ended_by,
		    int);
static void	dialog_early_over(struct dialog *, enum cdr_ended_by, int);

/* ---- limits ---- */

/* Add d (1 or -1) to the count of key; false: at limit (not added). */
static bool
lim_add(const char *pfx, struct slice v, int d, unsigned limit)
{
	struct lim	*l;
	struct hnode	*hn;
	char		 kstore[300];
	struct buf	 k;
	bool		 ok = true;

	buf_init_on(&k, kstore, sizeof(kstore));
	buf_adds(&k, pfx);
	buf_add(&k, v.p, v.len);
	pthread_mutex_lock(&G.mu);
	if (!G.lim_up) {
		hashtab_init(&G.lim, 64);
		G.lim_up = true;
	}
	hn = hashtab_find(&G.lim, k.p, k.len);
	l = (struct lim *)hn;
	if (d > 0) {
		if (l != NULL && limit > 0 && l->n >= limit)
			ok = false;
		else if (l == NULL) {
			l = xmalloc(sizeof(*l) + k.len + 1);
			memcpy(l->key, k.p, k.len + 1);
			l->n = 1;
			hashtab_insert(&G.lim, &l->node, l->key, k.len);
		} else
			l->n++;
	} else if (l != NULL && --l->n == 0) {
		hashtab_remove(&G.lim, &l->node);
		free(l);
	}
	pthread_mutex_unlock(&G.mu);
	buf_cleanup(&k);
	return (ok);
}

static void
lim_release(const struct strs *s, bool *user, bool *src)
{
	if (*user)
		lim_add("u:", str_get(s, DS_USER), -1, 0);
	if (*src)
		lim_add("s:", str_get(s, DS_SRC), -1, 0);
	*user = *src = false;
}

/* ---- the table ---- */

static void	dialog_republish(void);
static struct dialog *dialog_revive(const void *, size_t);
static void	dialog_ended_elsewhere(struct slice, struct slice,
		    struct slice);

void
dialog_init(struct event_base *base, struct tp *tp)
{
	static const struct dlgr_hooks hooks = {
		.republish = dialog_republish,
		.ended = dialog_ended_elsewhere,
	};

	D.base = base;
	D.tp = tp;
	hashtab_init(&D.ht, 256);
	hashtab_init(&D.subs, 16);
	D.up = true;
	D.closing = D.stopping = false;
	D.serial = (uint64_t)shard_self() << 48;
	hashtab_init(&D.fetching, 8);
	(void)dlgr_start(base, &hooks);
}

static struct slice dialog_keyof(const struct dialog *);

void
dialog_link(struct dialog *d)
{
	struct slice	k = dialog_keyof(d);	/* Call-ID, both tags */

	hashtab_insert(&D.ht, &d->node, k.p, k.len);
}

static struct slice
dialog_keyof(const struct dialog *d)
{
	return ((struct slice){ d->str.s, d->str.off[DS_TTAG + 1] - 1 });
}

/* d's record (struct drec, then its strings); *len its size. */
static char *
dialog_encode(const struct dialog *d, size_t *len)
{
	struct drec	 r;
	char		*b;

	memset(&r, 0, sizeof(r));
	r.version = DREC_VERSION;
	memcpy(r.off, d->str.off, sizeof(r.off));
	r.caller_addr = d->caller_addr;
	r.callee_addr = d->callee_addr;
	r.start_s = d->start.tv_sec;
	r.start_ns = d->start.tv_nsec;
	r.answer_s = d->answer.tv_sec;
	r.answer_ns = d->answer.tv_nsec;
	r.caller_cseq = d->caller_cseq;
	r.callee_cseq = d->callee_cseq;
	r.caller_sock = d->caller_sock;
	r.callee_sock = d->callee_sock;
	r.cnt_user = d->cnt_user;
	r.cnt_src = d->cnt_src;
	r.media = d->media;
	r.kind = d->kind;
	r.transit = d->transit;
	r.early = d->state == DLG_EARLY;
	*len = sizeof(r) + d->str.off[DS_N];
	b = xmalloc(*len);
	memcpy(b, &r, sizeof(r));
	memcpy(b + sizeof(r), d->str.s, d->str.off[DS_N]);
	return (b);
}

/*
 * How long an early dialog lasts at most: its INVITE's Timer C, then the
 * time its final answer takes to come back (64*T1).
 */
static uint32_t
dialog_early_s(void)
{
	const struct txn_settings	*t = txn_settings();

	return ((t->c_ms + 64 * t->t1_ms) / 1000 + 1);
}

/*
 * How long Redis keeps d: a call until its dialog_timeout (a day without
 * one), an early one while its INVITE may ring, a subscription until its
 * expiry (in answer), and a margin.
 */
static uint32_t
dialog_ttl_s(const struct dialog *d)
{
	struct timespec	now;
	int64_t		left;

	clock_gettime(CLOCK_REALTIME, &now);
	if (d->kind == DLG_SUB)
		left = (int64_t)(d->answer.tv_sec - now.tv_sec);
	else if (d->state == DLG_EARLY)	/* as long as its INVITE may ring */
		left = (int64_t)dialog_early_s() - (int64_t)(now.tv_sec -
		    d->start.tv_sec);
	else if (G.set.timeout_s > 0)
		left = (int64_t)G.set.timeout_s - (int64_t)(now.tv_sec -
		    d->answer.tv_sec);
	else
		left = DLGR_NO_TIMEOUT_S;
	if (left < 0)
		left = 0;
	if (left > 30 * 86400)
		left = 30 * 86400;
	return ((uint32_t)left + DLGR_MARGIN_S);
}

static void
dialog_share_put(struct dialog *d, const char *b, size_t len)
{
	int	rc;

	/* Not sent (Redis down): the re-publication will. */
	if (dialog_adopted_early(d))	/* not over the answered call's */
		rc = dlgr_put_early(str_get(&d->str, DS_CALLID),
		    str_get(&d->str, DS_FTAG), str_get(&d->str, DS_TTAG), b,
		    len, dialog_ttl_s(d), DREC_EARLY_OFF);
	else
		rc = dlgr_put(str_get(&d->str, DS_CALLID), str_get(&d->str,
		    DS_FTAG), str_get(&d->str, DS_TTAG), b, len,
		    dialog_ttl_s(d));
	if (rc == 0)
		d->shared = true;
}

/*
 * A confirmed dialog into dialog.database (queued; the main loop writes)
 * and into Redis (dialog.backend "redis"; sent now, not awaited); an
 * early one of a call into Redis only (its confirmation overwrites it),
 * so that another node can take it over.
 */
void
dialog_save(struct dialog *d)
{
	struct slice	 k;
	size_t		 len;
	char		*b;
	bool		 early = d->state == DLG_EARLY;

	if (D.closing || (d->state != DLG_CONFIRMED && !(early &&
	    d->kind == DLG_CALL && !d->transit && dlgr_configured())) ||
	    (!dialog_store_is_open() && !dlgr_configured()))
		return;
	b = dialog_encode(d, &len);
	if (dialog_store_is_open() && !early) {
		k = dialog_keyof(d);
		dialog_store_put(k.p, k.len, b, len);
		d->stored = true;
	}
	/*
	 * A transit dialog is the entry node's in Redis (the same key): a
	 * node that adopts it after a failover adopts that node's, which
	 * writes the one record.
	 */
	if (dlgr_configured() && !d->transit)
		dialog_share_put(d, b, len);
	free(b);
}

/* Redis is back (restarted empty, maybe): every dialog here again. */
static void
dialog_republish(void)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	unsigned		 count = 0;
	size_t			 len;
	char			*b;

	if (!D.up || D.closing)
		return;
	HASHTAB_FOREACH(n, &D.ht, it) {
		struct dialog	*d = (struct dialog *)n;

		if ((d->state != DLG_CONFIRMED && (d->state != DLG_EARLY ||
		    d->kind != DLG_CALL)) || d->transit)
			continue;
		b = dialog_encode(d, &len);
		dialog_share_put(d, b, len);
		free(b);
		count++;
	}
	if (count > 0)
		log_notice("dialog: re-published %u dialog(s) to redis",
		    count);
}

void
dialog_account(struct dialog *d)
{
	CNT_SUB(bytes, d->size);
	d->size = (uint32_t)(sizeof(*d) + d->str.off[DS_N]);
	CNT_ADD(bytes, d->size);
}

/* Replace string i of d (the key is never replaced this way). */
void
dialog_str_replace(struct dialog *d, enum dlg_str i, struct slice v)
{
	struct slice	all[DS_N];

	dialog_str_all(&d->str, all);
	all[i] = v;
	hashtab_remove(&D.ht, &d->node);
	dialog_str_set(&d->str, all);
	dialog_link(d);
	dialog_account(d);
	dialog_save(d);
}

struct dialog *
dialog_find(struct slice callid, struct slice a, struct slice b)
{
	struct buf	 k;
	char		 kstore[512];
	struct hnode	*hn;

	if (!D.up)
		return (NULL);
	buf_init_on(&k, kstore, sizeof(kstore));
	dialog_key(&k, callid, a, b);
	hn = hashtab_find(&D.ht, k.p, k.len);
	buf_cleanup(&k);
	return ((struct dialog *)hn);
}

static void
dialog_unlink_call(struct dialog *d)
{
	struct dialog	**pp;

	if (d->call == NULL)
		return;
	for (pp = &d->call->dialogs; *pp != NULL; pp = &(*pp)->call_next)
		if (*pp == d) {
			*pp = d->call_next;
			break;
		}
	d->call = NULL;
	d->call_next = NULL;
}

void
dialog_free(struct dialog *d)
{
	struct slice	k;

	if (d->stored && !D.closing) {
		k = dialog_keyof(d);
		dialog_store_del(k.p, k.len);
	}
	if (d->shared && !D.closing && dialog_adopted_early(d))
		(void)dlgr_end_early(str_get(&d->str, DS_CALLID),
		    str_get(&d->str, DS_FTAG), str_get(&d->str, DS_TTAG),
		    DREC_EARLY_OFF, false, NULL, NULL);
	else if (d->shared && !D.closing)
		dlgr_del(str_get(&d->str, DS_CALLID), str_get(&d->str,
		    DS_FTAG), str_get(&d->str, DS_TTAG));
	dialog_unlink_call(d);
	hashtab_remove(&D.ht, &d->node);
	timer_stop(&d->timeout);
	if (d->kind == DLG_SUB)
		CNT_SUB(subscriptions, 1);
	else
		state_count(d, d->state, -1);
	lim_release(&d->str, &d->cnt_user, &d->cnt_src);
	CNT_SUB(bytes, d->size);
	free(d->str.s);
	free(d);
}

/* ---- calls being set up ---- */

/*
 * May this caller start one more call (limits.calls_per_user, per
 * source)?  0, or the status to refuse with (486, 503) and err.
 */
int
dialog_call_admit(struct slice user, const struct tp_addr *src, char *err,
    size_t errlen)
{
	char	ip[INET6_ADDRSTRLEN];

	if (G.set.calls_per_user > 0 && user.len > 0 &&
	    !lim_add("u:", user, 1, G.set.calls_per_user)) {
		snprintf(err, errlen, "Busy Here (limits.calls_per_user)");
		CNT_ADD(limited, 1);
		return (486);
	}
	if (G.set.calls_per_source > 0) {
		tp_addr_ip(src, ip, sizeof(ip));
		if (!lim_add("s:", (struct slice){ ip, strlen(ip) }, 1,
		    G.set.calls_per_source)) {
			if (G.set.calls_per_user > 0 && user.len > 0)
				lim_add("u:", user, -1, 0);
			snprintf(err, errlen, "Service Unavailable "
			    "(limits.calls_per_source)");
			CNT_ADD(limited, 1);
			return (503);
		}
	}
	return (0);
}

void
sub_unpend(struct dialog_call *c)
{
	if (c->pending && D.up)
		hashtab_remove(&D.subs, &c->node);
	c->pending = false;
}

/*
 * A new dialog of call c: its caller's side, as the INVITE (or
 * SUBSCRIBE) gave it; v: the strings, c's and the callee's.
 */
struct dialog *
dialog_of_call(const struct dialog_call *c, struct slice *v)
{
	struct dialog	*d = xcalloc(1, sizeof(*d));

	dialog_str_all(&c->str, v);
	d->caller_addr = c->src;
	d->caller_sock = c->sock;
	d->caller_cseq = c->cseq;
	d->start = c->start;
	d->start_ms = c->start_ms;
	d->transit = c->transit;
	return (d);
}

void
dialog_confirm(struct dialog *d, struct dialog_call *c)
{
	state_count(d, d->state, -1);
	d->state = DLG_CONFIRMED;
	state_count(d, DLG_CONFIRMED, 1);
	if (!d->transit)
		CNT_ADD(created, 1);
	clock_gettime(CLOCK_REALTIME, &d->answer);
	if (G.set.timeout_s > 0)
		timer_set(&d->timeout, G.set.timeout_s > 4000000 ? 4000000000u :
		    G.set.timeout_s * 1000);
	if (c != NULL && !c->answered) {
		/* The first answer holds the call's place in the limits. */
		c->answered = true;
		if (!c->transit)
			CNT_ADD(answered, 1);
		d->cnt_user = c->cnt_user;
		d->cnt_src = c->cnt_src;
		c->cnt_user = c->cnt_src = false;
	}
	log_info("dialog %s: confirmed%s caller=%s callee=%s",
	    STR(d, DS_CALLID), d->transit ? " (transit)" : "",
	    STR(d, DS_CALLER_TARGET),
	    STR(d, DS_CALLEE_TARGET));
}

/*
 * The call's media session goes (rtpengine's delete, by Call-ID and the
 * caller's tag: the whole call), once: neither the call nor the dialog
 * that ends asks again.
 */
static void
media_end(const struct strs *s, bool *flag, struct dialog_call *c)
{
	if (!*flag)
		return;
	*flag = false;
	if (c != NULL)
		c->media = false;
	if (G.media_end != NULL)
		G.media_end(str_get(s, DS_CALLID), str_get(s, DS_FTAG),
		    str_get(s, DS_TTAG));
}

static void
cdr_fill(struct cdr *r, const struct strs *s, const struct tp_addr *src)
{
	memset(r, 0, sizeof(*r));
	r->callid = str_get(s, DS_CALLID);
	r->from_tag = str_get(s, DS_FTAG);
	r->to_tag = str_get(s, DS_TTAG);
	r->caller = hdr_uri(str_get(s, DS_FROM));
	r->callee = hdr_uri(str_get(s, DS_TO));
	r->ruri = str_get(s, DS_RURI);
	r->identity = str_get(s, DS_IDENTITY);
	r->src = *src;
}

/*
 * A failed attempt whose early dialogs were in Redis, while Redis is
 * asked whether another node that adopted one ended it first (and wrote
 * the attempt's record): a copy of what the record needs.
 */
struct dattempt {
	struct strs		 str;		/* owned */
	struct txn_addr		 src;
	struct timespec		 start, end;
	int			 code, cause;
	enum cdr_ended_by	 by;
	unsigned		 pending;	/* replies to come */
	bool			 written;
};

static void
attempt_write(const struct strs *s, const struct txn_addr *ta,
    struct timespec start, struct timespec end, int code, int cause,
    enum cdr_ended_by by)
{
	struct cdr	 r;
	struct tp_addr	 src;

	txn_addr_get(ta, &src);
	cdr_fill(&r, s, &src);
	r.start = start;
	r.end = end;
	r.code = code;
	r.cause = cause;
	r.ended_by = by;
	G.cdr(&r);
}

/* The record of the attempt c, which failed (code, Q.850 cause). */
static void
call_record(const struct dialog_call *c, int code, int cause,
    enum cdr_ended_by by)
{
	struct timespec	 now;

	if (G.cdr == NULL || c->transit)	/* the entry node's record */
		return;
	if (c->recorded) {
		log_info("dialog %s: attempt ended code=%d, its record written "
		    "by the node that ended its early dialog", STR(c,
		    DS_CALLID), code);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	attempt_write(&c->str, &c->src, c->start, now, code, cause, by);
}

/*
 * Redis said what an early dialog's key of a failed attempt held: the
 * early record, deleted by us (or Redis failed: the call is ours), and
 * the attempt's record is written here, once; none: a node that adopted
 * it ended it first and wrote the record.
 */
static void
dialog_attempt_reply(void *arg, enum dlgr_end res, const void *rec,
    size_t len)
{
	struct dattempt	*at = arg;

	(void)rec;
	(void)len;
	if (!at->written && (res == DLGR_END_EARLY ||
	    res == DLGR_END_FAILED) && G.cdr != NULL) {
		at->written = true;
		attempt_write(&at->str, &at->src, at->start, at->end, at->code,
		    at->cause, at->by);
	}
	if (--at->pending > 0)
		return;
	if (!at->written)
		log_info("dialog %s: attempt ended code=%d, its record written "
		    "by the node that ended its early dialog", at->str.s,
		    at->code);
	free(at->str.s);
	free(at);
}

/*
 * The failed attempt c's early dialogs in Redis go only if they are
 * still early there (not ended by a node that adopted one: that node
 * wrote the attempt's record), and the record waits for the answers.
 * false: none in Redis, Redis is down or the worker stops (the record
 * is written now).
 */
static bool
dialog_attempt_shared(struct dialog_call *c, int code, int cause,
    enum cdr_ended_by by)
{
	struct dattempt	*at;
	struct dialog	*d;

	if (G.cdr == NULL || c->transit || c->recorded || D.stopping ||
	    !dlgr_up())
		return (false);
	for (d = c->dialogs; d != NULL; d = d->call_next)
		if (d->state == DLG_EARLY && d->shared)
			break;
	if (d == NULL)
		return (false);
	at = xcalloc(1, sizeof(*at));
	at->str.s = xmalloc(c->str.off[DS_N]);
	memcpy(at->str.s, c->str.s, c->str.off[DS_N]);
	memcpy(at->str.off, c->str.off, sizeof(at->str.off));
	at->src = c->src;
	at->start = c->start;
	clock_gettime(CLOCK_REALTIME, &at->end);
	at->code = code;
	at->cause = cause;
	at->by = by;
	at->pending = 1;	/* until the loop is over */
	for (d = c->dialogs; d != NULL; d = d->call_next)
		if (d->state == DLG_EARLY && d->shared &&
		    dlgr_end_early(str_get(&d->str, DS_CALLID),
		    str_get(&d->str, DS_FTAG), str_get(&d->str, DS_TTAG),
		    DREC_EARLY_OFF, false, dialog_attempt_reply, at) == 0) {
			d->shared = false;	/* asked: not deleted again */
			at->pending++;
		}
	if (at->pending == 1)	/* none asked: ours */
		dialog_attempt_reply(at, DLGR_END_FAILED, NULL, 0);
	else
		at->pending--;
	return (true);
}

/*
 * The INVITE of c got its final answer upstream: a failure (code >= 300,
 * ended_by who) ends its early dialogs and makes the attempt's record.
 */
void
dialog_call_final(struct dialog_call *c, int code, enum cdr_ended_by by)
{
	bool	recorded;

	if (c != NULL && c->sub) {
		if (code >= 300)	/* no subscription: no NOTIFY makes one */
			sub_unpend(c);
		return;
	}
	dialog_call_uninvite(c);	/* its INVITE is over */
	if (c == NULL || c->ended || c->answered || code < 300)
		return;
	if (D.stopping) {
		/* The transactions going at the stop: not the callee's. */
		code = 503;
		by = CDR_BY_PROXY;
	}
	c->ended = true;
	media_end(&c->str, &c->media, NULL);
	recorded = dialog_attempt_shared(c, code, D.stopping ?
	    DLG_CAUSE_STOP : sip_cause(code), by);
	while (c->dialogs != NULL) {
		struct dialog	*d = c->dialogs;

		if (d->state == DLG_EARLY)
			dialog_free(d);
		else
			dialog_unlink_call(d);
	}
	lim_release(&c->str, &c->cnt_user, &c->cnt_src);
	if (!recorded)
		call_record(c, code, D.stopping ? DLG_CAUSE_STOP :
		    sip_cause(code), by);
}

/*
 * The response context goes: so do early dialogs nobody answered.  A call
 * that got no final answer (the worker stops with its INVITE still on,
 * after shutdown_grace) is a failed attempt: its record says 503 (what a
 * stopping proxy answers), Q.850 41 NORMAL_TEMPORARY_FAILURE, ended by
 * the proxy.
 */
void
dialog_call_free(struct dialog_call *c)
{
	if (c == NULL)
		return;
	if (c->sub) {
		sub_unpend(c);
		free(c);
		return;
	}
	dialog_call_uninvite(c);
	if (!c->answered && !c->ended && D.up) {
		c->ended = true;
		log_info("dialog %s: no final answer at the stop",
		    STR(c, DS_CALLID));
		call_record(c, 503, DLG_CAUSE_STOP, CDR_BY_PROXY);
	}
	if (!c->answered && D.up)	/* no final came: the stop */
		media_end(&c->str, &c->media, NULL);
	while (c->dialogs != NULL) {
		struct dialog	*d = c->dialogs;

		if (d->state == DLG_EARLY && D.up)
			dialog_free(d);
		else
			dialog_unlink_call(d);
	}
	lim_release(&c->str, &c->cnt_user, &c->cnt_src);
	free(c);		/* its strings with it */
}

/* ---- the end ---- */

/* A subscription ends (no record: it is no call). */
void
sub_end(struct dialog *d, const char *why)
{
	log_info("dialog %s: subscription ended (%s)", STR(d, DS_CALLID),
	    why);
	dialog_free(d);
}

static const char *
by_name(enum cdr_ended_by by)
{
	static const char *const names[] = { "nobody", "caller", "callee",
	    "proxy", "admin" };

	return (by <= CDR_BY_ADMIN ? names[by] : "?");
}

/* The record of the call d, confirmed, ended now. */
static void
dialog_record(const struct dialog *d, enum cdr_ended_by by, int code,
    int cause)
{
	struct cdr	 r;
	struct tp_addr	 src;

	if (G.cdr == NULL || d->state != DLG_CONFIRMED || d->transit)
		return;
	txn_addr_get(&d->caller_addr, &src);
	cdr_fill(&r, &d->str, &src);
	r.start = d->start;
	r.answer = d->answer;
	clock_gettime(CLOCK_REALTIME, &r.end);
	r.code = code;
	r.cause = cause;
	r.ended_by = by;
	G.cdr(&r);
}

void
dialog_end(struct dialog *d, enum cdr_ended_by by, int code)
{
	uint64_t	 ms = timer_now_ms() - d->start_ms;
	unsigned	 i;

	if (d->state == DLG_CONFIRMED && !d->transit) {
		uint64_t	 talk_ms;
		struct timespec	 now;

		clock_gettime(CLOCK_REALTIME, &now);
		talk_ms = (uint64_t)(now.tv_sec - d->answer.tv_sec) * 1000 +
		    (uint64_t)((now.tv_nsec - d->answer.tv_nsec) / 1000000);
		if ((int64_t)talk_ms < 0)
			talk_ms = 0;
		for (i = 0; i < DIALOG_NBUCKETS &&
		    talk_ms > dialog_duration_bounds_s[i] * 1000ull; i++)
			;
		CNT_ADD(duration_bucket[i], 1);
		CNT_ADD(duration_count, 1);
		CNT_ADD(duration_sum_ms, talk_ms);
		CNT_ADD(ended[by], 1);
	}
	log_info("dialog %s: ended by %s after %llu ms%s", STR(d, DS_CALLID),
	    by_name(by), (unsigned long long)ms, d->transit ?
	    " (transit: no record here)" : "");
	if (dialog_adopted_early(d) && d->shared) {
		dialog_early_over(d, by, code);	/* as Redis says */
		return;
	}
	if (dialog_adopted_early(d))
		dialog_early_record(d, by, code);	/* another node's */
	dialog_record(d, by, code, 16);	/* Q.850 NORMAL_CLEARING */
	media_end(&d->str, &d->media, d->call);
	dialog_free(d);
}

/* ---- BYEs of our own (dialog_timeout, ospreyctl hangup) ---- */

/* Osprey ends d itself: a BYE to each party, and the record. */
static void
dialog_hangup_one(struct dialog *d, enum cdr_ended_by by)
{
	const char	*reason = by == CDR_BY_ADMIN ?
	    "SIP;cause=200;text=\"Hung up by the operator\"" :
	    "SIP;cause=200;text=\"Maximum call length (dialog_timeout)\"";

	log_notice("dialog %s: hung up by %s", STR(d, DS_CALLID),
	    by == CDR_BY_ADMIN ? "the operator" : "dialog_timeout");
	dialog_send_bye(d, false, reason);
	dialog_send_bye(d, true, reason);
	dialog_end(d, by, 200);
}

void
dialog_timeout_fire(void *arg)
{
	struct dialog	*d = arg;

	if (d->kind == DLG_SUB)
		sub_end(d, "expired");
	else if (d->state == DLG_EARLY) {
		/* Adopted early from another node, and never answered here. */
		log_info("dialog %s: early dialog taken from redis got no "
		    "answer", STR(d, DS_CALLID));
		dialog_end(d, CDR_BY_PROXY, 408);
	} else
		dialog_hangup_one(d, CDR_BY_PROXY);
}

/* ospreyctl hangup: every confirmed dialog of the Call-ID, here. */
int
dialog_hangup(const char *callid, enum cdr_ended_by by, char *err,
    size_t errlen)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct dialog		*hit[64];
	unsigned		 i, nhit = 0;
	size_t			 len = strlen(callid);

	if (!D.up) {
		snprintf(err, errlen, "dialog tracking is off");
		return (-1);
	}
	HASHTAB_FOREACH(n, &D.ht, it) {
		struct dialog	*d = (struct dialog *)n;

		if (d->state == DLG_CONFIRMED && d->kind == DLG_CALL &&
		    nhit < 64 &&
		    d->str.off[DS_FTAG] - 1 == len &&
		    memcmp(STR(d, DS_CALLID), callid, len) == 0)
			hit[nhit++] = d;
	}
	if (nhit == 0) {
		snprintf(err, errlen, "no confirmed dialog with Call-ID %s",
		    callid);
		return (-1);
	}
	for (i = 0; i < nhit; i++)
		dialog_hangup_one(hit[i], by);
	return (0);
}

/*
 * The worker stops (after shutdown_grace; the calls being set up went
 * with their transactions, dialog_call_free()): its dialogs go.  A call
 * dialog.database keeps (stored) comes back after the restart and gets
 * its record when it really ends; every other confirmed one ends here,
 * its record ended by the proxy with Q.850 41 NORMAL_TEMPORARY_FAILURE
 * (before the CDR writer drains).  No BYE goes out and rtpengine is not
 * told: the parties may well talk on.  Early dialogs left belong to calls
 * answered on another fork: no record of their own.
 */
void
dialog_shutdown(void)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct dbye		*b;

	if (!D.up)
		return;
	D.closing = true;	/* dialog.database keeps what it has */
	while ((b = D.byes) != NULL) {
		D.byes = b->next;
		resolver_cancel(b->dns);
		dbye_free(b);
	}
	HASHTAB_FOREACH(n, &D.ht, it) {
		struct dialog	*d = (struct dialog *)n;

		if (d->state == DLG_CONFIRMED && d->kind == DLG_CALL &&
		    !d->stored && !d->shared && !d->transit) {
			log_info("dialog %s: ended by proxy (stopping)",
			    STR(d, DS_CALLID));
			CNT_ADD(ended[CDR_BY_PROXY], 1);
			dialog_record(d, CDR_BY_PROXY, 200, DLG_CAUSE_STOP);
		}
		dialog_free(d);
	}
	hashtab_cleanup(&D.ht);
	hashtab_cleanup(&D.subs);	/* their contexts went */
	dlgr_stop();	/* the fetches under way are told: gone */
	hashtab_cleanup(&D.fetching);
	while (D.invs != NULL)
		dinv_free(D.invs);
	D.up = false;
}

/* ---- dialog.database: back after a restart ---- */

/* A record, checked: NULL if it is not one of ours. */
static const struct drec *
drec_check(const void *rec, size_t len)
{
	const struct drec	*r = rec;
	const char		*s = (const char *)rec + sizeof(*r);
	int			 i;

	if (len < sizeof(*r) || r->version != DREC_VERSION ||
	    r->off[0] != 0 || r->off[DS_N] != len - sizeof(*r))
		return (NULL);
	for (i = 0; i < DS_N; i++)
		if (r->off[i + 1] <= r->off[i] || s[r->off[i + 1] - 1] != '\0')
			return (NULL);
	/* Where the parties are: no length past the address. */
	if ((r->caller_addr.len != 0 && !txn_addr_ok(&r->caller_addr)) ||
	    (r->callee_addr.len != 0 && !txn_addr_ok(&r->callee_addr)))
		return (NULL);
	return (r);
}

static const struct drec *
drec_of(const struct dialog_blob *b)
{
	return (drec_check(b->rec, b->len));
}

int
dialog_blob_callid(const struct dialog_blob *b, struct slice *callid)
{
	const struct drec	*r = drec_of(b);

	if (r == NULL)
		return (-1);
	callid->p = (const char *)b->rec + sizeof(*r);
	callid->len = r->off[DS_FTAG] - 1;
	return (0);
}

/*
 * A stored dialog, on the worker that owns its Call-ID now: back in the
 * table, confirmed, its limits counted again and its timeout armed with
 * what is left of it.  Frees the blob.
 */
void
dialog_restore(void *arg)
{
	struct dialog_blob	*b = arg;
	struct dialog		*d;

	if ((d = dialog_revive(b->rec, b->len)) != NULL) {
		d->stored = true;
		log_info("dialog %s: restored from dialog.database", STR(d,
		    DS_CALLID));
	}
	free(b);
}

/*
 * A record (dialog.database's, or Redis's) back in the table, confirmed,
 * its limits counted again and its timeout armed with what is left of
 * it.  NULL: not a record, the table is down, or it is in already.
 */
static struct dialog *
dialog_revive(const void *rec, size_t len)
{
	const struct drec	*r = drec_check(rec, len);
	struct dialog		*d;
	struct timespec		 now;
	int64_t			 talk_ms, left_ms;

	if (r == NULL || !D.up)
		return (NULL);
	d = xcalloc(1, sizeof(*d));
	d->str.s = xmalloc(r->off[DS_N]);
	memcpy(d->str.s, (const char *)rec + sizeof(*r), r->off[DS_N]);
	memcpy(d->str.off, r->off, sizeof(d->str.off));
	if (hashtab_find(&D.ht, dialog_keyof(d).p, dialog_keyof(d).len) !=
	    NULL) {
		free(d->str.s);
		free(d);
		return (NULL);
	}
	d->caller_addr = r->caller_addr;
	d->callee_addr = r->callee_addr;
	d->start.tv_sec = (time_t)r->start_s;
	d->start.tv_nsec = (long)r->start_ns;
	d->answer.tv_sec = (time_t)r->answer_s;
	d->answer.tv_nsec = (long)r->answer_ns;
	d->caller_cseq = r->caller_cseq;
	d->callee_cseq = r->callee_cseq;
	d->caller_sock = r->caller_sock;
	d->callee_sock = r->callee_sock;
	d->kind = r->kind == DLG_SUB ? DLG_SUB : DLG_CALL;
	d->state = r->early && d->kind == DLG_CALL ? DLG_EARLY :
	    DLG_CONFIRMED;
	d->media = r->media != 0;
	d->transit = r->transit != 0;
	clock_gettime(CLOCK_REALTIME, &now);
	d->start_ms = timer_now_ms() - (uint64_t)((now.tv_sec -
	    d->start.tv_sec) * 1000);
	if (d->kind == DLG_SUB)
		CNT_ADD(subscriptions, 1);
	else
		state_count(d, d->state, 1);
	timer_init(&d->timeout, D.base, dialog_timeout_fire, d);
	if (r->cnt_user && lim_add("u:", str_get(&d->str, DS_USER), 1, 0))
		d->cnt_user = true;
	if (r->cnt_src && lim_add("s:", str_get(&d->str, DS_SRC), 1, 0))
		d->cnt_src = true;
	dialog_link(d);
	dialog_account(d);
	if (d->kind == DLG_SUB) {
		/* What is left to its expiry (kept in answer). */
		left_ms = (int64_t)(d->answer.tv_sec - now.tv_sec) * 1000 +
		    (d->answer.tv_nsec - now.tv_nsec) / 1000000;
		timer_set(&d->timeout, left_ms < 1 ? 1 : left_ms > 4000000000 ?
		    4000000000u : (uint32_t)left_ms);
	} else if (d->state == DLG_EARLY) {
		/* Another node's INVITE: as long as it may ring. */
		left_ms = (int64_t)dialog_early_s() * 1000 -
		    ((int64_t)(now.tv_sec - d->start.tv_sec) * 1000 +
		    (now.tv_nsec - d->start.tv_nsec) / 1000000);
		timer_set(&d->timeout, left_ms < 1 ? 1 : (uint32_t)left_ms);
	} else if (G.set.timeout_s > 0) {
		talk_ms = (int64_t)(now.tv_sec - d->answer.tv_sec) * 1000 +
		    (now.tv_nsec - d->answer.tv_nsec) / 1000000;
		left_ms = (int64_t)G.set.timeout_s * 1000 - talk_ms;
		timer_set(&d->timeout, left_ms < 1 ? 1 : left_ms > 4000000000 ?
		    4000000000u : (uint32_t)left_ms);
	}
	return (d);
}

/* ---- dialog.backend "redis": another node's dialog ---- */

static void
dfetch_done(struct dfetch *f, enum dialog_fetch_result res)
{
	unsigned	i;

	hashtab_remove(&D.fetching, &f->node);
	for (i = 0; i < f->nw; i++)
		f->w[i].fn(f->w[i].arg, res);
	free(f);
}

/*
 * The entry node's dialog rec, fetched for a transit copy of it here
 * (dialog_entry_gone()): taken in its place, with the transit copy's
 * view of the callee (its target, Route set, flow: its next hop was this
 * node), so that this node routes the call's requests both ways and
 * writes its one record.  NULL: no transit copy of it here.
 */
static struct dialog *
dialog_entry_take(const void *rec, size_t len)
{
	const struct drec	*r = drec_check(rec, len);
	struct strs		 rs;
	struct dialog		*t, *d;
	struct slice		 v[DS_N];
	struct txn_addr		 caddr;
	struct buf		 ct, cr;
	uint32_t		 ccseq;
	uint8_t			 csock;

	if (r == NULL || r->transit || r->kind == DLG_SUB)
		return (NULL);
	rs.s = (char *)rec + sizeof(*r);
	memcpy(rs.off, r->off, sizeof(rs.off));
	if ((t = dialog_find(str_get(&rs, DS_CALLID), str_get(&rs, DS_FTAG),
	    str_get(&rs, DS_TTAG))) == NULL || !t->transit ||
	    t->state != DLG_CONFIRMED || t->kind != DLG_CALL)
		return (NULL);
	buf_init(&ct, 128);
	buf_init(&cr, 128);
	buf_add(&ct, STR(t, DS_CALLEE_TARGET), str_get(&t->str,
	    DS_CALLEE_TARGET).len);
	buf_add(&cr, STR(t, DS_CALLEE_ROUTES), str_get(&t->str,
	    DS_CALLEE_ROUTES).len);
	caddr = t->callee_addr;
	csock = t->callee_sock;
	ccseq = t->callee_cseq;
	log_info("dialog %s: the transit copy gives way to the entry node's "
	    "dialog", STR(t, DS_CALLID));
	dialog_free(t);		/* no record: transit, not shared */
	if ((d = dialog_revive(rec, len)) == NULL) {
		buf_cleanup(&ct);
		buf_cleanup(&cr);
		return (NULL);
	}
	dialog_str_all(&d->str, v);
	v[DS_CALLEE_TARGET] = (struct slice){ ct.p, ct.len };
	v[DS_CALLEE_ROUTES] = (struct slice){ cr.p, cr.len };
	hashtab_remove(&D.ht, &d->node);
	dialog_str_set(&d->str, v);
	dialog_link(d);
	dialog_account(d);
	buf_cleanup(&ct);
	buf_cleanup(&cr);
	d->callee_addr = caddr;
	d->callee_sock = csock;
	if (ccseq > d->callee_cseq)
		d->callee_cseq = ccseq;
	d->shared = true;	/* this node ends it now */
	CNT_ADD(adopted, 1);
	log_info("dialog %s: adopted from redis (the entry node's, its next "
	    "hop this node)", STR(d, DS_CALLID));
	dialog_save(d);		/* the new view, for the next to take it */
	return (d);
}

/* Redis answered (rec NULL: no such dialog, or failed: Redis failed). */
static void
dialog_fetch_reply(void *arg, const void *rec, size_t len, bool failed)
{
	struct dfetch	*f = arg;
	struct dialog	*d;

	if (!D.up || D.closing) {
		dfetch_done(f, DLG_FETCH_GONE);
		return;
	}
	if (failed) {
		log_info("dialog " SLICE_FMT ": redis did not say whether it "
		    "has the dialog", SLICE_ARG(f->key_callid));
		dfetch_done(f, DLG_FETCH_FAILED);
		return;
	}
	if (rec != NULL && (d = dialog_entry_take(rec, len)) != NULL)
		;
	else if (rec != NULL && (d = dialog_revive(rec, len)) != NULL) {
		d->shared = true;	/* this node ends it now */
		CNT_ADD(adopted, 1);
		log_info("dialog %s: adopted from redis%s", STR(d, DS_CALLID),
		    d->state == DLG_EARLY ? " (early)" : "");
	} else if (rec != NULL && drec_check(rec, len) == NULL)
		log_warnx("dialog " SLICE_FMT ": the record in redis is not "
		    "one of ours", SLICE_ARG(f->key_callid));
	dfetch_done(f, DLG_FETCH_DONE);
}

/*
 * An in-dialog request of no dialog here (dialog_request() said 481),
 * with dialog.backend "redis": ask Redis for it (once for the requests
 * of one dialog that come meanwhile).  0: asked, fn(arg, result) comes
 * once: DONE when the dialog is in the table or known not to be in
 * Redis, FAILED when Redis failed or did not answer within
 * redis.timeout, GONE if the worker stops meanwhile.  1: too many
 * requests wait for that dialog already, or m is an ACK and one waits
 * (drop this one).  -1: nothing to
 * ask (not shared, no tags): the 481 stands.  -2: Redis is down.
 */
static int	dialog_fetch_tags(struct slice, struct slice, struct slice,
		    bool, dialog_fetched_fn *, void *);

int
dialog_fetch(const struct sipmsg *m, dialog_fetched_fn *fn, void *arg)
{
	if (!D.up || D.closing || !dlgr_configured() || m->to_tag.len == 0 ||
	    m->from_tag.len == 0)
		return (-1);
	CNT_SUB(refused_481, 1);	/* not refused (yet): asked again */
	return (dialog_fetch_tags(m->callid, m->from_tag, m->to_tag,
	    m->method == SM_ACK, fn, arg));
}

static int
dialog_fetch_tags(struct slice callid, struct slice tag1, struct slice tag2,
    bool ack, dialog_fetched_fn *fn, void *arg)
{
	struct dfetch	*f;
	struct buf	 k;
	char		 kstore[512];
	int		 rc = -1;

	if (!dlgr_up())
		return (-2);
	buf_init_on(&k, kstore, sizeof(kstore));
	dialog_key(&k, callid, tag1, tag2);
	if ((f = (struct dfetch *)hashtab_find(&D.fetching, k.p, k.len)) !=
	    NULL) {
		/* An ACK's retransmissions are not kept: the first goes on. */
		if (f->nw == DFETCH_WAITERS || ack) {
			rc = 1;
			goto done;
		}
		f->w[f->nw].fn = fn;
		f->w[f->nw++].arg = arg;
		rc = 0;
		goto done;
	}
	f = xmalloc(sizeof(*f) + k.len + 1);
	f->w[0].fn = fn;
	f->w[0].arg = arg;
	f->nw = 1;
	f->klen = k.len;
	memcpy(f->key, k.p, k.len);
	f->key[k.len] = '\0';
	f->key_callid = (struct slice){ f->key, callid.len };
	hashtab_insert(&D.fetching, &f->node, f->key, f->klen);
	if (dlgr_fetch(callid, tag1, tag2, dialog_fetch_reply, f) == -1) {
		hashtab_remove(&D.fetching, &f->node);
		free(f);
		rc = -2;
		goto done;
	}
	log_debug("dialog " SLICE_FMT ": not here, asking redis",
	    SLICE_ARG(callid));
	rc = 0;
done:
	buf_cleanup(&k);
	return (rc);
}

/*
 * An early dialog taken from Redis ended here (no call of ours: the node
 * that had the INVITE is gone): the record of the attempt, as that node
 * would have made it when its INVITE failed.  A BYE in it: 487 (what the
 * INVITE gets), no answer in time: 408.
 */
static void
dialog_early_record(const struct dialog *d, enum cdr_ended_by by, int code)
{
	struct cdr	 r;
	struct tp_addr	 src;

	if (G.cdr == NULL || d->kind != DLG_CALL || d->transit)
		return;
	if (code < 300)
		code = 487;
	txn_addr_get(&d->caller_addr, &src);
	cdr_fill(&r, &d->str, &src);
	r.start = d->start;
	clock_gettime(CLOCK_REALTIME, &r.end);
	r.code = code;
	r.cause = sip_cause(code);
	r.ended_by = by;
	G.cdr(&r);
}

/* An adopted early dialog's end, while Redis is asked what it was. */
struct dearly {
	enum cdr_ended_by	 by;
	int			 code;
	size_t			 len;
	char			*rec;		/* owned: its record */
};

/* The record of the attempt whose early dialog's record is rec. */
static void
dialog_early_record_of(const char *rec, size_t len, enum cdr_ended_by by,
    int code)
{
	const struct drec	*r = drec_check(rec, len);
	struct dialog		 e;

	if (r == NULL)
		return;
	memset(&e, 0, sizeof(e));
	e.str.s = (char *)rec + sizeof(*r);
	memcpy(e.str.off, r->off, sizeof(e.str.off));
	e.caller_addr = r->caller_addr;
	e.start.tv_sec = (time_t)r->start_s;
	e.start.tv_nsec = (long)r->start_ns;
	e.kind = DLG_CALL;
	e.state = DLG_EARLY;
	dialog_early_record(&e, by, code);
	if (r->media && G.media_end != NULL)	/* the call is over */
		G.media_end(str_get(&e.str, DS_CALLID), str_get(&e.str,
		    DS_FTAG), str_get(&e.str, DS_TTAG));
}

/*
 * Redis said what the adopted early dialog's key held when it ended: the
 * early record (deleted: the attempt's record is ours), the confirmed
 * one (the call was answered on its node: a BYE ends the call here, its
 * one record; an expiry leaves it), or nothing (its node ended it).
 */
static void
dialog_early_over_reply(void *arg, enum dlgr_end res, const void *rec,
    size_t len)
{
	struct dearly		*de = arg;
	const struct drec	*r = drec_check(de->rec, de->len);
	struct strs		 ks;
	struct dialog		*d;

	if (r == NULL || !D.up || D.closing)
		goto done;
	ks.s = de->rec + sizeof(*r);
	memcpy(ks.off, r->off, sizeof(ks.off));
	switch (res) {
	case DLGR_END_EARLY:
		log_info("dialog %s: early dialog taken from redis ended: "
		    "the attempt's record here", ks.s);
		dialog_early_record_of(de->rec, de->len, de->by, de->code);
		break;
	case DLGR_END_CONFIRMED:
		if (de->code >= 300) {
			log_info("dialog %s: early copy dropped: the call was "
			    "answered on another node", ks.s);
			break;
		}
		/* Taken (deleted, its end published): ended here. */
		if ((d = dialog_revive(rec, len)) == NULL &&
		    drec_check(rec, len) != NULL)
			d = dialog_find(str_get(&ks, DS_CALLID),
			    str_get(&ks, DS_FTAG), str_get(&ks, DS_TTAG));
		if (d == NULL || d->state != DLG_CONFIRMED ||
		    d->kind != DLG_CALL) {
			log_warnx("dialog %s: the answered call's record in "
			    "redis is not one of ours", ks.s);
			break;
		}
		d->shared = false;	/* deleted by the script */
		CNT_ADD(adopted, 1);
		log_info("dialog %s: the call was answered on another node: "
		    "adopted from redis, ended here", ks.s);
		dialog_end(d, de->by, 200);
		break;
	case DLGR_END_GONE:
		log_info("dialog %s: early copy ended: no dialog in redis "
		    "(its node ended it)", ks.s);
		break;
	case DLGR_END_FAILED:
		log_warnx("dialog %s: early copy ended: redis did not say "
		    "what the call became, no record", ks.s);
		break;
	}
done:
	free(de->rec);
	free(de);
}

/*
 * The adopted early dialog d ends here (the caller's BYE in it: code
 * 200; no answer in time: 408; its branch's failure): it goes now, and
 * Redis is asked whether it still holds the early record (then deleted:
 * the attempt's record is written) or the answered call's (the call was
 * answered on its node meanwhile: a BYE ends that call, an expiry leaves
 * it).  Its media session waits for the same answer.
 */
static void
dialog_early_over(struct dialog *d, enum cdr_ended_by by, int code)
{
	struct dearly	*de = xmalloc(sizeof(*de));

	de->by = by;
	de->code = code;
	de->rec = dialog_encode(d, &de->len);
	if (dlgr_end_early(str_get(&d->str, DS_CALLID), str_get(&d->str,
	    DS_FTAG), str_get(&d->str, DS_TTAG), DREC_EARLY_OFF, code < 300,
	    dialog_early_over_reply, de) == -1) {
		log_warnx("dialog %s: early copy ended: redis is down, what "
		    "the call became is not known, no record", STR(d,
		    DS_CALLID));
		free(de->rec);
		free(de);
	}
	d->shared = false;	/* the script deletes, or not */
	d->media = false;	/* the answer says */
	dialog_free(d);
}

/*
 * d refused a request an early dialog does not take (dialog_request()):
 * if it is an adopted early copy, the call may have been answered on its
 * node since (Redis holds the confirmed dialog).  The copy goes (its key
 * left alone, no record), and the 481 asks Redis again (dialog_fetch()).
 */
void
dialog_early_stale(struct dialog *d)
{
	if (!dialog_adopted_early(d) || !d->shared)
		return;
	log_info("dialog %s: early copy dropped, a request of the answered "
	    "call asked of redis", STR(d, DS_CALLID));
	d->shared = false;	/* its node's key */
	d->media = false;
	dialog_free(d);
}

/* Another node ended a dialog: a copy here goes, without a record. */
static void
dialog_ended_elsewhere(struct slice callid, struct slice ftag,
    struct slice ttag)
{
	struct dialog	*d;

	if ((d = dialog_find(callid, ftag, ttag)) == NULL || !d->shared)
		return;
	log_info("dialog %s: ended on another node, dropped", STR(d,
	    DS_CALLID));
	/*
	 * An early dialog of our own call, adopted and ended there (the
	 * caller's BYE in it, no answer in time): that node wrote the
	 * attempt's record.
	 */
	if (d->state == DLG_EARLY && d->call != NULL)
		d->call->recorded = true;
	d->shared = false;	/* not ours to delete */
	d->media = false;	/* nor its media session */
	dialog_free(d);
}

/* ---- dialog.backend "redis": the CANCEL of another node's INVITE ---- */

/*
 * An INVITE's record in Redis (osprey:dlg:{CALLID}:FTAG:), written when
 * it rings (its first early dialog) and again when another of its
 * branches rings: this, the caller's branch, then each branch that rang
 * (struct ibr, its first early dialog's To tag, its branch, the INVITE's
 * lines as sent on it: request line, top Via, From, To, Call-ID, CSeq,
 * Route, what its CANCEL and its ACK copy).
 */
#define IREC_VERSION	2
#define IREC_MAX	16		/* branches in one record */
struct irec {
	uint32_t		 version;
	uint32_t		 uplen;		/* the caller's branch */
	uint32_t		 n;		/* branches after it */
};
struct ibr {
	uint32_t		 ttlen;
	uint32_t		 brlen;
	uint32_t		 linelen;
	struct txn_addr		 peer;		/* where it went */
	uint8_t			 sock;
};

/* One branch of a record, read (slices into the record). */
struct ibranch {
	struct slice		 ttag, branch, lines;
	struct txn_addr		 peer;
	uint8_t			 sock;
};

/* The branches of rec; -1 if it is not such a record (or not this one). */
static int
irec_parse(const char *rec, size_t len, struct slice *up,
    struct ibranch *br, unsigned *n)
{
	struct irec	h;
	struct ibr	e;
	size_t		off;
	unsigned	i;

	if (len < sizeof(h))
		return (-1);
	memcpy(&h, rec, sizeof(h));
	if (h.version != IREC_VERSION || h.uplen == 0 ||
	    h.uplen >= sizeof(((struct dinv *)NULL)->up) || h.n == 0 ||
	    h.n > IREC_MAX || len - sizeof(h) < h.uplen)
		return (-1);
	*up = (struct slice){ rec + sizeof(h), h.uplen };
	off = sizeof(h) + h.uplen;
	for (i = 0; i < h.n; i++) {
		if (len - off < sizeof(e))
			return (-1);
		memcpy(&e, rec + off, sizeof(e));
		off += sizeof(e);
		if (!txn_addr_ok(&e.peer) || e.ttlen == 0 ||
		    e.ttlen >= sizeof(((struct dinv *)NULL)->ttag) ||
		    e.brlen == 0 || e.linelen == 0 ||
		    len - off < (size_t)e.ttlen + e.brlen + e.linelen)
			return (-1);
		br[i].ttag = (struct slice){ rec + off, e.ttlen };
		br[i].branch = (struct slice){ rec + off + e.ttlen, e.brlen };
		br[i].lines = (struct slice){ rec + off + e.ttlen + e.brlen,
		    e.linelen };
		br[i].peer = e.peer;
		br[i].sock = e.sock;
		off += (size_t)e.ttlen + e.brlen + e.linelen;
	}
	*n = h.n;
	return (off == len ? 0 : -1);
}

/*
 * The INVITE of c rang on its branch of client transaction ct (resp, a
 * 1xx with a tag): that branch goes into the INVITE's record (once).
 */
void
dialog_call_invite(struct dialog_call *c, const struct sipmsg *resp,
    const struct txn *ct)
{
	struct slice	 v[2], up, cup;
	struct ibranch	 brs[IREC_MAX];
	struct irec	 h;
	struct ibr	 e;
	struct buf	 b;
	char		*lines;
	size_t		 n;
	unsigned	 i, nb = 0;

	if (c == NULL || c->sub || c->transit || c->inv_over || !D.up ||
	    D.closing ||
	    !dlgr_configured() || ct == NULL || ct->rec || ct->out == NULL ||
	    resp->status <= 100 || resp->status >= 200 ||
	    resp->to_tag.len == 0 ||
	    resp->to_tag.len >= sizeof(((struct dinv *)NULL)->ttag) ||
	    resp->branch.len == 0)
		return;
	if (sipmsg_values(resp, SH_VIA, v, 2) < 2 ||
	    !hdr_param(v[1], "branch", &up) || up.len == 0 ||
	    up.len >= sizeof(((struct dinv *)NULL)->up))
		return;
	if (c->inv_rec != NULL) {
		if (irec_parse(c->inv_rec, c->inv_len, &cup, brs, &nb) != 0 ||
		    nb == IREC_MAX)
			return;
		for (i = 0; i < nb; i++)	/* this branch rang before */
			if (slice_same(brs[i].branch, resp->branch))
				return;
	}
	if ((lines = txn_lines(ct->out, ct->outlen, TXN_L_TOPVIA | TXN_L_FROM |
	    TXN_L_TO | TXN_L_CALLID | TXN_L_CSEQ | TXN_L_ROUTE, &n)) == NULL)
		return;
	memset(&e, 0, sizeof(e));
	e.ttlen = (uint32_t)resp->to_tag.len;
	e.brlen = (uint32_t)resp->branch.len;
	e.linelen = (uint32_t)n;
	e.peer = ct->peer;
	e.sock = (uint8_t)(ct->sock != NULL ? ct->sock - D.tp->socks : 0);
	buf_init(&b, sizeof(h) + up.len + c->inv_len + sizeof(e) +
	    resp->to_tag.len + resp->branch.len + n);
	if (c->inv_rec == NULL) {
		memset(&h, 0, sizeof(h));
		h.version = IREC_VERSION;
		h.uplen = (uint32_t)up.len;
		buf_add(&b, &h, sizeof(h));
		buf_add(&b, up.p, up.len);
	} else
		buf_add(&b, c->inv_rec, c->inv_len);
	memcpy(&h, b.p, sizeof(h));
	h.n++;
	memcpy(b.p, &h, sizeof(h));
	buf_add(&b, &e, sizeof(e));
	buf_add(&b, resp->to_tag.p, resp->to_tag.len);
	buf_add(&b, resp->branch.p, resp->branch.len);
	buf_add(&b, lines, n);
	free(lines);
	free(c->inv_rec);
	c->inv_rec = buf_steal(&b, &n);
	c->inv_len = (uint32_t)n;
	if (dlgr_put_invite(str_get(&c->str, DS_CALLID), str_get(&c->str,
	    DS_FTAG), c->inv_rec, c->inv_len, dialog_early_s() +
	    DLGR_MARGIN_S) == 0)
		c->inv_shared = true;
}

/* The INVITE of c is over (its final answer, or c goes). */
static void
dialog_call_uninvite(struct dialog_call *c)
{
	if (c == NULL)
		return;
	c->inv_over = true;
	free(c->inv_rec);
	c->inv_rec = NULL;
	c->inv_len = 0;
	if (!c->inv_shared)
		return;
	c->inv_shared = false;
	if (D.up && !D.closing)
		dlgr_del_invite(str_get(&c->str, DS_CALLID),
		    str_get(&c->str, DS_FTAG));
}

static void
dinv_free(struct dinv *v)
{
	struct dinv	**pp;

	for (pp = &D.invs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	timer_stop(&v->life);
	sipmsg_free(v->inv);
	free(v);
}

static void
dinv_expire(void *arg)
{
	struct dinv	*v = arg;

	if (v->fetching)	/* dialog_early_fetched() has it */
		timer_set(&v->life, 1000);
	else
		dinv_free(v);
}

static struct dinv *
dinv_find(struct slice down, struct slice up)
{
	struct dinv	*v;

	for (v = D.invs; v != NULL; v = v->next)
		if ((down.p != NULL && slice_same(down, v->inv->branch)) ||
		    (up.p != NULL && up.len == strlen(v->up) &&
		    memcmp(up.p, v->up, up.len) == 0))
			return (v);
	return (NULL);
}

/* CANCEL ops: its answer only logged. */
static void
dialog_cancel_response(struct txn *ct, const struct sipmsg *resp)
{
	if (resp->status >= 200)
		log_info("dialog %s: relayed CANCEL answered code=%d",
		    txn_callid(ct), resp->status);
}

static void
dialog_cancel_timeout(struct txn *ct, bool timer_c)
{
	(void)timer_c;
	log_info("dialog %s: relayed CANCEL got no answer", txn_callid(ct));
}

static void
dialog_cancel_error(struct txn *ct)
{
	log_info("dialog %s: relayed CANCEL could not be sent",
	    txn_callid(ct));
}

static const struct txn_ops cancel_ops = {
	.response = dialog_cancel_response,
	.timeout = dialog_cancel_timeout,
	.transport_error = dialog_cancel_error,
	.terminated = dialog_bye_gone,
	.done = dialog_bye_gone,
};

static struct dialog *dialog_early_of(const struct dinv *, struct slice);
static bool	dinv_answered(const struct dinv *);

/*
 * Is another branch of v's INVITE still open (no final yet) or answered?
 * Then an early dialog of v that fails ends without a record: the
 * attempt's one record is the last failing branch's (or the answer's).
 */
static bool
dinv_others_open(const struct dinv *v)
{
	const struct dinv	*o;

	for (o = D.invs; o != NULL; o = o->next)
		if (o != v && strcmp(o->up, v->up) == 0 &&
		    (o->code == 0 || o->code < 300))
			return (true);
	return (false);
}

/* The early dialog d of v ends with its branch's failure, code. */
static void
dinv_early_end(struct dinv *v, struct dialog *d, int code)
{
	if (dinv_others_open(v)) {
		log_info("dialog %s: early dialog taken from redis ended "
		    "code=%d (another branch of the INVITE goes on)", STR(d,
		    DS_CALLID), code);
		dialog_free(d);
		return;
	}
	dialog_end(d, v->cancelled ? CDR_BY_CALLER : CDR_BY_CALLEE, code);
}

/* The early dialog of v is in the table now (or not to be had). */
static void
dialog_early_fetched(void *arg, enum dialog_fetch_result res)
{
	struct dinv	*v = arg;
	struct dialog	*d;

	v->fetching = false;
	if (res != DLG_FETCH_DONE || (d = dialog_early_of(v, (struct slice){
	    v->ttag, strlen(v->ttag) })) == NULL)
		return;
	if (v->code == 0 && dinv_answered(v)) {
		log_info("dialog %s: early dialog taken from redis dropped "
		    "(another branch answered)", STR(d, DS_CALLID));
		dialog_free(d);
	} else if (v->final >= 300)
		dinv_early_end(v, d, v->final);
}

/*
 * A branch of another node's INVITE (from its record), the caller's
 * branch up and the CSeq cseq: taken here (or already), its early dialog
 * asked of Redis; NULL if the record does not say so.
 */
static struct dinv *
dinv_take(const struct ibranch *br, struct slice up, uint32_t cseq)
{
	struct dinv	*v;
	struct tp_sock	*pref, *out;
	char		 err[128];

	if ((v = dinv_find(br->branch, (struct slice){ NULL, 0 })) != NULL)
		return (up.len == strlen(v->up) && memcmp(up.p, v->up,
		    up.len) == 0 && v->inv->cseq == cseq ? v : NULL);
	v = xcalloc(1, sizeof(*v));
	v->inv = sipmsg_new(br->lines.p, br->lines.len);
	if (sipmsg_parse(v->inv, err, sizeof(err)) != 0 ||
	    v->inv->method != SM_INVITE || v->inv->cseq != cseq ||
	    !slice_same(v->inv->branch, br->branch))
		goto fail;
	memcpy(v->up, up.p, up.len);
	memcpy(v->ttag, br->ttag.p, br->ttag.len);
	txn_addr_get(&br->peer, &v->peer);
	pref = br->sock < D.tp->nsocks ? &D.tp->socks[br->sock] : NULL;
	if (v->peer.len == 0 || (out = tp_sock_for(D.tp, &v->peer,
	    pref)) == NULL)
		goto fail;
	v->sock = out;
	timer_init(&v->life, D.base, dinv_expire, v);
	timer_set(&v->life, 64 * txn_settings()->t1_ms + 5000);
	v->next = D.invs;
	D.invs = v;
	/* Its early dialog, to end with the attempt's record (or confirm). */
	if (dialog_find(v->inv->callid, v->inv->from_tag, br->ttag) == NULL &&
	    dialog_fetch_tags(v->inv->callid, v->inv->from_tag, br->ttag,
	    false, dialog_early_fetched, v) == 0)
		v->fetching = true;
	return (v);
fail:
	sipmsg_free(v->inv);
	free(v);
	return (NULL);
}

/* The CANCEL of branch v downstream, with the INVITE's own Via (9.1). */
static void
dinv_cancel(struct dinv *v, const char *reason)
{
	struct buf	 b;
	size_t		 blen;
	struct txn	*ct;

	if (v->cancelled || v->code != 0)
		return;
	v->cancelled = true;
	buf_init(&b, 512);
	sipbuild_cancel(v->inv, reason, &b);
	blen = b.len;
	ct = txn_client_start(TXN_NICT, v->inv->branch,
	    (struct slice){ "CANCEL", 6 }, v->inv->callid, buf_steal(&b, NULL),
	    blen, v->sock, &v->peer, NULL, &bye_owner, 0);
	txn_set_ops(ct, &cancel_ops);
	log_info("dialog " SLICE_FMT ": CANCEL of another node's INVITE "
	    "relayed branch=" SLICE_FMT, SLICE_ARG(v->inv->callid),
	    SLICE_ARG(v->inv->branch));
}

/* Every open branch taken of the INVITE of caller's branch up. */
static unsigned
dinv_cancel_all(struct slice up, const char *reason)
{
	struct dinv	*v;
	unsigned	 n = 0;

	for (v = D.invs; v != NULL; v = v->next)
		if (up.len == strlen(v->up) && memcmp(up.p, v->up,
		    up.len) == 0 && v->code == 0) {
			dinv_cancel(v, reason);
			n++;
		}
	return (n);
}

/* A CANCEL waiting for its INVITE's record. */
struct dcancel {
	dialog_cancel_fn	*fn;
	void			*arg;
	char			*reason;	/* owned, or NULL */
	char			 callid[96];	/* for the log, cut */
	uint32_t		 cseq;
	size_t			 uplen;
	char			 up[];
};

/* Taken: each branch of the record cancelled. */
static int
dialog_cancel_send(struct dcancel *dc, const char *rec, size_t len)
{
	struct ibranch	 brs[IREC_MAX];
	struct slice	 up;
	unsigned	 i, n, taken = 0;

	if (irec_parse(rec, len, &up, brs, &n) != 0) {
		log_warnx("dialog %s: the INVITE's record in redis is not one "
		    "of ours: CANCEL refused", dc->callid);
		return (-1);
	}
	if (up.len != dc->uplen || memcmp(up.p, dc->up, up.len) != 0)
		return (-1);
	for (i = 0; i < n; i++)
		if (dinv_take(&brs[i], up, dc->cseq) != NULL)
			taken++;
	if (taken == 0)
		return (-1);
	dinv_cancel_all(up, dc->reason);
	return (0);
}

static void
dialog_cancel_reply(void *arg, const void *rec, size_t len, bool failed)
{
	struct dcancel	*dc = arg;
	int		 code;

	if (!D.up || D.closing)
		code = 0;
	else if (failed)
		code = 500;
	else if (dinv_find((struct slice){ NULL, 0 }, (struct slice){ dc->up,
	    dc->uplen }) != NULL) {
		/* Taken meanwhile (an answer's fetch): cancelled from here. */
		dinv_cancel_all((struct slice){ dc->up, dc->uplen },
		    dc->reason);
		code = 200;
	} else if (rec == NULL || dialog_cancel_send(dc, rec, len) == -1)
		code = 481;
	else
		code = 200;
	dc->fn(dc->arg, code);
	free(dc->reason);
	free(dc);
}

/*
 * A CANCEL that matches no INVITE here, with dialog.backend "redis": the
 * INVITE may be another node's that rang (its record in Redis).  0:
 * asked, fn(arg, code) comes: 200 (CANCEL relayed downstream on each
 * branch that rang), 481 (no such INVITE), 500 (Redis failed), 0 (the
 * worker stops).  1: relayed already, or the INVITE is taken here (its
 * answer came first), cancelled now (200).  -1: nothing to ask (481).
 * -2: Redis is down.
 */
int
dialog_cancel(const struct sipmsg *m, const char *reason,
    dialog_cancel_fn *fn, void *arg)
{
	struct dcancel	*dc;
	struct dinv	*v;

	if (!D.up || D.closing || !dlgr_configured() ||
	    m->from_tag.len == 0 || m->branch.len == 0 ||
	    m->branch.len >= sizeof(((struct dinv *)NULL)->up))
		return (-1);
	if ((v = dinv_find((struct slice){ NULL, 0 }, m->branch)) != NULL &&
	    v->inv->cseq == m->cseq) {
		dinv_cancel_all(m->branch, reason);
		return (1);
	}
	if (!dlgr_up())
		return (-2);
	dc = xmalloc(sizeof(*dc) + m->branch.len);
	dc->fn = fn;
	dc->arg = arg;
	dc->reason = reason != NULL ? xstrdup(reason) : NULL;
	snprintf(dc->callid, sizeof(dc->callid), SLICE_FMT,
	    SLICE_ARG(m->callid));
	dc->cseq = m->cseq;
	dc->uplen = m->branch.len;
	memcpy(dc->up, m->branch.p, m->branch.len);
	if (dlgr_fetch_invite(m->callid, m->from_tag, dialog_cancel_reply,
	    dc) == -1) {
		free(dc->reason);
		free(dc);
		return (-2);
	}
	return (0);
}

/* An early dialog taken from Redis answered: its early expiry goes. */
static void
dialog_early_confirm(struct dialog *d)
{
	timer_stop(&d->timeout);
	dialog_confirm(d, NULL);
	dialog_save(d);
}

/*
 * A 2xx (resp) whose To tag made no early dialog, on the branch whose
 * early dialog e was taken from Redis: its dialog, made of e's caller
 * side and the 2xx's callee side (To, Contact, the Record-Route entries
 * before ours: those after ours are e's caller side, the same on every
 * branch).  e goes (no record: the call is answered).  NULL: the 2xx
 * does not carry our entry.
 */
static struct dialog *
dialog_early_clone(struct dialog *e, const struct sipmsg *resp)
{
	struct dialog	*d;
	struct slice	 v[DS_N], rr[DLG_MAX_RR], cv[DLG_MAX_RR];
	struct buf	 ce;
	char		 cestore[256];
	size_t		 ncaller;
	unsigned	 n;

	n = sipmsg_values(resp, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	ncaller = str_get(&e->str, DS_CALLER_ROUTES).len == 0 ? 0 :
	    split_values(str_get(&e->str, DS_CALLER_ROUTES), cv, DLG_MAX_RR);
	if (n < ncaller + 1 || dialog_contact_uri(resp).len == 0)
		return (NULL);
	d = xcalloc(1, sizeof(*d));
	dialog_str_all(&e->str, v);
	buf_init_on(&ce, cestore, sizeof(cestore));
	v[DS_TTAG] = resp->to_tag;
	v[DS_TO] = dialog_hvalue(resp, SH_TO);
	v[DS_CALLEE_TARGET] = dialog_contact_uri(resp);
	v[DS_CALLEE_ROUTES] = dialog_routes_text(&ce, rr, 0, n -
	    (unsigned)ncaller - 1, true);
	dialog_str_set(&d->str, v);
	buf_cleanup(&ce);
	d->caller_addr = e->caller_addr;
	d->callee_addr = e->callee_addr;
	d->caller_sock = e->caller_sock;
	d->callee_sock = e->callee_sock;
	d->caller_cseq = e->caller_cseq;
	d->start = e->start;
	d->start_ms = e->start_ms;
	d->media = e->media;
	d->state = DLG_EARLY;
	d->kind = DLG_CALL;
	d->shared = true;
	state_count(d, DLG_EARLY, 1);
	timer_init(&d->timeout, D.base, dialog_timeout_fire, d);
	e->media = false;	/* the call's media: d's now */
	log_info("dialog %s: a 2xx with no early dialog of its own made its "
	    "dialog from the branch's to_tag=" SLICE_FMT, STR(e, DS_CALLID),
	    SLICE_ARG(resp->to_tag));
	dialog_free(e);
	dialog_link(d);
	dialog_account(d);
	return (d);
}

/*
 * Has a branch of v's INVITE been answered (2xx)?  Then the adopted
 * early dialogs of the others go without a record (as the call's own
 * do when its INVITE's context goes).
 */
static bool
dinv_answered(const struct dinv *v)
{
	const struct dinv	*o;

	for (o = D.invs; o != NULL; o = o->next)
		if (strcmp(o->up, v->up) == 0 && o->code >= 200 &&
		    o->code < 300)
			return (true);
	return (false);
}

/* The early dialog of a 2xx relayed here: confirmed (once adopted). */
static void
dialog_answer_fetched(void *arg, enum dialog_fetch_result res)
{
	struct sipmsg	*resp = arg;
	struct dialog	*d, *e;
	struct dinv	*v;

	if (res == DLG_FETCH_DONE && (d = dialog_find(resp->callid,
	    resp->from_tag, resp->to_tag)) == NULL && (v = dinv_find(
	    resp->branch, (struct slice){ NULL, 0 })) != NULL && (e =
	    dialog_early_of(v, (struct slice){ v->ttag, strlen(v->ttag) })) !=
	    NULL)
		d = dialog_early_clone(e, resp);
	else if (res == DLG_FETCH_DONE)
		d = dialog_find(resp->callid, resp->from_tag, resp->to_tag);
	else
		d = NULL;
	if (d != NULL && d->state == DLG_EARLY && d->call == NULL)
		dialog_early_confirm(d);
	sipmsg_free(resp);
}

/* The early dialog taken from Redis of v (To tag ttag), or NULL. */
static struct dialog *
dialog_early_of(const struct dinv *v, struct slice ttag)
{
	struct dialog	*d;

	if (ttag.len == 0 || (d = dialog_find(v->inv->callid,
	    v->inv->from_tag, ttag)) == NULL || d->state != DLG_EARLY ||
	    d->call != NULL || d->kind != DLG_CALL)
		return (NULL);
	return (d);
}

/* v answered: the other branches' adopted early dialogs go, no record. */
static void
dinv_drop_others(const struct dinv *v)
{
	const struct dinv	*o;
	struct dialog		*d;

	for (o = D.invs; o != NULL; o = o->next)
		if (o != v && strcmp(o->up, v->up) == 0 && o->code == 0 &&
		    (d = dialog_early_of(o, (struct slice){ o->ttag,
		    strlen(o->ttag) })) != NULL) {
			log_info("dialog %s: early dialog taken from redis "
			    "dropped (another branch answered)", STR(d,
			    DS_CALLID));
			dialog_free(d);
		}
}

/* Every branch of v's INVITE has its final: its record goes. */
static void
dinv_over(const struct dinv *v)
{
	const struct dinv	*o;

	for (o = D.invs; o != NULL; o = o->next)
		if (strcmp(o->up, v->up) == 0 && o->code == 0)
			return;
	if (!D.closing)
		dlgr_del_invite(v->inv->callid, v->inv->from_tag);
}

/*
 * A response matching no client transaction here: is it the answer to
 * another node's INVITE taken here (a CANCEL relayed for it, or an
 * answer that came before: dialog_invite_fetch()), next its next Via, the
 * caller's of that INVITE?  Then true (the proxy sends it on by next):
 * a final failure is ACKed downstream here (the INVITE's client
 * transaction would), a 2xx confirms the early dialog here (it is
 * adopted from Redis first if need be) and cancels the INVITE's other
 * branches.
 */
bool
dialog_invite_response(const struct sipmsg *resp, struct slice next)
{
	struct dinv	*v;
	struct dialog	*d;
	struct sipmsg	*copy;
	struct buf	 b;
	struct slice	 br;
	char		 err[128];
	bool		 first;

	/* Back to the caller whose INVITE it was: its Via next. */
	if (!D.up || D.invs == NULL || resp->method != SM_INVITE ||
	    (v = dinv_find(resp->branch, (struct slice){ NULL, 0 })) ==
	    NULL || resp->cseq != v->inv->cseq ||
	    !hdr_param(next, "branch", &br) || br.len != strlen(v->up) ||
	    memcmp(br.p, v->up, br.len) != 0)
		return (false);
	first = resp->status >= 200 && v->code == 0;
	if (first)
		v->code = resp->status;
	if (resp->status >= 300) {
		buf_init(&b, 512);
		if (sipbuild_ack(v->inv, resp, &b) == 0)
			tp_send(v->sock, &v->peer, b.p, b.len);
		buf_cleanup(&b);
		if (!first)
			return (true);
		/* The first: its early dialogs end, the attempt's record. */
		if ((d = dialog_early_of(v, resp->to_tag)) != NULL ||
		    (d = dialog_early_of(v, (struct slice){ v->ttag,
		    strlen(v->ttag) })) != NULL)
			dinv_early_end(v, d, resp->status);
		else if (v->fetching && v->final == 0)
			v->final = resp->status;	/* ended once it comes */
		dinv_over(v);
	} else if (resp->status >= 200 && resp->to_tag.len > 0) {
		if (first) {
			dinv_drop_others(v);
			dinv_cancel_all((struct slice){ v->up,
			    strlen(v->up) }, "SIP;cause=200;text=\"Call "
			    "completed elsewhere\"");
			if (!D.closing)	/* answered: the INVITE is over */
				dlgr_del_invite(v->inv->callid,
				    v->inv->from_tag);
		}
		if ((d = dialog_find(resp->callid, resp->from_tag,
		    resp->to_tag)) != NULL) {
			if (d->state == DLG_EARLY && d->call == NULL)
				dialog_early_confirm(d);
		} else {
			copy = sipmsg_new(resp->buf, resp->len);
			if (sipmsg_parse(copy, err, sizeof(err)) != 0 ||
			    dialog_fetch_tags(copy->callid, copy->from_tag,
			    copy->to_tag, false, dialog_answer_fetched,
			    copy) != 0)
				sipmsg_free(copy);
		}
	}
	return (true);
}

/* The caller's ACK for such an INVITE's failure: absorbed here. */
bool
dialog_invite_ack(const struct sipmsg *m)
{
	struct dinv	*v;

	return (D.up && D.invs != NULL && (v = dinv_find((struct slice){
	    NULL, 0 }, m->branch)) != NULL && m->cseq == v->inv->cseq);
}

/* ---- dialog.backend "redis": an answer to another node's INVITE ---- */

static void
dpend_done(struct dpend *p, bool ok)
{
	struct dpend	**pp;
	unsigned	  i;

	for (pp = &D.pends; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	for (i = 0; i < p->nw; i++)
		p->w[i].fn(p->w[i].arg, ok);
	free(p);
}

/* The INVITE's record came (or not): its branch taken if it names it. */
static void
dialog_invite_fetched(void *arg, const void *rec, size_t len, bool failed)
{
	struct dpend	*p = arg;
	struct ibranch	 brs[IREC_MAX];
	struct slice	 up, down = { p->down, strlen(p->down) };
	unsigned	 i, n;
	struct dinv	*v = NULL;

	if (!D.up || D.closing || failed || rec == NULL) {
		if (D.up && !D.closing)
			log_info("dialog: an answer to an INVITE of no "
			    "transaction here dropped reason=\"%s\"", failed ?
			    "redis did not say whose it is" : "no INVITE "
			    "record in redis");
		dpend_done(p, false);
		return;
	}
	if (irec_parse(rec, len, &up, brs, &n) == 0 && up.len ==
	    strlen(p->up) && memcmp(up.p, p->up, up.len) == 0) {
		for (i = 0; i < n; i++)
			if (slice_same(brs[i].branch, down))
				break;
		if (i < n) {	/* ours: every branch of it taken */
			for (i = 0; i < n; i++)
				(void)dinv_take(&brs[i], up, p->cseq);
			v = dinv_find(down, (struct slice){ NULL, 0 });
		}
	}
	if (v != NULL)
		log_info("dialog " SLICE_FMT ": an answer to another node's "
		    "INVITE, taken from redis branch=%s",
		    SLICE_ARG(v->inv->callid), p->down);
	else
		log_info("dialog: an answer to an INVITE of no transaction "
		    "here does not match its record in redis, dropped");
	dpend_done(p, v != NULL);
}

/*
 * A response to an INVITE matching no client transaction here nor any
 * INVITE taken here, whose top Via is one of the cluster's, next its
 * next Via: with dialog.backend "redis" the INVITE may be another node's
 * that rang (its record in Redis: its branch and the caller's must be
 * there).  0: asked (or joined the answers waiting for that branch),
 * fn(arg, ok) comes once: ok, the INVITE is taken here
 * (dialog_invite_response() has it now).  1: too many wait (drop it).
 * -1: nothing to ask.  -2: Redis is down.
 */
int
dialog_invite_fetch(const struct sipmsg *resp, struct slice next,
    dialog_answer_fn *fn, void *arg)
{
	struct dpend	*p;
	struct slice	 up;

	if (!D.up || D.closing || !dlgr_configured() ||
	    resp->method != SM_INVITE || resp->from_tag.len == 0 ||
	    resp->branch.len == 0 ||
	    resp->branch.len >= sizeof(p->down) ||
	    !hdr_param(next, "branch", &up) || up.len == 0 ||
	    up.len >= sizeof(p->up))
		return (-1);
	for (p = D.pends; p != NULL; p = p->next)
		if (resp->branch.len == strlen(p->down) &&
		    memcmp(resp->branch.p, p->down, resp->branch.len) == 0) {
			if (p->nw == DPEND_WAITERS || p->cseq != resp->cseq ||
			    up.len != strlen(p->up) || memcmp(up.p, p->up,
			    up.len) != 0)
				return (1);
			p->w[p->nw].fn = fn;
			p->w[p->nw++].arg = arg;
			return (0);
		}
	if (!dlgr_up())
		return (-2);
	p = xcalloc(1, sizeof(*p));
	p->w[0].fn = fn;
	p->w[0].arg = arg;
	p->nw = 1;
	p->cseq = resp->cseq;
	memcpy(p->down, resp->branch.p, resp->branch.len);
	memcpy(p->up, up.p, up.len);
	p->next = D.pends;
	D.pends = p;
	if (dlgr_fetch_invite(resp->callid, resp->from_tag,
	    dialog_invite_fetched, p) == -1) {
		D.pends = p->next;
		free(p);
		return (-2);
	}
	log_debug("dialog " SLICE_FMT ": an answer to an INVITE of no "
	    "transaction here, asking redis", SLICE_ARG(resp->callid));
	return (0);
}
