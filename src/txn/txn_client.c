/* Client transactions, RFC 3261 17.1 with RFC 6026; CANCEL as in 9.1. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sipbuild.h"
#include "txn.h"
#include "xmalloc.h"

static void	ict_compact(struct txn *);

/* A client transaction that sends bytes (taken over) to peer. */
struct txn *
txn_client_new(enum txn_kind kind, struct slice branch, struct slice method,
    char *bytes, size_t len, struct tp_sock *sock, const struct tp_addr *peer,
    void *owner, int slot)
{
	return (txn_client_new_named(kind, branch, method, bytes, len, sock,
	    peer, NULL, owner, slot));
}

/*
 * The same to a peer that, over TLS, must prove name (RFC 5922): the
 * domain the request was resolved from.  NULL: its address.
 */
struct txn *
txn_client_new_named(enum txn_kind kind, struct slice branch,
    struct slice method, char *bytes, size_t len, struct tp_sock *sock,
    const struct tp_addr *peer, const char *name, void *owner, int slot)
{
	return (txn_client_start(kind, branch, method, (struct slice){ NULL,
	    0 }, bytes, len, sock, peer, name, owner, slot));
}

/*
 * The same with the Call-ID it logs (callid.p NULL: none), kept in the
 * transaction's own allocation.
 */
struct txn *
txn_client_start(enum txn_kind kind, struct slice branch,
    struct slice method, struct slice callid, char *bytes, size_t len,
    struct tp_sock *sock, const struct tp_addr *peer, const char *name,
    void *owner, int slot)
{
	struct buf	 k;
	struct txn	*t;
	char		 stack[128];

	buf_init_on(&k, stack, sizeof(stack));
	txn_key_client(branch, method, &k);
	t = txn_alloc(kind, &k, callid);
	t->out = bytes;
	t->outlen = len;
	t->sock = sock;
	txn_addr_put(&t->peer, peer);
	t->owner = owner;
	t->slot = slot;
	if (name != NULL)
		t->tls_name = xstrdup(name);
	t->state = kind == TXN_ICT ? TXN_CALLING : TXN_TRYING;
	txn_xmit(t);
	txn_enter(t, t->state);
	if (kind == TXN_ICT && txn_reliable(t))
		ict_compact(t);		/* never retransmitted */
	return (t);
}

/*
 * An INVITE client transaction that no longer retransmits its INVITE (a
 * provisional came, or it went over a reliable transport) keeps of it only
 * what its CANCEL and its ACK copy: the request line, the top Via, From,
 * To, Call-ID, CSeq and the Route set, without the body.  That is still a
 * request that sent_request() parses.
 */
static void
ict_compact(struct txn *t)
{
	char	*bytes;
	size_t	 len;

	if (t->out == NULL || (bytes = txn_lines(t->out, t->outlen,
	    TXN_L_TOPVIA | TXN_L_FROM | TXN_L_TO | TXN_L_CALLID | TXN_L_CSEQ |
	    TXN_L_ROUTE, &len)) == NULL)
		return;
	free(t->out);
	t->out = bytes;
	t->outlen = len;
	txn_trim(t);
}

/* Timer C: armed when the INVITE goes out, reset by each provisional. */
void
txn_client_arm_c(struct txn *t)
{
	if (t->kind == TXN_ICT && txn_settings()->c_ms > 0)
		txn_timer_set(t, TXN_TM_C, txn_settings()->c_ms, false);
}

/* The INVITE this transaction sent, indexed again. */
static struct sipmsg *
sent_request(const struct txn *t)
{
	struct sipmsg	*m = sipmsg_new(t->out, t->outlen);
	char		 err[128];

	if (sipmsg_parse(m, err, sizeof(err)) != 0) {
		log_warnx("txn %s: own request does not parse: %s", txn_id(t),
		    err);
		sipmsg_free(m);
		return (NULL);
	}
	return (m);
}

static void
send_cancel(struct txn *t)
{
	struct sipmsg	*inv;
	struct tp_addr	 peer;
	struct buf	 b;
	struct txn	*ct;
	char		*bytes;
	size_t		 len;

	if ((inv = sent_request(t)) == NULL)
		return;
	txn_peer(t, &peer);
	buf_init(&b, 512);
	sipbuild_cancel(inv, t->cancel_reason, &b);
	bytes = buf_steal(&b, &len);
	ct = txn_client_start(TXN_NICT, inv->branch,
	    (struct slice){ "CANCEL", 6 }, (struct slice){ t->callid,
	    t->callid != NULL ? strlen(t->callid) : 0 }, bytes, len, t->sock,
	    &peer, NULL, NULL, 0);
	sipmsg_free(inv);
	t->cancel_sent = true;
	t->cancel_pending = false;
	/* RFC 3261 9.1: give up on the INVITE 64*T1 after the CANCEL. */
	txn_timer_set(t, TXN_TM_LIFE, 64 * txn_settings()->t1_ms, false);
	log_info("txn %s: CANCEL sent (%s) call=%s", txn_id(t), txn_id(ct),
	    txn_callid(t));
}

/*
 * Cancel the INVITE this client transaction sent: with its own branch, and
 * only once a provisional has come back (RFC 3261 9.1).
 */
void
txn_client_cancel(struct txn *t, const char *reason)
{
	if (t->kind != TXN_ICT || t->cancel_sent || t->cancel_pending)
		return;
	if (t->state != TXN_CALLING && t->state != TXN_PROCEEDING)
		return;
	if (reason != NULL) {
		free(t->cancel_reason);
		t->cancel_reason = xstrdup(reason);
		txn_trim(t);
	}
	if (t->state == TXN_PROCEEDING)
		send_cancel(t);
	else {
		t->cancel_pending = true;
		log_info("txn %s: CANCEL waits for a provisional call=%s",
		    txn_id(t), txn_callid(t));
	}
}

static void
send_ack(struct txn *t, const struct sipmsg *resp)
{
	struct sipmsg	*inv;
	struct buf	 b;
	size_t		 len;
	int		 rc = -1;

	buf_init(&b, 512);
	if ((inv = sent_request(t)) != NULL)
		rc = sipbuild_ack(inv, resp, &b);
	sipmsg_free(inv);
	free(t->out);		/* never the INVITE again */
	t->out = NULL;
	t->outlen = 0;
	if (rc == -1) {
		log_warnx("txn %s: no ACK for %d: response unusable", txn_id(t),
		    resp->status);
		buf_cleanup(&b);
		return;
	}
	t->out = buf_steal(&b, &len);	/* re-sent on a retransmission */
	t->outlen = (uint32_t)len;
	txn_xmit(t);
}

static void
deliver(struct txn *t, const struct sipmsg *resp)
{
	if (t->owner != NULL && TXN_OPS(t)->response != NULL)
		TXN_OPS(t)->response(t, resp);
}

void
txn_client_response(struct txn *t, const struct sipmsg *resp)
{
	int	code = resp->status;

	if (t->kind == TXN_NICT) {
		if (t->state != TXN_TRYING && t->state != TXN_PROCEEDING)
			return;		/* COMPLETED: absorbed */
		t->code = code;
		txn_enter(t, code >= 200 ? TXN_COMPLETED : TXN_PROCEEDING);
		deliver(t, resp);
		return;
	}
	if (t->kind != TXN_ICT)
		return;
	switch (t->state) {
	case TXN_CALLING:
	case TXN_PROCEEDING:
		t->code = code;
		if (code < 200) {
			if (t->state == TXN_CALLING) {
				txn_enter(t, TXN_PROCEEDING);
				ict_compact(t);	/* no more Timer A */
			}
			if (code > 100 && txn_timer_pending(t, TXN_TM_C))
				txn_client_arm_c(t);
			if (t->cancel_pending)
				send_cancel(t);
		} else if (code < 300)
			txn_enter(t, TXN_ACCEPTED);
		else {
			send_ack(t, resp);
			txn_enter(t, TXN_COMPLETED);
		}
		deliver(t, resp);
		break;
	case TXN_ACCEPTED:
		if (code >= 200 && code < 300)
			deliver(t, resp);	/* RFC 6026: every 2xx */
		break;
	case TXN_COMPLETED:
		if (code >= 300)
			txn_xmit(t);		/* the ACK again */
		break;
	default:
		break;
	}
}
