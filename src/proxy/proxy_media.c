/*
 * The media relay of the calls we keep dialogs of (issue 13): rtpengine's
 * offer with the INVITE's SDP before the INVITE is forwarded, its answer
 * with the SDP of a 1xx or 2xx before that goes upstream, its delete when
 * the call ends (dialog.c calls proxy_media_end()).  An INVITE without
 * SDP (a late offer) goes on at once: the offer is the SDP of its 1xx or
 * 2xx (asked with the tags swapped: the callee offers), the answer the
 * SDP of the ACK (or of the PRACK of a reliable 1xx).  An UPDATE or a
 * PRACK with SDP in a relayed call is an offer, its 2xx the answer, as
 * for a re-INVITE.  Nothing blocks: the
 * request or the response waits in its response context (struct pmedia)
 * for rtpengine's reply, then the fork goes on through the function it
 * gave.  A call's commands go from the worker that owns its Call-ID.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "location.h"
#include "log.h"
#include "proxy_int.h"
#include "sdp.h"
#include "xmalloc.h"

#define MEDIA_FLAGS	(RTPE_REPLACE_ORIGIN | RTPE_REPLACE_SESS_CONN)

static rtpe_done_fn media_delete_done;

/* The SDP of m, read; false when it has none we can relay. */
static bool
media_sdp(const struct sipmsg *m, struct slice *body, struct sdp *sdp)
{
	char	err[128];

	return (sdp_body(m, body) == SDP_BODY_SDP &&
	    sdp_parse(sdp, *body, err, sizeof(err)) == 0);
}

/*
 * Does rtpengine relay this INVITE (one we record-route, with its
 * dialogs)?  media.relay "always"; "nat": its SDP names a private
 * address, its Via or Contact another address than its source (as the
 * registrar decides for a binding), or a callee's binding is behind NAT.
 * An INVITE without a body is a late offer: the same, but for the SDP.
 * A re-INVITE (either party's; with SDP or without), an UPDATE or PRACK
 * with SDP is relayed when its call is.  A transit call (another node's,
 * through our path token) is not: that node relays it.
 */
bool
proxy_media_wanted(const struct sipmsg *m, const struct tp_addr *src,
    const struct pctx *ctx)
{
	struct slice		 body;
	struct sdp		 sdp;
	const struct sip_hline	*h;
	unsigned		 i;
	bool			 has;

	if (rtpengine_relay() == MEDIA_RELAY_NEVER)
		return (false);
	switch (m->method) {
	case SM_INVITE:
		if ((has = media_sdp(m, &body, &sdp)) == false &&
		    sdp_body(m, &body) != SDP_BODY_NONE)
			return (false);	/* not SDP we read: as it is */
		break;
	case SM_UPDATE:
	case SM_PRACK:
		return (m->to_tag.len > 0 && media_sdp(m, &body, &sdp) &&
		    dialog_enabled() && dialog_media(m));
	default:
		return (false);
	}
	if (m->to_tag.len > 0)
		return (dialog_enabled() && dialog_media(m));
	/*
	 * Another node's call through our path token (transit): the node it
	 * entered by anchors its media, once; its re-INVITEs follow that
	 * (dialog_media() is false here).
	 */
	if (ctx->call == NULL || dialog_call_transit(ctx->call))
		return (false);
	if (rtpengine_relay() == MEDIA_RELAY_ALWAYS ||
	    (has && sdp_private(&sdp)))
		return (true);
	if (m->via_host.len > 0 && location_nat_host(m->via_host,
	    m->via_port, src))
		return (true);
	if ((h = sipmsg_hdr(m, SH_CONTACT)) != NULL &&
	    location_nat(hdr_uri(sipmsg_hvalue(m, h)), src))
		return (true);
	for (i = 0; i < ctx->nloc; i++)
		if (ctx->loc[i].nat)
			return (true);
	return (false);
}

/* An offer or answer for m (its SDP body), from src. */
static void
media_request(struct rtpe_request *rq, enum rtpe_cmd cmd,
    const struct sipmsg *m, struct slice body, const struct sdp *sdp,
    const struct tp_addr *src, char *ip, size_t iplen)
{
	memset(rq, 0, sizeof(*rq));
	rq->cmd = cmd;
	rq->callid = m->callid;
	rq->from_tag = m->from_tag;
	rq->to_tag = m->to_tag;		/* none in a first offer */
	rq->sdp = body;
	rq->flags = MEDIA_FLAGS | rtpengine_ice_flag();
	ip[0] = '\0';
	if (src != NULL && src->len > 0)
		tp_addr_ip(src, ip, iplen);
	rq->received_from = (struct slice){ ip, strlen(ip) };
	/* A private address in the SDP: the SIP source is the endpoint. */
	if (sdp_private(sdp) && ip[0] != '\0')
		rq->flags |= RTPE_SIP_SOURCE;
}

/*
 * The same, from the party that answers m's dialog's offer the other way
 * (a late offer in a 1xx or 2xx, its answer in the ACK or PRACK): the
 * callee's tag is rtpengine's from-tag.
 */
static void
media_request_swapped(struct rtpe_request *rq, enum rtpe_cmd cmd,
    const struct sipmsg *m, struct slice body, const struct sdp *sdp,
    const struct tp_addr *src, char *ip, size_t iplen)
{
	media_request(rq, cmd, m, body, sdp, src, ip, iplen);
	rq->from_tag = m->to_tag;
	rq->to_tag = m->from_tag;
}

/* m with rtpengine's SDP, parsed; NULL (err filled) if it cannot be. */
static struct sipmsg *
media_rewrite(const struct sipmsg *m, struct slice sdp, char *err,
    size_t errlen)
{
	struct sipmsg	*nm;
	struct buf	 b;

	buf_init(&b, m->len + sdp.len + 64);
	if (sdp.len == 0 || sdp_replace_body(m, sdp, &b, err, errlen) != 0) {
		if (sdp.len == 0)
			snprintf(err, errlen, "no SDP in the reply");
		buf_cleanup(&b);
		return (NULL);
	}
	nm = sipmsg_new(b.p, b.len);
	buf_cleanup(&b);
	if (sipmsg_parse(nm, err, errlen) != 0) {
		sipmsg_free(nm);
		return (NULL);
	}
	return (nm);
}

/*
 * The offer failed: the call goes on with its own SDP (a warning, rate
 * limited), or gets 503 with media.on_failure = "503".
 */
static int
media_failed(struct pctx *ctx, const char *what, const char *why)
{
	char	cid[128];

	log_peer("proxy %s: rtpengine %s failed (%s), %s",
	    proxy_ctx_callid(ctx, cid, sizeof(cid)), what, why,
	    rtpengine_on_failure() == MEDIA_FAIL_503 && ctx->call != NULL &&
	    strcmp(what, "offer") == 0 ? "503" : "media not relayed");
	if (strcmp(what, "offer") == 0 && ctx->call != NULL &&
	    rtpengine_on_failure() == MEDIA_FAIL_503)
		return (503);	/* a re-INVITE goes on: its call is up */
	return (0);
}

static bool
media_open(const struct pctx *ctx)
{
	return (ctx->st != NULL && !ctx->answered && !ctx->final_sent &&
	    !ctx->cancelled);
}

static void
media_offer_done(void *arg, const struct rtpe_result *res)
{
	struct pctx	*ctx = arg;
	struct pmedia	*pm = ctx->media;
	const struct sipmsg *m;
	char		 err[160], cid[128];
	int		 code = 0;

	pm->offer = NULL;
	m = ctx->st != NULL ? txn_server_request(ctx->st) : NULL;
	if (!media_open(ctx) || m == NULL) {
		ctx->starting--;	/* nothing to start */
		/*
		 * Cancelled (487 went) or gone while rtpengine thought: a new
		 * call's session goes (a re-INVITE's call stays up).
		 */
		if (ctx->call != NULL && res->status == RTPE_OK && m != NULL)
			proxy_media_end(m->callid, m->from_tag,
			    (struct slice){ NULL, 0 });
		else if (ctx->call != NULL && res->status == RTPE_OK)
			log_info("proxy %s: offer answered after the call "
			    "went; rtpengine's own timeout ends it",
			    proxy_ctx_callid(ctx, cid, sizeof(cid)));
		proxy_ctx_unref(ctx);
		return;
	}
	if (res->status != RTPE_OK)
		code = media_failed(ctx, "offer", res->why);
	else if ((pm->fwd = media_rewrite(m, res->sdp, err,
	    sizeof(err))) == NULL) {
		if (ctx->call != NULL)
			proxy_media_end(m->callid, m->from_tag,
			    (struct slice){ NULL, 0 });
		code = media_failed(ctx, "offer", err);
	} else {
		pm->relayed = !pm->answer;
		if (pm->answer)	/* the callee's offer is answered */
			rtpengine_call_mark(m->callid, 0, RTPE_MARK_PENDING);
		dialog_call_media(ctx->call);
		log_info("proxy %s: media relayed by %s%s",
		    proxy_ctx_callid(ctx, cid, sizeof(cid)), res->uri,
		    pm->answer ? " (the PRACK answers the late offer)" : "");
	}
	pm->go(ctx, code);
	proxy_ctx_unref(ctx);	/* the reference the offer held */
}

/*
 * Ask rtpengine for the offer of m (the INVITE of ctx, from src); the
 * branches of hop wait for its answer, then go(ctx, 0) starts them (or
 * go(ctx, 503) refuses the call).  The server transaction answers
 * retransmissions meanwhile, and a CANCEL finds it.
 */
void
proxy_media_offer(struct pctx *ctx, const struct sipmsg *m,
    const struct tp_addr *src, const struct hop *hop, proxy_media_go_fn *go)
{
	struct pmedia		*pm;
	struct rtpe_request	 rq;
	struct slice		 body;
	struct sdp		 sdp;
	char			 ip[64], err[160];
	int			 code;

	pm = ctx->media = xcalloc(1, sizeof(*pm));
	pm->go = go;
	pm->d = (uint8_t)hop->d;
	pm->route = hop->route;
	if (hop->d == DEC_HOP) {
		pm->ruri = hop->ruri;
		pm->dest = hop->dest;
	}
	ctx->starting++;	/* no evaluation, no settling meanwhile */
	if (!media_sdp(m, &body, &sdp)) {
		/* A late offer: it comes in a 1xx or 2xx. */
		pm->late = true;
		go(ctx, 0);
		return;
	}
	if (m->method == SM_PRACK && (rtpengine_call_marks(m->callid) &
	    RTPE_MARK_PENDING)) {
		/* The answer to the offer of a reliable 1xx. */
		pm->answer = true;
		media_request_swapped(&rq, RTPE_ANSWER, m, body, &sdp, src,
		    ip, sizeof(ip));
	} else
		media_request(&rq, RTPE_OFFER, m, body, &sdp, src, ip,
		    sizeof(ip));
	ctx->refs++;
	pm->offer = rtpengine_send(&rq, media_offer_done, ctx, err,
	    sizeof(err));
	if (pm->offer == NULL) {
		ctx->refs--;
		code = media_failed(ctx, "offer", err);
		go(ctx, code);
	}
}

static void
media_ans_free(struct pmedia_ans *a)
{
	rtpengine_cancel(a->req);
	sipmsg_free(a->resp);
	free(a);
}

static bool
media_same_tag(const struct sipmsg *a, const struct sipmsg *b)
{
	return (a->to_tag.len == b->to_tag.len &&
	    memcmp(a->to_tag.p, b->to_tag.p, a->to_tag.len) == 0);
}

/* The media of a's branch goes: rtpengine's delete with its To tag. */
static void
media_release(struct pctx *ctx, struct pmedia_ans *a)
{
	struct rtpe_request	 rq;
	char			 err[160], cid[128];

	a->released = true;
	memset(&rq, 0, sizeof(rq));
	rq.cmd = RTPE_DELETE;
	rq.callid = a->resp->callid;
	rq.from_tag = a->resp->from_tag;
	rq.to_tag = a->resp->to_tag;
	if (rtpengine_send(&rq, media_delete_done, NULL, err,
	    sizeof(err)) == NULL)
		log_info("proxy %s: rtpengine delete of branch " SLICE_FMT
		    ": %s", proxy_ctx_callid(ctx, cid, sizeof(cid)),
		    SLICE_ARG(a->resp->to_tag), err);
	else
		log_info("proxy %s: rtpengine delete of branch " SLICE_FMT
		    " (not answered)", proxy_ctx_callid(ctx, cid, sizeof(cid)),
		    SLICE_ARG(a->resp->to_tag));
}

/* A kept 1xx whose To tag no 2xx of the call carries (an early dialog). */
static bool
media_early_only(const struct pmedia *pm, const struct pmedia_ans *a)
{
	const struct pmedia_ans	*b;

	if (a->resp->status >= 200 || a->released || a->req != NULL)
		return (false);
	for (b = pm->ans; b != NULL; b = b->next)
		if (b->resp->status >= 200 && media_same_tag(a->resp, b->resp))
			return (false);	/* a dialog: its BYE ends it */
	return (true);
}

/*
 * The 2xx won was answered: every other branch that had early media (a
 * 1xx with SDP under another To tag, that no 2xx confirmed) has its media
 * deleted, that branch only (rtpengine's delete with its To tag).
 */
static void
media_release_losers(struct pctx *ctx, const struct sipmsg *won)
{
	struct pmedia_ans	*a;

	for (a = ctx->media->ans; a != NULL; a = a->next)
		if (media_early_only(ctx->media, a) &&
		    !media_same_tag(a->resp, won))
			media_release(ctx, a);
}

/*
 * Branch slot of a call not answered yet ended (a final failure, Timer
 * C): its early media goes, while another branch's stays; else the
 * call's answer or its end deletes it (a delete that left rtpengine no
 * branch might end the whole call).
 */
void
proxy_media_branch_done(struct pctx *ctx, unsigned slot)
{
	struct pmedia		*pm = ctx->media;
	struct pmedia_ans	*a;

	if (pm == NULL || !pm->relayed || ctx->call == NULL)
		return;
	for (a = pm->ans; a != NULL; a = a->next)
		if (a->slot != slot && media_early_only(pm, a))
			break;
	if (a == NULL)
		return;		/* no other branch has media */
	for (a = pm->ans; a != NULL; a = a->next)
		if (a->slot == slot && media_early_only(pm, a))
			media_release(ctx, a);
}

/* resp, a 2xx, answers the call: noted, and the others' media goes. */
static void
media_won(struct pctx *ctx, const struct sipmsg *resp)
{
	if (ctx->call != NULL && rtpengine_call_answered(resp->callid,
	    resp->to_tag))
		media_release_losers(ctx, resp);
}

static void
media_answer_done(void *arg, const struct rtpe_result *res)
{
	struct pmedia_ans	*a = arg, *o, **pp;
	struct pctx		*ctx = a->ctx;
	struct pmedia		*pm = ctx->media;
	struct sipmsg		*nm;
	char			 err[160], cid[128];
	const char		*what = a->late ? "late offer" : "answer";
	bool			 ok2xx = a->resp->status >= 200, ok = false;

	a->req = NULL;
	if (res->status != RTPE_OK)
		media_failed(ctx, what, res->why);
	else if ((nm = media_rewrite(a->resp, res->sdp, err,
	    sizeof(err))) == NULL)
		media_failed(ctx, what, err);
	else {
		sipmsg_free(a->resp);
		a->resp = nm;
		ok = true;
	}
	if (ok && a->late) {
		/* The caller answers in the ACK or PRACK. */
		rtpengine_call_mark(a->resp->callid, RTPE_MARK_PENDING, 0);
		if (!pm->relayed)
			log_info("proxy %s: media relayed by %s (late offer)",
			    proxy_ctx_callid(ctx, cid, sizeof(cid)), res->uri);
		pm->relayed = true;
		dialog_call_media(ctx->call);
	}
	if (ok2xx)
		pm->held--;
	if (ok2xx && ok && !ctx->answered)
		media_won(ctx, a->resp);
	a->go(ctx, a->slot, a->resp);
	if (!ok2xx) {
		/* A 1xx is kept, once per To tag: its branch's media. */
		for (o = pm->ans; o != NULL; o = o->next)
			if (o != a && o->resp->status < 200 &&
			    media_same_tag(o->resp, a->resp))
				break;
		if (!ok || o != NULL) {
			for (pp = &pm->ans; *pp != NULL; pp = &(*pp)->next)
				if (*pp == a) {
					*pp = a->next;
					break;
				}
			media_ans_free(a);
		}
	}
	proxy_ctx_unref(ctx);	/* the reference the answer held */
}

/*
 * A 1xx or 2xx of a relayed call, from the branch slot at callee: false
 * when it is not ours to hold (no SDP, no relay), else it is held for
 * rtpengine's answer and go(ctx, slot, response) relays it.  A 2xx
 * retransmission while its answer is asked for is dropped; one after it
 * gets the same rewritten bytes (go at once).
 */
bool
proxy_media_answer(struct pctx *ctx, unsigned slot, const struct sipmsg *resp,
    const struct tp_addr *callee, proxy_media_resp_fn *go)
{
	struct pmedia		*pm = ctx->media;
	struct pmedia_ans	*a;
	struct rtpe_request	 rq;
	struct slice		 body;
	struct sdp		 sdp;
	char			 ip[64], err[160], cid[128];
	bool			 ok2xx = resp->status >= 200;

	if (pm == NULL || (!pm->relayed && !pm->late) ||
	    resp->to_tag.len == 0)
		return (false);
	for (a = pm->ans; a != NULL; a = a->next)
		if ((a->resp->status >= 200) == ok2xx &&
		    a->resp->to_tag.len == resp->to_tag.len &&
		    memcmp(a->resp->to_tag.p, resp->to_tag.p,
		    resp->to_tag.len) == 0) {
			if (a->req != NULL) {
				log_debug("proxy %s: %d retransmitted while "
				    "rtpengine answers, dropped",
				    proxy_ctx_callid(ctx, cid, sizeof(cid)),
				    resp->status);
				return (true);
			}
			if (ok2xx) {
				go(ctx, slot, a->resp);	/* as relayed */
				return (true);
			}
		}
	if (!media_sdp(resp, &body, &sdp)) {
		if (ok2xx && !ctx->answered && pm->held == 0)
			media_won(ctx, resp);	/* its SDP came before */
		return (false);
	}
	a = xcalloc(1, sizeof(*a));
	a->ctx = ctx;
	a->go = go;
	a->slot = slot;
	a->resp = sipmsg_new(resp->buf, resp->len);
	if (sipmsg_parse(a->resp, err, sizeof(err)) != 0) {
		media_ans_free(a);	/* cannot happen: it parsed */
		return (false);
	}
	(void)media_sdp(a->resp, &body, &sdp);	/* into the copy */
	if ((a->late = pm->late))	/* the callee's offer */
		media_request_swapped(&rq, RTPE_OFFER, a->resp, body, &sdp,
		    callee, ip, sizeof(ip));
	else
		media_request(&rq, RTPE_ANSWER, a->resp, body, &sdp, callee,
		    ip, sizeof(ip));
	if ((a->req = rtpengine_send(&rq, media_answer_done, a, err,
	    sizeof(err))) == NULL) {
		media_failed(ctx, a->late ? "late offer" : "answer", err);
		media_ans_free(a);
		return (false);
	}
	ctx->refs++;
	if (ok2xx)
		pm->held++;
	a->next = pm->ans;
	pm->ans = a;
	return (true);
}

/* A 2xx retransmitted after its transaction went, on its way up. */
struct media_stray {
	struct sipmsg	*resp;		/* owned */
	struct tp_sock	*sock;		/* it came on */
};

static void
media_stray_done(void *arg, const struct rtpe_result *res)
{
	struct media_stray	*ms = arg;
	struct sipmsg		*nm = NULL;
	char			 err[160];

	if (res->status != RTPE_OK ||
	    (nm = media_rewrite(ms->resp, res->sdp, err, sizeof(err))) == NULL)
		log_peer("proxy " SLICE_FMT ": rtpengine answer for a "
		    "retransmitted %d failed (%s), not relayed",
		    SLICE_ARG(ms->resp->callid), ms->resp->status,
		    res->status != RTPE_OK ? res->why : err);
	else
		proxy_reply_stray(nm, ms->sock);
	sipmsg_free(nm);
	sipmsg_free(ms->resp);
	free(ms);
}

/*
 * A 2xx of a relayed call that matches no transaction (retransmitted
 * after its client transaction went): asked again (rtpengine answers the
 * same for the same tags), so the caller gets the same SDP as the first
 * time; never the callee's own.  false: not such a 2xx.
 */
bool
proxy_media_stray(const struct sipmsg *m, struct tp_sock *sock)
{
	struct media_stray	*ms;
	struct rtpe_request	 rq;
	struct slice		 body;
	struct sdp		 sdp;
	char			 ip[64], err[160];

	if (m->status < 200 || m->status >= 300 || m->method != SM_INVITE ||
	    !dialog_enabled() || !dialog_media(m))
		return (false);
	if (!media_sdp(m, &body, &sdp))
		return (false);
	ms = xcalloc(1, sizeof(*ms));
	ms->sock = sock;
	ms->resp = sipmsg_new(m->buf, m->len);
	if (sipmsg_parse(ms->resp, err, sizeof(err)) != 0)
		goto fail;
	(void)media_sdp(ms->resp, &body, &sdp);
	if (rtpengine_call_marks(m->callid) & RTPE_MARK_PENDING)
		media_request_swapped(&rq, RTPE_OFFER, ms->resp, body, &sdp,
		    NULL, ip, sizeof(ip));
	else
		media_request(&rq, RTPE_ANSWER, ms->resp, body, &sdp, NULL,
		    ip, sizeof(ip));
	if (rtpengine_send(&rq, media_stray_done, ms, err, sizeof(err)) != NULL)
		return (true);
fail:
	sipmsg_free(ms->resp);
	free(ms);
	return (true);	/* dropped: the callee retransmits */
}

static void
media_delete_done(void *arg, const struct rtpe_result *res)
{
	(void)arg;
	if (res->status != RTPE_OK)
		log_info("proxy: rtpengine delete: %s", res->why);
}

/*
 * dialog.c: a relayed call ended (Call-ID, the caller's tag, the To tag
 * of the dialog that ended; empty: the call itself).  The dialog that
 * answered the call, or one we cannot tell: the whole call is deleted.
 * Another dialog of a forked call (a second 2xx): its branch only.
 */
void
proxy_media_end(struct slice callid, struct slice from_tag,
    struct slice to_tag)
{
	struct rtpe_request	 rq;
	char			 err[160];
	bool			 branch;

	branch = to_tag.len > 0 &&
	    rtpengine_call_is_answered(callid, to_tag) == 0;
	memset(&rq, 0, sizeof(rq));
	rq.cmd = RTPE_DELETE;
	rq.callid = callid;
	rq.from_tag = from_tag;
	if (branch)
		rq.to_tag = to_tag;
	if (rtpengine_send(&rq, media_delete_done, NULL, err,
	    sizeof(err)) == NULL)
		log_info("proxy " SLICE_FMT ": rtpengine delete: %s",
		    SLICE_ARG(callid), err);
	else if (branch)
		log_info("proxy " SLICE_FMT ": rtpengine delete of branch "
		    SLICE_FMT " (not answered)", SLICE_ARG(callid),
		    SLICE_ARG(to_tag));
	else
		log_info("proxy " SLICE_FMT ": rtpengine delete",
		    SLICE_ARG(callid));
}

/* An ACK with the answer to a late offer, waiting for rtpengine's. */
struct media_ack {
	struct sipmsg		*ack;		/* owned */
	struct tp_sock		*sock;		/* it came on */
	struct tp_addr		 src;
	proxy_media_ack_fn	*go;
};

static void
media_ack_done(void *arg, const struct rtpe_result *res)
{
	struct media_ack	*ma = arg;
	struct sipmsg		*nm = NULL;
	char			 err[160];

	if (res->status != RTPE_OK ||
	    (nm = media_rewrite(ma->ack, res->sdp, err, sizeof(err))) == NULL)
		log_peer("proxy " SLICE_FMT ": rtpengine answer for the ACK "
		    "failed (%s), media not relayed",
		    SLICE_ARG(ma->ack->callid),
		    res->status != RTPE_OK ? res->why : err);
	else
		rtpengine_call_mark(nm->callid, 0, RTPE_MARK_PENDING);
	ma->go(nm != NULL ? nm : ma->ack, ma->sock, &ma->src);
	sipmsg_free(nm);
	sipmsg_free(ma->ack);
	free(ma);
}

/*
 * An ACK with SDP in a relayed call: the caller's answer to the offer of
 * a late-offer call's 2xx (RFC 3264: an ACK carries SDP only so).  It is
 * asked for (the tags swapped: the callee offered), then go() forwards
 * it with rtpengine's SDP; on failure as it came.  false: not such an ACK
 * (forward it now).
 */
bool
proxy_media_ack(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, proxy_media_ack_fn *go)
{
	struct media_ack	*ma;
	struct rtpe_request	 rq;
	struct slice		 body;
	struct sdp		 sdp;
	char			 ip[64], err[160];

	if (rtpengine_relay() == MEDIA_RELAY_NEVER || m->to_tag.len == 0 ||
	    !dialog_enabled() || !media_sdp(m, &body, &sdp) ||
	    !dialog_media(m))
		return (false);
	ma = xcalloc(1, sizeof(*ma));
	ma->sock = sock;
	ma->src = *src;
	ma->go = go;
	ma->ack = sipmsg_new(m->buf, m->len);
	if (sipmsg_parse(ma->ack, err, sizeof(err)) != 0)
		goto fail;	/* cannot happen: it parsed */
	(void)media_sdp(ma->ack, &body, &sdp);
	media_request_swapped(&rq, RTPE_ANSWER, ma->ack, body, &sdp, src, ip,
	    sizeof(ip));
	if (rtpengine_send(&rq, media_ack_done, ma, err, sizeof(err)) != NULL)
		return (true);
	log_peer("proxy " SLICE_FMT ": rtpengine answer for the ACK failed "
	    "(%s), media not relayed", SLICE_ARG(m->callid), err);
fail:
	sipmsg_free(ma->ack);
	free(ma);
	return (false);
}
