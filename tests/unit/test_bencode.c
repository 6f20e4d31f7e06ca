/* Unit tests: bencode.c, the encoder and the strict decoder. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "bencode.h"
#include "buf.h"

static int
decode(struct bencode_doc *doc, const char *s, size_t len)
{
	char	err[128];

	return (bencode_decode(doc, s, len, err, sizeof(err)));
}

START_TEST(round_trip)
{
	struct bencode_doc	 doc = { NULL, 0, 0 };
	const struct bencode	*top, *v, *e;
	struct buf		 b;
	struct slice		 s;
	static const char	 bin[] = "a\0b:e";

	buf_init(&b, 16);
	bencode_open_dict(&b);
	bencode_add_cstr(&b, "command");
	bencode_add_cstr(&b, "offer");
	bencode_add_cstr(&b, "sdp");
	bencode_add_str(&b, bin, sizeof(bin) - 1);
	bencode_add_cstr(&b, "n");
	bencode_add_int(&b, -9223372036854775807LL - 1);
	bencode_add_cstr(&b, "flags");
	bencode_open_list(&b);
	bencode_add_cstr(&b, "trust-address");
	bencode_add_cstr(&b, "");
	bencode_open_dict(&b);
	bencode_close(&b);
	bencode_close(&b);
	bencode_close(&b);
	ck_assert_str_eq(b.p, "d7:command5:offer3:sdp5:a");
	ck_assert_int_eq(decode(&doc, b.p, b.len), 0);
	top = bencode_root(&doc);
	ck_assert_int_eq(top->type, BENCODE_DICT);
	ck_assert_uint_eq(top->n, 4);
	ck_assert(bencode_get_str(&doc, top, "command", &s));
	ck_assert_slice_eq(s, "offer");
	ck_assert(bencode_get_str(&doc, top, "sdp", &s));
	ck_assert_uint_eq(s.len, 5);
	ck_assert(memcmp(s.p, bin, 5) == 0);
	v = bencode_get(&doc, top, "n");
	ck_assert_int_eq(v->type, BENCODE_INT);
	ck_assert(v->i == -9223372036854775807LL - 1);
	v = bencode_get(&doc, top, "flags");
	ck_assert_int_eq(v->type, BENCODE_LIST);
	ck_assert_uint_eq(v->n, 3);
	e = bencode_child(&doc, v);
	ck_assert_slice_eq(e->s, "trust-address");
	e = bencode_next(&doc, e, v);
	ck_assert_uint_eq(e->s.len, 0);
	e = bencode_next(&doc, e, v);
	ck_assert_int_eq(e->type, BENCODE_DICT);
	ck_assert_ptr_null(bencode_child(&doc, e));
	ck_assert_ptr_null(bencode_next(&doc, e, v));
	ck_assert_ptr_null(bencode_get(&doc, top, "missing"));
	ck_assert(!bencode_get_str(&doc, top, "n", &s));	/* not a string */
	bencode_doc_free(&doc);
	buf_cleanup(&b);
}
END_TEST

/* rtpengine's own reply, keys not sorted. */
START_TEST(rtpengine_reply)
{
	static const char	 r[] = "d3:sdp10:v=0\r\no=- 16:result2:ok"
				    "7:warning3:hmme";
	struct bencode_doc	 doc = { NULL, 0, 0 };
	struct slice		 s;

	ck_assert_int_eq(decode(&doc, r, strlen(r)), 0);
	ck_assert(bencode_get_str(&doc, bencode_root(&doc), "result", &s));
	ck_assert_slice_eq(s, "ok");
	ck_assert(bencode_get_str(&doc, bencode_root(&doc), "warning", &s));
	ck_assert_slice_eq(s, "hmm");
	bencode_doc_free(&doc);
}
END_TEST

START_TEST(integers)
{
	struct bencode_doc	 doc = { NULL, 0, 0 };

	ck_assert_int_eq(decode(&doc, "i0e", 3), 0);
	ck_assert(doc.v[0].i == 0);
	ck_assert_int_eq(decode(&doc, "i9223372036854775807e", 21), 0);
	ck_assert(doc.v[0].i == 9223372036854775807LL);
	ck_assert_int_eq(decode(&doc, "i-42e", 5), 0);
	ck_assert(doc.v[0].i == -42);
	bencode_doc_free(&doc);
}
END_TEST

static const char *const bad[] = {
	"",			/* nothing */
	"i",			/* unfinished */
	"ie",			/* no digits */
	"i-e",
	"i-0e",			/* negative zero */
	"i03e",			/* leading zero */
	"i9223372036854775808e",	/* overflow */
	"i-9223372036854775809e",
	"i12",			/* no e */
	"i1xe",
	"5:abc",		/* longer than the input */
	"03:abc",		/* leading zero in a length */
	"3abc",			/* no colon */
	"99999999999999999999:a",	/* length overflow */
	"-1:a",
	"l",			/* unfinished list */
	"li1e",
	"d",
	"d3:key",		/* a key without a value */
	"di1ei2ee",		/* an integer key */
	"dlei1ee",		/* a list key */
	"d1:a1:b1:a1:ce",	/* a key twice */
	"i1ei2e",		/* two values */
	"4:spam ",		/* a byte after */
	"x",			/* not a value */
	"e",
};

START_TEST(malformed)
{
	struct bencode_doc	 doc = { NULL, 0, 0 };
	char			 err[128];
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(bencode_decode(&doc, bad[i], strlen(bad[i]), err,
		    sizeof(err)) == -1, "\"%s\" was taken", bad[i]);
		ck_assert_msg(strncmp(err, "bencode: ", 9) == 0,
		    "\"%s\": no reason", bad[i]);
		ck_assert_uint_eq(doc.n, 0);
	}
	bencode_doc_free(&doc);
}
END_TEST

/* Every prefix of a valid document is refused, and read within bounds. */
START_TEST(truncated)
{
	static const char	 good[] = "d7:command5:offer5:flagsl3:abci7ee"
				    "1:xd1:yi-3eee";
	struct bencode_doc	 doc = { NULL, 0, 0 };
	size_t			 n;

	ck_assert_int_eq(decode(&doc, good, strlen(good)), 0);
	for (n = 0; n < strlen(good); n++) {
		char	*p = malloc(n + 1);	/* exactly n: ASan sees past */

		memcpy(p, good, n);
		ck_assert_msg(decode(&doc, p, n) == -1, "prefix %zu taken", n);
		free(p);
	}
	bencode_doc_free(&doc);
}
END_TEST

START_TEST(limits)
{
	struct bencode_doc	 doc = { NULL, 0, 0 };
	struct buf		 b;
	char			 err[128];
	unsigned		 i;

	buf_init(&b, 64);
	for (i = 0; i < BENCODE_MAX_DEPTH; i++)
		bencode_open_list(&b);
	for (i = 0; i < BENCODE_MAX_DEPTH; i++)
		bencode_close(&b);
	ck_assert_int_eq(decode(&doc, b.p, b.len), 0);
	b.len = 0;
	for (i = 0; i <= BENCODE_MAX_DEPTH; i++)
		bencode_open_list(&b);
	for (i = 0; i <= BENCODE_MAX_DEPTH; i++)
		bencode_close(&b);
	ck_assert_int_eq(bencode_decode(&doc, b.p, b.len, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "deep"));
	b.len = 0;
	bencode_open_list(&b);
	for (i = 0; i < BENCODE_MAX_VALUES; i++)
		bencode_add_int(&b, i);
	bencode_close(&b);
	ck_assert_int_eq(bencode_decode(&doc, b.p, b.len, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "too many"));
	b.len = 0;
	bencode_add_str(&b, "", 0);
	buf_grow(&b, BENCODE_MAX_LEN + 16);
	memset(b.p + b.len, 'e', BENCODE_MAX_LEN);
	ck_assert_int_eq(bencode_decode(&doc, b.p, BENCODE_MAX_LEN + 1, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "at most"));
	bencode_doc_free(&doc);
	buf_cleanup(&b);
}
END_TEST

int
main(void)
{
	check_add(check_case("encode"), round_trip, rtpengine_reply,
	    integers);
	check_add(check_case("decode"), malformed, truncated, limits);
	return (check_run("bencode"));
}
