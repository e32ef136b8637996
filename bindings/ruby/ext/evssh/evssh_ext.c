/* evssh_ext.c is the entry point of the C half of the Ruby binding: it owns
 * Init_evssh_ext, the EvSSH::Error hierarchy (one class per EVSSH_E* code,
 * with HostKeyError split into Mismatch/Unknown by libevssh's message) and
 * the interned method names and symbols every other ext_*.c file uses; each
 * of those files registers its own Ruby methods through its ext_init_*.
 * evssh_ext.h explains the rules (GVL, lifetimes, exceptions) they share. */
#include "evssh_ext.h"

VALUE ext_mEvSSH, ext_cSession, ext_cChannel;
VALUE ext_eChannelOpenFailed, ext_eChannelRequestFailed, ext_eClosed;
ID ext_id_call, ext_id_send_pending, ext_id_pending_write, ext_id_closed_p, ext_id_fileno, ext_id_to_io,
    ext_id_print, ext_id_default_listener, ext_id_force_encoding, ext_id_new;
VALUE ext_sym_stdout, ext_sym_stderr, ext_sym_sent, ext_sym_exit_code, ext_sym_exit_signal;

static VALUE eError, eHostKeyError, eHostKeyMismatch, eHostKeyUnknown;
static VALUE error_classes[16]; /* indexed by -code */
static ID id_fill, id_respond_to, id_code, id_reason, id_aset;

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

VALUE ext_make_error(int code, const char *msg) {
  if (!msg || !*msg) msg = evssh_strerror(code);
  VALUE e = rb_exc_new_cstr(error_class_for(code, msg), msg);
  rb_ivar_set(e, rb_intern("@code"), INT2FIX(code));
  return e;
}

void ext_raise_code(int code, const char *msg) { rb_exc_raise(ext_make_error(code, msg)); }

static VALUE def_error(const char *name, VALUE super, int code) {
  VALUE k = rb_define_class_under(ext_mEvSSH, name, super);
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
  ext_id_call = rb_intern("call");
  id_fill = rb_intern("fill");
  ext_id_send_pending = rb_intern("send_pending");
  ext_id_pending_write = rb_intern("pending_write?");
  id_respond_to = rb_intern("respond_to?");
  ext_id_closed_p = rb_intern("closed?");
  ext_id_fileno = rb_intern("fileno");
  ext_id_to_io = rb_intern("to_io");
  ext_id_print = rb_intern("print");
  id_code = rb_intern("code");
  id_reason = rb_intern("reason");
  ext_id_default_listener = rb_intern("__evssh_default_listener");
  ext_id_force_encoding = rb_intern("force_encoding");
  ext_id_new = rb_intern("new");
  id_aset = rb_intern("[]=");
  ext_sym_stdout = ID2SYM(rb_intern("stdout"));
  ext_sym_stderr = ID2SYM(rb_intern("stderr"));
  ext_sym_sent = ID2SYM(rb_intern("sent"));
  ext_sym_exit_code = ID2SYM(rb_intern("exit_code"));
  ext_sym_exit_signal = ID2SYM(rb_intern("exit_signal"));

  ext_mEvSSH = rb_define_module("EvSSH");
  /* classes are constants, never collected: no registration needed */
  memset(error_classes, 0, sizeof error_classes);
  eError = rb_define_class_under(ext_mEvSSH, "Error", rb_eStandardError);
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
  ext_eClosed = def_error("Closed", eError, EVSSH_ECLOSED);
  def_error("Disconnected", eError, EVSSH_EDISCONNECT);
  def_error("Busy", eError, EVSSH_EBUSY);
  def_error("NoAlgorithm", eError, EVSSH_ENOALGO);
  ext_eChannelOpenFailed = def_error("ChannelOpenFailed", eError, EVSSH_ECHANNEL);
  ext_eChannelRequestFailed = def_error("ChannelRequestFailed", eError, 0);
  (void)conn;
  rb_define_module_function(ext_mEvSSH, "strerror", s_strerror, 1);

  ext_init_buffer();
  ext_init_session();
  ext_init_listen();
  ext_init_channel();
  ext_init_multi();
}
