/* UDP listeners: every ready datagram is read per wake-up (recvmmsg). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tp.h"

#define RX_BATCH	32
#define RX_SIZE		65536

static char			 rx_bufs[RX_BATCH][RX_SIZE];
static struct sockaddr_storage	 rx_addrs[RX_BATCH];

void
tp_init(struct tp *tp, struct event_base *base, tp_recv_fn *fn, void *arg)
{
	memset(tp, 0, sizeof(*tp));
	tp->base = base;
	tp->recv = fn;
	tp->arg = arg;
	hashtab_init(&tp->conns, 64);
	hashtab_init(&tp->srcs, 64);
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
	int		 n, i, rounds;

	(void)what;
	for (rounds = 0; rounds < 8; rounds++) {
#ifdef HAVE_RECVMMSG
		struct mmsghdr	msgs[RX_BATCH];
		struct iovec	iov[RX_BATCH];

		memset(msgs, 0, sizeof(msgs));
		for (i = 0; i < RX_BATCH; i++) {
			iov[i].iov_base = rx_bufs[i];
			iov[i].iov_len = RX_SIZE - 1;
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &rx_addrs[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(rx_addrs[i]);
		}
		n = recvmmsg(fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
#else
		socklen_t	alen = sizeof(rx_addrs[0]);
		ssize_t		r;

		r = recvfrom(fd, rx_bufs[0], RX_SIZE - 1, MSG_DONTWAIT,
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
#else
			size_t	len = (size_t)r;

			src.len = alen;
#endif
			memcpy(&src.ss, &rx_addrs[i], sizeof(src.ss));
			src.proto = TP_UDP;
			src.flags = 0;
			s->tp->rx_datagrams++;
			s->tp->recv(s->tp->arg, s, &src, rx_bufs[i], len);
		}
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

	tp_stream_close_all(tp);
	for (i = 0; i < tp->nsocks; i++) {
		if (tp->socks[i].proto != TP_UDP)
			continue;
		event_del(&tp->socks[i].ev);
		close(tp->socks[i].fd);
	}
	tp->nsocks = 0;
	hashtab_cleanup(&tp->conns);
	hashtab_cleanup(&tp->srcs);
}

int
tp_send(const struct tp_sock *s, const struct tp_addr *dst, const void *p,
    size_t len)
{
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
	if (sendto(s->fd, p, len, MSG_DONTWAIT, (const struct sockaddr *)&dst->ss,
	    dst->len) == -1) {
		s->tp->tx_errors++;
		log_debug("tp udp %s: sendto: %s", s->hostport,
		    strerror(errno));
		return (-1);
	}
	return (0);
}
