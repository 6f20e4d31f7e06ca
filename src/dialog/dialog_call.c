/*
 * A call being set up: what an INVITE we record-route (or a SUBSCRIBE,
 * REFER, NOTIFY out of dialog) leaves for its dialogs, and the early and
 * confirmed dialogs its responses make.  Its end (the final answer, the
 * context gone) is dialog.c's.
 */
#include "config.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dialog.h"
#include "dialog_int.h"
#include "hashtab.h"
#include "log.h"
#include "sipcause.h"
#include "timer.h"
#include "txn.h"
#include "xmalloc.h"

static struct dialog_call *call_new(const struct sipmsg *,
		    const struct tp_addr *, struct tp_sock *, struct slice,
		    struct slice, const char[17], bool);

/*
 * An INVITE out of dialog that we record-route with stamp: what its
 * dialogs need of it.  The counts dialog_call_admit() took for user and
 * src are the call's now.
 */
struct dialog_call *
dialog_call_new(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_sock *in, struct slice user, struct slice identity,
    const char stamp[17])
{
	return (call_new(m, src, in, user, identity, stamp, false));
}

/*
 * The same, of a call (or subscription) another node of the cluster sent
 * here through a path token of ours: its dialogs are tracked and routed
 * here, but that node (where it entered) writes its record, counts it
 * and holds its limits (no dialog_call_admit() here: src is that node),
 * and its dialogs are that node's in Redis.  Counted apart.
 */
struct dialog_call *
dialog_transit_new(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_sock *in, const char stamp[17])
{
	return (call_new(m, src, in, (struct slice){ "", 0 },
	    (struct slice){ "", 0 }, stamp, true));
}

bool
dialog_call_transit(const struct dialog_call *c)
{
	return (c != NULL && c->transit);
}

static struct dialog_call *
call_new(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_sock *in, struct slice user, struct slice identity,
    const char stamp[17], bool transit)
{
	struct dialog_call	*c;
	struct slice		 v[DS_N], rr[DLG_MAX_RR];
	char			 ip[INET6_ADDRSTRLEN], rstore[256];
	struct buf		 rb;
	size_t			 size;
	unsigned		 n;
	int			 i;
	bool			 sub = m->method != SM_INVITE;

	for (i = 0; i < DS_N; i++)
		v[i] = (struct slice){ "", 0 };
	ip[0] = '\0';
	if (transit)
		user = (struct slice){ "", 0 };
	else if (G.set.calls_per_source > 0 && !sub)
		tp_addr_ip(src, ip, sizeof(ip));
	buf_init_on(&rb, rstore, sizeof(rstore));
	if (sub) {
		/* Towards the subscriber: its Record-Route, ours not yet. */
		user = (struct slice){ "", 0 };
		n = sipmsg_values(m, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
		v[DS_CALLER_ROUTES] = dialog_routes_text(&rb, rr, 0,
		    n > DLG_MAX_RR ? DLG_MAX_RR : n, false);
	}
	v[DS_CALLID] = m->callid;
	v[DS_FTAG] = m->from_tag;
	v[DS_FROM] = dialog_hvalue(m, SH_FROM);
	v[DS_TO] = dialog_hvalue(m, SH_TO);
	v[DS_RURI] = m->ruri;
	v[DS_CALLER_TARGET] = dialog_contact_uri(m);
	v[DS_IDENTITY] = identity;
	v[DS_USER] = user;
	v[DS_SRC] = (struct slice){ ip, strlen(ip) };
	/* One allocation: the call and its strings, which never change. */
	size = dialog_str_size(v);
	c = xcalloc(1, sizeof(*c) + size);
	c->str.s = (char *)(c + 1);
	dialog_str_fill(&c->str, v, c->str.s);
	txn_addr_put(&c->src, src);
	c->sock = (uint8_t)(in != NULL && D.tp != NULL ?
	    in - D.tp->socks : 0);
	c->cseq = m->cseq;
	clock_gettime(CLOCK_REALTIME, &c->start);
	c->start_ms = timer_now_ms();
	c->transit = transit;
	c->cnt_user = !transit && G.set.calls_per_user > 0 && user.len > 0;
	c->cnt_src = !transit && G.set.calls_per_source > 0;
	memcpy(c->stamp, stamp, 17);
	buf_cleanup(&rb);
	if (sub) {
		c->sub = true;
		c->cnt_user = c->cnt_src = false;
		c->expires_s = sub_expires(m, SUB_DEFAULT_S);
		/* Its NOTIFYs may come before its 2xx, from every fork. */
		if (m->method != SM_NOTIFY && D.up) {
			hashtab_insert(&D.subs, &c->node, c->str.s,
			    c->str.off[DS_TTAG] - 1);
			c->pending = true;
		}
		return (c);
	}
	if (transit) {
		CNT_ADD(transit_attempted, 1);
		log_info("dialog " SLICE_FMT ": transit, another node's call "
		    "(it writes the record)", SLICE_ARG(m->callid));
	} else
		CNT_ADD(attempted, 1);
	return (c);
}

/*
 * A 1xx or 2xx with a To tag to the INVITE of c, from callee (the
 * address of the branch, sent from out): an early dialog, or the dialog
 * confirmed.
 */
void
dialog_call_response(struct dialog_call *c, const struct sipmsg *resp,
    const struct tp_addr *callee, struct tp_sock *out)
{
	struct dialog	*d;
	struct slice	 rr[DLG_MAX_RR], v[DS_N];
	struct buf	 ce, cr;
	char		 cestore[256], crstore[256];
	unsigned	 n, first, after;
	bool		 ok = resp->status >= 200 && resp->status < 300;

	if (c == NULL || !D.up || resp->to_tag.len == 0 ||
	    resp->status <= 100 || resp->status >= 300)
		return;
	if (c->sub) {
		sub_response(c, resp, callee, out);
		return;
	}
	d = dialog_find(str_get(&c->str, DS_CALLID),
	    str_get(&c->str, DS_FTAG), resp->to_tag);
	if (d != NULL && (d->state != DLG_EARLY || !ok))
		return;		/* a retransmission, or a second 1xx */
	n = sipmsg_values(resp, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	first = dialog_rr_split(rr, n, c->stamp, &after);
	if (first == n)
		first = after = 0;	/* ours is gone: nobody beside us */
	buf_init_on(&ce, cestore, sizeof(cestore));
	buf_init_on(&cr, crstore, sizeof(crstore));
	if (d == NULL) {
		d = dialog_of_call(c, v);
		d->state = DLG_EARLY;
		d->media = c->media;
		state_count(d, DLG_EARLY, 1);
		timer_init(&d->timeout, D.base, dialog_timeout_fire, d);
		d->call = c;
		d->call_next = c->dialogs;
		c->dialogs = d;
	} else {
		/* The 2xx of an early dialog: most say what its 1xx said. */
		if (slice_same(dialog_contact_uri(resp), str_get(&d->str,
		    DS_CALLEE_TARGET)) && slice_same(dialog_hvalue(resp, SH_TO),
		    str_get(&d->str, DS_TO)) &&
		    slice_same(dialog_routes_text(&ce, rr, 0, first, true),
		    str_get(&d->str, DS_CALLEE_ROUTES)) &&
		    slice_same(dialog_routes_text(&cr, rr, after, n, false),
		    str_get(&d->str, DS_CALLER_ROUTES))) {
			buf_cleanup(&ce);
			buf_cleanup(&cr);
			txn_addr_put(&d->callee_addr, callee);
			dialog_confirm(d, c);
			dialog_save(d);
			return;
		}
		ce.len = cr.len = 0;
		dialog_str_all(&d->str, v);
		hashtab_remove(&D.ht, &d->node);
	}
	v[DS_TTAG] = resp->to_tag;
	v[DS_TO] = dialog_hvalue(resp, SH_TO);
	if (dialog_contact_uri(resp).len > 0 || ok)
		v[DS_CALLEE_TARGET] = dialog_contact_uri(resp);
	v[DS_CALLEE_ROUTES] = dialog_routes_text(&ce, rr, 0, first, true);
	v[DS_CALLER_ROUTES] = dialog_routes_text(&cr, rr, after, n, false);
	dialog_str_set(&d->str, v);
	buf_cleanup(&ce);
	buf_cleanup(&cr);
	txn_addr_put(&d->callee_addr, callee);
	d->callee_sock = (uint8_t)(out != NULL ? out - D.tp->socks : 0);
	dialog_link(d);
	dialog_account(d);
	if (ok)
		dialog_confirm(d, c);
	else
		log_debug("dialog %s: early, to tag " SLICE_FMT,
		    STR(d, DS_CALLID), SLICE_ARG(resp->to_tag));
	dialog_save(d);		/* once per early dialog: not again on a 1xx */
}

/* The INVITE of c went on with rtpengine's SDP: a delete when it ends. */
void
dialog_call_media(struct dialog_call *c)
{
	struct dialog	*d;

	if (c == NULL || c->sub)
		return;
	c->media = true;
	for (d = c->dialogs; d != NULL; d = d->call_next)
		d->media = true;
}

/*
 * An INVITE the proxy refused itself (no route, no user, relaying
 * denied, a limit): the record of a call attempt that failed at once.
 */
void
dialog_refused(const struct sipmsg *m, const struct tp_addr *src,
    struct slice identity, int code)
{
	struct cdr	r;

	if (G.cdr == NULL)
		return;
	memset(&r, 0, sizeof(r));
	r.callid = m->callid;
	r.from_tag = m->from_tag;
	r.caller = hdr_uri(dialog_hvalue(m, SH_FROM));
	r.callee = hdr_uri(dialog_hvalue(m, SH_TO));
	r.ruri = m->ruri;
	r.identity = identity;
	r.src = *src;
	clock_gettime(CLOCK_REALTIME, &r.start);
	r.end = r.start;
	r.code = code;
	r.cause = sip_cause(code);
	r.ended_by = CDR_BY_PROXY;
	G.cdr(&r);
}
