/*
 * Unit tests: the location service (location.c) on the fake clock, in
 * memory: bindings by AOR, matching (RFC 5626 instance or URI),
 * replacement, removal, expiry in order, counts per source address.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_util.h"
#include "fake.h"
#include "location.h"
#include "log.h"
#include "tp.h"

static struct tp_addr	src, src2;

static void
loc_setup(void)
{
	fake_reset();
	location_init(NULL);
	tp_addr_set(&src, S("198.51.100.9"), 40000);
	tp_addr_set(&src2, S("2001:db8::9"), 40000);
}

static void
loc_teardown(void)
{
	location_shutdown();
}

/* A binding_info for uri from src, expiring in expires_s. */
static struct binding_info
info(const char *uri, uint32_t expires_s, const struct tp_addr *from)
{
	struct binding_info	bi;

	memset(&bi, 0, sizeof(bi));
	bi.contact = S(uri);
	bi.callid = S("call-1");
	bi.cseq = 1;
	bi.expires_s = expires_s;
	bi.q = 1000;
	bi.received = from;
	bi.local = "127.0.0.1:5060";
	return (bi);
}

START_TEST(save_find_match)
{
	struct binding_info	 bi = info("sip:a@10.0.0.1", 600, &src);
	struct binding		*b1, *b2;
	struct aor		*a;

	ck_assert_ptr_null(location_find(S("alice@example.test")));
	bi.user_agent = S("phone/1");
	bi.path = S("<sip:edge;lr>");
	b1 = location_save(S("alice@example.test"), NULL, &bi);
	ck_assert_str_eq(b1->contact, "sip:a@10.0.0.1");
	ck_assert_str_eq(b1->callid, "call-1");
	ck_assert_str_eq(b1->user_agent, "phone/1");
	ck_assert_str_eq(b1->path, "<sip:edge;lr>");
	ck_assert_str_eq(b1->local, "127.0.0.1:5060");
	ck_assert_ptr_null(b1->instance);
	bi = info("sip:a@10.0.0.2", 600, &src);
	b2 = location_save(S("alice@example.test"), NULL, &bi);
	ck_assert_ptr_nonnull(a = location_find(S("alice@example.test")));
	ck_assert_uint_eq(a->n, 2);
	ck_assert_str_eq(a->key, "alice@example.test");
	ck_assert_ptr_eq(b1->aor, a);
	ck_assert_uint_eq(location_count(), 2);
	ck_assert_uint_eq(location_aors(), 1);
	/* Keys are exact: another domain or case is another AOR. */
	ck_assert_ptr_null(location_find(S("alice@example.org")));
	ck_assert_ptr_null(location_find(S("Alice@example.test")));
	/* Matched by URI when no instance is given. */
	bi = info("sip:a@10.0.0.1", 600, &src);
	ck_assert_ptr_eq(location_match(a, &bi), b1);
	bi = info("sip:a@10.0.0.2", 600, &src);
	ck_assert_ptr_eq(location_match(a, &bi), b2);
	bi = info("sip:a@10.0.0.3", 600, &src);
	ck_assert_ptr_null(location_match(a, &bi));
	ck_assert_ptr_null(location_match(NULL, &bi));
}
END_TEST

/* RFC 5626: instance and reg-id name a binding, whatever its URI. */
START_TEST(match_by_instance)
{
	struct binding_info	 bi = info("sip:a@10.0.0.1", 600, &src);
	struct binding		*b, *nb;
	struct aor		*a;

	bi.instance = S("\"<urn:uuid:1>\"");
	bi.reg_id = 1;
	b = location_save(S("alice@example.test"), NULL, &bi);
	a = location_find(S("alice@example.test"));
	bi.contact = S("sip:a@10.9.9.9");	/* moved: still the same one */
	ck_assert_ptr_eq(location_match(a, &bi), b);
	bi.reg_id = 2;				/* another flow */
	ck_assert_ptr_null(location_match(a, &bi));
	bi = info("sip:a@10.0.0.1", 600, &src);	/* no instance: no match */
	ck_assert_ptr_null(location_match(a, &bi));
	/* Replacing keeps one binding, with the new URI. */
	bi.instance = S("\"<urn:uuid:1>\"");
	bi.reg_id = 1;
	bi.contact = S("sip:a@10.9.9.9");
	nb = location_save(S("alice@example.test"), location_match(a, &bi),
	    &bi);
	ck_assert_uint_eq(a->n, 1);
	ck_assert_ptr_eq(a->b, nb);
	ck_assert_str_eq(nb->contact, "sip:a@10.9.9.9");
	ck_assert_str_eq(nb->instance, "\"<urn:uuid:1>\"");
	ck_assert_uint_eq(location_count(), 1);
}
END_TEST

/* Bindings per source address: any port, kept through replace/remove. */
START_TEST(counts_per_source)
{
	struct binding_info	 bi = info("sip:a@10.0.0.1", 600, &src);
	struct tp_addr		 other_port;
	struct binding		*b;

	tp_addr_set(&other_port, S("198.51.100.9"), 5060);
	b = location_save(S("alice@example.test"), NULL, &bi);
	bi = info("sip:b@10.0.0.1", 600, &other_port);
	location_save(S("bob@example.test"), NULL, &bi);
	bi = info("sip:c@10.0.0.1", 600, &src2);
	location_save(S("carol@example.test"), NULL, &bi);
	ck_assert_uint_eq(location_from_source(&src), 2);
	ck_assert_uint_eq(location_from_source(&other_port), 2);
	ck_assert_uint_eq(location_from_source(&src2), 1);
	/* A refresh from another address moves the count. */
	bi = info("sip:a@10.0.0.1", 600, &src2);
	b = location_save(S("alice@example.test"), b, &bi);
	ck_assert_uint_eq(location_from_source(&src), 1);
	ck_assert_uint_eq(location_from_source(&src2), 2);
	location_remove(b);
	ck_assert_uint_eq(location_from_source(&src2), 1);
	/* The last binding gone, the AOR goes too. */
	ck_assert_ptr_null(location_find(S("alice@example.test")));
	ck_assert_uint_eq(location_aors(), 2);
	ck_assert_uint_eq(location_count(), 2);
}
END_TEST

static void
count_binding(void *arg, const struct binding *b)
{
	unsigned	*n = arg;

	ck_assert_ptr_nonnull(b->aor);
	(*n)++;
}

START_TEST(foreach_every_binding)
{
	struct binding_info	bi;
	char			key[32], uri[32];
	unsigned		i, n = 0;

	location_foreach(count_binding, &n);
	ck_assert_uint_eq(n, 0);
	for (i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "u%u@example.test", i % 100);
		snprintf(uri, sizeof(uri), "sip:u@10.2.0.%u", i);
		bi = info(uri, 600, &src);
		location_save(S(key), NULL, &bi);
	}
	location_foreach(count_binding, &n);
	ck_assert_uint_eq(n, 300);
	ck_assert_uint_eq(location_aors(), 100);
}
END_TEST

/* Seconds left round up; a binding leaves when its time is over. */
START_TEST(expires_on_the_clock)
{
	struct binding_info	 bi = info("sip:a@10.0.0.1", 60, &src);
	struct binding		*b;

	b = location_save(S("alice@example.test"), NULL, &bi);
	ck_assert_uint_eq(binding_expires_in(b), 60);
	fake_advance(500);
	ck_assert_uint_eq(binding_expires_in(b), 60);	/* 59.5 s */
	fake_advance(58600);
	ck_assert_uint_eq(binding_expires_in(b), 1);	/* 0.9 s */
	fake_advance(899);
	ck_assert_uint_eq(location_count(), 1);
	fake_advance(1);
	ck_assert_uint_eq(location_count(), 0);
	ck_assert_ptr_null(location_find(S("alice@example.test")));
	ck_assert_uint_eq(location_from_source(&src), 0);
}
END_TEST

/* Many AORs with scattered expiries leave in expiry order (the heap). */
START_TEST(heap_expires_in_order)
{
	struct binding_info	bi;
	char			key[32], uri[32];
	unsigned		i, left;

	memset(&bi, 0, sizeof(bi));
	bi.callid = S("x");
	bi.received = &src;
	for (i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "u%u@example.test", i);
		snprintf(uri, sizeof(uri), "sip:u%u@10.1.0.1", i);
		bi.contact = S(uri);
		bi.expires_s = 1 + (i * 7919) % 500;
		location_save(S(key), NULL, &bi);
	}
	ck_assert_uint_eq(location_count(), 500);
	for (left = 500; left > 0; left--) {
		fake_advance(1000);
		ck_assert_uint_eq(location_count(), left - 1);
	}
}
END_TEST

START_TEST(addr_format)
{
	char		out[TP_HOSTPORT_LEN];
	struct tp_addr	tcp;

	location_addr_format(&src, out, sizeof(out));
	ck_assert_str_eq(out, "198.51.100.9:40000");
	location_addr_format(&src2, out, sizeof(out));
	ck_assert_str_eq(out, "[2001:db8::9]:40000");
	tcp = src;
	tcp.proto = TP_TCP;
	location_addr_format(&tcp, out, sizeof(out));
	ck_assert_str_eq(out, "tcp:198.51.100.9:40000");
}
END_TEST

/* Behind a NAT: another address, or over UDP another port. */
START_TEST(nat_detection)
{
	struct tp_addr	tcp;
	struct binding	*b;
	struct binding_info bi;

	/* The source itself (198.51.100.9:40000): no NAT. */
	ck_assert(!location_nat(S("sip:a@198.51.100.9:40000"), &src));
	ck_assert(location_nat(S("sip:a@192.168.1.2:40000"), &src));
	ck_assert(location_nat(S("sip:a@198.51.100.9:5062"), &src));
	/* No port is 5060. */
	ck_assert(location_nat(S("sip:a@198.51.100.9"), &src));
	/* A domain name says nothing. */
	ck_assert(!location_nat(S("sip:a@phone.example.net:5062"), &src));
	ck_assert(!location_nat(S("not a uri"), &src));
	ck_assert(location_nat_host(S("[2001:db8::1]"), 40000, &src2));
	ck_assert(!location_nat_host(S("[2001:db8::9]"), 40000, &src2));
	/* Over a stream the port is the connection's: address only. */
	tcp = src;
	tcp.proto = TP_TCP;
	ck_assert(!location_nat(S("sip:a@198.51.100.9:5060"), &tcp));
	ck_assert(location_nat(S("sip:a@10.0.0.1:5060"), &tcp));
	/* Saved with the binding, found again by its id. */
	bi = info("sip:a@10.0.0.1:5060", 60, &src);
	bi.nat = true;
	b = location_save(S("a@example.test"), NULL, &bi);
	ck_assert(b->nat);
	ck_assert_ptr_eq(location_find_id(S("a@example.test"), b->id), b);
	ck_assert_ptr_null(location_find_id(S("a@example.test"), b->id + 1));
}
END_TEST

/*
 * location_replace() (registrar.backend redis): the AOR becomes what
 * Redis holds.  An unchanged binding is kept (its keepalive state too),
 * only its expiry moves; a changed one is replaced; one Redis no longer
 * has goes; an empty list removes the AOR.
 */
START_TEST(replace_keeps_unchanged)
{
	struct binding_info	 bis[2];
	struct binding		*a1, *b1, *x;
	struct aor		*a;
	uint64_t		 id_a;

	bis[0] = info("sip:a@10.0.0.1", 600, &src);
	bis[1] = info("sip:b@10.0.0.2", 600, &src);
	bis[1].node = S("node-b");
	location_replace(S("al@example.test"), bis, 2, 7);
	ck_assert_ptr_nonnull(a = location_find(S("al@example.test")));
	ck_assert_uint_eq(a->n, 2);
	ck_assert_uint_eq(a->gen, 7);
	a1 = location_match(a, &bis[0]);
	b1 = location_match(a, &bis[1]);
	ck_assert_ptr_null(a1->node);
	ck_assert_str_eq(b1->node, "node-b");
	a1->ping_misses = 2;		/* natping.c's state */
	id_a = a1->id;

	fake_advance(10000);
	bis[0].expires_s = 900;		/* a: only its expiry moved */
	bis[1].cseq = 2;		/* b: refreshed */
	location_replace(S("al@example.test"), bis, 2, 8);
	x = location_match(location_find(S("al@example.test")), &bis[0]);
	ck_assert_ptr_eq(x, a1);
	ck_assert_uint_eq(x->id, id_a);
	ck_assert_uint_eq(x->ping_misses, 2);
	ck_assert_uint_eq(binding_expires_in(x), 900);
	x = location_match(location_find(S("al@example.test")), &bis[1]);
	ck_assert_uint_eq(x->cseq, 2);
	ck_assert_uint_eq(location_count(), 2);

	/* b is gone from Redis: gone here; a expires on the new time. */
	location_replace(S("al@example.test"), bis, 1, 9);
	ck_assert_uint_eq(location_count(), 1);
	ck_assert_ptr_null(location_match(location_find(S("al@example.test")),
	    &bis[1]));
	fake_advance(899000);
	ck_assert_uint_eq(location_count(), 1);
	fake_advance(1000);
	ck_assert_uint_eq(location_count(), 0);

	location_replace(S("al@example.test"), bis, 1, 10);
	location_replace(S("al@example.test"), bis, 0, 11);
	ck_assert_ptr_null(location_find(S("al@example.test")));
	ck_assert_uint_eq(location_from_source(&src), 0);
}
END_TEST

/* location_sweep(): every AOR not stamped by the last load goes. */
START_TEST(sweep_unstamped)
{
	struct binding_info	bi = info("sip:a@10.0.0.1", 600, &src);
	int			i;
	char			key[32];

	for (i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "u%d@example.test", i);
		location_replace(S(key), &bi, 1, i % 2 ? 3 : 4);
	}
	(void)location_save(S("local@example.test"), NULL, &bi);
	ck_assert_uint_eq(location_aors(), 6);
	location_sweep(4);
	ck_assert_uint_eq(location_aors(), 3);
	ck_assert_ptr_nonnull(location_find(S("u0@example.test")));
	ck_assert_ptr_nonnull(location_find(S("u4@example.test")));
	ck_assert_ptr_null(location_find(S("u1@example.test")));
	ck_assert_ptr_null(location_find(S("local@example.test")));
}
END_TEST

int
main(void)
{
	TCase	*tc = check_fixed("location", loc_setup, loc_teardown);

	sipmsg_init();
	log_init(true, LOG_LVL_WARNING);
	check_add(tc, save_find_match, match_by_instance, counts_per_source,
	    foreach_every_binding, expires_on_the_clock,
	    heap_expires_in_order, addr_format, nat_detection,
	    replace_keeps_unchanged, sweep_unstamped);
	return (check_run("location"));
}
