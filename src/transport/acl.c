/* Networks for trusted sources and rate-limit exemptions. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"

/* Add "addr" or "addr/bits"; fills err and returns -1 when it is neither. */
int
acl_add(struct acl *a, const char *s, char *err, size_t errlen)
{
	struct acl_net	 n;
	char		 ip[INET6_ADDRSTRLEN + 1], *end;
	const char	*slash = strchr(s, '/');
	size_t		 iplen = slash ? (size_t)(slash - s) : strlen(s);
	long		 bits;

	if (a->n == ACL_MAX) {
		snprintf(err, errlen, "at most %d networks", ACL_MAX);
		return (-1);
	}
	if (iplen >= sizeof(ip))
		goto bad;
	memcpy(ip, s, iplen);
	ip[iplen] = '\0';
	memset(&n, 0, sizeof(n));
	if (inet_pton(AF_INET, ip, n.addr) == 1) {
		n.family = AF_INET;
		n.bits = 32;
	} else if (inet_pton(AF_INET6, ip, n.addr) == 1) {
		n.family = AF_INET6;
		n.bits = 128;
	} else
		goto bad;
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits < 0 ||
		    bits > (long)n.bits)
			goto bad;
		n.bits = (unsigned)bits;
	}
	a->net[a->n++] = n;
	return (0);
bad:
	snprintf(err, errlen, "\"%s\" is not an address or a network "
	    "(192.0.2.0/24, 2001:db8::/32)", s);
	return (-1);
}

static bool
net_match(const struct acl_net *n, const uint8_t *addr)
{
	unsigned	full = n->bits / 8, rest = n->bits % 8;

	if (memcmp(n->addr, addr, full) != 0)
		return (false);
	if (rest == 0)
		return (true);
	return (((n->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0);
}

bool
acl_match(const struct acl *a, const struct tp_addr *ta)
{
	const struct sockaddr_in	*s4 = (const void *)&ta->ss;
	const struct sockaddr_in6	*s6 = (const void *)&ta->ss;
	uint8_t				 v4[4];
	const uint8_t			*p6 = s6->sin6_addr.s6_addr;
	unsigned			 i;
	static const uint8_t		 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
					     0, 0, 0xff, 0xff };

	if (ta->ss.ss_family == AF_INET)
		memcpy(v4, &s4->sin_addr, 4);
	else if (memcmp(p6, mapped, 12) == 0)
		memcpy(v4, p6 + 12, 4);		/* ::ffff:a.b.c.d */
	for (i = 0; i < a->n; i++) {
		const struct acl_net	*n = &a->net[i];

		if (n->family == AF_INET && (ta->ss.ss_family == AF_INET ||
		    memcmp(p6, mapped, 12) == 0)) {
			if (net_match(n, v4))
				return (true);
		} else if (n->family == AF_INET6 &&
		    ta->ss.ss_family == AF_INET6 && net_match(n, p6))
			return (true);
	}
	return (false);
}

void
acl_format(const struct acl_net *n, char *out, size_t len)
{
	char	ip[INET6_ADDRSTRLEN];

	inet_ntop(n->family, n->addr, ip, sizeof(ip));
	snprintf(out, len, "%s/%u", ip, n->bits);
}
