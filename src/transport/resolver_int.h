#ifndef OSPREY_RESOLVER_INT_H
#define OSPREY_RESOLVER_INT_H

/*
 * The inside of resolver.c that its unit tests (tests/unit/test_resolver.c)
 * reach directly: the RFC 3263 decisions that need no network (the first
 * step, NAPTR selection, SRV names, RFC 2782 order), the TTL of an answer
 * and the answer cache.  Nothing else includes this header.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resolver.h"
#include "tp.h"

#define RESOLVER_MAX_SRV	16	/* SRV records kept from one answer */
#define RESOLVER_MAX_NAPTR	16	/* NAPTR records kept from one answer */
#define RESOLVER_MAX_SETS	6	/* SRV names asked for one lookup */
#define RESOLVER_CACHE_MAX	1024	/* cached answers */
#define RESOLVER_TTL_MAX	3600	/* seconds an answer is kept at most */
#define RESOLVER_NEG_TTL	5	/* seconds "no such record" is kept */

/* Cache and query types: RESOLVER_T_ADDR is A and AAAA together. */
#define RESOLVER_T_ADDR		0
#define RESOLVER_T_SRV		33
#define RESOLVER_T_NAPTR	35

struct resolver_srv {
	uint16_t	 prio;
	uint16_t	 weight;
	uint16_t	 port;
	char		 target[256];	/* "" for "." */
};

struct resolver_naptr {
	uint16_t	 order;
	uint16_t	 pref;
	char		 flags[16];
	char		 service[32];
	bool		 regexp;	/* a regexp field that is not empty */
	char		 replacement[256];	/* "" for "." */
};

/* An SRV name to ask, and the transport its records are reached over. */
struct resolver_srvname {
	char		 name[256];
	uint8_t		 proto;		/* enum tp_proto */
};

enum resolver_step {
	RESOLVER_NUMERIC,	/* plan.addr is the answer */
	RESOLVER_ADDR,		/* A/AAAA of the host */
	RESOLVER_SRV,		/* SRV of srv_name(host, plan.proto) */
	RESOLVER_NAPTR		/* NAPTR of the host */
};

/*
 * The first step for a query.  proto and port are the transport and port
 * of an address or of A/AAAA (for SRV and NAPTR: those used when there is
 * no SRV record).
 */
struct resolver_plan {
	enum resolver_step	 step;
	uint8_t			 proto;
	uint16_t		 port;
	struct tp_addr		 addr;		/* RESOLVER_NUMERIC */
};

/* 0, or -1 with *err (static) when the query cannot be resolved. */
int	 resolver_plan(const struct resolve_query *, struct resolver_plan *,
	    const char **);
/* "_sip._udp.host" and so on; -1 for WS, WSS, or a name too long. */
int	 resolver_srv_name(const char *, unsigned, char *, size_t);
/*
 * The SRV names that n NAPTR records of host lead to (RFC 3263 4.1): the
 * usable ones (flags "s", no regexp, a SIP service we can send on, SIPS+
 * only for sips) by order then preference, at most max into out.
 */
unsigned resolver_naptr_select(const struct resolver_naptr *, unsigned,
	    unsigned, bool, struct resolver_srvname *, unsigned);
/* Without NAPTR: the SRV names of host to ask, in our order. */
unsigned resolver_srv_fallback(const char *, unsigned, bool,
	    struct resolver_srvname *, unsigned);
/* Order n records to try: priority, then weighted draws with rnd(). */
void	 resolver_srv_order(struct resolver_srv *, unsigned, long (*)(void));
/*
 * The smallest TTL among the answers of type (or CNAME) in the DNS message
 * p[0..len), a TTL with the top bit set taken as 0 (RFC 2181 8); 0 when
 * there is none.  -1 when the message does not hold together.  (c-ares
 * 1.18 gives no TTL with SRV and NAPTR records.)
 */
int	 resolver_answer_ttl(const unsigned char *, int, unsigned,
	    uint32_t *);

/*
 * The cache of answers by name and type.  n == 0 records a name without
 * such records (kept RESOLVER_NEG_TTL seconds at most); recs are n
 * struct tp_addr (port 0), resolver_srv or resolver_naptr.  get returns
 * false on a miss; *recs stays the cache's until the next cache call.
 */
bool	 resolver_cache_get(const char *, unsigned, const void **,
	    unsigned *);
void	 resolver_cache_put(const char *, unsigned, const void *, unsigned,
	    uint32_t);
unsigned resolver_cache_size(void);

#endif
