/*
 * Logging: readable lines on stderr in the foreground, the journal (with
 * priorities) as a service.  Peer-caused warnings go through a token bucket.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"
#include "sysd.h"

#define PEER_BURST	20	/* lines */
#define PEER_RATE	10	/* lines per second */

static bool		 log_stderr = true;
static enum log_level	 log_lvl = LOG_LVL_INFO;	/* atomic: any worker reads */

static const char *const level_names[] = {
	"error", "warning", "notice", "info", "debug",
};
static const int level_prio[] = {
	LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG,
};

void
log_init(bool to_stderr, enum log_level lvl)
{
	log_stderr = to_stderr;
	__atomic_store_n(&log_lvl, lvl, __ATOMIC_RELAXED);
}

void
log_set_level(enum log_level lvl)
{
	__atomic_store_n(&log_lvl, lvl, __ATOMIC_RELAXED);
}

bool
log_enabled(enum log_level lvl)
{
	return (lvl <= __atomic_load_n(&log_lvl, __ATOMIC_RELAXED));
}

int
log_level_parse(const char *s)
{
	size_t	i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return ((int)i);
	if (strcmp(s, "warn") == 0)
		return (LOG_LVL_WARNING);
	if (strcmp(s, "err") == 0)
		return (LOG_LVL_ERR);
	return (-1);
}

const char *
log_level_name(enum log_level lvl)
{
	return (level_names[lvl]);
}

static void
log_vwrite(enum log_level lvl, const char *fmt, va_list ap, int err)
{
	char		 msg[2048];
	int		 n;
	struct timespec	 ts;
	struct tm	 tm;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (err && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err));
	if (!log_stderr && sysd_journal(level_prio[lvl], msg) == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s: %s\n", tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl],
	    msg);
}

#define LOG_FN(name, lvl, err)						\
void									\
name(const char *fmt, ...)						\
{									\
	va_list	ap;							\
	int	saved = errno;						\
									\
	if (!log_enabled(lvl))						\
		return;							\
	va_start(ap, fmt);						\
	log_vwrite(lvl, fmt, ap, err ? saved : 0);			\
	va_end(ap);							\
	errno = saved;							\
}

LOG_FN(log_warn, LOG_LVL_WARNING, 1)
LOG_FN(log_warnx, LOG_LVL_WARNING, 0)
LOG_FN(log_notice, LOG_LVL_NOTICE, 0)
LOG_FN((log_info), LOG_LVL_INFO, 0)
LOG_FN((log_debug), LOG_LVL_DEBUG, 0)

void
log_always(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_NOTICE, fmt, ap, 0);
	va_end(ap);
}

void
log_peer(const char *fmt, ...)
{
	/* One budget for the process (every worker), under peer_mu. */
	static pthread_mutex_t		 peer_mu = PTHREAD_MUTEX_INITIALIZER;
	static double			 tokens = PEER_BURST;
	static struct timespec		 last;
	static unsigned long		 suppressed;
	struct timespec			 now;
	unsigned long			 were;
	va_list				 ap;

	if (!log_enabled(LOG_LVL_WARNING))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&peer_mu);
	tokens += (now.tv_sec - last.tv_sec) * (double)PEER_RATE +
	    (now.tv_nsec - last.tv_nsec) / 1e9 * PEER_RATE;
	if (tokens > PEER_BURST)
		tokens = PEER_BURST;
	last = now;
	if (tokens < 1) {
		suppressed++;
		pthread_mutex_unlock(&peer_mu);
		return;
	}
	tokens -= 1;
	were = suppressed;
	suppressed = 0;
	pthread_mutex_unlock(&peer_mu);
	if (were > 0)
		log_warnx("log: %lu peer warnings suppressed", were);
	va_start(ap, fmt);
	log_vwrite(LOG_LVL_WARNING, fmt, ap, 0);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, fmt, ap, saved);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}
