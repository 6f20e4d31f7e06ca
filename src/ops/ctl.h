#ifndef OSPREY_CTL_H
#define OSPREY_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

#include "buf.h"

struct tp;

/* The defaults ospreyd and ospreyctl share. */
#define OSPREY_DEFAULT_CONF	"/etc/osprey/osprey.conf"
#define CTL_DEFAULT_SOCKET	"/run/osprey/ospreyd.sock"

struct ctl_settings {
	char	*socket;	/* owned; NULL: no control socket */
	mode_t	 mode;
};

/*
 * What `ospreyctl reload` runs (ospreyd's reload, passed in the way
 * tp_init() takes its receive function): 0 with what changed in the
 * buffer, a line each, or -1 with the error in err.
 */
typedef int ctl_reload_fn(void *, struct buf *, char *, size_t);

int	ctl_start(struct event_base *, const struct ctl_settings *,
	    ctl_reload_fn *, void *, char *, size_t);
int	ctl_set_settings(const struct ctl_settings *);
void	ctl_set_tp(const struct tp *);
void	ctl_stop(void);

#endif
