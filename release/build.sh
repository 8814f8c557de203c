#!/usr/bin/env bash
# Builds a release of tallyho into one directory (npm run release):
#
#   tallyho-VERSION-linux-x64.tar.gz            the binary, LICENSE, README.txt, the systemd unit
#   tallyho-VERSION-linux-x64-baseline.tar.gz   and an example configuration, for each target
#   tallyho-VERSION-linux-arm64.tar.gz          (x64-baseline: for CPUs without AVX2)
#   tallyho_VERSION_amd64.deb                   Debian packages (the amd64 one carries the
#   tallyho_VERSION_arm64.deb                   baseline binary: Debian's amd64 has no AVX2)
#   SHA256SUMS                                  over all of the above
#
#   bash release/build.sh [--out DIR]           default dist/release
#
# Bun cross-compiles every target here (its runtime for another target comes from the npm
# registry, once, into ~/.bun/install/cache). Two builds of one clean commit give the same bytes:
# every date is the commit's (SOURCE_DATE_EPOCH), owners are root, files are in name order, gzip
# stores no name or time. A tree with uncommitted changes builds as COMMIT-dirty, dated now.
# Prints each artifact's size and SHA256 and how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"

out=dist/release
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift ;;
    --out=*) out="${1#--out=}" ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "release/build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "release/build.sh: $*" >&2; exit 1; }
for tool in bun dpkg-deb tar gzip sha256sum git; do
  command -v "$tool" >/dev/null || die "$tool not found (bun: npm ci; dpkg-deb: apt-get install dpkg)"
done

version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)"
[ -n "$version" ] || die "no version in package.json"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  if [ -z "$(git status --porcelain)" ]; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
  else
    SOURCE_DATE_EPOCH="$(date +%s)"
    echo "release/build.sh: uncommitted changes: building $(git rev-parse --short=12 HEAD)-dirty, dated now (not reproducible)"
  fi
fi
export SOURCE_DATE_EPOCH
commit="$(git rev-parse --short=12 HEAD)"
maintainer="${TALLYHO_DEB_MAINTAINER:-the tallyho authors <maintainers@tallyho.invalid>}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

started=$SECONDS
step() { echo "release: $1 ($((SECONDS - started)) s)"; started=$SECONDS; }

# Reproducible archives: fixed owner, order and time; gzip without name and time.
pack() { # pack DIR NAME -> $out/NAME.tar.gz, the tree under DIR's NAME/
  tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    --format=gnu -cf - "$2" | gzip -n -6 >"$out/$2.tar.gz"
}

# 1. One binary per target. The output's file name is embedded in it, so each is built as
#    .../tallyho: the same name in every build.
declare -A bun_target=(
  [x64]=bun-linux-x64 [x64-baseline]=bun-linux-x64-baseline [arm64]=bun-linux-arm64
)
targets=(x64 x64-baseline arm64)
for target in "${targets[@]}"; do
  ./compile.sh --target "${bun_target[$target]}" --outfile "$work/bin/$target/tallyho" >/dev/null
done
step "compiled ${targets[*]}"

# 2. The archives and the Debian packages, two at a time (gzip is one core each).
unit_for_deb="$work/tallyho.service"
sed 's#/usr/local/bin/tallyho#/usr/bin/tallyho#g' docs/tallyho.service >"$unit_for_deb"
grep -q /usr/local/bin "$unit_for_deb" && die "the .deb's unit still names /usr/local/bin"

archive() { # archive TARGET
  local name="tallyho-$version-linux-$1" dir="$work/archive/$1"
  mkdir -p "$dir/$name"
  cp "$work/bin/$1/tallyho" "$dir/$name/tallyho"
  cp LICENSE docs/tallyho.service release/tallyho.json "$dir/$name/"
  sed -e "s/@VERSION@/$version/" -e "s/@TARGET@/linux-$1/" -e "s/@COMMIT@/$commit/" \
    release/README.txt >"$dir/$name/README.txt"
  chmod 0755 "$dir/$name/tallyho"
  chmod 0644 "$dir/$name"/{LICENSE,tallyho.service,tallyho.json,README.txt}
  find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  pack "$dir" "$name"
}

deb() { # deb ARCH TARGET
  local root="$work/deb/$1"
  install -D -m 0755 "$work/bin/$2/tallyho" "$root/usr/bin/tallyho"
  install -D -m 0644 "$unit_for_deb" "$root/lib/systemd/system/tallyho.service"
  install -D -m 0644 release/tallyho.json "$root/etc/tallyho/tallyho.json"
  install -D -m 0644 LICENSE "$root/usr/share/doc/tallyho/copyright"
  install -d -m 0755 "$root/DEBIAN"
  install -m 0755 release/debian/postinst release/debian/prerm release/debian/postrm "$root/DEBIAN/"
  install -m 0644 release/debian/conffiles "$root/DEBIAN/"
  local size
  size="$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)"
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$1/" -e "s/@MAINTAINER@/$maintainer/" \
    -e "s/@INSTALLED_SIZE@/$size/" release/debian/control >"$root/DEBIAN/control"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  # gzip, not dpkg-deb's default xz: 5 s a package here against about a minute (51 MB against 39).
  dpkg-deb --root-owner-group -Zgzip -z6 --build "$root" "$out/tallyho_${version}_$1.deb" >/dev/null
}

pids=()
run() { "$@" & pids+=($!); if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi; }
for target in "${targets[@]}"; do run archive "$target"; done
run deb amd64 x64-baseline
run deb arm64 arm64
for pid in "${pids[@]}"; do wait "$pid"; done
step "archived and packaged"

(cd "$out" && sha256sum -- *.tar.gz *.deb >SHA256SUMS)
step "SHA256SUMS"

echo "release: tallyho $version, commit $commit, dated $(date -u -d "@$SOURCE_DATE_EPOCH" +%FT%TZ), in $out"
(cd "$out" && while read -r sum file; do
  printf '  %-44s %11s bytes  sha256 %s\n' "$file" "$(stat -c %s "$file")" "$sum"
done <SHA256SUMS)
