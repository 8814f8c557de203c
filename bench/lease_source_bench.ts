/**
 * Number sources side by side: lease latency from an etcd cluster and from Redis, and what a
 * serving process does with each (replies per second and their p99 under pipelined load, against
 * numbers kept in memory). Prints figures with the machine and runtime; never fails. With
 * `--json FILE` it also writes them there, for bench/lease_sources_section.ts to put into
 * bench/RESULTS.md.
 *
 * Needs a running etcd cluster and Redis, named by URL and key (bench/lease_sources.sh starts
 * both on loopback, runs this on Bun and Deno, writes the section, and stops them):
 *
 *   bun bench/lease_source_bench.ts etcd://127.0.0.1:P1,... redis://127.0.0.1:P/0 [--json FILE]
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { EtcdLeaseSource } from "../server/lease/sources/etcd/etcd_lease_source.ts";
import type { LeaseSource } from "../server/lease/lease_source.ts";
import { BLOCK_SIZE } from "../server/numbering/number_ledger.ts";
import { monotonicNow } from "../server/common/clock.ts";
import { RedisLeaseSource } from "../server/lease/sources/redis/redis_lease_source.ts";
import { MAX_BLOCKS_PER_LEASE } from "../server/numbering/lease_keeper.ts";
import type { LeaseFigure, LeaseSourcesRun, ServeFigure } from "./_lease_sources_run.ts";

const [etcdBase, redisBase, jsonFlag, jsonFile] = process.argv.slice(2);
if (!etcdBase || !redisBase || (jsonFlag !== undefined && (jsonFlag !== "--json" || !jsonFile))) {
  console.error("usage: lease_source_bench.ts ETCD_MEMBERS_URL REDIS_DB_URL [--json FILE]");
  process.exit(2);
}
/** The etcd URL for `key`: the members' URL (`etcd://H:P,H:P`) and the key as its path. */
const etcdUrl = (key: string) => `${etcdBase.replace(/\/$/, "")}/${key}`;
/** The Redis URL for `key`: the database URL (`redis://H:P/0`) and `?key=`. */
const redisUrl = (key: string) => `${redisBase}?key=${encodeURIComponent(key)}`;
const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const IS_BUN = "Bun" in globalThis;

const run: LeaseSourcesRun = {
  runtime: `${RUNTIME} ${RUNTIME_VERSION}`,
  cores: availableParallelism(),
  cpu: cpus()[0]?.model ?? "unknown cpu",
  kernel: release(),
  started: new Date().toISOString(),
  loadAverage: { before: loadavg()[0]!, after: 0 },
  blockSize: BLOCK_SIZE,
  maxBlocksPerLease: MAX_BLOCKS_PER_LEASE,
  lease: [],
  serve: [],
};

console.log(
  `# number sources on ${run.runtime}, ${run.cores} cores (${run.cpu}), kernel ${run.kernel}, ` +
    `${run.started}, load average ${run.loadAverage.before.toFixed(2)}`,
);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sequential leases of `blocks` blocks from one source, and `parallel` sources at once. */
async function leaseLatency(
  name: LeaseFigure["source"],
  open: () => Promise<LeaseSource>,
  parallel: number,
  leases: number,
): Promise<void> {
  const sources = await Promise.all(Array.from({ length: parallel }, open));
  const times: number[] = [];
  const started = monotonicNow();
  await Promise.all(sources.map(async (source) => {
    for (let i = 0; i < leases; i++) {
      const t = monotonicNow();
      await source.lease(BLOCK_SIZE);
      times.push(monotonicNow() - t);
    }
  }));
  const elapsed = (monotonicNow() - started) / 1000;
  for (const source of sources) await source.close();
  times.sort((a, b) => a - b);
  const figure: LeaseFigure = {
    source: name,
    sources: parallel,
    leases,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    maxMs: times.at(-1)!,
    leasesPerSecond: times.length / elapsed,
  };
  run.lease.push(figure);
  const label = name === "etcd" ? "etcd (3 members)" : name;
  console.log(
    `${label.padEnd(44)} ${parallel} source${parallel === 1 ? " " : "s"} x ${leases} leases: ` +
      `p50 ${figure.p50Ms.toFixed(2)} ms, p99 ${figure.p99Ms.toFixed(2)} ms, ` +
      `max ${figure.maxMs.toFixed(2)} ms; ${Math.round(figure.leasesPerSecond)} leases/s`,
  );
}

function runtimeArgs(): { cmd: string; args: string[] } {
  return IS_BUN
    ? { cmd: process.execPath, args: [MOD] }
    : { cmd: process.execPath, args: ["run", "-A", "--unstable-net", MOD] };
}

/** One serving process with the source, under pipelined load for `seconds`: replies/s and p99. */
async function serveWith(
  name: ServeFigure["source"],
  numbers: string[],
  seconds: number,
): Promise<void> {
  const { cmd, args } = runtimeArgs();
  const server = spawn(cmd, [
    ...args,
    "serve",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--admin",
    "off",
    "--threads",
    "1",
    "--framing",
    "line",
    "--number-by",
    "message",
    ...numbers,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start: ${output}`)), 20_000);
    server.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on \S+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    server.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  });
  const load = spawn(cmd, [
    ...args,
    "load",
    "--port",
    String(port),
    "--workload",
    "pipelined",
    "--connections",
    "4",
    "--depth",
    "100",
    "--threads",
    "1",
    "--duration",
    `${seconds}s`,
    "--json",
  ], { stdio: ["ignore", "pipe", "inherit"] });
  let json = "";
  load.stdout!.on("data", (chunk: Buffer) => (json += chunk.toString()));
  await new Promise((resolve) => load.once("close", resolve));
  server.kill("SIGTERM");
  await new Promise((resolve) => server.once("close", resolve));
  const report = JSON.parse(json) as {
    repliesPerSecond: number;
    latencyUs: { p50: number; p99: number };
    check: { ok: boolean; repeats: number };
  };
  const leases = (output.match(/leased \d+\.\.\d+ from etcd/g) ?? []).length;
  run.serve.push({
    source: name,
    repliesPerSecond: report.repliesPerSecond,
    p50Us: report.latencyUs.p50,
    p99Us: report.latencyUs.p99,
    checkOk: report.check.ok,
    etcdLeases: leases,
  });
  console.log(
    `${name.padEnd(10)} ${Math.round(report.repliesPerSecond).toLocaleString("en")} replies/s, ` +
      `p50 ${report.latencyUs.p50} us, p99 ${report.latencyUs.p99} us, ` +
      `check ${report.check.ok ? "ok" : "FAILED"}${leases > 0 ? `, ${leases} etcd leases` : ""}`,
  );
}

const stamp = Date.now();
console.log("\n## lease latency (one block of 4096 per lease, over loopback)");
await leaseLatency("etcd", () => EtcdLeaseSource.open(etcdUrl(`lease${stamp}`)), 1, 300);
await leaseLatency("etcd", () => EtcdLeaseSource.open(etcdUrl(`lease${stamp}`)), 4, 100);
await leaseLatency("redis", () => RedisLeaseSource.open(redisUrl(`lease${stamp}`)), 1, 300);
await leaseLatency("redis", () => RedisLeaseSource.open(redisUrl(`lease${stamp}`)), 4, 100);

console.log(
  "\n## one serving process, 1 thread, pipelined load (4 connections x 100 in flight, 5 s)",
);
await serveWith("memory", [], 5);
await serveWith("redis", ["--numbers", redisUrl(`serve${stamp}`)], 5);
await serveWith("etcd", ["--numbers", etcdUrl(`serve${stamp}`)], 5);

run.loadAverage.after = loadavg()[0]!;
console.log(`load average after: ${run.loadAverage.after.toFixed(2)}`);
if (jsonFile !== undefined) writeFileSync(jsonFile, JSON.stringify(run, null, 2) + "\n");
