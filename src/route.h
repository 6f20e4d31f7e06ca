#ifndef OSPREY_ROUTE_H
#define OSPREY_ROUTE_H

#include <regex.h>
#include <stdbool.h>

#include "sipmsg.h"
#include "tp.h"

#define ROUTE_MAX_TARGETS	16

/* A next hop from the config; uri is owned, parsed points into it. */
struct target {
	char		*uri;
	struct sipuri	 parsed;
	struct tp_addr	 addr;		/* resolved when the config loads */
};

struct route {
	char		*user_src;	/* owned, NULL: any user */
	regex_t		 user_re;
	char		*domain_src;	/* owned, NULL: any host */
	regex_t		 domain_re;
	struct target	 targets[ROUTE_MAX_TARGETS];
	unsigned	 ntargets;
	int		 line;
};

struct route_table {
	struct route	*r;		/* owned */
	unsigned	 n;
};

struct route	*route_add(struct route_table *, const char *, const char *,
		     int, char *, size_t);
int		 route_add_target(struct route *, const char *, char *, size_t);
const struct route *route_match(const struct route_table *, struct slice,
		     struct slice);
void		 route_table_free(struct route_table *);

#endif
