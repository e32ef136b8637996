#!/usr/bin/env bash
# The README's demo command: installs what is needed, builds evssh, starts
# the embedded SSH server (test/server) on 127.0.0.1 with fresh keys, runs
# every example in examples/ against it with a heading saying what it shows,
# and stops the server. No SSH server of your own is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
bash scripts/deps.sh
echo "building evssh (build-demo/)..."
./autogen.sh >/dev/null 2>&1
mkdir -p build-demo
cd build-demo
[ -f Makefile ] || "$top/configure" >/dev/null
make -j2 >/dev/null

eval "$(EVSSH_SERVER_BIN="$PWD/test/server/evssh-server" bash "$top/test/server/run-server.sh")"
stop_server() { bash "$top/test/server/run-server.sh" stop "$EVSSH_SERVER_DIR" >/dev/null 2>&1 || true; }
trap stop_server EXIT

# Every example takes ssh_config keywords with -o; these point it at the
# embedded server, its known_hosts and the key it authorizes. The user's
# own ~/.ssh/config is read too, as ssh would; explicit options win.
O=(-o "Port=$EVSSH_SERVER_PORT" -o "UserKnownHostsFile=$EVSSH_SERVER_KNOWN_HOSTS"
   -o "IdentityFile=$EVSSH_SERVER_CLIENT_KEY" -o "IdentitiesOnly=yes" -o "GlobalKnownHostsFile=none")
dest="$EVSSH_SERVER_USER@127.0.0.1"
heading() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# print the command line (shell-quoted, so it can be pasted), then run it
run() {
  printf '$'; printf ' %q' "$@"; printf '\n'
  "$@" || echo "   (exit status $?)"
}

echo "embedded server listening on 127.0.0.1:$EVSSH_SERVER_PORT (keys in $EVSSH_SERVER_DIR)"
echo "the example binaries are in $PWD/examples (sources in $top/examples); each command"
echo "line below is printed before it runs, from $PWD. To run them yourself later, start a"
echo "server with: EVSSH_SERVER_BIN=$PWD/test/server/evssh-server bash $top/test/server/run-server.sh"

heading "exec: one command, stdout, stderr and exit status kept apart (Net::SSH's exec!)"
run ./examples/exec "${O[@]}" "$dest" 'echo "hello from $(uname -s)"; echo "this goes to stderr" >&2; exit 3'

heading "channel: open_channel with callbacks; note the order: data, eof, exit-status, close"
run ./examples/channel "${O[@]}" "$dest" 'printf "one\ntwo\n"; echo warning >&2; exit 7'

heading "listen_to: a local fd (our stdin) piped into a remote command by the event loop"
seq 1 100000 | run ./examples/listen_to "${O[@]}" "$dest" 'wc -l'

heading "global_request: global requests both ways, tcpip-forward port 0 returns the bound port"
run ./examples/global_request "${O[@]}" "$dest" 1

heading "interactive: pty + shell; without a terminal, a script piped into the remote shell"
printf 'echo "shell says hi from a $(tty >/dev/null && echo pty || echo pipe)"\nexit 0\n' |
  run ./examples/interactive "${O[@]}" "$dest"

heading "parallel: one command on many hosts from one thread (pssh-like), one host failing"
# ports go in the destinations here: an explicit -o Port would apply to all
P=(-o "UserKnownHostsFile=$EVSSH_SERVER_KNOWN_HOSTS" -o "IdentityFile=$EVSSH_SERVER_CLIENT_KEY"
   -o "IdentitiesOnly=yes" -o "GlobalKnownHostsFile=none")
hp="$EVSSH_SERVER_USER@127.0.0.1:$EVSSH_SERVER_PORT"
run ./examples/parallel "${P[@]}" 'echo "up since $(cut -d" " -f1 /proc/uptime) s"' "$hp" "$hp" "$hp" \
  "$EVSSH_SERVER_USER@127.0.0.1:1"

if [ -x ./examples/libuv ]; then
  heading "libuv: a session driven from libuv's loop by <evssh/adapters/libuv.h>, a timer ticking meanwhile"
  run ./examples/libuv "${O[@]}" "$dest" 'echo driven by libuv'
fi

if [ -x ./examples/libevent ]; then
  heading "libevent: our stdin piped into a remote command from a libevent loop (<evssh/adapters/libevent.h>)"
  seq 1 50000 | run ./examples/libevent "${O[@]}" "$dest" 'wc -l'
fi

if [ -x ./examples/libev ]; then
  heading "libev: one command on three hosts, a whole evssh_multi in a libev loop (<evssh/adapters/libev.h>)"
  run ./examples/libev "${P[@]}" 'echo "remote shell pid $$"' "$hp" "$hp" "$hp"
fi

heading "done: the server is stopped"
