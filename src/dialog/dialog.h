#ifndef OSPREY_DIALOG_H
#define OSPREY_DIALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "cdr.h"
#include "sipmsg.h"
#include "tp.h"

/*
 * Dialogs as a record-routing proxy sees them (RFC 3261 section 12; what
 * Kamailio's dialog module keeps).  Every message of a call reaches the
 * worker that owns its Call-ID (shard_of), so each worker has its own
 * table (thread-local) and a dialog lives with that worker.
 *
 * The proxy hands over an INVITE it record-routed (dialog_call_new), its
 * 1xx/2xx with a To tag (early, then confirmed dialogs, one per To tag),
 * its final failure (early dialogs end, a CDR of the attempt), and asks
 * about every in-dialog request that came back through our stamped
 * Route (dialog_request).  A dialog ends on a BYE, on
 * timers.dialog_timeout or `ospreyctl hangup` (Osprey sends the BYEs
 * itself, dialog_hangup), and a CDR goes to the function given to
 * dialog_set_cdr().
 *
 * A call another node of the cluster sends here through a path token of
 * ours (its phone's connection or NAT flow is this node's) is a transit
 * call (dialog_transit_new): tracked and routed as any, but the node it
 * entered the cluster by writes its record, counts it, holds its limits
 * and its place in Redis; here it is counted apart (transit_*).
 */

/* dialog.backend */
enum dialog_backend {
	DIALOG_BACKEND_LOCAL,
	DIALOG_BACKEND_REDIS		/* shared with the other nodes */
};

struct redis_settings;

struct dialog_settings {
	bool		 enable;
	int		 backend;	/* enum dialog_backend; at start */
	uint32_t	 timeout_s;	/* timers.dialog_timeout; 0: none */
	unsigned	 calls_per_user;	/* 0: no limit */
	unsigned	 calls_per_source;	/* 0: no limit */
};

enum dialog_state {
	DLG_EARLY,
	DLG_CONFIRMED,
	DLG_TERMINATED,
	DLG_NSTATES
};

/* An INVITE on its way (owned by the proxy's response context). */
struct dialog_call;

/* What `ospreyctl dialogs` lists (borrowed for the call). */
struct dialog_info {
	const char	*callid;
	const char	*caller;	/* From URI */
	const char	*callee;	/* To URI */
	const char	*caller_target;	/* Contact URIs */
	const char	*callee_target;
	const char	*identity;	/* authenticated user, "" none */
	enum dialog_state state;
	uint64_t	 age_ms;
	unsigned	 worker;
	bool		 media;		/* relayed by rtpengine */
	bool		 transit;	/* another node's call (path token) */
};

/* Every worker's figures together (atomic counters). */
#define DIALOG_NBUCKETS	8
struct dialog_totals {
	uint64_t	 by_state[DLG_NSTATES];	/* open now (terminated: 0) */
	uint64_t	 attempted;	/* INVITEs record-routed */
	uint64_t	 answered;	/* of those, a 2xx went upstream */
	uint64_t	 created;	/* dialogs confirmed */
	uint64_t	 ended[CDR_BY_ADMIN + 1];	/* by who ended them */
	uint64_t	 refused_403;	/* in-dialog to another target */
	uint64_t	 refused_481;	/* in-dialog, no dialog */
	uint64_t	 limited;	/* calls_per_user/source */
	uint64_t	 duration_bucket[DIALOG_NBUCKETS + 1];	/* +Inf last */
	uint64_t	 duration_count;
	uint64_t	 duration_sum_ms;
	uint64_t	 bytes;		/* held by the open dialogs */
	uint64_t	 subscriptions;	/* open now (not in by_state) */
	uint64_t	 adopted;	/* taken from Redis (another node's) */
	/*
	 * Another node's calls passing through here (dialog_transit_new):
	 * in none of the figures above, no record, no limits.
	 */
	uint64_t	 transit_by_state[DLG_NSTATES];	/* open now */
	uint64_t	 transit_attempted;	/* their INVITEs */
	uint64_t	 redis_errors;	/* writes, deletes, reads that failed */
};
extern const unsigned dialog_duration_bounds_s[DIALOG_NBUCKETS];

typedef void dialog_cdr_fn(const struct cdr *);
/*
 * A call relayed by rtpengine ended: Call-ID, the caller's tag, the To
 * tag of the dialog that ended (empty: the call failed or went unanswered).
 */
typedef void dialog_media_fn(struct slice, struct slice, struct slice);

/* Process-wide, before the workers start (and while they are paused). */
void	 dialog_set_settings(const struct dialog_settings *);
void	 dialog_set_cdr(dialog_cdr_fn *);
void	 dialog_set_media_end(dialog_media_fn *);
bool	 dialog_enabled(void);
bool	 dialog_limits_users(void);
bool	 dialog_persistent(void);
void	 dialog_share(const struct redis_settings *);
bool	 dialog_shared(void);
bool	 dialog_stamp_key(uint64_t key[2], uint32_t *gen);
void	 dialog_totals(struct dialog_totals *);

/* Each worker's own table. */
void	 dialog_init(struct event_base *, struct tp *);
void	 dialog_stop(void);		/* then the transactions go */
void	 dialog_shutdown(void);
unsigned dialog_count(void);

/* An INVITE record-routed out of dialog. */
int	 dialog_call_admit(struct slice user, const struct tp_addr *src,
	    char *err, size_t errlen);
struct dialog_call *dialog_call_new(const struct sipmsg *,
	    const struct tp_addr *src, struct tp_sock *in, struct slice user,
	    struct slice identity, const char stamp[17]);
struct dialog_call *dialog_transit_new(const struct sipmsg *,
	    const struct tp_addr *src, struct tp_sock *in,
	    const char stamp[17]);
bool	 dialog_call_transit(const struct dialog_call *);
void	 dialog_call_response(struct dialog_call *, const struct sipmsg *,
	    const struct tp_addr *callee, struct tp_sock *out);
void	 dialog_call_media(struct dialog_call *);
struct txn;
void	 dialog_call_invite(struct dialog_call *, const struct sipmsg *,
	    const struct txn *);
void	 dialog_call_final(struct dialog_call *, int code,
	    enum cdr_ended_by);
void	 dialog_call_free(struct dialog_call *);
void	 dialog_refused(const struct sipmsg *, const struct tp_addr *,
	    struct slice identity, int code);

/* In-dialog requests and the answers to target refreshes. */
int	 dialog_request(const struct sipmsg *, struct slice next,
	    char *err, size_t errlen);
int	 dialog_request_flow(const struct sipmsg *, struct slice next,
	    struct tp_addr *flow, char *err, size_t errlen);
void	 dialog_refresh(const struct sipmsg *resp);
bool	 dialog_route_taken(const struct sipmsg *, struct slice entry);
/* dialog.backend "redis": another node's dialog, asked of Redis. */
enum dialog_fetch_result {
	DLG_FETCH_DONE,		/* in the table now, or not in Redis */
	DLG_FETCH_FAILED,	/* Redis failed or did not answer */
	DLG_FETCH_GONE		/* the worker stops */
};
typedef void dialog_fetched_fn(void *, enum dialog_fetch_result);
int	 dialog_fetch(const struct sipmsg *, dialog_fetched_fn *, void *);
/* dialog.backend "redis": the CANCEL of another node's INVITE. */
typedef void dialog_cancel_fn(void *, int);
int	 dialog_cancel(const struct sipmsg *, const char *reason,
	    dialog_cancel_fn *, void *);
bool	 dialog_invite_response(const struct sipmsg *resp, struct slice next);
bool	 dialog_invite_ack(const struct sipmsg *);
/* dialog.backend "redis": an answer to another node's INVITE, no CANCEL. */
typedef void dialog_answer_fn(void *, bool);
int	 dialog_invite_fetch(const struct sipmsg *resp, struct slice next,
	    dialog_answer_fn *, void *);
void	 dialog_request_failed(const struct sipmsg *resp);
bool	 dialog_media(const struct sipmsg *resp);

/*
 * dialog.database: a stored dialog, handed at start to the worker that
 * owns its Call-ID now (dialog_restore() runs there and frees the blob).
 */
struct dialog_blob {
	size_t		 len;
	unsigned char	 rec[];
};
int	 dialog_blob_callid(const struct dialog_blob *, struct slice *);
void	 dialog_restore(void *);

/* Operations, on the worker that owns the Call-ID. */
int	 dialog_hangup(const char *callid, enum cdr_ended_by, char *err,
	    size_t errlen);
void	 dialog_foreach(void (*)(const struct dialog_info *, void *),
	    void *);

/* The pure parts, for the unit tests. */
void	 dialog_key(struct buf *, struct slice callid, struct slice a,
	    struct slice b);
bool	 dialog_uri_same(struct slice, struct slice);
unsigned dialog_rr_split(const struct slice *rr, unsigned n,
	    const char stamp[17], unsigned *after);
const char *dialog_state_name(enum dialog_state);

#endif
