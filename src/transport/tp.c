/* Transport addresses and "is this us?" */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "tp.h"

/*
 * Is an address bound already (by another process: we have not bound it
 * yet)?  A plain bind tells, as it fails beside SO_REUSEPORT sockets
 * too; so the first of our sockets on an address is refused, as it
 * would be without SO_REUSEPORT, and no second daemon silently shares
 * the port.  (Once ours are bound, only the same user could join them.)
 * A stream probe has SO_REUSEADDR, as our listeners do: connections in
 * TIME_WAIT do not count, a listener does.
 */
static bool
port_taken(const struct tp_addr *a, bool stream)
{
	int	fd, on = 1;
	bool	taken;

	if (tp_addr_port(a) == 0 || (fd = socket(a->ss.ss_family,
	    (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0)) == -1)
		return (false);
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (stream)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	taken = bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 &&
	    errno == EADDRINUSE;
	close(fd);
	return (taken);
}

/*
 * The next free socket of tp, bound to ip and port (SOCK_DGRAM or
 * SOCK_STREAM, non-blocking), filled in but not counted: the caller adds
 * its event, then tp->nsocks++.  NULL with err set on failure.
 */
struct tp_sock *
tp_sock_bind(struct tp *tp, enum tp_proto proto, const char *ip,
    uint16_t port, char *err, size_t errlen)
{
	struct tp_sock	*s;
	struct tp_addr	 a;
	int		 fd, on = 1, bufsz = 4 * 1024 * 1024;
	char		 canon[INET6_ADDRSTRLEN];

	if (tp->nsocks == TP_MAX_SOCKS) {
		snprintf(err, errlen, "too many listen sockets");
		return (NULL);
	}
	if (tp_addr_set(&a, (struct slice){ ip, strlen(ip) }, port) == -1) {
		snprintf(err, errlen, "bad address %s", ip);
		return (NULL);
	}
	if ((fd = socket(a.ss.ss_family, (proto == TP_UDP ? SOCK_DGRAM :
	    SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return (NULL);
	}
	if (a.ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (tp->reuseport && !tp->reuse_join &&
	    port_taken(&a, proto != TP_UDP)) {
		/* Another process's: refused as without SO_REUSEPORT. */
		snprintf(err, errlen, "bind %s %s port %u: %s",
		    tp_proto_param(proto), ip, port, strerror(EADDRINUSE));
		close(fd);
		return (NULL);
	}
	if (proto == TP_UDP) {
		if (tp->reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
			    sizeof(on));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (tp->reuseport)	/* each worker: its own listener */
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
			    sizeof(on));
	}
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) == -1) {
		snprintf(err, errlen, "bind %s %s port %u: %s",
		    tp_proto_param(proto), ip, port, strerror(errno));
		close(fd);
		return (NULL);
	}
	s = &tp->socks[tp->nsocks];
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->family = a.ss.ss_family;
	s->proto = proto;
	s->port = port;
	s->tp = tp;
	tp_addr_ip(&a, canon, sizeof(canon));
	memcpy(s->ip, canon, sizeof(s->ip));
	snprintf(s->hostport, sizeof(s->hostport), s->family == AF_INET6 ?
	    "[%s]:%u" : "%s:%u", canon, port);
	if (proto == TP_UDP)
		memcpy(s->name, s->hostport, sizeof(s->hostport));
	else
		snprintf(s->name, sizeof(s->name), s->family == AF_INET6 ?
		    "%s:[%s]:%u" : "%s:%s:%u", tp_proto_param(proto), canon,
		    port);
	return (s);
}

static const struct {
	const char	*via;
	const char	*param;
} proto_names[TP_NPROTO] = {
	[TP_UDP] = { "UDP", "udp" },
	[TP_TCP] = { "TCP", "tcp" },
	[TP_TLS] = { "TLS", "tls" },
	[TP_WS] = { "WS", "ws" },
	[TP_WSS] = { "WSS", "wss" },
};

const char *
tp_proto_via(enum tp_proto p)
{
	return (p < TP_NPROTO ? proto_names[p].via : "UDP");
}

const char *
tp_proto_param(enum tp_proto p)
{
	return (p < TP_NPROTO ? proto_names[p].param : "udp");
}

/* A transport name, either case: a Via's, a ;transport= or a config's. */
int
tp_proto_parse(struct slice s, enum tp_proto *out)
{
	unsigned	i;

	for (i = 0; i < TP_NPROTO; i++)
		if (strlen(proto_names[i].param) == s.len &&
		    strncasecmp(proto_names[i].param, s.p, s.len) == 0) {
			*out = (enum tp_proto)i;
			return (0);
		}
	return (-1);
}

/* No retransmissions over these (RFC 3261 17.1.1.2, 17.1.2.2). */
bool
tp_proto_reliable(enum tp_proto p)
{
	return (p != TP_UDP);
}

bool
tp_proto_secure(enum tp_proto p)
{
	return (p == TP_TLS || p == TP_WSS);
}

/* host is an IPv4 literal or a bracketed / bare IPv6 literal. */
int
tp_addr_set(struct tp_addr *a, struct slice host, uint16_t port)
{
	char			 tmp[INET6_ADDRSTRLEN + 2];
	struct sockaddr_in	*sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&a->ss;

	if (host.len > 2 && host.p[0] == '[' && host.p[host.len - 1] == ']') {
		host.p++;
		host.len -= 2;
	}
	if (host.len == 0 || host.len >= sizeof(tmp))
		return (-1);
	memcpy(tmp, host.p, host.len);
	tmp[host.len] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, tmp, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		a->len = sizeof(*sin);
		return (0);
	}
	if (inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		a->len = sizeof(*sin6);
		return (0);
	}
	return (-1);
}

void
tp_addr_ip(const struct tp_addr *a, char *buf, size_t len)
{
	const struct sockaddr_in	*sin = (const void *)&a->ss;
	const struct sockaddr_in6	*sin6 = (const void *)&a->ss;

	if (a->ss.ss_family == AF_INET && len >= INET_ADDRSTRLEN) {
		/* inet_ntop() goes through sprintf: this runs per message. */
		const unsigned char	*b = (const void *)&sin->sin_addr;
		size_t			 i, n = 0;

		for (i = 0; i < 4; i++) {
			n += fmt_uint(buf + n, b[i]);
			buf[n++] = i < 3 ? '.' : '\0';
		}
	} else if (a->ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &sin->sin_addr, buf, len);
	else if (a->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, len);
	else
		snprintf(buf, len, "?");
}

uint16_t
tp_addr_port(const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohs(((const struct sockaddr_in *)&a->ss)->sin_port));
	if (a->ss.ss_family == AF_INET6)
		return (ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port));
	return (0);
}

int
tp_addr_family(const struct tp_addr *a)
{
	return (a->ss.ss_family);
}

/* The transports tp listens on, as RESOLVE_PROTO() bits: 1 << proto. */
unsigned
tp_protos(const struct tp *tp)
{
	unsigned	i, bits = 0;

	for (i = 0; i < tp->nsocks; i++)
		bits |= 1u << tp->socks[i].proto;
	return (bits);
}

/* Same transport, address and port (the flags do not count). */
bool
tp_addr_eq(const struct tp_addr *a, const struct tp_addr *b)
{
	uint8_t	ka[17], kb[17];
	size_t	la, lb;

	if (a->proto != b->proto || a->ss.ss_family != b->ss.ss_family ||
	    tp_addr_port(a) != tp_addr_port(b))
		return (false);
	la = tp_addr_key(a, ka);
	lb = tp_addr_key(b, kb);
	return (la == lb && memcmp(ka, kb, la) == 0);
}

/* "ip:port" for UDP, "tcp:ip:port" for the others ("[ip]" for IPv6). */
void
tp_addr_str(const struct tp_addr *a, char *buf, size_t len)
{
	char	ip[INET6_ADDRSTRLEN];

	tp_addr_ip(a, ip, sizeof(ip));
	snprintf(buf, len, "%s%s%s%s%s:%u", a->proto == TP_UDP ? "" :
	    tp_proto_param(a->proto), a->proto == TP_UDP ? "" : ":",
	    a->ss.ss_family == AF_INET6 ? "[" : "", ip,
	    a->ss.ss_family == AF_INET6 ? "]" : "", tp_addr_port(a));
}

/* What tp_addr_str() wrote. */
int
tp_addr_parse(const char *s, struct tp_addr *a)
{
	const char	*colon, *first = strchr(s, ':');
	enum tp_proto	 proto = TP_UDP;
	struct slice	 ip;
	long		 port;
	char		*end;

	if (first != NULL && first != s && s[0] != '[' &&
	    tp_proto_parse((struct slice){ s, (size_t)(first - s) },
	    &proto) == 0)
		s = first + 1;
	if ((colon = strrchr(s, ':')) == NULL)
		return (-1);
	ip = (struct slice){ s, (size_t)(colon - s) };
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535)
		return (-1);
	if (tp_addr_set(a, ip, (uint16_t)port) == -1)
		return (-1);
	a->proto = (uint8_t)proto;
	return (0);
}

/*
 * The socket to send to dst from: pref if its family and transport fit,
 * else the first that does.
 */
struct tp_sock *
tp_sock_for(struct tp *tp, const struct tp_addr *dst, struct tp_sock *pref)
{
	unsigned	i;

	if (pref != NULL && pref->family == dst->ss.ss_family &&
	    pref->proto == dst->proto)
		return (pref);
	for (i = 0; i < tp->nsocks; i++)
		if (tp->socks[i].family == dst->ss.ss_family &&
		    tp->socks[i].proto == dst->proto)
			return (&tp->socks[i]);
	return (NULL);
}

/* Is host:port one of our listen sockets?  Port 0 means the default 5060. */
bool
tp_is_local(const struct tp *tp, struct slice host, uint16_t port)
{
	struct tp_addr	a, b;
	unsigned	i;

	if (port == 0)
		port = 5060;
	if (tp_addr_set(&a, host, port) == -1)
		return (false);
	for (i = 0; i < tp->nsocks; i++) {
		const struct tp_sock	*s = &tp->socks[i];

		if (s->port != port || s->family != a.ss.ss_family)
			continue;
		if (tp_addr_set(&b, (struct slice){ s->ip, strlen(s->ip) },
		    port) == 0 && b.len == a.len &&
		    memcmp(&b.ss, &a.ss, a.len) == 0)
			return (true);
	}
	return (false);
}

/* The address without its port, as a key: the family, then 4 or 16 bytes. */
size_t
tp_addr_key(const struct tp_addr *a, uint8_t key[17])
{
	const struct sockaddr_in	*s4 = (const void *)&a->ss;
	const struct sockaddr_in6	*s6 = (const void *)&a->ss;

	key[0] = (uint8_t)a->ss.ss_family;
	if (a->ss.ss_family == AF_INET) {
		memcpy(key + 1, &s4->sin_addr, 4);
		return (5);
	}
	memcpy(key + 1, &s6->sin6_addr, 16);
	return (17);
}

/*
 * An address packed for a token naming a flow: its transport, then
 * tp_addr_key()'s bytes (family, address), then the port, big-endian.
 * Returns the length (8 for IPv4, 20 for IPv6).
 */
size_t
tp_addr_pack(const struct tp_addr *a, uint8_t out[TP_ADDR_PACKED_MAX])
{
	uint16_t	port = tp_addr_port(a);
	size_t		n = 0;

	out[n++] = (uint8_t)a->proto;
	n += tp_addr_key(a, out + n);
	out[n++] = (uint8_t)(port >> 8);
	out[n++] = (uint8_t)port;
	return (n);
}

/*
 * tp_addr_pack()'s bytes in lower-case hex into out, NUL-terminated: the
 * number of digits, or 0 (out "") when len is too small.
 */
size_t
tp_addr_encode(const struct tp_addr *a, char *out, size_t len)
{
	uint8_t			raw[TP_ADDR_PACKED_MAX];
	size_t			n;

	n = tp_addr_pack(a, raw);
	return (tp_addr_encode_packed(raw, n, out, len));
}

/* The same from tp_addr_pack()'s n bytes in raw. */
size_t
tp_addr_encode_packed(const uint8_t *raw, size_t n, char *out, size_t len)
{
	if (len < 2 * n + 1) {
		if (len > 0)
			*out = '\0';
		return (0);
	}
	fmt_hex(out, raw, n);
	return (2 * n);
}

/*
 * Back from tp_addr_encode()'s hex (either case) into a (flags 0): 0, or
 * -1 when it is not one (not hex, a transport, family or length unknown).
 */
int
tp_addr_decode(struct slice hex, struct tp_addr *a)
{
	uint8_t			raw[TP_ADDR_PACKED_MAX];
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&a->ss;
	size_t			n, i;
	int			hi, lo;

	if (hex.len % 2 != 0 || (n = hex.len / 2) > sizeof(raw) || n < 2)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((hi = hex_digit(hex.p[2 * i])) == -1 ||
		    (lo = hex_digit(hex.p[2 * i + 1])) == -1)
			return (-1);
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	if (raw[0] >= TP_NPROTO)
		return (-1);
	memset(a, 0, sizeof(*a));
	a->proto = raw[0];
	if (raw[1] == AF_INET && n == 1 + 5 + 2) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, raw + 2, 4);
		s4->sin_port = htons((uint16_t)(raw[6] << 8 | raw[7]));
		a->len = sizeof(*s4);
	} else if (raw[1] == AF_INET6 && n == 1 + 17 + 2) {
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, raw + 2, 16);
		s6->sin6_port = htons((uint16_t)(raw[18] << 8 | raw[19]));
		a->len = sizeof(*s6);
	} else
		return (-1);
	return (0);
}
