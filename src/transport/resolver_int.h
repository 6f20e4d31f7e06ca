#ifndef OSPREY_RESOLVER_INT_H
#define OSPREY_RESOLVER_INT_H

/*
 * The inside of resolver.c that its unit tests (tests/unit/test_resolver.c)
 * reach directly: DNS wire parsing, RFC 2782 ordering and the answer cache.
 * Nothing else includes this header.
 */

#include <stddef.h>
#include <stdint.h>

#include "tp.h"

#define RESOLVER_MAX_SRV	16	/* SRV records kept from one answer */
#define RESOLVER_CACHE_MAX	1024	/* cached answers */
#define RESOLVER_SRV_TTL_MAX	3600	/* seconds an SRV answer is kept */

struct resolver_srv {
	uint16_t	 prio;
	uint16_t	 weight;
	uint16_t	 port;
	char		 target[256];
};

/*
 * The name at off in the message p[0..len), compression pointers followed,
 * written to out as dotted labels ("" for the root).  Returns the offset
 * just past the name where it started, -1 when it is malformed.
 */
int	 resolver_dns_name(const unsigned char *, size_t, size_t, char *,
	    size_t);
/*
 * The SRV records of an answer p[0..len) in the order they came, at most
 * max into srv[] ("." as target "", port 0 as 0); *ttl is lowered to the
 * smallest TTL among them.  Returns how many, 0 with an error RCODE or
 * none, -1 when the answer does not hold together (then use none of it).
 */
int	 resolver_srv_parse(const unsigned char *, size_t,
	    struct resolver_srv *, unsigned, uint32_t *);
/* Order n records to try: priority, then weighted draws with rnd(). */
void	 resolver_srv_order(struct resolver_srv *, unsigned, long (*)(void));

/* The cache of answers by host and port (0: SRV), n == 0 on a miss. */
const struct tp_addr *resolver_cache_get(const char *, uint16_t, unsigned *);
void	 resolver_cache_put(const char *, uint16_t, const struct tp_addr *,
	    unsigned, uint32_t);
unsigned resolver_cache_size(void);

#endif
