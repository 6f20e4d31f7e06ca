#ifndef OSPREY_SQLDB_H
#define OSPREY_SQLDB_H

#include <stddef.h>

struct sqlite3;

/*
 * An SQLite database of ours (the location's, the dialogs'): created
 * 0600 whatever the umask (it may hold the server secret; SQLite gives
 * its -wal and -shm files the database's mode, and group or other access
 * a file was made with earlier is taken away), WAL mode, synchronous
 * NORMAL, schema applied, and PRAGMA user_version set to version when new
 * or checked against it.  what names it in log lines.  -1: err says why
 * (as "path: reason"), nothing left open.
 */
int	sqldb_open(const char *path, const char *what, const char *schema,
	    int version, struct sqlite3 **db, char *err, size_t errlen);

#endif
