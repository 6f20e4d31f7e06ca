/*
 * Subscriptions (RFC 6665) seen from a record-routing proxy: the dialogs
 * a SUBSCRIBE's, REFER's or NOTIFY's 2xx (or a NOTIFY ahead of it) make,
 * kept up by their NOTIFYs and refreshes, ended by their expiry
 * (dialog_timeout_fire()), a terminated NOTIFY or a 481.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dialog.h"
#include "dialog_int.h"
#include "hashtab.h"
#include "log.h"
#include "timer.h"
#include "xmalloc.h"

#define SUB_MARGIN_S	32	/* past the expiry: 64*T1 */
#define SUB_MAX_S	4000000	/* what a timer takes */

/* A header Osprey has no id for (SH_OTHER), by name; "" if none. */
static struct slice
hvalue_named(const struct sipmsg *m, const char *name)
{
	size_t		n = strlen(name);
	unsigned	i;

	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];
		const char		*p = m->buf + h->off;

		if (h->id == SH_OTHER && h->len > n && sip_caseeq(p, name, n) &&
		    (p[n] == ':' || p[n] == ' ' || p[n] == '\t'))
			return (sipmsg_hvalue(m, h));
	}
	return ((struct slice){ "", 0 });
}

/* Seconds in v (digits, at most SUB_MAX_S), or -1. */
static long
secs_of(struct slice v)
{
	long	n = 0;
	size_t	i;

	v = slice_trim(v);
	if (v.len == 0 || v.len > 10)
		return (-1);
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return (-1);
		n = n * 10 + (v.p[i] - '0');
	}
	return (n > SUB_MAX_S ? SUB_MAX_S : n);
}

/*
 * How long a subscription lasts by m: its Expires (a SUBSCRIBE, its 2xx),
 * else the expires= of its Subscription-State (a NOTIFY), else dflt.
 */
uint32_t
sub_expires(const struct sipmsg *m, uint32_t dflt)
{
	struct slice	v;
	long		n;

	if ((n = secs_of(dialog_hvalue(m, SH_EXPIRES))) >= 0)
		return ((uint32_t)n);
	if (hdr_param(hvalue_named(m, "subscription-state"), "expires",
	    &v) && (n = secs_of(v)) >= 0)
		return ((uint32_t)n);
	return (dflt);
}

/* A subscription lasts secs more (and the margin): its timer, stored. */
void
sub_expire_in(struct dialog *d, uint32_t secs)
{
	uint32_t	total = (secs > SUB_MAX_S ? SUB_MAX_S : secs) +
	    SUB_MARGIN_S;

	clock_gettime(CLOCK_REALTIME, &d->answer);
	d->answer.tv_sec += total;
	timer_set(&d->timeout, total * 1000);
	dialog_save(d);
}

/*
 * A subscription of c with the notifier tag ttag, To value to, target and
 * route sets as given: a new dialog, or the one the tags name (its
 * notifier's side taken again).
 */
static struct dialog *
sub_make(struct dialog_call *c, struct slice ttag, struct slice to,
    struct slice target, struct slice callee_routes,
    struct slice caller_routes)
{
	struct dialog	*d;
	struct slice	 v[DS_N];

	d = dialog_find(str_get(&c->str, DS_CALLID),
	    str_get(&c->str, DS_FTAG), ttag);
	if (d != NULL && d->kind != DLG_SUB)
		return (NULL);
	if (d == NULL) {
		d = dialog_of_call(c, v);
		d->state = DLG_CONFIRMED;
		d->kind = DLG_SUB;
		CNT_ADD(subscriptions, 1);
		timer_init(&d->timeout, D.base, dialog_timeout_fire, d);
		log_info("dialog %s: subscription, notifier tag " SLICE_FMT,
		    STR(c, DS_CALLID), SLICE_ARG(ttag));
	} else {
		dialog_str_all(&d->str, v);
		hashtab_remove(&D.ht, &d->node);
	}
	v[DS_TTAG] = ttag;
	v[DS_TO] = to;
	if (target.len > 0)
		v[DS_CALLEE_TARGET] = target;
	v[DS_CALLEE_ROUTES] = callee_routes;
	v[DS_CALLER_ROUTES] = caller_routes;
	dialog_str_set(&d->str, v);
	dialog_link(d);
	dialog_account(d);
	return (d);
}

/* A 2xx to the SUBSCRIBE, REFER or NOTIFY of c: its subscription. */
void
sub_response(struct dialog_call *c, const struct sipmsg *resp,
    const struct tp_addr *callee, struct tp_sock *out)
{
	struct dialog	*d;
	struct slice	 rr[DLG_MAX_RR];
	struct buf	 ce, cr;
	char		 cestore[256], crstore[256];
	unsigned	 n, first, after;

	if (resp->status < 200 || resp->status >= 300)
		return;
	n = sipmsg_values(resp, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	first = dialog_rr_split(rr, n, c->stamp, &after);
	if (first == n)
		first = after = 0;
	buf_init_on(&ce, cestore, sizeof(cestore));
	buf_init_on(&cr, crstore, sizeof(crstore));
	d = sub_make(c, resp->to_tag, dialog_hvalue(resp, SH_TO),
	    dialog_contact_uri(resp),
	    dialog_routes_text(&ce, rr, 0, first, true),
	    dialog_routes_text(&cr, rr, after, n, false));
	buf_cleanup(&ce);
	buf_cleanup(&cr);
	if (d == NULL)
		return;
	txn_addr_put(&d->callee_addr, callee);
	d->callee_sock = (uint8_t)(out != NULL ? out - D.tp->socks : 0);
	sub_expire_in(d, sub_expires(resp, c->expires_s));
}

/*
 * A NOTIFY (from the notifier: its From tag) to the subscriber of the
 * SUBSCRIBE or REFER c, before c's 2xx or from another fork (RFC 6665
 * 4.1.2.4): the subscription it makes.
 */
struct dialog *
sub_notified(struct dialog_call *c, const struct sipmsg *m)
{
	struct dialog	*d;
	struct slice	 rr[DLG_MAX_RR];
	struct buf	 ce;
	char		 cestore[256];
	unsigned	 n;

	n = sipmsg_values(m, SH_RECORD_ROUTE, rr, DLG_MAX_RR);
	if (n > DLG_MAX_RR)
		n = DLG_MAX_RR;
	buf_init_on(&ce, cestore, sizeof(cestore));
	d = sub_make(c, m->from_tag, dialog_hvalue(m, SH_FROM),
	    dialog_contact_uri(m), dialog_routes_text(&ce, rr, 0, n, true),
	    str_get(&c->str, DS_CALLER_ROUTES));
	buf_cleanup(&ce);
	if (d == NULL)
		return (NULL);
	d->callee_cseq = m->cseq;
	sub_expire_in(d, c->expires_s);
	return (d);
}

/* The SUBSCRIBE or REFER on its way whose NOTIFY m is, or NULL. */
struct dialog_call *
sub_pending(const struct sipmsg *m)
{
	struct buf	 k;
	char		 kstore[512];
	struct hnode	*hn;

	if (!D.up || D.subs.n == 0 || m->to_tag.len == 0)
		return (NULL);
	buf_init_on(&k, kstore, sizeof(kstore));
	buf_add(&k, m->callid.p, m->callid.len);
	buf_add(&k, "\0", 1);
	buf_add(&k, m->to_tag.p, m->to_tag.len);
	hn = hashtab_find(&D.subs, k.p, k.len);
	buf_cleanup(&k);
	return (hn != NULL ? (struct dialog_call *)((char *)hn -
	    offsetof(struct dialog_call, node)) : NULL);
}

/*
 * An in-dialog request of the subscription d that passed the check:
 * SUBSCRIBE and NOTIFY refresh their sender's target (RFC 6665 4.1.2.1,
 * 4.2.1.1); a NOTIFY says how long it lasts, or that it is over (then it
 * ends as the NOTIFY is forwarded).
 */
int
sub_request(struct dialog *d, const struct sipmsg *m, bool from_caller)
{
	struct slice	c, st;
	long		n;

	if ((m->method == SM_SUBSCRIBE || m->method == SM_NOTIFY) &&
	    (c = dialog_contact_uri(m)).len > 0 && !slice_same(c,
	    str_get(&d->str, from_caller ? DS_CALLER_TARGET :
	    DS_CALLEE_TARGET)))
		dialog_str_replace(d, from_caller ? DS_CALLER_TARGET :
		    DS_CALLEE_TARGET, c);
	if (m->method != SM_NOTIFY)
		return (0);
	st = slice_trim(hvalue_named(m, "subscription-state"));
	if (st.len >= 10 && sip_caseeq(st.p, "terminated", 10) &&
	    (st.len == 10 || st.p[10] == ';' || st.p[10] == ' ' ||
	    st.p[10] == '\t')) {
		sub_end(d, "NOTIFY terminated");
		return (0);
	}
	if (hdr_param(st, "expires", &c) && (n = secs_of(c)) >= 0)
		sub_expire_in(d, (uint32_t)n);
	return (0);
}
