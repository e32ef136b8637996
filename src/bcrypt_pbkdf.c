/* bcrypt_pbkdf.c owns the key derivation of passphrase-protected
 * openssh-key-v1 files: a PBKDF2-like construction over SHA-512 whose inner
 * function is bcrypt's expensive Blowfish key schedule (Eksblowfish).
 *
 * Why it is ours: the plan was to let libssh decrypt these files, but
 * libssh 0.10 cannot hand an RSA key from this format back out (it builds
 * the key without its CRT parameters and every export fails), so the most
 * common kind of RSA key file would not load. OpenSSL has no Eksblowfish.
 * Blowfish's initial tables are the fractional hexadecimal digits of pi,
 * so they are computed here (Machin's formula in OpenSSL big numbers)
 * rather than written out. */
#include "bcrypt_pbkdf.h"

#include "evssh.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BF_WORDS (18 + 4 * 256)   /* P-array, then the four S-boxes */

typedef struct blowfish {
  uint32_t P[18];
  uint32_t S[4][256];
} blowfish;

static uint32_t pi_words[BF_WORDS];
static bool pi_ok;
static pthread_once_t pi_once = PTHREAD_ONCE_INIT;

/* out = atan(1/x) * 2^bits, by its alternating series */
static bool atan_inverse(BIGNUM *out, unsigned long x, int bits) {
  BIGNUM *power = BN_new(), *term = BN_new();
  bool ok = power && term && BN_set_word(out, 0) && BN_set_word(power, 0) && BN_set_bit(power, bits) &&
            BN_div_word(power, x) != (BN_ULONG)-1;
  for (unsigned long k = 0; ok && !BN_is_zero(power); k++) {
    ok = BN_copy(term, power) && BN_div_word(term, 2 * k + 1) != (BN_ULONG)-1;
    if (ok) ok = (k % 2 == 0) ? BN_add(out, out, term) : BN_sub(out, out, term);
    if (ok) ok = BN_div_word(power, x * x) != (BN_ULONG)-1;
  }
  BN_free(power);
  BN_free(term);
  return ok;
}

static void compute_pi_words(void) {
  const int frac_bits = BF_WORDS * 32, guard = 64, bits = frac_bits + guard;
  BIGNUM *pi = BN_new(), *second = BN_new();
  unsigned char *bytes = malloc((size_t)frac_bits / 8);
  /* Machin: pi = 16 atan(1/5) - 4 atan(1/239) */
  bool ok = pi && second && bytes && atan_inverse(pi, 5, bits) && BN_mul_word(pi, 16) &&
            atan_inverse(second, 239, bits) && BN_mul_word(second, 4) && BN_sub(pi, pi, second);
  /* drop the integer part (3) and the guard bits */
  ok = ok && BN_mask_bits(pi, bits) && BN_rshift(pi, pi, guard) &&
       BN_bn2binpad(pi, bytes, frac_bits / 8) == frac_bits / 8;
  if (ok) {
    for (int i = 0; i < BF_WORDS; i++)
      pi_words[i] = ((uint32_t)bytes[4 * i] << 24) | ((uint32_t)bytes[4 * i + 1] << 16) |
                    ((uint32_t)bytes[4 * i + 2] << 8) | bytes[4 * i + 3];
    /* 3.243F6A88 85A308D3...: the digits every Blowfish starts from */
    pi_ok = pi_words[0] == 0x243F6A88u && pi_words[1] == 0x85A308D3u;
  }
  free(bytes);
  BN_free(pi);
  BN_free(second);
}

static void bf_init(blowfish *c) {
  memcpy(c->P, pi_words, sizeof c->P);
  memcpy(c->S, pi_words + 18, sizeof c->S);
}

static inline uint32_t bf_f(const blowfish *c, uint32_t x) {
  return ((c->S[0][x >> 24] + c->S[1][(x >> 16) & 0xff]) ^ c->S[2][(x >> 8) & 0xff]) + c->S[3][x & 0xff];
}

static void bf_encipher(const blowfish *c, uint32_t *xl, uint32_t *xr) {
  uint32_t l = *xl, r = *xr;
  l ^= c->P[0];
  for (int i = 1; i <= 16; i += 2) {
    r ^= bf_f(c, l) ^ c->P[i];
    l ^= bf_f(c, r) ^ c->P[i + 1];
  }
  *xl = r ^ c->P[17];
  *xr = l;
}

/* next 4 bytes of data as a big-endian word, wrapping around */
static uint32_t stream_word(const uint8_t *data, size_t len, size_t *pos) {
  uint32_t w = 0;
  for (int i = 0; i < 4; i++) {
    if (*pos >= len) *pos = 0;
    w = (w << 8) | data[(*pos)++];
  }
  return w;
}

/* Eksblowfish's key schedule step, with the salt (data) mixed in or not */
static void bf_expand(blowfish *c, const uint8_t *data, size_t datalen, const uint8_t *key, size_t keylen) {
  size_t pos = 0;
  for (int i = 0; i < 18; i++) c->P[i] ^= stream_word(key, keylen, &pos);
  pos = 0;
  uint32_t l = 0, r = 0;
  for (int i = 0; i < 18; i += 2) {
    if (data) {
      l ^= stream_word(data, datalen, &pos);
      r ^= stream_word(data, datalen, &pos);
    }
    bf_encipher(c, &l, &r);
    c->P[i] = l;
    c->P[i + 1] = r;
  }
  for (int s = 0; s < 4; s++)
    for (int k = 0; k < 256; k += 2) {
      if (data) {
        l ^= stream_word(data, datalen, &pos);
        r ^= stream_word(data, datalen, &pos);
      }
      bf_encipher(c, &l, &r);
      c->S[s][k] = l;
      c->S[s][k + 1] = r;
    }
}

#define HASH_LEN 32

/* bcrypt_hash: 64 rounds of the expensive schedule keyed by the hashed
   passphrase and salt, then "OxychromaticBlowfishSwatDynamite" encrypted
   64 times; the words come out little-endian. */
static void bcrypt_hash(const uint8_t sha2pass[64], const uint8_t sha2salt[64], uint8_t out[HASH_LEN]) {
  static const char magic[] = "OxychromaticBlowfishSwatDynamite";
  blowfish c;
  bf_init(&c);
  bf_expand(&c, sha2salt, 64, sha2pass, 64);
  for (int i = 0; i < 64; i++) {
    bf_expand(&c, NULL, 0, sha2salt, 64);
    bf_expand(&c, NULL, 0, sha2pass, 64);
  }
  uint32_t cdata[8];
  size_t pos = 0;
  for (int i = 0; i < 8; i++) cdata[i] = stream_word((const uint8_t *)magic, 32, &pos);
  for (int i = 0; i < 64; i++)
    for (int j = 0; j < 8; j += 2) bf_encipher(&c, &cdata[j], &cdata[j + 1]);
  for (int i = 0; i < 8; i++) {
    out[4 * i + 3] = (uint8_t)(cdata[i] >> 24);
    out[4 * i + 2] = (uint8_t)(cdata[i] >> 16);
    out[4 * i + 1] = (uint8_t)(cdata[i] >> 8);
    out[4 * i] = (uint8_t)cdata[i];
  }
  OPENSSL_cleanse(&c, sizeof c);
  OPENSSL_cleanse(cdata, sizeof cdata);
}

static bool sha512(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[64]) {
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  unsigned int n = 0;
  bool ok = m && EVP_DigestInit_ex(m, EVP_sha512(), NULL) && EVP_DigestUpdate(m, a, alen) &&
            (!b || EVP_DigestUpdate(m, b, blen)) && EVP_DigestFinal_ex(m, out, &n) && n == 64;
  EVP_MD_CTX_free(m);
  return ok;
}

int evssh_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                       uint8_t *key, size_t keylen, unsigned int rounds) {
  if (rounds < 1 || saltlen == 0 || saltlen > 1 << 20 || keylen == 0 || keylen > 1024) return EVSSH_EINVAL;
  pthread_once(&pi_once, compute_pi_words);
  if (!pi_ok) return EVSSH_ENOMEM;
  /* output bytes are spread: byte i of block `count` lands at i*stride+count-1 */
  size_t stride = (keylen + HASH_LEN - 1) / HASH_LEN;
  size_t amount = (keylen + stride - 1) / stride;
  uint8_t sha2pass[64], sha2salt[64], tmp[HASH_LEN], out[HASH_LEN];
  int rc = EVSSH_OK;
  if (!sha512(pass, passlen, NULL, 0, sha2pass)) return EVSSH_ENOMEM;
  size_t left = keylen;
  for (uint32_t count = 1; left > 0 && rc == EVSSH_OK; count++) {
    uint8_t be[4] = {(uint8_t)(count >> 24), (uint8_t)(count >> 16), (uint8_t)(count >> 8), (uint8_t)count};
    if (!sha512(salt, saltlen, be, 4, sha2salt)) {
      rc = EVSSH_ENOMEM;
      break;
    }
    bcrypt_hash(sha2pass, sha2salt, tmp);
    memcpy(out, tmp, sizeof out);
    for (unsigned int i = 1; i < rounds; i++) {
      if (!sha512(tmp, sizeof tmp, NULL, 0, sha2salt)) {
        rc = EVSSH_ENOMEM;
        break;
      }
      bcrypt_hash(sha2pass, sha2salt, tmp);
      for (size_t j = 0; j < sizeof out; j++) out[j] ^= tmp[j];
    }
    size_t i;
    for (i = 0; i < amount && i < left; i++) {
      size_t dest = i * stride + (count - 1);
      if (dest >= keylen) break;
      key[dest] = out[i];
    }
    left -= i;
  }
  OPENSSL_cleanse(sha2pass, sizeof sha2pass);
  OPENSSL_cleanse(sha2salt, sizeof sha2salt);
  OPENSSL_cleanse(tmp, sizeof tmp);
  OPENSSL_cleanse(out, sizeof out);
  return rc;
}
