/* multi.c owns evssh_multi: many sessions driven by one poll() in one
 * thread, each through the same session_fd / session_events /
 * session_timeout_ms / handle_events seam a foreign event loop uses, so a
 * session connecting, exchanging keys, authenticating or running channels
 * inside a multi behaves exactly as it does alone. A session that fails
 * (its on_ready or its channels have been told by session.c) simply leaves
 * the set; nothing it does touches the others.
 *
 * Cost per iteration. The pollfd array is kept from one iteration to the
 * next: slot i belongs to member i and is rewritten only when that session's
 * fd or interest changed; the listen_to region is rebuilt only when some
 * session's listener set changed. The expensive work (reads, decryption,
 * callbacks, channel flushing, timers, the clock) is done only for the
 * sessions poll() reported ready, whose cached deadline has come, that have
 * work queued, or that have a channel with on_process. Each member's next
 * deadline is computed when it is handled and cached, so an idle session
 * costs neither a clock read nor a call into its layers. What remains linear
 * in idle sessions is one pass of a few loads each (has its fd or interest
 * changed, has the application queued data on it since) and the kernel's
 * own poll() scan; that pass is what lets an application call into any
 * session between iterations without telling the multi. */
#include "connection.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define NO_DEADLINE INT64_MAX
#define MAX_LISTENERS_PER_SESSION 256

typedef struct member {
  evssh_session *s;
  int64_t due_ms;          /* cached absolute deadline; 0: handle at once */
  int revents;             /* from the last poll */
  unsigned stamp;          /* queued for handling in iteration `stamp` */
  bool removed;
  int *lfds, *levents;     /* listener set as last put into the poll array */
  size_t nlisteners, lcap;
} member;

struct evssh_multi {
  member *members;
  size_t count, cap;
  struct pollfd *pfds;     /* [0, count): sessions; [count, count + nl): listeners */
  size_t pfd_cap;
  size_t *listener_owner;  /* listener slot → member index */
  size_t nl, lowner_cap;
  bool listeners_dirty;
  size_t *work;            /* member indices to handle this iteration */
  size_t nwork, work_cap;
  unsigned stamp;
  int depth;               /* inside process */
  bool need_compact;
};

static short poll_events(int ev) {
  return (short)(((ev & EVSSH_READ) ? POLLIN : 0) | ((ev & EVSSH_WRITE) ? POLLOUT : 0));
}

static int from_revents(short re) {
  int ev = 0;
  if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ev |= EVSSH_READ;
  if (re & (POLLOUT | POLLERR)) ev |= EVSSH_WRITE;
  return ev;
}

evssh_multi *evssh_multi_new(void) { return calloc(1, sizeof(evssh_multi)); }

static void member_release(member *mb) {
  free(mb->lfds);
  free(mb->levents);
  memset(mb, 0, sizeof *mb);
}

void evssh_multi_free(evssh_multi *m) {
  if (!m) return;
  for (size_t i = 0; i < m->count; i++) member_release(&m->members[i]);
  free(m->members);
  free(m->pfds);
  free(m->listener_owner);
  free(m->work);
  free(m);
}

static int grow_pfds(evssh_multi *m, size_t need) {
  if (need <= m->pfd_cap) return EVSSH_OK;
  size_t cap = m->pfd_cap ? m->pfd_cap : 16;
  while (cap < need) cap *= 2;
  struct pollfd *v = realloc(m->pfds, cap * sizeof *v);
  if (!v) return EVSSH_ENOMEM;
  m->pfds = v;
  m->pfd_cap = cap;
  return EVSSH_OK;
}

int evssh_multi_add(evssh_multi *m, evssh_session *s) {
  if (!m || !s) return EVSSH_EINVAL;
  for (size_t i = 0; i < m->count; i++)
    if (m->members[i].s == s && !m->members[i].removed) return EVSSH_EINVAL;
  if (s->state == SESSION_CLOSED) return s->error_code ? s->error_code : EVSSH_ECLOSED;
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    member *v = realloc(m->members, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    m->members = v;
    m->cap = cap;
  }
  if (grow_pfds(m, m->count + 1 + m->nl) != EVSSH_OK) return EVSSH_ENOMEM;
  member *mb = &m->members[m->count];
  memset(mb, 0, sizeof *mb);
  mb->s = s;
  mb->due_ms = 0;          /* first turn at once: it may have work already */
  m->count++;
  m->listeners_dirty = true;   /* the listener region starts after the session slots */
  return EVSSH_OK;
}

/* Drop removed members, keeping order; listener slots are renumbered. */
static void compact(evssh_multi *m) {
  if (!m->need_compact || m->depth) return;
  size_t j = 0;
  for (size_t i = 0; i < m->count; i++) {
    if (m->members[i].removed) {
      member_release(&m->members[i]);
      continue;
    }
    if (i != j) m->members[j] = m->members[i];
    j++;
  }
  m->count = j;
  m->need_compact = false;
  m->listeners_dirty = true;
}

static void drop_member(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  if (mb->removed) return;
  mb->removed = true;
  if (mb->nlisteners) m->listeners_dirty = true;
  mb->nlisteners = 0;
  m->need_compact = true;
}

int evssh_multi_remove(evssh_multi *m, evssh_session *s) {
  if (!m || !s) return EVSSH_EINVAL;
  for (size_t i = 0; i < m->count; i++) {
    if (m->members[i].s == s && !m->members[i].removed) {
      drop_member(m, i);
      compact(m);
      return EVSSH_OK;
    }
  }
  return EVSSH_EINVAL;
}

/* Compare the session's listen_to set with what the poll array holds. */
static int refresh_listeners(evssh_multi *m, member *mb) {
  int fds[MAX_LISTENERS_PER_SESSION], evs[MAX_LISTENERS_PER_SESSION];
  size_t n = mb->s->loop ? loop_listeners(mb->s, fds, evs, MAX_LISTENERS_PER_SESSION) : 0;
  if (n == mb->nlisteners && (n == 0 || (memcmp(fds, mb->lfds, n * sizeof *fds) == 0 &&
                                         memcmp(evs, mb->levents, n * sizeof *evs) == 0)))
    return EVSSH_OK;
  if (n > mb->lcap) {
    int *a = realloc(mb->lfds, n * sizeof *a);
    if (!a) return EVSSH_ENOMEM;
    mb->lfds = a;
    int *b = realloc(mb->levents, n * sizeof *b);
    if (!b) return EVSSH_ENOMEM;
    mb->levents = b;
    mb->lcap = n;
  }
  if (n) {
    memcpy(mb->lfds, fds, n * sizeof *fds);
    memcpy(mb->levents, evs, n * sizeof *evs);
  }
  mb->nlisteners = n;
  m->listeners_dirty = true;
  return EVSSH_OK;
}

static int rebuild_listener_region(evssh_multi *m) {
  size_t total = 0;
  for (size_t i = 0; i < m->count; i++)
    if (!m->members[i].removed) total += m->members[i].nlisteners;
  if (grow_pfds(m, m->count + total) != EVSSH_OK) return EVSSH_ENOMEM;
  if (total > m->lowner_cap) {
    size_t *v = realloc(m->listener_owner, total * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    m->listener_owner = v;
    m->lowner_cap = total;
  }
  size_t k = 0;
  for (size_t i = 0; i < m->count; i++) {
    const member *mb = &m->members[i];
    if (mb->removed) continue;
    for (size_t j = 0; j < mb->nlisteners; j++, k++) {
      struct pollfd *p = &m->pfds[m->count + k];
      p->fd = mb->lfds[j];
      p->events = poll_events(mb->levents[j]);
      p->revents = 0;
      m->listener_owner[k] = i;
    }
  }
  m->nl = total;
  m->listeners_dirty = false;
  return EVSSH_OK;
}

static int queue_work(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  if (mb->stamp == m->stamp) return EVSSH_OK;
  if (m->nwork == m->work_cap) {
    size_t cap = m->work_cap ? m->work_cap * 2 : 32;
    size_t *v = realloc(m->work, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    m->work = v;
    m->work_cap = cap;
  }
  mb->stamp = m->stamp;
  m->work[m->nwork++] = i;
  return EVSSH_OK;
}

/* A channel whose on_process must run every iteration, as Net::SSH does. */
static bool has_on_process(const evssh_session *s) {
  const struct evssh_conn *c = s->conn;
  if (!c || s->state != SESSION_READY) return false;
  for (size_t i = 0; i < c->table_size; i++) {
    const evssh_channel *ch = c->table[i];
    if (ch && ch->state == CHAN_OPEN && ch->on_process) return true;
  }
  return false;
}

static void handle_member(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  evssh_session *s = mb->s;
  int rev = mb->revents;
  mb->revents = 0;
  if (mb->removed) return;
  if (s->state != SESSION_CLOSED) evssh_session_handle_events(s, rev);
  /* a callback may have added members: the array may have moved */
  mb = &m->members[i];
  if (mb->removed) return;
  if (s->state == SESSION_CLOSED) {
    drop_member(m, i);
    return;
  }
  int t = session_timeout_ms(s);
  mb->due_ms = t < 0 ? NO_DEADLINE : session_now_ms() + t;
}

static bool multi_default_cond(evssh_multi *m, void *ud) {
  for (size_t i = 0; i < m->count; i++) {
    const member *mb = &m->members[i];
    if (mb->removed) continue;
    const evssh_session *s = mb->s;
    if (s->state == SESSION_CONNECTING || s->state == SESSION_KEX || s->state == SESSION_AUTH) return true;
    if (s->state != SESSION_CLOSED && evssh_session_busy(s, false)) return true;
  }
  return false;
}

int evssh_multi_process(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud) {
  if (!m) return EVSSH_EINVAL;
  if (m->depth) return EVSSH_EBUSY;
  if (cond && !cond(m, ud)) return 0;
  m->depth++;
  m->stamp++;
  m->nwork = 0;
  int rc = EVSSH_OK;
  int64_t now = session_now_ms();
  int64_t next_due = NO_DEADLINE;

  /* the one linear pass: cheap checks only, see the file comment */
  for (size_t i = 0; i < m->count && rc == EVSSH_OK; i++) {
    member *mb = &m->members[i];
    struct pollfd *p = &m->pfds[i];
    p->revents = 0;
    if (mb->removed || mb->s->state == SESSION_CLOSED) {
      drop_member(m, i);
      p->fd = -1;
      continue;
    }
    evssh_session *s = mb->s;
    int fd = session_fd(s);
    short ev = fd >= 0 ? poll_events(session_events(s)) : 0;
    if (p->fd != fd || p->events != ev) {
      p->fd = fd;
      p->events = ev;
    }
    if (s->loop || mb->nlisteners) rc = refresh_listeners(m, mb);
    if (s->state == SESSION_READY && conn_has_work(s)) mb->due_ms = 0;
    if (mb->due_ms <= now) {
      rc = rc ? rc : queue_work(m, i);
    } else {
      if (mb->due_ms < next_due) next_due = mb->due_ms;
      if (has_on_process(s)) rc = rc ? rc : queue_work(m, i);
    }
  }
  if (rc == EVSSH_OK && m->listeners_dirty) rc = rebuild_listener_region(m);
  if (rc != EVSSH_OK) {
    m->depth--;
    return rc;
  }

  int timeout = wait_ms;
  bool due_now = false;
  for (size_t k = 0; k < m->nwork; k++)
    if (m->members[m->work[k]].due_ms <= now) due_now = true;
  if (due_now) {
    timeout = 0;
  } else if (next_due != NO_DEADLINE) {
    int64_t left = next_due - now;
    if (left < 0) left = 0;
    if (timeout < 0 || left < timeout) timeout = left > INT_MAX ? INT_MAX : (int)left;
  }

  size_t nfds = m->count + m->nl;
  int ready = nfds ? poll(m->pfds, (nfds_t)nfds, timeout) : 0;
  if (!nfds && timeout > 0) poll(NULL, 0, timeout);
  if (ready < 0) {
    m->depth--;
    return errno == EINTR ? 1 : EVSSH_ECONNECT;
  }

  /* session slots that poll reported join the work list */
  size_t listener_hits = 0;
  int seen = 0;
  for (size_t i = 0; i < nfds && seen < ready; i++) {
    if (!m->pfds[i].revents) continue;
    seen++;
    if (i < m->count) {
      m->members[i].revents = from_revents(m->pfds[i].revents);
      if (queue_work(m, i) != EVSSH_OK) rc = EVSSH_ENOMEM;
    } else {
      listener_hits++;
    }
  }
  /* session I/O first, then the listen_to callbacks of live sessions; the
     count is fixed now: members added by callbacks wait for the next turn */
  size_t count = m->count;
  for (size_t k = 0; k < m->nwork; k++)
    if (m->work[k] < count) handle_member(m, m->work[k]);
  if (listener_hits) {
    for (size_t k = 0; k < m->nl; k++) {
      struct pollfd *p = &m->pfds[count + k];
      if (!p->revents) continue;
      size_t owner = m->listener_owner[k];
      member *mb = &m->members[owner];
      short re = p->revents;
      p->revents = 0;
      if (mb->removed || mb->s->state == SESSION_CLOSED) continue;
      /* what the callback queues shows in the next pass (interest or
         queued channel data) */
      loop_dispatch_listener(mb->s, p->fd, from_revents(re));
    }
  }
  m->depth--;
  compact(m);
  if (rc < 0) return rc;
  if (cond && !cond(m, ud)) return 0;
  return 1;
}

int evssh_multi_loop(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud) {
  if (!m) return EVSSH_EINVAL;
  if (!cond) cond = multi_default_cond;
  int rc;
  while ((rc = evssh_multi_process(m, wait_ms, cond, ud)) > 0) {
  }
  return rc;
}
