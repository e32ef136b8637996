/* loop.c owns one session's own event loop in Net::SSH's shape, as a driver
 * over the public foreign-loop interface exactly as a libuv program would
 * be: process (ask cond, poll the session fd and the listen_to fds for at
 * most the wait and the session's timeout, run the listen_to callbacks of
 * ready fds, then evssh_session_handle_events, which is the iteration
 * itself; ask cond again), loop, and the blocking calls built on it:
 * evssh_channel_wait and evssh_session_close. Any of them may be called
 * from inside a callback: that is a nested loop. */
#include "evssh.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define STACK_FDS 16

static short to_poll(int ev) {
  return (short)(((ev & EVSSH_READ) ? POLLIN : 0) | ((ev & EVSSH_WRITE) ? POLLOUT : 0));
}

static int from_poll(short re) {
  int ev = 0;
  if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ev |= EVSSH_READ;
  if (re & (POLLOUT | POLLERR)) ev |= EVSSH_WRITE;
  return ev;
}

/* One wait: the session fd (slot 0 when there is one) and the listen_to
   fds; then listeners, then the iteration. */
static int poll_once(evssh_session *s, int wait_ms) {
  struct pollfd stack_fds[STACK_FDS];
  int stack_lfds[STACK_FDS], stack_levs[STACK_FDS];
  size_t nl = evssh_session_listeners(s, NULL, NULL, 0);
  struct pollfd *fds = stack_fds;
  int *lfds = stack_lfds, *levs = stack_levs;
  if (nl + 1 > STACK_FDS) {
    fds = calloc(nl + 1, sizeof *fds);
    lfds = calloc(nl, sizeof *lfds);
    levs = calloc(nl, sizeof *levs);
    if (!fds || !lfds || !levs) {
      free(fds); free(lfds); free(levs);
      return EVSSH_ENOMEM;
    }
  }
  nl = evssh_session_listeners(s, lfds, levs, nl);
  size_t used = 0;
  int session_slot = -1;
  int fd = evssh_session_fd(s);
  if (fd >= 0) {
    fds[used] = (struct pollfd){fd, to_poll(evssh_session_events(s)), 0};
    session_slot = (int)used++;
  }
  for (size_t i = 0; i < nl; i++) fds[used++] = (struct pollfd){lfds[i], to_poll(levs[i]), 0};
  int timeout = wait_ms;
  int t = evssh_session_timeout(s);
  if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
  int rc = EVSSH_OK;
  if (used == 0 && timeout < 0) {
    rc = EVSSH_EINVAL;   /* nothing could ever wake us: not connected */
    goto done;
  }
  int ready = poll(fds, (nfds_t)used, timeout);
  if (ready < 0 && errno != EINTR) {
    rc = EVSSH_ECONNECT;
    goto done;
  }
  int session_revents = 0;
  for (size_t i = 0; ready > 0 && i < used; i++) {
    if (!fds[i].revents) continue;
    if ((int)i == session_slot) session_revents = from_poll(fds[i].revents);
    else evssh_session_handle_listener(s, fds[i].fd, from_poll(fds[i].revents));
  }
  /* always, even with nothing ready: dispatch, on_process, flush and timers
     run here; the same entry a foreign event loop calls */
  rc = evssh_session_handle_events(s, session_revents);
done:
  if (fds != stack_fds) {
    free(fds);
    free(lfds);
    free(levs);
  }
  return rc;
}

int evssh_session_process(evssh_session *s, int wait_ms, evssh_cond_cb cond, void *ud) {
  if (!s) return EVSSH_EINVAL;
  if (evssh_session_closed(s)) return evssh_session_handle_events(s, 0);
  if (cond && !cond(s, ud)) return 0;
  int rc = poll_once(s, wait_ms);
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

static bool channel_open(evssh_session *s, void *ud) { return evssh_channel_active(ud); }

int evssh_channel_wait(evssh_channel *ch) {
  if (!ch) return EVSSH_EINVAL;
  if (!evssh_channel_active(ch)) return EVSSH_OK;
  evssh_session *s = evssh_channel_session(ch);
  /* the handle must outlive the loop below, whoever else lets go of it */
  evssh_channel_hold(ch);
  int rc = evssh_session_loop(s, -1, channel_open, ch);
  bool over = !evssh_channel_active(ch);
  evssh_channel_release(ch);
  if (over && !evssh_session_closed(s)) return EVSSH_OK;
  if (over && rc == 0) return EVSSH_OK;
  return rc < 0 ? rc : EVSSH_ECLOSED;
}

typedef struct close_wait {
  bool done;
  int status;
} close_wait;

static void close_done(evssh_session *s, int status, void *ud) {
  close_wait *w = ud;
  w->done = true;
  w->status = status;
}

static bool closing(evssh_session *s, void *ud) { return !((close_wait *)ud)->done; }

int evssh_session_close(evssh_session *s) {
  if (!s) return EVSSH_EINVAL;
  if (evssh_session_closed(s)) return EVSSH_OK;
  close_wait w = {false, EVSSH_OK};
  int rc = evssh_session_close_async(s, close_done, &w);
  if (rc) return rc;
  /* bounded: the close deadline ends it, whatever the peer does */
  while (!w.done && evssh_session_process(s, -1, closing, &w) > 0) {
  }
  return EVSSH_OK;
}
