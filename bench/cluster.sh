#!/usr/bin/env bash
# bench/cluster.sh: broker's cluster mode (SPEC §4, NATS JetStream) on this machine, two scenarios.
#
#   bash bench/cluster.sh                      # both scenarios, 3 runs each (about 10 minutes)
#   RUNS=1 QUICK=1 bash bench/cluster.sh       # a smoke run with small sizes (about 2 minutes)
#   SCENARIOS=i RUNS=5 bash bench/cluster.sh
#
#   i. Inserts through the cluster vs the embedded store: 64 publishers flat out against one broker on
#      its embedded store (no --cluster), then on a JetStream of 1 nats-server (1 replica), then of 3
#      nats-servers (3 replicas). I_SUBS subscribers check that every acknowledged insert is delivered
#      once and in order. Inserts/s, ack p50/p99 and the ratio to the embedded store.
#   f. Beyond one process: F_NODES broker nodes on one 3-server JetStream cluster (3 replicas), F_SUBS
#      subscribers on each (one loadgen per node: each stays under the 20,000 descriptors a process may
#      hold), a paced stream of events published through node 1 only; on every node's subscribers:
#      deliveries/s, publish -> deliver latency, lost / duplicated / out of order, and broker memory per
#      subscriber.
#
# Builds a release broker (bench/build/broker-release, as bench/compare.sh does) and the load generator,
# takes a nats-server 2.10+ from scripts/nats-server.sh, then runs each scenario RUNS times, on loopback
# only, every server started fresh (empty --db and JetStream store) on free ports and stopped by its pid,
# never two benchmarks at once. Prints a markdown table of medians and keeps the raw RESULT lines, the
# load generator's reports, the server logs and each node's /metrics under
# bench/results/cluster-<timestamp>/.
#
# Environment (defaults in brackets):
#   RUNS [3]  SCENARIOS ["i f"]  QUICK [0]  SIZE [100] (bytes of event data)
#   THREADS [2] (--threads/--workers of the broker in scenario i)
#   I_PUBLISHERS [64] I_SECONDS [10] I_SUBS [1] (0 = no delivery check, exactly compare.sh's scenario d)
#   F_NODES [5] F_SUBS [18000] (per node) F_RATE [10] (events/s) F_SECONDS [10] F_PUBLISHERS [4]
#   F_THREADS [1] (--threads/--workers of each node: F_NODES processes share the cores)
#   F_CONNECT_RATE [2000] (new subscriber connections per second, per loadgen)
#   F_SRC_ADDRS [8] (each loadgen spreads its connections over 127.0.0.1 .. 127.0.0.F_SRC_ADDRS)
#   LIMIT [60] (loadgen --duration-limit in scenario i; scenario f computes its own from its sizes)
#   QUIET_BUSY [15] QUIET_WAIT [120]: before each run, wait up to QUIET_WAIT s for the machine to be
#     less than QUIET_BUSY % busy (other work on the 2 cores skews everything)
#   BROKER_BIN (use this broker binary instead of building one)  SKIP_BUILD [0]
#   NATS_SERVER [the path scripts/nats-server.sh prints]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
source "$BENCH/common.sh"
cd "$ROOT"

RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-"i f"}
QUICK=${QUICK:-0}
SIZE=${SIZE:-100}
THREADS=${THREADS:-2}
LIMIT=${LIMIT:-60}
QUIET_BUSY=${QUIET_BUSY:-15} QUIET_WAIT=${QUIET_WAIT:-120}
if [ "$QUICK" = 1 ]; then
  I_SECONDS=${I_SECONDS:-3}
  F_SUBS=${F_SUBS:-1000} F_SECONDS=${F_SECONDS:-3}
  LIMIT=${LIMIT_QUICK:-30}
fi
I_PUBLISHERS=${I_PUBLISHERS:-64} I_SECONDS=${I_SECONDS:-10} I_SUBS=${I_SUBS:-1}
F_NODES=${F_NODES:-5} F_SUBS=${F_SUBS:-18000} F_RATE=${F_RATE:-10} F_SECONDS=${F_SECONDS:-10}
F_PUBLISHERS=${F_PUBLISHERS:-4} F_THREADS=${F_THREADS:-1} F_CONNECT_RATE=${F_CONNECT_RATE:-2000}
F_SRC_ADDRS=${F_SRC_ADDRS:-8}
F_EVENTS=$((F_RATE * F_SECONDS))
# Every listener connects (at most F_SUBS / F_CONNECT_RATE s, twice that for a slow start), then waits for
# the others, the publishing and the drain: 120 s is a generous bound for those.
F_LIMIT=${F_LIMIT:-$((2 * F_SUBS / F_CONNECT_RATE + F_SECONDS + 120))}

BUILD_DIR=$BENCH/build/broker-release
BROKER=${BROKER_BIN:-$BUILD_DIR/broker}
LOADGEN=$BENCH/build/loadgen
NATS=${NATS_SERVER:-}
SECRET="bench-secret-$(date +%s)-0123456789abcdef0123456789"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESDIR=$BENCH/results/cluster-$STAMP
RESULTS=$RESDIR/results.txt
TMP=""

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------------------------------------
# Build and dependencies

build() {
  bash "$ROOT/scripts/deps.sh" run
  if [ -z "${BROKER_BIN:-}" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    [ -f "$BUILD_DIR/build.ninja" ] ||
      meson setup "$BUILD_DIR" "$ROOT" --buildtype=release -Db_ndebug=if-release -Dtests=disabled >/dev/null
    ninja -C "$BUILD_DIR" broker >/dev/null
  fi
  BUILT_FROM="commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes'), $(date -u +%H:%M) UTC"
  [ -n "${BROKER_BIN:-}" ] && BUILT_FROM="(not built here: BROKER_BIN=$BROKER_BIN)"
  make -s -C "$BENCH" >/dev/null
  [ -x "$BROKER" ] || { log "no broker binary at $BROKER"; exit 1; }
  [ -n "$NATS" ] || NATS=$(bash "$ROOT/scripts/nats-server.sh")
  [ -x "$NATS" ] || { log "no nats-server at '$NATS' (scripts/nats-server.sh)"; exit 1; }
}

# ------------------------------------------------------------------------------------------------
# Processes: every one started here is a direct child, recorded in PIDS (and a name in NAMES), and
# stopped by its pid: load generators first, then brokers, then nats-servers.

declare -A NAMES=()
PIDS=() USED_PORTS=" " BUILT_FROM="?"

track() { # pid name
  PIDS+=("$1")
  NAMES[$1]=$2
}

untrack() { # pid: a process already waited for
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# SIGTERM (graceful for all three kinds), SIGKILL after 10 s; reports an unexpected exit status.
stop_pid() { # pid
  local pid=$1 i rc=0
  kill -s TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "${NAMES[$pid]:-$pid} did not stop in 10 s; SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  case "${NAMES[$pid]:-}" in
  broker*) [ "$rc" -eq 0 ] || [ "$rc" -eq 143 ] || log "${NAMES[$pid]} exited with status $rc" ;;
  nats*) # nats-server 2.10 exits 1 after a clean shutdown on SIGTERM ("Server Exiting..")
    [ "$rc" -eq 0 ] || [ "$rc" -eq 143 ] ||
      { [ "$rc" -eq 1 ] && tail -1 "$TMP/${NAMES[$pid]}.log" 2>/dev/null | grep -q 'Server Exiting'; } ||
      log "${NAMES[$pid]} exited with status $rc" ;;
  esac
}

stop_kind() { # name prefix: stops every tracked process whose name starts with it
  local pid keep=()
  for pid in "${PIDS[@]}"; do
    if [[ "${NAMES[$pid]}" == "$1"* ]]; then stop_pid "$pid"; else keep+=("$pid"); fi
  done
  PIDS=("${keep[@]}")
}

stop_all() {
  [ ${#PIDS[@]} -gt 0 ] || return 0
  stop_kind loadgen
  stop_kind broker
  stop_kind nats
  USED_PORTS=" "
}

cleanup() {
  stop_all || true
  [ -z "$TMP" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PORT = a free port in [20000, 30000), below the kernel's ephemeral range (32768+) so that no
# outgoing connection takes it between the check and the bind, and not one handed out already in this
# run (so not called in a subshell: it records what it hands out).
pick_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 10000))
    if [[ "$USED_PORTS" != *" $p "* ]] && [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
      USED_PORTS="$USED_PORTS$p "
      PORT=$p
      return 0
    fi
  done
  log "no free port found"
  return 1
}

http_status() { # url -> the status code, 000 when nothing answers
  curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# ------------------------------------------------------------------------------------------------
# nats-server: 1 or 3 JetStream servers, one after the other (~0.5 s apart: three servers started at
# the same instant sometimes elect no leader), with routes between the three, like README's commands
# and tests/e2e/lib/nats.js. NATS_URLS and NATS_PIDS describe the running ones.

NATS_URLS="" NATS_PIDS=""

start_nats_once() { # count
  local n=$1 i j routes ports=() cports=() mports=() pid
  NATS_URLS="" NATS_PIDS=""
  for i in $(seq 1 "$n"); do
    pick_port && ports[i]=$PORT && pick_port && cports[i]=$PORT && pick_port && mports[i]=$PORT || return 1
  done
  for i in $(seq 1 "$n"); do
    local args=(-a 127.0.0.1 -p "${ports[i]}" -m "${mports[i]}" -n "n$i" -js -sd "$TMP/js$i")
    if [ "$n" -gt 1 ]; then
      routes=""
      for j in $(seq 1 "$n"); do [ "$j" = "$i" ] || routes="$routes,nats://127.0.0.1:${cports[j]}"; done
      args+=(--cluster "nats://127.0.0.1:${cports[i]}" --cluster_name bench --routes "${routes#,}")
    fi
    echo "$NATS ${args[*]}" >>"$RESDIR/commands.txt"
    "$NATS" "${args[@]}" >"$TMP/nats$i.log" 2>&1 &
    pid=$!
    track "$pid" "nats$i"
    NATS_PIDS="$NATS_PIDS $pid"
    NATS_URLS="$NATS_URLS,nats://127.0.0.1:${ports[i]}"
    # JetStream enabled on this server (not that the cluster formed), then the next one
    local ok=0
    for j in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || { log "nats-server n$i exited at start:"; tail -5 "$TMP/nats$i.log" >&2; return 1; }
      if [ "$(http_status "http://127.0.0.1:${mports[i]}/healthz?js-enabled-only=true")" = 200 ]; then ok=1; break; fi
      sleep 0.1
    done
    [ "$ok" = 1 ] || { log "nats-server n$i not ready in 20 s"; return 1; }
    sleep 0.5
  done
  NATS_URLS=${NATS_URLS#,}
  # all healthy: with 3, the meta leader is elected and known to all
  for j in $(seq 1 200); do
    local all=1
    for i in $(seq 1 "$n"); do
      [ "$(http_status "http://127.0.0.1:${mports[i]}/healthz")" = 200 ] || { all=0; break; }
    done
    [ "$all" = 1 ] && return 0
    sleep 0.1
  done
  log "the $n nats-servers are not healthy after 20 s"
  return 1
}

# A fresh 2.10 cluster now and then stays without a meta leader: start it again, at most 3 times.
start_nats() { # count
  local attempt
  for attempt in 1 2 3; do
    rm -rf "$TMP"/js*
    start_nats_once "$1" && return 0
    stop_kind nats
    log "nats-server start attempt $attempt failed"
  done
  return 1
}

# ------------------------------------------------------------------------------------------------
# broker nodes. BROKER_PORTS[k] and BROKER_PIDS[k] for node k (1-based).

BROKER_PORTS=() BROKER_PIDS=()

start_broker() { # k threads [cluster args...]
  local k=$1 threads=$2 port pid
  shift 2
  pick_port || return 1
  port=$PORT
  echo "$BROKER --db=$TMP/node$k --port=$port --host=127.0.0.1 --jwt_secret=<secret> --threads=$threads --workers=$threads --log_level=warn $*" >>"$RESDIR/commands.txt"
  "$BROKER" --db="$TMP/node$k" --port="$port" --host=127.0.0.1 --jwt_secret="$SECRET" \
    --threads="$threads" --workers="$threads" --log_level=warn "$@" 2>"$TMP/broker$k.log" &
  pid=$!
  track "$pid" "broker$k"
  BROKER_PORTS[k]=$port BROKER_PIDS[k]=$pid
}

# Waits until node k answers /healthz 200 (in cluster mode: connected, JetStream can take writes) and
# every listener on its port is its own (with SO_REUSEPORT a stray server would take half the
# connections).
wait_broker() { # k
  local k=$1 i lines
  for i in $(seq 1 300); do
    if ! kill -0 "${BROKER_PIDS[k]}" 2>/dev/null; then
      log "broker node $k exited at start-up:"; tail -5 "$TMP/broker$k.log" >&2
      return 1
    fi
    if [ "$(http_status "http://127.0.0.1:${BROKER_PORTS[k]}/healthz")" = 200 ]; then
      lines=$(ss -Hltnp "sport = :${BROKER_PORTS[k]}" 2>/dev/null || true)
      if echo "$lines" | grep "users:" | grep -v -q "pid=${BROKER_PIDS[k]},"; then
        log "another process listens on port ${BROKER_PORTS[k]}:"; echo "$lines" >&2
        return 1
      fi
      return 0
    fi
    sleep 0.1
  done
  log "broker node $k not healthy in 30 s: $(curl -s -m 2 "http://127.0.0.1:${BROKER_PORTS[k]}/healthz" || true)"
  tail -5 "$TMP/broker$k.log" >&2
  return 1
}

# Starts node k and waits until it is healthy; starts it again on another port when it exited at
# start-up (someone may take a free port between the check and the bind), at most 3 times.
launch_broker() { # k threads [cluster args...]
  local k=$1 attempt
  for attempt in 1 2 3; do
    start_broker "$@" || return 1
    wait_broker "$k" && return 0
    kill -0 "${BROKER_PIDS[k]}" 2>/dev/null && return 1 # running but not healthy: no retry
    wait "${BROKER_PIDS[k]}" 2>/dev/null || true
    untrack "${BROKER_PIDS[k]}"
    cp "$TMP/broker$k.log" "$RESDIR/logs/failed-start-$(date +%H%M%S)-broker$k.log" 2>/dev/null || true
    rm -rf "$TMP/node$k"
  done
  return 1
}

# Keeps the servers' logs (and each node's /metrics) of a run, then stops everything.
finish_run() { # name
  local f k
  for k in "${!BROKER_PORTS[@]}"; do
    if kill -0 "${BROKER_PIDS[k]}" 2>/dev/null; then
      curl -s -m 5 "http://127.0.0.1:${BROKER_PORTS[k]}/metrics" >"$RESDIR/logs/$1-broker$k.metrics" 2>/dev/null || true
    fi
  done
  stop_all
  for f in "$TMP"/*.log; do
    [ -e "$f" ] || continue
    cp "$f" "$RESDIR/logs/$1-$(basename "$f")"
  done
  rm -rf "${TMP:?}"/*
  BROKER_PORTS=() BROKER_PIDS=() NATS_PIDS="" NATS_URLS=""
}

# ------------------------------------------------------------------------------------------------
# Measurements

# utime + stime of the nats-servers, in clock ticks (they are not the broker's descendants, so the
# loadgen's --server-pid sample does not include them).
nats_ticks() {
  local pid t=0 s
  for pid in $NATS_PIDS; do
    s=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    t=$((t + s))
  done
  echo "$t"
}

# The RESULT line of a loadgen report, or nothing (and a note) when there is none.
result_of() { # out-file
  local line
  line=$(grep '^RESULT ' "$1" | tail -1 || true)
  [ -n "$line" ] || { log "  no RESULT line in ${1#"$ROOT"/}:"; tail -3 "$1" >&2; }
  echo "$line"
}

field() { # line key -> value
  tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

# ------------------------------------------------------------------------------------------------
# Scenario i: inserts through the cluster vs the embedded store

insert_run() { # target(embedded|c1|c3) run
  local target=$1 r=$2 out t0 t1 line
  local name="i-$target"
  quiet_machine
  case $target in
  embedded) launch_broker 1 "$THREADS" ;;
  c1) start_nats 1 && launch_broker 1 "$THREADS" --cluster="$NATS_URLS" --cluster_replicas=1 ;;
  c3) start_nats 3 && launch_broker 1 "$THREADS" --cluster="$NATS_URLS" --cluster_replicas=3 ;;
  esac || {
    echo "# $name run $r: the servers did not start" >>"$RESULTS"
    finish_run "$name-$r"
    return 0
  }
  out=$RESDIR/logs/$name-$r.out
  t0=$(nats_ticks)
  local args=(--host=127.0.0.1 --port="${BROKER_PORTS[1]}" --server-pid="${BROKER_PIDS[1]}"
    --duration-limit="$LIMIT" --label="$name" --subscribers="$I_SUBS" --events=100000000 --rate=0
    --publishers="$I_PUBLISHERS" --pipeline=1 --size="$SIZE" --publish-seconds="$I_SECONDS")
  echo "$LOADGEN ${args[*]}" >>"$RESDIR/commands.txt"
  timeout $((LIMIT + 30)) "$LOADGEN" "${args[@]}" >"$out" 2>&1 || true
  t1=$(nats_ticks)
  line=$(result_of "$out")
  if [ -n "$line" ]; then
    local ncpu=-
    [ -z "$NATS_PIDS" ] || ncpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz }')
    echo "run=$r $line nats_cpu_s=$ncpu" >>"$RESULTS"
    log "  $name run $r: $(grep -E '^(published|delivered|integrity):' "$out" | tr '\n' ' ' | cut -c1-400)"
  fi
  finish_run "$name-$r"
  sleep 1
}

scenario_i() {
  log "i. inserts: $I_PUBLISHERS publishers flat out for $I_SECONDS s, $I_SUBS checking subscriber(s): embedded store, 1 nats-server, 3 nats-servers"
  local r target
  for r in $(seq 1 "$RUNS"); do
    for target in embedded c1 c3; do
      insert_run "$target" "$r"
    done
  done
}

# ------------------------------------------------------------------------------------------------
# Scenario f: F_NODES nodes, one loadgen of F_SUBS subscribers on each, events published through node 1

fanout_run() { # run
  local r=$1 k pid runid waited ready line lpids=() ok=1 args=()
  quiet_machine
  if ! start_nats 3; then
    echo "# f run $r: nats-servers did not start" >>"$RESULTS"
    finish_run "f-$r"
    return 0
  fi
  # one after the other (node 1 creates the stream and the users bucket)
  for k in $(seq 1 "$F_NODES"); do
    launch_broker "$k" "$F_THREADS" --cluster="$NATS_URLS" --cluster_replicas=3 || { ok=0; break; }
  done
  if [ "$ok" = 0 ]; then
    echo "# f run $r: a broker node did not start" >>"$RESULTS"
    finish_run "f-$r"
    return 0
  fi
  # One listener per node: subscribes only, expects the F_EVENTS events of run $runid.
  runid=$(($(date +%s%N) / 1000 % 70000000000000 + 1))
  for k in $(seq 1 "$F_NODES"); do
    args=(--host=127.0.0.1 --port="${BROKER_PORTS[k]}" --server-pid="${BROKER_PIDS[k]}"
      --duration-limit="$F_LIMIT" --label="f-node$k" --subscribers="$F_SUBS" --publishers=0 --run-id="$runid"
      --events="$F_EVENTS" --connect-rate="$F_CONNECT_RATE" --src-addrs="$F_SRC_ADDRS" --drain-timeout=10)
    echo "$LOADGEN ${args[*]} &" >>"$RESDIR/commands.txt"
    timeout $((F_LIMIT + 30)) "$LOADGEN" "${args[@]}" >"$RESDIR/logs/f-node$k-$r.out" 2>&1 &
    pid=$!
    track "$pid" "loadgen-node$k"
    lpids[k]=$pid
  done
  # Publish only once every node's subscribers are connected (a loadgen prints "subscribers:" then).
  waited=0 ready=0
  while [ "$waited" -lt $((F_LIMIT * 10)) ]; do
    ready=0
    for k in $(seq 1 "$F_NODES"); do
      grep -q '^subscribers: ' "$RESDIR/logs/f-node$k-$r.out" 2>/dev/null && ready=$((ready + 1))
    done
    [ "$ready" = "$F_NODES" ] && break
    for k in $(seq 1 "$F_NODES"); do
      kill -0 "${lpids[k]}" 2>/dev/null || { log "  the loadgen of node $k exited early"; waited=$((F_LIMIT * 10)); }
    done
    sleep 0.1
    waited=$((waited + 1))
  done
  log "  f run $r: $(cat "$RESDIR"/logs/f-node*-"$r".out 2>/dev/null | grep -c '^subscribers: ') of $F_NODES loadgens connected: $(grep -h '^subscribers: ' "$RESDIR"/logs/f-node*-"$r".out | awk '{ s += $2 } END { print s + 0 }') subscribers"
  if [ "$ready" = "$F_NODES" ]; then
    args=(--host=127.0.0.1 --port="${BROKER_PORTS[1]}" --duration-limit=$((F_SECONDS + LIMIT)) --label=f-pub
      --subscribers=0 --publishers="$F_PUBLISHERS" --run-id="$runid" --events="$F_EVENTS" --rate="$F_RATE"
      --size="$SIZE")
    echo "$LOADGEN ${args[*]}" >>"$RESDIR/commands.txt"
    timeout $((F_SECONDS + LIMIT + 30)) "$LOADGEN" "${args[@]}" >"$RESDIR/logs/f-pub-$r.out" 2>&1 || true
    line=$(result_of "$RESDIR/logs/f-pub-$r.out")
    [ -z "$line" ] || echo "run=$r $line" >>"$RESULTS"
    log "  f run $r: $(grep -E '^published:' "$RESDIR/logs/f-pub-$r.out" | cut -c1-300)"
  else
    echo "# f run $r: only $ready of $F_NODES loadgens connected their subscribers; nothing published" >>"$RESULTS"
    stop_kind loadgen # they would wait for events until their --duration-limit
  fi
  # The listeners end when every subscriber has every event, after --drain-timeout without progress,
  # or at --duration-limit (and timeout's bound beyond it).
  for k in $(seq 1 "$F_NODES"); do
    if [[ " ${PIDS[*]} " == *" ${lpids[k]} "* ]]; then
      wait "${lpids[k]}" 2>/dev/null || true
      untrack "${lpids[k]}"
    fi
  done
  local agg=""
  for k in $(seq 1 "$F_NODES"); do
    line=$(result_of "$RESDIR/logs/f-node$k-$r.out")
    [ -n "$line" ] || continue
    # memory per subscriber: (broker after - before the subscribers connected) / subscribers, and the
    # broker's whole PSS / subscribers
    local subs pss pss0 rss rss0
    subs=$(field "$line" subs_ok) pss=$(field "$line" pss_kb) pss0=$(field "$line" pss_before_kb)
    rss=$(field "$line" rss_kb) rss0=$(field "$line" rss_before_kb)
    line="$line $(awk -v n="$subs" -v p="$pss" -v p0="$pss0" -v r="$rss" -v r0="$rss0" 'BEGIN {
      if (n > 0) printf "pss_bytes_per_sub=%.0f rss_bytes_per_sub=%.0f pss_total_bytes_per_sub=%.0f", (p - p0) * 1024 / n, (r - r0) * 1024 / n, p * 1024 / n
      else printf "pss_bytes_per_sub=- rss_bytes_per_sub=- pss_total_bytes_per_sub=-" }')"
    echo "run=$r $line" >>"$RESULTS"
    agg="$agg$line"$'\n'
    log "  f run $r node $k: $(grep -E '^(delivered|integrity):' "$RESDIR/logs/f-node$k-$r.out" | tr '\n' ' ' | cut -c1-300)"
  done
  # All nodes together: sums, and the worst latency.
  if [ -n "$agg" ]; then
    printf '%s' "$agg" | tr ' ' '\n' | awk -F= -v r="$r" -v n="$F_NODES" '
      $1 == "status" { nodes++; if ($2 != "ok") bad++ }
      $1 == "subs_ok" || $1 == "conn_failed" || $1 == "deliveries" || $1 == "deliveries_per_s" || $1 == "lost" ||
      $1 == "dup" || $1 == "disorder" || $1 == "dropped" || $1 == "pss_kb" || $1 == "rss_kb" ||
      $1 == "pss_before_kb" || $1 == "rss_before_kb" { s[$1] += $2 }
      $1 == "p50_us" || $1 == "p90_us" || $1 == "p99_us" || $1 == "max_us" { if ($2 > m[$1]) m[$1] = $2 }
      END {
        printf "run=%s AGG label=f-all nodes=%d", r, nodes
        for (k in s) printf " %s=%s", k, s[k]
        for (k in m) printf " %s=%s", k, m[k]
        if (s["subs_ok"] > 0)
          printf " pss_bytes_per_sub=%.0f rss_bytes_per_sub=%.0f pss_total_bytes_per_sub=%.0f",
            (s["pss_kb"] - s["pss_before_kb"]) * 1024 / s["subs_ok"], (s["rss_kb"] - s["rss_before_kb"]) * 1024 / s["subs_ok"],
            s["pss_kb"] * 1024 / s["subs_ok"]
        printf " status=%s\n", (nodes == n && !bad) ? "ok" : "incomplete"
      }' >>"$RESULTS"
  fi
  finish_run "f-$r"
  sleep 2
}

scenario_f() {
  log "f. $F_NODES nodes on a 3-server JetStream, $F_SUBS subscribers each ($((F_NODES * F_SUBS)) in all), $F_RATE events/s for $F_SECONDS s through node 1"
  local r
  for r in $(seq 1 "$RUNS"); do
    fanout_run "$r"
  done
}

# ------------------------------------------------------------------------------------------------
# Tables: medians over the runs.

# median LABEL FIELD -> the median of FIELD over the lines of LABEL
median() {
  { grep -E " label=$1 " "$RESULTS" 2>/dev/null || true; } |
    tr ' ' '\n' | awk -F= -v k="$2" '$1 == k && $2 != "-" { print $2 }' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                              else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

statuses() { # LABEL -> e.g. "ok×3" or "ok×2 timeout×1"
  { grep -E " label=$1 " "$RESULTS" 2>/dev/null || true; } | tr ' ' '\n' | awk -F= '$1 == "status" { print $2 }' |
    sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? " " : ""), $2, $1 } END { if (NR == 0) printf "none" }'
}

irow() { # label FIELD
  local e c1 c3
  e=$(median i-embedded "$2") c1=$(median i-c1 "$2") c3=$(median i-c3 "$2")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$e" "$c1" "$c3" "$(ratio "$c1" "$e")" "$(ratio "$c3" "$e")"
}

frow() { # label FIELD: one column per node, then all nodes
  local k cells=""
  for k in $(seq 1 "$F_NODES"); do cells="$cells | $(median "f-node$k" "$2")"; done
  printf '| %s%s | %s |\n' "$1" "$cells" "$(median f-all "$2")"
}

tables() {
  local s k head sep
  echo
  echo "Medians of $RUNS run(s); raw RESULT lines in ${RESULTS#"$ROOT"/}."
  for s in $SCENARIOS; do
    echo
    case $s in
    i)
      echo "### i. Inserts through the cluster vs the embedded store ($I_PUBLISHERS publishers, flat out for $I_SECONDS s, $SIZE B events, $I_SUBS subscriber(s) checking every acknowledged insert)"
      echo
      echo "| metric | embedded (SQLite, fsync'd) | cluster, 1 nats-server (R1) | cluster, 3 nats-servers (R3) | R1/embedded | R3/embedded |"
      echo "|---|---|---|---|---|---|"
      irow "inserts/s (acked)" acked_per_s
      irow "insert ack p50 (µs)" ack_p50_us
      irow "insert ack p99 (µs)" ack_p99_us
      irow "insert ack max (µs)" ack_max_us
      irow "errors (non-2xx)" pub_errors
      irow "lost (acked, not delivered)" lost
      irow "duplicated" dup
      irow "out of order" disorder
      irow "publish → deliver p99 (µs)" p99_us
      irow "broker CPU (s)" cpu_s
      irow "nats-server CPU (s)" nats_cpu_s
      printf '| run status | %s | %s | %s | | |\n' "$(statuses i-embedded)" "$(statuses i-c1)" "$(statuses i-c3)"
      echo
      echo "The embedded store answers after an fsync; JetStream after the event is stored on a quorum of replicas (in memory and the page cache: default sync every 2 min). Broker CPU is the broker process's; nats-server CPU is all the nats-servers' over the same run."
      ;;
    f)
      echo "### f. $F_NODES broker nodes on one 3-server JetStream cluster (R3), $F_SUBS subscribers per node ($((F_NODES * F_SUBS)) in all), $F_RATE events/s of $SIZE B for $F_SECONDS s published through node 1"
      echo
      head="| metric" sep="|---"
      for k in $(seq 1 "$F_NODES"); do head="$head | node $k" sep="$sep|---"; done
      echo "$head | all nodes |"
      echo "$sep|---|"
      frow "subscribers connected" subs_ok
      frow "connections failed" conn_failed
      frow "deliveries" deliveries
      frow "deliveries/s" deliveries_per_s
      frow "publish → deliver p50 (µs)" p50_us
      frow "publish → deliver p99 (µs)" p99_us
      frow "publish → deliver max (µs)" max_us
      frow "lost" lost
      frow "duplicated" dup
      frow "out of order" disorder
      frow "streams dropped by server" dropped
      frow "broker bytes per subscriber (PSS after − before)" pss_bytes_per_sub
      frow "broker bytes per subscriber (RSS after − before)" rss_bytes_per_sub
      frow "broker bytes per subscriber (whole PSS)" pss_total_bytes_per_sub
      frow "broker PSS at end (kB)" pss_kb
      local cells=""
      for k in $(seq 1 "$F_NODES"); do cells="$cells | $(statuses "f-node$k")"; done
      echo "| run status$cells | $(statuses f-all) |"
      echo
      echo "deliveries/s is bounded by the pace: $F_RATE events/s × $F_SUBS subscribers = $((F_RATE * F_SUBS))/s per node when every node keeps up. Memory: PSS and RSS of each broker after the run minus before its subscribers connected, per subscriber; \"whole PSS\" includes each process's fixed cost (its shared pages are split between the $F_NODES brokers). All nodes: sums, and the worst node's latencies."
      echo
      echo "Publisher (node 1): $(median f-pub acked) of $F_EVENTS events acknowledged (median), $(median f-pub pub_errors) errors, ack p50 $(median f-pub ack_p50_us) µs, p99 $(median f-pub ack_p99_us) µs, max lag behind the schedule $(median f-pub lag_ms) ms; status $(statuses f-pub)."
      ;;
    esac
  done
}

machine() {
  echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- kernel: $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- nats-server $("$NATS" --version 2>&1 | head -1 | sed 's/^nats-server: //'), default JetStream settings (acknowledged after replication; fsync every 2 min)"
  echo "- disk holding --db and the JetStream stores (/tmp): $(df -T /tmp | awk 'NR == 2 { print $2 " on " $1 }')"
  echo "- broker: \`$("$BROKER" --version 2>&1 | head -1)\`, release build of the work tree at $BUILT_FROM"
  echo "- RLIMIT_NOFILE: $(ulimit -n) (hard $(ulimit -Hn)), for every process started here"
}

# ------------------------------------------------------------------------------------------------

main() {
  local s
  for s in $SCENARIOS; do
    case $s in i | f) ;; *) log "unknown scenario $s"; exit 2 ;; esac
  done
  if [[ " $SCENARIOS " == *" f "* ]] && [ $((F_SUBS + 64)) -gt "$(ulimit -Hn)" ]; then
    log "F_SUBS=$F_SUBS does not fit under the descriptor limit ($(ulimit -Hn)) of one process"
    exit 2
  fi
  build
  mkdir -p "$RESDIR/logs"
  : >"$RESULTS"
  TMP=$(mktemp -d /tmp/bench-cluster.XXXXXX)
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "results in ${RESDIR#"$ROOT"/}"
  for s in $SCENARIOS; do
    "scenario_$s"
  done
  {
    echo "## Machine"
    echo
    machine
    tables
  } | tee "$RESDIR/tables.md"
}

main "$@"
