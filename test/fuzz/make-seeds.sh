#!/usr/bin/env bash
# Regenerates the seed corpora of fuzz_keys, fuzz_cert and fuzz_knownhosts
# under test/fuzz/seeds/ with OpenSSH's ssh-keygen and openssl (the seeds in
# the tree were made by this script; rerunning it replaces them with fresh
# keys; inputs named regress-*, kept from fuzzing findings, stay). Test keys
# only: nothing here protects anything.
#   fuzz_keys:       every key type in every file format ssh-keygen and
#                    openssl write (openssh-key-v1 plain and encrypted with
#                    passphrase "fuzzfuzz" and 1 bcrypt round, PEM, PKCS#8, both
#                    encrypted), .pub lines and certificate lines
#   fuzz_cert:       binary certificate blobs: every key type, every CA
#                    type, host and user, options, validity windows
#   fuzz_knownhosts: flags byte, host name line, known_hosts text (plain,
#                    hashed, ports, wildcards, markers, CA lines)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seeds="$top/test/fuzz/seeds"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# inputs that once failed (regress-*) stay
mkdir -p "$seeds/fuzz_keys" "$seeds/fuzz_cert" "$seeds/fuzz_knownhosts"
find "$seeds/fuzz_keys" "$seeds/fuzz_cert" "$seeds/fuzz_knownhosts" -type f ! -name 'regress-*' -delete

types=("ed25519:-t ed25519" "ecdsa256:-t ecdsa -b 256" "ecdsa384:-t ecdsa -b 384" "ecdsa521:-t ecdsa -b 521"
       "rsa:-t rsa -b 1024")
for spec in "${types[@]}"; do
  name=${spec%%:*}
  args=${spec#*:}
  # shellcheck disable=SC2086
  ssh-keygen -q $args -N '' -C "$name@fuzz" -f "$name"
  cp "$name" "$seeds/fuzz_keys/${name}_openssh"
  cp "$name.pub" "$seeds/fuzz_keys/${name}.pub"
  for fmt in PEM PKCS8; do
    # shellcheck disable=SC2086
    ssh-keygen -q $args -m "$fmt" -N '' -f "${name}_$fmt"
    cp "${name}_$fmt" "$seeds/fuzz_keys/${name}_$fmt"
    # shellcheck disable=SC2086
    ssh-keygen -q $args -m "$fmt" -N fuzzfuzz -f "${name}_${fmt}_enc"
    cp "${name}_${fmt}_enc" "$seeds/fuzz_keys/${name}_${fmt}_enc"
  done
  # shellcheck disable=SC2086
  ssh-keygen -q $args -a 1 -N fuzzfuzz -f "${name}_enc"
  cp "${name}_enc" "$seeds/fuzz_keys/${name}_openssh_enc"
done
openssl genpkey -algorithm ed25519 -out ed25519_ossl.pem 2>/dev/null
cp ed25519_ossl.pem "$seeds/fuzz_keys/ed25519_openssl_pkcs8"

ssh-keygen -q -t ed25519 -N '' -f ca_ed25519
ssh-keygen -q -t ecdsa -b 256 -N '' -f ca_ecdsa
ssh-keygen -q -t rsa -b 1024 -N '' -f ca_rsa
n=0
cert() { # ca key opts...
  local ca=$1 key=$2
  shift 2
  n=$((n + 1))
  cp "$key.pub" "c$n.pub"
  ssh-keygen -q -s "$ca" -I "seed-$n" -z "$n" "$@" "c$n.pub"
  awk '{print $2}' "c$n-cert.pub" | base64 -d >"$seeds/fuzz_cert/cert$n"
}
for spec in "${types[@]}"; do
  name=${spec%%:*}
  for ca in ca_ed25519 ca_ecdsa ca_rsa; do
    cert "$ca" "$name" -h -n "host.fuzz,*.fuzz.example"
  done
  cert ca_ed25519 "$name" -n alice,bob -V -1d:+3650d -O force-command=/bin/true -O source-address=10.0.0.0/8
  cp "c$n-cert.pub" "$seeds/fuzz_keys/${name}-cert.pub"
done
cert ca_rsa ed25519 -h -n host.fuzz -t rsa-sha2-256
cert ca_ed25519 ecdsa256 -h
cert ca_ed25519 ed25519 -n alice -O critical:frob@example.com=x -O extension:ext@example.com
cert ca_ed25519 ed25519 -h -n host.fuzz -V 0x60000000:0x60001000

kh="$seeds/fuzz_knownhosts"
line() { awk '{print $1" "$2}' "$1"; }
{
  printf '\001host.fuzz\n'
  echo "# comment"
  echo "host.fuzz,10.0.0.1 $(line ed25519.pub)"
  echo "[host.fuzz]:2222 $(line ecdsa256.pub)"
  echo "*.fuzz.example,!bad.fuzz.example $(line rsa.pub)"
  echo "@revoked * $(line ecdsa384.pub)"
  echo "@cert-authority *.fuzz.example,host.fuzz $(line ca_ed25519.pub)"
} >"$kh/plain"
{
  printf '\000host.fuzz\n'
  echo "host.fuzz $(line ed25519.pub)"
  echo "[host.fuzz]:2222 $(line ecdsa521.pub)"
} >hashed_src
tail -n +2 hashed_src >hashed_kh
ssh-keygen -q -H -f hashed_kh >/dev/null 2>&1
{ printf '\000host.fuzz\n'; cat hashed_kh; } >"$kh/hashed"
printf '\011we*ird?name\n%s\n' "web?.fuzz.example $(line ed25519.pub)" >"$kh/wildcard_name"
printf '\005!neg,x\n%s\n' "$(line ecdsa256.pub)" >"$kh/revoked_list"
printf '\001x.fuzz.example\n@cert-authority * AAAAC3NzaC1lZDI1NTE5AAAAIFSe0731ybQYKQfjMUSKoQKwz5j/62mhDfF72xm0q0AW\n' \
  >"$kh/fixed_ca"
echo "seeds: $(ls "$seeds/fuzz_keys" | wc -l) keys, $(ls "$seeds/fuzz_cert" | wc -l) certs, $(ls "$kh" | wc -l) known_hosts"
