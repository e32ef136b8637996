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

# Calls of libevssh that newer versions add. Each is checked by compiling a
# use with the exact types the binding relies on, so a library whose call has
# another shape leaves the feature out (its tests then fail and say so)
# instead of breaking the build.
{
  "EVSSH_SESSION_ALGORITHM" =>
    "const char *v = evssh_session_algorithm((evssh_session *)0, \"kex\"); (void)v;",
  "EVSSH_SESSION_HOST_KEY" =>
    "const char *t; const unsigned char *b; size_t n; " \
    "int rc = evssh_session_host_key((evssh_session *)0, &t, &b, &n); (void)rc;",
  "EVSSH_CHANNEL_PENDING" =>
    "size_t n = evssh_channel_pending((const evssh_channel *)0); (void)n;",
  "EVSSH_CHANNEL_REMOTE_ID" =>
    "uint32_t id; int rc = evssh_channel_remote_id((evssh_channel *)0, &id); (void)rc;",
  "EVSSH_CHANNEL_WINDOWS" =>
    "evssh_channel_windows w; int rc = evssh_channel_windows_get((evssh_channel *)0, &w); " \
    "(void)w.local_window; (void)w.local_max_window; (void)w.local_max_packet; " \
    "(void)w.remote_window; (void)w.remote_max_window; (void)w.remote_max_packet; (void)rc;"
}.each do |name, body|
  src = "#include <evssh.h>\nint main(void) { #{body} return 0; }\n"
  ok = checking_for("libevssh #{name.downcase}") { try_link(src) }
  $defs << "-DHAVE_#{name}" if ok
end
create_makefile("evssh/evssh_ext")
