#ifndef OSPREY_TEST_CHECK_UTIL_H
#define OSPREY_TEST_CHECK_UTIL_H

#include <string.h>

#include <check.h>

#include "sipmsg.h"

/*
 * What every Check unit test shares (check_util.c): slices from C strings,
 * parsing a message that must parse (or fail) as told, and main()'s run.
 */

/* A slice equals str, byte for byte. */
#define ck_assert_slice_eq(s, str) do {					\
	struct slice	 _s = (s);					\
	const char	*_w = (str);					\
									\
	ck_assert_msg(_s.len == strlen(_w) &&				\
	    memcmp(_s.p, _w, _s.len) == 0,				\
	    "%s is \"%.*s\", want \"%s\"", #s, (int)_s.len,		\
	    _s.p != NULL ? _s.p : "", _w);				\
} while (0)

extern char	parse_err[256];	/* the reason of the last parse_as() */

/* The slice of a C string (borrowed). */
struct slice	 S(const char *);
/* Parse len bytes; sipmsg_parse() must return want.  The caller frees. */
struct sipmsg	*parse_bytes(const char *, size_t, int);
/* The same for a C string. */
struct sipmsg	*parse_as(const char *, int);
/* The same, and the text must parse. */
struct sipmsg	*parse(const char *);
/* Add tests to a case, in order: check_add(tc, t1, t2, ...). */
#define check_add(tc, ...)						\
	check_add_tests((tc), __VA_ARGS__, (const TTest *)NULL)
void		 check_add_tests(TCase *, ...);
/* A new test case, run by check_run() in the order the cases were made. */
TCase		*check_case(const char *);
/* The same, each test between setup and teardown (checked fixture). */
TCase		*check_fixed(const char *, void (*)(void), void (*)(void));
/* Run every case as one suite; EXIT_SUCCESS if every test passed. */
int		 check_run(const char *);

#endif
