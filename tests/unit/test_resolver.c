/*
 * Unit tests: resolver.c.  The RFC 3263 decisions (the first step, NAPTR
 * selection, SRV names, RFC 2782 order) are called directly.  The TTL of
 * an answer is read from messages built here byte by byte, from copies
 * that end where a page no one may read begins, so that a read past the
 * end is a SIGSEGV (valgrind or not).  Lookups go through c-ares over real
 * UDP on loopback to a small responder in this process (A, AAAA, NAPTR
 * and, when told, SRV from tables; SRV otherwise answered by each test).
 * c-ares times out on the real clock; the cache TTLs run on the fake clock
 * of fake.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "check_util.h"
#include "fake.h"
#include "log.h"
#include "resolver.h"
#include "resolver_int.h"
#include "timer.h"
#include "tp.h"

#define T_A		1
#define T_CNAME		5
#define T_AAAA		28
#define T_SRV		33
#define T_NAPTR		35
#define T_STASH		65280	/* private use: rdata of bytes to point at */

#define RESP		0x8180	/* QR RD RA, NOERROR */
#define RESP_TC		0x8380	/* the same, truncated */
#define RESP_NX		0x8183	/* NXDOMAIN */
#define RESP_FAIL	0x8182	/* SERVFAIL */

#define HOST		"example.test"
#define QNAME		"_sip._udp." HOST
#define QOFF		12			/* the question's name */
#define DOMOFF		(QOFF + 5 + 5)		/* HOST within it */

/* ------------------------------------------------------------------ */
/* Building DNS messages */

struct pkt {
	unsigned char	b[2048];
	size_t		len;
};

static void
put8(struct pkt *p, unsigned v)
{
	ck_assert_uint_lt(p->len, sizeof(p->b));
	p->b[p->len++] = (unsigned char)v;
}

static void
put16(struct pkt *p, unsigned v)
{
	put8(p, (v >> 8) & 0xff);
	put8(p, v & 0xff);
}

static void
put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

static void
set16(struct pkt *p, size_t off, unsigned v)
{
	p->b[off] = (unsigned char)(v >> 8);
	p->b[off + 1] = (unsigned char)v;
}

/* "a.b" as labels without the end: a pointer or put8(p, 0) follows. */
static void
put_labels(struct pkt *p, const char *name)
{
	while (*name != '\0') {
		const char	*dot = strchr(name, '.');
		size_t		 l = dot != NULL ? (size_t)(dot - name) :
				    strlen(name);
		size_t		 i;

		put8(p, (unsigned)l);
		for (i = 0; i < l; i++)
			put8(p, (unsigned char)name[i]);
		name += l + (dot != NULL);
	}
}

static void
put_name(struct pkt *p, const char *name)
{
	put_labels(p, name);
	put8(p, 0);
}

static void
put_ptr(struct pkt *p, unsigned off)
{
	put16(p, 0xc000 | off);
}

static void
put_header(struct pkt *p, unsigned id, unsigned flags, unsigned qd,
    unsigned an)
{
	p->len = 0;
	put16(p, id);
	put16(p, flags);
	put16(p, qd);
	put16(p, an);
	put16(p, 0);
	put16(p, 0);
}

/* The header and the question QNAME SRV IN. */
static void
answer(struct pkt *p, unsigned flags, unsigned an)
{
	put_header(p, 0x1234, flags, 1, an);
	put_name(p, QNAME);
	put16(p, T_SRV);
	put16(p, 1);
}

/* A record owned by the question's name; returns where its rdlen is. */
static size_t
put_rr(struct pkt *p, unsigned type, uint32_t ttl)
{
	size_t	at;

	put_ptr(p, QOFF);
	put16(p, type);
	put16(p, 1);
	put32(p, ttl);
	at = p->len;
	put16(p, 0);
	return (at);
}

/* The rdlen at at: what was written since. */
static void
end_rr(struct pkt *p, size_t at)
{
	set16(p, at, (unsigned)(p->len - at - 2));
}

static void
put_srv(struct pkt *p, uint32_t ttl, unsigned prio, unsigned weight,
    unsigned port, const char *target)
{
	size_t	at = put_rr(p, T_SRV, ttl);

	put16(p, prio);
	put16(p, weight);
	put16(p, port);
	put_name(p, target);
	end_rr(p, at);
}

static void
put_str(struct pkt *p, const char *s)
{
	size_t	i, l = strlen(s);

	put8(p, (unsigned)l);
	for (i = 0; i < l; i++)
		put8(p, (unsigned char)s[i]);
}

/* ------------------------------------------------------------------ */
/* The TTL of an answer */

static uint32_t	ttl;

/* The first len bytes of p, right before a page that cannot be read. */
static int
ttl_len(const struct pkt *p, size_t len, unsigned type)
{
	size_t		 pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t		 span = (len + pg - 1) / pg * pg + pg;
	unsigned char	*m, *copy;
	int		 rc;

	m = mmap(NULL, span, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(m != MAP_FAILED);
	ck_assert_int_eq(mprotect(m + span - pg, pg, PROT_NONE), 0);
	copy = m + span - pg - len;
	memcpy(copy, p->b, len);
	ttl = 12345;
	rc = resolver_answer_ttl(copy, (int)len, type, &ttl);
	munmap(m, span);
	return (rc);
}

static int
ttl_of(const struct pkt *p)
{
	return (ttl_len(p, p->len, T_SRV));
}

START_TEST(ttl_smallest)
{
	struct pkt	p;

	answer(&p, RESP, 3);
	put_srv(&p, 600, 20, 0, 5002, "b.example.test");
	put_srv(&p, 120, 10, 5, 5001, "a.example.test");
	put_srv(&p, 7200, 10, 0, 5003, "c.example.test");
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 120);
	/* Large TTLs are given as they are; the cache caps them. */
	answer(&p, RESP, 1);
	put_srv(&p, 86400, 10, 60, 5070, "sip1.example.test");
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 86400);
}
END_TEST

/* RFC 2181 8: a TTL with the top bit set is 0. */
START_TEST(ttl_top_bit)
{
	struct pkt	p;

	answer(&p, RESP, 2);
	put_srv(&p, 300, 20, 0, 5002, "b.example.test");
	put_srv(&p, 0x80000001u, 10, 5, 5001, "a.example.test");
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 0);
	answer(&p, RESP, 1);
	put_srv(&p, 0x7fffffffu, 20, 0, 5002, "b.example.test");
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 0x7fffffffu);
}
END_TEST

/* A CNAME on the way counts; other types do not; none: 0. */
START_TEST(ttl_types)
{
	struct pkt	p;
	size_t		at;

	answer(&p, RESP, 3);
	at = put_rr(&p, T_CNAME, 40);
	put_name(&p, "alias.example.test");
	end_rr(&p, at);
	at = put_rr(&p, T_A, 10);
	put32(&p, 0x7f000001);
	end_rr(&p, at);
	put_srv(&p, 300, 10, 0, 5060, "sip.example.test");
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 40);
	answer(&p, RESP, 1);
	at = put_rr(&p, T_A, 10);
	put32(&p, 0x7f000001);
	end_rr(&p, at);
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 0);
	answer(&p, RESP_NX, 0);
	ck_assert_int_eq(ttl_of(&p), 0);
	ck_assert_uint_eq(ttl, 0);
	/* NAPTR is read the same way. */
	answer(&p, RESP, 1);
	at = put_rr(&p, T_NAPTR, 77);
	put16(&p, 10);
	put16(&p, 10);
	put_str(&p, "s");
	put_str(&p, "SIP+D2U");
	put_str(&p, "");
	put_name(&p, QNAME);
	end_rr(&p, at);
	ck_assert_int_eq(ttl_len(&p, p.len, T_NAPTR), 0);
	ck_assert_uint_eq(ttl, 77);
}
END_TEST

/* Every cut of a good answer is refused, the cut at each byte. */
START_TEST(ttl_truncated)
{
	struct pkt	p;
	size_t		len;

	answer(&p, RESP, 2);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	put_srv(&p, 300, 20, 0, 5060, "b.example.test");
	ck_assert_int_eq(ttl_of(&p), 0);
	for (len = 0; len < p.len; len++)
		ck_assert_msg(ttl_len(&p, len, T_SRV) == -1,
		    "cut at %zu of %zu", len, p.len);
}
END_TEST

START_TEST(ttl_bad_counts_and_lengths)
{
	struct pkt	p;
	size_t		at;

	/* Five answers said, one there. */
	answer(&p, RESP, 5);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	ck_assert_int_eq(ttl_of(&p), -1);
	/* All the counts at their largest. */
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	set16(&p, 4, 0xffff);
	set16(&p, 6, 0xffff);
	ck_assert_int_eq(ttl_of(&p), -1);
	/* An rdlen past the end, small and large. */
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	at = p.len - 2 - 6 - strlen("a.example.test") - 2;
	set16(&p, at, (unsigned)(p.len - at - 2 + 1));
	ck_assert_int_eq(ttl_of(&p), -1);
	set16(&p, at, 0xffff);
	ck_assert_int_eq(ttl_of(&p), -1);
}
END_TEST

START_TEST(ttl_bad_names)
{
	struct pkt	p;
	size_t		at, base;

	/* The question's name points at itself. */
	put_header(&p, 1, RESP, 1, 0);
	put_ptr(&p, QOFF);
	put16(&p, T_SRV);
	put16(&p, 1);
	ck_assert_int_eq(ttl_of(&p), -1);
	/* An owner pointing out of the packet. */
	answer(&p, RESP, 1);
	put_ptr(&p, 0x3fff);
	put16(&p, T_SRV);
	put16(&p, 1);
	put32(&p, 10);
	put16(&p, 0);
	ck_assert_int_eq(ttl_of(&p), -1);
	/* Two owners pointing at each other. */
	answer(&p, RESP, 2);
	at = put_rr(&p, T_STASH, 10);
	base = p.len;
	put_ptr(&p, (unsigned)base + 2);
	put_ptr(&p, (unsigned)base);
	end_rr(&p, at);
	put_ptr(&p, (unsigned)base);
	put16(&p, T_SRV);
	put16(&p, 1);
	put32(&p, 10);
	put16(&p, 0);
	ck_assert_int_eq(ttl_of(&p), -1);
	/* A reserved label type. */
	answer(&p, RESP, 1);
	put8(&p, 0x41);
	put8(&p, 0);
	put16(&p, T_SRV);
	put16(&p, 1);
	put32(&p, 10);
	put16(&p, 0);
	ck_assert_int_eq(ttl_of(&p), -1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* RFC 3263 decisions */

#define P(x)	RESOLVE_PROTO(TP_ ## x)
#define ALL	(P(UDP) | P(TCP) | P(TLS))

static struct resolver_plan	plan;
static const char		*perr;

static int
plan_of(const char *host, uint16_t port, int proto, bool sips,
    unsigned protos)
{
	struct resolve_query	q = { host, port, proto, sips, protos };

	perr = NULL;
	return (resolver_plan(&q, &plan, &perr));
}

#define ck_plan(step_, proto_, port_) do {				\
	ck_assert_int_eq(plan.step, (step_));				\
	ck_assert_uint_eq(plan.proto, (proto_));			\
	ck_assert_uint_eq(plan.port, (port_));				\
} while (0)

START_TEST(plan_numeric)
{
	char	ip[INET6_ADDRSTRLEN];

	ck_assert_int_eq(plan_of("192.0.2.1", 0, -1, false, ALL), 0);
	ck_plan(RESOLVER_NUMERIC, TP_UDP, 5060);
	ck_assert_uint_eq(plan.addr.proto, TP_UDP);
	ck_assert_uint_eq(tp_addr_port(&plan.addr), 5060);
	ck_assert_int_eq(plan_of("[2001:db8::1]", 5070, TP_TCP, false, ALL),
	    0);
	ck_plan(RESOLVER_NUMERIC, TP_TCP, 5070);
	tp_addr_ip(&plan.addr, ip, sizeof(ip));
	ck_assert_str_eq(ip, "2001:db8::1");
	ck_assert_uint_eq(plan.addr.proto, TP_TCP);
	/* sips: TLS on 5061; ;transport=tcp is TLS too. */
	ck_assert_int_eq(plan_of("2001:db8::2", 0, -1, true, ALL), 0);
	ck_plan(RESOLVER_NUMERIC, TP_TLS, 5061);
	ck_assert_uint_eq(plan.addr.proto, TP_TLS);
	ck_assert_int_eq(plan_of("192.0.2.1", 0, TP_TCP, true, ALL), 0);
	ck_plan(RESOLVER_NUMERIC, TP_TLS, 5061);
	ck_assert_int_eq(plan_of("192.0.2.1", 0, TP_TLS, false, ALL), 0);
	ck_plan(RESOLVER_NUMERIC, TP_TLS, 5061);
	/* Without UDP we send over what we have. */
	ck_assert_int_eq(plan_of("192.0.2.1", 0, -1, false, P(TCP) | P(TLS)),
	    0);
	ck_plan(RESOLVER_NUMERIC, TP_TCP, 5060);
	ck_assert_int_eq(plan_of("192.0.2.1", 0, -1, false, P(TLS)), 0);
	ck_plan(RESOLVER_NUMERIC, TP_TLS, 5061);
}
END_TEST

START_TEST(plan_names)
{
	/* A port: A/AAAA. */
	ck_assert_int_eq(plan_of("h.test", 5070, -1, false, ALL), 0);
	ck_plan(RESOLVER_ADDR, TP_UDP, 5070);
	ck_assert_int_eq(plan_of("h.test", 5070, TP_TCP, false, ALL), 0);
	ck_plan(RESOLVER_ADDR, TP_TCP, 5070);
	ck_assert_int_eq(plan_of("h.test", 5071, -1, true, ALL), 0);
	ck_plan(RESOLVER_ADDR, TP_TLS, 5071);
	/* A transport: its SRV, and its port without one. */
	ck_assert_int_eq(plan_of("h.test", 0, TP_TCP, false, ALL), 0);
	ck_plan(RESOLVER_SRV, TP_TCP, 5060);
	ck_assert_int_eq(plan_of("h.test", 0, TP_TLS, false, ALL), 0);
	ck_plan(RESOLVER_SRV, TP_TLS, 5061);
	ck_assert_int_eq(plan_of("h.test", 0, TP_TCP, true, ALL), 0);
	ck_plan(RESOLVER_SRV, TP_TLS, 5061);
	/* WS has no SRV name: A/AAAA. */
	ck_assert_int_eq(plan_of("h.test", 0, TP_WS, false, P(WS)), 0);
	ck_plan(RESOLVER_ADDR, TP_WS, 5060);
	ck_assert_int_eq(plan_of("h.test", 0, TP_WS, true, P(WSS)), 0);
	ck_plan(RESOLVER_ADDR, TP_WSS, 5061);
	/* Neither: NAPTR; without SRV, UDP on 5060 (sips: TLS, 5061). */
	ck_assert_int_eq(plan_of("h.test", 0, -1, false, ALL), 0);
	ck_plan(RESOLVER_NAPTR, TP_UDP, 5060);
	ck_assert_int_eq(plan_of("h.test", 0, -1, true, ALL), 0);
	ck_plan(RESOLVER_NAPTR, TP_TLS, 5061);
}
END_TEST

START_TEST(plan_refused)
{
	/* sips over UDP, or without TLS. */
	ck_assert_int_eq(plan_of("h.test", 0, TP_UDP, true, ALL), -1);
	ck_assert_ptr_nonnull(perr);
	ck_assert_int_eq(plan_of("192.0.2.1", 0, TP_UDP, true, ALL), -1);
	ck_assert_int_eq(plan_of("h.test", 0, -1, true, P(UDP) | P(TCP)), -1);
	ck_assert_int_eq(plan_of("192.0.2.1", 5061, -1, true, P(UDP)), -1);
	/* A transport we cannot send on. */
	ck_assert_int_eq(plan_of("h.test", 0, TP_TCP, false, P(UDP)), -1);
	ck_assert_int_eq(plan_of("192.0.2.1", 0, TP_TCP, false, P(UDP)), -1);
	ck_assert_int_eq(plan_of("h.test", 0, -1, false, 0), -1);
	ck_assert_int_eq(plan_of("h.test", 0, TP_NPROTO, false, ALL), -1);
	ck_assert_int_eq(plan_of("h.test", 0, -2, false, ALL), -1);
	/* No host. */
	ck_assert_int_eq(plan_of("", 0, -1, false, ALL), -1);
	ck_assert_int_eq(plan_of(NULL, 0, -1, false, ALL), -1);
}
END_TEST

START_TEST(srv_names)
{
	char		out[256], big[300];

	ck_assert_int_eq(resolver_srv_name("h.test", TP_UDP, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "_sip._udp.h.test");
	ck_assert_int_eq(resolver_srv_name("h.test", TP_TCP, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "_sip._tcp.h.test");
	ck_assert_int_eq(resolver_srv_name("h.test", TP_TLS, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "_sips._tcp.h.test");
	ck_assert_int_eq(resolver_srv_name("h.test", TP_WS, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(resolver_srv_name("h.test", TP_WSS, out,
	    sizeof(out)), -1);
	memset(big, 'a', 250);
	big[250] = '\0';
	ck_assert_int_eq(resolver_srv_name(big, TP_UDP, out, sizeof(out)),
	    -1);
}
END_TEST

static struct resolver_naptr
nap(unsigned order, unsigned pref, const char *flags, const char *service,
    const char *regexp, const char *repl)
{
	struct resolver_naptr	n;

	memset(&n, 0, sizeof(n));
	n.order = (uint16_t)order;
	n.pref = (uint16_t)pref;
	snprintf(n.flags, sizeof(n.flags), "%s", flags);
	snprintf(n.service, sizeof(n.service), "%s", service);
	n.regexp = regexp[0] != '\0';
	snprintf(n.replacement, sizeof(n.replacement), "%s", repl);
	return (n);
}

static struct resolver_srvname	sn[RESOLVER_MAX_SETS];

/* The names and transports, as "udp:a tcp:b". */
static const char *
sets_of(unsigned n)
{
	static char	buf[1024];
	unsigned	i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(buf, " ");
		strcat(buf, tp_proto_param(sn[i].proto));
		strcat(buf, ":");
		strcat(buf, sn[i].name);
	}
	return (buf);
}

/* RFC 3263 4.1's example: TLS, then TCP, then UDP, if we have them. */
START_TEST(naptr_rfc3263_example)
{
	struct resolver_naptr	r[3] = {
		nap(100, 50, "s", "SIP+D2U", "", "_sip._udp.example.com"),
		nap(50, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com"),
		nap(90, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
	};
	unsigned		n;

	n = resolver_naptr_select(r, 3, ALL, false, sn, RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "tls:_sips._tcp.example.com "
	    "tcp:_sip._tcp.example.com udp:_sip._udp.example.com");
	/* Only what we can send on. */
	n = resolver_naptr_select(r, 3, P(UDP), false, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "udp:_sip._udp.example.com");
	n = resolver_naptr_select(r, 3, P(UDP) | P(TCP), false, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "tcp:_sip._tcp.example.com "
	    "udp:_sip._udp.example.com");
	/* sips: SIPS+ only. */
	n = resolver_naptr_select(r, 3, ALL, true, sn, RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "tls:_sips._tcp.example.com");
	n = resolver_naptr_select(r, 3, P(UDP) | P(TCP), true, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_uint_eq(n, 0);
	/* At most max. */
	n = resolver_naptr_select(r, 3, ALL, false, sn, 2);
	ck_assert_str_eq(sets_of(n), "tls:_sips._tcp.example.com "
	    "tcp:_sip._tcp.example.com");
}
END_TEST

/* Order first, then preference; equal ones as they came. */
START_TEST(naptr_order_preference)
{
	struct resolver_naptr	r[5] = {
		nap(20, 10, "s", "SIP+D2U", "", "d.test"),
		nap(10, 30, "S", "SIP+D2U", "", "c.test"),
		nap(10, 10, "s", "SIP+D2U", "", "a.test"),
		nap(10, 20, "s", "sip+d2t", "", "b.test"),
		nap(20, 10, "s", "SIP+D2U", "", "e.test"),
	};
	unsigned		n;

	n = resolver_naptr_select(r, 5, ALL, false, sn, RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n),
	    "udp:a.test tcp:b.test udp:c.test udp:d.test udp:e.test");
}
END_TEST

/*
 * Not for us: other flags, a regexp, services we do not speak (WS, SCTP,
 * ENUM), no replacement; and the same name twice is asked once.
 */
START_TEST(naptr_unusable)
{
	struct resolver_naptr	r[10] = {
		nap(10, 10, "a", "SIP+D2U", "", "flag-a.test"),
		nap(10, 10, "", "SIP+D2U", "", "no-flag.test"),
		nap(10, 10, "su", "SIP+D2U", "", "two-flags.test"),
		nap(10, 10, "s", "SIP+D2U", "!^.*$!sip:x@y!", "regexp.test"),
		nap(10, 10, "s", "SIP+D2W", "", "ws.test"),
		nap(10, 10, "s", "SIPS+D2W", "", "wss.test"),
		nap(10, 10, "s", "SIP+D2S", "", "sctp.test"),
		nap(10, 10, "u", "E2U+sip", "!^.*$!sip:a@b!", ""),
		nap(10, 10, "s", "SIP+D2U", "", ""),
		nap(30, 10, "s", "SIP+D2U", "", "ok.test"),
	};
	struct resolver_naptr	d[3] = {
		nap(10, 10, "s", "SIP+D2U", "", "same.test"),
		nap(20, 10, "s", "SIP+D2U", "", "SAME.test"),
		nap(30, 10, "s", "SIP+D2T", "", "same.test"),
	};
	unsigned		n;

	n = resolver_naptr_select(r, 10, ALL | P(WS) | P(WSS), false, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "udp:ok.test");
	n = resolver_naptr_select(r, 9, ALL, false, sn, RESOLVER_MAX_SETS);
	ck_assert_uint_eq(n, 0);
	n = resolver_naptr_select(d, 3, ALL, false, sn, RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "udp:same.test tcp:same.test");
	n = resolver_naptr_select(NULL, 0, ALL, false, sn, RESOLVER_MAX_SETS);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* No NAPTR: our own order, UDP, TCP, TLS; sips: TLS only. */
START_TEST(srv_fallback_order)
{
	unsigned	n;

	n = resolver_srv_fallback("h.test", ALL, false, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "udp:_sip._udp.h.test "
	    "tcp:_sip._tcp.h.test tls:_sips._tcp.h.test");
	n = resolver_srv_fallback("h.test", P(TLS) | P(UDP), false, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "udp:_sip._udp.h.test "
	    "tls:_sips._tcp.h.test");
	n = resolver_srv_fallback("h.test", ALL, true, sn, RESOLVER_MAX_SETS);
	ck_assert_str_eq(sets_of(n), "tls:_sips._tcp.h.test");
	n = resolver_srv_fallback("h.test", P(UDP), true, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_uint_eq(n, 0);
	n = resolver_srv_fallback("h.test", P(WS) | P(WSS), false, sn,
	    RESOLVER_MAX_SETS);
	ck_assert_uint_eq(n, 0);
	n = resolver_srv_fallback("h.test", ALL, false, sn, 1);
	ck_assert_str_eq(sets_of(n), "udp:_sip._udp.h.test");
}
END_TEST

/* ------------------------------------------------------------------ */
/* RFC 2782 order */

static long	script[16];
static unsigned	nscript, iscript;
static uint64_t	rng_state;

static long
scripted(void)
{
	ck_assert_msg(iscript < nscript, "draw %u of %u", iscript + 1,
	    nscript);
	return (script[iscript++]);
}

/* xorshift64: the same sequence on every run. */
static long
seeded(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return ((long)(rng_state >> 33));
}

static void
mk(struct resolver_srv *s, unsigned prio, unsigned weight, const char *t)
{
	memset(s, 0, sizeof(*s));
	s->prio = (uint16_t)prio;
	s->weight = (uint16_t)weight;
	s->port = 5060;
	snprintf(s->target, sizeof(s->target), "%s", t);
}

/* The targets in order, as "a b c". */
static const char *
order_of(const struct resolver_srv *s, unsigned n)
{
	static char	buf[256];
	unsigned	i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(buf, " ");
		strcat(buf, s[i].target);
	}
	return (buf);
}

START_TEST(order_priority)
{
	struct resolver_srv	s[6];
	unsigned		run, i;

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (run = 0; run < 200; run++) {
		mk(&s[0], 20, 0, "c");
		mk(&s[1], 10, 5, "a");
		mk(&s[2], 30, 1, "e");
		mk(&s[3], 10, 50, "b");
		mk(&s[4], 20, 7, "d");
		mk(&s[5], 65535, 0, "f");
		resolver_srv_order(s, 6, seeded);
		for (i = 1; i < 6; i++)
			ck_assert_uint_le(s[i - 1].prio, s[i].prio);
		/* A permutation: each priority keeps its own. */
		ck_assert(strchr("ab", s[0].target[0]) != NULL);
		ck_assert(strchr("ab", s[1].target[0]) != NULL);
		ck_assert(s[0].target[0] != s[1].target[0]);
		ck_assert(strchr("cd", s[2].target[0]) != NULL);
		ck_assert(s[2].target[0] != s[3].target[0]);
		ck_assert_str_eq(s[4].target, "e");
		ck_assert_str_eq(s[5].target, "f");
	}
}
END_TEST

/*
 * The draws exactly: without a weight 0 the draw is 1..sum and the first
 * record whose running sum reaches it wins; with one, 0..sum and the
 * records of weight 0 go first (RFC 2782), so 0 picks one of them.  One
 * record left takes its place without a draw.
 */
START_TEST(order_draws)
{
	struct resolver_srv	s[3];
	static const struct {
		long		 draw;
		const char	*order;
	} two[] = {
		{ 0, "a b" }, { 9, "a b" }, { 10, "b a" }, { 39, "b a" },
		{ 40, "a b" },
	}, zero[] = {
		{ 0, "z a b" }, { 1, "a b z" }, { 10, "a b z" },
		{ 11, "b a z" }, { 40, "b a z" }, { 41, "z a b" },
	};
	unsigned		i;

	for (i = 0; i < sizeof(two) / sizeof(two[0]); i++) {
		mk(&s[0], 10, 10, "a");
		mk(&s[1], 10, 30, "b");
		script[0] = two[i].draw;
		nscript = 1;
		iscript = 0;
		resolver_srv_order(s, 2, scripted);
		ck_assert_uint_eq(iscript, 1);
		ck_assert_msg(strcmp(order_of(s, 2), two[i].order) == 0,
		    "draw %ld: %s, want %s", two[i].draw, order_of(s, 2),
		    two[i].order);
	}
	for (i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		mk(&s[0], 10, 10, "a");
		mk(&s[1], 10, 30, "b");
		mk(&s[2], 10, 0, "z");
		/* The second place: a draw of 1 (not 0: z would win). */
		script[0] = zero[i].draw;
		script[1] = 1;
		nscript = 2;
		iscript = 0;
		resolver_srv_order(s, 3, scripted);
		ck_assert_msg(strcmp(order_of(s, 3), zero[i].order) == 0,
		    "draw %ld: %s, want %s", zero[i].draw, order_of(s, 3),
		    zero[i].order);
	}
	/* One record, or one per priority: no draw. */
	mk(&s[0], 20, 10, "b");
	mk(&s[1], 10, 10, "a");
	nscript = 0;
	iscript = 0;
	resolver_srv_order(s, 2, scripted);
	ck_assert_str_eq(order_of(s, 2), "a b");
	resolver_srv_order(s, 0, scripted);
}
END_TEST

/* How often each record comes first over many draws, loosely. */
static void
first_share(const unsigned *w, unsigned n, double *share)
{
	struct resolver_srv	s[8];
	unsigned		count[8] = { 0 };
	unsigned		run, i;
	const unsigned		runs = 20000;

	rng_state = 0x2545f4914f6cdd1dULL;
	for (run = 0; run < runs; run++) {
		for (i = 0; i < n; i++) {
			char	t[4] = { (char)('a' + i), '\0' };

			mk(&s[i], 10, w[i], t);
		}
		resolver_srv_order(s, n, seeded);
		count[s[0].target[0] - 'a']++;
	}
	for (i = 0; i < n; i++)
		share[i] = (double)count[i] / runs;
}

#define ck_share(got, want, tol)					\
	ck_assert_msg((got) > (want) - (tol) && (got) < (want) + (tol),	\
	    "share %.4f, want %.4f +- %.3f", (got), (double)(want),	\
	    (double)(tol))

START_TEST(order_distribution)
{
	static const unsigned	w13[] = { 1, 3 };
	static const unsigned	w631[] = { 60, 30, 10 };
	static const unsigned	w000[] = { 0, 0, 0 };
	static const unsigned	w0_10[] = { 0, 10 };
	double			sh[8];

	/* Proportional to the weights. */
	first_share(w13, 2, sh);
	ck_share(sh[0], 0.25, 0.02);
	ck_share(sh[1], 0.75, 0.02);
	first_share(w631, 3, sh);
	ck_share(sh[0], 0.60, 0.02);
	ck_share(sh[1], 0.30, 0.02);
	ck_share(sh[2], 0.10, 0.02);
	/* All 0: even. */
	first_share(w000, 3, sh);
	ck_share(sh[0], 1.0 / 3, 0.02);
	ck_share(sh[1], 1.0 / 3, 0.02);
	ck_share(sh[2], 1.0 / 3, 0.02);
	/* Weight 0 beside others: rarely first, but sometimes (1 in 11). */
	first_share(w0_10, 2, sh);
	ck_share(sh[0], 1.0 / 11, 0.015);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The cache, on the fake clock */

static struct event_base	*base;
static int			 dnsfd = -1;	/* the responder's */
static struct sockaddr_in	 dnsaddr;

static struct tp_addr
addr(const char *ip, uint16_t port)
{
	struct tp_addr	a;

	ck_assert_int_eq(tp_addr_set(&a, S(ip), port), 0);
	return (a);
}

static void
ck_addr(const struct tp_addr *a, const char *ip, uint16_t port)
{
	char	buf[INET6_ADDRSTRLEN];

	tp_addr_ip(a, buf, sizeof(buf));
	ck_assert_str_eq(buf, ip);
	ck_assert_uint_eq(tp_addr_port(a), port);
}

#define ck_addrp(a, ip, port, pr) do {				\
	ck_addr((a), (ip), (port));					\
	ck_assert_uint_eq((a)->proto, (pr));				\
} while (0)

static const struct tp_addr *
cached_addrs(const char *name, unsigned *n)
{
	const void	*recs;

	if (!resolver_cache_get(name, RESOLVER_T_ADDR, &recs, n))
		return (NULL);
	return (recs);
}

START_TEST(cache_ttl)
{
	struct tp_addr		 a[2] = { addr("192.0.2.1", 0),
				    addr("2001:db8::1", 0) };
	const struct tp_addr	*got;
	unsigned		 n;

	resolver_cache_put("h.test", RESOLVER_T_ADDR, a, 2, 30);
	ck_assert_uint_eq(resolver_cache_size(), 1);
	got = cached_addrs("h.test", &n);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(n, 2);
	ck_addr(&got[0], "192.0.2.1", 0);
	ck_addr(&got[1], "2001:db8::1", 0);
	fake_advance(29999);
	ck_assert_ptr_nonnull(cached_addrs("h.test", &n));
	fake_advance(1);
	ck_assert_ptr_null(cached_addrs("h.test", &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(resolver_cache_size(), 0);
	/* Capped. */
	resolver_cache_put("h.test", RESOLVER_T_ADDR, a, 2, 86400);
	fake_advance(RESOLVER_TTL_MAX * 1000 - 1);
	ck_assert_ptr_nonnull(cached_addrs("h.test", &n));
	fake_advance(1);
	ck_assert_ptr_null(cached_addrs("h.test", &n));
}
END_TEST

/* By name (any case, a trailing dot or not) and type. */
START_TEST(cache_keys)
{
	struct tp_addr		 a = addr("192.0.2.1", 0);
	struct resolver_srv	 s = { 10, 0, 5070, "t.test" };
	const void		*recs;
	unsigned		 n;

	resolver_cache_put("h.test", RESOLVER_T_ADDR, &a, 1, 60);
	resolver_cache_put("_sip._udp.H.test.", RESOLVER_T_SRV, &s, 1, 60);
	ck_assert(resolver_cache_get("H.TEST.", RESOLVER_T_ADDR, &recs, &n));
	ck_addr(recs, "192.0.2.1", 0);
	ck_assert(resolver_cache_get("_sip._udp.h.test", RESOLVER_T_SRV,
	    &recs, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(((const struct resolver_srv *)recs)->target,
	    "t.test");
	ck_assert(!resolver_cache_get("h.test", RESOLVER_T_SRV, &recs, &n));
	ck_assert(!resolver_cache_get("h.test", RESOLVER_T_NAPTR, &recs, &n));
	ck_assert(!resolver_cache_get("g.test", RESOLVER_T_ADDR, &recs, &n));
	ck_assert(!resolver_cache_get("h.tes", RESOLVER_T_ADDR, &recs, &n));
	/* A newer answer replaces the old one. */
	a = addr("192.0.2.9", 0);
	resolver_cache_put("h.test", RESOLVER_T_ADDR, &a, 1, 60);
	ck_assert_uint_eq(resolver_cache_size(), 2);
	ck_assert(resolver_cache_get("h.test", RESOLVER_T_ADDR, &recs, &n));
	ck_addr(recs, "192.0.2.9", 0);
}
END_TEST

/* "None" is kept a short time only; a TTL of 0 not at all. */
START_TEST(cache_negative)
{
	struct tp_addr	 a = addr("192.0.2.1", 0);
	const void	*recs;
	unsigned	 n;

	resolver_cache_put("h.test", RESOLVER_T_NAPTR, NULL, 0, 3600);
	resolver_cache_put("g.test", RESOLVER_T_ADDR, &a, 1, 0);
	ck_assert_uint_eq(resolver_cache_size(), 1);
	ck_assert(resolver_cache_get("h.test", RESOLVER_T_NAPTR, &recs, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert(!resolver_cache_get("g.test", RESOLVER_T_ADDR, &recs, &n));
	fake_advance(RESOLVER_NEG_TTL * 1000 - 1);
	ck_assert(resolver_cache_get("h.test", RESOLVER_T_NAPTR, &recs, &n));
	fake_advance(1);
	ck_assert(!resolver_cache_get("h.test", RESOLVER_T_NAPTR, &recs, &n));
}
END_TEST

/* Full, it takes nothing new until entries expire. */
START_TEST(cache_cap)
{
	struct tp_addr	a = addr("192.0.2.1", 0);
	char		h[32];
	unsigned	i, n;

	for (i = 0; i < RESOLVER_CACHE_MAX; i++) {
		snprintf(h, sizeof(h), "h%u.test", i);
		resolver_cache_put(h, RESOLVER_T_ADDR, &a, 1, 10 + i % 2);
	}
	ck_assert_uint_eq(resolver_cache_size(), RESOLVER_CACHE_MAX);
	resolver_cache_put("late.test", RESOLVER_T_ADDR, &a, 1, 60);
	ck_assert_uint_eq(resolver_cache_size(), RESOLVER_CACHE_MAX);
	ck_assert_ptr_null(cached_addrs("late.test", &n));
	ck_assert_ptr_nonnull(cached_addrs("h0.test", &n));
	/* Half expire; a miss sweeps them. */
	fake_advance(10000);
	ck_assert_ptr_null(cached_addrs("none.test", &n));
	ck_assert_uint_eq(resolver_cache_size(), RESOLVER_CACHE_MAX / 2);
	resolver_cache_put("late.test", RESOLVER_T_ADDR, &a, 1, 60);
	ck_assert_ptr_nonnull(cached_addrs("late.test", &n));
	ck_assert_ptr_nonnull(cached_addrs("h1.test", &n));
	ck_assert_ptr_null(cached_addrs("h2.test", &n));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Lookups over loopback */

struct query {
	char			 name[256];	/* lower case */
	unsigned		 type;
	unsigned		 id;
	unsigned		 flags;
	unsigned char		 q[300];	/* the question, as it came */
	size_t			 qlen;
	struct sockaddr_storage	 from;
	socklen_t		 fromlen;
	uint64_t		 at_us;		/* real clock */
	int			 tcp;		/* the connection, else -1 */
};

#define MAX_QUERIES	128

static struct query	queries[MAX_QUERIES];
static unsigned		nq;
/* A and AAAA records the responder knows: "name", "address". */
static const char	*zone[32][2];
static unsigned		nzone;
static uint32_t		addr_ttl;
/* SRV records it answers when srv_auto; else each test does. */
static struct {
	const char	*owner;
	unsigned	 prio, weight, port;
	const char	*target;
} srvs[32];
static unsigned		nsrvs;
static bool		srv_auto;
/* NAPTR records: always answered. */
static struct {
	const char	*owner;
	unsigned	 order, pref;
	const char	*flags, *service, *repl;
} naptrs[16];
static unsigned		nnaptrs;
/* Names nobody answers for, of any type. */
static const char	*silent[4];
static unsigned		nsilent;
/* Over UDP, SRV answers are empty and truncated (TC): ask over TCP. */
static bool		truncate_srv;
static int		tcpfd = -1;	/* the responder's listener */
static int		conns[8];	/* its connections, -1: none */

struct result {
	unsigned	calls;
	struct tp_addr	addrs[RESOLVE_MAX_ADDRS];
	unsigned	n;
	char		err[128];
};

static uint64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

static void
resolved(void *arg, const struct tp_addr *a, unsigned n, const char *err)
{
	struct result	*res = arg;

	res->calls++;
	res->n = n;
	if (n > 0)
		memcpy(res->addrs, a, n * sizeof(*a));
	snprintf(res->err, sizeof(res->err), "%s", err != NULL ? err : "");
}

static void
zone_add(const char *name, const char *ip)
{
	ck_assert_uint_lt(nzone, 32);
	zone[nzone][0] = name;
	zone[nzone][1] = ip;
	nzone++;
}

static void
srv_add(const char *owner, unsigned prio, unsigned weight, unsigned port,
    const char *target)
{
	ck_assert_uint_lt(nsrvs, 32);
	srvs[nsrvs].owner = owner;
	srvs[nsrvs].prio = prio;
	srvs[nsrvs].weight = weight;
	srvs[nsrvs].port = port;
	srvs[nsrvs].target = target;
	nsrvs++;
	srv_auto = true;
}

static void
naptr_add(const char *owner, unsigned order, unsigned pref,
    const char *flags, const char *service, const char *repl)
{
	ck_assert_uint_lt(nnaptrs, 16);
	naptrs[nnaptrs].owner = owner;
	naptrs[nnaptrs].order = order;
	naptrs[nnaptrs].pref = pref;
	naptrs[nnaptrs].flags = flags;
	naptrs[nnaptrs].service = service;
	naptrs[nnaptrs].repl = repl;
	nnaptrs++;
}

static bool
known(const char *name)
{
	unsigned	i;

	for (i = 0; i < nzone; i++)
		if (strcasecmp(zone[i][0], name) == 0)
			return (true);
	for (i = 0; i < nsrvs; i++)
		if (strcasecmp(srvs[i].owner, name) == 0)
			return (true);
	for (i = 0; i < nnaptrs; i++)
		if (strcasecmp(naptrs[i].owner, name) == 0)
			return (true);
	return (false);
}

/* Answer q from the tables; unknown names: NXDOMAIN. */
static void
answer_table(const struct query *q)
{
	struct pkt	p;
	unsigned	i, an = 0;
	int		af = q->type == T_A ? AF_INET : AF_INET6;

	put_header(&p, q->id, RESP, 1, 0);
	memcpy(p.b + p.len, q->q, q->qlen);
	p.len += q->qlen;
	for (i = 0; q->type != T_SRV && q->type != T_NAPTR && i < nzone;
	    i++) {
		unsigned char	raw[16];
		size_t		at, k;

		if (strcasecmp(zone[i][0], q->name) != 0 ||
		    inet_pton(af, zone[i][1], raw) != 1)
			continue;
		at = put_rr(&p, q->type, addr_ttl);
		for (k = 0; k < (af == AF_INET ? 4u : 16u); k++)
			put8(&p, raw[k]);
		end_rr(&p, at);
		an++;
	}
	for (i = 0; q->type == T_SRV && i < nsrvs; i++)
		if (strcasecmp(srvs[i].owner, q->name) == 0) {
			put_srv(&p, 300, srvs[i].prio, srvs[i].weight,
			    srvs[i].port, srvs[i].target);
			an++;
		}
	for (i = 0; q->type == T_NAPTR && i < nnaptrs; i++) {
		size_t	at;

		if (strcasecmp(naptrs[i].owner, q->name) != 0)
			continue;
		at = put_rr(&p, T_NAPTR, 300);
		put16(&p, naptrs[i].order);
		put16(&p, naptrs[i].pref);
		put_str(&p, naptrs[i].flags);
		put_str(&p, naptrs[i].service);
		put_str(&p, "");
		put_name(&p, naptrs[i].repl);
		end_rr(&p, at);
		an++;
	}
	set16(&p, 6, an);
	if (!known(q->name))
		set16(&p, 2, RESP_NX);
	if (q->tcp >= 0) {
		unsigned char	len[2] = { (unsigned char)(p.len >> 8),
				    (unsigned char)p.len };

		ck_assert_int_eq(write(q->tcp, len, 2), 2);
		ck_assert_int_eq(write(q->tcp, p.b, p.len), (ssize_t)p.len);
		return;
	}
	if (truncate_srv && q->type == T_SRV) {
		p.len = 12 + q->qlen;
		set16(&p, 2, RESP_TC);
		set16(&p, 6, 0);
	}
	ck_assert_int_eq(sendto(dnsfd, p.b, p.len, 0,
	    (const struct sockaddr *)&q->from, q->fromlen), (ssize_t)p.len);
}

/* One query in b[0..n), as it came over UDP or TCP (then tcp is its fd). */
static void
take(const unsigned char *b, ssize_t n, int tcp)
{
	struct query	*q = &queries[nq];
	size_t		 off = 12, w = 0;
	bool		 quiet = false;
	unsigned	 i;

	ck_assert_uint_lt(nq, MAX_QUERIES);
	ck_assert_int_ge(n, 17);
	q->tcp = tcp;
	q->at_us = now_us();
	q->id = (unsigned)(b[0] << 8 | b[1]);
	q->flags = (unsigned)(b[2] << 8 | b[3]);
	ck_assert_uint_eq(b[4] << 8 | b[5], 1);
	while (off < (size_t)n && b[off] != 0) {
		size_t	l = b[off];

		ck_assert_uint_lt(off + 1 + l, (size_t)n);
		if (w > 0)
			q->name[w++] = '.';
		memcpy(q->name + w, b + off + 1, l);
		w += l;
		off += 1 + l;
	}
	q->name[w] = '\0';
	for (w = 0; q->name[w] != '\0'; w++)
		if (q->name[w] >= 'A' && q->name[w] <= 'Z')
			q->name[w] += 'a' - 'A';
	ck_assert_uint_le(off + 5, (size_t)n);
	q->type = (unsigned)(b[off + 1] << 8 | b[off + 2]);
	q->qlen = off + 5 - 12;
	memcpy(q->q, b + 12, q->qlen);
	nq++;
	for (i = 0; i < nsilent; i++)
		if (strcasecmp(silent[i], q->name) == 0)
			quiet = true;
	if (!quiet && (q->type != T_SRV || srv_auto))
		answer_table(q);
}

/*
 * Take what came to the responder; answer from the tables, or keep.  Over
 * TCP, a query is taken to come whole in one read (loopback, small).
 */
static void
serve(void)
{
	unsigned char	b[514];
	ssize_t		n;
	unsigned	i;
	int		fd;

	while ((n = recv(dnsfd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK)) > 0) {
		struct query	*q = &queries[nq];

		ck_assert_uint_lt(nq, MAX_QUERIES);
		q->fromlen = sizeof(q->from);
		n = recvfrom(dnsfd, b, sizeof(b), 0,
		    (struct sockaddr *)&q->from, &q->fromlen);
		take(b, n, -1);
	}
	while ((fd = accept4(tcpfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
		for (i = 0; i < 8 && conns[i] >= 0; i++)
			;
		ck_assert_uint_lt(i, 8);
		conns[i] = fd;
	}
	for (i = 0; i < 8; i++) {
		if (conns[i] < 0)
			continue;
		n = recv(conns[i], b, sizeof(b), MSG_DONTWAIT);
		if (n == 0) {
			close(conns[i]);
			conns[i] = -1;
		} else if (n > 2) {
			ck_assert_int_eq(b[0] << 8 | b[1], n - 2);
			take(b + 2, n - 2, conns[i]);
		}
	}
}

/* Run the loop and the responder for ms, or until res has an answer. */
static void
pump(struct result *res, int ms)
{
	struct pollfd	pfd = { .fd = dnsfd, .events = POLLIN };
	int		i;

	for (i = 0; i < ms / 5; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		serve();
		if (res != NULL && res->calls > 0)
			return;
		poll(&pfd, 1, 5);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	serve();
}

static unsigned
count_queries(const char *name, unsigned type)
{
	unsigned	i, k = 0;

	for (i = 0; i < nq; i++)
		if ((name == NULL || strcmp(queries[i].name, name) == 0) &&
		    (type == 0 || queries[i].type == type))
			k++;
	return (k);
}

/* The i-th query of type (from 0); waits for it. */
static const struct query *
query_of(unsigned type, unsigned i)
{
	unsigned	t, k, seen;

	for (t = 0; t < 400; t++) {
		for (k = 0, seen = 0; k < nq; k++)
			if (queries[k].type == type && seen++ == i)
				return (&queries[k]);
		pump(NULL, 5);
	}
	ck_abort_msg("no query %u of type %u", i, type);
	return (NULL);
}

static const struct query *
srv_query(unsigned i)
{
	return (query_of(T_SRV, i));
}

/* Send p to whoever asked q, with q's id. */
static void
reply(const struct query *q, struct pkt *p)
{
	set16(p, 0, q->id);
	ck_assert_int_eq(sendto(dnsfd, p->b, p->len, 0,
	    (const struct sockaddr *)&q->from, q->fromlen), (ssize_t)p->len);
}

static struct resolve_req *
query(const char *host, uint16_t port, int proto, bool sips,
    unsigned protos, struct result *res)
{
	struct resolve_query	q = { host, port, proto, sips, protos };

	return (resolver_query(&q, resolved, res));
}

#define TIMEOUT_MS	200

static void
setup(void)
{
	struct resolver_settings	set;
	socklen_t			len = sizeof(dnsaddr);
	unsigned			i;

	log_init(true, LOG_LVL_WARNING);
	fake_reset();
	nq = 0;
	nzone = 0;
	nsrvs = 0;
	nnaptrs = 0;
	nsilent = 0;
	srv_auto = false;
	addr_ttl = 30;
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	/*
	 * A UDP port whose TCP twin is free too: the kernel picks the UDP
	 * one, and another test may hold that number in TCP; try again.
	 */
	for (i = 0; i < 100; i++) {
		dnsfd = socket(AF_INET, SOCK_DGRAM, 0);
		ck_assert_int_ge(dnsfd, 0);
		memset(&dnsaddr, 0, sizeof(dnsaddr));
		dnsaddr.sin_family = AF_INET;
		dnsaddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(dnsaddr);
		ck_assert_int_eq(bind(dnsfd, (struct sockaddr *)&dnsaddr,
		    sizeof(dnsaddr)), 0);
		ck_assert_int_eq(getsockname(dnsfd,
		    (struct sockaddr *)&dnsaddr, &len), 0);
		tcpfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		ck_assert_int_ge(tcpfd, 0);
		if (bind(tcpfd, (struct sockaddr *)&dnsaddr,
		    sizeof(dnsaddr)) == 0)
			break;
		close(tcpfd);
		close(dnsfd);
	}
	ck_assert_uint_lt(i, 100);
	ck_assert_int_eq(listen(tcpfd, 8), 0);
	for (i = 0; i < 8; i++)
		conns[i] = -1;
	truncate_srv = false;
	memset(&set, 0, sizeof(set));
	memcpy(&set.ns[0].ss, &dnsaddr, sizeof(dnsaddr));
	set.ns[0].len = sizeof(dnsaddr);
	set.nns = 1;
	set.timeout_ms = TIMEOUT_MS;
	resolver_init(base, &set);
}

static void
teardown(void)
{
	unsigned	i;

	resolver_shutdown();
	event_base_free(base);
	close(dnsfd);
	dnsfd = -1;
	close(tcpfd);
	tcpfd = -1;
	for (i = 0; i < 8; i++)
		if (conns[i] >= 0)
			close(conns[i]);
	fake_reset();
}

START_TEST(lookup_numeric)
{
	struct result	res = { 0 };

	ck_assert_ptr_null(resolver_lookup("192.0.2.1", 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "192.0.2.1", 5060, TP_UDP);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup("[2001:db8::1]", 5070, resolved,
	    &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_addr(&res.addrs[0], "2001:db8::1", 5070);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup("2001:db8::2", 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_addr(&res.addrs[0], "2001:db8::2", 5060);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(query("192.0.2.3", 0, -1, true, ALL, &res));
	ck_addrp(&res.addrs[0], "192.0.2.3", 5061, TP_TLS);
	/* Refused at once: sips over UDP. */
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(query("192.0.2.3", 0, TP_UDP, true, ALL, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_str_ne(res.err, "");
	pump(NULL, 50);
	ck_assert_uint_eq(nq, 0);
}
END_TEST

/* A port: A/AAAA only, no NAPTR or SRV (RFC 3263 4.2). */
START_TEST(lookup_port_skips_srv)
{
	struct result	res = { 0 };

	zone_add("host.test", "127.0.0.7");
	ck_assert_ptr_nonnull(resolver_lookup("host.test", 5070, resolved,
	    &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.7", 5070, TP_UDP);
	ck_assert_uint_ge(count_queries("host.test", T_A), 1);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 0);
	ck_assert_uint_eq(count_queries(NULL, T_NAPTR), 0);
	/* With ;transport=tcp, over TCP. */
	memset(&res, 0, sizeof(res));
	nq = 0;
	ck_assert_ptr_null(query("host.test", 5071, TP_TCP, false, ALL,
	    &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_addrp(&res.addrs[0], "127.0.0.7", 5071, TP_TCP);
	ck_assert_uint_eq(nq, 0);		/* cached */
}
END_TEST

/*
 * A name from /etc/hosts is answered before resolver_lookup() returns:
 * then it returns NULL, as resolver.h says, not a request already freed.
 */
START_TEST(lookup_hosts_file_at_once)
{
	struct result	res = { 0 };

	ck_assert_ptr_null(resolver_lookup("localhost", 5071, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_ge(res.n, 1);
	ck_assert_uint_eq(tp_addr_port(&res.addrs[0]), 5071);
	pump(NULL, 30);
	ck_assert_uint_eq(nq, 0);
}
END_TEST

/* No NAPTR, so _sip._udp: its targets by priority. */
START_TEST(lookup_srv_order)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

	zone_add("a.test", "127.0.0.11");
	zone_add("b.test", "127.0.0.12");
	zone_add("c.test", "127.0.0.13");
	zone_add("c.test", "127.0.0.14");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	ck_assert_str_eq(q->name, QNAME);
	ck_assert_uint_eq(q->flags & 0x8100, 0x0100);	/* a query, RD */
	ck_assert_uint_eq(count_queries(HOST, T_NAPTR), 1);
	answer(&p, RESP, 4);
	put_srv(&p, 300, 20, 0, 5002, "b.test");
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	put_srv(&p, 300, 5, 0, 0, "a.test");		/* port 0: unusable */
	put_srv(&p, 300, 30, 0, 5003, "c.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 4);
	ck_addrp(&res.addrs[0], "127.0.0.11", 5001, TP_UDP);
	ck_addrp(&res.addrs[1], "127.0.0.12", 5002, TP_UDP);
	ck_addrp(&res.addrs[2], "127.0.0.13", 5003, TP_UDP);
	ck_addrp(&res.addrs[3], "127.0.0.14", 5003, TP_UDP);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 1);
	ck_assert_uint_eq(count_queries(HOST, T_A) +
	    count_queries(HOST, T_AAAA), 0);
}
END_TEST

/* The list stops at RESOLVE_MAX_ADDRS, in SRV order. */
START_TEST(lookup_address_cap)
{
	static const char	*ips[3][8] = {
		{ "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4",
		  "127.0.1.5", "127.0.1.6", "127.0.1.7", "127.0.1.8" },
		{ "127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4",
		  "127.0.2.5", "127.0.2.6", "127.0.2.7", "127.0.2.8" },
		{ "127.0.3.1", "127.0.3.2", "127.0.3.3", "127.0.3.4",
		  "127.0.3.5", "127.0.3.6", "127.0.3.7", "127.0.3.8" },
	};
	static const char	*names[3] = { "a.test", "b.test", "c.test" };
	struct result		 res = { 0 };
	unsigned		 i, k;

	for (i = 0; i < 3; i++)
		for (k = 0; k < 8; k++)
			zone_add(names[i], ips[i][k]);
	srv_add(QNAME, 30, 0, 5003, "c.test");
	srv_add(QNAME, 10, 0, 5001, "a.test");
	srv_add(QNAME, 20, 0, 5002, "b.test");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, RESOLVE_MAX_ADDRS);
	/* c-ares sorts each name's addresses (RFC 6724): any order. */
	for (i = 0; i < 2; i++)
		for (k = 0; k < 8; k++) {
			char		ip[INET6_ADDRSTRLEN];
			const char	*want = ips[i][0];

			tp_addr_ip(&res.addrs[i * 8 + k], ip, sizeof(ip));
			ck_assert_msg(strncmp(ip, want, 8) == 0,
			    "%s in place %u", ip, i * 8 + k);
			ck_assert_uint_eq(tp_addr_port(&res.addrs[i * 8 + k]),
			    5001 + i);
		}
}
END_TEST

/* SRV targets that resolve at once (/etc/hosts, numeric): all of them. */
START_TEST(lookup_srv_targets_at_once)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP, 3);
	put_srv(&p, 300, 10, 0, 5001, "localhost");
	put_srv(&p, 300, 20, 0, 5002, "localhost");
	put_srv(&p, 300, 30, 0, 5003, "127.0.0.5");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_ge(res.n, 3);
	ck_assert_uint_eq(tp_addr_port(&res.addrs[0]), 5001);
	ck_addr(&res.addrs[res.n - 1], "127.0.0.5", 5003);
	pump(NULL, 30);
	ck_assert_uint_eq(res.calls, 1);
}
END_TEST

/* No NAPTR, no SRV: A/AAAA for the host itself, port 5060. */
START_TEST(lookup_srv_nxdomain)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

	zone_add(HOST, "127.0.0.20");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP_NX, 0);
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.20", 5060, TP_UDP);
	ck_assert_uint_ge(count_queries(HOST, T_A), 1);
}
END_TEST

/*
 * Unanswered: asked again after the timeout (same id), then given up on
 * and A/AAAA used; a failure is not cached: the next lookup asks again.
 */
START_TEST(lookup_srv_timeout)
{
	struct result		 res = { 0 };
	const struct query	*q1, *q2;
	uint64_t		 gap;

	zone_add(HOST, "127.0.0.20");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q1 = srv_query(0);
	q2 = srv_query(1);
	gap = q2->at_us - q1->at_us;
	ck_assert_msg(gap >= (TIMEOUT_MS - 20) * 1000u &&
	    gap < (TIMEOUT_MS + 150) * 1000u, "resent after %llu us",
	    (unsigned long long)gap);
	ck_assert_uint_eq(q2->id, q1->id);
	ck_assert_uint_eq(count_queries(HOST, T_A), 0);
	pump(&res, 3000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "127.0.0.20", 5060);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 2);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	srv_query(2);
}
END_TEST

/*
 * An answer with another id is not taken: the lookup waits on.  One that
 * does not hold together fails the SRV query (not cached): A/AAAA then.
 */
START_TEST(lookup_srv_bad_answer)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p, bad;

	zone_add("a.test", "127.0.0.11");
	zone_add("b.test", "127.0.0.12");
	zone_add(HOST, "127.0.0.20");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5008, "b.test");
	set16(&p, 0, q->id ^ 1);
	ck_assert_int_eq(sendto(dnsfd, p.b, p.len, 0,
	    (const struct sockaddr *)&q->from, q->fromlen), (ssize_t)p.len);
	pump(&res, 100);
	ck_assert_uint_eq(res.calls, 0);
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "127.0.0.11", 5001);
	/* Five answers said, one there. */
	memset(&res, 0, sizeof(res));
	nq = 0;
	ck_assert_ptr_nonnull(resolver_lookup("other.test", 0, resolved,
	    &res));
	zone_add("other.test", "127.0.0.21");
	q = srv_query(0);
	answer(&bad, RESP, 5);
	put_srv(&bad, 300, 10, 0, 5009, "b.test");
	memcpy(bad.b + 12, q->q, q->qlen);	/* its question */
	reply(q, &bad);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "127.0.0.21", 5060);
	ck_assert_uint_eq(count_queries("b.test", 0), 0);
}
END_TEST

/* Target "." (RFC 2782): no SIP service there; not A/AAAA of the host. */
START_TEST(lookup_srv_dot)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

	zone_add(HOST, "127.0.0.20");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP, 1);
	put_srv(&p, 300, 0, 0, 0, "");
	reply(q, &p);
	pump(&res, 500);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_str_ne(res.err, "");
	ck_assert_uint_eq(count_queries(HOST, T_A) +
	    count_queries(HOST, T_AAAA), 0);
}
END_TEST

/*
 * Each answer is kept for its own TTL: the NAPTR "none" for
 * RESOLVER_NEG_TTL, the SRV records for their smallest TTL (30), the A
 * records for theirs (60).
 */
START_TEST(lookup_cached)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

	addr_ttl = 60;
	zone_add("a.test", "127.0.0.11");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP, 2);
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	put_srv(&p, 30, 20, 0, 5002, "a.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 2);
	nq = 0;
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup(HOST, 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 2);
	ck_addr(&res.addrs[0], "127.0.0.11", 5001);
	ck_addr(&res.addrs[1], "127.0.0.11", 5002);
	fake_advance(RESOLVER_NEG_TTL * 1000 - 1);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup(HOST, 0, resolved, &res));
	pump(NULL, 20);
	ck_assert_uint_eq(nq, 0);
	/* The NAPTR again; the SRV and A from the cache. */
	fake_advance(1);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 2);
	ck_assert_uint_eq(nq, 1);
	ck_assert_uint_eq(count_queries(HOST, T_NAPTR), 1);
	/* The SRV again at 30 s, and only that with the NAPTR. */
	fake_advance(30000 - RESOLVER_NEG_TTL * 1000);
	nq = 0;
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_assert_uint_eq(count_queries("a.test", 0), 0);
}
END_TEST

/* No such name: told; "none" kept a few seconds, then asked again. */
START_TEST(lookup_negative_cached_briefly)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP_NX, 0);
	reply(q, &p);
	pump(&res, 3000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_str_eq(res.err, "no address");
	nq = 0;
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup(HOST, 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 0);
	fake_advance(RESOLVER_NEG_TTL * 1000);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 0);
	srv_query(0);
}
END_TEST

/* An A record whose TTL has the top bit set is used, not cached. */
START_TEST(lookup_ttl_top_bit)
{
	struct result	res = { 0 };

	addr_ttl = 0x80000000u;
	zone_add("host.test", "127.0.0.7");
	ck_assert_ptr_nonnull(resolver_lookup("host.test", 5070, resolved,
	    &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(resolver_lookup("host.test", 5070, resolved,
	    &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_assert_uint_eq(count_queries("host.test", T_A), 2);
}
END_TEST

/*
 * NAPTR (RFC 3263 4.1): TCP preferred, UDP after; with both, the TCP
 * targets first, then the UDP ones: the list changes transport.
 */
START_TEST(lookup_naptr_mixed)
{
	struct result	res = { 0 };

	naptr_add(HOST, 10, 10, "s", "SIP+D2T", "_sip._tcp.pool.test");
	naptr_add(HOST, 20, 10, "s", "SIP+D2U", "_sip._udp.pool.test");
	naptr_add(HOST, 30, 10, "s", "SIP+D2W", "_sip._ws.pool.test");
	srv_add("_sip._tcp.pool.test", 10, 0, 5071, "t.test");
	srv_add("_sip._udp.pool.test", 10, 0, 5072, "u1.test");
	srv_add("_sip._udp.pool.test", 20, 0, 5073, "u2.test");
	zone_add("t.test", "127.0.0.31");
	zone_add("u1.test", "127.0.0.32");
	zone_add("u2.test", "127.0.0.33");
	ck_assert_ptr_nonnull(query(HOST, 0, -1, false, P(UDP) | P(TCP),
	    &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 3);
	ck_addrp(&res.addrs[0], "127.0.0.31", 5071, TP_TCP);
	ck_addrp(&res.addrs[1], "127.0.0.32", 5072, TP_UDP);
	ck_addrp(&res.addrs[2], "127.0.0.33", 5073, TP_UDP);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 2);
	ck_assert_uint_eq(count_queries("_sip._ws.pool.test", 0), 0);
	ck_assert_uint_eq(count_queries(QNAME, 0), 0);
}
END_TEST

/* UDP only: the D2T record is passed over; its SRV is never asked. */
START_TEST(lookup_naptr_filtered)
{
	struct result	res = { 0 };

	naptr_add(HOST, 10, 10, "s", "SIP+D2T", "_sip._tcp.pool.test");
	naptr_add(HOST, 20, 10, "s", "SIP+D2U", "_sip._udp.pool.test");
	srv_add("_sip._tcp.pool.test", 10, 0, 5071, "t.test");
	srv_add("_sip._udp.pool.test", 10, 0, 5072, "u1.test");
	zone_add("t.test", "127.0.0.31");
	zone_add("u1.test", "127.0.0.32");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.32", 5072, TP_UDP);
	ck_assert_uint_eq(count_queries("_sip._tcp.pool.test", 0), 0);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 1);
}
END_TEST

/* sips: only SIPS+D2T, on TLS; the D2U record is not for it. */
START_TEST(lookup_naptr_sips)
{
	struct result	res = { 0 };

	naptr_add(HOST, 10, 10, "s", "SIP+D2U", "_sip._udp.pool.test");
	naptr_add(HOST, 20, 10, "s", "SIPS+D2T", "_sips._tcp.pool.test");
	srv_add("_sip._udp.pool.test", 10, 0, 5072, "u1.test");
	srv_add("_sips._tcp.pool.test", 10, 0, 5061, "s.test");
	zone_add("u1.test", "127.0.0.32");
	zone_add("s.test", "127.0.0.34");
	ck_assert_ptr_nonnull(query(HOST, 0, -1, true, ALL, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.34", 5061, TP_TLS);
	ck_assert_uint_eq(count_queries("_sip._udp.pool.test", 0), 0);
}
END_TEST

/*
 * No NAPTR: SRV for each transport we have, asked together, used in our
 * order (UDP, TCP, TLS); a missing one is skipped.
 */
START_TEST(lookup_srv_each_transport)
{
	struct result	res = { 0 };

	srv_add("_sip._tcp." HOST, 10, 0, 5071, "t.test");
	srv_add("_sips._tcp." HOST, 10, 0, 5061, "s.test");
	zone_add("t.test", "127.0.0.31");
	zone_add("s.test", "127.0.0.34");
	ck_assert_ptr_nonnull(query(HOST, 0, -1, false, ALL, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 2);
	ck_addrp(&res.addrs[0], "127.0.0.31", 5071, TP_TCP);
	ck_addrp(&res.addrs[1], "127.0.0.34", 5061, TP_TLS);
	ck_assert_uint_eq(count_queries(QNAME, T_SRV), 1);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 3);
	/* sips: _sips._tcp only. */
	nq = 0;
	memset(&res, 0, sizeof(res));
	fake_advance(RESOLVER_NEG_TTL * 1000);
	ck_assert_ptr_nonnull(query(HOST, 0, -1, true, ALL, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.34", 5061, TP_TLS);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 0);	/* cached */
	ck_assert_uint_eq(count_queries(HOST, T_NAPTR), 1);
}
END_TEST

/* No SRV anywhere: the host, 5061 over TLS for sips. */
START_TEST(lookup_sips_no_srv)
{
	struct result	res = { 0 };

	zone_add(HOST, "127.0.0.20");
	srv_auto = true;
	ck_assert_ptr_nonnull(query(HOST, 0, -1, true, ALL, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.20", 5061, TP_TLS);
	ck_assert_uint_eq(count_queries("_sips._tcp." HOST, T_SRV), 1);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 1);
}
END_TEST

/* ;transport=tcp: no NAPTR, the SRV of that transport only. */
START_TEST(lookup_transport_given)
{
	struct result	res = { 0 };

	naptr_add(HOST, 10, 10, "s", "SIP+D2U", "_sip._udp.pool.test");
	srv_add("_sip._tcp." HOST, 10, 0, 5071, "t.test");
	zone_add("t.test", "127.0.0.31");
	ck_assert_ptr_nonnull(query(HOST, 0, TP_TCP, false, ALL, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.31", 5071, TP_TCP);
	ck_assert_uint_eq(count_queries(NULL, T_NAPTR), 0);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 1);
	/* No SRV for it: the host on TCP's port. */
	zone_add("h2.test", "127.0.0.40");
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(query("h2.test", 0, TP_TCP, false, ALL, &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.40", 5060, TP_TCP);
}
END_TEST

/*
 * A truncated answer (TC) is asked again over TCP: c-ares connects, so it
 * wants to write before it reads, and the events follow.
 */
START_TEST(lookup_tcp_after_truncation)
{
	struct result	res = { 0 };
	unsigned	i, tcp = 0;

	truncate_srv = true;
	srv_add(QNAME, 10, 0, 5071, "t.test");
	zone_add("t.test", "127.0.0.31");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	pump(&res, 3000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addrp(&res.addrs[0], "127.0.0.31", 5071, TP_UDP);
	for (i = 0; i < nq; i++)
		if (queries[i].type == T_SRV && queries[i].tcp >= 0)
			tcp++;
	ck_assert_uint_eq(tcp, 1);
	ck_assert_uint_eq(count_queries(QNAME, T_SRV), 2);
}
END_TEST

/* Cancelled: the answer comes, the callback does not. */
START_TEST(lookup_cancel)
{
	struct result		 res = { 0 }, res2 = { 0 };
	struct resolve_req	*r;
	const struct query	*q;
	struct pkt		 p;

	zone_add("a.test", "127.0.0.11");
	zone_add("host.test", "127.0.0.7");
	r = resolver_lookup(HOST, 0, resolved, &res);
	ck_assert_ptr_nonnull(r);
	q = srv_query(0);
	resolver_cancel(r);
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	reply(q, &p);
	/* Another lookup, to know when the first has had its answers. */
	r = resolver_lookup("host.test", 5070, resolved, &res2);
	ck_assert_ptr_nonnull(r);
	pump(&res2, 2000);
	pump(NULL, 50);
	ck_assert_uint_eq(res2.calls, 1);
	ck_assert_uint_eq(res.calls, 0);
	/* Cancelled, it asks nothing more: no A/AAAA of a.test. */
	ck_assert_uint_eq(count_queries("a.test", 0), 0);
	resolver_cancel(NULL);
}
END_TEST

/* Shut down with lookups out: no callback, nothing left (valgrind). */
START_TEST(lookup_shutdown_pending)
{
	struct result	res = { 0 }, res2 = { 0 };

	nsilent = 1;
	silent[0] = "slow.test";
	ck_assert_ptr_nonnull(resolver_lookup("slow.test", 0, resolved,
	    &res));
	ck_assert_ptr_nonnull(resolver_lookup("slow.test", 5070, resolved,
	    &res2));
	query_of(T_NAPTR, 0);
	query_of(T_A, 0);
	resolver_shutdown();
	ck_assert_uint_eq(res.calls, 0);
	ck_assert_uint_eq(res2.calls, 0);
	/* For teardown. */
	resolver_init(base, &(struct resolver_settings){ .timeout_ms = 100 });
}
END_TEST

START_TEST(parse_ns)
{
	struct tp_addr	a;
	static const char *bad[] = { "127.0.0.1:", "127.0.0.1:0",
	    "127.0.0.1:65536", "127.0.0.1:53x", "127.0.0.1:+53",
	    "127.0.0.1: 53", "127.0.0.1:-1", "ns.example.test",
	    "[::1]:", "[::1]:5x", "" };
	unsigned	i;

	ck_assert_int_eq(resolver_parse_ns("127.0.0.1", &a), 0);
	ck_addr(&a, "127.0.0.1", 53);
	ck_assert_int_eq(resolver_parse_ns("127.0.0.1:5353", &a), 0);
	ck_addr(&a, "127.0.0.1", 5353);
	ck_assert_int_eq(resolver_parse_ns("[::1]:5353", &a), 0);
	ck_addr(&a, "::1", 5353);
	ck_assert_int_eq(resolver_parse_ns("[::1]", &a), 0);
	ck_addr(&a, "::1", 53);
	ck_assert_int_eq(resolver_parse_ns("::1", &a), 0);
	ck_addr(&a, "::1", 53);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(resolver_parse_ns(bad[i], &a) == -1,
		    "\"%s\" taken", bad[i]);
}
END_TEST

int
main(void)
{
	TCase	*tc;

	tc = check_case("ttl");
	check_add(tc, ttl_smallest, ttl_top_bit, ttl_types, ttl_truncated,
	    ttl_bad_counts_and_lengths, ttl_bad_names, parse_ns);
	tc = check_case("rfc3263");
	check_add(tc, plan_numeric, plan_names, plan_refused, srv_names,
	    naptr_rfc3263_example, naptr_order_preference, naptr_unusable,
	    srv_fallback_order);
	tc = check_case("order");
	check_add(tc, order_priority, order_draws, order_distribution);
	tc = check_fixed("cache", setup, teardown);
	check_add(tc, cache_ttl, cache_keys, cache_negative, cache_cap);
	tc = check_fixed("lookup", setup, teardown);
	tcase_set_timeout(tc, 20);
	check_add(tc, lookup_numeric, lookup_port_skips_srv,
	    lookup_hosts_file_at_once, lookup_srv_order, lookup_address_cap,
	    lookup_srv_targets_at_once, lookup_srv_nxdomain, lookup_srv_timeout,
	    lookup_srv_bad_answer, lookup_srv_dot, lookup_cached,
	    lookup_negative_cached_briefly, lookup_ttl_top_bit,
	    lookup_naptr_mixed, lookup_naptr_filtered, lookup_naptr_sips,
	    lookup_srv_each_transport, lookup_sips_no_srv,
	    lookup_transport_given, lookup_tcp_after_truncation,
	    lookup_cancel, lookup_shutdown_pending);
	return (check_run("resolver"));
}
