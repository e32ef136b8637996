/* evssh_ext.c is the entry point of the C half of the Ruby binding: it owns
 * Init_evssh_ext, the exception classes (Net::SSH's tree: EvSSH::Exception <
 * RuntimeError, one class per EVSSH_E* code, HostKeyError split into
 * Mismatch/Unknown) and the interned method names and symbols every other
 * ext_*.c file uses; each of those files registers its own Ruby methods
 * through its ext_init_*. Which exception a C code becomes (an Errno class
 * for a refused connect, as Net::SSH raises it; Net::SSH's own classes under
 * the evssh/net_ssh shim) is decided in Ruby, by EvSSH.__exception_for.
 * evssh_ext.h explains the rules (GVL, lifetimes, exceptions) they share. */
#include "evssh_ext.h"

VALUE ext_mEvSSH, ext_cSession, ext_cChannel;
VALUE ext_eChannelOpenFailed, ext_eChannelRequestFailed, ext_eClosed, ext_eBusy;
ID ext_id_call, ext_id_send_pending, ext_id_pending_write, ext_id_closed_p, ext_id_fileno, ext_id_to_io,
    ext_id_print, ext_id_default_listener, ext_id_force_encoding, ext_id_new;
VALUE ext_sym_stdout, ext_sym_stderr, ext_sym_sent, ext_sym_exit_code, ext_sym_exit_signal;

static VALUE eException;
static VALUE error_classes[16]; /* indexed by -code */
static ID id_exception_for;

/* ------------------------------------------------------------------ errors */

static VALUE error_class_for(int code) {
  int i = -code;
  if (i > 0 && i < (int)(sizeof error_classes / sizeof error_classes[0]) && error_classes[i])
    return error_classes[i];
  return eException;
}

static VALUE make_error(int code, const char *msg, bool connecting, int sys_errno) {
  if (!msg || !*msg) msg = evssh_strerror(code);
  VALUE m = rb_str_new_cstr(msg);
  if (rb_respond_to(ext_mEvSSH, id_exception_for))
    return rb_funcall(ext_mEvSSH, id_exception_for, 4, INT2FIX(code), m, connecting ? Qtrue : Qfalse,
                      INT2FIX(sys_errno));
  /* the Ruby half is not loaded (the extension required on its own) */
  VALUE e = rb_exc_new_str(error_class_for(code), m);
  rb_ivar_set(e, rb_intern("@code"), INT2FIX(code));
  return e;
}

VALUE ext_make_error(int code, const char *msg) { return make_error(code, msg, false, 0); }
VALUE ext_make_connect_error(int code, const char *msg, int sys_errno) { return make_error(code, msg, true, sys_errno); }

void ext_raise_code(int code, const char *msg) { rb_exc_raise(ext_make_error(code, msg)); }

static VALUE def_error(const char *name, VALUE super, int code) {
  VALUE k = rb_define_class_under(ext_mEvSSH, name, super);
  if (code < 0) {
    rb_define_const(k, "CODE", INT2FIX(code));
    if (!error_classes[-code]) error_classes[-code] = k;
  }
  return k;
}

static VALUE s_strerror(VALUE mod, VALUE code) { return rb_str_new_cstr(evssh_strerror(NUM2INT(code))); }

/* EvSSH.__error_class(code): the class of a C code (EvSSH::Exception when unknown) */
static VALUE s_error_class(VALUE mod, VALUE code) { return error_class_for(NUM2INT(code)); }

/* EvSSH.__io_buffered(io): bytes in io's Ruby read buffer, read from the
   kernel but not consumed yet (a proxy's reply read with gets may hold the
   server's first bytes there, where libevssh would never see them) */
static VALUE s_io_buffered(VALUE mod, VALUE io) {
  rb_io_t *fptr;
  io = rb_io_get_io(io);
  GetOpenFile(io, fptr);
  return INT2FIX(rb_io_read_pending(fptr) ? (int)fptr->rbuf.len : 0);
}

void Init_evssh_ext(void); /* called by Ruby's require */

void Init_evssh_ext(void) {
  ext_id_call = rb_intern("call");
  ext_id_send_pending = rb_intern("send_pending");
  ext_id_pending_write = rb_intern("pending_write?");
  ext_id_closed_p = rb_intern("closed?");
  ext_id_fileno = rb_intern("fileno");
  ext_id_to_io = rb_intern("to_io");
  ext_id_print = rb_intern("print");
  ext_id_default_listener = rb_intern("__evssh_default_listener");
  ext_id_force_encoding = rb_intern("force_encoding");
  ext_id_new = rb_intern("new");
  id_exception_for = rb_intern("__exception_for");
  ext_sym_stdout = ID2SYM(rb_intern("stdout"));
  ext_sym_stderr = ID2SYM(rb_intern("stderr"));
  ext_sym_sent = ID2SYM(rb_intern("sent"));
  ext_sym_exit_code = ID2SYM(rb_intern("exit_code"));
  ext_sym_exit_signal = ID2SYM(rb_intern("exit_signal"));

  ext_mEvSSH = rb_define_module("EvSSH");
  /* classes are constants, never collected: no registration needed */
  memset(error_classes, 0, sizeof error_classes);
  /* Net::SSH::Exception < RuntimeError; EvSSH::Error is the older name */
  eException = rb_define_class_under(ext_mEvSSH, "Exception", rb_eRuntimeError);
  rb_define_const(ext_mEvSSH, "Error", eException);
  rb_define_attr(eException, "code", 1, 0);
  def_error("InvalidArgument", eException, EVSSH_EINVAL);
  def_error("NoMemory", eException, EVSSH_ENOMEM);
  def_error("ConnectionError", eException, EVSSH_ECONNECT);
  def_error("ConnectionTimeout", eException, EVSSH_ETIMEOUT);
  def_error("ProtocolError", eException, EVSSH_EPROTO);
  VALUE hk = def_error("HostKeyError", eException, EVSSH_EHOSTKEY);
  VALUE mismatch = def_error("HostKeyMismatch", hk, 0);
  def_error("HostKeyUnknown", hk, 0);
  def_error("AuthenticationFailed", eException, EVSSH_EAUTH);
  /* using a closed session or channel is an IOError in Net::SSH too */
  ext_eClosed = def_error("Closed", rb_eIOError, EVSSH_ECLOSED);
  VALUE disc = def_error("Disconnect", eException, EVSSH_EDISCONNECT);
  def_error("Timeout", disc, 0);
  ext_eBusy = def_error("Busy", eException, EVSSH_EBUSY);
  def_error("NoAlgorithm", eException, EVSSH_ENOALGO);
  ext_eChannelOpenFailed = def_error("ChannelOpenFailed", eException, EVSSH_ECHANNEL);
  ext_eChannelRequestFailed = def_error("ChannelRequestFailed", eException, 0);
  /* EVSSH_EHOSTKEY_CHANGED (-14): the key differs from known_hosts */
  error_classes[14] = mismatch;
  rb_define_module_function(ext_mEvSSH, "strerror", s_strerror, 1);
  rb_define_module_function(ext_mEvSSH, "__error_class", s_error_class, 1);
  rb_define_module_function(ext_mEvSSH, "__io_buffered", s_io_buffered, 1);

  ext_init_buffer();
  ext_init_session();
  ext_init_listen();
  ext_init_channel();
  ext_init_multi();
  ext_init_key();
  ext_init_forward();
  ext_init_sftp();
}
