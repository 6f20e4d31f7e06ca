/*
 * UDP listeners: every ready datagram is read per wake-up (recvmmsg), and
 * the datagrams one loop turn sends leave together (sendmmsg) when it ends:
 * after each batch read here, and at the end of every turn (tp_flush(),
 * called by the main loop; a zero timer does it when nobody does).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "timer.h"
#include "tp.h"
#include "xmalloc.h"

#define RX_BATCH	32
#define RX_SIZE		65536
#define TX_BATCH	64
#define TX_SIZE		(128 * 1024)

/*
 * Every worker's loop has its own (thread-local): the addresses of a
 * batch read, and the datagrams queued in this turn, copies in the order
 * they were sent.  The batch's bytes are in its tp (tp->rx_bufs).
 */
static _Thread_local struct sockaddr_storage	 rx_addrs[RX_BATCH];
#ifdef HAVE_RECVMMSG
/*
 * The batch read's headers, set up once for the rx_bufs they point into
 * (rx_for); a read changes only the address lengths of what it filled.
 */
static _Thread_local struct mmsghdr	 rx_msgs[RX_BATCH];
static _Thread_local struct iovec	 rx_iov[RX_BATCH];
static _Thread_local const char		*rx_for;
#endif

static _Thread_local struct {
	const struct tp_sock	*sock[TX_BATCH];
	struct sockaddr_storage	 addr[TX_BATCH];
	socklen_t		 alen[TX_BATCH];
	size_t			 off[TX_BATCH];
	size_t			 len[TX_BATCH];
	unsigned		 n;
	size_t			 used;
	struct timer		 later;	/* when no loop calls tp_flush() */
	bool			 timer_ok;
	bool			 later_set;
	bool			 driven;	/* tp_flush() ends every turn */
	char			 buf[TX_SIZE];
} tx;

static void	tp_udp_flush(void);

static void
tp_udp_flush_later(void *arg)
{
	(void)arg;
	tx.later_set = false;
	tp_udp_flush();
}

void
tp_init(struct tp *tp, struct event_base *base, tp_recv_fn *fn, void *arg)
{
	memset(tp, 0, sizeof(*tp));
	tp->base = base;
	tp->recv = fn;
	tp->arg = arg;
	hashtab_init(&tp->conns, 64);
	tp->rx_bufs = xmalloc((size_t)RX_BATCH * RX_SIZE);
	tx.n = 0;
	tx.used = 0;
	timer_init(&tx.later, base, tp_udp_flush_later, NULL);
	tx.timer_ok = true;
	tx.later_set = false;
	tx.driven = false;
	tp->lim = (struct tp_limits){
		.max_conns = 4096, .max_conns_per_ip = 256, .connect_ms = 5000,
		.first_data_ms = 10000, .message_ms = 30000,
		.idle_ms = 600000, .max_message_size = 65535,
		.write_queue_max = 1024 * 1024
	};
}

static void
tp_udp_read(evutil_socket_t fd, short what, void *arg)
{
	struct tp_sock	*s = arg;
	struct tp_addr	 src;
	char		*rx = s->tp->rx_bufs;
	int		 n, i, rounds;

	(void)what;
	for (rounds = 0; rounds < 8; rounds++) {
#ifdef HAVE_RECVMMSG
		struct mmsghdr	*msgs = rx_msgs;

		if (rx_for != rx) {
			memset(rx_msgs, 0, sizeof(rx_msgs));
			for (i = 0; i < RX_BATCH; i++) {
				rx_iov[i].iov_base = rx + (size_t)i * RX_SIZE;
				rx_iov[i].iov_len = RX_SIZE - 1;
				msgs[i].msg_hdr.msg_iov = &rx_iov[i];
				msgs[i].msg_hdr.msg_iovlen = 1;
				msgs[i].msg_hdr.msg_name = &rx_addrs[i];
				msgs[i].msg_hdr.msg_namelen =
				    sizeof(rx_addrs[i]);
			}
			rx_for = rx;
		}
		n = recvmmsg(fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
#else
		socklen_t	alen = sizeof(rx_addrs[0]);
		ssize_t		r;

		r = recvfrom(fd, rx, RX_SIZE - 1, MSG_DONTWAIT,
		    (struct sockaddr *)&rx_addrs[0], &alen);
		n = r < 0 ? -1 : 1;
#endif
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_warn("tp udp %s: recv", s->hostport);
			return;
		}
		for (i = 0; i < n; i++) {
#ifdef HAVE_RECVMMSG
			size_t	len = msgs[i].msg_len;

			src.len = msgs[i].msg_hdr.msg_namelen;
			msgs[i].msg_hdr.msg_namelen = sizeof(rx_addrs[i]);
#else
			size_t	len = (size_t)r;

			src.len = alen;
#endif
			memcpy(&src.ss, &rx_addrs[i], sizeof(src.ss));
			src.proto = TP_UDP;
			src.flags = 0;
			s->tp->rx_datagrams++;
			s->tp->recv(s->tp->arg, s, &src, rx + (size_t)i * RX_SIZE,
			    len);
		}
		tp_udp_flush();		/* what this batch answered */
		if (n < RX_BATCH)
			return;
	}
}

int
tp_udp_open(struct tp *tp, const char *ip, uint16_t port, char *err,
    size_t errlen)
{
	struct tp_sock	*s;

	if ((s = tp_sock_bind(tp, TP_UDP, ip, port, err, errlen)) == NULL)
		return (-1);
	tp->nsocks++;
	event_assign(&s->ev, tp->base, s->fd, EV_READ | EV_PERSIST, tp_udp_read,
	    s);
	event_add(&s->ev, NULL);
	log_info("tp: listening udp %s", s->hostport);
	return (0);
}

/* Every listener and connection goes. */
void
tp_close(struct tp *tp)
{
	unsigned	i;

	tp_udp_flush();
	if (tx.timer_ok)
		timer_stop(&tx.later);
	tx.timer_ok = false;
	tx.later_set = false;
	tp_stream_close_all(tp);
	for (i = 0; i < tp->nsocks; i++) {
		if (tp->socks[i].proto != TP_UDP || tp->socks[i].fd == -1)
			continue;
		event_del(&tp->socks[i].ev);
		close(tp->socks[i].fd);
	}
	tp->nsocks = 0;
	free(tp->rx_bufs);
	tp->rx_bufs = NULL;
	hashtab_cleanup(&tp->conns);
}

static void
tp_udp_error(const struct tp_sock *s)
{
	s->tp->tx_errors++;
	log_debug("tp udp %s: sendto: %s", s->hostport, strerror(errno));
}

static int
tp_udp_sendto(const struct tp_sock *s, const struct sockaddr_storage *ss,
    socklen_t alen, const void *p, size_t len)
{
	if (sendto(s->fd, p, len, MSG_DONTWAIT, (const struct sockaddr *)ss,
	    alen) == -1) {
		tp_udp_error(s);
		return (-1);
	}
	return (0);
}

int
tp_send(const struct tp_sock *s, const struct tp_addr *dst, const void *p,
    size_t len)
{
	return (tp_send_to(s, dst, NULL, p, len));
}

/*
 * A response's send (RFC 3261 18.2.2): on the connection dst names, else,
 * when it is gone, to alt (a new connection to the sent-by port); here or
 * on the worker that holds the connection.  Over UDP dst only.
 */
int
tp_send_alt(const struct tp_sock *s, const struct tp_addr *dst,
    const struct tp_addr *alt, const void *p, size_t len)
{
	if (s != NULL && s->proto != TP_UDP && alt != NULL)
		return (tp_stream_send_alt(s, dst, alt, p, len));
	return (tp_send_to(s, dst, NULL, p, len));
}

/*
 * Send to dst: a datagram from s, or on the stream to dst (tp_stream.c).
 * name is the domain a new TLS connection must prove (RFC 5922); NULL:
 * the address itself.
 */
int
tp_send_to(const struct tp_sock *s, const struct tp_addr *dst,
    const char *name, const void *p, size_t len)
{
	if (s == NULL)
		return (-1);
	if (s->proto != TP_UDP)
		return (tp_stream_send(s, dst, name, p, len));
	if (!tx.timer_ok || len > TX_SIZE / 4)
		return (tp_udp_sendto(s, &dst->ss, dst->len, p, len));
	if (tx.n == TX_BATCH || tx.used + len > TX_SIZE)
		tp_udp_flush();
	if (tx.n == 0 && !tx.driven && !tx.later_set) {
		timer_set(&tx.later, 0);
		tx.later_set = true;
	}
	tx.sock[tx.n] = s;
	memcpy(&tx.addr[tx.n], &dst->ss, dst->len);
	tx.alen[tx.n] = dst->len;
	tx.off[tx.n] = tx.used;
	tx.len[tx.n] = len;
	memcpy(tx.buf + tx.used, p, len);
	tx.used += len;
	tx.n++;
	return (0);
}

/* Send the queued datagrams, a sendmmsg() per run of one socket. */
static void
tp_udp_flush(void)
{
	unsigned	i, j, k;

	for (i = 0; i < tx.n; i = j) {
		for (j = i + 1; j < tx.n && tx.sock[j] == tx.sock[i]; j++)
			;
		if (j - i == 1) {
			tp_udp_sendto(tx.sock[i], &tx.addr[i], tx.alen[i],
			    tx.buf + tx.off[i], tx.len[i]);
			continue;
		}
#ifdef HAVE_SENDMMSG
		{
			struct mmsghdr	msgs[TX_BATCH];
			struct iovec	iov[TX_BATCH];
			int		r;

			memset(msgs, 0, (j - i) * sizeof(msgs[0]));
			for (k = i; k < j; k++) {
				iov[k - i].iov_base = tx.buf + tx.off[k];
				iov[k - i].iov_len = tx.len[k];
				msgs[k - i].msg_hdr.msg_iov = &iov[k - i];
				msgs[k - i].msg_hdr.msg_iovlen = 1;
				msgs[k - i].msg_hdr.msg_name = &tx.addr[k];
				msgs[k - i].msg_hdr.msg_namelen = tx.alen[k];
			}
			for (k = i; k < j; ) {
				r = sendmmsg(tx.sock[i]->fd, msgs + (k - i),
				    j - k, MSG_DONTWAIT);
				if (r > 0) {
					k += (unsigned)r;
					continue;
				}
				/* The one that failed: counted, then the rest. */
				tp_udp_error(tx.sock[i]);
				k++;
			}
		}
#else
		for (k = i; k < j; k++)
			tp_udp_sendto(tx.sock[k], &tx.addr[k], tx.alen[k],
			    tx.buf + tx.off[k], tx.len[k]);
#endif
	}
	tx.n = 0;
	tx.used = 0;
	if (tx.timer_ok && tx.later_set) {
		timer_stop(&tx.later);
		tx.later_set = false;
	}
}

/*
 * The loop calls tp_flush() once each of its turns ends (worker_run()),
 * and after whatever it runs between turns: no zero timer (an event_add()
 * and an event_del() a turn) is needed.
 */
void
tp_set_driven(struct tp *tp)
{
	(void)tp;
	tx.driven = true;
}

/* The end of a loop turn: what it queued leaves now. */
void
tp_flush(struct tp *tp)
{
	(void)tp;
	if (tx.n > 0)
		tp_udp_flush();
}
