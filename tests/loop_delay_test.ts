/**
 * The event-loop delay meter: histogram, percentiles and the timer that feeds them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LOOP_DELAY_EVERY_MS, LoopDelayMeter, percentile } from "../server/loop_delay.ts";
import { monotonicNow } from "../server/common/clock.ts";
import { createStatsBuffer, readStats, statsRow } from "../server/threads/thread_stats.ts";

test("loop delay histogram counts each sample under every bound it fits, cumulatively", () => {
  const buffer = createStatsBuffer(1);
  const meter = new LoopDelayMeter(statsRow(buffer, 0), 0);
  for (const delay of [0.2, -3, 1.5, 7, 30, 3000]) meter.record(delay, 10);
  const row = readStats(buffer)[0]!;
  assert.equal(row.loopDelaySamples, 6);
  assert.equal(row.loopDelaySumMs, 0.2 + 0 + 1.5 + 7 + 30 + 3000);
  assert.equal(row.loopDelayLe1ms, 2); // 0.2 and the negative one, counted as 0
  assert.equal(row.loopDelayLe2ms, 3);
  assert.equal(row.loopDelayLe5ms, 3);
  assert.equal(row.loopDelayLe10ms, 4);
  assert.equal(row.loopDelayLe50ms, 5);
  assert.equal(row.loopDelayLe2500ms, 5); // 3000 is above every bound: only +Inf (the count)
  assert.equal(row.loopDelayMaxMs, 3000);
});

test("loop delay percentiles cover the last interval and the max survives one more", () => {
  const buffer = createStatsBuffer(2);
  const meter = new LoopDelayMeter(statsRow(buffer, 1), 0);
  // Interval 1: 99 samples of 1 ms and one of 80 ms, closed by a sample at t = 1000.
  for (let i = 0; i < 99; i++) meter.record(1, i);
  meter.record(80, 500);
  meter.record(1, 1000);
  let row = readStats(buffer)[1]!;
  assert.equal(row.loopDelayP50Ms, 1);
  assert.equal(row.loopDelayP99Ms, 1);
  assert.equal(row.loopDelayMaxMs, 80);
  // Interval 2: quiet; the 80 ms stall still shows until it closes, then goes.
  meter.record(2, 1500);
  assert.equal(readStats(buffer)[1]!.loopDelayMaxMs, 80);
  meter.record(2, 2000);
  meter.record(2, 2100);
  row = readStats(buffer)[1]!;
  assert.equal(row.loopDelayMaxMs, 2);
  assert.equal(row.loopDelayP50Ms, 2);
  assert.equal(readStats(buffer)[0]!.loopDelaySamples, 0, "another thread's row is untouched");
});

test("loop delay percentile is nearest-rank", () => {
  assert.equal(percentile([], 0.5), 0);
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2);
  assert.equal(percentile([1, 2, 3, 4], 0.99), 4);
  assert.equal(percentile(Array.from({ length: 200 }, (_, i) => i + 1), 0.99), 198);
});

test("loop delay timer sees a 150 ms block of its thread, and little when idle", async () => {
  const buffer = createStatsBuffer(1);
  const meter = new LoopDelayMeter(statsRow(buffer, 0));
  meter.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const idle = readStats(buffer)[0]!;
    assert.ok(idle.loopDelaySamples >= 2, `samples while idle: ${idle.loopDelaySamples}`);
    const until = monotonicNow() + 150;
    while (monotonicNow() < until) {
      // Block this thread's loop.
    }
    await new Promise((resolve) => setTimeout(resolve, 3 * LOOP_DELAY_EVERY_MS));
    const row = readStats(buffer)[0]!;
    // The timer was due at most one period into the block: it fired at least 150 - 50 ms late.
    assert.ok(
      row.loopDelayMaxMs >= 150 - LOOP_DELAY_EVERY_MS,
      `max after a 150 ms block: ${row.loopDelayMaxMs}`,
    );
    assert.ok(row.loopDelayLe100ms < row.loopDelaySamples, "the block is above the 100 ms bound");
  } finally {
    meter.stop();
  }
});

test("loop delay ticks from the worker's clock timer count the time past the period", () => {
  const buffer = createStatsBuffer(1);
  const meter = new LoopDelayMeter(statsRow(buffer, 0), 1000);
  meter.tick(1000 + LOOP_DELAY_EVERY_MS); // on time
  meter.tick(1000 + 2 * LOOP_DELAY_EVERY_MS + 300); // 300 ms late
  meter.tick(1000 + 3 * LOOP_DELAY_EVERY_MS + 300); // on time again
  const row = readStats(buffer)[0]!;
  assert.equal(row.loopDelaySamples, 3);
  assert.equal(row.loopDelaySumMs, 300);
  assert.equal(row.loopDelayMaxMs, 300);
  assert.equal(row.loopDelayLe250ms, 2);
});
