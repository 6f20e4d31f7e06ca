/*
 * Dialogs seen from a record-routing proxy (RFC 3261 section 12), one
 * table per worker.  See dialog.h for who calls what, and doc/HACKING.md
 * ("Dialogs") for the design.
 */
#include "config.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dialog.h"
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

#define DLG_MAX_RR	32
#define DLG_CAUSE_STOP	41	/* Q.850 NORMAL_TEMPORARY_FAILURE: we stop */
#define SUB_DEFAULT_S	3600	/* no Expires, no expires= */
#define SUB_MARGIN_S	32	/* past the expiry: 64*T1 */
#define SUB_MAX_S	4000000	/* what a timer takes */

/* What a dialog is: a call, or a subscription (RFC 6665). */
enum dlg_kind {
	DLG_CALL = 0,
	DLG_SUB
};

/*
 * The strings of a dialog (and of a call being set up), in one allocation
 * each followed by a NUL.  The first three are the table's key: Call-ID,
 * the caller's tag and the callee's, NULs between.
 */
enum dlg_str {
	DS_CALLID,
	DS_FTAG,		/* the caller's (the INVITE's From tag) */
	DS_TTAG,		/* the callee's (the response's To tag) */
	DS_FROM,		/* the INVITE's From value, tag and all */
	DS_TO,			/* the response's To value (the call: the
				   INVITE's) */
	DS_RURI,		/* the INVITE's Request-URI */
	DS_CALLER_TARGET,	/* Contact URIs: remote targets */
	DS_CALLEE_TARGET,
	DS_CALLER_ROUTES,	/* "<uri>, <uri>": the Route set of a request
				   from us towards that party */
	DS_CALLEE_ROUTES,
	DS_IDENTITY,		/* the authenticated user, or "" */
	DS_USER,		/* what calls_per_user counts, or "" */
	DS_SRC,			/* the caller's IP (calls_per_source) */
	DS_N
};

struct strs {
	char		*s;		/* owned */
	uint32_t	 off[DS_N + 1];	/* off[DS_N]: the total */
};

/*
 * One dialog (owned by its worker's table).  Under 1 KB with its strings
 * for an ordinary call (dialog_bytes(), tests/bench/dialog-bytes).
 */
struct dialog {
	struct hnode		 node;		/* key in str.s */
	struct dialog		*call_next;	/* on call->dialogs */
	struct dialog_call	*call;		/* while the INVITE is on */
	struct strs		 str;
	struct timer		 timeout;	/* dialog_timeout */
	struct txn_addr		 caller_addr;	/* flows: where they are */
	struct txn_addr		 callee_addr;
	struct timespec		 start;		/* realtime: the INVITE */
	struct timespec		 answer;	/* the 2xx */
	uint64_t		 start_ms;	/* timer_now_ms() */
	uint32_t		 caller_cseq;	/* the highest seen */
	uint32_t		 callee_cseq;
	uint32_t		 size;		/* counted in G.tot.bytes */
	uint8_t			 caller_sock;	/* index in tp->socks */
	uint8_t			 callee_sock;
	uint8_t			 state;		/* enum dialog_state */
	bool			 cnt_user;	/* holds a limits count */
	bool			 cnt_src;
	bool			 stored;	/* in dialog.database */
	bool			 shared;	/* written to Redis */
	bool			 media;		/* relayed by rtpengine: a
						   delete when it ends */
	bool			 transit;	/* another node's call: no
						   record, counted apart, not
						   in Redis */
	bool			 entry_asked;	/* transit: the entry node's
						   dialog asked of Redis once */
	uint8_t			 kind;		/* enum dlg_kind; a
						   subscription: its expiry in
						   answer (realtime) and
						   timeout */
};

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
 * An INVITE record-routed, until its response context goes; or a SUBSCRIBE,
 * REFER or NOTIFY out of dialog (sub), whose 2xx makes a subscription (a
 * SUBSCRIBE's or REFER's NOTIFY too, while it is in D.subs).
 */
struct dialog_call {
	struct hnode		 node;		/* sub: in D.subs, key
						   Call-ID NUL From tag */
	struct strs		 str;		/* in this allocation, after
						   the struct; DS_TTAG unused;
						   sub: DS_CALLER_ROUTES the
						   request's Record-Route */
	struct dialog		*dialogs;	/* early and confirmed */
	struct txn_addr		 src;
	struct timespec		 start;
	uint64_t		 start_ms;
	uint32_t		 cseq;
	uint8_t			 sock;
	bool			 answered;
	bool			 ended;		/* its CDR went */
	bool			 cnt_user;
	bool			 cnt_src;
	bool			 media;		/* relayed by rtpengine, until a
						   dialog or the final takes it */
	bool			 sub;		/* not an INVITE */
	bool			 transit;	/* dialog_transit_new() */
	bool			 pending;	/* in D.subs */
	uint32_t		 expires_s;	/* sub: what the request asks */
	bool			 inv_shared;	/* its INVITE's record in Redis */
	bool			 inv_over;	/* its final came: no more */
	uint32_t		 inv_len;	/* inv_rec's bytes */
	char			*inv_rec;	/* owned: that record, each
						   branch that rang so far */
	char			 stamp[17];	/* in our Record-Route */
};

/* A BYE of ours waiting for its next hop's address. */
struct dbye {
	struct dbye		*next;
	struct resolve_req	*dns;
	char			*head;		/* owned: request line */
	char			*rest;		/* owned: after our Via */
	char			*callid;	/* owned */
	uint8_t			 sock;
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

/* The worker's own. */
static _Thread_local struct {
	struct event_base	*base;
	struct tp		*tp;
	struct hashtab		 ht;
	struct hashtab		 subs;		/* dialog_call sub, pending */
	bool			 up;
	bool			 closing;	/* the store keeps them */
	bool			 stopping;	/* dialog_stop() came */
	uint64_t		 serial;
	struct dbye		*byes;		/* resolving */
	struct hashtab		 fetching;	/* struct dfetch, by key */
	struct dinv		*invs;		/* other nodes' INVITEs taken */
	struct dpend		*pends;		/* their records asked */
} D;

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

/* Shared: settings (changed while the workers are paused), counts. */
static struct {
	struct dialog_settings	 set;
	dialog_cdr_fn		*cdr;
	dialog_media_fn		*media_end;
	pthread_mutex_t		 mu;		/* lim */
	struct hashtab		 lim;
	bool			 lim_up;
	struct dialog_totals	 tot;		/* atomic */
} G = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Per user and per source address: open calls (G.lim, under G.mu). */
struct lim {
	struct hnode	 node;
	unsigned	 n;
	char		 key[];
};

const unsigned dialog_duration_bounds_s[DIALOG_NBUCKETS] = {
	10, 30, 60, 180, 600, 1800, 3600, 14400
};

static char	bye_owner;	/* our BYEs' owner: not NULL, nothing else */

static void	dialog_timeout_fire(void *);
static void	dinv_free(struct dinv *);
static void	dialog_call_uninvite(struct dialog_call *);
static void	dialog_early_record(const struct dialog *, enum cdr_ended_by,
		    int);
static void	sub_end(struct dialog *, const char *);
static void	dialog_end(struct dialog *, enum cdr_ended_by, int);
static void	dialog_bye_response(struct txn *, const struct sipmsg *);
static void	dialog_bye_timeout(struct txn *, bool);
static void	dialog_bye_error(struct txn *);
static void	dialog_bye_gone(struct txn *);

static const struct txn_ops bye_ops = {
	.response = dialog_bye_response,
	.timeout = dialog_bye_timeout,
	.transport_error = dialog_bye_error,
	.terminated = dialog_bye_gone,
	.done = dialog_bye_gone,
};

#define CNT_ADD(f, n)	__atomic_add_fetch(&G.tot.f, (n), __ATOMIC_RELAXED)
#define CNT_SUB(f, n)	__atomic_sub_fetch(&G.tot.f, (n), __ATOMIC_RELAXED)

/*
 * One call dialog more (n > 0) or less in state st: with the cluster's
 * calls (by_state), or with the other nodes' passing through (transit).
 */
static void
state_count(const struct dialog *d, unsigned st, int n)
{
	uint64_t	*c = d->transit ? &G.tot.transit_by_state[st] :
	    &G.tot.by_state[st];

	if (n > 0)
		__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
	else
		__atomic_sub_fetch(c, 1, __ATOMIC_RELAXED);
}

/* ---- strings ---- */

static inline struct slice
str_get(const struct strs *s, enum dlg_str i)
{
	return ((struct slice){ s->s + s->off[i], s->off[i + 1] -
	    s->off[i] - 1 });
}

#define STR(x, i)	((x)->str.s + (x)->str.off[i])

static size_t
str_size(const struct slice *v)
{
	size_t	total = 0;
	int	i;

	for (i = 0; i < DS_N; i++)
		total += v[i].len + 1;
	return (total);
}

/* The strings v into n (str_size() bytes); s->s is left alone. */
static void
str_fill(struct strs *s, const struct slice *v, char *n)
{
	size_t	p = 0;
	int	i;

	for (i = 0; i < DS_N; i++) {
		s->off[i] = (uint32_t)p;
		if (v[i].len > 0)
			memcpy(n + p, v[i].p, v[i].len);
		n[p + v[i].len] = '\0';
		p += v[i].len + 1;
	}
	s->off[DS_N] = (uint32_t)p;
}

/* The strings v (DS_N of them, they may point into s) into s. */
static void
str_set(struct strs *s, const struct slice *v)
{
	char	*n = xmalloc(str_size(v));

	str_fill(s, v, n);
	free(s->s);
	s->s = n;
}

static void
str_all(const struct strs *s, struct slice *v)
{
	int	i;

	for (i = 0; i < DS_N; i++)
		v[i] = s->s != NULL ? str_get(s, (enum dlg_str)i) :
		    (struct slice){ "", 0 };
}

/* ---- pure parts ---- */

const char *
dialog_state_name(enum dialog_state s)
{
	static const char *const names[] = { "early", "confirmed",
	    "terminated" };

	return (s < DLG_NSTATES ? names[s] : "?");
}

/* The table's key: Call-ID, the caller's tag, the callee's. */
void
dialog_key(struct buf *b, struct slice callid, struct slice a, struct slice b2)
{
	buf_add(b, callid.p, callid.len);
	buf_add(b, "\0", 1);
	buf_add(b, a.p, a.len);
	buf_add(b, "\0", 1);
	buf_add(b, b2.p, b2.len);
}

/*
 * The same place, for the in-dialog check: both parse, and user, host
 * (case aside) and port are the same (no port is 5060 or 5061 for sips),
 * with the same transport.  Parameters other than transport may differ.
 */
bool
dialog_uri_same(struct slice a, struct slice b)
{
	struct sipuri	ua, ub;
	struct slice	ta, tb;
	uint16_t	pa, pb;
	bool		hta, htb;

	/* Most UAs copy the URI as it came: the same bytes, no parsing. */
	if (a.len == b.len && a.len > 0 && memcmp(a.p, b.p, a.len) == 0)
		return (true);
	if (sipuri_parse(a, &ua) == -1 || sipuri_parse(b, &ub) == -1)
		return (false);
	if (!slice_caseeq(ua.host, ub.host) || ua.user.len != ub.user.len ||
	    (ua.user.len > 0 && memcmp(ua.user.p, ub.user.p,
	    ua.user.len) != 0))
		return (false);
	pa = ua.port ? ua.port : slice_eq(ua.scheme, "sips") ? 5061 : 5060;
	pb = ub.port ? ub.port : slice_eq(ub.scheme, "sips") ? 5061 : 5060;
	if (pa != pb)
		return (false);
	hta = sipuri_param(&ua, "transport", &ta);
	htb = sipuri_param(&ub, "transport", &tb);
	if (!hta)
		ta = (struct slice){ "udp", 3 };
	if (!htb)
		tb = (struct slice){ "udp", 3 };
	return (slice_caseeq(ta, tb));
}

/*
 * Our entries in a Record-Route list (those with ;osp=stamp): returns the
 * index of the first (n: none), *after the index after the last.  Entries
 * before ours are on the callee's side, after ours on the caller's.
 */
unsigned
dialog_rr_split(const struct slice *rr, unsigned n, const char stamp[17],
    unsigned *after)
{
	char		want[4 + 16];
	unsigned	i, first = n;

	/* "osp=" and 16 hex digits: no other URI holds our MAC. */
	memcpy(want, "osp=", 4);
	memcpy(want + 4, stamp, 16);
	*after = n;
	for (i = 0; i < n; i++) {
		if (memmem(rr[i].p, rr[i].len, want, sizeof(want)) == NULL)
			continue;
		if (first == n)
			first = i;
		*after = i + 1;
	}
	if (first == n)
		*after = n;
	return (first);
}

/* ---- settings, counts ---- */

void
dialog_set_settings(const struct dialog_settings *s)
{
	G.set = *s;
}

void
dialog_set_cdr(dialog_cdr_fn *fn)
{
	G.cdr = fn;
}

/* Who deletes a call's media session (the proxy's rtpengine client). */
void
dialog_set_media_end(dialog_media_fn *fn)
{
	G.media_end = fn;
}

bool
dialog_enabled(void)
{
	return (G.set.enable);
}

/* Are the dialogs kept across a restart (dialog.database)? */
bool
dialog_persistent(void)
{
	return (dialog_store_is_open() || dlgr_configured());
}

/* dialog.backend "redis": the dialogs go to the Redis of this section. */
void
dialog_share(const struct redis_settings *rs)
{
	dlgr_configure(rs);
}

bool
dialog_shared(void)
{
	return (dlgr_configured());
}

/*
 * The key of the Record-Route dialog stamps every node shares (from the
 * cluster secret), and its generation (it changes when the secret does).
 * false: none (not shared, or Redis not reached yet).
 */
bool
dialog_stamp_key(uint64_t key[2], uint32_t *gen)
{
	return (dlgr_key(key, gen));
}

/* Does limits.calls_per_user count anyone (then the From user counts)? */
bool
dialog_limits_users(void)
{
	return (G.set.calls_per_user > 0);
}

void
dialog_totals(struct dialog_totals *t)
{
	const uint64_t	*from = (const uint64_t *)&G.tot;
	uint64_t	*to = (uint64_t *)t;
	size_t		 i;

	for (i = 0; i < sizeof(*t) / sizeof(uint64_t); i++)
		to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
	dlgr_counts(&t->redis_errors);
}

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
static bool	dialog_entry_gone(struct dialog *, const struct sipmsg *,
		    struct slice);
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

unsigned
dialog_count(void)
{
	return (D.up ? (unsigned)D.ht.n : 0);
}

static struct slice dialog_keyof(const struct dialog *);

static void
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
	/* Not sent (Redis down): the re-publication will. */
	if (dlgr_put(str_get(&d->str, DS_CALLID), str_get(&d->str, DS_FTAG),
	    str_get(&d->str, DS_TTAG), b, len, dialog_ttl_s(d)) == 0)
		d->shared = true;
}

/*
 * A confirmed dialog into dialog.database (queued; the main loop writes)
 * and into Redis (dialog.backend "redis"; sent now, not awaited); an
 * early one of a call into Redis only (its confirmation overwrites it),
 * so that another node can take it over.
 */
static void
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

static void
dialog_account(struct dialog *d)
{
	CNT_SUB(bytes, d->size);
	d->size = (uint32_t)(sizeof(*d) + d->str.off[DS_N]);
	CNT_ADD(bytes, d->size);
}

/* Replace string i of d (the key is never replaced this way). */
static void
dialog_str_replace(struct dialog *d, enum dlg_str i, struct slice v)
{
	struct slice	all[DS_N];

	str_all(&d->str, all);
	all[i] = v;
	hashtab_remove(&D.ht, &d->node);
	str_set(&d->str, all);
	dialog_link(d);
	dialog_account(d);
	dialog_save(d);
}

static struct dialog *
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

static void
dialog_free(struct dialog *d)
{
	struct slice	k;

	if (d->stored && !D.closing) {
		k = dialog_keyof(d);
		dialog_store_del(k.p, k.len);
	}
	if (d->shared && !D.closing)
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

/* The Route set, as text, of entries v[from..to) (reversed: to..from). */
static struct slice
routes_text(struct buf *b, const struct slice *v, unsigned from, unsigned to,
    bool reverse)
{
	unsigned	i, n = 0;

	for (i = from; i < to; i++) {
		if (n++ > 0)
			buf_adds(b, ", ");
		buf_add(b, v[reverse ? to - 1 - (i - from) : i].p,
		    v[reverse ? to - 1 - (i - from) : i].len);
	}
	return ((struct slice){ b->p, b->len });
}

static bool
slice_same(struct slice a, struct slice b)
{
	return (a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) ==
	    0));
}

static struct slice
contact_uri(const struct sipmsg *m)
{
	const struct sip_hline	*h = sipmsg_hdr(m, SH_CONTACT);

	if (h == NULL)
		return ((struct slice){ "", 0 });
	return (hdr_uri(sipmsg_hvalue(m, h)));
}

static struct slice
hvalue(const struct sipmsg *m, enum sip_hdr_id id)
{
	const struct sip_hline	*h = sipmsg_hdr(m, id);

	return (h != NULL ? sipmsg_hvalue(m, h) : (struct slice){ "", 0 });
}

/* A header Osprey has no id for (SH_OTHER), by name; "" if none. */
static struct slice
hvalue_named(const struct sipmsg *m, const char *name)
{
	size_t		n = strlen(name);
	unsigned	i;

	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];
		const char		*p = m->buf + h->off;

		if (h->id == SH_OTHER && h->len > n && sip_caseeq(p, name, n) &&
		    (p[n] == ':' || p[n] == ' ' || p[n] == '\t'))
			return (sipmsg_hvalue(m, h));
	}
	return ((struct slice){ "", 0 });
}

/* Seconds in v (digits, at most SUB_MAX_S), or -1. */
static long
secs_of(struct slice v)
{
	long	n = 0;
	size_t	i;

	v = slice_trim(v);
	if (v.len == 0 || v.len > 10)
		return (-1);
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return (-1);
		n = n * 10 + (v.p[i] - '0');
	}
	return (n > SUB_MAX_S ? SUB_MAX_S : n);
}

/*
 * How long a subscription lasts by m: its Expires (a SUBSCRIBE, its 2xx),
 * else the expires= of its Subscription-State (a NOTIFY), else dflt.
 */
static uint32_t
sub_expires(const struct sipmsg *m, uint32_t dflt)
{
	struct slice	v;
	long		n;

	if ((n = secs_of(hvalue(m, SH_EXPIRES))) >= 0)
		return ((uint32_t)n);
	if (hdr_param(hvalue_named(m, "subscription-state"), "expires",
	    &v) && (n = secs_of(v)) >= 0)
		return ((uint32_t)n);
	return (dflt);
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

static struct dialog_call *call_new(const struct sipmsg *,
		    const struct tp_addr *, struct tp_sock *, struct slice,
		    struct slice, const char[17], bool);

/*
 * An INVITE out of dialog that we record-route with stamp: what its
 * dialogs need of it.  The counts dialog_call_admit() took for user and
 * src are the call's now.
 */
struct dialog_call *
dialog_call_new(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_sock *in, struct slice user, struct slice identity,
    const char stamp[17])
{
	return (call_new(m, src, in, user, identity, stamp, false));
}

/*
 * The same, of a call (or subscription) another node of the cluster sent
 * here through a path token of ours: its dialogs are tracked and routed
 * here, but that node (where it entered) writes its record, counts it
 * and holds its limits (no dialog_call_admit() here: src is that node),
 * and its dialogs are that node's in Redis.  Counted apart.
 */
struct dialog_call *
dialog_transit_new(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_sock *in, const char stamp[17])
{
	return (call_new(m, src, in, (struct slice){ "", 0 },
	    (struct slice){ "", 0 }, stamp, true));
}

bool
dialog_call_transit(const struct dialog_call *c)
{
	return (c != NULL && c->transit);
}

static struct dialog_call *
call_new(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_sock *in, struct slice user, struct slice identity,
    const char stamp[17], bool transit)
{
	struct dialog_call	*c;
	struct slice		 v[DS_N], rr[DLG_MAX_RR];
	char			 ip[INET6_ADDRSTRLEN], rstore[256];
	struct buf		 rb;
	size_t			 size;
	unsigned		 n;
	int			 i;
	bool			 sub = m->method != SM_INVITE;

	for (i = 0; i < DS_N; i++)
		v[i] = (struct slice){ "", 0 };
	ip[0] = '\0';
	if (transit)
		user = (struct slice){ "", 0 };
	else if (G.set.calls_per_source > 0 && !sub)
		tp_addr_ip(src, ip, sizeof(ip));
	buf_init_on(&rb, rstore, sizeof(rstore));
	if (sub) {
		/* Towards the subscriber: its Record-Route, ours not yet. */
		user = (struct slice){ "", 0 };
		n = sipmsg_values(m, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
		v[DS_CALLER_ROUTES] = routes_text(&rb, rr, 0, n > DLG_MAX_RR ?
		    DLG_MAX_RR : n, false);
	}
	v[DS_CALLID] = m->callid;
	v[DS_FTAG] = m->from_tag;
	v[DS_FROM] = hvalue(m, SH_FROM);
	v[DS_TO] = hvalue(m, SH_TO);
	v[DS_RURI] = m->ruri;
	v[DS_CALLER_TARGET] = contact_uri(m);
	v[DS_IDENTITY] = identity;
	v[DS_USER] = user;
	v[DS_SRC] = (struct slice){ ip, strlen(ip) };
	/* One allocation: the call and its strings, which never change. */
	size = str_size(v);
	c = xcalloc(1, sizeof(*c) + size);
	c->str.s = (char *)(c + 1);
	str_fill(&c->str, v, c->str.s);
	txn_addr_put(&c->src, src);
	c->sock = (uint8_t)(in != NULL && D.tp != NULL ?
	    in - D.tp->socks : 0);
	c->cseq = m->cseq;
	clock_gettime(CLOCK_REALTIME, &c->start);
	c->start_ms = timer_now_ms();
	c->transit = transit;
	c->cnt_user = !transit && G.set.calls_per_user > 0 && user.len > 0;
	c->cnt_src = !transit && G.set.calls_per_source > 0;
	memcpy(c->stamp, stamp, 17);
	buf_cleanup(&rb);
	if (sub) {
		c->sub = true;
		c->cnt_user = c->cnt_src = false;
		c->expires_s = sub_expires(m, SUB_DEFAULT_S);
		/* Its NOTIFYs may come before its 2xx, from every fork. */
		if (m->method != SM_NOTIFY && D.up) {
			hashtab_insert(&D.subs, &c->node, c->str.s,
			    c->str.off[DS_TTAG] - 1);
			c->pending = true;
		}
		return (c);
	}
	if (transit) {
		CNT_ADD(transit_attempted, 1);
		log_info("dialog " SLICE_FMT ": transit, another node's call "
		    "(it writes the record)", SLICE_ARG(m->callid));
	} else
		CNT_ADD(attempted, 1);
	return (c);
}

static void
sub_unpend(struct dialog_call *c)
{
	if (c->pending && D.up)
		hashtab_remove(&D.subs, &c->node);
	c->pending = false;
}

/* A subscription lasts secs more (and the margin): its timer, stored. */
static void
sub_expire_in(struct dialog *d, uint32_t secs)
{
	uint32_t	total = (secs > SUB_MAX_S ? SUB_MAX_S : secs) +
	    SUB_MARGIN_S;

	clock_gettime(CLOCK_REALTIME, &d->answer);
	d->answer.tv_sec += total;
	timer_set(&d->timeout, total * 1000);
	dialog_save(d);
}

/*
 * A new dialog of call c: its caller's side, as the INVITE (or
 * SUBSCRIBE) gave it; v: the strings, c's and the callee's.
 */
static struct dialog *
dialog_of_call(const struct dialog_call *c, struct slice *v)
{
	struct dialog	*d = xcalloc(1, sizeof(*d));

	str_all(&c->str, v);
	d->caller_addr = c->src;
	d->caller_sock = c->sock;
	d->caller_cseq = c->cseq;
	d->start = c->start;
	d->start_ms = c->start_ms;
	d->transit = c->transit;
	return (d);
}

/*
 * A subscription of c with the notifier tag ttag, To value to, target and
 * route sets as given: a new dialog, or the one the tags name (its
 * notifier's side taken again).
 */
static struct dialog *
sub_make(struct dialog_call *c, struct slice ttag, struct slice to,
    struct slice target, struct slice callee_routes,
    struct slice caller_routes)
{
	struct dialog	*d;
	struct slice	 v[DS_N];

	d = dialog_find(str_get(&c->str, DS_CALLID),
	    str_get(&c->str, DS_FTAG), ttag);
	if (d != NULL && d->kind != DLG_SUB)
		return (NULL);
	if (d == NULL) {
		d = dialog_of_call(c, v);
		d->state = DLG_CONFIRMED;
		d->kind = DLG_SUB;
		CNT_ADD(subscriptions, 1);
		timer_init(&d->timeout, D.base, dialog_timeout_fire, d);
		log_info("dialog %s: subscription, notifier tag " SLICE_FMT,
		    STR(c, DS_CALLID), SLICE_ARG(ttag));
	} else {
		str_all(&d->str, v);
		hashtab_remove(&D.ht, &d->node);
	}
	v[DS_TTAG] = ttag;
	v[DS_TO] = to;
	if (target.len > 0)
		v[DS_CALLEE_TARGET] = target;
	v[DS_CALLEE_ROUTES] = callee_routes;
	v[DS_CALLER_ROUTES] = caller_routes;
	str_set(&d->str, v);
	dialog_link(d);
	dialog_account(d);
	return (d);
}

/* A 2xx to the SUBSCRIBE, REFER or NOTIFY of c: its subscription. */
static void
sub_response(struct dialog_call *c, const struct sipmsg *resp,
    const struct tp_addr *callee, struct tp_sock *out)
{
	struct dialog	*d;
	struct slice	 rr[DLG_MAX_RR];
	struct buf	 ce, cr;
	char		 cestore[256], crstore[256];
	unsigned	 n, first, after;

	if (resp->status < 200 || resp->status >= 300)
		return;
	n = sipmsg_values(resp, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	first = dialog_rr_split(rr, n, c->stamp, &after);
	if (first == n)
		first = after = 0;
	buf_init_on(&ce, cestore, sizeof(cestore));
	buf_init_on(&cr, crstore, sizeof(crstore));
	d = sub_make(c, resp->to_tag, hvalue(resp, SH_TO), contact_uri(resp),
	    routes_text(&ce, rr, 0, first, true),
	    routes_text(&cr, rr, after, n, false));
	buf_cleanup(&ce);
	buf_cleanup(&cr);
	if (d == NULL)
		return;
	txn_addr_put(&d->callee_addr, callee);
	d->callee_sock = (uint8_t)(out != NULL ? out - D.tp->socks : 0);
	sub_expire_in(d, sub_expires(resp, c->expires_s));
}

/*
 * A NOTIFY (from the notifier: its From tag) to the subscriber of the
 * SUBSCRIBE or REFER c, before c's 2xx or from another fork (RFC 6665
 * 4.1.2.4): the subscription it makes.
 */
static struct dialog *
sub_notified(struct dialog_call *c, const struct sipmsg *m)
{
	struct dialog	*d;
	struct slice	 rr[DLG_MAX_RR];
	struct buf	 ce;
	char		 cestore[256];
	unsigned	 n;

	n = sipmsg_values(m, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	buf_init_on(&ce, cestore, sizeof(cestore));
	d = sub_make(c, m->from_tag, hvalue(m, SH_FROM), contact_uri(m),
	    routes_text(&ce, rr, 0, n, true), str_get(&c->str,
	    DS_CALLER_ROUTES));
	buf_cleanup(&ce);
	if (d == NULL)
		return (NULL);
	d->callee_cseq = m->cseq;
	sub_expire_in(d, c->expires_s);
	return (d);
}

static void
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
 * A 1xx or 2xx with a To tag to the INVITE of c, from callee (the
 * address of the branch, sent from out): an early dialog, or the dialog
 * confirmed.
 */
void
dialog_call_response(struct dialog_call *c, const struct sipmsg *resp,
    const struct tp_addr *callee, struct tp_sock *out)
{
	struct dialog	*d;
	struct slice	 rr[DLG_MAX_RR], v[DS_N];
	struct buf	 ce, cr;
	char		 cestore[256], crstore[256];
	unsigned	 n, first, after;
	bool		 ok = resp->status >= 200 && resp->status < 300;

	if (c == NULL || !D.up || resp->to_tag.len == 0 ||
	    resp->status <= 100 || resp->status >= 300)
		return;
	if (c->sub) {
		sub_response(c, resp, callee, out);
		return;
	}
	d = dialog_find(str_get(&c->str, DS_CALLID),
	    str_get(&c->str, DS_FTAG), resp->to_tag);
	if (d != NULL && (d->state != DLG_EARLY || !ok))
		return;		/* a retransmission, or a second 1xx */
	n = sipmsg_values(resp, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	first = dialog_rr_split(rr, n, c->stamp, &after);
	if (first == n)
		first = after = 0;	/* ours is gone: nobody beside us */
	buf_init_on(&ce, cestore, sizeof(cestore));
	buf_init_on(&cr, crstore, sizeof(crstore));
	if (d == NULL) {
		d = dialog_of_call(c, v);
		d->state = DLG_EARLY;
		d->media = c->media;
		state_count(d, DLG_EARLY, 1);
		timer_init(&d->timeout, D.base, dialog_timeout_fire, d);
		d->call = c;
		d->call_next = c->dialogs;
		c->dialogs = d;
	} else {
		/* The 2xx of an early dialog: most say what its 1xx said. */
		if (slice_same(contact_uri(resp), str_get(&d->str,
		    DS_CALLEE_TARGET)) && slice_same(hvalue(resp, SH_TO),
		    str_get(&d->str, DS_TO)) &&
		    slice_same(routes_text(&ce, rr, 0, first, true),
		    str_get(&d->str, DS_CALLEE_ROUTES)) &&
		    slice_same(routes_text(&cr, rr, after, n, false),
		    str_get(&d->str, DS_CALLER_ROUTES))) {
			buf_cleanup(&ce);
			buf_cleanup(&cr);
			txn_addr_put(&d->callee_addr, callee);
			dialog_confirm(d, c);
			dialog_save(d);
			return;
		}
		ce.len = cr.len = 0;
		str_all(&d->str, v);
		hashtab_remove(&D.ht, &d->node);
	}
	v[DS_TTAG] = resp->to_tag;
	v[DS_TO] = hvalue(resp, SH_TO);
	if (contact_uri(resp).len > 0 || ok)
		v[DS_CALLEE_TARGET] = contact_uri(resp);
	v[DS_CALLEE_ROUTES] = routes_text(&ce, rr, 0, first, true);
	v[DS_CALLER_ROUTES] = routes_text(&cr, rr, after, n, false);
	str_set(&d->str, v);
	buf_cleanup(&ce);
	buf_cleanup(&cr);
	txn_addr_put(&d->callee_addr, callee);
	d->callee_sock = (uint8_t)(out != NULL ? out - D.tp->socks : 0);
	dialog_link(d);
	dialog_account(d);
	if (ok)
		dialog_confirm(d, c);
	else
		log_debug("dialog %s: early, to tag " SLICE_FMT,
		    STR(d, DS_CALLID), SLICE_ARG(resp->to_tag));
	dialog_save(d);		/* once per early dialog: not again on a 1xx */
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

/* The INVITE of c went on with rtpengine's SDP: a delete when it ends. */
void
dialog_call_media(struct dialog_call *c)
{
	struct dialog	*d;

	if (c == NULL || c->sub)
		return;
	c->media = true;
	for (d = c->dialogs; d != NULL; d = d->call_next)
		d->media = true;
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

/* The record of the attempt c, which failed (code, Q.850 cause). */
static void
call_record(const struct dialog_call *c, int code, int cause,
    enum cdr_ended_by by)
{
	struct cdr	 r;
	struct tp_addr	 src;

	if (G.cdr == NULL || c->transit)	/* the entry node's record */
		return;
	txn_addr_get(&c->src, &src);
	cdr_fill(&r, &c->str, &src);
	r.start = c->start;
	clock_gettime(CLOCK_REALTIME, &r.end);
	r.code = code;
	r.cause = cause;
	r.ended_by = by;
	G.cdr(&r);
}

/*
 * The INVITE of c got its final answer upstream: a failure (code >= 300,
 * ended_by who) ends its early dialogs and makes the attempt's record.
 */
void
dialog_call_final(struct dialog_call *c, int code, enum cdr_ended_by by)
{
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
	while (c->dialogs != NULL) {
		struct dialog	*d = c->dialogs;

		if (d->state == DLG_EARLY)
			dialog_free(d);
		else
			dialog_unlink_call(d);
	}
	lim_release(&c->str, &c->cnt_user, &c->cnt_src);
	call_record(c, code, D.stopping ? DLG_CAUSE_STOP : sip_cause(code),
	    by);
}

/*
 * An INVITE the proxy refused itself (no route, no user, relaying
 * denied, a limit): the record of a call attempt that failed at once.
 */
void
dialog_refused(const struct sipmsg *m, const struct tp_addr *src,
    struct slice identity, int code)
{
	struct cdr	r;

	if (G.cdr == NULL)
		return;
	memset(&r, 0, sizeof(r));
	r.callid = m->callid;
	r.from_tag = m->from_tag;
	r.caller = hdr_uri(hvalue(m, SH_FROM));
	r.callee = hdr_uri(hvalue(m, SH_TO));
	r.ruri = m->ruri;
	r.identity = identity;
	r.src = *src;
	clock_gettime(CLOCK_REALTIME, &r.start);
	r.end = r.start;
	r.code = code;
	r.cause = sip_cause(code);
	r.ended_by = CDR_BY_PROXY;
	G.cdr(&r);
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

/* ---- in dialog ---- */

/* d, and whether m comes from its caller; NULL: no dialog. */
static struct dialog *
dialog_of(const struct sipmsg *m, bool *from_caller)
{
	struct dialog	*d;

	if ((d = dialog_find(m->callid, m->from_tag, m->to_tag)) != NULL) {
		*from_caller = true;
		return (d);
	}
	if ((d = dialog_find(m->callid, m->to_tag, m->from_tag)) != NULL) {
		*from_caller = false;
		return (d);
	}
	return (NULL);
}

/* The first URI of a Route set text (the next hop), or empty. */
static struct slice
routes_first(struct slice text)
{
	struct slice	v[1];

	if (text.len == 0 || split_values(text, v, 1) == 0)
		return ((struct slice){ "", 0 });
	return (hdr_uri(v[0]));
}

/* 10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, fc00::/7, fe80::/10 */
static bool
addr_private(const struct tp_addr *a)
{
	const uint8_t	*p;

	if (a->ss.ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)
		    &a->ss)->sin_addr;
		return (p[0] == 10 || (p[0] == 172 && (p[1] & 0xf0) == 16) ||
		    (p[0] == 192 && p[1] == 168) ||
		    (p[0] == 100 && (p[1] & 0xc0) == 64) ||
		    (p[0] == 169 && p[1] == 254));
	}
	if (a->ss.ss_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)
		    &a->ss)->sin6_addr;
		return ((p[0] & 0xfe) == 0xfc || (p[0] == 0xfe &&
		    (p[1] & 0xc0) == 0x80));
	}
	return (false);
}

/*
 * A party behind a NAT over UDP, reached with no proxy between (its route
 * set is empty): its remote target names a private address and its
 * messages came from a public one (a phone on the same private network
 * as the proxy is reached as it says).  Its requests then go to that
 * flow (the Request-URI stays).  Not the registrar's wider test (another
 * port of the same address): a re-INVITE may move a target on purpose.
 */
static bool
dialog_nated(struct slice target, struct slice routes,
    const struct txn_addr *ta, struct tp_addr *flow)
{
	struct sipuri	 u;
	struct tp_addr	 t;

	if (routes.len > 0)
		return (false);
	txn_addr_get(ta, flow);
	if (flow->len == 0 || flow->proto != TP_UDP ||
	    sipuri_parse(target, &u) != 0 ||
	    tp_addr_set(&t, u.host, u.port ? u.port : 5060) == -1)
		return (false);
	return (addr_private(&t) && !addr_private(flow));
}

/* The SUBSCRIBE or REFER on its way whose NOTIFY m is, or NULL. */
static struct dialog_call *
sub_pending(const struct sipmsg *m)
{
	struct buf	 k;
	char		 kstore[512];
	struct hnode	*hn;

	if (!D.up || D.subs.n == 0 || m->to_tag.len == 0)
		return (NULL);
	buf_init_on(&k, kstore, sizeof(kstore));
	buf_add(&k, m->callid.p, m->callid.len);
	buf_add(&k, "\0", 1);
	buf_add(&k, m->to_tag.p, m->to_tag.len);
	hn = hashtab_find(&D.subs, k.p, k.len);
	buf_cleanup(&k);
	return (hn != NULL ? (struct dialog_call *)((char *)hn -
	    offsetof(struct dialog_call, node)) : NULL);
}

/*
 * An in-dialog request of the subscription d that passed the check:
 * SUBSCRIBE and NOTIFY refresh their sender's target (RFC 6665 4.1.2.1,
 * 4.2.1.1); a NOTIFY says how long it lasts, or that it is over (then it
 * ends as the NOTIFY is forwarded).
 */
static int
sub_request(struct dialog *d, const struct sipmsg *m, bool from_caller)
{
	struct slice	c, st;
	long		n;

	if ((m->method == SM_SUBSCRIBE || m->method == SM_NOTIFY) &&
	    (c = contact_uri(m)).len > 0 && !slice_same(c, str_get(&d->str,
	    from_caller ? DS_CALLER_TARGET : DS_CALLEE_TARGET)))
		dialog_str_replace(d, from_caller ? DS_CALLER_TARGET :
		    DS_CALLEE_TARGET, c);
	if (m->method != SM_NOTIFY)
		return (0);
	st = slice_trim(hvalue_named(m, "subscription-state"));
	if (st.len >= 10 && sip_caseeq(st.p, "terminated", 10) &&
	    (st.len == 10 || st.p[10] == ';' || st.p[10] == ' ' ||
	    st.p[10] == '\t')) {
		sub_end(d, "NOTIFY terminated");
		return (0);
	}
	if (hdr_param(st, "expires", &c) && (n = secs_of(c)) >= 0)
		sub_expire_in(d, (uint32_t)n);
	return (0);
}

/*
 * An in-dialog request (To tag) that came back through our Record-Route
 * of an INVITE dialog, whose next hop is next (its first Route after
 * ours, else its Request-URI; next.p NULL when it is addressed to us and
 * routed as for its user: no target to check).  0: on it goes (and the
 * dialog took note: CSeq, a new target, a BYE ends it); else the status
 * to refuse with and err.  flow (if not NULL): where to send it instead
 * of next, the other party's flow when it is behind a NAT
 * (dialog_nated()); len 0: to next.
 */
int
dialog_request(const struct sipmsg *m, struct slice next, char *err,
    size_t errlen)
{
	return (dialog_request_flow(m, next, NULL, err, errlen));
}

/*
 * A transit copy d (dialog.backend "redis") and an in-dialog request m
 * whose Route names the entry node's Record-Route (the first of d's
 * routes towards the caller), not as the next hop: this node popped it
 * as its own, so the entry node's address leads here now (it died).
 * Then true, once per dialog: its dialog is asked of Redis
 * (dialog_fetch()), and taken in place of the transit copy
 * (dialog_entry_take()).
 */
static bool
dialog_entry_gone(struct dialog *d, const struct sipmsg *m,
    struct slice next)
{
	struct slice	 entry, v[16];
	unsigned	 i, n;

	if (!d->transit || d->entry_asked || d->kind != DLG_CALL ||
	    !dlgr_configured() || !dlgr_up())
		return (false);
	entry = routes_first(str_get(&d->str, DS_CALLER_ROUTES));
	if (entry.len == 0 || (next.p != NULL && dialog_uri_same(next,
	    entry)))
		return (false);
	n = sipmsg_values(m, SH_ROUTE, v, 16);
	for (i = 0; i < n && i < 16; i++)
		if (dialog_uri_same(hdr_uri(v[i]), entry))
			break;
	if (i == n || i == 16)
		return (false);
	d->entry_asked = true;
	log_info("dialog %s: transit, the entry node's route came back "
	    "here: its dialog asked of redis", STR(d, DS_CALLID));
	return (true);
}

int
dialog_request_flow(const struct sipmsg *m, struct slice next,
    struct tp_addr *flow, char *err, size_t errlen)
{
	struct dialog	*d;
	struct dialog_call *pc;
	struct slice	 want, c;
	bool		 from_caller;

	if (flow != NULL)
		memset(flow, 0, sizeof(*flow));

	if ((d = dialog_of(m, &from_caller)) == NULL && m->method ==
	    SM_NOTIFY && (pc = sub_pending(m)) != NULL) {
		/* To the subscriber, as its SUBSCRIBE or REFER said. */
		want = str_get(&pc->str, DS_CALLER_ROUTES);
		want = want.len > 0 ? routes_first(want) :
		    str_get(&pc->str, DS_CALLER_TARGET);
		if (next.p != NULL && !dialog_uri_same(next, want)) {
			snprintf(err, errlen, "Forbidden (not this dialog's "
			    "target)");
			CNT_ADD(refused_403, 1);
			log_info("dialog %s: NOTIFY to " SLICE_FMT " refused, "
			    "the subscriber is " SLICE_FMT, STR(pc, DS_CALLID),
			    SLICE_ARG(next), SLICE_ARG(want));
			return (403);
		}
		d = sub_notified(pc, m);
		from_caller = false;
	}
	if (d == NULL) {
		snprintf(err, errlen, "Call/Transaction Does Not Exist");
		CNT_ADD(refused_481, 1);
		return (481);
	}
	if (d->state == DLG_EARLY && m->method != SM_PRACK &&
	    m->method != SM_UPDATE && m->method != SM_ACK &&
	    !(m->method == SM_BYE && from_caller)) {
		snprintf(err, errlen, "Call/Transaction Does Not Exist "
		    "(early dialog)");
		CNT_ADD(refused_481, 1);
		return (481);
	}
	if (dialog_entry_gone(d, m, next)) {
		snprintf(err, errlen, "Call/Transaction Does Not Exist "
		    "(the entry node's dialog is asked of redis)");
		CNT_ADD(refused_481, 1);
		return (481);
	}
	want = from_caller ? str_get(&d->str, DS_CALLEE_ROUTES) :
	    str_get(&d->str, DS_CALLER_ROUTES);
	want = want.len > 0 ? routes_first(want) : from_caller ?
	    str_get(&d->str, DS_CALLEE_TARGET) :
	    str_get(&d->str, DS_CALLER_TARGET);
	/* next.p NULL: addressed to us, routed by our own routes. */
	if (next.p != NULL && !dialog_uri_same(next, want)) {
		snprintf(err, errlen, "Forbidden (not this dialog's target)");
		CNT_ADD(refused_403, 1);
		log_info("dialog %s: %s to " SLICE_FMT " refused, the %s is "
		    SLICE_FMT, STR(d, DS_CALLID), sip_method_name(m->method),
		    SLICE_ARG(next), d->kind == DLG_SUB ? (from_caller ?
		    "notifier" : "subscriber") : from_caller ? "callee" :
		    "caller", SLICE_ARG(want));
		return (403);
	}
	if (flow != NULL && !dialog_nated(from_caller ?
	    str_get(&d->str, DS_CALLEE_TARGET) :
	    str_get(&d->str, DS_CALLER_TARGET), from_caller ?
	    str_get(&d->str, DS_CALLEE_ROUTES) :
	    str_get(&d->str, DS_CALLER_ROUTES), from_caller ?
	    &d->callee_addr : &d->caller_addr, flow))
		memset(flow, 0, sizeof(*flow));
	if (m->method != SM_ACK && m->method != SM_CANCEL && m->method !=
	    SM_BYE && m->cseq > (from_caller ? d->caller_cseq :
	    d->callee_cseq)) {
		if (from_caller)
			d->caller_cseq = m->cseq;
		else
			d->callee_cseq = m->cseq;
		if (d->kind == DLG_CALL)
			dialog_save(d);	/* our BYE after a restart needs it */
	}
	if (d->kind == DLG_SUB)
		return (sub_request(d, m, from_caller));
	if ((m->method == SM_INVITE || m->method == SM_UPDATE) &&
	    (c = contact_uri(m)).len > 0) {
		/* A target refresh (12.2.2): the sender's new target. */
		dialog_str_replace(d, from_caller ? DS_CALLER_TARGET :
		    DS_CALLEE_TARGET, c);
	}
	if (m->method == SM_BYE) {
		log_info("dialog %s: BYE from the %s", STR(d, DS_CALLID),
		    from_caller ? "caller" : "callee");
		dialog_end(d, from_caller ? CDR_BY_CALLER : CDR_BY_CALLEE,
		    200);
	}
	return (0);
}

/* Is m (a re-INVITE, a 2xx) of a dialog rtpengine relays (either way)? */
bool
dialog_media(const struct sipmsg *m)
{
	struct dialog	*d;
	bool		 from_caller;

	return (D.up && m->to_tag.len > 0 &&
	    (d = dialog_of(m, &from_caller)) != NULL && d->media);
}

/* A 2xx to a re-INVITE or UPDATE: the answerer's new target. */
void
dialog_refresh(const struct sipmsg *resp)
{
	struct dialog	*d;
	struct slice	 c;
	bool		 from_caller;

	if (!D.up || resp->to_tag.len == 0)
		return;
	if (resp->method == SM_SUBSCRIBE && resp->status >= 200 &&
	    resp->status < 300) {
		/* A refresh accepted: the notifier's target, how long. */
		if ((d = dialog_of(resp, &from_caller)) == NULL ||
		    d->kind != DLG_SUB)
			return;
		if ((c = contact_uri(resp)).len > 0 && !slice_same(c,
		    str_get(&d->str, from_caller ? DS_CALLEE_TARGET :
		    DS_CALLER_TARGET)))
			dialog_str_replace(d, from_caller ? DS_CALLEE_TARGET :
			    DS_CALLER_TARGET, c);
		sub_expire_in(d, sub_expires(resp, SUB_DEFAULT_S));
		return;
	}
	if ((resp->method != SM_INVITE &&
	    resp->method != SM_UPDATE) || (c = contact_uri(resp)).len == 0)
		return;
	/* The request's sender is the response's From. */
	if ((d = dialog_of(resp, &from_caller)) == NULL ||
	    d->state != DLG_CONFIRMED || d->kind != DLG_CALL)
		return;
	dialog_str_replace(d, from_caller ? DS_CALLEE_TARGET :
	    DS_CALLER_TARGET, c);
}

/*
 * The final answer resp to an in-dialog request went upstream: a 481
 * ends the subscription it was in (RFC 6665 4.1.2.1, 4.2.2).
 */
void
dialog_request_failed(const struct sipmsg *resp)
{
	struct dialog	*d;
	bool		 from_caller;

	if (!D.up || resp->status != 481 || resp->to_tag.len == 0)
		return;
	if ((d = dialog_of(resp, &from_caller)) != NULL && d->kind == DLG_SUB)
		sub_end(d, "481");
}

/* ---- the end ---- */

/* A subscription ends (no record: it is no call). */
static void
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

static void
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
	if (d->state == DLG_EARLY && d->call == NULL)
		dialog_early_record(d, by, code);	/* another node's */
	dialog_record(d, by, code, 16);	/* Q.850 NORMAL_CLEARING */
	media_end(&d->str, &d->media, d->call);
	dialog_free(d);
}

/* ---- BYEs of our own (dialog_timeout, ospreyctl hangup) ---- */

static void
dialog_bye_response(struct txn *ct, const struct sipmsg *resp)
{
	if (resp->status >= 200)
		log_info("dialog %s: our BYE answered %d", txn_callid(ct),
		    resp->status);
}

static void
dialog_bye_timeout(struct txn *ct, bool timer_c)
{
	(void)timer_c;
	log_info("dialog %s: our BYE got no answer", txn_callid(ct));
}

static void
dialog_bye_error(struct txn *ct)
{
	log_info("dialog %s: our BYE could not be sent", txn_callid(ct));
}

static void
dialog_bye_gone(struct txn *ct)
{
	ct->owner = NULL;
}

static void
dbye_free(struct dbye *b)
{
	free(b->head);
	free(b->rest);
	free(b->callid);
	free(b);
}

/* Our Via on top, and away in a client transaction of our own. */
static void
dbye_send(struct dbye *b, const struct tp_addr *addr, const char *name)
{
	struct tp_sock	*pref, *out;
	struct txn	*ct;
	struct buf	 m;
	char		 branch[48], hex[17];
	size_t		 len;

	pref = b->sock < D.tp->nsocks ? &D.tp->socks[b->sock] : NULL;
	if ((out = tp_sock_for(D.tp, addr, pref)) == NULL) {
		log_warnx("dialog %s: no socket for our BYE", b->callid);
		return;
	}
	/* Unique, and not to be guessed: keyed by the table's seed. */
	++D.serial;
	fmt_hex64(hex, hashtab_hash(D.ht.seed, &D.serial, sizeof(D.serial)));
	snprintf(branch, sizeof(branch), SIP_MAGIC "dlg%s%x", hex,
	    (unsigned)(D.serial & 0xffff));
	buf_init(&m, 512);
	buf_adds(&m, b->head);
	buf_addf(&m, "Via: SIP/2.0/%s %s;branch=%s\r\n",
	    tp_proto_via(out->proto), out->hostport, branch);
	buf_adds(&m, b->rest);
	len = m.len;
	ct = txn_client_start(TXN_NICT, (struct slice){ branch,
	    strlen(branch) }, (struct slice){ "BYE", 3 },
	    (struct slice){ b->callid, strlen(b->callid) }, buf_steal(&m,
	    NULL), len, out, addr, name, &bye_owner, 0);
	txn_set_ops(ct, &bye_ops);
}

static void
dbye_resolved(void *arg, const struct tp_addr *addrs, unsigned n,
    const char *err)
{
	struct dbye	*b = arg, **pp;

	for (pp = &D.byes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	b->dns = NULL;
	if (n == 0)
		log_warnx("dialog %s: our BYE has no next hop: %s", b->callid,
		    err != NULL ? err : "no address");
	else
		dbye_send(b, &addrs[0], NULL);
	dbye_free(b);
}

/*
 * A BYE from one party of d to the other (to_caller: to the caller),
 * as that party's UA would send it: its tags, the next CSeq, the other's
 * target and Route set, over the flow the dialog knows when the Route set
 * is empty.
 */
static void
dialog_send_bye(struct dialog *d, bool to_caller, const char *reason)
{
	struct slice	 target, routes, from, to, u;
	struct sipuri	 su;
	struct dbye	*b;
	struct buf	 h;
	struct tp_addr	 a;
	struct resolve_query q;
	struct resolve_req *r;
	char		 host[256];
	uint32_t	 cseq;

	target = str_get(&d->str, to_caller ? DS_CALLER_TARGET :
	    DS_CALLEE_TARGET);
	routes = str_get(&d->str, to_caller ? DS_CALLER_ROUTES :
	    DS_CALLEE_ROUTES);
	from = str_get(&d->str, to_caller ? DS_TO : DS_FROM);
	to = str_get(&d->str, to_caller ? DS_FROM : DS_TO);
	/* A Contact that will not do as our Request-URI: no BYE that way. */
	if (target.len == 0 || !sipuri_fits_ruri(target) ||
	    sipuri_parse(target, &su) == -1 || (!slice_eq(su.scheme, "sip") &&
	    !slice_eq(su.scheme, "sips"))) {
		log_warnx("dialog %s: no usable target to send the %s a BYE "
		    "(\"" SLICE_FMT "\")", STR(d, DS_CALLID), to_caller ?
		    "caller" : "callee", SLICE_ARG(target));
		return;
	}
	cseq = to_caller ? ++d->callee_cseq : ++d->caller_cseq;
	b = xcalloc(1, sizeof(*b));
	b->callid = xstrdup(STR(d, DS_CALLID));
	b->sock = to_caller ? d->caller_sock : d->callee_sock;
	buf_init(&h, 128);
	buf_adds(&h, "BYE ");
	buf_add(&h, target.p, target.len);
	buf_adds(&h, " SIP/2.0\r\n");
	b->head = buf_steal(&h, NULL);
	buf_init(&h, 512);
	buf_adds(&h, "Max-Forwards: 70\r\n");
	if (routes.len > 0)
		buf_addf(&h, "Route: " SLICE_FMT "\r\n", SLICE_ARG(routes));
	buf_addf(&h, "From: " SLICE_FMT "\r\nTo: " SLICE_FMT "\r\n"
	    "Call-ID: %s\r\nCSeq: %u BYE\r\n", SLICE_ARG(from),
	    SLICE_ARG(to), b->callid, cseq);
	if (reason != NULL)
		buf_addf(&h, "Reason: %s\r\n", reason);
	buf_adds(&h, "User-Agent: Osprey/" PACKAGE_VERSION "\r\n"
	    "Content-Length: 0\r\n\r\n");
	b->rest = buf_steal(&h, NULL);
	if (routes.len == 0) {
		/* No proxy beside us that way: the flow we know. */
		txn_addr_get(to_caller ? &d->caller_addr : &d->callee_addr, &a);
		dbye_send(b, &a, NULL);
		dbye_free(b);
		return;
	}
	u = routes_first(routes);
	if (sipuri_parse(u, &su) == -1 || su.host.len == 0 ||
	    su.host.len + 1 > sizeof(host)) {
		log_warnx("dialog %s: bad Route for our BYE", b->callid);
		dbye_free(b);
		return;
	}
	if (su.host.p[0] == '[' && su.host.len > 2) {
		su.host.p++;
		su.host.len -= 2;
	}
	memcpy(host, su.host.p, su.host.len);
	host[su.host.len] = '\0';
	memset(&q, 0, sizeof(q));
	q.host = host;
	q.port = su.port;
	q.proto = -1;
	q.sips = slice_eq(su.scheme, "sips");
	q.protos = tp_protos(D.tp);
	if (sipuri_param(&su, "transport", &u)) {
		enum tp_proto	p;

		if (tp_proto_parse(u, &p) == 0)
			q.proto = (int)p;
	}
	b->next = D.byes;
	D.byes = b;
	b->dns = NULL;
	/* A numeric host is answered at once: b is gone then, r NULL. */
	if ((r = resolver_query(&q, dbye_resolved, b)) != NULL)
		b->dns = r;
}

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

static void
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

void
dialog_foreach(void (*fn)(const struct dialog_info *, void *), void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct dialog_info	 di;
	char			 caller[256], callee[256];
	struct slice		 u;
	uint64_t		 now = timer_now_ms();

	if (!D.up)
		return;
	HASHTAB_FOREACH(n, &D.ht, it) {
		struct dialog	*d = (struct dialog *)n;

		if (d->kind != DLG_CALL)	/* subscriptions: no calls */
			continue;
		u = hdr_uri(str_get(&d->str, DS_FROM));
		snprintf(caller, sizeof(caller), SLICE_FMT, SLICE_ARG(u));
		u = hdr_uri(str_get(&d->str, DS_TO));
		snprintf(callee, sizeof(callee), SLICE_FMT, SLICE_ARG(u));
		di.callid = STR(d, DS_CALLID);
		di.caller = caller;
		di.callee = callee;
		di.caller_target = STR(d, DS_CALLER_TARGET);
		di.callee_target = STR(d, DS_CALLEE_TARGET);
		di.identity = STR(d, DS_IDENTITY);
		di.state = (enum dialog_state)d->state;
		di.age_ms = now - d->start_ms;
		di.worker = shard_self();
		di.media = d->media;
		di.transit = d->transit;
		fn(&di, arg);
	}
}

/*
 * The worker is about to stop (before its transactions go): a call whose
 * INVITE is still on gets the record of an attempt the stop ended (503,
 * Q.850 41, ended by the proxy) whichever way its transactions go.
 */
void
dialog_stop(void)
{
	D.stopping = true;
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
	str_all(&d->str, v);
	v[DS_CALLEE_TARGET] = (struct slice){ ct.p, ct.len };
	v[DS_CALLEE_ROUTES] = (struct slice){ cr.p, cr.len };
	hashtab_remove(&D.ht, &d->node);
	str_set(&d->str, v);
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
		if (e.ttlen == 0 || e.ttlen >= sizeof(((struct dinv *)
		    NULL)->ttag) || e.brlen == 0 || e.linelen == 0 ||
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
		log_info("dialog %s: the CANCEL relayed for another node's "
		    "INVITE answered %d", txn_callid(ct), resp->status);
}

static void
dialog_cancel_timeout(struct txn *ct, bool timer_c)
{
	(void)timer_c;
	log_info("dialog %s: the CANCEL relayed got no answer",
	    txn_callid(ct));
}

static const struct txn_ops cancel_ops = {
	.response = dialog_cancel_response,
	.timeout = dialog_cancel_timeout,
	.transport_error = dialog_bye_error,
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
		log_info("dialog %s: early dialog taken from redis ended %d "
		    "(another branch of the INVITE goes on)", STR(d,
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
	    "relayed, branch " SLICE_FMT, SLICE_ARG(v->inv->callid),
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

	if (irec_parse(rec, len, &up, brs, &n) != 0 ||
	    up.len != dc->uplen || memcmp(up.p, dc->up, up.len) != 0)
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
	if (n < ncaller + 1 || contact_uri(resp).len == 0)
		return (NULL);
	d = xcalloc(1, sizeof(*d));
	str_all(&e->str, v);
	buf_init_on(&ce, cestore, sizeof(cestore));
	v[DS_TTAG] = resp->to_tag;
	v[DS_TO] = hvalue(resp, SH_TO);
	v[DS_CALLEE_TARGET] = contact_uri(resp);
	v[DS_CALLEE_ROUTES] = routes_text(&ce, rr, 0, n - (unsigned)ncaller -
	    1, true);
	str_set(&d->str, v);
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
	log_info("dialog %s: the 2xx's To tag " SLICE_FMT " had no early "
	    "dialog: made from the branch's", STR(e, DS_CALLID),
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
			    "transaction here: %s, dropped", failed ?
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
		    "INVITE, taken from redis, branch %s",
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
