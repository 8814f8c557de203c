#!/usr/bin/env bash
# Builds tallyho into one standalone executable.
#
#   ./compile.sh [--outfile PATH] [flags...]         bun build --compile  -> dist/tallyho
#   ./compile.sh --deno [--outfile PATH] [flags...]  deno compile         -> dist/tallyho-deno
#
# Other flags pass through to the compiler (for example --target bun-linux-arm64).
# A Bun build embeds what `tallyho --version` prints: the git commit (with -dirty for uncommitted
# changes), the build date (SOURCE_DATE_EPOCH if set, else the commit's time for a clean tree, so
# two builds of one commit are the same bytes, else now) and the target.
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

# The facts `tallyho --version` prints; see the comment at the top.
build_defines() {
  local commit date epoch target="" arg previous="" arch
  for arg in ${passthrough[@]+"${passthrough[@]}"}; do
    [ "$previous" = --target ] && target="$arg"
    case "$arg" in --target=*) target="${arg#--target=}" ;; esac
    previous="$arg"
  done
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  target="${target:-bun-linux-$arch}"
  commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  if [ "$commit" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    commit="$commit-dirty"
  fi
  epoch="${SOURCE_DATE_EPOCH:-}"
  if [ -z "$epoch" ] && [ "$commit" != unknown ] && [ "${commit%-dirty}" = "$commit" ]; then
    epoch="$(git log -1 --format=%ct)"
  fi
  date="$(date -u -d "@${epoch:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)"
  printf '%s\n' --define "TALLYHO_BUILD_COMMIT=\"$commit\"" \
    --define "TALLYHO_BUILD_DATE=\"$date\"" --define "TALLYHO_BUILD_TARGET=\"${target#bun-}\""
}

if [ "$runtime" = bun ]; then
  command -v bun >/dev/null || die "bun not found: run 'npm ci' first"
  outfile="${outfile:-dist/tallyho}"
  mkdir -p "$(dirname "$outfile")"
  mapfile -t defines < <(build_defines)
  # The worker entries are listed as more entry points: Bun does not yet follow `new Worker(url)`
  # into the bundle by itself (see Bun's "Standalone executables: Worker" docs).
  # --splitting puts each dynamically imported module graph in a chunk of its own, read only when
  # it is imported: without it Bun 1.4.5 makes one file of the whole program, which every process
  # parses and keeps, so a serving child held the command line, the admin API and the load
  # generator it never runs (3.2 MB of its RSS; docs/tuning.md, "Memory").
  bun build --compile --splitting --minify-syntax --minify-whitespace "${defines[@]}" \
    ${passthrough[@]+"${passthrough[@]}"} \
    mod.ts server/threads/worker_main.ts load/load_worker.ts --outfile "$outfile"
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
    --include server/threads/worker_main.ts --include load/load_worker.ts \
    ${passthrough[@]+"${passthrough[@]}"} \
    --output "$outfile" mod.ts
fi
echo "compile.sh: built $outfile"
