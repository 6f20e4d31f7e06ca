/*
 * SIP message scanning and validation.  The scanner indexes header lines in
 * the raw bytes, once (by id: the first line and how many); each step reads
 * what it checks in one pass and notes what a later step needs; libosip2's
 * parser judges a request outside a dialog (sipmsg_parse_osip()); the
 * fields the proxy uses are slices into the raw bytes.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <osipparser2/osip_parser.h>

#include "buf.h"
#include "sipmsg.h"
#include "xmalloc.h"

#define MAX_HEADERS	256

/*
 * Off: every message takes the long way, through libosip2 and the general
 * checks, never the plain forms (tests/fuzz/osip_plain compares the two).
 */
bool	sipmsg_shortcuts = true;

static const char *const method_names[] = {
	[SM_OTHER] = "", [SM_INVITE] = "INVITE", [SM_ACK] = "ACK",
	[SM_CANCEL] = "CANCEL", [SM_BYE] = "BYE", [SM_OPTIONS] = "OPTIONS",
	[SM_REGISTER] = "REGISTER", [SM_SUBSCRIBE] = "SUBSCRIBE",
	[SM_NOTIFY] = "NOTIFY", [SM_REFER] = "REFER", [SM_PRACK] = "PRACK",
	[SM_UPDATE] = "UPDATE", [SM_INFO] = "INFO", [SM_MESSAGE] = "MESSAGE",
	[SM_PUBLISH] = "PUBLISH",
};

/* A host name or IPv4 address, as sipuri_parse() takes it. */
static const bool host_chars[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['.'] = true, ['_'] = true,
};

/* token (RFC 3261 25.1): alphanum and -.!%*_+`'~ */
static const bool token_chars[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['.'] = true, ['!'] = true, ['%'] = true, ['*'] = true,
	['_'] = true, ['+'] = true, ['`'] = true, ['\''] = true, ['~'] = true,
};

/* White space as the scanner leaves it in a value: SP HT CR LF. */
static const bool ws_chars[256] = {
	[' '] = true, ['\t'] = true, ['\r'] = true, ['\n'] = true,
};

static const bool digit_chars[256] = { ['0' ... '9'] = true };

/* A URI scheme, RFC 3986 3.1 (the first byte is not checked apart). */
static const bool scheme_chars[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['+'] = true, ['-'] = true, ['.'] = true,
};

static const bool xdigit_chars[256] = {
	['a' ... 'f'] = true, ['A' ... 'F'] = true, ['0' ... '9'] = true,
};

static inline bool
is_token(int c)
{
	return (token_chars[c & 0xff]);
}

static inline bool
is_ws(int c)
{
	return (ws_chars[c & 0xff]);
}

enum sip_method
sip_method_id(const char *p, size_t len)
{
	size_t	i;

	if (len < 3 || len > 9)
		return (SM_OTHER);
	for (i = 1; i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (method_names[i][0] == p[0] &&
		    strlen(method_names[i]) == len &&
		    memcmp(method_names[i], p, len) == 0)
			return ((enum sip_method)i);
	return (SM_OTHER);
}

const char *
sip_method_name(enum sip_method m)
{
	return (method_names[m]);
}

/* Past the quoted string that starts at p[i] == '"'; 0 if unterminated. */
static size_t
quoted_end(const char *p, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (p[i] == '\\' && i + 1 < len)
			i++;
		else if (p[i] == '"')
			return (i + 1);
	}
	return (0);
}

/* Past the quoted string that starts at p[i] == '"'; len if unterminated. */
static size_t
skip_quoted(const char *p, size_t len, size_t i)
{
	size_t	e = quoted_end(p, len, i);

	return (e != 0 ? e : len);
}

/* The bytes split_values() and hdr_param() stop at. */
static const bool split_special[256] = {
	[','] = true, ['"'] = true, ['<'] = true, ['>'] = true,
};
static const bool param_special[256] = {
	[','] = true, ['"'] = true, ['<'] = true, ['>'] = true, [';'] = true,
};
static const bool param_end[256] = {
	['='] = true, [';'] = true, [','] = true,
};
static const bool pvalue_end[256] = {
	[';'] = true, [','] = true, ['"'] = true,
};

/*
 * Split a header value at top-level commas (outside quotes and <>).  Returns
 * how many values there are; stores at most max of them.
 */
size_t
split_values(struct slice v, struct slice *out, size_t max)
{
	size_t	i = 0, start = 0, n = 0;
	int	angle = 0;

	while (i <= v.len) {
		/* Most bytes are none of , " < >: pass them four a step. */
		while (i + 4 <= v.len &&
		    !split_special[(unsigned char)v.p[i]] &&
		    !split_special[(unsigned char)v.p[i + 1]] &&
		    !split_special[(unsigned char)v.p[i + 2]] &&
		    !split_special[(unsigned char)v.p[i + 3]])
			i += 4;
		while (i < v.len && !split_special[(unsigned char)v.p[i]])
			i++;
		if (i == v.len || (v.p[i] == ',' && angle == 0)) {
			struct slice	s = { v.p + start, i - start };

			s = slice_trim(s);
			if (s.len > 0) {
				if (n < max)
					out[n] = s;
				n++;
			}
			start = ++i;
			continue;
		}
		if (v.p[i] == '"') {
			i = skip_quoted(v.p, v.len, i);
			continue;
		}
		if (v.p[i] == '<')
			angle++;
		else if (v.p[i] == '>' && angle > 0)
			angle--;
		i++;
	}
	return (n);
}

/* hdr_param() with the length of the name. */
bool
hdr_param_n(struct slice v, const char *name, size_t nlen, struct slice *val)
{
	size_t		i = 0;
	int		angle = 0;
	unsigned	c0 = sip_tolower(name[0]);

	while (i < v.len) {
		char	c;

		/* Four bytes a step while they are ordinary ones. */
		while (i + 4 <= v.len &&
		    !param_special[(unsigned char)v.p[i]] &&
		    !param_special[(unsigned char)v.p[i + 1]] &&
		    !param_special[(unsigned char)v.p[i + 2]] &&
		    !param_special[(unsigned char)v.p[i + 3]])
			i += 4;
		while (i < v.len && !param_special[(unsigned char)v.p[i]])
			i++;
		if (i == v.len)
			break;
		if ((c = v.p[i]) == '"') {
			i = skip_quoted(v.p, v.len, i);
			continue;
		}
		if (c == '<')
			angle++;
		else if (c == '>' && angle > 0)
			angle--;
		else if (c == ',' && angle == 0)
			return (false);
		else if (c == ';' && angle == 0) {
			size_t		 s, e;
			struct slice	 pn;

			for (s = ++i; i < v.len && !param_end[(unsigned char)
			    v.p[i]]; i++)
				;
			pn = slice_trim((struct slice){ v.p + s, i - s });
			if (pn.len != nlen || sip_tolower(pn.p[0]) != c0 ||
			    !sip_caseeq(pn.p, name, nlen))
				continue;
			if (val == NULL)
				return (true);
			if (i >= v.len || v.p[i] != '=') {
				*val = (struct slice){ v.p + i, 0 };
				return (true);
			}
			for (s = ++i; i < v.len && !pvalue_end[(unsigned char)
			    v.p[i]]; i++)
				;
			while (i < v.len && v.p[i] == '"') {
				i = skip_quoted(v.p, v.len, i);
				while (i < v.len && !pvalue_end[(unsigned char)
				    v.p[i]])
					i++;
			}
			e = i;
			*val = slice_trim((struct slice){ v.p + s, e - s });
			return (true);
		}
		i++;
	}
	return (false);
}

/* The URI of a name-addr or addr-spec header value. */
struct slice
hdr_uri(struct slice v)
{
	size_t	i, s;

	for (i = 0; i < v.len; i++) {
		if (v.p[i] == '"') {
			i = skip_quoted(v.p, v.len, i) - 1;
			continue;
		}
		if (v.p[i] == '<') {
			const char	*gt = memchr(v.p + i + 1, '>',
					    v.len - i - 1);

			s = i + 1;
			i = gt != NULL ? (size_t)(gt - v.p) : v.len;
			return ((struct slice){ v.p + s, i - s });
		}
	}
	for (i = 0; i < v.len && v.p[i] != ';' && v.p[i] != ','; i++)
		;
	return (slice_trim((struct slice){ v.p, i }));
}

/* Parse a URI; for sip and sips fill user, host, port and params. */
int
sipuri_parse(struct slice s, struct sipuri *u)
{
	const char	*p;
	size_t		 i, at, end, hs;

	memset(u, 0, sizeof(*u));
	s = slice_trim(s);
	for (i = 0; i < s.len && s.p[i] != ':'; i++)
		if (!scheme_chars[(unsigned char)s.p[i]])
			return (-1);
	/* Something must follow "scheme:" (RFC 3261 25.1; "To: o:", fuzzer). */
	if (i == 0 || i + 1 >= s.len)
		return (-1);
	u->scheme = (struct slice){ s.p, i };
	if (!slice_eq(u->scheme, "sip") && !slice_eq(u->scheme, "sips"))
		return (0);
	i++;
	/*
	 * The user part may hold "?", "/", ";" and "," (RFC 3261 25.1), but
	 * "@" only ever ends it: params and headers cannot contain one.
	 */
	at = (p = memchr(s.p + i, '@', s.len - i)) != NULL ?
	    (size_t)(p - s.p) : s.len;
	end = at < s.len ? at : i;
	end = (p = memchr(s.p + end, '?', s.len - end)) != NULL ?
	    (size_t)(p - s.p) : s.len;
	if (at < s.len) {
		size_t	ue;

		for (ue = i; ue < at && s.p[ue] != ':'; ue++)
			;
		u->user = (struct slice){ s.p + i, ue - i };
		/*
		 * No empty user, nor an empty password after a ":": 25.1
		 * allows the latter, libosip2 does not, and a 3xx Contact
		 * "sip:dave:@host" became a Request-URI nobody could parse
		 * (fuzzer).
		 */
		if (u->user.len == 0 || ue + 1 == at)
			return (-1);
		i = at + 1;
	}
	hs = i;
	if (i < end && s.p[i] == '[') {
		while (i < end && s.p[i] != ']')
			i++;
		if (i >= end)
			return (-1);
		i++;
	} else {
		while (i < end && host_chars[(unsigned char)s.p[i]])
			i++;
		if (i < end && s.p[i] != ':' && s.p[i] != ';')
			return (-1);
	}
	u->host = (struct slice){ s.p + hs, i - hs };
	if (u->host.len == 0)
		return (-1);
	if (i < end && s.p[i] == ':') {
		unsigned long	port = 0;
		size_t		ps = ++i;

		while (i < end && i - ps < 6 &&
		    (unsigned)(s.p[i] - '0') < 10)
			port = port * 10 + (s.p[i++] - '0');
		if (i == ps || port == 0 || port > 65535)
			return (-1);
		u->port = (uint16_t)port;
	}
	if (i < end && s.p[i] != ';')
		return (-1);
	u->params = (struct slice){ s.p + i, end - i };
	if (end < s.len)
		u->headers = (struct slice){ s.p + end + 1, s.len - end - 1 };
	return (0);
}

bool
sipuri_param(const struct sipuri *u, const char *name, struct slice *val)
{
	return (hdr_param(u->params, name, val));
}

/*
 * Can this URI go in a request line, or between "<" and ">"?  sipuri_parse()
 * is lenient with the user part and the params, and a URI taken from a
 * header value may hold whitespace, even a folded line break; none of that
 * may reach a Request-URI.  Visible ASCII only, and none of < > " (never in
 * a URI, RFC 3986 2; they delimit a name-addr).
 */
bool
sipuri_printable(struct slice s)
{
	size_t	i;

	if (s.len == 0)
		return (false);
	for (i = 0; i < s.len; i++) {
		unsigned char	c = s.p[i];

		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"')
			return (false);
	}
	return (true);
}

/*
 * Can this URI, from a header (Route, a 3xx Contact, a registered
 * Contact), become the Request-URI of a request we send?  It must be
 * printable, parse, and carry no headers (RFC 3261 19.1.1; we answer 400
 * to a request with any).  Each of those broke a request line we sent
 * (fuzzer).
 */
bool
sipuri_fits_ruri(struct slice uri)
{
	struct sipuri	u;

	return (sipuri_printable(uri) && sipuri_parse(uri, &u) == 0 &&
	    u.headers.p == NULL);
}

struct slice
sipmsg_hvalue(const struct sipmsg *m, const struct sip_hline *h)
{
	return ((struct slice){ m->buf + h->voff, h->vlen });
}

unsigned
sipmsg_values(const struct sipmsg *m, enum sip_hdr_id id, struct slice *out,
    unsigned max)
{
	unsigned	i, n = 0, left = m->hcount[id];

	for (i = m->hfirst[id] - 1; left > 0; i++) {
		if (m->h[i].id != id)
			continue;
		left--;
		/* out may be NULL (max 0): only counting. */
		n += split_values(sipmsg_hvalue(m, &m->h[i]),
		    n < max ? out + n : NULL, n < max ? max - n : 0);
	}
	return (n);
}

/*
 * The top Via's parameter name ("received" or "rport"), as hdr_param()
 * finds it in m->via; from what the parser noted when it could.
 */
bool
sipmsg_via_param(const struct sipmsg *m, const char *name, struct slice *val)
{
	if (m->via_noted && strcmp(name, "received") == 0) {
		if (m->via_has_received)
			*val = m->via_received;
		return (m->via_has_received);
	}
	if (m->via_noted && strcmp(name, "rport") == 0) {
		if (m->via_rport)
			*val = m->via_rport_val;
		return (m->via_rport);
	}
	return (hdr_param(m->via, name, val));
}

bool
sipmsg_magic(const struct sipmsg *m)
{
	return (m->branch.len > SIP_MAGIC_LEN &&
	    memcmp(m->branch.p, SIP_MAGIC, SIP_MAGIC_LEN) == 0);
}

/* libosip2 reports parse errors itself; ours are logged, with the peer. */
static void
osip_quiet(const char *fi, int li, osip_trace_level_t level, const char *fmt,
    va_list ap)
{
	(void)fi;
	(void)li;
	(void)level;
	(void)fmt;
	(void)ap;
}

/* Once, before any message: libosip2's tables, and its traces off. */
void
sipmsg_init(void)
{
	int	i;

	parser_init();
	osip_trace_initialize_func(END_TRACE_LEVEL, osip_quiet);
	for (i = 0; i < END_TRACE_LEVEL; i++)
		osip_trace_disable_level((osip_trace_level_t)i);
}

/*
 * A copy of data to index.  A response or an ACK has its bytes in the same
 * allocation (one malloc, not two): no transaction keeps them after the
 * message.  A server transaction keeps its request's bytes past the
 * struct (sipmsg_take_buf()), with what the proxy took from them still
 * pointing into them, so a request has its own.
 */
struct sipmsg *
sipmsg_new(const char *data, size_t len)
{
	struct sipmsg	*m;
	bool		 inl;

	inl = (len >= 8 && memcmp(data, "SIP/2.0 ", 8) == 0) ||
	    (len >= 4 && memcmp(data, "ACK ", 4) == 0);
	m = xmalloc(sizeof(*m) + (inl ? len + 1 : 0));
	memset(m, 0, offsetof(struct sipmsg, hin));
	m->h = m->hin;
	m->buf = inl ? m->inl : xmalloc(len + 1);
	memcpy(m->buf, data, len);
	m->buf[len] = '\0';
	m->len = len;
	m->max_forwards = -1;
	m->content_length = SIZE_MAX;
	return (m);
}

void
sipmsg_free(struct sipmsg *m)
{
	if (m == NULL)
		return;
	if (m->h != m->hin)
		free(m->h);
	if (m->buf != m->inl)
		free(m->buf);
	free(m);
}

/*
 * m's bytes, the caller's to free; m keeps none.  Those of a request stay
 * where they are (what was taken from them still points into them).
 */
char *
sipmsg_take_buf(struct sipmsg *m)
{
	char	*p = m->buf;

	if (p == m->inl) {
		p = xmalloc(m->len + 1);
		memcpy(p, m->inl, m->len + 1);
	}
	m->buf = NULL;
	return (p);
}

static inline uint64_t
load64(const char *p)
{
	uint64_t	v;

	memcpy(&v, p, sizeof(v));
	return (v);
}

static inline uint32_t
load32(const char *p)
{
	uint32_t	v;

	memcpy(&v, p, sizeof(v));
	return (v);
}

/*
 * The token p[0..n) is lit (lower case letters and '-') in any case,
 * compared a word at a time (overlapping words: no byte outside either).
 * For a letter, c | 0x20 is lit[i] only if c is that letter in either
 * case; for '-', only if c is '-' or CR, and no token holds a CR.
 */
static inline bool
name_is(const char *p, size_t n, const char *lit, size_t litlen)
{
	const uint64_t	lower64 = 0x2020202020202020ULL;
	const uint32_t	lower32 = 0x20202020U;
	size_t		i;

	if (n != litlen)
		return (false);
	if (n >= 8) {
		for (i = 0; i + 8 < n; i += 8)
			if ((load64(p + i) | lower64) != load64(lit + i))
				return (false);
		return ((load64(p + n - 8) | lower64) == load64(lit + n - 8));
	}
	if (n >= 4)
		return ((load32(p) | lower32) == load32(lit) &&
		    (load32(p + n - 4) | lower32) == load32(lit + n - 4));
	for (i = 1; i < n; i++)
		if (((unsigned char)p[i] | 0x20) != (unsigned char)lit[i])
			return (false);
	return (true);
}

/*
 * Which header a name is: by its first letter, then length, then the rest.
 * Every header line of every message comes through here.  The name is a
 * token (the scanner checked).  Compact forms: RFC 3261 7.3.3.
 */
static enum sip_hdr_id
hdr_id(const char *p, size_t n)
{
#define IS(lit, id)							\
	if (name_is(p, n, lit, sizeof(lit) - 1))			\
		return (id)
	if (n == 1) {
		switch (sip_tolower(*p)) {
		case 'v': return (SH_VIA);
		case 'l': return (SH_CONTENT_LENGTH);
		case 'f': return (SH_FROM);
		case 't': return (SH_TO);
		case 'i': return (SH_CALL_ID);
		case 'm': return (SH_CONTACT);
		case 'c': return (SH_CONTENT_TYPE);
		case 'k': return (SH_SUPPORTED);
		}
		return (SH_OTHER);
	}
	switch (sip_tolower(*p)) {
	case 'a':
		IS("authorization", SH_AUTHORIZATION);
		break;
	case 'c':
		IS("call-id", SH_CALL_ID);
		IS("cseq", SH_CSEQ);
		IS("contact", SH_CONTACT);
		IS("content-length", SH_CONTENT_LENGTH);
		IS("content-type", SH_CONTENT_TYPE);
		break;
	case 'e':
		IS("expires", SH_EXPIRES);
		break;
	case 'f':
		IS("from", SH_FROM);
		break;
	case 'm':
		IS("max-forwards", SH_MAX_FORWARDS);
		break;
	case 'p':
		IS("path", SH_PATH);
		IS("proxy-require", SH_PROXY_REQUIRE);
		IS("proxy-authenticate", SH_PROXY_AUTHENTICATE);
		IS("proxy-authorization", SH_PROXY_AUTHORIZATION);
		break;
	case 'r':
		IS("route", SH_ROUTE);
		IS("record-route", SH_RECORD_ROUTE);
		IS("reason", SH_REASON);
		IS("require", SH_REQUIRE);
		break;
	case 's':
		IS("supported", SH_SUPPORTED);
		break;
	case 't':
		IS("to", SH_TO);
		break;
	case 'u':
		IS("user-agent", SH_USER_AGENT);
		break;
	case 'v':
		IS("via", SH_VIA);
		break;
	case 'w':
		IS("www-authenticate", SH_WWW_AUTHENTICATE);
		break;
	}
	return (SH_OTHER);
#undef IS
}

/* Length of the line at p (without its terminator) and of the terminator. */
static size_t
line_len(const char *p, size_t left, size_t *eol)
{
	const char	*nl = memchr(p, '\n', left);

	if (nl == NULL) {
		*eol = 0;
		return (left);
	}
	*eol = (nl > p && nl[-1] == '\r') ? 2 : 1;
	return ((size_t)(nl - p) + 1 - *eol);
}

static int
scan_start_line(struct sipmsg *m, size_t len, char *err, size_t errlen)
{
	const char	*p = m->buf, *sp1, *sp2;
	struct slice	 line = { p, len };

	if ((sp1 = memchr(p, ' ', len)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', len - (sp1 + 1 - p))) == NULL) {
		snprintf(err, errlen, "Bad start line");
		return (-1);
	}
	if (len > 4 && memcmp(p, "SIP/", 4) == 0) {
		size_t	i;
		int	code = 0;

		m->request = false;
		m->version = (struct slice){ p, sp1 - p };
		for (i = 1; i <= 3; i++) {
			if (!digit_chars[(unsigned char)sp1[i]])
				break;
			code = code * 10 + sp1[i] - '0';
		}
		if (i != 4 || sp1 + 4 != sp2 || code < 100 || code > 699) {
			snprintf(err, errlen, "Bad status code");
			return (-1);
		}
		m->status = code;
		m->reason = (struct slice){ sp2 + 1, line.p + len - sp2 - 1 };
		return (0);
	}
	m->request = true;
	m->method_s = (struct slice){ p, sp1 - p };
	m->ruri = (struct slice){ sp1 + 1, sp2 - sp1 - 1 };
	m->version = (struct slice){ sp2 + 1, p + len - sp2 - 1 };
	for (size_t i = 0; i < m->method_s.len; i++)
		if (!is_token((unsigned char)p[i])) {
			snprintf(err, errlen, "Bad method");
			return (-1);
		}
	if (m->method_s.len == 0 || m->ruri.len == 0 || m->version.len == 0 ||
	    memchr(m->version.p, ' ', m->version.len) != NULL) {
		snprintf(err, errlen, "Bad request line");
		return (-1);
	}
	m->method = sip_method_id(m->method_s.p, m->method_s.len);
	return (0);
}

/* Index the start line and the header lines.  -1: not a SIP message. */
int
sipmsg_scan(struct sipmsg *m, char *err, size_t errlen)
{
	size_t		 off, eol, n;
	struct sip_hline *cur = NULL;
	bool		 cr_bare;

	n = line_len(m->buf, m->len, &eol);
	m->lf_bare = eol == 1;
	cr_bare = memchr(m->buf, '\r', n) != NULL;
	if (eol == 0 || n == 0) {
		snprintf(err, errlen, "No start line");
		return (-1);
	}
	if (scan_start_line(m, n, err, errlen) == -1) {
		if (n > 4 && memcmp(m->buf, "SIP/", 4) == 0)
			return (-1);	/* a broken response: dropped */
		m->request = true;	/* answered 400 if it has a Via */
		m->start_bad = true;
		m->method = SM_OTHER;
	}
	off = n + eol;
	m->nh = 0;
	m->lines_odd = false;
	memset(m->hfirst, 0, sizeof(m->hfirst));
	memset(m->hcount, 0, sizeof(m->hcount));
	for (;;) {
		const char	*p = m->buf + off, *colon, *vs, *ve;
		size_t		 nlen;

		if (off >= m->len) {	/* no blank line: tolerate */
			m->hdr_end = m->body_off = m->len;
			break;
		}
		n = line_len(p, m->len - off, &eol);
		m->lf_bare |= eol == 1;
		/* A CR in a line is not its CRLF's (checked at the end). */
		if (memchr(p, '\r', n) != NULL)
			cr_bare = true;
		if (n == 0) {
			m->hdr_end = off;
			m->body_off = off + eol;
			break;
		}
		if (*p == ' ' || *p == '\t') {	/* folded continuation */
			if (cur == NULL) {
				snprintf(err, errlen, "Bad header folding");
				return (-1);
			}
			/* The value from the colon on, trimmed at the end. */
			colon = memchr(m->buf + cur->off, ':', cur->len);
			cur->voff = colon + 1 - m->buf;
			cur->len += n + eol;
			cur->vlen = off + n - cur->voff;
			cur->folded = true;
			m->lines_odd = true;
			off += n + eol;
			continue;
		}
		/*
		 * name (a token), white space, ":".  Neither run can pass the
		 * line's end (CR, LF, or the buffer's NUL).
		 */
		for (colon = p;; colon += 4) {
			if (!is_token(colon[0]))
				break;
			if (!is_token(colon[1])) {
				colon += 1;
				break;
			}
			if (!is_token(colon[2])) {
				colon += 2;
				break;
			}
			if (!is_token(colon[3])) {
				colon += 3;
				break;
			}
		}
		nlen = colon - p;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		if (nlen == 0 || *colon != ':') {
			if (memchr(p, ':', n) == NULL)
				snprintf(err, errlen, "Bad header line");
			else
				snprintf(err, errlen, "Bad header name");
			return (-1);
		}
		if (colon != p + nlen)
			m->lines_odd = true;
		if (m->nh == MAX_HEADERS) {
			snprintf(err, errlen, "Too many headers");
			return (-1);
		}
		if (m->nh == SIPMSG_HINLINE && m->h == m->hin) {
			m->hcap = 2 * SIPMSG_HINLINE;
			m->h = xmalloc(m->hcap * sizeof(*m->h));
			memcpy(m->h, m->hin, sizeof(m->hin));
		} else if (m->nh == m->hcap && m->h != m->hin) {
			m->hcap *= 2;
			m->h = xrealloc(m->h, m->hcap * sizeof(*m->h));
		}
		cur = &m->h[m->nh++];
		cur->id = hdr_id(p, nlen);
		cur->folded = false;
		if (m->hcount[cur->id]++ == 0)
			m->hfirst[cur->id] = m->nh;
		cur->off = off;
		cur->len = n + eol;
		/* The value without white space at either end. */
		vs = colon + 1;
		ve = p + n;
		while (vs < ve && is_ws((unsigned char)*vs))
			vs++;
		while (ve > vs && is_ws((unsigned char)ve[-1]))
			ve--;
		cur->voff = vs - m->buf;
		cur->vlen = ve - vs;
		off += n + eol;
	}
	/* A folded value, trimmed now that it is whole. */
	for (unsigned i = 0; m->lines_odd && i < m->nh; i++) {
		struct sip_hline	*h = &m->h[i];
		const char		*v = m->buf + h->voff;
		uint32_t		 s = 0, e = h->vlen;

		if (!h->folded)
			continue;
		while (s < e && is_ws((unsigned char)v[s]))
			s++;
		while (e > s && is_ws((unsigned char)v[e - 1]))
			e--;
		h->voff += s;
		h->vlen = e - s;
	}
	m->body_len = m->len - m->body_off;
	/* NUL may stand in a quoted-pair (RFC 4475 3.1.1.2), never in the
	 * start line; header names and Via values reject it themselves. */
	if (memchr(m->buf, '\0', m->nh > 0 ? m->h[0].off : m->hdr_end) !=
	    NULL) {
		snprintf(err, errlen, "NUL byte in the start line");
		return (-1);
	}
	/* A CR belongs to a CRLF: a lone one splits lines differently for
	 * different parsers, and that is how smuggling starts. */
	if (cr_bare) {
		snprintf(err, errlen, "Bare CR in the headers");
		return (-1);
	}
	return (0);
}

static int
parse_uint(struct slice s, unsigned long max, unsigned long *out)
{
	unsigned long	v = 0;
	size_t		i;

	if (s.len == 0 || s.len > 10)
		return (-1);
	for (i = 0; i < s.len; i++) {
		if (!digit_chars[(unsigned char)s.p[i]])
			return (-1);
		v = v * 10 + (s.p[i] - '0');
	}
	if (v > max)
		return (-1);
	*out = v;
	return (0);
}

/*
 * Bytes of the parameters of a Via that via_parse() only steps over: not
 * '"', '=' or ';', no control byte but HT CR LF, nothing above 0x7f.
 */
static const bool via_plain[256] = {
	['\t'] = true, ['\r'] = true, ['\n'] = true, [' '] = true, ['!'] = true,
	['#' ... ':'] = true, ['<'] = true, ['>' ... 0x7f] = true,
};

/*
 * The Via parameter whose name starts at *i: branch (its value, trimmed,
 * up to the next ";") and rport are noted.  *i moves past the name only:
 * the caller still checks every byte that follows.
 */
static void
via_param(struct slice v, size_t *i, struct slice *branch, bool *have_branch,
    bool *rport)
{
	size_t	s = *i, j, e;

	for (j = s; j < v.len && is_token((unsigned char)v.p[j]); j++)
		;
	*i = j;
	if (j - s == 5 && sip_caseeq(v.p + s, "rport", 5)) {
		*rport = true;
		return;
	}
	if (*have_branch || j - s != 6 || !sip_caseeq(v.p + s, "branch", 6))
		return;
	*have_branch = true;
	while (j < v.len && is_ws((unsigned char)v.p[j]))
		j++;
	if (j == v.len || v.p[j] != '=') {
		*branch = (struct slice){ v.p + j, 0 };
		return;
	}
	for (s = ++j; j < v.len && v.p[j] != ';'; j++)
		if (v.p[j] == '"' && (e = quoted_end(v.p, v.len, j)) > 0)
			j = e - 1;
	for (e = j; e > s && is_ws((unsigned char)v.p[e - 1]); e--)
		;
	while (s < e && is_ws((unsigned char)v.p[s]))
		s++;
	*branch = (struct slice){ v.p + s, e - s };
}

/*
 * One Via value: "SIP / 2.0 / UDP host[:port];params" (RFC 3261 20.42).
 * When branch is not NULL, the first branch parameter's value goes there
 * (length 0 when there is none) and *rport tells whether rport is there:
 * one pass instead of one per parameter.
 */
static int
via_parse(struct slice v, struct slice *proto, struct slice *host,
    uint16_t *port, struct slice *branch, bool *rport)
{
	size_t	i = 0, s = 0;
	int	slashes;
	bool	have_branch = false;

	*port = 0;
	if (branch != NULL) {
		*branch = (struct slice){ v.p + v.len, 0 };
		*rport = false;
	}
	*proto = *host = (struct slice){ v.p, 0 };
	/* "SIP" / "2.0" / transport, each a token, LWS allowed around '/' */
	for (slashes = 0; slashes <= 2; slashes++) {
		while (i < v.len && is_ws((unsigned char)v.p[i]))
			i++;
		for (s = i; i < v.len && is_token((unsigned char)v.p[i]); i++)
			;
		if (i == s)
			return (-1);
		if (slashes == 0 && !slice_eq((struct slice){ v.p + s, i - s },
		    "SIP"))
			return (-1);
		if (slashes == 2)
			break;
		while (i < v.len && is_ws((unsigned char)v.p[i]))
			i++;
		if (i == v.len || v.p[i++] != '/')
			return (-1);
	}
	*proto = (struct slice){ v.p + s, i - s };
	while (i < v.len && is_ws((unsigned char)v.p[i]))
		i++;
	s = i;
	if (i < v.len && v.p[i] == '[') {
		for (i++; i < v.len && v.p[i] != ']'; i++)
			if (!xdigit_chars[(unsigned char)v.p[i]] &&
			    v.p[i] != ':' && v.p[i] != '.')
				return (-1);
		if (i++ >= v.len)
			return (-1);
	} else {
		while (i < v.len && host_chars[(unsigned char)v.p[i]])
			i++;
	}
	*host = (struct slice){ v.p + s, i - s };
	if (host->len == 0)
		return (-1);
	while (i < v.len && is_ws((unsigned char)v.p[i]))
		i++;
	if (i < v.len && v.p[i] == ':') {
		unsigned long	n;

		for (i++; i < v.len && is_ws((unsigned char)v.p[i]); i++)
			;
		for (s = i; i < v.len && digit_chars[(unsigned char)v.p[i]];
		    i++)
			;
		if (parse_uint((struct slice){ v.p + s, i - s }, 65535,
		    &n) == -1 || n == 0)
			return (-1);
		*port = (uint16_t)n;
	}
	while (i < v.len && is_ws((unsigned char)v.p[i]))
		i++;
	if (i < v.len && v.p[i] != ';')
		return (-1);
	/* Every ";" starts a parameter with a name (no ";;", no trailing ";"). */
	while (i < v.len) {
		while (i < v.len && via_plain[(unsigned char)v.p[i]])
			i++;
		if (i == v.len)
			break;
		if (v.p[i] == '"') {
			size_t	e = quoted_end(v.p, v.len, i);

			if (e == 0)
				return (-1);	/* unterminated */
			for (; i < e; i++)	/* no controls, quoted or not */
				if (((unsigned char)v.p[i] < 0x20 &&
				    v.p[i] != '\t') || v.p[i] == 0x7f)
					return (-1);
			continue;
		}
		if ((unsigned char)v.p[i] < 0x20 && !is_ws((unsigned char)v.p[i]))
			return (-1);
		if ((unsigned char)v.p[i] >= 0x80)
			return (-1);
		if (v.p[i] == '=') {	/* a value after "=" is not empty */
			for (i++; i < v.len && is_ws((unsigned char)v.p[i]); i++)
				;
			if (i == v.len || v.p[i] == ';' || v.p[i] == ',')
				return (-1);
			continue;
		}
		if (v.p[i++] != ';')
			continue;
		while (i < v.len && is_ws((unsigned char)v.p[i]))
			i++;
		if (i == v.len || !is_token((unsigned char)v.p[i]))
			return (-1);
		if (branch != NULL)
			via_param(v, &i, branch, &have_branch, rport);
	}
	return (0);
}

static unsigned	plain_via_line(struct sipmsg *, struct slice, bool);

/* The top Via into m, and every other Via value checked. */
static int
parse_vias(struct sipmsg *m)
{
	struct slice	 vs[16], proto, host, v;
	uint16_t	 port;
	unsigned	 i, j, n, left = m->hcount[SH_VIA];
	bool		 top = true;

	if (left == 0)
		return (-1);
	for (i = m->hfirst[SH_VIA] - 1; left > 0; i++) {
		if (m->h[i].id != SH_VIA)
			continue;
		left--;
		v = sipmsg_hvalue(m, &m->h[i]);
		/* Values in the plain form: as via_parse() reads them. */
		if (sipmsg_shortcuts && (n = plain_via_line(m, v, top)) > 0) {
			m->nvias += n;
			top = false;
			continue;
		}
		n = (unsigned)split_values(v, vs, 16);
		if (top) {
			m->via_noted = false;
			if (n == 0)
				return (-1);
			m->via = vs[0];
			if (via_parse(m->via, &m->via_proto, &m->via_host,
			    &m->via_port, &m->branch, &m->via_rport) == -1) {
				if (m->via_proto.len == 0 ||
				    m->via_host.len == 0)
					return (-1);
				m->via_bad = true; /* a reply address, bad params */
				return (1);
			}
		}
		if (n > 16)
			return (-1);
		/*
		 * A Via line holds one value at least (RFC 3261 20.42): an
		 * empty one below ours was relayed upstream as "Via: " in a
		 * response nobody can parse (fuzzer).
		 */
		if (n == 0)
			return (1);
		m->nvias += n;
		/* The top value was parsed above. */
		for (j = top ? 1 : 0; j < n; j++)
			if (via_parse(vs[j], &proto, &host, &port, NULL,
			    NULL) == -1)
				return (1);	/* the top one can be answered */
		top = false;
	}
	return (0);
}

static int
parse_cseq(struct sipmsg *m)
{
	struct slice	 v = sipmsg_hvalue(m, sipmsg_hdr(m, SH_CSEQ));
	size_t		 i;
	unsigned long	 n;

	for (i = 0; i < v.len && digit_chars[(unsigned char)v.p[i]]; i++)
		;
	if (parse_uint((struct slice){ v.p, i }, 0x7fffffffUL, &n) == -1)
		return (-1);
	m->cseq = (uint32_t)n;
	while (i < v.len && is_ws((unsigned char)v.p[i]))
		i++;
	m->cseq_method = slice_trim((struct slice){ v.p + i, v.len - i });
	if (m->cseq_method.len == 0)
		return (-1);
	for (i = 0; i < m->cseq_method.len; i++)
		if (!is_token((unsigned char)m->cseq_method.p[i]))
			return (-1);
	return (0);
}

/*
 * A display name (RFC 3261 25.1): *(token LWS) or one quoted-string, whose
 * qdtext holds no control byte and whose quoted-pairs escape no CR or LF.
 */
static int
check_display(struct slice d)
{
	size_t	i, e;

	d = slice_trim(d);
	if (d.len > 0 && d.p[0] == '"') {
		if ((e = quoted_end(d.p, d.len, 0)) != d.len)
			return (-1);
		for (i = 1; i + 1 < e; i++) {
			unsigned char	c = d.p[i];

			if (c == '\\') {
				c = d.p[++i];
				if (c == '\r' || c == '\n')
					return (-1);
			} else if ((c < 0x20 && !is_ws(c)) || c == 0x7f)
				return (-1);
		}
		return (0);
	}
	for (i = 0; i < d.len; i++)
		if (!is_token((unsigned char)d.p[i]) &&
		    !is_ws((unsigned char)d.p[i]))
			return (-1);
	return (0);
}

/* A generic-param value that is not quoted: token, host or IPv6 bytes. */
static const bool gvalue_chars[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['.'] = true, ['!'] = true, ['%'] = true, ['*'] = true,
	['_'] = true, ['+'] = true, ['`'] = true, ['\''] = true, ['~'] = true,
	['['] = true, [']'] = true, [':'] = true,
};

/*
 * *( SEMI generic-param ) (RFC 3261 25.1), after an address: a token name,
 * and a value of token or host characters or a quoted string.  The first
 * "tag" parameter's value goes to *tag (*have_tag true), as hdr_param()
 * would find it: the value without white space, empty when there is none.
 */
static int
check_params(struct slice r, struct slice *tag, bool *have_tag)
{
	size_t	i = 0, s;
	bool	is_tag;

	*have_tag = false;
	for (;;) {
		while (i < r.len && is_ws((unsigned char)r.p[i]))
			i++;
		if (i == r.len)
			return (0);
		if (r.p[i++] != ';')
			return (-1);
		while (i < r.len && is_ws((unsigned char)r.p[i]))
			i++;
		for (s = i; i < r.len && is_token((unsigned char)r.p[i]); i++)
			;
		if (i == s)
			return (-1);
		is_tag = !*have_tag && i - s == 3 && sip_caseeq(r.p + s, "tag", 3);
		while (i < r.len && is_ws((unsigned char)r.p[i]))
			i++;
		if (i == r.len || r.p[i] != '=') {
			if (is_tag) {
				*tag = (struct slice){ r.p + i, 0 };
				*have_tag = true;
			}
			continue;
		}
		for (i++; i < r.len && is_ws((unsigned char)r.p[i]); i++)
			;
		s = i;
		if (i < r.len && r.p[i] == '"') {
			if ((i = quoted_end(r.p, r.len, i)) == 0)
				return (-1);
		} else {
			while (i < r.len && gvalue_chars[(unsigned char)r.p[i]])
				i++;
			if (i == s)
				return (-1);
		}
		if (is_tag) {
			*tag = (struct slice){ r.p + s, i - s };
			*have_tag = true;
		}
	}
}

static const bool addr_special[256] = {
	['"'] = true, ['<'] = true, ['>'] = true,
};

/*
 * A From or To value (RFC 3261 25.1): an addr-spec, or a
 * display name and "<" addr-spec ">", then parameters only; quotes and
 * angle brackets balanced, and a SIP URI that parses.  The tag of a good
 * one goes to *tag (check_params()).
 */
static int
check_addr_value(struct slice v, struct slice *tag, bool *have_tag)
{
	struct slice	uri, rest;
	struct sipuri	u;
	size_t		i, lt = 0, gt = 0;
	int		angle = 0;

	for (i = 0; i < v.len; i++) {
		while (i < v.len && !addr_special[(unsigned char)v.p[i]])
			i++;
		if (i == v.len)
			break;
		if (v.p[i] == '"') {
			for (i++; i < v.len && v.p[i] != '"'; i++)
				if (v.p[i] == '\\')
					i++;
			if (i >= v.len)
				return (-1);	/* unterminated */
		} else if (v.p[i] == '<') {
			if (angle++ == 0 && gt == 0)
				lt = i;
		} else if (v.p[i] == '>') {
			if (--angle < 0)
				return (-1);
			if (angle == 0 && gt == 0)
				gt = i;
		}
	}
	if (angle != 0)
		return (-1);
	if (gt > 0) {
		/*
		 * As hdr_uri(): lt is the first '<' outside quotes, and
		 * the URI ends at the first '>' after it.
		 */
		const char	*e;

		uri.p = v.p + lt + 1;
		e = memchr(uri.p, '>', v.len - lt - 1);
		uri.len = (size_t)(e - uri.p);
		if (check_display((struct slice){ v.p, lt }) == -1)
			return (-1);
		rest = (struct slice){ v.p + gt + 1, v.len - gt - 1 };
	} else {
		uri = hdr_uri(v);
		rest = (struct slice){ uri.p + uri.len,
		    v.p + v.len - (uri.p + uri.len) };
	}
	if (check_params(rest, tag, have_tag) == -1)
		return (-1);
	if (sipuri_parse(uri, &u) == -1)
		return (-1);
	if ((slice_eq(u.scheme, "sip") || slice_eq(u.scheme, "sips")) &&
	    u.host.len == 0)
		return (-1);
	return (0);
}

/* check_addr_value() of From or To, noted by sipmsg_parse_fields(). */
static int
check_addr(const struct sipmsg *m, enum sip_hdr_id id)
{
	struct slice	tag;
	bool		have_tag;
	int		rc = m->addr_rc[id == SH_TO];

	if (rc != 0)
		return (rc > 0 ? 0 : -1);
	return (check_addr_value(sipmsg_hvalue(m, sipmsg_hdr(m, id)), &tag,
	    &have_tag));
}

static bool	plain_addr(struct slice, struct slice *, bool *);

/*
 * From or To checked once, and its tag: in a good value the first "tag"
 * among the parameters after the address, as hdr_param() finds it in the
 * whole value (nothing before them is a parameter at the top level).
 */
static bool
addr_tag(struct sipmsg *m, enum sip_hdr_id id, struct slice *tag)
{
	struct slice	v = sipmsg_hvalue(m, sipmsg_hdr(m, id));
	bool		have_tag;

	if (sipmsg_shortcuts && plain_addr(v, tag, &have_tag)) {
		m->addr_rc[id == SH_TO] = 1;
		m->addr_plain[id == SH_TO] = true;
		return (have_tag);
	}
	if (check_addr_value(v, tag, &have_tag) == 0) {
		m->addr_rc[id == SH_TO] = 1;
		return (have_tag);
	}
	m->addr_rc[id == SH_TO] = -1;
	return (hdr_param(v, "tag", tag));
}

/*
 * Is every NUL of v inside a quoted-pair of a quoted string, the one place
 * RFC 3261 25.1 allows it (RFC 4475 3.1.1.2 puts one in a display name)?
 */
static bool
nul_quoted(struct slice v)
{
	size_t	i;
	bool	quoted = false;

	for (i = 0; i < v.len; i++) {
		if (quoted && v.p[i] == '\\' && i + 1 < v.len)
			i++;
		else if (v.p[i] == '"')
			quoted = !quoted;
		else if (v.p[i] == '\0')
			return (false);
	}
	return (true);
}

/*
 * Does libosip2 take this From or To value, with a URI in it?  It judges
 * every request, so a To that we copy into an ACK (RFC 3261 17.1.1.3) must
 * pass it, and it refuses some that check_addr() takes (a tab or UTF-8 in
 * a display name; the fuzzer found ACKs nobody could parse).  It also
 * takes "", hence the URI.
 */
bool
sipmsg_addr_ok(const struct sipmsg *m, enum sip_hdr_id id)
{
	const struct sip_hline	*h;
	struct slice		 v;
	osip_to_t		*to;
	char			*s;
	size_t			 i;
	int			 rc;

	if ((id != SH_FROM && id != SH_TO) || (h = sipmsg_hdr(m, id)) == NULL)
		return (false);
	v = sipmsg_hvalue(m, h);
	if (v.len == 0 || !nul_quoted(v))
		return (false);
	if (osip_to_init(&to) != 0)
		return (false);
	s = xmalloc(v.len + 1);
	for (i = 0; i < v.len; i++) {
		s[i] = v.p[i];
		if (s[i] == '\r' || s[i] == '\n')
			s[i] = ' ';	/* folded lines: LWS, as osip does */
		else if (s[i] == '\0')
			s[i] = 'x';	/* a quoted-pair NUL: C strings */
	}
	s[v.len] = '\0';
	rc = osip_to_parse(to, s);
	if (rc == 0 && (to->url == NULL || to->url->scheme == NULL))
		rc = -1;
	free(s);
	osip_to_free(to);
	return (rc == 0);
}

/* word (RFC 3261 25.1): alphanum and -.!%*_+`'~()<>:\"/[]?{} */
static const bool callid_chars[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['.'] = true, ['!'] = true, ['%'] = true, ['*'] = true,
	['_'] = true, ['+'] = true, ['`'] = true, ['\''] = true, ['~'] = true,
	['('] = true, [')'] = true, ['<'] = true, ['>'] = true, [':'] = true,
	['\\'] = true, ['"'] = true, ['/'] = true, ['['] = true, [']'] = true,
	['?'] = true, ['{'] = true, ['}'] = true,
};

/*
 * Call-ID = word [ "@" word ] (RFC 3261 25.1): no white space, no control
 * bytes, one "@" at most, and not at either end.
 */
static int
check_callid(struct slice v)
{
	size_t		i, at = 0;
	unsigned	nat = 0;

	for (i = 0; i < v.len; i++) {
		unsigned char	c;

		/* Four word bytes a step. */
		while (i + 4 <= v.len &&
		    callid_chars[(unsigned char)v.p[i]] &&
		    callid_chars[(unsigned char)v.p[i + 1]] &&
		    callid_chars[(unsigned char)v.p[i + 2]] &&
		    callid_chars[(unsigned char)v.p[i + 3]])
			i += 4;
		if (i == v.len)
			break;
		if (callid_chars[c = v.p[i]])
			continue;
		if (c != '@')
			return (-1);
		at = i;
		nat++;
	}
	if (v.len == 0 || nat > 1 || (nat == 1 && (at == 0 ||
	    at == v.len - 1)))
		return (-1);
	return (0);
}

/*
 * The header section of a response (start line to the empty line), bytes
 * only: every LF ends a CRLF (the scanner refused a bare CR already), and
 * a NUL stands only in a quoted-pair, and never in a challenge.  RFC 3261
 * 7 ends every line with CRLF; we relay a response's lines as they came,
 * so a line that ends in a bare LF would reach the next hop framed
 * differently from how we read it.  A NUL elsewhere is no SIP at all, and
 * the 401/407 challenges are merged into another response as text (16.7
 * step 7): the fuzzer saw them go upstream cut at a NUL, as
 * "Proxy-Authenticate: DigesContent-Length: 0".
 */
static int
check_response_bytes(const struct sipmsg *m, char *err, size_t errlen)
{
	unsigned	 i;

	/* Every LF there ends a line the scanner read. */
	if (m->lf_bare) {
		snprintf(err, errlen, "Bare LF in the headers");
		return (-1);
	}
	if (memchr(m->buf, '\0', m->body_off) == NULL)
		return (0);
	/* The start line and header names hold none (sipmsg_scan()). */
	for (i = 0; i < m->nh; i++) {
		struct slice	v = sipmsg_hvalue(m, &m->h[i]);

		if ((m->h[i].id == SH_WWW_AUTHENTICATE ||
		    m->h[i].id == SH_PROXY_AUTHENTICATE) &&
		    memchr(v.p, '\0', v.len) != NULL) {
			snprintf(err, errlen, "NUL byte in a challenge");
			return (-1);
		}
		if (!nul_quoted(v)) {
			snprintf(err, errlen, "NUL byte in the headers");
			return (-1);
		}
	}
	return (0);
}

/* Content-Type: type "/" subtype *( ";" parameter ) (RFC 3261 20.15). */
static int
check_content_type(const struct sipmsg *m)
{
	const struct sip_hline	*h;
	struct slice		 v;
	size_t			 i = 0;
	int			 part;

	if ((h = sipmsg_hdr(m, SH_CONTENT_TYPE)) == NULL)
		return (0);
	v = sipmsg_hvalue(m, h);
	for (part = 0; part < 2; part++) {
		size_t	s = i;

		while (i < v.len && is_token((unsigned char)v.p[i]))
			i++;
		if (i == s)
			return (-1);
		while (i < v.len && is_ws((unsigned char)v.p[i]))
			i++;
		if (part == 0 && (i == v.len || v.p[i++] != '/'))
			return (-1);
		while (part == 0 && i < v.len && is_ws((unsigned char)v.p[i]))
			i++;
	}
	if (i < v.len && v.p[i] != ';')
		return (-1);
	for (; i < v.len; i++) {
		unsigned char	c = (unsigned char)v.p[i];

		if (c == '"') {
			size_t	e = quoted_end(v.p, v.len, i);

			if (e == 0)
				return (-1);
			i = e - 1;
		} else if ((c < 0x20 && !is_ws(c)) || c >= 0x80)
			return (-1);
	}
	return (0);
}

#define FAIL(code, ...) do {						\
	snprintf(err, errlen, __VA_ARGS__);				\
	return (code);							\
} while (0)

/*
 * The steps of sipmsg_parse(), in order.  Each returns 0, the status code
 * to answer a bad request with (err names the problem), or -1 when the
 * message cannot be answered at all (any bad response).
 */
#define BAD(m)	((m)->request ? 400 : -1)

/*
 * The Vias first: without a reply address nothing can be answered.  Then
 * a request line that did not scan, now that a 400 can reach its sender.
 */
int
sipmsg_parse_via(struct sipmsg *m, char *err, size_t errlen)
{
	int	rc;

	if ((rc = parse_vias(m)) == -1)
		FAIL(-1, "Missing or bad Via header");
	if (rc == 1)
		FAIL(BAD(m), "Bad Via header");
	if (m->start_bad)
		FAIL(BAD(m), "Bad request line");
	return (0);
}

/* Call-ID, From, To and CSeq once each; Max-Forwards, Content-Length once. */
int
sipmsg_parse_counts(const struct sipmsg *m, char *err, size_t errlen)
{
	static const struct {
		enum sip_hdr_id	 id;
		const char	*name;
		int		 min;
	} once[] = {
		{ SH_CALL_ID, "Call-ID", 1 }, { SH_FROM, "From", 1 },
		{ SH_TO, "To", 1 }, { SH_CSEQ, "CSeq", 1 },
		{ SH_MAX_FORWARDS, "Max-Forwards", 0 },
		{ SH_CONTENT_LENGTH, "Content-Length", 0 },
	};
	size_t	i;

	for (i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
		int	c = m->hcount[once[i].id];

		if (c < once[i].min)
			FAIL(BAD(m), "Missing %s header", once[i].name);
		if (c > 1)
			FAIL(BAD(m), "Multiple %s headers", once[i].name);
	}
	return (0);
}

/*
 * The fields every message fills: CSeq (its method is the request's, or
 * names the method of a response), Call-ID, the tags, Max-Forwards, and
 * Content-Length, which cuts the body (RFC 3261 18.3).
 */
int
sipmsg_parse_fields(struct sipmsg *m, char *err, size_t errlen)
{
	const struct sip_hline	*h;
	unsigned long		 n;

	if (parse_cseq(m) == -1)
		FAIL(BAD(m), "Bad CSeq header");
	m->callid = sipmsg_hvalue(m, sipmsg_hdr(m, SH_CALL_ID));
	if (m->callid.len == 0)
		FAIL(BAD(m), "Bad Call-ID header");
	if (!m->request)
		m->method = sip_method_id(m->cseq_method.p, m->cseq_method.len);
	else if (!slice_caseeq(m->cseq_method, m->method_s) ||
	    memcmp(m->cseq_method.p, m->method_s.p, m->method_s.len) != 0)
		FAIL(BAD(m), "CSeq method mismatch");
	if (!(m->from_tag_set = addr_tag(m, SH_FROM, &m->from_tag)))
		m->from_tag = (struct slice){ "", 0 };
	if (!addr_tag(m, SH_TO, &m->to_tag))
		m->to_tag = (struct slice){ "", 0 };
	if ((h = sipmsg_hdr(m, SH_MAX_FORWARDS)) != NULL) {
		if (parse_uint(sipmsg_hvalue(m, h), 0x7fffffffUL, &n) == -1)
			FAIL(BAD(m), "Bad Max-Forwards header");
		m->max_forwards = n > 255 ? 255 : (int)n;
	}
	if ((h = sipmsg_hdr(m, SH_CONTENT_LENGTH)) != NULL) {
		if (parse_uint(sipmsg_hvalue(m, h), 0x7fffffffUL, &n) == -1)
			FAIL(BAD(m), "Bad Content-Length header");
		m->content_length = n;
		if (n > m->body_len)
			FAIL(BAD(m), "Content-Length mismatch (larger "
			    "than body)");
		m->body_len = n;	/* RFC 3261 18.3: extra bytes go */
	}
	return (0);
}

/*
 * A response is not parsed by libosip2: only one that carries one of our
 * own branches counts, and the headers a proxy uses were checked by the
 * steps before, so the messages that make up most of a call are not parsed
 * twice.  What remains is what we relay or copy into what we build
 * (doc/BEHAVIOUR.md, "Responses from downstream").
 */
int
sipmsg_check_response(const struct sipmsg *m, char *err, size_t errlen)
{
	if (check_response_bytes(m, err, errlen) == -1)
		return (-1);
	if (check_callid(m->callid) == -1)
		FAIL(-1, "Bad Call-ID header");
	if (check_addr(m, SH_FROM) == -1)
		FAIL(-1, "Bad From header");
	if (check_addr(m, SH_TO) == -1)
		FAIL(-1, "Bad To header");
	/* The To of a non-2xx final to an INVITE goes into our ACK. */
	if (m->status >= 300 && m->method == SM_INVITE &&
	    !sipmsg_addr_ok(m, SH_TO))
		FAIL(-1, "Bad To header");
	return (0);
}

/*
 * A request inside a dialog or a transaction (a To tag, or ACK, CANCEL)
 * is not parsed by libosip2 either: it adds nothing to a dialog or a
 * registration, and the answer to it is decided by its transaction or its
 * Route.  What every request carries on, and what we copy into the ACKs
 * and CANCELs we build, is checked as a response's is: NULs in its header
 * section, Call-ID, From and To (doc/BEHAVIOUR.md).
 */
bool
sipmsg_in_dialog(const struct sipmsg *m)
{
	return (m->request && (m->method == SM_ACK ||
	    m->method == SM_CANCEL || m->to_tag.len > 0));
}

int
sipmsg_check_fields(const struct sipmsg *m, char *err, size_t errlen)
{
	unsigned	i;

	if (memchr(m->buf, '\0', m->body_off) != NULL)
		for (i = 0; i < m->nh; i++)
			if (!nul_quoted(sipmsg_hvalue(m, &m->h[i])))
				FAIL(400, "NUL byte in the headers");
	if (check_callid(m->callid) == -1)
		FAIL(400, "Bad Call-ID header");
	if (check_addr(m, SH_FROM) == -1)
		FAIL(400, "Bad From header");
	if (check_addr(m, SH_TO) == -1)
		FAIL(400, "Bad To header");
	return (0);
}

/* A request's version, Request-URI scheme and Content-Type. */
int
sipmsg_parse_request_line(const struct sipmsg *m, char *err, size_t errlen)
{
	struct slice	scheme;
	size_t		i;

	if (!slice_eq(m->version, "SIP/2.0"))
		FAIL(505, "Version Not Supported");
	for (i = 0; i < m->ruri.len && m->ruri.p[i] != ':'; i++)
		if (!scheme_chars[(unsigned char)m->ruri.p[i]])
			FAIL(400, "Bad Request-URI");
	scheme = (struct slice){ m->ruri.p, i };
	if (i == 0 || i == m->ruri.len)
		FAIL(400, "Bad Request-URI");
	if (!slice_eq(scheme, "sip") && !slice_eq(scheme, "sips"))
		FAIL(416, "Unsupported URI Scheme");
	if (check_content_type(m) == -1)
		FAIL(400, "Bad Content-Type header");
	return (0);
}

/*
 * The headers libosip2 judges (libosip2 5.x): a bad value of any other
 * makes no difference to osip_message_parse().  It stores the unknown
 * ones unparsed, and ignores a parse error in the rest it knows ("ignored
 * when invalid": Route, Record-Route, the authentication headers, Accept,
 * Allow and such; Content-Length is only copied).  Call-ID is judged
 * here first, and more strictly: libosip2 refuses only one that starts
 * with "@" (and a second one), check_callid() those and more.  A line of
 * any header stays out: sipmsg_scan() checked its colon, name and line
 * ends.  A folded one goes in all the same: libosip2 trips over some
 * folds (a continuation line of white space only, then another one) and
 * calls the message malformed, whatever the header.
 */
static const bool osip_judges[SH_NIDS] = {
	[SH_VIA] = true, [SH_FROM] = true, [SH_TO] = true,
	[SH_CSEQ] = true, [SH_CONTACT] = true,
};

/*
 * A request outside a dialog goes through libosip2's parser: its start
 * line and every header libosip2 judges, but not Content-Type nor the
 * body: it would parse the body by its type, and its multipart parser
 * leaks memory on some bodies (found by fuzzing); the body is not ours to
 * judge.
 */
int
sipmsg_parse_osip(const struct sipmsg *m, char *err, size_t errlen)
{
	osip_message_t	*om;
	struct buf	 ob;
	char		 obstack[4096], *nul;
	size_t		 i;
	int		 rc;

	if (osip_message_init(&om) != 0)
		FAIL(400, "Out of memory");
	buf_init_on(&ob, obstack, sizeof(obstack));
	buf_add(&ob, m->buf, m->nh > 0 ? m->h[0].off : m->hdr_end);
	for (i = 0; i < m->nh; i++)
		if (osip_judges[m->h[i].id] || (m->h[i].folded &&
		    m->h[i].id != SH_CONTENT_TYPE))
			buf_add(&ob, m->buf + m->h[i].off, m->h[i].len);
	buf_add(&ob, "\r\n", 2);
	for (nul = ob.p; (nul = memchr(nul, '\0', ob.p + ob.len - nul)) !=
	    NULL; nul++)
		*nul = 'x';	/* a quoted-pair NUL: C strings */
	rc = osip_message_parse(om, ob.p, ob.len);
	buf_cleanup(&ob);
	if (rc == 0) {
		if (om->from == NULL || om->from->url == NULL)
			rc = snprintf(err, errlen, "Bad From header");
		else if (om->to == NULL || om->to->url == NULL)
			rc = snprintf(err, errlen, "Bad To header");
		else if (osip_list_size(&om->vias) <= 0)
			rc = snprintf(err, errlen, "Bad Via header");
	} else
		snprintf(err, errlen, "Malformed message");
	osip_message_free(om);
	return (rc != 0 ? 400 : 0);
}

/*
 * A subset of what libosip2 takes, checked without it.  Byte classes of
 * the plain forms: a URI's user, parameter names and values, a header
 * parameter (pc); a host name or IPv4 address (hc); a display name that
 * is not quoted (dc, with SP); a quoted one (qc: printable ASCII but
 * " \ < > , ;).
 */
static const bool plain_pc[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['_'] = true, ['.'] = true, ['!'] = true, ['~'] = true,
	['*'] = true, ['\''] = true, ['+'] = true,
};
static const bool plain_hc[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['.'] = true,
};
static const bool plain_dc[256] = {
	['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
	['-'] = true, ['_'] = true, ['.'] = true, ['!'] = true, ['~'] = true,
	['*'] = true, ['\''] = true, ['+'] = true, ['`'] = true, [' '] = true,
};
static const bool plain_qc[256] = {
	[' ' ... '!'] = true, ['#' ... '+'] = true, ['-' ... ':'] = true,
	['='] = true, ['?' ... '['] = true, [']' ... '~'] = true,
};

/*
 * Past a run of bytes of class cls from p (at least one), or NULL.  The
 * run may look past e: p is inside a message's buffer, which ends in a
 * NUL, and no class holds NUL; what is past e is not counted.
 */
static inline const char *
plain_run(const char *p, const char *e, const bool *cls)
{
	const char	*s = p;

	for (;; p += 4) {
		if (!cls[(unsigned char)p[0]])
			break;
		if (!cls[(unsigned char)p[1]]) {
			p += 1;
			break;
		}
		if (!cls[(unsigned char)p[2]]) {
			p += 2;
			break;
		}
		if (!cls[(unsigned char)p[3]]) {
			p += 3;
			break;
		}
	}
	if (p > e)
		p = e;
	return (p > s ? p : NULL);
}

/*
 * Past *(";" pc+ ["=" pc+]) from p, or NULL.  With tag, the first "tag"
 * parameter's value goes there (*have_tag true) as check_params() finds it.
 */
static const char *
plain_params(const char *p, const char *e, struct slice *tag, bool *have_tag)
{
	while (p != NULL && p < e && *p == ';') {
		const char	*n = p + 1;
		bool		 is_tag;

		if ((p = plain_run(n, e, plain_pc)) == NULL)
			break;
		is_tag = tag != NULL && !*have_tag && p - n == 3 &&
		    sip_caseeq(n, "tag", 3);
		if (p < e && *p == '=') {
			n = p + 1;
			if ((p = plain_run(n, e, plain_pc)) == NULL)
				break;
		} else
			n = p;
		if (is_tag) {
			*tag = (struct slice){ n, (size_t)(p - n) };
			*have_tag = true;
		}
	}
	return (p);
}

/*
 * Past "sip:" or "sips:", [user "@"] host [":" port], and with params,
 * the URI's parameters, from p; NULL if it is not that, or shorter than
 * 6 bytes.
 */
static const char *
plain_uri(const char *p, const char *e, bool params)
{
	const char	*q, *h, *start = p;

	if (e - p >= 4 && memcmp(p, "sip:", 4) == 0)
		p += 4;
	else if (e - p >= 5 && memcmp(p, "sips:", 5) == 0)
		p += 5;
	else
		return (NULL);
	if ((q = plain_run(p, e, plain_pc)) == NULL)
		return (NULL);
	if (q < e && *q == '@')
		p = q + 1;
	if ((h = plain_run(p, e, plain_hc)) == NULL)
		return (NULL);
	if (h < e && *h == ':') {
		const char	*s = ++h;
		unsigned long	 port = 0;

		while (h < e && h - s < 5 && digit_chars[(unsigned char)*h])
			port = port * 10 + (*h++ - '0');
		if (port == 0 || port > 65535 || (h < e &&
		    digit_chars[(unsigned char)*h]))
			return (NULL);
	}
	if (params)
		h = plain_params(h, e, NULL, NULL);
	/* libosip2 refuses a URI of 5 bytes in <> or before ";" ("sip:a"). */
	return (h != NULL && h - start >= 6 ? h : NULL);
}

/*
 * A From, To or Contact value in a plain form: "<" URI ">" after an
 * optional display name (tokens and SP, or one quoted string), or a URI
 * without parameters; then header parameters.  One that is takes
 * check_addr_value() too, which finds the same tag (*tag, *have_tag).
 */
static bool
plain_addr(struct slice v, struct slice *tag, bool *have_tag)
{
	const char	*p = v.p, *e = v.p + v.len, *lt;

	*have_tag = false;
	if (p < e && *p == '"') {
		if ((p = plain_run(p + 1, e, plain_qc)) == NULL ||
		    p == e || *p++ != '"')
			return (false);
		while (p < e && *p == ' ')
			p++;
		if (p == e || *p != '<')
			return (false);
	} else {
		/*
		 * A display name runs up to the "<"; anything else it
		 * stops at starts an addr-spec again, which takes no "<".
		 */
		lt = plain_dc[(unsigned char)*p] ?
		    plain_run(p, e, plain_dc) : p;
		if (lt != NULL && lt < e && *lt == '<')
			p = lt;
	}
	if (p < e && *p == '<') {
		if ((p = plain_uri(p + 1, e, true)) == NULL || p == e ||
		    *p++ != '>')
			return (false);
	} else if ((p = plain_uri(p, e, false)) == NULL)
		return (false);
	return (plain_params(p, e, tag, have_tag) == e);
}

/*
 * A Via value "SIP/2.0/" transport SP host [":" port] params from p, as
 * via_parse() takes it, filling the same fields: the transport, host, port
 * and the first branch parameter's value (empty without "="), and whether
 * rport is there (when proto is not NULL).  Returns where it ends (e, or a
 * byte that is no part of it), or NULL.
 */
static const char *
plain_via_value(const char *p, const char *e, struct slice *proto,
    struct slice *host, uint16_t *port, struct slice *branch, bool *rport,
    struct sipmsg *m)
{
	const char	*s;
	unsigned long	 n = 0;
	bool		 have_branch = false;

	if (e - p < 8 || memcmp(p, "SIP/2.0/", 8) != 0 ||
	    (p = plain_run(s = p + 8, e, plain_hc)) == NULL || p == e ||
	    *p != ' ')
		return (NULL);
	if (proto != NULL)
		*proto = (struct slice){ s, (size_t)(p - s) };
	if ((p = plain_run(s = p + 1, e, plain_hc)) == NULL)
		return (NULL);
	if (proto != NULL)
		*host = (struct slice){ s, (size_t)(p - s) };
	if (p < e && *p == ':') {
		s = ++p;
		while (p < e && p - s < 5 && digit_chars[(unsigned char)*p])
			n = n * 10 + (*p++ - '0');
		if (n == 0 || n > 65535 || (p < e &&
		    digit_chars[(unsigned char)*p]))
			return (NULL);
	}
	if (proto != NULL) {
		*port = (uint16_t)n;
		*rport = false;
	}
	if (m != NULL)
		m->via_has_received = false;
	while (p < e && *p == ';') {
		const char	*name = p + 1, *nend, *val;

		if ((nend = plain_run(name, e, plain_pc)) == NULL)
			return (NULL);
		p = val = nend;
		if (p < e && *p == '=' &&
		    (p = plain_run(val = p + 1, e, plain_pc)) == NULL)
			return (NULL);
		if (proto == NULL)
			continue;
		if (nend - name == 5 && sip_caseeq(name, "rport", 5)) {
			if (!*rport && m != NULL)
				m->via_rport_val = (struct slice){ val,
				    (size_t)(p - val) };
			*rport = true;
		} else if (m != NULL && !m->via_has_received &&
		    nend - name == 8 && sip_caseeq(name, "received", 8)) {
			m->via_has_received = true;
			m->via_received = (struct slice){ val,
			    (size_t)(p - val) };
		} else if (!have_branch && nend - name == 6 &&
		    sip_caseeq(name, "branch", 6)) {
			have_branch = true;
			*branch = (struct slice){ val, (size_t)(p - val) };
		}
	}
	if (proto != NULL && !have_branch)
		*branch = (struct slice){ p, 0 };	/* the value's end */
	return (p);
}

/* One Via value in the plain form, alone. */
static bool
plain_via(struct slice v)
{
	return (plain_via_value(v.p, v.p + v.len, NULL, NULL, NULL, NULL,
	    NULL, NULL) == v.p + v.len);
}

/*
 * A Via line of plain values, separated by "," with spaces around it:
 * how many (16 at most), the top one's fields filled (parse_vias() reads
 * them so), or 0 when the line is not that.
 */
static unsigned
plain_via_line(struct sipmsg *m, struct slice v, bool top)
{
	const char	*p = v.p, *e = v.p + v.len, *q;
	unsigned	 n = 1;

	if (top) {
		if ((q = plain_via_value(p, e, &m->via_proto, &m->via_host,
		    &m->via_port, &m->branch, &m->via_rport, m)) == NULL)
			return (0);
		m->via = (struct slice){ p, (size_t)(q - p) };
		m->via_noted = true;
	} else if ((q = plain_via_value(p, e, NULL, NULL, NULL, NULL,
	    NULL, NULL)) == NULL)
		return (0);
	while (q < e) {
		while (q < e && *q == ' ')
			q++;
		if (q == e || *q++ != ',' || n == 16)
			return (0);
		while (q < e && *q == ' ')
			q++;
		if ((q = plain_via_value(q, e, NULL, NULL, NULL, NULL,
		    NULL, NULL)) == NULL)
			return (0);
		n++;
	}
	return (n);
}

/* A CSeq value: digits, one SP, a token. */
static bool
plain_cseq(struct slice v)
{
	const char	*p = v.p, *e = v.p + v.len;

	while (p < e && digit_chars[(unsigned char)*p])
		p++;
	if (p == v.p || p - v.p > 10 || p == e || *p++ != ' ' || p == e)
		return (false);
	while (p < e && is_token((unsigned char)*p))
		p++;
	return (p == e);
}

/*
 * Would libosip2 surely take this request, as sipmsg_parse_osip() gives
 * it?  True only when its Request-URI and every line libosip2 judges are
 * in the plain forms above (a subset of what libosip2 5.3 parses: one
 * value per line, no quoting but a display name's, no escapes, IPv6 or
 * URI headers, no white space but single spaces where they separate), no
 * line is folded, none ends in a bare LF and no NUL is in the header
 * section.  Anything else goes to libosip2 as before: this only spares
 * the common request the parse (doc/BEHAVIOUR.md).  The fuzz target
 * checks every request this takes against libosip2.
 */
bool
sipmsg_osip_plain(const struct sipmsg *m)
{
	struct slice	tag;
	unsigned	i;
	bool		have_tag;

	if (m->lf_bare || m->lines_odd ||
	    plain_uri(m->ruri.p, m->ruri.p + m->ruri.len, true) !=
	    m->ruri.p + m->ruri.len ||
	    memchr(m->buf, '\0', m->hdr_end) != NULL)
		return (false);
	for (i = 0; i < m->nh; i++) {
		const struct sip_hline	*h = &m->h[i];
		struct slice		 v = sipmsg_hvalue(m, h);

		switch (h->id) {
		case SH_VIA:
			if (!plain_via(v))
				return (false);
			break;
		case SH_FROM:
		case SH_TO:
			if (m->addr_plain[h->id == SH_TO])
				break;
			/* FALLTHROUGH */
		case SH_CONTACT:
			if (!plain_addr(v, &tag, &have_tag))
				return (false);
			break;
		case SH_CSEQ:
			if (!plain_cseq(v))
				return (false);
			break;
		default:
			break;
		}
	}
	return (true);
}

/*
 * Scan, check the syntax and fill the fields, step by step.  Returns 0,
 * the status code to answer a bad request with (err names the problem),
 * or -1 when the message cannot be answered at all.
 */
int
sipmsg_parse(struct sipmsg *m, char *err, size_t errlen)
{
	int	rc;

	if (sipmsg_scan(m, err, errlen) == -1)
		return (-1);
	if ((rc = sipmsg_parse_via(m, err, errlen)) != 0 ||
	    (rc = sipmsg_parse_counts(m, err, errlen)) != 0 ||
	    (rc = sipmsg_parse_fields(m, err, errlen)) != 0)
		return (rc);
	if (!m->request)
		rc = sipmsg_check_response(m, err, errlen);
	else if ((rc = sipmsg_parse_request_line(m, err, errlen)) == 0) {
		/* A From tag that is there must not be empty. */
		if (m->from_tag.len == 0 && m->from_tag_set)
			FAIL(400, "Bad From tag");
		if ((rc = sipmsg_check_fields(m, err, errlen)) == 0 &&
		    !sipmsg_in_dialog(m) && !(sipmsg_shortcuts &&
		    sipmsg_osip_plain(m)))
			rc = sipmsg_parse_osip(m, err, errlen);
	}
	if (rc != 0)
		return (rc);
	m->parsed = true;
	return (0);
}

/* A bad request gets an answer only when we know where to send it. */
bool
sipmsg_answerable(const struct sipmsg *m)
{
	return (m->request && m->method != SM_ACK && m->via_host.len > 0);
}

/*
 * RFC 3261 16.3 checks that come after the syntax: version, URI scheme,
 * Max-Forwards, Proxy-Require.  Returns the status to answer with, or 0.
 */
int
sipmsg_check_request(const struct sipmsg *m, char *err, size_t errlen)
{
	struct sipuri	u;
	struct slice	scheme;
	size_t		i;

	if (!slice_eq(m->version, "SIP/2.0"))
		FAIL(505, "Version Not Supported");
	/* A plain sip or sips URI parses and has no headers. */
	if (sipmsg_shortcuts && plain_uri(m->ruri.p, m->ruri.p + m->ruri.len,
	    true) == m->ruri.p + m->ruri.len)
		goto uri_ok;
	for (i = 0; i < m->ruri.len && m->ruri.p[i] != ':'; i++)
		;
	scheme = (struct slice){ m->ruri.p, i };
	if (i == m->ruri.len || sipuri_parse(m->ruri, &u) == -1) {
		if (i < m->ruri.len && !slice_eq(scheme, "sip") &&
		    !slice_eq(scheme, "sips"))
			FAIL(416, "Unsupported URI Scheme");
		FAIL(400, "Bad Request-URI");
	}
	if (!slice_eq(u.scheme, "sip") && !slice_eq(u.scheme, "sips"))
		FAIL(416, "Unsupported URI Scheme");
	if (u.headers.len > 0)	/* RFC 3261 19.1.5, RFC 4475 3.1.2.11 */
		FAIL(400, "Headers in Request-URI");
uri_ok:
	if (m->max_forwards == 0 && m->method != SM_OPTIONS)
		FAIL(483, "Too Many Hops");
	if (m->method != SM_ACK && m->method != SM_CANCEL &&
	    sipmsg_hdr(m, SH_PROXY_REQUIRE) != NULL)
		FAIL(420, "Bad Extension");
	return (0);
}

/* Does a header (Supported, Require) list this option tag? */
bool
sipmsg_has_option(const struct sipmsg *m, enum sip_hdr_id id,
    const char *tag)
{
	struct slice	v[16];
	unsigned	i, n;
	size_t		len = strlen(tag);

	n = sipmsg_values(m, id, v, 16);
	for (i = 0; i < n && i < 16; i++) {
		struct slice	t = v[i];

		while (t.len > 0 && (t.p[0] == ' ' || t.p[0] == '\t'))
			t.p++, t.len--;
		while (t.len > 0 && (t.p[t.len - 1] == ' ' ||
		    t.p[t.len - 1] == '\t'))
			t.len--;
		if (t.len == len && sip_caseeq(t.p, tag, len))
			return (true);
	}
	return (false);
}
