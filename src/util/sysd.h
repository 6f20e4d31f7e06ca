#ifndef OSPREY_SYSD_H
#define OSPREY_SYSD_H

#include <stdint.h>

/* The only place that knows about libsystemd. All calls are no-ops without it. */
int	sysd_journal(int prio, const char *msg);	/* -1: not available */
void	sysd_notify(const char *state);
uint64_t sysd_watchdog_usec(void);	/* 0: no watchdog */
void	sysd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
