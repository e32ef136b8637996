#!/bin/bash
# sshd-harness.sh: starts and stops real SSH servers (OpenSSH sshd, dropbear)
# on 127.0.0.1 for evssh's interop tests.  Every server lives in its own
# directory holding its generated keys, config, log, pid and a shell-sourceable
# `env` file describing how to reach it; nothing outside that directory is
# touched except the dedicated `evssh-test` account (root only) and, for
# dropbear as non-root, tagged lines in the user's own ~/.ssh/authorized_keys.
#
#   sshd-harness.sh start DIR [EXTRA_CONFIG_FILE]   sshd-harness.sh stop DIR [--remove]
#   sshd-harness.sh dropbear-start DIR              sshd-harness.sh dropbear-stop DIR [--remove]
#   sshd-harness.sh fetch-openssh10 CACHE_DIR
#
# fetch-openssh10 puts OpenSSH 10 (Debian's bookworm-backports build, which
# speaks mlkem768x25519-sha256) under CACHE_DIR/root without installing it:
# `apt-get download` with a source list of its own (the archive named in
# /etc/apt/sources.list.d/debian.sources, suite bookworm-backports) and its
# own state and cache directories under CACHE_DIR, then `dpkg -x`. The system
# sshd is untouched. Prints the root; a second call reuses it. Start that
# sshd with SSHD=CACHE_DIR/root/usr/sbin/sshd and, in the extra config,
# SshdSessionPath/SshdAuthPath pointing into CACHE_DIR/root/usr/lib/openssh.
#
# stop kills the listener and every process it forked; --remove also deletes
# DIR.  Set HARNESS_OWNER_PID to have the server stopped when that process ends.
#
# Environment: SSHD (default /usr/sbin/sshd), DROPBEAR (default: dropbear in
# PATH or /usr/sbin/dropbear), DROPBEARKEY, SSH_KEYGEN.
set -u

PASSWORD_USER=evssh-test
# A fixed password is fine: the account only exists on throwaway test hosts and
# every server we start listens on 127.0.0.1 only.
PASSWORD_VALUE='evssh-Test-pw-42'

die() { echo "sshd-harness: $*" >&2; exit 1; }

find_tool() { # name default...
    local name=$1; shift
    local c
    c=$(command -v "$name" 2>/dev/null) && { echo "$c"; return 0; }
    for c in "$@"; do [ -x "$c" ] && { echo "$c"; return 0; }; done
    return 1
}

SSH_KEYGEN=${SSH_KEYGEN:-$(find_tool ssh-keygen /usr/bin/ssh-keygen)} || die "ssh-keygen not found"
MY_USER=$(id -un)
MY_UID=$(id -u)

# Process tree helpers read /proc directly so they work without procps and see
# the per-connection children that sshd detaches into their own sessions.
children_of() {
    local f pid rest ppid
    for f in /proc/[0-9]*/stat; do
        { read -r rest < "$f"; } 2>/dev/null || continue
        pid=${rest%% *}
        rest=${rest##*) }            # drop "pid (comm) " even if comm has spaces
        ppid=$(echo "$rest" | cut -d' ' -f2)
        [ "$ppid" = "$1" ] && echo "$pid"
    done
}
descendants_of() {
    local c
    for c in $(children_of "$1"); do echo "$c"; descendants_of "$c"; done
}
# alive = exists and is not a zombie (PID 1 here may never reap orphans)
alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
pick_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# Keep only the names this OpenSSH build knows: sshd refuses to start on an
# unknown algorithm name, and the set differs between builds.
supported() { # query-kind wanted...
    local kind=$1; shift
    local have out="" a
    have=$(ssh -Q "$kind" 2>/dev/null) || { printf '%s' "$*" | tr ' ' ','; return; }
    for a in "$@"; do
        if printf '%s\n' "$have" | grep -qxF -- "$a"; then out="$out${out:+,}$a"; fi
    done
    printf '%s' "$out"
}

PW_USER_OK=0
ensure_password_user() {
    [ "$MY_UID" = 0 ] || return 1
    # useradd/chpasswd fail on a locked /etc/shadow, so parallel harnesses
    # take turns.
    (
        flock -w 30 9 || exit 1
        if ! getent passwd "$PASSWORD_USER" >/dev/null; then
            useradd -m -s /bin/sh "$PASSWORD_USER" >/dev/null 2>&1 || exit 1
        fi
        # Re-assert shell and password each time so a changed account heals.
        usermod -s /bin/sh "$PASSWORD_USER" >/dev/null 2>&1
        echo "$PASSWORD_USER:$PASSWORD_VALUE" | chpasswd >/dev/null 2>&1 || exit 1
        home=$(getent passwd "$PASSWORD_USER" | cut -d: -f6)
        if [ ! -d "$home" ]; then mkdir -p "$home" && chown "$PASSWORD_USER:" "$home"; fi
        exit 0
    ) 9>>/run/evssh-harness-user.lock || return 1
    PW_USER_OK=1
    return 0
}

gen_client_keys() { # dir
    local d=$1
    "$SSH_KEYGEN" -q -t ed25519 -N '' -C "evssh-harness" -f "$d/id_ed25519" </dev/null >/dev/null || return 1
    "$SSH_KEYGEN" -q -t rsa -b 3072 -N '' -C "evssh-harness" -f "$d/id_rsa" </dev/null >/dev/null || return 1
    "$SSH_KEYGEN" -q -t ecdsa -b 256 -N '' -C "evssh-harness" -f "$d/id_ecdsa" </dev/null >/dev/null || return 1
    cat "$d/id_ed25519.pub" "$d/id_rsa.pub" "$d/id_ecdsa.pub" > "$d/authorized_keys"
    # sshd reads this file as the target user (root drops to evssh-test).
    chmod 644 "$d/authorized_keys"
}

write_env() { # dir kind port pid user
    local d=$1 have_pw=0 pw_user="" pw=""
    if [ "$PW_USER_OK" = 1 ]; then
        have_pw=1; pw_user=$PASSWORD_USER; pw=$PASSWORD_VALUE
    fi
    {
        echo "HARNESS_KIND='$2'"
        echo "HARNESS_DIR='$d'"
        echo "HARNESS_PORT='$3'"
        echo "HARNESS_PID='$4'"
        echo "HARNESS_USER='$5'"
        echo "HARNESS_KNOWN_HOSTS='$d/known_hosts'"
        echo "HARNESS_KEY_ED25519='$d/id_ed25519'"
        echo "HARNESS_KEY_RSA='$d/id_rsa'"
        echo "HARNESS_KEY_ECDSA='$d/id_ecdsa'"
        echo "HARNESS_HAVE_PASSWORD_USER='$have_pw'"
        echo "HARNESS_PASSWORD_USER='$pw_user'"
        echo "HARNESS_PASSWORD='$pw'"
    } > "$d/env.tmp" && mv "$d/env.tmp" "$d/env"
}

# Waits until the server log says it is listening (success), the server dies
# or reports a bind failure (return 2: retry with another port), or about
# 120 s pass (a server that is alive but slow on a loaded machine is waited
# for: it once had 10 s).
wait_listening() { # pid log port ok-pattern
    local i
    for i in $(seq 1 2400); do
        if ! alive "$1"; then return 2; fi
        if grep -qiE "Address already in use|Cannot bind|Bind to port .* failed|Failed listening" "$2" 2>/dev/null; then
            return 2
        fi
        if grep -qE "$4" "$2" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

kill_tree() { # pid
    local root=$1 p procs i
    alive "$root" || { rm -f "$DIR/listener.pid"; return 0; }
    procs="$root $(descendants_of "$root")"
    # Listener first so it cannot fork new children while we work.
    for p in $procs; do kill -TERM "$p" 2>/dev/null; done
    # A SIGSTOPped process only acts on TERM once continued.
    for p in $procs; do kill -CONT "$p" 2>/dev/null; done
    for i in $(seq 1 100); do
        local any=0
        for p in $procs; do alive "$p" && any=1; done
        [ $any = 0 ] && return 0
        sleep 0.05
    done
    for p in $procs; do kill -KILL "$p" 2>/dev/null; done
    for i in $(seq 1 40); do
        local any=0
        for p in $procs; do alive "$p" && any=1; done
        [ $any = 0 ] && return 0
        sleep 0.05
    done
    return 1
}

sshd_start() {
    local extra=${1:-}
    SSHD=${SSHD:-/usr/sbin/sshd}
    case $SSHD in /*) ;; *) SSHD=$(find_tool "$SSHD") || die "sshd not found";; esac
    [ -x "$SSHD" ] || die "sshd not executable: $SSHD"
    [ -z "$extra" ] || [ -r "$extra" ] || die "extra config not readable: $extra"

    mkdir -p "$DIR" || die "cannot create $DIR"
    DIR=$(cd "$DIR" && pwd -P)
    chmod 755 "$DIR"
    rm -f "$DIR"/ssh_host_* "$DIR"/id_* "$DIR/known_hosts" "$DIR/env" "$DIR/port"

    local t
    for t in ed25519:0 ecdsa:256 ecdsa:384 ecdsa:521 rsa:3072; do
        local type=${t%%:*} bits=${t##*:} f
        if [ "$bits" = 0 ]; then f="$DIR/ssh_host_${type}_key"; else f="$DIR/ssh_host_${type}${bits}_key"; fi
        if [ "$bits" = 0 ]; then
            "$SSH_KEYGEN" -q -t "$type" -N '' -C '' -f "$f" </dev/null >/dev/null || die "ssh-keygen $type failed"
        else
            "$SSH_KEYGEN" -q -t "$type" -b "$bits" -N '' -C '' -f "$f" </dev/null >/dev/null || die "ssh-keygen $type $bits failed"
        fi
    done
    gen_client_keys "$DIR" || die "client key generation failed"

    # As root, clients log in as evssh-test (shell /bin/sh) rather than root:
    # root's shell start-up files are the machine's, not ours, and may be slow
    # or broken (a stale pyenv lock makes every bash wait 60 s).
    local allow=$MY_USER login_user=$MY_USER
    if ensure_password_user; then allow="$allow $PASSWORD_USER"; login_user=$PASSWORD_USER; fi
    if [ "$MY_UID" = 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi

    local kex ciphers macs hka pka
    kex=$(supported kex curve25519-sha256 curve25519-sha256@libssh.org \
        sntrup761x25519-sha512@openssh.com ecdh-sha2-nistp256 ecdh-sha2-nistp384 \
        ecdh-sha2-nistp521 diffie-hellman-group-exchange-sha256 \
        diffie-hellman-group-exchange-sha1 diffie-hellman-group16-sha512 \
        diffie-hellman-group18-sha512 diffie-hellman-group14-sha256 \
        diffie-hellman-group14-sha1 diffie-hellman-group1-sha1)
    ciphers=$(supported cipher chacha20-poly1305@openssh.com aes128-gcm@openssh.com \
        aes256-gcm@openssh.com aes128-ctr aes192-ctr aes256-ctr aes128-cbc \
        aes192-cbc aes256-cbc 3des-cbc)
    macs=$(supported mac hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com \
        hmac-sha1-etm@openssh.com hmac-sha2-256 hmac-sha2-512 hmac-sha1 hmac-sha1-96 \
        umac-64-etm@openssh.com umac-128-etm@openssh.com umac-64@openssh.com \
        umac-128@openssh.com hmac-md5 hmac-md5-etm@openssh.com)
    hka=$(supported key-sig ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 \
        ecdsa-sha2-nistp521 rsa-sha2-512 rsa-sha2-256 ssh-rsa)
    pka=$hka

    local attempt port pid rc=1
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$(pick_port) || die "no free port"
        {
            echo "# generated by sshd-harness.sh"
            # sshd keeps the first value it reads for a keyword, so the extra
            # lines go first to override ours; a Match block must be last.
            if [ -n "$extra" ]; then
                echo "# extra lines"
                awk 'tolower($1) == "match" { exit } { print }' "$extra"
                echo "# harness defaults"
            fi
            echo "ListenAddress 127.0.0.1"
            echo "Port $port"
            for t in "$DIR"/ssh_host_*_key; do echo "HostKey $t"; done
            echo "AuthorizedKeysFile $DIR/authorized_keys"
            echo "PidFile $DIR/sshd.pid"
            echo "StrictModes no"
            echo "UsePAM no"
            echo "PasswordAuthentication yes"
            echo "KbdInteractiveAuthentication no"
            echo "PubkeyAuthentication yes"
            echo "PermitRootLogin prohibit-password"
            echo "AllowUsers $allow"
            echo "Subsystem sftp internal-sftp"
            echo "MaxStartups 200:30:300"
            echo "MaxSessions 200"
            echo "MaxAuthTries 20"
            echo "LoginGraceTime 60"
            echo "LogLevel VERBOSE"
            echo "AllowTcpForwarding yes"
            echo "AllowAgentForwarding yes"
            echo "KexAlgorithms $kex"
            echo "Ciphers $ciphers"
            echo "MACs $macs"
            echo "HostKeyAlgorithms $hka"
            echo "PubkeyAcceptedAlgorithms $pka"
            if [ -n "$extra" ]; then
                awk 'tolower($1) == "match" { m = 1 } m { print }' "$extra"
            fi
        } > "$DIR/sshd_config"
        "$SSHD" -t -f "$DIR/sshd_config" >"$DIR/sshd-check.log" 2>&1 || \
            die "sshd rejected config: $(cat "$DIR/sshd-check.log")"
        : > "$DIR/sshd.log"
        setsid "$SSHD" -D -e -f "$DIR/sshd_config" </dev/null >>"$DIR/sshd.log" 2>&1 &
        pid=$!
        echo "$pid" > "$DIR/listener.pid"
        wait_listening "$pid" "$DIR/sshd.log" "$port" "Server listening on 127.0.0.1 port $port"
        rc=$?
        [ $rc = 0 ] && break
        kill_tree "$pid"
        [ $rc = 2 ] || break
    done
    [ $rc = 0 ] || die "sshd did not start; log: $(tail -5 "$DIR/sshd.log")"

    : > "$DIR/known_hosts"
    for t in "$DIR"/ssh_host_*_key.pub; do
        local ktype kb64
        read -r ktype kb64 _ < "$t"
        echo "[127.0.0.1]:$port $ktype $kb64" >> "$DIR/known_hosts"
    done
    echo "$port" > "$DIR/port"
    write_env "$DIR" sshd "$port" "$pid" "$login_user"
    start_watchdog
    echo "$port"
}

# Dropbear has no AuthorizedKeysFile option, it reads ~USER/.ssh/authorized_keys.
# As root we use the dedicated evssh-test account; otherwise the current user's
# file, adding lines tagged with DIR and removing exactly those on stop.
edit_user_keys() { # add|remove user dir
    local op=$1 user=$2 d=$3 home ak tag
    home=$(getent passwd "$user" | cut -d: -f6)
    [ -n "$home" ] || home=$HOME
    ak="$home/.ssh/authorized_keys"
    tag="evssh-harness:$d"
    if [ ! -d "$home/.ssh" ]; then
        [ "$op" = add ] || return 0
        mkdir -p "$home/.ssh" && chmod 700 "$home/.ssh" || return 1
        if [ "$MY_UID" = 0 ] && [ "$user" != root ]; then chown "$user:" "$home/.ssh"; fi
    fi
    # Parallel harnesses edit the same file; serialise on a lock beside it.
    (
        flock 9 || exit 1
        if [ "$op" = add ]; then
            if [ ! -e "$ak" ]; then
                : > "$ak" && chmod 600 "$ak" || exit 1
                if [ "$MY_UID" = 0 ] && [ "$user" != root ]; then chown "$user:" "$ak"; fi
            fi
            local k a b
            for k in "$d/id_ed25519.pub" "$d/id_rsa.pub" "$d/id_ecdsa.pub"; do
                read -r a b _ < "$k"
                echo "$a $b $tag" >> "$ak" || exit 1
            done
        elif [ -f "$ak" ]; then
            grep -vF " $tag" "$ak" > "$ak.evssh-tmp"
            cat "$ak.evssh-tmp" > "$ak"      # keep owner and mode of the original
            rm -f "$ak.evssh-tmp"
        fi
    ) 9>>"$home/.ssh/.evssh-harness.lock"
}

dropbear_start() {
    local DROPBEAR DROPBEARKEY
    DROPBEAR=${DROPBEAR:-$(find_tool dropbear /usr/sbin/dropbear)} || die "dropbear not found"
    DROPBEARKEY=${DROPBEARKEY:-$(find_tool dropbearkey /usr/bin/dropbearkey)} || die "dropbearkey not found"
    mkdir -p "$DIR" || die "cannot create $DIR"
    DIR=$(cd "$DIR" && pwd -P)
    chmod 755 "$DIR"
    rm -f "$DIR"/dropbear_* "$DIR"/id_* "$DIR/known_hosts" "$DIR/env" "$DIR/port"

    local t keys=""
    for t in ed25519:0 ecdsa:256 rsa:3072; do
        local type=${t%%:*} bits=${t##*:} f="$DIR/dropbear_${t%%:*}_host_key"
        if [ "$bits" = 0 ]; then
            "$DROPBEARKEY" -t "$type" -f "$f" >/dev/null 2>&1 || die "dropbearkey $type failed"
        else
            "$DROPBEARKEY" -t "$type" -s "$bits" -f "$f" >/dev/null 2>&1 || die "dropbearkey $type failed"
        fi
        keys="$keys -r $f"
    done
    gen_client_keys "$DIR" || die "client key generation failed"
    local user
    user=$MY_USER
    if ensure_password_user; then user=$PASSWORD_USER; fi
    echo "$user" > "$DIR/dropbear.user"
    edit_user_keys add "$user" "$DIR" || die "cannot install authorized_keys for $user"

    local attempt port pid rc=1
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$(pick_port) || die "no free port"
        : > "$DIR/dropbear.log"
        # -F foreground, -E log to stderr, -P pid file; password logins stay on
        # for the evssh-test account.
        # shellcheck disable=SC2086
        setsid "$DROPBEAR" -F -E -P "$DIR/dropbear.pid" -p "127.0.0.1:$port" $keys \
            </dev/null >>"$DIR/dropbear.log" 2>&1 &
        pid=$!
        echo "$pid" > "$DIR/listener.pid"
        wait_listening "$pid" "$DIR/dropbear.log" "$port" "Not backgrounding|Running in background|dropbear"
        rc=$?
        [ $rc = 0 ] && break
        kill_tree "$pid"
        [ $rc = 2 ] || break
    done
    if [ $rc != 0 ]; then
        edit_user_keys remove "$user" "$DIR"
        die "dropbear did not start; log: $(tail -5 "$DIR/dropbear.log")"
    fi

    : > "$DIR/known_hosts"
    for t in ed25519 ecdsa rsa; do
        "$DROPBEARKEY" -y -f "$DIR/dropbear_${t}_host_key" 2>/dev/null | \
            awk -v hp="[127.0.0.1]:$port" '/^(ssh-|ecdsa-)/ { print hp " " $1 " " $2 }' >> "$DIR/known_hosts"
    done
    echo "$port" > "$DIR/port"
    write_env "$DIR" dropbear "$port" "$pid" "$user"
    start_watchdog
    echo "$port"
}

# With HARNESS_OWNER_PID set, a detached watcher stops the server once that
# process is gone: a check test that fails exits through _exit() before its
# own stop call, and a leaked server would outlive the suite.
start_watchdog() {
    local owner=${HARNESS_OWNER_PID:-}
    [ -n "$owner" ] || return 0
    setsid bash "$0" watch "$DIR" "$owner" </dev/null >/dev/null 2>&1 &
    echo $! > "$DIR/watchdog.pid"
    # Return only once the watcher left our process group: check kills the
    # test's group when the test ends, which would take a slow starter along.
    local i
    for i in $(seq 1 100); do
        [ -f "$DIR/watchdog.ready" ] && return 0
        sleep 0.02
    done
}
watch_owner() { # owner-pid
    : > "$DIR/watchdog.ready"
    while alive "$1" && [ -f "$DIR/listener.pid" ]; do sleep 0.5; done
    [ -f "$DIR/listener.pid" ] && server_stop --remove
    exit 0
}

server_stop() { # remove-flag
    [ -d "$DIR" ] || return 0
    DIR=$(cd "$DIR" && pwd -P)
    local pid rc=0
    if [ -f "$DIR/listener.pid" ]; then
        pid=$(cat "$DIR/listener.pid")
        [ -n "$pid" ] && { kill_tree "$pid" || rc=1; }
        rm -f "$DIR/listener.pid"
    fi
    if [ -f "$DIR/watchdog.pid" ]; then
        pid=$(cat "$DIR/watchdog.pid")
        [ -n "$pid" ] && [ "$pid" != "$$" ] && kill "$pid" 2>/dev/null
        rm -f "$DIR/watchdog.pid" "$DIR/watchdog.ready"
    fi
    if [ -f "$DIR/dropbear.user" ]; then
        edit_user_keys remove "$(cat "$DIR/dropbear.user")" "$DIR"
        rm -f "$DIR/dropbear.user"
    fi
    if [ "${1:-}" = --remove ]; then rm -rf "$DIR"; fi
    return $rc
}

# The archive and keyring the machine's own apt uses (deb822 or one-line form).
debian_archive() {
    local f=/etc/apt/sources.list.d/debian.sources uri="" key=""
    if [ -r "$f" ]; then
        uri=$(awk '/^URIs:/ { print $2; exit }' "$f")
        key=$(awk '/^Signed-By:/ { print $2; exit }' "$f")
    elif [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian} ${key:-/usr/share/keyrings/debian-archive-keyring.gpg}"
}

fetch_openssh10() {
    local cache=$1 root arch uri key
    mkdir -p "$cache" || die "cannot create $cache"
    cache=$(cd "$cache" && pwd -P)
    root=$cache/root
    if [ -x "$root/usr/sbin/sshd" ] && "$root/usr/sbin/sshd" -V 2>&1 | grep -q "OpenSSH_1[0-9]"; then
        echo "$root"; return 0
    fi
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "apt-get/dpkg not available"
    read -r uri key <<< "$(debian_archive)"
    mkdir -p "$cache/lists/partial" "$cache/archives/partial" "$cache/debs"
    echo "deb [signed-by=$key] $uri bookworm-backports main" > "$cache/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache" -o "Dir::Cache::Archives=$cache/archives"
                -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Retries=2)
    apt-get -q "${opts[@]}" update > "$cache/apt.log" 2>&1 || die "apt-get update for bookworm-backports failed: $(tail -3 "$cache/apt.log")"
    ( cd "$cache/debs" && rm -f ./*.deb && apt-get -q "${opts[@]}" download \
        openssh-server/bookworm-backports openssh-client/bookworm-backports ) >> "$cache/apt.log" 2>&1 || \
        die "apt-get download of OpenSSH from bookworm-backports failed: $(tail -3 "$cache/apt.log")"
    rm -rf "$root.tmp"
    local d
    for d in "$cache"/debs/*.deb; do dpkg -x "$d" "$root.tmp" || die "dpkg -x $d failed"; done
    "$root.tmp/usr/sbin/sshd" -V 2>&1 | grep -q "OpenSSH_1[0-9]" || die "the downloaded sshd is not OpenSSH 10: $("$root.tmp/usr/sbin/sshd" -V 2>&1)"
    rm -rf "$root" && mv "$root.tmp" "$root"
    echo "$root"
}

cmd=${1:-}
DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || die "usage: $0 start|stop|dropbear-start|dropbear-stop DIR [extra-config|--remove]"
case $cmd in
    start) sshd_start "${3:-}" ;;
    stop|dropbear-stop) server_stop "${3:-}" ;;
    dropbear-start) dropbear_start ;;
    watch) DIR=$(cd "$DIR" && pwd -P) && watch_owner "${3:-}" ;;
    fetch-openssh10) fetch_openssh10 "$DIR" ;;
    *) die "unknown command $cmd" ;;
esac
