/*
 * libFuzzer target over the whole receive path: one datagram in, parse,
 * validate, transaction match, routing, and every byte that would go out.
 * Time is the fake clock of tests/unit/fake.c, so each input runs to the
 * end of its transactions (timers fire) and nothing piles up; the fake
 * transport captures what would be sent, and each of those messages must
 * parse again and carry a Via.  Nothing touches the network.
 *
 * The registrar (memory only), digest authentication (users alice and bob
 * of example.test) and the guard (scanner filter) are on.  Inputs of odd
 * length (every datagram in them) come from a trusted address, the others
 * from a stranger, so both the challenge paths and the forwarding paths
 * are reached.
 *
 * An input may hold several datagrams: a line that starts with "~~~~" ends
 * one (the digits after it, if any, are milliseconds the clock moves on
 * before the next).  In every datagram after the first, "$1" to "$9" stand
 * for the branch of the 1st to 9th request the proxy sent, so that a
 * response can answer a forwarded request and its client transaction,
 * forking and best-response choice get fuzzed too; "$R" for the first
 * Record-Route value of the last request it sent with one (our stamped
 * entry), so that a 2xx makes a dialog and requests in it come back
 * through its Route:
 *
 *	INVITE sip:bob@example.test SIP/2.0 ...	(forwarded: branch $1)
 *	~~~~10
 *	SIP/2.0 486 Busy Here
 *	Via: SIP/2.0/UDP 127.0.0.1:5060;branch=$1 ...
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <osipparser2/osip_parser.h>

#include <unistd.h>

#include "auth.h"
#include "dialog.h"
#include "fake.h"
#include "guard.h"
#include "location.h"
#include "log.h"
#include "proxy.h"
#include "registrar.h"
#include "route.h"
#include "txn.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define SEP		"\n~~~~"
#define NBRANCH		9

static struct tp	tp;
static struct tp_addr	src, stranger;
static const struct tp_addr *from;	/* src or stranger, for one input */
static struct registrar_settings rs = {	/* by name: fields get added */
	.enabled = true, .min_expires_s = 1, .max_expires_s = 3600,
	.default_expires_s = 600, .max_contacts = 8, .max_per_source = 16,
};
static struct auth_settings as;
static struct guard_settings gs;
static char		branches[NBRANCH][128];	/* of the requests sent */
static char		rr[256];		/* "$R" */
static int		nbranches;
static bool		verbose;	/* FUZZ_VERBOSE: print what is sent */

static struct route *
add_route(struct proxy_settings *ps, const char *user, const char *target,
    enum fork_mode fork)
{
	char		 err[256];
	struct route	*r = route_add(&ps->routes, user, NULL, 1, err,
			    sizeof(err));

	if (r == NULL || route_add_target(r, target, err, sizeof(err)) == -1)
		abort();
	r->fork = fork;
	r->recurse = true;
	return (r);
}

/* Registrar, users alice (MD5 and SHA-256) and bob (MD5), the guard. */
static void
fuzz_auth_init(void)
{
	static const uint8_t	 secret[32] = { 7 };
	char			 path[] = "/tmp/osprey-fuzz-users-XXXXXX";
	char			 err[256];
	struct auth_users	*u;
	FILE			*fp;
	int			 fd;

	if (registrar_init(NULL, NULL, err, sizeof(err)) == -1)
		abort();
	registrar_set(&rs);
	if ((fd = mkstemp(path)) == -1 || (fp = fdopen(fd, "w")) == NULL)
		abort();
	/* HA1 of "secret" for alice, both algorithms; bob MD5 only. */
	fprintf(fp, "alice:example.test:4842575394a190ef4c973253ba19099c:"
	    "cc0140d97f2b011fee9f86aa26b63fc472268267b652dcea0675e15d9da92468"
	    "\nbob:example.test:0123456789abcdef0123456789abcdef\n");
	fclose(fp);
	if ((u = auth_users_load(path, err, sizeof(err))) == NULL)
		abort();
	unlink(path);
	as.users_file = "fuzz-users";	/* only tested against NULL */
	as.nonce_expiry_s = 300;
	as.algorithms = AUTH_MD5 | AUTH_SHA256;
	if (acl_add(&as.trusted, "127.0.0.1", err, sizeof(err)) == -1)
		abort();
	auth_init(secret);
	auth_set(&as, u);
	gs.scanners = true;
	if (regcomp(&gs.scanner_re, "friendly|scanner|sipvicious",
	    REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
		abort();
	gs.max_sources = 1000;
	guard_init(NULL);
	guard_set(&gs, &as.trusted);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct proxy_settings	 ps;
	struct txn_settings	 ts = { 500, 4000, 5000, 180000, 32000 };
	static char		*domains[] = { "example.test", "atlanta.com",
				    "biloxi.com", NULL };
	struct route		*r;
	char			 err[256];

	(void)argc;
	(void)argv;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	log_init(true, verbose ? LOG_LVL_DEBUG : LOG_LVL_ERR);
	sipmsg_init();
	fake_tp_init(&tp);
	memset(&ps, 0, sizeof(ps));
	ps.domains = calloc(4, sizeof(char *));
	for (ps.ndomains = 0; domains[ps.ndomains] != NULL; ps.ndomains++)
		ps.domains[ps.ndomains] = strdup(domains[ps.ndomains]);
	ps.record_route = true;
	ps.cancel_ms = 5000;
	ps.max_message_size = 65535;
	add_route(&ps, "^bob$", "sip:127.0.0.1:5070", FORK_PARALLEL);
	add_route(&ps, "^0[0-9]*$", "sip:127.0.0.1:5071", FORK_SERIAL);
	/* Two branches at once: best response, merged challenges (16.7). */
	r = add_route(&ps, "^duo$", "sip:127.0.0.1:5080", FORK_PARALLEL);
	if (route_add_target(r, "sip:127.0.0.1:5081", err, sizeof(err)) == -1)
		abort();
	add_route(&ps, "^carol", "sip:carol@127.0.0.1:5072", FORK_PARALLEL);
	ps.routes.r[ps.routes.n - 1]->public = true;
	ps.max_transactions = 1000;
	/*
	 * Dialogs kept as the daemon keeps them: the checks, our own BYEs
	 * when the timeout fires in the clock steps after each input.
	 */
	dialog_set_settings(&(struct dialog_settings){ .enable = true,
	    .timeout_s = 100, .calls_per_user = 1000,
	    .calls_per_source = 10000 });
	proxy_init(NULL, &tp, proxy_settings_take(&ps), &ts);
	tp_addr_set(&src, (struct slice){ "127.0.0.1", 9 }, 5099);
	tp_addr_set(&stranger, (struct slice){ "192.0.2.9", 9 }, 5099);
	fuzz_auth_init();
	return (0);
}

/*
 * Framing of what we send: up to the empty line, every CR and LF in a
 * CRLF pair (RFC 3261 7), and no NUL in a response we relay but in a
 * quoted-pair (ours, with our Server line, may echo a NUL of the request
 * it answers; a request keeps a quoted-pair NUL).  sipmsg_parse()
 * tolerates a bare LF and a NUL in a request, so it cannot see these on
 * its own.
 */
static const char *
sent_framing(const struct sipmsg *m)
{
	static const char	 ours[] = "\r\nServer: Osprey/";
	bool			 relayed;
	size_t			 i;

	relayed = !m->request && memmem(m->buf, m->body_off, ours,
	    strlen(ours)) == NULL;
	for (i = 0; i < m->body_off; i++) {
		if (m->buf[i] == '\0' && relayed && (i == 0 ||
		    m->buf[i - 1] != '\\'))
			return ("NUL in the headers of a relayed response");
		if (m->buf[i] == '\n' && (i == 0 || m->buf[i - 1] != '\r'))
			return ("bare LF in the headers");
		if (m->buf[i] == '\r' && (i + 1 == m->len ||
		    m->buf[i + 1] != '\n'))
			return ("bare CR in the headers");
	}
	if (m->hdr_end == m->len)
		return ("no empty line");
	return (NULL);
}

/* What the proxy sends must be a message that parses, with a Via. */
static void
check_sent(void)
{
	int	i;

	for (i = 0; i < fake_nsent(); i++) {
		const char	*p = fake_sent(i), *bad;
		struct sipmsg	*m;
		struct slice	 v;
		char		 err[160];
		int		 rc;

		if (p == NULL)
			continue;
		if (verbose)
			fprintf(stderr, "--- sent:\n%.*s\n",
			    (int)fake_sent_len(i), p);
		m = sipmsg_new(p, fake_sent_len(i));
		rc = sipmsg_parse(m, err, sizeof(err));
		if ((bad = sent_framing(m)) != NULL) {
			fprintf(stderr, "sent a badly framed message (%s):\n"
			    "%.*s\n", bad, (int)fake_sent_len(i), p);
			abort();
		}
		/*
		 * A request we forward must be whole; a response we answer a
		 * broken request with may lack what that request lacked
		 * (400 Missing Call-ID), but never its Via.  Whatever we
		 * build ends with our own Content-Length line: without one,
		 * a header we wrote ran on in the line before it.
		 */
		if ((m->request ? rc != 0 : m->via.len == 0 ||
		    sipmsg_hdr(m, SH_VIA) == NULL) ||
		    sipmsg_hdr(m, SH_CONTENT_LENGTH) == NULL) {
			fprintf(stderr, "sent a bad message (%d: %s):\n%.*s\n",
			    rc, err, (int)fake_sent_len(i), p);
			abort();
		}
		if (m->request && nbranches < NBRANCH &&
		    m->branch.len < sizeof(branches[0])) {
			memcpy(branches[nbranches], m->branch.p, m->branch.len);
			branches[nbranches++][m->branch.len] = '\0';
		}
		if (m->request && sipmsg_values(m, SH_RECORD_ROUTE, &v, 1) >
		    0 && v.len < sizeof(rr)) {
			memcpy(rr, v.p, v.len);
			rr[v.len] = '\0';
		}
		sipmsg_free(m);
	}
	fake_sent_clear();
}

/* What "$N" (a branch) or "$R" at p[i] stands for, or NULL. */
static const char *
branch_ref(const char *p, size_t len, size_t i)
{
	int	k = i + 1 < len && p[i] == '$' ? p[i + 1] - '1' : -1;

	if (i + 1 < len && p[i] == '$' && p[i + 1] == 'R' && rr[0] != '\0')
		return (rr);
	return (k >= 0 && k < nbranches ? branches[k] : NULL);
}

/*
 * A request that sipmsg_parse() took without libosip2 (a plain one outside
 * a dialog, sipmsg_osip_plain()) must be one libosip2 takes.
 */
static void
check_plain(const char *d, size_t n)
{
	struct sipmsg	*m = sipmsg_new(d, n);
	char		 err[256];

	if (sipmsg_parse(m, err, sizeof(err)) == 0 && m->request &&
	    !sipmsg_in_dialog(m) && sipmsg_osip_plain(m) &&
	    sipmsg_parse_osip(m, err, sizeof(err)) != 0)
		abort();
	sipmsg_free(m);
}

/*
 * One datagram in, with "$1".."$9" replaced by the branches sent so far.
 * The copy has exactly the datagram's size, so that ASan sees any read
 * past its end.
 */
static void
recv_one(const char *p, size_t len)
{
	char		*d;
	const char	*k;
	size_t		 i, n = 0;

	for (i = 0; i < len; i++)
		if ((k = branch_ref(p, len, i)) != NULL) {
			n += strlen(k);
			i++;
		} else
			n++;
	if ((d = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	for (i = 0, n = 0; i < len; i++)
		if ((k = branch_ref(p, len, i)) != NULL) {
			memcpy(d + n, k, strlen(k));
			n += strlen(k);
			i++;
		} else
			d[n++] = p[i];
	check_plain(d, n);
	proxy_recv(NULL, &tp.socks[0], from, d, n);
	free(d);
	check_sent();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *end = p + size, *sep, *eol;

	nbranches = 0;
	rr[0] = '\0';
	from = size & 1 ? &src : &stranger;
	while ((sep = memmem(p, end - p, SEP, strlen(SEP))) != NULL) {
		unsigned long	ms = 0;

		recv_one(p, sep + 1 - p);	/* the datagram keeps its LF */
		for (eol = sep + strlen(SEP); eol < end && *eol != '\n'; eol++)
			if (*eol >= '0' && *eol <= '9' && ms < 1000000)
				ms = ms * 10 + (*eol - '0');
		if (ms > 0)
			fake_advance(ms > 200000 ? 200000 : (uint32_t)ms);
		check_sent();
		p = eol < end ? eol + 1 : end;
	}
	recv_one(p, end - p);
	/* Let every timer run out, so each input ends with an empty table. */
	fake_advance(200000);
	fake_advance(200000);
	check_sent();
	if (txn_count() != 0) {
		fprintf(stderr, "%u transactions left\n", txn_count());
		abort();
	}
	if (dialog_count() != 0) {	/* dialog_timeout ended them all */
		fprintf(stderr, "%u dialogs left\n", dialog_count());
		abort();
	}
	return (0);
}
