/* ospreyd: wiring, signals, reload, graceful stop, sd_notify. */
#include "config.h"

#include <sys/resource.h>

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth.h"
#include "cdr.h"
#include "cluster.h"
#include "conf.h"
#include "conf_diff.h"
#include "dialog_store.h"
#include "ctl.h"
#include "gateway.h"
#include "guard.h"
#include "log.h"
#include "metrics.h"
#include "location.h"
#include "proxy.h"
#include "natping.h"
#include "registrar.h"
#include "resolver.h"
#include "rtpengine.h"
#include "store.h"
#include "shard.h"
#include "sysd.h"
#include "timer.h"
#include "tp.h"
#include "worker.h"
#include "xmalloc.h"

#define STATUS_MS	2000

static mailbox_fn	worker_settings_run;

static struct {
	const char		*path;
	struct conf		*conf;		/* the running one */
	char			*desc;		/* owned: its conf_print() */
	/* What was set up at start and stays until a restart. */
	char			*run_metrics;	/* owned: "addr port", NULL */
	struct resolver_settings run_dns;
	char			*run_database;	/* owned, NULL: memory */
	char			*run_dialog_db;	/* owned, NULL: none */
	struct event_base	*base;
	struct tp		 tp;
	struct timer		 status;	/* STATUS=, WATCHDOG=1 */
	struct timer		 stop;		/* graceful stop polling */
	uint64_t		 watchdog_usec;
	uint64_t		 stop_deadline_ms;
	bool			 stop_quiet;	/* none pending at the last poll */
	uint64_t		 last_invites;
	unsigned		 workers;	/* running; until a restart */
	struct proxy_settings	*proxy_set;	/* the main loop's, for workers */
	bool			 stopping;
} D;

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: ospreyd [-fhtVv] [-c file]\n"
	    "  -c file  config file (default " OSPREY_DEFAULT_CONF ")\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -t       check the config and exit\n"
	    "  -v       with -t, print the config as understood\n"
	    "  -V       print the version and exit\n"
	    "  -h       this help\n");
}

static uint64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static void
gw_settings_of(const struct conf *cf, struct gw_settings *gs)
{
	gs->interval_ms = cf->proxy.probe_interval_ms;
	gs->timeout_ms = cf->proxy.probe_timeout_ms;
	gs->failures = cf->proxy.probe_failures;
}

/* A one-line summary for systemd; also the watchdog ping. */
static void
status_tick(void *arg)
{
	struct worker_totals		 t;
	struct dialog_totals		 dt;
	const struct proxy_stats	*ps = worker_totals(&t);
	uint64_t			 inv = ps->requests_in[SM_INVITE];

	(void)arg;
	dialog_totals(&dt);
	sysd_notifyf("STATUS=%llu calls up, %llu calls total, %u transactions, "
	    "%u calls pending, %.1f calls/s, %u registrations",
	    (unsigned long long)dt.by_state[DLG_CONFIRMED],
	    (unsigned long long)dt.created, t.txns, t.pending,
	    (double)(inv - D.last_invites) * 1000 / STATUS_MS,
	    location_count());
	D.last_invites = inv;
	if (D.watchdog_usec > 0)
		sysd_notify("WATCHDOG=1");
	timer_set(&D.status, D.watchdog_usec > 0 && D.watchdog_usec / 2000 <
	    STATUS_MS ? (uint32_t)(D.watchdog_usec / 2000) : STATUS_MS);
}

/*
 * Every connection is a file descriptor: the soft limit goes up to what
 * connections.max needs (and the hard limit allows), or a warning says
 * why the cap cannot be reached.  Under the shipped unit LimitNOFILE=
 * has set both already (its seccomp filter refuses setrlimit()).
 */
static void
fd_limit_for(unsigned max_conns)
{
	struct rlimit	rl;
	rlim_t		want = (rlim_t)max_conns + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		want = rl.rlim_max;
	if (want > rl.rlim_cur) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("ospreyd: file descriptor limit raised to %llu",
			    (unsigned long long)want);
		else if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			return;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)max_conns + 256)
		log_warnx("ospreyd: connections.max %u needs %u file "
		    "descriptors; the limit is %llu (LimitNOFILE=, ulimit -n)",
		    max_conns, max_conns + 256,
		    (unsigned long long)rl.rlim_cur);
}

/* workers = 0: one per CPU this process may run on. */
static unsigned
workers_of(const struct conf *cf)
{
	cpu_set_t	set;
	int		n;

	if (cf->workers > 0)
		return (cf->workers);
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return (n < 1 ? 1 : n > 64 ? 64 : (unsigned)n);
}

/* The connection limits, with the message size the proxy enforces. */
static void
conf_limits(const struct conf *cf, struct tp_limits *lim)
{
	*lim = cf->conns;
	lim->max_message_size = cf->proxy.max_message_size;
}

static int
listen_open(const struct conf_listen *l, char *err, size_t errlen)
{
	enum tp_proto	proto;

	if (tp_proto_parse((struct slice){ l->transport, strlen(l->transport)
	    }, &proto) == -1) {
		snprintf(err, errlen, "listen: unknown transport %s",
		    l->transport);
		return (-1);
	}
	if (proto == TP_UDP)
		return (tp_udp_open(&D.tp, l->address, l->port, err, errlen));
	return (tp_stream_open(&D.tp, proto, l->address, l->port, err,
	    errlen));
}

/* Are the listen entries of cf the sockets that are bound, in order? */
static bool
listen_is_bound(const struct conf *cf)
{
	const struct conf_listen	*l;
	struct tp_addr			 a;
	enum tp_proto			 proto;
	char				 ip[INET6_ADDRSTRLEN];
	unsigned			 i;

	if (cf->nlisten != D.tp.nsocks)
		return (false);
	for (i = 0; i < cf->nlisten; i++) {
		l = &cf->listen[i];
		if (tp_proto_parse((struct slice){ l->transport,
		    strlen(l->transport) }, &proto) == -1 || tp_addr_set(&a,
		    (struct slice){ l->address, strlen(l->address) },
		    l->port) == -1)
			return (false);
		tp_addr_ip(&a, ip, sizeof(ip));
		if (strcmp(ip, D.tp.socks[i].ip) != 0 ||
		    l->port != D.tp.socks[i].port ||
		    proto != D.tp.socks[i].proto)
			return (false);
	}
	return (true);
}

/* "127.0.0.1 9091" for comparisons; NULL when metrics are off. */
static char *
metrics_of(const struct conf *cf)
{
	char	s[128];

	if (cf->metrics_address == NULL)
		return (NULL);
	snprintf(s, sizeof(s), "%s %u", cf->metrics_address, cf->metrics_port);
	return (xstrdup(s));
}

static bool
str_same(const char *a, const char *b)
{
	return (a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0);
}

/* What is set up once at start, to compare a reloaded config with. */
static void
running_set(const struct conf *cf)
{
	D.run_metrics = metrics_of(cf);
	D.run_dns = cf->dns;
	D.run_database = cf->reg.database ? xstrdup(cf->reg.database) : NULL;
	D.run_dialog_db = cf->dialog_database ?
	    xstrdup(cf->dialog_database) : NULL;
}

static void
running_free(void)
{
	free(D.run_metrics);
	free(D.run_database);
	free(D.run_dialog_db);
	D.run_metrics = D.run_database = D.run_dialog_db = NULL;
}

/* A setting that differs from what runs: logged, and told to ospreyctl. */
static void
restart_needed(struct buf *notes, const char *what)
{
	log_warnx("ospreyd: reload: %s changes take effect at the next "
	    "restart", what);
	buf_addf(notes, "%s: takes effect at the next restart\n", what);
}

/*
 * SIGHUP and `ospreyctl reload`: the new config is checked first; a bad
 * one changes nothing.  Calls in progress keep the routes they started
 * with.  What changed is logged, a line each, and added to changes.
 */
static int
ospreyd_reload(void *arg, struct buf *changes, char *err, size_t errlen)
{
	struct conf		*nc = xcalloc(1, sizeof(*nc));
	struct gw_settings	 gs;
	struct tp_limits	 lim;
	struct buf		 notes;
	char			*desc, *m, *p, *nl;
	size_t			 from = changes->len;
	unsigned		 n;

	(void)arg;
	sysd_notify("RELOADING=1");
	if (conf_load(D.path, nc, err, errlen) == -1) {
		log_warnx("ospreyd: reload refused, the running config stays: %s",
		    err);
		free(nc);
		sysd_notify("READY=1");
		return (-1);
	}
	conf_warnings(nc, NULL);
	desc = conf_describe(nc);
	n = conf_diff(D.desc, desc, changes);
	log_set_level(nc->log_level);
	for (p = changes->p + from; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		log_notice("ospreyd: reload: %.*s", (int)(nl - p), p);
	if (n == 0)
		buf_adds(changes, "no configuration changes\n");
	/* Compared with what runs, not with the last config. */
	buf_init(&notes, 128);
	if (!listen_is_bound(nc))
		restart_needed(&notes, "listen");
	m = metrics_of(nc);
	if (!str_same(m, D.run_metrics))
		restart_needed(&notes, "metrics");
	free(m);
	if (memcmp(&nc->dns, &D.run_dns, sizeof(nc->dns)) != 0)
		restart_needed(&notes, "dns");
	if (!str_same(nc->reg.database, D.run_database))
		restart_needed(&notes, "registrar.database");
	if ((nc->reg.backend == REG_BACKEND_REDIS) != registrar_shared())
		restart_needed(&notes, "registrar.backend");
	else if (registrar_share_changed(&nc->redis))
		restart_needed(&notes, "redis");
	if (!str_same(nc->dialog_database, D.run_dialog_db))
		restart_needed(&notes, "dialog.database");
	if ((nc->dialog.enable && nc->dialog.backend ==
	    DIALOG_BACKEND_REDIS) != dialog_shared())
		restart_needed(&notes, "dialog.backend");
	if (workers_of(nc) != D.workers)
		restart_needed(&notes, "workers");
	if (nc->dialog.enable != dialog_enabled()) {
		/* A run either stamps every INVITE for the table or none. */
		restart_needed(&notes, "dialog.enable");
		nc->dialog.enable = dialog_enabled();
	}
	if (ctl_set_settings(&nc->ctl) == -1)
		restart_needed(&notes, "control.socket");
	if (!rtpengine_same_instances(&nc->media))
		restart_needed(&notes, "media.rtpengine");
	buf_add(changes, notes.p, notes.len);
	buf_cleanup(&notes);
	if (nc->auth.users_file != NULL) {
		log_notice("ospreyd: reload: auth.users %s read again, %u "
		    "user(s)", nc->auth.users_file, auth_users_count(nc->users));
		buf_addf(changes, "auth.users: %s read again, %u user(s)\n",
		    nc->auth.users_file, auth_users_count(nc->users));
	}
	/* What every worker reads changes while they wait. */
	worker_pause();
	conf_limits(nc, &lim);
	tp_set_limits(&D.tp, &lim);
	fd_limit_for(lim.max_conns);
	tp_set_tls(&D.tp, nc->tls_server, nc->tls_client);	/* new ones */
	tp_set_ws_origins(&D.tp, nc->ws_origins.v, nc->ws_origins.n);
	gw_stop(&proxy_settings()->routes);
	gw_settings_of(nc, &gs);
	proxy_set_settings(proxy_settings_take(&nc->proxy));
	D.proxy_set = proxy_settings();
	gw_start(D.base, &D.tp, &proxy_settings()->routes, &gs);
	registrar_set(&nc->reg);
	natping_set(&nc->nat);
	cdr_reload(&nc->cdr);	/* after the records queued until now */
	guard_set(&nc->guard, &nc->auth.trusted);
	auth_set(&nc->auth, nc->users);
	dialog_set_settings(&nc->dialog);	/* the tables stay */
	nc->users = NULL;
	rtpengine_set_timing(&nc->media);
	conf_free(D.conf);
	free(D.conf);
	D.conf = nc;
	worker_resume();
	/* What each worker holds for itself, on its own loop. */
	worker_each(worker_settings_run, NULL);
	free(D.desc);
	D.desc = desc;
	log_notice("ospreyd: config reloaded from %s, %u change(s)", D.path,
	    n);
	sysd_notify("READY=1");
	return (0);
}

static void
stop_poll(void *arg)
{
	struct worker_totals	t;
	unsigned		pending;

	(void)arg;
	worker_totals(&t);
	pending = t.pending;
	/*
	 * None pending twice in a row: the last answer a worker relayed
	 * may still be on its way to the loop that holds the caller's
	 * connection (a mailbox hop, then the write), so one more poll
	 * lets it out before the connections close.
	 */
	if (pending == 0 && !D.stop_quiet && now_ms() < D.stop_deadline_ms) {
		D.stop_quiet = true;
		timer_set(&D.stop, 50);
		return;
	}
	if (pending > 0)
		D.stop_quiet = false;
	if (pending == 0 || now_ms() >= D.stop_deadline_ms) {
		if (pending > 0)
			log_notice("ospreyd: %u call(s) still pending, stopping "
			    "anyway", pending);
		event_base_loopbreak(D.base);
		return;
	}
	timer_set(&D.stop, 50);
}

/* Graceful stop: no new calls, the pending ones get up to the bound. */
static void
ospreyd_stop(void)
{
	if (D.stopping) {
		event_base_loopbreak(D.base);	/* asked twice: now */
		return;
	}
	D.stopping = true;
	sysd_notify("STOPPING=1");
	worker_stop_accepting();
	D.stop_deadline_ms = now_ms() + D.conf->shutdown_grace_ms;
	log_notice("ospreyd: stopping, waiting up to %u ms for the calls "
	    "pending", D.conf->shutdown_grace_ms);
	stop_poll(NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct buf	changes;
	char		err[512];

	(void)what;
	(void)arg;
	if (sig == SIGHUP) {
		log_notice("ospreyd: SIGHUP, reloading %s", D.path);
		buf_init(&changes, 256);
		ospreyd_reload(NULL, &changes, err, sizeof(err));
		buf_cleanup(&changes);
		return;
	}
	log_notice("ospreyd: signal %d", (int)sig);
	ospreyd_stop();
}

static void
dialog_restore_one(void *arg, const void *rec, size_t len)
{
	struct dialog_blob	*b = xmalloc(sizeof(*b) + len);
	struct slice		 cid;
	unsigned		*n = arg;

	b->len = len;
	memcpy(b->rec, rec, len);
	if (dialog_blob_callid(b, &cid) == -1) {
		free(b);
		return;
	}
	/* The owner by this run's shard key. */
	worker_post(shard_of(cid.p, cid.len), dialog_restore, b);
	(*n)++;
}

/* dialog.database: every stored dialog to the worker that owns it now. */
static void
dialogs_restore(void)
{
	unsigned	n = 0;

	if (!dialog_store_is_open())
		return;
	if (!dialog_enabled()) {
		log_notice("ospreyd: dialog.enable is false: the dialogs in "
		    "dialog.database stay there");
		return;
	}
	dialog_store_load(dialog_restore_one, &n);
	log_notice("ospreyd: %u dialog(s) from dialog.database", n);
}

/*
 * Worker id > 0, on its own thread: sockets of its own on every address
 * worker 0 bound, in the same order (UDP, and stream listeners that
 * accept the connections it will own: SO_REUSEPORT), and its own
 * resolver, transactions and proxy state.
 */
static int
worker_setup(unsigned id, struct event_base *base, struct tp *tp, void *arg,
    char *err, size_t errlen)
{
	unsigned	i;

	(void)id;
	(void)arg;
	/* Worker 0's: D.conf's proxy settings have been taken by now. */
	tp_set_limits(tp, &D.tp.lim);
	tp_set_tls(tp, D.conf->tls_server, D.conf->tls_client);
	tp_set_ws_origins(tp, D.conf->ws_origins.v, D.conf->ws_origins.n);
	for (i = 0; i < D.tp.nsocks; i++) {
		const struct tp_sock	*s = &D.tp.socks[i];

		if ((s->proto == TP_UDP ? tp_udp_open(tp, s->ip, s->port, err,
		    errlen) : tp_stream_open(tp, s->proto, s->ip, s->port, err,
		    errlen)) == -1)
			return (-1);
	}
	resolver_init(base, &D.conf->dns);
	proxy_init(base, tp, proxy_settings_ref(D.proxy_set), &D.conf->txn);
	if (rtpengine_start(base, false, err, errlen) == -1)
		return (-1);
	/* Its own connection for the nonce-counts of what it challenges. */
	if (D.conf->reg.backend == REG_BACKEND_REDIS && auth_share(base,
	    &D.conf->redis, err, errlen) == -1)
		return (-1);
	return (0);
}

static void
worker_teardown(unsigned id, void *arg)
{
	(void)id;
	(void)arg;
	auth_unshare();		/* its checks waiting: answered first */
	proxy_shutdown();	/* cancels its rtpengine requests first */
	rtpengine_stop();
	resolver_shutdown();
}

/* After a reload: the settings each worker keeps for itself. */
static void
worker_settings_run(void *arg)
{
	(void)arg;
	txn_set_settings(&D.conf->txn);
	if (shard_self() == 0)
		return;		/* the main loop has its own already */
	proxy_set_settings(proxy_settings_ref(D.proxy_set));
	tp_set_limits(worker_tp(), &D.tp.lim);
	/* New connections get the new certificates; open ones keep theirs. */
	tp_set_tls(worker_tp(), D.conf->tls_server, D.conf->tls_client);
	tp_set_ws_origins(worker_tp(), D.conf->ws_origins.v,
	    D.conf->ws_origins.n);
}

int
main(int argc, char **argv)
{
	bool			 foreground = false, check = false, verbose = false;
	struct event		*sigs[3];
	struct gw_settings	 gs;
	struct tp_limits	 lim;
	char			 err[512];
	uint8_t			 secret[32];
	unsigned		 i;
	int			 ch, signos[3] = { SIGTERM, SIGINT, SIGHUP };

	D.path = OSPREY_DEFAULT_CONF;
	while ((ch = getopt(argc, argv, "c:fhtVv")) != -1) {
		switch (ch) {
		case 'c':
			D.path = optarg;
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
	D.conf = xcalloc(1, sizeof(*D.conf));
	if (conf_load(D.path, D.conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return (1);
	}
	if (check) {
		conf_warnings(D.conf, stderr);
		if (verbose)
			conf_print(D.conf, stdout);
		else
			printf("%s: configuration OK\n", D.path);
		conf_free(D.conf);
		free(D.conf);
		return (0);
	}
	log_init(foreground || isatty(STDERR_FILENO), D.conf->log_level);
	conf_warnings(D.conf, NULL);
	D.desc = conf_describe(D.conf);
	running_set(D.conf);
	sipmsg_init();
	signal(SIGPIPE, SIG_IGN);

	D.workers = workers_of(D.conf);
	shard_setup(D.workers);
	if ((D.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	tp_init(&D.tp, D.base, worker_recv, NULL);
	if (D.workers > 1) {
		D.tp.reuseport = true;	/* each worker: its own sockets */
		tp_conn_directory();
	}
	metrics_set_tp(&D.tp);
	ctl_set_tp(&D.tp);
	conf_limits(D.conf, &lim);
	tp_set_limits(&D.tp, &lim);
	fd_limit_for(lim.max_conns);
	tp_set_tls(&D.tp, D.conf->tls_server, D.conf->tls_client);
	tp_set_ws_origins(&D.tp, D.conf->ws_origins.v, D.conf->ws_origins.n);
	for (i = 0; i < D.conf->nlisten; i++)
		if (listen_open(&D.conf->listen[i], err, sizeof(err)) == -1)
			fatalx("ospreyd: %s", err);
	resolver_init(D.base, &D.conf->dns);
	if (registrar_init(D.base, D.conf->reg.database, err,
	    sizeof(err)) == -1)
		fatalx("ospreyd: registrar.database: %s", err);
	if (D.conf->reg.backend == REG_BACKEND_REDIS && registrar_share(D.base,
	    &D.conf->redis, err, sizeof(err)) == -1)
		fatalx("ospreyd: redis: %s", err);
	if (cdr_start(&D.conf->cdr, err, sizeof(err)) == -1)
		fatalx("ospreyd: accounting: %s", err);
	dialog_set_cdr(cdr_write);	/* a no-op without accounting */
	dialog_set_media_end(proxy_media_end);	/* rtpengine's delete */
	if (dialog_store_open(D.base, D.conf->dialog_database, err,
	    sizeof(err)) == -1)
		fatalx("ospreyd: dialog.database: %s", err);
	/* The stamps of stored dialogs must check after a restart. */
	if (D.conf->reg.database == NULL && dialog_store_is_open())
		dialog_store_secret(secret);
	else
		store_secret(secret);
	auth_init(secret);
	explicit_bzero(secret, sizeof(secret));
	if (D.conf->reg.backend == REG_BACKEND_REDIS && auth_share(D.base,
	    &D.conf->redis, err, sizeof(err)) == -1)
		fatalx("ospreyd: redis: %s", err);
	registrar_set(&D.conf->reg);
	natping_set(&D.conf->nat);
	natping_start(D.base, &D.tp);
	guard_init(D.base);
	for (i = 0; i < D.conf->nlisten; i++)
		guard_add_self(D.conf->listen[i].address);
	guard_set(&D.conf->guard, &D.conf->auth.trusted);
	auth_set(&D.conf->auth, D.conf->users);
	D.conf->users = NULL;
	if (D.conf->auth.users_file == NULL)
		log_notice("ospreyd: no auth.users file: requests are not "
		    "authenticated");
	gw_settings_of(D.conf, &gs);
	dialog_set_settings(&D.conf->dialog);
	if (D.conf->dialog.enable && D.conf->dialog.backend ==
	    DIALOG_BACKEND_REDIS)
		dialog_share(&D.conf->redis);	/* each worker connects */
	/* The secret every shared feature derives its keys from. */
	if ((D.conf->reg.backend == REG_BACKEND_REDIS ||
	    (D.conf->dialog.enable && D.conf->dialog.backend ==
	    DIALOG_BACKEND_REDIS)) && cluster_start(D.base, &D.conf->redis,
	    err, sizeof(err)) == -1)
		fatalx("ospreyd: redis: %s", err);
	proxy_init(D.base, &D.tp, proxy_settings_take(&D.conf->proxy),
	    &D.conf->txn);
	D.proxy_set = proxy_settings();
	gw_start(D.base, &D.tp, &proxy_settings()->routes, &gs);
	/* The media relay's control client; worker 0 probes the instances. */
	if (rtpengine_configure(&D.conf->media, err, sizeof(err)) == -1 ||
	    rtpengine_start(D.base, true, err, sizeof(err)) == -1)
		fatalx("ospreyd: media: %s", err);
	if (D.conf->metrics_address != NULL && metrics_start(D.base,
	    D.conf->metrics_address, D.conf->metrics_port, err,
	    sizeof(err)) == -1)
		fatalx("ospreyd: metrics: %s", err);
	if (ctl_start(D.base, &D.conf->ctl, ospreyd_reload, NULL, err,
	    sizeof(err)) == -1)
		fatalx("ospreyd: control socket: %s", err);
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(D.base, signos[i], on_signal, NULL);
		evsignal_add(sigs[i], NULL);
	}
	if (worker_start(D.workers, D.base, &D.tp, worker_setup,
	    worker_teardown, NULL, err, sizeof(err)) == -1)
		fatalx("ospreyd: %s", err);
	dialogs_restore();
	timer_init(&D.status, D.base, status_tick, NULL);
	timer_init(&D.stop, D.base, stop_poll, NULL);
	D.watchdog_usec = sysd_watchdog_usec();

	log_always("ospreyd %s: ready, %u listener(s)", PACKAGE_VERSION,
	    D.tp.nsocks);
	sysd_notify("READY=1");
	status_tick(NULL);
	worker_run(D.base, &D.tp);

	worker_stop();
	timer_stop(&D.status);
	timer_stop(&D.stop);
	ctl_stop();
	metrics_stop();
	gw_stop(&proxy_settings()->routes);
	natping_stop();
	auth_unshare();		/* requests waiting on a nonce-count */
	cluster_stop();
	registrar_unshare();	/* REGISTERs waiting on Redis: 500 */
	proxy_shutdown();	/* cancels its rtpengine requests first */
	rtpengine_stop();
	dialog_store_close();	/* after every worker's dialogs went */
	registrar_shutdown();
	auth_shutdown();
	guard_shutdown();
	resolver_shutdown();
	cdr_stop();	/* every record queued, written and synced */
	tp_close(&D.tp);
	tp_conn_directory_free();
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_base_free(D.base);
	conf_free(D.conf);
	free(D.conf);
	free(D.desc);
	running_free();
	log_always("ospreyd: stopped");
	return (0);
}
