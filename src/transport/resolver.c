/*
 * RFC 3263 next-hop resolution, asynchronous on the event loop, on c-ares.
 *
 * c-ares tells us which sockets it wants read or written (one libevent
 * event each) and when its next timeout is due (one timer); we hand it the
 * events.  c-ares parses every answer (ares_parse_naptr_reply,
 * ares_parse_srv_reply, ares_getaddrinfo); the one thing we read from the
 * wire ourselves is the TTL of NAPTR and SRV answers, which c-ares 1.18
 * does not give, with ares_expand_name() to step over the names.
 *
 * A lookup goes NAPTR -> SRV -> A/AAAA (or starts further on, see
 * resolver.h), asking every question of a step at once; each answer is
 * cached by name and type for its TTL, so a lookup whose answers are all
 * cached finishes before resolver_query() returns.
 */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <event2/event.h>

#include "log.h"
#include "resolver.h"
#include "resolver_int.h"
#include "timer.h"
#include "xmalloc.h"

#define DNS_PORT	53
#define DNS_TRIES	2	/* rounds; the second waits twice as long */
#define MAX_RANKS	32		/* SRV records over every name asked */
#define T_CNAME		5

enum stage { S_BEGIN, S_NAPTR, S_SRV, S_ADDR };

struct cache_entry {
	char			*key;		/* owned: "type|name" */
	void			*recs;		/* owned: n records */
	unsigned		 n;		/* 0: the name has none */
	uint64_t		 expires_ms;	/* timer_now_ms() */
	struct cache_entry	*next;
};

/* One answer a lookup waits for, then has. */
struct rrset {
	bool		 failed;	/* could not ask: timeout, SERVFAIL */
	unsigned	 n;
	void		*recs;		/* owned: n records */
};

struct srvset {
	struct resolver_srvname	 sn;
	struct rrset		 rr;
};

struct target {
	char		 name[256];
	struct rrset	 rr;		/* struct tp_addr, port 0 */
};

/* One SRV record to try (or the host itself): where its addresses go. */
struct rank {
	uint8_t		 proto;
	uint16_t	 port;
	unsigned	 target;
};

/* One lookup; owned by the resolver until it calls back or is cancelled. */
struct resolve_req {
	char			*host;		/* owned */
	struct resolve_query	 q;		/* q.host is host */
	struct resolver_plan	 plan;
	resolve_cb		*cb;
	void			*arg;
	bool			 cancelled;
	enum stage		 stage;		/* what was asked last */
	unsigned		 pending;	/* answers out, and the hold */
	struct rrset		 naptr;
	struct srvset		 sets[RESOLVER_MAX_SETS];
	unsigned		 nsets;
	struct rank		 ranks[MAX_RANKS];
	unsigned		 nranks;
	struct target		*targets;	/* owned: ntargets */
	unsigned		 ntargets;
	const char		*err;		/* static: why none, or NULL */
	struct resolve_req	*next;
};

/* One c-ares question out for a lookup; owned by the c-ares callback. */
struct ask {
	struct resolve_req	*req;
	struct rrset		*rr;		/* in req */
	unsigned		 type;
	char			 name[];
};

/* One socket c-ares watches. */
struct sockev {
	ares_socket_t		 fd;
	struct event		*ev;		/* owned */
	struct sockev		*next;
};

/* Each worker's loop has its own channel and cache (thread-local). */
static _Thread_local struct {
	struct event_base	*base;
	ares_channel		 ch;		/* NULL: no resolver */
	bool			 lib;		/* ares_library_init done */
	struct event		*tm;		/* c-ares' next timeout */
	struct sockev		*socks;
	struct resolve_req	*reqs;
	uint64_t		 lookups;
} R;

/*
 * The answers, for every worker's resolver alike (one cache for the
 * process, as one loop had): under mu; a lookup copies what it takes.
 */
static struct {
	pthread_mutex_t		 mu;
	struct cache_entry	*cache;
	unsigned		 ncache;
} RC = { .mu = PTHREAD_MUTEX_INITIALIZER };

static bool	req_run(struct resolve_req *);

/* ------------------------------------------------------------------ */
/* c-ares on the event loop */

static void
ares_rearm(void)
{
	struct timeval	 tv, *tvp;

	if (R.ch == NULL || R.tm == NULL)
		return;
	if ((tvp = ares_timeout(R.ch, NULL, &tv)) == NULL)
		evtimer_del(R.tm);
	else
		evtimer_add(R.tm, tvp);
}

static void
ares_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	ares_process_fd(R.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	ares_rearm();
}

static void
ares_on_sock(evutil_socket_t fd, short what, void *arg)
{
	(void)arg;
	ares_process_fd(R.ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	ares_rearm();
}

/*
 * c-ares opens, closes and changes its interest in a socket.  The event
 * may be freed from inside its own callback: libevent does not touch it
 * after the callback returns.
 */
static void
ares_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct sockev	**pp, *s;

	(void)data;
	for (pp = &R.socks; (s = *pp) != NULL; pp = &s->next)
		if (s->fd == fd)
			break;
	if (s != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = R.socks;
		R.socks = s;
	}
	s->ev = event_new(R.base, fd, EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0), ares_on_sock, NULL);
	if (s->ev == NULL)
		fatalx("dns: event_new failed");
	event_add(s->ev, NULL);
}

/* ------------------------------------------------------------------ */
/* The cache */

static size_t
rec_size(unsigned type)
{
	switch (type) {
	case RESOLVER_T_SRV:
		return (sizeof(struct resolver_srv));
	case RESOLVER_T_NAPTR:
		return (sizeof(struct resolver_naptr));
	default:
		return (sizeof(struct tp_addr));
	}
}

/* "type|name", the name in lower case without a trailing dot. */
static void
make_key(char *buf, size_t len, const char *name, unsigned type)
{
	size_t	i, w;

	w = (size_t)snprintf(buf, len, "%u|", type);
	for (i = 0; name[i] != '\0' && w + 1 < len; i++)
		buf[w++] = (char)(name[i] >= 'A' && name[i] <= 'Z' ?
		    name[i] + 'a' - 'A' : name[i]);
	if (w > 0 && buf[w - 1] == '.')
		w--;
	buf[w] = '\0';
}

static void
cache_unlink(struct cache_entry **pp)
{
	struct cache_entry	*c = *pp;

	*pp = c->next;
	free(c->key);
	free(c->recs);
	free(c);
	RC.ncache--;
}

/* Expired entries go as the list is walked. */
static struct cache_entry *
cache_find(const char *key)
{
	struct cache_entry	*c, **pp;
	uint64_t		 now = timer_now_ms();

	for (pp = &RC.cache; (c = *pp) != NULL; ) {
		if (c->expires_ms <= now) {
			cache_unlink(pp);
			continue;
		}
		if (strcmp(c->key, key) == 0)
			return (c);
		pp = &c->next;
	}
	return (NULL);
}

/*
 * The records point into the cache: for the unit tests, on one thread;
 * the resolver itself copies them out under the lock (cache_take()).
 */
bool
resolver_cache_get(const char *name, unsigned type, const void **recs,
    unsigned *n)
{
	struct cache_entry	*c;
	char			 key[300];

	make_key(key, sizeof(key), name, type);
	pthread_mutex_lock(&RC.mu);
	c = cache_find(key);
	pthread_mutex_unlock(&RC.mu);
	if (c == NULL) {
		*recs = NULL;
		*n = 0;
		return (false);
	}
	*recs = c->recs;
	*n = c->n;
	return (true);
}

/*
 * A TTL of 0 is not cached; "none" for RESOLVER_NEG_TTL at most, anything
 * for RESOLVER_TTL_MAX at most.  A full cache takes nothing new.
 */
void
resolver_cache_put(const char *name, unsigned type, const void *recs,
    unsigned n, uint32_t ttl)
{
	struct cache_entry	*c, **pp;
	char			 key[300];

	if (n == 0 && ttl > RESOLVER_NEG_TTL)
		ttl = RESOLVER_NEG_TTL;
	if (ttl > RESOLVER_TTL_MAX)
		ttl = RESOLVER_TTL_MAX;
	if (ttl == 0)
		return;
	make_key(key, sizeof(key), name, type);
	pthread_mutex_lock(&RC.mu);
	for (pp = &RC.cache; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0) {
			cache_unlink(pp);	/* a newer answer */
			break;
		}
	if (RC.ncache >= RESOLVER_CACHE_MAX) {
		pthread_mutex_unlock(&RC.mu);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->key = xstrdup(key);
	if (n > 0) {
		c->recs = xcalloc(n, rec_size(type));
		memcpy(c->recs, recs, n * rec_size(type));
	}
	c->n = n;
	c->expires_ms = timer_now_ms() + (uint64_t)ttl * 1000;
	c->next = RC.cache;
	RC.cache = c;
	RC.ncache++;
	pthread_mutex_unlock(&RC.mu);
}

unsigned
resolver_cache_size(void)
{
	unsigned	n;

	pthread_mutex_lock(&RC.mu);
	n = RC.ncache;
	pthread_mutex_unlock(&RC.mu);
	return (n);
}

/* ------------------------------------------------------------------ */
/* RFC 3263 decisions, without the network */

static uint16_t
default_port(unsigned proto)
{
	return (proto == TP_TLS || proto == TP_WSS ? 5061 : 5060);
}

/* Without ;transport=: UDP (TLS for sips), else what we have. */
static int
default_proto(unsigned protos, bool sips)
{
	static const unsigned	pref[] = { TP_UDP, TP_TCP, TP_TLS };
	unsigned		i;

	if (sips)
		return ((protos & RESOLVE_PROTO(TP_TLS)) ? TP_TLS : -1);
	for (i = 0; i < sizeof(pref) / sizeof(pref[0]); i++)
		if (protos & RESOLVE_PROTO(pref[i]))
			return ((int)pref[i]);
	return (-1);
}

int
resolver_plan(const struct resolve_query *q, struct resolver_plan *plan,
    const char **err)
{
	int	p = q->proto;

	memset(plan, 0, sizeof(*plan));
	if (q->host == NULL || q->host[0] == '\0') {
		*err = "no host";
		return (-1);
	}
	if (p >= TP_NPROTO || p < -1) {
		*err = "unknown transport";
		return (-1);
	}
	if (p >= 0 && q->sips) {		/* RFC 3263 4.1, RFC 5630 */
		if (p == TP_UDP) {
			*err = "sips: URI over UDP";
			return (-1);
		}
		if (p == TP_TCP)
			p = TP_TLS;
		else if (p == TP_WS)
			p = TP_WSS;
	}
	if (p >= 0 && !(q->protos & RESOLVE_PROTO(p))) {
		*err = "no listener for the URI's transport";
		return (-1);
	}
	if (p < 0 && (p = default_proto(q->protos, q->sips)) < 0) {
		*err = q->sips ? "sips: URI and no TLS listener" :
		    "no transport to send on";
		return (-1);
	}
	plan->proto = (uint8_t)p;
	plan->port = q->port != 0 ? q->port : default_port((unsigned)p);
	if (tp_addr_set(&plan->addr, (struct slice){ q->host,
	    strlen(q->host) }, plan->port) == 0) {
		plan->addr.proto = (uint8_t)p;
		plan->step = RESOLVER_NUMERIC;
	} else if (q->port != 0 || p == TP_WS || p == TP_WSS)
		plan->step = RESOLVER_ADDR;
	else if (q->proto >= 0)
		plan->step = RESOLVER_SRV;
	else
		plan->step = RESOLVER_NAPTR;
	return (0);
}

int
resolver_srv_name(const char *host, unsigned proto, char *out, size_t len)
{
	const char	*pre;
	int		 n;

	switch (proto) {
	case TP_UDP:
		pre = "_sip._udp";
		break;
	case TP_TCP:
		pre = "_sip._tcp";
		break;
	case TP_TLS:
		pre = "_sips._tcp";
		break;
	default:
		return (-1);	/* RFC 7118 names NAPTR services only */
	}
	n = snprintf(out, len, "%s.%s", pre, host);
	return (n < 0 || (size_t)n >= len || n > 253 ? -1 : 0);
}

static const struct {
	const char	*service;
	unsigned	 proto;
} naptr_services[] = {
	{ "SIP+D2U", TP_UDP },
	{ "SIP+D2T", TP_TCP },
	{ "SIPS+D2T", TP_TLS },
};

static int
naptr_proto(const struct resolver_naptr *n, unsigned protos, bool sips)
{
	unsigned	i;

	if (strcasecmp(n->flags, "s") != 0 || n->regexp ||
	    n->replacement[0] == '\0')
		return (-1);
	for (i = 0; i < sizeof(naptr_services) / sizeof(naptr_services[0]);
	    i++)
		if (strcasecmp(n->service, naptr_services[i].service) == 0) {
			if (sips && naptr_services[i].proto != TP_TLS)
				return (-1);
			if (!(protos & RESOLVE_PROTO(naptr_services[i].proto)))
				return (-1);
			return ((int)naptr_services[i].proto);
		}
	return (-1);
}

static bool
srvname_has(const struct resolver_srvname *out, unsigned n,
    const char *name, unsigned proto)
{
	unsigned	i;

	for (i = 0; i < n; i++)
		if (out[i].proto == proto && strcasecmp(out[i].name, name) == 0)
			return (true);
	return (false);
}

unsigned
resolver_naptr_select(const struct resolver_naptr *recs, unsigned n,
    unsigned protos, bool sips, struct resolver_srvname *out, unsigned max)
{
	unsigned	 idx[RESOLVER_MAX_NAPTR], nidx = 0, i, j, k = 0;
	int		 proto[RESOLVER_MAX_NAPTR];

	for (i = 0; i < n && nidx < RESOLVER_MAX_NAPTR; i++)
		if ((proto[nidx] = naptr_proto(&recs[i], protos, sips)) >= 0)
			idx[nidx++] = i;
	/* Insertion sort: stable, by order then preference. */
	for (i = 1; i < nidx; i++)
		for (j = i; j > 0; j--) {
			const struct resolver_naptr	*a = &recs[idx[j - 1]];
			const struct resolver_naptr	*b = &recs[idx[j]];
			unsigned			 ti;
			int				 tp;

			if (a->order < b->order || (a->order == b->order &&
			    a->pref <= b->pref))
				break;
			ti = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = ti;
			tp = proto[j];
			proto[j] = proto[j - 1];
			proto[j - 1] = tp;
		}
	for (i = 0; i < nidx && k < max; i++) {
		const char	*name = recs[idx[i]].replacement;

		if (strlen(name) >= sizeof(out[k].name) ||
		    srvname_has(out, k, name, (unsigned)proto[i]))
			continue;
		snprintf(out[k].name, sizeof(out[k].name), "%s", name);
		out[k].proto = (uint8_t)proto[i];
		k++;
	}
	return (k);
}

unsigned
resolver_srv_fallback(const char *host, unsigned protos, bool sips,
    struct resolver_srvname *out, unsigned max)
{
	static const unsigned	pref[] = { TP_UDP, TP_TCP, TP_TLS };
	unsigned		i, k = 0;

	for (i = 0; i < sizeof(pref) / sizeof(pref[0]) && k < max; i++) {
		if (!(protos & RESOLVE_PROTO(pref[i])) ||
		    (sips && pref[i] != TP_TLS))
			continue;
		if (resolver_srv_name(host, pref[i], out[k].name,
		    sizeof(out[k].name)) == -1)
			continue;
		out[k++].proto = (uint8_t)pref[i];
	}
	return (k);
}

/*
 * SRV records in the order to try them (RFC 2782): by priority; each place
 * within a priority goes to a draw among the records left, weighted by
 * their weights.  Records of weight 0 are put first and the draw runs from
 * 0 to the sum, so that a weight 0 record wins only on 0 when others weigh
 * something; with none of weight 0 the draw runs from 1, so that the odds
 * are the weights'.  When every weight left is 0 the draw is even.
 */
void
resolver_srv_order(struct resolver_srv *s, unsigned n, long (*rnd)(void))
{
	unsigned		i, j, k, end, zeros, total, pick, run;
	struct resolver_srv	tmp;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && s[j - 1].prio > s[j].prio; j--) {
			tmp = s[j];
			s[j] = s[j - 1];
			s[j - 1] = tmp;
		}
	for (i = 0; i < n; i++) {
		for (end = i; end < n && s[end].prio == s[i].prio; end++)
			;
		if (end - i == 1)
			continue;
		total = 0;
		for (zeros = i, k = i; k < end; k++) {
			total += s[k].weight;
			if (s[k].weight == 0) {		/* weight 0 first */
				tmp = s[k];
				memmove(&s[zeros + 1], &s[zeros],
				    (k - zeros) * sizeof(*s));
				s[zeros++] = tmp;
			}
		}
		if (total == 0)
			j = i + (unsigned)(rnd() % (end - i));
		else {
			if (zeros > i)
				pick = (unsigned)(rnd() % (total + 1));
			else
				pick = (unsigned)(rnd() % total) + 1;
			for (j = i, run = 0; j < end - 1; j++)
				if ((run += s[j].weight) >= pick)
					break;
		}
		tmp = s[j];			/* s[j] takes place i */
		memmove(&s[i + 1], &s[i], (j - i) * sizeof(*s));
		s[i] = tmp;
	}
}

/* Step over the name at off with c-ares; -1 when it does not hold. */
static int
skip_name(const unsigned char *p, int len, int off)
{
	char	*s;
	long	 enclen;

	if (off >= len || ares_expand_name(p + off, p, len, &s, &enclen) !=
	    ARES_SUCCESS)
		return (-1);
	ares_free_string(s);
	return (off + (int)enclen);
}

int
resolver_answer_ttl(const unsigned char *p, int len, unsigned type,
    uint32_t *ttl)
{
	unsigned	qd, an, i;
	uint32_t	min = UINT32_MAX;
	int		off = 12;

	*ttl = 0;
	if (len < 12)
		return (-1);
	qd = (unsigned)(p[4] << 8 | p[5]);
	an = (unsigned)(p[6] << 8 | p[7]);
	for (i = 0; i < qd; i++)
		if ((off = skip_name(p, len, off)) < 0 || (off += 4) > len)
			return (-1);
	for (i = 0; i < an; i++) {
		unsigned	rtype, rdlen;
		uint32_t	t;

		if ((off = skip_name(p, len, off)) < 0 || off + 10 > len)
			return (-1);
		rtype = (unsigned)(p[off] << 8 | p[off + 1]);
		t = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 |
		    (uint32_t)p[off + 6] << 8 | p[off + 7];
		rdlen = (unsigned)(p[off + 8] << 8 | p[off + 9]);
		off += 10;
		if ((unsigned)(len - off) < rdlen)
			return (-1);
		off += (int)rdlen;
		if (rtype != type && rtype != T_CNAME)
			continue;
		if (t & 0x80000000u)
			t = 0;
		if (t < min)
			min = t;
	}
	*ttl = min == UINT32_MAX ? 0 : min;
	return (0);
}

/* ------------------------------------------------------------------ */
/* Asking */

static void
rrset_clear(struct rrset *rr)
{
	free(rr->recs);
	memset(rr, 0, sizeof(*rr));
}

static void
rrset_set(struct rrset *rr, unsigned type, const void *recs, unsigned n)
{
	rr->n = n;
	rr->recs = NULL;
	if (n > 0) {
		rr->recs = xcalloc(n, rec_size(type));
		memcpy(rr->recs, recs, n * rec_size(type));
	}
}

/* A cached answer into rr, copied under the lock; false: none. */
static bool
cache_take(const char *name, unsigned type, struct rrset *rr)
{
	struct cache_entry	*c;
	char			 key[300];

	make_key(key, sizeof(key), name, type);
	pthread_mutex_lock(&RC.mu);
	if ((c = cache_find(key)) != NULL)
		rrset_set(rr, type, c->recs, c->n);
	pthread_mutex_unlock(&RC.mu);
	return (c != NULL);
}

/* The end of an answer: cache it, and go on once the step has all. */
static void
ask_done(struct ask *a, int status, const void *recs, unsigned n,
    uint32_t ttl)
{
	struct resolve_req	*r = a->req;

	switch (status) {
	case ARES_SUCCESS:
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		if (status != ARES_SUCCESS)
			n = 0;
		rrset_set(a->rr, a->type, recs, n);
		resolver_cache_put(a->name, a->type, recs, n,
		    n > 0 ? ttl : RESOLVER_NEG_TTL);
		log_debug("dns %s: type=%u records=%u ttl=%u", a->name,
		    a->type, n, n > 0 ? ttl : 0);
		break;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		a->rr->failed = true;
		break;
	default:
		a->rr->failed = true;
		log_info("dns %s: type=%u failed: %s", a->name, a->type,
		    ares_strerror(status));
		break;
	}
	free(a);
	if (--r->pending == 0)
		req_run(r);
}

static void
ask_on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct ask		*a = arg;
	struct resolver_srv	 srv[RESOLVER_MAX_SRV];
	struct resolver_naptr	 nap[RESOLVER_MAX_NAPTR];
	struct ares_srv_reply	*sr = NULL, *s;
	struct ares_naptr_reply	*nr = NULL, *x;
	uint32_t		 ttl = 0;
	unsigned		 n = 0;
	void			*recs = srv;

	(void)timeouts;
	if (status != ARES_SUCCESS)
		goto done;
	if (a->type == RESOLVER_T_SRV) {
		if ((status = ares_parse_srv_reply(abuf, alen, &sr)) !=
		    ARES_SUCCESS)
			goto done;
		for (s = sr; s != NULL && n < RESOLVER_MAX_SRV; s = s->next) {
			srv[n].prio = s->priority;
			srv[n].weight = s->weight;
			srv[n].port = s->port;
			if (strlen(s->host) >= sizeof(srv[n].target))
				continue;
			snprintf(srv[n].target, sizeof(srv[n].target), "%s",
			    s->host);
			n++;
		}
		ares_free_data(sr);
	} else {
		recs = nap;
		if ((status = ares_parse_naptr_reply(abuf, alen, &nr)) !=
		    ARES_SUCCESS)
			goto done;
		for (x = nr; x != NULL && n < RESOLVER_MAX_NAPTR;
		    x = x->next) {
			memset(&nap[n], 0, sizeof(nap[n]));
			nap[n].order = x->order;
			nap[n].pref = x->preference;
			if (strlen((char *)x->flags) >= sizeof(nap[n].flags) ||
			    strlen((char *)x->service) >=
			    sizeof(nap[n].service) || strlen(x->replacement) >=
			    sizeof(nap[n].replacement))
				continue;	/* none we could use */
			snprintf(nap[n].flags, sizeof(nap[n].flags), "%s",
			    (char *)x->flags);
			snprintf(nap[n].service, sizeof(nap[n].service), "%s",
			    (char *)x->service);
			nap[n].regexp = x->regexp[0] != '\0';
			snprintf(nap[n].replacement,
			    sizeof(nap[n].replacement), "%s", x->replacement);
			n++;
		}
		ares_free_data(nr);
	}
	if (resolver_answer_ttl(abuf, alen, a->type, &ttl) == -1)
		ttl = 0;
done:
	ask_done(a, status, recs, n, ttl);
}

static void
ask_on_addrinfo(void *arg, int status, int timeouts,
    struct ares_addrinfo *res)
{
	struct ask			*a = arg;
	struct tp_addr			 addrs[RESOLVE_MAX_ADDRS];
	struct ares_addrinfo_node	*ai;
	struct ares_addrinfo_cname	*cn;
	uint32_t			 ttl = UINT32_MAX;
	unsigned			 n = 0;

	(void)timeouts;
	if (status == ARES_SUCCESS && res != NULL) {
		for (ai = res->nodes; ai != NULL && n < RESOLVE_MAX_ADDRS;
		    ai = ai->ai_next) {
			if ((ai->ai_family != AF_INET &&
			    ai->ai_family != AF_INET6) ||
			    ai->ai_addrlen > sizeof(addrs[n].ss))
				continue;
			memset(&addrs[n], 0, sizeof(addrs[n]));
			memcpy(&addrs[n].ss, ai->ai_addr, ai->ai_addrlen);
			addrs[n].len = ai->ai_addrlen;
			n++;
			/* Negative: the top bit was set (RFC 2181 8). */
			if ((uint32_t)(ai->ai_ttl < 0 ? 0 : ai->ai_ttl) < ttl)
				ttl = ai->ai_ttl < 0 ? 0 : (uint32_t)ai->ai_ttl;
		}
		for (cn = res->cnames; cn != NULL; cn = cn->next)
			if ((uint32_t)(cn->ttl < 0 ? 0 : cn->ttl) < ttl)
				ttl = cn->ttl < 0 ? 0 : (uint32_t)cn->ttl;
		if (n == 0)
			status = ARES_ENODATA;
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	ask_done(a, status, addrs, n, ttl == UINT32_MAX ? 0 : ttl);
}

/*
 * Fill rr with the records of type at name: from the cache at once, else
 * asked of c-ares (the answer may come before this returns).
 */
static void
req_ask(struct resolve_req *r, struct rrset *rr, const char *name,
    unsigned type)
{
	struct ares_addrinfo_hints	 hints;
	struct ask			*a;
	size_t				 len = strlen(name);

	if (cache_take(name, type, rr))
		return;
	a = xmalloc(sizeof(*a) + len + 1);
	a->req = r;
	a->rr = rr;
	a->type = type;
	memcpy(a->name, name, len + 1);
	r->pending++;
	if (type == RESOLVER_T_ADDR) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_DGRAM;
		ares_getaddrinfo(R.ch, name, NULL, &hints, ask_on_addrinfo, a);
	} else
		ares_query(R.ch, name, 1 /* IN */, (int)type, ask_on_answer,
		    a);
}

/* ------------------------------------------------------------------ */
/* The steps of a lookup */

static void
req_unlink(struct resolve_req *r)
{
	struct resolve_req	**pp;

	for (pp = &R.reqs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

static void
req_free(struct resolve_req *r)
{
	unsigned	i;

	rrset_clear(&r->naptr);
	for (i = 0; i < r->nsets; i++)
		rrset_clear(&r->sets[i].rr);
	for (i = 0; i < r->ntargets; i++)
		rrset_clear(&r->targets[i].rr);
	free(r->targets);
	free(r->host);
	free(r);
}

/* The A/AAAA of the host itself is the one thing to try. */
static void
req_host_only(struct resolve_req *r)
{
	r->ranks[0].proto = r->plan.proto;
	r->ranks[0].port = r->plan.port;
	r->ranks[0].target = 0;
	r->nranks = 1;
}

static unsigned
req_target(struct resolve_req *r, const char *name)
{
	unsigned	i;

	for (i = 0; i < r->ntargets; i++)
		if (strcasecmp(r->targets[i].name, name) == 0)
			return (i);
	snprintf(r->targets[r->ntargets].name,
	    sizeof(r->targets[r->ntargets].name), "%s", name);
	return (r->ntargets++);
}

static void
req_ask_targets(struct resolve_req *r)
{
	unsigned	i;

	for (i = 0; i < r->ntargets; i++)
		req_ask(r, &r->targets[i].rr, r->targets[i].name,
		    RESOLVER_T_ADDR);
	r->stage = S_ADDR;
}

static void
req_ask_sets(struct resolve_req *r)
{
	unsigned	i;

	for (i = 0; i < r->nsets; i++)
		req_ask(r, &r->sets[i].rr, r->sets[i].sn.name,
		    RESOLVER_T_SRV);
	r->stage = S_SRV;
}

static void
req_begin(struct resolve_req *r)
{
	switch (r->plan.step) {
	case RESOLVER_SRV:
		if (resolver_srv_name(r->host, r->plan.proto,
		    r->sets[0].sn.name, sizeof(r->sets[0].sn.name)) == 0) {
			r->sets[0].sn.proto = r->plan.proto;
			r->nsets = 1;
		}
		req_ask_sets(r);
		break;
	case RESOLVER_NAPTR:
		req_ask(r, &r->naptr, r->host, RESOLVER_T_NAPTR);
		r->stage = S_NAPTR;
		break;
	default:
		r->targets = xcalloc(1, sizeof(*r->targets));
		req_target(r, r->host);
		req_host_only(r);
		req_ask_targets(r);
		break;
	}
}

/* NAPTR answered (or not): the SRV names it leads to, else our own. */
static void
req_naptr_done(struct resolve_req *r)
{
	struct resolver_srvname	sn[RESOLVER_MAX_SETS];
	unsigned		i;

	r->nsets = resolver_naptr_select(r->naptr.recs, r->naptr.n,
	    r->q.protos, r->q.sips, sn, RESOLVER_MAX_SETS);
	log_debug("dns %s: NAPTR records=%u usable=%u", r->host, r->naptr.n,
	    r->nsets);
	if (r->nsets == 0)
		r->nsets = resolver_srv_fallback(r->host, r->q.protos,
		    r->q.sips, sn, RESOLVER_MAX_SETS);
	for (i = 0; i < r->nsets; i++)
		r->sets[i].sn = sn[i];
	req_ask_sets(r);
}

/*
 * SRV answered: the records of each name in its turn, each name's ordered
 * by RFC 2782; with no record at all, the host itself.  A name whose only
 * records say "." offers nothing there; if nothing is left, the lookup
 * fails without asking for the host's own addresses.
 */
static void
req_srv_done(struct resolve_req *r)
{
	struct resolver_srv	 srv[RESOLVER_MAX_SRV];
	unsigned		 i, j, k, any = 0;

	for (i = 0; i < r->nsets; i++)
		any += r->sets[i].rr.n;
	r->targets = xcalloc(MAX_RANKS, sizeof(*r->targets));
	if (any == 0) {
		req_target(r, r->host);
		req_host_only(r);
		req_ask_targets(r);
		return;
	}
	for (i = 0; i < r->nsets; i++) {
		const struct resolver_srv	*in = r->sets[i].rr.recs;

		for (j = 0, k = 0; j < r->sets[i].rr.n; j++)
			if (in[j].target[0] != '\0' && in[j].port != 0)
				srv[k++] = in[j];
		resolver_srv_order(srv, k, random);
		for (j = 0; j < k && r->nranks < MAX_RANKS; j++) {
			struct rank	*rk = &r->ranks[r->nranks++];

			log_debug("dns %s: %s SRV %u %u %u %s", r->host,
			    tp_proto_param(r->sets[i].sn.proto), srv[j].prio,
			    srv[j].weight, srv[j].port, srv[j].target);
			rk->proto = r->sets[i].sn.proto;
			rk->port = srv[j].port;
			rk->target = req_target(r, srv[j].target);
		}
	}
	if (r->nranks == 0)
		r->err = "no SIP service (SRV target \".\" or port 0)";
	req_ask_targets(r);
}

static void
addr_set_port(struct tp_addr *a, uint16_t port)
{
	if (a->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

/* The addresses in rank order, each once, and the callback. */
static void
req_finish(struct resolve_req *r)
{
	struct tp_addr	 all[RESOLVE_MAX_ADDRS];
	unsigned	 n = 0, i, j, k;

	req_unlink(r);
	for (i = 0; i < r->nranks && !r->cancelled; i++) {
		const struct rank	*rk = &r->ranks[i];
		const struct rrset	*rr = &r->targets[rk->target].rr;
		const struct tp_addr	*in = rr->recs;

		for (j = 0; j < rr->n && n < RESOLVE_MAX_ADDRS; j++) {
			all[n] = in[j];
			addr_set_port(&all[n], rk->port);
			all[n].proto = rk->proto;
			for (k = 0; k < n; k++)
				if (all[k].proto == all[n].proto &&
				    all[k].len == all[n].len &&
				    memcmp(&all[k].ss, &all[n].ss,
				    all[n].len) == 0)
					break;
			if (k == n)
				n++;
		}
	}
	log_debug("dns %s: %u address(es)", r->host, n);
	if (!r->cancelled)
		r->cb(r->arg, all, n, n > 0 ? NULL : r->err != NULL ? r->err :
		    "no address");
	req_free(r);
}

/*
 * Take r as far as its answers go: each step asks its questions at once
 * and waits for all of them.  The hold keeps answers that come before the
 * asking is over (cache, /etc/hosts, errors) from running the next step
 * under us.  Returns true when r is done and gone.
 */
static bool
req_run(struct resolve_req *r)
{
	while (r->pending == 0) {
		if (r->cancelled || r->stage == S_ADDR) {
			req_finish(r);
			return (true);
		}
		r->pending++;
		switch (r->stage) {
		case S_BEGIN:
			req_begin(r);
			break;
		case S_NAPTR:
			req_naptr_done(r);
			break;
		default:
			req_srv_done(r);
			break;
		}
		r->pending--;
		ares_rearm();
	}
	return (false);
}

struct resolve_req *
resolver_query(const struct resolve_query *q, resolve_cb *cb, void *arg)
{
	struct resolve_req	*r;
	struct resolver_plan	 plan;
	const char		*err;

	R.lookups++;
	if (resolver_plan(q, &plan, &err) == -1) {
		log_debug("dns %s: %s", q->host != NULL ? q->host : "-", err);
		cb(arg, NULL, 0, err);
		return (NULL);
	}
	if (plan.step == RESOLVER_NUMERIC) {
		cb(arg, &plan.addr, 1, NULL);
		return (NULL);
	}
	if (R.ch == NULL) {
		cb(arg, NULL, 0, "no resolver");
		return (NULL);
	}
	r = xcalloc(1, sizeof(*r));
	r->host = xstrdup(q->host);
	r->q = *q;
	r->q.host = r->host;
	r->plan = plan;
	r->cb = cb;
	r->arg = arg;
	r->next = R.reqs;
	R.reqs = r;
	return (req_run(r) ? NULL : r);
}

struct resolve_req *
resolver_lookup(const char *host, uint16_t port, resolve_cb *cb, void *arg)
{
	struct resolve_query	q = {
		.host = host,
		.port = port,
		.proto = -1,
		.sips = false,
		.protos = RESOLVE_PROTO(TP_UDP),
	};

	return (resolver_query(&q, cb, arg));
}

void
resolver_cancel(struct resolve_req *r)
{
	if (r != NULL)
		r->cancelled = true;	/* finishes quietly */
}

/* "127.0.0.1", "127.0.0.1:5353", "[::1]:5353" */
int
resolver_parse_ns(const char *s, struct tp_addr *ns)
{
	const char	*colon = strrchr(s, ':');
	unsigned long	 port = DNS_PORT;
	char		 host[128], *end;
	size_t		 hl = strlen(s);

	if (colon != NULL && (s[0] == '[' ? colon > strchr(s, ']') :
	    strchr(s, ':') == colon)) {
		if (colon[1] < '0' || colon[1] > '9')
			return (-1);
		port = strtoul(colon + 1, &end, 10);
		if (*end != '\0')
			return (-1);
		hl = colon - s;
	}
	if (hl >= sizeof(host) || port == 0 || port > 65535)
		return (-1);
	memcpy(host, s, hl);
	host[hl] = '\0';
	return (tp_addr_set(ns, (struct slice){ host, hl }, (uint16_t)port));
}

/* The configured nameservers, with their ports, in place of resolv.conf. */
static int
set_servers(const struct resolver_settings *set)
{
	struct ares_addr_port_node	 nodes[RESOLVE_MAX_NS];
	unsigned			 i;

	memset(nodes, 0, sizeof(nodes));
	for (i = 0; i < set->nns; i++) {
		const struct tp_addr	*a = &set->ns[i];

		nodes[i].next = i + 1 < set->nns ? &nodes[i + 1] : NULL;
		nodes[i].family = a->ss.ss_family;
		if (a->ss.ss_family == AF_INET)
			memcpy(&nodes[i].addr.addr4,
			    &((const struct sockaddr_in *)&a->ss)->sin_addr,
			    sizeof(nodes[i].addr.addr4));
		else
			memcpy(&nodes[i].addr.addr6,
			    &((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
			    sizeof(nodes[i].addr.addr6));
		nodes[i].udp_port = nodes[i].tcp_port = tp_addr_port(a);
	}
	return (ares_set_servers_ports(R.ch, nodes) == ARES_SUCCESS ? 0 : -1);
}

void
resolver_init(struct event_base *base, const struct resolver_settings *set)
{
	struct ares_options	 o;
	int			 mask, rc;
	char			 lookups[] = "fb";	/* /etc/hosts, DNS */

	memset(&R, 0, sizeof(R));
	R.base = base;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		log_warnx("dns: no resolver: %s", ares_strerror(rc));
		return;
	}
	R.lib = true;
	memset(&o, 0, sizeof(o));
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_LOOKUPS;
	o.sock_state_cb = ares_sock_state;
	o.timeout = (int)set->timeout_ms;
	o.tries = DNS_TRIES;
	o.lookups = lookups;
	if (set->nns > 0) {
		mask |= ARES_OPT_DOMAINS;	/* no search list either */
		o.domains = NULL;
		o.ndomains = 0;
	}
	if ((rc = ares_init_options(&R.ch, &o, mask)) != ARES_SUCCESS) {
		log_warnx("dns: no resolver: ares_init_options: %s",
		    ares_strerror(rc));
		R.ch = NULL;
		return;
	}
	if (set->nns > 0 && set_servers(set) == -1) {
		log_warnx("dns: no resolver: ares_set_servers_ports failed");
		ares_destroy(R.ch);
		R.ch = NULL;
		return;
	}
	if ((R.tm = evtimer_new(base, ares_on_timer, NULL)) == NULL)
		fatalx("dns: evtimer_new failed");
	log_info("dns: c-ares %s, %s, timeout=%ums tries=%d",
	    ares_version(NULL), set->nns > 0 ? "configured nameservers" :
	    "nameservers of /etc/resolv.conf", set->timeout_ms, DNS_TRIES);
}

void
resolver_shutdown(void)
{
	struct resolve_req	*r, *rn;
	struct sockev		*s, *sn;

	for (r = R.reqs; r != NULL; r = r->next)
		r->cancelled = true;
	if (R.ch != NULL)
		ares_destroy(R.ch);	/* every answer out fails now */
	R.ch = NULL;
	for (r = R.reqs; r != NULL; r = rn) {
		rn = r->next;
		req_free(r);
	}
	R.reqs = NULL;
	pthread_mutex_lock(&RC.mu);
	while (RC.cache != NULL)
		cache_unlink(&RC.cache);
	pthread_mutex_unlock(&RC.mu);
	for (s = R.socks; s != NULL; s = sn) {
		sn = s->next;
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	R.socks = NULL;
	if (R.tm != NULL)
		event_free(R.tm);
	R.tm = NULL;
	if (R.lib)
		ares_library_cleanup();
	R.lib = false;
}
