#!/usr/bin/env bash
# tests/packaging/deb.sh: broker as an operator installs it. Builds the Debian package from this tree
# (dpkg-buildpackage -us -uc -b, in a scratch copy, so the tree is not touched), checks what it
# installs, lints the man page (mandoc) and checks that every flag of --help is in it, verifies the
# systemd unit (systemd-analyze verify), and then starts the installed binary with the installed
# environment file and runs the seed's smoke test against it: create a user, log in, insert, and read
# the event back from the stream. Everything runs on 127.0.0.1; the broker is stopped by its pid, also
# when a check fails. Prints "N passed, 0 failed" at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/broker-deb-XXXXXX)
PID=""
passed=0
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; sleep 1; kill -KILL "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok $passed - $*"; }
fail() { echo "not ok - $*" >&2; [ -f "$WORK/broker.log" ] && tail -20 "$WORK/broker.log" >&2; echo "$passed passed, 1 failed"; exit 1; }

# 1. Build the package from the files of the tree (tracked, and new ones git does not ignore).
SRC=$WORK/broker-0.1.0
mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$SRC"
(cd "$SRC" && DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1) ||
  { tail -30 "$WORK/build.log" >&2; fail "dpkg-buildpackage -us -uc -b"; }
DEB=$(ls "$WORK"/broker_*.deb)
ok "dpkg-buildpackage built $(basename "$DEB")"

# 2. What it installs.
INST=$WORK/root
dpkg-deb -x "$DEB" "$INST"
for f in usr/bin/broker usr/share/man/man1/broker.1.gz lib/systemd/system/broker.service etc/default/broker \
         usr/share/doc/broker/API.md.gz; do
  [ -e "$INST/$f" ] || [ -e "$INST/usr/$f" ] || fail "the package installs /$f"
done
UNIT=$INST/lib/systemd/system/broker.service
[ -e "$UNIT" ] || UNIT=$INST/usr/lib/systemd/system/broker.service
depends=$(dpkg-deb -f "$DEB" Depends)
grep -q libsodium <<<"$depends" && grep -q libnats <<<"$depends" || fail "the package depends on its libraries: $depends"
dpkg-deb -e "$DEB" "$WORK/control"
grep -qx /etc/default/broker "$WORK/control/conffiles" || fail "/etc/default/broker is a conffile"
ok "the package holds the binary, the man page, the unit, /etc/default/broker (a conffile) and the API reference"

# 3. The man page: clean for mandoc, and it names every flag --help lists.
MAN=$WORK/man/man1
mkdir -p "$MAN"
gunzip -c "$INST/usr/share/man/man1/broker.1.gz" >"$MAN/broker.1"
lint=$(mandoc -Tlint -W warning "$MAN/broker.1" 2>&1 | grep -v 'referenced manual not found' || true)
[ -z "$lint" ] || fail "mandoc -Tlint: $lint"
text=$(MANWIDTH=200 man -l "$MAN/broker.1" 2>/dev/null)
missing=""
for flag in $("$INST/usr/bin/broker" --help | grep -oE '^  --[a-z_]+' | tr -d ' '); do
  grep -qF -- "$flag" <<<"$text" || missing="$missing $flag"
done
[ -z "$missing" ] || fail "flags missing from broker(1):$missing"
ok "broker(1) passes mandoc -Tlint and documents every flag of --help"

# 4. The systemd unit (paths pointed into the scratch root, since nothing is installed on this machine).
sed -e "s|^ExecStart=/usr/bin/broker|ExecStart=$INST/usr/bin/broker|" \
    -e "s|^EnvironmentFile=-/etc/default/broker|EnvironmentFile=-$INST/etc/default/broker|" "$UNIT" >"$WORK/broker.service"
grep -q '^DynamicUser=yes' "$WORK/broker.service" && grep -q '^StateDirectory=broker' "$WORK/broker.service" &&
  grep -q '^NoNewPrivileges=yes' "$WORK/broker.service" && grep -q '^ProtectSystem=strict' "$WORK/broker.service" &&
  grep -q '^LimitNOFILE=' "$WORK/broker.service" && grep -q '^ExecReload=/bin/kill -HUP' "$WORK/broker.service" ||
  fail "the unit is hardened (DynamicUser, StateDirectory, NoNewPrivileges, ProtectSystem=strict, LimitNOFILE, SIGHUP reload)"
MANPATH=$WORK/man systemd-analyze verify "$WORK/broker.service" >"$WORK/verify.log" 2>&1 ||
  { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify broker.service"; }
ok "systemd-analyze verify accepts broker.service"

# 5. The installed binary, configured by the installed environment file, on a free loopback port.
port=""
for _ in $(seq 1 100); do
  p=$((20000 + RANDOM % 10000))
  if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then port=$p; break; fi
done
[ -n "$port" ] || fail "a free port"
(
  set -a
  # shellcheck disable=SC1091
  . "$INST/etc/default/broker"
  set +a
  export BROKER_DB=$WORK/state BROKER_HOST=127.0.0.1 BROKER_PORT=$port
  exec "$INST/usr/bin/broker"
) >"$WORK/broker.log" 2>&1 &
PID=$!
B=http://127.0.0.1:$port
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$B/healthz" || true)" = 200 ] && break
  kill -0 "$PID" 2>/dev/null || fail "the installed broker exited at start"
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$B/healthz")" = 200 ] || fail "the installed broker answers /healthz"
curl -sf "$B/users" -H 'Content-Type: application/json' -d '{"username":"deb","password":"debian package"}' >/dev/null ||
  fail "POST /users"
jwt=$(curl -sf "$B/login" -H 'Content-Type: application/json' -d '{"username":"deb","password":"debian package"}' |
  sed -E 's/.*"jwt":"([^"]+)".*/\1/')
[ -n "$jwt" ] || fail "POST /login"
id=$(curl -sf "$B/insert" -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
  -d '{"event":"installed","data":{"from":"deb"}}' | sed -E 's/.*"id":([0-9]+).*/\1/')
[ "$id" = 1 ] || fail "POST /insert answered id $id"
stream=$(curl -sN -m 2 "$B/sse" -H "Authorization: Bearer $jwt" || true)
grep -q '^id:1$' <<<"$stream" && grep -q '^event:installed$' <<<"$stream" && grep -q '^data:{"from":"deb"}$' <<<"$stream" ||
  fail "GET /sse gives the event back: $stream"
[ -f "$WORK/state/broker.db" ] || fail "the data went to BROKER_DB"
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
[ "$rc" = 0 ] || fail "the installed broker exits 0 on SIGTERM (got $rc)"
ok "the installed broker, configured by /etc/default/broker, serves the seed API (users, login, insert, stream) and stops cleanly"

echo "$passed passed, 0 failed"
