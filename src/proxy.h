#ifndef OSPREY_PROXY_H
#define OSPREY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route.h"
#include "tp.h"
#include "txn.h"

/* What the proxy core takes from the config; owned by struct conf. */
struct proxy_settings {
	char			**domains;
	unsigned		  ndomains;
	bool			  relay;
	bool			  record_route;
	uint32_t		  cancel_ms;
	size_t			  max_message_size;
	struct route_table	  routes;
	uint32_t		  probe_interval_ms;
	uint32_t		  probe_timeout_ms;
	unsigned		  probe_failures;
};

struct proxy_stats {
	uint64_t	requests;
	uint64_t	responses;
	uint64_t	parse_errors;
	uint64_t	dropped;
	uint64_t	cancels_relayed;
	uint64_t	sent_481;
	uint64_t	sent_487;
};

void	proxy_init(struct event_base *, struct tp *,
	    const struct proxy_settings *, const struct txn_settings *);
void	proxy_set_settings(const struct proxy_settings *);
void	proxy_shutdown(void);
void	proxy_recv(void *, struct tp_sock *, const struct tp_addr *,
	    const char *, size_t);
const struct proxy_stats *proxy_stats(void);

/* RFC 3261 16.7 best response: lower wins. */
int	proxy_reply_rank(int);

#endif
