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

#endif
