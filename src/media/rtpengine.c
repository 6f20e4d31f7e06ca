/*
 * The rtpengine "ng" control client (rtpengine.h).
 *
 * A request is one datagram "COOKIE SP DICT", kept whole for its
 * retransmissions (the same cookie and bytes: rtpengine answers a repeat
 * from its cache).  Each try waits media.rtpengine_timeout ms; after
 * media.rtpengine_tries tries the instance is marked down.  An offer then
 * goes to the next instance that is up, in the call's order (weighted
 * rendezvous hashing of the Call-ID, the same in every worker and every
 * run); the other commands must reach the instance that holds the call,
 * which each worker remembers by Call-ID from the offer it got (a worker
 * owns its calls' Call-IDs).  Worker 0 pings every instance at start and
 * every down instance each media.probe_interval until it answers.
 *
 * Shared by the workers: the instances and their up flags, the counters
 * (atomics), the timings (changed on reload while the workers are
 * paused).  Each worker's own: its sockets, requests, calls (R, L).
 */
#include "config.h"

#include <sys/random.h>
#include <sys/socket.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "bencode.h"
#include "hashtab.h"
#include "log.h"
#include "rtpengine.h"
#include "shard.h"
#include "timer.h"
#include "xmalloc.h"

#define RTPE_RBUF		65536
#define RTPE_COOKIE_MAX		32
#define RTPE_READS		64	/* datagrams a read event takes */
#define RTPE_CALL_IDLE_MS	(6 * 3600 * 1000)	/* forget a call's */
#define RTPE_SWEEP_MS		(10 * 60 * 1000)
#define RTPE_MAX_CALLS		(1u << 20)	/* remembered a worker */

struct rtpe_inst {
	char		*uri;		/* owned */
	struct tp_addr	 addr;
	unsigned	 weight;
	atomic_bool	 up;
};

static struct {
	struct rtpe_inst	 inst[RTPE_MAX_INSTANCES];
	unsigned		 n;
	atomic_uint		 timeout_ms;
	atomic_uint		 tries;
	atomic_uint		 probe_ms;
	atomic_int		 relay;		/* enum media_relay */
	atomic_int		 on_failure;	/* enum media_on_failure */
	atomic_int		 ice;		/* enum media_ice */
	uint32_t		 nonce;		/* cookies of this run */
	atomic_uint_fast64_t	 requests, retransmissions, timeouts, errors;
	atomic_uint_fast64_t	 down;
} R;

/* A call this worker sent an offer for: which instance holds it. */
struct rtpe_call {
	struct hnode	 node;		/* first; its key is callid */
	uint64_t	 last_ms;
	unsigned	 inst;
	unsigned	 marks;		/* RTPE_MARK_* */
	uint8_t		 ttag_len;	/* the answered To tag, 0: none */
	char		 ttag[RTPE_TAG_MAX];
	size_t		 len;
	char		 callid[];
};

/* A request in flight; owned by the loop until its callback returned. */
struct rtpe_req {
	struct hnode	 node;		/* first; its key is cookie */
	char		 cookie[RTPE_COOKIE_MAX];
	size_t		 cookie_len;
	enum rtpe_cmd	 cmd;
	char		*callid;	/* owned; NULL for ping */
	size_t		 callid_len;
	char		*msg;		/* owned: what is sent */
	size_t		 len;
	rtpe_done_fn	*done;
	void		*arg;
	struct timer	 timer;		/* next try, or the failure at once */
	unsigned	 order[RTPE_MAX_INSTANCES];
	unsigned	 norder;
	unsigned	 pos;		/* order[pos] is asked */
	unsigned	 tries;		/* sent to order[pos] so far */
	bool		 failover;	/* an offer: the next one may answer */
	bool		 branch;	/* a delete of one To tag */
	bool		 linked;	/* in L->pending */
	enum rtpe_status fail;		/* at once: RTPE_DOWN */
};

struct rtpe_loop {
	struct event_base	*base;
	int			 fd[2];		/* IPv4, IPv6; -1: none */
	struct event		 ev[2];
	struct hashtab		 pending;	/* by cookie */
	struct hashtab		 calls;		/* by Call-ID */
	uint64_t		 seq;
	char			*rbuf;		/* owned */
	bool			 prober;
	bool			 probing[RTPE_MAX_INSTANCES];
	struct timer		 probe;
	struct timer		 sweep;
};

static _Thread_local struct rtpe_loop	*L;

static void	rtpe_try(struct rtpe_req *);

const char *
rtpengine_cmd_name(enum rtpe_cmd c)
{
	static const char *const names[] = { "ping", "offer", "answer",
	    "delete", "query" };

	return ((unsigned)c < 5 ? names[c] : "?");
}

const char *
rtpengine_status_name(enum rtpe_status s)
{
	static const char *const names[] = { "ok", "error", "timeout",
	    "down", "bad-reply" };

	return ((unsigned)s < 5 ? names[s] : "?");
}

/*
 * "udp:IPv4:PORT", "udp:[IPv6]:PORT" or "udp6:[IPv6]:PORT" (Kamailio's
 * rtpengine_sock spelling); numeric addresses only, the port required.
 */
int
rtpengine_parse_uri(const char *uri, struct tp_addr *a, char *err,
    size_t errlen)
{
	const char	*host, *colon;
	unsigned long	 port;
	char		*end;
	size_t		 hlen;

	if (strncmp(uri, "udp:", 4) == 0)
		host = uri + 4;
	else if (strncmp(uri, "udp6:", 5) == 0)
		host = uri + 5;
	else
		goto bad;
	if (*host == '[') {
		if ((colon = strchr(host, ']')) == NULL || colon[1] != ':')
			goto bad;
		colon++;
	} else if ((colon = strrchr(host, ':')) == NULL ||
	    memchr(host, ':', (size_t)(colon - host)) != NULL)
		goto bad;
	hlen = (size_t)(colon - host);
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port == 0 ||
	    port > 65535 || errno != 0)
		goto bad;
	if (tp_addr_set(a, (struct slice){ host, hlen }, (uint16_t)port) ==
	    -1)
		goto bad;
	a->proto = TP_UDP;
	return (0);
bad:
	snprintf(err, errlen, "\"%s\" is not \"udp:ADDRESS:PORT\" (a numeric "
	    "address, IPv6 in brackets)", uri);
	return (-1);
}

/* Once at start, before any loop starts: the instances, all up. */
int
rtpengine_configure(const struct media_settings *ms, char *err,
    size_t errlen)
{
	unsigned	i;

	for (i = 0; i < R.n; i++)
		free(R.inst[i].uri);
	R.n = 0;
	if (ms->ninst > RTPE_MAX_INSTANCES) {
		snprintf(err, errlen, "at most %d rtpengine instances",
		    RTPE_MAX_INSTANCES);
		return (-1);
	}
	for (i = 0; i < ms->ninst; i++) {
		R.inst[i].uri = xstrdup(ms->inst[i].uri);
		R.inst[i].addr = ms->inst[i].addr;
		R.inst[i].weight = ms->inst[i].weight;
		atomic_store(&R.inst[i].up, true);
	}
	R.n = ms->ninst;
	if (getrandom(&R.nonce, sizeof(R.nonce), 0) != sizeof(R.nonce))
		R.nonce = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	rtpengine_set_timing(ms);
	return (0);
}

/* On reload, while the workers are paused: timings, relay, on_failure. */
void
rtpengine_set_timing(const struct media_settings *ms)
{
	atomic_store(&R.timeout_ms, ms->timeout_ms);
	atomic_store(&R.tries, ms->tries);
	atomic_store(&R.probe_ms, ms->probe_interval_ms);
	atomic_store(&R.relay, ms->relay);
	atomic_store(&R.on_failure, ms->on_failure);
	atomic_store(&R.ice, ms->ice);
}

/* media.relay (never without an instance), for the proxy's calls. */
enum media_relay
rtpengine_relay(void)
{
	return (R.n == 0 ? MEDIA_RELAY_NEVER :
	    (enum media_relay)atomic_load(&R.relay));
}

enum media_on_failure
rtpengine_on_failure(void)
{
	return ((enum media_on_failure)atomic_load(&R.on_failure));
}

static const char *const ice_names[] = { "remove", "force", "default",
    "force-relay", "optional" };
static const unsigned ice_flags[] = { RTPE_ICE_REMOVE, RTPE_ICE_FORCE,
    RTPE_ICE_DEFAULT, RTPE_ICE_FORCE_RELAY, RTPE_ICE_OPTIONAL };

/* rtpengine's word for an ICE mode (media.ice's names are the same). */
const char *
rtpengine_ice_name(enum media_ice ice)
{
	return ((unsigned)ice < sizeof(ice_names) / sizeof(ice_names[0]) ?
	    ice_names[ice] : "remove");
}

/* media.ice as the RTPE_ICE_* flag of an offer or answer. */
unsigned
rtpengine_ice_flag(void)
{
	unsigned	i = (unsigned)atomic_load(&R.ice);

	return (i < sizeof(ice_flags) / sizeof(ice_flags[0]) ? ice_flags[i] :
	    RTPE_ICE_REMOVE);
}

/* Whether ms names the running instances (else a restart is needed). */
bool
rtpengine_same_instances(const struct media_settings *ms)
{
	unsigned	i;

	if (ms->ninst != R.n)
		return (false);
	for (i = 0; i < R.n; i++)
		if (strcmp(ms->inst[i].uri, R.inst[i].uri) != 0 ||
		    ms->inst[i].weight != R.inst[i].weight)
			return (false);
	return (true);
}

bool
rtpengine_enabled(void)
{
	return (R.n > 0);
}

unsigned
rtpengine_count(void)
{
	return (R.n);
}

const char *
rtpengine_uri(unsigned i)
{
	return (i < R.n ? R.inst[i].uri : "-");
}

bool
rtpengine_is_up(unsigned i)
{
	return (i < R.n && atomic_load(&R.inst[i].up));
}

void
rtpengine_stats(struct rtpe_stats *st)
{
	st->requests = atomic_load(&R.requests);
	st->retransmissions = atomic_load(&R.retransmissions);
	st->timeouts = atomic_load(&R.timeouts);
	st->errors = atomic_load(&R.errors);
	st->down = atomic_load(&R.down);
}

static void
rtpe_mark(unsigned i, bool up, const char *why)
{
	if (atomic_exchange(&R.inst[i].up, up) == up)
		return;
	if (up)
		log_notice("rtpengine %s: up", R.inst[i].uri);
	else
		log_warnx("rtpengine %s: down, %s", R.inst[i].uri, why);
}

/*
 * The order in which a call's offer tries the instances: weighted
 * rendezvous hashing (the highest weight / -ln(hash) first), so a call
 * always lands on the same instance while it is up, whichever worker or
 * run asks, and the calls of an instance that goes down spread over the
 * others by weight.  Weight 0 comes last.  Returns how many.
 */
unsigned
rtpengine_order(struct slice callid, unsigned *order)
{
	static const uint64_t	 seed[2] = { 0x6f73707265796d65ULL,
				    0x646961727470656eULL };
	double			 score[RTPE_MAX_INSTANCES];
	unsigned		 i, j, k;

	for (i = 0; i < R.n; i++) {
		char		 key[16];
		uint64_t	 h;
		double		 u;

		/* The Call-ID's hash, then the instance's: one hash each. */
		h = hashtab_hash(seed, callid.p, callid.len);
		memcpy(key, &h, 8);
		memcpy(key + 8, R.inst[i].uri, 8 < strlen(R.inst[i].uri) ?
		    8 : strlen(R.inst[i].uri));
		key[15] = (char)i;
		h = hashtab_hash(seed, key, sizeof(key));
		u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
		score[i] = R.inst[i].weight == 0 ? -1.0 - i :
		    (double)R.inst[i].weight / -log(u);
		for (j = 0; j < i && score[order[j]] >= score[i]; j++)
			;
		for (k = i; k > j; k--)
			order[k] = order[k - 1];
		order[j] = i;
	}
	return (R.n);
}

/* Requests. */

static void
rtpe_add_flags(struct buf *b, const struct rtpe_request *rq)
{
	bool	any = (rq->flags & (RTPE_TRUST_ADDRESS | RTPE_SIP_SOURCE |
		    RTPE_SYMMETRIC | RTPE_FATAL)) != 0;

	if (any) {
		bencode_add_cstr(b, "flags");
		bencode_open_list(b);
		if (rq->flags & RTPE_TRUST_ADDRESS)
			bencode_add_cstr(b, "trust-address");
		if (rq->flags & RTPE_SIP_SOURCE)
			bencode_add_cstr(b, "SIP-source-address");
		if (rq->flags & RTPE_SYMMETRIC)
			bencode_add_cstr(b, "symmetric");
		if (rq->flags & RTPE_FATAL)
			bencode_add_cstr(b, "fatal");
		bencode_close(b);
	}
	if (rq->flags & (RTPE_REPLACE_ORIGIN | RTPE_REPLACE_SESS_CONN)) {
		bencode_add_cstr(b, "replace");
		bencode_open_list(b);
		if (rq->flags & RTPE_REPLACE_ORIGIN)
			bencode_add_cstr(b, "origin");
		if (rq->flags & RTPE_REPLACE_SESS_CONN)
			bencode_add_cstr(b, "session-connection");
		bencode_close(b);
	}
	if (rq->flags & RTPE_ICE_MASK) {
		bencode_add_cstr(b, "ICE");
		bencode_add_cstr(b, rq->flags & RTPE_ICE_FORCE ? "force" :
		    rq->flags & RTPE_ICE_DEFAULT ? "default" :
		    rq->flags & RTPE_ICE_FORCE_RELAY ? "force-relay" :
		    rq->flags & RTPE_ICE_OPTIONAL ? "optional" : "remove");
	}
}

static void
rtpe_add_kv(struct buf *b, const char *k, struct slice v)
{
	if (v.len == 0)
		return;
	bencode_add_cstr(b, k);
	bencode_add_str(b, v.p, v.len);
}

/* The dictionary of rq into b. */
static void
rtpe_encode(struct buf *b, const struct rtpe_request *rq)
{
	bencode_open_dict(b);
	bencode_add_cstr(b, "command");
	bencode_add_cstr(b, rtpengine_cmd_name(rq->cmd));
	if (rq->cmd != RTPE_PING) {
		rtpe_add_kv(b, "call-id", rq->callid);
		rtpe_add_kv(b, "from-tag", rq->from_tag);
		rtpe_add_kv(b, "to-tag", rq->to_tag);
		rtpe_add_kv(b, "via-branch", rq->via_branch);
		rtpe_add_kv(b, "sdp", rq->sdp);
		if (rq->received_from.len > 0) {
			bencode_add_cstr(b, "received-from");
			bencode_open_list(b);
			bencode_add_cstr(b, memchr(rq->received_from.p, ':',
			    rq->received_from.len) != NULL ? "IP6" : "IP4");
			bencode_add_str(b, rq->received_from.p,
			    rq->received_from.len);
			bencode_close(b);
		}
		rtpe_add_flags(b, rq);
		if (rq->direction[0] != NULL && rq->direction[1] != NULL) {
			bencode_add_cstr(b, "direction");
			bencode_open_list(b);
			bencode_add_cstr(b, rq->direction[0]);
			bencode_add_cstr(b, rq->direction[1]);
			bencode_close(b);
		}
		if (rq->transport != NULL) {
			bencode_add_cstr(b, "transport-protocol");
			bencode_add_cstr(b, rq->transport);
		}
	}
	bencode_close(b);
}

static int
rtpe_check(const struct rtpe_request *rq, char *err, size_t errlen)
{
	const char	*miss = NULL;

	switch (rq->cmd) {
	case RTPE_PING:
		if (rq->instance < 0 || (unsigned)rq->instance >= R.n)
			miss = "an instance";
		break;
	case RTPE_OFFER:
	case RTPE_ANSWER:
		if (rq->sdp.len == 0)
			miss = "sdp";
		if (rq->cmd == RTPE_ANSWER && rq->to_tag.len == 0)
			miss = "to-tag";
		/* FALLTHROUGH */
	case RTPE_DELETE:
		if (rq->from_tag.len == 0)
			miss = "from-tag";
		/* FALLTHROUGH */
	case RTPE_QUERY:
		if (rq->callid.len == 0)
			miss = "call-id";
		break;
	default:
		miss = "a known command";
		break;
	}
	if (miss != NULL) {
		snprintf(err, errlen, "rtpengine %s: needs %s",
		    rtpengine_cmd_name(rq->cmd), miss);
		return (-1);
	}
	return (0);
}

static struct rtpe_call *
rtpe_call_find(const char *callid, size_t len)
{
	return ((struct rtpe_call *)hashtab_find(&L->calls, callid, len));
}

static void
rtpe_call_forget(struct rtpe_call *c)
{
	hashtab_remove(&L->calls, &c->node);
	free(c);
}

static void
rtpe_call_note(const struct rtpe_req *rq, unsigned inst)
{
	struct rtpe_call	*c = rtpe_call_find(rq->callid, rq->callid_len);

	if (c == NULL) {
		if (L->calls.n >= RTPE_MAX_CALLS)
			return;		/* the hash order will find it */
		c = xmalloc(sizeof(*c) + rq->callid_len);
		c->marks = 0;
		c->ttag_len = 0;
		c->len = rq->callid_len;
		memcpy(c->callid, rq->callid, c->len);
		hashtab_insert(&L->calls, &c->node, c->callid, c->len);
	}
	c->inst = inst;
	c->last_ms = timer_now_ms();
}

/*
 * What the proxy noted of a call this worker sent an offer for (set and
 * clear: RTPE_MARK_* bits); nothing for a call it does not know.
 */
void
rtpengine_call_mark(struct slice callid, unsigned set, unsigned clear)
{
	struct rtpe_call	*c;

	if (L != NULL && (c = rtpe_call_find(callid.p, callid.len)) != NULL)
		c->marks = (c->marks | set) & ~clear;
}

unsigned
rtpengine_call_marks(struct slice callid)
{
	struct rtpe_call	*c;

	if (L == NULL || (c = rtpe_call_find(callid.p, callid.len)) == NULL)
		return (0);
	return (c->marks);
}

/*
 * The To tag of the dialog that answered a call (its first 2xx): noted
 * unless one is; false when another one was noted first.
 */
bool
rtpengine_call_answered(struct slice callid, struct slice to_tag)
{
	struct rtpe_call	*c;

	if (L == NULL || (c = rtpe_call_find(callid.p, callid.len)) == NULL)
		return (true);
	if (c->ttag_len > 0)
		return (to_tag.len == c->ttag_len &&
		    memcmp(to_tag.p, c->ttag, to_tag.len) == 0);
	if (to_tag.len == 0 || to_tag.len > sizeof(c->ttag))
		return (true);	/* too long to note: not a branch then */
	memcpy(c->ttag, to_tag.p, to_tag.len);
	c->ttag_len = (uint8_t)to_tag.len;
	return (true);
}

/*
 * Is to_tag the dialog that answered the call?  1 yes, 0 another one
 * did, -1 not known (no such call here, or none noted).
 */
int
rtpengine_call_is_answered(struct slice callid, struct slice to_tag)
{
	struct rtpe_call	*c;

	if (L == NULL || (c = rtpe_call_find(callid.p, callid.len)) == NULL ||
	    c->ttag_len == 0)
		return (-1);
	return (to_tag.len == c->ttag_len &&
	    memcmp(to_tag.p, c->ttag, to_tag.len) == 0);
}

static void
rtpe_free(struct rtpe_req *rq)
{
	if (rq->linked)
		hashtab_remove(&L->pending, &rq->node);
	timer_stop(&rq->timer);
	free(rq->callid);
	free(rq->msg);
	free(rq);
}

/* The end of a request: the call table, the callback, then it goes. */
static void
rtpe_finish(struct rtpe_req *rq, struct rtpe_result *res)
{
	struct rtpe_call	*c;

	if (res->instance < 0 && res->status != RTPE_DOWN &&
	    rq->pos < rq->norder)
		res->instance = (int)rq->order[rq->pos];
	res->uri = res->instance >= 0 ? R.inst[res->instance].uri : "-";
	if (rq->cmd == RTPE_OFFER && res->status == RTPE_OK)
		rtpe_call_note(rq, (unsigned)res->instance);
	else if (rq->cmd == RTPE_DELETE && !rq->branch &&
	    (res->status == RTPE_OK ||
	    res->status == RTPE_ERROR) && (c = rtpe_call_find(rq->callid,
	    rq->callid_len)) != NULL)
		rtpe_call_forget(c);
	if (rq->linked) {
		hashtab_remove(&L->pending, &rq->node);
		rq->linked = false;
	}
	timer_stop(&rq->timer);
	if (res->status != RTPE_OK && res->status != RTPE_DOWN)
		log_info("rtpengine %s: %s %.*s status=%s why=\"%s\"",
		    res->uri, rtpengine_cmd_name(rq->cmd),
		    (int)rq->callid_len, rq->callid ? rq->callid : "",
		    rtpengine_status_name(res->status), res->why);
	if (rq->done != NULL)
		rq->done(rq->arg, res);
	rtpe_free(rq);
}

static void
rtpe_fail(struct rtpe_req *rq, enum rtpe_status st, const char *why)
{
	struct rtpe_result	res;

	memset(&res, 0, sizeof(res));
	res.status = st;
	res.why = why;
	res.instance = -1;
	rtpe_finish(rq, &res);
}

/* The next instance for rq that is up, from pos on; false: none. */
static bool
rtpe_next_up(struct rtpe_req *rq)
{
	for (; rq->pos < rq->norder; rq->pos++)
		if (atomic_load(&R.inst[rq->order[rq->pos]].up))
			return (true);
	return (false);
}

static void
rtpe_timer(void *arg)
{
	struct rtpe_req	*rq = arg;
	unsigned	 inst;
	char		 why[96];

	if (rq->fail != RTPE_OK) {
		rtpe_fail(rq, rq->fail, rq->cmd == RTPE_OFFER ?
		    "every rtpengine instance is down" :
		    "the call's rtpengine instance is down");
		return;
	}
	if (rq->tries < atomic_load(&R.tries)) {
		atomic_fetch_add(&R.retransmissions, 1);
		rtpe_try(rq);
		return;
	}
	inst = rq->order[rq->pos];
	atomic_fetch_add(&R.timeouts, 1);
	snprintf(why, sizeof(why), "no answer to %s after %u tries of %u ms",
	    rtpengine_cmd_name(rq->cmd), rq->tries,
	    atomic_load(&R.timeout_ms));
	rtpe_mark(inst, false, why);
	if (rq->failover) {
		rq->pos++;
		if (rtpe_next_up(rq)) {
			log_info("rtpengine %s: %s %.*s fails over to %s",
			    R.inst[inst].uri, rtpengine_cmd_name(rq->cmd),
			    (int)rq->callid_len, rq->callid,
			    R.inst[rq->order[rq->pos]].uri);
			rq->tries = 0;
			rtpe_try(rq);
			return;
		}
		rq->pos--;
	}
	rtpe_fail(rq, RTPE_TIMEOUT, why);
}

/* Sends rq to order[pos] (once more) and sets the timer of the try. */
static void
rtpe_try(struct rtpe_req *rq)
{
	const struct rtpe_inst	*in = &R.inst[rq->order[rq->pos]];
	int			 fd = L->fd[in->addr.ss.ss_family == AF_INET6];

	rq->tries++;
	if (fd == -1 || sendto(fd, rq->msg, rq->len, 0,
	    (const struct sockaddr *)&in->addr.ss, in->addr.len) == -1)
		log_debug("rtpengine %s: send: %s", in->uri, fd == -1 ?
		    "no socket" : strerror(errno));
	timer_set(&rq->timer, atomic_load(&R.timeout_ms));
}

/*
 * Sends rq; done(arg, result) is called exactly once, from the loop and
 * never from inside this call (when no instance is up, on the next loop
 * turn), unless rtpengine_cancel() comes first.  NULL, with err filled,
 * when rq lacks what its command needs or this loop has no client.
 */
struct rtpe_req *
rtpengine_send(const struct rtpe_request *req, rtpe_done_fn *done, void *arg,
    char *err, size_t errlen)
{
	struct rtpe_req		*rq;
	struct rtpe_call	*c = NULL;
	struct buf		 b;
	int			 n;

	if (L == NULL || R.n == 0) {
		snprintf(err, errlen, "rtpengine: no client on this loop");
		return (NULL);
	}
	if (rtpe_check(req, err, errlen) == -1)
		return (NULL);
	rq = xcalloc(1, sizeof(*rq));
	rq->cmd = req->cmd;
	rq->branch = req->cmd == RTPE_DELETE && req->to_tag.len > 0;
	rq->done = done;
	rq->arg = arg;
	timer_init(&rq->timer, L->base, rtpe_timer, rq);
	n = snprintf(rq->cookie, sizeof(rq->cookie), "%08x_%u_%llu",
	    R.nonce, shard_self(), (unsigned long long)++L->seq);
	rq->cookie_len = (size_t)n;
	if (req->callid.len > 0) {
		rq->callid = xstrndup(req->callid.p, req->callid.len);
		rq->callid_len = req->callid.len;
	}
	buf_init(&b, 256 + req->sdp.len);
	buf_add(&b, rq->cookie, rq->cookie_len);
	buf_add(&b, " ", 1);
	rtpe_encode(&b, req);
	rq->msg = buf_steal(&b, &rq->len);

	switch (req->cmd) {
	case RTPE_PING:
		rq->order[0] = (unsigned)req->instance;
		rq->norder = 1;
		break;
	case RTPE_OFFER:
		rq->norder = rtpengine_order(req->callid, rq->order);
		rq->failover = true;
		if ((c = rtpe_call_find(rq->callid, rq->callid_len)) != NULL &&
		    atomic_load(&R.inst[c->inst].up)) {
			rq->order[0] = c->inst;	/* a re-offer: where it is */
			rq->norder = 1;
			rq->failover = false;
		}
		break;
	default:
		if ((c = rtpe_call_find(rq->callid, rq->callid_len)) != NULL)
			rq->order[0] = c->inst;
		else
			rtpengine_order(req->callid, rq->order);
		rq->norder = 1;
		break;
	}
	if (c != NULL)
		c->last_ms = timer_now_ms();
	hashtab_insert(&L->pending, &rq->node, rq->cookie, rq->cookie_len);
	rq->linked = true;
	atomic_fetch_add(&R.requests, 1);
	/* A delete and a ping go to a down instance all the same. */
	if (req->cmd != RTPE_DELETE && req->cmd != RTPE_PING &&
	    !rtpe_next_up(rq)) {
		atomic_fetch_add(&R.down, 1);
		rq->pos = 0;
		rq->fail = RTPE_DOWN;
		timer_set(&rq->timer, 0);
		return (rq);
	}
	rtpe_try(rq);
	return (rq);
}

/* rq's callback will not be called; rq is gone.  Not from its callback. */
void
rtpengine_cancel(struct rtpe_req *rq)
{
	if (rq != NULL)
		rtpe_free(rq);
}

/* Replies. */

static void
rtpe_reply(const char *p, size_t len, const struct sockaddr_storage *from,
    socklen_t fromlen)
{
	struct rtpe_req		*rq;
	struct rtpe_result	 res;
	struct bencode_doc	 doc = { NULL, 0, 0 };
	struct tp_addr		 src;
	const char		*sp;
	const struct bencode	*top;
	struct slice		 result;
	unsigned		 inst;
	char			 why[160];

	if ((sp = memchr(p, ' ', len < RTPE_COOKIE_MAX ? len :
	    RTPE_COOKIE_MAX)) == NULL) {
		log_debug("rtpengine: a datagram without a cookie, dropped");
		return;
	}
	if ((rq = (struct rtpe_req *)hashtab_find(&L->pending, p,
	    (size_t)(sp - p))) == NULL || rq->fail != RTPE_OK) {
		log_debug("rtpengine: a reply to no request (late?), dropped");
		return;
	}
	inst = rq->order[rq->pos];
	memset(&src, 0, sizeof(src));
	memcpy(&src.ss, from, fromlen);
	src.len = fromlen;
	src.proto = TP_UDP;
	if (!tp_addr_eq(&src, &R.inst[inst].addr)) {
		log_debug("rtpengine: a reply from another address than %s, "
		    "dropped", R.inst[inst].uri);
		return;
	}
	memset(&res, 0, sizeof(res));
	res.instance = (int)inst;
	rtpe_mark(inst, true, NULL);
	sp++;
	if (bencode_decode(&doc, sp, len - (size_t)(sp - p), why,
	    sizeof(why)) == -1 || (top = bencode_root(&doc))->type !=
	    BENCODE_DICT || !bencode_get_str(&doc, top, "result", &result)) {
		if (doc.n > 0)
			snprintf(why, sizeof(why), "a reply without a result");
		atomic_fetch_add(&R.errors, 1);
		res.status = RTPE_BAD_REPLY;
		res.why = why;
		goto done;
	}
	res.doc = &doc;
	res.reply = top;
	if (slice_eq(result, "error") || (!slice_eq(result, "ok") &&
	    !slice_eq(result, "pong"))) {
		atomic_fetch_add(&R.errors, 1);
		res.status = slice_eq(result, "error") ? RTPE_ERROR :
		    RTPE_BAD_REPLY;
		if (!bencode_get_str(&doc, top, "error-reason", &res.reason))
			res.reason = result;
		snprintf(why, sizeof(why), "%s: %.*s", res.status ==
		    RTPE_ERROR ? "refused" : "unknown result",
		    (int)(res.reason.len < 100 ? res.reason.len : 100),
		    res.reason.p);
		res.why = why;
		goto done;
	}
	bencode_get_str(&doc, top, "warning", &res.reason);
	if ((rq->cmd == RTPE_OFFER || rq->cmd == RTPE_ANSWER) &&
	    (!bencode_get_str(&doc, top, "sdp", &res.sdp) ||
	    res.sdp.len == 0)) {
		atomic_fetch_add(&R.errors, 1);
		res.status = RTPE_BAD_REPLY;
		res.why = "an answer without sdp";
		goto done;
	}
	res.status = RTPE_OK;
	res.why = "answered";
done:
	rtpe_finish(rq, &res);
	bencode_doc_free(&doc);
}

static void
rtpe_read(evutil_socket_t fd, short what, void *arg)
{
	struct sockaddr_storage	from;
	socklen_t		fromlen;
	ssize_t			n;
	int			i;

	(void)what;
	(void)arg;
	for (i = 0; i < RTPE_READS; i++) {
		fromlen = sizeof(from);
		n = recvfrom(fd, L->rbuf, RTPE_RBUF, MSG_TRUNC,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_debug("rtpengine: recvfrom: %s",
				    strerror(errno));
			return;
		}
		if (n > RTPE_RBUF) {
			log_debug("rtpengine: a reply of %zd bytes, dropped",
			    n);
			continue;
		}
		rtpe_reply(L->rbuf, (size_t)n, &from, fromlen);
	}
}

/* The prober. */

static void
rtpe_probe_done(void *arg, const struct rtpe_result *res)
{
	unsigned	i = (unsigned)(uintptr_t)arg;

	(void)res;		/* an answer marked it up already */
	L->probing[i] = false;
}

static void
rtpe_probe_one(unsigned i)
{
	struct rtpe_request	 rq;
	struct rtpe_req		*r;
	char			 err[128];

	if (L->probing[i])
		return;
	memset(&rq, 0, sizeof(rq));
	rq.cmd = RTPE_PING;
	rq.instance = (int)i;
	if ((r = rtpengine_send(&rq, rtpe_probe_done, (void *)(uintptr_t)i,
	    err, sizeof(err))) != NULL)
		L->probing[i] = true;
}

static void
rtpe_probe_tick(void *arg)
{
	unsigned	i;

	(void)arg;
	for (i = 0; i < R.n; i++)
		if (!atomic_load(&R.inst[i].up))
			rtpe_probe_one(i);
	timer_set(&L->probe, atomic_load(&R.probe_ms));
}

static void
rtpe_sweep(void *arg)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	uint64_t		 now = timer_now_ms();

	(void)arg;
	HASHTAB_FOREACH(n, &L->calls, it) {
		struct rtpe_call	*c = (struct rtpe_call *)n;

		if (now - c->last_ms > RTPE_CALL_IDLE_MS)
			rtpe_call_forget(c);
	}
	timer_set(&L->sweep, RTPE_SWEEP_MS);
}

static int
rtpe_socket(int family, char *err, size_t errlen)
{
	int	fd;

	if ((fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "rtpengine: socket: %s",
		    strerror(errno));
		return (-1);
	}
	return (fd);
}

/*
 * The client of this loop (each worker's thread calls it once, after
 * rtpengine_configure()): its sockets, bound to an ephemeral port, and,
 * for the prober (worker 0), a ping to every instance now and to every
 * down one each media.probe_interval.
 */
int
rtpengine_start(struct event_base *base, bool prober, char *err,
    size_t errlen)
{
	unsigned	i, f;

	if (R.n == 0 || L != NULL)
		return (0);
	L = xcalloc(1, sizeof(*L));
	L->base = base;
	L->fd[0] = L->fd[1] = -1;
	L->rbuf = xmalloc(RTPE_RBUF + 1);
	hashtab_init(&L->pending, 64);
	hashtab_init(&L->calls, 64);
	for (i = 0; i < R.n; i++) {
		f = R.inst[i].addr.ss.ss_family == AF_INET6;
		if (L->fd[f] != -1)
			continue;
		if ((L->fd[f] = rtpe_socket(f ? AF_INET6 : AF_INET, err,
		    errlen)) == -1)
			goto fail;
		event_assign(&L->ev[f], base, L->fd[f], EV_READ | EV_PERSIST,
		    rtpe_read, NULL);
		event_add(&L->ev[f], NULL);
	}
	timer_init(&L->sweep, base, rtpe_sweep, NULL);
	timer_set(&L->sweep, RTPE_SWEEP_MS);
	L->prober = prober;
	timer_init(&L->probe, base, rtpe_probe_tick, NULL);
	if (prober) {
		for (i = 0; i < R.n; i++)
			rtpe_probe_one(i);
		timer_set(&L->probe, atomic_load(&R.probe_ms));
	}
	return (0);
fail:
	rtpengine_stop();
	return (-1);
}

/* Requests in flight end without their callbacks; the sockets close. */
void
rtpengine_stop(void)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	unsigned		 f;

	if (L == NULL)
		return;
	HASHTAB_FOREACH(n, &L->pending, it)
		rtpe_free((struct rtpe_req *)n);
	HASHTAB_FOREACH(n, &L->calls, it)
		rtpe_call_forget((struct rtpe_call *)n);
	hashtab_cleanup(&L->pending);
	hashtab_cleanup(&L->calls);
	timer_stop(&L->probe);
	timer_stop(&L->sweep);
	for (f = 0; f < 2; f++)
		if (L->fd[f] != -1) {
			event_del(&L->ev[f]);
			close(L->fd[f]);
		}
	free(L->rbuf);
	free(L);
	L = NULL;
}
