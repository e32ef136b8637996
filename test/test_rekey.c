/* Rekeying under load: with a small RekeyLimit on our side, and then on the
 * server's side, 16 MiB go each way through `cat` while key exchanges
 * happen mid-stream; the bytes that come back are the bytes that went out,
 * in order, and the key exchange count shows the rekeys really happened. */
#include "harness.h"
#include "session.h"
#include "streams.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static harness_peer sshd, sshd_rekeying;

#define TOTAL (16u * 1024u * 1024u)

static void run(harness_peer *p, const char *rekey_limit, uint64_t min_kex) {
  char port[32], kh[700], key[700], rekey[64];
  snprintf(port, sizeof port, "Port=%d", p->port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", p->known_hosts);
  snprintf(key, sizeof key, "IdentityFile=%s", p->key_ed25519);
  snprintf(rekey, sizeof rekey, "RekeyLimit=%s", rekey_limit ? rekey_limit : "default none");
  const char *opts[] = {port, kh, key, "GlobalKnownHostsFile=none", "IdentityAgent=none", rekey, NULL};
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", p->user, opts, &err);
  ck_assert_msg(s != NULL, "connect failed: %s", err.message);
  stream_result st;
  stream_through_cat(s, TOTAL, &st);
  ck_assert_msg(st.loop_rc >= 0, "loop failed: %d %s", st.loop_rc, evssh_session_error(s));
  ck_assert_uint_eq(st.received, TOTAL);
  ck_assert_msg(st.equal, "data came back different");
  ck_assert_int_eq(st.exit_status, 0);
  uint64_t kex = transport_kex_count(session_transport(s));
  printf("%s: %u bytes each way, %llu key exchanges, checksums equal\n",
         rekey_limit ? "client RekeyLimit 1M" : "server RekeyLimit 1M", TOTAL, (unsigned long long)kex);
  ck_assert_msg(kex >= min_kex, "only %llu key exchanges", (unsigned long long)kex);
  evssh_session_close(s);
  evssh_session_free(s);
}

/* 16 MiB out and 16 MiB back at 1 MiB: some 30 exchanges */
START_TEST(client_initiated) { run(&sshd, "1M", 10); }
END_TEST

START_TEST(server_initiated) { run(&sshd_rekeying, NULL, 10); }
END_TEST

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&sshd, NULL) != 0 || harness_sshd_start(&sshd_rekeying, "RekeyLimit 1M") != 0) {
    fprintf(stderr, "cannot start sshd\n");
    return 1;
  }
  Suite *s = suite_create("rekey");
  TCase *tc = tcase_create("mid-stream");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, client_initiated);
  tcase_add_test(tc, server_initiated);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&sshd);
  harness_sshd_stop(&sshd_rekeying);
  return failed ? 1 : 0;
}
