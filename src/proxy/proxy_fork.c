/*
 * Branches: parallel and serial forking, per-target timeouts, failover by
 * response code or cause, on_failure routes, 3xx recursion, and CANCEL of
 * every pending branch.  The caller sees one transaction throughout.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gateway.h"
#include "log.h"
#include "proxy_int.h"
#include "sipcause.h"
#include "xmalloc.h"
#define REASON_2XX	"SIP;cause=200;text=\"Call completed elsewhere\""

static bool	proxy_fork_next_addr(struct branch *);
static void	proxy_fork_branch_done(struct branch *);
static void	proxy_fork_evaluate(struct pctx *);
static void	proxy_fork_cancel_others(struct pctx *, const char *);
static void	proxy_fork_on_response(struct txn *, const struct sipmsg *);
static void	proxy_fork_on_timeout(struct txn *, bool);
static void	proxy_fork_on_transport_error(struct txn *);
static void	proxy_fork_on_terminated(struct txn *);

/* The up-calls of our client and server transactions (proxy_init). */
const struct txn_ops proxy_fork_txn_ops = {
	.response = proxy_fork_on_response,
	.timeout = proxy_fork_on_timeout,
	.transport_error = proxy_fork_on_transport_error,
	.terminated = proxy_fork_on_terminated,
	.done = proxy_fork_on_terminated,	/* absorbing only: let go */
};

/* A request that makes a dialog (one we record-route, when we do). */
static bool
proxy_fork_dialog_creating(const struct sipmsg *m)
{
	if (m->to_tag.len > 0)
		return (false);
	switch (m->method) {
	case SM_INVITE:
	case SM_SUBSCRIBE:
	case SM_REFER:
	case SM_NOTIFY:
		return (true);
	default:
		return (false);
	}
}

static bool
proxy_fork_wants_rr(const struct sipmsg *m)
{
	return (P.cur->record_route && proxy_fork_dialog_creating(m));
}

/*
 * With record_route = false Osprey sees none of a call's in-dialog
 * requests, so a party behind a NAT over UDP (its Contact names another
 * address, or port, than the one its message came from: what the
 * registrar calls behind NAT) would get them at its private Contact.
 * Its Contact is then rewritten to the address the message came from, as
 * nathelper's fix_nated_contact does: out gets the new header line and
 * line the index of the old one.  false: nothing to rewrite (one Contact
 * only; a domain name, TCP and TLS are left alone).  With record_route =
 * true nothing is rewritten: the dialog sends to the flow instead.
 */
static bool
proxy_fork_nat_contact(const struct sipmsg *m, const struct tp_addr *src,
    struct buf *out, unsigned *line)
{
	struct slice	 v[2], uri;
	struct sipuri	 u;
	const char	*end, *stop;
	char		 ip[INET6_ADDRSTRLEN];
	unsigned	 i, n = 0;

	if (src == NULL || src->len == 0 || src->proto != TP_UDP)
		return (false);
	for (i = 0; i < m->nh; i++)
		if (m->h[i].id == SH_CONTACT) {
			*line = i;
			n++;
		}
	if (n != 1 || sipmsg_values(m, SH_CONTACT, v, 2) != 1)
		return (false);
	uri = hdr_uri(v[0]);
	if (sipuri_parse(uri, &u) != 0 || !location_nat_host(u.host, u.port,
	    src))
		return (false);
	end = u.host.p + u.host.len;
	stop = v[0].p + v[0].len;
	if (u.port != 0 && end < stop && *end == ':')
		for (end++; end < stop && *end >= '0' && *end <= '9'; end++)
			;
	tp_addr_ip(src, ip, sizeof(ip));
	buf_adds(out, "Contact: ");
	buf_add(out, v[0].p, (size_t)(u.host.p - v[0].p));
	if (tp_addr_family(src) == AF_INET6)
		buf_add(out, "[", 1);
	buf_adds(out, ip);
	if (tp_addr_family(src) == AF_INET6)
		buf_add(out, "]", 1);
	buf_add(out, ":", 1);
	buf_addu(out, tp_addr_port(src));
	buf_add(out, end, (size_t)(stop - end));
	buf_add(out, "\r\n", 2);
	return (true);
}

/*
 * Credentials for a realm of ours were for us (RFC 3261 20.28, 22.3): the
 * next hop never sees them, as with Kamailio's consume_credentials().
 * Proxy-Authorization lines for another realm (a proxy further on) stay.
 * Returns the lines of m to leave out (owned by the caller), or NULL.
 */
static bool *
proxy_fork_consumed(const struct sipmsg *m)
{
	bool		*drop = NULL;
	char		 realm[256];
	unsigned	 i;

	if (!auth_enabled())
		return (NULL);
	for (i = 0; i < m->nh; i++) {
		if (m->h[i].id != SH_PROXY_AUTHORIZATION ||
		    !auth_creds_realm(sipmsg_hvalue(m, &m->h[i]), realm,
		    sizeof(realm)) || !proxy_ctx_identity((struct slice){
		    realm, strlen(realm) }, NULL))
			continue;
		if (drop == NULL)
			drop = xcalloc(m->nh, sizeof(*drop));
		drop[i] = true;
	}
	return (drop);
}

/* The ";transport=" of our Record-Route for s; none for UDP. */
static const char *
rr_transport(const struct tp_sock *s)
{
	static const char *const param[TP_NPROTO] = {
		[TP_UDP] = "", [TP_TCP] = ";transport=tcp",
		[TP_TLS] = ";transport=tls", [TP_WS] = ";transport=ws",
		[TP_WSS] = ";transport=wss"
	};

	return (s->proto < TP_NPROTO ? param[s->proto] : "");
}

/*
 * One Record-Route entry: our address on s, and the flow token of the
 * connection on that side when the peer there opened it (in_flow: the
 * caller's, out_flow: a registered phone's).
 */
static void
rr_entry(struct buf *b, const struct tp_sock *s, const struct tp_addr *flow,
    const char *st, const char *more)
{
	char	tok[80];

	tok[0] = '\0';
	if (flow != NULL && flow->proto != TP_UDP)
		proxy_ctx_flow_token(flow, tok, sizeof(tok));
	buf_adds(b, "<sip:");
	if (tok[0] != '\0') {
		buf_adds(b, tok);
		buf_add(b, "@", 1);
	}
	buf_adds(b, s->hostport);
	buf_adds(b, ";lr");
	buf_adds(b, rr_transport(s));
	if (st != NULL) {
		buf_adds(b, ";osp=");
		buf_adds(b, st);
	}
	buf_adds(b, more);
	buf_add(b, ">", 1);
}

/*
 * Build the bytes of m forwarded to one hop, from out; in is the socket
 * it came on, in_flow and out_flow the connections on either side that
 * the peers opened (NULL: none).
 */
char *
proxy_fork_bytes(const struct sipmsg *m, const struct tp_sock *in,
    const struct tp_sock *out, const struct tp_addr *in_flow,
    const struct tp_addr *out_flow, const char *branch, const char *topvia,
    struct slice ruri, const struct slice *routes, unsigned nroutes,
    size_t *len)
{
	struct fwd	 f;
	struct buf	 b, rr, path, v, ct;
	char		 via[TP_HOSTPORT_LEN + 128], st[40];
	struct slice	 run;
	char		 rrstore[512], pathstore[256];	/* no malloc per request */
	char		 ctstore[256];
	bool		 rec = proxy_fork_wants_rr(m), *drop;
	unsigned	 line = 0;

	buf_init_on(&v, via, sizeof(via));
	buf_adds(&v, "SIP/2.0/");
	buf_adds(&v, tp_proto_via(out->proto));
	buf_add(&v, " ", 1);
	buf_adds(&v, out->hostport);
	buf_adds(&v, ";branch=");
	buf_adds(&v, branch);
	buf_init_on(&rr, rrstore, sizeof(rrstore));
	if (rec) {
		if (dialog_enabled()) {	/* a call's, a subscription's */
			run = proxy_ctx_run();
			proxy_ctx_dialog_stamp(m->callid, run, st);
			memcpy(st + 16, ";osr=", 5);	/* no printf per call */
			memcpy(st + 21, run.p, 8);
			st[29] = '\0';
		} else
			auth_stamp(m->callid, st);
		if (in_flow != NULL && in_flow->proto == TP_UDP)
			in_flow = NULL;
		if (out_flow != NULL && !(out_flow->flags & TP_ADDR_FLOW))
			out_flow = NULL;
		/*
		 * Two entries when the call crosses sockets (RFC 5658), or
		 * when a side has a flow to name: each side's in-dialog
		 * requests reach us over its own transport and leave over
		 * the other's, on the connection its token names.
		 */
		rr_entry(&rr, out, out_flow, st, "");
		if ((in != out && in != NULL) || in_flow != NULL ||
		    out_flow != NULL) {
			buf_adds(&rr, ", ");
			rr_entry(&rr, in != NULL ? in : out, in_flow, st, "");
		}
	}
	/*
	 * A REGISTER from a connection its phone opened, to a registrar that
	 * supports Path: we are that phone's edge proxy (RFC 5626 5.1), and
	 * our Path names the flow, with ;ob when the phone asks for outbound.
	 * The registrar's requests for the phone come back through it.
	 */
	buf_init_on(&path, pathstore, sizeof(pathstore));
	if (m->method == SM_REGISTER && in_flow != NULL &&
	    (in_flow->flags & TP_ADDR_FLOW) && in_flow->proto != TP_UDP &&
	    in != NULL && sipmsg_has_option(m, SH_SUPPORTED, "path")) {
		rr_entry(&path, in, in_flow, NULL, sipmsg_has_option(m,
		    SH_SUPPORTED, "outbound") ? ";ob" : "");
	}
	memset(&f, 0, sizeof(f));
	f.path = path.len > 0 ? path.p : NULL;
	f.ruri = ruri;
	f.via = v.p;
	f.rr = rec ? rr.p : NULL;
	f.topvia = (struct slice){ topvia, strlen(topvia) };
	f.routes = routes;
	f.nroutes = nroutes;
	f.max_forwards = m->max_forwards < 0 ? 70 : m->max_forwards - 1;
	f.drop = drop = proxy_fork_consumed(m);
	buf_init_on(&ct, ctstore, sizeof(ctstore));
	if (!P.cur->record_route && proxy_fork_dialog_creating(m) &&
	    proxy_fork_nat_contact(m, in_flow, &ct, &line)) {
		if (drop == NULL)
			f.drop = drop = xcalloc(m->nh, sizeof(*drop));
		drop[line] = true;
		f.extra = ct.p;
	}
	buf_init(&b, m->len + 256);
	sipbuild_request(m, &f, &b);
	free(drop);
	buf_cleanup(&ct);
	buf_cleanup(&rr);
	buf_cleanup(&path);
	buf_cleanup(&v);
	return (buf_steal(&b, len));
}

/* No final after the caller's CANCEL: answer 487 ourselves. */
static void
proxy_fork_cancel_timeout(void *arg)
{
	struct pctx	*ctx = arg;
	char		 cid[128];

	if (ctx->answered || ctx->final_sent || ctx->st == NULL ||
	    (ctx->media != NULL && ctx->media->held > 0))
		return;		/* a 2xx waits for rtpengine: it goes up */
	log_info("proxy %s: no final after CANCEL, answering 487",
	    proxy_ctx_callid(ctx, cid, sizeof(cid)));
	ctx->final_sent = true;
	proxy_ctx_done(ctx);
	dialog_call_final(ctx->call, 487, CDR_BY_CALLER);
	proxy_reply_st(ctx->st, ctx->topvia, 487, NULL, NULL);
}

/* The response context of a request about to be forwarded. */
struct pctx *
proxy_fork_new(struct txn *st, struct tp_sock *in, const struct tp_addr *src)
{
	return (proxy_ctx_new(st, in, src));
}

/* The target's own timeout: give up on this branch, go on to the next. */
static void
branch_timeout(void *arg)
{
	struct branch	*b = arg;
	char		 cid[128];

	if (b->code != 0)
		return;
	log_info("proxy %s: branch %s timed out after %u ms",
	    proxy_ctx_callid(b->ctx, cid, sizeof(cid)),
	    b->ct ? txn_id(b->ct) : "-",
	    b->target ? b->target->timeout_ms : 0);
	if (b->ct != NULL)
		txn_client_cancel(b->ct, NULL);
	b->code = 408;
	proxy_fork_branch_done(b);
}

static struct branch *
branch_new(struct pctx *ctx, struct slice ruri, const struct target *t)
{
	struct branch	*b;

	if (ctx->nbr == 0) {	/* the first: in the context */
		b = &ctx->first;
		memset(b, 0, sizeof(*b));
		ctx->br = ctx->br_in;
	} else {
		b = xcalloc(1, sizeof(*b));
		if (ctx->br == ctx->br_in) {
			ctx->br = xcalloc(ctx->nbr + 1, sizeof(*ctx->br));
			memcpy(ctx->br, ctx->br_in, sizeof(ctx->br_in));
		} else
			ctx->br = xrealloc(ctx->br, (ctx->nbr + 1) *
			    sizeof(*ctx->br));
	}
	ctx->br[ctx->nbr] = b;
	b->ctx = ctx;
	b->idx = ctx->nbr++;
	b->target = t;
	if (ruri.len < sizeof(b->ruri_in)) {
		memcpy(b->ruri_in, ruri.p, ruri.len);
		b->ruri_in[ruri.len] = '\0';
		b->ruri = b->ruri_in;
	} else
		b->ruri = xstrndup(ruri.p, ruri.len);
	return (b);
}

/* A branch that failed before it started (no socket, nothing usable). */
static void
branch_failed(struct pctx *ctx, int code)
{
	struct branch	*b = branch_new(ctx, (struct slice){ "", 0 }, NULL);

	b->code = code;
}

/* Send the request on branch b to its current address. */
static int
branch_send(struct branch *b)
{
	struct pctx		*ctx = b->ctx;
	const struct sipmsg	*m = ctx->media != NULL &&
				    ctx->media->fwd != NULL ? ctx->media->fwd :
				    txn_server_request(ctx->st);
	struct tp_addr		 a, up;
	const struct tp_addr	*addr = &a;
	struct tp_sock		*out;
	char			 branch[48], cid[128], *bytes;
	size_t			 len;

	txn_addr_get(&b->addr, &a);
	if (m == NULL) {	/* its bytes no longer parse: cannot happen */
		b->code = 500;
		return (-1);
	}
	if (b->sock != NULL && b->sock->family == tp_addr_family(addr) &&
	    b->sock->proto == addr->proto)
		out = b->sock;
	else if ((out = tp_sock_for(P.tp, addr, ctx->in_sock)) == NULL) {
		b->code = 503;
		return (-1);
	}
	proxy_ctx_branch(ctx->topvia, branch, sizeof(branch));
	txn_addr_get(&ctx->up_peer, &up);
	bytes = proxy_fork_bytes(m, ctx->in_sock, out, &up, addr,
	    branch, ctx->topvia,
	    (struct slice){ b->ruri, strlen(b->ruri) }, b->nroutes ?
	    b->routes : ctx->routes, b->nroutes ? b->nroutes : ctx->nroutes,
	    &len);
	/*
	 * RFC 3261 18.1.1: a request over udp_mtu bytes (a WebRTC INVITE's
	 * SDP) goes over TCP when its next hop asked for no transport and
	 * we have TCP; if TCP fails, it is tried over UDP after all.
	 */
	if (b->may_upgrade && addr->proto == TP_UDP && P.cur->udp_mtu > 0 &&
	    len > P.cur->udp_mtu) {
		struct tp_addr	 t = *addr;
		struct tp_sock	*tcp;

		t.proto = TP_TCP;
		if ((tcp = tp_sock_for(P.tp, &t, NULL)) != NULL) {
			log_info("proxy %s: %zu bytes: over TCP, not UDP "
			    "(udp_mtu %u)", proxy_ctx_callid(ctx, cid,
			    sizeof(cid)), len, P.cur->udp_mtu);
			free(bytes);
			b->addr.proto = TP_TCP;
			a.proto = TP_TCP;
			b->upgraded = true;
			out = tcp;
			bytes = proxy_fork_bytes(m, ctx->in_sock, out,
			    &up, addr, branch, ctx->topvia,
			    (struct slice){ b->ruri, strlen(b->ruri) },
			    b->nroutes ? b->routes : ctx->routes, b->nroutes ?
			    b->nroutes : ctx->nroutes, &len);
		}
	}
	b->ct = txn_client_start(m->method == SM_INVITE ? TXN_ICT : TXN_NICT,
	    (struct slice){ branch, strlen(branch) }, m->method_s, m->callid,
	    bytes, len, out, addr, b->tls_name, ctx, (int)b->idx);
	ctx->refs++;
	if (m->method == SM_INVITE)
		txn_client_arm_c(b->ct);
	if (b->target != NULL && b->target->timeout_ms > 0) {
		if (b->timeout == NULL) {	/* most targets have none */
			b->timeout = xmalloc(sizeof(*b->timeout));
			timer_init(b->timeout, P.base, branch_timeout, b);
		}
		timer_set(b->timeout, b->target->timeout_ms);
	}
	log_info("proxy %s: %s forwarded to %s via %s",
	    proxy_ctx_callid(ctx, cid, sizeof(cid)), sip_method_name(m->method),
	    b->ruri, txn_id(b->ct));
	return (0);
}

/*
 * No branch can start any more: no lookup under way, no next address, no
 * next target, group of contacts, failure route or redirect to come.  The
 * server transaction then keeps of an INVITE only what the responses we
 * make copy, and the Route set taken from it goes.
 */
static void
proxy_fork_settle(struct pctx *ctx)
{
	const struct route	*r = ctx->route;
	unsigned		 i;

	if (ctx->settled || ctx->st == NULL || ctx->st->kind != TXN_IST ||
	    ctx->starting > 0)
		return;
	if (ctx->loc != NULL && ctx->loc_next < ctx->nloc)
		return;
	if (r != NULL && (r->recurse || r->nfailure > 0 ||
	    (r->fork == FORK_SERIAL && ctx->next < ctx->norder)))
		return;
	for (i = 0; i < ctx->nbr; i++)
		if (ctx->br[i]->dns != NULL || ctx->br[i]->nmore > 0 ||
		    ctx->br[i]->upgraded)
			return;
	ctx->settled = true;
	if (ctx->media != NULL) {	/* rtpengine's INVITE: sent */
		sipmsg_free(ctx->media->fwd);
		ctx->media->fwd = NULL;
	}
	free(ctx->routes);
	ctx->routes = NULL;
	ctx->nroutes = 0;
	txn_server_settle(ctx->st);
}

static bool
ctx_open(const struct pctx *ctx)
{
	return (ctx->st != NULL && !ctx->answered && !ctx->final_sent &&
	    !ctx->cancelled);
}

/* RFC 3263: the addresses of a name, in order; the first one is used. */
static void
branch_resolved(void *arg, const struct tp_addr *addrs, unsigned n,
    const char *err)
{
	struct branch	*b = arg;
	struct pctx	*ctx = b->ctx;
	char		 cid[128];

	b->dns = NULL;
	if (n == 0) {
		log_info("proxy %s: cannot resolve %s: %s",
		    proxy_ctx_callid(ctx, cid, sizeof(cid)), b->ruri, err);
		b->code = 503;
	} else if (!ctx_open(ctx))
		b->code = 487;
	else {
		txn_addr_put(&b->addr, &addrs[0]);
		if (n > 1) {
			b->nmore = n - 1;
			b->more = xcalloc(b->nmore, sizeof(*b->more));
			memcpy(b->more, addrs + 1, b->nmore * sizeof(*addrs));
		}
		branch_send(b);
	}
	if (b->code != 0 && ctx->starting == 0)
		proxy_fork_branch_done(b);
	else if (b->code == 0 && ctx->starting == 0)
		proxy_fork_settle(ctx);		/* the last lookup is over */
	proxy_ctx_unref(ctx);	/* the reference the lookup held */
}

/*
 * Forward the request to one next hop: a new client transaction with a
 * fresh branch, once the destination is resolved.  Returns -1 when the
 * branch failed at once.
 */
static int
branch_go(struct pctx *ctx, struct branch *b, const struct dest *d)
{
	b->may_upgrade = d->proto == -1;
	if (d->numeric) {
		txn_addr_put(&b->addr, &d->addr);
		return (branch_send(b));
	}
	ctx->refs++;
	ctx->starting++;
	b->tls_name = xstrdup(d->host);	/* what a TLS peer must prove */
	b->dns = resolver_query(&(struct resolve_query){ d->host, d->port,
	    d->proto, d->sips, tp_protos(P.tp) }, branch_resolved, b);
	ctx->starting--;
	return (b->code != 0 ? -1 : 0);
}

static int
proxy_fork_start(struct pctx *ctx, struct slice ruri,
    const struct dest *d, const struct target *t)
{
	if (ctx->nbr == MAX_BRANCHES)
		return (-1);
	return (branch_go(ctx, branch_new(ctx, ruri, t), d));
}

/* One registered contact: through its Path, else where it registered from. */
static int
proxy_fork_start_loc(struct pctx *ctx, const struct loc_target *lt)
{
	struct branch	*b;
	struct dest	 d;
	char		 err[128];
	unsigned	 i;

	if (ctx->nbr == MAX_BRANCHES)
		return (-1);
	b = branch_new(ctx, (struct slice){ lt->uri, strlen(lt->uri) }, NULL);
	if (lt->nroutes > 0) {
		b->routes = lt->routes;
		b->nroutes = lt->nroutes;
		if (dest_from_uri(hdr_uri(lt->routes[0]), &d, err,
		    sizeof(err)) != 0) {
			b->code = 503;
			return (-1);
		}
		return (branch_go(ctx, b, &d));
	}
	for (i = 0; i < P.tp->nsocks; i++)
		if (strcmp(P.tp->socks[i].name, lt->local) == 0)
			b->sock = &P.tp->socks[i];
	txn_addr_put(&b->addr, &lt->addr);
	return (branch_send(b));
}

/* The next group of equal q: started in parallel.  false: none left. */
static bool
proxy_fork_next_group(struct pctx *ctx)
{
	unsigned	started = 0;
	uint16_t	q;

	while (started == 0 && ctx->loc_next < ctx->nloc) {
		q = ctx->loc[ctx->loc_next].q;
		while (ctx->loc_next < ctx->nloc &&
		    ctx->loc[ctx->loc_next].q == q)
			if (proxy_fork_start_loc(ctx,
			    &ctx->loc[ctx->loc_next++]) == 0)
				started++;
	}
	return (started > 0);
}

static int
loc_cmp(const void *a, const void *b)
{
	const struct loc_target	*x = a, *y = b;

	return ((int)y->q - (int)x->q);
}

/*
 * A user of ours: its registered contacts, copied (under the location
 * lock) for proxy_fork_location_start().
 */
void
proxy_fork_location_copy(struct pctx *ctx, const struct aor *a)
{
	const struct binding	*b;
	unsigned		 i = 0;

	ctx->loc = xcalloc(a->n, sizeof(*ctx->loc));
	for (b = a->b; b != NULL && i < a->n; b = b->next, i++) {
		struct loc_target	*lt = &ctx->loc[i];

		lt->uri = xstrdup(b->contact);
		lt->addr = b->received;
		lt->q = b->q;
		lt->nat = b->nat;
		snprintf(lt->local, sizeof(lt->local), "%s", b->local);
		if (b->path != NULL) {
			lt->path = xstrdup(b->path);
			lt->nroutes = (unsigned)split_values((struct slice){
			    lt->path, strlen(lt->path) }, lt->routes,
			    LOC_MAX_PATH);
			if (lt->nroutes > LOC_MAX_PATH)
				lt->nroutes = LOC_MAX_PATH;
		}
	}
	ctx->nloc = i;
	qsort(ctx->loc, ctx->nloc, sizeof(*ctx->loc), loc_cmp);
}

/*
 * Fork to the contacts copied, highest q first; equal q values in
 * parallel, the next group when a whole group failed.
 */
void
proxy_fork_location_start(struct pctx *ctx)
{
	char	cid[128];

	ctx->starting++;
	if (!proxy_fork_next_group(ctx)) {
		log_info("proxy %s: no registered contact could be tried",
		    proxy_ctx_callid(ctx, cid, sizeof(cid)));
		branch_failed(ctx, 480);
	}
	ctx->starting--;
	proxy_fork_evaluate(ctx);
}

/*
 * RFC 3263 4.3: a 503 or no answer at all moves on to the next address of
 * the same destination, as a new branch.
 */
static bool
proxy_fork_next_addr(struct branch *b)
{
	struct pctx	*ctx = b->ctx;
	struct branch	*nb;
	char		 cid[128];

	if (b->nmore == 0 || !ctx_open(ctx) || ctx->nbr == MAX_BRANCHES)
		return (false);
	nb = branch_new(ctx, (struct slice){ b->ruri, strlen(b->ruri) },
	    b->target);
	txn_addr_put(&nb->addr, &b->more[0]);
	if (b->tls_name != NULL)
		nb->tls_name = xstrdup(b->tls_name);
	if (--b->nmore > 0) {	/* the rest moves to the new branch */
		nb->nmore = b->nmore;
		nb->more = xcalloc(nb->nmore, sizeof(*nb->more));
		memcpy(nb->more, b->more + 1, nb->nmore * sizeof(*b->more));
	}
	b->nmore = 0;
	log_info("proxy %s: trying the next address of %s",
	    proxy_ctx_callid(ctx, cid, sizeof(cid)), b->ruri);
	b->replaced = true;	/* its answer no longer competes (16.7) */
	if (branch_send(nb) == -1) {
		proxy_fork_branch_done(nb);
		return (true);
	}
	return (true);
}

static struct slice
target_ruri(const struct pctx *ctx, const struct target *t)
{
	if (t->parsed.user.len > 0)	/* a user part replaces the R-URI */
		return ((struct slice){ t->uri, strlen(t->uri) });
	const struct sipmsg	*m = txn_server_request(ctx->st);

	return (m != NULL ? m->ruri : (struct slice){ "", 0 });
}

static bool
proxy_fork_pending(const struct pctx *ctx)
{
	unsigned	i;

	for (i = 0; i < ctx->nbr; i++)
		if (ctx->br[i]->code == 0)
			return (true);
	return (false);
}

/* Serial: start the next usable target.  false when none is left. */
static bool
proxy_fork_next_serial(struct pctx *ctx)
{
	while (ctx->next < ctx->norder) {
		const struct target	*t =
		    &ctx->route->targets[ctx->order[ctx->next++]];

		if (!gw_target_usable(t))
			continue;
		if (proxy_fork_start(ctx, target_ruri(ctx, t), &t->dest,
		    t) == 0)
			return (true);
	}
	return (false);
}

/* Send the request along a route: every target, or the first of a series. */
void
proxy_fork_route(struct pctx *ctx, struct route *r)
{
	const struct sipmsg *m;
	unsigned	i, started = 0, order[ROUTE_MAX_TARGETS];
	char		cid[128];

	ctx->route = r;
	m = txn_server_request(ctx->st);
	ctx->norder = (uint8_t)route_order(r, m != NULL ? m->callid :
	    (struct slice){ "", 0 }, order);
	for (i = 0; i < ctx->norder; i++)
		ctx->order[i] = (uint8_t)order[i];	/* < ROUTE_MAX_TARGETS */
	ctx->next = 0;
	ctx->starting++;
	if (r->fork == FORK_SERIAL)
		started = proxy_fork_next_serial(ctx);
	else {
		for (i = 0; i < ctx->norder; i++) {
			const struct target	*t = &r->targets[ctx->order[i]];

			if (gw_target_usable(t) && proxy_fork_start(ctx,
			    target_ruri(ctx, t), &t->dest, t) == 0)
				started++;
		}
		ctx->next = ctx->norder;
	}
	if (started == 0) {
		log_info("proxy %s: route %s has no usable target",
		    proxy_ctx_callid(ctx, cid, sizeof(cid)), r->name ? r->name :
		    "-");
		branch_failed(ctx, 503);
	}
	ctx->starting--;
	proxy_fork_evaluate(ctx);
}

/*
 * RFC 3261 16.7 step 4: the Contacts we recursed on leave the 3xx of b;
 * with none left the 3xx leaves the response context (a proxy that
 * recursed on every Contact SHOULD NOT return it), so the best of the
 * new branches is chosen instead.
 */
static void
proxy_fork_drop_contacts(struct branch *b, const bool *tried,
    unsigned ntried)
{
	const struct sipmsg	*m = b->final;
	struct sipmsg		*nm;
	struct slice		*v;
	struct buf		 out;
	unsigned		 n, i, left = 0;
	char			 err[128];

	n = sipmsg_values(m, SH_CONTACT, NULL, 0);
	v = xcalloc(n + 1, sizeof(*v));
	n = sipmsg_values(m, SH_CONTACT, v, n);
	buf_init(&out, m->len);
	buf_add(&out, m->buf, m->h[0].off);	/* the status line */
	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];

		if (h->id == SH_CONTACT)
			continue;
		buf_add(&out, m->buf + h->off, h->len);
		if (h->len < 2 || m->buf[h->off + h->len - 1] != '\n')
			buf_add(&out, "\r\n", 2);	/* the last line */
	}
	for (i = 0; i < n; i++) {
		if (i < ntried && tried[i])
			continue;
		buf_adds(&out, left++ == 0 ? "Contact: " : ", ");
		buf_add(&out, v[i].p, v[i].len);
	}
	free(v);
	if (left == 0) {
		b->recursed = true;
		buf_cleanup(&out);
		return;
	}
	buf_add(&out, "\r\n\r\n", 4);
	buf_add(&out, m->buf + m->body_off, m->body_len);
	nm = sipmsg_new(out.p, out.len);
	buf_cleanup(&out);
	if (sipmsg_parse(nm, err, sizeof(err)) != 0) {
		sipmsg_free(nm);	/* cannot happen: it parsed before */
		b->recursed = true;
		return;
	}
	sipmsg_free(b->final);
	b->final = nm;
}

/* 16.5: the Contacts of a 3xx become new branches (route recurse = true). */
static void
proxy_fork_recurse(struct pctx *ctx, struct branch *b)
{
	struct slice	 v[16];
	bool		 tried[16];
	unsigned	 n, i, j, ntried = 0;
	char		 cid[128], err[128];

	n = sipmsg_values(b->final, SH_CONTACT, v, 16);
	for (i = 0; i < n && i < 16; i++) {
		struct slice	uri = hdr_uri(v[i]);
		struct dest	d;
		bool		seen = false;

		tried[i] = false;
		if (ctx->redirects >= ctx->route->max_redirects) {
			log_info("proxy %s: redirect limit %u reached",
			    proxy_ctx_callid(ctx, cid, sizeof(cid)),
			    ctx->route->max_redirects);
			break;
		}
		for (j = 0; j < ctx->nbr; j++)	/* no loops */
			if (strlen(ctx->br[j]->ruri) == uri.len &&
			    strncmp(ctx->br[j]->ruri, uri.p, uri.len) == 0)
				seen = true;
		/* It becomes the Request-URI: "<sip:\0ave@host>" was cut. */
		if (seen || !sipuri_fits_ruri(uri) ||
		    dest_from_uri(uri, &d, err, sizeof(err)) != 0)
			continue;
		if (ctx->nbr == MAX_BRANCHES)
			break;
		ctx->redirects++;
		log_info("proxy %s: %d: recursing to " SLICE_FMT,
		    proxy_ctx_callid(ctx, cid, sizeof(cid)), b->code,
		    SLICE_ARG(uri));
		proxy_fork_start(ctx, uri, &d, NULL);
		tried[i] = true;
		ntried++;
	}
	if (ntried > 0)
		proxy_fork_drop_contacts(b, tried, i);
}

/*
 * Nothing is pending: try the route's on_failure rules for the best code,
 * else answer the caller.  A 6xx is answered at once.
 */
static void
proxy_fork_evaluate(struct pctx *ctx)
{
	struct branch	*best;
	bool		 pending;
	unsigned	 i;
	char		 cid[128];

	if (ctx->answered || ctx->final_sent || ctx->st == NULL ||
	    (ctx->media != NULL && ctx->media->held > 0))
		return;		/* a held 2xx goes up first */
	best = proxy_reply_best(ctx, &pending);
	if (best == NULL || (pending && best->code < 600)) {
		proxy_fork_settle(ctx);
		return;
	}
	if (!pending && !ctx->cancelled && ctx->route != NULL &&
	    ctx->failure_depth < MAX_FAILURE_DEPTH && best->code < 600) {
		for (i = 0; i < ctx->route->nfailure; i++) {
			const struct failure_rule *f =
			    &ctx->route->on_failure[i];

			if (!codeset_match(&f->codes, best->code))
				continue;
			log_info("proxy %s: %d (%s): on_failure to route %s",
			    proxy_ctx_callid(ctx, cid, sizeof(cid)), best->code,
			    sip_cause_name(sip_cause(best->code)),
			    f->route_name);
			ctx->failure_depth++;
			proxy_fork_route(ctx, f->route);
			return;
		}
	}
	proxy_reply_finish(ctx);
}

/* A branch has its final (non-2xx) answer, or was given up on. */
static void
proxy_fork_branch_done(struct branch *b)
{
	struct pctx	*ctx = b->ctx;
	char		 cause[64];

	proxy_ctx_timer_stop(b->timeout);
	if (ctx->answered || ctx->final_sent || ctx->st == NULL)
		return;
	proxy_media_branch_done(ctx, b->idx);	/* its early media */
	if (b->code >= 600 && ctx->st->kind == TXN_IST) {
		snprintf(cause, sizeof(cause), "SIP;cause=%d;text=\"%s\"",
		    b->code, sip_reason(b->code));
		proxy_fork_cancel_others(ctx, cause);
	} else if (!ctx->cancelled && ctx->route != NULL) {
		if (b->code < 400 && b->final != NULL && ctx->route->recurse)
			proxy_fork_recurse(ctx, b);
		if (ctx->route->fork == FORK_SERIAL &&
		    !proxy_fork_pending(ctx) &&
		    codeset_match(&ctx->route->failover, b->code) &&
		    proxy_fork_next_serial(ctx))
			return;
	} else if (!ctx->cancelled && ctx->loc != NULL &&
	    !proxy_fork_pending(ctx) && proxy_fork_next_group(ctx))
		return;		/* the next q group */
	proxy_fork_evaluate(ctx);
}

/* CANCEL the branches still pending (after a 2xx or a 6xx). */
static void
proxy_fork_cancel_others(struct pctx *ctx, const char *reason)
{
	unsigned	i;

	for (i = 0; i < ctx->nbr; i++) {
		struct branch	*b = ctx->br[i];

		if (b->ct != NULL && b->code == 0) {
			txn_client_cancel(b->ct, reason);
			P.stats.cancels_relayed++;
		}
	}
}

/* The caller cancelled (or ospreyctl did): CANCEL every pending branch. */
void
proxy_fork_cancel(struct pctx *ctx, const char *reason)
{
	char	cid[128];

	if (ctx->answered || ctx->final_sent || ctx->cancelled)
		return;
	ctx->cancelled = true;
	if (ctx->media != NULL && ctx->media->offer != NULL) {
		/* Nothing forwarded yet: 487 now, the offer's end deletes. */
		log_info("proxy %s: CANCEL while rtpengine has the offer, "
		    "487", proxy_ctx_callid(ctx, cid, sizeof(cid)));
		ctx->final_sent = true;
		proxy_ctx_done(ctx);
		dialog_call_final(ctx->call, 487, CDR_BY_CALLER);
		proxy_reply_st(ctx->st, ctx->topvia, 487, NULL, NULL);
		return;
	}
	proxy_fork_cancel_others(ctx, reason);
	if (ctx->cancel_timer == NULL) {	/* most calls are not cancelled */
		ctx->cancel_timer = xmalloc(sizeof(*ctx->cancel_timer));
		timer_init(ctx->cancel_timer, P.base,
		    proxy_fork_cancel_timeout, ctx);
	}
	timer_set(ctx->cancel_timer, ctx->set->cancel_ms);
}

/*
 * rtpengine answered the offer (proxy_media.c): the branches start, with
 * its SDP; or the call is refused (code, media.on_failure = "503").
 */
void
proxy_fork_resume(struct pctx *ctx, int code)
{
	struct pmedia	*pm = ctx->media;

	ctx->starting--;
	if (code != 0) {
		ctx->final_sent = true;
		proxy_ctx_done(ctx);
		dialog_call_final(ctx->call, code, CDR_BY_PROXY);
		proxy_reply_st(ctx->st, ctx->topvia, code,
		    "Service Unavailable (rtpengine)", NULL);
		return;
	}
	switch (pm->d) {
	case DEC_ROUTE:
		proxy_fork_route(ctx, pm->route);
		break;
	case DEC_LOCATION:
		proxy_fork_location_start(ctx);
		break;
	default:
		proxy_fork_hop(ctx, pm->ruri, &pm->dest);
		break;
	}
}

/* One next hop (a Route set, in dialog, relaying): a single branch. */
void
proxy_fork_hop(struct pctx *ctx, struct slice ruri, const struct dest *d)
{
	proxy_fork_start(ctx, ruri, d, NULL);
	proxy_fork_evaluate(ctx);	/* the branch may have failed at once */
}

/* A 1xx or 2xx with a To tag to an INVITE we keep dialogs of. */
static void
proxy_fork_dialog(struct pctx *ctx, struct branch *b,
    const struct sipmsg *resp)
{
	struct tp_addr	a;

	if (ctx->call == NULL || resp->to_tag.len == 0)
		return;
	txn_addr_get(&b->addr, &a);
	dialog_call_response(ctx->call, resp, &a, b->ct != NULL ?
	    b->ct->sock : NULL);
	dialog_call_invite(ctx->call, resp, b->ct);	/* for its CANCEL */
}

/* A 1xx or 2xx goes upstream (after rtpengine's answer, if it had one). */
static void
proxy_fork_relay(struct pctx *ctx, unsigned slot, const struct sipmsg *resp)
{
	struct branch	*b = ctx->br[slot];
	char		 cid[128];

	if (resp->status < 200) {
		if (!ctx->final_sent && !ctx->answered) {
			proxy_fork_dialog(ctx, b, resp);
			proxy_reply_relay(ctx, resp, 0, NULL);
		}
		return;
	}
	log_info("proxy %s: %d from %s relayed",
	    proxy_ctx_callid(ctx, cid, sizeof(cid)), resp->status,
	    b->ct != NULL ? txn_id(b->ct) : "-");
	if (ctx->call != NULL)
		proxy_fork_dialog(ctx, b, resp);
	else if (resp->to_tag.len > 0 && dialog_enabled())
		dialog_refresh(resp);	/* re-INVITE, UPDATE */
	proxy_reply_relay(ctx, resp, 0, NULL);
	if (!ctx->answered) {
		ctx->answered = true;
		proxy_ctx_done(ctx);
		proxy_ctx_timer_stop(ctx->cancel_timer);
		if (ctx->st != NULL && ctx->st->kind == TXN_IST)
			proxy_fork_cancel_others(ctx, REASON_2XX);
	}
}

/*
 * A 1xx or 2xx from a callee behind a NAT, with record_route = false: the
 * response with its Contact rewritten to the branch's address
 * (proxy_fork_nat_contact()), parsed; NULL: relayed as it came.
 */
static struct sipmsg *
proxy_fork_nat_response(const struct pctx *ctx, const struct branch *b,
    const struct sipmsg *resp)
{
	const struct sip_hline	*h;
	struct sipmsg		*nm;
	struct tp_addr		 a;
	struct buf		 ct, out;
	char			 ctstore[256], err[128];
	unsigned		 i, line = 0;

	if (ctx->set->record_route || resp->status <= 100 ||
	    resp->status >= 300 || (resp->method != SM_INVITE &&
	    resp->method != SM_SUBSCRIBE && resp->method != SM_REFER &&
	    resp->method != SM_NOTIFY))
		return (NULL);
	txn_addr_get(&b->addr, &a);
	buf_init_on(&ct, ctstore, sizeof(ctstore));
	if (!proxy_fork_nat_contact(resp, &a, &ct, &line)) {
		buf_cleanup(&ct);
		return (NULL);
	}
	buf_init(&out, resp->len + ct.len);
	buf_add(&out, resp->buf, resp->h[0].off);	/* the status line */
	for (i = 0; i < resp->nh; i++) {
		h = &resp->h[i];
		if (i == line) {
			buf_add(&out, ct.p, ct.len);
			continue;
		}
		buf_add(&out, resp->buf + h->off, h->len);
		if (h->len < 2 || resp->buf[h->off + h->len - 1] != '\n')
			buf_add(&out, "\r\n", 2);	/* the last line */
	}
	buf_add(&out, "\r\n", 2);
	buf_add(&out, resp->buf + resp->body_off, resp->body_len);
	buf_cleanup(&ct);
	nm = sipmsg_new(out.p, out.len);
	buf_cleanup(&out);
	if (sipmsg_parse(nm, err, sizeof(err)) != 0) {
		sipmsg_free(nm);	/* cannot happen: it parsed before */
		return (NULL);
	}
	return (nm);
}

static void proxy_fork_response(struct txn *, const struct sipmsg *);

static void
proxy_fork_on_response(struct txn *ct, const struct sipmsg *resp)
{
	struct pctx	*ctx = ct->owner;
	struct sipmsg	*nm;

	nm = proxy_fork_nat_response(ctx, ctx->br[ct->slot], resp);
	proxy_fork_response(ct, nm != NULL ? nm : resp);
	sipmsg_free(nm);
}

static void
proxy_fork_response(struct txn *ct, const struct sipmsg *resp)
{
	struct pctx	*ctx = ct->owner;
	struct branch	*b = ctx->br[ct->slot];
	struct tp_addr	 a;
	int		 code = resp->status;
	char		 cid[128];

	if (code < 200) {	/* 100 is hop by hop (16.7 step 5) */
		if (code > 100 && !ctx->final_sent && !ctx->answered) {
			txn_addr_get(&b->addr, &a);
			if (!proxy_media_answer(ctx, ct->slot, resp, &a,
			    proxy_fork_relay))
				proxy_fork_relay(ctx, ct->slot, resp);
		}
		return;
	}
	if (code < 300) {
		/*
		 * A 2xx with only our Via cannot be relayed (16.7 step 3):
		 * it must not count as the answer either, or the caller's
		 * transaction waits forever for a final (fuzzer).  The
		 * branch stays open and ends with its client transaction.
		 */
		if (!proxy_reply_relayable(resp)) {
			log_peer("proxy %s: %d carries only our Via, ignored",
			    proxy_ctx_callid(ctx, cid, sizeof(cid)), code);
			return;
		}
		b->code = code;
		proxy_ctx_timer_stop(b->timeout);
		txn_addr_get(&b->addr, &a);
		if (ctx->media != NULL && ctx->media->relayed)
			/* Now: its retransmissions are rewritten too. */
			proxy_fork_dialog(ctx, b, resp);
		if (!proxy_media_answer(ctx, ct->slot, resp, &a,
		    proxy_fork_relay))
			proxy_fork_relay(ctx, ct->slot, resp);
		return;
	}
	if (b->code != 0)
		return;		/* already given up on (Timer C, timeout) */
	b->code = code;
	if (code == 503 && proxy_fork_next_addr(b))
		return;		/* RFC 3263 4.3 */
	if (proxy_reply_relayable(resp)) {
		b->final = sipmsg_new(resp->buf, resp->len);
		if (sipmsg_parse(b->final, cid, sizeof(cid)) != 0) {
			sipmsg_free(b->final);
			b->final = NULL;
		}
	}
	log_info("proxy %s: %d from %s", proxy_ctx_callid(ctx, cid,
	    sizeof(cid)), code, txn_id(ct));
	proxy_fork_branch_done(b);
}

static void
proxy_fork_on_timeout(struct txn *ct, bool timer_c)
{
	struct pctx	*ctx = ct->owner;
	struct branch	*b = ctx->br[ct->slot];

	if (b->code != 0)
		return;
	if (timer_c && ct->state == TXN_PROCEEDING)
		txn_client_cancel(ct, NULL);
	b->code = 408;
	if (!timer_c && ct->state == TXN_CALLING && proxy_fork_next_addr(b))
		return;		/* no answer at all: the next address */
	proxy_fork_branch_done(b);
}

/*
 * The connection to the branch's hop failed (RFC 3261 8.1.3.1, 17.1.4):
 * as a 503 from it, so the next address or target is tried at once.
 */
static void
proxy_fork_on_transport_error(struct txn *ct)
{
	struct pctx	*ctx = ct->owner;
	struct branch	*b = ctx->br[ct->slot];

	if (b->code != 0)
		return;
	b->code = 503;
	if (b->upgraded && (ct->state == TXN_CALLING ||
	    ct->state == TXN_TRYING)) {
		/* TCP for its size failed: the same address over UDP next. */
		b->more = xrealloc(b->more, (b->nmore + 1) * sizeof(*b->more));
		memmove(b->more + 1, b->more, b->nmore * sizeof(*b->more));
		txn_addr_get(&b->addr, &b->more[0]);
		b->more[0].proto = TP_UDP;
		b->nmore++;
		b->upgraded = false;
	}
	if ((ct->state == TXN_CALLING || ct->state == TXN_TRYING) &&
	    proxy_fork_next_addr(b))
		return;		/* the txn layer terminates ct right after */
	proxy_fork_branch_done(b);
}

static void
proxy_fork_on_terminated(struct txn *t)
{
	struct pctx	*ctx = t->owner;

	if (t->kind == TXN_IST || t->kind == TXN_NIST) {
		ctx->st = NULL;
		proxy_ctx_done(ctx);
	} else {
		struct branch	*b = ctx->br[t->slot];

		b->ct = NULL;
		if (b->code == 0) {
			b->code = 408;
			proxy_fork_branch_done(b);
		}
	}
	proxy_ctx_unref(ctx);
}
