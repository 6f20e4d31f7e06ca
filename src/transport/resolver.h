#ifndef OSPREY_RESOLVER_H
#define OSPREY_RESOLVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "timer.h"
#include "tp.h"

#define RESOLVE_MAX_ADDRS	16
#define RESOLVE_MAX_NS		4

/* The bit of one transport in resolve_query.protos. */
#define RESOLVE_PROTO(p)	(1u << (p))

struct resolver_settings {
	struct tp_addr	 ns[RESOLVE_MAX_NS];	/* none: /etc/resolv.conf */
	unsigned	 nns;
	uint32_t	 timeout_ms;		/* the first try of a query */
};

/*
 * What to resolve: the host, port, ;transport= and scheme of a SIP URI
 * (RFC 3263 4), and the transports we can send on.
 *
 * host		a name, or an IPv4 or IPv6 address (brackets or not)
 * port		0 when the URI has none
 * proto	enum tp_proto from ;transport=, or -1 when it has none
 *		(for sips:, "tcp" means TLS; "udp" is refused)
 * sips		a sips: URI: only TLS addresses come back
 * protos	RESOLVE_PROTO(TP_x) for each transport we can send on;
 *		0 means none, and every lookup fails
 *
 * The steps, as RFC 3263 4.1 and 4.2 give them:
 *   an address		no DNS; proto, else UDP (TLS for sips), port or
 *			5060 (5061 for TLS)
 *   a port		A/AAAA of host; proto, else UDP (TLS for sips)
 *   a proto		SRV of _sip._udp, _sip._tcp or _sips._tcp (TLS);
 *			WS and WSS have no SRV name: A/AAAA
 *   neither		NAPTR of host: the SIP+D2U, SIP+D2T and SIPS+D2T
 *			records (SIPS+D2T only for sips) whose transport is
 *			in protos, by order then preference, each an SRV
 *			name; with none, SRV of _sip._udp, _sip._tcp and
 *			_sips._tcp (sips: _sips._tcp only), in that order,
 *			for those in protos
 * With no SRV record at all, A/AAAA of host on 5060 (5061 for TLS) over
 * UDP (TLS for sips; with no UDP in protos, TCP then TLS).  SRV records go
 * by priority and weight (RFC 2782); a target "." offers nothing.
 */
struct resolve_query {
	const char	*host;
	uint16_t	 port;
	int		 proto;
	bool		 sips;
	unsigned	 protos;
};

/*
 * The addresses in the order to try them, each with its port and the
 * transport to send over (.proto): failing over may change transport.  n
 * == 0 with err when nothing came.  addrs and err die with the call.
 */
typedef void resolve_cb(void *, const struct tp_addr *, unsigned,
    const char *);

struct resolve_req;

void		 resolver_init(struct event_base *,
		     const struct resolver_settings *);
void		 resolver_shutdown(void);
/*
 * Resolve q (copied).  The callback may run before this returns (an
 * address, cached answers, /etc/hosts, a bad query); then NULL is
 * returned.  Otherwise the request is ours until it calls back, or until
 * resolver_cancel() (after which it never does).
 */
struct resolve_req *resolver_query(const struct resolve_query *,
		     resolve_cb *, void *);
/* resolver_query() of host and port (0: none), over UDP only. */
struct resolve_req *resolver_lookup(const char *, uint16_t, resolve_cb *,
		     void *);
void		 resolver_cancel(struct resolve_req *);
int		 resolver_parse_ns(const char *, struct tp_addr *);

#endif
