/**
 * End to end: every serving process's memory, CPU, restarts and uptime, in /v1/stats, /v1/info
 * and /metrics, after one of them is killed and restarted.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { inBatches, oneRequest } from "./_client.ts";
import { FAST_STATS, startTallyho, UNDER_TEST } from "./_server.ts";
import { promtoolCheck } from "./_tools.ts";
import { waitUntil } from "./_wait.ts";

interface Health {
  index: number;
  pid: number;
  rssBytes: number;
  cpuSeconds: number;
  restarts: number;
  uptimeSeconds: number;
}

test(`[${UNDER_TEST}] each process's RSS, CPU, restarts and uptime show in /v1/stats, /v1/info and /metrics`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "1"], { env: FAST_STATS });
  try {
    await inBatches(Array.from({ length: 50 }), 10, () => oneRequest(server.port));
    const firstPid = server.childPids().get(1)!;
    process.kill(firstPid, "SIGKILL");
    // Until the restarted process has reported once (every 50 ms here) with its new pid.
    let stats: { processes: Health[] } = { processes: [] };
    await waitUntil(async () => {
      stats = await (await server.admin("/v1/stats")).json();
      const restarted = stats.processes.find((p) => p.index === 1);
      return restarted && restarted.pid !== firstPid && restarted.rssBytes > 0;
    }, { what: () => `process 1 back: ${JSON.stringify(stats)}` });
    const [zero, one] = stats.processes;
    for (const p of [zero!, one!]) {
      assert.ok(p.rssBytes > 5_000_000 && p.rssBytes < 2_000_000_000, `rss ${p.rssBytes}`);
      assert.ok(p.cpuSeconds > 0, `cpu ${p.cpuSeconds}`);
    }
    assert.equal(zero!.restarts, 0);
    assert.equal(one!.restarts, 1);
    assert.ok(one!.uptimeSeconds < zero!.uptimeSeconds, "the restarted process is younger");
    const info = await (await server.admin("/v1/info")).json() as { processes: Health[] };
    assert.deepEqual(info.processes.map((p) => [p.index, p.restarts]), [[0, 0], [1, 1]]);
    assert.ok(info.processes.every((p) => p.rssBytes > 0 && p.uptimeSeconds > 0));
    const metrics = await (await server.admin("/metrics")).text();
    assert.match(metrics, /^tallyho_process_restarts_total\{process="1"\} 1$/m);
    assert.match(metrics, /^tallyho_process_resident_memory_bytes\{process="0"\} \d+$/m);
    assert.match(metrics, /^tallyho_process_cpu_seconds_total\{process="1"\} [\d.e-]+$/m);
    assert.match(
      metrics,
      /^tallyho_event_loop_delay_seconds_bucket\{process="0",thread="0",le="0.5"\} \d+$/m,
    );
    promtoolCheck(metrics);
  } finally {
    await server.stop();
  }
});

interface Leasing {
  leases: number;
  blocksLeased: number;
  leaseErrors: number;
  lastLeaseMs: number | null;
}

test(`[${UNDER_TEST}] each process's leases and the state file's durable mark show in /v1/stats, /v1/info and /metrics`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-leasing-"));
  const path = join(dir, "numbers.state");
  const server = await startTallyho(["--processes", "2", "--threads", "1", "--state", path], {
    env: FAST_STATS,
  });
  try {
    await inBatches(Array.from({ length: 40 }), 10, () => oneRequest(server.port));
    type Stats = { processes: { index: number; numbersRemaining: number; leasing: Leasing }[] };
    // Until both processes have reported (every 50 ms here) after priming their ledgers.
    let stats: Stats = { processes: [] };
    await waitUntil(async () => {
      stats = await (await server.admin("/v1/stats")).json();
      return stats.processes.length === 2 && stats.processes.every((p) => p.numbersRemaining > 0);
    }, { what: () => `a report with numbers left: ${JSON.stringify(stats)}` });
    for (const p of stats.processes) {
      assert.ok(p.leasing.leases >= 1, `process ${p.index} leased: ${JSON.stringify(p)}`);
      assert.ok(p.leasing.blocksLeased >= p.leasing.leases);
      assert.equal(p.leasing.leaseErrors, 0);
      assert.ok(p.leasing.lastLeaseMs !== null && p.leasing.lastLeaseMs >= 0);
    }
    type Info = {
      numbers: { kind: string; next: number; durableMark: number; durableAt: number | null };
      processes: { index: number; leasing: Leasing }[];
    };
    const info = await (await server.admin("/v1/info")).json() as Info;
    assert.equal(info.numbers.kind, "state-file");
    // The mark the file holds, read from the file itself.
    const recorded = JSON.parse(readFileSync(path, "utf8")) as { next: number };
    assert.equal(info.numbers.durableMark, recorded.next);
    assert.equal(info.numbers.durableMark, info.numbers.next);
    assert.ok(info.numbers.durableAt !== null && info.numbers.durableAt > 0);
    assert.deepEqual(info.processes.map((p) => p.index), [0, 1]);
    assert.ok(info.processes.every((p) => p.leasing.leases >= 1));
    const metrics = await (await server.admin("/metrics")).text();
    for (const p of ["0", "1"]) {
      assert.match(
        metrics,
        new RegExp(`^tallyho_process_number_leases_total\\{process="${p}"\\} [1-9]\\d*$`, "m"),
      );
      assert.match(
        metrics,
        new RegExp(`^tallyho_process_number_blocks_total\\{process="${p}"\\} [1-9]`, "m"),
      );
      assert.match(
        metrics,
        new RegExp(`^tallyho_process_number_lease_errors_total\\{process="${p}"\\} 0$`, "m"),
      );
      assert.match(
        metrics,
        new RegExp(
          `^tallyho_process_number_last_lease_seconds\\{process="${p}"\\} [\\d.e-]+$`,
          "m",
        ),
      );
    }
    assert.match(metrics, new RegExp(`^tallyho_numbers_durable_mark ${recorded.next}$`, "m"));
    assert.match(metrics, /^tallyho_numbers_durable_mark_time_seconds \d+(\.\d+)?$/m);
    promtoolCheck(metrics);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`[${UNDER_TEST}] GET /v1/stats/history serves the seconds before it was asked`, async () => {
  const server = await startTallyho(["--threads", "1"], { env: FAST_STATS });
  try {
    type History = {
      bytes: number;
      capacity: number;
      samples: {
        ageSeconds: number;
        repliesPerSecond: number;
        lastNumber: number;
        processes: { index: number }[];
      }[];
    };
    // Requests until the history (a sample a second) holds two samples, one with a rate.
    let history: History = { bytes: 0, capacity: 0, samples: [] };
    await waitUntil(async () => {
      await inBatches(Array.from({ length: 20 }), 5, () => oneRequest(server.port));
      const response = await server.admin("/v1/stats/history");
      assert.equal(response.status, 200);
      history = await response.json() as History;
      return history.samples.length >= 2 && history.samples.some((s) => s.repliesPerSecond > 0);
    }, { what: () => `two samples, one with a rate: ${JSON.stringify(history)}` });
    // The figures' ring, and one ring of the same 600 samples per process index seen.
    const indexes = new Set(history.samples.flatMap((s) => s.processes.map((p) => p.index)));
    assert.ok(indexes.size >= 1, JSON.stringify(history.samples.at(-1)));
    assert.equal(history.bytes, 76_800 + indexes.size * 19_200);
    assert.equal(history.capacity, 600);
    assert.ok(history.samples.length >= 2, `samples: ${JSON.stringify(history.samples)}`);
    assert.ok(history.samples[0]!.ageSeconds > history.samples.at(-1)!.ageSeconds);
    assert.ok(history.samples.some((s) => s.repliesPerSecond > 0), JSON.stringify(history));
    assert.ok(history.samples.at(-1)!.lastNumber > 0);
    const refused = await fetch(`${server.adminUrl}/v1/stats/history`);
    assert.equal(refused.status, 401, "the history needs the token like the stats");
  } finally {
    await server.stop();
  }
});
