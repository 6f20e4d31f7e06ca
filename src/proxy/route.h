#ifndef OSPREY_ROUTE_H
#define OSPREY_ROUTE_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "sipcause.h"
#include "sipmsg.h"
#include "tp.h"

#define ROUTE_MAX_TARGETS	16
#define ROUTE_MAX_RULES		16

enum fork_mode {
	FORK_PARALLEL,
	FORK_SERIAL,
};

enum balance {
	BAL_ORDER,		/* as listed */
	BAL_WEIGHT,		/* random, weighted */
	BAL_ROUND_ROBIN,
	BAL_HASH,		/* hash of the Call-ID */
};

struct gw;

/*
 * Where to send: a numeric address, or a host name for RFC 3263 (port 0:
 * look up SRV first).
 */
struct dest {
	bool		 numeric;
	struct tp_addr	 addr;		/* numeric, with its transport */
	char		 host[256];	/* a name */
	uint16_t	 port;
	int		 proto;		/* a name: ;transport=, sips: TLS; -1 */
	bool		 sips;
};

/* A next hop from the config; uri is owned, parsed points into it. */
struct target {
	char		*uri;
	struct sipuri	 parsed;
	struct dest	 dest;
	uint32_t	 timeout_ms;	/* 0: Timer B / C only */
	unsigned	 weight;
	struct gw	*gw;		/* health, when probed */
};

struct failure_rule {
	struct codeset	 codes;
	char		*route_name;	/* owned */
	struct route	*route;		/* resolved after loading */
};

struct route {
	char		*name;		/* owned, may be NULL */
	char		*user_src;	/* owned, NULL: any user */
	regex_t		 user_re;
	char		*domain_src;	/* owned, NULL: any host */
	regex_t		 domain_re;
	bool		 matchable;	/* false: only reached by on_failure */
	enum fork_mode	 fork;
	enum balance	 balance;
	struct target	 targets[ROUTE_MAX_TARGETS];
	unsigned	 ntargets;
	struct codeset	 failover;	/* serial: try the next target on these */
	struct failure_rule on_failure[ROUTE_MAX_RULES];
	unsigned	 nfailure;
	bool		 recurse;	/* follow 3xx Contacts */
	unsigned	 max_redirects;
	bool		 probe;		/* OPTIONS health checks */
	bool		 public;	/* strangers may use it under auth */
	unsigned	 rr_next;	/* round-robin position */
	int		 line;
};

struct route_table {
	struct route	**r;		/* owned */
	unsigned	  n;
};

struct route	*route_add(struct route_table *, const char *, const char *,
		     int, char *, size_t);
int		 route_add_target(struct route *, const char *, char *, size_t);
int		 route_link(struct route_table *, int *, char *, size_t);
struct route	*route_find(const struct route_table *, const char *);
const struct route *route_match(const struct route_table *, struct slice,
		     struct slice);
unsigned	 route_order(struct route *, struct slice, unsigned *);
void		 route_table_free(struct route_table *);
int		 dest_addr_set(struct tp_addr *, struct slice, uint16_t);
int		 dest_from_uri(struct slice, struct dest *, char *, size_t);
int		 dest_from_sipuri(const struct sipuri *, struct dest *, char *,
		     size_t);
const char	*route_fork_name(enum fork_mode);
const char	*route_balance_name(enum balance);

#endif
