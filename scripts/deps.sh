#!/usr/bin/env bash
# The one list of Debian packages that building, running and testing broker needs.
# Idempotent: installs only what is missing; uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # build
  gcc make meson ninja-build pkg-config
  # libraries (headers + pkg-config files)
  libevent-dev libjansson-dev libjwt-dev libsodium-dev libsqlite3-dev libssl-dev
  # tests
  libcmocka-dev openssl curl ca-certificates sqlite3
  # end-to-end browser test (tests/e2e/browser.test.js drives /usr/bin/chromium headless)
  chromium
)
# Node.js runs the end-to-end suite; keep an already installed (newer) one.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
