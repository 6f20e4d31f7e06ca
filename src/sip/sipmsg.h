#ifndef OSPREY_SIPMSG_H
#define OSPREY_SIPMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * A SIP message as received: the raw bytes, an index of its header lines, and
 * the fields the proxy needs, as slices into the bytes.  libosip2's parser
 * validates the syntax; forwarding splices the raw bytes instead of
 * re-serialising, so what we do not touch reaches the next hop as it came.
 */

enum sip_hdr_id {
	SH_OTHER,
	SH_VIA,
	SH_ROUTE,
	SH_RECORD_ROUTE,
	SH_MAX_FORWARDS,
	SH_CONTENT_LENGTH,
	SH_FROM,
	SH_TO,
	SH_CALL_ID,
	SH_CSEQ,
	SH_PROXY_REQUIRE,
	SH_CONTACT,
	SH_REASON,
	SH_CONTENT_TYPE,
	SH_USER_AGENT,
	SH_WWW_AUTHENTICATE,
	SH_PROXY_AUTHENTICATE,
	SH_AUTHORIZATION,
	SH_PROXY_AUTHORIZATION,
	SH_EXPIRES,
	SH_REQUIRE,
	SH_SUPPORTED,
	SH_PATH,
	SH_NIDS		/* how many ids there are */
};

enum sip_method {
	SM_OTHER,
	SM_INVITE,
	SM_ACK,
	SM_CANCEL,
	SM_BYE,
	SM_OPTIONS,
	SM_REGISTER,
	SM_SUBSCRIBE,
	SM_NOTIFY,
	SM_REFER,
	SM_PRACK,
	SM_UPDATE,
	SM_INFO,
	SM_MESSAGE,
	SM_PUBLISH,
	SM_COUNT,
};

struct sip_hline {
	uint8_t		 id;	/* enum sip_hdr_id */
	bool		 folded;	/* continued on another line */
	uint32_t	 off;	/* whole line(s) with the CRLF */
	uint32_t	 len;
	uint32_t	 voff;	/* value, without surrounding white space */
	uint32_t	 vlen;
};

struct sipuri {
	struct slice	 scheme;
	struct slice	 user;
	struct slice	 host;	/* IPv6 with its brackets */
	struct slice	 params;	/* ";a=b;lr", may be empty */
	struct slice	 headers;	/* after "?", may be empty */
	uint16_t	 port;	/* 0: none given */
};

/* Header lines kept in struct sipmsg itself; more go to the heap. */
#define SIPMSG_HINLINE	16

/*
 * Owned by whoever holds it: a server transaction holds its request.  The
 * first SIPMSG_HINLINE header lines are part of the struct.
 */
struct sipmsg {
	char		*buf;		/* owned, NUL terminated */
	size_t		 len;
	struct sip_hline *h;		/* hin, or owned when there are more */
	unsigned	 nh;
	unsigned	 hcap;		/* slots of h on the heap; 0: h is hin */
	/* By id: index + 1 of the first line (0: none), and how many. */
	uint16_t	 hfirst[SH_NIDS];
	uint16_t	 hcount[SH_NIDS];
	size_t		 hdr_end;	/* offset just past the last header line */
	size_t		 body_off;
	size_t		 body_len;

	bool		 request;
	int		 status;	/* responses */
	enum sip_method	 method;	/* requests; the CSeq method for responses */
	struct slice	 method_s;
	struct slice	 ruri;
	struct slice	 version;
	struct slice	 reason;
	size_t		 content_length;	/* as declared; SIZE_MAX absent */

	struct slice	 callid;
	struct slice	 from_tag;
	struct slice	 to_tag;
	uint32_t	 cseq;
	struct slice	 cseq_method;
	struct slice	 via;		/* first Via value */
	struct slice	 via_proto;	/* "UDP" */
	struct slice	 via_host;
	uint16_t	 via_port;	/* 0: none given */
	struct slice	 branch;
	bool		 via_rport;
	/* Noted by the plain Via form (via_noted): its first received and
	 * rport parameters, as hdr_param() finds them in via. */
	bool		 via_noted;
	bool		 via_has_received;
	struct slice	 via_received;
	struct slice	 via_rport_val;
	unsigned	 nvias;		/* Via values, all lines */
	int		 max_forwards;	/* -1: absent */
	bool		 start_bad;	/* request line unparsable */
	bool		 via_bad;	/* top Via: sent-by fine, rest not */
	bool		 parsed;	/* sipmsg_parse() returned 0 */

	/* Noted by the scanner and the steps, for the steps after them. */
	bool		 lf_bare;	/* a header-section line ends in LF */
	bool		 lines_odd;	/* a folded line, or "Name :" */
	bool		 from_tag_set;	/* From has a tag parameter */
	int8_t		 addr_rc[2];	/* From, To: 0 unchecked, 1 good, -1 bad */
	bool		 addr_plain[2];	/* From, To: plain form */
	struct sip_hline hin[SIPMSG_HINLINE];
	char		 inl[];		/* buf, for a message whose bytes
					   nobody keeps (sipmsg_new()) */
};

#define SIP_MAGIC	"z9hG4bK"
#define SIP_MAGIC_LEN	7

extern bool	 sipmsg_shortcuts;

void		 sipmsg_init(void);
struct sipmsg	*sipmsg_new(const char *, size_t);
char		*sipmsg_take_buf(struct sipmsg *);
void		 sipmsg_free(struct sipmsg *);
int		 sipmsg_scan(struct sipmsg *, char *, size_t);
int		 sipmsg_parse(struct sipmsg *, char *, size_t);
/* The steps of sipmsg_parse() after sipmsg_scan(), in order. */
int		 sipmsg_parse_via(struct sipmsg *, char *, size_t);
int		 sipmsg_parse_counts(const struct sipmsg *, char *, size_t);
int		 sipmsg_parse_fields(struct sipmsg *, char *, size_t);
int		 sipmsg_check_response(const struct sipmsg *, char *, size_t);
int		 sipmsg_parse_request_line(const struct sipmsg *, char *,
		     size_t);
int		 sipmsg_parse_osip(const struct sipmsg *, char *, size_t);
bool		 sipmsg_osip_plain(const struct sipmsg *);
bool		 sipmsg_in_dialog(const struct sipmsg *);
int		 sipmsg_check_fields(const struct sipmsg *, char *, size_t);
int		 sipmsg_check_request(const struct sipmsg *, char *, size_t);
bool		 sipmsg_answerable(const struct sipmsg *);
bool		 sipmsg_addr_ok(const struct sipmsg *, enum sip_hdr_id);

/* The first line of a header, or NULL. */
static inline const struct sip_hline *
sipmsg_hdr(const struct sipmsg *m, enum sip_hdr_id id)
{
	return (m->hfirst[id] != 0 ? &m->h[m->hfirst[id] - 1] : NULL);
}

struct slice	 sipmsg_hvalue(const struct sipmsg *, const struct sip_hline *);
bool		 sipmsg_has_option(const struct sipmsg *, enum sip_hdr_id,
		     const char *);
unsigned	 sipmsg_values(const struct sipmsg *, enum sip_hdr_id,
		     struct slice *, unsigned);
bool		 sipmsg_magic(const struct sipmsg *);
bool		 sipmsg_via_param(const struct sipmsg *, const char *,
		     struct slice *);
enum sip_method	 sip_method_id(const char *, size_t);
const char	*sip_method_name(enum sip_method);

/* Header values and URIs. */
/* ASCII tolower(), without the locale. */
static inline unsigned
sip_tolower(unsigned char c)
{
	return (c + (((unsigned)c - 'A' < 26u) << 5));
}

/* Case-insensitive (ASCII) and byte by byte, NULs included. */
static inline bool
sip_caseeq(const char *a, const char *b, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (sip_tolower(a[i]) != sip_tolower(b[i]))
			return (false);
	return (true);
}

static inline bool
slice_eq(struct slice s, const char *str)
{
	size_t	n = __builtin_strlen(str);

	return (s.len == n && sip_caseeq(s.p, str, n));
}

static inline bool
slice_caseeq(struct slice a, struct slice b)
{
	return (a.len == b.len && sip_caseeq(a.p, b.p, a.len));
}

/* Without white space (SP HT CR LF) at either end. */
static inline struct slice
slice_trim(struct slice s)
{
	while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t' ||
	    s.p[0] == '\r' || s.p[0] == '\n')) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t' ||
	    s.p[s.len - 1] == '\r' || s.p[s.len - 1] == '\n'))
		s.len--;
	return (s);
}

bool		 hdr_param_n(struct slice, const char *, size_t,
		     struct slice *);

/*
 * Find header parameter name in value (";name=val" outside quotes and <>).
 * Stops at the first top-level comma.  A parameter without a value yields
 * an empty val.
 */
static inline bool
hdr_param(struct slice value, const char *name, struct slice *val)
{
	return (hdr_param_n(value, name, __builtin_strlen(name), val));
}
struct slice	 hdr_uri(struct slice value);
int		 sipuri_parse(struct slice, struct sipuri *);
bool		 sipuri_param(const struct sipuri *, const char *,
		     struct slice *);
bool		 sipuri_printable(struct slice);
bool		 sipuri_fits_ruri(struct slice);
size_t		 split_values(struct slice, struct slice *, size_t);

/* The reason phrase for a status code (RFC 3261 21, 4320, 3329, 5360...). */
const char	*sip_reason(int);

#endif
