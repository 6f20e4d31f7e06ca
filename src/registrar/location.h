#ifndef OSPREY_LOCATION_H
#define OSPREY_LOCATION_H

#include <stdbool.h>
#include <stdint.h>

#include "hashtab.h"
#include "sipmsg.h"
#include "tp.h"

struct event_base;

/*
 * The location service: address-of-record -> bindings, in a hash table in
 * memory.  Expiry runs off one min-heap and one timer; every change is
 * written through to the store (store.c) and reloaded at start.
 */

struct aor;

/* One Contact of an AOR; strings live in the same allocation. */
struct binding {
	struct binding	*next;		/* in its AOR */
	struct aor	*aor;
	const char	*contact;	/* the URI, without <> */
	const char	*instance;	/* +sip.instance, NULL: none */
	const char	*path;		/* Path values joined, NULL: none */
	const char	*callid;
	const char	*user_agent;	/* NULL: none */
	const char	*local;		/* our socket "ip:port", "" unknown */
	const char	*node;		/* the node that took it (registrar.
					   backend redis), NULL: this one */
	uint64_t	 expires_ms;	/* on timer_now_ms() */
	uint64_t	 id;		/* unique in this run */
	uint64_t	 ping_due_ms;	/* natping.c: next keepalive, 0: not
					   planned yet */
	struct tp_addr	 received;	/* where the REGISTER came from */
	uint32_t	 reg_id;
	uint32_t	 cseq;
	uint32_t	 heap_idx;
	uint16_t	 q;		/* per mille */
	bool		 nat;		/* behind a NAT (location_nat()) */
	bool		 ping_out;	/* natping.c: a keepalive unanswered */
	uint8_t		 ping_misses;	/* natping.c: in a row */
	char		 tail[];
};

struct aor {
	struct hnode	 node;
	struct binding	*b;		/* owned, a list */
	unsigned	 n;
	uint32_t	 gen;		/* location_replace()'s last */
	uint64_t	 ver;		/* registrar.backend redis: the
					   version in Redis it reflects,
					   0 unknown */
	char		 key[];		/* "user@domain" */
};

/* What a REGISTER says of one Contact; borrowed. */
struct binding_info {
	struct slice		 contact;
	struct slice		 instance;	/* len 0: none */
	struct slice		 path;
	struct slice		 callid;
	struct slice		 user_agent;
	uint32_t		 reg_id;
	uint32_t		 cseq;
	uint32_t		 expires_s;
	uint16_t		 q;
	bool			 nat;
	const struct tp_addr	*received;
	const char		*local;
	struct slice		 node;		/* len 0: this node */
};

void		 location_init(struct event_base *);
int		 location_load(void);
void		 location_shutdown(void);
struct aor	*location_find(struct slice);
struct binding	*location_match(const struct aor *,
		     const struct binding_info *);
struct binding	*location_save(struct slice, struct binding *,
		     const struct binding_info *);
void		 location_remove(struct binding *);
uint32_t	 binding_expires_in(const struct binding *);
unsigned	 location_count(void);
unsigned	 location_aors(void);
unsigned	 location_from_source(const struct tp_addr *);
void		 location_foreach(void (*)(void *, const struct binding *),
		     void *);
struct binding	*location_find_id(struct slice, uint64_t);
void		 location_walk(void (*)(void *, struct binding *), void *);
bool		 location_nat(struct slice, const struct tp_addr *);
bool		 location_nat_host(struct slice, uint16_t,
		     const struct tp_addr *);
void		 location_addr_format(const struct tp_addr *, char *, size_t);
void		 location_replace(struct slice, const struct binding_info *,
		     unsigned, uint32_t);
void		 location_sweep(uint32_t);
void		 location_read_lock(void);
void		 location_write_lock(void);
void		 location_unlock(void);

#endif
