#!/bin/bash
# Self-test of evssh-server with independent clients: OpenSSH's ssh(1) for
# exec / exit status / stderr, 16 MiB each way with checksums (also with a
# slow reader and a slow child, to exercise window pacing), pty and plain
# shells, -L and -R 0 forwarding, password auth (sshpass), 20 parallel
# clients, and a clean SIGTERM leaving no child behind; then paramiko
# (selftest_client.py) for echo@evssh, keyboard-interactive, env, signals,
# exit-signal and the 6-failure disconnect.
# Exit 0 on success, 1 on failure, 77 (automake SKIP) without ssh(1).
# env: EVSSH_SERVER_BIN (default: evssh-server next to this script)
set -u

here=$(cd "$(dirname "$0")" && pwd)
bin=${EVSSH_SERVER_BIN:-$here/evssh-server}
PY=${PYTHON:-python3}

if ! command -v ssh >/dev/null 2>&1; then
    echo "SKIP: no ssh client (apt-get install openssh-client)"
    exit 77
fi
if [ ! -x "$bin" ]; then
    echo "FAIL: $bin not built"
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/evssh-selftest.XXXXXX")
server_pid=
bg_pids=
fails=0

cleanup() {
    for p in $bg_pids; do kill "$p" 2>/dev/null; done
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    fails=$((fails + 1))
}
# waits (0.1 s steps) until the command succeeds or max_s seconds of wall
# time pass; a loaded machine (ASan build, other jobs) may need most of it
wait_for() { # max_s command...
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

password=selftest-pw
"$bin" --keydir "$work/keys" --port 0 --port-file "$work/port" \
    --authorized-keys "$work/authorized_keys" --gen-client-key "$work/id_ed25519" \
    --password "$password" --kbdint-prompts 3 -vv \
    > "$work/stdout" 2> "$work/server.log" < /dev/null &
server_pid=$!
# generating the host keys (RSA above all) under ASan on a busy machine
# took more than the 10 s this once waited
reported_or_died() { grep -q '^PORT ' "$work/stdout" 2>/dev/null || ! kill -0 "$server_pid" 2>/dev/null; }
wait_for 180 reported_or_died
port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$work/stdout")
if [ -z "$port" ] || [ "$port" != "$(cat "$work/port" 2>/dev/null)" ]; then
    echo "FAIL: server did not report its port"
    cat "$work/server.log"
    exit 1
fi
ok "server listening on 127.0.0.1:$port"
check "known_hosts lists ed25519, ecdsa-sha2-nistp256 and ssh-rsa keys for [127.0.0.1]:$port" \
    test "$(awk -v h="[127.0.0.1]:$port" '$1 == h {print $2}' "$work/keys/known_hosts" | sort | tr '\n' ' ')" \
         = "ecdsa-sha2-nistp256 ssh-ed25519 ssh-rsa "

common=(-p "$port" -o UserKnownHostsFile="$work/keys/known_hosts" -o StrictHostKeyChecking=yes
        -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=120)
keyopts=(-o BatchMode=yes -o IdentitiesOnly=yes -i "$work/id_ed25519" -o PreferredAuthentications=publickey)
# ssh keeps the first value of an option: LOGLEVEL lets one call differ
S() { timeout 600 ssh -o LogLevel="${LOGLEVEL:-ERROR}" "${common[@]}" "${keyopts[@]}" "$@"; }

# each host key type is accepted against the written known_hosts
for alg in ssh-ed25519 ecdsa-sha2-nistp256 rsa-sha2-512; do
    check "host key $alg verified" S -o HostKeyAlgorithms=$alg 127.0.0.1 true
done

# exec: stdout, stderr separate, exit status
S 127.0.0.1 'echo hi; echo err >&2; exit 3' > "$work/o" 2> "$work/e"
rc=$?
check "exec exit status 3 (got $rc)" test $rc -eq 3
check "exec stdout" test "$(cat "$work/o")" = hi
check "exec stderr separate" test "$(cat "$work/e")" = err
S 127.0.0.1 'kill -TERM $$' > /dev/null 2>&1
rc=$?
check "exit-signal makes ssh exit 255 (got $rc)" test $rc -eq 255

# 16 MiB each way through cat, and with slow ends on either side
head -c 16M /dev/urandom > "$work/blob"
want=$(sha256sum < "$work/blob")
check "16 MiB each way through cat" test "$(S 127.0.0.1 cat < "$work/blob" | sha256sum)" = "$want"
check "16 MiB to a slow child (sleep 2; cat)" \
    test "$(S 127.0.0.1 'sleep 2; cat' < "$work/blob" | sha256sum)" = "$want"
check "16 MiB to a slow reader" \
    test "$(S 127.0.0.1 cat < "$work/blob" | (sleep 2; sha256sum))" = "$want"
check "16 MiB of stderr" \
    test "$(S 127.0.0.1 'cat >&2' < "$work/blob" 2>&1 >/dev/null | sha256sum)" = "$want"

# shells
printf 'tty >/dev/null && echo TTY; stty size; exit 5\n' | S -tt 127.0.0.1 > "$work/o" 2>/dev/null
rc=$?
out=$(tr -d '\r' < "$work/o")
check "pty shell exit status 5 (got $rc)" test "$rc" -eq 5
check "pty shell has a tty" grep -qE '(^|# |\$ )TTY$' <<< "$out"
out=$(printf 'tty >/dev/null || echo NOTTY; echo "$0"; exit 4\n' | S -T 127.0.0.1)
rc=$?
check "plain shell exit status 4 (got $rc)" test $rc -eq 4
check "plain shell has no tty" grep -qx NOTTY <<< "$out"

# forwarding: a local TCP echo service (echoes everything until EOF)
cat > "$work/echo_srv.py" <<'EOF'
import socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
def serve(c):
    data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(data); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
cat > "$work/echo_cli.py" <<'EOF'
import hashlib, os, socket, sys, time
port = int(sys.argv[1]); data = os.urandom(1 << 20)
deadline = time.time() + 15
while True:
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=15); break
    except OSError:
        if time.time() > deadline: raise
        time.sleep(0.1)
c.sendall(data); c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(65536)
    if not b: break
    got += b
sys.exit(0 if got == data else 1)
EOF
"$PY" "$work/echo_srv.py" > "$work/echo_port" &
bg_pids="$bg_pids $!"
wait_for 120 test -s "$work/echo_port"
echo_port=$(cat "$work/echo_port")
lport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
S -N -o ExitOnForwardFailure=yes -L "$lport:127.0.0.1:$echo_port" 127.0.0.1 &
fpid=$!
check "ssh -L: 1 MiB echoed through direct-tcpip" "$PY" "$work/echo_cli.py" "$lport"
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null
lport2=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
S -N -o ExitOnForwardFailure=yes -L "$lport2:192.0.2.1:80" 127.0.0.1 &
fpid=$!
"$PY" - "$lport2" <<'EOF'
import socket, sys, time
deadline = time.time() + 120
while True:
    try:
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5); break
    except OSError:
        if time.time() > deadline: sys.exit(1)
        time.sleep(0.1)
sys.exit(0 if c.recv(1) == b"" else 1)
EOF
check "direct-tcpip to a non-loopback host refused" test $? -eq 0
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null
check "server log shows the refusal" grep -q 'direct-tcpip to 192.0.2.1:80 refused' "$work/server.log"

LOGLEVEL=INFO S -N -o ExitOnForwardFailure=yes -R "0:127.0.0.1:$echo_port" 127.0.0.1 2> "$work/rerr" &
fpid=$!
wait_for 120 grep -q 'Allocated port' "$work/rerr"
rport=$(sed -n 's/^Allocated port \([0-9]*\) .*/\1/p' "$work/rerr")
check "ssh -R 0: server allocated a port (${rport:-none})" test -n "$rport"
[ -n "$rport" ] && check "ssh -R: 1 MiB echoed through forwarded-tcpip" "$PY" "$work/echo_cli.py" "$rport"
kill $fpid 2>/dev/null; wait $fpid 2>/dev/null

# password authentication
if command -v sshpass >/dev/null 2>&1; then
    P() { timeout 300 sshpass -p "$1" ssh -o LogLevel=ERROR "${common[@]}" -o PreferredAuthentications=password \
          -o PubkeyAuthentication=no 127.0.0.1 "${@:2}"; }
    check "password accepted" test "$(P "$password" 'echo pw-ok' 2>/dev/null)" = pw-ok
    P wrong-password true > /dev/null 2>&1
    check "wrong password refused" test $? -ne 0
else
    echo "skip password checks with sshpass (apt-get install sshpass)"
fi
# a key that is not authorized
ssh_keygen_ok=0
if command -v ssh-keygen > /dev/null 2>&1; then
    ssh-keygen -q -t ed25519 -N '' -f "$work/other_key" && ssh_keygen_ok=1
fi
if [ $ssh_keygen_ok = 1 ]; then
    timeout 300 ssh -o LogLevel=ERROR "${common[@]}" -o BatchMode=yes -o IdentitiesOnly=yes -i "$work/other_key" \
        -o PreferredAuthentications=publickey 127.0.0.1 true > /dev/null 2>&1
    check "unauthorized key refused" test $? -eq 255
fi

# concurrency: 20 clients at once, each 16 MiB both ways
par_pids=
for i in $(seq 20); do
    (S 127.0.0.1 cat < "$work/blob" | sha256sum > "$work/par.$i") &
    par_pids="$par_pids $!"
done
for p in $par_pids; do wait "$p"; done
n_good=$(cat "$work"/par.* 2>/dev/null | grep -c -F "${want%% *}")
check "20 parallel clients, 16 MiB each way ($n_good/20 checksums equal)" test "$n_good" -eq 20

# paramiko: echo@evssh, kbdint, env, signal, exit-signal, failure limit
if "$PY" -c 'import paramiko' 2>/dev/null; then
    "$PY" -W ignore "$here/selftest_client.py" "$port" "$work/keys/known_hosts" \
        "$work/id_ed25519" "$password" 3
    check "paramiko checks (selftest_client.py)" test $? -eq 0
elif /usr/bin/python3 -c 'import paramiko' 2>/dev/null; then
    /usr/bin/python3 -W ignore "$here/selftest_client.py" "$port" "$work/keys/known_hosts" \
        "$work/id_ed25519" "$password" 3
    check "paramiko checks (selftest_client.py)" test $? -eq 0
else
    echo "skip paramiko checks: echo@evssh, kbdint, env, signals (apt-get install python3-paramiko)"
fi

# SIGTERM with live children (one ignores TERM/HUP): nothing may survive
marker=$((RANDOM + 40000))
S 127.0.0.1 "sleep $marker" > /dev/null 2>&1 &
bg_pids="$bg_pids $!"
S 127.0.0.1 "trap '' TERM HUP INT; sleep $((marker + 1)); :" > /dev/null 2>&1 &
bg_pids="$bg_pids $!"
S -tt 127.0.0.1 "sleep $marker" < /dev/zero > /dev/null 2>&1 &
bg_pids="$bg_pids $!"
both_running() { [ "$(ps -eo args | grep -c "^sleep $marker\$\|^sleep $((marker + 1))\$")" -ge 2 ]; }
wait_for 120 both_running
check "children running before SIGTERM" test "$(ps -eo args | grep -c "^sleep $marker\$\|^sleep $((marker + 1))\$")" -ge 2
kill -TERM "$server_pid"
server_gone() { ! kill -0 "$server_pid" 2>/dev/null; }
wait_for 120 server_gone
if kill -0 "$server_pid" 2>/dev/null; then
    fail "server exits on SIGTERM"
else
    wait "$server_pid"
    rc=$?
    check "server exits 0 on SIGTERM (got $rc)" test $rc -eq 0
    server_pid=
fi
check "no child left behind" test "$(ps -eo args | grep -c "^sleep $marker\$\|^sleep $((marker + 1))\$")" -eq 0

if [ $fails -ne 0 ]; then
    echo "$fails check(s) failed; server log:"
    grep -v "^[0-9][0-9]:[0-9][0-9]:" "$work/server.log" | head -n 100; tail -n 100 "$work/server.log"
    exit 1
fi
echo "all evssh-server self-tests passed"
exit 0
