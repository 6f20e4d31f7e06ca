#ifndef OSPREY_DIGEST_H
#define OSPREY_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/*
 * MD5 (RFC 1321) and SHA-256 (FIPS 180-4) over caller storage, and
 * HMAC-SHA256 (RFC 2104) with its key schedule done once: the hashes of
 * digest authentication without a heap allocation or a provider look-up
 * per use (OpenSSL 3's EVP allocates a context on every init).
 */

#define DIGEST_MD5	0x1	/* the values of AUTH_MD5, AUTH_SHA256 */
#define DIGEST_SHA256	0x2
#define DIGEST_MAX	32	/* bytes of the longest hash */

struct digest {
	uint32_t	h[8];		/* MD5 uses 4 */
	uint64_t	n;		/* bytes so far */
	uint8_t		blk[64];
	unsigned	algo;
};

struct digest_hmac {
	struct digest	inner;		/* key ^ ipad absorbed */
	struct digest	outer;		/* key ^ opad absorbed */
};

void	digest_init(struct digest *, unsigned algo);
void	digest_update(struct digest *, const void *, size_t);
size_t	digest_final(struct digest *, uint8_t out[DIGEST_MAX]);
size_t	digest_final_hex(struct digest *, char out[2 * DIGEST_MAX + 1]);
void	digest_hex(char *out, const uint8_t *, size_t);

void	digest_hmac_init(struct digest_hmac *, const void *key, size_t);
void	digest_hmac(const struct digest_hmac *, const void *, size_t,
	    uint8_t out[32]);
void	digest_hmac_cleanup(struct digest_hmac *);

#endif
