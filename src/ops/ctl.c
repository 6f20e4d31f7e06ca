/*
 * The control socket behind ospreyctl(8): a Unix stream socket, one
 * request line per connection ("[json ]COMMAND [ARGS]"), answered with
 * "OK" or "ERR reason" on the first line and the body after it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <malloc.h>
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
#include "dialog.h"
#include "gateway.h"
#include "guard.h"
#include "location.h"
#include "locredis.h"
#include "log.h"
#include "proxy.h"
#include "sipcause.h"
#include "sipmsg.h"
#include "txn.h"
#include "worker.h"
#include "xmalloc.h"

#define CTL_LINE_MAX	1024

static struct {
	struct event_base	*base;
	struct evconnlistener	*lis;
	char			*path;		/* owned: what we bound */
	ctl_reload_fn		*reload;
	void			*reload_arg;
	const struct tp		*tp;		/* connections, counters */
} C;

struct out {
	struct evbuffer	*b;
	bool		 json;
	const char	*filter;	/* Call-ID or user, or NULL */
	unsigned	 n;
};

/*
 * One value of an answer, described once: the JSON member and the text
 * line are both rendered from it by field_put().
 */
struct field {
	const char		*key;	/* JSON member */
	const char		*label;	/* text line; NULL: the key */
	const char		*str;	/* a string, or NULL: num */
	unsigned long long	 num;
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

/* A member of a JSON object, or a "label  value" line. */
static void
field_put(struct out *o, const struct field *f)
{
	if (o->json) {
		evbuffer_add(o->b, o->n ? "," : "{", 1);
		json_str(o->b, f->key);
		evbuffer_add(o->b, ":", 1);
		if (f->str != NULL)
			json_str(o->b, f->str);
		else
			evbuffer_add_printf(o->b, "%llu", f->num);
	} else if (f->str != NULL)
		evbuffer_add_printf(o->b, "%-24s %s\n", f->label ? f->label :
		    f->key, f->str);
	else
		evbuffer_add_printf(o->b, "%-24s %llu\n", f->label ? f->label :
		    f->key, f->num);
	o->n++;
}

static void
fields_put(struct out *o, const struct field *f, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		field_put(o, &f[i]);
}

/* Closes the JSON object the fields opened. */
static void
fields_end(struct out *o)
{
	if (o->json)
		evbuffer_add(o->b, o->n ? "}\n" : "{}\n", o->n ? 2 : 3);
}

static const char *const kinds[] = { "ist", "nist", "ict", "nict" };

/*
 * The CSeq of a transaction, the one `cancel CALL-ID CSEQ` takes: a
 * server's from its request, a client's from the request it sent (an
 * INVITE client's bytes may be its ACK by now: same number).
 */
static void
txn_cseq_of(const struct txn *t, uint32_t *num, char *method, size_t len)
{
	struct sipmsg	*m = NULL;
	const struct sipmsg *req = t->req;
	char		 err[128];

	*num = 0;
	snprintf(method, len, "-");
	if (req == NULL && t->out != NULL && t->cseq == 0) {
		m = sipmsg_new(t->out, t->outlen);
		if (sipmsg_parse(m, err, sizeof(err)) == 0 && m->request)
			req = m;
	}
	if (req != NULL) {
		*num = req->cseq;
		snprintf(method, len, SLICE_FMT, SLICE_ARG(req->cseq_method));
	} else if (t->cseq != 0) {	/* a server's, its request freed */
		*num = t->cseq;
		snprintf(method, len, "%s",
		    sip_method_name((enum sip_method)t->method));
	}
	if (t->kind == TXN_ICT)
		snprintf(method, len, "INVITE");
	sipmsg_free(m);
}

static void
list_txn(struct txn *t, void *arg)
{
	struct out	*o = arg;
	const char	*cid = txn_callid(t);
	char		 method[32];
	uint32_t	 cseq;

	if (o->filter != NULL && strcmp(cid, o->filter) != 0)
		return;
	txn_cseq_of(t, &cseq, method, sizeof(method));
	if (o->json) {
		evbuffer_add_printf(o->b, "%s{\"id\":", o->n ? "," : "");
		json_str(o->b, txn_id(t));
		evbuffer_add_printf(o->b, ",\"kind\":\"%s\",\"state\":\"%s\","
		    "\"code\":%d,\"cseq\":%u,\"method\":", kinds[t->kind],
		    txn_state_name(t->state), t->code, cseq);
		json_str(o->b, method);
		evbuffer_add(o->b, ",\"call_id\":", 11);
		json_str(o->b, cid);
		evbuffer_add(o->b, "}", 1);
	} else {
		if (o->n == 0)
			evbuffer_add_printf(o->b, "%-12s %-5s %-11s %4s  %-16s "
			    "%s\n", "ID", "KIND", "STATE", "CODE", "CSEQ",
			    "CALL-ID");
		evbuffer_add_printf(o->b, "%-12s %-5s %-11s %4d  %-5u %-10s "
		    "%s\n", txn_id(t), kinds[t->kind], txn_state_name(t->state),
		    t->code, cseq, method, cid);
	}
	o->n++;
}

/* registrations [USER]: USER is "alice" or "alice@example.test". */
static void
list_binding(void *arg, const struct binding *b)
{
	struct out	*o = arg;
	const char	*key = b->aor->key, *at = strrchr(key, '@'), *node;
	char		 recv[TP_NAME_LEN], q[8];

	if (o->filter != NULL && strcmp(key, o->filter) != 0 &&
	    (at == NULL || strlen(o->filter) != (size_t)(at - key) ||
	    strncmp(key, o->filter, (size_t)(at - key)) != 0))
		return;
	location_addr_format(&b->received, recv, sizeof(recv));
	snprintf(q, sizeof(q), "%u.%03u", b->q / 1000, b->q % 1000);
	/* registrar.backend redis: the node that took it, this one's id */
	node = b->node != NULL ? b->node : locredis_active() ?
	    locredis_node() : "local";
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
		evbuffer_add(o->b, ",\"node\":", 8);
		json_str(o->b, node);
		evbuffer_add_printf(o->b, ",\"own\":%s", b->node == NULL ?
		    "true" : "false");
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
		evbuffer_add_printf(o->b, "%-24s %-40s %6us q=%s from %s "
		    "node=%s%s%s%s\n", key, b->contact, binding_expires_in(b),
		    q, recv, node, b->node == NULL && locredis_active() ?
		    " (this)" : "",
		    b->user_agent ? "  " : "", b->user_agent ? b->user_agent :
		    "");
	o->n++;
}

/* connections [PEER-IP]: one line (or object) per TCP connection. */
static void
list_conn(const struct tp_conn_info *ci, void *arg)
{
	struct out	*o = arg;
	char		 peer[TP_NAME_LEN], ip[INET6_ADDRSTRLEN];

	tp_addr_ip(&ci->peer, ip, sizeof(ip));
	if (o->filter != NULL && strcmp(ip, o->filter) != 0)
		return;
	tp_addr_str(&ci->peer, peer, sizeof(peer));
	if (o->json) {
		evbuffer_add_printf(o->b, "%s{\"id\":%llu,\"peer\":",
		    o->n ? "," : "", (unsigned long long)ci->id);
		json_str(o->b, peer);
		evbuffer_add(o->b, ",\"local\":", 9);
		json_str(o->b, ci->sock->name);
		evbuffer_add_printf(o->b, ",\"worker\":%u,"
		    "\"direction\":\"%s\",\"state\":"
		    "\"%s\",\"age_s\":%llu,\"idle_s\":%llu,\"rx\":%llu,"
		    "\"tx\":%llu,\"queued\":%zu}", ci->worker,
		    ci->outbound ? "out" : "in",
		    ci->state, (unsigned long long)(ci->age_ms / 1000),
		    (unsigned long long)(ci->idle_ms / 1000),
		    (unsigned long long)ci->rx_msgs,
		    (unsigned long long)ci->tx_msgs, ci->queued);
	} else {
		if (o->n == 0)
			evbuffer_add_printf(o->b, "%-6s %-28s %-28s %-3s %-10s "
			    "%6s %6s %7s %7s %7s\n", "ID", "PEER", "LOCAL",
			    "DIR", "STATE", "AGE", "IDLE", "RX", "TX",
			    "QUEUED");
		evbuffer_add_printf(o->b, "%-6llu %-28s %-28s %-3s %-10s "
		    "%5llus %5llus %7llu %7llu %7zu\n",
		    (unsigned long long)ci->id, peer, ci->sock->name,
		    ci->outbound ? "out" : "in", ci->state,
		    (unsigned long long)(ci->age_ms / 1000),
		    (unsigned long long)(ci->idle_ms / 1000),
		    (unsigned long long)ci->rx_msgs,
		    (unsigned long long)ci->tx_msgs, ci->queued);
	}
	o->n++;
}

/* dialogs [CALL-ID]: one line (or object) per dialog. */
static void
list_dialog(const struct dialog_info *di, void *arg)
{
	struct out	*o = arg;

	if (o->filter != NULL && strcmp(di->callid, o->filter) != 0)
		return;
	if (o->json) {
		evbuffer_add_printf(o->b, "%s{\"call_id\":", o->n ? "," : "");
		json_str(o->b, di->callid);
		evbuffer_add_printf(o->b, ",\"state\":\"%s\",\"caller\":",
		    dialog_state_name(di->state));
		json_str(o->b, di->caller);
		evbuffer_add(o->b, ",\"callee\":", 10);
		json_str(o->b, di->callee);
		evbuffer_add(o->b, ",\"caller_target\":", 17);
		json_str(o->b, di->caller_target);
		evbuffer_add(o->b, ",\"callee_target\":", 17);
		json_str(o->b, di->callee_target);
		evbuffer_add(o->b, ",\"identity\":", 12);
		json_str(o->b, di->identity);
		evbuffer_add_printf(o->b, ",\"age_s\":%llu,\"worker\":%u,"
		    "\"media\":%s,\"transit\":%s}",
		    (unsigned long long)(di->age_ms / 1000), di->worker,
		    di->media ? "true" : "false",
		    di->transit ? "true" : "false");
	} else {
		if (o->n == 0)
			evbuffer_add_printf(o->b, "%-32s %-9s %-28s %-28s "
			    "%6s %s\n", "CALL-ID", "STATE", "CALLER", "CALLEE",
			    "AGE", "WORKER");
		evbuffer_add_printf(o->b, "%-32s %-9s %-28s %-28s %5llus %u\n"
		    "    targets %s <-> %s%s%s\n", di->callid,
		    dialog_state_name(di->state), di->caller, di->callee,
		    (unsigned long long)(di->age_ms / 1000), di->worker,
		    di->caller_target, di->callee_target, di->media ?
		    ", media through rtpengine" : "", di->transit ?
		    ", transit (another node's call: its record)" : "");
	}
	o->n++;
}

void
ctl_set_tp(const struct tp *tp)
{
	C.tp = tp;
}

/* The fields of `status`, in the order they are shown. */
static struct dialog_totals
dialog_now(void)
{
	struct dialog_totals	d;

	dialog_totals(&d);
	return (d);
}

static void
status_put(struct out *o, const struct worker_totals *t)
{
	const struct dialog_totals d = dialog_now();
	const struct field	f[] = {
		{ "version", NULL, PACKAGE_VERSION, 0 },
		{ "pid", NULL, NULL, (unsigned long long)getpid() },
		{ "workers", NULL, NULL, worker_count() },
		{ "transactions", "transactions open", NULL, t->txns },
		{ "calls_pending", "calls pending", NULL, t->pending },
		{ "transactions_created", "transactions total", NULL,
		    t->created },
		{ "transactions_timed_out", "timed out", NULL, t->timed_out },
		{ "registrations", NULL, NULL, location_count() },
		{ "registered_aors", "addresses-of-record", NULL,
		    location_aors() },
		{ "connections", "connections open", NULL, t->conns },
		{ "calls_up", "calls up", NULL, d.by_state[DLG_CONFIRMED] },
		{ "calls_early", "calls ringing", NULL,
		    d.by_state[DLG_EARLY] },
		{ "calls_total", "calls answered", NULL, d.created },
		{ "calls_transit", "calls passing through", NULL,
		    d.transit_by_state[DLG_EARLY] +
		    d.transit_by_state[DLG_CONFIRMED] },
	};

	fields_put(o, f, sizeof(f) / sizeof(f[0]));
	fields_end(o);
}

static void
cmd_status(struct out *o)
{
	struct worker_totals	t;

	worker_totals(&t);
	status_put(o, &t);
}

static void
stat_line(struct out *o, const char *name, uint64_t v)
{
	const struct field	f = { name, NULL, NULL, v };

	field_put(o, &f);
}

/* Bytes the allocator has handed out and not got back (not RSS). */
static uint64_t
heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2	mi = mallinfo2();

	return ((uint64_t)mi.uordblks + (uint64_t)mi.hblkhd);
#else
	return (0);
#endif
}

/* The per-worker lines of stats, in struct worker_stats's order. */
static const struct {
	const char	*name;
	size_t		 off;
} worker_fields[] = {
	{ "handed_out", offsetof(struct worker_stats, handed_out) },
	{ "handed_in", offsetof(struct worker_stats, handed_in) },
	{ "stream_out", offsetof(struct worker_stats, stream_out) },
	{ "handoff_dropped", offsetof(struct worker_stats, handoff_dropped) },
	{ "connections", offsetof(struct worker_stats, connections) },
	{ "accepted", offsetof(struct worker_stats, accepted) },
};

static void
cmd_stats(struct out *o)
{
	struct worker_totals		 t;
	const struct proxy_stats	*s = worker_totals(&t);
	struct worker_stats		 ws;
	struct locredis_stats		 ls;
	const struct gw			*gw;
	char				 name[64];
	int				 i;
	size_t				 j;

	for (i = 1; i < SM_COUNT; i++) {
		if (s->requests_in[i] == 0)
			continue;
		snprintf(name, sizeof(name), "requests.%s",
		    sip_method_name((enum sip_method)i));
		stat_line(o, name, s->requests_in[i]);
	}
	for (i = 100; i < 700; i++) {
		if (s->responses_in[i] != 0) {
			snprintf(name, sizeof(name), "responses_in.%d", i);
			stat_line(o, name, s->responses_in[i]);
		}
		if (s->responses_out[i] != 0) {
			snprintf(name, sizeof(name), "responses_out.%d", i);
			stat_line(o, name, s->responses_out[i]);
		}
	}
	for (i = 0; i < 128; i++) {
		if (s->finals_by_cause[i] == 0)
			continue;
		snprintf(name, sizeof(name), "finals.%s", sip_cause_name(i));
		stat_line(o, name, s->finals_by_cause[i]);
	}
	stat_line(o, "rejected", s->rejected);
	stat_line(o, "parse_errors", s->parse_errors);
	stat_line(o, "dropped", s->dropped);
	stat_line(o, "cancels_relayed", s->cancels_relayed);
	stat_line(o, "sent_481", s->sent_481);
	stat_line(o, "sent_487", s->sent_487);
	stat_line(o, "registrations", location_count());
	if (locredis_active()) {
		locredis_stats(&ls);
		stat_line(o, "location.messages_applied", ls.applied);
		stat_line(o, "location.messages_reread", ls.reread);
		stat_line(o, "location.stale", ls.stale);
	}
	stat_line(o, "auth.challenges", auth_stats()->challenges);
	stat_line(o, "auth.failures", auth_stats()->failures);
	stat_line(o, "auth.successes", auth_stats()->successes);
	stat_line(o, "auth.nc_shared", auth_stats()->nc_shared);
	stat_line(o, "auth.nc_local", auth_stats()->nc_local);
	stat_line(o, "auth.nc_unavailable", auth_stats()->nc_unavailable);
	stat_line(o, "guard.banned_now", guard_banned());
	stat_line(o, "guard.bans", guard_stats()->bans);
	stat_line(o, "guard.dropped", guard_stats()->dropped);
	stat_line(o, "guard.scanners", guard_stats()->scanners);
	stat_line(o, "guard.call_rate", guard_stats()->call_rate);
	stat_line(o, "overloaded", s->overloaded);
	stat_line(o, "memory.heap_in_use", heap_in_use());
	stat_line(o, "memory.transactions", t.bytes);
	stat_line(o, "memory.transaction_records", t.records);
	for (i = 0; i < (int)worker_count(); i++) {
		worker_stats((unsigned)i, &ws);
		for (j = 0; j < sizeof(worker_fields) /
		    sizeof(worker_fields[0]); j++) {
			snprintf(name, sizeof(name), "workers.%d.%s", i,
			    worker_fields[j].name);
			stat_line(o, name, *(const uint64_t *)(const void *)
			    ((const char *)&ws + worker_fields[j].off));
		}
	}
	if (C.tp != NULL) {
		struct tp_counter	c[TP_COUNTERS_MAX];
		unsigned		n = tp_stream_counters(&t.streams, c,
					    TP_COUNTERS_MAX);

		stat_line(o, "connections.open", t.conns);
		for (i = 0; i < (int)n; i++) {
			snprintf(name, sizeof(name), "connections.%s",
			    c[i].name);
			stat_line(o, name, c[i].n);
		}
		stat_line(o, "connections.messages", t.streams.rx_messages);
		stat_line(o, "connections.keepalives", t.streams.keepalives);
	}
	for (gw = gw_list(); gw != NULL; gw = gw->next) {
		snprintf(name, sizeof(name), "gateway.%.50s", gw->uri);
		stat_line(o, name, gw_is_up(gw));
	}
	fields_end(o);
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

/* A listing: a JSON array of what the foreach between these two adds. */
static void
list_begin(struct out *o, const char *filter)
{
	o->filter = filter;
	if (o->json)
		evbuffer_add(o->b, "[", 1);
}

static void
list_end(struct bufferevent *bev, struct out *o)
{
	if (o->json)
		evbuffer_add(o->b, "]\n", 2);
	reply(bev, true, NULL, o->b);
}

/* "reloaded" and what changed, a line each (a JSON array of them). */
static void
cmd_reload(struct bufferevent *bev, struct out *o)
{
	struct buf	 changes;
	char		 err[512], *line, *save = NULL;
	int		 rc = -1;

	buf_init(&changes, 256);
	snprintf(err, sizeof(err), "reload is not available");
	if (C.reload != NULL)
		rc = C.reload(C.reload_arg, &changes, err, sizeof(err));
	if (rc == -1) {
		reply(bev, false, err, NULL);
		buf_cleanup(&changes);
		return;
	}
	evbuffer_add_printf(o->b, o->json ? "{\"reloaded\":true,"
	    "\"changes\":[" : "reloaded\n");
	for (line = strtok_r(changes.p, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (o->json) {
			if (o->n++ > 0)
				evbuffer_add(o->b, ",", 1);
			json_str(o->b, line);
		} else
			evbuffer_add_printf(o->b, "  %s\n", line);
	}
	if (o->json)
		evbuffer_add(o->b, "]}\n", 3);
	reply(bev, true, NULL, o->b);
	buf_cleanup(&changes);
}

static void
ctl_command(struct bufferevent *bev, char *line)
{
	struct out	 o = { evbuffer_new(), false, NULL, 0 };
	char		*argv[4], *save = NULL, *end, err[512];
	int		 argc = 0, lvl, rc;
	unsigned long	 cseq;

	if (o.b == NULL) {
		log_warnx("ctl: out of memory for an answer");
		return;
	}

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
		list_begin(&o, argc > 1 ? argv[1] : NULL);
		worker_txn_foreach(list_txn, &o);
		list_end(bev, &o);
	} else if (strcmp(argv[0], "connections") == 0 && argc <= 2) {
		list_begin(&o, argc > 1 ? argv[1] : NULL);
		if (C.tp != NULL)
			worker_conn_foreach(list_conn, &o);
		list_end(bev, &o);
	} else if (strcmp(argv[0], "registrations") == 0 && argc <= 2) {
		list_begin(&o, argc > 1 ? argv[1] : NULL);
		location_foreach(list_binding, &o);
		list_end(bev, &o);
	} else if (strcmp(argv[0], "dialogs") == 0 && argc <= 2) {
		list_begin(&o, argc > 1 ? argv[1] : NULL);
		worker_dialog_foreach(list_dialog, &o);
		list_end(bev, &o);
	} else if (strcmp(argv[0], "hangup") == 0 && argc == 2) {
		rc = worker_hangup(argv[1], err, sizeof(err));
		reply(bev, rc == 0, err, NULL);
	} else if (strcmp(argv[0], "reload") == 0 && argc == 1) {
		cmd_reload(bev, &o);
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
		errno = 0;
		cseq = strtoul(argv[2], &end, 10);
		if (!isdigit((unsigned char)argv[2][0]) || *end != '\0' ||
		    errno != 0 || cseq > UINT32_MAX)
			reply(bev, false, "CSEQ must be a number "
			    "(ospreyctl transactions shows it)", NULL);
		else {
			rc = worker_cancel_call(argv[1], (uint32_t)cseq, err,
			    sizeof(err));
			reply(bev, rc == 0, err, NULL);
		}
	} else
		reply(bev, false, "unknown command (status, stats, "
		    "transactions [CALL-ID], registrations [USER], dialogs "
		    "[CALL-ID], reload, loglevel LEVEL, cancel CALL-ID CSEQ, "
		    "hangup CALL-ID)", NULL);
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
    ctl_reload_fn *reload, void *reload_arg, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	char			*dir, *slash;
	int			 fd;

	C.base = base;
	C.reload = reload;
	C.reload_arg = reload_arg;
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

/*
 * A reload: the mode changes now; -1 when the path differs from the socket
 * that is bound (a restart moves it).
 */
int
ctl_set_settings(const struct ctl_settings *set)
{
	if ((set->socket == NULL) != (C.path == NULL) || (C.path != NULL &&
	    strcmp(set->socket, C.path) != 0))
		return (-1);
	if (C.path != NULL)
		chmod(C.path, set->mode);
	return (0);
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
