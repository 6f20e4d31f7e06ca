/*
 * The registrar (RFC 3261 10.3): add, refresh and remove bindings, with
 * the Call-ID/CSeq ordering rules, Expires limits, Path (RFC 3327) and
 * +sip.instance/reg-id (RFC 5626).  Authentication happened before this;
 * the reply is sent by the proxy with the header lines left in `out`.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "location.h"
#include "locredis.h"
#include "log.h"
#include "registrar.h"
#include "store.h"
#include "xmalloc.h"

static struct {
	const struct registrar_settings	*set;	/* borrowed from the config */
	time_t				 date_t;	/* of date */
	char				 date[40];	/* its Date value */
} R;

void
registrar_settings_cleanup(struct registrar_settings *s)
{
	free(s->database);
	s->database = NULL;
}

/* Open the store (NULL path: memory only) and load what it holds. */
int
registrar_init(struct event_base *base, const char *db, char *err,
    size_t errlen)
{
	int	n;

	location_init(base);
	if (store_open(base, db, err, errlen) == -1)
		return (-1);
	if ((n = location_load()) > 0)
		log_notice("registrar: %d binding(s) loaded from %s", n, db);
	return (0);
}

/* Share the location through Redis (registrar.backend = "redis"). */
int
registrar_share(struct event_base *base, const struct redis_settings *rs,
    char *err, size_t errlen)
{
	return (locredis_start(base, rs, err, errlen));
}

/*
 * Stop sharing (at shutdown, before the transactions go): a REGISTER
 * still waiting on Redis is answered 500 now.
 */
void
registrar_unshare(void)
{
	locredis_stop();
}

/* Would rs take a restart (it differs from the Redis in use)? */
bool
registrar_share_changed(const struct redis_settings *rs)
{
	return (!locredis_same(rs));
}

bool
registrar_shared(void)
{
	return (locredis_active());
}

void
registrar_set(const struct registrar_settings *set)
{
	R.set = set;
}

bool
registrar_enabled(void)
{
	return (R.set != NULL && R.set->enabled);
}

void
registrar_shutdown(void)
{
	store_flush();
	locredis_stop();
	location_shutdown();
	store_close();
}

/* The location key of user@domain: the user as sent, the domain ours. */
int
registrar_aor(struct slice user, struct slice domain, char *out, size_t len)
{
	size_t	i;

	if (user.len == 0 || user.len + domain.len + 2 > len)
		return (-1);
	memcpy(out, user.p, user.len);
	out[user.len] = '@';
	for (i = 0; i < domain.len; i++)
		out[user.len + 1 + i] = (char)tolower((unsigned char)
		    domain.p[i]);
	out[user.len + 1 + domain.len] = '\0';
	return (0);
}

static int
parse_delta(struct slice v, uint32_t *out)
{
	uint64_t	n = 0;
	size_t		i;

	v = slice_trim(v);
	if (v.len == 0)
		return (-1);
	for (i = 0; i < v.len; i++) {
		if (!isdigit((unsigned char)v.p[i]))
			return (-1);
		if (n <= UINT32_MAX)	/* RFC 3261 20.19: larger is 2^32-1 */
			n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	return (0);
}

/* "0.5" -> 500; -1 when it is not a q-value (RFC 3261 25.1). */
static int
parse_q(struct slice v, uint16_t *out)
{
	unsigned	n = 0, digits = 0;
	size_t		i;

	v = slice_trim(v);
	if (v.len == 0 || (v.p[0] != '0' && v.p[0] != '1'))
		return (-1);
	n = (unsigned)(v.p[0] - '0') * 1000;
	if (v.len > 1) {
		if (v.p[1] != '.' || v.len > 5)
			return (-1);
		for (i = 2; i < v.len; i++) {
			if (!isdigit((unsigned char)v.p[i]))
				return (-1);
			digits++;
			n += (unsigned)(v.p[i] - '0') * (digits == 1 ? 100 :
			    digits == 2 ? 10 : 1);
		}
	}
	if (n > 1000)
		return (-1);
	*out = (uint16_t)n;
	return (0);
}

static void
add_q(struct buf *b, uint16_t q)
{
	char	s[8];
	int	n;

	if (q == 1000) {
		buf_adds(b, ";q=1");
		return;
	}
	n = snprintf(s, sizeof(s), "0.%03u", q);
	while (n > 3 && s[n - 1] == '0')
		s[--n] = '\0';
	buf_addf(b, ";q=%s", s);
}

/* Every current binding of the AOR, for the 200 (RFC 3261 10.3 step 8). */
static void
list_bindings(const struct aor *a, struct buf *out)
{
	const struct binding	*b;

	for (b = a ? a->b : NULL; b != NULL; b = b->next) {
		buf_adds(out, "Contact: <");
		buf_adds(out, b->contact);
		buf_adds(out, ">;expires=");
		buf_addu(out, binding_expires_in(b));
		if (b->q != 1000)
			add_q(out, b->q);
		if (b->instance != NULL) {
			buf_adds(out, ";+sip.instance=");
			buf_adds(out, b->instance);
		}
		if (b->reg_id != 0) {
			buf_adds(out, ";reg-id=");
			buf_addu(out, b->reg_id);
		}
		buf_add(out, "\r\n", 2);
	}
}

/* The Date header line of now, formatted once a second. */
static void
add_date(struct buf *out)
{
	time_t		now = time(NULL);
	struct tm	tm;

	if (now != R.date_t || R.date[0] == '\0') {
		gmtime_r(&now, &tm);
		strftime(R.date, sizeof(R.date), "%a, %d %b %Y %H:%M:%S GMT",
		    &tm);
		R.date_t = now;
	}
	buf_adds(out, "Date: ");
	buf_adds(out, R.date);
	buf_add(out, "\r\n", 2);
}

static bool
has_option(const struct sipmsg *m, enum sip_hdr_id id, const char *opt)
{
	struct slice	v[16];
	unsigned	n, i;

	n = sipmsg_values(m, id, v, 16);
	for (i = 0; i < n && i < 16; i++)
		if (v[i].len == strlen(opt) &&
		    strncasecmp(v[i].p, opt, v[i].len) == 0)
			return (true);
	return (false);
}

/* Path values joined, as stored; an empty slice when none. */
static struct slice
path_of(const struct sipmsg *m, struct buf *b)
{
	struct slice	v[16];
	unsigned	n;

	n = sipmsg_values(m, SH_PATH, v, 16);
	buf_add_list(b, v, n < 16 ? n : 16, ", ");
	return ((struct slice){ b->p, b->len });
}

/*
 * One Contact value (not "*") judged into bi: the URI must be able to be
 * a Request-URI, expires (else the header's), q, +sip.instance and reg-id
 * well formed.  Returns 0, or 400 with err filled.  bi points into v.
 */
int
registrar_contact_parse(struct slice v, uint32_t hdr_expires,
    struct binding_info *bi, char *err, size_t errlen)
{
	struct slice	uri = hdr_uri(v), pv;
	struct sipuri	u;

	memset(bi, 0, sizeof(*bi));
	/*
	 * The binding becomes the Request-URI of requests to the AOR:
	 * "<sip:al ice@host>" was stored, and the INVITE sent to it had a
	 * broken request line (fuzz target).
	 */
	if (sipuri_parse(uri, &u) == -1 || u.host.len == 0 ||
	    !sipuri_fits_ruri(uri)) {
		snprintf(err, errlen, "Bad Contact URI");
		return (400);
	}
	bi->contact = uri;
	bi->expires_s = hdr_expires;
	if (hdr_param(v, "expires", &pv) && parse_delta(pv,
	    &bi->expires_s) == -1) {
		snprintf(err, errlen, "Bad expires parameter");
		return (400);
	}
	bi->q = 1000;
	if (hdr_param(v, "q", &pv) && parse_q(pv, &bi->q) == -1) {
		snprintf(err, errlen, "Bad q value");
		return (400);
	}
	if (hdr_param(v, "+sip.instance", &pv) && pv.len > 0)
		bi->instance = pv;
	if (hdr_param(v, "reg-id", &pv) && (parse_delta(pv, &bi->reg_id) ==
	    -1 || bi->reg_id == 0)) {
		snprintf(err, errlen, "Bad reg-id");
		return (400);
	}
	return (0);
}

/* RFC 3261 10.3 step 7: the same Call-ID must come with a higher CSeq. */
static bool
out_of_order(const struct sipmsg *m, const struct binding *b)
{
	return (b != NULL && slice_eq(m->callid, b->callid) &&
	    m->cseq <= b->cseq);
}

/* "Contact: *": alone, with Expires: 0 (RFC 3261 10.2.2), in order. */
static int
plan_star(const struct sipmsg *m, const struct aor *a, unsigned n,
    bool expires_hdr, struct reg_plan *p, char *err, size_t errlen)
{
	const struct binding	*b;

	if (n != 1 || !expires_hdr || p->hdr_expires != 0) {
		snprintf(err, errlen, "Contact: * needs Expires: 0 and no "
		    "other Contact");
		return (400);
	}
	for (b = a ? a->b : NULL; b != NULL; b = b->next)
		if (out_of_order(m, b)) {
			snprintf(err, errlen, "CSeq out of order");
			return (500);
		}
	p->star = true;
	return (0);
}

/*
 * Steps 5-7 of RFC 3261 10.3 without changing anything: every Contact of
 * m judged and matched with the AOR's bindings, or "Contact: *".  Returns
 * 0, or the status to answer (400, 500) with err filled.  The plan points
 * into m; registrar_plan_cleanup() after use, whatever the result.
 */
int
registrar_plan(const struct sipmsg *m, struct slice aor,
    const struct tp_sock *sock, const struct tp_addr *src,
    struct reg_plan *p, char *err, size_t errlen)
{
	struct slice		 v[REG_MAX_VALUES];
	const struct aor	*a = location_find(aor);
	const struct sip_hline	*eh = sipmsg_hdr(m, SH_EXPIRES);
	const struct sip_hline	*uah = sipmsg_hdr(m, SH_USER_AGENT);
	unsigned		 n, i;
	int			 code;

	/* Not the whole plan: 64 Contacts' room is 10 KB to clear. */
	p->n = p->added = p->removed = 0;
	p->star = p->brief = false;
	p->path = (struct slice){ NULL, 0 };
	buf_init_on(&p->pathbuf, p->pathstore, sizeof(p->pathstore));
	p->hdr_expires = R.set->default_expires_s;
	if (eh != NULL && parse_delta(sipmsg_hvalue(m, eh),
	    &p->hdr_expires) == -1) {
		snprintf(err, errlen, "Bad Expires header");
		return (400);
	}
	n = sipmsg_values(m, SH_CONTACT, v, REG_MAX_VALUES);
	if (n > REG_MAX_VALUES) {
		snprintf(err, errlen, "Too many Contact values");
		return (400);
	}
	for (i = 0; i < n; i++)
		if (slice_eq(v[i], "*"))
			return (plan_star(m, a, n, eh != NULL, p, err, errlen));
	p->path = path_of(m, &p->pathbuf);
	for (i = 0; i < n; i++) {
		struct reg_contact	*rc = &p->c[i];
		struct binding_info	*bi = &rc->bi;

		rc->old = NULL;
		rc->remove = false;
		if ((code = registrar_contact_parse(v[i], p->hdr_expires, bi,
		    err, errlen)) != 0)
			return (code);
		bi->path = p->path;
		bi->callid = m->callid;
		bi->cseq = m->cseq;
		bi->user_agent = uah ? sipmsg_hvalue(m, uah) :
		    (struct slice){ NULL, 0 };
		if (bi->user_agent.len > 128)
			bi->user_agent.len = 128;
		bi->received = src;
		/* Its Via, then its Contact, name another address. */
		bi->nat = location_nat_host(m->via_host, m->via_port, src) ||
		    location_nat(bi->contact, src);
		bi->local = sock->name;
		if (bi->expires_s != 0 && bi->expires_s < R.set->min_expires_s)
			p->brief = true;
		if (bi->expires_s > R.set->max_expires_s)
			bi->expires_s = R.set->max_expires_s;
		rc->remove = bi->expires_s == 0;
		rc->old = location_match(a, bi);
		if (out_of_order(m, rc->old)) {
			snprintf(err, errlen, "CSeq out of order");
			return (500);
		}
		if (rc->old == NULL && !rc->remove)
			p->added++;
		else if (rc->old != NULL && rc->remove)
			p->removed++;
		p->n++;
	}
	return (0);
}

void
registrar_plan_cleanup(struct reg_plan *p)
{
	buf_cleanup(&p->pathbuf);
}

/*
 * The limits on a plan: 423 with Min-Expires added to out for a binding
 * too brief, 403 beyond max_contacts for the AOR or (limit_source)
 * max_per_source for the source address.  0: go ahead.
 */
int
registrar_admit(const struct reg_plan *p, struct slice aor,
    const struct tp_addr *src, bool limit_source, struct buf *out,
    char *err, size_t errlen)
{
	const struct aor	*a = location_find(aor);
	unsigned		 keep;

	if (p->star)
		return (0);
	if (p->brief) {
		buf_addf(out, "Min-Expires: %u\r\n", R.set->min_expires_s);
		snprintf(err, errlen, "%s", sip_reason(423));
		return (423);
	}
	keep = (a ? a->n : 0) - p->removed;
	if (keep + p->added > R.set->max_contacts) {
		snprintf(err, errlen, "Too Many Contacts");
		return (403);
	}
	if (limit_source && p->added > 0 && location_from_source(src) +
	    p->added > R.set->max_per_source) {
		/* Registration exhaustion from one address. */
		snprintf(err, errlen, "Too Many Registrations From This "
		    "Address");
		return (403);
	}
	return (0);
}

/* Step 7: the plan carried out in the location service (and store). */
void
registrar_apply(const struct reg_plan *p, struct slice aor)
{
	struct aor	*a;
	unsigned	 i;

	if (p->star) {
		while ((a = location_find(aor)) != NULL) {
			log_info("registrar %s: %s removed (Contact: *)",
			    a->key, a->b->contact);
			location_remove(a->b);
		}
		return;
	}
	for (i = 0; i < p->n; i++) {
		const struct binding_info *bi = &p->c[i].bi;
		/* Matched again: a Contact may come twice in one request. */
		struct binding	*old = location_match(location_find(aor), bi);

		if (p->c[i].remove) {
			if (old != NULL) {
				log_info("registrar " SLICE_FMT ": %s removed",
				    SLICE_ARG(aor), old->contact);
				location_remove(old);
			}
			continue;
		}
		location_save(aor, old, bi);
		log_info("registrar " SLICE_FMT ": " SLICE_FMT " %s for %us",
		    SLICE_ARG(aor), SLICE_ARG(bi->contact),
		    old ? "refreshed" : "added", bi->expires_s);
	}
}

/* The lines of registrar_answer(), from what the request asked for. */
static void
answer_lines(struct slice aor, struct slice path, bool outbound,
    struct buf *out)
{
	const struct aor	*a = location_find(aor);
	const struct binding	*b;

	if (path.len > 0)
		buf_addf(out, "Path: " SLICE_FMT "\r\n", SLICE_ARG(path));
	list_bindings(a, out);
	if (outbound && a != NULL) {
		for (b = a->b; b != NULL; b = b->next)
			if (b->reg_id != 0) {
				buf_adds(out, "Require: outbound\r\n");
				break;
			}
	}
	add_date(out);
}

/*
 * Step 8: the header lines of the 200: Path echoed (RFC 3327), every
 * binding of the AOR, Require: outbound (RFC 5626), Date.
 */
void
registrar_answer(const struct sipmsg *m, struct slice aor,
    const struct reg_plan *p, struct buf *out)
{
	answer_lines(aor, !p->star && p->path.len > 0 && has_option(m,
	    SH_SUPPORTED, "path") ? p->path : (struct slice){ NULL, 0 },
	    has_option(m, SH_SUPPORTED, "outbound"), out);
}

/*
 * A phone registered over a stream is reached over that connection: it
 * stays open as long as the longest binding it carries (and a little
 * more: the refresh comes before the expiry), whatever the idle lifetime.
 */
static uint32_t
keep_flow_ms(const struct reg_plan *p, const struct tp_addr *src)
{
	uint32_t	longest = 0;
	unsigned	i;

	if (src->proto == TP_UDP || p->star)
		return (0);
	for (i = 0; i < p->n; i++)
		if (!p->c[i].remove && p->c[i].bi.expires_s > longest)
			longest = p->c[i].bi.expires_s;
	return (longest > 0 ? (longest + 30) * 1000 : 0);
}

static void
registrar_keep_flow(const struct reg_plan *p, const struct tp_sock *sock,
    const struct tp_addr *src)
{
	uint32_t	ms = keep_flow_ms(p, src);

	if (ms > 0)
		tp_conn_keep(sock->tp, src, ms);
}

/*
 * Process a REGISTER for aor (RFC 3261 10.3 steps 5-8): plan, admit,
 * apply, answer.  Returns the status; the header lines to answer with are
 * added to out.
 */
int
registrar_register(const struct sipmsg *m, struct slice aor,
    const struct tp_sock *sock, const struct tp_addr *src, bool limit_source,
    struct buf *out, char *err, size_t errlen)
{
	struct reg_plan	p;
	int		code;

	if ((code = registrar_plan(m, aor, sock, src, &p, err, errlen)) == 0 &&
	    (code = registrar_admit(&p, aor, src, limit_source, out, err,
	    errlen)) == 0) {
		registrar_apply(&p, aor);
		registrar_answer(m, aor, &p, out);
		registrar_keep_flow(&p, sock, src);
		code = 200;
	}
	registrar_plan_cleanup(&p);
	return (code);
}

/* A REGISTER whose write Redis has not answered yet. */
struct reg_wait {
	registrar_done_fn	*fn;
	void			*arg;
	struct tp		*tp;		/* borrowed: lives as long */
	struct tp_addr		 src;
	uint32_t		 keep_ms;	/* registrar_keep_flow() */
	bool			 outbound;	/* Supported: outbound */
	char			*path;		/* owned: to echo, or NULL */
	char			 aor[];
};

static void
registrar_written(void *arg, bool ok, const char *why)
{
	struct reg_wait		*w = arg;
	const struct aor	*a;
	struct buf		 hdrs;
	char			 hstore[2048];

	buf_init_on(&hdrs, hstore, sizeof(hstore));
	if (!ok) {
		log_warnx("registrar %s: REGISTER not stored, 500: %s", w->aor,
		    why);
		buf_addf(&hdrs, "Retry-After: %u\r\n", REG_RETRY_AFTER_S);
		w->fn(w->arg, 500, NULL, hdrs.p);
	} else {
		a = location_find((struct slice){ w->aor, strlen(w->aor) });
		log_info("registrar %s: stored in redis, %u binding(s)",
		    w->aor, a != NULL ? a->n : 0);
		answer_lines((struct slice){ w->aor, strlen(w->aor) },
		    (struct slice){ w->path, w->path ? strlen(w->path) : 0 },
		    w->outbound, &hdrs);
		if (w->keep_ms > 0)
			tp_conn_keep(w->tp, &w->src, w->keep_ms);
		w->fn(w->arg, 200, NULL, hdrs.p);
	}
	buf_cleanup(&hdrs);
	free(w->path);
	free(w);
}

/*
 * registrar_register() where the location is shared (backend redis): the
 * plan judged and admitted on the local table, then written to Redis; the
 * 200 goes out (through fn) only once Redis has stored it, a 500 with
 * Retry-After if it could not.  Returns 0 when fn will be called, else
 * the status to answer now with out's lines (fn is not called).  Without
 * Redis, registrar_register().
 */
int
registrar_register_async(const struct sipmsg *m, struct slice aor,
    const struct tp_sock *sock, const struct tp_addr *src, bool limit_source,
    struct buf *out, char *err, size_t errlen, registrar_done_fn *fn,
    void *arg)
{
	struct reg_plan	 p;
	struct reg_wait	*w;
	int		 code;

	if (!locredis_active())
		return (registrar_register(m, aor, sock, src, limit_source,
		    out, err, errlen));
	if ((code = registrar_plan(m, aor, sock, src, &p, err, errlen)) != 0 ||
	    (code = registrar_admit(&p, aor, src, limit_source, out, err,
	    errlen)) != 0)
		goto done;
	w = xcalloc(1, sizeof(*w) + aor.len + 1);
	memcpy(w->aor, aor.p, aor.len);
	w->fn = fn;
	w->arg = arg;
	w->tp = sock->tp;
	w->src = *src;
	w->keep_ms = keep_flow_ms(&p, src);
	w->outbound = has_option(m, SH_SUPPORTED, "outbound");
	if (!p.star && p.path.len > 0 && has_option(m, SH_SUPPORTED, "path"))
		w->path = xstrndup(p.path.p, p.path.len);
	if (locredis_write(aor, &p, registrar_written, w) == -1) {
		log_warnx("registrar " SLICE_FMT ": REGISTER not stored, 500: "
		    "redis is down", SLICE_ARG(aor));
		free(w->path);
		free(w);
		buf_addf(out, "Retry-After: %u\r\n", REG_RETRY_AFTER_S);
		snprintf(err, errlen, "%s", sip_reason(500));
		code = 500;
	}
done:
	registrar_plan_cleanup(&p);
	return (code);
}
