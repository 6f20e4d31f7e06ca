#ifndef OSPREY_GUARD_H
#define OSPREY_GUARD_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "tp.h"

struct event_base;

/*
 * Per-source defences (what Kamailio's pike + htable ban do): requests
 * counted per source address in a window; over the limit, or after too
 * many failed authentications, the source is banned and everything it
 * sends is dropped unread until the ban ends.  Trusted sources are exempt.
 */
struct guard_settings {
	uint32_t	 window_ms;	/* 0: no rate limit */
	unsigned	 max_requests;	/* per window and source */
	uint32_t	 ban_ms;
	unsigned	 auth_failures;	/* 0: not counted */
	uint32_t	 auth_window_ms;
	struct acl	 exempt;	/* never limited */
	bool		 scanners;	/* drop known scanner User-Agents */
	char		*scanner_src;	/* owned: the regex as written */
	regex_t		 scanner_re;
	unsigned	 max_sources;	/* table size bound */
	unsigned	 call_rate;	/* new INVITEs per second, all sources; 0 off */
};

struct guard_stats {
	uint64_t	bans;
	uint64_t	dropped;	/* datagrams from banned sources */
	uint64_t	scanners;	/* requests dropped by User-Agent */
	uint64_t	call_rate;	/* INVITEs over call_rate: 503 */
};

void	guard_init(struct event_base *);
void	guard_set(const struct guard_settings *, const struct acl *);
void	guard_shutdown(void);
void	guard_add_self(const char *);
bool	guard_allow(const struct tp_addr *, bool);
void	guard_auth_failed(const struct tp_addr *);
bool	guard_scanner(struct slice);
bool	guard_call_allowed(const struct tp_addr *);
bool	guard_known(const struct tp_addr *);
unsigned guard_banned(void);
const struct guard_stats *guard_stats(void);
void	guard_settings_cleanup(struct guard_settings *);

#endif
