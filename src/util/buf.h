#ifndef OSPREY_BUF_H
#define OSPREY_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes someone else owns: a view into a message, a string, a buffer. */
struct slice {
	const char	*p;
	size_t		 len;
};

#define SLICE_FMT	"%.*s"
#define SLICE_ARG(s)	(int)(s).len, (s).p

/* A growable byte buffer; always NUL terminated after its data. */
struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	bool	 borrowed;	/* p is the caller's storage: never freed */
};

void	buf_init(struct buf *, size_t);
void	buf_init_on(struct buf *, char *, size_t);	/* caller's storage */
void	buf_cleanup(struct buf *);
void	buf_grow(struct buf *, size_t);
void	buf_addf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	buf_add_list(struct buf *, const struct slice *, unsigned,
	    const char *);
void	buf_addu(struct buf *, unsigned long);
char	*buf_steal(struct buf *, size_t *);	/* caller frees */

/* Inline: the per-message paths add many short pieces. */
static inline void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap)
		buf_grow(b, n);
	__builtin_memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, __builtin_strlen(s));
}

/* Formatting without printf, for the per-message paths. */
void	fmt_hex64(char out[17], unsigned long long);	/* %016llx */
void	fmt_hex(char *out, const void *, size_t);	/* 2n digits, NUL */
int	hex_digit(char);		/* 0-15, either case; -1 not one */
size_t	fmt_uint(char *out, unsigned long);	/* %lu, no NUL; <= 20 */

/* A list of owned strings (from a config array). */
struct strlist {
	char		**v;
	unsigned	  n;
};

void	strlist_add(struct strlist *, const char *);
bool	strlist_has(const struct strlist *, const char *, bool nocase);
void	strlist_free(struct strlist *);

#endif
