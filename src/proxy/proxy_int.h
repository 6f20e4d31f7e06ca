#ifndef OSPREY_PROXY_INT_H
#define OSPREY_PROXY_INT_H

/*
 * The internals of the proxy core, shared by its files and the unit tests.
 * Calls run one way (dispatch -> front doors -> fork -> reply -> context):
 *
 *	proxy.c			dispatch: validate, decide, authorize
 *	proxy_register.c	REGISTER for one of our domains
 *	proxy_fork.c		branches, forking, the client transactions
 *	proxy_reply.c		responses: generated, relayed, the best one
 *	proxy_media.c		rtpengine: offer, answer, delete of a call
 *	proxy_ctx.c		the shared state, the response context, ids
 *
 * A file calls only the files below it; nothing calls back up (events
 * come up through the callbacks proxy.c registers with the txn layer).
 */

#include "dialog.h"
#include "location.h"
#include "proxy.h"
#include "sipbuild.h"
#include "resolver.h"
#include "rtpengine.h"
#include "timer.h"

#define MAX_ROUTES	32
#define MAX_FAILURE_DEPTH 4
#define MAX_BRANCHES	64

/* One forwarding attempt; owned by its response context. */
struct branch {
	struct pctx		*ctx;
	struct txn		*ct;		/* NULL once terminated */
	struct sipmsg		*final;		/* owned: 3xx-6xx for 16.7 */
	struct timer		*timeout;	/* owned: the target's own
						   timeout, if it has one */
	const struct target	*target;	/* NULL: not from a route */
	char			*ruri;		/* owned: the R-URI sent */
	struct resolve_req	*dns;		/* while resolving */
	struct tp_addr		*more;		/* owned: the next ones */
	const struct slice	*routes;	/* its own Route set (Path) */
	struct tp_sock		*sock;		/* send from this one */
	char			*tls_name;	/* owned: the name resolved */
	int			 code;		/* final status, 0 pending */
	unsigned		 idx;
	unsigned		 nmore;
	unsigned		 nroutes;
	struct txn_addr		 addr;		/* the address in use */
	bool			 replaced;	/* by the next address */
	bool			 recursed;	/* on all its Contacts (3xx) */
	bool			 may_upgrade;	/* no transport asked: 18.1.1 */
	bool			 upgraded;	/* UDP became TCP for its size */
	char			 ruri_in[64];	/* ruri when it fits */
};

#define LOC_MAX_PATH	8

/* A contact of a registered user, copied when the request forks. */
struct loc_target {
	char			*uri;		/* owned */
	char			*path;		/* owned, NULL: none */
	struct slice		 routes[LOC_MAX_PATH];	/* into path */
	unsigned		 nroutes;
	struct tp_addr		 addr;		/* where it registered from */
	char			 local[TP_NAME_LEN];
	uint16_t		 q;
	bool			 nat;		/* binding.nat */
};

struct pctx;
struct hop;

/* How the fork goes on once rtpengine answered (proxy_media.c). */
typedef void proxy_media_go_fn(struct pctx *, int code);
typedef void proxy_media_resp_fn(struct pctx *, unsigned slot,
    const struct sipmsg *);

/* A 1xx or 2xx waiting for rtpengine's answer; a 2xx kept as relayed. */
struct pmedia_ans {
	struct pmedia_ans	*next;
	struct pctx		*ctx;
	struct rtpe_req		*req;		/* while asked */
	struct sipmsg		*resp;		/* owned: then as relayed */
	proxy_media_resp_fn	*go;
	unsigned		 slot;		/* the branch */
	bool			 late;		/* the callee's offer */
	bool			 released;	/* its branch deleted */
};

/*
 * The media relay of an INVITE (owned by its context; NULL for calls
 * rtpengine does not relay).  Until the offer is answered the branches
 * wait: what to start is kept here.
 */
struct pmedia {
	struct rtpe_req		*offer;		/* while asked */
	struct sipmsg		*fwd;		/* owned: the INVITE with
						   rtpengine's SDP */
	struct pmedia_ans	*ans;		/* owned, a list */
	proxy_media_go_fn	*go;
	struct route		*route;		/* DEC_ROUTE, borrowed */
	struct slice		 ruri;		/* DEC_HOP: into the request */
	struct dest		 dest;		/* DEC_HOP */
	uint8_t			 d;		/* enum decision */
	bool			 relayed;	/* the offer went through */
	bool			 late;		/* no SDP: the offer comes
						   in a 1xx or 2xx, the
						   answer in the ACK or
						   PRACK */
	bool			 answer;	/* a PRACK with the answer
						   to such an offer */
	uint16_t		 held;		/* 2xx waiting for an answer */
};

/*
 * The response context of one forwarded request (RFC 3261 16.7).  It lives
 * while its server transaction or any client transaction points at it.
 */
struct pctx {
	struct pctx		*lprev, *lnext;	/* P.ctxs: every live one */
	struct txn		*st;
	struct branch		**br;		/* owned */
	struct timer		*cancel_timer;	/* owned: once cancelled */
	struct tp_sock		*in_sock;
	struct route		*route;		/* borrowed from the config */
	struct slice		*routes;	/* owned, nroutes; into st's
						   request, until settled */
	char			*strict_ruri;	/* owned, see proxy_routes() */
	struct proxy_settings	*set;		/* a reference */
	struct dialog_call	*call;		/* owned: an INVITE we
						   record-route (dialog.h) */
	struct loc_target	*loc;		/* owned: highest q first */
	struct pmedia		*media;		/* owned: rtpengine's */
	uint16_t		 nbr;		/* <= MAX_BRANCHES */
	uint16_t		 refs;		/* st, branches, lookups */
	uint16_t		 nroutes;	/* <= MAX_ROUTES */
	uint16_t		 starting;	/* forking: no evaluation yet */
	uint16_t		 nloc;		/* <= max_contacts (64) */
	uint16_t		 loc_next;	/* the next q group */
	struct txn_addr		 up_peer;	/* for 2xx after the st */
	uint8_t			 order[ROUTE_MAX_TARGETS];
	uint8_t			 norder;
	uint8_t			 next;		/* serial: next in order */
	uint8_t			 failure_depth;
	uint8_t			 redirects;
	bool			 cancelled;	/* the caller sent CANCEL */
	bool			 answered;	/* a 2xx went upstream */
	bool			 final_sent;
	bool			 settled;	/* no branch can start now */
	bool			 done;		/* counted out of pending */
	/*
	 * Most contexts have one branch: it lives here, in the context's
	 * own allocation (br is br_in then), and so does topvia.
	 */
	struct branch		*br_in[1];
	struct branch		 first;
	char			 topvia[];	/* the caller's Via, fixed */
};

/* proxy_ctx.c: the state every file of the core shares. */
struct proxy_state {
	struct event_base	*base;
	struct tp		*tp;
	struct proxy_settings	*cur;		/* for new requests */
	struct proxy_stats	 stats;
	uint64_t		 seed[2];
	uint64_t		 bkey[2];	/* the MAC in our branches */
	uint64_t		 serial;
	unsigned		 pending;	/* contexts without a final */
	struct pctx		*ctxs;		/* every live context */
	bool			 stopping;
};
extern _Thread_local struct proxy_state P;	/* each worker's own */

void	 proxy_ctx_init(struct event_base *, struct tp *,
	    struct proxy_settings *);
void	 proxy_ctx_settings_unref(struct proxy_settings *);
struct pctx *proxy_ctx_new(struct txn *, struct tp_sock *,
	    const struct tp_addr *);
void	 proxy_ctx_timer_stop(struct timer *);
void	 proxy_ctx_done(struct pctx *);
void	 proxy_ctx_unref(struct pctx *);
void	 proxy_ctx_drop_lookups(void);
const char *proxy_ctx_callid(const struct pctx *, char *, size_t);
void	 proxy_ctx_token(char *, size_t);
int	 proxy_ctx_via_dest(struct slice, struct dest *);
void	 proxy_ctx_branch(const char *, char *, size_t);
bool	 proxy_ctx_trusted(const struct tp_addr *);
void	 proxy_ctx_flow_token(const struct tp_addr *, char *, size_t);
bool	 proxy_ctx_flow_parse(struct slice, struct tp_addr *);

/* tp_addr.flags of a flow named by a path token (locredis_token()). */
#define PROXY_ADDR_PATH	0x80
bool	 proxy_ctx_branch_ours(struct slice, struct slice, struct dest *);
void	 proxy_ctx_sl_tag(const struct sipmsg *, char *, size_t);
bool	 proxy_ctx_sl_tag_ours(struct slice);
void	 proxy_ctx_topvia_buf(const struct sipmsg *, const struct tp_addr *,
	    struct buf *);
void	 proxy_ctx_count_sent(int, bool);
void	 proxy_ctx_count_challenge(int);
bool	 proxy_ctx_domain(struct slice, uint16_t, struct slice *);
bool	 proxy_ctx_identity(struct slice, struct slice *);
void	 proxy_ctx_dialog_stamp(struct slice, struct slice, char[17]);
bool	 proxy_ctx_dialog_stamp_ok(struct slice, struct slice, struct slice);
struct slice proxy_ctx_run(void);
void	 proxy_ctx_send(struct tp_sock *, const struct dest *, char *,
	    size_t);

/* proxy_reply.c: responses. */
void	 proxy_reply_stateless(const struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *, int, const char *, const char *);
void	 proxy_reply_challenge(const struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *, int, const char *);
void	 proxy_reply_st(struct txn *, const char *, int, const char *,
	    const char *);
void	 proxy_reply_st_to(struct txn *, const struct sipmsg *,
	    const struct tp_addr *, int, const char *, const char *);
void	 proxy_reply_new_st(struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *, int, const char *, const char *);
void	 proxy_reply_relay(struct pctx *, const struct sipmsg *, int,
	    const char *);
bool	 proxy_reply_relayable(const struct sipmsg *);
bool	 proxy_reply_stray(const struct sipmsg *, struct tp_sock *);
struct branch *proxy_reply_best(struct pctx *, bool *);
void	 proxy_reply_finish(struct pctx *);

/* proxy_media.c: the media relay (rtpengine) of a call. */
bool	 proxy_media_wanted(const struct sipmsg *, const struct tp_addr *,
	    const struct pctx *);
void	 proxy_media_offer(struct pctx *, const struct sipmsg *,
	    const struct tp_addr *, const struct hop *, proxy_media_go_fn *);
bool	 proxy_media_answer(struct pctx *, unsigned,
	    const struct sipmsg *, const struct tp_addr *,
	    proxy_media_resp_fn *);
bool	 proxy_media_stray(const struct sipmsg *, struct tp_sock *);
void	 proxy_media_branch_done(struct pctx *, unsigned);
typedef void proxy_media_ack_fn(const struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *);
bool	 proxy_media_ack(const struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *, proxy_media_ack_fn *);

/* proxy_fork.c: branches. */
extern const struct txn_ops proxy_fork_txn_ops;
char	*proxy_fork_bytes(const struct sipmsg *, const struct tp_sock *,
	    const struct tp_sock *, const struct tp_addr *,
	    const struct tp_addr *, const char *, const char *, struct slice,
	    const struct slice *, unsigned, size_t *);
struct pctx *proxy_fork_new(struct txn *, struct tp_sock *,
	    const struct tp_addr *);
void	 proxy_fork_hop(struct pctx *, struct slice, const struct dest *);
void	 proxy_fork_route(struct pctx *, struct route *);
void	 proxy_fork_location_copy(struct pctx *, const struct aor *);
void	 proxy_fork_location_start(struct pctx *);
void	 proxy_fork_resume(struct pctx *, int);
void	 proxy_fork_cancel(struct pctx *, const char *);

/* proxy_register.c: REGISTER for one of our domains (RFC 3261 10.3). */
void	 proxy_register_request(struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *);

/* proxy.c: where a request goes (16.4-16.5). */
enum decision {
	DEC_REJECT,	/* answer with code */
	DEC_FOR_US,	/* OPTIONS to the proxy itself */
	DEC_HOP,	/* one next hop: Route set, in dialog, relay */
	DEC_ROUTE,	/* a route from the config */
	DEC_REGISTER,	/* REGISTER for one of our domains */
	DEC_LOCATION,	/* a user of ours: the location service */
};

/*
 * What proxy_decide() found.  Only the fields of its decision are set
 * (nothing is zeroed wholesale: the buffers are large); strict is owned.
 */
struct hop {
	enum decision	 d;
	int		 code;		/* DEC_REJECT (and 0 otherwise) */
	char		 err[160];	/* DEC_REJECT: the reason */
	struct slice	 ruri;		/* the Request-URI to send */
	struct slice	 routes[MAX_ROUTES];	/* the Route set to send */
	unsigned	 nroutes;
	char		*strict;	/* owned: routes may point into it */
	struct dest	 dest;		/* DEC_HOP */
	bool		 foreign;	/* not one of our domains: relaying */
	bool		 dialog;	/* came back through our Record-Route */
	bool		 tracked;	/* with an INVITE dialog's stamp */
	bool		 tracked_old;	/* made by an earlier run */
	bool		 to_us;		/* in dialog, R-URI a listen address
					   with a user part */
	struct slice	 identity;	/* the authenticated user, if any */
	bool		 limited;	/* refused by limits: Retry-After */
	struct route	*route;		/* DEC_ROUTE */
	struct slice	 user;		/* DEC_LOCATION */
	struct slice	 domain;	/* DEC_LOCATION: ours, canonical */
	/* Parsed once by proxy_decide(), for its later steps. */
	struct sipuri	 ru;		/* ruri, when ru_rc is 1 */
	int		 ru_rc;		/* 0 not parsed, 1 good, -1 bad */
	int		 side_proto;	/* our last Route's transport, -1 */
	struct tp_addr	 side_flow;	/* and its flow (len 0: none) */
	bool		 path;		/* that flow from a path token: a
					   node's call for a phone we hold */
};

int	 proxy_routes(const struct sipmsg *, struct slice *, unsigned *,
	    struct slice *, bool *, bool *, char **);
enum decision proxy_decide(const struct sipmsg *, struct hop *);

#endif
