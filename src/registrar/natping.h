#ifndef OSPREY_NATPING_H
#define OSPREY_NATPING_H

#include <stdint.h>

struct event_base;
struct tp;

/*
 * Keepalives for registered phones behind a NAT (osprey.conf(5) "nat"):
 * every interval an OPTIONS request (or a CRLF) to the binding's source
 * address over the socket or connection it registered on, so the NAT keeps
 * the mapping open and a dead phone is noticed.
 */
enum natping_mode {
	NATPING_OPTIONS = 0,	/* the default */
	NATPING_CRLF,
	NATPING_NONE
};

enum natping_which {
	NATPING_NAT = 0,	/* bindings found behind a NAT */
	NATPING_ALL
};

struct natping_settings {
	int		 keepalive;	/* enum natping_mode */
	int		 ping;		/* enum natping_which */
	uint32_t	 interval_ms;
	unsigned	 failures;	/* unanswered in a row: dropped; 0 never */
};

struct natping_stats {
	uint64_t	 sent;		/* keepalives sent */
	uint64_t	 failed;	/* OPTIONS unanswered, sends failed */
	uint64_t	 dropped;	/* bindings removed for that */
};

void	natping_start(struct event_base *, struct tp *);
void	natping_set(const struct natping_settings *);
void	natping_stop(void);
void	natping_stats(struct natping_stats *);
unsigned natping_nat_bindings(void);

#endif
