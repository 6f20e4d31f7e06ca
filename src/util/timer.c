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
timer_set_lazy(struct timer *tm, uint32_t ms)
{
	struct timeval	now;
	uint64_t	at, due;

	/* The loop's own clock, which evtimer_add() counts from. */
	if (ms == 0 || event_base_gettimeofday_cached(event_get_base(&tm->ev),
	    &now) == -1) {
		timer_set(tm, ms);
		return;
	}
	at = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;
	due = (at + ms + TIMER_LAZY_MS - 1) / TIMER_LAZY_MS * TIMER_LAZY_MS;
	timer_set(tm, (uint32_t)(due - at));
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

uint64_t
timer_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}
