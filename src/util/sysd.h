#ifndef OSPREY_SYSD_H
#define OSPREY_SYSD_H

#include <stdint.h>

#include "buf.h"

/* The only place that knows about libsystemd. All calls are no-ops without it. */
int	sysd_journal(int prio, const char *msg);	/* -1: not available */
/* One entry of n fields, each "NAME=value" (any bytes); -1: not sent. */
int	sysd_journal_fields(const struct slice *, unsigned n);
void	sysd_notify(const char *state);
uint64_t sysd_watchdog_usec(void);	/* 0: no watchdog */
void	sysd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
