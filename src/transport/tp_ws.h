#ifndef OSPREY_TP_WS_H
#define OSPREY_TP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wslay/wslay.h>

struct evbuffer;

/*
 * The server side of one WebSocket connection carrying SIP: RFC 6455 (the
 * opening handshake, frames, the closing handshake) and RFC 7118 (the
 * "sip" subprotocol, one SIP message per WebSocket message).  One struct
 * tp_ws per connection, all its state in it, no globals: connections on
 * different loops never meet.  The module reads the connection's input
 * evbuffer and writes what must go back (the HTTP answer, pongs, close
 * frames, our messages) to an output evbuffer; it owns no socket, no
 * timer and no log line.  wslay's frame API does the frame parsing and
 * unmasking (tp_ws.c says why not its event API).
 */

/*
 * Filled by the caller (conf.c); tp_ws_init() copies it, but the origins
 * (array and strings) are borrowed and must outlive the handshake.
 */
struct tp_ws_settings {
	size_t			 max_message_size;	/* one SIP message */
	size_t			 max_handshake;		/* the HTTP request, > 0 */
	const char *const	*origins;	/* allowed Origin values */
	unsigned		 norigins;	/* 0: any Origin, or none */
};

enum tp_ws_ret {
	TP_WS_ERROR = -1,	/* out holds the last words; flush, close */
	TP_WS_MORE = 0,		/* every complete unit taken; wait */
	TP_WS_DONE,		/* handshake: the 101 is in out */
	TP_WS_MSG,		/* feed: one whole message in msg */
	TP_WS_CLOSED		/* feed: the closing handshake is over */
};

enum tp_ws_phase {
	TP_WS_PHASE_HANDSHAKE,	/* reading the HTTP request */
	TP_WS_PHASE_OPEN,	/* messages both ways */
	TP_WS_PHASE_CLOSING,	/* our close frame sent; awaiting theirs */
	TP_WS_PHASE_CLOSED,	/* both close frames seen: close the socket */
	TP_WS_PHASE_FAILED	/* an error was returned; nothing more */
};

/* What tp_ws_feed() hands out.  p belongs to the struct tp_ws. */
struct tp_ws_msg {
	const char	*p;		/* valid until the next feed or cleanup */
	size_t		 len;		/* may be 0 (an empty message) */
	bool		 binary;	/* a binary message, else a text one */
};

struct tp_ws {
	struct tp_ws_settings	 set;	/* a copy; origins stay borrowed */
	enum tp_ws_phase	 phase;
	int			 status;	/* the handshake's answer */
	wslay_frame_context_ptr	 wslay;		/* owned */
	struct evbuffer		*in;		/* during a call: borrowed */
	struct evbuffer		*out;		/* during a call: borrowed */

	/* The handshake: how far the request was scanned for its end. */
	size_t			 hs_scanned;
	int			 hs_lex;

	/* The frame being read (wslay hands its payload in pieces). */
	bool			 in_frame;
	uint8_t			 frame_op;
	bool			 frame_fin;
	uint64_t		 frame_left;	/* payload bytes still to come */

	/* The message being put together from its frames. */
	uint8_t			 msg_op;	/* 0: none, else TEXT, BINARY */
	char			*msg;		/* owned */
	size_t			 msg_len;
	size_t			 msg_cap;
	uint8_t			 ctl[125];	/* a control frame's payload */
	size_t			 ctl_len;

	uint16_t		 close_rx;	/* their close code; 1005 none */
	uint16_t		 close_tx;	/* ours */

	uint64_t		 rx_msgs;	/* messages handed out */
	uint64_t		 rx_bytes;	/* payload bytes of every frame */
	uint64_t		 rx_pings;
	uint64_t		 rx_pongs;
	uint64_t		 tx_msgs;
	uint64_t		 tx_pings;
};

void	tp_ws_init(struct tp_ws *, const struct tp_ws_settings *);
void	tp_ws_cleanup(struct tp_ws *);

/*
 * Read the opening handshake from in.  TP_WS_MORE: not all of it yet.
 * TP_WS_DONE: the 101 answer is in out, and any bytes after the request
 * stay in in for tp_ws_feed().  TP_WS_ERROR: an HTTP error answer is in
 * out (ws->status, err its reason phrase); flush it, then close.  The
 * answers: 400 (a bad request line or header line, a bare CR or LF, Host
 * missing or twice, Upgrade without websocket, Connection without Upgrade,
 * a bad Sec-WebSocket-Key, no "sip" in Sec-WebSocket-Protocol, a body),
 * 403 (an Origin not in the list; a request without Origin is not a
 * browser's and passes), 405 (not GET), 426 (Sec-WebSocket-Version not
 * 13), 431 (no CRLFCRLF within max_handshake bytes: RFC 6585 5; said as
 * soon as that many bytes are in), 505 (not HTTP/1.1).
 */
int	tp_ws_handshake(struct tp_ws *, struct evbuffer *, struct evbuffer *,
	    char *, size_t);

/*
 * Take the next unit from in (drained as it goes), after the handshake.
 * Call again until TP_WS_MORE, TP_WS_CLOSED or TP_WS_ERROR: one read may
 * hold several messages.  Pings are answered in out, pongs counted.
 * TP_WS_CLOSED: their close frame came; out holds our answer if we had not
 * closed first.  TP_WS_ERROR: err the reason; out holds our close frame
 * (1002, 1007, 1009) unless ours had gone already.  Close the socket after
 * either, once out is flushed.
 */
int	tp_ws_feed(struct tp_ws *, struct evbuffer *, struct evbuffer *,
	    struct tp_ws_msg *, char *, size_t);

/*
 * One message in one frame, unmasked: text, or binary when the bytes are
 * not UTF-8 (RFC 7118 5.1).  -1 unless open.
 */
int	tp_ws_send(struct tp_ws *, const void *, size_t, struct evbuffer *);
/* Start the closing handshake with a code (0: none).  -1 unless open. */
int	tp_ws_close(struct tp_ws *, uint16_t, struct evbuffer *);
/* A ping for keepalive; its pong counts in rx_pongs.  -1 unless open. */
int	tp_ws_ping(struct tp_ws *, struct evbuffer *);

/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2): 28 characters. */
void	tp_ws_accept_key(const char *, size_t, char [29]);

#endif
