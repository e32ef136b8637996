/* Streamlined NTRU Prime 761 (sntrup761, the KEM of RFC 9941's
 * sntrup761x25519-sha512): key generation, encapsulation and decapsulation
 * with implicit rejection, written from the NTRU Prime specification.
 * SHA-512 comes from OpenSSL; the ring arithmetic is ours and runs in time
 * independent of secrets. */
#ifndef EVSSH_SNTRUP761_H
#define EVSSH_SNTRUP761_H

#include <stddef.h>

#define SNTRUP761_PK_BYTES 1158
#define SNTRUP761_SK_BYTES 1763
#define SNTRUP761_CT_BYTES 1039
#define SNTRUP761_SS_BYTES 32

/* Where random bytes come from: RAND_priv_bytes unless a test supplies its
   own (deterministic) source. Returns 0 on success. */
typedef int (*sntrup761_rng)(void *ctx, unsigned char *out, size_t len);

/* 0 (EVSSH_OK) or EVSSH_ENOMEM (randomness or SHA-512 failed). */
int sntrup761_keygen(unsigned char pk[SNTRUP761_PK_BYTES], unsigned char sk[SNTRUP761_SK_BYTES],
                     sntrup761_rng rng, void *rng_ctx);
int sntrup761_encaps(const unsigned char pk[SNTRUP761_PK_BYTES], unsigned char ct[SNTRUP761_CT_BYTES],
                     unsigned char ss[SNTRUP761_SS_BYTES], sntrup761_rng rng, void *rng_ctx);
/* Any ciphertext yields a key: one that does not re-encrypt to itself gives
   the implicit-rejection key, without a secret-dependent branch. */
int sntrup761_decaps(const unsigned char sk[SNTRUP761_SK_BYTES], const unsigned char ct[SNTRUP761_CT_BYTES],
                     unsigned char ss[SNTRUP761_SS_BYTES]);

#endif
