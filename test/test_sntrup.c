/* Tests for sntrup761.c: key generation, encapsulation and decapsulation
 * from a deterministic random stream against values computed by an
 * independent throwaway Python implementation (big-integer polynomial
 * arithmetic and Euclid's inverses, written from the NTRU Prime
 * specification; reproduced at the end of this file), random round trips,
 * implicit rejection checked against the rejection key computed here with
 * SHA-512 directly, and the fixed sizes. Interop with OpenSSH (test_pq_interop)
 * is the other half of the proof. */
#include "sntrup761.h"
#include "evssh.h"

#include <check.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SHAKE256(seed), handed out in order, as the Python's stream() */
typedef struct stream {
  unsigned char buf[1 << 17];
  size_t pos;
} stream;

static void stream_init(stream *s, const char *seed) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  ck_assert_int_eq(EVP_DigestInit_ex(ctx, EVP_shake256(), NULL), 1);
  ck_assert_int_eq(EVP_DigestUpdate(ctx, seed, strlen(seed)), 1);
  ck_assert_int_eq(EVP_DigestFinalXOF(ctx, s->buf, sizeof s->buf), 1);
  EVP_MD_CTX_free(ctx);
  s->pos = 0;
}

static int stream_take(void *ctx, unsigned char *out, size_t len) {
  stream *s = ctx;
  if (s->pos + len > sizeof s->buf) return -1;
  memcpy(out, s->buf + s->pos, len);
  s->pos += len;
  return 0;
}

static void expect_sha256(const unsigned char *p, size_t n, const char *hex, const char *what) {
  unsigned char md[32];
  char got[65];
  SHA256(p, n, md);
  for (int i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02x", md[i]);
  ck_assert_msg(strcmp(got, hex) == 0, "%s: sha256 %s, the Python reference has %s", what, got, hex);
}

static void expect_hex(const unsigned char *p, size_t n, const char *hex, const char *what) {
  char got[200];
  ck_assert(2 * n < sizeof got);
  for (size_t i = 0; i < n; i++) snprintf(got + 2 * i, 3, "%02x", p[i]);
  ck_assert_msg(strcmp(got, hex) == 0, "%s: %s, the Python reference has %s", what, got, hex);
}

static stream ks, es;

/* python3 sntrup_ref.py (below) prints these */
#define REF_PK "c48f9bdda0a4720d566766d4a46e4b308864b53f49806822ce71f05d357e85d7"
#define REF_SK "6a57f1208db934260f08882da531e17f1d182dae443bc00c848abb97dfd424df"
#define REF_CT "a58d9ba5a00b6781c60604fa92e96fdc843cd9f3e9d975530a5eadcd6eced186"
#define REF_SS "e312698c8f8581166570494f62f13a2005aa5ac52a9e32c5dcf1573cc9cc2823"

START_TEST(known_answer) {
  unsigned char pk[SNTRUP761_PK_BYTES], sk[SNTRUP761_SK_BYTES], ct[SNTRUP761_CT_BYTES], ss[32], ss2[32];
  stream_init(&ks, "evssh sntrup761 keygen");
  stream_init(&es, "evssh sntrup761 encaps");
  ck_assert_int_eq(sntrup761_keygen(pk, sk, stream_take, &ks), EVSSH_OK);
  expect_sha256(pk, sizeof pk, REF_PK, "public key");
  expect_sha256(sk, sizeof sk, REF_SK, "secret key");
  ck_assert_int_eq(sntrup761_encaps(pk, ct, ss, stream_take, &es), EVSSH_OK);
  expect_sha256(ct, sizeof ct, REF_CT, "ciphertext");
  expect_hex(ss, sizeof ss, REF_SS, "session key (encaps)");
  ck_assert_int_eq(sntrup761_decaps(sk, ct, ss2), EVSSH_OK);
  expect_hex(ss2, sizeof ss2, REF_SS, "session key (decaps)");
}
END_TEST

START_TEST(round_trips) {
  for (int i = 0; i < 20; i++) {
    unsigned char pk[SNTRUP761_PK_BYTES], sk[SNTRUP761_SK_BYTES], ct[SNTRUP761_CT_BYTES], a[32], b[32];
    ck_assert_int_eq(sntrup761_keygen(pk, sk, NULL, NULL), EVSSH_OK);
    ck_assert_int_eq(sntrup761_encaps(pk, ct, a, NULL, NULL), EVSSH_OK);
    ck_assert_int_eq(sntrup761_decaps(sk, ct, b), EVSSH_OK);
    ck_assert_mem_eq(a, b, 32);
  }
}
END_TEST

/* Hash_prefix(0, Hash_prefix(3, rho) || ct), rho at its place in sk */
static void rejection_key(const unsigned char *sk, const unsigned char *ct, unsigned char out[32]) {
  unsigned char buf[1 + 32 + SNTRUP761_CT_BYTES], md[64];
  buf[0] = 3;
  memcpy(buf + 1, sk + 382 + SNTRUP761_PK_BYTES, 191);
  SHA512(buf, 1 + 191, md);
  buf[0] = 0;
  memcpy(buf + 1, md, 32);
  memcpy(buf + 33, ct, SNTRUP761_CT_BYTES);
  SHA512(buf, sizeof buf, md);
  memcpy(out, md, 32);
}

START_TEST(implicit_rejection) {
  unsigned char pk[SNTRUP761_PK_BYTES], sk[SNTRUP761_SK_BYTES], ct[SNTRUP761_CT_BYTES], good[32], got[32], want[32];
  ck_assert_int_eq(sntrup761_keygen(pk, sk, NULL, NULL), EVSSH_OK);
  ck_assert_int_eq(sntrup761_encaps(pk, ct, good, NULL, NULL), EVSSH_OK);
  /* in the rounded polynomial (first, middle, last byte) and in the confirmation hash */
  size_t where[] = {0, 500, 1006, 1007, SNTRUP761_CT_BYTES - 1};
  for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
    ct[where[i]] ^= 0x04;
    ck_assert_int_eq(sntrup761_decaps(sk, ct, got), EVSSH_OK);
    rejection_key(sk, ct, want);
    ck_assert_msg(memcmp(got, good, 32) != 0, "tampered byte %zu still gave the real key", where[i]);
    ck_assert_msg(memcmp(got, want, 32) == 0, "tampered byte %zu did not give the rejection key", where[i]);
    ct[where[i]] ^= 0x04;
  }
  ck_assert_int_eq(sntrup761_decaps(sk, ct, got), EVSSH_OK);
  ck_assert_mem_eq(got, good, 32);
}
END_TEST

START_TEST(all_ones_ciphertext) {
  /* any byte string decodes (digits reduce mod their radix): no crash, a key */
  unsigned char pk[SNTRUP761_PK_BYTES], sk[SNTRUP761_SK_BYTES], ct[SNTRUP761_CT_BYTES], got[32], want[32];
  ck_assert_int_eq(sntrup761_keygen(pk, sk, NULL, NULL), EVSSH_OK);
  memset(ct, 0xff, sizeof ct);
  ck_assert_int_eq(sntrup761_decaps(sk, ct, got), EVSSH_OK);
  rejection_key(sk, ct, want);
  ck_assert_mem_eq(got, want, 32);
}
END_TEST

START_TEST(rng_failure) {
  stream tiny;
  stream_init(&tiny, "x");
  tiny.pos = sizeof tiny.buf - 10;   /* not enough for one polynomial */
  unsigned char pk[SNTRUP761_PK_BYTES], sk[SNTRUP761_SK_BYTES];
  ck_assert_int_eq(sntrup761_keygen(pk, sk, stream_take, &tiny), EVSSH_ENOMEM);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sntrup761");
  TCase *tc = tcase_create("sntrup761");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, known_answer);
  tcase_add_test(tc, round_trips);
  tcase_add_test(tc, implicit_rejection);
  tcase_add_test(tc, all_ones_ciphertext);
  tcase_add_test(tc, rng_failure);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}

/* The reference values above came from this throwaway Python 3 program
 * (independent of sntrup761.c: big integers, Euclid over GF(3) and GF(q)):
 *
 * import hashlib
 * p, q, w = 761, 4591, 286
 * def stream(seed, n=1 << 17):
 *     buf = hashlib.shake_256(seed).digest(n); pos = [0]
 *     def take(k):
 *         b = buf[pos[0]:pos[0] + k]; pos[0] += k; return b
 *     return take
 * def u32s(take):
 *     b = take(4 * p); return [int.from_bytes(b[4*i:4*i+4], 'little') for i in range(p)]
 * def small_random(take): return [((x & 0x3fffffff) * 3 >> 30) - 1 for x in u32s(take)]
 * def short_random(take):
 *     L = u32s(take)
 *     L = [x & ~1 & 0xffffffff for x in L[:w]] + [(x & ~3 & 0xffffffff) | 1 for x in L[w:]]
 *     L.sort(); return [(x & 3) - 1 for x in L]
 * def polymulmod(a, b, m):          # mod (x^p - x - 1, m)
 *     c = [0] * (2 * p - 1)
 *     for i, ai in enumerate(a):
 *         if ai:
 *             for j, bj in enumerate(b): c[i + j] += ai * bj
 *     for i in range(2 * p - 2, p - 1, -1):
 *         c[i - p] += c[i]; c[i - p + 1] += c[i]; c[i] = 0
 *     return [x % m for x in c[:p]]
 * def polyinv(a, m):                # extended Euclid in GF(m)[x] against x^p - x - 1
 *     def trim(f):
 *         while f and f[-1] % m == 0: f.pop()
 *         return f
 *     def divmod_(f, g):
 *         f = f[:]; qt = [0] * max(len(f) - len(g) + 1, 1); inv = pow(g[-1], -1, m)
 *         while len(trim(f)) >= len(g):
 *             d = len(f) - len(g); c = f[-1] * inv % m; qt[d] = c
 *             for i, gi in enumerate(g): f[d + i] = (f[d + i] - c * gi) % m
 *         return qt, f
 *     def mul(f, g):
 *         r = [0] * (len(f) + len(g))
 *         for i, x in enumerate(f):
 *             for j, y in enumerate(g): r[i + j] = (r[i + j] + x * y) % m
 *         return trim(r)
 *     def sub(f, g):
 *         n = max(len(f), len(g))
 *         return trim([((f[i] if i < len(f) else 0) - (g[i] if i < len(g) else 0)) % m for i in range(n)])
 *     r0, r1 = [m - 1, m - 1] + [0] * (p - 2) + [1], trim([x % m for x in a]); s0, s1 = [], [1]
 *     while r1:
 *         qt, rem = divmod_(r0, r1); r0, r1 = r1, trim(rem); s0, s1 = s1, sub(s0, mul(qt, s1))
 *     if len(r0) != 1: return None
 *     inv = pow(r0[0], -1, m); return ([x * inv % m for x in s0] + [0] * p)[:p]
 * def centred(x, m): x %= m; return x - m if x > m // 2 else x
 * def encode(R, M):                 # the specification's Encode
 *     if len(M) == 0: return b''
 *     if len(M) == 1:
 *         r, m, S = R[0], M[0], b''
 *         while m > 1: S += bytes([r % 256]); r //= 256; m = (m + 255) // 256
 *         return S
 *     S, R2, M2 = b'', [], []
 *     for i in range(0, len(M) - 1, 2):
 *         m, r = M[i] * M[i + 1], R[i] + M[i] * R[i + 1]
 *         while m >= 16384: S += bytes([r % 256]); r //= 256; m = (m + 255) // 256
 *         R2.append(r); M2.append(m)
 *     if len(M) & 1: R2.append(R[-1]); M2.append(M[-1])
 *     return S + encode(R2, M2)
 * def small_enc(f):
 *     return bytes([sum((f[4*i+j] + 1) << (2*j) for j in range(4)) for i in range(p // 4)] + [f[-1] + 1])
 * H = lambda b, x: hashlib.sha512(bytes([b]) + x).digest()[:32]
 * def keygen(take):
 *     while True:
 *         g = small_random(take); ginv = polyinv(g, 3)
 *         if ginv is not None: break
 *     f = short_random(take); h = polymulmod(polyinv([3 * x for x in f], q), g, q)
 *     pk = encode([centred(x, q) + 2295 for x in h], [q] * p)
 *     sk = small_enc(f) + small_enc([centred(x, 3) for x in ginv]) + pk + take(191) + H(4, pk)
 *     return pk, sk, h
 * def encaps(h, pk, take):
 *     r = short_random(take); c = [centred(x, q) for x in polymulmod(h, r, q)]
 *     c = [x - centred(x, 3) for x in c]
 *     ct = encode([(x + 2295) // 3 for x in c], [1531] * p)
 *     r_enc = small_enc(r); ct += H(2, H(3, r_enc) + H(4, pk))
 *     return ct, H(1, H(3, r_enc) + ct)
 * pk, sk, h = keygen(stream(b'evssh sntrup761 keygen'))
 * ct, ss = encaps(h, pk, stream(b'evssh sntrup761 encaps'))
 * sha = lambda b: hashlib.sha256(b).hexdigest()
 * print('pk', sha(pk)); print('sk', sha(sk)); print('ct', sha(ct)); print('ss', ss.hex())
 */
