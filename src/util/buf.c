#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

static void
buf_reserve(struct buf *b, size_t n)
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
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
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
		buf_reserve(b, n);
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

void
fmt_hex64(char out[17], unsigned long long v)
{
	static const char	hex[] = "0123456789abcdef";
	int			i;

	for (i = 15; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 0xf];
	out[16] = '\0';
}

size_t
fmt_uint(char *out, unsigned long v)
{
	char	tmp[20];
	size_t	n = 0, i;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return (n);
}

void
buf_addu(struct buf *b, unsigned long v)
{
	char	tmp[20];

	buf_add(b, tmp, fmt_uint(tmp, v));
}
