#!/usr/bin/env bash
# The one list of Debian packages broker needs, by purpose:
#   scripts/deps.sh run     build and run the server (make run)
#   scripts/deps.sh test    run + everything make test uses (the default), and a nats-server >= 2.10
#                           (and 2.9) for the cluster tests (scripts/nats-server.sh, into build/nats/)
#   scripts/deps.sh bench   run + the nchan reference server (make bench)
#   scripts/deps.sh fuzz    test + clang and libFuzzer (make fuzz)
#   scripts/deps.sh valgrind  test + valgrind (make valgrind)
# Idempotent: installs only what is missing; uses sudo when not root.
set -euo pipefail

RUN=(
  gcc make meson ninja-build pkg-config
  libevent-dev libhttp-parser-dev libjansson-dev libjwt-dev libsodium-dev libsqlite3-dev libssl-dev
  # the NATS JetStream client of cluster mode (SPEC §4)
  libnats-dev
  # QR codes (SVG) of TOTP enrolments (SPEC §5)
  libqrencode-dev
  # HTTP/2 (SPEC §6)
  libnghttp2-dev
)
TEST=(
  libcmocka-dev openssl curl ca-certificates sqlite3
  # the fuzz smoke run in make test
  clang-14 libclang-rt-14-dev
  # tests/e2e/browser.test.js drives /usr/bin/chromium headless
  chromium
  # tests/packaging/deb.sh: the Debian package, its man page and its systemd unit
  debhelper dpkg-dev fakeroot mandoc man-db systemd iproute2
)
BENCH=(nginx libnginx-mod-nchan)

purpose="${1:-test}"
case "$purpose" in
  run) PACKAGES=("${RUN[@]}") ;;
  test | fuzz) PACKAGES=("${RUN[@]}" "${TEST[@]}") ;;
  valgrind) PACKAGES=("${RUN[@]}" "${TEST[@]}" valgrind) ;;
  bench) PACKAGES=("${RUN[@]}" "${BENCH[@]}") ;;
  *) echo "usage: scripts/deps.sh [run|test|bench|fuzz|valgrind]" >&2; exit 2 ;;
esac
if [ "$purpose" != run ]; then
  # Node.js runs the end-to-end suite; keep an already installed (newer) one.
  command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
  command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
fi

# Debian 12 ships nats-server 2.9, too old for cluster mode: the tests take 2.10 from Debian 13's package,
# unpacked into build/nats/ without touching the system's apt sources.
nats_server() {
  case "$purpose" in
    test | fuzz | valgrind)
      bash "$(dirname "${BASH_SOURCE[0]}")/nats-server.sh" >/dev/null
      # the 2.9 binary, for the test that cluster mode refuses it
      bash "$(dirname "${BASH_SOURCE[0]}")/nats-server.sh" --old >/dev/null ;;
  esac
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  nats_server
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Installing nginx would start a system-wide nginx on port 80; the benchmark runs its own on
# loopback. Forbid service start-up during the install unless a policy is already in place.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  added_policy=1
fi
cleanup() { if [ "$added_policy" -eq 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
nats_server
