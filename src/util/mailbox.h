#ifndef OSPREY_MAILBOX_H
#define OSPREY_MAILBOX_H

#include <pthread.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/event_struct.h>

/*
 * Work handed to a loop from other threads: any thread posts a function
 * and its argument, the owner's loop runs them in order on its next turn.
 * An eventfd wakes the owner when its mailbox stops being empty, so a
 * busy owner takes a whole batch per wake-up.  Posting never blocks on
 * the owner's work (one short mutex), and the owner never waits for a
 * poster: the only waits between threads in ospreyd (mailbox_call())
 * are made by the main thread.
 *
 * A posted argument is one malloc'd block that its function frees; once
 * the mailbox is closed (its loop has ended) a post frees it unread, and
 * so does mailbox_cleanup() with what is still queued.
 */
typedef void mailbox_fn(void *);

struct mail {
	mailbox_fn	*fn;
	void		*arg;
};

struct mailbox {
	pthread_mutex_t	 mu;
	struct mail	*q;		/* posted, not yet taken */
	unsigned	 n, cap;
	struct mail	*run;		/* taken, being run */
	unsigned	 run_cap;
	int		 efd;
	struct event	 ev;
	bool		 closed;	/* posts are freed unread */
	unsigned long	 posted;	/* under mu */
};

int	mailbox_init(struct mailbox *, struct event_base *);
void	mailbox_cleanup(struct mailbox *);
void	mailbox_post(struct mailbox *, mailbox_fn *, void *);
bool	mailbox_post_max(struct mailbox *, mailbox_fn *, void *, unsigned);
bool	mailbox_call(struct mailbox *, mailbox_fn *, void *);
void	mailbox_close(struct mailbox *);
void	mailbox_drain(struct mailbox *);
unsigned long mailbox_posted(struct mailbox *);

#endif
