#!/bin/sh
# Starts evssh-server for the demo (or anything else that wants a throwaway
# SSH server): fresh host keys and a fresh client key in a new temp dir, a free
# port on 127.0.0.1, and leaves it running in the background. Prints
#   EVSSH_SERVER_PORT=<n>         EVSSH_SERVER_DIR=<dir>
#   EVSSH_SERVER_KNOWN_HOSTS=...  EVSSH_SERVER_CLIENT_KEY=...
#   EVSSH_SERVER_USER=...         EVSSH_SERVER_PASSWORD=...
#   EVSSH_SERVER_PID=<pid>
# one per line, suitable for `eval "$(run-server.sh)"`.
#
# usage: run-server.sh [start] [extra evssh-server options...]
#        run-server.sh stop DIR      (kills by DIR/evssh-server.pid, removes DIR)
# env:   EVSSH_SERVER_BIN  server binary (default: evssh-server next to this script)
#        EVSSH_SERVER_PASSWORD (default: evssh-demo), EVSSH_SERVER_KBDINT (default: 2)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${EVSSH_SERVER_BIN:-$here/evssh-server}

if [ "${1:-}" = stop ]; then
    dir=${2:?usage: run-server.sh stop DIR}
    pidfile=$dir/evssh-server.pid
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        # the server reaps its children, then removes the pid file
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "run-server.sh: server $pid did not stop, killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # only remove directories this script created
    if [ -f "$dir/.evssh-server-dir" ]; then
        rm -rf "$dir"
    fi
    exit 0
fi
[ "${1:-}" = start ] && shift

if [ ! -x "$bin" ]; then
    echo "run-server.sh: $bin not built (make, or set EVSSH_SERVER_BIN)" >&2
    exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/evssh-server.XXXXXX")
touch "$dir/.evssh-server-dir"
password=${EVSSH_SERVER_PASSWORD:-evssh-demo}
kbdint=${EVSSH_SERVER_KBDINT:-2}
: > "$dir/authorized_keys"

# stdout goes to a file so we can wait for the PORT line without a pipe that
# would tie the server's lifetime to this script
"$bin" --keydir "$dir" --port 0 --port-file "$dir/port" --pid-file "$dir/evssh-server.pid" \
    --authorized-keys "$dir/authorized_keys" --gen-client-key "$dir/id_ed25519" \
    --password "$password" --kbdint-prompts "$kbdint" -v "$@" \
    > "$dir/stdout" 2> "$dir/server.log" < /dev/null &
pid=$!

i=0
while ! grep -q '^PORT ' "$dir/stdout" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 1800 ]; then
        echo "run-server.sh: server did not start; log follows" >&2
        cat "$dir/server.log" >&2
        kill -TERM "$pid" 2>/dev/null || true
        rm -rf "$dir"
        exit 1
    fi
    sleep 0.1
    i=$((i + 1))
done
port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$dir/stdout")

echo "EVSSH_SERVER_PORT=$port"
echo "EVSSH_SERVER_DIR=$dir"
echo "EVSSH_SERVER_KNOWN_HOSTS=$dir/known_hosts"
echo "EVSSH_SERVER_CLIENT_KEY=$dir/id_ed25519"
echo "EVSSH_SERVER_USER=$(id -un)"
echo "EVSSH_SERVER_PASSWORD=$password"
echo "EVSSH_SERVER_PID=$pid"
