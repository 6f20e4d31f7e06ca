/*
 * RFC 3263 name resolution for next hops, asynchronous on the event loop:
 * a host with an explicit port is looked up with A/AAAA (libevent evdns);
 * a host without one gets an SRV query for _sip._udp (our own small DNS
 * client: evdns has no SRV), its targets ordered by priority and weight,
 * then A/AAAA for each.  Results are cached for their TTL.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "log.h"
#include "resolver.h"
#include "resolver_int.h"
#include "xmalloc.h"

#define DNS_PORT	53
#define MAX_SRV		RESOLVER_MAX_SRV
#define CACHE_MAX	RESOLVER_CACHE_MAX
#define A_TTL_S		60

struct cache_entry {
	char			*key;		/* owned: "host|port" */
	struct tp_addr		 addrs[RESOLVE_MAX_ADDRS];
	unsigned		 n;
	uint64_t		 expires_ms;	/* timer_now_ms() */
	struct cache_entry	*next;
};

/* One lookup in flight; owned by the resolver until done or cancelled. */
struct resolve_req {
	char			*host;		/* owned */
	uint16_t		 port;		/* 0: SRV first */
	resolve_cb		*cb;
	void			*arg;
	bool			 cancelled;
	uint16_t		 id;		/* SRV query id */
	struct timer		 timer;		/* SRV timeout */
	unsigned		 tries;
	struct resolver_srv	 srv[MAX_SRV];
	unsigned		 nsrv;
	unsigned		 pending;	/* A/AAAA lookups out */
	struct {
		struct tp_addr	 addrs[RESOLVE_MAX_ADDRS];
		unsigned	 n;
	}			 per[MAX_SRV];	/* by SRV rank */
	uint32_t		 ttl;
	const char		*err;		/* static: why none, or NULL */
	struct resolve_req	*next;
};

struct a_lookup {
	struct resolve_req	*req;
	unsigned		 rank;
	uint16_t		 port;
};

static struct {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct resolver_settings set;
	struct tp_addr		 ns;		/* for SRV queries */
	int			 fd;
	struct event		*ev;
	struct resolve_req	*reqs;
	struct cache_entry	*cache;
	unsigned		 ncache;
	uint64_t		 lookups;
} R;

static void	srv_send(struct resolve_req *);
static void	req_finish(struct resolve_req *);

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
	timer_stop(&r->timer);
	free(r->host);
	free(r);
}

static void
make_key(char *buf, size_t len, const char *host, uint16_t port)
{
	snprintf(buf, len, "%s|%u", host, port);
}

/* Expired entries go as the list is walked. */
static struct cache_entry *
cache_get(const char *key)
{
	struct cache_entry	*c, **pp;
	uint64_t		 now = timer_now_ms();

	for (pp = &R.cache; (c = *pp) != NULL; ) {
		if (c->expires_ms <= now) {
			*pp = c->next;
			free(c->key);
			free(c);
			R.ncache--;
			continue;
		}
		if (strcmp(c->key, key) == 0)
			return (c);
		pp = &c->next;
	}
	return (NULL);
}

static void
cache_put(const char *key, const struct tp_addr *addrs, unsigned n,
    uint32_t ttl)
{
	struct cache_entry	*c;

	if (n == 0 || ttl == 0 || R.ncache >= CACHE_MAX)
		return;
	c = xcalloc(1, sizeof(*c));
	c->key = xstrdup(key);
	memcpy(c->addrs, addrs, n * sizeof(*addrs));
	c->n = n;
	c->expires_ms = timer_now_ms() + (uint64_t)ttl * 1000;
	c->next = R.cache;
	R.cache = c;
	R.ncache++;
}

const struct tp_addr *
resolver_cache_get(const char *host, uint16_t port, unsigned *n)
{
	struct cache_entry	*c;
	char			 key[300];

	make_key(key, sizeof(key), host, port);
	if ((c = cache_get(key)) == NULL) {
		*n = 0;
		return (NULL);
	}
	*n = c->n;
	return (c->addrs);
}

void
resolver_cache_put(const char *host, uint16_t port,
    const struct tp_addr *addrs, unsigned n, uint32_t ttl)
{
	char	key[300];

	make_key(key, sizeof(key), host, port);
	cache_put(key, addrs, n, ttl);
}

unsigned
resolver_cache_size(void)
{
	return (R.ncache);
}

/* Collect the addresses in SRV order and hand them over. */
static void
req_finish(struct resolve_req *r)
{
	struct tp_addr	 all[RESOLVE_MAX_ADDRS];
	unsigned	 n = 0, i, j;
	char		 key[300];

	req_unlink(r);
	for (i = 0; i < MAX_SRV; i++)
		for (j = 0; j < r->per[i].n && n < RESOLVE_MAX_ADDRS; j++)
			all[n++] = r->per[i].addrs[j];
	make_key(key, sizeof(key), r->host, r->port);
	cache_put(key, all, n, r->ttl);
	log_debug("dns %s: %u address(es)", r->host, n);
	if (!r->cancelled)
		r->cb(r->arg, all, n, n > 0 ? NULL : r->err != NULL ? r->err :
		    "no address");
	req_free(r);
}

/*
 * One reason fewer to keep r: each A/AAAA lookup out is one, and so is the
 * code starting lookups, since evdns may answer one before it returns
 * (/etc/hosts, a numeric target) and r must outlive the loop.
 */
static void
req_release(struct resolve_req *r)
{
	if (--r->pending == 0)
		req_finish(r);
}

static void
a_done(int err, struct evutil_addrinfo *res, void *arg)
{
	struct a_lookup		*a = arg;
	struct resolve_req	*r = a->req;
	struct evutil_addrinfo	*ai;

	if (err == 0) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			struct tp_addr	*t;

			if (r->per[a->rank].n == RESOLVE_MAX_ADDRS)
				break;
			if (ai->ai_family != AF_INET &&
			    ai->ai_family != AF_INET6)
				continue;
			t = &r->per[a->rank].addrs[r->per[a->rank].n++];
			memset(t, 0, sizeof(*t));
			memcpy(&t->ss, ai->ai_addr, ai->ai_addrlen);
			t->len = ai->ai_addrlen;
		}
		evutil_freeaddrinfo(res);
	} else
		log_debug("dns %s: %s", r->host, evutil_gai_strerror(err));
	free(a);
	req_release(r);
}

static void
a_lookup(struct resolve_req *r, const char *host, uint16_t port,
    unsigned rank)
{
	struct evutil_addrinfo	 hints;
	struct a_lookup		*a = xcalloc(1, sizeof(*a));
	char			 portstr[8];

	a->req = r;
	a->rank = rank;
	a->port = port;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(portstr, sizeof(portstr), "%u", port);
	r->pending++;
	evdns_getaddrinfo(R.dns, host, portstr, &hints, a_done, a);
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

static void
srv_resolved(struct resolve_req *r)
{
	unsigned	i;

	timer_stop(&r->timer);
	r->pending++;			/* held over the loop */
	if (r->nsrv == 0) {		/* no SRV: A/AAAA, port 5060 */
		r->ttl = A_TTL_S;
		a_lookup(r, r->host, 5060, 0);
	} else {
		resolver_srv_order(r->srv, r->nsrv, random);
		for (i = 0; i < r->nsrv; i++) {
			log_debug("dns %s: SRV %u %u %u %s", r->host,
			    r->srv[i].prio, r->srv[i].weight, r->srv[i].port,
			    r->srv[i].target);
			a_lookup(r, r->srv[i].target, r->srv[i].port, i);
		}
	}
	req_release(r);
}

/* Read a possibly compressed name at off; returns the offset past it. */
int
resolver_dns_name(const unsigned char *p, size_t len, size_t off, char *out,
    size_t outlen)
{
	size_t	o = off, w = 0, end = 0;
	int	jumps = 0;

	for (;;) {
		unsigned	l;

		if (o >= len)
			return (-1);
		l = p[o];
		if ((l & 0xc0) == 0xc0) {
			if (o + 1 >= len || ++jumps > 16)
				return (-1);
			if (end == 0)
				end = o + 2;
			o = ((l & 0x3f) << 8) | p[o + 1];
			continue;
		}
		if (l == 0) {
			if (end == 0)
				end = o + 1;
			break;
		}
		if (l > 63 || o + 1 + l > len || w + l + 2 > outlen)
			return (-1);
		if (w > 0)
			out[w++] = '.';
		memcpy(out + w, p + o + 1, l);
		w += l;
		o += 1 + l;
	}
	out[w] = '\0';
	return ((int)end);
}

static uint16_t
get16(const unsigned char *p)
{
	return ((uint16_t)(p[0] << 8 | p[1]));
}

/*
 * An answer that does not hold together (a name, a count, a length) is
 * refused whole, -1: none of it is used.  With TC set the answers may stop
 * early, at the end of a record.
 */
int
resolver_srv_parse(const unsigned char *p, size_t len,
    struct resolver_srv *srv, unsigned max, uint32_t *minttl)
{
	unsigned	qd, an, i, n = 0;
	char		name[256];
	int		off = 12;

	if (len < 12)
		return (-1);
	qd = get16(p + 4);
	an = get16(p + 6);
	for (i = 0; i < qd; i++) {
		if ((off = resolver_dns_name(p, len, off, name,
		    sizeof(name))) < 0 || (size_t)off + 4 > len)
			return (-1);
		off += 4;
	}
	if ((p[3] & 0x0f) != 0)		/* RCODE: no such name, a failure */
		return (0);
	for (i = 0; i < an; i++) {
		uint16_t	type, rdlen;
		uint32_t	ttl;

		if ((size_t)off == len && (p[2] & 0x02))
			break;		/* TC: the rest did not fit */
		if ((off = resolver_dns_name(p, len, off, name,
		    sizeof(name))) < 0 || (size_t)off + 10 > len)
			return (-1);
		type = get16(p + off);
		ttl = (uint32_t)get16(p + off + 4) << 16 | get16(p + off + 6);
		rdlen = get16(p + off + 8);
		off += 10;
		if ((size_t)off + rdlen > len)
			return (-1);
		if (type == 33) {
			struct resolver_srv	 s;

			/* The target ends where the rdata does. */
			if (rdlen < 7 || resolver_dns_name(p, len, off + 6,
			    s.target, sizeof(s.target)) != off + rdlen)
				return (-1);
			s.prio = get16(p + off);
			s.weight = get16(p + off + 2);
			s.port = get16(p + off + 4);
			if (n < max) {
				srv[n++] = s;
				if (ttl < *minttl)
					*minttl = ttl;
			}
		}
		off += rdlen;
	}
	return ((int)n);
}

/*
 * Our SRV answer: its usable records, ordered and looked up.  A malformed
 * answer is dropped and we wait on for a good one (or the timeout).  If
 * every record says "." there is no SIP service there (RFC 2782): no
 * A/AAAA for the host then.
 */
static void
srv_answer(struct resolve_req *r, const unsigned char *p, size_t len)
{
	struct resolver_srv	 srv[MAX_SRV];
	uint32_t		 ttl = RESOLVER_SRV_TTL_MAX;
	int			 n, i;
	bool			 dot = false;

	if ((n = resolver_srv_parse(p, len, srv, MAX_SRV, &ttl)) == -1) {
		log_info("dns %s: malformed SRV answer dropped len=%zu",
		    r->host, len);
		return;
	}
	for (i = 0; i < n; i++)
		if (srv[i].target[0] == '\0')
			dot = true;
		else if (srv[i].port != 0)
			r->srv[r->nsrv++] = srv[i];
	r->ttl = ttl;
	if (r->nsrv == 0 && dot) {
		log_debug("dns %s: SRV target \".\"", r->host);
		timer_stop(&r->timer);
		r->err = "no SIP service (SRV target \".\")";
		req_finish(r);
		return;
	}
	srv_resolved(r);
}

static void
srv_read(evutil_socket_t fd, short what, void *arg)
{
	unsigned char		 p[4096];
	ssize_t			 n;
	struct resolve_req	*r;

	(void)what;
	(void)arg;
	while ((n = recv(fd, p, sizeof(p), MSG_DONTWAIT)) > 0) {
		if (n < 12 || !(p[2] & 0x80))
			continue;
		for (r = R.reqs; r != NULL; r = r->next)
			if (r->id == get16(p) && r->nsrv == 0 &&
			    r->pending == 0 && timer_pending(&r->timer))
				break;
		if (r != NULL)
			srv_answer(r, p, (size_t)n);
	}
}

static void
srv_timeout(void *arg)
{
	struct resolve_req	*r = arg;

	if (++r->tries < 2) {
		srv_send(r);
		return;
	}
	log_info("dns %s: SRV query timed out", r->host);
	srv_resolved(r);		/* fall back to A/AAAA */
}

static void
srv_send(struct resolve_req *r)
{
	unsigned char	q[300];
	size_t		off = 12;
	char		name[280], *lab, *save = NULL;

	snprintf(name, sizeof(name), "_sip._udp.%s", r->host);
	memset(q, 0, 12);
	q[0] = r->id >> 8;
	q[1] = r->id & 0xff;
	q[2] = 0x01;			/* RD */
	q[5] = 1;			/* QDCOUNT */
	for (lab = strtok_r(name, ".", &save); lab != NULL;
	    lab = strtok_r(NULL, ".", &save)) {
		size_t	l = strlen(lab);

		if (l > 63 || off + l + 6 > sizeof(q))
			goto fail;
		q[off++] = (unsigned char)l;
		memcpy(q + off, lab, l);
		off += l;
	}
	q[off++] = 0;
	q[off++] = 0;
	q[off++] = 33;			/* SRV */
	q[off++] = 0;
	q[off++] = 1;			/* IN */
	if (sendto(R.fd, q, off, 0, (struct sockaddr *)&R.ns.ss, R.ns.len) ==
	    -1)
		log_debug("dns %s: sendto: %s", r->host, strerror(errno));
	timer_set(&r->timer, R.set.timeout_ms);
	return;
fail:
	srv_resolved(r);
}

/*
 * Look host up.  The callback may run before this returns (numeric hosts,
 * cached answers); then NULL is returned.
 */
struct resolve_req *
resolver_lookup(const char *host, uint16_t port, resolve_cb *cb, void *arg)
{
	struct resolve_req	*r;
	struct cache_entry	*c;
	struct tp_addr		 a;
	char			 key[300];

	R.lookups++;
	if (tp_addr_set(&a, (struct slice){ host, strlen(host) },
	    port ? port : 5060) == 0) {
		cb(arg, &a, 1, NULL);
		return (NULL);
	}
	make_key(key, sizeof(key), host, port);
	if ((c = cache_get(key)) != NULL) {
		cb(arg, c->addrs, c->n, NULL);
		return (NULL);
	}
	if (R.dns == NULL) {
		cb(arg, NULL, 0, "no resolver");
		return (NULL);
	}
	r = xcalloc(1, sizeof(*r));
	r->host = xstrdup(host);
	r->port = port;
	r->cb = cb;
	r->arg = arg;
	r->next = R.reqs;
	R.reqs = r;
	timer_init(&r->timer, R.base, srv_timeout, r);
	r->pending++;		/* held: the answer may come before we return */
	if (port != 0 || R.fd == -1) {
		r->ttl = A_TTL_S;
		a_lookup(r, host, port ? port : 5060, 0);
	} else {
		getrandom(&r->id, sizeof(r->id), 0);
		srv_send(r);
	}
	if (--r->pending == 0 && !timer_pending(&r->timer)) {
		req_finish(r);		/* answered already */
		return (NULL);
	}
	return (r);
}

void
resolver_cancel(struct resolve_req *r)
{
	if (r != NULL)
		r->cancelled = true;	/* finishes quietly */
}

/* The first "nameserver" line of resolv.conf, for our SRV queries. */
static int
resolv_conf_ns(struct tp_addr *ns)
{
	FILE	*fp;
	char	 line[256], addr[128];
	int	 rc = -1;

	if ((fp = fopen("/etc/resolv.conf", "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, " nameserver %127s", addr) == 1 &&
		    tp_addr_set(ns, (struct slice){ addr, strlen(addr) },
		    DNS_PORT) == 0) {
			rc = 0;
			break;
		}
	fclose(fp);
	return (rc);
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

void
resolver_init(struct event_base *base, const struct resolver_settings *set)
{
	char		 ip[INET6_ADDRSTRLEN + 8];
	unsigned	 i;

	memset(&R, 0, sizeof(R));
	R.base = base;
	R.set = *set;
	R.fd = -1;
	if ((R.dns = evdns_base_new(base, set->nns > 0 ? 0 :
	    EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL) {
		log_warnx("dns: no resolver: evdns_base_new failed");
		return;
	}
	evdns_base_load_hosts(R.dns, NULL);
	for (i = 0; i < set->nns; i++) {
		evdns_base_nameserver_sockaddr_add(R.dns,
		    (struct sockaddr *)&set->ns[i].ss, set->ns[i].len, 0);
	}
	evdns_base_set_option(R.dns, "timeout:", set->timeout_ms >= 1000 ?
	    "1" : "0.5");
	evdns_base_set_option(R.dns, "attempts:", "2");
	if (set->nns > 0)
		R.ns = set->ns[0];
	else if (resolv_conf_ns(&R.ns) == -1) {
		log_info("dns: no nameserver for SRV queries");
		return;
	}
	if ((R.fd = socket(R.ns.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("dns: socket");
		return;
	}
	R.ev = event_new(base, R.fd, EV_READ | EV_PERSIST, srv_read, NULL);
	event_add(R.ev, NULL);
	tp_addr_ip(&R.ns, ip, sizeof(ip));
	log_info("dns: SRV queries to %s port %u", ip, tp_addr_port(&R.ns));
}

void
resolver_shutdown(void)
{
	struct resolve_req	*r, *rn;
	struct cache_entry	*c, *cn;

	for (r = R.reqs; r != NULL; r = r->next)
		r->cancelled = true;
	if (R.dns != NULL)
		evdns_base_free(R.dns, 1);	/* callbacks fail now */
	R.dns = NULL;
	for (r = R.reqs; r != NULL; r = rn) {
		rn = r->next;
		req_free(r);
	}
	R.reqs = NULL;
	for (c = R.cache; c != NULL; c = cn) {
		cn = c->next;
		free(c->key);
		free(c);
	}
	R.cache = NULL;
	if (R.ev != NULL)
		event_free(R.ev);
	if (R.fd != -1)
		close(R.fd);
	R.fd = -1;
}
