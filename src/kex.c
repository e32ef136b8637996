/* kex.c owns the client side of every key exchange method we offer (the
 * post-quantum hybrids mlkem768x25519-sha256 and sntrup761x25519-sha512,
 * curve25519-sha256, ecdh-sha2-nistp256/384/521, the RFC 3526 MODP groups
 * 14/16/18 and diffie-hellman-group-exchange-sha256): it makes the ephemeral
 * keys, builds the client's messages, checks the server's values, derives
 * the shared secret K and the exchange hash H (RFC 4253 s8), and extends
 * keys per RFC 4253 s7.2. Classical arithmetic goes through OpenSSL EVP; the
 * KEMs are ours (mlkem.c, sntrup761.c). Host key signatures on H are checked
 * elsewhere (hostkey.c). */
#include "kex.h"
#include "errors.h"
#include "ossl.h"
#include "mlkem.h"
#include "sntrup761.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the hybrids: a KEM public key and an X25519 key out, a KEM ciphertext
   and an X25519 key back (draft-ietf-sshm-mlkem-hybrid-kex, RFC 9941) */
enum kex_family { FAM_X25519, FAM_ECDH, FAM_DH, FAM_GEX, FAM_MLKEM_X25519, FAM_SNTRUP_X25519 };

typedef struct kex_method {
  evssh_kex_alg alg;
  enum kex_family family;
  const char *group; /* OpenSSL group name (EC curve or named FFDH group) */
  int nid;           /* EC curve NID, to compute a fixed key's public point */
  size_t coord_len;  /* ECDH: bytes of one field element */
} kex_method;

static const kex_method methods[] = {
  {{"mlkem768x25519-sha256", "SHA256", true}, FAM_MLKEM_X25519, NULL, 0, 32},
  {{"sntrup761x25519-sha512", "SHA512", true}, FAM_SNTRUP_X25519, NULL, 0, 32},
  {{"sntrup761x25519-sha512@openssh.com", "SHA512", true}, FAM_SNTRUP_X25519, NULL, 0, 32},
  {{"curve25519-sha256", "SHA256", true}, FAM_X25519, NULL, 0, 32},
  {{"curve25519-sha256@libssh.org", "SHA256", true}, FAM_X25519, NULL, 0, 32},
  {{"ecdh-sha2-nistp256", "SHA256", true}, FAM_ECDH, "prime256v1", NID_X9_62_prime256v1, 32},
  {{"ecdh-sha2-nistp384", "SHA384", true}, FAM_ECDH, "secp384r1", NID_secp384r1, 48},
  {{"ecdh-sha2-nistp521", "SHA512", true}, FAM_ECDH, "secp521r1", NID_secp521r1, 66},
  {{"diffie-hellman-group-exchange-sha256", "SHA256", true}, FAM_GEX, NULL, 0, 0},
  {{"diffie-hellman-group16-sha512", "SHA512", true}, FAM_DH, "modp_4096", 0, 0},
  {{"diffie-hellman-group18-sha512", "SHA512", true}, FAM_DH, "modp_8192", 0, 0},
  {{"diffie-hellman-group14-sha256", "SHA256", true}, FAM_DH, "modp_2048", 0, 0},
};

/* OpenSSH 10.5's client order */
#define KEX_LIST                                                                        \
  "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"     \
  "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384," \
  "ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512," \
  "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"

/* Group-exchange sizes. n=3072 matches the strength of a 128-bit cipher
   (NIST SP 800-57); the transport may raise it via evssh_kex_set_gex_sizes. */
#define GEX_MIN 2048u
#define GEX_N 3072u
#define GEX_MAX 8192u

/* Private exponent bits for finite-field DH: twice the 256-bit security of
   the strongest cipher we negotiate, which also covers the 200-bit strength
   of the 8192-bit group. */
#define DH_PRIV_BITS 512

enum kex_state { ST_NEW, ST_WAIT_GROUP, ST_WAIT_REPLY, ST_DONE, ST_FAILED };

struct evssh_kex {
  const kex_method *m;
  const EVP_MD *md;
  enum kex_state state;
  char *v_c, *v_s;
  unsigned char *i_c, *i_s;
  size_t i_c_len, i_s_len;
  unsigned char *fixed_priv; /* test hook: replaces the random private value */
  size_t fixed_priv_len;
  EVP_PKEY *eph;             /* our ephemeral key pair (X25519 in the hybrids) */
  unsigned char *kem_secret; /* hybrids: the KEM's decapsulation key */
  size_t kem_secret_len;
  unsigned char *q_c;        /* X25519/ECDH public value (hybrids: KEM key || X25519) as sent */
  size_t q_c_len;
  BIGNUM *p, *g, *e;         /* finite-field group and our public value */
  uint32_t gex_min, gex_n, gex_max;
  unsigned char *hostkey, *sig;
  size_t hostkey_len, sig_len;
  unsigned char *k_wire;     /* K as mpint, length prefix included */
  size_t k_wire_len;
  unsigned char h[EVP_MAX_MD_SIZE];
  size_t h_len;
};

const evssh_kex_alg *evssh_kex_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].alg.name, name) == 0) return &methods[i].alg;
  return NULL;
}

const char *evssh_kex_default_list(void) { return KEX_LIST; }
const char *evssh_kex_supported_list(void) { return KEX_LIST; }

bool kex_method_is_post_quantum(const char *name) {
  for (size_t i = 0; name && i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].alg.name, name) == 0)
      return methods[i].family == FAM_MLKEM_X25519 || methods[i].family == FAM_SNTRUP_X25519;
  return false;
}

static const kex_method *method_of(const evssh_kex_alg *alg) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (alg == &methods[i].alg || (alg && alg->name && strcmp(alg->name, methods[i].alg.name) == 0))
      return &methods[i];
  return NULL;
}

static unsigned char *memdup(const void *p, size_t n) {
  unsigned char *c = malloc(n ? n : 1);
  if (c && n) memcpy(c, p, n);
  return c;
}

static void free_secret(unsigned char *p, size_t n) {
  if (!p) return;
  OPENSSL_cleanse(p, n);
  free(p);
}

int evssh_kex_new(const evssh_kex_alg *alg, const evssh_kex_input *in, evssh_kex **out) {
  const kex_method *m = method_of(alg);
  if (!m || !in || !out || !in->client_version || !in->server_version ||
      (!in->client_kexinit && in->client_kexinit_len) || (!in->server_kexinit && in->server_kexinit_len))
    return EVSSH_EINVAL;
  evssh_kex *k = calloc(1, sizeof *k);
  if (!k) return EVSSH_ENOMEM;
  k->m = m;
  k->gex_min = GEX_MIN;
  k->gex_n = GEX_N;
  k->gex_max = GEX_MAX;
  k->md = evssh_ossl_md(m->alg.digest);
  k->v_c = strdup(in->client_version);
  k->v_s = strdup(in->server_version);
  k->i_c = memdup(in->client_kexinit, in->client_kexinit_len);
  k->i_s = memdup(in->server_kexinit, in->server_kexinit_len);
  k->i_c_len = in->client_kexinit_len;
  k->i_s_len = in->server_kexinit_len;
  if (!k->md || !k->v_c || !k->v_s || !k->i_c || !k->i_s) {
    evssh_kex_free(k);
    return EVSSH_ENOMEM;
  }
  *out = k;
  return EVSSH_OK;
}

void evssh_kex_free(evssh_kex *k) {
  if (!k) return;
  free(k->v_c);
  free(k->v_s);
  free(k->i_c);
  free(k->i_s);
  free_secret(k->fixed_priv, k->fixed_priv_len);
  EVP_PKEY_free(k->eph);
  free_secret(k->kem_secret, k->kem_secret_len);
  free(k->q_c);
  BN_free(k->p);
  BN_free(k->g);
  BN_free(k->e);
  free(k->hostkey);
  free(k->sig);
  free_secret(k->k_wire, k->k_wire_len);
  OPENSSL_cleanse(k->h, sizeof k->h);
  free(k);
}

int evssh_kex_set_private(evssh_kex *k, const unsigned char *priv, size_t len) {
  if (!k || !priv || len == 0 || k->state != ST_NEW) return EVSSH_EINVAL;
  if (k->m->family == FAM_X25519 && len != 32) return EVSSH_EINVAL;
  if (k->m->family == FAM_MLKEM_X25519 && len != MLKEM768_SEED_BYTES + 32) return EVSSH_EINVAL;
  if (k->m->family == FAM_SNTRUP_X25519 && len <= 32) return EVSSH_EINVAL;
  unsigned char *c = memdup(priv, len);
  if (!c) return EVSSH_ENOMEM;
  free_secret(k->fixed_priv, k->fixed_priv_len);
  k->fixed_priv = c;
  k->fixed_priv_len = len;
  return EVSSH_OK;
}

int evssh_kex_set_gex_sizes(evssh_kex *k, uint32_t min, uint32_t n, uint32_t max) {
  if (!k || k->state != ST_NEW || min < 1024 || min > n || n > max || max > 16384)
    return EVSSH_EINVAL;
  k->gex_min = min;
  k->gex_n = n;
  k->gex_max = max;
  return EVSSH_OK;
}

/* ------------------------------------------------------------ key making */

/* The X25519 key pair; its public value goes at q_c + prefix (the KEM key
   comes first in the hybrids). A fixed private key is the hook's last 32
   bytes. */
static int x25519_keygen(evssh_kex *k, size_t prefix) {
  if (k->fixed_priv)
    k->eph = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k->fixed_priv + k->fixed_priv_len - 32, 32);
  else
    k->eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
  if (!k->eph) return EVSSH_ENOMEM;
  size_t n = 32;
  if (!k->q_c && !(k->q_c = malloc(prefix + 32))) return EVSSH_ENOMEM;
  if (EVP_PKEY_get_raw_public_key(k->eph, k->q_c + prefix, &n) != 1 || n != 32) return EVSSH_ENOMEM;
  k->q_c_len = prefix + 32;
  return EVSSH_OK;
}

/* Test hook for sntrup761: random bytes from SHAKE256(seed), in order.
   OpenSSL 3.0 squeezes once, so the whole stream is made up front; key
   generation takes 4p bytes per candidate g and rarely needs more than a
   few. */
typedef struct seeded_stream {
  unsigned char *buf;
  size_t len, pos;
} seeded_stream;

static int seeded_take(void *ctx, unsigned char *out, size_t len) {
  seeded_stream *st = ctx;
  if (st->pos + len > st->len) return -1;
  memcpy(out, st->buf + st->pos, len);
  st->pos += len;
  return 0;
}

/* The KEM key pair of a hybrid: q_c = public key || (room for X25519) */
static int kem_keygen(evssh_kex *k) {
  bool mlkem = k->m->family == FAM_MLKEM_X25519;
  size_t pk_len = mlkem ? MLKEM768_EK_BYTES : SNTRUP761_PK_BYTES;
  k->kem_secret_len = mlkem ? MLKEM768_DK_BYTES : SNTRUP761_SK_BYTES;
  k->kem_secret = malloc(k->kem_secret_len);
  k->q_c = malloc(pk_len + 32);
  if (!k->kem_secret || !k->q_c) return EVSSH_ENOMEM;
  int rc;
  if (mlkem) {
    rc = k->fixed_priv ? mlkem768_keygen_derand(k->fixed_priv, k->q_c, k->kem_secret)
                       : mlkem768_keygen(k->q_c, k->kem_secret);
  } else if (k->fixed_priv) {
    seeded_stream st = {malloc(1 << 16), 1 << 16, 0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rc = EVSSH_ENOMEM;
    if (st.buf && ctx && EVP_DigestInit_ex(ctx, evssh_ossl_md("SHAKE256"), NULL) == 1 &&
        EVP_DigestUpdate(ctx, k->fixed_priv, k->fixed_priv_len - 32) == 1 &&
        EVP_DigestFinalXOF(ctx, st.buf, st.len) == 1)
      rc = sntrup761_keygen(k->q_c, k->kem_secret, seeded_take, &st);
    EVP_MD_CTX_free(ctx);
    free_secret(st.buf, st.len);
  } else {
    rc = sntrup761_keygen(k->q_c, k->kem_secret, NULL, NULL);
  }
  if (rc) return rc;
  return x25519_keygen(k, pk_len);
}

/* A fixed EC scalar needs its public point too: OpenSSL 3.0 does not derive
   it on import. */
static int ec_fixed_key(evssh_kex *k, EVP_PKEY **out) {
  int rc = EVSSH_EINVAL;
  EC_GROUP *grp = EC_GROUP_new_by_curve_name(k->m->nid);
  BIGNUM *d = BN_bin2bn(k->fixed_priv, (int)k->fixed_priv_len, NULL);
  EC_POINT *pt = NULL;
  unsigned char pub[1 + 2 * 66];
  size_t publen = 0;
  OSSL_PARAM_BLD *bld = NULL;
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  if (!grp || !d) { rc = EVSSH_ENOMEM; goto done; }
  if (BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(grp)) >= 0) goto done;
  pt = EC_POINT_new(grp);
  if (!pt || !EC_POINT_mul(grp, pt, d, NULL, NULL, NULL)) { rc = EVSSH_ENOMEM; goto done; }
  publen = EC_POINT_point2oct(grp, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof pub, NULL);
  if (publen == 0) goto done;
  bld = OSSL_PARAM_BLD_new();
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, k->m->group, 0) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen) ||
      !(params = OSSL_PARAM_BLD_to_param(bld))) {
    rc = EVSSH_ENOMEM;
    goto done;
  }
  ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) != 1)
    goto done;
  rc = EVSSH_OK;
done:
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  EC_POINT_free(pt);
  BN_clear_free(d);
  EC_GROUP_free(grp);
  return rc;
}

static int ecdh_keygen(evssh_kex *k) {
  int rc;
  if (k->fixed_priv) {
    if ((rc = ec_fixed_key(k, &k->eph))) return rc;
  } else {
    k->eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", k->m->group);
    if (!k->eph) return EVSSH_ENOMEM;
  }
  size_t n = 0;
  if (EVP_PKEY_get_octet_string_param(k->eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0, &n) != 1 ||
      n != 1 + 2 * k->m->coord_len)
    return EVSSH_ENOMEM;
  k->q_c = malloc(n);
  if (!k->q_c ||
      EVP_PKEY_get_octet_string_param(k->eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, k->q_c, n, &n) != 1)
    return EVSSH_ENOMEM;
  k->q_c_len = n;
  return k->q_c[0] == 4 ? EVSSH_OK : EVSSH_ENOMEM;
}

/* Builds a DH key object from p, g and optionally pub/priv. */
static int dh_fromdata(const BIGNUM *p, const BIGNUM *g, const BIGNUM *pub, const BIGNUM *priv,
                       int selection, EVP_PKEY **out) {
  int rc = EVSSH_ENOMEM;
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_P, p) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_G, g) ||
      (pub && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, pub)) ||
      (priv && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv)) ||
      !(params = OSSL_PARAM_BLD_to_param(bld)))
    goto done;
  ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1) goto done;
  rc = EVSSH_EPROTO;
  if (EVP_PKEY_fromdata(ctx, out, selection, params) != 1) goto done;
  rc = EVSSH_OK;
done:
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return rc;
}

/* p and g of a named RFC 3526 group, as OpenSSL carries them. */
static int dh_named_group(const char *name, BIGNUM **p, BIGNUM **g) {
  int rc = EVSSH_ENOMEM;
  EVP_PKEY *params = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
  OSSL_PARAM req[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
                      OSSL_PARAM_END};
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
      EVP_PKEY_fromdata(ctx, &params, EVP_PKEY_KEY_PARAMETERS, req) == 1 &&
      EVP_PKEY_get_bn_param(params, OSSL_PKEY_PARAM_FFC_P, p) == 1 &&
      EVP_PKEY_get_bn_param(params, OSSL_PKEY_PARAM_FFC_G, g) == 1)
    rc = EVSSH_OK;
  EVP_PKEY_free(params);
  EVP_PKEY_CTX_free(ctx);
  return rc;
}

/* Ephemeral DH key over k->p, k->g; sets k->e. */
static int dh_keygen(evssh_kex *k) {
  int rc = EVSSH_ENOMEM;
  BIGNUM *x = NULL, *pub = NULL, *pm1 = NULL;
  BN_CTX *bnctx = NULL;
  EVP_PKEY *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  if (k->fixed_priv) {
    /* test hook: e = g^x mod p computed here, the pair imported as is */
    x = BN_bin2bn(k->fixed_priv, (int)k->fixed_priv_len, NULL);
    pub = BN_new();
    pm1 = BN_dup(k->p);
    bnctx = BN_CTX_new();
    if (!x || !pub || !pm1 || !bnctx || !BN_sub_word(pm1, 1)) goto done;
    rc = EVSSH_EINVAL;
    if (BN_cmp(x, BN_value_one()) <= 0 || BN_cmp(x, pm1) >= 0) goto done;
    BN_set_flags(x, BN_FLG_CONSTTIME);
    rc = EVSSH_ENOMEM;
    if (!BN_mod_exp_mont_consttime(pub, k->g, x, k->p, bnctx, NULL)) goto done;
    if ((rc = dh_fromdata(k->p, k->g, pub, x, EVP_PKEY_KEYPAIR, &k->eph))) goto done;
  } else {
    int bits = BN_num_bits(k->p) - 1;
    int priv_len = bits < DH_PRIV_BITS ? bits : DH_PRIV_BITS;
    OSSL_PARAM set[] = {OSSL_PARAM_int(OSSL_PKEY_PARAM_DH_PRIV_LEN, &priv_len), OSSL_PARAM_END};
    if ((rc = dh_fromdata(k->p, k->g, NULL, NULL, EVP_PKEY_KEY_PARAMETERS, &params))) goto done;
    rc = EVSSH_ENOMEM;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_params(ctx, set) != 1 ||
        EVP_PKEY_keygen(ctx, &k->eph) != 1)
      goto done;
  }
  rc = EVSSH_ENOMEM;
  if (EVP_PKEY_get_bn_param(k->eph, OSSL_PKEY_PARAM_PUB_KEY, &k->e) != 1) goto done;
  rc = EVSSH_OK;
done:
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(params);
  BN_CTX_free(bnctx);
  BN_free(pm1);
  BN_free(pub);
  BN_clear_free(x);
  return rc;
}

/* ------------------------------------------------------------ messages */

int evssh_kex_start(evssh_kex *k, evssh_buf *out) {
  if (!k || !out || k->state != ST_NEW) return EVSSH_EINVAL;
  int rc = EVSSH_OK;
  size_t mark = out->len;
  switch (k->m->family) {
  case FAM_X25519:
  case FAM_ECDH:
  case FAM_MLKEM_X25519:
  case FAM_SNTRUP_X25519:
    rc = k->m->family == FAM_X25519 ? x25519_keygen(k, 0)
         : k->m->family == FAM_ECDH ? ecdh_keygen(k)
                                    : kem_keygen(k);
    if (!rc) rc = evssh_buf_put_u8(out, SSH2_MSG_KEX_ECDH_INIT);
    if (!rc) rc = evssh_buf_put_string(out, k->q_c, k->q_c_len);
    if (!rc) k->state = ST_WAIT_REPLY;
    break;
  case FAM_DH:
    rc = dh_named_group(k->m->group, &k->p, &k->g);
    if (!rc) rc = dh_keygen(k);
    if (!rc) rc = evssh_buf_put_u8(out, SSH2_MSG_KEXDH_INIT);
    if (!rc) rc = buf_put_bignum(out, k->e);
    if (!rc) k->state = ST_WAIT_REPLY;
    break;
  case FAM_GEX:
    rc = evssh_buf_put_u8(out, SSH2_MSG_KEX_DH_GEX_REQUEST);
    if (!rc) rc = evssh_buf_put_u32(out, k->gex_min);
    if (!rc) rc = evssh_buf_put_u32(out, k->gex_n);
    if (!rc) rc = evssh_buf_put_u32(out, k->gex_max);
    if (!rc) k->state = ST_WAIT_GROUP;
    break;
  }
  if (rc) {
    out->len = mark;
    k->state = ST_FAILED;
  }
  return rc;
}

/* Shared secret from our key and the peer's; OpenSSL validates the peer
   key (point on curve, DH range) because we ask it to. */
/* The shared secret of ctx (a context for our ephemeral key) with peer. */
static int derive_with(EVP_PKEY_CTX *ctx, EVP_PKEY *peer, bool validate, unsigned char **sec, size_t *seclen) {
  int rc = EVSSH_ENOMEM;
  size_t n = 0;
  unsigned char *s = NULL;
  if (EVP_PKEY_derive_init(ctx) != 1) goto done;
  rc = EVSSH_EPROTO;
  if (EVP_PKEY_derive_set_peer_ex(ctx, peer, validate) != 1) goto done;
  if (EVP_PKEY_derive(ctx, NULL, &n) != 1 || n == 0) goto done;
  rc = EVSSH_ENOMEM;
  if (!(s = malloc(n))) goto done;
  rc = EVSSH_EPROTO;
  if (EVP_PKEY_derive(ctx, s, &n) != 1) goto done;
  *sec = s;
  *seclen = n;
  s = NULL;
  rc = EVSSH_OK;
done:
  free_secret(s, n);
  return rc;
}

/* ECDH with the server's point (already checked to be on the curve; the
   derive checks it again) */
static int derive_secret(evssh_kex *k, EVP_PKEY *peer, unsigned char **sec, size_t *seclen) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->eph, NULL);
  int rc = ctx ? derive_with(ctx, peer, true, sec, seclen) : EVSSH_ENOMEM;
  EVP_PKEY_CTX_free(ctx);
  return rc;
}

/* X25519 with the server's 32-byte value q. One context does both the
   import of q and the derive: each context OpenSSL 3.0 makes looks its key
   type up by name, which is most of what an import costs beside the curve
   arithmetic. OpenSSL's check of an X25519 peer value is only that it is
   there (any 32 bytes are a key, RFC 7748), so none is asked for; the
   all-zero secret of a small-order value (RFC 8731) is refused by the
   callers. */
static int x25519_derive(evssh_kex *k, const unsigned char *q, unsigned char **sec, size_t *seclen) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->eph, NULL);
  EVP_PKEY *peer = NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)q, 32),
                         OSSL_PARAM_construct_end()};
  int rc = EVSSH_ENOMEM;
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 && EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) == 1)
    rc = derive_with(ctx, peer, false, sec, seclen);
  EVP_PKEY_free(peer);
  EVP_PKEY_CTX_free(ctx);
  return rc;
}

/* K in its wire form: an mpint for the classical methods, a string for
   the hybrids (whose K is a hash output, not a number) */
static int store_k(evssh_kex *k, const unsigned char *sec, size_t seclen, bool as_string) {
  evssh_buf b = EVSSH_BUF_INIT;
  b.secret = true;
  int rc = as_string ? evssh_buf_put_string(&b, sec, seclen) : buf_put_mpint_bytes(&b, sec, seclen);
  if (!rc) {
    k->k_wire = memdup(b.data, b.len);
    k->k_wire_len = b.len;
    if (!k->k_wire) rc = EVSSH_ENOMEM;
  }
  buf_release(&b);
  return rc;
}

/* H over the common prefix, the method-specific middle (already encoded),
   and K. */
static int compute_h(evssh_kex *k, const unsigned char *mid, size_t midlen) {
  evssh_buf b = EVSSH_BUF_INIT;
  b.secret = true;
  int rc = evssh_buf_put_cstring(&b, k->v_c);
  if (!rc) rc = evssh_buf_put_cstring(&b, k->v_s);
  if (!rc) rc = evssh_buf_put_string(&b, k->i_c, k->i_c_len);
  if (!rc) rc = evssh_buf_put_string(&b, k->i_s, k->i_s_len);
  if (!rc) rc = evssh_buf_put_string(&b, k->hostkey, k->hostkey_len);
  if (!rc) rc = buf_append(&b, mid, midlen);
  if (!rc) rc = buf_append(&b, k->k_wire, k->k_wire_len);
  unsigned int hl = 0;
  if (!rc && EVP_Digest(b.data, b.len, k->h, &hl, k->md, NULL) != 1) rc = EVSSH_ENOMEM;
  k->h_len = hl;
  buf_release(&b);
  return rc;
}

static int take_hostkey_sig(evssh_kex *k, const char *ks, size_t kslen, const char *sig, size_t siglen) {
  k->hostkey = memdup(ks, kslen);
  k->sig = memdup(sig, siglen);
  if (!k->hostkey || !k->sig) return EVSSH_ENOMEM;
  k->hostkey_len = kslen;
  k->sig_len = siglen;
  return EVSSH_OK;
}

static bool all_zero(const unsigned char *p, size_t n) {
  unsigned char acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc == 0;
}

/* Peer EC point of the negotiated curve; rejects compressed, infinity and
   off-curve encodings. */
static int ec_peer(evssh_kex *k, const unsigned char *q, size_t qlen, EVP_PKEY **out) {
  if (qlen != 1 + 2 * k->m->coord_len || q[0] != 4) return EVSSH_EPROTO;
  int rc = EVSSH_ENOMEM;
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, k->m->group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen) ||
      !(params = OSSL_PARAM_BLD_to_param(bld)))
    goto done;
  ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1) goto done;
  rc = EVSSH_EPROTO;
  if (EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) goto done;
  chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
  if (!chk || EVP_PKEY_public_check(chk) != 1) {
    EVP_PKEY_free(*out);
    *out = NULL;
    goto done;
  }
  rc = EVSSH_OK;
done:
  EVP_PKEY_CTX_free(chk);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return rc;
}

static int handle_ecdh_reply(evssh_kex *k, evssh_reader *body, char *err, size_t errlen) {
  const char *ks, *qs, *sig;
  size_t kslen, qslen, siglen;
  if (evssh_read_string(body, &ks, &kslen) || evssh_read_string(body, &qs, &qslen) ||
      evssh_read_string(body, &sig, &siglen) || body->left != 0) {
    evssh_errorf(err, errlen, "malformed KEX_ECDH_REPLY");
    return EVSSH_EPROTO;
  }
  const unsigned char *q = (const unsigned char *)qs;
  EVP_PKEY *peer = NULL;
  int rc;
  if (k->m->family == FAM_X25519) {
    if (qslen != 32) {
      evssh_errorf(err, errlen, "server X25519 public value has %zu bytes, not 32", qslen);
      return EVSSH_EPROTO;
    }
  } else if ((rc = ec_peer(k, q, qslen, &peer))) {
    if (rc == EVSSH_EPROTO)
      evssh_errorf(err, errlen, "server ECDH public point is not a valid point of %s", k->m->group);
    return rc;
  }
  unsigned char *sec = NULL;
  size_t seclen = 0;
  rc = peer ? derive_secret(k, peer, &sec, &seclen) : x25519_derive(k, q, &sec, &seclen);
  EVP_PKEY_free(peer);
  if (rc == EVSSH_OK && all_zero(sec, seclen)) rc = EVSSH_EPROTO;
  if (rc) {
    free_secret(sec, seclen);
    if (rc == EVSSH_EPROTO) evssh_errorf(err, errlen, "server key exchange value gives an invalid shared secret");
    return rc;
  }
  rc = store_k(k, sec, seclen, false);
  free_secret(sec, seclen);
  if (!rc) rc = take_hostkey_sig(k, ks, kslen, sig, siglen);
  if (rc) return rc;
  evssh_buf mid = EVSSH_BUF_INIT;
  rc = evssh_buf_put_string(&mid, k->q_c, k->q_c_len);
  if (!rc) rc = evssh_buf_put_string(&mid, q, qslen);
  if (!rc) rc = compute_h(k, mid.data, mid.len);
  buf_release(&mid);
  return rc;
}

/* The hybrids' reply: string K_S, string (KEM ciphertext || X25519 key),
   string signature. K = HASH(kem_secret || x25519_secret), as a string. */
static int handle_hybrid_reply(evssh_kex *k, evssh_reader *body, char *err, size_t errlen) {
  const char *name = k->m->alg.name;
  const char *ks, *qs, *sig;
  size_t kslen, qslen, siglen;
  if (evssh_read_string(body, &ks, &kslen) || evssh_read_string(body, &qs, &qslen) ||
      evssh_read_string(body, &sig, &siglen) || body->left != 0) {
    evssh_errorf(err, errlen, "%s: malformed KEX_HYBRID_REPLY", name);
    return EVSSH_EPROTO;
  }
  bool mlkem = k->m->family == FAM_MLKEM_X25519;
  size_t ct_len = mlkem ? MLKEM768_CT_BYTES : SNTRUP761_CT_BYTES;
  if (qslen != ct_len + 32) {
    evssh_errorf(err, errlen,
                 "%s: server reply value has %zu bytes, not %zu (a %zu-byte %s ciphertext and a 32-byte X25519 key)",
                 name, qslen, ct_len + 32, ct_len, mlkem ? "ML-KEM-768" : "sntrup761");
    return EVSSH_EPROTO;
  }
  const unsigned char *q = (const unsigned char *)qs;
  /* both shared secrets, hashed into K: kem (32) || x25519 (32) */
  unsigned char shared[64], khash[EVP_MAX_MD_SIZE];
  int rc = mlkem ? mlkem768_decaps(k->kem_secret, q, shared) : sntrup761_decaps(k->kem_secret, q, shared);
  if (rc) {
    OPENSSL_cleanse(shared, sizeof shared);
    return rc == EVSSH_EINVAL ? EVSSH_ENOMEM : rc;   /* our own key failed its check: not the peer's fault */
  }
  unsigned char *x = NULL;
  size_t xlen = 0;
  rc = x25519_derive(k, q + ct_len, &x, &xlen);
  if (rc == EVSSH_OK && (xlen != 32 || all_zero(x, xlen))) rc = EVSSH_EPROTO;
  if (rc) {
    free_secret(x, xlen);
    OPENSSL_cleanse(shared, sizeof shared);
    if (rc == EVSSH_EPROTO) evssh_errorf(err, errlen, "%s: server X25519 key gives an invalid shared secret", name);
    return rc;
  }
  memcpy(shared + 32, x, 32);
  free_secret(x, xlen);
  unsigned int hl = 0;
  rc = EVP_Digest(shared, sizeof shared, khash, &hl, k->md, NULL) == 1 ? EVSSH_OK : EVSSH_ENOMEM;
  OPENSSL_cleanse(shared, sizeof shared);
  if (!rc) rc = store_k(k, khash, hl, true);
  OPENSSL_cleanse(khash, sizeof khash);
  if (!rc) rc = take_hostkey_sig(k, ks, kslen, sig, siglen);
  if (rc) return rc;
  evssh_buf mid = EVSSH_BUF_INIT;
  rc = evssh_buf_put_string(&mid, k->q_c, k->q_c_len);
  if (!rc) rc = evssh_buf_put_string(&mid, q, qslen);
  if (!rc) rc = compute_h(k, mid.data, mid.len);
  buf_release(&mid);
  return rc;
}

/* f must satisfy 1 < f < p-1 (RFC 4253 s8, RFC 8268 s4). */
static bool dh_value_ok(const BIGNUM *v, const BIGNUM *p) {
  BIGNUM *pm1 = BN_dup(p);
  bool ok = pm1 && BN_sub_word(pm1, 1) && BN_cmp(v, BN_value_one()) > 0 && BN_cmp(v, pm1) < 0;
  BN_free(pm1);
  return ok;
}

static int handle_dh_reply(evssh_kex *k, evssh_reader *body, char *err, size_t errlen) {
  const char *ks, *sig;
  size_t kslen, siglen;
  BIGNUM *f = NULL;
  int rc = evssh_read_string(body, &ks, &kslen);
  if (!rc) rc = evssh_read_bignum(body, &f);
  if (!rc) rc = evssh_read_string(body, &sig, &siglen);
  if (!rc && body->left != 0) rc = EVSSH_EPROTO;
  if (rc) {
    BN_free(f);
    if (rc == EVSSH_EPROTO) evssh_errorf(err, errlen, "malformed KEXDH_REPLY");
    return rc;
  }
  if (!dh_value_ok(f, k->p)) {
    BN_free(f);
    evssh_errorf(err, errlen, "server DH value f is out of range (need 1 < f < p-1)");
    return EVSSH_EPROTO;
  }
  EVP_PKEY *peer = NULL;
  unsigned char *sec = NULL;
  size_t seclen = 0;
  rc = dh_fromdata(k->p, k->g, f, NULL, EVP_PKEY_PUBLIC_KEY, &peer);
  if (!rc) rc = derive_secret(k, peer, &sec, &seclen);
  EVP_PKEY_free(peer);
  if (rc) {
    BN_free(f);
    if (rc == EVSSH_EPROTO) evssh_errorf(err, errlen, "server DH value f rejected");
    return rc;
  }
  rc = store_k(k, sec, seclen, false);
  free_secret(sec, seclen);
  if (!rc) rc = take_hostkey_sig(k, ks, kslen, sig, siglen);
  evssh_buf mid = EVSSH_BUF_INIT;
  if (!rc && k->m->family == FAM_GEX) {
    rc = evssh_buf_put_u32(&mid, k->gex_min);
    if (!rc) rc = evssh_buf_put_u32(&mid, k->gex_n);
    if (!rc) rc = evssh_buf_put_u32(&mid, k->gex_max);
    if (!rc) rc = buf_put_bignum(&mid, k->p);
    if (!rc) rc = buf_put_bignum(&mid, k->g);
  }
  if (!rc) rc = buf_put_bignum(&mid, k->e);
  if (!rc) rc = buf_put_bignum(&mid, f);
  if (!rc) rc = compute_h(k, mid.data, mid.len);
  buf_release(&mid);
  BN_free(f);
  return rc;
}

static int handle_gex_group(evssh_kex *k, evssh_reader *body, evssh_buf *out, char *err,
                            size_t errlen) {
  BIGNUM *p = NULL, *g = NULL;
  int rc = evssh_read_bignum(body, &p);
  if (!rc) rc = evssh_read_bignum(body, &g);
  if (!rc && body->left != 0) rc = EVSSH_EPROTO;
  if (rc) {
    BN_free(p);
    BN_free(g);
    if (rc == EVSSH_EPROTO) evssh_errorf(err, errlen, "malformed KEX_DH_GEX_GROUP");
    return rc;
  }
  int bits = BN_num_bits(p);
  if ((uint32_t)bits < k->gex_min || (uint32_t)bits > k->gex_max) {
    evssh_errorf(err, errlen, "server DH group has %d bits, outside the requested %u..%u", bits,
            (unsigned)k->gex_min, (unsigned)k->gex_max);
    rc = EVSSH_EPROTO;
  } else if (!BN_is_odd(p)) {
    evssh_errorf(err, errlen, "server DH group modulus is even");
    rc = EVSSH_EPROTO;
  } else if (!dh_value_ok(g, p)) {
    evssh_errorf(err, errlen, "server DH group generator is out of range (need 1 < g < p-1)");
    rc = EVSSH_EPROTO;
  }
  if (rc) {
    BN_free(p);
    BN_free(g);
    return rc;
  }
  k->p = p;
  k->g = g;
  if ((rc = dh_keygen(k))) {
    if (rc == EVSSH_EPROTO || rc == EVSSH_EINVAL) {
      evssh_errorf(err, errlen, "server DH group rejected");
      rc = EVSSH_EPROTO;
    }
    return rc;
  }
  size_t mark = out->len;
  rc = evssh_buf_put_u8(out, SSH2_MSG_KEX_DH_GEX_INIT);
  if (!rc) rc = buf_put_bignum(out, k->e);
  if (rc) out->len = mark;
  return rc;
}

int evssh_kex_handle(evssh_kex *k, uint8_t msg, evssh_reader *body, evssh_buf *out, bool *done,
                     char *err, size_t errlen) {
  if (!k || !body || !out || !done) return EVSSH_EINVAL;
  *done = false;
  int rc;
  if (k->state == ST_WAIT_GROUP && msg == SSH2_MSG_KEX_DH_GEX_GROUP) {
    rc = handle_gex_group(k, body, out, err, errlen);
    k->state = rc ? ST_FAILED : ST_WAIT_REPLY;
    return rc;
  }
  if (k->state == ST_DONE) {
    /* keep the finished result; the caller broke the sequence, not the peer's values */
    evssh_errorf(err, errlen, "unexpected message %u after %s key exchange", (unsigned)msg, k->m->alg.name);
    return EVSSH_EPROTO;
  }
  uint8_t want = k->m->family == FAM_GEX ? SSH2_MSG_KEX_DH_GEX_REPLY : SSH2_MSG_KEXDH_REPLY;
  if (k->state != ST_WAIT_REPLY || msg != want) {
    evssh_errorf(err, errlen, "unexpected message %u during %s key exchange", (unsigned)msg, k->m->alg.name);
    k->state = ST_FAILED;
    return EVSSH_EPROTO;
  }
  if (k->m->family == FAM_X25519 || k->m->family == FAM_ECDH)
    rc = handle_ecdh_reply(k, body, err, errlen);
  else if (k->m->family == FAM_MLKEM_X25519 || k->m->family == FAM_SNTRUP_X25519)
    rc = handle_hybrid_reply(k, body, err, errlen);
  else
    rc = handle_dh_reply(k, body, err, errlen);
  if (rc) {
    k->state = ST_FAILED;
    return rc;
  }
  /* the ephemeral private keys are not needed any more */
  EVP_PKEY_free(k->eph);
  k->eph = NULL;
  free_secret(k->kem_secret, k->kem_secret_len);
  k->kem_secret = NULL;
  k->state = ST_DONE;
  *done = true;
  return EVSSH_OK;
}

const unsigned char *evssh_kex_hash(const evssh_kex *k, size_t *len) {
  bool ok = k && k->state == ST_DONE;
  if (len) *len = ok ? k->h_len : 0;
  return ok ? k->h : NULL;
}

const unsigned char *evssh_kex_hostkey(const evssh_kex *k, size_t *len) {
  bool ok = k && k->state == ST_DONE;
  if (len) *len = ok ? k->hostkey_len : 0;
  return ok ? k->hostkey : NULL;
}

const unsigned char *evssh_kex_signature(const evssh_kex *k, size_t *len) {
  bool ok = k && k->state == ST_DONE;
  if (len) *len = ok ? k->sig_len : 0;
  return ok ? k->sig : NULL;
}

const unsigned char *evssh_kex_secret(const evssh_kex *k, size_t *len) {
  bool ok = k && k->state == ST_DONE;
  if (len) *len = ok ? k->k_wire_len : 0;
  return ok ? k->k_wire : NULL;
}

int evssh_kex_derive(const evssh_kex *k, const unsigned char *session_id, size_t sid_len,
                     char letter, unsigned char *out, size_t need) {
  if (!k || k->state != ST_DONE || !session_id || !out) return EVSSH_EINVAL;
  if (need == 0) return EVSSH_OK;
  size_t mdlen = k->h_len;
  size_t blocks = (need + mdlen - 1) / mdlen;
  size_t total = blocks * mdlen;
  unsigned char *acc = malloc(total);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int rc = EVSSH_ENOMEM;
  if (!acc || !ctx) goto done;
  unsigned char l = (unsigned char)letter;
  for (size_t have = 0; have < total; have += mdlen) {
    unsigned int got = 0;
    if (EVP_DigestInit_ex(ctx, k->md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, k->k_wire, k->k_wire_len) != 1 ||
        EVP_DigestUpdate(ctx, k->h, k->h_len) != 1)
      goto done;
    if (have == 0) {
      if (EVP_DigestUpdate(ctx, &l, 1) != 1 || EVP_DigestUpdate(ctx, session_id, sid_len) != 1)
        goto done;
    } else if (EVP_DigestUpdate(ctx, acc, have) != 1) {
      goto done;
    }
    if (EVP_DigestFinal_ex(ctx, acc + have, &got) != 1 || got != mdlen) goto done;
  }
  memcpy(out, acc, need);
  rc = EVSSH_OK;
done:
  EVP_MD_CTX_free(ctx);
  free_secret(acc, total);
  return rc;
}
