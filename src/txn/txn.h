#ifndef OSPREY_TXN_H
#define OSPREY_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hashtab.h"
#include "sipmsg.h"
#include "timer.h"
#include "tp.h"

/* RFC 3261 section 17 transactions, RFC 6026 Accepted state. */

enum txn_kind {
	TXN_IST,	/* INVITE server */
	TXN_NIST,	/* non-INVITE server */
	TXN_ICT,	/* INVITE client */
	TXN_NICT,	/* non-INVITE client */
};

enum txn_state {
	TXN_TRYING,
	TXN_CALLING,
	TXN_PROCEEDING,
	TXN_COMPLETED,
	TXN_CONFIRMED,
	TXN_ACCEPTED,
	TXN_TERMINATED,
};

struct txn_settings {
	uint32_t	 t1_ms;
	uint32_t	 t2_ms;
	uint32_t	 t4_ms;
	uint32_t	 c_ms;		/* Timer C, proxy INVITE branches */
	uint32_t	 d_ms;		/* Timer D */
};

struct txn;

/*
 * A struct tp_addr of an IPv4 or IPv6 peer (every transport's) in 32 bytes
 * instead of 136: what a transaction and a response context keep.
 */
struct txn_addr {
	union {
		struct sockaddr_in	 sin;
		struct sockaddr_in6	 sin6;
	}		 sa;
	uint8_t		 len;		/* of sa */
	uint8_t		 proto;
	uint8_t		 flags;
};

void		 txn_addr_put(struct txn_addr *, const struct tp_addr *);
void		 txn_addr_get(const struct txn_addr *, struct tp_addr *);
bool		 txn_addr_ok(const struct txn_addr *);

/*
 * The timers that only end a transaction that absorbs retransmissions
 * (D I J K L M) are due on a grid of this step, at most this much late, so
 * those of many calls end in one wake-up instead of one each.
 */
#define TXN_LAZY_MS	50

/* A transaction's timers, in the order they fire when due together. */
enum txn_timer {
	TXN_TM_RETX,	/* A, E, G */
	TXN_TM_C,	/* C */
	TXN_TM_LIFE,	/* B D F H I J K L M */
	TXN_TIMERS
};

/* Up-calls to the transaction user, registered with txn_init(). */
struct txn_ops {
	/* A response for a client transaction (resp is borrowed). */
	void	(*response)(struct txn *, const struct sipmsg *);
	/* Timer B or F (timer_c false), or Timer C (true), fired. */
	void	(*timeout)(struct txn *, bool timer_c);
	/* Client: the connection to the peer failed (17.1.4: a 503). */
	void	(*transport_error)(struct txn *);
	/* The transaction is gone; the owner drops its pointer. */
	void	(*terminated)(struct txn *);
	/*
	 * Optional: the transaction has nothing more for its owner (it only
	 * absorbs retransmissions until its timer ends, as it would not
	 * exist over TCP): the owner drops its pointer as for terminated,
	 * which is then not called.  Called at the end of the loop turn in
	 * which it entered that state (txn_reap()).  Without it the owner
	 * keeps the transaction until it terminates.
	 */
	void	(*done)(struct txn *);
};

/*
 * A transaction.  The server transaction owns the request: its bytes (raw)
 * for as long as it lives, indexed (req) only in the loop turn it came in
 * and again in a turn that asks for it (txn_server_request()).  The client
 * transaction owns the bytes it retransmits (and, once COMPLETED, its ACK).
 * A terminated transaction is unlinked at once and freed by txn_reap() at
 * the end of the loop turn (or by a zero timer when nobody calls it).
 *
 * Once it only absorbs retransmissions (D I J K L M) and nobody owns it,
 * txn_reap() replaces it in the table by a compact record (rec): the
 * fields up to the mark below, then its key, Call-ID, the address to
 * resend to and the bytes to resend, in one allocation of TXN_REC_HEAD
 * bytes and those; no timer of its own (txn_table.c expires the records
 * from FIFO lists).  Whoever gets one from txn_match_*() or txn_foreach()
 * reads only the fields above the mark.
 */
struct txn {
	struct hnode	 node;		/* its key: keybuf, or a record's
					   tail */
	char		*out;		/* owned: request, last response or ACK
					   (a record: in its tail) */
	void		*owner;		/* the transaction user's; a record:
					   NULL */
	char		*callid;	/* in the txn's allocation, for logs;
					   may be NULL */
	struct sipmsg	*req;		/* server: the request indexed, for
					   this turn (owned); else NULL */
	struct txn	*rec_next;	/* a record: next on its FIFO list;
					   a server's req: on the list of
					   those txn_reap() lets go */
	union {
		uint64_t rec_due;	/* a record: when it ends */
		struct {		/* a full one */
			uint32_t retx_ms;
			uint32_t life_ms;	/* what LIFE was last set to */
		};
	};
	uint32_t	 outlen;
	uint32_t	 cseq;		/* server: the request's */
	int		 code;		/* last status sent or received */
	uint8_t		 kind;		/* enum txn_kind */
	uint8_t		 state;		/* enum txn_state */
	uint8_t		 method;	/* server: enum sip_method */
	bool		 rec;		/* a compact record: nothing below */
	bool		 detached;	/* done: the owner let it go */
	bool		 open;		/* counted in txn_open() */
	bool		 rec_fm;	/* a record in the table's fifomem
					   (else malloc's) */
	uint32_t	 serial;	/* its number: txn_id(), the heap's
					   order on a tie */
	/* The mark: a full transaction only, from here on. */
	struct tp_sock	*sock;
	uint32_t	 bytes;		/* counted in txn_bytes() */
	uint32_t	 heap_idx;	/* its place in the timer heap + 1;
					   0: none */
	uint64_t	 due[TXN_TIMERS];	/* timer_clock_ms(), or never */
	uint32_t	 tm_key;	/* in the table's timer heap: the
					   earliest of due[], its low 32 bits
					   (all there are due within days) */
	struct txn_addr	 peer;		/* server: responses go here */
	bool		 done_queued : 1;
	bool		 cancel_pending : 1;	/* ICT: CANCEL once a 1xx
						   comes */
	bool		 cancel_sent : 1;
	bool		 req_queued : 1;	/* req on the list (rec_next) */
	bool		 settled : 1;	/* server: responses only, from the
					   end of the turn */
	bool		 trimmed : 1;	/* server: raw holds only that */
	uint8_t		 ops;		/* its up-calls: TXN_OPS() */
	struct txn	*reap_next;
	struct txn	*done_next;	/* on the list for ops->done */
	union {
		struct {		/* server (IST, NIST) */
			char	*raw;	/* owned: the request's bytes,
					   once req is let go */
			struct tp_addr *alt;	/* owned: over TCP/TLS, if
						   peer's flow is gone */
			uint32_t rawlen;
		};
		struct {		/* client (ICT, NICT) */
			char	*cancel_reason;	/* owned */
			char	*tls_name;	/* owned: the TLS peer's
						   name */
			int	 slot;	/* the transaction user's */
		};
	};
	char		 keybuf[];	/* the key (and Call-ID) */
};


#define TXN_REC_HEAD	offsetof(struct txn, sock)

/* The up-calls of a (full) transaction. */
#define TXN_OPS(t)	txn_ops_of((t)->ops)

/* Client (ICT, NICT) or server (IST, NIST): which part of the union. */
#define TXN_CLIENT(t)	((t)->kind == TXN_ICT || (t)->kind == TXN_NICT)

void		 txn_init(struct event_base *, const struct txn_settings *,
		     const struct txn_ops *);
void		 txn_set_settings(const struct txn_settings *);
void		 txn_shutdown(void);
void		 txn_reap(void);
void		 txn_set_driven(void);
unsigned	 txn_count(void);
unsigned	 txn_records(void);
unsigned	 txn_open(void);
size_t		 txn_bytes(void);
unsigned	 txn_open_all(void);
size_t		 txn_bytes_all(void);
void		 txn_stats(uint64_t *created, uint64_t *timed_out);
void		 txn_foreach(void (*)(struct txn *, void *), void *);
void		 txn_peer(const struct txn *, struct tp_addr *);
void		 txn_transport_lost(const struct tp_addr *);
bool		 txn_reliable(const struct txn *);
const char	*txn_state_name(enum txn_state);
const char	*txn_id(const struct txn *);

/* Keys (RFC 3261 17.2.3 and the RFC 2543 fallback; 17.1.3). */
void		 txn_key_server(const struct sipmsg *, enum sip_method,
		     struct buf *);
void		 txn_key_client(struct slice branch, struct slice method,
		     struct buf *);
struct txn	*txn_find(const char *, size_t);
struct txn	*txn_match_request(const struct sipmsg *);
struct txn	*txn_match_cancel(const struct sipmsg *);
struct txn	*txn_match_response(const struct sipmsg *);

/* Table internals for txn_server.c / txn_client.c. */
struct txn	*txn_alloc(enum txn_kind, struct buf *key, struct slice);
void		 txn_enter(struct txn *, enum txn_state);
void		 txn_xmit(struct txn *);
void		 txn_set_ops(struct txn *, const struct txn_ops *);
const struct txn_ops *txn_ops_of(uint8_t);
void		 txn_trim(struct txn *);
void		 txn_req_queue(struct txn *);
/* The header lines txn_lines() keeps. */
#define TXN_L_VIA	0x01	/* every Via line */
#define TXN_L_TOPVIA	0x02	/* the first Via line only */
#define TXN_L_FROM	0x04
#define TXN_L_TO	0x08
#define TXN_L_CALLID	0x10
#define TXN_L_CSEQ	0x20
#define TXN_L_ROUTE	0x40
char		*txn_lines(const char *, size_t, unsigned, size_t *);
void		 txn_timer_set(struct txn *, enum txn_timer, uint32_t, bool);
void		 txn_timer_stop(struct txn *, enum txn_timer);
bool		 txn_timer_pending(const struct txn *, enum txn_timer);
const char	*txn_callid(const struct txn *);
const struct txn_settings *txn_settings(void);

/* Server side. */
struct txn	*txn_server_new(struct sipmsg *, struct tp_sock *,
		     const struct tp_addr *);
int		 txn_server_reply(struct txn *, int, char *, size_t);
const struct sipmsg *txn_server_request(struct txn *);
void		 txn_server_settle(struct txn *);
void		 txn_server_retransmit(struct txn *, const struct sipmsg *);
void		 txn_server_peer(const struct sipmsg *, const struct tp_addr *,
		     struct tp_addr *);

/* Client side. */
struct txn	*txn_client_new(enum txn_kind, struct slice branch,
		     struct slice method, char *, size_t, struct tp_sock *,
		     const struct tp_addr *, void *, int);
struct txn	*txn_client_new_named(enum txn_kind, struct slice,
		     struct slice, char *, size_t, struct tp_sock *,
		     const struct tp_addr *, const char *, void *, int);
struct txn	*txn_client_start(enum txn_kind, struct slice, struct slice,
		     struct slice, char *, size_t, struct tp_sock *,
		     const struct tp_addr *, const char *, void *, int);
void		 txn_client_response(struct txn *, const struct sipmsg *);
void		 txn_client_cancel(struct txn *, const char *reason);
void		 txn_client_arm_c(struct txn *);

#endif
