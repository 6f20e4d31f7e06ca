#ifndef OSPREY_TP_FRAME_H
#define OSPREY_TP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/*
 * Framing SIP messages out of a byte stream (TCP, TLS): RFC 3261 7.5 and
 * 18.3, RFC 5626 3.5.1.  One struct tp_frame per connection, all its state
 * in it: the framer holds no globals and touches nothing but the
 * connection's input evbuffer, so connections on different loops never
 * meet.  The message is not parsed beyond what framing needs (the start
 * line's first bytes, Content-Length); sipmsg.c does the rest.
 */

enum tp_frame_ret {
	TP_FRAME_ERROR = -1,	/* reply out->status if not 0, then close */
	TP_FRAME_MORE = 0,	/* every complete unit taken; wait for bytes */
	TP_FRAME_MSG,		/* out->p, out->len: one whole message */
	TP_FRAME_KEEPALIVE,	/* a CRLFCRLF ping: answer with one CRLF */
	TP_FRAME_PONG		/* the CRLF answer to tp_frame_ping_sent() */
};

enum tp_frame_state {
	TP_FRAME_IDLE,		/* between messages: CRLFs, then a start */
	TP_FRAME_HEAD,		/* in the header section */
	TP_FRAME_BODY,		/* header read; waiting for the body */
	TP_FRAME_FAILED		/* an error was returned; nothing more */
};

/* What tp_frame_next() and tp_frame_feed() hand out. */
struct tp_frame_msg {
	const char	*p;		/* valid until the next feed or cleanup */
	size_t		 len;		/* header section + body */
	size_t		 head_len;	/* up to and with the CRLFCRLF */
	size_t		 body_len;	/* the Content-Length */
	bool		 response;	/* the start line is "SIP/..." */
	int		 status;	/* on an error: the answer, 0 = none */
};

struct tp_frame {
	size_t		 max_size;	/* max_message_size: head + body */
	enum tp_frame_state state;
	bool		 ping_out;	/* our CRLFCRLF awaits its CRLF */

	/* The header section being scanned (from offset 0 of the input). */
	size_t		 scanned;	/* bytes of it examined, never again */
	int		 lex;		/* the scanner's state (tp_frame.c) */
	int		 lex_fold;	/* where a folded line goes on */
	bool		 response;
	bool		 in_cl;		/* the current line is Content-Length */
	char		 name[16];	/* the current header's name, so far */
	size_t		 name_len;	/* > sizeof(name): too long to be CL */
	int		 cl_digits;	/* digits of the current CL value */
	bool		 cl_after;	/* LWS after the digits */
	bool		 cl_cur_bad;	/* the current value is not a number */
	uint64_t	 cl_cur;	/* the current CL value, capped */
	bool		 cl_bad;	/* a CL value is not a number */
	bool		 cl_conflict;	/* two CLs differ */
	bool		 cl_seen;
	uint64_t	 cl;		/* the first CL, capped at max_size + 1 */
	size_t		 head_len;	/* TP_FRAME_BODY: the header section */

	char		*msg;		/* owned: tp_frame_feed()'s last message */
	size_t		 msg_cap;
	uint64_t	 examined;	/* bytes the scanner looked at, ever */
};

void	tp_frame_init(struct tp_frame *, size_t);
void	tp_frame_cleanup(struct tp_frame *);
/* We sent a CRLFCRLF ping: the next CRLF between messages is its pong. */
void	tp_frame_ping_sent(struct tp_frame *);
/*
 * Take the next unit from buf, len bytes that start where the last call
 * left off: *used is how many of them the caller drops before the next
 * call (the unit, and CRLFs before a start line); the rest, with what
 * came since, must be shown again from their first byte.  Call again
 * until it returns TP_FRAME_MORE or TP_FRAME_ERROR: one read may hold
 * several messages.  out->p points into buf.  On an error err holds the
 * reason; out->status is the answer RFC 3261 allows (400, 513) or 0, and
 * when it is not 0 out->p holds the header section to build the answer
 * from.  The caller closes the connection after any error.
 */
int	tp_frame_next(struct tp_frame *, const char *, size_t, size_t *,
	    struct tp_frame_msg *, char *, size_t);
/*
 * The same on an evbuffer, drained as it goes; out->p is a copy the
 * framer owns (NUL-terminated) until the next call.
 */
int	tp_frame_feed(struct tp_frame *, struct evbuffer *,
	    struct tp_frame_msg *, char *, size_t);

#endif
