/** @file evssh/adapters/libev.h
 * @brief Drive an evssh session, or a whole evssh_multi, from a libev loop.
 *
 * Header-only (static inline): include it where the ev loop lives and link
 * libev and libevssh (`pkg-config --cflags --libs evssh` plus `-lev`; Debian
 * ships no libev.pc). Needs libev built with EV_MULTIPLICITY (the default).
 *
 * @code
 * evssh_session_connect_async(s, on_ready, app);
 * evssh_libev *a = evssh_libev_attach(EV_DEFAULT, s, on_stopped, app);
 * ev_run(EV_DEFAULT, 0);
 * @endcode
 *
 * An ev_io follows the session's fd (which changes while it connects), an
 * ev_timer its next deadline, and an ev_prepare brings both up to date
 * right before libev waits, so calls the program makes into evssh from its
 * own libev callbacks are picked up without an extra call. The prepare
 * watcher does not keep ev_run() going; the io watcher does, while the
 * adapter watches.
 */
#ifndef EVSSH_ADAPTERS_LIBEV_H
#define EVSSH_ADAPTERS_LIBEV_H

#include <evssh/adapters/common.h>
#include <ev.h>

#include <stdlib.h>

#if !EV_MULTIPLICITY
#error "evssh/adapters/libev.h needs libev with EV_MULTIPLICITY"
#endif

/** An attached adapter: one session or one multi driven from one libev loop.
 * Made by evssh_libev_attach() or evssh_libev_attach_multi(), freed by
 * evssh_libev_detach(). */
typedef struct evssh_libev evssh_libev;

/** Runs once when the adapter stops watching on its own: the session
 * closed (status: the code it ended with, EVSSH_ECLOSED after a normal
 * close; evssh_session_error() has the message) or evssh_multi_process()
 * failed (its code). It runs from a libev callback, never from inside
 * evssh, so it may free the session. Call evssh_libev_detach() there or
 * later to free the adapter. */
typedef void (*evssh_libev_stopped_cb)(evssh_libev *a, int status, void *ud);

/** @cond EVSSH_ADAPTER_INTERNALS */
/* The adapter's state. Private: the fields may change in any release. */
struct evssh_libev {
  evssh_adapter_core_ core;
  struct ev_loop *loop;
  ev_io io;                  /* on core.fd when active */
  ev_timer timer;
  ev_prepare prepare;
  evssh_libev_stopped_cb on_stopped;
  void *ud;
  int depth;                 /* inside one of our callbacks: free later */
};

static inline void evssh_libev_drop_io_(evssh_libev *a) {
  ev_io_stop(a->loop, &a->io);
  evssh_adapter_watching_(&a->core, -1);
}

static inline void evssh_libev_stop_(evssh_libev *a, int status) {
  evssh_libev_drop_io_(a);
  ev_timer_stop(a->loop, &a->timer);
  if (ev_is_active(&a->prepare)) {
    ev_ref(a->loop);   /* undo the unref made when it started */
    ev_prepare_stop(a->loop, &a->prepare);
  }
  a->core.stopped = true;
  if (a->on_stopped) a->on_stopped(a, status, a->ud);
}

/* Make the io watcher and the timer match what evssh wants now. ev_io_set
   on a new fd (or the same number reopened) makes libev register it anew. */
static inline void evssh_libev_rearm_(evssh_libev *a) {
  int fd, events, timeout;
  if (evssh_adapter_want_(&a->core, &fd, &events, &timeout)) evssh_libev_drop_io_(a);
  if (fd >= 0 && (a->core.fd < 0 || events != a->core.events)) {
    int want = ((events & EVSSH_READ) ? EV_READ : 0) | ((events & EVSSH_WRITE) ? EV_WRITE : 0);
    ev_io_stop(a->loop, &a->io);
    if (a->core.fd < 0) {
      evssh_adapter_watching_(&a->core, fd);
      ev_io_set(&a->io, fd, want);
    } else {
      ev_io_modify(&a->io, want);
    }
    a->core.events = events;
    if (want) ev_io_start(a->loop, &a->io);
  }
  ev_timer_stop(a->loop, &a->timer);
  if (timeout >= 0) {
    ev_timer_set(&a->timer, timeout / 1000.0, 0.);
    ev_timer_start(a->loop, &a->timer);
  }
}

static inline void evssh_libev_free_(evssh_libev *a) {
  if (ev_is_active(&a->prepare)) {
    ev_ref(a->loop);
    ev_prepare_stop(a->loop, &a->prepare);
  }
  free(a);
}

/* Every callback ends here; a detach made meanwhile (from an evssh
   callback or from on_stopped) takes effect at the end. */
static inline void evssh_libev_after_(evssh_libev *a, int rc) {
  a->depth++;
  int what = evssh_adapter_after_(&a->core, rc);
  if (what > 0) evssh_libev_rearm_(a);
  else if (what < 0) evssh_libev_stop_(a, what);
  if (--a->depth == 0 && a->core.detached) evssh_libev_free_(a);
}

static inline void evssh_libev_call_(evssh_libev *a, int revents) {
  if (a->core.detached || a->core.stopped) return;
  a->depth++;
  int rc = evssh_adapter_run_(&a->core, revents);
  a->depth--;
  evssh_libev_after_(a, rc);
}

static inline void evssh_libev_on_io_(struct ev_loop *loop, ev_io *w, int revents) {
  /* libev reports a hang-up as the events asked for; EV_ERROR (a bad fd)
     goes to evssh as both, so its next read or write finds out */
  evssh_libev *a = (evssh_libev *)w->data;
  int ev = 0;
  if (revents & EV_ERROR) {
    evssh_libev_drop_io_(a);   /* libev stopped the watcher: start anew */
    ev = EVSSH_READ | EVSSH_WRITE;
  }
  if (revents & EV_READ) ev |= EVSSH_READ;
  if (revents & EV_WRITE) ev |= EVSSH_WRITE;
  evssh_libev_call_(a, ev);
}

static inline void evssh_libev_on_timer_(struct ev_loop *loop, ev_timer *w, int revents) {
  evssh_libev_call_((evssh_libev *)w->data, 0);   /* 0: timers and buffered work */
}

static inline void evssh_libev_on_prepare_(struct ev_loop *loop, ev_prepare *w, int revents) {
  evssh_libev_after_((evssh_libev *)w->data, 0);
}

static inline evssh_libev *evssh_libev_new_(struct ev_loop *loop, evssh_session *s, evssh_multi *m,
                                            evssh_libev_stopped_cb on_stopped, void *ud) {
  if (!loop || (!s && !m)) return NULL;
  evssh_libev *a = (evssh_libev *)calloc(1, sizeof *a);
  if (!a) return NULL;
  evssh_adapter_init_(&a->core, s, m);
  a->loop = loop;
  a->on_stopped = on_stopped;
  a->ud = ud;
  ev_io_init(&a->io, evssh_libev_on_io_, 0, 0);
  ev_timer_init(&a->timer, evssh_libev_on_timer_, 0., 0.);
  ev_prepare_init(&a->prepare, evssh_libev_on_prepare_);
  a->io.data = a->timer.data = a->prepare.data = a;
  ev_prepare_start(loop, &a->prepare);
  ev_unref(loop);
  /* the first look is taken from the loop, so on_stopped never runs in here */
  ev_timer_start(loop, &a->timer);
  return a;
}
/** @endcond */

/** Drive session s from loop until it closes or evssh_libev_detach(). Call
 * it after evssh_session_connect_async() (or with a connected session),
 * before or inside ev_run(); it never blocks and runs no callback itself.
 * From then on everything evssh does for s happens inside libev callbacks.
 * The session's listen_to fds are not watched (they belong to
 * evssh_session_process()): watch your own fds with libev. on_stopped may
 * be NULL. Returns NULL when out of memory (or loop or s is NULL). */
static inline evssh_libev *evssh_libev_attach(struct ev_loop *loop, evssh_session *s,
                                              evssh_libev_stopped_cb on_stopped, void *ud) {
  return evssh_libev_new_(loop, s, NULL, on_stopped, ud);
}

/** Drive every member of multi m from loop through one io watcher on
 * evssh_multi_fd() (members' listen_to fds included) until
 * evssh_libev_detach(). Members may be added and removed at any time; one
 * that fails leaves the multi and reports through its own callbacks, not
 * here. The io watcher keeps ev_run() going until you detach. Returns NULL
 * when out of memory. */
static inline evssh_libev *evssh_libev_attach_multi(struct ev_loop *loop, evssh_multi *m,
                                                    evssh_libev_stopped_cb on_stopped, void *ud) {
  return evssh_libev_new_(loop, NULL, m, on_stopped, ud);
}

/** Bring the watchers up to date now. Never needed with libev (the prepare
 * watcher does it before every wait); it exists so that code written for
 * the libevent adapter, which needs it, ports unchanged. */
static inline void evssh_libev_update(evssh_libev *a) {
  if (a && !a->core.detached) evssh_libev_after_(a, 0);
}

/** Stop watching and free the adapter; a is invalid after the call. Safe
 * from any callback (evssh's, libev's, on_stopped). The session or multi is
 * left as it is: close and free it yourself, after detaching. NULL is
 * ignored. */
static inline void evssh_libev_detach(evssh_libev *a) {
  if (!a || a->core.detached) return;
  a->core.detached = true;
  ev_io_stop(a->loop, &a->io);
  ev_timer_stop(a->loop, &a->timer);
  if (a->depth == 0) evssh_libev_free_(a);
}

#endif /* EVSSH_ADAPTERS_LIBEV_H */
