/* ext_listen.c owns listen_to/stop_listening_to, which lets the event loop
 * also watch Ruby IOs (Net::SSH's BufferedIo forwarding sockets): the fd
 * table kept in the session wrapper, the refresh that asks each IO whether
 * it has pending writes (and drops IOs closed behind our back) before every
 * step, and the trampoline that hands readiness to the IO's block or to the
 * session's default listener. */
#include "evssh_ext.h"

static void t_listen(evssh_session *s, int fd, int events, void *ud) {
  rsess *rs = ext_live_rs(s);
  if (!rs) return;
  VALUE entry = rb_hash_aref(rs->listeners, INT2FIX(fd));
  if (NIL_P(entry)) return;
  VALUE io = RARRAY_AREF(entry, 0), blk = RARRAY_AREF(entry, 1);
  if (events & EVSSH_READ) {
    VALUE argv[1] = {io};
    if (NIL_P(blk))
      ext_guarded_send(rs, rs->self, ext_id_default_listener, 1, argv, Qnil, NULL);
    else
      ext_guarded_call(rs, blk, 1, argv);
  }
  if ((events & EVSSH_WRITE) && rb_respond_to(io, ext_id_send_pending))
    ext_guarded_send(rs, io, ext_id_send_pending, 0, NULL, Qnil, NULL);
}

/* Tell C which listen_to IOs want writing now (Net::SSH asks pending_write?). */
static int refresh_one(VALUE fd, VALUE entry, VALUE arg) {
  rsess *rs = (rsess *)arg;
  VALUE io = RARRAY_AREF(entry, 0);
  /* an IO closed behind our back: its fd number may already be reused */
  if (rb_respond_to(io, ext_id_closed_p) && RTEST(rb_funcall(io, ext_id_closed_p, 0))) {
    evssh_session_stop_listening_to(rs->s, FIX2INT(fd));
    return ST_DELETE;
  }
  int want = EVSSH_READ;
  if (rb_respond_to(io, ext_id_pending_write) && RTEST(rb_funcall(io, ext_id_pending_write, 0))) want |= EVSSH_WRITE;
  if (FIX2INT(RARRAY_AREF(entry, 2)) != want) {
    rb_ary_store(entry, 2, INT2FIX(want));
    evssh_session_listen_to(rs->s, FIX2INT(fd), want, t_listen, NULL);
  }
  return ST_CONTINUE;
}
void ext_refresh_listeners(rsess *rs) {
  if (rs->s && RHASH_SIZE(rs->listeners) > 0) rb_hash_foreach(rs->listeners, refresh_one, (VALUE)rs);
}

static int io_fd(VALUE io) {
  VALUE o = rb_respond_to(io, ext_id_to_io) ? rb_funcall(io, ext_id_to_io, 0) : io;
  return NUM2INT(rb_funcall(o, ext_id_fileno, 0));
}

static VALUE sess_listen_to(VALUE self, VALUE io) {
  rsess *rs = ext_open_rs(self);
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  int fd = io_fd(io);
  int rc = evssh_session_listen_to(rs->s, fd, EVSSH_READ, t_listen, NULL);
  if (rc) ext_raise_code(rc, "listen_to");
  rb_hash_aset(rs->listeners, INT2FIX(fd), rb_ary_new_from_args(3, io, blk, INT2FIX(EVSSH_READ)));
  return self;
}

static VALUE sess_stop_listening_to(VALUE self, VALUE io) {
  rsess *rs = ext_get_rs(self);
  /* a closed IO has no fileno any more: find it by identity */
  VALUE keys = rb_funcall(rs->listeners, rb_intern("keys"), 0);
  for (long i = 0; i < RARRAY_LEN(keys); i++) {
    VALUE fd = RARRAY_AREF(keys, i);
    VALUE entry = rb_hash_aref(rs->listeners, fd);
    if (RARRAY_AREF(entry, 0) == io) {
      rb_hash_delete(rs->listeners, fd);
      if (rs->s) evssh_session_stop_listening_to(rs->s, FIX2INT(fd));
    }
  }
  return self;
}

void ext_init_listen(void) {
  rb_define_method(ext_cSession, "listen_to", sess_listen_to, 1);
  rb_define_method(ext_cSession, "stop_listening_to", sess_stop_listening_to, 1);
}
