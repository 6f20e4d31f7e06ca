/* Static routes from the config: first match on user and domain wins. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashtab.h"
#include "route.h"
#include "xmalloc.h"

static int
compile(regex_t *re, const char *src, char *err, size_t errlen)
{
	int	rc;
	char	msg[128];

	if ((rc = regcomp(re, src, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, re, msg, sizeof(msg));
		snprintf(err, errlen, "bad regular expression \"%s\": %s",
		    src, msg);
		return (-1);
	}
	return (0);
}

struct route *
route_add(struct route_table *rt, const char *user, const char *domain,
    int line, char *err, size_t errlen)
{
	struct route	*r = xcalloc(1, sizeof(*r));

	r->line = line;
	r->matchable = true;
	r->balance = BAL_ORDER;
	r->fork = FORK_PARALLEL;
	r->max_redirects = 3;
	if (user != NULL) {
		if (compile(&r->user_re, user, err, errlen) == -1) {
			free(r);
			return (NULL);
		}
		r->user_src = xstrdup(user);
	}
	if (domain != NULL) {
		if (compile(&r->domain_re, domain, err, errlen) == -1) {
			if (r->user_src != NULL) {
				regfree(&r->user_re);
				free(r->user_src);
			}
			free(r);
			return (NULL);
		}
		r->domain_src = xstrdup(domain);
	}
	rt->r = xrealloc(rt->r, (rt->n + 1) * sizeof(*rt->r));
	rt->r[rt->n++] = r;
	return (r);
}

/*
 * tp_addr_set() for a dotted-quad IPv4 host without inet_pton() (it runs
 * for every next hop): exactly what inet_pton() takes, four decimal parts
 * of at most 255 without leading zeros; anything else goes to
 * tp_addr_set().  0, or -1 when it is no address.
 */
int
dest_addr_set(struct tp_addr *a, struct slice host, uint16_t port)
{
	struct sockaddr_in	sin;
	unsigned char		b[4];
	unsigned		part = 0, v = 0, digits = 0;
	size_t			i;

	for (i = 0; i < host.len; i++) {
		unsigned char	c = (unsigned char)host.p[i];

		if (c >= '0' && c <= '9') {
			if (digits > 0 && v == 0)
				goto other;	/* a leading zero */
			v = v * 10 + (c - '0');
			if (++digits > 3 || v > 255)
				goto other;
		} else if (c == '.' && digits > 0 && part < 3) {
			b[part++] = (unsigned char)v;
			v = digits = 0;
		} else
			goto other;
	}
	if (part != 3 || digits == 0)
		goto other;
	b[3] = (unsigned char)v;
	memset(a, 0, sizeof(*a));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	memcpy(&sin.sin_addr, b, 4);
	memcpy(&a->ss, &sin, sizeof(sin));
	a->len = sizeof(sin);
	return (0);
other:
	return (tp_addr_set(a, host, port));
}

/*
 * Where a URI sends us (RFC 3263 without NAPTR: UDP only): maddr or host,
 * numeric or a name to resolve.  Returns 0, or a status with err set.
 */
int
dest_from_uri(struct slice uri, struct dest *d, char *err, size_t errlen)
{
	struct sipuri	u;

	if (sipuri_parse(uri, &u) == -1)
		u.host.len = 0;
	return (dest_from_sipuri(&u, d, err, errlen));
}

/* The same for a URI parsed already (u->host empty: it did not parse). */
int
dest_from_sipuri(const struct sipuri *up, struct dest *d, char *err,
    size_t errlen)
{
	const struct sipuri	u = *up;
	struct slice		tr, maddr, host;
	enum tp_proto		proto = TP_UDP;

	memset(d, 0, sizeof(*d));
	d->proto = -1;
	if (u.host.len == 0) {
		snprintf(err, errlen, "Bad next hop URI");
		return (400);
	}
	d->sips = u.scheme.len == 4;	/* sipuri_parse: "sip" or "sips" */
	if (sipuri_param(&u, "transport", &tr)) {
		if (tp_proto_parse(tr, &proto) == -1 ||
		    (d->sips && proto != TP_TLS && proto != TP_TCP &&
		    proto != TP_WSS)) {
			snprintf(err, errlen, "Transport " SLICE_FMT
			    " not available", SLICE_ARG(tr));
			return (503);
		}
		d->proto = (int)proto;
	}
	/* sips: is TLS all the way (RFC 3261 26.2.2); transport=tcp too. */
	if (d->sips && (d->proto == -1 || d->proto == TP_TCP))
		d->proto = TP_TLS;
	host = u.host;
	if (sipuri_param(&u, "maddr", &maddr) && maddr.len > 0)
		host = maddr;
	proto = d->proto == -1 ? TP_UDP : (enum tp_proto)d->proto;
	if (dest_addr_set(&d->addr, host, u.port ? u.port : proto == TP_TLS ?
	    5061 : 5060) == 0) {
		d->addr.proto = (uint8_t)proto;
		d->numeric = true;
		return (0);
	}
	if (host.len >= sizeof(d->host) || host.p[0] == '[') {
		snprintf(err, errlen, "Bad host in next hop URI");
		return (400);
	}
	memcpy(d->host, host.p, host.len);
	d->host[host.len] = '\0';
	d->port = u.port;
	return (0);
}

/* A target URI; a host name is resolved per call (RFC 3263). */
int
route_add_target(struct route *r, const char *uri, char *err, size_t errlen)
{
	struct target	*t;

	if (r->ntargets == ROUTE_MAX_TARGETS) {
		snprintf(err, errlen, "too many targets (at most %d)",
		    ROUTE_MAX_TARGETS);
		return (-1);
	}
	t = &r->targets[r->ntargets];
	memset(t, 0, sizeof(*t));
	t->weight = 1;
	t->uri = xstrdup(uri);
	if (sipuri_parse((struct slice){ t->uri, strlen(t->uri) },
	    &t->parsed) == -1 || !slice_eq(t->parsed.scheme, "sip")) {
		snprintf(err, errlen, "bad target \"%s\": want a SIP URI, "
		    "sip:[user@]host[:port][;params]", uri);
		goto fail;
	}
	if (dest_from_uri((struct slice){ t->uri, strlen(t->uri) }, &t->dest,
	    err, errlen) != 0) {
		char	msg[128];

		snprintf(msg, sizeof(msg), "%s", err);
		snprintf(err, errlen, "target \"%s\": %s", uri, msg);
		goto fail;
	}
	r->ntargets++;
	return (0);
fail:
	free(t->uri);
	t->uri = NULL;
	return (-1);
}

static bool
route_re_match(const regex_t *re, struct slice s)
{
	char	stack[256], *p = stack;
	bool	ok;

	if (s.len >= sizeof(stack))
		p = xmalloc(s.len + 1);
	if (s.len > 0)
		memcpy(p, s.p, s.len);
	p[s.len] = '\0';
	ok = regexec(re, p, 0, NULL, 0) == 0;
	if (p != stack)
		free(p);
	return (ok);
}

const struct route *
route_match(const struct route_table *rt, struct slice user, struct slice host)
{
	unsigned	i;

	for (i = 0; i < rt->n; i++) {
		const struct route	*r = rt->r[i];

		if (!r->matchable)
			continue;
		if (r->user_src != NULL && !route_re_match(&r->user_re, user))
			continue;
		if (r->domain_src != NULL && !route_re_match(&r->domain_re, host))
			continue;
		return (r);
	}
	return (NULL);
}

void
route_table_free(struct route_table *rt)
{
	unsigned	i, j;

	for (i = 0; i < rt->n; i++) {
		struct route	*r = rt->r[i];

		free(r->name);
		for (j = 0; j < r->nfailure; j++)
			free(r->on_failure[j].route_name);
		if (r->user_src != NULL) {
			regfree(&r->user_re);
			free(r->user_src);
		}
		if (r->domain_src != NULL) {
			regfree(&r->domain_re);
			free(r->domain_src);
		}
		for (j = 0; j < r->ntargets; j++)
			free(r->targets[j].uri);
		free(r);
	}
	free(rt->r);
	rt->r = NULL;
	rt->n = 0;
}

struct route *
route_find(const struct route_table *rt, const char *name)
{
	unsigned	i;

	for (i = 0; i < rt->n; i++)
		if (rt->r[i]->name != NULL && strcmp(rt->r[i]->name, name) == 0)
			return (rt->r[i]);
	return (NULL);
}

/* Resolve on_failure names once every route is known. */
int
route_link(struct route_table *rt, int *line, char *err, size_t errlen)
{
	unsigned	i, j;

	for (i = 0; i < rt->n; i++) {
		struct route	*r = rt->r[i];

		for (j = 0; j < r->nfailure; j++) {
			struct failure_rule	*f = &r->on_failure[j];

			if ((f->route = route_find(rt, f->route_name)) == NULL) {
				snprintf(err, errlen, "on_failure: no route "
				    "named \"%s\"", f->route_name);
				*line = r->line;
				return (-1);
			}
		}
	}
	return (0);
}

/*
 * The order to try the targets in: for a serial route the whole order, for
 * a parallel one the same list (all are tried).  Returns how many.
 */
unsigned
route_order(struct route *r, struct slice callid, unsigned *order)
{
	unsigned	i, j, n = r->ntargets, start, total, pick, tmp;
	uint64_t	seed[2] = { 0x6f7370726579ULL, 0x3236 };

	for (i = 0; i < n; i++)
		order[i] = i;
	switch (r->balance) {
	case BAL_ORDER:
		break;
	case BAL_ROUND_ROBIN:
	case BAL_HASH:
		start = r->balance == BAL_HASH ?
		    (unsigned)(hashtab_hash(seed, callid.p, callid.len) % n) :
		    r->rr_next++ % n;
		for (i = 0; i < n; i++)
			order[i] = (start + i) % n;
		break;
	case BAL_WEIGHT:
		/* Weighted draw without replacement. */
		for (i = 0; i < n; i++) {
			total = 0;
			for (j = i; j < n; j++)
				total += r->targets[order[j]].weight;
			if (total == 0)
				break;
			pick = (unsigned)(random() % total);
			for (j = i; j < n; j++) {
				if (pick < r->targets[order[j]].weight)
					break;
				pick -= r->targets[order[j]].weight;
			}
			if (j == n)
				j = n - 1;
			tmp = order[i];
			order[i] = order[j];
			order[j] = tmp;
		}
		break;
	}
	return (n);
}

const char *
route_fork_name(enum fork_mode f)
{
	return (f == FORK_SERIAL ? "serial" : "parallel");
}

const char *
route_balance_name(enum balance b)
{
	static const char *const names[] = { "order", "weight",
	    "round_robin", "hash" };

	return (names[b]);
}
