/** @file evssh/adapters/libuv.h
 * @brief Drive an evssh session, or a whole evssh_multi, from a libuv loop.
 *
 * Header-only (static inline): include it where the uv_loop_t lives and
 * link libuv and libevssh (`pkg-config --cflags --libs evssh libuv`).
 *
 * @code
 * evssh_session_connect_async(s, on_ready, app);
 * evssh_libuv *a = evssh_libuv_attach(uv_default_loop(), s, on_stopped, app);
 * uv_run(uv_default_loop(), UV_RUN_DEFAULT);
 * @endcode
 *
 * A uv_poll_t follows the session's fd (which changes while it connects), a
 * uv_timer_t its next deadline, and a uv_prepare_t brings both up to date
 * right before libuv waits, so calls the program makes into evssh from its
 * own libuv callbacks (evssh_channel_send_data from a uv_read_cb, say) are
 * picked up without an extra call. The prepare handle does not keep the
 * loop alive; the poll handle does, while the adapter watches.
 */
#ifndef EVSSH_ADAPTERS_LIBUV_H
#define EVSSH_ADAPTERS_LIBUV_H

#include <evssh/adapters/common.h>
#include <uv.h>

#include <stdlib.h>

/** An attached adapter: one session or one multi driven from one libuv loop.
 * Made by evssh_libuv_attach() or evssh_libuv_attach_multi(), freed by
 * evssh_libuv_detach(). */
typedef struct evssh_libuv evssh_libuv;

/** Runs once when the adapter stops watching on its own: the session
 * closed (status: the code it ended with, EVSSH_ECLOSED after a normal
 * close; evssh_session_error() has the message), evssh_multi_process()
 * failed (its code), or libuv refused a poll handle (EVSSH_EINVAL). It runs
 * from a libuv callback, never from inside evssh, so it may free the
 * session. Call evssh_libuv_detach() there or later to free the adapter. */
typedef void (*evssh_libuv_stopped_cb)(evssh_libuv *a, int status, void *ud);

/** @cond EVSSH_ADAPTER_INTERNALS */
/* The adapter's state. Private: the fields may change in any release. */
struct evssh_libuv {
  evssh_adapter_core_ core;
  uv_loop_t *loop;
  uv_poll_t *poll;           /* on core.fd; NULL when none */
  uv_timer_t timer;
  uv_prepare_t prepare;
  evssh_libuv_stopped_cb on_stopped;
  void *ud;
  int open_handles;          /* timer and prepare, until libuv closed them */
};

static inline void evssh_libuv_on_poll_(uv_poll_t *h, int status, int uv_events);
static inline void evssh_libuv_on_timer_(uv_timer_t *t);

static inline void evssh_libuv_free_handle_(uv_handle_t *h) { free(h); }

static inline void evssh_libuv_drop_poll_(evssh_libuv *a) {
  if (a->poll) uv_close((uv_handle_t *)a->poll, evssh_libuv_free_handle_);  /* stops it too */
  a->poll = NULL;
  evssh_adapter_watching_(&a->core, -1);
}

static inline void evssh_libuv_stop_(evssh_libuv *a, int status) {
  evssh_libuv_drop_poll_(a);
  uv_timer_stop(&a->timer);
  uv_prepare_stop(&a->prepare);
  a->core.stopped = true;
  if (a->on_stopped) a->on_stopped(a, status, a->ud);
}

/* Make the poll handle and the timer match what evssh wants now. */
static inline void evssh_libuv_rearm_(evssh_libuv *a) {
  int fd, events, timeout;
  if (evssh_adapter_want_(&a->core, &fd, &events, &timeout)) evssh_libuv_drop_poll_(a);
  if (fd >= 0 && !a->poll) {
    uv_poll_t *p = (uv_poll_t *)malloc(sizeof *p);
    if (!p || uv_poll_init(a->loop, p, fd) != 0) {
      free(p);
      evssh_libuv_stop_(a, EVSSH_EINVAL);
      return;
    }
    p->data = a;
    a->poll = p;
    evssh_adapter_watching_(&a->core, fd);
  }
  if (a->poll && events != a->core.events) {
    int want = ((events & EVSSH_READ) ? UV_READABLE : 0) | ((events & EVSSH_WRITE) ? UV_WRITABLE : 0);
    if (want) uv_poll_start(a->poll, want, evssh_libuv_on_poll_);
    else uv_poll_stop(a->poll);
    a->core.events = events;
  }
  if (timeout >= 0) uv_timer_start(&a->timer, evssh_libuv_on_timer_, (uint64_t)timeout, 0);
  else uv_timer_stop(&a->timer);
}

static inline void evssh_libuv_after_(evssh_libuv *a, int rc) {
  int what = evssh_adapter_after_(&a->core, rc);
  if (what > 0) evssh_libuv_rearm_(a);
  else if (what < 0) evssh_libuv_stop_(a, what);
}

static inline void evssh_libuv_on_poll_(uv_poll_t *h, int status, int uv_events) {
  evssh_libuv *a = (evssh_libuv *)h->data;
  if (a->core.detached || a->core.stopped) return;
  /* libuv reports a hang-up or error as the events we asked for; a failed
     poll is given to evssh as both, so its next read or write finds out */
  int revents = status < 0 ? EVSSH_READ | EVSSH_WRITE : 0;
  if (uv_events & (UV_READABLE | UV_DISCONNECT)) revents |= EVSSH_READ;
  if (uv_events & UV_WRITABLE) revents |= EVSSH_WRITE;
  evssh_libuv_after_(a, evssh_adapter_run_(&a->core, revents));
}

static inline void evssh_libuv_on_timer_(uv_timer_t *t) {
  evssh_libuv *a = (evssh_libuv *)t->data;
  if (a->core.detached || a->core.stopped) return;
  evssh_libuv_after_(a, evssh_adapter_run_(&a->core, 0));  /* 0: timers and buffered work */
}

static inline void evssh_libuv_on_prepare_(uv_prepare_t *p) { evssh_libuv_after_((evssh_libuv *)p->data, 0); }

static inline void evssh_libuv_closed_(uv_handle_t *h) {
  evssh_libuv *a = (evssh_libuv *)h->data;
  if (--a->open_handles == 0) free(a);
}

static inline evssh_libuv *evssh_libuv_new_(uv_loop_t *loop, evssh_session *s, evssh_multi *m,
                                            evssh_libuv_stopped_cb on_stopped, void *ud) {
  if (!loop || (!s && !m)) return NULL;
  evssh_libuv *a = (evssh_libuv *)calloc(1, sizeof *a);
  if (!a) return NULL;
  evssh_adapter_init_(&a->core, s, m);
  a->loop = loop;
  a->on_stopped = on_stopped;
  a->ud = ud;
  uv_timer_init(loop, &a->timer);
  uv_prepare_init(loop, &a->prepare);
  a->timer.data = a->prepare.data = a;
  a->open_handles = 2;
  uv_prepare_start(&a->prepare, evssh_libuv_on_prepare_);
  uv_unref((uv_handle_t *)&a->prepare);
  /* the first look is taken from the loop, so on_stopped never runs in here */
  uv_timer_start(&a->timer, evssh_libuv_on_timer_, 0, 0);
  return a;
}
/** @endcond */

/** Drive session s from loop until it closes or evssh_libuv_detach(). Call
 * it after evssh_session_connect_async() (or with a connected session),
 * before or inside uv_run(); it never blocks and runs no callback itself.
 * From then on everything evssh does for s happens inside libuv callbacks:
 * the connect phases, packets, channel callbacks, keepalives, rekeying.
 * The session's listen_to fds are not watched (they belong to
 * evssh_session_process()): watch your own fds with libuv. on_stopped may
 * be NULL. Returns NULL when out of memory (or loop or s is NULL). */
static inline evssh_libuv *evssh_libuv_attach(uv_loop_t *loop, evssh_session *s,
                                              evssh_libuv_stopped_cb on_stopped, void *ud) {
  return evssh_libuv_new_(loop, s, NULL, on_stopped, ud);
}

/** Drive every member of multi m from loop through one poll handle on
 * evssh_multi_fd() (members' listen_to fds included) until
 * evssh_libuv_detach(). Members may be added and removed at any time; one
 * that fails leaves the multi and reports through its own callbacks
 * (on_ready, on_close), not here. The poll handle keeps uv_run() going
 * until you detach. Returns NULL when out of memory. */
static inline evssh_libuv *evssh_libuv_attach_multi(uv_loop_t *loop, evssh_multi *m,
                                                    evssh_libuv_stopped_cb on_stopped, void *ud) {
  return evssh_libuv_new_(loop, NULL, m, on_stopped, ud);
}

/** Bring the watchers up to date now. Never needed with libuv (the prepare
 * handle does it before every wait); it exists so that code written for
 * the libevent adapter, which needs it, ports unchanged. */
static inline void evssh_libuv_update(evssh_libuv *a) { evssh_libuv_after_(a, 0); }

/** Stop watching and free the adapter as soon as libuv lets go of its
 * handles; a is invalid after the call. Safe from any callback (evssh's,
 * libuv's, on_stopped). The session or multi is left as it is: close and
 * free it yourself, after detaching. NULL is ignored. */
static inline void evssh_libuv_detach(evssh_libuv *a) {
  if (!a || a->core.detached) return;
  a->core.detached = true;
  evssh_libuv_drop_poll_(a);
  uv_close((uv_handle_t *)&a->timer, evssh_libuv_closed_);
  uv_close((uv_handle_t *)&a->prepare, evssh_libuv_closed_);
}

#endif /* EVSSH_ADAPTERS_LIBUV_H */
