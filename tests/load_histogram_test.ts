/**
 * The load generator's latency histogram: percentiles against exact answers, within the error
 * bound it states.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LatencyHistogram, RELATIVE_ERROR_BOUND } from "../load/latency_histogram.ts";

const PERCENTILES = [0, 1, 25, 50, 90, 99, 99.9, 99.99, 100];

/** The nearest-rank percentile of sorted values: what the histogram approximates. */
function exactPercentile(sorted: number[], percentile: number): number {
  const rank = Math.max(1, Math.ceil((percentile / 100) * sorted.length));
  return sorted[rank - 1]!;
}

function assertWithinBound(histogram: LatencyHistogram, values: number[], label: string) {
  const sorted = values.slice().sort((a, b) => a - b);
  for (const p of PERCENTILES) {
    const exact = exactPercentile(sorted, p);
    const got = histogram.percentile(p);
    const allowed = exact * RELATIVE_ERROR_BOUND;
    assert.ok(
      Math.abs(got - exact) <= allowed,
      `${label}: p${p} is ${got}, exact ${exact}, allowed error ${allowed}`,
    );
  }
}

// A fixed-seed generator, so a failure can be reproduced.
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

test("histogram states a bound of at most 1 %", () => {
  assert.ok(RELATIVE_ERROR_BOUND > 0 && RELATIVE_ERROR_BOUND <= 0.01);
});

test("histogram percentiles of 1..100000 ns are within the bound", () => {
  const histogram = new LatencyHistogram();
  const values: number[] = [];
  for (let v = 1; v <= 100_000; v++) {
    values.push(v);
    histogram.record(v);
  }
  assertWithinBound(histogram, values, "uniform");
  assert.equal(histogram.count, 100_000);
  assert.equal(histogram.min, 1);
  assert.equal(histogram.max, 100_000);
});

test("histogram percentiles of values spread from 1 us to 100 s are within the bound", () => {
  const random = lcg(42);
  const histogram = new LatencyHistogram();
  const values: number[] = [];
  for (let i = 0; i < 50_000; i++) {
    // Log-uniform, like latencies with a long tail: 1e3 .. 1e11 ns.
    const v = Math.round(10 ** (3 + 8 * random()));
    values.push(v);
    histogram.record(v);
  }
  assertWithinBound(histogram, values, "log-uniform");
});

test("histogram is exact below 256 ns and keeps min and max exact", () => {
  const histogram = new LatencyHistogram();
  for (let v = 0; v < 256; v++) histogram.record(v);
  for (let v = 0; v < 256; v++) {
    assert.equal(histogram.percentile(((v + 1) / 256) * 100), v);
  }
  const wide = new LatencyHistogram();
  wide.record(123_456_789);
  wide.record(3e12); // past the largest bucket: still counted, and the max stays exact
  assert.equal(wide.min, 123_456_789);
  assert.equal(wide.max, 3e12);
  assert.equal(wide.percentile(100), 3e12);
});

test("histogram merged from two threads answers like one histogram of all values", () => {
  const random = lcg(7);
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  const all = new LatencyHistogram();
  const values: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const v = Math.round(50_000 * (1 + 20 * random() ** 3));
    values.push(v);
    (i % 3 === 0 ? a : b).record(v);
    all.record(v);
  }
  a.add(b);
  assert.equal(a.count, all.count);
  assert.deepEqual(a.counts, all.counts);
  for (const p of PERCENTILES) assert.equal(a.percentile(p), all.percentile(p));
  assertWithinBound(a, values, "merged");
});

test("histogram rejects a percentile outside 0..100 and answers 0 when empty", () => {
  const histogram = new LatencyHistogram();
  assert.equal(histogram.percentile(50), 0);
  assert.throws(() => histogram.percentile(101), RangeError);
  assert.throws(() => histogram.percentile(Number.NaN), RangeError);
});
