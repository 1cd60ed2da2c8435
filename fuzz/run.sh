#!/usr/bin/env bash
# Builds the libFuzzer targets (if needed) and runs each for the given time, two at a time:
#     fuzz/run.sh [seconds per target, default 60] [target...]
# Every run gets a fresh directory under fuzz/work/ (gitignored): the committed seeds in
# fuzz/corpus/<target>/ are copied in, so a run never modifies them; what a run finds stays there.
# Exits non-zero if any target found a crash (or a leak, timeout, out-of-memory), printing the
# reproducer; replay one with: build-fuzz/fuzz_<target> <reproducer>.
# Environment: FUZZ_BUILD (build directory, default build-fuzz), FUZZ_JOBS (targets at once,
# default 2), FUZZ_SEED (a fixed -seed, for the repeatable smoke run in make test).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# "fuzz/run.sh replay": only run every target over its fuzz/regressions/ reproducers.
REPLAY=0
if [ "${1:-}" = replay ]; then REPLAY=1; shift; set -- 0 "$@"; fi
SECONDS_EACH=${1:-60}
shift || true
ALL_TARGETS=(request json_raw jwt ticket config frame validate rules h2)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}

case "$SECONDS_EACH" in ''|*[!0-9]*) echo "usage: fuzz/run.sh [seconds] [target...]" >&2; exit 2 ;; esac
for t in "${TARGETS[@]}"; do
  [ -f "fuzz/fuzz_$t.c" ] || { echo "fuzz/run.sh: no target '$t' (have: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

bash scripts/deps.sh fuzz
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang-14 meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized >/dev/null
fi
ninja -C "$BUILD" $(printf 'fuzz_%s ' "${TARGETS[@]}") >/dev/null

if [ "$REPLAY" -eq 1 ]; then
  status=0
  for t in "${TARGETS[@]}"; do
    files=(fuzz/regressions/"$t"/*)
    [ -e "${files[0]}" ] || continue
    if "$BUILD/fuzz_$t" "${files[@]}" >"$BUILD/replay-$t.log" 2>&1; then
      echo "fuzz: $t: ${#files[@]} reproducers replayed, no finding"
    else
      echo "fuzz: $t: a reproducer fails again (log: $BUILD/replay-$t.log)"
      tail -20 "$BUILD/replay-$t.log"
      status=1
    fi
  done
  exit $status
fi

dict_for() {
  case "$1" in
    request|ticket) echo "-dict=fuzz/request.dict" ;;
    json_raw|jwt) echo "-dict=fuzz/json.dict" ;;
    config) echo "-dict=fuzz/config.dict" ;;
    rules) echo "-dict=fuzz/rules.dict" ;;
    h2) echo "-dict=fuzz/h2.dict" ;;
  esac
}

RUN="fuzz/work/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$RUN/tmp"
echo "fuzz: ${#TARGETS[@]} targets x ${SECONDS_EACH}s, $JOBS at a time, in $RUN"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TMPDIR="$ROOT/$RUN/tmp" # fuzz_request's database lands here, even after a crash

stop_all() {
  for f in "$RUN"/*/pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  echo "fuzz: interrupted" >&2
  exit 130
}
trap stop_all INT TERM

# "0m1.5s 0m0.2s" (user and system time of waited-for children, from `times`) -> seconds.
cpu_seconds() {
  awk '{ t = 0; for (i = 1; i <= NF; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
         print t }'
}

run_one() {
  local t=$1 dir="$RUN/$1"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -r "fuzz/corpus/$t/." "$dir/corpus/"
  local cmd=("$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10
             -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
  [ -n "${FUZZ_SEED:-}" ] && cmd+=(-seed="$FUZZ_SEED")
  local dict
  dict=$(dict_for "$t")
  [ -n "$dict" ] && cmd+=("$dict")
  cmd+=("$dir/corpus")
  echo "${cmd[*]}" >"$dir/command"
  local start=$SECONDS rc=0
  local env=()
  if [ "$t" = request ] || [ "$t" = h2 ]; then
    # Crashes on server threads must be reported before the next input starts: no symbolizing
    # in the run (replaying the reproducer symbolizes); keep the last inputs as well.
    mkdir -p "$dir/last-inputs"
    env=(ASAN_OPTIONS="$ASAN_OPTIONS:symbolize=0" UBSAN_OPTIONS="$UBSAN_OPTIONS:symbolize=0"
         "FUZZ_${t^^}_LAST=$dir/last-inputs")
  fi
  local before after
  times >"$dir/times" # a builtin in this shell: its children's CPU so far (the cp above)
  before=$(tail -1 "$dir/times" | cpu_seconds)
  env "${env[@]}" "${cmd[@]}" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  wait $! || rc=$?
  rm -f "$dir/pid"
  times >"$dir/times"
  after=$(tail -1 "$dir/times" | cpu_seconds)
  rm -f "$dir/times"
  awk -v a="$after" -v b="$before" 'BEGIN { printf "%.0f\n", a - b }' >"$dir/cpu"
  echo "$rc" >"$dir/rc"
  echo "fuzz: $t finished (exit $rc, $((SECONDS - start))s)"
}

for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_one "$t" &
done
wait || true

failed=0
printf '\n%-9s %6s %10s %8s %6s %6s %7s  %s\n' target cpu_s execs exec/s cov ft corpus result
for t in "${TARGETS[@]}"; do
  dir="$RUN/$t" log="$RUN/$t/log"
  execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  speed=$(grep -a 'stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
  last=$(grep -a -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus=$(find "$dir/corpus" -type f | wc -l)
  found=$(find "$dir/artifacts" -type f | sort)
  rc=$(cat "$dir/rc" 2>/dev/null || echo '?')
  result=ok
  if [ -n "$found" ]; then
    result="FOUND: $(echo $found)"
    failed=1
  elif [ "$rc" != 0 ]; then
    result="exit $rc without a reproducer: see $log"
    failed=1
  fi
  cpu=$(cat "$dir/cpu" 2>/dev/null || echo '?')
  printf '%-9s %6s %10s %8s %6s %6s %7s  %s\n' "$t" "$cpu" "${execs:-?}" "${speed:-?}" "${cov:-?}" \
    "${ft:-?}" "$corpus" "$result"
done
if [ "$failed" -ne 0 ]; then
  echo
  for t in "${TARGETS[@]}"; do
    for f in $(find "$RUN/$t/artifacts" -type f | sort); do
      case "$t" in request|h2)
        echo "  (a server-thread crash may belong to an earlier input: see $RUN/$t/last-inputs, ls -tr)" ;;
      esac
      echo "reproducer: $f"
      echo "  replay:   $BUILD/fuzz_$t $f"
      echo "  minimise: $BUILD/fuzz_$t -minimize_crash=1 -max_total_time=60 $f"
    done
  done
  echo "fuzz: FAILED (logs in $RUN/<target>/log)"
  exit 1
fi
echo "fuzz: no findings (corpora and logs in $RUN)"
