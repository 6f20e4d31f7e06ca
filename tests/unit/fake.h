#ifndef OSPREY_TEST_FAKE_H
#define OSPREY_TEST_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "tp.h"

/*
 * A fake clock and a capture-only transport for the FSM tests.  fake.c
 * defines timer_init, timer_set, timer_stop, timer_pending and tp_send, so
 * the versions in libosprey.a (timer.c, tp_udp.c) are not linked in.
 */

#define FAKE_SENT_MAX	256	/* datagrams kept: the last ones */

/* Clock: milliseconds since fake_reset(); time moves only when told. */
uint64_t	 fake_now(void);
/* Fire the timers due within ms, in due order, then stand at now + ms. */
void		 fake_advance(uint32_t ms);
/* Forget every armed timer, clear the capture, set the clock to 0. */
void		 fake_reset(void);
unsigned	 fake_armed(void);	/* timers armed now */

/* Transport: every tp_send, numbered from 0 since fake_sent_clear(). */
int		 fake_nsent(void);
const char	*fake_sent(int);	/* NUL terminated; NULL if forgotten */
size_t		 fake_sent_len(int);
uint64_t	 fake_sent_at(int);	/* fake_now() when it was sent */
const struct tp_addr *fake_sent_peer(int);
const char	*fake_sent_last(void);	/* NULL if nothing was sent */
void		 fake_sent_clear(void);
/* One UDP socket, 127.0.0.1:5060, without a descriptor: for tp_send(). */
void		 fake_tp_init(struct tp *);

#endif
