#ifndef OSPREY_CONF_DIFF_H
#define OSPREY_CONF_DIFF_H

#include "buf.h"
#include "conf.h"

/* conf_print() into a string; the caller frees it. */
char		*conf_describe(const struct conf *);

/*
 * What changed from one description to the other, a line each
 * ("timers: t1=500 -> t1=100", "route bob: added"); the number of lines.
 */
unsigned	 conf_diff(const char *, const char *, struct buf *);

#endif
