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
 * Objects past a chunk go to the next; a full chunk goes when its last
 * object does, whatever the order, while the newest stays.
 */
START_TEST(chunks_go_with_their_last)
{
	struct fifomem	 fm = { 0 };
	size_t		 per = FIFOMEM_CHUNK / 4096, n = 3 * per, i;
	char		**p = calloc(n, sizeof(*p));

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++) {
		p[i] = fifomem_alloc(&fm, 4000);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], (int)i, 4000);
	}
	ck_assert_uint_eq(fm.chunks, 3);	/* 524 of 4000 bytes a chunk */
	/* the first chunk's objects, newest first */
	for (i = per - 2; i + 1 > 0; i--)
		fifomem_free(p[i]);
	ck_assert_uint_eq(fm.chunks, 3);	/* p[per - 1] holds it */
	for (i = per - 1; i < n - 1; i++)
		fifomem_free(p[i]);
	ck_assert_uint_eq(fm.chunks, 1);
	ck_assert_ptr_nonnull(fm.cur);
	ck_assert_uint_eq((unsigned char)p[n - 1][3999], (unsigned char)(n - 1));
	fifomem_free(p[n - 1]);
	ck_assert_uint_eq(fm.chunks, 0);
	free(p);
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
	    too_large_is_null);
	return (check_run("fifomem"));
}
