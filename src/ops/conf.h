#ifndef OSPREY_CONF_H
#define OSPREY_CONF_H

#include <stdio.h>

#include "auth.h"
#include "cdr.h"
#include "ctl.h"
#include "dialog.h"
#include "guard.h"
#include "natping.h"
#include "proxy.h"
#include "redis.h"
#include "registrar.h"
#include "resolver.h"
#include "rtpengine.h"
#include "tls.h"
#include "tp.h"
#include "txn.h"

/* Something a valid config does that is probably not what was meant. */
struct conf_warning {
	int		 line;
	char		*msg;		/* owned */
};

struct conf_listen {
	char		*transport;	/* owned */
	char		*address;	/* owned */
	uint16_t	 port;
	int		 line;		/* in the file, for later checks */
};

/* Everything the config file says; each layer gets its own settings. */
struct conf {
	struct conf_listen	 listen[TP_MAX_SOCKS];
	unsigned		 nlisten;
	struct proxy_settings	 proxy;
	struct txn_settings	 txn;
	struct resolver_settings dns;
	struct ctl_settings	 ctl;
	struct registrar_settings reg;
	struct redis_settings	 redis;		/* address NULL: none */
	struct natping_settings	 nat;
	struct auth_settings	 auth;
	struct guard_settings	 guard;
	struct dialog_settings	 dialog;	/* dialog, limits,
						   timers.dialog_timeout */
	char			*dialog_database;	/* owned; NULL: none */
	struct tp_limits	 conns;		/* max_message_size: root key */
	struct tls_settings	 tls;		/* the server side */
	char			*tls_client_ca;	/* owned; NULL: the system's */
	char			*tls_client_cert;	/* owned, mutual TLS */
	char			*tls_client_key;	/* owned */
	struct tls_ctx		*tls_server;	/* made from tls; NULL: none */
	struct tls_ctx		*tls_client;	/* always made */
	struct strlist		 ws_origins;	/* websocket.origins */
	struct media_settings	 media;		/* uris owned */
	struct cdr_settings	 cdr;		/* accounting */
	struct auth_users	*users;	/* owned until handed to auth_set() */
	uint32_t		 shutdown_grace_ms;
	unsigned		 workers;	/* as set; 0: one per CPU */
	unsigned		 txn_memory_mb;	/* as set; 0: from the RAM */
	char			*metrics_address;	/* owned; NULL: off */
	uint16_t		 metrics_port;
	int			 log_level;
	char			*path;		/* owned: the file read */
	struct conf_warning	*warnings;	/* owned */
	unsigned		 nwarnings;
};

int	conf_load(const char *, struct conf *, char *, size_t);
void	conf_free(struct conf *);
void	conf_print(const struct conf *, FILE *);
void	conf_warnings(const struct conf *, FILE *);

#endif
