#ifndef OSPREY_CTL_H
#define OSPREY_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

struct ctl_settings {
	char	*socket;	/* owned; NULL: no control socket */
	mode_t	 mode;
};

int	ctl_start(struct event_base *, const struct ctl_settings *, char *,
	    size_t);
void	ctl_set_settings(const struct ctl_settings *);
void	ctl_stop(void);

/* In main.c: what `ospreyctl reload` does. */
int	ospreyd_reload(char *, size_t);

#endif
