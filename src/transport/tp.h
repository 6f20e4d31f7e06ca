#ifndef OSPREY_TP_H
#define OSPREY_TP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "sipmsg.h"

#define TP_MAX_SOCKS	16
#define TP_HOSTPORT_LEN	(INET6_ADDRSTRLEN + 8)

/*
 * The transports (RFC 3261 18, RFC 7118).  Every address carries the one it
 * is reached over; UDP is 0, so a zeroed address is a UDP one.
 */
enum tp_proto {
	TP_UDP = 0,
	TP_TCP,
	TP_TLS,
	TP_WS,
	TP_WSS,
	TP_NPROTO
};

struct tp_addr {
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	uint8_t			 proto;		/* enum tp_proto */
};

struct tp;

/* A listening socket; owned by struct tp. */
struct tp_sock {
	int		 fd;
	int		 family;
	enum tp_proto	 proto;
	struct event	 ev;
	char		 ip[INET6_ADDRSTRLEN];	/* as configured, canonical */
	uint16_t	 port;
	char		 hostport[TP_HOSTPORT_LEN];	/* for Via, Record-Route */
	struct tp	*tp;
};

typedef void tp_recv_fn(void *, struct tp_sock *, const struct tp_addr *,
    const char *, size_t);

struct tp {
	struct event_base *base;
	struct tp_sock	 socks[TP_MAX_SOCKS];
	unsigned	 nsocks;
	tp_recv_fn	*recv;
	void		*arg;
	uint64_t	 rx_datagrams;
	uint64_t	 tx_errors;
};

void		 tp_init(struct tp *, struct event_base *, tp_recv_fn *, void *);
int		 tp_udp_open(struct tp *, const char *, uint16_t, char *,
		     size_t);
void		 tp_close(struct tp *);
int		 tp_send(const struct tp_sock *, const struct tp_addr *,
		     const void *, size_t);

/* Transport names: "UDP" for Via, "udp" for ;transport=, config. */
const char	*tp_proto_via(enum tp_proto);
const char	*tp_proto_param(enum tp_proto);
int		 tp_proto_parse(struct slice, enum tp_proto *);
bool		 tp_proto_reliable(enum tp_proto);
bool		 tp_proto_secure(enum tp_proto);

/* Addresses: numeric only; name resolution happens before these. */
int		 tp_addr_set(struct tp_addr *, struct slice, uint16_t);
void		 tp_addr_ip(const struct tp_addr *, char *, size_t);
uint16_t	 tp_addr_port(const struct tp_addr *);
int		 tp_addr_family(const struct tp_addr *);
struct tp_sock	*tp_sock_for(struct tp *, const struct tp_addr *,
		     struct tp_sock *);
bool		 tp_is_local(const struct tp *, struct slice, uint16_t);
size_t		 tp_addr_key(const struct tp_addr *, uint8_t[17]);

#endif
