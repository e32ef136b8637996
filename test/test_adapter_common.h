/* test_adapter_common.h: the scenarios every event-loop adapter test runs
 * (include/evssh/adapters/<loop>.h), written once against a small table of the
 * loop's operations that each test_adapter_<loop>.c fills in. */
#ifndef EVSSH_TEST_ADAPTER_COMMON_H
#define EVSSH_TEST_ADAPTER_COMMON_H

#include "evssh.h"

#include <stdbool.h>

typedef struct adapter_ops {
  const char *name;                         /* "libuv" */
  void (*loop_new)(void);
  int (*loop_free)(void);                   /* 0, or the loop still had live handles */
  void (*run)(void);                        /* until nothing keeps the loop going */
  /* the adapter under test; the driver's stopped callback calls
     adapter_stopped(handle, status) */
  void *(*attach)(evssh_session *s);
  void *(*attach_multi)(evssh_multi *m);
  void (*detach)(void *a);
  /* after the program called into evssh from a loop callback of its own:
     what the adapter asks for (nothing for loops with a prepare hook) */
  void (*after_outside_call)(void *a);
  /* run fn(ud) once from the loop after ms, outside any evssh callback */
  void (*later)(int ms, void (*fn)(void *ud), void *ud);
} adapter_ops;

/* Called by the driver's stopped callback. */
void adapter_stopped(void *a, int status);

/* A deferred call for loops with a one-shot "call me later" (libevent's
   event_base_once, libev's ev_once): the driver passes adapter_later_new's
   result as the argument and calls adapter_later_fire from its callback. */
typedef struct adapter_later adapter_later;
adapter_later *adapter_later_new(void (*fn)(void *ud), void *ud);
void adapter_later_fire(adapter_later *c);   /* runs fn(ud) and frees c */

/* The whole test when configure did not find the loop: says so, returns 77. */
int adapter_test_skip(const char *loop, const char *debian_package);

/* Starts sshd, runs every scenario through ops, stops sshd; the test's
   exit status (77 when sshd is missing). */
int adapter_test_main(const adapter_ops *ops);

#endif
