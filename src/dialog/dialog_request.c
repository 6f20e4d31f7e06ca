/*
 * Requests in a dialog (RFC 3261 12.2) that came back through our
 * Record-Route: is there such a dialog, is the next hop its party's, a
 * target refresh, a BYE that ends it; and where to send it when that
 * party is behind a NAT.
 */
#include "config.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dialog.h"
#include "dialog_int.h"
#include "dialog_redis.h"
#include "log.h"
#include "txn.h"

/* d, and whether m comes from its caller; NULL: no dialog. */
static struct dialog *
dialog_of(const struct sipmsg *m, bool *from_caller)
{
	struct dialog	*d;

	if ((d = dialog_find(m->callid, m->from_tag, m->to_tag)) != NULL) {
		*from_caller = true;
		return (d);
	}
	if ((d = dialog_find(m->callid, m->to_tag, m->from_tag)) != NULL) {
		*from_caller = false;
		return (d);
	}
	return (NULL);
}

/* 10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, fc00::/7, fe80::/10 */
static bool
addr_private(const struct tp_addr *a)
{
	const uint8_t	*p;

	if (a->ss.ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)
		    &a->ss)->sin_addr;
		return (p[0] == 10 || (p[0] == 172 && (p[1] & 0xf0) == 16) ||
		    (p[0] == 192 && p[1] == 168) ||
		    (p[0] == 100 && (p[1] & 0xc0) == 64) ||
		    (p[0] == 169 && p[1] == 254));
	}
	if (a->ss.ss_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)
		    &a->ss)->sin6_addr;
		return ((p[0] & 0xfe) == 0xfc || (p[0] == 0xfe &&
		    (p[1] & 0xc0) == 0x80));
	}
	return (false);
}

/*
 * A party behind a NAT over UDP, reached with no proxy between (its route
 * set is empty): its remote target names a private address and its
 * messages came from a public one (a phone on the same private network
 * as the proxy is reached as it says).  Its requests then go to that
 * flow (the Request-URI stays).  Not the registrar's wider test (another
 * port of the same address): a re-INVITE may move a target on purpose.
 */
static bool
dialog_nated(struct slice target, struct slice routes,
    const struct txn_addr *ta, struct tp_addr *flow)
{
	struct sipuri	 u;
	struct tp_addr	 t;

	if (routes.len > 0)
		return (false);
	txn_addr_get(ta, flow);
	if (flow->len == 0 || flow->proto != TP_UDP ||
	    sipuri_parse(target, &u) != 0 ||
	    tp_addr_set(&t, u.host, u.port ? u.port : 5060) == -1)
		return (false);
	return (addr_private(&t) && !addr_private(flow));
}

/*
 * An in-dialog request (To tag) that came back through our Record-Route
 * of an INVITE dialog, whose next hop is next (its first Route after
 * ours, else its Request-URI; next.p NULL when it is addressed to us and
 * routed as for its user: no target to check).  0: on it goes (and the
 * dialog took note: CSeq, a new target, a BYE ends it); else the status
 * to refuse with and err.  flow (if not NULL): where to send it instead
 * of next, the other party's flow when it is behind a NAT
 * (dialog_nated()); len 0: to next.
 */
int
dialog_request(const struct sipmsg *m, struct slice next, char *err,
    size_t errlen)
{
	return (dialog_request_flow(m, next, NULL, err, errlen));
}

/*
 * A transit copy d (dialog.backend "redis") and an in-dialog request m
 * whose Route names the entry node's Record-Route (the first of d's
 * routes towards the caller) among the entries popped here (before
 * next): this node popped it as its own, the top entry or below its own
 * (proxy_pop_routes()), so the entry node's address leads here now (it
 * died; the callee's requests come back here through it).
 * Then true, once per dialog: its dialog is asked of Redis
 * (dialog_fetch()), and taken in place of the transit copy
 * (dialog_entry_take()).
 */
static bool
dialog_entry_gone(struct dialog *d, const struct sipmsg *m,
    struct slice next)
{
	struct slice	 entry, v[16];
	unsigned	 i, n;

	if (!d->transit || d->entry_asked || d->kind != DLG_CALL ||
	    !dlgr_configured() || !dlgr_up())
		return (false);
	entry = dialog_routes_first(str_get(&d->str, DS_CALLER_ROUTES));
	if (entry.len == 0 || (next.p != NULL && dialog_uri_same(next,
	    entry)))
		return (false);
	/* Among the entries popped here: those before next. */
	n = sipmsg_values(m, SH_ROUTE, v, 16);
	for (i = 0; i < n && i < 16; i++)
		if (dialog_uri_same(hdr_uri(v[i]), entry) || (next.p != NULL &&
		    dialog_uri_same(hdr_uri(v[i]), next)))
			break;
	if (i == n || i == 16 || !dialog_uri_same(hdr_uri(v[i]), entry))
		return (false);
	d->entry_asked = true;
	log_info("dialog %s: transit, the entry node's route came back "
	    "here: its dialog asked of redis", STR(d, DS_CALLID));
	return (true);
}

/*
 * entry: a Route entry of m below this node's own, of a cluster peer's
 * Record-Route (another run's, local only through `domains`).  True when
 * this node holds m's call as its own (not a transit copy) and neither
 * of its Route sets goes on through entry: it took the dialog over from
 * that node (dialog_entry_gone()), whose address leads here now, so the
 * entry is popped as ours rather than sent to (and back here).  While
 * that node is up, a dialog here has its entry as the next hop.
 */
bool
dialog_route_taken(const struct sipmsg *m, struct slice entry)
{
	struct dialog	*d;
	bool		 from_caller;

	if (!D.up || m->to_tag.len == 0 ||
	    (d = dialog_of(m, &from_caller)) == NULL || d->transit ||
	    d->kind != DLG_CALL || d->state != DLG_CONFIRMED || !d->shared)
		return (false);
	return (!dialog_uri_same(dialog_routes_first(str_get(&d->str,
	    DS_CALLER_ROUTES)), entry) && !dialog_uri_same(
	    dialog_routes_first(str_get(&d->str, DS_CALLEE_ROUTES)), entry));
}

int
dialog_request_flow(const struct sipmsg *m, struct slice next,
    struct tp_addr *flow, char *err, size_t errlen)
{
	struct dialog	*d;
	struct dialog_call *pc;
	struct slice	 want, c;
	bool		 from_caller;

	if (flow != NULL)
		memset(flow, 0, sizeof(*flow));

	if ((d = dialog_of(m, &from_caller)) == NULL && m->method ==
	    SM_NOTIFY && (pc = sub_pending(m)) != NULL) {
		/* To the subscriber, as its SUBSCRIBE or REFER said. */
		want = str_get(&pc->str, DS_CALLER_ROUTES);
		want = want.len > 0 ? dialog_routes_first(want) :
		    str_get(&pc->str, DS_CALLER_TARGET);
		if (next.p != NULL && !dialog_uri_same(next, want)) {
			snprintf(err, errlen, "Forbidden (not this dialog's "
			    "target)");
			CNT_ADD(refused_403, 1);
			log_info("dialog %s: NOTIFY to " SLICE_FMT " refused, "
			    "the subscriber is " SLICE_FMT, STR(pc, DS_CALLID),
			    SLICE_ARG(next), SLICE_ARG(want));
			return (403);
		}
		d = sub_notified(pc, m);
		from_caller = false;
	}
	if (d == NULL) {
		snprintf(err, errlen, "Call/Transaction Does Not Exist");
		CNT_ADD(refused_481, 1);
		return (481);
	}
	if (d->state == DLG_EARLY && m->method != SM_PRACK &&
	    m->method != SM_UPDATE && m->method != SM_ACK &&
	    !(m->method == SM_BYE && from_caller)) {
		snprintf(err, errlen, "Call/Transaction Does Not Exist "
		    "(early dialog)");
		CNT_ADD(refused_481, 1);
		dialog_early_stale(d);	/* an adopted copy: Redis asked */
		return (481);
	}
	if (dialog_entry_gone(d, m, next)) {
		snprintf(err, errlen, "Call/Transaction Does Not Exist "
		    "(the entry node's dialog is asked of redis)");
		CNT_ADD(refused_481, 1);
		return (481);
	}
	want = from_caller ? str_get(&d->str, DS_CALLEE_ROUTES) :
	    str_get(&d->str, DS_CALLER_ROUTES);
	want = want.len > 0 ? dialog_routes_first(want) : from_caller ?
	    str_get(&d->str, DS_CALLEE_TARGET) :
	    str_get(&d->str, DS_CALLER_TARGET);
	/* next.p NULL: addressed to us, routed by our own routes. */
	if (next.p != NULL && !dialog_uri_same(next, want)) {
		snprintf(err, errlen, "Forbidden (not this dialog's target)");
		CNT_ADD(refused_403, 1);
		log_info("dialog %s: %s to " SLICE_FMT " refused, the %s is "
		    SLICE_FMT, STR(d, DS_CALLID), sip_method_name(m->method),
		    SLICE_ARG(next), d->kind == DLG_SUB ? (from_caller ?
		    "notifier" : "subscriber") : from_caller ? "callee" :
		    "caller", SLICE_ARG(want));
		return (403);
	}
	if (flow != NULL && !dialog_nated(from_caller ?
	    str_get(&d->str, DS_CALLEE_TARGET) :
	    str_get(&d->str, DS_CALLER_TARGET), from_caller ?
	    str_get(&d->str, DS_CALLEE_ROUTES) :
	    str_get(&d->str, DS_CALLER_ROUTES), from_caller ?
	    &d->callee_addr : &d->caller_addr, flow))
		memset(flow, 0, sizeof(*flow));
	if (m->method != SM_ACK && m->method != SM_CANCEL && m->method !=
	    SM_BYE && m->cseq > (from_caller ? d->caller_cseq :
	    d->callee_cseq)) {
		if (from_caller)
			d->caller_cseq = m->cseq;
		else
			d->callee_cseq = m->cseq;
		if (d->kind == DLG_CALL)
			dialog_save(d);	/* our BYE after a restart needs it */
	}
	if (d->kind == DLG_SUB)
		return (sub_request(d, m, from_caller));
	if ((m->method == SM_INVITE || m->method == SM_UPDATE) &&
	    (c = dialog_contact_uri(m)).len > 0) {
		/* A target refresh (12.2.2): the sender's new target. */
		dialog_str_replace(d, from_caller ? DS_CALLER_TARGET :
		    DS_CALLEE_TARGET, c);
	}
	if (m->method == SM_BYE) {
		log_info("dialog %s: BYE from the %s", STR(d, DS_CALLID),
		    from_caller ? "caller" : "callee");
		dialog_end(d, from_caller ? CDR_BY_CALLER : CDR_BY_CALLEE,
		    200);
	}
	return (0);
}

/* Is m (a re-INVITE, a 2xx) of a dialog rtpengine relays (either way)? */
bool
dialog_media(const struct sipmsg *m)
{
	struct dialog	*d;
	bool		 from_caller;

	return (D.up && m->to_tag.len > 0 &&
	    (d = dialog_of(m, &from_caller)) != NULL && d->media);
}

/* A 2xx to a re-INVITE or UPDATE: the answerer's new target. */
void
dialog_refresh(const struct sipmsg *resp)
{
	struct dialog	*d;
	struct slice	 c;
	bool		 from_caller;

	if (!D.up || resp->to_tag.len == 0)
		return;
	if (resp->method == SM_SUBSCRIBE && resp->status >= 200 &&
	    resp->status < 300) {
		/* A refresh accepted: the notifier's target, how long. */
		if ((d = dialog_of(resp, &from_caller)) == NULL ||
		    d->kind != DLG_SUB)
			return;
		if ((c = dialog_contact_uri(resp)).len > 0 && !slice_same(c,
		    str_get(&d->str, from_caller ? DS_CALLEE_TARGET :
		    DS_CALLER_TARGET)))
			dialog_str_replace(d, from_caller ? DS_CALLEE_TARGET :
			    DS_CALLER_TARGET, c);
		sub_expire_in(d, sub_expires(resp, SUB_DEFAULT_S));
		return;
	}
	if ((resp->method != SM_INVITE && resp->method != SM_UPDATE) ||
	    (c = dialog_contact_uri(resp)).len == 0)
		return;
	/* The request's sender is the response's From. */
	if ((d = dialog_of(resp, &from_caller)) == NULL ||
	    d->state != DLG_CONFIRMED || d->kind != DLG_CALL)
		return;
	dialog_str_replace(d, from_caller ? DS_CALLEE_TARGET :
	    DS_CALLER_TARGET, c);
}

/*
 * The final answer resp to an in-dialog request went upstream: a 481
 * ends the subscription it was in (RFC 6665 4.1.2.1, 4.2.2).
 */
void
dialog_request_failed(const struct sipmsg *resp)
{
	struct dialog	*d;
	bool		 from_caller;

	if (!D.up || resp->status != 481 || resp->to_tag.len == 0)
		return;
	if ((d = dialog_of(resp, &from_caller)) != NULL && d->kind == DLG_SUB)
		sub_end(d, "481");
}
