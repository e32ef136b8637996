/* test_adapter_fdswap.c: the adapters follow a session whose fd is closed
 * and replaced by another file under the same number with the same
 * interest — what a session does when the first address of a host refuses
 * and the next socket reuses the number. With a real session that needs a
 * name with several addresses, so this test drives each adapter found by
 * configure with a scripted stand-in for the session (it defines the
 * foreign-loop calls itself and does not link libevssh):
 *   1. the session watches A for reading; A becomes readable;
 *   2. it closes A, puts a socket B on A's number (dup2), still wants to
 *      read, and B is readable at once;
 *   3. the adapter must report B readable: an adapter that only compared
 *      numbers keeps a registration for the closed A and never wakes.
 * A 10 s guard timer turns a hang into a failure. Built once per loop
 * (EVSSH_TEST_LIBUV, _LIBEVENT or _LIBEV); skips (77) when configure did
 * not find that loop. */
#include <evssh.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct evssh_session {
  int fd, events, step;
  int peer;          /* the other end of the current socketpair */
  bool closed;
  bool saw_b;        /* step 3 happened */
};

int evssh_session_fd(const evssh_session *s) { return s->closed ? -1 : s->fd; }
int evssh_session_events(const evssh_session *s) { return s->closed ? 0 : s->events; }
int evssh_session_timeout(const evssh_session *s) { return -1; }
bool evssh_session_closed(const evssh_session *s) { return s->closed; }
int evssh_multi_fd(const evssh_multi *m) { return -1; }
int evssh_multi_timeout(evssh_multi *m) { return -1; }
int evssh_multi_process(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud) { return EVSSH_EINVAL; }

int evssh_session_handle_events(evssh_session *s, int revents) {
  if (!(revents & EVSSH_READ)) return EVSSH_OK;   /* the adapter's first look, or a timer */
  char c;
  if (read(s->fd, &c, 1) != 1) return EVSSH_OK;
  if (s->step == 0) {   /* A was readable: replace it by B under the same number */
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0) abort();
    close(s->peer);
    if (dup2(pair[0], s->fd) != s->fd) abort();   /* closes A, same number now names B */
    close(pair[0]);
    s->peer = pair[1];
    if (write(s->peer, "b", 1) != 1) abort();
    s->step = 1;
    return EVSSH_OK;
  }
  s->saw_b = true;      /* B was readable: done */
  s->closed = true;
  close(s->fd);
  close(s->peer);
  return EVSSH_ECLOSED;
}

static void session_init(evssh_session *s) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0) abort();
  *s = (evssh_session){pair[0], EVSSH_READ, 0, pair[1], false, false};
  if (write(s->peer, "a", 1) != 1) abort();
}

static int report(const char *loop, const evssh_session *s, int stopped_status) {
  printf("%s: %s (step %d, stopped with %d)\n", loop, s->saw_b ? "followed the new file" : "FAILED: never saw B",
         s->step, stopped_status);
  return s->saw_b && stopped_status == EVSSH_ECLOSED ? 0 : 1;
}

static int stopped_status;
static int tested;

#ifdef EVSSH_TEST_LIBUV
#include <evssh/adapters/libuv.h>
static evssh_libuv *uv_adapter;
static void uv_stopped(evssh_libuv *a, int status, void *ud) {
  stopped_status = status;
  evssh_libuv_detach(a);
  uv_adapter = NULL;
  uv_timer_stop(ud);
}
static void uv_guard(uv_timer_t *t) {
  evssh_libuv_detach(uv_adapter);   /* hung: end the loop */
  uv_adapter = NULL;
}
static int run_libuv(void) {
  evssh_session s;
  uv_loop_t loop;
  uv_timer_t guard;
  session_init(&s);
  uv_loop_init(&loop);
  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, uv_guard, 10000, 0);
  stopped_status = 1;
  uv_adapter = evssh_libuv_attach(&loop, &s, uv_stopped, &guard);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  tested++;
  return report("libuv", &s, stopped_status);
}
#endif

#ifdef EVSSH_TEST_LIBEVENT
#include <evssh/adapters/libevent.h>
static evssh_libevent *ev2_adapter;
static void ev2_stopped(evssh_libevent *a, int status, void *ud) {
  stopped_status = status;
  evssh_libevent_detach(a);
  ev2_adapter = NULL;
  event_del(ud);
}
static void ev2_guard(evutil_socket_t fd, short what, void *ud) {
  evssh_libevent_detach(ev2_adapter);
  ev2_adapter = NULL;
}
static int run_libevent(void) {
  evssh_session s;
  session_init(&s);
  struct event_base *base = event_base_new();
  struct event *guard = evtimer_new(base, ev2_guard, NULL);
  struct timeval ten = {10, 0};
  evtimer_add(guard, &ten);
  stopped_status = 1;
  ev2_adapter = evssh_libevent_attach(base, &s, ev2_stopped, guard);
  event_base_dispatch(base);
  event_free(guard);
  event_base_free(base);
  tested++;
  return report("libevent", &s, stopped_status);
}
#endif

#ifdef EVSSH_TEST_LIBEV
#include <evssh/adapters/libev.h>
static evssh_libev *ev_adapter;
static struct ev_loop *ev_test_loop;
static void ev_stopped(evssh_libev *a, int status, void *ud) {
  stopped_status = status;
  evssh_libev_detach(a);
  ev_adapter = NULL;
  ev_timer_stop(ev_test_loop, ud);
}
static void ev_guard(struct ev_loop *loop, ev_timer *w, int revents) {
  evssh_libev_detach(ev_adapter);
  ev_adapter = NULL;
}
static int run_libev(void) {
  evssh_session s;
  session_init(&s);
  struct ev_loop *loop = ev_test_loop = ev_loop_new(EVFLAG_AUTO);
  ev_timer guard;
  ev_timer_init(&guard, ev_guard, 10., 0.);
  ev_timer_start(loop, &guard);
  stopped_status = 1;
  ev_adapter = evssh_libev_attach(loop, &s, ev_stopped, &guard);
  ev_run(loop, 0);
  ev_timer_stop(loop, &guard);
  ev_loop_destroy(loop);
  tested++;
  return report("libev", &s, stopped_status);
}
#endif

int main(void) {
  int failed = 0;
#ifdef EVSSH_TEST_LIBUV
  failed += run_libuv();
#endif
#ifdef EVSSH_TEST_LIBEVENT
  failed += run_libevent();
#endif
#ifdef EVSSH_TEST_LIBEV
  failed += run_libev();
#endif
  if (!tested) {
    printf("SKIP: configure did not find this loop library; its adapter is not tested\n");
    return 77;
  }
  return failed ? 1 : 0;
}
