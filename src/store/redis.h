#ifndef OSPREY_REDIS_H
#define OSPREY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;

/*
 * A Redis client on the event loop: one connection (plain TCP, or TLS),
 * commands pipelined in order, each with its timeout, RESP framed and
 * parsed by hiredis (redisFormatCommandArgv(), redisReader), AUTH with an
 * ACL user, reconnect with a capped exponential backoff.  A connection is
 * either for commands or a subscriber (pub/sub messages only).
 */

struct redis_settings {
	char		*address;	/* owned: "host:port", "[v6]:port" */
	char		*user;		/* owned: ACL user, NULL: none */
	char		*password;	/* owned: NULL: no AUTH */
	bool		 tls;
	char		*ca_file;	/* owned: NULL: the system's */
	uint32_t	 timeout_ms;	/* every command, and connecting */
	char		*node_id;	/* owned: NULL: the host name */
	char		*node_uri;	/* owned: how other nodes reach this
					   one (registrar's, not used here) */
	int		 via_node;	/* REDIS_VIA_*: which bindings are
					   reached through their node */
};

enum { REDIS_VIA_AUTO, REDIS_VIA_ALWAYS, REDIS_VIA_NEVER };

enum redis_result {
	REDIS_R_OK,		/* a reply (not an error reply) */
	REDIS_R_ERROR,		/* an error reply ("-ERR ...") */
	REDIS_R_TIMEOUT,	/* no reply within timeout_ms */
	REDIS_R_DOWN,		/* not connected, or the connection broke */
	REDIS_R_N
};

/* The reply (borrowed) is NULL for TIMEOUT and DOWN. */
typedef void redis_reply_fn(void *, enum redis_result,
    const struct redisReply *);
/* The connection came up (handshake done) or went down. */
typedef void redis_state_fn(void *, bool up);
/* A pub/sub message (borrowed). */
typedef void redis_message_fn(void *, const char *channel, const char *,
    size_t);

struct redis_stats {
	uint64_t	 commands[REDIS_R_N];
	uint64_t	 reconnects;	/* connections made after a loss */
	unsigned	 conns;		/* connections we keep */
	unsigned	 up;		/* of those, up now */
};

#define REDIS_BACKOFF_MIN_MS	100
#define REDIS_BACKOFF_MAX_MS	5000

struct redis;

struct redis	*redis_new(struct event_base *, const struct redis_settings *,
		     const char *, redis_state_fn *, void *, char *, size_t);
int		 redis_subscribe(struct redis *, const char *,
		     redis_message_fn *, void *);
void		 redis_start(struct redis *);
int		 redis_command(struct redis *, redis_reply_fn *, void *, int,
		     const char **, const size_t *);
bool		 redis_is_up(const struct redis *);
void		 redis_free(struct redis *);
void		 redis_stats(struct redis_stats *);
const char	*redis_result_name(enum redis_result);
int		 redis_address_parse(const char *, char *, size_t, uint16_t *);
void		 redis_settings_cleanup(struct redis_settings *);
uint32_t	 redis_backoff_next(uint32_t);

#endif
