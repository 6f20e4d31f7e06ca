/*
 * SIP message framing on a stream transport: RFC 3261 7.5 (CRLFs before a
 * start line are ignored), 18.3 (Content-Length is required and gives the
 * body), RFC 5626 3.5.1 (a CRLFCRLF ping, a CRLF pong).
 *
 * The header section is scanned one byte at a time straight out of the
 * connection's evbuffer, never twice: f->scanned remembers how far the
 * scanner got and the lexer state says where it was, so a peer trickling
 * a header section costs O(bytes), and one that never ends it is cut off
 * once max_size bytes have come.  Only Content-Length (or "l") at the start
 * of a header line counts, with folded lines joined first wherever they
 * fall (even before the colon, as a parser that unfolds first sees them;
 * sipmsg.c rejects such a line later).  Lines end in CRLF: a
 * bare CR or LF in the header section is an error, because a parser that
 * took it for a line end could see a Content-Length the framer did not.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "tp_frame.h"
#include "xmalloc.h"

/* The scanner's states (f->lex). */
enum {
	LX_START,	/* in the start line */
	LX_CR,		/* a CR ended a line: LF must follow */
	LX_BOL,		/* after CRLF: a header, a fold, or the end */
	LX_NAME,	/* in a header name */
	LX_NAME_WS,	/* between the name and its colon */
	LX_VALUE,	/* in a Content-Length value */
	LX_SKIP,	/* in a line framing does not need */
	LX_END_CR	/* a CR at the start of a line: the end, if LF */
};

/* Scanner results. */
#define SCAN_MORE	0
#define SCAN_DONE	1
#define SCAN_FAIL	(-1)

static void
tp_frame_reset(struct tp_frame *f)
{
	f->state = TP_FRAME_IDLE;
	f->scanned = 0;
	f->lex = LX_START;
	f->lex_fold = LX_SKIP;
	f->response = true;
	f->in_cl = false;
	f->name_len = 0;
	f->cl_digits = 0;
	f->cl_after = false;
	f->cl_cur = 0;
	f->cl_cur_bad = false;
	f->cl_bad = false;
	f->cl_conflict = false;
	f->cl_seen = false;
	f->cl = 0;
	f->head_len = 0;
}

void
tp_frame_init(struct tp_frame *f, size_t max_size)
{
	memset(f, 0, sizeof(*f));
	f->max_size = max_size;
	tp_frame_reset(f);
}

void
tp_frame_cleanup(struct tp_frame *f)
{
	free(f->msg);
	f->msg = NULL;
	f->msg_cap = 0;
}

void
tp_frame_ping_sent(struct tp_frame *f)
{
	f->ping_out = true;
}

/* RFC 3261 25.1 token characters: what a header name is made of. */
static bool
tp_frame_token(unsigned char c)
{
	return (isalnum(c) || (c != '\0' && strchr("-.!%*_+`'~", c) != NULL));
}

/* A Content-Length line ended (a new line began, or the section did). */
static void
tp_frame_end_cl(struct tp_frame *f)
{
	if (!f->in_cl)
		return;
	f->in_cl = false;
	if (f->cl_cur_bad || f->cl_digits == 0)
		f->cl_bad = true;
	else if (f->cl_seen && f->cl != f->cl_cur)
		f->cl_conflict = true;
	else {
		f->cl_seen = true;
		f->cl = f->cl_cur;
	}
}

/* The colon after a header name: is it Content-Length? */
static int
tp_frame_colon(struct tp_frame *f)
{
	if ((f->name_len == 14 && memcmp(f->name, "content-length", 14) == 0) ||
	    (f->name_len == 1 && f->name[0] == 'l')) {
		f->in_cl = true;
		f->cl_digits = 0;
		f->cl_after = false;
		f->cl_cur = 0;
		f->cl_cur_bad = false;
		return (LX_VALUE);
	}
	return (LX_SKIP);
}

/* One byte of the header section, at offset f->scanned. */
static int
tp_frame_lex(struct tp_frame *f, unsigned char c, char *err, size_t errlen)
{
	if (c == '\n' && f->lex != LX_CR && f->lex != LX_END_CR) {
		snprintf(err, errlen, "bare LF at byte %zu", f->scanned);
		return (SCAN_FAIL);
	}
	switch (f->lex) {
	case LX_START:
		if (f->scanned < 4 && toupper(c) != (unsigned char)"SIP/"[
		    f->scanned])
			f->response = false;
		if (c == '\r') {
			if (f->scanned < 4)
				f->response = false;
			f->lex_fold = LX_SKIP;
			f->lex = LX_CR;
		}
		break;
	case LX_CR:
	case LX_END_CR:
		if (c != '\n') {
			snprintf(err, errlen, "bare CR at byte %zu",
			    f->scanned - 1);
			return (SCAN_FAIL);
		}
		if (f->lex == LX_END_CR) {
			tp_frame_end_cl(f);
			return (SCAN_DONE);
		}
		f->lex = LX_BOL;
		break;
	case LX_BOL:
		if (c == '\r')
			f->lex = LX_END_CR;
		else if (c == ' ' || c == '\t') {
			/* A fold: the line goes on as LWS. */
			f->lex = f->lex_fold;
			if (f->lex == LX_VALUE && f->cl_digits > 0)
				f->cl_after = true;
		} else {
			tp_frame_end_cl(f);
			f->name_len = 0;
			/*
			 * Only "Content-Length" and "l" count: any other
			 * line ends the same way in LX_SKIP, so it goes
			 * there at once.
			 */
			if (c != 'c' && c != 'C' && c != 'l' && c != 'L') {
				f->lex = LX_SKIP;
				break;
			}
			f->lex = LX_NAME;
			return (tp_frame_lex(f, c, err, errlen));
		}
		break;
	case LX_NAME:
		if (tp_frame_token(c)) {
			if (f->name_len < sizeof(f->name))
				f->name[f->name_len] = tolower(c);
			f->name_len++;
			/* No longer Content-Length or l: as above. */
			if (f->name_len > 14 || (memcmp(f->name,
			    "content-length", f->name_len) != 0 &&
			    !(f->name_len == 1 && f->name[0] == 'l')))
				f->lex = LX_SKIP;
			break;
		}
		if (c == ':')
			f->lex = tp_frame_colon(f);
		else if (c == ' ' || c == '\t')
			f->lex = LX_NAME_WS;
		else if (c == '\r') {
			f->lex_fold = LX_NAME_WS;	/* "l\r\n :" */
			f->lex = LX_CR;
		} else
			f->lex = LX_SKIP;
		break;
	case LX_NAME_WS:
		if (c == ':')
			f->lex = tp_frame_colon(f);
		else if (c == '\r') {
			f->lex_fold = LX_NAME_WS;
			f->lex = LX_CR;
		} else if (c != ' ' && c != '\t')
			f->lex = LX_SKIP;
		break;
	case LX_VALUE:
		if (c == '\r') {
			f->lex_fold = LX_VALUE;
			f->lex = LX_CR;
		} else if (c == ' ' || c == '\t') {
			if (f->cl_digits > 0)
				f->cl_after = true;
		} else if (c >= '0' && c <= '9' && !f->cl_after) {
			f->cl_digits++;
			f->cl_cur = f->cl_cur * 10 + (c - '0');
			if (f->cl_cur > f->max_size)
				f->cl_cur = (uint64_t)f->max_size + 1;
		} else
			f->cl_cur_bad = true;
		break;
	case LX_SKIP:
		if (c == '\r') {
			f->lex_fold = LX_SKIP;
			f->lex = LX_CR;
		}
		break;
	}
	return (SCAN_MORE);
}

/*
 * Scan the header section on from f->scanned, up to max_size bytes of p
 * (the message from its first byte, len bytes of it so far).  SCAN_DONE
 * when its CRLFCRLF is in (f->head_len set).
 */
static int
tp_frame_scan(struct tp_frame *f, const unsigned char *p, size_t len,
    char *err, size_t errlen)
{
	const unsigned char	*q;
	size_t			 limit, n;
	int			 rc;

	limit = len < f->max_size ? len : f->max_size;
	while (f->scanned < limit) {
		if (f->lex == LX_SKIP || (f->lex == LX_START &&
		    f->scanned >= 4)) {
			/*
			 * Within a line framing does not read: on to its CR,
			 * or to a bare LF (an error), a memchr() at a time.
			 */
			n = limit - f->scanned;
			if ((q = memchr(p + f->scanned, '\r', n)) != NULL)
				n = (size_t)(q - (p + f->scanned));
			if ((q = memchr(p + f->scanned, '\n', n)) != NULL)
				n = (size_t)(q - (p + f->scanned));
			f->scanned += n;
			f->examined += n;
			if (f->scanned == limit)
				break;
		}
		rc = tp_frame_lex(f, p[f->scanned], err, errlen);
		f->scanned++;
		f->examined++;
		if (rc == SCAN_DONE) {
			f->head_len = f->scanned;
			return (SCAN_DONE);
		}
		if (rc == SCAN_FAIL)
			return (SCAN_FAIL);
	}
	if (f->scanned >= f->max_size) {
		snprintf(err, errlen, "header section over %zu bytes",
		    f->max_size);
		return (SCAN_FAIL);
	}
	return (SCAN_MORE);
}

/* The header section is in: judge its Content-Length.  0 or a status. */
static int
tp_frame_judge(struct tp_frame *f, char *err, size_t errlen)
{
	if (f->cl_bad) {
		snprintf(err, errlen, "Content-Length is not a number");
		return (400);
	}
	if (f->cl_conflict) {
		snprintf(err, errlen, "Content-Length given twice, "
		    "differently");
		return (400);
	}
	if (!f->cl_seen) {
		snprintf(err, errlen, "Missing Content-Length");
		return (400);
	}
	if (f->cl > f->max_size - f->head_len) {
		snprintf(err, errlen, "message over %zu bytes", f->max_size);
		return (513);
	}
	return (0);
}

static int
tp_frame_fail(struct tp_frame *f, struct tp_frame_msg *out, int status,
    const unsigned char *head)
{
	f->state = TP_FRAME_FAILED;
	out->status = f->response ? 0 : status;
	if (out->status != 0) {
		out->p = (const char *)head;
		out->len = out->head_len = f->head_len;
	}
	out->response = f->response;
	return (TP_FRAME_ERROR);
}

int
tp_frame_next(struct tp_frame *f, const char *buf, size_t len, size_t *used,
    struct tp_frame_msg *out, char *err, size_t errlen)
{
	const unsigned char	*b;
	size_t			 off = 0, n;
	int			 rc;

	memset(out, 0, sizeof(*out));
	if (errlen > 0)
		err[0] = '\0';
	*used = 0;
	for (;;) {
		b = (const unsigned char *)buf + off;
		n = len - off;
		switch (f->state) {
		case TP_FRAME_FAILED:
			snprintf(err, errlen, "connection failed before");
			return (TP_FRAME_ERROR);
		case TP_FRAME_IDLE:
			if (n == 0)
				return (TP_FRAME_MORE);
			if (b[0] != '\r') {
				f->state = TP_FRAME_HEAD;
				break;
			}
			if (n < 2)
				return (TP_FRAME_MORE);
			if (b[1] != '\n') {
				f->state = TP_FRAME_HEAD;	/* bare CR */
				break;
			}
			if (f->ping_out) {
				f->ping_out = false;
				*used = off + 2;
				return (TP_FRAME_PONG);
			}
			if (n < 3 || (n < 4 && b[2] == '\r'))
				return (TP_FRAME_MORE);
			if (b[2] == '\r' && b[3] == '\n') {
				*used = off + 4;
				return (TP_FRAME_KEEPALIVE);
			}
			off += 2;	/* a CRLF before a start line */
			*used = off;
			break;
		case TP_FRAME_HEAD:
			rc = tp_frame_scan(f, b, n, err, errlen);
			if (rc == SCAN_MORE)
				return (TP_FRAME_MORE);
			if (rc == SCAN_FAIL)
				return (tp_frame_fail(f, out, 0, b));
			if ((rc = tp_frame_judge(f, err, errlen)) != 0)
				return (tp_frame_fail(f, out, rc, b));
			f->state = TP_FRAME_BODY;
			break;
		case TP_FRAME_BODY:
			if (n < f->head_len + f->cl)
				return (TP_FRAME_MORE);
			out->len = f->head_len + f->cl;
			out->p = (const char *)b;
			out->head_len = f->head_len;
			out->body_len = f->cl;
			out->response = f->response;
			*used = off + out->len;
			tp_frame_reset(f);
			return (TP_FRAME_MSG);
		}
	}
}

/* The same on an evbuffer: what is handed out is copied to f->msg. */
int
tp_frame_feed(struct tp_frame *f, struct evbuffer *in,
    struct tp_frame_msg *out, char *err, size_t errlen)
{
	size_t		 len = evbuffer_get_length(in), used;
	const char	*p = "";
	int		 rc;

	if (len > 0 && (p = (const char *)evbuffer_pullup(in, -1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		memset(out, 0, sizeof(*out));
		return (TP_FRAME_ERROR);
	}
	rc = tp_frame_next(f, p, len, &used, out, err, errlen);
	if (out->p != NULL) {
		if (f->msg_cap < out->len + 1) {
			f->msg_cap = out->len + 1;
			f->msg = xrealloc(f->msg, f->msg_cap);
		}
		memcpy(f->msg, out->p, out->len);
		f->msg[out->len] = '\0';
		out->p = f->msg;
	}
	evbuffer_drain(in, used);
	return (rc);
}
