/* ext_listen.c owns listen_to/stop_listening_to, which lets the event loop
 * also watch Ruby IOs (Net::SSH's BufferedIo forwarding sockets). The set is
 * the binding's own, kept in the session wrapper (fd => [io, block, wanted
 * events, ready events]); libevssh never sees those fds. Before each wait
 * the refresh asks each IO whether it has pending writes (and drops IOs
 * closed behind our back); ext_wait_ready polls them with the session fd;
 * after the wait ext_dispatch_listeners hands readiness to the IO's block or
 * to the session's default listener and flushes pending writes, as Net::SSH's
 * postprocess does, so the next iteration's on_process sees what was read. */
#include "evssh_ext.h"

static void dispatch_one(rsess *rs, VALUE entry, int events) {
  VALUE io = RARRAY_AREF(entry, 0), blk = RARRAY_AREF(entry, 1);
  if (events & EVSSH_READ) {
    VALUE argv[1] = {io};
    if (NIL_P(blk))
      ext_guarded_send(rs, rs->self, ext_id_default_listener, 1, argv, Qnil, NULL);
    else
      ext_guarded_call(rs, blk, 1, argv);
  }
  if ((events & EVSSH_WRITE) && rb_respond_to(io, ext_id_send_pending) &&
      !(rb_respond_to(io, ext_id_closed_p) && RTEST(rb_funcall(io, ext_id_closed_p, 0))))
    ext_guarded_send(rs, io, ext_id_send_pending, 0, NULL, Qnil, NULL);
}

/* Run the callbacks of the IOs ext_wait_ready found ready. A callback may
   add or remove listeners: walk a snapshot of the fds, look each up again. */
void ext_dispatch_listeners(rsess *rs) {
  if (RHASH_SIZE(rs->listeners) == 0) return;
  VALUE keys = rb_funcall(rs->listeners, rb_intern("keys"), 0);
  rs->listener_keys = keys; /* marked while callbacks run */
  for (long i = 0; i < RARRAY_LEN(keys); i++) {
    VALUE entry = rb_hash_aref(rs->listeners, RARRAY_AREF(keys, i));
    if (!RB_TYPE_P(entry, T_ARRAY) || RARRAY_LEN(entry) < 4) continue;
    int ready = FIX2INT(RARRAY_AREF(entry, 3));
    if (!ready) continue;
    rb_ary_store(entry, 3, INT2FIX(0));
    dispatch_one(rs, entry, ready);
  }
  rs->listener_keys = Qnil;
  ext_raise_pending(rs);
}

/* Which events each listened IO wants now (Net::SSH asks pending_write?). */
static int refresh_one(VALUE fd, VALUE entry, VALUE arg) {
  VALUE io = RARRAY_AREF(entry, 0);
  /* an IO closed behind our back: its fd number may already be reused */
  if (rb_respond_to(io, ext_id_closed_p) && RTEST(rb_funcall(io, ext_id_closed_p, 0))) return ST_DELETE;
  int want = EVSSH_READ;
  if (rb_respond_to(io, ext_id_pending_write) && RTEST(rb_funcall(io, ext_id_pending_write, 0))) want |= EVSSH_WRITE;
  rb_ary_store(entry, 2, INT2FIX(want));
  return ST_CONTINUE;
}
void ext_refresh_listeners(rsess *rs) {
  if (RHASH_SIZE(rs->listeners) > 0) rb_hash_foreach(rs->listeners, refresh_one, Qnil);
}

static int io_fd(VALUE io) {
  VALUE o = rb_respond_to(io, ext_id_to_io) ? rb_funcall(io, ext_id_to_io, 0) : io;
  return NUM2INT(rb_funcall(o, ext_id_fileno, 0));
}

static VALUE sess_listen_to(VALUE self, VALUE io) {
  rsess *rs = ext_open_rs(self);
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  int fd = io_fd(io);
  if (fd < 0) rb_raise(rb_eArgError, "listen_to: the IO has no file descriptor");
  rb_hash_aset(rs->listeners, INT2FIX(fd), rb_ary_new_from_args(4, io, blk, INT2FIX(EVSSH_READ), INT2FIX(0)));
  return self;
}

static VALUE sess_stop_listening_to(VALUE self, VALUE io) {
  rsess *rs = ext_get_rs(self);
  /* a closed IO has no fileno any more: find it by identity */
  VALUE keys = rb_funcall(rs->listeners, rb_intern("keys"), 0);
  for (long i = 0; i < RARRAY_LEN(keys); i++) {
    VALUE fd = RARRAY_AREF(keys, i);
    VALUE entry = rb_hash_aref(rs->listeners, fd);
    if (RB_TYPE_P(entry, T_ARRAY) && RARRAY_AREF(entry, 0) == io) rb_hash_delete(rs->listeners, fd);
  }
  return self;
}

/* Net::SSH's listeners: { io => callback or nil } (the session socket is
   added by the Ruby half). */
static VALUE sess_listened_ios(VALUE self) {
  rsess *rs = ext_get_rs(self);
  VALUE h = rb_hash_new();
  VALUE vals = rb_funcall(rs->listeners, rb_intern("values"), 0);
  for (long i = 0; i < RARRAY_LEN(vals); i++) {
    VALUE e = RARRAY_AREF(vals, i);
    rb_hash_aset(h, RARRAY_AREF(e, 0), RARRAY_AREF(e, 1));
  }
  return h;
}

/* Postprocess for IOs a foreign select found ready (net-ssh-multi's loop):
   readers get their callback, writers send what they have pending. */
static VALUE sess_postprocess_ios(VALUE self, VALUE readers, VALUE writers) {
  rsess *rs = ext_get_rs(self);
  VALUE lists[2] = {rb_Array(readers), rb_Array(writers)};
  for (int w = 0; w < 2; w++) {
    for (long i = 0; i < RARRAY_LEN(lists[w]); i++) {
      VALUE io = RARRAY_AREF(lists[w], i);
      VALUE vals = rb_funcall(rs->listeners, rb_intern("values"), 0);
      for (long k = 0; k < RARRAY_LEN(vals); k++) {
        VALUE e = RARRAY_AREF(vals, k);
        if (RARRAY_AREF(e, 0) != io) continue;
        dispatch_one(rs, e, w ? EVSSH_WRITE : EVSSH_READ);
        break;
      }
    }
  }
  ext_raise_pending(rs);
  return Qtrue;
}

void ext_init_listen(void) {
  rb_define_method(ext_cSession, "listen_to", sess_listen_to, 1);
  rb_define_method(ext_cSession, "stop_listening_to", sess_stop_listening_to, 1);
  rb_define_method(ext_cSession, "_listened_ios", sess_listened_ios, 0);
  rb_define_method(ext_cSession, "_postprocess_ios", sess_postprocess_ios, 2);
}
