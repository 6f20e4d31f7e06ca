/*
 * SIP over WebSocket, the server side of one connection: RFC 6455 and
 * RFC 7118.
 *
 * The opening handshake is an HTTP/1.1 request read here: it is scanned
 * for its CRLFCRLF one byte at a time, never twice (ws->hs_scanned), and
 * cut off at max_handshake bytes; then its lines are judged as a careful
 * server would (RFC 6455 4.2.1, RFC 7118 5) and answered with a 101 or an
 * error whose reason phrase names what is wrong.  The reason never quotes
 * the request, so nothing a peer sent is reflected.
 *
 * Frames go through wslay's frame API (wslay_frame_recv(),
 * wslay_frame_send()): it reads frame headers, checks the length forms
 * and the control frame limits (125 bytes, no fragments) and unmasks the
 * payload.  Its event API would put messages together too, but it does
 * three things a SIP transport cannot take: it answers the errors the
 * frame layer finds (a fragmented or long control frame, a length not in
 * its shortest form) with a close frame without the 1002 code RFC 6455
 * 7.4.1 asks for; it delivers every message it finds in a read at once
 * from inside wslay_event_recv(), so handing them out one per call, like
 * tp_frame_feed(), would need a second queue; and its read callback may
 * take more input than one message.  Over the frame API the rules of
 * messages are here: a continuation only inside a fragmented message, no
 * new message inside one, control frames between fragments, the mask a
 * client must set (RFC 6455 5.1), no RSV bits (no extension is
 * negotiated), reserved opcodes refused, max_message_size checked when a
 * frame's header comes (wslay reports it with the first payload bytes),
 * before any more of the payload is kept, and text that must be UTF-8
 * (8.1).  The read callback takes at most what wslay asks for (its buffer
 * is 4 KB); bytes it holds stay there for the next call.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "log.h"
#include "tp_ws.h"
#include "xmalloc.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* The handshake scanner's states (ws->hs_lex). */
enum {
	HS_LINE,	/* in a line */
	HS_CR,		/* a CR ended a line: LF must follow */
	HS_BOL,		/* after CRLF: a line, or the end */
	HS_END_CR	/* a CR at the start of a line: the end, if LF */
};

#define SCAN_MORE	0
#define SCAN_DONE	1
#define SCAN_FAIL	(-1)

/* What the header lines of the request said. */
struct tp_ws_req {
	unsigned	 hosts;
	bool		 host_empty;
	bool		 upgrade_ws;	/* Upgrade lists websocket */
	bool		 conn_upgrade;	/* Connection lists Upgrade */
	unsigned	 versions;
	const char	*version;
	size_t		 version_len;
	unsigned	 keys;
	const char	*key;
	size_t		 key_len;
	bool		 proto_sip;	/* Sec-WebSocket-Protocol lists sip */
	unsigned	 origins;
	const char	*origin;
	size_t		 origin_len;
	bool		 body;		/* Content-Length not 0, or chunked */
};

static ssize_t
tp_ws_recv_cb(uint8_t *buf, size_t len, int flags, void *arg)
{
	struct tp_ws	*ws = arg;
	int		 n;

	(void)flags;
	if (ws->in == NULL)
		return (0);
	n = evbuffer_remove(ws->in, buf, len);
	return (n > 0 ? n : 0);		/* 0: wslay says WANT_READ */
}

static ssize_t
tp_ws_send_cb(const uint8_t *data, size_t len, int flags, void *arg)
{
	struct tp_ws	*ws = arg;

	(void)flags;
	if (ws->out == NULL || evbuffer_add(ws->out, data, len) == -1)
		return (-1);
	return ((ssize_t)len);
}

/* A server never masks (RFC 6455 5.1); wslay asks only if we did. */
static int
tp_ws_genmask_cb(uint8_t *buf, size_t len, void *arg)
{
	(void)buf;
	(void)len;
	(void)arg;
	return (-1);
}

void
tp_ws_init(struct tp_ws *ws, const struct tp_ws_settings *set)
{
	struct wslay_frame_callbacks	cb = {
		tp_ws_send_cb, tp_ws_recv_cb, tp_ws_genmask_cb
	};

	memset(ws, 0, sizeof(*ws));
	ws->set = *set;
	ws->phase = TP_WS_PHASE_HANDSHAKE;
	ws->hs_lex = HS_LINE;
	ws->close_rx = WSLAY_CODE_NO_STATUS_RCVD;
	if (wslay_frame_context_init(&ws->wslay, &cb, ws) != 0)
		fatal("wslay_frame_context_init");
}

void
tp_ws_cleanup(struct tp_ws *ws)
{
	if (ws->wslay != NULL)
		wslay_frame_context_free(ws->wslay);
	ws->wslay = NULL;
	free(ws->msg);
	ws->msg = NULL;
	ws->msg_cap = ws->msg_len = 0;
}

/* UTF-8 as RFC 3629 has it: no overlong forms, surrogates, or > 10FFFF. */
static bool
tp_ws_utf8(const unsigned char *p, size_t n)
{
	size_t		i = 0, k, more;
	unsigned char	c, lo, hi;

	while (i < n) {
		c = p[i++];
		if (c < 0x80)
			continue;
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			more = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return (false);
		for (k = 0; k < more; k++, i++) {
			if (i >= n || p[i] < lo || p[i] > hi)
				return (false);
			lo = 0x80;
			hi = 0xbf;
		}
	}
	return (true);
}

void
tp_ws_accept_key(const char *key, size_t len, char acc[29])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;
	EVP_MD_CTX	*c;

	if ((c = EVP_MD_CTX_new()) == NULL)
		fatalx("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(c, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(c, key, len) != 1 ||
	    EVP_DigestUpdate(c, WS_GUID, strlen(WS_GUID)) != 1 ||
	    EVP_DigestFinal_ex(c, md, &mdlen) != 1 || mdlen != 20)
		fatalx("SHA-1 failed");
	EVP_MD_CTX_free(c);
	EVP_EncodeBlock((unsigned char *)acc, md, 20);	/* 28 and a NUL */
}

/* The opening handshake. */

/* One byte of the request, at offset ws->hs_scanned. */
static int
tp_ws_lex(struct tp_ws *ws, unsigned char c)
{
	switch (ws->hs_lex) {
	case HS_LINE:
	case HS_BOL:
		if (c == '\n')
			return (SCAN_FAIL);
		if (c == '\r')
			ws->hs_lex = ws->hs_lex == HS_BOL ? HS_END_CR : HS_CR;
		else
			ws->hs_lex = HS_LINE;
		break;
	case HS_CR:
	case HS_END_CR:
		if (c != '\n')
			return (SCAN_FAIL);
		if (ws->hs_lex == HS_END_CR)
			return (SCAN_DONE);
		ws->hs_lex = HS_BOL;
		break;
	}
	return (SCAN_MORE);
}

/*
 * Scan the request on from ws->hs_scanned, up to max_handshake bytes.
 * SCAN_DONE: its CRLFCRLF ends at ws->hs_scanned.  SCAN_FAIL: a bare CR
 * or LF (status 400), or no end within the limit (431), in *status.
 */
static int
tp_ws_scan(struct tp_ws *ws, struct evbuffer *in, int *status)
{
	struct evbuffer_iovec	 v[8];
	struct evbuffer_ptr	 pos;
	size_t			 len, limit, i, j, take;
	int			 n, rc;

	len = evbuffer_get_length(in);
	limit = len < ws->set.max_handshake ? len : ws->set.max_handshake;
	while (ws->hs_scanned < limit) {
		if (evbuffer_ptr_set(in, &pos, ws->hs_scanned,
		    EVBUFFER_PTR_SET) == -1 || (n = evbuffer_peek(in,
		    limit - ws->hs_scanned, &pos, v, 8)) <= 0) {
			*status = 500;
			return (SCAN_FAIL);
		}
		for (i = 0; i < (size_t)n && i < 8; i++) {
			take = v[i].iov_len;
			if (take > limit - ws->hs_scanned)
				take = limit - ws->hs_scanned;
			for (j = 0; j < take; j++) {
				rc = tp_ws_lex(ws,
				    ((unsigned char *)v[i].iov_base)[j]);
				ws->hs_scanned++;
				if (rc == SCAN_FAIL)
					*status = 400;
				if (rc != SCAN_MORE)
					return (rc);
			}
		}
	}
	if (ws->hs_scanned >= ws->set.max_handshake) {
		*status = 431;
		return (SCAN_FAIL);
	}
	return (SCAN_MORE);
}

/* RFC 9110 5.6.2 token characters. */
static bool
tp_ws_tchar(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL));
}

static bool
tp_ws_is(const char *p, size_t n, const char *s)
{
	return (n == strlen(s) && strncasecmp(p, s, n) == 0);
}

/* Does the comma-separated list hold the token t? */
static bool
tp_ws_list_has(const char *v, size_t n, const char *t, bool icase)
{
	size_t	i = 0, s, e, tl = strlen(t);

	while (i <= n) {
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i++;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && (icase ? strncasecmp(v + s, t, tl) :
		    memcmp(v + s, t, tl)) == 0)
			return (true);
	}
	return (false);
}

/* RFC 6455 4.1: the base64 of exactly 16 bytes, 24 characters. */
static bool
tp_ws_key_ok(const char *k, size_t n)
{
	static const char	b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t			i;

	if (n != 24 || k[22] != '=' || k[23] != '=')
		return (false);
	for (i = 0; i < 21; i++)
		if (k[i] == '\0' || strchr(b64, k[i]) == NULL)
			return (false);
	/* The last character carries 2 bits; the 4 below them are 0. */
	return (k[21] != '\0' && strchr("AQgw", k[21]) != NULL);
}

/* "GET <target> HTTP/1.1": 0, or the status to refuse with. */
static int
tp_ws_request_line(const char *l, size_t n, const char **reason)
{
	const char	*sp1, *sp2, *t, *ver;
	size_t		 ml, tl, vl, i;

	*reason = "Bad Request Line";
	if ((sp1 = memchr(l, ' ', n)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', n - (sp1 + 1 - l))) == NULL)
		return (400);
	ml = sp1 - l;
	t = sp1 + 1;
	tl = sp2 - t;
	ver = sp2 + 1;
	vl = n - (ver - l);
	if (ml == 0 || tl == 0)
		return (400);
	for (i = 0; i < ml; i++)
		if (!tp_ws_tchar(l[i]))
			return (400);
	for (i = 0; i < tl; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return (400);
	if (vl != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' ||
	    ver[5] > '9' || ver[6] != '.' || ver[7] < '0' || ver[7] > '9')
		return (400);
	/* RFC 6455 4.1: HTTP/1.1 or higher; HTTP/2 does not upgrade. */
	if (ver[5] != '1' || ver[7] == '0') {
		*reason = "HTTP Version Not Supported";
		return (505);
	}
	if (ml != 3 || memcmp(l, "GET", 3) != 0) {
		*reason = "Method Not Allowed";
		return (405);
	}
	/* origin-form, or absolute-form with a scheme it can have. */
	if (t[0] != '/' && !(tl > 5 && strncasecmp(t, "ws://", 5) == 0) &&
	    !(tl > 6 && strncasecmp(t, "wss://", 6) == 0) &&
	    !(tl > 7 && strncasecmp(t, "http://", 7) == 0) &&
	    !(tl > 8 && strncasecmp(t, "https://", 8) == 0)) {
		*reason = "Bad Request-Target";
		return (400);
	}
	return (0);
}

/* One header line: 0, or the status to refuse with. */
static int
tp_ws_header(const char *l, size_t n, struct tp_ws_req *r,
    const char **reason)
{
	const char	*colon, *v;
	size_t		 nl, vl, i;

	if (l[0] == ' ' || l[0] == '\t') {
		*reason = "Obsolete Line Folding";	/* RFC 9112 5.2 */
		return (400);
	}
	if ((colon = memchr(l, ':', n)) == NULL || colon == l) {
		*reason = "Malformed Header Line";
		return (400);
	}
	nl = colon - l;
	for (i = 0; i < nl; i++)
		if (!tp_ws_tchar(l[i])) {
			*reason = "Malformed Header Line";
			return (400);
		}
	v = colon + 1;
	vl = n - nl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	for (i = 0; i < vl; i++)
		if (((unsigned char)v[i] < ' ' && v[i] != '\t') ||
		    v[i] == 0x7f) {
			*reason = "Control Character in Header";
			return (400);
		}
	if (tp_ws_is(l, nl, "Host")) {
		r->hosts++;
		r->host_empty = vl == 0;
	} else if (tp_ws_is(l, nl, "Upgrade")) {
		if (tp_ws_list_has(v, vl, "websocket", true))
			r->upgrade_ws = true;
	} else if (tp_ws_is(l, nl, "Connection")) {
		if (tp_ws_list_has(v, vl, "upgrade", true))
			r->conn_upgrade = true;
	} else if (tp_ws_is(l, nl, "Sec-WebSocket-Version")) {
		r->versions++;
		r->version = v;
		r->version_len = vl;
	} else if (tp_ws_is(l, nl, "Sec-WebSocket-Key")) {
		r->keys++;
		r->key = v;
		r->key_len = vl;
	} else if (tp_ws_is(l, nl, "Sec-WebSocket-Protocol")) {
		/* Subprotocol names are compared as they are (RFC 6455 4.1). */
		if (tp_ws_list_has(v, vl, "sip", false))
			r->proto_sip = true;
	} else if (tp_ws_is(l, nl, "Origin")) {
		r->origins++;
		r->origin = v;
		r->origin_len = vl;
	} else if (tp_ws_is(l, nl, "Content-Length")) {
		if (vl == 0 || strspn(v, "0") < vl)
			r->body = true;
	} else if (tp_ws_is(l, nl, "Transfer-Encoding"))
		r->body = true;
	return (0);
}

/* The whole request (h, n: up to and with the CRLFCRLF).  0 or a status. */
static int
tp_ws_judge(struct tp_ws *ws, const char *h, size_t n, struct tp_ws_req *r,
    const char **reason)
{
	const char	*p = h, *end = h + n, *eol;
	unsigned	 i;
	int		 st;

	memset(r, 0, sizeof(*r));
	eol = memmem(p, end - p, "\r\n", 2);	/* there: the scan saw it */
	if ((st = tp_ws_request_line(p, eol - p, reason)) != 0)
		return (st);
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = memmem(p, end - p, "\r\n", 2);
		if (eol == p)
			break;				/* the empty line */
		if ((st = tp_ws_header(p, eol - p, r, reason)) != 0)
			return (st);
	}
	if (r->hosts == 0 || r->host_empty) {
		*reason = "Missing Host";
		return (400);
	}
	if (r->hosts > 1) {
		*reason = "Host Given Twice";
		return (400);
	}
	if (!r->upgrade_ws) {
		*reason = "Upgrade Is Not websocket";
		return (400);
	}
	if (!r->conn_upgrade) {
		*reason = "Connection Lacks Upgrade";
		return (400);
	}
	if (r->versions != 1 || r->version_len != 2 ||
	    memcmp(r->version, "13", 2) != 0) {
		*reason = "Sec-WebSocket-Version Must Be 13";
		return (426);
	}
	if (r->keys == 0) {
		*reason = "Missing Sec-WebSocket-Key";
		return (400);
	}
	if (r->keys > 1 || !tp_ws_key_ok(r->key, r->key_len)) {
		*reason = "Bad Sec-WebSocket-Key";
		return (400);
	}
	/* RFC 7118 5: without "sip" there is nothing to speak. */
	if (!r->proto_sip) {
		*reason = "Sec-WebSocket-Protocol Lacks sip";
		return (400);
	}
	if (r->origins > 1) {
		*reason = "Origin Given Twice";
		return (400);
	}
	/*
	 * The allow-list restrains browsers, which always send Origin (RFC
	 * 6455 10.2); a client that sends none is not a web page.
	 */
	if (ws->set.norigins > 0 && r->origins == 1) {
		for (i = 0; i < ws->set.norigins; i++)
			if (tp_ws_is(r->origin, r->origin_len,
			    ws->set.origins[i]))
				break;
		if (i == ws->set.norigins) {
			*reason = "Origin Not Allowed";
			return (403);
		}
	}
	/* What follows the request is frames: a body would be read as one. */
	if (r->body) {
		*reason = "Request Has a Body";
		return (400);
	}
	return (0);
}

static int
tp_ws_refuse(struct tp_ws *ws, struct evbuffer *out, int status,
    const char *reason, char *err, size_t errlen)
{
	ws->phase = TP_WS_PHASE_FAILED;
	ws->status = status;
	snprintf(err, errlen, "%s", reason);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
	if (status == 405)
		evbuffer_add_printf(out, "Allow: GET\r\n");
	if (status == 426)	/* RFC 6455 4.2.2, RFC 9110 15.5.22 */
		evbuffer_add_printf(out, "Sec-WebSocket-Version: 13\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade, close\r\n");
	else
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add_printf(out, "Content-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n\r\n%s\n", strlen(reason) + 1, reason);
	return (TP_WS_ERROR);
}

int
tp_ws_handshake(struct tp_ws *ws, struct evbuffer *in, struct evbuffer *out,
    char *err, size_t errlen)
{
	struct tp_ws_req	 r;
	const char		*reason;
	char			*h, acc[29];
	size_t			 n;
	int			 rc, st = 0;

	if (errlen > 0)
		err[0] = '\0';
	if (ws->phase != TP_WS_PHASE_HANDSHAKE) {
		snprintf(err, errlen, "handshake over");
		return (ws->phase == TP_WS_PHASE_FAILED ? TP_WS_ERROR :
		    TP_WS_DONE);
	}
	rc = tp_ws_scan(ws, in, &st);
	if (rc == SCAN_MORE)
		return (TP_WS_MORE);
	if (rc == SCAN_FAIL)
		return (tp_ws_refuse(ws, out, st, st == 431 ?
		    "Request Header Fields Too Large" : st == 400 ?
		    "Bare CR or LF in Request" : "Internal Server Error", err,
		    errlen));
	n = ws->hs_scanned;
	h = xmalloc(n + 1);
	evbuffer_remove(in, h, n);	/* what follows stays: frames */
	h[n] = '\0';		/* for strspn() and the like: never read past */
	st = tp_ws_judge(ws, h, n, &r, &reason);
	if (st != 0) {
		free(h);
		return (tp_ws_refuse(ws, out, st, reason, err, errlen));
	}
	tp_ws_accept_key(r.key, r.key_len, acc);
	free(h);
	evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
	    acc);
	ws->status = 101;
	ws->phase = TP_WS_PHASE_OPEN;
	return (TP_WS_DONE);
}

/* Frames. */

/* One whole frame out, unmasked: 0, or -1 (out of memory; failed). */
static int
tp_ws_frame_send(struct tp_ws *ws, uint8_t op, const void *p, size_t len,
    struct evbuffer *out)
{
	struct wslay_frame_iocb	iocb;
	ssize_t			r;

	memset(&iocb, 0, sizeof(iocb));
	iocb.fin = 1;
	iocb.opcode = op;
	iocb.payload_length = len;
	iocb.data = p;
	iocb.data_length = len;
	ws->out = out;
	/* The callback takes all: the header and the payload in one call. */
	r = wslay_frame_send(ws->wslay, &iocb);
	ws->out = NULL;
	if (r < 0 || (size_t)r != len) {
		ws->phase = TP_WS_PHASE_FAILED;
		return (-1);
	}
	return (0);
}

static int
tp_ws_close_frame(struct tp_ws *ws, uint16_t code, const char *reason,
    struct evbuffer *out)
{
	uint8_t	b[125];
	size_t	n = 0, rl;

	if (code != 0) {
		b[0] = code >> 8;
		b[1] = code & 0xff;
		n = 2;
		rl = reason != NULL ? strlen(reason) : 0;
		if (rl > sizeof(b) - 2)
			rl = sizeof(b) - 2;
		if (rl > 0)
			memcpy(b + 2, reason, rl);
		n += rl;
	}
	ws->close_tx = code != 0 ? code : WSLAY_CODE_NO_STATUS_RCVD;
	return (tp_ws_frame_send(ws, WSLAY_CONNECTION_CLOSE, b, n, out));
}

/* Fail the connection (RFC 6455 7.1.7): our close frame, if not sent. */
static int
tp_ws_fail(struct tp_ws *ws, struct evbuffer *out, uint16_t code, char *err,
    size_t errlen, const char *fmt, ...)
{
	va_list	ap;
	char	why[124];	/* a close frame's reason: 123 bytes at most */

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s", why);
	if (ws->phase == TP_WS_PHASE_OPEN)
		tp_ws_close_frame(ws, code, why, out);
	ws->phase = TP_WS_PHASE_FAILED;
	return (TP_WS_ERROR);
}

/* RFC 6455 7.4: the codes a close frame may carry. */
static bool
tp_ws_close_code_ok(uint16_t c)
{
	return ((c >= 1000 && c <= 1011 && c != 1004 && c != 1005 &&
	    c != 1006) || (c >= 3000 && c <= 4999));
}

/* A whole control frame is in ws->ctl. */
static int
tp_ws_control(struct tp_ws *ws, struct evbuffer *out, char *err,
    size_t errlen)
{
	uint16_t	code;

	switch (ws->frame_op) {
	case WSLAY_PING:
		ws->rx_pings++;
		/* After our close frame nothing but close (5.5.1). */
		if (ws->phase == TP_WS_PHASE_OPEN &&
		    tp_ws_frame_send(ws, WSLAY_PONG, ws->ctl, ws->ctl_len,
		    out) == -1) {
			snprintf(err, errlen, "out of memory");
			return (TP_WS_ERROR);
		}
		return (TP_WS_MORE);
	case WSLAY_PONG:
		ws->rx_pongs++;
		return (TP_WS_MORE);
	default:	/* WSLAY_CONNECTION_CLOSE */
		break;
	}
	if (ws->ctl_len == 1)
		return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR, err,
		    errlen, "close frame of 1 byte"));
	code = 0;
	if (ws->ctl_len >= 2) {
		code = (uint16_t)(ws->ctl[0] << 8 | ws->ctl[1]);
		if (!tp_ws_close_code_ok(code))
			return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR,
			    err, errlen, "close code %u", code));
		if (!tp_ws_utf8(ws->ctl + 2, ws->ctl_len - 2))
			return (tp_ws_fail(ws, out,
			    WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, err, errlen,
			    "close reason is not UTF-8"));
	}
	ws->close_rx = code != 0 ? code : WSLAY_CODE_NO_STATUS_RCVD;
	snprintf(err, errlen, "closed by peer code=%u", ws->close_rx);
	/* Their close first: echo its code (5.5.1). */
	if (ws->phase == TP_WS_PHASE_OPEN &&
	    tp_ws_close_frame(ws, code, NULL, out) == -1)
		return (TP_WS_ERROR);
	ws->phase = TP_WS_PHASE_CLOSED;
	return (TP_WS_CLOSED);
}

/* The first piece of a frame: its header, judged. */
static int
tp_ws_frame_start(struct tp_ws *ws, const struct wslay_frame_iocb *f,
    struct evbuffer *out, char *err, size_t errlen)
{
	size_t	max = ws->set.max_message_size;

	ws->in_frame = true;
	ws->frame_op = f->opcode;
	ws->frame_fin = f->fin;
	ws->frame_left = f->payload_length;
	ws->ctl_len = 0;
	if (!f->mask)
		return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR, err,
		    errlen, "unmasked frame from a client"));
	if (f->rsv != 0)
		return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR, err,
		    errlen, "reserved bits %u set", f->rsv));
	switch (f->opcode) {
	case WSLAY_CONTINUATION_FRAME:
		if (ws->msg_op == 0)
			return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR,
			    err, errlen, "continuation frame without a "
			    "message"));
		break;
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		if (ws->msg_op != 0)
			return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR,
			    err, errlen, "new message inside a fragmented "
			    "one"));
		ws->msg_op = f->opcode;
		ws->msg_len = 0;
		break;
	case WSLAY_CONNECTION_CLOSE:
	case WSLAY_PING:
	case WSLAY_PONG:
		return (TP_WS_MORE);	/* 125 bytes at most: wslay saw to it */
	default:
		return (tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR, err,
		    errlen, "reserved opcode %u", f->opcode));
	}
	/* Checked before a byte more of the payload is kept. */
	if (f->payload_length > max - ws->msg_len)
		return (tp_ws_fail(ws, out, WSLAY_CODE_MESSAGE_TOO_BIG, err,
		    errlen, "message over %zu bytes", max));
	if (ws->msg_cap < ws->msg_len + f->payload_length + 1) {
		ws->msg_cap = ws->msg_len + f->payload_length + 1;
		ws->msg = xrealloc(ws->msg, ws->msg_cap);
	}
	return (TP_WS_MORE);
}

/* A piece of a frame from wslay. */
static int
tp_ws_chunk(struct tp_ws *ws, const struct wslay_frame_iocb *f,
    struct evbuffer *out, struct tp_ws_msg *m, char *err, size_t errlen)
{
	int	rc;

	if (!ws->in_frame &&
	    (rc = tp_ws_frame_start(ws, f, out, err, errlen)) != TP_WS_MORE)
		return (rc);
	if (f->data_length > ws->frame_left) {	/* never, if wslay is right */
		return (tp_ws_fail(ws, out, WSLAY_CODE_INTERNAL_SERVER_ERROR,
		    err, errlen, "frame longer than its header says"));
	}
	if (wslay_is_ctrl_frame(ws->frame_op)) {
		memcpy(ws->ctl + ws->ctl_len, f->data, f->data_length);
		ws->ctl_len += f->data_length;
	} else if (f->data_length > 0) {
		memcpy(ws->msg + ws->msg_len, f->data, f->data_length);
		ws->msg_len += f->data_length;
	}
	ws->frame_left -= f->data_length;
	ws->rx_bytes += f->data_length;
	if (ws->frame_left > 0)
		return (TP_WS_MORE);
	ws->in_frame = false;
	if (wslay_is_ctrl_frame(ws->frame_op))
		return (tp_ws_control(ws, out, err, errlen));
	if (!ws->frame_fin)
		return (TP_WS_MORE);
	if (ws->msg_op == WSLAY_TEXT_FRAME &&
	    !tp_ws_utf8((unsigned char *)ws->msg, ws->msg_len))
		return (tp_ws_fail(ws, out,
		    WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, err, errlen,
		    "text message is not UTF-8"));
	ws->msg[ws->msg_len] = '\0';
	m->p = ws->msg;
	m->len = ws->msg_len;
	m->binary = ws->msg_op == WSLAY_BINARY_FRAME;
	ws->msg_op = 0;
	ws->rx_msgs++;
	return (TP_WS_MSG);
}

int
tp_ws_feed(struct tp_ws *ws, struct evbuffer *in, struct evbuffer *out,
    struct tp_ws_msg *m, char *err, size_t errlen)
{
	struct wslay_frame_iocb	 iocb;
	ssize_t			 r;
	int			 rc;

	memset(m, 0, sizeof(*m));
	if (errlen > 0)
		err[0] = '\0';
	switch (ws->phase) {
	case TP_WS_PHASE_HANDSHAKE:
		snprintf(err, errlen, "handshake not done");
		return (TP_WS_ERROR);
	case TP_WS_PHASE_FAILED:
		snprintf(err, errlen, "connection failed before");
		return (TP_WS_ERROR);
	case TP_WS_PHASE_CLOSED:
		snprintf(err, errlen, "connection closed");
		return (TP_WS_CLOSED);
	default:
		break;
	}
	ws->in = in;
	for (;;) {
		memset(&iocb, 0, sizeof(iocb));
		r = wslay_frame_recv(ws->wslay, &iocb);
		if (r == WSLAY_ERR_WANT_READ) {
			rc = TP_WS_MORE;
			break;
		}
		if (r < 0) {
			/* Control frame over 125 or fragmented, bad length. */
			rc = tp_ws_fail(ws, out, WSLAY_CODE_PROTOCOL_ERROR, err,
			    errlen, "bad frame header");
			break;
		}
		if ((rc = tp_ws_chunk(ws, &iocb, out, m, err, errlen)) !=
		    TP_WS_MORE)
			break;
	}
	ws->in = NULL;
	return (rc);
}

int
tp_ws_send(struct tp_ws *ws, const void *p, size_t len, struct evbuffer *out)
{
	if (ws->phase != TP_WS_PHASE_OPEN)
		return (-1);
	if (tp_ws_frame_send(ws, tp_ws_utf8(p, len) ? WSLAY_TEXT_FRAME :
	    WSLAY_BINARY_FRAME, p, len, out) == -1)
		return (-1);
	ws->tx_msgs++;
	return (0);
}

int
tp_ws_close(struct tp_ws *ws, uint16_t code, struct evbuffer *out)
{
	if (ws->phase != TP_WS_PHASE_OPEN)
		return (-1);
	if (tp_ws_close_frame(ws, code, NULL, out) == -1)
		return (-1);
	ws->phase = TP_WS_PHASE_CLOSING;
	return (0);
}

int
tp_ws_ping(struct tp_ws *ws, struct evbuffer *out)
{
	if (ws->phase != TP_WS_PHASE_OPEN)
		return (-1);
	if (tp_ws_frame_send(ws, WSLAY_PING, NULL, 0, out) == -1)
		return (-1);
	ws->tx_pings++;
	return (0);
}
