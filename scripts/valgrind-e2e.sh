#!/usr/bin/env bash
# Runs the e2e suite (tests/e2e) with every broker process under valgrind memcheck, one test file at a
# time, one valgrind log per broker process, then scans the logs (scripts/valgrind-scan.sh).
#
#   scripts/valgrind-e2e.sh [BIN]        BIN defaults to build-valgrind/broker (make valgrind builds it)
#
# Environment:
#   VG_SLOWDOWN   BROKER_E2E_SLOWDOWN for the tests (default 15); node's per-test timeout is 120 s times it
#   VG_LOG_DIR    where the logs go (default build-valgrind/vg-logs; emptied first), one directory per file
#   VG_FILES      run only these test files (space-separated, e.g. "sse.test.js ops.test.js")
#   VG_SKIP       test files to leave out (space-separated); default: none
#   VG_OPTS       extra valgrind options (e.g. --suppressions=...)
# Exit status: 0 only if every file passed and no log has an error or a definite/indirect leak.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/build-valgrind/broker}")"
E2E="$ROOT/tests/e2e"
SLOW="${VG_SLOWDOWN:-15}"
LOGS="${VG_LOG_DIR:-$ROOT/build-valgrind/vg-logs}"
SKIP=" ${VG_SKIP:-} "

[ -x "$BIN" ] || { echo "valgrind-e2e: no binary at $BIN" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind-e2e: valgrind is not installed (scripts/deps.sh valgrind)" >&2; exit 2; }
[ -d "$E2E/node_modules" ] || { echo "valgrind-e2e: run npm ci in $E2E first" >&2; exit 2; }

if [ -n "${VG_FILES:-}" ]; then
  read -r -a FILES <<<"$VG_FILES"
else
  FILES=()
  for f in "$E2E"/*.test.js; do FILES+=("$(basename "$f")"); done
fi

rm -rf "$LOGS"
mkdir -p "$LOGS"
SUMMARY="$LOGS/summary.txt"
: >"$SUMMARY"

# Leaks count as errors only when definite or indirect ("possibly lost" and "still reachable" are
# printed but tolerated). Output goes to a file so the broker's own stderr stays what the tests expect.
VG_BASE="valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect
  --show-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no --num-callers=30 ${VG_OPTS:-}"

failed=0
start_all=$(date +%s)
for f in "${FILES[@]}"; do
  if [[ "$SKIP" == *" $f "* ]]; then
    printf '%-24s SKIP\n' "$f" | tee -a "$SUMMARY"
    continue
  fi
  dir="$LOGS/${f%.test.js}"
  mkdir -p "$dir"
  t0=$(date +%s)
  (cd "$E2E" && BROKER_BIN="$BIN" BROKER_E2E_SLOWDOWN="$SLOW" \
    BROKER_WRAPPER="$VG_BASE --log-file=$dir/vg.%p.log" \
    node --test --test-concurrency=1 --test-timeout=$((120000 * SLOW)) "$f") >"$dir/node.out" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  nlogs=$(find "$dir" -name 'vg.*.log' | wc -l)
  counts=$(grep -E '^# (pass|fail|cancelled|skipped) ' "$dir/node.out" | awk '{printf "%s=%s ", $2, $3}')
  if [ "$rc" -eq 0 ]; then res=PASS; else res=FAIL; failed=1; fi
  printf '%-24s %s  %5ds  %3d brokers  %s\n' "$f" "$res" "$secs" "$nlogs" "$counts" | tee -a "$SUMMARY"
  if [ "$rc" -ne 0 ]; then
    grep -E '^not ok|^# (Subtest|fail)|Error|error' "$dir/node.out" | head -40 | sed 's/^/    /'
  fi
done
echo "e2e under valgrind: $(( $(date +%s) - start_all ))s, logs in $LOGS" | tee -a "$SUMMARY"

bash "$ROOT/scripts/valgrind-scan.sh" "$LOGS" || failed=1
exit "$failed"
