/* keys.c owns the user's key material: it reads public key files and lines,
 * decodes private key files (openssh-key-v1 itself, plain and encrypted,
 * with bcrypt_pbkdf.c and OpenSSL's ciphers; PEM/PKCS#8 through OpenSSL's
 * decoder), checks that each key's halves belong together, moves the
 * secret into an OpenSSL EVP_PKEY, picks the signature algorithm the way
 * OpenSSH's client does and produces SSH signature blobs. Every
 * intermediate copy of a secret (file text, decoded blobs, decrypted
 * sections, passphrases) is wiped before it is freed. */
#include "keys.h"
#include "errors.h"
#include "bcrypt_pbkdf.h"
#include "cert.h"
#include "keys_internal.h"

#include "buf.h"
#include "hostkey.h"
#include "ossl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Key files are small; anything larger is not a key and must not make us
   allocate without bound. */
#define KEYFILE_MAX (1024u * 1024u)
#define PASSPHRASE_MAX 1024

/* Key derivation work a file may ask for (keys.h says why these values).
   Fuzzing builds lower the caps so an input cannot stall the fuzzer. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define KDF_ROUNDS_MAX 4u
#define PBKDF2_ITER_MAX 4096u
#else
#define KDF_ROUNDS_MAX ((uint32_t)EVSSH_KEY_KDF_ROUNDS_MAX)
#define PBKDF2_ITER_MAX ((unsigned long)EVSSH_KEY_PBKDF2_ITER_MAX)
#endif

enum key_kind { KIND_ED25519, KIND_ECDSA, KIND_RSA };

/* internal result of the openssh-key-v1 key readers: the numbers are
   well-formed but the private half is not the public half's */
#define KEY_PAIR_MISMATCH 1

struct key_type_info {
  const char *name;       /* SSH key type */
  enum key_kind kind;
  const char *curve;      /* SSH curve identifier inside ECDSA blobs */
  const char *group;      /* OpenSSL group name for fromdata */
  int nid;
};

static const struct key_type_info key_types[] = {
  {EVSSH_KEYTYPE_ED25519, KIND_ED25519, NULL, NULL, NID_ED25519},
  {EVSSH_KEYTYPE_ECDSA256, KIND_ECDSA, "nistp256", "P-256", NID_X9_62_prime256v1},
  {EVSSH_KEYTYPE_ECDSA384, KIND_ECDSA, "nistp384", "P-384", NID_secp384r1},
  {EVSSH_KEYTYPE_ECDSA521, KIND_ECDSA, "nistp521", "P-521", NID_secp521r1},
  {EVSSH_KEYTYPE_RSA, KIND_RSA, NULL, NULL, NID_rsaEncryption},
};

struct evssh_key {
  const struct key_type_info *type;
  unsigned char *blob;
  size_t blob_len;
  char *comment;
  EVP_PKEY *pkey; /* NULL: public half only */
  evssh_cert *cert; /* certificate for this key (keys_cert.c), or NULL */
};

static const struct key_type_info *type_by_name(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof key_types / sizeof key_types[0]; i++)
    if (strlen(key_types[i].name) == len && memcmp(key_types[i].name, name, len) == 0)
      return &key_types[i];
  return NULL;
}

static const struct key_type_info *type_by_nid(int nid) {
  for (size_t i = 0; i < sizeof key_types / sizeof key_types[0]; i++)
    if (key_types[i].nid == nid) return &key_types[i];
  return NULL;
}

static void wipe_free(void *p, size_t n) {
  if (!p) return;
  OPENSSL_cleanse(p, n);
  free(p);
}

void evssh_key_free(evssh_key *k) {
  if (!k) return;
  free(k->blob);
  free(k->comment);
  EVP_PKEY_free(k->pkey);
  evssh_cert_free(k->cert);
  free(k);
}

void keys_set_cert(evssh_key *k, evssh_cert *c) {
  evssh_cert_free(k->cert);
  k->cert = c;
}

const evssh_cert *evssh_key_cert(const evssh_key *k) { return k ? k->cert : NULL; }

/* Whole file into a NUL-terminated heap buffer. The caller wipes it: a
   private key file may be unencrypted. */
int keys_read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    evssh_errorf(err, errlen, "%s: %s", path, strerror(errno));
    return EVSSH_EINVAL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    evssh_errorf(err, errlen, "%s: not a regular file", path);
    close(fd);
    return EVSSH_EINVAL;
  }
  if ((unsigned long long)st.st_size > KEYFILE_MAX) {
    evssh_errorf(err, errlen, "%s: too large for a key file", path);
    close(fd);
    return EVSSH_EINVAL;
  }
  size_t cap = (size_t)st.st_size + 1;
  char *data = malloc(cap);
  if (!data) {
    close(fd);
    return EVSSH_ENOMEM;
  }
  size_t len = 0;
  for (;;) {
    if (len == cap - 1) break; /* file grew after fstat: take what we sized */
    ssize_t n = read(fd, data + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      evssh_errorf(err, errlen, "%s: %s", path, strerror(errno));
      close(fd);
      wipe_free(data, cap);
      return EVSSH_EINVAL;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  data[len] = 0;
  *out = data;
  *out_len = len;
  return EVSSH_OK;
}

/* ------------------------------------------------------------ public blobs */

static int blob_ed25519(EVP_PKEY *pkey, evssh_buf *b) {
  unsigned char pub[32];
  size_t publen = sizeof pub;
  if (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 || publen != 32)
    return EVSSH_EINVAL;
  int rc = evssh_buf_put_cstring(b, EVSSH_KEYTYPE_ED25519);
  if (!rc) rc = evssh_buf_put_string(b, pub, publen);
  return rc;
}

static int blob_ecdsa(EVP_PKEY *pkey, const struct key_type_info *t, evssh_buf *b) {
  unsigned char point[1 + 2 * 66];
  size_t plen = 0;
  /* the blob carries the uncompressed point whatever the source file used */
  if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                     "uncompressed") != 1)
    return EVSSH_EINVAL;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                      sizeof point, &plen) != 1 ||
      plen < 1 || point[0] != 0x04)
    return EVSSH_EINVAL;
  int rc = evssh_buf_put_cstring(b, t->name);
  if (!rc) rc = evssh_buf_put_cstring(b, t->curve);
  if (!rc) rc = evssh_buf_put_string(b, point, plen);
  return rc;
}

static int blob_rsa(EVP_PKEY *pkey, evssh_buf *b) {
  BIGNUM *n = NULL, *e = NULL;
  int rc = EVSSH_EINVAL;
  if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
      EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1) {
    rc = evssh_buf_put_cstring(b, EVSSH_KEYTYPE_RSA);
    if (!rc) rc = buf_put_bignum(b, e);
    if (!rc) rc = buf_put_bignum(b, n);
  }
  BN_free(n);
  BN_free(e);
  return rc;
}

/* Wraps a finished EVP_PKEY into an evssh_key with its public blob; takes
   ownership of pkey and comment on success and on failure. */
static int key_from_pkey(EVP_PKEY *pkey, const struct key_type_info *t, char *comment,
                         evssh_key **out) {
  evssh_buf b = EVSSH_BUF_INIT;
  int rc;
  switch (t->kind) {
  case KIND_ED25519: rc = blob_ed25519(pkey, &b); break;
  case KIND_ECDSA: rc = blob_ecdsa(pkey, t, &b); break;
  default: rc = blob_rsa(pkey, &b); break;
  }
  evssh_key *k = NULL;
  if (!rc && !comment) {
    comment = strdup("");
    if (!comment) rc = EVSSH_ENOMEM;
  }
  if (!rc) {
    k = calloc(1, sizeof *k);
    if (!k) rc = EVSSH_ENOMEM;
  }
  if (rc) {
    buf_release(&b);
    EVP_PKEY_free(pkey);
    free(comment);
    return rc;
  }
  k->type = t;
  k->blob = b.data; /* off is 0: built from empty */
  k->blob_len = b.len;
  k->comment = comment;
  k->pkey = pkey;
  *out = k;
  return EVSSH_OK;
}

/* Which of our key types an OpenSSL key is (RSA, Ed25519 or a NIST curve). */
static const struct key_type_info *type_of_pkey(EVP_PKEY *pkey) {
  if (EVP_PKEY_is_a(pkey, "ED25519")) return type_by_nid(NID_ED25519);
  if (EVP_PKEY_is_a(pkey, "RSA")) return type_by_nid(NID_rsaEncryption);
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1) return NULL;
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef) nid = EC_curve_nist2nid(group);
    const struct key_type_info *t = type_by_nid(nid);
    return t && t->kind == KIND_ECDSA ? t : NULL;
  }
  return NULL;
}

/* ------------------------------------------------------- public key lines */

int evssh_pubkey_blob_from_line(const char *line, unsigned char **blob, size_t *blob_len,
                                char **comment) {
  const char *p = line;
  while (*p == ' ' || *p == '\t') p++;
  const char *type = p;
  while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') p++;
  size_t type_len = (size_t)(p - type);
  while (*p == ' ' || *p == '\t') p++;
  const char *b64 = p;
  while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') p++;
  size_t b64_len = (size_t)(p - b64);
  if (type_len == 0 || b64_len == 0) return EVSSH_EINVAL;

  size_t cap = b64_len / 4 * 3 + 3;
  unsigned char *raw = malloc(cap);
  if (!raw) return EVSSH_ENOMEM;
  size_t raw_len = 0;
  if (evssh_base64_decode(b64, b64_len, raw, cap, &raw_len) != EVSSH_OK) {
    free(raw);
    return EVSSH_EINVAL;
  }
  evssh_reader r = reader_of(raw, raw_len);
  const char *inner;
  size_t inner_len;
  if (evssh_read_string(&r, &inner, &inner_len) != EVSSH_OK || inner_len != type_len ||
      memcmp(inner, type, type_len) != 0) {
    free(raw);
    return EVSSH_EINVAL;
  }
  if (comment) {
    while (*p == ' ' || *p == '\t') p++;
    size_t clen = strcspn(p, "\r\n");
    while (clen > 0 && (p[clen - 1] == ' ' || p[clen - 1] == '\t')) clen--;
    char *c = strndup(p, clen);
    if (!c) {
      free(raw);
      return EVSSH_ENOMEM;
    }
    *comment = c;
  }
  *blob = raw;
  *blob_len = raw_len;
  return EVSSH_OK;
}

/* text: NUL-terminated, len bytes before the NUL */
static int load_public_text(const char *path, const char *text, size_t len, evssh_key **out, char *err,
                            size_t errlen) {
  if (memchr(text, 0, len)) {
    evssh_errorf(err, errlen, "%s: not an OpenSSH public key", path);
    return EVSSH_EINVAL;
  }
  /* first line that is neither blank nor a comment */
  const char *line = text;
  for (;;) {
    const char *q = line + strspn(line, " \t\r\n");
    if (*q != '#') {
      line = q;
      break;
    }
    const char *nl = strchr(q, '\n');
    if (!nl) {
      line = q + strlen(q);
      break;
    }
    line = nl + 1;
  }
  unsigned char *blob = NULL;
  size_t blob_len = 0;
  char *comment = NULL;
  int rc = evssh_pubkey_blob_from_line(line, &blob, &blob_len, &comment);
  if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "%s: not an OpenSSH public key", path);
  if (rc) return rc;
  return keys_new_public(path, blob, blob_len, comment, out, err, errlen);
}

int evssh_key_load_public(const char *path, evssh_key **out, char *err, size_t errlen) {
  if (!path || !out) return EVSSH_EINVAL;
  char *text = NULL;
  size_t len = 0;
  int rc = keys_read_file(path, &text, &len, err, errlen);
  if (rc) return rc;
  rc = load_public_text(path, text, len, out, err, errlen);
  free(text);
  return rc;
}

int evssh_key_load_public_text(const char *label, const char *text, size_t len, evssh_key **out, char *err,
                               size_t errlen) {
  if (!label || (!text && len) || !out || len > KEYFILE_MAX) return EVSSH_EINVAL;
  char *copy = malloc(len + 1);
  if (!copy) return EVSSH_ENOMEM;
  if (len) memcpy(copy, text, len);
  copy[len] = 0;
  int rc = load_public_text(label, copy, len, out, err, errlen);
  free(copy);
  return rc;
}

int keys_new_public(const char *path, unsigned char *blob, size_t blob_len, char *comment, evssh_key **out,
                    char *err, size_t errlen) {
  evssh_reader r = reader_of(blob, blob_len);
  const char *tname = "";
  size_t tlen = 0;
  const struct key_type_info *t = evssh_read_string(&r, &tname, &tlen) ? NULL : type_by_name(tname, tlen);
  if (!t) {
    evssh_errorf(err, errlen, "%s: unsupported key type %.*s", path, (int)(tlen > 64 ? 64 : tlen),
            tname);
    free(blob);
    free(comment);
    return EVSSH_EINVAL;
  }
  evssh_key *k = calloc(1, sizeof *k);
  if (!k) {
    free(blob);
    free(comment);
    return EVSSH_ENOMEM;
  }
  k->type = t;
  k->blob = blob;
  k->blob_len = blob_len;
  k->comment = comment;
  *out = k;
  return EVSSH_OK;
}

/* -------------------------------------------------------- openssh-key-v1 */

#define OPENSSH_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----"
#define OPENSSH_END "-----END OPENSSH PRIVATE KEY-----"
#define OPENSSH_MAGIC "openssh-key-v1"

/* Base64 body of an armoured openssh-key-v1 text, decoded into a secret
   heap buffer (the caller wipes it). Whitespace between lines is dropped. */
static int openssh_v1_decode(const char *text, size_t len, unsigned char **out,
                             size_t *out_len) {
  const char *end = text + len;
  const char *body = text, *body_end = end;
  const char *begin = memmem(text, len, OPENSSH_BEGIN, strlen(OPENSSH_BEGIN));
  if (begin) {
    body = begin + strlen(OPENSSH_BEGIN);
    body_end = memmem(body, (size_t)(end - body), OPENSSH_END, strlen(OPENSSH_END));
    if (!body_end) return EVSSH_EINVAL;
  }
  size_t n = (size_t)(body_end - body);
  char *compact = malloc(n + 1);
  if (!compact) return EVSSH_ENOMEM;
  size_t c = 0;
  for (const char *p = body; p < body_end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') compact[c++] = *p;
  size_t cap = c / 4 * 3 + 3;
  unsigned char *raw = malloc(cap);
  int rc = EVSSH_ENOMEM;
  size_t raw_len = 0;
  if (raw) {
    rc = c > 0 && evssh_base64_decode(compact, c, raw, cap, &raw_len) == EVSSH_OK
             ? EVSSH_OK
             : EVSSH_EINVAL;
    if (rc) wipe_free(raw, cap);
  }
  wipe_free(compact, n + 1);
  if (rc) return rc;
  *out = raw;
  *out_len = raw_len;
  return EVSSH_OK;
}

static bool str_is(const char *s, size_t n, const char *lit) {
  return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static int pkey_fromdata(const char *keytype, OSSL_PARAM_BLD *bld, bool pairwise_check,
                         EVP_PKEY **out) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  if (!params) return EVSSH_ENOMEM;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, keytype, NULL);
  EVP_PKEY *pkey = NULL;
  int ok = ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
           EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params); /* secret BNs were secure, so their block is wiped */
  if (!ok) {
    EVP_PKEY_free(pkey);
    return EVSSH_EINVAL;
  }
  if (!pairwise_check) {
    *out = pkey;
    return EVSSH_OK;
  }
  /* a file whose public and private halves disagree would only show up as
     an authentication failure later; catch it here */
  EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
  ok = check && EVP_PKEY_pairwise_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!ok) {
    EVP_PKEY_free(pkey);
    return KEY_PAIR_MISMATCH;
  }
  *out = pkey;
  return EVSSH_OK;
}

static int openssh_ed25519(evssh_reader *r, EVP_PKEY **out) {
  const char *pub, *priv;
  size_t publen, privlen;
  if (evssh_read_string(r, &pub, &publen) || evssh_read_string(r, &priv, &privlen) ||
      publen != 32 || privlen != 64)
    return EVSSH_EINVAL;
  /* the 64-byte private field is seed || public key */
  EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
                                                (const unsigned char *)priv, 32);
  if (!pkey) return EVSSH_EINVAL;
  unsigned char derived[32];
  size_t dlen = sizeof derived;
  if (EVP_PKEY_get_raw_public_key(pkey, derived, &dlen) != 1 || dlen != 32 ||
      memcmp(derived, pub, 32) != 0 || memcmp(priv + 32, pub, 32) != 0) {
    EVP_PKEY_free(pkey);
    return KEY_PAIR_MISMATCH;
  }
  *out = pkey;
  return EVSSH_OK;
}

static int openssh_ecdsa(evssh_reader *r, const struct key_type_info *t, EVP_PKEY **out) {
  const char *curve, *point;
  size_t curve_len, point_len;
  const unsigned char *d;
  size_t dlen;
  if (evssh_read_string(r, &curve, &curve_len) || !str_is(curve, curve_len, t->curve) ||
      evssh_read_string(r, &point, &point_len) || evssh_read_mpint(r, &d, &dlen) || dlen == 0)
    return EVSSH_EINVAL;
  BIGNUM *priv = BN_secure_new();
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  int rc = EVSSH_ENOMEM;
  if (priv && bld && BN_bin2bn(d, (int)dlen, priv) &&
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, t->group, 0) &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, point_len) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv))
    rc = pkey_fromdata("EC", bld, true, out); /* one scalar multiplication */
  OSSL_PARAM_BLD_free(bld);
  BN_clear_free(priv);
  return rc;
}

/* n = p*q and e*d = 1 modulo p-1 and q-1: the private numbers make
   signatures the public key (n, e) verifies (p and q prime assumed). */
static bool rsa_numbers_consistent(const BIGNUM *n, const BIGNUM *e, const BIGNUM *d, const BIGNUM *p,
                                   const BIGNUM *q, BN_CTX *ctx) {
  BN_CTX_start(ctx);
  BIGNUM *t = BN_CTX_get(ctx), *ed = BN_CTX_get(ctx), *m = BN_CTX_get(ctx);
  bool ok = m && !BN_is_zero(p) && !BN_is_zero(q) && BN_mul(t, p, q, ctx) && BN_cmp(t, n) == 0 &&
            BN_mul(ed, e, d, ctx);
  for (int i = 0; i < 2 && ok; i++)
    ok = BN_sub(m, i ? q : p, BN_value_one()) && !BN_is_zero(m) && BN_mod(t, ed, m, ctx) && BN_is_one(t);
  BN_CTX_end(ctx);
  return ok;
}

static int openssh_rsa(evssh_reader *r, EVP_PKEY **out) {
  /* field order in the private section: n e d iqmp p q */
  BIGNUM *bn[6] = {NULL};
  BIGNUM *dmp1 = NULL, *dmq1 = NULL, *tmp = NULL;
  BN_CTX *bnctx = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  int rc = EVSSH_EINVAL;
  for (int i = 0; i < 6; i++) {
    const unsigned char *mag;
    size_t len;
    if (evssh_read_mpint(r, &mag, &len) || len == 0 || len > 2048) goto out;
    bn[i] = i < 2 ? BN_new() : BN_secure_new();
    if (!bn[i]) {
      rc = EVSSH_ENOMEM;
      goto out;
    }
    if (!BN_bin2bn(mag, (int)len, bn[i])) goto out;
    if (i >= 2) BN_set_flags(bn[i], BN_FLG_CONSTTIME);
  }
  BIGNUM *n = bn[0], *e = bn[1], *d = bn[2], *iqmp = bn[3], *p = bn[4], *q = bn[5];
  if (BN_num_bits(n) < EVSSH_RSA_MIN_BITS) {
    rc = EVSSH_ENOALGO; /* reported as too small by the caller */
    goto out;
  }
  /* the file omits d mod (p-1) and d mod (q-1); OpenSSL wants them for CRT */
  rc = EVSSH_ENOMEM;
  bnctx = BN_CTX_secure_new();
  dmp1 = BN_secure_new();
  dmq1 = BN_secure_new();
  tmp = BN_secure_new();
  bld = OSSL_PARAM_BLD_new();
  if (!bnctx || !dmp1 || !dmq1 || !tmp || !bld) goto out;
  rc = EVSSH_EINVAL;
  /* OpenSSL's RSA pairwise check runs primality tests (~40 ms for 2048
     bits), too slow for a loop that loads keys for many sessions */
  if (!rsa_numbers_consistent(n, e, d, p, q, bnctx)) {
    rc = KEY_PAIR_MISMATCH;
    goto out;
  }
  if (!BN_sub(tmp, p, BN_value_one()) || !BN_mod(dmp1, d, tmp, bnctx) ||
      !BN_sub(tmp, q, BN_value_one()) || !BN_mod(dmq1, d, tmp, bnctx))
    goto out;
  if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dmp1) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dmq1) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, iqmp)) {
    rc = EVSSH_ENOMEM;
    goto out;
  }
  rc = pkey_fromdata("RSA", bld, false, out);
out:
  OSSL_PARAM_BLD_free(bld);
  BN_CTX_free(bnctx);
  BN_clear_free(dmp1);
  BN_clear_free(dmq1);
  BN_clear_free(tmp);
  for (int i = 0; i < 6; i++) BN_clear_free(bn[i]);
  return rc;
}

/* The parts of a decoded openssh-key-v1 file (pointers into it). */
typedef struct openssh_v1 {
  const char *cipher, *kdf, *kdfopts, *pub, *priv;
  size_t cipher_len, kdf_len, kdfopts_len, pub_len, priv_len;
  const unsigned char *tag; /* what follows the private section: an AEAD cipher's tag */
  size_t tag_len;
} openssh_v1;

static int openssh_v1_split(const unsigned char *raw, size_t raw_len, openssh_v1 *o, char *err,
                            size_t errlen) {
  evssh_reader r = reader_of(raw, raw_len);
  const unsigned char *magic;
  uint32_t nkeys;
  if (evssh_read_bytes(&r, sizeof OPENSSH_MAGIC, &magic) ||
      memcmp(magic, OPENSSH_MAGIC, sizeof OPENSSH_MAGIC) != 0 ||
      evssh_read_string(&r, &o->cipher, &o->cipher_len) || evssh_read_string(&r, &o->kdf, &o->kdf_len) ||
      evssh_read_string(&r, &o->kdfopts, &o->kdfopts_len) || evssh_read_u32(&r, &nkeys)) {
    evssh_errorf(err, errlen, "malformed openssh-key-v1 header");
    return EVSSH_EINVAL;
  }
  if (nkeys != 1 || evssh_read_string(&r, &o->pub, &o->pub_len) ||
      evssh_read_string(&r, &o->priv, &o->priv_len)) {
    evssh_errorf(err, errlen, "malformed openssh-key-v1 key list");
    return EVSSH_EINVAL;
  }
  o->tag = r.p;
  o->tag_len = r.left;
  return EVSSH_OK;
}

/* The private section, once in clear: check ints, the key, its comment,
   padding 1, 2, 3, ...; the key must match the file's public key. */
static int openssh_v1_parse_private(const unsigned char *priv, size_t priv_len, const char *pubblob,
                                    size_t pub_len, evssh_key **out, char *err, size_t errlen) {
  evssh_reader pr = reader_of(priv, priv_len);
  uint32_t check1, check2;
  const char *tname;
  size_t tlen;
  if (evssh_read_u32(&pr, &check1) || evssh_read_u32(&pr, &check2) || check1 != check2 ||
      evssh_read_string(&pr, &tname, &tlen)) {
    evssh_errorf(err, errlen, "malformed openssh-key-v1 private section");
    return EVSSH_EINVAL;
  }
  const struct key_type_info *t = type_by_name(tname, tlen);
  if (!t) {
    evssh_errorf(err, errlen, "unsupported key type %.*s", (int)(tlen > 64 ? 64 : tlen), tname);
    return EVSSH_EINVAL;
  }
  EVP_PKEY *pkey = NULL;
  int rc;
  switch (t->kind) {
  case KIND_ED25519: rc = openssh_ed25519(&pr, &pkey); break;
  case KIND_ECDSA: rc = openssh_ecdsa(&pr, t, &pkey); break;
  default: rc = openssh_rsa(&pr, &pkey); break;
  }
  if (rc == EVSSH_ENOALGO) {
    evssh_errorf(err, errlen, "RSA key smaller than %d bits refused", EVSSH_RSA_MIN_BITS);
    return EVSSH_EINVAL;
  }
  if (rc == KEY_PAIR_MISMATCH) {
    evssh_errorf(err, errlen, "private key does not match its public key");
    return EVSSH_EINVAL;
  }
  if (rc) {
    if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "invalid %s private key", t->name);
    return rc;
  }
  char *comment = NULL;
  if (evssh_read_cstring(&pr, &comment)) {
    EVP_PKEY_free(pkey);
    evssh_errorf(err, errlen, "malformed openssh-key-v1 comment");
    return EVSSH_EINVAL;
  }
  /* padding is 1, 2, 3, ... up to the cipher block size */
  for (size_t i = 0; i < pr.left; i++) {
    if (pr.p[i] != (unsigned char)(i + 1) || pr.left >= 256) {
      EVP_PKEY_free(pkey);
      free(comment);
      evssh_errorf(err, errlen, "malformed openssh-key-v1 padding");
      return EVSSH_EINVAL;
    }
  }
  evssh_key *k = NULL;
  rc = key_from_pkey(pkey, t, comment, &k);
  if (rc) return rc;
  if (k->blob_len != pub_len || memcmp(k->blob, pubblob, pub_len) != 0) {
    evssh_key_free(k);
    evssh_errorf(err, errlen, "private key does not match its public key");
    return EVSSH_EINVAL;
  }
  *out = k;
  return EVSSH_OK;
}

/* Parses decoded, unencrypted openssh-key-v1 bytes. */
static int openssh_v1_parse_raw(const unsigned char *raw, size_t raw_len, evssh_key **out, char *err,
                                size_t errlen) {
  openssh_v1 o;
  int rc = openssh_v1_split(raw, raw_len, &o, err, errlen);
  if (rc) return rc;
  if (!str_is(o.cipher, o.cipher_len, "none") || !str_is(o.kdf, o.kdf_len, "none")) {
    evssh_errorf(err, errlen, "openssh-key-v1 key is encrypted");
    return EVSSH_EINVAL;
  }
  if (o.tag_len != 0) {
    evssh_errorf(err, errlen, "malformed openssh-key-v1 key list");
    return EVSSH_EINVAL;
  }
  return openssh_v1_parse_private((const unsigned char *)o.priv, o.priv_len, o.pub, o.pub_len, out, err,
                                  errlen);
}

int evssh_key_parse_openssh_v1(const char *text, size_t len, evssh_key **out, char *err,
                               size_t errlen) {
  unsigned char *raw = NULL;
  size_t raw_len = 0;
  int rc = openssh_v1_decode(text, len, &raw, &raw_len);
  if (rc) {
    if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "malformed openssh-key-v1 armour");
    return rc;
  }
  rc = openssh_v1_parse_raw(raw, raw_len, out, err, errlen);
  wipe_free(raw, raw_len);
  if (rc) ERR_clear_error();
  return rc;
}

enum openssh_kind { NOT_OPENSSH, OPENSSH_PLAIN, OPENSSH_ENCRYPTED };

/* Classifies armoured text by its openssh-key-v1 header, which is never
   encrypted. */
static enum openssh_kind openssh_v1_classify(const char *text, size_t len) {
  if (!memmem(text, len, OPENSSH_BEGIN, strlen(OPENSSH_BEGIN))) return NOT_OPENSSH;
  unsigned char *raw = NULL;
  size_t raw_len = 0;
  /* a damaged armour is reported by the plain parser */
  if (openssh_v1_decode(text, len, &raw, &raw_len)) return OPENSSH_PLAIN;
  evssh_reader r = reader_of(raw, raw_len);
  const unsigned char *magic;
  const char *cipher, *kdf;
  size_t cipher_len, kdf_len;
  enum openssh_kind kind = OPENSSH_PLAIN;
  if (!evssh_read_bytes(&r, sizeof OPENSSH_MAGIC, &magic) &&
      memcmp(magic, OPENSSH_MAGIC, sizeof OPENSSH_MAGIC) == 0 &&
      !evssh_read_string(&r, &cipher, &cipher_len) && !evssh_read_string(&r, &kdf, &kdf_len) &&
      (!str_is(cipher, cipher_len, "none") || !str_is(kdf, kdf_len, "none")))
    kind = OPENSSH_ENCRYPTED;
  wipe_free(raw, raw_len);
  return kind;
}

/* ---------------------------------------------------- decoding with a prompt */

struct pass_ctx {
  evssh_passphrase_fn fn;
  void *ud;
  const char *path;
  bool asked;   /* the decoder wanted a passphrase */
  bool refused; /* no callback, or the callback said no */
  bool have;
  char pass[PASSPHRASE_MAX];
};

/* The passphrase prompt, behind OpenSSL's PEM callback and our own
   decryption. The passphrase is cached so a decoder that asks twice does
   not prompt the user twice. */
static int cached_prompt(const char *prompt, char *buf, size_t len, int echo, int verify,
                          void *userdata) {
  struct pass_ctx *pc = userdata;
  pc->asked = true;
  if (pc->refused || len == 0) return -1;
  if (!pc->have) {
    if (!pc->fn) {
      pc->refused = true;
      return -1;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "Enter passphrase for key '%s': ", pc->path);
    memset(pc->pass, 0, sizeof pc->pass);
    if (pc->fn(msg, pc->pass, sizeof pc->pass, pc->ud) < 0) {
      OPENSSL_cleanse(pc->pass, sizeof pc->pass);
      pc->refused = true;
      return -1;
    }
    pc->pass[sizeof pc->pass - 1] = 0;
    pc->have = true;
  }
  size_t n = strlen(pc->pass);
  if (n >= len) return -1;
  memcpy(buf, pc->pass, n + 1);
  return 0;
}

/* OpenSSL's PEM password callback, on top of the same cached prompt. Without
   a callback OpenSSL would prompt on the terminal itself. */
static int pem_passphrase_cb(char *buf, int size, int rwflag, void *u) {
  if (size <= 0) return -1;
  if (cached_prompt(NULL, buf, (size_t)size, 0, 0, u) != 0) return -1;
  return (int)strlen(buf);
}

/* Whether a decoded key's private half belongs to the public half it
   carries. Decoders take a stored public part as it is (a SEC1 or PKCS#8
   EC key holds its point next to the scalar), so a file can pair any two;
   every signature would then be refused by the server with nothing saying
   why. EC and Ed25519: OpenSSL's pairwise check (one scalar
   multiplication). RSA: the arithmetic of the numbers, not OpenSSL's
   pairwise check, whose primality tests cost ~40 ms a key. */
static bool pair_matches(EVP_PKEY *pkey, const struct key_type_info *t) {
  if (t->kind != KIND_RSA) {
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = check && EVP_PKEY_pairwise_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    return ok;
  }
  static const char *const names[] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E,
                                      OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
                                      OSSL_PKEY_PARAM_RSA_FACTOR2};
  BIGNUM *bn[5] = {NULL};
  bool ok = true;
  for (int i = 0; i < 5 && ok; i++) ok = EVP_PKEY_get_bn_param(pkey, names[i], &bn[i]) == 1;
  BN_CTX *ctx = ok ? BN_CTX_secure_new() : NULL;
  ok = ctx && rsa_numbers_consistent(bn[0], bn[1], bn[2], bn[3], bn[4], ctx);
  BN_CTX_free(ctx);
  for (int i = 0; i < 5; i++) BN_clear_free(bn[i]);
  return ok;
}

/* Checks a decoded OpenSSL key is one we sign with and wraps it. */
static int key_from_decoded(EVP_PKEY *pkey, evssh_key **out, char *sub, size_t sublen) {
  const struct key_type_info *t = type_of_pkey(pkey);
  if (!t) {
    EVP_PKEY_free(pkey);
    snprintf(sub, sublen, "unsupported key type");
    return EVSSH_EINVAL;
  }
  if (t->kind == KIND_RSA && EVP_PKEY_get_bits(pkey) < EVSSH_RSA_MIN_BITS) {
    EVP_PKEY_free(pkey);
    snprintf(sub, sublen, "RSA key smaller than %d bits refused", EVSSH_RSA_MIN_BITS);
    return EVSSH_EINVAL;
  }
  if (!pair_matches(pkey, t)) {
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    snprintf(sub, sublen, "private key does not match its public key");
    return EVSSH_EINVAL;
  }
  return key_from_pkey(pkey, t, NULL, out);
}

/* Why a decode failed, once the passphrase callback's part is known. */
static int decode_failure(const char *path, const struct pass_ctx *pc, char *err,
                          size_t errlen) {
  if (pc->asked && pc->refused && !pc->fn) {
    evssh_errorf(err, errlen, "key %s is encrypted and no passphrase callback is set", path);
    return EVSSH_EAUTH;
  }
  if (pc->asked && pc->refused) {
    evssh_errorf(err, errlen, "passphrase for key %s not given", path);
    return EVSSH_EAUTH;
  }
  if (pc->asked) {
    evssh_errorf(err, errlen, "wrong passphrase for key %s", path);
    return EVSSH_EAUTH;
  }
  evssh_errorf(err, errlen, "%s: unsupported or invalid private key format", path);
  return EVSSH_EINVAL;
}

/* Reading an encrypted PKCS#8 header for its parameters only: refusing any
   password request keeps OpenSSL from prompting on the terminal. */
static int no_password_cb(char *buf, int size, int rwflag, void *u) { return -1; }

/* Encrypted PKCS#8 names its own key derivation, and PBKDF2's iteration
   count is as unbounded as bcrypt's rounds (OpenSSL writes 2048; 2^31
   would keep the decoder busy for the better part of an hour), so it is
   capped before the passphrase is asked, like the bcrypt rounds. scrypt
   needs no cap here: OpenSSL refuses parameters needing over 32 MiB, which
   bounds its time too. Legacy PEM encryption derives with one MD5. */
static long pkcs8_iterations(const X509_ALGOR *alg) {
  long iter = 0;
  int nid = OBJ_obj2nid(alg->algorithm);
  if (nid == NID_pbes2) {
    PBE2PARAM *pbe2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
    if (pbe2 && pbe2->keyfunc && OBJ_obj2nid(pbe2->keyfunc->algorithm) == NID_id_pbkdf2) {
      PBKDF2PARAM *kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter);
      iter = kdf && kdf->iter ? ASN1_INTEGER_get(kdf->iter) : 0;
      PBKDF2PARAM_free(kdf);
    }
    PBE2PARAM_free(pbe2);
  } else if (alg->parameter && alg->parameter->type == V_ASN1_SEQUENCE) {
    /* PKCS#5 v1 / PKCS#12 PBE: salt and iterations */
    PBEPARAM *pbe = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter);
    iter = pbe && pbe->iter ? ASN1_INTEGER_get(pbe->iter) : 0;
    PBEPARAM_free(pbe);
  }
  return iter;
}

static int pkcs8_precheck(const char *path, const char *text, size_t len, char *err, size_t errlen) {
  static const char begin[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
  if (!memmem(text, len, begin, strlen(begin))) return EVSSH_OK;
  BIO *bio = BIO_new_mem_buf(text, (int)len);
  if (!bio) return EVSSH_ENOMEM;
  X509_SIG *p8 = PEM_read_bio_PKCS8(bio, NULL, no_password_cb, NULL);
  BIO_free(bio);
  if (!p8) return EVSSH_OK; /* the decoder reports what is wrong with it */
  const X509_ALGOR *alg = NULL;
  X509_SIG_get0(p8, &alg, NULL);
  long iter = alg ? pkcs8_iterations(alg) : 0;
  X509_SIG_free(p8);
  ERR_clear_error();
  if (iter < 0 || (unsigned long)iter > PBKDF2_ITER_MAX) {
    evssh_errorf(err, errlen,
                 "%s: PKCS#8 key derivation iterations %ld exceed the limit of %lu; re-encrypt the key "
                 "(ssh-keygen -p) or load it into ssh-agent",
                 path, iter, (unsigned long)PBKDF2_ITER_MAX);
    return EVSSH_EINVAL;
  }
  return EVSSH_OK;
}

/* PEM containers (PKCS#1, SEC1, PKCS#8, each possibly encrypted) are
   OpenSSL's own formats: its decoder reads them directly. */
static int load_pem(const char *path, const char *text, size_t len, struct pass_ctx *pc,
                    evssh_key **out, char *err, size_t errlen) {
  int prc = pkcs8_precheck(path, text, len, err, errlen);
  if (prc) return prc;
  BIO *bio = BIO_new_mem_buf(text, (int)len);
  if (!bio) return EVSSH_ENOMEM;
  EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, pem_passphrase_cb, pc);
  BIO_free(bio);
  if (!pkey) return decode_failure(path, pc, err, errlen);
  char sub[200] = "";
  int rc = key_from_decoded(pkey, out, sub, sizeof sub);
  if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "%s: %s", path, sub);
  return rc;
}

/* The bcrypt KDF parameters of an encrypted openssh-key-v1 header (salt
   points into o), refused when the rounds are 0 or above the cap. Runs
   before any passphrase prompt, so a file cannot make us spend unbounded
   CPU. */
static int openssh_v1_kdf(const openssh_v1 *o, const unsigned char **salt, size_t *salt_len,
                          uint32_t *rounds, char *sub, size_t sublen) {
  evssh_reader kr = reader_of(o->kdfopts, o->kdfopts_len);
  const char *sp = NULL;
  if (!str_is(o->kdf, o->kdf_len, "bcrypt")) {
    snprintf(sub, sublen, "unsupported key derivation %.*s", (int)(o->kdf_len > 32 ? 32 : o->kdf_len), o->kdf);
    return EVSSH_EINVAL;
  }
  if (evssh_read_string(&kr, &sp, salt_len) || evssh_read_u32(&kr, rounds) || kr.left != 0 ||
      *salt_len == 0) {
    snprintf(sub, sublen, "malformed bcrypt KDF options");
    return EVSSH_EINVAL;
  }
  if (*rounds == 0 || *rounds > KDF_ROUNDS_MAX) {
    snprintf(sub, sublen,
             "bcrypt KDF rounds %u exceed the limit of %u%s; re-encrypt the key with ssh-keygen -p -a 16 "
             "or load it into ssh-agent",
             (unsigned)*rounds, (unsigned)KDF_ROUNDS_MAX, *rounds == 0 ? " (0 is not valid)" : "");
    return EVSSH_EINVAL;
  }
  *salt = (const unsigned char *)sp;
  return EVSSH_OK;
}

/* Decodes an encrypted openssh-key-v1 file and checks its header up to the
   KDF (messages name path). On success *raw (wipe it) holds the file and
   o, salt and rounds point into it. */
static int openssh_v1_open(const char *path, const char *text, size_t len, unsigned char **raw, size_t *raw_len,
                           openssh_v1 *o, const unsigned char **salt, size_t *salt_len, uint32_t *rounds, char *err,
                           size_t errlen) {
  int rc = openssh_v1_decode(text, len, raw, raw_len);
  if (rc) {
    evssh_errorf(err, errlen, "%s: malformed openssh-key-v1 armour", path);
    return rc == EVSSH_ENOMEM ? rc : EVSSH_EINVAL;
  }
  char sub[300] = "";
  rc = openssh_v1_split(*raw, *raw_len, o, sub, sizeof sub);
  if (!rc) rc = openssh_v1_kdf(o, salt, salt_len, rounds, sub, sizeof sub);
  if (rc) {
    evssh_errorf(err, errlen, "%s: %s", path, sub);
    wipe_free(*raw, *raw_len);
    *raw = NULL;
  }
  return rc;
}

/* The ciphers ssh-keygen -Z can encrypt a key file with. The private
   section is padded to the cipher's block size; the AEAD ones put their
   16-byte tag after the section. Key and IV both come out of bcrypt-pbkdf. */
enum key_cipher_mode { KC_PLAIN, KC_GCM, KC_CHACHAPOLY };

struct key_cipher {
  const char *name;
  const char *evp;      /* OpenSSL cipher (NULL: chacha20-poly1305, built below) */
  enum key_cipher_mode mode;
  size_t key_len, iv_len, block, tag_len;
};

static const struct key_cipher key_ciphers[] = {
  {"aes256-ctr", "AES-256-CTR", KC_PLAIN, 32, 16, 16, 0},
  {"aes192-ctr", "AES-192-CTR", KC_PLAIN, 24, 16, 16, 0},
  {"aes128-ctr", "AES-128-CTR", KC_PLAIN, 16, 16, 16, 0},
  {"aes256-cbc", "AES-256-CBC", KC_PLAIN, 32, 16, 16, 0},
  {"aes192-cbc", "AES-192-CBC", KC_PLAIN, 24, 16, 16, 0},
  {"aes128-cbc", "AES-128-CBC", KC_PLAIN, 16, 16, 16, 0},
  {"3des-cbc", "DES-EDE3-CBC", KC_PLAIN, 24, 8, 8, 0},
  {"aes256-gcm@openssh.com", "AES-256-GCM", KC_GCM, 32, 12, 16, 16},
  {"aes128-gcm@openssh.com", "AES-128-GCM", KC_GCM, 16, 12, 16, 16},
  {"chacha20-poly1305@openssh.com", NULL, KC_CHACHAPOLY, 64, 0, 8, 16},
};

static const struct key_cipher *key_cipher_by_name(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof key_ciphers / sizeof key_ciphers[0]; i++)
    if (str_is(name, len, key_ciphers[i].name)) return &key_ciphers[i];
  return NULL;
}

static int evp_crypt(const char *name, const unsigned char *key, const unsigned char *iv, const unsigned char *in,
                     size_t len, unsigned char *out) {
  const EVP_CIPHER *c = EVP_get_cipherbyname(name);
  EVP_CIPHER_CTX *ctx = c ? EVP_CIPHER_CTX_new() : NULL;
  int outl = 0, finl = 0;
  bool ok = ctx && EVP_DecryptInit_ex(ctx, c, NULL, key, iv) && EVP_CIPHER_CTX_set_padding(ctx, 0) &&
            EVP_DecryptUpdate(ctx, out, &outl, in, (int)len) && EVP_DecryptFinal_ex(ctx, out + outl, &finl);
  EVP_CIPHER_CTX_free(ctx);
  return ok ? EVSSH_OK : EVSSH_ENOMEM;
}

/* OpenSSH's chacha20-poly1305 with sequence number 0 and no length
   header: the Poly1305 key is the first 32 bytes of the keystream of
   block 0 under the first half of the 64-byte key, the section is
   encrypted from block 1 on. OpenSSL's 16-byte ChaCha20 IV (32-bit counter,
   96-bit nonce) lays block n with nonce 0 out the same way as the original
   64/64-bit split. */
static int chachapoly_open(const unsigned char *key, const unsigned char *in, size_t len, const unsigned char *tag,
                           unsigned char *out) {
  unsigned char iv[16] = {0}, poly_key[32] = {0}, mac[16];
  int rc = evp_crypt("ChaCha20", key, iv, poly_key, sizeof poly_key, poly_key);
  EVP_MAC *m = rc ? NULL : EVP_MAC_fetch(NULL, "POLY1305", NULL);
  EVP_MAC_CTX *mctx = m ? EVP_MAC_CTX_new(m) : NULL;
  size_t mac_len = 0;
  if (!mctx || !EVP_MAC_init(mctx, poly_key, sizeof poly_key, NULL) || !EVP_MAC_update(mctx, in, len) ||
      !EVP_MAC_final(mctx, mac, &mac_len, sizeof mac) || mac_len != sizeof mac)
    rc = EVSSH_ENOMEM;
  else if (CRYPTO_memcmp(mac, tag, sizeof mac) != 0)
    rc = EVSSH_EAUTH;
  EVP_MAC_CTX_free(mctx);
  EVP_MAC_free(m);
  OPENSSL_cleanse(poly_key, sizeof poly_key);
  if (rc) return rc;
  iv[0] = 1;
  return evp_crypt("ChaCha20", key, iv, in, len, out);
}

static int gcm_open(const struct key_cipher *kc, const unsigned char *key, const unsigned char *iv,
                    const unsigned char *in, size_t len, const unsigned char *tag, unsigned char *out) {
  const EVP_CIPHER *c = EVP_get_cipherbyname(kc->evp);
  EVP_CIPHER_CTX *ctx = c ? EVP_CIPHER_CTX_new() : NULL;
  int outl = 0, finl = 0;
  if (!ctx || !EVP_DecryptInit_ex(ctx, c, NULL, NULL, NULL) ||
      !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)kc->iv_len, NULL) ||
      !EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) || !EVP_DecryptUpdate(ctx, out, &outl, in, (int)len) ||
      !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)kc->tag_len, (void *)tag)) {
    EVP_CIPHER_CTX_free(ctx);
    return EVSSH_ENOMEM;
  }
  int ok = EVP_DecryptFinal_ex(ctx, out + outl, &finl);
  EVP_CIPHER_CTX_free(ctx);
  return ok > 0 ? EVSSH_OK : EVSSH_EAUTH;
}

/* Decrypts the private section: EVSSH_EAUTH when an AEAD tag does not
   verify (a wrong passphrase, or a damaged file). */
static int key_cipher_open(const struct key_cipher *kc, const unsigned char *keyiv, const openssh_v1 *o,
                           unsigned char *out) {
  const unsigned char *in = (const unsigned char *)o->priv;
  switch (kc->mode) {
  case KC_GCM: return gcm_open(kc, keyiv, keyiv + kc->key_len, in, o->priv_len, o->tag, out);
  case KC_CHACHAPOLY: return chachapoly_open(keyiv, in, o->priv_len, o->tag, out);
  default: return evp_crypt(kc->evp, keyiv, keyiv + kc->key_len, in, o->priv_len, out);
  }
}

/* Encrypted openssh-key-v1, every key type and every cipher OpenSSH
   writes: bcrypt-pbkdf derives the cipher key and IV from the passphrase,
   the private section is decrypted with OpenSSL, and the check ints (or
   the AEAD tag) tell a wrong passphrase from a damaged file. Ours rather
   than libssh's: libssh 0.10 cannot hand RSA keys back out, crashes on the
   AEAD ciphers, leaks on a damaged private section and calls every failure
   a wrong passphrase. */
static int load_openssh_encrypted(const char *path, const char *text, size_t len, struct pass_ctx *pc,
                                  evssh_key **out, char *err, size_t errlen) {
  unsigned char *raw = NULL, *plain = NULL;
  size_t raw_len = 0;
  openssh_v1 o;
  const unsigned char *salt = NULL;
  size_t salt_len = 0;
  uint32_t rounds = 0;
  int rc = openssh_v1_open(path, text, len, &raw, &raw_len, &o, &salt, &salt_len, &rounds, err, errlen);
  if (rc) return rc;
  char sub[300] = "";
  unsigned char keyiv[64 + 16];
  const struct key_cipher *kc = key_cipher_by_name(o.cipher, o.cipher_len);
  if (!kc) {
    snprintf(sub, sizeof sub, "unsupported key cipher %.*s", (int)(o.cipher_len > 40 ? 40 : o.cipher_len), o.cipher);
    rc = EVSSH_EINVAL;
  } else if (o.priv_len < 8) {
    /* the two check words come first */
    snprintf(sub, sizeof sub, "encrypted private section too short (%zu bytes)", o.priv_len);
    rc = EVSSH_EINVAL;
  } else if (o.priv_len % kc->block != 0 || o.tag_len != kc->tag_len) {
    snprintf(sub, sizeof sub, "encrypted private section has a bad length");
    rc = EVSSH_EINVAL;
  }
  char pass[PASSPHRASE_MAX];
  if (rc == EVSSH_OK && cached_prompt(NULL, pass, sizeof pass, 0, 0, pc) != 0) {
    rc = decode_failure(path, pc, err, errlen);
    sub[0] = 0;
  } else if (rc == EVSSH_OK) {
    rc = evssh_bcrypt_pbkdf(pass, strlen(pass), salt, salt_len, keyiv, kc->key_len + kc->iv_len, rounds);
    OPENSSL_cleanse(pass, sizeof pass);
    plain = rc ? NULL : malloc(o.priv_len);
    if (!rc && !plain) rc = EVSSH_ENOMEM;
    if (!rc) rc = key_cipher_open(kc, keyiv, &o, plain);
    if (rc == EVSSH_EAUTH || (!rc && get_u32(plain) != get_u32(plain + 4))) {
      /* the tag or the check ints disagree: the passphrase made a different key */
      evssh_errorf(err, errlen, "wrong passphrase for key %s", path);
      rc = EVSSH_EAUTH;
    } else if (!rc) {
      rc = openssh_v1_parse_private(plain, o.priv_len, o.pub, o.pub_len, out, sub, sizeof sub);
    }
    OPENSSL_cleanse(keyiv, sizeof keyiv);
  }
  if (rc == EVSSH_EINVAL && sub[0]) evssh_errorf(err, errlen, "%s: %s", path, sub);
  if (plain) wipe_free(plain, o.priv_len);
  wipe_free(raw, raw_len);
  return rc;
}

/* text: NUL-terminated, len bytes before the NUL; path names the key in
   prompts and messages */
static int load_private_text(const char *path, const char *text, size_t len, evssh_passphrase_fn fn, void *ud,
                             evssh_key **out, char *err, size_t errlen) {
  if (len == 0 || memchr(text, 0, len)) {
    evssh_errorf(err, errlen, "%s: unsupported or invalid private key format", path);
    return EVSSH_EINVAL;
  }
  int rc;
  enum openssh_kind kind = openssh_v1_classify(text, len);
  if (kind == OPENSSH_PLAIN) {
    char sub[200] = "";
    rc = evssh_key_parse_openssh_v1(text, len, out, sub, sizeof sub);
    if (rc == EVSSH_EINVAL) evssh_errorf(err, errlen, "%s: %s", path, sub);
  } else {
    struct pass_ctx *pc = calloc(1, sizeof *pc);
    if (!pc) {
      rc = EVSSH_ENOMEM;
    } else {
      pc->fn = fn;
      pc->ud = ud;
      pc->path = path;
      if (kind == OPENSSH_ENCRYPTED)
        rc = load_openssh_encrypted(path, text, len, pc, out, err, errlen);
      else
        rc = load_pem(path, text, len, pc, out, err, errlen);
      wipe_free(pc, sizeof *pc);
    }
  }
  /* decoder failures must not linger for the next OpenSSL user to misread */
  if (rc) ERR_clear_error();
  return rc;
}

int evssh_key_load_private(const char *path, evssh_passphrase_fn fn, void *ud,
                           evssh_key **out, char *err, size_t errlen) {
  if (!path || !out) return EVSSH_EINVAL;
  char *text = NULL;
  size_t len = 0;
  int rc = keys_read_file(path, &text, &len, err, errlen);
  if (rc) return rc;
  rc = load_private_text(path, text, len, fn, ud, out, err, errlen);
  wipe_free(text, len + 1);
  return rc;
}

int evssh_key_load_private_text(const char *label, const char *text, size_t len, evssh_passphrase_fn fn,
                                void *ud, evssh_key **out, char *err, size_t errlen) {
  if (!label || (!text && len) || !out || len > KEYFILE_MAX) return EVSSH_EINVAL;
  char *copy = malloc(len + 1);
  if (!copy) return EVSSH_ENOMEM;
  if (len) memcpy(copy, text, len);
  copy[len] = 0;
  int rc = load_private_text(label, copy, len, fn, ud, out, err, errlen);
  wipe_free(copy, len + 1);
  return rc;
}

/* --------------------------------------------------------------- accessors */

int evssh_key_public_blob(const evssh_key *k, const unsigned char **blob, size_t *len) {
  if (!k || !blob || !len) return EVSSH_EINVAL;
  *blob = k->blob;
  *len = k->blob_len;
  return EVSSH_OK;
}

const char *evssh_key_type(const evssh_key *k) { return k ? k->type->name : NULL; }
const char *evssh_key_comment(const evssh_key *k) { return k && k->comment ? k->comment : ""; }
bool evssh_key_can_sign(const evssh_key *k) { return k && k->pkey; }

/* --------------------------------------------------- signature algorithms */

static const char *const rsa_sig_algs[] = {"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"};

/* An RSA key or certificate: the first algorithm of the accepted list that
   an RSA key of this kind can use and whose signature algorithm the server
   lists (OpenSSH's key_sig_algorithm); candidates are the plain names for a
   plain key, the -cert-v01 names for a certificate. */
static const char *rsa_alg_choice(bool cert, const char *server_sig_algs, const char *accepted) {
  const char *p = accepted;
  while (*p) {
    size_t n = strcspn(p, ",");
    for (size_t i = 0; i < sizeof rsa_sig_algs / sizeof rsa_sig_algs[0]; i++) {
      const char *alg = cert ? evssh_cert_alg_for("ssh-rsa-cert-v01@openssh.com", rsa_sig_algs[i]) : rsa_sig_algs[i];
      if (str_is(p, n, alg) && namelist_contains(server_sig_algs, rsa_sig_algs[i])) return alg;
    }
    p += n;
    if (*p == ',') p++;
  }
  return NULL;
}

const char *evssh_sig_alg_for_type(const char *key_type, const char *server_sig_algs,
                                   const char *accepted) {
  if (!key_type) return NULL;
  if (!accepted) accepted = evssh_hostkey_default_algs();   /* OpenSSH's, certificates first */
  bool cert = evssh_cert_is_cert_name(key_type);
  const char *plain = key_type;
  if (cert) {
    /* a certificate blob type is also the algorithm name of its key, bar
       RSA's SHA-2 variants */
    plain = evssh_cert_alg_sig_alg(key_type);
    if (!plain || strcmp(evssh_cert_alg_blob_type(key_type), key_type) != 0) return NULL;
  }
  const struct key_type_info *t = type_by_name(plain, strlen(plain));
  if (!t) return NULL;
  if (t->kind != KIND_RSA) return namelist_contains(accepted, key_type) ? key_type : NULL;

  if (!server_sig_algs) {
    const char *sha1 = cert ? "ssh-rsa-cert-v01@openssh.com" : "ssh-rsa";
    const char *sha512 = cert ? "rsa-sha2-512-cert-v01@openssh.com" : "rsa-sha2-512";
    if (namelist_contains(accepted, sha1)) return sha1;
    return namelist_contains(accepted, sha512) ? sha512 : NULL;
  }
  return rsa_alg_choice(cert, server_sig_algs, accepted);
}

const char *evssh_key_sig_alg(const evssh_key *k, const char *server_sig_algs,
                              const char *accepted) {
  return k ? evssh_sig_alg_for_type(k->type->name, server_sig_algs, accepted) : NULL;
}

const char *evssh_key_cert_sig_alg(const evssh_key *k, const char *server_sig_algs, const char *accepted) {
  return k && k->cert ? evssh_sig_alg_for_type(k->cert->type, server_sig_algs, accepted) : NULL;
}

/* ---------------------------------------------------------------- signing */

static const EVP_MD *sign_md(const struct key_type_info *t, const char *alg) {
  switch (t->kind) {
  case KIND_ED25519: return NULL;
  case KIND_ECDSA:
    if (t->nid == NID_X9_62_prime256v1) return evssh_ossl_md("SHA256");
    if (t->nid == NID_secp384r1) return evssh_ossl_md("SHA384");
    return evssh_ossl_md("SHA512");
  default:
    if (strcmp(alg, "rsa-sha2-512") == 0) return evssh_ossl_md("SHA512");
    if (strcmp(alg, "rsa-sha2-256") == 0) return evssh_ossl_md("SHA256");
    return evssh_ossl_md("SHA1");
  }
}

static bool alg_fits_key(const struct key_type_info *t, const char *alg) {
  if (t->kind != KIND_RSA) return strcmp(alg, t->name) == 0;
  for (size_t i = 0; i < sizeof rsa_sig_algs / sizeof rsa_sig_algs[0]; i++)
    if (strcmp(alg, rsa_sig_algs[i]) == 0) return true;
  return false;
}

/* DER ECDSA-Sig-Value -> SSH's string(mpint r || mpint s) */
static int ecdsa_der_to_ssh(const unsigned char *der, size_t der_len, evssh_buf *out) {
  const unsigned char *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  if (!es) return EVSSH_EINVAL;
  const BIGNUM *r, *s;
  ECDSA_SIG_get0(es, &r, &s);
  evssh_buf inner = EVSSH_BUF_INIT;
  int rc = buf_put_bignum(&inner, r);
  if (!rc) rc = buf_put_bignum(&inner, s);
  if (!rc) rc = evssh_buf_put_string(out, buf_ptr(&inner), buf_avail(&inner));
  buf_release(&inner);
  ECDSA_SIG_free(es);
  return rc;
}

int evssh_key_sign(const evssh_key *k, const char *alg, const unsigned char *data, size_t len,
                   evssh_buf *sig_blob) {
  if (!k || !k->pkey || !alg || !sig_blob || (!data && len)) return EVSSH_EINVAL;
  if (evssh_cert_is_cert_name(alg)) {
    /* a certified key signs as the plain key: the certificate algorithm only
       names what the request carries */
    const char *blob_type = evssh_cert_alg_blob_type(alg);
    const char *plain = evssh_cert_alg_sig_alg(alg);
    if (!blob_type || !plain) return EVSSH_EINVAL;
    if (strcmp(evssh_cert_alg_sig_alg(blob_type), k->type->name) != 0) return EVSSH_EINVAL;
    alg = plain;
  }
  if (!alg_fits_key(k->type, alg)) return EVSSH_EINVAL;
  const EVP_MD *md = sign_md(k->type, alg);
  EVP_MD_CTX *mctx = EVP_MD_CTX_new();
  if (!mctx) return EVSSH_ENOMEM;
  unsigned char *sig = NULL;
  size_t sig_len = 0;
  int rc = EVSSH_EINVAL;
  if (EVP_DigestSignInit(mctx, NULL, md, NULL, k->pkey) != 1 ||
      EVP_DigestSign(mctx, NULL, &sig_len, data, len) != 1)
    goto out;
  sig = malloc(sig_len ? sig_len : 1);
  if (!sig) {
    rc = EVSSH_ENOMEM;
    goto out;
  }
  if (EVP_DigestSign(mctx, sig, &sig_len, data, len) != 1) goto out;
  size_t mark = sig_blob->len;
  rc = evssh_buf_put_cstring(sig_blob, alg);
  if (!rc) {
    if (k->type->kind == KIND_ECDSA)
      rc = ecdsa_der_to_ssh(sig, sig_len, sig_blob);
    else if (k->type->kind == KIND_RSA && sig_len != (size_t)EVP_PKEY_get_size(k->pkey))
      rc = EVSSH_EINVAL; /* SSH wants the full modulus length */
    else
      rc = evssh_buf_put_string(sig_blob, sig, sig_len);
  }
  if (rc) sig_blob->len = mark;
out:
  if (rc) ERR_clear_error();
  free(sig);
  EVP_MD_CTX_free(mctx);
  return rc;
}

int evssh_key_dup(const evssh_key *k, evssh_key **out) {
  if (!k || !out || k->cert) return EVSSH_EINVAL;
  evssh_key *d = calloc(1, sizeof *d);
  if (!d) return EVSSH_ENOMEM;
  d->type = k->type;
  d->blob_len = k->blob_len;
  if (!(d->blob = malloc(k->blob_len ? k->blob_len : 1)) || (k->comment && !(d->comment = strdup(k->comment))) ||
      (k->pkey && !EVP_PKEY_up_ref(k->pkey))) {
    free(d->blob);
    free(d->comment);
    free(d);
    return EVSSH_ENOMEM;
  }
  memcpy(d->blob, k->blob, k->blob_len);
  d->pkey = k->pkey;
  *out = d;
  return EVSSH_OK;
}
