/** @file evssh/adapters/common.h
 * @brief What every event-loop adapter shares: reading what evssh wants
 * (fd, interest, next deadline), noticing that the fd changed, calling
 * back into evssh, and deciding when to stop.
 *
 * Included by evssh/adapters/libuv.h, libevent.h and libev.h; not meant to
 * be included on its own, but it is the place to start when writing an
 * adapter for another loop (docs/foreign-loop.md walks through it). Only
 * the public foreign-loop calls of evssh.h are used.
 */
#ifndef EVSSH_ADAPTERS_COMMON_H
#define EVSSH_ADAPTERS_COMMON_H

#include <evssh.h>

#include <stdbool.h>
#include <sys/stat.h>

/** @cond EVSSH_ADAPTER_INTERNALS */
typedef struct evssh_adapter_core_ {
  evssh_session *session;  /* exactly one of session and multi is set */
  evssh_multi *multi;
  int fd;                  /* the fd the loop watches now, -1 none */
  int events;              /* EVSSH_READ|EVSSH_WRITE it watches it for */
  dev_t dev;               /* with ino: tells a reused fd number from ours */
  ino_t ino;
  bool stopped;            /* stopped on its own: session over or multi failed */
  bool detached;           /* the program called detach */
} evssh_adapter_core_;

static inline void evssh_adapter_init_(evssh_adapter_core_ *c, evssh_session *s, evssh_multi *m) {
  c->session = s;
  c->multi = m;
  c->fd = -1;
  c->events = 0;
  c->dev = 0;
  c->ino = 0;
  c->stopped = c->detached = false;
}

/* What evssh wants now: its fd, the interest, the ms until it must be
   called again (-1 none, 0 at once: work is buffered). For a multi this
   also brings its epoll set up to date, so it must be called right before
   the loop waits. Returns true when the watched fd is no longer the one
   to watch (another number, or the same number on another file: while
   connecting a session moves from the resolver's wake-up fd to one socket
   per address, and a closed number is reused at once). */
static inline bool evssh_adapter_want_(evssh_adapter_core_ *c, int *fd, int *events, int *timeout_ms) {
  if (c->session) {
    *fd = evssh_session_fd(c->session);
    *events = evssh_session_events(c->session);
    *timeout_ms = evssh_session_timeout(c->session);
  } else {
    *timeout_ms = evssh_multi_timeout(c->multi);
    *fd = evssh_multi_fd(c->multi);
    *events = EVSSH_READ;  /* an epoll fd is readable when a member is ready */
  }
  if (c->fd < 0) return false;
  struct stat st;
  return *fd != c->fd || fstat(*fd, &st) != 0 || st.st_dev != c->dev || st.st_ino != c->ino;
}

/* Record that the loop now watches fd (-1: nothing). */
static inline void evssh_adapter_watching_(evssh_adapter_core_ *c, int fd) {
  struct stat st;
  bool known = fd >= 0 && fstat(fd, &st) == 0;
  c->fd = fd;
  c->events = 0;
  c->dev = known ? st.st_dev : 0;
  c->ino = known ? st.st_ino : 0;
}

/* One call into evssh for a ready fd (revents) or a due timer (0). */
static inline int evssh_adapter_run_(evssh_adapter_core_ *c, int revents) {
  if (c->session) return evssh_session_handle_events(c->session, revents);
  return evssh_multi_process(c->multi, 0, NULL, NULL);
}

/* After a call into evssh (rc its result; 0 from the loop's own hooks):
   1 to re-arm, 0 to do nothing (stopped or detached), or the status to
   stop with, < 0. */
static inline int evssh_adapter_after_(const evssh_adapter_core_ *c, int rc) {
  if (c->detached || c->stopped) return 0;
  if (c->session && evssh_session_closed(c->session)) return rc < 0 ? rc : EVSSH_ECLOSED;
  if (c->multi && rc < 0) return rc;
  return 1;
}
/** @endcond */

#endif /* EVSSH_ADAPTERS_COMMON_H */
