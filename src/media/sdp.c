/*
 * SDP bodies: found in a message, read (RFC 4566: v o s c t m a lines),
 * judged (private addresses), and replaced with the Content-Length fixed.
 * The reader takes bytes from the network: every line is checked, every
 * bound is tested before a byte is read.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sdp.h"

#define SDP_FAIL(...) do {						\
	snprintf(err, errlen, __VA_ARGS__);				\
	return (-1);							\
} while (0)

/*
 * The body of m and what it is.  Content-Type "application/sdp" (any case,
 * parameters allowed) is SDP; any other type, multipart included, is
 * OTHER; no body (or an empty one) is NONE.
 */
enum sdp_body_kind
sdp_body(const struct sipmsg *m, struct slice *body)
{
	const struct sip_hline	*h;
	struct slice		 ct;
	size_t			 n;

	body->p = m->buf + m->body_off;
	body->len = m->body_len;
	if (m->body_len == 0)
		return (SDP_BODY_NONE);
	if ((h = sipmsg_hdr(m, SH_CONTENT_TYPE)) == NULL)
		return (SDP_BODY_OTHER);
	ct = sipmsg_hvalue(m, h);
	for (n = 0; n < ct.len && ct.p[n] != ';'; n++)
		;
	ct.len = n;
	ct = slice_trim(ct);
	return (slice_eq(ct, "application/sdp") ? SDP_BODY_SDP :
	    SDP_BODY_OTHER);
}

/* The next space-separated word of *s, or an empty slice. */
static struct slice
sdp_word(struct slice *s)
{
	struct slice	w;
	size_t		i = 0;

	while (i < s->len && s->p[i] == ' ')
		i++;
	w.p = s->p + i;
	while (i < s->len && s->p[i] != ' ')
		i++;
	w.len = (size_t)(s->p + i - w.p);
	s->p += i;
	s->len -= i;
	return (w);
}

static int
sdp_uint(struct slice s, unsigned long max, unsigned long *out)
{
	unsigned long	v = 0;
	size_t		i;

	if (s.len == 0 || s.len > 10)
		return (-1);
	for (i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return (-1);
		v = v * 10 + (unsigned long)(s.p[i] - '0');
	}
	if (v > max)
		return (-1);
	*out = v;
	return (0);
}

/*
 * "IN IP4 ADDR" (c=, the end of o=, a=rtcp); a multicast "/ttl/n" tail is
 * cut off.  A host name is taken (RFC 4566 allows one) but not numeric.
 */
static int
sdp_conn_parse(struct slice *s, struct sdp_conn *c)
{
	struct slice	nt = sdp_word(s), at = sdp_word(s), a = sdp_word(s);
	char		ip[INET6_ADDRSTRLEN];
	uint8_t		bin[16];
	size_t		i;

	if (!slice_eq(nt, "IN") || a.len == 0)
		return (-1);
	if (slice_eq(at, "IP4"))
		c->family = 4;
	else if (slice_eq(at, "IP6"))
		c->family = 6;
	else
		return (-1);
	for (i = 0; i < a.len && a.p[i] != '/'; i++)
		;
	a.len = i;
	if (a.len == 0)
		return (-1);
	c->addr = a;
	c->numeric = false;
	if (a.len < sizeof(ip)) {
		memcpy(ip, a.p, a.len);
		ip[a.len] = '\0';
		c->numeric = inet_pton(c->family == 4 ? AF_INET : AF_INET6,
		    ip, bin) == 1;
	}
	if (c->numeric)
		return (0);
	for (i = 0; i < a.len; i++)	/* a host name, then */
		if (!((a.p[i] >= 'a' && a.p[i] <= 'z') ||
		    (a.p[i] >= 'A' && a.p[i] <= 'Z') ||
		    (a.p[i] >= '0' && a.p[i] <= '9') || a.p[i] == '.' ||
		    a.p[i] == '-'))
			return (-1);
	return (0);
}

/* m=TYPE PORT[/N] PROTO FMT ... */
static int
sdp_media_parse(struct slice v, struct sdp_media *md)
{
	struct slice	 type = sdp_word(&v), port = sdp_word(&v);
	struct slice	 proto = sdp_word(&v), fmt = sdp_word(&v);
	unsigned long	 p, n = 1;
	size_t		 i;

	if (type.len == 0 || proto.len == 0 || fmt.len == 0)
		return (-1);
	for (i = 0; i < port.len && port.p[i] != '/'; i++)
		;
	if (i < port.len && sdp_uint((struct slice){ port.p + i + 1,
	    port.len - i - 1 }, 65535, &n) == -1)
		return (-1);
	port.len = i;
	if (sdp_uint(port, 65535, &p) == -1 || n == 0)
		return (-1);
	md->type = type;
	md->proto = proto;
	md->port = (uint16_t)p;
	md->nports = (uint16_t)n;
	return (0);
}

static bool
sdp_attr_is(struct slice v, const char *name)
{
	size_t	n = strlen(name);

	return (v.len >= n && memcmp(v.p, name, n) == 0 &&
	    (v.len == n || v.p[n] == ':'));
}

/* a=rtcp:PORT [IN IP4 ADDR] (RFC 3605). */
static int
sdp_rtcp_parse(struct slice v, struct sdp_media *md)
{
	struct slice	 port;
	unsigned long	 p;

	v.p += 4;	/* "rtcp" */
	v.len -= 4;
	if (v.len == 0 || v.p[0] != ':')
		return (-1);
	v.p++;
	v.len--;
	port = sdp_word(&v);
	if (sdp_uint(port, 65535, &p) == -1)
		return (-1);
	md->rtcp_port = (uint16_t)p;
	while (v.len > 0 && v.p[0] == ' ') {
		v.p++;
		v.len--;
	}
	if (v.len == 0)
		return (0);
	return (sdp_conn_parse(&v, &md->rtcp_conn));
}

/*
 * Reads an SDP body into sd.  Lines end in CRLF (a bare LF is taken, RFC
 * 4566 5); each is "x=value" with x a lower-case letter; the first is
 * "v=0"; a media line that is not disabled needs a c= of its own or the
 * session's.  At most SDP_MAX_MEDIA media.
 */
int
sdp_parse(struct sdp *sd, struct slice body, char *err, size_t errlen)
{
	struct sdp_media	*md = NULL;
	size_t			 off = 0, nl;
	unsigned		 line = 0, i;

	memset(sd, 0, sizeof(*sd));
	if (body.len == 0)
		SDP_FAIL("SDP: empty body");
	while (off < body.len) {
		const char	*p = body.p + off;
		struct slice	 v;
		char		 k;

		line++;
		for (nl = 0; off + nl < body.len && p[nl] != '\n'; nl++)
			;
		v.len = nl;
		if (nl > 0 && p[nl - 1] == '\r')
			v.len--;
		off += nl + (off + nl < body.len);
		if (memchr(p, '\0', v.len) != NULL ||
		    memchr(p, '\r', v.len) != NULL)
			SDP_FAIL("SDP line %u: a NUL or a bare CR", line);
		if (v.len < 2 || p[0] < 'a' || p[0] > 'z' || p[1] != '=')
			SDP_FAIL("SDP line %u: not \"x=value\"", line);
		k = p[0];
		v.p = p + 2;
		v.len -= 2;
		if (line == 1 && (k != 'v' || !slice_eq(v, "0")))
			SDP_FAIL("SDP: the first line is not v=0");
		switch (k) {
		case 'o': {
			struct slice	w = v;
			int		j;

			for (j = 0; j < 3; j++)
				if (sdp_word(&w).len == 0)
					SDP_FAIL("SDP line %u: bad o=", line);
			if (sdp_conn_parse(&w, &sd->origin) == -1)
				SDP_FAIL("SDP line %u: bad o=", line);
			break;
		}
		case 'c':
			if (sdp_conn_parse(&v, md != NULL ? &md->conn :
			    &sd->conn) == -1)
				SDP_FAIL("SDP line %u: bad c=", line);
			break;
		case 'm':
			if (sd->nmedia == SDP_MAX_MEDIA)
				SDP_FAIL("SDP: more than %d media",
				    SDP_MAX_MEDIA);
			md = &sd->media[sd->nmedia++];
			if (sdp_media_parse(v, md) == -1)
				SDP_FAIL("SDP line %u: bad m=", line);
			break;
		case 'a':
			if (sdp_attr_is(v, "rtcp")) {
				if (md != NULL &&
				    sdp_rtcp_parse(v, md) == -1)
					SDP_FAIL("SDP line %u: bad a=rtcp",
					    line);
			} else if (sdp_attr_is(v, "rtcp-mux")) {
				if (md != NULL)
					md->rtcp_mux = true;
			} else if (sdp_attr_is(v, "ice-ufrag") ||
			    sdp_attr_is(v, "ice-pwd") ||
			    sdp_attr_is(v, "candidate") ||
			    sdp_attr_is(v, "ice-lite") ||
			    sdp_attr_is(v, "ice-options")) {
				if (md != NULL)
					md->ice = true;
				else
					sd->ice = true;
			}
			break;
		default:
			break;
		}
	}
	for (i = 0; i < sd->nmedia; i++)
		if (sd->media[i].port != 0 && sd->media[i].conn.family == 0 &&
		    sd->conn.family == 0)
			SDP_FAIL("SDP: media %u has no c= line", i + 1);
	return (0);
}

/* The connection of media i: its own c=, else the session's. */
const struct sdp_conn *
sdp_media_conn(const struct sdp *sd, unsigned i)
{
	const struct sdp_media	*md = &sd->media[i];

	return (md->conn.family != 0 ? &md->conn : &sd->conn);
}

/*
 * An address behind NAT or not routable from outside: RFC 1918
 * (10/8, 172.16/12, 192.168/16), shared address space (100.64/10, RFC
 * 6598), link-local (169.254/16, fe80::/10), unique local (fc00::/7, which
 * holds fd00::/8).  A host name is not judged: false.
 */
bool
sdp_addr_private(const struct sdp_conn *c)
{
	char		ip[INET6_ADDRSTRLEN];
	uint8_t		a[16];

	if (!c->numeric || c->addr.len >= sizeof(ip))
		return (false);
	memcpy(ip, c->addr.p, c->addr.len);
	ip[c->addr.len] = '\0';
	if (c->family == 4) {
		if (inet_pton(AF_INET, ip, a) != 1)
			return (false);
		return (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		    (a[0] == 192 && a[1] == 168) ||
		    (a[0] == 100 && (a[1] & 0xc0) == 64) ||
		    (a[0] == 169 && a[1] == 254));
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return (false);
	return ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe &&
	    (a[1] & 0xc0) == 0x80));
}

/* Any media in use whose address (RTP or RTCP) is private. */
bool
sdp_private(const struct sdp *sd)
{
	unsigned	i;

	for (i = 0; i < sd->nmedia; i++) {
		if (sd->media[i].port == 0)
			continue;
		if (sdp_addr_private(sdp_media_conn(sd, i)) ||
		    sdp_addr_private(&sd->media[i].rtcp_conn))
			return (true);
	}
	return (false);
}

bool
sdp_has_ice(const struct sdp *sd)
{
	unsigned	i;

	for (i = 0; i < sd->nmedia; i++)
		if (sd->media[i].ice)
			return (true);
	return (sd->ice);
}

/*
 * m with body as its body, into out: every header line as it came but
 * the Content-Length lines, which become one "Content-Length: N" where
 * the first was (at the end of the header section when there was none);
 * a Content-Type: application/sdp is added when a body goes into a
 * message that had no Content-Type.  The body may not hold the message's
 * own bytes.  -1 (err filled, out untouched) when m is not a parsed
 * message.
 */
int
sdp_replace_body(const struct sipmsg *m, struct slice body, struct buf *out,
    char *err, size_t errlen)
{
	const char	*b = m->buf;
	size_t		 pos, blank;
	unsigned	 i;
	bool		 done = false;

	if (!m->parsed || m->nh == 0 || m->hdr_end > m->len ||
	    m->body_off > m->len)
		SDP_FAIL("not a parsed message");
	pos = 0;
	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];

		if (h->id != SH_CONTENT_LENGTH)
			continue;
		buf_add(out, b + pos, h->off - pos);
		if (!done) {
			buf_adds(out, "Content-Length: ");
			buf_addu(out, (unsigned long)body.len);
			buf_adds(out, "\r\n");
			done = true;
		}
		pos = h->off + h->len;
	}
	buf_add(out, b + pos, m->hdr_end - pos);
	if (!done) {
		buf_adds(out, "Content-Length: ");
		buf_addu(out, (unsigned long)body.len);
		buf_adds(out, "\r\n");
	}
	if (body.len > 0 && sipmsg_hdr(m, SH_CONTENT_TYPE) == NULL)
		buf_adds(out, "Content-Type: application/sdp\r\n");
	blank = m->body_off - m->hdr_end;
	if (blank > 0)
		buf_add(out, b + m->hdr_end, blank);
	else
		buf_adds(out, "\r\n");	/* no blank line came: one now */
	buf_add(out, body.p, body.len);
	return (0);
}
