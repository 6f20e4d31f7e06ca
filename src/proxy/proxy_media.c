/*
 * The media relay of the calls we keep dialogs of (issue 13): rtpengine's
 * offer with the INVITE's SDP before the INVITE is forwarded, its answer
 * with the SDP of a 1xx or 2xx before that goes upstream, its delete when
 * the call ends (dialog.c calls proxy_media_end()).  Nothing blocks: the
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

#define MEDIA_FLAGS	(RTPE_REPLACE_ORIGIN | RTPE_REPLACE_SESS_CONN | \
			    RTPE_ICE_REMOVE)

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
 * A re-INVITE with SDP (either party's) is relayed when its call is.
 */
bool
proxy_media_wanted(const struct sipmsg *m, const struct tp_addr *src,
    const struct pctx *ctx)
{
	struct slice		 body;
	struct sdp		 sdp;
	const struct sip_hline	*h;
	unsigned		 i;

	if (rtpengine_relay() == MEDIA_RELAY_NEVER || m->method != SM_INVITE ||
	    !media_sdp(m, &body, &sdp))
		return (false);
	if (m->to_tag.len > 0)
		return (dialog_enabled() && dialog_media(m));
	if (ctx->call == NULL)
		return (false);
	if (rtpengine_relay() == MEDIA_RELAY_ALWAYS || sdp_private(&sdp))
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
	rq->flags = MEDIA_FLAGS;
	ip[0] = '\0';
	if (src != NULL && src->len > 0)
		tp_addr_ip(src, ip, iplen);
	rq->received_from = (struct slice){ ip, strlen(ip) };
	/* A private address in the SDP: the SIP source is the endpoint. */
	if (sdp_private(sdp) && ip[0] != '\0')
		rq->flags |= RTPE_SIP_SOURCE;
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
			proxy_media_end(m->callid, m->from_tag);
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
			proxy_media_end(m->callid, m->from_tag);
		code = media_failed(ctx, "offer", err);
	} else {
		pm->relayed = true;
		dialog_call_media(ctx->call);
		log_info("proxy %s: media relayed by %s",
		    proxy_ctx_callid(ctx, cid, sizeof(cid)), res->uri);
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
	(void)media_sdp(m, &body, &sdp);	/* proxy_media_wanted() read it */
	media_request(&rq, RTPE_OFFER, m, body, &sdp, src, ip, sizeof(ip));
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

static void
media_answer_done(void *arg, const struct rtpe_result *res)
{
	struct pmedia_ans	*a = arg, **pp;
	struct pctx		*ctx = a->ctx;
	struct pmedia		*pm = ctx->media;
	struct sipmsg		*nm;
	char			 err[160];
	bool			 ok2xx = a->resp->status >= 200;

	a->req = NULL;
	if (res->status != RTPE_OK)
		media_failed(ctx, "answer", res->why);
	else if ((nm = media_rewrite(a->resp, res->sdp, err,
	    sizeof(err))) == NULL)
		media_failed(ctx, "answer", err);
	else {
		sipmsg_free(a->resp);
		a->resp = nm;
	}
	if (ok2xx)
		pm->held--;
	a->go(ctx, a->slot, a->resp);
	if (!ok2xx) {	/* a 1xx is not kept */
		for (pp = &pm->ans; *pp != NULL; pp = &(*pp)->next)
			if (*pp == a) {
				*pp = a->next;
				break;
			}
		media_ans_free(a);
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

	if (pm == NULL || !pm->relayed || resp->to_tag.len == 0)
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
	if (!media_sdp(resp, &body, &sdp))
		return (false);
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
	media_request(&rq, RTPE_ANSWER, a->resp, body, &sdp, callee, ip,
	    sizeof(ip));
	if ((a->req = rtpengine_send(&rq, media_answer_done, a, err,
	    sizeof(err))) == NULL) {
		media_failed(ctx, "answer", err);
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
	media_request(&rq, RTPE_ANSWER, ms->resp, body, &sdp, NULL, ip,
	    sizeof(ip));
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

/* dialog.c: a relayed call ended (Call-ID, the caller's tag): delete. */
void
proxy_media_end(struct slice callid, struct slice from_tag)
{
	struct rtpe_request	 rq;
	char			 err[160];

	memset(&rq, 0, sizeof(rq));
	rq.cmd = RTPE_DELETE;
	rq.callid = callid;
	rq.from_tag = from_tag;
	if (rtpengine_send(&rq, media_delete_done, NULL, err,
	    sizeof(err)) == NULL)
		log_info("proxy " SLICE_FMT ": rtpengine delete: %s",
		    SLICE_ARG(callid), err);
	else
		log_info("proxy " SLICE_FMT ": rtpengine delete",
		    SLICE_ARG(callid));
}
