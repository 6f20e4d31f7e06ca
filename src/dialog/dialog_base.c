/*
 * The dialog module's state (each worker's table, the counts every worker
 * shares) and its pure parts: a dialog's strings, the table's key, the
 * in-dialog URI check, our place in a Record-Route list.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dialog.h"
#include "dialog_int.h"
#include "xmalloc.h"

_Thread_local struct dialog_worker dialog_w;
struct dialog_global dialog_g = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* ---- strings ---- */

size_t
dialog_str_size(const struct slice *v)
{
	size_t	total = 0;
	int	i;

	for (i = 0; i < DS_N; i++)
		total += v[i].len + 1;
	return (total);
}

/* The strings v into n (dialog_str_size() bytes); s->s is left alone. */
void
dialog_str_fill(struct strs *s, const struct slice *v, char *n)
{
	size_t	p = 0;
	int	i;

	for (i = 0; i < DS_N; i++) {
		s->off[i] = (uint32_t)p;
		if (v[i].len > 0)
			memcpy(n + p, v[i].p, v[i].len);
		n[p + v[i].len] = '\0';
		p += v[i].len + 1;
	}
	s->off[DS_N] = (uint32_t)p;
}

/* The strings v (DS_N of them, they may point into s) into s. */
void
dialog_str_set(struct strs *s, const struct slice *v)
{
	char	*n = xmalloc(dialog_str_size(v));

	dialog_str_fill(s, v, n);
	free(s->s);
	s->s = n;
}

void
dialog_str_all(const struct strs *s, struct slice *v)
{
	int	i;

	for (i = 0; i < DS_N; i++)
		v[i] = s->s != NULL ? str_get(s, (enum dlg_str)i) :
		    (struct slice){ "", 0 };
}

/* ---- pure parts ---- */

const char *
dialog_state_name(enum dialog_state s)
{
	static const char *const names[] = { "early", "confirmed",
	    "terminated" };

	return (s < DLG_NSTATES ? names[s] : "?");
}

/* The table's key: Call-ID, the caller's tag, the callee's. */
void
dialog_key(struct buf *b, struct slice callid, struct slice a, struct slice b2)
{
	buf_add(b, callid.p, callid.len);
	buf_add(b, "\0", 1);
	buf_add(b, a.p, a.len);
	buf_add(b, "\0", 1);
	buf_add(b, b2.p, b2.len);
}

/*
 * The same place, for the in-dialog check: both parse, and user, host
 * (case aside) and port are the same (no port is 5060 or 5061 for sips),
 * with the same transport.  Parameters other than transport may differ.
 */
bool
dialog_uri_same(struct slice a, struct slice b)
{
	struct sipuri	ua, ub;
	struct slice	ta, tb;
	uint16_t	pa, pb;
	bool		hta, htb;

	/* Most UAs copy the URI as it came: the same bytes, no parsing. */
	if (a.len == b.len && a.len > 0 && memcmp(a.p, b.p, a.len) == 0)
		return (true);
	if (sipuri_parse(a, &ua) == -1 || sipuri_parse(b, &ub) == -1)
		return (false);
	if (!slice_caseeq(ua.host, ub.host) || ua.user.len != ub.user.len ||
	    (ua.user.len > 0 && memcmp(ua.user.p, ub.user.p,
	    ua.user.len) != 0))
		return (false);
	pa = ua.port ? ua.port : slice_eq(ua.scheme, "sips") ? 5061 : 5060;
	pb = ub.port ? ub.port : slice_eq(ub.scheme, "sips") ? 5061 : 5060;
	if (pa != pb)
		return (false);
	hta = sipuri_param(&ua, "transport", &ta);
	htb = sipuri_param(&ub, "transport", &tb);
	if (!hta)
		ta = (struct slice){ "udp", 3 };
	if (!htb)
		tb = (struct slice){ "udp", 3 };
	return (slice_caseeq(ta, tb));
}

/*
 * Our entries in a Record-Route list (those with ;osp=stamp): returns the
 * index of the first (n: none), *after the index after the last.  Entries
 * before ours are on the callee's side, after ours on the caller's.
 */
unsigned
dialog_rr_split(const struct slice *rr, unsigned n, const char stamp[17],
    unsigned *after)
{
	char		want[4 + 16];
	unsigned	i, first = n;

	/* "osp=" and 16 hex digits: no other URI holds our MAC. */
	memcpy(want, "osp=", 4);
	memcpy(want + 4, stamp, 16);
	*after = n;
	for (i = 0; i < n; i++) {
		if (memmem(rr[i].p, rr[i].len, want, sizeof(want)) == NULL)
			continue;
		if (first == n)
			first = i;
		*after = i + 1;
	}
	if (first == n)
		*after = n;
	return (first);
}

/* The Route set, as text, of entries v[from..to) (reversed: to..from). */
struct slice
dialog_routes_text(struct buf *b, const struct slice *v, unsigned from,
    unsigned to, bool reverse)
{
	unsigned	i, n = 0;

	for (i = from; i < to; i++) {
		if (n++ > 0)
			buf_adds(b, ", ");
		buf_add(b, v[reverse ? to - 1 - (i - from) : i].p,
		    v[reverse ? to - 1 - (i - from) : i].len);
	}
	return ((struct slice){ b->p, b->len });
}

struct slice
dialog_contact_uri(const struct sipmsg *m)
{
	const struct sip_hline	*h = sipmsg_hdr(m, SH_CONTACT);

	if (h == NULL)
		return ((struct slice){ "", 0 });
	return (hdr_uri(sipmsg_hvalue(m, h)));
}

struct slice
dialog_hvalue(const struct sipmsg *m, enum sip_hdr_id id)
{
	const struct sip_hline	*h = sipmsg_hdr(m, id);

	return (h != NULL ? sipmsg_hvalue(m, h) : (struct slice){ "", 0 });
}
