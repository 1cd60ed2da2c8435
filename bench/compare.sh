#!/usr/bin/env bash
# bench/compare.sh: broker against nginx + nchan on this machine, scenario by scenario.
#
#   bash bench/compare.sh                      # everything, 3 runs each (about 25 minutes)
#   RUNS=1 QUICK=1 bash bench/compare.sh       # a smoke run with small sizes (about 2 minutes)
#   SCENARIOS="a d p" RUNS=5 bash bench/compare.sh
#
# Builds a release broker (in bench/build/broker-release) and the load generator, installs the
# bench-only Debian packages (scripts/deps.sh bench; only broker's own, scripts/deps.sh run, when no
# selected scenario runs nchan), then for each scenario runs broker and nchan one
# after the other, RUNS times each, on loopback only, never two benchmarks at once. Prints a
# markdown table of medians and the ratio broker/nchan, and keeps the raw RESULT lines and the
# server logs under bench/results/<timestamp>/.
#
# Scenarios r and v are broker only (nchan has no access rules), and compare broker with itself:
#   r  scenario a's load, exactly, against broker without rules and with --rules=rules-r.json (a
#      private, a role and a public rule; the benchmark's event "bench" falls through to the public
#      "*"), the two alternating within each run (the order swaps every run)
#   v  V_SUBS subscribers of V_SUBS different users (tokens minted by the load generator for users
#      bench-u0, bench-u1, ...), each reading /sse with no filter under rules-v.json, while events
#      user.bench-u<i>.msg are published round-robin over the users at V_RATE/s for V_SECONDS: each
#      subscriber must get exactly its own user's events (lost / foreign / duplicated / out of
#      order are counted). In the same run, for comparison: the same V_SUBS subscribers with one
#      shared token reading public events at V_PUBLIC_RATE/s (each gets every event), and, with
#      V_BASELINE=1, the private publishing with no subscriber at all (the cost of the inserts).
#
# Scenario h is broker only too (nchan's SSE has no HTTP/2 here), and compares broker over HTTP/2
# with broker over HTTP/1.1:
#   h  H_SUBS SSE streams over HTTP/2 (prior knowledge, plain) on H_CONNS connections against H_SUBS
#      HTTP/1.1 SSE connections, each on a fresh broker of the same build, the two alternating within
#      each run (the order swaps every run), at scenario b's pace (H_RATE events/s for H_SECONDS s
#      from H_PUBLISHERS HTTP/1.1 publishers). The reference is the HTTP/1.1 broker: the ratio is
#      h2/h1. Server memory per stream: (RSS with every stream open, after H_SETTLE s, before any
#      publisher) - (RSS before the first) over the streams, as scenario c counts it.
#
# Environment (defaults in brackets):
#   RUNS [3]  SCENARIOS ["a b c d p e r v"]  QUICK [0]  SIZE [100] (bytes of event data)
#   (h is not in the default list: SCENARIOS=h RUNS=3 bash bench/compare.sh)
#   THREADS [2] (broker --threads/--workers, nginx worker_processes)
#   A_SUBS [10000] A_EVENTS [2000] A_PUBLISHERS [16] A_SECONDS [20] (cap on the publishing time)
#   B_SUBS [10000] B_RATE [100] B_SECONDS [10] B_PUBLISHERS [32]
#   C_SUBS ["1000 19000"]
#   D_PUBLISHERS [64] D_SECONDS [10] P_PIPELINE [8] (p = d with each publisher pipelining that deep)
#   E_SUBS [1000] E_RATE [100] E_SECONDS [10] E_CLIENTS [16]
#   (r uses the A_* sizes)
#   H_SUBS [10000] H_CONNS [100] (HTTP/2 connections; H_SUBS / H_CONNS streams on each, and broker
#     gets --h2_max_streams raised to that when it passes the default 100) H_RATE [B_RATE]
#     H_SECONDS [B_SECONDS] H_PUBLISHERS [B_PUBLISHERS] H_SETTLE [1]
#   V_SUBS [10000] V_RATE [2000] V_SECONDS [15] V_PUBLISHERS [32] V_PUBLIC_RATE [20] V_BASELINE [1]
#     (V_PUBLIC_RATE: the publishing rate of the public comparison; every subscriber gets every
#     event there, so V_SUBS x V_PUBLIC_RATE deliveries/s: 200k/s by default, within what scenario b
#     shows this machine delivers; V_PUBLIC_RATE=$V_RATE would ask 20M/s of it)
#   LIMIT [60] (loadgen --duration-limit, seconds, for every run)
#   QUIET_BUSY [15] QUIET_WAIT [120]: before each run, wait up to QUIET_WAIT s for the machine to
#     be less than QUIET_BUSY % busy (other work on the 2 cores skews everything)
#   BROKER_BIN (use this broker binary instead of building one)  SKIP_BUILD [0]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
source "$BENCH/common.sh"
cd "$ROOT"

RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-"a b c d p e r v"}
QUICK=${QUICK:-0}
SIZE=${SIZE:-100}
THREADS=${THREADS:-2}
LIMIT=${LIMIT:-60}
QUIET_BUSY=${QUIET_BUSY:-15} QUIET_WAIT=${QUIET_WAIT:-120}
if [ "$QUICK" = 1 ]; then
  A_SUBS=${A_SUBS:-1000} A_EVENTS=${A_EVENTS:-200} A_SECONDS=${A_SECONDS:-5}
  B_SUBS=${B_SUBS:-1000} B_SECONDS=${B_SECONDS:-3}
  C_SUBS=${C_SUBS:-"1000 3000"}
  D_SECONDS=${D_SECONDS:-3}
  E_SUBS=${E_SUBS:-200} E_SECONDS=${E_SECONDS:-3}
  V_SUBS=${V_SUBS:-1000} V_SECONDS=${V_SECONDS:-3}
  H_SUBS=${H_SUBS:-1000} H_CONNS=${H_CONNS:-10} H_SECONDS=${H_SECONDS:-3}
  LIMIT=${LIMIT_QUICK:-30}
fi
A_SUBS=${A_SUBS:-10000} A_EVENTS=${A_EVENTS:-2000} A_PUBLISHERS=${A_PUBLISHERS:-16} A_SECONDS=${A_SECONDS:-20}
B_SUBS=${B_SUBS:-10000} B_RATE=${B_RATE:-100} B_SECONDS=${B_SECONDS:-10} B_PUBLISHERS=${B_PUBLISHERS:-32}
C_SUBS=${C_SUBS:-"1000 19000"}
D_PUBLISHERS=${D_PUBLISHERS:-64} D_SECONDS=${D_SECONDS:-10} P_PIPELINE=${P_PIPELINE:-8}
E_SUBS=${E_SUBS:-1000} E_RATE=${E_RATE:-100} E_SECONDS=${E_SECONDS:-10} E_CLIENTS=${E_CLIENTS:-16}
V_SUBS=${V_SUBS:-10000} V_RATE=${V_RATE:-2000} V_SECONDS=${V_SECONDS:-15} V_PUBLISHERS=${V_PUBLISHERS:-32}
V_PUBLIC_RATE=${V_PUBLIC_RATE:-20} V_BASELINE=${V_BASELINE:-1}
H_SUBS=${H_SUBS:-10000} H_CONNS=${H_CONNS:-100} H_RATE=${H_RATE:-$B_RATE} H_SECONDS=${H_SECONDS:-$B_SECONDS}
H_PUBLISHERS=${H_PUBLISHERS:-$B_PUBLISHERS} H_SETTLE=${H_SETTLE:-1}

BUILD_DIR=$BENCH/build/broker-release
BROKER=${BROKER_BIN:-$BUILD_DIR/broker}
LOADGEN=$BENCH/build/loadgen
NCHAN_MODULE=""
SECRET="bench-secret-$(date +%s)-0123456789abcdef0123456789"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESDIR=$BENCH/results/$STAMP
RESULTS=$RESDIR/results.txt

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Whether a selected scenario runs nchan (r, v, e and h are broker only).
needs_nchan() {
  local s
  for s in $SCENARIOS; do
    case $s in a | b | c | d | p) return 0 ;; esac
  done
  return 1
}

# ------------------------------------------------------------------------------------------------
# Build and dependencies

build() {
  if needs_nchan; then bash "$ROOT/scripts/deps.sh" bench; else bash "$ROOT/scripts/deps.sh" run; fi
  if [ -z "${BROKER_BIN:-}" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    [ -f "$BUILD_DIR/build.ninja" ] ||
      meson setup "$BUILD_DIR" "$ROOT" --buildtype=release -Db_ndebug=if-release -Dtests=disabled >/dev/null
    ninja -C "$BUILD_DIR" broker >/dev/null
  fi
  BUILT_FROM="commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes'), $(date -u +%H:%M) UTC"
  [ -n "${BROKER_BIN:-}" ] && BUILT_FROM="(not built here: BROKER_BIN=$BROKER_BIN)"
  make -s -C "$BENCH" >/dev/null
  [ -x "$BROKER" ] || { log "no broker binary at $BROKER"; exit 1; }
  needs_nchan || return 0
  for m in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/share/nginx/modules/ngx_nchan_module.so; do
    [ -f "$m" ] && NCHAN_MODULE=$m && break
  done
  [ -n "$NCHAN_MODULE" ] || { log "the nchan module is not installed (scripts/deps.sh bench)"; exit 1; }
}

# ------------------------------------------------------------------------------------------------
# Servers: one at a time, started as children of this script, stopped by pid.

SERVER_PID="" SERVER_PORT="" SERVER_TMP="" SERVER_KIND="" STORM_PID="" BUILT_FROM="?"

pick_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 10000))
    if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
      echo "$p"
      return 0
    fi
  done
  log "no free port found"
  return 1
}

# Waits until the server answers on its port, and makes sure that every listener on that port is
# ours: with SO_REUSEPORT a stray server on the same port would silently take half the
# connections.
wait_ready() {
  local i lines
  for i in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$SERVER_KIND exited at start-up:"; tail -5 "$SERVER_TMP/server.log" >&2
      return 1
    fi
    lines=$(ss -Hltnp "sport = :$SERVER_PORT" 2>/dev/null || true)
    if [ -n "$lines" ] && curl -s -o /dev/null -m 2 "http://127.0.0.1:$SERVER_PORT/"; then
      if echo "$lines" | grep "users:" | grep -v -q "pid=$SERVER_PID,"; then
        log "another process listens on port $SERVER_PORT:"; echo "$lines" >&2
        return 1
      fi
      # ss may not name the owner while nginx forks its workers: look again
      echo "$lines" | grep -v -q "users:" || return 0
    fi
    sleep 0.1
  done
  log "$SERVER_KIND did not come up on port $SERVER_PORT"
  return 1
}

start_server() { # broker|nchan [more broker flags, e.g. --rules=FILE]
  SERVER_KIND=$1
  shift
  SERVER_PORT=$(pick_port)
  SERVER_TMP=$(mktemp -d "/tmp/bench-$SERVER_KIND.XXXXXX")
  if [ "$SERVER_KIND" = broker ]; then
    "$BROKER" --db="$SERVER_TMP/db" --port="$SERVER_PORT" --host=127.0.0.1 --jwt_secret="$SECRET" \
      --threads="$THREADS" --workers="$THREADS" --log_level=warn "$@" 2>"$SERVER_TMP/server.log" &
  else
    sed -e "s|@MODULE@|$NCHAN_MODULE|" -e "s|@TMP@|$SERVER_TMP|g" -e "s|@PORT@|$SERVER_PORT|" \
        -e "s|^worker_processes 2;|worker_processes $THREADS;|" \
        "$BENCH/nchan.conf.in" >"$SERVER_TMP/nginx.conf"
    nginx -c "$SERVER_TMP/nginx.conf" -p "$SERVER_TMP/" -e "$SERVER_TMP/server.log" \
      2>>"$SERVER_TMP/server.log" &
  fi
  SERVER_PID=$!
  wait_ready
}

# SIGTERM for broker (graceful), SIGQUIT for nginx (graceful), SIGKILL after 10 s.
stop_server() { # [log name]
  [ -n "$SERVER_PID" ] || return 0
  local sig=TERM i
  [ "$SERVER_KIND" = nchan ] && sig=QUIT
  kill -s "$sig" "$SERVER_PID" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log "$SERVER_KIND did not stop in 10 s; SIGKILL"
    kill -s KILL "$SERVER_PID" 2>/dev/null || true
  fi
  local rc=0
  wait "$SERVER_PID" 2>/dev/null || rc=$?
  if [ "$SERVER_KIND" = broker ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; then
    log "broker exited with status $rc"
  fi
  if [ -n "${1:-}" ]; then
    cp "$SERVER_TMP/server.log" "$RESDIR/logs/$1.log" 2>/dev/null || true
    [ -f "$SERVER_TMP/error.log" ] && cat "$SERVER_TMP/error.log" >>"$RESDIR/logs/$1.log"
  fi
  rm -rf "$SERVER_TMP"
  SERVER_PID="" SERVER_TMP=""
}

cleanup() {
  if [ -n "$STORM_PID" ]; then kill "$STORM_PID" 2>/dev/null || true; wait "$STORM_PID" 2>/dev/null || true; fi
  stop_server "" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------------
# One load generator run: its RESULT line goes to $RESULTS with the scenario and run number.

loadgen() { # name run args...
  local name=$1 run=$2
  shift 2
  local out=$RESDIR/logs/$name-$run.out
  timeout $((LIMIT + 30)) "$LOADGEN" --host=127.0.0.1 --port="$SERVER_PORT" --server-pid="$SERVER_PID" \
    --duration-limit="$LIMIT" --label="$name" "$@" >"$out" 2>&1 || true
  local line
  line=$(grep '^RESULT ' "$out" | tail -1 || true)
  if [ -z "$line" ]; then
    log "  $name run $run: no RESULT line; see $out"
    tail -3 "$out" >&2
    return 0
  fi
  echo "run=$run $line" >>"$RESULTS"
  log "  $name run $run: $(grep -E '^(delivered|published|logins|per idle|subscribers|private):' "$out" | tr '\n' ' ' | cut -c1-400)"
}

both() { # name run target-specific args for both...
  local name=$1 run=$2 target
  shift 2
  for target in broker nchan; do
    quiet_machine
    if start_server "$target"; then
      loadgen "$name" "$run" --target="$target" "$@"
    else
      echo "# $name run $run: $target did not start" >>"$RESULTS"
    fi
    stop_server "$name-$target-$run"
    sleep 1
  done
}

scenario_a() {
  log "a. fan-out flat out: $A_SUBS subscribers, up to $A_EVENTS events of $SIZE bytes, $A_PUBLISHERS publishers, publishing capped at $A_SECONDS s"
  for r in $(seq 1 "$RUNS"); do
    both a "$r" --subscribers="$A_SUBS" --events="$A_EVENTS" --rate=0 --publishers="$A_PUBLISHERS" \
      --size="$SIZE" --publish-seconds="$A_SECONDS"
  done
}

scenario_b() {
  local events=$((B_RATE * B_SECONDS))
  log "b. fan-out paced: $B_SUBS subscribers, $B_RATE events/s for $B_SECONDS s"
  for r in $(seq 1 "$RUNS"); do
    both b "$r" --subscribers="$B_SUBS" --events="$events" --rate="$B_RATE" --publishers="$B_PUBLISHERS" \
      --size="$SIZE"
  done
}

scenario_c() {
  local n
  for n in $C_SUBS; do
    log "c. idle memory: $n subscribers"
    for r in $(seq 1 "$RUNS"); do
      both "c$n" "$r" --mode=idle --subscribers="$n" --hold=3
    done
  done
}

inserts() { # NAME PIPELINE: publishers flat out, no subscribers
  local r
  for r in $(seq 1 "$RUNS"); do
    both "$1" "$r" --subscribers=0 --events=100000000 --rate=0 --publishers="$D_PUBLISHERS" --pipeline="$2" \
      --size="$SIZE" --publish-seconds="$D_SECONDS"
  done
}

scenario_d() {
  log "d. durable inserts: $D_PUBLISHERS publishers, no subscribers, flat out for $D_SECONDS s (nchan: in memory, for reference)"
  inserts d 1
}

scenario_p() {
  log "p. durable inserts, pipelined: $D_PUBLISHERS publishers, $P_PIPELINE requests in flight on each, flat out for $D_SECONDS s"
  inserts p "$P_PIPELINE"
}

scenario_e() {
  local events=$((E_RATE * E_SECONDS))
  log "e. login storm: $E_SUBS subscribers at $E_RATE events/s for $E_SECONDS s, without and with $E_CLIENTS clients logging in (broker only)"
  for r in $(seq 1 "$RUNS"); do
    quiet_machine
    if start_server broker; then
      loadgen e-base "$r" --target=broker --subscribers="$E_SUBS" --events="$events" --rate="$E_RATE" \
        --publishers=8 --size="$SIZE"
    fi
    stop_server "e-base-broker-$r"
    sleep 1
    quiet_machine
    if ! start_server broker; then
      stop_server ""
      continue
    fi
    timeout $((LIMIT + 30)) "$LOADGEN" --target=broker --mode=login --host=127.0.0.1 --port="$SERVER_PORT" \
      --publishers="$E_CLIENTS" --publish-seconds=$((E_SECONDS + 4)) --duration-limit="$LIMIT" \
      --label=e-login >"$RESDIR/logs/e-login-$r.out" 2>&1 &
    STORM_PID=$!
    sleep 2 # the storm is under way (its user is created) before the subscribers connect
    loadgen e-storm "$r" --target=broker --subscribers="$E_SUBS" --events="$events" --rate="$E_RATE" \
      --publishers=8 --size="$SIZE"
    wait "$STORM_PID" || true
    STORM_PID=""
    grep '^RESULT ' "$RESDIR/logs/e-login-$r.out" | sed "s/^/run=$r /" >>"$RESULTS" || true
    stop_server "e-storm-broker-$r"
    sleep 1
  done
}

# One broker run of a rules scenario: a fresh broker, with --rules=RULES unless RULES is empty, and
# one loadgen run labelled NAME; the server log is kept as NAME-broker-RUN.
broker_run() { # name run rules-file-or-empty loadgen args...
  local name=$1 run=$2 rules=$3 up=0
  shift 3
  quiet_machine
  if [ -n "$rules" ]; then start_server broker --rules="$rules" && up=1; else start_server broker && up=1; fi
  if [ "$up" = 1 ]; then
    loadgen "$name" "$run" --target=broker "$@"
  else
    echo "# $name run $run: broker did not start" >>"$RESULTS"
  fi
  stop_server "$name-broker-$run"
  sleep 1
}

# Scenario r: scenario a's load, the same loadgen arguments, without and with rules. The event
# "bench" falls through to the public "*" rule, so what differs is only that the broker has rules
# to apply: the issue's target is rules within 10% of no rules (deliveries/s and p99).
scenario_r() {
  local rules=$RESDIR/rules-r.json
  cat >"$rules" <<'JSON'
{"rules": [
  {"events": "user.{user_id}.*", "publish": "self", "subscribe": "self"},
  {"events": "staff.*", "publish": ["staff"], "subscribe": ["staff"]},
  {"events": "*", "publish": "any", "subscribe": "any"}
]}
JSON
  log "r. fan-out with rules (scenario a's load: $A_SUBS subscribers, up to $A_EVENTS events, $A_PUBLISHERS publishers, capped at $A_SECONDS s), without and with --rules=${rules#"$ROOT"/}"
  local r order kind file
  for r in $(seq 1 "$RUNS"); do
    # alternate which goes first, so a drift of the machine during a run favours neither
    order="none rules"
    if [ $((r % 2)) = 0 ]; then order="rules none"; fi
    for kind in $order; do
      file=""
      if [ "$kind" = rules ]; then file=$rules; fi
      broker_run "r-$kind" "$r" "$file" \
        --subscribers="$A_SUBS" --events="$A_EVENTS" --rate=0 --publishers="$A_PUBLISHERS" \
        --size="$SIZE" --publish-seconds="$A_SECONDS"
    done
  done
}

# Scenario h: the same SSE fan-out over HTTP/2 and over HTTP/1.1, on fresh brokers of the same
# build, back to back within each run (the order swaps every run). HTTP/2: H_SUBS streams, H_SUBS /
# H_CONNS per connection, prior knowledge on plain TCP (broker accepts it on its plain port), each
# stream's SSE parsed like an HTTP/1.1 body. Tokens are minted with the broker's secret, so the
# connect phase costs no logins. nchan's SSE has no HTTP/2 here: the reference is HTTP/1.1 broker.
scenario_h() {
  local per=$(((H_SUBS + H_CONNS - 1) / H_CONNS)) events=$((H_RATE * H_SECONDS)) r order kind
  local -a bflags=()
  # more streams per connection than broker's default allows: raise it, for both runs alike
  [ "$per" -gt 100 ] && bflags=(--h2_max_streams="$per")
  log "h. HTTP/2 vs HTTP/1.1 (broker): $H_SUBS SSE streams on $H_CONNS HTTP/2 connections ($per each) vs $H_SUBS HTTP/1.1 SSE connections, $H_RATE events/s for $H_SECONDS s, $H_PUBLISHERS publishers"
  for r in $(seq 1 "$RUNS"); do
    order="h1 h2"
    if [ $((r % 2)) = 0 ]; then order="h2 h1"; fi
    for kind in $order; do
      local -a lflags=()
      [ "$kind" = h2 ] && lflags=(--h2 --h2-streams-per-conn="$per")
      quiet_machine
      if start_server broker "${bflags[@]}"; then
        loadgen "h-$kind" "$r" --target=broker --secret="$SECRET" "${lflags[@]}" --subscribers="$H_SUBS" \
          --events="$events" --rate="$H_RATE" --publishers="$H_PUBLISHERS" --size="$SIZE" --settle="$H_SETTLE"
      else
        echo "# h-$kind run $r: broker did not start" >>"$RESULTS"
      fi
      stop_server "h-$kind-broker-$r"
      sleep 1
    done
  done
}

# Scenario v: private events. V_SUBS subscribers, each with a token of its own user (minted by the
# loadgen with the broker's secret: the users need not exist), reading /sse with no ?events filter,
# so only the rules keep the other users' events away; the publishers' token holds the role
# "bench" that the private rule requires for publishing. Phases (each on a fresh broker with the
# same rules, rotated every run): private, public (one shared token, events "bench" through the
# "*" rule, every subscriber gets every event), and with V_BASELINE=1 the private publishing with
# no subscriber (what the inserts alone cost, to subtract).
scenario_v() {
  local rules=$RESDIR/rules-v.json
  cat >"$rules" <<'JSON'
{"rules": [
  {"events": "user.{user_id}.*", "publish": ["bench"], "subscribe": "self"},
  {"events": "*", "publish": "any", "subscribe": "any"}
]}
JSON
  local events=$((V_RATE * V_SECONDS)) pevents=$((V_PUBLIC_RATE * V_SECONDS))
  log "v. private events: $V_SUBS subscribers of $V_SUBS users, user.<id>.msg round-robin at $V_RATE/s for $V_SECONDS s ($((events / V_SUBS)) or so per user); public comparison at $V_PUBLIC_RATE/s$([ "$V_BASELINE" = 1 ] && echo "; baseline without subscribers")"
  local phases="private public" r i p
  [ "$V_BASELINE" = 1 ] && phases="$phases none"
  local -a list
  read -r -a list <<<"$phases"
  for r in $(seq 1 "$RUNS"); do
    for i in $(seq 0 $((${#list[@]} - 1))); do
      p=${list[$(((i + r - 1) % ${#list[@]}))]}
      case $p in
      private)
        broker_run v-private "$r" "$rules" --secret="$SECRET" --private-users="$V_SUBS" \
          --subscribers="$V_SUBS" --events="$events" --rate="$V_RATE" --publishers="$V_PUBLISHERS" \
          --publisher-roles=bench --size="$SIZE" ;;
      public)
        broker_run v-public "$r" "$rules" --secret="$SECRET" --sse-events= \
          --subscribers="$V_SUBS" --events="$pevents" --rate="$V_PUBLIC_RATE" --publishers="$V_PUBLISHERS" \
          --publisher-roles=bench --size="$SIZE" ;;
      none)
        broker_run v-none "$r" "$rules" --secret="$SECRET" --private-users="$V_SUBS" \
          --subscribers=0 --events="$events" --rate="$V_RATE" --publishers="$V_PUBLISHERS" \
          --publisher-roles=bench --size="$SIZE" ;;
      esac
    done
  done
}

# ------------------------------------------------------------------------------------------------
# Tables: medians over the runs.

# median NAME TARGET FIELD -> the median of FIELD over the RESULT lines of NAME and TARGET
median() {
  grep -E " target=$2 .*label=$1 " "$RESULTS" 2>/dev/null |
    tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                              else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

statuses() { # NAME TARGET -> e.g. "ok×3" or "ok×2 timeout×1"
  grep -E " target=$2 .*label=$1 " "$RESULTS" 2>/dev/null | tr ' ' '\n' | awk -F= '$1 == "status" { print $2 }' |
    sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? " " : ""), $2, $1 }'
}

row() { # label NAME FIELD [nchan NAME]
  local b n
  b=$(median "$2" broker "$3")
  n=$(median "${4:-$2}" nchan "$3")
  printf '| %s | %s | %s | %s |\n' "$1" "$b" "$n" "$(ratio "$b" "$n")"
}

# pair_row LABEL FIELD NAME_A NAME_B: broker medians of FIELD for labels A and B, and B/A
pair_row() {
  local a b
  a=$(median "$3" broker "$2")
  b=$(median "$4" broker "$2")
  printf '| %s | %s | %s | %s |\n' "$1" "$a" "$b" "$(ratio "$b" "$a")"
}

# The ratio B/A of FIELD run by run (labels A and B of the same run), e.g. "0.97 1.02 0.99".
run_ratios() { # FIELD NAME_A NAME_B
  awk -v f="$1" -v a="$2" -v b="$3" '
    / target=broker / {
      run = ""; lab = ""; val = ""
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "run") run = kv[2]
        else if (kv[1] == "label") lab = kv[2]
        else if (kv[1] == f) val = kv[2]
      }
      if (val == "") next
      if (lab == a) va[run] = val
      if (lab == b) vb[run] = val
    }
    END {
      n = 0
      for (r = 1; r <= 1000; r++)
        if ((r in va) && (r in vb) && va[r] + 0 != 0) { printf "%s%.2f", (n++ ? " " : ""), vb[r] / va[r] }
      if (!n) printf "-"
    }' "$RESULTS" 2>/dev/null
}

insert_table() { # NAME TITLE
  echo "$2"
  echo
  echo "| metric | broker (fsync'd) | nchan (in memory) | broker/nchan |"
  echo "|---|---|---|---|"
  row "inserts/s (acked)" "$1" acked_per_s
  row "insert latency p50 (µs)" "$1" ack_p50_us
  row "insert latency p99 (µs)" "$1" ack_p99_us
  row "insert latency max (µs)" "$1" ack_max_us
  row "errors" "$1" pub_errors
  row "server CPU (s)" "$1" cpu_s
}

tables() {
  local s n
  echo
  echo "Medians of $RUNS run(s); raw RESULT lines in ${RESULTS#"$ROOT"/}."
  for s in $SCENARIOS; do
    echo
    case $s in
    a)
      echo "### a. Fan-out, flat out ($A_SUBS subscribers, up to $A_EVENTS events of $SIZE B, $A_PUBLISHERS publishers, publishing capped at $A_SECONDS s)"
      echo
      echo "| metric | broker | nchan | broker/nchan |"
      echo "|---|---|---|---|"
      row "events published (acked)" a acked
      row "deliveries/s" a deliveries_per_s
      row "latency p50 (µs)" a p50_us
      row "latency p90 (µs)" a p90_us
      row "latency p99 (µs)" a p99_us
      row "latency max (µs)" a max_us
      row "publish ack p99 (µs)" a ack_p99_us
      row "lost (not delivered)" a lost
      row "duplicated" a dup
      row "connections failed" a conn_failed
      row "streams dropped by server" a dropped
      row "server CPU while publishing (s)" a cpu_s
      row "server PSS at end (kB)" a pss_kb
      printf '| run status | %s | %s | |\n' "$(statuses a broker)" "$(statuses a nchan)"
      ;;
    b)
      echo "### b. Fan-out, paced ($B_SUBS subscribers, $B_RATE events/s for $B_SECONDS s)"
      echo
      echo "| metric | broker | nchan | broker/nchan |"
      echo "|---|---|---|---|"
      row "events published (acked)" b acked
      row "publish rate achieved (acked/s)" b acked_per_s
      row "deliveries/s" b deliveries_per_s
      row "latency p50 (µs)" b p50_us
      row "latency p90 (µs)" b p90_us
      row "latency p99 (µs)" b p99_us
      row "latency max (µs)" b max_us
      row "max publish lag behind schedule (ms)" b lag_ms
      row "lost (not delivered)" b lost
      row "duplicated" b dup
      row "connections failed" b conn_failed
      row "streams dropped by server" b dropped
      row "server CPU while publishing (s)" b cpu_s
      row "server PSS at end (kB)" b pss_kb
      printf '| run status | %s | %s | |\n' "$(statuses b broker)" "$(statuses b nchan)"
      ;;
    c)
      echo "### c. Idle subscribers: server memory"
      echo
      echo "| subscribers | metric | broker | nchan | broker/nchan |"
      echo "|---|---|---|---|---|"
      for n in $C_SUBS; do
        row "$n | connected" "c$n" subs_ok
        row "$n | connect time (s)" "c$n" connect_s
        row "$n | bytes per subscriber (PSS)" "c$n" bytes_per_sub
        row "$n | bytes per subscriber (RSS)" "c$n" rss_bytes_per_sub
        row "$n | server PSS (kB)" "c$n" pss_kb
      done
      ;;
    d)
      insert_table d "### d. Durable inserts ($D_PUBLISHERS publishers, no subscribers, flat out for $D_SECONDS s; nchan keeps messages in memory only: reference, not a like-for-like)"
      ;;
    p)
      insert_table p "### p. Durable inserts, pipelined ($D_PUBLISHERS publishers × $P_PIPELINE requests in flight, no subscribers, flat out for $D_SECONDS s; nchan in memory)"
      ;;
    e)
      echo "### e. Login storm (broker; $E_SUBS subscribers, $E_RATE events/s for $E_SECONDS s; $E_CLIENTS clients calling /login in a loop)"
      echo
      echo "| metric | without storm | with storm | with/without |"
      echo "|---|---|---|---|"
      local f b s2
      for f in p50_us p90_us p99_us max_us lost deliveries_per_s; do
        b=$(median e-base broker "$f")
        s2=$(median e-storm broker "$f")
        printf '| subscriber %s | %s | %s | %s |\n' "$f" "$b" "$s2" "$(ratio "$s2" "$b")"
      done
      printf '| logins/s (200) | | %s | |\n' "$(median e-login broker acked_per_s)"
      printf '| login latency p50 / p99 (µs) | | %s / %s | |\n' "$(median e-login broker ack_p50_us)" "$(median e-login broker ack_p99_us)"
      printf '| login errors (non-200) | | %s | |\n' "$(median e-login broker pub_errors)"
      ;;
    r)
      echo "### r. Fan-out with rules (broker; scenario a's load: $A_SUBS subscribers, up to $A_EVENTS events of $SIZE B, $A_PUBLISHERS publishers, publishing capped at $A_SECONDS s; without and with --rules, alternating)"
      echo
      echo "Rules: \`user.{user_id}.*\` self/self, \`staff.*\` [staff]/[staff], \`*\` any/any (rules-r.json); the event \`bench\` falls through to \`*\`."
      echo
      echo "| metric | no rules | rules | rules/no rules |"
      echo "|---|---|---|---|"
      pair_row "events published (acked)" acked r-none r-rules
      pair_row "deliveries/s" deliveries_per_s r-none r-rules
      pair_row "latency p50 (µs)" p50_us r-none r-rules
      pair_row "latency p90 (µs)" p90_us r-none r-rules
      pair_row "latency p99 (µs)" p99_us r-none r-rules
      pair_row "latency max (µs)" max_us r-none r-rules
      pair_row "publish ack p99 (µs)" ack_p99_us r-none r-rules
      pair_row "lost (not delivered)" lost r-none r-rules
      pair_row "duplicated" dup r-none r-rules
      pair_row "out of order" disorder r-none r-rules
      pair_row "connections failed" conn_failed r-none r-rules
      pair_row "streams dropped by server" dropped r-none r-rules
      pair_row "server CPU while publishing (s)" cpu_s r-none r-rules
      pair_row "server CPU per 1000 deliveries (ms)" cpu_ms_per_1k r-none r-rules
      pair_row "server PSS at end (kB)" pss_kb r-none r-rules
      printf '| run status | %s | %s | |\n' "$(statuses r-none broker)" "$(statuses r-rules broker)"
      echo
      echo "Target: rules within 10% of no rules, i.e. deliveries/s ratio ≥ 0.90 and p99 ratio ≤ 1.10."
      echo "Run by run (rules/no rules, the two measured back to back): deliveries/s $(run_ratios deliveries_per_s r-none r-rules); p99 $(run_ratios p99_us r-none r-rules)."
      ;;
    h)
      local per=$(((H_SUBS + H_CONNS - 1) / H_CONNS))
      echo "### h. HTTP/2 vs HTTP/1.1 (broker; $H_SUBS SSE streams: over HTTP/2 on $H_CONNS connections, $per streams each, prior knowledge; over HTTP/1.1 on $H_SUBS connections; $H_RATE events/s of $SIZE B for $H_SECONDS s from $H_PUBLISHERS HTTP/1.1 publishers)"
      echo
      echo "nchan's SSE has no HTTP/2 here, so the reference is broker over HTTP/1.1, same build, same run: the ratio is h2/h1."
      echo
      echo "| metric | HTTP/1.1 | HTTP/2 | h2/h1 |"
      echo "|---|---|---|---|"
      pair_row "streams connected" subs_ok h-h1 h-h2
      pair_row "TCP connections (subscribers)" conns h-h1 h-h2
      pair_row "connect time (s)" connect_s h-h1 h-h2
      pair_row "events published (acked)" acked h-h1 h-h2
      pair_row "publish rate achieved (acked/s)" acked_per_s h-h1 h-h2
      pair_row "max publish lag behind schedule (ms)" lag_ms h-h1 h-h2
      pair_row "deliveries/s" deliveries_per_s h-h1 h-h2
      pair_row "latency p50 (µs)" p50_us h-h1 h-h2
      pair_row "latency p90 (µs)" p90_us h-h1 h-h2
      pair_row "latency p99 (µs)" p99_us h-h1 h-h2
      pair_row "latency max (µs)" max_us h-h1 h-h2
      pair_row "lost (not delivered)" lost h-h1 h-h2
      pair_row "duplicated" dup h-h1 h-h2
      pair_row "out of order" disorder h-h1 h-h2
      pair_row "connections failed" conn_failed h-h1 h-h2
      pair_row "streams dropped by server" dropped h-h1 h-h2
      pair_row "server CPU while publishing (s)" cpu_s h-h1 h-h2
      pair_row "server CPU per 1000 deliveries (ms)" cpu_ms_per_1k h-h1 h-h2
      pair_row "load generator CPU (s)" loadgen_cpu_s h-h1 h-h2
      pair_row "server bytes per stream, all connected (RSS)" conn_rss_bytes_per_sub h-h1 h-h2
      pair_row "server bytes per stream, all connected (PSS)" conn_pss_bytes_per_sub h-h1 h-h2
      pair_row "server bytes per stream at the end (RSS)" end_rss_bytes_per_sub h-h1 h-h2
      pair_row "server RSS, all connected (kB)" rss_connected_kb h-h1 h-h2
      pair_row "server RSS at end (kB)" rss_kb h-h1 h-h2
      pair_row "kernel TCP memory, all connected (kB, both ends)" tcp_mem_connected_kb h-h1 h-h2
      printf '| run status | %s | %s | |\n' "$(statuses h-h1 broker)" "$(statuses h-h2 broker)"
      echo
      echo "Run by run (h2/h1, the two measured back to back): deliveries/s $(run_ratios deliveries_per_s h-h1 h-h2); p99 $(run_ratios p99_us h-h1 h-h2); bytes per stream $(run_ratios conn_rss_bytes_per_sub h-h1 h-h2)."
      echo "Bytes per stream: (server RSS with all $H_SUBS streams open, ${H_SETTLE} s after the last connected, before any publisher) − (RSS before the first), / streams, as scenario c counts it; \"at the end\": the same with the RSS after the run."
      ;;
    v)
      echo "### v. Private events (broker; $V_SUBS subscribers of $V_SUBS different users, each with its own token, /sse with no filter; user.<id>.msg round-robin at $V_RATE/s for $V_SECONDS s; public comparison: the same $V_SUBS subscribers with one shared token, $V_PUBLIC_RATE events/s)"
      echo
      echo "Rules: \`user.{user_id}.*\` publish [bench] / subscribe self, \`*\` any/any (rules-v.json). Private: each subscriber must receive exactly its own user's events; public: every subscriber receives every event."
      echo
      local cols="| metric | private events | public events | private/public |"
      local sep="|---|---|---|---|"
      if [ "$V_BASELINE" = 1 ]; then cols="$cols private, no subscribers |"; sep="$sep---|"; fi
      echo "$cols"
      echo "$sep"
      # label|field|whether the row means anything without subscribers (the baseline column)
      local spec label field base pv pu nb
      for spec in "events published (acked)|acked|1" "publish rate achieved (acked/s)|acked_per_s|1" \
        "max publish lag behind schedule (ms)|lag_ms|1" "publish ack p99 (µs)|ack_p99_us|1" \
        "publish errors|pub_errors|1" "subscribers connected|subs_ok|0" "connect time (s)|connect_s|0" \
        "deliveries|deliveries|0" "deliveries/s|deliveries_per_s|0" \
        "latency p50 (µs)|p50_us|0" "latency p90 (µs)|p90_us|0" "latency p99 (µs)|p99_us|0" "latency max (µs)|max_us|0" \
        "lost (not delivered)|lost|0" "foreign (another user's event received)|foreign|0" \
        "duplicated|dup|0" "out of order|disorder|0" "connections failed|conn_failed|0" "streams dropped by server|dropped|0" \
        "server CPU while publishing (s)|cpu_s|1" \
        "server CPU per 1000 deliveries (ms)|cpu_ms_per_1k|0" "server CPU per event (µs)|cpu_us_per_event|1" \
        "server PSS at end (kB)|pss_kb|1"; do
        IFS='|' read -r label field base <<<"$spec"
        pv=$(median v-private broker "$field")
        pu=$(median v-public broker "$field")
        if [ "$V_BASELINE" = 1 ]; then
          nb=-
          if [ "$base" = 1 ]; then nb=$(median v-none broker "$field"); fi
          printf '| %s | %s | %s | %s | %s |\n' "$label" "$pv" "$pu" "$(ratio "$pv" "$pu")" "$nb"
        else
          printf '| %s | %s | %s | %s |\n' "$label" "$pv" "$pu" "$(ratio "$pv" "$pu")"
        fi
      done
      if [ "$V_BASELINE" = 1 ]; then
        printf '| run status | %s | %s | | %s |\n' "$(statuses v-private broker)" "$(statuses v-public broker)" "$(statuses v-none broker)"
      else
        printf '| run status | %s | %s | |\n' "$(statuses v-private broker)" "$(statuses v-public broker)"
      fi
      echo
      echo "A private event is delivered once, a public one $V_SUBS times: CPU per delivery includes each event's insert (authenticated, fsync'd), which a private delivery carries alone and a public one shares with $V_SUBS others; compare CPU per delivery with that in mind, and latency at $V_RATE deliveries/s (private) against $((V_SUBS * V_PUBLIC_RATE)) deliveries/s scheduled (public)."
      if [ "$V_BASELINE" = 1 ]; then
        awk -v pv="$(median v-private broker cpu_us_per_event)" -v nb="$(median v-none broker cpu_us_per_event)" \
            -v pu="$(median v-public broker cpu_ms_per_1k)" -v n="$V_SUBS" -v rate="$V_PUBLIC_RATE" 'BEGIN {
          if (pv == "-" || nb == "-") exit
          printf "Against the baseline without subscribers (the same private publishing: %.1f µs of server CPU per event, the insert alone), a private event costs %.1f µs more with %d users subscribed: its one delivery, plus whatever the %d other streams cost it.", nb, pv - nb, n, n - 1
          if (pu != "-") printf " A public delivery costs %.2f µs, its share of the insert included (at %s events/s an insert costs more than at the baseline rate: fewer inserts share each group commit).", pu, rate
          printf "\n"
        }'
      fi
      ;;
    esac
  done
}

machine() {
  echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- kernel: $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  if needs_nchan; then
    echo "- nginx $(nginx -v 2>&1 | sed 's|.*/||'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)"
  fi
  echo "- disk holding broker's --db (/tmp): $(df -T /tmp | awk 'NR == 2 { print $2 " on " $1 }')"
  echo "- broker: \`$("$BROKER" --version 2>&1 | head -1)\`, release build of the work tree at $BUILT_FROM"
  echo "- RLIMIT_NOFILE hard limit: $(ulimit -Hn)"
}

# ------------------------------------------------------------------------------------------------

main() {
  build
  mkdir -p "$RESDIR/logs"
  : >"$RESULTS"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "results in ${RESDIR#"$ROOT"/}"
  local s
  for s in $SCENARIOS; do
    case $s in
    a | b | c | d | p | e | r | v | h) "scenario_$s" ;;
    *) log "unknown scenario $s"; exit 2 ;;
    esac
  done
  {
    echo "## Machine"
    echo
    machine
    tables
  } | tee "$RESDIR/tables.md"
}

main "$@"
