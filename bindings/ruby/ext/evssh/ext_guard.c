/* ext_guard.c owns the two places where Ruby and libevssh meet at run time:
 * calling a Ruby block from inside a C callback (under rb_protect, the first
 * exception stashed in the session and re-raised by ext_raise_pending once C
 * has returned, a non-exception jump resumed the same way), and sleeping on
 * the sessions' fds and listened IOs with poll() without the GVL, bounded by
 * the caller's wait and each session's own timers, noting which listened IOs
 * became ready. */
#include "evssh_ext.h"

#include <limits.h>

struct call_args {
  VALUE recv;
  ID mid;
  int argc;
  const VALUE *argv;
};

static VALUE call_body(VALUE p) {
  struct call_args *a = (struct call_args *)p;
  return rb_funcallv(a->recv, a->mid, a->argc, a->argv);
}

/* Call recv.mid(*argv) under rb_protect. An exception of class `expected`
   (if not nil) is returned as *caught instead of being stashed. Returns
   Qundef when the call did not return normally. */
VALUE ext_guarded_send(rsess *rs, VALUE recv, ID mid, int argc, const VALUE *argv, VALUE expected,
                          VALUE *caught) {
  if (NIL_P(recv) || rs->jump) return Qundef;
  struct call_args a = {recv, mid, argc, argv};
  int state = 0;
  rs->activity++;
  rs->depth++;
  VALUE r = rb_protect(call_body, (VALUE)&a, &state);
  rs->depth--;
  if (!state) return r;
  VALUE err = rb_errinfo();
  if (rb_obj_is_kind_of(err, rb_eException)) {
    if (!NIL_P(expected) && caught && rb_obj_is_kind_of(err, expected)) {
      *caught = err;
    } else if (NIL_P(rs->exc)) {
      rs->exc = err;
    }
    rb_set_errinfo(Qnil);
  } else {
    rs->jump = state;
  }
  return Qundef;
}

VALUE ext_guarded_call(rsess *rs, VALUE proc, int argc, const VALUE *argv) {
  return ext_guarded_send(rs, proc, ext_id_call, argc, argv, Qnil, NULL);
}

/* Re-raise what a callback raised, now that C has returned. */
void ext_raise_pending(rsess *rs) {
  if (rs->jump) {
    int state = rs->jump;
    rs->jump = 0;
    rs->exc = Qnil;
    rb_jump_tag(state);
  }
  if (!NIL_P(rs->exc)) {
    VALUE e = rs->exc;
    rs->exc = Qnil;
    rb_exc_raise(e);
  }
}

struct poll_args {
  struct pollfd *fds;
  nfds_t n;
  int timeout;
  int ret, err;
};

static void *poll_nogvl(void *p) {
  struct poll_args *a = p;
  a->ret = poll(a->fds, a->n, a->timeout);
  a->err = errno;
  return NULL;
}

static short to_poll(int ev) {
  return (short)(((ev & EVSSH_READ) ? POLLIN : 0) | ((ev & EVSSH_WRITE) ? POLLOUT : 0));
}
static int from_poll(short re) {
  int ev = 0;
  if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ev |= EVSSH_READ;
  if (re & (POLLOUT | POLLERR)) ev |= EVSSH_WRITE;
  return ev;
}

struct collect_fds {
  struct pollfd *fds;
  size_t n, cap;
};
static int collect_one(VALUE fd, VALUE entry, VALUE arg) {
  struct collect_fds *cf = (struct collect_fds *)arg;
  if (cf->n < cf->cap) {
    cf->fds[cf->n].fd = FIX2INT(fd);
    cf->fds[cf->n].events = to_poll(FIX2INT(RARRAY_AREF(entry, 2)));
    cf->fds[cf->n].revents = 0;
    cf->n++;
  }
  return ST_CONTINUE;
}

/* owner codes of libevssh's own listen_to fds: C_FD - session index */
#define C_FD (LONG_MIN / 2)

/* libevssh's own listen_to fds (a forward's listener and connections):
   polled here with the session's, so a forward is served while Ruby waits */
static size_t collect_c_listeners(evssh_session *s, struct pollfd *fds, long *owner, size_t room, size_t index) {
  if (room == 0 || evssh_session_listeners(s, NULL, NULL, 0) == 0) return 0;
  VALUE tf, te;
  int *f = ALLOCV_N(int, tf, room), *e = ALLOCV_N(int, te, room);
  size_t n = evssh_session_listeners(s, f, e, room);
  if (n > room) n = room;
  for (size_t k = 0; k < n; k++) {
    fds[k].fd = f[k];
    fds[k].events = to_poll(e[k]);
    fds[k].revents = 0;
    owner[k] = C_FD - (long)index;
  }
  ALLOCV_END(tf);
  ALLOCV_END(te);
  return n;
}

/* Sleep without the GVL until one of the sessions (or a listened IO) is
   ready or wait_ms (-1: no limit) passes; each session's own timers bound
   the sleep. revents[i] receives session i's ready events; a ready listened
   IO gets its events in slot 3 of its listen_to entry, which
   ext_dispatch_listeners consumes (Net::SSH's postprocess). */
void ext_wait_ready(rsess **rss, size_t count, int wait_ms, int *revents) {
  size_t cap = count;
  int timeout = wait_ms;
  for (size_t i = 0; i < count; i++) {
    revents[i] = 0;
    if (!rss[i]->s) continue;
    cap += (size_t)RHASH_SIZE(rss[i]->listeners);
    cap += evssh_session_listeners(rss[i]->s, NULL, NULL, 0);
    int t = evssh_session_timeout(rss[i]->s);
    if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
  }
  VALUE tmp, tmp_owner;
  struct pollfd *fds = ALLOCV_N(struct pollfd, tmp, cap ? cap : 1);
  /* owner[k]: index of the session; Ruby listen_to fds are encoded as
     -1 - index, libevssh's own listen_to fds (forwards) as C_FD - index */
  long *owner = ALLOCV_N(long, tmp_owner, cap ? cap : 1);
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (!rss[i]->s) continue;
    int fd = evssh_session_fd(rss[i]->s);
    if (fd >= 0) {
      fds[n].fd = fd;
      fds[n].events = to_poll(evssh_session_events(rss[i]->s));
      fds[n].revents = 0;
      owner[n++] = (long)i;
    }
    struct collect_fds cf = {fds + n, 0, cap - n};
    if (RHASH_SIZE(rss[i]->listeners) > 0) rb_hash_foreach(rss[i]->listeners, collect_one, (VALUE)&cf);
    for (size_t k = 0; k < cf.n; k++) owner[n + k] = -1 - (long)i;
    n += cf.n;
    n += collect_c_listeners(rss[i]->s, fds + n, owner + n, cap - n, i);
  }
  if (n == 0 && timeout < 0) {
    /* nothing could ever wake us: do not sleep forever */
    ALLOCV_END(tmp);
    ALLOCV_END(tmp_owner);
    return;
  }
  struct poll_args a = {fds, (nfds_t)n, timeout, 0, 0};
  if (timeout == 0)
    poll_nogvl(&a);
  else
    rb_thread_call_without_gvl(poll_nogvl, &a, RUBY_UBF_IO, NULL);
  if (a.ret > 0) {
    for (size_t k = 0; k < n; k++) {
      if (!fds[k].revents) continue;
      if (owner[k] >= 0) {
        revents[owner[k]] |= from_poll(fds[k].revents);
        continue;
      }
      if (owner[k] <= C_FD) {
        /* before the session's handle_events, as libevssh asks */
        rsess *cs = rss[C_FD - owner[k]];
        if (cs->s) evssh_session_handle_listener(cs->s, fds[k].fd, from_poll(fds[k].revents));
        continue;
      }
      rsess *rs = rss[-1 - owner[k]];
      VALUE entry = rb_hash_aref(rs->listeners, INT2FIX(fds[k].fd));
      if (RB_TYPE_P(entry, T_ARRAY)) rb_ary_store(entry, 3, INT2FIX(from_poll(fds[k].revents)));
    }
  }
  ALLOCV_END(tmp);
  ALLOCV_END(tmp_owner);
  if (a.ret < 0 && a.err == EINTR) rb_thread_check_ints();
}

int ext_wait_ms_of(VALUE wait) {
  if (NIL_P(wait)) return -1;
  double secs = NUM2DBL(wait);
  if (secs <= 0) return 0;
  if (secs * 1000.0 > INT_MAX) return INT_MAX;
  return (int)ceil(secs * 1000.0);
}
