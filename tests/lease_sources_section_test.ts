/**
 * The section bench/lease_sources.sh writes into bench/RESULTS.md: every statement in it follows
 * from the figures it is given (no hand-written claim survives a rerun that contradicts it).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { LeaseSourcesRun } from "../bench/_lease_sources_run.ts";
import { leaseSourcesMarkdown } from "../bench/lease_sources_section.ts";

function run(runtime: string, etcdP99Us: number, load: number, checkOk = true): LeaseSourcesRun {
  return {
    runtime,
    cores: 2,
    cpu: "test cpu",
    kernel: "6.0",
    started: "2026-11-29T12:00:00.000Z",
    loadAverage: { before: load, after: load },
    blockSize: 4096,
    maxBlocksPerLease: 256,
    lease: [
      {
        source: "etcd",
        sources: 1,
        leases: 300,
        p50Ms: 1.6,
        p99Ms: 4,
        maxMs: 5,
        leasesPerSecond: 500,
      },
      {
        source: "etcd",
        sources: 4,
        leases: 100,
        p50Ms: 1.7,
        p99Ms: 6,
        maxMs: 600,
        leasesPerSecond: 450,
      },
      {
        source: "redis",
        sources: 1,
        leases: 300,
        p50Ms: 0.3,
        p99Ms: 1,
        maxMs: 2,
        leasesPerSecond: 2800,
      },
      {
        source: "redis",
        sources: 4,
        leases: 100,
        p50Ms: 0.5,
        p99Ms: 2,
        maxMs: 3,
        leasesPerSecond: 6000,
      },
    ],
    serve: [
      { source: "memory", repliesPerSecond: 4e6, p50Us: 85, p99Us: 250, checkOk, etcdLeases: 0 },
      { source: "redis", repliesPerSecond: 4e6, p50Us: 86, p99Us: 260, checkOk, etcdLeases: 0 },
      {
        source: "etcd",
        repliesPerSecond: 4e6,
        p50Us: 87,
        p99Us: etcdP99Us,
        checkOk,
        etcdLeases: 25,
      },
    ],
  };
}

const versions = { etcd: "3.4.23", redis: "7.0.15" };

test("lease-sources section: statements are computed from the figures (spans, supply, p99 against memory's)", () => {
  const text = leaseSourcesMarkdown(
    [run("bun 1.4.5", 280, 0.5), run("deno 2.9.6", 290, 0.7)],
    versions,
  );
  assert.match(text, /etcd p50 1\.60 ms against Redis 0\.30 ms; 500 etcd leases\/s against 2,800/);
  assert.match(text, /etcd p99 6\.00 ms and the slowest lease 600\.00 ms/);
  // 256 x 4096 = 1,048,576 numbers a lease; 500 leases/s is 524,288,000 numbers/s, 131 x 4e6.
  assert.match(text, /that is 524,288,000 numbers\/s, 131 times the most replies\/s/);
  assert.match(text, /no source's replies' p99 is more than 20 % above memory's on either runtime/);
  assert.match(text, /number check passed in every serving run/);
  assert.doesNotMatch(text, /load average was above/);
  assert.match(text, /\| bun 1\.4\.5 \| etcd \| 4,000,000 \| 87 \| 280 \| ok \| 25 \|/);
});

test("lease-sources section: a p99 above memory's, a failed check and a busy machine are said, not hidden", () => {
  const text = leaseSourcesMarkdown(
    [run("bun 1.4.5", 280, 0.5), run("deno 2.9.6", 900, 3.5, false)],
    versions,
  );
  assert.match(text, /more than 20 % above memory's for etcd on deno in this run/);
  assert.match(text, /number check FAILED for memory on deno 2\.9\.6, redis on deno 2\.9\.6/);
  assert.match(text, /load average was above the 2 cores during the run on deno 2\.9\.6/);
});
