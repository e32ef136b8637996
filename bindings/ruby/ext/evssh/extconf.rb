# Builds the C half of the evssh gem. The library is taken from the source
# tree this gem sits in (../../include, ../../.libs) when that tree has been
# built, so `make check` tests the library it just built; otherwise from an
# installed evssh found through pkg-config (as `gem install` does).
# EVSSH_DIR=/prefix overrides both; EVSSH_USE_PKG_CONFIG=1 skips the tree.
require "mkmf"

tree = File.expand_path("../../../..", __dir__)
# make check passes the build tree, which is the source tree only for an
# in-tree build (scripts/test.sh builds out of tree)
build_tree = ENV["EVSSH_BUILDDIR"].to_s.empty? ? tree : ENV["EVSSH_BUILDDIR"]
in_tree = File.exist?(File.join(tree, "include", "evssh.h")) &&
          Dir[File.join(build_tree, ".libs", "libevssh.{so,a,dylib}")].any?

if ENV["EVSSH_DIR"]
  dir = ENV["EVSSH_DIR"]
  $INCFLAGS << " -I#{dir}/include"
  $LDFLAGS << " -L#{dir}/lib -Wl,-rpath,#{dir}/lib"
elsif in_tree && ENV["EVSSH_USE_PKG_CONFIG"].to_s.empty?
  libs = File.join(build_tree, ".libs")
  $INCFLAGS << " -I#{File.join(tree, 'include')}"
  $LDFLAGS << " -L#{libs} -Wl,-rpath,#{libs}"
else
  flags = pkg_config("evssh") or abort "evssh not found: install libevssh (pkg-config evssh) or set EVSSH_DIR"
  # an installed library outside the loader's path (a --prefix of one's own)
  libdir = `pkg-config --variable=libdir evssh`.strip
  $LDFLAGS << " -Wl,-rpath,#{libdir}" if flags && !libdir.empty?
end

$CFLAGS << " -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers"
have_header("evssh.h") or abort "evssh.h not found"
have_library("evssh", "evssh_session_new", "evssh.h") or abort "libevssh not found"
have_func("evssh_multi_new", "evssh.h")
have_func("evssh_sftp_open", "evssh.h")
have_func("rb_thread_call_without_gvl", "ruby/thread.h")

# The libevssh calls the binding is built on, beyond the first milestone's:
# each is checked by compiling a use with the exact types the binding
# relies on, so an older library fails here, naming what it lacks, instead
# of halfway through the compile.
{
  "evssh_session_algorithm" => "const char *v = evssh_session_algorithm((evssh_session *)0, \"kex\"); (void)v;",
  "evssh_session_host_key" =>
    "const char *t; const unsigned char *b; size_t n; " \
    "int rc = evssh_session_host_key((evssh_session *)0, &t, &b, &n); (void)rc;",
  "evssh_channel_pending / on_drain / pause" =>
    "size_t n = evssh_channel_pending((const evssh_channel *)0); (void)n; " \
    "evssh_channel_on_drain((evssh_channel *)0, 0, (evssh_channel_cb)0, (void *)0); " \
    "int rc = evssh_channel_pause((evssh_channel *)0, true); (void)rc;",
  "evssh_channel_remote_id" => "uint32_t id; int rc = evssh_channel_remote_id((evssh_channel *)0, &id); (void)rc;",
  "evssh_channel_windows_get" =>
    "evssh_channel_windows w; int rc = evssh_channel_windows_get((evssh_channel *)0, &w); " \
    "(void)w.local_window; (void)w.remote_max_packet; (void)rc;",
  "evssh_session_set_fd / server_version / rekey / sys_errno" =>
    "int rc = evssh_session_set_fd((evssh_session *)0, 0); const char *v = evssh_session_server_version(0); " \
    "rc = evssh_session_rekey((evssh_session *)0); bool r = evssh_session_rekeying(0); " \
    "rc = evssh_session_sys_errno(0); (void)rc; (void)v; (void)r;",
  "evssh_supported_algorithms" =>
    "const char *a = evssh_supported_algorithms(\"kex\"); a = evssh_default_algorithms(\"kex\"); (void)a;",
  "evssh_key_load_data" =>
    "evssh_key *k; evssh_error e; int rc = evssh_key_load_data(\"\", 0, \"\", 0, &k, &e); (void)rc; " \
    "const unsigned char *b; size_t n; rc = evssh_key_public_blob(k, &b, &n); char fp[64]; " \
    "rc = evssh_key_fingerprint(k, fp, sizeof fp); rc = evssh_key_sign(k, \"\", b, n, (evssh_buf *)0); " \
    "(void)evssh_key_type(k); (void)evssh_key_comment(k); evssh_key_free(k);",
  "evssh_forward_*" =>
    "int p; int rc = evssh_forward_local((evssh_session *)0, \"\", 0, \"h\", 1, &p); " \
    "rc = evssh_forward_local_socket(0, \"a\", \"b\"); rc = evssh_forward_dynamic(0, 0, 0, &p); " \
    "rc = evssh_forward_cancel_local(0, 0, 0); rc = evssh_forward_cancel_remote(0, 0, 0); " \
    "rc = evssh_forward_remote(0, 0, 0, \"h\", 1, (evssh_forward_cb)0, 0); " \
    "rc = evssh_forward_remote_socket(0, \"/p\", \"h\", 1, (evssh_forward_cb)0, 0); " \
    "rc = evssh_channel_request_agent((evssh_channel *)0, (evssh_reply_cb)0, 0); " \
    "evssh_forward_info i; size_t n = evssh_forward_list(0, &i, 1); (void)n; (void)i.connections; (void)rc;"
}.each do |name, body|
  src = "#include <evssh.h>\nint main(void) { #{body} return 0; }\n"
  checking_for("libevssh #{name}") { try_link(src) } or
    abort "libevssh too old for this gem: #{name} is missing (build the library of the same release)"
end
create_makefile("evssh/evssh_ext")
