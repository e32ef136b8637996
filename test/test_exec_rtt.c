/* Interop tests of an exec's round trips (issue 17) against the harness
 * sshd on 127.0.0.1: what the client writes and how often the loop wakes,
 * counted, never timed. The test links libevssh_core with the linker's
 * --wrap for send, poll and evssh_session_handle_events, so every write to
 * the session's socket and every pass is seen. An exec needs three writes
 * (CHANNEL_OPEN; the exec request, once the open is confirmed; CLOSE, once
 * the server's EOF, exit-status and CLOSE came) and nothing else; and the
 * loop must never wake only because it has bytes to write: each pass of an
 * exec is for bytes from the server. Both hold however the server's
 * packets are split into reads, so the counts are exact on a loaded
 * machine. The connect is checked the same way: our banner and KEXINIT
 * leave in one write, no pass writes twice, and the first userauth request
 * leaves with the SERVICE_REQUEST, before the server accepted the service,
 * and the server's banner does not wake the client before its KEXINIT.
 * Skips (77) without sshd. */
#include "evssh.h"
#include "harness.h"
#include "peer_session.h"

#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static harness_peer peer;

/* ------------------------------------------------------------- counters */

#define MAX_FDS 16
static int watched[MAX_FDS];
static int nwatched;
static bool watch_all;         /* count every send and pass (during a connect) */
static int sends;              /* send() calls on a watched fd */
static size_t first_send_len;  /* length of the first send counted */
static ssize_t first_recv_len; /* what the first recv counted returned */
static int recvs;
static int pass_sends, max_pass_sends;   /* sends in the current / the busiest pass */
static int passes;             /* evssh_session_handle_events calls */
static int write_only_passes;  /* ... woken for writing alone */
static int timeout_passes;     /* ... woken by nothing (a timeout) */

static bool is_watched(int fd) {
  if (watch_all) return true;
  for (int i = 0; i < nwatched; i++)
    if (watched[i] == fd) return true;
  return false;
}

static void reset_counts(void) {
  sends = passes = write_only_passes = timeout_passes = 0;
  first_send_len = 0;
  first_recv_len = -1;
  recvs = 0;
  pass_sends = max_pass_sends = 0;
}

ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags) {
  if (is_watched(fd)) {
    if (sends++ == 0) first_send_len = len;
    if (++pass_sends > max_pass_sends) max_pass_sends = pass_sends;
  }
  return __real_send(fd, buf, len, flags);
}

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags) {
  ssize_t n = __real_recv(fd, buf, len, flags);
  if (is_watched(fd) && recvs++ == 0) first_recv_len = n;
  return n;
}

int __real_evssh_session_handle_events(evssh_session *s, int revents);
int __wrap_evssh_session_handle_events(evssh_session *s, int revents);
int __wrap_evssh_session_handle_events(evssh_session *s, int revents) {
  if (is_watched(evssh_session_fd(s))) {
    passes++;
    pass_sends = 0;
    if (revents == EVSSH_WRITE) write_only_passes++;
    if (revents == 0) timeout_passes++;
  }
  return __real_evssh_session_handle_events(s, revents);
}

/* ------------------------------------------------------------- sessions */

static evssh_session *connected_session(void) {
  evssh_session *s = peer_session_connected(&peer);
  ck_assert_int_lt(nwatched, MAX_FDS);
  watched[nwatched++] = evssh_session_fd(s);
  return s;
}

static void finish(evssh_session *s) {
  evssh_session_close(s);
  evssh_session_free(s);
}

/* exec_wait: three writes, every pass for the server's bytes */
START_TEST(test_exec_wait_writes_and_passes) {
  evssh_session *s = connected_session();
  for (int i = 0; i < 5; i++) {
    reset_counts();
    evssh_result r;
    ck_assert_int_eq(evssh_session_exec_wait(s, "echo ok", &r), EVSSH_OK);
    ck_assert_int_eq(r.exit_status, 0);
    ck_assert_uint_eq(r.out_len, 3);
    evssh_result_free(&r);
    ck_assert_int_eq(sends, 3);
    ck_assert_int_eq(write_only_passes, 0);
    ck_assert_int_eq(timeout_passes, 0);
    /* at most one pass per server flight: confirmation, then the reply,
       data, EOF, exit-status and CLOSE in however many reads they come */
    ck_assert_int_ge(passes, 2);
  }
  finish(s);
}
END_TEST

/* The same for async execs on several sessions of one multi, started
   between iterations, as a program running one command on many hosts. */
typedef struct job {
  bool closed;
  int ok;
} job;

static void job_out(evssh_channel *ch, evssh_stream st, const char *d, size_t n, void *ud) {
  if (st == EVSSH_STDOUT && n == 3 && memcmp(d, "ok\n", 3) == 0) ((job *)ud)->ok++;
}
static void job_closed(evssh_channel *ch, void *ud) { ((job *)ud)->closed = true; }
static bool jobs_running(evssh_multi *m, void *ud) {
  job *j = ud;
  for (int i = 0; i < 4; i++)
    if (!j[i].closed) return true;
  return false;
}

START_TEST(test_multi_exec_writes_and_passes) {
  evssh_session *s[4];
  job jobs[4];
  memset(jobs, 0, sizeof jobs);
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  for (int i = 0; i < 4; i++) {
    s[i] = connected_session();
    ck_assert_int_eq(evssh_multi_add(m, s[i]), EVSSH_OK);
  }
  reset_counts();
  for (int i = 0; i < 4; i++) {
    evssh_channel *ch = evssh_session_exec(s[i], "echo ok", job_out, &jobs[i]);
    ck_assert_ptr_nonnull(ch);
    evssh_channel_on_close(ch, job_closed, &jobs[i]);
  }
  ck_assert_int_ge(evssh_multi_loop(m, -1, jobs_running, jobs), 0);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(jobs[i].ok, 1);
  ck_assert_int_eq(sends, 3 * 4);
  ck_assert_int_eq(write_only_passes, 0);
  for (int i = 0; i < 4; i++) {
    evssh_multi_remove(m, s[i]);
    finish(s[i]);
  }
  evssh_multi_free(m);
}
END_TEST

/* Execs started one after another from the previous one's on_close
   (inside a pass): the CLOSE and the next CHANNEL_OPEN share a write. */
typedef struct chain {
  evssh_session *s;
  int left;
  int oks;
} chain;

static void chain_out(evssh_channel *ch, evssh_stream st, const char *d, size_t n, void *ud) {
  if (st == EVSSH_STDOUT && n == 3) ((chain *)ud)->oks++;
}
static void chain_closed(evssh_channel *ch, void *ud) {
  chain *c = ud;
  if (--c->left > 0) {
    evssh_channel *next = evssh_session_exec(c->s, "echo ok", chain_out, c);
    ck_assert_ptr_nonnull(next);
    evssh_channel_on_close(next, chain_closed, c);
  }
}
static bool chain_running(evssh_session *s, void *ud) { return ((chain *)ud)->left > 0; }

START_TEST(test_chained_execs_from_callbacks) {
  evssh_session *s = connected_session();
  chain c = {s, 4, 0};
  reset_counts();
  evssh_channel *ch = evssh_session_exec(s, "echo ok", chain_out, &c);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_close(ch, chain_closed, &c);
  ck_assert_int_ge(evssh_session_loop(s, -1, chain_running, &c), 0);
  ck_assert_int_eq(c.oks, 4);
  /* each next open is queued in the pass that sends the previous CLOSE:
     one write carries both */
  ck_assert_int_eq(sends, 3 * 4 - 3);
  ck_assert_int_eq(write_only_passes, 0);
  ck_assert_int_eq(timeout_passes, 0);
  finish(s);
}
END_TEST

/* The connect: log lines in order, to see what went before what */
static char conn_log[64][300];
static int conn_log_n;
static void record_log(evssh_session *s, int level, const char *msg, void *ud) {
  if (conn_log_n < 64) snprintf(conn_log[conn_log_n++], sizeof conn_log[0], "%s", msg);
}
static int log_index(const char *needle) {
  for (int i = 0; i < conn_log_n; i++)
    if (strstr(conn_log[i], needle)) return i;
  return -1;
}

START_TEST(test_connect_writes) {
  evssh_session *s = peer_session_new(&peer);
  conn_log_n = 0;
  evssh_session_set_log(s, EVSSH_LOG_DEBUG, record_log, NULL);
  reset_counts();
  watch_all = true;   /* the only socket this process writes to meanwhile */
  int rc = evssh_session_connect(s);
  watch_all = false;
  if (rc) fprintf(stderr, "connect: %s\n", evssh_session_error(s));
  ck_assert_int_eq(rc, EVSSH_OK);
  /* "SSH-2.0-evssh_<version>\r\n" alone is under 64 bytes; KEXINIT with it */
  ck_assert_uint_gt(first_send_len, 200);
  /* the server's banner (40 bytes from this sshd) did not wake us alone:
     SO_RCVLOWAT held the first read back until its KEXINIT was there too,
     and is back to 1 now */
  ck_assert_int_gt(first_recv_len, 200);
  int lowat = 0;
  socklen_t ll = sizeof lowat;
  ck_assert_int_eq(getsockopt(evssh_session_fd(s), SOL_SOCKET, SO_RCVLOWAT, &lowat, &ll), 0);
  ck_assert_int_eq(lowat, 1);
  /* what a pass learned it answers in one write: NEWKEYS, SERVICE_REQUEST
     and the signed publickey request together */
  ck_assert_int_eq(max_pass_sends, 1);
  int offered = log_index("signed at once"), accepted = log_index("accepted the ssh-userauth service");
  ck_assert_int_ge(offered, 0);
  ck_assert_int_ge(accepted, 0);
  ck_assert_int_lt(offered, accepted);
  ck_assert_ptr_nonnull(strstr(conn_log[accepted], "our first request was sent with ours"));
  /* banner+KEXINIT, ECDH_INIT, NEWKEYS+SERVICE_REQUEST+USERAUTH_REQUEST;
     one more only if the server's NEWKEYS came in a read of its own */
  ck_assert_int_le(sends, 4);
  finish(s);
}
END_TEST

/* Closing a session with no channel open: DISCONNECT at once, no pass */
static void closed_cb(evssh_session *s, int status, void *ud) { *(int *)ud = status + 1000; }

START_TEST(test_close_without_channels) {
  evssh_session *s = connected_session();
  reset_counts();
  int status = -1;
  ck_assert_int_eq(evssh_session_close_async(s, closed_cb, &status), EVSSH_OK);
  /* nothing to wait for: on_closed ran before close_async returned */
  ck_assert_int_eq(status, 1000 + EVSSH_OK);
  ck_assert(evssh_session_closed(s));
  ck_assert_int_eq(passes, 0);
  ck_assert_int_eq(sends, 1);   /* the DISCONNECT */
  evssh_session_free(s);
}
END_TEST

/* Closing the session from the last channel's on_close (a program that
   runs one command and goes): the channel's CLOSE and the DISCONNECT leave
   in one write, and the session is closed when on_close returns. */
typedef struct run_then_close {
  bool closed_in_cb;
  int oks;
} run_then_close;
static void rtc_out(evssh_channel *ch, evssh_stream st, const char *d, size_t n, void *ud) {
  if (st == EVSSH_STDOUT && n == 3) ((run_then_close *)ud)->oks++;
}
static void rtc_closed(evssh_channel *ch, void *ud) {
  evssh_session *s = evssh_channel_session(ch);
  ck_assert_int_eq(evssh_session_close_async(s, NULL, NULL), EVSSH_OK);
  ((run_then_close *)ud)->closed_in_cb = evssh_session_closed(s);
}
static bool rtc_running(evssh_session *s, void *ud) { return !evssh_session_closed(s); }

START_TEST(test_close_from_last_on_close) {
  evssh_session *s = connected_session();
  run_then_close r = {false, 0};
  reset_counts();
  evssh_channel *ch = evssh_session_exec(s, "echo ok", rtc_out, &r);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_close(ch, rtc_closed, &r);
  evssh_session_loop(s, -1, rtc_running, &r);
  ck_assert_int_eq(r.oks, 1);
  ck_assert(r.closed_in_cb);
  /* CHANNEL_OPEN; the exec request; CLOSE + DISCONNECT */
  ck_assert_int_eq(sends, 3);
  evssh_session_free(s);
}
END_TEST

static Suite *rtt_suite(void) {
  Suite *su = suite_create("exec_rtt");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_connect_writes);
  tcase_add_test(tc, test_close_without_channels);
  tcase_add_test(tc, test_close_from_last_on_close);
  tcase_add_test(tc, test_exec_wait_writes_and_passes);
  tcase_add_test(tc, test_multi_exec_writes_and_passes);
  tcase_add_test(tc, test_chained_execs_from_callbacks);
  suite_add_tcase(su, tc);
  return su;
}

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&peer, NULL) != 0) return 1;
  SRunner *sr = srunner_create(rtt_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
