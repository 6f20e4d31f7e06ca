#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hashtab.h"
#include "xmalloc.h"

/* SipHash (Aumasson, Bernstein): keyed, fast for short keys. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

/* SipHash-c-d over p: c rounds per 8-byte word, d to finish. */
static inline uint64_t
siphash(const uint64_t key[2], const void *p, size_t len, int c, int d)
{
	const unsigned char	*in = p;
	uint64_t		 v0 = 0x736f6d6570736575ULL ^ key[0];
	uint64_t		 v1 = 0x646f72616e646f6dULL ^ key[1];
	uint64_t		 v2 = 0x6c7967656e657261ULL ^ key[0];
	uint64_t		 v3 = 0x7465646279746573ULL ^ key[1];
	uint64_t		 m, b = (uint64_t)len << 56;
	size_t			 i, left = len & 7;
	int			 r;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, in + i, 8);
		v3 ^= m;
		for (r = 0; r < c; r++)
			SIPROUND;
		v0 ^= m;
	}
	switch (left) {
	case 7: b |= (uint64_t)in[i + 6] << 48; /* FALLTHROUGH */
	case 6: b |= (uint64_t)in[i + 5] << 40; /* FALLTHROUGH */
	case 5: b |= (uint64_t)in[i + 4] << 32; /* FALLTHROUGH */
	case 4: b |= (uint64_t)in[i + 3] << 24; /* FALLTHROUGH */
	case 3: b |= (uint64_t)in[i + 2] << 16; /* FALLTHROUGH */
	case 2: b |= (uint64_t)in[i + 1] << 8; /* FALLTHROUGH */
	case 1: b |= (uint64_t)in[i]; break;
	default: break;
	}
	v3 ^= b;
	for (r = 0; r < c; r++)
		SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	for (r = 0; r < d; r++)
		SIPROUND;
	return (v0 ^ v1 ^ v2 ^ v3);
}

/* SipHash-1-3: the table hash. */
uint64_t
hashtab_hash(const uint64_t seed[2], const void *p, size_t len)
{
	return (siphash(seed, p, len, 1, 3));
}

/* SipHash-2-4, the PRF its authors give as a MAC: stamps, tokens, branches. */
uint64_t
hashtab_mac(const uint64_t key[2], const void *p, size_t len)
{
	return (siphash(key, p, len, 2, 4));
}

void
hashtab_init(struct hashtab *ht, size_t hint)
{
	ht->nb = 64;
	while (ht->nb < hint)
		ht->nb <<= 1;
	ht->b = xcalloc(ht->nb, sizeof(*ht->b));
	ht->n = 0;
	if (getrandom(ht->seed, sizeof(ht->seed), 0) != sizeof(ht->seed)) {
		ht->seed[0] = (uint64_t)(uintptr_t)ht ^ 0x9e3779b97f4a7c15ULL;
		ht->seed[1] = (uint64_t)(uintptr_t)&hint;
	}
}

void
hashtab_cleanup(struct hashtab *ht)
{
	free(ht->b);
	ht->b = NULL;
	ht->nb = ht->n = 0;
}

static void
hashtab_grow(struct hashtab *ht)
{
	struct hnode	**nb, *h, *next;
	size_t		  i, n = ht->nb * 2;

	nb = xcalloc(n, sizeof(*nb));
	for (i = 0; i < ht->nb; i++) {
		for (h = ht->b[i]; h != NULL; h = next) {
			next = h->next;
			h->next = nb[h->hash & (n - 1)];
			nb[h->hash & (n - 1)] = h;
		}
	}
	free(ht->b);
	ht->b = nb;
	ht->nb = n;
}

void
hashtab_insert(struct hashtab *ht, struct hnode *h, const char *key,
    size_t klen)
{
	if (ht->n >= ht->nb)
		hashtab_grow(ht);
	h->key = key;
	h->klen = klen;
	h->hash = hashtab_hash(ht->seed, key, klen);
	h->next = ht->b[h->hash & (ht->nb - 1)];
	ht->b[h->hash & (ht->nb - 1)] = h;
	ht->n++;
}

struct hnode *
hashtab_find(const struct hashtab *ht, const char *key, size_t klen)
{
	uint64_t	 hash = hashtab_hash(ht->seed, key, klen);
	struct hnode	*h;

	for (h = ht->b[hash & (ht->nb - 1)]; h != NULL; h = h->next)
		if (h->hash == hash && h->klen == klen &&
		    memcmp(h->key, key, klen) == 0)
			return (h);
	return (NULL);
}

void
hashtab_remove(struct hashtab *ht, struct hnode *h)
{
	struct hnode	**pp;

	for (pp = &ht->b[h->hash & (ht->nb - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			h->next = NULL;
			ht->n--;
			return;
		}
	}
}

/*
 * nh takes h's place, with the same key at key (its own copy): no hash
 * is computed and no other chain is touched.
 */
void
hashtab_replace(struct hashtab *ht, struct hnode *h, struct hnode *nh,
    const char *key)
{
	struct hnode	**pp;

	for (pp = &ht->b[h->hash & (ht->nb - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == h) {
			nh->next = h->next;
			nh->hash = h->hash;
			nh->key = key;
			nh->klen = h->klen;
			*pp = nh;
			h->next = NULL;
			return;
		}
	}
}

/* The first node of the first bucket from i on that has one, in *i. */
static struct hnode *
hashtab_scan(const struct hashtab *ht, size_t *i)
{
	for (; *i < ht->nb; (*i)++)
		if (ht->b[*i] != NULL)
			return (ht->b[*i]);
	return (NULL);
}

void
hashtab_iter_init(struct hashtab_iter *it, const struct hashtab *ht)
{
	it->ht = ht;
	it->i = 0;
	it->next = hashtab_scan(ht, &it->i);
}

/* The next node, NULL at the end; see HASHTAB_FOREACH. */
struct hnode *
hashtab_iter_next(struct hashtab_iter *it)
{
	struct hnode	*h = it->next;

	if (h == NULL)
		return (NULL);
	if ((it->next = h->next) == NULL) {
		it->i++;
		it->next = hashtab_scan(it->ht, &it->i);
	}
	return (h);
}

/*
 * For emptying a table when removing one node may remove others too (a
 * terminated transaction ends its owner's): the first node at or after
 * bucket *pos, which is advanced past the empty ones; NULL when none is
 * left there.  Start with *pos = 0, remove what it returns, ask again.
 */
struct hnode *
hashtab_first(const struct hashtab *ht, size_t *pos)
{
	return (hashtab_scan(ht, pos));
}
