/* TLS contexts and name checks for SIP over TLS (OpenSSL 3). */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "xmalloc.h"

/*
 * Hangs off the default SSL_CTX's ex_data (tls_ctx_idx) and dies with it:
 * the reference count is the SSL_CTX's (see tls.h).  SSL_new() takes two
 * references, for ssl->ctx and ssl->session_ctx; when SNI moves ssl->ctx
 * to one of sni[] (which SSL_set_SSL_CTX() up-refs), session_ctx still
 * holds the default one, so this struct, the servername callback's
 * argument, outlives every SSL that may call it.
 */
struct tls_ctx {
	SSL_CTX		*ctx;			/* the default context */
	SSL_CTX		*sni[TLS_MAX_SNI];	/* owned: SNI contexts */
	unsigned	 nsni;
};

static int	tls_ctx_idx = -1;	/* SSL_CTX ex_data: its tls_ctx */
static int	tls_name_idx = -1;	/* SSL ex_data: the name to verify */

/* Append to buf at *off, truncating quietly. */
static void
tls_append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (*off >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < len ? *off + (size_t)n : len - 1;
}

/*
 * An error that says nothing new: "PEM lib", "system lib" and the like
 * (an error of that library came before), or BIO's "no such file" after
 * the errno that said it.
 */
static bool
tls_error_noise(unsigned long e, bool sys)
{
	int	r = ERR_GET_REASON(e);

	if (ERR_SYSTEM_ERROR(e))
		return (false);
	if ((r & ERR_RFLAG_COMMON) &&
	    (r & ~(ERR_RFLAGS_MASK << ERR_RFLAGS_OFFSET)) < 256)
		return (true);
	return (sys && ERR_GET_LIB(e) == ERR_LIB_BIO &&
	    r == BIO_R_NO_SUCH_FILE);
}

const char *
tls_error(SSL *ssl, char *buf, size_t len)
{
	unsigned long	 e;
	const char	*data, *reason, *vstr = NULL;
	size_t		 off = 0;
	long		 vr;
	int		 flags;
	bool		 sys = false;

	if (len == 0)
		return (buf);
	buf[0] = '\0';
	/* The reasons' text (a no-op once any context was made). */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS |
	    OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	if (ssl != NULL && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		vstr = X509_verify_cert_error_string(vr);
		tls_append(buf, len, &off, "certificate verify failed: %s",
		    vstr);
	}
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		/* The verify result said it better. */
		if (vstr != NULL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
			continue;
		if (tls_error_noise(e, sys))
			continue;
		sys = sys || ERR_SYSTEM_ERROR(e);
		tls_append(buf, len, &off, "%s", off > 0 ? "; " : "");
		if (ERR_SYSTEM_ERROR(e)) {
			/* errno; the data is "calling fopen(file, r)". */
			tls_append(buf, len, &off, "%s",
			    strerror(ERR_GET_REASON(e)));
			continue;
		}
		if ((reason = ERR_reason_error_string(e)) != NULL)
			tls_append(buf, len, &off, "%s", reason);
		else
			tls_append(buf, len, &off, "error %lx", e);
		if ((flags & ERR_TXT_STRING) && data != NULL && *data != '\0')
			tls_append(buf, len, &off, " (%.120s)", data);
	}
	if (off == 0)
		snprintf(buf, len, "no error recorded");
	return (buf);
}

/* The daemon has no terminal: an encrypted key is an error. */
static int
tls_no_password(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return (-1);
}

void
tls_settings_free(struct tls_settings *s)
{
	unsigned	i;

	free(s->certificate);
	free(s->key);
	free(s->ca);
	for (i = 0; i < s->nsni; i++) {
		free(s->sni[i].certificate);
		free(s->sni[i].key);
	}
	memset(s, 0, sizeof(*s));
}

/* Freeing the default SSL_CTX frees its tls_ctx (NULL for others). */
static void
tls_ctx_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct tls_ctx	*t = ptr;
	unsigned	 i;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (t == NULL)
		return;
	for (i = 0; i < t->nsni; i++)
		SSL_CTX_free(t->sni[i]);
	free(t);
}

static void
tls_name_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static int
tls_init(char *err, size_t errlen)
{
	if (tls_ctx_idx == -1)
		tls_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
		    tls_ctx_exfree);
	if (tls_name_idx == -1)
		tls_name_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    tls_name_exfree);
	if (tls_ctx_idx == -1 || tls_name_idx == -1) {
		snprintf(err, errlen, "cannot set up OpenSSL");
		return (-1);
	}
	return (0);
}

struct tls_ctx *
tls_ctx_ref(struct tls_ctx *t)
{
	SSL_CTX_up_ref(t->ctx);
	return (t);
}

void
tls_ctx_unref(struct tls_ctx *t)
{
	if (t != NULL)
		SSL_CTX_free(t->ctx);	/* the last one frees t too */
}

/* What every context has: see tls.h. */
static SSL_CTX *
tls_ctx_base(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	char	 why[256];

	if ((ctx = SSL_CTX_new(method)) == NULL) {
		snprintf(err, errlen, "cannot make a TLS context: %s",
		    tls_error(NULL, why, sizeof(why)));
		return (NULL);
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		snprintf(err, errlen, "cannot require TLS 1.2: %s",
		    tls_error(NULL, why, sizeof(why)));
		SSL_CTX_free(ctx);
		return (NULL);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_password);
	return (ctx);
}

/* A certificate's notBefore or notAfter as "2020-01-02 00:00:00Z". */
static void
tls_time(const ASN1_TIME *tm, char *buf, size_t len)
{
	BIO	*b = BIO_new(BIO_s_mem());
	int	 n = 0;

	if (b != NULL && ASN1_TIME_print_ex(b, tm, ASN1_DTFLGS_ISO8601) == 1)
		n = BIO_read(b, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

/*
 * Load the chain in cert and the key in key into ctx: the key must be
 * readable, unencrypted and match the leaf, which must be valid now.
 */
static int
tls_ctx_load(SSL_CTX *ctx, const char *cert, const char *key, char *err,
    size_t errlen)
{
	EVP_PKEY	*pkey = NULL;
	BIO		*b = NULL;
	X509		*leaf;
	unsigned long	 e;
	char		 why[256], when[64];

	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    (leaf = SSL_CTX_get0_certificate(ctx)) == NULL) {
		snprintf(err, errlen, "certificate %s: %s", cert,
		    tls_error(NULL, why, sizeof(why)));
		return (-1);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
		tls_time(X509_get0_notAfter(leaf), when, sizeof(when));
		snprintf(err, errlen, "certificate %s expired on %s", cert,
		    when);
		return (-1);
	}
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
		tls_time(X509_get0_notBefore(leaf), when, sizeof(when));
		snprintf(err, errlen, "certificate %s is not valid before %s",
		    cert, when);
		return (-1);
	}
	if ((b = BIO_new_file(key, "r")) == NULL ||
	    (pkey = PEM_read_bio_PrivateKey(b, NULL, tls_no_password,
	    NULL)) == NULL) {
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
		    (ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ ||
		    ERR_GET_REASON(e) == PEM_R_PROBLEMS_GETTING_PASSWORD)) {
			ERR_clear_error();
			snprintf(err, errlen, "key %s is encrypted: osprey "
			    "needs it unencrypted (readable by its user "
			    "only)", key);
		} else
			snprintf(err, errlen, "key %s: %s", key,
			    tls_error(NULL, why, sizeof(why)));
		goto fail;
	}
	if (X509_check_private_key(leaf, pkey) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "key %s does not match certificate %s",
		    key, cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "key %s with certificate %s: %s", key,
		    cert, tls_error(NULL, why, sizeof(why)));
		goto fail;
	}
	EVP_PKEY_free(pkey);
	BIO_free(b);
	return (0);
fail:
	EVP_PKEY_free(pkey);
	BIO_free(b);
	return (-1);
}

/* Trust the CA file (NULL: the system's store). */
static int
tls_ctx_trust(SSL_CTX *ctx, const char *ca, char *err, size_t errlen)
{
	char	why[256];

	ERR_clear_error();
	if (ca == NULL) {
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "the system's CA store: %s",
			    tls_error(NULL, why, sizeof(why)));
			return (-1);
		}
		return (0);
	}
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		snprintf(err, errlen, "ca %s: %s", ca,
		    tls_error(NULL, why, sizeof(why)));
		return (-1);
	}
	return (0);
}

/* One server SSL_CTX: the default one or an SNI one. */
static SSL_CTX *
tls_server_one(const struct tls_settings *s, const char *cert,
    const char *key, char *err, size_t errlen)
{
	static const unsigned char	 sid[] = "osprey";
	STACK_OF(X509_NAME)		*names;
	SSL_CTX				*ctx;
	char				 why[256];
	int				 mode = SSL_VERIFY_NONE;

	if ((ctx = tls_ctx_base(TLS_server_method(), err, errlen)) == NULL)
		return (NULL);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Sessions resumed with a client certificate need an id context. */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	if (tls_ctx_load(ctx, cert, key, err, errlen) == -1)
		goto fail;
	if (s->verify_client || s->ca != NULL) {
		if (tls_ctx_trust(ctx, s->ca, err, errlen) == -1)
			goto fail;
		/* Tell clients which CA to pick a certificate for. */
		if (s->ca != NULL) {
			if ((names = SSL_load_client_CA_file(s->ca)) == NULL) {
				snprintf(err, errlen, "ca %s: %s", s->ca,
				    tls_error(NULL, why, sizeof(why)));
				goto fail;
			}
			SSL_CTX_set_client_CA_list(ctx, names);
		}
		/*
		 * With a CA but without verify_client a certificate is
		 * asked for and, when one is shown, must verify.
		 */
		mode = SSL_VERIFY_PEER;
		if (s->verify_client)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	}
	SSL_CTX_set_verify(ctx, mode, NULL);
	return (ctx);
fail:
	SSL_CTX_free(ctx);
	return (NULL);
}

/* Is s (not NUL-terminated, len bytes) name, as a whole, in any case? */
static bool
tls_name_eq(const unsigned char *s, size_t len, const char *name,
    size_t namelen)
{
	if (len != namelen || memchr(s, '\0', len) != NULL)
		return (false);
	return (strncasecmp((const char *)s, name, len) == 0);
}

/*
 * The host of a URI subjectAltName that is a SIP domain identity:
 * "sip:host" and nothing else (RFC 5922 7.1).  NULL otherwise.
 */
static const unsigned char *
tls_uri_host(const ASN1_IA5STRING *uri, size_t *len)
{
	const unsigned char	*p = ASN1_STRING_get0_data(uri);
	size_t			 n = (size_t)ASN1_STRING_length(uri), i;

	if (n <= 4 || strncasecmp((const char *)p, "sip:", 4) != 0)
		return (NULL);
	for (i = 4; i < n; i++)
		if (p[i] == '@' || p[i] == ':' || p[i] == ';' ||
		    p[i] == '?' || p[i] == '\0')
			return (NULL);
	*len = n - 4;
	return (p + 4);
}

/* name without brackets ("[::1]") if it is an IP literal, else NULL. */
static const char *
tls_ip_literal(const char *name, char *buf, size_t len)
{
	unsigned char	 a[16];
	size_t		 n = strlen(name);

	if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
		if (n - 2 >= len)
			return (NULL);
		memcpy(buf, name + 1, n - 2);
		buf[n - 2] = '\0';
		return (inet_pton(AF_INET6, buf, a) == 1 ? buf : NULL);
	}
	if (inet_pton(AF_INET, name, a) == 1 ||
	    inet_pton(AF_INET6, name, a) == 1)
		return (name);
	return (NULL);
}

bool
tls_cert_has_name(X509 *x, const char *name)
{
	GENERAL_NAMES		*san;
	const GENERAL_NAME	*g;
	const X509_NAME		*subj;
	const X509_NAME_ENTRY	*ne;
	const unsigned char	*host;
	unsigned char		*cn;
	const char		*lit;
	char			 ip[64];
	size_t			 namelen = strlen(name), hostlen;
	bool			 found = false;
	int			 i, n;

	if ((lit = tls_ip_literal(name, ip, sizeof(ip))) != NULL)
		return (X509_check_ip_asc(x, lit, 0) == 1);
	if (namelen > 1 && name[namelen - 1] == '.')
		namelen--;		/* "example.com." is example.com */
	if (namelen == 0)
		return (false);
	san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (san != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(san) && !found; i++) {
			g = sk_GENERAL_NAME_value(san, i);
			if (g->type == GEN_URI &&
			    (host = tls_uri_host(g->d.uniformResourceIdentifier,
			    &hostlen)) != NULL)
				found = tls_name_eq(host, hostlen, name,
				    namelen);
			else if (g->type == GEN_DNS)
				found = tls_name_eq(
				    ASN1_STRING_get0_data(g->d.dNSName),
				    (size_t)ASN1_STRING_length(g->d.dNSName),
				    name, namelen);
		}
		GENERAL_NAMES_free(san);
		return (found);
	}
	/* No subjectAltName at all: the CN (RFC 5922 7.1, last step). */
	subj = X509_get_subject_name(x);
	i = -1;
	while (!found &&
	    (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
		ne = X509_NAME_get_entry(subj, i);
		if ((n = ASN1_STRING_to_UTF8(&cn,
		    X509_NAME_ENTRY_get_data(ne))) < 0)
			continue;
		found = tls_name_eq(cn, (size_t)n, name, namelen);
		OPENSSL_free(cn);
	}
	return (found);
}

/* Client side, at the leaf: the chain is fine, now the name. */
static int
tls_verify_name(int ok, X509_STORE_CTX *xs)
{
	SSL		*ssl;
	const char	*name;

	if (ok != 1 || X509_STORE_CTX_get_error_depth(xs) != 0)
		return (ok);
	ssl = X509_STORE_CTX_get_ex_data(xs,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	if (ssl == NULL || (name = SSL_get_ex_data(ssl, tls_name_idx)) == NULL)
		return (ok);
	if (tls_cert_has_name(X509_STORE_CTX_get_current_cert(xs), name))
		return (1);
	X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
	return (0);
}

/*
 * SNI: the first context whose certificate has the name the client
 * asked for (a DNS name, wildcards as OpenSSL matches them, or a sip:
 * URI), the default one first; the default one when none has it.
 */
static int
tls_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_ctx	*t = arg;
	const char	*name;
	X509		*x;
	unsigned	 i;

	(void)alert;
	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL || t->nsni == 0)
		return (SSL_TLSEXT_ERR_OK);
	x = SSL_CTX_get0_certificate(t->ctx);
	if (X509_check_host(x, name, 0, 0, NULL) == 1 ||
	    tls_cert_has_name(x, name))
		return (SSL_TLSEXT_ERR_OK);
	for (i = 0; i < t->nsni; i++) {
		x = SSL_CTX_get0_certificate(t->sni[i]);
		if (X509_check_host(x, name, 0, 0, NULL) == 1 ||
		    tls_cert_has_name(x, name)) {
			if (SSL_set_SSL_CTX(ssl, t->sni[i]) == NULL)
				return (SSL_TLSEXT_ERR_ALERT_FATAL);
			break;
		}
	}
	return (SSL_TLSEXT_ERR_OK);
}

/* The tls_ctx around ctx, which it now owns (freed on failure). */
static struct tls_ctx *
tls_ctx_wrap(SSL_CTX *ctx, char *err, size_t errlen)
{
	struct tls_ctx	*t = xcalloc(1, sizeof(*t));

	t->ctx = ctx;
	if (SSL_CTX_set_ex_data(ctx, tls_ctx_idx, t) != 1) {
		snprintf(err, errlen, "cannot set up OpenSSL");
		free(t);
		SSL_CTX_free(ctx);
		return (NULL);
	}
	return (t);
}

struct tls_ctx *
tls_ctx_server(const struct tls_settings *s, char *err, size_t errlen)
{
	struct tls_ctx	*t;
	SSL_CTX		*ctx;
	unsigned	 i;

	if (tls_init(err, errlen) == -1)
		return (NULL);
	if (s->certificate == NULL || s->key == NULL) {
		snprintf(err, errlen, "a TLS server needs a certificate and "
		    "a key");
		return (NULL);
	}
	if (s->nsni > TLS_MAX_SNI) {
		snprintf(err, errlen, "at most %d SNI certificates",
		    TLS_MAX_SNI);
		return (NULL);
	}
	if ((ctx = tls_server_one(s, s->certificate, s->key, err,
	    errlen)) == NULL)
		return (NULL);
	if ((t = tls_ctx_wrap(ctx, err, errlen)) == NULL)
		return (NULL);
	for (i = 0; i < s->nsni; i++) {
		if (s->sni[i].certificate == NULL || s->sni[i].key == NULL) {
			snprintf(err, errlen, "SNI certificate %u needs a "
			    "certificate and a key", i + 1);
			goto fail;
		}
		if ((t->sni[i] = tls_server_one(s, s->sni[i].certificate,
		    s->sni[i].key, err, errlen)) == NULL)
			goto fail;
		t->nsni++;
	}
	if (t->nsni > 0) {
		SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername);
		SSL_CTX_set_tlsext_servername_arg(ctx, t);
	}
	return (t);
fail:
	tls_ctx_unref(t);
	return (NULL);
}

struct tls_ctx *
tls_ctx_client(const char *ca, const char *cert, const char *key, char *err,
    size_t errlen)
{
	SSL_CTX	*ctx;

	if (tls_init(err, errlen) == -1)
		return (NULL);
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "a client certificate needs both a "
		    "certificate and a key");
		return (NULL);
	}
	if ((ctx = tls_ctx_base(TLS_client_method(), err, errlen)) == NULL)
		return (NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_name);
	if (tls_ctx_trust(ctx, ca, err, errlen) == -1)
		goto fail;
	if (cert != NULL && tls_ctx_load(ctx, cert, key, err, errlen) == -1)
		goto fail;
	return (tls_ctx_wrap(ctx, err, errlen));
fail:
	SSL_CTX_free(ctx);
	return (NULL);
}

SSL *
tls_ssl_server(struct tls_ctx *t)
{
	SSL	*ssl;

	if ((ssl = SSL_new(t->ctx)) == NULL)
		return (NULL);
	SSL_set_accept_state(ssl);
	return (ssl);
}

SSL *
tls_ssl_client(struct tls_ctx *t, const char *name)
{
	SSL		*ssl;
	char		*dup, ip[64];
	const char	*lit;
	size_t		 len;

	if (name == NULL || (len = strlen(name)) == 0 || len >= TLS_NAME_LEN)
		return (NULL);
	if ((ssl = SSL_new(t->ctx)) == NULL)
		return (NULL);
	if ((lit = tls_ip_literal(name, ip, sizeof(ip))) != NULL) {
		/* No SNI for an address (RFC 6066 3); OpenSSL checks it. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    lit) != 1)
			goto fail;
	} else {
		dup = xstrdup(name);
		if (len > 1 && dup[len - 1] == '.')
			dup[len - 1] = '\0';	/* SNI has no final dot */
		if (SSL_set_ex_data(ssl, tls_name_idx, dup) != 1) {
			free(dup);
			goto fail;
		}
		if (SSL_set_tlsext_host_name(ssl, dup) != 1)
			goto fail;
	}
	SSL_set_connect_state(ssl);
	return (ssl);
fail:
	SSL_free(ssl);
	return (NULL);
}

int
tls_check_name(SSL *ssl, const char *name)
{
	X509	*x;

	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    (x = SSL_get0_peer_certificate(ssl)) == NULL)
		return (-1);
	return (tls_cert_has_name(x, name) ? 0 : -1);
}

/* Add a name (len bytes) to out, lower case, once; odd names are left. */
static void
tls_names_add(struct tls_names *out, const unsigned char *s, size_t len)
{
	char		 buf[TLS_NAME_LEN];
	unsigned	 i;
	size_t		 j;

	if (out->n == TLS_MAX_NAMES || len == 0 || len >= sizeof(buf))
		return;
	for (j = 0; j < len; j++) {
		buf[j] = (char)tolower(s[j]);
		if (!islower((unsigned char)buf[j]) &&
		    !isdigit((unsigned char)buf[j]) &&
		    strchr(".*_-", buf[j]) == NULL)
			return;
	}
	buf[len] = '\0';
	for (i = 0; i < out->n; i++)
		if (strcmp(out->name[i], buf) == 0)
			return;
	memcpy(out->name[out->n++], buf, len + 1);
}

int
tls_peer_names(SSL *ssl, struct tls_names *out)
{
	GENERAL_NAMES		*san;
	const GENERAL_NAME	*g;
	const X509_NAME		*subj;
	const unsigned char	*host;
	unsigned char		*cn;
	X509			*x;
	size_t			 len;
	int			 i, n;

	out->n = 0;
	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    (x = SSL_get0_peer_certificate(ssl)) == NULL)
		return (-1);
	if ((san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
	    NULL)) != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(san); i++) {
			g = sk_GENERAL_NAME_value(san, i);
			if (g->type == GEN_URI &&
			    (host = tls_uri_host(g->d.uniformResourceIdentifier,
			    &len)) != NULL)
				tls_names_add(out, host, len);
			else if (g->type == GEN_DNS)
				tls_names_add(out,
				    ASN1_STRING_get0_data(g->d.dNSName),
				    (size_t)ASN1_STRING_length(g->d.dNSName));
		}
		GENERAL_NAMES_free(san);
		return ((int)out->n);
	}
	subj = X509_get_subject_name(x);
	i = -1;
	while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
		n = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(subj, i)));
		if (n < 0)
			continue;
		tls_names_add(out, cn, (size_t)n);
		OPENSSL_free(cn);
	}
	return ((int)out->n);
}
