/*
 * The location service on Redis (registrar.backend = "redis"), shared by
 * every node that points at the same Redis.  See locredis.h for the keys.
 *
 * Two connections: commands (the REGISTERs' scripts, the loads) and a
 * subscriber to osprey:loc.  When the command connection comes up: INFO
 * server and DBSIZE tell whether Redis restarted (another run id) or is
 * empty, and then this node writes back the bindings it took itself; then
 * every osprey:loc:* key is read (SCAN, HGETALL) into the local table,
 * and AORs Redis no longer has are dropped.  While Redis is down the
 * local table serves calls as it stands, and REGISTERs fail (500).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth.h"
#include "buf.h"
#include "cluster.h"
#include "location.h"
#include "locredis.h"
#include "log.h"
#include "registrar.h"
#include "timer.h"
#include "xmalloc.h"

/*
 * KEYS[1] the AOR's key; ARGV: now (Unix ms), node, AOR, "1" to remove
 * every binding first (Contact: *), the count of fields to delete, those
 * fields, then field/value pairs to set.  Returns "#v", the AOR's version,
 * then its bindings as HGETALL would, the expired ones dropped.  A change
 * (a query REGISTER makes none) gets a new version, above the last and
 * above Redis's clock in microseconds (so an AOR deleted and made again
 * never goes back), in the field "#v", and is published with the AOR's
 * bindings; a key left without bindings is deleted.
 */
static const char LOCREDIS_SCRIPT[] =
    "local k = KEYS[1]\n"
    "local now = tonumber(ARGV[1])\n"
    "local n = 0\n"
    "local ov = tonumber(redis.call('HGET', k, '" LOCREDIS_VFIELD "'))"
    " or 0\n"
    "if ARGV[4] == '1' then n = n + redis.call('DEL', k) end\n"
    "local nd = tonumber(ARGV[5])\n"
    "local i = 6\n"
    "for j = 1, nd do\n"
    "  n = n + redis.call('HDEL', k, ARGV[i]); i = i + 1\n"
    "end\n"
    "while i < #ARGV do\n"
    "  redis.call('HSET', k, ARGV[i], ARGV[i + 1]); i = i + 2; n = n + 1\n"
    "end\n"
    "local all = redis.call('HGETALL', k)\n"
    "local out, max = { '" LOCREDIS_VFIELD "', '' }, 0\n"
    "for j = 1, #all, 2 do\n"
    "  if all[j] ~= '" LOCREDIS_VFIELD "' then\n"
    "    local e = tonumber(string.match(all[j + 1], '^%d+\\n(%d+)')) or 0\n"
    "    if e <= now then redis.call('HDEL', k, all[j]); n = n + 1\n"
    "    else\n"
    "      if e > max then max = e end\n"
    "      out[#out + 1] = all[j]; out[#out + 1] = all[j + 1]\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local v = ov\n"
    "if n > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  v = math.max(ov + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))\n"
    "end\n"
    "out[2] = string.format('%.0f', v)\n"
    "if max > 0 then\n"
    "  if n > 0 then redis.call('HSET', k, '" LOCREDIS_VFIELD "', out[2]) "
    "end\n"
    "  redis.call('PEXPIREAT', k, max)\n"
    "elseif #all > 0 then redis.call('DEL', k) end\n"
    "if n > 0 then\n"
    "  local m, size = { ARGV[2], ' ', ARGV[3], ' ', out[2] }, 0\n"
    "  for j = 4, #out, 2 do size = size + #out[j] + 8 end\n"
    "  if size <= " LOCREDIS_MSG_CAP " then\n"
    "    m[#m + 1] = '\\n'\n"
    "    for j = 4, #out, 2 do m[#m + 1] = #out[j] .. ':' .. out[j] end\n"
    "  end\n"
    "  redis.call('PUBLISH', '" LOCREDIS_CHANNEL "', table.concat(m))\n"
    "end\n"
    "return out\n";

#define LOCREDIS_FIELDS	14	/* lines in a value (version 1: 13) */
#define LOCREDIS_ARGS	(9 + 2 * REG_MAX_VALUES)

static struct {
	struct redis	*cmd;		/* owned */
	struct redis	*sub;		/* owned */
	char		 node[128];
	char		 run_id[48];	/* of the Redis last seen, "" none */
	uint32_t	 gen;		/* of the load under way */
	unsigned	 load_pending;	/* its HGETALLs unanswered */
	unsigned	 loaded;	/* AORs it read */
	bool		 loading;
	bool		 scan_done;
	bool		 load_again;	/* asked for while one ran */
	struct redis_settings run;	/* what it started with (owned) */
	char		 uri_head[8];	/* node_uri's "sip:" */
	const char	*uri_tail;	/* and the rest, in run.node_uri */
	char		 sha[41];	/* SHA-1 of the script, hex */
	bool		 script_loaded;	/* SCRIPT LOAD answered: EVALSHA */
	bool		 checked;	/* this connection's Redis checked
					   (restarted? empty?): loads may
					   start */
	struct hashtab	 tombs;		/* struct lr_tomb */
	uint64_t	 tombs_swept_ms;
	uint64_t	 applied;	/* messages taken as they came */
	uint64_t	 reread;	/* messages that made an HGETALL */
	uint64_t	 stale;		/* replies, messages overtaken */
	/*
	 * Routes in Redis whose tokens will not check: made under this
	 * run's key (no cluster secret yet: refused once this node
	 * restarts) or under a secret replaced since.  Written again once
	 * the secret is known and no write with such a token is unanswered
	 * (lr_tokens_refresh()).
	 */
	const char	*tokens_stale;	/* why, NULL: none */
	unsigned	 run_key_writes; /* writes of run-key tokens
					   unanswered */
} LR;

/* A write under way: the AOR it is for and who waits. */
struct lr_write {
	locredis_done_fn	*fn;	/* NULL: a re-publication */
	void			*arg;
	bool			 force;	/* HGETALL: taken whatever its
					   version */
	bool			 run_key; /* a route in it has a token of
					   this run's key */
	uint64_t		 ver;	/* HGETALL: the AOR's version (or
					   its tomb's) when it was sent */
	size_t			 aorlen;
	char			 aor[];
};

/*
 * The version at which an AOR left the table because Redis held no
 * binding for it any more: a reply or message older than that, overtaken
 * on the way, must not bring it back.  Kept LR_TOMB_MS, far longer than a
 * reply can take (redis.timeout).
 */
struct lr_tomb {
	struct hnode	 node;
	uint64_t	 ver;
	uint64_t	 at_ms;		/* timer_now_ms() */
	char		 aor[];
};

#define LR_TOMB_MS	60000

static void	lr_load_start(void);
static void	lr_script_load(void);

static int64_t
wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

bool
locredis_active(void)
{
	return (LR.cmd != NULL);
}

const char *
locredis_node(void)
{
	return (LR.node);
}

/* What the changes published by the other nodes came to. */
void
locredis_stats(struct locredis_stats *st)
{
	st->applied = LR.applied;
	st->reread = LR.reread;
	st->stale = LR.stale;
}

/* RFC 5626: instance and reg-id name a binding; else the Contact URI. */
void
locredis_field(struct slice instance, uint32_t reg_id, struct slice contact,
    struct buf *out)
{
	if (instance.len > 0) {
		buf_adds(out, "i:");
		buf_add(out, instance.p, instance.len);
		buf_addf(out, ";%u", reg_id);
	} else {
		buf_adds(out, "c:");
		buf_add(out, contact.p, contact.len);
	}
}

/* A line of the value: CR and LF (a folded header) become spaces. */
static void
add_line(struct buf *b, struct slice s)
{
	size_t	i, from = 0;

	for (i = 0; i < s.len; i++)
		if (s.p[i] == '\n' || s.p[i] == '\r') {
			buf_add(b, s.p + from, i - from);
			buf_add(b, " ", 1);
			from = i + 1;
		}
	buf_add(b, s.p + from, s.len - from);
	buf_add(b, "\n", 1);
}

/*
 * "2\nEXPIRES_MS\nNODE\nRECEIVED\nLOCAL\nREG_ID\nCSEQ\nQ\nCONTACT\n
 * INSTANCE\nPATH\nCALLID\nUSER_AGENT\nROUTE": the version first, the
 * expiry second (the script reads it), no final newline.  Version 1 had
 * no ROUTE (read as none).
 */
void
locredis_encode(const struct locredis_row *r, struct buf *b)
{
	buf_addf(b, "%c\n%lld\n", LOCREDIS_VERSION, (long long)r->expires_ms);
	add_line(b, r->node);
	add_line(b, r->received);
	add_line(b, r->local);
	buf_addf(b, "%u\n%u\n%u\n", r->reg_id, r->cseq, r->q);
	add_line(b, r->contact);
	add_line(b, r->instance);
	add_line(b, r->path);
	add_line(b, r->callid);
	add_line(b, r->user_agent);
	add_line(b, r->route);
	b->len--;	/* the last newline */
	b->p[b->len] = '\0';
}

static int
num(struct slice s, uint64_t max, uint64_t *out)
{
	uint64_t	n = 0;
	size_t		i;

	if (s.len == 0 || s.len > 20)
		return (-1);
	for (i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return (-1);
		n = n * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (n > max)
		return (-1);
	*out = n;
	return (0);
}

/* A value back into r (slices into v); -1 if it is not one of ours. */
int
locredis_decode(const char *v, size_t len, struct locredis_row *r)
{
	struct slice	f[LOCREDIS_FIELDS];
	uint64_t	n[4];
	size_t		i, from = 0;
	unsigned	k = 0;

	for (i = 0; i <= len; i++)
		if (i == len || v[i] == '\n') {
			if (k == LOCREDIS_FIELDS)
				return (-1);
			f[k++] = (struct slice){ v + from, i - from };
			from = i + 1;
		}
	if (f[0].len != 1 || !((f[0].p[0] == '1' && k == 13) ||
	    (f[0].p[0] == LOCREDIS_VERSION && k == LOCREDIS_FIELDS)))
		return (-1);
	if (num(f[1], INT64_MAX, &n[0]) == -1 || num(f[5], UINT32_MAX,
	    &n[1]) == -1 || num(f[6], UINT32_MAX, &n[2]) == -1 ||
	    num(f[7], 1000, &n[3]) == -1 || f[8].len == 0 || f[3].len == 0)
		return (-1);
	memset(r, 0, sizeof(*r));
	r->expires_ms = (int64_t)n[0];
	r->node = f[2];
	r->received = f[3];
	r->local = f[4];
	r->reg_id = (uint32_t)n[1];
	r->cseq = (uint32_t)n[2];
	r->q = (uint16_t)n[3];
	r->contact = f[8];
	r->instance = f[9];
	r->path = f[10];
	r->callid = f[11];
	r->user_agent = f[12];
	if (k > 13)
		r->route = f[13];
	return (0);
}

static struct slice
sl(const char *s)
{
	return ((struct slice){ s, s ? strlen(s) : 0 });
}

/* The cluster secret changed while the connection was down (lr_secret()). */
static bool	secret_due;


/* The cluster secret's key of path tokens; false: none yet. */
static bool
token_key(uint64_t key[2])
{
	uint8_t	k[CLUSTER_KEY_LEN];

	if (!cluster_key(CLUSTER_PATH_TOKEN, k, NULL))
		return (false);
	memcpy(key, k, 2 * sizeof(uint64_t));
	explicit_bzero(k, sizeof(k));
	return (true);
}

/*
 * The MAC of a path token: SipHash-2-4 of "path " and the fields in hex,
 * under the cluster secret's key of path tokens (key; so that this node,
 * restarted with the same node_uri, takes the routes another node holds
 * to its phones), or, key NULL, under this run's stamp key (auth_stamp():
 * before Redis gave the secret).  A Call-ID (a stamp's other input) holds
 * no space, so no stamp made for a request can pass for one of these.
 */
static void
token_mac(const char *hex, size_t n, const uint64_t *key, char mac[17])
{
	char	in[5 + 2 * TP_ADDR_PACKED_MAX];

	memcpy(in, "path ", 5);
	memcpy(in + 5, hex, n);
	if (key != NULL)
		fmt_hex64(mac, hashtab_mac(key, in, 5 + n));
	else
		auth_stamp((struct slice){ in, 5 + n }, mac);
}

/*
 * A path token: the user part of this node's route to a binding it holds
 * (another node's call for it comes through here).  "p", the flow in hex
 * (tp_addr_encode(): transport, address, port of the phone's flow: its
 * connection, or the NAT's address for UDP), 16 hex digits of MAC.
 */
void
locredis_token(const struct tp_addr *a, char *out, size_t len)
{
	uint64_t	key[2];
	size_t		n;
	char		mac[17];

	if (len < 2 || (n = tp_addr_encode(a, out + 1, len - 1)) == 0 ||
	    len < 1 + n + 17) {
		if (len > 0)
			*out = '\0';
		return;
	}
	out[0] = 'p';
	token_mac(out + 1, n, token_key(key) ? key : NULL, mac);
	memcpy(out + 1 + n, mac, 17);
	explicit_bzero(key, sizeof(key));
}

/*
 * The flow a path token of this node names; false: not one it made, under
 * the cluster's key or (made before Redis answered) this run's own.
 */
bool
locredis_token_parse(struct slice tok, struct tp_addr *a)
{
	struct tp_addr	 f;
	struct slice	 hex;
	uint64_t	 key[2];
	char		 mac[17];
	bool		 ok = false;

	if (tok.len < 1 + 2 * 8 + 16 || tok.p[0] != 'p' ||
	    tok.len - 17 > 2 * TP_ADDR_PACKED_MAX)
		return (false);
	hex = (struct slice){ tok.p + 1, tok.len - 17 };
	if (token_key(key)) {
		token_mac(hex.p, hex.len, key, mac);
		ok = CRYPTO_memcmp(mac, tok.p + tok.len - 16, 16) == 0;
		explicit_bzero(key, sizeof(key));
	}
	if (!ok) {
		token_mac(hex.p, hex.len, NULL, mac);
		ok = CRYPTO_memcmp(mac, tok.p + tok.len - 16, 16) == 0;
	}
	if (!ok || tp_addr_decode(hex, &f) == -1)
		return (false);
	f.flags = f.proto == TP_UDP ? 0 : TP_ADDR_FLOW;
	*a = f;
	return (true);
}

/*
 * How the other nodes reach a binding this node takes (received from
 * addr, behind a NAT or not): through this node, a Route
 * "<sip:TOKEN@NODE_URI-host...;lr>" into out (a connection only this
 * node holds, a NAT pinhole only this node's address may use), or out
 * empty: straight to it (redis.via_node).  True: its token is of this
 * run's key (no cluster secret yet).  The main loop's, as is the secret's
 * adoption (lr_secret()).
 */
static bool
node_route(const struct tp_addr *addr, bool nat, struct buf *out)
{
	uint64_t	key[2];
	bool		run_key;
	char		tok[64];

	if (LR.uri_tail == NULL || LR.run.via_node == REDIS_VIA_NEVER ||
	    (LR.run.via_node == REDIS_VIA_AUTO && addr->proto == TP_UDP &&
	    !nat))
		return (false);
	run_key = !token_key(key);
	explicit_bzero(key, sizeof(key));
	locredis_token(addr, tok, sizeof(tok));
	if (tok[0] == '\0')
		return (false);
	buf_addf(out, "<%s%s@%s%s>", LR.uri_head, tok, LR.uri_tail,
	    strstr(LR.uri_tail, ";lr") != NULL ? "" : ";lr");
	return (run_key);
}

static void
tomb_sweep(bool all)
{
	struct hashtab_iter	 it;
	struct hnode		*n;
	uint64_t		 now = timer_now_ms();

	HASHTAB_FOREACH(n, &LR.tombs, it)
		if (all || ((struct lr_tomb *)n)->at_ms + LR_TOMB_MS <= now) {
			hashtab_remove(&LR.tombs, n);
			free(n);
		}
	LR.tombs_swept_ms = now;
}

/* The version an AOR that left the table left at; 0: none known. */
static uint64_t
tomb_ver(struct slice aor)
{
	struct lr_tomb	*t;

	if (LR.tombs.n == 0 || (t = (struct lr_tomb *)hashtab_find(&LR.tombs,
	    aor.p, aor.len)) == NULL)
		return (0);
	return (t->at_ms + LR_TOMB_MS > timer_now_ms() ? t->ver : 0);
}

/* AOR is in the table again (ver 0), or left it at ver. */
static void
tomb_set(struct slice aor, uint64_t ver)
{
	struct lr_tomb	*t = NULL;

	if (LR.tombs.n > 0)
		t = (struct lr_tomb *)hashtab_find(&LR.tombs, aor.p, aor.len);
	if (ver == 0) {
		if (t != NULL) {
			hashtab_remove(&LR.tombs, &t->node);
			free(t);
		}
		return;
	}
	if (t == NULL) {
		if (timer_now_ms() >= LR.tombs_swept_ms + 1000)
			tomb_sweep(false);
		t = xmalloc(sizeof(*t) + aor.len + 1);
		memcpy(t->aor, aor.p, aor.len);
		t->aor[aor.len] = '\0';
		hashtab_insert(&LR.tombs, &t->node, t->aor, aor.len);
	}
	t->ver = ver;
	t->at_ms = timer_now_ms();
}

/* The AOR's version in the table, or the one it left at; 0: none. */
static uint64_t
table_ver(struct slice aor)
{
	struct aor	*a;
	uint64_t	 v;

	location_read_lock();
	a = location_find(aor);
	v = a != NULL ? a->ver : tomb_ver(aor);
	location_unlock();
	return (v);
}

/*
 * The AOR's bindings as Redis holds them (the values of its fields) into
 * the local table, at version ver (the "#v" field: 0 unknown, always
 * taken).  A version no newer than the table's changes nothing (unless
 * force): that reply or message was overtaken by a later one.  A reply
 * (sent: the table's version when it was asked for) that is no newer than
 * the table, or has no version, changes nothing either when the table's
 * version moved since it was asked for, force or not: a message newer
 * than the question came first (replies and messages come on two
 * connections, in either order), and an empty reply would wipe bindings
 * registered again meanwhile.  Either way the AOR counts as seen by the
 * load under way (LR.gen).
 */
static void
lr_apply(struct slice aor, uint64_t ver, const struct slice *vals,
    size_t nv, bool force, const uint64_t *sent)
{
	struct binding_info	*bis;
	struct tp_addr		*addrs;
	char			**locals;
	struct buf		*paths;
	struct locredis_row	 row;
	struct aor		*a;
	int64_t			 now = wall_ms();
	uint64_t		 cur;
	unsigned		 n = 0, i, bad = 0;
	char			 recv[TP_NAME_LEN];

	location_write_lock();
	a = location_find(aor);
	cur = a != NULL ? a->ver : tomb_ver(aor);
	if ((ver == 0 || ver <= cur) && ((sent != NULL && cur != *sent) ||
	    (ver != 0 && !force))) {
		if (a != NULL)
			a->gen = LR.gen;
		location_unlock();
		LR.stale++;
		return;
	}
	location_unlock();
	bis = xcalloc(nv + 1, sizeof(*bis));
	addrs = xcalloc(nv + 1, sizeof(*addrs));
	locals = xcalloc(nv + 1, sizeof(*locals));
	paths = xcalloc(nv + 1, sizeof(*paths));
	for (i = 0; i < nv; i++) {
		struct binding_info	*bi = &bis[n];

		if (locredis_decode(vals[i].p, vals[i].len, &row) == -1 ||
		    row.received.len >= sizeof(recv)) {
			bad++;
			continue;
		}
		if (row.expires_ms <= now)
			continue;
		memcpy(recv, row.received.p, row.received.len);
		recv[row.received.len] = '\0';
		if (tp_addr_parse(recv, &addrs[n]) == -1) {
			bad++;
			continue;
		}
		if (addrs[n].proto != TP_UDP)
			addrs[n].flags = TP_ADDR_FLOW;
		locals[n] = xmalloc(row.local.len + 1);
		memcpy(locals[n], row.local.p, row.local.len);
		locals[n][row.local.len] = '\0';
		bi->contact = row.contact;
		bi->instance = row.instance;
		bi->path = row.path;
		bi->callid = row.callid;
		bi->user_agent = row.user_agent;
		bi->reg_id = row.reg_id;
		bi->cseq = row.cseq;
		bi->q = row.q;
		bi->expires_s = (uint32_t)((row.expires_ms - now + 999) / 1000);
		bi->received = &addrs[n];
		bi->local = locals[n];
		bi->nat = location_nat(bi->contact, &addrs[n]);
		/*
		 * Ours (NULL) when this node took it, even before a restart.
		 * Another's, with a route through that node: the route
		 * first, then the Path the phone registered with.
		 */
		if (!slice_eq(row.node, LR.node)) {
			bi->node = row.node;
			if (row.route.len > 0) {
				buf_init(&paths[n], row.route.len +
				    row.path.len + 2);
				buf_add(&paths[n], row.route.p, row.route.len);
				if (row.path.len > 0) {
					buf_add(&paths[n], ",", 1);
					buf_add(&paths[n], row.path.p,
					    row.path.len);
				}
				bi->path = (struct slice){ paths[n].p,
				    paths[n].len };
			}
		}
		n++;
	}
	if (bad > 0)
		log_warnx("registrar " SLICE_FMT ": %u binding(s) in redis not "
		    "understood, left out", SLICE_ARG(aor), bad);
	location_write_lock();
	location_replace(aor, bis, n, LR.gen);
	if ((a = location_find(aor)) != NULL)
		a->ver = ver;
	location_unlock();
	tomb_set(aor, a != NULL ? 0 : ver);
	for (i = 0; i < n; i++) {
		free(locals[i]);
		if (paths[i].p != NULL)
			buf_cleanup(&paths[i]);
	}
	free(paths);
	free(locals);
	free(addrs);
	free(bis);
}

/* A version: digits, else 0 (unknown). */
static uint64_t
ver_of(struct slice s)
{
	uint64_t	v;

	return (s.len <= 19 && num(s, UINT64_MAX, &v) == 0 ? v : 0);
}

/*
 * An array of field, value (HGETALL's or the script's reply) into the
 * local table: "#v" is the version, every other value a binding.
 */
static void
lr_replace(struct slice aor, const redisReply *rep, bool force,
    const uint64_t *sent)
{
	struct slice	*vals;
	uint64_t	 ver = 0;
	size_t		 i, n = 0;

	if (rep->type != REDIS_REPLY_ARRAY)
		return;
	vals = xcalloc(rep->elements / 2 + 1, sizeof(*vals));
	for (i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply	*f = rep->element[i];
		const redisReply	*v = rep->element[i + 1];

		if (f->type == REDIS_REPLY_STRING && f->len ==
		    sizeof(LOCREDIS_VFIELD) - 1 && memcmp(f->str,
		    LOCREDIS_VFIELD, f->len) == 0) {
			if (v->type == REDIS_REPLY_STRING)
				ver = ver_of((struct slice){ v->str, v->len });
			continue;
		}
		/* not a string: left to decode to say so */
		vals[n++] = v->type == REDIS_REPLY_STRING ? (struct slice){
		    v->str, v->len } : (struct slice){ "", 0 };
	}
	lr_apply(aor, ver, vals, n, force, sent);
	free(vals);
}

static void
lr_script_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	(void)arg;
	LR.script_loaded = res == REDIS_R_OK && rep->type ==
	    REDIS_REPLY_STRING && rep->len == 40 && memcmp(rep->str, LR.sha,
	    40) == 0;
}

/* The script into Redis's cache, so that EVALSHA can name it. */
static void
lr_script_load(void)
{
	const char	*argv[] = { "SCRIPT", "LOAD", LOCREDIS_SCRIPT };
	size_t		 len[] = { 6, 4, sizeof(LOCREDIS_SCRIPT) - 1 };

	LR.script_loaded = false;
	(void)redis_command(LR.cmd, lr_script_reply, NULL, 3, argv, len);
}

static void	lr_tokens_refresh(void);

static void
lr_write_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	struct lr_write	*w = arg;
	char		 why[160];

	if (w->run_key)
		LR.run_key_writes--;
	if (res == REDIS_R_OK && rep->type == REDIS_REPLY_ARRAY) {
		lr_replace((struct slice){ w->aor, w->aorlen }, rep, false,
		    NULL);
		if (w->fn != NULL)
			w->fn(w->arg, true, NULL);
		goto done;
	}
	if (res == REDIS_R_ERROR && rep->len >= 8 && memcmp(rep->str,
	    "NOSCRIPT", 8) == 0)
		lr_script_load();	/* flushed: EVAL until it is back */
	if (res == REDIS_R_ERROR || res == REDIS_R_OK)
		snprintf(why, sizeof(why), "redis: %.*s", rep->type ==
		    REDIS_REPLY_ERROR ? (int)rep->len : 15, rep->type ==
		    REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	else
		snprintf(why, sizeof(why), "redis: %s", redis_result_name(res));
	if (w->fn != NULL)
		w->fn(w->arg, false, why);
	else
		log_warnx("registrar %s: not written to redis: %s", w->aor,
		    why);
done:
	if (w->run_key && LR.run_key_writes == 0)
		lr_tokens_refresh();	/* its binding in the table now */
	free(w);
}

/* The script's head: EVAL script 1 key now node aor star ndel. */
struct lr_cmd {
	const char	*argv[LOCREDIS_ARGS];
	size_t		 len[LOCREDIS_ARGS];
	int		 argc;
	bool		 run_key;	/* a route's token of the run key */
	struct buf	 key, now, ndel;
	struct buf	 fields[REG_MAX_VALUES];
	struct buf	 values[REG_MAX_VALUES];
	unsigned	 nf;
};

static void
cmd_arg(struct lr_cmd *c, const char *p, size_t len)
{
	c->argv[c->argc] = p;
	c->len[c->argc++] = len;
}

static void
cmd_head(struct lr_cmd *c, struct slice aor, bool star, unsigned ndel)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->key, 64);
	buf_adds(&c->key, LOCREDIS_PREFIX "{");
	buf_add(&c->key, aor.p, aor.len);
	buf_adds(&c->key, "}");
	buf_init(&c->now, 24);
	buf_addf(&c->now, "%lld", (long long)wall_ms());
	buf_init(&c->ndel, 8);
	buf_addu(&c->ndel, ndel);
	if (LR.script_loaded) {
		cmd_arg(c, "EVALSHA", 7);
		cmd_arg(c, LR.sha, 40);
	} else {
		cmd_arg(c, "EVAL", 4);
		cmd_arg(c, LOCREDIS_SCRIPT, sizeof(LOCREDIS_SCRIPT) - 1);
	}
	cmd_arg(c, "1", 1);
	cmd_arg(c, c->key.p, c->key.len);
	cmd_arg(c, c->now.p, c->now.len);
	cmd_arg(c, LR.node, strlen(LR.node));
	cmd_arg(c, aor.p, aor.len);
	cmd_arg(c, star ? "1" : "0", 1);
	cmd_arg(c, c->ndel.p, c->ndel.len);
}

static struct buf *
cmd_field(struct lr_cmd *c, struct slice instance, uint32_t reg_id,
    struct slice contact)
{
	struct buf	*f = &c->fields[c->nf];

	buf_init(f, 128);
	buf_init(&c->values[c->nf], 256);
	locredis_field(instance, reg_id, contact, f);
	cmd_arg(c, f->p, f->len);
	return (&c->values[c->nf++]);
}

static void
cmd_cleanup(struct lr_cmd *c)
{
	unsigned	i;

	for (i = 0; i < c->nf; i++) {
		buf_cleanup(&c->fields[i]);
		buf_cleanup(&c->values[i]);
	}
	buf_cleanup(&c->key);
	buf_cleanup(&c->now);
	buf_cleanup(&c->ndel);
}

static int
cmd_send(struct lr_cmd *c, struct slice aor, locredis_done_fn *fn,
    void *arg)
{
	struct lr_write	*w;

	w = xmalloc(sizeof(*w) + aor.len + 1);
	w->fn = fn;
	w->arg = arg;
	w->aorlen = aor.len;
	memcpy(w->aor, aor.p, aor.len);
	w->aor[aor.len] = '\0';
	w->run_key = c->run_key;
	if (redis_command(LR.cmd, lr_write_reply, w, c->argc, c->argv,
	    c->len) == -1) {
		free(w);
		return (-1);
	}
	if (w->run_key) {
		LR.run_key_writes++;
		if (LR.tokens_stale == NULL)
			LR.tokens_stale = "cluster secret read";
	}
	return (0);
}

/*
 * A REGISTER's plan (judged and admitted) written to Redis; fn is called
 * once Redis answered or gave up (never before this returns).  -1: Redis
 * is not up, nothing was sent.
 */
int
locredis_write(struct slice aor, const struct reg_plan *p,
    locredis_done_fn *fn, void *arg)
{
	struct lr_cmd	 c;
	unsigned	 i, ndel = 0;
	char		 recv[TP_NAME_LEN];
	int64_t		 now = wall_ms();
	int		 rc;

	for (i = 0; i < p->n; i++)
		if (p->c[i].remove)
			ndel++;
	cmd_head(&c, aor, p->star, ndel);
	for (i = 0; i < p->n; i++)
		if (p->c[i].remove)	/* a field alone: its value unused */
			(void)cmd_field(&c, p->c[i].bi.instance,
			    p->c[i].bi.reg_id, p->c[i].bi.contact);
	for (i = 0; i < p->n; i++) {
		const struct binding_info	*bi = &p->c[i].bi;
		struct locredis_row		 r;
		struct buf			*v, rt;

		if (p->c[i].remove)
			continue;
		v = cmd_field(&c, bi->instance, bi->reg_id, bi->contact);
		location_addr_format(bi->received, recv, sizeof(recv));
		memset(&r, 0, sizeof(r));
		r.contact = bi->contact;
		r.instance = bi->instance;
		r.path = bi->path;
		r.callid = bi->callid;
		r.user_agent = bi->user_agent;
		r.received = sl(recv);
		r.local = sl(bi->local);
		r.node = sl(LR.node);
		r.expires_ms = now + (int64_t)bi->expires_s * 1000;
		r.reg_id = bi->reg_id;
		r.cseq = bi->cseq;
		r.q = bi->q;
		buf_init(&rt, 128);
		if (node_route(bi->received, bi->nat, &rt))
			c.run_key = true;
		r.route = (struct slice){ rt.p, rt.len };
		locredis_encode(&r, v);
		buf_cleanup(&rt);
		cmd_arg(&c, v->p, v->len);
	}
	rc = cmd_send(&c, aor, fn, arg);
	cmd_cleanup(&c);
	return (rc);
}

/*
 * A binding this node drops on its own (NAT keepalives unanswered): gone
 * from Redis too, so the other nodes stop calling it.  Best effort: with
 * Redis down it stays there until it expires.
 */
void
locredis_forget(const struct binding *b)
{
	struct lr_cmd	c;

	cmd_head(&c, sl(b->aor->key), false, 1);
	(void)cmd_field(&c, sl(b->instance), b->reg_id, sl(b->contact));
	if (cmd_send(&c, sl(b->aor->key), NULL, NULL) == -1)
		log_warnx("registrar %s: %s not removed from redis: down",
		    b->aor->key, b->contact);
	cmd_cleanup(&c);
}

/* Re-publication: the bindings this node took, one AOR at a time. */
struct lr_repub {
	struct lr_cmd	 c;
	const struct aor *aor;		/* the one being gathered */
	unsigned	 aors, bindings;
};

static void
repub_flush(struct lr_repub *rp)
{
	struct slice	key;

	if (rp->aor == NULL)
		return;
	key = sl(rp->aor->key);
	if (rp->c.nf > 0 && cmd_send(&rp->c, key, NULL, NULL) == 0)
		rp->aors++;
	cmd_cleanup(&rp->c);
	rp->aor = NULL;
}

static void
repub_one(void *arg, const struct binding *b)
{
	struct lr_repub		*rp = arg;
	struct locredis_row	 r;
	struct buf		*v, rt;
	char			 recv[TP_NAME_LEN];
	uint64_t		 mono = timer_now_ms();

	if (b->node != NULL || b->expires_ms <= mono)
		return;
	if (rp->aor != b->aor) {
		repub_flush(rp);
		rp->aor = b->aor;
		cmd_head(&rp->c, sl(b->aor->key), false, 0);
	}
	if (rp->c.nf == REG_MAX_VALUES)
		return;
	v = cmd_field(&rp->c, sl(b->instance), b->reg_id, sl(b->contact));
	location_addr_format(&b->received, recv, sizeof(recv));
	memset(&r, 0, sizeof(r));
	r.contact = sl(b->contact);
	r.instance = sl(b->instance);
	r.path = sl(b->path);
	r.callid = sl(b->callid);
	r.user_agent = sl(b->user_agent);
	r.received = sl(recv);
	r.local = sl(b->local);
	r.node = sl(LR.node);
	r.expires_ms = wall_ms() + (int64_t)(b->expires_ms - mono);
	r.reg_id = b->reg_id;
	r.cseq = b->cseq;
	r.q = b->q;
	buf_init(&rt, 128);
	if (node_route(&b->received, b->nat, &rt))
		rp->c.run_key = true;
	r.route = (struct slice){ rt.p, rt.len };
	locredis_encode(&r, v);
	buf_cleanup(&rt);
	cmd_arg(&rp->c, v->p, v->len);
	rp->bindings++;
}

static void
lr_republish(const char *why)
{
	struct lr_repub	rp;

	memset(&rp, 0, sizeof(rp));
	location_foreach(repub_one, &rp);
	repub_flush(&rp);
	log_notice("registrar: redis %s: re-published %u binding(s) of %u "
	    "address(es)-of-record taken on node %s", why, rp.bindings,
	    rp.aors, LR.node);
}

/* The end of a load: what Redis did not name is gone. */
static void
lr_load_check(void)
{
	if (!LR.loading || !LR.scan_done || LR.load_pending > 0)
		return;
	location_write_lock();
	location_sweep(LR.gen);
	location_unlock();
	LR.loading = false;
	log_notice("registrar: location loaded from redis aors=%u "
	    "bindings=%u", LR.loaded, location_count());
	if (LR.load_again) {
		LR.load_again = false;
		lr_load_start();
	}
}

static void
lr_load_fail(enum redis_result res)
{
	if (!LR.loading)
		return;
	log_warnx("registrar: loading the location from redis failed: %s",
	    redis_result_name(res));
	LR.loading = false;	/* the next connection loads again */
	LR.load_again = false;
}

static void
lr_hgetall_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	struct lr_write	*w = arg;	/* fn: NULL */
	bool		 load = w->arg != NULL;

	if (res == REDIS_R_OK)
		lr_replace((struct slice){ w->aor, w->aorlen }, rep, w->force,
		    &w->ver);
	free(w);
	if (!load)
		return;
	LR.load_pending--;
	if (res != REDIS_R_OK)
		lr_load_fail(res);
	else {
		LR.loaded++;
		lr_load_check();
	}
}

/*
 * HGETALL of one AOR, into the local table (load: part of a load; force:
 * whatever its version says).
 */
static int
lr_fetch(struct slice aor, bool load, bool force)
{
	struct lr_write	*w;
	struct buf	 key;
	const char	*argv[2];
	size_t		 len[2];
	int		 rc;

	w = xcalloc(1, sizeof(*w) + aor.len + 1);
	w->arg = load ? &LR : NULL;
	w->force = force;
	w->ver = table_ver(aor);
	w->aorlen = aor.len;
	memcpy(w->aor, aor.p, aor.len);
	buf_init(&key, 64);
	buf_adds(&key, LOCREDIS_PREFIX "{");
	buf_add(&key, aor.p, aor.len);
	buf_adds(&key, "}");
	argv[0] = "HGETALL";
	len[0] = 7;
	argv[1] = key.p;
	len[1] = key.len;
	if ((rc = redis_command(LR.cmd, lr_hgetall_reply, w, 2, argv,
	    len)) == -1)
		free(w);
	else if (load)
		LR.load_pending++;
	buf_cleanup(&key);
	return (rc);
}

/* "osprey:loc:{AOR}" -> AOR; false if the key is not one of ours. */
static bool
key_aor(const char *k, size_t len, struct slice *aor)
{
	size_t	pl = sizeof(LOCREDIS_PREFIX) - 1;

	if (len < pl + 3 || memcmp(k, LOCREDIS_PREFIX "{", pl + 1) != 0 ||
	    k[len - 1] != '}')
		return (false);
	*aor = (struct slice){ k + pl + 1, len - pl - 2 };
	return (true);
}

static void	lr_scan(const char *, size_t);

static void
lr_scan_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	const redisReply	*keys;
	struct slice		 aor;
	size_t			 i;

	(void)arg;
	if (res != REDIS_R_OK || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 2 || rep->element[0]->type !=
	    REDIS_REPLY_STRING || rep->element[1]->type !=
	    REDIS_REPLY_ARRAY) {
		lr_load_fail(res == REDIS_R_OK ? REDIS_R_ERROR : res);
		return;
	}
	keys = rep->element[1];
	for (i = 0; i < keys->elements; i++)
		if (keys->element[i]->type == REDIS_REPLY_STRING &&
		    key_aor(keys->element[i]->str, keys->element[i]->len,
		    &aor) && lr_fetch(aor, true, false) == -1) {
			lr_load_fail(REDIS_R_DOWN);
			return;
		}
	if (rep->element[0]->len == 1 && rep->element[0]->str[0] == '0') {
		LR.scan_done = true;
		lr_load_check();
	} else
		lr_scan(rep->element[0]->str, rep->element[0]->len);
}

static void
lr_scan(const char *cursor, size_t len)
{
	const char	*argv[] = { "SCAN", cursor, "MATCH",
		LOCREDIS_PREFIX "*", "COUNT", "500" };
	size_t		 lens[] = { 4, len, 5, sizeof(LOCREDIS_PREFIX), 5, 3 };

	if (redis_command(LR.cmd, lr_scan_reply, NULL, 6, argv, lens) == -1)
		lr_load_fail(REDIS_R_DOWN);
}

static void
lr_load_start(void)
{
	if (LR.loading) {
		LR.load_again = true;
		return;
	}
	if (!redis_is_up(LR.cmd))
		return;
	LR.loading = true;
	LR.scan_done = false;
	LR.load_pending = 0;
	LR.loaded = 0;
	LR.gen++;
	lr_scan("0", 1);
}

static void
count_own(void *arg, const struct binding *b)
{
	if (b->node == NULL)
		(*(unsigned *)arg)++;
}

static void
ver_forget(void *arg, struct binding *b)
{
	(void)arg;
	b->aor->ver = 0;
}

static void
lr_dbsize_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	char		*run_id = arg;
	unsigned	 own = 0;

	if (res != REDIS_R_OK || rep->type != REDIS_REPLY_INTEGER) {
		free(run_id);
		return;		/* down again: the next connection */
	}
	location_foreach(count_own, &own);
	/*
	 * Another Redis, or this one emptied: its versions start again
	 * (from its clock), so the table's say nothing of them.
	 */
	if ((LR.run_id[0] != '\0' && strcmp(LR.run_id, run_id) != 0) ||
	    rep->integer == 0) {
		location_walk(ver_forget, NULL);
		tomb_sweep(true);
	}
	if (own > 0 && LR.run_id[0] != '\0' && strcmp(LR.run_id,
	    run_id) != 0)
		lr_republish("restarted (another run id)");
	else if (own > 0 && rep->integer == 0)
		lr_republish("is empty");
	else if (own > 0 && secret_due)
		lr_republish("cluster secret changed");
	secret_due = false;
	snprintf(LR.run_id, sizeof(LR.run_id), "%s", run_id);
	free(run_id);
	LR.checked = true;	/* a load after the re-publication only */
	lr_load_start();
}

static void
lr_info_reply(void *arg, enum redis_result res, const redisReply *rep)
{
	const char	*p, *e;
	char		*run_id;
	const char	*argv[] = { "DBSIZE" };
	size_t		 len[] = { 6 };

	(void)arg;
	if (res != REDIS_R_OK || rep->type != REDIS_REPLY_STRING)
		return;
	run_id = xstrdup("");
	if ((p = strstr(rep->str, "run_id:")) != NULL) {
		p += 7;
		for (e = p; *e != '\0' && *e != '\r' && *e != '\n'; e++)
			;
		free(run_id);
		run_id = xmalloc((size_t)(e - p) + 1);
		memcpy(run_id, p, (size_t)(e - p));
		run_id[e - p] = '\0';
	}
	if (redis_command(LR.cmd, lr_dbsize_reply, run_id, 1, argv,
	    len) == -1)
		free(run_id);
}

static void
lr_cmd_state(void *arg, bool up)
{
	const char	*argv[] = { "INFO", "server" };
	size_t		 len[] = { 4, 6 };

	(void)arg;
	LR.script_loaded = false;
	if (!up) {
		LR.checked = false;
		LR.loading = false;
		LR.load_again = false;
		return;
	}
	lr_script_load();
	(void)redis_command(LR.cmd, lr_info_reply, NULL, 2, argv, len);
}

/* The subscriber came back: what it missed is read again. */
static void
lr_sub_state(void *arg, bool up)
{
	(void)arg;
	if (up && LR.checked)
		lr_load_start();
}

/*
 * The bindings a message carries: "LEN:VALUE" after each other; -1 if
 * that is not what p holds, or more than max of them.
 */
static int
msg_values(const char *p, size_t len, struct slice *vals, size_t max,
    size_t *n)
{
	const char	*e = p + len, *c;
	uint64_t	 l;

	*n = 0;
	while (p < e) {
		if ((c = memchr(p, ':', (size_t)(e - p))) == NULL ||
		    num((struct slice){ p, (size_t)(c - p) },
		    (uint64_t)(e - c - 1), &l) == -1 || *n == max)
			return (-1);
		vals[(*n)++] = (struct slice){ c + 1, (size_t)l };
		p = c + 1 + l;
	}
	return (0);
}

/*
 * "NODE AOR VERSION\nLEN:VALUE...": another node changed AOR, and these
 * are its bindings now (none: it has none); applied unless the table has
 * that version or a later one.  Without the newline (the bindings over
 * LOCREDIS_MSG_CAP), with a value that does not parse, or "NODE AOR" (a
 * node of the version before, which changes no version: what Redis has
 * is taken whatever its version): read the AOR again.
 */
static void
lr_message(void *arg, const char *channel, const char *msg, size_t len)
{
	const char	*nl = memchr(msg, '\n', len), *sp, *sp2;
	struct slice	 node, aor, vals[REG_MAX_VALUES];
	size_t		 hl = nl != NULL ? (size_t)(nl - msg) : len, n;
	uint64_t	 ver = 0;
	struct aor	*a;

	(void)arg;
	(void)channel;
	if ((sp = memchr(msg, ' ', hl)) == NULL)
		return;
	node = (struct slice){ msg, (size_t)(sp - msg) };
	aor = (struct slice){ sp + 1, hl - (size_t)(sp - msg) - 1 };
	if ((sp2 = memchr(aor.p, ' ', aor.len)) != NULL) {
		ver = ver_of((struct slice){ sp2 + 1, (size_t)(msg + hl -
		    sp2 - 1) });
		aor.len = (size_t)(sp2 - aor.p);
	}
	if (aor.len == 0 || slice_eq(node, LR.node))
		return;		/* ours: the script's reply did it */
	if (ver != 0 && nl != NULL && msg_values(nl + 1, len - hl - 1, vals,
	    REG_MAX_VALUES, &n) == 0) {
		LR.applied++;
		lr_apply(aor, ver, vals, n, false, NULL);
		return;
	}
	if (ver != 0) {
		location_read_lock();
		a = location_find(aor);
		if (ver <= (a != NULL ? a->ver : tomb_ver(aor))) {
			location_unlock();
			LR.stale++;
			return;	/* a later one is here already */
		}
		location_unlock();
	}
	LR.reread++;
	log_debug("registrar " SLICE_FMT ": a change without its bindings, "
	    "read again version=%llu node=" SLICE_FMT, SLICE_ARG(aor),
	    (unsigned long long)ver, SLICE_ARG(node));
	(void)lr_fetch(aor, false, ver == 0);
}

/*
 * The cluster secret read (main loop).  Another one than this run knew
 * (Redis lost it and another node drew one): the routes this node wrote
 * carry tokens of the old key, which no longer check.  The first one this
 * run reads: the routes written before it came carry tokens of the run's
 * key, which the next run refuses.  Either way they are written again
 * with the new key (lr_tokens_refresh()).
 */
static void
lr_secret(bool changed)
{
	static uint32_t	seen;
	uint32_t	gen = cluster_gen();

	if (changed && seen != 0 && gen != seen)
		LR.tokens_stale = "cluster secret changed";
	seen = gen;
	lr_tokens_refresh();
}

/*
 * The routes of LR.tokens_stale written again with tokens of the cluster
 * secret's key: now, or when the connection is back (secret_due).  Not
 * before the secret is known, nor while a write with a token of the run
 * key is unanswered (its binding is not in the table yet).
 */
static void
lr_tokens_refresh(void)
{
	uint64_t	key[2];
	unsigned	own = 0;
	bool		have;

	if (LR.tokens_stale == NULL || LR.run_key_writes > 0)
		return;
	have = token_key(key);
	explicit_bzero(key, sizeof(key));
	if (!have)
		return;
	location_foreach(count_own, &own);
	if (own > 0 && redis_is_up(LR.cmd))
		lr_republish(LR.tokens_stale);
	else if (own > 0)
		secret_due = true;	/* when it is back */
	LR.tokens_stale = NULL;
}

int
locredis_start(struct event_base *base, const struct redis_settings *set,
    char *err, size_t errlen)
{
	unsigned char	digest[SHA_DIGEST_LENGTH];
	char		host[128];
	const char	*p;

	LR.run.address = xstrdup(set->address);
	LR.run.user = set->user ? xstrdup(set->user) : NULL;
	LR.run.password = set->password ? xstrdup(set->password) : NULL;
	LR.run.ca_file = set->ca_file ? xstrdup(set->ca_file) : NULL;
	LR.run.node_id = set->node_id ? xstrdup(set->node_id) : NULL;
	LR.run.node_uri = set->node_uri ? xstrdup(set->node_uri) : NULL;
	LR.run.via_node = set->via_node;
	LR.run.tls = set->tls;
	LR.run.timeout_ms = set->timeout_ms;
	if (LR.run.node_uri != NULL && (p = strchr(LR.run.node_uri, ':')) !=
	    NULL && (size_t)(p - LR.run.node_uri) < sizeof(LR.uri_head) - 1) {
		memcpy(LR.uri_head, LR.run.node_uri, (size_t)(p -
		    LR.run.node_uri) + 1);
		LR.uri_head[p - LR.run.node_uri + 1] = '\0';
		LR.uri_tail = p + 1;
	}
	if (set->node_id != NULL)
		snprintf(LR.node, sizeof(LR.node), "%s", set->node_id);
	else if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		snprintf(LR.node, sizeof(LR.node), "%s", host);
	} else
		snprintf(LR.node, sizeof(LR.node), "osprey");
	hashtab_init(&LR.tombs, 64);
	SHA1((const unsigned char *)LOCREDIS_SCRIPT, sizeof(LOCREDIS_SCRIPT) -
	    1, digest);
	fmt_hex(LR.sha, digest, sizeof(digest));
	if (cluster_watch(lr_secret) == -1) {
		snprintf(err, errlen, "cluster: too many watchers");
		return (-1);
	}
	if ((LR.cmd = redis_new(base, set, "location", lr_cmd_state, NULL,
	    err, errlen)) == NULL)
		return (-1);
	if ((LR.sub = redis_new(base, set, "location-events", lr_sub_state,
	    NULL, err, errlen)) == NULL) {
		redis_free(LR.cmd);
		LR.cmd = NULL;
		return (-1);
	}
	redis_subscribe(LR.sub, LOCREDIS_CHANNEL, lr_message, NULL);
	log_notice("registrar: location on redis address=%s node=%s "
	    "node_uri=%s", set->address, LR.node, LR.uri_tail != NULL ?
	    LR.run.node_uri : "-");
	redis_start(LR.cmd);
	redis_start(LR.sub);
	return (0);
}

void
locredis_stop(void)
{
	redis_free(LR.sub);
	redis_free(LR.cmd);
	if (LR.tombs.b != NULL) {
		tomb_sweep(true);
		hashtab_cleanup(&LR.tombs);
	}
	redis_settings_cleanup(&LR.run);
	memset(&LR, 0, sizeof(LR));
}

static bool
same_str(const char *a, const char *b)
{
	return (a == b || (a != NULL && b != NULL && strcmp(a, b) == 0));
}

/* Would set connect as what runs does (a reload cannot change it)? */
bool
locredis_same(const struct redis_settings *set)
{
	return (LR.cmd == NULL || (same_str(set->address, LR.run.address) &&
	    same_str(set->user, LR.run.user) && same_str(set->password,
	    LR.run.password) && same_str(set->ca_file, LR.run.ca_file) &&
	    same_str(set->node_id, LR.run.node_id) && same_str(set->node_uri,
	    LR.run.node_uri) && set->via_node == LR.run.via_node &&
	    set->tls ==
	    LR.run.tls && set->timeout_ms == LR.run.timeout_ms));
}
