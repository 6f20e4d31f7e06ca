/*
 * The dialog store: SQLite, WAL mode, one writer (the main loop).  Workers
 * queue puts and deletes; the main loop's timer writes them in order, in
 * one transaction, every DIALOG_COMMIT_MS.  A crash loses at most that
 * much and what the queue held.
 */
#include "config.h"

#include <sys/random.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dialog_store.h"
#include "log.h"
#include "sqldb.h"
#include "timer.h"
#include "xmalloc.h"

#define SCHEMA_VERSION	1

/* One change waiting for the main loop (rec NULL: a delete). */
struct op {
	struct op	*next;
	size_t		 klen;
	size_t		 len;
	char		*rec;		/* in this allocation, after key */
	char		 key[];
};

static struct {
	sqlite3		*db;
	sqlite3_stmt	*put;
	sqlite3_stmt	*del;
	struct timer	 tick;
	char		*path;
	pthread_mutex_t	 mu;		/* head, tail */
	struct op	*head, **tail;
	bool		 open;		/* atomic: workers read it */
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS dialog ("
    " key BLOB PRIMARY KEY, rec BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL);";

static void
dstore_warn(const char *what)
{
	log_warnx("dialog store %s: %s: %s", S.path, what,
	    sqlite3_errmsg(S.db));
}

/* Write what the workers queued, in one transaction. */
static void
dstore_write(void)
{
	struct op	*o, *next;
	sqlite3_stmt	*st;

	pthread_mutex_lock(&S.mu);
	o = S.head;
	S.head = NULL;
	S.tail = &S.head;
	pthread_mutex_unlock(&S.mu);
	if (o == NULL)
		return;
	if (sqlite3_exec(S.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		dstore_warn("begin");
	for (; o != NULL; o = next) {
		next = o->next;
		st = o->rec != NULL ? S.put : S.del;
		sqlite3_bind_blob(st, 1, o->key, (int)o->klen, SQLITE_STATIC);
		if (o->rec != NULL)
			sqlite3_bind_blob(st, 2, o->rec, (int)o->len,
			    SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			dstore_warn(o->rec != NULL ? "saving a dialog" :
			    "deleting a dialog");
		sqlite3_reset(st);
		free(o);
	}
	if (sqlite3_exec(S.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		dstore_warn("commit");
}

static void
dstore_tick(void *arg)
{
	(void)arg;
	dstore_write();
	timer_set(&S.tick, DIALOG_COMMIT_MS);
}

int
dialog_store_open(struct event_base *base, const char *path, char *err,
    size_t errlen)
{
	if (path == NULL || *path == '\0')
		return (0);
	if (sqldb_open(path, "dialog store", schema, SCHEMA_VERSION, &S.db,
	    err, errlen) == -1)
		return (-1);
	if (sqlite3_prepare_v2(S.db, "INSERT OR REPLACE INTO dialog (key, rec) "
	    "VALUES (?1, ?2)", -1, &S.put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(S.db, "DELETE FROM dialog WHERE key = ?1", -1,
	    &S.del, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(S.db));
		goto fail;
	}
	S.path = xstrdup(path);
	S.head = NULL;
	S.tail = &S.head;
	timer_init(&S.tick, base, dstore_tick, NULL);
	timer_set(&S.tick, DIALOG_COMMIT_MS);
	__atomic_store_n(&S.open, true, __ATOMIC_RELEASE);
	return (0);
fail:
	sqlite3_finalize(S.put);
	sqlite3_finalize(S.del);
	sqlite3_close(S.db);
	S.db = NULL;
	S.put = S.del = NULL;
	return (-1);
}

bool
dialog_store_is_open(void)
{
	return (__atomic_load_n(&S.open, __ATOMIC_ACQUIRE));
}

static void
dstore_queue(const char *key, size_t klen, const void *rec, size_t len)
{
	struct op	*o = xmalloc(sizeof(*o) + klen + len);

	o->next = NULL;
	o->klen = klen;
	o->len = len;
	memcpy(o->key, key, klen);
	o->rec = NULL;
	if (rec != NULL) {
		o->rec = o->key + klen;
		memcpy(o->rec, rec, len);
	}
	pthread_mutex_lock(&S.mu);
	*S.tail = o;
	S.tail = &o->next;
	pthread_mutex_unlock(&S.mu);
}

/* Any worker: rec (len bytes) is the dialog's under key now. */
void
dialog_store_put(const char *key, size_t klen, const void *rec, size_t len)
{
	if (dialog_store_is_open())
		dstore_queue(key, klen, rec, len);
}

void
dialog_store_del(const char *key, size_t klen)
{
	if (dialog_store_is_open())
		dstore_queue(key, klen, NULL, 0);
}

/* Every stored dialog to fn (the main thread, at start). */
int
dialog_store_load(void (*fn)(void *, const void *, size_t), void *arg)
{
	sqlite3_stmt	*st;
	int		 n = 0, rc;

	if (S.db == NULL)
		return (0);
	if (sqlite3_prepare_v2(S.db, "SELECT rec FROM dialog", -1, &st,
	    NULL) != SQLITE_OK) {
		dstore_warn("loading");
		return (-1);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(arg, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		dstore_warn("loading");
	return (n);
}

/*
 * The server secret (Record-Route stamps, nonces) when the registrar has
 * no database of its own: kept here so that the stamps of the stored
 * dialogs still check after a restart.
 */
void
dialog_store_secret(uint8_t out[32])
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
			dstore_warn("saving the secret");
		sqlite3_finalize(st);
	}
}

/* The main thread: what is queued, written now (a clean stop). */
void
dialog_store_flush(void)
{
	if (S.db != NULL)
		dstore_write();
}

void
dialog_store_close(void)
{
	struct op	*o, *next;

	if (S.db == NULL)
		return;
	__atomic_store_n(&S.open, false, __ATOMIC_RELEASE);
	timer_stop(&S.tick);
	dstore_write();
	for (o = S.head; o != NULL; o = next) {
		next = o->next;
		free(o);
	}
	S.head = NULL;
	sqlite3_finalize(S.put);
	sqlite3_finalize(S.del);
	sqlite3_close(S.db);
	S.db = NULL;
	S.put = S.del = NULL;
	free(S.path);
	S.path = NULL;
}
