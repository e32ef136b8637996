/* Exact memoization for fuzz targets: a small table from the bytes of a
 * call's arguments to the bytes of its result, for functions that are
 * deterministic in those arguments, cost far more than the parsing around
 * them and read nothing from the input beyond them (bcrypt-pbkdf, the
 * sntrup761 key generation from a seeded stream, a modular exponentiation
 * with fixed operands). A target reaches such a function through the
 * linker's --wrap (a "FUZZ_LDFLAGS: -Wl,--wrap=NAME" line in its source;
 * see test/fuzz/run.sh): the library's calls land in __wrap_NAME, which
 * looks the arguments up here and calls __real_NAME only for arguments it
 * has not seen, so every distinct argument tuple still runs the real code
 * once and every result is byte for byte what the real call returns. Only
 * successful results are kept; failures go through to the real call every
 * time. Entries live until exit (reachable, so LeakSanitizer is quiet).
 *
 * Header-only (static functions), included by the targets that use it. */
#ifndef EVSSH_FUZZ_MEMO_H
#define EVSSH_FUZZ_MEMO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_SLOTS 64

typedef struct memo_entry {
  uint64_t hash;
  unsigned char *key, *val;
  size_t key_len, val_len;
} memo_entry;

typedef struct memo {
  memo_entry e[MEMO_SLOTS];
  size_t next;   /* round-robin replacement */
} memo;

/* the key bytes of one call: each argument appended with its length */
typedef struct memo_key {
  unsigned char *p;
  size_t len, cap;
  bool failed;
} memo_key;

/* not instrumented: byte loops over the arguments have no branches the
   fuzzer should steer by */
#if defined(__clang__)
#define MEMO_NOCOV __attribute__((no_sanitize("coverage")))
#else
#define MEMO_NOCOV
#endif

MEMO_NOCOV static uint64_t memo_hash(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211u;
  return h;
}

MEMO_NOCOV static bool memo_same(const unsigned char *a, const unsigned char *b, size_t n) {
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++) d |= a[i] ^ b[i];
  return d == 0;
}

static void memo_key_add(memo_key *k, const void *p, size_t n) {
  if (k->failed) return;
  size_t need = k->len + 8 + n;
  if (need > k->cap) {
    size_t cap = k->cap ? k->cap : 256;
    while (cap < need) cap *= 2;
    unsigned char *q = realloc(k->p, cap);
    if (!q) {
      k->failed = true;
      return;
    }
    k->p = q;
    k->cap = cap;
  }
  uint64_t len = n;
  memcpy(k->p + k->len, &len, 8);
  if (n) memcpy(k->p + k->len + 8, p, n);
  k->len = need;
}

static void memo_key_release(memo_key *k) {
  free(k->p);
  memset(k, 0, sizeof *k);
}

/* The stored result for key, or NULL. */
static const memo_entry *memo_find(const memo *m, const memo_key *k) {
  if (k->failed) return NULL;
  uint64_t h = memo_hash(k->p, k->len);
  for (size_t i = 0; i < MEMO_SLOTS; i++) {
    const memo_entry *e = &m->e[i];
    if (e->key && e->hash == h && e->key_len == k->len && memo_same(e->key, k->p, k->len)) return e;
  }
  return NULL;
}

/* Keeps a copy of key -> val (silently nothing when memory is short). */
static void memo_put(memo *m, const memo_key *k, const void *val, size_t val_len) {
  if (k->failed) return;
  unsigned char *kc = malloc(k->len ? k->len : 1), *vc = malloc(val_len ? val_len : 1);
  if (!kc || !vc) {
    free(kc);
    free(vc);
    return;
  }
  memcpy(kc, k->p, k->len);
  if (val_len) memcpy(vc, val, val_len);
  memo_entry *e = &m->e[m->next];
  m->next = (m->next + 1) % MEMO_SLOTS;
  free(e->key);
  free(e->val);
  *e = (memo_entry){memo_hash(kc, k->len), kc, vc, k->len, val_len};
}

/* bcrypt-pbkdf (keys.c's calls), for targets that define FUZZ_MEMO_BCRYPT
   before including this and link with -Wl,--wrap=evssh_bcrypt_pbkdf: one
   real derivation per distinct (passphrase, salt, key length, rounds). */
#ifdef FUZZ_MEMO_BCRYPT
#include "bcrypt_pbkdf.h"

int __real_evssh_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint8_t *key,
                              size_t keylen, unsigned int rounds);
int __wrap_evssh_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint8_t *key,
                              size_t keylen, unsigned int rounds);
int __wrap_evssh_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint8_t *key,
                              size_t keylen, unsigned int rounds) {
  static memo table;
  if (!pass || !salt || !key) return __real_evssh_bcrypt_pbkdf(pass, passlen, salt, saltlen, key, keylen, rounds);
  memo_key k = {0};
  memo_key_add(&k, pass, passlen);
  memo_key_add(&k, salt, saltlen);
  memo_key_add(&k, &keylen, sizeof keylen);
  memo_key_add(&k, &rounds, sizeof rounds);
  const memo_entry *e = memo_find(&table, &k);
  int rc = 0;
  if (e && e->val_len == keylen) {
    memcpy(key, e->val, keylen);
  } else {
    rc = __real_evssh_bcrypt_pbkdf(pass, passlen, salt, saltlen, key, keylen, rounds);
    if (rc == 0) memo_put(&table, &k, key, keylen);
  }
  memo_key_release(&k);
  return rc;
}
#endif

#endif
