#ifndef OSPREY_TIMER_H
#define OSPREY_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

/*
 * A one-shot timer embedded in its owner.  The callback only feeds an event
 * to the owner's state machine.  Unit tests link a fake-clock version of
 * these functions (tests/unit/fake.c) instead of timer.c.
 */
struct timer {
	struct event	  ev;
	void		(*fn)(void *);
	void		 *arg;
	uint64_t	  due_ms;	/* fake clock only */
	bool		  armed;	/* fake clock only */
};

void	timer_init(struct timer *, struct event_base *, void (*)(void *),
	    void *);
void	timer_set(struct timer *, uint32_t ms);	/* re-setting reschedules */
void	timer_stop(struct timer *);
bool	timer_pending(const struct timer *);
uint64_t timer_now_ms(void);		/* a monotonic clock */
uint64_t timer_clock_ms(const struct timer *);	/* the one timers count on */

#endif
