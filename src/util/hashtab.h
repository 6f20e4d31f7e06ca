#ifndef OSPREY_HASHTAB_H
#define OSPREY_HASHTAB_H

#include <stddef.h>
#include <stdint.h>

/*
 * Intrusive chained hash table keyed by byte strings.  The node does not own
 * its key: the key must live as long as the node is linked.  Seeded hash, so
 * peers cannot aim collisions at one chain.  Grows by doubling; O(1) lookup.
 */
struct hnode {
	struct hnode	*next;
	uint64_t	 hash;
	const char	*key;
	size_t		 klen;
};

struct hashtab {
	struct hnode	**b;
	size_t		  nb;	/* power of two */
	size_t		  n;
	uint64_t	  seed[2];
};

/*
 * A walk over every node, in no particular order:
 *
 *	struct hashtab_iter	 it;
 *	struct hnode		*n;
 *
 *	HASHTAB_FOREACH(n, &tab, it)
 *		...
 *
 * The node handed out may be removed (and freed) before the next one is
 * asked for; no other node may be inserted or removed meanwhile.
 */
struct hashtab_iter {
	const struct hashtab	*ht;
	size_t			 i;	/* the bucket of next */
	struct hnode		*next;	/* taken before the current goes */
};

#define HASHTAB_FOREACH(n, ht, it)					\
	for (hashtab_iter_init(&(it), (ht));				\
	    ((n) = hashtab_iter_next(&(it))) != NULL;)

void		 hashtab_init(struct hashtab *, size_t hint);
void		 hashtab_cleanup(struct hashtab *);
void		 hashtab_insert(struct hashtab *, struct hnode *, const char *,
		     size_t);
struct hnode	*hashtab_find(const struct hashtab *, const char *, size_t);
void		 hashtab_remove(struct hashtab *, struct hnode *);
void		 hashtab_replace(struct hashtab *, struct hnode *,
		     struct hnode *, const char *);
uint64_t	 hashtab_hash(const uint64_t seed[2], const void *, size_t);
uint64_t	 hashtab_mac(const uint64_t key[2], const void *, size_t);
void		 hashtab_iter_init(struct hashtab_iter *,
		     const struct hashtab *);
struct hnode	*hashtab_iter_next(struct hashtab_iter *);
struct hnode	*hashtab_first(const struct hashtab *, size_t *);

#endif
