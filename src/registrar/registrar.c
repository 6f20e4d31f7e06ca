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
#include "log.h"
#include "registrar.h"
#include "store.h"

#define REG_MAX_VALUES	64

static struct {
	const struct registrar_settings	*set;	/* borrowed from the config */
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

/* One Contact value of the REGISTER, judged. */
struct reg_contact {
	struct binding_info	 bi;
	struct binding		*old;
	bool			 remove;
};

/* Every current binding of the AOR, for the 200 (RFC 3261 10.3 step 8). */
static void
list_bindings(const struct aor *a, struct buf *out)
{
	const struct binding	*b;

	for (b = a ? a->b : NULL; b != NULL; b = b->next) {
		buf_addf(out, "Contact: <%s>;expires=%u", b->contact,
		    binding_expires_in(b));
		if (b->q != 1000)
			add_q(out, b->q);
		if (b->instance != NULL)
			buf_addf(out, ";+sip.instance=%s", b->instance);
		if (b->reg_id != 0)
			buf_addf(out, ";reg-id=%u", b->reg_id);
		buf_add(out, "\r\n", 2);
	}
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
 * Process a REGISTER for aor (RFC 3261 10.3 steps 5-8).  Returns the
 * status; the header lines to answer with are added to out.
 */
int
registrar_register(const struct sipmsg *m, struct slice aor,
    const struct tp_sock *sock, const struct tp_addr *src, bool limit_source,
    struct buf *out, char *err, size_t errlen)
{
	struct slice		 v[REG_MAX_VALUES], ev, path;
	struct reg_contact	 rc[REG_MAX_VALUES];
	struct aor		*a = location_find(aor);
	const struct sip_hline	*eh = sipmsg_hdr(m, SH_EXPIRES);
	const struct sip_hline	*uah = sipmsg_hdr(m, SH_USER_AGENT);
	uint32_t		 hdr_expires = R.set->default_expires_s;
	unsigned		 n, i, keep, added = 0, removed = 0;
	bool			 star = false, brief = false;
	struct buf		 pb;
	char			 pstore[1024], date[64];
	struct tm		 tm;
	time_t			 now;

	if (eh != NULL && parse_delta(sipmsg_hvalue(m, eh),
	    &hdr_expires) == -1) {
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
			star = true;
	if (star) {
		/* RFC 3261 10.2.2: alone, and with Expires: 0. */
		if (n != 1 || eh == NULL || hdr_expires != 0) {
			snprintf(err, errlen, "Contact: * needs Expires: 0 "
			    "and no other Contact");
			return (400);
		}
		for (const struct binding *b = a ? a->b : NULL; b != NULL;
		    b = b->next)
			if (slice_eq(m->callid, b->callid) && m->cseq <= b->cseq) {
				snprintf(err, errlen, "CSeq out of order");
				return (500);
			}
		while ((a = location_find(aor)) != NULL) {
			log_info("registrar %s: %s removed (Contact: *)",
			    a->key, a->b->contact);
			location_remove(a->b);
		}
		goto done;
	}
	buf_init_on(&pb, pstore, sizeof(pstore));
	path = path_of(m, &pb);
	memset(rc, 0, sizeof(rc[0]) * n);
	for (i = 0; i < n; i++) {
		struct binding_info	*bi = &rc[i].bi;
		struct slice		 uri = hdr_uri(v[i]), pv;
		struct sipuri		 u;

		/*
		 * The binding becomes the Request-URI of requests to the AOR:
		 * "<sip:al ice@host>" was stored, and the INVITE sent to it
		 * had a broken request line (fuzz target).
		 */
		if (sipuri_parse(uri, &u) == -1 || u.host.len == 0 ||
		    !sipuri_fits_ruri(uri)) {
			snprintf(err, errlen, "Bad Contact URI");
			goto fail400;
		}
		bi->contact = uri;
		bi->expires_s = hdr_expires;
		if (hdr_param(v[i], "expires", &ev) && parse_delta(ev,
		    &bi->expires_s) == -1) {
			snprintf(err, errlen, "Bad expires parameter");
			goto fail400;
		}
		bi->q = 1000;
		if (hdr_param(v[i], "q", &pv) && parse_q(pv, &bi->q) == -1) {
			snprintf(err, errlen, "Bad q value");
			goto fail400;
		}
		if (hdr_param(v[i], "+sip.instance", &pv) && pv.len > 0)
			bi->instance = pv;
		if (hdr_param(v[i], "reg-id", &pv) && (parse_delta(pv,
		    &bi->reg_id) == -1 || bi->reg_id == 0)) {
			snprintf(err, errlen, "Bad reg-id");
			goto fail400;
		}
		bi->path = path;
		bi->callid = m->callid;
		bi->cseq = m->cseq;
		bi->user_agent = uah ? sipmsg_hvalue(m, uah) :
		    (struct slice){ NULL, 0 };
		if (bi->user_agent.len > 128)
			bi->user_agent.len = 128;
		bi->received = src;
		bi->local = sock->hostport;
		if (bi->expires_s != 0 && bi->expires_s <
		    R.set->min_expires_s)
			brief = true;
		if (bi->expires_s > R.set->max_expires_s)
			bi->expires_s = R.set->max_expires_s;
		rc[i].remove = bi->expires_s == 0;
		rc[i].old = location_match(a, bi);
		if (rc[i].old != NULL && slice_eq(m->callid,
		    rc[i].old->callid) && m->cseq <= rc[i].old->cseq) {
			snprintf(err, errlen, "CSeq out of order");
			buf_cleanup(&pb);
			return (500);
		}
		if (rc[i].old == NULL && !rc[i].remove)
			added++;
		else if (rc[i].old != NULL && rc[i].remove)
			removed++;
	}
	if (brief) {
		buf_addf(out, "Min-Expires: %u\r\n", R.set->min_expires_s);
		snprintf(err, errlen, "%s", sip_reason(423));
		buf_cleanup(&pb);
		return (423);
	}
	keep = (a ? a->n : 0) - removed;
	if (keep + added > R.set->max_contacts) {
		snprintf(err, errlen, "Too Many Contacts");
		buf_cleanup(&pb);
		return (403);
	}
	if (limit_source && added > 0 && location_from_source(src) + added >
	    R.set->max_per_source) {
		/* Registration exhaustion from one address. */
		snprintf(err, errlen, "Too Many Registrations From This "
		    "Address");
		buf_cleanup(&pb);
		return (403);
	}
	for (i = 0; i < n; i++) {
		/* Matched again: a Contact may come twice in one request. */
		struct binding	*old = location_match(location_find(aor),
				    &rc[i].bi);

		if (rc[i].remove) {
			if (old != NULL) {
				log_info("registrar " SLICE_FMT ": %s removed",
				    SLICE_ARG(aor), old->contact);
				location_remove(old);
			}
			continue;
		}
		location_save(aor, old, &rc[i].bi);
		log_info("registrar " SLICE_FMT ": " SLICE_FMT " %s for %us",
		    SLICE_ARG(aor), SLICE_ARG(rc[i].bi.contact),
		    old ? "refreshed" : "added", rc[i].bi.expires_s);
	}
	if (path.len > 0 && has_option(m, SH_SUPPORTED, "path"))
		buf_addf(out, "Path: " SLICE_FMT "\r\n", SLICE_ARG(path));
	buf_cleanup(&pb);
done:
	a = location_find(aor);
	list_bindings(a, out);
	if (has_option(m, SH_SUPPORTED, "outbound") && a != NULL) {
		for (const struct binding *b = a->b; b != NULL; b = b->next)
			if (b->reg_id != 0) {
				buf_adds(out, "Require: outbound\r\n");
				break;
			}
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	buf_addf(out, "Date: %s\r\n", date);
	return (200);
fail400:
	buf_cleanup(&pb);
	return (400);
}
