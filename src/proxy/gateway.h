#ifndef OSPREY_GATEWAY_H
#define OSPREY_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "resolver.h"
#include "route.h"
#include "timer.h"
#include "tp.h"
#include "txn.h"

struct gw_settings {
	uint32_t	 interval_ms;
	uint32_t	 timeout_ms;
	unsigned	 failures;	/* misses in a row before "down" */
};

/*
 * The health of one probed target address, shared by every route target
 * with that address.  Owned by the gateway list.
 */
struct gw {
	char		*uri;		/* owned: what the probe asks */
	struct dest	 dest;		/* a name is resolved for each probe */
	struct tp_addr	 addr;		/* the address probed last */
	bool		 resolving;
	struct resolve_req *dns;	/* while resolving */
	bool		 up;
	unsigned	 misses;
	uint64_t	 probes;
	struct timer	 tick;		/* next probe */
	struct timer	 wait;		/* this probe's deadline */
	struct txn	*ct;		/* the probe in flight */
	struct gw	*next;
};

void	gw_start(struct event_base *, struct tp *, struct route_table *,
	    const struct gw_settings *);
void	gw_stop(struct route_table *);
bool	gw_is_up(const struct gw *);
bool	gw_target_usable(const struct target *);
const struct gw *gw_list(void);

#endif
