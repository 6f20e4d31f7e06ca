/*
 * Building messages by splicing: what is forwarded keeps the bytes it came
 * with; only Via, Route, Max-Forwards and Content-Length are rewritten.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sipbuild.h"
#include "xmalloc.h"

#define SERVER_HDR	"Server: Osprey/" PACKAGE_VERSION "\r\n"

/*
 * Bytes of a message we received, with every bare LF (a line end, or a
 * folded line break) sent as CRLF: RFC 3261 7 ends each line with CRLF,
 * and a line that the next hop frames differently from us is how
 * smuggling starts.  The scanner refuses a bare CR in any message, and a
 * bare LF in a response; a request keeps its lines, framed anew.
 */
static void
add_lines(struct buf *out, const char *p, size_t len)
{
	const char	*end = p + len, *nl;

	while ((nl = memchr(p, '\n', end - p)) != NULL) {
		if (nl == p || nl[-1] != '\r') {
			buf_add(out, p, nl - p);
			buf_add(out, "\r", 1);
			buf_add(out, "\n", 1);
		} else
			buf_add(out, p, nl + 1 - p);
		p = nl + 1;
	}
	buf_add(out, p, end - p);
}

static void
add_hdr(struct buf *out, const char *name, struct slice v)
{
	buf_adds(out, name);
	buf_add(out, ": ", 2);
	add_lines(out, v.p, v.len);
	buf_add(out, "\r\n", 2);
}

/* One header line of n values: "name: v1, v2\r\n". */
static void
add_list(struct buf *out, const char *name, const struct slice *v,
    unsigned n)
{
	unsigned	i;

	buf_adds(out, name);
	buf_add(out, ": ", 2);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_add(out, ", ", 2);
		add_lines(out, v[i].p, v[i].len);
	}
	buf_add(out, "\r\n", 2);
}

static void
add_raw(struct buf *out, const struct sipmsg *m, const struct sip_hline *h)
{
	/* The scanner saw every line end there: all CRLF, or not. */
	if (m->lf_bare)
		add_lines(out, m->buf + h->off, h->len);
	else
		buf_add(out, m->buf + h->off, h->len);
	if (h->len == 0 || m->buf[h->off + h->len - 1] != '\n')
		buf_add(out, "\r\n", 2);	/* last line without CRLF */
}

/*
 * The Via lines of m, with the first value replaced by newtop (NULL: the
 * first value is dropped, as a proxy does to a response it forwards).
 */
void
sipbuild_vias(const struct sipmsg *m, const struct slice *newtop,
    struct buf *out)
{
	unsigned	 i;
	bool		 first = true;

	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];
		struct slice		 v, rest;
		const char		*end;

		if (h->id != SH_VIA)
			continue;
		if (!first) {
			add_raw(out, m, h);
			continue;
		}
		first = false;
		if (newtop != NULL)
			add_hdr(out, "Via", *newtop);
		v = sipmsg_hvalue(m, h);
		end = v.p + v.len;
		rest.p = m->via.p + m->via.len;
		while (rest.p < end && (*rest.p == ',' || *rest.p == ' ' ||
		    *rest.p == '\t' || *rest.p == '\r' || *rest.p == '\n'))
			rest.p++;
		rest.len = end - rest.p;
		if (rest.len > 0)
			add_hdr(out, "Via", rest);
	}
}

/*
 * The first Via value of a request as we answer or forward it: rport gets
 * the source port and received the source address (RFC 3261 18.2.1, RFC 3581).
 */
void
sipbuild_top_via(const struct sipmsg *m, const char *src_ip,
    uint16_t src_port, struct buf *out)
{
	struct slice	 v = m->via, rport, recv, host = m->via_host;
	char		 num[16];
	size_t		 iplen = strlen(src_ip);
	const char	*p = v.p, *end = v.p + v.len;

	if (m->via_bad) {
		/* Broken parameters: echoed as they came (a reply must carry
		 * the request's Via), with received. */
		buf_add(out, v.p, v.len);
		buf_adds(out, ";received=");
		buf_adds(out, src_ip);
		return;
	}
	if (host.len > 2 && host.p[0] == '[') {
		host.p++;
		host.len -= 2;
	}
	/* rport without a value gets the source port (RFC 3581 4). */
	if (m->via_rport && sipmsg_via_param(m, "rport", &rport) &&
	    rport.len == 0) {
		buf_add(out, p, rport.p - p);
		snprintf(num, sizeof(num), "=%u", src_port);
		buf_adds(out, num);
		p = rport.p;
	}
	/* received is always the source address (RFC 3261 18.2.1). */
	if (sipmsg_via_param(m, "received", &recv) && recv.p >= p) {
		if (recv.len > 0 || recv.p[-1] == '=') {
			buf_add(out, p, recv.p - p);
			buf_adds(out, src_ip);
		} else {
			buf_add(out, p, recv.p - p);
			buf_add(out, "=", 1);
			buf_adds(out, src_ip);
		}
		p = recv.p + recv.len;
		buf_add(out, p, end - p);
		return;
	}
	buf_add(out, p, end - p);
	if (m->via_rport || host.len != iplen ||
	    strncasecmp(host.p, src_ip, iplen) != 0) {
		buf_adds(out, ";received=");
		buf_adds(out, src_ip);
	}
}

/* "SIP/2.0 code reason" and CRLF; code is 100-699. */
static void
status_line(struct buf *out, int code, const char *reason)
{
	buf_adds(out, "SIP/2.0 ");
	buf_addu(out, (unsigned long)code);
	buf_add(out, " ", 1);
	buf_adds(out, reason);
	buf_add(out, "\r\n", 2);
}

void
sipbuild_reply(const struct sipmsg *req, int code, const char *reason,
    const char *totag, const struct slice *topvia, const char *extra,
    struct buf *out)
{
	const struct sip_hline	*h;

	status_line(out, code, reason ? reason : sip_reason(code));
	sipbuild_vias(req, topvia, out);
	if ((h = sipmsg_hdr(req, SH_FROM)) != NULL)
		add_hdr(out, "From", sipmsg_hvalue(req, h));
	if ((h = sipmsg_hdr(req, SH_TO)) != NULL) {
		add_hdr(out, "To", sipmsg_hvalue(req, h));
		if (req->to_tag.len == 0 && code > 100 && totag != NULL) {
			out->len -= 2;
			buf_adds(out, ";tag=");
			buf_adds(out, totag);
			buf_add(out, "\r\n", 2);
		}
	}
	if ((h = sipmsg_hdr(req, SH_CALL_ID)) != NULL)
		add_hdr(out, "Call-ID", sipmsg_hvalue(req, h));
	if ((h = sipmsg_hdr(req, SH_CSEQ)) != NULL)
		add_hdr(out, "CSeq", sipmsg_hvalue(req, h));
	if (extra != NULL)
		buf_adds(out, extra);
	buf_adds(out, SERVER_HDR "Content-Length: 0\r\n\r\n");
}

/*
 * The Unsupported line of a 420: every Proxy-Require option of req (RFC
 * 3261 16.3 step 6, 20.40), however long.  It was built in a fixed buffer
 * that cut long lists short, and with them the CRLF (fuzzer).
 */
void
sipbuild_unsupported(const struct sipmsg *req, struct buf *out)
{
	struct slice	*v;
	unsigned	 n;

	n = sipmsg_values(req, SH_PROXY_REQUIRE, NULL, 0);
	v = xcalloc(n + 1, sizeof(*v));
	n = sipmsg_values(req, SH_PROXY_REQUIRE, v, n);
	add_list(out, "Unsupported", v, n);
	free(v);
}

void
sipbuild_request(const struct sipmsg *m, const struct fwd *f, struct buf *out)
{
	unsigned	i;
	bool		routes_done = false;

	buf_add(out, m->method_s.p, m->method_s.len);
	buf_add(out, " ", 1);
	buf_add(out, f->ruri.p, f->ruri.len);
	buf_adds(out, " SIP/2.0\r\nVia: ");
	buf_adds(out, f->via);
	buf_add(out, "\r\n", 2);
	sipbuild_vias(m, &f->topvia, out);
	if (f->rr != NULL) {	/* after the Vias: some peers expect them together */
		buf_adds(out, "Record-Route: ");
		buf_adds(out, f->rr);
		buf_add(out, "\r\n", 2);
	}
	if (f->path != NULL) {	/* before any Path already there (3327 4.2) */
		buf_adds(out, "Path: ");
		buf_adds(out, f->path);
		buf_add(out, "\r\n", 2);
	}
	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];

		switch (h->id) {
		case SH_VIA:
		case SH_MAX_FORWARDS:
		case SH_CONTENT_LENGTH:
			continue;
		case SH_ROUTE:
			if (routes_done)
				continue;
			routes_done = true;
			sipbuild_routes(f->routes, f->nroutes, out);
			continue;
		default:
			if (f->drop == NULL || !f->drop[i])
				add_raw(out, m, h);
		}
	}
	if (!routes_done)
		sipbuild_routes(f->routes, f->nroutes, out);
	if (f->extra != NULL)
		buf_adds(out, f->extra);
	buf_adds(out, "Max-Forwards: ");
	buf_addu(out, (unsigned long)f->max_forwards);
	buf_adds(out, "\r\nContent-Length: ");
	buf_addu(out, m->body_len);
	buf_add(out, "\r\n\r\n", 4);
	buf_add(out, m->buf + m->body_off, m->body_len);
}

void
sipbuild_routes(const struct slice *routes, unsigned n, struct buf *out)
{
	if (n > 0)
		add_list(out, "Route", routes, n);
}

void
sipbuild_response(const struct sipmsg *r, int code, const char *extra,
    struct buf *out)
{
	unsigned	i;
	size_t		sl = r->h ? r->h[0].off : r->hdr_end;

	if (code == 0 || code == r->status)
		buf_add(out, r->buf, sl);
	else
		status_line(out, code, sip_reason(code));
	sipbuild_vias(r, NULL, out);
	for (i = 0; i < r->nh; i++)
		if (r->h[i].id != SH_VIA && r->h[i].id != SH_CONTENT_LENGTH)
			add_raw(out, r, &r->h[i]);
	if (extra != NULL)
		buf_adds(out, extra);
	buf_adds(out, "Content-Length: ");
	buf_addu(out, r->body_len);
	buf_add(out, "\r\n\r\n", 4);
	buf_add(out, r->buf + r->body_off, r->body_len);
}

/* The lines a CANCEL or an ACK shares with the INVITE we sent. */
static void
copy_common(const struct sipmsg *inv, bool with_to, struct buf *out)
{
	unsigned	i;
	bool		via_done = false;

	for (i = 0; i < inv->nh; i++) {
		const struct sip_hline	*h = &inv->h[i];

		switch (h->id) {
		case SH_VIA:
			if (!via_done)
				add_raw(out, inv, h);	/* ours: one value */
			via_done = true;
			break;
		case SH_TO:
			if (!with_to)
				break;
			/* FALLTHROUGH */
		case SH_ROUTE:
		case SH_FROM:
		case SH_CALL_ID:
			add_raw(out, inv, h);
			break;
		default:
			break;
		}
	}
}

void
sipbuild_cancel(const struct sipmsg *inv, const char *reason, struct buf *out)
{
	buf_adds(out, "CANCEL ");
	buf_add(out, inv->ruri.p, inv->ruri.len);
	buf_adds(out, " SIP/2.0\r\n");
	copy_common(inv, true, out);
	buf_addf(out, "CSeq: %u CANCEL\r\nMax-Forwards: 70\r\n", inv->cseq);
	if (reason != NULL)
		buf_addf(out, "Reason: %s\r\n", reason);
	buf_adds(out, "Content-Length: 0\r\n\r\n");
}

/*
 * The ACK for a non-2xx final response to the INVITE we sent (RFC 3261
 * 17.1.1.3): the INVITE's lines, the response's To.  Only from a response
 * that parsed and whose To libosip2 takes, whatever its status: a 487 and
 * then a 302 with a broken To went out as an ACK nobody could parse
 * (fuzzer).  Returns -1, out untouched, for any other.
 */
int
sipbuild_ack(const struct sipmsg *inv, const struct sipmsg *resp,
    struct buf *out)
{
	if (!inv->parsed || !resp->parsed || !sipmsg_addr_ok(resp, SH_TO))
		return (-1);
	buf_adds(out, "ACK ");
	buf_add(out, inv->ruri.p, inv->ruri.len);
	buf_adds(out, " SIP/2.0\r\n");
	copy_common(inv, false, out);
	add_hdr(out, "To", sipmsg_hvalue(resp, sipmsg_hdr(resp, SH_TO)));
	buf_addf(out, "CSeq: %u ACK\r\nMax-Forwards: 70\r\n"
	    "Content-Length: 0\r\n\r\n", inv->cseq);
	return (0);
}
