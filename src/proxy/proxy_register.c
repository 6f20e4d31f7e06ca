/*
 * The REGISTER front door (RFC 3261 10.3): a REGISTER whose Request-URI is
 * one of our domains is answered here, after digest authentication, by
 * the registrar.  It is never forwarded.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "guard.h"
#include "log.h"
#include "proxy_int.h"
#include "registrar.h"
#include "xmalloc.h"

/*
 * A REGISTER whose answer waits for Redis (registrar.backend redis): for
 * its nonce-count (authredis.c), then for the registrar's write.  Its
 * server transaction absorbs retransmissions meanwhile; found again by
 * its key (it may be gone, at shutdown) to answer.
 */
struct reg_pending {
	char		*topvia;	/* owned */
	uint32_t	 serial;	/* of the transaction */
	struct tp_addr	 src;
	bool		 mismatch;	/* To is not the authenticated user */
	char		 realm[256];
	char		 aor[REG_AOR_LEN];
	size_t		 keylen;
	char		 key[];
};

static void	proxy_register_authed(void *, enum auth_result);

/* The pending record of m, before its transaction exists. */
static struct reg_pending *
reg_pending_new(const struct sipmsg *m, const struct tp_addr *src)
{
	struct reg_pending	*rp;
	struct buf		 k, tv;
	char			 kstore[256], tvstore[256];

	buf_init_on(&k, kstore, sizeof(kstore));
	txn_key_server(m, SM_OTHER, &k);
	buf_init_on(&tv, tvstore, sizeof(tvstore));
	proxy_ctx_topvia_buf(m, src, &tv);
	rp = xcalloc(1, sizeof(*rp) + k.len + 1);
	memcpy(rp->key, k.p, k.len);
	rp->key[k.len] = '\0';
	rp->keylen = k.len;
	rp->topvia = xstrdup(tv.p);
	rp->src = *src;
	buf_cleanup(&k);
	buf_cleanup(&tv);
	return (rp);
}

static void
reg_pending_free(struct reg_pending *rp)
{
	if (rp == NULL)
		return;
	free(rp->topvia);
	free(rp);
}

/* Its transaction, if still waiting for this answer. */
static struct txn *
reg_pending_txn(const struct reg_pending *rp)
{
	struct txn	*st = txn_find(rp->key, rp->keylen);

	if (st != NULL && !st->rec && st->serial == rp->serial &&
	    st->state == TXN_TRYING)
		return (st);
	return (NULL);
}

/*
 * Authenticate a REGISTER for the address-of-record user@realm (10.3 steps
 * 4-5).  Returns 0 to go on, -1 when a challenge went out, -2 when the
 * nonce-count is being checked in Redis (rp given: registrar.backend
 * redis; proxy_register_authed() goes on), or a status.
 */
static int
proxy_register_auth(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct slice aor_user, struct slice realm,
    struct reg_pending *rp, struct buf *hdrs, char *err, size_t errlen)
{
	struct slice		 user;
	struct buf		 ch;
	char			 chstore[1024];
	enum auth_result	 res;

	if (!auth_enabled() || proxy_ctx_trusted(src))
		return (0);
	if (auth_insecure(src)) {
		snprintf(err, errlen, "TLS Required (auth.require_tls)");
		return (403);
	}
	if (rp != NULL)
		res = auth_check_async(m, false, realm, false, &user, err,
		    errlen, proxy_register_authed, rp);
	else
		res = auth_check(m, false, realm, &user, err, errlen);
	if (res == AUTH_FAIL || res == AUTH_BAD)
		guard_auth_failed(src);
	if (res == AUTH_BAD)
		return (400);
	if (res == AUTH_UNAVAILABLE) {
		snprintf(err, errlen, "Nonce-count not checked: Redis down");
		buf_addf(hdrs, "Retry-After: %u\r\n", REG_RETRY_AFTER_S);
		return (500);
	}
	if (res != AUTH_OK && res != AUTH_PENDING) {
		log_info("registrar " SLICE_FMT "@" SLICE_FMT ": challenged%s%s"
		    "%s", SLICE_ARG(aor_user), SLICE_ARG(realm),
		    res == AUTH_STALE ? " (stale nonce)" : "",
		    err[0] ? ": " : "", err);
		buf_init_on(&ch, chstore, sizeof(chstore));
		auth_challenge(&ch, false, realm, res == AUTH_STALE);
		proxy_reply_challenge(m, sock, src, 401, ch.p);
		buf_cleanup(&ch);
		return (-1);
	}
	if (user.len != aor_user.len || memcmp(user.p, aor_user.p,
	    user.len) != 0) {
		snprintf(err, errlen, "To does not match the authenticated "
		    "user");
		if (res != AUTH_PENDING)
			return (403);
		rp->mismatch = true;	/* answered once the count is in */
	}
	return (res == AUTH_PENDING ? -2 : 0);
}

static void
proxy_register_done(void *arg, int code, const char *reason,
    const char *hdrs)
{
	struct reg_pending	*rp = arg;
	struct txn		*st = reg_pending_txn(rp);

	if (st != NULL)
		proxy_reply_st(st, rp->topvia, code, reason, hdrs);
	else
		log_info("registrar: the REGISTER answered %d is gone", code);
	reg_pending_free(rp);
}

/*
 * The registrar's part with the location in Redis: the server transaction
 * first (it holds m; st when it exists already), the answer now or once
 * Redis has stored the change.
 */
static void
proxy_register_shared(struct sipmsg *m, struct tp_sock *sock,
    struct reg_pending *rp, struct txn *st, struct buf *hdrs)
{
	char	err[160];
	int	code;

	err[0] = '\0';
	if (st == NULL) {
		st = txn_server_new(m, sock, &rp->src);	/* m is its own */
		rp->serial = st->serial;
	}
	code = registrar_register_async(m, (struct slice){ rp->aor,
	    strlen(rp->aor) }, sock, &rp->src, !guard_known(&rp->src) &&
	    !proxy_ctx_trusted(&rp->src), hdrs, err, sizeof(err),
	    proxy_register_done, rp);
	if (code == 0) {
		buf_cleanup(hdrs);
		return;		/* proxy_register_done() answers */
	}
	log_info("registrar " SLICE_FMT ": REGISTER refused code=%d "
	    "reason=\"%s\"", SLICE_ARG(m->callid), code, err);
	proxy_reply_st(st, rp->topvia, code, code == 500 ? NULL : err,
	    hdrs->p);
	buf_cleanup(hdrs);
	reg_pending_free(rp);
}

/* Redis answered for the nonce-count of a REGISTER (rp). */
static void
proxy_register_authed(void *arg, enum auth_result res)
{
	struct reg_pending	*rp = arg;
	struct txn		*st = reg_pending_txn(rp);
	struct sipmsg		*m;
	struct buf		 hdrs;
	char			 hstore[2048];
	struct slice		 realm = { rp->realm, strlen(rp->realm) };

	if (st == NULL || (m = (struct sipmsg *)txn_server_request(st)) ==
	    NULL) {
		log_info("registrar: the REGISTER authenticated is gone");
		reg_pending_free(rp);
		return;
	}
	buf_init_on(&hdrs, hstore, sizeof(hstore));
	switch (res) {
	case AUTH_OK:
		if (!rp->mismatch) {
			proxy_register_shared(m, st->sock, rp, st, &hdrs);
			return;
		}
		log_info("registrar " SLICE_FMT ": REGISTER refused code=403",
		    SLICE_ARG(m->callid));
		proxy_reply_st(st, rp->topvia, 403, "To does not match the "
		    "authenticated user", NULL);
		break;
	case AUTH_UNAVAILABLE:
		log_info("registrar " SLICE_FMT ": REGISTER refused code=500 "
		    "reason=\"nonce-count not checked: Redis down\"",
		    SLICE_ARG(m->callid));
		buf_addf(&hdrs, "Retry-After: %u\r\n", REG_RETRY_AFTER_S);
		proxy_reply_st(st, rp->topvia, 500, NULL, hdrs.p);
		break;
	default:
		/* A replay (or stale): as auth_check() would have it. */
		if (res == AUTH_FAIL)
			guard_auth_failed(&rp->src);
		log_info("registrar %s: challenged%s", rp->aor,
		    res == AUTH_STALE ? " (stale nonce)" : ": nonce-count "
		    "replayed");
		auth_challenge(&hdrs, false, realm, res == AUTH_STALE);
		proxy_reply_st(st, rp->topvia, 401, NULL, hdrs.p);
		break;
	}
	buf_cleanup(&hdrs);
	reg_pending_free(rp);
}

/* REGISTER for one of our domains; m is taken over. */
void
proxy_register_request(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	const struct sip_hline	*th = sipmsg_hdr(m, SH_TO);
	struct reg_pending	*rp = NULL;
	struct sipuri		 tu;
	struct slice		 realm;
	char			 aor[REG_AOR_LEN], err[160];
	char			 hstore[2048];	/* most 200s fit */
	struct buf		 hdrs;
	int			 code;

	err[0] = '\0';
	buf_init_on(&hdrs, hstore, sizeof(hstore));
	if (th == NULL || sipuri_parse(hdr_uri(sipmsg_hvalue(m, th)),
	    &tu) == -1 || tu.user.len == 0) {
		code = 400;
		snprintf(err, sizeof(err), "Bad To: no address-of-record");
		goto reply;
	}
	if (!proxy_ctx_identity(tu.host, &realm)) {
		code = 404;	/* 10.3 step 3: not an AOR of this domain */
		snprintf(err, sizeof(err), "Not Our Domain");
		goto reply;
	}
	if (registrar_shared()) {
		rp = reg_pending_new(m, src);
		if (registrar_aor(tu.user, realm, rp->aor,
		    sizeof(rp->aor)) == -1) {
			reg_pending_free(rp);
			code = 400;
			snprintf(err, sizeof(err), "Address-of-record too "
			    "long");
			goto reply;
		}
		snprintf(rp->realm, sizeof(rp->realm), SLICE_FMT,
		    SLICE_ARG(realm));
	}
	code = proxy_register_auth(m, sock, src, tu.user, realm, rp, &hdrs,
	    err, sizeof(err));
	if (code == -2) {	/* proxy_register_authed() goes on */
		buf_cleanup(&hdrs);
		rp->serial = txn_server_new(m, sock, src)->serial;
		return;
	}
	if (code == -1) {
		reg_pending_free(rp);
		buf_cleanup(&hdrs);
		sipmsg_free(m);
		return;
	}
	if (code != 0) {
		reg_pending_free(rp);
		goto reply;
	}
	if (rp != NULL) {
		proxy_register_shared(m, sock, rp, NULL, &hdrs);
		return;
	}
	if (registrar_aor(tu.user, realm, aor, sizeof(aor)) == -1) {
		code = 400;
		snprintf(err, sizeof(err), "Address-of-record too long");
		goto reply;
	}
	location_write_lock();		/* on the main loop (shard.h) */
	code = registrar_register(m, (struct slice){ aor, strlen(aor) }, sock,
	    src, !guard_known(src) && !proxy_ctx_trusted(src), &hdrs, err,
	    sizeof(err));
	location_unlock();
reply:
	if (code != 200)
		log_info("registrar " SLICE_FMT ": REGISTER refused code=%d "
		    "reason=\"%s\"", SLICE_ARG(m->callid), code, err);
	proxy_reply_new_st(m, sock, src, code, code == 200 ? NULL : err,
	    hdrs.p);
	buf_cleanup(&hdrs);
}
