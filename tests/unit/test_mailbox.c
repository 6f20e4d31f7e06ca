/* Unit tests: mailbox.c (work handed between loops) and shard.c. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/event.h>

#include "check_util.h"
#include "mailbox.h"
#include "shard.h"

#define POSTERS		4
#define PER_POSTER	5000

static unsigned	count_runs;

/* What the owner saw: per poster, the last sequence number run. */
struct seen {
	int		 last[POSTERS];
	unsigned	 runs;
	bool		 in_order;
	struct event_base *base;
};

struct item {
	struct seen	*seen;
	int		 poster, seq;
};

static void
item_run(void *arg)
{
	struct item	*it = arg;
	struct seen	*s = it->seen;

	if (it->seq != s->last[it->poster] + 1)
		s->in_order = false;
	s->last[it->poster] = it->seq;
	if (++s->runs == POSTERS * PER_POSTER)
		event_base_loopbreak(s->base);
	free(it);
}

struct poster {
	struct mailbox	*mb;
	struct seen	*seen;
	int		 id;
};

static void *
poster_main(void *arg)
{
	struct poster	*p = arg;
	struct item	*it;
	int		 i;

	for (i = 0; i < PER_POSTER; i++) {
		it = malloc(sizeof(*it));
		it->seen = p->seen;
		it->poster = p->id;
		it->seq = i;
		mailbox_post(p->mb, item_run, it);
	}
	return (NULL);
}

/* Four threads post at once: every item runs once, each poster's in order. */
START_TEST(posts_from_threads_run_in_order)
{
	struct event_base	*base = event_base_new();
	struct mailbox		 mb;
	struct seen		 seen;
	struct poster		 p[POSTERS];
	pthread_t		 th[POSTERS];
	int			 i;

	memset(&seen, 0, sizeof(seen));
	for (i = 0; i < POSTERS; i++)
		seen.last[i] = -1;
	seen.in_order = true;
	seen.base = base;
	ck_assert_int_eq(mailbox_init(&mb, base), 0);
	for (i = 0; i < POSTERS; i++) {
		p[i] = (struct poster){ &mb, &seen, i };
		pthread_create(&th[i], NULL, poster_main, &p[i]);
	}
	event_base_dispatch(base);
	for (i = 0; i < POSTERS; i++)
		pthread_join(th[i], NULL);
	mailbox_drain(&mb);
	ck_assert_uint_eq(seen.runs, POSTERS * PER_POSTER);
	ck_assert(seen.in_order);
	for (i = 0; i < POSTERS; i++)
		ck_assert_int_eq(seen.last[i], PER_POSTER - 1);
	ck_assert_uint_eq(mailbox_posted(&mb), POSTERS * PER_POSTER);
	mailbox_cleanup(&mb);
	event_base_free(base);
}
END_TEST

struct owner {
	struct event_base	*base;
	struct mailbox		 mb;
	pthread_t		 self;
	pthread_mutex_t		 mu;
	bool			 up;
};

static void *
owner_main(void *arg)
{
	struct owner	*o = arg;

	event_base_dispatch(o->base);
	return (NULL);
}

struct call_arg {
	pthread_t	 ran_on;
	int		 value;
};

static void
call_fn(void *arg)
{
	struct call_arg	*c = arg;

	c->ran_on = pthread_self();
	c->value *= 2;
}

static void
quit_fn(void *arg)
{
	event_base_loopbreak(arg);
}

/* mailbox_call runs on the owner's thread and returns once it has run. */
START_TEST(call_runs_on_owner_and_waits)
{
	struct owner	 o;
	struct call_arg	 c = { 0, 21 };
	void		*q;

	memset(&o, 0, sizeof(o));
	o.base = event_base_new();
	ck_assert_int_eq(mailbox_init(&o.mb, o.base), 0);
	pthread_create(&o.self, NULL, owner_main, &o);
	ck_assert(mailbox_call(&o.mb, call_fn, &c));
	ck_assert_int_eq(c.value, 42);
	ck_assert(pthread_equal(c.ran_on, o.self));
	ck_assert(!pthread_equal(c.ran_on, pthread_self()));
	q = o.base;
	ck_assert(mailbox_call(&o.mb, quit_fn, q));
	pthread_join(o.self, NULL);
	mailbox_close(&o.mb);
	ck_assert(!mailbox_call(&o.mb, call_fn, &c));	/* gone: not run */
	ck_assert_int_eq(c.value, 42);
	mailbox_post(&o.mb, call_fn, malloc(16));	/* freed unread */
	mailbox_cleanup(&o.mb);
	event_base_free(o.base);
}
END_TEST

static void
count_fn(void *arg)
{
	free(arg);
	count_runs++;
}

/* A bounded post sheds what finds max waiting; the rest runs. */
START_TEST(post_max_sheds_load)
{
	struct event_base	*base = event_base_new();
	struct mailbox		 mb;
	int			 i, taken = 0;

	ck_assert_int_eq(mailbox_init(&mb, base), 0);
	count_runs = 0;
	for (i = 0; i < 5; i++)
		taken += mailbox_post_max(&mb, count_fn, malloc(8), 3);
	ck_assert_int_eq(taken, 3);
	mailbox_drain(&mb);
	ck_assert_uint_eq(count_runs, 3);
	ck_assert(mailbox_post_max(&mb, count_fn, malloc(8), 3));
	mailbox_drain(&mb);
	ck_assert_uint_eq(count_runs, 4);
	mailbox_cleanup(&mb);
	event_base_free(base);
}
END_TEST

/* The worker of a Call-ID: the same for the same bytes, spread over all. */
START_TEST(shard_spreads_call_ids)
{
	unsigned	hits[4] = { 0 }, i, w;
	char		id[32];

	shard_setup(1);
	ck_assert_uint_eq(shard_of("abc", 3), 0);
	shard_setup(4);
	ck_assert_uint_eq(shard_count(), 4);
	for (i = 0; i < 4000; i++) {
		snprintf(id, sizeof(id), "%u@host", i);
		w = shard_of(id, strlen(id));
		ck_assert_uint_lt(w, 4);
		ck_assert_uint_eq(shard_of(id, strlen(id)), w);
		hits[w]++;
	}
	for (i = 0; i < 4; i++)
		ck_assert_uint_gt(hits[i], 800);	/* ~1000 each */
	shard_set_self(3);
	ck_assert_uint_eq(shard_self(), 3);
	shard_setup(1);
}
END_TEST

int
main(void)
{
	TCase	*tc = check_case("mailbox");

	tcase_set_timeout(tc, 60);
	check_add(tc, posts_from_threads_run_in_order,
	    call_runs_on_owner_and_waits, post_max_sheds_load,
	    shard_spreads_call_ids);
	return (check_run("mailbox"));
}
