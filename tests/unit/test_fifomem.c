/* Unit tests: fifomem.c. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "fifomem.h"

/* Objects go front to back, 16-aligned, and all fit in one chunk. */
START_TEST(alloc_in_order)
{
	struct fifomem	 fm = { 0 };
	char		*a, *b, *c;

	a = fifomem_alloc(&fm, 100);
	b = fifomem_alloc(&fm, 1);
	c = fifomem_alloc(&fm, 300);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq((uintptr_t)a % 16, 0);
	ck_assert_ptr_eq(b, a + 112);
	ck_assert_ptr_eq(c, b + 16);
	ck_assert_uint_eq(fm.chunks, 1);
	memset(a, 'a', 100);
	memset(c, 'c', 300);
	fifomem_free(b);
	fifomem_free(a);
	ck_assert_uint_eq(fm.chunks, 1);
	fifomem_free(c);	/* the last: its chunk goes */
	ck_assert_uint_eq(fm.chunks, 0);
	ck_assert_ptr_null(fm.cur);
}
END_TEST

/*
 * Objects past a chunk go to the next.  A full chunk empties when its last
 * object goes, whatever the order: the first to empty is kept as the spare
 * and filled next (not mapped afresh), the others are unmapped, and the
 * spare goes with the last object of all.
 */
START_TEST(chunks_go_with_their_last)
{
	struct fifomem	 fm = { 0 };
	size_t		 per = FIFOMEM_CHUNK / 4096, n = 3 * per, i;
	char		**p = calloc(n + per, sizeof(*p)), *first;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++) {
		p[i] = fifomem_alloc(&fm, 4000);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], (int)i, 4000);
	}
	ck_assert_uint_eq(fm.chunks, 3);	/* 524 of 4000 bytes a chunk */
	first = (char *)((uintptr_t)p[0] & ~(uintptr_t)(FIFOMEM_CHUNK - 1));
	/* the first chunk's objects, newest first */
	for (i = per - 2; i + 1 > 0; i--)
		fifomem_free(p[i]);
	ck_assert_ptr_null(fm.spare);	/* p[per - 1] holds it */
	for (i = per - 1; i < 2 * per; i++)
		fifomem_free(p[i]);
	ck_assert_uint_eq(fm.chunks, 3);
	ck_assert_ptr_eq(fm.spare, first);
	for (; i < n - 1; i++)
		fifomem_free(p[i]);
	ck_assert_uint_eq(fm.chunks, 2);	/* the spare, the newest */
	ck_assert_uint_eq((unsigned char)p[n - 1][3999], (unsigned char)(n - 1));
	/* past the newest: the spare fills, nothing new is mapped */
	for (i = n; i < n + per; i++)
		ck_assert_ptr_nonnull(p[i] = fifomem_alloc(&fm, 4000));
	ck_assert_uint_eq(fm.chunks, 2);
	ck_assert_ptr_null(fm.spare);
	ck_assert_ptr_eq(p[n + per - 1] - (p[n + per - 1] - first) %
	    FIFOMEM_CHUNK, first);
	for (i = n - 1; i < n + per; i++)
		fifomem_free(p[i]);
	ck_assert_uint_eq(fm.chunks, 0);
	ck_assert_ptr_null(fm.spare);
	ck_assert_ptr_null(fm.cur);
	free(p);
}
END_TEST

/* The spare goes with the last object even when the newest empties last. */
START_TEST(spare_goes_with_the_last)
{
	struct fifomem	 fm = { 0 };
	char		*b;
	size_t		 i, per = FIFOMEM_CHUNK / 4096;
	char		*keep[600];

	for (i = 0; i < per + 20; i++)
		keep[i] = fifomem_alloc(&fm, 4000);
	ck_assert_uint_eq(fm.chunks, 2);
	b = keep[per + 19];	/* the newest, in the second chunk */
	for (i = 0; i < per + 19; i++)
		if (keep[i] != b)
			fifomem_free(keep[i]);
	ck_assert_ptr_nonnull(fm.spare);
	ck_assert_uint_eq(fm.chunks, 2);
	fifomem_free(b);
	ck_assert_uint_eq(fm.chunks, 0);
	ck_assert_ptr_null(fm.spare);
}
END_TEST

START_TEST(too_large_is_null)
{
	struct fifomem	 fm = { 0 };

	ck_assert_ptr_null(fifomem_alloc(&fm, FIFOMEM_MAX + 1));
	ck_assert_uint_eq(fm.chunks, 0);
	fifomem_free(NULL);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("fifomem");

	check_add(tc, alloc_in_order, chunks_go_with_their_last,
	    spare_goes_with_the_last, too_large_is_null);
	return (check_run("fifomem"));
}
