/* evssh_ext.c is the C half of the Ruby binding: it wraps evssh_session and
 * evssh_channel as EvSSH::Session and EvSSH::Channel, evssh_reader/evssh_buf
 * as EvSSH::Buffer, and turns every C callback into a call of the Ruby block
 * the program registered. It holds no protocol logic: every byte on the wire
 * is produced and parsed by libevssh.
 *
 * Three rules shape this file.
 *
 * The GVL. libevssh's process() both waits and runs callbacks, and callbacks
 * must run with the GVL. So one iteration here is: evssh_session_process(s, 0)
 * with the GVL (dispatch what is buffered, on_process, non-blocking I/O,
 * listen_to dispatch), then a wait WITHOUT the GVL (rb_thread_call_without_gvl
 * around poll() on evssh_session_fd/events, the listen_to fds, and the
 * smaller of the caller's wait and evssh_session_timeout), then, if the
 * session fd became ready, evssh_session_handle_events with the GVL. Other
 * Ruby threads run while we sleep; Thread#raise/kill and Ctrl-C interrupt
 * the poll (RUBY_UBF_IO) and are raised between iterations.
 *
 * Lifetimes. Every live channel wrapper is in its session's `channels` hash
 * (marked), so its blocks live as long as the C channel; the wrapper is
 * detached (C callbacks cleared, dropped from the hash) in on_close, in
 * on_open_failed, or when a peer-opened channel is refused. A channel wrapper
 * marks its session, so a reachable channel keeps the session alive. Request
 * reply blocks are kept in a hash keyed by a token passed to C as ud, never
 * as raw VALUEs. C finds the session wrapper through a session property; once
 * the wrapper is being freed (`dead`), trampolines return without touching
 * Ruby, so evssh_session_free may run from the GC.
 *
 * Exceptions. Every block runs under rb_protect. The first exception is
 * stashed and the C call (which never sees it) finishes normally, so the C
 * state stays intact; process/loop then re-raise it. Later callbacks of the
 * same iteration still run (their exceptions are dropped in favour of the
 * first); a non-exception jump (throw, Thread#kill) stops further Ruby
 * callbacks and is resumed with rb_jump_tag. */
#include <ruby.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>

#include <evssh.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the session / channel property under which the wrapper is found from C;
   user keys are Ruby symbols or strings and cannot start with \001 */
#define RB_KEY "\001ruby"

static VALUE mEvSSH, cSession, cChannel, cBuffer, cStringWithExitstatus;
static VALUE eError, eHostKeyError, eHostKeyMismatch, eHostKeyUnknown, eChannelOpenFailed,
    eChannelRequestFailed, eClosed;
static VALUE error_classes[16]; /* indexed by -code */
static ID id_call, id_fill, id_send_pending, id_pending_write, id_respond_to, id_closed_p, id_fileno,
    id_to_io, id_print, id_code, id_reason, id_default_listener, id_force_encoding, id_new, id_aset;
static VALUE sym_stdout, sym_stderr, sym_sent, sym_exit_code, sym_exit_signal;

/* ------------------------------------------------------------------ errors */

static VALUE error_class_for(int code, const char *msg) {
  if (code == EVSSH_EHOSTKEY) {
    if (msg && (strstr(msg, "does not match") || strstr(msg, "another type") || strstr(msg, "revoked")))
      return eHostKeyMismatch;
    if (msg && (strstr(msg, "not known") || strstr(msg, "unknown"))) return eHostKeyUnknown;
    return eHostKeyError;
  }
  int i = -code;
  if (i > 0 && i < (int)(sizeof error_classes / sizeof error_classes[0]) && error_classes[i])
    return error_classes[i];
  return eError;
}

static VALUE make_error(int code, const char *msg) {
  if (!msg || !*msg) msg = evssh_strerror(code);
  VALUE e = rb_exc_new_cstr(error_class_for(code, msg), msg);
  rb_ivar_set(e, rb_intern("@code"), INT2FIX(code));
  return e;
}

NORETURN(static void raise_code(int code, const char *msg));
static void raise_code(int code, const char *msg) { rb_exc_raise(make_error(code, msg)); }

/* ----------------------------------------------------------------- buffers */

typedef struct rbuf {
  VALUE str;
  long pos;
} rbuf;

static void buf_mark(void *p) { rb_gc_mark(((rbuf *)p)->str); }
static size_t buf_memsize(const void *p) { return sizeof(rbuf); }
static const rb_data_type_t buf_type = {"EvSSH::Buffer", {buf_mark, RUBY_TYPED_DEFAULT_FREE, buf_memsize, NULL, {NULL}},
                                        0, 0, RUBY_TYPED_FREE_IMMEDIATELY};

static VALUE buf_alloc(VALUE klass) {
  rbuf *b;
  VALUE obj = TypedData_Make_Struct(klass, rbuf, &buf_type, b);
  b->str = rb_str_buf_new(0);
  b->pos = 0;
  return obj;
}

static rbuf *get_buf(VALUE self) { return rb_check_typeddata(self, &buf_type); }

static VALUE buf_new_from(const void *p, size_t n) {
  VALUE obj = buf_alloc(cBuffer);
  get_buf(obj)->str = rb_str_new(p, (long)n);
  return obj;
}

static VALUE buf_initialize(int argc, VALUE *argv, VALUE self) {
  VALUE content;
  rb_scan_args(argc, argv, "01", &content);
  rbuf *b = get_buf(self);
  b->str = NIL_P(content) ? rb_str_buf_new(0) : rb_str_dup(StringValue(content));
  rb_enc_associate(b->str, rb_ascii8bit_encoding());
  b->pos = 0;
  return self;
}

/* A reader over the unread part; commit writes the position back. */
static evssh_reader buf_reader(rbuf *b) {
  evssh_reader r;
  long len = RSTRING_LEN(b->str);
  if (b->pos > len) b->pos = len;
  r.p = (const unsigned char *)RSTRING_PTR(b->str) + b->pos;
  r.left = (size_t)(len - b->pos);
  return r;
}
static void buf_commit(rbuf *b, const evssh_reader *r) { b->pos = RSTRING_LEN(b->str) - (long)r->left; }

static VALUE buf_read_byte(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  uint8_t v;
  if (evssh_read_u8(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return INT2FIX(v);
}
static VALUE buf_read_bool(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  bool v;
  if (evssh_read_bool(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return v ? Qtrue : Qfalse;
}
static VALUE buf_read_long(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  uint32_t v;
  if (evssh_read_u32(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return UINT2NUM(v);
}
static VALUE buf_read_int64(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  uint64_t v;
  if (evssh_read_u64(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return ULL2NUM(v);
}
static VALUE buf_read_string(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  const char *p;
  size_t n;
  if (evssh_read_string(&r, &p, &n)) return Qnil;
  VALUE s = rb_str_new(p, (long)n);
  buf_commit(b, &r);
  return s;
}
static VALUE buf_read(int argc, VALUE *argv, VALUE self) {
  VALUE count;
  rb_scan_args(argc, argv, "01", &count);
  rbuf *b = get_buf(self);
  long len = RSTRING_LEN(b->str);
  if (b->pos > len) b->pos = len;
  long n = NIL_P(count) ? len - b->pos : NUM2LONG(count);
  if (n < 0) rb_raise(rb_eArgError, "negative count");
  if (n > len - b->pos) n = len - b->pos;
  VALUE s = rb_str_substr(b->str, b->pos, n);
  b->pos += n;
  return s;
}
static VALUE buf_read_bang(int argc, VALUE *argv, VALUE self) {
  VALUE count;
  rb_scan_args(argc, argv, "01", &count);
  rbuf *b = get_buf(self);
  if (!NIL_P(count) && NUM2LONG(count) > RSTRING_LEN(b->str) - b->pos) return Qnil;
  VALUE s = buf_read(argc, argv, self);
  return s;
}
static VALUE buf_to_s(VALUE self) { return rb_str_dup(get_buf(self)->str); }
static VALUE buf_length(VALUE self) { return LONG2NUM(RSTRING_LEN(get_buf(self)->str)); }
static VALUE buf_available(VALUE self) {
  rbuf *b = get_buf(self);
  long n = RSTRING_LEN(b->str) - b->pos;
  return LONG2NUM(n < 0 ? 0 : n);
}
static VALUE buf_position(VALUE self) { return LONG2NUM(get_buf(self)->pos); }
static VALUE buf_set_position(VALUE self, VALUE pos) {
  rbuf *b = get_buf(self);
  long p = NUM2LONG(pos);
  if (p < 0) p = 0;
  if (p > RSTRING_LEN(b->str)) p = RSTRING_LEN(b->str);
  b->pos = p;
  return pos;
}
static VALUE buf_eof_p(VALUE self) {
  rbuf *b = get_buf(self);
  return b->pos >= RSTRING_LEN(b->str) ? Qtrue : Qfalse;
}
static VALUE buf_reset(VALUE self) {
  get_buf(self)->pos = 0;
  return self;
}
static VALUE buf_clear(VALUE self) {
  rbuf *b = get_buf(self);
  rb_str_set_len(b->str, 0);
  b->pos = 0;
  return self;
}
/* drop what has been read (or the first n bytes) */
static VALUE buf_consume(int argc, VALUE *argv, VALUE self) {
  VALUE count;
  rb_scan_args(argc, argv, "01", &count);
  rbuf *b = get_buf(self);
  long len = RSTRING_LEN(b->str);
  long n = NIL_P(count) ? b->pos : NUM2LONG(count);
  if (n <= 0) return self;
  if (n >= len) {
    b->str = rb_str_buf_new(0);
    b->pos = 0;
    return self;
  }
  b->str = rb_str_substr(b->str, n, len - n);
  b->pos = b->pos > n ? b->pos - n : 0;
  return self;
}
static VALUE buf_append(VALUE self, VALUE text) {
  rbuf *b = get_buf(self);
  StringValue(text);
  rb_str_modify(b->str);
  rb_str_cat(b->str, RSTRING_PTR(text), RSTRING_LEN(text));
  return self;
}

/* Encode Net::SSH::Buffer.from-style (type, value) pairs with evssh_buf. */
static void put_value(evssh_buf *eb, VALUE type, VALUE v) {
  int rc = EVSSH_OK;
  ID t = SYM2ID(type);
  if (RB_TYPE_P(v, T_ARRAY)) {
    for (long i = 0; i < RARRAY_LEN(v); i++) put_value(eb, type, RARRAY_AREF(v, i));
    return;
  }
  if (t == rb_intern("byte")) {
    rc = evssh_buf_put_u8(eb, (uint8_t)NUM2UINT(v));
  } else if (t == rb_intern("bool")) {
    rc = evssh_buf_put_bool(eb, RTEST(v));
  } else if (t == rb_intern("long")) {
    rc = evssh_buf_put_u32(eb, (uint32_t)NUM2ULONG(v));
  } else if (t == rb_intern("int64")) {
    rc = evssh_buf_put_u64(eb, (uint64_t)NUM2ULL(v));
  } else if (t == rb_intern("string") || t == rb_intern("mstring")) {
    VALUE s = rb_obj_as_string(v);
    rc = evssh_buf_put_string(eb, RSTRING_PTR(s), (size_t)RSTRING_LEN(s));
  } else if (t == rb_intern("raw")) {
    VALUE s = rb_obj_as_string(v);
    const unsigned char *p = (const unsigned char *)RSTRING_PTR(s);
    for (long i = 0; rc == EVSSH_OK && i < RSTRING_LEN(s); i++) rc = evssh_buf_put_u8(eb, p[i]);
  } else {
    rb_raise(rb_eArgError, "unsupported buffer field type %" PRIsVALUE, type);
  }
  if (rc) raise_code(rc, "cannot encode buffer field");
}

struct encode_args {
  evssh_buf *eb;
  int argc;
  const VALUE *argv;
};

static VALUE encode_pairs_body(VALUE p) {
  struct encode_args *a = (struct encode_args *)p;
  if (a->argc % 2) rb_raise(rb_eArgError, "buffer fields come in (type, value) pairs");
  for (int i = 0; i < a->argc; i += 2) {
    Check_Type(a->argv[i], T_SYMBOL);
    put_value(a->eb, a->argv[i], a->argv[i + 1]);
  }
  return rb_str_new(evssh_buf_data(a->eb), (long)evssh_buf_len(a->eb));
}
static VALUE encode_pairs_free(VALUE p) {
  evssh_buf_free((evssh_buf *)p);
  return Qnil;
}

/* Returns a binary String holding the encoded fields. */
static VALUE encode_pairs(int argc, const VALUE *argv) {
  evssh_buf *eb = evssh_buf_new();
  if (!eb) rb_raise(rb_eNoMemError, "evssh_buf_new");
  struct encode_args a = {eb, argc, argv};
  return rb_ensure(encode_pairs_body, (VALUE)&a, encode_pairs_free, (VALUE)eb);
}

static VALUE buf_s_from(int argc, VALUE *argv, VALUE klass) {
  VALUE s = encode_pairs(argc, argv);
  VALUE obj = buf_alloc(klass);
  get_buf(obj)->str = s;
  return obj;
}

static VALUE buf_write_field(VALUE self, const char *type, VALUE v) {
  VALUE pair[2] = {ID2SYM(rb_intern(type)), v};
  return buf_append(self, encode_pairs(2, pair));
}
static VALUE buf_write(int argc, VALUE *argv, VALUE self) {
  for (int i = 0; i < argc; i++) buf_append(self, argv[i]);
  return self;
}
static VALUE buf_write_byte(VALUE self, VALUE v) { return buf_write_field(self, "byte", v); }
static VALUE buf_write_bool(VALUE self, VALUE v) { return buf_write_field(self, "bool", v); }
static VALUE buf_write_long(VALUE self, VALUE v) { return buf_write_field(self, "long", v); }
static VALUE buf_write_int64(VALUE self, VALUE v) { return buf_write_field(self, "int64", v); }
static VALUE buf_write_string(VALUE self, VALUE v) { return buf_write_field(self, "string", v); }

/* ---------------------------------------------------------------- wrappers */

typedef struct rsess rsess;

/* An evssh_multi shared by the EvSSH::Multi object and its member sessions:
   whichever the GC frees first must not touch the other, so each holds a
   reference; m is NULL once the multi itself is freed. */
typedef struct mholder {
  evssh_multi *m;
  int refs;
} mholder;

typedef struct rchan {
  evssh_channel *ch; /* NULL once detached (closed, refused) */
  rsess *rs;
  VALUE self, session;
  VALUE on_open, on_data, on_ext, on_eof, on_close, on_process, on_open_failed;
  VALUE requests;   /* type => block */
  VALUE pending;    /* token => reply block */
  VALUE properties; /* ch[:key] */
  VALUE exec_block; /* ssh.exec's block, or nil */
  VALUE result;     /* exec!'s collected output, or nil */
  VALUE status;     /* exec(status: {}) hash, or nil */
  VALUE type;
  VALUE exit_signal;
  int exec_mode;    /* EXEC_NONE, ... */
  uint32_t id;
  bool has_exit_status, eof_received, close_requested;
  int exit_status;
} rchan;

enum { EXEC_NONE = 0, EXEC_BLOCK, EXEC_COLLECT, EXEC_PRINT };

typedef struct open_type {
  struct open_type *next;
  char name[];
} open_type;

struct rsess {
  evssh_session *s;
  VALUE self;
  VALUE host;
  VALUE channels;        /* live Channel => true */
  VALUE pending;         /* token => global reply block */
  VALUE global_handlers; /* type => block */
  VALUE open_handlers;   /* type => block */
  VALUE listeners;       /* fd => [io, block, events] */
  VALUE properties;      /* ssh[:key] */
  VALUE exc;             /* first exception raised by a callback */
  VALUE error;           /* message of a failed connect (Multi) */
  open_type *open_types; /* names handed to C as on_open_channel ud */
  mholder *multi;        /* the C multi this session is a member of */
  char *passphrase;      /* passphrase: for encrypted key files, wiped on free */
  int jump;              /* pending non-exception jump from a callback */
  int depth;             /* callbacks currently on the stack */
  unsigned long token;
  int connect_status;
  bool connect_done, connecting;
  bool dead;
};

static void sess_mark(void *p) {
  rsess *rs = p;
  rb_gc_mark(rs->host);
  rb_gc_mark(rs->channels);
  rb_gc_mark(rs->pending);
  rb_gc_mark(rs->global_handlers);
  rb_gc_mark(rs->open_handlers);
  rb_gc_mark(rs->listeners);
  rb_gc_mark(rs->properties);
  rb_gc_mark(rs->exc);
  rb_gc_mark(rs->error);
}

static void free_open_types(rsess *rs) {
  while (rs->open_types) {
    open_type *t = rs->open_types;
    rs->open_types = t->next;
    free(t);
  }
}

/* Leave the C multi before the C session goes away. */
static void multi_leave(rsess *rs) {
  mholder *h = rs->multi;
  if (!h) return;
#ifdef HAVE_EVSSH_MULTI_NEW
  if (h->m && rs->s) evssh_multi_remove(h->m, rs->s);
#endif
  rs->multi = NULL;
  if (--h->refs == 0) free(h);
}

static void wipe_passphrase(rsess *rs) {
  if (!rs->passphrase) return;
  volatile char *p = rs->passphrase;
  while (*p) *p++ = 0;
  free(rs->passphrase);
  rs->passphrase = NULL;
}

static void sess_free(void *p) {
  rsess *rs = p;
  multi_leave(rs);
  wipe_passphrase(rs);
  /* from here on no trampoline touches Ruby: channel wrappers may already
     be gone in this same GC sweep */
  rs->dead = true;
  if (rs->s) evssh_session_free(rs->s);
  rs->s = NULL;
  free_open_types(rs);
  xfree(rs);
}

static size_t sess_memsize(const void *p) { return sizeof(rsess); }

static const rb_data_type_t sess_type = {"EvSSH::Session", {sess_mark, sess_free, sess_memsize, NULL, {NULL}}, 0, 0, 0};

static void chan_mark(void *p) {
  rchan *c = p;
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
}

static size_t chan_memsize(const void *p) { return sizeof(rchan); }

/* A channel wrapper is only collected after it was detached or together with
   its session (which then frees the C channel): nothing to release here. */
static const rb_data_type_t chan_type = {"EvSSH::Channel", {chan_mark, RUBY_TYPED_DEFAULT_FREE, chan_memsize, NULL, {NULL}},
                                         0, 0, 0};

static VALUE sess_alloc(VALUE klass) {
  rsess *rs;
  VALUE obj = TypedData_Make_Struct(klass, rsess, &sess_type, rs);
  rs->self = obj;
  rs->host = Qnil;
  rs->channels = rb_hash_new();
  rs->pending = rb_hash_new();
  rs->global_handlers = rb_hash_new();
  rs->open_handlers = rb_hash_new();
  rs->listeners = rb_hash_new();
  rs->properties = rb_hash_new();
  rs->exc = Qnil;
  rs->error = Qnil;
  return obj;
}

static rsess *get_rs(VALUE self) { return rb_check_typeddata(self, &sess_type); }

static rsess *open_rs(VALUE self) {
  rsess *rs = get_rs(self);
  if (!rs->s) rb_raise(eClosed, "session closed");
  return rs;
}

static VALUE chan_alloc(VALUE klass) {
  rchan *c;
  VALUE obj = TypedData_Make_Struct(klass, rchan, &chan_type, c);
  c->self = obj;
  c->session = Qnil;
  c->on_open = c->on_data = c->on_ext = c->on_eof = c->on_close = c->on_process = c->on_open_failed = Qnil;
  c->requests = rb_hash_new();
  c->pending = rb_hash_new();
  c->properties = rb_hash_new();
  c->exec_block = c->result = c->status = c->type = c->exit_signal = Qnil;
  c->exit_status = -1;
  return obj;
}

static rchan *get_rc(VALUE self) { return rb_check_typeddata(self, &chan_type); }

static rchan *open_rc(VALUE self) {
  rchan *c = get_rc(self);
  if (!c->ch) rb_raise(eClosed, "channel %u is closed", c->id);
  return c;
}

/* The wrapper of a C session, or NULL once it is being torn down. */
static rsess *live_rs(evssh_session *s) {
  rsess *rs = s ? evssh_session_property(s, RB_KEY) : NULL;
  return rs && !rs->dead ? rs : NULL;
}

/* ------------------------------------------------------ calling Ruby blocks */

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
static VALUE guarded_send(rsess *rs, VALUE recv, ID mid, int argc, const VALUE *argv, VALUE expected,
                          VALUE *caught) {
  if (NIL_P(recv) || rs->jump) return Qundef;
  struct call_args a = {recv, mid, argc, argv};
  int state = 0;
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

static VALUE guarded_call(rsess *rs, VALUE proc, int argc, const VALUE *argv) {
  return guarded_send(rs, proc, id_call, argc, argv, Qnil, NULL);
}

/* Re-raise what a callback raised, now that C has returned. */
static void raise_pending(rsess *rs) {
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

/* ----------------------------------------------------- channel trampolines */

static void detach(rchan *c);

static rsess *chan_rs(evssh_channel *ch) { return live_rs(evssh_channel_session(ch)); }

static void t_on_open(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  VALUE argv[1] = {c->self};
  guarded_call(rs, c->on_open, 1, argv);
}

static void t_on_data(evssh_channel *ch, const char *data, size_t len, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  if (NIL_P(c->on_data)) return;
  VALUE argv[2] = {c->self, rb_str_new(data, (long)len)};
  guarded_call(rs, c->on_data, 2, argv);
}

static void t_on_ext(evssh_channel *ch, uint32_t type, const char *data, size_t len, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  if (NIL_P(c->on_ext)) return;
  VALUE argv[3] = {c->self, UINT2NUM(type), rb_str_new(data, (long)len)};
  guarded_call(rs, c->on_ext, 3, argv);
}

static void t_on_eof(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  c->eof_received = true;
  VALUE argv[1] = {c->self};
  guarded_call(rs, c->on_eof, 1, argv);
}

static void t_on_process(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  VALUE argv[1] = {c->self};
  guarded_call(rs, c->on_process, 1, argv);
}

/* Keep what the channel leaves behind (exit status) before C frees it. */
static void record_exit(rchan *c) {
  int st;
  const char *sig;
  if (!c->ch) return;
  if (evssh_channel_exit_status(c->ch, &st) == EVSSH_OK) {
    c->has_exit_status = true;
    c->exit_status = st;
  }
  if (evssh_channel_exit_signal(c->ch, &sig) == EVSSH_OK && sig) c->exit_signal = rb_str_new_cstr(sig);
  if (!NIL_P(c->status) && RB_TYPE_P(c->status, T_HASH)) {
    if (c->has_exit_status) rb_hash_aset(c->status, sym_exit_code, INT2FIX(c->exit_status));
    if (!NIL_P(c->exit_signal)) rb_hash_aset(c->status, sym_exit_signal, c->exit_signal);
  }
}

static void t_on_close(evssh_channel *ch, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  record_exit(c);
  VALUE argv[1] = {c->self};
  guarded_call(rs, c->on_close, 1, argv);
  detach(c);
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
      VALUE e = rb_exc_new_str(eChannelOpenFailed, rb_sprintf("%" PRIsVALUE " (%u)", d, reason));
      rb_ivar_set(e, rb_intern("@code"), UINT2NUM(reason));
      rb_ivar_set(e, rb_intern("@reason"), d);
      rs->exc = e;
    }
  } else {
    VALUE argv[3] = {c->self, UINT2NUM(reason), d};
    guarded_call(rs, c->on_open_failed, 3, argv);
  }
  detach(c);
}

static void t_chan_reply(evssh_channel *ch, bool ok, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = evssh_channel_property(ch, RB_KEY);
  if (!c) return;
  VALUE blk = rb_hash_delete(c->pending, ULONG2NUM((unsigned long)(uintptr_t)ud));
  VALUE argv[2] = {c->self, ok ? Qtrue : Qfalse};
  guarded_call(rs, blk, 2, argv);
}

static int t_chan_request(evssh_channel *ch, const char *type, evssh_reader *data, bool want_reply, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return EVSSH_REPLY_FAILURE;
  rchan *c = ud;
  VALUE blk = rb_hash_aref(c->requests, rb_str_new_cstr(type));
  if (NIL_P(blk)) return EVSSH_REPLY_FAILURE;
  VALUE argv[2] = {c->self, buf_new_from(data->p, data->left)};
  VALUE caught = Qnil;
  VALUE r = guarded_send(rs, blk, id_call, 2, argv, eChannelRequestFailed, &caught);
  if (r == Qundef) return EVSSH_REPLY_FAILURE;
  return EVSSH_REPLY_SUCCESS;
}

static void t_exec(evssh_channel *ch, evssh_stream stream, const char *data, size_t len, void *ud) {
  rsess *rs = chan_rs(ch);
  if (!rs) return;
  rchan *c = ud;
  switch (c->exec_mode) {
  case EXEC_COLLECT:
    rb_str_cat(c->result, data, (long)len);
    break;
  case EXEC_BLOCK: {
    VALUE argv[3] = {c->self, stream == EVSSH_STDOUT ? sym_stdout : sym_stderr, rb_str_new(data, (long)len)};
    guarded_call(rs, c->exec_block, 3, argv);
    break;
  }
  default: {
    VALUE io = stream == EVSSH_STDOUT ? rb_gv_get("$stdout") : rb_gv_get("$stderr");
    VALUE argv[1] = {rb_str_new(data, (long)len)};
    guarded_send(rs, io, id_print, 1, argv, Qnil, NULL);
  }
  }
}

/* Bind a wrapper to its C channel: from now on C reaches it through the
   callbacks below, and the session keeps it (and its blocks) alive. */
static void attach(rsess *rs, rchan *c, evssh_channel *ch, bool own_data) {
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
static void detach(rchan *c) {
  evssh_channel *ch = c->ch;
  if (!ch) return;
  evssh_channel_set_property(ch, RB_KEY, NULL);
  evssh_channel_on_data(ch, NULL, NULL);
  evssh_channel_on_extended_data(ch, NULL, NULL);
  evssh_channel_on_eof(ch, NULL, NULL);
  evssh_channel_on_close(ch, NULL, NULL);
  evssh_channel_on_open_failed(ch, NULL, NULL);
  evssh_channel_on_process(ch, NULL, NULL);
  c->ch = NULL;
  c->pending = rb_hash_new();
  if (c->rs && !c->rs->dead) rb_hash_delete(c->rs->channels, c->self);
}

/* ----------------------------------------------------- session trampolines */

static void t_global_reply(evssh_session *s, bool ok, evssh_reader *response, void *ud) {
  rsess *rs = live_rs(s);
  if (!rs) return;
  VALUE blk = rb_hash_delete(rs->pending, ULONG2NUM((unsigned long)(uintptr_t)ud));
  if (NIL_P(blk)) return;
  VALUE argv[2] = {ok ? Qtrue : Qfalse, buf_new_from(response ? response->p : NULL, response ? response->left : 0)};
  guarded_call(rs, blk, 2, argv);
}

static int t_global_request(evssh_session *s, const char *type, evssh_reader *data, bool want_reply, void *ud) {
  rsess *rs = live_rs(s);
  if (!rs) return EVSSH_REPLY_FAILURE;
  VALUE blk = rb_hash_aref(rs->global_handlers, rb_str_new_cstr(type));
  if (NIL_P(blk)) return EVSSH_REPLY_FAILURE;
  VALUE argv[2] = {buf_new_from(data->p, data->left), want_reply ? Qtrue : Qfalse};
  VALUE r = guarded_call(rs, blk, 2, argv);
  if (r == sym_sent) return EVSSH_REPLY_SENT;
  return r == Qtrue ? EVSSH_REPLY_SUCCESS : EVSSH_REPLY_FAILURE;
}

static int t_open_channel(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  rsess *rs = live_rs(s);
  if (!rs) return 2;
  const open_type *t = ud;
  VALUE type = rb_str_new_cstr(t->name);
  VALUE blk = rb_hash_aref(rs->open_handlers, type);
  if (NIL_P(blk)) return 3;
  VALUE obj = chan_alloc(cChannel);
  rchan *c = get_rc(obj);
  c->type = type;
  attach(rs, c, ch, true);
  evssh_channel_on_process(ch, t_on_process, c);
  VALUE argv[3] = {rs->self, obj, buf_new_from(data->p, data->left)};
  VALUE caught = Qnil;
  VALUE r = guarded_send(rs, blk, id_call, 3, argv, eChannelOpenFailed, &caught);
  if (r != Qundef) return 0;
  int code = 2;
  if (!NIL_P(caught)) {
    VALUE v = rb_attr_get(caught, rb_intern("@code"));
    if (FIXNUM_P(v) && FIX2INT(v) > 0) code = FIX2INT(v);
  }
  detach(c); /* C retires a refused channel without on_close */
  return code;
}

static void t_listen(evssh_session *s, int fd, int events, void *ud) {
  rsess *rs = live_rs(s);
  if (!rs) return;
  VALUE entry = rb_hash_aref(rs->listeners, INT2FIX(fd));
  if (NIL_P(entry)) return;
  VALUE io = RARRAY_AREF(entry, 0), blk = RARRAY_AREF(entry, 1);
  if (events & EVSSH_READ) {
    VALUE argv[1] = {io};
    if (NIL_P(blk))
      guarded_send(rs, rs->self, id_default_listener, 1, argv, Qnil, NULL);
    else
      guarded_call(rs, blk, 1, argv);
  }
  if ((events & EVSSH_WRITE) && rb_respond_to(io, id_send_pending))
    guarded_send(rs, io, id_send_pending, 0, NULL, Qnil, NULL);
}

static void t_connected(evssh_session *s, int status, void *ud) {
  rsess *rs = ud;
  rs->connect_done = true;
  rs->connect_status = status;
}

/* ---------------------------------------------------------------- waiting */

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

/* Tell C which listen_to IOs want writing now (Net::SSH asks pending_write?). */
static int refresh_one(VALUE fd, VALUE entry, VALUE arg) {
  rsess *rs = (rsess *)arg;
  VALUE io = RARRAY_AREF(entry, 0);
  /* an IO closed behind our back: its fd number may already be reused */
  if (rb_respond_to(io, id_closed_p) && RTEST(rb_funcall(io, id_closed_p, 0))) {
    evssh_session_stop_listening_to(rs->s, FIX2INT(fd));
    return ST_DELETE;
  }
  int want = EVSSH_READ;
  if (rb_respond_to(io, id_pending_write) && RTEST(rb_funcall(io, id_pending_write, 0))) want |= EVSSH_WRITE;
  if (FIX2INT(RARRAY_AREF(entry, 2)) != want) {
    rb_ary_store(entry, 2, INT2FIX(want));
    evssh_session_listen_to(rs->s, FIX2INT(fd), want, t_listen, NULL);
  }
  return ST_CONTINUE;
}
static void refresh_listeners(rsess *rs) {
  if (rs->s && RHASH_SIZE(rs->listeners) > 0) rb_hash_foreach(rs->listeners, refresh_one, (VALUE)rs);
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

/* Sleep without the GVL until one of the sessions (or a listened IO) is
   ready or wait_ms (-1: no limit) passes; each session's own timers bound
   the sleep. revents[i] receives session i's ready events. */
static void wait_ready(rsess **rss, size_t count, int wait_ms, int *revents) {
  size_t cap = count;
  int timeout = wait_ms;
  for (size_t i = 0; i < count; i++) {
    revents[i] = 0;
    if (!rss[i]->s) continue;
    cap += (size_t)RHASH_SIZE(rss[i]->listeners);
    int t = evssh_session_timeout(rss[i]->s);
    if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
  }
  VALUE tmp, tmp_owner;
  struct pollfd *fds = ALLOCV_N(struct pollfd, tmp, cap ? cap : 1);
  int *owner = ALLOCV_N(int, tmp_owner, cap ? cap : 1);
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (!rss[i]->s) continue;
    int fd = evssh_session_fd(rss[i]->s);
    if (fd >= 0) {
      fds[n].fd = fd;
      fds[n].events = to_poll(evssh_session_events(rss[i]->s));
      fds[n].revents = 0;
      owner[n++] = (int)i;
    }
    struct collect_fds cf = {fds + n, 0, cap - n};
    if (RHASH_SIZE(rss[i]->listeners) > 0) rb_hash_foreach(rss[i]->listeners, collect_one, (VALUE)&cf);
    for (size_t k = 0; k < cf.n; k++) owner[n + k] = -1;
    n += cf.n;
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
    for (size_t k = 0; k < n; k++)
      if (owner[k] >= 0 && fds[k].revents) revents[owner[k]] |= from_poll(fds[k].revents);
  }
  ALLOCV_END(tmp);
  ALLOCV_END(tmp_owner);
  if (a.ret < 0 && a.err == EINTR) rb_thread_check_ints();
}

static int wait_ms_of(VALUE wait) {
  if (NIL_P(wait)) return -1;
  double secs = NUM2DBL(wait);
  if (secs <= 0) return 0;
  if (secs * 1000.0 > INT_MAX) return INT_MAX;
  return (int)ceil(secs * 1000.0);
}

static void raise_session(rsess *rs, int rc) {
  const char *msg = rs->s ? evssh_session_error(rs->s) : "";
  raise_code(rc, msg);
}

static void check_not_nested(rsess *rs) {
  if (rs->depth > 0)
    raise_code(EVSSH_EBUSY, "the event loop cannot be entered from inside one of its callbacks");
}

/* The part of an iteration that runs with the GVL: what is buffered, on_process,
   non-blocking I/O and listen_to dispatch. */
static void step(rsess *rs) {
  refresh_listeners(rs);
  int rc = evssh_session_process(rs->s, 0, NULL, NULL);
  raise_pending(rs);
  if (rc < 0) raise_session(rs, rc);
}

/* After a wait: read and dispatch what arrived on the session fd. */
static void after_wait(rsess *rs, int revents) {
  if (!revents || !rs->s) return;
  int rc = evssh_session_handle_events(rs->s, revents);
  raise_pending(rs);
  if (rc < 0) raise_session(rs, rc);
}

/* The loop's condition: a Ruby block (cond) or a C predicate (pred). */
typedef bool (*loop_pred)(void *arg);

static bool ask(VALUE cond, loop_pred pred, void *arg, VALUE self) {
  if (pred) return pred(arg);
  return NIL_P(cond) || RTEST(rb_funcall(cond, id_call, 1, self));
}

/* One Net::SSH process iteration; false when the condition said stop. The
   condition is asked again after the GVL part, so a wait never starts once
   what the caller waits for has happened. */
static bool process_once(rsess *rs, int wait_ms, VALUE cond, loop_pred pred, void *arg) {
  if (!ask(cond, pred, arg, rs->self)) return false;
  if (!rs->s) rb_raise(eClosed, "session closed");
  step(rs);
  if (!ask(cond, pred, arg, rs->self)) return false;
  refresh_listeners(rs);
  int revents;
  wait_ready(&rs, 1, wait_ms, &revents);
  after_wait(rs, revents);
  return true;
}

/* ---------------------------------------------------------------- sessions */

static VALUE sess_initialize(VALUE self, VALUE host) {
  rsess *rs = get_rs(self);
  StringValue(host);
  if (rs->s) rb_raise(rb_eRuntimeError, "session already initialized");
  rs->s = evssh_session_new(StringValueCStr(host));
  if (!rs->s) raise_code(EVSSH_EINVAL, "cannot create session (empty host?)");
  rs->host = rb_str_new_frozen(host);
  evssh_session_set_property(rs->s, RB_KEY, rs);
  return self;
}

static VALUE sess_option(VALUE self, VALUE kw, VALUE val) {
  rsess *rs = open_rs(self);
  VALUE k = rb_obj_as_string(kw), v = rb_obj_as_string(val);
  int rc = evssh_session_option(rs->s, StringValueCStr(k), StringValueCStr(v));
  if (rc) raise_code(rc, evssh_session_error(rs->s));
  return self;
}

static VALUE sess_read_config(VALUE self, VALUE path) {
  rsess *rs = open_rs(self);
  int rc = evssh_session_read_config(rs->s, NIL_P(path) ? NULL : StringValueCStr(path));
  if (rc) raise_code(rc, evssh_session_error(rs->s));
  return self;
}

/* Answers libevssh's key passphrase prompts from the passphrase: option, as
   Net::SSH does, without running Ruby; any other prompt is declined. */
static int t_prompt(evssh_session *s, const char *prompt, bool echo, char *answer, size_t size, void *ud) {
  rsess *rs = ud;
  if (!rs->passphrase || !prompt || !strstr(prompt, "passphrase")) return -1;
  size_t n = strlen(rs->passphrase);
  if (n + 1 > size) return -1;
  memcpy(answer, rs->passphrase, n + 1);
  return 0;
}

static VALUE sess_set_passphrase(VALUE self, VALUE pw) {
  rsess *rs = open_rs(self);
  wipe_passphrase(rs);
  if (NIL_P(pw)) {
    evssh_session_set_prompt(rs->s, NULL, NULL);
    return pw;
  }
  const char *p = StringValueCStr(pw);
  rs->passphrase = strdup(p);
  if (!rs->passphrase) rb_raise(rb_eNoMemError, "passphrase");
  evssh_session_set_prompt(rs->s, t_prompt, rs);
  return pw;
}

/* libevssh's own log on stderr at this level (EVSSH_LOG_*), 0 for none */
static VALUE sess_set_log_level(VALUE self, VALUE level) {
  rsess *rs = open_rs(self);
  evssh_session_set_log(rs->s, NUM2INT(level), NULL, NULL);
  return level;
}

static VALUE sess_set_password(VALUE self, VALUE pw) {
  rsess *rs = open_rs(self);
  int rc = evssh_session_set_password(rs->s, NIL_P(pw) ? NULL : StringValueCStr(pw));
  if (rc) raise_code(rc, "cannot set password");
  return pw;
}

/* Start connecting without blocking (Multi drives it). */
static VALUE sess_connect_async(VALUE self) {
  rsess *rs = open_rs(self);
  rs->connect_done = false;
  rs->connecting = true;
  int rc = evssh_session_connect_async(rs->s, t_connected, rs);
  if (rc && !rs->connect_done) {
    rs->connect_done = true;
    rs->connect_status = rc;
  }
  return self;
}

/* nil while connecting, true when ready, false when it failed (see #error) */
static VALUE sess_connect_state(VALUE self) {
  rsess *rs = get_rs(self);
  if (!rs->connect_done) return Qnil;
  return rs->connect_status == EVSSH_OK ? Qtrue : Qfalse;
}

static VALUE sess_connect_error(VALUE self) {
  rsess *rs = get_rs(self);
  if (!rs->connect_done || rs->connect_status == EVSSH_OK) return Qnil;
  return make_error(rs->connect_status, rs->s ? evssh_session_error(rs->s) : "");
}

/* Blocking connect, with the GVL released while waiting for the network. */
static VALUE sess_connect(VALUE self) {
  rsess *rs = open_rs(self);
  sess_connect_async(self);
  while (!rs->connect_done) {
    int revents;
    wait_ready(&rs, 1, -1, &revents);
    int rc = evssh_session_handle_events(rs->s, revents);
    if (rc < 0 && !rs->connect_done) {
      rs->connect_done = true;
      rs->connect_status = rc;
    }
  }
  rs->connecting = false;
  if (rs->connect_status != EVSSH_OK) {
    VALUE e = make_error(rs->connect_status, evssh_session_error(rs->s));
    multi_leave(rs);
    evssh_session_free(rs->s);
    rs->s = NULL;
    rb_exc_raise(e);
  }
  return self;
}

static VALUE sess_process(int argc, VALUE *argv, VALUE self) {
  VALUE wait, cond;
  rb_scan_args(argc, argv, "01&", &wait, &cond);
  rsess *rs = get_rs(self);
  check_not_nested(rs);
  return process_once(rs, wait_ms_of(wait), cond, NULL, NULL) ? Qtrue : Qfalse;
}

static VALUE busy_cond(RB_BLOCK_CALL_FUNC_ARGLIST(arg, self)) {
  rsess *rs = get_rs(self);
  return rs->s && evssh_session_busy(rs->s, false) ? Qtrue : Qfalse;
}

static VALUE sess_loop(int argc, VALUE *argv, VALUE self) {
  VALUE wait, cond;
  rb_scan_args(argc, argv, "01&", &wait, &cond);
  rsess *rs = get_rs(self);
  check_not_nested(rs);
  int ms = wait_ms_of(wait);
  if (NIL_P(cond)) cond = rb_proc_new(busy_cond, self);
  while (process_once(rs, ms, cond, NULL, NULL)) {
  }
  /* as Net::SSH: one last non-blocking pass sends what the last callbacks queued */
  if (rs->s && !evssh_session_closed(rs->s)) step(rs);
  return Qnil;
}

static VALUE sess_busy_p(int argc, VALUE *argv, VALUE self) {
  VALUE inv;
  rb_scan_args(argc, argv, "01", &inv);
  rsess *rs = get_rs(self);
  return rs->s && evssh_session_busy(rs->s, RTEST(inv)) ? Qtrue : Qfalse;
}

static VALUE sess_closed_p(VALUE self) {
  rsess *rs = get_rs(self);
  return !rs->s || evssh_session_closed(rs->s) ? Qtrue : Qfalse;
}

static VALUE sess_host(VALUE self) { return get_rs(self)->host; }

static VALUE sess_aref(VALUE self, VALUE key) { return rb_hash_aref(get_rs(self)->properties, key); }
static VALUE sess_aset(VALUE self, VALUE key, VALUE v) { return rb_hash_aset(get_rs(self)->properties, key, v); }
static VALUE sess_properties(VALUE self) { return get_rs(self)->properties; }
static VALUE sess_channels(VALUE self) { return rb_funcall(get_rs(self)->channels, rb_intern("keys"), 0); }

static VALUE sess_error_message(VALUE self) {
  rsess *rs = get_rs(self);
  if (!rs->s) return Qnil;
  const char *m = evssh_session_error(rs->s);
  return m && *m ? rb_str_new_cstr(m) : Qnil;
}

/* C part of close: the channels were asked to close and the loop ran in
   Ruby (with the GVL released); now disconnect and free. */
static VALUE sess_close_now(VALUE self) {
  rsess *rs = get_rs(self);
  if (!rs->s) return Qnil;
  /* freeing the session under one of its own callbacks would pull the
     ground from under the C dispatch that runs it */
  check_not_nested(rs);
  rs->depth++; /* callbacks of the last moment may run; no nested loops */
  evssh_session_close(rs->s);
  rs->depth--;
  /* anything C did not retire through on_close is cut loose now */
  VALUE chans = rb_funcall(rs->channels, rb_intern("keys"), 0);
  for (long i = 0; i < RARRAY_LEN(chans); i++) detach(get_rc(RARRAY_AREF(chans, i)));
  evssh_session *s = rs->s;
  multi_leave(rs);
  rs->dead = true;
  evssh_session_free(s);
  rs->s = NULL;
  rs->dead = false;
  rb_hash_clear(rs->pending);
  rb_hash_clear(rs->listeners);
  free_open_types(rs);
  raise_pending(rs);
  return Qnil;
}

static VALUE sess_fd(VALUE self) {
  rsess *rs = get_rs(self);
  return INT2FIX(rs->s ? evssh_session_fd(rs->s) : -1);
}

/* ------------------------------------------------------ channels from Ruby */

static VALUE new_channel(rsess *rs, VALUE type) {
  VALUE obj = chan_alloc(cChannel);
  rchan *c = get_rc(obj);
  c->rs = rs;
  c->session = rs->self;
  c->type = type;
  return obj;
}

static VALUE sess_open_channel(int argc, VALUE *argv, VALUE self) {
  VALUE type = Qnil, blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  rsess *rs = open_rs(self);
  if (argc > 0) type = rb_obj_as_string(argv[0]);
  VALUE extra = argc > 1 ? encode_pairs(argc - 1, argv + 1) : Qnil;
  VALUE obj = new_channel(rs, NIL_P(type) ? rb_str_new_cstr("session") : type);
  rchan *c = get_rc(obj);
  c->on_open = blk;
  evssh_channel *ch;
  if (NIL_P(type) && NIL_P(extra))
    ch = evssh_session_open_channel(rs->s, t_on_open, c);
  else
    ch = evssh_session_open_channel_type(rs->s, StringValueCStr(c->type), NIL_P(extra) ? NULL : RSTRING_PTR(extra),
                                         NIL_P(extra) ? 0 : (size_t)RSTRING_LEN(extra), t_on_open, c);
  if (!ch) raise_code(evssh_session_closed(rs->s) ? EVSSH_ECLOSED : EVSSH_ENOMEM, evssh_session_error(rs->s));
  attach(rs, c, ch, true);
  evssh_channel_on_process(ch, t_on_process, c);
  return obj;
}

/* exec(cmd, status: hash) { |ch, stream, data| }: evssh_session_exec. */
static VALUE start_exec(rsess *rs, VALUE cmd, VALUE status, VALUE blk, int mode) {
  StringValue(cmd);
  VALUE obj = new_channel(rs, rb_str_new_cstr("session"));
  rchan *c = get_rc(obj);
  c->exec_mode = mode;
  c->exec_block = blk;
  c->status = status;
  if (mode == EXEC_COLLECT) c->result = rb_str_buf_new(0);
  evssh_channel *ch = evssh_session_exec(rs->s, StringValueCStr(cmd), t_exec, c);
  if (!ch) raise_code(evssh_session_closed(rs->s) ? EVSSH_ECLOSED : EVSSH_ENOMEM, evssh_session_error(rs->s));
  attach(rs, c, ch, false);
  evssh_channel_on_process(ch, t_on_process, c);
  return obj;
}

static VALUE sess_exec(int argc, VALUE *argv, VALUE self) {
  VALUE cmd, opts, blk;
  rb_scan_args(argc, argv, "1:&", &cmd, &opts, &blk);
  rsess *rs = open_rs(self);
  VALUE status = NIL_P(opts) ? Qnil : rb_hash_aref(opts, ID2SYM(rb_intern("status")));
  return start_exec(rs, cmd, status, blk, NIL_P(blk) ? EXEC_PRINT : EXEC_BLOCK);
}

static bool channel_open(void *arg) { return ((rchan *)arg)->ch != NULL; }

static void wait_channel(rsess *rs, rchan *c) {
  check_not_nested(rs);
  while (process_once(rs, -1, Qnil, channel_open, c)) {
  }
}

/* exec!(cmd, status: nil) { |ch, stream, data| } -> String with #exitstatus */
static VALUE sess_exec_bang(int argc, VALUE *argv, VALUE self) {
  VALUE cmd, opts, blk;
  rb_scan_args(argc, argv, "1:&", &cmd, &opts, &blk);
  rsess *rs = open_rs(self);
  check_not_nested(rs);
  VALUE status = NIL_P(opts) ? Qnil : rb_hash_aref(opts, ID2SYM(rb_intern("status")));
  VALUE obj = start_exec(rs, cmd, status, blk, NIL_P(blk) ? EXEC_COLLECT : EXEC_BLOCK);
  rchan *c = get_rc(obj);
  wait_channel(rs, c);
  if (!NIL_P(blk)) {
    VALUE r = rb_hash_aref(c->properties, ID2SYM(rb_intern("result")));
    if (NIL_P(r)) return Qnil;
    c->result = r;
  }
  VALUE str = rb_funcall(c->result, id_force_encoding, 1, rb_str_new_cstr("UTF-8"));
  VALUE r = rb_funcall(cStringWithExitstatus, id_new, 3, str, c->has_exit_status ? INT2FIX(c->exit_status) : Qnil,
                       c->exit_signal);
  RB_GC_GUARD(obj);
  return r;
}

static VALUE sess_send_global_request(int argc, VALUE *argv, VALUE self) {
  rsess *rs = open_rs(self);
  if (argc < 1) rb_raise(rb_eArgError, "request type required");
  VALUE type = rb_obj_as_string(argv[0]);
  VALUE extra = argc > 1 ? encode_pairs(argc - 1, argv + 1) : Qnil;
  unsigned long token = 0;
  if (rb_block_given_p()) {
    token = ++rs->token;
    rb_hash_aset(rs->pending, ULONG2NUM(token), rb_block_proc());
  }
  int rc = evssh_session_send_global_request(rs->s, StringValueCStr(type), NIL_P(extra) ? NULL : RSTRING_PTR(extra),
                                             NIL_P(extra) ? 0 : (size_t)RSTRING_LEN(extra),
                                             token ? t_global_reply : NULL, (void *)(uintptr_t)token);
  if (rc) {
    if (token) rb_hash_delete(rs->pending, ULONG2NUM(token));
    raise_code(rc, evssh_session_error(rs->s));
  }
  return self;
}

static VALUE sess_on_global_request(VALUE self, VALUE type) {
  rsess *rs = open_rs(self);
  VALUE t = rb_str_new_frozen(rb_obj_as_string(type));
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  VALUE old = rb_hash_aref(rs->global_handlers, t);
  if (NIL_P(blk)) {
    rb_hash_delete(rs->global_handlers, t);
    evssh_session_on_global_request(rs->s, StringValueCStr(t), NULL, NULL);
  } else {
    rb_hash_aset(rs->global_handlers, t, blk);
    evssh_session_on_global_request(rs->s, StringValueCStr(t), t_global_request, NULL);
  }
  return old;
}

static VALUE sess_on_open_channel(VALUE self, VALUE type) {
  rsess *rs = open_rs(self);
  VALUE t = rb_str_new_frozen(rb_obj_as_string(type));
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  const char *name = StringValueCStr(t);
  if (NIL_P(blk)) {
    rb_hash_delete(rs->open_handlers, t);
    evssh_session_on_open_channel(rs->s, name, NULL, NULL);
    return Qnil;
  }
  open_type *ot = rs->open_types;
  while (ot && strcmp(ot->name, name) != 0) ot = ot->next;
  if (!ot) {
    size_t n = strlen(name) + 1;
    ot = malloc(sizeof *ot + n);
    if (!ot) rb_raise(rb_eNoMemError, "open_type");
    memcpy(ot->name, name, n);
    ot->next = rs->open_types;
    rs->open_types = ot;
  }
  rb_hash_aset(rs->open_handlers, t, blk);
  evssh_session_on_open_channel(rs->s, name, t_open_channel, ot);
  return Qnil;
}

static int io_fd(VALUE io) {
  VALUE o = rb_respond_to(io, id_to_io) ? rb_funcall(io, id_to_io, 0) : io;
  return NUM2INT(rb_funcall(o, id_fileno, 0));
}

static VALUE sess_listen_to(VALUE self, VALUE io) {
  rsess *rs = open_rs(self);
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  int fd = io_fd(io);
  int rc = evssh_session_listen_to(rs->s, fd, EVSSH_READ, t_listen, NULL);
  if (rc) raise_code(rc, "listen_to");
  rb_hash_aset(rs->listeners, INT2FIX(fd), rb_ary_new_from_args(3, io, blk, INT2FIX(EVSSH_READ)));
  return self;
}

static VALUE sess_stop_listening_to(VALUE self, VALUE io) {
  rsess *rs = get_rs(self);
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

/* ------------------------------------------------------------- channels */

static VALUE chan_set_cb(VALUE *slot) {
  *slot = rb_block_given_p() ? rb_block_proc() : Qnil;
  return Qnil;
}
static VALUE chan_on_data(VALUE self) {
  rchan *c = get_rc(self);
  chan_set_cb(&c->on_data);
  /* an exec channel starts with exec's own data handlers; this replaces them */
  if (c->ch) evssh_channel_on_data(c->ch, t_on_data, c);
  return self;
}
static VALUE chan_on_extended_data(VALUE self) {
  rchan *c = get_rc(self);
  chan_set_cb(&c->on_ext);
  if (c->ch) evssh_channel_on_extended_data(c->ch, t_on_ext, c);
  return self;
}
static VALUE chan_on_eof(VALUE self) {
  chan_set_cb(&get_rc(self)->on_eof);
  return self;
}
static VALUE chan_on_close(VALUE self) {
  chan_set_cb(&get_rc(self)->on_close);
  return self;
}
static VALUE chan_on_process(VALUE self) {
  chan_set_cb(&get_rc(self)->on_process);
  return self;
}
static VALUE chan_on_open_failed(VALUE self) {
  chan_set_cb(&get_rc(self)->on_open_failed);
  return self;
}
static VALUE chan_on_confirm(VALUE self) {
  chan_set_cb(&get_rc(self)->on_open);
  return self;
}

static VALUE chan_on_request(VALUE self, VALUE type) {
  rchan *c = get_rc(self);
  VALUE t = rb_str_new_frozen(rb_obj_as_string(type));
  VALUE blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  if (NIL_P(blk)) {
    rb_hash_delete(c->requests, t);
    if (c->ch) evssh_channel_on_request(c->ch, StringValueCStr(t), NULL, NULL);
  } else {
    rb_hash_aset(c->requests, t, blk);
    if (c->ch) evssh_channel_on_request(c->ch, StringValueCStr(t), t_chan_request, c);
  }
  return self;
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
  raise_code(rc, "channel request failed");
}

static VALUE chan_exec(VALUE self, VALUE cmd) {
  rchan *c = open_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_exec(c->ch, StringValueCStr(cmd), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_subsystem(VALUE self, VALUE name) {
  rchan *c = open_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_subsystem(c->ch, StringValueCStr(name), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_shell(VALUE self) {
  rchan *c = open_rc(self);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_shell(c->ch, tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_env(VALUE self, VALUE name, VALUE value) {
  rchan *c = open_rc(self);
  VALUE n = rb_obj_as_string(name), v = rb_obj_as_string(value);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_env(c->ch, StringValueCStr(n), StringValueCStr(v), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

/* request_pty(term: "xterm", chars_wide: 80, chars_high: 24) { |ch, ok| } */
static VALUE chan_request_pty(int argc, VALUE *argv, VALUE self) {
  VALUE opts;
  rb_scan_args(argc, argv, "0:", &opts);
  rchan *c = open_rc(self);
  VALUE term = Qnil, wide = Qnil, high = Qnil;
  if (!NIL_P(opts)) {
    term = rb_hash_aref(opts, ID2SYM(rb_intern("term")));
    wide = rb_hash_aref(opts, ID2SYM(rb_intern("chars_wide")));
    high = rb_hash_aref(opts, ID2SYM(rb_intern("chars_high")));
  }
  VALUE t = NIL_P(term) ? rb_str_new_cstr("xterm") : rb_obj_as_string(term);
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_request_pty(c->ch, StringValueCStr(t), NIL_P(wide) ? 80 : NUM2UINT(wide),
                                     NIL_P(high) ? 24 : NUM2UINT(high), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_send_channel_request(int argc, VALUE *argv, VALUE self) {
  rchan *c = open_rc(self);
  if (argc < 1) rb_raise(rb_eArgError, "request type required");
  VALUE type = rb_obj_as_string(argv[0]);
  VALUE extra = argc > 1 ? encode_pairs(argc - 1, argv + 1) : Qnil;
  void *tok = reply_token(c, rb_block_given_p() ? rb_block_proc() : Qnil);
  int rc = evssh_channel_send_request(c->ch, StringValueCStr(type), NIL_P(extra) ? NULL : RSTRING_PTR(extra),
                                      NIL_P(extra) ? 0 : (size_t)RSTRING_LEN(extra), tok ? t_chan_reply : NULL, tok);
  request_done(c, rc, tok);
  return self;
}

static VALUE chan_signal(VALUE self, VALUE name) {
  rchan *c = open_rc(self);
  int rc = evssh_channel_signal(c->ch, StringValueCStr(name));
  if (rc) raise_code(rc, "signal");
  return self;
}

static VALUE chan_send_data(VALUE self, VALUE data) {
  rchan *c = open_rc(self);
  StringValue(data);
  int rc = evssh_channel_send_data(c->ch, RSTRING_PTR(data), (size_t)RSTRING_LEN(data));
  if (rc) raise_code(rc, "send_data");
  return self;
}

static VALUE chan_send_extended_data(VALUE self, VALUE type, VALUE data) {
  rchan *c = open_rc(self);
  StringValue(data);
  int rc = evssh_channel_send_extended_data(c->ch, NUM2UINT(type), RSTRING_PTR(data), (size_t)RSTRING_LEN(data));
  if (rc) raise_code(rc, "send_extended_data");
  return self;
}

static VALUE chan_eof_bang(VALUE self) {
  rchan *c = open_rc(self);
  int rc = evssh_channel_eof(c->ch);
  if (rc) raise_code(rc, "eof!");
  return self;
}

static VALUE chan_close(VALUE self) {
  rchan *c = get_rc(self);
  if (!c->ch) return self;
  c->close_requested = true;
  int rc = evssh_channel_close(c->ch);
  if (rc && rc != EVSSH_ECLOSED) raise_code(rc, "close");
  return self;
}

static VALUE chan_wait(VALUE self) {
  rchan *c = get_rc(self);
  if (!c->ch) return self;
  wait_channel(c->rs, c);
  return self;
}

static VALUE chan_active_p(VALUE self) {
  rchan *c = get_rc(self);
  return c->ch && evssh_channel_active(c->ch) ? Qtrue : Qfalse;
}
static VALUE chan_closed_p(VALUE self) { return get_rc(self)->ch ? Qfalse : Qtrue; }
static VALUE chan_closing_p(VALUE self) {
  rchan *c = get_rc(self);
  return !c->ch || c->close_requested ? Qtrue : Qfalse;
}
static VALUE chan_eof_p(VALUE self) {
  rchan *c = get_rc(self);
  return c->eof_received || (c->ch && evssh_channel_eof_received(c->ch)) ? Qtrue : Qfalse;
}
static VALUE chan_local_id(VALUE self) { return UINT2NUM(get_rc(self)->id); }
static VALUE chan_type_m(VALUE self) { return get_rc(self)->type; }
static VALUE chan_session(VALUE self) { return get_rc(self)->session; }
static VALUE chan_properties(VALUE self) { return get_rc(self)->properties; }
static VALUE chan_aref(VALUE self, VALUE key) { return rb_hash_aref(get_rc(self)->properties, key); }

/* mirrored into the C channel too, so library-level keys (:invisible) act */
static VALUE chan_aset(VALUE self, VALUE key, VALUE v) {
  rchan *c = get_rc(self);
  rb_hash_aset(c->properties, key, v);
  if (c->ch) {
    VALUE k = rb_obj_as_string(key);
    evssh_channel_set_property(c->ch, StringValueCStr(k), RTEST(v) ? (void *)c : NULL);
  }
  return v;
}

static VALUE chan_exit_status(VALUE self) {
  rchan *c = get_rc(self);
  int st;
  if (c->ch && evssh_channel_exit_status(c->ch, &st) == EVSSH_OK) return INT2FIX(st);
  return c->has_exit_status ? INT2FIX(c->exit_status) : Qnil;
}
static VALUE chan_exit_signal(VALUE self) {
  rchan *c = get_rc(self);
  const char *sig;
  if (c->ch && evssh_channel_exit_signal(c->ch, &sig) == EVSSH_OK && sig) return rb_str_new_cstr(sig);
  return c->exit_signal;
}

/* ------------------------------------------------------------------ Multi */

/* One Multi iteration over many sessions: each runs its GVL part, then one
   poll without the GVL covers them all, then each handles its events.
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
    rsess *rs = get_rs(RARRAY_AREF(sessions, i));
    check_not_nested(rs);
    if (!rs->s) continue;
    if (rs->connect_done && rs->connect_status == EVSSH_OK) {
      refresh_listeners(rs);
      int rc = evssh_session_process(rs->s, 0, NULL, NULL);
      if (rs->jump || !NIL_P(rs->exc)) raise_pending(rs);
      if (rc < 0) {
        rb_ary_push(failed, rb_assoc_new(rs->self, make_error(rc, evssh_session_error(rs->s))));
        continue;
      }
    }
    rss[used++] = rs;
  }
  int ms = wait_ms_of(wait);
  if (!NIL_P(cond) && !RTEST(rb_funcall(cond, id_call, 0))) ms = 0;
  if (used) wait_ready(rss, (size_t)used, ms, revents);
  for (long i = 0; i < used; i++) {
    rsess *rs = rss[i];
    if (!rs->s) continue;
    bool was_connecting = !rs->connect_done;
    int rc = evssh_session_handle_events(rs->s, revents[i]);
    if (rs->jump || !NIL_P(rs->exc)) raise_pending(rs);
    if (was_connecting && rc < 0 && !rs->connect_done) {
      rs->connect_done = true;
      rs->connect_status = rc;
    }
    if (rs->connect_done && rs->connect_status != EVSSH_OK) {
      if (was_connecting)
        rb_ary_push(failed, rb_assoc_new(rs->self, make_error(rs->connect_status, evssh_session_error(rs->s))));
    } else if (rc < 0) {
      rb_ary_push(failed, rb_assoc_new(rs->self, make_error(rc, evssh_session_error(rs->s))));
    }
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
  rsess *rs = open_rs(session);
  if (rs->multi) rb_raise(rb_eArgError, "session already belongs to a multi");
  int rc = evssh_multi_add(rm->h->m, rs->s);
  if (rc) raise_code(rc, evssh_session_error(rs->s));
  rs->multi = rm->h;
  rm->h->refs++;
  rb_ary_push(rm->sessions, session);
  return session;
}

static VALUE multi_remove(VALUE self, VALUE session) {
  rmulti *rm = get_rm(self);
  rsess *rs = get_rs(session);
  if (rs->multi == rm->h) multi_leave(rs);
  rb_ary_delete(rm->sessions, session);
  return session;
}

/* evssh_multi_process(m, 0) with the GVL; returns [[session, error], ...]
   for members that failed (C already dropped them). */
static VALUE multi_work(VALUE self) {
  rmulti *rm = get_rm(self);
  VALUE sessions = rb_ary_dup(rm->sessions);
  long n = RARRAY_LEN(sessions);
  for (long i = 0; i < n; i++) check_not_nested(get_rs(RARRAY_AREF(sessions, i)));
  for (long i = 0; i < n; i++) refresh_listeners(get_rs(RARRAY_AREF(sessions, i)));
  int rc = evssh_multi_process(rm->h->m, 0, NULL, NULL);
  for (long i = 0; i < n; i++) raise_pending(get_rs(RARRAY_AREF(sessions, i)));
  if (rc < 0) raise_code(rc, "multi process failed");
  VALUE failed = rb_ary_new();
  for (long i = 0; i < n; i++) {
    VALUE sv = RARRAY_AREF(sessions, i);
    rsess *rs = get_rs(sv);
    if (!rs->s || !rs->connect_done) continue;
    if (rs->connect_status != EVSSH_OK) {
      rb_ary_push(failed, rb_assoc_new(sv, make_error(rs->connect_status, evssh_session_error(rs->s))));
    } else if (evssh_session_closed(rs->s)) {
      /* process on a closed session returns its error code at once */
      int code = evssh_session_process(rs->s, 0, NULL, NULL);
      rb_ary_push(failed, rb_assoc_new(sv, make_error(code < 0 ? code : EVSSH_ECLOSED, evssh_session_error(rs->s))));
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
    rsess *rs = get_rs(RARRAY_AREF(sessions, i));
    if (rs->s) rss[used++] = rs;
  }
  if (used) wait_ready(rss, (size_t)used, wait_ms_of(wait), revents);
  ALLOCV_END(tmp1);
  ALLOCV_END(tmp2);
  RB_GC_GUARD(sessions);
  return Qnil;
}
#endif

/* ------------------------------------------------------------------- init */

static VALUE def_error(const char *name, VALUE super, int code) {
  VALUE k = rb_define_class_under(mEvSSH, name, super);
  if (code < 0) {
    rb_define_const(k, "CODE", INT2FIX(code));
    if (!error_classes[-code]) error_classes[-code] = k;
  }
  return k;
}

static VALUE error_code(VALUE self) { return rb_attr_get(self, rb_intern("@code")); }
static VALUE s_strerror(VALUE mod, VALUE code) { return rb_str_new_cstr(evssh_strerror(NUM2INT(code))); }

void Init_evssh_ext(void); /* called by Ruby's require */

void Init_evssh_ext(void) {
  id_call = rb_intern("call");
  id_fill = rb_intern("fill");
  id_send_pending = rb_intern("send_pending");
  id_pending_write = rb_intern("pending_write?");
  id_respond_to = rb_intern("respond_to?");
  id_closed_p = rb_intern("closed?");
  id_fileno = rb_intern("fileno");
  id_to_io = rb_intern("to_io");
  id_print = rb_intern("print");
  id_code = rb_intern("code");
  id_reason = rb_intern("reason");
  id_default_listener = rb_intern("__evssh_default_listener");
  id_force_encoding = rb_intern("force_encoding");
  id_new = rb_intern("new");
  id_aset = rb_intern("[]=");
  sym_stdout = ID2SYM(rb_intern("stdout"));
  sym_stderr = ID2SYM(rb_intern("stderr"));
  sym_sent = ID2SYM(rb_intern("sent"));
  sym_exit_code = ID2SYM(rb_intern("exit_code"));
  sym_exit_signal = ID2SYM(rb_intern("exit_signal"));

  mEvSSH = rb_define_module("EvSSH");
  /* classes are constants, never collected: no registration needed */
  memset(error_classes, 0, sizeof error_classes);
  eError = rb_define_class_under(mEvSSH, "Error", rb_eStandardError);
  rb_define_method(eError, "code", error_code, 0);
  def_error("InvalidArgument", eError, EVSSH_EINVAL);
  def_error("NoMemory", eError, EVSSH_ENOMEM);
  VALUE conn = def_error("ConnectionError", eError, EVSSH_ECONNECT);
  def_error("TimeoutError", eError, EVSSH_ETIMEOUT);
  def_error("ProtocolError", eError, EVSSH_EPROTO);
  eHostKeyError = def_error("HostKeyError", eError, EVSSH_EHOSTKEY);
  eHostKeyMismatch = def_error("HostKeyMismatch", eHostKeyError, 0);
  eHostKeyUnknown = def_error("HostKeyUnknown", eHostKeyError, 0);
  def_error("AuthenticationFailed", eError, EVSSH_EAUTH);
  eClosed = def_error("Closed", eError, EVSSH_ECLOSED);
  def_error("Disconnected", eError, EVSSH_EDISCONNECT);
  def_error("Busy", eError, EVSSH_EBUSY);
  def_error("NoAlgorithm", eError, EVSSH_ENOALGO);
  eChannelOpenFailed = def_error("ChannelOpenFailed", eError, EVSSH_ECHANNEL);
  eChannelRequestFailed = def_error("ChannelRequestFailed", eError, 0);
  (void)conn;
  rb_define_module_function(mEvSSH, "strerror", s_strerror, 1);

  cBuffer = rb_define_class_under(mEvSSH, "Buffer", rb_cObject);
  rb_define_alloc_func(cBuffer, buf_alloc);
  rb_define_singleton_method(cBuffer, "from", buf_s_from, -1);
  rb_define_method(cBuffer, "initialize", buf_initialize, -1);
  rb_define_method(cBuffer, "read_byte", buf_read_byte, 0);
  rb_define_method(cBuffer, "read_bool", buf_read_bool, 0);
  rb_define_method(cBuffer, "read_long", buf_read_long, 0);
  rb_define_method(cBuffer, "read_int64", buf_read_int64, 0);
  rb_define_method(cBuffer, "read_string", buf_read_string, 0);
  rb_define_method(cBuffer, "read", buf_read, -1);
  rb_define_method(cBuffer, "read!", buf_read_bang, -1);
  rb_define_method(cBuffer, "to_s", buf_to_s, 0);
  rb_define_method(cBuffer, "content", buf_to_s, 0);
  rb_define_method(cBuffer, "length", buf_length, 0);
  rb_define_method(cBuffer, "available", buf_available, 0);
  rb_define_method(cBuffer, "position", buf_position, 0);
  rb_define_method(cBuffer, "position=", buf_set_position, 1);
  rb_define_method(cBuffer, "eof?", buf_eof_p, 0);
  rb_define_method(cBuffer, "reset!", buf_reset, 0);
  rb_define_method(cBuffer, "clear!", buf_clear, 0);
  rb_define_method(cBuffer, "consume!", buf_consume, -1);
  rb_define_method(cBuffer, "append", buf_append, 1);
  rb_define_method(cBuffer, "write", buf_write, -1);
  rb_define_method(cBuffer, "write_byte", buf_write_byte, 1);
  rb_define_method(cBuffer, "write_bool", buf_write_bool, 1);
  rb_define_method(cBuffer, "write_long", buf_write_long, 1);
  rb_define_method(cBuffer, "write_int64", buf_write_int64, 1);
  rb_define_method(cBuffer, "write_string", buf_write_string, 1);

  cStringWithExitstatus = rb_define_class_under(mEvSSH, "StringWithExitstatus", rb_cString);

  cSession = rb_define_class_under(mEvSSH, "Session", rb_cObject);
  rb_define_alloc_func(cSession, sess_alloc);
  rb_define_method(cSession, "initialize", sess_initialize, 1);
  rb_define_method(cSession, "_option", sess_option, 2);
  rb_define_method(cSession, "_read_config", sess_read_config, 1);
  rb_define_method(cSession, "_password=", sess_set_password, 1);
  rb_define_method(cSession, "_log_level=", sess_set_log_level, 1);
  rb_define_method(cSession, "_passphrase=", sess_set_passphrase, 1);
  rb_define_method(cSession, "_connect", sess_connect, 0);
  rb_define_method(cSession, "_connect_async", sess_connect_async, 0);
  rb_define_method(cSession, "_connect_state", sess_connect_state, 0);
  rb_define_method(cSession, "_connect_error", sess_connect_error, 0);
  rb_define_method(cSession, "_close_now", sess_close_now, 0);
  rb_define_method(cSession, "process", sess_process, -1);
  rb_define_method(cSession, "loop", sess_loop, -1);
  rb_define_method(cSession, "busy?", sess_busy_p, -1);
  rb_define_method(cSession, "closed?", sess_closed_p, 0);
  rb_define_method(cSession, "host", sess_host, 0);
  rb_define_method(cSession, "[]", sess_aref, 1);
  rb_define_method(cSession, "[]=", sess_aset, 2);
  rb_define_method(cSession, "properties", sess_properties, 0);
  rb_define_method(cSession, "channels", sess_channels, 0);
  rb_define_method(cSession, "error_message", sess_error_message, 0);
  rb_define_method(cSession, "fileno", sess_fd, 0);
  rb_define_method(cSession, "open_channel", sess_open_channel, -1);
  rb_define_method(cSession, "exec", sess_exec, -1);
  rb_define_method(cSession, "exec!", sess_exec_bang, -1);
  rb_define_method(cSession, "send_global_request", sess_send_global_request, -1);
  rb_define_method(cSession, "on_global_request", sess_on_global_request, 1);
  rb_define_method(cSession, "on_open_channel", sess_on_open_channel, 1);
  rb_define_method(cSession, "listen_to", sess_listen_to, 1);
  rb_define_method(cSession, "stop_listening_to", sess_stop_listening_to, 1);

  cChannel = rb_define_class_under(mEvSSH, "Channel", rb_cObject);
  rb_undef_alloc_func(cChannel);
  rb_define_method(cChannel, "on_data", chan_on_data, 0);
  rb_define_method(cChannel, "on_extended_data", chan_on_extended_data, 0);
  rb_define_method(cChannel, "on_eof", chan_on_eof, 0);
  rb_define_method(cChannel, "on_close", chan_on_close, 0);
  rb_define_method(cChannel, "on_process", chan_on_process, 0);
  rb_define_method(cChannel, "on_open_failed", chan_on_open_failed, 0);
  rb_define_method(cChannel, "on_confirm", chan_on_confirm, 0);
  rb_define_method(cChannel, "on_request", chan_on_request, 1);
  rb_define_method(cChannel, "exec", chan_exec, 1);
  rb_define_method(cChannel, "subsystem", chan_subsystem, 1);
  rb_define_method(cChannel, "shell", chan_shell, 0);
  rb_define_method(cChannel, "env", chan_env, 2);
  rb_define_method(cChannel, "request_pty", chan_request_pty, -1);
  rb_define_method(cChannel, "send_channel_request", chan_send_channel_request, -1);
  rb_define_method(cChannel, "signal", chan_signal, 1);
  rb_define_method(cChannel, "send_data", chan_send_data, 1);
  rb_define_method(cChannel, "send_extended_data", chan_send_extended_data, 2);
  rb_define_method(cChannel, "eof!", chan_eof_bang, 0);
  rb_define_method(cChannel, "close", chan_close, 0);
  rb_define_method(cChannel, "wait", chan_wait, 0);
  rb_define_method(cChannel, "active?", chan_active_p, 0);
  rb_define_method(cChannel, "closed?", chan_closed_p, 0);
  rb_define_method(cChannel, "closing?", chan_closing_p, 0);
  rb_define_method(cChannel, "eof?", chan_eof_p, 0);
  rb_define_method(cChannel, "local_id", chan_local_id, 0);
  rb_define_method(cChannel, "type", chan_type_m, 0);
  rb_define_method(cChannel, "connection", chan_session, 0);
  rb_define_method(cChannel, "session", chan_session, 0);
  rb_define_method(cChannel, "properties", chan_properties, 0);
  rb_define_method(cChannel, "[]", chan_aref, 1);
  rb_define_method(cChannel, "[]=", chan_aset, 2);
  rb_define_method(cChannel, "exit_status", chan_exit_status, 0);
  rb_define_method(cChannel, "exit_signal", chan_exit_signal, 0);

  VALUE cMulti = rb_define_class_under(mEvSSH, "Multi", rb_cObject);
  rb_define_singleton_method(cMulti, "_step", multi_step, 3);
#ifdef HAVE_EVSSH_MULTI_NEW
  VALUE cCore = rb_define_class_under(cMulti, "Core", rb_cObject);
  rb_define_alloc_func(cCore, multi_alloc);
  rb_define_method(cCore, "add", multi_add, 1);
  rb_define_method(cCore, "remove", multi_remove, 1);
  rb_define_method(cCore, "work", multi_work, 0);
  rb_define_method(cCore, "wait", multi_wait, 1);
#endif
  rb_define_const(mEvSSH, "HAVE_C_MULTI",
#ifdef HAVE_EVSSH_MULTI_NEW
                  Qtrue
#else
                  Qfalse
#endif
  );
}
