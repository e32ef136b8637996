/* sntrup761.c owns Streamlined NTRU Prime with p = 761, q = 4591, w = 286:
 * the rings R/q = Z_q[x]/(x^p - x - 1) and R/3, inversion in both by
 * constant-time division steps (Bernstein-Yang), the sorting network that
 * makes short polynomials, the byte encodings (the mixed-radix Encode /
 * Decode of the specification, 2-bit small polynomials) and the KEM with
 * its confirmation hash and implicit rejection. Coefficients of R/q are
 * kept canonical in [0, q) and of R/3 in {0, 1, 2}; every reduction is a
 * multiply-and-shift with a masked correction. Only public data (a received
 * ciphertext's encoding) is decoded with data-dependent loops. */
#include "sntrup761.h"
#include "ossl.h"

#include "evssh.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define P 761
#define Q 4591
#define W 286
#define Q12 ((Q - 1) / 2)                  /* 2295 */
#define SMALL_BYTES ((P + 3) / 4)          /* 191 */
#define ROUNDED_BYTES 1007
#define HASH_BYTES 32
#define INPUTS_BYTES SMALL_BYTES
#define ZSK_BYTES (2 * SMALL_BYTES)        /* f and 1/g in R/3 */

/* secret key layout: f || 1/g || pk || rho || Hash_prefix(4, pk) */
#define SK_PK (ZSK_BYTES)
#define SK_RHO (SK_PK + SNTRUP761_PK_BYTES)
#define SK_CACHE (SK_RHO + INPUTS_BYTES)

typedef uint16_t fq;   /* [0, q) */
typedef uint8_t f3;    /* {0, 1, 2}, meaning 0, 1, -1 */

/* ------------------------------------------------------------ masks */

/* all ones when x != 0 */
static inline uint32_t nonzero_mask(uint32_t x) { return 0u - ((x | (0u - x)) >> 31); }
/* all ones when x < 0 */
static inline uint32_t negative_mask(int32_t x) { return (uint32_t)(x >> 31); }

/* ------------------------------------------------------------ Z_q and Z_3 */

/* x mod q for x < 2^31: floor(2^38/q) undershoots x/q by under 1 */
static inline fq fq_reduce(uint32_t x) {
  uint32_t t = (uint32_t)(((uint64_t)x * 59873209u) >> 38);
  uint32_t r = x - t * Q;
  r -= Q & ~negative_mask((int32_t)r - Q);
  return (fq)r;
}

static inline fq fq_neg(fq a) { return fq_reduce((uint32_t)Q - a); }

/* a^(q-2): the inverse of a nonzero a (square and multiply over a public exponent) */
static fq fq_recip(fq a) {
  fq r = 1, b = a;
  for (uint32_t e = Q - 2; e; e >>= 1) {
    if (e & 1) r = fq_reduce((uint32_t)r * b);
    b = fq_reduce((uint32_t)b * b);
  }
  return r;
}

/* x mod 3 for x < 2^16 */
static inline f3 f3_reduce(uint32_t x) {
  uint32_t t = (x * 21846u) >> 16;   /* floor(x/3) for x < 2^16 */
  return (f3)(x - 3 * t);
}

/* a value in [0, q) read as centred in [-(q-1)/2, (q-1)/2], taken mod 3 */
static inline f3 f3_of_fq(fq a) {
  /* a or a - q, plus a multiple of 3 that makes it non-negative */
  uint32_t big = ~negative_mask((int32_t)a - Q12 - 1);   /* a > (q-1)/2 */
  int32_t centred = (int32_t)a - (int32_t)(Q & big);
  return f3_reduce((uint32_t)(centred + 3 * 1000));
}

/* ------------------------------------------------------------ R/q and R/3 */

/* h = a * b in R/q with b small (coefficients 0, 1 or q-1 as fq, i.e. in
   {-1, 0, 1}): schoolbook, then x^p = x + 1 folds the top half down */
static void rq_mul_small(fq *h, const fq *a, const int8_t *b) {
  int32_t acc[2 * P - 1];
  memset(acc, 0, sizeof acc);
  for (int i = 0; i < P; i++) {
    int32_t bi = b[i];
    for (int j = 0; j < P; j++) acc[i + j] += bi * (int32_t)a[j];
  }
  for (int i = 2 * P - 2; i >= P; i--) {
    acc[i - P] += acc[i];
    acc[i - P + 1] += acc[i];
  }
  /* |acc| < 3 * p * q < 2^24: shift into the positive range first */
  for (int i = 0; i < P; i++) h[i] = fq_reduce((uint32_t)(acc[i] + 4096 * Q));
  OPENSSL_cleanse(acc, sizeof acc);
}

/* h = a * b in R/3 */
static void r3_mul(f3 *h, const f3 *a, const f3 *b) {
  uint16_t acc[2 * P - 1];
  memset(acc, 0, sizeof acc);
  for (int i = 0; i < P; i++)
    for (int j = 0; j < P; j++) acc[i + j] = (uint16_t)(acc[i + j] + a[i] * b[j]);
  /* each sum is below 4 * 761 before folding, below 3 * that after */
  for (int i = 2 * P - 2; i >= P; i--) {
    acc[i - P] = (uint16_t)(acc[i - P] + acc[i]);
    acc[i - P + 1] = (uint16_t)(acc[i - P + 1] + acc[i]);
  }
  for (int i = 0; i < P; i++) h[i] = f3_reduce(acc[i]);
  OPENSSL_cleanse(acc, sizeof acc);
}

/* Inversion by 2p-1 division steps on the reversed moduli. f starts as
   x^p - x - 1 and g as the input, both read from the top coefficient down
   (so the constant terms drive each step); v and r carry the Bezout
   factor of the input. Each step swaps when delta > 0 and g(0) != 0, then
   cancels g's constant term against f's and divides g by x. After the
   steps delta is 0 exactly when the input was invertible, and v (read
   backwards, over f's constant) is the inverse. Everything is masked: the
   same work happens whatever the input. */

/* R/3, bitsliced: coefficient i of a polynomial is bit i of nz (nonzero)
   and of neg (it is -1); 12 words hold the p+1 coefficients a step needs */
#define F3_WORDS 12
#define F3_TOP_MASK ((UINT64_C(1) << ((P + 1) - 64 * (F3_WORDS - 1))) - 1)

typedef struct {
  uint64_t nz[F3_WORDS], neg[F3_WORDS];
} f3_sliced;

static void f3s_from(f3_sliced *x, const f3 *c, int n, bool reversed) {
  memset(x, 0, sizeof *x);
  for (int i = 0; i < n; i++) {
    int at = reversed ? n - 1 - i : i;
    uint64_t nz = (uint64_t)((c[i] | (c[i] >> 1)) & 1), neg = (uint64_t)(c[i] >> 1);
    x->nz[at / 64] |= nz << (at % 64);
    x->neg[at / 64] |= neg << (at % 64);
  }
}

static f3 f3s_get(const f3_sliced *x, int i) {
  unsigned nz = (unsigned)(x->nz[i / 64] >> (i % 64)) & 1, neg = (unsigned)(x->neg[i / 64] >> (i % 64)) & 1;
  return (f3)(nz + neg);   /* 0, 1, or 2 for -1 */
}

/* a += c * b for a scalar c given as masks (c != 0, c == -1) */
static void f3s_add_scaled(f3_sliced *a, const f3_sliced *b, uint64_t c_nz, uint64_t c_neg) {
  for (int w = 0; w < F3_WORDS; w++) {
    uint64_t bn = b->nz[w] & c_nz, bs = (b->neg[w] ^ c_neg) & bn;
    uint64_t an = a->nz[w], as = a->neg[w];
    uint64_t both = an & bn, same = ~(as ^ bs);
    /* 1+1 = -1 and -1-1 = 1; opposite signs cancel */
    uint64_t rn = (an ^ bn) | (both & same);
    uint64_t rs = (an & ~bn & as) | (bn & ~an & bs) | (both & same & ~as);
    a->nz[w] = rn;
    a->neg[w] = rs;
  }
}

static void f3s_swap(f3_sliced *a, f3_sliced *b, uint64_t mask) {
  for (int w = 0; w < F3_WORDS; w++) {
    uint64_t t = mask & (a->nz[w] ^ b->nz[w]);
    a->nz[w] ^= t;
    b->nz[w] ^= t;
    t = mask & (a->neg[w] ^ b->neg[w]);
    a->neg[w] ^= t;
    b->neg[w] ^= t;
  }
}

/* times x, keeping coefficients 0..p */
static void f3s_shift_up(f3_sliced *a) {
  for (int w = F3_WORDS - 1; w > 0; w--) {
    a->nz[w] = (a->nz[w] << 1) | (a->nz[w - 1] >> 63);
    a->neg[w] = (a->neg[w] << 1) | (a->neg[w - 1] >> 63);
  }
  a->nz[0] <<= 1;
  a->neg[0] <<= 1;
  a->nz[F3_WORDS - 1] &= F3_TOP_MASK;
  a->neg[F3_WORDS - 1] &= F3_TOP_MASK;
}

/* divided by x (the constant term is zero by then) */
static void f3s_shift_down(f3_sliced *a) {
  for (int w = 0; w < F3_WORDS - 1; w++) {
    a->nz[w] = (a->nz[w] >> 1) | (a->nz[w + 1] << 63);
    a->neg[w] = (a->neg[w] >> 1) | (a->neg[w + 1] << 63);
  }
  a->nz[F3_WORDS - 1] >>= 1;
  a->neg[F3_WORDS - 1] >>= 1;
}

/* R/3: 0 and out = 1/in, or -1 when in is not invertible */
static int r3_recip(f3 *out, const f3 *in) {
  f3_sliced f, g, v, r;
  f3 modulus[P + 1];
  memset(modulus, 0, sizeof modulus);
  modulus[0] = 1;
  modulus[P - 1] = modulus[P] = 2;   /* x^p - x - 1, reversed */
  f3s_from(&f, modulus, P + 1, false);
  f3s_from(&g, in, P, true);
  memset(&v, 0, sizeof v);
  memset(&r, 0, sizeof r);
  r.nz[0] = 1;
  int32_t delta = 1;
  for (int step = 0; step < 2 * P - 1; step++) {
    f3s_shift_up(&v);
    uint64_t g0nz = 0 - (g.nz[0] & 1);
    uint64_t swap = (uint64_t)(int64_t)(int32_t)negative_mask(-delta) & g0nz;
    delta ^= (int32_t)((uint32_t)swap & (uint32_t)(delta ^ -delta));
    delta += 1;
    f3s_swap(&f, &g, swap);
    f3s_swap(&v, &r, swap);
    /* f0 is +-1, its own inverse: c = -g0*f0 */
    g0nz = 0 - (g.nz[0] & 1);
    uint64_t g0neg = 0 - (g.neg[0] & 1), f0neg = 0 - (f.neg[0] & 1);
    uint64_t c_neg = ~(g0neg ^ f0neg) & g0nz;
    f3s_add_scaled(&g, &f, g0nz, c_neg);
    f3s_add_scaled(&r, &v, g0nz, c_neg);
    f3s_shift_down(&g);
  }
  f3 sign = f3s_get(&f, 0);
  for (int i = 0; i < P; i++) out[i] = f3_reduce((uint32_t)sign * f3s_get(&v, P - 1 - i));
  int ok = (int)nonzero_mask((uint32_t)delta);
  OPENSSL_cleanse(&f, sizeof f);
  OPENSSL_cleanse(&g, sizeof g);
  OPENSSL_cleanse(&v, sizeof v);
  OPENSSL_cleanse(&r, sizeof r);
  return ok;
}

/* R/q works on int16 in (-q, q) with Montgomery reduction by 2^16: each
   step's f0*g - g0*f comes out times 2^-16, the same factor for g and r,
   which the final division by f's constant cancels. Arrays are padded to
   a multiple of 16 so the compiler can vectorise the loops. */
#define RQ_LEN 768
#define Q_INV_MOD_2_16 15631u

/* x * 2^-16 mod q for |x| < 2^26, in (-q, q) (below 2938 in magnitude) */
static inline int16_t montgomery(int32_t x) {
  int16_t t = (int16_t)(uint16_t)((uint32_t)x * Q_INV_MOD_2_16);
  return (int16_t)((x - (int32_t)t * Q) >> 16);
}

static inline fq fq_of_signed(int32_t x) { return fq_reduce((uint32_t)(x + Q)); }   /* |x| < q */

/* R/q: out = 1/(3*in); in is small and invertible (it is f, of weight w) */
static void rq_recip3(fq *out, const int8_t *in) {
  int16_t f[RQ_LEN], g[RQ_LEN + 1], v[RQ_LEN + 1], r[RQ_LEN];
  memset(f, 0, sizeof f);
  memset(g, 0, sizeof g);
  memset(v, 0, sizeof v);
  memset(r, 0, sizeof r);
  r[0] = (int16_t)fq_recip(3);
  f[0] = 1;
  f[P - 1] = f[P] = -1;
  for (int i = 0; i < P; i++) g[P - 1 - i] = in[i];
  int32_t delta = 1;
  for (int step = 0; step < 2 * P - 1; step++) {
    memmove(v + 1, v, P * sizeof v[0]);
    v[0] = 0;
    int16_t swap = (int16_t)(negative_mask(-delta) & nonzero_mask((uint32_t)(int32_t)g[0]));
    delta ^= (int32_t)swap & (delta ^ -delta);
    delta += 1;
    for (int i = 0; i < RQ_LEN; i++) {
      int16_t t = (int16_t)(swap & (f[i] ^ g[i]));
      f[i] ^= t;
      g[i] ^= t;
      t = (int16_t)(swap & (v[i] ^ r[i]));
      v[i] ^= t;
      r[i] ^= t;
    }
    int32_t f0 = f[0], g0 = g[0];
    for (int i = 0; i < RQ_LEN; i++) {
      g[i] = montgomery(f0 * g[i] - g0 * f[i]);
      r[i] = montgomery(f0 * r[i] - g0 * v[i]);
    }
    memmove(g, g + 1, P * sizeof g[0]);
    g[P] = 0;
  }
  fq scale = fq_recip(fq_of_signed(f[0]));
  for (int i = 0; i < P; i++) out[i] = fq_reduce((uint32_t)scale * fq_of_signed(v[P - 1 - i]));
  OPENSSL_cleanse(f, sizeof f);
  OPENSSL_cleanse(g, sizeof g);
  OPENSSL_cleanse(v, sizeof v);
  OPENSSL_cleanse(r, sizeof r);
}

/* ------------------------------------------------------------ sampling */

static int rng_default(void *ctx, unsigned char *out, size_t len) {
  (void)ctx;
  return RAND_priv_bytes(out, (int)len) == 1 ? 0 : -1;
}

/* p little-endian 32-bit words from the source, as the specification's
   urandom32 consumes them */
static int random32s(sntrup761_rng rng, void *ctx, uint32_t *out) {
  unsigned char b[4 * P];
  if (rng(ctx, b, sizeof b) != 0) return EVSSH_ENOMEM;
  for (int i = 0; i < P; i++)
    out[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
             (uint32_t)b[4 * i + 3] << 24;
  OPENSSL_cleanse(b, sizeof b);
  return EVSSH_OK;
}

/* Batcher's merge exchange (Knuth 5.2.2 M) over n words: the comparisons
   made depend on n only, and each exchange is a masked min/max */
static void sort_u32(uint32_t *x, int n) {
  if (n < 2) return;
  int t = 1;
  while ((1 << t) < n) t++;
  for (int p = 1 << (t - 1); p > 0; p >>= 1) {
    int q = 1 << (t - 1), r = 0, d = p;
    for (;;) {
      for (int i = 0; i < n - d; i++) {
        if ((i & p) != r) continue;
        uint32_t a = x[i], b = x[i + d];
        uint64_t diff = (uint64_t)b - a;               /* borrows iff b < a */
        uint32_t m = (uint32_t)0 - (uint32_t)(diff >> 63);
        uint32_t tt = (a ^ b) & m;
        x[i] = a ^ tt;
        x[i + d] = b ^ tt;
      }
      if (q == p) break;
      d = q - p;
      q >>= 1;
      r = p;
    }
  }
}

/* w coefficients +-1 at positions a sort of random keys decides */
static int short_random(int8_t *out, sntrup761_rng rng, void *ctx) {
  uint32_t l[P];
  int rc = random32s(rng, ctx, l);
  if (rc) return rc;
  /* low bits 0 or 2 tag the w nonzero entries, 1 the zeros */
  for (int i = 0; i < W; i++) l[i] &= ~1u;
  for (int i = W; i < P; i++) l[i] = (l[i] & ~3u) | 1;
  sort_u32(l, P);
  for (int i = 0; i < P; i++) out[i] = (int8_t)((l[i] & 3) - 1);
  OPENSSL_cleanse(l, sizeof l);
  return EVSSH_OK;
}

/* coefficients in {-1, 0, 1}, from 30 random bits each */
static int small_random(int8_t *out, sntrup761_rng rng, void *ctx) {
  uint32_t l[P];
  int rc = random32s(rng, ctx, l);
  if (rc) return rc;
  for (int i = 0; i < P; i++) out[i] = (int8_t)((((l[i] & 0x3fffffff) * 3) >> 30) - 1);
  OPENSSL_cleanse(l, sizeof l);
  return EVSSH_OK;
}

/* ------------------------------------------------------------ encodings */

/* small polynomials: four 2-bit fields (x+1) per byte, the last alone */
static void small_encode(unsigned char *s, const int8_t *f) {
  for (int i = 0; i < P / 4; i++) {
    unsigned x = 0;
    for (int j = 0; j < 4; j++) x |= (unsigned)(f[4 * i + j] + 1) << (2 * j);
    s[i] = (unsigned char)x;
  }
  s[P / 4] = (unsigned char)(f[P - 1] + 1);
}

static void small_decode(int8_t *f, const unsigned char *s) {
  for (int i = 0; i < P / 4; i++)
    for (int j = 0; j < 4; j++) f[4 * i + j] = (int8_t)(((s[i] >> (2 * j)) & 3) - 1);
  f[P - 1] = (int8_t)((s[P / 4] & 3) - 1);
}

/* The specification's Encode: pairs of digits (r_i < m_i) combine into one
   of radix m_i * m_{i+1}; low bytes are emitted while the radix is at least
   2^14, and the halved list recurses. Lengths depend on the radices only.
   out must have room for the whole encoding; len is at most p. */
static void encode(unsigned char **out, const uint32_t *r, const uint32_t *m, int len) {
  if (len == 1) {
    uint32_t rr = r[0], mm = m[0];
    while (mm > 1) {
      *(*out)++ = (unsigned char)rr;
      rr >>= 8;
      mm = (mm + 255) >> 8;
    }
    return;
  }
  uint32_t r2[(P + 1) / 2], m2[(P + 1) / 2];
  int n2 = 0;
  for (int i = 0; i + 1 < len; i += 2) {
    uint32_t mm = m[i] * m[i + 1], rr = r[i] + m[i] * r[i + 1];
    while (mm >= 16384) {
      *(*out)++ = (unsigned char)rr;
      rr >>= 8;
      mm = (mm + 255) >> 8;
    }
    r2[n2] = rr;
    m2[n2++] = mm;
  }
  if (len & 1) {
    r2[n2] = r[len - 1];
    m2[n2++] = m[len - 1];
  }
  encode(out, r2, m2, n2);
  OPENSSL_cleanse(r2, sizeof r2);
}

/* Decode, the inverse; any byte string gives digits r_i < m_i. Reads
   exactly as many bytes as encode writes. */
static void decode(uint32_t *r, const unsigned char **in, const uint32_t *m, int len) {
  if (len == 1) {
    uint32_t v = 0, t = 1, mm = m[0];
    while (mm > 1) {
      v += (uint32_t)(*(*in)++) * t;
      t <<= 8;
      mm = (mm + 255) >> 8;
    }
    r[0] = v % m[0];
    return;
  }
  uint32_t bottom_r[(P + 1) / 2], bottom_t[(P + 1) / 2], m2[(P + 1) / 2] = {0}, r2[(P + 1) / 2];
  int n2 = 0;
  for (int i = 0; i + 1 < len; i += 2) {
    uint32_t mm = m[i] * m[i + 1], rr = 0, t = 1;
    while (mm >= 16384) {
      rr += (uint32_t)(*(*in)++) * t;
      t <<= 8;
      mm = (mm + 255) >> 8;
    }
    bottom_r[n2] = rr;
    bottom_t[n2] = t;
    m2[n2++] = mm;
  }
  if (len & 1) m2[n2++] = m[len - 1];
  decode(r2, in, m2, n2);
  for (int i = 0; i + 1 < len; i += 2) {
    uint64_t v = bottom_r[i / 2] + (uint64_t)bottom_t[i / 2] * r2[i / 2];
    r[i] = (uint32_t)(v % m[i]);
    r[i + 1] = (uint32_t)((v / m[i]) % m[i + 1]);
  }
  if (len & 1) r[len - 1] = r2[n2 - 1];
}

/* centred value c in [-(q-1)/2, (q-1)/2] <-> c + (q-1)/2 in [0, q) */
static inline uint32_t fq_to_digit(fq a) { return (uint32_t)fq_reduce((uint32_t)a + Q12); }
static inline fq fq_from_digit(uint32_t d) { return fq_reduce(d + Q - Q12); }

static void rq_encode(unsigned char *s, const fq *h) {
  uint32_t r[P], m[P];
  for (int i = 0; i < P; i++) {
    r[i] = fq_to_digit(h[i]);
    m[i] = Q;
  }
  encode(&s, r, m, P);
}

static void rq_decode(fq *h, const unsigned char *s) {
  uint32_t r[P], m[P];
  for (int i = 0; i < P; i++) m[i] = Q;
  decode(r, &s, m, P);
  for (int i = 0; i < P; i++) h[i] = fq_from_digit(r[i]);
}

/* rounded polynomials hold multiples of 3: digits (c + (q-1)/2) / 3 */
static void rounded_encode(unsigned char *s, const fq *c) {
  uint32_t r[P], m[P];
  for (int i = 0; i < P; i++) {
    r[i] = (fq_to_digit(c[i]) * 10923u) >> 15;   /* exact division by 3 */
    m[i] = (Q + 2) / 3;
  }
  encode(&s, r, m, P);
}

static void rounded_decode(fq *c, const unsigned char *s) {
  uint32_t r[P], m[P];
  for (int i = 0; i < P; i++) m[i] = (Q + 2) / 3;
  decode(r, &s, m, P);
  for (int i = 0; i < P; i++) c[i] = fq_from_digit(r[i] * 3);
}

/* each coefficient to the nearest multiple of 3, in the centred reading */
static void round3(fq *c, const fq *a) {
  for (int i = 0; i < P; i++) {
    f3 m = f3_of_fq(a[i]);              /* a mod 3 as 0, 1, 2 (2 meaning -1) */
    uint32_t sub = (uint32_t)m & 1;     /* 1: subtract 1 */
    uint32_t add = (uint32_t)m >> 1;    /* -1: add 1 */
    c[i] = fq_reduce((uint32_t)a[i] + Q - sub + add);
  }
}

/* ------------------------------------------------------------ hashing */

/* Hash_prefix(b, x): the first 32 bytes of SHA-512(b || x) */
static int hash_prefix(unsigned char out[HASH_BYTES], unsigned char b, const unsigned char *x, size_t xlen,
                       const unsigned char *y, size_t ylen) {
  unsigned char md[64];
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, evssh_ossl_md("SHA512"), NULL) == 1 && EVP_DigestUpdate(ctx, &b, 1) == 1 &&
           EVP_DigestUpdate(ctx, x, xlen) == 1 && (!ylen || EVP_DigestUpdate(ctx, y, ylen) == 1) &&
           EVP_DigestFinal_ex(ctx, md, NULL) == 1;
  EVP_MD_CTX_free(ctx);
  if (ok) memcpy(out, md, HASH_BYTES);
  OPENSSL_cleanse(md, sizeof md);
  return ok ? EVSSH_OK : EVSSH_ENOMEM;
}

/* Hash_prefix(b, Hash_prefix(3, r_enc) || tail): the confirmation (b = 2,
   tail = the cached hash of pk) and the session key (b = 1 or 0, tail = ct) */
static int hash_with_r(unsigned char out[HASH_BYTES], unsigned char b, const unsigned char *r_enc,
                       const unsigned char *tail, size_t tail_len) {
  unsigned char hr[HASH_BYTES];
  int rc = hash_prefix(hr, 3, r_enc, INPUTS_BYTES, NULL, 0);
  if (!rc) rc = hash_prefix(out, b, hr, HASH_BYTES, tail, tail_len);
  OPENSSL_cleanse(hr, sizeof hr);
  return rc;
}

/* ------------------------------------------------------------ the KEM */

/* ct = Rounded(h * r) || confirm(r_enc) */
static int hide(unsigned char ct[SNTRUP761_CT_BYTES], const unsigned char *r_enc, const int8_t *r,
                const unsigned char *pk, const unsigned char *cache) {
  fq h[P], c[P];
  rq_decode(h, pk);
  rq_mul_small(c, h, r);
  round3(c, c);
  rounded_encode(ct, c);
  OPENSSL_cleanse(c, sizeof c);
  return hash_with_r(ct + ROUNDED_BYTES, 2, r_enc, cache, HASH_BYTES);
}

int sntrup761_keygen(unsigned char pk[SNTRUP761_PK_BYTES], unsigned char sk[SNTRUP761_SK_BYTES],
                     sntrup761_rng rng, void *rng_ctx) {
  if (!rng) rng = rng_default;
  int8_t g[P], f[P];
  f3 g3[P], ginv[P];
  fq finv3[P], h[P];
  int rc;
  /* retrying leaks only that a discarded candidate g was not invertible */
  for (;;) {
    if ((rc = small_random(g, rng, rng_ctx))) goto done;
    for (int i = 0; i < P; i++) g3[i] = f3_reduce((uint32_t)(g[i] + 3));
    if (r3_recip(ginv, g3) == 0) break;
  }
  if ((rc = short_random(f, rng, rng_ctx))) goto done;
  rq_recip3(finv3, f);
  rq_mul_small(h, finv3, g);
  rq_encode(pk, h);
  small_encode(sk, f);
  int8_t ginv_s[P];
  for (int i = 0; i < P; i++) ginv_s[i] = (int8_t)(ginv[i] - 3 * (ginv[i] >> 1));   /* 2 -> -1 */
  small_encode(sk + SMALL_BYTES, ginv_s);
  OPENSSL_cleanse(ginv_s, sizeof ginv_s);
  memcpy(sk + SK_PK, pk, SNTRUP761_PK_BYTES);
  if (rng(rng_ctx, sk + SK_RHO, INPUTS_BYTES) != 0) {
    rc = EVSSH_ENOMEM;
    goto done;
  }
  rc = hash_prefix(sk + SK_CACHE, 4, pk, SNTRUP761_PK_BYTES, NULL, 0);
done:
  if (rc) OPENSSL_cleanse(sk, SNTRUP761_SK_BYTES);
  OPENSSL_cleanse(g, sizeof g);
  OPENSSL_cleanse(f, sizeof f);
  OPENSSL_cleanse(g3, sizeof g3);
  OPENSSL_cleanse(ginv, sizeof ginv);
  OPENSSL_cleanse(finv3, sizeof finv3);
  return rc;
}

int sntrup761_encaps(const unsigned char pk[SNTRUP761_PK_BYTES], unsigned char ct[SNTRUP761_CT_BYTES],
                     unsigned char ss[SNTRUP761_SS_BYTES], sntrup761_rng rng, void *rng_ctx) {
  if (!rng) rng = rng_default;
  int8_t r[P];
  unsigned char r_enc[INPUTS_BYTES], cache[HASH_BYTES];
  int rc = short_random(r, rng, rng_ctx);
  if (!rc) rc = hash_prefix(cache, 4, pk, SNTRUP761_PK_BYTES, NULL, 0);
  if (!rc) {
    small_encode(r_enc, r);
    rc = hide(ct, r_enc, r, pk, cache);
  }
  if (!rc) rc = hash_with_r(ss, 1, r_enc, ct, SNTRUP761_CT_BYTES);
  OPENSSL_cleanse(r, sizeof r);
  OPENSSL_cleanse(r_enc, sizeof r_enc);
  return rc;
}

int sntrup761_decaps(const unsigned char sk[SNTRUP761_SK_BYTES], const unsigned char ct[SNTRUP761_CT_BYTES],
                     unsigned char ss[SNTRUP761_SS_BYTES]) {
  int8_t f[P], v[P], r[P];
  f3 e[P], v3[P], ev[P];
  fq c[P], cf[P];
  unsigned char r_enc[INPUTS_BYTES], ct2[SNTRUP761_CT_BYTES];
  /* r = weight-checked (3f * c) / g in R/3 */
  small_decode(f, sk);
  small_decode(v, sk + SMALL_BYTES);
  rounded_decode(c, ct);
  rq_mul_small(cf, c, f);
  for (int i = 0; i < P; i++) {
    e[i] = f3_of_fq(fq_reduce(3u * cf[i]));
    v3[i] = f3_reduce((uint32_t)(v[i] + 3));
  }
  r3_mul(ev, e, v3);
  uint32_t weight = 0;
  for (int i = 0; i < P; i++) weight += ((uint32_t)ev[i] | ((uint32_t)ev[i] >> 1)) & 1;
  uint32_t bad = nonzero_mask(weight - W);
  /* a wrong weight gives the fixed r = (1, ..., 1 (w times), 0, ...) */
  for (int i = 0; i < P; i++) {
    int8_t val = (int8_t)(ev[i] - 3 * (ev[i] >> 1));   /* 0, 1, -1 */
    int8_t fallback = i < W ? 1 : 0;
    r[i] = (int8_t)((val & (int8_t)~bad) | (fallback & (int8_t)bad));
  }
  small_encode(r_enc, r);
  int rc = hide(ct2, r_enc, r, sk + SK_PK, sk + SK_CACHE);
  if (!rc) {
    uint32_t diff = 0;
    for (int i = 0; i < SNTRUP761_CT_BYTES; i++) diff |= (uint32_t)(ct[i] ^ ct2[i]);
    uint32_t mismatch = nonzero_mask(diff);
    for (int i = 0; i < INPUTS_BYTES; i++)
      r_enc[i] = (unsigned char)(r_enc[i] ^ (mismatch & (uint32_t)(r_enc[i] ^ sk[SK_RHO + i])));
    rc = hash_with_r(ss, (unsigned char)(1 + (int32_t)mismatch), r_enc, ct, SNTRUP761_CT_BYTES);
  }
  OPENSSL_cleanse(f, sizeof f);
  OPENSSL_cleanse(v, sizeof v);
  OPENSSL_cleanse(r, sizeof r);
  OPENSSL_cleanse(e, sizeof e);
  OPENSSL_cleanse(v3, sizeof v3);
  OPENSSL_cleanse(ev, sizeof ev);
  OPENSSL_cleanse(cf, sizeof cf);
  OPENSSL_cleanse(r_enc, sizeof r_enc);
  OPENSSL_cleanse(ct2, sizeof ct2);
  return rc;
}
