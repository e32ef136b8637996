/* test_adapter_libevent.c: include/evssh/adapters/libevent.h against a
 * real sshd (the scenarios are in test_adapter_common.c). libevent 2.1 has
 * no hook before it waits, so after the program's own calls into evssh the
 * test calls evssh_libevent_update(), as the header asks. Skips (77)
 * without sshd; not built without libevent. */
#include "test_adapter_common.h"

#ifndef EVSSH_TEST_LOOP_FOUND
int main(void) { return adapter_test_skip("libevent", "libevent-dev"); }
#else

#include <evssh/adapters/libevent.h>
#include <stdlib.h>

static struct event_base *base;

static void on_stopped(evssh_libevent *a, int status, void *ud) { adapter_stopped(a, status); }

static void loop_new(void) {
  base = event_base_new();
  if (!base) abort();
}
static int loop_free(void) {
  int left = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
  event_base_free(base);
  base = NULL;
  return left;
}
static void run(void) { event_base_dispatch(base); }
static void *attach(evssh_session *s) { return evssh_libevent_attach(base, s, on_stopped, NULL); }
static void *attach_multi(evssh_multi *m) { return evssh_libevent_attach_multi(base, m, on_stopped, NULL); }
static void detach(void *a) { evssh_libevent_detach(a); }
static void after_outside_call(void *a) { evssh_libevent_update(a); }

static void later_fire(evutil_socket_t fd, short what, void *arg) { adapter_later_fire(arg); }

static void later(int ms, void (*fn)(void *), void *ud) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  if (event_base_once(base, -1, EV_TIMEOUT, later_fire, adapter_later_new(fn, ud), &tv) != 0) abort();
}

int main(void) {
  static const adapter_ops ops = {"libevent", loop_new, loop_free, run, attach, attach_multi,
                                  detach, after_outside_call, later};
  return adapter_test_main(&ops);
}
#endif
