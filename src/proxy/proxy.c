/*
 * The proxy core's dispatch, RFC 3261 section 16: every datagram comes in
 * here; validate, decide where a request goes, authorize it, and hand it
 * to the REGISTER front door (proxy_register.c) or the forking logic
 * (proxy_fork.c).  Responses go to their client transaction; its up-calls
 * land in proxy_fork.c (proxy_reply.c picks the best).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "gateway.h"
#include "guard.h"
#include "location.h"
#include "log.h"
#include "proxy_int.h"
#include "registrar.h"
#include "sipcause.h"
#include "xmalloc.h"

#define ALLOW_HDR	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, " \
			"UPDATE, INFO, MESSAGE, SUBSCRIBE, NOTIFY, REFER\r\n"

static tp_bad_fn	proxy_recv_bad;
static tp_lost_fn	proxy_lost;
static tp_admit_fn	proxy_admit_conn;

void
proxy_init(struct event_base *base, struct tp *tp, struct proxy_settings *set,
    const struct txn_settings *ts)
{
	proxy_ctx_init(base, tp, set);
	txn_init(base, ts, &proxy_fork_txn_ops);
	dialog_init(base, tp);
	tp_set_handlers(tp, proxy_recv_bad, proxy_lost, proxy_admit_conn);
}

/* Move the settings out of src (left empty) into a counted copy. */
struct proxy_settings *
proxy_settings_take(struct proxy_settings *src)
{
	struct proxy_settings	*s = xmalloc(sizeof(*s));

	*s = *src;
	s->refs = 1;
	memset(src, 0, sizeof(*src));
	return (s);
}

/* Another reference to s (a worker's own); the count is shared. */
struct proxy_settings *
proxy_settings_ref(struct proxy_settings *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return (s);
}

/* New settings for new requests (the reference is taken over). */
void
proxy_set_settings(struct proxy_settings *set)
{
	struct proxy_settings	*old = P.cur;

	P.cur = set;
	proxy_ctx_settings_unref(old);
}

struct proxy_settings *
proxy_settings(void)
{
	return (P.cur);
}

struct find_ist {
	const char	*callid;
	uint32_t	 cseq;
	struct txn	*ist;
};

static void
find_ist(struct txn *t, void *arg)
{
	struct find_ist	*f = arg;

	if (t->kind == TXN_IST && t->cseq == f->cseq &&
	    strcmp(txn_callid(t), f->callid) == 0)
		f->ist = t;
}

/*
 * ospreyctl cancel: cancel a pending INVITE from the outside, exactly as
 * the caller's CANCEL would (t_cancel_callid in Kamailio terms).
 */
int
proxy_cancel_call(const char *callid, uint32_t cseq, char *err, size_t len)
{
	struct find_ist	 f = { callid, cseq, NULL };
	struct pctx	*ctx;

	txn_foreach(find_ist, &f);
	if (f.ist == NULL) {
		snprintf(err, len, "no INVITE transaction with Call-ID %s and "
		    "CSeq %u", callid, cseq);
		return (-1);
	}
	ctx = f.ist->owner;	/* NULL: let go once final */
	if (ctx == NULL || ctx->answered || ctx->final_sent) {
		snprintf(err, len, "the INVITE has its final answer already");
		return (-1);
	}
	if (ctx->cancelled) {
		snprintf(err, len, "the INVITE is being cancelled already");
		return (-1);
	}
	log_notice("proxy %s: cancelled by the operator (%s)", callid,
	    txn_id(f.ist));
	proxy_fork_cancel(ctx,
	    "SIP;cause=487;text=\"Cancelled by the operator\"");
	return (0);
}

/* Graceful stop: new requests get 503 from now on. */
void
proxy_stop_accepting(void)
{
	P.stopping = true;
}

/* Transactions still waiting for a final answer. */
unsigned
proxy_calls_pending(void)
{
	return (P.pending);
}

void
proxy_shutdown(void)
{
	proxy_ctx_drop_lookups();
	dialog_stop();		/* calls still ringing: the stop's records */
	txn_shutdown();
	dialog_shutdown();
	proxy_ctx_settings_unref(P.cur);
	P.cur = NULL;
}

const struct proxy_stats *
proxy_stats(void)
{
	return (&P.stats);
}

static bool
proxy_domain_ours(struct slice host, uint16_t port)
{
	return (proxy_ctx_domain(host, port, NULL));
}

/* Every Reason value of m joined, or NULL. Caller frees. */
static char *
reason_of(const struct sipmsg *m)
{
	struct slice	 v[8];
	unsigned	 n;
	struct buf	 b;

	if ((n = sipmsg_values(m, SH_REASON, v, 8)) == 0)
		return (NULL);
	buf_init(&b, 128);
	buf_add_list(&b, v, n < 8 ? n : 8, ", ");
	return (buf_steal(&b, NULL));
}

/* Do we listen on, and so send over, this transport? */
static bool
proxy_has_proto(enum tp_proto proto)
{
	unsigned	i;

	for (i = 0; i < P.tp->nsocks; i++)
		if (P.tp->socks[i].proto == proto)
			return (true);
	return (false);
}

/*
 * A URI, parsed, that names this proxy itself: host, port and transport.
 * *side (if not NULL) gets its transport and the connection its flow
 * token names (proto TP_UDP: none), as our Record-Route put them there.
 */
static bool
sipuri_is_local(const struct sipuri *u, int *proto_out, struct tp_addr *flow)
{
	struct slice	tr;
	enum tp_proto	proto = TP_UDP;
	struct tp_addr	f;

	memset(&f, 0, sizeof(f));
	if (u->host.len == 0)
		return (false);
	/* A user part: only one of our flow tokens (Record-Route). */
	if (u->user.len > 0 && !proxy_ctx_flow_parse(u->user, &f))
		return (false);
	/* The host first: most URIs asked about are someone else's. */
	if (!proxy_domain_ours(u->host, u->port))
		return (false);
	if (sipuri_param(u, "transport", &tr) &&
	    tp_proto_parse(tr, &proto) == -1)
		return (false);
	if (!proxy_has_proto(proto))
		return (false);
	if (proto_out != NULL)
		*proto_out = (int)proto;
	if (flow != NULL)
		*flow = f;
	return (true);
}

/*
 * Our Record-Route, come back: does it carry the stamp of this dialog?
 * hop->tracked: the stamp of an INVITE whose dialogs the table keeps.
 */
static bool
stamped(const struct sipmsg *m, const struct sipuri *u, struct hop *hop)
{
	struct slice	v, run;
	const char	*end;

	if (!sipuri_param(u, "osp", &v) || v.len != 16)
		return (false);
	/* An INVITE dialog's: its run is beside it (we put it right after). */
	end = u->params.p + u->params.len;
	if (end - (v.p + 16) >= 13 && memcmp(v.p + 16, ";osr=", 5) == 0 &&
	    (end - (v.p + 16) == 13 || v.p[29] == ';'))
		run = (struct slice){ v.p + 21, 8 };
	else if (!sipuri_param(u, "osr", &run))
		run.len = 0;
	if (run.len == 8) {
		if (!proxy_ctx_dialog_stamp_ok(m->callid, run, v))
			return (false);
		hop->tracked = true;
		hop->tracked_old = memcmp(run.p, proxy_ctx_run().p, 8) != 0;
		return (true);
	}
	return (auth_stamp_ok(v, m->callid));
}

/* The run mark (;osr=, 8 hex digits) of one of our Record-Routes. */
static bool
route_run(const struct sipuri *u, struct slice *run)
{
	return (sipuri_param(u, "osr", run) && run->len == 8);
}

/*
 * A local Route entry u below the first one popped (first_run: that
 * one's run mark, len 0 when it had none): part of the same node's
 * Record-Route, so popped too?  This node's own listen address, or this
 * run's mark, always; else the same run as the first, or no run mark at
 * all (a proxy without tracking: as before clusters).  A cluster peer's
 * entry, local only through `domains` and of another run, is the next
 * hop (a transit call: caller -> B -> A -> phone), not ours.
 */
static bool
route_same_node(const struct sipuri *u, struct slice first_run)
{
	struct slice	run;

	if (tp_is_local(P.tp, u->host, u->port) || !route_run(u, &run))
		return (true);
	if (memcmp(run.p, proxy_ctx_run().p, 8) == 0)
		return (true);
	return (first_run.len == 8 && memcmp(run.p, first_run.p, 8) == 0);
}

/*
 * What the last of our own Route entries on top of m says of the side
 * the request goes to (the entry our Record-Route put there for that
 * side; with two entries, RFC 5658, the second): its transport (-1 when
 * m does not start with ours) and, in *flow, the connection its flow
 * token names (proto TP_UDP: none).  proxy_pop_routes() notes it as it
 * pops them; this reads them again after a strict router's R-URI.
 */
static int
proxy_route_side(const struct sipmsg *m, struct tp_addr *flow)
{
	struct slice	 v[MAX_ROUTES];
	struct sipuri	 u;
	struct slice	 first_run;
	struct tp_addr	 f;
	unsigned	 i, n;
	int		 proto = -1, p;

	memset(flow, 0, sizeof(*flow));
	if (sipuri_parse(m->ruri, &u) == -1 || !route_run(&u, &first_run))
		first_run.len = 0;
	n = sipmsg_values(m, SH_ROUTE, v, MAX_ROUTES);
	for (i = 0; i < n && i < MAX_ROUTES; i++) {
		if (sipuri_parse(hdr_uri(v[i]), &u) == -1 ||
		    !sipuri_is_local(&u, &p, &f) ||
		    !route_same_node(&u, first_run))
			break;
		proto = p;
		*flow = f;
	}
	return (proto);
}

/*
 * Route pre-processing (16.4) and the Route set to send (16.6 steps 6-7),
 * into hop: routes/nroutes, ruri and strict (a strict next hop: the last
 * route points into it, owned), the Request-URI parsed (ru_rc) and our
 * side (side_proto, side_flow).  *popped tells whether our own Route was
 * on top, *stamp whether it carried this dialog's stamp.  Each URI is
 * parsed once.  Returns 0, or a status.
 */
static int
proxy_pop_routes(const struct sipmsg *m, struct hop *hop, bool *popped,
    bool *stamp)
{
	struct slice	*routes = hop->routes;
	struct sipuri	 u;
	struct slice	 first_run = { NULL, 0 };
	struct tp_addr	 flow;
	unsigned	 n, i, first = 0;
	int		 proto;
	bool		 strict_ours = false;

	*popped = false;
	*stamp = false;
	hop->tracked = false;
	hop->tracked_old = false;
	hop->ruri = m->ruri;
	hop->ru_rc = 0;
	hop->side_proto = -1;
	memset(&hop->side_flow, 0, sizeof(hop->side_flow));
	n = sipmsg_values(m, SH_ROUTE, routes, MAX_ROUTES);
	if (n > MAX_ROUTES)
		return (400);
	/* A strict router before us put our Record-Route in the R-URI. */
	if (n > 0) {
		hop->ru_rc = sipuri_parse(m->ruri, &hop->ru) == 0 ? 1 : -1;
		if (hop->ru_rc == 1 && sipuri_is_local(&hop->ru, NULL, NULL)) {
			*stamp = stamped(m, &hop->ru, hop);
			if (!route_run(&hop->ru, &first_run))
				first_run.len = 0;
			hop->ruri = hdr_uri(routes[n - 1]);
			hop->ru_rc = 0;
			/* It goes in our request line. */
			if (!sipuri_fits_ruri(hop->ruri))
				return (400);
			n--;
			*popped = true;
			strict_ours = true;
		}
	}
	/*
	 * Ours on top: popped (a cluster peer's address there leads here
	 * now: it failed over), and below it the rest of the same node's
	 * Record-Route (RFC 5658: two entries); the last one names the side
	 * it goes to.
	 */
	while (first < n && sipuri_parse(hdr_uri(routes[first]), &u) == 0 &&
	    sipuri_is_local(&u, &proto, &flow)) {
		if (*popped && !route_same_node(&u, first_run) &&
		    !dialog_route_taken(m, hdr_uri(routes[first])))
			break;
		if (!*popped && !route_run(&u, &first_run))
			first_run.len = 0;
		hop->side_proto = proto;
		hop->side_flow = flow;
		*stamp = stamped(m, &u, hop) || *stamp;
		first++;
		*popped = true;
	}
	if (strict_ours && first == n) {
		/* The R-URI's Route was the last value: read them again. */
		hop->side_proto = proxy_route_side(m, &hop->side_flow);
	}
	if (first > 0) {
		memmove(routes, routes + first, (n - first) * sizeof(*routes));
		n -= first;
	}
	if (n > 0) {
		struct slice	first_uri = hdr_uri(routes[0]);

		if (sipuri_parse(first_uri, &u) == -1)
			return (400);
		if (!sipuri_param(&u, "lr", NULL)) {
			/* Next hop is a strict router: R-URI goes last. */
			struct buf	b;

			/*
			 * The Route URI becomes the Request-URI and the
			 * Request-URI a Route value in < >: a space in one
			 * ("Route: sip: @host", fuzzer) broke the request
			 * line we sent.
			 */
			if (!sipuri_fits_ruri(first_uri) ||
			    !sipuri_printable(hop->ruri))
				return (400);

			buf_init(&b, hop->ruri.len + 3);
			buf_add(&b, "<", 1);
			buf_add(&b, hop->ruri.p, hop->ruri.len);
			buf_add(&b, ">", 1);
			hop->strict = buf_steal(&b, NULL);
			hop->ruri = first_uri;
			hop->ru = u;
			hop->ru_rc = 1;
			memmove(routes, routes + 1, (n - 1) * sizeof(*routes));
			routes[n - 1] = (struct slice){ hop->strict,
			    strlen(hop->strict) };
		}
	}
	hop->nroutes = n;
	for (i = 0; i < n; i++)
		if (routes[i].len == 0)
			return (400);
	return (0);
}

/*
 * proxy_pop_routes() for the unit tests: routes (MAX_ROUTES of them),
 * nroutes, ruri, and *strict_ruri (owned by the caller).
 */
int
proxy_routes(const struct sipmsg *m, struct slice *routes, unsigned *nroutes,
    struct slice *ruri, bool *popped, bool *stamp, char **strict_ruri)
{
	struct hop	hop;
	int		rc;

	hop.strict = NULL;
	hop.nroutes = 0;
	rc = proxy_pop_routes(m, &hop, popped, stamp);
	memcpy(routes, hop.routes, sizeof(hop.routes));
	*nroutes = hop.nroutes;
	*ruri = hop.ruri;
	*strict_ruri = hop.strict;
	return (rc);
}

/* A refusal decided: the status and its reason phrase. */
static enum decision
proxy_decide_reject(struct hop *hop, int code)
{
	hop->code = code;
	snprintf(hop->err, sizeof(hop->err), "%s", sip_reason(code));
	return (hop->d = DEC_REJECT);
}

/*
 * One next hop, u (parsed): DEC_HOP, or DEC_REJECT if it names no
 * destination.  Through our Route entries (side): a flow token there
 * wins (the peer's own connection; 430 when it is gone, RFC 5626 5.3),
 * else a URI without a transport of its own goes over the transport they
 * name (what the request to that side took when the dialog began).
 */
static enum decision
proxy_decide_dest(struct hop *hop, const struct sipuri *u, bool side)
{
	const struct tp_addr	*flow = &hop->side_flow;
	int			 proto, via = side ? hop->side_proto : -1;

	hop->code = dest_from_sipuri(u, &hop->dest, hop->err,
	    sizeof(hop->err));
	if (hop->code != 0)
		return (hop->d = DEC_REJECT);
	if (via >= 0 && flow->len != 0) {
		/* A path token's UDP flow: a NAT's address, no connection. */
		if (flow->proto != TP_UDP && !tp_conn_alive(P.tp, flow)) {
			hop->code = 430;
			snprintf(hop->err, sizeof(hop->err), "Flow Failed");
			return (hop->d = DEC_REJECT);
		}
		hop->dest.numeric = true;
		hop->dest.addr = *flow;
		hop->dest.proto = flow->proto;
		return (hop->d = DEC_HOP);
	}
	if (via >= 0 && hop->dest.proto == -1) {
		hop->dest.proto = via;
		if (hop->dest.numeric)
			hop->dest.addr.proto = (uint8_t)via;
	}
	proto = hop->dest.numeric ? hop->dest.addr.proto : hop->dest.proto;
	if (proto >= 0 && !proxy_has_proto((enum tp_proto)proto)) {
		hop->code = 503;
		snprintf(hop->err, sizeof(hop->err), "Transport %s not "
		    "available", tp_proto_param((enum tp_proto)proto));
		return (hop->d = DEC_REJECT);
	}
	return (hop->d = DEC_HOP);
}

/*
 * Decide where m goes (16.4-16.5), into hop: the Route set to send, and
 * per decision its destination.  Relaying to a foreign domain is judged
 * later, with authentication.  Returns hop->d.
 */
enum decision
proxy_decide(const struct sipmsg *m, struct hop *hop)
{
	struct sipuri	 u;
	bool		 popped, ours, stamp;
	int		 rc;

	hop->code = 0;
	hop->err[0] = '\0';
	hop->nroutes = 0;
	hop->strict = NULL;
	hop->foreign = false;
	hop->dialog = false;
	hop->path = false;
	hop->to_us = false;
	hop->limited = false;
	hop->identity = (struct slice){ NULL, 0 };
	hop->route = NULL;
	hop->user = (struct slice){ NULL, 0 };
	hop->domain = (struct slice){ NULL, 0 };
	hop->dest.numeric = false;
	hop->dest.host[0] = '\0';
	hop->dest.port = 0;
	hop->dest.proto = -1;
	hop->dest.sips = false;
	if ((rc = proxy_pop_routes(m, hop, &popped, &stamp)) != 0) {
		snprintf(hop->err, sizeof(hop->err), "Bad Route header");
		hop->code = rc;
		return (hop->d = DEC_REJECT);
	}
	/* Another node's call for a phone we hold (a path token of ours). */
	hop->path = (hop->side_flow.flags & PROXY_ADDR_PATH) != 0;
	hop->side_flow.flags &= (uint8_t)~PROXY_ADDR_PATH;
	/*
	 * Back through our Record-Route, in a dialog (To tag) and stamped for
	 * this Call-ID; without authentication, popped at all.  A stamp
	 * lifted into a new request (no To tag) is no pass.
	 */
	hop->dialog = popped && (!auth_enabled() || (stamp &&
	    m->to_tag.len > 0));
	if (hop->nroutes > 0) {
		/* A strict next hop is in the R-URI now (16.6 step 7). */
		hop->foreign = !popped;
		if (hop->strict != NULL)
			u = hop->ru;	/* parsed by proxy_pop_routes() */
		else if (sipuri_parse(hdr_uri(hop->routes[0]), &u) == -1)
			u.host.len = 0;
		return (proxy_decide_dest(hop, &u, popped));
	}
	if (hop->ru_rc == 0)
		hop->ru_rc = sipuri_parse(hop->ruri, &hop->ru) == 0 ? 1 : -1;
	if (hop->ru_rc == -1) {
		snprintf(hop->err, sizeof(hop->err), "Bad Request-URI");
		hop->code = 400;
		return (hop->d = DEC_REJECT);
	}
	u = hop->ru;
	ours = proxy_ctx_domain(u.host, u.port, &hop->domain);
	if (popped && !ours) {
		/* In dialog, through our Record-Route: to the R-URI. */
		hop->foreign = !hop->dialog && !hop->path;
		return (proxy_decide_dest(hop, &u, true));
	}
	/* 10.2 wants no user in a REGISTER's R-URI; some send one anyway. */
	if (ours && m->method == SM_REGISTER && registrar_enabled())
		return (hop->d = DEC_REGISTER);
	/*
	 * In a dialog and to the proxy itself with a user part: no dialog
	 * has us for a target (we are no UA), so it must be one in the table
	 * (a UA that ignores our Record-Route, as SIPp's built-in uac does,
	 * is then routed as for that user); proxy_dialog_check() asks.
	 */
	hop->to_us = m->to_tag.len > 0 && u.user.len > 0 &&
	    dialog_enabled() && tp_is_local(P.tp, u.host, u.port);
	if (ours && u.user.len == 0) {
		if (m->method == SM_OPTIONS && m->to_tag.len == 0)
			return (hop->d = DEC_FOR_US);
		return (proxy_decide_reject(hop, m->to_tag.len > 0 ? 481 :
		    405));
	}
	if ((hop->route = (struct route *)route_match(&P.cur->routes,
	    u.user, u.host)) != NULL)
		return (hop->d = DEC_ROUTE);
	if (ours && registrar_enabled()) {
		hop->user = u.user;
		return (hop->d = DEC_LOCATION);
	}
	if (ours)
		return (proxy_decide_reject(hop, 404));
	hop->foreign = true;
	return (proxy_decide_dest(hop, &u, false));
}

/*
 * A request whose nonce-count Redis is checking (registrar.backend
 * redis): its server transaction absorbs retransmissions meanwhile and
 * is found again by its key to go on (proxy_authed()).
 */
struct auth_wait {
	struct tp_addr	 src;
	uint32_t	 serial;
	bool		 mismatch;	/* From is not the authenticated user */
	char		 realm[256];
	size_t		 keylen;
	char		 key[];
};

static void	proxy_authed(void *, enum auth_result);
static void	proxy_request_run(struct sipmsg *, struct tp_sock *,
		    const struct tp_addr *, struct txn *);

static struct auth_wait *
auth_wait_new(const struct sipmsg *m, const struct tp_addr *src,
    struct slice realm)
{
	struct auth_wait	*w;
	struct buf		 k;
	char			 kstore[256];

	buf_init_on(&k, kstore, sizeof(kstore));
	txn_key_server(m, SM_OTHER, &k);
	w = xcalloc(1, sizeof(*w) + k.len + 1);
	memcpy(w->key, k.p, k.len);
	w->keylen = k.len;
	w->src = *src;
	snprintf(w->realm, sizeof(w->realm), SLICE_FMT, SLICE_ARG(realm));
	buf_cleanup(&k);
	return (w);
}

/*
 * Who may send this request on (RFC 3261 22.3; no open relay).  Returns 0
 * to go on, -1 when a challenge went out, -2 when Redis is checking the
 * nonce-count (*wp: proxy_authed() goes on), or the status to refuse with.
 * authed: that check passed already (the From user proved itself).
 */
static int
proxy_authorize(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct hop *hop, bool authed,
    struct auth_wait **wp, char *err, size_t errlen)
{
	const struct sip_hline	*fh;
	struct sipuri		 fu;
	struct slice		 user, realm;
	struct buf		 ch;
	enum auth_result	 res;

	/*
	 * In a dialog and to its remote target (not to a route of ours); or
	 * another node's, to a phone of ours along the route we gave it.
	 */
	if (((hop->dialog || hop->path) && hop->d == DEC_HOP) ||
	    m->method == SM_ACK || m->method == SM_CANCEL)
		return (0);
	if (!auth_enabled()) {
		if (hop->foreign && !P.cur->relay) {
			snprintf(err, errlen, "Relaying Denied");
			return (403);
		}
		return (0);
	}
	if (proxy_ctx_trusted(src))
		return (0);
	fh = sipmsg_hdr(m, SH_FROM);
	if (fh != NULL && sipuri_parse(hdr_uri(sipmsg_hvalue(m, fh)),
	    &fu) == 0 && proxy_ctx_identity(fu.host, &realm)) {
		/* It claims to be one of ours: it must prove it. */
		if (auth_insecure(src)) {
			snprintf(err, errlen, "TLS Required "
			    "(auth.require_tls)");
			return (403);
		}
		if (authed) {
			hop->identity = fu.user;
			return (0);
		}
		if (authredis_here()) {
			/* Redis down: counted here (calls keep working). */
			*wp = auth_wait_new(m, src, realm);
			res = auth_check_async(m, true, realm, true, &user,
			    err, errlen, proxy_authed, *wp);
			if (res != AUTH_PENDING) {
				free(*wp);
				*wp = NULL;
			}
		} else
			res = auth_check(m, true, realm, &user, err, errlen);
		if (res == AUTH_FAIL || res == AUTH_BAD)
			guard_auth_failed(src);
		if (res == AUTH_BAD)
			return (400);
		if (res != AUTH_OK && res != AUTH_PENDING) {
			log_info("proxy " SLICE_FMT ": %s from " SLICE_FMT
			    "@" SLICE_FMT " challenged%s", SLICE_ARG(m->callid),
			    sip_method_name(m->method), SLICE_ARG(fu.user),
			    SLICE_ARG(realm),
			    res == AUTH_STALE ? " (stale nonce)" : "");
			buf_init(&ch, 512);
			auth_challenge(&ch, true, realm, res == AUTH_STALE);
			proxy_reply_challenge(m, sock, src, 407, ch.p);
			buf_cleanup(&ch);
			return (-1);
		}
		if (user.len != fu.user.len || memcmp(user.p, fu.user.p,
		    user.len) != 0) {
			snprintf(err, errlen, "From does not match the "
			    "authenticated user");
			if (res != AUTH_PENDING)
				return (403);
			(*wp)->mismatch = true;
		}
		if (res == AUTH_PENDING)
			return (-2);
		hop->identity = user;
		return (0);
	}
	/* A stranger: only to our users, or along a public route. */
	if (hop->d == DEC_LOCATION || (hop->d == DEC_ROUTE &&
	    hop->route->public) || P.cur->relay)
		return (0);
	snprintf(err, errlen, "Relaying Denied");
	return (403);
}

/* An ACK to a foreign domain: from a trusted source or one of our users. */
static bool
ack_allowed(const struct sipmsg *m, const struct tp_addr *src)
{
	const struct sip_hline	*fh = sipmsg_hdr(m, SH_FROM);
	struct sipuri		 fu;

	if (!auth_enabled())
		return (false);
	if (proxy_ctx_trusted(src))
		return (true);
	return (fh != NULL && sipuri_parse(hdr_uri(sipmsg_hvalue(m, fh)),
	    &fu) == 0 && proxy_ctx_identity(fu.host, NULL));
}

/* A route's first usable target (else its first) for a stateless ACK. */
static void
proxy_route_hop(const struct sipmsg *m, struct hop *hop)
{
	struct route	*r = hop->route;
	unsigned	 order[ROUTE_MAX_TARGETS], n, i;

	n = route_order(r, m->callid, order);
	for (i = 0; i < n; i++)
		if (gw_target_usable(&r->targets[order[i]]))
			break;
	if (i == n)
		i = 0;
	hop->dest = r->targets[order[i]].dest;
	if (r->targets[order[i]].parsed.user.len > 0)
		hop->ruri = (struct slice){ r->targets[order[i]].uri,
		    strlen(r->targets[order[i]].uri) };
}

/*
 * An in-dialog request back through the Record-Route of an INVITE (or a
 * SUBSCRIBE, REFER, NOTIFY) whose dialogs we keep: it must belong to one,
 * and go to its other party (dialog_request()); to that party's flow when
 * it is behind a NAT (its Request-URI, the private Contact, stays).  0,
 * or the status to refuse with.
 */
static int
proxy_dialog_check(const struct sipmsg *m, struct hop *hop, char *err,
    size_t errlen)
{
	struct slice	next;
	struct tp_addr	flow;
	int		code;

	if (hop->to_us)		/* routed as ours, if a dialog has it */
		return (dialog_request(m, (struct slice){ NULL, 0 }, err,
		    errlen));
	if (!hop->tracked || m->to_tag.len == 0 || hop->d != DEC_HOP ||
	    !dialog_enabled())
		return (0);
	/*
	 * A call set up before a restart without dialog.database: its
	 * dialog is not known, so it is let through as before dialogs were.
	 */
	if (hop->tracked_old && !dialog_persistent())
		return (0);
	if (hop->strict != NULL || hop->nroutes == 0)
		next = hop->ruri;	/* a strict next hop is in it */
	else
		next = hdr_uri(hop->routes[0]);
	if ((code = dialog_request_flow(m, next, &flow, err, errlen)) != 0)
		return (code);
	if (flow.len > 0 && hop->nroutes == 0 && hop->strict == NULL) {
		char	a[TP_NAME_LEN];

		tp_addr_str(&flow, a, sizeof(a));
		log_debug("proxy " SLICE_FMT ": %s to the NAT flow %s",
		    SLICE_ARG(m->callid), sip_method_name(m->method), a);
		hop->dest.numeric = true;
		hop->dest.addr = flow;
		hop->dest.proto = flow.proto;
	}
	return (0);
}

static bool	proxy_dialog_wait(struct sipmsg *, struct tp_sock *,
		    const struct tp_addr *, struct hop *);

/* ACK for a 2xx, and other requests we do not keep state for. */
static void
proxy_forward_stateless(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct hop	 hop;
	struct tp_sock	*out;
	char		*bytes, branch[64], kstore[256], tvstore[256];
	uint64_t	 h;
	struct buf	 k, tv;
	size_t		 len;
	int		 code;

	if (m->max_forwards == 0) {
		log_peer("proxy " SLICE_FMT ": ACK with Max-Forwards 0 dropped",
		    SLICE_ARG(m->callid));
		return;
	}
	proxy_decide(m, &hop);
	if ((code = proxy_dialog_check(m, &hop, hop.err,
	    sizeof(hop.err))) != 0) {
		/* Another node's dialog: asked of Redis, the ACK waits. */
		if (code == 481 && m->method == SM_ACK &&
		    proxy_dialog_wait((struct sipmsg *)m, sock, src, &hop))
			return;
		log_info("proxy " SLICE_FMT ": ACK not forwarded: %s",
		    SLICE_ARG(m->callid), hop.err);
		goto done;
	}
	switch (hop.d) {
	case DEC_HOP:
		if (hop.foreign && !P.cur->relay && !ack_allowed(m, src)) {
			log_info("proxy " SLICE_FMT ": ACK to a foreign domain "
			    "not forwarded (no relay)", SLICE_ARG(m->callid));
			goto done;
		}
		break;
	case DEC_ROUTE:
		proxy_route_hop(m, &hop);
		break;
	default:
		log_info("proxy " SLICE_FMT ": %s not forwarded: %s",
		    SLICE_ARG(m->callid), sip_method_name(m->method),
		    hop.code == 0 ? "for us" : hop.err);
		goto done;
	}
	/* The same branch for every retransmission of this ACK (16.11). */
	buf_init_on(&k, kstore, sizeof(kstore));
	buf_add(&k, m->branch.p, m->branch.len);
	buf_add(&k, m->callid.p, m->callid.len);
	buf_addu(&k, m->cseq);
	h = hashtab_hash(P.seed, k.p, k.len);
	buf_cleanup(&k);
	memcpy(branch, SIP_MAGIC "sl", SIP_MAGIC_LEN + 2);
	fmt_hex64(branch + SIP_MAGIC_LEN + 2, h);
	out = hop.dest.numeric ? tp_sock_for(P.tp, &hop.dest.addr, sock) :
	    sock;
	if (out == NULL)
		goto done;
	buf_init_on(&tv, tvstore, sizeof(tvstore));
	proxy_ctx_topvia_buf(m, src, &tv);
	bytes = proxy_fork_bytes(m, sock, out, src, hop.dest.numeric ?
	    &hop.dest.addr : NULL, branch, tv.p, hop.ruri, hop.routes,
	    hop.nroutes, &len);
	buf_cleanup(&tv);
	proxy_ctx_send(out, &hop.dest, bytes, len);
	log_debug("proxy " SLICE_FMT ": %s forwarded statelessly",
	    SLICE_ARG(m->callid), sip_method_name(m->method));
done:
	free(hop.strict);
}

/*
 * The gates before any decision: stopping, the transaction limit, the
 * call rate.  false when m was refused (503, statelessly).
 */
static bool
proxy_admit(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	if (P.stopping && m->to_tag.len == 0) {
		/* Stopping: in-dialog requests still pass, new ones go away. */
		log_info("proxy " SLICE_FMT ": %s refused, stopping",
		    SLICE_ARG(m->callid), sip_method_name(m->method));
		proxy_reply_stateless(m, sock, src, 503, "Shutting Down",
		    "Retry-After: 10\r\n");
		return (false);
	}
	if (txn_open_all() >= P.cur->max_transactions ||
	    (P.cur->max_transaction_memory > 0 &&
	    txn_bytes_all() >= P.cur->max_transaction_memory)) {
		/* Full: no memory grows, the caller is told to come back. */
		log_peer("proxy " SLICE_FMT ": %s refused, %u transactions "
		    "in progress, %zu bytes held (security.max_transactions, "
		    "max_transaction_memory)", SLICE_ARG(m->callid),
		    sip_method_name(m->method), txn_open_all(), txn_bytes_all());
		P.stats.overloaded++;
		proxy_reply_stateless(m, sock, src, 503,
		    "Too Many Transactions", "Retry-After: 5\r\n");
		return (false);
	}
	if (m->method == SM_INVITE && m->to_tag.len == 0 &&
	    !guard_call_allowed(src)) {
		log_peer("proxy " SLICE_FMT ": INVITE refused, over "
		    "security.call_rate", SLICE_ARG(m->callid));
		proxy_reply_stateless(m, sock, src, 503, "Call Rate Limit",
		    "Retry-After: 1\r\n");
		return (false);
	}
	return (true);
}

/*
 * OPTIONS for the proxy itself.  Allow, Accept and Supported only to
 * sources we know: to anyone else the answer stays about the size of the
 * question (no amplification for a spoofed source).
 */
static void
proxy_answer_options(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	proxy_reply_new_st(m, sock, src, 200, NULL, guard_known(src) ?
	    ALLOW_HDR "Accept: application/sdp\r\nSupported: \r\n" : NULL);
}

/*
 * A user of ours: the bindings of the location service, or NULL with the
 * status in hop (480 if we know the user, else 404).
 */
static struct aor *
proxy_lookup(struct hop *hop)
{
	struct aor	*a = NULL;
	char		 aor[REG_AOR_LEN];

	if (registrar_aor(hop->user, hop->domain, aor, sizeof(aor)) == 0)
		a = location_find((struct slice){ aor, strlen(aor) });
	if (a == NULL)
		proxy_decide_reject(hop, auth_enabled() &&
		    auth_user_exists(hop->user, hop->domain) ? 480 : 404);
	return (a);
}

/*
 * Refused (sent once, no transaction: nothing to amplify, Timer G), or
 * by st when one holds m already (it waited for Redis).
 */
static void
proxy_reject(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, const struct hop *hop, struct txn *st)
{
	log_info("proxy " SLICE_FMT ": %s rejected code=%d reason=\"%s\" "
	    "cause=%s", SLICE_ARG(m->callid), sip_method_name(m->method),
	    hop->code, hop->err, sip_cause_name(sip_cause(hop->code)));
	if (st != NULL) {
		struct buf	tv;
		char		tvstore[256];

		buf_init_on(&tv, tvstore, sizeof(tvstore));
		proxy_ctx_topvia_buf(m, src, &tv);
		proxy_reply_st(st, tv.p, hop->code, hop->err, hop->limited ?
		    "Retry-After: 30\r\n" : NULL);
		buf_cleanup(&tv);
	} else
		proxy_reply_stateless(m, sock, src, hop->code, hop->err,
		    hop->code == 405 ? ALLOW_HDR : hop->limited ?
		    "Retry-After: 30\r\n" : NULL);
	/*
	 * A call attempt that failed here: its record too (another node's,
	 * through our path token: that node records the answer it gets).
	 */
	if (m->method == SM_INVITE && m->to_tag.len == 0 && dialog_enabled() &&
	    !hop->path)
		dialog_refused(m, src, hop->identity, hop->code);
	if (st == NULL)
		sipmsg_free(m);
	free(hop->strict);
}

/* Accepted: the server transaction, 100 Trying, and the branches. */
static void
proxy_forward(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct hop *hop, const struct aor *a,
    struct dialog_call *call, struct txn *st)
{
	struct pctx	*ctx;

	if (st == NULL)
		st = txn_server_new(m, sock, src);
	ctx = proxy_fork_new(st, sock, src);
	ctx->call = call;
	if (hop->nroutes > 0) {	/* most requests have none */
		ctx->routes = xcalloc(hop->nroutes, sizeof(*ctx->routes));
		memcpy(ctx->routes, hop->routes,
		    hop->nroutes * sizeof(*hop->routes));
	}
	ctx->nroutes = hop->nroutes;
	ctx->strict_ruri = hop->strict;	/* the routes may point into it */
	hop->strict = NULL;
	if (m->method == SM_INVITE)
		proxy_reply_st(st, ctx->topvia, 100, NULL, NULL);
	if (hop->d == DEC_LOCATION)
		proxy_fork_location_copy(ctx, a);
	m = (struct sipmsg *)txn_server_request(st);	/* st owns it */
	if (m != NULL && proxy_media_wanted(m, src, ctx)) {
		/* The branches start when rtpengine answered the offer. */
		proxy_media_offer(ctx, m, src, hop, proxy_fork_resume);
		return;
	}
	if (hop->d == DEC_ROUTE)
		proxy_fork_route(ctx, hop->route);
	else if (hop->d == DEC_LOCATION)
		proxy_fork_location_start(ctx);
	else
		proxy_fork_hop(ctx, hop->ruri, &hop->dest);
}

/*
 * An INVITE we record-route out of dialog: the call its dialogs come
 * from, once the concurrent-call limits let it through (else NULL, and
 * hop is a refusal).  A SUBSCRIBE, REFER or NOTIFY out of dialog: the
 * subscription its 2xx (or a NOTIFY) makes, checked as calls are.
 */
static struct dialog_call *
proxy_dialog_call(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct hop *hop)
{
	struct slice	 user = hop->identity;
	struct sipuri	 fu;
	char		 st[17];
	int		 code;

	if (m->to_tag.len > 0 || !P.cur->record_route || !dialog_enabled())
		return (NULL);
	if (hop->path && (m->method == SM_INVITE || m->method ==
	    SM_SUBSCRIBE || m->method == SM_REFER || m->method == SM_NOTIFY)) {
		/* Another node's, through our path token: its record. */
		proxy_ctx_dialog_stamp(m->callid, proxy_ctx_run(), st);
		return (dialog_transit_new(m, src, sock, st));
	}
	if (m->method == SM_SUBSCRIBE || m->method == SM_REFER ||
	    m->method == SM_NOTIFY) {
		/* A subscription's: checked as a call's, no limits. */
		proxy_ctx_dialog_stamp(m->callid, proxy_ctx_run(), st);
		return (dialog_call_new(m, src, sock, (struct slice){ "", 0 },
		    hop->identity, st));
	}
	if (m->method != SM_INVITE)
		return (NULL);
	if (user.len == 0 && dialog_limits_users() &&
	    sipmsg_hdr(m, SH_FROM) != NULL &&
	    sipuri_parse(hdr_uri(sipmsg_hvalue(m, sipmsg_hdr(m, SH_FROM))),
	    &fu) == 0)
		user = fu.user;	/* no authentication: the From user */
	if ((code = dialog_call_admit(user, src, hop->err,
	    sizeof(hop->err))) != 0) {
		hop->d = DEC_REJECT;
		hop->code = code;
		hop->limited = code == 503;	/* Retry-After */
		return (NULL);
	}
	proxy_ctx_dialog_stamp(m->callid, proxy_ctx_run(), st);
	return (dialog_call_new(m, src, sock, user, hop->identity, st));
}

static void	proxy_request_new(struct sipmsg *, struct tp_sock *,
		    const struct tp_addr *);

/*
 * dialog.backend "redis": an in-dialog request of a dialog another node
 * made waits while Redis is asked for it (dialog_fetch()), its server
 * transaction absorbing retransmissions (found again by its key); then it
 * is taken again from the start, its dialog adopted or a 481 for good.
 * Redis failed or too slow: 500 + Retry-After (RFC 5057: the dialog is
 * not said gone, as a 481 would).  An ACK (no transaction) waits itself.
 */
struct dlg_wait {
	struct tp_addr	 src;
	struct sipmsg	*ack;		/* an ACK's own copy; else NULL */
	struct tp_sock	*sock;		/* a listener: lives as long as we */
	uint32_t	 serial;	/* the transaction's */
	size_t		 keylen;
	char		 key[];
};

static _Thread_local bool	dlg_refetched;	/* no second fetch */

#define DLG_RETRY_AFTER	"Retry-After: 5\r\n"

static void	proxy_forward_ack(struct sipmsg *, struct tp_sock *,
		    const struct tp_addr *);

static void
proxy_dialog_fetched(void *arg, enum dialog_fetch_result res)
{
	struct dlg_wait	*w = arg;
	struct txn	*st;
	struct sipmsg	*m;

	if (w->keylen == SIZE_MAX) {	/* an ACK that could not be kept */
		free(w);
		return;
	}
	if (w->ack != NULL) {
		if (res == DLG_FETCH_DONE) {
			dlg_refetched = true;
			proxy_forward_ack(w->ack, w->sock, &w->src);
			dlg_refetched = false;
		} else
			log_info("proxy " SLICE_FMT ": ACK dropped, redis did "
			    "not say whether it has its dialog",
			    SLICE_ARG(w->ack->callid));
		sipmsg_free(w->ack);
		free(w);
		return;
	}
	st = txn_find(w->key, w->keylen);
	if (st == NULL || st->rec || st->serial != w->serial ||
	    st->owner != NULL || (st->state != TXN_TRYING &&
	    st->state != TXN_PROCEEDING) ||
	    (m = (struct sipmsg *)txn_server_request(st)) == NULL) {
		log_info("proxy txn-%u: a request waiting for its dialog is "
		    "gone", w->serial);
		free(w);
		return;
	}
	if (res == DLG_FETCH_DONE) {
		dlg_refetched = true;
		proxy_request_run(m, st->sock, &w->src, st);
		dlg_refetched = false;
	} else if (res == DLG_FETCH_FAILED) {
		log_info("proxy " SLICE_FMT ": %s answered 500, redis did not "
		    "say whether it has its dialog", SLICE_ARG(m->callid),
		    sip_method_name(m->method));
		proxy_reply_st_to(st, m, &w->src, 500, NULL,
		    DLG_RETRY_AFTER);
	}
	free(w);
}

/*
 * A request of no dialog here (its check said 481): true when it waits
 * for Redis (or was answered or dropped here), false when the 481 stands.
 */
static bool
proxy_dialog_wait(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct hop *hop)
{
	struct dlg_wait	*w;
	struct txn	*st;
	struct buf	 k;
	char		 kstore[256];
	int		 rc;

	if (dlg_refetched)
		return (false);
	buf_init_on(&k, kstore, sizeof(kstore));
	if (m->method != SM_ACK)
		txn_key_server(m, SM_OTHER, &k);
	w = xcalloc(1, sizeof(*w) + k.len + 1);
	memcpy(w->key, k.p, k.len);
	w->keylen = k.len;
	buf_cleanup(&k);
	w->sock = sock;
	w->src = *src;
	rc = dialog_fetch(m, proxy_dialog_fetched, w);
	if (rc == -1) {
		free(w);
		return (false);
	}
	free(hop->strict);
	hop->strict = NULL;
	if (rc == 0 && m->method == SM_ACK) {
		/* Its own copy: the caller frees m. */
		w->ack = sipmsg_new(m->buf, m->len);
		if (sipmsg_parse(w->ack, hop->err, sizeof(hop->err)) != 0) {
			/* Not asked again: dropped when Redis answers. */
			log_warnx("proxy " SLICE_FMT ": ACK does not parse "
			    "again: %s", SLICE_ARG(m->callid), hop->err);
			sipmsg_free(w->ack);
			w->ack = NULL;
			w->keylen = SIZE_MAX;
		}
		return (true);
	}
	if (rc == 0) {
		st = txn_server_new(m, sock, src);	/* st owns m */
		w->serial = st->serial;
		if (m->method == SM_INVITE)
			proxy_reply_st_to(st, m, src, 100, NULL, NULL);
		return (true);
	}
	free(w);
	if (m->method == SM_ACK) {
		log_info("proxy " SLICE_FMT ": ACK dropped, %s",
		    SLICE_ARG(m->callid), rc == 1 ? "its dialog is asked of "
		    "redis already" : "redis is down");
		return (true);
	}
	if (rc == 1) {
		log_info("proxy " SLICE_FMT ": %s dropped, too many wait for "
		    "its dialog from redis", SLICE_ARG(m->callid),
		    sip_method_name(m->method));
		sipmsg_free(m);
		return (true);
	}
	log_info("proxy " SLICE_FMT ": %s answered 500, redis is down",
	    SLICE_ARG(m->callid), sip_method_name(m->method));
	proxy_reply_new_st(m, sock, src, 500, NULL, DLG_RETRY_AFTER);
	return (true);
}

/*
 * A new request (not ACK, not CANCEL): admit, decide, authorize, forward.
 * st: its server transaction, made while Redis checked its credentials'
 * nonce-count (they passed); m is st's and decided again.
 */
static void
proxy_request_run(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct txn *st)
{
	struct hop	 hop;
	struct aor	*a = NULL;
	struct dialog_call *call = NULL;
	struct auth_wait *w = NULL;
	bool		 locked = false;
	int		 code;

	if (st == NULL && !proxy_admit(m, sock, src)) {
		sipmsg_free(m);
		return;
	}
	proxy_decide(m, &hop);
	if (hop.d != DEC_FOR_US && hop.d != DEC_REJECT &&
	    m->max_forwards == 0)	/* 16.3 step 3: only OPTIONS for us */
		proxy_decide_reject(&hop, 483);
	else if ((code = proxy_dialog_check(m, &hop, hop.err,
	    sizeof(hop.err))) != 0) {
		if (code == 481 && st == NULL &&
		    proxy_dialog_wait(m, sock, src, &hop))
			return;
		hop.d = DEC_REJECT;
		hop.code = code;
	}
	switch (hop.d) {
	case DEC_FOR_US:
		free(hop.strict);
		proxy_answer_options(m, sock, src);
		return;
	case DEC_REGISTER:
		free(hop.strict);
		proxy_register_request(m, sock, src);
		return;
	case DEC_REJECT:
		proxy_reject(m, sock, src, &hop, st);
		return;
	default:
		break;
	}
	/* st made for a dialog asked of Redis: not authenticated yet. */
	code = proxy_authorize(m, sock, src, &hop, st != NULL &&
	    !dlg_refetched, &w, hop.err, sizeof(hop.err));
	if (code == -2) {	/* proxy_authed() goes on */
		free(hop.strict);
		w->serial = (st != NULL ? st : txn_server_new(m, sock,
		    src))->serial;
		return;
	}
	if (code == -1) {	/* challenged, statelessly */
		free(hop.strict);
		if (st != NULL)	/* its retransmission is challenged too */
			txn_enter(st, TXN_TERMINATED);
		else
			sipmsg_free(m);
		return;
	}
	if (code != 0) {
		hop.d = DEC_REJECT;
		hop.code = code;
	} else if (hop.d == DEC_LOCATION) {
		location_read_lock();	/* until its contacts are copied */
		locked = true;
		a = proxy_lookup(&hop);
	}
	if (hop.d != DEC_REJECT)
		call = proxy_dialog_call(m, sock, src, &hop);
	if (hop.d == DEC_REJECT)
		proxy_reject(m, sock, src, &hop, st);
	else
		proxy_forward(m, sock, src, &hop, a, call, st);
	if (locked)
		location_unlock();
}

static void
proxy_request_new(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	proxy_request_run(m, sock, src, NULL);
}

/* Redis answered for the nonce-count of a request we challenge. */
static void
proxy_authed(void *arg, enum auth_result res)
{
	struct auth_wait	*w = arg;
	struct tp_addr		 src = w->src;
	struct txn		*st = txn_find(w->key, w->keylen);
	struct sipmsg		*m;
	struct buf		 ch, tv;
	char			 tvstore[256];
	struct hop		 hop;

	if (st == NULL || st->rec || st->serial != w->serial ||
	    st->owner != NULL || (st->state != TXN_TRYING &&
	    st->state != TXN_PROCEEDING) ||
	    (m = (struct sipmsg *)txn_server_request(st)) == NULL) {
		log_info("proxy: a request authenticated is gone");
		free(w);
		return;
	}
	if (res == AUTH_OK && !w->mismatch) {
		free(w);
		proxy_request_run(m, st->sock, &src, st);
		return;
	}
	if (res == AUTH_OK) {
		memset(&hop, 0, sizeof(hop));
		hop.code = 403;
		snprintf(hop.err, sizeof(hop.err), "From does not match the "
		    "authenticated user");
		proxy_reject(m, st->sock, &src, &hop, st);
		free(w);
		return;
	}
	if (res == AUTH_UNAVAILABLE) {	/* stopping: not counted */
		buf_init_on(&tv, tvstore, sizeof(tvstore));
		proxy_ctx_topvia_buf(m, &src, &tv);
		proxy_reply_st(st, tv.p, 503, "Shutting Down",
		    "Retry-After: 10\r\n");
		buf_cleanup(&tv);
		free(w);
		return;
	}
	/* A replay or a stale nonce: as auth_check() has it. */
	if (res == AUTH_FAIL)
		guard_auth_failed(&src);
	log_info("proxy " SLICE_FMT ": %s challenged%s", SLICE_ARG(m->callid),
	    sip_method_name(m->method), res == AUTH_STALE ? " (stale nonce)" :
	    res == AUTH_FAIL ? ": nonce-count replayed" : "");
	buf_init(&ch, 512);
	auth_challenge(&ch, true, (struct slice){ w->realm,
	    strlen(w->realm) }, res == AUTH_STALE);
	buf_init_on(&tv, tvstore, sizeof(tvstore));
	proxy_ctx_topvia_buf(m, &src, &tv);
	proxy_reply_st(st, tv.p, 407, NULL, ch.p);
	buf_cleanup(&tv);
	buf_cleanup(&ch);
	free(w);
}

/* Redis said whether it has the INVITE a CANCEL waited for. */
static void
proxy_dialog_cancelled(void *arg, int code)
{
	struct dlg_wait	*w = arg;
	struct txn	*st;
	struct sipmsg	*m;

	st = txn_find(w->key, w->keylen);
	if (code != 0 && st != NULL && !st->rec && st->serial == w->serial &&
	    st->state == TXN_TRYING &&
	    (m = (struct sipmsg *)txn_server_request(st)) != NULL) {
		log_info("proxy " SLICE_FMT ": CANCEL of another node's "
		    "INVITE answered code=%d", SLICE_ARG(m->callid), code);
		proxy_reply_st_to(st, m, &w->src, code, NULL, code == 500 ?
		    DLG_RETRY_AFTER : NULL);
	}
	free(w);
}

/*
 * A CANCEL of no INVITE here (dialog.backend "redis"): the INVITE may be
 * another node's that rang; its server transaction waits for Redis.
 * false: not asked (481).
 */
static bool
proxy_dialog_cancel(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct dlg_wait	*w;
	struct buf	 k;
	char		 kstore[256], *reason;
	int		 rc;

	buf_init_on(&k, kstore, sizeof(kstore));
	txn_key_server(m, SM_OTHER, &k);
	w = xcalloc(1, sizeof(*w) + k.len + 1);
	memcpy(w->key, k.p, k.len);
	w->keylen = k.len;
	buf_cleanup(&k);
	w->src = *src;
	reason = reason_of(m);
	rc = dialog_cancel(m, reason, proxy_dialog_cancelled, w);
	free(reason);
	if (rc == -1) {
		free(w);
		return (false);
	}
	if (rc == 0) {
		w->serial = txn_server_new(m, sock, src)->serial;
		return (true);
	}
	free(w);
	if (rc == 1)
		proxy_reply_new_st(m, sock, src, 200, NULL, NULL);
	else {
		log_info("proxy " SLICE_FMT ": CANCEL answered 500, redis is "
		    "down", SLICE_ARG(m->callid));
		proxy_reply_new_st(m, sock, src, 500, NULL, DLG_RETRY_AFTER);
	}
	return (true);
}

/* An ACK for a 2xx (a relayed call's SDP through rtpengine first). */
static void
proxy_forward_ack(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	if (!proxy_media_ack(m, sock, src, proxy_forward_stateless))
		proxy_forward_stateless(m, sock, src);
}

static void
proxy_cancel(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	const struct sipmsg *inv;
	struct txn	*ist, *st;
	char		*reason;

	if ((st = txn_match_request(m)) != NULL) {
		txn_server_retransmit(st, m);	/* answered again, not sent */
		sipmsg_free(m);
		return;
	}
	ist = txn_match_cancel(m);
	if (ist == NULL && dialog_shared() && proxy_dialog_cancel(m, sock,
	    src))
		return;
	if (ist == NULL) {
		log_info("proxy " SLICE_FMT ": CANCEL matches nothing, 481",
		    SLICE_ARG(m->callid));
		proxy_reply_new_st(m, sock, src, 481, NULL, NULL);
		return;
	}
	reason = reason_of(m);
	proxy_reply_new_st(m, sock, src, 200, NULL, NULL);
	log_info("proxy %s: CANCEL for %s", txn_callid(ist), txn_id(ist));
	if (ist->owner != NULL)
		proxy_fork_cancel(ist->owner, reason);
	else if (ist->state == TXN_PROCEEDING && !ist->rec &&
	    (inv = txn_server_request(ist)) != NULL) {
		/* Its nonce-count still in Redis (proxy_authed()): 487 now. */
		struct buf	tv;
		char		tvstore[256];

		buf_init_on(&tv, tvstore, sizeof(tvstore));
		proxy_ctx_topvia_buf(inv, src, &tv);
		proxy_reply_st(ist, tv.p, 487, NULL, NULL);
		buf_cleanup(&tv);
	}
	free(reason);
}

static void
proxy_request(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct txn	*st;

	P.stats.requests_in[m->method]++;
	if (m->method == SM_ACK) {
		st = txn_match_request(m);
		if (st != NULL && st->state != TXN_ACCEPTED)
			txn_server_retransmit(st, m);	/* absorbed */
		else if (st == NULL && proxy_ctx_sl_tag_ours(m->to_tag))
			log_debug("proxy " SLICE_FMT ": ACK for a stateless "
			    "reply absorbed", SLICE_ARG(m->callid));
		else if (st == NULL && dialog_invite_ack(m))
			log_debug("proxy " SLICE_FMT ": ACK for the failure "
			    "of another node's INVITE absorbed",
			    SLICE_ARG(m->callid));
		else
			proxy_forward_ack(m, sock, src);
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
proxy_response(struct sipmsg *m, struct tp_sock *sock)
{
	struct txn	*ct;

	P.stats.responses_in[m->status]++;
	if ((ct = txn_match_response(m)) != NULL)
		txn_client_response(ct, m);
	else if (proxy_media_stray(m, sock))
		;	/* a relayed call's 2xx, again: rtpengine's SDP */
	else if (!proxy_reply_stray(m, sock)) {
		log_debug("proxy " SLICE_FMT ": response %d matches nothing, "
		    "dropped", SLICE_ARG(m->callid), m->status);
		P.stats.dropped++;
	}
	sipmsg_free(m);
}

static bool
blank(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' &&
		    p[i] != '\t' && p[i] != '\0')
			return (false);
	return (true);
}

/*
 * A stream message the framer refused (RFC 3261 18.3): answered from its
 * header section when that holds enough to answer; the connection closes.
 */
static void
proxy_recv_bad(void *arg, struct tp_sock *sock, const struct tp_addr *src,
    const char *head, size_t len, int status, const char *reason)
{
	struct sipmsg	*m;
	char		 err[160];

	(void)arg;
	P.stats.parse_errors++;
	m = sipmsg_new(head, len);
	(void)sipmsg_parse(m, err, sizeof(err));
	if (m->request && m->method != SM_ACK && sipmsg_answerable(m))
		proxy_reply_stateless(m, sock, src, status, reason, NULL);
	sipmsg_free(m);
}

/* A banned source opens no connection (the guard counts nothing here). */
static bool
proxy_admit_conn(void *arg, const struct tp_addr *peer)
{
	(void)arg;
	return (guard_allow(peer, false));
}

/* A connection went: the transactions on it fail over (17.1.4). */
static void
proxy_lost(void *arg, const struct tp_addr *peer)
{
	(void)arg;
	txn_transport_lost(peer);
}

/* Every datagram and every stream message comes in here. */
void
proxy_recv(void *arg, struct tp_sock *sock, const struct tp_addr *src,
    const char *data, size_t len)
{
	struct sipmsg	*m;
	const struct sip_hline *uah;
	char		 err[160], ip[INET6_ADDRSTRLEN];
	int		 rc;

	(void)arg;
	if (!guard_allow(src, len < 8 || memcmp(data, "SIP/2.0 ", 8) != 0)) {
		if (src->proto != TP_UDP)	/* and its connection goes */
			tp_conn_close(P.tp, src, "source banned");
		return;		/* banned: dropped unread */
	}
	if (blank(data, len))
		return;		/* keep-alive (RFC 5626 CRLF) */
	m = sipmsg_new(data, len);
	if ((rc = sipmsg_parse(m, err, sizeof(err))) != 0) {
		P.stats.parse_errors++;
		tp_addr_ip(src, ip, sizeof(ip));
		if (rc > 0 && sipmsg_answerable(m)) {
			log_peer("proxy: bad request from %s:%u code=%d "
			    "reason=\"%s\"", ip, tp_addr_port(src), rc, err);
			proxy_reply_stateless(m, sock, src, rc, err, NULL);
		} else
			log_peer("proxy: dropped %zu bytes from %s:%u: %s",
			    len, ip, tp_addr_port(src), err);
		sipmsg_free(m);
		return;
	}
	if (!m->request) {
		proxy_response(m, sock);
		return;
	}
	if ((uah = sipmsg_hdr(m, SH_USER_AGENT)) != NULL &&
	    guard_scanner(sipmsg_hvalue(m, uah))) {
		tp_addr_ip(src, ip, sizeof(ip));
		log_peer("proxy: scanner from %s:%u dropped (User-Agent "
		    "\"" SLICE_FMT "\")", ip, tp_addr_port(src),
		    SLICE_ARG(sipmsg_hvalue(m, uah)));
		sipmsg_free(m);
		return;
	}
	if (len > P.cur->max_message_size)
		rc = 513;
	else
		rc = sipmsg_check_request(m, err, sizeof(err));
	if (rc != 0) {
		struct buf	extra;

		buf_init(&extra, 128);
		if (rc == 420)
			sipbuild_unsupported(m, &extra);
		P.stats.rejected++;
		if (rc == 513)
			snprintf(err, sizeof(err), "%s", sip_reason(513));
		log_info("proxy " SLICE_FMT ": rejected code=%d reason=\"%s\" "
		    "cause=%s", SLICE_ARG(m->callid), rc, err,
		    sip_cause_name(sip_cause(rc)));
		if (m->method != SM_ACK)
			proxy_reply_stateless(m, sock, src, rc, err,
			    extra.len > 0 ? extra.p : NULL);
		buf_cleanup(&extra);
		sipmsg_free(m);
		return;
	}
	proxy_request(m, sock, src);
}
