/**
 * End to end: every serving process's memory, CPU, restarts and uptime, in /v1/stats, /v1/info
 * and /metrics, after one of them is killed and restarted.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { test } from "node:test";
import { inBatches, oneRequest } from "./_client.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Health {
  index: number;
  pid: number;
  rssBytes: number;
  cpuSeconds: number;
  restarts: number;
  uptimeSeconds: number;
}

test(`[${UNDER_TEST}] each process's RSS, CPU, restarts and uptime show in /v1/stats, /v1/info and /metrics`, async () => {
  const server = await startTallyho(["--processes", "2", "--threads", "1"]);
  try {
    await inBatches(Array.from({ length: 50 }), 10, () => oneRequest(server.port));
    const firstPid = server.childPids().get(1)!;
    process.kill(firstPid, "SIGKILL");
    // Until the restarted process has reported once (every second) with its new pid.
    let stats: { processes: Health[] } = { processes: [] };
    const deadline = Date.now() + 10_000;
    for (;;) {
      stats = await (await server.admin("/v1/stats")).json();
      const restarted = stats.processes.find((p) => p.index === 1);
      if (restarted && restarted.pid !== firstPid && restarted.rssBytes > 0) break;
      assert.ok(Date.now() < deadline, `process 1 never came back: ${JSON.stringify(stats)}`);
      await sleep(200);
    }
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
    const promtool = spawnSync("promtool", ["check", "metrics"], {
      input: metrics,
      encoding: "utf8",
    });
    if (promtool.error === undefined) {
      assert.equal(promtool.status, 0, `${promtool.stdout}${promtool.stderr}`);
    }
  } finally {
    await server.stop();
  }
});

test(`[${UNDER_TEST}] GET /v1/stats/history serves the seconds before it was asked`, async () => {
  const server = await startTallyho(["--threads", "1"]);
  try {
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      await inBatches(Array.from({ length: 20 }), 5, () => oneRequest(server.port));
      await sleep(100);
    }
    const response = await server.admin("/v1/stats/history");
    assert.equal(response.status, 200);
    const history = await response.json() as {
      bytes: number;
      capacity: number;
      samples: { ageSeconds: number; repliesPerSecond: number; lastNumber: number }[];
    };
    assert.equal(history.bytes, 76_800);
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
