/* The worker of a Call-ID (see shard.h). */
#include "config.h"

#include <sys/random.h>

#include "hashtab.h"
#include "shard.h"

static struct {
	unsigned	 n;
	uint64_t	 seed[2];
} S = { 1, { 0, 0 } };

static _Thread_local unsigned	self;

void
shard_setup(unsigned n)
{
	S.n = n > 0 ? n : 1;
	if (getrandom(S.seed, sizeof(S.seed), 0) != sizeof(S.seed)) {
		S.seed[0] = 0x9e3779b97f4a7c15ULL;
		S.seed[1] = (uint64_t)(uintptr_t)&self;
	}
}

unsigned
shard_count(void)
{
	return (S.n);
}

unsigned
shard_self(void)
{
	return (self);
}

void
shard_set_self(unsigned id)
{
	self = id;
}

unsigned
shard_of(const char *callid, size_t len)
{
	if (S.n == 1)
		return (0);
	return ((unsigned)(hashtab_hash(S.seed, callid, len) % S.n));
}
