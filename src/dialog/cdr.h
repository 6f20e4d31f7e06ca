/*
 * Call detail records (issue 13, item 3): one record per dialog that
 * ends and one per call attempt that failed, written to the sinks the
 * admin chose (accounting section of osprey.conf: a rotating CSV or
 * JSON-lines file, SQLite, the journal).
 *
 * The dialog layer and the proxy fill a struct cdr when a call ends and
 * hand it to cdr_write(); everything in it is borrowed for the call only.
 * cdr_write() runs on any worker and never blocks the event loop for
 * long: sinks are shared by every worker under one mutex.
 */
#ifndef OSPREY_CDR_H
#define OSPREY_CDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "tp.h"

/* Who ended the call. */
enum cdr_ended_by {
	CDR_BY_NONE = 0,	/* not known */
	CDR_BY_CALLER,		/* BYE or CANCEL from the caller */
	CDR_BY_CALLEE,		/* BYE from the callee, or its final failure */
	CDR_BY_PROXY,		/* Osprey: dialog_timeout, no answer (408),
				   a refusal of its own */
	CDR_BY_ADMIN		/* ospreyctl hangup */
};

struct cdr {
	struct slice		 callid;
	struct slice		 from_tag;
	struct slice		 to_tag;	/* empty: no dialog */
	struct slice		 caller;	/* From URI */
	struct slice		 callee;	/* To URI */
	struct slice		 ruri;		/* the INVITE's Request-URI */
	struct slice		 identity;	/* authenticated user, or empty */
	struct tp_addr		 src;		/* where the INVITE came from;
						   its proto is the transport */
	struct timespec		 start;		/* INVITE received (realtime) */
	struct timespec		 answer;	/* 2xx relayed; 0: unanswered */
	struct timespec		 end;		/* dialog or attempt ended */
	int			 code;		/* final code to the INVITE */
	int			 cause;		/* Q.850 cause, 0: none */
	enum cdr_ended_by	 ended_by;
};

const char	*cdr_ended_by_name(enum cdr_ended_by);	/* "caller" ... */
void		 cdr_write(const struct cdr *);

/*
 * The sinks (the accounting section).  cdr_write() copies the record
 * into a bounded queue; one writer thread writes it to every sink,
 * rotates the file, commits and syncs as the fsync policy says.
 */
enum cdr_format {
	CDR_CSV = 0,
	CDR_JSONL
};

enum cdr_fsync {
	CDR_FSYNC_INTERVAL = 0,	/* at most fsync_interval_ms after a write */
	CDR_FSYNC_ALWAYS,	/* after every batch, before the next */
	CDR_FSYNC_NEVER		/* the kernel's write-back; at reload, stop */
};

struct cdr_settings {
	char		*file;		/* owned; NULL: no file */
	int		 format;	/* enum cdr_format */
	uint64_t	 rotate_size;	/* bytes; 0: never */
	uint32_t	 rotate_interval_s;	/* 0: never */
	uint32_t	 rotate_keep;	/* FILE.1 .. FILE.N */
	char		*database;	/* owned; NULL: no SQLite */
	bool		 journal;
	int		 fsync;		/* enum cdr_fsync */
	uint32_t	 fsync_interval_ms;
	uint32_t	 queue_size;	/* records waiting, at most */
};

/*
 * Every record offered once started ends in exactly one of written (every
 * sink took it), failed (a sink could not: write_errors) or dropped (the
 * queue was full).
 */
struct cdr_stats {
	uint64_t	 written;
	uint64_t	 dropped;
	uint64_t	 write_errors;
	uint64_t	 queued;	/* waiting now */
};

/* Opens the sinks (err says why not) and starts the writer. */
int		 cdr_start(const struct cdr_settings *, char *, size_t);
/*
 * New settings (copied): the writer takes them after it has written
 * every record queued before this call, closing and reopening the sinks
 * (so a file moved by logrotate is started anew).
 */
void		 cdr_reload(const struct cdr_settings *);
/* Writes what is queued, syncs every sink, ends the writer. */
void		 cdr_stop(void);
void		 cdr_stats(struct cdr_stats *);
bool		 cdr_settings_active(const struct cdr_settings *);
void		 cdr_settings_copy(struct cdr_settings *,
		     const struct cdr_settings *);
void		 cdr_settings_cleanup(struct cdr_settings *);

/* A record as a line (with its newline): for the writer and the tests. */
void		 cdr_format_csv(struct buf *, const struct cdr *);
void		 cdr_format_json(struct buf *, const struct cdr *);
extern const char cdr_csv_header[];

#endif
