/* Packet MACs for the non-AEAD ciphers: the algorithm table and name lists
 * for MAC negotiation, and a per-direction HMAC keyed once at new keys. The
 * MAC input is always uint32(seq) || data; whether data is the plaintext
 * packet or (for -etm@openssh.com) the clear length plus ciphertext is the
 * packet layer's choice, not ours. */
#include "mac.h"
#include "buf.h"
#include "ossl.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define MAX_MAC_LEN 64

static const evssh_mac_alg mac_algs[] = {
  {"hmac-sha2-256-etm@openssh.com", 32, 32, true, true},
  {"hmac-sha2-512-etm@openssh.com", 64, 64, true, true},
  {"hmac-sha1-etm@openssh.com", 20, 20, true, true},
  {"hmac-sha2-256", 32, 32, false, true},
  {"hmac-sha2-512", 64, 64, false, true},
  {"hmac-sha1", 20, 20, false, true},
};

/* OpenSSL digest names, parallel to mac_algs */
static const char *const mac_digest_names[] = {
  "SHA2-256", "SHA2-512", "SHA1", "SHA2-256", "SHA2-512", "SHA1",
};

/* OpenSSH client order; umac is not implemented, so every supported MAC is a
   default one. */
static const char mac_names[] =
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,"
    "hmac-sha2-256,hmac-sha2-512,hmac-sha1";

struct evssh_mac {
  const evssh_mac_alg *alg;
  /* Keyed once; EVP_MAC_init with a NULL key rewinds it to the saved
     inner/outer pad state, which is cheaper per packet than duplicating a
     keyed template (measured: see test/test_cipher.c's mac_reinit_vs_dup). */
  EVP_MAC_CTX *ctx;
};

const evssh_mac_alg *evssh_mac_find(const char *name) {
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof mac_algs / sizeof mac_algs[0]; i++)
    if (strcmp(mac_algs[i].name, name) == 0)
      return &mac_algs[i];
  return NULL;
}

const char *evssh_mac_default_list(void) { return mac_names; }
const char *evssh_mac_supported_list(void) { return mac_names; }

const evssh_mac_alg *evssh_mac_alg_of(const evssh_mac *m) { return m ? m->alg : NULL; }

void evssh_mac_free(evssh_mac *m) {
  if (m == NULL)
    return;
  EVP_MAC_CTX_free(m->ctx); /* cleanses the HMAC key state */
  OPENSSL_cleanse(m, sizeof *m);
  free(m);
}

int evssh_mac_new(const evssh_mac_alg *alg, const unsigned char *key, evssh_mac **out) {
  if (alg == NULL || key == NULL || out == NULL)
    return EVSSH_EINVAL;
  /* only our own table entries: their index names the digest */
  size_t index = 0;
  while (index < sizeof mac_algs / sizeof mac_algs[0] && &mac_algs[index] != alg)
    index++;
  if (index == sizeof mac_algs / sizeof mac_algs[0])
    return EVSSH_EINVAL;

  evssh_mac *m = calloc(1, sizeof *m);
  if (m == NULL)
    return EVSSH_ENOMEM;
  m->alg = alg;
  int rc = EVSSH_OK;
  EVP_MAC *hmac = evssh_ossl_mac("HMAC");
  if (hmac == NULL)
    rc = EVSSH_ENOALGO;
  if (rc == EVSSH_OK && (m->ctx = EVP_MAC_CTX_new(hmac)) == NULL)
    rc = EVSSH_ENOMEM;
  if (rc == EVSSH_OK) {
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)mac_digest_names[index], 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(m->ctx, key, alg->key_len, params) != 1)
      rc = EVSSH_ENOALGO;
  }
  if (rc != EVSSH_OK) {
    evssh_mac_free(m);
    return rc;
  }
  *out = m;
  return EVSSH_OK;
}

int evssh_mac_compute(evssh_mac *m, uint32_t seq, const unsigned char *data, size_t len,
                      unsigned char *out) {
  if (m == NULL || out == NULL || (data == NULL && len > 0))
    return EVSSH_EINVAL;
  unsigned char seqbuf[4];
  size_t outl = 0;
  put_u32(seqbuf, seq);
  if (EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(m->ctx, seqbuf, 4) != 1 ||
      (len > 0 && EVP_MAC_update(m->ctx, data, len) != 1) ||
      EVP_MAC_final(m->ctx, out, &outl, m->alg->mac_len) != 1 || outl != m->alg->mac_len)
    return EVSSH_EINVAL;
  return EVSSH_OK;
}

int evssh_mac_verify(evssh_mac *m, uint32_t seq, const unsigned char *data, size_t len,
                     const unsigned char *mac) {
  if (m == NULL || mac == NULL)
    return EVSSH_EINVAL;
  unsigned char expected[MAX_MAC_LEN];
  int rc = evssh_mac_compute(m, seq, data, len, expected);
  if (rc == EVSSH_OK && CRYPTO_memcmp(expected, mac, m->alg->mac_len) != 0)
    rc = EVSSH_EPROTO;
  OPENSSL_cleanse(expected, sizeof expected);
  return rc;
}
