/*
 * Unit tests: rtpengine.c against a real rtpengine (Debian's
 * rtpengine-daemon, userspace forwarding, loopback, ephemeral ports), and
 * a silent or hand-answering UDP peer of the test's own for the cases a
 * real one will not play (no answer, a bad reply, a reply from elsewhere).
 * RTPENGINE names another binary.  A missing rtpengine fails the test.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "check_util.h"
#include "bencode.h"
#include "rtpengine.h"
#include "sdp.h"
#include "timer.h"

#define OFFER_SDP							\
	"v=0\r\n"							\
	"o=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\n"		\
	"s=-\r\n"							\
	"c=IN IP4 192.168.1.10\r\n"					\
	"t=0 0\r\n"							\
	"m=audio 49170 RTP/AVP 0\r\n"					\
	"a=rtpmap:0 PCMU/8000\r\n"

#define ANSWER_SDP							\
	"v=0\r\n"							\
	"o=bob 2808844564 2808844564 IN IP4 10.1.2.3\r\n"		\
	"s=-\r\n"							\
	"c=IN IP4 10.1.2.3\r\n"						\
	"t=0 0\r\n"							\
	"m=audio 3456 RTP/AVP 0\r\n"					\
	"a=rtpmap:0 PCMU/8000\r\n"

struct rtpe_proc {
	pid_t		 pid;
	uint16_t	 ng;		/* its control port */
	uint16_t	 min, max;	/* its media ports */
};

static struct event_base	*base;
static struct media_settings	 ms;

/* A result kept past its callback. */
struct got {
	bool		 done;
	int		 calls;
	enum rtpe_status status;
	int		 instance;
	char		 sdp[2048];
	char		 reason[256];
	bool		 has_tag;	/* query: the from-tag in "tags" */
	uint64_t	 at_ms;
};

static uint64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* A UDP port free now on 127.0.0.1; keep: the socket stays bound. */
static uint16_t
udp_port(int *keep)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	if (keep != NULL)
		*keep = fd;
	else
		close(fd);
	return (ntohs(sin.sin_port));
}

/* A blocking ping of our own: does the ng port answer within ms? */
static bool
ng_ping(uint16_t port, int ms_wait)
{
	struct sockaddr_in	sin;
	struct pollfd		pfd;
	char			buf[128];
	ssize_t			n;
	int			fd;
	bool			ok = false;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	sendto(fd, "t1 d7:command4:pinge", 20, 0, (struct sockaddr *)&sin,
	    sizeof(sin));
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, ms_wait) == 1 &&
	    (n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[n] = '\0';
		ok = strstr(buf, "pong") != NULL;
	}
	close(fd);
	return (ok);
}

/* Starts rtpengine on p->ng (a free port when 0); fails the test if not. */
static void
rtpe_spawn(struct rtpe_proc *p)
{
	const char	*bin = getenv("RTPENGINE") ? getenv("RTPENGINE") :
			    "/usr/bin/rtpengine";
	char		 ng[64], pmin[32], pmax[32];
	uint64_t	 until;
	int		 st, fd;

	if (p->ng == 0)
		p->ng = udp_port(NULL);
	if (p->min == 0) {	/* below the ephemeral ports (32768-) */
		p->min = (uint16_t)(20000 + (getpid() % 600) * 20);
		p->max = (uint16_t)(p->min + 19);
	}
	ck_assert_msg(access(bin, X_OK) == 0, "%s: %s (install "
	    "rtpengine-daemon: tools/install-deps)", bin, strerror(errno));
	snprintf(ng, sizeof(ng), "--listen-ng=127.0.0.1:%u", p->ng);
	snprintf(pmin, sizeof(pmin), "--port-min=%u", p->min);
	snprintf(pmax, sizeof(pmax), "--port-max=%u", p->max);
	if ((p->pid = fork()) == 0) {
		fd = open(getenv("RTPENGINE_LOG") ? getenv("RTPENGINE_LOG") :
		    "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--config-file=none", "--foreground",
		    "--log-stderr", "--table=-1", "--no-fallback",
		    "--interface=127.0.0.1", ng, pmin, pmax,
		    "--delete-delay=0", "--log-level=6", "--num-threads=1",
		    (char *)NULL);
		_exit(127);
	}
	ck_assert_int_gt(p->pid, 0);
	until = now_ms() + 5000;
	while (!ng_ping(p->ng, 100)) {
		ck_assert_msg(waitpid(p->pid, &st, WNOHANG) == 0,
		    "rtpengine exited at once (status %d)", st);
		ck_assert_msg(now_ms() < until, "rtpengine did not answer a "
		    "ping within 5 s");
	}
}

static void
rtpe_kill(struct rtpe_proc *p)
{
	int	st;

	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	p->pid = 0;
}

static void
add_instance(uint16_t port, unsigned weight)
{
	char	uri[64], err[128];

	snprintf(uri, sizeof(uri), "udp:127.0.0.1:%u", port);
	ms.inst[ms.ninst].uri = strdup(uri);
	ck_assert_int_eq(rtpengine_parse_uri(uri, &ms.inst[ms.ninst].addr,
	    err, sizeof(err)), 0);
	ms.inst[ms.ninst].weight = weight;
	ms.ninst++;
}

/* The client on a fresh loop with ms (timeout ms a try, tries). */
static void
client_start(uint32_t timeout_ms, unsigned tries, uint32_t probe_ms)
{
	char	err[128];

	ms.timeout_ms = timeout_ms;
	ms.tries = tries;
	ms.probe_interval_ms = probe_ms;
	ck_assert_int_eq(rtpengine_configure(&ms, err, sizeof(err)), 0);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(rtpengine_start(base, probe_ms > 0, err,
	    sizeof(err)), 0);
}

static void
client_stop(void)
{
	unsigned	i;

	rtpengine_stop();
	if (base != NULL)
		event_base_free(base);
	base = NULL;
	for (i = 0; i < ms.ninst; i++)
		free(ms.inst[i].uri);
	memset(&ms, 0, sizeof(ms));
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until *done or ms have passed. */
static void
run_until(const bool *done, int ms_max)
{
	struct event	*ev = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval	 tv = { 0, 20000 };
	uint64_t	 until = now_ms() + (uint64_t)ms_max;

	event_add(ev, &tv);
	while ((done == NULL || !*done) && now_ms() < until)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
}

static void
on_result(void *arg, const struct rtpe_result *res)
{
	struct got		*g = arg;
	const struct bencode	*tags;

	g->done = true;
	g->calls++;
	g->at_ms = now_ms();
	g->status = res->status;
	g->instance = res->instance;
	ck_assert_ptr_nonnull(res->why);
	snprintf(g->sdp, sizeof(g->sdp), "%.*s", (int)res->sdp.len,
	    res->sdp.p);
	snprintf(g->reason, sizeof(g->reason), "%.*s", (int)res->reason.len,
	    res->reason.p);
	if (res->doc != NULL && (tags = bencode_get(res->doc, res->reply,
	    "tags")) != NULL)
		g->has_tag = bencode_get(res->doc, tags, "ft-1") != NULL;
}

static void
send_req(enum rtpe_cmd cmd, const char *callid, const char *sdp,
    struct got *g)
{
	struct rtpe_request	 rq;
	char			 err[128];

	memset(&rq, 0, sizeof(rq));
	memset(g, 0, sizeof(*g));
	rq.cmd = cmd;
	rq.callid = S(callid);
	rq.from_tag = S("ft-1");
	if (cmd == RTPE_ANSWER)
		rq.to_tag = S("tt-1");
	if (sdp != NULL)
		rq.sdp = S(sdp);
	rq.flags = RTPE_REPLACE_ORIGIN | RTPE_REPLACE_SESS_CONN |
	    RTPE_ICE_REMOVE;
	ck_assert_ptr_nonnull(rtpengine_send(&rq, on_result, g, err,
	    sizeof(err)));
	ck_assert(!g->done);		/* never from inside the call */
}

/* The relayed SDP: rtpengine's address, a port in its range. */
static void
check_relayed(const struct got *g, const struct rtpe_proc *p)
{
	struct sdp	 sd;
	char		 err[128];

	ck_assert_msg(g->status == RTPE_OK, "status %s: %s",
	    rtpengine_status_name(g->status), g->reason);
	ck_assert_int_eq(sdp_parse(&sd, S(g->sdp), err, sizeof(err)), 0);
	ck_assert_slice_eq(sd.conn.addr, "127.0.0.1");
	ck_assert_slice_eq(sd.origin.addr, "127.0.0.1");	/* replaced */
	ck_assert_uint_eq(sd.nmedia, 1);
	ck_assert_msg(sd.media[0].port >= p->min && sd.media[0].port <=
	    p->max, "port %u not in %u..%u", sd.media[0].port, p->min,
	    p->max);
	ck_assert(!sdp_private(&sd));
}

START_TEST(offer_answer_query_delete)
{
	struct rtpe_proc	p = { 0, 0, 0, 0 };
	struct rtpe_stats	st;
	struct got		g;

	rtpe_spawn(&p);
	add_instance(p.ng, 1);
	client_start(500, 2, 0);

	send_req(RTPE_OFFER, "call-1@test", OFFER_SDP, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);
	ck_assert_int_eq(g.instance, 0);

	send_req(RTPE_ANSWER, "call-1@test", ANSWER_SDP, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);

	send_req(RTPE_QUERY, "call-1@test", NULL, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_OK);
	ck_assert_msg(g.has_tag, "query does not show the call's from-tag");

	send_req(RTPE_DELETE, "call-1@test", NULL, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_OK);

	/* Gone: rtpengine says it knows no such call. */
	send_req(RTPE_QUERY, "call-1@test", NULL, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_ERROR);
	ck_assert_msg(strlen(g.reason) > 0, "an error without a reason");

	/* An answer to a call it never saw: refused, with the reason. */
	send_req(RTPE_ANSWER, "nosuch@test", ANSWER_SDP, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_ERROR);
	ck_assert_int_eq(g.calls, 1);

	rtpengine_stats(&st);
	ck_assert_uint_eq(st.requests, 6);
	ck_assert_uint_eq(st.timeouts, 0);
	ck_assert_uint_eq(st.errors, 2);
	client_stop();
	rtpe_kill(&p);
}
END_TEST

/* A request the client cannot send says so at once, with no callback. */
START_TEST(bad_requests)
{
	struct rtpe_request	 rq;
	struct got		 g;
	char			 err[128];
	int			 dead;

	add_instance(udp_port(&dead), 1);
	client_start(100, 1, 0);
	memset(&rq, 0, sizeof(rq));
	memset(&g, 0, sizeof(g));
	rq.cmd = RTPE_OFFER;
	rq.callid = S("c");
	rq.from_tag = S("f");
	ck_assert_ptr_null(rtpengine_send(&rq, on_result, &g, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "sdp"));
	rq.cmd = RTPE_ANSWER;
	rq.sdp = S(OFFER_SDP);
	ck_assert_ptr_null(rtpengine_send(&rq, on_result, &g, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "to-tag"));
	rq.cmd = RTPE_PING;
	rq.instance = 1;
	ck_assert_ptr_null(rtpengine_send(&rq, on_result, &g, err,
	    sizeof(err)));
	run_until(NULL, 50);
	ck_assert(!g.done);
	client_stop();
	close(dead);
}
END_TEST

/*
 * First in the call's order: a port that never answers.  The offer tries
 * it rtpengine_tries times, marks it down and fails over to the real one;
 * the answer follows the call there.
 */
START_TEST(failover)
{
	struct rtpe_proc	 p = { 0, 0, 0, 0 };
	struct rtpe_stats	 st;
	struct got		 g;
	unsigned		 order[RTPE_MAX_INSTANCES];
	char			 callid[32], err[128];
	uint64_t		 t0;
	int			 dead, i;

	rtpe_spawn(&p);
	add_instance(udp_port(&dead), 1);
	add_instance(p.ng, 1);
	ck_assert_int_eq(rtpengine_configure(&ms, err, sizeof(err)), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(callid, sizeof(callid), "fo-%d@test", i);
		rtpengine_order(S(callid), order);
		if (order[0] == 0)
			break;
	}
	ck_assert_int_lt(i, 1000);
	client_start(150, 2, 0);
	ck_assert(rtpengine_is_up(0));

	t0 = now_ms();
	send_req(RTPE_OFFER, callid, OFFER_SDP, &g);
	run_until(&g.done, 5000);
	check_relayed(&g, &p);
	ck_assert_int_eq(g.instance, 1);
	/* Two tries of 150 ms on the dead one, then the answer: bounded. */
	ck_assert_msg(g.at_ms - t0 >= 290 && g.at_ms - t0 < 1000,
	    "took %llu ms", (unsigned long long)(g.at_ms - t0));
	ck_assert(!rtpengine_is_up(0));
	ck_assert(rtpengine_is_up(1));

	send_req(RTPE_ANSWER, callid, ANSWER_SDP, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);
	ck_assert_int_eq(g.instance, 1);

	/* The next call whose order starts with the dead one: no wait. */
	for (i++; i < 2000; i++) {
		snprintf(callid, sizeof(callid), "fo-%d@test", i);
		rtpengine_order(S(callid), order);
		if (order[0] == 0)
			break;
	}
	t0 = now_ms();
	send_req(RTPE_OFFER, callid, OFFER_SDP, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);
	ck_assert_uint_lt(g.at_ms - t0, 140);

	rtpengine_stats(&st);
	ck_assert_uint_eq(st.timeouts, 1);
	ck_assert_uint_eq(st.retransmissions, 1);
	client_stop();
	rtpe_kill(&p);
	close(dead);
}
END_TEST

/* No instance up: the timeout once, then "down" at once for the next. */
START_TEST(all_down)
{
	struct rtpe_stats	 st;
	struct got		 g;
	uint64_t		 t0;
	int			 dead;

	add_instance(udp_port(&dead), 1);
	client_start(100, 3, 0);
	t0 = now_ms();
	send_req(RTPE_OFFER, "down-1@test", OFFER_SDP, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_TIMEOUT);
	ck_assert_msg(g.at_ms - t0 >= 290 && g.at_ms - t0 < 800,
	    "took %llu ms", (unsigned long long)(g.at_ms - t0));
	ck_assert(!rtpengine_is_up(0));

	t0 = now_ms();
	send_req(RTPE_OFFER, "down-2@test", OFFER_SDP, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_DOWN);
	ck_assert_int_eq(g.instance, -1);
	ck_assert_uint_lt(g.at_ms - t0, 50);
	send_req(RTPE_QUERY, "down-1@test", NULL, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_DOWN);

	rtpengine_stats(&st);
	ck_assert_uint_eq(st.timeouts, 1);
	ck_assert_uint_eq(st.down, 2);
	client_stop();
	close(dead);
}
END_TEST

/* An instance that stopped is probed back up once it runs again. */
START_TEST(probe_brings_back)
{
	struct rtpe_proc	 p = { 0, 0, 0, 0 };
	struct got		 g;
	uint64_t		 until;

	rtpe_spawn(&p);
	add_instance(p.ng, 1);
	client_start(100, 2, 200);	/* the prober: pings at start */
	run_until(NULL, 300);
	ck_assert(rtpengine_is_up(0));

	rtpe_kill(&p);
	send_req(RTPE_OFFER, "probe-1@test", OFFER_SDP, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_TIMEOUT);
	ck_assert(!rtpengine_is_up(0));

	run_until(NULL, 500);		/* probes, no answer: still down */
	ck_assert(!rtpengine_is_up(0));
	rtpe_spawn(&p);			/* the same ng port */
	until = now_ms() + 3000;
	while (!rtpengine_is_up(0) && now_ms() < until)
		run_until(NULL, 50);
	ck_assert_msg(rtpengine_is_up(0), "not probed up again in 3 s");
	send_req(RTPE_OFFER, "probe-2@test", OFFER_SDP, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);
	client_stop();
	rtpe_kill(&p);
}
END_TEST

/* Reads one datagram off fd: the cookie into ck, the whole into buf. */
static size_t
peer_read(int fd, char *buf, size_t len, struct sockaddr_in *from,
    char *ck, size_t cklen)
{
	socklen_t	 flen = sizeof(*from);
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	ssize_t		 n;
	char		*sp;

	ck_assert_int_eq(poll(&pfd, 1, 0), 1);
	n = recvfrom(fd, buf, len - 1, 0, (struct sockaddr *)from, &flen);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	sp = strchr(buf, ' ');
	ck_assert_ptr_nonnull(sp);
	snprintf(ck, cklen, "%.*s", (int)(sp - buf), buf);
	return ((size_t)n);
}

static void
peer_send(int fd, const struct sockaddr_in *to, const char *ck,
    const char *dict)
{
	char	msg[512];
	int	n = snprintf(msg, sizeof(msg), "%s %s", ck, dict);

	ck_assert_int_eq(sendto(fd, msg, (size_t)n, 0,
	    (const struct sockaddr *)to, sizeof(*to)), n);
}

/*
 * A peer of our own: a retransmission carries the same cookie and bytes;
 * a reply from another port, or to no request, is dropped; a malformed
 * reply ends the request as such; cookies differ between requests.
 */
START_TEST(wire)
{
	struct sockaddr_in	 from;
	struct got		 g;
	char			 a[4096], b[4096], ck1[64], ck2[64];
	size_t			 na, nb;
	int			 fd, other;

	add_instance(udp_port(&fd), 1);
	(void)udp_port(&other);
	client_start(300, 3, 0);
	send_req(RTPE_OFFER, "wire-1@test", OFFER_SDP, &g);
	run_until(NULL, 30);
	na = peer_read(fd, a, sizeof(a), &from, ck1, sizeof(ck1));
	ck_assert_ptr_nonnull(strstr(a, "7:command5:offer"));
	ck_assert_ptr_nonnull(strstr(a, "7:call-id11:wire-1@test"));
	ck_assert_ptr_nonnull(strstr(a, "7:replacel6:origin18:"
	    "session-connectione"));
	ck_assert_ptr_nonnull(strstr(a, "3:ICE6:remove"));
	run_until(NULL, 310);
	nb = peer_read(fd, b, sizeof(b), &from, ck2, sizeof(ck2));
	ck_assert_uint_eq(na, nb);
	ck_assert(memcmp(a, b, na) == 0);	/* the same cookie too */
	/* From elsewhere: dropped; to no request: dropped. */
	peer_send(other, &from, ck1, "d6:result2:ok3:sdp3:v=0e");
	peer_send(fd, &from, "nosuchcookie", "d6:result2:oke");
	run_until(NULL, 30);
	ck_assert(!g.done);
	peer_send(fd, &from, ck1, "d3:sdp3:v=06:result2:oke");
	run_until(&g.done, 500);
	ck_assert_int_eq(g.status, RTPE_OK);
	ck_assert_str_eq(g.sdp, "v=0");
	ck_assert_int_eq(g.calls, 1);
	peer_send(fd, &from, ck1, "d3:sdp3:v=06:result2:oke");	/* late */
	run_until(NULL, 30);
	ck_assert_int_eq(g.calls, 1);

	send_req(RTPE_ANSWER, "wire-1@test", ANSWER_SDP, &g);
	run_until(NULL, 30);
	peer_read(fd, a, sizeof(a), &from, ck2, sizeof(ck2));
	ck_assert_str_ne(ck1, ck2);
	peer_send(fd, &from, ck2, "d6:result2:ok3:sdpi5ee");	/* sdp int */
	run_until(&g.done, 500);
	ck_assert_int_eq(g.status, RTPE_BAD_REPLY);

	send_req(RTPE_DELETE, "wire-1@test", NULL, &g);
	run_until(NULL, 30);
	peer_read(fd, a, sizeof(a), &from, ck2, sizeof(ck2));
	peer_send(fd, &from, ck2, "d6:result2:ok");	/* cut short */
	run_until(&g.done, 500);
	ck_assert_int_eq(g.status, RTPE_BAD_REPLY);
	client_stop();
	close(fd);
	close(other);
}
END_TEST

/* A cancelled request's callback never comes. */
START_TEST(cancel)
{
	struct rtpe_request	 rq;
	struct rtpe_req		*r;
	struct got		 g;
	char			 err[128];
	int			 dead;

	add_instance(udp_port(&dead), 1);
	client_start(50, 1, 0);
	memset(&rq, 0, sizeof(rq));
	memset(&g, 0, sizeof(g));
	rq.cmd = RTPE_PING;
	rq.instance = 0;
	r = rtpengine_send(&rq, on_result, &g, err, sizeof(err));
	ck_assert_ptr_nonnull(r);
	rtpengine_cancel(r);
	run_until(NULL, 200);
	ck_assert(!g.done);
	client_stop();
	close(dead);
}
END_TEST

START_TEST(uris)
{
	struct tp_addr	 a;
	char		 err[128];
	static const char *const bad[] = { "127.0.0.1:2223", "udp:127.0.0.1",
	    "udp:127.0.0.1:0", "udp:127.0.0.1:65536", "udp:localhost:2223",
	    "udp:::1:2223", "udp:[::1]2223", "tcp:127.0.0.1:2223",
	    "udp:127.0.0.1:22x", "udp:127.0.0.1:" };
	size_t		 i;

	ck_assert_int_eq(rtpengine_parse_uri("udp:127.0.0.1:2223", &a, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(tp_addr_port(&a), 2223);
	ck_assert_int_eq(rtpengine_parse_uri("udp:[::1]:2224", &a, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(tp_addr_family(&a), AF_INET6);
	ck_assert_int_eq(rtpengine_parse_uri("udp6:[::1]:2224", &a, err,
	    sizeof(err)), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(rtpengine_parse_uri(bad[i], &a, err,
		    sizeof(err)) == -1, "%s taken", bad[i]);
}
END_TEST

/* The order is the call's, stable, and spreads calls by weight. */
START_TEST(order)
{
	unsigned	 o[RTPE_MAX_INSTANCES], o2[RTPE_MAX_INSTANCES];
	unsigned	 first[3] = { 0, 0, 0 };
	char		 callid[32], err[128];
	int		 i;

	add_instance(4001, 1);
	add_instance(4002, 3);
	add_instance(4003, 0);
	ck_assert_int_eq(rtpengine_configure(&ms, err, sizeof(err)), 0);
	for (i = 0; i < 4000; i++) {
		snprintf(callid, sizeof(callid), "%d@x", i);
		ck_assert_uint_eq(rtpengine_order(S(callid), o), 3);
		rtpengine_order(S(callid), o2);
		ck_assert(memcmp(o, o2, sizeof(unsigned) * 3) == 0);
		ck_assert_uint_eq(o[2], 2);	/* weight 0: last */
		first[o[0]]++;
	}
	ck_assert_uint_eq(first[2], 0);
	/* 1:3 by weight: about 1000 and 3000. */
	ck_assert_msg(first[0] > 850 && first[0] < 1150, "%u %u", first[0],
	    first[1]);
	client_stop();
}
END_TEST

/* One request with its own tags and flags. */
static void
send_tags(enum rtpe_cmd cmd, const char *callid, const char *ftag,
    const char *ttag, const char *sdp, unsigned flags, struct got *g)
{
	struct rtpe_request	 rq;
	char			 err[128];

	memset(&rq, 0, sizeof(rq));
	memset(g, 0, sizeof(*g));
	rq.cmd = cmd;
	rq.callid = S(callid);
	rq.from_tag = S(ftag);
	if (ttag != NULL)
		rq.to_tag = S(ttag);
	if (sdp != NULL)
		rq.sdp = S(sdp);
	rq.flags = flags;
	ck_assert_ptr_nonnull(rtpengine_send(&rq, on_result, g, err,
	    sizeof(err)));
}

/*
 * ICE force: rtpengine's own candidates in the SDP (remove: none); two
 * branches answered, one deleted by its To tag: the call and the other
 * branch stay, and the call's instance is still known (a mark set on it
 * stays); the whole delete then ends it.
 */
START_TEST(ice_and_branches)
{
	struct rtpe_proc	p = { 0, 0, 0, 0 };
	struct got		g;
	unsigned		base_fl = RTPE_REPLACE_ORIGIN |
				    RTPE_REPLACE_SESS_CONN;

	rtpe_spawn(&p);
	add_instance(p.ng, 1);
	client_start(500, 2, 0);
	send_tags(RTPE_OFFER, "br-1@test", "ft-1", NULL, OFFER_SDP,
	    base_fl | RTPE_ICE_FORCE, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);
	ck_assert_msg(strstr(g.sdp, "a=candidate:") != NULL, "%s", g.sdp);
	ck_assert_msg(strstr(g.sdp, "a=ice-ufrag:") != NULL, "%s", g.sdp);
	rtpengine_call_mark(S("br-1@test"), RTPE_MARK_PENDING, 0);
	ck_assert_uint_eq(rtpengine_call_marks(S("br-1@test")),
	    RTPE_MARK_PENDING);
	send_tags(RTPE_ANSWER, "br-1@test", "ft-1", "tt-1", ANSWER_SDP,
	    base_fl | RTPE_ICE_REMOVE, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);
	ck_assert_msg(strstr(g.sdp, "a=candidate") == NULL, "%s", g.sdp);
	send_tags(RTPE_ANSWER, "br-1@test", "ft-1", "tt-2", ANSWER_SDP,
	    base_fl | RTPE_ICE_REMOVE, &g);
	run_until(&g.done, 3000);
	check_relayed(&g, &p);

	send_tags(RTPE_DELETE, "br-1@test", "ft-1", "tt-2", NULL, 0, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_OK);
	ck_assert_uint_eq(rtpengine_call_marks(S("br-1@test")),
	    RTPE_MARK_PENDING);	/* a branch: the call is still known */
	send_tags(RTPE_QUERY, "br-1@test", "ft-1", NULL, NULL, 0, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_OK);
	ck_assert(g.has_tag);

	send_tags(RTPE_DELETE, "br-1@test", "ft-1", NULL, NULL, 0, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_OK);
	ck_assert_uint_eq(rtpengine_call_marks(S("br-1@test")), 0);
	send_tags(RTPE_QUERY, "br-1@test", "ft-1", NULL, NULL, 0, &g);
	run_until(&g.done, 3000);
	ck_assert_int_eq(g.status, RTPE_ERROR);
	client_stop();
	rtpe_kill(&p);
}
END_TEST

/* media.ice's words on the wire. */
START_TEST(ice_names)
{
	ck_assert_str_eq(rtpengine_ice_name(MEDIA_ICE_REMOVE), "remove");
	ck_assert_str_eq(rtpengine_ice_name(MEDIA_ICE_FORCE), "force");
	ck_assert_str_eq(rtpengine_ice_name(MEDIA_ICE_DEFAULT), "default");
	ck_assert_str_eq(rtpengine_ice_name(MEDIA_ICE_FORCE_RELAY),
	    "force-relay");
	ck_assert_str_eq(rtpengine_ice_name(MEDIA_ICE_OPTIONAL), "optional");
	ck_assert_str_eq(rtpengine_ice_name((enum media_ice)99), "remove");
}
END_TEST

int
main(void)
{
	TCase	*tc;

	signal(SIGPIPE, SIG_IGN);
	tc = check_case("client");
	tcase_set_timeout(tc, 30);
	check_add(tc, uris, order, bad_requests, wire, cancel, all_down,
	    ice_names);
	tc = check_case("rtpengine");
	tcase_set_timeout(tc, 30);
	check_add(tc, offer_answer_query_delete, failover, probe_brings_back,
	    ice_and_branches);
	return (check_run("rtpengine"));
}
