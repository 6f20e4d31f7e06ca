/*
 * Unit tests: resolver.c.  DNS answers are built here byte by byte and
 * parsed from copies that end where a page no one may read begins, so that
 * a read past the end is a SIGSEGV (valgrind or not).  Lookups go over
 * real UDP on loopback to a small responder in this process (A and AAAA
 * from a table, SRV answered by each test); the SRV timeout and the cache
 * TTLs run on the fake clock of fake.c.
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

/* ------------------------------------------------------------------ */
/* Parsing them */

static struct resolver_srv	srv[RESOLVER_MAX_SRV];
static uint32_t			ttl;

/* The first len bytes of p, right before a page that cannot be read. */
static int
parse_len(const struct pkt *p, size_t len)
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
	memset(srv, 0, sizeof(srv));
	ttl = RESOLVER_SRV_TTL_MAX;
	rc = resolver_srv_parse(copy, len, srv, RESOLVER_MAX_SRV, &ttl);
	munmap(m, span);
	return (rc);
}

static int
parse_pkt(const struct pkt *p)
{
	return (parse_len(p, p->len));
}

#define ck_srv(i, pr, w, po, t) do {					\
	ck_assert_uint_eq(srv[i].prio, (pr));				\
	ck_assert_uint_eq(srv[i].weight, (w));				\
	ck_assert_uint_eq(srv[i].port, (po));				\
	ck_assert_str_eq(srv[i].target, (t));				\
} while (0)

START_TEST(parse_one)
{
	struct pkt	p;

	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 60, 5070, "sip1.example.test");
	ck_assert_int_eq(parse_pkt(&p), 1);
	ck_srv(0, 10, 60, 5070, "sip1.example.test");
	ck_assert_uint_eq(ttl, 300);
	/* A TTL above the cap leaves it. */
	answer(&p, RESP, 1);
	put_srv(&p, 86400, 10, 60, 5070, "sip1.example.test");
	ck_assert_int_eq(parse_pkt(&p), 1);
	ck_assert_uint_eq(ttl, RESOLVER_SRV_TTL_MAX);
}
END_TEST

START_TEST(parse_compressed)
{
	struct pkt	p;
	size_t		at, t1;

	answer(&p, RESP, 3);
	/* sip1 + pointer to "example.test" in the question */
	at = put_rr(&p, T_SRV, 60);
	put16(&p, 10);
	put16(&p, 1);
	put16(&p, 5061);
	t1 = p.len;
	put_labels(&p, "sip1");
	put_ptr(&p, DOMOFF);
	end_rr(&p, at);
	/* edge + pointer to sip1's target: two jumps */
	at = put_rr(&p, T_SRV, 60);
	put16(&p, 20);
	put16(&p, 2);
	put16(&p, 5062);
	put_labels(&p, "edge");
	put_ptr(&p, (unsigned)t1);
	end_rr(&p, at);
	/* only a pointer: the whole question name */
	at = put_rr(&p, T_SRV, 60);
	put16(&p, 30);
	put16(&p, 3);
	put16(&p, 5063);
	put_ptr(&p, QOFF);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), 3);
	ck_srv(0, 10, 1, 5061, "sip1.example.test");
	ck_srv(1, 20, 2, 5062, "edge.sip1.example.test");
	ck_srv(2, 30, 3, 5063, "_sip._udp.example.test");
}
END_TEST

START_TEST(parse_several)
{
	struct pkt	p;

	answer(&p, RESP, 3);
	put_srv(&p, 600, 20, 0, 5002, "b.example.test");
	put_srv(&p, 120, 10, 5, 5001, "a.example.test");
	put_srv(&p, 7200, 10, 0, 5003, "c.example.test");
	ck_assert_int_eq(parse_pkt(&p), 3);
	/* In the order they came; the smallest TTL. */
	ck_srv(0, 20, 0, 5002, "b.example.test");
	ck_srv(1, 10, 5, 5001, "a.example.test");
	ck_srv(2, 10, 0, 5003, "c.example.test");
	ck_assert_uint_eq(ttl, 120);
}
END_TEST

START_TEST(parse_more_than_max)
{
	struct pkt	p;
	char		t[32];
	unsigned	i;

	answer(&p, RESP, RESOLVER_MAX_SRV + 4);
	for (i = 0; i < RESOLVER_MAX_SRV + 4; i++) {
		snprintf(t, sizeof(t), "s%u.example.test", i);
		put_srv(&p, 100 + i, 10, 1, 5000 + i, t);
	}
	ck_assert_int_eq(parse_pkt(&p), RESOLVER_MAX_SRV);
	for (i = 0; i < RESOLVER_MAX_SRV; i++) {
		snprintf(t, sizeof(t), "s%u.example.test", i);
		ck_srv(i, 10, 1, 5000 + i, t);
	}
}
END_TEST

START_TEST(parse_other_types)
{
	struct pkt	p;
	size_t		at;

	/* A CNAME and an A record before the SRV: skipped. */
	answer(&p, RESP, 3);
	at = put_rr(&p, T_CNAME, 10);
	put_name(&p, "alias.example.test");
	end_rr(&p, at);
	at = put_rr(&p, T_A, 10);
	put32(&p, 0x7f000001);
	end_rr(&p, at);
	put_srv(&p, 300, 10, 0, 5060, "sip.example.test");
	ck_assert_int_eq(parse_pkt(&p), 1);
	ck_srv(0, 10, 0, 5060, "sip.example.test");
	/* Their TTL is not the answer's. */
	ck_assert_uint_eq(ttl, 300);
	/* Only an A record: no SRV. */
	answer(&p, RESP, 1);
	at = put_rr(&p, T_A, 10);
	put32(&p, 0x7f000001);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), 0);
}
END_TEST

START_TEST(parse_rcode)
{
	struct pkt	p;

	answer(&p, RESP_NX, 0);
	ck_assert_int_eq(parse_pkt(&p), 0);
	/* A failure says nothing, whatever follows. */
	answer(&p, RESP_FAIL, 1);
	put_srv(&p, 300, 10, 0, 5060, "sip.example.test");
	ck_assert_int_eq(parse_pkt(&p), 0);
}
END_TEST

/* Every cut of a good answer is refused, the cut at each byte. */
START_TEST(parse_truncated)
{
	struct pkt	p;
	size_t		len;

	answer(&p, RESP, 2);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	put_srv(&p, 300, 20, 0, 5060, "b.example.test");
	ck_assert_int_eq(parse_pkt(&p), 2);
	for (len = 0; len < p.len; len++)
		ck_assert_msg(parse_len(&p, len) == -1,
		    "cut at %zu of %zu: %d", len, p.len, parse_len(&p, len));
	/* No answers to reach: the question is read to its end. */
	answer(&p, RESP_NX, 0);
	ck_assert_int_eq(parse_pkt(&p), 0);
	for (len = 0; len < p.len; len++)
		ck_assert_msg(parse_len(&p, len) == -1,
		    "NXDOMAIN cut at %zu of %zu: %d", len, p.len,
		    parse_len(&p, len));
}
END_TEST

/* With TC set a server may stop early, at the end of a record. */
START_TEST(parse_tc)
{
	struct pkt	p;
	size_t		len;

	answer(&p, RESP_TC, 3);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	put_srv(&p, 300, 20, 0, 5060, "b.example.test");
	ck_assert_int_eq(parse_pkt(&p), 2);
	ck_srv(1, 20, 0, 5060, "b.example.test");
	/* Not inside one. */
	len = p.len;
	put_srv(&p, 300, 30, 0, 5060, "c.example.test");
	ck_assert_int_eq(parse_len(&p, len + 5), -1);
}
END_TEST

START_TEST(parse_pointer_loop)
{
	struct pkt	p;
	size_t		at, base;
	unsigned	i;

	/* The question's name points at itself. */
	put_header(&p, 1, RESP, 1, 0);
	put_ptr(&p, QOFF);
	put16(&p, T_SRV);
	put16(&p, 1);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* A target pointing to a pointer pointing back to it. */
	answer(&p, RESP, 2);
	at = put_rr(&p, T_STASH, 10);
	base = p.len;
	put_ptr(&p, (unsigned)base + 2 + 12 + 6);	/* at the target */
	end_rr(&p, at);
	at = put_rr(&p, T_SRV, 10);
	put16(&p, 10);
	put16(&p, 0);
	put16(&p, 5060);
	ck_assert_uint_eq(p.len, base + 2 + 12 + 6);
	put_ptr(&p, (unsigned)base);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* A pointer out of the packet. */
	answer(&p, RESP, 1);
	at = put_rr(&p, T_SRV, 10);
	put16(&p, 10);
	put16(&p, 0);
	put16(&p, 5060);
	put_ptr(&p, 0x3fff);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* A chain of pointers ends: 3 jumps are fine, 40 are too many. */
	for (i = 3; i <= 40; i += 37) {
		unsigned	k;

		answer(&p, RESP, 2);
		at = put_rr(&p, T_STASH, 10);
		base = p.len;
		for (k = 1; k < i; k++)
			put_ptr(&p, (unsigned)(base + 2 * k));
		put_ptr(&p, DOMOFF);
		end_rr(&p, at);
		at = put_rr(&p, T_SRV, 10);
		put16(&p, 10);
		put16(&p, 0);
		put16(&p, 5060);
		put_ptr(&p, (unsigned)base);
		end_rr(&p, at);
		if (i == 3) {
			ck_assert_int_eq(parse_pkt(&p), 1);
			ck_assert_str_eq(srv[0].target, HOST);
		} else
			ck_assert_int_eq(parse_pkt(&p), -1);
	}
}
END_TEST

START_TEST(parse_count_too_large)
{
	struct pkt	p;

	/* Five answers said, one there. */
	answer(&p, RESP, 5);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* Forty questions said, one there. */
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	set16(&p, 4, 40);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* All the counts at their largest. */
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	set16(&p, 4, 0xffff);
	set16(&p, 6, 0xffff);
	ck_assert_int_eq(parse_pkt(&p), -1);
}
END_TEST

START_TEST(parse_rdlen_past_end)
{
	struct pkt	p;
	size_t		at;

	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	at = p.len - 2 - 6 - strlen("a.example.test") - 2;
	set16(&p, at, (unsigned)(p.len - at - 2 + 1));
	ck_assert_int_eq(parse_pkt(&p), -1);
	set16(&p, at, 0xffff);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* After a good record, too. */
	answer(&p, RESP, 2);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	at = put_rr(&p, T_SRV, 300);
	put16(&p, 10);
	set16(&p, at, 200);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* The last record, of a type we skip. */
	answer(&p, RESP, 2);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	at = put_rr(&p, T_STASH, 300);
	put16(&p, 10);
	set16(&p, at, 3);
	ck_assert_int_eq(parse_pkt(&p), -1);
}
END_TEST

/* The target is the rest of the SRV rdata, no more and no less. */
START_TEST(parse_rdata_mismatch)
{
	struct pkt	p;
	size_t		at;

	/* rdlen 7: the target runs past the rdata. */
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5060, "a.example.test");
	at = p.len - 2 - 6 - strlen("a.example.test") - 2;
	set16(&p, at, 7);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* Bytes left in the rdata after the target. */
	answer(&p, RESP, 1);
	at = put_rr(&p, T_SRV, 300);
	put16(&p, 10);
	put16(&p, 0);
	put16(&p, 5060);
	put_name(&p, "a.example.test");
	put16(&p, 0);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), -1);
	/* No target at all. */
	answer(&p, RESP, 1);
	at = put_rr(&p, T_SRV, 300);
	put16(&p, 10);
	put16(&p, 0);
	put16(&p, 5060);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), -1);
}
END_TEST

START_TEST(parse_bad_labels)
{
	struct pkt	p;
	size_t		at;
	unsigned	i, k;

	/*
	 * Label types 01 and 10 (RFC 6891 extended, reserved), followed by
	 * as many bytes as the length would be if read as one.
	 */
	for (k = 0x41; k <= 0x81; k += 0x40) {
		answer(&p, RESP, 1);
		at = put_rr(&p, T_SRV, 300);
		put16(&p, 10);
		put16(&p, 0);
		put16(&p, 5060);
		put8(&p, k);
		for (i = 0; i < k; i++)
			put8(&p, 'a');
		put8(&p, 0);
		end_rr(&p, at);
		ck_assert_int_eq(parse_pkt(&p), -1);
	}
	/* A name of 5 labels of 63: longer than 255. */
	answer(&p, RESP, 1);
	at = put_rr(&p, T_SRV, 300);
	put16(&p, 10);
	put16(&p, 0);
	put16(&p, 5060);
	for (i = 0; i < 5; i++) {
		put8(&p, 63);
		for (k = 0; k < 63; k++)
			put8(&p, 'x');
	}
	put8(&p, 0);
	end_rr(&p, at);
	ck_assert_int_eq(parse_pkt(&p), -1);
}
END_TEST

/* "." and port 0 are records too; what they mean is the resolver's. */
START_TEST(parse_dot_and_port_0)
{
	struct pkt	p;

	answer(&p, RESP, 2);
	put_srv(&p, 300, 0, 0, 0, "");
	put_srv(&p, 300, 10, 0, 0, "a.example.test");
	ck_assert_int_eq(parse_pkt(&p), 2);
	ck_srv(0, 0, 0, 0, "");
	ck_srv(1, 10, 0, 0, "a.example.test");
}
END_TEST

START_TEST(name_bounds)
{
	unsigned char	 m[] = { 3, 'a', 'b', 'c', 0, 0xc0, 0 };
	char		 out[8];

	ck_assert_int_eq(resolver_dns_name(m, sizeof(m), 0, out, sizeof(out)),
	    5);
	ck_assert_str_eq(out, "abc");
	/* The root name. */
	ck_assert_int_eq(resolver_dns_name(m, sizeof(m), 4, out, sizeof(out)),
	    5);
	ck_assert_str_eq(out, "");
	/* A pointer: the offset past it, not past where it led. */
	ck_assert_int_eq(resolver_dns_name(m, sizeof(m), 5, out, sizeof(out)),
	    7);
	ck_assert_str_eq(out, "abc");
	/* Too long for out; off at or past the end. */
	ck_assert_int_eq(resolver_dns_name(m, sizeof(m), 0, out, 4), -1);
	ck_assert_int_eq(resolver_dns_name(m, sizeof(m), 7, out, 8), -1);
	ck_assert_int_eq(resolver_dns_name(m, 6, 5, out, 8), -1);
	ck_assert_int_eq(resolver_dns_name(m, 3, 0, out, 8), -1);
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

START_TEST(cache_ttl)
{
	struct tp_addr		 a[2] = { addr("192.0.2.1", 5070),
				    addr("2001:db8::1", 5070) };
	const struct tp_addr	*got;
	unsigned		 n;

	resolver_cache_put("h.test", 5070, a, 2, 30);
	ck_assert_uint_eq(resolver_cache_size(), 1);
	got = resolver_cache_get("h.test", 5070, &n);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(n, 2);
	ck_addr(&got[0], "192.0.2.1", 5070);
	ck_addr(&got[1], "2001:db8::1", 5070);
	fake_advance(29999);
	ck_assert_ptr_nonnull(resolver_cache_get("h.test", 5070, &n));
	fake_advance(1);
	ck_assert_ptr_null(resolver_cache_get("h.test", 5070, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(resolver_cache_size(), 0);
}
END_TEST

START_TEST(cache_keys)
{
	struct tp_addr		 a = addr("192.0.2.1", 5060);
	struct tp_addr		 b = addr("192.0.2.2", 5070);
	const struct tp_addr	*got;
	unsigned		 n;

	resolver_cache_put("h.test", 0, &a, 1, 60);
	resolver_cache_put("h.test", 5070, &b, 1, 60);
	got = resolver_cache_get("h.test", 0, &n);
	ck_assert_ptr_nonnull(got);
	ck_addr(&got[0], "192.0.2.1", 5060);
	got = resolver_cache_get("h.test", 5070, &n);
	ck_assert_ptr_nonnull(got);
	ck_addr(&got[0], "192.0.2.2", 5070);
	ck_assert_ptr_null(resolver_cache_get("h.test", 5060, &n));
	ck_assert_ptr_null(resolver_cache_get("g.test", 0, &n));
	ck_assert_ptr_null(resolver_cache_get("h.tes", 0, &n));
}
END_TEST

/* Nothing, or nothing for long: not cached. */
START_TEST(cache_negative)
{
	struct tp_addr	a = addr("192.0.2.1", 5060);
	unsigned	n;

	resolver_cache_put("h.test", 0, &a, 0, 60);
	resolver_cache_put("g.test", 0, &a, 1, 0);
	ck_assert_uint_eq(resolver_cache_size(), 0);
	ck_assert_ptr_null(resolver_cache_get("h.test", 0, &n));
	ck_assert_ptr_null(resolver_cache_get("g.test", 0, &n));
}
END_TEST

/* Full, it takes nothing new until entries expire. */
START_TEST(cache_cap)
{
	struct tp_addr	a = addr("192.0.2.1", 5060);
	char		h[32];
	unsigned	i, n;

	for (i = 0; i < RESOLVER_CACHE_MAX; i++) {
		snprintf(h, sizeof(h), "h%u.test", i);
		resolver_cache_put(h, 0, &a, 1, 10 + i % 2);
	}
	ck_assert_uint_eq(resolver_cache_size(), RESOLVER_CACHE_MAX);
	resolver_cache_put("late.test", 0, &a, 1, 60);
	ck_assert_uint_eq(resolver_cache_size(), RESOLVER_CACHE_MAX);
	ck_assert_ptr_null(resolver_cache_get("late.test", 0, &n));
	ck_assert_ptr_nonnull(resolver_cache_get("h0.test", 0, &n));
	/* Half expire; a miss sweeps them. */
	fake_advance(10000);
	ck_assert_ptr_null(resolver_cache_get("none.test", 0, &n));
	ck_assert_uint_eq(resolver_cache_size(), RESOLVER_CACHE_MAX / 2);
	resolver_cache_put("late.test", 0, &a, 1, 60);
	ck_assert_ptr_nonnull(resolver_cache_get("late.test", 0, &n));
	ck_assert_ptr_nonnull(resolver_cache_get("h1.test", 0, &n));
	ck_assert_ptr_null(resolver_cache_get("h2.test", 0, &n));
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
};

#define MAX_QUERIES	64

static struct query	queries[MAX_QUERIES];
static unsigned		nq;
/* A and AAAA records the responder knows: "name", "address". */
static const char	*zone[32][2];
static unsigned		nzone;

struct result {
	unsigned	calls;
	struct tp_addr	addrs[RESOLVE_MAX_ADDRS];
	unsigned	n;
	char		err[128];
};

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

/* Answer an A or AAAA query from the zone; unknown names: NXDOMAIN. */
static void
answer_address(const struct query *q)
{
	struct pkt	p;
	unsigned	i, an = 0;
	bool		known = false;
	int		af = q->type == T_A ? AF_INET : AF_INET6;

	put_header(&p, q->id, RESP, 1, 0);
	memcpy(p.b + p.len, q->q, q->qlen);
	p.len += q->qlen;
	for (i = 0; i < nzone; i++) {
		unsigned char	raw[16];
		size_t		at, k;

		if (strcasecmp(zone[i][0], q->name) != 0)
			continue;
		known = true;
		if (inet_pton(af, zone[i][1], raw) != 1)
			continue;
		at = put_rr(&p, q->type, 30);
		for (k = 0; k < (af == AF_INET ? 4u : 16u); k++)
			put8(&p, raw[k]);
		end_rr(&p, at);
		an++;
	}
	set16(&p, 6, an);
	if (!known)
		set16(&p, 2, RESP_NX);
	ck_assert_int_eq(sendto(dnsfd, p.b, p.len, 0,
	    (const struct sockaddr *)&q->from, q->fromlen), (ssize_t)p.len);
}

/* Take what came to the responder; answer A and AAAA, keep SRV. */
static void
serve(void)
{
	unsigned char	b[512];
	ssize_t		n;

	while ((n = recv(dnsfd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK)) > 0) {
		struct query	*q = &queries[nq];
		size_t		 off = 12, w = 0;

		ck_assert_uint_lt(nq, MAX_QUERIES);
		q->fromlen = sizeof(q->from);
		n = recvfrom(dnsfd, b, sizeof(b), 0,
		    (struct sockaddr *)&q->from, &q->fromlen);
		ck_assert_int_ge(n, 17);
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
		if (q->type == T_A || q->type == T_AAAA)
			answer_address(q);
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

/* The i-th SRV query (from 0); waits for it. */
static const struct query *
srv_query(unsigned i)
{
	unsigned	t, k, seen;

	for (t = 0; t < 400; t++) {
		for (k = 0, seen = 0; k < nq; k++)
			if (queries[k].type == T_SRV && seen++ == i)
				return (&queries[k]);
		pump(NULL, 5);
	}
	ck_abort_msg("no SRV query %u", i);
	return (NULL);
}

/* Send p to whoever asked q, with q's id. */
static void
reply(const struct query *q, struct pkt *p)
{
	set16(p, 0, q->id);
	ck_assert_int_eq(sendto(dnsfd, p->b, p->len, 0,
	    (const struct sockaddr *)&q->from, q->fromlen), (ssize_t)p->len);
}

static void
setup(void)
{
	struct resolver_settings	set;
	socklen_t			len = sizeof(dnsaddr);

	log_init(true, LOG_LVL_WARNING);
	fake_reset();
	nq = 0;
	nzone = 0;
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	dnsfd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(dnsfd, 0);
	memset(&dnsaddr, 0, sizeof(dnsaddr));
	dnsaddr.sin_family = AF_INET;
	dnsaddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(dnsfd, (struct sockaddr *)&dnsaddr,
	    sizeof(dnsaddr)), 0);
	ck_assert_int_eq(getsockname(dnsfd, (struct sockaddr *)&dnsaddr,
	    &len), 0);
	memset(&set, 0, sizeof(set));
	memcpy(&set.ns[0].ss, &dnsaddr, sizeof(dnsaddr));
	set.ns[0].len = sizeof(dnsaddr);
	set.nns = 1;
	set.timeout_ms = 500;
	resolver_init(base, &set);
}

static void
teardown(void)
{
	resolver_shutdown();
	event_base_free(base);
	close(dnsfd);
	dnsfd = -1;
	fake_reset();
}

START_TEST(lookup_numeric)
{
	struct result	res = { 0 };

	ck_assert_ptr_null(resolver_lookup("192.0.2.1", 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "192.0.2.1", 5060);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup("[2001:db8::1]", 5070, resolved,
	    &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_addr(&res.addrs[0], "2001:db8::1", 5070);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup("2001:db8::2", 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	ck_addr(&res.addrs[0], "2001:db8::2", 5060);
	pump(NULL, 50);
	ck_assert_uint_eq(nq, 0);
}
END_TEST

/* A port: A/AAAA only, no SRV (RFC 3263 4.2). */
START_TEST(lookup_port_skips_srv)
{
	struct result	res = { 0 };

	zone_add("host.test", "127.0.0.7");
	ck_assert_ptr_nonnull(resolver_lookup("host.test", 5070, resolved,
	    &res));
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "127.0.0.7", 5070);
	ck_assert_uint_ge(count_queries("host.test", T_A), 1);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 0);
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
	answer(&p, RESP, 4);
	put_srv(&p, 300, 20, 0, 5002, "b.test");
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	put_srv(&p, 300, 5, 0, 0, "a.test");		/* port 0: unusable */
	put_srv(&p, 300, 30, 0, 5003, "c.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 4);
	ck_addr(&res.addrs[0], "127.0.0.11", 5001);
	ck_addr(&res.addrs[1], "127.0.0.12", 5002);
	ck_addr(&res.addrs[2], "127.0.0.13", 5003);
	ck_addr(&res.addrs[3], "127.0.0.14", 5003);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 1);
	ck_assert_uint_eq(count_queries(HOST, 0), 0);
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
	const struct query	*q;
	struct pkt		 p;
	unsigned		 i, k;

	for (i = 0; i < 3; i++)
		for (k = 0; k < 8; k++)
			zone_add(names[i], ips[i][k]);
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	answer(&p, RESP, 3);
	put_srv(&p, 300, 30, 0, 5003, "c.test");
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	put_srv(&p, 300, 20, 0, 5002, "b.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, RESOLVE_MAX_ADDRS);
	for (i = 0; i < 2; i++)
		for (k = 0; k < 8; k++)
			ck_addr(&res.addrs[i * 8 + k], ips[i][k], 5001 + i);
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
	ck_assert_uint_eq(res.n, 3);
	ck_addr(&res.addrs[0], "127.0.0.1", 5001);
	ck_addr(&res.addrs[1], "127.0.0.1", 5002);
	ck_addr(&res.addrs[2], "127.0.0.5", 5003);
	pump(NULL, 30);
	ck_assert_uint_eq(res.calls, 1);
}
END_TEST

/* No SRV: A/AAAA for the host itself, port 5060. */
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
	ck_addr(&res.addrs[0], "127.0.0.20", 5060);
	ck_assert_uint_ge(count_queries(HOST, T_A), 1);
}
END_TEST

/* Unanswered: asked again after the timeout, then A/AAAA. */
START_TEST(lookup_srv_timeout)
{
	struct result		 res = { 0 };
	const struct query	*q1, *q2;

	zone_add(HOST, "127.0.0.20");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q1 = srv_query(0);
	fake_advance(499);
	pump(NULL, 30);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 1);
	fake_advance(1);
	q2 = srv_query(1);
	ck_assert_uint_eq(q2->id, q1->id);
	ck_assert_uint_eq(count_queries(HOST, 0), 0);
	fake_advance(500);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "127.0.0.20", 5060);
	ck_assert_uint_eq(count_queries(NULL, T_SRV), 2);
}
END_TEST

/*
 * A malformed answer, or one with another id, is dropped: the lookup goes
 * on waiting for a good one, and takes nothing from the bad one.
 */
START_TEST(lookup_srv_bad_answer_dropped)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p, bad;

	zone_add("a.test", "127.0.0.11");
	zone_add("b.test", "127.0.0.12");
	zone_add(HOST, "127.0.0.20");
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	q = srv_query(0);
	/* Five answers said, one there. */
	answer(&bad, RESP, 5);
	put_srv(&bad, 300, 10, 0, 5009, "b.test");
	reply(q, &bad);
	/* Another id. */
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5008, "b.test");
	set16(&p, 0, q->id ^ 1);
	ck_assert_int_eq(sendto(dnsfd, p.b, p.len, 0,
	    (const struct sockaddr *)&q->from, q->fromlen), (ssize_t)p.len);
	pump(&res, 100);
	ck_assert_uint_eq(res.calls, 0);
	ck_assert_uint_eq(count_queries(NULL, T_A) +
	    count_queries(NULL, T_AAAA), 0);
	answer(&p, RESP, 1);
	put_srv(&p, 300, 10, 0, 5001, "a.test");
	reply(q, &p);
	pump(&res, 2000);
	ck_assert_uint_eq(res.calls, 1);
	ck_assert_uint_eq(res.n, 1);
	ck_addr(&res.addrs[0], "127.0.0.11", 5001);
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
	ck_assert_uint_eq(count_queries(HOST, 0), 0);
}
END_TEST

/* Kept for the smallest SRV TTL on the fake clock. */
START_TEST(lookup_cached)
{
	struct result		 res = { 0 };
	const struct query	*q;
	struct pkt		 p;

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
	fake_advance(29999);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_null(resolver_lookup(HOST, 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 1);
	pump(NULL, 20);
	ck_assert_uint_eq(nq, 0);
	fake_advance(1);
	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 0);
	srv_query(0);
}
END_TEST

/* No address: told, not cached. */
START_TEST(lookup_negative_not_cached)
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
	ck_assert_ptr_nonnull(resolver_lookup(HOST, 0, resolved, &res));
	ck_assert_uint_eq(res.calls, 0);
	srv_query(0);
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
	resolver_cancel(NULL);
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

	tc = check_case("parse");
	check_add(tc, parse_one, parse_compressed, parse_several,
	    parse_more_than_max, parse_other_types, parse_rcode,
	    parse_truncated, parse_tc, parse_pointer_loop,
	    parse_count_too_large, parse_rdlen_past_end, parse_rdata_mismatch,
	    parse_bad_labels, parse_dot_and_port_0, name_bounds, parse_ns);
	tc = check_case("order");
	check_add(tc, order_priority, order_draws, order_distribution);
	tc = check_fixed("cache", setup, teardown);
	check_add(tc, cache_ttl, cache_keys, cache_negative, cache_cap);
	tc = check_fixed("lookup", setup, teardown);
	tcase_set_timeout(tc, 20);
	check_add(tc, lookup_numeric, lookup_port_skips_srv,
	    lookup_hosts_file_at_once, lookup_srv_order, lookup_address_cap,
	    lookup_srv_targets_at_once, lookup_srv_nxdomain, lookup_srv_timeout,
	    lookup_srv_bad_answer_dropped, lookup_srv_dot, lookup_cached,
	    lookup_negative_not_cached, lookup_cancel);
	return (check_run("resolver"));
}
