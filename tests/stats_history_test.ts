/**
 * The supervisor's history of one-second samples: rates as the dashboard measures them, a ring
 * of a fixed size, ages instead of times of day.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ProcessStats } from "../admin/backend.ts";
import {
  HISTORY_BYTES,
  HISTORY_SAMPLES,
  type HistoryProcess,
  PROCESS_HISTORY_BYTES,
  StatsHistory,
} from "../admin/stats_history.ts";
import { figures } from "./_admin.ts";

function read(replies: number, accepted: number, active = 1, more = {}): ProcessStats[] {
  return [{
    index: 0,
    pid: 100,
    threads: [
      figures({ replies, connectionsAccepted: accepted, connectionsActive: active, ...more }),
    ],
  }];
}

test("stats history measures rates per second and serves ages, oldest first", () => {
  const history = new StatsHistory();
  history.record(read(0, 0), 10_000);
  history.record(read(500, 10, 3), 11_000);
  history.record(read(1500, 30, 2), 12_000);
  const view = history.view(12_500);
  assert.equal(HISTORY_BYTES, 76_800, "the stated size: 600 samples x 16 numbers x 8 bytes");
  assert.equal(PROCESS_HISTORY_BYTES, 19_200, "600 samples x 4 numbers x 8 bytes a process");
  assert.equal(view.bytes, HISTORY_BYTES + PROCESS_HISTORY_BYTES, "the figures and one process");
  assert.equal(view.capacity, HISTORY_SAMPLES);
  assert.deepEqual(view.samples.map((s) => s.ageSeconds), [2.5, 1.5, 0.5]);
  assert.deepEqual(view.samples.map((s) => s.repliesPerSecond), [0, 500, 1000]);
  assert.deepEqual(view.samples.map((s) => s.connectionsPerSecond), [0, 10, 20]);
  assert.deepEqual(view.samples.map((s) => s.activeConnections), [1, 3, 2]);
  assert.equal(view.samples[2]!.rejectionsPerSecond.rejectedRate, 0);
  assert.equal(view.samples[2]!.closesPerSecond.closedIdleTimeout, 0);
});

test("stats history keeps the newest samples once the ring is full", () => {
  const history = new StatsHistory();
  const total = HISTORY_SAMPLES + 25;
  for (let i = 0; i < total; i++) history.record(read(i * 10, i), i * 1000);
  const samples = history.view((total - 1) * 1000).samples;
  assert.equal(samples.length, HISTORY_SAMPLES);
  assert.equal(samples.at(-1)!.ageSeconds, 0);
  assert.equal(samples[0]!.ageSeconds, HISTORY_SAMPLES - 1);
  assert.ok(samples.every((s, i) => i === 0 || s.ageSeconds < samples[i - 1]!.ageSeconds));
  assert.equal(samples.at(-1)!.repliesPerSecond, 10);
});

test("stats history keeps refusals, closes by reason and the worst loop delay", () => {
  const history = new StatsHistory();
  history.record(read(0, 0), 0);
  history.record(
    read(0, 0, 1, {
      rejectedRate: 4,
      closedIdleTimeout: 6,
      closedSlowReader: 2,
      loopDelayMaxMs: 12.5,
    }),
    2000,
  );
  const last = history.view(2000).samples.at(-1)!;
  assert.equal(last.rejectionsPerSecond.rejectedRate, 2);
  assert.equal(last.closesPerSecond.closedIdleTimeout, 3);
  assert.equal(last.closesPerSecond.closedSlowReader, 1);
  assert.equal(last.closesPerSecond.closedLineTooLong, 0);
  assert.equal(last.loopDelayMaxMs, 12.5);
});

/** A read of two processes' own figures (the dashboard's per-process charts). */
function processRead(processes: HistoryProcess[]): ProcessStats[] {
  return processes.map((process) => ({ ...process, threads: [figures({})] }));
}

test("stats history keeps each process's memory, CPU seconds and restarts by index, across a restart and a removal", () => {
  const history = new StatsHistory();
  history.record(
    processRead([
      { index: 0, pid: 100, rssBytes: 50e6, cpuSeconds: 1, restarts: 0 },
      { index: 1, pid: 101, rssBytes: 60e6, cpuSeconds: 2, restarts: 0 },
    ]),
    1000,
  );
  // Process 1 restarted: a new pid at the same index, not reported yet.
  history.record(
    processRead([
      { index: 0, pid: 100, rssBytes: 51e6, cpuSeconds: 1.5, restarts: 0 },
      { index: 1, pid: 102, restarts: 1 },
    ]),
    2000,
  );
  // Processes lowered to 1: index 1 is gone from now on.
  history.record(processRead([{ index: 0, pid: 100, rssBytes: 52e6, cpuSeconds: 2 }]), 3000);
  const view = history.view(3000);
  assert.deepEqual(view.samples.map((s) => s.processes), [
    [
      { index: 0, pid: 100, rssBytes: 50e6, cpuSeconds: 1, restarts: 0 },
      { index: 1, pid: 101, rssBytes: 60e6, cpuSeconds: 2, restarts: 0 },
    ],
    [
      { index: 0, pid: 100, rssBytes: 51e6, cpuSeconds: 1.5, restarts: 0 },
      { index: 1, pid: 102, restarts: 1 },
    ],
    [{ index: 0, pid: 100, rssBytes: 52e6, cpuSeconds: 2 }],
  ]);
  assert.equal(view.bytes, HISTORY_BYTES + 2 * PROCESS_HISTORY_BYTES);
});

test("stats history forgets a removed process once its samples left the window, and keeps the window's size", () => {
  const history = new StatsHistory();
  history.record(processRead([{ index: 0, pid: 100 }, { index: 5, pid: 105 }]), 0);
  for (let i = 1; i < HISTORY_SAMPLES; i++) {
    history.record(processRead([{ index: 0, pid: 100, rssBytes: i }]), i * 1000);
  }
  let view = history.view(HISTORY_SAMPLES * 1000);
  assert.equal(view.samples.length, HISTORY_SAMPLES);
  assert.deepEqual(view.samples[0]!.processes.map((p) => p.index), [0, 5], "still in the window");
  history.record(processRead([{ index: 0, pid: 100 }]), HISTORY_SAMPLES * 1000);
  view = history.view(HISTORY_SAMPLES * 1000);
  assert.ok(view.samples.every((s) => s.processes.every((p) => p.index === 0)));
  assert.equal(view.bytes, HISTORY_BYTES + PROCESS_HISTORY_BYTES);
  assert.equal(view.samples.at(-2)!.processes[0]!.rssBytes, HISTORY_SAMPLES - 1);
});
