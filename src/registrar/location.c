/*
 * The location service.  AORs in a hash table, each with its list of
 * bindings; every binding sits in one min-heap by expiry, and one timer is
 * armed for the earliest.  The store (when configured) mirrors every
 * change, so a restart loads the same table.
 */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "location.h"
#include "log.h"
#include "store.h"
#include "timer.h"
#include "xmalloc.h"

/* Bindings per source address (registration exhaustion, one source). */
struct by_source {
	struct hnode	 node;
	uint8_t		 key[17];	/* family, address */
	unsigned	 n;
};

static struct {
	struct hashtab	  aors;
	struct hashtab	  sources;	/* struct by_source */
	struct binding	**heap;		/* owned array; bindings are not */
	uint32_t	  nheap;
	uint32_t	  cap;
	struct timer	  expiry;
	uint64_t	  next_id;
	bool		  init;
	bool		  loading;	/* from the store: no write back */
} L;

static void	location_expire(void *);

/* Bindings registered from this address (any port). */
unsigned
location_from_source(const struct tp_addr *a)
{
	uint8_t			 key[17];
	size_t			 klen = tp_addr_key(a, key);
	struct by_source	*s;

	s = (struct by_source *)hashtab_find(&L.sources, (const char *)key,
	    klen);
	return (s == NULL ? 0 : s->n);
}

static void
source_count(const struct tp_addr *a, int delta)
{
	uint8_t			 key[17];
	size_t			 klen = tp_addr_key(a, key);
	struct by_source	*s;

	s = (struct by_source *)hashtab_find(&L.sources, (const char *)key,
	    klen);
	if (s == NULL) {
		if (delta < 0)
			return;
		s = xcalloc(1, sizeof(*s));
		memcpy(s->key, key, klen);
		hashtab_insert(&L.sources, &s->node, (const char *)s->key, klen);
	}
	if (delta < 0 && --s->n == 0) {
		hashtab_remove(&L.sources, &s->node);
		free(s);
	} else if (delta > 0)
		s->n++;
}

void
location_init(struct event_base *base)
{
	hashtab_init(&L.aors, 1024);
	hashtab_init(&L.sources, 256);
	timer_init(&L.expiry, base, location_expire, NULL);
	L.init = true;
}

/* Min-heap on expires_ms; heap_idx kept in each binding. */
static void
heap_swap(uint32_t a, uint32_t b)
{
	struct binding	*t = L.heap[a];

	L.heap[a] = L.heap[b];
	L.heap[b] = t;
	L.heap[a]->heap_idx = a;
	L.heap[b]->heap_idx = b;
}

static void
heap_up(uint32_t i)
{
	while (i > 0 && L.heap[(i - 1) / 2]->expires_ms >
	    L.heap[i]->expires_ms) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(uint32_t i)
{
	for (;;) {
		uint32_t	l = 2 * i + 1, r = l + 1, m = i;

		if (l < L.nheap && L.heap[l]->expires_ms <
		    L.heap[m]->expires_ms)
			m = l;
		if (r < L.nheap && L.heap[r]->expires_ms <
		    L.heap[m]->expires_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

static void
heap_push(struct binding *b)
{
	if (L.nheap == L.cap) {
		L.cap = L.cap ? 2 * L.cap : 1024;
		L.heap = xrealloc(L.heap, L.cap * sizeof(*L.heap));
	}
	b->heap_idx = L.nheap;
	L.heap[L.nheap++] = b;
	heap_up(b->heap_idx);
}

static void
heap_del(struct binding *b)
{
	uint32_t	i = b->heap_idx;

	if (i != --L.nheap) {
		heap_swap(i, L.nheap);
		heap_down(i);
		heap_up(i);
	}
}

/* Arm the timer for the earliest expiry. */
static void
expiry_rearm(void)
{
	uint64_t	now = timer_now_ms(), due;

	if (L.nheap == 0) {
		timer_stop(&L.expiry);
		return;
	}
	due = L.heap[0]->expires_ms;
	timer_set(&L.expiry, due > now ? (uint32_t)(due - now) : 0);
}

void
location_addr_format(const struct tp_addr *a, char *out, size_t len)
{
	char	ip[INET_ADDRSTRLEN];
	size_t	n;

	/* UDP over IPv4 (most bindings): tp_addr_str()'s "ip:port". */
	if (a->proto == TP_UDP && a->ss.ss_family == AF_INET &&
	    len >= INET_ADDRSTRLEN + 6) {
		tp_addr_ip(a, ip, sizeof(ip));
		n = strlen(ip);
		memcpy(out, ip, n);
		out[n++] = ':';
		n += fmt_uint(out + n, tp_addr_port(a));
		out[n] = '\0';
		return;
	}
	tp_addr_str(a, out, len);
}

/* As written by location_addr_format(): "ip:port", "tcp:ip:port". */
static int
addr_parse(const char *s, struct tp_addr *a)
{
	if (tp_addr_parse(s, a) == -1)
		return (-1);
	if (a->proto != TP_UDP)
		a->flags = TP_ADDR_FLOW;
	return (0);
}

static void
persist(const struct binding *b)
{
	struct store_row	r;
	char			recv[TP_NAME_LEN];
	uint64_t		now = timer_now_ms();

	if (!store_is_open() || L.loading)
		return;
	location_addr_format(&b->received, recv, sizeof(recv));
	memset(&r, 0, sizeof(r));
	r.aor = b->aor->key;
	r.contact = b->contact;
	r.instance = b->instance;
	r.path = b->path;
	r.callid = b->callid;
	r.user_agent = b->user_agent;
	r.received = recv;
	r.local = b->local;
	r.expires = (int64_t)time(NULL) + (int64_t)((b->expires_ms - now +
	    999) / 1000);
	r.reg_id = b->reg_id;
	r.cseq = b->cseq;
	r.q = b->q;
	store_put(&r);
}

static struct aor *
aor_get(struct slice key)
{
	struct aor	*a;

	a = (struct aor *)hashtab_find(&L.aors, key.p, key.len);
	if (a != NULL)
		return (a);
	a = xcalloc(1, sizeof(*a) + key.len + 1);
	memcpy(a->key, key.p, key.len);
	hashtab_insert(&L.aors, &a->node, a->key, key.len);
	return (a);
}

struct aor *
location_find(struct slice key)
{
	return ((struct aor *)hashtab_find(&L.aors, key.p, key.len));
}

/* RFC 5626: instance and reg-id name a binding; else the Contact URI. */
struct binding *
location_match(const struct aor *a, const struct binding_info *bi)
{
	struct binding	*b;

	if (a == NULL)
		return (NULL);
	for (b = a->b; b != NULL; b = b->next) {
		if (bi->instance.len > 0) {
			if (b->instance != NULL &&
			    slice_eq(bi->instance, b->instance) &&
			    b->reg_id == bi->reg_id)
				return (b);
		} else if (b->instance == NULL && slice_eq(bi->contact,
		    b->contact))
			return (b);
	}
	return (NULL);
}

static char *
tail_add(char **p, struct slice s)
{
	char	*r = *p;

	memcpy(r, s.p, s.len);
	r[s.len] = '\0';
	*p += s.len + 1;
	return (r);
}

static void
unlink_binding(struct binding *b)
{
	struct binding	**pp;

	for (pp = &b->aor->b; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	b->aor->n--;
	heap_del(b);
	source_count(&b->received, -1);
}

static void
aor_release(struct aor *a)
{
	if (a->n > 0)
		return;
	hashtab_remove(&L.aors, &a->node);
	free(a);
}

/* Add a binding to AOR key, or replace old (which is freed). */
struct binding *
location_save(struct slice key, struct binding *old,
    const struct binding_info *bi)
{
	struct aor	*a = old != NULL ? old->aor : aor_get(key);
	struct binding	*b;
	char		*p;
	size_t		 extra;
	const char	*local = bi->local ? bi->local : "";

	extra = bi->contact.len + bi->instance.len + bi->path.len +
	    bi->callid.len + bi->user_agent.len + strlen(local) +
	    bi->node.len + 7;
	b = xcalloc(1, sizeof(*b) + extra);
	p = b->tail;
	b->aor = a;
	b->contact = tail_add(&p, bi->contact);
	b->instance = bi->instance.len ? tail_add(&p, bi->instance) : NULL;
	b->path = bi->path.len ? tail_add(&p, bi->path) : NULL;
	b->callid = tail_add(&p, bi->callid);
	b->user_agent = bi->user_agent.len ? tail_add(&p, bi->user_agent) :
	    NULL;
	b->local = tail_add(&p, (struct slice){ local, strlen(local) });
	b->node = bi->node.len ? tail_add(&p, bi->node) : NULL;
	b->expires_ms = timer_now_ms() + (uint64_t)bi->expires_s * 1000;
	b->received = *bi->received;
	b->id = ++L.next_id;
	b->nat = bi->nat;
	b->reg_id = bi->reg_id;
	b->cseq = bi->cseq;
	b->q = bi->q;
	if (old != NULL) {
		if (strcmp(old->contact, b->contact) != 0 && !L.loading)
			store_del(a->key, old->contact);
		unlink_binding(old);
		free(old);
	}
	b->next = a->b;
	a->b = b;
	a->n++;
	heap_push(b);
	source_count(&b->received, 1);
	expiry_rearm();
	persist(b);
	return (b);
}

void
location_remove(struct binding *b)
{
	struct aor	*a = b->aor;

	store_del(a->key, b->contact);
	unlink_binding(b);
	free(b);
	aor_release(a);
	expiry_rearm();
}

uint32_t
binding_expires_in(const struct binding *b)
{
	uint64_t	now = timer_now_ms();

	return (b->expires_ms > now ? (uint32_t)((b->expires_ms - now + 999) /
	    1000) : 0);
}

static void
location_expire(void *arg)
{
	uint64_t	now = timer_now_ms();

	(void)arg;
	location_write_lock();
	while (L.nheap > 0 && L.heap[0]->expires_ms <= now) {
		struct binding	*b = L.heap[0];

		log_info("location %s: %s expired", b->aor->key, b->contact);
		location_remove(b);
	}
	expiry_rearm();
	location_unlock();
}

static bool
same_str(const char *s, struct slice v)
{
	return (s == NULL ? v.len == 0 : slice_eq(v, s));
}

/* Is b what bi says, but for its expiry? */
static bool
same_binding(const struct binding *b, const struct binding_info *bi)
{
	return (b->cseq == bi->cseq && b->reg_id == bi->reg_id &&
	    b->q == bi->q && b->nat == bi->nat &&
	    tp_addr_eq(&b->received, bi->received) &&
	    slice_eq(bi->contact, b->contact) &&
	    slice_eq(bi->callid, b->callid) &&
	    same_str(b->instance, bi->instance) &&
	    same_str(b->path, bi->path) &&
	    same_str(b->user_agent, bi->user_agent) &&
	    same_str(b->node, bi->node) &&
	    strcmp(b->local, bi->local ? bi->local : "") == 0);
}

/*
 * The bindings of AOR key become the n of bis (registrar.backend redis:
 * what Redis holds for it): each one saved (a binding it names is
 * replaced), every other binding of the AOR removed.  The AOR is stamped
 * with gen, for location_sweep().
 */
void
location_replace(struct slice key, const struct binding_info *bis,
    unsigned n, uint32_t gen)
{
	struct binding	**keep, *b, *bn;
	struct aor	 *a;
	unsigned	  i, j;

	keep = xcalloc(n ? n : 1, sizeof(*keep));
	for (i = 0; i < n; i++) {
		b = location_match(location_find(key), &bis[i]);
		if (b != NULL && same_binding(b, &bis[i])) {
			/* Unchanged: its keepalive state stays. */
			heap_del(b);
			b->expires_ms = timer_now_ms() +
			    (uint64_t)bis[i].expires_s * 1000;
			heap_push(b);
			keep[i] = b;
			continue;
		}
		keep[i] = location_save(key, b, &bis[i]);
	}
	expiry_rearm();
	if ((a = location_find(key)) == NULL)
		goto done;
	a->gen = gen;
	for (b = a->b; b != NULL; b = bn) {
		bn = b->next;
		for (j = 0; j < n && keep[j] != b; j++)
			;
		if (j == n)	/* the last one frees a: then bn is NULL */
			location_remove(b);
	}
done:
	free(keep);
}

/* Every AOR not stamped with gen since: gone from the shared store. */
void
location_sweep(uint32_t gen)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct aor		*a;
	unsigned		 dropped = 0;

	/* Removing an AOR's last binding frees it: one at a time. */
	do {
		a = NULL;
		HASHTAB_FOREACH(n, &L.aors, it)
			if (((struct aor *)n)->gen != gen) {
				a = (struct aor *)n;
				break;
			}
		if (a != NULL) {
			while (a->n > 1)
				location_remove(a->b);
			location_remove(a->b);
			dropped++;
		}
	} while (a != NULL);
	if (dropped > 0)
		log_info("location: %u address(es)-of-record no longer in the "
		    "shared store, dropped", dropped);
}

/*
 * The registrar (REGISTER, expiry, the store) runs on the main loop only:
 * it is the one writer, and takes the write lock around each change.  A
 * worker looking up a user for a call holds the read lock while it copies
 * the contacts out; the main loop reads without one.
 */
static pthread_rwlock_t	location_lock = PTHREAD_RWLOCK_INITIALIZER;

void
location_read_lock(void)
{
	pthread_rwlock_rdlock(&location_lock);
}

void
location_write_lock(void)
{
	pthread_rwlock_wrlock(&location_lock);
}

void
location_unlock(void)
{
	pthread_rwlock_unlock(&location_lock);
}

unsigned
location_count(void)
{
	return (L.nheap);
}

unsigned
location_aors(void)
{
	return ((unsigned)L.aors.n);
}

void
location_foreach(void (*fn)(void *, const struct binding *), void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	const struct binding	*b;

	HASHTAB_FOREACH(n, &L.aors, it)
		for (b = ((const struct aor *)n)->b; b != NULL; b = b->next)
			fn(arg, b);
}

/* The binding of AOR key with this id, if it is still there. */
struct binding *
location_find_id(struct slice key, uint64_t id)
{
	struct aor	*a = location_find(key);
	struct binding	*b;

	for (b = a != NULL ? a->b : NULL; b != NULL; b = b->next)
		if (b->id == id)
			return (b);
	return (NULL);
}

/*
 * Every binding, to change (the main loop's keepalives).  fn may remove
 * the binding it is given (under the write lock), nothing else.
 */
void
location_walk(void (*fn)(void *, struct binding *), void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct binding		*b, *bn;

	/* fn may free the AOR with its last binding: nothing read after. */
	HASHTAB_FOREACH(n, &L.aors, it)
		for (b = ((struct aor *)n)->b; b != NULL; b = bn) {
			bn = b->next;
			fn(arg, b);
		}
}

/*
 * Is a phone that names host:port (its Contact, its Via) and whose
 * message came from received behind a NAT?  Yes when host is an address
 * (not a domain name) that is not the source's, or, over UDP, the port is
 * not the source port (a NAT mapped it; no port is 5060).  Over a stream
 * the source port is the connection's, so only the address counts.
 */
bool
location_nat_host(struct slice host, uint16_t port,
    const struct tp_addr *received)
{
	struct tp_addr	a;
	uint8_t		k1[17], k2[17];
	size_t		l1, l2;

	if (tp_addr_set(&a, host, port ? port : 5060) == -1)
		return (false);
	l1 = tp_addr_key(&a, k1);
	l2 = tp_addr_key(received, k2);
	if (l1 != l2 || memcmp(k1, k2, l1) != 0)
		return (true);
	return (received->proto == TP_UDP &&
	    tp_addr_port(&a) != tp_addr_port(received));
}

/* The same of a Contact URI. */
bool
location_nat(struct slice contact, const struct tp_addr *received)
{
	struct sipuri	u;

	return (sipuri_parse(contact, &u) == 0 &&
	    location_nat_host(u.host, u.port, received));
}

static struct slice
sl(const char *s)
{
	return ((struct slice){ s, s ? strlen(s) : 0 });
}

static void
load_row(void *arg, const struct store_row *r)
{
	struct binding_info	 bi;
	struct tp_addr		 recv;
	int64_t			 left = r->expires - (int64_t)time(NULL);
	unsigned		*n = arg;

	if (left <= 0 || addr_parse(r->received, &recv) == -1)
		return;
	memset(&bi, 0, sizeof(bi));
	bi.contact = sl(r->contact);
	bi.instance = sl(r->instance);
	bi.path = sl(r->path);
	bi.callid = sl(r->callid);
	bi.user_agent = sl(r->user_agent);
	bi.reg_id = r->reg_id;
	bi.cseq = r->cseq;
	bi.expires_s = (uint32_t)left;
	bi.q = (uint16_t)(r->q > 1000 ? 1000 : r->q);
	bi.received = &recv;
	bi.local = r->local;
	bi.nat = location_nat(bi.contact, &recv);
	location_save(sl(r->aor), location_match(location_find(sl(r->aor)),
	    &bi), &bi);
	(*n)++;
}

/* The bindings in the store, back in memory.  Returns how many. */
int
location_load(void)
{
	unsigned	n = 0;
	int		rc;

	L.loading = true;
	rc = store_load(load_row, &n, (int64_t)time(NULL));
	L.loading = false;
	return (rc == -1 ? -1 : (int)n);
}

void
location_shutdown(void)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct binding		*b, *bn;

	if (!L.init)
		return;
	timer_stop(&L.expiry);
	HASHTAB_FOREACH(n, &L.aors, it) {
		for (b = ((struct aor *)n)->b; b != NULL; b = bn) {
			bn = b->next;
			free(b);
		}
		free(n);
	}
	hashtab_cleanup(&L.aors);
	HASHTAB_FOREACH(n, &L.sources, it)
		free(n);
	hashtab_cleanup(&L.sources);
	free(L.heap);
	memset(&L, 0, sizeof(L));
}
