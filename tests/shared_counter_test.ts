import assert from "node:assert/strict";
import { test } from "node:test";
import { NumbersExhaustedError, SharedCounter } from "../server/shared_counter.ts";

async function takeInThreads(
  first: number,
  threads: number,
  takes: number,
  batch: number,
): Promise<Float64Array[]> {
  const counter = SharedCounter.create(first);
  return await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<Float64Array>((resolve, reject) => {
        const worker = new Worker(new URL("./_counter_worker.ts", import.meta.url).href, {
          type: "module",
        });
        worker.onmessage = (event: MessageEvent<Float64Array>) => {
          worker.terminate();
          resolve(event.data);
        };
        worker.onerror = (event: ErrorEvent) => reject(new Error(event.message));
        worker.postMessage({ buffer: counter.buffer, first, takes, batch });
      })),
  );
}

test("counter never repeats a number across 4 threads taking 50,000 each", async () => {
  const results = await takeInThreads(1, 4, 50_000, 1);
  const seen = new Set<number>();
  for (const numbers of results) for (const n of numbers) seen.add(n);
  assert.equal(seen.size, 200_000, "every number taken is distinct");
  for (let n = 1; n <= 200_000; n++) assert.ok(seen.has(n), `dense: ${n} was handed out`);
});

test("counter batches of k from 4 threads stay disjoint and exact past 2^32", async () => {
  const first = 2 ** 32 - 5_000;
  const results = await takeInThreads(first, 4, 2_500, 3);
  const seen = new Set<number>();
  for (const numbers of results) for (const n of numbers) seen.add(n);
  assert.equal(seen.size, 4 * 2_500 * 3);
  const sorted = [...seen].sort((a, b) => a - b);
  assert.equal(sorted[0], first);
  assert.equal(sorted.at(-1), first + 4 * 2_500 * 3 - 1);
});

test("counter refuses to pass 2^53 - 1 instead of losing exactness", () => {
  const counter = SharedCounter.create(2 ** 53 - 2);
  assert.equal(counter.take(1), 2 ** 53 - 2);
  assert.equal(counter.take(1), 2 ** 53 - 1);
  assert.throws(() => counter.take(1), NumbersExhaustedError);
});
