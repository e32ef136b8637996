/* multi.c owns evssh_multi: many sessions driven by one poll in one thread,
 * each through the public foreign-loop interface (evssh_session_fd, _events,
 * _timeout, _listeners, _handle_listener, _handle_events) exactly as a
 * foreign event loop would drive it, so a session connecting,
 * exchanging keys, authenticating or running channels inside a multi
 * behaves exactly as it does alone. A session that fails (its on_ready or
 * its channels have been told by session.c) simply leaves the set; nothing
 * it does touches the others.
 *
 * Cost per iteration. The poll is a level-triggered epoll set that holds
 * every session fd and every listen_to fd; a registration changes only when
 * that session's fd or interest changed, so the kernel's share is
 * proportional to the ready fds, not to the sessions. The expensive work
 * (reads, decryption, callbacks, channel flushing, timers) is done only for
 * sessions that epoll reported, whose deadline has come, that have work
 * without I/O, or that have a channel with on_process. Nor does the multi
 * ask idle sessions anything: a session tells it (session.c's touch hook)
 * whenever something its view depends on may have changed — a packet or
 * channel data queued, a channel's flags or callbacks changed, a listen_to
 * entry, connect, close, the end — whether the program did it between
 * iterations or another session's callback did, and only those sessions
 * and the ones handled are asked again (their fd, interest, timeout,
 * listen_to set, on_process). What stays linear in idle sessions is one
 * pass over this file's own array (deadlines and flags it keeps), no call
 * into a session. A session freed while in the multi leaves it first (the
 * detach hook). */
#include "evssh.h"

#include "base.h"
#include "session.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define NO_DEADLINE INT64_MAX
#define MAX_LISTENERS_PER_SESSION 256
#define EVENTS_PER_WAIT 256

typedef enum { FD_NONE = 0, FD_SESSION, FD_LISTENER } fd_kind;

/* who an fd registered in the epoll set belongs to */
typedef struct fd_owner {
  unsigned kind;
  size_t member;
} fd_owner;

typedef struct member {
  evssh_session *s;
  int revents;             /* from the last wait */
  unsigned stamp;          /* queued for handling in iteration `stamp` */
  bool removed;
  int reg_fd;              /* session fd as registered, -1 none */
  uint32_t reg_events;
  int *lfds, *levents;     /* listen_to set as registered */
  size_t nlisteners, lcap;
  bool relisten;           /* its callbacks ran: a number may now be another socket */
  bool dirty;              /* in the dirty list: ask the session again */
  bool force;              /* re-register its fd even if it looks the same */
  bool on_process;         /* as last asked: a channel has on_process */
  bool busy;               /* as last asked: connecting or a channel is open */
} member;

typedef struct listener_hit {
  size_t member;
  int fd;
  int revents;
} listener_hit;

struct evssh_multi {
  member *members;
  size_t count, cap;
  int64_t *due;            /* per member, its absolute deadline as last asked
                              (0: at once; NO_DEADLINE: none or removed), kept
                              apart so the per-iteration pass reads only this */
  size_t n_on_process;     /* members whose on_process flag is set */
  int epfd;
  fd_owner *owners;        /* indexed by fd */
  size_t owners_cap;
  size_t *work;            /* member indices to handle this iteration */
  size_t nwork, work_cap;
  listener_hit *hits;
  size_t nhits, hits_cap;
  size_t *dirty;           /* members touched since they were last asked */
  size_t ndirty, dirty_cap;
  bool refresh_all;        /* the dirty list could not grow: ask everyone once */
  unsigned stamp;
  int depth;               /* inside process */
  bool need_compact;
  size_t nremoved;         /* removed members still in the array */
  evssh_cache *cache;      /* given to members that have none */
};

static uint32_t to_epoll(int ev) {
  return ((ev & EVSSH_READ) ? EPOLLIN : 0u) | ((ev & EVSSH_WRITE) ? EPOLLOUT : 0u);
}

static int from_epoll(uint32_t re) {
  int ev = 0;
  if (re & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) ev |= EVSSH_READ;
  if (re & (EPOLLOUT | EPOLLERR)) ev |= EVSSH_WRITE;
  return ev;
}

evssh_multi *evssh_multi_new(void) {
  evssh_multi *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (m->epfd < 0 || !(m->cache = evssh_cache_new())) {
    if (m->epfd >= 0) close(m->epfd);
    free(m);
    return NULL;
  }
  return m;
}

static void member_release(member *mb) {
  free(mb->lfds);
  free(mb->levents);
  memset(mb, 0, sizeof *mb);
  mb->reg_fd = -1;
}

void evssh_multi_free(evssh_multi *m) {
  if (!m || m->depth) return;   /* refused from inside its own process */
  for (size_t i = 0; i < m->count; i++) {
    if (!m->members[i].removed) session_set_multi(m->members[i].s, NULL, NULL, 0);
    member_release(&m->members[i]);
  }
  free(m->members);
  free(m->due);
  free(m->owners);
  free(m->work);
  free(m->hits);
  free(m->dirty);
  close(m->epfd);
  evssh_cache_free(m->cache);   /* members still holding it keep it alive */
  free(m);
}

evssh_cache *evssh_multi_cache(evssh_multi *m) { return m ? m->cache : NULL; }

/* ---------------------------------------------------------- registrations */

static fd_owner *owner_slot(evssh_multi *m, int fd) {
  if (fd < 0) return NULL;
  if ((size_t)fd >= m->owners_cap) {
    size_t cap = m->owners_cap ? m->owners_cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    fd_owner *v = realloc(m->owners, cap * sizeof *v);
    if (!v) return NULL;
    memset(v + m->owners_cap, 0, (cap - m->owners_cap) * sizeof *v);
    m->owners = v;
    m->owners_cap = cap;
  }
  return &m->owners[fd];
}

static bool owned_by(const evssh_multi *m, int fd, unsigned kind, size_t index) {
  return fd >= 0 && (size_t)fd < m->owners_cap && m->owners[fd].kind == kind && m->owners[fd].member == index;
}

/* Add or change a registration. An fd we do not hold registered is
   ADDed (EEXIST: someone's registration of that number survives, so MOD);
   one we hold is MODified (ENOENT: it was closed and its number reused
   since, which dropped the old registration, so ADD). */
static int ep_set(evssh_multi *m, int fd, uint32_t events, unsigned kind, size_t index) {
  fd_owner *o = owner_slot(m, fd);
  if (!o) return EVSSH_ENOMEM;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.fd = fd;
  int rc;
  if (o->kind == FD_NONE) {
    rc = epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && errno == EEXIST) rc = epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev);
  } else {
    rc = epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc < 0 && errno == ENOENT) rc = epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev);
  }
  if (rc < 0) return EVSSH_EINVAL;   /* closed fd: the session will fail on it itself */
  o->kind = kind;
  o->member = index;
  return EVSSH_OK;
}

static void ep_del(evssh_multi *m, int fd, unsigned kind, size_t index) {
  if (!owned_by(m, fd, kind, index)) return;   /* the number went to someone else */
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, &ev);
  m->owners[fd].kind = FD_NONE;
}

/* Make the session's registration match its fd and interest. force: the
   fd may have been closed and reopened under the same number (connect
   tries one socket per address), so re-register even if nothing differs.
   False when the fd could not be registered (asked again later). */
static bool sync_session(evssh_multi *m, size_t i, bool force) {
  member *mb = &m->members[i];
  int fd = evssh_session_fd(mb->s);
  uint32_t ev = fd >= 0 ? to_epoll(evssh_session_events(mb->s)) : 0;
  if (!force && fd == mb->reg_fd && ev == mb->reg_events) return true;
  if (mb->reg_fd >= 0 && mb->reg_fd != fd) ep_del(m, mb->reg_fd, FD_SESSION, i);
  mb->reg_fd = -1;
  mb->reg_events = 0;
  if (fd < 0) return true;
  if (ep_set(m, fd, ev, FD_SESSION, i) != EVSSH_OK) return false;
  mb->reg_fd = fd;
  mb->reg_events = ev;
  return true;
}

static bool listener_in(const int *fds, size_t n, int fd) {
  for (size_t k = 0; k < n; k++)
    if (fds[k] == fd) return true;
  return false;
}

/* Make the registered listen_to set match the session's. *complete is
   false when an fd had to be left out (another member's entry for that
   number is still registered, or epoll refused it): asked again later. */
static int sync_listeners(evssh_multi *m, size_t i, bool *complete) {
  *complete = true;
  member *mb = &m->members[i];
  int fds[MAX_LISTENERS_PER_SESSION], evs[MAX_LISTENERS_PER_SESSION];
  size_t n = evssh_session_listeners(mb->s, fds, evs, MAX_LISTENERS_PER_SESSION);
  if (n > MAX_LISTENERS_PER_SESSION) n = MAX_LISTENERS_PER_SESSION;
  /* A callback may have closed a listened fd and opened another under the
     same number (a forward's connection ends as the next is accepted):
     epoll dropped the old one, and the set looks the same. After its
     callbacks ran, a member's fds are registered again (MOD, or ADD for a
     new socket). */
  bool force = mb->relisten;
  mb->relisten = false;
  if (!force && n == mb->nlisteners && (n == 0 || (memcmp(fds, mb->lfds, n * sizeof *fds) == 0 &&
                                                   memcmp(evs, mb->levents, n * sizeof *evs) == 0)))
    return EVSSH_OK;
  for (size_t k = 0; k < mb->nlisteners; k++)
    if (!listener_in(fds, n, mb->lfds[k])) ep_del(m, mb->lfds[k], FD_LISTENER, i);
  if (n > mb->lcap) {
    int *a = realloc(mb->lfds, n * sizeof *a);
    if (!a) return EVSSH_ENOMEM;
    mb->lfds = a;
    int *b = realloc(mb->levents, n * sizeof *b);
    if (!b) return EVSSH_ENOMEM;
    mb->levents = b;
    mb->lcap = n;
  }
  size_t kept = 0;
  for (size_t k = 0; k < n; k++) {
    /* an fd another member already watches stays theirs */
    const fd_owner *o = (size_t)fds[k] < m->owners_cap ? &m->owners[fds[k]] : NULL;
    if (o && o->kind != FD_NONE && !(o->kind == FD_LISTENER && o->member == i)) continue;
    if (ep_set(m, fds[k], to_epoll(evs[k]), FD_LISTENER, i) != EVSSH_OK) continue;
    mb->lfds[kept] = fds[k];
    mb->levents[kept] = evs[k];
    kept++;
  }
  /* when something was skipped the sets differ and the next ask tries again */
  mb->nlisteners = kept;
  *complete = kept == n;
  return EVSSH_OK;
}

static void unregister_member(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  if (mb->reg_fd >= 0) ep_del(m, mb->reg_fd, FD_SESSION, i);
  mb->reg_fd = -1;
  for (size_t k = 0; k < mb->nlisteners; k++) ep_del(m, mb->lfds[k], FD_LISTENER, i);
  mb->nlisteners = 0;
}

/* ---------------------------------------------------------------- members */

static void set_on_process(evssh_multi *m, member *mb, bool on) {
  if (mb->on_process == on) return;
  mb->on_process = on;
  if (on) m->n_on_process++;
  else m->n_on_process--;
}

/* The member will be asked again at the next sweep. */
static void mark_dirty(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  if (mb->dirty || mb->removed) return;
  if (m->ndirty == m->dirty_cap) {
    size_t cap = m->dirty_cap ? m->dirty_cap * 2 : 32;
    size_t *v = realloc(m->dirty, cap * sizeof *v);
    if (!v) {
      m->refresh_all = true;   /* no memory for the list: the next sweep asks everyone */
      return;
    }
    m->dirty = v;
    m->dirty_cap = cap;
  }
  mb->dirty = true;
  m->dirty[m->ndirty++] = i;
}

static void touch_member(void *multi, size_t slot) {
  evssh_multi *m = multi;
  if (slot < m->count) mark_dirty(m, slot);
}

static void detach_member(void *multi, evssh_session *s);
static const session_multi_hooks member_hooks = {detach_member, touch_member};

int evssh_multi_add(evssh_multi *m, evssh_session *s) {
  if (!m || !s) return EVSSH_EINVAL;
  for (size_t i = 0; i < m->count; i++)
    if (m->members[i].s == s && !m->members[i].removed) return EVSSH_EINVAL;
  if (evssh_session_closed(s)) return EVSSH_ECLOSED;
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    int64_t *d = realloc(m->due, cap * sizeof *d);
    if (!d) return EVSSH_ENOMEM;
    m->due = d;
    member *v = realloc(m->members, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    m->members = v;
    m->cap = cap;
  }
  if (session_set_multi(s, m, &member_hooks, m->count) != EVSSH_OK) return EVSSH_EBUSY;   /* in another multi */
  member *mb = &m->members[m->count];
  memset(mb, 0, sizeof *mb);
  mb->s = s;
  mb->reg_fd = -1;
  m->due[m->count] = 0;    /* first turn at once: it may have work already */
  mb->busy = true;
  m->count++;
  mark_dirty(m, m->count - 1);
  /* the members share their key and known_hosts parsing */
  if (!session_cache(s)) evssh_session_set_cache(s, m->cache);
  return EVSSH_OK;
}

/* Drop removed members, keeping order; moved members' fds are re-owned. */
static void compact(evssh_multi *m) {
  if (!m->need_compact || m->depth) return;
  /* Removed members cost nothing where they lie (no deadline, no flags,
     no fds); squeezing them out moves every member after them, so it
     waits until they are a quarter of the array: amortised O(1) a
     removal, where compacting at each one made closing N sessions O(N^2). */
  if (m->nremoved * 4 < m->count) return;
  size_t j = 0;
  for (size_t i = 0; i < m->count; i++) {
    member *mb = &m->members[i];
    if (mb->removed) {
      member_release(mb);
      continue;
    }
    if (i != j) {
      m->members[j] = *mb;
      m->due[j] = m->due[i];
      member *moved = &m->members[j];
      if (owned_by(m, moved->reg_fd, FD_SESSION, i)) m->owners[moved->reg_fd].member = j;
      for (size_t k = 0; k < moved->nlisteners; k++)
        if (owned_by(m, moved->lfds[k], FD_LISTENER, i)) m->owners[moved->lfds[k]].member = j;
      session_set_multi_slot(moved->s, j);
    }
    j++;
  }
  m->count = j;
  m->need_compact = false;
  m->nremoved = 0;
  /* the dirty list holds old numbers: rebuild it from the flags (it had
     room for at least as many) */
  m->ndirty = 0;
  for (size_t i = 0; i < m->count; i++)
    if (m->members[i].dirty) {
      if (m->ndirty < m->dirty_cap) m->dirty[m->ndirty++] = i;
      else m->refresh_all = true;
    }
}

static void drop_member(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  if (mb->removed) return;
  unregister_member(m, i);
  session_set_multi(mb->s, NULL, NULL, 0);
  mb->removed = true;
  set_on_process(m, mb, false);
  m->due[i] = NO_DEADLINE;
  m->need_compact = true;
  m->nremoved++;
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

/* evssh_session_free of a member: it leaves before its fds close */
static void detach_member(void *multi, evssh_session *s) { evssh_multi_remove(multi, s); }

/* --------------------------------------------------------------- the loop */

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

static int queue_hit(evssh_multi *m, size_t i, int fd, int revents) {
  if (m->nhits == m->hits_cap) {
    size_t cap = m->hits_cap ? m->hits_cap * 2 : 16;
    listener_hit *v = realloc(m->hits, cap * sizeof *v);
    if (!v) return EVSSH_ENOMEM;
    m->hits = v;
    m->hits_cap = cap;
  }
  m->hits[m->nhits++] = (listener_hit){i, fd, revents};
  return EVSSH_OK;
}

static void handle_member(evssh_multi *m, size_t i) {
  member *mb = &m->members[i];
  evssh_session *s = mb->s;
  int rev = mb->revents;
  mb->revents = 0;
  if (mb->removed) return;
  bool was_connecting = session_tcp_connecting(s);
  mb->relisten = true;
  if (!evssh_session_closed(s)) evssh_session_handle_events(s, rev);
  /* a callback may have added members: the array may have moved */
  mb = &m->members[i];
  if (mb->removed) return;
  if (evssh_session_closed(s)) {
    drop_member(m, i);
    return;
  }
  /* asked again at the next sweep, before anything sleeps */
  if (was_connecting || session_tcp_connecting(s)) mb->force = true;
  mark_dirty(m, i);
}

static bool member_busy(const evssh_session *s) {
  return evssh_session_connecting(s) || evssh_session_busy(s, false);
}

static bool multi_default_cond(evssh_multi *m, void *ud) {
  for (size_t i = 0; i < m->count; i++) {
    const member *mb = &m->members[i];
    if (mb->removed) continue;
    /* a member nothing touched since it was asked is as it was */
    if ((mb->dirty || m->refresh_all) ? member_busy(mb->s) : mb->busy) return true;
  }
  return false;
}

/* Ask one member everything the multi keeps about it: its timeout first
   (a closing session's may queue its CLOSEs), then its fd, interest and
   listen_to set into the epoll set. */
static int refresh_member(evssh_multi *m, size_t i, int64_t now) {
  member *mb = &m->members[i];
  mb->dirty = false;   /* a touch from here on marks it again */
  evssh_session *s = mb->s;
  if (evssh_session_closed(s)) {
    drop_member(m, i);
    return EVSSH_OK;
  }
  int t = evssh_session_timeout(s);
  m->due[i] = t < 0 ? NO_DEADLINE : now + t;
  set_on_process(m, mb, evssh_session_has_on_process(s));
  mb->busy = member_busy(s);
  bool fd_done = sync_session(m, i, mb->force);
  mb->force = false;
  bool listeners_done;
  int rc = sync_listeners(m, i, &listeners_done);
  /* what could not be registered yet (an fd number another member still
     holds, which its own turn in this sweep may release) is tried again */
  if (rc == EVSSH_OK && (!fd_done || !listeners_done)) mark_dirty(m, i);
  return rc;
}

/* Brings the members touched or handled since the last sweep up to date
   (see the file comment), finds the next deadline among all, and (queue)
   lists the members to handle. Returns the wait in ms (-1 none, 0 work
   now), or <0 error. */
static int sweep(evssh_multi *m, int wait_ms, bool queue) {
  int rc = EVSSH_OK;
  int64_t now = base_now_ms();
  int64_t next_due = NO_DEADLINE;
  bool due_now = false;
  if (m->refresh_all) {
    m->refresh_all = false;
    m->ndirty = 0;   /* every flag is cleared as its member is asked */
    for (size_t i = 0; i < m->count && rc == EVSSH_OK; i++)
      if (!m->members[i].removed) rc = refresh_member(m, i, now);
  } else {
    /* Two rounds: the second takes the members marked again during the
       first (one whose fd number another member released meanwhile);
       members touched after that are asked next time. */
    size_t n = 0;
    for (int round = 0; round < 2 && rc == EVSSH_OK && n < m->ndirty; round++) {
      size_t end = m->ndirty;
      for (size_t k = n; k < end && rc == EVSSH_OK; k++) {
        size_t i = m->dirty[k];
        if (i < m->count && m->members[i].dirty && !m->members[i].removed) rc = refresh_member(m, i, now);
      }
      n = end;
    }
    if (rc == EVSSH_OK && n > 0) {
      memmove(m->dirty, m->dirty + n, (m->ndirty - n) * sizeof *m->dirty);
      m->ndirty -= n;
    }
  }
  for (size_t i = 0; i < m->count && rc == EVSSH_OK; i++) {
    int64_t due = m->due[i];   /* a removed member's is NO_DEADLINE */
    if (due <= now) {
      due_now = true;
      if (queue) rc = queue_work(m, i);
    } else if (due < next_due) {
      next_due = due;
    }
  }
  for (size_t i = 0; queue && m->n_on_process > 0 && i < m->count && rc == EVSSH_OK; i++)
    if (m->members[i].on_process) rc = queue_work(m, i);
  if (rc != EVSSH_OK) return rc;
  int timeout = wait_ms;
  if (due_now) {
    timeout = 0;
  } else if (next_due != NO_DEADLINE) {
    int64_t left = next_due - now;
    if (left < 0) left = 0;
    if (timeout < 0 || left < timeout) timeout = left > INT_MAX ? INT_MAX : (int)left;
  }
  return timeout;
}

int evssh_multi_fd(const evssh_multi *m) { return m ? m->epfd : -1; }

int evssh_multi_timeout(evssh_multi *m) {
  if (!m) return -1;
  if (m->depth) return 0;
  int t = sweep(m, -1, false);
  compact(m);
  return t < -1 ? 0 : t;
}

int evssh_multi_process(evssh_multi *m, int wait_ms, evssh_multi_cond_cb cond, void *ud) {
  if (!m) return EVSSH_EINVAL;
  if (m->depth) return EVSSH_EBUSY;
  if (cond && !cond(m, ud)) return 0;
  m->depth++;
  m->stamp++;
  m->nwork = 0;
  m->nhits = 0;
  int rc = EVSSH_OK;
  int timeout = sweep(m, wait_ms < 0 ? -1 : wait_ms, true);
  if (timeout < -1) {
    m->depth--;
    return timeout;
  }

  struct epoll_event evs[EVENTS_PER_WAIT];
  int ready = epoll_wait(m->epfd, evs, EVENTS_PER_WAIT, timeout);
  if (ready < 0) {
    m->depth--;
    return errno == EINTR ? 1 : EVSSH_ECONNECT;
  }
  for (int k = 0; k < ready && rc == EVSSH_OK; k++) {
    int fd = evs[k].data.fd;
    if (fd < 0 || (size_t)fd >= m->owners_cap) continue;
    const fd_owner *o = &m->owners[fd];
    if (o->kind == FD_NONE || o->member >= m->count) continue;
    member *mb = &m->members[o->member];
    if (mb->removed) continue;
    if (o->kind == FD_SESSION) {
      if (mb->reg_fd != fd) continue;
      mb->revents |= from_epoll(evs[k].events);
      rc = queue_work(m, o->member);
    } else {
      rc = queue_hit(m, o->member, fd, from_epoll(evs[k].events));
      if (!rc) rc = queue_work(m, o->member);
    }
  }
  /* listen_to callbacks first, then each session's iteration, so what a
     callback queued is written in this iteration; members added by
     callbacks wait for the next turn */
  size_t count = m->count;
  for (size_t k = 0; k < m->nhits; k++) {
    listener_hit *h = &m->hits[k];
    member *mb = &m->members[h->member];
    if (mb->removed || evssh_session_closed(mb->s)) continue;
    evssh_session_handle_listener(mb->s, h->fd, h->revents);
  }
  for (size_t k = 0; k < m->nwork; k++)
    if (m->work[k] < count) handle_member(m, m->work[k]);
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
