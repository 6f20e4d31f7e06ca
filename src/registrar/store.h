#ifndef OSPREY_STORE_H
#define OSPREY_STORE_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;

/*
 * The location store on disk: SQLite in WAL mode.  Writes go into one
 * transaction committed 100 ms after its first change (at once by
 * store_flush(), at a clean stop), so a burst of REGISTERs costs one
 * commit; a crash loses at most the last 100 ms of changes.
 */

/* One binding as stored; every string borrowed (NULL: none). */
struct store_row {
	const char	*aor;
	const char	*contact;
	const char	*instance;
	const char	*path;
	const char	*callid;
	const char	*user_agent;
	const char	*received;	/* "ip:port" / "[ip6]:port" */
	const char	*local;		/* our socket, "ip:port" */
	int64_t		 expires;	/* wall clock, Unix seconds */
	uint32_t	 reg_id;
	uint32_t	 cseq;
	unsigned	 q;		/* per mille */
};

int	store_open(struct event_base *, const char *, char *, size_t);
bool	store_is_open(void);
void	store_close(void);
void	store_secret(uint8_t out[32]);
void	store_put(const struct store_row *);
void	store_del(const char *aor, const char *contact);
void	store_flush(void);
int	store_load(void (*)(void *, const struct store_row *), void *,
	    int64_t now);

#endif
