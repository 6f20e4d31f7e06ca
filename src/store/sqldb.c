/* Opening one of our SQLite databases: private, WAL, schema checked. */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "sqldb.h"

/*
 * The database may hold the server secret: create it 0600 before SQLite
 * opens it, and take group and other access away from a database, -wal
 * or -shm file made earlier with more.
 */
static int
sqldb_private(const char *path, const char *what, char *err, size_t errlen)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char		 p[4096];
	struct stat	 sb;
	size_t		 i;
	int		 fd;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s%s", path, sfx[i]) >=
		    sizeof(p)) {
			snprintf(err, errlen, "%s: path too long", path);
			return (-1);
		}
		fd = open(p, O_RDWR | O_CLOEXEC | (i == 0 ? O_CREAT : 0),
		    S_IRUSR | S_IWUSR);
		if (fd == -1 && i > 0 && errno == ENOENT)
			continue;
		if (fd == -1) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			return (-1);
		}
		if (fstat(fd, &sb) == 0 && (sb.st_mode & (S_IRWXG | S_IRWXO))) {
			if (fchmod(fd, sb.st_mode & S_IRWXU) == -1)
				log_warn("%s %s: chmod", what, p);
			else
				log_notice("%s %s: mode %04o, now %04o (it "
				    "may hold the server secret)", what, p,
				    (unsigned)(sb.st_mode & 07777),
				    (unsigned)(sb.st_mode & S_IRWXU));
		}
		close(fd);
	}
	return (0);
}

int
sqldb_open(const char *path, const char *what, const char *schema,
    int version, sqlite3 **dbp, char *err, size_t errlen)
{
	sqlite3		*db = NULL;
	sqlite3_stmt	*st;
	int		 v = 0;

	*dbp = NULL;
	if (sqldb_private(path, what, err, errlen) == -1)
		return (-1);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ?
		    sqlite3_errmsg(db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		goto fail;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (v == 0) {
		char	sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", version);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	} else if (v != version) {
		snprintf(err, errlen, "%s: schema version %d, this ospreyd "
		    "knows %d", path, v, version);
		goto fail;
	}
	*dbp = db;
	return (0);
fail:
	sqlite3_close(db);
	return (-1);
}
