/**
 * The supervisor's history of one-second samples: rates as the dashboard measures them, a ring
 * of a fixed size, ages instead of times of day.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ProcessStats } from "../admin/backend.ts";
import { HISTORY_BYTES, HISTORY_SAMPLES, StatsHistory } from "../admin/stats_history.ts";
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
  assert.equal(view.bytes, HISTORY_BYTES);
  assert.equal(view.bytes, 76_800, "the stated size: 600 samples x 16 numbers x 8 bytes");
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
