/**
 * Writes the section `lease-sources` of bench/RESULTS.md from the figures bench/lease_source_bench.ts
 * wrote with `--json` on each runtime: what they say (every statement computed from them), then
 * the figures themselves. bench/lease_sources.sh runs it after measuring.
 *
 *   bun bench/lease_sources_section.ts ETCD_VERSION REDIS_VERSION bun.json deno.json
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { LeaseFigure, LeaseSourcesRun, ServeFigure } from "./_lease_sources_run.ts";
import { writeSection } from "./results_section.ts";

/** Differences smaller than this share are noise on a shared 2-core machine without pinning. */
const NOISE = 0.2;

const ms = (value: number) => value.toFixed(2);
const count = (value: number) => Math.round(value).toLocaleString("en");

/** `a` when every value rounds alike, else `a-b`. */
function span(values: number[], format: (value: number) => string): string {
  const low = format(Math.min(...values));
  const high = format(Math.max(...values));
  return low === high ? low : `${low}-${high}`;
}

function leaseFigures(runs: LeaseSourcesRun[], source: string, sources: number): LeaseFigure[] {
  return runs.flatMap((run) =>
    run.lease.filter((f) => f.source === source && f.sources === sources)
  );
}

function serveFigure(run: LeaseSourcesRun, source: string): ServeFigure | undefined {
  return run.serve.find((f) => f.source === source);
}

/** The statements, each computed from the figures. */
function summary(runs: LeaseSourcesRun[]): string[] {
  const etcd1 = leaseFigures(runs, "etcd", 1);
  const redis1 = leaseFigures(runs, "redis", 1);
  const etcd4 = leaseFigures(runs, "etcd", 4);
  const redis4 = leaseFigures(runs, "redis", 4);
  const lines = [
    `- **Lease latency, one source** (one supervisor, leases one at a time): etcd p50 ` +
    `${span(etcd1.map((f) => f.p50Ms), ms)} ms against Redis ${
      span(redis1.map((f) => f.p50Ms), ms)
    } ms; ${span(etcd1.map((f) => f.leasesPerSecond), count)} etcd leases/s against ${
      span(redis1.map((f) => f.leasesPerSecond), count)
    } from Redis.`,
    `- **Four sources leasing back to back on one key**: etcd p99 ${
      span(etcd4.map((f) => f.p99Ms), ms)
    } ms and the slowest lease ${span(etcd4.map((f) => f.maxMs), ms)} ms (compare-and-swap ` +
    `conflicts, retried); Redis p99 ${span(redis4.map((f) => f.p99Ms), ms)} ms, slowest ${
      span(redis4.map((f) => f.maxMs), ms)
    } ms.`,
  ];
  const perLease = runs[0]!.maxBlocksPerLease * runs[0]!.blockSize;
  const slowest = Math.min(...etcd1.map((f) => f.leasesPerSecond));
  const mostServed = Math.max(...runs.flatMap((run) => run.serve.map((f) => f.repliesPerSecond)));
  lines.push(
    `- **Numbers per second the source could supply one process**: a lease carries at most ` +
      `${runs[0]!.maxBlocksPerLease} blocks of ${runs[0]!.blockSize} (${
        count(perLease)
      } numbers); ` +
      `at the slowest one-source etcd rate measured (${count(slowest)} leases/s) that is ` +
      `${count(slowest * perLease)} numbers/s, ${
        Math.floor(slowest * perLease / mostServed)
      } times the most replies/s one process served here (${count(mostServed)}).`,
  );
  const replies = runs.map((run) => {
    const [memory, redis, etcd] = ["memory", "redis", "etcd"].map((s) => serveFigure(run, s));
    if (!memory || !redis || !etcd) return `${run.runtime}: a serving run is missing`;
    const ratio = (f: ServeFigure) => `${(f.p99Us / memory.p99Us).toFixed(2)}x`;
    return `${run.runtime}: ${count(memory.repliesPerSecond)} replies/s with memory, ` +
      `${count(redis.repliesPerSecond)} with Redis, ${count(etcd.repliesPerSecond)} with etcd; ` +
      `p99 ${memory.p99Us} us, ${redis.p99Us} us (${ratio(redis)} memory's), ${etcd.p99Us} us ` +
      `(${ratio(etcd)})`;
  });
  lines.push(
    `- **Replies with each source** (one process, one thread, pipelined): ${replies.join("; ")}.`,
  );
  const over = runs.flatMap((run) => {
    const memory = serveFigure(run, "memory");
    return run.serve.filter((f) =>
      f.source !== "memory" && memory !== undefined && f.p99Us > memory.p99Us * (1 + NOISE)
    ).map((f) => `${f.source} on ${run.runtime.split(" ")[0]}`);
  });
  lines.push(
    over.length === 0
      ? `- With about a second of numbers leased ahead, no source's replies' p99 is more than ` +
        `${NOISE * 100} % above memory's on either runtime: the source's latency does not show ` +
        `in the replies' here.`
      : `- The replies' p99 is more than ${NOISE * 100} % above memory's for ${
        over.join(", ")
      } in this run.`,
  );
  const busy = runs.filter((run) =>
    Math.max(run.loadAverage.before, run.loadAverage.after) > run.cores
  )
    .map((run) => run.runtime);
  if (busy.length > 0) {
    lines.push(
      `- The load average was above the ${runs[0]!.cores} cores during the run on ` +
        `${busy.join(" and ")}: other work shared the CPUs, and the tails above may be its.`,
    );
  }
  const failed = runs.flatMap((run) =>
    run.serve.filter((f) => !f.checkOk).map((f) => `${f.source} on ${run.runtime}`)
  );
  lines.push(
    failed.length === 0
      ? `- The load generator's number check passed in every serving run (no number twice).`
      : `- The load generator's number check FAILED for ${failed.join(", ")}.`,
  );
  return lines;
}

function tables(runs: LeaseSourcesRun[]): string[] {
  const lines = [
    "| runtime | source | sources x leases | p50 ms | p99 ms | max ms | leases/s |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const run of runs) {
    for (const f of run.lease) {
      lines.push(
        `| ${run.runtime} | ${f.source === "etcd" ? "etcd (3 members)" : f.source} | ` +
          `${f.sources} x ${f.leases} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${ms(f.maxMs)} | ` +
          `${count(f.leasesPerSecond)} |`,
      );
    }
  }
  lines.push(
    "",
    "| runtime | numbers from | replies/s | p50 us | p99 us | check | etcd leases |",
    "| --- | --- | ---: | ---: | ---: | --- | ---: |",
  );
  for (const run of runs) {
    for (const f of run.serve) {
      lines.push(
        `| ${run.runtime} | ${f.source} | ${count(f.repliesPerSecond)} | ${f.p50Us} | ` +
          `${f.p99Us} | ${f.checkOk ? "ok" : "FAILED"} | ${f.etcdLeases} |`,
      );
    }
  }
  return lines;
}

/**
 * The section's markdown.
 *
 * @param runs One run per runtime.
 * @param versions The etcd and Redis versions measured against.
 * @returns The text of section `lease-sources`.
 */
export function leaseSourcesMarkdown(
  runs: LeaseSourcesRun[],
  versions: { etcd: string; redis: string },
): string {
  const first = runs[0]!;
  const loads = runs.map((run) =>
    `${run.runtime} ${run.loadAverage.before.toFixed(2)} before, ` +
    `${run.loadAverage.after.toFixed(2)} after`
  ).join("; ");
  return [
    "## Number sources side by side: etcd and Redis",
    "",
    "Written by `bench/lease_sources.sh` (`bench/lease_source_bench.ts` on each runtime, then " +
    "`bench/lease_sources_section.ts`); every statement below is computed from the figures under " +
    "it. Rerun the script to refresh it: " +
    "`flock /tmp/tallyho-bench.lock bash bench/lease_sources.sh`.",
    "",
    `Measured ${first.started.slice(0, 10)} on ${first.cores} cores (${first.cpu}), kernel ` +
    `${first.kernel}, loopback, no pinning, a shared machine: treat differences under ` +
    `${NOISE * 100} % as noise. Load average (1 min): ${loads}. etcd ${versions.etcd}, 3 members ` +
    `with default heartbeat and election settings, each with its own data directory on the same ` +
    `disk; Redis ${versions.redis} with \`appendonly yes\`, \`appendfsync always\` (the durable ` +
    `setting docs/numbering.md asks for). Leases of one block of ${first.blockSize}; serving: ` +
    `one process, one thread, pipelined load (4 connections x 100 in flight, 5 s).`,
    "",
    "What the figures say:",
    "",
    ...summary(runs),
    "",
    ...tables(runs),
  ].join("\n");
}

if (import.meta.main) {
  const [etcd, redis, ...files] = process.argv.slice(2);
  if (!etcd || !redis || files.length === 0) {
    console.error(
      "usage: lease_sources_section.ts ETCD_VERSION REDIS_VERSION RUN.json [RUN.json...]",
    );
    process.exit(2);
  }
  const runs = files.map((file) => JSON.parse(readFileSync(file, "utf8")) as LeaseSourcesRun);
  const out = fileURLToPath(new URL("RESULTS.md", import.meta.url));
  writeSection(out, "lease-sources", leaseSourcesMarkdown(runs, { etcd, redis }));
  console.log(`wrote section lease-sources of ${out}`);
}
