#ifndef OSPREY_AUTH_H
#define OSPREY_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "buf.h"
#include "sipmsg.h"

/*
 * Digest authentication (RFC 3261 22, RFC 7616, RFC 8760): MD5 and
 * SHA-256, qop=auth, stateless nonces (an HMAC of the time under a server
 * secret) and nonce-count replay protection.
 */

#define AUTH_MD5	0x1
#define AUTH_SHA256	0x2

struct auth_settings {
	char		*users_file;	/* owned; NULL: no authentication */
	uint32_t	 nonce_expiry_s;
	unsigned	 algorithms;	/* AUTH_SHA256 | AUTH_MD5 */
	bool		 sha256_first;	/* offered in this order */
	struct acl	 trusted;	/* sources exempt from authentication */
	bool		 require_tls;	/* no credentials over UDP or TCP */
	struct strlist	 trusted_names;	/* TLS client certificate names */
};

enum auth_result {
	AUTH_OK,
	AUTH_NONE,	/* no credentials for this realm */
	AUTH_FAIL,	/* wrong, unknown user, replayed: the same answer */
	AUTH_STALE,	/* right, but the nonce has expired */
	AUTH_BAD,	/* malformed credentials: 400 */
	AUTH_PENDING,	/* the nonce-count is being checked in Redis */
	AUTH_UNAVAILABLE,	/* Redis could not check it: 500 */
};

struct auth_stats {
	uint64_t	challenges;	/* 401/407 sent */
	uint64_t	failures;	/* credentials that did not pass */
	uint64_t	successes;
	uint64_t	nc_shared;	/* nonce-counts checked in Redis */
	uint64_t	nc_local;	/* Redis down: checked here */
	uint64_t	nc_unavailable;	/* Redis down: refused (500) */
	bool		secret_shared;	/* the nonce secret from Redis */
};

/* The users file, loaded; owned by the auth layer once installed. */
struct auth_users;

struct auth_users *auth_users_load(const char *, char *, size_t);
void	 auth_users_free(struct auth_users *);
unsigned auth_users_count(const struct auth_users *);
void	 auth_users_foreach(const struct auth_users *,
	    void (*)(const char *, void *), void *);
unsigned auth_users_count_now(void);

void	 auth_init(const uint8_t secret[32]);
void	 auth_set(const struct auth_settings *, struct auth_users *);
void	 auth_shutdown(void);
bool	 auth_enabled(void);
const struct auth_stats *auth_stats(void);
bool	 auth_trusted(const struct tp_addr *);
bool	 auth_insecure(const struct tp_addr *);
bool	 auth_trusted_name(const char *);
bool	 auth_user_exists(struct slice user, struct slice realm);
enum auth_result auth_check(const struct sipmsg *, bool proxy,
	    struct slice realm, struct slice *user, char *, size_t);
typedef void auth_done_fn(void *, enum auth_result);
enum auth_result auth_check_async(const struct sipmsg *, bool proxy,
	    struct slice realm, bool local_ok, struct slice *user, char *,
	    size_t, auth_done_fn *, void *);
void	 auth_challenge(struct buf *, bool proxy, struct slice realm,
	    bool stale);
void	 auth_settings_cleanup(struct auth_settings *);
bool	 auth_creds_realm(struct slice, char *, size_t);
void	 auth_stamp(struct slice, char[17]);
bool	 auth_stamp_ok(struct slice, struct slice);

/*
 * The steps of auth_check(), exposed for the unit tests: one Digest
 * credentials value, unquoted (too long: AUTH_FAIL), and judged.
 */
#define AUTH_NONCE_LEN	56
struct auth_creds {
	char		 username[256];
	char		 nonce[AUTH_NONCE_LEN + 1];
	char		 uri[1024];
	char		 response[128];
	char		 cnonce[256];
	char		 qop[32];
	char		 nc[16];
	struct slice	 user;		/* username as sent, into the message */
	unsigned	 algo;		/* AUTH_MD5 or AUTH_SHA256 */
	uint32_t	 nc_value;
	bool		 with_qop;
};

enum auth_result auth_creds_read(const struct sipmsg *, bool, struct slice,
	    struct auth_creds *, char *, size_t);
bool	 auth_creds_match(const struct auth_creds *, struct slice,
	    struct slice);
enum auth_result auth_creds_count(const struct auth_creds *, char *, size_t);

/* Exposed for the unit tests and osprey-passwd. */
void	 auth_hex_digest(unsigned, const char *, size_t, char *);
void	 auth_digest_response(unsigned, const char *, const char *,
	    const char *, const char *, struct slice, const char *, char *);
void	 auth_nonce_make(struct slice realm, uint32_t now,
	    char out[AUTH_NONCE_LEN + 1]);
int	 auth_nonce_check(struct slice nonce, struct slice realm,
	    uint32_t now);

/*
 * The shared state with registrar.backend "redis" (authredis.c): each
 * thread that checks credentials has its own connection on its loop.
 */
struct event_base;
struct redis_settings;
int	 auth_share(struct event_base *, const struct redis_settings *,
	    char *, size_t);
void	 auth_unshare(void);
bool	 authredis_here(void);
/* For authredis.c. */
enum auth_result auth_check_uncounted(const struct sipmsg *, bool,
	    struct slice, struct slice *, struct auth_creds *, char *, size_t);
uint32_t auth_count_lifetime_s(void);
void	 auth_secret_share(const uint8_t[32]);
bool	 auth_nonce_ours(const char *);
enum auth_result auth_count_local(const char *, uint32_t);
void	 auth_count_seen(const char *, uint32_t, bool);
void	 auth_result_count(enum auth_result);

#endif
