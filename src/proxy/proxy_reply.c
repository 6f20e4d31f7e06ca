/*
 * Responses: the ones the proxy generates (one reason-phrase table, a Q.850
 * Reason on every failure) and the best-response choice of RFC 3261 16.7.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "proxy_int.h"
#include "sipcause.h"
#include "xmalloc.h"

/* "Reason: Q.850;cause=17;text="USER_BUSY"" plus extra, for code >= 300. */
static void
proxy_reply_extra(int code, const char *extra, struct buf *out)
{
	int	q;

	if (extra != NULL)
		buf_adds(out, extra);
	if (code < 300 || code == 401 || code == 407)
		return;		/* a challenge is not a failure */
	q = sip_cause(code);
	buf_addf(out, "Reason: Q.850;cause=%d;text=\"%s\"\r\n", q,
	    sip_cause_name(q));
}

/* Stateless replies go back to the source, as rport would. */
static void
proxy_reply_sl(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, int code, const char *reason,
    const char *extra, bool challenge)
{
	struct buf	 b, ex, tv;
	struct tp_addr	 peer;
	char		 tag[24], tvstore[256], exstore[256], bstore[1024];
	struct slice	 top;

	buf_init_on(&tv, tvstore, sizeof(tvstore));
	proxy_ctx_topvia_buf(m, src, &tv);
	top = (struct slice){ tv.p, strlen(tv.p) };
	proxy_ctx_sl_tag(m, tag, sizeof(tag));
	buf_init_on(&ex, exstore, sizeof(exstore));
	proxy_reply_extra(code, extra, &ex);
	buf_init_on(&b, bstore, sizeof(bstore));
	sipbuild_reply(m, code, reason, tag, &top, ex.p, &b);
	txn_server_peer(m, src, &peer);
	tp_send(sock, &peer, b.p, b.len);
	buf_cleanup(&b);
	buf_cleanup(&ex);
	buf_cleanup(&tv);
	if (challenge)
		proxy_ctx_count_challenge(code);
	else
		proxy_ctx_count_sent(code, true);
}

void
proxy_reply_stateless(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, int code, const char *reason,
    const char *extra)
{
	proxy_reply_sl(m, sock, src, code, reason, extra, false);
}

/*
 * A digest challenge of ours (401 or 407 with the headers in hdrs), sent
 * statelessly: counted apart, not as a failure.
 */
void
proxy_reply_challenge(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, int code, const char *hdrs)
{
	proxy_reply_sl(m, sock, src, code, NULL, hdrs, true);
}

void
proxy_reply_st(struct txn *st, const char *topvia, int code,
    const char *reason, const char *extra)
{
	const struct sipmsg *req;
	struct buf	 b, ex;
	struct slice	 top = { topvia, strlen(topvia) };
	char		 tag[24], *bytes, exstore[256];
	size_t		 len;

	proxy_ctx_token(tag, sizeof(tag));
	buf_init_on(&ex, exstore, sizeof(exstore));
	proxy_reply_extra(code, extra, &ex);
	if ((req = txn_server_request(st)) == NULL) {
		buf_cleanup(&ex);
		return;		/* its bytes no longer parse: cannot happen */
	}
	buf_init(&b, 512);
	sipbuild_reply(req, code, reason, tag, &top, ex.p, &b);
	buf_cleanup(&ex);
	bytes = buf_steal(&b, &len);
	if (txn_server_reply(st, code, bytes, len) == 0)
		proxy_ctx_count_sent(code, true);
}

/* Through st (which holds m, from src): code, reason, extra. */
void
proxy_reply_st_to(struct txn *st, const struct sipmsg *m,
    const struct tp_addr *src, int code, const char *reason,
    const char *extra)
{
	struct buf	 tv;
	char		 tvstore[256];

	buf_init_on(&tv, tvstore, sizeof(tvstore));
	proxy_ctx_topvia_buf(m, src, &tv);
	proxy_reply_st(st, tv.p, code, reason, extra);
	buf_cleanup(&tv);
}

/* A server transaction with no forwarding behind it: answer and forget. */
void
proxy_reply_new_st(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, int code, const char *reason,
    const char *extra)
{
	proxy_reply_st_to(txn_server_new(m, sock, src), m, src, code, reason,
	    extra);
}

/* A response is relayed only if a Via remains once ours is gone (16.7). */
bool
proxy_reply_relayable(const struct sipmsg *resp)
{
	return (resp->nvias >= 2);
}

/* Relay a response upstream; a 2xx goes even when the st is done. */
void
proxy_reply_relay(struct pctx *ctx, const struct sipmsg *resp, int code,
    const char *extra)
{
	struct buf	 b;
	size_t		 len;
	char		*bytes, cid[128];
	bool		 ok2xx = resp->status >= 200 && resp->status < 300;

	if (!proxy_reply_relayable(resp)) {
		log_peer("proxy %s: %d carries only our Via, not relayed",
		    proxy_ctx_callid(ctx, cid, sizeof(cid)), resp->status);
		return;
	}
	buf_init(&b, resp->len + 64);
	sipbuild_response(resp, code, extra, &b);
	bytes = buf_steal(&b, &len);
	if (ctx->st != NULL && ctx->st->state != TXN_TERMINATED && !(ok2xx &&
	    ctx->st->kind == TXN_IST && ctx->st->state != TXN_PROCEEDING &&
	    ctx->st->state != TXN_ACCEPTED)) {
		if (txn_server_reply(ctx->st, code ? code : resp->status,
		    bytes, len) == 0)
			proxy_ctx_count_sent(code ? code : resp->status, false);
		return;
	}
	if (ok2xx) {	/* 16.7 step 5: every 2xx, state or not */
		struct tp_addr	up;

		txn_addr_get(&ctx->up_peer, &up);
		tp_send(ctx->in_sock, &up, bytes, len);
		proxy_ctx_count_sent(resp->status, false);
	}
	free(bytes);
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

/*
 * dialog.backend "redis": an answer to an INVITE of no transaction here
 * whose top Via is one of the cluster's (another node's address that now
 * leads here) waits, with its retransmissions, while the INVITE's record
 * is asked of Redis (dialog_invite_fetch()); then it is taken again.
 */
struct answer_wait {
	struct sipmsg	*m;		/* owned: a copy */
	struct tp_sock	*sock;		/* a listener: lives as long as we */
};

static _Thread_local bool	answer_refetched;	/* no second ask */

static void
proxy_reply_fetched(void *arg, bool ok)
{
	struct answer_wait	*w = arg;

	if (ok) {
		answer_refetched = true;
		if (!proxy_reply_stray(w->m, w->sock))
			P.stats.dropped++;
		answer_refetched = false;
	} else
		P.stats.dropped++;
	sipmsg_free(w->m);
	free(w);
}

/* true: m waits for Redis (a copy of it), or is dropped for good here. */
static bool
proxy_reply_wait(const struct sipmsg *m, struct tp_sock *sock,
    struct slice next)
{
	struct answer_wait	*w;
	char			 err[128];
	int			 rc;

	if (answer_refetched || m->method != SM_INVITE || !dialog_shared() ||
	    !proxy_ctx_domain(m->via_host, m->via_port, NULL))
		return (false);
	w = xmalloc(sizeof(*w));
	w->sock = sock;
	w->m = sipmsg_new(m->buf, m->len);
	if (sipmsg_parse(w->m, err, sizeof(err)) != 0)
		goto fail;
	rc = dialog_invite_fetch(w->m, next, proxy_reply_fetched, w);
	if (rc == 0)
		return (true);
	if (rc == 1)
		log_info("proxy " SLICE_FMT ": %d to another node's INVITE "
		    "dropped, too many wait for its record from redis",
		    SLICE_ARG(m->callid), m->status);
	else if (rc == -2)
		log_info("proxy " SLICE_FMT ": %d matches no transaction, "
		    "dropped: redis is down", SLICE_ARG(m->callid),
		    m->status);
fail:
	sipmsg_free(w->m);
	free(w);
	return (false);
}

/*
 * A response that matches no client transaction (RFC 3261 16.7, 16.11):
 * sent on statelessly by the next Via, when the top Via is ours (sent-by
 * one of our sockets, and a branch we made for that next Via), so a late
 * 2xx retransmission still reaches the caller and nobody else can use us
 * as a reflector.  A 100 stays hop by hop.  false: not ours, not sent.
 */
bool
proxy_reply_stray(const struct sipmsg *m, struct tp_sock *sock)
{
	struct slice	 v[2];
	struct dest	 d;
	struct buf	 b;
	size_t		 len;
	char		*bytes;

	if (m->status == 100 || sipmsg_values(m, SH_VIA, v, 2) < 2 ||
	    !proxy_reply_relayable(m))
		return (false);
	/*
	 * The answer to another node's INVITE this node cancelled for it
	 * (dialog.backend "redis"): its branch is that node's.
	 */
	if (dialog_invite_response(m, v[1])) {
		if (proxy_ctx_via_dest(v[1], &d) == -1)
			return (false);
	} else if (!tp_is_local(P.tp, m->via_host, m->via_port) ||
	    !proxy_ctx_branch_ours(m->branch, v[1], &d))
		return (proxy_reply_wait(m, sock, v[1]));
	buf_init(&b, m->len + 64);
	sipbuild_response(m, 0, NULL, &b);
	bytes = buf_steal(&b, &len);
	log_info("proxy " SLICE_FMT ": %d matches no transaction, sent on "
	    "statelessly", SLICE_ARG(m->callid), m->status);
	P.stats.stateless_relayed++;
	proxy_ctx_count_sent(m->status, false);
	proxy_ctx_send(sock, &d, bytes, len);
	return (true);
}

/* The best final so far (lowest rank); *pending if a branch is still out. */
struct branch *
proxy_reply_best(struct pctx *ctx, bool *pending)
{
	struct branch	*best = NULL;
	unsigned	 i;

	*pending = false;
	for (i = 0; i < ctx->nbr; i++) {
		struct branch	*b = ctx->br[i];

		if (b->code == 0) {
			*pending = true;
			continue;
		}
		if (b->code < 300 || b->replaced || b->recursed)
			continue;	/* out of the response context */
		if (best == NULL || proxy_reply_rank(b->code) <
		    proxy_reply_rank(best->code))
			best = b;
	}
	return (best);
}

/*
 * 16.7 step 7: a chosen 401 or 407 carries the challenges of every other
 * 401 and 407 of this context.
 */
static char *
proxy_reply_merge_challenges(struct pctx *ctx, const struct branch *best)
{
	struct buf	b;
	unsigned	i, j;

	buf_init(&b, 256);
	for (i = 0; i < ctx->nbr; i++) {
		const struct sipmsg	*f = ctx->br[i]->final;

		if (ctx->br[i] == best || f == NULL ||
		    (f->status != 401 && f->status != 407))
			continue;
		for (j = 0; j < f->nh; j++) {
			const struct sip_hline	*h = &f->h[j];

			if (h->id != SH_WWW_AUTHENTICATE &&
			    h->id != SH_PROXY_AUTHENTICATE)
				continue;
			buf_add(&b, f->buf + h->off, h->len);
			/*
			 * The last line of a response without the empty
			 * line has no CRLF: the next header we wrote ran on
			 * in the challenge (fuzz target, two 401/407).
			 */
			if (h->len == 0 || f->buf[h->off + h->len - 1] != '\n')
				buf_add(&b, "\r\n", 2);
		}
	}
	if (b.len == 0) {
		buf_cleanup(&b);
		return (NULL);
	}
	return (buf_steal(&b, NULL));
}

/*
 * The Reason of a 503 we relay as 500 (16.7 step 6): that 500 is ours, so
 * it carries our Q.850 cause, unless the 503 came with a Q.850 Reason of
 * its own (one per protocol, RFC 3326).  NULL: nothing to add.
 */
static char *
proxy_reply_own_reason(const struct sipmsg *final, int code)
{
	struct slice	v[8];
	struct buf	b;
	unsigned	n, i;

	n = sipmsg_values(final, SH_REASON, v, 8);
	for (i = 0; i < n && i < 8; i++)
		if (v[i].len >= 5 && strncasecmp(v[i].p, "Q.850", 5) == 0 &&
		    (v[i].len == 5 || v[i].p[5] == ';' || v[i].p[5] == ' ' ||
		    v[i].p[5] == '\t'))
			return (NULL);
	buf_init(&b, 96);
	proxy_reply_extra(code, NULL, &b);
	return (buf_steal(&b, NULL));
}

/* Every branch is done (or a 6xx came): send the best final upstream. */
void
proxy_reply_finish(struct pctx *ctx)
{
	struct branch	*best;
	bool		 pending;
	char		 cid[128], *extra = NULL;
	int		 code, sent;
	unsigned	 i;

	if (ctx->answered || ctx->final_sent || ctx->st == NULL)
		return;
	if ((best = proxy_reply_best(ctx, &pending)) == NULL)
		return;
	if (pending && best->code < 600)
		return;
	ctx->final_sent = true;
	proxy_ctx_done(ctx);
	proxy_ctx_timer_stop(ctx->cancel_timer);
	code = best->code;
	if (ctx->cancelled && code < 600) {
		for (i = 0; i < ctx->nbr; i++)
			if (ctx->br[i]->code == 487 &&
			    ctx->br[i]->final != NULL)
				best = ctx->br[i];
		code = 487;
	}
	sent = code == 503 ? 500 : code;
	dialog_call_final(ctx->call, sent, ctx->cancelled ? CDR_BY_CALLER :
	    best->final != NULL ? CDR_BY_CALLEE : CDR_BY_PROXY);
	if (ctx->call == NULL && sent == 481 && best->final != NULL)
		dialog_request_failed(best->final);	/* a subscription */
	log_info("proxy %s: final %d to caller cause=%s",
	    proxy_ctx_callid(ctx, cid, sizeof(cid)), sent,
	    sip_cause_name(sip_cause(sent)));
	if (ctx->st->kind == TXN_NIST && code == 408 && best->final == NULL) {
		/* RFC 4320: no 408 to a non-INVITE; its caller timed out. */
		txn_enter(ctx->st, TXN_TERMINATED);
		return;
	}
	if (best->final != NULL && best->code == code) {
		if (code == 401 || code == 407)
			extra = proxy_reply_merge_challenges(ctx, best);
		else if (sent != code)
			extra = proxy_reply_own_reason(best->final, sent);
		proxy_reply_relay(ctx, best->final, sent == code ? 0 : sent,
		    extra);
		free(extra);
	} else
		proxy_reply_st(ctx->st, ctx->topvia, sent, NULL, NULL);
}
