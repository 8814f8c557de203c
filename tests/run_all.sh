#!/usr/bin/env bash
# The whole suite: under Bun, under Deno, then the end-to-end tests again against the compiled
# binary (run from a temporary directory). Ends with one line "N passed, N failed", followed off
# CI by ", K skipped: <what to install or do> to run them" when a test skipped for a missing tool
# (tests/_tools.ts; the tools are listed in .ci/system_tools.sh). Under CI (env CI set) nothing
# may skip: a missing tool fails its test, and a skip that happens anyway counts as a failure.
# Usage: npm test   (or: bash tests/run_all.sh [--skip-binary])
set -uo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"
export NO_COLOR=1

passed=0
failed=0
skipped=0
summary_file="${TALLYHO_SUMMARY_FILE:-}"
log_dir="$(mktemp -d)"

# count_bun, count_deno and summarize: tests/_summary.sh.
# shellcheck source=tests/_summary.sh
source tests/_summary.sh

# A runner that dies before reporting still counts as a failure.
run_suite() {
  local name="$1" counter="$2"; shift 2
  echo "=== $name: $*"
  local before=$((passed + failed + skipped)) failed_before=$failed
  "$@" 2>&1 | tee "$log_dir/$name.log"
  local rc=${PIPESTATUS[0]}
  "$counter" "$log_dir/$name.log"
  if [ "$rc" -ne 0 ] && [ "$failed" -eq "$failed_before" ]; then
    echo "=== $name: runner exited $rc without reporting a failed test; counting it as one"
    failed=$((failed + 1))
  fi
  [ $((passed + failed + skipped)) -gt "$before" ] || {
    echo "=== $name: ran no test"
    failed=$((failed + 1))
  }
}

# Static checks, one counted result each: types, lint rules and formatting (style.md, rule 10).
for check in "check mod.ts cli/ server/ admin/ load/ tests/ bench/" "lint" "fmt --check"; do
  echo "=== deno $check"
  # shellcheck disable=SC2086
  if deno $check; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

run_suite bun count_bun bun test --timeout 120000 tests/
run_suite deno count_deno deno test -A --unstable-net tests/

if [ "${1:-}" != "--skip-binary" ]; then
  if ./compile.sh >"$log_dir/compile.log" 2>&1; then
    echo "=== compiled dist/tallyho ($(du -h dist/tallyho | cut -f1))"
    TALLYHO_BIN="$PWD/dist/tallyho" run_suite binary count_bun \
      bun test --timeout 120000 tests/numbering_test.ts tests/framing_test.ts tests/cli_test.ts tests/processes_test.ts tests/reload_test.ts tests/state_file_test.ts tests/admin_e2e_test.ts \
      tests/redis_numbers_test.ts tests/etcd_numbers_test.ts tests/dashboard_e2e_test.ts tests/dashboard_browser_test.ts tests/load_cli_test.ts \
      tests/config_change_test.ts tests/operator_config_test.ts tests/check_command_test.ts \
      tests/admin_token_cli_test.ts tests/log_format_test.ts \
      tests/reply_backlog_test.ts tests/state_file_race_test.ts tests/state_file_faults_test.ts \
      tests/lease_backwards_e2e_test.ts tests/child_env_test.ts tests/admin_fd_test.ts \
      tests/per_address_default_test.ts tests/clock_jump_e2e_test.ts \
      tests/proxy_protocol_test.ts tests/tls_listener_test.ts tests/proxy_tls_test.ts \
      tests/loop_delay_e2e_test.ts tests/process_health_e2e_test.ts tests/hold_e2e_test.ts \
      tests/upgrade_test.ts tests/upgrade_attack_test.ts \
      tests/admin_flood_test.ts tests/admin_local_attack_test.ts tests/tls_special_files_test.ts tests/greeting_bytes_test.ts
  else
    cat "$log_dir/compile.log"
    echo "=== compile.sh failed"
    failed=$((failed + 1))
  fi
fi

rm -rf "$log_dir"
summarize
[ -n "$summary_file" ] && echo "$line" >"$summary_file"
echo "$line"
[ "$failed" -eq 0 ]
