#!/usr/bin/env bash
# The whole suite, each file in the passes tests/passes.txt names for it: the static checks; the
# `bun` pass (bun test, against tallyho on Bun); the `deno` pass (deno test, against tallyho on
# Deno); and the `binary` pass, a packaging smoke set against dist/tallyho (built here with
# ./compile.sh and run from a temporary directory). The target each runner drives is set with
# TALLYHO_TARGET (tests/_target.ts). Every file runs in its own runner process; files marked solo
# run alone, the others TALLYHO_TEST_JOBS (default 3) at a time.
#
# Prints the ten slowest files with their seconds, then, last, one line "N passed, N failed",
# followed off CI by ", K skipped: <what to install or do> to run them" when a test skipped for a
# missing tool (tests/_tools.ts; the tools are listed in .ci/system_tools.sh). Under CI (env CI
# set) nothing may skip: a missing tool fails its test, and a skip that happens anyway counts as a
# failure.
# The `release` pass: `npm run release` (release/build.sh) once, then tests/release_*_test.ts
# against it (the package installed on a clean Debian under systemd, the arm64 binary under qemu).
# Usage: npm test   (or: bash tests/run_all.sh [--skip-binary] [--skip-release] [tests/FILE_test.ts...])
set -uo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"
export NO_COLOR=1

passed=0
failed=0
skipped=0
summary_file="${TALLYHO_SUMMARY_FILE:-}"
log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
skip_binary=false
skip_release=false
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-binary) skip_binary=true ;;
    --skip-release) skip_release=true ;;
    *) break ;;
  esac
  shift
done
# Three at a time on this project's 2-core machine: the files that share the phase mostly wait
# (for servers, etcd, timeouts); the CPU stayed 25-90% idle with two.
at_once="${TALLYHO_TEST_JOBS:-3}"
[[ "$at_once" =~ ^[1-9][0-9]*$ ]] || { echo "TALLYHO_TEST_JOBS must be a whole number from 1: got '$at_once'"; exit 2; }
# A safety net only: a file still running after this long is killed and counted as a failure.
file_limit_s=900
started=$(date +%s)

# count_bun, count_deno, summarize, slowest_files: tests/_summary.sh; plan_passes: tests/_passes.sh.
# shellcheck source=tests/_summary.sh
source tests/_summary.sh
# shellcheck source=tests/_passes.sh
source tests/_passes.sh

# Static checks, one counted result each: types, lint rules and formatting (style.md, rule 10).
# The deno pass then runs with --no-check: the types were checked here, once.
for check in "check mod.ts cli/ server/ admin/ load/ tests/ bench/" "lint" "fmt --check"; do
  echo "=== deno $check"
  # shellcheck disable=SC2086
  if deno $check; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

binary="$PWD/dist/tallyho"
if ! $skip_binary; then
  if ./compile.sh >"$log_dir/compile.log" 2>&1; then
    echo "=== compiled dist/tallyho ($(du -h dist/tallyho | cut -f1))"
  else
    cat "$log_dir/compile.log"
    echo "=== compile.sh failed: no binary pass"
    failed=$((failed + 1))
    skip_binary=true
  fi
fi

# Runs the runner for one file in one pass, in place of the (background) shell that calls it, so
# that a signal sent to that pid reaches timeout, which passes it on to its process group.
runner() {
  local pass="$1" file="$2" pattern="${3:-}"
  case "$pass" in
    bun) TALLYHO_TARGET=bun exec timeout -k 10 "$file_limit_s" \
      bun test --timeout 120000 "$file" ;;
    deno) TALLYHO_TARGET=deno exec timeout -k 10 "$file_limit_s" \
      deno test -A --unstable-net --no-check "$file" ;;
    binary) TALLYHO_TARGET=binary TALLYHO_BIN="$binary" exec timeout -k 10 "$file_limit_s" \
      bun test --timeout 120000 ${pattern:+-t "$pattern"} "$file" ;;
    release) TALLYHO_RELEASE_DIR="$release_dir" exec timeout -k 10 "$file_limit_s" \
      bun test --timeout 300000 "$file" ;;
  esac
}

# Runs one file in one pass; its output goes to a log printed whole when it ends, so that files
# running side by side do not interleave. Writes the exit status and the seconds beside the log.
# A TERM or INT (the run stopped) is passed on to the runner (timeout passes it on to its group).
run_file() {
  local pass="$1" file="$2" pattern="${3:-}"
  local log start end status pid
  log="$log_dir/$pass.$(basename "$file" .ts)"
  start=$(date +%s%N)
  runner "$pass" "$file" "$pattern" >"$log.log" 2>&1 </dev/null &
  pid=$!
  trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 143' TERM INT
  wait "$pid"
  status=$?
  end=$(date +%s%N)
  echo "$status" >"$log.status"
  awk -v ns=$((end - start)) 'BEGIN { printf "%.1f\n", ns / 1e9 }' >"$log.seconds"
  {
    flock 9
    echo "=== $pass $file${pattern:+ -t '$pattern'} ($(cat "$log.seconds") s)"
    cat "$log.log"
    [ "$status" -eq 124 ] && echo "=== $pass $file: killed after ${file_limit_s} s"
  } 9>"$log_dir/print.lock"
}

# Runs the jobs on stdin ("PASS FILE [PATTERN]"), at most $1 at a time.
run_jobs() {
  local most="$1" running=0 pass file pattern
  while read -r pass file pattern; do
    if [ "$running" -ge "$most" ]; then
      wait -n
      running=$((running - 1))
    fi
    run_file "$pass" "$file" "$pattern" &
    running=$((running + 1))
  done
  wait
}

# Adds one file's counts; a runner that dies before reporting, or reports no test, is a failure.
count_file() {
  local pass="$1" file="$2" log before failed_before status
  log="$log_dir/$pass.$(basename "$file" .ts)"
  before=$((passed + failed + skipped))
  failed_before=$failed
  if [ "$pass" = deno ]; then count_deno "$log.log"; else count_bun "$log.log"; fi
  status=$(cat "$log.status" 2>/dev/null || echo 1)
  if [ "$status" -ne 0 ] && [ "$failed" -eq "$failed_before" ]; then
    echo "=== $pass $file: the runner exited $status without reporting a failed test; counting it as one"
    failed=$((failed + 1))
  fi
  if [ $((passed + failed + skipped)) -eq "$before" ]; then
    echo "=== $pass $file: ran no test"
    failed=$((failed + 1))
  fi
}

plan="$log_dir/plan"
plan_passes tests/passes.txt "$skip_binary" "$@" >"$plan" || { echo "=== the plan has a problem: see above"; failed=$((failed + 1)); }
# The release pass needs the release built, once; without it its files do not run.
release_dir="$log_dir/release"
if grep -q '^release ' "$plan"; then
  if $skip_release; then
    sed -i '/^release /d' "$plan"
  elif [ -z "${CI:-}" ] && ! command -v dpkg-deb >/dev/null; then
    # Off CI without dpkg (not Debian): the release tests skip, as a missing tool's do.
    echo "=== release: skipped: dpkg-deb is not installed (apt-get install dpkg)"
    skipped=$((skipped + $(grep -c '^release ' "$plan")))
    sed -i '/^release /d' "$plan"
  else
    echo "=== release: bash release/build.sh --out $release_dir"
    release_start=$(date +%s)
    if bash release/build.sh --out "$release_dir" >"$log_dir/release.log" 2>&1; then
      echo "=== release built in $(($(date +%s) - release_start)) s: $(cd "$release_dir" && ls | tr '\n' ' ')"
    else
      cat "$log_dir/release.log"
      echo "=== release/build.sh failed: no release pass"
      failed=$((failed + 1))
      sed -i '/^release /d' "$plan"
    fi
  fi
fi
echo "=== $(grep -c . "$plan") runs of $(ls tests/*_test.ts | wc -l) test files: $(awk '{ n[$1]++ } END { for (p in n) printf "%s %d, ", p, n[p] }' "$plan" | sed 's/, $//'); $at_once at a time, then the solo files one by one"
# Stopped (Ctrl-C, or CI's timeout): stop the files running, not only this script.
trap 'kill -TERM $(jobs -p) 2>/dev/null; wait; exit 130' INT TERM
run_jobs "$at_once" < <(grep ' shared ' "$plan" | cut -d' ' -f1,3-)
run_jobs 1 < <(grep ' solo ' "$plan" | cut -d' ' -f1,3-)
while read -r pass _ file _; do count_file "$pass" "$file"; done <"$plan"

echo "=== the ten slowest files (seconds, pass, file); the tests took $(($(date +%s) - started)) s in all:"
slowest_files "$log_dir" 10
summarize
[ -n "$summary_file" ] && echo "$line" >"$summary_file"
echo "$line"
[ "$failed" -eq 0 ]
