/* OpenSSH certificates against a real OpenSSH sshd (issue 13). ssh-keygen
 * makes a host CA, a user CA and an unrelated CA; one sshd gets host keys
 * of every type, each with a HostCertificate chosen to exercise one check
 * (ed25519 and RSA: valid for 127.0.0.1, certhost.example and
 * *.wild.example; nistp256: expired; nistp384: not yet valid; nistp521: a
 * user certificate posing as a host one), and TrustedUserCAKeys for the
 * user CA. No client key here is in authorized_keys, so a login proves the
 * user certificate was offered and taken.
 *
 * Host side: with a @cert-authority line the certificate algorithm is
 * negotiated first and accepted (the application check sees the
 * certificate type); HostKeyAlias names the principal and the known_hosts
 * entry; wildcard principals; RSA certificates as rsa-sha2-512/256-cert;
 * refusals for each check: expired, not yet valid, a principal that does
 * not match, a user certificate, an unknown CA, the certified key or the
 * CA @revoked, the key in RevokedHostKeys (each EVSSH_EHOSTKEY or
 * EVSSH_EHOSTKEY_CHANGED with a message naming the check); falling back to
 * a plain known_hosts entry for the certified key as ssh does.
 *
 * User side: IDENTITY-cert.pub beside an IdentityFile, CertificateFile
 * (which switches the automatic one off), RSA certificates with the
 * algorithm PubkeyAcceptedAlgorithms allows, certificates held by
 * ssh-agent, a CertificateFile whose key only the agent holds; an expired
 * certificate is not sent, one for another key is not offered, one from a
 * CA the server does not trust is refused, each named in the error.
 *
 * The real ~/.ssh/config and SSH_AUTH_SOCK are never used. */
#include "evssh.h"
#include "harness.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static harness_peer peer;
static char W[512];       /* work directory: CAs, keys, certificates */
static int file_counter;
/* two agents: u_agent and u_expired with their certificates; u_agent2's
   key alone */
static pid_t agent_pid[2] = {-1, -1};
static char agent_sock[2][600];

static void new_path(char *out, size_t len, const char *what) {
  snprintf(out, len, "%s/%s-%d-%d", W, what, (int)getpid(), ++file_counter);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}

/* "type base64" of W/name.pub */
static void pub_of(const char *name, char *out, size_t len) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s.pub", W, name);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "%s", path);
  char type[64], b64[2048];
  ck_assert_int_eq(fscanf(f, "%63s %2047s", type, b64), 2);
  fclose(f);
  snprintf(out, len, "%s %s", type, b64);
}

static void fingerprint(const char *name, char *out, size_t len) {
  char cmd[800];
  snprintf(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f '%s/%s.pub'", W, name);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  int bits;
  char fp[128];
  ck_assert_int_eq(fscanf(p, "%d %127s", &bits, fp), 2);
  pclose(p);
  snprintf(out, len, "%s", fp);
}

/* A known_hosts file: "@cert-authority PATTERN <ca>.pub" and extra lines */
static void ca_known_hosts(char *path, size_t len, const char *pattern, const char *ca, const char *extra) {
  char pub[2200], text[8000];
  pub_of(ca, pub, sizeof pub);
  snprintf(text, sizeof text, "@cert-authority %s %s\n%s", pattern, pub, extra ? extra : "");
  new_path(path, len, "known_hosts");
  write_file(path, text);
}

/* ------------------------------------------------------ one connection */

typedef struct attempt {
  const char *known_hosts;
  const char *identity;            /* W/name; NULL: none */
  const char *opts[12];
  /* outputs */
  int rc;
  char err[1500];
  int checks;
  char check_type[80], check_fp[128];
  char log[8192];                  /* the DEBUG log lines that matter here */
} attempt;

static int on_check(evssh_session *s, const char *keytype, const char *fp, void *ud) {
  attempt *a = ud;
  a->checks++;
  snprintf(a->check_type, sizeof a->check_type, "%s", keytype);
  snprintf(a->check_fp, sizeof a->check_fp, "%s", fp);
  return 0;
}

static void on_log(evssh_session *s, int level, const char *msg, void *ud) {
  attempt *a = ud;
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "    log[%d] %s\n", level, msg);
  if (strstr(msg, "offering") || strstr(msg, "certificate") || strstr(msg, "authenticated")) {
    size_t n = strlen(a->log);
    snprintf(a->log + n, sizeof a->log - n, "%s\n", msg);
  }
}

static void run_attempt(attempt *a) {
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(evssh_session_read_config(s, "none"), EVSSH_OK);
  char port[16], id[700];
  snprintf(port, sizeof port, "%d", peer.port);
  ck_assert_int_eq(evssh_session_option(s, "Port", port), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "User", peer.user), EVSSH_OK);
  if (a->identity) {
    snprintf(id, sizeof id, "%s/%s", W, a->identity);
    ck_assert_int_eq(evssh_session_option(s, "IdentityFile", id), EVSSH_OK);
  } else {
    /* the harness's authorised key: host tests do not lean on user
       certificates */
    ck_assert_int_eq(evssh_session_option(s, "IdentityFile", peer.key_ed25519), EVSSH_OK);
  }
  ck_assert_int_eq(evssh_session_option(s, "GlobalKnownHostsFile", "none"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "ConnectTimeout", "30"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "PreferredAuthentications", "publickey"), EVSSH_OK);
  if (a->known_hosts) ck_assert_int_eq(evssh_session_option(s, "UserKnownHostsFile", a->known_hosts), EVSSH_OK);
  bool agent_set = false;
  for (size_t i = 0; a->opts[i]; i++) {
    const char *eq = strchr(a->opts[i], '=');
    ck_assert_ptr_nonnull(eq);
    char kw[64];
    snprintf(kw, sizeof kw, "%.*s", (int)(eq - a->opts[i]), a->opts[i]);
    agent_set |= strcmp(kw, "IdentityAgent") == 0;
    ck_assert_msg(evssh_session_option(s, kw, eq + 1) == EVSSH_OK, "option %s: %s", a->opts[i],
                  evssh_session_error(s));
  }
  if (!agent_set) {
    ck_assert_int_eq(evssh_session_option(s, "IdentitiesOnly", "yes"), EVSSH_OK);
    ck_assert_int_eq(evssh_session_option(s, "IdentityAgent", "none"), EVSSH_OK);
  }
  evssh_session_set_hostkey_check(s, on_check, a);
  evssh_session_set_log(s, EVSSH_LOG_DEBUG, on_log, a);
  a->rc = evssh_session_connect(s);
  snprintf(a->err, sizeof a->err, "%s", a->rc ? evssh_session_error(s) : "");
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "  connect: %d %s\n", a->rc, a->err);
  if (a->rc == EVSSH_OK) {
    evssh_result r;
    ck_assert_int_eq(evssh_session_exec_wait(s, "echo up", &r), EVSSH_OK);
    ck_assert_str_eq(r.out, "up\n");
    evssh_result_free(&r);
  }
  evssh_session_free(s);
}

#define assert_ok(a) ck_assert_msg((a)->rc == EVSSH_OK, "connect failed: %d %s", (a)->rc, (a)->err)
#define assert_has(hay, text) ck_assert_msg(strstr((hay), (text)) != NULL, "\"%s\" lacks \"%s\"", (hay), (text))
#define assert_refused(a, code, text)                                                                         \
  do {                                                                                                        \
    ck_assert_msg((a)->rc == (code), "want %d, got %d: %s", (code), (a)->rc, (a)->err);                      \
    assert_has((a)->err, text);                                                                               \
    ck_assert_int_eq((a)->checks, 0);                                                                         \
  } while (0)

static char name_pattern[64];   /* "[127.0.0.1]:PORT" */

/* ------------------------------------------------------------ host side */

START_TEST(host_cert_accepted_and_negotiated_first) {
  char kh[700], fp[128];
  ca_known_hosts(kh, sizeof kh, name_pattern, "host_ca", NULL);
  attempt a = {.known_hosts = kh};
  run_attempt(&a);
  assert_ok(&a);
  /* the default order would ask for ssh-ed25519 if certificates were not
     moved first for the CA */
  ck_assert_str_eq(a.check_type, "ssh-ed25519-cert-v01@openssh.com");
  fingerprint("hk_ed25519", fp, sizeof fp);
  ck_assert_str_eq(a.check_fp, fp);
}
END_TEST

START_TEST(host_cert_wildcard_ca_line_and_rsa_variants) {
  char kh[700];
  ca_known_hosts(kh, sizeof kh, "*", "host_ca", NULL);
  const char *algs[] = {"rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com"};
  for (int i = 0; i < 2; i++) {
    char opt[200];
    snprintf(opt, sizeof opt, "HostKeyAlgorithms=%s", algs[i]);
    attempt a = {.known_hosts = kh, .opts = {opt}};
    run_attempt(&a);
    assert_ok(&a);
    ck_assert_str_eq(a.check_type, "ssh-rsa-cert-v01@openssh.com");
  }
}
END_TEST

START_TEST(host_key_alias_is_the_principal) {
  char kh[700];
  ca_known_hosts(kh, sizeof kh, "certhost.example", "host_ca", NULL);
  attempt a = {.known_hosts = kh, .opts = {"HostKeyAlias=CertHost.example"}};
  run_attempt(&a);
  assert_ok(&a);
  ck_assert_str_eq(a.check_type, "ssh-ed25519-cert-v01@openssh.com");
  /* a principal pattern *.wild.example covers a.wild.example */
  char kh2[700];
  ca_known_hosts(kh2, sizeof kh2, "*.wild.example", "host_ca", NULL);
  attempt b = {.known_hosts = kh2, .opts = {"HostKeyAlias=a.wild.example"}};
  run_attempt(&b);
  assert_ok(&b);
  /* without the alias the CA line (for certhost.example) does not apply */
  attempt c = {.known_hosts = kh};
  run_attempt(&c);
  assert_refused(&c, EVSSH_EHOSTKEY, "not known");
}
END_TEST

START_TEST(host_key_alias_finds_plain_entries) {
  char kh[700], pub[2200], text[3000];
  pub_of("hk_ed25519", pub, sizeof pub);
  snprintf(text, sizeof text, "plainalias %s\n", pub);
  new_path(kh, sizeof kh, "known_hosts");
  write_file(kh, text);
  attempt a = {.known_hosts = kh, .opts = {"HostKeyAlias=plainalias", "HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&a);
  assert_ok(&a);
  attempt b = {.known_hosts = kh, .opts = {"HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&b);
  assert_refused(&b, EVSSH_EHOSTKEY, "not known");
}
END_TEST

/* One host certificate per failed check (main() says which key has which
   certificate); none of the certified keys is in known_hosts, so each is
   refused after the fall-back with the certificate's story first. */
static const struct {
  const char *ca_pattern;       /* NULL: [127.0.0.1]:PORT */
  const char *opt;
  const char *text;
} refusals[] = {
    {"other.example", "HostKeyAlias=other.example", "other.example is not among the principals"},
    {NULL, "HostKeyAlgorithms=ecdsa-sha2-nistp256-cert-v01@openssh.com", "expired at 2020-01-02"},
    {NULL, "HostKeyAlgorithms=ecdsa-sha2-nistp384-cert-v01@openssh.com", "not yet valid"},
    {NULL, "HostKeyAlgorithms=ecdsa-sha2-nistp521-cert-v01@openssh.com", "not a host certificate"},
};

START_TEST(host_cert_refused_per_check) {
  char kh[700];
  ca_known_hosts(kh, sizeof kh, refusals[_i].ca_pattern ? refusals[_i].ca_pattern : name_pattern, "host_ca", NULL);
  attempt a = {.known_hosts = kh, .opts = {refusals[_i].opt}};
  run_attempt(&a);
  assert_refused(&a, EVSSH_EHOSTKEY, refusals[_i].text);
}
END_TEST

START_TEST(host_cert_unknown_ca) {
  char kh[700];
  ca_known_hosts(kh, sizeof kh, name_pattern, "other_ca", NULL);
  attempt a = {.known_hosts = kh};
  run_attempt(&a);
  assert_refused(&a, EVSSH_EHOSTKEY, "no @cert-authority line");
  /* a certificate is asked for (the CA line covers the host) */
  assert_has(a.err, "ssh-ed25519-cert-v01@openssh.com");
}
END_TEST

/* ssh drops a certificate that fails and checks the key it certifies as a
   plain key: a known_hosts entry for that key lets the connection through */
START_TEST(failed_cert_falls_back_to_plain_entry) {
  char kh[700], pub[2200], extra[3000];
  pub_of("hk_ecdsa256", pub, sizeof pub);
  snprintf(extra, sizeof extra, "%s %s\n", name_pattern, pub);
  ca_known_hosts(kh, sizeof kh, name_pattern, "host_ca", extra);
  attempt a = {.known_hosts = kh, .opts = {"HostKeyAlgorithms=ecdsa-sha2-nistp256-cert-v01@openssh.com"}};
  run_attempt(&a);
  assert_ok(&a);
  ck_assert_str_eq(a.check_type, "ecdsa-sha2-nistp256");
  assert_has(a.log, "expired at 2020-01-02");
  assert_has(a.log, "checking its key as a plain host key");
}
END_TEST

/* accept-new after a fall-back writes the certified key, not the
   certificate, and the next strict connection finds it */
START_TEST(accept_new_records_the_plain_key) {
  char kh[700], pub[2200];
  ca_known_hosts(kh, sizeof kh, name_pattern, "other_ca", NULL);
  attempt a = {.known_hosts = kh,
               .opts = {"StrictHostKeyChecking=accept-new", "HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com"}};
  run_attempt(&a);
  assert_ok(&a);
  ck_assert_str_eq(a.check_type, "ssh-ed25519");
  assert_has(a.log, "no @cert-authority line");
  assert_has(a.log, "checking its key as a plain host key");
  FILE *f = fopen(kh, "r");
  ck_assert_ptr_nonnull(f);
  char text[8000] = "";
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  pub_of("hk_ed25519", pub, sizeof pub);
  assert_has(text, pub);
  ck_assert_msg(strstr(text, "-cert-v01") == NULL, "a certificate was recorded: %s", text);
  attempt b = {.known_hosts = kh, .opts = {"HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&b);
  assert_ok(&b);
}
END_TEST

START_TEST(host_cert_revoked_key_or_ca) {
  const char *what[] = {"hk_ed25519", "host_ca"};
  const char *text[] = {"the certified key is revoked", "the CA key is revoked"};
  for (int i = 0; i < 2; i++) {
    char kh[700], pub[2200], extra[3000];
    pub_of(what[i], pub, sizeof pub);
    snprintf(extra, sizeof extra, "@revoked * %s\n", pub);
    ca_known_hosts(kh, sizeof kh, name_pattern, "host_ca", extra);
    attempt a = {.known_hosts = kh};
    run_attempt(&a);
    assert_refused(&a, EVSSH_EHOSTKEY_CHANGED, text[i]);
  }
}
END_TEST

START_TEST(revoked_host_keys_file) {
  char kh[700], rk[700], pub[2200], opt[800];
  ca_known_hosts(kh, sizeof kh, name_pattern, "host_ca", NULL);
  pub_of("hk_ed25519", pub, sizeof pub);
  new_path(rk, sizeof rk, "revoked");
  char text[2400];
  snprintf(text, sizeof text, "# revoked\n%s\n", pub);
  write_file(rk, text);
  snprintf(opt, sizeof opt, "RevokedHostKeys=%s", rk);
  attempt a = {.known_hosts = kh, .opts = {opt}};
  run_attempt(&a);
  assert_refused(&a, EVSSH_EHOSTKEY_CHANGED, "RevokedHostKeys");
  /* a plain key listed there is refused too, whatever known_hosts says */
  char kh2[700], line[2400];
  snprintf(line, sizeof line, "%s %s\n", name_pattern, pub);
  new_path(kh2, sizeof kh2, "known_hosts");
  write_file(kh2, line);
  attempt b = {.known_hosts = kh2, .opts = {opt, "HostKeyAlgorithms=ssh-ed25519"}};
  run_attempt(&b);
  assert_refused(&b, EVSSH_EHOSTKEY_CHANGED, "revoked");
  /* a list that cannot be read refuses every key, as ssh does */
  attempt c = {.known_hosts = kh, .opts = {"RevokedHostKeys=/nonexistent/evssh-revoked"}};
  run_attempt(&c);
  assert_refused(&c, EVSSH_EHOSTKEY, "/nonexistent/evssh-revoked");
}
END_TEST

/* ------------------------------------------------------------ user side */

static void host_ok_kh(char *kh, size_t len) { ca_known_hosts(kh, len, name_pattern, "host_ca", NULL); }

START_TEST(identity_cert_beside_key) {
  char kh[700];
  host_ok_kh(kh, sizeof kh);
  attempt a = {.known_hosts = kh, .identity = "u_ed25519"};
  run_attempt(&a);
  assert_ok(&a);
  assert_has(a.log, "ssh-ed25519-cert-v01@openssh.com");
}
END_TEST

START_TEST(certificate_file_and_rsa_algorithms) {
  char kh[700], cf[700];
  host_ok_kh(kh, sizeof kh);
  snprintf(cf, sizeof cf, "CertificateFile=%s/rsa_cert_elsewhere.pub", W);
  attempt a = {.known_hosts = kh, .identity = "u_rsa", .opts = {cf}};
  run_attempt(&a);
  assert_ok(&a);
  assert_has(a.log, "rsa-sha2-512-cert-v01@openssh.com");
  attempt b = {.known_hosts = kh,
               .identity = "u_rsa",
               .opts = {cf, "PubkeyAcceptedAlgorithms=rsa-sha2-256-cert-v01@openssh.com"}};
  run_attempt(&b);
  assert_ok(&b);
  assert_has(b.log, "rsa-sha2-256-cert-v01@openssh.com");
  /* without it the key alone is not authorised */
  attempt c = {.known_hosts = kh, .identity = "u_rsa"};
  run_attempt(&c);
  ck_assert_int_eq(c.rc, EVSSH_EAUTH);
}
END_TEST

START_TEST(expired_user_cert_not_sent) {
  char kh[700];
  host_ok_kh(kh, sizeof kh);
  attempt a = {.known_hosts = kh, .identity = "u_expired"};
  run_attempt(&a);
  ck_assert_int_eq(a.rc, EVSSH_EAUTH);
  assert_has(a.err, "u_expired-cert.pub (certificate expired at 2020-01-02");
  ck_assert_msg(strstr(a.log, "offering ssh-ed25519-cert") == NULL, "sent: %s", a.log);
}
END_TEST

START_TEST(cert_for_another_key_not_offered) {
  char kh[700], cf[700];
  host_ok_kh(kh, sizeof kh);
  attempt a = {.known_hosts = kh, .identity = "u_other"};
  run_attempt(&a);
  ck_assert_int_eq(a.rc, EVSSH_EAUTH);
  assert_has(a.err, "certificate is for another key");
  snprintf(cf, sizeof cf, "CertificateFile=%s/u_ed25519-cert.pub", W);
  attempt b = {.known_hosts = kh, .identity = "u_rsa", .opts = {cf}};
  run_attempt(&b);
  ck_assert_int_eq(b.rc, EVSSH_EAUTH);
  assert_has(b.err, "neither an identity file nor in the agent");
}
END_TEST

START_TEST(cert_from_untrusted_ca_refused) {
  char kh[700];
  host_ok_kh(kh, sizeof kh);
  attempt a = {.known_hosts = kh, .identity = "u_untrusted"};
  run_attempt(&a);
  ck_assert_int_eq(a.rc, EVSSH_EAUTH);
  assert_has(a.err, "u_untrusted-cert.pub (refused)");
  assert_has(a.log, "offering ssh-ed25519-cert-v01@openssh.com");
}
END_TEST

START_TEST(agent_certificates) {
  if (agent_pid[0] < 0 || agent_pid[1] < 0) {
    fprintf(stderr, "SKIP agent_certificates: ssh-agent did not start\n");
    return;
  }
  char kh[700], ag[700];
  host_ok_kh(kh, sizeof kh);
  /* ssh-add put u_agent, u_expired and their certificates in the first
     agent: no file; the expired one is not offered */
  snprintf(ag, sizeof ag, "IdentityAgent=%s", agent_sock[0]);
  attempt a = {.known_hosts = kh, .identity = "nonexistent", .opts = {ag}};
  run_attempt(&a);
  assert_ok(&a);
  assert_has(a.log, "authenticated with publickey agent certificate");
  assert_has(a.log, "key id \"u_expired-id\"");
  assert_has(a.log, "not offered: expired at 2020-01-02");
  /* the second agent holds only u_agent2's key; its certificate is a file */
  char cf[700];
  snprintf(ag, sizeof ag, "IdentityAgent=%s", agent_sock[1]);
  snprintf(cf, sizeof cf, "CertificateFile=%s/agent2_cert.pub", W);
  attempt b = {.known_hosts = kh, .identity = "nonexistent", .opts = {ag, cf}};
  run_attempt(&b);
  assert_ok(&b);
  char want[800];
  snprintf(want, sizeof want, "authenticated with publickey %s/agent2_cert.pub", W);
  assert_has(b.log, want);
  /* without the CertificateFile the key alone is not authorised */
  attempt c = {.known_hosts = kh, .identity = "nonexistent", .opts = {ag}};
  run_attempt(&c);
  ck_assert_int_eq(c.rc, EVSSH_EAUTH);
}
END_TEST

static Suite *certs_suite(void) {
  Suite *s = suite_create("certificates against sshd");
  TCase *h = tcase_create("host certificates");
  tcase_set_timeout(h, 120);
  tcase_add_test(h, host_cert_accepted_and_negotiated_first);
  tcase_add_test(h, host_cert_wildcard_ca_line_and_rsa_variants);
  tcase_add_test(h, host_key_alias_is_the_principal);
  tcase_add_test(h, host_key_alias_finds_plain_entries);
  tcase_add_loop_test(h, host_cert_refused_per_check, 0, (int)(sizeof refusals / sizeof refusals[0]));
  tcase_add_test(h, host_cert_unknown_ca);
  tcase_add_test(h, failed_cert_falls_back_to_plain_entry);
  tcase_add_test(h, accept_new_records_the_plain_key);
  tcase_add_test(h, host_cert_revoked_key_or_ca);
  tcase_add_test(h, revoked_host_keys_file);
  suite_add_tcase(s, h);
  TCase *u = tcase_create("user certificates");
  tcase_set_timeout(u, 120);
  tcase_add_test(u, identity_cert_beside_key);
  tcase_add_test(u, certificate_file_and_rsa_algorithms);
  tcase_add_test(u, expired_user_cert_not_sent);
  tcase_add_test(u, cert_for_another_key_not_offered);
  tcase_add_test(u, cert_from_untrusted_ca_refused);
  tcase_add_test(u, agent_certificates);
  suite_add_tcase(s, u);
  return s;
}

/* ------------------------------------------------------------- set-up */

static int keygen(const char *name, const char *type) {
  return harness_sh("ssh-keygen -q -t %s -N '' -C %s -f '%s/%s' </dev/null >/dev/null", type, name, W, name);
}

/* ssh-keygen -s CA [-h] -I ID -n PRINCIPALS [-V VALIDITY] KEY.pub; the
   certificate lands in KEY-cert.pub */
static int sign(const char *ca, bool host, const char *principals, const char *validity, const char *key) {
  return harness_sh("ssh-keygen -q -s '%s/%s' %s -I %s-id -n '%s' %s%s '%s/%s.pub' </dev/null >/dev/null 2>&1", W, ca,
            host ? "-h" : "", key, principals, validity ? "-V " : "", validity ? validity : "", W, key);
}

static int setup_host(void) {
  const char *pr = "127.0.0.1,certhost.example,*.wild.example";
  if (keygen("host_ca", "ed25519") || keygen("other_ca", "ed25519") || keygen("user_ca", "ecdsa") ||
      keygen("hk_ed25519", "ed25519") || keygen("hk_rsa", "rsa") || harness_sh("ssh-keygen -q -t ecdsa -b 256 -N '' -f '%s/hk_ecdsa256'", W) ||
      harness_sh("ssh-keygen -q -t ecdsa -b 384 -N '' -f '%s/hk_ecdsa384'", W) ||
      harness_sh("ssh-keygen -q -t ecdsa -b 521 -N '' -f '%s/hk_ecdsa521'", W))
    return -1;
  if (sign("host_ca", true, pr, NULL, "hk_ed25519") || sign("host_ca", true, pr, NULL, "hk_rsa") ||
      sign("host_ca", true, pr, "20200101:20200102", "hk_ecdsa256") ||
      sign("host_ca", true, pr, "+520w:+530w", "hk_ecdsa384") || sign("host_ca", false, pr, NULL, "hk_ecdsa521"))
    return -1;
  return 0;
}

/* ssh-agent on W/agentN.sock holding W/key (and ssh-add takes the
   key's -cert.pub with it); agent_pid[i] stays -1 when that fails */
static void start_agent(int i, const char *key, const char *key2) {
  snprintf(agent_sock[i], sizeof agent_sock[i], "%s/agent%d.sock", W, i);
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "ssh-agent -s -a '%s'", agent_sock[i]);
  FILE *p = popen(cmd, "r");
  if (!p) return;
  char line[512];
  while (fgets(line, sizeof line, p)) {
    const char *at = strstr(line, "SSH_AGENT_PID=");
    if (at) agent_pid[i] = (pid_t)atoi(at + 14);
  }
  pclose(p);
  char second[700] = "";
  if (key2) snprintf(second, sizeof second, "'%s/%s'", W, key2);
  if (agent_pid[i] > 0 &&
      harness_sh("SSH_AUTH_SOCK='%s' ssh-add '%s/%s' %s >/dev/null 2>&1", agent_sock[i], W, key, second) != 0) {
    kill(agent_pid[i], SIGTERM);
    agent_pid[i] = -1;
  }
}

static int setup_user(void) {
  const char *u = peer.user;
  if (keygen("u_ed25519", "ed25519") || keygen("u_rsa", "rsa") || keygen("u_expired", "ed25519") ||
      keygen("u_other", "ed25519") || keygen("u_untrusted", "ed25519") || keygen("u_agent", "ed25519") ||
      harness_sh("mkdir -p '%s/agent2' && ssh-keygen -q -t ecdsa -N '' -f '%s/agent2/u_agent2'", W, W))
    return -1;
  if (sign("user_ca", false, u, NULL, "u_ed25519") || sign("user_ca", false, u, NULL, "u_rsa") ||
      sign("user_ca", false, u, "20200101:20200102", "u_expired") || sign("other_ca", false, u, NULL, "u_untrusted") ||
      sign("user_ca", false, u, NULL, "u_agent") || sign("user_ca", false, u, NULL, "agent2/u_agent2"))
    return -1;
  /* a CertificateFile under a name ssh would not find by itself */
  if (harness_sh("mv '%s/u_rsa-cert.pub' '%s/rsa_cert_elsewhere.pub'", W, W) ||
      harness_sh("mv '%s/agent2/u_agent2-cert.pub' '%s/agent2_cert.pub'", W, W) ||
      harness_sh("cp '%s/u_ed25519-cert.pub' '%s/u_other-cert.pub'", W, W))
    return -1;
  start_agent(0, "u_agent", "u_expired");
  start_agent(1, "agent2/u_agent2", NULL);
  return 0;
}

int main(void) {
  harness_require_sshd();
  unsetenv("SSH_AUTH_SOCK");
  const char *tmp = getenv("TMPDIR");
  snprintf(W, sizeof W, "%s/evssh-certs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(W) || chmod(W, 0755) != 0) {
    perror("mkdtemp");
    return 1;
  }
  if (setup_host() != 0) {
    fprintf(stderr, "ssh-keygen failed making the CAs and host certificates\n");
    harness_sh("rm -rf '%s'", W);
    return 1;
  }
  char extra[4000];
  const char *algs =
      "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,"
      "ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,"
      "rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,"
      "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";
  int n = snprintf(extra, sizeof extra, "HostKeyAlgorithms %s\nPubkeyAcceptedAlgorithms %s\nTrustedUserCAKeys %s/user_ca.pub\n",
                   algs, algs, W);
  const char *hks[] = {"hk_ed25519", "hk_rsa", "hk_ecdsa256", "hk_ecdsa384", "hk_ecdsa521"};
  for (size_t i = 0; i < 5; i++)
    n += snprintf(extra + n, sizeof extra - (size_t)n, "HostKey %s/%s\nHostCertificate %s/%s-cert.pub\n", W, hks[i], W,
                  hks[i]);
  if (harness_sshd_start(&peer, extra) != 0) {
    fprintf(stderr, "cannot start sshd\n");
    harness_sh("rm -rf '%s'", W);
    return 1;
  }
  snprintf(name_pattern, sizeof name_pattern, "[127.0.0.1]:%d", peer.port);
  if (setup_user() != 0) {
    fprintf(stderr, "ssh-keygen failed making the user certificates\n");
    harness_sshd_stop(&peer);
    harness_sh("rm -rf '%s'", W);
    return 1;
  }
  SRunner *sr = srunner_create(certs_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  for (int i = 0; i < 2; i++)
    if (agent_pid[i] > 0) kill(agent_pid[i], SIGTERM);
  harness_sshd_stop(&peer);
  harness_sh("rm -rf '%s'", W);
  return failed ? 1 : 0;
}
