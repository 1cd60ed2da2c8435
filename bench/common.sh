# bench/common.sh: what bench/compare.sh and bench/cluster.sh share (sourced by both): the machine's
# busy fraction, waiting for it to be quiet before a run, and the ratio of two medians. They use the
# caller's log() and $RESULTS, $QUIET_BUSY, $QUIET_WAIT.

# CPU busy fraction of the whole machine over the next 2 seconds, in percent (from /proc/stat).
cpu_busy() {
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  sleep 2
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  echo "$a $b" | awk '{ busy = $3 - $1; idle = $4 - $2; printf "%d\n", (busy + idle) ? 100 * busy / (busy + idle) : 0 }'
}

# Other work on the two cores skews everything: before each run, wait up to QUIET_WAIT seconds for
# the machine to be quiet (under QUIET_BUSY percent busy over 2 s), then go on with a warning that
# is kept with the results.
quiet_machine() {
  local busy waited=0
  while :; do
    busy=$(cpu_busy)
    [ "$busy" -lt "$QUIET_BUSY" ] && return 0
    [ "$waited" -ge "$QUIET_WAIT" ] && break
    [ "$waited" = 0 ] && log "  the machine is ${busy}% busy: waiting up to $QUIET_WAIT s for it to be quiet"
    sleep 3
    waited=$((waited + 5))
  done
  log "  WARNING: the machine is ${busy}% busy; running anyway"
  echo "# warning: machine ${busy}% busy before a run at $(date +%T)" >>"$RESULTS"
}

# a / b with two decimals; "-" when either is missing or b is 0.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
