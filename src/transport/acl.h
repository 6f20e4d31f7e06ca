#ifndef OSPREY_ACL_H
#define OSPREY_ACL_H

#include <stdbool.h>
#include <stdint.h>

#include "tp.h"

#define ACL_MAX	64

/* A list of networks ("192.0.2.0/24", "2001:db8::/32", "127.0.0.1"). */
struct acl_net {
	int		 family;
	uint8_t		 addr[16];
	unsigned	 bits;
};

struct acl {
	struct acl_net	 net[ACL_MAX];
	unsigned	 n;
};

int	acl_add(struct acl *, const char *, char *, size_t);
bool	acl_match(const struct acl *, const struct tp_addr *);
void	acl_format(const struct acl_net *, char *, size_t);

#endif
