/* hostkey.c owns public host keys as they travel on the wire: it parses
 * key blobs (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa) into
 * OpenSSL keys, checks a server's signature on the exchange hash with the
 * negotiated algorithm (RFC 8709, RFC 5656 s3.1.2, RFC 8332, RFC 4253 s6.6),
 * and prints SHA256 fingerprints and base64 the way OpenSSH does. Whether a
 * key is trusted is decided elsewhere (knownhosts.c, transport.c). */
#include "hostkey.h"
#include "errors.h"
#include "ossl.h"

#include "buf.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSH 10.5's HostKeyAlgorithms and PubkeyAcceptedAlgorithms defaults
   without the security-key (sk-*) types we do not support: the certificate
   algorithms first, then the plain ones, each in the same order. */
#define CERT_ALGS \
  "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com," \
  "ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com," \
  "rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com"
#define PLAIN_ALGS \
  "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256"
#define HOSTKEY_DEFAULT PLAIN_ALGS

/* OpenSSH's limits for RSA moduli. */
#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 16384

typedef struct ec_curve {
  const char *keytype;   /* blob and signature type */
  const char *ident;     /* curve identifier inside the blob */
  const char *group;     /* OpenSSL group name */
  const char *digest;    /* RFC 5656 s6.2.1 hash for the curve size */
  size_t coord_len;
} ec_curve;

static const ec_curve curves[] = {
  {"ecdsa-sha2-nistp256", "nistp256", "prime256v1", "SHA256", 32},
  {"ecdsa-sha2-nistp384", "nistp384", "secp384r1", "SHA384", 48},
  {"ecdsa-sha2-nistp521", "nistp521", "secp521r1", "SHA512", 66},
};

const char *evssh_hostkey_default_list(void) { return HOSTKEY_DEFAULT; }
const char *evssh_hostkey_default_algs(void) { return CERT_ALGS "," PLAIN_ALGS; }
const char *evssh_hostkey_supported_list(void) {
  return CERT_ALGS "," PLAIN_ALGS ",ssh-rsa-cert-v01@openssh.com,ssh-rsa";
}

static bool str_is(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static const ec_curve *curve_by_type(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++)
    if (str_is(s, n, curves[i].keytype)) return &curves[i];
  return NULL;
}

/* ------------------------------------------------ certificate key types */

#define CERT_SUFFIX "-cert-v01@openssh.com"

enum cert_key { CK_ED25519, CK_ECDSA, CK_RSA };

/* certificate blob types and the key fields each carries after its nonce */
static const struct cert_type_info {
  const char *type;
  const char *plain;
  enum cert_key kind;
} cert_types[] = {
  {"ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519", CK_ED25519},
  {"ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256", CK_ECDSA},
  {"ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384", CK_ECDSA},
  {"ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521", CK_ECDSA},
  {"ssh-rsa-cert-v01@openssh.com", "ssh-rsa", CK_RSA},
};

/* certificate algorithm names -> blob type and the signature the key makes */
static const struct cert_alg_info {
  const char *alg;
  const char *blob_type;
  const char *sig_alg;
} cert_algs[] = {
  {"ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519"},
  {"ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256"},
  {"ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384"},
  {"ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521"},
  {"rsa-sha2-512-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com", "rsa-sha2-512"},
  {"rsa-sha2-256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256"},
  {"ssh-rsa-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com", "ssh-rsa"},
};

bool evssh_cert_is_cert_name(const char *name) {
  size_t n = name ? strlen(name) : 0, s = strlen(CERT_SUFFIX);
  return n > s && strcmp(name + n - s, CERT_SUFFIX) == 0;
}

static const struct cert_alg_info *cert_alg_info(const char *alg) {
  for (size_t i = 0; alg && i < sizeof cert_algs / sizeof cert_algs[0]; i++)
    if (strcmp(cert_algs[i].alg, alg) == 0) return &cert_algs[i];
  return NULL;
}

const char *evssh_cert_alg_blob_type(const char *alg) {
  const struct cert_alg_info *a = cert_alg_info(alg);
  return a ? a->blob_type : NULL;
}

const char *evssh_cert_alg_sig_alg(const char *alg) {
  const struct cert_alg_info *a = cert_alg_info(alg);
  return a ? a->sig_alg : NULL;
}

const char *evssh_cert_alg_for(const char *cert_type, const char *sig_alg) {
  for (size_t i = 0; cert_type && sig_alg && i < sizeof cert_algs / sizeof cert_algs[0]; i++)
    if (strcmp(cert_algs[i].blob_type, cert_type) == 0 && strcmp(cert_algs[i].sig_alg, sig_alg) == 0)
      return cert_algs[i].alg;
  return NULL;
}

const char *evssh_cert_alg_list(void) { return CERT_ALGS; }

int evssh_hostkey_blob_type(const unsigned char *blob, size_t len, char *out, size_t outlen) {
  if (!blob || !out || outlen == 0) return EVSSH_EINVAL;
  evssh_reader r = reader_of(blob, len);
  const char *t;
  size_t tl;
  if (evssh_read_string(&r, &t, &tl) || tl == 0 || memchr(t, 0, tl)) return EVSSH_EPROTO;
  if (tl >= outlen) return EVSSH_EINVAL;
  memcpy(out, t, tl);
  out[tl] = 0;
  return EVSSH_OK;
}

bool evssh_hostkey_alg_matches(const char *alg, const char *blob_type) {
  if (!alg || !blob_type) return false;
  if (evssh_cert_is_cert_name(blob_type)) {
    const char *bt = evssh_cert_alg_blob_type(alg);
    return bt && strcmp(bt, blob_type) == 0;
  }
  if (strcmp(blob_type, "ssh-rsa") == 0)
    return strcmp(alg, "ssh-rsa") == 0 || strcmp(alg, "rsa-sha2-256") == 0 ||
           strcmp(alg, "rsa-sha2-512") == 0;
  if (strcmp(blob_type, "ssh-ed25519") == 0) return strcmp(alg, "ssh-ed25519") == 0;
  const ec_curve *c = curve_by_type(blob_type, strlen(blob_type));
  return c && strcmp(alg, c->keytype) == 0;
}

static int fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
  int rc = EVSSH_ENOMEM;
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
    rc = EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1 ? EVSSH_OK : EVSSH_EPROTO;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return rc;
}

static int rsa_from_blob(evssh_reader *r, EVP_PKEY **out) {
  BIGNUM *e = NULL, *n = NULL;
  int rc = evssh_read_bignum(r, &e);
  if (!rc) rc = evssh_read_bignum(r, &n);
  if (!rc && r->left != 0) rc = EVSSH_EPROTO;
  /* e must be odd and > 1 for a usable public key */
  if (!rc && (!BN_is_odd(e) || BN_is_one(e) || BN_num_bits(e) > BN_num_bits(n) ||
              BN_num_bits(n) < RSA_MIN_BITS || BN_num_bits(n) > RSA_MAX_BITS || !BN_is_odd(n)))
    rc = EVSSH_EPROTO;
  OSSL_PARAM_BLD *bld = NULL;
  if (!rc) {
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
      rc = EVSSH_ENOMEM;
  }
  if (!rc) rc = fromdata("RSA", bld, out);
  OSSL_PARAM_BLD_free(bld);
  BN_free(e);
  BN_free(n);
  return rc;
}

static int ec_from_blob(const ec_curve *c, evssh_reader *r, EVP_PKEY **out) {
  const char *ident, *q;
  size_t il, ql;
  if (evssh_read_string(r, &ident, &il) || evssh_read_string(r, &q, &ql) || r->left != 0 ||
      !str_is(ident, il, c->ident) || ql != 1 + 2 * c->coord_len || q[0] != 4)
    return EVSSH_EPROTO;
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  int rc = EVSSH_ENOMEM;
  if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->group, 0) &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, ql))
    rc = fromdata("EC", bld, out);
  OSSL_PARAM_BLD_free(bld);
  if (rc) return rc;
  /* import already refuses off-curve points; the check also covers the
     point at infinity and keeps that guarantee explicit */
  EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
  if (!chk || EVP_PKEY_public_check(chk) != 1) rc = chk ? EVSSH_EPROTO : EVSSH_ENOMEM;
  EVP_PKEY_CTX_free(chk);
  if (rc) {
    EVP_PKEY_free(*out);
    *out = NULL;
  }
  return rc;
}

int evssh_pubkey_from_blob(const unsigned char *blob, size_t len, EVP_PKEY **out) {
  if (!blob || !out) return EVSSH_EINVAL;
  evssh_reader r = reader_of(blob, len);
  const char *t;
  size_t tl;
  if (evssh_read_string(&r, &t, &tl)) return EVSSH_EPROTO;
  EVP_PKEY *pk = NULL;
  int rc;
  const ec_curve *c;
  if (str_is(t, tl, "ssh-ed25519")) {
    const char *pub;
    size_t pl;
    if (evssh_read_string(&r, &pub, &pl) || pl != 32 || r.left != 0) return EVSSH_EPROTO;
    pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, (const unsigned char *)pub, pl);
    rc = pk ? EVSSH_OK : EVSSH_EPROTO;
  } else if (str_is(t, tl, "ssh-rsa")) {
    rc = rsa_from_blob(&r, &pk);
  } else if ((c = curve_by_type(t, tl))) {
    rc = ec_from_blob(c, &r, &pk);
  } else {
    rc = EVSSH_EPROTO;
  }
  if (rc) {
    EVP_PKEY_free(pk);
    return rc;
  }
  *out = pk;
  return EVSSH_OK;
}

int evssh_hostkey_cert_key(const unsigned char *blob, size_t len, unsigned char **key, size_t *key_len,
                           const char **cert_type, const char **key_type, size_t *consumed) {
  if (!blob || !key || !key_len) return EVSSH_EINVAL;
  evssh_reader r = reader_of(blob, len);
  const char *t, *nonce, *f1, *f2;
  size_t tl, nl, l1, l2;
  if (evssh_read_string(&r, &t, &tl)) return EVSSH_EPROTO;
  const struct cert_type_info *ct = NULL;
  for (size_t i = 0; i < sizeof cert_types / sizeof cert_types[0] && !ct; i++)
    if (str_is(t, tl, cert_types[i].type)) ct = &cert_types[i];
  if (!ct) return EVSSH_ENOALGO;
  if (evssh_read_string(&r, &nonce, &nl)) return EVSSH_EPROTO;
  /* the certified key's fields, re-framed as the blob the key has alone */
  evssh_buf b = EVSSH_BUF_INIT;
  int rc = evssh_buf_put_cstring(&b, ct->plain);
  const unsigned char *m1, *m2;
  bool framed;
  switch (ct->kind) {
  case CK_ED25519:
    framed = !evssh_read_string(&r, &f1, &l1);
    if (framed && !rc) rc = evssh_buf_put_string(&b, f1, l1);
    break;
  case CK_ECDSA:
    framed = !evssh_read_string(&r, &f1, &l1) && !evssh_read_string(&r, &f2, &l2);
    if (framed && !rc) rc = evssh_buf_put_string(&b, f1, l1);
    if (framed && !rc) rc = evssh_buf_put_string(&b, f2, l2);
    break;
  default: /* e then n, as in the plain blob */
    framed = !evssh_read_mpint(&r, &m1, &l1) && !evssh_read_mpint(&r, &m2, &l2);
    if (framed && !rc) rc = buf_put_mpint_bytes(&b, m1, l1);
    if (framed && !rc) rc = buf_put_mpint_bytes(&b, m2, l2);
    break;
  }
  if (!framed && !rc) rc = EVSSH_EPROTO;
  EVP_PKEY *pk = NULL;
  if (!rc) rc = evssh_pubkey_from_blob(b.data, b.len, &pk);
  EVP_PKEY_free(pk);
  if (rc) {
    buf_release(&b);
    return rc == EVSSH_ENOMEM ? rc : EVSSH_EPROTO;
  }
  *key = b.data;
  *key_len = b.len;
  if (cert_type) *cert_type = ct->type;
  if (key_type) *key_type = ct->plain;
  if (consumed) *consumed = len - r.left;
  return EVSSH_OK;
}

/* RFC 5656 s3.1.2: the signature is string(mpint r, mpint s); OpenSSL
   wants DER. */
static int ecdsa_sig_to_der(const ec_curve *c, const unsigned char *sig, size_t siglen,
                            unsigned char **der, size_t *derlen) {
  evssh_reader r = reader_of(sig, siglen);
  const unsigned char *rm, *sm;
  size_t rl, sl;
  if (evssh_read_mpint(&r, &rm, &rl) || evssh_read_mpint(&r, &sm, &sl) || r.left != 0 ||
      rl == 0 || sl == 0 || rl > c->coord_len || sl > c->coord_len)
    return EVSSH_EPROTO;
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *br = BN_bin2bn(rm, (int)rl, NULL), *bs = BN_bin2bn(sm, (int)sl, NULL);
  int rc = EVSSH_ENOMEM;
  if (!es || !br || !bs || !ECDSA_SIG_set0(es, br, bs)) {
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(es);
    return rc;
  }
  unsigned char *d = NULL;
  int n = i2d_ECDSA_SIG(es, &d);
  ECDSA_SIG_free(es);
  if (n <= 0) return rc;
  *der = d;
  *derlen = (size_t)n;
  return EVSSH_OK;
}

static int verify_with(EVP_PKEY *pk, const char *digest, const unsigned char *sig, size_t siglen,
                       const unsigned char *data, size_t data_len, bool pkcs1) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  if (!ctx) return EVSSH_ENOMEM;
  int rc = EVSSH_EPROTO;
  if (EVP_DigestVerifyInit_ex(ctx, &pctx, digest, NULL, NULL, pk, NULL) == 1 &&
      (!pkcs1 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
      EVP_DigestVerify(ctx, sig, siglen, data, data_len) == 1)
    rc = EVSSH_OK;
  EVP_MD_CTX_free(ctx);
  return rc;
}

/* A host certificate signs with the key it certifies, and its signature
   blob carries the plain algorithm (rsa-sha2-512-cert-v01@openssh.com ->
   "rsa-sha2-512"). Whether the certificate itself is to be trusted is the
   known_hosts check's business (evssh_knownhosts_check_hostcert). */
static int verify_certified(const unsigned char *blob, size_t blob_len, const char *alg,
                            const unsigned char *sig_blob, size_t sig_len, const unsigned char *data,
                            size_t data_len, char *err, size_t errlen) {
  unsigned char *key = NULL;
  size_t key_len = 0;
  int rc = evssh_hostkey_cert_key(blob, blob_len, &key, &key_len, NULL, NULL, NULL);
  if (rc) {
    evssh_errorf(err, errlen, "%s host key: malformed certificate", alg);
    return rc == EVSSH_ENOMEM ? rc : EVSSH_EPROTO;
  }
  rc = evssh_hostkey_verify(key, key_len, evssh_cert_alg_sig_alg(alg), sig_blob, sig_len, data, data_len, err,
                            errlen);
  free(key);
  return rc;
}

int evssh_hostkey_verify(const unsigned char *blob, size_t blob_len, const char *expected_alg,
                         const unsigned char *sig_blob, size_t sig_len,
                         const unsigned char *data, size_t data_len, char *err, size_t errlen) {
  if (!blob || !expected_alg || !sig_blob || (!data && data_len)) return EVSSH_EINVAL;
  char type[64];
  int rc = evssh_hostkey_blob_type(blob, blob_len, type, sizeof type);
  if (rc) {
    evssh_errorf(err, errlen, "malformed host key blob");
    return EVSSH_EPROTO;
  }
  if (!evssh_hostkey_alg_matches(expected_alg, type)) {
    evssh_errorf(err, errlen, "host key type %s cannot make %s signatures", type, expected_alg);
    return EVSSH_EPROTO;
  }
  if (evssh_cert_is_cert_name(type))
    return verify_certified(blob, blob_len, expected_alg, sig_blob, sig_len, data, data_len, err, errlen);
  evssh_reader r = reader_of(sig_blob, sig_len);
  const char *salg, *sig;
  size_t salen, slen;
  if (evssh_read_string(&r, &salg, &salen) || evssh_read_string(&r, &sig, &slen) || r.left != 0) {
    evssh_errorf(err, errlen, "malformed %s signature blob", expected_alg);
    return EVSSH_EPROTO;
  }
  if (!str_is(salg, salen, expected_alg)) {
    evssh_errorf(err, errlen, "signature algorithm %.*s is not the negotiated %s",
            (int)(salen > 64 ? 64 : salen), salg, expected_alg);
    return EVSSH_EPROTO;
  }
  EVP_PKEY *pk = NULL;
  if ((rc = evssh_pubkey_from_blob(blob, blob_len, &pk))) {
    evssh_errorf(err, errlen, "cannot use %s host key: %s", type,
            rc == EVSSH_ENOMEM ? "out of memory" : "malformed or unsupported");
    return rc;
  }
  const unsigned char *s = (const unsigned char *)sig;
  const ec_curve *c;
  if (strcmp(type, "ssh-ed25519") == 0) {
    rc = slen == 64 ? verify_with(pk, NULL, s, slen, data, data_len, false) : EVSSH_EPROTO;
  } else if ((c = curve_by_type(type, strlen(type)))) {
    unsigned char *der = NULL;
    size_t derlen = 0;
    rc = ecdsa_sig_to_der(c, s, slen, &der, &derlen);
    if (!rc) rc = verify_with(pk, c->digest, der, derlen, data, data_len, false);
    OPENSSL_free(der);
  } else {
    const char *digest = strcmp(expected_alg, "rsa-sha2-512") == 0   ? "SHA512"
                         : strcmp(expected_alg, "rsa-sha2-256") == 0 ? "SHA256"
                                                                     : "SHA1";
    /* RFC 8332: the signature has the modulus' length; some signers drop
       leading zero bytes, which we put back. */
    size_t modlen = (size_t)EVP_PKEY_get_size(pk);
    if (slen == 0 || slen > modlen) {
      rc = EVSSH_EPROTO;
    } else {
      unsigned char *padded = calloc(1, modlen);
      if (!padded) {
        rc = EVSSH_ENOMEM;
      } else {
        memcpy(padded + (modlen - slen), s, slen);
        rc = verify_with(pk, digest, padded, modlen, data, data_len, true);
        free(padded);
      }
    }
  }
  EVP_PKEY_free(pk);
  if (rc == EVSSH_EPROTO) evssh_errorf(err, errlen, "%s signature on the exchange hash is invalid", expected_alg);
  else if (rc == EVSSH_ENOMEM) evssh_errorf(err, errlen, "out of memory verifying the signature");
  return rc;
}

int evssh_fingerprint_sha256(const unsigned char *blob, size_t len, char *out, size_t outlen) {
  if (!blob || !out) return EVSSH_EINVAL;
  unsigned char md[32];
  unsigned int ml = 0;
  static const char prefix[] = "SHA256:";
  if (outlen < sizeof prefix) return EVSSH_EINVAL;
  if (EVP_Digest(blob, len, md, &ml, evssh_ossl_md("SHA256"), NULL) != 1 || ml != 32) return EVSSH_ENOMEM;
  memcpy(out, prefix, sizeof prefix);
  return evssh_base64_encode(md, 32, false, out + sizeof prefix - 1, outlen - (sizeof prefix - 1));
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int evssh_base64_encode(const unsigned char *in, size_t len, bool pad, char *out, size_t outlen) {
  if ((!in && len) || !out) return EVSSH_EINVAL;
  if (len > (SIZE_MAX - 1) / 4 * 3 - 3) return EVSSH_EINVAL;
  size_t full = len / 3, rest = len % 3;
  size_t need = full * 4 + (rest ? (pad ? 4 : rest + 1) : 0) + 1;
  if (outlen < need) return EVSSH_EINVAL;
  char *o = out;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    *o++ = b64chars[(v >> 6) & 63];
    *o++ = b64chars[v & 63];
  }
  if (rest) {
    uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    if (rest == 2) *o++ = b64chars[(v >> 6) & 63];
    if (pad) {
      if (rest == 1) *o++ = '=';
      *o++ = '=';
    }
  }
  *o = 0;
  return EVSSH_OK;
}

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Accepts padded or unpadded input; whitespace is skipped (key files wrap
   lines), anything else outside the alphabet is an error, as is data after
   padding or a dangling sextet. */
int evssh_base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *outl) {
  if ((!in && len) || (!out && outlen) || !outl) return EVSSH_EINVAL;
  uint32_t acc = 0;
  int nbits = 0, nchars = 0, npad = 0;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '=') {
      npad++;
      continue;
    }
    int v = b64val(c);
    if (v < 0 || npad) return EVSSH_EINVAL;
    acc = (acc << 6) | (uint32_t)v;
    nbits += 6;
    nchars++;
    if (nbits >= 8) {
      nbits -= 8;
      if (o >= outlen) return EVSSH_EINVAL;
      out[o++] = (unsigned char)(acc >> nbits);
      acc &= (1u << nbits) - 1;
    }
  }
  int tail = nchars % 4;
  if (tail == 1) return EVSSH_EINVAL;
  if (npad && (npad != (tail ? 4 - tail : 0) || npad > 2)) return EVSSH_EINVAL;
  *outl = o;
  return EVSSH_OK;
}
