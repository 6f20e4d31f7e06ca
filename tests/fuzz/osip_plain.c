/*
 * sipmsg_parse() with its shortcuts (sipmsg_shortcuts: the plain forms of
 * a request that need no libosip2, and of a Request-URI, From, To or Via
 * that need none of the general checks) against the long way: the same
 * answer, the same reason, the same fields, and for a request the same
 * sipmsg_check_request(), for every message.  Each seed (the fuzz corpus,
 * tests/data, plain requests made here) and random mutations of it go
 * through both; any difference is printed and the exit status is 1.
 *
 *	tests/fuzz/osip_plain [-n MUTATIONS] [-s SEED] [FILE|DIR ...]
 *
 * Without files: tests/fuzz/corpus and tests/data under $srcdir.  An input
 * may hold several datagrams, each ended by a line that starts with
 * "~~~~" (as for the fuzz target).
 */
#include "config.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sipmsg.h"

#define MAXMSG	8192

static unsigned long	 nseeds, nmsgs, nreach, nplain, nbad, nosip_ok;
static uint64_t		 rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng);
}

/* Where a slice starts in the message; -1 outside (NULL, a literal ""). */
#define OFF(m, s)	((s).p < (m)->buf || (s).p > (m)->buf + (m)->len ? \
			    -1L : (long)((s).p - (m)->buf))

/* The two parses differ: the name of the first field that does, or NULL. */
static const char *
differs(const struct sipmsg *a, const struct sipmsg *b)
{
	int	i;

#define SL(f)	if (OFF(a, a->f) != OFF(b, b->f) || a->f.len != b->f.len) \
			return (#f)
#define EQ(f)	if (a->f != b->f) return (#f)
	EQ(request); EQ(status); EQ(method); EQ(parsed); EQ(start_bad);
	EQ(via_bad); EQ(content_length); EQ(body_len); EQ(cseq);
	EQ(via_port); EQ(via_rport); EQ(nvias); EQ(max_forwards);
	EQ(from_tag_set); EQ(nh); EQ(hdr_end); EQ(body_off);
	SL(method_s); SL(ruri); SL(version); SL(reason); SL(callid);
	SL(cseq_method); SL(via); SL(via_proto); SL(via_host);
	if (a->parsed || a->from_tag.len > 0)
		SL(from_tag);
	if (a->parsed || a->to_tag.len > 0)
		SL(to_tag);
	SL(branch);
	for (i = 0; i < 2; i++) {
		const char	*name = i ? "rport" : "received";
		struct slice	 va = { NULL, 0 }, vb = { NULL, 0 };
		bool		 fa = sipmsg_via_param(a, name, &va);

		if (fa != sipmsg_via_param(b, name, &vb) || (fa &&
		    (OFF(a, va) != OFF(b, vb) || va.len != vb.len)))
			return (name);
	}
	if (a->addr_rc[0] != 0 && b->addr_rc[0] != 0)
		EQ(addr_rc[0]);
	if (a->addr_rc[1] != 0 && b->addr_rc[1] != 0)
		EQ(addr_rc[1]);
	return (NULL);
#undef SL
#undef EQ
}

/*
 * sipmsg_parse() with the plain forms and without: the same answer, the
 * same reason and the same fields.  1: a request that took the plain
 * path past libosip2; 0: another message that parsed; -1: one that did
 * not.
 */
static int
check(const char *data, size_t len, bool show)
{
	struct sipmsg	*a = sipmsg_new(data, len);
	struct sipmsg	*b = sipmsg_new(data, len);
	char		 erra[256] = "", errb[256] = "";
	const char	*what = NULL;
	int		 ra, rb, rc = -1;

	sipmsg_shortcuts = false;
	rb = sipmsg_parse(b, errb, sizeof(errb));
	sipmsg_shortcuts = true;
	ra = sipmsg_parse(a, erra, sizeof(erra));
	if (ra != rb)
		what = "status";
	else if (ra != 0 && ra != -1 && strcmp(erra, errb) != 0)
		what = "reason";
	else if (ra == 0)
		what = differs(a, b);
	if (what == NULL && ra == 0 && a->request) {
		char	ca[256] = "", cb[256] = "";
		int	xa, xb;

		sipmsg_shortcuts = false;
		xb = sipmsg_check_request(b, cb, sizeof(cb));
		sipmsg_shortcuts = true;
		xa = sipmsg_check_request(a, ca, sizeof(ca));
		if (xa != xb || (xa != 0 && strcmp(ca, cb) != 0))
			what = "check_request";
	}
	nmsgs++;
	if (ra == 0)
		rc = 0;
	if (ra == 0 && a->request && !sipmsg_in_dialog(a)) {
		nreach++;
		rc = sipmsg_osip_plain(a) ? 1 : 0;
		nplain += rc;
	}
	if (a->addr_plain[0] || a->addr_plain[1])
		nosip_ok++;
	if (what != NULL) {
		nbad++;
		if (show || nbad <= 20) {
			printf("%s differs: %d \"%s\" / without the plain "
			    "forms %d \"%s\":\n", what, ra, erra, rb, errb);
			fwrite(data, 1, len, stdout);
			printf("\n----\n");
		}
	}
	sipmsg_free(a);
	sipmsg_free(b);
	return (rc);
}

static const char *const words[] = {
	";", "<", ">", "\"", " ", "\t", ":", "@", "%41", "[::1]", ",", "sip:",
	"sips:", "tel:", "\r\n ", ";lr", "=", "?", ":0", ":65536", ":99999",
	"\\", "'", "*", "(", ")", "/", "&", "$", "#", "+", "-", ".", "_", "~",
	"!", "`", "[", "]", "{", "}", "|", "^", "\r\n", "\n", "\r", "a", "0",
	"SIP/2.0/", ";tag=", ";branch=z9hG4bK", "\"\"", "<>", "\x80", "\xff",
	"\x01", "\x7f", "  ", "SIP", "2.0", "UDP", ";=", "=;", "@@", "::",
	";transport=tcp", "user=phone", "sip:a@b", "SIP/2.0/UDP ", "; ",
	" ;", "= ", " =", "\" ", " \"", "<sip:", ">;", ":5060", "1 ", "q=0.5",
	"*", "\0",
};

/* One random edit of buf (len, room for MAXMSG), biased to line starts. */
static size_t
mutate(char *buf, size_t len)
{
	size_t	pos = len ? rnd() % (len + 1) : 0, n;

	switch (rnd() % 8) {
	case 0:	/* a byte replaced */
		if (len > 0 && pos < len)
			buf[pos] = (char)(rnd() & 0xff);
		return (len);
	case 1:	/* a range removed */
		if (pos < len) {
			n = 1 + rnd() % 8;
			if (n > len - pos)
				n = len - pos;
			memmove(buf + pos, buf + pos + n, len - pos - n);
			len -= n;
		}
		return (len);
	case 2:	/* a range repeated */
		n = 1 + rnd() % 12;
		if (pos + n <= len && len + n < MAXMSG) {
			memmove(buf + pos + n, buf + pos, len - pos);
			len += n;
		}
		return (len);
	case 3:	/* a byte replaced by a word's first */
		if (pos < len)
			buf[pos] = words[rnd() % (sizeof(words) /
			    sizeof(words[0]))][0];
		return (len);
	default: {	/* a word inserted */
		const char	*w = words[rnd() % (sizeof(words) /
				    sizeof(words[0]))];
		size_t		 wl = w[0] == '\0' ? 1 : strlen(w);

		if (len + wl < MAXMSG) {
			memmove(buf + pos + wl, buf + pos, len - pos);
			memcpy(buf + pos, w, wl);
			len += wl;
		}
		return (len);
	}
	}
}

static unsigned long	mutations = 2000;

static void
seed(const char *data, size_t len)
{
	char		buf[MAXMSG];
	unsigned long	i;
	int		base;

	if (len >= MAXMSG)
		return;
	nseeds++;
	base = check(data, len, false);
	/* Mutate what reached libosip2 (plain or not) most. */
	for (i = 0; i < (base >= 0 ? mutations : mutations / 20); i++) {
		size_t		n = len;
		unsigned	k, edits = 1 + rnd() % 3;

		memcpy(buf, data, len);
		for (k = 0; k < edits; k++)
			n = mutate(buf, n);
		check(buf, n, false);
	}
}

/* Each datagram of a file (split at lines that start with "~~~~"). */
static void
seed_file(const char *path)
{
	static char	 data[1 << 16];
	FILE		*fp;
	size_t		 n, s = 0, i;

	if ((fp = fopen(path, "rb")) == NULL)
		return;
	n = fread(data, 1, sizeof(data) - 1, fp);
	fclose(fp);
	data[n] = '\0';
	for (i = 0; i <= n; i++) {
		if (i == n || (data[i] == '\n' && strncmp(data + i + 1,
		    "~~~~", 4) == 0)) {
			seed(data + s, (i < n ? i + 1 : i) - s);
			if (i == n)
				break;
			i++;
			while (i < n && data[i] != '\n')
				i++;
			s = i + 1;
		}
	}
}

static void
seed_path(const char *path)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	char		 p[4096];

	if (stat(path, &st) == -1)
		return;
	if (!S_ISDIR(st.st_mode)) {
		seed_file(path);
		return;
	}
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		seed_path(p);
	}
	closedir(d);
}

/* Plain requests, as the benchmarks and common UAs send them. */
static const char *const made[] = {
	"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0\r\n"
	"From: sipp <sip:sipp@127.0.0.1:5061>;tag=1234SIPpTag001\r\n"
	"To: service <sip:service@127.0.0.1:5060>\r\n"
	"Call-ID: 1-1234@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
	"Contact: <sip:sipp@127.0.0.1:5061>\r\nMax-Forwards: 70\r\n"
	"Subject: bench\r\nContent-Type: application/sdp\r\n"
	"Content-Length: 4\r\n\r\nv=0\n",
	"REGISTER sip:example.test SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0;rport;"
	"received=10.1.1.1;RPORT=7;Received\r\n"
	"From: <sip:alice@example.test>;tag=1234SIPpTag001\r\n"
	"To: <sip:alice@example.test>\r\n"
	"Call-ID: 1-1234@127.0.0.1\r\nCSeq: 2 REGISTER\r\n"
	"Contact: <sip:alice@127.0.0.1:5061;transport=udp>;expires=60;q=0.5\r\n"
	"Authorization: Digest username=\"alice\", realm=\"example.test\", "
	"nonce=\"abc\", uri=\"sip:example.test\", response=\"0123\"\r\n"
	"Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
	"OPTIONS sips:bob@example.test;transport=tls SIP/2.0\r\n"
	"v: SIP/2.0/TLS host.example.test;branch=z9hG4bKx\r\n"
	"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKy;received=10.0.0.2\r\n"
	"f: \"Alice A. (work)\" <sip:alice@example.test>;tag=a1\r\n"
	"t: Bob <sips:bob@example.test>\r\ni: x@y\r\nCSeq: 9 OPTIONS\r\n"
	"m: sip:alice@10.0.0.1\r\nm: <sip:a@b>;expires=0\r\nl: 0\r\n\r\n",
	"MESSAGE sip:+1-212-555-1212@gw.example.test;user=phone SIP/2.0\r\n"
	"Via: SIP/2.0/UDP gw.example.test:5062;branch=z9hG4bK.a_b!c~d*e'f+g\r\n"
	"From: sip:x.y_z!~*'+@example.test;tag=t\r\n"
	"To: \"B\" <sip:bob@example.test:1>\r\nCall-ID: abc\r\n"
	"CSeq: 0 MESSAGE\r\nContent-Length: 0\r\n\r\n",
};

/* Responses as a UAS sends them back through us. */
static const char *const made_resp[] = {
	"SIP/2.0 200 OK\r\n"
	"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabcdef0123456789;rport,"
	" SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0\r\n"
	"Record-Route: <sip:127.0.0.1:5060;lr;ftag=x>\r\n"
	"From: sipp <sip:sipp@127.0.0.1:5061>;tag=1234SIPpTag001\r\n"
	"To: service <sip:service@127.0.0.1:5060>;tag=99SIPpTag01\r\n"
	"Call-ID: 1-1234@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
	"Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n"
	"Content-Length: 0\r\n\r\n",
	"SIP/2.0 180 Ringing\r\n"
	"v: SIP/2.0/UDP h.example.test;branch=z9hG4bK1 ,SIP/2.0/TCP "
	"10.0.0.1:1;received=10.0.0.2;branch=z9hG4bK2\r\n"
	"v: SIP/2.0/UDP 10.0.0.3;rport=5060\r\n"
	"f: sip:a@example.test;tag=1\r\nt: <sip:b@example.test>;tag=2\r\n"
	"i: c\r\nCSeq: 7 INVITE\r\nl: 0\r\n\r\n",
};

int
main(int argc, char **argv)
{
	const char	*srcdir = getenv("srcdir");
	char		 p[4096];
	size_t		 i;
	int		 c;

	while ((c = getopt(argc, argv, "n:s:")) != -1) {
		if (c == 'n')
			mutations = strtoul(optarg, NULL, 10);
		else if (c == 's')
			rng = strtoull(optarg, NULL, 0) | 1;
		else {
			fprintf(stderr, "usage: osip_plain [-n MUTATIONS] "
			    "[-s SEED] [FILE|DIR ...]\n");
			return (2);
		}
	}
	sipmsg_init();
	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		nseeds++;
		if (check(made[i], strlen(made[i]), true) != 1) {
			printf("made request %zu is not plain\n", i);
			nbad++;
		}
		seed(made[i], strlen(made[i]));
	}
	for (i = 0; i < sizeof(made_resp) / sizeof(made_resp[0]); i++) {
		nseeds++;
		if (check(made_resp[i], strlen(made_resp[i]), true) != 0) {
			printf("made response %zu does not parse\n", i);
			nbad++;
		}
		seed(made_resp[i], strlen(made_resp[i]));
	}
	if (optind < argc) {
		for (c = optind; c < argc; c++)
			seed_path(argv[c]);
	} else {
		snprintf(p, sizeof(p), "%s/tests/fuzz/corpus", srcdir ? srcdir :
		    ".");
		seed_path(p);
		snprintf(p, sizeof(p), "%s/tests/data", srcdir ? srcdir : ".");
		seed_path(p);
	}
	printf("osip_plain: %lu seeds, %lu messages, %lu parsed requests "
	    "outside a dialog, %lu of them plain (no libosip2), %lu with a "
	    "plain From or To; %lu differences\n", nseeds, nmsgs, nreach,
	    nplain, nosip_ok, nbad);
	return (nbad > 0 ? 1 : 0);
}
