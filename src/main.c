/* ospreyd: wiring, signals, sd_notify. */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <osipparser2/osip_parser.h>

#include "conf.h"
#include "gateway.h"
#include "log.h"
#include "proxy.h"
#include "resolver.h"
#include "sysd.h"
#include "tp.h"

#define DEFAULT_CONF	"/etc/osprey/osprey.conf"

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: ospreyd [-fhtVv] [-c file]\n"
	    "  -c file  config file (default " DEFAULT_CONF ")\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -t       check the config and exit\n"
	    "  -v       with -t, print the config as understood\n"
	    "  -V       print the version and exit\n"
	    "  -h       this help\n");
}

/* libosip2 reports parse errors itself; ours are logged, with the peer. */
static void
osip_quiet(const char *fi, int li, osip_trace_level_t level, const char *fmt,
    va_list ap)
{
	(void)fi;
	(void)li;
	(void)level;
	(void)fmt;
	(void)ap;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct event_base	*base = arg;

	(void)what;
	log_notice("ospreyd: signal %d, stopping", (int)sig);
	sysd_notify("STOPPING=1");
	event_base_loopbreak(base);
}

int
main(int argc, char **argv)
{
	const char		*path = DEFAULT_CONF;
	bool			 foreground = false, check = false, verbose = false;
	struct conf		 cf;
	struct event_base	*base;
	struct event		*sigterm, *sigint;
	struct tp		 tp;
	char			 err[512];
	unsigned		 i;
	int			 ch;

	while ((ch = getopt(argc, argv, "c:fhtVv")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			check = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'V':
			printf("ospreyd %s\n", PACKAGE_VERSION);
			return (0);
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (2);
	}
	if (conf_load(path, &cf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return (1);
	}
	if (check) {
		if (verbose)
			conf_print(&cf, stdout);
		conf_free(&cf);
		return (0);
	}
	log_init(foreground || isatty(STDERR_FILENO), cf.log_level);
	parser_init();
	osip_trace_initialize_func(END_TRACE_LEVEL, osip_quiet);
	for (i = 0; i < END_TRACE_LEVEL; i++)
		osip_trace_disable_level((osip_trace_level_t)i);
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	tp_init(&tp, base, proxy_recv, NULL);
	for (i = 0; i < cf.nlisten; i++)
		if (tp_udp_open(&tp, cf.listen[i].address, cf.listen[i].port,
		    err, sizeof(err)) == -1)
			fatalx("ospreyd: %s", err);
	resolver_init(base, &cf.dns);
	proxy_init(base, &tp, &cf.proxy, &cf.txn);
	gw_start(base, &tp, &cf.proxy.routes, &(struct gw_settings){
	    cf.proxy.probe_interval_ms, cf.proxy.probe_timeout_ms,
	    cf.proxy.probe_failures });
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);

	log_notice("ospreyd %s: ready, %u listener(s)", PACKAGE_VERSION,
	    tp.nsocks);
	sysd_notify("READY=1");
	event_base_dispatch(base);

	gw_stop();
	proxy_shutdown();
	resolver_shutdown();
	tp_close(&tp);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	conf_free(&cf);
	log_notice("ospreyd: stopped");
	return (0);
}
