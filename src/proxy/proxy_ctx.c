/*
 * The bottom of the proxy core: the state every file shares, the response
 * context's life, identifiers (branches, tags), counters, which hosts are
 * ours, and stateless sending.  It calls nothing else of the core.
 */
#include "config.h"

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "dialog.h"
#include "hashtab.h"
#include "locredis.h"
#include "log.h"
#include "proxy_int.h"
#include "shard.h"
#include "tls.h"
#include "sipcause.h"
#include "xmalloc.h"

_Thread_local struct proxy_state P;

/*
 * The keys are the process's, the same in every worker: a branch, tag or
 * flow token made by one is recognised by all.
 */
static struct {
	pthread_once_t	 once;
	uint64_t	 seed[2];
	uint64_t	 bkey[2];
	char		 run[9];	/* this run's, in dialog stamps */
} K = { .once = PTHREAD_ONCE_INIT };

static void
proxy_ctx_keys(void)
{
	uint32_t	run;

	if (getrandom(K.seed, sizeof(K.seed), 0) != sizeof(K.seed) ||
	    getrandom(K.bkey, sizeof(K.bkey), 0) != sizeof(K.bkey) ||
	    getrandom(&run, sizeof(run), 0) != sizeof(run))
		fatal("getrandom");
	snprintf(K.run, sizeof(K.run), "%08x", run);
	srandom((unsigned)K.seed[0]);
}

void
proxy_ctx_init(struct event_base *base, struct tp *tp,
    struct proxy_settings *set)
{
	pthread_once(&K.once, proxy_ctx_keys);
	memset(&P, 0, sizeof(P));
	P.base = base;
	P.tp = tp;
	P.cur = set;
	memcpy(P.seed, K.seed, sizeof(P.seed));
	memcpy(P.bkey, K.bkey, sizeof(P.bkey));
	P.serial = (uint64_t)shard_self() << 48;	/* tokens never repeat */
}

void
proxy_ctx_settings_unref(struct proxy_settings *s)
{
	unsigned	i;

	if (s == NULL ||
	    __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < s->ndomains; i++)
		free(s->domains[i]);
	free(s->domains);
	route_table_free(&s->routes);
	free(s);
}

/*
 * A response context for the server transaction st, pending until the
 * caller has its final.
 */
struct pctx *
proxy_ctx_new(struct txn *st, struct tp_sock *in, const struct tp_addr *src)
{
	struct pctx	*ctx;
	struct buf	 tv;
	char		 store[256];

	buf_init_on(&tv, store, sizeof(store));
	proxy_ctx_topvia_buf(txn_server_request(st), src, &tv);
	ctx = xcalloc(1, sizeof(*ctx) + tv.len + 1);	/* topvia in it */
	memcpy(ctx->topvia, tv.p, tv.len);
	ctx->topvia[tv.len] = '\0';
	buf_cleanup(&tv);
	ctx->st = st;
	ctx->refs = 1;
	ctx->in_sock = in;
	ctx->up_peer = st->peer;
	ctx->set = P.cur;	/* the routes this call started with */
	__atomic_add_fetch(&ctx->set->refs, 1, __ATOMIC_RELAXED);
	P.pending++;
	st->owner = ctx;
	if ((ctx->lnext = P.ctxs) != NULL)
		P.ctxs->lprev = ctx;
	P.ctxs = ctx;
	return (ctx);
}

/*
 * The rtpengine requests of a context's media relay (proxy_media.c) that
 * are in flight: cancelled (never called back), and the references they
 * held counted.
 */
static unsigned
ctx_media_cancel(struct pmedia *pm)
{
	struct pmedia_ans	*a;
	unsigned		 n = 0;

	if (pm == NULL)
		return (0);
	if (pm->offer != NULL) {
		rtpengine_cancel(pm->offer);
		pm->offer = NULL;
		n++;
	}
	for (a = pm->ans; a != NULL; a = a->next)
		if (a->req != NULL) {
			rtpengine_cancel(a->req);
			a->req = NULL;
			n++;
		}
	return (n);
}

static void
ctx_media_free(struct pmedia *pm)
{
	struct pmedia_ans	*a;

	if (pm == NULL)
		return;
	(void)ctx_media_cancel(pm);
	while ((a = pm->ans) != NULL) {
		pm->ans = a->next;
		sipmsg_free(a->resp);
		free(a);
	}
	sipmsg_free(pm->fwd);
	free(pm);
}

/*
 * At shutdown, before the resolver and the rtpengine client go: every
 * lookup a branch waits on and every rtpengine request a context waits
 * for is cancelled, and the reference it held is dropped (a cancelled
 * request never calls back).
 */
void
proxy_ctx_drop_lookups(void)
{
	struct pctx	*ctx, *next;
	unsigned	 i, n;

	for (ctx = P.ctxs; ctx != NULL; ctx = next) {
		for (i = n = 0; i < ctx->nbr; i++)
			if (ctx->br[i]->dns != NULL) {
				resolver_cancel(ctx->br[i]->dns);
				ctx->br[i]->dns = NULL;
				n++;
			}
		n += ctx_media_cancel(ctx->media);
		next = ctx->lnext;
		while (n-- > 0)
			proxy_ctx_unref(ctx);	/* may free ctx */
	}
}

/* The caller has its final answer (or is gone): no longer pending. */
void
proxy_ctx_done(struct pctx *ctx)
{
	if (ctx->done)
		return;
	ctx->done = true;
	P.pending--;
}

void
proxy_ctx_unref(struct pctx *ctx)
{
	unsigned	i;

	if (--ctx->refs > 0)
		return;
	if (ctx->lprev != NULL)
		ctx->lprev->lnext = ctx->lnext;
	else
		P.ctxs = ctx->lnext;
	if (ctx->lnext != NULL)
		ctx->lnext->lprev = ctx->lprev;
	proxy_ctx_done(ctx);
	proxy_ctx_timer_stop(ctx->cancel_timer);
	free(ctx->cancel_timer);
	for (i = 0; i < ctx->nbr; i++) {
		struct branch	*b = ctx->br[i];

		proxy_ctx_timer_stop(b->timeout);
		free(b->timeout);
		resolver_cancel(b->dns);
		free(b->more);
		sipmsg_free(b->final);
		if (b->ruri != b->ruri_in)
			free(b->ruri);
		free(b->tls_name);
		if (b != &ctx->first)
			free(b);
	}
	if (ctx->br != ctx->br_in)
		free(ctx->br);
	for (i = 0; i < ctx->nloc; i++) {
		free(ctx->loc[i].uri);
		free(ctx->loc[i].path);
	}
	free(ctx->loc);
	ctx_media_free(ctx->media);
	dialog_call_free(ctx->call);
	proxy_ctx_settings_unref(ctx->set);
	free(ctx->strict_ruri);
	free(ctx->routes);
	free(ctx);
}

/* A timer of the context's that may not exist (NULL: never set). */
void
proxy_ctx_timer_stop(struct timer *tm)
{
	if (tm != NULL)
		timer_stop(tm);
}

const char *
proxy_ctx_callid(const struct pctx *ctx, char *buf, size_t len)
{
	if (ctx->st == NULL)
		return ("-");
	snprintf(buf, len, "%s", txn_callid(ctx->st));
	return (buf);
}

/* Unpredictable identifiers: branch and tags. */
void
proxy_ctx_token(char *out, size_t len)
{
	uint64_t	n = ++P.serial;
	char		hex[17];

	fmt_hex64(hex, hashtab_hash(P.seed, &n, sizeof(n)));
	if (len > 0) {
		len = len > sizeof(hex) ? sizeof(hex) : len;
		memcpy(out, hex, len - 1);
		out[len - 1] = '\0';
	}
}

static bool
proxy_ctx_lws(char c)
{
	return (c == ' ' || c == '\t' || c == '\r' || c == '\n');
}

/*
 * Where the responses to a request with this Via value go (RFC 3261
 * 18.2.2, RFC 3581): the received address, else the sent-by host; the
 * port of rport, else of the sent-by, else 5060.  -1 without a sent-by.
 */
int
proxy_ctx_via_dest(struct slice via, struct dest *d)
{
	struct slice	 host, v, tr;
	size_t		 i = 0, s;
	unsigned	 slashes = 0;
	unsigned long	 port = 0;
	enum tp_proto	 proto = TP_UDP;

	while (i < via.len && slashes < 2)	/* "SIP/2.0/" */
		slashes += via.p[i++] == '/';
	while (i < via.len && proxy_ctx_lws(via.p[i]))
		i++;
	s = i;
	while (i < via.len && !proxy_ctx_lws(via.p[i]) && via.p[i] != ';')
		i++;				/* the transport */
	tr = (struct slice){ via.p + s, i - s };
	if (tp_proto_parse(tr, &proto) == -1)
		return (-1);
	while (i < via.len && proxy_ctx_lws(via.p[i]))
		i++;
	s = i;
	if (i < via.len && via.p[i] == '[') {
		while (i < via.len && via.p[i] != ']')
			i++;
		i += i < via.len;
	} else
		while (i < via.len && via.p[i] != ':' && via.p[i] != ';' &&
		    !proxy_ctx_lws(via.p[i]))
			i++;
	host = (struct slice){ via.p + s, i - s };
	if (host.len == 0 || slashes < 2)
		return (-1);
	if (i < via.len && via.p[i] == ':')
		for (i++; i < via.len && via.p[i] >= '0' && via.p[i] <= '9' &&
		    port <= 65535; i++)
			port = port * 10 + (unsigned long)(via.p[i] - '0');
	if (hdr_param(via, "received", &v) && v.len > 0)
		host = v;
	if (hdr_param(via, "rport", &v) && v.len > 0 && v.len <= 5) {
		unsigned long	rp = 0;

		for (i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++)
			rp = rp * 10 + (unsigned long)(v.p[i] - '0');
		if (i == v.len)
			port = rp;
	}
	if (port == 0 || port > 65535)
		port = proto == TP_TLS ? 5061 : 5060;
	memset(d, 0, sizeof(*d));
	d->proto = (int)proto;
	if (dest_addr_set(&d->addr, host, (uint16_t)port) == 0) {
		d->addr.proto = (uint8_t)proto;
		d->numeric = true;
		return (0);
	}
	if (host.len >= sizeof(d->host) || host.p[0] == '[')
		return (-1);
	memcpy(d->host, host.p, host.len);
	d->host[host.len] = '\0';
	d->port = (uint16_t)port;
	return (0);
}

/* The MAC of a branch: its token and where the responses go, keyed. */
static void
proxy_ctx_branch_mac(struct slice token, const struct dest *d, char out[17])
{
	struct buf	k;
	char		store[512];
	uint8_t		key[17];
	size_t		i, n;

	buf_init_on(&k, store, sizeof(store));
	buf_add(&k, token.p, token.len);
	if (d->numeric) {
		n = tp_addr_key(&d->addr, key);
		buf_add(&k, key, n);
		buf_add(&k, "|", 1);
		buf_addu(&k, tp_addr_port(&d->addr));
	} else {
		for (i = 0; d->host[i] != '\0'; i++) {
			char	c = d->host[i];

			c = c >= 'A' && c <= 'Z' ? c + 32 : c;
			buf_add(&k, &c, 1);
		}
		buf_add(&k, "|", 1);
		buf_addu(&k, d->port);
	}
	fmt_hex64(out, hashtab_mac(P.bkey, k.p, k.len));
	buf_cleanup(&k);
}

/*
 * Trusted like auth.trusted: by address, or (mutual TLS) by a name of
 * the verified certificate the client showed (auth.trusted_names).
 */
bool
proxy_ctx_trusted(const struct tp_addr *src)
{
	struct tls_names	names;
	int			i, n;

	if (auth_trusted(src))
		return (true);
	if (!tp_proto_secure((enum tp_proto)src->proto) ||
	    (n = tp_conn_tls_names(P.tp, src, &names)) <= 0)
		return (false);
	for (i = 0; i < n; i++)
		if (auth_trusted_name(names.name[i]))
			return (true);
	return (false);
}

/*
 * A flow token (RFC 5626 5.2): the user part of our Record-Route entry
 * on the side of a connection the peer opened, naming that connection
 * (transport, address, port) under a MAC of the process's key, so that
 * an in-dialog request coming back through it goes on over that very
 * connection (a browser's Contact is a .invalid host that resolves to
 * nothing).  "f", hex of the fields, 16 hex digits of MAC.
 */
void
proxy_ctx_flow_token(const struct tp_addr *a, char *out, size_t len)
{
	uint8_t		raw[TP_ADDR_PACKED_MAX];
	size_t		n, o;

	n = tp_addr_pack(a, raw);
	if (len < 2 * n + 18) {
		*out = '\0';
		return;
	}
	out[0] = 'f';
	o = 1 + tp_addr_encode_packed(raw, n, out + 1, len - 1);
	fmt_hex64(out + o, hashtab_mac(P.bkey, raw, n));
}

/*
 * The connection a flow token of ours names; false: not one of ours.  A
 * path token (registrar.backend "redis": another node's route to a phone
 * this node holds) names a flow too, UDP included, flagged
 * PROXY_ADDR_PATH.
 */
bool
proxy_ctx_flow_parse(struct slice tok, struct tp_addr *a)
{
	uint8_t		raw[TP_ADDR_PACKED_MAX];
	char		mac[17];
	struct tp_addr	f;
	size_t		n;

	if (tok.len > 0 && tok.p[0] == 'p') {
		if (!locredis_active() || !locredis_token_parse(tok, a))
			return (false);
		a->flags |= PROXY_ADDR_PATH;
		return (true);
	}
	if (tok.len < 1 + 2 * 8 + 16 || tok.p[0] != 'f' ||
	    tp_addr_decode((struct slice){ tok.p + 1, tok.len - 17 },
	    &f) == -1 || f.proto == TP_UDP)
		return (false);
	n = tp_addr_pack(&f, raw);
	fmt_hex64(mac, hashtab_mac(P.bkey, raw, n));
	if (strncasecmp(mac, tok.p + tok.len - 16, 16) != 0)
		return (false);
	f.flags = TP_ADDR_FLOW;
	*a = f;
	return (true);
}

/*
 * A branch for a request we send with topvia under our Via: a fresh
 * token, then a MAC of the token and of where its responses go, so that
 * a response that outlived its transaction can be known as ours (and sent
 * on only to that place) without any state.
 */
void
proxy_ctx_branch(const char *topvia, char *out, size_t len)
{
	char		tok[24], mac[17];
	struct dest	d;

	proxy_ctx_token(tok, sizeof(tok));
	if (proxy_ctx_via_dest((struct slice){ topvia, strlen(topvia) },
	    &d) == -1) {
		snprintf(out, len, SIP_MAGIC "%s", tok);
		return;
	}
	proxy_ctx_branch_mac((struct slice){ tok, 16 }, &d, mac);
	if (len < SIP_MAGIC_LEN + 33) {
		snprintf(out, len, SIP_MAGIC "%s%s", tok, mac);
		return;
	}
	memcpy(out, SIP_MAGIC, SIP_MAGIC_LEN);
	memcpy(out + SIP_MAGIC_LEN, tok, 16);
	memcpy(out + SIP_MAGIC_LEN + 16, mac, 17);
}

/*
 * Is branch one proxy_ctx_branch() made for a request whose next Via was
 * next?  Then *d is where its responses go.
 */
bool
proxy_ctx_branch_ours(struct slice branch, struct slice next,
    struct dest *d)
{
	char		mac[17];
	unsigned	i, diff = 0;

	if (branch.len != SIP_MAGIC_LEN + 32 ||
	    memcmp(branch.p, SIP_MAGIC, SIP_MAGIC_LEN) != 0 ||
	    proxy_ctx_via_dest(next, d) == -1)
		return (false);
	proxy_ctx_branch_mac((struct slice){ branch.p + SIP_MAGIC_LEN, 16 },
	    d, mac);
	for (i = 0; i < 16; i++)	/* in constant time */
		diff |= (unsigned)(mac[i] ^ branch.p[SIP_MAGIC_LEN + 16 + i]);
	return (diff == 0);
}

/*
 * The To tag of a stateless reply: a prefix of ours, so that the ACK for it
 * is recognised and absorbed instead of forwarded.
 */
void
proxy_ctx_sl_tag(const struct sipmsg *m, char *out, size_t len)
{
	struct buf	k;
	char		store[512];
	uint64_t	h;

	/* The same for a retransmission: its answer is the same. */
	buf_init_on(&k, store, sizeof(store));
	buf_add(&k, m->callid.p, m->callid.len);
	buf_add(&k, m->from_tag.p, m->from_tag.len);
	buf_add(&k, m->branch.p, m->branch.len);
	buf_addu(&k, m->cseq);
	h = hashtab_hash(P.seed, k.p, k.len);
	buf_cleanup(&k);
	snprintf(out, len, "%08llx%08llx", (unsigned long long)(P.seed[1] &
	    0xffffffffu), (unsigned long long)(h & 0xffffffffu));
}

bool
proxy_ctx_sl_tag_ours(struct slice tag)
{
	char	pre[17];

	fmt_hex64(pre, P.seed[1] & 0xffffffffu);
	return (tag.len == 16 && memcmp(tag.p, pre + 8, 8) == 0);
}

/*
 * The caller's Via as we answer or forward (received and rport added),
 * added to tv (the caller's storage, as it likes).
 */
void
proxy_ctx_topvia_buf(const struct sipmsg *m, const struct tp_addr *src,
    struct buf *tv)
{
	char	ip[INET6_ADDRSTRLEN];

	tp_addr_ip(src, ip, sizeof(ip));
	sipbuild_top_via(m, ip, tp_addr_port(src), tv);
}

/* A response went upstream (generated by us or relayed). */
void
proxy_ctx_count_sent(int code, bool generated)
{
	if (code < 100 || code > 699)
		return;
	P.stats.responses_out[code]++;
	if (generated)
		P.stats.generated[code]++;
	if (code >= 300)
		P.stats.finals_by_cause[sip_cause(code) & 127]++;
	if (code == 481)
		P.stats.sent_481++;
	else if (code == 487)
		P.stats.sent_487++;
}

/*
 * A digest challenge of ours went upstream: a response sent and generated
 * like any, but no failure (no cause): counted apart by code.
 */
void
proxy_ctx_count_challenge(int code)
{
	P.stats.responses_out[code]++;
	P.stats.generated[code]++;
	P.stats.challenges[code == 407]++;
}

/*
 * Is this URI host (and port) us: a listen socket or one of our domains?
 * *domain (if not NULL) names the domain (the realm, the location key):
 * the configured one, or for an address of ours with no domain configured
 * the host itself.
 */
bool
proxy_ctx_domain(struct slice host, uint16_t port, struct slice *domain)
{
	unsigned	i, j;

	for (i = 0; i < P.cur->ndomains; i++) {
		if (host.len != strlen(P.cur->domains[i]) ||
		    strncasecmp(host.p, P.cur->domains[i], host.len) != 0)
			continue;
		if (port == 0)
			goto ours;
		for (j = 0; j < P.tp->nsocks; j++)
			if (P.tp->socks[j].port == port)
				goto ours;
	}
	if (!tp_is_local(P.tp, host, port))
		return (false);
	if (P.cur->ndomains > 0) {
		i = 0;
		goto ours;
	}
	if (domain != NULL)
		*domain = host;
	return (true);
ours:
	if (domain != NULL)
		*domain = (struct slice){ P.cur->domains[i],
		    strlen(P.cur->domains[i]) };
	return (true);
}

/*
 * The domain of an identity (From, To): the host alone decides, whatever
 * port or parameters the URI carries.
 */
bool
proxy_ctx_identity(struct slice host, struct slice *domain)
{
	unsigned	i;

	if (proxy_ctx_domain(host, 0, domain))
		return (true);
	for (i = 0; i < P.tp->nsocks; i++)	/* our address, another port */
		if (proxy_ctx_domain(host, P.tp->socks[i].port, domain))
			return (true);
	return (false);
}

/* A stateless message waiting for DNS; owns its bytes. */
struct sl_send {
	char		*bytes;
	size_t		 len;
	struct tp_sock	*sock;
	char		 name[256];	/* the name resolved */
};

static void
proxy_ctx_sl_resolved(void *arg, const struct tp_addr *addrs, unsigned n,
    const char *err)
{
	struct sl_send	*s = arg;
	struct tp_sock	*out;

	if (n > 0 && (out = tp_sock_for(P.tp, &addrs[0], s->sock)) != NULL)
		tp_send_to(out, &addrs[0], s->name, s->bytes, s->len);
	else
		log_info("proxy: stateless message dropped: %s",
		    err ? err : "no socket for the address family");
	free(s->bytes);
	free(s);
}

/*
 * Send bytes (taken over) to d without a transaction: at once to an
 * address, after RFC 3263 resolution to a name (first address only).
 */
void
proxy_ctx_send(struct tp_sock *in, const struct dest *d, char *bytes,
    size_t len)
{
	struct tp_sock	*out;
	struct sl_send	*s;

	if (d->numeric) {
		if ((out = tp_sock_for(P.tp, &d->addr, in)) != NULL)
			tp_send(out, &d->addr, bytes, len);
		free(bytes);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->bytes = bytes;
	s->len = len;
	s->sock = in;
	snprintf(s->name, sizeof(s->name), "%s", d->host);
	resolver_query(&(struct resolve_query){ d->host, d->port, d->proto,
	    d->sips, tp_protos(P.tp) }, proxy_ctx_sl_resolved, s);
}

/*
 * The stamp of our Record-Route in a request whose dialogs we track (an
 * INVITE, a SUBSCRIBE, REFER or NOTIFY out of dialog): the MAC of the
 * Call-ID, a mark and the run that made it (8 hex digits, also in the URI
 * as ;osr=), so that an in-dialog request through it is known to belong
 * to a dialog in the table of that run (one through a plain stamp, over
 * the Call-ID alone, of a run with tracking off, is not asked for one).
 */
void
proxy_ctx_dialog_stamp(struct slice callid, struct slice run, char out[17])
{
	/*
	 * The last one made, per worker: an INVITE's is asked for twice
	 * (the call, each branch), and its ACK and BYE ask again.
	 */
	static _Thread_local struct {
		char	 key[128 + 8];
		size_t	 len;
		uint32_t gen;
		char	 st[17];
	} last;
	struct buf	b;
	char		store[300];
	uint64_t	k[2];
	uint32_t	gen = 0;
	bool		shared;

	/* dialog.backend "redis": the nodes' shared key, once known. */
	shared = dialog_stamp_key(k, &gen);
	if (callid.len + run.len <= sizeof(last.key) && last.len ==
	    callid.len + run.len && last.gen == gen && memcmp(last.key,
	    callid.p, callid.len) == 0 && memcmp(last.key + callid.len,
	    run.p, run.len) == 0) {
		memcpy(out, last.st, 17);
		return;
	}
	buf_init_on(&b, store, sizeof(store));
	buf_add(&b, callid.p, callid.len);
	buf_add(&b, "\001dialog", 7);
	buf_add(&b, run.p, run.len);
	if (shared)
		fmt_hex64(out, hashtab_mac(k, b.p, b.len));
	else
		auth_stamp((struct slice){ b.p, b.len }, out);
	buf_cleanup(&b);
	if (callid.len + run.len <= sizeof(last.key)) {
		memcpy(last.key, callid.p, callid.len);
		memcpy(last.key + callid.len, run.p, run.len);
		last.len = callid.len + run.len;
		last.gen = gen;
		memcpy(last.st, out, 17);
	}
}

/*
 * Does stamp (16 hex digits) check for the Call-ID and run?  With the
 * nodes' shared key, a stamp this node made under its own key before
 * Redis gave it one checks too.
 */
bool
proxy_ctx_dialog_stamp_ok(struct slice callid, struct slice run,
    struct slice stamp)
{
	char		want[17], store[300];
	struct buf	b;
	uint64_t	k[2];
	uint32_t	gen;

	if (stamp.len != 16)
		return (false);
	proxy_ctx_dialog_stamp(callid, run, want);
	if (CRYPTO_memcmp(stamp.p, want, 16) == 0)
		return (true);
	if (!dialog_stamp_key(k, &gen))
		return (false);
	buf_init_on(&b, store, sizeof(store));
	buf_add(&b, callid.p, callid.len);
	buf_add(&b, "\001dialog", 7);
	buf_add(&b, run.p, run.len);
	auth_stamp((struct slice){ b.p, b.len }, want);
	buf_cleanup(&b);
	return (CRYPTO_memcmp(stamp.p, want, 16) == 0);
}

/* This run's mark (8 hex digits), the same in every worker. */
struct slice
proxy_ctx_run(void)
{
	pthread_once(&K.once, proxy_ctx_keys);
	return ((struct slice){ K.run, 8 });
}
