/*
 * The dialog module's own: what src/dialog/dialog*.c share among
 * themselves (no other file includes this; not an API).  Lowest first,
 * none calls a file above it (tests/arch/check-layers):
 *   dialog_base.c	the worker's table and the shared settings and
 *			counts (and what reads them), the strings of a
 *			dialog, the pure parts;
 *   dialog_bye.c	BYEs of our own, sent;
 *   dialog.c		the table, the end of calls and dialogs, their
 *			records, dialog.database and Redis, hangup and
 *			dialog_timeout;
 *   dialog_sub.c	subscriptions (RFC 6665);
 *   dialog_call.c	a call being set up and the dialogs its answers make;
 *   dialog_request.c	requests in a dialog.
 * The tiny helpers here are static inline: each file has its own copy,
 * and nothing so generically named leaves the module.
 */
#ifndef OSPREY_DIALOG_INT_H
#define OSPREY_DIALOG_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "dialog.h"
#include "hashtab.h"
#include "resolver.h"
#include "timer.h"
#include "txn.h"

#define DLG_MAX_RR	32
#define DLG_CAUSE_STOP	41	/* Q.850 NORMAL_TEMPORARY_FAILURE: we stop */
#define SUB_DEFAULT_S	3600	/* no Expires, no expires= */

struct dinv;

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
	bool			 recorded;	/* an early dialog of it
						   ended on the node that
						   adopted it, which wrote
						   the attempt's record */
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

/* The worker's own (dialog_base.c defines it). */
struct dialog_worker {
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
};
extern _Thread_local struct dialog_worker dialog_w;
#define D	dialog_w

/*
 * Shared: settings (changed while the workers are paused), counts
 * (dialog_base.c defines it).
 */
struct dialog_global {
	struct dialog_settings	 set;
	dialog_cdr_fn		*cdr;
	dialog_media_fn		*media_end;
	pthread_mutex_t		 mu;		/* lim */
	struct hashtab		 lim;
	bool			 lim_up;
	struct dialog_totals	 tot;		/* atomic */
};
extern struct dialog_global dialog_g;
#define G	dialog_g

#define CNT_ADD(f, n)	__atomic_add_fetch(&G.tot.f, (n), __ATOMIC_RELAXED)
#define CNT_SUB(f, n)	__atomic_sub_fetch(&G.tot.f, (n), __ATOMIC_RELAXED)

/*
 * One call dialog more (n > 0) or less in state st: with the cluster's
 * calls (by_state), or with the other nodes' passing through (transit).
 */
static inline void
state_count(const struct dialog *d, unsigned st, int n)
{
	uint64_t	*c = d->transit ? &G.tot.transit_by_state[st] :
	    &G.tot.by_state[st];

	if (n > 0)
		__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
	else
		__atomic_sub_fetch(c, 1, __ATOMIC_RELAXED);
}

static inline struct slice
str_get(const struct strs *s, enum dlg_str i)
{
	return ((struct slice){ s->s + s->off[i], s->off[i + 1] -
	    s->off[i] - 1 });
}

#define STR(x, i)	((x)->str.s + (x)->str.off[i])

static inline bool
slice_same(struct slice a, struct slice b)
{
	return (a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) ==
	    0));
}

/* dialog_base.c: the state (D, G), strings, the pure parts. */
size_t		 dialog_str_size(const struct slice *);
void		 dialog_str_fill(struct strs *, const struct slice *, char *);
void		 dialog_str_set(struct strs *, const struct slice *);
void		 dialog_str_all(const struct strs *, struct slice *);
struct slice	 dialog_routes_text(struct buf *, const struct slice *,
		    unsigned, unsigned, bool);
struct slice	 dialog_contact_uri(const struct sipmsg *);
struct slice	 dialog_hvalue(const struct sipmsg *, enum sip_hdr_id);

/* dialog_bye.c: our own BYEs. */
extern char	 dialog_bye_owner;	/* their owner: not NULL, nothing
					   else */
#define bye_owner	dialog_bye_owner
void		 dialog_bye_error(struct txn *);
void		 dialog_bye_gone(struct txn *);
void		 dbye_free(struct dbye *);
struct slice	 dialog_routes_first(struct slice);
void		 dialog_send_bye(struct dialog *, bool, const char *);

/* dialog.c: the table, what is written where, the end. */
void		 dialog_link(struct dialog *);
void		 dialog_account(struct dialog *);
void		 dialog_save(struct dialog *);
void		 dialog_str_replace(struct dialog *, enum dlg_str,
		    struct slice);
struct dialog	*dialog_find(struct slice, struct slice, struct slice);
void		 dialog_free(struct dialog *);
struct dialog	*dialog_of_call(const struct dialog_call *, struct slice *);
void		 dialog_confirm(struct dialog *, struct dialog_call *);
void		 sub_unpend(struct dialog_call *);
void		 sub_end(struct dialog *, const char *);
void		 dialog_end(struct dialog *, enum cdr_ended_by, int);
void		 dialog_early_stale(struct dialog *);
void		 dialog_timeout_fire(void *);

/* dialog_sub.c: subscriptions (RFC 6665). */
uint32_t	 sub_expires(const struct sipmsg *, uint32_t);
void		 sub_expire_in(struct dialog *, uint32_t);
void		 sub_response(struct dialog_call *, const struct sipmsg *,
		    const struct tp_addr *, struct tp_sock *);
struct dialog	*sub_notified(struct dialog_call *, const struct sipmsg *);
struct dialog_call *sub_pending(const struct sipmsg *);
int		 sub_request(struct dialog *, const struct sipmsg *, bool);

#endif
