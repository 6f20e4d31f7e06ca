/*
 * The dialog module's state (each worker's table, the settings and counts
 * every worker shares) and what reads it, and its pure parts: a dialog's
 * strings, the table's key, the in-dialog URI check, our place in a
 * Record-Route list.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialog.h"
#include "dialog_int.h"
#include "dialog_redis.h"
#include "dialog_store.h"
#include "shard.h"
#include "xmalloc.h"

_Thread_local struct dialog_worker dialog_w;
struct dialog_global dialog_g = { .mu = PTHREAD_MUTEX_INITIALIZER };

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

/* ---- the table, read ---- */

unsigned
dialog_count(void)
{
	return (D.up ? (unsigned)D.ht.n : 0);
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

/* ---- strings ---- */

size_t
dialog_str_size(const struct slice *v)
{
	size_t	total = 0;
	int	i;

	for (i = 0; i < DS_N; i++)
		total += v[i].len + 1;
	return (total);
}

/* The strings v into n (dialog_str_size() bytes); s->s is left alone. */
void
dialog_str_fill(struct strs *s, const struct slice *v, char *n)
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
void
dialog_str_set(struct strs *s, const struct slice *v)
{
	char	*n = xmalloc(dialog_str_size(v));

	dialog_str_fill(s, v, n);
	free(s->s);
	s->s = n;
}

void
dialog_str_all(const struct strs *s, struct slice *v)
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

/* The Route set, as text, of entries v[from..to) (reversed: to..from). */
struct slice
dialog_routes_text(struct buf *b, const struct slice *v, unsigned from,
    unsigned to, bool reverse)
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

struct slice
dialog_contact_uri(const struct sipmsg *m)
{
	const struct sip_hline	*h = sipmsg_hdr(m, SH_CONTACT);

	if (h == NULL)
		return ((struct slice){ "", 0 });
	return (hdr_uri(sipmsg_hvalue(m, h)));
}

struct slice
dialog_hvalue(const struct sipmsg *m, enum sip_hdr_id id)
{
	const struct sip_hline	*h = sipmsg_hdr(m, id);

	return (h != NULL ? sipmsg_hvalue(m, h) : (struct slice){ "", 0 });
}
