#ifndef OSPREY_CTL_H
#define OSPREY_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

struct ctl_settings {
	char	*socket;	/* owned; NULL: no control socket */
	mode_t	 mode;
};

/* What `ospreyctl reload` does (main.c's): 0, or -1 and err filled. */
typedef int ctl_reload_fn(char *, size_t);

int	ctl_start(struct event_base *, const struct ctl_settings *,
	    ctl_reload_fn *, char *, size_t);
void	ctl_set_settings(const struct ctl_settings *);
void	ctl_stop(void);

#endif
