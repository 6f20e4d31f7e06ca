/*
 * MD5 and SHA-256 in plain C on the caller's struct, and HMAC-SHA256 from
 * saved inner and outer states.  The inputs of digest authentication are a
 * few blocks long, so what matters is what is around the compression: no
 * allocation, no lock, no look-up, no printf for the hex.  The unit tests
 * check both against OpenSSL on every length from 0 to a few blocks.
 */
#include "config.h"

#include <string.h>

#include "buf.h"
#include "digest.h"

static const uint32_t md5_k[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
	0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
	0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
	0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
	0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t
rotl(uint32_t x, unsigned n)
{
	return ((x << n) | (x >> (32 - n)));
}

static inline uint32_t
rotr(uint32_t x, unsigned n)
{
	return ((x >> n) | (x << (32 - n)));
}

/*
 * RFC 1321 3.4, one step; the rounds unrolled (a loop with a switch costs
 * three times as much).
 */
#define MD5_F(x, y, z)	((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z)	((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z)	((x) ^ (y) ^ (z))
#define MD5_I(x, y, z)	((y) ^ ((x) | ~(z)))
#define MD5_STEP(f, a, b, c, d, i, g, s)				\
	(a) = (b) + rotl((a) + f((b), (c), (d)) + md5_k[i] + m[g], (s))

static void
md5_block(uint32_t h[4], const uint8_t *p)
{
	uint32_t	m[16], a = h[0], b = h[1], c = h[2], d = h[3];
	unsigned	i;

	for (i = 0; i < 16; i++)
		m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
		    (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
	for (i = 0; i < 16; i += 4) {
		MD5_STEP(MD5_F, a, b, c, d, i, i, 7);
		MD5_STEP(MD5_F, d, a, b, c, i + 1, i + 1, 12);
		MD5_STEP(MD5_F, c, d, a, b, i + 2, i + 2, 17);
		MD5_STEP(MD5_F, b, c, d, a, i + 3, i + 3, 22);
	}
	for (i = 16; i < 32; i += 4) {
		MD5_STEP(MD5_G, a, b, c, d, i, (5 * i + 1) & 15, 5);
		MD5_STEP(MD5_G, d, a, b, c, i + 1, (5 * i + 6) & 15, 9);
		MD5_STEP(MD5_G, c, d, a, b, i + 2, (5 * i + 11) & 15, 14);
		MD5_STEP(MD5_G, b, c, d, a, i + 3, (5 * i + 16) & 15, 20);
	}
	for (i = 32; i < 48; i += 4) {
		MD5_STEP(MD5_H, a, b, c, d, i, (3 * i + 5) & 15, 4);
		MD5_STEP(MD5_H, d, a, b, c, i + 1, (3 * i + 8) & 15, 11);
		MD5_STEP(MD5_H, c, d, a, b, i + 2, (3 * i + 11) & 15, 16);
		MD5_STEP(MD5_H, b, c, d, a, i + 3, (3 * i + 14) & 15, 23);
	}
	for (i = 48; i < 64; i += 4) {
		MD5_STEP(MD5_I, a, b, c, d, i, (7 * i) & 15, 6);
		MD5_STEP(MD5_I, d, a, b, c, i + 1, (7 * i + 7) & 15, 10);
		MD5_STEP(MD5_I, c, d, a, b, i + 2, (7 * i + 14) & 15, 15);
		MD5_STEP(MD5_I, b, c, d, a, i + 3, (7 * i + 21) & 15, 21);
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
}

/* FIPS 180-4 6.2.2, eight rounds at a time with the names rotated. */
#define SHA_S0(x)	(rotr((x), 2) ^ rotr((x), 13) ^ rotr((x), 22))
#define SHA_S1(x)	(rotr((x), 6) ^ rotr((x), 11) ^ rotr((x), 25))
#define SHA_ROUND(a, b, c, d, e, f, g, h, i) do {			\
	uint32_t t_ = (h) + SHA_S1(e) + ((g) ^ ((e) & ((f) ^ (g)))) +	\
	    sha256_k[i] + w[i];						\
	(d) += t_;							\
	(h) = t_ + SHA_S0(a) + (((a) & (b)) | ((c) & ((a) | (b))));	\
} while (0)

static void
sha256_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t	w[64], a = h[0], b = h[1], c = h[2], d = h[3],
			e = h[4], f = h[5], g = h[6], k = h[7];
	unsigned	i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		    (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
	for (i = 16; i < 64; i++)
		w[i] = w[i - 16] + (rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^
		    (w[i - 15] >> 3)) + w[i - 7] + (rotr(w[i - 2], 17) ^
		    rotr(w[i - 2], 19) ^ (w[i - 2] >> 10));
	for (i = 0; i < 64; i += 8) {
		SHA_ROUND(a, b, c, d, e, f, g, k, i);
		SHA_ROUND(k, a, b, c, d, e, f, g, i + 1);
		SHA_ROUND(g, k, a, b, c, d, e, f, i + 2);
		SHA_ROUND(f, g, k, a, b, c, d, e, i + 3);
		SHA_ROUND(e, f, g, k, a, b, c, d, i + 4);
		SHA_ROUND(d, e, f, g, k, a, b, c, i + 5);
		SHA_ROUND(c, d, e, f, g, k, a, b, i + 6);
		SHA_ROUND(b, c, d, e, f, g, k, a, i + 7);
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += k;
}

static void
digest_block(struct digest *d, const uint8_t *p)
{
	if (d->algo == DIGEST_SHA256)
		sha256_block(d->h, p);
	else
		md5_block(d->h, p);
}

void
digest_init(struct digest *d, unsigned algo)
{
	static const uint32_t	md5_iv[4] = {
		0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };
	static const uint32_t	sha256_iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

	d->algo = algo == DIGEST_SHA256 ? DIGEST_SHA256 : DIGEST_MD5;
	d->n = 0;
	if (d->algo == DIGEST_SHA256)
		memcpy(d->h, sha256_iv, sizeof(sha256_iv));
	else
		memcpy(d->h, md5_iv, sizeof(md5_iv));
}

void
digest_update(struct digest *d, const void *data, size_t len)
{
	const uint8_t	*p = data;
	size_t		 used = (size_t)(d->n & 63), k;

	d->n += len;
	if (used > 0) {
		k = 64 - used < len ? 64 - used : len;
		memcpy(d->blk + used, p, k);
		p += k;
		len -= k;
		if (used + k < 64)
			return;
		digest_block(d, d->blk);
	}
	for (; len >= 64; p += 64, len -= 64)
		digest_block(d, p);
	memcpy(d->blk, p, len);
}

/* The hash (16 or 32 bytes); d is used up. */
size_t
digest_final(struct digest *d, uint8_t out[DIGEST_MAX])
{
	uint64_t	bits = d->n * 8;
	size_t		used = (size_t)(d->n & 63);
	unsigned	i;

	d->blk[used++] = 0x80;
	if (used > 56) {
		memset(d->blk + used, 0, 64 - used);
		digest_block(d, d->blk);
		used = 0;
	}
	memset(d->blk + used, 0, 56 - used);
	for (i = 0; i < 8; i++)		/* MD5 little-, SHA-256 big-endian */
		d->blk[56 + i] = (uint8_t)(bits >> (d->algo == DIGEST_SHA256 ?
		    56 - 8 * i : 8 * i));
	digest_block(d, d->blk);
	if (d->algo == DIGEST_SHA256) {
		for (i = 0; i < 32; i++)
			out[i] = (uint8_t)(d->h[i / 4] >> (24 - 8 * (i % 4)));
		return (32);
	}
	for (i = 0; i < 16; i++)
		out[i] = (uint8_t)(d->h[i / 4] >> (8 * (i % 4)));
	return (16);
}

/* Lower-case hex of n bytes, NUL terminated: 2n + 1 bytes of out. */
void
digest_hex(char *out, const uint8_t *p, size_t n)
{
	fmt_hex(out, p, n);
}

/* The hash in hex (32 or 64 digits); returns the digits. */
size_t
digest_final_hex(struct digest *d, char out[2 * DIGEST_MAX + 1])
{
	uint8_t	md[DIGEST_MAX];
	size_t	n = digest_final(d, md);

	digest_hex(out, md, n);
	return (2 * n);
}

/* RFC 2104 with SHA-256: a key of at most one block is used as it is. */
void
digest_hmac_init(struct digest_hmac *h, const void *key, size_t len)
{
	uint8_t		k[64], pad[64];
	unsigned	i;

	memset(k, 0, sizeof(k));
	if (len > sizeof(k)) {
		struct digest	d;

		digest_init(&d, DIGEST_SHA256);
		digest_update(&d, key, len);
		digest_final(&d, k);
		explicit_bzero(&d, sizeof(d));
	} else
		memcpy(k, key, len);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	digest_init(&h->inner, DIGEST_SHA256);
	digest_update(&h->inner, pad, 64);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	digest_init(&h->outer, DIGEST_SHA256);
	digest_update(&h->outer, pad, 64);
	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
}

void
digest_hmac(const struct digest_hmac *h, const void *data, size_t len,
    uint8_t out[32])
{
	struct digest	d = h->inner;
	uint8_t		in[DIGEST_MAX];

	digest_update(&d, data, len);
	digest_final(&d, in);
	d = h->outer;
	digest_update(&d, in, 32);
	digest_final(&d, out);
	explicit_bzero(&d, sizeof(d));
	explicit_bzero(in, sizeof(in));
}

void
digest_hmac_cleanup(struct digest_hmac *h)
{
	explicit_bzero(h, sizeof(*h));
}
