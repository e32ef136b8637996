/* test_adapter_libev.c: include/evssh/adapters/libev.h against a real sshd
 * (the scenarios are in test_adapter_common.c). Nothing is done after the
 * program's own calls into evssh: the adapter's prepare watcher must notice
 * them. Skips (77) without sshd; not built without libev. */
#include "test_adapter_common.h"

#ifndef EVSSH_TEST_LOOP_FOUND
int main(void) { return adapter_test_skip("libev", "libev-dev"); }
#else

#include <evssh/adapters/libev.h>
#include <stdlib.h>

static struct ev_loop *loop;

static void on_stopped(evssh_libev *a, int status, void *ud) { adapter_stopped(a, status); }

static void loop_new(void) {
  loop = ev_loop_new(EVFLAG_AUTO);
  if (!loop) abort();
}
static int loop_free(void) {
  /* ev_run returned, so no referenced watcher is active; one more pass
     runs any unreferenced one the adapter left behind (a prepare watcher
     pointing into freed memory shows under ASan and valgrind) */
  ev_run(loop, EVRUN_NOWAIT);
  ev_loop_destroy(loop);
  loop = NULL;
  return 0;
}
static void run(void) { ev_run(loop, 0); }
static void *attach(evssh_session *s) { return evssh_libev_attach(loop, s, on_stopped, NULL); }
static void *attach_multi(evssh_multi *m) { return evssh_libev_attach_multi(loop, m, on_stopped, NULL); }
static void detach(void *a) { evssh_libev_detach(a); }
static void after_outside_call(void *a) {}

static void later_fire(int revents, void *arg) { adapter_later_fire(arg); }

static void later(int ms, void (*fn)(void *), void *ud) {
  ev_once(loop, -1, 0, ms / 1000.0, later_fire, adapter_later_new(fn, ud));
}

int main(void) {
  static const adapter_ops ops = {"libev", loop_new, loop_free, run, attach, attach_multi,
                                  detach, after_outside_call, later};
  return adapter_test_main(&ops);
}
#endif
