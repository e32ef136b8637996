#!/usr/bin/env bash
# Builds and runs evssh's libFuzzer targets: every test/fuzz/fuzz_*.c.
#
#   test/fuzz/run.sh [--time SECONDS] [target ...]   long run (default 60 s each)
#   test/fuzz/run.sh --smoke [target ...]            CI: the seed corpus plus a
#                                                    fixed number of mutations
#
# The library's own sources (libevssh_core_la_SOURCES in Makefile.am) are
# compiled once with clang -fsanitize=fuzzer-no-link,address,undefined and
# -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (which lowers limits that would
# let one input stall a run, e.g. bcrypt rounds), kept in an archive, and each
# target is linked against it with -fsanitize=fuzzer. Objects are rebuilt only
# when a source or header changed. A new target needs no change here: drop
# test/fuzz/fuzz_NAME.c (defining LLVMFuzzerTestOneInput) and its seeds in
# test/fuzz/seeds/fuzz_NAME/. A line "FUZZ_LDFLAGS: FLAGS" in a target's
# source adds FLAGS to its link (test/fuzz/fuzz_memo.h uses -Wl,--wrap).
#
# Long runs keep a growing corpus per target in $FUZZ_OUT/NAME.corpus (seeded
# from the tree) and print, per target, the executions, coverage (cov: edges,
# ft: features) and corpus size libFuzzer reached; a crash leaves its input as
# $FUZZ_OUT/crash-* (or leak-*, timeout-*) and makes the script fail.
# Reproduce one with: $FUZZ_OUT/bin/NAME FILE
#
# --smoke runs each target over its seeds and then FUZZ_SMOKE_RUNS (default
# 3000) mutated inputs, with a per-target time cap (FUZZ_SMOKE_SECONDS,
# default 60), so that a crash on a known input fails `make check`; the whole
# smoke run takes a couple of minutes on 2 cores, most of it the one-time
# build.
#
# Environment: FUZZ_OUT (default /tmp/evssh-fuzz), CLANG (default clang),
# FUZZ_JOBS (parallel compiles, default 2), FUZZ_SMOKE_RUNS,
# FUZZ_SMOKE_SECONDS, FUZZ_FLAGS (extra libFuzzer flags).
# Exit status: 0 all passed, 1 a target failed or did not build, 77 clang or
# libFuzzer missing (skipped, with a message).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

mode=long
secs=${FUZZ_SECONDS:-60}
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke ;;
    --time) secs=$2; shift ;;
    --time=*) secs=${1#--time=} ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("${1%.c}") ;;
  esac
  shift
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in test/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

out=${FUZZ_OUT:-/tmp/evssh-fuzz}
CLANG=${CLANG:-clang}
jobs=${FUZZ_JOBS:-2}
mkdir -p "$out/obj" "$out/bin"

skip() { echo "SKIP: $*"; exit 77; }
command -v "$CLANG" >/dev/null 2>&1 || skip "no $CLANG (Debian: apt-get install clang libclang-rt-14-dev)"
command -v pkg-config >/dev/null 2>&1 || skip "no pkg-config"
probe="$out/probe.c"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n > 1 ? d[0] == 0 : 0; }\n' >"$probe"
"$CLANG" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" >/dev/null 2>&1 ||
  skip "$CLANG cannot link -fsanitize=fuzzer,address,undefined (Debian: apt-get install libclang-rt-14-dev)"

deps="libcrypto libssh"
pkg-config --exists $deps || skip "pkg-config does not know $deps"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fno-omit-frame-pointer \
  -fno-sanitize-recover=undefined -Iinclude -Isrc $(pkg-config --cflags $deps)"
LIBS="$(pkg-config --libs $deps) -lpthread -lutil"

# the library's sources as Makefile.am lists them
lib_srcs=$(awk '
  /^libevssh_core_la_SOURCES[ \t]*=/ { on = 1; sub(/^[^=]*=/, "") }
  on { line = $0; cont = sub(/\\[ \t]*$/, "", line); n = split(line, w, /[ \t]+/);
       for (i = 1; i <= n; i++) if (w[i] ~ /\.c$/) print w[i]; if (!cont) on = 0 }' Makefile.am)
[ -n "$lib_srcs" ] || { echo "run.sh: no libevssh_core_la_SOURCES in Makefile.am" >&2; exit 1; }

# newest header: any change rebuilds every object (simple and safe)
newest_h=$(ls -t src/*.h include/*.h | head -1)
# Constant-time arithmetic whose branches no input steers (bcrypt's
# Blowfish rounds, the sntrup761 and ML-KEM polynomial code) is compiled
# without coverage instrumentation: still under ASan and UBSan, but its
# per-comparison tracing no longer dominates fuzz_kex, fuzz_keys and
# fuzz_auth. The code that parses what the peer or the file sent (kex.c,
# keys.c) stays instrumented.
nocov_srcs="src/bcrypt_pbkdf.c src/sntrup761.c src/mlkem.c"
build_obj() {
  local src=$1 obj=$2 cov=fuzzer-no-link,
  case " $nocov_srcs " in *" $src "*) cov= ;; esac
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_h" -nt "$obj" ] || [ "$runsh" -nt "$obj" ]; then
    # shellcheck disable=SC2086
    "$CLANG" $CFLAGS -fsanitize=${cov}address,undefined -c "$src" -o "$obj.tmp" && mv "$obj.tmp" "$obj"
  fi
}
export -f build_obj
runsh="$top/test/fuzz/run.sh"
export CLANG CFLAGS newest_h runsh nocov_srcs
echo "== building library objects ($(echo "$lib_srcs" | wc -w) sources, $CLANG)"
objs=()
for s in $lib_srcs; do objs+=("$out/obj/$(basename "$s" .c).o"); done
if ! for s in $lib_srcs; do echo "$s $out/obj/$(basename "$s" .c).o"; done |
    xargs -P "$jobs" -n 2 bash -c 'build_obj "$0" "$1"'; then
  echo "FAIL: the library does not build for fuzzing" >&2
  exit 1
fi
rm -f "$out/libevssh_fuzz.a"
ar rcs "$out/libevssh_fuzz.a" "${objs[@]}"

status=0
summary=()
for t in "${targets[@]}"; do
  src="test/fuzz/$t.c"
  [ -f "$src" ] || { echo "run.sh: no $src" >&2; status=1; continue; }
  bin="$out/bin/$t"
  # a target's own link flags: "FUZZ_LDFLAGS: ..." lines in its source
  # (e.g. -Wl,--wrap=NAME to memoize a deterministic, costly call)
  ldflags=$(sed -n 's/^.*FUZZ_LDFLAGS: *\(.*[^ */]\)[ */]*$/\1/p' "$src" | tr '\n' ' ')
  # shellcheck disable=SC2086
  if ! "$CLANG" $CFLAGS -fsanitize=fuzzer,address,undefined "$src" "$out/libevssh_fuzz.a" $LIBS $ldflags -o "$bin"; then
    echo "FAIL: $t does not build" >&2
    status=1
    continue
  fi
  seeds="test/fuzz/seeds/$t"
  [ -d "$seeds" ] || { echo "note: $t has no seeds in $seeds"; mkdir -p "$out/$t.noseeds"; seeds="$out/$t.noseeds"; }
  log="$out/$t.log"
  # shellcheck disable=SC2206
  extra=(${FUZZ_FLAGS:-})
  if [ "$mode" = smoke ]; then
    work="$out/$t.smoke"
    rm -rf "$work"
    mkdir -p "$work"
    echo "== $t: seeds + ${FUZZ_SMOKE_RUNS:-3000} mutations"
    set +e
    (cd "$out" && "$bin" -runs="${FUZZ_SMOKE_RUNS:-3000}" -max_total_time="${FUZZ_SMOKE_SECONDS:-60}" -timeout=30 \
       -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" "$work" "$top/$seeds") >"$log" 2>&1
    rc=$?
    set -e
  else
    work="$out/$t.corpus"
    mkdir -p "$work"
    echo "== $t: $secs s"
    set +e
    (cd "$out" && "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
       "${extra[@]}" "$work" "$top/$seeds") >"$log" 2>&1
    rc=$?
    set -e
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  line="$t: ${execs:-?} executions, ${cov:-no coverage line}, exit $rc"
  summary+=("$line")
  if [ $rc -ne 0 ]; then
    status=1
    echo "FAIL: $line (log: $log)"
    grep -E 'ERROR: |SUMMARY: |==[0-9]+==|Test unit written' "$log" | head -20 || true
  else
    echo "ok: $line"
  fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
