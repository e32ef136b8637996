#!/bin/sh
# make check: every C code block of README.md and docs/*.md compiles against
# the installed evssh (a DESTDIR install of this build tree, made by the
# test/docs-root.stamp rule), so the documentation cannot drift from the
# headers and the library. Blocks that define main() are linked against the
# installed libevssh too. Also checks that each installed header compiles on
# its own as C99 and as C++.
#
# How a block is taken (HACKING.md, "Code blocks in the docs"): a block
# opened by a line that is exactly ```c is a whole file, unless the last
# non-blank line before it is a directive:
#   <!-- doc-test: file -->                 a whole file (the default)
#   <!-- doc-test: body(PARAMS) -->         statements, compiled as the body
#                                           of static void f(PARAMS)
#   <!-- doc-test: skip REASON -->          not compiled; REASON is required
#   ... requires NAME...                    after file or body: compiled only
#                                           once the installed evssh.h
#                                           declares every NAME
# Lines after the directive's first line, up to -->, are hidden code put
# before the block at file scope (helpers the block uses but does not show).
# Body blocks, and blocks with hidden code, get <evssh.h> and the usual libc
# headers included first. A block
# including <evssh/adapters/X.h> is built with that loop's flags, and
# skipped (saying so) when configure did not find the loop.
set -u
src=${EVSSH_SRCDIR:?}
root=${EVSSH_DOC_ROOT:?}
inc="$root${EVSSH_INCLUDEDIR:?}"
lib="$root${EVSSH_LIBDIR:?}"
cc=${EVSSH_CC:-cc}
if [ ! -f "$inc/evssh.h" ]; then
  echo "FAIL: no installed header at $inc/evssh.h (the test/docs-root.stamp rule installs it)"
  exit 1
fi
tmp=test/docs-compile.tmp
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
warn="-Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-variable -Wno-unused-function -Wno-unused-but-set-variable"

# ------------------------------------------------ extract the blocks
# manifest: id <TAB> file <TAB> first line of code <TAB> directive
(cd "$src" && ls README.md docs/*.md) >"$tmp/files" || exit 1
(cd "$src" && awk -v tmp="$OLDPWD/$tmp" '
  function fail(msg) { printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"; bad = 1 }
  FNR == 1 {
    if (dir != "" || inblock || collecting) fail("the previous file ends inside a code block or a directive")
    inblock = 0; collecting = 0; dir = ""
  }
  inblock {
    if ($0 ~ /^```[ \t]*$/) { close(body); inblock = 0; next }
    print > body; next
  }
  collecting {
    if (index($0, "-->")) { line = $0; sub(/-->.*/, "", line); if (line ~ /[^ \t]/) hidden = hidden line "\n"; collecting = 0 }
    else hidden = hidden $0 "\n"
    next
  }
  /^<!-- doc-test:/ {
    if (dir != "") fail("two doc-test directives in a row")
    d = $0; sub(/^<!-- doc-test:[ \t]*/, "", d)
    if (index(d, "-->")) sub(/[ \t]*-->.*/, "", d); else collecting = 1
    if (d !~ /^(file|body|skip|requires)/) fail("unknown doc-test directive: " d)
    if (d ~ /^skip[ \t]*$/) fail("doc-test: skip needs a reason")
    dir = d; hidden = ""; next
  }
  /^```c[ \t]*$/ {
    n++
    body = sprintf("%s/%03d.body", tmp, n)
    printf "" > body
    printf "%s", hidden > sprintf("%s/%03d.hidden", tmp, n); close(sprintf("%s/%03d.hidden", tmp, n))
    printf "%03d\t%s\t%d\t%s\n", n, FILENAME, FNR + 1, dir > (tmp "/manifest")
    inblock = 1; dir = ""; hidden = ""; next
  }
  /[^ \t]/ { if (dir != "") fail("doc-test directive not followed by a ```c block"); dir = "" }
  END { if (inblock) fail("unterminated code block"); exit bad }
' $(cat "$OLDPWD/$tmp/files")) || { echo "FAIL: malformed doc-test directives (above)"; exit 1; }
[ -f "$tmp/manifest" ] || : >"$tmp/manifest"

# ---------------------------------------------------- compile each one
# what the installed header declares, comments stripped (they mention
# functions that other branches are still adding)
$cc -E -P -I"$inc" -x c "$inc/evssh.h" >"$tmp/declared" || { echo "FAIL: cannot preprocess $inc/evssh.h"; exit 1; }
pass=0 skip=0 fail=0
tab=$(printf '\t')
while IFS="$tab" read -r id file line dir; do
  where="$file:$line"
  mode=file params="void" requires="" reason=""
  case "$dir" in
    skip*) mode=skip; reason=${dir#skip} ;;
    body*) mode=body
           rest=${dir#body}
           case "$rest" in
             "("*) params=${rest#(}; params=${params%%)*}; rest=${rest#*)} ;;
           esac
           [ -n "$params" ] || params=void
           dir=$rest ;;
    file*) dir=${dir#file} ;;
  esac
  case "$dir" in
    *requires*) requires=${dir#*requires} ;;
  esac
  if [ "$mode" = skip ]; then
    echo "skip $where:$reason"
    skip=$((skip + 1)); continue
  fi
  missing=""
  for name in $requires; do
    grep -qw "$name" "$tmp/declared" || missing="$missing $name"
  done
  if [ -n "$missing" ]; then
    echo "SKIP $where: needs$missing, which the installed evssh.h does not declare yet"
    skip=$((skip + 1)); continue
  fi
  flags="" libs="" noloop=""
  for loop in libuv libevent libev; do
    grep -q "evssh/adapters/$loop\.h" "$tmp/$id.body" "$tmp/$id.hidden" || continue
    case $loop in
      libuv) have=${HAVE_LIBUV:-no}; flags="$flags ${LIBUV_CFLAGS:-}"; libs="$libs ${LIBUV_LIBS:-}" ;;
      libevent) have=${HAVE_LIBEVENT:-no}; flags="$flags ${LIBEVENT_CFLAGS:-}"; libs="$libs ${LIBEVENT_LIBS:-}" ;;
      libev) have=${HAVE_LIBEV:-no}; flags="$flags ${LIBEV_CFLAGS:-}"; libs="$libs ${LIBEV_LIBS:-}" ;;
    esac
    [ "$have" = yes ] || noloop="$noloop $loop"
  done
  if [ -n "$noloop" ]; then
    echo "SKIP $where: configure did not find$noloop"
    skip=$((skip + 1)); continue
  fi
  c="$tmp/$id.c"
  {
    if [ "$mode" = body ] || [ -s "$tmp/$id.hidden" ]; then
      printf '#include <evssh.h>\n#include <poll.h>\n#include <stdbool.h>\n#include <stdio.h>\n'
      printf '#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n'
    fi
    cat "$tmp/$id.hidden"
    [ "$mode" = body ] && printf 'static void doc_block_%s(%s) {\n' "$id" "$params"
    printf '#line %s "%s"\n' "$line" "$file"
    cat "$tmp/$id.body"
    [ "$mode" = body ] && printf '}\n'
  } >"$c"
  if grep -q '^int main' "$c"; then
    what="compiled and linked"
    # shellcheck disable=SC2086
    out=$($cc $warn ${EVSSH_DOC_CFLAGS:-} -I"$inc" $flags -o "$tmp/$id" "$c" -L"$lib" -levssh $libs \
      ${EVSSH_DOC_LDFLAGS:-} 2>&1)
  else
    what="compiled"
    # shellcheck disable=SC2086
    out=$($cc $warn ${EVSSH_DOC_CFLAGS:-} -I"$inc" $flags -c -o "$tmp/$id.o" "$c" 2>&1)
  fi
  status=$?
  if [ "$status" -eq 0 ] && [ -z "$out" ]; then
    echo "ok   $where: $what ($mode)"
    pass=$((pass + 1))
  else
    echo "FAIL $where ($mode block; the code given to the compiler is $c):"
    echo "$out"
    fail=$((fail + 1))
  fi
done <"$tmp/manifest"

# --------------------------- each installed header compiles on its own
for h in evssh.h evssh/adapters/common.h evssh/adapters/libuv.h evssh/adapters/libevent.h evssh/adapters/libev.h; do
  flags=""
  case $h in
    *libuv.h) [ "${HAVE_LIBUV:-no}" = yes ] || { echo "SKIP header $h: no libuv"; continue; }; flags=${LIBUV_CFLAGS:-} ;;
    *libevent.h) [ "${HAVE_LIBEVENT:-no}" = yes ] || { echo "SKIP header $h: no libevent"; continue; }; flags=${LIBEVENT_CFLAGS:-} ;;
    *libev.h) [ "${HAVE_LIBEV:-no}" = yes ] || { echo "SKIP header $h: no libev"; continue; }; flags=${LIBEV_CFLAGS:-} ;;
  esac
  printf '#include <%s>\n' "$h" >"$tmp/header.c"
  cp "$tmp/header.c" "$tmp/header.cc"
  # shellcheck disable=SC2086
  if out=$($cc -std=c99 -pedantic-errors $warn -D_POSIX_C_SOURCE=200809L -I"$inc" $flags -fsyntax-only "$tmp/header.c" 2>&1) &&
     [ -z "$out" ]; then
    echo "ok   header $h: C99 on its own"
    pass=$((pass + 1))
  else
    echo "FAIL header $h as C99:"; echo "$out"; fail=$((fail + 1))
  fi
  if command -v c++ >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    if out=$(c++ $warn -I"$inc" $flags -fsyntax-only "$tmp/header.cc" 2>&1) && [ -z "$out" ]; then
      echo "ok   header $h: C++"
      pass=$((pass + 1))
    else
      echo "FAIL header $h as C++:"; echo "$out"; fail=$((fail + 1))
    fi
  fi
done

echo "$pass checks passed, $skip blocks skipped, $fail failed"
[ "$fail" -eq 0 ] || exit 1
[ "$pass" -gt 0 ] || { echo "FAIL: no code block found in README.md or docs/"; exit 1; }
rm -rf "$tmp"
exit 0
