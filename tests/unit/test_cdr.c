/*
 * Unit tests: cdr.c, every sink with real files in a temporary folder:
 * CSV quoting, JSON escaping, rotation, SQLite rows read back, writers
 * on two threads, the drain at stop and at reload, a full queue, write
 * errors, and the journal when one is reachable.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "cdr.h"
#include "check_util.h"

static char	dir[64];

static void
dir_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/osprey-cdr-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
dir_teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static char *
path_of(const char *name)
{
	static char	p[4][128];
	static int	i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return (p[i]);
}

/* The same, in storage that stays for the test (settings point to it). */
static char *
path_kept(const char *name)
{
	static char	p[8][128];
	static int	i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return (p[i]);
}

/* A record: answered at start + 2.377 s, ended 60.250 s later. */
static void
rec_fill(struct cdr *c, const char *callid)
{
	memset(c, 0, sizeof(*c));
	c->callid = S(callid);
	c->from_tag = S("ft");
	c->to_tag = S("tt");
	c->caller = S("sip:alice@example.test");
	c->callee = S("sip:bob@example.test");
	c->ruri = S("sip:bob@10.0.0.2");
	c->identity = S("alice");
	tp_addr_set(&c->src, S("192.0.2.1"), 5062);
	c->src.proto = TP_UDP;
	c->start = (struct timespec){ 1700000000, 123000000 };
	c->answer = (struct timespec){ 1700000002, 500000000 };
	c->end = (struct timespec){ 1700000062, 750999999 };
	c->code = 200;
	c->cause = 16;
	c->ended_by = CDR_BY_CALLER;
}

static struct cdr_settings
set_file(const char *name, int format)
{
	struct cdr_settings	s = { 0 };

	s.file = path_kept(name);
	s.format = format;
	s.rotate_keep = 10;
	s.fsync = CDR_FSYNC_INTERVAL;
	s.fsync_interval_ms = 1000;
	s.queue_size = 65536;
	return (s);
}

static void
start(const struct cdr_settings *s)
{
	char	err[512];

	ck_assert_msg(cdr_start(s, err, sizeof(err)) == 0, "cdr_start: %s",
	    err);
}

/* The file's lines (owned by the caller: free each and the array). */
static char **
lines_of(const char *path, size_t *n)
{
	FILE	*fp = fopen(path, "r");
	char	**v = NULL, *line = NULL;
	size_t	 cap = 0;
	ssize_t	 len;

	*n = 0;
	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	while ((len = getline(&line, &cap, fp)) != -1) {
		ck_assert_msg(len > 0 && line[len - 1] == '\n',
		    "%s: a line without its newline", path);
		line[len - 1] = '\0';
		v = realloc(v, (*n + 1) * sizeof(*v));
		v[(*n)++] = strdup(line);
	}
	free(line);
	fclose(fp);
	return (v);
}

static void
lines_free(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

static size_t
count_lines(const char *path)
{
	size_t	 n;
	char	**v = lines_of(path, &n);

	lines_free(v, n);
	return (n);
}

START_TEST(csv_quotes_and_escapes)
{
	struct cdr_settings	 s = set_file("cdr.csv", CDR_CSV);
	struct cdr		 c;
	char			**v;
	size_t			 n;

	start(&s);
	rec_fill(&c, "c1");
	c.caller = S("sip:\"al,ice\"@example.test");
	cdr_write(&c);
	rec_fill(&c, "c2@host");
	c.answer = (struct timespec){ 0, 0 };
	c.code = 486;
	c.cause = 0;
	c.ended_by = CDR_BY_CALLEE;
	c.to_tag = S("");
	c.identity = S("");
	c.callee = S("sip:b\r\nob\x01@x\xff;p=\xc3\xa9");
	tp_addr_set(&c.src, S("2001:db8::1"), 5061);
	c.src.proto = TP_TLS;
	cdr_write(&c);
	cdr_stop();
	v = lines_of(s.file, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0], "call_id,from_tag,to_tag,caller,callee,ruri,"
	    "identity,src_ip,src_port,transport,start_time,answer_time,"
	    "end_time,duration,setup_time,code,cause,ended_by");
	ck_assert_str_eq(v[1], "c1,ft,tt,\"sip:\"\"al,ice\"\"@example.test\","
	    "sip:bob@example.test,sip:bob@10.0.0.2,alice,192.0.2.1,5062,udp,"
	    "2023-11-14T22:13:20.123Z,2023-11-14T22:13:22.500Z,"
	    "2023-11-14T22:14:22.750Z,60.250,2.377,200,16,caller");
	/* Unanswered: no answer, duration 0, setup to the end; no cause. */
	ck_assert_str_eq(v[2], "c2@host,ft,,sip:alice@example.test,"
	    "sip:b%0D%0Aob%01@x%FF;p=\xc3\xa9,sip:bob@10.0.0.2,,2001:db8::1,"
	    "5061,tls,2023-11-14T22:13:20.123Z,,2023-11-14T22:14:22.750Z,"
	    "0.000,62.627,486,,callee");
	lines_free(v, n);
}
END_TEST

START_TEST(json_escapes_control_and_bad_utf8)
{
	struct cdr_settings	 s = set_file("cdr.jsonl", CDR_JSONL);
	struct cdr		 c;
	char			**v, cmd[512];
	size_t			 n;

	start(&s);
	rec_fill(&c, "j1");
	/* \x01 \n " \ , a stray \xff, a bad pair \xc3\x28, a good é */
	c.callee = S("sip:b\x01\n\"q\"\\@x\xff\xc3\x28\xc3\xa9\t\x7f");
	c.identity = S("\xed\xa0\x80");		/* a surrogate: not UTF-8 */
	cdr_write(&c);
	rec_fill(&c, "j2");
	c.answer = (struct timespec){ 0, 0 };
	c.cause = 0;
	c.code = 408;
	c.ended_by = CDR_BY_PROXY;
	cdr_write(&c);
	cdr_stop();
	v = lines_of(s.file, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0], "{\"call_id\":\"j1\",\"from_tag\":\"ft\","
	    "\"to_tag\":\"tt\",\"caller\":\"sip:alice@example.test\","
	    "\"callee\":\"sip:b\\u0001\\n\\\"q\\\"\\\\@x\\udcff\\udcc3("
	    "\xc3\xa9\\t\\u007f\",\"ruri\":\"sip:bob@10.0.0.2\","
	    "\"identity\":\"\\udced\\udca0\\udc80\",\"src_ip\":\"192.0.2.1\","
	    "\"src_port\":5062,\"transport\":\"udp\","
	    "\"start_time\":\"2023-11-14T22:13:20.123Z\","
	    "\"answer_time\":\"2023-11-14T22:13:22.500Z\","
	    "\"end_time\":\"2023-11-14T22:14:22.750Z\",\"duration\":60.250,"
	    "\"setup_time\":2.377,\"code\":200,\"cause\":16,"
	    "\"ended_by\":\"caller\"}");
	ck_assert_ptr_nonnull(strstr(v[1], "\"answer_time\":null,"));
	ck_assert_ptr_nonnull(strstr(v[1], "\"duration\":0.000,"
	    "\"setup_time\":62.627,\"code\":408,\"cause\":null,"
	    "\"ended_by\":\"proxy\"}"));
	lines_free(v, n);
	/* An independent reader takes every line, and gets the bytes back. */
	snprintf(cmd, sizeof(cmd), "python3 -c 'import json, sys\n"
	    "r = [json.loads(l) for l in\n"
	    "    open(sys.argv[1], encoding=\"utf-8\")]\n"
	    "b = r[0][\"callee\"].encode(\"utf-8\", \"surrogateescape\")\n"
	    "sys.exit(b != b\"sip:b\\x01\\n\\\"q\\\"\\\\@x\\xff\\xc3(\\xc3\\xa9"
	    "\\t\\x7f\")' %s", s.file);
	ck_assert_msg(system(cmd) == 0, "python3 json could not read %s "
	    "back", s.file);
}
END_TEST

/*
 * Any bytes from the network: every CSV row parses as UTF-8 with its 18
 * fields, and every JSON line parses and gives the bytes back.
 */
START_TEST(random_bytes_never_break_a_record)
{
	struct cdr_settings	 csv = set_file("r.csv", CDR_CSV);
	struct cdr_settings	 json = set_file("r.jsonl", CDR_JSONL);
	static char		 raw[500][64];
	size_t			 len[500];
	struct cdr		 c;
	char			 cmd[1024];
	FILE			*hex;
	int			 i, k, pass;

	srandom(13);
	ck_assert_ptr_nonnull(hex = fopen(path_of("raw.hex"), "w"));
	for (i = 0; i < 500; i++) {
		len[i] = (size_t)(random() % 64);
		for (k = 0; k < (int)len[i]; k++) {
			/* Mostly the bytes that matter: high, control, quote. */
			raw[i][k] = (char)(random() % 4 == 0 ? "\"\\,\n\r%"
			    [random() % 6] : random() % 256);
			fprintf(hex, "%02x", (unsigned char)raw[i][k]);
		}
		fprintf(hex, "\n");
	}
	fclose(hex);
	for (pass = 0; pass < 2; pass++) {
		start(pass == 0 ? &csv : &json);
		for (i = 0; i < 500; i++) {
			rec_fill(&c, "rnd");
			c.callee = (struct slice){ raw[i], len[i] };
			c.caller = (struct slice){ raw[499 - i], len[499 - i] };
			cdr_write(&c);
		}
		cdr_stop();
	}
	snprintf(cmd, sizeof(cmd), "python3 -c 'import csv, json, sys\n"
	    "rows = list(csv.reader(open(sys.argv[1], encoding=\"utf-8\","
	    " newline=\"\")))\n"
	    "assert len(rows) == 501 and all(len(r) == 18 for r in rows)\n"
	    "want = [bytes.fromhex(l.strip()) for l in open(sys.argv[3])]\n"
	    "got = [json.loads(l) for l in open(sys.argv[2], "
	    "encoding=\"utf-8\")]\n"
	    "assert [g[\"callee\"].encode(\"utf-8\", \"surrogateescape\") "
	    "for g in got] == want\n' %s %s %s", csv.file, json.file,
	    path_of("raw.hex"));
	ck_assert_msg(system(cmd) == 0, "a record did not read back");
}
END_TEST

START_TEST(rotates_by_size_and_keeps_n)
{
	struct cdr_settings	 s = set_file("cdr.csv", CDR_CSV);
	const char		*names[3] = { "cdr.csv.2", "cdr.csv.1",
				    "cdr.csv" };
	struct cdr		 c;
	struct stat		 st;
	char			 id[16], want[16], **v;
	size_t			 n, i;
	int			 f, next = -1;

	s.rotate_size = 1000;
	s.rotate_keep = 2;
	start(&s);
	for (i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "r%02zu", i);
		rec_fill(&c, id);
		cdr_write(&c);
	}
	cdr_stop();
	ck_assert_int_eq(stat(path_of("cdr.csv.3"), &st), -1);
	/* The oldest kept, then newer: consecutive records, ending r39. */
	for (f = 0; f < 3; f++) {
		ck_assert_int_eq(stat(path_of(names[f]), &st), 0);
		ck_assert_int_le(st.st_size, 1000);
		v = lines_of(path_of(names[f]), &n);
		ck_assert_uint_ge(n, 2);
		ck_assert(strncmp(v[0], "call_id,", 8) == 0);
		for (i = 1; i < n; i++) {
			if (next == -1)
				next = atoi(v[i] + 1);
			snprintf(want, sizeof(want), "r%02d,", next++);
			ck_assert_msg(strncmp(v[i], want, strlen(want)) == 0,
			    "%s line %zu: %s, want %s", names[f], i, v[i],
			    want);
		}
		lines_free(v, n);
	}
	ck_assert_int_eq(next, 40);
}
END_TEST

/* Every second on the second: a file with a record goes, idle or not. */
START_TEST(rotates_by_interval)
{
	struct cdr_settings	 s = set_file("cdr.jsonl", CDR_JSONL);
	struct cdr		 c;
	struct stat		 st;
	char			**v;
	size_t			 n;
	int			 i;
	bool			 late;

	s.rotate_interval_s = 1;
	start(&s);
	rec_fill(&c, "i0");
	cdr_write(&c);
	for (i = 0; i < 30 && stat(path_of("cdr.jsonl.1"), &st) == -1; i++)
		usleep(100000);
	ck_assert_msg(i < 30, "no rotation in 3 s");
	/* An empty file is not rotated: no .2 in a second and a half idle. */
	usleep(1500000);
	ck_assert_int_eq(stat(path_of("cdr.jsonl.2"), &st), -1);
	rec_fill(&c, "i1");
	cdr_write(&c);
	cdr_stop();
	/*
	 * i1 is in the live file, or, when a second turned before the stop
	 * (a slow machine, a sanitizer), rotated in its turn: i0 then in .2.
	 */
	late = stat(path_of("cdr.jsonl.2"), &st) == 0;
	v = lines_of(path_of(late ? "cdr.jsonl.2" : "cdr.jsonl.1"), &n);
	ck_assert_uint_eq(n, 1);
	ck_assert(strncmp(v[0], "{\"call_id\":\"i0\"", 14) == 0);
	lines_free(v, n);
	v = lines_of(late ? path_of("cdr.jsonl.1") : s.file, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert(strncmp(v[0], "{\"call_id\":\"i1\"", 14) == 0);
	lines_free(v, n);
}
END_TEST

START_TEST(sqlite_rows_read_back)
{
	struct cdr_settings	 s = { 0 };
	struct cdr		 c;
	sqlite3			*db;
	sqlite3_stmt		*st;
	int			 rows = 0;

	s.database = path_kept("cdr.db");
	s.fsync = CDR_FSYNC_ALWAYS;
	s.queue_size = 1000;
	start(&s);
	rec_fill(&c, "s1");
	cdr_write(&c);
	rec_fill(&c, "s2");
	c.answer = (struct timespec){ 0, 0 };
	c.code = 487;
	c.cause = 0;
	c.to_tag = S("");
	c.callee = S("sip:x\xff@y");
	c.ended_by = CDR_BY_CALLER;
	cdr_write(&c);
	cdr_stop();
	ck_assert_int_eq(sqlite3_open(s.database, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT call_id, to_tag, "
	    "callee, src_ip, src_port, transport, start_time, answer_time, "
	    "end_time, duration, setup_time, code, cause, ended_by, identity "
	    "FROM cdr ORDER BY id", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char	*id = (const char *)sqlite3_column_text(st, 0);

		rows++;
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 3),
		    "192.0.2.1");
		ck_assert_int_eq(sqlite3_column_int(st, 4), 5062);
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 5),
		    "udp");
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 6),
		    "2023-11-14T22:13:20.123Z");
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 14),
		    "alice");
		if (rows == 1) {
			ck_assert_str_eq(id, "s1");
			ck_assert_str_eq((const char *)
			    sqlite3_column_text(st, 7),
			    "2023-11-14T22:13:22.500Z");
			ck_assert_double_eq_tol(sqlite3_column_double(st, 9),
			    60.25, 1e-9);
			ck_assert_double_eq_tol(sqlite3_column_double(st, 10),
			    2.377, 1e-9);
			ck_assert_int_eq(sqlite3_column_int(st, 11), 200);
			ck_assert_int_eq(sqlite3_column_int(st, 12), 16);
			ck_assert_str_eq((const char *)
			    sqlite3_column_text(st, 13), "caller");
		} else {
			ck_assert_str_eq(id, "s2");
			ck_assert_str_eq((const char *)
			    sqlite3_column_text(st, 1), "");
			ck_assert_str_eq((const char *)
			    sqlite3_column_text(st, 2), "sip:x%FF@y");
			ck_assert_int_eq(sqlite3_column_type(st, 7),
			    SQLITE_NULL);
			ck_assert_double_eq_tol(sqlite3_column_double(st, 9),
			    0, 1e-9);
			ck_assert_int_eq(sqlite3_column_int(st, 11), 487);
			ck_assert_int_eq(sqlite3_column_type(st, 12),
			    SQLITE_NULL);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	ck_assert_int_eq(rows, 2);
}
END_TEST

#define PER_THREAD	5000

static void *
writer_thread(void *arg)
{
	struct cdr	c;
	char		id[32];
	int		i, t = *(int *)arg;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(id, sizeof(id), "t%d-%d", t, i);
		rec_fill(&c, id);
		cdr_write(&c);
	}
	return (NULL);
}

START_TEST(two_threads_all_present)
{
	struct cdr_settings	 s = set_file("cdr.csv", CDR_CSV);
	struct cdr_stats	 cs;
	pthread_t		 th[2];
	unsigned char		 seen[2][PER_THREAD];
	int			 ids[2] = { 0, 1 }, t, k;
	char			**v;
	size_t			 n, i;

	start(&s);
	for (t = 0; t < 2; t++)
		pthread_create(&th[t], NULL, writer_thread, &ids[t]);
	for (t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	cdr_stop();
	cdr_stats(&cs);
	ck_assert_uint_eq(cs.written, 2 * PER_THREAD);
	ck_assert_uint_eq(cs.dropped + cs.write_errors, 0);
	memset(seen, 0, sizeof(seen));
	v = lines_of(s.file, &n);
	ck_assert_uint_eq(n, 1 + 2 * PER_THREAD);
	for (i = 1; i < n; i++) {
		ck_assert_int_eq(sscanf(v[i], "t%d-%d,", &t, &k), 2);
		ck_assert(t >= 0 && t < 2 && k >= 0 && k < PER_THREAD);
		ck_assert_msg(!seen[t][k], "t%d-%d twice", t, k);
		seen[t][k] = 1;
	}
	lines_free(v, n);
}
END_TEST

/* fsync = always: the writer syncs each batch, so records wait. */
START_TEST(stop_drains_the_queue)
{
	struct cdr_settings	 s = set_file("cdr.csv", CDR_CSV);
	struct cdr_stats	 cs;
	struct cdr		 c;
	char			 id[16];
	int			 i;

	s.fsync = CDR_FSYNC_ALWAYS;
	start(&s);
	for (i = 0; i < 10000; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		rec_fill(&c, id);
		cdr_write(&c);
	}
	cdr_stats(&cs);
	fprintf(stderr, "stop_drains_the_queue: %llu record(s) waiting at "
	    "stop\n", (unsigned long long)cs.queued);
	cdr_stop();
	ck_assert_uint_eq(count_lines(s.file), 1 + 10000);
	cdr_stats(&cs);
	ck_assert_uint_eq(cs.written, 10000);
}
END_TEST

static void
check_ids(const char *path, char prefix, int n)
{
	char	**v;
	size_t	  k, i;

	v = lines_of(path, &k);
	ck_assert_uint_eq(k, (size_t)n + 1);
	for (i = 1; i < k; i++)
		ck_assert_msg(v[i][0] == prefix && atoi(v[i] + 1) ==
		    (int)i - 1, "%s line %zu: %s", path, i, v[i]);
	lines_free(v, k);
}

START_TEST(reload_to_new_file_loses_none)
{
	struct cdr_settings	 a = set_file("a.csv", CDR_CSV);
	struct cdr_settings	 b = set_file("b.csv", CDR_CSV);
	struct cdr_stats	 cs;
	struct cdr		 c;
	char			 id[16];
	int			 i;

	a.fsync = b.fsync = CDR_FSYNC_ALWAYS;
	start(&a);
	for (i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		rec_fill(&c, id);
		cdr_write(&c);
	}
	cdr_stats(&cs);
	fprintf(stderr, "reload_to_new_file_loses_none: %llu record(s) "
	    "waiting at the reload\n", (unsigned long long)cs.queued);
	cdr_reload(&b);
	for (i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		rec_fill(&c, id);
		cdr_write(&c);
	}
	cdr_stop();
	check_ids(a.file, 'a', 2000);
	check_ids(b.file, 'b', 2000);
}
END_TEST

/* What the reader of the FIFO got. */
struct drain {
	int	 fd;
	size_t	 lines;
};

static void *
drain_main(void *arg)
{
	struct drain	*d = arg;
	char		 b[65536];
	ssize_t		 r, i;

	while ((r = read(d->fd, b, sizeof(b))) > 0)
		for (i = 0; i < r; i++)
			d->lines += b[i] == '\n';
	return (NULL);
}

/*
 * A stuck disk: the file is a FIFO nobody reads, so the writer blocks.
 * cdr_write() must not: the queue fills, and the rest are dropped and
 * counted.  Then the reader reads and the stop writes what was queued.
 */
START_TEST(full_queue_drops_and_counts)
{
	struct cdr_settings	 s = set_file("fifo", CDR_CSV);
	struct cdr_stats	 cs;
	struct drain		 d = { -1, 0 };
	struct timespec		 t0, t1;
	struct cdr		 c;
	pthread_t		 th;
	static char		 big[4096];
	char			 id[16];
	int			 i;

	memset(big, 'x', sizeof(big) - 1);
	s.fsync = CDR_FSYNC_NEVER;
	s.queue_size = 16;
	ck_assert_int_eq(mkfifo(s.file, 0600), 0);
	d.fd = open(s.file, O_RDONLY | O_NONBLOCK);
	ck_assert_int_ne(d.fd, -1);
	fcntl(d.fd, F_SETFL, 0);
	start(&s);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "q%d", i);
		rec_fill(&c, id);
		c.callee = S(big);	/* 64 KiB of pipe: 16 records */
		cdr_write(&c);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_msg(t1.tv_sec - t0.tv_sec < 2, "cdr_write blocked");
	cdr_stats(&cs);
	ck_assert_uint_gt(cs.dropped, 0);
	ck_assert_uint_le(cs.queued, 16);
	pthread_create(&th, NULL, drain_main, &d);
	cdr_stop();
	pthread_join(th, NULL);
	close(d.fd);
	cdr_stats(&cs);
	fprintf(stderr, "full_queue_drops_and_counts: written %llu, dropped "
	    "%llu\n", (unsigned long long)cs.written,
	    (unsigned long long)cs.dropped);
	ck_assert_uint_eq(cs.written + cs.dropped, 200);
	ck_assert_uint_eq(cs.write_errors, 0);
	ck_assert_uint_eq(d.lines, 1 + cs.written);
}
END_TEST

/* A disk that is full: every record is counted as a write error. */
START_TEST(write_errors_are_counted)
{
	struct cdr_settings	 s = set_file("ok.csv", CDR_CSV);
	struct cdr_settings	 full = s;
	struct cdr_stats	 cs;
	struct cdr		 c;
	char			 err[256];
	int			 i;

	full.file = "/dev/full";
	ck_assert_int_eq(cdr_start(&full, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/dev/full"));
	start(&s);
	rec_fill(&c, "e0");
	cdr_write(&c);
	cdr_reload(&full);
	for (i = 0; i < 5; i++)
		cdr_write(&c);
	cdr_stop();
	cdr_stats(&cs);
	ck_assert_uint_eq(cs.written, 1);
	ck_assert_uint_eq(cs.write_errors, 5);
	ck_assert_uint_eq(count_lines(s.file), 2);
}
END_TEST

/*
 * The journal: only where journald listens (not in every container;
 * tests/unit/with-journald runs the test with a journald of its own);
 * then the record is read back by its fields with journalctl.
 */
START_TEST(journal_fields_read_back)
{
	struct cdr_settings	 s = { 0 };
	struct cdr		 c;
	char			 id[64], cmd[256], out[8192];
	FILE			*fp;
	size_t			 n = 0;
	int			 tries;

	if (access("/run/systemd/journal/socket", W_OK) == -1 ||
	    system("journalctl --version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "journal_fields_read_back: skipped, no "
		    "journald here (/run/systemd/journal/socket)\n");
		return;
	}
	s.journal = true;
	s.queue_size = 100;
	snprintf(id, sizeof(id), "osprey-cdr-test-%ld-%ld", (long)getpid(),
	    (long)time(NULL));
	start(&s);
	rec_fill(&c, id);
	c.code = 486;
	c.cause = 17;
	c.ended_by = CDR_BY_CALLEE;
	cdr_write(&c);
	cdr_stop();
	snprintf(cmd, sizeof(cmd), "journalctl -o json CALL_ID=%s "
	    "2>/dev/null", id);
	for (tries = 0; tries < 50 && n == 0; tries++) {
		usleep(100000);
		ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
		n = fread(out, 1, sizeof(out) - 1, fp);
		pclose(fp);
	}
	out[n] = '\0';
	ck_assert_msg(n > 0, "journalctl found no CALL_ID=%s", id);
	ck_assert_ptr_nonnull(strstr(out, "\"SIP_CODE\":\"486\""));
	ck_assert_ptr_nonnull(strstr(out, "\"Q850_CAUSE\":\"17\""));
	ck_assert_ptr_nonnull(strstr(out, "\"ENDED_BY\":\"callee\""));
	ck_assert_ptr_nonnull(strstr(out, "\"SRC\":\"192.0.2.1:5062\""));
	ck_assert_ptr_nonnull(strstr(out, "\"CALLER\":\"sip:alice@"
	    "example.test\""));
}
END_TEST

int
main(void)
{
	TCase	*tc = check_fixed("cdr", dir_setup, dir_teardown);

	tcase_set_timeout(tc, 60);
	check_add(tc, csv_quotes_and_escapes,
	    json_escapes_control_and_bad_utf8,
	    random_bytes_never_break_a_record, rotates_by_size_and_keeps_n,
	    rotates_by_interval,
	    sqlite_rows_read_back, two_threads_all_present,
	    stop_drains_the_queue, reload_to_new_file_loses_none,
	    full_queue_drops_and_counts, write_errors_are_counted,
	    journal_fields_read_back);
	return (check_run("cdr"));
}
