/* Fuzz target: key files of every format evssh reads.
 *
 * The input is tried as a private key file (openssh-key-v1 plain and
 * bcrypt-encrypted, PEM PKCS#1 / SEC1 / PKCS#8, legacy-encrypted PEM,
 * encrypted PKCS#8; the passphrase callback answers "fuzzfuzz", which the
 * encrypted seeds use), as a public key file, and as a certificate file.
 * Every failure must carry a message. The sign/verify oracle: a private key
 * that loads must make, with every signature algorithm its type offers
 * (plain and certificate names), signatures that hostkey.c's verifier
 * accepts under the public blob the key reports, and that blob must parse
 * as the key type it claims. A certificate that parses must attach to the
 * key it certifies and to no other.
 *
 * Fuzzing builds cap the bcrypt rounds at 4 (keys.c,
 * FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) so an input cannot stall the
 * run, and bcrypt-pbkdf is memoized (fuzz_memo.h, through the linker's
 * --wrap): a mutation that leaves the salt, rounds and passphrase alone
 * gets the key the real derivation made for them, so the decryption, the
 * check bytes and the key decoding are what runs per input (bcrypt was
 * more than half of every run). Build and run: test/fuzz/run.sh fuzz_keys.
 * FUZZ_LDFLAGS: -Wl,--wrap=evssh_bcrypt_pbkdf */
#define FUZZ_MEMO_BCRYPT
#include "fuzz_memo.h"

#include "buf.h"
#include "cert.h"
#include "hostkey.h"
#include "keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char message[] = "fuzz: data to sign";

static int pass_cb(const char *prompt, char *buf, size_t bufsize, void *ud) {
  (void)ud;
  if (!prompt || !prompt[0]) abort();
  snprintf(buf, bufsize, "fuzzfuzz");
  return 0;
}

static void sign_verify(const evssh_key *k, const char *alg) {
  const unsigned char *blob;
  size_t len;
  if (evssh_key_public_blob(k, &blob, &len) != EVSSH_OK) abort();
  evssh_buf *sig = evssh_buf_new();
  if (!sig) return;
  int rc = evssh_key_sign(k, alg, message, sizeof message, sig);
  if (rc == EVSSH_ENOMEM) {
    evssh_buf_free(sig);
    return;
  }
  if (rc != EVSSH_OK) abort(); /* a loaded key signs with every algorithm of its type */
  const char *plain = evssh_cert_is_cert_name(alg) ? evssh_cert_alg_sig_alg(alg) : alg;
  char err[256] = "";
  if (evssh_hostkey_verify(blob, len, plain, evssh_buf_data(sig), evssh_buf_len(sig), message, sizeof message, err,
                           sizeof err) != EVSSH_OK)
    abort(); /* the pair check let a mismatched key through */
  evssh_buf_free(sig);
}

static void oracle(const evssh_key *k) {
  const char *type = evssh_key_type(k);
  const unsigned char *blob;
  size_t len;
  char btype[64];
  if (!type || evssh_key_public_blob(k, &blob, &len) != EVSSH_OK ||
      evssh_hostkey_blob_type(blob, len, btype, sizeof btype) != EVSSH_OK || strcmp(btype, type) != 0)
    abort();
  EVP_PKEY *pk = NULL;
  if (evssh_pubkey_from_blob(blob, len, &pk) != EVSSH_OK) abort();
  EVP_PKEY_free(pk);
  if (!evssh_key_can_sign(k)) abort();
  if (strcmp(type, "ssh-rsa") == 0) {
    static const char *const algs[] = {"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
                                       "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com"};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) sign_verify(k, algs[i]);
  } else {
    sign_verify(k, type);
    char cert_alg[80];
    snprintf(cert_alg, sizeof cert_alg, "%s-cert-v01@openssh.com", type);
    sign_verify(k, cert_alg);
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char err[512] = "";
  evssh_key *priv = NULL, *pub = NULL;
  int rc = evssh_key_load_private_text("fuzz-key", (const char *)data, size, pass_cb, NULL, &priv, err, sizeof err);
  if (rc == EVSSH_OK) {
    oracle(priv);
  } else if (rc != EVSSH_ENOMEM && !err[0]) {
    abort();
  }
  err[0] = 0;
  rc = evssh_key_load_public_text("fuzz-pub", (const char *)data, size, &pub, err, sizeof err);
  if (rc == EVSSH_OK) {
    (void)evssh_key_sig_alg(pub, "rsa-sha2-256,ssh-ed25519", NULL);
    (void)evssh_key_comment(pub);
    if (evssh_key_can_sign(pub)) abort();
  } else if (rc != EVSSH_ENOMEM && !err[0]) {
    abort();
  }
  /* the same bytes as a certificate line */
  char *line = malloc(size + 1);
  if (line) {
    memcpy(line, data, size);
    line[size] = 0;
    evssh_cert *c = NULL;
    err[0] = 0;
    rc = evssh_cert_parse_line(line, &c, NULL, err, sizeof err);
    if (rc == EVSSH_OK) {
      evssh_key *ck = NULL;
      char kerr[256] = "";
      /* the certified key as a key of its own takes the certificate */
      rc = evssh_key_load_public_text("fuzz-cert", line, size, &ck, kerr, sizeof kerr);
      if (rc == EVSSH_OK) abort(); /* a certificate is not a plain public key line */
      evssh_key *target = priv ? priv : pub;
      if (target) {
        const unsigned char *kb;
        size_t kl;
        evssh_key_public_blob(target, &kb, &kl);
        bool same = kl == c->key_blob_len && memcmp(kb, c->key_blob, kl) == 0;
        kerr[0] = 0;
        rc = evssh_key_attach_cert(target, c->blob, c->blob_len, kerr, sizeof kerr);
        if (rc != EVSSH_ENOMEM && (rc == EVSSH_OK) != same) abort();
        if (rc == EVSSH_OK) {
          char uerr[512] = "";
          rc = evssh_key_cert_usable(target, 1700000000, uerr, sizeof uerr);
          if (rc != EVSSH_OK && rc != EVSSH_ENOMEM && !uerr[0]) abort();
          (void)evssh_key_cert_sig_alg(target, "rsa-sha2-512", NULL);
        }
      }
      evssh_cert_free(c);
    } else if (rc != EVSSH_ENOMEM && !err[0]) {
      abort();
    }
    free(line);
  }
  evssh_key_free(priv);
  evssh_key_free(pub);
  return 0;
}
