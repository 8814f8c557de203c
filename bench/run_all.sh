#!/usr/bin/env bash
# Runs every mitata micro-benchmark (bench/*_bench.ts) on Bun and on Deno. Prints figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"
for file in bench/*_bench.ts; do
  echo "=== bun $file"; bun "$file"
  echo "=== deno $file"; deno run -A "$file"
done
