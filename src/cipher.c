/* Packet ciphers: the algorithm table and name lists for encryption
 * negotiation, and the per-direction cipher state the packet layer drives.
 * AES-CTR is a plain running stream; AES-GCM follows RFC 5647 as OpenSSH
 * uses it (length as AAD, 12-byte IV whose low 8 bytes count packets);
 * chacha20-poly1305@openssh.com follows OpenSSH's PROTOCOL.chacha20poly1305
 * (two ChaCha20 keys, sequence number as nonce, Poly1305 over the encrypted
 * length and payload). Every EVP context is created once in
 * evssh_cipher_new and only re-keyed or re-IV'd per packet, because this is
 * the bulk data path. */
#include "cipher.h"
#include "buf.h"
#include "ossl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

enum cipher_kind { KIND_CTR, KIND_GCM, KIND_CHACHAPOLY };

#define CHACHA_KEY_LEN 32
#define POLY1305_KEY_LEN 32
#define POLY1305_TAG_LEN 16
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16

static const evssh_cipher_alg cipher_algs[] = {
  {"chacha20-poly1305@openssh.com", 64, 0, 8, POLY1305_TAG_LEN, CIPHER_AEAD | CIPHER_CHACHAPOLY, true},
  {"aes128-ctr", 16, 16, 16, 0, 0, true},
  {"aes192-ctr", 24, 16, 16, 0, 0, true},
  {"aes256-ctr", 32, 16, 16, 0, 0, true},
  {"aes128-gcm@openssh.com", 16, GCM_IV_LEN, 16, GCM_TAG_LEN, CIPHER_AEAD, true},
  {"aes256-gcm@openssh.com", 32, GCM_IV_LEN, 16, GCM_TAG_LEN, CIPHER_AEAD, true},
};

/* OpenSSL fetch names, parallel to cipher_algs */
static const char *const cipher_evp_names[] = {
  "ChaCha20", "AES-128-CTR", "AES-192-CTR", "AES-256-CTR", "AES-128-GCM", "AES-256-GCM",
};

/* Every supported cipher is on by default; the order is the OpenSSH client's. */
static const char cipher_names[] =
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com";

struct evssh_cipher {
  const evssh_cipher_alg *alg;
  enum cipher_kind kind;
  bool encrypt;
  /* CTR/GCM: the only context. chacha: keyed with the main key (K_2). */
  EVP_CIPHER_CTX *ctx;
  /* chacha only: keyed with the header key (K_1) for the length field */
  EVP_CIPHER_CTX *header_ctx;
  /* chacha only: Poly1305, re-keyed with the one-time key of each packet */
  EVP_MAC_CTX *poly_ctx;
};

const evssh_cipher_alg *evssh_cipher_find(const char *name) {
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof cipher_algs / sizeof cipher_algs[0]; i++)
    if (strcmp(cipher_algs[i].name, name) == 0)
      return &cipher_algs[i];
  return NULL;
}

const char *evssh_cipher_default_list(void) { return cipher_names; }
const char *evssh_cipher_supported_list(void) { return cipher_names; }

const evssh_cipher_alg *evssh_cipher_alg_of(const evssh_cipher *c) { return c ? c->alg : NULL; }

void evssh_cipher_free(evssh_cipher *c) {
  if (c == NULL)
    return;
  /* EVP_CIPHER_CTX_free / EVP_MAC_CTX_free cleanse the key schedules */
  EVP_CIPHER_CTX_free(c->ctx);
  EVP_CIPHER_CTX_free(c->header_ctx);
  EVP_MAC_CTX_free(c->poly_ctx);
  OPENSSL_cleanse(c, sizeof *c);
  free(c);
}

/* A keyed context with no IV yet (chacha) or with its IV (CTR). */
static int keyed_cipher_ctx(const char *evp_name, const unsigned char *key, const unsigned char *iv,
                            int enc, EVP_CIPHER_CTX **out) {
  const EVP_CIPHER *cipher = evssh_ossl_cipher(evp_name);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int rc = EVSSH_ENOMEM;
  if (cipher != NULL && ctx != NULL) {
    rc = EVP_CipherInit_ex(ctx, cipher, NULL, key, iv, enc) == 1 ? EVSSH_OK : EVSSH_EINVAL;
  } else if (cipher == NULL) {
    rc = EVSSH_ENOALGO; /* e.g. a FIPS-only provider without ChaCha20 */
  }
  if (rc != EVSSH_OK) {
    EVP_CIPHER_CTX_free(ctx);
    return rc;
  }
  *out = ctx;
  return EVSSH_OK;
}

static int chachapoly_init(evssh_cipher *c, const unsigned char *key) {
  /* PROTOCOL.chacha20poly1305: the first 32 bytes are K_2 (payload and
     Poly1305 key), the second 32 bytes K_1 (length only). */
  int rc = keyed_cipher_ctx("ChaCha20", key, NULL, 1, &c->ctx);
  if (rc == EVSSH_OK)
    rc = keyed_cipher_ctx("ChaCha20", key + CHACHA_KEY_LEN, NULL, 1, &c->header_ctx);
  if (rc != EVSSH_OK)
    return rc;
  EVP_MAC *poly = evssh_ossl_mac("POLY1305");
  if (poly == NULL)
    return EVSSH_ENOALGO;
  c->poly_ctx = EVP_MAC_CTX_new(poly);
  return c->poly_ctx != NULL ? EVSSH_OK : EVSSH_ENOMEM;
}

static int gcm_init(evssh_cipher *c, const char *evp_name, const unsigned char *key,
                    const unsigned char *iv) {
  int rc = keyed_cipher_ctx(evp_name, key, NULL, c->encrypt ? 1 : 0, &c->ctx);
  if (rc != EVSSH_OK)
    return rc;
  /* Hand the whole 12-byte IV to OpenSSL as "fixed" (length -1); each
     EVP_CTRL_GCM_IV_GEN then installs it and increments its low 8 bytes as a
     64-bit big-endian counter, which is exactly RFC 5647's invocation
     counter. No IV bookkeeping on our side. */
  if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_IV_FIXED, -1, (void *)iv) != 1)
    return EVSSH_EINVAL;
  return EVSSH_OK;
}

int evssh_cipher_new(const evssh_cipher_alg *alg, bool encrypt, const unsigned char *key,
                     const unsigned char *iv, evssh_cipher **out) {
  if (alg == NULL || key == NULL || out == NULL)
    return EVSSH_EINVAL;
  /* only our own table entries: their index names the EVP cipher */
  size_t index = 0;
  while (index < sizeof cipher_algs / sizeof cipher_algs[0] && &cipher_algs[index] != alg)
    index++;
  if (index == sizeof cipher_algs / sizeof cipher_algs[0])
    return EVSSH_EINVAL;
  if (alg->iv_len > 0 && iv == NULL)
    return EVSSH_EINVAL;

  evssh_cipher *c = calloc(1, sizeof *c);
  if (c == NULL)
    return EVSSH_ENOMEM;
  c->alg = alg;
  c->encrypt = encrypt;
  int rc;
  if (alg->flags & CIPHER_CHACHAPOLY) {
    c->kind = KIND_CHACHAPOLY;
    rc = chachapoly_init(c, key);
  } else if (alg->flags & CIPHER_AEAD) {
    c->kind = KIND_GCM;
    rc = gcm_init(c, cipher_evp_names[index], key, iv);
  } else {
    c->kind = KIND_CTR;
    rc = keyed_cipher_ctx(cipher_evp_names[index], key, iv, encrypt ? 1 : 0, &c->ctx);
  }
  if (rc != EVSSH_OK) {
    evssh_cipher_free(c);
    return rc;
  }
  *out = c;
  return EVSSH_OK;
}

int evssh_cipher_crypt(evssh_cipher *c, unsigned char *out, const unsigned char *in, size_t len) {
  if (c == NULL || c->kind != KIND_CTR || len % c->alg->block_size != 0 || len > INT_MAX ||
      (len > 0 && (out == NULL || in == NULL)))
    return EVSSH_EINVAL;
  if (len == 0)
    return EVSSH_OK;
  int outl = 0;
  if (EVP_CipherUpdate(c->ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len)
    return EVSSH_EINVAL;
  return EVSSH_OK;
}

/* ---------------------------------------------------------- chacha20-poly1305 */

/* The 16-byte EVP "ChaCha20" IV is OpenSSL's state words 12..15 in
   little-endian order: a 32-bit block counter then a 96-bit nonce. OpenSSH
   uses the original 64-bit counter / 64-bit nonce split, so bytes 0..7 are
   the counter (always starting at 0 here; it never reaches 2^32 for packets
   of at most 256 KiB) and bytes 8..15 the nonce, which is the packet
   sequence number as a big-endian uint64. */
static int chacha_set_nonce(EVP_CIPHER_CTX *ctx, uint32_t seq) {
  unsigned char iv[16] = {0};
  put_u32(iv + 12, seq);
  return EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, 1) == 1 ? EVSSH_OK : EVSSH_EINVAL;
}

static int chacha_xor(EVP_CIPHER_CTX *ctx, unsigned char *out, const unsigned char *in, size_t len) {
  int outl = 0;
  if (len == 0)
    return EVSSH_OK;
  if (EVP_EncryptUpdate(ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len)
    return EVSSH_EINVAL;
  return EVSSH_OK;
}

/* Sets the main context to the packet's nonce and takes keystream block 0 as
   the Poly1305 key; the stream is then positioned at block 1, where the
   payload encryption starts. */
static int chacha_start_packet(evssh_cipher *c, uint32_t seq) {
  static const unsigned char zero_block[64];
  unsigned char block0[64];
  int rc = chacha_set_nonce(c->ctx, seq);
  if (rc == EVSSH_OK)
    rc = chacha_xor(c->ctx, block0, zero_block, sizeof block0);
  if (rc == EVSSH_OK && EVP_MAC_init(c->poly_ctx, block0, POLY1305_KEY_LEN, NULL) != 1)
    rc = EVSSH_EINVAL;
  OPENSSL_cleanse(block0, sizeof block0);
  return rc;
}

static int chacha_tag(evssh_cipher *c, const unsigned char *pkt, size_t len,
                      unsigned char tag[POLY1305_TAG_LEN]) {
  size_t taglen = 0;
  if (EVP_MAC_update(c->poly_ctx, pkt, len) != 1 ||
      EVP_MAC_final(c->poly_ctx, tag, &taglen, POLY1305_TAG_LEN) != 1 || taglen != POLY1305_TAG_LEN)
    return EVSSH_EINVAL;
  return EVSSH_OK;
}

static int chacha_seal(evssh_cipher *c, uint32_t seq, unsigned char *pkt, size_t len,
                       unsigned char *tag) {
  int rc = chacha_start_packet(c, seq);
  if (rc == EVSSH_OK)
    rc = chacha_set_nonce(c->header_ctx, seq);
  if (rc == EVSSH_OK)
    rc = chacha_xor(c->header_ctx, pkt, pkt, 4);
  if (rc == EVSSH_OK)
    rc = chacha_xor(c->ctx, pkt + 4, pkt + 4, len - 4);
  if (rc == EVSSH_OK)
    rc = chacha_tag(c, pkt, len, tag);
  return rc;
}

static int chacha_open(evssh_cipher *c, uint32_t seq, unsigned char *pkt, size_t len,
                       const unsigned char *tag) {
  unsigned char expected[POLY1305_TAG_LEN];
  int rc = chacha_start_packet(c, seq);
  if (rc == EVSSH_OK)
    rc = chacha_tag(c, pkt, len, expected);
  if (rc == EVSSH_OK && CRYPTO_memcmp(expected, tag, POLY1305_TAG_LEN) != 0)
    rc = EVSSH_EPROTO;
  /* decrypt only authenticated data */
  if (rc == EVSSH_OK)
    rc = chacha_xor(c->ctx, pkt + 4, pkt + 4, len - 4);
  OPENSSL_cleanse(expected, sizeof expected);
  return rc;
}

static int chacha_length(evssh_cipher *c, uint32_t seq, const unsigned char in[4],
                         uint32_t *packet_length) {
  unsigned char plain[4];
  int rc = chacha_set_nonce(c->header_ctx, seq);
  if (rc == EVSSH_OK)
    rc = chacha_xor(c->header_ctx, plain, in, 4);
  if (rc == EVSSH_OK)
    *packet_length = get_u32(plain);
  return rc;
}

/* ------------------------------------------------------------------ AES-GCM */

/* Installs the current IV and advances the invocation counter for the next
   packet. The ctrl copies out the IV's low bytes; we have no use for them. */
static int gcm_next_iv(evssh_cipher *c) {
  unsigned char invocation[8];
  return EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_IV_GEN, (int)sizeof invocation, invocation) == 1
             ? EVSSH_OK
             : EVSSH_EINVAL;
}

static int gcm_seal(evssh_cipher *c, unsigned char *pkt, size_t len, unsigned char *tag) {
  int outl = 0;
  unsigned char final_block[16];
  if (gcm_next_iv(c) != EVSSH_OK || EVP_EncryptUpdate(c->ctx, NULL, &outl, pkt, 4) != 1)
    return EVSSH_EINVAL;
  if (len > 4 && (EVP_EncryptUpdate(c->ctx, pkt + 4, &outl, pkt + 4, (int)(len - 4)) != 1 ||
                  (size_t)outl != len - 4))
    return EVSSH_EINVAL;
  if (EVP_EncryptFinal_ex(c->ctx, final_block, &outl) != 1 ||
      EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) != 1)
    return EVSSH_EINVAL;
  return EVSSH_OK;
}

/* OpenSSL checks the GCM tag in EVP_DecryptFinal_ex (with CRYPTO_memcmp),
   after the in-place decryption has already run: on EVSSH_EPROTO the bytes
   after the length are unauthenticated garbage and the caller must drop the
   connection without looking at them. */
static int gcm_open(evssh_cipher *c, unsigned char *pkt, size_t len, const unsigned char *tag) {
  int outl = 0;
  unsigned char final_block[16];
  if (gcm_next_iv(c) != EVSSH_OK ||
      EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, (void *)tag) != 1 ||
      EVP_DecryptUpdate(c->ctx, NULL, &outl, pkt, 4) != 1)
    return EVSSH_EINVAL;
  if (len > 4 && (EVP_DecryptUpdate(c->ctx, pkt + 4, &outl, pkt + 4, (int)(len - 4)) != 1 ||
                  (size_t)outl != len - 4))
    return EVSSH_EINVAL;
  if (EVP_DecryptFinal_ex(c->ctx, final_block, &outl) != 1)
    return EVSSH_EPROTO;
  return EVSSH_OK;
}

/* ------------------------------------------------------------------ AEAD API */

static int aead_args_ok(const evssh_cipher *c, const unsigned char *pkt, size_t len,
                        const unsigned char *tag) {
  return c != NULL && c->kind != KIND_CTR && pkt != NULL && tag != NULL && len >= 4 &&
         len <= INT_MAX;
}

int evssh_cipher_aead_seal(evssh_cipher *c, uint32_t seq, unsigned char *pkt, size_t len,
                           unsigned char *tag) {
  if (!aead_args_ok(c, pkt, len, tag) || !c->encrypt)
    return EVSSH_EINVAL;
  return c->kind == KIND_GCM ? gcm_seal(c, pkt, len, tag) : chacha_seal(c, seq, pkt, len, tag);
}

int evssh_cipher_aead_length(evssh_cipher *c, uint32_t seq, const unsigned char in[4],
                             uint32_t *packet_length) {
  if (c == NULL || c->kind == KIND_CTR || in == NULL || packet_length == NULL)
    return EVSSH_EINVAL;
  if (c->kind == KIND_GCM) {
    *packet_length = get_u32(in);
    return EVSSH_OK;
  }
  return chacha_length(c, seq, in, packet_length);
}

int evssh_cipher_aead_open(evssh_cipher *c, uint32_t seq, unsigned char *pkt, size_t len,
                           const unsigned char *tag) {
  if (!aead_args_ok(c, pkt, len, tag) || c->encrypt)
    return EVSSH_EINVAL;
  return c->kind == KIND_GCM ? gcm_open(c, pkt, len, tag) : chacha_open(c, seq, pkt, len, tag);
}
