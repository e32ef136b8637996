/* ext_key.c owns EvSSH::KeyFactory::Native: a user key loaded by
 * libevssh (evssh_key_load_data), so KeyFactory reads every key file
 * OpenSSH writes, encrypted openssh-key-v1 ones included, without the
 * bcrypt_pbkdf gem. It answers the public half (type, blob, comment,
 * SHA256 fingerprint) and signs with the private half, which stays in C
 * memory (wiped when the object is collected); and EvSSH.bcrypt_pbkdf, the
 * KDF with which KeyFactory decrypts those files itself. */
#include "evssh_ext.h"

static VALUE cNative, eNeedsPassphrase;

typedef struct rkey {
  evssh_key *k;
} rkey;

static void key_free(void *p) {
  rkey *rk = p;
  evssh_key_free(rk->k);
  xfree(rk);
}

static size_t key_memsize(const void *p) { return sizeof(rkey); }

static const rb_data_type_t key_type = {"EvSSH::KeyFactory::Native", {NULL, key_free, key_memsize, NULL, {NULL}}, 0,
                                        0, RUBY_TYPED_FREE_IMMEDIATELY};

static VALUE key_alloc(VALUE klass) {
  rkey *rk;
  return TypedData_Make_Struct(klass, rkey, &key_type, rk);
}

static rkey *get_key(VALUE self) {
  rkey *rk = rb_check_typeddata(self, &key_type);
  if (!rk->k) rb_raise(rb_eArgError, "key not loaded");
  return rk;
}

/* Native.load(data, name, passphrase): the key, or ArgumentError (not a
   key, unsupported), or NeedsPassphrase (encrypted: none or a wrong one) */
static VALUE key_s_load(VALUE klass, VALUE data, VALUE name, VALUE passphrase) {
  StringValue(data);
  const char *n = NIL_P(name) ? NULL : StringValueCStr(name);
  const char *pw = NIL_P(passphrase) ? NULL : StringValueCStr(passphrase);
  VALUE obj = key_alloc(klass);
  rkey *rk = DATA_PTR(obj);
  evssh_error err;
  int rc = evssh_key_load_data(RSTRING_PTR(data), (size_t)RSTRING_LEN(data), n, pw, &rk->k, &err);
  RB_GC_GUARD(data);
  if (rc == EVSSH_EAUTH) rb_raise(eNeedsPassphrase, "%s", err.message);
  if (rc == EVSSH_ENOMEM) rb_raise(rb_eNoMemError, "%s", err.message);
  if (rc) rb_raise(rb_eArgError, "%s", err.message);
  return obj;
}

static VALUE key_ssh_type(VALUE self) { return rb_str_new_cstr(evssh_key_type(get_key(self)->k)); }

static VALUE key_blob(VALUE self) {
  const unsigned char *b;
  size_t n;
  evssh_key_public_blob(get_key(self)->k, &b, &n);
  return rb_str_new((const char *)b, (long)n);
}

static VALUE key_comment(VALUE self) { return rb_str_new_cstr(evssh_key_comment(get_key(self)->k)); }

static VALUE key_fingerprint(VALUE self) {
  char fp[128];
  if (evssh_key_fingerprint(get_key(self)->k, fp, sizeof fp)) rb_raise(rb_eArgError, "fingerprint");
  return rb_str_new_cstr(fp);
}

/* sign(alg, data): the SSH signature blob (string alg, string signature) */
static VALUE key_sign(VALUE self, VALUE alg, VALUE data) {
  rkey *rk = get_key(self);
  StringValue(data);
  evssh_buf *b = evssh_buf_new();
  if (!b) rb_raise(rb_eNoMemError, "sign");
  int rc = evssh_key_sign(rk->k, StringValueCStr(alg), (const unsigned char *)RSTRING_PTR(data),
                          (size_t)RSTRING_LEN(data), b);
  VALUE sig = rc ? Qnil : rb_str_new(evssh_buf_data(b), (long)evssh_buf_len(b));
  evssh_buf_free(b);
  RB_GC_GUARD(data);
  if (rc) rb_raise(rb_eArgError, "cannot sign with %s using a %s key", StringValueCStr(alg), evssh_key_type(rk->k));
  return sig;
}

/* EvSSH.bcrypt_pbkdf(passphrase, salt, length, rounds): libevssh's KDF of
   encrypted openssh-key-v1 files, so KeyFactory needs no bcrypt_pbkdf gem */
static VALUE s_bcrypt_pbkdf(VALUE mod, VALUE pass, VALUE salt, VALUE len, VALUE rounds) {
  StringValue(pass);
  StringValue(salt);
  long n = NUM2LONG(len);
  if (n <= 0 || n > 1024) rb_raise(rb_eArgError, "bcrypt_pbkdf: length %ld out of 1..1024", n);
  VALUE out = rb_str_new(NULL, n);
  int rc = evssh_bcrypt_pbkdf(RSTRING_PTR(pass), (size_t)RSTRING_LEN(pass), (const uint8_t *)RSTRING_PTR(salt),
                              (size_t)RSTRING_LEN(salt), (uint8_t *)RSTRING_PTR(out), (size_t)n, NUM2UINT(rounds));
  RB_GC_GUARD(pass);
  RB_GC_GUARD(salt);
  if (rc) rb_raise(rb_eArgError, "bcrypt_pbkdf: bad salt or rounds");
  return out;
}

void ext_init_key(void) {
  VALUE cFactory = rb_define_class_under(ext_mEvSSH, "KeyFactory", rb_cObject);
  cNative = rb_define_class_under(cFactory, "Native", rb_cObject);
  rb_undef_alloc_func(cNative);
  /* an encrypted key without the right passphrase (KeyFactory asks again) */
  eNeedsPassphrase = rb_define_class_under(cFactory, "NeedsPassphrase", rb_eArgError);
  rb_define_singleton_method(cNative, "load", key_s_load, 3);
  rb_define_method(cNative, "ssh_type", key_ssh_type, 0);
  rb_define_method(cNative, "to_blob", key_blob, 0);
  rb_define_method(cNative, "comment", key_comment, 0);
  rb_define_method(cNative, "sha256_fingerprint", key_fingerprint, 0);
  rb_define_method(cNative, "sign", key_sign, 2);
  rb_define_module_function(ext_mEvSSH, "bcrypt_pbkdf", s_bcrypt_pbkdf, 4);
}
