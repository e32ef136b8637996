/* Post-quantum key exchange against real OpenSSH servers, through the
 * public API: Debian's OpenSSH 9.2 sshd proves sntrup761x25519-sha512 (and
 * its @openssh.com name), OpenSSH 10 from bookworm-backports (fetched into a
 * cache by sshd-harness.sh, never installed) proves mlkem768x25519-sha256.
 * Each connection runs a command and prints the negotiated method, which the
 * test reads from the transport's "key exchange 1 done" log line; the
 * not-post-quantum INFO line must appear exactly when the method is
 * classical. Without network the OpenSSH 10 case says SKIP and why. */
#include "harness.h"

#include "evssh.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct logged {
  char kex[128];
  bool not_pq_warning;
  bool post_quantum;      /* evssh_session_post_quantum after connect */
  char algorithm[128];    /* evssh_session_algorithm(s, "kex") */
} logged;

static void on_log(evssh_session *s, int level, const char *msg, void *ud) {
  logged *l = ud;
  const char *done = strstr(msg, "key exchange 1 done: ");
  if (done) {
    done += strlen("key exchange 1 done: ");
    snprintf(l->kex, sizeof l->kex, "%.*s", (int)strcspn(done, ","), done);
  }
  if (level == EVSSH_LOG_INFO && strstr(msg, "not using a post-quantum key exchange")) l->not_pq_warning = true;
  if (getenv("EVSSH_TEST_VERBOSE")) fprintf(stderr, "  log %d: %s\n", level, msg);
}

/* Connects with kex (NULL: our default list), runs a command, returns the
   negotiated method's name in l. */
static void run(const char *server, harness_peer *p, const char *kex, logged *l) {
  memset(l, 0, sizeof *l);
  char port[32], kh[700], key[700], kexopt[300];
  snprintf(port, sizeof port, "%d", p->port);
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_ptr_nonnull(s);
  snprintf(kh, sizeof kh, "%s", p->known_hosts);
  snprintf(key, sizeof key, "%s", p->key_ed25519);
  ck_assert_int_eq(evssh_session_option(s, "Port", port), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "User", p->user), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "UserKnownHostsFile", kh), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "GlobalKnownHostsFile", "none"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "IdentityFile", key), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "IdentitiesOnly", "yes"), EVSSH_OK);
  ck_assert_int_eq(evssh_session_option(s, "IdentityAgent", "none"), EVSSH_OK);
  if (kex) {
    snprintf(kexopt, sizeof kexopt, "%s", kex);
    ck_assert_int_eq(evssh_session_option(s, "KexAlgorithms", kexopt), EVSSH_OK);
  }
  evssh_session_set_log(s, EVSSH_LOG_DEBUG, on_log, l);
  int rc = evssh_session_connect(s);
  ck_assert_msg(rc == EVSSH_OK, "%s, KexAlgorithms=%s: connect failed: %s", server, kex ? kex : "(default)",
                evssh_session_error(s));
  l->post_quantum = evssh_session_post_quantum(s);
  const char *alg = evssh_session_algorithm(s, "kex");
  snprintf(l->algorithm, sizeof l->algorithm, "%s", alg ? alg : "(none)");
  /* the public accessors agree with what the transport logged */
  ck_assert_str_eq(l->algorithm, l->kex);
  ck_assert(l->post_quantum == !l->not_pq_warning);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo pq-ok", &r), EVSSH_OK);
  ck_assert_str_eq(r.out, "pq-ok\n");
  evssh_result_free(&r);
  printf("%s, KexAlgorithms=%s: negotiated %s%s\n", server, kex ? kex : "(default)", l->kex,
         l->not_pq_warning ? " (logged: not post-quantum)" : "");
  fflush(stdout);
  evssh_session_close(s);
  evssh_session_free(s);
}

START_TEST(openssh92_sntrup761) {
  harness_peer p;
  /* both names of the method, and a classical fallback */
  ck_assert_int_eq(harness_sshd_start(&p, "KexAlgorithms sntrup761x25519-sha512,"
                                          "sntrup761x25519-sha512@openssh.com,curve25519-sha256"), 0);
  logged l;
  run("OpenSSH 9.2", &p, NULL, &l);
  ck_assert_str_eq(l.kex, "sntrup761x25519-sha512");
  ck_assert(!l.not_pq_warning);
  run("OpenSSH 9.2", &p, "sntrup761x25519-sha512@openssh.com", &l);
  ck_assert_str_eq(l.kex, "sntrup761x25519-sha512@openssh.com");
  ck_assert(!l.not_pq_warning);
  run("OpenSSH 9.2", &p, "curve25519-sha256", &l);
  ck_assert_str_eq(l.kex, "curve25519-sha256");
  ck_assert_msg(l.not_pq_warning, "no INFO line about the missing post-quantum key exchange");
  ck_assert(!l.post_quantum);
  harness_sshd_stop(&p);
}
END_TEST

START_TEST(openssh10_mlkem768) {
  char root[1024], why[600];
  if (harness_openssh10(root, sizeof root, why, sizeof why) != 0) {
    printf("SKIP: OpenSSH 10 (mlkem768x25519-sha256) interop: %s\n", why);
    fflush(stdout);
    return;
  }
  char sshd[1100], extra[2600];
  snprintf(sshd, sizeof sshd, "%s/usr/sbin/sshd", root);
  snprintf(extra, sizeof extra,
           "SshdSessionPath %s/usr/lib/openssh/sshd-session\n"
           "SshdAuthPath %s/usr/lib/openssh/sshd-auth\n"
           "KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,curve25519-sha256\n",
           root, root);
  harness_peer p;
  ck_assert_msg(harness_sshd_start_bin(&p, sshd, extra) == 0, "OpenSSH 10 sshd from %s did not start", root);
  logged l;
  run("OpenSSH 10", &p, NULL, &l);
  ck_assert_str_eq(l.kex, "mlkem768x25519-sha256");
  ck_assert(!l.not_pq_warning);
  ck_assert(l.post_quantum);
  run("OpenSSH 10", &p, "mlkem768x25519-sha256", &l);
  ck_assert_str_eq(l.kex, "mlkem768x25519-sha256");
  run("OpenSSH 10", &p, "sntrup761x25519-sha512", &l);
  ck_assert_str_eq(l.kex, "sntrup761x25519-sha512");
  harness_sshd_stop(&p);
}
END_TEST

int main(void) {
  harness_require_sshd();
  Suite *s = suite_create("pq_interop");
  TCase *tc = tcase_create("post-quantum kex with OpenSSH");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, openssh92_sntrup761);
  tcase_add_test(tc, openssh10_mlkem768);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
