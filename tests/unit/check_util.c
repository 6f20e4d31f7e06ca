/* What every Check unit test shares; see check_util.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "sipmsg.h"

#define CHECK_CASES_MAX	16

char		 parse_err[256];
static TCase	*cases[CHECK_CASES_MAX];
static int	 ncases;

struct slice
S(const char *s)
{
	return ((struct slice){ s, strlen(s) });
}

struct sipmsg *
parse_bytes(const char *text, size_t len, int want)
{
	struct sipmsg	*m = sipmsg_new(text, len);
	int		 rc;

	parse_err[0] = '\0';
	rc = sipmsg_parse(m, parse_err, sizeof(parse_err));
	ck_assert_msg(rc == want, "sipmsg_parse: %d (%s), want %d: %.*s", rc,
	    parse_err, want, (int)len, text);
	return (m);
}

struct sipmsg *
parse_as(const char *text, int want)
{
	return (parse_bytes(text, strlen(text), want));
}

struct sipmsg *
parse(const char *text)
{
	return (parse_as(text, 0));
}

void
check_add_tests(TCase *tc, ...)
{
	va_list		 ap;
	const TTest	*t;

	va_start(ap, tc);
	while ((t = va_arg(ap, const TTest *)) != NULL)
		tcase_add_test(tc, t);
	va_end(ap);
}

TCase *
check_case(const char *name)
{
	TCase	*tc = tcase_create(name);

	if (ncases == CHECK_CASES_MAX) {
		fprintf(stderr, "check_case: more than %d cases\n",
		    CHECK_CASES_MAX);
		exit(EXIT_FAILURE);
	}
	cases[ncases++] = tc;
	return (tc);
}

TCase *
check_fixed(const char *name, void (*setup)(void), void (*teardown)(void))
{
	TCase	*tc = check_case(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	return (tc);
}

int
check_run(const char *name)
{
	Suite	*s = suite_create(name);
	SRunner	*sr;
	int	 i, nfail;

	for (i = 0; i < ncases; i++)
		suite_add_tcase(s, cases[i]);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
