#!/usr/bin/env bash
# Installs the Debian 12 packages evssh needs to build, test and run its demo.
# Shared by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
PACKAGES=(
  build-essential autoconf automake libtool pkg-config
  libssl-dev libssh-dev check libuv1-dev
  openssh-server openssh-client dropbear-bin socat
  ruby ruby-dev ruby-minitest ruby-net-ssh
  valgrind procps iproute2 python3 python3-paramiko sshpass openssl
  libevent-dev libev-dev doxygen clang libclang-rt-14-dev netcat-openbsd
  ruby-net-scp ruby-net-sftp ruby-net-ssh-gateway ruby-net-ssh-multi ruby-sshkit
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
