/* Server transactions, RFC 3261 17.2 with RFC 6026. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "txn.h"
#include "xmalloc.h"

/*
 * Where responses to m go (RFC 3261 18.2.2, RFC 3581): over a stream, the
 * connection it came on (src is that flow); over UDP the source address,
 * and the source port when rport was asked for, else the sent-by port.
 */
void
txn_server_peer(const struct sipmsg *m, const struct tp_addr *src,
    struct tp_addr *peer)
{
	char		 ip[INET6_ADDRSTRLEN];
	uint16_t	 port = m->via_port ? m->via_port : 5060;

	*peer = *src;
	if (src->proto != TP_UDP || m->via_rport)
		return;
	if (src->ss.ss_family == AF_INET) {
		/* What tp_addr_set() makes of its text, without the text. */
		struct sockaddr_in	sin;

		memcpy(&sin, &src->ss, sizeof(sin));
		memset(peer, 0, sizeof(*peer));
		sin.sin_port = htons(port);
		memset(sin.sin_zero, 0, sizeof(sin.sin_zero));
		memcpy(&peer->ss, &sin, sizeof(sin));
		peer->len = sizeof(sin);
		return;
	}
	tp_addr_ip(src, ip, sizeof(ip));
	tp_addr_set(peer, (struct slice){ ip, strlen(ip) }, port);
}

/*
 * When that connection is gone (18.2.2): a new one to the source address
 * and the sent-by port.  A WebSocket peer cannot be called back: none.
 */
static struct tp_addr *
txn_server_alt(const struct sipmsg *m, const struct tp_addr *src)
{
	char		 ip[INET6_ADDRSTRLEN];
	struct tp_addr	*alt;

	if (src->proto != TP_TCP && src->proto != TP_TLS)
		return (NULL);
	alt = xcalloc(1, sizeof(*alt));
	tp_addr_ip(src, ip, sizeof(ip));
	tp_addr_set(alt, (struct slice){ ip, strlen(ip) }, m->via_port ?
	    m->via_port : src->proto == TP_TLS ? 5061 : 5060);
	alt->proto = src->proto;
	return (alt);
}

/* A new server transaction that takes over req. */
struct txn *
txn_server_new(struct sipmsg *req, struct tp_sock *sock,
    const struct tp_addr *src)
{
	struct buf	 k;
	struct tp_addr	 peer;
	struct txn	*t;
	char		 stack[256];

	buf_init_on(&k, stack, sizeof(stack));
	txn_key_server(req, SM_OTHER, &k);
	t = txn_alloc(req->method == SM_INVITE ? TXN_IST : TXN_NIST, &k,
	    req->callid);
	t->req = req;
	t->cseq = req->cseq;
	t->method = (uint8_t)req->method;
	t->sock = sock;
	txn_server_peer(req, src, &peer);
	txn_addr_put(&t->peer, &peer);
	t->alt = txn_server_alt(req, src);
	t->state = req->method == SM_INVITE ? TXN_PROCEEDING : TXN_TRYING;
	txn_req_queue(t);
	txn_trim(t);
	return (t);
}

/*
 * The request of server transaction t, indexed: in the turn it came in,
 * the message it was made with; in a later one its bytes indexed again
 * (a branch started late, a response we make), kept until the turn ends.
 * NULL in a record, or should the bytes no longer parse (they did once).
 */
const struct sipmsg *
txn_server_request(struct txn *t)
{
	struct sipmsg	*m;
	char		 err[128];

	if (t->req != NULL || t->rec || TXN_CLIENT(t) || t->raw == NULL)
		return (t->req);
	m = sipmsg_new(t->raw, t->rawlen);
	if (sipmsg_parse(m, err, sizeof(err)) != 0) {
		log_warnx("txn %s: request does not parse again: %s", txn_id(t),
		    err);
		sipmsg_free(m);
		return (NULL);
	}
	t->req = m;
	txn_req_queue(t);
	txn_trim(t);
	return (m);
}

/*
 * The owner takes nothing more from t's request than what the responses
 * it makes copy (it starts no branch any more): from the end of this turn
 * t keeps the request line and those lines only (RFC 3261 8.2.6.2: the
 * Vias, From, To, Call-ID, CSeq), not the rest nor the body.  Whatever the
 * owner took from the rest is not to be used after this turn.
 */
void
txn_server_settle(struct txn *t)
{
	if (t->rec || t->settled)
		return;
	t->settled = true;
	txn_req_queue(t);
}

/*
 * Send a response (bytes taken over).  Returns -1, and frees the bytes,
 * when the state does not allow it: the caller decides what to do then.
 */
int
txn_server_reply(struct txn *t, int code, char *bytes, size_t len)
{
	enum txn_state	next = t->state;

	if (t->rec)
		goto refuse;	/* nobody owns it: nothing to send */
	switch (t->kind) {
	case TXN_IST:
		if (t->state == TXN_ACCEPTED && code >= 200 && code < 300)
			next = TXN_ACCEPTED;
		else if (t->state != TXN_PROCEEDING)
			goto refuse;
		else if (code >= 300)
			next = TXN_COMPLETED;
		else if (code >= 200)
			next = TXN_ACCEPTED;
		break;
	case TXN_NIST:
		if (t->state != TXN_TRYING && t->state != TXN_PROCEEDING)
			goto refuse;
		next = code >= 200 ? TXN_COMPLETED : TXN_PROCEEDING;
		break;
	default:
		goto refuse;
	}
	/*
	 * A provisional is kept as long as the call rings, for the INVITE's
	 * retransmissions: at its own size, not its buffer's.
	 */
	if (code < 200 && len > 0)
		bytes = xrealloc(bytes, len);
	free(t->out);
	t->out = bytes;
	t->outlen = len;
	t->code = code;
	txn_xmit(t);
	if (next != t->state)
		txn_enter(t, next);
	else
		txn_trim(t);
	return (0);
refuse:
	free(bytes);
	return (-1);
}

/* The same request again: re-send what we last said, or absorb an ACK. */
void
txn_server_retransmit(struct txn *t, const struct sipmsg *m)
{
	if (m->method == SM_ACK) {
		if (t->kind == TXN_IST && t->state == TXN_COMPLETED)
			txn_enter(t, TXN_CONFIRMED);
		return;
	}
	switch (t->state) {	/* ACCEPTED absorbs it: RFC 6026 7.1 */
	case TXN_PROCEEDING:
	case TXN_COMPLETED:
		log_debug("txn %s: retransmission, re-sending %d", txn_id(t),
		    t->code);
		txn_xmit(t);
		break;
	default:
		break;
	}
}
