#!/usr/bin/env bash
# Create SoftHSM2 tokens in a private directory, for development and tests.
#
#   ./softhsm/setup-tokens.sh DIR [LABEL...]
#
# Writes DIR/softhsm2.conf (from softhsm/softhsm2.conf.in) with its tokens in DIR/tokens, then
# initialises each LABEL (default: stepstone-root stepstone-intermediate) unless a token with
# that label is already there, so running it twice changes nothing. The system's token
# directory is never touched: softhsm2-util always runs with SOFTHSM2_CONF pointing here.
#
# PINs: STEPSTONE_HSM_PIN (default 1234) and STEPSTONE_HSM_SO_PIN (default 5678).
# Module: STEPSTONE_PKCS11_MODULE (default /usr/lib/softhsm/libsofthsm2.so), only printed.
set -euo pipefail

usage() { echo "usage: $0 DIR [LABEL...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template="$here/softhsm2.conf.in"
pin=${STEPSTONE_HSM_PIN:-1234}
so_pin=${STEPSTONE_HSM_SO_PIN:-5678}
module=${STEPSTONE_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

command -v softhsm2-util >/dev/null || {
  echo "softhsm2-util not found: apt-get install softhsm2 (or: make system-deps)" >&2
  exit 1
}
[ -r "$template" ] || { echo "missing template $template" >&2; exit 1; }

dir=$(realpath -m -- "$1")
case "$dir/" in
  /var/lib/softhsm/*|/etc/softhsm/*)
    echo "refusing to use $dir: that is the system's SoftHSM directory" >&2; exit 1 ;;
esac
mkdir -p "$dir"
shift
labels=("$@")
[ ${#labels[@]} -gt 0 ] || labels=(stepstone-root stepstone-intermediate)

umask 077
mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
conf="$dir/softhsm2.conf"
# '|' delimits sed: the directory may contain '/', but not '|' or newlines.
case "$dir" in *'|'*|*$'\n'*) echo "unsupported characters in $dir" >&2; exit 1 ;; esac
sed "s|@TOKENDIR@|$dir/tokens|" "$template" > "$conf.tmp"
mv -f "$conf.tmp" "$conf"
export SOFTHSM2_CONF="$conf"

existing_labels() {
  softhsm2-util --show-slots 2>/dev/null |
    sed -n 's/^[[:space:]]*Label:[[:space:]]*//p' | sed 's/[[:space:]]*$//'
}

for label in "${labels[@]}"; do
  if [ ${#label} -gt 32 ] || [ -z "$label" ]; then
    echo "token label '$label' must be 1 to 32 characters" >&2; exit 1
  fi
  if existing_labels | grep -Fxq -- "$label"; then
    echo "token $label: already there"
  else
    softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
    echo "token $label: created"
  fi
done

echo
echo "SoftHSM2 configuration: $conf"
echo "  export SOFTHSM2_CONF=$conf"
for label in "${labels[@]}"; do
  echo "  key store URI: pkcs11:module-path=$module;token=$label?pin-value=$pin"
done
