#ifndef OSPREY_PROXY_H
#define OSPREY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route.h"
#include "tp.h"
#include "txn.h"

/*
 * What the proxy core takes from the config.  Once handed over with
 * proxy_settings_take() it belongs to the proxy and is reference counted:
 * a reload swaps in a new one while calls in progress keep the routes
 * they started with.
 */
struct proxy_settings {
	unsigned		  refs;
	char			**domains;
	unsigned		  ndomains;
	bool			  relay;
	bool			  record_route;
	uint32_t		  cancel_ms;
	size_t			  max_message_size;
	uint32_t		  udp_mtu;	/* larger: TCP (18.1.1); 0 never */
	unsigned		  max_transactions;	/* in progress; then 503 */
	size_t			  max_transaction_memory; /* bytes; 0: none */
	struct route_table	  routes;
	uint32_t		  probe_interval_ms;
	uint32_t		  probe_timeout_ms;
	unsigned		  probe_failures;
};

/* Counters for ospreyctl and /metrics; codes index 100..699. */
struct proxy_stats {
	uint64_t	requests_in[SM_COUNT];	/* valid ones, by method */
	uint64_t	responses_in[700];	/* from downstream, by code */
	uint64_t	responses_out[700];	/* sent upstream, by code */
	uint64_t	generated[700];		/* of those, made by us */
	uint64_t	finals_by_cause[128];	/* >= 300 sent, by Q.850 */
	uint64_t	challenges[2];		/* ours: 401, 407 (no cause) */
	uint64_t	rejected;		/* failed validation */
	uint64_t	parse_errors;		/* could not be parsed */
	uint64_t	dropped;		/* silently (unmatched ...) */
	uint64_t	stateless_relayed;	/* unmatched, ours: sent on */
	uint64_t	cancels_relayed;
	uint64_t	sent_481;
	uint64_t	sent_487;
	uint64_t	overloaded;		/* 503: max_transactions */
};

void	proxy_init(struct event_base *, struct tp *, struct proxy_settings *,
	    const struct txn_settings *);
struct proxy_settings *proxy_settings_take(struct proxy_settings *);
struct proxy_settings *proxy_settings_ref(struct proxy_settings *);
void	proxy_set_settings(struct proxy_settings *);
struct proxy_settings *proxy_settings(void);
void	proxy_stop_accepting(void);
int	proxy_cancel_call(const char *, uint32_t, char *, size_t);
unsigned proxy_calls_pending(void);
void	proxy_shutdown(void);
/* dialog.c calls it: */
void	proxy_media_end(struct slice, struct slice, struct slice);
void	proxy_recv(void *, struct tp_sock *, const struct tp_addr *,
	    const char *, size_t);
const struct proxy_stats *proxy_stats(void);

/* RFC 3261 16.7 best response: lower wins (proxy_reply.c). */
int	proxy_reply_rank(int);

#endif
