/*
 * Worker loops (see worker.h and doc/HACKING.md "Workers").  Nothing here
 * is shared without an owner: a worker's tables are touched only by its
 * own thread; others reach them through its mailbox.  The main thread
 * alone waits on the others (worker_each, worker_pause, worker_stop).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dialog.h"
#include "log.h"
#include "proxy.h"
#include "shard.h"
#include "txn.h"
#include "worker.h"
#include "xmalloc.h"

#define MAX_WORKERS	64
#define HANDOFF_MAX	32768	/* datagrams waiting for one worker */

struct worker {
	unsigned		 id;
	pthread_t		 th;
	struct event_base	*base;
	struct tp		*tp;
	struct tp		 own_tp;	/* workers 1..N-1 */
	struct mailbox		 mb;
	struct worker_stats	 st;		/* written by its thread */
	int			 rc;		/* setup: 0, -1 */
	char			 err[256];
	bool			 started;
};

static struct {
	struct worker		*w;		/* owned, n of them */
	unsigned		 n;
	worker_setup_fn		*setup;
	worker_teardown_fn	*teardown;
	void			*arg;
	pthread_mutex_t		 mu;		/* start-up and pauses */
	pthread_cond_t		 cv;
	bool			 ready;		/* the one starting is set up */
	bool			 hold;		/* paused ones wait */
	unsigned		 paused;
} W = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int	remote_send(void *, unsigned, unsigned,
		    const struct tp_addr *, const struct tp_addr *,
		    const char *, const void *, size_t);
static void	remote_keep(void *, unsigned, const struct tp_addr *,
		    uint32_t);
static void	remote_close(void *, unsigned, const struct tp_addr *,
		    const char *);

static const struct tp_remote remote_ops = {
	remote_send, remote_keep, remote_close, NULL
};

static struct worker *
worker_me(void)
{
	return (&W.w[shard_self()]);
}

/*
 * A header line's value if the line is name (or its compact form c):
 * the bytes after the colon, blanks trimmed; NULL when it is not.
 */
static const char *
peek_value(const char *p, const char *nl, const char *name, size_t nlen,
    char c, const char **end)
{
	const char	*v, *e;
	size_t		 n = (size_t)(nl - p);

	if (n > nlen && strncasecmp(p, name, nlen) == 0)
		v = p + nlen;
	else if (c != 0 && n > 1 && (*p | 0x20) == c)
		v = p + 1;
	else
		return (NULL);
	while (v < nl && (*v == ' ' || *v == '\t'))
		v++;
	if (v == nl || *v != ':')
		return (NULL);
	for (v++; v < nl && (*v == ' ' || *v == '\t'); v++)
		;
	for (e = nl; e > v && (e[-1] == '\r' || e[-1] == ' ' ||
	    e[-1] == '\t'); e--)
		;
	*end = e;
	return (v);
}

/*
 * Whose message is this, found without parsing it: REGISTER requests and
 * their responses are the main loop's (it owns the registrar); everything
 * else belongs to the worker of the first Call-ID header's value.  No
 * Call-ID: the worker it came in on (which answers 400).
 */
static unsigned
peek_owner(const char *p, size_t len)
{
	const char	*end = p + len, *nl, *v, *e;
	struct slice	 callid = { NULL, 0 };
	bool		 response = len > 8 && memcmp(p, "SIP/2.0 ", 8) == 0;
	bool		 cseq = !response;

	if (!response && len > 9 && memcmp(p, "REGISTER ", 9) == 0)
		return (0);
	if ((nl = memchr(p, '\n', len)) == NULL)
		return (shard_self());
	for (p = nl + 1; p < end && (callid.p == NULL || !cseq);
	    p = nl + 1) {
		if (*p == '\r' || *p == '\n')
			break;		/* the end of the headers */
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (callid.p == NULL && (v = peek_value(p, nl, "Call-ID", 7,
		    'i', &e)) != NULL)
			callid = (struct slice){ v, (size_t)(e - v) };
		else if (!cseq && (v = peek_value(p, nl, "CSeq", 4, 0,
		    &e)) != NULL) {
			cseq = true;
			while (v < e && *v >= '0' && *v <= '9')
				v++;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			if (e - v == 8 && memcmp(v, "REGISTER", 8) == 0)
				return (0);
		}
	}
	if (callid.len == 0)
		return (shard_self());
	return (shard_of(callid.p, callid.len));
}

/* A message handed to its owner: the socket by index, bytes copied. */
struct handoff {
	unsigned	 sock;
	struct tp_addr	 src;
	size_t		 len;
	char		 data[];
};

static void
handoff_run(void *arg)
{
	struct handoff	*h = arg;
	struct worker	*w = worker_me();

	w->st.handed_in++;
	proxy_recv(NULL, &w->tp->socks[h->sock], &h->src, h->data, h->len);
	free(h);
}

/* The tp receive callback of every worker: handle it, or hand it over. */
void
worker_recv(void *arg, struct tp_sock *sock, const struct tp_addr *src,
    const char *data, size_t len)
{
	struct handoff	*h;
	unsigned	 owner;

	if (W.n <= 1 || (owner = peek_owner(data, len)) == shard_self()) {
		proxy_recv(arg, sock, src, data, len);
		return;
	}
	h = xmalloc(sizeof(*h) + len + 1);
	h->sock = (unsigned)(sock - sock->tp->socks);
	h->src = *src;
	h->len = len;
	memcpy(h->data, data, len);
	h->data[len] = '\0';
	/* A datagram waits at most as a socket buffer would hold it. */
	if (!mailbox_post_max(&W.w[owner].mb, handoff_run, h,
	    src->proto == TP_UDP ? HANDOFF_MAX : 0)) {
		worker_me()->st.handoff_dropped++;
		log_peer("worker %u: worker %u has %u datagrams waiting, one "
		    "from %s dropped", shard_self(), owner, HANDOFF_MAX,
		    sock->name);
		return;
	}
	worker_me()->st.handed_out++;
}

/* ---- stream traffic goes through the connection's owner ---- */

struct stream_op {
	unsigned	 sock;
	struct tp_addr	 dst;
	struct tp_addr	 alt;		/* alt.len 0: none */
	uint32_t	 keep_ms;
	size_t		 len;		/* bytes, after the name */
	char		 name[256];	/* TLS name, or the close reason */
	char		 data[];
};

static struct stream_op *
stream_op_new(const struct tp_addr *dst, const char *name, size_t len)
{
	struct stream_op	*op = xmalloc(sizeof(*op) + len);

	memset(op, 0, sizeof(*op));
	op->dst = *dst;
	op->len = len;
	if (name != NULL)
		snprintf(op->name, sizeof(op->name), "%s", name);
	return (op);
}

static void
stream_send_run(void *arg)
{
	struct stream_op	*op = arg;
	struct tp		*tp = worker_me()->tp;

	if (op->sock < tp->nsocks)
		tp_stream_send_handed(&tp->socks[op->sock], &op->dst,
		    op->alt.len != 0 ? &op->alt : NULL,
		    op->name[0] ? op->name : NULL, op->data, op->len);
	free(op);
}

static int
remote_send(void *arg, unsigned owner, unsigned sock,
    const struct tp_addr *dst, const struct tp_addr *alt, const char *name,
    const void *p, size_t len)
{
	struct stream_op	*op = stream_op_new(dst, name, len);

	(void)arg;
	op->sock = sock;
	if (alt != NULL)
		op->alt = *alt;
	memcpy(op->data, p, len);
	worker_me()->st.stream_out++;
	mailbox_post(&W.w[owner].mb, stream_send_run, op);
	return (0);
}

static void
stream_keep_run(void *arg)
{
	struct stream_op	*op = arg;

	tp_conn_keep(worker_me()->tp, &op->dst, op->keep_ms);
	free(op);
}

static void
remote_keep(void *arg, unsigned owner, const struct tp_addr *a, uint32_t ms)
{
	struct stream_op	*op = stream_op_new(a, NULL, 0);

	(void)arg;
	op->keep_ms = ms;
	mailbox_post(&W.w[owner].mb, stream_keep_run, op);
}

static void
stream_close_run(void *arg)
{
	struct stream_op	*op = arg;

	tp_conn_close(worker_me()->tp, &op->dst, op->name);
	free(op);
}

static void
remote_close(void *arg, unsigned owner, const struct tp_addr *a,
    const char *why)
{
	(void)arg;
	mailbox_post(&W.w[owner].mb, stream_close_run,
	    stream_op_new(a, why, 0));
}

/* A worker's connection is gone: every other worker hears it. */
static void
lost_run(void *arg)
{
	struct tp_addr	*a = arg;
	struct tp	*tp = worker_me()->tp;

	if (tp->lost != NULL)
		tp->lost(tp->arg, a);
	free(a);
}

static void
lost_fwd(void *arg, const struct tp_addr *a)
{
	struct tp_addr	*copy;
	unsigned	 i, self = shard_self();

	(void)arg;
	for (i = 0; i < W.n; i++) {
		if (i == self)
			continue;
		copy = xmalloc(sizeof(*copy));
		*copy = *a;
		mailbox_post(&W.w[i].mb, lost_run, copy);
	}
}

/*
 * A worker's connection is about to close after an error: every other
 * worker is gone round once first (mailboxes are in order), so the
 * answers to what was read from it before, sent by the calls' owners,
 * are already in the owner's mailbox when it closes.
 */
struct barrier {
	struct tp_addr	 peer;
	uint64_t	 id;
	unsigned	 owner;
	unsigned	 left;		/* the owner's only */
};

static void
barrier_back(void *arg)
{
	struct barrier	**bp = arg, *b = *bp;

	free(bp);
	if (--b->left > 0)
		return;
	tp_conn_drained(worker_me()->tp, &b->peer, b->id);
	free(b);
}

static void
barrier_run(void *arg)
{
	struct barrier	**bp = arg;

	mailbox_post(&W.w[(*bp)->owner].mb, barrier_back, bp);
}

static void
barrier_start(void *arg, const struct tp_addr *peer, uint64_t id)
{
	struct barrier	 *b = xmalloc(sizeof(*b)), **bp;
	unsigned	  i;

	(void)arg;
	b->peer = *peer;
	b->id = id;
	b->owner = shard_self();
	b->left = W.n - 1;
	for (i = 0; i < W.n; i++) {
		if (i == b->owner)
			continue;
		bp = xmalloc(sizeof(*bp));
		*bp = b;
		mailbox_post(&W.w[i].mb, barrier_run, bp);
	}
}

/* ---- loops ---- */

/*
 * The event loop, a turn at a time: when the callbacks of a turn have run,
 * the datagrams they queued leave together and the transactions that ended
 * are freed, before the loop waits again (no zero-timeout wake-up for them,
 * nor a zero timer set and deleted in each turn).
 */
void
worker_run(struct event_base *base, struct tp *tp)
{
	tp_set_driven(tp);
	txn_set_driven();
	for (;;) {
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			break;		/* error, or nothing left to wait for */
		tp_flush(tp);
		txn_reap();
		tp_flush(tp);	/* what the owners let go sent */
		if (event_base_got_break(base) || event_base_got_exit(base))
			break;
	}
}

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;
	sigset_t	 set;

	sigfillset(&set);	/* signals are the main thread's */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	shard_set_self(w->id);
	if ((w->base = event_base_new()) == NULL)
		fatalx("worker %u: event_base_new failed", w->id);
	tp_init(&w->own_tp, w->base, worker_recv, NULL);
	w->tp = &w->own_tp;
	w->tp->worker = w->id;
	w->tp->remote = &remote_ops;
	w->tp->lost_fwd = lost_fwd;
	w->tp->barrier = barrier_start;
	w->tp->reuseport = true;
	w->tp->reuse_join = true;	/* worker 0 has bound them */
	if (mailbox_init(&w->mb, w->base) == -1)
		fatal("worker %u: eventfd", w->id);
	w->rc = W.setup(w->id, w->base, w->tp, W.arg, w->err,
	    sizeof(w->err));
	pthread_mutex_lock(&W.mu);
	W.ready = true;
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
	if (w->rc == 0) {
		worker_run(w->base, w->tp);
		mailbox_close(&w->mb);
		W.teardown(w->id, W.arg);
	}
	mailbox_cleanup(&w->mb);
	tp_close(w->tp);
	event_base_free(w->base);
	return (NULL);
}

/*
 * Start workers 1..n-1, one at a time (each is set up before the next
 * starts); the calling thread is worker 0, with base0 and tp0 already set
 * up.  -1 with err set when one cannot be set up (those started are
 * stopped again).
 */
int
worker_start(unsigned n, struct event_base *base0, struct tp *tp0,
    worker_setup_fn *setup, worker_teardown_fn *teardown, void *arg,
    char *err, size_t errlen)
{
	struct worker	*w;
	unsigned	 i;

	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	W.w = xcalloc(n, sizeof(*W.w));
	W.n = n;
	W.setup = setup;
	W.teardown = teardown;
	W.arg = arg;
	w = &W.w[0];
	w->base = base0;
	w->tp = tp0;
	w->started = true;
	if (mailbox_init(&w->mb, base0) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return (-1);
	}
	if (n > 1) {
		tp0->remote = &remote_ops;
		tp0->lost_fwd = lost_fwd;
		tp0->barrier = barrier_start;
	}
	for (i = 1; i < n; i++) {
		w = &W.w[i];
		w->id = i;
		W.ready = false;
		if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "worker %u: cannot start a "
			    "thread", i);
			goto fail;
		}
		w->started = true;
		pthread_mutex_lock(&W.mu);
		while (!W.ready)
			pthread_cond_wait(&W.cv, &W.mu);
		pthread_mutex_unlock(&W.mu);
		if (w->rc == -1) {
			pthread_join(w->th, NULL);
			w->started = false;
			snprintf(err, errlen, "worker %u: %s", i, w->err);
			goto fail;
		}
	}
	if (n > 1)
		log_info("ospreyd: %u workers", n);
	return (0);
fail:
	worker_stop();
	return (-1);
}

/* The main thread: fn(arg) on every worker, one after the other. */
void
worker_each(mailbox_fn *fn, void *arg)
{
	unsigned	i;

	fn(arg);
	for (i = 1; i < W.n; i++)
		if (W.w[i].started)
			mailbox_call(&W.w[i].mb, fn, arg);
}

static void
pause_run(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&W.mu);
	W.paused++;
	pthread_cond_broadcast(&W.cv);
	while (W.hold)
		pthread_cond_wait(&W.cv, &W.mu);
	W.paused--;
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
}

/*
 * The main thread: every other worker waits between two loop turns until
 * worker_resume(), so that shared settings (a reload) change under nobody.
 */
void
worker_pause(void)
{
	unsigned	i, want = 0;

	pthread_mutex_lock(&W.mu);
	W.hold = true;
	pthread_mutex_unlock(&W.mu);
	for (i = 1; i < W.n; i++)
		if (W.w[i].started) {
			want++;
			mailbox_post(&W.w[i].mb, pause_run,
			    NULL);
		}
	pthread_mutex_lock(&W.mu);
	while (W.paused < want)
		pthread_cond_wait(&W.cv, &W.mu);
	pthread_mutex_unlock(&W.mu);
}

void
worker_resume(void)
{
	pthread_mutex_lock(&W.mu);
	W.hold = false;
	pthread_cond_broadcast(&W.cv);
	while (W.paused > 0)
		pthread_cond_wait(&W.cv, &W.mu);
	pthread_mutex_unlock(&W.mu);
}

static void
quit_run(void *arg)
{
	(void)arg;
	event_base_loopbreak(worker_me()->base);
}

/* The main thread: workers 1..N-1 leave their loops and are gone. */
void
worker_stop(void)
{
	unsigned	i;

	/* One at a time: c-ares' library clean-up is not thread-safe. */
	for (i = 1; i < W.n; i++)
		if (W.w[i].started) {
			mailbox_post(&W.w[i].mb, quit_run, NULL);
			pthread_join(W.w[i].th, NULL);
			W.w[i].started = false;
		}
	if (W.n > 0) {
		W.w[0].tp->remote = NULL;
		W.w[0].tp->lost_fwd = NULL;
		W.w[0].tp->barrier = NULL;
		mailbox_cleanup(&W.w[0].mb);
	}
	free(W.w);
	W.w = NULL;
	W.n = 0;
}

static void
stats_of(const struct worker *w, struct worker_stats *out)
{
	*out = w->st;
	out->connections = w->tp->nconns;
	out->accepted = w->tp->st.accepted;
}

static void
stats_run(void *arg)
{
	stats_of(worker_me(), arg);
}

/* The main thread: worker id's counters. */
void
worker_stats(unsigned id, struct worker_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (id >= W.n)
		return;
	if (id == 0)
		stats_of(&W.w[0], out);
	else if (W.w[id].started)
		mailbox_call(&W.w[id].mb, stats_run, out);
}

/* ---- the main thread's view of every worker ---- */

struct sum {
	struct proxy_stats	 ps;
	struct worker_totals	 t;
};

static void
sum_run(void *arg)
{
	struct sum			*s = arg;
	const struct proxy_stats	*p = proxy_stats();
	const uint64_t			*from = (const uint64_t *)p;
	uint64_t			*to = (uint64_t *)&s->ps;
	uint64_t			 c, t;
	size_t				 i;

	for (i = 0; i < sizeof(*p) / sizeof(uint64_t); i++)
		to[i] += from[i];
	s->t.txns += txn_count();
	s->t.pending += proxy_calls_pending();
	s->t.records += txn_records();
	s->t.bytes += txn_bytes();
	txn_stats(&c, &t);
	s->t.created += c;
	s->t.timed_out += t;
	if (W.w != NULL) {
		s->t.rx_datagrams += worker_me()->tp->rx_datagrams;
		s->t.tx_errors += worker_me()->tp->tx_errors;
		s->t.conns += worker_me()->tp->nconns;
		tp_stream_stats_add(&s->t.streams, worker_me()->tp);
	}
}

static struct sum	sums;	/* the main thread's */

/*
 * Every worker's counters added up, in one round of the workers (the
 * main thread): the proxy's counters, valid until the next call, and
 * the rest in *t (NULL: not wanted).
 */
const struct proxy_stats *
worker_totals(struct worker_totals *t)
{
	memset(&sums, 0, sizeof(sums));
	worker_each(sum_run, &sums);
	if (t != NULL)
		*t = sums.t;
	return (&sums.ps);
}

struct foreach {
	void	(*fn)(struct txn *, void *);
	void	 *arg;
};

static void
foreach_run(void *arg)
{
	struct foreach	*f = arg;

	txn_foreach(f->fn, f->arg);
}

/* fn on every transaction of every worker, one worker after the other. */
void
worker_txn_foreach(void (*fn)(struct txn *, void *), void *arg)
{
	struct foreach	f = { fn, arg };

	worker_each(foreach_run, &f);
}

struct conn_foreach {
	void	(*fn)(const struct tp_conn_info *, void *);
	void	 *arg;
};

static void
conn_foreach_run(void *arg)
{
	struct conn_foreach	*f = arg;

	tp_conn_foreach(worker_me()->tp, f->fn, f->arg);
}

/* fn on every connection of every worker, one worker after the other. */
void
worker_conn_foreach(void (*fn)(const struct tp_conn_info *, void *),
    void *arg)
{
	struct conn_foreach	f = { fn, arg };

	if (W.w == NULL)
		return;
	worker_each(conn_foreach_run, &f);
}

struct cancel {
	const char	*callid;
	uint32_t	 cseq;
	char		*err;
	size_t		 errlen;
	int		 rc;
};

static void
cancel_run(void *arg)
{
	struct cancel	*c = arg;

	c->rc = proxy_cancel_call(c->callid, c->cseq, c->err, c->errlen);
}

/* ospreyctl cancel: on the worker that holds the call. */
int
worker_cancel_call(const char *callid, uint32_t cseq, char *err,
    size_t errlen)
{
	struct cancel	c = { callid, cseq, err, errlen, -1 };
	unsigned	owner = shard_of(callid, strlen(callid));

	if (owner == 0 || owner >= W.n || !W.w[owner].started)
		cancel_run(&c);
	else
		mailbox_call(&W.w[owner].mb, cancel_run, &c);
	return (c.rc);
}

/*
 * The main thread: fn(arg) on worker id, not waited for (fn frees arg);
 * on the main thread itself when id is 0 or that worker is not running.
 */
void
worker_post(unsigned id, mailbox_fn *fn, void *arg)
{
	if (id == 0 || id >= W.n || !W.w[id].started)
		fn(arg);
	else
		mailbox_post(&W.w[id].mb, fn, arg);
}

struct hangup {
	const char	*callid;
	char		*err;
	size_t		 errlen;
	int		 rc;
};

static void
hangup_run(void *arg)
{
	struct hangup	*h = arg;

	h->rc = dialog_hangup(h->callid, CDR_BY_ADMIN, h->err, h->errlen);
}

/* ospreyctl hangup: on the worker that holds the call's dialogs. */
int
worker_hangup(const char *callid, char *err, size_t errlen)
{
	struct hangup	h = { callid, err, errlen, -1 };
	unsigned	owner = shard_of(callid, strlen(callid));

	if (owner == 0 || owner >= W.n || !W.w[owner].started)
		hangup_run(&h);
	else
		mailbox_call(&W.w[owner].mb, hangup_run, &h);
	return (h.rc);
}

struct dlg_foreach {
	void	(*fn)(const struct dialog_info *, void *);
	void	 *arg;
};

static void
dlg_foreach_run(void *arg)
{
	struct dlg_foreach	*f = arg;

	dialog_foreach(f->fn, f->arg);
}

/* fn on every dialog of every worker, one worker after the other. */
void
worker_dialog_foreach(void (*fn)(const struct dialog_info *, void *),
    void *arg)
{
	struct dlg_foreach	f = { fn, arg };

	worker_each(dlg_foreach_run, &f);
}

static void
stop_accepting_run(void *arg)
{
	(void)arg;
	proxy_stop_accepting();
}

/* Graceful stop: every worker answers new requests with 503. */
void
worker_stop_accepting(void)
{
	worker_each(stop_accepting_run, NULL);
}

unsigned
worker_count(void)
{
	return (W.n > 0 ? W.n : 1);
}

struct tp *
worker_tp(void)
{
	return (worker_me()->tp);
}
