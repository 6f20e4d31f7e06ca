/*
 * The config file (libconfig syntax) into struct conf.  Every error names
 * the file and the line: "osprey.conf:12: timers.t1: must be 1..60000".
 *
 * Each section is a table of its keys (name, type, range, default, the
 * field it fills), as nginx and the OpenBSD daemons do: one loader checks
 * unknown keys, types and ranges for all of them, and `ospreyd -t -v`
 * prints the same tables back, every value spelled out, a record a line
 * ("timers t1=500 t2=4000 ...", "route gw user=^9 domain=* ...", "domain
 * example.test"), which conf_diff.c compares on reload.  Keys that are
 * more than a number, a flag or a string (addresses, paths, lists) have a
 * parse and a print function of their own.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <libconfig.h>

#include "conf.h"
#include "ctl.h"
#include "log.h"
#include "xmalloc.h"

struct ctx {
	const char	*path;
	char		*err;
	size_t		 errlen;
};

struct key;

/*
 * A key's own parser: s is the setting (NULL when absent: set the
 * default), g the group it is in (for the line of "required"), kw the
 * key's full name for messages ("routes.targets").
 */
typedef int key_parse(struct ctx *, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *);
/* Writes the value as one word. */
typedef void key_print(FILE *, const struct key *, const void *obj);
/* Writes whole lines, "INDENT ITEM VALUE...\n", one a list element. */
typedef void key_lines(FILE *, const struct key *, const void *obj,
    const char *indent);

enum key_type {
	K_INT,		/* min..max, stored times scale in a field of size */
	K_BOOL,
	K_STR,		/* copied; names: one of these; valid: checks it */
	K_ENUM,		/* one of names, stored as its index (an int) */
	K_REGEX,	/* POSIX extended: off the source, aux the regex_t */
	K_GROUP,	/* a group { ... } filled by the section sub */
	K_LIST,		/* ( { ... }, ... ) into the array at off, each by sub;
			   the count at aux, at most max, at least min */
	K_FN,		/* parse, and print (a word) or lines, do it all */
};

#define NOFIELD	((size_t)-1)	/* checked, but another key uses it */

struct section;

struct key {
	const char		*name;
	enum key_type		 type;
	size_t			 off;	/* of the field in the section's obj */
	size_t			 size;	/* K_INT: of the field */
	long long		 min, max, def;	/* K_INT; def also K_BOOL */
	size_t			 stride;	/* K_LIST: of an entry */
	long long		 scale;	/* K_INT: stored per unit (ms per s) */
	const char		*sdef;	/* K_STR, K_ENUM, K_REGEX */
	const char *const	*names;	/* K_ENUM, K_STR; K_FN: its default */
	bool			 required;
	bool			 head;	/* printed first and bare: an id */
	const char		*item;	/* K_LIST, lines: the word of a line */
	bool			 empty_null;	/* K_STR: "" stored as NULL */
	int			 flags;	/* K_REGEX: for regcomp() */
	size_t			 aux;	/* K_REGEX: the regex_t; K_LIST: n */
	int			(*valid)(const char *, char *, size_t);
	key_parse		*parse;	/* K_FN */
	key_print		*print;	/* K_FN: a word */
	key_lines		*lines;	/* K_FN: lines instead */
	const struct section	*sub;	/* K_GROUP */
};

struct section {
	const char	*hint;		/* "{ t1 = ...; }", for the errors */
	const struct key *keys;		/* up to a NULL name */
	/* Rules across keys, once all of them are read (g may be NULL). */
	int		(*check)(struct ctx *, const config_setting_t *g,
			    void *obj);
	/* Words after the keys in the dump (derived values: " d=32000"). */
	void		(*note)(FILE *, const void *obj);
	bool		 absent_off;	/* absent: off, no defaults */
	bool		 brief;		/* dump only keys off their default */
};

#define FLD(T, m)	.off = offsetof(T, m),			\
			.size = sizeof(((T *)0)->m)
#define INT(n, T, m, lo, hi, d)					\
	{ .name = n, .type = K_INT, FLD(T, m), .min = lo, .max = hi,	\
	    .def = d, .scale = 1 }
#define SECS(n, T, m, lo, hi, d)	/* seconds, stored in ms */	\
	{ .name = n, .type = K_INT, FLD(T, m), .min = lo, .max = hi,	\
	    .def = d, .scale = 1000 }
#define BOOL(n, T, m, d)						\
	{ .name = n, .type = K_BOOL, FLD(T, m), .def = d }
#define ENUM(n, T, m, list)						\
	{ .name = n, .type = K_ENUM, FLD(T, m), .names = list }
#define REGEX(n, T, src, re, fl, d)					\
	{ .name = n, .type = K_REGEX, FLD(T, src),			\
	    .aux = offsetof(T, re), .flags = fl, .sdef = d }
#define GROUP(n, s)	{ .name = n, .type = K_GROUP, .sub = &s }
#define LIST(n, it, T, m, cnt, s, lo)					\
	{ .name = n, .item = it, .type = K_LIST, .off = offsetof(T, m),	\
	    .stride = sizeof(((T *)0)->m[0]), .aux = offsetof(T, cnt),	\
	    .min = lo, .max = sizeof(((T *)0)->m) /			\
	    sizeof(((T *)0)->m[0]), .sub = &s }
#define FN(n, T, m, p, pr)						\
	{ .name = n, .type = K_FN, FLD(T, m), .parse = p, .print = pr }
#define LINES(n, it, T, m, p, ls)					\
	{ .name = n, .item = it, .type = K_FN, FLD(T, m), .parse = p,	\
	    .lines = ls }
#define END		{ .name = NULL }
#define SECTION(var, k, h, ...)						\
	static const struct section var = { .hint = h, .keys = k, __VA_ARGS__ }

#define FIELD(obj, k)	((void *)((char *)(obj) + (k)->off))
#define CFIELD(obj, k)	((const void *)((const char *)(obj) + (k)->off))

static int
conf_err(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(c->err, c->errlen, "%s:%d: ", c->path,
	    s && config_setting_source_line(s) > 0 ?
	    config_setting_source_line(s) : 1);
	if (n < 0 || (size_t)n >= c->errlen)
		return (-1);
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
	return (-1);
}

/* "x" is not supported (only "a") | "a" or "b" | one of a, b, c */
static int
conf_err_names(struct ctx *c, const config_setting_t *s, const char *kw,
    const char *v, const char *const *names)
{
	char	list[256];
	size_t	n, i, off = 0;

	for (n = 0; names[n] != NULL; n++)
		;
	if (n == 1)
		return (conf_err(c, s, "%s: \"%s\" is not supported (only "
		    "\"%s\")", kw, v, names[0]));
	if (n == 2)
		return (conf_err(c, s, "%s: \"%s\" is not \"%s\" or \"%s\"",
		    kw, v, names[0], names[1]));
	list[0] = '\0';
	for (i = 0; i < n && off < sizeof(list); i++)
		off += snprintf(list + off, sizeof(list) - off, "%s%s",
		    i ? ", " : "", names[i]);
	return (conf_err(c, s, "%s: \"%s\" is not one of %s", kw, v, list));
}

/* Every member of group g must be one of the keys. */
static int
check_keys(struct ctx *c, const config_setting_t *g, const char *where,
    const struct key *keys)
{
	const struct key	*k;
	int			 i;

	for (i = 0; i < config_setting_length(g); i++) {
		const config_setting_t	*m = config_setting_get_elem(g, i);
		const char		*name = config_setting_name(m);

		for (k = keys; k->name != NULL; k++)
			if (name != NULL && strcmp(name, k->name) == 0)
				break;
		if (k->name == NULL)
			return (conf_err(c, m, "unknown key %s%s%s", where,
			    *where ? "." : "", name ? name : "?"));
	}
	return (0);
}

static int
conf_int(struct ctx *c, const config_setting_t *s, const char *kw,
    long long min, long long max, long long *out)
{
	long long	v;

	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return (conf_err(c, s, "%s: must be a number", kw));
	if (v < min || v > max)
		return (conf_err(c, s, "%s: must be %lld..%lld, not %lld", kw,
		    min, max, v));
	*out = v;
	return (0);
}

static void
int_store(void *p, size_t size, long long v)
{
	switch (size) {
	case sizeof(uint16_t):
		*(uint16_t *)p = (uint16_t)v;
		break;
	case sizeof(uint32_t):
		*(uint32_t *)p = (uint32_t)v;
		break;
	default:
		*(uint64_t *)p = (uint64_t)v;
		break;
	}
}

static long long
int_load(const void *p, size_t size)
{
	switch (size) {
	case sizeof(uint16_t):
		return (*(const uint16_t *)p);
	case sizeof(uint32_t):
		return (*(const uint32_t *)p);
	default:
		return ((long long)*(const uint64_t *)p);
	}
}

static int
conf_string(struct ctx *c, const config_setting_t *s, const char *kw,
    const char **out)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return (conf_err(c, s, "%s: must be a string", kw));
	*out = config_setting_get_string(s);
	return (0);
}

static int
names_index(const char *const *names, const char *v)
{
	int	i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], v) == 0)
			return (i);
	return (-1);
}

static int
conf_regex(struct ctx *c, const config_setting_t *at, const char *kw,
    const struct key *k, void *obj, const char *src)
{
	char	**srcp = FIELD(obj, k);
	regex_t	 *re = (regex_t *)((char *)obj + k->aux);
	char	  msg[128];
	int	  rc;

	if (*srcp != NULL) {
		regfree(re);
		free(*srcp);
		*srcp = NULL;
	}
	if (src == NULL)
		return (0);
	if ((rc = regcomp(re, src, k->flags)) != 0) {
		regerror(rc, re, msg, sizeof(msg));
		return (conf_err(c, at, "%s: bad regular expression \"%s\": %s",
		    kw, src, msg));
	}
	*srcp = xstrdup(src);
	return (0);
}

static int	conf_section(struct ctx *, const config_setting_t *,
		    const char *, const struct section *, void *);
static int	conf_entry(struct ctx *, const config_setting_t *,
		    const char *, const struct section *, void *);

/* A list of groups into an array of structs. */
static int
conf_list(struct ctx *c, const config_setting_t *s, const config_setting_t *g,
    const char *kw, const struct key *k, void *obj)
{
	unsigned	*n = (unsigned *)((char *)obj + k->aux);
	int		 i;

	if (s == NULL && k->min == 0)
		return (0);
	if (s == NULL)
		return (conf_err(c, g, "%s: at least one is required", kw));
	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return (conf_err(c, s, "%s: must be a list ( %s )", kw,
		    k->sub->hint));
	if (config_setting_length(s) < k->min)
		return (conf_err(c, s, "%s: at least one is required", kw));
	for (i = 0; i < config_setting_length(s); i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);
		char			*p;

		if (i == k->max)
			return (conf_err(c, e, "%s: at most %lld", kw, k->max));
		p = (char *)obj + k->off + (*n)++ * k->stride;
		memset(p, 0, k->stride);
		if (conf_entry(c, e, kw, k->sub, p) == -1)
			return (-1);
	}
	return (0);
}

/* One key of group g (NULL: absent) into obj; s is its setting or NULL. */
static int
conf_key(struct ctx *c, const config_setting_t *s, const config_setting_t *g,
    const char *where, const struct key *k, void *obj)
{
	const config_setting_t	*at = s != NULL ? s : g;
	const char		*str = k->sdef;
	char			 kw[128], msg[256];
	long long		 v = k->def;
	char			**sp;
	int			 i = 0;

	snprintf(kw, sizeof(kw), "%s%s%s", where, *where ? "." : "",
	    k->name);
	if (s == NULL && k->required)
		return (conf_err(c, g, "%s: required", kw));
	switch (k->type) {
	case K_INT:
		if (s != NULL && conf_int(c, s, kw, k->min, k->max, &v) == -1)
			return (-1);
		if (k->off != NOFIELD)
			int_store(FIELD(obj, k), k->size, v * k->scale);
		return (0);
	case K_BOOL:
		if (s != NULL) {
			if (config_setting_type(s) != CONFIG_TYPE_BOOL)
				return (conf_err(c, s, "%s: must be true or "
				    "false", kw));
			v = config_setting_get_bool(s);
		}
		*(bool *)FIELD(obj, k) = v != 0;
		return (0);
	case K_STR:
	case K_ENUM:
	case K_REGEX:
		if (s != NULL && conf_string(c, s, kw, &str) == -1)
			return (-1);
		break;
	case K_GROUP:
		if (s == NULL && k->sub->absent_off)
			return (0);
		if (s != NULL && !config_setting_is_group(s))
			return (conf_err(c, s, "%s: must be a group %s", kw,
			    k->sub->hint));
		return (conf_section(c, s, kw, k->sub, obj));
	case K_LIST:
		return (conf_list(c, s, g, kw, k, obj));
	case K_FN:
		return (k->parse(c, s, g, kw, obj, k));
	}
	if (k->type == K_REGEX)
		return (conf_regex(c, at, kw, k, obj, str));
	if (str != NULL && k->names != NULL &&
	    (i = names_index(k->names, str)) == -1)
		return (conf_err_names(c, at, kw, str, k->names));
	if (k->type == K_ENUM) {
		*(int *)FIELD(obj, k) = str != NULL ? i : 0;
		return (0);
	}
	if (str != NULL && k->valid != NULL &&
	    k->valid(str, msg, sizeof(msg)) == -1)
		return (conf_err(c, at, "%s: %s", kw, msg));
	sp = FIELD(obj, k);
	free(*sp);
	*sp = str == NULL || (k->empty_null && *str == '\0') ? NULL :
	    xstrdup(str);
	return (0);
}

/* Group g (NULL: absent, every key takes its default) into obj. */
static int
conf_section(struct ctx *c, const config_setting_t *g, const char *where,
    const struct section *sec, void *obj)
{
	const struct key	*k;

	if (g != NULL && check_keys(c, g, where, sec->keys) == -1)
		return (-1);
	for (k = sec->keys; k->name != NULL; k++)
		if (conf_key(c, g ? config_setting_get_member(g, k->name) :
		    NULL, g, where, k, obj) == -1)
			return (-1);
	if (sec->check != NULL && sec->check(c, g, obj) == -1)
		return (-1);
	return (0);
}

/* An entry of a list ( { ... }, ... ). */
static int
conf_entry(struct ctx *c, const config_setting_t *e, const char *where,
    const struct section *sec, void *obj)
{
	if (!config_setting_is_group(e))
		return (conf_err(c, e, "%s: each entry is a group %s", where,
		    sec->hint));
	return (conf_section(c, e, where, sec, obj));
}

/* A path from the config; a relative one is taken from the config's dir. */
static char *
conf_path(const char *cfpath, const char *p)
{
	const char	*slash = strrchr(cfpath, '/');
	size_t		 dlen;
	char		*out;

	if (*p == '/' || slash == NULL)
		return (xstrdup(p));
	dlen = (size_t)(slash - cfpath) + 1;
	out = xmalloc(dlen + strlen(p) + 1);
	memcpy(out, cfpath, dlen);
	strcpy(out + dlen, p);
	return (out);
}

/* Validators of strings. */

static int
valid_ip(const char *v, char *msg, size_t len)
{
	struct tp_addr	a;

	if (tp_addr_set(&a, (struct slice){ v, strlen(v) }, 5060) == 0)
		return (0);
	snprintf(msg, len, "\"%s\" is not an IPv4 or IPv6 address", v);
	return (-1);
}

static int
valid_socket(const char *v, char *msg, size_t len)
{
	if (*v == '\0' || *v == '/')	/* "" turns the socket off */
		return (0);
	snprintf(msg, len, "must be an absolute path");
	return (-1);
}

/*
 * The dump: a record a line, "NAME k=v k=v ..." for a group and an entry,
 * "ITEM VALUE" for each element of a list; indented lines under an entry
 * for its own lists (a route's targets).  Values are single words.
 */

static void	print_lines(FILE *, const struct key *, const void *,
		    const char *);

static void
print_str(FILE *fp, const struct key *k, const void *obj)
{
	const char	*v = *(char *const *)CFIELD(obj, k);

	fprintf(fp, "%s", v != NULL ? v : "-");
}

/* A scalar key's value as one word. */
static void
print_word(FILE *fp, const struct key *k, const void *obj)
{
	const void	*p = CFIELD(obj, k);
	const char	*v;

	switch (k->type) {
	case K_INT:
		fprintf(fp, "%lld", int_load(p, k->size) / k->scale);
		break;
	case K_BOOL:
		fprintf(fp, "%s", *(const bool *)p ? "yes" : "no");
		break;
	case K_STR:
		print_str(fp, k, obj);
		break;
	case K_REGEX:		/* absent: any */
		v = *(char *const *)p;
		fprintf(fp, "%s", v != NULL ? v : "*");
		break;
	case K_ENUM:
		fprintf(fp, "%s", k->names[*(const int *)p]);
		break;
	case K_FN:
		k->print(fp, k, obj);
		break;
	default:
		break;
	}
}

static bool
is_default(const struct key *k, const void *obj)
{
	const void	*p = CFIELD(obj, k);

	switch (k->type) {
	case K_INT:
		return (int_load(p, k->size) == k->def * k->scale);
	case K_BOOL:
		return (*(const bool *)p == (k->def != 0));
	case K_ENUM:
		return (*(const int *)p == 0);
	default:
		return (false);
	}
}

/* The keys of sec in obj: the head bare, then " k=v", lists left out. */
static void
print_words(FILE *fp, const struct section *sec, const void *obj)
{
	const struct key	*k;

	for (k = sec->keys; k->name != NULL; k++)
		if (k->head) {
			fputc(' ', fp);
			print_word(fp, k, obj);
		}
	for (k = sec->keys; k->name != NULL; k++) {
		if (k->head || k->off == NOFIELD || k->type == K_LIST ||
		    k->type == K_GROUP || (k->type == K_FN && k->lines) ||
		    (sec->brief && is_default(k, obj)))
			continue;
		fprintf(fp, " %s=", k->name);
		print_word(fp, k, obj);
	}
	if (sec->note != NULL)
		sec->note(fp, obj);
}

/* An entry of a list: its record, then its own lists indented. */
static void
print_entry(FILE *fp, const char *item, const struct section *sec,
    const void *obj, const char *indent)
{
	const struct key	*k;

	fprintf(fp, "%s%s", indent, item);
	print_words(fp, sec, obj);
	fputc('\n', fp);
	for (k = sec->keys; k->name != NULL; k++)
		print_lines(fp, k, obj, "  ");
}

/* The lines of a list key; nothing for another. */
static void
print_lines(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const char	*base = (const char *)obj + k->off;
	unsigned	 i, n;

	if (k->type == K_FN && k->lines != NULL)
		k->lines(fp, k, obj, indent);
	if (k->type != K_LIST)
		return;
	n = *(const unsigned *)((const char *)obj + k->aux);
	for (i = 0; i < n; i++)
		print_entry(fp, k->item, k->sub, base + i * k->stride, indent);
}

/* A root section: a record each scalar, group and list element. */
static void
print_root(FILE *fp, const struct section *sec, const void *obj)
{
	const struct key	*k, *g;

	for (k = sec->keys; k->name != NULL; k++) {
		if (k->type == K_LIST || (k->type == K_FN && k->lines)) {
			print_lines(fp, k, obj, "");
			continue;
		}
		if (k->type != K_GROUP) {
			fprintf(fp, "%s ", k->name);
			print_word(fp, k, obj);
			fputc('\n', fp);
			continue;
		}
		if (k->sub->absent_off &&
		    *(char *const *)CFIELD(obj, k->sub->keys) == NULL) {
			fprintf(fp, "%s off\n", k->name);
			continue;
		}
		fprintf(fp, "%s", k->name);
		print_words(fp, k->sub, obj);
		fputc('\n', fp);
		for (g = k->sub->keys; g->name != NULL; g++)
			print_lines(fp, g, obj, "");
	}
}

/* The keys that are more than a scalar: their parsers and printers. */

/* An array of non-empty strings, into a struct strlist field. */
static int
parse_strlist(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct strlist	*l = FIELD(obj, k);
	int		 i, n;

	if (s == NULL)
		return (0);
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return (conf_err(c, s, "%s: must be a list of strings", kw));
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING ||
		    *config_setting_get_string(e) == '\0')
			return (conf_err(c, e, "%s: must be non-empty strings",
			    kw));
		strlist_add(l, config_setting_get_string(e));
	}
	return (0);
}

static void
lines_strlist(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const struct strlist	*l = CFIELD(obj, k);
	unsigned		 i;

	for (i = 0; i < l->n; i++)
		fprintf(fp, "%s%s %s\n", indent, k->item, l->v[i]);
}

static int
parse_domains(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct proxy_settings	*ps = &((struct conf *)obj)->proxy;
	int			 i, n;

	if (s == NULL)
		return (0);
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return (conf_err(c, s, "%s: must be a list of strings", kw));
	n = config_setting_length(s);
	ps->domains = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING ||
		    *config_setting_get_string(e) == '\0')
			return (conf_err(c, e, "%s: must be host names", kw));
		ps->domains[ps->ndomains++] =
		    xstrdup(config_setting_get_string(e));
	}
	return (0);
}

static void
lines_domains(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const struct conf	*cf = obj;
	unsigned		 i;

	for (i = 0; i < cf->proxy.ndomains; i++)
		fprintf(fp, "%s%s %s\n", indent, k->item,
		    cf->proxy.domains[i]);
}

/*
 * A code set: one code or name, or a list of them; absent, the key's
 * names are the default.
 */
static int
parse_codes(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct codeset	*cs = FIELD(obj, k);
	bool		 many;
	char		 msg[256], num[16];
	int		 i, n = 1;

	for (i = 0; s == NULL && k->names != NULL && k->names[i] != NULL; i++)
		codeset_add(cs, k->names[i], msg, sizeof(msg));
	if (s == NULL)
		return (0);
	if ((many = config_setting_is_array(s) || config_setting_is_list(s)))
		n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = many ?
		    config_setting_get_elem(s, i) : s;
		const char		*item;

		if (config_setting_type(e) == CONFIG_TYPE_INT) {
			snprintf(num, sizeof(num), "%d",
			    config_setting_get_int(e));
			item = num;
		} else if (config_setting_type(e) == CONFIG_TYPE_STRING)
			item = config_setting_get_string(e);
		else
			return (conf_err(c, e, "%s: codes are numbers, classes "
			    "like \"5xx\" or cause names", kw));
		if (codeset_add(cs, item, msg, sizeof(msg)) == -1)
			return (conf_err(c, e, "%s: %s", kw, msg));
	}
	return (0);
}

static void
print_codes(FILE *fp, const struct key *k, const void *obj)
{
	const struct codeset	*cs = CFIELD(obj, k);
	unsigned		 i;

	fprintf(fp, "[");
	for (i = 0; i < cs->n; i++) {
		int	v = cs->item[i].value;

		fprintf(fp, "%s", i ? "," : "");
		if (cs->item[i].kind == CS_CODE)
			fprintf(fp, "%d", v);
		else if (cs->item[i].kind == CS_CLASS)
			fprintf(fp, "%dxx", v);
		else
			fprintf(fp, "%s", sip_cause_name(v));
	}
	fprintf(fp, "]");
}

static const struct key target_keys[] = {
	{ .name = "uri", .type = K_STR, FLD(struct target, uri),
	    .required = true, .head = true },
	INT("timeout", struct target, timeout_ms, 0, 3600000, 0),
	INT("weight", struct target, weight, 0, 1000, 1),
	END
};

SECTION(target_sec, target_keys, "{ uri = ...; timeout = ...; }",
    .brief = true);

/* After the route's timeout: it is the default of the targets' one. */
static int
parse_targets(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct route		*r = obj;
	const config_setting_t	*ts;
	uint32_t		 tmo = 0;
	char			 msg[256];
	int			 i, rc;

	if (s == NULL)
		return (conf_err(c, g, "%s: required", kw));
	if ((!config_setting_is_array(s) && !config_setting_is_list(s)) ||
	    config_setting_length(s) == 0)
		return (conf_err(c, s, "%s: must be a non-empty list of SIP "
		    "URIs", kw));
	if ((ts = config_setting_get_member(g, "timeout")) != NULL)
		tmo = (uint32_t)config_setting_get_int64(ts);
	for (i = 0; i < config_setting_length(s); i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);
		struct target		 t;

		memset(&t, 0, sizeof(t));
		t.timeout_ms = tmo;
		t.weight = 1;
		if (config_setting_type(e) == CONFIG_TYPE_STRING)
			t.uri = xstrdup(config_setting_get_string(e));
		else if (config_setting_is_group(e)) {
			rc = conf_section(c, e, kw, &target_sec, &t);
			if (rc == 0 && config_setting_get_member(e,
			    "timeout") == NULL)
				t.timeout_ms = tmo;
			if (rc == -1) {
				free(t.uri);
				return (-1);
			}
		} else
			return (conf_err(c, e, "%s: each is a SIP URI or a "
			    "group %s", kw, target_sec.hint));
		rc = route_add_target(r, t.uri, msg, sizeof(msg));
		free(t.uri);
		if (rc == -1)
			return (conf_err(c, e, "%s: %s", kw, msg));
		r->targets[r->ntargets - 1].timeout_ms = t.timeout_ms;
		r->targets[r->ntargets - 1].weight = t.weight;
	}
	return (0);
}

static void
lines_targets(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const struct route	*r = obj;
	unsigned		 i;

	for (i = 0; i < r->ntargets; i++)
		print_entry(fp, k->item, &target_sec, &r->targets[i], indent);
}

static const struct key failure_keys[] = {
	{ .name = "code", .type = K_FN, FLD(struct failure_rule, codes),
	    .parse = parse_codes, .print = print_codes, .required = true },
	{ .name = "route", .type = K_STR, FLD(struct failure_rule, route_name),
	    .required = true },
	END
};

SECTION(failure_sec, failure_keys, "{ code = ...; route = ...; }");

static const char *const fork_names[] = { "parallel", "serial", NULL };
static const char *const balance_names[] = { "order", "weight",
    "round_robin", "hash", NULL };
static const char *const failover_default[] = { "408", "5xx", NULL };

static const struct key route_keys[] = {
	{ .name = "name", .type = K_STR, FLD(struct route, name),
	    .head = true },
	REGEX("user", struct route, user_src, user_re,
	    REG_EXTENDED | REG_NOSUB, NULL),
	REGEX("domain", struct route, domain_src, domain_re,
	    REG_EXTENDED | REG_NOSUB, NULL),
	ENUM("fork", struct route, fork, fork_names),
	ENUM("balance", struct route, balance, balance_names),
	{ .name = "timeout", .type = K_INT, .off = NOFIELD, .min = 0,
	    .max = 3600000, .def = 0, .scale = 1 },
	LINES("targets", "target", struct route, targets, parse_targets,
	    lines_targets),
	{ .name = "failover", .type = K_FN, FLD(struct route, failover),
	    .parse = parse_codes, .print = print_codes,
	    .names = failover_default },
	LIST("on_failure", "on_failure", struct route, on_failure, nfailure,
	    failure_sec, 0),
	BOOL("recurse", struct route, recurse, false),
	INT("max_redirects", struct route, max_redirects, 0, 16, 3),
	BOOL("probe", struct route, probe, false),
	BOOL("public", struct route, public, false),
	END
};

/* Failure routes are reached by name, from on_failure only. */
static int
check_route(struct ctx *c, const config_setting_t *g, void *obj)
{
	struct route	*r = obj;

	if (r->matchable)
		return (0);
	if (r->user_src != NULL || r->domain_src != NULL)
		return (conf_err(c, g, "failure_routes: user and domain do not "
		    "apply (these routes are reached by on_failure only)"));
	if (r->name == NULL)
		return (conf_err(c, g, "failure_routes.name: required"));
	return (0);
}

SECTION(route_sec, route_keys, "{ user = ...; targets = [ ... ]; }",
    .check = check_route);

/* routes and failure_routes: one table, told apart by matchable. */
static int
parse_routes(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct route_table	*rt = &((struct conf *)obj)->proxy.routes;
	bool			 matchable = strcmp(k->name, "routes") == 0;
	char			 msg[256];
	unsigned		 j;
	int			 i;

	if (s == NULL)
		return (0);
	if (!config_setting_is_list(s))
		return (conf_err(c, s, "%s: must be a list ( { ... } )", kw));
	for (i = 0; i < config_setting_length(s); i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);
		struct route		*r;

		if (!config_setting_is_group(e))
			return (conf_err(c, e, "%s: each entry is a group %s",
			    kw, route_sec.hint));
		r = route_add(rt, NULL, NULL, config_setting_source_line(e),
		    msg, sizeof(msg));
		r->matchable = matchable;
		if (conf_section(c, e, kw, &route_sec, r) == -1)
			return (-1);
		for (j = 0; r->name != NULL && j + 1 < rt->n; j++)
			if (rt->r[j]->name != NULL &&
			    strcmp(rt->r[j]->name, r->name) == 0)
				return (conf_err(c, e, "%s.name: \"%s\" is "
				    "used twice", kw, r->name));
	}
	return (0);
}

static void
lines_routes(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const struct route_table *rt;
	bool			 matchable = strcmp(k->name, "routes") == 0;
	unsigned		 i;

	rt = &((const struct conf *)obj)->proxy.routes;
	for (i = 0; i < rt->n; i++)
		if (rt->r[i]->matchable == matchable)
			print_entry(fp, k->item, &route_sec, rt->r[i], indent);
}

static const char *const transport_names[] = { "udp", "tcp", "tls", "ws",
    "wss", NULL };

static const struct key listen_keys[] = {
	{ .name = "transport", .type = K_STR,
	    FLD(struct conf_listen, transport), .sdef = "udp",
	    .names = transport_names },
	{ .name = "address", .type = K_STR, FLD(struct conf_listen, address),
	    .required = true, .valid = valid_ip },
	INT("port", struct conf_listen, port, 1, 65535, 5060),
	END
};

static int
check_listen(struct ctx *c, const config_setting_t *g, void *obj)
{
	struct conf_listen	*l = obj;

	(void)c;
	l->line = g != NULL ? config_setting_source_line(g) : 0;
	return (0);
}

SECTION(listen_sec, listen_keys,
    "{ transport = ...; address = ...; port = ...; }", .check = check_listen);

static int
parse_nameservers(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct resolver_settings	*rs = &((struct conf *)obj)->dns;
	int				 i;

	if (s == NULL)
		return (0);
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return (conf_err(c, s, "%s: must be a list of addresses", kw));
	for (i = 0; i < config_setting_length(s); i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);

		if (i == RESOLVE_MAX_NS)
			return (conf_err(c, e, "%s: at most %d", kw,
			    RESOLVE_MAX_NS));
		if (config_setting_type(e) != CONFIG_TYPE_STRING ||
		    resolver_parse_ns(config_setting_get_string(e),
		    &rs->ns[rs->nns]) == -1)
			return (conf_err(c, e, "%s: want \"ADDRESS\" or "
			    "\"ADDRESS:PORT\" (IPv6 in brackets)", kw));
		rs->nns++;
	}
	return (0);
}

static void
lines_nameservers(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const struct resolver_settings	*rs = &((const struct conf *)obj)->dns;
	char				 ip[INET6_ADDRSTRLEN];
	unsigned			 i;

	for (i = 0; i < rs->nns; i++) {
		tp_addr_ip(&rs->ns[i], ip, sizeof(ip));
		fprintf(fp, strchr(ip, ':') ? "%s%s [%s]:%u\n" :
		    "%s%s %s:%u\n", indent, k->item, ip,
		    tp_addr_port(&rs->ns[i]));
	}
}

/* A list of addresses and networks into the struct acl at k->off. */
static int
parse_acl(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct acl	*acl = FIELD(obj, k);
	char		 msg[256];
	int		 i;

	if (s == NULL)
		return (0);
	if (!config_setting_is_array(s))
		return (conf_err(c, s, "%s: must be a list of addresses or "
		    "networks", kw));
	for (i = 0; i < config_setting_length(s); i++) {
		const char	*a = config_setting_get_string_elem(s, i);

		if (a == NULL || acl_add(acl, a, msg, sizeof(msg)) == -1)
			return (conf_err(c, s, "%s: %s", kw, a ? msg :
			    "must be strings"));
	}
	return (0);
}

static void
lines_acl(FILE *fp, const struct key *k, const void *obj, const char *indent)
{
	const struct acl	*acl = CFIELD(obj, k);
	char			 net[INET6_ADDRSTRLEN + 8];
	unsigned		 i;

	for (i = 0; i < acl->n; i++) {
		acl_format(&acl->net[i], net, sizeof(net));
		fprintf(fp, "%s%s %s\n", indent, k->item, net);
	}
}

static const char *const log_names[] = { "error", "warning", "notice",
    "info", "debug", NULL };

static int
parse_log_level(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct conf	*cf = obj;
	const char	*v = NULL;

	cf->log_level = LOG_LVL_INFO;
	if (s == NULL)
		return (0);
	if (conf_string(c, s, kw, &v) == -1)
		return (-1);
	if ((cf->log_level = log_level_parse(v)) == -1)	/* also warn, err */
		return (conf_err_names(c, s, kw, v, log_names));
	return (0);
}

static void
print_log_level(FILE *fp, const struct key *k, const void *obj)
{
	const struct conf	*cf = obj;

	fprintf(fp, "%s", log_level_name(cf->log_level));
}

static int
parse_mode(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	const char	*v = "0660";
	char		*end;
	unsigned long	 m;

	if (s != NULL && conf_string(c, s, kw, &v) == -1)
		return (-1);
	m = strtoul(v, &end, 8);
	if (*v == '\0' || *end != '\0' || m > 0777)
		return (conf_err(c, s, "%s: \"%s\" is not an octal mode like "
		    "\"0660\"", kw, v));
	*(mode_t *)FIELD(obj, k) = (mode_t)m;
	return (0);
}

static void
print_mode(FILE *fp, const struct key *k, const void *obj)
{
	fprintf(fp, "%04o", (unsigned)*(const mode_t *)CFIELD(obj, k));
}

/*
 * A relative database lives in the service's state directory
 * (StateDirectory= sets STATE_DIRECTORY), else beside the config.
 */
static int
parse_database(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	char		**db = FIELD(obj, k);
	const char	 *v = NULL, *sd = getenv("STATE_DIRECTORY");

	if (s == NULL)
		return (0);
	if (conf_string(c, s, kw, &v) == -1)
		return (-1);
	if (*v == '\0')		/* memory only */
		return (0);
	if (*v != '/' && sd != NULL && *sd == '/' && strchr(sd, ':') == NULL) {
		*db = xmalloc(strlen(sd) + strlen(v) + 2);
		sprintf(*db, "%s/%s", sd, v);
	} else
		*db = conf_path(c->path, v);
	return (0);
}

static int
parse_users(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct conf	*cf = obj;
	const char	*v = NULL;
	char		 msg[512];

	if (s == NULL)
		return (0);
	if (conf_string(c, s, kw, &v) == -1)
		return (-1);
	cf->auth.users_file = conf_path(c->path, v);
	if ((cf->users = auth_users_load(cf->auth.users_file, msg,
	    sizeof(msg))) == NULL)
		return (conf_err(c, s, "%s: %s", kw, msg));
	return (0);
}

static int
parse_algorithms(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct auth_settings	*as = &((struct conf *)obj)->auth;
	int			 i;

	/*
	 * MD5 alone by default: baresip 1.0 aborts on any SHA-256 challenge,
	 * sipsak and SIPp on a SHA-256 one offered first (osprey.conf(5)).
	 */
	as->algorithms = AUTH_MD5;
	as->sha256_first = false;
	if (s == NULL)
		return (0);
	if (!config_setting_is_array(s) || config_setting_length(s) == 0)
		return (conf_err(c, s, "%s: must be a list such as "
		    "[ \"SHA-256\", \"MD5\" ]", kw));
	as->algorithms = 0;
	for (i = 0; i < config_setting_length(s); i++) {
		const char	*a = config_setting_get_string_elem(s, i);
		unsigned	 bit;

		if (a != NULL && strcasecmp(a, "MD5") == 0)
			bit = AUTH_MD5;
		else if (a != NULL && strcasecmp(a, "SHA-256") == 0)
			bit = AUTH_SHA256;
		else
			return (conf_err(c, s, "%s: \"%s\" is not SHA-256 or "
			    "MD5", kw, a ? a : "?"));
		if (as->algorithms == 0)
			as->sha256_first = bit == AUTH_SHA256;
		as->algorithms |= bit;
	}
	return (0);
}

static void
print_algorithms(FILE *fp, const struct key *k, const void *obj)
{
	const struct auth_settings	*as = &((const struct conf *)obj)->auth;

	if (as->algorithms == (AUTH_MD5 | AUTH_SHA256))
		fprintf(fp, "%s", as->sha256_first ? "SHA-256,MD5" :
		    "MD5,SHA-256");
	else
		fprintf(fp, "%s", as->algorithms == AUTH_MD5 ? "MD5" :
		    "SHA-256");
}

/* The sections. */

static int
check_timers(struct ctx *c, const config_setting_t *g, void *obj)
{
	struct txn_settings	*ts = &((struct conf *)obj)->txn;

	if (ts->t2_ms < ts->t1_ms)
		return (conf_err(c, config_setting_get_member(g, "t2"),
		    "timers.t2: must not be less than t1"));
	ts->d_ms = 64 * ts->t1_ms < 32000 ? 64 * ts->t1_ms : 32000;
	return (0);
}

static void
note_timers(FILE *fp, const void *obj)
{
	fprintf(fp, " d=%u", ((const struct conf *)obj)->txn.d_ms);
}

static const struct key timer_keys[] = {
	INT("t1", struct conf, txn.t1_ms, 1, 60000, 500),
	INT("t2", struct conf, txn.t2_ms, 1, 600000, 4000),
	INT("t4", struct conf, txn.t4_ms, 1, 600000, 5000),
	INT("c", struct conf, txn.c_ms, 100, 3600000, 180000),
	INT("cancel", struct conf, proxy.cancel_ms, 10, 600000, 5000),
	INT("dialog_timeout", struct conf, dialog.timeout_s, 0, 604800,
	    43200),
	END
};

SECTION(timers_sec, timer_keys, "{ t1 = ...; }",
    .check = check_timers, .note = note_timers);

static const struct key probe_keys[] = {
	INT("interval", struct conf, proxy.probe_interval_ms, 500, 3600000,
	    10000),
	INT("timeout", struct conf, proxy.probe_timeout_ms, 100, 60000, 2000),
	INT("failures", struct conf, proxy.probe_failures, 1, 100, 3),
	END
};

SECTION(probe_sec, probe_keys, "{ interval = ...; }");

static const struct key dns_keys[] = {
	LINES("nameservers", "nameserver", struct conf, dns,
	    parse_nameservers, lines_nameservers),
	INT("timeout", struct conf, dns.timeout_ms, 100, 60000, 2000),
	END
};

SECTION(dns_sec, dns_keys, "{ nameservers = [ ... ]; }");

static const struct key metrics_keys[] = {
	{ .name = "address", .type = K_STR, FLD(struct conf, metrics_address),
	    .sdef = "127.0.0.1", .valid = valid_ip },
	INT("port", struct conf, metrics_port, 1, 65535, 9091),
	END
};

SECTION(metrics_sec, metrics_keys, "{ address = ...; port = ...; }",
    .absent_off = true);

static const struct key control_keys[] = {
	{ .name = "socket", .type = K_STR, FLD(struct conf, ctl.socket),
	    .sdef = CTL_DEFAULT_SOCKET, .valid = valid_socket,
	    .empty_null = true },
	FN("mode", struct conf, ctl.mode, parse_mode, print_mode),
	END
};

SECTION(control_sec, control_keys, "{ socket = ...; mode = ...; }");

/*
 * accounting: call detail records.  A relative file is in the service's
 * logs directory (LogsDirectory=), a relative database in its state
 * directory, else both next to the config file.  Whether the writer can
 * write there is checked here, as the user reading the config (so by
 * ospreyd -t too, and a reload refuses a path it cannot use).
 */
static int
parse_cdr_file(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	char		**p = FIELD(obj, k);
	const char	 *v = NULL, *ld = getenv("LOGS_DIRECTORY");

	if (s == NULL)
		return (0);
	if (conf_string(c, s, kw, &v) == -1)
		return (-1);
	if (*v == '\0')		/* no file */
		return (0);
	if (*v != '/' && ld != NULL && *ld == '/' && strchr(ld, ':') == NULL) {
		*p = xmalloc(strlen(ld) + strlen(v) + 2);
		sprintf(*p, "%s/%s", ld, v);
	} else
		*p = conf_path(c->path, v);
	return (0);
}

/* The folder of path must take new files; path, if there, writes. */
static int
cdr_writable(const char *path, bool dir_too, char *msg, size_t len)
{
	struct stat	 st;
	char		 dir[PATH_MAX];
	char		*slash;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			snprintf(msg, len, "%s is not a regular file", path);
			return (-1);
		}
		if (access(path, W_OK) == -1) {
			snprintf(msg, len, "cannot write %s: %s", path,
			    strerror(errno));
			return (-1);
		}
		if (!dir_too)
			return (0);
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir] = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(msg, len, "no directory %s", dir);
		return (-1);
	}
	if (access(dir, W_OK | X_OK) == -1) {
		snprintf(msg, len, "cannot create files in %s: %s", dir,
		    strerror(errno));
		return (-1);
	}
	return (0);
}

static int
check_accounting(struct ctx *c, const config_setting_t *g, void *obj)
{
	struct cdr_settings	*cs = &((struct conf *)obj)->cdr;
	const config_setting_t	*s;
	const char		*rot;
	char			 msg[PATH_MAX + 128];

	if (g == NULL)
		return (0);
	rot = config_setting_get_member(g, "rotate_size") ? "rotate_size" :
	    config_setting_get_member(g, "rotate_interval") ?
	    "rotate_interval" : config_setting_get_member(g, "rotate_keep") ?
	    "rotate_keep" : config_setting_get_member(g, "format") ?
	    "format" : NULL;
	if (cs->file == NULL && rot != NULL)
		return (conf_err(c, config_setting_get_member(g, rot),
		    "accounting.%s: applies to accounting.file, which is not "
		    "set", rot));
	s = config_setting_get_member(g, "file");
	if (cs->file != NULL && cdr_writable(cs->file, cs->rotate_size > 0 ||
	    cs->rotate_interval_s > 0, msg, sizeof(msg)) == -1)
		return (conf_err(c, s, "accounting.file: %s", msg));
	s = config_setting_get_member(g, "database");
	if (cs->database != NULL && cdr_writable(cs->database, true, msg,
	    sizeof(msg)) == -1)
		return (conf_err(c, s, "accounting.database: %s", msg));
	if (cs->file != NULL && cs->database != NULL &&
	    strcmp(cs->file, cs->database) == 0)
		return (conf_err(c, s, "accounting.database: is also "
		    "accounting.file"));
	return (0);
}

static key_parse	parse_database;

static const char *const cdr_format_names[] = { "csv", "jsonl", NULL };
static const char *const cdr_fsync_names[] = { "interval", "always",
    "never", NULL };

static const struct key accounting_keys[] = {
	FN("file", struct conf, cdr.file, parse_cdr_file, print_str),
	ENUM("format", struct conf, cdr.format, cdr_format_names),
	INT("rotate_size", struct conf, cdr.rotate_size, 0, 1LL << 40, 0),
	INT("rotate_interval", struct conf, cdr.rotate_interval_s, 0,
	    31536000, 0),
	INT("rotate_keep", struct conf, cdr.rotate_keep, 1, 1000, 10),
	FN("database", struct conf, cdr.database, parse_database, print_str),
	BOOL("journal", struct conf, cdr.journal, false),
	ENUM("fsync", struct conf, cdr.fsync, cdr_fsync_names),
	SECS("fsync_interval", struct conf, cdr.fsync_interval_ms, 1, 3600, 1),
	INT("queue_size", struct conf, cdr.queue_size, 16, 10000000, 65536),
	END
};

SECTION(accounting_sec, accounting_keys, "{ file = ...; database = ...; }",
    .check = check_accounting);

static int
valid_redis_address(const char *v, char *msg, size_t len)
{
	char		host[256];
	uint16_t	port;

	if (redis_address_parse(v, host, sizeof(host), &port) == 0)
		return (0);
	snprintf(msg, len, "\"%s\" is not host:port", v);
	return (-1);
}

/* A password is not printed by -v: "(set)" or "-". */
static void
print_secret(FILE *fp, const struct key *k, const void *obj)
{
	fprintf(fp, "%s", *(char *const *)CFIELD(obj, k) ? "(set)" : "-");
}

static int
parse_secret(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	char		**p = FIELD(obj, k);
	const char	 *v = NULL;

	if (s == NULL)
		return (0);
	if (conf_string(c, s, kw, &v) == -1)
		return (-1);
	if (*v != '\0')
		*p = xstrdup(v);
	return (0);
}

static key_parse	parse_file;

/*
 * redis.node_uri: a SIP URI of this node's own (sip: or sips:, a host, no
 * user part, no headers), which the other nodes put in the Route of a
 * call to a phone this node holds.
 */
static int
valid_node_uri(const char *v, char *msg, size_t len)
{
	struct sipuri	u;
	struct slice	tr;
	enum tp_proto	proto;

	if (sipuri_parse((struct slice){ v, strlen(v) }, &u) == -1 ||
	    !sipuri_printable((struct slice){ v, strlen(v) }) ||
	    u.host.len == 0 || u.headers.len > 0 ||
	    strchr(v, ',') != NULL || strchr(v, '>') != NULL) {
		snprintf(msg, len, "\"%s\" is not a SIP URI", v);
		return (-1);
	}
	if (!(u.scheme.len == 3 && strncasecmp(u.scheme.p, "sip", 3) == 0) &&
	    !(u.scheme.len == 4 && strncasecmp(u.scheme.p, "sips", 4) == 0)) {
		snprintf(msg, len, "\"%s\": not a sip: or sips: URI", v);
		return (-1);
	}
	if (u.user.len > 0) {
		snprintf(msg, len, "\"%s\": no user part (the node puts its "
		    "flow token there)", v);
		return (-1);
	}
	if (sipuri_param(&u, "transport", &tr) && tp_proto_parse(tr,
	    &proto) == -1) {
		snprintf(msg, len, "\"%s\": unknown transport", v);
		return (-1);
	}
	return (0);
}

static const char *const via_node_names[] = { "auto", "always", "never",
    NULL };

/* redis: the Redis the nodes share (registrar.backend = "redis"). */
static const struct key redis_keys[] = {
	{ .name = "address", .type = K_STR, FLD(struct conf, redis.address),
	    .sdef = "127.0.0.1:6379", .valid = valid_redis_address },
	{ .name = "user", .type = K_STR, FLD(struct conf, redis.user),
	    .empty_null = true },
	FN("password", struct conf, redis.password, parse_secret,
	    print_secret),
	BOOL("tls", struct conf, redis.tls, false),
	FN("ca_file", struct conf, redis.ca_file, parse_file, print_str),
	INT("timeout", struct conf, redis.timeout_ms, 1, 60000, 1000),
	{ .name = "node_id", .type = K_STR, FLD(struct conf, redis.node_id),
	    .empty_null = true },
	{ .name = "node_uri", .type = K_STR, FLD(struct conf, redis.node_uri),
	    .empty_null = true, .valid = valid_node_uri },
	ENUM("via_node", struct conf, redis.via_node, via_node_names),
	END
};

SECTION(redis_sec, redis_keys, "{ address = \"127.0.0.1:6379\"; }",
    .absent_off = true);

static const char *const backend_names[] = { "sqlite", "redis", NULL };

static int
check_registrar(struct ctx *c, const config_setting_t *g, void *obj)
{
	const struct registrar_settings	*rs = &((struct conf *)obj)->reg;
	const struct conf		*cf = obj;

	if (rs->backend == REG_BACKEND_REDIS && cf->redis.address == NULL)
		return (conf_err(c, config_setting_get_member(g, "backend"),
		    "registrar.backend: \"redis\" needs a redis { address = "
		    "...; } section"));
	if (rs->backend == REG_BACKEND_REDIS && rs->database != NULL)
		return (conf_err(c, config_setting_get_member(g, "database"),
		    "registrar.database: not with backend \"redis\" (the "
		    "bindings are in Redis)"));

	if (rs->min_expires_s > rs->max_expires_s)
		return (conf_err(c, g, "registrar: min_expires (%u) is above "
		    "max_expires (%u)", rs->min_expires_s, rs->max_expires_s));
	if (rs->default_expires_s < rs->min_expires_s ||
	    rs->default_expires_s > rs->max_expires_s)
		return (conf_err(c, g, "registrar.default_expires: must be "
		    "within min_expires..max_expires (%u..%u)",
		    rs->min_expires_s, rs->max_expires_s));
	return (0);
}

static const struct key registrar_keys[] = {
	BOOL("enabled", struct conf, reg.enabled, true),
	INT("min_expires", struct conf, reg.min_expires_s, 1, 86400, 60),
	INT("max_expires", struct conf, reg.max_expires_s, 1, 31536000, 3600),
	INT("default_expires", struct conf, reg.default_expires_s, 1,
	    31536000, 3600),
	INT("max_contacts", struct conf, reg.max_contacts, 1, 64, 10),
	INT("max_per_source", struct conf, reg.max_per_source, 1, 10000000,
	    1000),
	FN("database", struct conf, reg.database, parse_database, print_str),
	ENUM("backend", struct conf, reg.backend, backend_names),
	END
};

SECTION(registrar_sec, registrar_keys, "{ min_expires = ...; }",
    .check = check_registrar);

/* In the order of enum natping_mode and enum natping_which. */
static const char *const keepalive_names[] = { "options", "crlf", "none",
	NULL };
static const char *const nat_ping_names[] = { "nat", "all", NULL };

static const struct key nat_keys[] = {
	ENUM("keepalive", struct conf, nat.keepalive, keepalive_names),
	ENUM("ping", struct conf, nat.ping, nat_ping_names),
	SECS("interval", struct conf, nat.interval_ms, 1, 3600, 30),
	INT("failures", struct conf, nat.failures, 0, 100, 3),
	END
};

SECTION(nat_sec, nat_keys, "{ keepalive = ...; interval = ...; }");

static void
note_auth(FILE *fp, const void *obj)
{
	const struct conf	*cf = obj;

	if (cf->auth.users_file != NULL)
		fprintf(fp, " (%u users)", auth_users_count(cf->users));
}

static const struct key auth_keys[] = {
	FN("users", struct conf, auth.users_file, parse_users, print_str),
	INT("nonce_expiry", struct conf, auth.nonce_expiry_s, 1, 86400, 300),
	FN("algorithms", struct conf, auth.algorithms, parse_algorithms,
	    print_algorithms),
	LINES("trusted", "trusted", struct conf, auth.trusted, parse_acl,
	    lines_acl),
	BOOL("require_tls", struct conf, auth.require_tls, false),
	LINES("trusted_names", "trusted_name", struct conf, auth.trusted_names,
	    parse_strlist, lines_strlist),
	END
};

SECTION(auth_sec, auth_keys, "{ users = \"...\"; }", .note = note_auth);

/* Kamailio's stock list, and two more seen in the wild. */
#define SCANNERS_DEFAULT \
	"friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent|pplsip|" \
	"sundayddr|iWar"

/*
 * The memory ospreyd may use: the physical memory, or its cgroup's
 * memory.max (cgroup v2: a container, systemd's MemoryMax=) if lower.
 */
static uint64_t
conf_memory(void)
{
	long			 pages = sysconf(_SC_PHYS_PAGES);
	long			 psz = sysconf(_SC_PAGESIZE);
	uint64_t		 mem = pages > 0 && psz > 0 ?
				    (uint64_t)pages * (uint64_t)psz : 0;
	unsigned long long	 max;
	char			 line[512], path[600];
	FILE			*fp;

	if ((fp = fopen("/proc/self/cgroup", "r")) == NULL)
		return (mem);
	while (fgets(line, sizeof(line), fp) != NULL) {
		FILE	*mf;

		if (strncmp(line, "0::/", 4) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max",
		    line + 3);
		if ((mf = fopen(path, "r")) == NULL)
			continue;
		if (fscanf(mf, "%llu", &max) == 1 && max > 0 &&
		    (mem == 0 || max < mem))
			mem = max;	/* "max" (no limit) does not scan */
		fclose(mf);
	}
	fclose(fp);
	return (mem);
}

/* 0 MB: a quarter of the memory we may use, else 256 MB. */
static int
check_security(struct ctx *c, const config_setting_t *g, void *obj)
{
	struct conf	*cf = obj;
	uint64_t	 mem = conf_memory();

	if (cf->txn_memory_mb > 0)
		cf->proxy.max_transaction_memory =
		    (size_t)cf->txn_memory_mb << 20;
	else
		cf->proxy.max_transaction_memory = mem > 0 ? mem / 4 :
		    (size_t)256 << 20;
	return (0);
}

static const struct key security_keys[] = {
	INT("rate_window", struct conf, guard.window_ms, 0, 3600000, 2000),
	INT("rate_requests", struct conf, guard.max_requests, 1, 10000000,
	    200),
	SECS("ban_time", struct conf, guard.ban_ms, 1, 86400, 60),
	INT("auth_failures", struct conf, guard.auth_failures, 0, 1000, 5),
	SECS("auth_window", struct conf, guard.auth_window_ms, 1, 86400, 60),
	LINES("exempt", "exempt", struct conf, guard.exempt, parse_acl,
	    lines_acl),
	BOOL("scanners", struct conf, guard.scanners, true),
	REGEX("scanner_user_agents", struct conf, guard.scanner_src,
	    guard.scanner_re, REG_EXTENDED | REG_ICASE | REG_NOSUB,
	    SCANNERS_DEFAULT),
	INT("max_transactions", struct conf, proxy.max_transactions, 100,
	    10000000, 65536),
	INT("max_transaction_memory", struct conf, txn_memory_mb, 0,
	    1048576, 0),
	INT("max_sources", struct conf, guard.max_sources, 100, 10000000,
	    100000),
	INT("call_rate", struct conf, guard.call_rate, 0, 1000000, 0),
	END
};

SECTION(security_sec, security_keys, "{ rate_requests = ...; }",
    .check = check_security);

static const struct key connection_keys[] = {
	INT("max", struct conf, conns.max_conns, 1, 1000000, 4096),
	INT("max_per_ip", struct conf, conns.max_conns_per_ip, 1, 1000000,
	    256),
	SECS("connect_timeout", struct conf, conns.connect_ms, 1, 120, 5),
	SECS("first_data_timeout", struct conf, conns.first_data_ms, 1, 3600,
	    10),
	SECS("message_timeout", struct conf, conns.message_ms, 1, 3600, 30),
	SECS("idle_timeout", struct conf, conns.idle_ms, 1, 86400, 600),
	INT("write_queue_max", struct conf, conns.write_queue_max, 65536,
	    1073741824, 1048576),
	END
};

SECTION(connection_sec, connection_keys, "{ max = ...; idle_timeout = ...; }");

/* A file name; relative to the config file's folder. */
static int
parse_file(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	char		**p = FIELD(obj, k);
	const char	 *v = NULL;

	if (s == NULL)
		return (0);
	if (conf_string(c, s, kw, &v) == -1)
		return (-1);
	if (*v == '\0')
		return (conf_err(c, s, "%s: must be a file name", kw));
	*p = conf_path(c->path, v);
	return (0);
}

static const struct key sni_keys[] = {
	FN("certificate", struct tls_sni, certificate, parse_file, print_str),
	FN("key", struct tls_sni, key, parse_file, print_str),
	END
};

static int
check_sni(struct ctx *c, const config_setting_t *g, void *obj)
{
	const struct tls_sni	*e = obj;

	if (e->certificate == NULL || e->key == NULL)
		return (conf_err(c, g, "tls.sni: an entry needs certificate "
		    "and key"));
	return (0);
}

SECTION(sni_sec, sni_keys, "{ certificate = ...; key = ...; }",
    .check = check_sni);

/*
 * The contexts are made here, so that a bad certificate or key stops a
 * start or a reload like any other error, naming the file.
 */
static int
check_tls(struct ctx *c, const config_setting_t *g, void *obj)
{
	struct conf	*cf = obj;
	char		 msg[512];

	if ((cf->tls.certificate == NULL) != (cf->tls.key == NULL))
		return (conf_err(c, g, "tls: certificate and key go together"));
	if ((cf->tls_client_cert == NULL) != (cf->tls_client_key == NULL))
		return (conf_err(c, g, "tls: client_certificate and "
		    "client_key go together"));
	if (cf->tls.certificate != NULL && (cf->tls_server =
	    tls_ctx_server(&cf->tls, msg, sizeof(msg))) == NULL)
		return (conf_err(c, g, "tls: %s", msg));
	if ((cf->tls_client = tls_ctx_client(cf->tls_client_ca,
	    cf->tls_client_cert, cf->tls_client_key, msg,
	    sizeof(msg))) == NULL)
		return (conf_err(c, g, "tls: %s", msg));
	return (0);
}

static const struct key tls_keys[] = {
	FN("certificate", struct conf, tls.certificate, parse_file, print_str),
	FN("key", struct conf, tls.key, parse_file, print_str),
	FN("ca", struct conf, tls.ca, parse_file, print_str),
	BOOL("verify_client", struct conf, tls.verify_client, false),
	LIST("sni", "sni", struct conf, tls.sni, tls.nsni, sni_sec, 0),
	FN("client_ca", struct conf, tls_client_ca, parse_file, print_str),
	FN("client_certificate", struct conf, tls_client_cert, parse_file,
	    print_str),
	FN("client_key", struct conf, tls_client_key, parse_file, print_str),
	END
};

SECTION(tls_sec, tls_keys, "{ certificate = ...; key = ...; }",
    .check = check_tls);

static const struct key websocket_keys[] = {
	LINES("origins", "origin", struct conf, ws_origins, parse_strlist,
	    lines_strlist),
	END
};

SECTION(websocket_sec, websocket_keys, "{ origins = [ ... ]; }");

static const char *const dialog_backend_names[] = { "local", "redis",
    NULL };

static int
check_dialog(struct ctx *c, const config_setting_t *g, void *obj)
{
	const struct conf	*cf = obj;

	if (cf->dialog.backend == DIALOG_BACKEND_REDIS && cf->redis.address ==
	    NULL)
		return (conf_err(c, config_setting_get_member(g, "backend"),
		    "dialog.backend: \"redis\" needs a redis { address = "
		    "...; } section"));
	if (cf->dialog.backend == DIALOG_BACKEND_REDIS && !cf->dialog.enable)
		return (conf_err(c, config_setting_get_member(g, "backend"),
		    "dialog.backend: \"redis\" needs dialog.enable = true"));
	return (0);
}

static const struct key dialog_keys[] = {
	BOOL("enable", struct conf, dialog.enable, true),
	FN("database", struct conf, dialog_database, parse_database,
	    print_str),
	ENUM("backend", struct conf, dialog.backend, dialog_backend_names),
	END
};

SECTION(dialog_sec, dialog_keys, "{ enable = true; }",
    .check = check_dialog);

static const struct key limits_keys[] = {
	INT("calls_per_user", struct conf, dialog.calls_per_user, 0, 1000000,
	    0),
	INT("calls_per_source", struct conf, dialog.calls_per_source, 0,
	    1000000, 0),
	END
};

SECTION(limits_sec, limits_keys, "{ calls_per_user = ...; }");
static const struct key rtpengine_keys[] = {
	{ .name = "address", .type = K_STR,
	    FLD(struct rtpe_instance_conf, uri), .required = true,
	    .head = true },
	INT("weight", struct rtpe_instance_conf, weight, 0, 1000, 1),
	END
};

SECTION(rtpengine_sec, rtpengine_keys, "{ address = \"udp:...\"; "
    "weight = ...; }");

/* media.rtpengine: "udp:ADDRESS:PORT" or { address = ...; weight = ...; }. */
static int
parse_rtpengine(struct ctx *c, const config_setting_t *s,
    const config_setting_t *g, const char *kw, void *obj, const struct key *k)
{
	struct media_settings	*ms = &((struct conf *)obj)->media;
	char			 msg[256];
	unsigned		 j;
	int			 i;

	if (s == NULL)
		return (0);
	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return (conf_err(c, s, "%s: must be a list ( \"udp:ADDRESS:"
		    "PORT\", ... )", kw));
	for (i = 0; i < config_setting_length(s); i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);
		struct rtpe_instance_conf *in = &ms->inst[ms->ninst];

		if (i == RTPE_MAX_INSTANCES)
			return (conf_err(c, e, "%s: at most %d", kw,
			    RTPE_MAX_INSTANCES));
		memset(in, 0, sizeof(*in));
		in->weight = 1;
		if (config_setting_type(e) == CONFIG_TYPE_STRING)
			in->uri = xstrdup(config_setting_get_string(e));
		else if (config_setting_is_group(e)) {
			if (conf_section(c, e, kw, &rtpengine_sec, in) == -1) {
				free(in->uri);
				in->uri = NULL;
				return (-1);
			}
		} else
			return (conf_err(c, e, "%s: each is \"udp:ADDRESS:PORT"
			    "\" or a group %s", kw, rtpengine_sec.hint));
		ms->ninst++;
		if (rtpengine_parse_uri(in->uri, &in->addr, msg,
		    sizeof(msg)) == -1)
			return (conf_err(c, e, "%s: %s", kw, msg));
		for (j = 0; j + 1 < ms->ninst; j++)
			if (tp_addr_eq(&ms->inst[j].addr, &in->addr))
				return (conf_err(c, e, "%s: \"%s\" is listed "
				    "twice", kw, in->uri));
	}
	return (0);
}

static void
lines_rtpengine(FILE *fp, const struct key *k, const void *obj,
    const char *indent)
{
	const struct media_settings	*ms = &((const struct conf *)obj)->media;
	unsigned			 i;

	for (i = 0; i < ms->ninst; i++)
		fprintf(fp, "%s%s %s weight=%u\n", indent, k->item,
		    ms->inst[i].uri, ms->inst[i].weight);
}

static int
check_media(struct ctx *c, const config_setting_t *g, void *obj)
{
	const struct media_settings	*ms = &((struct conf *)obj)->media;
	unsigned			 i;

	if (ms->relay != MEDIA_RELAY_NEVER && ms->ninst == 0)
		return (conf_err(c, config_setting_get_member(g, "relay"),
		    "media.relay: \"%s\" needs media.rtpengine",
		    ms->relay == MEDIA_RELAY_NAT ? "nat" : "always"));
	for (i = 0; i < ms->ninst && ms->inst[i].weight == 0; i++)
		;
	if (ms->ninst > 0 && i == ms->ninst)
		return (conf_err(c, config_setting_get_member(g, "rtpengine"),
		    "media.rtpengine: every weight is 0: no instance takes "
		    "new calls"));
	return (0);
}

static const char *const relay_names[] = { "never", "nat", "always", NULL };
static const char *const media_failure_names[] = { "relay_none", "503",
    NULL };
static const char *const media_ice_names[] = { "remove", "force", "default",
    "force-relay", "optional", NULL };

static const struct key media_keys[] = {
	ENUM("relay", struct conf, media.relay, relay_names),
	LINES("rtpengine", "rtpengine", struct conf, media, parse_rtpengine,
	    lines_rtpengine),
	INT("rtpengine_timeout", struct conf, media.timeout_ms, 50, 60000,
	    1000),
	INT("rtpengine_tries", struct conf, media.tries, 1, 10, 2),
	SECS("probe_interval", struct conf, media.probe_interval_ms, 1, 3600,
	    10),
	ENUM("on_failure", struct conf, media.on_failure,
	    media_failure_names),
	ENUM("ice", struct conf, media.ice, media_ice_names),
	END
};

SECTION(media_sec, media_keys, "{ relay = ...; rtpengine = ( ... ); }",
    .check = check_media);

static const struct key root_keys[] = {
	LIST("listen", "listen", struct conf, listen, nlisten, listen_sec, 1),
	LINES("domains", "domain", struct conf, proxy.domains, parse_domains,
	    lines_domains),
	BOOL("relay", struct conf, proxy.relay, false),
	BOOL("record_route", struct conf, proxy.record_route, true),
	GROUP("timers", timers_sec),
	LINES("routes", "route", struct conf, proxy.routes, parse_routes,
	    lines_routes),
	LINES("failure_routes", "failure_route", struct conf, proxy.routes,
	    parse_routes, lines_routes),
	GROUP("probe", probe_sec),
	GROUP("dns", dns_sec),
	GROUP("metrics", metrics_sec),
	GROUP("accounting", accounting_sec),
	GROUP("control", control_sec),
	INT("shutdown_grace", struct conf, shutdown_grace_ms, 0, 600000, 5000),
	INT("workers", struct conf, workers, 0, 64, 0),
	INT("max_message_size", struct conf, proxy.max_message_size, 1024,
	    65535, 65535),
	INT("udp_mtu", struct conf, proxy.udp_mtu, 0, 65535, 1300),
	FN("log_level", struct conf, log_level, parse_log_level,
	    print_log_level),
	GROUP("redis", redis_sec),	/* before registrar: it checks */
	GROUP("registrar", registrar_sec),
	GROUP("nat", nat_sec),
	GROUP("auth", auth_sec),
	GROUP("security", security_sec),
	GROUP("connections", connection_sec),
	GROUP("tls", tls_sec),
	GROUP("websocket", websocket_sec),
	GROUP("dialog", dialog_sec),
	GROUP("limits", limits_sec),
	GROUP("media", media_sec),
	END
};

SECTION(root_sec, root_keys, NULL);

static void PRINTFLIKE(3, 4)
conf_warn(struct conf *cf, int line, const char *fmt, ...)
{
	struct conf_warning	*w;
	va_list			 ap;

	cf->warnings = xrealloc(cf->warnings, (cf->nwarnings + 1) *
	    sizeof(*cf->warnings));
	w = &cf->warnings[cf->nwarnings++];
	w->line = line;
	va_start(ap, fmt);
	if (vasprintf(&w->msg, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
}

struct names {
	char	**v;		/* owned, and each string */
	size_t	  n;
};

static void
add_name(const char *key, void *arg)
{
	struct names	*names = arg;

	names->v = xrealloc(names->v, (names->n + 1) * sizeof(char *));
	names->v[names->n++] = xstrdup(key);
}

static int
cmp_names(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/*
 * A route whose user pattern takes calls to a user of the users file: the
 * user can register, but calls to that user go to the route's targets
 * (the first matching route wins over the registrar).
 */
static void
conf_check_shadows(struct conf *cf)
{
	struct names		 names = { NULL, 0 };
	const struct route	*r;
	char			 id[16];
	size_t			 i;
	unsigned		 j, pos;

	auth_users_foreach(cf->users, add_name, &names);
	if (names.n > 0)
		qsort(names.v, names.n, sizeof(char *), cmp_names);
	for (i = 0; i < names.n; i++) {
		char	*user = names.v[i], *realm = strchr(user, ':');

		*realm++ = '\0';
		r = route_match(&cf->proxy.routes, (struct slice){ user,
		    strlen(user) }, (struct slice){ realm, strlen(realm) });
		if (r == NULL || r->user_src == NULL)
			continue;
		for (j = pos = 0; cf->proxy.routes.r[j] != r; j++)
			pos += cf->proxy.routes.r[j]->matchable;
		snprintf(id, sizeof(id), "#%u", pos + 1);
		conf_warn(cf, r->line, "route %s: user pattern \"%s\" matches "
		    "registered user \"%s\" in %s: calls to %s will take this "
		    "route, not the registrar", r->name ? r->name : id,
		    r->user_src, user, cf->auth.users_file, user);
	}
	for (i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
}

/*
 * redis.node_uri when the file names none: the first listen address (not
 * a WebSocket one), with its transport.  A wildcard address names no
 * host another node could reach: then it must be given (if bindings are
 * reached through nodes).
 */
static int
conf_node_uri(struct conf *cf, const char *path, char *err, size_t errlen)
{
	const struct conf_listen	*l = NULL;
	struct in6_addr			 a6;
	char				 uri[128];
	unsigned			 i;
	bool				 v6;

	if (cf->redis.address == NULL || cf->redis.node_uri != NULL)
		return (0);
	for (i = 0; i < cf->nlisten && l == NULL; i++)
		if (strncmp(cf->listen[i].transport, "ws", 2) != 0)
			l = &cf->listen[i];
	if (l == NULL)
		return (0);
	v6 = inet_pton(AF_INET6, l->address, &a6) == 1;
	if (strcmp(l->address, "0.0.0.0") == 0 || (v6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&a6))) {
		if (cf->reg.backend != REG_BACKEND_REDIS ||
		    cf->redis.via_node == REDIS_VIA_NEVER)
			return (0);
		snprintf(err, errlen, "%s:%d: redis.node_uri: needed, the "
		    "first listen address (%s) is a wildcard the other nodes "
		    "cannot reach", path, l->line, l->address);
		return (-1);
	}
	snprintf(uri, sizeof(uri), "sip:%s%s%s:%u;transport=%s", v6 ? "[" :
	    "", l->address, v6 ? "]" : "", l->port, l->transport);
	cf->redis.node_uri = xstrdup(uri);
	return (0);
}

int
conf_load(const char *path, struct conf *cf, char *err, size_t errlen)
{
	struct ctx	 c = { path, err, errlen };
	config_t	 cfg;
	char		 msg[256];
	int		 rc = -1, line = 0;
	unsigned	 i;

	memset(cf, 0, sizeof(*cf));
	config_init(&cfg);
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read the file", path);
		else
			snprintf(err, errlen, "%s:%d: %s",
			    config_error_file(&cfg) ? config_error_file(&cfg) :
			    path, config_error_line(&cfg),
			    config_error_text(&cfg));
		goto fail;
	}
	if (conf_section(&c, config_root_setting(&cfg), "", &root_sec, cf) ==
	    -1)
		goto fail;
	if (route_link(&cf->proxy.routes, &line, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s:%d: %s", path, line, msg);
		goto fail;
	}
	for (i = 0; i < cf->nlisten; i++)
		if ((strcmp(cf->listen[i].transport, "tls") == 0 ||
		    strcmp(cf->listen[i].transport, "wss") == 0) &&
		    cf->tls_server == NULL) {
			snprintf(err, errlen, "%s:%d: listen: transport "
			    "\"%s\" needs tls.certificate and tls.key", path,
			    cf->listen[i].line, cf->listen[i].transport);
			goto fail;
		}
	if (conf_node_uri(cf, path, err, errlen) == -1)
		goto fail;
	cf->path = xstrdup(path);
	conf_check_shadows(cf);
	rc = 0;
fail:
	config_destroy(&cfg);
	if (rc == -1)
		conf_free(cf);
	return (rc);
}

void
conf_free(struct conf *cf)
{
	unsigned	i;

	for (i = 0; i < cf->nlisten; i++) {
		free(cf->listen[i].transport);
		free(cf->listen[i].address);
	}
	cf->nlisten = 0;
	for (i = 0; i < cf->proxy.ndomains; i++)
		free(cf->proxy.domains[i]);
	free(cf->proxy.domains);
	cf->proxy.domains = NULL;
	cf->proxy.ndomains = 0;
	route_table_free(&cf->proxy.routes);
	free(cf->metrics_address);
	cf->metrics_address = NULL;
	free(cf->ctl.socket);
	cf->ctl.socket = NULL;
	cdr_settings_cleanup(&cf->cdr);
	registrar_settings_cleanup(&cf->reg);
	redis_settings_cleanup(&cf->redis);
	auth_settings_cleanup(&cf->auth);
	auth_users_free(cf->users);
	cf->users = NULL;
	guard_settings_cleanup(&cf->guard);
	tls_settings_free(&cf->tls);
	free(cf->tls_client_ca);
	free(cf->tls_client_cert);
	free(cf->tls_client_key);
	cf->tls_client_ca = cf->tls_client_cert = cf->tls_client_key = NULL;
	tls_ctx_unref(cf->tls_server);
	tls_ctx_unref(cf->tls_client);
	cf->tls_server = cf->tls_client = NULL;
	strlist_free(&cf->ws_origins);
	for (i = 0; i < cf->media.ninst; i++)
		free(cf->media.inst[i].uri);
	cf->media.ninst = 0;
	for (i = 0; i < cf->nwarnings; i++)
		free(cf->warnings[i].msg);
	free(cf->warnings);
	cf->warnings = NULL;
	cf->nwarnings = 0;
	free(cf->dialog_database);
	cf->dialog_database = NULL;
	free(cf->path);
	cf->path = NULL;
}

/* The warnings of a loaded config: to fp (ospreyd -t), or NULL: the log. */
void
conf_warnings(const struct conf *cf, FILE *fp)
{
	unsigned	i;

	for (i = 0; i < cf->nwarnings; i++)
		if (fp != NULL)
			fprintf(fp, "%s:%d: warning: %s\n", cf->path,
			    cf->warnings[i].line, cf->warnings[i].msg);
		else
			log_warnx("conf %s:%d: %s", cf->path,
			    cf->warnings[i].line, cf->warnings[i].msg);
}

/*
 * For ospreyd -t -v and the reload summary: the config as understood, a
 * record a line, every key with its value (defaults too), from the tables.
 */
void
conf_print(const struct conf *cf, FILE *fp)
{
	print_root(fp, &root_sec, cf);
}
