/* Fuzz target: an OpenSSH certificate blob (binary, as a server or an agent
 * sends it).
 *
 * Every parse, signature check and use check must end with a verdict or a
 * message. Oracles: the parsed certified key is a valid public key of the
 * type the certificate names; the known_hosts decision (a set trusting the
 * certificate's own CA for every host) accepts a certificate for a name
 * exactly when evssh_cert_check accepts it as a host certificate for that
 * name, and a set revoking that CA never accepts it; a host signature can
 * only verify under the certificate if it verifies under the certified key;
 * the base64 line form parses to the same certificate.
 *
 * Build and run: test/fuzz/run.sh fuzz_cert. */
#include "cert.h"
#include "hostkey.h"
#include "knownhosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char message[] = "exchange hash";

static void decision_matches_check(const evssh_cert *c, const char *name, uint64_t now, const char *ca_line) {
  char text[4096];
  int n = snprintf(text, sizeof text, "@cert-authority * %s\n", ca_line);
  if (n < 0 || (size_t)n >= sizeof text) return;
  evssh_known_hosts *kh = NULL;
  char err[300] = "";
  if (evssh_knownhosts_load_text(text, (size_t)n, "fuzz", name, 22, NULL, &kh, err, sizeof err) != EVSSH_OK) {
    if (!err[0]) abort();
    return;
  }
  evssh_hostcert_result r;
  int rc = evssh_knownhosts_check_hostcert(kh, c->blob, c->blob_len, now, &r, err, sizeof err);
  evssh_cert_check_id failed;
  char cerr[300] = "";
  int crc = evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, name, now, &failed, cerr, sizeof cerr);
  if (rc == EVSSH_OK && crc != EVSSH_ENOMEM) {
    bool accepted = r.status == EVSSH_HOSTCERT_ACCEPT;
    if (accepted != (crc == EVSSH_OK)) abort();
    if (!accepted && !r.message[0]) abort();
    if (crc != EVSSH_OK && (!cerr[0] || failed == EVSSH_CERT_OK)) abort();
  }
  evssh_knownhosts_free(kh);
  /* the same CA revoked: never accepted */
  n = snprintf(text, sizeof text, "@cert-authority * %s\n@revoked * %s\n", ca_line, ca_line);
  if (n > 0 && (size_t)n < sizeof text &&
      evssh_knownhosts_load_text(text, (size_t)n, "fuzz", name, 22, NULL, &kh, err, sizeof err) == EVSSH_OK) {
    if (evssh_knownhosts_check_hostcert(kh, c->blob, c->blob_len, now, &r, err, sizeof err) == EVSSH_OK &&
        r.status != EVSSH_HOSTCERT_REVOKED)
      abort();
    evssh_knownhosts_free(kh);
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  evssh_cert *c = NULL;
  char err[300] = "";
  int rc = evssh_cert_parse(data, size, &c, err, sizeof err);
  if (rc != EVSSH_OK) {
    if (rc != EVSSH_ENOMEM && !err[0]) abort();
    return 0;
  }
  char type[64];
  EVP_PKEY *pk = NULL;
  if (evssh_hostkey_blob_type(c->key_blob, c->key_blob_len, type, sizeof type) != EVSSH_OK ||
      strcmp(type, c->key_type) != 0 || evssh_pubkey_from_blob(c->key_blob, c->key_blob_len, &pk) != EVSSH_OK)
    abort();
  EVP_PKEY_free(pk);
  char desc[300];
  evssh_cert_describe(c, desc, sizeof desc);
  (void)evssh_cert_critical(c, "force-command");
  /* the validity window at its edges (no signature work: the full check,
     which verifies, runs once below and in the decision) */
  const uint64_t times[] = {0, 1700000000, c->valid_after, c->valid_before, UINT64_MAX};
  for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
    char verr[100] = "";
    evssh_cert_check_id v = evssh_cert_check_validity(c, times[t], verr, sizeof verr);
    if ((v == EVSSH_CERT_OK) != (c->valid_after <= times[t] && times[t] < c->valid_before)) abort();
    if (v != EVSSH_CERT_OK && !verr[0]) abort();
  }
  evssh_cert_check_id failed;
  err[0] = 0;
  rc = evssh_cert_check(c, EVSSH_CERT_TYPE_USER, c->nprincipals ? c->principals[0] : NULL, 1700000000, &failed, err,
                        sizeof err);
  if (rc != EVSSH_OK && rc != EVSSH_ENOMEM && (!err[0] || failed == EVSSH_CERT_OK)) abort();
  /* the decision against a set that trusts this very CA */
  char ca_b64[2048], ca_type[64];
  if (c->ca_blob_len < 1500 && evssh_hostkey_blob_type(c->ca_blob, c->ca_blob_len, ca_type, sizeof ca_type) == EVSSH_OK &&
      evssh_base64_encode(c->ca_blob, c->ca_blob_len, true, ca_b64, sizeof ca_b64) == EVSSH_OK) {
    char ca_line[2200];
    snprintf(ca_line, sizeof ca_line, "%s %s", ca_type, ca_b64);
    const char *name = c->nprincipals && c->principals[0][0] && strlen(c->principals[0]) < 200 &&
                               !strpbrk(c->principals[0], " \t\r\n,[]")
                           ? c->principals[0]
                           : "fuzz.example";
    decision_matches_check(c, name, 1700000000, ca_line);
  }
  /* a signature that is not the certified key's does not verify */
  const unsigned char junk_sig[] = {0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 1, 0};
  const char *alg = evssh_cert_alg_for(c->type, strcmp(c->key_type, "ssh-rsa") ? c->key_type : "rsa-sha2-512");
  if (!alg || evssh_hostkey_verify(c->blob, c->blob_len, alg, junk_sig, sizeof junk_sig, message, sizeof message, err,
                                   sizeof err) == EVSSH_OK)
    abort();
  /* the line form */
  size_t cap = (size - 0 + 2) / 3 * 4 + 200;
  char *line = malloc(cap);
  if (line) {
    int n = snprintf(line, cap, "%s ", c->type);
    if (n > 0 && evssh_base64_encode(data, size, true, line + n, cap - (size_t)n) == EVSSH_OK) {
      evssh_cert *again = NULL;
      if (evssh_cert_parse_line(line, &again, NULL, err, sizeof err) == EVSSH_OK) {
        if (again->blob_len != c->blob_len || memcmp(again->blob, c->blob, c->blob_len) != 0 ||
            again->nprincipals != c->nprincipals || again->serial != c->serial)
          abort();
        evssh_cert_free(again);
      }
    }
    free(line);
  }
  evssh_cert_free(c);
  return 0;
}
