/*
 * A Redis client on our event loop.  The connection is ours (a libevent
 * bufferevent, through OpenSSL for TLS); hiredis only builds the commands
 * (redisFormatCommandArgv()) and parses the replies (redisReader), so TLS,
 * timeouts, AUTH, reconnects and pub/sub are the same whatever hiredis
 * version Debian ships (0.14 has no TLS).
 *
 * States: DOWN (the retry timer runs) -> CONNECTING (TCP, TLS) ->
 * HANDSHAKE (AUTH, PING or SUBSCRIBE answered) -> UP.  Any error or a dead
 * connection goes back to DOWN: every command waiting fails with
 * REDIS_R_DOWN, and the next attempt comes after a backoff that doubles
 * from REDIS_BACKOFF_MIN_MS up to REDIS_BACKOFF_MAX_MS.  While not UP a
 * command fails at once (REDIS_R_DOWN): nothing is queued for later.
 *
 * Replies come in the order of the commands; a command unanswered after
 * timeout_ms fails (REDIS_R_TIMEOUT) and keeps its place, empty, so its
 * late reply is dropped.  Should nothing at all have come back since it
 * was sent, the connection is taken for dead and made again.
 */
#include "config.h"

#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <hiredis.h>

#include "log.h"
#include "redis.h"
#include "timer.h"
#include "xmalloc.h"

enum redis_state {
	RS_DOWN,
	RS_CONNECTING,
	RS_HANDSHAKE,
	RS_UP,
};

static const char *const state_names[] = { "down", "connecting",
	"handshake", "up" };

/* One command sent, waiting for its reply; fn NULL: its caller gave up. */
struct redis_cmd {
	struct redis_cmd	*next;
	redis_reply_fn		*fn;
	void			*arg;
	uint64_t		 due_ms;	/* timer_now_ms() */
	uint64_t		 rx_at_send;	/* the connection's rx then */
	bool			 internal;	/* the handshake's */
};

struct redis {
	struct event_base	*base;
	char			*name;		/* owned, for logs */
	char			 host[256];
	uint16_t		 port;
	char			*user;		/* owned */
	char			*password;	/* owned */
	SSL_CTX			*ssl_ctx;	/* owned; NULL: plain TCP */
	uint32_t		 timeout_ms;
	struct bufferevent	*bev;		/* owned; NULL when down */
	redisReader		*reader;	/* owned; NULL when down */
	struct redis_cmd	*head, *tail;	/* owned, in order sent */
	struct timer		 tmo;		/* the head's, or connecting */
	struct timer		 retry;
	uint32_t		 backoff_ms;
	uint64_t		 rx;		/* reads that brought bytes */
	uint64_t		 hs_due_ms;	/* a subscriber's handshake */
	enum redis_state	 state;
	bool			 ever_up;
	bool			 counted_up;
	unsigned		 subscribed;	/* confirmations to come */
	char			 last_err[160];	/* logged once until it
						   changes */
	redis_state_fn		*state_fn;
	void			*state_arg;
	char			*channel;	/* owned: a subscriber's */
	redis_message_fn	*msg_fn;
	void			*msg_arg;
};

static struct redis_stats	S;	/* atomic: a client per worker */
#define S_ADD(f)	__atomic_add_fetch(&S.f, 1, __ATOMIC_RELAXED)
#define S_SUB(f)	__atomic_sub_fetch(&S.f, 1, __ATOMIC_RELAXED)

static void	redis_connect(struct redis *);
static void	redis_down(struct redis *, const char *);

const char *
redis_result_name(enum redis_result r)
{
	static const char *const names[] = { "ok", "error", "timeout",
		"down" };

	return (r < REDIS_R_N ? names[r] : "?");
}

void
redis_stats(struct redis_stats *out)
{
	__atomic_load(&S.reconnects, &out->reconnects, __ATOMIC_RELAXED);
	for (int i = 0; i < REDIS_R_N; i++)
		out->commands[i] = __atomic_load_n(&S.commands[i],
		    __ATOMIC_RELAXED);
	out->conns = __atomic_load_n(&S.conns, __ATOMIC_RELAXED);
	out->up = __atomic_load_n(&S.up, __ATOMIC_RELAXED);
}

void
redis_settings_cleanup(struct redis_settings *s)
{
	free(s->address);
	free(s->user);
	free(s->password);
	free(s->ca_file);
	free(s->node_id);
	free(s->node_uri);
	memset(s, 0, sizeof(*s));
}

/* The wait after one more failed attempt: doubled, capped. */
uint32_t
redis_backoff_next(uint32_t ms)
{
	if (ms < REDIS_BACKOFF_MIN_MS)
		return (REDIS_BACKOFF_MIN_MS);
	return (ms >= REDIS_BACKOFF_MAX_MS / 2 ? REDIS_BACKOFF_MAX_MS :
	    ms * 2);
}

/* "host:port" or "[v6]:port" into host and port; -1 if malformed. */
int
redis_address_parse(const char *s, char *host, size_t hostlen,
    uint16_t *port)
{
	const char	*colon, *h = s;
	size_t		 hl;
	char		*end;
	unsigned long	 p;

	if (*s == '[') {
		if ((colon = strchr(s, ']')) == NULL || colon[1] != ':')
			return (-1);
		h = s + 1;
		hl = (size_t)(colon - h);
		colon++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL ||
		    memchr(s, ':', (size_t)(colon - s)) != NULL)
			return (-1);
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen || colon[1] == '\0')
		return (-1);
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535)
		return (-1);
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return (0);
}

static void
redis_tmo_fire(void *arg);
static void
redis_retry_fire(void *arg);

struct redis *
redis_new(struct event_base *base, const struct redis_settings *set,
    const char *name, redis_state_fn *state_fn, void *state_arg, char *err,
    size_t errlen)
{
	struct redis	*r;
	char		 why[256];

	r = xcalloc(1, sizeof(*r));
	if (redis_address_parse(set->address, r->host, sizeof(r->host),
	    &r->port) == -1) {
		snprintf(err, errlen, "address \"%s\" is not host:port",
		    set->address);
		goto fail;
	}
	if (set->tls) {
		if ((r->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			goto tls_fail;
		SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_PEER, NULL);
		if ((set->ca_file != NULL ? SSL_CTX_load_verify_locations(
		    r->ssl_ctx, set->ca_file, NULL) :
		    SSL_CTX_set_default_verify_paths(r->ssl_ctx)) != 1)
			goto tls_fail;
	}
	r->base = base;
	r->name = xstrdup(name);
	r->user = set->user ? xstrdup(set->user) : NULL;
	r->password = set->password ? xstrdup(set->password) : NULL;
	r->timeout_ms = set->timeout_ms ? set->timeout_ms : 1000;
	r->state_fn = state_fn;
	r->state_arg = state_arg;
	timer_init(&r->tmo, base, redis_tmo_fire, r);
	timer_init(&r->retry, base, redis_retry_fire, r);
	S_ADD(conns);
	return (r);
tls_fail:
	ERR_error_string_n(ERR_get_error(), why, sizeof(why));
	snprintf(err, errlen, "TLS: %s%s%s", set->ca_file ? set->ca_file : "",
	    set->ca_file ? ": " : "", why);
fail:
	SSL_CTX_free(r->ssl_ctx);
	free(r);
	return (NULL);
}

/* Before redis_start(): this connection only listens to channel. */
int
redis_subscribe(struct redis *r, const char *channel, redis_message_fn *fn,
    void *arg)
{
	if (r->state != RS_DOWN || r->bev != NULL)
		return (-1);
	free(r->channel);
	r->channel = xstrdup(channel);
	r->msg_fn = fn;
	r->msg_arg = arg;
	return (0);
}

void
redis_start(struct redis *r)
{
	redis_connect(r);
}

bool
redis_is_up(const struct redis *r)
{
	return (r != NULL && r->state == RS_UP);
}

static void
redis_enter(struct redis *r, enum redis_state next)
{
	bool	was_up = r->state == RS_UP;

	log_debug("redis %s: %s -> %s", r->name, state_names[r->state],
	    state_names[next]);
	r->state = next;
	if (next == RS_UP && !was_up) {
		if (r->ever_up)
			S_ADD(reconnects);
		r->ever_up = true;
		r->backoff_ms = 0;
		r->last_err[0] = '\0';
		S_ADD(up);
		r->counted_up = true;
		log_notice("redis %s: up address=%s:%u%s", r->name, r->host,
		    r->port, r->ssl_ctx ? " tls=yes" : "");
		if (r->state_fn != NULL)
			r->state_fn(r->state_arg, true);
	} else if (was_up && next != RS_UP) {
		S_SUB(up);
		r->counted_up = false;
		if (r->state_fn != NULL)
			r->state_fn(r->state_arg, false);
	}
}

/* Take the head command off the queue (the caller frees it). */
static struct redis_cmd *
redis_pop(struct redis *r)
{
	struct redis_cmd	*c = r->head;

	if (c != NULL && (r->head = c->next) == NULL)
		r->tail = NULL;
	return (c);
}

/* The head's timeout, or none. */
static void
redis_tmo_arm(struct redis *r)
{
	struct redis_cmd	*c;
	uint64_t		 now = timer_now_ms();

	if (r->state != RS_UP && r->state != RS_HANDSHAKE)
		return;		/* connecting: set by redis_connect() */
	if (r->state == RS_HANDSHAKE && r->channel != NULL) {
		/* Until SUBSCRIBE is confirmed, whatever AUTH did. */
		timer_set(&r->tmo, r->hs_due_ms > now ? (uint32_t)(
		    r->hs_due_ms - now) : 0);
		return;
	}
	for (c = r->head; c != NULL && c->fn == NULL; c = c->next)
		;		/* one that timed out waits for nothing */
	if (c == NULL) {
		timer_stop(&r->tmo);
		return;
	}
	timer_set(&r->tmo, c->due_ms > now ? (uint32_t)(c->due_ms - now) : 0);
}

/* Fail every command waiting: the connection went. */
static void
redis_fail_all(struct redis *r)
{
	struct redis_cmd	*c;

	while ((c = redis_pop(r)) != NULL) {
		if (c->fn != NULL && !c->internal) {
			S_ADD(commands[REDIS_R_DOWN]);
			c->fn(c->arg, REDIS_R_DOWN, NULL);
		}
		free(c);
	}
}

/*
 * The connection is gone (why, for the log): close it, fail what waits,
 * and try again after the backoff.
 */
static void
redis_down(struct redis *r, const char *why)
{
	bool	was_up = r->state == RS_UP;

	if (r->bev != NULL) {
		bufferevent_free(r->bev);
		r->bev = NULL;
	}
	if (r->reader != NULL) {
		redisReaderFree(r->reader);
		r->reader = NULL;
	}
	timer_stop(&r->tmo);
	r->backoff_ms = redis_backoff_next(r->backoff_ms);
	if (was_up || strcmp(why, r->last_err) != 0)
		log_warnx("redis %s: down address=%s:%u reason=\"%s\" "
		    "retry_ms=%u", r->name, r->host, r->port, why,
		    r->backoff_ms);
	snprintf(r->last_err, sizeof(r->last_err), "%s", why);
	redis_enter(r, RS_DOWN);
	redis_fail_all(r);
	timer_set(&r->retry, r->backoff_ms);
}

static void
redis_retry_fire(void *arg)
{
	redis_connect(arg);
}

/* Queue bytes already formatted, with their reply's handler. */
static void
redis_send(struct redis *r, char *cmd, size_t len, redis_reply_fn *fn,
    void *arg, bool internal)
{
	struct redis_cmd	*c = xcalloc(1, sizeof(*c));
	bool			 first = r->head == NULL;

	c->fn = fn;
	c->arg = arg;
	c->internal = internal;
	c->rx_at_send = r->rx;
	c->due_ms = timer_now_ms() + r->timeout_ms;
	if (r->tail != NULL)
		r->tail->next = c;
	else
		r->head = c;
	r->tail = c;
	bufferevent_write(r->bev, cmd, len);
	if (first)
		redis_tmo_arm(r);
}

static int
redis_format(int argc, const char **argv, const size_t *argvlen, char **out)
{
	int	len;

	len = redisFormatCommandArgv(out, argc, argv, argvlen);
	return (len);
}

int
redis_command(struct redis *r, redis_reply_fn *fn, void *arg, int argc,
    const char **argv, const size_t *argvlen)
{
	char	*cmd;
	int	 len;

	if (r == NULL || r->state != RS_UP || r->channel != NULL) {
		S_ADD(commands[REDIS_R_DOWN]);
		return (-1);
	}
	if ((len = redis_format(argc, argv, argvlen, &cmd)) < 0)
		fatalx("redis %s: cannot format a command", r->name);
	redis_send(r, cmd, (size_t)len, fn, arg, false);
	redisFreeCommand(cmd);
	return (0);
}

/* The handshake's own commands. */
static void
redis_internal(struct redis *r, redis_reply_fn *fn, int argc,
    const char **argv)
{
	char	*cmd;
	int	 len;

	if ((len = redis_format(argc, argv, NULL, &cmd)) < 0)
		fatalx("redis %s: cannot format a command", r->name);
	redis_send(r, cmd, (size_t)len, fn, r, true);
	redisFreeCommand(cmd);
}

static void
redis_hs_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	struct redis	*r = arg;
	char		 why[200];

	if (res != REDIS_R_OK) {
		snprintf(why, sizeof(why), "handshake: %.*s",
		    rep ? (int)rep->len : 7, rep ? rep->str : "no reply");
		redis_down(r, why);
		return;
	}
	if (r->head != NULL && r->head->internal)
		return;		/* more to come (AUTH then PING) */
	if (r->channel == NULL)
		redis_enter(r, RS_UP);
}

/* Connected (and the TLS handshake done): AUTH, then PING or SUBSCRIBE. */
static void
redis_handshake(struct redis *r)
{
	const char	*argv[4];
	int		 argc = 0;

	redis_enter(r, RS_HANDSHAKE);
	timer_stop(&r->tmo);
	if ((r->reader = redisReaderCreate()) == NULL)
		fatalx("redis: out of memory");
	if (r->password != NULL) {
		argv[argc++] = "AUTH";
		if (r->user != NULL)
			argv[argc++] = r->user;
		argv[argc++] = r->password;
		redis_internal(r, redis_hs_reply, argc, argv);
	}
	if (r->channel != NULL) {
		char	*cmd;
		int	 len;

		argv[0] = "SUBSCRIBE";
		argv[1] = r->channel;
		if ((len = redis_format(2, argv, NULL, &cmd)) < 0)
			fatalx("redis %s: cannot format a command", r->name);
		bufferevent_write(r->bev, cmd, (size_t)len);
		redisFreeCommand(cmd);
		r->subscribed = 1;
		r->hs_due_ms = timer_now_ms() + r->timeout_ms;
		redis_tmo_arm(r);
		return;
	}
	argv[0] = "PING";
	redis_internal(r, redis_hs_reply, 1, argv);
}

static bool
is_str(const redisReply *e, const char *s)
{
	return (e != NULL && (e->type == REDIS_REPLY_STRING ||
	    e->type == REDIS_REPLY_STATUS) && e->len == strlen(s) &&
	    memcmp(e->str, s, e->len) == 0);
}

/* A subscriber's push: a message, or SUBSCRIBE's confirmation. */
static bool
redis_push(struct redis *r, const redisReply *rep)
{
	if (r->channel == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements < 3)
		return (false);
	if (is_str(rep->element[0], "message") &&
	    rep->element[2]->type == REDIS_REPLY_STRING) {
		if (r->msg_fn != NULL)
			r->msg_fn(r->msg_arg, rep->element[1]->str,
			    rep->element[2]->str, rep->element[2]->len);
		return (true);
	}
	if (is_str(rep->element[0], "subscribe")) {
		if (r->subscribed > 0 && --r->subscribed == 0) {
			timer_stop(&r->tmo);
			redis_enter(r, RS_UP);
		}
		return (true);
	}
	return (false);
}

/* One reply: to the head command (in order), or a subscriber's push. */
static void
redis_reply(struct redis *r, redisReply *rep)
{
	struct redis_cmd	*c;
	enum redis_result	 res;

	if (redis_push(r, rep))
		return;
	if ((c = redis_pop(r)) == NULL) {
		redis_down(r, "a reply to no command");
		return;
	}
	res = rep->type == REDIS_REPLY_ERROR ? REDIS_R_ERROR : REDIS_R_OK;
	if (c->fn != NULL) {
		if (!c->internal)
			S_ADD(commands[res]);
		c->fn(c->arg, res, rep);
	}
	free(c);
	redis_tmo_arm(r);
}

static void
redis_read(struct bufferevent *bev, void *arg)
{
	struct redis	*r = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct evbuffer_iovec v;
	redisReply	*rep;

	r->rx++;
	/* Every chunk, however many the input holds. */
	while (evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		redisReaderFeed(r->reader, v.iov_base, v.iov_len);
		evbuffer_drain(in, v.iov_len);
	}
	for (;;) {
		if (redisReaderGetReply(r->reader, (void **)&rep) != REDIS_OK) {
			redis_down(r, "protocol error");
			return;
		}
		if (rep == NULL)
			return;
		redis_reply(r, rep);
		freeReplyObject(rep);
		if (r->reader == NULL)	/* went down in a callback */
			return;
	}
}

static void
redis_event(struct bufferevent *bev, short what, void *arg)
{
	struct redis	*r = arg;
	char		 why[200];
	unsigned long	 e;

	if (what & BEV_EVENT_CONNECTED) {
		int	fd = bufferevent_getfd(bev), on = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
		redis_handshake(r);
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "closed by the server");
	else if (r->ssl_ctx != NULL && (e = bufferevent_get_openssl_error(
	    bev)) != 0) {
		snprintf(why, sizeof(why), "TLS: ");
		ERR_error_string_n(e, why + 5, sizeof(why) - 5);
	} else
		snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
	redis_down(r, why);
}

/* A TLS client SSL for host, its name or address checked. */
static SSL *
redis_ssl(struct redis *r)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	SSL		*ssl;

	if ((ssl = SSL_new(r->ssl_ctx)) == NULL)
		return (NULL);
	if (inet_pton(AF_INET, r->host, &a4) == 1 || inet_pton(AF_INET6,
	    r->host, &a6) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    r->host) != 1)
			goto fail;
	} else if (SSL_set1_host(ssl, r->host) != 1 ||
	    SSL_set_tlsext_host_name(ssl, r->host) != 1)
		goto fail;
	return (ssl);
fail:
	SSL_free(ssl);
	return (NULL);
}

static void
redis_connect(struct redis *r)
{
	struct addrinfo	 hints, *res = NULL;
	char		 port[8], why[320];
	SSL		*ssl;
	int		 rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%u", r->port);
	/* Names come from /etc/hosts or the resolver, blocking: rare. */
	if ((rc = getaddrinfo(r->host, port, &hints, &res)) != 0) {
		snprintf(why, sizeof(why), "%s: %s", r->host,
		    gai_strerror(rc));
		redis_down(r, why);
		return;
	}
	if (r->ssl_ctx != NULL) {
		if ((ssl = redis_ssl(r)) == NULL)
			fatalx("redis %s: cannot make a TLS session",
			    r->name);
		r->bev = bufferevent_openssl_socket_new(r->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	} else
		r->bev = bufferevent_socket_new(r->base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL)
		fatalx("redis %s: cannot make a connection", r->name);
	bufferevent_setcb(r->bev, redis_read, NULL, redis_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	redis_enter(r, RS_CONNECTING);
	timer_set(&r->tmo, r->timeout_ms);
	if (bufferevent_socket_connect(r->bev, res->ai_addr,
	    (int)res->ai_addrlen) == -1) {
		freeaddrinfo(res);
		redis_down(r, "cannot connect");
		return;
	}
	freeaddrinfo(res);
}

/*
 * Connecting too long, or the head command's time is up: it fails (and
 * every one after it that is due too); with nothing received since it
 * went out, the connection is dead.
 */
static void
redis_tmo_fire(void *arg)
{
	struct redis		*r = arg;
	struct redis_cmd	*c;
	uint64_t		 now = timer_now_ms();
	bool			 dead = false;

	if (r->state == RS_CONNECTING || (r->state == RS_HANDSHAKE &&
	    r->channel != NULL)) {
		redis_down(r, "timed out connecting");
		return;
	}
	for (c = r->head; c != NULL && c->due_ms <= now; c = c->next) {
		if (c->fn == NULL)
			continue;
		if (c->internal) {
			dead = true;
			break;
		}
		if (r->rx == c->rx_at_send)
			dead = true;	/* not a byte since it went out */
		S_ADD(commands[REDIS_R_TIMEOUT]);
		c->fn(c->arg, REDIS_R_TIMEOUT, NULL);
		c->fn = NULL;
		if (r->state != RS_UP)
			return;		/* the callback freed or stopped r */
	}
	if (dead) {
		redis_down(r, "no reply in time");
		return;
	}
	redis_tmo_arm(r);
}

void
redis_free(struct redis *r)
{
	if (r == NULL)
		return;
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	r->bev = NULL;
	if (r->reader != NULL)
		redisReaderFree(r->reader);
	r->reader = NULL;
	timer_stop(&r->tmo);
	timer_stop(&r->retry);
	if (r->counted_up)
		S_SUB(up);
	S_SUB(conns);
	r->state = RS_DOWN;
	r->state_fn = NULL;
	redis_fail_all(r);
	SSL_CTX_free(r->ssl_ctx);
	free(r->channel);
	free(r->name);
	free(r->user);
	free(r->password);
	free(r);
}
