#ifndef OSPREY_TP_H
#define OSPREY_TP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "hashtab.h"
#include "sipmsg.h"

#define TP_MAX_SOCKS	16
#define TP_HOSTPORT_LEN	(INET6_ADDRSTRLEN + 8)
#define TP_NAME_LEN	(TP_HOSTPORT_LEN + 8)	/* "tcp:" hostport */

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
	uint8_t			 flags;		/* TP_ADDR_* */
};

/*
 * A stream address that names a connection the peer opened (a response's
 * way back, a registered phone's flow): sent on that connection only, never
 * on a new one we would open to it.
 */
#define TP_ADDR_FLOW	0x01

struct tp;

struct evconnlistener;
struct tls_ctx;
struct tp_ws_conf;

/* A listening socket; owned by struct tp. */
struct tp_sock {
	int		 fd;
	int		 family;
	enum tp_proto	 proto;
	struct event	 ev;		/* UDP */
	struct evconnlistener *lev;	/* streams */
	char		 ip[INET6_ADDRSTRLEN];	/* as configured, canonical */
	uint16_t	 port;
	char		 hostport[TP_HOSTPORT_LEN];	/* for Via, Record-Route */
	char		 name[TP_NAME_LEN];	/* "tcp:" hostport; UDP: hostport */
	struct tp	*tp;
};

/* A message (or datagram) from src on sock. */
typedef void tp_recv_fn(void *, struct tp_sock *, const struct tp_addr *,
    const char *, size_t);
/* A stream message that cannot be framed: answer status from its head. */
typedef void tp_bad_fn(void *, struct tp_sock *, const struct tp_addr *,
    const char *, size_t, int status, const char *reason);
/* The connection to (or from) peer is gone, or could not be opened. */
typedef void tp_lost_fn(void *, const struct tp_addr *);
/* May this peer open a connection?  false: closed at once (a ban). */
typedef bool tp_admit_fn(void *, const struct tp_addr *);

/*
 * Connections spread over worker loops (ospreyd with workers > 1): each
 * worker's tp owns the connections it accepted or opened, and the
 * directory names the owner of each.  A send, keep or close for a
 * connection another worker owns is handed to that worker (owner, its
 * id); sock is the index of the socket in socks[], the same in every
 * worker's tp.  send returns -1 only when it is known at once that the
 * bytes cannot go; a later failure comes back through lost_fwd.
 */
struct tp_remote {
	/* alt (may be NULL): where to send if the connection is gone. */
	int	(*send)(void *, unsigned owner, unsigned sock,
		    const struct tp_addr *, const struct tp_addr *alt,
		    const char *name, const void *, size_t);
	void	(*keep)(void *, unsigned owner, const struct tp_addr *,
		    uint32_t);
	void	(*close)(void *, unsigned owner, const struct tp_addr *,
		    const char *);
	void	 *arg;
};

/* A connection gone (tp->lost), and whether every worker must hear. */
struct tp_lost {
	struct tp_addr	 addr;
	bool		 all;
};

/* Connections as a resource (osprey.conf(5) "connections"). */
struct tp_limits {
	unsigned	 max_conns;	/* all of them, in and out */
	unsigned	 max_conns_per_ip;	/* accepted from one address */
	uint32_t	 connect_ms;	/* an outgoing connect */
	uint32_t	 first_data_ms;	/* accepted: to its first byte */
	uint32_t	 message_ms;	/* a whole message, from its first byte */
	uint32_t	 idle_ms;	/* nothing either way */
	size_t		 max_message_size;
	size_t		 write_queue_max;	/* unread by the peer */
};

struct tp_stream_stats {
	uint64_t	 accepted;
	uint64_t	 connected;	/* outgoing, established */
	uint64_t	 connect_failed;
	uint64_t	 refused_global;	/* over max_conns */
	uint64_t	 refused_per_ip;	/* over max_conns_per_ip */
	uint64_t	 refused_banned;	/* from a banned address */
	uint64_t	 closed_peer;	/* EOF or reset from the peer */
	uint64_t	 closed_idle;
	uint64_t	 closed_slow;	/* first data or message deadline */
	uint64_t	 closed_framing;	/* bad framing */
	uint64_t	 closed_write_queue;	/* a peer that does not read */
	uint64_t	 send_failed;	/* no connection to send on */
	uint64_t	 tls_failed;	/* an accepted TLS handshake failed */
	uint64_t	 ws_refused;	/* a WebSocket handshake refused */
	uint64_t	 ws_closed;	/* a WebSocket close handshake */
	uint64_t	 rx_messages;
	uint64_t	 keepalives;	/* CRLFCRLF pings answered */
};

/* A connection event counter, named: tp_stream_counters(). */
struct tp_counter {
	const char	*name;
	uint64_t	 n;
};
#define TP_COUNTERS_MAX	16

struct tp {
	struct event_base *base;
	struct tp_sock	 socks[TP_MAX_SOCKS];
	unsigned	 nsocks;
	tp_recv_fn	*recv;
	tp_bad_fn	*bad;
	tp_lost_fn	*lost;
	tp_admit_fn	*admit;
	void		*arg;
	unsigned	 worker;	/* the loop's id: 0..workers-1 */
	const struct tp_remote *remote;	/* NULL: the only loop */
	tp_lost_fn	*lost_fwd;	/* after lost: told to the others */
	void		*lost_fwd_arg;
	/* Before a connection closes after an error: tp_conn_drained(). */
	void		(*barrier)(void *, const struct tp_addr *, uint64_t);
	void		*barrier_arg;
	bool		 reuseport;	/* UDP: one socket per worker */
	bool		 reuse_join;	/* the address is ours already */
	char		*rx_bufs;	/* owned: RX_BATCH datagrams */
	uint64_t	 rx_datagrams;
	uint64_t	 tx_errors;

	/*
	 * Streams: the connections this tp's loop accepted or opened
	 * (the limits count every loop's: tp_stream.c "conns_all").
	 */
	struct tp_limits lim;
	struct hashtab	 conns;		/* struct tp_conn by peer */
	unsigned	 nconns;
	struct tp_stream_stats st;
	struct tls_ctx	*tls_server;	/* for new accepted TLS connections */
	struct tls_ctx	*tls_client;	/* for new outgoing ones */
	struct tp_ws_conf *ws_conf;	/* for new WebSocket handshakes */
	struct event	*lost_ev;	/* reports failures on the next turn */
	struct tp_lost	*lost_q;
	unsigned	 nlost, lost_cap;
	char		*rbuf;		/* owned: every connection reads here */
	size_t		 rbuf_cap;
};

/* One connection, as `ospreyctl connections` shows it. */
struct tp_conn_info {
	uint64_t	 id;
	unsigned	 worker;	/* the loop that owns it */
	const struct tp_sock *sock;
	struct tp_addr	 peer;
	bool		 outbound;
	const char	*state;
	const char	*tls_name;	/* outgoing TLS: the name verified */
	uint64_t	 age_ms;
	uint64_t	 idle_ms;
	uint64_t	 rx_msgs, tx_msgs;
	size_t		 queued;	/* bytes waiting to be written */
};

void		 tp_init(struct tp *, struct event_base *, tp_recv_fn *, void *);
void		 tp_set_handlers(struct tp *, tp_bad_fn *, tp_lost_fn *,
		     tp_admit_fn *);
void		 tp_set_limits(struct tp *, const struct tp_limits *);
int		 tp_udp_open(struct tp *, const char *, uint16_t, char *,
		     size_t);
int		 tp_stream_open(struct tp *, enum tp_proto, const char *,
		     uint16_t, char *, size_t);
struct tp_sock	*tp_sock_bind(struct tp *, enum tp_proto, const char *,
		     uint16_t, char *, size_t);
void		 tp_conn_directory(void);
void		 tp_conn_directory_free(void);
void		 tp_conn_drained(struct tp *, const struct tp_addr *, uint64_t);
void		 tp_close(struct tp *);
void		 tp_stream_close_all(struct tp *);
void		 tp_set_tls(struct tp *, struct tls_ctx *, struct tls_ctx *);
void		 tp_set_ws_origins(struct tp *, char *const *, unsigned);
int		 tp_send(const struct tp_sock *, const struct tp_addr *,
		     const void *, size_t);
int		 tp_send_to(const struct tp_sock *, const struct tp_addr *,
		     const char *, const void *, size_t);
int		 tp_send_alt(const struct tp_sock *, const struct tp_addr *,
		     const struct tp_addr *, const void *, size_t);
void		 tp_flush(struct tp *);
void		 tp_set_driven(struct tp *);
int		 tp_stream_send(const struct tp_sock *, const struct tp_addr *,
		     const char *, const void *, size_t);
int		 tp_stream_send_alt(const struct tp_sock *,
		     const struct tp_addr *, const struct tp_addr *,
		     const void *, size_t);
int		 tp_stream_send_handed(const struct tp_sock *,
		     const struct tp_addr *, const struct tp_addr *,
		     const char *, const void *, size_t);
unsigned	 tp_stream_counters(const struct tp_stream_stats *,
		     struct tp_counter *, unsigned);
void		 tp_stream_stats_add(struct tp_stream_stats *,
		     const struct tp *);
unsigned	 tp_conns_open(void);
bool		 tp_conn_alive(const struct tp *, const struct tp_addr *);
void		 tp_conn_close(struct tp *, const struct tp_addr *,
		     const char *);
struct tls_names;
int		 tp_conn_tls_names(const struct tp *, const struct tp_addr *,
		     struct tls_names *);
void		 tp_conn_keep(struct tp *, const struct tp_addr *, uint32_t);
void		 tp_conn_foreach(const struct tp *,
		     void (*)(const struct tp_conn_info *, void *), void *);

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
unsigned	 tp_protos(const struct tp *);
bool		 tp_addr_eq(const struct tp_addr *, const struct tp_addr *);
void		 tp_addr_str(const struct tp_addr *, char *, size_t);
int		 tp_addr_parse(const char *, struct tp_addr *);
struct tp_sock	*tp_sock_for(struct tp *, const struct tp_addr *,
		     struct tp_sock *);
bool		 tp_is_local(const struct tp *, struct slice, uint16_t);
size_t		 tp_addr_key(const struct tp_addr *, uint8_t[17]);
/* A flow's transport, address and port, packed (and as hex) for tokens. */
#define TP_ADDR_PACKED_MAX	20
size_t		 tp_addr_pack(const struct tp_addr *,
		     uint8_t[TP_ADDR_PACKED_MAX]);
size_t		 tp_addr_encode(const struct tp_addr *, char *, size_t);
size_t		 tp_addr_encode_packed(const uint8_t *, size_t, char *,
		    size_t);
int		 tp_addr_decode(struct slice, struct tp_addr *);

#endif
