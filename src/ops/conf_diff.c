/*
 * What a reload changed: the two configurations are described by
 * conf_print() (the text of `ospreyd -t -v`) and the descriptions are
 * compared record by record, so that every key conf_print() knows is
 * covered without a second list of keys here.
 *
 * A record is a line that starts in column 0 plus the indented lines
 * under it (a route and its targets).  Records are matched by key: the
 * first word; a route by its name, or by its user and domain patterns
 * when it has none.  A key with one record on each side that differs is
 * "changed"; otherwise records are "added" or "removed".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_diff.h"
#include "xmalloc.h"

#define WORD_LEN	128
#define KEY_LEN		(3 * WORD_LEN + 4)
#define LINE_WORDS	64

struct rec {
	char		  key[KEY_LEN];
	const char	 *head;		/* the first line, borrowed */
	const char	**sub;		/* owned array of borrowed lines */
	unsigned	  nsub;
	bool		  same;		/* an identical record on the other side */
};

struct recs {
	char		*text;		/* owned copy, split into lines */
	struct rec	*r;		/* owned */
	unsigned	 n;
};

char *
conf_describe(const struct conf *cf)
{
	char	*p = NULL;
	size_t	 len = 0;
	FILE	*fp;

	if ((fp = open_memstream(&p, &len)) == NULL)
		return (xstrdup(""));
	conf_print(cf, fp);
	fclose(fp);
	return (p);
}

/* "route bob" or "route user=^bob$ domain=*"; else the first word. */
static void
recs_key(const char *line, char *key, size_t len)
{
	char	 w[4][WORD_LEN];
	int	 n;

	memset(w, 0, sizeof(w));
	n = sscanf(line, "%127s %127s %127s %127s", w[0], w[1], w[2], w[3]);
	if (n >= 2 && (strcmp(w[0], "route") == 0 ||
	    strcmp(w[0], "failure_route") == 0)) {
		if (strcmp(w[1], "-") != 0)
			snprintf(key, len, "%s %s", w[0], w[1]);
		else
			snprintf(key, len, "%s %s %s", w[0], w[2], w[3]);
	} else
		snprintf(key, len, "%s", n >= 1 ? w[0] : "");
}

static void
recs_parse(struct recs *rs, const char *text)
{
	struct rec	*r = NULL;
	char		*line, *save = NULL;

	memset(rs, 0, sizeof(*rs));
	rs->text = xstrdup(text);
	for (line = strtok_r(rs->text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == ' ' || line[0] == '\t') {
			if (r == NULL)
				continue;
			while (*line == ' ' || *line == '\t')
				line++;
			r->sub = xrealloc(r->sub, (r->nsub + 1) *
			    sizeof(*r->sub));
			r->sub[r->nsub++] = line;
			continue;
		}
		rs->r = xrealloc(rs->r, (rs->n + 1) * sizeof(*rs->r));
		r = &rs->r[rs->n++];
		memset(r, 0, sizeof(*r));
		r->head = line;
		recs_key(line, r->key, sizeof(r->key));
	}
}

static void
recs_free(struct recs *rs)
{
	unsigned	i;

	for (i = 0; i < rs->n; i++)
		free(rs->r[i].sub);
	free(rs->r);
	free(rs->text);
	memset(rs, 0, sizeof(*rs));
}

static bool
rec_equal(const struct rec *a, const struct rec *b)
{
	unsigned	i;

	if (strcmp(a->key, b->key) != 0 || strcmp(a->head, b->head) != 0 ||
	    a->nsub != b->nsub)
		return (false);
	for (i = 0; i < a->nsub; i++)
		if (strcmp(a->sub[i], b->sub[i]) != 0)
			return (false);
	return (true);
}

static unsigned
recs_count(const struct recs *rs, const char *key)
{
	unsigned	i, n = 0;

	for (i = 0; i < rs->n; i++)
		n += strcmp(rs->r[i].key, key) == 0;
	return (n);
}

static struct rec *
recs_find(struct recs *rs, const char *key)
{
	unsigned	i;

	for (i = 0; i < rs->n; i++)
		if (strcmp(rs->r[i].key, key) == 0)
			return (&rs->r[i]);
	return (NULL);
}

/* What follows the key on a head line: "udp 127.0.0.1 port 5060". */
static const char *
rec_value(const struct rec *r)
{
	const char	*v = r->head;
	size_t		 k = strlen(r->key);

	if (strncmp(v, r->key, k) == 0)
		v += k;
	else
		v += strcspn(v, " ");
	return (v + strspn(v, " "));
}

/* Up to LINE_WORDS - 1 words of s, cut in place; LINE_WORDS - 1: more. */
static unsigned
split_words(char *s, char **w)
{
	char		*save = NULL;
	unsigned	 n = 0;

	for (w[n] = strtok_r(s, " ", &save); w[n] != NULL &&
	    n < LINE_WORDS - 1; w[n] = strtok_r(NULL, " ", &save))
		n++;
	return (n);
}

/*
 * "t1=50 -> t1=100" when only key=value words differ, one for one; the
 * whole values otherwise.
 */
static void
diff_words(struct buf *out, const char *a, const char *b)
{
	char		*ca = xstrdup(a), *cb = xstrdup(b);
	char		*wa[LINE_WORDS], *wb[LINE_WORDS];
	unsigned	 na, nb, i, n = 0;
	bool		 kv;

	na = split_words(ca, wa);
	nb = split_words(cb, wb);
	kv = na == nb && na < LINE_WORDS - 1;	/* a long line: shown whole */
	for (i = 0; kv && i < na; i++)
		if (strcmp(wa[i], wb[i]) != 0 && (strchr(wa[i], '=') == NULL ||
		    strchr(wb[i], '=') == NULL))
			kv = false;
	if (!kv) {
		buf_addf(out, "%s -> %s", a, b);
		goto done;
	}
	for (i = 0; i < na; i++)
		if (strcmp(wa[i], wb[i]) != 0)
			buf_addf(out, "%s%s", n++ ? " " : "", wa[i]);
	buf_adds(out, " ->");
	for (i = 0; i < na; i++)
		if (strcmp(wa[i], wb[i]) != 0)
			buf_addf(out, " %s", wb[i]);
done:
	free(ca);
	free(cb);
}

static bool
sub_has(const struct rec *r, const char *line)
{
	unsigned	i;

	for (i = 0; i < r->nsub; i++)
		if (strcmp(r->sub[i], line) == 0)
			return (true);
	return (false);
}

/* One record became another under the same key. */
static void
diff_changed(struct buf *out, const struct rec *a, const struct rec *b)
{
	const char	*sep = "";
	unsigned	 i;

	buf_addf(out, "%s: ", a->key);
	if (a->nsub == 0 && b->nsub == 0) {
		diff_words(out, rec_value(a), rec_value(b));
		buf_adds(out, "\n");
		return;
	}
	buf_adds(out, "changed:");
	if (strcmp(a->head, b->head) != 0) {
		buf_adds(out, " ");
		diff_words(out, a->head, b->head);
		sep = ";";
	}
	for (i = 0; i < a->nsub; i++)
		if (!sub_has(b, a->sub[i])) {
			buf_addf(out, "%s %s removed", sep, a->sub[i]);
			sep = ";";
		}
	for (i = 0; i < b->nsub; i++)
		if (!sub_has(a, b->sub[i])) {
			buf_addf(out, "%s %s added", sep, b->sub[i]);
			sep = ";";
		}
	if (*sep == '\0')
		buf_adds(out, " order of its lines");
	buf_adds(out, "\n");
}

static void
diff_one(struct buf *out, const struct rec *r, const char *what)
{
	if (r->nsub > 0)	/* a route: its key says which */
		buf_addf(out, "%s: %s\n", r->key, what);
	else
		buf_addf(out, "%s %s: %s\n", r->key, what, rec_value(r));
}

unsigned
conf_diff(const char *old, const char *new, struct buf *out)
{
	struct recs	 a, b;
	struct rec	*ra, *rb;
	size_t		 len0 = out->len;
	unsigned	 i, j, n = 0;

	recs_parse(&a, old);
	recs_parse(&b, new);
	for (i = 0; i < a.n; i++)
		for (j = 0; j < b.n; j++)
			if (!b.r[j].same && rec_equal(&a.r[i], &b.r[j])) {
				a.r[i].same = b.r[j].same = true;
				break;
			}
	/* Changed and removed, in the old order; then the added ones. */
	for (i = 0; i < a.n; i++) {
		ra = &a.r[i];
		if (ra->same)
			continue;
		if (recs_count(&a, ra->key) == 1 &&
		    recs_count(&b, ra->key) == 1 &&
		    !(rb = recs_find(&b, ra->key))->same) {
			diff_changed(out, ra, rb);
			rb->same = true;	/* reported */
		} else
			diff_one(out, ra, "removed");
	}
	for (j = 0; j < b.n; j++)
		if (!b.r[j].same)
			diff_one(out, &b.r[j], "added");
	for (i = len0; i < out->len; i++)
		n += out->p[i] == '\n';
	recs_free(&a);
	recs_free(&b);
	return (n);
}
