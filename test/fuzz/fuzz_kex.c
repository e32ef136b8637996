/* Fuzz target: server replies of every key exchange method we offer, the
 * post-quantum hybrids included, fed straight into evssh_kex. The first
 * input byte picks the method (index into evssh_kex_supported_list()); the
 * rest is a sequence of server messages, each a message number, a 16-bit
 * big-endian length and that many body bytes. Whatever arrives, the
 * exchange must finish or fail with a message, never crash, read out of
 * bounds or leak; a finished one must yield H, K_S, the signature and
 * derivable keys.
 *
 * The client's ephemeral keys are fixed (evssh_kex_set_private), so their
 * generation gives the same result for every input: the sntrup761 key pair
 * from its seeded stream and g^x mod p for the fixed DH exponent are made
 * once per process and replayed (fuzz_memo.h, through the linker's --wrap;
 * any other argument still runs the real code), so what runs per input is
 * the reply's parsing, the peer-value checks, the shared secret, the
 * decapsulation and H (with sntrup761.c and mlkem.c left uninstrumented by
 * run.sh): about 100 inputs per CPU second before, 750 now.
 *
 * Build with clang as test/fuzz/run.sh builds fuzz_transport (the same
 * library sources, which now include src/mlkem.c, src/sntrup761.c and
 * src/kexinit.c). Seeds: test/fuzz/seeds/fuzz_kex/.
 * FUZZ_LDFLAGS: -Wl,--wrap=sntrup761_keygen -Wl,--wrap=BN_mod_exp_mont_consttime */
#include "kex.h"
#include "sntrup761.h"

#include "fuzz_memo.h"

#include <openssl/bn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------- sntrup761 key pair, once */

/* The real key generation draws from the caller's stream through this,
   which serves first the bytes already drawn (by the lookup below) and
   records everything it serves. */
typedef struct replay {
  const unsigned char *prefix;
  size_t prefix_len, pos;
  sntrup761_rng rng;
  void *rng_ctx;
  unsigned char *log;
  size_t log_len, log_cap;
  bool failed;
} replay;

static int replay_take(void *ctx, unsigned char *out, size_t len) {
  replay *r = ctx;
  size_t from_prefix = 0;
  if (r->pos < r->prefix_len) {
    from_prefix = r->prefix_len - r->pos < len ? r->prefix_len - r->pos : len;
    memcpy(out, r->prefix + r->pos, from_prefix);
  }
  if (from_prefix < len && r->rng(r->rng_ctx, out + from_prefix, len - from_prefix) != 0) return -1;
  r->pos += len;
  if (r->log_len + len > r->log_cap) {
    size_t cap = r->log_cap ? r->log_cap : 4096;
    while (cap < r->log_len + len) cap *= 2;
    unsigned char *p = realloc(r->log, cap);
    if (!p) {
      r->failed = true;
      return 0;   /* the real draw goes on; only the memo is lost */
    }
    r->log = p;
    r->log_cap = cap;
  }
  if (!r->failed) {
    memcpy(r->log + r->log_len, out, len);
    r->log_len += len;
  }
  return 0;
}

int __real_sntrup761_keygen(unsigned char pk[SNTRUP761_PK_BYTES], unsigned char sk[SNTRUP761_SK_BYTES],
                            sntrup761_rng rng, void *rng_ctx);
int __wrap_sntrup761_keygen(unsigned char pk[SNTRUP761_PK_BYTES], unsigned char sk[SNTRUP761_SK_BYTES],
                            sntrup761_rng rng, void *rng_ctx);
/* Key generation is a function of the bytes it draws: if the caller's
   stream starts with the bytes the last generation drew, the result is the
   last one. Real randomness (rng NULL) is never replayed. */
int __wrap_sntrup761_keygen(unsigned char pk[SNTRUP761_PK_BYTES], unsigned char sk[SNTRUP761_SK_BYTES],
                            sntrup761_rng rng, void *rng_ctx) {
  static unsigned char *drawn, last_pk[SNTRUP761_PK_BYTES], last_sk[SNTRUP761_SK_BYTES];
  static size_t drawn_len;
  if (!rng) return __real_sntrup761_keygen(pk, sk, rng, rng_ctx);
  unsigned char *probe = NULL;
  size_t probe_len = 0;
  if (drawn) {
    probe = malloc(drawn_len);
    if (!probe) return __real_sntrup761_keygen(pk, sk, rng, rng_ctx);
    if (rng(rng_ctx, probe, drawn_len) != 0) {
      /* a stream shorter than the last draw: kex.c's source draws nothing
         when it refuses, so the real generation sees the whole stream */
      free(probe);
      return __real_sntrup761_keygen(pk, sk, rng, rng_ctx);
    }
    probe_len = drawn_len;
    if (memcmp(probe, drawn, drawn_len) == 0) {
      memcpy(pk, last_pk, sizeof last_pk);
      memcpy(sk, last_sk, sizeof last_sk);
      free(probe);
      return EVSSH_OK;
    }
  }
  replay r = {probe, probe_len, 0, rng, rng_ctx, NULL, 0, 0, false};
  int rc = __real_sntrup761_keygen(pk, sk, replay_take, &r);
  free(probe);
  if (rc == EVSSH_OK && !r.failed && r.log_len >= probe_len) {
    free(drawn);
    drawn = r.log;
    drawn_len = r.log_len;
    memcpy(last_pk, pk, sizeof last_pk);
    memcpy(last_sk, sk, sizeof last_sk);
  } else {
    free(r.log);
  }
  return rc;
}

/* ------------------------------------------ g^x mod p for a fixed x */

int __real_BN_mod_exp_mont_consttime(BIGNUM *rr, const BIGNUM *a, const BIGNUM *p, const BIGNUM *m, BN_CTX *ctx,
                                     BN_MONT_CTX *mont);
int __wrap_BN_mod_exp_mont_consttime(BIGNUM *rr, const BIGNUM *a, const BIGNUM *p, const BIGNUM *m, BN_CTX *ctx,
                                     BN_MONT_CTX *mont);

static void key_add_bn(memo_key *k, const BIGNUM *v) {
  int n = BN_num_bytes(v);
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  if (!b) {
    k->failed = true;
    return;
  }
  BN_bn2bin(v, b);
  unsigned char neg = (unsigned char)BN_is_negative(v);
  memo_key_add(k, &neg, 1);
  memo_key_add(k, b, (size_t)n);
  free(b);
}

int __wrap_BN_mod_exp_mont_consttime(BIGNUM *rr, const BIGNUM *a, const BIGNUM *p, const BIGNUM *m, BN_CTX *ctx,
                                     BN_MONT_CTX *mont) {
  static memo table;
  memo_key k = {0};
  key_add_bn(&k, a);
  key_add_bn(&k, p);
  key_add_bn(&k, m);
  const memo_entry *e = memo_find(&table, &k);
  int ok;
  if (e && BN_bin2bn(e->val, (int)e->val_len, rr)) {
    ok = 1;
  } else {
    ok = __real_BN_mod_exp_mont_consttime(rr, a, p, m, ctx, mont);
    int n = ok ? BN_num_bytes(rr) : 0;
    unsigned char *b = ok && !BN_is_negative(rr) ? malloc(n > 0 ? (size_t)n : 1) : NULL;
    if (b) {
      BN_bn2bin(rr, b);
      memo_put(&table, &k, b, (size_t)n);
      free(b);
    }
  }
  memo_key_release(&k);
  return ok;
}

/* ------------------------------------------------------- the target */

static const char *method_at(unsigned idx, char *name, size_t len) {
  const char *p = evssh_kex_supported_list();
  unsigned count = 1;
  for (const char *c = p; *c; c++) count += *c == ',';
  idx %= count;
  while (idx--) p = strchr(p, ',') + 1;
  size_t n = strcspn(p, ",");
  if (n >= len) n = len - 1;
  memcpy(name, p, n);
  name[n] = 0;
  return name;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1) return 0;
  char name[80];
  const evssh_kex_alg *alg = evssh_kex_find(method_at(data[0], name, sizeof name));
  if (!alg) abort();   /* every supported name must be findable */
  static const unsigned char ic[] = "\x14 client kexinit", is[] = "\x14 server kexinit";
  evssh_kex_input in = {"SSH-2.0-evssh_fuzz", "SSH-2.0-OpenSSH_10.0", ic, sizeof ic - 1, is, sizeof is - 1};
  evssh_kex *k = NULL;
  if (evssh_kex_new(alg, &in, &k) != EVSSH_OK) return 0;
  /* fixed ephemeral keys keep runs reproducible (and skip no code path) */
  unsigned char priv[96];
  for (size_t i = 0; i < sizeof priv; i++) priv[i] = (unsigned char)(i * 37 + 11);
  size_t plen = strncmp(name, "mlkem", 5) == 0 ? 96 : strncmp(name, "sntrup", 6) == 0 ? 48
               : strncmp(name, "curve25519", 10) == 0 ? 32 : strstr(name, "nistp521") ? 66
               : strstr(name, "nistp384") ? 48 : 32;
  if (strstr(name, "nistp521")) priv[0] = 0x01;   /* below the group order */
  evssh_kex_set_private(k, priv, plen);
  evssh_buf out = EVSSH_BUF_INIT;
  if (evssh_kex_start(k, &out) != EVSSH_OK) {
    evssh_kex_free(k);
    buf_release(&out);
    return 0;
  }
  size_t off = 1;
  bool done = false;
  while (off + 3 <= size && !done) {
    uint8_t msg = data[off];
    size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
    off += 3;
    if (len > size - off) len = size - off;
    evssh_reader body = reader_of(data + off, len);
    off += len;
    char err[256] = "";
    buf_reset(&out);
    int rc = evssh_kex_handle(k, msg, &body, &out, &done, err, sizeof err);
    if (rc == EVSSH_EPROTO && !err[0]) abort();   /* a refusal must say why */
    if (rc) break;
  }
  if (done) {
    size_t hl, kl, sl;
    if (!evssh_kex_hash(k, &hl) || !evssh_kex_hostkey(k, &kl) || !evssh_kex_signature(k, &sl) || hl == 0) abort();
    unsigned char key[80];
    if (evssh_kex_derive(k, evssh_kex_hash(k, &hl), hl, 'C', key, sizeof key) != EVSSH_OK) abort();
  }
  evssh_kex_free(k);
  buf_release(&out);
  return 0;
}
