/* Unit tests: proxy.c, the best-response rank of RFC 3261 16.7. */
#include "config.h"

#include <stdlib.h>

#include <check.h>

#include "check_util.h"
#include "proxy.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Lower rank wins. */
#define ck_assert_beats(a, b)						\
	ck_assert_msg(proxy_reply_rank(a) < proxy_reply_rank(b),	\
	    "%d (rank %d) should beat %d (rank %d)", (a),		\
	    proxy_reply_rank(a), (b), proxy_reply_rank(b))

static const int global[] = { 600, 603, 604, 606, 607, 608, 699 };
static const int others[] = {
	300, 301, 302, 305, 380, 399,
	400, 401, 403, 404, 405, 407, 408, 415, 420, 480, 481, 483, 484, 486,
	487, 488, 491, 499,
	500, 501, 502, 503, 504, 505, 513, 580, 599,
};
static const int retry[] = { 401, 407, 415, 420, 484 };

/* RFC 3261 16.7 step 6: a 6xx is chosen over any other class. */
START_TEST(rank_6xx_first)
{
	size_t	i, j;

	for (i = 0; i < NELEM(global); i++)
		for (j = 0; j < NELEM(others); j++)
			ck_assert_beats(global[i], others[j]);
	ck_assert_beats(603, 486);
	ck_assert_beats(699, 300);
	ck_assert_beats(600, 401);
}
END_TEST

/* Otherwise the lowest class wins, whatever the codes inside it. */
START_TEST(rank_lowest_class)
{
	size_t	i, j;

	for (i = 0; i < NELEM(others); i++)
		for (j = 0; j < NELEM(others); j++)
			if (others[i] / 100 < others[j] / 100)
				ck_assert_beats(others[i], others[j]);
	ck_assert_beats(399, 401);
	ck_assert_beats(302, 484);
	ck_assert_beats(486, 500);
	ck_assert_beats(499, 500);
	ck_assert_beats(404, 503);
}
END_TEST

/*
 * Inside 4xx, the answers that let the caller retry (credentials, another
 * body or extension, more digits) lead: 401 407 415 420 484.
 */
START_TEST(rank_retry_4xx_lead)
{
	size_t	i, j;
	bool	is_retry;

	for (i = 0; i < NELEM(retry); i++) {
		for (j = 0; j < NELEM(others); j++) {
			size_t	k;

			if (others[j] / 100 != 4)
				continue;
			is_retry = false;
			for (k = 0; k < NELEM(retry); k++)
				is_retry |= others[j] == retry[k];
			if (!is_retry)
				ck_assert_beats(retry[i], others[j]);
		}
	}
	ck_assert_beats(401, 404);
	ck_assert_beats(407, 400);
	ck_assert_beats(484, 403);
	ck_assert_beats(415, 408);
	ck_assert_beats(420, 486);
	/* Only inside their class: a 3xx still beats them. */
	ck_assert_beats(380, 401);
	/* And 5xx gets no such favour. */
	ck_assert_beats(499, 501);
}
END_TEST

/*
 * Ties inside a class go to the lower code: 408 over 486, and 500 over 503
 * (a 503 would go upstream as 500 anyway, RFC 3261 16.7 step 6).
 */
START_TEST(rank_within_class)
{
	ck_assert_beats(408, 486);
	ck_assert_beats(404, 486);
	ck_assert_beats(486, 487);
	ck_assert_beats(500, 503);
	ck_assert_beats(500, 504);
	ck_assert_beats(302, 380);
	ck_assert_beats(600, 603);
}
END_TEST

/* The rank is a total order: distinct codes never tie. */
START_TEST(rank_no_ties)
{
	int	a, b;

	for (a = 300; a <= 699; a++)
		for (b = a + 1; b <= 699; b++)
			ck_assert_msg(proxy_reply_rank(a) !=
			    proxy_reply_rank(b), "%d and %d tie", a, b);
}
END_TEST

int
main(void)
{
	check_add(check_case("reply_rank"), rank_6xx_first, rank_lowest_class,
	    rank_retry_4xx_lead, rank_within_class, rank_no_ties);
	return (check_run("proxy"));
}
