/** @file evssh/adapters/libevent.h
 * @brief Drive an evssh session, or a whole evssh_multi, from a libevent
 * (2.1 or later) event_base.
 *
 * Header-only (static inline): include it where the event_base lives and
 * link libevent and libevssh (`pkg-config --cflags --libs evssh libevent`).
 *
 * @code
 * evssh_session_connect_async(s, on_ready, app);
 * evssh_libevent *a = evssh_libevent_attach(base, s, on_stopped, app);
 * event_base_dispatch(base);
 * @endcode
 *
 * One event follows the session's fd (which changes while it connects) and
 * one timer its next deadline; both are brought up to date after every call
 * the adapter makes into evssh. libevent 2.1 has no hook that runs before it
 * waits, so after the program calls into evssh from one of its own libevent
 * callbacks (evssh_channel_send_data from a read callback, say, or
 * evssh_multi_add), it calls evssh_libevent_update() once. Calls made from
 * evssh's callbacks need nothing.
 */
#ifndef EVSSH_ADAPTERS_LIBEVENT_H
#define EVSSH_ADAPTERS_LIBEVENT_H

#include <evssh/adapters/common.h>
#include <event2/event.h>

#include <stdlib.h>

/** An attached adapter: one session or one multi driven from one libevent loop.
 * Made by evssh_libevent_attach() or evssh_libevent_attach_multi(), freed by
 * evssh_libevent_detach(). */
typedef struct evssh_libevent evssh_libevent;

/** Runs once when the adapter stops watching on its own: the session
 * closed (status: the code it ended with, EVSSH_ECLOSED after a normal
 * close; evssh_session_error() has the message), evssh_multi_process()
 * failed (its code), or libevent refused an event (EVSSH_ENOMEM). It runs
 * from a libevent callback, never from inside evssh, so it may free the
 * session. Call evssh_libevent_detach() there or later to free the adapter. */
typedef void (*evssh_libevent_stopped_cb)(evssh_libevent *a, int status, void *ud);

/** @cond EVSSH_ADAPTER_INTERNALS */
/* The adapter's state. Private: the fields may change in any release. */
struct evssh_libevent {
  evssh_adapter_core_ core;
  struct event_base *base;
  struct event *io;          /* on core.fd for core.events; NULL when none */
  struct event *timer;
  evssh_libevent_stopped_cb on_stopped;
  void *ud;
  int depth;                 /* inside one of our callbacks: free later */
};

static inline void evssh_libevent_on_io_(evutil_socket_t fd, short what, void *arg);

static inline void evssh_libevent_drop_io_(evssh_libevent *a) {
  if (a->io) event_free(a->io);   /* deletes it first */
  a->io = NULL;
  evssh_adapter_watching_(&a->core, -1);
}

static inline void evssh_libevent_stop_(evssh_libevent *a, int status) {
  evssh_libevent_drop_io_(a);
  evtimer_del(a->timer);
  a->core.stopped = true;
  if (a->on_stopped) a->on_stopped(a, status, a->ud);
}

/* Make the io event and the timer match what evssh wants now. A change of
   interest makes a new event: libevent cannot change a pending one's. */
static inline void evssh_libevent_rearm_(evssh_libevent *a) {
  int fd, events, timeout;
  if (evssh_adapter_want_(&a->core, &fd, &events, &timeout)) evssh_libevent_drop_io_(a);
  if (fd >= 0 && (!a->io || events != a->core.events)) {
    short what = (short)(EV_PERSIST | ((events & EVSSH_READ) ? EV_READ : 0) | ((events & EVSSH_WRITE) ? EV_WRITE : 0));
    evssh_libevent_drop_io_(a);
    evssh_adapter_watching_(&a->core, fd);
    a->core.events = events;
    if (events) {
      a->io = event_new(a->base, fd, what, evssh_libevent_on_io_, a);
      if (!a->io || event_add(a->io, NULL) != 0) {
        evssh_libevent_stop_(a, EVSSH_ENOMEM);
        return;
      }
    }
  }
  if (timeout >= 0) {
    struct timeval tv = {timeout / 1000, (timeout % 1000) * 1000};
    evtimer_add(a->timer, &tv);
  } else {
    evtimer_del(a->timer);
  }
}

static inline void evssh_libevent_free_(evssh_libevent *a) {
  event_free(a->timer);
  free(a);
}

/* Every callback ends here; a detach made meanwhile (from an evssh
   callback or from on_stopped) takes effect at the end. */
static inline void evssh_libevent_after_(evssh_libevent *a, int rc) {
  a->depth++;
  int what = evssh_adapter_after_(&a->core, rc);
  if (what > 0) evssh_libevent_rearm_(a);
  else if (what < 0) evssh_libevent_stop_(a, what);
  if (--a->depth == 0 && a->core.detached) evssh_libevent_free_(a);
}

static inline void evssh_libevent_call_(evssh_libevent *a, int revents) {
  if (a->core.detached || a->core.stopped) return;
  a->depth++;
  int rc = evssh_adapter_run_(&a->core, revents);
  a->depth--;
  evssh_libevent_after_(a, rc);
}

static inline void evssh_libevent_on_io_(evutil_socket_t fd, short what, void *arg) {
  /* libevent's epoll backend reports a hang-up or error as both events */
  evssh_libevent_call_((evssh_libevent *)arg,
                       ((what & EV_READ) ? EVSSH_READ : 0) | ((what & EV_WRITE) ? EVSSH_WRITE : 0));
}

static inline void evssh_libevent_on_timer_(evutil_socket_t fd, short what, void *arg) {
  evssh_libevent_call_((evssh_libevent *)arg, 0);   /* 0: timers and buffered work */
}

static inline evssh_libevent *evssh_libevent_new_(struct event_base *base, evssh_session *s, evssh_multi *m,
                                                  evssh_libevent_stopped_cb on_stopped, void *ud) {
  if (!base || (!s && !m)) return NULL;
  evssh_libevent *a = (evssh_libevent *)calloc(1, sizeof *a);
  if (!a) return NULL;
  evssh_adapter_init_(&a->core, s, m);
  a->base = base;
  a->on_stopped = on_stopped;
  a->ud = ud;
  a->timer = evtimer_new(base, evssh_libevent_on_timer_, a);
  struct timeval now = {0, 0};
  /* the first look is taken from the loop, so on_stopped never runs in here */
  if (!a->timer || evtimer_add(a->timer, &now) != 0) {
    if (a->timer) event_free(a->timer);
    free(a);
    return NULL;
  }
  return a;
}
/** @endcond */

/** Drive session s from base until it closes or evssh_libevent_detach().
 * Call it after evssh_session_connect_async() (or with a connected session),
 * before or inside event_base_dispatch(); it never blocks and runs no
 * callback itself. From then on everything evssh does for s happens inside
 * libevent callbacks. The session's listen_to fds are not watched (they
 * belong to evssh_session_process()): watch your own fds with libevent.
 * on_stopped may be NULL. Returns NULL when out of memory (or base or s is
 * NULL). */
static inline evssh_libevent *evssh_libevent_attach(struct event_base *base, evssh_session *s,
                                                    evssh_libevent_stopped_cb on_stopped, void *ud) {
  return evssh_libevent_new_(base, s, NULL, on_stopped, ud);
}

/** Drive every member of multi m from base through one event on
 * evssh_multi_fd() (members' listen_to fds included) until
 * evssh_libevent_detach(). Members may be added and removed at any time
 * (then call evssh_libevent_update()); one that fails leaves the multi and
 * reports through its own callbacks, not here. The event keeps
 * event_base_dispatch() going until you detach. Returns NULL when out of
 * memory. */
static inline evssh_libevent *evssh_libevent_attach_multi(struct event_base *base, evssh_multi *m,
                                                          evssh_libevent_stopped_cb on_stopped, void *ud) {
  return evssh_libevent_new_(base, NULL, m, on_stopped, ud);
}

/** Bring the event and the timer up to date with what evssh wants now. Call
 * it after calling into evssh (sending data, opening or closing a channel,
 * adding a session to the multi) from a callback of your own, that is
 * anywhere but inside an evssh callback. May run on_stopped (the session
 * was closed meanwhile). */
static inline void evssh_libevent_update(evssh_libevent *a) {
  if (a && !a->core.detached) evssh_libevent_after_(a, 0);
}

/** Stop watching and free the adapter; a is invalid after the call. Safe
 * from any callback (evssh's, libevent's, on_stopped). The session or multi
 * is left as it is: close and free it yourself, after detaching. NULL is
 * ignored. */
static inline void evssh_libevent_detach(evssh_libevent *a) {
  if (!a || a->core.detached) return;
  a->core.detached = true;
  evssh_libevent_drop_io_(a);
  evtimer_del(a->timer);
  if (a->depth == 0) evssh_libevent_free_(a);
}

#endif /* EVSSH_ADAPTERS_LIBEVENT_H */
