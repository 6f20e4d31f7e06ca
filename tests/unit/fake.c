/*
 * A fake clock and a capture-only transport, linked into the FSM tests in
 * place of timer.c and the tp_send() of tp_udp.c.
 *
 * Armed timers form one list sorted by due time (stable: of two timers due
 * at the same time, the one set first fires first).  The list is intrusive:
 * the links live in the timer's struct event, which nothing else uses here,
 * so a timer costs no allocation and stopping one is O(1).  A timer must be
 * stopped before the object it lives in is freed, as with libevent.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "timer.h"
#include "tp.h"

struct fake_link {
	struct timer	*prev;
	struct timer	*next;
};

_Static_assert(sizeof(struct event) >= sizeof(struct fake_link),
    "struct event too small for the fake timer links");

struct fake_dgram {
	char		*p;	/* owned, NUL terminated */
	size_t		 len;
	struct tp_addr	 peer;
	uint64_t	 at_ms;
};

static uint64_t		 now_ms;
static struct timer	*head, *tail;
static unsigned		 narmed;
static struct fake_dgram sent[FAKE_SENT_MAX];
static int		 nsent;

/* The links are copied in and out: the storage is declared struct event. */
static struct fake_link
link_get(const struct timer *tm)
{
	struct fake_link	l;

	memcpy(&l, &tm->ev, sizeof(l));
	return (l);
}

static void
link_put(struct timer *tm, struct fake_link l)
{
	memcpy(&tm->ev, &l, sizeof(l));
}

static void
link_set_prev(struct timer *tm, struct timer *prev)
{
	struct fake_link	l = link_get(tm);

	l.prev = prev;
	link_put(tm, l);
}

static void
link_set_next(struct timer *tm, struct timer *next)
{
	struct fake_link	l = link_get(tm);

	l.next = next;
	link_put(tm, l);
}

static void
fake_unlink(struct timer *tm)
{
	struct fake_link	l = link_get(tm);

	if (l.prev != NULL)
		link_set_next(l.prev, l.next);
	else
		head = l.next;
	if (l.next != NULL)
		link_set_prev(l.next, l.prev);
	else
		tail = l.prev;
	link_put(tm, (struct fake_link){ NULL, NULL });
	tm->armed = false;
	narmed--;
}

/* Insert after every timer due at or before tm: scan back from the tail. */
static void
fake_link_in(struct timer *tm)
{
	struct timer	*after = tail;

	while (after != NULL && after->due_ms > tm->due_ms)
		after = link_get(after).prev;
	if (after == NULL) {
		link_put(tm, (struct fake_link){ NULL, head });
		if (head != NULL)
			link_set_prev(head, tm);
		head = tm;
	} else {
		struct timer	*next = link_get(after).next;

		link_put(tm, (struct fake_link){ after, next });
		link_set_next(after, tm);
		if (next != NULL)
			link_set_prev(next, tm);
	}
	if (link_get(tm).next == NULL)
		tail = tm;
	tm->armed = true;
	narmed++;
}

void
timer_init(struct timer *tm, struct event_base *base, void (*fn)(void *),
    void *arg)
{
	(void)base;
	memset(&tm->ev, 0, sizeof(tm->ev));
	tm->fn = fn;
	tm->arg = arg;
	tm->due_ms = 0;
	tm->armed = false;
}

void
timer_set(struct timer *tm, uint32_t ms)
{
	if (tm->armed)
		fake_unlink(tm);
	tm->due_ms = now_ms + ms;
	fake_link_in(tm);
}

void
timer_stop(struct timer *tm)
{
	if (tm->armed)
		fake_unlink(tm);
}

bool
timer_pending(const struct timer *tm)
{
	return (tm->armed);
}

uint64_t
fake_now(void)
{
	return (now_ms);
}

uint64_t
timer_now_ms(void)
{
	return (now_ms);
}

uint64_t
timer_clock_ms(const struct timer *tm)
{
	(void)tm;
	return (now_ms);
}

unsigned
fake_armed(void)
{
	return (narmed);
}

/*
 * Timers set by a callback while we advance fire too if they fall due
 * before the end; each fires with the clock at its own due time.
 */
void
fake_advance(uint32_t ms)
{
	uint64_t	 end = now_ms + ms;
	struct timer	*tm;

	while ((tm = head) != NULL && tm->due_ms <= end) {
		fake_unlink(tm);
		now_ms = tm->due_ms;
		tm->fn(tm->arg);
	}
	now_ms = end;
}

void
fake_reset(void)
{
	while (head != NULL)
		fake_unlink(head);
	now_ms = 0;
	fake_sent_clear();
}

int
tp_send(const struct tp_sock *s, const struct tp_addr *dst, const void *p,
    size_t len)
{
	return (tp_send_to(s, dst, NULL, p, len));
}

/* A response's send: captured as sent to dst (no connection to lose). */
int
tp_send_alt(const struct tp_sock *s, const struct tp_addr *dst,
    const struct tp_addr *alt, const void *p, size_t len)
{
	(void)alt;
	return (tp_send_to(s, dst, NULL, p, len));
}

int
tp_send_to(const struct tp_sock *s, const struct tp_addr *dst,
    const char *name, const void *p, size_t len)
{
	struct fake_dgram	*d = &sent[nsent % FAKE_SENT_MAX];

	(void)s;
	(void)name;
	free(d->p);
	if ((d->p = malloc(len + 1)) == NULL)
		abort();
	memcpy(d->p, p, len);
	d->p[len] = '\0';
	d->len = len;
	d->at_ms = now_ms;
	if (dst != NULL)
		d->peer = *dst;
	else
		memset(&d->peer, 0, sizeof(d->peer));
	nsent++;
	return (0);
}

static const struct fake_dgram *
fake_dgram(int i)
{
	if (i < 0 || i >= nsent || nsent - i > FAKE_SENT_MAX)
		return (NULL);
	return (&sent[i % FAKE_SENT_MAX]);
}

int
fake_nsent(void)
{
	return (nsent);
}

const char *
fake_sent(int i)
{
	const struct fake_dgram	*d = fake_dgram(i);

	return (d != NULL ? d->p : NULL);
}

size_t
fake_sent_len(int i)
{
	const struct fake_dgram	*d = fake_dgram(i);

	return (d != NULL ? d->len : 0);
}

uint64_t
fake_sent_at(int i)
{
	const struct fake_dgram	*d = fake_dgram(i);

	return (d != NULL ? d->at_ms : UINT64_MAX);
}

const struct tp_addr *
fake_sent_peer(int i)
{
	const struct fake_dgram	*d = fake_dgram(i);

	return (d != NULL ? &d->peer : NULL);
}

const char *
fake_sent_last(void)
{
	return (fake_sent(nsent - 1));
}

void
fake_sent_clear(void)
{
	int	i;

	for (i = 0; i < FAKE_SENT_MAX; i++) {
		free(sent[i].p);
		sent[i].p = NULL;
		sent[i].len = 0;
	}
	nsent = 0;
}

void
fake_tp_init(struct tp *tp)
{
	struct tp_sock	*s = &tp->socks[0];

	memset(tp, 0, sizeof(*tp));
	tp->nsocks = 1;
	s->fd = -1;
	s->family = AF_INET;
	s->port = 5060;
	s->tp = tp;
	strcpy(s->ip, "127.0.0.1");
	strcpy(s->hostport, "127.0.0.1:5060");
}
