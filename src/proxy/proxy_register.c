/*
 * The REGISTER front door (RFC 3261 10.3): a REGISTER whose Request-URI is
 * one of our domains is answered here, after digest authentication, by
 * the registrar.  It is never forwarded.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "guard.h"
#include "log.h"
#include "proxy_int.h"
#include "registrar.h"

/*
 * Authenticate a REGISTER for the address-of-record user@realm (10.3 steps
 * 4-5).  Returns 0 to go on, -1 when a challenge went out, or a status.
 */
static int
proxy_register_auth(const struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src, struct slice aor_user, struct slice realm,
    char *err, size_t errlen)
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
	res = auth_check(m, false, realm, &user, err, errlen);
	if (res == AUTH_FAIL || res == AUTH_BAD)
		guard_auth_failed(src);
	if (res == AUTH_BAD)
		return (400);
	if (res != AUTH_OK) {
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
		return (403);
	}
	return (0);
}

/* REGISTER for one of our domains; m is taken over. */
void
proxy_register_request(struct sipmsg *m, struct tp_sock *sock,
    const struct tp_addr *src)
{
	const struct sip_hline	*th = sipmsg_hdr(m, SH_TO);
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
	code = proxy_register_auth(m, sock, src, tu.user, realm, err,
	    sizeof(err));
	if (code == -1) {
		buf_cleanup(&hdrs);
		sipmsg_free(m);
		return;
	}
	if (code != 0)
		goto reply;
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
