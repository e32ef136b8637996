/* Rekeying under load: with a small RekeyLimit on our side, and then on the
 * server's side, 16 MiB go each way through `cat` while key exchanges
 * happen mid-stream; the bytes that come back are the bytes that went out,
 * in order, and the key exchange count shows the rekeys really happened. */
#include "harness.h"
#include "session.h"

#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static harness_peer sshd, sshd_rekeying;

#define TOTAL (16u * 1024u * 1024u)

typedef struct stream {
  EVP_MD_CTX *out_hash, *in_hash;
  size_t received;
  bool closed;
  int exit_status;
} stream;

static void on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  stream *st = ud;
  EVP_DigestUpdate(st->in_hash, data, len);
  st->received += len;
}

static void on_close(evssh_channel *ch, void *ud) {
  stream *st = ud;
  st->closed = true;
  evssh_channel_exit_status(ch, &st->exit_status);
}

static void on_exec(evssh_channel *ch, bool ok, void *ud) { ck_assert_msg(ok, "exec cat refused"); }

static void on_open(evssh_channel *ch, void *ud) {
  stream *st = ud;
  evssh_channel_on_data(ch, on_data, st);
  evssh_channel_on_close(ch, on_close, st);
  ck_assert_int_eq(evssh_channel_exec(ch, "cat", on_exec, st), EVSSH_OK);
  /* a deterministic pseudo-random stream, queued all at once: the channel
     layer sends it as windows allow, the transport rekeys in between */
  unsigned char block[65536];
  uint32_t x = 0x12345678;
  for (size_t sent = 0; sent < TOTAL; sent += sizeof block) {
    for (size_t i = 0; i < sizeof block; i++) {
      x = x * 1103515245u + 12345u;
      block[i] = (unsigned char)(x >> 24);
    }
    EVP_DigestUpdate(st->out_hash, block, sizeof block);
    ck_assert_int_eq(evssh_channel_send_data(ch, block, sizeof block), EVSSH_OK);
  }
  ck_assert_int_eq(evssh_channel_eof(ch), EVSSH_OK);
}

static bool not_closed(evssh_session *s, void *ud) { return !((stream *)ud)->closed; }

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
  stream st = {EVP_MD_CTX_new(), EVP_MD_CTX_new(), 0, false, -1};
  EVP_DigestInit_ex(st.out_hash, EVP_sha256(), NULL);
  EVP_DigestInit_ex(st.in_hash, EVP_sha256(), NULL);
  ck_assert_ptr_nonnull(evssh_session_open_channel(s, on_open, &st));
  int rc = evssh_session_loop(s, 1000, not_closed, &st);
  ck_assert_msg(rc >= 0, "loop failed: %d %s", rc, evssh_session_error(s));
  unsigned char a[32], b[32];
  unsigned int la, lb;
  EVP_DigestFinal_ex(st.out_hash, a, &la);
  EVP_DigestFinal_ex(st.in_hash, b, &lb);
  ck_assert_uint_eq(st.received, TOTAL);
  ck_assert_msg(memcmp(a, b, 32) == 0, "data came back different");
  ck_assert_int_eq(st.exit_status, 0);
  uint64_t kex = transport_kex_count(s->transport);
  printf("%s: %u bytes each way, %llu key exchanges, checksums equal\n",
         rekey_limit ? "client RekeyLimit 1M" : "server RekeyLimit 1M", TOTAL, (unsigned long long)kex);
  ck_assert_msg(kex >= min_kex, "only %llu key exchanges", (unsigned long long)kex);
  EVP_MD_CTX_free(st.out_hash);
  EVP_MD_CTX_free(st.in_hash);
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
