#!/usr/bin/env bash
# Builds tallyho into one standalone executable.
#
#   ./compile.sh [--outfile PATH] [flags...]         bun build --compile  -> dist/tallyho
#   ./compile.sh --deno [--outfile PATH] [flags...]  deno compile         -> dist/tallyho-deno
#
# Other flags pass through to the compiler (for example --target bun-linux-arm64).
# `deno compile` downloads its `denort` runtime unless DENORT_BIN names one of the same Deno
# version; on a machine without internet access set DENORT_BIN or the build stops with a message.
set -euo pipefail
cd "$(dirname "$0")"
PATH="$PWD/node_modules/.bin:$PATH"

runtime=bun
outfile=""
passthrough=()
while [ $# -gt 0 ]; do
  case "$1" in
    --deno) runtime=deno ;;
    --bun) runtime=bun ;;
    --outfile) outfile="${2:?--outfile needs a path}"; shift ;;
    --outfile=*) outfile="${1#--outfile=}" ;;
    # The comment block under the shebang, up to the first line that is not a comment.
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) passthrough+=("$1") ;;
  esac
  shift
done

die() { echo "compile.sh: $*" >&2; exit 1; }

if [ "$runtime" = bun ]; then
  command -v bun >/dev/null || die "bun not found: run 'npm ci' first"
  outfile="${outfile:-dist/tallyho}"
  mkdir -p "$(dirname "$outfile")"
  # The worker entries are listed as more entry points: Bun does not yet follow `new Worker(url)`
  # into the bundle by itself (see Bun's "Standalone executables: Worker" docs).
  bun build --compile --minify-syntax --minify-whitespace \
    ${passthrough[@]+"${passthrough[@]}"} \
    mod.ts server/worker_main.ts load/load_worker.ts --outfile "$outfile"
else
  command -v deno >/dev/null || die "deno not found: run 'npm ci' first"
  outfile="${outfile:-dist/tallyho-deno}"
  mkdir -p "$(dirname "$outfile")"
  deno_version="$(deno --version | head -n1 | cut -d' ' -f2)"
  if [ -z "${DENORT_BIN:-}" ]; then
    die "deno compile needs the denort $deno_version runtime and would download it; this machine cannot. Set DENORT_BIN to the path of a denort $deno_version binary (from denort-<target>.zip of Deno's $deno_version release), or build with ./compile.sh (Bun)."
  fi
  [ -x "$DENORT_BIN" ] || die "DENORT_BIN names '$DENORT_BIN', which is not an executable file"
  DENORT_BIN="$DENORT_BIN" deno compile --allow-all --unstable-net --no-check \
    --include server/worker_main.ts --include load/load_worker.ts \
    ${passthrough[@]+"${passthrough[@]}"} \
    --output "$outfile" mod.ts
fi
echo "compile.sh: built $outfile"
