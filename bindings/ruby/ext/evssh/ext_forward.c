/* ext_forward.c owns the session's side of EvSSH::Forward (Net::SSH's
 * session.forward): thin calls into libevssh's forwarding (evssh_forward_*),
 * which listens, accepts, opens the channels and relays with bounded memory
 * in the session's loop. The bookkeeping Net::SSH shows (active_locals,
 * active_remotes, the remote block's :error / :no_exception) is the Ruby
 * half's (lib/evssh/forward.rb); a remote forward's answer reaches it as
 * Session#__forward_reply(token, status, bound_port). */
#include "evssh_ext.h"

static ID id_forward_reply;

static const char *opt_cstr(VALUE v) { return NIL_P(v) ? NULL : StringValueCStr(v); }

static void forward_raise(rsess *rs, int rc) { ext_raise_code(rc, evssh_session_error(rs->s)); }

/* _forward_local(bind, port, host, hostport): the port listened on */
static VALUE sess_forward_local(VALUE self, VALUE bind, VALUE port, VALUE host, VALUE hostport) {
  rsess *rs = ext_open_rs(self);
  int bound = 0;
  int rc = evssh_forward_local(rs->s, opt_cstr(bind), NUM2INT(port), StringValueCStr(host), NUM2INT(hostport), &bound);
  if (rc) forward_raise(rs, rc);
  return INT2FIX(bound);
}

static VALUE sess_forward_local_socket(VALUE self, VALUE local_path, VALUE remote_path) {
  rsess *rs = ext_open_rs(self);
  int rc = evssh_forward_local_socket(rs->s, StringValueCStr(local_path), StringValueCStr(remote_path));
  if (rc) forward_raise(rs, rc);
  return self;
}

/* _forward_dynamic(bind, port): a SOCKS listener, the port listened on */
static VALUE sess_forward_dynamic(VALUE self, VALUE bind, VALUE port) {
  rsess *rs = ext_open_rs(self);
  int bound = 0;
  int rc = evssh_forward_dynamic(rs->s, opt_cstr(bind), NUM2INT(port), &bound);
  if (rc) forward_raise(rs, rc);
  return INT2FIX(bound);
}

/* true when cancelled, false when there was no such forward */
static VALUE sess_forward_cancel_local(VALUE self, VALUE bind, VALUE port) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) return Qfalse;
  int rc = evssh_forward_cancel_local(rs->s, opt_cstr(bind), NUM2INT(port));
  if (rc == EVSSH_EINVAL) return Qfalse;
  if (rc) forward_raise(rs, rc);
  return Qtrue;
}

static VALUE sess_forward_cancel_remote(VALUE self, VALUE bind, VALUE port) {
  rsess *rs = ext_get_rs(self);
  if (!rs->s) return Qfalse;
  int rc = evssh_forward_cancel_remote(rs->s, opt_cstr(bind), NUM2INT(port));
  if (rc == EVSSH_EINVAL) return Qfalse;
  if (rc) forward_raise(rs, rc);
  return Qtrue;
}

static void t_forward_reply(evssh_session *s, int status, int bound_port, void *ud) {
  rsess *rs = ext_live_rs(s);
  if (!rs) return;
  VALUE argv[3] = {ULONG2NUM((unsigned long)(uintptr_t)ud), INT2FIX(status), INT2FIX(bound_port)};
  ext_guarded_send(rs, rs->self, id_forward_reply, 3, argv, Qnil, NULL);
}

/* _forward_remote(bind, port, host, hostport, token): the answer goes to
   __forward_reply(token, ...); remote_socket when bind is a path */
static VALUE sess_forward_remote(VALUE self, VALUE bind, VALUE port, VALUE host, VALUE hostport, VALUE token) {
  rsess *rs = ext_open_rs(self);
  void *ud = (void *)(uintptr_t)NUM2ULONG(token);
  const char *b = opt_cstr(bind);
  int rc = b && b[0] == '/'
               ? evssh_forward_remote_socket(rs->s, b, StringValueCStr(host), NUM2INT(hostport), t_forward_reply, ud)
               : evssh_forward_remote(rs->s, b, NUM2INT(port), StringValueCStr(host), NUM2INT(hostport),
                                      t_forward_reply, ud);
  if (rc) forward_raise(rs, rc);
  return self;
}

static VALUE opt_str(const char *s) { return s ? rb_str_new_cstr(s) : Qnil; }

/* _forward_list: [[kind, bind, port, bound_port, host, hostport, active,
   connections], ...], kind :local / :remote / :dynamic */
static VALUE sess_forward_list(VALUE self) {
  rsess *rs = ext_get_rs(self);
  VALUE out = rb_ary_new();
  if (!rs->s) return out;
  size_t n = evssh_forward_list(rs->s, NULL, 0);
  if (n == 0) return out;
  evssh_forward_info *v = ALLOC_N(evssh_forward_info, n);
  n = evssh_forward_list(rs->s, v, n);
  for (size_t i = 0; i < n; i++) {
    const char *k = v[i].kind == EVSSH_FORWARD_LOCAL ? "local" : v[i].kind == EVSSH_FORWARD_REMOTE ? "remote" : "dynamic";
    VALUE row[8] = {ID2SYM(rb_intern(k)), opt_str(v[i].bind_address), INT2FIX(v[i].port), INT2FIX(v[i].bound_port),
                    opt_str(v[i].host), INT2FIX(v[i].hostport), v[i].active ? Qtrue : Qfalse,
                    SIZET2NUM(v[i].connections)};
    rb_ary_push(out, rb_ary_new_from_values(8, row));
  }
  xfree(v);
  return out;
}

void ext_init_forward(void) {
  id_forward_reply = rb_intern("__forward_reply");
  rb_define_method(ext_cSession, "_forward_local", sess_forward_local, 4);
  rb_define_method(ext_cSession, "_forward_local_socket", sess_forward_local_socket, 2);
  rb_define_method(ext_cSession, "_forward_dynamic", sess_forward_dynamic, 2);
  rb_define_method(ext_cSession, "_forward_cancel_local", sess_forward_cancel_local, 2);
  rb_define_method(ext_cSession, "_forward_remote", sess_forward_remote, 5);
  rb_define_method(ext_cSession, "_forward_cancel_remote", sess_forward_cancel_remote, 2);
  rb_define_method(ext_cSession, "_forward_list", sess_forward_list, 0);
}
