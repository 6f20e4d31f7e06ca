#ifndef OSPREY_DIALOG_REDIS_H
#define OSPREY_DIALOG_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct event_base;
struct redis_settings;

/*
 * Dialogs shared through Redis (dialog.backend = "redis"): each worker
 * its own connection for commands and one subscribed to osprey:dlg.
 * A confirmed dialog is a string key osprey:dlg:{CALLID}:FTAG:TTAG whose
 * value is dialog.c's record (the drec dialog.database keeps); the hash
 * tag puts a call's dialogs in one slot.  Every command is asynchronous
 * and fire-and-forget but the fetch; failures are counted.
 *
 * The dialog stamps in our Record-Route are made under the cluster
 * secret's key for them (cluster.c, osprey:cluster:secret), so that every
 * node checks every node's.
 */
#define DLGR_CHANNEL	"osprey:dlg"
#define DLGR_MARGIN_S	60	/* past the dialog timeout */
#define DLGR_NO_TIMEOUT_S 86400	/* the expiry when there is no timeout */

/* Who is told (on the worker). */
struct dlgr_hooks {
	void	(*republish)(void);	/* Redis came back: write ours */
	/* Another node ended a dialog (Call-ID, tags): drop any copy. */
	void	(*ended)(struct slice, struct slice, struct slice);
};

/* Process-wide, before the workers start. */
void	 dlgr_configure(const struct redis_settings *);
bool	 dlgr_configured(void);
bool	 dlgr_key(uint64_t key[2], uint32_t *gen);
void	 dlgr_counts(uint64_t *errors);

/* Each worker's. */
int	 dlgr_start(struct event_base *, const struct dlgr_hooks *);
void	 dlgr_stop(void);
bool	 dlgr_up(void);
int	 dlgr_put(struct slice callid, struct slice ftag, struct slice ttag,
	    const void *, size_t, uint32_t ttl_s);
void	 dlgr_del(struct slice callid, struct slice ftag, struct slice ttag);

/*
 * The record (borrowed), or NULL: none (failed false), or Redis failed
 * (an error, no reply within redis.timeout, the connection went).
 */
typedef void dlgr_fetch_fn(void *, const void *, size_t, bool failed);
int	 dlgr_fetch(struct slice callid, struct slice tag1, struct slice tag2,
	    dlgr_fetch_fn *, void *);

/*
 * An early dialog another node owns (a copy adopted here, dialog.c): its
 * key is written and deleted only while Redis holds an early record
 * there (the byte at early_off of it 1), never over the confirmed record
 * its node wrote when the call was answered.  dlgr_end_early() deletes
 * it and publishes the end if it is early; a confirmed record is handed
 * to fn (and, take, deleted and its end published: this node ends the
 * call); fn NULL: not told.  -1: Redis is down, nothing asked.
 */
enum dlgr_end {
	DLGR_END_FAILED,	/* Redis failed: nothing known */
	DLGR_END_GONE,		/* no record (ended on its node) */
	DLGR_END_EARLY,		/* the early record: deleted */
	DLGR_END_CONFIRMED	/* answered: the record given */
};
typedef void dlgr_end_fn(void *, enum dlgr_end, const void *, size_t);
int	 dlgr_put_early(struct slice callid, struct slice ftag,
	    struct slice ttag, const void *, size_t, uint32_t ttl_s,
	    size_t early_off);
int	 dlgr_end_early(struct slice callid, struct slice ftag,
	    struct slice ttag, size_t early_off, bool take, dlgr_end_fn *,
	    void *);

/* An INVITE that rang: osprey:dlg:{CALLID}:FTAG: (for its CANCEL). */
int	 dlgr_put_invite(struct slice callid, struct slice ftag, const void *,
	    size_t, uint32_t ttl_s);
void	 dlgr_del_invite(struct slice callid, struct slice ftag);
int	 dlgr_fetch_invite(struct slice callid, struct slice ftag,
	    dlgr_fetch_fn *, void *);

#endif
