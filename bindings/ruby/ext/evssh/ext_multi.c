/* ext_multi.c owns EvSSH::Multi's C side: _step, one iteration over many
 * sessions sharing a single GVL-free poll (used when libevssh has no
 * evssh_multi), and EvSSH::Multi::Core, the wrapper of evssh_multi whose
 * handle is shared with its member sessions so either may be freed first. */
#include "evssh_ext.h"

/* ------------------------------------------------------------------ Multi */

/* One Multi iteration over many sessions: each connected one runs its
   preprocess, then one poll without the GVL covers them all, then the
   connecting ones handle their events and the connected ones' listened IOs
   get their callbacks.
   cond (nil or a callable) is asked again after the GVL part, as
   process_once does for one session: the GVL part may already have done
   what the caller waits for, and a wait then would last until the next
   timer (a 300 s keepalive under BatchMode). Returns an Array of
   [session, exception] for sessions that failed; the caller drops those,
   the others go on. */
static VALUE multi_step(VALUE mod, VALUE sessions, VALUE wait, VALUE cond) {
  Check_Type(sessions, T_ARRAY);
  long n = RARRAY_LEN(sessions);
  VALUE failed = rb_ary_new();
  VALUE tmp1, tmp2;
  rsess **rss = ALLOCV_N(rsess *, tmp1, n ? n : 1);
  int *revents = ALLOCV_N(int, tmp2, n ? n : 1);
  long used = 0;
  for (long i = 0; i < n; i++) {
    rsess *rs = ext_get_rs(RARRAY_AREF(sessions, i));
    if (!rs->s) continue;
    if (rs->connect_done && rs->connect_status == EVSSH_OK) {
      int rc = evssh_session_process(rs->s, 0, NULL, NULL);
      if (rs->jump || !NIL_P(rs->exc)) ext_raise_pending(rs);
      if (rc < 0) {
        rb_ary_push(failed, rb_assoc_new(rs->self, ext_make_error(rc, evssh_session_error(rs->s))));
        continue;
      }
    }
    rss[used++] = rs;
  }
  int ms = ext_wait_ms_of(wait);
  if (!NIL_P(cond) && !RTEST(rb_funcall(cond, ext_id_call, 0))) ms = 0;
  for (long i = 0; i < used; i++) ext_refresh_listeners(rss[i]);
  if (used) ext_wait_ready(rss, (size_t)used, ms, revents);
  for (long i = 0; i < used; i++) {
    rsess *rs = rss[i];
    if (!rs->s) continue;
    if (rs->connect_done) {
      /* connected: the next process reads what is ready; listened IOs now */
      if (rs->connect_status == EVSSH_OK) ext_dispatch_listeners(rs);
      continue;
    }
    int rc = evssh_session_handle_events(rs->s, revents[i]);
    if (rs->jump || !NIL_P(rs->exc)) ext_raise_pending(rs);
    if (rc < 0 && !rs->connect_done) {
      rs->connect_done = true;
      rs->connect_status = rc;
    }
    if (rs->connect_done && rs->connect_status != EVSSH_OK)
      rb_ary_push(failed, rb_assoc_new(rs->self, ext_make_connect_error(rs->connect_status, evssh_session_error(rs->s), evssh_session_sys_errno(rs->s))));
  }
  ALLOCV_END(tmp1);
  ALLOCV_END(tmp2);
  return failed;
}

#ifdef HAVE_EVSSH_MULTI_NEW
/* EvSSH::Multi::Core: evssh_multi. Its process both waits and runs
   callbacks, so as for one session it runs with wait 0 (with the GVL) and
   the wait is a separate poll over every member without the GVL. */
typedef struct rmulti {
  mholder *h;
  VALUE sessions;
} rmulti;

static void multi_mark(void *p) { rb_gc_mark(((rmulti *)p)->sessions); }
static void multi_free(void *p) {
  rmulti *rm = p;
  if (rm->h) {
    evssh_multi_free(rm->h->m);
    rm->h->m = NULL;
    if (--rm->h->refs == 0) free(rm->h);
  }
  xfree(rm);
}
static size_t multi_memsize(const void *p) { return sizeof(rmulti); }
static const rb_data_type_t multi_type = {"EvSSH::Multi::Core", {multi_mark, multi_free, multi_memsize, NULL, {NULL}}, 0, 0, 0};

static VALUE multi_alloc(VALUE klass) {
  rmulti *rm;
  VALUE obj = TypedData_Make_Struct(klass, rmulti, &multi_type, rm);
  rm->sessions = rb_ary_new();
  rm->h = calloc(1, sizeof *rm->h);
  if (!rm->h) rb_raise(rb_eNoMemError, "evssh_multi");
  rm->h->refs = 1;
  rm->h->m = evssh_multi_new();
  if (!rm->h->m) rb_raise(rb_eNoMemError, "evssh_multi_new");
  return obj;
}

static rmulti *get_rm(VALUE self) { return rb_check_typeddata(self, &multi_type); }

static VALUE multi_add(VALUE self, VALUE session) {
  rmulti *rm = get_rm(self);
  rsess *rs = ext_open_rs(session);
  if (rs->multi) rb_raise(rb_eArgError, "session already belongs to a multi");
  int rc = evssh_multi_add(rm->h->m, rs->s);
  if (rc) ext_raise_code(rc, evssh_session_error(rs->s));
  rs->multi = rm->h;
  rm->h->refs++;
  rb_ary_push(rm->sessions, session);
  return session;
}

static VALUE multi_remove(VALUE self, VALUE session) {
  rmulti *rm = get_rm(self);
  rsess *rs = ext_get_rs(session);
  if (rs->multi == rm->h) ext_multi_leave(rs);
  rb_ary_delete(rm->sessions, session);
  return session;
}

/* evssh_multi_process(m, 0) with the GVL; returns [[session, error], ...]
   for members that failed (C already dropped them). */
static VALUE multi_work(VALUE self) {
  rmulti *rm = get_rm(self);
  VALUE sessions = rb_ary_dup(rm->sessions);
  long n = RARRAY_LEN(sessions);
  int rc = evssh_multi_process(rm->h->m, 0, NULL, NULL);
  for (long i = 0; i < n; i++) ext_raise_pending(ext_get_rs(RARRAY_AREF(sessions, i)));
  if (rc < 0) ext_raise_code(rc, "multi process failed");
  VALUE failed = rb_ary_new();
  for (long i = 0; i < n; i++) {
    VALUE sv = RARRAY_AREF(sessions, i);
    rsess *rs = ext_get_rs(sv);
    if (!rs->s || !rs->connect_done) continue;
    if (rs->connect_status != EVSSH_OK) {
      rb_ary_push(failed, rb_assoc_new(sv, ext_make_connect_error(rs->connect_status, evssh_session_error(rs->s), evssh_session_sys_errno(rs->s))));
    } else if (evssh_session_closed(rs->s)) {
      /* process on a closed session returns its error code at once */
      int code = evssh_session_process(rs->s, 0, NULL, NULL);
      rb_ary_push(failed, rb_assoc_new(sv, ext_make_error(code < 0 ? code : EVSSH_ECLOSED, evssh_session_error(rs->s))));
    }
  }
  return failed;
}

static VALUE multi_wait(VALUE self, VALUE wait) {
  rmulti *rm = get_rm(self);
  VALUE sessions = rb_ary_dup(rm->sessions);
  long n = RARRAY_LEN(sessions);
  VALUE tmp1, tmp2;
  rsess **rss = ALLOCV_N(rsess *, tmp1, n ? n : 1);
  int *revents = ALLOCV_N(int, tmp2, n ? n : 1);
  long used = 0;
  for (long i = 0; i < n; i++) {
    rsess *rs = ext_get_rs(RARRAY_AREF(sessions, i));
    if (rs->s) {
      ext_refresh_listeners(rs);
      rss[used++] = rs;
    }
  }
  if (used) ext_wait_ready(rss, (size_t)used, ext_wait_ms_of(wait), revents);
  for (long i = 0; i < used; i++)
    if (rss[i]->s && rss[i]->connect_done && rss[i]->connect_status == EVSSH_OK) ext_dispatch_listeners(rss[i]);
  ALLOCV_END(tmp1);
  ALLOCV_END(tmp2);
  RB_GC_GUARD(sessions);
  return Qnil;
}
#endif

void ext_init_multi(void) {
  VALUE cMulti = rb_define_class_under(ext_mEvSSH, "Multi", rb_cObject);
  rb_define_singleton_method(cMulti, "_step", multi_step, 3);
#ifdef HAVE_EVSSH_MULTI_NEW
  VALUE cCore = rb_define_class_under(cMulti, "Core", rb_cObject);
  rb_define_alloc_func(cCore, multi_alloc);
  rb_define_method(cCore, "add", multi_add, 1);
  rb_define_method(cCore, "remove", multi_remove, 1);
  rb_define_method(cCore, "work", multi_work, 0);
  rb_define_method(cCore, "wait", multi_wait, 1);
#endif
  rb_define_const(ext_mEvSSH, "HAVE_C_MULTI",
#ifdef HAVE_EVSSH_MULTI_NEW
                  Qtrue
#else
                  Qfalse
#endif
  );
}
