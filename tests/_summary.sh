# The counting half of tests/run_all.sh, sourced by it (and by tests/run_all_summary_test.ts):
# it adds each runner's counts to $passed, $failed and $skipped and makes the closing line.

# bun prints " N pass" / " N skip" / " N fail"; deno prints "ok | N passed | N failed" (or
# FAILED | ...), with "| N ignored" for skipped tests.
count_bun() {
  local log="$1" p f k
  p=$(grep -Eo '^ *[0-9]+ pass$' "$log" | grep -Eo '[0-9]+' | tail -n1)
  f=$(grep -Eo '^ *[0-9]+ fail$' "$log" | grep -Eo '[0-9]+' | tail -n1)
  k=$(grep -Eo '^ *[0-9]+ skip$' "$log" | grep -Eo '[0-9]+' | tail -n1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${k:-0}))
}
count_deno() {
  local log="$1" line p f k
  line=$(grep -E '(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n1)
  p=$(echo "$line" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+')
  f=$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
  k=$(echo "$line" | grep -Eo '[0-9]+ ignored' | grep -Eo '[0-9]+')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${k:-0}))
}
# Sets $line to the closing line: "N passed, N failed", then ", K skipped: <what to install> to
# run them" when tests skipped. Under CI nothing may skip, so a skip counts as one more failure
# there. (Not run in $(...): the failure it adds must reach the caller's exit status.)
summarize() {
  if [ -n "${CI:-}" ] && [ "$skipped" -gt 0 ]; then
    echo "=== CI is set, so nothing may skip, but $skipped tests skipped; counting one failure" >&2
    failed=$((failed + 1))
  fi
  local hint
  line="$passed passed, $failed failed"
  if [ "$skipped" -gt 0 ]; then
    hint=$(bash "$(dirname "${BASH_SOURCE[0]}")/../.ci/system_tools.sh" hint)
    line="$line, $skipped skipped${hint:+: $hint to run them}"
  fi
}
# slowest_files LOG_DIR N: the N files that took longest, from run_all.sh's PASS.FILE.seconds
# files, one a line: seconds, pass, file.
slowest_files() {
  local dir="$1" count="$2" path name
  for path in "$dir"/*.seconds; do
    [ -e "$path" ] || continue
    name=$(basename "$path" .seconds)
    printf '%8.1f  %-6s  tests/%s.ts\n' "$(cat "$path")" "${name%%.*}" "${name#*.}"
  done | sort -rn | head -n "$count"
}
