/**
 * The Deno adapter's shared buffers: a read region is never handed to two connections at once,
 * and a reply copied into the write arena is never overwritten while its write is in flight.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ReadRegions, REGION_BYTES, WriteArena } from "../server/adapters/_deno_buffers.ts";

test("read regions never overlap among connections open at once, and are reused once given back", () => {
  const regions = new ReadRegions();
  const open = Array.from({ length: 1000 }, () => regions.take());
  const spans = open.map((r) => [r.buffer, r.byteOffset, r.byteOffset + r.byteLength] as const)
    .sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : 0));
  for (const region of open) assert.equal(region.length, REGION_BYTES);
  for (let i = 1; i < spans.length; i++) {
    const [buffer, start] = spans[i]!;
    const [before, , end] = spans[i - 1]!;
    if (buffer === before) assert.ok(start >= end, "regions of one slab do not overlap");
  }
  // Filling every open region with its own index leaves each intact.
  open.forEach((region, i) => region.fill(i % 251));
  open.forEach((region, i) => assert.ok(region.every((b) => b === i % 251)));
  const given = open.pop()!;
  regions.give(given);
  assert.equal(regions.take(), given, "a region given back is the next one taken");
});

test("write arena never overwrites a reply whose write is still in flight", () => {
  const arena = new WriteArena();
  const inFlight: Array<{ view: Uint8Array; fill: number; slab: typeof arena.last }> = [];
  let fill = 0;
  // 5,000 copies of mixed sizes, releasing writes out of order, some held a long time.
  for (let i = 0; i < 5000; i++) {
    fill = (fill + 1) % 256;
    const length = [1, 20, 700, 4096, 30_000, 65_536][i % 6]!;
    const view = arena.copy(new Uint8Array(length).fill(fill), length);
    inFlight.push({ view, fill, slab: arena.last });
    if (i % 3 === 0) {
      // Finish a write from the middle: the others stay in flight.
      const [done] = inFlight.splice(Math.floor(inFlight.length / 2), 1);
      assert.ok(done!.view.every((b) => b === done!.fill), "bytes intact until released");
      arena.release(done!.slab);
    }
    if (inFlight.length > 40) {
      const done = inFlight.shift()!;
      assert.ok(done.view.every((b) => b === done.fill), "bytes intact until released");
      arena.release(done.slab);
    }
  }
  for (const done of inFlight) {
    assert.ok(done.view.every((b) => b === done.fill), "bytes intact until released");
    arena.release(done.slab);
  }
});
