/* Interop tests of how an evssh_multi learns what changed (issue 17),
 * against the harness sshd on 127.0.0.1. The multi asks a session for its
 * fd, interest, timeout and listen_to set only when the session told it
 * something changed (session.c's touch hook) or after handling it, so:
 *   - idle sessions beside a busy one are not asked each iteration: the
 *     test links with the linker's --wrap for evssh_session_timeout and
 *     counts the multi's calls per session, never time;
 *   - whatever the program (or another session's callback) does to a
 *     member between iterations is seen: data queued on a channel, EOF,
 *     a listen_to fd, close_async, on_process set (run in the next
 *     iteration, which I/O paces), a send from another session's on_data;
 *     an fd two members listen to, or whose number one member's old
 *     socket had, goes to the member that still wants it; a channel that
 *     opened inside a member's own loop gets its on_process from the
 *     multi. Each is waited for with evssh_multi_loop(-1): a
 *     change the multi missed would sleep forever, and the test case's
 *     timeout fails it.
 * Skips (77) without sshd. */
#include "evssh.h"
#include "harness.h"
#include "peer_session.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static harness_peer peer;

#define MAX_SESSIONS 32
static evssh_session *counted[MAX_SESSIONS];
static int timeout_calls[MAX_SESSIONS];

static int slot_moves;   /* session_set_multi_slot calls: members renumbered */
void __real_session_set_multi_slot(evssh_session *s, size_t slot);
void __wrap_session_set_multi_slot(evssh_session *s, size_t slot);
void __wrap_session_set_multi_slot(evssh_session *s, size_t slot) {
  slot_moves++;
  __real_session_set_multi_slot(s, slot);
}

int __real_evssh_session_timeout(const evssh_session *s);
int __wrap_evssh_session_timeout(const evssh_session *s);
int __wrap_evssh_session_timeout(const evssh_session *s) {
  for (int i = 0; i < MAX_SESSIONS; i++)
    if (counted[i] == s) timeout_calls[i]++;
  return __real_evssh_session_timeout(s);
}

static evssh_session *connected_session(void) { return peer_session_connected(&peer); }

/* A `cat` on a session: what comes back is kept. */
typedef struct cat {
  evssh_channel *ch;
  bool open, closed;
  char got[256];
  size_t got_len;
  int processed;
  struct cat *forward_to;   /* on "g", send "y" to that cat (another session) */
} cat;

static void cat_data(evssh_channel *ch, const char *d, size_t n, void *ud) {
  cat *c = ud;
  for (size_t i = 0; i < n && c->got_len < sizeof c->got; i++) {
    c->got[c->got_len++] = d[i];
    if (d[i] == 'g' && c->forward_to) evssh_channel_send_data(c->forward_to->ch, "y", 1);
  }
}
static void cat_closed(evssh_channel *ch, void *ud) { ((cat *)ud)->closed = true; }
static void cat_opened(evssh_channel *ch, void *ud) {
  cat *c = ud;
  c->open = true;
  evssh_channel_on_data(ch, cat_data, c);
  evssh_channel_on_close(ch, cat_closed, c);
  evssh_channel_exec(ch, "cat", NULL, NULL);
}
static void cat_process(evssh_channel *ch, void *ud) { ((cat *)ud)->processed++; }

static bool cat_has(const cat *c, char byte) { return memchr(c->got, byte, c->got_len) != NULL; }

typedef struct wait_for {
  cat *c;
  char byte;     /* wait until this came back (0: until closed) */
} wait_for;
static bool not_yet(evssh_multi *m, void *ud) {
  wait_for *w = ud;
  return w->byte ? !cat_has(w->c, w->byte) : !w->c->closed;
}

static bool cats_opening(evssh_multi *m, void *ud) {
  cat *c = ud;
  for (int i = 0; i < 6; i++)
    if (!c[i].open) return true;
  return false;
}

/* ---- idle members are not asked ---- */

typedef struct pingpong {
  cat *c;
  int left;
} pingpong;
static bool pp_running(evssh_multi *m, void *ud) {
  pingpong *p = ud;
  if (p->c->got_len > 0) {   /* the byte came back: the next one */
    p->c->got_len = 0;
    if (--p->left > 0) evssh_channel_send_data(p->c->ch, "x", 1);
  }
  return p->left > 0;
}

START_TEST(test_idle_members_not_asked) {
  enum { IDLE = 20, ROUNDS = 200 };
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  evssh_session *idle[IDLE];
  for (int i = 0; i < IDLE; i++) {
    idle[i] = connected_session();
    ck_assert_int_eq(evssh_multi_add(m, idle[i]), EVSSH_OK);
  }
  evssh_session *busy = connected_session();
  ck_assert_int_eq(evssh_multi_add(m, busy), EVSSH_OK);
  cat c;
  memset(&c, 0, sizeof c);
  c.ch = evssh_session_open_channel(busy, cat_opened, &c);
  ck_assert_ptr_nonnull(c.ch);
  /* every member's first turn, the open, one byte through */
  wait_for opened = {&c, 'x'};
  evssh_channel_send_data(c.ch, "x", 1);
  ck_assert_int_ge(evssh_multi_loop(m, -1, not_yet, &opened), 0);
  c.got_len = 0;

  for (int i = 0; i < IDLE; i++) {
    counted[i] = idle[i];
    timeout_calls[i] = 0;
  }
  counted[IDLE] = busy;
  timeout_calls[IDLE] = 0;
  pingpong p = {&c, ROUNDS};
  evssh_channel_send_data(c.ch, "x", 1);
  ck_assert_int_ge(evssh_multi_loop(m, -1, pp_running, &p), 0);
  int idle_calls = 0;
  for (int i = 0; i < IDLE; i++) idle_calls += timeout_calls[i];
  printf("%d round trips beside %d idle sessions: the multi asked the idle ones %d times, the busy one %d\n",
         ROUNDS, IDLE, idle_calls, timeout_calls[IDLE]);
  /* asking every member each iteration would be >= IDLE * ROUNDS; a stray
     packet to an idle session (none is expected) costs one ask */
  ck_assert_int_le(idle_calls, IDLE);
  ck_assert_int_ge(timeout_calls[IDLE], ROUNDS);
  memset(counted, 0, sizeof counted);

  evssh_channel_close(c.ch);
  for (int i = 0; i < IDLE; i++) {
    evssh_multi_remove(m, idle[i]);
    evssh_session_free(idle[i]);
  }
  evssh_multi_remove(m, busy);
  evssh_session_close(busy);
  evssh_session_free(busy);
  evssh_multi_free(m);
}
END_TEST

/* ---- whatever changes between iterations is seen ---- */

typedef struct listened {
  int calls;
  int fd;
} listened;
static void on_pipe(evssh_session *s, int fd, int events, void *ud) {
  listened *l = ud;
  char buf[16];
  if (read(fd, buf, sizeof buf) > 0) l->calls++;
  evssh_session_stop_listening_to(s, fd);
}
static bool listen_pending(evssh_multi *m, void *ud) { return ((listened *)ud)->calls == 0; }

typedef struct closing {
  bool closed;
} closing;
static void on_session_closed(evssh_session *s, int status, void *ud) { ((closing *)ud)->closed = true; }
static bool close_pending(evssh_multi *m, void *ud) { return !((closing *)ud)->closed; }

static bool process_pending(evssh_multi *m, void *ud) { return ((cat *)ud)->processed == 0; }

START_TEST(test_changes_between_iterations_are_seen) {
  evssh_multi *m = evssh_multi_new();
  ck_assert_ptr_nonnull(m);
  evssh_session *s[6];
  cat c[6];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 6; i++) {
    s[i] = connected_session();
    ck_assert_int_eq(evssh_multi_add(m, s[i]), EVSSH_OK);
    c[i].ch = evssh_session_open_channel(s[i], cat_opened, &c[i]);
    ck_assert_ptr_nonnull(c[i].ch);
  }
  ck_assert_int_ge(evssh_multi_loop(m, -1, cats_opening, c), 0);
  /* settle: the exec replies; then every member is idle */
  for (int k = 0; k < 5; k++) evssh_multi_process(m, 50, NULL, NULL);

  /* data queued on an idle member's channel */
  ck_assert_int_eq(evssh_channel_send_data(c[0].ch, "b", 1), EVSSH_OK);
  wait_for w0 = {&c[0], 'b'};
  ck_assert_int_ge(evssh_multi_loop(m, -1, not_yet, &w0), 0);

  /* EOF: cat exits, the channel closes */
  ck_assert_int_eq(evssh_channel_eof(c[1].ch), EVSSH_OK);
  wait_for w1 = {&c[1], 0};
  ck_assert_int_ge(evssh_multi_loop(m, -1, not_yet, &w1), 0);

  /* a listen_to fd that is readable already */
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  ck_assert_int_eq(write(pfd[1], "z", 1), 1);
  listened l = {0, pfd[0]};
  ck_assert_int_eq(evssh_session_listen_to(s[2], pfd[0], EVSSH_READ, on_pipe, &l), EVSSH_OK);
  ck_assert_int_ge(evssh_multi_loop(m, -1, listen_pending, &l), 0);
  ck_assert_int_eq(l.calls, 1);
  close(pfd[0]);
  close(pfd[1]);

  /* on_process set on an idle channel: runs in the next iteration (an
     iteration is paced by I/O, as Net::SSH::Multi's: bytes through
     another member's cat make one) */
  evssh_channel_on_process(c[4].ch, cat_process, &c[4]);
  ck_assert_int_eq(evssh_channel_send_data(c[0].ch, "p", 1), EVSSH_OK);
  ck_assert_int_ge(evssh_multi_loop(m, -1, process_pending, &c[4]), 0);
  evssh_channel_on_process(c[4].ch, NULL, NULL);

  /* one session's callback sends on another's channel */
  c[0].forward_to = &c[5];
  ck_assert_int_eq(evssh_channel_send_data(c[0].ch, "g", 1), EVSSH_OK);
  wait_for w5 = {&c[5], 'y'};
  ck_assert_int_ge(evssh_multi_loop(m, -1, not_yet, &w5), 0);

  /* close_async of an idle member */
  closing cl = {false};
  ck_assert_int_eq(evssh_session_close_async(s[3], on_session_closed, &cl), EVSSH_OK);
  ck_assert_int_ge(evssh_multi_loop(m, -1, close_pending, &cl), 0);

  for (int i = 0; i < 6; i++) {
    evssh_multi_remove(m, s[i]);
    evssh_session_free(s[i]);
  }
  evssh_multi_free(m);
}
END_TEST

/* ---- fds handed from one member to another ---- */

static int fired_a, fired_b;
static void read_a(evssh_session *s, int fd, int ev, void *ud) {
  char b[16];
  if (read(fd, b, sizeof b) > 0) fired_a++;
}
static void read_b(evssh_session *s, int fd, int ev, void *ud) {
  char b[16];
  if (read(fd, b, sizeof b) > 0) fired_b++;
}
static void ignore_io(evssh_session *s, int fd, int ev, void *ud) {}

/* A and B both listen to one pipe; the multi can register it for one of
   them only (A). When A stops listening (or leaves the multi), B takes it
   over at once. */
static void shared_fd_handover(bool remove_a) {
  evssh_multi *m = evssh_multi_new();
  evssh_session *a = evssh_session_new("127.0.0.1"), *b = evssh_session_new("127.0.0.1");
  ck_assert_int_eq(evssh_multi_add(m, a), EVSSH_OK);
  ck_assert_int_eq(evssh_multi_add(m, b), EVSSH_OK);
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  ck_assert_int_eq(evssh_session_listen_to(a, p[0], EVSSH_READ, read_a, NULL), EVSSH_OK);
  ck_assert_int_eq(evssh_session_listen_to(b, p[0], EVSSH_READ, read_b, NULL), EVSSH_OK);
  evssh_multi_process(m, 0, NULL, NULL);
  /* B was asked and left without the fd; it is not touched again */
  if (remove_a) ck_assert_int_eq(evssh_multi_remove(m, a), EVSSH_OK);
  else ck_assert_int_eq(evssh_session_stop_listening_to(a, p[0]), EVSSH_OK);
  fired_a = fired_b = 0;
  ck_assert_int_eq(write(p[1], "x", 1), 1);
  for (int i = 0; i < 5 && !fired_b; i++) evssh_multi_process(m, 200, NULL, NULL);
  ck_assert_int_eq(fired_a, 0);
  ck_assert_int_eq(fired_b, 1);
  close(p[0]);
  close(p[1]);
  if (!remove_a) evssh_multi_remove(m, a);
  evssh_multi_remove(m, b);
  evssh_session_free(a);
  evssh_session_free(b);
  evssh_multi_free(m);
}

START_TEST(test_shared_fd_stop) { shared_fd_handover(false); }
END_TEST
START_TEST(test_shared_fd_remove) { shared_fd_handover(true); }
END_TEST

/* A stops listening to fd N and closes it; B (asked before A in the same
   sweep) listens to a new pipe that got the number N. */
START_TEST(test_fd_number_reused_by_another_member) {
  evssh_multi *m = evssh_multi_new();
  evssh_session *a = evssh_session_new("127.0.0.1"), *b = evssh_session_new("127.0.0.1");
  ck_assert_int_eq(evssh_multi_add(m, a), EVSSH_OK);
  ck_assert_int_eq(evssh_multi_add(m, b), EVSSH_OK);
  int pa[2], q[2], pb[2];
  ck_assert_int_eq(pipe(pa), 0);
  ck_assert_int_eq(pipe(q), 0);
  ck_assert_int_eq(evssh_session_listen_to(a, pa[0], EVSSH_READ, read_a, NULL), EVSSH_OK);
  evssh_multi_process(m, 0, NULL, NULL);   /* pa[0] registered as A's */
  ck_assert_int_eq(evssh_session_listen_to(b, q[0], EVSSH_READ, ignore_io, NULL), EVSSH_OK);   /* B first */
  ck_assert_int_eq(evssh_session_stop_listening_to(a, pa[0]), EVSSH_OK);
  int old = pa[0];
  close(pa[0]);
  ck_assert_int_eq(pipe(pb), 0);
  ck_assert_int_eq(pb[0], old);   /* the lowest free number comes back */
  ck_assert_int_eq(evssh_session_listen_to(b, pb[0], EVSSH_READ, read_b, NULL), EVSSH_OK);
  fired_b = 0;
  ck_assert_int_eq(write(pb[1], "x", 1), 1);
  for (int i = 0; i < 5 && !fired_b; i++) evssh_multi_process(m, 200, NULL, NULL);
  ck_assert_int_eq(fired_b, 1);
  close(pa[1]);
  close(q[0]);
  close(q[1]);
  close(pb[0]);
  close(pb[1]);
  evssh_multi_remove(m, a);
  evssh_multi_remove(m, b);
  evssh_session_free(a);
  evssh_session_free(b);
  evssh_multi_free(m);
}
END_TEST

/* A member's channel opens inside the member's own loop (a blocking call
   on a member, Ruby's exec!): the multi still learns it has on_process. */
static bool open_pending(evssh_session *s, void *ud) { return !((cat *)ud)->open; }
/* opened, nothing sent on it: no packet tells the multi */
static void quiet_opened(evssh_channel *ch, void *ud) { ((cat *)ud)->open = true; }
static bool processed_twice(evssh_multi *m, void *ud) { return ((cat *)ud)->processed < 2; }

START_TEST(test_change_inside_members_own_loop) {
  evssh_multi *m = evssh_multi_new();
  evssh_session *b = connected_session(), *other = connected_session();
  ck_assert_int_eq(evssh_multi_add(m, b), EVSSH_OK);
  ck_assert_int_eq(evssh_multi_add(m, other), EVSSH_OK);
  for (int k = 0; k < 5; k++) evssh_multi_process(m, 50, NULL, NULL);   /* settle */
  cat c, o;
  memset(&c, 0, sizeof c);
  memset(&o, 0, sizeof o);
  c.ch = evssh_session_open_channel(b, quiet_opened, &c);
  ck_assert_ptr_nonnull(c.ch);
  evssh_channel_on_process(c.ch, cat_process, &c);
  evssh_multi_process(m, 0, NULL, NULL);   /* the multi asks b: still opening */
  ck_assert_int_ge(evssh_session_loop(b, -1, open_pending, &c), 0);   /* confirmed in b's own loop */
  int at = c.processed;
  /* the multi's iterations, paced by another member's cat, run it */
  o.ch = evssh_session_open_channel(other, cat_opened, &o);
  ck_assert_ptr_nonnull(o.ch);
  ck_assert_int_eq(evssh_channel_send_data(o.ch, "0123456789", 10), EVSSH_OK);
  ck_assert_int_ge(evssh_multi_loop(m, -1, processed_twice, &c), 0);
  ck_assert_int_gt(c.processed, at);
  evssh_channel_on_process(c.ch, NULL, NULL);
  evssh_multi_remove(m, b);
  evssh_multi_remove(m, other);
  evssh_session_free(b);
  evssh_session_free(other);
  evssh_multi_free(m);
}
END_TEST

/* Removing members one by one from the front (sessions closing in the
   order they started) must not renumber every later member each time:
   that made closing N sessions O(N^2). */
START_TEST(test_removals_amortised) {
  enum { N = 40 };
  evssh_multi *m = evssh_multi_new();
  evssh_session *s[N];
  for (int i = 0; i < N; i++) {
    s[i] = evssh_session_new("127.0.0.1");
    ck_assert_int_eq(evssh_multi_add(m, s[i]), EVSSH_OK);
  }
  slot_moves = 0;
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(evssh_multi_remove(m, s[i]), EVSSH_OK);
    evssh_multi_process(m, 0, NULL, NULL);
    /* the others are still members */
    if (i + 1 < N) ck_assert_int_eq(evssh_multi_add(m, s[i + 1]), EVSSH_EINVAL);
  }
  printf("removing %d members from the front renumbered members %d times\n", N, slot_moves);
  /* compacting at each removal: 39 + 38 + ... = 780 */
  ck_assert_int_le(slot_moves, 3 * N);
  for (int i = 0; i < N; i++) evssh_session_free(s[i]);
  evssh_multi_free(m);
}
END_TEST

static Suite *touch_suite(void) {
  Suite *su = suite_create("multi_touch");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_idle_members_not_asked);
  tcase_add_test(tc, test_changes_between_iterations_are_seen);
  tcase_add_test(tc, test_shared_fd_stop);
  tcase_add_test(tc, test_shared_fd_remove);
  tcase_add_test(tc, test_fd_number_reused_by_another_member);
  tcase_add_test(tc, test_change_inside_members_own_loop);
  tcase_add_test(tc, test_removals_amortised);
  suite_add_tcase(su, tc);
  return su;
}

int main(void) {
  harness_require_sshd();
  if (harness_sshd_start(&peer, "MaxStartups 100\nMaxSessions 100\n") != 0) return 1;
  SRunner *sr = srunner_create(touch_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
