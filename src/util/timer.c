#include "config.h"

#include <time.h>

#include "timer.h"

static void
timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct timer	*tm = arg;

	(void)fd;
	(void)what;
	tm->fn(tm->arg);
}

void
timer_init(struct timer *tm, struct event_base *base, void (*fn)(void *),
    void *arg)
{
	tm->fn = fn;
	tm->arg = arg;
	evtimer_assign(&tm->ev, base, timer_fire, tm);
}

void
timer_set(struct timer *tm, uint32_t ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(&tm->ev, &tv);
}

void
timer_stop(struct timer *tm)
{
	evtimer_del(&tm->ev);
}

bool
timer_pending(const struct timer *tm)
{
	return (evtimer_pending(&tm->ev, NULL) != 0);
}

/*
 * The clock of tm's loop as its timers see it (cached at the last wake-up):
 * a deadline taken from it and set as a delay from it has passed on it
 * when the timer fires.  Milliseconds, from an arbitrary origin.
 */
uint64_t
timer_clock_ms(const struct timer *tm)
{
	struct timeval	now;

	if (event_base_gettimeofday_cached(event_get_base(&tm->ev),
	    &now) == -1)
		return (timer_now_ms());
	return ((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000);
}

uint64_t
timer_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}
