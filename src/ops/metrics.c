/*
 * The Prometheus endpoint: GET /metrics on an evhttp server, in the text
 * exposition format 0.0.4.  The counters belong to the proxy, the
 * transaction table, the gateway list and the transport; each scrape reads
 * them as they are.  This module owns the HTTP server and one measurement
 * of its own: event-loop lag, how late a 100 ms timer fires.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "auth.h"
#include "dialog.h"
#include "cdr.h"
#include "gateway.h"
#include "guard.h"
#include "location.h"
#include "log.h"
#include "metrics.h"
#include "natping.h"
#include "proxy.h"
#include "redis.h"
#include "rtpengine.h"
#include "sipcause.h"
#include "sipmsg.h"
#include "timer.h"
#include "tp.h"
#include "txn.h"
#include "worker.h"

#define CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define PATH		"/metrics"

#define NS_PER_MS	UINT64_C(1000000)
#define NS_PER_S	UINT64_C(1000000000)
#define LAG_PERIOD_MS	100
#define LAG_WINDOW_S	60	/* osprey_event_loop_max_lag_seconds */

/* Upper bounds of the lag histogram buckets; +Inf follows. */
static const struct {
	uint64_t	 ns;
	const char	*le;
} lag_bounds[] = {
	{ 1 * NS_PER_MS, "0.001" },
	{ 5 * NS_PER_MS, "0.005" },
	{ 10 * NS_PER_MS, "0.01" },
	{ 25 * NS_PER_MS, "0.025" },
	{ 50 * NS_PER_MS, "0.05" },
	{ 100 * NS_PER_MS, "0.1" },
	{ 250 * NS_PER_MS, "0.25" },
	{ 500 * NS_PER_MS, "0.5" },
	{ 1000 * NS_PER_MS, "1" },
	{ 2500 * NS_PER_MS, "2.5" },
	{ 5000 * NS_PER_MS, "5" },
};
#define NBOUNDS	(sizeof(lag_bounds) / sizeof(lag_bounds[0]))

/*
 * Event-loop lag.  The timer is set for LAG_PERIOD_MS from armed_ns; the
 * lag is how much later than that it fired (never negative: libevent's
 * clock may be coarser than ours).  The window keeps the largest lag of
 * each of the last LAG_WINDOW_S seconds, by monotonic second.
 */
struct lag {
	struct timer	 tick;
	uint64_t	 armed_ns;
	uint64_t	 last_ns;
	struct {
		uint64_t	 sec;
		uint64_t	 max_ns;
	}		 window[LAG_WINDOW_S];
	uint64_t	 bucket[NBOUNDS + 1];	/* each its own; +Inf last */
	uint64_t	 count;
	uint64_t	 sum_ns;
};

static struct {
	struct event_base	*base;
	struct evhttp		*http;	/* owned; NULL: stopped */
	const struct tp		*tp;	/* borrowed; NULL: none */
	struct lag		 lag;
} M;

static uint64_t
metrics_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec);
}

/* Help texts are constants without backslashes or newlines. */
static void
metrics_head(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* A label value, escaped as the text format wants: \\, \" and \n. */
static void
metrics_escape(struct evbuffer *out, const char *v)
{
	size_t	n;

	for (;;) {
		n = strcspn(v, "\\\"\n");
		evbuffer_add(out, v, n);
		v += n;
		if (*v == '\0')
			return;
		evbuffer_add(out, *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" :
		    "\\n", 2);
		v++;
	}
}

/* name{label="value"} n, or name n without a label. */
static void
metrics_sample(struct evbuffer *out, const char *name, const char *label,
    const char *value, uint64_t n)
{
	evbuffer_add(out, name, strlen(name));
	if (label != NULL) {
		evbuffer_add_printf(out, "{%s=\"", label);
		metrics_escape(out, value);
		evbuffer_add(out, "\"}", 2);
	}
	evbuffer_add_printf(out, " %" PRIu64 "\n", n);
}

/* A metric with one sample and no labels. */
static void
metrics_scalar(struct evbuffer *out, const char *name, const char *type,
    const char *help, uint64_t n)
{
	metrics_head(out, name, type, help);
	metrics_sample(out, name, NULL, NULL, n);
}

/* Seconds from nanoseconds, exactly. */
static void
metrics_seconds(struct evbuffer *out, const char *name, uint64_t ns)
{
	evbuffer_add_printf(out, "%s %" PRIu64 ".%09" PRIu64 "\n", name,
	    ns / NS_PER_S, ns % NS_PER_S);
}

/* A counter by SIP status code: only the codes seen. */
static void
metrics_codes(struct evbuffer *out, const char *name, const char *help,
    const uint64_t *by_code)
{
	char	code[8];
	int	i;

	metrics_head(out, name, "counter", help);
	for (i = 100; i < 700; i++) {
		if (by_code[i] == 0)
			continue;
		snprintf(code, sizeof(code), "%d", i);
		metrics_sample(out, name, "code", code, by_code[i]);
	}
}

static void
metrics_render_proxy(struct evbuffer *out, const struct proxy_stats *ps)
{
	const char			*name;
	size_t				 i;
	int				 q;

	name = "osprey_requests_received_total";
	metrics_head(out, name, "counter",
	    "Valid requests received, retransmissions included, by method.");
	for (i = 1; i < SM_COUNT; i++)
		metrics_sample(out, name, "method",
		    sip_method_name((enum sip_method)i), ps->requests_in[i]);
	metrics_sample(out, name, "method", "other",
	    ps->requests_in[SM_OTHER]);

	metrics_codes(out, "osprey_responses_received_total",
	    "Responses received from downstream, by status code.",
	    ps->responses_in);
	metrics_codes(out, "osprey_responses_sent_total",
	    "Responses sent upstream, relayed or generated, by status code.",
	    ps->responses_out);
	metrics_codes(out, "osprey_responses_generated_total",
	    "Responses generated by the proxy itself (a subset of "
	    "osprey_responses_sent_total), by status code.", ps->generated);

	name = "osprey_final_responses_sent_total";
	metrics_head(out, name, "counter",
	    "Final responses of 300 and above sent upstream, by Q.850 cause.");
	for (q = 0; q < 128; q++) {
		if (ps->finals_by_cause[q] == 0)
			continue;
		evbuffer_add_printf(out, "%s{cause=\"", name);
		metrics_escape(out, sip_cause_name(q));
		evbuffer_add_printf(out, "\",q850=\"%d\"} %" PRIu64 "\n", q,
		    ps->finals_by_cause[q]);
	}

	metrics_scalar(out, "osprey_requests_rejected_total", "counter",
	    "Requests that failed validation and were answered with an error.",
	    ps->rejected);
	metrics_scalar(out, "osprey_parse_errors_total", "counter",
	    "Datagrams that could not be parsed as SIP messages.",
	    ps->parse_errors);
	metrics_scalar(out, "osprey_messages_dropped_total", "counter",
	    "Messages dropped without an answer, such as responses that "
	    "match no transaction.", ps->dropped);
	metrics_scalar(out, "osprey_cancels_relayed_total", "counter",
	    "CANCEL requests sent downstream to pending branches.",
	    ps->cancels_relayed);
	metrics_scalar(out, "osprey_responses_481_sent_total", "counter",
	    "481 Call/Transaction Does Not Exist responses sent upstream.",
	    ps->sent_481);
	metrics_scalar(out, "osprey_responses_487_sent_total", "counter",
	    "487 Request Terminated responses sent upstream.", ps->sent_487);
}

static void
metrics_render_txn(struct evbuffer *out, const struct worker_totals *t)
{
	uint64_t	timed_out = t->timed_out;

	metrics_scalar(out, "osprey_transactions_open", "gauge",
	    "SIP transactions, client and server, in the table now.",
	    t->txns);
	metrics_scalar(out, "osprey_transactions_created_total", "counter",
	    "SIP transactions created, client and server.", t->created);
	metrics_scalar(out, "osprey_transactions_timed_out_total", "counter",
	    "Client transactions without a final response in time (Timer B "
	    "or F).", timed_out);
}

static void
metrics_render_reg(struct evbuffer *out, const struct proxy_stats *ps)
{
	const struct auth_stats	*as = auth_stats();
	struct natping_stats	 ns;

	metrics_scalar(out, "osprey_registrations", "gauge",
	    "Registered contacts (bindings) in the location table.",
	    location_count());
	metrics_scalar(out, "osprey_registered_aors", "gauge",
	    "Addresses-of-record with at least one binding.",
	    location_aors());
	natping_stats(&ns);
	metrics_scalar(out, "osprey_registrations_nat", "gauge",
	    "Bindings whose REGISTER came through a NAT.",
	    natping_nat_bindings());
	metrics_scalar(out, "osprey_nat_keepalives_total", "counter",
	    "Keepalives (OPTIONS or CRLF) sent to registered phones.",
	    ns.sent);
	metrics_scalar(out, "osprey_nat_keepalive_failures_total", "counter",
	    "Keepalive OPTIONS unanswered, keepalives that could not be "
	    "sent.", ns.failed);
	metrics_scalar(out, "osprey_nat_bindings_dropped_total", "counter",
	    "Bindings removed after nat.failures keepalives in a row failed.",
	    ns.dropped);
	metrics_head(out, "osprey_auth_challenges_total", "counter",
	    "Digest challenges sent, by code: 401 to REGISTER, 407 to other "
	    "requests (not in osprey_final_responses_sent_total).");
	metrics_sample(out, "osprey_auth_challenges_total", "code", "401",
	    ps->challenges[0]);
	metrics_sample(out, "osprey_auth_challenges_total", "code", "407",
	    ps->challenges[1]);
	metrics_scalar(out, "osprey_auth_failures_total", "counter",
	    "Credentials that did not authenticate (wrong password, unknown "
	    "user, replayed nonce-count, malformed).", as->failures);
	metrics_scalar(out, "osprey_auth_successes_total", "counter",
	    "Requests that authenticated.", as->successes);
	metrics_scalar(out, "osprey_auth_nonce_counts_total", "counter",
	    "Nonce-counts checked in Redis (registrar.backend redis).",
	    as->nc_shared);
	metrics_scalar(out, "osprey_auth_nonce_counts_local_total",
	    "counter", "Nonce-counts checked on this node only: Redis down.",
	    as->nc_local);
	metrics_scalar(out, "osprey_auth_nonce_counts_unavailable_total",
	    "counter", "REGISTERs answered 500: Redis down, nonce-count "
	    "not checked.", as->nc_unavailable);
}

static void
metrics_render_guard(struct evbuffer *out, const struct proxy_stats *ps)
{
	const struct guard_stats	*gs = guard_stats();

	metrics_scalar(out, "osprey_sources_banned", "gauge",
	    "Source addresses banned now (rate limit or failed "
	    "authentications).", guard_banned());
	metrics_scalar(out, "osprey_bans_total", "counter",
	    "Bans imposed on source addresses.", gs->bans);
	metrics_scalar(out, "osprey_banned_datagrams_dropped_total", "counter",
	    "Datagrams from banned sources, dropped unread.", gs->dropped);
	metrics_scalar(out, "osprey_scanner_requests_dropped_total", "counter",
	    "Requests dropped without an answer for a scanner User-Agent.",
	    gs->scanners);
	metrics_scalar(out, "osprey_call_rate_rejections_total", "counter",
	    "New INVITEs answered 503 over security.call_rate.",
	    gs->call_rate);
	metrics_scalar(out, "osprey_overload_rejections_total", "counter",
	    "New requests answered 503: security.max_transactions in "
	    "progress or security.max_transaction_memory held.",
	    ps->overloaded);
}

static void
metrics_render_gw(struct evbuffer *out)
{
	const struct gw	*gw;

	metrics_head(out, "osprey_gateway_up", "gauge",
	    "Whether a probed route target is up (1) or down (0).");
	for (gw = gw_list(); gw != NULL; gw = gw->next)
		metrics_sample(out, "osprey_gateway_up", "uri", gw->uri,
		    gw_is_up(gw) ? 1 : 0);
	metrics_head(out, "osprey_gateway_probes_total", "counter",
	    "OPTIONS probes sent to a probed route target.");
	for (gw = gw_list(); gw != NULL; gw = gw->next)
		metrics_sample(out, "osprey_gateway_probes_total", "uri",
		    gw->uri, gw->probes);
}

/* The rtpengine control client: shared counters, each instance's health. */
static void
metrics_render_media(struct evbuffer *out)
{
	struct rtpe_stats	st;
	unsigned		i, up = 0;

	rtpengine_stats(&st);
	metrics_scalar(out, "osprey_rtpengine_requests_total", "counter",
	    "rtpengine ng requests sent, not counting retransmissions.",
	    st.requests);
	metrics_scalar(out, "osprey_rtpengine_timeouts_total", "counter",
	    "Times an rtpengine instance did not answer a request after "
	    "media.rtpengine_tries tries.", st.timeouts);
	metrics_scalar(out, "osprey_rtpengine_errors_total", "counter",
	    "rtpengine replies that were an error or could not be read.",
	    st.errors);
	metrics_scalar(out, "osprey_rtpengine_unavailable_total", "counter",
	    "rtpengine requests refused at once: no instance up to ask.",
	    st.down);
	metrics_head(out, "osprey_rtpengine_up", "gauge",
	    "Whether an rtpengine instance answers (1) or not (0).");
	for (i = 0; i < rtpengine_count(); i++) {
		up += rtpengine_is_up(i);
		metrics_sample(out, "osprey_rtpengine_up", "instance",
		    rtpengine_uri(i), rtpengine_is_up(i) ? 1 : 0);
	}
	metrics_scalar(out, "osprey_rtpengine_instances_up", "gauge",
	    "rtpengine instances up now.", up);
}

static void
metrics_render_tp(struct evbuffer *out, const struct worker_totals *t)
{
	struct tp_counter	c[TP_COUNTERS_MAX];
	unsigned		i, n;

	if (M.tp == NULL)
		return;
	metrics_scalar(out, "osprey_udp_datagrams_received_total", "counter",
	    "UDP datagrams received on the SIP listeners.", t->rx_datagrams);
	metrics_scalar(out, "osprey_udp_send_errors_total", "counter",
	    "UDP datagrams the kernel refused to send.", t->tx_errors);
	metrics_scalar(out, "osprey_connections_open", "gauge",
	    "TCP connections open, accepted and opened by us.",
	    t->conns);
	metrics_head(out, "osprey_connection_events_total", "counter",
	    "Connections accepted, opened, refused and closed, by event.");
	n = tp_stream_counters(&t->streams, c, TP_COUNTERS_MAX);
	for (i = 0; i < n; i++)
		metrics_sample(out, "osprey_connection_events_total", "event",
		    c[i].name, c[i].n);
	metrics_scalar(out, "osprey_stream_messages_received_total",
	    "counter", "SIP messages framed out of TCP connections.",
	    t->streams.rx_messages);
	metrics_scalar(out, "osprey_stream_keepalives_total", "counter",
	    "CRLFCRLF keepalives answered (RFC 5626).",
	    t->streams.keepalives);
}

static uint64_t
metrics_lag_max(uint64_t now_ns)
{
	const struct lag	*l = &M.lag;
	uint64_t		 sec = now_ns / NS_PER_S, max = 0;
	size_t			 i;

	for (i = 0; i < LAG_WINDOW_S; i++)
		if (l->window[i].sec + LAG_WINDOW_S > sec &&
		    l->window[i].max_ns > max)
			max = l->window[i].max_ns;
	return (max);
}

static void
metrics_render_lag(struct evbuffer *out)
{
	const struct lag	*l = &M.lag;
	const char		*name = "osprey_event_loop_lag_seconds";
	uint64_t		 cum = 0;
	size_t			 i;

	metrics_head(out, "osprey_event_loop_last_lag_seconds", "gauge",
	    "How late the last 100 ms event-loop timer fired.");
	metrics_seconds(out, "osprey_event_loop_last_lag_seconds",
	    l->last_ns);
	metrics_head(out, "osprey_event_loop_max_lag_seconds", "gauge",
	    "The largest event-loop timer lag in the last 60 seconds.");
	metrics_seconds(out, "osprey_event_loop_max_lag_seconds",
	    metrics_lag_max(metrics_now_ns()));
	metrics_head(out, name, "histogram",
	    "How late the 100 ms event-loop timer fires.");
	for (i = 0; i < NBOUNDS; i++) {
		cum += l->bucket[i];
		evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n",
		    name, lag_bounds[i].le, cum);
	}
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
	    name, l->count);
	metrics_seconds(out, "osprey_event_loop_lag_seconds_sum", l->sum_ns);
	metrics_sample(out, "osprey_event_loop_lag_seconds_count", NULL, NULL,
	    l->count);
}

static void
metrics_render_dialog(struct evbuffer *out)
{
	struct dialog_totals	 d;
	const char		*name = "osprey_call_duration_seconds";
	static const char *const by[] = { "unknown", "caller", "callee",
	    "proxy", "admin" };
	uint64_t		 cum = 0;
	char			 le[16];
	int			 i;

	dialog_totals(&d);
	metrics_head(out, "osprey_dialogs", "gauge",
	    "Dialogs open now, by state (dialog.enable).");
	for (i = 0; i < DLG_TERMINATED; i++)
		metrics_sample(out, "osprey_dialogs", "state",
		    dialog_state_name((enum dialog_state)i), d.by_state[i]);
	metrics_head(out, "osprey_dialogs_transit", "gauge",
	    "Dialogs of other nodes' calls passing through here (a path "
	    "token of ours), by state; not in osprey_dialogs.");
	for (i = 0; i < DLG_TERMINATED; i++)
		metrics_sample(out, "osprey_dialogs_transit", "state",
		    dialog_state_name((enum dialog_state)i),
		    d.transit_by_state[i]);
	metrics_scalar(out, "osprey_calls_transit_total", "counter",
	    "INVITEs of other nodes' calls record-routed here (not in "
	    "osprey_calls_attempted_total).", d.transit_attempted);
	metrics_scalar(out, "osprey_subscriptions", "gauge",
	    "Subscription dialogs open now (RFC 6665; not calls).",
	    d.subscriptions);
	metrics_scalar(out, "osprey_dialog_bytes", "gauge",
	    "Heap bytes the open dialogs hold.", d.bytes);
	metrics_scalar(out, "osprey_calls_attempted_total", "counter",
	    "INVITEs out of dialog that we record-routed (the seizures).",
	    d.attempted);
	metrics_scalar(out, "osprey_calls_answered_total", "counter",
	    "Of those, answered with a 2xx (answer-seizure ratio: answered "
	    "over attempted).", d.answered);
	metrics_head(out, "osprey_dialogs_ended_total", "counter",
	    "Confirmed dialogs ended, by who ended them.");
	for (i = 1; i <= CDR_BY_ADMIN; i++)
		metrics_sample(out, "osprey_dialogs_ended_total", "by", by[i],
		    d.ended[i]);
	metrics_head(out, "osprey_dialog_refusals_total", "counter",
	    "In-dialog requests refused: 403 another target, 481 no dialog.");
	metrics_sample(out, "osprey_dialog_refusals_total", "code", "403",
	    d.refused_403);
	metrics_sample(out, "osprey_dialog_refusals_total", "code", "481",
	    d.refused_481);
	metrics_scalar(out, "osprey_dialogs_adopted_total", "counter",
	    "Dialogs of another node taken from Redis (dialog.backend "
	    "redis).", d.adopted);
	metrics_scalar(out, "osprey_dialog_redis_errors_total", "counter",
	    "Dialog writes, deletes and reads Redis did not do (down, error, "
	    "timeout).", d.redis_errors);
	metrics_scalar(out, "osprey_calls_limited_total", "counter",
	    "INVITEs refused by limits.calls_per_user or calls_per_source.",
	    d.limited);
	metrics_head(out, name, "histogram",
	    "How long answered calls lasted, from the 2xx to their end.");
	for (i = 0; i < DIALOG_NBUCKETS; i++) {
		cum += d.duration_bucket[i];
		snprintf(le, sizeof(le), "%u", dialog_duration_bounds_s[i]);
		evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n",
		    name, le, cum);
	}
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
	    name, d.duration_count);
	metrics_seconds(out, "osprey_call_duration_seconds_sum",
	    d.duration_sum_ms * 1000000);
	metrics_sample(out, "osprey_call_duration_seconds_count", NULL, NULL,
	    d.duration_count);
}

static void
metrics_render_cdr(struct evbuffer *out)
{
	struct cdr_stats	cs;

	cdr_stats(&cs);
	metrics_scalar(out, "osprey_cdr_written_total", "counter",
	    "Call detail records every accounting sink took.", cs.written);
	metrics_scalar(out, "osprey_cdr_dropped_total", "counter",
	    "Call detail records dropped: the queue was full.", cs.dropped);
	metrics_scalar(out, "osprey_cdr_write_errors_total", "counter",
	    "Call detail records an accounting sink could not take.",
	    cs.write_errors);
}

/* Only with a Redis configured (registrar.backend = "redis"). */
static void
metrics_render_redis(struct evbuffer *out)
{
	struct redis_stats	rs;
	int			i;
	const char		*name = "osprey_redis_commands_total";

	redis_stats(&rs);
	if (rs.conns == 0)
		return;
	metrics_scalar(out, "osprey_redis_up", "gauge",
	    "1 when every connection to Redis is up, else 0.",
	    rs.up == rs.conns);
	metrics_head(out, name, "counter", "Redis commands by result: ok, "
	    "error (an error reply), timeout, down (not sent or lost).");
	for (i = 0; i < REDIS_R_N; i++)
		metrics_sample(out, name, "result", redis_result_name(i),
		    rs.commands[i]);
	metrics_scalar(out, "osprey_redis_reconnects_total", "counter",
	    "Connections to Redis made again after one was lost.",
	    rs.reconnects);
}

void
metrics_render(struct evbuffer *out)
{
	struct worker_totals		 t;
	const struct proxy_stats	*ps = worker_totals(&t);	/* once */

	metrics_head(out, "osprey_build_info", "gauge",
	    "Always 1; the version is in the label.");
	metrics_sample(out, "osprey_build_info", "version", PACKAGE_VERSION,
	    1);
	metrics_render_proxy(out, ps);
	metrics_render_txn(out, &t);
	metrics_render_reg(out, ps);
	metrics_render_redis(out);
	metrics_render_guard(out, ps);
	metrics_render_gw(out);
	metrics_render_media(out);
	metrics_render_tp(out, &t);
	metrics_render_dialog(out);
	metrics_render_lag(out);
	metrics_render_cdr(out);
}

void
metrics_set_tp(const struct tp *tp)
{
	M.tp = tp;
}

static void
metrics_lag_record(uint64_t lag_ns, uint64_t now_ns)
{
	struct lag	*l = &M.lag;
	uint64_t	 sec = now_ns / NS_PER_S;
	size_t		 slot = sec % LAG_WINDOW_S, i;

	l->last_ns = lag_ns;
	if (l->window[slot].sec != sec) {
		l->window[slot].sec = sec;
		l->window[slot].max_ns = 0;
	}
	if (lag_ns > l->window[slot].max_ns)
		l->window[slot].max_ns = lag_ns;
	for (i = 0; i < NBOUNDS && lag_ns > lag_bounds[i].ns; i++)
		;
	l->bucket[i]++;
	l->count++;
	l->sum_ns += lag_ns;
}

static void
metrics_lag_arm(void)
{
	/* libevent counts from its cached time: make that now, as ours. */
	event_base_update_cache_time(M.base);
	M.lag.armed_ns = metrics_now_ns();
	timer_set(&M.lag.tick, LAG_PERIOD_MS);
}

static void
metrics_lag_tick(void *arg)
{
	uint64_t	now = metrics_now_ns();
	uint64_t	due = M.lag.armed_ns + LAG_PERIOD_MS * NS_PER_MS;

	(void)arg;
	metrics_lag_record(now > due ? now - due : 0, now);
	metrics_lag_arm();
}

static const char *
metrics_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return ("GET");
	case EVHTTP_REQ_POST:
		return ("POST");
	case EVHTTP_REQ_HEAD:
		return ("HEAD");
	case EVHTTP_REQ_PUT:
		return ("PUT");
	case EVHTTP_REQ_DELETE:
		return ("DELETE");
	case EVHTTP_REQ_OPTIONS:
		return ("OPTIONS");
	case EVHTTP_REQ_TRACE:
		return ("TRACE");
	case EVHTTP_REQ_CONNECT:
		return ("CONNECT");
	case EVHTTP_REQ_PATCH:
		return ("PATCH");
	}
	return ("?");
}

static void
metrics_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, struct evbuffer *body)
{
	struct evhttp_connection	*conn;
	char				*peer = NULL;
	uint16_t			 port = 0;

	if ((conn = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_get_peer(conn, &peer, &port);
	log_debug("metrics %s:%u: %s %s code=%d", peer != NULL ? peer : "?",
	    port, metrics_method_name(evhttp_request_get_command(req)),
	    evhttp_request_get_uri(req), code);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", type);
	evhttp_send_reply(req, code, reason, body);
}

/* A short plain-text error page. */
static void
metrics_reply_error(struct evhttp_request *req, int code, const char *reason)
{
	struct evbuffer	*body;

	if ((body = evbuffer_new()) == NULL)
		fatalx("metrics: evbuffer_new failed");
	evbuffer_add_printf(body, "%d %s\n", code, reason);
	metrics_reply(req, code, reason, "text/plain; charset=utf-8", body);
	evbuffer_free(body);
}

/* Every request comes here: the path first, then the method. */
static void
metrics_handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri;
	const char		*path = NULL;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	struct evbuffer		*body;

	(void)arg;
	if ((uri = evhttp_request_get_evhttp_uri(req)) != NULL)
		path = evhttp_uri_get_path(uri);
	if (path == NULL || strcmp(path, PATH) != 0) {
		metrics_reply_error(req, HTTP_NOTFOUND, "Not Found");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		metrics_reply_error(req, HTTP_BADMETHOD, "Method Not Allowed");
		return;
	}
	if ((body = evbuffer_new()) == NULL)
		fatalx("metrics: evbuffer_new failed");
	metrics_render(body);
	metrics_reply(req, HTTP_OK, "OK", CONTENT_TYPE, body);
	evbuffer_free(body);
}

/* A listening TCP socket on a numeric address. */
static int
metrics_listen(const char *addr, uint16_t port, char *err, size_t errlen)
{
	struct tp_addr	a;
	int		fd, on = 1;

	if (tp_addr_set(&a, (struct slice){ addr, strlen(addr) }, port) ==
	    -1) {
		snprintf(err, errlen, "bad address %s", addr);
		return (-1);
	}
	if ((fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return (-1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (a.ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) == -1 ||
	    listen(fd, 16) == -1) {
		snprintf(err, errlen, "listen %s port %u: %s", addr, port,
		    strerror(errno));
		close(fd);
		return (-1);
	}
	return (fd);
}

int
metrics_start(struct event_base *base, const char *addr, uint16_t port,
    char *err, size_t errlen)
{
	int	fd;

	if (M.http != NULL) {
		snprintf(err, errlen, "already started");
		return (-1);
	}
	if ((fd = metrics_listen(addr, port, err, errlen)) == -1)
		return (-1);
	if ((M.http = evhttp_new(base)) == NULL)
		fatalx("metrics: evhttp_new failed");
	if (evhttp_accept_socket_with_handle(M.http, fd) == NULL) {
		snprintf(err, errlen, "listen %s port %u: evhttp refused the "
		    "socket", addr, port);
		close(fd);
		evhttp_free(M.http);
		M.http = NULL;
		return (-1);
	}
	/* Every method reaches metrics_handle(), which answers 405. */
	evhttp_set_allowed_methods(M.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(M.http, 8192);
	evhttp_set_max_body_size(M.http, 4096);
	evhttp_set_timeout(M.http, 10);
	evhttp_set_gencb(M.http, metrics_handle, NULL);

	M.base = base;
	memset(&M.lag, 0, sizeof(M.lag));
	timer_init(&M.lag.tick, base, metrics_lag_tick, NULL);
	metrics_lag_arm();
	log_info("metrics: listening http %s port %u", addr, port);
	return (0);
}

void
metrics_stop(void)
{
	if (M.http == NULL)
		return;
	timer_stop(&M.lag.tick);
	evhttp_free(M.http);	/* closes the listener and connections */
	M.http = NULL;
}
