/*
 * BYEs of our own (ospreyctl hangup, timers.dialog_timeout: dialog.c's
 * dialog_hangup_one()): to one party of a dialog as the other party's UA
 * would send it, in a client transaction of ours, once its next hop is
 * resolved.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialog.h"
#include "dialog_int.h"
#include "hashtab.h"
#include "log.h"
#include "resolver.h"
#include "timer.h"
#include "txn.h"
#include "xmalloc.h"

char	dialog_bye_owner;	/* our BYEs' owner: not NULL, nothing else */

static void	dialog_bye_response(struct txn *, const struct sipmsg *);
static void	dialog_bye_timeout(struct txn *, bool);

static const struct txn_ops bye_ops = {
	.response = dialog_bye_response,
	.timeout = dialog_bye_timeout,
	.transport_error = dialog_bye_error,
	.terminated = dialog_bye_gone,
	.done = dialog_bye_gone,
};

static void
dialog_bye_response(struct txn *ct, const struct sipmsg *resp)
{
	if (resp->status >= 200)
		log_info("dialog %s: our BYE answered %d", txn_callid(ct),
		    resp->status);
}

static void
dialog_bye_timeout(struct txn *ct, bool timer_c)
{
	(void)timer_c;
	log_info("dialog %s: our BYE got no answer", txn_callid(ct));
}

void
dialog_bye_error(struct txn *ct)
{
	log_info("dialog %s: our BYE could not be sent", txn_callid(ct));
}

void
dialog_bye_gone(struct txn *ct)
{
	ct->owner = NULL;
}

void
dbye_free(struct dbye *b)
{
	free(b->head);
	free(b->rest);
	free(b->callid);
	free(b);
}

/* Our Via on top, and away in a client transaction of our own. */
static void
dbye_send(struct dbye *b, const struct tp_addr *addr, const char *name)
{
	struct tp_sock	*pref, *out;
	struct txn	*ct;
	struct buf	 m;
	char		 branch[48], hex[17];
	size_t		 len;

	pref = b->sock < D.tp->nsocks ? &D.tp->socks[b->sock] : NULL;
	if ((out = tp_sock_for(D.tp, addr, pref)) == NULL) {
		log_warnx("dialog %s: no socket for our BYE", b->callid);
		return;
	}
	/* Unique, and not to be guessed: keyed by the table's seed. */
	++D.serial;
	fmt_hex64(hex, hashtab_hash(D.ht.seed, &D.serial, sizeof(D.serial)));
	snprintf(branch, sizeof(branch), SIP_MAGIC "dlg%s%x", hex,
	    (unsigned)(D.serial & 0xffff));
	buf_init(&m, 512);
	buf_adds(&m, b->head);
	buf_addf(&m, "Via: SIP/2.0/%s %s;branch=%s\r\n",
	    tp_proto_via(out->proto), out->hostport, branch);
	buf_adds(&m, b->rest);
	len = m.len;
	ct = txn_client_start(TXN_NICT, (struct slice){ branch,
	    strlen(branch) }, (struct slice){ "BYE", 3 },
	    (struct slice){ b->callid, strlen(b->callid) }, buf_steal(&m,
	    NULL), len, out, addr, name, &bye_owner, 0);
	txn_set_ops(ct, &bye_ops);
}

static void
dbye_resolved(void *arg, const struct tp_addr *addrs, unsigned n,
    const char *err)
{
	struct dbye	*b = arg, **pp;

	for (pp = &D.byes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	b->dns = NULL;
	if (n == 0)
		log_warnx("dialog %s: our BYE has no next hop: %s", b->callid,
		    err != NULL ? err : "no address");
	else
		dbye_send(b, &addrs[0], NULL);
	dbye_free(b);
}

/* The first URI of a Route set text (the next hop), or empty. */
struct slice
dialog_routes_first(struct slice text)
{
	struct slice	v[1];

	if (text.len == 0 || split_values(text, v, 1) == 0)
		return ((struct slice){ "", 0 });
	return (hdr_uri(v[0]));
}

/*
 * A BYE from one party of d to the other (to_caller: to the caller),
 * as that party's UA would send it: its tags, the next CSeq, the other's
 * target and Route set, over the flow the dialog knows when the Route set
 * is empty.
 */
void
dialog_send_bye(struct dialog *d, bool to_caller, const char *reason)
{
	struct slice	 target, routes, from, to, u;
	struct sipuri	 su;
	struct dbye	*b;
	struct buf	 h;
	struct tp_addr	 a;
	struct resolve_query q;
	struct resolve_req *r;
	char		 host[256];
	uint32_t	 cseq;

	target = str_get(&d->str, to_caller ? DS_CALLER_TARGET :
	    DS_CALLEE_TARGET);
	routes = str_get(&d->str, to_caller ? DS_CALLER_ROUTES :
	    DS_CALLEE_ROUTES);
	from = str_get(&d->str, to_caller ? DS_TO : DS_FROM);
	to = str_get(&d->str, to_caller ? DS_FROM : DS_TO);
	/* A Contact that will not do as our Request-URI: no BYE that way. */
	if (target.len == 0 || !sipuri_fits_ruri(target) ||
	    sipuri_parse(target, &su) == -1 || (!slice_eq(su.scheme, "sip") &&
	    !slice_eq(su.scheme, "sips"))) {
		log_warnx("dialog %s: no usable target to send the %s a BYE "
		    "(\"" SLICE_FMT "\")", STR(d, DS_CALLID), to_caller ?
		    "caller" : "callee", SLICE_ARG(target));
		return;
	}
	cseq = to_caller ? ++d->callee_cseq : ++d->caller_cseq;
	b = xcalloc(1, sizeof(*b));
	b->callid = xstrdup(STR(d, DS_CALLID));
	b->sock = to_caller ? d->caller_sock : d->callee_sock;
	buf_init(&h, 128);
	buf_adds(&h, "BYE ");
	buf_add(&h, target.p, target.len);
	buf_adds(&h, " SIP/2.0\r\n");
	b->head = buf_steal(&h, NULL);
	buf_init(&h, 512);
	buf_adds(&h, "Max-Forwards: 70\r\n");
	if (routes.len > 0)
		buf_addf(&h, "Route: " SLICE_FMT "\r\n", SLICE_ARG(routes));
	buf_addf(&h, "From: " SLICE_FMT "\r\nTo: " SLICE_FMT "\r\n"
	    "Call-ID: %s\r\nCSeq: %u BYE\r\n", SLICE_ARG(from),
	    SLICE_ARG(to), b->callid, cseq);
	if (reason != NULL)
		buf_addf(&h, "Reason: %s\r\n", reason);
	buf_adds(&h, "User-Agent: Osprey/" PACKAGE_VERSION "\r\n"
	    "Content-Length: 0\r\n\r\n");
	b->rest = buf_steal(&h, NULL);
	if (routes.len == 0) {
		/* No proxy beside us that way: the flow we know. */
		txn_addr_get(to_caller ? &d->caller_addr : &d->callee_addr, &a);
		dbye_send(b, &a, NULL);
		dbye_free(b);
		return;
	}
	u = dialog_routes_first(routes);
	if (sipuri_parse(u, &su) == -1 || su.host.len == 0 ||
	    su.host.len + 1 > sizeof(host)) {
		log_warnx("dialog %s: bad Route for our BYE", b->callid);
		dbye_free(b);
		return;
	}
	if (su.host.p[0] == '[' && su.host.len > 2) {
		su.host.p++;
		su.host.len -= 2;
	}
	memcpy(host, su.host.p, su.host.len);
	host[su.host.len] = '\0';
	memset(&q, 0, sizeof(q));
	q.host = host;
	q.port = su.port;
	q.proto = -1;
	q.sips = slice_eq(su.scheme, "sips");
	q.protos = tp_protos(D.tp);
	if (sipuri_param(&su, "transport", &u)) {
		enum tp_proto	p;

		if (tp_proto_parse(u, &p) == 0)
			q.proto = (int)p;
	}
	b->next = D.byes;
	D.byes = b;
	b->dns = NULL;
	/* A numeric host is answered at once: b is gone then, r NULL. */
	if ((r = resolver_query(&q, dbye_resolved, b)) != NULL)
		b->dns = r;
}
