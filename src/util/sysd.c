#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>

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

int
sysd_journal_fields(const struct slice *f, unsigned n)
{
#ifdef HAVE_SYSTEMD
	struct iovec	iov[32];
	unsigned	i;

	if (n > sizeof(iov) / sizeof(iov[0]))
		return (-1);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = (void *)(uintptr_t)f[i].p;
		iov[i].iov_len = f[i].len;
	}
	return (sd_journal_sendv(iov, (int)n) < 0 ? -1 : 0);
#else
	(void)f;
	(void)n;
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
