#ifndef OSPREY_SHARD_H
#define OSPREY_SHARD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Which worker a call belongs to (ospreyd with workers = N): the hash of
 * its Call-ID, so that every message of the call (the INVITE and its
 * retransmissions, the responses, CANCEL, ACK, BYE) is handled by the one
 * loop that holds its transactions, whichever socket it came in on.  A
 * request we originate picks a Call-ID of our own shard (shard_callid).
 * Set once before the workers start; read-only afterwards.
 */
void	 shard_setup(unsigned);
unsigned shard_count(void);
unsigned shard_self(void);		/* this thread's worker; 0: main */
void	 shard_set_self(unsigned);	/* once, by the worker's thread */
unsigned shard_of(const char *, size_t);	/* a Call-ID's worker */

#endif
