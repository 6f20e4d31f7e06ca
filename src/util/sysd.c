#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

#include "sysd.h"

int
sysd_journal(int prio, const char *msg)
{
#ifdef HAVE_SYSTEMD
	return (sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio,
	    "SYSLOG_IDENTIFIER=ospreyd", NULL) < 0 ? -1 : 0);
#else
	(void)prio;
	(void)msg;
	return (-1);
#endif
}

void
sysd_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

void
sysd_notifyf(const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sysd_notify(buf);
}

uint64_t
sysd_watchdog_usec(void)
{
#ifdef HAVE_SYSTEMD
	uint64_t	usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return (usec);
#endif
	return (0);
}
