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
 * The socket is ours, not a bufferevent's, so that a message costs as few
 * system calls as it can: the read event stays registered for the whole
 * life of the connection, one read(2) (or SSL_read(), which reads ahead)
 * takes what is there into the loop's read buffer, and the messages in it
 * are framed and handed up where they lie.  Only the unframed rest of a
 * read is copied, into the connection's own buffer (freed once framed).  A
 * message is written to the socket as it is sent, one TLS record for one
 * message; only what the socket does not take is queued, and only then
 * does the connection wait for the socket to be writable.
 *
 * Every connection has one deadline at a time (conn_due()): the connect,
 * the first byte of an accepted one, the rest of a message once its first
 * byte came (slowloris), else the idle lifetime.  The timer is set again
 * only when the deadline comes nearer; one that moved away (the usual
 * case: traffic pushes the idle deadline back) is found out when the
 * timer fires, and set again for the time left.  Every way out goes
 * through conn_free(), which tells the owner (tp->lost) so that
 * transactions on it fail over at once instead of waiting for Timer B.
 *
 * With workers > 1 each worker's tp accepts on listeners of its own
 * (SO_REUSEPORT: the kernel spreads the connections) and owns what it
 * accepted or opened.  The directory names the owner of every
 * connection; a send, keep or close from another worker is handed to
 * the owner (tp->remote), and the limits count every worker's
 * connections ("conns_all").
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

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
#define READ_CHUNK	16384	/* a read's worth beyond a whole message */
#define TLS_CHUNK	16384	/* one TLS record's worth per SSL_write() */

/* conn_recv() and conn_put(): nothing now; the peer closed; it failed. */
#define IO_AGAIN	0
#define IO_EOF		(-1)
#define IO_ERR		(-2)

/* A plain socket call failed: try again later, or why it cannot. */
static ssize_t
io_errno(char *why, size_t len)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return (IO_AGAIN);
	snprintf(why, len, "%s", strerror(errno));
	return (IO_ERR);
}

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
	CONN_CONNECTING,	/* TCP connect, then (TLS) the handshake */
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
	int		 fd;		/* owned */
	SSL		*ssl;		/* owned: TLS, else NULL */
	struct event	 rev;		/* EV_READ, persistent */
	struct event	 wev;		/* EV_WRITE, while it must wait */
	bool		 reading, writing;	/* rev, wev added */
	struct evbuffer	*out;		/* owned: what the socket left */
	struct evbuffer	*in;		/* owned: ws, wss: unparsed bytes */
	char		*part;		/* owned: an unframed rest, or NULL */
	size_t		 part_len, part_cap;
	struct tp_addr	 peer;
	struct tp_frame	 frame;
	struct timer	 deadline;
	uint64_t	 armed_ms;	/* when the timer fires; 0: it won't */
	uint64_t	 close_ms;	/* CONN_CLOSING: the last moment */
	enum conn_state	 state;
	bool		 outbound;
	bool		 draining;	/* reads nothing, closes soon */
	bool		 drained;	/* the workers have answered */
	bool		 got_data;	/* any byte at all */
	bool		 tcp_wait;	/* the TCP connect is under way */
	bool		 tls_hs;	/* the TLS handshake is under way */
	bool		 hs_write;	/* ... and waits to write */
	bool		 tls_rw;	/* SSL_read() waits to write */
	bool		 tls_wr;	/* SSL_write() waits to read */
	int		 so_error;	/* a connect that failed at once */
	struct tp_src	*src;		/* accepted: counted here */
	uint64_t	 id;
	uint64_t	 created_ms;
	uint64_t	 active_ms;	/* last byte either way */
	uint64_t	 msg_start_ms;	/* 0: not inside a message */
	uint64_t	 keep_until_ms;	/* a registration holds it open */
	uint64_t	 rx_msgs, tx_msgs;
	size_t		 sent_since;	/* bytes sent since conn_unacked() */
	char		*tls_name;	/* outgoing TLS: the name it must prove */
	struct tp_ws	*ws;		/* ws, wss: the WebSocket layer */
	struct tp_ws_conf *ws_conf;	/* during the handshake */
};

static void	ws_conf_unref(struct tp_ws_conf *);
static void	conn_io(evutil_socket_t, short, void *);
static void	conn_deadline(void *);
static void	conn_handshake(struct tp_conn *);

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

/*
 * Connections as a process-wide resource: connections.max counts every
 * worker's (open, reserved before a connection is made), max_per_ip every
 * worker's accepted ones from an address (srcs, under mu).  Connection
 * ids are unique across workers.
 */
static struct {
	pthread_mutex_t	 mu;
	struct hashtab	 srcs;		/* struct tp_src by addr */
	bool		 srcs_on;
	atomic_uint	 open;
	atomic_uint_fast64_t ids;
} conns_all = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Every worker's connections open: connections.open. */
unsigned
tp_conns_open(void)
{
	return (atomic_load(&conns_all.open));
}

/* A place for one more connection under max_conns; false: none. */
static bool
all_reserve(const struct tp *tp, unsigned *open)
{
	*open = atomic_fetch_add(&conns_all.open, 1);
	if (*open < tp->lim.max_conns)
		return (true);
	atomic_fetch_sub(&conns_all.open, 1);
	return (false);
}

static void
all_release(void)
{
	atomic_fetch_sub(&conns_all.open, 1);
}

/*
 * The count of accepted connections from a's address, taken (n + 1) if
 * under max; NULL (and *n the count) when it is at max already.
 */
static struct tp_src *
src_take(const struct tp *tp, const struct tp_addr *a, unsigned *n)
{
	struct tp_src	*s;
	uint8_t		 key[17];
	size_t		 len = tp_addr_key(a, key);

	pthread_mutex_lock(&conns_all.mu);
	if (!conns_all.srcs_on) {
		hashtab_init(&conns_all.srcs, 64);
		conns_all.srcs_on = true;
	}
	s = (struct tp_src *)hashtab_find(&conns_all.srcs, (char *)key, len);
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		memcpy(s->key, key, len);
		hashtab_insert(&conns_all.srcs, &s->node, (char *)s->key, len);
	}
	*n = s->n;
	if (s->n >= tp->lim.max_conns_per_ip) {
		if (s->n == 0) {
			hashtab_remove(&conns_all.srcs, &s->node);
			free(s);
		}
		s = NULL;
	} else
		s->n++;
	pthread_mutex_unlock(&conns_all.mu);
	return (s);
}

static void
src_put(struct tp_src *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&conns_all.mu);
	if (--s->n == 0) {
		hashtab_remove(&conns_all.srcs, &s->node);
		free(s);
	} else
		s = NULL;
	pthread_mutex_unlock(&conns_all.mu);
}

/*
 * The directory: every worker's connections, by peer (workers > 1;
 * tp_conn_directory() turns it on before they start).  The owner adds a
 * connection when it is made (or claims the key just before it opens
 * one, so that two workers do not open two to one peer), gives it the
 * names of a verified client certificate when its handshake ends, and
 * takes it out when it starts closing.  Any worker asks it who owns the
 * connection to a peer (to hand a send over), whether a flow is there
 * (tp_conn_alive) and whom a TLS peer proved to be (tp_conn_tls_names);
 * no worker touches another's connection itself.
 */
struct dir_entry {
	struct hnode		 node;
	uint8_t			 key[CONN_KEY_MAX];
	unsigned		 owner;		/* the worker */
	uint64_t		 id;		/* 0: being opened */
	struct tls_names	*names;		/* owned, NULL: none */
};

static struct {
	pthread_mutex_t	 mu;
	struct hashtab	 tab;
	bool		 on;
} dir = { .mu = PTHREAD_MUTEX_INITIALIZER };

void
tp_conn_directory(void)
{
	if (!dir.on)
		hashtab_init(&dir.tab, 64);
	dir.on = true;
}

/* At exit, once every connection is closed (and so out of it). */
void
tp_conn_directory_free(void)
{
	if (dir.on)
		hashtab_cleanup(&dir.tab);
	dir.on = false;
}

/*
 * c is worker's connection from now on.  Returns the worker whose
 * connection to that peer it replaces, or -1 (none, or its own).
 */
static int
dir_add(const struct tp_conn *c)
{
	struct dir_entry	*e, *ne;
	uint8_t			 key[CONN_KEY_MAX];
	size_t			 n;
	int			 prev = -1;

	if (!dir.on)
		return (-1);
	ne = xcalloc(1, sizeof(*ne));
	n = conn_key(&c->peer, key);
	pthread_mutex_lock(&dir.mu);
	if ((e = (struct dir_entry *)hashtab_find(&dir.tab, (char *)key,
	    n)) == NULL) {
		e = ne;
		ne = NULL;
		memcpy(e->key, key, n);
		hashtab_insert(&dir.tab, &e->node, (char *)e->key, n);
	} else if (e->owner != c->tp->worker && e->id != 0)
		prev = (int)e->owner;
	e->owner = c->tp->worker;
	e->id = c->id;
	free(e->names);
	e->names = NULL;
	pthread_mutex_unlock(&dir.mu);
	free(ne);
	return (prev);
}

/*
 * Before worker opens a connection to a: the worker that has one (or is
 * opening one) already, else a is claimed for worker (returned).
 */
static unsigned
dir_claim(const struct tp_addr *a, unsigned worker)
{
	struct dir_entry	*e;
	uint8_t			 key[CONN_KEY_MAX];
	size_t			 n = conn_key(a, key);
	unsigned		 owner = worker;

	/* A send handed on each time: an entry is made only for a claim. */
	pthread_mutex_lock(&dir.mu);
	if ((e = (struct dir_entry *)hashtab_find(&dir.tab, (char *)key,
	    n)) != NULL)
		owner = e->owner;
	else {
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, n);
		e->owner = worker;
		hashtab_insert(&dir.tab, &e->node, (char *)e->key, n);
	}
	pthread_mutex_unlock(&dir.mu);
	return (owner);
}

/* Out of the directory, if the entry for a is still worker's id. */
static void
dir_del_key(const struct tp_addr *a, unsigned worker, uint64_t id)
{
	struct dir_entry	*e;
	uint8_t			 key[CONN_KEY_MAX];
	size_t			 n;

	if (!dir.on)
		return;
	n = conn_key(a, key);
	pthread_mutex_lock(&dir.mu);
	if ((e = (struct dir_entry *)hashtab_find(&dir.tab, (char *)key,
	    n)) != NULL && e->owner == worker && e->id == id)
		hashtab_remove(&dir.tab, &e->node);
	else
		e = NULL;
	pthread_mutex_unlock(&dir.mu);
	if (e != NULL) {
		free(e->names);
		free(e);
	}
}

static void
dir_del(const struct tp_conn *c)
{
	dir_del_key(&c->peer, c->tp->worker, c->id);
}

static void
dir_names(const struct tp_conn *c)
{
	struct tls_names	*names;
	struct dir_entry	*e;
	uint8_t			 key[CONN_KEY_MAX];
	size_t			 n;

	if (!dir.on || c->outbound)
		return;
	names = xcalloc(1, sizeof(*names));
	if (tls_peer_names(c->ssl, names) <= 0) {
		free(names);
		return;
	}
	n = conn_key(&c->peer, key);
	pthread_mutex_lock(&dir.mu);
	if ((e = (struct dir_entry *)hashtab_find(&dir.tab, (char *)key,
	    n)) != NULL && e->id == c->id && e->names == NULL) {
		e->names = names;
		names = NULL;
	}
	pthread_mutex_unlock(&dir.mu);
	free(names);
}

/*
 * -1: not there (or still being opened); else the number of names
 * copied out (0: none), and its owner in *owner.
 */
static int
dir_find(const struct tp_addr *a, struct tls_names *out, unsigned *owner)
{
	struct dir_entry	*e;
	uint8_t			 key[CONN_KEY_MAX];
	size_t			 n = conn_key(a, key);
	int			 rc = -1;

	pthread_mutex_lock(&dir.mu);
	if ((e = (struct dir_entry *)hashtab_find(&dir.tab, (char *)key,
	    n)) != NULL && e->id != 0) {
		rc = 0;
		if (owner != NULL)
			*owner = e->owner;
		if (out != NULL && e->names != NULL) {
			*out = *e->names;
			rc = (int)out->n;
		}
	}
	pthread_mutex_unlock(&dir.mu);
	return (rc);
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
	struct tp_lost	*q = tp->lost_q;
	unsigned	 i, n = tp->nlost;

	(void)fd;
	(void)what;
	tp->lost_q = NULL;
	tp->nlost = tp->lost_cap = 0;
	for (i = 0; i < n; i++) {
		if (tp->lost != NULL)
			tp->lost(tp->arg, &q[i].addr);
		if (q[i].all && tp->lost_fwd != NULL)
			tp->lost_fwd(tp->lost_fwd_arg, &q[i].addr);
	}
	free(q);
}

/*
 * a is lost: told to this loop on its next turn, and to every other
 * worker too when all (a connection of ours closed; a send another
 * worker handed over failed): theirs may have used it.
 */
static void
lost_later(struct tp *tp, const struct tp_addr *a, bool every)
{
	if (tp->lost_ev == NULL)
		tp->lost_ev = event_new(tp->base, -1, 0, lost_fire, tp);
	if (tp->nlost == tp->lost_cap) {
		tp->lost_cap = tp->lost_cap ? 2 * tp->lost_cap : 8;
		tp->lost_q = xrealloc(tp->lost_q, tp->lost_cap *
		    sizeof(*tp->lost_q));
	}
	tp->lost_q[tp->nlost].addr = *a;
	tp->lost_q[tp->nlost++].all = every;
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
	if (c->state != CONN_CLOSING)
		dir_del(c);
	hashtab_remove(&tp->conns, &c->node);
	tp->nconns--;
	/*
	 * The source's count first: the last loop to close frees the table
	 * of sources once no connection is counted (tp_stream_close_all).
	 */
	src_put(c->src);
	all_release();
	timer_stop(&c->deadline);
	if (c->reading)
		event_del(&c->rev);
	if (c->writing)
		event_del(&c->wev);
	/* As a bufferevent did: no close_notify, the socket just closes. */
	SSL_free(c->ssl);
	close(c->fd);
	evbuffer_free(c->out);
	if (c->in != NULL)
		evbuffer_free(c->in);
	free(c->part);
	tp_frame_cleanup(&c->frame);
	lost_later(tp, &c->peer, true);
	free(c->tls_name);
	if (c->ws != NULL) {
		tp_ws_cleanup(c->ws);
		free(c->ws);
	}
	ws_conf_unref(c->ws_conf);
	free(c);
}

/* The one deadline that applies now. */
static uint64_t
conn_due(const struct tp_conn *c)
{
	const struct tp_limits	*l = &c->tp->lim;
	uint64_t		 due;

	switch (c->state) {
	case CONN_CONNECTING:
		return (c->created_ms + l->connect_ms);
	case CONN_CLOSING:
		return (c->close_ms);
	default:
		break;
	}
	if (!c->got_data && !c->outbound)
		return (c->created_ms + l->first_data_ms);
	if (c->msg_start_ms != 0)
		return (c->msg_start_ms + l->message_ms);
	due = c->active_ms + l->idle_ms;
	return (c->keep_until_ms > due ? c->keep_until_ms : due);
}

/*
 * Set the timer for the deadline, unless it is set for that time or an
 * earlier one already (conn_deadline() sets it again for the rest).
 */
static void
conn_arm(struct tp_conn *c)
{
	uint64_t	now, due = conn_due(c);

	if (c->armed_ms != 0 && c->armed_ms <= due)
		return;
	now = timer_now_ms();
	timer_set(&c->deadline, due > now ? (uint32_t)(due - now) : 0);
	c->armed_ms = due;
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
		c->msg_start_ms = c->active_ms;
	conn_arm(c);
}

/* Register the events the connection's state needs, and no others. */
static void
conn_events(struct tp_conn *c)
{
	bool	r, w;

	if (c->tcp_wait) {
		r = false;
		w = true;		/* the TCP connect */
	} else {
		r = c->state != CONN_CLOSING && !c->draining;
		w = c->tls_hs ? c->hs_write : (c->tls_rw ||
		    (!c->tls_wr && evbuffer_get_length(c->out) > 0));
	}
	if (r != c->reading) {
		if (r)
			event_add(&c->rev, NULL);
		else
			event_del(&c->rev);
		c->reading = r;
	}
	if (w != c->writing) {
		if (w)
			event_add(&c->wev, NULL);
		else
			event_del(&c->wev);
		c->writing = w;
	}
}

/* Why an OpenSSL call failed (err: SSL_get_error()). */
static const char *
conn_tls_why(struct tp_conn *c, int err, char *why, size_t len)
{
	if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		snprintf(why, len, "%s", errno ? strerror(errno) :
		    "closed by the peer");
		return (why);
	}
	return (tls_error(c->ssl, why, len));
}

/*
 * Read what the peer sent into buf (room bytes): how many, or IO_AGAIN,
 * IO_EOF, IO_ERR (why says what).  One read(2), or one SSL_read().
 */
static ssize_t
conn_recv(struct tp_conn *c, char *buf, size_t room, char *why, size_t len)
{
	ssize_t	n;
	int	err;

	if (c->ssl == NULL) {
		if ((n = read(c->fd, buf, room)) > 0)
			return (n);
		if (n == 0)
			return (IO_EOF);
		return (io_errno(why, len));
	}
	c->tls_rw = false;
	ERR_clear_error();
	errno = 0;
	if ((n = SSL_read(c->ssl, buf, room > INT_MAX ? INT_MAX :
	    (int)room)) > 0)
		return (n);
	switch ((err = SSL_get_error(c->ssl, (int)n))) {
	case SSL_ERROR_WANT_READ:
		return (IO_AGAIN);
	case SSL_ERROR_WANT_WRITE:
		c->tls_rw = true;
		return (IO_AGAIN);
	case SSL_ERROR_ZERO_RETURN:
		return (IO_EOF);	/* close_notify, or just EOF */
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && errno == 0)
			return (IO_EOF);
		break;
	}
	conn_tls_why(c, err, why, len);
	return (IO_ERR);
}

/* Write to the socket: how many bytes it took, IO_AGAIN or IO_ERR. */
static ssize_t
conn_put(struct tp_conn *c, const void *p, size_t len, char *why,
    size_t whylen)
{
	ssize_t	n;
	int	err;

	if (c->ssl == NULL) {
		if ((n = send(c->fd, p, len, MSG_NOSIGNAL)) >= 0)
			return (n);
		return (io_errno(why, whylen));
	}
	if (len > TLS_CHUNK)
		len = TLS_CHUNK;
	ERR_clear_error();
	errno = 0;
	if ((n = SSL_write(c->ssl, p, (int)len)) > 0)
		return (n);
	switch ((err = SSL_get_error(c->ssl, (int)n))) {
	case SSL_ERROR_WANT_WRITE:
		return (IO_AGAIN);
	case SSL_ERROR_WANT_READ:
		c->tls_wr = true;
		return (IO_AGAIN);
	}
	conn_tls_why(c, err, why, whylen);
	return (IO_ERR);
}

/* Can bytes go to the socket now (connected, past the handshake)? */
static bool
conn_writable(const struct tp_conn *c)
{
	return (c->state != CONN_CONNECTING && !c->tls_hs && !c->tls_wr);
}

/* Write what is queued, as far as the socket takes it.  -1: failed. */
static int
conn_flush(struct tp_conn *c, char *why, size_t whylen)
{
	size_t		 len;
	ssize_t		 n;
	unsigned char	*p;

	while (conn_writable(c) && (len = evbuffer_get_length(c->out)) > 0) {
		if (c->ssl == NULL) {
			if ((n = evbuffer_write(c->out, c->fd)) >= 0)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				break;
			snprintf(why, whylen, "%s", strerror(errno));
			return (-1);
		}
		/*
		 * An SSL_write() that could not finish is tried again with
		 * at least as many bytes: the head of the queue, TLS_CHUNK
		 * of it or all there is.
		 */
		if (len > TLS_CHUNK)
			len = TLS_CHUNK;
		if ((p = evbuffer_pullup(c->out, (ssize_t)len)) == NULL) {
			snprintf(why, whylen, "out of memory");
			return (-1);
		}
		if ((n = conn_put(c, p, len, why, whylen)) == IO_ERR)
			return (-1);
		if (n == IO_AGAIN)
			break;
		evbuffer_drain(c->out, (size_t)n);
	}
	conn_events(c);
	return (0);
}

/*
 * Send p: straight to the socket when nothing waits before it, the rest
 * (or all of it, before the connection is up) queued.  -1: the
 * connection failed (why says why); the caller frees it.
 */
static int
conn_send_bytes(struct tp_conn *c, const void *p, size_t len, char *why,
    size_t whylen)
{
	const char	*b = p;
	size_t		 off = 0;
	ssize_t		 n;

	if (conn_writable(c) && evbuffer_get_length(c->out) == 0) {
		while (off < len) {
			n = conn_put(c, b + off, len - off, why, whylen);
			if (n == IO_ERR)
				return (-1);
			if (n == IO_AGAIN)
				break;
			off += (size_t)n;
		}
		if (off == len)
			return (0);
	}
	if (evbuffer_add(c->out, b + off, len - off) == -1) {
		snprintf(why, whylen, "out of memory");
		return (-1);
	}
	conn_events(c);
	return (0);
}

/*
 * What the kernel holds for the peer, sent or not, and the peer has not
 * acknowledged: a peer that does not read leaves it there (up to the
 * socket's send buffer, megabytes on a fast path), unread as much as what
 * we queue.  Looked at once per half of write_queue_max sent.
 */
static size_t
conn_unacked(const struct tp_conn *c)
{
#ifdef SIOCOUTQ
	int	n = 0;

	if (ioctl(c->fd, SIOCOUTQ, &n) == 0 && n > 0)
		return ((size_t)n);
#else
	(void)c;
#endif
	return (0);
}

/* Send what is queued, then close. */
static void
conn_close_after(struct tp_conn *c)
{
	char	why[256];

	/*
	 * Messages read from it before may be another worker's, whose
	 * answers are on their way here: it reads nothing more, and closes
	 * when every worker has been round once (tp_conn_drained()).
	 */
	if (c->tp->barrier != NULL && !c->drained && c->state != CONN_CLOSING) {
		if (!c->draining) {
			c->draining = true;
			conn_events(c);
			c->tp->barrier(c->tp->barrier_arg, &c->peer, c->id);
		}
		return;
	}
	if (c->state != CONN_CLOSING)
		dir_del(c);
	c->state = CONN_CLOSING;
	if (conn_flush(c, why, sizeof(why)) == -1 ||
	    evbuffer_get_length(c->out) == 0) {
		conn_free(c, "closed after an error");
		return;
	}
	conn_events(c);
	c->close_ms = timer_now_ms() + CLOSE_FLUSH_MS;
	c->armed_ms = 0;
	conn_arm(c);
}

/* The loop's read buffer, big enough for a message and a read. */
static char *
conn_rbuf(struct tp *tp, size_t max_size, size_t *cap)
{
	size_t	need = max_size + READ_CHUNK + 1;

	if (tp->rbuf_cap < need) {
		free(tp->rbuf);
		tp->rbuf = xmalloc(need);
		tp->rbuf_cap = need;
	}
	*cap = tp->rbuf_cap;
	return (tp->rbuf);
}

/*
 * A new connection on fd, in the place all_reserve() kept for it (the
 * caller gives it back on NULL); ssl, if not NULL, is taken over, and
 * the fd in every case.  *prev: the worker whose connection to the same
 * peer this one replaces, or -1.
 */
static struct tp_conn *
conn_new(struct tp *tp, struct tp_sock *sock, evutil_socket_t fd,
    const struct tp_addr *peer, bool outbound, SSL *ssl, int *prev)
{
	struct tp_conn	*c;
	size_t		 klen;

	if (ssl != NULL && SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		close(fd);
		return (NULL);
	}
	c = xcalloc(1, sizeof(*c));
	c->tp = tp;
	c->sock = sock;
	c->fd = fd;
	c->ssl = ssl;
	c->peer = *peer;
	c->peer.proto = (uint8_t)sock->proto;
	c->peer.flags = 0;
	c->outbound = outbound;
	c->id = atomic_fetch_add(&conns_all.ids, 1) + 1;
	c->created_ms = c->active_ms = timer_now_ms();
	c->state = outbound ? CONN_CONNECTING : CONN_OPEN;
	if ((c->out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	tp_frame_init(&c->frame, tp->lim.max_message_size);
	timer_init(&c->deadline, tp->base, conn_deadline, c);
	event_assign(&c->rev, tp->base, fd, EV_READ | EV_PERSIST, conn_io, c);
	event_assign(&c->wev, tp->base, fd, EV_WRITE | EV_PERSIST, conn_io,
	    c);
	if (ssl != NULL) {
		/*
		 * One read(2) takes all there is (records beyond the one
		 * read stay in OpenSSL, SSL_has_pending()); a write that
		 * must wait is tried again from the queue, which moves.
		 */
		SSL_set_read_ahead(ssl, 1);
		SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		c->tls_hs = true;
	}
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
		if ((c->in = evbuffer_new()) == NULL)
			fatalx("evbuffer_new failed");
	}
	klen = conn_key(&c->peer, c->key);
	hashtab_insert(&tp->conns, &c->node, (char *)c->key, klen);
	tp->nconns++;
	*prev = dir_add(c);
	return (c);
}

/* A frame that cannot be a SIP message: answer if we may, then close. */
static void
conn_framing_error(struct tp_conn *c, const struct tp_frame_msg *m,
    const char *err)
{
	struct tp	*tp = c->tp;
	struct tp_addr	 peer;
	uint64_t	 id = c->id;
	char		 name[TP_NAME_LEN];

	conn_name(c, name, sizeof(name));
	log_peer("tp %s: connection %llu: bad framing: %s",
	    name, (unsigned long long)c->id, err);
	tp->st.closed_framing++;
	if (m->status != 0 && !m->response && tp->bad != NULL) {
		peer = c->peer;
		tp->bad(tp->arg, c->sock, &c->peer, m->p, m->head_len,
		    m->status, err);
		/* Its answer may have found the connection broken. */
		if ((c = conn_find(tp, &peer)) == NULL || c->id != id)
			return;
	}
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

/* The peer closed, or reading failed: c goes. */
static void
conn_read_failed(struct tp_conn *c, ssize_t rc, const char *why)
{
	struct tp	*tp = c->tp;

	if (rc == IO_EOF) {
		tp->st.closed_peer++;
		conn_free(c, "closed by the peer");
		return;
	}
	if (c->ssl != NULL && !c->got_data)
		tp->st.tls_failed++;	/* the handshake of an accepted one */
	else
		tp->st.closed_peer++;
	conn_free(c, why);
}

/*
 * A WebSocket connection (RFC 6455, RFC 7118): the HTTP upgrade, then
 * one SIP message per WebSocket message.  false: c is gone or closing.
 */
static bool
conn_read_ws(struct tp_conn *c, struct evbuffer *in)
{
	struct tp		*tp = c->tp;
	struct evbuffer		*out = c->out;
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
			return (false);
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
			return (false);
		}
		c->msg_start_ms = 0;
		if (m.len == 0 || all_crlf(m.p, m.len)) {
			tp->st.keepalives++;	/* JsSIP, SIP.js: "\r\n\r\n" */
			continue;
		}
		if (!conn_deliver(c, m.p, m.len))
			return (false);
	}
partial:
	conn_rearm(c, evbuffer_get_length(in) > 0);
	return (true);
}

/*
 * Read into the WebSocket layer's evbuffer.  1: read and handled, 0:
 * nothing to read now (or no room), -1: c is gone or closing.
 */
static int
conn_read_ws_sock(struct tp_conn *c)
{
	struct evbuffer_iovec	 v;
	size_t			 len, lim;
	ssize_t			 n;
	char			 why[256];

	len = evbuffer_get_length(c->in);
	/* Never more than a whole message plus a read's worth. */
	lim = c->frame.max_size + READ_CHUNK;
	if (len >= lim) {
		event_del(&c->rev);	/* the message deadline ends it */
		c->reading = false;
		return (0);
	}
	if (evbuffer_reserve_space(c->in, (ev_ssize_t)(lim - len), &v,
	    1) < 1) {
		conn_free(c, "out of memory");
		return (-1);
	}
	if (v.iov_len > lim - len)
		v.iov_len = lim - len;
	if ((n = conn_recv(c, v.iov_base, v.iov_len, why, sizeof(why))) <
	    0) {
		conn_read_failed(c, n, why);
		return (-1);
	}
	if (n == IO_AGAIN) {
		conn_events(c);
		return (0);
	}
	v.iov_len = (size_t)n;
	evbuffer_commit_space(c->in, &v, 1);
	c->got_data = true;
	c->active_ms = timer_now_ms();
	if (!conn_read_ws(c, c->in))
		return (-1);
	if (conn_flush(c, why, sizeof(why)) == -1) {
		c->tp->st.closed_peer++;
		conn_free(c, why);
		return (-1);
	}
	return (1);
}

/*
 * Frame what was read: buf holds have bytes from the start of the
 * message being framed (and room for a NUL after them).  Every whole
 * message goes up from where it lies; the rest is kept in c->part.
 * false: c is gone or closing.
 */
static bool
conn_frame(struct tp_conn *c, char *buf, size_t have)
{
	struct tp		*tp = c->tp;
	struct tp_frame_msg	 m;
	size_t			 off = 0, used, rest;
	char			 err[160], why[256], save, *end;
	int			 rc;

	for (;;) {
		rc = tp_frame_next(&c->frame, buf + off, have - off, &used,
		    &m, err, sizeof(err));
		if (rc == TP_FRAME_ERROR) {
			if (m.p != NULL)	/* the header section */
				((char *)m.p)[m.head_len] = '\0';
			conn_framing_error(c, &m, err);
			return (false);
		}
		off += used;
		if (rc == TP_FRAME_MORE)
			break;
		c->msg_start_ms = 0;
		if (rc == TP_FRAME_KEEPALIVE) {
			tp->st.keepalives++;
			if (conn_send_bytes(c, "\r\n", 2, why, sizeof(why)) ==
			    -1) {
				tp->st.closed_peer++;
				conn_free(c, why);
				return (false);
			}
			continue;
		}
		if (rc != TP_FRAME_MSG)
			continue;
		/* As a datagram: NUL after it (buf has the room). */
		end = (char *)m.p + m.len;
		save = *end;
		*end = '\0';
		if (!conn_deliver(c, m.p, m.len))
			return (false);
		*end = save;
	}
	rest = have - off;
	if (buf == c->part) {
		if (rest == 0) {
			free(c->part);	/* an idle connection keeps none */
			c->part = NULL;
			c->part_cap = 0;
		} else if (off > 0)
			memmove(c->part, c->part + off, rest);
	} else if (rest > 0) {
		c->part_cap = rest + READ_CHUNK + 1;
		c->part = xmalloc(c->part_cap);
		memcpy(c->part, buf + off, rest);
	}
	c->part_len = rest;
	conn_rearm(c, c->frame.state != TP_FRAME_IDLE || rest > 0);
	return (true);
}

/*
 * Bytes came: one read into the loop's buffer (or after the unframed
 * rest of the last one), framed at once.  Over TLS, records OpenSSL read
 * ahead are taken the same way, without another read(2).
 */
static void
conn_read(struct tp_conn *c)
{
	char		*buf, why[256];
	size_t		 have, cap;
	ssize_t		 n;

	do {
		if (c->ws != NULL) {
			if (conn_read_ws_sock(c) <= 0)
				return;
			continue;
		}
		if (c->part != NULL) {
			have = c->part_len;
			if (c->part_cap - have < READ_CHUNK / 4 + 1) {
				c->part_cap = have + READ_CHUNK + 1;
				c->part = xrealloc(c->part, c->part_cap);
			}
			buf = c->part;
			cap = c->part_cap;
		} else {
			buf = conn_rbuf(c->tp, c->frame.max_size, &cap);
			have = 0;
		}
		n = conn_recv(c, buf + have, cap - have - 1, why,
		    sizeof(why));
		if (n < 0) {
			conn_read_failed(c, n, why);
			return;
		}
		if (n == IO_AGAIN) {
			conn_events(c);
			return;
		}
		c->got_data = true;
		c->active_ms = timer_now_ms();
		if (!conn_frame(c, buf, have + (size_t)n))
			return;
	} while (c->ssl != NULL && SSL_has_pending(c->ssl));
}

/* The TCP connect is done (or failed): on to TLS, or open. */
static void
conn_connected(struct tp_conn *c)
{
	struct tp	*tp = c->tp;
	socklen_t	 len = sizeof(int);
	int		 err = c->so_error;
	char		 why[256];

	if (err == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
	    &len) == -1)
		err = errno;
	if (err != 0) {
		tp->st.connect_failed++;
		conn_free(c, strerror(err));
		return;
	}
	c->tcp_wait = false;
	if (c->ssl != NULL) {
		conn_handshake(c);	/* the ClientHello */
		return;
	}
	tp->st.connected++;
	c->state = CONN_OPEN;
	c->active_ms = timer_now_ms();
	conn_arm(c);
	if (conn_flush(c, why, sizeof(why)) == -1) {
		tp->st.closed_peer++;
		conn_free(c, why);
	}
}

/* A step of the TLS handshake. */
static void
conn_handshake(struct tp_conn *c)
{
	struct tp	*tp = c->tp;
	char		 why[256];
	int		 rc, err;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_do_handshake(c->ssl)) == 1) {
		c->tls_hs = c->hs_write = false;
		dir_names(c);
		if (c->state == CONN_CONNECTING) {
			tp->st.connected++;
			c->state = CONN_OPEN;
			c->active_ms = timer_now_ms();
			conn_arm(c);
		}
		if (conn_flush(c, why, sizeof(why)) == -1) {
			tp->st.closed_peer++;
			conn_free(c, why);
			return;
		}
		/* Bytes that came with the handshake's last flight. */
		if (SSL_has_pending(c->ssl))
			conn_read(c);
		return;
	}
	switch ((err = SSL_get_error(c->ssl, rc))) {
	case SSL_ERROR_WANT_READ:
		c->hs_write = false;
		conn_events(c);
		return;
	case SSL_ERROR_WANT_WRITE:
		c->hs_write = true;
		conn_events(c);
		return;
	}
	if (c->state == CONN_CONNECTING) {
		tp->st.connect_failed++;
		conn_free(c, conn_tls_why(c, err, why, sizeof(why)));
		return;
	}
	if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL &&
	    ERR_peek_error() == 0 && errno == 0)) {
		tp->st.closed_peer++;
		conn_free(c, "closed by the peer");
		return;
	}
	tp->st.tls_failed++;	/* the handshake of an accepted one */
	conn_free(c, conn_tls_why(c, err, why, sizeof(why)));
}

static void
conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct tp_conn	*c = arg;
	char		 why[256];

	(void)fd;
	if (c->tcp_wait) {
		conn_connected(c);
		return;
	}
	if (c->tls_hs) {
		conn_handshake(c);
		return;
	}
	if (what & EV_WRITE) {
		if (c->tls_rw) {	/* SSL_read() waited to write */
			conn_read(c);
			return;
		}
		if (conn_flush(c, why, sizeof(why)) == -1) {
			c->tp->st.closed_peer++;
			conn_free(c, why);
			return;
		}
		if (c->state == CONN_CLOSING &&
		    evbuffer_get_length(c->out) == 0)
			conn_free(c, "closed after an error");
		return;
	}
	if (c->state == CONN_CLOSING)
		return;
	if (c->tls_wr) {		/* SSL_write() waited to read */
		c->tls_wr = false;
		if (conn_flush(c, why, sizeof(why)) == -1) {
			c->tp->st.closed_peer++;
			conn_free(c, why);
			return;
		}
	}
	conn_read(c);
}

static void
conn_deadline(void *arg)
{
	struct tp_conn	*c = arg;
	struct tp	*tp = c->tp;

	c->armed_ms = 0;
	if (timer_now_ms() < conn_due(c)) {
		conn_arm(c);	/* it moved away: the time left */
		return;
	}
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
	} else {
		tp->st.closed_idle++;
		conn_free(c, "idle");
	}
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
	unsigned	 n;
	int		 on = 1, prev;

	(void)lev;
	memset(&peer, 0, sizeof(peer));
	memcpy(&peer.ss, sa, (size_t)salen);
	peer.len = (socklen_t)salen;
	peer.proto = (uint8_t)s->proto;
	tp_addr_str(&peer, name, sizeof(name));
	if (!all_reserve(tp, &n)) {
		tp->st.refused_global++;
		log_peer("tp %s: connection refused: %u connections open "
		    "(connections.max)", name, n);
		close(fd);
		return;
	}
	if (tp->admit != NULL && !tp->admit(tp->arg, &peer)) {
		tp->st.refused_banned++;
		log_debug("tp %s: connection refused: banned", name);
		all_release();
		close(fd);
		return;
	}
	if ((src = src_take(tp, &peer, &n)) == NULL) {
		tp->st.refused_per_ip++;
		log_peer("tp %s: connection refused: %u open from this "
		    "address (connections.max_per_ip)", name, n);
		all_release();
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
		c = conn_new(tp, s, fd, &peer, false, ssl, &prev);
	if (c == NULL) {
		src_put(src);
		all_release();
		return;
	}
	c->src = src;
	/* ... and so is one that another worker has to it. */
	if (prev >= 0 && tp->remote != NULL)
		tp->remote->close(tp->remote->arg, (unsigned)prev, &peer,
		    "replaced by a new connection from the peer");
	tp->st.accepted++;
	conn_events(c);
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
	unsigned	 n;
	int		 fd, on = 1, prev;

	tp_addr_str(dst, name, sizeof(name));
	if (!all_reserve(tp, &n)) {
		tp->st.refused_global++;
		log_warnx("tp %s: no connection opened: %u open "
		    "(connections.max)", name, n);
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
			all_release();
			return (NULL);
		}
	}
	if ((fd = socket(dst->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("tp %s: socket", name);
		if (ssl != NULL)
			SSL_free(ssl);
		all_release();
		return (NULL);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (tp_addr_set(&local, (struct slice){ s->ip, strlen(s->ip) }, 0) ==
	    0 && bind(fd, (struct sockaddr *)&local.ss, local.len) == -1)
		log_debug("tp %s: bind to %s: %s", name, s->ip,
		    strerror(errno));
	if ((c = conn_new(tp, s, fd, dst, true, ssl, &prev)) == NULL) {
		all_release();
		return (NULL);
	}
	if (ssl != NULL)
		c->tls_name = xstrdup(tls_name);
	c->tcp_wait = true;
	if (connect(fd, (const struct sockaddr *)&dst->ss, dst->len) == -1 &&
	    errno != EINPROGRESS) {
		/* Told on the next turn, as a connect that fails later. */
		c->so_error = errno;
		event_active(&c->wev, EV_WRITE, 1);
	}
	conn_events(c);
	conn_arm(c);
	log_debug("tp %s: connecting from %s%s%s%s", name, s->name,
	    ssl != NULL ? " (TLS, name " : "", ssl != NULL ? tls_name : "",
	    ssl != NULL ? ")" : "");
	return (c);
}

static int	stream_send(struct tp_sock *, const struct tp_addr *,
		    const struct tp_addr *, const char *, const void *, size_t,
		    bool);

/*
 * dst's connection is gone: the bytes go to alt (18.2.2), if there is
 * one, over a connection of this worker's or the one a worker holds to
 * it.  A send handed over here (the connection went between the other
 * worker's look and ours) may be handed on once more for alt, which has
 * no alternative of its own: no loop.
 */
static int
alt_send(struct tp_sock *s, const struct tp_addr *alt, const void *p,
    size_t len)
{
	if (alt == NULL)
		return (-1);
	return (stream_send(s, alt, NULL, NULL, p, len, false));
}

/*
 * Send on the connection to dst: the one that is open, else (not for a
 * flow) a new one from s.  Returns -1 when the bytes cannot go; the
 * sender hears of it through tp->lost on the next turn as well.  handed:
 * another worker handed it over (it is not handed on again).
 */
static int
stream_send(struct tp_sock *s, const struct tp_addr *dst,
    const struct tp_addr *alt, const char *name, const void *p, size_t len,
    bool handed)
{
	struct tp	*tp = s->tp;
	struct tp_conn	*c;
	struct tp_addr	 key = *dst;
	size_t		 queued;
	unsigned	 owner;
	bool		 claimed = false;
	char		 why[256];

	key.proto = (uint8_t)s->proto;
	c = conn_find(tp, &key);
	if (c == NULL && dir.on) {
		/*
		 * Another worker's connection (a flow, a browser: only if
		 * there is one), else this worker's new one.
		 */
		if ((dst->flags & TP_ADDR_FLOW) || s->proto == TP_WS ||
		    s->proto == TP_WSS) {
			if (dir_find(&key, NULL, &owner) == -1)
				owner = tp->worker;
		} else if ((owner = dir_claim(&key, tp->worker)) ==
		    tp->worker)
			claimed = true;
		if (owner != tp->worker && !handed && tp->remote != NULL)
			return (tp->remote->send(tp->remote->arg, owner,
			    (unsigned)(s - tp->socks), dst, alt, name, p,
			    len));
		if (owner != tp->worker) {
			tp->st.send_failed++;
			lost_later(tp, &key, handed);
			return (alt_send(s, alt, p, len));
		}
	}
	/*
	 * A TLS connection opened for another domain carries this one only
	 * if its certificate has this name too (RFC 5923 section 4).
	 */
	if (c != NULL && c->tls_name != NULL && name != NULL && *name &&
	    strcasecmp(c->tls_name, name) != 0 && (c->state != CONN_OPEN ||
	    tls_check_name(c->ssl, name) != 0)) {
		log_info("tp %s: connection %llu is for %s, not %s: not used",
		    c->tls_name, (unsigned long long)c->id, c->tls_name, name);
		tp->st.send_failed++;
		lost_later(tp, &key, handed);
		return (-1);
	}
	if (c == NULL || c->state == CONN_CLOSING) {
		/* A browser cannot be called back: WebSocket is flows only. */
		if ((dst->flags & TP_ADDR_FLOW) || c != NULL ||
		    s->proto == TP_WS || s->proto == TP_WSS ||
		    (c = conn_connect(tp, s, &key, name)) == NULL) {
			if (claimed)
				dir_del_key(&key, tp->worker, 0);
			tp->st.send_failed++;
			lost_later(tp, &key, handed);
			return (alt_send(s, alt, p, len));
		}
	}
	if (c->ws != NULL) {
		if (tp_ws_send(c->ws, p, len, c->out) == -1) {
			tp->st.send_failed++;
			return (-1);	/* not open (yet, or any more) */
		}
		if (conn_flush(c, why, sizeof(why)) == -1) {
			tp->st.closed_peer++;
			conn_free(c, why);
			return (-1);
		}
	} else if (conn_send_bytes(c, p, len, why, sizeof(why)) == -1) {
		tp->st.closed_peer++;
		conn_free(c, why);
		return (alt_send(s, alt, p, len));
	}
	c->tx_msgs++;
	c->active_ms = timer_now_ms();
	queued = evbuffer_get_length(c->out);
	if ((c->sent_since += len) >= tp->lim.write_queue_max / 2) {
		c->sent_since = 0;
		queued += conn_unacked(c);
	}
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

int
tp_stream_send(const struct tp_sock *s, const struct tp_addr *dst,
    const char *name, const void *p, size_t len)
{
	return (stream_send((struct tp_sock *)s, dst, NULL, name, p, len,
	    false));
}

/* On dst's connection, else (it is gone) to alt: tp_send_alt(). */
int
tp_stream_send_alt(const struct tp_sock *s, const struct tp_addr *dst,
    const struct tp_addr *alt, const void *p, size_t len)
{
	return (stream_send((struct tp_sock *)s, dst, alt, NULL, p, len,
	    false));
}

/*
 * A send another worker handed over (tp_remote): sent from here.  If the
 * connection went meanwhile, alt (when given) is where it goes instead.
 */
int
tp_stream_send_handed(const struct tp_sock *s, const struct tp_addr *dst,
    const struct tp_addr *alt, const char *name, const void *p, size_t len)
{
	return (stream_send((struct tp_sock *)s, dst, alt, name, p, len,
	    true));
}

/* The workers have answered what c had read before its error: close. */
void
tp_conn_drained(struct tp *tp, const struct tp_addr *a, uint64_t id)
{
	struct tp_conn	*c = conn_find(tp, a);

	if (c == NULL || c->id != id || !c->draining)
		return;
	c->drained = true;
	conn_close_after(c);
}

/* Is the connection that a (a flow) names still there? */
bool
tp_conn_alive(const struct tp *tp, const struct tp_addr *a)
{
	struct tp_conn	*c;

	if ((c = conn_find(tp, a)) != NULL)
		return (c->state != CONN_CLOSING);
	return (dir.on && dir_find(a, NULL, NULL) != -1);
}

/* Close the connection to a now (a banned source); queued bytes go. */
void
tp_conn_close(struct tp *tp, const struct tp_addr *a, const char *why)
{
	struct tp_conn	*c;
	unsigned	 owner;

	if ((c = conn_find(tp, a)) != NULL)
		conn_free(c, why);
	else if (dir.on && tp->remote != NULL && dir_find(a, NULL,
	    &owner) != -1 && owner != tp->worker)
		tp->remote->close(tp->remote->arg, owner, a, why);
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
	struct tp_conn	*c;
	SSL		*ssl;

	if ((c = conn_find(tp, a)) == NULL && dir.on)
		return (dir_find(a, out, NULL) > 0 ? (int)out->n : -1);
	if (c == NULL || (ssl = c->ssl) == NULL || c->tls_hs)
		return (-1);
	return (tls_peer_names(ssl, out));
}

/* A registration over this connection: keep it open for ms at least. */
void
tp_conn_keep(struct tp *tp, const struct tp_addr *a, uint32_t ms)
{
	struct tp_conn	*c;
	uint64_t	 until = timer_now_ms() + ms;
	unsigned	 owner;

	if ((c = conn_find(tp, a)) == NULL) {
		if (dir.on && tp->remote != NULL && dir_find(a, NULL,
		    &owner) != -1 && owner != tp->worker)
			tp->remote->keep(tp->remote->arg, owner, a, ms);
		return;
	}
	if (c->state != CONN_OPEN)
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
		ci.worker = tp->worker;
		ci.sock = c->sock;
		ci.peer = c->peer;
		ci.outbound = c->outbound;
		ci.state = conn_state_names[c->state];
		ci.tls_name = c->tls_name;
		ci.age_ms = now - c->created_ms;
		ci.idle_ms = now - c->active_ms;
		ci.rx_msgs = c->rx_msgs;
		ci.tx_msgs = c->tx_msgs;
		ci.queued = evbuffer_get_length(c->out);
		fn(&ci, arg);
	}
}

/* The counters by name, for ospreyctl stats and /metrics. */
unsigned
tp_stream_counters(const struct tp_stream_stats *st, struct tp_counter *out,
    unsigned max)
{
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

/* tp's counters added to to (every worker's, summed). */
void
tp_stream_stats_add(struct tp_stream_stats *to, const struct tp *tp)
{
	const uint64_t	*f = (const uint64_t *)&tp->st;
	uint64_t	*t = (uint64_t *)to;
	size_t		 i;

	for (i = 0; i < sizeof(*to) / sizeof(uint64_t); i++)
		t[i] += f[i];
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

/*
 * New limits apply to open connections' deadlines too (conn_due() reads
 * them when the timer fires; one set later than a shorter limit now
 * gives is set again here); open connections keep their framer.
 */
void
tp_set_limits(struct tp *tp, const struct tp_limits *l)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	struct tp_conn		*c;

	tp->lim = *l;
	HASHTAB_FOREACH(n, &tp->conns, it) {
		c = (struct tp_conn *)n;
		if (c->armed_ms != 0 && conn_due(c) < c->armed_ms) {
			c->armed_ms = 0;
			conn_arm(c);
		}
	}
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
	free(tp->rbuf);
	tp->rbuf = NULL;
	tp->rbuf_cap = 0;
	tp->nlost = tp->lost_cap = 0;
	tp_set_tls(tp, NULL, NULL);
	ws_conf_unref(tp->ws_conf);
	tp->ws_conf = NULL;
	/* The last loop to close: the per-address table goes too. */
	pthread_mutex_lock(&conns_all.mu);
	if (conns_all.srcs_on && atomic_load(&conns_all.open) == 0) {
		hashtab_cleanup(&conns_all.srcs);
		conns_all.srcs_on = false;
	}
	pthread_mutex_unlock(&conns_all.mu);
}
