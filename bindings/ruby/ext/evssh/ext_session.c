/* ext_session.c owns EvSSH::Session: the wrapper's lifetime (marking, the
 * passphrase wiped on free, leaving a C multi), the session-level
 * trampolines (global requests and replies, peer-opened channels, connect
 * completion, prompts, host key checks, log lines), the one-session event
 * loop (process/loop: a GVL preprocess, a GVL-free wait, the listen_to
 * postprocess) and the Ruby methods that configure, connect, close the
 * session and open channels or exec commands on it. The Net::SSH surface
 * (options, transport, verifiers) is built on these in lib/evssh. */
#include "evssh_ext.h"

static VALUE cStringWithExitstatus;

static void sess_mark(void *p) {
  rsess *rs = p;
  /* rs->self goes to every callback from C: pinned against GC.compact */
  rb_gc_mark(rs->self);
  rb_gc_mark(rs->host);
  rb_gc_mark(rs->channels);
  rb_gc_mark(rs->pending);
  rb_gc_mark(rs->global_handlers);
  rb_gc_mark(rs->open_handlers);
  rb_gc_mark(rs->listeners);
  rb_gc_mark(rs->properties);
  rb_gc_mark(rs->listener_keys);
  rb_gc_mark(rs->exc);
  rb_gc_mark(rs->error);
  rb_gc_mark(rs->prompt_proc);
  rb_gc_mark(rs->hostkey_proc);
  rb_gc_mark(rs->connect_exc);
  rb_gc_mark(rs->logger);
}

static void free_open_types(rsess *rs) {
  while (rs->open_types) {
    open_type *t = rs->open_types;
    rs->open_types = t->next;
    free(t);
  }
}

/* Leave the C multi before the C session goes away. */
void ext_multi_leave(rsess *rs) {
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
  ext_multi_leave(rs);
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
  rs->listener_keys = Qnil;
  rs->exc = Qnil;
  rs->error = Qnil;
  rs->prompt_proc = Qnil;
  rs->hostkey_proc = Qnil;
  rs->connect_exc = Qnil;
  rs->logger = Qnil;
  return obj;
}

rsess *ext_get_rs(VALUE self) { return rb_check_typeddata(self, &sess_type); }

rsess *ext_open_rs(VALUE self) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) rb_raise(ext_eClosed, "session closed");
  return rs;
}

/* The wrapper of a C session, or NULL once it is being torn down. */
rsess *ext_live_rs(evssh_session *s) {
  rsess *rs = s ? evssh_session_property(s, RB_KEY) : NULL;
  return rs && !rs->dead ? rs : NULL;
}

/* ----------------------------------------------------- session trampolines */

static void t_global_reply(evssh_session *s, bool ok, evssh_reader *response, void *ud) {
  rsess *rs = ext_live_rs(s);
  if (!rs) return;
  VALUE blk = rb_hash_delete(rs->pending, ULONG2NUM((unsigned long)(uintptr_t)ud));
  if (NIL_P(blk)) return;
  VALUE argv[2] = {ok ? Qtrue : Qfalse, ext_buf_new_from(response ? response->p : NULL, response ? response->left : 0)};
  ext_guarded_call(rs, blk, 2, argv);
}

static int t_global_request(evssh_session *s, const char *type, evssh_reader *data, bool want_reply, void *ud) {
  rsess *rs = ext_live_rs(s);
  if (!rs) return EVSSH_REPLY_FAILURE;
  VALUE blk = rb_hash_aref(rs->global_handlers, rb_str_new_cstr(type));
  if (NIL_P(blk)) return EVSSH_REPLY_FAILURE;
  VALUE argv[2] = {ext_buf_new_from(data->p, data->left), want_reply ? Qtrue : Qfalse};
  VALUE r = ext_guarded_call(rs, blk, 2, argv);
  if (r == ext_sym_sent) return EVSSH_REPLY_SENT;
  return r == Qtrue ? EVSSH_REPLY_SUCCESS : EVSSH_REPLY_FAILURE;
}

static int t_open_channel(evssh_session *s, evssh_channel *ch, evssh_reader *data, void *ud) {
  rsess *rs = ext_live_rs(s);
  if (!rs) return 2;
  const open_type *t = ud;
  VALUE type = rb_str_new_cstr(t->name);
  VALUE blk = rb_hash_aref(rs->open_handlers, type);
  if (NIL_P(blk)) return 3;
  VALUE obj = ext_chan_alloc(ext_cChannel);
  rchan *c = ext_get_rc(obj);
  c->type = type;
  ext_attach(rs, c, ch, true);
  evssh_channel_on_process(ch, ext_t_on_process, c);
  VALUE argv[3] = {rs->self, obj, ext_buf_new_from(data->p, data->left)};
  VALUE caught = Qnil;
  VALUE r = ext_guarded_send(rs, blk, ext_id_call, 3, argv, ext_eChannelOpenFailed, &caught);
  if (r != Qundef) return 0;
  int code = 2;
  if (!NIL_P(caught)) {
    VALUE v = rb_attr_get(caught, rb_intern("@code"));
    if (FIXNUM_P(v) && FIX2INT(v) > 0) code = FIX2INT(v);
  }
  ext_detach(c); /* C retires a refused channel without on_close */
  return code;
}

static void t_connected(evssh_session *s, int status, void *ud) {
  rsess *rs = ud;
  rs->connect_done = true;
  rs->connect_status = status;
}

void ext_raise_session(rsess *rs, int rc) {
  if (rc == EVSSH_EBUSY)
    rb_raise(ext_eBusy, "this libevssh cannot run an event loop from inside one of its callbacks (EVSSH_EBUSY)");
  const char *msg = rs->s ? evssh_session_error(rs->s) : "";
  ext_raise_code(rc, msg);
}

void ext_check_not_nested(rsess *rs) {
  if (rs->depth > 0)
    ext_raise_code(EVSSH_EBUSY, "the session cannot be freed from inside one of its own callbacks");
}

/* Net::SSH's preprocess, with the GVL: what is buffered, on_process, and
   non-blocking I/O on the session socket. A nested call (from inside a
   callback) is C's to allow or refuse. */
static void step(rsess *rs) {
  int rc = evssh_session_process(rs->s, 0, NULL, NULL);
  ext_raise_pending(rs);
  if (rc < 0) ext_raise_session(rs, rc);
}

/* Data sent in the preprocess (a producer in on_process, as net-scp's
   upload) went out: Net::SSH would not sleep (its socket has pending
   writes), so neither do we while the peer's window takes it: nothing left
   queued (evssh_channel_pending) means go on at once; data still queued
   waits for the peer's window adjust, which wakes the poll. */
static int clear_sent(VALUE chan, VALUE val, VALUE arg) {
  rchan *c = ext_get_rc(chan);
  if (c->sent_in_step && c->ch && evssh_channel_pending(c->ch) == 0) *(bool *)arg = true;
  c->sent_in_step = false;
  return ST_CONTINUE;
}

/* how long the wait after a preprocess that sent bytes may be */
static int producer_wait(rsess *rs, int wait_ms) {
  bool drained = false;
  rb_hash_foreach(rs->channels, clear_sent, (VALUE)&drained);
  return drained ? 0 : wait_ms;
}

/* The loop's condition: a Ruby block (cond) or a C predicate (pred). */
typedef bool (*loop_pred)(void *arg);

static bool ask(VALUE cond, loop_pred pred, void *arg, VALUE self) {
  if (pred) return pred(arg);
  return NIL_P(cond) || RTEST(rb_funcall(cond, ext_id_call, 1, self));
}

/* One Net::SSH process iteration; false when the condition said stop. The
   condition is asked again after the preprocess, so a wait never starts
   once what the caller waits for has happened. The session socket's
   readiness is acted on by the next preprocess (C's own poll), so each
   iteration is one C iteration; listened IOs get their callbacks right after
   the wait, before the next on_process. When the preprocess delivered
   something (its read comes after on_process), the wait is skipped so
   on_process sees it at once, as in Net::SSH, where packets read in one
   iteration are dispatched before the next one's on_process. */
static bool process_once(rsess *rs, int wait_ms, VALUE cond, loop_pred pred, void *arg) {
  /* as Net::SSH's closed socket: an IOError, whatever the condition says */
  if (!rs->s) rb_raise(ext_eClosed, "session closed");
  if (!ask(cond, pred, arg, rs->self)) return false;
  unsigned long before = rs->activity;
  unsigned long long sent_before = rs->sent;
  step(rs);
  if (!ask(cond, pred, arg, rs->self)) return false;
  if (!rs->s) return true;
  if (rs->activity != before) {
    /* what the preprocess read after on_process ran (data, replies, EOF)
       is for the next on_process: no sleeping before it has seen it */
    wait_ms = 0;
  } else if (rs->sent != sent_before) {
    wait_ms = producer_wait(rs, wait_ms);
  }
  ext_refresh_listeners(rs);
  int revents;
  ext_wait_ready(&rs, 1, wait_ms, &revents);
  ext_dispatch_listeners(rs);
  return true;
}

/* ---------------------------------------------------------------- sessions */

static VALUE sess_initialize(VALUE self, VALUE host) {
  rsess *rs = ext_get_rs(self);
  StringValue(host);
  if (rs->s) rb_raise(rb_eRuntimeError, "session already initialized");
  rs->s = evssh_session_new(StringValueCStr(host));
  if (!rs->s) ext_raise_code(EVSSH_EINVAL, "cannot create session (empty host?)");
  rs->host = rb_str_new_frozen(host);
  evssh_session_set_property(rs->s, RB_KEY, rs);
  return self;
}

static VALUE sess_option(VALUE self, VALUE kw, VALUE val) {
  rsess *rs = ext_open_rs(self);
  VALUE k = rb_obj_as_string(kw), v = rb_obj_as_string(val);
  int rc = evssh_session_option(rs->s, StringValueCStr(k), StringValueCStr(v));
  if (rc) ext_raise_code(rc, evssh_session_error(rs->s));
  return self;
}

static VALUE sess_read_config(VALUE self, VALUE path) {
  rsess *rs = ext_open_rs(self);
  int rc = evssh_session_read_config(rs->s, NIL_P(path) ? NULL : StringValueCStr(path));
  if (rc) ext_raise_code(rc, evssh_session_error(rs->s));
  return self;
}

/* Answers libevssh's prompts: a key passphrase from the passphrase: option
   (kept in C memory, wiped on free) without running Ruby; anything else
   (passwords, keyboard-interactive, passphrases without the option) from the
   Ruby prompt proc, which applies Net::SSH's password_prompt and
   number_of_password_prompts. What the proc raises ends the connect. */
static int t_prompt(evssh_session *s, const char *prompt, bool echo, char *answer, size_t size, void *ud) {
  rsess *rs = ud;
  if (rs->dead) return -1;
  bool passphrase = prompt && strstr(prompt, "passphrase");
  if (passphrase && rs->passphrase) {
    size_t n = strlen(rs->passphrase);
    if (n + 1 > size) return -1;
    memcpy(answer, rs->passphrase, n + 1);
    return 0;
  }
  if (NIL_P(rs->prompt_proc)) return -1;
  VALUE argv[2] = {rb_str_new_cstr(prompt ? prompt : ""), echo ? Qtrue : Qfalse};
  VALUE caught = Qnil;
  VALUE r = ext_guarded_send(rs, rs->prompt_proc, ext_id_call, 2, argv, rb_eException, &caught);
  if (!NIL_P(caught) && NIL_P(rs->connect_exc)) rs->connect_exc = caught;
  if (r == Qundef || !RB_TYPE_P(r, T_STRING)) return -1;
  size_t n = (size_t)RSTRING_LEN(r);
  if (n + 1 > size || memchr(RSTRING_PTR(r), 0, n)) return -1;
  memcpy(answer, RSTRING_PTR(r), n);
  answer[n] = 0;
  return 0;
}

static VALUE sess_set_passphrase(VALUE self, VALUE pw) {
  rsess *rs = ext_open_rs(self);
  wipe_passphrase(rs);
  if (!NIL_P(pw)) {
    const char *p = StringValueCStr(pw);
    rs->passphrase = strdup(p);
    if (!rs->passphrase) rb_raise(rb_eNoMemError, "passphrase");
  }
  evssh_session_set_prompt(rs->s, rs->passphrase || !NIL_P(rs->prompt_proc) ? t_prompt : NULL, rs);
  return pw;
}

static VALUE sess_set_prompt(VALUE self, VALUE proc) {
  rsess *rs = ext_open_rs(self);
  rs->prompt_proc = proc;
  evssh_session_set_prompt(rs->s, rs->passphrase || !NIL_P(rs->prompt_proc) ? t_prompt : NULL, rs);
  return proc;
}

/* Ruby host key verification (Net::SSH's verifiers, known_hosts objects):
   the proc gets (key type, "SHA256:..." fingerprint); it accepts by
   returning true. What it raises (HostKeyUnknown, ...) is what the connect
   raises. */
static int t_hostkey(evssh_session *s, const char *keytype, const char *fp, void *ud) {
  rsess *rs = ud;
  if (rs->dead || NIL_P(rs->hostkey_proc)) return 0;
  VALUE argv[2] = {rb_str_new_cstr(keytype ? keytype : ""), rb_str_new_cstr(fp ? fp : "")};
  VALUE caught = Qnil;
  VALUE r = ext_guarded_send(rs, rs->hostkey_proc, ext_id_call, 2, argv, rb_eException, &caught);
  if (!NIL_P(caught)) {
    if (NIL_P(rs->connect_exc)) rs->connect_exc = caught;
    return -1;
  }
  return r != Qundef && RTEST(r) ? 0 : -1;
}

static VALUE sess_set_hostkey_check(VALUE self, VALUE proc) {
  rsess *rs = ext_open_rs(self);
  rs->hostkey_proc = proc;
  evssh_session_set_hostkey_check(rs->s, NIL_P(proc) ? NULL : t_hostkey, rs);
  return proc;
}

/* libevssh's log lines go to a Ruby Logger (#add(severity, message,
   progname)); nothing is logged while the wrapper is being freed. */
static VALUE log_body(VALUE p) {
  VALUE *a = (VALUE *)p;
  return rb_funcall(a[0], rb_intern("add"), 3, a[1], a[2], rb_str_new_cstr("evssh"));
}
static void t_log(evssh_session *s, int level, const char *message, void *ud) {
  rsess *rs = ud;
  if (rs->dead || NIL_P(rs->logger)) return;
  /* Logger::DEBUG 0, INFO 1, ERROR 3 */
  int sev = level <= EVSSH_LOG_ERROR ? 3 : level == EVSSH_LOG_INFO ? 1 : 0;
  VALUE a[3] = {rs->logger, INT2FIX(sev), rb_str_new_cstr(message ? message : "")};
  int state = 0;
  rb_protect(log_body, (VALUE)a, &state);
  if (state) rb_set_errinfo(Qnil); /* a broken logger must not break the session */
}

/* _set_logger(logger, level): libevssh logs up to level (EVSSH_LOG_*) into
   logger; level 0 leaves the library's own default (EVSSH_DEBUG on stderr) */
static VALUE sess_set_logger(VALUE self, VALUE logger, VALUE level) {
  rsess *rs = ext_open_rs(self);
  int lv = NUM2INT(level);
  rs->logger = lv > 0 ? logger : Qnil;
  if (lv > 0)
    evssh_session_set_log(rs->s, lv, t_log, rs);
  else
    evssh_session_set_log(rs->s, 0, NULL, NULL);
  return logger;
}

static VALUE sess_set_password(VALUE self, VALUE pw) {
  rsess *rs = ext_open_rs(self);
  int rc = evssh_session_set_password(rs->s, NIL_P(pw) ? NULL : StringValueCStr(pw));
  if (rc) ext_raise_code(rc, "cannot set password");
  return pw;
}

/* Start connecting without blocking (Multi drives it). */
static VALUE sess_connect_async(VALUE self) {
  rsess *rs = ext_open_rs(self);
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
  rsess *rs = ext_get_rs(self);
  if (!rs->connect_done) return Qnil;
  return rs->connect_status == EVSSH_OK ? Qtrue : Qfalse;
}

/* The exception of a failed connect: what a Ruby callback (host key
   verifier, prompt) raised, else the C error; the server's host key rides
   along when the library can tell it (for remember_host!). */
static VALUE connect_failure(rsess *rs) {
  if (!NIL_P(rs->connect_exc)) return rs->connect_exc;
  VALUE e = ext_make_connect_error(rs->connect_status, rs->s ? evssh_session_error(rs->s) : "", evssh_session_sys_errno(rs->s));
  const char *type = NULL;
  const unsigned char *blob = NULL;
  size_t len = 0;
  if (rs->s && evssh_session_host_key(rs->s, &type, &blob, &len) == EVSSH_OK && blob && len) {
    rb_ivar_set(e, rb_intern("@__host_key_type"), rb_str_new_cstr(type ? type : ""));
    rb_ivar_set(e, rb_intern("@__host_key_blob"), rb_str_new((const char *)blob, (long)len));
  }
  return e;
}

static VALUE sess_connect_error(VALUE self) {
  rsess *rs = ext_get_rs(self);
  if (!rs->connect_done || rs->connect_status == EVSSH_OK) return Qnil;
  return connect_failure(rs);
}

/* Finish a connect started with _connect_async, blocking, with the GVL
   released while waiting for the network. On failure the C session is
   freed and the exception raised. */
static VALUE sess_connect_finish(VALUE self) {
  rsess *rs = ext_open_rs(self);
  while (!rs->connect_done) {
    int revents;
    ext_wait_ready(&rs, 1, -1, &revents);
    int rc = evssh_session_handle_events(rs->s, revents);
    if (rc < 0 && !rs->connect_done) {
      rs->connect_done = true;
      rs->connect_status = rc;
    }
  }
  rs->connecting = false;
  if (rs->connect_status != EVSSH_OK) {
    VALUE e = connect_failure(rs);
    rs->connect_exc = Qnil;
    rs->exc = Qnil;
    rs->jump = 0;
    ext_multi_leave(rs);
    rs->dead = true; /* no Ruby from the callbacks of the teardown */
    evssh_session_free(rs->s);
    rs->s = NULL;
    rs->dead = false;
    rb_exc_raise(e);
  }
  rs->connect_exc = Qnil;
  ext_raise_pending(rs);
  return self;
}

static VALUE sess_connect(VALUE self) {
  sess_connect_async(self);
  return sess_connect_finish(self);
}

static VALUE sess_process(int argc, VALUE *argv, VALUE self) {
  VALUE wait, cond;
  rb_scan_args(argc, argv, "01&", &wait, &cond);
  rsess *rs = ext_get_rs(self);
  return process_once(rs, ext_wait_ms_of(wait), cond, NULL, NULL) ? Qtrue : Qfalse;
}

static VALUE busy_cond(RB_BLOCK_CALL_FUNC_ARGLIST(arg, self)) {
  rsess *rs = ext_get_rs(self);
  return rs->s && evssh_session_busy(rs->s, false) ? Qtrue : Qfalse;
}

static VALUE sess_loop(int argc, VALUE *argv, VALUE self) {
  VALUE wait, cond;
  rb_scan_args(argc, argv, "01&", &wait, &cond);
  rsess *rs = ext_get_rs(self);
  int ms = ext_wait_ms_of(wait);
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
  rsess *rs = ext_get_rs(self);
  return rs->s && evssh_session_busy(rs->s, RTEST(inv)) ? Qtrue : Qfalse;
}

static VALUE sess_closed_p(VALUE self) {
  rsess *rs = ext_get_rs(self);
  return !rs->s || evssh_session_closed(rs->s) ? Qtrue : Qfalse;
}

static VALUE sess_host(VALUE self) { return ext_get_rs(self)->host; }

static VALUE sess_aref(VALUE self, VALUE key) { return rb_hash_aref(ext_get_rs(self)->properties, key); }
static VALUE sess_aset(VALUE self, VALUE key, VALUE v) { return rb_hash_aset(ext_get_rs(self)->properties, key, v); }
static VALUE sess_properties(VALUE self) { return ext_get_rs(self)->properties; }
static VALUE sess_channels(VALUE self) { return rb_funcall(ext_get_rs(self)->channels, rb_intern("keys"), 0); }

static VALUE sess_error_message(VALUE self) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) return Qnil;
  const char *m = evssh_session_error(rs->s);
  return m && *m ? rb_str_new_cstr(m) : Qnil;
}

/* Cut every channel loose (no more callbacks), leave the multi and free
   the C session. */
static void drop_session(rsess *rs) {
  VALUE chans = rb_funcall(rs->channels, rb_intern("keys"), 0);
  for (long i = 0; i < RARRAY_LEN(chans); i++) ext_detach(ext_get_rc(RARRAY_AREF(chans, i)));
  evssh_session *s = rs->s;
  ext_multi_leave(rs);
  rs->dead = true;
  evssh_session_free(s);
  rs->s = NULL;
  rs->dead = false;
  rb_hash_clear(rs->pending);
  rb_hash_clear(rs->listeners);
  free_open_types(rs);
}

/* C part of close: the channels were asked to close and the loop ran in
   Ruby (with the GVL released); now disconnect and free. */
static VALUE sess_close_now(VALUE self) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) return Qnil;
  /* freeing the session under one of its own callbacks would pull the
     ground from under the C dispatch that runs it */
  ext_check_not_nested(rs);
  rs->depth++; /* callbacks of the last moment may run */
  evssh_session_close(rs->s);
  rs->depth--;
  /* anything C did not retire through on_close is cut loose now */
  drop_session(rs);
  ext_raise_pending(rs);
  return Qnil;
}

/* Net::SSH's shutdown!: no goodbye, no callbacks; the session is closed. */
static VALUE sess_shutdown(VALUE self) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) return Qnil;
  ext_check_not_nested(rs);
  drop_session(rs);
  return Qnil;
}

/* Net::SSH's preprocess (one non-blocking C iteration), for foreign loops
   such as net-ssh-multi's. */
static VALUE sess_step(VALUE self) {
  rsess *rs = ext_open_rs(self);
  step(rs);
  return Qtrue;
}

/* What libevssh wants on its socket now (EVSSH_READ|EVSSH_WRITE), and how
   long a foreign loop may sleep (ms, -1 none). */
static VALUE sess_events(VALUE self) {
  rsess *rs = ext_get_rs(self);
  return INT2FIX(rs->s ? evssh_session_events(rs->s) : 0);
}
static VALUE sess_timeout(VALUE self) {
  rsess *rs = ext_get_rs(self);
  return INT2FIX(rs->s ? evssh_session_timeout(rs->s) : -1);
}

/* _algorithm("kex"|"hostkey"|"cipher_c2s"|...): negotiated name or nil */
static VALUE sess_algorithm(VALUE self, VALUE which) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) return Qnil;
  const char *v = evssh_session_algorithm(rs->s, StringValueCStr(which));
  return v ? rb_str_new_cstr(v) : Qnil;
}

/* _host_key: [type, blob] of the server's host key, or nil */
static VALUE sess_host_key(VALUE self) {
  rsess *rs = ext_get_rs(self);
  const char *type = NULL;
  const unsigned char *blob = NULL;
  size_t len = 0;
  if (!rs->s || evssh_session_host_key(rs->s, &type, &blob, &len) != EVSSH_OK || !blob) return Qnil;
  return rb_assoc_new(rb_str_new_cstr(type ? type : ""), rb_str_new((const char *)blob, (long)len));
}

/* _set_fd(fd): connect over a connection made in Ruby (a proxy's socket);
   the C session owns the fd from here on */
static VALUE sess_set_fd(VALUE self, VALUE fd) {
  rsess *rs = ext_open_rs(self);
  int rc = evssh_session_set_fd(rs->s, NUM2INT(fd));
  if (rc) ext_raise_code(rc, evssh_session_error(rs->s));
  return self;
}

/* the server's identification string, or nil before the version exchange */
static VALUE sess_server_version(VALUE self) {
  rsess *rs = ext_get_rs(self);
  const char *v = rs->s ? evssh_session_server_version(rs->s) : NULL;
  return v ? rb_str_new_cstr(v) : Qnil;
}

/* start a key re-exchange (the Ruby half waits for _rekeying? to end) */
static VALUE sess_rekey(VALUE self) {
  rsess *rs = ext_open_rs(self);
  int rc = evssh_session_rekey(rs->s);
  if (rc) ext_raise_session(rs, rc);
  return self;
}

static VALUE sess_rekeying_p(VALUE self) {
  rsess *rs = ext_get_rs(self);
  return rs->s && evssh_session_rekeying(rs->s) ? Qtrue : Qfalse;
}

/* the errno behind a failed connect (0: none), for Errno::* as Net::SSH raises */
static VALUE sess_sys_errno(VALUE self) {
  rsess *rs = ext_get_rs(self);
  return INT2FIX(rs->s ? evssh_session_sys_errno(rs->s) : 0);
}

/* EvSSH.__algorithms(what, defaults): libevssh's list of names, an Array */
static VALUE s_algorithms(VALUE mod, VALUE what, VALUE defaults) {
  const char *w = StringValueCStr(what);
  const char *list = RTEST(defaults) ? evssh_default_algorithms(w) : evssh_supported_algorithms(w);
  if (!list) rb_raise(rb_eArgError, "no algorithm kind %s", w);
  return rb_str_split(rb_str_new_cstr(list), ",");
}

static VALUE sess_fd(VALUE self) {
  rsess *rs = ext_get_rs(self);
  return INT2FIX(rs->s ? evssh_session_fd(rs->s) : -1);
}

/* ------------------------------------------------------ channels from Ruby */

static VALUE new_channel(rsess *rs, VALUE type) {
  VALUE obj = ext_chan_alloc(ext_cChannel);
  rchan *c = ext_get_rc(obj);
  c->rs = rs;
  c->session = rs->self;
  c->type = type;
  return obj;
}

static VALUE sess_open_channel(int argc, VALUE *argv, VALUE self) {
  VALUE type = Qnil, blk = rb_block_given_p() ? rb_block_proc() : Qnil;
  rsess *rs = ext_open_rs(self);
  if (argc > 0) type = rb_obj_as_string(argv[0]);
  VALUE extra = argc > 1 ? ext_encode_pairs(argc - 1, argv + 1) : Qnil;
  VALUE obj = new_channel(rs, NIL_P(type) ? rb_str_new_cstr("session") : type);
  rchan *c = ext_get_rc(obj);
  c->on_open = blk;
  evssh_channel *ch;
  if (NIL_P(type) && NIL_P(extra))
    ch = evssh_session_open_channel(rs->s, ext_t_on_open, c);
  else
    ch = evssh_session_open_channel_type(rs->s, StringValueCStr(c->type), NIL_P(extra) ? NULL : RSTRING_PTR(extra),
                                         NIL_P(extra) ? 0 : (size_t)RSTRING_LEN(extra), ext_t_on_open, c);
  if (!ch) ext_raise_code(evssh_session_closed(rs->s) ? EVSSH_ECLOSED : EVSSH_ENOMEM, evssh_session_error(rs->s));
  ext_attach(rs, c, ch, true);
  evssh_channel_on_process(ch, ext_t_on_process, c);
  return obj;
}

/* exec(cmd, status: hash) { |ch, stream, data| }: evssh_session_exec. */
static VALUE start_exec(rsess *rs, VALUE cmd, VALUE status, VALUE blk, int mode) {
  StringValue(cmd);
  VALUE obj = new_channel(rs, rb_str_new_cstr("session"));
  rchan *c = ext_get_rc(obj);
  c->exec_mode = mode;
  c->exec_block = blk;
  c->status = status;
  if (mode == EXEC_COLLECT) c->result = rb_str_buf_new(0);
  evssh_channel *ch = evssh_session_exec(rs->s, StringValueCStr(cmd), ext_t_exec, c);
  if (!ch) ext_raise_code(evssh_session_closed(rs->s) ? EVSSH_ECLOSED : EVSSH_ENOMEM, evssh_session_error(rs->s));
  ext_attach(rs, c, ch, false);
  evssh_channel_on_process(ch, ext_t_on_process, c);
  return obj;
}

static VALUE sess_exec(int argc, VALUE *argv, VALUE self) {
  VALUE cmd, opts, blk;
  rb_scan_args(argc, argv, "1:&", &cmd, &opts, &blk);
  rsess *rs = ext_open_rs(self);
  VALUE status = NIL_P(opts) ? Qnil : rb_hash_aref(opts, ID2SYM(rb_intern("status")));
  return start_exec(rs, cmd, status, blk, NIL_P(blk) ? EXEC_PRINT : EXEC_BLOCK);
}

static bool channel_open(void *arg) { return ((rchan *)arg)->ch != NULL; }

void ext_wait_channel(rsess *rs, rchan *c) {
  while (process_once(rs, -1, Qnil, channel_open, c)) {
  }
}

/* exec!(cmd, status: nil) { |ch, stream, data| } -> String with #exitstatus */
static VALUE sess_exec_bang(int argc, VALUE *argv, VALUE self) {
  VALUE cmd, opts, blk;
  rb_scan_args(argc, argv, "1:&", &cmd, &opts, &blk);
  rsess *rs = ext_open_rs(self);
  VALUE status = NIL_P(opts) ? Qnil : rb_hash_aref(opts, ID2SYM(rb_intern("status")));
  VALUE obj = start_exec(rs, cmd, status, blk, NIL_P(blk) ? EXEC_COLLECT : EXEC_BLOCK);
  rchan *c = ext_get_rc(obj);
  ext_wait_channel(rs, c);
  if (!NIL_P(blk)) {
    VALUE r = rb_hash_aref(c->properties, ID2SYM(rb_intern("result")));
    if (NIL_P(r)) return Qnil;
    c->result = r;
  }
  VALUE str = rb_funcall(c->result, ext_id_force_encoding, 1, rb_str_new_cstr("UTF-8"));
  VALUE r = rb_funcall(cStringWithExitstatus, ext_id_new, 3, str, c->has_exit_status ? INT2FIX(c->exit_status) : Qnil,
                       c->exit_signal);
  RB_GC_GUARD(obj);
  return r;
}

static VALUE sess_send_global_request(int argc, VALUE *argv, VALUE self) {
  rsess *rs = ext_open_rs(self);
  if (argc < 1) rb_raise(rb_eArgError, "request type required");
  VALUE type = rb_obj_as_string(argv[0]);
  VALUE extra = argc > 1 ? ext_encode_pairs(argc - 1, argv + 1) : Qnil;
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
    ext_raise_code(rc, evssh_session_error(rs->s));
  }
  return self;
}

static VALUE sess_on_global_request(VALUE self, VALUE type) {
  rsess *rs = ext_open_rs(self);
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
  rsess *rs = ext_open_rs(self);
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

void ext_init_session(void) {
  cStringWithExitstatus = rb_define_class_under(ext_mEvSSH, "StringWithExitstatus", rb_cString);

  ext_cSession = rb_define_class_under(ext_mEvSSH, "Session", rb_cObject);
  rb_define_alloc_func(ext_cSession, sess_alloc);
  rb_define_method(ext_cSession, "initialize", sess_initialize, 1);
  rb_define_method(ext_cSession, "_option", sess_option, 2);
  rb_define_method(ext_cSession, "_read_config", sess_read_config, 1);
  rb_define_method(ext_cSession, "_password=", sess_set_password, 1);
  rb_define_method(ext_cSession, "_set_logger", sess_set_logger, 2);
  rb_define_method(ext_cSession, "_passphrase=", sess_set_passphrase, 1);
  rb_define_method(ext_cSession, "_prompt=", sess_set_prompt, 1);
  rb_define_method(ext_cSession, "_host_key_check=", sess_set_hostkey_check, 1);
  rb_define_method(ext_cSession, "_connect", sess_connect, 0);
  rb_define_method(ext_cSession, "_connect_finish", sess_connect_finish, 0);
  rb_define_method(ext_cSession, "_connect_async", sess_connect_async, 0);
  rb_define_method(ext_cSession, "_connect_state", sess_connect_state, 0);
  rb_define_method(ext_cSession, "_connect_error", sess_connect_error, 0);
  rb_define_method(ext_cSession, "_close_now", sess_close_now, 0);
  rb_define_method(ext_cSession, "_shutdown", sess_shutdown, 0);
  rb_define_method(ext_cSession, "_step", sess_step, 0);
  rb_define_method(ext_cSession, "_events", sess_events, 0);
  rb_define_method(ext_cSession, "_timeout", sess_timeout, 0);
  rb_define_method(ext_cSession, "_algorithm", sess_algorithm, 1);
  rb_define_method(ext_cSession, "_host_key", sess_host_key, 0);
  rb_define_method(ext_cSession, "process", sess_process, -1);
  rb_define_method(ext_cSession, "loop", sess_loop, -1);
  rb_define_method(ext_cSession, "busy?", sess_busy_p, -1);
  rb_define_method(ext_cSession, "closed?", sess_closed_p, 0);
  rb_define_method(ext_cSession, "host", sess_host, 0);
  rb_define_method(ext_cSession, "[]", sess_aref, 1);
  rb_define_method(ext_cSession, "[]=", sess_aset, 2);
  rb_define_method(ext_cSession, "properties", sess_properties, 0);
  rb_define_method(ext_cSession, "_channels", sess_channels, 0);
  rb_define_method(ext_cSession, "error_message", sess_error_message, 0);
  rb_define_method(ext_cSession, "fileno", sess_fd, 0);
  rb_define_method(ext_cSession, "_set_fd", sess_set_fd, 1);
  rb_define_method(ext_cSession, "_server_version", sess_server_version, 0);
  rb_define_method(ext_cSession, "_rekey", sess_rekey, 0);
  rb_define_method(ext_cSession, "_rekeying?", sess_rekeying_p, 0);
  rb_define_method(ext_cSession, "_sys_errno", sess_sys_errno, 0);
  rb_define_module_function(ext_mEvSSH, "__algorithms", s_algorithms, 2);
  rb_define_method(ext_cSession, "_open_channel", sess_open_channel, -1);
  rb_define_method(ext_cSession, "_exec", sess_exec, -1);
  rb_define_method(ext_cSession, "_exec_bang", sess_exec_bang, -1);
  rb_define_method(ext_cSession, "send_global_request", sess_send_global_request, -1);
  rb_define_method(ext_cSession, "on_global_request", sess_on_global_request, 1);
  rb_define_method(ext_cSession, "on_open_channel", sess_on_open_channel, 1);
}
