#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "xmalloc.h"

void
buf_init(struct buf *b, size_t cap)
{
	b->cap = cap ? cap : 64;
	b->p = xmalloc(b->cap);
	b->len = 0;
	b->borrowed = false;
	b->p[0] = '\0';
}

/* Start on the caller's (stack) storage; growing moves to the heap. */
void
buf_init_on(struct buf *b, char *storage, size_t size)
{
	b->p = storage;
	b->cap = size;
	b->len = 0;
	b->borrowed = true;
	b->p[0] = '\0';
}

void
buf_cleanup(struct buf *b)
{
	if (!b->borrowed)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Room for n more bytes and the NUL (buf_add() found too little). */
void
buf_grow(struct buf *b, size_t n)
{
	char	*p;

	if (b->len + n + 1 <= b->cap)
		return;
	while (b->len + n + 1 > b->cap)
		b->cap *= 2;
	if (b->borrowed) {
		p = xmalloc(b->cap);
		memcpy(p, b->p, b->len + 1);
		b->p = p;
		b->borrowed = false;
	} else
		b->p = xrealloc(b->p, b->cap);
}

void
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		buf_grow(b, n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += n;
}

/* The n items joined by sep: "a, b, c" for a header value or a log line. */
void
buf_add_list(struct buf *b, const struct slice *items, unsigned n,
    const char *sep)
{
	unsigned	i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_adds(b, sep);
		buf_add(b, items[i].p, items[i].len);
	}
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char	*p = b->p;

	if (b->borrowed)
		p = xstrndup(b->p, b->len);
	if (len != NULL)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return (p);
}

void
strlist_add(struct strlist *l, const char *s)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

bool
strlist_has(const struct strlist *l, const char *s, bool nocase)
{
	unsigned	i;

	for (i = 0; i < l->n; i++)
		if ((nocase ? strcasecmp(l->v[i], s) : strcmp(l->v[i], s)) ==
		    0)
			return (true);
	return (false);
}

void
strlist_free(struct strlist *l)
{
	unsigned	i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* n bytes as 2n lower-case hex digits and a NUL. */
void
fmt_hex(char *out, const void *p, size_t n)
{
	static const char	hex[] = "0123456789abcdef";
	const uint8_t		*b = p;
	size_t			 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* A hex digit's value, either case; -1: not one. */
int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

void
fmt_hex64(char out[17], unsigned long long v)
{
	static const char	hex2[513] =
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
	int			i;

	/* A byte (two digits) at a time. */
	for (i = 14; i >= 0; i -= 2, v >>= 8)
		memcpy(out + i, hex2 + 2 * (v & 0xff), 2);
	out[16] = '\0';
}

size_t
fmt_uint(char *out, unsigned long v)
{
	static const char	digits2[201] =
	    "0001020304050607080910111213141516171819"
	    "2021222324252627282930313233343536373839"
	    "4041424344454647484950515253545556575859"
	    "6061626364656667686970717273747576777879"
	    "8081828384858687888990919293949596979899";
	uint64_t	p10 = 10;	/* 10^19 fits */
	size_t		n = 1, i;

	/* How many digits, then two at a time from the last. */
	while (n < 20 && v >= p10) {
		n++;
		if (n == 20)
			break;
		p10 *= 10;
	}
	for (i = n; v >= 100; v /= 100) {
		i -= 2;
		memcpy(out + i, digits2 + 2 * (v % 100), 2);
	}
	if (v >= 10)
		memcpy(out + i - 2, digits2 + 2 * v, 2);
	else
		out[i - 1] = (char)('0' + v);
	return (n);
}

void
buf_addu(struct buf *b, unsigned long v)
{
	char	tmp[20];

	buf_add(b, tmp, fmt_uint(tmp, v));
}
