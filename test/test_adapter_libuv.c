/* test_adapter_libuv.c: include/evssh/adapters/libuv.h against a real sshd
 * (the scenarios are in test_adapter_common.c). Nothing is done after the
 * program's own calls into evssh: the adapter's prepare handle must notice
 * them. Skips (77) without sshd; not built without libuv. */
#include "test_adapter_common.h"

#ifndef EVSSH_TEST_LOOP_FOUND
int main(void) { return adapter_test_skip("libuv", "libuv1-dev"); }
#else

#include <evssh/adapters/libuv.h>
#include <stdlib.h>

static uv_loop_t loop;

static void on_stopped(evssh_libuv *a, int status, void *ud) { adapter_stopped(a, status); }

static void loop_new(void) { uv_loop_init(&loop); }
static int loop_free(void) { return uv_loop_close(&loop); }
static void run(void) { uv_run(&loop, UV_RUN_DEFAULT); }
static void *attach(evssh_session *s) { return evssh_libuv_attach(&loop, s, on_stopped, NULL); }
static void *attach_multi(evssh_multi *m) { return evssh_libuv_attach_multi(&loop, m, on_stopped, NULL); }
static void detach(void *a) { evssh_libuv_detach(a); }
static void after_outside_call(void *a) {}

typedef struct later_call {
  uv_timer_t timer;
  void (*fn)(void *);
  void *ud;
} later_call;

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t) {
  later_call *c = t->data;
  c->fn(c->ud);
  uv_close((uv_handle_t *)&c->timer, later_closed);
}

static void later(int ms, void (*fn)(void *), void *ud) {
  later_call *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->fn = fn;
  c->ud = ud;
  uv_timer_init(&loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, later_fire, (uint64_t)ms, 0);
}

int main(void) {
  static const adapter_ops ops = {"libuv", loop_new, loop_free, run, attach, attach_multi,
                                  detach, after_outside_call, later};
  return adapter_test_main(&ops);
}
#endif
