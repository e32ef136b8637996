/* The loop iteration and lifetimes against a real OpenSSH sshd (issue 10),
 * through the public API only: on_process runs once per iteration; data
 * queued in on_process or in a listen_to callback is written in the same
 * iteration (uploads and relays finish promptly); blocking calls from
 * on_ready run a nested loop; wait-then-exit_status reads a live handle;
 * close_async finishes from the loop; freeing a session that is in a multi
 * leaves the multi; a server that never reads meets the send cap; the
 * negotiated algorithms and the host key are readable. Skips (77) without
 * sshd. Run one case: CK_RUN_CASE=loop make check TESTS=test/test_loop. */
#include "evssh.h"
#include "harness.h"

#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static harness_peer peer;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void options(const char **opts, char port[32], char kh[700], char id[700], const char *extra) {
  snprintf(port, 32, "Port=%d", peer.port);
  snprintf(kh, 700, "UserKnownHostsFile=%s", peer.known_hosts);
  snprintf(id, 700, "IdentityFile=%s", peer.key_ed25519);
  const char *v[] = {port, kh, id, "IdentitiesOnly=yes", "GlobalKnownHostsFile=/dev/null", "ConfigFile=none",
                     "IdentityAgent=none", extra, NULL};
  memcpy(opts, v, sizeof v);
}

static evssh_session *connect_with(const char *extra) {
  char port[32], kh[700], id[700];
  const char *opts[9];
  options(opts, port, kh, id, extra);
  evssh_error err;
  evssh_session *s = evssh_start("127.0.0.1", peer.user, opts, &err);
  if (!s) fprintf(stderr, "evssh_start: %d %s\n", err.code, err.message);
  ck_assert_ptr_nonnull(s);
  return s;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

/* ------------------------------------------------------- on_process */

typedef struct counter {
  int process_calls;
  bool closed;
  char out[64];
} counter;

static void count_process(evssh_channel *ch, void *ud) { ((counter *)ud)->process_calls++; }
static void counter_closed(evssh_channel *ch, void *ud) { ((counter *)ud)->closed = true; }
static void counter_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  counter *c = ud;
  strncat(c->out, d, n < sizeof c->out - strlen(c->out) - 1 ? n : sizeof c->out - strlen(c->out) - 1);
}
static bool counter_open(evssh_session *s, void *ud) { return !((counter *)ud)->closed; }

static bool channel_opened(evssh_session *s, void *ud) { return !evssh_channel_opened(ud); }

START_TEST(test_on_process_once_per_iteration) {
  evssh_session *s = connect_with(NULL);
  counter c = {0};
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  ck_assert_int_eq(evssh_channel_exec(ch, "sleep 20", NULL, NULL), 0);
  ck_assert_int_ge(evssh_session_loop(s, 1000, channel_opened, ch), 0);
  evssh_channel_on_process(ch, count_process, &c);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(evssh_session_process(s, 10, NULL, NULL), 1);
  ck_assert_int_eq(c.process_calls, 10);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ---------------------------------------------- written in the same iteration */

typedef struct upload {
  size_t total, sent;
  counter c;
} upload;

/* net-scp's shape: feed the channel from on_process, a chunk at a time */
static void upload_process(evssh_channel *ch, void *ud) {
  upload *u = ud;
  static char chunk[32768];
  if (u->sent >= u->total) return;
  size_t n = u->total - u->sent < sizeof chunk ? u->total - u->sent : sizeof chunk;
  ck_assert_int_eq(evssh_channel_send_data(ch, chunk, n), 0);
  u->sent += n;
  if (u->sent == u->total) evssh_channel_eof(ch);
}

static bool upload_running(evssh_session *s, void *ud) {
  upload *u = ud;
  return !u->c.closed;
}

START_TEST(test_upload_from_on_process) {
  evssh_session *s = connect_with(NULL);
  upload u = {1024 * 1024, 0, {0}};
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  evssh_channel_on_process(ch, upload_process, &u);
  evssh_channel_on_data(ch, counter_data, &u.c);
  evssh_channel_on_close(ch, counter_closed, &u.c);
  ck_assert_int_eq(evssh_channel_exec(ch, "wc -c", NULL, NULL), 0);
  int64_t t0 = now_ms();
  /* the server writes nothing until our EOF: only our own writes move it */
  ck_assert_int_ge(evssh_session_loop(s, 20000, upload_running, &u), 0);
  int64_t ms = now_ms() - t0;
  ck_assert(u.c.closed);
  ck_assert_int_eq(atoi(u.c.out), 1024 * 1024);
  fprintf(stderr, "1 MiB from on_process into wc -c: %lld ms\n", (long long)ms);
  ck_assert_msg(ms < 10000, "upload took %lld ms", (long long)ms);   /* generous: well under 1 s unloaded */
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

typedef struct relay {
  evssh_channel *ch;
  int fd;
  counter c;
} relay;

/* Net::SSH forwarding's shape: what a listen_to fd brings is sent on */
static void relay_readable(evssh_session *s, int fd, int events, void *ud) {
  relay *r = ud;
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    ck_assert_int_eq(evssh_channel_send_data(r->ch, buf, (size_t)n), 0);
    return;
  }
  evssh_session_stop_listening_to(s, fd);
  evssh_channel_eof(r->ch);
}

START_TEST(test_relay_from_listen_to) {
  evssh_session *s = connect_with(NULL);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    close(fds[0]);
    static char block[65536];
    for (int i = 0; i < 16; i++)
      if (write(fds[1], block, sizeof block) != (ssize_t)sizeof block) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  relay r = {NULL, fds[0], {0}};
  r.ch = evssh_session_open_channel(s, NULL, NULL);
  evssh_channel_on_data(r.ch, counter_data, &r.c);
  evssh_channel_on_close(r.ch, counter_closed, &r.c);
  ck_assert_int_eq(evssh_channel_exec(r.ch, "wc -c", NULL, NULL), 0);
  ck_assert_int_ge(evssh_session_loop(s, 1000, channel_opened, r.ch), 0);
  int64_t t0 = now_ms();
  ck_assert_int_eq(evssh_session_listen_to(s, fds[0], EVSSH_READ, relay_readable, &r), 0);
  ck_assert_int_ge(evssh_session_loop(s, 20000, counter_open, &r.c), 0);
  int64_t ms = now_ms() - t0;
  ck_assert_int_eq(atoi(r.c.out), 1024 * 1024);
  fprintf(stderr, "1 MiB relayed from a listen_to pipe into wc -c: %lld ms\n", (long long)ms);
  ck_assert_msg(ms < 10000, "relay took %lld ms", (long long)ms);
  close(fds[0]);
  waitpid(child, NULL, 0);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* ---------------------------------------------------- nesting, lifetimes */

typedef struct ready_probe {
  bool called;
  int exec_rc;
  char out[64];
} ready_probe;

/* SSHKit's shape: a blocking call inside a callback of the connect */
static void ready_then_exec(evssh_session *s, int status, void *ud) {
  ready_probe *p = ud;
  p->called = true;
  ck_assert_int_eq(status, EVSSH_OK);
  evssh_result r;
  p->exec_rc = evssh_session_exec_wait(s, "echo nested", &r);
  if (p->exec_rc == EVSSH_OK) snprintf(p->out, sizeof p->out, "%s", r.out);
  evssh_result_free(&r);
}

static bool not_ready(evssh_session *s, void *ud) { return !((ready_probe *)ud)->called; }

START_TEST(test_exec_wait_from_on_ready) {
  char port[32], kh[700], id[700];
  const char *opts[9];
  options(opts, port, kh, id, NULL);
  evssh_error err;
  evssh_session *s = evssh_session_new_with("127.0.0.1", peer.user, opts, &err);
  ck_assert_ptr_nonnull(s);
  ready_probe p = {false, -99, ""};
  ck_assert_int_eq(evssh_session_connect_async(s, ready_then_exec, &p), 0);
  ck_assert_int_ge(evssh_session_loop(s, 1000, not_ready, &p), 0);
  ck_assert(p.called);
  ck_assert_int_eq(p.exec_rc, EVSSH_OK);
  ck_assert_str_eq(p.out, "nested\n");
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_wait_then_exit_status) {
  evssh_session *s = connect_with(NULL);
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  ck_assert_int_eq(evssh_channel_exec(ch, "exit 3", NULL, NULL), 0);
  ck_assert_int_eq(evssh_channel_wait(ch), 0);
  int st = -1;
  ck_assert_int_eq(evssh_channel_exit_status(ch, &st), 0);
  ck_assert_int_eq(st, 3);
  ck_assert(!evssh_channel_active(ch));
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

typedef struct close_done { bool called; int status; } close_done;
static void on_closed(evssh_session *s, int status, void *ud) {
  close_done *d = ud;
  d->called = true;
  d->status = status;
}
static bool not_closed(evssh_session *s, void *ud) { return !((close_done *)ud)->called; }

START_TEST(test_close_async) {
  evssh_session *s = connect_with(NULL);
  counter c = {0};
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  evssh_channel_on_close(ch, counter_closed, &c);
  /* cat ends when its stdin closes, so sshd answers our CLOSE at once */
  ck_assert_int_eq(evssh_channel_exec(ch, "cat", NULL, NULL), 0);
  ck_assert_int_ge(evssh_session_loop(s, 1000, channel_opened, ch), 0);
  close_done d = {false, -99};
  int64_t t0 = now_ms();
  ck_assert_int_eq(evssh_session_close_async(s, on_closed, &d), 0);
  ck_assert(!d.called);                        /* returned at once */
  ck_assert_int_eq(evssh_session_close_async(s, on_closed, &d), EVSSH_EBUSY);
  int rc;
  while ((rc = evssh_session_process(s, 1000, not_closed, &d)) > 0) {
  }
  ck_assert(d.called);
  ck_assert_int_eq(d.status, EVSSH_OK);        /* sshd answered every CLOSE */
  ck_assert(c.closed);
  ck_assert(evssh_session_closed(s));
  ck_assert_int_lt(now_ms() - t0, 10000);
  evssh_session_free(s);
}
END_TEST

START_TEST(test_free_session_in_multi) {
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  evssh_session *a = connect_with(NULL);
  evssh_session *b = connect_with(NULL);
  ck_assert_int_eq(evssh_multi_add(m, a), 0);
  ck_assert_int_eq(evssh_multi_add(m, b), 0);
  ck_assert_int_ge(evssh_multi_process(m, 0, NULL, NULL), 0);
  evssh_session_free(a);    /* leaves the multi: no dangling member */
  ck_assert_int_eq(evssh_multi_remove(m, a), EVSSH_EINVAL);
  evssh_result r;
  ck_assert_int_eq(evssh_session_exec_wait(b, "echo still", &r), 0);
  ck_assert_str_eq(r.out, "still\n");
  evssh_result_free(&r);
  for (int i = 0; i < 3; i++) ck_assert_int_ge(evssh_multi_process(m, 10, NULL, NULL), 0);
  evssh_session_close(b);
  evssh_session_free(b);
  ck_assert_int_ge(evssh_multi_process(m, 0, NULL, NULL), 0);
  evssh_multi_free(m);
}
END_TEST

/* ------------------------------------------------------- backpressure */

/* A command that never reads its stdin: sends meet the cap and say
   EVSSH_EAGAIN instead of growing; memory stays bounded. */
START_TEST(test_send_cap_against_a_server_that_never_reads) {
  evssh_session *s = connect_with(NULL);
  evssh_channel *ch = evssh_session_open_channel(s, NULL, NULL);
  ck_assert_int_eq(evssh_channel_exec(ch, "sleep 30", NULL, NULL), 0);
  ck_assert_int_ge(evssh_session_loop(s, 1000, channel_opened, ch), 0);
  ck_assert_int_eq(evssh_channel_set_send_limit(ch, 4u * 1024 * 1024), 0);
  long rss0 = rss_kb();
  static char chunk[1024 * 1024];
  size_t pushed = 0;
  int rc = EVSSH_OK;
  /* at most 256 MiB: without the cap every call said OK and memory grew */
  for (int i = 0; i < 256 && rc == EVSSH_OK; i++) {
    rc = evssh_channel_send_data(ch, chunk, sizeof chunk);
    if (rc == EVSSH_OK) pushed += sizeof chunk;
    evssh_session_process(s, 0, NULL, NULL);
  }
  long grown = rss_kb() - rss0;
  fprintf(stderr, "send cap: %zu MiB taken, then %d; RSS grew %ld kB\n", pushed >> 20, rc, grown);
  ck_assert_int_eq(rc, EVSSH_EAGAIN);
  ck_assert_uint_lt(pushed, 64u * 1024 * 1024);
  ck_assert_uint_le(evssh_channel_pending(ch), 4u * 1024 * 1024 + sizeof chunk);
  ck_assert_int_lt(grown, 64 * 1024);
  evssh_channel_close(ch);
  evssh_session_close(s);
  evssh_session_free(s);
}
END_TEST

/* --------------------------------------------------------- accessors */

START_TEST(test_algorithms_and_host_key) {
  evssh_session *s = connect_with("Ciphers=aes128-ctr");
  ck_assert_str_eq(evssh_session_algorithm(s, "cipher_c2s"), "aes128-ctr");
  ck_assert_str_eq(evssh_session_algorithm(s, "cipher_s2c"), "aes128-ctr");
  ck_assert_ptr_nonnull(evssh_session_algorithm(s, "kex"));
  ck_assert_ptr_nonnull(evssh_session_algorithm(s, "hostkey"));
  ck_assert_ptr_nonnull(evssh_session_algorithm(s, "mac_c2s"));
  ck_assert_ptr_nonnull(evssh_session_algorithm(s, "mac_s2c"));
  ck_assert_ptr_null(evssh_session_algorithm(s, "compression"));
  const char *type = NULL;
  const unsigned char *blob = NULL;
  size_t len = 0;
  ck_assert_int_eq(evssh_session_host_key(s, &type, &blob, &len), 0);
  ck_assert_ptr_nonnull(type);
  /* the blob is the one known_hosts has for the server, under its type */
  char *b64 = malloc(4 * ((len + 2) / 3) + 1);
  ck_assert_ptr_nonnull(b64);
  EVP_EncodeBlock((unsigned char *)b64, blob, (int)len);
  char line[4096];
  snprintf(line, sizeof line, "%s %s", type, b64);
  free(b64);
  FILE *f = fopen(peer.known_hosts, "r");
  ck_assert_ptr_nonnull(f);
  char text[16384];
  size_t got = fread(text, 1, sizeof text - 1, f);
  text[got] = 0;
  fclose(f);
  ck_assert_msg(strstr(text, line) != NULL, "%s not in %s", line, peer.known_hosts);
  ck_assert_uint_gt(len, 32);
  ck_assert_uint_eq(blob[0] << 24 | blob[1] << 16 | blob[2] << 8 | blob[3], strlen(type));
  ck_assert(memcmp(blob + 4, type, strlen(type)) == 0);
  evssh_session_close(s);
  ck_assert_int_eq(evssh_session_host_key(s, &type, &blob, &len), 0);   /* still readable */
  evssh_session_free(s);

  evssh_session *fresh = evssh_session_new("127.0.0.1");
  ck_assert_ptr_null(evssh_session_algorithm(fresh, "kex"));
  ck_assert_int_eq(evssh_session_host_key(fresh, &type, &blob, &len), EVSSH_EINVAL);
  evssh_session_free(fresh);
}
END_TEST

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&peer, NULL) != 0) return 1;
  Suite *s = suite_create("loop");
  TCase *tc = tcase_create("loop");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_on_process_once_per_iteration);
  tcase_add_test(tc, test_upload_from_on_process);
  tcase_add_test(tc, test_relay_from_listen_to);
  tcase_add_test(tc, test_exec_wait_from_on_ready);
  tcase_add_test(tc, test_wait_then_exit_status);
  tcase_add_test(tc, test_close_async);
  tcase_add_test(tc, test_free_session_in_multi);
  tcase_add_test(tc, test_send_cap_against_a_server_that_never_reads);
  tcase_add_test(tc, test_algorithms_and_host_key);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
