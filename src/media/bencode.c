/*
 * Bencode, encoder and strict decoder (bencode.h).  The decoder's input
 * comes from the network: every read is checked against the end first.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bencode.h"
#include "xmalloc.h"

struct bencode_in {
	const char		*p;
	size_t			 len;
	size_t			 off;
	struct bencode_doc	*doc;
	char			*err;
	size_t			 errlen;
};

static int
bencode_fail(struct bencode_in *in, const char *what)
{
	snprintf(in->err, in->errlen, "bencode: %s at byte %zu", what,
	    in->off);
	return (-1);
}

/* A new value at the end of the array; -1 past BENCODE_MAX_VALUES. */
static int
bencode_push(struct bencode_in *in, enum bencode_type type)
{
	struct bencode_doc	*d = in->doc;

	if (d->n == BENCODE_MAX_VALUES)
		return (bencode_fail(in, "too many values"));
	if (d->n == d->cap) {
		d->cap = d->cap == 0 ? 32 : d->cap * 2;
		d->v = xrealloc(d->v, (size_t)d->cap * sizeof(*d->v));
	}
	memset(&d->v[d->n], 0, sizeof(d->v[0]));
	d->v[d->n].type = type;
	return ((int)d->n++);
}

/*
 * Digits up to the terminator: no sign unless neg_ok, no leading zero, no
 * "-0", no overflow.  Leaves off on the terminator.
 */
static int
bencode_number(struct bencode_in *in, char term, bool neg_ok, long long *out)
{
	unsigned long long	 v = 0, lim = LLONG_MAX;
	size_t			 start;
	bool			 neg = false;

	if (neg_ok && in->off < in->len && in->p[in->off] == '-') {
		neg = true;
		lim = (unsigned long long)LLONG_MAX + 1;
		in->off++;
	}
	start = in->off;
	while (in->off < in->len && in->p[in->off] >= '0' &&
	    in->p[in->off] <= '9') {
		unsigned	d = (unsigned)(in->p[in->off] - '0');

		if (v > (lim - d) / 10)
			return (bencode_fail(in, "number too large"));
		v = v * 10 + d;
		in->off++;
	}
	if (in->off == start)
		return (bencode_fail(in, "digits expected"));
	if (in->p[start] == '0' && in->off - start > 1)
		return (bencode_fail(in, "leading zero"));
	if (neg && v == 0)
		return (bencode_fail(in, "negative zero"));
	if (in->off >= in->len)
		return (bencode_fail(in, "unexpected end"));
	if (in->p[in->off] != term)
		return (bencode_fail(in, term == 'e' ? "'e' expected" :
		    "':' expected"));
	*out = neg ? (long long)(0 - v) : (long long)v;
	return (0);
}

static int
bencode_value(struct bencode_in *in, unsigned depth)
{
	struct bencode	*b;
	long long	 v;
	uint32_t	 n = 0, k;
	int		 idx;
	char		 c;

	if (in->off >= in->len)
		return (bencode_fail(in, "unexpected end"));
	c = in->p[in->off];
	if (c == 'i') {
		in->off++;
		if (bencode_number(in, 'e', true, &v) == -1)
			return (-1);
		in->off++;
		if ((idx = bencode_push(in, BENCODE_INT)) == -1)
			return (-1);
		in->doc->v[idx].i = v;
		in->doc->v[idx].end = (uint32_t)idx + 1;
		return (0);
	}
	if (c >= '0' && c <= '9') {
		if (bencode_number(in, ':', false, &v) == -1)
			return (-1);
		in->off++;
		if ((unsigned long long)v > in->len - in->off)
			return (bencode_fail(in, "string longer than the "
			    "input"));
		if ((idx = bencode_push(in, BENCODE_STR)) == -1)
			return (-1);
		b = &in->doc->v[idx];
		b->s.p = in->p + in->off;
		b->s.len = (size_t)v;
		b->end = (uint32_t)idx + 1;
		in->off += (size_t)v;
		return (0);
	}
	if (c != 'l' && c != 'd')
		return (bencode_fail(in, "unexpected byte"));
	if (depth >= BENCODE_MAX_DEPTH)
		return (bencode_fail(in, "nested too deep"));
	if ((idx = bencode_push(in, c == 'l' ? BENCODE_LIST :
	    BENCODE_DICT)) == -1)
		return (-1);
	in->off++;
	for (;;) {
		if (in->off >= in->len)
			return (bencode_fail(in, "unexpected end"));
		if (in->p[in->off] == 'e')
			break;
		if (c == 'd') {
			uint32_t	key = in->doc->n;

			if (in->p[in->off] < '0' || in->p[in->off] > '9')
				return (bencode_fail(in, "dictionary key "
				    "is not a string"));
			if (bencode_value(in, depth + 1) == -1)
				return (-1);
			/* Each earlier key of this dictionary: no twice. */
			for (k = (uint32_t)idx + 1; k < key;
			    k = in->doc->v[k].end) {
				const struct bencode	*a = &in->doc->v[k];
				const struct bencode	*b2 = &in->doc->v[key];

				if (a->s.len == b2->s.len &&
				    memcmp(a->s.p, b2->s.p, a->s.len) == 0)
					return (bencode_fail(in, "duplicate "
					    "dictionary key"));
				k = a->end;	/* to its value */
			}
		}
		if (bencode_value(in, depth + 1) == -1)
			return (-1);
		n++;
	}
	in->off++;
	b = &in->doc->v[idx];
	b->n = n;
	b->end = in->doc->n;
	return (0);
}

/*
 * Decodes exactly one value filling all len bytes.  On error the reason is
 * in err and doc is empty.  The strings of doc point into p.
 */
int
bencode_decode(struct bencode_doc *doc, const char *p, size_t len, char *err,
    size_t errlen)
{
	struct bencode_in	in = { p, len, 0, doc, err, errlen };

	doc->n = 0;
	if (len > BENCODE_MAX_LEN) {
		snprintf(err, errlen, "bencode: %zu bytes, at most %d", len,
		    BENCODE_MAX_LEN);
		return (-1);
	}
	if (bencode_value(&in, 0) == -1)
		goto fail;
	if (in.off != len) {
		bencode_fail(&in, "bytes after the value");
		goto fail;
	}
	return (0);
fail:
	doc->n = 0;
	return (-1);
}

void
bencode_doc_free(struct bencode_doc *doc)
{
	free(doc->v);
	doc->v = NULL;
	doc->n = doc->cap = 0;
}

const struct bencode *
bencode_root(const struct bencode_doc *doc)
{
	return (doc->n > 0 ? &doc->v[0] : NULL);
}

const struct bencode *
bencode_child(const struct bencode_doc *doc, const struct bencode *b)
{
	if (b == NULL || (b->type != BENCODE_LIST && b->type !=
	    BENCODE_DICT) || b->n == 0)
		return (NULL);
	(void)doc;
	return (b + 1);
}

const struct bencode *
bencode_next(const struct bencode_doc *doc, const struct bencode *cur,
    const struct bencode *parent)
{
	if (cur == NULL || cur->end >= parent->end)
		return (NULL);
	return (&doc->v[cur->end]);
}

const struct bencode *
bencode_get(const struct bencode_doc *doc, const struct bencode *dict,
    const char *key)
{
	const struct bencode	*k;
	size_t			 klen = strlen(key);

	if (dict == NULL || dict->type != BENCODE_DICT)
		return (NULL);
	for (k = bencode_child(doc, dict); k != NULL;
	    k = bencode_next(doc, &doc->v[k->end], dict))
		if (k->s.len == klen && memcmp(k->s.p, key, klen) == 0)
			return (&doc->v[k->end]);
	return (NULL);
}

bool
bencode_get_str(const struct bencode_doc *doc, const struct bencode *dict,
    const char *key, struct slice *out)
{
	const struct bencode	*v = bencode_get(doc, dict, key);

	if (v == NULL || v->type != BENCODE_STR)
		return (false);
	*out = v->s;
	return (true);
}

/* The encoder. */

void
bencode_add_str(struct buf *b, const char *p, size_t len)
{
	buf_addu(b, (unsigned long)len);
	buf_add(b, ":", 1);
	buf_add(b, p, len);
}

void
bencode_add_cstr(struct buf *b, const char *s)
{
	bencode_add_str(b, s, strlen(s));
}

void
bencode_add_int(struct buf *b, long long v)
{
	buf_addf(b, "i%llde", v);
}

void
bencode_open_dict(struct buf *b)
{
	buf_add(b, "d", 1);
}

void
bencode_open_list(struct buf *b)
{
	buf_add(b, "l", 1);
}

void
bencode_close(struct buf *b)
{
	buf_add(b, "e", 1);
}
