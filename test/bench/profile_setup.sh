#!/bin/bash
# profile_setup.sh: the connection set-up breakdown of docs/performance.md.
# For each key exchange method, callgrind profiles one warm session of
# test/bench/bench_setup (connect + exec "echo ok" + close; the warm-up
# session and the harness are not instrumented), then this script sums the
# inclusive instruction counts (Ir) of the functions that own each phase.
# Ir is not time, but on one machine and one binary it splits a session's
# CPU in proportion; bench_setup's getrusage figure gives the ms.
#
#   cd build && make bench && EVSSH_SRCDIR=$PWD/.. ../test/bench/profile_setup.sh [methods...] [-- shared]
#
# Not a test: it prints a table and asserts nothing.
set -eu
methods=()
mode=""
for a in "$@"; do
  if [ "$a" = "shared" ]; then mode=shared; else methods+=("$a"); fi
done
[ ${#methods[@]} -gt 0 ] || methods=(curve25519-sha256 mlkem768x25519-sha256 sntrup761x25519-sha512)
out=${PROFILE_OUT:-$(mktemp -d /tmp/evssh-profile.XXXXXX)}
for m in "${methods[@]}"; do
  ./libtool --mode=execute valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/cg.$m.out" test/bench/bench_setup "$m" 1 $mode >"$out/run.$m.log" 2>&1
  callgrind_annotate --inclusive=yes --threshold=100 "$out/cg.$m.out" >"$out/annotate.$m.txt" 2>/dev/null
done
# Lines look like "  1,234 (12.34%)  /path/src/kex.c:evssh_kex_start [lib]".
awk -v methods="${methods[*]}" -v dir="$out" '
function ir(m, fn,   v) { v = cost[m, fn]; return v ? v : 0 }
function row(label, v, m) { printf "| %-44s |", label; for (i = 1; i <= n; i++) { m = meth[i]; printf " %10d %5.1f%% |", v[m], tot[m] ? 100 * v[m] / tot[m] : 0 } printf "\n" }
BEGIN {
  n = split(methods, meth, " ")
  for (i = 1; i <= n; i++) {
    m = meth[i]; f = dir "/annotate." m ".txt"
    while ((getline line < f) > 0) {
      if (line ~ /PROGRAM TOTALS/) { x = line; gsub(/[ ,]/, "", x); sub(/\(.*/, "", x); tot[m] = x + 0; continue }
      if (line !~ /src\/[a-z0-9_]+\.c:[A-Za-z0-9_.]+/) continue
      if (line ~ /=>/) continue
      x = line; gsub(/,/, "", x); split(x, w, " ")
      # the first src/FILE.c:FUNCTION of the line (the object path after it may hold "src/" too)
      match(line, /src\/[a-z0-9_]+\.c:[A-Za-z0-9_.]+/); fn = substr(line, RSTART + 4, RLENGTH - 4)
      sub(/\.(constprop|isra|part)\..*$/, "", fn)
      if (!cost[m, fn]) cost[m, fn] = w[1] + 0
    }
  }
  printf "| %-44s |", "phase (inclusive Ir of one warm session)"
  for (i = 1; i <= n; i++) printf " %17s |", meth[i]
  printf "\n|%s|", "----------------------------------------------"
  for (i = 1; i <= n; i++) printf "%s|", "-------------------"
  printf "\n"
  for (i = 1; i <= n; i++) {
    m = meth[i]
    x25519[m] = ir(m, "kex.c:x25519_keygen") + ir(m, "kex.c:x25519_derive") + ir(m, "kex.c:derive_secret")
    mlkem[m] = ir(m, "mlkem.c:mlkem768_keygen") + ir(m, "mlkem.c:mlkem768_decaps")
    sntrup[m] = ir(m, "sntrup761.c:sntrup761_keygen") + ir(m, "sntrup761.c:sntrup761_decaps")
    kex[m] = ir(m, "kex.c:evssh_kex_start") + ir(m, "kex.c:evssh_kex_handle") + ir(m, "kex.c:evssh_kex_derive")
    hash[m] = ir(m, "kex.c:compute_h")
    hk[m] = ir(m, "hostkey.c:evssh_hostkey_verify")
    kh[m] = ir(m, "trust.c:trust_order_hostkey_algs") + ir(m, "trust.c:trust_check_hostkey")
    cfg[m] = ir(m, "session.c:session_resolve_options")
    # through the cache (a hit or, with no cache, the plain load inside)
    kl[m] = ir(m, "cache.c:cache_key_load_private") + ir(m, "cache.c:cache_key_load_private_seen") + ir(m, "cache.c:cache_key_load_public")
    if (!kl[m]) kl[m] = ir(m, "keys.c:evssh_key_load_private") + ir(m, "keys.c:evssh_key_load_public")
    sg[m] = ir(m, "keys.c:evssh_key_sign")
    ch[m] = ir(m, "exec.c:evssh_session_exec_wait") + ir(m, "loop.c:evssh_session_close")
    pk[m] = ir(m, "packet.c:packet_end") + ir(m, "packet.c:packet_next")
    rest[m] = tot[m] - kex[m] - hk[m] - kh[m] - cfg[m] - kl[m] - sg[m] - ch[m]
  }
  row("key exchange (all)", kex)
  row("  of which X25519 keygen + derive", x25519)
  row("  of which ML-KEM-768 keygen + decaps", mlkem)
  row("  of which sntrup761 keygen + decaps", sntrup)
  row("  of which exchange hash", hash)
  row("host-key signature check", hk)
  row("known_hosts reading + lookup", kh)
  row("options + ssh_config resolution", cfg)
  row("key loading (IdentityFile)", kl)
  row("user-auth signing", sg)
  row("channel open + exec + EOF/close + session close", ch)
  row("bookkeeping (loop, packets, alloc, rest)", rest)
  row("  (packet seal/open, all phases, info)", pk)
  row("total", tot)
}'
for m in "${methods[@]}"; do grep -h 'client CPU' "$out/run.$m.log" || true; done
echo "(callgrind files in $out)"
