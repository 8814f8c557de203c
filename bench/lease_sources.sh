#!/bin/sh
# Starts a 3-member etcd cluster and a Redis (appendonly, appendfsync always: the durable setting
# docs/numbering.md asks for) on loopback in a temporary directory, runs
# bench/lease_source_bench.ts on Bun and on Deno against them, stops them, and writes the figures
# into the section lease-sources of bench/RESULTS.md (bench/lease_sources_section.ts). Prints
# figures; never fails on timing. Run it under the shared lock:
#   flock /tmp/tallyho-bench.lock bash bench/lease_sources.sh
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
dir=$(mktemp -d)
pids=""
# wait reaps each one, so the shell does not report it "Killed" on the way out.
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
c0=$(port); c1=$(port); c2=$(port); p0=$(port); p1=$(port); p2=$(port); r=$(port)
cluster="m0=http://127.0.0.1:$p0,m1=http://127.0.0.1:$p1,m2=http://127.0.0.1:$p2"
i=0
for pair in "$c0 $p0" "$c1 $p1" "$c2 $p2"; do
  set -- $pair
  etcd --name "m$i" --data-dir "$dir/m$i" --listen-client-urls "http://127.0.0.1:$1" \
    --advertise-client-urls "http://127.0.0.1:$1" --listen-peer-urls "http://127.0.0.1:$2" \
    --initial-advertise-peer-urls "http://127.0.0.1:$2" --initial-cluster "$cluster" \
    --initial-cluster-state new --log-outputs stderr 2>"$dir/m$i.log" &
  pids="$pids $!"
  i=$((i + 1))
done
redis-server --port "$r" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly yes \
  --appendfsync always >"$dir/redis.log" 2>&1 &
pids="$pids $!"
for c in $c0 $c1 $c2; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$c/health" | grep -q '"true"' && break
    sleep 0.1
  done
done
etcd_members="etcd://127.0.0.1:$c0,127.0.0.1:$c1,127.0.0.1:$c2"
redis_db="redis://127.0.0.1:$r/0"
bun bench/lease_source_bench.ts "$etcd_members" "$redis_db" --json "$dir/bun.json"
deno run -A --unstable-net bench/lease_source_bench.ts "$etcd_members" "$redis_db" \
  --json "$dir/deno.json"
etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p')
redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
bun bench/lease_sources_section.ts "$etcd_version" "$redis_version" "$dir/bun.json" \
  "$dir/deno.json"
