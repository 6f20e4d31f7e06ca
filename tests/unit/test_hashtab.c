/* Unit tests: hashtab.c. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "buf.h"
#include "hashtab.h"

struct item {
	struct hnode	 node;	/* first: the node is the item */
	char		 key[24];
	bool		 live;
};

static uint64_t	rng_state;

/* xorshift64: the same sequence on every run. */
static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state);
}

static struct item *
items_new(size_t n)
{
	struct item	*it = calloc(n, sizeof(*it));
	size_t		 i;

	ck_assert_ptr_nonnull(it);
	for (i = 0; i < n; i++)
		snprintf(it[i].key, sizeof(it[i].key), "z9hG4bK-%zu", i);
	return (it);
}

static struct hnode *
find(const struct hashtab *ht, const char *key)
{
	return (hashtab_find(ht, key, strlen(key)));
}

static void
insert(struct hashtab *ht, struct item *it)
{
	hashtab_insert(ht, &it->node, it->key, strlen(it->key));
	it->live = true;
}

START_TEST(insert_find_remove)
{
	struct hashtab	 ht;
	struct item	*it = items_new(3);

	hashtab_init(&ht, 0);
	ck_assert_uint_eq(ht.n, 0);
	ck_assert_ptr_null(find(&ht, it[0].key));
	insert(&ht, &it[0]);
	insert(&ht, &it[1]);
	ck_assert_uint_eq(ht.n, 2);
	ck_assert_ptr_eq(find(&ht, "z9hG4bK-0"), &it[0].node);
	ck_assert_ptr_eq(find(&ht, "z9hG4bK-1"), &it[1].node);
	ck_assert_ptr_null(find(&ht, "z9hG4bK-2"));
	/* Keys are compared by length and bytes, not as prefixes. */
	ck_assert_ptr_null(hashtab_find(&ht, "z9hG4bK-1", 8));
	ck_assert_ptr_null(find(&ht, "z9hG4bK-10"));
	ck_assert_ptr_eq(hashtab_find(&ht, "z9hG4bK-1x", 9), &it[1].node);

	hashtab_remove(&ht, &it[0].node);
	ck_assert_uint_eq(ht.n, 1);
	ck_assert_ptr_null(find(&ht, "z9hG4bK-0"));
	ck_assert_ptr_eq(find(&ht, "z9hG4bK-1"), &it[1].node);
	/* Removing a node that is not linked changes nothing. */
	hashtab_remove(&ht, &it[0].node);
	ck_assert_uint_eq(ht.n, 1);
	ck_assert_ptr_eq(find(&ht, "z9hG4bK-1"), &it[1].node);

	insert(&ht, &it[0]);
	ck_assert_ptr_eq(find(&ht, "z9hG4bK-0"), &it[0].node);
	hashtab_remove(&ht, &it[1].node);
	hashtab_remove(&ht, &it[0].node);
	ck_assert_uint_eq(ht.n, 0);
	ck_assert_ptr_null(find(&ht, "z9hG4bK-0"));
	ck_assert_ptr_null(find(&ht, "z9hG4bK-1"));
	hashtab_cleanup(&ht);
	free(it);
}
END_TEST

/*
 * A node replaced by another with a copy of its key: found in its place,
 * the old one not, the count and every other node as they were.
 */
START_TEST(replace_in_place)
{
	struct hashtab	 ht;
	struct item	*it = items_new(200), nw;
	size_t		 i;

	hashtab_init(&ht, 0);	/* 64 buckets: chains of several */
	for (i = 0; i < 60; i++)
		insert(&ht, &it[i]);
	memcpy(nw.key, it[17].key, sizeof(nw.key));
	memset(it[17].key, 'x', 8);	/* the old key's bytes are not used */
	hashtab_replace(&ht, &it[17].node, &nw.node, nw.key);
	ck_assert_uint_eq(ht.n, 60);
	ck_assert_ptr_eq(find(&ht, nw.key), &nw.node);
	ck_assert_ptr_eq(nw.node.key, nw.key);
	for (i = 0; i < 60; i++)
		if (i != 17)
			ck_assert_ptr_eq(find(&ht, it[i].key), &it[i].node);
	hashtab_remove(&ht, &nw.node);
	ck_assert_uint_eq(ht.n, 59);
	ck_assert_ptr_null(find(&ht, nw.key));
	hashtab_cleanup(&ht);
	free(it);
}
END_TEST

START_TEST(empty_key)
{
	struct hashtab	ht;
	struct item	it;

	memset(&it, 0, sizeof(it));
	hashtab_init(&ht, 0);
	hashtab_insert(&ht, &it.node, "", 0);
	ck_assert_ptr_eq(hashtab_find(&ht, "", 0), &it.node);
	ck_assert_ptr_null(hashtab_find(&ht, "a", 1));
	hashtab_remove(&ht, &it.node);
	ck_assert_ptr_null(hashtab_find(&ht, "", 0));
	hashtab_cleanup(&ht);
}
END_TEST

#define CHURN_KEYS	20000
#define CHURN_OPS	200000

/* Inserts and removes interleaved with lookups, checked all along. */
START_TEST(churn)
{
	struct hashtab	 ht;
	struct item	*it = items_new(CHURN_KEYS);
	size_t		 live = 0, i, j, inserts = 0, removes = 0;

	rng_state = 0x9e3779b97f4a7c15ULL;
	hashtab_init(&ht, 0);
	for (i = 0; i < CHURN_OPS; i++) {
		struct item	*x = &it[rng() % CHURN_KEYS];
		struct item	*y = &it[rng() % CHURN_KEYS];

		if (x->live) {
			hashtab_remove(&ht, &x->node);
			x->live = false;
			live--;
			removes++;
			ck_assert_ptr_null(find(&ht, x->key));
		} else {
			insert(&ht, x);
			live++;
			inserts++;
			ck_assert_ptr_eq(find(&ht, x->key), &x->node);
		}
		if (y->live)
			ck_assert_ptr_eq(find(&ht, y->key), &y->node);
		else
			ck_assert_ptr_null(find(&ht, y->key));
		ck_assert_uint_eq(ht.n, live);
		if (i % 10000 != 0)
			continue;
		for (j = 0; j < CHURN_KEYS; j++)
			if (it[j].live)
				ck_assert_ptr_eq(find(&ht, it[j].key),
				    &it[j].node);
			else
				ck_assert_ptr_null(find(&ht, it[j].key));
	}
	ck_assert_uint_gt(inserts, CHURN_OPS / 3);
	ck_assert_uint_gt(removes, CHURN_OPS / 3);
	ck_assert_uint_gt(live, 0);
	ck_assert_uint_eq(ht.n, live);
	for (j = 0; j < CHURN_KEYS; j++) {
		if (it[j].live)
			ck_assert_ptr_eq(find(&ht, it[j].key), &it[j].node);
		else
			ck_assert_ptr_null(find(&ht, it[j].key));
	}
	/* Empty it: nothing is found afterwards, the count is 0. */
	for (j = 0; j < CHURN_KEYS; j++)
		if (it[j].live) {
			hashtab_remove(&ht, &it[j].node);
			it[j].live = false;
		}
	ck_assert_uint_eq(ht.n, 0);
	for (j = 0; j < ht.nb; j++)
		ck_assert_ptr_null(ht.b[j]);
	hashtab_cleanup(&ht);
	free(it);
}
END_TEST

#define GROW_KEYS	50000

START_TEST(growth)
{
	struct hashtab	 ht;
	struct item	*it = items_new(GROW_KEYS);
	size_t		 i, nb0;

	hashtab_init(&ht, 0);
	nb0 = ht.nb;
	ck_assert_uint_eq(nb0 & (nb0 - 1), 0);
	for (i = 0; i < GROW_KEYS; i++) {
		insert(&ht, &it[i]);
		if (i % 997 == 0)
			ck_assert_ptr_eq(find(&ht, it[i / 2].key),
			    &it[i / 2].node);
	}
	ck_assert_uint_eq(ht.n, GROW_KEYS);
	ck_assert_uint_gt(ht.nb, nb0);
	ck_assert_uint_ge(ht.nb, GROW_KEYS / 2);
	ck_assert_uint_eq(ht.nb & (ht.nb - 1), 0);
	for (i = 0; i < GROW_KEYS; i++)
		ck_assert_ptr_eq(find(&ht, it[i].key), &it[i].node);
	ck_assert_ptr_null(find(&ht, "z9hG4bK-50000"));
	hashtab_cleanup(&ht);
	free(it);
}
END_TEST

START_TEST(init_hint)
{
	struct hashtab	ht;

	hashtab_init(&ht, 5000);
	ck_assert_uint_ge(ht.nb, 5000);
	ck_assert_uint_eq(ht.nb & (ht.nb - 1), 0);
	ck_assert_uint_eq(ht.n, 0);
	hashtab_cleanup(&ht);
	ck_assert_ptr_null(ht.b);
}
END_TEST

START_TEST(hash_seeded)
{
	const uint64_t	a[2] = { 1, 2 }, b[2] = { 3, 4 }, c[2] = { 1, 3 };
	const char	*k = "z9hG4bK776asdhds";
	size_t		 len;

	for (len = 0; len <= strlen(k); len++) {
		uint64_t	ha = hashtab_hash(a, k, len);

		ck_assert_uint_eq(ha, hashtab_hash(a, k, len));
		ck_assert_uint_ne(ha, hashtab_hash(b, k, len));
		ck_assert_uint_ne(ha, hashtab_hash(c, k, len));
		if (len > 0)
			ck_assert_uint_ne(ha, hashtab_hash(a, k, len - 1));
	}
	ck_assert_uint_ne(hashtab_hash(a, "abc", 3), hashtab_hash(a, "abd", 3));
	ck_assert_uint_ne(hashtab_hash(a, "ab\0", 3), hashtab_hash(a, "ab", 2));
}
END_TEST

/* The MAC is SipHash-2-4: the reference vectors of Aumasson and Bernstein. */
START_TEST(mac_is_siphash24)
{
	const uint64_t	key[2] = { 0x0706050403020100ULL,
			    0x0f0e0d0c0b0a0908ULL };
	unsigned char	msg[64];
	unsigned	i;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	ck_assert_uint_eq(hashtab_mac(key, msg, 0), 0x726fdb47dd0e0e31ULL);
	ck_assert_uint_eq(hashtab_mac(key, msg, 15), 0xa129ca6149be45e5ULL);
	ck_assert_uint_ne(hashtab_mac(key, msg, 15), hashtab_hash(key, msg, 15));
}
END_TEST

/* The printf-free formatters that print MACs and numbers. */
START_TEST(hex_and_decimal)
{
	char		out[24];
	unsigned long	v[] = { 0, 7, 9, 10, 99, 100, 101, 999, 1000, 5060,
			    65535, 99999, 100000, 4294967295UL,
			    9999999999999999999UL, 10000000000000000000UL,
			    18446744073709551615UL };
	unsigned	i;
	struct buf	b;

	fmt_hex64(out, 0x0123456789abcdefULL);
	ck_assert_str_eq(out, "0123456789abcdef");
	fmt_hex64(out, 0);
	ck_assert_str_eq(out, "0000000000000000");
	fmt_hex64(out, 0xf00dfacefeedbeefULL);
	ck_assert_str_eq(out, "f00dfacefeedbeef");
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char	want[24];

		snprintf(want, sizeof(want), "%lu", v[i]);
		out[fmt_uint(out, v[i])] = '\0';
		ck_assert_str_eq(out, want);
	}
	buf_init(&b, 4);
	buf_adds(&b, "cseq ");
	buf_addu(&b, 314159);
	ck_assert_str_eq(b.p, "cseq 314159");
	buf_cleanup(&b);
}
END_TEST

/* Two tables get different seeds, so a key lands differently. */
START_TEST(tables_seeded_apart)
{
	struct hashtab	h1, h2;

	hashtab_init(&h1, 0);
	hashtab_init(&h2, 0);
	ck_assert(h1.seed[0] != h2.seed[0] || h1.seed[1] != h2.seed[1]);
	ck_assert_uint_ne(hashtab_hash(h1.seed, "key", 3),
	    hashtab_hash(h2.seed, "key", 3));
	hashtab_cleanup(&h1);
	hashtab_cleanup(&h2);
}
END_TEST

/* HASHTAB_FOREACH visits every node once, whatever the table's size. */
START_TEST(foreach_visits_each_once)
{
	struct hashtab		 ht;
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct item		*items = items_new(3000);
	unsigned		*seen = calloc(3000, sizeof(*seen));
	size_t			 i, total = 0;

	hashtab_init(&ht, 0);
	HASHTAB_FOREACH(n, &ht, it)
		ck_abort_msg("an empty table has no node");
	for (i = 0; i < 3000; i++) {
		insert(&ht, &items[i]);
		if (i == 0 || i == 63 || i == 2999) {	/* 1, 64, 3000 */
			memset(seen, 0, 3000 * sizeof(*seen));
			total = 0;
			HASHTAB_FOREACH(n, &ht, it) {
				seen[(struct item *)n - items]++;
				total++;
			}
			ck_assert_uint_eq(total, i + 1);
		}
	}
	for (i = 0; i < 3000; i++)
		ck_assert_uint_eq(seen[i], 1);
	hashtab_cleanup(&ht);
	free(seen);
	free(items);
}
END_TEST

/* The node handed out may be removed and freed: every other, then all. */
START_TEST(foreach_removes_current)
{
	struct hashtab		 ht;
	struct hashtab_iter	 it;
	struct hnode		*n;
	size_t			 i, visited = 0;
	char			 key[32];

	hashtab_init(&ht, 0);
	for (i = 0; i < 1000; i++) {	/* heap items, freed in the walk */
		struct item	*x = calloc(1, sizeof(*x));

		ck_assert_ptr_nonnull(x);
		snprintf(x->key, sizeof(x->key), "k%zu", i);
		insert(&ht, x);
	}
	HASHTAB_FOREACH(n, &ht, it) {
		struct item	*x = (struct item *)n;

		visited++;
		if (strtoul(x->key + 1, NULL, 10) % 2 == 0) {
			hashtab_remove(&ht, n);
			memset(x, 0xa5, sizeof(*x));	/* poisoned, then */
			free(x);
		}
	}
	ck_assert_uint_eq(visited, 1000);
	ck_assert_uint_eq(ht.n, 500);
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%zu", i);
		ck_assert((find(&ht, key) != NULL) == (i % 2 == 1));
	}
	visited = 0;
	HASHTAB_FOREACH(n, &ht, it) {
		hashtab_remove(&ht, n);
		free(n);
		visited++;
	}
	ck_assert_uint_eq(visited, 500);
	ck_assert_uint_eq(ht.n, 0);
	hashtab_cleanup(&ht);
}
END_TEST

/*
 * hashtab_first drains a table even when removing one node removes
 * another (here its partner, key ^ 1), which a walk could not survive.
 */
START_TEST(first_drains_with_partners)
{
	struct hashtab	 ht;
	struct item	*items = items_new(512);
	struct hnode	*n;
	size_t		 pos = 0, i, taken = 0;

	hashtab_init(&ht, 0);
	for (i = 0; i < 512; i++)
		insert(&ht, &items[i]);
	while ((n = hashtab_first(&ht, &pos)) != NULL) {
		struct item	*x = (struct item *)n, *p;

		p = &items[(size_t)(x - items) ^ 1];
		ck_assert(x->live);
		hashtab_remove(&ht, n);
		x->live = false;
		if (p->live) {
			hashtab_remove(&ht, &p->node);
			p->live = false;
		}
		taken++;
	}
	ck_assert_uint_eq(ht.n, 0);
	ck_assert_uint_eq(taken, 256);
	ck_assert_uint_le(pos, ht.nb);
	hashtab_cleanup(&ht);
	free(items);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("hashtab");

	tcase_set_timeout(tc, 60);
	check_add(tc, insert_find_remove, replace_in_place, empty_key, churn, growth, init_hint,
	    hash_seeded, mac_is_siphash24, hex_and_decimal, tables_seeded_apart, foreach_visits_each_once,
	    foreach_removes_current, first_drains_with_partners);
	return (check_run("hashtab"));
}
