#ifndef OSPREY_WORKER_H
#define OSPREY_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "mailbox.h"
#include "tp.h"

/*
 * Worker loops (osprey.conf "workers"): the main thread is worker 0 and
 * runs everything it ran before; workers 1..N-1 are threads, each with its
 * own event loop, UDP sockets on the same addresses (SO_REUSEPORT),
 * transaction table, proxy state and resolver.  A message belongs to the
 * worker shard_of() names for its Call-ID; one received by another worker
 * is handed to its owner through the owner's mailbox.  A connection
 * belongs to the worker that accepted (its own SO_REUSEPORT listener) or
 * opened it: another worker's sends on it are handed to that worker.
 * The design is written down in doc/HACKING.md, "Workers".
 */

/* Set up worker id's loop (id > 0): its sockets, proxy, resolver. */
typedef int worker_setup_fn(unsigned id, struct event_base *, struct tp *,
    void *, char *, size_t);
/* And take it down, on its own thread, after its loop has ended. */
typedef void worker_teardown_fn(unsigned id, void *);

struct worker_stats {
	uint64_t	 handed_out;	/* received here, owned elsewhere */
	uint64_t	 handed_in;	/* owned here, received elsewhere */
	uint64_t	 stream_out;	/* stream sends handed to the owner */
	uint64_t	 handoff_dropped;	/* the owner had HANDOFF_MAX waiting */
	uint64_t	 connections;	/* open, this worker's */
	uint64_t	 accepted;	/* by this worker's listeners */
};

/* Every worker's figures, added up. */
struct worker_totals {
	unsigned	 txns, pending, records;
	size_t		 bytes;
	uint64_t	 created, timed_out;
	uint64_t	 rx_datagrams, tx_errors;	/* UDP, every socket */
	unsigned	 conns;		/* open, every worker's */
	struct tp_stream_stats streams;	/* every worker's, summed */
};

int	 worker_start(unsigned, struct event_base *, struct tp *,
	    worker_setup_fn *, worker_teardown_fn *, void *, char *, size_t);
void	 worker_recv(void *, struct tp_sock *, const struct tp_addr *,
	    const char *, size_t);
void	 worker_run(struct event_base *, struct tp *);
void	 worker_each(mailbox_fn *, void *);
void	 worker_pause(void);
void	 worker_resume(void);
void	 worker_stop(void);
void	 worker_stats(unsigned, struct worker_stats *);
unsigned worker_count(void);
struct tp *worker_tp(void);	/* this thread's */

/* The main thread's view of every worker (ctl, metrics, STATUS=). */
struct proxy_stats;
struct txn;
const struct proxy_stats *worker_totals(struct worker_totals *);
void	 worker_txn_foreach(void (*)(struct txn *, void *), void *);
void	 worker_conn_foreach(void (*)(const struct tp_conn_info *, void *),
	    void *);
int	 worker_cancel_call(const char *, uint32_t, char *, size_t);
struct dialog_info;
int	 worker_hangup(const char *, char *, size_t);
void	 worker_post(unsigned, mailbox_fn *, void *);
void	 worker_dialog_foreach(void (*)(const struct dialog_info *, void *),
	    void *);
void	 worker_stop_accepting(void);

#endif
