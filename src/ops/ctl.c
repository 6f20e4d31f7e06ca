/*
 * The control socket behind ospreyctl(8): a Unix stream socket, one
 * request line per connection ("[json ]COMMAND [ARGS]"), answered with
 * "OK" or "ERR reason" on the first line and the body after it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "ctl.h"
#include "auth.h"
#include "gateway.h"
#include "guard.h"
#include "location.h"
#include "log.h"
#include "proxy.h"
#include "sipcause.h"
#include "txn.h"
#include "xmalloc.h"

#define CTL_LINE_MAX	1024

static struct {
	struct event_base	*base;
	struct evconnlistener	*lis;
	char			*path;		/* owned: what we bound */
	ctl_reload_fn		*reload;
} C;

struct out {
	struct evbuffer	*b;
	bool		 json;
	const char	*filter;	/* Call-ID or user, or NULL */
	unsigned	 n;
};

static void
json_str(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char	c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			evbuffer_add_printf(b, "\\%c", c);
		else if (c < 0x20)
			evbuffer_add_printf(b, "\\u%04x", c);
		else
			evbuffer_add(b, s, 1);
	}
	evbuffer_add(b, "\"", 1);
}

static const char *const kinds[] = { "ist", "nist", "ict", "nict" };

static void
list_txn(struct txn *t, void *arg)
{
	struct out	*o = arg;
	const char	*cid = txn_callid(t);

	if (o->filter != NULL && strcmp(cid, o->filter) != 0)
		return;
	if (o->json) {
		evbuffer_add_printf(o->b, "%s{\"id\":", o->n ? "," : "");
		json_str(o->b, t->id);
		evbuffer_add_printf(o->b, ",\"kind\":\"%s\",\"state\":\"%s\","
		    "\"code\":%d,\"call_id\":", kinds[t->kind],
		    txn_state_name(t->state), t->code);
		json_str(o->b, cid);
		evbuffer_add(o->b, "}", 1);
	} else
		evbuffer_add_printf(o->b, "%-12s %-5s %-11s %3d  %s\n", t->id,
		    kinds[t->kind], txn_state_name(t->state), t->code, cid);
	o->n++;
}

/* registrations [USER]: USER is "alice" or "alice@example.test". */
static void
list_binding(void *arg, const struct binding *b)
{
	struct out	*o = arg;
	const char	*key = b->aor->key, *at = strrchr(key, '@');
	char		 recv[TP_HOSTPORT_LEN], q[8];

	if (o->filter != NULL && strcmp(key, o->filter) != 0 &&
	    (at == NULL || strlen(o->filter) != (size_t)(at - key) ||
	    strncmp(key, o->filter, (size_t)(at - key)) != 0))
		return;
	location_addr_format(&b->received, recv, sizeof(recv));
	snprintf(q, sizeof(q), "%u.%03u", b->q / 1000, b->q % 1000);
	if (o->json) {
		evbuffer_add_printf(o->b, "%s{\"aor\":", o->n ? "," : "");
		json_str(o->b, key);
		evbuffer_add(o->b, ",\"contact\":", 11);
		json_str(o->b, b->contact);
		evbuffer_add_printf(o->b, ",\"expires\":%u,\"q\":%s,"
		    "\"received\":", binding_expires_in(b), q);
		json_str(o->b, recv);
		evbuffer_add(o->b, ",\"socket\":", 10);
		json_str(o->b, b->local);
		evbuffer_add(o->b, ",\"call_id\":", 11);
		json_str(o->b, b->callid);
		evbuffer_add_printf(o->b, ",\"cseq\":%u", b->cseq);
		if (b->instance != NULL) {
			evbuffer_add(o->b, ",\"instance\":", 12);
			json_str(o->b, b->instance);
			evbuffer_add_printf(o->b, ",\"reg_id\":%u", b->reg_id);
		}
		if (b->path != NULL) {
			evbuffer_add(o->b, ",\"path\":", 8);
			json_str(o->b, b->path);
		}
		if (b->user_agent != NULL) {
			evbuffer_add(o->b, ",\"user_agent\":", 14);
			json_str(o->b, b->user_agent);
		}
		evbuffer_add(o->b, "}", 1);
	} else
		evbuffer_add_printf(o->b, "%-24s %-40s %6us q=%s from %s%s%s\n",
		    key, b->contact, binding_expires_in(b), q, recv,
		    b->user_agent ? "  " : "", b->user_agent ? b->user_agent :
		    "");
	o->n++;
}

static void
cmd_status(struct out *o)
{
	uint64_t	created, timed_out;

	txn_stats(&created, &timed_out);
	if (o->json)
		evbuffer_add_printf(o->b, "{\"version\":\"%s\",\"pid\":%d,"
		    "\"transactions\":%u,\"calls_pending\":%u,"
		    "\"transactions_created\":%llu,\"transactions_timed_out\":"
		    "%llu,\"registrations\":%u,\"registered_aors\":%u}\n",
		    PACKAGE_VERSION, (int)getpid(), txn_count(),
		    proxy_calls_pending(), (unsigned long long)created,
		    (unsigned long long)timed_out, location_count(),
		    location_aors());
	else
		evbuffer_add_printf(o->b, "ospreyd %s, pid %d\n"
		    "transactions open   %u\ncalls pending       %u\n"
		    "transactions total  %llu\ntimed out           %llu\n"
		    "registrations       %u (%u addresses-of-record)\n",
		    PACKAGE_VERSION, (int)getpid(), txn_count(),
		    proxy_calls_pending(), (unsigned long long)created,
		    (unsigned long long)timed_out, location_count(),
		    location_aors());
}

static void
stat_line(struct out *o, const char *name, uint64_t v, bool *first)
{
	if (o->json) {
		evbuffer_add_printf(o->b, "%s\"%s\":%llu", *first ? "" : ",",
		    name, (unsigned long long)v);
		*first = false;
	} else
		evbuffer_add_printf(o->b, "%-28s %llu\n", name,
		    (unsigned long long)v);
}

static void
cmd_stats(struct out *o)
{
	const struct proxy_stats	*s = proxy_stats();
	const struct gw			*gw;
	bool				 first = true;
	char				 name[64];
	int				 i;

	if (o->json)
		evbuffer_add(o->b, "{", 1);
	for (i = 1; i < SM_COUNT; i++) {
		if (s->requests_in[i] == 0)
			continue;
		snprintf(name, sizeof(name), "requests.%s",
		    sip_method_name((enum sip_method)i));
		stat_line(o, name, s->requests_in[i], &first);
	}
	for (i = 100; i < 700; i++) {
		if (s->responses_in[i] != 0) {
			snprintf(name, sizeof(name), "responses_in.%d", i);
			stat_line(o, name, s->responses_in[i], &first);
		}
		if (s->responses_out[i] != 0) {
			snprintf(name, sizeof(name), "responses_out.%d", i);
			stat_line(o, name, s->responses_out[i], &first);
		}
	}
	for (i = 0; i < 128; i++) {
		if (s->finals_by_cause[i] == 0)
			continue;
		snprintf(name, sizeof(name), "finals.%s", sip_cause_name(i));
		stat_line(o, name, s->finals_by_cause[i], &first);
	}
	stat_line(o, "rejected", s->rejected, &first);
	stat_line(o, "parse_errors", s->parse_errors, &first);
	stat_line(o, "dropped", s->dropped, &first);
	stat_line(o, "cancels_relayed", s->cancels_relayed, &first);
	stat_line(o, "sent_481", s->sent_481, &first);
	stat_line(o, "sent_487", s->sent_487, &first);
	stat_line(o, "registrations", location_count(), &first);
	stat_line(o, "auth.challenges", auth_stats()->challenges, &first);
	stat_line(o, "auth.failures", auth_stats()->failures, &first);
	stat_line(o, "auth.successes", auth_stats()->successes, &first);
	stat_line(o, "guard.banned_now", guard_banned(), &first);
	stat_line(o, "guard.bans", guard_stats()->bans, &first);
	stat_line(o, "guard.dropped", guard_stats()->dropped, &first);
	stat_line(o, "guard.scanners", guard_stats()->scanners, &first);
	stat_line(o, "guard.call_rate", guard_stats()->call_rate, &first);
	stat_line(o, "overloaded", s->overloaded, &first);
	for (gw = gw_list(); gw != NULL; gw = gw->next) {
		snprintf(name, sizeof(name), "gateway.%.50s", gw->uri);
		stat_line(o, name, gw_is_up(gw), &first);
	}
	if (o->json)
		evbuffer_add(o->b, "}\n", 2);
}

static void
reply(struct bufferevent *bev, bool ok, const char *err, struct evbuffer *body)
{
	struct evbuffer	*out = bufferevent_get_output(bev);

	if (ok)
		evbuffer_add(out, "OK\n", 3);
	else
		evbuffer_add_printf(out, "ERR %s\n", err);
	if (body != NULL)
		evbuffer_add_buffer(out, body);
}

static void
ctl_command(struct bufferevent *bev, char *line)
{
	struct out	 o = { evbuffer_new(), false, NULL, 0 };
	char		*argv[4], *save = NULL, err[512];
	int		 argc = 0, lvl, rc;

	while (argc < 4 && (argv[argc] = strtok_r(argc ? NULL : line, " \t",
	    &save)) != NULL)
		argc++;
	if (argc > 0 && strcmp(argv[0], "json") == 0) {
		o.json = true;
		memmove(argv, argv + 1, --argc * sizeof(*argv));
	}
	if (argc == 0) {
		reply(bev, false, "empty command", NULL);
	} else if (strcmp(argv[0], "status") == 0) {
		cmd_status(&o);
		reply(bev, true, NULL, o.b);
	} else if (strcmp(argv[0], "stats") == 0) {
		cmd_stats(&o);
		reply(bev, true, NULL, o.b);
	} else if (strcmp(argv[0], "transactions") == 0) {
		o.filter = argc > 1 ? argv[1] : NULL;
		if (o.json)
			evbuffer_add(o.b, "[", 1);
		txn_foreach(list_txn, &o);
		if (o.json)
			evbuffer_add(o.b, "]\n", 2);
		reply(bev, true, NULL, o.b);
	} else if (strcmp(argv[0], "registrations") == 0 && argc <= 2) {
		o.filter = argc > 1 ? argv[1] : NULL;
		if (o.json)
			evbuffer_add(o.b, "[", 1);
		location_foreach(list_binding, &o);
		if (o.json)
			evbuffer_add(o.b, "]\n", 2);
		reply(bev, true, NULL, o.b);
	} else if (strcmp(argv[0], "reload") == 0) {
		rc = C.reload(err, sizeof(err));
		reply(bev, rc == 0, err, NULL);
	} else if (strcmp(argv[0], "loglevel") == 0 && argc == 2) {
		if ((lvl = log_level_parse(argv[1])) == -1)
			reply(bev, false, "unknown level (error, warning, "
			    "notice, info, debug)", NULL);
		else {
			log_set_level((enum log_level)lvl);
			log_notice("ctl: log level %s", argv[1]);
			reply(bev, true, NULL, NULL);
		}
	} else if (strcmp(argv[0], "cancel") == 0 && argc == 3) {
		rc = proxy_cancel_call(argv[1], (uint32_t)strtoul(argv[2],
		    NULL, 10), err, sizeof(err));
		reply(bev, rc == 0, err, NULL);
	} else
		reply(bev, false, "unknown command (status, stats, "
		    "transactions [CALL-ID], registrations [USER], reload, loglevel "
		    "LEVEL, cancel CALL-ID CSEQ)", NULL);
	evbuffer_free(o.b);
}

static void
ctl_written(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_free(bev);
}

static void
ctl_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
ctl_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 len;

	(void)arg;
	if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_written, ctl_event, NULL);
	ctl_command(bev, line);
	free(line);
}

static void
ctl_accept(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent	*bev;
	struct timeval		 tv = { 5, 0 };

	(void)lis;
	(void)sa;
	(void)salen;
	(void)arg;
	bev = bufferevent_socket_new(C.base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, ctl_read, NULL, ctl_event, NULL);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

/* Is somebody answering on path already? */
static bool
ctl_in_use(const struct sockaddr_un *sun)
{
	int	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool	used;

	if (fd == -1)
		return (false);
	used = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return (used);
}

int
ctl_start(struct event_base *base, const struct ctl_settings *set,
    ctl_reload_fn *reload, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	char			*dir, *slash;
	int			 fd;

	C.base = base;
	C.reload = reload;
	if (set->socket == NULL)
		return (0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(set->socket) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long", set->socket);
		return (-1);
	}
	strcpy(sun.sun_path, set->socket);
	dir = xstrdup(set->socket);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST)
			log_warn("ctl: mkdir %s", dir);
	}
	free(dir);
	if (ctl_in_use(&sun)) {
		log_warnx("ctl: %s is in use by another ospreyd; no control "
		    "socket", set->socket);
		return (0);
	}
	unlink(set->socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_warn("ctl: %s: no control socket", set->socket);
		if (fd != -1)
			close(fd);
		return (0);		/* the proxy runs on without it */
	}
	chmod(set->socket, set->mode);
	C.lis = evconnlistener_new(base, ctl_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 16, fd);
	if (C.lis == NULL) {
		snprintf(err, errlen, "listen on %s failed", set->socket);
		close(fd);
		return (-1);
	}
	C.path = xstrdup(set->socket);
	log_info("ctl: listening on %s", set->socket);
	return (0);
}

void
ctl_set_settings(const struct ctl_settings *set)
{
	if ((set->socket == NULL) != (C.path == NULL) || (C.path != NULL &&
	    strcmp(set->socket, C.path) != 0))
		log_warnx("ospreyd: reload: control socket changes take effect "
		    "at the next restart");
	else if (C.path != NULL)
		chmod(C.path, set->mode);
}

void
ctl_stop(void)
{
	if (C.lis != NULL)
		evconnlistener_free(C.lis);
	C.lis = NULL;
	if (C.path != NULL)
		unlink(C.path);
	free(C.path);
	C.path = NULL;
}
