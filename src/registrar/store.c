/* The location store: SQLite, WAL mode, one writer (us). */
#include "config.h"

#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "sqldb.h"
#include "store.h"
#include "timer.h"

#define SCHEMA_VERSION	1
/*
 * Changes wait this long for the commit: a transaction costs page writes
 * and file locks of its own, so at 250 registrations/s this makes 10
 * commits a second instead of 100.  A crash loses at most this much.
 */
#define COMMIT_MS	100

static struct {
	sqlite3		*db;
	sqlite3_stmt	*put;
	sqlite3_stmt	*del;
	sqlite3_stmt	*begin;		/* prepared once: no SQL parsed */
	sqlite3_stmt	*end;		/* per transaction */
	struct timer	 commit;
	bool		 in_txn;
	char		*path;
} S;

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS binding ("
    " aor TEXT NOT NULL, contact TEXT NOT NULL, expires INTEGER NOT NULL,"
    " q INTEGER NOT NULL, callid TEXT NOT NULL, cseq INTEGER NOT NULL,"
    " received TEXT NOT NULL, local TEXT, path TEXT, instance TEXT,"
    " reg_id INTEGER NOT NULL DEFAULT 0, user_agent TEXT,"
    " PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL);";

static void
store_warn(const char *what)
{
	log_warnx("store %s: %s: %s", S.path, what, sqlite3_errmsg(S.db));
}

/* One prepared statement run to its end; false if it failed. */
static bool
store_run(sqlite3_stmt *st)
{
	int	rc = sqlite3_step(st);

	sqlite3_reset(st);
	return (rc == SQLITE_DONE);
}

static void
store_commit(void *arg)
{
	(void)arg;
	if (!S.in_txn)
		return;
	S.in_txn = false;
	if (!store_run(S.end))
		store_warn("commit");
}

static void
store_begin(void)
{
	if (S.in_txn)
		return;
	if (!store_run(S.begin)) {
		store_warn("begin");
		return;
	}
	S.in_txn = true;
	timer_set(&S.commit, COMMIT_MS);
}

int
store_open(struct event_base *base, const char *path, char *err,
    size_t errlen)
{
	if (path == NULL || *path == '\0')
		return (0);
	if (sqldb_open(path, "store", schema, SCHEMA_VERSION, &S.db, err,
	    errlen) == -1)
		return (-1);
	if (sqlite3_prepare_v2(S.db, "INSERT OR REPLACE INTO binding (aor, "
	    "contact, expires, q, callid, cseq, received, local, path, "
	    "instance, reg_id, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
	    "?8, ?9, ?10, ?11, ?12)", -1, &S.put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(S.db, "DELETE FROM binding WHERE aor = ?1 AND "
	    "contact = ?2", -1, &S.del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(S.db, "BEGIN", -1, &S.begin, NULL) !=
	    SQLITE_OK ||
	    sqlite3_prepare_v2(S.db, "COMMIT", -1, &S.end, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(S.db));
		goto fail;
	}
	S.path = strdup(path);
	timer_init(&S.commit, base, store_commit, NULL);
	return (0);
fail:
	sqlite3_finalize(S.put);
	sqlite3_finalize(S.del);
	sqlite3_finalize(S.begin);
	sqlite3_finalize(S.end);
	sqlite3_close(S.db);
	memset(&S, 0, sizeof(S));
	return (-1);
}

bool
store_is_open(void)
{
	return (S.db != NULL);
}

void
store_flush(void)
{
	if (S.db == NULL)
		return;
	timer_stop(&S.commit);
	store_commit(NULL);
}

void
store_close(void)
{
	if (S.db == NULL)
		return;
	store_flush();
	sqlite3_finalize(S.put);
	sqlite3_finalize(S.del);
	sqlite3_finalize(S.begin);
	sqlite3_finalize(S.end);
	sqlite3_close(S.db);
	free(S.path);
	memset(&S, 0, sizeof(S));
}

/*
 * The server secret (nonces, Record-Route stamps): kept in the store so
 * that nonces and dialogs outlive a restart; random when memory-only.
 */
void
store_secret(uint8_t out[32])
{
	sqlite3_stmt	*st;
	bool		 found = false;

	if (S.db != NULL && sqlite3_prepare_v2(S.db, "SELECT value FROM meta "
	    "WHERE key = 'secret'", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_bytes(st, 0) == 32) {
			memcpy(out, sqlite3_column_blob(st, 0), 32);
			found = true;
		}
		sqlite3_finalize(st);
	}
	if (found)
		return;
	if (getrandom(out, 32, 0) != 32)
		fatal("getrandom");
	if (S.db != NULL && sqlite3_prepare_v2(S.db, "INSERT OR REPLACE INTO "
	    "meta (key, value) VALUES ('secret', ?1)", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_blob(st, 1, out, 32, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			store_warn("saving the secret");
		sqlite3_finalize(st);
	}
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

void
store_put(const struct store_row *r)
{
	if (S.db == NULL)
		return;
	store_begin();
	bind_text(S.put, 1, r->aor);
	bind_text(S.put, 2, r->contact);
	sqlite3_bind_int64(S.put, 3, r->expires);
	sqlite3_bind_int(S.put, 4, (int)r->q);
	bind_text(S.put, 5, r->callid);
	sqlite3_bind_int64(S.put, 6, r->cseq);
	bind_text(S.put, 7, r->received);
	bind_text(S.put, 8, r->local);
	bind_text(S.put, 9, r->path);
	bind_text(S.put, 10, r->instance);
	sqlite3_bind_int64(S.put, 11, r->reg_id);
	bind_text(S.put, 12, r->user_agent);
	if (sqlite3_step(S.put) != SQLITE_DONE)
		store_warn("saving a binding");
	sqlite3_reset(S.put);
}

void
store_del(const char *aor, const char *contact)
{
	if (S.db == NULL)
		return;
	store_begin();
	bind_text(S.del, 1, aor);
	bind_text(S.del, 2, contact);
	if (sqlite3_step(S.del) != SQLITE_DONE)
		store_warn("deleting a binding");
	sqlite3_reset(S.del);
}

static const char *
col(sqlite3_stmt *st, int i)
{
	return ((const char *)sqlite3_column_text(st, i));
}

/* Every binding not yet expired, to fn; the expired ones are deleted. */
int
store_load(void (*fn)(void *, const struct store_row *), void *arg,
    int64_t now)
{
	sqlite3_stmt	*st;
	int		 n = 0, rc;

	if (S.db == NULL)
		return (0);
	sqlite3_exec(S.db, "BEGIN", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(S.db, "DELETE FROM binding WHERE expires <= ?1",
	    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(S.db, "SELECT aor, contact, expires, q, "
	    "callid, cseq, received, local, path, instance, reg_id, "
	    "user_agent FROM binding", -1, &st, NULL) != SQLITE_OK) {
		store_warn("loading");
		sqlite3_exec(S.db, "ROLLBACK", NULL, NULL, NULL);
		return (-1);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_row	r;

		r.aor = col(st, 0);
		r.contact = col(st, 1);
		r.expires = sqlite3_column_int64(st, 2);
		r.q = (unsigned)sqlite3_column_int(st, 3);
		r.callid = col(st, 4);
		r.cseq = (uint32_t)sqlite3_column_int64(st, 5);
		r.received = col(st, 6);
		r.local = col(st, 7);
		r.path = col(st, 8);
		r.instance = col(st, 9);
		r.reg_id = (uint32_t)sqlite3_column_int64(st, 10);
		r.user_agent = col(st, 11);
		if (r.aor == NULL || r.contact == NULL || r.callid == NULL ||
		    r.received == NULL)
			continue;
		fn(arg, &r);
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_exec(S.db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_DONE)
		store_warn("loading");
	return (n);
}
