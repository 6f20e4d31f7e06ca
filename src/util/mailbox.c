/*
 * Mailboxes between event loops (see mailbox.h).  The wake-up is an
 * eventfd written only on the empty -> not empty edge; the owner swaps the
 * queue out under the mutex and runs it without holding the mutex, so a
 * function it runs may post again, to any mailbox, its own included.
 */
#include "config.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"
#include "xmalloc.h"

static void
mailbox_wake(evutil_socket_t fd, short what, void *arg)
{
	uint64_t	v;

	(void)what;
	if (read(fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
		log_warn("mailbox: read");
	mailbox_drain(arg);
}

int
mailbox_init(struct mailbox *mb, struct event_base *base)
{
	memset(mb, 0, sizeof(*mb));
	if ((mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return (-1);
	pthread_mutex_init(&mb->mu, NULL);
	event_assign(&mb->ev, base, mb->efd, EV_READ | EV_PERSIST,
	    mailbox_wake, mb);
	event_add(&mb->ev, NULL);
	return (0);
}

/* The owner's loop is over: later posts are freed unread. */
void
mailbox_close(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	mb->closed = true;
	pthread_mutex_unlock(&mb->mu);
}

/*
 * The owner's loop is over: what is still queued is freed unread (posted
 * arguments are single blocks; no mailbox_call() can be waiting, as only
 * the main thread makes those, and it is the one ending the loops).
 */
void
mailbox_cleanup(struct mailbox *mb)
{
	unsigned	i;

	mailbox_close(mb);
	for (i = 0; i < mb->n; i++)
		free(mb->q[i].arg);
	mb->n = 0;
	event_del(&mb->ev);
	close(mb->efd);
	pthread_mutex_destroy(&mb->mu);
	free(mb->q);
	free(mb->run);
	mb->q = mb->run = NULL;
}

/* Queue fn(arg) and wake the owner; false: closed, or max waiting. */
static bool
mailbox_enqueue(struct mailbox *mb, mailbox_fn *fn, void *arg,
    unsigned max)
{
	uint64_t	one = 1;
	bool		wake;

	pthread_mutex_lock(&mb->mu);
	if (mb->closed || (max > 0 && mb->n >= max)) {
		pthread_mutex_unlock(&mb->mu);
		return (false);
	}
	if (mb->n == mb->cap) {
		mb->cap = mb->cap ? mb->cap * 2 : 64;
		mb->q = xrealloc(mb->q, mb->cap * sizeof(*mb->q));
	}
	mb->q[mb->n++] = (struct mail){ fn, arg };
	mb->posted++;
	wake = mb->n == 1;
	pthread_mutex_unlock(&mb->mu);
	if (wake && write(mb->efd, &one, sizeof(one)) == -1 &&
	    errno != EAGAIN)
		log_warn("mailbox: write");
	return (true);
}

void
mailbox_post(struct mailbox *mb, mailbox_fn *fn, void *arg)
{
	mailbox_post_max(mb, fn, arg, 0);
}

/*
 * As mailbox_post(), unless max (0: no limit) posts are waiting already:
 * then arg is freed unread and false returned (a busy owner sheds load
 * as a full socket buffer would).
 */
bool
mailbox_post_max(struct mailbox *mb, mailbox_fn *fn, void *arg,
    unsigned max)
{
	if (mailbox_enqueue(mb, fn, arg, max))
		return (true);
	free(arg);
	return (false);
}

/* Run what is queued now, in the order it was posted. */
void
mailbox_drain(struct mailbox *mb)
{
	struct mail	*q;
	unsigned	 i, n, cap;

	pthread_mutex_lock(&mb->mu);
	q = mb->q;
	n = mb->n;
	cap = mb->cap;
	mb->q = mb->run;		/* the spare array takes new posts */
	mb->cap = mb->run_cap;
	mb->n = 0;
	mb->run = NULL;
	mb->run_cap = 0;
	pthread_mutex_unlock(&mb->mu);
	for (i = 0; i < n; i++)
		q[i].fn(q[i].arg);
	pthread_mutex_lock(&mb->mu);
	if (mb->run == NULL) {
		mb->run = q;
		mb->run_cap = cap;
	} else
		free(q);
	pthread_mutex_unlock(&mb->mu);
}

unsigned long
mailbox_posted(struct mailbox *mb)
{
	unsigned long	n;

	pthread_mutex_lock(&mb->mu);
	n = mb->posted;
	pthread_mutex_unlock(&mb->mu);
	return (n);
}

struct mail_call {
	mailbox_fn	*fn;
	void		*arg;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	bool		 done;
};

static void
mailbox_call_run(void *arg)
{
	struct mail_call	*c = arg;

	c->fn(c->arg);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/*
 * Run fn(arg) on the mailbox's loop and wait until it has run; false if
 * the loop is gone.  Only the main thread calls this, and never for its
 * own mailbox: a worker never waits for another thread.
 */
bool
mailbox_call(struct mailbox *mb, mailbox_fn *fn, void *arg)
{
	struct mail_call	 c = { fn, arg, PTHREAD_MUTEX_INITIALIZER,
				    PTHREAD_COND_INITIALIZER, false };

	if (!mailbox_enqueue(mb, mailbox_call_run, &c, 0))
		return (false);
	pthread_mutex_lock(&c.mu);
	while (!c.done)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.mu);
	return (true);
}
