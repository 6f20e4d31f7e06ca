/*
 * Stream transports (TCP; TLS and WebSocket ride on the same connections):
 * listeners, connections and their limits, RFC 3261 18.
 *
 * A connection belongs to the struct tp, and so to the event loop, that
 * accepted or opened it; nothing else holds a pointer to it.  The rest of
 * the daemon names a connection by its peer's address with the transport
 * (struct tp_addr: proto, address, port), which is how a response finds
 * the connection its request came on and a request finds the flow its
 * phone registered over: tp_send() looks the connection up by that key,
 * and opens one when there is none and the address is not a flow.  So no
 * transaction or binding can be left pointing at a freed connection.
 *
 * Every connection has one deadline at a time (conn_arm): the connect, the
 * first byte of an accepted one, the rest of a message once its first byte
 * came (slowloris), else the idle lifetime.  Every way out goes through
 * conn_free(), which tells the owner (tp->lost) so that transactions on it
 * fail over at once instead of waiting for Timer B.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include <openssl/err.h>

#include "log.h"
#include "timer.h"
#include "tp.h"
#include "tls.h"
#include "tp_frame.h"
#include "tp_ws.h"
#include "xmalloc.h"

#define CONN_KEY_MAX	20	/* proto, address key, port */
#define CLOSE_FLUSH_MS	2000	/* an answer before a close gets this long */
#define WS_HANDSHAKE_MAX 8192	/* the HTTP request of a WebSocket */

/*
 * The WebSocket settings a handshake is checked against; counted, so
 * that a reload that changes the origins leaves a handshake under way
 * with the list it began with.
 */
struct tp_ws_conf {
	unsigned	 refs;
	char		**origins;	/* owned, and each string */
	unsigned	 norigins;
};

enum conn_state {
	CONN_CONNECTING,
	CONN_OPEN,
	CONN_CLOSING		/* flushing its last bytes, reads nothing */
};

static const char *const conn_state_names[] = {
	"connecting", "open", "closing"
};

/* Accepted connections per peer address (the per-source cap). */
struct tp_src {
	struct hnode	 node;
	uint8_t		 key[17];
	unsigned	 n;
};

struct tp_conn {
	struct hnode	 node;		/* in tp->conns */
	uint8_t		 key[CONN_KEY_MAX];
	struct tp	*tp;
	struct tp_sock	*sock;		/* accepted on / sent from */
	struct bufferevent *bev;
	struct tp_addr	 peer;
	struct tp_frame	 frame;
	struct timer	 deadline;
	enum conn_state	 state;
	bool		 outbound;
	bool		 got_data;	/* any byte at all */
	struct tp_src	*src;		/* accepted: counted here */
	uint64_t	 id;
	uint64_t	 created_ms;
	uint64_t	 active_ms;	/* last byte either way */
	uint64_t	 msg_start_ms;	/* 0: not inside a message */
	uint64_t	 keep_until_ms;	/* a registration holds it open */
	uint64_t	 rx_msgs, tx_msgs;
	char		*tls_name;	/* outgoing TLS: the name it must prove */
	struct tp_ws	*ws;		/* ws, wss: the WebSocket layer */
	struct tp_ws_conf *ws_conf;	/* during the handshake */
};

static void	conn_read(struct bufferevent *, void *);
static void	ws_conf_unref(struct tp_ws_conf *);
static void	conn_write(struct bufferevent *, void *);
static void	conn_event(struct bufferevent *, short, void *);
static void	conn_deadline(void *);

static size_t
conn_key(const struct tp_addr *a, uint8_t key[CONN_KEY_MAX])
{
	uint16_t	port = tp_addr_port(a);
	size_t		n;

	key[0] = a->proto;
	n = 1 + tp_addr_key(a, key + 1);
	key[n++] = (uint8_t)(port >> 8);
	key[n++] = (uint8_t)port;
	return (n);
}

static struct tp_conn *
conn_find(const struct tp *tp, const struct tp_addr *a)
{
	uint8_t	key[CONN_KEY_MAX];
	size_t	n = conn_key(a, key);

	return ((struct tp_conn *)hashtab_find(&tp->conns, (char *)key, n));
}

static void
conn_name(const struct tp_conn *c, char *buf, size_t len)
{
	tp_addr_str(&c->peer, buf, len);
}

/* Failures are told on the next turn: never inside the caller's send. */
static void
lost_fire(evutil_socket_t fd, short what, void *arg)
{
	struct tp	*tp = arg;
	struct tp_addr	*q = tp->lost_q;
	unsigned	 i, n = tp->nlost;

	(void)fd;
	(void)what;
	tp->lost_q = NULL;
	tp->nlost = tp->lost_cap = 0;
	for (i = 0; i < n; i++)
		if (tp->lost != NULL)
			tp->lost(tp->arg, &q[i]);
	free(q);
}

static void
lost_later(struct tp *tp, const struct tp_addr *a)
{
	if (tp->lost_ev == NULL)
		tp->lost_ev = event_new(tp->base, -1, 0, lost_fire, tp);
	if (tp->nlost == tp->lost_cap) {
		tp->lost_cap = tp->lost_cap ? 2 * tp->lost_cap : 8;
		tp->lost_q = xrealloc(tp->lost_q, tp->lost_cap *
		    sizeof(*tp->lost_q));
	}
	tp->lost_q[tp->nlost++] = *a;
	event_active(tp->lost_ev, 0, 0);
}

static void
conn_free(struct tp_conn *c, const char *why)
{
	struct tp	*tp = c->tp;
	char		 name[TP_NAME_LEN];

	conn_name(c, name, sizeof(name));
	log_info("tp %s: connection %llu closed: %s", name,
	    (unsigned long long)c->id, why);
	hashtab_remove(&tp->conns, &c->node);
	tp->nconns--;
	if (c->src != NULL && --c->src->n == 0) {
		hashtab_remove(&tp->srcs, &c->src->node);
		free(c->src);
	}
	timer_stop(&c->deadline);
	bufferevent_free(c->bev);	/* closes the socket, frees the SSL */
	tp_frame_cleanup(&c->frame);
	lost_later(tp, &c->peer);
	free(c->tls_name);
	if (c->ws != NULL) {
		tp_ws_cleanup(c->ws);
		free(c->ws);
	}
	ws_conf_unref(c->ws_conf);
	free(c);
}

/* The one deadline that applies now. */
static void
conn_arm(struct tp_conn *c)
{
	const struct tp_limits	*l = &c->tp->lim;
	uint64_t		 now = timer_now_ms(), due;

	switch (c->state) {
	case CONN_CONNECTING:
		due = c->created_ms + l->connect_ms;
		break;
	case CONN_CLOSING:
		return;		/* armed once, in conn_close_after() */
	default:
		if (!c->got_data && !c->outbound)
			due = c->created_ms + l->first_data_ms;
		else if (c->msg_start_ms != 0)
			due = c->msg_start_ms + l->message_ms;
		else {
			due = c->active_ms + l->idle_ms;
			if (c->keep_until_ms > due)
				due = c->keep_until_ms;
		}
		break;
	}
	timer_set(&c->deadline, due > now ? (uint32_t)(due - now) : 0);
}

/*
 * After a read: inside a message (partial), its deadline runs from its
 * first byte and more bytes do not push it back (slowloris).
 */
static void
conn_rearm(struct tp_conn *c, bool partial)
{
	if (!partial)
		c->msg_start_ms = 0;
	else if (c->msg_start_ms == 0)
		c->msg_start_ms = timer_now_ms();
	conn_arm(c);
}

/* Send what is queued (an error answer), then close. */
static void
conn_close_after(struct tp_conn *c)
{
	c->state = CONN_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_free(c, "closed after an error");
		return;
	}
	timer_set(&c->deadline, CLOSE_FLUSH_MS);
}

/*
 * A new connection on fd (-1: libevent makes the socket when it
 * connects); ssl, if not NULL, is taken over.
 */
static struct tp_conn *
conn_new(struct tp *tp, struct tp_sock *sock, evutil_socket_t fd,
    const struct tp_addr *peer, bool outbound, SSL *ssl)
{
	struct tp_conn	*c;
	size_t		 klen;

	c = xcalloc(1, sizeof(*c));
	c->tp = tp;
	c->sock = sock;
	c->peer = *peer;
	c->peer.proto = (uint8_t)sock->proto;
	c->peer.flags = 0;
	c->outbound = outbound;
	c->id = ++tp->conn_ids;
	c->created_ms = c->active_ms = timer_now_ms();
	c->state = outbound ? CONN_CONNECTING : CONN_OPEN;
	tp_frame_init(&c->frame, tp->lim.max_message_size);
	timer_init(&c->deadline, tp->base, conn_deadline, c);
	if (ssl != NULL)
		c->bev = bufferevent_openssl_socket_new(tp->base, fd, ssl,
		    outbound ? BUFFEREVENT_SSL_CONNECTING :
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	else
		c->bev = bufferevent_socket_new(tp->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		if (ssl != NULL)
			SSL_free(ssl);
		if (fd >= 0)
			close(fd);
		tp_frame_cleanup(&c->frame);
		free(c);
		return (NULL);
	}
	if (ssl != NULL)	/* a peer without close_notify: just EOF */
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	if (sock->proto == TP_WS || sock->proto == TP_WSS) {
		struct tp_ws_settings	set = {
			.max_message_size = tp->lim.max_message_size,
			.max_handshake = WS_HANDSHAKE_MAX,
		};

		if ((c->ws_conf = tp->ws_conf) != NULL) {
			c->ws_conf->refs++;
			set.origins = (const char *const *)c->ws_conf->origins;
			set.norigins = c->ws_conf->norigins;
		}
		c->ws = xcalloc(1, sizeof(*c->ws));
		tp_ws_init(c->ws, &set);
	}
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	/* Never buffer more than a whole message plus a read's worth. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    tp->lim.max_message_size + 16384);
	klen = conn_key(&c->peer, c->key);
	hashtab_insert(&tp->conns, &c->node, (char *)c->key, klen);
	tp->nconns++;
	return (c);
}

/* A frame that cannot be a SIP message: answer if we may, then close. */
static void
conn_framing_error(struct tp_conn *c, const struct tp_frame_msg *m,
    const char *err)
{
	struct tp	*tp = c->tp;
	char		 name[TP_NAME_LEN];

	conn_name(c, name, sizeof(name));
	log_peer("tp %s: connection %llu: bad framing: %s",
	    name, (unsigned long long)c->id, err);
	tp->st.closed_framing++;
	if (m->status != 0 && !m->response && tp->bad != NULL)
		tp->bad(tp->arg, c->sock, &c->peer, m->p, m->head_len,
		    m->status, err);
	conn_close_after(c);
}

/* One SIP message off a connection, to the owner; false: c is gone. */
static bool
conn_deliver(struct tp_conn *c, const char *p, size_t len)
{
	struct tp	*tp = c->tp;
	struct tp_addr	 from;
	uint64_t	 id = c->id;

	c->rx_msgs++;
	tp->st.rx_messages++;
	/*
	 * The flow flag: whatever goes back to this address rides this
	 * connection and never a new one.  The handler may close
	 * connections (a send that overflows one, a ban): c is looked up
	 * again after it.
	 */
	from = c->peer;
	from.flags = TP_ADDR_FLOW;
	tp->recv(tp->arg, c->sock, &from, p, len);
	c = conn_find(tp, &from);
	return (c != NULL && c->id == id && c->state != CONN_CLOSING);
}

/* Is this message only CRLFs (a keepalive)? */
static bool
all_crlf(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (p[i] != '\r' && p[i] != '\n')
			return (false);
	return (true);
}

/*
 * A WebSocket connection (RFC 6455, RFC 7118): the HTTP upgrade, then
 * one SIP message per WebSocket message.
 */
static void
conn_read_ws(struct tp_conn *c, struct evbuffer *in)
{
	struct tp		*tp = c->tp;
	struct evbuffer		*out = bufferevent_get_output(c->bev);
	struct tp_ws_msg	 m;
	char			 err[160], name[TP_NAME_LEN];
	int			 rc;

	if (c->ws->phase == TP_WS_PHASE_HANDSHAKE) {
		rc = tp_ws_handshake(c->ws, in, out, err, sizeof(err));
		if (rc == TP_WS_MORE)
			goto partial;
		if (rc == TP_WS_ERROR) {
			tp->st.ws_refused++;
			conn_name(c, name, sizeof(name));
			log_peer("tp %s: connection %llu: WebSocket handshake "
			    "refused (%d): %s", name, (unsigned long long)c->id,
			    c->ws->status, err);
			conn_close_after(c);
			return;
		}
		log_debug("tp %s: connection %llu: WebSocket open",
		    (conn_name(c, name, sizeof(name)), name),
		    (unsigned long long)c->id);
		ws_conf_unref(c->ws_conf);
		c->ws_conf = NULL;
	}
	for (;;) {
		rc = tp_ws_feed(c->ws, in, out, &m, err, sizeof(err));
		if (rc == TP_WS_MORE)
			break;
		if (rc == TP_WS_CLOSED || rc == TP_WS_ERROR) {
			if (rc == TP_WS_ERROR) {
				tp->st.closed_framing++;
				conn_name(c, name, sizeof(name));
				log_peer("tp %s: connection %llu: WebSocket: %s",
				    name, (unsigned long long)c->id, err);
			} else
				tp->st.ws_closed++;
			conn_close_after(c);
			return;
		}
		c->msg_start_ms = 0;
		if (m.len == 0 || all_crlf(m.p, m.len)) {
			tp->st.keepalives++;	/* JsSIP, SIP.js: "\r\n\r\n" */
			continue;
		}
		if (!conn_deliver(c, m.p, m.len))
			return;
	}
partial:
	conn_rearm(c, evbuffer_get_length(in) > 0);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct tp_conn		*c = arg;
	struct tp		*tp = c->tp;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct tp_frame_msg	 m;
	char			 err[160];
	int			 rc;

	if (c->state == CONN_CLOSING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	c->got_data = true;
	c->active_ms = timer_now_ms();
	if (c->ws != NULL) {
		conn_read_ws(c, in);
		return;
	}
	for (;;) {
		rc = tp_frame_feed(&c->frame, in, &m, err, sizeof(err));
		if (rc == TP_FRAME_ERROR) {
			conn_framing_error(c, &m, err);
			return;
		}
		if (rc == TP_FRAME_MORE)
			break;
		c->msg_start_ms = 0;
		if (rc == TP_FRAME_KEEPALIVE) {
			tp->st.keepalives++;
			bufferevent_write(bev, "\r\n", 2);
			continue;
		}
		if (rc != TP_FRAME_MSG)
			continue;
		if (!conn_deliver(c, m.p, m.len))
			return;
	}
	conn_rearm(c, c->frame.state != TP_FRAME_IDLE ||
	    evbuffer_get_length(in) > 0);
}

static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct tp_conn	*c = arg;

	(void)bev;
	if (c->state == CONN_CLOSING)
		conn_free(c, "closed after an error");
}

/* Why a connection failed: TLS's own reason when it has one. */
static const char *
conn_error(struct tp_conn *c, char *buf, size_t len)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long	 e;
	int		 err = EVUTIL_SOCKET_ERROR();

	if (ssl != NULL) {
		if (SSL_get_verify_result(ssl) != X509_V_OK ||
		    (e = bufferevent_get_openssl_error(c->bev)) == 0)
			return (tls_error(ssl, buf, len));
		snprintf(buf, len, "TLS: %s", ERR_reason_error_string(e) ?
		    ERR_reason_error_string(e) : "error");
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		return (buf);
	}
	snprintf(buf, len, "%s", err ? evutil_socket_error_to_string(err) :
	    "error");
	return (buf);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct tp_conn	*c = arg;
	struct tp	*tp = c->tp;
	char		 why[256];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->outbound && c->state == CONN_CONNECTING)
			tp->st.connected++;
		c->state = CONN_OPEN;
		c->active_ms = timer_now_ms();
		conn_arm(c);
		return;
	}
	if (c->state == CONN_CONNECTING) {
		tp->st.connect_failed++;
		conn_free(c, conn_error(c, why, sizeof(why)));
		return;
	}
	if (what & BEV_EVENT_EOF) {
		tp->st.closed_peer++;
		conn_free(c, "closed by the peer");
		return;
	}
	if (bufferevent_openssl_get_ssl(c->bev) != NULL && !c->got_data)
		tp->st.tls_failed++;	/* the handshake of an accepted one */
	else
		tp->st.closed_peer++;
	conn_free(c, conn_error(c, why, sizeof(why)));
}

static void
conn_deadline(void *arg)
{
	struct tp_conn	*c = arg;
	struct tp	*tp = c->tp;
	uint64_t	 now = timer_now_ms();

	switch (c->state) {
	case CONN_CONNECTING:
		tp->st.connect_failed++;
		conn_free(c, "connect timed out");
		return;
	case CONN_CLOSING:
		conn_free(c, "closed after an error (peer not reading)");
		return;
	default:
		break;
	}
	if (!c->got_data && !c->outbound) {
		tp->st.closed_slow++;
		conn_free(c, "no data in time");
	} else if (c->msg_start_ms != 0) {
		tp->st.closed_slow++;
		conn_free(c, "message not complete in time");
	} else if (now >= c->active_ms + tp->lim.idle_ms &&
	    now >= c->keep_until_ms) {
		tp->st.closed_idle++;
		conn_free(c, "idle");
	} else
		conn_arm(c);
}

static struct tp_src *
src_get(struct tp *tp, const struct tp_addr *a)
{
	struct tp_src	*s;
	uint8_t		 key[17];
	size_t		 n = tp_addr_key(a, key);

	s = (struct tp_src *)hashtab_find(&tp->srcs, (char *)key, n);
	if (s != NULL)
		return (s);
	s = xcalloc(1, sizeof(*s));
	memcpy(s->key, key, n);
	hashtab_insert(&tp->srcs, &s->node, (char *)s->key, n);
	return (s);
}

static void
stream_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct tp_sock	*s = arg;
	struct tp	*tp = s->tp;
	struct tp_conn	*c, *old;
	struct tp_src	*src;
	struct tp_addr	 peer;
	SSL		*ssl;
	char		 name[TP_NAME_LEN];
	int		 on = 1;

	(void)lev;
	memset(&peer, 0, sizeof(peer));
	memcpy(&peer.ss, sa, (size_t)salen);
	peer.len = (socklen_t)salen;
	peer.proto = (uint8_t)s->proto;
	tp_addr_str(&peer, name, sizeof(name));
	if (tp->nconns >= tp->lim.max_conns) {
		tp->st.refused_global++;
		log_peer("tp %s: connection refused: %u connections open "
		    "(connections.max)", name, tp->nconns);
		close(fd);
		return;
	}
	if (tp->admit != NULL && !tp->admit(tp->arg, &peer)) {
		tp->st.refused_banned++;
		log_debug("tp %s: connection refused: banned", name);
		close(fd);
		return;
	}
	src = src_get(tp, &peer);
	if (src->n >= tp->lim.max_conns_per_ip) {
		tp->st.refused_per_ip++;
		log_peer("tp %s: connection refused: %u open from this "
		    "address (connections.max_per_ip)", name, src->n);
		if (src->n == 0) {
			hashtab_remove(&tp->srcs, &src->node);
			free(src);
		}
		close(fd);
		return;
	}
	/* The same 4-tuple again: the old one is dead whatever it thinks. */
	if ((old = conn_find(tp, &peer)) != NULL)
		conn_free(old, "replaced by a new connection from the peer");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	evutil_make_socket_nonblocking(fd);
	ssl = NULL;
	if (tp_proto_secure(s->proto) && (tp->tls_server == NULL ||
	    (ssl = tls_ssl_server(tp->tls_server)) == NULL)) {
		log_warnx("tp %s: no TLS context for %s", name, s->name);
		close(fd);
		c = NULL;
	} else
		c = conn_new(tp, s, fd, &peer, false, ssl);
	if (c == NULL) {
		if (src->n == 0) {
			hashtab_remove(&tp->srcs, &src->node);
			free(src);
		}
		return;
	}
	src->n++;
	c->src = src;
	tp->st.accepted++;
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_arm(c);
	log_debug("tp %s: connection %llu accepted on %s", name,
	    (unsigned long long)c->id, s->name);
}

static void
stream_accept_error(struct evconnlistener *lev, void *arg)
{
	struct tp_sock	*s = arg;

	(void)lev;
	log_warn("tp %s: accept", s->name);	/* EMFILE and the like */
}

int
tp_stream_open(struct tp *tp, enum tp_proto proto, const char *ip,
    uint16_t port, char *err, size_t errlen)
{
	struct tp_sock	*s;

	if (proto == TP_UDP) {
		snprintf(err, errlen, "transport udp is not a stream");
		return (-1);
	}
	if (tp_proto_secure(proto) && tp->tls_server == NULL) {
		snprintf(err, errlen, "listen tls %s port %u: no certificate "
		    "(tls.certificate, tls.key)", ip, port);
		return (-1);
	}
	if ((s = tp_sock_bind(tp, proto, ip, port, err, errlen)) == NULL)
		return (-1);
	s->lev = evconnlistener_new(tp->base, stream_accept, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, s->fd);
	if (s->lev == NULL) {
		snprintf(err, errlen, "listen %s %s port %u: %s",
		    tp_proto_param(proto), ip, port, strerror(errno));
		close(s->fd);
		return (-1);
	}
	evconnlistener_set_error_cb(s->lev, stream_accept_error);
	tp->nsocks++;
	log_info("tp: listening %s", s->name);
	return (0);
}

/*
 * An outgoing connection to dst from s's address (any port).  Over TLS
 * the peer must prove tls_name (RFC 5922), else its address.
 */
static struct tp_conn *
conn_connect(struct tp *tp, struct tp_sock *s, const struct tp_addr *dst,
    const char *tls_name)
{
	struct tp_conn	*c;
	struct tp_addr	 local;
	SSL		*ssl = NULL;
	char		 name[TP_NAME_LEN], ip[INET6_ADDRSTRLEN];
	int		 fd, on = 1;

	tp_addr_str(dst, name, sizeof(name));
	if (tp->nconns >= tp->lim.max_conns) {
		tp->st.refused_global++;
		log_warnx("tp %s: no connection opened: %u open "
		    "(connections.max)", name, tp->nconns);
		return (NULL);
	}
	if (s->proto == TP_TLS) {
		if (tls_name == NULL || *tls_name == '\0') {
			tp_addr_ip(dst, ip, sizeof(ip));
			tls_name = ip;
		}
		if (tp->tls_client == NULL || (ssl =
		    tls_ssl_client(tp->tls_client, tls_name)) == NULL) {
			log_warnx("tp %s: no TLS client context", name);
			return (NULL);
		}
	}
	if ((fd = socket(dst->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("tp %s: socket", name);
		if (ssl != NULL)
			SSL_free(ssl);
		return (NULL);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (tp_addr_set(&local, (struct slice){ s->ip, strlen(s->ip) }, 0) ==
	    0 && bind(fd, (struct sockaddr *)&local.ss, local.len) == -1)
		log_debug("tp %s: bind to %s: %s", name, s->ip,
		    strerror(errno));
	if (ssl != NULL) {
		/* libevent starts the handshake once the connect is done. */
		if (connect(fd, (const struct sockaddr *)&dst->ss,
		    dst->len) == -1 && errno != EINPROGRESS) {
			log_info("tp %s: connect: %s", name, strerror(errno));
			tp->st.connect_failed++;
			SSL_free(ssl);
			close(fd);
			return (NULL);
		}
	}
	if ((c = conn_new(tp, s, fd, dst, true, ssl)) == NULL)
		return (NULL);
	if (ssl != NULL) {
		c->tls_name = xstrdup(tls_name);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		conn_arm(c);
		log_debug("tp %s: connecting from %s (TLS, name %s)", name,
		    s->name, tls_name);
		return (c);
	}
	if (bufferevent_socket_connect(c->bev,
	    (const struct sockaddr *)&dst->ss, (int)dst->len) == -1) {
		tp->st.connect_failed++;
		conn_free(c, "connect failed");
		return (NULL);
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_arm(c);
	log_debug("tp %s: connecting from %s", name, s->name);
	return (c);
}

/*
 * Send on the connection to dst: the one that is open, else (not for a
 * flow) a new one from s.  Returns -1 when the bytes cannot go; the owner
 * hears of it through tp->lost on the next turn as well.
 */
int
tp_stream_send(const struct tp_sock *cs, const struct tp_addr *dst,
    const char *name, const void *p, size_t len)
{
	struct tp_sock	*s = (struct tp_sock *)cs;
	struct tp	*tp = s->tp;
	struct tp_conn	*c;
	struct tp_addr	 key = *dst;
	size_t		 queued;

	key.proto = (uint8_t)s->proto;
	c = conn_find(tp, &key);
	/*
	 * A TLS connection opened for another domain carries this one only
	 * if its certificate has this name too (RFC 5923 section 4).
	 */
	if (c != NULL && c->tls_name != NULL && name != NULL && *name &&
	    strcasecmp(c->tls_name, name) != 0 && (c->state != CONN_OPEN ||
	    tls_check_name(bufferevent_openssl_get_ssl(c->bev), name) != 0)) {
		log_info("tp %s: connection %llu is for %s, not %s: not used",
		    c->tls_name, (unsigned long long)c->id, c->tls_name, name);
		tp->st.send_failed++;
		lost_later(tp, &key);
		return (-1);
	}
	if (c == NULL || c->state == CONN_CLOSING) {
		/* A browser cannot be called back: WebSocket is flows only. */
		if ((dst->flags & TP_ADDR_FLOW) || c != NULL ||
		    s->proto == TP_WS || s->proto == TP_WSS ||
		    (c = conn_connect(tp, s, &key, name)) == NULL) {
			tp->st.send_failed++;
			lost_later(tp, &key);
			return (-1);
		}
	}
	if (c->ws != NULL) {
		if (tp_ws_send(c->ws, p, len, bufferevent_get_output(c->bev)) ==
		    -1) {
			tp->st.send_failed++;
			return (-1);	/* not open (yet, or any more) */
		}
	} else if (bufferevent_write(c->bev, p, len) == -1) {
		tp->st.send_failed++;
		conn_free(c, "write failed");
		return (-1);
	}
	c->tx_msgs++;
	c->active_ms = timer_now_ms();
	queued = evbuffer_get_length(bufferevent_get_output(c->bev));
	if (queued > tp->lim.write_queue_max) {
		tp->st.closed_write_queue++;
		conn_free(c, "the peer does not read (connections."
		    "write_queue_max)");
		return (-1);
	}
	if (c->state == CONN_OPEN && c->msg_start_ms == 0 && c->got_data)
		conn_arm(c);
	return (0);
}

/* Is the connection that a (a flow) names still there? */
bool
tp_conn_alive(const struct tp *tp, const struct tp_addr *a)
{
	struct tp_conn	*c = conn_find(tp, a);

	return (c != NULL && c->state != CONN_CLOSING);
}

/* Close the connection to a now (a banned source); queued bytes go. */
void
tp_conn_close(struct tp *tp, const struct tp_addr *a, const char *why)
{
	struct tp_conn	*c = conn_find(tp, a);

	if (c != NULL)
		conn_free(c, why);
}

/*
 * The names of the verified certificate the TLS peer at a showed (a
 * client certificate, mutual TLS); -1 when it showed none or it did not
 * verify, or a is not a TLS connection.
 */
int
tp_conn_tls_names(const struct tp *tp, const struct tp_addr *a,
    struct tls_names *out)
{
	struct tp_conn	*c = conn_find(tp, a);
	SSL		*ssl;

	if (c == NULL || (ssl = bufferevent_openssl_get_ssl(c->bev)) == NULL)
		return (-1);
	return (tls_peer_names(ssl, out));
}

/* A registration over this connection: keep it open for ms at least. */
void
tp_conn_keep(struct tp *tp, const struct tp_addr *a, uint32_t ms)
{
	struct tp_conn	*c = conn_find(tp, a);
	uint64_t	 until = timer_now_ms() + ms;

	if (c == NULL || c->state != CONN_OPEN)
		return;
	if (until > c->keep_until_ms)
		c->keep_until_ms = until;
	if (c->msg_start_ms == 0 && (c->got_data || c->outbound))
		conn_arm(c);
}

void
tp_conn_foreach(const struct tp *tp,
    void (*fn)(const struct tp_conn_info *, void *), void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct tp_conn_info	 ci;
	uint64_t		 now = timer_now_ms();

	HASHTAB_FOREACH(n, &tp->conns, it) {
		const struct tp_conn	*c = (const struct tp_conn *)n;

		ci.id = c->id;
		ci.sock = c->sock;
		ci.peer = c->peer;
		ci.outbound = c->outbound;
		ci.state = conn_state_names[c->state];
		ci.tls_name = c->tls_name;
		ci.age_ms = now - c->created_ms;
		ci.idle_ms = now - c->active_ms;
		ci.rx_msgs = c->rx_msgs;
		ci.tx_msgs = c->tx_msgs;
		ci.queued = evbuffer_get_length(bufferevent_get_output(
		    c->bev));
		fn(&ci, arg);
	}
}

/* The counters by name, for ospreyctl stats and /metrics. */
unsigned
tp_stream_counters(const struct tp *tp, struct tp_counter *out, unsigned max)
{
	const struct tp_stream_stats	*st = &tp->st;
	const struct tp_counter		 all[] = {
		{ "accepted", st->accepted },
		{ "connected", st->connected },
		{ "connect_failed", st->connect_failed },
		{ "refused_global", st->refused_global },
		{ "refused_per_ip", st->refused_per_ip },
		{ "refused_banned", st->refused_banned },
		{ "closed_peer", st->closed_peer },
		{ "closed_idle", st->closed_idle },
		{ "closed_slow", st->closed_slow },
		{ "closed_framing", st->closed_framing },
		{ "closed_write_queue", st->closed_write_queue },
		{ "send_failed", st->send_failed },
		{ "tls_failed", st->tls_failed },
		{ "ws_refused", st->ws_refused },
		{ "ws_closed", st->ws_closed },
	};
	unsigned			 i, n = sizeof(all) / sizeof(all[0]);

	for (i = 0; i < n && i < max; i++)
		out[i] = all[i];
	return (i);
}

static void
ws_conf_unref(struct tp_ws_conf *wc)
{
	unsigned	i;

	if (wc == NULL || --wc->refs > 0)
		return;
	for (i = 0; i < wc->norigins; i++)
		free(wc->origins[i]);
	free(wc->origins);
	free(wc);
}

/* The Origin values a WebSocket handshake may carry (none: any). */
void
tp_set_ws_origins(struct tp *tp, char *const *origins, unsigned n)
{
	struct tp_ws_conf	*wc = xcalloc(1, sizeof(*wc));
	unsigned		 i;

	wc->refs = 1;
	wc->origins = xcalloc(n ? n : 1, sizeof(*wc->origins));
	for (i = 0; i < n; i++)
		wc->origins[i] = xstrdup(origins[i]);
	wc->norigins = n;
	ws_conf_unref(tp->ws_conf);
	tp->ws_conf = wc;
}

/*
 * The TLS contexts for new connections (references taken); open ones
 * keep the context they were made with until they close.
 */
void
tp_set_tls(struct tp *tp, struct tls_ctx *server, struct tls_ctx *client)
{
	struct tls_ctx	*os = tp->tls_server, *oc = tp->tls_client;

	tp->tls_server = server ? tls_ctx_ref(server) : NULL;
	tp->tls_client = client ? tls_ctx_ref(client) : NULL;
	tls_ctx_unref(os);
	tls_ctx_unref(oc);
}

void
tp_set_handlers(struct tp *tp, tp_bad_fn *bad, tp_lost_fn *lost,
    tp_admit_fn *admit)
{
	tp->bad = bad;
	tp->lost = lost;
	tp->admit = admit;
}

/* New limits apply to new deadlines; open connections keep their framer. */
void
tp_set_limits(struct tp *tp, const struct tp_limits *l)
{
	tp->lim = *l;
}

/* At shutdown: every connection and stream listener goes, no reports. */
void
tp_stream_close_all(struct tp *tp)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	unsigned		 i;

	tp->lost = NULL;
	HASHTAB_FOREACH(n, &tp->conns, it)
		conn_free((struct tp_conn *)n, "shutting down");
	for (i = 0; i < tp->nsocks; i++)
		if (tp->socks[i].proto != TP_UDP &&
		    tp->socks[i].lev != NULL) {
			evconnlistener_free(tp->socks[i].lev);
			tp->socks[i].lev = NULL;
		}
	if (tp->lost_ev != NULL) {
		event_free(tp->lost_ev);
		tp->lost_ev = NULL;
	}
	free(tp->lost_q);
	tp->lost_q = NULL;
	tp->nlost = tp->lost_cap = 0;
	tp_set_tls(tp, NULL, NULL);
	ws_conf_unref(tp->ws_conf);
	tp->ws_conf = NULL;
}
