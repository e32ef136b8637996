/* ext_sftp.c owns the C half of EvSSH::SFTP, the native SFTP client behind
 * session.sftp: the EvSSH::SFTP::Session wrapper of an evssh_sftp (its
 * lifetime, marking, the request contexts C holds), EvSSH::SFTP::Handle
 * wrapping an evssh_sftp_file, one Ruby method per evssh_sftp_* request
 * and whole-file transfer, and the trampolines that hand each answer to
 * Ruby. Net::SFTP's surface (requests, responses, attributes, uploads,
 * downloads, dir, file) is built on these in lib/evssh/sftp*.rb.
 *
 * Opening: _open(ssh) starts the subsystem; C's on_ready calls
 * sftp.__evssh_ready(status, message) from the loop.
 *
 * Every request method takes a token first: Ruby's id of the request. C
 * answers exactly once per request that was sent (the method returned 0) by
 * calling sftp.__evssh_reply(token, status, fx, message, payload) from the
 * loop, under the session's rb_protect guard; status is the EVSSH_* code of
 * the callback, fx the SSH_FX code (1 for end of file, with status 0),
 * message evssh_sftp_error() on failure. A method that returns another code
 * sent nothing, and no reply will come. Transfers with progress also call
 * __evssh_progress(token, done, total).
 *
 * Lifetimes. The per-request contexts (token, owner) are malloc'd and kept
 * in a list on the wrapper: an answer frees its own, evssh_sftp_free drops
 * the callbacks of the rest, which are then freed with the list. The
 * wrapper marks (and so pins, for GC.compact) itself, which C callbacks
 * pass to Ruby, and the EvSSH::Session whose C session it runs on; a Handle
 * marks its sftp wrapper and is valid only while that sftp is the one it
 * came from (an epoch counts evssh_sftp_free) and until close was sent.
 * Trampolines run only inside calls on the live C session, and do not touch
 * Ruby once the session wrapper is being torn down (rs->dead). */
#include "evssh_ext.h"

#ifdef HAVE_EVSSH_SFTP_OPEN

typedef struct sreq {
  struct sreq *prev, *next;
  struct rsftp *rf;
  unsigned long token;
} sreq;

typedef struct rsftp {
  evssh_sftp *sftp;
  rsess *rs;        /* the session wrapper's; valid while `session` is marked */
  VALUE self, session;
  sreq *reqs;       /* contexts of requests C may still answer */
  unsigned long epoch;
  int ready_status; /* of on_ready; meaningful once ready_done */
  bool ready_done;
} rsftp;

typedef struct rfile {
  evssh_sftp_file *f; /* NULL once close was sent */
  VALUE sftp;
  unsigned long epoch;
  VALUE path;
  bool dir;
} rfile;

static VALUE mSFTP, cSFTPSession, cHandle;
static ID id_reply, id_progress, id_ready;
static VALUE sym_size, sym_uid, sym_gid, sym_permissions, sym_atime, sym_mtime, sym_extended;

/* ---------------------------------------------------------------- wrappers */

static void drop_reqs(rsftp *rf) {
  while (rf->reqs) {
    sreq *q = rf->reqs;
    rf->reqs = q->next;
    free(q);
  }
}

static void free_sftp(rsftp *rf) {
  if (!rf->sftp) return;
  evssh_sftp *s = rf->sftp;
  rf->sftp = NULL;
  rf->epoch++;
  /* callbacks of what is still pending are dropped, so no trampoline will
     use the contexts freed next */
  evssh_sftp_free(s);
  drop_reqs(rf);
}

static void sftp_mark(void *p) {
  rsftp *rf = p;
  rb_gc_mark(rf->self); /* passed to Ruby by every trampoline: pinned */
  rb_gc_mark(rf->session);
}

static void sftp_free(void *p) {
  rsftp *rf = p;
  /* evssh_sftp_free is valid after the session's free too, which may have
     come first in this same sweep; it runs no callbacks */
  free_sftp(rf);
  xfree(rf);
}

static size_t sftp_memsize(const void *p) { return sizeof(rsftp); }

static const rb_data_type_t sftp_type = {
    "EvSSH::SFTP::Session", {sftp_mark, sftp_free, sftp_memsize, NULL, {NULL}}, 0, 0, 0};

static VALUE sftp_alloc(VALUE klass) {
  rsftp *rf;
  VALUE obj = TypedData_Make_Struct(klass, rsftp, &sftp_type, rf);
  rf->self = obj;
  rf->session = Qnil;
  return obj;
}

static rsftp *get_rf(VALUE self) { return rb_check_typeddata(self, &sftp_type); }

/* the session wrapper's C session is gone once the session was closed:
   the evssh_sftp may then only be freed */
static bool usable(const rsftp *rf) { return rf->sftp && rf->rs && rf->rs->s; }

static rsftp *live_rf(VALUE self) {
  rsftp *rf = get_rf(self);
  if (!usable(rf)) rb_raise(ext_eClosed, "the sftp session is closed");
  return rf;
}

static void file_mark(void *p) {
  rfile *h = p;
  rb_gc_mark(h->sftp);
  rb_gc_mark(h->path);
}

static size_t file_memsize(const void *p) { return sizeof(rfile); }

/* the C handle belongs to the evssh_sftp: nothing to release here */
static const rb_data_type_t file_type = {
    "EvSSH::SFTP::Handle", {file_mark, RUBY_TYPED_DEFAULT_FREE, file_memsize, NULL, {NULL}}, 0, 0, 0};

static VALUE file_alloc(VALUE klass) {
  rfile *h;
  VALUE obj = TypedData_Make_Struct(klass, rfile, &file_type, h);
  h->sftp = Qnil;
  h->path = Qnil;
  return obj;
}

static VALUE file_new(rsftp *rf, evssh_sftp_file *f, bool dir) {
  VALUE obj = file_alloc(cHandle);
  rfile *h = rb_check_typeddata(obj, &file_type);
  h->f = f;
  h->sftp = rf->self;
  h->epoch = rf->epoch;
  h->dir = dir;
  const char *p = evssh_sftp_file_path(f);
  h->path = rb_str_new_frozen(rb_str_new_cstr(p ? p : ""));
  return obj;
}

/* the C file of a handle given to a request of this sftp */
static evssh_sftp_file *handle_of(rsftp *rf, VALUE handle) {
  rfile *h = rb_check_typeddata(handle, &file_type);
  if (h->sftp != rf->self) rb_raise(rb_eArgError, "the handle belongs to another sftp session");
  if (!h->f || h->epoch != rf->epoch) rb_raise(ext_eClosed, "the handle of %s is closed", RSTRING_PTR(h->path));
  return h->f;
}

static VALUE handle_path(VALUE self) { return ((rfile *)rb_check_typeddata(self, &file_type))->path; }

static VALUE handle_open_p(VALUE self) {
  rfile *h = rb_check_typeddata(self, &file_type);
  if (!h->f) return Qfalse;
  rsftp *rf = get_rf(h->sftp);
  return usable(rf) && rf->epoch == h->epoch ? Qtrue : Qfalse;
}

static VALUE handle_dir_p(VALUE self) { return ((rfile *)rb_check_typeddata(self, &file_type))->dir ? Qtrue : Qfalse; }

/* --------------------------------------------------------- request contexts */

static sreq *new_req(rsftp *rf, VALUE token) {
  sreq *q = malloc(sizeof *q);
  if (!q) rb_raise(rb_eNoMemError, "sftp request");
  q->rf = rf;
  q->token = NUM2ULONG(token);
  q->prev = NULL;
  q->next = rf->reqs;
  if (rf->reqs) rf->reqs->prev = q;
  rf->reqs = q;
  return q;
}

static void unlink_req(sreq *q) {
  rsftp *rf = q->rf;
  if (q->prev) q->prev->next = q->next;
  else rf->reqs = q->next;
  if (q->next) q->next->prev = q->prev;
  free(q);
}

/* what the request method returns: 0 when sent (the context now belongs to
   the answer), else the code, with the context gone */
static VALUE sent(sreq *q, int rc) {
  if (rc != EVSSH_OK) unlink_req(q);
  return INT2FIX(rc);
}

/* The session wrapper for a trampoline, or NULL when Ruby must not run. */
static rsess *live_rs(rsftp *rf) { return rf->rs && !rf->rs->dead ? rf->rs : NULL; }

/* Hand an answer to Ruby and retire its context. */
static void reply(evssh_sftp *sftp, sreq *q, int status, uint32_t fx, VALUE payload) {
  rsftp *rf = q->rf;
  unsigned long token = q->token;
  unlink_req(q);
  rsess *rs = live_rs(rf);
  if (!rs) return;
  VALUE msg = Qnil;
  if (status != EVSSH_OK) {
    const char *m = evssh_sftp_error(sftp);
    msg = rb_str_new_cstr(m && *m ? m : evssh_strerror(status));
    fx = evssh_sftp_status(sftp);
  }
  VALUE self = rf->self;
  VALUE argv[5] = {ULONG2NUM(token), INT2FIX(status), UINT2NUM(fx), msg, payload};
  ext_guarded_send(rs, self, id_reply, 5, argv, Qnil, NULL);
  RB_GC_GUARD(self);
}

/* ------------------------------------------------------------- attributes */

static VALUE attrs_to_hash(const evssh_sftp_attrs *a) {
  VALUE h = rb_hash_new();
  if (a->flags & EVSSH_SFTP_ATTR_SIZE) rb_hash_aset(h, sym_size, ULL2NUM(a->size));
  if (a->flags & EVSSH_SFTP_ATTR_UIDGID) {
    rb_hash_aset(h, sym_uid, UINT2NUM(a->uid));
    rb_hash_aset(h, sym_gid, UINT2NUM(a->gid));
  }
  if (a->flags & EVSSH_SFTP_ATTR_PERMISSIONS) rb_hash_aset(h, sym_permissions, UINT2NUM(a->permissions));
  if (a->flags & EVSSH_SFTP_ATTR_ACMODTIME) {
    rb_hash_aset(h, sym_atime, UINT2NUM(a->atime));
    rb_hash_aset(h, sym_mtime, UINT2NUM(a->mtime));
  }
  if ((a->flags & EVSSH_SFTP_ATTR_EXTENDED) && a->extended) {
    VALUE ext = rb_hash_new();
    evssh_reader r = {0};
    r.p = (const unsigned char *)a->extended;
    r.left = a->extended_len;
    for (uint32_t i = 0; i < a->extended_count; i++) {
      const char *k, *v;
      size_t kn, vn;
      if (evssh_read_string(&r, &k, &kn) || evssh_read_string(&r, &v, &vn)) break;
      rb_hash_aset(ext, rb_str_new(k, (long)kn), rb_str_new(v, (long)vn));
    }
    rb_hash_aset(h, sym_extended, ext);
  }
  return h;
}

static uint32_t u32_of(VALUE v, const char *name) {
  unsigned long long n = NUM2ULL(v);
  if (n > UINT32_MAX) rb_raise(rb_eRangeError, "%s %llu does not fit SFTP's 32 bits", name, n);
  return (uint32_t)n;
}

/* Ruby's {size:, uid:, gid:, permissions:, atime:, mtime:, extended: raw}
   (lib/evssh/sftp normalises Net::SFTP's forms into this); the raw extended
   bytes stay referenced by *keep while the C call copies them. */
static void hash_to_attrs(VALUE h, evssh_sftp_attrs *a, VALUE *keep) {
  memset(a, 0, sizeof *a);
  *keep = Qnil;
  if (NIL_P(h)) return;
  Check_Type(h, T_HASH);
  VALUE v;
  if (!NIL_P(v = rb_hash_aref(h, sym_size))) {
    a->flags |= EVSSH_SFTP_ATTR_SIZE;
    a->size = NUM2ULL(v);
  }
  VALUE uid = rb_hash_aref(h, sym_uid), gid = rb_hash_aref(h, sym_gid);
  if (!NIL_P(uid) || !NIL_P(gid)) {
    if (NIL_P(uid) || NIL_P(gid)) rb_raise(rb_eArgError, "SFTP sets uid and gid together: give both");
    a->flags |= EVSSH_SFTP_ATTR_UIDGID;
    a->uid = u32_of(uid, "uid");
    a->gid = u32_of(gid, "gid");
  }
  if (!NIL_P(v = rb_hash_aref(h, sym_permissions))) {
    a->flags |= EVSSH_SFTP_ATTR_PERMISSIONS;
    a->permissions = u32_of(v, "permissions");
  }
  VALUE at = rb_hash_aref(h, sym_atime), mt = rb_hash_aref(h, sym_mtime);
  if (!NIL_P(at) || !NIL_P(mt)) {
    if (NIL_P(at) || NIL_P(mt)) rb_raise(rb_eArgError, "SFTP sets atime and mtime together: give both");
    a->flags |= EVSSH_SFTP_ATTR_ACMODTIME;
    a->atime = u32_of(at, "atime");
    a->mtime = u32_of(mt, "mtime");
  }
  if (!NIL_P(v = rb_hash_aref(h, sym_extended))) {
    /* [count, raw pairs] */
    Check_Type(v, T_ARRAY);
    if (RARRAY_LEN(v) != 2) rb_raise(rb_eArgError, "extended attributes: [count, raw]");
    VALUE raw = RARRAY_AREF(v, 1);
    StringValue(raw);
    a->flags |= EVSSH_SFTP_ATTR_EXTENDED;
    a->extended_count = u32_of(RARRAY_AREF(v, 0), "extended count");
    a->extended = (const unsigned char *)RSTRING_PTR(raw);
    a->extended_len = (size_t)RSTRING_LEN(raw);
    *keep = raw;
  }
}

/* ------------------------------------------------------------ trampolines */

static void t_status(evssh_sftp *sftp, int status, void *ud) { reply(sftp, ud, status, 0, Qnil); }

static void t_attrs(evssh_sftp *sftp, int status, const evssh_sftp_attrs *attrs, void *ud) {
  sreq *q = ud;
  VALUE payload = status == EVSSH_OK && attrs && live_rs(q->rf) ? attrs_to_hash(attrs) : Qnil;
  reply(sftp, q, status, 0, payload);
}

static void t_file(evssh_sftp *sftp, int status, evssh_sftp_file *file, void *ud, bool dir) {
  sreq *q = ud;
  rsftp *rf = q->rf;
  /* with no Ruby to take it (the session is being torn down) the handle
     stays with the sftp, which frees it */
  VALUE payload = status == EVSSH_OK && file && live_rs(rf) ? file_new(rf, file, dir) : Qnil;
  reply(sftp, q, status, 0, payload);
}
static void t_open(evssh_sftp *sftp, int status, evssh_sftp_file *file, void *ud) {
  t_file(sftp, status, file, ud, false);
}
static void t_opendir(evssh_sftp *sftp, int status, evssh_sftp_file *file, void *ud) {
  t_file(sftp, status, file, ud, true);
}

static void t_data(evssh_sftp *sftp, int status, const char *data, size_t len, void *ud) {
  sreq *q = ud;
  if (status == EVSSH_OK && len == 0) {
    reply(sftp, q, EVSSH_OK, EVSSH_SFTP_FX_EOF, Qnil);
    return;
  }
  VALUE payload = status == EVSSH_OK && live_rs(q->rf) ? rb_str_new(data, (long)len) : Qnil;
  reply(sftp, q, status, 0, payload);
}

static void t_names(evssh_sftp *sftp, int status, const evssh_sftp_name *names, size_t count, void *ud) {
  sreq *q = ud;
  if (status == EVSSH_OK && count == 0) {
    reply(sftp, q, EVSSH_OK, EVSSH_SFTP_FX_EOF, Qnil);
    return;
  }
  VALUE payload = Qnil;
  if (status == EVSSH_OK && live_rs(q->rf)) {
    payload = rb_ary_new_capa((long)count);
    for (size_t i = 0; i < count; i++) {
      const evssh_sftp_name *n = &names[i];
      rb_ary_push(payload, rb_ary_new_from_args(3, rb_str_new(n->filename, (long)n->filename_len),
                                                rb_str_new_cstr(n->longname ? n->longname : ""),
                                                attrs_to_hash(&n->attrs)));
    }
  }
  reply(sftp, q, status, 0, payload);
}

static void t_path(evssh_sftp *sftp, int status, const char *path, void *ud) {
  sreq *q = ud;
  VALUE payload = status == EVSSH_OK && path && live_rs(q->rf) ? rb_str_new_cstr(path) : Qnil;
  reply(sftp, q, status, 0, payload);
}

static void t_progress(evssh_sftp *sftp, uint64_t done, uint64_t total, void *ud) {
  sreq *q = ud;
  rsess *rs = live_rs(q->rf);
  if (!rs) return;
  VALUE self = q->rf->self;
  VALUE argv[3] = {ULONG2NUM(q->token), ULL2NUM(done), ULL2NUM(total)};
  ext_guarded_send(rs, self, id_progress, 3, argv, Qnil, NULL);
  RB_GC_GUARD(self);
}

static void t_done(evssh_sftp *sftp, int status, void *ud) {
  reply(sftp, ud, status, 0, ULL2NUM(evssh_sftp_transferred(sftp)));
}

static void t_ready(evssh_sftp *sftp, int status, void *ud) {
  rsftp *rf = ud;
  rf->ready_done = true;
  rf->ready_status = status;
  rsess *rs = live_rs(rf);
  if (!rs) return;
  const char *m = status == EVSSH_OK ? "" : evssh_sftp_error(sftp);
  VALUE self = rf->self;
  VALUE argv[2] = {INT2FIX(status), rb_str_new_cstr(m && *m ? m : evssh_strerror(status))};
  ext_guarded_send(rs, self, id_ready, 2, argv, Qnil, NULL);
  RB_GC_GUARD(self);
}

/* ---------------------------------------------------------- Ruby methods */

/* _open(ssh): the sftp subsystem on a new channel of the EvSSH::Session */
static VALUE rb_sftp_open(VALUE self, VALUE session) {
  rsftp *rf = get_rf(self);
  if (rf->sftp) rb_raise(rb_eRuntimeError, "the sftp session is already open");
  rsess *rs = ext_open_rs(session);
  rf->session = session;
  rf->rs = rs;
  rf->ready_done = false;
  rf->ready_status = 0;
  rf->sftp = evssh_sftp_open(rs->s, t_ready, rf);
  if (!rf->sftp)
    ext_raise_code(evssh_session_closed(rs->s) ? EVSSH_ECLOSED : EVSSH_ENOMEM, "cannot open an sftp channel");
  return self;
}

/* nil while the server's VERSION has not come, then 0 or the failure code */
static VALUE rb_sftp_ready_state(VALUE self) {
  rsftp *rf = get_rf(self);
  if (!usable(rf)) return INT2FIX(EVSSH_ECLOSED);
  return rf->ready_done ? INT2FIX(rf->ready_status) : Qnil;
}

static VALUE rb_sftp_ready_p(VALUE self) {
  rsftp *rf = get_rf(self);
  return usable(rf) && evssh_sftp_ready(rf->sftp) ? Qtrue : Qfalse;
}

static VALUE rb_sftp_error(VALUE self) {
  rsftp *rf = get_rf(self);
  return rf->sftp ? rb_str_new_cstr(evssh_sftp_error(rf->sftp)) : Qnil;
}

static VALUE rb_sftp_status(VALUE self) {
  rsftp *rf = get_rf(self);
  return rf->sftp ? UINT2NUM(evssh_sftp_status(rf->sftp)) : INT2FIX(0);
}

static VALUE rb_sftp_free(VALUE self) {
  free_sftp(get_rf(self));
  return Qnil;
}

static VALUE rb_sftp_extension(VALUE self, VALUE name) {
  rsftp *rf = live_rf(self);
  const char *v = evssh_sftp_extension(rf->sftp, StringValueCStr(name));
  return v ? rb_str_new_cstr(v) : Qnil;
}

static VALUE rb_sftp_limits(VALUE self) {
  rsftp *rf = live_rf(self);
  evssh_sftp_limits l;
  if (evssh_sftp_server_limits(rf->sftp, &l) != EVSSH_OK) return Qnil;
  return rb_ary_new_from_args(4, ULL2NUM(l.max_packet_length), ULL2NUM(l.max_read_length),
                              ULL2NUM(l.max_write_length), ULL2NUM(l.max_open_handles));
}

static VALUE rb_sftp_pending(VALUE self) {
  rsftp *rf = get_rf(self);
  return SIZET2NUM(usable(rf) ? evssh_sftp_pending(rf->sftp) : 0);
}

static const char *path_of(VALUE *v) {
  StringValue(*v);
  return StringValueCStr(*v);
}

/* _stat(token, path, follow): STAT, or LSTAT when follow is false */
static VALUE rb_sftp_stat(VALUE self, VALUE token, VALUE path, VALUE follow) {
  rsftp *rf = live_rf(self);
  const char *p = path_of(&path);
  sreq *q = new_req(rf, token);
  return sent(q, RTEST(follow) ? evssh_sftp_stat(rf->sftp, p, t_attrs, q) : evssh_sftp_lstat(rf->sftp, p, t_attrs, q));
}

static VALUE rb_sftp_fstat(VALUE self, VALUE token, VALUE handle) {
  rsftp *rf = live_rf(self);
  evssh_sftp_file *f = handle_of(rf, handle);
  sreq *q = new_req(rf, token);
  return sent(q, evssh_sftp_fstat(rf->sftp, f, t_attrs, q));
}

/* _setstat(token, path_or_handle, attrs) */
static VALUE rb_sftp_setstat(VALUE self, VALUE token, VALUE target, VALUE attrs) {
  rsftp *rf = live_rf(self);
  evssh_sftp_attrs a;
  VALUE keep;
  hash_to_attrs(attrs, &a, &keep);
  int rc;
  if (rb_typeddata_is_kind_of(target, &file_type)) {
    evssh_sftp_file *f = handle_of(rf, target);
    sreq *q = new_req(rf, token);
    rc = evssh_sftp_fsetstat(rf->sftp, f, &a, t_status, q);
    RB_GC_GUARD(keep);
    return sent(q, rc);
  }
  const char *p = path_of(&target);
  sreq *q = new_req(rf, token);
  rc = evssh_sftp_setstat(rf->sftp, p, &a, t_status, q);
  RB_GC_GUARD(keep);
  return sent(q, rc);
}

/* _open_file(token, path, pflags, attrs) */
static VALUE rb_sftp_open_file(VALUE self, VALUE token, VALUE path, VALUE pflags, VALUE attrs) {
  rsftp *rf = live_rf(self);
  const char *p = path_of(&path);
  evssh_sftp_attrs a;
  VALUE keep;
  hash_to_attrs(attrs, &a, &keep);
  sreq *q = new_req(rf, token);
  int rc = evssh_sftp_open_file(rf->sftp, p, NUM2UINT(pflags), NIL_P(attrs) ? NULL : &a, t_open, q);
  RB_GC_GUARD(keep);
  return sent(q, rc);
}

static VALUE rb_sftp_opendir(VALUE self, VALUE token, VALUE path) {
  rsftp *rf = live_rf(self);
  const char *p = path_of(&path);
  sreq *q = new_req(rf, token);
  return sent(q, evssh_sftp_opendir(rf->sftp, p, t_opendir, q));
}

/* _close(token, handle): the handle is unusable from here on */
static VALUE rb_sftp_close(VALUE self, VALUE token, VALUE handle) {
  rsftp *rf = live_rf(self);
  evssh_sftp_file *f = handle_of(rf, handle);
  sreq *q = new_req(rf, token);
  int rc = evssh_sftp_close(rf->sftp, f, t_status, q);
  if (rc == EVSSH_OK) ((rfile *)rb_check_typeddata(handle, &file_type))->f = NULL;
  return sent(q, rc);
}

static VALUE rb_sftp_read(VALUE self, VALUE token, VALUE handle, VALUE offset, VALUE len) {
  rsftp *rf = live_rf(self);
  evssh_sftp_file *f = handle_of(rf, handle);
  uint64_t off = NUM2ULL(offset);
  uint32_t n = u32_of(len, "read length");
  sreq *q = new_req(rf, token);
  return sent(q, evssh_sftp_read(rf->sftp, f, off, n, t_data, q));
}

static VALUE rb_sftp_write(VALUE self, VALUE token, VALUE handle, VALUE offset, VALUE data) {
  rsftp *rf = live_rf(self);
  evssh_sftp_file *f = handle_of(rf, handle);
  uint64_t off = NUM2ULL(offset);
  StringValue(data);
  sreq *q = new_req(rf, token);
  int rc = evssh_sftp_write(rf->sftp, f, off, RSTRING_PTR(data), (size_t)RSTRING_LEN(data), t_status, q);
  RB_GC_GUARD(data);
  return sent(q, rc);
}

static VALUE rb_sftp_readdir(VALUE self, VALUE token, VALUE handle) {
  rsftp *rf = live_rf(self);
  evssh_sftp_file *f = handle_of(rf, handle);
  sreq *q = new_req(rf, token);
  return sent(q, evssh_sftp_readdir(rf->sftp, f, t_names, q));
}

static VALUE rb_sftp_mkdir(VALUE self, VALUE token, VALUE path, VALUE attrs) {
  rsftp *rf = live_rf(self);
  const char *p = path_of(&path);
  evssh_sftp_attrs a;
  VALUE keep;
  hash_to_attrs(attrs, &a, &keep);
  sreq *q = new_req(rf, token);
  int rc = evssh_sftp_mkdir(rf->sftp, p, NIL_P(attrs) ? NULL : &a, t_status, q);
  RB_GC_GUARD(keep);
  return sent(q, rc);
}

/* one path, a status answer: rmdir, remove */
typedef int (*path_status_fn)(evssh_sftp *, const char *, evssh_sftp_cb, void *);
static VALUE path_status(VALUE self, VALUE token, VALUE path, path_status_fn fn) {
  rsftp *rf = live_rf(self);
  const char *p = path_of(&path);
  sreq *q = new_req(rf, token);
  return sent(q, fn(rf->sftp, p, t_status, q));
}
static VALUE rb_sftp_rmdir(VALUE self, VALUE token, VALUE path) { return path_status(self, token, path, evssh_sftp_rmdir); }
static VALUE rb_sftp_remove(VALUE self, VALUE token, VALUE path) {
  return path_status(self, token, path, evssh_sftp_remove);
}

/* two paths, a status answer: rename, posix-rename, symlink (target, link), hardlink */
typedef int (*two_paths_fn)(evssh_sftp *, const char *, const char *, evssh_sftp_cb, void *);
static VALUE two_paths(VALUE self, VALUE token, VALUE a, VALUE b, two_paths_fn fn) {
  rsftp *rf = live_rf(self);
  const char *pa = path_of(&a), *pb = path_of(&b);
  sreq *q = new_req(rf, token);
  int rc = fn(rf->sftp, pa, pb, t_status, q);
  RB_GC_GUARD(a);
  RB_GC_GUARD(b);
  return sent(q, rc);
}
static VALUE rb_sftp_rename(VALUE self, VALUE token, VALUE from, VALUE to, VALUE posix) {
  return two_paths(self, token, from, to, RTEST(posix) ? evssh_sftp_posix_rename : evssh_sftp_rename);
}
static VALUE rb_sftp_symlink(VALUE self, VALUE token, VALUE target, VALUE link) {
  return two_paths(self, token, target, link, evssh_sftp_symlink);
}
static VALUE rb_sftp_hardlink(VALUE self, VALUE token, VALUE from, VALUE to) {
  return two_paths(self, token, from, to, evssh_sftp_hardlink);
}

/* a path answered by a path: realpath, readlink */
typedef int (*path_path_fn)(evssh_sftp *, const char *, evssh_sftp_path_cb, void *);
static VALUE path_path(VALUE self, VALUE token, VALUE path, path_path_fn fn) {
  rsftp *rf = live_rf(self);
  const char *p = path_of(&path);
  sreq *q = new_req(rf, token);
  return sent(q, fn(rf->sftp, p, t_path, q));
}
static VALUE rb_sftp_realpath(VALUE self, VALUE token, VALUE path) {
  return path_path(self, token, path, evssh_sftp_realpath);
}
static VALUE rb_sftp_readlink(VALUE self, VALUE token, VALUE path) {
  return path_path(self, token, path, evssh_sftp_readlink);
}

static VALUE rb_sftp_fsync(VALUE self, VALUE token, VALUE handle) {
  rsftp *rf = live_rf(self);
  evssh_sftp_file *f = handle_of(rf, handle);
  sreq *q = new_req(rf, token);
  return sent(q, evssh_sftp_fsync(rf->sftp, f, t_status, q));
}

/* _transfer(token, upload, local, remote, progress): a whole file through
   libevssh's pipelined transfer; progress true asks for __evssh_progress */
static VALUE rb_sftp_transfer(VALUE self, VALUE token, VALUE upload, VALUE local, VALUE remote, VALUE progress) {
  rsftp *rf = live_rf(self);
  const char *l = path_of(&local), *r = path_of(&remote);
  sreq *q = new_req(rf, token);
  evssh_sftp_progress_cb pcb = RTEST(progress) ? t_progress : NULL;
  int rc = RTEST(upload) ? evssh_sftp_upload(rf->sftp, l, r, 0, pcb, t_done, q)
                         : evssh_sftp_download(rf->sftp, r, l, 0, pcb, t_done, q);
  RB_GC_GUARD(local);
  RB_GC_GUARD(remote);
  return sent(q, rc);
}

#endif /* HAVE_EVSSH_SFTP_OPEN */

/* called by Init_evssh_ext; internal to the .so like the other ext_init_* */
__attribute__((visibility("hidden"))) void ext_init_sftp(void);

__attribute__((visibility("hidden"))) void ext_init_sftp(void) {
#ifdef HAVE_EVSSH_SFTP_OPEN
  id_reply = rb_intern("__evssh_reply");
  id_progress = rb_intern("__evssh_progress");
  id_ready = rb_intern("__evssh_ready");
  sym_size = ID2SYM(rb_intern("size"));
  sym_uid = ID2SYM(rb_intern("uid"));
  sym_gid = ID2SYM(rb_intern("gid"));
  sym_permissions = ID2SYM(rb_intern("permissions"));
  sym_atime = ID2SYM(rb_intern("atime"));
  sym_mtime = ID2SYM(rb_intern("mtime"));
  sym_extended = ID2SYM(rb_intern("extended"));

  mSFTP = rb_define_module_under(ext_mEvSSH, "SFTP");
  cSFTPSession = rb_define_class_under(mSFTP, "Session", rb_cObject);
  rb_define_alloc_func(cSFTPSession, sftp_alloc);
  rb_define_private_method(cSFTPSession, "_open", rb_sftp_open, 1);
  rb_define_private_method(cSFTPSession, "_ready_state", rb_sftp_ready_state, 0);
  rb_define_private_method(cSFTPSession, "_ready?", rb_sftp_ready_p, 0);
  rb_define_private_method(cSFTPSession, "_error", rb_sftp_error, 0);
  rb_define_private_method(cSFTPSession, "_status", rb_sftp_status, 0);
  rb_define_private_method(cSFTPSession, "_free", rb_sftp_free, 0);
  rb_define_method(cSFTPSession, "extension", rb_sftp_extension, 1);
  rb_define_private_method(cSFTPSession, "_limits", rb_sftp_limits, 0);
  rb_define_private_method(cSFTPSession, "_pending", rb_sftp_pending, 0);
  rb_define_private_method(cSFTPSession, "_stat", rb_sftp_stat, 3);
  rb_define_private_method(cSFTPSession, "_fstat", rb_sftp_fstat, 2);
  rb_define_private_method(cSFTPSession, "_setstat", rb_sftp_setstat, 3);
  rb_define_private_method(cSFTPSession, "_open_file", rb_sftp_open_file, 4);
  rb_define_private_method(cSFTPSession, "_opendir", rb_sftp_opendir, 2);
  rb_define_private_method(cSFTPSession, "_close", rb_sftp_close, 2);
  rb_define_private_method(cSFTPSession, "_read", rb_sftp_read, 4);
  rb_define_private_method(cSFTPSession, "_write", rb_sftp_write, 4);
  rb_define_private_method(cSFTPSession, "_readdir", rb_sftp_readdir, 2);
  rb_define_private_method(cSFTPSession, "_mkdir", rb_sftp_mkdir, 3);
  rb_define_private_method(cSFTPSession, "_rmdir", rb_sftp_rmdir, 2);
  rb_define_private_method(cSFTPSession, "_remove", rb_sftp_remove, 2);
  rb_define_private_method(cSFTPSession, "_rename", rb_sftp_rename, 4);
  rb_define_private_method(cSFTPSession, "_symlink", rb_sftp_symlink, 3);
  rb_define_private_method(cSFTPSession, "_hardlink", rb_sftp_hardlink, 3);
  rb_define_private_method(cSFTPSession, "_realpath", rb_sftp_realpath, 2);
  rb_define_private_method(cSFTPSession, "_readlink", rb_sftp_readlink, 2);
  rb_define_private_method(cSFTPSession, "_fsync", rb_sftp_fsync, 2);
  rb_define_private_method(cSFTPSession, "_transfer", rb_sftp_transfer, 5);

  cHandle = rb_define_class_under(mSFTP, "Handle", rb_cObject);
  rb_undef_alloc_func(cHandle);
  rb_define_method(cHandle, "path", handle_path, 0);
  rb_define_method(cHandle, "open?", handle_open_p, 0);
  rb_define_method(cHandle, "directory?", handle_dir_p, 0);
#endif
}
