/* A RESP peer on loopback for the unit tests (see resp_peer.h). */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "resp_peer.h"
#include "timer.h"

struct resp_conn {
	struct resp_peer	*peer;
	struct bufferevent	*bev;
	struct redisReader	*rd;
	struct resp_conn	*next;
};

struct resp_peer {
	struct evconnlistener	*l;
	resp_cmd_fn		*fn;
	void			*arg;
	struct resp_conn	*conns;
};

bool
resp_arg_is(const redisReply *r, size_t i, const char *s)
{
	return (r->type == REDIS_REPLY_ARRAY && i < r->elements &&
	    r->element[i]->type == REDIS_REPLY_STRING &&
	    r->element[i]->len == strlen(s) &&
	    strncasecmp(r->element[i]->str, s, r->element[i]->len) == 0);
}

void
resp_send(struct resp_conn *c, const char *p, size_t len)
{
	bufferevent_write(c->bev, p, len);
}

void
resp_sends(struct resp_conn *c, const char *s)
{
	resp_send(c, s, strlen(s));
}

/* A bulk string. */
void
resp_bulk(struct resp_conn *c, const char *p, size_t len)
{
	char	head[32];

	snprintf(head, sizeof(head), "$%zu\r\n", len);
	resp_sends(c, head);
	resp_send(c, p, len);
	resp_sends(c, "\r\n");
}

static void
conn_free(struct resp_conn *c)
{
	struct resp_conn	**pp;

	for (pp = &c->peer->conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	bufferevent_free(c->bev);
	redisReaderFree(c->rd);
	free(c);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct resp_conn	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	size_t			 n;
	void			*rep;

	if ((n = evbuffer_get_length(in)) > 0) {
		ck_assert_int_eq(redisReaderFeed(c->rd,
		    (const char *)evbuffer_pullup(in, -1), n), REDIS_OK);
		evbuffer_drain(in, n);
	}
	while (redisReaderGetReply(c->rd, &rep) == REDIS_OK && rep != NULL) {
		ck_assert_int_eq(((redisReply *)rep)->type,
		    REDIS_REPLY_ARRAY);
		c->peer->fn(c, rep, c->peer->arg);
		freeReplyObject(rep);
	}
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

static void
peer_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct resp_conn	*c;

	(void)sa;
	(void)salen;
	c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	c->peer = arg;
	c->next = c->peer->conns;
	c->peer->conns = c;
	c->rd = redisReaderCreate();
	c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Listening on 127.0.0.1, an ephemeral port: "127.0.0.1:PORT" in addr. */
struct resp_peer *
resp_peer_start(struct event_base *base, resp_cmd_fn *fn, void *arg,
    char *addr, size_t len)
{
	struct resp_peer	*p;
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);

	p = calloc(1, sizeof(*p));
	ck_assert_ptr_nonnull(p);
	p->fn = fn;
	p->arg = arg;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->l = evconnlistener_new_bind(base, peer_accept, p,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	ck_assert_ptr_nonnull(p->l);
	ck_assert_int_eq(getsockname(evconnlistener_get_fd(p->l),
	    (struct sockaddr *)&sin, &slen), 0);
	snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return (p);
}

/* The listener and every connection go. */
void
resp_peer_free(struct resp_peer *p)
{
	while (p->conns != NULL)
		conn_free(p->conns);
	evconnlistener_free(p->l);
	free(p);
}

/* base run until pred(arg), at most ms: whether pred came true. */
bool
resp_loop_until(struct event_base *base, bool (*pred)(void *), void *arg,
    unsigned ms)
{
	uint64_t	end = timer_now_ms() + ms;

	while (!pred(arg) && timer_now_ms() < end) {
		struct timeval	tv = { 0, 20000 };

		event_base_loopexit(base, &tv);
		event_base_loop(base, 0);
	}
	return (pred(arg));
}
