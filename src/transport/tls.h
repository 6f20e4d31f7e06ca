#ifndef OSPREY_TLS_H
#define OSPREY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/*
 * TLS contexts for SIP over TLS (RFC 3261 26.3.1, RFC 5922), OpenSSL 3.
 *
 * Every context: TLS 1.2 or later, no compression, no renegotiation,
 * SSL_MODE_RELEASE_BUFFERS (an idle connection gives its 17 KB read and
 * write buffers back), SSL_OP_IGNORE_UNEXPECTED_EOF (a peer that closes
 * without close_notify is an end of stream, not an error: SIP frames
 * itself), OpenSSL's default cipher suites and security level.  A server
 * context prefers its own cipher order.  Encrypted keys are refused (the
 * daemon cannot ask for a passphrase).
 *
 * A certificate (server, SNI or client) that is expired or not yet valid
 * when it is loaded is refused: the context is not made, and err says
 * "certificate FILE expired on DATE" or "... is not valid before DATE".
 * An admin must not start, nor reload into, a certificate that peers
 * will reject; on SIGHUP the old context stays in use.
 *
 * Errors go to the caller's err buffer ("certificate FILE: reason", the
 * reason being OpenSSL's); nothing here logs.
 */

#define TLS_MAX_SNI	16	/* extra certificates chosen by SNI */
#define TLS_MAX_NAMES	8	/* names tls_peer_names() returns */
#define TLS_NAME_LEN	256	/* a DNS name and its NUL */

/* One extra certificate of the server, chosen by SNI. */
struct tls_sni {
	char		*certificate;	/* PEM chain, leaf first (owned) */
	char		*key;		/* PEM private key (owned) */
};

/*
 * What conf.c fills from a tls = { ... } group.  Strings are owned.
 * Client certificates: verify_client makes them required; a ca without
 * verify_client asks for one and checks it when a client shows one (a
 * client without one still gets in); neither, and none is asked for.
 * verify_client without a ca checks them against the system's store.
 */
struct tls_settings {
	char		*certificate;	/* PEM chain, leaf first */
	char		*key;		/* PEM private key, not encrypted */
	char		*ca;		/* PEM CAs for client certificates */
	bool		 verify_client;	/* a client must show a certificate */
	struct tls_sni	 sni[TLS_MAX_SNI];
	unsigned	 nsni;
};

/* Free the strings and zero the struct (which is not freed). */
void	tls_settings_free(struct tls_settings *);

/*
 * A refcounted SSL_CTX (plus, for a server, one SSL_CTX per SNI
 * certificate).  Lifetime:
 *
 * - tls_ctx_server() and tls_ctx_client() return it with one reference,
 *   the caller's (the listener's, or the client side's).
 * - Every SSL made from it by tls_ssl_server()/tls_ssl_client() holds a
 *   reference of its own: SSL_new() up-refs the SSL_CTX, and SSL_free()
 *   (bufferevent_free() with BEV_OPT_CLOSE_ON_FREE) drops it.  The
 *   count is the SSL_CTX's own; the struct hangs off its ex_data and is
 *   freed, SNI contexts included, when the last reference goes.
 * - On reload the owner makes a new context and unrefs the old one: new
 *   connections get the new certificates, open connections keep theirs
 *   until they close, and the old context is freed with the last of them.
 *
 * Everything runs on one thread; the count is OpenSSL's (atomic) anyway.
 */
struct tls_ctx;

/* A server context; NULL with err filled when a file is bad. */
struct tls_ctx	*tls_ctx_server(const struct tls_settings *, char *, size_t);
/*
 * A client context: it verifies the server's chain against the CA file
 * (NULL: the system's default store) and, per SSL, its name (see
 * tls_ssl_client()).  cert and key (both or neither) are a client
 * certificate for mutual TLS.  NULL with err filled on error.
 */
struct tls_ctx	*tls_ctx_client(const char *, const char *, const char *,
		    char *, size_t);
/* Another reference; returns its argument. */
struct tls_ctx	*tls_ctx_ref(struct tls_ctx *);
/* Drop a reference (NULL is a no-op). */
void		 tls_ctx_unref(struct tls_ctx *);

/* A new server-side SSL (accept state); NULL on allocation failure. */
SSL	*tls_ssl_server(struct tls_ctx *);
/*
 * A new client-side SSL (connect state) towards name, the domain (or IP
 * literal, "[::1]" too) the request is sent to: it sends name as SNI
 * (not an IP literal) and the handshake fails with "hostname mismatch"
 * unless the verified certificate has name as tls_cert_has_name() says.
 * NULL when name is empty or too long, or on allocation failure.
 */
SSL	*tls_ssl_client(struct tls_ctx *, const char *);

/*
 * Does the certificate carry name as a SIP domain identity (RFC 5922
 * 7.1, 7.2)?  When it has a subjectAltName: a URI "sip:name" (a scheme
 * and a host part only: no user, port or parameters) or a DNS name
 * equal to name; else (no subjectAltName at all) a subject CN equal to
 * name.  Comparison is whole and case-insensitive, and wildcards are
 * literal: "*.example.com" matches only "*.example.com".  An IP literal
 * matches an iPAddress subjectAltName only.
 */
bool	tls_cert_has_name(X509 *, const char *);
/*
 * After the handshake: 0 when the peer's certificate was verified and
 * has name (RFC 5923 reuse of a connection for another domain), else -1.
 */
int	tls_check_name(SSL *, const char *);

/* The names of a peer's verified certificate. */
struct tls_names {
	char		 name[TLS_MAX_NAMES][TLS_NAME_LEN];
	unsigned	 n;
};
/*
 * The SIP domain identities of the peer's verified certificate, lower
 * case, without duplicates: the host part of each sip: URI and each DNS
 * subjectAltName, or when there is no subjectAltName its CN.  A name
 * with a character outside [a-z0-9.*_-] is left out.  Returns their
 * number, or -1 when the peer showed no certificate or it was not
 * verified.
 */
int	tls_peer_names(SSL *, struct tls_names *);

/*
 * Why a TLS operation failed, for a log line: the SSL's verify result
 * when it is not OK ("certificate verify failed: hostname mismatch"),
 * then OpenSSL's error queue, which it empties.  ssl may be NULL.
 * Returns buf.
 */
const char	*tls_error(SSL *, char *, size_t);

#endif
