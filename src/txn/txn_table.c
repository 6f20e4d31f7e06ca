/*
 * The transaction table and the one place where transactions change state.
 * Everything runs on one event loop, so there is no locking.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "fifomem.h"
#include "log.h"
#include "txn.h"
#include "xmalloc.h"

/*
 * The compact records of one duration (a timer's value when they entered
 * their state), oldest first: a record is appended when it replaces its
 * transaction, at the end of the loop turn in which it entered its state
 * with the due time set then (on the TXN_LAZY_MS grid, from the turn's
 * cached clock), so a list is in due order and expires from its head.
 * A reload that changes T1 or T4 starts another list; the old one drains.
 */
struct txn_fifo {
	uint32_t	 ms;
	struct txn	*head;
	struct txn	*tail;
};

/* Each worker's loop has its own table (thread-local). */
static _Thread_local struct {
	struct hashtab		 table;
	struct txn_settings	 set;
	struct txn_ops		 ops;
	/* Up-calls other than ops (txn_set_ops()): a byte in a txn. */
	const struct txn_ops	*opstab[4];
	unsigned		 nops;
	struct event_base	*base;
	struct txn		*reap;
	struct txn		*done;		/* for ops->done */
	struct txn		*unindex;	/* requests indexed this turn */
	struct timer		 reaper;
	struct txn_fifo		*fifo;		/* records, by duration */
	struct fifomem		 recmem;	/* where records live */
	size_t			 nfifo;
	struct timer		 rec_tm;	/* the earliest head's due */
	uint64_t		 rec_tm_due;
	/*
	 * The transactions with a timer due, a min-heap by tm_due, under
	 * one libevent timer set for its top (a struct event each would
	 * cost 160 bytes a transaction).
	 */
	struct txn		**heap;
	uint32_t		 nheap;
	uint32_t		 heapcap;
	struct timer		 heap_tm;
	uint64_t		 heap_tm_due;	/* what heap_tm is set for */
	struct txn		**firing;	/* txn_heap_fire()'s, reused */
	uint32_t		 firecap;
	unsigned		 nrec;
	size_t			 rec_freed;	/* since the last trim */
	uint64_t		 serial;
	uint64_t		 timed_out;
	bool			 driven;	/* txn_reap() ends every turn */
	bool			 reaper_set;
	unsigned		 open;		/* with work left (txn_is_open) */
	size_t			 bytes;		/* held by all in the table */
	bool			 up;
} T;

static const char *const state_names[] = {
	"TRYING", "CALLING", "PROCEEDING", "COMPLETED", "CONFIRMED",
	"ACCEPTED", "TERMINATED",
};
static const char *const kind_names[] = { "ist", "nist", "ict", "nict" };

static bool	txn_absorbing(const struct txn *);
static void	txn_heap_remove(struct txn *);
static void	txn_heap_arm(void);
static void	txn_heap_fire(void *);
static void	txn_compact(struct txn *);
static void	txn_free(struct txn *);

const char *
txn_state_name(enum txn_state s)
{
	return (state_names[s]);
}

/*
 * What txn_lines() makes of m for a settled server transaction (the
 * request line, the Vias, From, To, Call-ID, CSeq, the empty line), from
 * m's index of its lines.
 */
static char *
txn_server_lines(const struct sipmsg *m, size_t *outlen)
{
	const struct sip_hline	*h;
	struct buf		 b;
	char			 stack[512], *out;
	unsigned		 i;

	if (m->nh == 0)
		return (NULL);
	buf_init_on(&b, stack, sizeof(stack));
	buf_add(&b, m->buf, m->h[0].off);	/* the request line */
	for (i = 0; i < m->nh; i++) {
		h = &m->h[i];
		switch (h->id) {
		case SH_VIA:
		case SH_FROM:
		case SH_TO:
		case SH_CALL_ID:
		case SH_CSEQ:
			buf_add(&b, m->buf + h->off, h->len);
			if (h->len < 1 || m->buf[h->off + h->len - 1] != '\n')
				buf_add(&b, "\r\n", 2);	/* the last line */
			break;
		default:
			break;
		}
	}
	buf_add(&b, "\r\n", 2);
	out = xmalloc(b.len + 1);
	memcpy(out, b.p, b.len);
	out[b.len] = '\0';
	*outlen = b.len;
	buf_cleanup(&b);
	return (out);
}

/*
 * The turn is over: t keeps its request's bytes, not the index (most of
 * a struct sipmsg).  The bytes stay where they were: what the owner took
 * from the request (a Route set) still points into them.
 */
static void
txn_server_unindex(struct txn *t)
{
	char	*bytes = NULL;
	size_t	 len;

	if (t->req != NULL) {
		if (t->settled && !t->trimmed)	/* by the index: no scan */
			bytes = txn_server_lines(t->req, &len);
		if (t->raw == NULL) {
			t->rawlen = t->req->len;
			t->raw = sipmsg_take_buf(t->req);
		}
		sipmsg_free(t->req);
		t->req = NULL;
	}
	if (bytes == NULL && t->settled && !t->trimmed && t->raw != NULL)
		bytes = txn_lines(t->raw, t->rawlen, TXN_L_VIA | TXN_L_FROM |
		    TXN_L_TO | TXN_L_CALLID | TXN_L_CSEQ, &len);
	if (bytes != NULL) {
		free(t->raw);
		t->raw = bytes;
		t->rawlen = len;
		t->trimmed = true;
	}
	txn_trim(t);
}

/*
 * Work for txn_reap() is queued: a zero timer runs it unless the loop
 * calls it after every turn (txn_set_driven()).
 */
static void
txn_reap_later(void)
{
	if (T.driven || T.reaper_set)
		return;
	timer_set(&T.reaper, 0);
	T.reaper_set = true;
}

/*
 * The loop calls txn_reap() once each of its turns ends (worker_run()):
 * no zero timer (an event_add() and an event_del() a turn) is needed.
 */
void
txn_set_driven(void)
{
	T.driven = true;
}

/*
 * Free the transactions that ended in this loop turn.  The main loop calls
 * it once each turn ends, when nothing up the stack can hold one; a zero
 * timer does it otherwise (unit tests, a loop that does not call it).
 */
void
txn_reap(void)
{
	struct txn	*t, *next;

	if (T.reap == NULL && T.done == NULL && T.unindex == NULL)
		return;
	if (T.up && T.reaper_set) {
		timer_stop(&T.reaper);
		T.reaper_set = false;
	}
	/* Server requests indexed in this turn keep their bytes only. */
	while ((t = T.unindex) != NULL) {
		T.unindex = t->rec_next;
		t->rec_next = NULL;
		t->req_queued = false;
		txn_server_unindex(t);
	}
	/*
	 * Owners let go (and may end or finish other transactions); what
	 * nobody owns becomes a compact record.
	 */
	while ((t = T.done) != NULL) {
		T.done = t->done_next;
		t->done_queued = false;
		if (t->state == TXN_TERMINATED || !txn_absorbing(t))
			continue;
		if (t->owner != NULL) {
			if (TXN_OPS(t)->done == NULL)
				continue;	/* kept until it ends */
			TXN_OPS(t)->done(t);
			t->owner = NULL;
			t->detached = true;
		}
		txn_compact(t);
	}
	for (t = T.reap, T.reap = NULL; t != NULL; t = next) {
		next = t->reap_next;
		txn_free(t);
	}
}

/* t->req is let go when the turn ends (txn_server_unindex()). */
void
txn_req_queue(struct txn *t)
{
	if (t->req_queued)
		return;
	if (T.reap == NULL && T.done == NULL && T.unindex == NULL && T.up)
		txn_reap_later();
	t->rec_next = T.unindex;
	T.unindex = t;
	t->req_queued = true;
}

static void
txn_free(struct txn *t)
{
	struct txn	**pp;

	if (t->heap_idx != 0) {		/* a terminated one is not there */
		txn_heap_remove(t);
		txn_heap_arm();
	}
	if (t->req_queued) {	/* indexed again after the list was done */
		for (pp = &T.unindex; *pp != t; pp = &(*pp)->rec_next)
			;
		*pp = t->rec_next;
	}
	sipmsg_free(t->req);
	free(t->out);
	if (TXN_CLIENT(t)) {
		free(t->cancel_reason);
		free(t->tls_name);
	} else {
		free(t->raw);
		free(t->alt);
	}
	free(t);
}

static void
txn_reap_now(void *arg)
{
	(void)arg;
	T.reaper_set = false;
	txn_reap();
}

static void	txn_rec_fire(void *);

/* Records freed since the heap was last trimmed that warrant a trim. */
#define TXN_TRIM_BYTES	(4u << 20)

/*
 * Where a record resends to, first in its tail if it resends: the socket,
 * the sockaddr's length, protocol and flags, then the sockaddr's bytes.
 */
struct txn_rec_peer {
	struct tp_sock	*sock;
	socklen_t	 len;
	uint8_t		 proto;
	uint8_t		 flags;
	unsigned char	 sa[];
};

static size_t
txn_rec_peer_size(const struct tp_addr *a)
{
	return (sizeof(struct txn_rec_peer) + a->len);
}

/* The bytes of a record's allocation (it does not keep the figure). */
static size_t
txn_rec_size(const struct txn *r)
{
	const struct txn_rec_peer *rp = (const void *)((const char *)r +
	    TXN_REC_HEAD);
	size_t	n = TXN_REC_HEAD + r->node.klen + 1 + r->outlen;

	if (r->out != NULL)
		n += sizeof(*rp) + rp->len;
	if (r->callid != NULL)
		n += strlen(r->callid) + 1;
	return (n);
}

static void
txn_rec_peer_put(void *p, struct tp_sock *sock, const struct tp_addr *a)
{
	struct txn_rec_peer	*rp = p;

	rp->sock = sock;
	rp->len = a->len;
	rp->proto = a->proto;
	rp->flags = a->flags;
	memcpy(rp->sa, &a->ss, a->len);
}

static struct tp_sock *
txn_rec_peer_get(const struct txn *r, struct tp_addr *a)
{
	const struct txn_rec_peer *rp = (const void *)((const char *)r +
	    TXN_REC_HEAD);

	memset(a, 0, sizeof(*a));
	a->len = rp->len;
	a->proto = rp->proto;
	a->flags = rp->flags;
	memcpy(&a->ss, rp->sa, rp->len);
	return (rp->sock);
}

/* Set the records' timer for the earliest head, if it changed. */
static void
txn_rec_arm(void)
{
	uint64_t	 min = UINT64_MAX, now;
	size_t		 i;

	for (i = 0; i < T.nfifo; i++)
		if (T.fifo[i].head != NULL && T.fifo[i].head->rec_due < min)
			min = T.fifo[i].head->rec_due;
	if (min == T.rec_tm_due)
		return;
	T.rec_tm_due = min;
	if (min == UINT64_MAX) {
		timer_stop(&T.rec_tm);
		return;
	}
	now = timer_clock_ms(&T.rec_tm);
	timer_set(&T.rec_tm, min > now ? (uint32_t)(min - now) : 0);
}

/* The list of the records that last ms, made if there is none. */
static struct txn_fifo *
txn_fifo_get(uint32_t ms)
{
	struct txn_fifo	*f, *spare = NULL;
	size_t		 i;

	for (i = 0; i < T.nfifo; i++) {
		f = &T.fifo[i];
		if (f->ms == ms)
			return (f);
		if (f->head == NULL && spare == NULL)
			spare = f;
	}
	if (spare == NULL) {
		T.fifo = xrealloc(T.fifo, (T.nfifo + 1) * sizeof(*T.fifo));
		spare = &T.fifo[T.nfifo++];
		spare->head = spare->tail = NULL;
	}
	spare->ms = ms;
	return (spare);
}

/*
 * Append r to the list of its duration.  Its due time is never before
 * the tail's but by the clock of another turn: then it goes where it
 * belongs, so a list stays in due order.
 */
static void
txn_fifo_add(struct txn_fifo *f, struct txn *r)
{
	struct txn	**pp;

	r->rec_next = NULL;
	if (f->tail == NULL || f->tail->rec_due <= r->rec_due) {
		if (f->tail != NULL)
			f->tail->rec_next = r;
		else
			f->head = r;
		f->tail = r;
		return;
	}
	for (pp = &f->head; (*pp)->rec_due <= r->rec_due; )
		pp = &(*pp)->rec_next;
	r->rec_next = *pp;
	*pp = r;
}

/*
 * The process's totals over every worker's table, for the limits
 * (security.max_transactions, max_transaction_memory): each table adds
 * its changes here as they happen.
 */
static struct {
	long		 open;
	long		 bytes;
} ALL;

static void
txn_count_all(long open, long bytes)
{
	if (open != 0)
		__atomic_add_fetch(&ALL.open, open, __ATOMIC_RELAXED);
	if (bytes != 0)
		__atomic_add_fetch(&ALL.bytes, bytes, __ATOMIC_RELAXED);
}

/* A record ends: out of the table, the counts and memory. */
static void
txn_rec_end(struct txn *r)
{
	log_debug("txn %s: %s -> TERMINATED (record)", txn_id(r),
	    state_names[r->state]);
	size_t	n = txn_rec_size(r);

	hashtab_remove(&T.table, &r->node);
	T.bytes -= n;
	txn_count_all(0, -(long)n);
	T.rec_freed += n;
	T.nrec--;
	if (r->rec_fm)
		fifomem_free(r);
	else
		free(r);
}

/*
 * The records' timer: every list loses the records due at its head.  One
 * wake-up per TXN_LAZY_MS step at most, for every record of the step.
 */
static void
txn_rec_fire(void *arg)
{
	uint64_t	 now = timer_clock_ms(&T.rec_tm);
	struct txn_fifo	*f;
	struct txn	*r;
	size_t		 i;

	(void)arg;
	T.rec_tm_due = UINT64_MAX;	/* rec_tm is not set now */
	for (i = 0; i < T.nfifo; i++) {
		f = &T.fifo[i];
		while ((r = f->head) != NULL && r->rec_due <= now) {
			if ((f->head = r->rec_next) == NULL)
				f->tail = NULL;
			txn_rec_end(r);
		}
	}
	txn_rec_arm();
	/*
	 * The last record of a busy spell is gone: give the pages back,
	 * which free() leaves to the process between the live blocks (a
	 * load's records are spread over the heap it grew to).
	 */
	if (T.nrec == 0 && T.rec_freed >= TXN_TRIM_BYTES) {
		T.rec_freed = 0;
#ifdef __GLIBC__
		malloc_trim(0);
#endif
	}
}

/*
 * t only absorbs retransmissions until its lazy timer ends and nobody
 * owns it: a compact record takes its place in the table, with what a
 * retransmission needs (the match key, the state, the bytes to resend and
 * where to) and its due time, on the list of its duration.  Already due
 * (a reliable transport's zero timer): it ends now instead.  So does an
 * INVITE client transaction let go in Accepted: it matches nothing any
 * more (txn_match_response(): its 2xx are relayed by the Via, as after
 * Timer M), so a record of it would only hold memory.
 */
static void
txn_compact(struct txn *t)
{
	size_t		 klen = t->node.klen, clen = 0, n;
	uint64_t	 due = t->due[TXN_TM_LIFE];
	struct tp_addr	 peer;
	struct txn	*r;
	char		*p, *rkey;

	if (due == UINT64_MAX || due <= timer_clock_ms(&T.heap_tm) ||
	    (t->kind == TXN_ICT && t->state == TXN_ACCEPTED && t->detached)) {
		txn_enter(t, TXN_TERMINATED);
		return;
	}
	if (t->callid != NULL)
		clen = strlen(t->callid) + 1;
	txn_peer(t, &peer);
	n = TXN_REC_HEAD + (t->out != NULL ? txn_rec_peer_size(&peer) : 0) +
	    klen + 1 + clen + t->outlen;
	if ((r = fifomem_alloc(&T.recmem, n)) != NULL) {
		memcpy(r, t, TXN_REC_HEAD);
		r->rec_fm = true;
	} else {
		r = xmalloc(n);
		memcpy(r, t, TXN_REC_HEAD);
		r->rec_fm = false;
	}
	p = (char *)r + TXN_REC_HEAD;
	if (t->out != NULL) {
		txn_rec_peer_put(p, t->sock, &peer);
		p += txn_rec_peer_size(&peer);
	}
	rkey = p;
	memcpy(p, t->node.key, klen + 1);
	p += klen + 1;
	r->callid = NULL;
	if (clen > 0) {
		r->callid = p;
		memcpy(p, t->callid, clen);
		p += clen;
	}
	r->out = NULL;
	if (t->out != NULL) {
		r->out = p;
		memcpy(p, t->out, t->outlen);
	}
	r->owner = NULL;
	r->req = NULL;
	r->rec = true;
	r->rec_due = due;
	r->open = false;

	txn_heap_remove(t);
	txn_heap_arm();
	hashtab_replace(&T.table, &t->node, &r->node, rkey);
	txn_count_all(-(long)t->open, (long)n - (long)t->bytes);
	T.bytes = T.bytes - t->bytes + n;
	T.open -= t->open;
	T.nrec++;
	txn_fifo_add(txn_fifo_get(t->life_ms), r);
	txn_free(t);
	if (due < T.rec_tm_due)
		txn_rec_arm();
}

void
txn_init(struct event_base *base, const struct txn_settings *set,
    const struct txn_ops *ops)
{
	memset(&T, 0, sizeof(T));
	T.base = base;
	T.set = *set;
	T.ops = *ops;
	hashtab_init(&T.table, 4096);
	timer_init(&T.reaper, base, txn_reap_now, NULL);
	timer_init(&T.rec_tm, base, txn_rec_fire, NULL);
	T.rec_tm_due = UINT64_MAX;
	timer_init(&T.heap_tm, base, txn_heap_fire, NULL);
	T.heap_tm_due = UINT64_MAX;
	T.up = true;
}

void
txn_set_settings(const struct txn_settings *set)
{
	T.set = *set;
}

const struct txn_settings *
txn_settings(void)
{
	return (&T.set);
}

unsigned
txn_count(void)
{
	return ((unsigned)T.table.n);
}

/* Of txn_count(), the compact records. */
unsigned
txn_records(void)
{
	return (T.nrec);
}

/*
 * Transactions in progress: waiting for a final response, or (an INVITE
 * server transaction that sent one >= 300) retransmitting it until the
 * ACK.  Those that only absorb retransmissions until Timer D, H's
 * successor I, J, K, L or M do not count here, only in txn_bytes().
 */
unsigned
txn_open(void)
{
	return (T.open);
}

/* txn_open() and txn_bytes() of every worker's table together. */
unsigned
txn_open_all(void)
{
	long	n = __atomic_load_n(&ALL.open, __ATOMIC_RELAXED);

	return (n > 0 ? (unsigned)n : 0);
}

size_t
txn_bytes_all(void)
{
	long	n = __atomic_load_n(&ALL.bytes, __ATOMIC_RELAXED);

	return (n > 0 ? (size_t)n : 0);
}

/* Heap bytes held by the transactions in the table (malloc's own aside). */
size_t
txn_bytes(void)
{
	return (T.bytes);
}

static bool
txn_is_open(const struct txn *t)
{
	switch (t->state) {
	case TXN_TRYING:
	case TXN_CALLING:
	case TXN_PROCEEDING:
		return (true);
	case TXN_COMPLETED:
		return (t->kind == TXN_IST);	/* Timer G until the ACK */
	default:
		return (false);
	}
}

/*
 * States in which a transaction only absorbs retransmissions until its
 * timer ends, with nothing more for its owner: those a reliable transport
 * ends at once (D I J K), and the Accepted states of RFC 6026 (L M): a 2xx
 * after those the proxy relays by the Via, as it does after Timer L or M.
 */
static bool
txn_absorbing(const struct txn *t)
{
	switch (t->kind) {
	case TXN_IST:
		return (t->state == TXN_CONFIRMED || t->state == TXN_ACCEPTED);
	case TXN_ICT:
		return (t->state == TXN_COMPLETED || t->state == TXN_ACCEPTED);
	case TXN_NIST:
	case TXN_NICT:
		return (t->state == TXN_COMPLETED);
	}
	return (false);
}

static size_t
txn_size(const struct txn *t)
{
	size_t	n = sizeof(*t) + t->node.klen + 1 + t->outlen;

	if (!TXN_CLIENT(t) && t->alt != NULL)
		n += sizeof(*t->alt);

	if (t->req != NULL)
		n += sizeof(*t->req) + t->req->len + 1 +
		    t->req->hcap * sizeof(*t->req->h);
	if (!TXN_CLIENT(t) && t->raw != NULL)
		n += t->rawlen + 1;	/* NUL terminated */
	if (t->callid != NULL)
		n += strlen(t->callid) + 1;
	if (TXN_CLIENT(t) && t->cancel_reason != NULL)
		n += strlen(t->cancel_reason) + 1;
	return (n);
}

/*
 * After t changed: drop the bytes no later state sends again (the INVITE
 * server transaction's final once ACKed or a 2xx, which RFC 6026 leaves to
 * the TU; a client's request once it is answered), and count the rest.
 */
void
txn_trim(struct txn *t)
{
	bool	done = t->state == TXN_TERMINATED;
	bool	open;
	size_t	bytes;

	if (t->rec)
		return;
	if ((t->kind == TXN_IST && (t->state == TXN_CONFIRMED ||
	    t->state == TXN_ACCEPTED)) ||
	    (t->kind == TXN_ICT && t->state == TXN_ACCEPTED) ||
	    (t->kind == TXN_NICT && t->state == TXN_COMPLETED)) {
		free(t->out);
		t->out = NULL;
		t->outlen = 0;
	}
	if (!done && !t->done_queued && (t->owner == NULL ||
	    TXN_OPS(t)->done != NULL) && txn_absorbing(t)) {
		if (T.reap == NULL && T.done == NULL && T.unindex == NULL)
			txn_reap_later();
		t->done_next = T.done;
		T.done = t;
		t->done_queued = true;
	}
	open = !done && txn_is_open(t);
	bytes = done ? 0 : txn_size(t);
	txn_count_all((long)open - (long)t->open, (long)bytes -
	    (long)t->bytes);
	T.open = T.open - t->open + open;
	T.bytes = T.bytes - t->bytes + bytes;
	t->open = open;
	t->bytes = bytes;
}

/* Every transaction in the table (for ospreyctl; fn must not unlink). */
void
txn_foreach(void (*fn)(struct txn *, void *), void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*h;

	HASHTAB_FOREACH(h, &T.table, it)
		fn((struct txn *)h, arg);
}

void
txn_stats(uint64_t *created, uint64_t *timed_out)
{
	*created = T.serial;
	*timed_out = T.timed_out;
}

/* Terminate whatever is left and free it: used at exit. */
void
txn_shutdown(void)
{
	size_t		 pos = 0;
	struct hnode	*h;
	struct txn	*r;
	size_t		 i;

	if (!T.up)
		return;
	for (i = 0; i < T.nfifo; i++)
		while ((r = T.fifo[i].head) != NULL) {
			T.fifo[i].head = r->rec_next;
			txn_rec_end(r);
		}
	free(T.fifo);
	T.fifo = NULL;
	T.nfifo = 0;
	timer_stop(&T.rec_tm);
	/* Its owner may end others as one ends: take what is left. */
	while ((h = hashtab_first(&T.table, &pos)) != NULL)
		txn_enter((struct txn *)h, TXN_TERMINATED);
	txn_reap();
	timer_stop(&T.reaper);
	T.reaper_set = false;
	timer_stop(&T.heap_tm);
	free(T.heap);
	free(T.firing);
	T.heap = T.firing = NULL;
	T.nheap = T.heapcap = T.firecap = 0;
	hashtab_cleanup(&T.table);
	T.up = false;
}

static void
key_add(struct buf *k, struct slice s)
{
	buf_add(k, s.p, s.len);
	buf_add(k, "|", 1);
}

/*
 * Server key, RFC 3261 17.2.3: branch, sent-by and method (ACK and CANCEL
 * look up the INVITE with method INVITE).  Without the magic cookie, the
 * RFC 2543 rule: Request-URI, From tag, Call-ID, CSeq number, top Via.
 */
void
txn_key_server(const struct sipmsg *m, enum sip_method as, struct buf *k)
{
	const char	*method = as == SM_OTHER ? NULL : sip_method_name(as);
	struct slice	 ms = method ? (struct slice){ method, strlen(method) } :
			    m->method_s;

	if (sipmsg_magic(m)) {
		buf_add(k, "s|", 2);
		key_add(k, m->branch);
		key_add(k, m->via_host);
		buf_addu(k, m->via_port ? m->via_port : 5060);
		buf_add(k, "|", 1);
	} else {
		buf_add(k, "o|", 2);
		key_add(k, m->ruri);
		key_add(k, m->from_tag);
		key_add(k, m->callid);
		buf_addu(k, m->cseq);
		buf_add(k, "|", 1);
		key_add(k, m->via);
	}
	buf_add(k, ms.p, ms.len);
}

void
txn_key_client(struct slice branch, struct slice method, struct buf *k)
{
	buf_add(k, "c|", 2);
	key_add(k, branch);
	buf_add(k, method.p, method.len);
}

struct txn *
txn_find(const char *key, size_t len)
{
	return ((struct txn *)hashtab_find(&T.table, key, len));
}

static struct txn *
find_key(const struct sipmsg *m, enum sip_method as)
{
	char		 stack[512];
	struct buf	 k;
	struct txn	*t;

	buf_init_on(&k, stack, sizeof(stack));
	txn_key_server(m, as, &k);
	t = txn_find(k.p, k.len);
	buf_cleanup(&k);
	return (t);
}

/* A retransmission of a request we have, or the INVITE an ACK belongs to. */
struct txn *
txn_match_request(const struct sipmsg *m)
{
	struct txn	*t;

	if (m->method == SM_ACK) {
		t = find_key(m, SM_INVITE);
		/* RFC 2543: the ACK's To tag is the one we sent. */
		if (t != NULL && !sipmsg_magic(m) && t->kind == TXN_IST &&
		    t->state == TXN_ACCEPTED)
			return (NULL);
		return (t != NULL && t->kind == TXN_IST ? t : NULL);
	}
	return (find_key(m, SM_OTHER));
}

struct txn *
txn_match_cancel(const struct sipmsg *m)
{
	struct txn	*t = find_key(m, SM_INVITE);

	return (t != NULL && t->kind == TXN_IST ? t : NULL);
}

struct txn *
txn_match_response(const struct sipmsg *m)
{
	char		 stack[256];
	struct buf	 k;
	struct txn	*t;

	if (!sipmsg_magic(m))
		return (NULL);
	buf_init_on(&k, stack, sizeof(stack));
	txn_key_client(m->branch, m->cseq_method, &k);
	t = txn_find(k.p, k.len);
	buf_cleanup(&k);
	/*
	 * An INVITE client transaction whose owner let it go in Accepted:
	 * its 2xx retransmissions are the proxy's to relay by the Via (RFC
	 * 3261 16.7), as after Timer M.
	 */
	if (t != NULL && t->detached && t->kind == TXN_ICT &&
	    t->state == TXN_ACCEPTED)
		return (NULL);
	return (t);
}

static void	txn_fmt_xid(char *, unsigned long long);

/*
 * A transaction's name for logs and ospreyctl, "ist-1f": its kind and
 * number.  The text stays until four more calls in this thread (a log
 * line names two at most).
 */
const char *
txn_id(const struct txn *t)
{
	static _Thread_local char	ring[4][24];
	static _Thread_local unsigned	next;
	char				*id = ring[next++ % 4], *p;

	/* "%s-%x" without printf: logs at info name one in most calls. */
	p = stpcpy(id, kind_names[t->kind]);
	*p++ = '-';
	txn_fmt_xid(p, t->serial);
	return (id);
}

/* n in hex, no leading zeros, NUL terminated (at most 17 bytes). */
static void
txn_fmt_xid(char *out, unsigned long long n)
{
	char	hex[17];
	size_t	i = 0;

	fmt_hex64(hex, n);
	while (i < 15 && hex[i] == '0')
		i++;
	memcpy(out, hex + i, 17 - i);
}

static void txn_retx_fire(struct txn *);
static void txn_life_fire(struct txn *);
static void txn_c_fire(struct txn *);
static void txn_timer_fire(struct txn *);

/*
 * A new transaction, linked into the table under key (emptied), which is
 * kept in the same allocation, and so is its Call-ID (callid.p NULL: none).
 */
struct txn *
txn_alloc(enum txn_kind kind, struct buf *key, struct slice callid)
{
	size_t		 klen = key->len;	/* may hold a NUL: keep it */
	size_t		 clen = callid.p != NULL ? callid.len + 1 : 0;
	struct txn	*t = xmalloc(sizeof(*t) + klen + 1 + clen);
	unsigned	 i;

	memset(t, 0, sizeof(*t));
	t->kind = kind;
	memcpy(t->keybuf, key->p, klen);
	t->keybuf[klen] = '\0';
	if (clen > 0) {
		t->callid = t->keybuf + klen + 1;
		memcpy(t->callid, callid.p, callid.len);
		t->callid[callid.len] = '\0';
	}
	buf_cleanup(key);
	t->serial = (uint32_t)++T.serial;
	for (i = 0; i < TXN_TIMERS; i++)
		t->due[i] = UINT64_MAX;
	hashtab_insert(&T.table, &t->node, t->keybuf, klen);
	txn_trim(t);
	return (t);
}

void
txn_set_ops(struct txn *t, const struct txn_ops *ops)
{
	unsigned	i;

	for (i = 0; i < T.nops && T.opstab[i] != ops; i++)
		;
	if (i == T.nops) {
		if (T.nops == sizeof(T.opstab) / sizeof(T.opstab[0]))
			fatalx("txn: more up-call sets than %u", T.nops);
		T.opstab[T.nops++] = ops;
	}
	t->ops = (uint8_t)(i + 1);
}

/* 0: the ones txn_init() was given; else one of txn_set_ops(). */
const struct txn_ops *
txn_ops_of(uint8_t i)
{
	return (i == 0 ? &T.ops : T.opstab[i - 1]);
}

const char *
txn_callid(const struct txn *t)
{
	return (t->callid != NULL ? t->callid : "-");
}

void
txn_xmit(struct txn *t)
{
	struct tp_addr	 peer;
	struct tp_sock	*sock;

	if (t->out == NULL)
		return;
	if (t->rec) {		/* over UDP: a reliable one ended at once */
		sock = txn_rec_peer_get(t, &peer);
		tp_send(sock, &peer, t->out, t->outlen);
		return;
	}
	txn_peer(t, &peer);
	if (TXN_CLIENT(t))
		tp_send_to(t->sock, &peer, t->tls_name, t->out, t->outlen);
	else
		tp_send_alt(t->sock, &peer, t->alt, t->out, t->outlen);
}

void
txn_addr_put(struct txn_addr *c, const struct tp_addr *a)
{
	size_t	len = a->len;

	if (len > sizeof(c->sa)) {	/* not IPv4, not IPv6: none we make */
		log_warnx("txn: address of %zu bytes cut", len);
		len = sizeof(c->sa);
	}
	memcpy(&c->sa, &a->ss, len);
	c->len = (uint8_t)len;
	c->proto = a->proto;
	c->flags = a->flags;
}

/* A bad length (a record tampered with) is cut to sa's: never over-read. */
void
txn_addr_get(const struct txn_addr *c, struct tp_addr *a)
{
	size_t	len = c->len;

	if (len > sizeof(c->sa)) {
		log_warnx("txn: address of %zu bytes cut", len);
		len = sizeof(c->sa);
	}
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, &c->sa, len);
	a->len = (socklen_t)len;
	a->proto = c->proto;
	a->flags = c->flags;
}

/*
 * An IPv4 or IPv6 address of a known transport, as txn_addr_put() makes
 * them: what a record read back (Redis, SQLite) must hold to be used.
 */
bool
txn_addr_ok(const struct txn_addr *c)
{
	if (c->proto >= TP_NPROTO)
		return (false);
	if (c->len == sizeof(struct sockaddr_in))
		return (c->sa.sin.sin_family == AF_INET);
	if (c->len == sizeof(struct sockaddr_in6))
		return (c->sa.sin6.sin6_family == AF_INET6);
	return (false);
}

/* Which of the TXN_L_* a header name is (0: none), one compare at most. */
static unsigned
txn_hdr_kind(const char *p, size_t len)
{
	switch (len) {
	case 1:
		switch (sip_tolower((unsigned char)*p)) {
		case 'v':
			return (TXN_L_VIA);
		case 'f':
			return (TXN_L_FROM);
		case 't':
			return (TXN_L_TO);
		case 'i':
			return (TXN_L_CALLID);
		}
		return (0);
	case 2:
		return (sip_caseeq(p, "to", 2) ? TXN_L_TO : 0);
	case 3:
		return (sip_caseeq(p, "via", 3) ? TXN_L_VIA : 0);
	case 4:
		if (sip_tolower((unsigned char)*p) == 'f')
			return (sip_caseeq(p, "from", 4) ? TXN_L_FROM : 0);
		return (sip_caseeq(p, "cseq", 4) ? TXN_L_CSEQ : 0);
	case 5:
		return (sip_caseeq(p, "route", 5) ? TXN_L_ROUTE : 0);
	case 7:
		return (sip_caseeq(p, "call-id", 7) ? TXN_L_CALLID : 0);
	}
	return (0);
}

/*
 * Of message msg, the first line and the header lines of the kinds in
 * keep (TXN_L_*; a folded line goes with its header), then the empty line:
 * a message of its own without a body (and without Content-Length, which
 * sipmsg_parse() does not need), NUL terminated, allocated at its size.
 * NULL if msg has no line.
 */
char *
txn_lines(const char *msg, size_t len, unsigned keep, size_t *outlen)
{
	const char	*p = msg, *end = msg + len, *eol, *colon;
	struct buf	 b;
	unsigned	 kind;
	bool		 take = false, via_seen = false;
	char		 stack[512], *out;

	if ((eol = memchr(p, '\n', len)) == NULL)
		return (NULL);
	buf_init_on(&b, stack, sizeof(stack));
	buf_add(&b, p, (size_t)(eol + 1 - p));	/* the first line */
	for (p = eol + 1; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end - 1;
		if (*p == '\r' || *p == '\n')
			break;		/* the end of the header */
		if (*p != ' ' && *p != '\t') {	/* else: folded, as before */
			if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL)
				kind = 0;
			else {
				while (colon > p && (colon[-1] == ' ' ||
				    colon[-1] == '\t'))
					colon--;
				kind = txn_hdr_kind(p, (size_t)(colon - p));
			}
			if (kind == TXN_L_VIA && (keep & TXN_L_TOPVIA)) {
				take = !via_seen;
				via_seen = true;
			} else
				take = (kind & keep) != 0;
		}
		if (take)
			buf_add(&b, p, (size_t)(eol + 1 - p));
	}
	buf_add(&b, "\r\n", 2);
	out = xmalloc(b.len + 1);	/* its own size, not the buffer's */
	memcpy(out, b.p, b.len);
	out[b.len] = '\0';
	*outlen = b.len;
	buf_cleanup(&b);
	return (out);
}

/* Where a (full) transaction sends: its peer as a struct tp_addr. */
void
txn_peer(const struct txn *t, struct tp_addr *a)
{
	txn_addr_get(&t->peer, a);
}

/* Over TCP, TLS or WebSocket: nothing is retransmitted (17.1.1.2). */
bool
txn_reliable(const struct txn *t)
{
	if (t->rec)		/* one that resends is over UDP; others: moot */
		return (t->out == NULL);
	return (tp_proto_reliable((enum tp_proto)t->peer.proto));
}

static void
txn_lost_one(struct txn *t, void *arg)
{
	const struct tp_addr	*a = arg;
	struct tp_addr		 peer;

	if (t->rec || (t->kind != TXN_ICT && t->kind != TXN_NICT))
		return;
	txn_peer(t, &peer);
	if (!tp_addr_eq(&peer, a))
		return;
	if (t->state != TXN_CALLING && t->state != TXN_TRYING &&
	    t->state != TXN_PROCEEDING)
		return;
	log_info("txn %s: transport error in %s call=%s", txn_id(t),
	    state_names[t->state], txn_callid(t));
	if (t->owner != NULL && TXN_OPS(t)->transport_error != NULL)
		TXN_OPS(t)->transport_error(t);
	if (t->state != TXN_TERMINATED)
		txn_enter(t, TXN_TERMINATED);
}

/*
 * The connection to a is gone or could not be opened: its client
 * transactions fail at once (17.1.4), not at Timer B or F.  Rare enough
 * for a walk of the table.
 */
void
txn_transport_lost(const struct tp_addr *a)
{
	txn_foreach(txn_lost_one, (void *)a);
}

/*
 * In txn_enter(): set one timer, exact or lazy, or stop it; the libevent
 * timer is set once for all of them, at the end.
 */
#define RETX(ms)	txn_timer_due(t, TXN_TM_RETX, (ms), false)
#define LIFE(ms)	txn_timer_due(t, TXN_TM_LIFE, (ms), false)
#define LAZY(ms)	(t->life_ms = (ms), \
			    txn_timer_due(t, TXN_TM_LIFE, (ms), true))
#define STOP(w)		(t->due[(w)] = UINT64_MAX)

static void	txn_timer_due(struct txn *, enum txn_timer, uint32_t, bool);
static void	txn_timer_arm(struct txn *);

static uint32_t
min_u32(uint32_t a, uint32_t b)
{
	return (a < b ? a : b);
}

/*
 * Entering a state arms that state's timers; the transition is logged.
 * The timers that only end a transaction that absorbs retransmissions
 * (D I J K L M) are lazy: up to TXN_LAZY_MS late, so those of many
 * calls end in one wake-up.
 */
void
txn_enter(struct txn *t, enum txn_state next)
{
	const struct txn_settings	*s = &T.set;
	uint32_t			 t64 = 64 * s->t1_ms;
	bool				 rel;

	if (t->rec)
		return;		/* it only ends at its due time */
	rel = txn_reliable(t);
	log_debug("txn %s: %s -> %s", txn_id(t), state_names[t->state],
	    state_names[next]);
	t->state = next;

	if (next == TXN_TERMINATED) {
		t->due[TXN_TM_RETX] = t->due[TXN_TM_C] = UINT64_MAX;
		txn_timer_stop(t, TXN_TM_LIFE);
		txn_trim(t);
		hashtab_remove(&T.table, &t->node);
		if (t->owner != NULL && TXN_OPS(t)->terminated != NULL)
			TXN_OPS(t)->terminated(t);
		t->owner = NULL;
		if (T.reap == NULL && T.done == NULL && T.unindex == NULL)
			txn_reap_later();
		t->reap_next = T.reap;
		T.reap = t;
		return;
	}
	switch (t->kind) {
	case TXN_IST:
		if (next == TXN_COMPLETED) {
			t->retx_ms = s->t1_ms;
			if (!rel)
				RETX(t->retx_ms);	/* G */
			LIFE(t64);	/* H */
		} else if (next == TXN_CONFIRMED) {
			STOP(TXN_TM_RETX);
			LAZY(rel ? 0 : s->t4_ms);	/* I */
		} else if (next == TXN_ACCEPTED) {
			STOP(TXN_TM_RETX);
			LAZY(t64);	/* L */
		}
		break;
	case TXN_NIST:
		if (next == TXN_COMPLETED)
			LAZY(rel ? 0 : t64);	/* J */
		break;
	case TXN_ICT:
		if (next == TXN_CALLING) {
			t->retx_ms = s->t1_ms;
			if (!rel)
				RETX(t->retx_ms);	/* A */
			LIFE(t64);	/* B */
		} else if (next == TXN_PROCEEDING) {
			STOP(TXN_TM_RETX);
			STOP(TXN_TM_LIFE);
		} else if (next == TXN_COMPLETED) {
			STOP(TXN_TM_RETX);
			STOP(TXN_TM_C);
			LAZY(rel ? 0 : s->d_ms);	/* D */
		} else if (next == TXN_ACCEPTED) {
			STOP(TXN_TM_RETX);
			STOP(TXN_TM_C);
			LAZY(t64);	/* M */
		}
		break;
	case TXN_NICT:
		if (next == TXN_TRYING) {
			t->retx_ms = s->t1_ms;
			if (!rel)
				RETX(t->retx_ms);	/* E */
			LIFE(t64);	/* F */
		} else if (next == TXN_COMPLETED) {
			STOP(TXN_TM_RETX);
			LAZY(rel ? 0 : s->t4_ms);	/* K */
		}
		break;
	}
	txn_timer_arm(t);
	txn_trim(t);
}

/*
 * The heap's order: the earlier due first, the older on a tie.  Keys are
 * 32-bit clock values, compared as serial numbers: they wrap every 49
 * days, and no two in the heap are 24 days apart.
 */
static bool
txn_heap_before(const struct txn *a, const struct txn *b)
{
	if (a->tm_key != b->tm_key)
		return ((int32_t)(a->tm_key - b->tm_key) < 0);
	return ((int32_t)(a->serial - b->serial) < 0);
}

/* A key's milliseconds from now (<= 0: due). */
static int32_t
txn_key_in(uint32_t key, uint64_t now)
{
	return ((int32_t)(key - (uint32_t)now));
}

static void
txn_heap_put(uint32_t i, struct txn *t)
{
	T.heap[i] = t;
	t->heap_idx = i + 1;
}

static void
txn_heap_up(uint32_t i)
{
	struct txn	*t = T.heap[i];

	while (i > 0 && txn_heap_before(t, T.heap[(i - 1) / 2])) {
		txn_heap_put(i, T.heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	txn_heap_put(i, t);
}

static void
txn_heap_down(uint32_t i)
{
	struct txn	*t = T.heap[i];
	uint32_t	 c;

	while ((c = 2 * i + 1) < T.nheap) {
		if (c + 1 < T.nheap && txn_heap_before(T.heap[c + 1],
		    T.heap[c]))
			c++;
		if (!txn_heap_before(T.heap[c], t))
			break;
		txn_heap_put(i, T.heap[c]);
		i = c;
	}
	txn_heap_put(i, t);
}

/* Set the heap's timer for its top, if that changed. */
static void
txn_heap_arm(void)
{
	uint64_t	now = timer_clock_ms(&T.heap_tm), min = UINT64_MAX;
	int32_t		in;

	if (T.nheap > 0) {
		in = txn_key_in(T.heap[0]->tm_key, now);
		min = in > 0 ? now + (uint64_t)in : now;
	}
	if (min == T.heap_tm_due)
		return;
	T.heap_tm_due = min;
	if (min == UINT64_MAX) {
		timer_stop(&T.heap_tm);
		return;
	}
	timer_set(&T.heap_tm, (uint32_t)(min - now));
}

static void
txn_heap_remove(struct txn *t)
{
	uint32_t	 i;
	struct txn	*last;

	if (t->heap_idx == 0)
		return;
	i = t->heap_idx - 1;
	t->heap_idx = 0;
	last = T.heap[--T.nheap];
	if (i < T.nheap) {
		txn_heap_put(i, last);
		txn_heap_up(i);
		txn_heap_down(last->heap_idx - 1);
	}
}

/*
 * The heap's timer: the transactions due now leave the heap, then each
 * one's due timers fire (txn_timer_fire() puts it back for its next).
 * None is freed meanwhile: that waits for txn_reap().
 */
static void
txn_heap_fire(void *arg)
{
	uint64_t	 now = timer_clock_ms(&T.heap_tm);
	uint32_t	 n = 0, i;

	(void)arg;
	T.heap_tm_due = UINT64_MAX;	/* heap_tm is not set now */
	while (T.nheap > 0 && txn_key_in(T.heap[0]->tm_key, now) <= 0) {
		if (n == T.firecap) {
			T.firecap = T.firecap ? 2 * T.firecap : 64;
			T.firing = xrealloc(T.firing, T.firecap *
			    sizeof(*T.firing));
		}
		T.firing[n++] = T.heap[0];
		txn_heap_remove(T.heap[0]);
	}
	/* A callback may set timers, so never T.firing past this point. */
	for (i = 0; i < n; i++)
		txn_timer_fire(T.firing[i]);
	txn_heap_arm();
}

/*
 * A transaction is in the heap while one of its timers is due, under the
 * earliest.  A lazy one is due on the TXN_LAZY_MS grid, so the lazy ends
 * of many calls share a wake-up.
 */
static void
txn_timer_arm(struct txn *t)
{
	uint64_t	min = UINT64_MAX;
	unsigned	i;

	for (i = 0; i < TXN_TIMERS; i++)
		if (t->due[i] < min)
			min = t->due[i];
	if (min == UINT64_MAX) {
		if (t->heap_idx == 0)
			return;
		txn_heap_remove(t);
	} else if (t->heap_idx != 0) {
		if ((uint32_t)min == t->tm_key)
			return;
		t->tm_key = (uint32_t)min;
		txn_heap_up(t->heap_idx - 1);
		txn_heap_down(t->heap_idx - 1);
	} else {
		t->tm_key = (uint32_t)min;
		if (T.nheap == T.heapcap) {
			T.heapcap = T.heapcap ? 2 * T.heapcap : 1024;
			T.heap = xrealloc(T.heap, T.heapcap *
			    sizeof(*T.heap));
		}
		txn_heap_put(T.nheap, t);
		txn_heap_up(T.nheap++);
	}
	txn_heap_arm();
}

/* A timer's due time, ms from now (lazy: on the grid); not armed yet. */
static void
txn_timer_due(struct txn *t, enum txn_timer which, uint32_t ms, bool lazy)
{
	uint64_t	due = timer_clock_ms(&T.heap_tm) + ms;

	if (lazy && ms > 0)
		due = (due + TXN_LAZY_MS - 1) / TXN_LAZY_MS *
		    TXN_LAZY_MS;
	t->due[which] = due;
}

void
txn_timer_set(struct txn *t, enum txn_timer which, uint32_t ms, bool lazy)
{
	if (t->rec)
		return;
	txn_timer_due(t, which, ms, lazy);
	txn_timer_arm(t);
}

void
txn_timer_stop(struct txn *t, enum txn_timer which)
{
	if (t->rec)
		return;
	t->due[which] = UINT64_MAX;
	txn_timer_arm(t);
}

bool
txn_timer_pending(const struct txn *t, enum txn_timer which)
{
	if (t->rec)
		return (false);
	return (t->due[which] != UINT64_MAX);
}

/* Every timer that is due, in enum order, then the next one is set. */
static void
txn_timer_fire(struct txn *t)
{
	uint64_t	 now = timer_clock_ms(&T.heap_tm);

	txn_heap_remove(t);		/* if a callback put it back */
	if (t->state != TXN_TERMINATED && t->due[TXN_TM_RETX] <= now) {
		t->due[TXN_TM_RETX] = UINT64_MAX;
		txn_retx_fire(t);
	}
	if (t->state != TXN_TERMINATED && t->due[TXN_TM_C] <= now) {
		t->due[TXN_TM_C] = UINT64_MAX;
		txn_c_fire(t);
	}
	if (t->state != TXN_TERMINATED && t->due[TXN_TM_LIFE] <= now) {
		t->due[TXN_TM_LIFE] = UINT64_MAX;
		txn_life_fire(t);
	}
	if (t->state != TXN_TERMINATED)
		txn_timer_arm(t);
}

static void
txn_retx_fire(struct txn *t)
{
	uint32_t	 t2 = T.set.t2_ms;

	switch (t->kind) {
	case TXN_IST:		/* G */
		if (t->state != TXN_COMPLETED)
			return;
		txn_xmit(t);
		t->retx_ms = min_u32(t->retx_ms * 2, t2);
		break;
	case TXN_ICT:		/* A */
		if (t->state != TXN_CALLING)
			return;
		txn_xmit(t);
		t->retx_ms *= 2;
		break;
	case TXN_NICT:		/* E */
		if (t->state != TXN_TRYING && t->state != TXN_PROCEEDING)
			return;
		txn_xmit(t);
		t->retx_ms = t->state == TXN_PROCEEDING ? t2 :
		    min_u32(t->retx_ms * 2, t2);
		break;
	default:
		return;
	}
	log_debug("txn %s: retransmit, next in %u ms", txn_id(t), t->retx_ms);
	txn_timer_set(t, TXN_TM_RETX, t->retx_ms, false);
}

static void
txn_life_fire(struct txn *t)
{
	bool		 timeout = false;

	switch (t->kind) {
	case TXN_ICT:		/* B, or the wait after a CANCEL */
		timeout = t->state == TXN_CALLING ||
		    t->state == TXN_PROCEEDING;
		break;
	case TXN_NICT:		/* F */
		timeout = t->state == TXN_TRYING ||
		    t->state == TXN_PROCEEDING;
		break;
	case TXN_IST:		/* H */
		if (t->state == TXN_COMPLETED)
			log_info("txn %s: no ACK for %d (Timer H) call=%s",
			    txn_id(t), t->code, txn_callid(t));
		break;
	default:
		break;
	}
	if (timeout) {
		T.timed_out++;
		log_info("txn %s: timed out in %s call=%s", txn_id(t),
		    state_names[t->state], txn_callid(t));
		if (t->owner != NULL && TXN_OPS(t)->timeout != NULL)
			TXN_OPS(t)->timeout(t, false);
	}
	if (t->state != TXN_TERMINATED)
		txn_enter(t, TXN_TERMINATED);
}

static void
txn_c_fire(struct txn *t)
{
	if (t->kind != TXN_ICT || (t->state != TXN_CALLING &&
	    t->state != TXN_PROCEEDING))
		return;
	log_info("txn %s: Timer C fired in %s call=%s", txn_id(t),
	    state_names[t->state], txn_callid(t));
	if (t->owner != NULL && TXN_OPS(t)->timeout != NULL)
		TXN_OPS(t)->timeout(t, true);
}
