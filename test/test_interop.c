/* Interop smoke tests beyond one server: against OpenSSH's sshd, dropbear
 * and the embedded libssh server (each started here on 127.0.0.1), connect,
 * run a command whose output and exit status are checked, and push 16 MiB
 * each way through `cat` with checksums equal. */
#include "harness.h"
#include "streams.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define TOTAL (16u * 1024u * 1024u)

static void smoke(const char *name, harness_peer *p) {
  char port[32], kh[700], key[700];
  snprintf(port, sizeof port, "Port=%d", p->port);
  snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", p->known_hosts);
  snprintf(key, sizeof key, "IdentityFile=%s", p->key_ed25519);
  const char *opts[] = {port, kh, key, "GlobalKnownHostsFile=none", "IdentityAgent=none", "IdentitiesOnly=yes", NULL};
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", p->user, opts, &err);
  ck_assert_msg(s != NULL, "%s: connect failed: %s", name, err.message);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(s, "echo to-out; echo to-err >&2; exit 42", &r), EVSSH_OK);
  ck_assert_str_eq(r.out, "to-out\n");
  ck_assert_str_eq(r.err, "to-err\n");
  ck_assert_int_eq(r.exit_status, 42);
  evssh_result_free(&r);
  stream_result st;
  stream_through_cat(s, TOTAL, &st);
  ck_assert_msg(st.loop_rc >= 0, "%s: loop failed: %s", name, evssh_session_error(s));
  ck_assert_msg(st.equal, "%s: sent %zu, got %zu back, checksums %s", name, st.sent, st.received,
                st.equal ? "equal" : "differ");
  ck_assert_int_eq(st.exit_status, 0);
  printf("%s: exec ok, %u bytes each way through cat, checksums equal\n", name, TOTAL);
  evssh_session_close(s);
  evssh_session_free(s);
}

START_TEST(openssh) {
  harness_peer p;
  ck_assert_int_eq(harness_sshd_start(&p, NULL), 0);
  smoke("OpenSSH sshd", &p);
  harness_sshd_stop(&p);
}
END_TEST

START_TEST(dropbear) {
  harness_peer p;
  ck_assert_int_eq(harness_dropbear_start(&p), 0);
  smoke("dropbear", &p);
  harness_dropbear_stop(&p);
}
END_TEST

START_TEST(embedded) {
  harness_peer p;
  ck_assert_int_eq(harness_embedded_start(&p), 0);
  smoke("embedded libssh server", &p);
  harness_embedded_stop(&p);
}
END_TEST

int main(void) {
  Suite *s = suite_create("interop");
  TCase *tc = tcase_create("smoke");
  tcase_set_timeout(tc, 120);
  if (!harness_skip_reason()) tcase_add_test(tc, openssh);
  else printf("SKIP OpenSSH: %s\n", harness_skip_reason());
  if (!harness_dropbear_skip_reason()) tcase_add_test(tc, dropbear);
  else printf("SKIP dropbear: %s\n", harness_dropbear_skip_reason());
  tcase_add_test(tc, embedded);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
