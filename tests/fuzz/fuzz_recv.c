/*
 * libFuzzer target over the whole receive path: one datagram in, parse,
 * validate, transaction match, routing, and every byte that would go out.
 * Time is the fake clock of tests/unit/fake.c, so each input runs to the
 * end of its transactions (timers fire) and nothing piles up; the fake
 * transport captures what would be sent, and each of those messages must
 * parse again and carry a Via.  Nothing touches the network.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <osipparser2/osip_parser.h>

#include "fake.h"
#include "log.h"
#include "proxy.h"
#include "route.h"
#include "txn.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct tp	tp;
static struct tp_addr	src;

static void
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
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct proxy_settings	 ps;
	struct txn_settings	 ts = { 500, 4000, 5000, 180000, 32000 };
	static char		*domains[] = { "example.test", "atlanta.com",
				    "biloxi.com", NULL };
	struct tp_sock		*s = &tp.socks[0];

	(void)argc;
	(void)argv;
	log_init(true, LOG_LVL_ERR);
	sipmsg_init();
	memset(&tp, 0, sizeof(tp));
	tp.nsocks = 1;
	s->fd = -1;
	s->family = AF_INET;
	s->port = 5060;
	s->tp = &tp;
	strcpy(s->ip, "127.0.0.1");
	strcpy(s->hostport, "127.0.0.1:5060");
	memset(&ps, 0, sizeof(ps));
	ps.domains = calloc(4, sizeof(char *));
	for (ps.ndomains = 0; domains[ps.ndomains] != NULL; ps.ndomains++)
		ps.domains[ps.ndomains] = strdup(domains[ps.ndomains]);
	ps.record_route = true;
	ps.cancel_ms = 5000;
	ps.max_message_size = 65535;
	add_route(&ps, "^bob$", "sip:127.0.0.1:5070", FORK_PARALLEL);
	add_route(&ps, "^0[0-9]*$", "sip:127.0.0.1:5071", FORK_SERIAL);
	add_route(&ps, NULL, "sip:carol@127.0.0.1:5072", FORK_PARALLEL);
	proxy_init(NULL, &tp, proxy_settings_take(&ps), &ts);
	tp_addr_set(&src, (struct slice){ "127.0.0.1", 9 }, 5099);
	return (0);
}

/* What the proxy sends must be a message that parses, with a Via. */
static void
check_sent(void)
{
	int	i;

	for (i = 0; i < fake_nsent(); i++) {
		const char	*p = fake_sent(i);
		struct sipmsg	*m;
		char		 err[160];
		int		 rc;

		if (p == NULL)
			continue;
		m = sipmsg_new(p, fake_sent_len(i));
		rc = sipmsg_parse(m, err, sizeof(err));
		/*
		 * A request we forward must be whole; a response we answer a
		 * broken request with may lack what that request lacked
		 * (400 Missing Call-ID), but never its Via.
		 */
		if (m->request ? rc != 0 : m->via.len == 0 ||
		    sipmsg_hdr(m, SH_VIA) == NULL) {
			fprintf(stderr, "sent a bad message (%d: %s):\n%.*s\n",
			    rc, err, (int)fake_sent_len(i), p);
			abort();
		}
		sipmsg_free(m);
	}
	fake_sent_clear();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	proxy_recv(NULL, &tp.socks[0], &src, (const char *)data, size);
	check_sent();
	/* Let every timer run out, so each input ends with an empty table. */
	fake_advance(200000);
	fake_advance(200000);
	check_sent();
	if (txn_count() != 0) {
		fprintf(stderr, "%u transactions left\n", txn_count());
		abort();
	}
	return (0);
}
