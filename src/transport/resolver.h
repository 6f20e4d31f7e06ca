#ifndef OSPREY_RESOLVER_H
#define OSPREY_RESOLVER_H

#include <stdint.h>

#include <event2/event.h>

#include "timer.h"
#include "tp.h"

#define RESOLVE_MAX_ADDRS	16
#define RESOLVE_MAX_NS		4

struct resolver_settings {
	struct tp_addr	 ns[RESOLVE_MAX_NS];	/* none: /etc/resolv.conf */
	unsigned	 nns;
	uint32_t	 timeout_ms;
};

/* addrs in the order to try them; n == 0 with err when nothing came. */
typedef void resolve_cb(void *, const struct tp_addr *, unsigned,
    const char *);

struct resolve_req;

void		 resolver_init(struct event_base *,
		     const struct resolver_settings *);
void		 resolver_shutdown(void);
struct resolve_req *resolver_lookup(const char *, uint16_t, resolve_cb *,
		     void *);
void		 resolver_cancel(struct resolve_req *);
int		 resolver_parse_ns(const char *, struct tp_addr *);

#endif
