/* Tests for OpenSSH certificates: cert.c (parse, CA signature, checks for a
 * use), the host-certificate decision in knownhosts.c (@cert-authority,
 * @revoked for keys and CAs, RevokedHostKeys), certified host keys in
 * hostkey.c's signature verification, user certificates beside key files
 * (keys_cert.c: <identity>-cert.pub, CertificateFile, pairing, the
 * certificate signature algorithms) and certificates held by ssh-agent.
 * Every CA, key and certificate is made at run time by OpenSSH's
 * ssh-keygen -s (host and user, every key type, every CA type, validity
 * windows, principals with wildcards, critical options), so OpenSSH is the
 * reference; the few certificates ssh-keygen cannot make (an unknown
 * critical option injected into a signed blob, duplicate options) are
 * re-encoded here and re-signed with the CA's private key. No server. */
#include "agent.h"
#include "buf.h"
#include "cert.h"
#include "harness.h"
#include "hostkey.h"
#include "keys.h"
#include "knownhosts.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

struct ktype {
  const char *name;
  const char *args;
  const char *plain;
  const char *cert_type;
};

static const struct ktype ktypes[] = {
  {"ed25519", "-t ed25519", "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com"},
  {"ecdsa256", "-t ecdsa -b 256", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com"},
  {"ecdsa384", "-t ecdsa -b 384", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com"},
  {"ecdsa521", "-t ecdsa -b 521", "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521-cert-v01@openssh.com"},
  {"rsa", "-t rsa -b 2048", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com"},
};
#define NKTYPES ((int)(sizeof ktypes / sizeof ktypes[0]))

/* CA key files and what signature ssh-keygen -s makes with them */
static const struct {
  const char *name;
  const char *extra; /* ssh-keygen -s options */
  const char *sig_alg;
} cas[] = {
  {"ca_ed25519", "", "ssh-ed25519"},
  {"ca_ecdsa", "", "ecdsa-sha2-nistp384"},
  {"ca_rsa", "", "rsa-sha2-512"},
  {"ca_rsa", "-t rsa-sha2-256", "rsa-sha2-256"},
};
#define NCAS ((int)(sizeof cas / sizeof cas[0]))

static void keygen(const char *name, const char *args) {
  if (harness_sh("ssh-keygen -q %s -N '' -C '%s@test' -f '%s/%s' </dev/null >/dev/null", args, name, tmpdir, name) != 0) {
    fprintf(stderr, "ssh-keygen %s failed\n", name);
    exit(1);
  }
}

/* out-cert.pub: key's public key certified by ca with ssh-keygen -s opts */
static void certify(const char *ca, const char *key, const char *out, const char *opts) {
  ck_assert_int_eq(harness_sh("cp '%s/%s.pub' '%s/%s.pub' && ssh-keygen -q -s '%s/%s' -I 'id-%s' %s '%s/%s.pub' "
                       "</dev/null >/dev/null 2>&1",
                       tmpdir, key, tmpdir, out, tmpdir, ca, out, opts, tmpdir, out),
                   0);
}

static char *slurp(const char *name, const char *suffix) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s%s", tmpdir, name, suffix);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "%s", path);
  char *buf = calloc(1, 1 << 16);
  size_t n = fread(buf, 1, (1 << 16) - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static evssh_cert *load_cert(const char *out) {
  char *line = slurp(out, "-cert.pub");
  evssh_cert *c = NULL;
  char err[300] = "";
  ck_assert_msg(evssh_cert_parse_line(line, &c, NULL, err, sizeof err) == EVSSH_OK, "%s: %s", out, err);
  free(line);
  return c;
}

/* the public blob of NAME.pub */
static unsigned char *pub_blob(const char *name, size_t *len) {
  char *line = slurp(name, ".pub");
  unsigned char *blob = NULL;
  ck_assert_int_eq(evssh_pubkey_blob_from_line(line, &blob, len, NULL), EVSSH_OK);
  free(line);
  return blob;
}

/* "TYPE BASE64" of NAME.pub (or of a certificate file), for known_hosts */
static void pub_fields(const char *name, const char *suffix, char *out, size_t outlen) {
  char *line = slurp(name, suffix);
  char type[128], b64[16384];
  ck_assert_int_eq(sscanf(line, "%127s %16383s", type, b64), 2);
  ck_assert_uint_lt(strlen(type) + strlen(b64) + 1, outlen);
  strcpy(out, type);
  strcat(out, " ");
  strcat(out, b64);
  free(line);
}

static evssh_known_hosts *kh_of(const char *text, const char *host, int port) {
  evssh_known_hosts *kh = NULL;
  char err[300] = "";
  ck_assert_msg(evssh_knownhosts_load_text(text, strlen(text), "kh", host, port, NULL, &kh, err, sizeof err) ==
                    EVSSH_OK,
                "%s", err);
  return kh;
}

static evssh_hostcert_result hostcert(evssh_known_hosts *kh, const evssh_cert *c, uint64_t now) {
  evssh_hostcert_result r;
  char err[300] = "";
  ck_assert_msg(evssh_knownhosts_check_hostcert(kh, c->blob, c->blob_len, now, &r, err, sizeof err) == EVSSH_OK,
                "%s", err);
  return r;
}

static const unsigned char message[] = "exchange hash H";

/* ------------------------------------------------------ parse and verify */

/* Every certified-key type with every CA type (and RSA CAs with both SHA-2
   signatures): the parsed fields are what ssh-keygen was told, the
   certified key is the .pub's blob, the CA signature verifies, the
   certificate passes as a host certificate for its principal, and a
   signature made by the host key verifies through hostkey.c under each
   certificate algorithm of its type (and not under a plain one). */
START_TEST(parse_verify_every_type) {
  const struct ktype *kt = &ktypes[_i / NCAS];
  int ca = _i % NCAS;
  char out[64], opts[200], err[300] = "";
  snprintf(out, sizeof out, "h_%s_%d", kt->name, ca);
  snprintf(opts, sizeof opts, "-h -n host.example.com,alias.example.com -z 42 %s", cas[ca].extra);
  certify(cas[ca].name, kt->name, out, opts);
  evssh_cert *c = load_cert(out);
  ck_assert_str_eq(c->type, kt->cert_type);
  ck_assert_str_eq(c->key_type, kt->plain);
  size_t kl, cl;
  unsigned char *kb = pub_blob(kt->name, &kl), *cb = pub_blob(cas[ca].name, &cl);
  ck_assert_uint_eq(c->key_blob_len, kl);
  ck_assert_mem_eq(c->key_blob, kb, kl);
  ck_assert_uint_eq(c->ca_blob_len, cl);
  ck_assert_mem_eq(c->ca_blob, cb, cl);
  ck_assert_uint_eq(c->serial, 42);
  ck_assert_uint_eq(c->cert_type, EVSSH_CERT_TYPE_HOST);
  char want_id[80];
  snprintf(want_id, sizeof want_id, "id-%s", out);
  ck_assert_str_eq(c->key_id, want_id);
  ck_assert_uint_eq(c->nprincipals, 2);
  ck_assert_str_eq(c->principals[0], "host.example.com");
  ck_assert_str_eq(c->principals[1], "alias.example.com");
  ck_assert_uint_eq(c->valid_after, 0);
  ck_assert(c->valid_before == EVSSH_CERT_FOREVER);
  ck_assert_str_eq(c->sig_alg, cas[ca].sig_alg);
  ck_assert_msg(evssh_cert_verify(c, err, sizeof err) == EVSSH_OK, "%s", err);
  evssh_cert_check_id failed = 99;
  ck_assert_msg(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "host.example.com", (uint64_t)time(NULL), &failed, err,
                                 sizeof err) == EVSSH_OK,
                "%s", err);
  ck_assert_int_eq(failed, EVSSH_CERT_OK);

  /* the server's signature on H, made by the certified key */
  char path[300];
  snprintf(path, sizeof path, "%s/%s", tmpdir, kt->name);
  evssh_key *k = NULL;
  ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &k, err, sizeof err), EVSSH_OK);
  const char *rsa_algs[] = {"rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com", NULL};
  const char *own[] = {kt->cert_type, NULL};
  const char **algs = strcmp(kt->plain, "ssh-rsa") == 0 ? rsa_algs : own;
  for (int i = 0; algs[i]; i++) {
    evssh_buf *sig = evssh_buf_new();
    ck_assert_int_eq(evssh_key_sign(k, algs[i], message, sizeof message, sig), EVSSH_OK);
    const char *plain_alg = evssh_cert_alg_sig_alg(algs[i]);
    /* the signature names the plain algorithm */
    evssh_reader r = {evssh_buf_data(sig), evssh_buf_len(sig)};
    const char *name;
    size_t nl;
    ck_assert_int_eq(evssh_read_string(&r, &name, &nl), EVSSH_OK);
    ck_assert_uint_eq(nl, strlen(plain_alg));
    ck_assert(memcmp(name, plain_alg, nl) == 0);
    ck_assert_msg(evssh_hostkey_verify(c->blob, c->blob_len, algs[i], evssh_buf_data(sig), evssh_buf_len(sig), message,
                                       sizeof message, err, sizeof err) == EVSSH_OK,
                  "%s %s: %s", out, algs[i], err);
    ck_assert_int_eq(evssh_hostkey_verify(c->blob, c->blob_len, algs[i], evssh_buf_data(sig), evssh_buf_len(sig),
                                          message, sizeof message - 1, err, sizeof err),
                     EVSSH_EPROTO);
    /* a certificate blob cannot stand in for a plain host key algorithm */
    ck_assert_int_eq(evssh_hostkey_verify(c->blob, c->blob_len, plain_alg, evssh_buf_data(sig), evssh_buf_len(sig),
                                          message, sizeof message, err, sizeof err),
                     EVSSH_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "cannot make"));
    evssh_buf_free(sig);
  }
  evssh_key_free(k);
  free(kb);
  free(cb);
  evssh_cert_free(c);
}
END_TEST

START_TEST(algorithm_names) {
  ck_assert_str_eq(evssh_cert_alg_blob_type("rsa-sha2-256-cert-v01@openssh.com"), "ssh-rsa-cert-v01@openssh.com");
  ck_assert_str_eq(evssh_cert_alg_sig_alg("rsa-sha2-512-cert-v01@openssh.com"), "rsa-sha2-512");
  ck_assert_str_eq(evssh_cert_alg_sig_alg("ecdsa-sha2-nistp521-cert-v01@openssh.com"), "ecdsa-sha2-nistp521");
  ck_assert_str_eq(evssh_cert_alg_for("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256"),
                   "rsa-sha2-256-cert-v01@openssh.com");
  ck_assert_ptr_null(evssh_cert_alg_for("ssh-ed25519-cert-v01@openssh.com", "rsa-sha2-256"));
  ck_assert_ptr_null(evssh_cert_alg_blob_type("ssh-ed25519"));
  ck_assert(evssh_cert_is_cert_name("sk-ssh-ed25519-cert-v01@openssh.com"));
  ck_assert(!evssh_cert_is_cert_name("ssh-ed25519"));
  ck_assert(evssh_hostkey_alg_matches("rsa-sha2-256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com"));
  ck_assert(!evssh_hostkey_alg_matches("rsa-sha2-256", "ssh-rsa-cert-v01@openssh.com"));
  ck_assert(!evssh_hostkey_alg_matches("ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519"));
  /* user-key signature algorithms for certificates, OpenSSH's choice */
  ck_assert_str_eq(evssh_sig_alg_for_type("ssh-ed25519-cert-v01@openssh.com", NULL, NULL),
                   "ssh-ed25519-cert-v01@openssh.com");
  ck_assert_str_eq(evssh_sig_alg_for_type("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256", NULL),
                   "rsa-sha2-256-cert-v01@openssh.com");
  ck_assert_str_eq(evssh_sig_alg_for_type("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256,rsa-sha2-512", NULL),
                   "rsa-sha2-512-cert-v01@openssh.com");
  ck_assert_str_eq(evssh_sig_alg_for_type("ssh-rsa-cert-v01@openssh.com", NULL, NULL),
                   "rsa-sha2-512-cert-v01@openssh.com");
  ck_assert_ptr_null(evssh_sig_alg_for_type("ssh-rsa-cert-v01@openssh.com", "ssh-rsa", NULL));
  ck_assert_str_eq(evssh_sig_alg_for_type("ssh-rsa-cert-v01@openssh.com", "ssh-rsa",
                                          "ssh-rsa-cert-v01@openssh.com,ssh-rsa"),
                   "ssh-rsa-cert-v01@openssh.com");
  ck_assert_ptr_null(evssh_sig_alg_for_type("ssh-ed25519-cert-v01@openssh.com", NULL, "ssh-ed25519"));
}
END_TEST

/* ----------------------------------------------------------- the checks */

/* valid_after <= now < valid_before, at the edges of a window ssh-keygen
   was given in raw seconds, and relative windows around the real clock */
START_TEST(validity_windows) {
  certify("ca_ed25519", "ed25519", "window", "-h -n w.example -V 0x60000000:0x60000100");
  evssh_cert *c = load_cert("window");
  ck_assert_uint_eq(c->valid_after, 0x60000000);
  ck_assert_uint_eq(c->valid_before, 0x60000100);
  char err[300];
  evssh_cert_check_id f;
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "w.example", 0x60000000, &f, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "w.example", 0x600000ff, &f, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "w.example", 0x5fffffff, &f, err, sizeof err),
                   EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_NOT_YET_VALID);
  ck_assert_str_eq(err, "not yet valid (valid from 2021-01-14 08:25:36 UTC)");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "w.example", 0x60000100, &f, err, sizeof err),
                   EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_EXPIRED);
  ck_assert_str_eq(err, "expired at 2021-01-14 08:29:52 UTC");
  ck_assert_int_eq(evssh_cert_check_validity(c, 0x60000100, NULL, 0), EVSSH_CERT_EXPIRED);
  evssh_cert_free(c);

  uint64_t now = (uint64_t)time(NULL);
  certify("ca_ed25519", "ed25519", "expired", "-h -n w.example -V -2d:-1d");
  certify("ca_ed25519", "ed25519", "future", "-h -n w.example -V +1d:+2d");
  certify("ca_ed25519", "ed25519", "current", "-h -n w.example -V -1h:+1h");
  c = load_cert("expired");
  ck_assert_int_eq(evssh_cert_check_validity(c, now, err, sizeof err), EVSSH_CERT_EXPIRED);
  evssh_cert_free(c);
  c = load_cert("future");
  ck_assert_int_eq(evssh_cert_check_validity(c, now, err, sizeof err), EVSSH_CERT_NOT_YET_VALID);
  evssh_cert_free(c);
  c = load_cert("current");
  ck_assert_int_eq(evssh_cert_check_validity(c, now, err, sizeof err), EVSSH_CERT_OK);
  evssh_cert_free(c);
}
END_TEST

/* Host certificates match the host name against principal patterns (case
   folded, as host names are); user certificates only exactly. */
START_TEST(principals_and_wildcards) {
  certify("ca_ed25519", "ed25519", "wild", "-h -n 'web?.example.com,*.db.example.com,exact.example.com'");
  evssh_cert *c = load_cert("wild");
  char err[300];
  evssh_cert_check_id f;
  const char *ok[] = {"web1.example.com", "WEB2.Example.COM", "a.db.example.com", "x.y.db.example.com",
                      "exact.example.com"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    ck_assert_msg(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, ok[i], 1, &f, err, sizeof err) == EVSSH_OK, "%s: %s",
                  ok[i], err);
  const char *no[] = {"web12.example.com", "db.example.com", "exact.example.com.evil", "other.example.com"};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, no[i], 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
    ck_assert_int_eq(f, EVSSH_CERT_PRINCIPAL);
  }
  ck_assert_str_eq(err, "other.example.com is not among the principals (web?.example.com, *.db.example.com, "
                        "exact.example.com)");
  evssh_cert_free(c);

  certify("ca_ed25519", "ed25519", "user_wild", "-n 'alice,bo*'");
  c = load_cert("user_wild");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "bob", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_PRINCIPAL);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "Alice", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, NULL, 1, &f, err, sizeof err), EVSSH_OK);
  evssh_cert_free(c);

  /* an empty principals list is refused for both uses */
  certify("ca_ed25519", "ed25519", "host_any", "-h");
  certify("ca_ed25519", "ed25519", "user_any", "");
  c = load_cert("host_any");
  ck_assert_uint_eq(c->nprincipals, 0);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "any.host", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_NO_PRINCIPALS);
  ck_assert_ptr_nonnull(strstr(err, "no principals"));
  evssh_cert_free(c);
  c = load_cert("user_any");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, NULL, 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_NO_PRINCIPALS);
  evssh_cert_free(c);
}
END_TEST

START_TEST(type_user_vs_host) {
  certify("ca_ed25519", "ed25519", "as_user", "-n host.example.com");
  evssh_cert *c = load_cert("as_user");
  char err[300];
  evssh_cert_check_id f;
  ck_assert_uint_eq(c->cert_type, EVSSH_CERT_TYPE_USER);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "host.example.com", 1, &f, err, sizeof err),
                   EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_WRONG_TYPE);
  ck_assert_str_eq(err, "not a host certificate (it is a user certificate)");
  evssh_cert_free(c);
  certify("ca_ed25519", "ed25519", "as_host", "-h -n alice");
  c = load_cert("as_host");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_WRONG_TYPE);
  ck_assert_str_eq(err, "not a user certificate (it is a host certificate)");
  evssh_cert_free(c);
}
END_TEST

/* Re-encodes an Ed25519 certificate with new critical options (crit,
   crit_len bytes of name/data pairs) and signs it with the CA key file ca,
   through evssh_key_sign: a certificate ssh-keygen would not make but whose
   signature is genuine. */
static evssh_cert *resign_with_critical(const evssh_cert *orig, const unsigned char *crit, size_t crit_len,
                                        const char *ca) {
  ck_assert_str_eq(orig->type, "ssh-ed25519-cert-v01@openssh.com");
  evssh_reader r = {orig->blob, orig->blob_len};
  evssh_buf *b = evssh_buf_new();
  const char *s;
  size_t sl;
  uint64_t u64;
  uint32_t u32;
  /* type, nonce, pk */
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(evssh_read_string(&r, &s, &sl), EVSSH_OK);
    evssh_buf_put_string(b, s, sl);
  }
  ck_assert_int_eq(evssh_read_u64(&r, &u64), EVSSH_OK);
  evssh_buf_put_u64(b, u64);
  ck_assert_int_eq(evssh_read_u32(&r, &u32), EVSSH_OK);
  evssh_buf_put_u32(b, u32);
  for (int i = 0; i < 2; i++) { /* key id, principals */
    ck_assert_int_eq(evssh_read_string(&r, &s, &sl), EVSSH_OK);
    evssh_buf_put_string(b, s, sl);
  }
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(evssh_read_u64(&r, &u64), EVSSH_OK);
    evssh_buf_put_u64(b, u64);
  }
  ck_assert_int_eq(evssh_read_string(&r, &s, &sl), EVSSH_OK); /* the old critical options */
  evssh_buf_put_string(b, crit, crit_len);
  for (int i = 0; i < 3; i++) { /* extensions, reserved, signature key */
    ck_assert_int_eq(evssh_read_string(&r, &s, &sl), EVSSH_OK);
    evssh_buf_put_string(b, s, sl);
  }
  char path[300], err[300] = "";
  snprintf(path, sizeof path, "%s/%s", tmpdir, ca);
  evssh_key *cak = NULL;
  ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &cak, err, sizeof err), EVSSH_OK);
  evssh_buf *sig = evssh_buf_new();
  ck_assert_int_eq(evssh_key_sign(cak, "ssh-ed25519", evssh_buf_data(b), evssh_buf_len(b), sig), EVSSH_OK);
  evssh_buf_put_string(b, evssh_buf_data(sig), evssh_buf_len(sig));
  evssh_cert *c = NULL;
  int rc = evssh_cert_parse(evssh_buf_data(b), evssh_buf_len(b), &c, err, sizeof err);
  evssh_buf_free(sig);
  evssh_buf_free(b);
  evssh_key_free(cak);
  return rc == EVSSH_OK ? c : NULL;
}

static void put_option(evssh_buf *b, const char *name, const char *value) {
  evssh_buf_put_cstring(b, name);
  if (!value) {
    evssh_buf_put_string(b, "", 0);
    return;
  }
  evssh_buf *inner = evssh_buf_new();
  evssh_buf_put_cstring(inner, value);
  evssh_buf_put_string(b, evssh_buf_data(inner), evssh_buf_len(inner));
  evssh_buf_free(inner);
}

START_TEST(critical_options) {
  char err[300];
  evssh_cert_check_id f;
  /* the options OpenSSH defines for user certificates are known */
  certify("ca_ed25519", "ed25519", "forced",
          "-n alice -O force-command=/bin/true -O source-address=127.0.0.1/32,::1 -O verify-required");
  evssh_cert *c = load_cert("forced");
  ck_assert_uint_eq(c->ncritical, 3);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_OK);
  const evssh_cert_option *fc = evssh_cert_critical(c, "force-command");
  ck_assert_ptr_nonnull(fc);
  ck_assert_uint_eq(fc->data_len, 4 + strlen("/bin/true"));
  ck_assert(memcmp(fc->data + 4, "/bin/true", 9) == 0);
  ck_assert_ptr_nonnull(evssh_cert_critical(c, "source-address"));
  ck_assert_ptr_null(evssh_cert_critical(c, "nothing"));
  evssh_cert_free(c);

  /* an unknown critical option, as ssh-keygen -O critical: writes it */
  certify("ca_ed25519", "ed25519", "unknown_crit", "-n alice -O critical:frobnicate@example.com=yes");
  c = load_cert("unknown_crit");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_CRITICAL_OPTION);
  ck_assert_str_eq(err, "unknown critical option frobnicate@example.com");
  evssh_cert_free(c);
  /* host certificates know no critical option at all */
  certify("ca_ed25519", "ed25519", "host_crit", "-h -n h.example -O critical:force-command=/bin/true");
  c = load_cert("host_crit");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "h.example", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_CRITICAL_OPTION);
  ck_assert_str_eq(err, "unknown critical option force-command (host certificates have none)");
  evssh_cert_free(c);

  /* injected into a plain user certificate and re-signed by the CA: the
     signature is genuine, the option still refuses it */
  certify("ca_ed25519", "ed25519", "plain_user", "-n alice");
  evssh_cert *orig = load_cert("plain_user");
  ck_assert_int_eq(evssh_cert_check(orig, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_OK);
  evssh_buf *crit = evssh_buf_new();
  put_option(crit, "force-command", "/bin/true");
  put_option(crit, "no-such-option@evssh.test", "x");
  c = resign_with_critical(orig, evssh_buf_data(crit), evssh_buf_len(crit), "ca_ed25519");
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(evssh_cert_verify(c, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_CRITICAL_OPTION);
  ck_assert_str_eq(err, "unknown critical option no-such-option@evssh.test");
  evssh_cert_free(c);
  /* the same blob not re-signed: the signature no longer covers it */
  evssh_buf_free(crit);
  crit = evssh_buf_new();
  put_option(crit, "force-command", "/bin/true");
  c = resign_with_critical(orig, evssh_buf_data(crit), evssh_buf_len(crit), "ca_other");
  ck_assert_ptr_nonnull(c); /* signed by ca_other but naming ca_ed25519 as its CA */
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_USER, "alice", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_SIGNATURE);
  ck_assert_ptr_nonnull(strstr(err, "CA signature (ssh-ed25519 by CA SHA256:"));
  ck_assert_ptr_nonnull(strstr(err, ") is invalid"));
  evssh_cert_free(c);
  /* an option named twice does not parse */
  evssh_buf_free(crit);
  crit = evssh_buf_new();
  put_option(crit, "force-command", "/bin/true");
  put_option(crit, "force-command", "/bin/false");
  ck_assert_ptr_null(resign_with_critical(orig, evssh_buf_data(crit), evssh_buf_len(crit), "ca_ed25519"));
  evssh_buf_free(crit);
  evssh_cert_free(orig);
}
END_TEST

/* Bytes flipped anywhere in a certificate: it either fails to parse or
   fails its signature check; and an RSA CA signing with ssh-rsa (SHA-1) is
   refused as OpenSSH's default CASignatureAlgorithms refuses it. */
START_TEST(tampering_and_sha1) {
  certify("ca_rsa", "ecdsa256", "tamper", "-h -n t.example");
  evssh_cert *c = load_cert("tamper");
  char err[300];
  evssh_cert_check_id f;
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "t.example", 1, &f, err, sizeof err), EVSSH_OK);
  unsigned char *copy = malloc(c->blob_len);
  for (size_t pos = 0; pos < c->blob_len; pos += 7) {
    memcpy(copy, c->blob, c->blob_len);
    copy[pos] ^= 0x20;
    evssh_cert *t = NULL;
    if (evssh_cert_parse(copy, c->blob_len, &t, err, sizeof err) != EVSSH_OK) continue;
    int rc = evssh_cert_check(t, EVSSH_CERT_TYPE_HOST, "t.example", 1, &f, err, sizeof err);
    /* a flip inside the signature's own algorithm name or padding may still
       parse; it must not pass */
    ck_assert_msg(rc != EVSSH_OK, "flip at %zu accepted", pos);
    evssh_cert_free(t);
  }
  free(copy);
  evssh_cert_free(c);
  /* cut short and trailing bytes */
  c = load_cert("tamper");
  evssh_cert *t = NULL;
  ck_assert_int_eq(evssh_cert_parse(c->blob, c->blob_len - 1, &t, err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "malformed certificate"));
  unsigned char *longer = calloc(1, c->blob_len + 1);
  memcpy(longer, c->blob, c->blob_len);
  ck_assert_int_eq(evssh_cert_parse(longer, c->blob_len + 1, &t, err, sizeof err), EVSSH_EINVAL);
  ck_assert_str_eq(err, "malformed certificate: data after the signature");
  free(longer);
  evssh_cert_free(c);

  certify("ca_rsa", "ed25519", "sha1", "-h -n t.example -t ssh-rsa");
  c = load_cert("sha1");
  ck_assert_str_eq(c->sig_alg, "ssh-rsa");
  ck_assert_int_eq(evssh_cert_check(c, EVSSH_CERT_TYPE_HOST, "t.example", 1, &f, err, sizeof err), EVSSH_EHOSTKEY);
  ck_assert_int_eq(f, EVSSH_CERT_SIGNATURE);
  ck_assert_ptr_nonnull(strstr(err, "CA signature algorithm ssh-rsa (SHA-1) refused"));
  evssh_cert_free(c);
  /* not certificates */
  char *line = slurp("ed25519", ".pub");
  ck_assert_int_eq(evssh_cert_parse_line(line, &t, NULL, err, sizeof err), EVSSH_EINVAL);
  ck_assert_str_eq(err, "not a certificate line");
  free(line);
  size_t kl;
  unsigned char *kb = pub_blob("ed25519", &kl);
  ck_assert_int_eq(evssh_cert_parse(kb, kl, &t, err, sizeof err), EVSSH_EINVAL);
  ck_assert_str_eq(err, "unsupported certificate type ssh-ed25519");
  free(kb);
}
END_TEST

/* ------------------------------------------------- known_hosts decisions */

/* A certificate whose CA signature does not verify is forged or damaged:
   ssh refuses it while decoding, so no fall-back to its key is offered; one
   signed with a refused algorithm (ssh-rsa, SHA-1) is only a policy
   refusal, after which ssh falls back. */
START_TEST(forged_signature_has_no_fallback) {
  certify("ca_rsa", "ecdsa256", "forged", "-h -n t.example");
  evssh_cert *c = load_cert("forged");
  char ca[4000], text[4200];
  pub_fields("ca_rsa", ".pub", ca, sizeof ca);
  snprintf(text, sizeof text, "@cert-authority t.example %s\n", ca);
  evssh_known_hosts *kh = kh_of(text, "t.example", 22);
  evssh_hostcert_result r = hostcert(kh, c, 1);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_ACCEPT);
  /* the last byte belongs to the signature itself */
  unsigned char *copy = malloc(c->blob_len);
  memcpy(copy, c->blob, c->blob_len);
  copy[c->blob_len - 1] ^= 0x01;
  char err[300] = "";
  ck_assert_int_eq(evssh_knownhosts_check_hostcert(kh, copy, c->blob_len, 1, &r, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_INVALID);
  ck_assert_int_eq(r.check, EVSSH_CERT_SIGNATURE);
  ck_assert(!r.fallback);
  free(copy);
  evssh_cert_free(c);
  certify("ca_rsa", "ed25519", "sha1ca", "-h -n t.example -t ssh-rsa");
  c = load_cert("sha1ca");
  r = hostcert(kh, c, 1);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_INVALID);
  ck_assert_int_eq(r.check, EVSSH_CERT_SIGNATURE);
  ck_assert(r.fallback);
  ck_assert_ptr_nonnull(strstr(r.message, "SHA-1"));
  evssh_cert_free(c);
  evssh_knownhosts_free(kh);
}
END_TEST

START_TEST(knownhosts_cert_authority) {
  char ca[4096], other_ca[4096], text[20000], hostkey[4096];
  pub_fields("ca_ed25519", ".pub", ca, sizeof ca);
  pub_fields("ca_other", ".pub", other_ca, sizeof other_ca);
  pub_fields("ed25519", ".pub", hostkey, sizeof hostkey);
  snprintf(text, sizeof text,
           "# CAs\n"
           "@cert-authority *.example.com,[*.example.com]:2222 %s\n"
           "@cert-authority *.elsewhere.test %s\n",
           ca, other_ca);
  uint64_t now = (uint64_t)time(NULL);
  certify("ca_ed25519", "ed25519", "web1", "-h -n web1.example.com -V -1h:+1h");
  evssh_cert *c = load_cert("web1");

  evssh_known_hosts *kh = kh_of(text, "web1.example.com", 22);
  ck_assert(evssh_knownhosts_has_cert_authority(kh));
  evssh_hostcert_result r = hostcert(kh, c, now);
  ck_assert_msg(r.status == EVSSH_HOSTCERT_ACCEPT, "%s", r.message);
  ck_assert_str_eq(r.file, "kh");
  ck_assert_int_eq(r.line, 2);
  ck_assert_str_eq(r.key_type, "ssh-ed25519");
  ck_assert_str_eq(r.key_id, "id-web1");
  ck_assert_ptr_nonnull(strstr(r.message, "accepted"));
  /* outside its window: refused by the check, ssh would fall back */
  r = hostcert(kh, c, now + 7200);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_INVALID);
  ck_assert_int_eq(r.check, EVSSH_CERT_EXPIRED);
  ck_assert(r.fallback);
  ck_assert_ptr_nonnull(strstr(r.message, "host certificate for web1.example.com (ssh-ed25519-cert-v01@openssh.com"));
  ck_assert_ptr_nonnull(strstr(r.message, "key id \"id-web1\""));
  ck_assert_ptr_nonnull(strstr(r.message, "): expired at "));
  /* no plain key for the name: the fallback lookup of the certificate finds
     nothing, so a strict policy refuses */
  evssh_kh_result pr;
  char err[300];
  ck_assert_int_eq(evssh_knownhosts_lookup(kh, c->blob, c->blob_len, &pr, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(pr.status, EVSSH_KH_UNKNOWN);
  ck_assert_str_eq(pr.got_type, "ssh-ed25519");
  evssh_knownhosts_free(kh);

  /* [host]:port patterns as for plain lines */
  kh = kh_of(text, "web1.example.com", 2222);
  ck_assert_int_eq(hostcert(kh, c, now).status, EVSSH_HOSTCERT_ACCEPT);
  evssh_knownhosts_free(kh);
  /* a CA line for the server's address does not vouch for its name */
  char atext[8192];
  snprintf(atext, sizeof atext, "@cert-authority 10.1.2.3 %s\n", ca);
  char aerr[300];
  ck_assert_int_eq(evssh_knownhosts_load_text(atext, strlen(atext), "kh", "web1.example.com", 22, "10.1.2.3", &kh,
                                              aerr, sizeof aerr),
                   EVSSH_OK);
  ck_assert(!evssh_knownhosts_has_cert_authority(kh));
  ck_assert_int_eq(hostcert(kh, c, now).status, EVSSH_HOSTCERT_UNKNOWN_CA);
  evssh_knownhosts_free(kh);
  kh = kh_of(text, "web1.example.com", 2200);
  ck_assert(!evssh_knownhosts_has_cert_authority(kh));
  r = hostcert(kh, c, now);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_UNKNOWN_CA);
  ck_assert(r.fallback);
  evssh_knownhosts_free(kh);

  /* a host certificate for another host, from the trusted CA */
  kh = kh_of(text, "web2.example.com", 22);
  r = hostcert(kh, c, now);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_INVALID);
  ck_assert_int_eq(r.check, EVSSH_CERT_PRINCIPAL);
  ck_assert_ptr_nonnull(strstr(r.message, "web2.example.com is not among the principals (web1.example.com)"));
  evssh_knownhosts_free(kh);
  evssh_cert_free(c);

  /* signed by a CA that no line trusts for this host (ca_other is trusted
     for another domain only) */
  certify("ca_other", "ed25519", "web1_other", "-h -n web1.example.com");
  c = load_cert("web1_other");
  kh = kh_of(text, "web1.example.com", 22);
  r = hostcert(kh, c, now);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_UNKNOWN_CA);
  ck_assert_ptr_nonnull(strstr(r.message, "no @cert-authority line for web1.example.com has the CA key SHA256:"));
  evssh_knownhosts_free(kh);
  /* ... and the fallback finds the plain key when known_hosts has it */
  char text2[32000];
  snprintf(text2, sizeof text2, "%sweb1.example.com %s\n", text, hostkey);
  kh = kh_of(text2, "web1.example.com", 22);
  ck_assert_int_eq(evssh_knownhosts_lookup(kh, c->blob, c->blob_len, &pr, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(pr.status, EVSSH_KH_MATCH);
  ck_assert_int_eq(pr.line, 4);
  evssh_knownhosts_free(kh);
  /* accept-new after the fallback records the certified key, not the
     certificate (which expires) */
  char added[300];
  snprintf(added, sizeof added, "%s/added_known_hosts", tmpdir);
  ck_assert_int_eq(evssh_knownhosts_add(added, "web1.example.com", 22, c->blob, c->blob_len, false, err, sizeof err),
                   EVSSH_OK);
  char *written = slurp("added_known_hosts", "");
  char want_line[4200];
  snprintf(want_line, sizeof want_line, "web1.example.com %s\n", hostkey);
  ck_assert_str_eq(written, want_line);
  free(written);
  evssh_cert_free(c);

  /* a user certificate where a host certificate is required */
  certify("ca_ed25519", "ed25519", "web1_user", "-n web1.example.com");
  c = load_cert("web1_user");
  kh = kh_of(text, "web1.example.com", 22);
  r = hostcert(kh, c, now);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_INVALID);
  ck_assert_int_eq(r.check, EVSSH_CERT_WRONG_TYPE);
  ck_assert_ptr_nonnull(strstr(r.message, "not a host certificate"));
  evssh_cert_free(c);
  /* empty principals and host critical options */
  certify("ca_ed25519", "ed25519", "web1_any", "-h");
  c = load_cert("web1_any");
  r = hostcert(kh, c, now);
  ck_assert_int_eq(r.check, EVSSH_CERT_NO_PRINCIPALS);
  evssh_cert_free(c);
  certify("ca_ed25519", "ed25519", "web1_crit", "-h -n web1.example.com -O critical:x@example.com");
  c = load_cert("web1_crit");
  r = hostcert(kh, c, now);
  ck_assert_int_eq(r.check, EVSSH_CERT_CRITICAL_OPTION);
  evssh_cert_free(c);
  /* wildcard principals */
  certify("ca_ed25519", "ed25519", "web_wild", "-h -n '*.example.com'");
  c = load_cert("web_wild");
  ck_assert_int_eq(hostcert(kh, c, now).status, EVSSH_HOSTCERT_ACCEPT);
  evssh_cert_free(c);
  /* not a certificate */
  size_t kl;
  unsigned char *kb = pub_blob("ed25519", &kl);
  ck_assert_int_eq(evssh_knownhosts_check_hostcert(kh, kb, kl, now, &r, err, sizeof err), EVSSH_EINVAL);
  free(kb);
  evssh_knownhosts_free(kh);
}
END_TEST

static const char *write_file(const char *name, const char *text) {
  static char path[4][300];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, 300, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  return p;
}

/* @revoked lines and RevokedHostKeys lists revoke CA keys and certified
   keys alike; a revocation list that cannot be read is an error. */
START_TEST(revocation) {
  char ca[4096], rca[4096], hostkey[4096], certline[8192], text[40000], err[400];
  pub_fields("ca_ed25519", ".pub", ca, sizeof ca);
  pub_fields("ca_revoked", ".pub", rca, sizeof rca);
  pub_fields("ecdsa256", ".pub", hostkey, sizeof hostkey);
  uint64_t now = (uint64_t)time(NULL);
  certify("ca_revoked", "ed25519", "by_revoked_ca", "-h -n r.example.com");
  certify("ca_ed25519", "ecdsa256", "revoked_key", "-h -n r.example.com");
  pub_fields("revoked_key", "-cert.pub", certline, sizeof certline);
  evssh_cert *c1 = load_cert("by_revoked_ca"), *c2 = load_cert("revoked_key");

  /* a revoked CA, even though a @cert-authority line trusts it */
  snprintf(text, sizeof text, "@cert-authority * %s\n@cert-authority * %s\n@revoked * %s\n", ca, rca, rca);
  evssh_known_hosts *kh = kh_of(text, "r.example.com", 22);
  evssh_hostcert_result r = hostcert(kh, c1, now);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_REVOKED);
  ck_assert(!r.fallback);
  ck_assert_int_eq(r.line, 3);
  ck_assert_ptr_nonnull(strstr(r.message, "the CA key is revoked (kh line 3)"));
  ck_assert_int_eq(hostcert(kh, c2, now).status, EVSSH_HOSTCERT_ACCEPT);
  /* the plain lookup of a certificate from a revoked CA is revoked too */
  evssh_kh_result pr;
  ck_assert_int_eq(evssh_knownhosts_lookup(kh, c1->blob, c1->blob_len, &pr, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(pr.status, EVSSH_KH_REVOKED);
  evssh_knownhosts_free(kh);

  /* a revoked certified key: by its plain key, and by a line holding the
     certificate itself; for another host pattern it does not apply */
  const char *revokers[] = {hostkey, certline};
  for (int i = 0; i < 2; i++) {
    snprintf(text, sizeof text, "@cert-authority * %s\n@revoked r.example.com %s\n", ca, revokers[i]);
    kh = kh_of(text, "r.example.com", 22);
    r = hostcert(kh, c2, now);
    ck_assert_int_eq(r.status, EVSSH_HOSTCERT_REVOKED);
    ck_assert_ptr_nonnull(strstr(r.message, "the certified key is revoked (kh line 2)"));
    /* and the plain key on its own is revoked */
    size_t kl;
    unsigned char *kb = pub_blob("ecdsa256", &kl);
    ck_assert_int_eq(evssh_knownhosts_lookup(kh, kb, kl, &pr, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(pr.status, EVSSH_KH_REVOKED);
    free(kb);
    evssh_knownhosts_free(kh);
    kh = kh_of(text, "s.example.com", 22);
    certify("ca_ed25519", "ecdsa256", "revoked_key_s", "-h -n s.example.com");
    evssh_cert *cs = load_cert("revoked_key_s");
    ck_assert_int_eq(hostcert(kh, cs, now).status, EVSSH_HOSTCERT_ACCEPT);
    evssh_cert_free(cs);
    evssh_knownhosts_free(kh);
  }

  /* RevokedHostKeys: plain key list, for every host, keys and CAs */
  snprintf(text, sizeof text, "@cert-authority * %s\n@cert-authority * %s\n", ca, rca);
  char list[10000];
  snprintf(list, sizeof list, "# revoked\n\n%s some comment\n", hostkey);
  const char *lp = write_file("revoked_keys", list);
  kh = kh_of(text, "r.example.com", 22);
  ck_assert_int_eq(hostcert(kh, c2, now).status, EVSSH_HOSTCERT_ACCEPT);
  ck_assert_msg(evssh_knownhosts_load_revoked(kh, lp, err, sizeof err) == EVSSH_OK, "%s", err);
  r = hostcert(kh, c2, now);
  ck_assert_int_eq(r.status, EVSSH_HOSTCERT_REVOKED);
  ck_assert_int_eq(r.line, 3);
  ck_assert_ptr_nonnull(strstr(r.message, "the certified key is revoked (RevokedHostKeys "));
  ck_assert_int_eq(hostcert(kh, c1, now).status, EVSSH_HOSTCERT_ACCEPT);
  evssh_knownhosts_free(kh);
  snprintf(list, sizeof list, "%s\n", rca);
  lp = write_file("revoked_cas", list);
  kh = kh_of(text, "r.example.com", 22);
  ck_assert_int_eq(evssh_knownhosts_load_revoked(kh, lp, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(hostcert(kh, c1, now).status, EVSSH_HOSTCERT_REVOKED);
  ck_assert_int_eq(hostcert(kh, c2, now).status, EVSSH_HOSTCERT_ACCEPT);
  /* a bad line, a missing file and a KRL are errors, not "nothing revoked" */
  lp = write_file("revoked_bad", "ssh-ed25519 AAAA-not-base64\n");
  ck_assert_int_eq(evssh_knownhosts_load_revoked(kh, lp, err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "line 1: not a public key"));
  ck_assert_int_eq(evssh_knownhosts_load_revoked(kh, "/nonexistent/revoked", err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent/revoked: No such file"));
  char krl[300];
  snprintf(krl, sizeof krl, "%s/krl", tmpdir);
  ck_assert_int_eq(harness_sh("ssh-keygen -q -k -f '%s' '%s/ecdsa256.pub' >/dev/null 2>&1", krl, tmpdir), 0);
  ck_assert_int_eq(evssh_knownhosts_load_revoked(kh, krl, err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "KRL (binary) revocation lists are not supported yet"));
  evssh_knownhosts_free(kh);
  evssh_cert_free(c1);
  evssh_cert_free(c2);
}
END_TEST

/* ------------------------------------------------------ user certificates */

START_TEST(user_cert_beside_identity) {
  char path[300], err[400];
  uint64_t now = (uint64_t)time(NULL);
  for (int t = 0; t < NKTYPES; t++) {
    /* a user key pair with its certificate where ssh looks for it */
    char name[64];
    snprintf(name, sizeof name, "id_%s", ktypes[t].name);
    ck_assert_int_eq(harness_sh("cp '%s/%s' '%s/%s' && cp '%s/%s.pub' '%s/%s.pub'", tmpdir, ktypes[t].name, tmpdir, name,
                         tmpdir, ktypes[t].name, tmpdir, name),
                     0);
    ck_assert_int_eq(harness_sh("ssh-keygen -q -s '%s/ca_ecdsa' -I user-%s -n alice -V -1h:+1h '%s/%s.pub' >/dev/null 2>&1",
                         tmpdir, name, tmpdir, name),
                     0);
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    evssh_key *k = NULL;
    ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &k, err, sizeof err), EVSSH_OK);
    ck_assert_ptr_null(evssh_key_cert(k));
    ck_assert_ptr_null(evssh_key_cert_sig_alg(k, NULL, NULL));
    bool found = false;
    ck_assert_msg(evssh_key_load_identity_cert(k, path, &found, err, sizeof err) == EVSSH_OK, "%s", err);
    ck_assert(found);
    const evssh_cert *c = evssh_key_cert(k);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->type, ktypes[t].cert_type);
    ck_assert_int_eq(evssh_key_cert_usable(k, now, err, sizeof err), EVSSH_OK);
    /* the algorithm offered and the signature it stands for */
    const char *alg = evssh_key_cert_sig_alg(k, "rsa-sha2-256", NULL);
    const char *want = t == NKTYPES - 1 ? "rsa-sha2-256-cert-v01@openssh.com" : ktypes[t].cert_type;
    ck_assert_str_eq(alg, want);
    const unsigned char *cb;
    size_t cl;
    ck_assert_int_eq(evssh_key_cert_blob(k, &cb, &cl), EVSSH_OK);
    evssh_buf *sig = evssh_buf_new();
    ck_assert_int_eq(evssh_key_sign(k, alg, message, sizeof message, sig), EVSSH_OK);
    ck_assert_msg(evssh_hostkey_verify(cb, cl, alg, evssh_buf_data(sig), evssh_buf_len(sig), message, sizeof message,
                                       err, sizeof err) == EVSSH_OK,
                  "%s", err);
    evssh_buf_free(sig);
    /* a certificate algorithm of another key type does not sign */
    sig = evssh_buf_new();
    ck_assert_int_eq(evssh_key_sign(k, t ? "ssh-ed25519-cert-v01@openssh.com" : "rsa-sha2-512-cert-v01@openssh.com",
                                    message, sizeof message, sig),
                     EVSSH_EINVAL);
    evssh_buf_free(sig);

    /* the .pub loaded first keeps the certificate for the private key
       loaded later */
    char pubpath[320];
    snprintf(pubpath, sizeof pubpath, "%s.pub", path);
    evssh_key *pub = NULL;
    ck_assert_int_eq(evssh_key_load_public(pubpath, &pub, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(evssh_key_load_identity_cert(pub, path, &found, err, sizeof err), EVSSH_OK);
    evssh_key *priv = NULL;
    ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &priv, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(evssh_key_cert_blob(pub, &cb, &cl), EVSSH_OK);
    ck_assert_int_eq(evssh_key_attach_cert(priv, cb, cl, err, sizeof err), EVSSH_OK);
    ck_assert_ptr_nonnull(evssh_key_cert(priv));
    ck_assert(evssh_key_can_sign(priv));
    evssh_key_free(pub);
    evssh_key_free(priv);
    evssh_key_free(k);
  }
  /* no certificate beside it: fine, nothing attached */
  snprintf(path, sizeof path, "%s/ed25519", tmpdir);
  evssh_key *k = NULL;
  ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &k, err, sizeof err), EVSSH_OK);
  bool found = true;
  ck_assert_int_eq(evssh_key_load_identity_cert(k, path, &found, err, sizeof err), EVSSH_OK);
  ck_assert(!found);
  ck_assert_ptr_null(evssh_key_cert(k));
  ck_assert_int_eq(evssh_key_cert_usable(k, now, err, sizeof err), EVSSH_EINVAL);
  /* a certificate for another key is refused */
  char other[300];
  snprintf(other, sizeof other, "%s/id_ecdsa256-cert.pub", tmpdir);
  ck_assert_int_eq(evssh_key_load_cert(k, other, err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "certificate is for another key (ecdsa-sha2-nistp256 SHA256:"));
  ck_assert_ptr_nonnull(strstr(err, other));
  ck_assert_ptr_null(evssh_key_cert(k));
  /* a file that exists beside the key but is not a certificate */
  ck_assert_int_eq(harness_sh("cp '%s/ed25519.pub' '%s/ed25519-cert.pub'", tmpdir, tmpdir), 0);
  ck_assert_int_eq(evssh_key_load_identity_cert(k, path, &found, err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "not a certificate line"));
  unlink(strcat(path, "-cert.pub"));
  evssh_key_free(k);
}
END_TEST

/* Expired, not yet valid and host certificates are detected before they
   are offered, with a message that says which. */
START_TEST(user_cert_usable) {
  const char *windows[] = {"-V -2d:-1d", "-V +1d:+2d", "-h -n alice", "-n alice -O critical:odd@example.com"};
  const char *why[] = {"not offered: expired at ", "not offered: not yet valid (valid from ",
                       "not offered: not a user certificate", "not offered: unknown critical option odd@example.com"};
  char path[300], err[500];
  snprintf(path, sizeof path, "%s/ecdsa384", tmpdir);
  for (int i = 0; i < 4; i++) {
    char out[32], opts[200];
    snprintf(out, sizeof out, "usable%d", i);
    snprintf(opts, sizeof opts, "%s%s", i < 2 ? "-n alice " : "", windows[i]);
    certify("ca_ed25519", "ecdsa384", out, opts);
    evssh_key *k = NULL;
    ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &k, err, sizeof err), EVSSH_OK);
    char cpath[300];
    snprintf(cpath, sizeof cpath, "%s/%s-cert.pub", tmpdir, out);
    ck_assert_int_eq(evssh_key_load_cert(k, cpath, err, sizeof err), EVSSH_OK);
    ck_assert_int_eq(evssh_key_cert_usable(k, (uint64_t)time(NULL), err, sizeof err), EVSSH_EAUTH);
    ck_assert_msg(strstr(err, why[i]) != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "certificate for key ecdsa384@test (ecdsa-sha2-nistp384-cert-v01@openssh.com"));
    evssh_key_free(k);
  }
}
END_TEST

/* A CertificateFile on its own, paired with the private key it certifies. */
START_TEST(certificate_file) {
  char err[400], path[300];
  certify("ca_ed25519", "rsa", "certfile", "-n alice");
  snprintf(path, sizeof path, "%s/certfile-cert.pub", tmpdir);
  evssh_key *ck = NULL;
  ck_assert_msg(evssh_key_load_cert_file(path, &ck, err, sizeof err) == EVSSH_OK, "%s", err);
  ck_assert(!evssh_key_can_sign(ck));
  ck_assert_str_eq(evssh_key_type(ck), "ssh-rsa");
  ck_assert_str_eq(evssh_key_comment(ck), "rsa@test");
  const unsigned char *kb, *cb;
  size_t kl, cl;
  size_t wl;
  unsigned char *want = pub_blob("rsa", &wl);
  ck_assert_int_eq(evssh_key_public_blob(ck, &kb, &kl), EVSSH_OK);
  ck_assert_uint_eq(kl, wl);
  ck_assert_mem_eq(kb, want, wl);
  free(want);
  ck_assert_int_eq(evssh_key_cert_blob(ck, &cb, &cl), EVSSH_OK);
  ck_assert_str_eq(evssh_key_cert_sig_alg(ck, NULL, NULL), "rsa-sha2-512-cert-v01@openssh.com");
  snprintf(path, sizeof path, "%s/rsa", tmpdir);
  evssh_key *priv = NULL;
  ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &priv, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_key_attach_cert(priv, cb, cl, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_key_cert_usable(priv, (uint64_t)time(NULL), err, sizeof err), EVSSH_OK);
  evssh_key_free(priv);
  /* another private key does not take it */
  snprintf(path, sizeof path, "%s/ecdsa256", tmpdir);
  ck_assert_int_eq(evssh_key_load_private(path, NULL, NULL, &priv, err, sizeof err), EVSSH_OK);
  ck_assert_int_eq(evssh_key_attach_cert(priv, cb, cl, err, sizeof err), EVSSH_EINVAL);
  evssh_key_free(priv);
  evssh_key_free(ck);
  /* a plain public key file is not a certificate file */
  snprintf(path, sizeof path, "%s/rsa.pub", tmpdir);
  ck_assert_int_eq(evssh_key_load_cert_file(path, &ck, err, sizeof err), EVSSH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "not a certificate line"));
}
END_TEST

/* ------------------------------------------------------------------ agent */

static pid_t agent_pid = -1;
static char agent_sock[128];

START_TEST(agent_certificates) {
  char err[400];
  /* ssh-add loads the key and the certificate beside it */
  certify("ca_ed25519", "rsa", "agent_rsa", "-n alice");
  certify("ca_ed25519", "ed25519", "agent_ed", "-n alice");
  ck_assert_int_eq(harness_sh("cp '%s/rsa' '%s/agent_rsa' && cp '%s/ed25519' '%s/agent_ed' && chmod 600 '%s/agent_rsa' "
                       "'%s/agent_ed' && SSH_AUTH_SOCK='%s' ssh-add -q '%s/agent_rsa' '%s/agent_ed' </dev/null "
                       ">/dev/null 2>&1",
                       tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, agent_sock, tmpdir, tmpdir),
                   0);
  evssh_agent *a = NULL;
  ck_assert_int_eq(evssh_agent_open(agent_sock, &a, err, sizeof err), EVSSH_OK);
  evssh_agent_identity *ids = NULL;
  size_t n = 0;
  ck_assert_int_eq(evssh_agent_identities(a, &ids, &n, err, sizeof err), EVSSH_OK);
  int plain = 0, certs = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ids[i].cert) {
      ck_assert(!evssh_cert_is_cert_name(ids[i].type));
      plain++;
      continue;
    }
    certs++;
    const evssh_cert *c = ids[i].cert;
    ck_assert_str_eq(ids[i].type, c->type);
    const char *base = strcmp(c->key_type, "ssh-rsa") == 0 ? "rsa" : "ed25519";
    size_t kl;
    unsigned char *kb = pub_blob(base, &kl);
    ck_assert_uint_eq(c->key_blob_len, kl);
    ck_assert_mem_eq(c->key_blob, kb, kl);
    free(kb);
    /* the agent signs for the certificate with the plain algorithm */
    const char *alg = evssh_sig_alg_for_type(ids[i].type, "rsa-sha2-512,rsa-sha2-256", NULL);
    ck_assert_ptr_nonnull(alg);
    evssh_buf *sig = evssh_buf_new();
    ck_assert_msg(evssh_agent_sign(a, ids[i].blob, ids[i].blob_len, alg, message, sizeof message, sig, err,
                                   sizeof err) == EVSSH_OK,
                  "%s", err);
    ck_assert_msg(evssh_hostkey_verify(ids[i].blob, ids[i].blob_len, alg, evssh_buf_data(sig), evssh_buf_len(sig),
                                       message, sizeof message, err, sizeof err) == EVSSH_OK,
                  "%s: %s", alg, err);
    evssh_buf_free(sig);
  }
  ck_assert_int_eq(plain, 2);
  ck_assert_int_eq(certs, 2);
  evssh_agent_identities_free(ids, n);
  evssh_agent_close(a);
}
END_TEST

/* ------------------------------------------------------------------ setup */

/* ssh-agent goes to the background once its socket listens and prints
   its pid as SSH_AGENT_PID=N; main kills it at the end */
static void start_agent(void) {
  snprintf(agent_sock, sizeof agent_sock, "%s/agent.sock", tmpdir);
  char cmd[300], line[300];
  snprintf(cmd, sizeof cmd, "ssh-agent -s -a '%s' </dev/null", agent_sock);
  FILE *p = popen(cmd, "r");
  while (p && fgets(line, sizeof line, p)) {
    const char *at = strstr(line, "SSH_AGENT_PID=");
    if (at) agent_pid = (pid_t)atoi(at + strlen("SSH_AGENT_PID="));
  }
  if (!p || pclose(p) != 0 || agent_pid <= 0) {
    fprintf(stderr, "ssh-agent did not start\n");
    exit(1);
  }
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/evssh-cert-XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  for (int i = 0; i < NKTYPES; i++) keygen(ktypes[i].name, ktypes[i].args);
  keygen("ca_ed25519", "-t ed25519");
  keygen("ca_ecdsa", "-t ecdsa -b 384");
  keygen("ca_rsa", "-t rsa -b 2048");
  keygen("ca_other", "-t ed25519");
  keygen("ca_revoked", "-t ed25519");
  start_agent();

  Suite *s = suite_create("cert");
  TCase *tc = tcase_create("cert");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, parse_verify_every_type, 0, NKTYPES * NCAS);
  tcase_add_test(tc, algorithm_names);
  tcase_add_test(tc, validity_windows);
  tcase_add_test(tc, principals_and_wildcards);
  tcase_add_test(tc, type_user_vs_host);
  tcase_add_test(tc, critical_options);
  tcase_add_test(tc, tampering_and_sha1);
  tcase_add_test(tc, forged_signature_has_no_fallback);
  tcase_add_test(tc, knownhosts_cert_authority);
  tcase_add_test(tc, revocation);
  tcase_add_test(tc, user_cert_beside_identity);
  tcase_add_test(tc, user_cert_usable);
  tcase_add_test(tc, certificate_file);
  tcase_add_test(tc, agent_certificates);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (agent_pid > 0) kill(agent_pid, SIGTERM); /* not our child: nothing to wait for */
  harness_sh("rm -rf '%s'", tmpdir);
  return failed ? 1 : 0;
}
