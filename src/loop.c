/* loop.c owns one session's event loop in Net::SSH's shape: process (one
 * iteration: dispatch what is buffered, run on_process, poll the session fd
 * and the listen_to fds, do the I/O, run timers, asking cond before and
 * after), loop, busy, the listen_to set, and the ServerAliveInterval /
 * ServerAliveCountMax keepalive timer (keepalive@openssh.com global
 * requests; a peer that leaves too many unanswered ends the session with
 * EVSSH_ETIMEOUT). The session I/O goes through the same session_* hooks a
 * foreign event loop uses, so there is one code path for both. */
#include "connection.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

typedef struct listener {
  int fd;
  int events;
  evssh_io_cb cb;
  void *ud;
  bool removed;      /* dropped during dispatch; compacted afterwards */
} listener;

struct evssh_loop {
  listener *listeners;
  size_t count, cap;
  int dispatching;
  bool in_process;

  int64_t last_received_ms;  /* last packet from the peer */
  int64_t last_probe_ms;     /* last keepalive we sent */
  int probes_unanswered;
};

static struct evssh_loop *loop_get(evssh_session *s) {
  if (!s->loop) {
    s->loop = calloc(1, sizeof *s->loop);
    if (s->loop) s->loop->last_received_ms = session_now_ms();
  }
  return s->loop;
}

void loop_free(evssh_session *s) {
  if (!s->loop) return;
  free(s->loop->listeners);
  free(s->loop);
  s->loop = NULL;
}

static void compact_listeners(struct evssh_loop *l) {
  if (l->dispatching) return;
  size_t j = 0;
  for (size_t i = 0; i < l->count; i++) {
    if (!l->listeners[i].removed) l->listeners[j++] = l->listeners[i];
  }
  l->count = j;
}

/* ---------------------------------------------------------------- listen_to */

int evssh_session_listen_to(evssh_session *s, int fd, int events, evssh_io_cb cb, void *ud) {
  if (!s || fd < 0 || !cb || (events & ~(EVSSH_READ | EVSSH_WRITE))) return EVSSH_EINVAL;
  struct evssh_loop *l = loop_get(s);
  if (!l) return EVSSH_ENOMEM;
  for (size_t i = 0; i < l->count; i++) {
    listener *e = &l->listeners[i];
    if (e->fd == fd && !e->removed) {
      e->events = events;
      e->cb = cb;
      e->ud = ud;
      return EVSSH_OK;
    }
  }
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    listener *v = realloc(l->listeners, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    l->listeners = v;
    l->cap = cap;
  }
  l->listeners[l->count++] = (listener){fd, events, cb, ud, false};
  return EVSSH_OK;
}

int evssh_session_stop_listening_to(evssh_session *s, int fd) {
  if (!s || !s->loop) return EVSSH_EINVAL;
  struct evssh_loop *l = s->loop;
  for (size_t i = 0; i < l->count; i++) {
    if (l->listeners[i].fd == fd && !l->listeners[i].removed) {
      l->listeners[i].removed = true;
      compact_listeners(l);
      return EVSSH_OK;
    }
  }
  return EVSSH_EINVAL;
}

size_t loop_listeners(const evssh_session *s, int *fds, int *events, size_t max) {
  const struct evssh_loop *l = s->loop;
  size_t n = 0;
  if (!l) return 0;
  for (size_t i = 0; i < l->count && n < max; i++) {
    if (l->listeners[i].removed) continue;
    fds[n] = l->listeners[i].fd;
    events[n] = l->listeners[i].events;
    n++;
  }
  return n;
}

void loop_dispatch_listener(evssh_session *s, int fd, int revents) {
  struct evssh_loop *l = s->loop;
  if (!l || !revents) return;
  l->dispatching++;
  conn_enter(s);
  /* the array may grow under the callback: index, do not hold pointers */
  for (size_t i = 0; i < l->count; i++) {
    if (l->listeners[i].fd != fd || l->listeners[i].removed) continue;
    evssh_io_cb cb = l->listeners[i].cb;
    void *ud = l->listeners[i].ud;
    cb(s, fd, revents, ud);
    break;
  }
  conn_leave(s);
  l->dispatching--;
  compact_listeners(l);
}

/* ---------------------------------------------------------------- keepalive */

void loop_note_received(evssh_session *s) {
  struct evssh_loop *l = loop_get(s);
  if (!l) return;
  l->last_received_ms = session_now_ms();
  l->probes_unanswered = 0;
}

static bool keepalive_enabled(const evssh_session *s) {
  return s->opt.alive_interval_s > 0 && s->state == SESSION_READY && conn_usable(s);
}

static int64_t keepalive_due_ms(const struct evssh_loop *l, const evssh_session *s) {
  int64_t base = l->last_received_ms > l->last_probe_ms ? l->last_received_ms : l->last_probe_ms;
  return base + (int64_t)s->opt.alive_interval_s * 1000;
}

int loop_timeout_ms(const evssh_session *s) {
  if (!keepalive_enabled(s)) return -1;
  const struct evssh_loop *l = s->loop;
  if (!l) return s->opt.alive_interval_s * 1000;
  int64_t left = keepalive_due_ms(l, s) - session_now_ms();
  if (left <= 0) return 0;
  return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static void keepalive_reply(evssh_session *s, bool success, evssh_reader *response, void *ud) {
  /* any answer, even REQUEST_FAILURE, proves the peer alive; the packet
     itself already reset the count in loop_note_received */
}

int loop_timers(evssh_session *s) {
  if (!keepalive_enabled(s)) return EVSSH_OK;
  struct evssh_loop *l = loop_get(s);
  if (!l) return EVSSH_ENOMEM;
  int64_t now = session_now_ms();
  if (now < keepalive_due_ms(l, s)) return EVSSH_OK;
  int max = s->opt.alive_count_max > 0 ? s->opt.alive_count_max : 3;
  if (l->probes_unanswered >= max) {
    return session_fail(s, EVSSH_ETIMEOUT, "no answer from the server to %d keepalives (%d s apart)",
                        l->probes_unanswered, s->opt.alive_interval_s);
  }
  l->probes_unanswered++;
  l->last_probe_ms = now;
  session_log(s, EVSSH_LOG_DEBUG, "keepalive %d of %d", l->probes_unanswered, max);
  return evssh_session_send_global_request(s, "keepalive@openssh.com", NULL, 0, keepalive_reply, NULL);
}

/* -------------------------------------------------------------- the loop */

static int session_result(const evssh_session *s) {
  if (s->error_code < 0) return s->error_code;
  return EVSSH_ECLOSED;
}

static int poll_once(evssh_session *s, struct evssh_loop *l, int wait_ms) {
  size_t n = 1 + l->count;
  struct pollfd stack_fds[16];
  struct pollfd *fds = n <= 16 ? stack_fds : calloc(n, sizeof *fds);
  if (!fds) return EVSSH_ENOMEM;
  size_t used = 0;
  int session_slot = -1;
  int fd = session_fd(s);
  if (fd >= 0) {
    int ev = session_events(s);
    fds[used].fd = fd;
    fds[used].events = (short)(((ev & EVSSH_READ) ? POLLIN : 0) | ((ev & EVSSH_WRITE) ? POLLOUT : 0));
    fds[used].revents = 0;
    session_slot = (int)used++;
  }
  for (size_t i = 0; i < l->count; i++) {
    const listener *e = &l->listeners[i];
    if (e->removed) continue;
    fds[used].fd = e->fd;
    fds[used].events = (short)(((e->events & EVSSH_READ) ? POLLIN : 0) | ((e->events & EVSSH_WRITE) ? POLLOUT : 0));
    fds[used].revents = 0;
    used++;
  }
  int timeout = wait_ms;
  int t = session_timeout_ms(s);
  if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
  t = loop_timeout_ms(s);
  if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;

  int ready = poll(fds, (nfds_t)used, timeout);
  if (ready < 0 && errno != EINTR) {
    int rc = session_fail(s, EVSSH_ECONNECT, "poll: %s", strerror(errno));
    if (fds != stack_fds) free(fds);
    return rc;
  }
  int session_revents = 0;
  if (ready > 0 && session_slot >= 0) {
    short re = fds[session_slot].revents;
    if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) session_revents |= EVSSH_READ;
    if (re & (POLLOUT | POLLERR)) session_revents |= EVSSH_WRITE;
  }
  /* always, even with nothing ready: timers (keepalive, rekey, deadlines)
     run here; the same entry a foreign event loop calls */
  int rc = evssh_session_handle_events(s, session_revents);
  if (rc >= 0 && ready > 0) {
    for (size_t i = 0; i < used; i++) {
      if ((int)i == session_slot || !fds[i].revents) continue;
      int ev = 0;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ev |= EVSSH_READ;
      if (fds[i].revents & (POLLOUT | POLLERR)) ev |= EVSSH_WRITE;
      loop_dispatch_listener(s, fds[i].fd, ev);
    }
  }
  if (fds != stack_fds) free(fds);
  return rc < 0 ? rc : EVSSH_OK;
}

int evssh_session_process(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud) {
  if (!s) return EVSSH_EINVAL;
  struct evssh_loop *l = loop_get(s);
  if (!l) return EVSSH_ENOMEM;
  /* called from inside a callback (ours, or one the transport runs while
     dispatching, such as on_ready): a nested loop would re-enter the
     dispatch below us, so refuse instead */
  if (l->in_process || conn_in_callback(s) || (s->transport && transport_dispatching(s->transport)))
    return EVSSH_EBUSY;
  if (s->state == SESSION_NEW) return EVSSH_EINVAL;
  if (s->state == SESSION_CLOSED) {
    conn_abort(s, session_result(s));
    return session_result(s);
  }
  if (cond && !cond(s, ud)) return 0;

  l->in_process = true;
  int rc = session_run_pending(s);
  if (rc >= 0 && s->state != SESSION_CLOSED) rc = poll_once(s, l, wait_ms);
  if (rc < 0 || s->state == SESSION_CLOSED) {
    /* whoever ended the session, every channel hears of it (idempotent) */
    if (rc >= 0) rc = session_result(s);
    conn_abort(s, rc);
  }
  l->in_process = false;

  if (rc < 0) return rc;
  if (cond && !cond(s, ud)) return 0;
  return 1;
}

static bool while_busy(evssh_session *s, void *ud) { return evssh_session_busy(s, false); }

int evssh_session_loop(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud) {
  if (!s) return EVSSH_EINVAL;
  if (!cond) cond = while_busy;
  int rc;
  while ((rc = evssh_session_process(s, wait_ms, cond, ud)) > 0) {
  }
  return rc;
}

bool evssh_session_busy(const evssh_session *s, bool include_invisible) {
  return s && conn_busy(s, include_invisible);
}

bool loop_in_process(const evssh_session *s) { return s->loop && s->loop->in_process; }

static bool until_done(evssh_session *s, void *ud) { return !*(const bool *)ud; }

int loop_until(evssh_session *s, const bool *done) {
  if (s->loop && s->loop->in_process) return EVSSH_EBUSY;
  if (conn_in_callback(s) || (s->transport && transport_dispatching(s->transport))) return EVSSH_EBUSY;
  int rc = 1;
  while (!*done && rc > 0) rc = evssh_session_process(s, -1, until_done, (void *)done);
  return rc < 0 ? rc : EVSSH_OK;
}
