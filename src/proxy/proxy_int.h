#ifndef OSPREY_PROXY_INT_H
#define OSPREY_PROXY_INT_H

/* Shared by proxy.c, proxy_fork.c and proxy_reply.c only. */

#include "location.h"
#include "proxy.h"
#include "sipbuild.h"
#include "resolver.h"
#include "timer.h"

#define MAX_ROUTES	32
#define MAX_FAILURE_DEPTH 4
#define MAX_BRANCHES	64

/* One forwarding attempt; owned by its response context. */
struct branch {
	struct pctx		*ctx;
	struct txn		*ct;		/* NULL once terminated */
	int			 code;		/* final status, 0 pending */
	struct sipmsg		*final;		/* owned: 3xx-6xx for 16.7 */
	struct timer		 timeout;	/* the target's own timeout */
	const struct target	*target;	/* NULL: not from a route */
	char			*ruri;		/* owned: the R-URI sent */
	unsigned		 idx;
	struct resolve_req	*dns;		/* while resolving */
	struct tp_addr		 addr;		/* the address in use */
	struct tp_addr		*more;		/* owned: the next ones */
	unsigned		 nmore;
	bool			 replaced;	/* by the next address */
	const struct slice	*routes;	/* its own Route set (Path) */
	unsigned		 nroutes;
	struct tp_sock		*sock;		/* send from this one */
};

#define LOC_MAX_PATH	8

/* A contact of a registered user, copied when the request forks. */
struct loc_target {
	char			*uri;		/* owned */
	char			*path;		/* owned, NULL: none */
	struct slice		 routes[LOC_MAX_PATH];	/* into path */
	unsigned		 nroutes;
	struct tp_addr		 addr;		/* where it registered from */
	char			 local[TP_HOSTPORT_LEN];
	uint16_t		 q;
};

/*
 * The response context of one forwarded request (RFC 3261 16.7).  It lives
 * while its server transaction or any client transaction points at it.
 */
struct pctx {
	struct txn		*st;
	struct branch		**br;		/* owned */
	unsigned		 nbr;
	unsigned		 refs;
	bool			 cancelled;	/* the caller sent CANCEL */
	bool			 answered;	/* a 2xx went upstream */
	bool			 final_sent;
	struct timer		 cancel_timer;
	char			*topvia;	/* owned: caller's Via, fixed */
	struct tp_sock		*in_sock;
	struct tp_addr		 up_peer;	/* for 2xx after the st */
	struct route		*route;		/* borrowed from the config */
	unsigned		 order[ROUTE_MAX_TARGETS];
	unsigned		 norder;
	unsigned		 next;		/* serial: next in order */
	unsigned		 failure_depth;
	unsigned		 redirects;
	struct slice		 routes[MAX_ROUTES];	/* into st->req */
	unsigned		 nroutes;
	char			*strict_ruri;	/* owned, see proxy_routes() */
	unsigned		 starting;	/* inside fork_route() */
	struct proxy_settings	*set;		/* a reference */
	bool			 done;		/* counted out of pending */
	struct loc_target	*loc;		/* owned: highest q first */
	unsigned		 nloc;
	unsigned		 loc_next;	/* the next q group */
};

/* proxy.c */
struct proxy_state {
	struct event_base	*base;
	struct tp		*tp;
	struct proxy_settings	*cur;		/* for new requests */
	struct proxy_stats	 stats;
	uint64_t		 seed[2];
	uint64_t		 serial;
	unsigned		 pending;	/* contexts without a final */
	bool			 stopping;
};
extern struct proxy_state P;

void	 proxy_token(char *, size_t);
void	 proxy_sl_tag(const struct sipmsg *, char *, size_t);
void	 proxy_count_sent(int, bool);
char	*proxy_forward_bytes(const struct sipmsg *, const struct tp_sock *,
	    const struct tp_sock *, const char *, const char *, struct slice,
	    const struct slice *, unsigned, size_t *);
char	*proxy_make_topvia(const struct sipmsg *, const struct tp_addr *);
const char *pctx_callid(const struct pctx *, char *, size_t);

/* proxy_fork.c */
struct pctx *fork_ctx_new(struct txn *, struct tp_sock *,
	    const struct tp_addr *);
void	 fork_ctx_unref(struct pctx *);
int	 fork_start(struct pctx *, struct slice, const struct dest *,
	    const struct target *);
bool	 fork_next_addr(struct branch *);
void	 fork_route(struct pctx *, struct route *);
void	 fork_location(struct pctx *, const struct aor *);
void	 fork_cancel(struct pctx *, const char *);
void	 fork_cancel_others(struct pctx *, const char *);
void	 fork_branch_done(struct branch *);
void	 fork_evaluate(struct pctx *);
void	 fork_ctx_done(struct pctx *);

/* proxy_reply.c */
void	 reply_stateless(const struct sipmsg *, struct tp_sock *,
	    const struct tp_addr *, int, const char *, const char *);
void	 reply_st(struct txn *, const char *, int, const char *,
	    const char *);
void	 reply_relay(struct pctx *, const struct sipmsg *, int,
	    const char *);
bool	 reply_relayable(const struct sipmsg *);
void	 reply_finish(struct pctx *);
struct branch *reply_best(struct pctx *, bool *);

#endif
