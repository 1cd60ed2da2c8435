#!/usr/bin/env bash
# Scans memcheck logs (vg.<pid>.log, found recursively under DIR) written by scripts/valgrind-e2e.sh.
#
#   scripts/valgrind-scan.sh DIR
#
# A log is bad if its ERROR SUMMARY counts errors, if it reports definitely or indirectly lost bytes,
# if it contains a memcheck error record (this catches processes killed with -9 by the crash tests,
# which never print a summary), or if valgrind itself failed. Bad logs are printed (without the
# preamble). Exit 1 if any log is bad, 2 if there are no logs at all.
set -uo pipefail

DIR="${1:?usage: valgrind-scan.sh DIR}"

# The first line of every memcheck error record (after the ==PID== prefix).
ERR_RE='^==[0-9]+== (Invalid (read|write|free|alignment)|Mismatched free|Conditional jump or move depends|Use of uninitialised value|Syscall param|Source and destination overlap|Argument .* has a fishy|Jump to the invalid address|Process terminating with default action|Stack overflow)'
FATAL_RE="the 'impossible' happened|INTERNAL ERROR|Valgrind's memory management: out of memory|valgrind: Fatal error"

mapfile -t LOGS < <(find "$DIR" -name 'vg.*.log' | sort)
if [ ${#LOGS[@]} -eq 0 ]; then
  echo "valgrind-scan: no vg.*.log under $DIR" >&2
  exit 2
fi

# Sum of the byte counts on lines like "==1== definitely lost: 1,234 bytes in 5 blocks".
lost() { grep -oE "$1: [0-9,]+ bytes" "$2" | tr -d ',' | awk '{s += $3} END {print s + 0}'; }

complete=0 killed=0 bad=0
for log in "${LOGS[@]}"; do
  records=$(grep -cE "$ERR_RE" "$log")
  fatal=$(grep -cE "$FATAL_RE" "$log")
  def=$(lost 'definitely lost' "$log")
  ind=$(lost 'indirectly lost' "$log")
  if grep -q 'ERROR SUMMARY:' "$log"; then
    complete=$((complete + 1))
    errors=$(grep -oE 'ERROR SUMMARY: [0-9,]+' "$log" | tail -1 | tr -dc '0-9')
    state="exited"
  else
    killed=$((killed + 1))
    errors=$records
    state="killed before the summary (no leak check)"
  fi
  if [ "$errors" -gt 0 ] || [ "$records" -gt 0 ] || [ "$fatal" -gt 0 ] || [ "$def" -gt 0 ] || [ "$ind" -gt 0 ]; then
    bad=$((bad + 1))
    echo "=== BAD: $log ($state): errors=$errors definitely_lost=${def}B indirectly_lost=${ind}B"
    grep -m1 -E '^==[0-9]+== Command:' "$log"
    # Everything after the preamble ("Parent PID:" line), capped.
    awk 'seen {print} /Parent PID:/ {seen = 1}' "$log" | head -n 300
    echo
  fi
done

echo "valgrind-scan: ${#LOGS[@]} logs ($complete exited with a summary, $killed killed), $bad bad"
[ "$bad" -eq 0 ]
