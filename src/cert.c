/* cert.c owns OpenSSH certificates as data: the -cert-v01@openssh.com blob
 * format of PROTOCOL.certkeys (parsed field by field through evssh_reader,
 * since certificates arrive from servers, agents and files), the mapping
 * between certificate algorithm names, blob types and signature
 * algorithms, the CA signature (verified by hostkey.c, the same verifier
 * that checks a server's signature on the exchange hash), and the checks a
 * certificate must pass for one use: type, validity window, principals,
 * critical options. Whether a CA is trusted for a host is known_hosts'
 * question (knownhosts.c); what to do about a refusal is trust.c's. */
#include "cert.h"
#include "errors.h"

#include "buf.h"
#include "hostkey.h"
#include "match.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

/* a certificate lists a few options; more is not a certificate anyone
   made, and the duplicate check below is quadratic */
#define MAX_OPTIONS 64

/* OpenSSH's default CASignatureAlgorithms: everything but ssh-rsa (SHA-1) */
static const char *const ca_sig_algs[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                                          "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"};

static bool str_is(const char *s, size_t n, const char *lit) {
  return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static void free_options(evssh_cert_option *o, size_t n) {
  for (size_t i = 0; o && i < n; i++) free(o[i].name);
  free(o);
}

void evssh_cert_free(evssh_cert *c) {
  if (!c) return;
  free(c->blob);
  free(c->key_blob);
  free(c->key_id);
  for (size_t i = 0; c->principals && i < c->nprincipals; i++) free(c->principals[i]);
  free(c->principals);
  free_options(c->critical, c->ncritical);
  free_options(c->extensions, c->nextensions);
  free(c);
}

/* name/data pairs of a critical-options or extensions string */
static int parse_options(const char *data, size_t len, const char *what, evssh_cert_option **out,
                         size_t *n, char *err, size_t errlen) {
  evssh_reader r = reader_of(data, len);
  evssh_cert_option *list = NULL;
  size_t count = 0;
  int rc = EVSSH_OK;
  while (r.left > 0 && rc == EVSSH_OK) {
    const char *name, *val;
    size_t name_len, val_len;
    if (evssh_read_string(&r, &name, &name_len) || evssh_read_string(&r, &val, &val_len) ||
        name_len == 0 || memchr(name, 0, name_len)) {
      evssh_errorf(err, errlen, "malformed certificate: bad %s", what);
      rc = EVSSH_EINVAL;
      break;
    }
    if (count == MAX_OPTIONS) {
      evssh_errorf(err, errlen, "malformed certificate: more than %d %s", MAX_OPTIONS, what);
      rc = EVSSH_EINVAL;
      break;
    }
    for (size_t i = 0; i < count; i++) {
      if (str_is(name, name_len, list[i].name)) {
        evssh_errorf(err, errlen, "malformed certificate: %s %.*s appears twice", what,
                     (int)(name_len > 64 ? 64 : name_len), name);
        rc = EVSSH_EINVAL;
        break;
      }
    }
    if (rc) break;
    evssh_cert_option *grown = realloc(list, (count + 1) * sizeof *list);
    char *copy = grown ? strndup(name, name_len) : NULL;
    if (!copy) {
      if (grown) list = grown;
      rc = EVSSH_ENOMEM;
      break;
    }
    list = grown;
    list[count].name = copy;
    list[count].data = (const unsigned char *)val;
    list[count].data_len = val_len;
    count++;
  }
  if (rc) {
    free_options(list, count);
    return rc;
  }
  *out = list;
  *n = count;
  return EVSSH_OK;
}

static int parse_principals(evssh_cert *c, const char *data, size_t len, char *err, size_t errlen) {
  evssh_reader r = reader_of(data, len);
  while (r.left > 0) {
    const char *p;
    size_t plen;
    if (evssh_read_string(&r, &p, &plen) || memchr(p, 0, plen)) {
      evssh_errorf(err, errlen, "malformed certificate: bad principals list");
      return EVSSH_EINVAL;
    }
    if (c->nprincipals == EVSSH_CERT_MAX_PRINCIPALS) {
      evssh_errorf(err, errlen, "malformed certificate: more than %d principals", EVSSH_CERT_MAX_PRINCIPALS);
      return EVSSH_EINVAL;
    }
    char **grown = realloc(c->principals, (c->nprincipals + 1) * sizeof *grown);
    if (!grown) return EVSSH_ENOMEM;
    c->principals = grown;
    if (!(c->principals[c->nprincipals] = strndup(p, plen))) return EVSSH_ENOMEM;
    c->nprincipals++;
  }
  return EVSSH_OK;
}

static int parse_ca(evssh_cert *c, const char *ca, size_t ca_len, char *err, size_t errlen) {
  c->ca_blob = (const unsigned char *)ca;
  c->ca_blob_len = ca_len;
  if (evssh_hostkey_blob_type(c->ca_blob, ca_len, c->ca_type, sizeof c->ca_type) != EVSSH_OK) {
    evssh_errorf(err, errlen, "malformed certificate: bad CA key");
    return EVSSH_EINVAL;
  }
  if (evssh_cert_is_cert_name(c->ca_type)) {
    evssh_errorf(err, errlen, "malformed certificate: signed by a certificate (chains are not supported)");
    return EVSSH_EINVAL;
  }
  EVP_PKEY *pk = NULL;
  int rc = evssh_pubkey_from_blob(c->ca_blob, ca_len, &pk);
  EVP_PKEY_free(pk);
  if (rc == EVSSH_ENOMEM) return rc;
  if (rc) {
    evssh_errorf(err, errlen, "malformed certificate: invalid or unsupported %s CA key", c->ca_type);
    return EVSSH_EINVAL;
  }
  return EVSSH_OK;
}

static int parse_signature(evssh_cert *c, const char *sig, size_t sig_len, char *err, size_t errlen) {
  evssh_reader sr = reader_of(sig, sig_len);
  const char *alg, *raw;
  size_t alg_len, raw_len;
  if (evssh_read_string(&sr, &alg, &alg_len) || evssh_read_string(&sr, &raw, &raw_len) || sr.left != 0 ||
      alg_len == 0 || alg_len >= sizeof c->sig_alg || memchr(alg, 0, alg_len)) {
    evssh_errorf(err, errlen, "malformed certificate: bad signature");
    return EVSSH_EINVAL;
  }
  memcpy(c->sig_alg, alg, alg_len);
  c->sig_alg[alg_len] = 0;
  c->signature = (const unsigned char *)sig;
  c->signature_len = sig_len;
  return EVSSH_OK;
}

static int parse_fields(evssh_cert *c, char *err, size_t errlen) {
  evssh_reader r = reader_of(c->blob, c->blob_len);
  const char *tname, *key_id, *principals, *crit, *exts, *reserved, *ca, *sig;
  size_t tlen, key_id_len, principals_len, crit_len, exts_len, reserved_len, ca_len, sig_len;
  if (evssh_read_string(&r, &tname, &tlen)) {
    evssh_errorf(err, errlen, "malformed certificate: no type");
    return EVSSH_EINVAL;
  }
  size_t consumed = 0;
  int rc = evssh_hostkey_cert_key(c->blob, c->blob_len, &c->key_blob, &c->key_blob_len, &c->type, &c->key_type,
                                  &consumed);
  if (rc == EVSSH_ENOALGO) {
    evssh_errorf(err, errlen, "unsupported certificate type %.*s", (int)(tlen > 64 ? 64 : tlen), tname);
    return EVSSH_EINVAL;
  }
  if (rc == EVSSH_EPROTO) {
    evssh_errorf(err, errlen, "malformed certificate: bad nonce or %.*s key", (int)(tlen > 64 ? 64 : tlen), tname);
    return EVSSH_EINVAL;
  }
  if (rc) return rc;
  r = reader_of(c->blob + consumed, c->blob_len - consumed);
  if (evssh_read_u64(&r, &c->serial) || evssh_read_u32(&r, &c->cert_type) ||
      evssh_read_string(&r, &key_id, &key_id_len) || evssh_read_string(&r, &principals, &principals_len) ||
      evssh_read_u64(&r, &c->valid_after) || evssh_read_u64(&r, &c->valid_before) ||
      evssh_read_string(&r, &crit, &crit_len) || evssh_read_string(&r, &exts, &exts_len) ||
      evssh_read_string(&r, &reserved, &reserved_len) || evssh_read_string(&r, &ca, &ca_len)) {
    evssh_errorf(err, errlen, "malformed certificate: cut short");
    return EVSSH_EINVAL;
  }
  c->signed_len = c->blob_len - r.left;
  if (evssh_read_string(&r, &sig, &sig_len) || r.left != 0) {
    evssh_errorf(err, errlen, "malformed certificate: %s", r.left ? "data after the signature" : "no signature");
    return EVSSH_EINVAL;
  }
  if (c->cert_type != EVSSH_CERT_TYPE_USER && c->cert_type != EVSSH_CERT_TYPE_HOST) {
    evssh_errorf(err, errlen, "malformed certificate: unknown certificate type %u", (unsigned)c->cert_type);
    return EVSSH_EINVAL;
  }
  if (memchr(key_id, 0, key_id_len)) {
    evssh_errorf(err, errlen, "malformed certificate: NUL in the key id");
    return EVSSH_EINVAL;
  }
  if (!(c->key_id = strndup(key_id, key_id_len))) return EVSSH_ENOMEM;
  if ((rc = parse_principals(c, principals, principals_len, err, errlen)) ||
      (rc = parse_options(crit, crit_len, "critical option", &c->critical, &c->ncritical, err, errlen)) ||
      (rc = parse_options(exts, exts_len, "extension", &c->extensions, &c->nextensions, err, errlen)) ||
      (rc = parse_ca(c, ca, ca_len, err, errlen)))
    return rc;
  return parse_signature(c, sig, sig_len, err, errlen);
}

int evssh_cert_parse(const unsigned char *blob, size_t len, evssh_cert **out, char *err, size_t errlen) {
  if (!blob || !out) return EVSSH_EINVAL;
  evssh_cert *c = calloc(1, sizeof *c);
  if (!c || !(c->blob = malloc(len ? len : 1))) {
    free(c);
    return EVSSH_ENOMEM;
  }
  memcpy(c->blob, blob, len);
  c->blob_len = len;
  int rc = parse_fields(c, err, errlen);
  if (rc) {
    evssh_cert_free(c);
    return rc;
  }
  *out = c;
  return EVSSH_OK;
}

int evssh_cert_verify_signature(const evssh_cert *c, char *err, size_t errlen) {
  if (!c) return EVSSH_EINVAL;
  char fp[64] = "";
  if (evssh_fingerprint_sha256(c->ca_blob, c->ca_blob_len, fp, sizeof fp) != EVSSH_OK) fp[0] = 0;
  if (!evssh_hostkey_alg_matches(c->sig_alg, c->ca_type)) {
    evssh_errorf(err, errlen, "CA signature algorithm %s does not fit the %s CA key %s", c->sig_alg, c->ca_type, fp);
    return EVSSH_EHOSTKEY;
  }
  char verr[200] = "";
  int rc = evssh_hostkey_verify(c->ca_blob, c->ca_blob_len, c->sig_alg, c->signature, c->signature_len, c->blob,
                                c->signed_len, verr, sizeof verr);
  if (rc == EVSSH_ENOMEM) return rc;
  if (rc) {
    evssh_errorf(err, errlen, "CA signature (%s by CA %s) is invalid", c->sig_alg, fp);
    return EVSSH_EHOSTKEY;
  }
  return EVSSH_OK;
}

int evssh_cert_verify(const evssh_cert *c, char *err, size_t errlen) {
  if (!c) return EVSSH_EINVAL;
  bool allowed = false;
  for (size_t i = 0; i < sizeof ca_sig_algs / sizeof ca_sig_algs[0]; i++)
    allowed = allowed || strcmp(c->sig_alg, ca_sig_algs[i]) == 0;
  if (!allowed) {
    char fp[64] = "";
    if (evssh_fingerprint_sha256(c->ca_blob, c->ca_blob_len, fp, sizeof fp) != EVSSH_OK) fp[0] = 0;
    evssh_errorf(err, errlen, "CA signature algorithm %s%s refused (CA %s)", c->sig_alg,
                 strcmp(c->sig_alg, "ssh-rsa") == 0 ? " (SHA-1)" : "", fp);
    return EVSSH_EHOSTKEY;
  }
  return evssh_cert_verify_signature(c, err, errlen);
}

/* "2026-01-02 03:04:05 UTC", or the number when it is beyond what gmtime
   can show */
static void format_time(uint64_t t, char *out, size_t outlen) {
  struct tm tm;
  time_t tt = (time_t)t;
  if (t > (uint64_t)253402300799ull || (uint64_t)tt != t || !gmtime_r(&tt, &tm)) {
    snprintf(out, outlen, "%llu", (unsigned long long)t);
    return;
  }
  strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

evssh_cert_check_id evssh_cert_check_validity(const evssh_cert *c, uint64_t now, char *err, size_t errlen) {
  char when[64];
  if (now < c->valid_after) {
    format_time(c->valid_after, when, sizeof when);
    if (err) evssh_errorf(err, errlen, "not yet valid (valid from %s)", when);
    return EVSSH_CERT_NOT_YET_VALID;
  }
  if (now >= c->valid_before) {
    format_time(c->valid_before, when, sizeof when);
    if (err) evssh_errorf(err, errlen, "expired at %s", when);
    return EVSSH_CERT_EXPIRED;
  }
  return EVSSH_CERT_OK;
}

/* "a, b, c" (shortened with "..." when long) for a principal mismatch */
static void list_principals(const evssh_cert *c, char *out, size_t outlen) {
  size_t used = 0;
  out[0] = 0;
  for (size_t i = 0; i < c->nprincipals && used + 5 < outlen; i++) {
    int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", c->principals[i]);
    if (n < 0 || (size_t)n >= outlen - used) {
      snprintf(out + (outlen > 4 ? outlen - 4 : 0), 4, "...");
      return;
    }
    used += (size_t)n;
  }
}

static bool principal_matches(const evssh_cert *c, const char *name) {
  for (size_t i = 0; i < c->nprincipals; i++) {
    bool m = c->cert_type == EVSSH_CERT_TYPE_HOST ? evssh_match_pattern(name, c->principals[i], true)
                                                  : strcmp(name, c->principals[i]) == 0;
    if (m) return true;
  }
  return false;
}

static const char *const user_critical[] = {"force-command", "source-address", "verify-required"};

int evssh_cert_check(const evssh_cert *c, uint32_t want_type, const char *name, uint64_t now,
                     evssh_cert_check_id *failed, char *err, size_t errlen) {
  evssh_cert_check_id dummy;
  if (!failed) failed = &dummy;
  *failed = EVSSH_CERT_OK;
  if (!c || (want_type != EVSSH_CERT_TYPE_USER && want_type != EVSSH_CERT_TYPE_HOST)) return EVSSH_EINVAL;
  const char *want = want_type == EVSSH_CERT_TYPE_HOST ? "host" : "user";
  int rc = evssh_cert_verify(c, err, errlen);
  if (rc == EVSSH_ENOMEM) return rc;
  if (rc) {
    *failed = EVSSH_CERT_SIGNATURE;
    return EVSSH_EHOSTKEY;
  }
  if (c->cert_type != want_type) {
    *failed = EVSSH_CERT_WRONG_TYPE;
    evssh_errorf(err, errlen, "not a %s certificate (it is a %s certificate)", want,
                 c->cert_type == EVSSH_CERT_TYPE_HOST ? "host" : "user");
    return EVSSH_EHOSTKEY;
  }
  if ((*failed = evssh_cert_check_validity(c, now, err, errlen)) != EVSSH_CERT_OK) return EVSSH_EHOSTKEY;
  if (c->nprincipals == 0) {
    *failed = EVSSH_CERT_NO_PRINCIPALS;
    evssh_errorf(err, errlen, "no principals (a %s certificate valid for any name is refused)", want);
    return EVSSH_EHOSTKEY;
  }
  if (name && !principal_matches(c, name)) {
    char list[200];
    list_principals(c, list, sizeof list);
    *failed = EVSSH_CERT_PRINCIPAL;
    evssh_errorf(err, errlen, "%s is not among the principals (%s)", name, list);
    return EVSSH_EHOSTKEY;
  }
  for (size_t i = 0; i < c->ncritical; i++) {
    bool known = false;
    for (size_t j = 0; want_type == EVSSH_CERT_TYPE_USER && j < sizeof user_critical / sizeof user_critical[0]; j++)
      known = known || strcmp(c->critical[i].name, user_critical[j]) == 0;
    if (!known) {
      *failed = EVSSH_CERT_CRITICAL_OPTION;
      evssh_errorf(err, errlen, "unknown critical option %s%s", c->critical[i].name,
                   want_type == EVSSH_CERT_TYPE_HOST ? " (host certificates have none)" : "");
      return EVSSH_EHOSTKEY;
    }
  }
  return EVSSH_OK;
}

const evssh_cert_option *evssh_cert_critical(const evssh_cert *c, const char *name) {
  for (size_t i = 0; c && name && i < c->ncritical; i++)
    if (strcmp(c->critical[i].name, name) == 0) return &c->critical[i];
  return NULL;
}

void evssh_cert_describe(const evssh_cert *c, char *out, size_t outlen) {
  char fp[64] = "?";
  if (evssh_fingerprint_sha256(c->ca_blob, c->ca_blob_len, fp, sizeof fp) != EVSSH_OK) snprintf(fp, sizeof fp, "?");
  snprintf(out, outlen, "key id \"%.80s\", serial %llu, CA %s %s", c->key_id, (unsigned long long)c->serial,
           c->ca_type, fp);
}
