/* mlkem.c owns ML-KEM-768 as FIPS 203 defines it: the number-theoretic
 * transform over Z_3329, sampling (SampleNTT from SHAKE128, the centred
 * binomial distribution from SHAKE256), compression and byte encodings,
 * K-PKE and the Fujisaki-Okamoto wrapper with implicit rejection. Values are
 * kept canonical in [0, q); every reduction is a multiply-and-shift with a
 * masked correction, so nothing branches or indexes on secret data. The
 * only data-dependent loop is rejection sampling on the public seed rho. */
#include "mlkem.h"
#include "ossl.h"

#include "evssh.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>

#define N 256
#define Q 3329
#define K 3
#define ETA1 2
#define ETA2 2
#define DU 10
#define DV 4
#define POLY_BYTES 384                       /* ByteEncode12 of one polynomial */
#define PKE_DK_BYTES (K * POLY_BYTES)        /* 1152 */
#define C1_BYTES (K * N * DU / 8)            /* 960 */
#define C2_BYTES (N * DV / 8)                /* 128 */

typedef struct { uint16_t c[N]; } poly;
typedef struct { poly p[K]; } polyvec;

/* 17^BitRev7(i) mod q (FIPS 203 Appendix A), for NTT and NTT^-1 */
static const uint16_t zetas[128] = {
    1, 1729, 2580, 3289, 2642, 630, 1897, 848, 1062, 1919, 193, 797, 2786, 3260, 569, 1746,
    296, 2447, 1339, 1476, 3046, 56, 2240, 1333, 1426, 2094, 535, 2882, 2393, 2879, 1974, 821,
    289, 331, 3253, 1756, 1197, 2304, 2277, 2055, 650, 1977, 2513, 632, 2865, 33, 1320, 1915,
    2319, 1435, 807, 452, 1438, 2868, 1534, 2402, 2647, 2617, 1481, 648, 2474, 3110, 1227, 910,
    17, 2761, 583, 2649, 1637, 723, 2288, 1100, 1409, 2662, 3281, 233, 756, 2156, 3015, 3050,
    1703, 1651, 2789, 1789, 1847, 952, 1461, 2687, 939, 2308, 2437, 2388, 733, 2337, 268, 641,
    1584, 2298, 2037, 3220, 375, 2549, 2090, 1645, 1063, 319, 2773, 757, 2099, 561, 2466, 2594,
    2804, 1092, 403, 1026, 1143, 2150, 2775, 886, 1722, 1212, 1874, 1029, 2110, 2935, 885, 2154};

/* 17^(2*BitRev7(i)+1) mod q, the moduli of the degree-2 factors (MultiplyNTTs) */
static const uint16_t gammas[128] = {
    17, 3312, 2761, 568, 583, 2746, 2649, 680, 1637, 1692, 723, 2606, 2288, 1041, 1100, 2229,
    1409, 1920, 2662, 667, 3281, 48, 233, 3096, 756, 2573, 2156, 1173, 3015, 314, 3050, 279,
    1703, 1626, 1651, 1678, 2789, 540, 1789, 1540, 1847, 1482, 952, 2377, 1461, 1868, 2687, 642,
    939, 2390, 2308, 1021, 2437, 892, 2388, 941, 733, 2596, 2337, 992, 268, 3061, 641, 2688,
    1584, 1745, 2298, 1031, 2037, 1292, 3220, 109, 375, 2954, 2549, 780, 2090, 1239, 1645, 1684,
    1063, 2266, 319, 3010, 2773, 556, 757, 2572, 2099, 1230, 561, 2768, 2466, 863, 2594, 735,
    2804, 525, 1092, 2237, 403, 2926, 1026, 2303, 1143, 2186, 2150, 1179, 2775, 554, 886, 2443,
    1722, 1607, 1212, 2117, 1874, 1455, 1029, 2300, 2110, 1219, 2935, 394, 885, 2444, 2154, 1175};

/* ------------------------------------------------------- arithmetic */

/* x mod q for x < 2^26 (products of two canonical values and small sums):
   floor(x * floor(2^36/q) / 2^36) undershoots x/q by less than 1, so one
   masked subtraction finishes. */
static inline uint16_t reduce(uint32_t x) {
  uint32_t t = (uint32_t)(((uint64_t)x * 20642678u) >> 36);
  int32_t r = (int32_t)(x - t * Q) - Q;
  r += (r >> 31) & Q;
  return (uint16_t)r;
}

static inline uint16_t add_q(uint16_t a, uint16_t b) {
  int32_t r = (int32_t)a + b - Q;
  r += (r >> 31) & Q;
  return (uint16_t)r;
}

static inline uint16_t sub_q(uint16_t a, uint16_t b) {
  int32_t r = (int32_t)a - b;
  r += (r >> 31) & Q;
  return (uint16_t)r;
}

static inline uint16_t mul_q(uint16_t a, uint16_t b) { return reduce((uint32_t)a * b); }

/* n / q for n < 2^23: 2^35/q rounded up errs by under 1/q over that range */
static inline uint32_t div_q(uint32_t n) { return (uint32_t)(((uint64_t)n * 10321340u) >> 35); }

/* FIPS 203 Algorithm 9 */
static void ntt(poly *f) {
  int i = 1;
  for (int len = 128; len >= 2; len >>= 1)
    for (int start = 0; start < N; start += 2 * len) {
      uint16_t zeta = zetas[i++];
      for (int j = start; j < start + len; j++) {
        uint16_t t = mul_q(zeta, f->c[j + len]);
        f->c[j + len] = sub_q(f->c[j], t);
        f->c[j] = add_q(f->c[j], t);
      }
    }
}

/* FIPS 203 Algorithm 10; 3303 = 128^-1 mod q */
static void ntt_inv(poly *f) {
  int i = 127;
  for (int len = 2; len <= 128; len <<= 1)
    for (int start = 0; start < N; start += 2 * len) {
      uint16_t zeta = zetas[i--];
      for (int j = start; j < start + len; j++) {
        uint16_t t = f->c[j];
        f->c[j] = add_q(t, f->c[j + len]);
        f->c[j + len] = mul_q(zeta, sub_q(f->c[j + len], t));
      }
    }
  for (int j = 0; j < N; j++) f->c[j] = mul_q(f->c[j], 3303);
}

/* h += f * g in the NTT domain (FIPS 203 Algorithms 11 and 12) */
static void ntt_mul_acc(poly *h, const poly *f, const poly *g) {
  for (int i = 0; i < 128; i++) {
    uint16_t a0 = f->c[2 * i], a1 = f->c[2 * i + 1], b0 = g->c[2 * i], b1 = g->c[2 * i + 1];
    uint16_t c0 = reduce((uint32_t)a0 * b0 + (uint32_t)mul_q(a1, b1) * gammas[i]);
    uint16_t c1 = reduce((uint32_t)a0 * b1 + (uint32_t)a1 * b0);
    h->c[2 * i] = add_q(h->c[2 * i], c0);
    h->c[2 * i + 1] = add_q(h->c[2 * i + 1], c1);
  }
}

static void poly_add(poly *r, const poly *a) {
  for (int j = 0; j < N; j++) r->c[j] = add_q(r->c[j], a->c[j]);
}

/* ------------------------------------------------------- encodings */

/* ByteEncode_d (Algorithm 5): coefficient i's bit b lands at bit i*d+b */
static void byte_encode(unsigned char *out, const poly *f, int d) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (int i = 0; i < N; i++) {
    acc |= (uint32_t)f->c[i] << bits;
    bits += d;
    while (bits >= 8) {
      out[o++] = (unsigned char)acc;
      acc >>= 8;
      bits -= 8;
    }
  }
}

/* ByteDecode_d (Algorithm 6) without the mod-q step: callers that need it
   reduce or check themselves */
static void byte_decode(poly *f, const unsigned char *in, int d) {
  uint32_t acc = 0, mask = (1u << d) - 1;
  int bits = 0;
  size_t o = 0;
  for (int i = 0; i < N; i++) {
    while (bits < d) {
      acc |= (uint32_t)in[o++] << bits;
      bits += 8;
    }
    f->c[i] = (uint16_t)(acc & mask);
    acc >>= d;
    bits -= d;
  }
}

/* ByteDecode12 with its mod q; *bad gets a nonzero bit if any value was >= q */
static void decode12(poly *f, const unsigned char *in, uint32_t *bad) {
  byte_decode(f, in, 12);
  for (int i = 0; i < N; i++) {
    int32_t r = (int32_t)f->c[i] - Q;          /* 0..4095 - q */
    *bad |= (uint32_t)~r >> 31;                /* r >= 0: the value was >= q */
    r += (r >> 31) & Q;
    f->c[i] = (uint16_t)r;
  }
}

/* Compress_d: round(2^d * x / q) mod 2^d, rounding half up (q is odd, so
   adding floor(q/2) is exact) */
static void compress(poly *f, int d) {
  for (int i = 0; i < N; i++)
    f->c[i] = (uint16_t)(div_q(((uint32_t)f->c[i] << d) + Q / 2) & ((1u << d) - 1));
}

/* Decompress_d: round(q * y / 2^d) */
static void decompress(poly *f, int d) {
  for (int i = 0; i < N; i++) f->c[i] = (uint16_t)(((uint32_t)f->c[i] * Q + (1u << (d - 1))) >> d);
}

/* ------------------------------------------------------- hashing */

typedef struct {
  EVP_MD_CTX *ctx;
  const EVP_MD *shake128, *shake256, *sha3_256, *sha3_512; /* ossl.c's, borrowed */
} hashes;

static void hashes_free(hashes *h) {
  EVP_MD_CTX_free(h->ctx);
}

static int hashes_init(hashes *h) {
  memset(h, 0, sizeof *h);
  h->ctx = EVP_MD_CTX_new();
  h->shake128 = evssh_ossl_md("SHAKE128");
  h->shake256 = evssh_ossl_md("SHAKE256");
  h->sha3_256 = evssh_ossl_md("SHA3-256");
  h->sha3_512 = evssh_ossl_md("SHA3-512");
  if (!h->ctx || !h->shake128 || !h->shake256 || !h->sha3_256 || !h->sha3_512) {
    hashes_free(h);
    return EVSSH_ENOMEM;
  }
  return EVSSH_OK;
}

/* md(a || b), out_len bytes (fixed-length digests ignore out_len) */
static int hash2(hashes *h, const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                 unsigned char *out, size_t out_len) {
  if (EVP_DigestInit_ex(h->ctx, md, NULL) != 1 || EVP_DigestUpdate(h->ctx, a, alen) != 1 ||
      (blen && EVP_DigestUpdate(h->ctx, b, blen) != 1))
    return EVSSH_ENOMEM;
  int ok = (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF) ? EVP_DigestFinalXOF(h->ctx, out, out_len)
                                                    : EVP_DigestFinal_ex(h->ctx, out, NULL);
  return ok == 1 ? EVSSH_OK : EVSSH_ENOMEM;
}

/* SampleNTT (Algorithm 7) from SHAKE128(rho || j || i). OpenSSL 3.0 can
   squeeze an XOF only once, so ask for a length that nearly always
   suffices and, in the rare case it does not, recompute twice as long: the
   output is a prefix of the longer one, so parsing resumes where it
   stopped. */
#define SAMPLE_FIRST_BYTES (168 * 5)
static int sample_ntt(hashes *h, poly *a, const unsigned char rho[32], uint8_t j, uint8_t i) {
  unsigned char seed[34];
  memcpy(seed, rho, 32);
  seed[32] = j;
  seed[33] = i;
  unsigned char small[SAMPLE_FIRST_BYTES];
  unsigned char *buf = small;
  size_t have = sizeof small, pos = 0;
  int n = 0, rc = hash2(h, h->shake128, seed, sizeof seed, NULL, 0, buf, have);
  while (rc == EVSSH_OK && n < N) {
    if (pos + 3 > have) {
      size_t more = have * 2;
      unsigned char *nb = OPENSSL_malloc(more);
      if (!nb) {
        rc = EVSSH_ENOMEM;
        break;
      }
      if (buf != small) OPENSSL_free(buf);
      buf = nb;
      have = more;
      rc = hash2(h, h->shake128, seed, sizeof seed, NULL, 0, buf, have);
      continue;
    }
    uint16_t d1 = (uint16_t)(buf[pos] | ((buf[pos + 1] & 0x0f) << 8));
    uint16_t d2 = (uint16_t)((buf[pos + 1] >> 4) | (buf[pos + 2] << 4));
    pos += 3;
    if (d1 < Q) a->c[n++] = d1;
    if (d2 < Q && n < N) a->c[n++] = d2;
  }
  if (buf != small) OPENSSL_free(buf);
  return rc;
}

/* SamplePolyCBD_2 (Algorithm 8) over PRF_2(s, b) = SHAKE256(s || b, 128) */
static int sample_cbd(hashes *h, poly *f, const unsigned char s[32], uint8_t b) {
  unsigned char bytes[64 * ETA1];
  int rc = hash2(h, h->shake256, s, 32, &b, 1, bytes, sizeof bytes);
  if (rc == EVSSH_OK)
    for (int i = 0; i < N; i++) {
      unsigned v = (unsigned)(bytes[i / 2] >> (4 * (i & 1))) & 0x0f;
      unsigned x = (v & 1) + ((v >> 1) & 1), y = ((v >> 2) & 1) + ((v >> 3) & 1);
      f->c[i] = sub_q((uint16_t)x, (uint16_t)y);
    }
  OPENSSL_cleanse(bytes, sizeof bytes);
  return rc;
}

static int expand_a(hashes *h, polyvec a[K], const unsigned char rho[32]) {
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++) {
      int rc = sample_ntt(h, &a[i].p[j], rho, (uint8_t)j, (uint8_t)i);
      if (rc) return rc;
    }
  return EVSSH_OK;
}

/* ------------------------------------------------------- K-PKE */

/* Algorithm 13 (K-PKE.KeyGen) after its first line, (rho, sigma) = G(d || k):
   writes ek and the K-PKE part of dk */
static int pke_keygen(hashes *h, const unsigned char rho_sigma[64], unsigned char ek[MLKEM768_EK_BYTES],
                      unsigned char dk_pke[PKE_DK_BYTES]) {
  polyvec a[K], s, e;
  int rc = expand_a(h, a, rho_sigma);
  uint8_t nonce = 0;
  for (int i = 0; i < K && !rc; i++) rc = sample_cbd(h, &s.p[i], rho_sigma + 32, nonce++);
  for (int i = 0; i < K && !rc; i++) rc = sample_cbd(h, &e.p[i], rho_sigma + 32, nonce++);
  if (!rc) {
    for (int i = 0; i < K; i++) {
      ntt(&s.p[i]);
      ntt(&e.p[i]);
    }
    for (int i = 0; i < K; i++) {
      poly t = e.p[i];
      for (int j = 0; j < K; j++) ntt_mul_acc(&t, &a[i].p[j], &s.p[j]);
      byte_encode(ek + i * POLY_BYTES, &t, 12);
      byte_encode(dk_pke + i * POLY_BYTES, &s.p[i], 12);
    }
    memcpy(ek + K * POLY_BYTES, rho_sigma, 32);
  }
  OPENSSL_cleanse(&s, sizeof s);
  OPENSSL_cleanse(&e, sizeof e);
  return rc;
}

/* Algorithm 14 (K-PKE.Encrypt); ek already passed the modulus check */
static int pke_encrypt(hashes *h, const unsigned char ek[MLKEM768_EK_BYTES], const unsigned char m[32],
                       const unsigned char r[32], unsigned char ct[MLKEM768_CT_BYTES]) {
  polyvec a[K], t, y, e1, u;
  poly e2, v, mu;
  uint32_t bad = 0;
  for (int i = 0; i < K; i++) decode12(&t.p[i], ek + i * POLY_BYTES, &bad);
  int rc = expand_a(h, a, ek + K * POLY_BYTES);
  uint8_t nonce = 0;
  for (int i = 0; i < K && !rc; i++) rc = sample_cbd(h, &y.p[i], r, nonce++);
  for (int i = 0; i < K && !rc; i++) rc = sample_cbd(h, &e1.p[i], r, nonce++);
  if (!rc) rc = sample_cbd(h, &e2, r, nonce++);
  if (!rc) {
    for (int i = 0; i < K; i++) ntt(&y.p[i]);
    for (int i = 0; i < K; i++) {
      memset(&u.p[i], 0, sizeof u.p[i]);
      for (int j = 0; j < K; j++) ntt_mul_acc(&u.p[i], &a[j].p[i], &y.p[j]);   /* A^T */
      ntt_inv(&u.p[i]);
      poly_add(&u.p[i], &e1.p[i]);
    }
    memset(&v, 0, sizeof v);
    for (int j = 0; j < K; j++) ntt_mul_acc(&v, &t.p[j], &y.p[j]);
    ntt_inv(&v);
    poly_add(&v, &e2);
    byte_decode(&mu, m, 1);
    decompress(&mu, 1);
    poly_add(&v, &mu);
    for (int i = 0; i < K; i++) {
      compress(&u.p[i], DU);
      byte_encode(ct + i * (N * DU / 8), &u.p[i], DU);
    }
    compress(&v, DV);
    byte_encode(ct + C1_BYTES, &v, DV);
  }
  OPENSSL_cleanse(&y, sizeof y);
  OPENSSL_cleanse(&e1, sizeof e1);
  OPENSSL_cleanse(&e2, sizeof e2);
  OPENSSL_cleanse(&u, sizeof u);
  OPENSSL_cleanse(&v, sizeof v);
  OPENSSL_cleanse(&mu, sizeof mu);
  return rc;
}

/* Algorithm 15 (K-PKE.Decrypt) */
static void pke_decrypt(const unsigned char dk_pke[PKE_DK_BYTES], const unsigned char ct[MLKEM768_CT_BYTES],
                        unsigned char m[32]) {
  polyvec s, u;
  poly v, w;
  uint32_t bad = 0;
  for (int i = 0; i < K; i++) {
    byte_decode(&u.p[i], ct + i * (N * DU / 8), DU);
    decompress(&u.p[i], DU);
    ntt(&u.p[i]);
    decode12(&s.p[i], dk_pke + i * POLY_BYTES, &bad);
  }
  byte_decode(&v, ct + C1_BYTES, DV);
  decompress(&v, DV);
  memset(&w, 0, sizeof w);
  for (int i = 0; i < K; i++) ntt_mul_acc(&w, &s.p[i], &u.p[i]);
  ntt_inv(&w);
  for (int i = 0; i < N; i++) w.c[i] = sub_q(v.c[i], w.c[i]);
  compress(&w, 1);
  byte_encode(m, &w, 1);
  OPENSSL_cleanse(&s, sizeof s);
  OPENSSL_cleanse(&w, sizeof w);
  OPENSSL_cleanse(&v, sizeof v);
}

/* ------------------------------------------------------- ML-KEM */

/* dk = dk_pke || ek || H(ek) || z (Algorithm 16) */
static int keygen_from(hashes *h, const unsigned char rho_sigma[64], const unsigned char z[32],
                       unsigned char ek[MLKEM768_EK_BYTES], unsigned char dk[MLKEM768_DK_BYTES]) {
  int rc = pke_keygen(h, rho_sigma, ek, dk);
  if (!rc) {
    memcpy(dk + PKE_DK_BYTES, ek, MLKEM768_EK_BYTES);
    rc = hash2(h, h->sha3_256, ek, MLKEM768_EK_BYTES, NULL, 0, dk + PKE_DK_BYTES + MLKEM768_EK_BYTES, 32);
    memcpy(dk + PKE_DK_BYTES + MLKEM768_EK_BYTES + 32, z, 32);
  }
  if (rc) OPENSSL_cleanse(dk, MLKEM768_DK_BYTES);
  return rc;
}

int mlkem768_keygen_derand(const unsigned char seed[MLKEM768_SEED_BYTES], unsigned char ek[MLKEM768_EK_BYTES],
                           unsigned char dk[MLKEM768_DK_BYTES]) {
  hashes h;
  int rc = hashes_init(&h);
  if (rc) return rc;
  unsigned char rho_sigma[64], kbyte = K;
  /* FIPS 203 (final) separates the domain by k; the 2023 draft hashed d alone */
  rc = hash2(&h, h.sha3_512, seed, 32, &kbyte, 1, rho_sigma, 64);
  if (!rc) rc = keygen_from(&h, rho_sigma, seed + 32, ek, dk);
  OPENSSL_cleanse(rho_sigma, sizeof rho_sigma);
  hashes_free(&h);
  return rc;
}

int mlkem768_keygen_from_rho_sigma(const unsigned char rho_sigma[64], const unsigned char z[32],
                                   unsigned char ek[MLKEM768_EK_BYTES], unsigned char dk[MLKEM768_DK_BYTES]) {
  hashes h;
  int rc = hashes_init(&h);
  if (rc) return rc;
  rc = keygen_from(&h, rho_sigma, z, ek, dk);
  hashes_free(&h);
  return rc;
}

int mlkem768_keygen(unsigned char ek[MLKEM768_EK_BYTES], unsigned char dk[MLKEM768_DK_BYTES]) {
  unsigned char seed[MLKEM768_SEED_BYTES];
  if (RAND_priv_bytes(seed, sizeof seed) != 1) return EVSSH_ENOMEM;
  int rc = mlkem768_keygen_derand(seed, ek, dk);
  OPENSSL_cleanse(seed, sizeof seed);
  return rc;
}

/* FIPS 203 s7.2 modulus check: every coefficient of t-hat is below q */
static bool ek_modulus_ok(const unsigned char ek[MLKEM768_EK_BYTES]) {
  uint32_t bad = 0;
  poly t;
  for (int i = 0; i < K; i++) decode12(&t, ek + i * POLY_BYTES, &bad);
  return bad == 0;
}

int mlkem768_encaps_derand(const unsigned char ek[MLKEM768_EK_BYTES], const unsigned char m[32],
                           unsigned char ct[MLKEM768_CT_BYTES], unsigned char ss[MLKEM768_SS_BYTES]) {
  if (!ek_modulus_ok(ek)) return EVSSH_EINVAL;
  hashes h;
  int rc = hashes_init(&h);
  if (rc) return rc;
  unsigned char hek[32], kr[64];
  rc = hash2(&h, h.sha3_256, ek, MLKEM768_EK_BYTES, NULL, 0, hek, 32);
  if (!rc) rc = hash2(&h, h.sha3_512, m, 32, hek, 32, kr, 64);   /* (K, r) = G(m || H(ek)) */
  if (!rc) rc = pke_encrypt(&h, ek, m, kr + 32, ct);
  if (!rc) memcpy(ss, kr, 32);
  OPENSSL_cleanse(kr, sizeof kr);
  hashes_free(&h);
  return rc;
}

int mlkem768_encaps(const unsigned char ek[MLKEM768_EK_BYTES], unsigned char ct[MLKEM768_CT_BYTES],
                    unsigned char ss[MLKEM768_SS_BYTES]) {
  unsigned char m[32];
  if (RAND_priv_bytes(m, sizeof m) != 1) return EVSSH_ENOMEM;
  int rc = mlkem768_encaps_derand(ek, m, ct, ss);
  OPENSSL_cleanse(m, sizeof m);
  return rc;
}

int mlkem768_decaps(const unsigned char dk[MLKEM768_DK_BYTES], const unsigned char ct[MLKEM768_CT_BYTES],
                    unsigned char ss[MLKEM768_SS_BYTES]) {
  const unsigned char *dk_pke = dk, *ek = dk + PKE_DK_BYTES, *hek = ek + MLKEM768_EK_BYTES, *z = hek + 32;
  hashes h;
  int rc = hashes_init(&h);
  if (rc) return rc;
  unsigned char check[32], m[32], kr[64], kbar[32];
  unsigned char *ct2 = OPENSSL_malloc(MLKEM768_CT_BYTES);
  if (!ct2) rc = EVSSH_ENOMEM;
  /* FIPS 203 s7.3 hash check: the embedded H(ek) belongs to the embedded ek */
  if (!rc) rc = hash2(&h, h.sha3_256, ek, MLKEM768_EK_BYTES, NULL, 0, check, 32);
  if (!rc && CRYPTO_memcmp(check, hek, 32) != 0) rc = EVSSH_EINVAL;
  if (!rc) {
    pke_decrypt(dk_pke, ct, m);
    rc = hash2(&h, h.sha3_512, m, 32, hek, 32, kr, 64);
  }
  if (!rc) rc = hash2(&h, h.shake256, z, 32, ct, MLKEM768_CT_BYTES, kbar, 32);
  if (!rc) rc = pke_encrypt(&h, ek, m, kr + 32, ct2);
  if (!rc) {
    /* implicit rejection, without a branch on whether the ciphertext matched */
    unsigned char diff = 0;
    for (size_t i = 0; i < MLKEM768_CT_BYTES; i++) diff |= (unsigned char)(ct[i] ^ ct2[i]);
    unsigned char keep = (unsigned char)(((unsigned)diff - 1u) >> 8);   /* 0xff when equal */
    for (size_t i = 0; i < 32; i++) ss[i] = (unsigned char)((kr[i] & keep) | (kbar[i] & (unsigned char)~keep));
  }
  OPENSSL_cleanse(m, sizeof m);
  OPENSSL_cleanse(kr, sizeof kr);
  OPENSSL_cleanse(kbar, sizeof kbar);
  if (ct2) OPENSSL_clear_free(ct2, MLKEM768_CT_BYTES);
  hashes_free(&h);
  return rc;
}

int mlkem768_expand_a(const unsigned char rho[32], unsigned char out[9 * 384]) {
  hashes h;
  int rc = hashes_init(&h);
  if (rc) return rc;
  polyvec a[K];
  rc = expand_a(&h, a, rho);
  if (!rc)
    for (int i = 0; i < K; i++)
      for (int j = 0; j < K; j++) byte_encode(out + (i * K + j) * POLY_BYTES, &a[i].p[j], 12);
  hashes_free(&h);
  return rc;
}
