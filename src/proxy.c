/*
 * The proxy core, RFC 3261 section 16: validate, decide where a request
 * goes, and hand it to the forking logic (proxy_fork.c); responses come
 * back through the transaction layer (proxy_reply.c picks the best).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "log.h"
#include "proxy_int.h"
#include "sipcause.h"
#include "xmalloc.h"

#define ALLOW_HDR	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, " \
			"UPDATE, INFO, MESSAGE, SUBSCRIBE, NOTIFY, REFER\r\n"
#define REASON_2XX	"SIP;cause=200;text=\"Call completed elsewhere\""

/* Where a request goes. */
enum decision {
	DEC_REJECT,	/* answer with code */
	DEC_FOR_US,	/* OPTIONS to the proxy itself */
	DEC_HOP,	/* one next hop: Route set, in dialog, relay */
	DEC_ROUTE,	/* a route from the config */
};

struct hop {
	struct slice	 ruri;
	struct dest	 dest;
};

struct proxy_state P;

static void	proxy_on_response(struct txn *, const struct sipmsg *);
static void	proxy_on_timeout(struct txn *, bool);
static void	proxy_on_terminated(struct txn *);

static const struct txn_ops proxy_txn_ops = {
	.response = proxy_on_response,
	.timeout = proxy_on_timeout,
	.terminated = proxy_on_terminated,
};

void
proxy_init(struct event_base *base, struct tp *tp,
    const struct proxy_settings *set, const struct txn_settings *ts)
{
	memset(&P, 0, sizeof(P));
	P.base = base;
	P.tp = tp;
	P.set = *set;
	if (getrandom(P.seed, sizeof(P.seed), 0) != sizeof(P.seed))
		fatal("getrandom");
	srandom((unsigned)P.seed[0]);
	txn_init(base, ts, &proxy_txn_ops);
}

void
proxy_set_settings(const struct proxy_settings *set)
{
	P.set = *set;
}

void
proxy_shutdown(void)
{
	txn_shutdown();
}

const struct proxy_stats *
proxy_stats(void)
{
	return (&P.stats);
}

/*
 * Lower wins: 6xx, then the lowest class; 401/407/415/420/484 lead 4xx.
 * 2xx never gets here (sent at once); a chosen 503 goes out as 500.
 */
int
proxy_reply_rank(int code)
{
	int	class = code / 100;
	bool	retry = code == 401 || code == 407 || code == 415 ||
		    code == 420 || code == 484;

	return ((class == 6 ? 0 : class) * 1000 + (retry ? 0 : 100) +
	    code % 100);
}

/* Unpredictable identifiers: branch and tags. */
void
proxy_token(char *out, size_t len)
{
	uint64_t	n = ++P.serial;

	snprintf(out, len, "%016llx",
	    (unsigned long long)hashtab_hash(P.seed, &n, sizeof(n)));
}

static void
src_ip(const struct tp_addr *src, char *ip, size_t len)
{
	tp_addr_ip(src, ip, len);
}

/* Is this URI host (and port) us: a listen socket or one of our domains? */
static bool
proxy_domain_ours(struct slice host, uint16_t port)
{
	unsigned	i, j;

	if (tp_is_local(P.tp, host, port))
		return (true);
	for (i = 0; i < P.set.ndomains; i++) {
		if (!slice_eq(host, P.set.domains[i]))
			continue;
		if (port == 0)
			return (true);
		for (j = 0; j < P.tp->nsocks; j++)
			if (P.tp->socks[j].port == port)
				return (true);
	}
	return (false);
}

char *
proxy_make_topvia(const struct sipmsg *m, const struct tp_addr *src)
{
	struct buf	tv;
	char		ip[INET6_ADDRSTRLEN];

	src_ip(src, ip, sizeof(ip));
	buf_init(&tv, 256);
	sipbuild_top_via(m, ip, tp_addr_port(src), &tv);
	return (buf_steal(&tv, NULL));
}

const char *
pctx_callid(const struct pctx *ctx, char *buf, size_t len)
{
	if (ctx->st == NULL)
		return ("-");
	snprintf(buf, len, SLICE_FMT, SLICE_ARG(ctx->st->req->callid));
	return (buf);
}

/* A server transaction with no forwarding behind it: answer and forget. */
static void
reply_new_st(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, int code, const char *reason,
    const char *extra)
{
	struct txn	*st = txn_server_new(m, sock, src);
	char		*topvia = proxy_make_topvia(m, src);

	reply_st(st, topvia, code, reason, extra);
	free(topvia);
}

static void
proxy_on_response(struct txn *ct, const struct sipmsg *resp)
{
	struct pctx	*ctx = ct->owner;
	struct branch	*b = ctx->br[ct->slot];
	int		 code = resp->status;
	char		 cid[128];

	if (code < 200) {	/* 100 is hop by hop (16.7 step 5) */
		if (code > 100 && !ctx->final_sent && !ctx->answered)
			reply_relay(ctx, resp, 0, NULL);
		return;
	}
	if (code < 300) {
		b->code = code;
		timer_stop(&b->timeout);
		log_info("proxy %s: %d from %s relayed",
		    pctx_callid(ctx, cid, sizeof(cid)), code, ct->id);
		reply_relay(ctx, resp, 0, NULL);
		if (!ctx->answered) {
			ctx->answered = true;
			timer_stop(&ctx->cancel_timer);
			if (ctx->st != NULL && ctx->st->kind == TXN_IST)
				fork_cancel_others(ctx, REASON_2XX);
		}
		return;
	}
	if (b->code != 0)
		return;		/* already given up on (Timer C, timeout) */
	b->code = code;
	if (code == 503 && fork_next_addr(b))
		return;		/* RFC 3263 4.3 */
	if (reply_relayable(resp)) {
		b->final = sipmsg_new(resp->buf, resp->len);
		if (sipmsg_parse(b->final, cid, sizeof(cid)) != 0) {
			sipmsg_free(b->final);
			b->final = NULL;
		}
	}
	log_info("proxy %s: %d from %s", pctx_callid(ctx, cid, sizeof(cid)),
	    code, ct->id);
	fork_branch_done(b);
}

static void
proxy_on_timeout(struct txn *ct, bool timer_c)
{
	struct pctx	*ctx = ct->owner;
	struct branch	*b = ctx->br[ct->slot];

	if (b->code != 0)
		return;
	if (timer_c && ct->state == TXN_PROCEEDING)
		txn_client_cancel(ct, NULL);
	b->code = 408;
	if (!timer_c && ct->state == TXN_CALLING && fork_next_addr(b))
		return;		/* no answer at all: the next address */
	fork_branch_done(b);
}

static void
proxy_on_terminated(struct txn *t)
{
	struct pctx	*ctx = t->owner;

	if (t->kind == TXN_IST || t->kind == TXN_NIST) {
		ctx->st = NULL;
	} else {
		struct branch	*b = ctx->br[t->slot];

		b->ct = NULL;
		if (b->code == 0) {
			b->code = 408;
			fork_branch_done(b);
		}
	}
	fork_ctx_unref(ctx);
}

/* Every Reason value of m joined, or NULL. Caller frees. */
static char *
reason_of(const struct sipmsg *m)
{
	struct slice	 v[8];
	unsigned	 n, i;
	struct buf	 b;

	if ((n = sipmsg_values(m, SH_REASON, v, 8)) == 0)
		return (NULL);
	buf_init(&b, 128);
	for (i = 0; i < n && i < 8; i++) {
		if (i > 0)
			buf_add(&b, ", ", 2);
		buf_add(&b, v[i].p, v[i].len);
	}
	return (buf_steal(&b, NULL));
}

/* A URI that names this proxy itself: host, port and transport. */
static bool
uri_is_local(struct slice uri)
{
	struct sipuri	u;
	struct slice	tr;

	if (sipuri_parse(uri, &u) == -1 || u.host.len == 0 || u.user.len > 0)
		return (false);
	if (sipuri_param(&u, "transport", &tr) && !slice_eq(tr, "udp"))
		return (false);		/* we only listen on UDP */
	return (proxy_domain_ours(u.host, u.port));
}

/*
 * Route pre-processing (16.4) and the Route set to send (16.6 steps 6-7).
 * Fills routes/nroutes and ruri; *popped tells whether our own Route was
 * on top.  Returns 0, or a status.
 */
static int
proxy_routes(const struct sipmsg *m, struct slice *routes, unsigned *nroutes,
    struct slice *ruri, bool *popped, char **strict_ruri)
{
	unsigned	n, i;

	*popped = false;
	*ruri = m->ruri;
	n = sipmsg_values(m, SH_ROUTE, routes, MAX_ROUTES);
	if (n > MAX_ROUTES)
		return (400);
	/* A strict router before us put our Record-Route in the R-URI. */
	if (n > 0 && uri_is_local(m->ruri)) {
		*ruri = hdr_uri(routes[n - 1]);
		n--;
		*popped = true;
	}
	while (n > 0 && uri_is_local(hdr_uri(routes[0]))) {
		memmove(routes, routes + 1, (n - 1) * sizeof(*routes));
		n--;
		*popped = true;
	}
	if (n > 0) {
		struct sipuri	u;
		struct slice	first = hdr_uri(routes[0]);

		if (sipuri_parse(first, &u) == -1)
			return (400);
		if (!sipuri_param(&u, "lr", NULL)) {
			/* Next hop is a strict router: R-URI goes last. */
			struct buf	b;

			buf_init(&b, ruri->len + 3);
			buf_add(&b, "<", 1);
			buf_add(&b, ruri->p, ruri->len);
			buf_add(&b, ">", 1);
			*strict_ruri = buf_steal(&b, NULL);
			*ruri = first;
			memmove(routes, routes + 1, (n - 1) * sizeof(*routes));
			routes[n - 1] = (struct slice){ *strict_ruri,
			    strlen(*strict_ruri) };
		}
	}
	*nroutes = n;
	for (i = 0; i < n; i++)
		if (routes[i].len == 0)
			return (400);
	return (0);
}

static bool
wants_rr(const struct sipmsg *m)
{
	if (!P.set.record_route || m->to_tag.len > 0)
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

/* Build the bytes of m forwarded to one hop, from the given socket. */
char *
proxy_forward_bytes(const struct sipmsg *m, const struct tp_sock *in,
    const struct tp_sock *out, const char *branch, const char *topvia,
    struct slice ruri, const struct slice *routes, unsigned nroutes,
    size_t *len)
{
	struct fwd	 f;
	struct buf	 b;
	char		 via[TP_HOSTPORT_LEN + 64];
	char		 rr[2 * TP_HOSTPORT_LEN + 32];

	snprintf(via, sizeof(via), "SIP/2.0/UDP %s;branch=%s", out->hostport,
	    branch);
	if (in != out && in != NULL)
		snprintf(rr, sizeof(rr), "<sip:%s;lr>, <sip:%s;lr>",
		    out->hostport, in->hostport);
	else
		snprintf(rr, sizeof(rr), "<sip:%s;lr>", out->hostport);
	memset(&f, 0, sizeof(f));
	f.ruri = ruri;
	f.via = via;
	f.rr = wants_rr(m) ? rr : NULL;
	f.topvia = (struct slice){ topvia, strlen(topvia) };
	f.routes = routes;
	f.nroutes = nroutes;
	f.max_forwards = m->max_forwards < 0 ? 70 : m->max_forwards - 1;
	buf_init(&b, m->len + 256);
	sipbuild_request(m, &f, &b);
	return (buf_steal(&b, len));
}

/*
 * Decide where m goes (16.4-16.5).  The Route set to send is left in
 * routes/nroutes (*strict is an owned string they may point into).
 */
static enum decision
proxy_decide(const struct sipmsg *m, struct slice *routes, unsigned *nroutes,
    char **strict, struct hop *hop, struct route **route, int *code,
    char *err, size_t errlen)
{
	struct sipuri	 u;
	struct slice	 ruri;
	bool		 popped, ours;
	int		 rc;

	*code = 0;
	if ((rc = proxy_routes(m, routes, nroutes, &ruri, &popped,
	    strict)) != 0) {
		snprintf(err, errlen, "Bad Route header");
		*code = rc;
		return (DEC_REJECT);
	}
	hop->ruri = ruri;
	if (*nroutes > 0) {
		/* A strict next hop is in the R-URI now (16.6 step 7). */
		*code = dest_from_uri(*strict != NULL ? ruri :
		    hdr_uri(routes[0]), &hop->dest, err, errlen);
		return (*code != 0 ? DEC_REJECT : DEC_HOP);
	}
	if (sipuri_parse(ruri, &u) == -1) {
		snprintf(err, errlen, "Bad Request-URI");
		*code = 400;
		return (DEC_REJECT);
	}
	ours = proxy_domain_ours(u.host, u.port);
	if (popped && !(ours && u.user.len == 0)) {
		/* In dialog, through our Record-Route: to the R-URI. */
		*code = dest_from_uri(ruri, &hop->dest, err, errlen);
		return (*code != 0 ? DEC_REJECT : DEC_HOP);
	}
	if (ours && u.user.len == 0) {
		if (m->method == SM_OPTIONS && m->to_tag.len == 0)
			return (DEC_FOR_US);
		*code = m->to_tag.len > 0 ? 481 : 405;
		snprintf(err, errlen, "%s", sip_reason(*code));
		return (DEC_REJECT);
	}
	if (ours && m->to_tag.len > 0) {
		*code = 481;
		snprintf(err, errlen, "%s", sip_reason(481));
		return (DEC_REJECT);
	}
	if ((*route = (struct route *)route_match(&P.set.routes, u.user,
	    u.host)) != NULL)
		return (DEC_ROUTE);
	if (ours) {
		*code = 404;
		snprintf(err, errlen, "%s", sip_reason(404));
		return (DEC_REJECT);
	}
	if (!P.set.relay) {
		*code = 403;
		snprintf(err, errlen, "Relaying Denied");
		return (DEC_REJECT);
	}
	*code = dest_from_uri(ruri, &hop->dest, err, errlen);
	return (*code != 0 ? DEC_REJECT : DEC_HOP);
}

/* A stateless message waiting for DNS; owns its bytes. */
struct sl_send {
	char		*bytes;
	size_t		 len;
	struct tp_sock	*sock;
};

static void
sl_resolved(void *arg, const struct tp_addr *addrs, unsigned n,
    const char *err)
{
	struct sl_send	*s = arg;
	struct tp_sock	*out;

	if (n > 0 && (out = tp_sock_for(P.tp, &addrs[0], s->sock)) != NULL)
		tp_send(out, &addrs[0], s->bytes, s->len);
	else
		log_info("proxy: stateless message dropped: %s",
		    err ? err : "no socket for the address family");
	free(s->bytes);
	free(s);
}

/* ACK for a 2xx, and other requests we do not keep state for. */
static void
proxy_forward_stateless(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct slice	 routes[MAX_ROUTES];
	unsigned	 nroutes = 0, order[ROUTE_MAX_TARGETS], n, i;
	struct hop	 hop;
	struct route	*r = NULL;
	struct tp_sock	*out;
	char		*strict = NULL, *topvia, *bytes, err[128];
	char		 branch[64];
	uint64_t	 h;
	struct buf	 k;
	size_t		 len;
	int		 code;

	if (m->max_forwards == 0) {
		log_peer("proxy " SLICE_FMT ": ACK with Max-Forwards 0 dropped",
		    SLICE_ARG(m->callid));
		return;
	}
	switch (proxy_decide(m, routes, &nroutes, &strict, &hop, &r, &code,
	    err, sizeof(err))) {
	case DEC_HOP:
		break;
	case DEC_ROUTE:
		n = route_order(r, m->callid, order);
		for (i = 0; i < n; i++)
			if (route_target_usable(&r->targets[order[i]]))
				break;
		if (i == n)
			i = 0;
		hop.dest = r->targets[order[i]].dest;
		if (r->targets[order[i]].parsed.user.len > 0)
			hop.ruri = (struct slice){ r->targets[order[i]].uri,
			    strlen(r->targets[order[i]].uri) };
		break;
	default:
		log_info("proxy " SLICE_FMT ": %s not forwarded: %s",
		    SLICE_ARG(m->callid), sip_method_name(m->method),
		    code == 0 ? "for us" : err);
		free(strict);
		return;
	}
	/* The same branch for every retransmission of this ACK (16.11). */
	buf_init(&k, 256);
	buf_add(&k, m->branch.p, m->branch.len);
	buf_add(&k, m->callid.p, m->callid.len);
	buf_addf(&k, "%u", m->cseq);
	h = hashtab_hash(P.seed, k.p, k.len);
	buf_cleanup(&k);
	snprintf(branch, sizeof(branch), SIP_MAGIC "sl%016llx",
	    (unsigned long long)h);
	out = hop.dest.numeric ? tp_sock_for(P.tp, &hop.dest.addr, sock) :
	    sock;
	if (out == NULL) {
		free(strict);
		return;
	}
	topvia = proxy_make_topvia(m, src);
	bytes = proxy_forward_bytes(m, sock, out, branch, topvia, hop.ruri,
	    routes, nroutes, &len);
	free(topvia);
	free(strict);
	if (hop.dest.numeric) {
		tp_send(out, &hop.dest.addr, bytes, len);
		free(bytes);
	} else {
		struct sl_send	*s = xcalloc(1, sizeof(*s));

		s->bytes = bytes;
		s->len = len;
		s->sock = sock;
		resolver_lookup(hop.dest.host, hop.dest.port, sl_resolved, s);
	}
	log_debug("proxy " SLICE_FMT ": %s forwarded statelessly",
	    SLICE_ARG(m->callid), sip_method_name(m->method));
}

/* A new request (not ACK, not CANCEL): server transaction and branches. */
static void
proxy_request_new(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct slice	 routes[MAX_ROUTES];
	unsigned	 nroutes = 0;
	struct hop	 hop;
	struct route	*r = NULL;
	struct pctx	*ctx;
	struct txn	*st;
	char		*strict = NULL, err[160];
	int		 code;
	enum decision	 d;

	d = proxy_decide(m, routes, &nroutes, &strict, &hop, &r, &code, err,
	    sizeof(err));
	if (d == DEC_FOR_US) {
		reply_new_st(m, sock, src, 200, NULL, ALLOW_HDR
		    "Accept: application/sdp\r\nSupported: \r\n");
		free(strict);
		return;
	}
	if (d == DEC_REJECT) {
		log_info("proxy " SLICE_FMT ": %s rejected code=%d reason=\"%s\" "
		    "cause=%s", SLICE_ARG(m->callid), sip_method_name(m->method),
		    code, err, sip_cause_name(sip_cause(code)));
		reply_new_st(m, sock, src, code, err,
		    code == 405 ? ALLOW_HDR : NULL);
		free(strict);
		return;
	}
	st = txn_server_new(m, sock, src);
	ctx = fork_ctx_new(st, sock, src);
	memcpy(ctx->routes, routes, nroutes * sizeof(*routes));
	ctx->nroutes = nroutes;
	ctx->strict_ruri = strict;	/* the routes may point into it */
	if (m->method == SM_INVITE)
		reply_st(st, ctx->topvia, 100, NULL, NULL);
	if (d == DEC_ROUTE)
		fork_route(ctx, r);
	else {
		fork_start(ctx, hop.ruri, &hop.dest, NULL);
		fork_settle(ctx);	/* the branch may have failed at once */
	}
}

static void
proxy_cancel(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct txn	*ist, *st;
	char		*reason;

	if ((st = txn_match_request(m)) != NULL) {
		txn_server_retransmit(st, m);	/* answered again, not relayed */
		sipmsg_free(m);
		return;
	}
	ist = txn_match_cancel(m);
	if (ist == NULL) {
		log_info("proxy " SLICE_FMT ": CANCEL matches nothing, 481",
		    SLICE_ARG(m->callid));
		reply_new_st(m, sock, src, 481, NULL, NULL);
		return;
	}
	reason = reason_of(m);
	reply_new_st(m, sock, src, 200, NULL, NULL);
	log_info("proxy " SLICE_FMT ": CANCEL for %s",
	    SLICE_ARG(ist->req->callid), ist->id);
	if (ist->owner != NULL)
		fork_cancel(ist->owner, reason);
	free(reason);
}

static void
proxy_request(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct txn	*st;

	P.stats.requests++;
	if (m->method == SM_ACK) {
		st = txn_match_request(m);
		if (st != NULL && st->state != TXN_ACCEPTED)
			txn_server_retransmit(st, m);	/* absorbed */
		else
			proxy_forward_stateless(m, sock, src);
		sipmsg_free(m);
		return;
	}
	if (m->method == SM_CANCEL) {
		proxy_cancel(m, sock, src);
		return;
	}
	if ((st = txn_match_request(m)) != NULL) {
		txn_server_retransmit(st, m);
		sipmsg_free(m);
		return;
	}
	proxy_request_new(m, sock, src);
}

static void
proxy_response(struct sipmsg *m)
{
	struct txn	*ct;

	P.stats.responses++;
	if ((ct = txn_match_response(m)) == NULL) {
		log_debug("proxy " SLICE_FMT ": response %d matches nothing, "
		    "dropped", SLICE_ARG(m->callid), m->status);
		P.stats.dropped++;
	} else
		txn_client_response(ct, m);
	sipmsg_free(m);
}

static bool
blank(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t' &&
		    p[i] != '\0')
			return (false);
	return (true);
}

/* Every datagram comes in here. */
void
proxy_recv(void *arg, struct tp_sock *sock, const struct tp_addr *src,
    const char *data, size_t len)
{
	struct sipmsg	*m;
	char		 err[160], ip[INET6_ADDRSTRLEN];
	int		 rc;

	(void)arg;
	if (blank(data, len))
		return;		/* keep-alive (RFC 5626 CRLF) */
	m = sipmsg_new(data, len);
	if ((rc = sipmsg_parse(m, err, sizeof(err))) != 0) {
		P.stats.parse_errors++;
		src_ip(src, ip, sizeof(ip));
		if (rc > 0 && sipmsg_answerable(m)) {
			log_peer("proxy: bad request from %s:%u code=%d "
			    "reason=\"%s\"", ip, tp_addr_port(src), rc, err);
			reply_stateless(m, sock, src, rc, err, NULL);
		} else
			log_peer("proxy: dropped %zu bytes from %s:%u: %s",
			    len, ip, tp_addr_port(src), err);
		sipmsg_free(m);
		return;
	}
	if (!m->request) {
		proxy_response(m);
		return;
	}
	if (len > P.set.max_message_size)
		rc = 513;
	else
		rc = sipmsg_check_request(m, err, sizeof(err));
	if (rc != 0) {
		char	 extra[256];
		struct slice	 v[8];
		unsigned	 n, i;

		extra[0] = '\0';
		if (rc == 420) {
			n = sipmsg_values(m, SH_PROXY_REQUIRE, v, 8);
			snprintf(extra, sizeof(extra), "Unsupported: ");
			for (i = 0; i < n && i < 8; i++)
				snprintf(extra + strlen(extra),
				    sizeof(extra) - strlen(extra), "%s" SLICE_FMT,
				    i ? ", " : "", SLICE_ARG(v[i]));
			snprintf(extra + strlen(extra),
			    sizeof(extra) - strlen(extra), "\r\n");
		}
		if (rc == 513)
			snprintf(err, sizeof(err), "%s", sip_reason(513));
		log_info("proxy " SLICE_FMT ": rejected code=%d reason=\"%s\" "
		    "cause=%s", SLICE_ARG(m->callid), rc, err,
		    sip_cause_name(sip_cause(rc)));
		if (m->method != SM_ACK)
			reply_stateless(m, sock, src, rc, err,
			    extra[0] ? extra : NULL);
		sipmsg_free(m);
		return;
	}
	proxy_request(m, sock, src);
}
