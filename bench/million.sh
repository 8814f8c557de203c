#!/bin/sh
# Holds a million connections at once on the compiled Bun binary (and as many as memory allows
# on Deno) and writes the section "million" of bench/RESULTS.md; see bench/million.ts.
#
#   bench/million.sh [bench/million.ts flags, e.g. --connections 100000 --target binary]
#
# Runs under the shared benchmark lock (/tmp/tallyho-bench.lock) and announces itself to other
# benchmarks and builds with /tmp/tallyho-heavy-run while it runs. Refuses to start (exit 2) where
# memory or limits are too small; leaves nothing running.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"; rm -f /tmp/tallyho-heavy-run' EXIT INT TERM
./compile.sh --outfile "$out/tallyho" >/dev/null
# Refuse before queueing for the lock where this host cannot hold what is asked.
bun bench/million.ts --binary "$out/tallyho" --preflight "$@"
# The marker goes up once the lock is ours, so it never stands while the run only waits.
flock /tmp/tallyho-bench.lock sh -c 'touch /tmp/tallyho-heavy-run; bun bench/million.ts "$@"' \
  million --binary "$out/tallyho" "$@"
