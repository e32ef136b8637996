#!/usr/bin/env bash
# Builds the fuzz targets with clang (libFuzzer + ASan + UBSan) and runs each
# for a while: test/fuzz/run.sh [seconds per target, default 60].
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=${FUZZ_OUT:-/tmp/evssh-fuzz}
mkdir -p "$out"
SRC="src/buf.c src/errors.c src/packet.c src/cipher.c src/mac.c src/kex.c src/hostkey.c src/transport.c"
for target in fuzz_transport; do
  clang -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
    $SRC "test/fuzz/$target.c" $(pkg-config --cflags --libs libcrypto) -o "$out/$target"
  mkdir -p "$out/$target.corpus"
  cp test/fuzz/seeds/"$target"/* "$out/$target.corpus/" 2>/dev/null || true
  "$out/$target" -max_total_time="$secs" -print_final_stats=1 "$out/$target.corpus"
done
