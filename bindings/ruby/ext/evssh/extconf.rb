# Builds the C half of the evssh gem. The library is taken from the source
# tree this gem sits in (../../include, ../../.libs) when that tree has been
# built, so `make check` tests the library it just built; otherwise from an
# installed evssh found through pkg-config. EVSSH_DIR=/prefix overrides both.
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
  pkg_config("evssh") or abort "evssh not found: build the source tree or install evssh (pkg-config evssh)"
end

$CFLAGS << " -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers"
have_header("evssh.h") or abort "evssh.h not found"
have_library("evssh", "evssh_session_new", "evssh.h") or abort "libevssh not found"
have_func("evssh_multi_new", "evssh.h")
have_func("rb_thread_call_without_gvl", "ruby/thread.h")
create_makefile("evssh/evssh_ext")
