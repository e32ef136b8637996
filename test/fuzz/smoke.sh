#!/usr/bin/env bash
# make check's fuzz smoke test: every fuzz target over its seed corpus plus a
# few thousand mutations (test/fuzz/run.sh --smoke), so a crash, leak or
# failed oracle on a known input fails the build. Builds into
# $EVSSH_BUILDDIR/fuzz; exits 77 (skipped, with the reason) when clang or
# libFuzzer is not installed.
set -euo pipefail
src=${EVSSH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
FUZZ_OUT=${FUZZ_OUT:-${EVSSH_BUILDDIR:-$PWD}/fuzz} exec bash "$src/test/fuzz/run.sh" --smoke
