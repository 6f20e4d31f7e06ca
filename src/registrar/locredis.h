#ifndef OSPREY_LOCREDIS_H
#define OSPREY_LOCREDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "redis.h"

struct binding;
struct event_base;
struct reg_plan;
struct tp_addr;

/*
 * The location service shared by several nodes through Redis
 * (registrar.backend = "redis").  One hash per address-of-record,
 * "osprey:loc:{AOR}" (the hash tag keeps an AOR in one cluster slot), one
 * field per binding; the key expires with its last binding.  A REGISTER's
 * change is one Lua script (HDEL/HSET, the expired fields dropped, a new
 * version in the field "#v", PEXPIREAT, PUBLISH "NODE AOR VERSION\n" and
 * the bindings on osprey:loc) whose reply, the AOR's bindings, becomes
 * the local table's; other nodes take the bindings from the message, and
 * re-read the AOR (HGETALL) only when it came without them (over
 * LOCREDIS_MSG_CAP bytes).  A version no newer than the one a node holds
 * for the AOR changes nothing there.  Calls read the local table only.
 */

#define LOCREDIS_PREFIX		"osprey:loc:"
#define LOCREDIS_CHANNEL	"osprey:loc"
#define LOCREDIS_VERSION	'2'	/* '1': without ROUTE, still read */
#define LOCREDIS_VFIELD		"#v"	/* the AOR's version (no binding's
					   field begins with '#') */
#define LOCREDIS_MSG_CAP	"8192"	/* bytes of bindings in a message */

/* One binding as stored in its field's value; slices borrowed. */
struct locredis_row {
	struct slice	 contact;
	struct slice	 instance;	/* len 0: none */
	struct slice	 path;
	struct slice	 callid;
	struct slice	 user_agent;
	struct slice	 received;	/* "ip:port", "tcp:ip:port" */
	struct slice	 local;
	struct slice	 node;
	struct slice	 route;		/* "<sip:TOKEN@node;lr>" through the
					   node that took it, len 0: direct */
	int64_t		 expires_ms;	/* wall clock, Unix ms */
	uint32_t	 reg_id;
	uint32_t	 cseq;
	uint16_t	 q;
};

/* The other nodes' changes (osprey:loc) since the start. */
struct locredis_stats {
	uint64_t	applied;	/* taken from the message itself */
	uint64_t	reread;		/* without the bindings: HGETALL */
	uint64_t	stale;		/* a message or reply older than the
					   table's version: nothing done */
};

/* Done with a write: ok, else why it failed (for the log). */
typedef void locredis_done_fn(void *, bool, const char *);

int	 locredis_start(struct event_base *, const struct redis_settings *,
	     char *, size_t);
void	 locredis_stop(void);
bool	 locredis_same(const struct redis_settings *);
bool	 locredis_active(void);
const char *locredis_node(void);
void	 locredis_stats(struct locredis_stats *);
int	 locredis_write(struct slice, const struct reg_plan *,
	     locredis_done_fn *, void *);
void	 locredis_forget(const struct binding *);
void	 locredis_token(const struct tp_addr *, char *, size_t);
bool	 locredis_token_parse(struct slice, struct tp_addr *);

/* The format, exposed for the unit tests. */
void	 locredis_field(struct slice instance, uint32_t reg_id,
	     struct slice contact, struct buf *);
void	 locredis_encode(const struct locredis_row *, struct buf *);
int	 locredis_decode(const char *, size_t, struct locredis_row *);

#endif
