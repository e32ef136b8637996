/* ext_channel.c owns EvSSH::Channel: the wrapper's marking, attaching a
 * wrapper to its C channel and detaching it when the channel is over, the
 * channel trampolines (data, eof, close, open failure, requests and their
 * replies, exec output), and the Ruby methods that register blocks, send
 * requests and data, and read the channel's state and exit status, with
 * Net::SSH's semantics: eof! marks and sends once and never raises, data
 * sent after eof! is an EOFError, data sent after the peer closed is dropped
 * quietly (Net::SSH queues it on a channel nobody will ever flush). */
#include "evssh_ext.h"

static void chan_mark(void *p) {
  rchan *c = p;
  /* C keeps this wrapper's VALUE (callbacks pass c->self, the session's
     channel table is keyed by it): pinned, so GC.compact cannot move it */
  rb_gc_mark(c->self);
  rb_gc_mark(c->session);
  rb_gc_mark(c->on_open);
  rb_gc_mark(c->on_data);
  rb_gc_mark(c->on_ext);
  rb_gc_mark(c->on_eof);
  rb_gc_mark(c->on_close);
  rb_gc_mark(c->on_process);
  rb_gc_mark(c->on_open_failed);
  rb_gc_mark(c->requests);
  rb_gc_mark(c->pending);
  rb_gc_mark(c->properties);
  rb_gc_mark(c->exec_block);
  rb_gc_mark(c->result);
  rb_gc_mark(c->status);
  rb_gc_mark(c->type);
  rb_gc_mark(c->exit_signal);
  rb_gc_mark(c->backlog);
  rb_gc_mark(c->on_drain);
}

static size_t chan_memsize(const void *p) { return sizeof(rchan); }

/* A channel wrapper is only collected after it was detached or together with
   its session (which then frees the C channel): nothing to release here. */
static const rb_data_type_t chan_type = {"EvSSH::Channel", {chan_mark, RUBY_TYPED_DEFAULT_FREE, chan_memsize, NULL, {NULL}},
                                         0, 0, 0};

VALUE ext_chan_alloc(VALUE klass) {
  rchan *c;
  VALUE obj = TypedData_Make_Struct(klass, rchan, &chan_type, c);
  c->self = obj;
  c->session = Qnil;
  c->on_open = c->on_data = c->on_ext = c->on_eof = c->on_close = c->on_process = c->on_open_failed = Qnil;
  c->requests = rb_hash_new();
  c->pending = rb_hash_new();
  c->properties = rb_hash_new();
  c->exec_block = c->result = c->status = c->type = c->exit_signal = Qnil;
  c->backlog = rb_ary_new();
  c->on_drain = Qnil;
  c->exit_status = -1;
  return obj;
}

rchan *ext_get_rc(VALUE self) { return rb_check_typeddata(self, &chan_type); }

static rchan *open_rc(VALUE self) {
  rchan *c = ext_get_rc(self);
  if (!c->ch) rb_raise(ext_eClosed, "channel %u is closed", c->id);
  return c;
}

/* ----------------------------------------------------- channel trampolines */

static rsess *chan_rs(evssh_channel *ch) { return ext_live_rs(evssh_channel_session(ch)); }

void ext_t_on_open(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  c->confirmed = true;
  VALUE argv[1] = {c->self};
  ext_guarded_call(rs, c->on_open, 1, argv);
}

static void t_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  if (NIL_P(c->on_data)) return;
  VALUE argv[2] = {c->self, rb_str_new(data, (long)len)};
  ext_guarded_call(rs, c->on_data, 2, argv);
}

static void t_on_ext(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  if (NIL_P(c->on_ext)) return;
  VALUE argv[3] = {c->self, UINT2NUM(type), rb_str_new(data, (long)len)};
  ext_guarded_call(rs, c->on_ext, 3, argv);
}

static void t_on_eof(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  c->eof_received = true;
  VALUE argv[1] = {c->self};
  ext_guarded_call(rs, c->on_eof, 1, argv);
}

/* on_process runs every iteration: it is not news that wakes the loop */
void ext_t_on_process(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  if (NIL_P(c->on_process)) return;
  VALUE argv[1] = {c->self};
  unsigned long activity = rs->activity;
  ext_guarded_call(rs, c->on_process, 1, argv);
  rs->activity = activity;
}

/* Keep what the channel leaves behind (exit status, ids) before C frees it. */
static void record_exit(rchan *c) {
  int st;
  const char *sig;
  if (!c->ch) return;
  if (evssh_channel_exit_status(c->ch, &st) == EVSSH_OK) {
    c->has_exit_status = true;
    c->exit_status = st;
  }
  if (evssh_channel_exit_signal(c->ch, &sig) == EVSSH_OK && sig) c->exit_signal = rb_str_new_cstr(sig);
  uint32_t id;
  if (evssh_channel_remote_id(c->ch, &id) == EVSSH_OK) c->remote_id = id, c->has_remote_id = true;
  if (evssh_channel_windows_get(c->ch, &c->windows) == EVSSH_OK) c->has_windows = true;
  if (!NIL_P(c->status) && RB_TYPE_P(c->status, T_HASH)) {
    if (c->has_exit_status) rb_hash_aset(c->status, ext_sym_exit_code, INT2FIX(c->exit_status));
    if (!NIL_P(c->exit_signal)) rb_hash_aset(c->status, ext_sym_exit_signal, c->exit_signal);
  }
}

static void t_on_close(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  record_exit(c);
  VALUE argv[1] = {c->self};
  ext_guarded_call(rs, c->on_close, 1, argv);
  ext_detach(c);
}

static void t_on_open_failed(evssh_channel *ch, uint32_t reason, const char *desc, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  VALUE d = rb_str_new_cstr(desc ? desc : "");
  if (NIL_P(c->on_open_failed)) {
    /* as Net::SSH: no handler means the failure is raised; but when the
       whole session went down, its own error is the one to raise */
    if (NIL_P(rs->exc) && !rs->jump && !evssh_session_closed(evssh_channel_session(ch))) {
      rs->exc = rb_funcall(ext_mEvSSH, rb_intern("__channel_open_failed"), 2, UINT2NUM(reason), d);
    }
  } else {
    VALUE argv[3] = {c->self, UINT2NUM(reason), d};
    ext_guarded_call(rs, c->on_open_failed, 3, argv);
  }
  ext_detach(c);
}

static void t_chan_reply(evssh_channel *ch, bool ok, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = evssh_channel_property(ch, RB_KEY);
  if (!c) return;
  VALUE blk = rb_hash_delete(c->pending, ULONG2NUM((unsigned long)(uintptr_t)ud));
  VALUE argv[2] = {c->self, ok ? Qtrue : Qfalse};
  ext_guarded_call(rs, blk, 2, argv);
}

static int t_chan_request(evssh_channel *ch, const char *type, evssh_reader *data, bool want_reply, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return EVSSH_REPLY_FAILURE;
  rchan *c = ud;
  VALUE blk = rb_hash_aref(c->requests, rb_str_new_cstr(type));
  if (NIL_P(blk)) return EVSSH_REPLY_FAILURE;
  VALUE argv[2] = {c->self, ext_buf_new_from(data->p, data->left)};
  VALUE caught = Qnil;
  VALUE r = ext_guarded_send(rs, blk, ext_id_call, 2, argv, ext_eChannelRequestFailed, &caught);
  if (r == Qundef) return EVSSH_REPLY_FAILURE;
  return EVSSH_REPLY_SUCCESS;
}

void ext_t_exec(evssh_channel *ch, evssh_stream stream, const char *data, size_t len, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  switch (c->exec_mode) {
  case EXEC_COLLECT:
    rb_str_cat(c->result, data, (long)len);
    break;
  case EXEC_BLOCK: {
    VALUE argv[3] = {c->self, stream == EVSSH_STDOUT ? ext_sym_stdout : ext_sym_stderr, rb_str_new(data, (long)len)};
    ext_guarded_call(rs, c->exec_block, 3, argv);
    break;
  }
  default: {
    VALUE io = stream == EVSSH_STDOUT ? rb_gv_get("$stdout") : rb_gv_get("$stderr");
    VALUE argv[1] = {rb_str_new(data, (long)len)};
    ext_guarded_send(rs, io, ext_id_print, 1, argv, Qnil, NULL);
  }
  }
}

/* Bind a wrapper to its C channel: from now on C reaches it through the
   callbacks below, and the session keeps it (and its blocks) alive. */
void ext_attach(rsess *rs, rchan *c, evssh_channel *ch, bool own_data) {
  c->ch = ch;
  c->rs = rs;
  c->session = rs->self;
  c->id = evssh_channel_id(ch);
  evssh_channel_set_property(ch, RB_KEY, c);
  if (own_data) {
    evssh_channel_on_data(ch, t_on_data, c);
    evssh_channel_on_extended_data(ch, t_on_ext, c);
  }
  evssh_channel_on_eof(ch, t_on_eof, c);
  evssh_channel_on_close(ch, t_on_close, c);
  evssh_channel_on_open_failed(ch, t_on_open_failed, c);
  rb_hash_aset(rs->channels, c->self, Qtrue);
}

/* The C channel is over (or about to be freed): cut every path from C to
   this wrapper and let the GC have its blocks once Ruby drops it. */
void ext_detach(rchan *c) {
  evssh_channel *ch = c->ch;
  if (!ch) return;
  evssh_channel_set_property(ch, RB_KEY, NULL);
  evssh_channel_on_data(ch, NULL, NULL);
  evssh_channel_on_extended_data(ch, NULL, NULL);
  evssh_channel_on_eof(ch, NULL, NULL);
  evssh_channel_on_close(ch, NULL, NULL);
  evssh_channel_on_open_failed(ch, NULL, NULL);
  evssh_channel_on_process(ch, NULL, NULL);
  evssh_channel_on_drain(ch, 0, NULL, NULL);
  c->drain_mode = DRAIN_NONE;
  c->ch = NULL;
  /* as Net::SSH: what never left is dropped with the channel */
  rb_ary_clear(c->backlog);
  c->backlog_bytes = 0;
  c->pending = rb_hash_new();
  if (c->rs && !c->rs->dead) rb_hash_delete(c->rs->channels, c->self);
}

/* ------------------------------------------------------------- channels */

/* as Net::SSH: each on_* replaces the block and returns the old one */
static VALUE chan_set_cb(VALUE *slot) {
  VALUE old = *slot;
  *slot = rb_block_given_p() ? rb_block_proc() : Qnil;
  return old;
}
static VALUE chan_on_data(VALUE self) {
  rchan *c = ext_get_rc(self);
  VALUE old = chan_set_cb(&c->on_data);
  /* an exec channel starts with exec's own data handlers; this replaces them */
  if (c->ch) evssh_channel_on_data(c->ch, t_on_data, c);
  return old;
}
static VALUE chan_on_extended_data(VALUE self) {
  rchan *c = ext_get_rc(self);
  VALUE old = chan_set_cb(&c->on_ext);
  if (c->ch) evssh_channel_on_extended_data(c->ch, t_on_ext, c);
  return old;
}
static VALUE chan_on_eof(VALUE self) { return chan_set_cb(&ext_get_rc(self)->on_eof); }
static VALUE chan_on_close(VALUE self) { return chan_set_cb(&ext_get_rc(self)->on_close); }
static VALUE chan_on_process(VALUE self) { return chan_set_cb(&ext_get_rc(self)->on_process); }
static VALUE chan_on_open_failed(VALUE self) { return chan_set_cb(&ext_get_rc(self)->on_open_failed); }
static VALUE chan_on_confirm(VALUE self) { return chan_set_cb(&ext_get_rc(self)->on_open); }

static VALUE chan_on_request(VALUE self, VALUE type) {
  rchan *c = ext_get_rc(self);
  VALUE t = rb_str_new_frozen(rb_obj_as_string(type));
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  VALUE old = rb_hash_aref(c->requests, t);
  if (NIL_P(blk)) {
    rb_hash_delete(c->requests, t);
    if (c->ch) evssh_channel_on_request(c->ch, StringValueCStr(t), NULL, NULL);
  } else {
    rb_hash_aset(c->requests, t, blk);
    if (c->ch) evssh_channel_on_request(c->ch, StringValueCStr(t), t_chan_request, c);
  }
  return old;
}

/* Reply bookkeeping shared by every request that takes a block. */
static void *reply_token(rchan *c, VALUE blk) {
  if (NIL_P(blk)) return NULL;
  unsigned long token = ++c->rs->token;
  rb_hash_aset(c->pending, ULONG2NUM(token), blk);
  return (void *)(uintptr_t)token;
}
static void request_done(rchan *c, int rc, void *token) {
  if (!rc) return;
  if (token) rb_hash_delete(c->pending, ULONG2NUM((unsigned long)(uintptr_t)token));
  ext_raise_code(rc, "channel request failed");
}

/* Net::SSH's check: a request needs the peer's channel number */
static rchan *request_rc(VALUE self) {
  rchan *c = open_rc(self);
  if (!c->confirmed)
    rb_raise(rb_eRuntimeError,
             "Channel open not yet confirmed, please call send_channel_request(or exec) from block of open_channel");
  return c;
}

static VALUE chan_exec(VALUE self, VALUE cmd) {
  rchan *c = request_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_exec(c->ch, StringValueCStr(cmd), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_subsystem(VALUE self, VALUE name) {
  rchan *c = request_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_subsystem(c->ch, StringValueCStr(name), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_shell(VALUE self) {
  rchan *c = request_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_shell(c->ch, tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_env(VALUE self, VALUE name, VALUE value) {
  rchan *c = request_rc(self);
  VALUE n = rb_obj_as_string(name), v = rb_obj_as_string(value);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_env(c->ch, StringValueCStr(n), StringValueCStr(v), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_send_channel_request(int argc, VALUE *argv, VALUE self) {
  rchan *c = request_rc(self);
  if (argc < 1) rb_raise(rb_eArgError, "request type required");
  VALUE type = rb_obj_as_string(argv[0]);
  VALUE extra = argc > 1 ? ext_encode_pairs(argc - 1, argv + 1) : Qnil;
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_send_request(c->ch, StringValueCStr(type), NIL_P(extra) ? NULL : RSTRING_PTR(extra),
                                      NIL_P(extra) ? 0 : (size_t)RSTRING_LEN(extra), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

/* _request_agent { |ch, ok| }: libevssh's agent forwarding request (the
   IETF name when the server refuses OpenSSH's); the server's agent
   channels are then joined to the local agent by libevssh */
static VALUE chan_request_agent(VALUE self) {
  rchan *c = open_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_request_agent(c->ch, tok ? t_chan_reply : NULL, tok);
  if (rc && tok) rb_hash_delete(c->pending, ULONG2NUM((unsigned long)(uintptr_t)tok));
  if (rc && c->rs && c->rs->s) ext_raise_code(rc, evssh_session_error(c->rs->s));
  if (rc) ext_raise_code(rc, "agent forwarding");
  return self;
}

static VALUE chan_signal(VALUE self, VALUE name) {
  rchan *c = open_rc(self);
  int rc = evssh_channel_signal(c->ch, StringValueCStr(name));
  if (rc) ext_raise_code(rc, "signal");
  return self;
}

/* ------------------------------------------------------------ backpressure */

/* The backlog is fed to C once C's queue has fallen this low: far enough
   above zero that the socket never waits for Ruby. */
#define FEED_LOW_WATER (4u * 1024u * 1024u)

static void t_on_drain(evssh_channel *ch, void *ud);

/* What C's on_drain watches for: the backlog's feeding while there is one,
   else the program's block, else nothing. Registering arms C's callback
   (it runs at the next flush when the queue is already low), so this is
   called only when the mode changes or the program registers again: once
   it ran, C arms it again by itself when pending rises above low water. */
static void set_drain(rchan *c, int mode) {
  if (!c->ch) return;
  c->drain_mode = mode;
  if (mode == DRAIN_FEED)
    evssh_channel_on_drain(c->ch, FEED_LOW_WATER, t_on_drain, c);
  else if (mode == DRAIN_USER)
    evssh_channel_on_drain(c->ch, c->drain_low, t_on_drain, c);
  else
    evssh_channel_on_drain(c->ch, 0, NULL, NULL);
}

static int user_mode(const rchan *c) { return NIL_P(c->on_drain) ? DRAIN_NONE : DRAIN_USER; }

static int c_send(rchan *c, VALUE type, VALUE str) {
  return NIL_P(type) ? evssh_channel_send_data(c->ch, RSTRING_PTR(str), (size_t)RSTRING_LEN(str))
                     : evssh_channel_send_extended_data(c->ch, NUM2UINT(type), RSTRING_PTR(str),
                                                        (size_t)RSTRING_LEN(str));
}

/* Hand the backlog to C as far as its cap allows; then the EOF and CLOSE
   that waited for it. */
static void feed_backlog(rchan *c) {
  while (c->ch && RARRAY_LEN(c->backlog) > 0) {
    VALUE item = RARRAY_AREF(c->backlog, 0);
    VALUE str = RARRAY_AREF(item, 1);
    int rc = c_send(c, RARRAY_AREF(item, 0), str);
    if (rc == EVSSH_EAGAIN) return;
    rb_ary_shift(c->backlog);
    c->backlog_bytes -= (size_t)RSTRING_LEN(str);
    if (rc == EVSSH_OK) {
      c->sent_in_step = true;
      if (c->rs) c->rs->sent += (unsigned long long)RSTRING_LEN(str);
    }
    /* anything else: the channel is over, and the rest goes with it */
  }
  if (!c->ch) return;
  if (c->eof_deferred) {
    c->eof_deferred = false;
    evssh_channel_eof(c->ch);
  }
  if (c->close_deferred) {
    c->close_deferred = false;
    evssh_channel_close(c->ch);
  }
}

static void t_on_drain(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  if (c->drain_mode == DRAIN_FEED) {
    feed_backlog(c);
    /* the program's block is told once the queue then falls to its low water */
    if (!c->backlog_bytes) set_drain(c, user_mode(c));
    return;
  }
  if (!c->ch || NIL_P(c->on_drain)) return;
  unsigned long long before = c->queued;
  VALUE argv[1] = {c->self};
  ext_guarded_call(rs, c->on_drain, 1, argv);
  /* A block that queued data yet left the queue at or under its low water
     is a producer to run again (C arms itself only when the queue rises
     above it): at the next flush, so the loop still does its I/O between. */
  if (c->ch && c->drain_mode == DRAIN_USER && !NIL_P(c->on_drain) &&
      c->queued != before && evssh_channel_pending(c->ch) <= c->drain_low)
    set_drain(c, DRAIN_USER);
}

/* Net::SSH: anything with to_s; EOFError once eof! was called; after the
   peer closed the data goes nowhere, quietly. Past libevssh's send cap it
   is kept here, in order, and fed as the queue drains: as in Net::SSH,
   how much a program queues is its own choice (channel.pending tells,
   on_drain says when to go on). */
static VALUE send_data_common(VALUE self, int ext, VALUE type, VALUE data) {
  rchan *c = ext_get_rc(self);
  if (c->eof_marked) rb_raise(rb_eEOFError, "cannot send data if channel has declared eof");
  VALUE str = rb_obj_as_string(data);
  if (!c->ch || RSTRING_LEN(str) == 0) return self;
  VALUE t = ext ? UINT2NUM(NUM2UINT(type)) : Qnil;
  c->queued += (unsigned long long)RSTRING_LEN(str);
  int rc = c->backlog_bytes ? EVSSH_EAGAIN : c_send(c, t, str);
  if (rc == EVSSH_EAGAIN) {
    rb_ary_push(c->backlog, rb_assoc_new(t, rb_str_new_frozen(str)));
    c->backlog_bytes += (size_t)RSTRING_LEN(str);
    if (c->drain_mode != DRAIN_FEED) set_drain(c, DRAIN_FEED);
    return self;
  }
  if (rc == EVSSH_OK && c->rs) {
    c->rs->sent += (unsigned long long)RSTRING_LEN(str);
    c->sent_in_step = true;
  }
  RB_GC_GUARD(str);
  if (rc && rc != EVSSH_ECLOSED) ext_raise_code(rc, ext ? "send_extended_data" : "send_data");
  return self;
}
static VALUE chan_send_data(VALUE self, VALUE data) { return send_data_common(self, 0, Qnil, data); }
static VALUE chan_send_extended_data(VALUE self, VALUE type, VALUE data) {
  return send_data_common(self, 1, type, data);
}

/* bytes given to send_data not yet handed to the transport: libevssh's
   queue and the backlog beyond its cap */
static VALUE chan_pending(VALUE self) {
  rchan *c = ext_get_rc(self);
  size_t n = c->backlog_bytes + (c->ch ? evssh_channel_pending(c->ch) : 0);
  return SIZET2NUM(n);
}

/* on_drain(low_water = 0) { |ch| }: runs when pending falls to low_water
   or below (and at the next flush when it already is), again each time it
   rose above it, and again at the next flush when the block itself queued
   data that left pending at or under low_water (a producer feeding in
   small steps); returns the old block */
static VALUE chan_on_drain(int argc, VALUE *argv, VALUE self) {
  VALUE low;
  rb_scan_args(argc, argv, "01", &low);
  rchan *c = ext_get_rc(self);
  VALUE old = c->on_drain;
  long l = NIL_P(low) ? 0 : NUM2LONG(low);
  if (l < 0) rb_raise(rb_eArgError, "on_drain: negative low water");
  c->drain_low = (size_t)l;
  c->on_drain = rb_block_given_p() ? rb_block_proc() : Qnil;
  if (c->drain_mode != DRAIN_FEED) set_drain(c, user_mode(c));
  return old;
}

/* pause: our window is not topped up, so the peer stops sending once it
   used what it was granted; resume grants it again */
static VALUE set_paused(VALUE self, bool paused) {
  rchan *c = ext_get_rc(self);
  if (!c->ch) return self;
  int rc = evssh_channel_pause(c->ch, paused);
  if (rc && rc != EVSSH_ECLOSED) ext_raise_code(rc, paused ? "pause" : "resume");
  return self;
}
static VALUE chan_pause(VALUE self) { return set_paused(self, true); }
static VALUE chan_resume(VALUE self) { return set_paused(self, false); }
static VALUE chan_paused_p(VALUE self) {
  rchan *c = ext_get_rc(self);
  return c->ch && evssh_channel_paused(c->ch) ? Qtrue : Qfalse;
}

/* Net::SSH's eof!: marks the channel (eof? is true from now on) and sends
   EOF once the queued data is out; a second call, or one after the peer
   closed, does nothing. */
static VALUE chan_eof_bang(VALUE self) {
  rchan *c = ext_get_rc(self);
  if (c->eof_marked) return self;
  c->eof_marked = true;
  if (!c->ch) return self;
  if (c->backlog_bytes) {
    c->eof_deferred = true;
    return self;
  }
  int rc = evssh_channel_eof(c->ch);
  if (rc && rc != EVSSH_ECLOSED && rc != EVSSH_EINVAL) ext_raise_code(rc, "eof!");
  return self;
}

/* as Net::SSH: CLOSE goes once everything queued is out */
static VALUE chan_close(VALUE self) {
  rchan *c = ext_get_rc(self);
  if (!c->ch) return self;
  c->close_requested = true;
  if (c->backlog_bytes) {
    c->close_deferred = true;
    return self;
  }
  int rc = evssh_channel_close(c->ch);
  if (rc && rc != EVSSH_ECLOSED) ext_raise_code(rc, "close");
  return self;
}

static VALUE chan_wait(VALUE self) {
  rchan *c = ext_get_rc(self);
  if (!c->ch) return self;
  ext_wait_channel(c->rs, c);
  return self;
}

/* Net::SSH: active from open_channel until the channel is over */
static VALUE chan_active_p(VALUE self) { return ext_get_rc(self)->ch ? Qtrue : Qfalse; }
static VALUE chan_closed_p(VALUE self) { return ext_get_rc(self)->ch ? Qfalse : Qtrue; }
static VALUE chan_closing_p(VALUE self) {
  rchan *c = ext_get_rc(self);
  return !c->ch || c->close_requested ? Qtrue : Qfalse;
}
/* Net::SSH's eof?: whether eof! was called (ours, not the peer's) */
static VALUE chan_eof_p(VALUE self) { return ext_get_rc(self)->eof_marked ? Qtrue : Qfalse; }
/* whether the peer sent EOF */
static VALUE chan_remote_eof_p(VALUE self) {
  rchan *c = ext_get_rc(self);
  return c->eof_received || (c->ch && evssh_channel_eof_received(c->ch)) ? Qtrue : Qfalse;
}
/* we asked to close (or the channel is over); the peer closed (C retires
   a channel when both sides have sent CLOSE, so that is when it is over) */
static VALUE chan_local_closed_p(VALUE self) {
  rchan *c = ext_get_rc(self);
  return !c->ch || c->close_requested ? Qtrue : Qfalse;
}
static VALUE chan_remote_closed_p(VALUE self) { return ext_get_rc(self)->ch ? Qfalse : Qtrue; }

static VALUE chan_remote_id(VALUE self) {
  rchan *c = ext_get_rc(self);
  uint32_t id;
  if (c->ch && evssh_channel_remote_id(c->ch, &id) == EVSSH_OK) c->remote_id = id, c->has_remote_id = true;
  return c->has_remote_id ? UINT2NUM(c->remote_id) : Qnil;
}

/* [local window, local max window, local max packet, remote window, remote
   max window, remote max packet], the last values seen once closed */
static VALUE chan_windows(VALUE self) {
  rchan *c = ext_get_rc(self);
  if (c->ch) {
    evssh_channel_windows w;
    if (evssh_channel_windows_get(c->ch, &w) == EVSSH_OK) c->windows = w, c->has_windows = true;
  }
  if (!c->has_windows) return Qnil;
  const evssh_channel_windows *w = &c->windows;
  return rb_ary_new_from_args(6, UINT2NUM(w->local_window), UINT2NUM(w->local_max_window),
                              UINT2NUM(w->local_max_packet), UINT2NUM(w->remote_window),
                              UINT2NUM(w->remote_max_window), UINT2NUM(w->remote_max_packet));
}
static VALUE chan_local_id(VALUE self) { return UINT2NUM(ext_get_rc(self)->id); }
static VALUE chan_type_m(VALUE self) { return ext_get_rc(self)->type; }
static VALUE chan_session(VALUE self) { return ext_get_rc(self)->session; }
static VALUE chan_properties(VALUE self) { return ext_get_rc(self)->properties; }
static VALUE chan_aref(VALUE self, VALUE key) { return rb_hash_aref(ext_get_rc(self)->properties, key); }

/* mirrored into the C channel too, so library-level keys (:invisible) act */
static VALUE chan_aset(VALUE self, VALUE key, VALUE v) {
  rchan *c = ext_get_rc(self);
  rb_hash_aset(c->properties, key, v);
  if (c->ch) {
    VALUE k = rb_obj_as_string(key);
    evssh_channel_set_property(c->ch, StringValueCStr(k), RTEST(v) ? (void *)c : NULL);
  }
  return v;
}

static VALUE chan_exit_status(VALUE self) {
  rchan *c = ext_get_rc(self);
  int st;
  if (c->ch && evssh_channel_exit_status(c->ch, &st) == EVSSH_OK) return INT2FIX(st);
  return c->has_exit_status ? INT2FIX(c->exit_status) : Qnil;
}
static VALUE chan_exit_signal(VALUE self) {
  rchan *c = ext_get_rc(self);
  const char *sig;
  if (c->ch && evssh_channel_exit_signal(c->ch, &sig) == EVSSH_OK && sig) return rb_str_new_cstr(sig);
  return c->exit_signal;
}

void ext_init_channel(void) {
  ext_cChannel = rb_define_class_under(ext_mEvSSH, "Channel", rb_cObject);
  rb_undef_alloc_func(ext_cChannel);
  rb_define_method(ext_cChannel, "on_data", chan_on_data, 0);
  rb_define_method(ext_cChannel, "on_extended_data", chan_on_extended_data, 0);
  rb_define_method(ext_cChannel, "on_eof", chan_on_eof, 0);
  rb_define_method(ext_cChannel, "on_close", chan_on_close, 0);
  rb_define_method(ext_cChannel, "on_process", chan_on_process, 0);
  rb_define_method(ext_cChannel, "on_open_failed", chan_on_open_failed, 0);
  rb_define_method(ext_cChannel, "on_confirm", chan_on_confirm, 0);
  rb_define_method(ext_cChannel, "on_request", chan_on_request, 1);
  rb_define_method(ext_cChannel, "exec", chan_exec, 1);
  rb_define_method(ext_cChannel, "subsystem", chan_subsystem, 1);
  rb_define_method(ext_cChannel, "shell", chan_shell, 0);
  rb_define_method(ext_cChannel, "env", chan_env, 2);
  rb_define_method(ext_cChannel, "send_channel_request", chan_send_channel_request, -1);
  rb_define_method(ext_cChannel, "_request_agent", chan_request_agent, 0);
  rb_define_method(ext_cChannel, "signal", chan_signal, 1);
  rb_define_method(ext_cChannel, "send_data", chan_send_data, 1);
  rb_define_method(ext_cChannel, "send_extended_data", chan_send_extended_data, 2);
  rb_define_method(ext_cChannel, "eof!", chan_eof_bang, 0);
  rb_define_method(ext_cChannel, "pending", chan_pending, 0);
  rb_define_method(ext_cChannel, "on_drain", chan_on_drain, -1);
  rb_define_method(ext_cChannel, "pause", chan_pause, 0);
  rb_define_method(ext_cChannel, "resume", chan_resume, 0);
  rb_define_method(ext_cChannel, "paused?", chan_paused_p, 0);
  rb_define_method(ext_cChannel, "close", chan_close, 0);
  rb_define_method(ext_cChannel, "wait", chan_wait, 0);
  rb_define_method(ext_cChannel, "active?", chan_active_p, 0);
  rb_define_method(ext_cChannel, "closed?", chan_closed_p, 0);
  rb_define_method(ext_cChannel, "closing?", chan_closing_p, 0);
  rb_define_method(ext_cChannel, "eof?", chan_eof_p, 0);
  rb_define_method(ext_cChannel, "remote_eof?", chan_remote_eof_p, 0);
  rb_define_method(ext_cChannel, "local_closed?", chan_local_closed_p, 0);
  rb_define_method(ext_cChannel, "remote_closed?", chan_remote_closed_p, 0);
  rb_define_method(ext_cChannel, "_remote_id", chan_remote_id, 0);
  rb_define_method(ext_cChannel, "_windows", chan_windows, 0);
  rb_define_method(ext_cChannel, "local_id", chan_local_id, 0);
  rb_define_method(ext_cChannel, "type", chan_type_m, 0);
  rb_define_method(ext_cChannel, "connection", chan_session, 0);
  rb_define_method(ext_cChannel, "session", chan_session, 0);
  rb_define_method(ext_cChannel, "properties", chan_properties, 0);
  rb_define_method(ext_cChannel, "[]", chan_aref, 1);
  rb_define_method(ext_cChannel, "[]=", chan_aset, 2);
  rb_define_method(ext_cChannel, "exit_status", chan_exit_status, 0);
  rb_define_method(ext_cChannel, "exit_signal", chan_exit_signal, 0);
}
