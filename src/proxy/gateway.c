/*
 * Gateway health: OPTIONS probes to route targets that ask for them.  A
 * target that misses `failures` probes in a row is skipped until it answers
 * again.  Any answer below 500 counts as alive (404 and 405 included).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "shard.h"
#include "log.h"
#include "resolver.h"
#include "sipbuild.h"
#include "xmalloc.h"

static struct {
	struct event_base	*base;
	struct tp		*tp;
	struct gw_settings	 set;
	struct gw		*list;
	uint64_t		 seq;
} G;

static void	gw_probe_response(struct txn *, const struct sipmsg *);
static void	gw_probe_timeout(struct txn *, bool);
static void	gw_probe_gone(struct txn *);

static const struct txn_ops gw_ops = {
	.response = gw_probe_response,
	.timeout = gw_probe_timeout,
	.terminated = gw_probe_gone,
};

/*
 * Probes run on the main loop; every worker reads whether a gateway is up
 * (an atomic flag).  The list changes only while the workers are paused.
 */
bool
gw_is_up(const struct gw *gw)
{
	return (__atomic_load_n(&gw->up, __ATOMIC_RELAXED));
}

const struct gw *
gw_list(void)
{
	return (G.list);
}

/* A target without probes, or whose probes it answers. */
bool
gw_target_usable(const struct target *t)
{
	return (t->gw == NULL || gw_is_up(t->gw));
}

static void
gw_result(struct gw *gw, bool alive, const char *why)
{
	timer_stop(&gw->wait);
	if (gw->ct != NULL) {
		gw->ct->owner = NULL;	/* late answers no longer count */
		gw->ct = NULL;
	}
	if (alive) {
		if (!gw->up)
			log_notice("gw %s: up again (%s)", gw->uri, why);
		__atomic_store_n(&gw->up, true, __ATOMIC_RELAXED);
		gw->misses = 0;
	} else if (++gw->misses >= G.set.failures && gw->up) {
		__atomic_store_n(&gw->up, false, __ATOMIC_RELAXED);
		log_warnx("gw %s: down after %u failed probes (%s)", gw->uri,
		    gw->misses, why);
	} else
		log_info("gw %s: probe failed (%s), %u in a row", gw->uri, why,
		    gw->misses);
}

static void
gw_probe_response(struct txn *ct, const struct sipmsg *resp)
{
	struct gw	*gw = ct->owner;
	char		 why[32];

	if (resp->status < 200)
		return;
	snprintf(why, sizeof(why), "%d", resp->status);
	gw_result(gw, resp->status < 500, why);
}

static void
gw_probe_timeout(struct txn *ct, bool timer_c)
{
	(void)timer_c;
	gw_result(ct->owner, false, "timeout");
}

static void
gw_probe_gone(struct txn *ct)
{
	struct gw	*gw = ct->owner;

	if (gw != NULL && gw->ct == ct)
		gw->ct = NULL;
}

static void
gw_wait_fire(void *arg)
{
	struct gw	*gw = arg;

	if (gw->resolving) {
		resolver_cancel(gw->dns);	/* no answer in time */
		gw->dns = NULL;
		gw->resolving = false;
	}
	gw_result(gw, false, "timeout");
}

static void
gw_send(struct gw *gw)
{
	struct tp_sock	*out;
	struct buf	 b;
	char		 branch[48], callid[128], *bytes;
	size_t		 len;
	int		 n;

	if ((out = tp_sock_for(G.tp, &gw->addr, NULL)) == NULL)
		return;
	/* Its answer must come back to this worker (shard.h). */
	do {
		n = snprintf(callid, sizeof(callid), "probe-%llx@%s",
		    (unsigned long long)++G.seq, out->hostport);
	} while (shard_of(callid, (size_t)n) != shard_self());
	snprintf(branch, sizeof(branch), SIP_MAGIC "gw%llx%llx",
	    (unsigned long long)(uintptr_t)gw & 0xffffff,
	    (unsigned long long)G.seq);
	buf_init(&b, 512);
	buf_addf(&b, "OPTIONS %s SIP/2.0\r\n"
	    "Via: SIP/2.0/%s %s;branch=%s\r\n"
	    "Max-Forwards: 70\r\n"
	    "From: <sip:osprey@%s>;tag=gw%llx\r\n"
	    "To: <%s>\r\n"
	    "Call-ID: %s\r\n"
	    "CSeq: %llu OPTIONS\r\n"
	    "Accept: application/sdp\r\n"
	    "User-Agent: Osprey/" PACKAGE_VERSION "\r\n"
	    "Content-Length: 0\r\n\r\n", gw->uri, tp_proto_via(out->proto),
	    out->hostport, branch,
	    out->hostport, (unsigned long long)G.seq, gw->uri,
	    callid, (unsigned long long)++gw->probes);
	bytes = buf_steal(&b, &len);
	gw->ct = txn_client_new_named(TXN_NICT, (struct slice){ branch,
	    strlen(branch) }, (struct slice){ "OPTIONS", 7 }, bytes, len, out,
	    &gw->addr, gw->dest.numeric ? NULL : gw->dest.host, gw, 0);
	txn_set_ops(gw->ct, &gw_ops);
}

static void
gw_resolved(void *arg, const struct tp_addr *addrs, unsigned n,
    const char *err)
{
	struct gw	*gw = arg;

	gw->resolving = false;
	gw->dns = NULL;
	if (n == 0) {
		gw_result(gw, false, err ? err : "no address");
		return;
	}
	gw->addr = addrs[0];
	gw_send(gw);
}

static void
gw_tick(void *arg)
{
	struct gw	*gw = arg;

	timer_set(&gw->tick, G.set.interval_ms);
	if (gw->ct != NULL || gw->resolving)
		return;		/* the last one is still out */
	timer_set(&gw->wait, G.set.timeout_ms);
	if (gw->dest.numeric)
		gw_send(gw);
	else {
		struct resolve_query	q = { gw->dest.host, gw->dest.port,
					    gw->dest.proto, gw->dest.sips,
					    tp_protos(G.tp) };

		gw->resolving = true;
		gw->dns = resolver_query(&q, gw_resolved, gw);
	}
}

static struct gw *
gw_find(const struct target *t)
{
	struct gw	*gw;

	for (gw = G.list; gw != NULL; gw = gw->next)
		if (strcmp(gw->uri, t->uri) == 0)
			return (gw);
	return (NULL);
}

/* One gw per probed target URI; probes start staggered. */
void
gw_start(struct event_base *base, struct tp *tp, struct route_table *rt,
    const struct gw_settings *set)
{
	unsigned	 i, j, n = 0;
	struct gw	*gw;

	G.base = base;
	G.tp = tp;
	G.set = *set;
	for (i = 0; i < rt->n; i++) {
		struct route	*r = rt->r[i];

		if (!r->probe)
			continue;
		for (j = 0; j < r->ntargets; j++) {
			struct target	*t = &r->targets[j];

			if ((gw = gw_find(t)) == NULL) {
				gw = xcalloc(1, sizeof(*gw));
				gw->uri = xstrdup(t->uri);
				gw->dest = t->dest;
				gw->addr = t->dest.addr;
				gw->up = true;
				timer_init(&gw->tick, base, gw_tick, gw);
				timer_init(&gw->wait, base, gw_wait_fire, gw);
				gw->next = G.list;
				G.list = gw;
				timer_set(&gw->tick, 10 + 37 * n++ %
				    (G.set.interval_ms / 2 + 1));
			}
			t->gw = gw;
		}
	}
	if (n > 0)
		log_info("gw: probing %u target(s) every %u ms", n,
		    G.set.interval_ms);
}

/* Stop probing; the targets of rt forget their gw. */
void
gw_stop(struct route_table *rt)
{
	struct gw	*gw, *next;
	unsigned	 i, j;

	for (i = 0; rt != NULL && i < rt->n; i++)
		for (j = 0; j < rt->r[i]->ntargets; j++)
			rt->r[i]->targets[j].gw = NULL;

	for (gw = G.list; gw != NULL; gw = next) {
		next = gw->next;
		timer_stop(&gw->tick);
		timer_stop(&gw->wait);
		if (gw->ct != NULL)
			gw->ct->owner = NULL;
		if (gw->resolving)
			resolver_cancel(gw->dns);
		free(gw->uri);
		free(gw);
	}
	G.list = NULL;
}
