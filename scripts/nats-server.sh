#!/usr/bin/env bash
# Prints the path of a nats-server for the cluster tests (SPEC §4 needs 2.10 or later):
#   scripts/nats-server.sh          a nats-server >= 2.10: the one on PATH if it is recent enough, else
#                                   build/nats/nats-server, else Debian 13 (trixie)'s package, unpacked
#                                   into build/nats/ (Debian 12 only ships 2.9)
#   scripts/nats-server.sh --old    Debian 12 (bookworm)'s nats-server 2.9 at build/nats/nats-server-2.9,
#                                   for the test that broker refuses it
# The packages are fetched with a private apt configuration (its own source list, lists and cache in a
# temporary directory), so the system's apt sources are never changed. Idempotent: a binary already in
# build/nats/ is reused. Everything but the path goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="$ROOT/build/nats"
MIRROR="http://deb.debian.org/debian"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

die() { echo "nats-server.sh: $*" >&2; exit 1; }

# The temporary apt tree, removed on every exit (die included).
TMP_TREE=""
trap '[ -z "$TMP_TREE" ] || rm -rf "$TMP_TREE"' EXIT

# "2.10.18" from "nats-server: v2.10.18"; empty when the binary does not run.
version_of() { "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1; }

at_least_2_10() { [ -n "$1" ] && dpkg --compare-versions "$1" ge 2.10; }

# fetch_binary SUITE WANT_PREFIX TARGET: downloads SUITE's nats-server package with a private apt
# configuration, checks that its version starts with WANT_PREFIX, unpacks it and installs its binary
# as TARGET (atomically: a rename within build/nats/).
fetch_binary() {
  local suite="$1" want="$2" target="$3"
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    die "apt-get and dpkg-deb are needed to fetch nats-server (Debian)"
  [ -r "$KEYRING" ] || die "$KEYRING is missing (apt-get install debian-archive-keyring)"
  local tmp
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/broker-nats.XXXXXX")"
  TMP_TREE="$tmp"
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb" "$tmp/root"
  echo "deb [signed-by=$KEYRING] $MIRROR $suite main" >"$tmp/sources.list"
  # apt drops to the _apt user to download; let it write into the temporary tree.
  chmod 755 "$tmp"
  chmod -R a+rwX "$tmp/lists" "$tmp/cache" "$tmp/deb"
  local apt=(apt-get -q
    -o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o APT::Get::List-Cleanup=0)
  echo "nats-server.sh: fetching nats-server from Debian $suite" >&2
  "${apt[@]}" update >"$tmp/update.log" 2>&1 || { cat "$tmp/update.log" >&2; die "apt-get update for $suite failed"; }
  (cd "$tmp/deb" && "${apt[@]}" download nats-server) >"$tmp/download.log" 2>&1 ||
    { cat "$tmp/download.log" >&2; die "apt-get download nats-server ($suite) failed"; }
  local deb
  deb="$(find "$tmp/deb" -maxdepth 1 -name 'nats-server_*.deb' | head -n1)"
  [ -n "$deb" ] || die "no nats-server .deb was downloaded from $suite"
  local pkgver
  pkgver="$(dpkg-deb -f "$deb" Version)"
  case "$pkgver" in
    "$want"*) ;;
    *) die "Debian $suite's nats-server is $pkgver, expected $want*" ;;
  esac
  dpkg-deb -x "$deb" "$tmp/root"
  # Debian ships it in /usr/sbin (a daemon); accept /usr/bin too should that change.
  local bin=""
  for b in "$tmp/root/usr/sbin/nats-server" "$tmp/root/usr/bin/nats-server"; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
  [ -n "$bin" ] || die "the $suite package holds no usr/sbin/nats-server"
  mkdir -p "$DEST_DIR"
  cp "$bin" "$target.tmp.$$"
  chmod 755 "$target.tmp.$$"
  mv -f "$target.tmp.$$" "$target"
  echo "nats-server.sh: installed $(version_of "$target") ($suite package $pkgver) at $target" >&2
}

case "${1:-}" in
  "")
    if command -v nats-server >/dev/null 2>&1; then
      onpath="$(command -v nats-server)"
      v="$(version_of "$onpath")"
      if at_least_2_10 "$v"; then echo "$onpath"; exit 0; fi
      echo "nats-server.sh: $onpath is ${v:-of unknown version}, need >= 2.10; looking further" >&2
    fi
    local_bin="$DEST_DIR/nats-server"
    if [ -x "$local_bin" ]; then
      v="$(version_of "$local_bin")"
      at_least_2_10 "$v" || die "$local_bin is ${v:-of unknown version}, need >= 2.10 (delete it to fetch again)"
      echo "$local_bin"
      exit 0
    fi
    fetch_binary trixie 2.10 "$local_bin"
    at_least_2_10 "$(version_of "$local_bin")" || die "$local_bin does not run or is older than 2.10"
    echo "$local_bin"
    ;;
  --old)
    old_bin="$DEST_DIR/nats-server-2.9"
    if [ ! -x "$old_bin" ]; then
      fetch_binary bookworm 2.9 "$old_bin"
    fi
    case "$(version_of "$old_bin")" in
      2.9.*) echo "$old_bin" ;;
      *) die "$old_bin is not a nats-server 2.9 (delete it to fetch again)" ;;
    esac
    ;;
  *) echo "usage: scripts/nats-server.sh [--old]" >&2; exit 2 ;;
esac
