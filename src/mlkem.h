/* ML-KEM-768 (FIPS 203), written from the standard: key generation,
 * encapsulation and decapsulation with implicit rejection, plus the input
 * checks of FIPS 203 s7.2/s7.3 (the encapsulation-key modulus check and the
 * decapsulation-key hash check). Keccak (SHA3-256/512, SHAKE128/256) comes
 * from OpenSSL's EVP; the lattice arithmetic is ours and does not branch or
 * index memory on secret values. The client of mlkem768x25519-sha256 needs
 * keygen and decaps; encaps is here for tests and for peers we script. */
#ifndef EVSSH_MLKEM_H
#define EVSSH_MLKEM_H

#include <stddef.h>

#define MLKEM768_EK_BYTES 1184   /* encapsulation (public) key */
#define MLKEM768_DK_BYTES 2400   /* decapsulation (private) key, FIPS 203 expanded form */
#define MLKEM768_CT_BYTES 1088
#define MLKEM768_SS_BYTES 32
#define MLKEM768_SEED_BYTES 64   /* d || z */

/* All return 0 (EVSSH_OK) or a negative EVSSH_E* code:
   EVSSH_ENOMEM when OpenSSL's SHA-3 fails (or is missing), EVSSH_EINVAL for
   an input that fails FIPS 203's checks. Secrets written through dk and ss. */
int mlkem768_keygen(unsigned char ek[MLKEM768_EK_BYTES], unsigned char dk[MLKEM768_DK_BYTES]);
/* ML-KEM.KeyGen_internal(d, z): seed = d || z (known answers, test hooks). */
int mlkem768_keygen_derand(const unsigned char seed[MLKEM768_SEED_BYTES],
                           unsigned char ek[MLKEM768_EK_BYTES], unsigned char dk[MLKEM768_DK_BYTES]);
/* EVSSH_EINVAL when ek fails the modulus check (a coefficient >= q). */
int mlkem768_encaps(const unsigned char ek[MLKEM768_EK_BYTES], unsigned char ct[MLKEM768_CT_BYTES],
                    unsigned char ss[MLKEM768_SS_BYTES]);
int mlkem768_encaps_derand(const unsigned char ek[MLKEM768_EK_BYTES], const unsigned char m[32],
                           unsigned char ct[MLKEM768_CT_BYTES], unsigned char ss[MLKEM768_SS_BYTES]);
/* Always yields a key for a well-formed ciphertext: a ciphertext that does
   not re-encrypt to itself gives the implicit-rejection key J(z || c), in
   constant time. EVSSH_EINVAL when dk fails the hash check. */
int mlkem768_decaps(const unsigned char dk[MLKEM768_DK_BYTES], const unsigned char ct[MLKEM768_CT_BYTES],
                    unsigned char ss[MLKEM768_SS_BYTES]);

/* Test hook: KeyGen_internal from its first step's output (rho || sigma)
   on: known-answer files made with FIPS 203's 2023 draft, whose
   (rho, sigma) = G(d) lacks the final standard's k byte, check everything
   after that line through this. */
int mlkem768_keygen_from_rho_sigma(const unsigned char rho_sigma[64], const unsigned char z[32],
                                   unsigned char ek[MLKEM768_EK_BYTES], unsigned char dk[MLKEM768_DK_BYTES]);
/* Test hook: the matrix A-hat that ek's seed rho expands to, as
   ByteEncode12 of A[i][j] for i, j in row order (9 * 384 bytes). */
int mlkem768_expand_a(const unsigned char rho[32], unsigned char out[9 * 384]);

#endif
