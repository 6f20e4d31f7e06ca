/*
 * Call detail records: a bounded queue that any worker adds to, and one
 * writer thread that owns every sink (a CSV or JSON-lines file that it
 * rotates, an SQLite table, the journal).  The event loops never touch a
 * disk: cdr_write() copies the record and signals; a full queue drops the
 * record and counts it rather than stall a loop (a stuck disk must not
 * stop the calls).  A reload and a stop are ordered with the records:
 * what was queued before them is written under the settings it was
 * queued under, and synced.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cdr.h"
#include "log.h"
#include "sysd.h"
#include "xmalloc.h"

#define CDR_BATCH	1024		/* records a writer turn, a commit */
#define CDR_QUEUE_BYTES	(64u << 20)	/* the queue's memory, at most */
#define CDR_WARN_S	10		/* one warning a sink, a queue */
/* The journal's MESSAGE_ID of a record: journalctl MESSAGE_ID=... */
#define CDR_MESSAGE_ID	"6a3e0c1f9b5d4e2f8c7a1b0d3e5f7a9c"

const char cdr_csv_header[] = "call_id,from_tag,to_tag,caller,callee,ruri,"
    "identity,src_ip,src_port,transport,start_time,answer_time,end_time,"
    "duration,setup_time,code,cause,ended_by\n";

static const char *const ended_by_names[] = {
	[CDR_BY_NONE] = "unknown",
	[CDR_BY_CALLER] = "caller",
	[CDR_BY_CALLEE] = "callee",
	[CDR_BY_PROXY] = "proxy",
	[CDR_BY_ADMIN] = "admin",
};

const char *
cdr_ended_by_name(enum cdr_ended_by b)
{
	if ((unsigned)b >= sizeof(ended_by_names) / sizeof(ended_by_names[0]))
		return ("unknown");
	return (ended_by_names[b]);
}

/*
 * Text of the network into a sink.  Bytes that are not UTF-8, and
 * control characters, cannot go out as they are: JSON writes a control
 * character as its escape and a stray byte as \udcXX (the lone surrogate
 * Python's surrogateescape reads back as that byte); every other sink
 * writes either as %XX, as in a URI.  So a record is always one line of
 * valid UTF-8 and nothing is dropped.
 */
enum text_mode {
	TEXT_PLAIN,
	TEXT_CSV,		/* inside quotes: " doubled */
	TEXT_JSON		/* inside quotes */
};

/* The length of the UTF-8 sequence at p, 0 if there is none. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char	c = p[0];
	uint32_t	cp;
	size_t		len, i;

	if (c < 0x80)
		return (1);
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return (0);
	if (n < len)
		return (0);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		return (0);		/* overlong, or a surrogate */
	if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
		return (0);
	return (len);
}

static void
cdr_add_text(struct buf *b, const char *s, size_t n, enum text_mode m)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p = (const unsigned char *)s;
	char			 esc[8];
	size_t			 i = 0, k, run;

	while (i < n) {
		for (run = i; run < n && p[run] >= 0x20 && p[run] < 0x7f &&
		    p[run] != '"' && p[run] != '\\'; run++)
			;
		buf_add(b, p + i, run - i);	/* the plain ASCII at once */
		if ((i = run) == n)
			break;
		k = utf8_len(p + i, n - i);
		if (k > 1) {
			buf_add(b, p + i, k);
			i += k;
			continue;
		}
		if (k == 1 && p[i] >= 0x20 && p[i] != 0x7f) {	/* " or \ */
			if (m == TEXT_JSON || (m == TEXT_CSV && p[i] == '"'))
				buf_add(b, m == TEXT_JSON ? "\\" : "\"", 1);
			buf_add(b, p + i++, 1);
			continue;
		}
		if (m != TEXT_JSON)
			snprintf(esc, sizeof(esc), "%%%c%c", hex[p[i] >> 4],
			    hex[p[i] & 15]);
		else if (k == 0)
			snprintf(esc, sizeof(esc), "\\udc%02x", p[i]);
		else if (p[i] == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (p[i] == '\r')
			snprintf(esc, sizeof(esc), "\\r");
		else if (p[i] == '\t')
			snprintf(esc, sizeof(esc), "\\t");
		else
			snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
		buf_adds(b, esc);
		i++;
	}
}

/* RFC 4180: quoted when it holds a comma or a quote (CR, LF are %0D %0A). */
static void
csv_field(struct buf *b, struct slice s)
{
	bool	quote = memchr(s.p, ',', s.len) != NULL ||
		    memchr(s.p, '"', s.len) != NULL;

	if (quote)
		buf_add(b, "\"", 1);
	cdr_add_text(b, s.p, s.len, quote ? TEXT_CSV : TEXT_PLAIN);
	buf_add(b, quote ? "\"," : ",", quote ? 2 : 1);
}

static void
json_field(struct buf *b, const char *name, struct slice s)
{
	buf_addf(b, "\"%s\":\"", name);
	cdr_add_text(b, s.p, s.len, TEXT_JSON);
	buf_add(b, "\",", 2);
}

/* What is worked out of a record, the same for every sink. */
struct view {
	char		 ip[INET6_ADDRSTRLEN];
	unsigned	 port;
	const char	*transport;
	bool		 answered;
	char		 start[32], answer[32], end[32];	/* ISO 8601 */
	char		 duration[32], setup[32];		/* s.mmm */
};

static int64_t
ts_ms(const struct timespec *t)
{
	return ((int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000);
}

/* 2026-12-06T08:27:01.123Z */
static void
iso_time(char *out, size_t len, const struct timespec *ts)
{
	struct tm	tm;
	time_t		t = ts->tv_sec;
	size_t		n;

	gmtime_r(&t, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03ldZ", ts->tv_nsec / 1000000);
}

static void
secs(char *out, size_t len, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	snprintf(out, len, "%lld.%03lld", (long long)(ms / 1000),
	    (long long)(ms % 1000));
}

static void
cdr_view(const struct cdr *c, struct view *v)
{
	v->answered = c->answer.tv_sec != 0 || c->answer.tv_nsec != 0;
	v->ip[0] = '\0';
	v->port = 0;
	if (c->src.ss.ss_family == AF_INET || c->src.ss.ss_family == AF_INET6) {
		tp_addr_ip(&c->src, v->ip, sizeof(v->ip));
		v->port = tp_addr_port(&c->src);
	}
	v->transport = tp_proto_param(c->src.proto);
	iso_time(v->start, sizeof(v->start), &c->start);
	iso_time(v->end, sizeof(v->end), &c->end);
	v->answer[0] = '\0';
	if (v->answered)
		iso_time(v->answer, sizeof(v->answer), &c->answer);
	secs(v->duration, sizeof(v->duration), v->answered ?
	    ts_ms(&c->end) - ts_ms(&c->answer) : 0);
	secs(v->setup, sizeof(v->setup), ts_ms(v->answered ? &c->answer :
	    &c->end) - ts_ms(&c->start));
}

void
cdr_format_csv(struct buf *b, const struct cdr *c)
{
	struct view	v;

	cdr_view(c, &v);
	csv_field(b, c->callid);
	csv_field(b, c->from_tag);
	csv_field(b, c->to_tag);
	csv_field(b, c->caller);
	csv_field(b, c->callee);
	csv_field(b, c->ruri);
	csv_field(b, c->identity);
	buf_addf(b, "%s,%u,%s,%s,%s,%s,%s,%s,%d,", v.ip, v.port, v.transport,
	    v.start, v.answer, v.end, v.duration, v.setup, c->code);
	if (c->cause != 0)
		buf_addf(b, "%d", c->cause);
	buf_addf(b, ",%s\n", cdr_ended_by_name(c->ended_by));
}

void
cdr_format_json(struct buf *b, const struct cdr *c)
{
	struct view	v;

	cdr_view(c, &v);
	buf_add(b, "{", 1);
	json_field(b, "call_id", c->callid);
	json_field(b, "from_tag", c->from_tag);
	json_field(b, "to_tag", c->to_tag);
	json_field(b, "caller", c->caller);
	json_field(b, "callee", c->callee);
	json_field(b, "ruri", c->ruri);
	json_field(b, "identity", c->identity);
	buf_addf(b, "\"src_ip\":\"%s\",\"src_port\":%u,\"transport\":\"%s\","
	    "\"start_time\":\"%s\",", v.ip, v.port, v.transport, v.start);
	if (v.answered)
		buf_addf(b, "\"answer_time\":\"%s\",", v.answer);
	else
		buf_adds(b, "\"answer_time\":null,");
	buf_addf(b, "\"end_time\":\"%s\",\"duration\":%s,\"setup_time\":%s,"
	    "\"code\":%d,", v.end, v.duration, v.setup, c->code);
	if (c->cause != 0)
		buf_addf(b, "\"cause\":%d,", c->cause);
	else
		buf_adds(b, "\"cause\":null,");
	buf_addf(b, "\"ended_by\":\"%s\"}\n", cdr_ended_by_name(c->ended_by));
}

/* Settings. */

bool
cdr_settings_active(const struct cdr_settings *s)
{
	return (s->file != NULL || s->database != NULL || s->journal);
}

void
cdr_settings_copy(struct cdr_settings *to, const struct cdr_settings *from)
{
	*to = *from;
	to->file = from->file ? xstrdup(from->file) : NULL;
	to->database = from->database ? xstrdup(from->database) : NULL;
}

void
cdr_settings_cleanup(struct cdr_settings *s)
{
	free(s->file);
	free(s->database);
	s->file = s->database = NULL;
}

/* The queue: shared by every worker and the writer, under Q.mu. */

struct rec {
	struct cdr	 c;		/* its slices point into data */
	size_t		 size;		/* of the allocation */
	bool		 failed;	/* a sink did not take it */
	char		 data[];
};

/* A reload: its settings apply from record number at on. */
struct swap {
	struct cdr_settings	 set;		/* owned */
	uint64_t		 at;
	struct swap		*next;
};

static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 wake;		/* the writer's */
	pthread_t		 th;
	bool			 started;
	bool			 stopping;
	atomic_bool		 active;	/* the newest settings write */
	struct rec		**ring;		/* owned; cap of them */
	uint32_t		 cap, head, n, limit;
	size_t			 bytes;
	uint64_t		 seq_in;	/* records queued ever */
	uint64_t		 seq_out;	/* records taken ever */
	struct swap		*swaps;		/* owned, by at */
	time_t			 warned;	/* the last drop warning */
	uint64_t		 unwarned;	/* drops since */
	atomic_uint_fast64_t	 written, dropped, errors;
} Q = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* The writer's own state: its thread only (main's before it starts). */

struct ratelim {
	time_t		 last;
	unsigned long	 n;		/* suppressed since */
};

static struct {
	struct cdr_settings	 set;
	int			 fd;		/* -1: closed */
	uint64_t		 size;		/* of the file */
	uint64_t		 empty;		/* its size with no record */
	struct buf		 out;		/* formatted, not yet written */
	bool			 file_unsynced;	/* since the last sync */
	bool			 db_unsynced;
	uint64_t		 sync_due;	/* monotonic ms; 0: none */
	time_t			 rotate_at;	/* realtime; 0: never */
	sqlite3			*db;
	sqlite3_stmt		*ins;
	struct buf		 text;		/* scratch for the binds */
	struct ratelim		 warn_file, warn_db, warn_journal;
} W = { .fd = -1 };

static uint64_t
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* A warning at most every CDR_WARN_S seconds; true: log it now. */
static bool
ratelim_pass(struct ratelim *rl, unsigned long *suppressed)
{
	time_t	now = (time_t)(mono_ms() / 1000);

	if (rl->last != 0 && now - rl->last < CDR_WARN_S) {
		rl->n++;
		return (false);
	}
	rl->last = now;
	*suppressed = rl->n;
	rl->n = 0;
	return (true);
}

/* The file sink. */

static int
file_write_all(const char *p, size_t len)
{
	ssize_t	r;

	while (len > 0) {
		if ((r = write(W.fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		p += r;
		len -= (size_t)r;
	}
	return (0);
}

static void
file_close(bool sync)
{
	if (W.fd == -1)
		return;
	if (sync && W.file_unsynced && fdatasync(W.fd) == -1 &&
	    errno != EINVAL)
		log_warn("cdr: fdatasync %s", W.set.file);
	close(W.fd);
	W.fd = -1;
	W.file_unsynced = false;
}

static time_t
rotate_next(void)
{
	time_t	now = time(NULL), iv = (time_t)W.set.rotate_interval_s;

	return (iv == 0 ? 0 : (now / iv + 1) * iv);
}

/* Opens (creates) the file; a new one gets the CSV header. */
static int
file_open(char *err, size_t errlen)
{
	struct stat	st;
	size_t		hlen = strlen(cdr_csv_header);

	if ((W.fd = open(W.set.file, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0640)) == -1 || fstat(W.fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", W.set.file, strerror(errno));
		if (W.fd != -1)
			close(W.fd);
		W.fd = -1;
		return (-1);
	}
	W.size = (uint64_t)st.st_size;
	W.empty = W.set.format == CDR_CSV ? hlen : 0;
	if (W.size == 0 && W.set.format == CDR_CSV) {
		if (file_write_all(cdr_csv_header, hlen) == -1) {
			snprintf(err, errlen, "%s: %s", W.set.file,
			    strerror(errno));
			if (ftruncate(W.fd, 0) == -1)
				log_warn("cdr: truncate %s", W.set.file);
			file_close(false);
			return (-1);
		}
		W.size = hlen;
		W.file_unsynced = true;
	}
	W.rotate_at = rotate_next();
	return (0);
}

static void
dir_sync(const char *path)
{
	char	dir[PATH_MAX];
	char	*slash;
	int	fd;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir] = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	fsync(fd);
	close(fd);
}

/* FILE.N-1 -> FILE.N ... FILE -> FILE.1, and a new FILE. */
static void
file_rotate(void)
{
	char		 from[PATH_MAX + 16], to[PATH_MAX + 16], err[512];
	unsigned long	 sup;
	uint32_t	 i;

	file_close(W.set.fsync != CDR_FSYNC_NEVER);
	for (i = W.set.rotate_keep; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", W.set.file);
		else
			snprintf(from, sizeof(from), "%s.%u", W.set.file,
			    i - 1);
		snprintf(to, sizeof(to), "%s.%u", W.set.file, i);
		if (rename(from, to) == -1 && errno != ENOENT &&
		    ratelim_pass(&W.warn_file, &sup))
			log_warn("cdr: rotate %s to %s", from, to);
	}
	if (W.set.fsync != CDR_FSYNC_NEVER)
		dir_sync(W.set.file);
	log_info("cdr: rotated %s", W.set.file);
	if (file_open(err, sizeof(err)) == -1 &&
	    ratelim_pass(&W.warn_file, &sup))
		log_warnx("cdr: accounting.file %s", err);
}

/* Writes out[0..len) for records r[from..to); a failure marks them. */
static void
file_flush(struct rec **r, unsigned from, unsigned to, size_t len)
{
	unsigned long	sup;
	unsigned	i;
	int		e;

	if (len == 0)
		return;
	if (file_write_all(W.out.p, len) == 0) {
		W.size += len;
		W.file_unsynced = true;
	} else {
		e = errno;
		/* No half record stays: the file ends on a line again. */
		if (ftruncate(W.fd, (off_t)W.size) == -1)
			log_warn("cdr: truncate %s", W.set.file);
		if (ratelim_pass(&W.warn_file, &sup))
			log_warnx("cdr: write %s: %s (%u record(s) lost, %lu "
			    "warning(s) suppressed)", W.set.file, strerror(e),
			    to - from, sup);
		for (i = from; i < to; i++)
			r[i]->failed = true;
		file_close(false);	/* opened again for the next records */
	}
	memmove(W.out.p, W.out.p + len, W.out.len - len);
	W.out.len -= len;
}

static void
file_write(struct rec **r, unsigned from, unsigned to)
{
	char		err[512];
	unsigned long	sup;
	unsigned	i, first = from;
	size_t		before;

	if (W.fd == -1 && file_open(err, sizeof(err)) == -1) {
		if (ratelim_pass(&W.warn_file, &sup))
			log_warnx("cdr: accounting.file %s (%u record(s) lost, "
			    "%lu warning(s) suppressed)", err, to - from, sup);
		for (i = from; i < to; i++)
			r[i]->failed = true;
		return;
	}
	W.out.len = 0;
	for (i = from; i < to; i++) {
		before = W.out.len;
		if (W.set.format == CDR_JSONL)
			cdr_format_json(&W.out, &r[i]->c);
		else
			cdr_format_csv(&W.out, &r[i]->c);
		/* Past rotate_size: a new file, unless this one has none. */
		if (W.set.rotate_size > 0 &&
		    W.size + W.out.len > W.set.rotate_size &&
		    W.size + before > W.empty) {
			file_flush(r, first, i, before);
			first = i;
			file_rotate();
			if (W.fd == -1) {
				for (; i < to; i++)
					r[i]->failed = true;
				W.out.len = 0;
				return;
			}
		}
	}
	file_flush(r, first, to, W.out.len);
}

/* The SQLite sink. */

static const char cdr_schema[] =
    "CREATE TABLE IF NOT EXISTS cdr ("
    " id INTEGER PRIMARY KEY,"
    " call_id TEXT NOT NULL, from_tag TEXT NOT NULL, to_tag TEXT NOT NULL,"
    " caller TEXT NOT NULL, callee TEXT NOT NULL, ruri TEXT NOT NULL,"
    " identity TEXT NOT NULL, src_ip TEXT NOT NULL, src_port INTEGER NOT NULL,"
    " transport TEXT NOT NULL, start_time TEXT NOT NULL, answer_time TEXT,"
    " end_time TEXT NOT NULL, duration REAL NOT NULL,"
    " setup_time REAL NOT NULL, code INTEGER NOT NULL, cause INTEGER,"
    " ended_by TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cdr_start_time ON cdr (start_time);"
    "CREATE INDEX IF NOT EXISTS cdr_call_id ON cdr (call_id);";

static void
db_close(void)
{
	if (W.db == NULL)
		return;
	/* The last checkpoint syncs, whatever the policy. */
	sqlite3_exec(W.db, "PRAGMA synchronous=FULL;"
	    "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
	sqlite3_finalize(W.ins);
	sqlite3_close(W.db);
	W.db = NULL;
	W.ins = NULL;
	W.db_unsynced = false;
}

static int
db_open(char *err, size_t errlen)
{
	static const char *const sync[] = {
		[CDR_FSYNC_INTERVAL] = "PRAGMA synchronous=NORMAL;",
		[CDR_FSYNC_ALWAYS] = "PRAGMA synchronous=FULL;",
		[CDR_FSYNC_NEVER] = "PRAGMA synchronous=OFF;",
	};

	if (sqlite3_open_v2(W.set.database, &W.db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(W.db, 5000);
	if (sqlite3_exec(W.db, "PRAGMA journal_mode=WAL;", NULL, NULL,
	    NULL) != SQLITE_OK || sqlite3_exec(W.db, sync[W.set.fsync], NULL,
	    NULL, NULL) != SQLITE_OK || sqlite3_exec(W.db, cdr_schema, NULL,
	    NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(W.db, "INSERT INTO cdr (call_id, from_tag, "
	    "to_tag, caller, callee, ruri, identity, src_ip, src_port, "
	    "transport, start_time, answer_time, end_time, duration, "
	    "setup_time, code, cause, ended_by) VALUES (?1, ?2, ?3, ?4, ?5, "
	    "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
	    -1, &W.ins, NULL) != SQLITE_OK)
		goto fail;
	return (0);
fail:
	snprintf(err, errlen, "%s: %s", W.set.database, W.db ?
	    sqlite3_errmsg(W.db) : "cannot open");
	sqlite3_close(W.db);
	W.db = NULL;
	return (-1);
}

static void
db_text(int col, struct slice s)
{
	W.text.len = 0;
	cdr_add_text(&W.text, s.p, s.len, TEXT_PLAIN);
	sqlite3_bind_text(W.ins, col, W.text.len ? W.text.p : "",
	    (int)W.text.len, SQLITE_TRANSIENT);
}

static int
db_insert(const struct cdr *c)
{
	struct view	v;
	int		rc;

	cdr_view(c, &v);
	db_text(1, c->callid);
	db_text(2, c->from_tag);
	db_text(3, c->to_tag);
	db_text(4, c->caller);
	db_text(5, c->callee);
	db_text(6, c->ruri);
	db_text(7, c->identity);
	sqlite3_bind_text(W.ins, 8, v.ip, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(W.ins, 9, (int)v.port);
	sqlite3_bind_text(W.ins, 10, v.transport, -1, SQLITE_STATIC);
	sqlite3_bind_text(W.ins, 11, v.start, -1, SQLITE_TRANSIENT);
	if (v.answered)
		sqlite3_bind_text(W.ins, 12, v.answer, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(W.ins, 12);
	sqlite3_bind_text(W.ins, 13, v.end, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(W.ins, 14, strtod(v.duration, NULL));
	sqlite3_bind_double(W.ins, 15, strtod(v.setup, NULL));
	sqlite3_bind_int(W.ins, 16, c->code);
	if (c->cause != 0)
		sqlite3_bind_int(W.ins, 17, c->cause);
	else
		sqlite3_bind_null(W.ins, 17);
	sqlite3_bind_text(W.ins, 18, cdr_ended_by_name(c->ended_by), -1,
	    SQLITE_STATIC);
	rc = sqlite3_step(W.ins);
	sqlite3_reset(W.ins);
	sqlite3_clear_bindings(W.ins);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* One transaction for the records r[from..to). */
static void
db_write(struct rec **r, unsigned from, unsigned to)
{
	char		err[512];
	unsigned long	sup;
	unsigned	i, bad = 0;

	if (W.db == NULL && db_open(err, sizeof(err)) == -1)
		goto fail;
	if (sqlite3_exec(W.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto dberr;
	for (i = from; i < to; i++)
		if (db_insert(&r[i]->c) == -1) {
			r[i]->failed = true;
			bad++;
		}
	if (sqlite3_exec(W.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(W.db, "ROLLBACK", NULL, NULL, NULL);
		goto dberr;
	}
	W.db_unsynced = true;
	if (bad > 0 && ratelim_pass(&W.warn_db, &sup))
		log_warnx("cdr: insert into %s: %s (%u record(s) lost)",
		    W.set.database, sqlite3_errmsg(W.db), bad);
	return;
dberr:
	snprintf(err, sizeof(err), "%s: %s", W.set.database,
	    sqlite3_errmsg(W.db));
fail:
	if (ratelim_pass(&W.warn_db, &sup))
		log_warnx("cdr: accounting.database %s (%u record(s) lost, "
		    "%lu warning(s) suppressed)", err, to - from, sup);
	for (i = from; i < to; i++)
		r[i]->failed = true;
}

/* The journal sink: one entry a record, its fields searchable. */

#define JF_MAX	24

struct jfields {
	struct buf	 b;
	size_t		 off[JF_MAX], len[JF_MAX];
	unsigned	 n;
};

static void
jf_add(struct jfields *j, const char *name, const char *v, size_t vlen)
{
	size_t	at = j->b.len;

	if (j->n == JF_MAX)
		return;
	buf_addf(&j->b, "%s=", name);
	cdr_add_text(&j->b, v, vlen, TEXT_PLAIN);
	j->off[j->n] = at;
	j->len[j->n++] = j->b.len - at;
}

static void
jf_adds(struct jfields *j, const char *name, const char *v)
{
	jf_add(j, name, v, strlen(v));
}

static void
jf_addsl(struct jfields *j, const char *name, struct slice s)
{
	jf_add(j, name, s.p, s.len);
}

static int
journal_send(const struct cdr *c)
{
	struct jfields	j;
	struct slice	f[JF_MAX];
	struct view	v;
	struct buf	msg;
	char		num[64];
	unsigned	i;
	int		rc;

	cdr_view(c, &v);
	buf_init(&j.b, 1024);
	buf_init(&msg, 256);
	j.n = 0;
	/* A readable line: who called whom, how it ended. */
	buf_adds(&msg, "cdr ");
	cdr_add_text(&msg, c->callid.p, c->callid.len, TEXT_PLAIN);
	buf_adds(&msg, ": ");
	cdr_add_text(&msg, c->caller.p, c->caller.len, TEXT_PLAIN);
	buf_adds(&msg, " -> ");
	cdr_add_text(&msg, c->callee.p, c->callee.len, TEXT_PLAIN);
	buf_addf(&msg, " code=%d duration=%s ended_by=%s", c->code,
	    v.duration, cdr_ended_by_name(c->ended_by));
	jf_add(&j, "MESSAGE", msg.p, msg.len);
	jf_adds(&j, "MESSAGE_ID", CDR_MESSAGE_ID);
	jf_adds(&j, "PRIORITY", "6");
	jf_adds(&j, "SYSLOG_IDENTIFIER", "ospreyd");
	jf_addsl(&j, "CALL_ID", c->callid);
	jf_addsl(&j, "FROM_TAG", c->from_tag);
	if (c->to_tag.len > 0)
		jf_addsl(&j, "TO_TAG", c->to_tag);
	jf_addsl(&j, "CALLER", c->caller);
	jf_addsl(&j, "CALLEE", c->callee);
	jf_addsl(&j, "RURI", c->ruri);
	if (c->identity.len > 0)
		jf_addsl(&j, "IDENTITY", c->identity);
	snprintf(num, sizeof(num), strchr(v.ip, ':') ? "[%s]:%u" : "%s:%u",
	    v.ip, v.port);
	jf_adds(&j, "SRC", num);
	jf_adds(&j, "TRANSPORT", v.transport);
	jf_adds(&j, "START_TIME", v.start);
	if (v.answered)
		jf_adds(&j, "ANSWER_TIME", v.answer);
	jf_adds(&j, "END_TIME", v.end);
	jf_adds(&j, "DURATION", v.duration);
	jf_adds(&j, "SETUP_TIME", v.setup);
	snprintf(num, sizeof(num), "%d", c->code);
	jf_adds(&j, "SIP_CODE", num);
	if (c->cause != 0) {
		snprintf(num, sizeof(num), "%d", c->cause);
		jf_adds(&j, "Q850_CAUSE", num);
	}
	jf_adds(&j, "ENDED_BY", cdr_ended_by_name(c->ended_by));
	for (i = 0; i < j.n; i++)
		f[i] = (struct slice){ j.b.p + j.off[i], j.len[i] };
	rc = sysd_journal_fields(f, j.n);
	buf_cleanup(&j.b);
	buf_cleanup(&msg);
	return (rc);
}

static void
journal_write(struct rec **r, unsigned from, unsigned to)
{
	unsigned long	sup;
	unsigned	i, bad = 0;

	for (i = from; i < to; i++)
		if (journal_send(&r[i]->c) == -1) {
			r[i]->failed = true;
			bad++;
		}
	if (bad > 0 && ratelim_pass(&W.warn_journal, &sup))
		log_warnx("cdr: the journal took no record (%u lost, %lu "
		    "warning(s) suppressed)", bad, sup);
}

/* The writer. */

static void
writer_sync(void)
{
	if (W.fd != -1 && W.file_unsynced && fdatasync(W.fd) == -1 &&
	    errno != EINVAL)
		log_warn("cdr: fdatasync %s", W.set.file);
	/* FULL synced each commit; NORMAL syncs the WAL at a checkpoint. */
	if (W.db != NULL && W.db_unsynced && W.set.fsync != CDR_FSYNC_ALWAYS)
		sqlite3_exec(W.db, "PRAGMA wal_checkpoint(PASSIVE);", NULL,
		    NULL, NULL);
	W.file_unsynced = W.db_unsynced = false;
	W.sync_due = 0;
}

/* Every sink closed, synced whatever the policy (a reload, a stop). */
static void
writer_close(void)
{
	file_close(true);
	db_close();
	W.sync_due = 0;
}

/* Opens what the settings name; a failure is tried again per batch. */
static int
writer_open(char *err, size_t errlen)
{
	if (W.set.file != NULL && file_open(err, errlen) == -1)
		return (-1);
	if (W.set.database != NULL && db_open(err, errlen) == -1) {
		file_close(false);
		return (-1);
	}
	return (0);
}

/* Records r[from..to) to every sink, then the sync the policy wants. */
static void
writer_segment(struct rec **r, unsigned from, unsigned to)
{
	if (from == to)
		return;
	if (W.set.file != NULL)
		file_write(r, from, to);
	if (W.set.database != NULL)
		db_write(r, from, to);
	if (W.set.journal)
		journal_write(r, from, to);
	if (W.set.fsync == CDR_FSYNC_ALWAYS)
		writer_sync();
	else if (W.set.fsync == CDR_FSYNC_INTERVAL && W.sync_due == 0 &&
	    (W.file_unsynced || W.db_unsynced))
		W.sync_due = mono_ms() + W.set.fsync_interval_ms;
}

static void
writer_swap(struct swap *sw)
{
	char	err[512];

	writer_close();
	cdr_settings_cleanup(&W.set);
	W.set = sw->set;
	free(sw);
	if (writer_open(err, sizeof(err)) == -1)
		log_warnx("cdr: reload: %s (tried again with the next record)",
		    err);
}

/* Work due by the clock: an interval sync, an interval rotation. */
static void
writer_timed(void)
{
	if (W.sync_due != 0 && mono_ms() >= W.sync_due)
		writer_sync();
	if (W.fd != -1 && W.rotate_at != 0 && time(NULL) >= W.rotate_at) {
		if (W.size > W.empty)
			file_rotate();
		else
			W.rotate_at = rotate_next();
	}
}

/* When writer_timed() has work, in monotonic ms; 0: none. */
static uint64_t
writer_due(void)
{
	uint64_t	due = W.sync_due, now;
	time_t		t;

	if (W.fd != -1 && W.rotate_at != 0) {
		now = mono_ms();
		t = time(NULL);
		now += t >= W.rotate_at ? 0 : (uint64_t)(W.rotate_at - t) *
		    1000;
		if (due == 0 || now < due)
			due = now;
	}
	return (due);
}

static void
writer_batch(struct rec **r, unsigned n, uint64_t first, struct swap *sw)
{
	struct swap	*next;
	unsigned	 i, from = 0, ok = 0;

	for (i = 0; i <= n; i++) {
		while (sw != NULL && sw->at <= first + i) {
			writer_segment(r, from, i);
			from = i;
			next = sw->next;
			writer_swap(sw);
			sw = next;
		}
	}
	writer_segment(r, from, n);
	for (i = 0; i < n; i++) {
		ok += !r[i]->failed;
		free(r[i]);
	}
	atomic_fetch_add(&Q.written, ok);
	atomic_fetch_add(&Q.errors, n - ok);
}

static void *
writer_main(void *arg)
{
	struct rec	*batch[CDR_BATCH];
	struct swap	*sw, **tail;
	struct timespec	 ts;
	sigset_t	 set;
	uint64_t	 first, due;
	unsigned	 n;
	bool		 stop;

	(void)arg;
	sigfillset(&set);	/* signals are the main thread's */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "ospreyd-cdr");
	pthread_mutex_lock(&Q.mu);
	for (;;) {
		while (Q.n == 0 && Q.swaps == NULL && !Q.stopping) {
			if ((due = writer_due()) == 0) {
				pthread_cond_wait(&Q.wake, &Q.mu);
				continue;
			}
			if (mono_ms() >= due)
				break;
			ts.tv_sec = (time_t)(due / 1000);
			ts.tv_nsec = (long)(due % 1000) * 1000000;
			pthread_cond_timedwait(&Q.wake, &Q.mu, &ts);
		}
		first = Q.seq_out;
		for (n = 0; n < CDR_BATCH && Q.n > 0; n++) {
			batch[n] = Q.ring[Q.head];
			Q.head = (Q.head + 1) % Q.cap;
			Q.n--;
			Q.bytes -= batch[n]->size;
		}
		Q.seq_out += n;
		/* The reloads due by the end of the batch, in order. */
		sw = Q.swaps;
		for (tail = &sw; *tail != NULL && (*tail)->at <= Q.seq_out;
		    tail = &(*tail)->next)
			;
		Q.swaps = *tail;
		*tail = NULL;
		stop = Q.stopping && Q.n == 0 && Q.swaps == NULL;
		pthread_mutex_unlock(&Q.mu);
		writer_batch(batch, n, first, sw);
		writer_timed();
		if (stop)
			break;
		pthread_mutex_lock(&Q.mu);
	}
	writer_close();
	return (NULL);
}

/* The ring holds at most limit records; its room grows to that. */
static void
queue_resize(uint32_t limit)
{
	struct rec	**ring;
	uint32_t	  cap = limit > Q.n ? limit : Q.n, i;

	Q.limit = limit;
	if (cap == Q.cap)
		return;
	ring = xcalloc(cap, sizeof(*ring));
	for (i = 0; i < Q.n; i++)
		ring[i] = Q.ring[(Q.head + i) % Q.cap];
	free(Q.ring);
	Q.ring = ring;
	Q.cap = cap;
	Q.head = 0;
}

int
cdr_start(const struct cdr_settings *set, char *err, size_t errlen)
{
	pthread_condattr_t	ca;

	if (Q.started) {
		snprintf(err, errlen, "already started");
		return (-1);
	}
	cdr_settings_copy(&W.set, set);
	buf_init(&W.out, 4096);
	buf_init(&W.text, 256);
	if (writer_open(err, errlen) == -1) {
		cdr_settings_cleanup(&W.set);
		buf_cleanup(&W.out);
		buf_cleanup(&W.text);
		return (-1);
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&Q.wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&Q.mu);
	queue_resize(set->queue_size > 0 ? set->queue_size : 1);
	Q.started = true;
	Q.stopping = false;
	Q.warned = 0;
	Q.unwarned = 0;
	atomic_store(&Q.active, cdr_settings_active(set));
	atomic_store(&Q.written, 0);
	atomic_store(&Q.dropped, 0);
	atomic_store(&Q.errors, 0);
	pthread_mutex_unlock(&Q.mu);
	if (pthread_create(&Q.th, NULL, writer_main, NULL) != 0)
		fatal("cdr: pthread_create");
	return (0);
}

void
cdr_reload(const struct cdr_settings *set)
{
	struct swap	*sw, **tail;

	pthread_mutex_lock(&Q.mu);
	if (!Q.started) {
		pthread_mutex_unlock(&Q.mu);
		return;
	}
	sw = xcalloc(1, sizeof(*sw));
	cdr_settings_copy(&sw->set, set);
	sw->at = Q.seq_in;
	for (tail = &Q.swaps; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = sw;
	queue_resize(set->queue_size > 0 ? set->queue_size : 1);
	atomic_store(&Q.active, cdr_settings_active(set));
	pthread_cond_signal(&Q.wake);
	pthread_mutex_unlock(&Q.mu);
}

void
cdr_stop(void)
{
	pthread_mutex_lock(&Q.mu);
	if (!Q.started || Q.stopping) {
		pthread_mutex_unlock(&Q.mu);
		return;
	}
	Q.stopping = true;
	pthread_cond_signal(&Q.wake);
	pthread_mutex_unlock(&Q.mu);
	pthread_join(Q.th, NULL);
	pthread_mutex_lock(&Q.mu);
	Q.started = false;
	Q.stopping = false;
	free(Q.ring);
	Q.ring = NULL;
	Q.cap = Q.n = Q.head = 0;
	pthread_mutex_unlock(&Q.mu);
	pthread_cond_destroy(&Q.wake);
	cdr_settings_cleanup(&W.set);
	buf_cleanup(&W.out);
	buf_cleanup(&W.text);
}

void
cdr_stats(struct cdr_stats *st)
{
	st->written = atomic_load(&Q.written);
	st->dropped = atomic_load(&Q.dropped);
	st->write_errors = atomic_load(&Q.errors);
	pthread_mutex_lock(&Q.mu);
	st->queued = Q.n;
	pthread_mutex_unlock(&Q.mu);
}

/* One allocation: the record and its strings. */
static struct rec *
rec_copy(const struct cdr *c)
{
	const struct slice	*in[] = { &c->callid, &c->from_tag,
				    &c->to_tag, &c->caller, &c->callee,
				    &c->ruri, &c->identity };
	struct rec		*r;
	struct slice		*out[7];
	size_t			 total = 0, i;
	char			*p;

	for (i = 0; i < 7; i++)
		total += in[i]->len;
	r = xmalloc(sizeof(*r) + total + 1);
	r->c = *c;
	r->size = sizeof(*r) + total + 1;
	r->failed = false;
	out[0] = &r->c.callid;
	out[1] = &r->c.from_tag;
	out[2] = &r->c.to_tag;
	out[3] = &r->c.caller;
	out[4] = &r->c.callee;
	out[5] = &r->c.ruri;
	out[6] = &r->c.identity;
	for (i = 0, p = r->data; i < 7; i++) {
		if (in[i]->len > 0)
			memcpy(p, in[i]->p, in[i]->len);
		*out[i] = (struct slice){ p, in[i]->len };
		p += in[i]->len;
	}
	return (r);
}

/*
 * Any thread.  The copy is made outside the lock; under it, only the
 * ring slot and the signal.  A full queue drops the record: a warning
 * at most every CDR_WARN_S seconds, every drop counted.
 */
void
cdr_write(const struct cdr *c)
{
	struct rec	*r;
	uint64_t	 missed = 0;
	uint32_t	 limit = 0;
	time_t		 now;
	bool		 warn = false, late;

	if (!atomic_load_explicit(&Q.active, memory_order_relaxed))
		return;
	r = rec_copy(c);
	pthread_mutex_lock(&Q.mu);
	if (Q.started && !Q.stopping && Q.n < Q.limit &&
	    Q.bytes + r->size <= CDR_QUEUE_BYTES) {
		Q.ring[(Q.head + Q.n) % Q.cap] = r;
		Q.n++;
		Q.bytes += r->size;
		Q.seq_in++;
		if (Q.n == 1)	/* the writer waits only on an empty queue */
			pthread_cond_signal(&Q.wake);
		pthread_mutex_unlock(&Q.mu);
		return;
	}
	atomic_fetch_add(&Q.dropped, 1);
	late = !Q.started || Q.stopping;
	now = (time_t)(mono_ms() / 1000);
	Q.unwarned++;
	if (Q.warned == 0 || now - Q.warned >= CDR_WARN_S) {
		warn = true;
		missed = Q.unwarned;
		limit = Q.limit;
		Q.warned = now;
		Q.unwarned = 0;
	}
	pthread_mutex_unlock(&Q.mu);
	free(r);
	if (warn && late)
		log_warnx("cdr %.*s: record dropped: accounting is stopped "
		    "(%llu dropped since the last warning)",
		    SLICE_ARG(c->callid), (unsigned long long)missed);
	else if (warn)
		log_warnx("cdr %.*s: record dropped: the queue is full (%u "
		    "records or 64 MiB; %llu dropped since the last warning)",
		    SLICE_ARG(c->callid), limit, (unsigned long long)missed);
}
