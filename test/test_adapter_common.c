/* test_adapter_common.c: what every adapter test checks against a real
 * OpenSSH sshd started by the harness on 127.0.0.1, with nothing but the
 * foreign loop running (no evssh_session_process, no blocking evssh call
 * while the loop runs):
 *  - one session: connect without blocking the loop (a 1 ms timer of the
 *    program keeps ticking), an exec started from a loop callback of the
 *    program's own (stdout, stderr, exit status kept apart), a megabyte
 *    queued from such a callback into `wc -c`, then 16 MiB through a remote
 *    `cat` with SHA-256 compared both ways; detaching ends the loop and
 *    leaves no handle behind;
 *  - a session the program closes from its own callback, and one whose
 *    connect is refused: the adapter stops by itself, tells the program
 *    with the session's code, and may be detached from that callback;
 *  - a whole evssh_multi: three sessions (one added while the loop runs),
 *    an exec on each and 16 MiB through one, detached from inside an evssh
 *    callback.
 * Each test_adapter_<loop>.c supplies the loop's operations (adapter_ops). */
#include "test_adapter_common.h"

#include "harness.h"

#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_TOTAL (16u << 20)
#define STREAM_IN_FLIGHT (2u << 20)   /* sent but not yet echoed back */
#define STREAM_CHUNK 65536u

static const adapter_ops *ops;
static harness_peer peer;
static const char *login_user;

/* ------------------------------------------------------------- sessions */

static evssh_session *new_session(int port) {
  evssh_session *s = evssh_session_new("127.0.0.1");
  ck_assert_ptr_nonnull(s);
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  ck_assert_int_eq(evssh_session_read_config(s, "none"), 0);
  ck_assert_int_eq(evssh_session_option(s, "User", login_user), 0);
  ck_assert_int_eq(evssh_session_option(s, "Port", portstr), 0);
  ck_assert_int_eq(evssh_session_option(s, "UserKnownHostsFile", peer.known_hosts), 0);
  ck_assert_int_eq(evssh_session_option(s, "GlobalKnownHostsFile", "/dev/null"), 0);
  ck_assert_int_eq(evssh_session_option(s, "IdentityFile", peer.key_ed25519), 0);
  ck_assert_int_eq(evssh_session_option(s, "IdentitiesOnly", "yes"), 0);
  ck_assert_int_eq(evssh_session_option(s, "ConnectTimeout", "60"), 0);
  return s;
}

/* ------------------------------------------------- 16 MiB through `cat` */

typedef struct stream {
  EVP_MD_CTX *out_hash, *in_hash;
  size_t sent, received;
  uint32_t x;             /* the generator's state */
  bool eof_sent, closed;
  int exit_status;
  void (*done)(void *ud);
  void *done_ud;
} stream;

/* Keep at most STREAM_IN_FLIGHT bytes between us and the echo, so the
   transfer is clocked by the peer rather than queued at once. */
static void stream_pump(evssh_channel *ch, stream *st) {
  unsigned char block[STREAM_CHUNK];
  while (st->sent < STREAM_TOTAL && st->sent - st->received < STREAM_IN_FLIGHT) {
    size_t n = STREAM_TOTAL - st->sent < sizeof block ? STREAM_TOTAL - st->sent : sizeof block;
    for (size_t i = 0; i < n; i++) {
      st->x = st->x * 1103515245u + 12345u;
      block[i] = (unsigned char)(st->x >> 24);
    }
    EVP_DigestUpdate(st->out_hash, block, n);
    ck_assert_int_eq(evssh_channel_send_data(ch, block, n), EVSSH_OK);
    st->sent += n;
  }
  if (st->sent == STREAM_TOTAL && !st->eof_sent) {
    st->eof_sent = true;
    ck_assert_int_eq(evssh_channel_eof(ch), EVSSH_OK);
  }
}

static void stream_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  stream *st = ud;
  EVP_DigestUpdate(st->in_hash, data, len);
  st->received += len;
  stream_pump(ch, st);
}

static void stream_on_close(evssh_channel *ch, void *ud) {
  stream *st = ud;
  st->closed = true;
  if (evssh_channel_exit_status(ch, &st->exit_status) != EVSSH_OK) st->exit_status = -1;
  if (st->done) st->done(st->done_ud);
}

static void stream_on_open(evssh_channel *ch, void *ud) {
  stream *st = ud;
  evssh_channel_on_data(ch, stream_on_data, st);
  evssh_channel_on_close(ch, stream_on_close, st);
  ck_assert_int_eq(evssh_channel_exec(ch, "cat", NULL, NULL), EVSSH_OK);
  stream_pump(ch, st);
}

static void stream_start(evssh_session *s, stream *st, void (*done)(void *), void *ud) {
  memset(st, 0, sizeof *st);
  st->out_hash = EVP_MD_CTX_new();
  st->in_hash = EVP_MD_CTX_new();
  st->x = 0x9e3779b9u;
  st->exit_status = -1;
  st->done = done;
  st->done_ud = ud;
  EVP_DigestInit_ex(st->out_hash, EVP_sha256(), NULL);
  EVP_DigestInit_ex(st->in_hash, EVP_sha256(), NULL);
  evssh_channel *ch = evssh_session_open_channel(s, stream_on_open, st);
  ck_assert_ptr_nonnull(ch);
}

static void stream_check(stream *st) {
  unsigned char a[32], b[32];
  unsigned int la = 0, lb = 0;
  EVP_DigestFinal_ex(st->out_hash, a, &la);
  EVP_DigestFinal_ex(st->in_hash, b, &lb);
  EVP_MD_CTX_free(st->out_hash);
  EVP_MD_CTX_free(st->in_hash);
  fprintf(stderr, "%s: stream sent %zu, received %zu, exit %d\n", ops->name, st->sent, st->received,
          st->exit_status);
  ck_assert(st->closed);
  ck_assert_uint_eq(st->sent, STREAM_TOTAL);
  ck_assert_uint_eq(st->received, STREAM_TOTAL);
  ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
  ck_assert_int_eq(st->exit_status, 0);
}

/* ------------------------------------------------------------------ exec */

typedef struct exec_out {
  char out[256], err[256];
  size_t out_len, err_len;
  int exit_status;
  bool closed;
  void (*done)(void *ud);
  void *done_ud;
} exec_out;

static void exec_on_output(evssh_channel *ch, evssh_stream which, const char *data, size_t len, void *ud) {
  exec_out *x = ud;
  char *dst = which == EVSSH_STDOUT ? x->out : x->err;
  size_t *n = which == EVSSH_STDOUT ? &x->out_len : &x->err_len;
  size_t room = sizeof x->out - 1 - *n;
  if (len > room) len = room;
  memcpy(dst + *n, data, len);
  *n += len;
  dst[*n] = 0;
}

static void exec_on_close(evssh_channel *ch, void *ud) {
  exec_out *x = ud;
  x->closed = true;
  if (evssh_channel_exit_status(ch, &x->exit_status) != EVSSH_OK) x->exit_status = -1;
  if (x->done) x->done(x->done_ud);
}

static void exec_start(evssh_session *s, const char *command, exec_out *x, void (*done)(void *), void *ud) {
  memset(x, 0, sizeof *x);
  x->exit_status = -1;
  x->done = done;
  x->done_ud = ud;
  evssh_channel *ch = evssh_session_exec(s, command, exec_on_output, x);
  ck_assert_ptr_nonnull(ch);
  evssh_channel_on_close(ch, exec_on_close, x);
}

/* ------------------------------------------------ the adapter's reports */

static struct {
  void *handle;
  int calls;
  int status;
  bool detach_there;      /* detach from inside the stopped callback */
} stopped;

void adapter_stopped(void *a, int status) {
  ck_assert_ptr_eq(a, stopped.handle);
  stopped.calls++;
  stopped.status = status;
  if (stopped.detach_there) ops->detach(a);
}

static void reset_stopped(bool detach_there) {
  memset(&stopped, 0, sizeof stopped);
  stopped.detach_there = detach_there;
}

struct adapter_later {
  void (*fn)(void *);
  void *ud;
};

adapter_later *adapter_later_new(void (*fn)(void *), void *ud) {
  adapter_later *c = malloc(sizeof *c);
  if (!c) abort();
  c->fn = fn;
  c->ud = ud;
  return c;
}

void adapter_later_fire(adapter_later *c) {
  adapter_later call = *c;
  free(c);
  call.fn(call.ud);
}

/* ========================================================= one session */

/* ---------------------------- data sent from outside evssh's callbacks */

#define FEED_TOTAL 1000000u   /* below half of sshd's window: no WINDOW_ADJUST comes back */

typedef struct feed {
  evssh_channel *ch;
  char out[64];
  size_t out_len;
  bool closed;
  int exit_status;
  void (*done)(void *ud);
  void *done_ud;
} feed;

static void feed_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  feed *f = ud;
  if (len > sizeof f->out - 1 - f->out_len) len = sizeof f->out - 1 - f->out_len;
  memcpy(f->out + f->out_len, data, len);
  f->out_len += len;
  f->out[f->out_len] = 0;
}

static void feed_on_close(evssh_channel *ch, void *ud) {
  feed *f = ud;
  f->closed = true;
  if (evssh_channel_exit_status(ch, &f->exit_status) != EVSSH_OK) f->exit_status = -1;
  f->done(f->done_ud);
}

typedef struct single {
  evssh_session *s;
  void *adapter;
  int ready_status, ready_calls;
  unsigned ticks, ticks_at_ready;
  exec_out exec;
  feed wc;
  stream cat;
} single;

static void single_tick(void *ud) {
  single *t = ud;
  t->ticks++;
  if (!t->ready_calls) ops->later(1, single_tick, t);
}

static void single_finish(void *ud) {
  single *t = ud;
  ops->detach(t->adapter);   /* nothing else keeps the loop going */
  t->adapter = NULL;
}

static void single_cat_done(void *ud) { ops->later(0, single_finish, ud); }

static void single_wc_done(void *ud) {
  single *t = ud;
  stream_start(t->s, &t->cat, single_cat_done, t);   /* from inside an evssh callback */
}

/* A megabyte and EOF queued at once from a loop callback of ours: what the
   socket does not take must wait for writability, and only the adapter
   can ask the loop for that (no reply from the peer would wake it). */
static void single_feed(void *ud) {
  single *t = ud;
  static char block[FEED_TOTAL];
  memset(block, 'x', sizeof block);
  ck_assert_int_eq(evssh_channel_send_data(t->wc.ch, block, sizeof block), EVSSH_OK);
  ck_assert_int_eq(evssh_channel_eof(t->wc.ch), EVSSH_OK);
  ops->after_outside_call(t->adapter);
}

static void single_wc_open(evssh_channel *ch, void *ud) {
  single *t = ud;
  ck_assert_int_eq(evssh_channel_exec(ch, "wc -c", NULL, NULL), EVSSH_OK);
  ops->later(0, single_feed, t);
}

static void single_exec_done(void *ud) {
  single *t = ud;
  t->wc.exit_status = -1;
  t->wc.done = single_wc_done;
  t->wc.done_ud = t;
  t->wc.ch = evssh_session_open_channel(t->s, single_wc_open, t);
  ck_assert_ptr_nonnull(t->wc.ch);
  evssh_channel_on_data(t->wc.ch, feed_on_data, &t->wc);
  evssh_channel_on_close(t->wc.ch, feed_on_close, &t->wc);
}

static void single_start_exec(void *ud) {
  single *t = ud;
  exec_start(t->s, "printf 'to stdout'; printf 'to stderr' >&2; exit 3", &t->exec, single_exec_done, t);
  ops->after_outside_call(t->adapter);
}

/* A fresh loop and a session to the harness sshd on port, not connected. */
static void single_begin(single *t, int port, bool detach_in_stopped) {
  reset_stopped(detach_in_stopped);
  ops->loop_new();
  memset(t, 0, sizeof *t);
  t->s = new_session(port);
}

static void single_on_ready(evssh_session *s, int status, void *ud) {
  single *t = ud;
  t->ready_calls++;
  t->ready_status = status;
  t->ticks_at_ready = t->ticks;
  if (status == EVSSH_OK) ops->later(0, single_start_exec, t);   /* from a loop callback of ours */
}

START_TEST(test_session_exec_and_16mib) {
  single t;
  single_begin(&t, peer.port, false);
  /* a name, not an address: the session watches the resolver's wake-up fd
     first, then the socket, so the adapter must follow the fd */
  ck_assert_int_eq(evssh_session_option(t.s, "HostName", "localhost"), 0);
  ck_assert_int_eq(evssh_session_option(t.s, "StrictHostKeyChecking", "no"), 0);
  ck_assert_int_eq(evssh_session_connect_async(t.s, single_on_ready, &t), EVSSH_OK);
  t.adapter = stopped.handle = ops->attach(t.s);
  ck_assert_ptr_nonnull(t.adapter);
  ops->later(1, single_tick, &t);
  ops->run();

  fprintf(stderr, "%s: ready %d after %u ticks: %s\n", ops->name, t.ready_status, t.ticks_at_ready,
          evssh_session_error(t.s));
  ck_assert_int_eq(t.ready_calls, 1);
  ck_assert_int_eq(t.ready_status, EVSSH_OK);
  /* the loop ran the program's timer while evssh connected */
  ck_assert_uint_ge(t.ticks_at_ready, 1);
  ck_assert(t.exec.closed);
  ck_assert_str_eq(t.exec.out, "to stdout");
  ck_assert_str_eq(t.exec.err, "to stderr");
  ck_assert_int_eq(t.exec.exit_status, 3);
  ck_assert(t.wc.closed);
  ck_assert_int_eq(atoi(t.wc.out), FEED_TOTAL);
  ck_assert_int_eq(t.wc.exit_status, 0);
  stream_check(&t.cat);
  ck_assert_int_eq(stopped.calls, 0);     /* detached, not stopped */
  ck_assert(!evssh_session_closed(t.s));
  ck_assert_int_eq(ops->loop_free(), 0);  /* detach left no handle behind */
  ck_assert_int_eq(evssh_session_close(t.s), EVSSH_OK);
  evssh_session_free(t.s);
}
END_TEST

/* --------------------------------- the program closes, or the peer refuses */

static void close_from_loop(void *ud) {
  single *t = ud;
  /* outside every evssh callback, so a blocking close is allowed */
  ck_assert_int_eq(evssh_session_close(t->s), EVSSH_OK);
  ops->after_outside_call(t->adapter);
}

static void close_on_ready(evssh_session *s, int status, void *ud) {
  single *t = ud;
  t->ready_calls++;
  t->ready_status = status;
  if (status == EVSSH_OK) ops->later(0, close_from_loop, t);
}

START_TEST(test_session_closed_by_program_stops_adapter) {
  single t;
  single_begin(&t, peer.port, true);
  ck_assert_int_eq(evssh_session_connect_async(t.s, close_on_ready, &t), EVSSH_OK);
  t.adapter = stopped.handle = ops->attach(t.s);
  ck_assert_ptr_nonnull(t.adapter);
  ops->run();
  ck_assert_int_eq(t.ready_status, EVSSH_OK);
  ck_assert_int_eq(stopped.calls, 1);
  ck_assert_int_eq(stopped.status, EVSSH_ECLOSED);
  ck_assert(evssh_session_closed(t.s));
  ck_assert_int_eq(ops->loop_free(), 0);
  evssh_session_free(t.s);
}
END_TEST

START_TEST(test_refused_connect_stops_adapter) {
  single t;
  single_begin(&t, harness_free_port(), true);
  /* the refusal may already be known here or only in the loop */
  evssh_session_connect_async(t.s, close_on_ready, &t);
  t.adapter = stopped.handle = ops->attach(t.s);
  ck_assert_ptr_nonnull(t.adapter);
  ops->run();
  fprintf(stderr, "%s: refused: %s\n", ops->name, evssh_session_error(t.s));
  ck_assert_int_eq(t.ready_calls, 1);
  ck_assert_int_eq(t.ready_status, EVSSH_ECONNECT);
  ck_assert_int_eq(stopped.calls, 1);
  ck_assert_int_eq(stopped.status, EVSSH_ECONNECT);
  ck_assert_int_eq(ops->loop_free(), 0);
  evssh_session_free(t.s);
}
END_TEST

/* ============================================================ a multi */

#define MEMBERS 3

typedef struct many {
  evssh_multi *m;
  void *adapter;
  evssh_session *s[MEMBERS];
  int ready_status[MEMBERS];
  exec_out exec[MEMBERS];
  stream cat;
  int done;            /* execs and the stream finished */
} many;

typedef struct member_ref {
  many *t;
  int index;
} member_ref;

static member_ref refs[MEMBERS];

static void many_one_done(void *ud) {
  many *t = ud;
  /* the last one detaches from inside evssh's on_close */
  if (++t->done == MEMBERS + 1) {
    ops->detach(t->adapter);
    t->adapter = NULL;
  }
}

static void many_on_ready(evssh_session *s, int status, void *ud) {
  member_ref *r = ud;
  many *t = r->t;
  t->ready_status[r->index] = status;
  ck_assert_int_eq(status, EVSSH_OK);
  char command[64];
  snprintf(command, sizeof command, "echo member-%d", r->index);
  exec_start(s, command, &t->exec[r->index], many_one_done, t);
  if (r->index == 0) stream_start(s, &t->cat, many_one_done, t);
}

static void many_add(many *t, int i) {
  t->s[i] = new_session(peer.port);
  refs[i] = (member_ref){t, i};
  t->ready_status[i] = 1;
  ck_assert_int_eq(evssh_session_connect_async(t->s[i], many_on_ready, &refs[i]), EVSSH_OK);
  ck_assert_int_eq(evssh_multi_add(t->m, t->s[i]), EVSSH_OK);
}

static void many_add_late(void *ud) {
  many *t = ud;
  many_add(t, MEMBERS - 1);   /* while the loop runs the others */
  ops->after_outside_call(t->adapter);
}

START_TEST(test_multi_exec_and_16mib) {
  reset_stopped(false);
  ops->loop_new();
  many t;
  memset(&t, 0, sizeof t);
  t.m = evssh_multi_new();
  ck_assert_ptr_nonnull(t.m);
  for (int i = 0; i < MEMBERS - 1; i++) many_add(&t, i);
  t.adapter = stopped.handle = ops->attach_multi(t.m);
  ck_assert_ptr_nonnull(t.adapter);
  ops->later(0, many_add_late, &t);
  ops->run();
  for (int i = 0; i < MEMBERS; i++) {
    char want[64];
    snprintf(want, sizeof want, "member-%d\n", i);
    ck_assert_int_eq(t.ready_status[i], EVSSH_OK);
    ck_assert(t.exec[i].closed);
    ck_assert_str_eq(t.exec[i].out, want);
    ck_assert_int_eq(t.exec[i].exit_status, 0);
  }
  stream_check(&t.cat);
  ck_assert_int_eq(stopped.calls, 0);
  ck_assert_int_eq(ops->loop_free(), 0);
  for (int i = 0; i < MEMBERS; i++) {
    ck_assert_int_eq(evssh_multi_remove(t.m, t.s[i]), EVSSH_OK);
    evssh_session_close(t.s[i]);
    evssh_session_free(t.s[i]);
  }
  evssh_multi_free(t.m);
}
END_TEST

/* ---------------------------------------------------------------- main */

int adapter_test_skip(const char *loop, const char *debian_package) {
  printf("SKIP: %s was not found by configure (Debian %s): the %s adapter is not tested\n", loop,
         debian_package, loop);
  return 77;
}

int adapter_test_main(const adapter_ops *o) {
  ops = o;
  harness_require_sshd();
  if (harness_sshd_start(&peer, NULL) != 0) return 1;
  login_user = peer.have_password_user ? peer.password_user : peer.user;
  Suite *suite = suite_create(ops->name);
  TCase *tc = tcase_create("adapter");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_session_exec_and_16mib);
  tcase_add_test(tc, test_session_closed_by_program_stops_adapter);
  tcase_add_test(tc, test_refused_connect_stops_adapter);
  tcase_add_test(tc, test_multi_exec_and_16mib);
  suite_add_tcase(suite, tc);
  SRunner *sr = srunner_create(suite);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  harness_sshd_stop(&peer);
  return failed ? 1 : 0;
}
