#!/usr/bin/env bash
# Debian packages the benchmark needs on top of scripts/deps.sh (which builds broker).
# Kept apart so that `make test` never needs nginx. Idempotent: installs only what is missing;
# uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # the reference server: nginx + the nchan pub/sub module
  nginx libnginx-mod-nchan
  # to build the load generator
  gcc make
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "bench deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# The nginx package would start a system-wide nginx on port 80. The benchmark starts its own, on
# loopback, with its own config; so forbid service start-up for the duration of the install
# (unless a policy is already in place, as in most containers).
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  added_policy=1
fi
cleanup() { [ "$added_policy" -eq 1 ] && $SUDO rm -f "$POLICY"; true; }
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
