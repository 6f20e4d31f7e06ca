/*
 * Flood and brute-force defence per source address.  One entry per source
 * seen recently, in a hash table; a sweep on the event loop forgets the
 * idle ones.  A banned source costs one lookup per datagram.
 */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "hashtab.h"
#include "log.h"
#include "timer.h"
#include "xmalloc.h"

#define SWEEP_MS	5000

struct source {
	struct hnode	 node;
	uint8_t		 key[17];	/* family, address */
	uint8_t		 klen;
	uint32_t	 count;		/* requests in this window */
	uint32_t	 fails;		/* failed authentications */
	uint64_t	 window_start;
	uint64_t	 fail_start;
	uint64_t	 banned_until;	/* 0: not banned */
	uint64_t	 last_ms;
	uint64_t	 dropped;	/* while banned */
};

/*
 * Shared by every worker: the table and counters change under mu.  The
 * settings change only while the workers are paused (a reload).
 */
static struct {
	pthread_mutex_t			 mu;
	struct guard_stats		 snap;	/* guard_stats(): a copy */
	const struct guard_settings	*set;	/* borrowed from the config */
	const struct acl		*trusted;	/* borrowed */
	struct acl			 self;		/* our listen addresses */
	struct hashtab			 tab;
	struct timer			 sweep;
	struct guard_stats		 stats;
	unsigned			 banned;
	bool				 init;
	bool				 full_logged;
	double				 tokens;	/* call_rate bucket */
	uint64_t			 tokens_ms;
} G = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void	guard_sweep(void *);

void
guard_settings_cleanup(struct guard_settings *s)
{
	if (s->scanner_src != NULL)
		regfree(&s->scanner_re);
	free(s->scanner_src);
	s->scanner_src = NULL;
}

void
guard_init(struct event_base *base)
{
	hashtab_init(&G.tab, 1024);
	timer_init(&G.sweep, base, guard_sweep, NULL);
	timer_set(&G.sweep, SWEEP_MS);
	G.init = true;
}

void
guard_set(const struct guard_settings *set, const struct acl *trusted)
{
	G.set = set;
	G.trusted = trusted;
}

/* Our own listen addresses are never limited (Kamailio's "myself"). */
void
guard_add_self(const char *ip)
{
	char	err[128];

	if (strcmp(ip, "0.0.0.0") != 0 && strcmp(ip, "::") != 0)
		acl_add(&G.self, ip, err, sizeof(err));
}

static void
source_free(struct source *s)
{
	if (s->banned_until != 0)
		G.banned--;
	hashtab_remove(&G.tab, &s->node);
	free(s);
}

void
guard_shutdown(void)
{
	struct hashtab_iter	 it;
	struct hnode		*n;

	if (!G.init)
		return;
	timer_stop(&G.sweep);
	HASHTAB_FOREACH(n, &G.tab, it)
		free(n);
	hashtab_cleanup(&G.tab);
	memset(&G, 0, sizeof(G));
}

static void
addr_name(const struct tp_addr *a, char *out, size_t len)
{
	tp_addr_ip(a, out, len);
}

static bool
exempt(const struct tp_addr *a);

/* Never limited: ours, trusted or exempt (for answers that may be longer). */
bool
guard_known(const struct tp_addr *a)
{
	return (G.set != NULL && exempt(a));
}

static bool
exempt(const struct tp_addr *a)
{
	return ((G.trusted != NULL && acl_match(G.trusted, a)) ||
	    acl_match(&G.set->exempt, a) || acl_match(&G.self, a));
}

static struct source *
source_get(const struct tp_addr *a, bool create)
{
	uint8_t		 key[17];
	size_t		 klen = tp_addr_key(a, key);
	struct source	*s;

	s = (struct source *)hashtab_find(&G.tab, (const char *)key, klen);
	if (s != NULL || !create)
		return (s);
	if (G.tab.n >= G.set->max_sources) {
		if (!G.full_logged)
			log_warnx("guard: %u sources tracked, the most allowed; "
			    "new ones are not limited", G.set->max_sources);
		G.full_logged = true;
		return (NULL);
	}
	s = xcalloc(1, sizeof(*s));
	memcpy(s->key, key, klen);
	s->klen = (uint8_t)klen;
	hashtab_insert(&G.tab, &s->node, (const char *)s->key, klen);
	return (s);
}

static void
ban(struct source *s, const struct tp_addr *a, uint64_t now, const char *why)
{
	char	ip[INET6_ADDRSTRLEN];

	if (s->banned_until == 0)
		G.banned++;
	s->banned_until = now + G.set->ban_ms;
	G.stats.bans++;
	addr_name(a, ip, sizeof(ip));
	log_notice("guard %s: banned for %u s: %s", ip, G.set->ban_ms / 1000,
	    why);
}

/*
 * A datagram from a: false when it must be dropped unread (banned).
 * Requests count towards the limit; responses only meet the ban.
 */
static bool	guard_allow_locked(const struct tp_addr *, bool);

bool
guard_allow(const struct tp_addr *a, bool request)
{
	bool	ok;

	if (G.set == NULL || (G.set->window_ms == 0 &&
	    G.set->auth_failures == 0) || exempt(a))
		return (true);
	pthread_mutex_lock(&G.mu);
	ok = guard_allow_locked(a, request);
	pthread_mutex_unlock(&G.mu);
	return (ok);
}

static bool
guard_allow_locked(const struct tp_addr *a, bool request)
{
	struct source	*s;
	uint64_t	 now;
	char		 why[96];

	now = timer_now_ms();
	if ((s = source_get(a, request && G.set->window_ms > 0)) == NULL)
		return (true);
	s->last_ms = now;
	if (s->banned_until != 0) {
		if (now < s->banned_until) {
			s->dropped++;
			G.stats.dropped++;
			return (false);
		}
		s->banned_until = 0;	/* served again */
		G.banned--;
		s->count = 0;
		s->fails = 0;
		s->window_start = now;
	}
	if (!request || G.set->window_ms == 0)
		return (true);
	if (now - s->window_start >= G.set->window_ms) {
		s->window_start = now;
		s->count = 0;
	}
	if (++s->count > G.set->max_requests) {
		snprintf(why, sizeof(why), "more than %u requests in %u ms",
		    G.set->max_requests, G.set->window_ms);
		ban(s, a, now, why);
		s->dropped++;
		G.stats.dropped++;
		return (false);
	}
	return (true);
}

/* Credentials from a that did not pass: a password guesser is banned. */
void
guard_auth_failed(const struct tp_addr *a)
{
	struct source	*s;
	uint64_t	 now;
	char		 why[96];

	if (G.set == NULL || G.set->auth_failures == 0 || exempt(a))
		return;
	now = timer_now_ms();
	pthread_mutex_lock(&G.mu);
	if ((s = source_get(a, true)) == NULL)
		goto out;
	s->last_ms = now;
	if (now - s->fail_start >= G.set->auth_window_ms) {
		s->fail_start = now;
		s->fails = 0;
	}
	if (++s->fails >= G.set->auth_failures && s->banned_until == 0) {
		snprintf(why, sizeof(why), "%u failed authentications in %u s",
		    s->fails, G.set->auth_window_ms / 1000);
		ban(s, a, now, why);
	}
out:
	pthread_mutex_unlock(&G.mu);
}

/*
 * The budget of new calls for all sources together (what Kamailio's
 * ratelimit/pipelimit do): a token bucket of call_rate per second, a
 * tenth of a second deep.  Sources that are never limited do not use it.
 */
bool
guard_call_allowed(const struct tp_addr *a)
{
	uint64_t	now;
	double		depth;
	bool		ok = false;

	if (G.set == NULL || G.set->call_rate == 0 || exempt(a))
		return (true);
	now = timer_now_ms();
	depth = G.set->call_rate >= 10 ? G.set->call_rate / 10.0 : 1.0;
	pthread_mutex_lock(&G.mu);
	if (now > G.tokens_ms)
		G.tokens += (double)(now - G.tokens_ms) * G.set->call_rate /
		    1000;
	if (G.tokens > depth)
		G.tokens = depth;
	G.tokens_ms = now;
	if (G.tokens < 1)
		G.stats.call_rate++;
	else {
		G.tokens -= 1;
		ok = true;
	}
	pthread_mutex_unlock(&G.mu);
	return (ok);
}

/* A User-Agent (or Server) that names a known scanner. */
bool
guard_scanner(struct slice ua)
{
	char	buf[256];
	size_t	len = ua.len < sizeof(buf) - 1 ? ua.len : sizeof(buf) - 1;

	if (G.set == NULL || !G.set->scanners || ua.len == 0)
		return (false);
	memcpy(buf, ua.p, len);
	buf[len] = '\0';
	if (regexec(&G.set->scanner_re, buf, 0, NULL, 0) != 0)
		return (false);
	pthread_mutex_lock(&G.mu);
	G.stats.scanners++;
	pthread_mutex_unlock(&G.mu);
	return (true);
}

/* Forget sources idle for longer than any window, unless banned. */
static void
guard_sweep(void *arg)
{
	uint64_t		 now = timer_now_ms(), idle;
	struct hashtab_iter	 it;
	struct hnode		*n;

	(void)arg;
	pthread_mutex_lock(&G.mu);
	if (G.set != NULL) {
		idle = G.set->window_ms > G.set->auth_window_ms ?
		    G.set->window_ms : G.set->auth_window_ms;
		HASHTAB_FOREACH(n, &G.tab, it) {
			struct source	*s = (struct source *)n;

			if (s->banned_until != 0 && now >= s->banned_until) {
				char	ip[INET6_ADDRSTRLEN];

				inet_ntop(s->key[0], s->key + 1, ip,
				    sizeof(ip));
				log_notice("guard %s: ban over, %llu "
				    "datagrams dropped", ip,
				    (unsigned long long)s->dropped);
				s->banned_until = 0;
				s->dropped = 0;
				s->count = 0;
				s->fails = 0;
				G.banned--;
			}
			if (s->banned_until == 0 && now - s->last_ms > idle)
				source_free(s);
		}
		if (G.tab.n < G.set->max_sources)
			G.full_logged = false;
	}
	pthread_mutex_unlock(&G.mu);
	timer_set(&G.sweep, SWEEP_MS);
}

unsigned
guard_banned(void)
{
	unsigned	n;

	pthread_mutex_lock(&G.mu);
	n = G.banned;
	pthread_mutex_unlock(&G.mu);
	return (n);
}

/* A copy as of now (the main thread's: ctl, metrics). */
const struct guard_stats *
guard_stats(void)
{
	pthread_mutex_lock(&G.mu);
	G.snap = G.stats;
	pthread_mutex_unlock(&G.mu);
	return (&G.snap);
}
