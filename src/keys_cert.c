/* keys_cert.c owns user certificates beside key files: loading a
 * certificate for an identity as ssh does (<identity>-cert.pub next to the
 * IdentityFile, or a CertificateFile), pairing it with the key it
 * certifies (the certified key must be the key's own public key, so a
 * private key loaded later can take the same certificate), and telling
 * whether a user certificate can be offered now (expired or not yet valid
 * certificates are skipped, with a message, instead of being sent). The
 * wire format and the checks are cert.c's. */
#include "keys.h"
#include "errors.h"
#include "hostkey.h"
#include "keys_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

int evssh_cert_parse_line(const char *line, evssh_cert **out, char **comment, char *err, size_t errlen) {
  if (!line || !out) return EVSSH_EINVAL;
  unsigned char *blob = NULL;
  size_t blob_len = 0;
  char *cmt = NULL;
  int rc = evssh_pubkey_blob_from_line(line, &blob, &blob_len, comment ? &cmt : NULL);
  if (rc) {
    if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "not a certificate line");
    return rc;
  }
  char type[64];
  if (evssh_hostkey_blob_type(blob, blob_len, type, sizeof type) != EVSSH_OK || !evssh_cert_is_cert_name(type)) {
    evssh_errorf(err, errlen, "not a certificate line");
    rc = EVSSH_EINVAL;
  } else {
    rc = evssh_cert_parse(blob, blob_len, out, err, errlen);
  }
  free(blob);
  if (rc) {
    free(cmt);
    return rc;
  }
  if (comment) *comment = cmt;
  return EVSSH_OK;
}

int evssh_key_attach_cert(evssh_key *k, const unsigned char *blob, size_t len, char *err, size_t errlen) {
  if (!k || !blob) return EVSSH_EINVAL;
  evssh_cert *c = NULL;
  char cerr[300] = "";
  int rc = evssh_cert_parse(blob, len, &c, cerr, sizeof cerr);
  if (rc) {
    if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "%s", cerr);
    return rc;
  }
  const unsigned char *kb;
  size_t kl;
  evssh_key_public_blob(k, &kb, &kl);
  if (c->key_blob_len != kl || CRYPTO_memcmp(c->key_blob, kb, kl) != 0) {
    char want[64] = "?", got[64] = "?";
    evssh_fingerprint_sha256(kb, kl, want, sizeof want);
    evssh_fingerprint_sha256(c->key_blob, c->key_blob_len, got, sizeof got);
    evssh_errorf(err, errlen, "certificate is for another key (%s %s, not %s %s)", c->key_type, got,
                 evssh_key_type(k), want);
    evssh_cert_free(c);
    return EVSSH_EINVAL;
  }
  keys_set_cert(k, c);
  return EVSSH_OK;
}

/* The first line of a certificate file that is neither blank nor a comment,
   parsed. */
static int read_cert_file(const char *path, evssh_cert **out, char **comment, char *err, size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  int rc = keys_read_file(path, &text, &len, err, errlen);
  if (rc) return rc;
  const char *line = text;
  while (*line) {
    line += strspn(line, " \t\r\n");
    if (*line != '#') break;
    line += strcspn(line, "\n");
  }
  char cerr[300] = "";
  rc = memchr(text, 0, len) ? EVSSH_EINVAL : evssh_cert_parse_line(line, out, comment, cerr, sizeof cerr);
  free(text);
  if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "%s: %s", path, cerr[0] ? cerr : "not a certificate");
  return rc;
}

int evssh_key_load_cert(evssh_key *k, const char *path, char *err, size_t errlen) {
  if (!k || !path) return EVSSH_EINVAL;
  evssh_cert *c = NULL;
  int rc = read_cert_file(path, &c, NULL, err, errlen);
  if (rc) return rc;
  char aerr[300] = "";
  rc = evssh_key_attach_cert(k, c->blob, c->blob_len, aerr, sizeof aerr);
  evssh_cert_free(c);
  if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "%s: %s", path, aerr);
  return rc;
}

int evssh_key_load_identity_cert(evssh_key *k, const char *identity_path, bool *found, char *err, size_t errlen) {
  if (!k || !identity_path || !found) return EVSSH_EINVAL;
  *found = false;
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s-cert.pub", identity_path) >= sizeof path) {
    evssh_errorf(err, errlen, "%s: path too long", identity_path);
    return EVSSH_EINVAL;
  }
  struct stat st;
  if (stat(path, &st) != 0 && errno == ENOENT) return EVSSH_OK; /* most keys have none */
  int rc = evssh_key_load_cert(k, path, err, errlen);
  if (rc == EVSSH_OK) *found = true;
  return rc;
}

int evssh_key_load_cert_file(const char *path, evssh_key **out, char *err, size_t errlen) {
  if (!path || !out) return EVSSH_EINVAL;
  evssh_cert *c = NULL;
  char *comment = NULL;
  int rc = read_cert_file(path, &c, &comment, err, errlen);
  if (rc) return rc;
  unsigned char *blob = malloc(c->key_blob_len);
  if (!blob) {
    evssh_cert_free(c);
    free(comment);
    return EVSSH_ENOMEM;
  }
  memcpy(blob, c->key_blob, c->key_blob_len);
  evssh_key *k = NULL;
  rc = keys_new_public(path, blob, c->key_blob_len, comment, &k, err, errlen);
  if (rc) {
    evssh_cert_free(c);
    return rc;
  }
  keys_set_cert(k, c);
  *out = k;
  return EVSSH_OK;
}

int evssh_key_cert_blob(const evssh_key *k, const unsigned char **blob, size_t *len) {
  const evssh_cert *c = evssh_key_cert(k);
  if (!c || !blob || !len) return EVSSH_EINVAL;
  *blob = c->blob;
  *len = c->blob_len;
  return EVSSH_OK;
}

int evssh_key_cert_usable(const evssh_key *k, uint64_t now, char *err, size_t errlen) {
  const evssh_cert *c = evssh_key_cert(k);
  if (!c) return EVSSH_EINVAL;
  char why[300] = "", desc[300];
  evssh_cert_check_id failed;
  int rc = evssh_cert_check(c, EVSSH_CERT_TYPE_USER, NULL, now, &failed, why, sizeof why);
  if (rc == EVSSH_ENOMEM) return rc;
  if (rc) {
    evssh_cert_describe(c, desc, sizeof desc);
    evssh_errorf(err, errlen, "certificate for key %s (%s, %s) not offered: %s", evssh_key_comment(k), c->type,
                 desc, why);
    return EVSSH_EAUTH;
  }
  return EVSSH_OK;
}
