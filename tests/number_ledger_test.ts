import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_NUMBER } from "../server/common/max_number.ts";
import {
  BLOCK_SIZE,
  NumberLedger,
  NumbersUnavailableError,
  RING_BLOCKS,
} from "../server/numbering/number_ledger.ts";
import type { LedgerResult, LedgerWork } from "./_ledger_worker.ts";

/** A worker thread that does one piece of {@linkcode LedgerWork} at a time. */
class LedgerWorker {
  readonly #worker = new Worker(new URL("./_ledger_worker.ts", import.meta.url).href, {
    type: "module",
  });

  run(work: LedgerWork): Promise<LedgerResult> {
    const result = new Promise<LedgerResult>((resolve, reject) => {
      this.#worker.onmessage = (event: MessageEvent<LedgerResult>) => resolve(event.data);
      this.#worker.onerror = (event: ErrorEvent) => reject(new Error(event.message));
    });
    this.#worker.postMessage(work);
    return result;
  }

  stop(): void {
    this.#worker.terminate();
  }
}

/** Starts one worker on one piece of work, and ends it when the work is done. */
function startWorker(work: LedgerWork): { result: Promise<LedgerResult> } {
  const worker = new LedgerWorker();
  return { result: worker.run(work).finally(() => worker.stop()) };
}

test("ledger: a thread stalled past a ring wrap is refused, never given the next block's number", async () => {
  const ledger = NumberLedger.create();
  // Block b's numbers start at b * BLOCK_SIZE + 1, so the worker can tell a wrong answer.
  ledger.grant(1, RING_BLOCKS);
  const probe = startWorker({
    mode: "stale",
    buffer: ledger.buffer,
    lookups: 3_000_000,
    blockSize: BLOCK_SIZE,
    ring: RING_BLOCKS,
  });
  let outcome: LedgerResult | null = null;
  probe.result.then((r) => (outcome = r));
  const deadline = Date.now() + 4000;
  // Each round uses up the oldest block and grants one more in its slot, the way the lease keeper
  // refills a busy process, while the worker looks the oldest block up.
  while (outcome === null && Date.now() < deadline) {
    for (let i = 0; i < 2000; i++) {
      ledger.reserve(BLOCK_SIZE);
      ledger.grant(ledger.grantedBlocks * BLOCK_SIZE + 1, 1);
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const result = await probe.result;
  assert.deepEqual(result.wrong, [], `after ${ledger.grantedBlocks} blocks`);
});

test("ledger: reserve hands out consecutive positions and numberAt maps them across blocks", () => {
  const ledger = NumberLedger.create();
  ledger.grant(1, 1);
  ledger.grant(1_000_001, 2); // a gap between grants, as when another process leased between
  assert.equal(ledger.reserve(1), 0);
  assert.equal(ledger.reserve(BLOCK_SIZE - 2), 1);
  const run = ledger.reserve(3); // crosses from block 0 into block 1
  assert.equal(run, BLOCK_SIZE - 1);
  assert.deepEqual(
    [0, 1, 2].map((i) => ledger.numberAt(run + i)),
    [BLOCK_SIZE, 1_000_001, 1_000_002],
  );
  assert.equal(ledger.numberAt(2 * BLOCK_SIZE), 1_000_001 + BLOCK_SIZE, "second block of a grant");
  assert.equal(ledger.numberAt(0), 1, "back to an earlier block: the cache is per block");
  assert.equal(ledger.taken, BLOCK_SIZE + 2);
  assert.equal(ledger.grantedBlocks, 3);
  assert.equal(ledger.remaining, 3 * BLOCK_SIZE - (BLOCK_SIZE + 2));
  const other = new NumberLedger(ledger.buffer);
  assert.equal(other.numberAt(BLOCK_SIZE + 5), 1_000_006, "another view sees the same blocks");
});

test("ledger: the ring wraps, and a block whose slot was reused is refused, not misread", () => {
  const ledger = NumberLedger.create();
  ledger.grant(1, RING_BLOCKS);
  assert.throws(() => ledger.grant(1 + RING_BLOCKS * BLOCK_SIZE, 1), RangeError, "ring full");
  const stalled = new NumberLedger(ledger.buffer); // a thread that reserved, then stalled
  const stalledAt = ledger.reserve(1);
  // Three times round the ring, one block at a time.
  for (let b = RING_BLOCKS; b < 4 * RING_BLOCKS; b++) {
    ledger.reserve(BLOCK_SIZE);
    ledger.grant(b * BLOCK_SIZE + 1, 1);
  }
  const current = ledger.reserve(1);
  const block = Math.floor(current / BLOCK_SIZE);
  assert.equal(ledger.numberAt(current), block * BLOCK_SIZE + 1 + (current % BLOCK_SIZE));
  assert.throws(() => stalled.numberAt(stalledAt), NumbersUnavailableError);
  assert.throws(
    () => stalled.numberAt((block - RING_BLOCKS) * BLOCK_SIZE),
    /no longer in the ledger/,
    "the block whose slot the current block took",
  );
  const newest = ledger.grantedBlocks - 1;
  assert.equal(stalled.numberAt(newest * BLOCK_SIZE + 7), newest * BLOCK_SIZE + 8);
  assert.throws(() => stalled.numberAt((newest - RING_BLOCKS) * BLOCK_SIZE), /no longer/);
});

test("ledger: a grant that would pass 2^53 - 1 is refused, one that ends there is used", () => {
  const ledger = NumberLedger.create();
  const lastStart = MAX_NUMBER - BLOCK_SIZE + 1;
  assert.throws(() => ledger.grant(lastStart + 1, 1), RangeError);
  assert.throws(() => ledger.grant(lastStart - BLOCK_SIZE + 1, 2), RangeError);
  assert.equal(ledger.grantedBlocks, 0, "a refused grant publishes nothing");
  ledger.grant(lastStart, 1);
  const first = ledger.reserve(BLOCK_SIZE);
  assert.equal(ledger.numberAt(first), lastStart);
  assert.equal(ledger.numberAt(first + BLOCK_SIZE - 1), MAX_NUMBER);
});

test("ledger: a starved main thread is refused at once and told so, once per wait", () => {
  const ledger = NumberLedger.create();
  let starved = 0;
  ledger.onStarved = () => starved++;
  const position = ledger.reserve(1);
  assert.throws(() => ledger.numberAt(position), /block 0 was not granted within 0 ms/);
  assert.equal(starved, 1);
  // Until a grant arrives, a later position is refused without waiting out its waitMs.
  const started = Date.now();
  assert.throws(() => ledger.numberAt(ledger.reserve(1), 10_000), NumbersUnavailableError);
  assert.ok(Date.now() - started < 1000, "no second wait while nothing was granted");
  ledger.grant(1, 1);
  assert.equal(ledger.numberAt(ledger.reserve(1)), 3, "the refused positions stay unused");
  assert.ok(ledger.remaining === BLOCK_SIZE - 3);
});

test("ledger: a grant skips the blocks whose positions were all refused; a position left in one is refused, never numbered", () => {
  const ledger = NumberLedger.create();
  ledger.grant(1, 1);
  ledger.reserve(BLOCK_SIZE); // block 0 used up
  // The source is down: clients take positions through blocks 1 to 3 and into block 4, and are
  // refused (only the last one is looked up here; the others are refused the same way).
  const stalled = ledger.reserve(1); // block 1: a thread that has not looked its number up yet
  ledger.reserve(3 * BLOCK_SIZE + 9);
  const last = ledger.reserve(1);
  assert.equal(Math.floor(last / BLOCK_SIZE), 4);
  assert.throws(() => ledger.numberAt(last), NumbersUnavailableError);
  assert.equal(ledger.remaining, 4 * BLOCK_SIZE - ledger.taken, "blocks 1-3 are not owed");
  ledger.grant(100_001, 1);
  assert.equal(ledger.skippedBlocks, 3);
  assert.equal(ledger.grantedBlocks, 5, "the grant went to block 4");
  assert.equal(ledger.numberAt(ledger.reserve(1)), 100_001 + last + 1 - 4 * BLOCK_SIZE);
  assert.throws(() => ledger.numberAt(stalled), NumbersUnavailableError, "a skipped block");
  assert.equal(ledger.covered, BLOCK_SIZE + last + 2 - 4 * BLOCK_SIZE, "skipped blocks uncounted");
});

test("ledger: a starved worker thread waits for the grant and then gets its number", async () => {
  const ledger = NumberLedger.create();
  const waiting = startWorker({ mode: "wait", buffer: ledger.buffer, waitMs: 10_000 });
  const deadline = Date.now() + 10_000;
  while (ledger.taken === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, 50)); // it is in Atomics.wait by now
  ledger.grant(500, 1);
  const result = await waiting.result;
  assert.deepEqual([...result.numbers], [500]);
  assert.equal(result.refused, 0);
});

test("ledger: 4 worker threads reserving at once while grants arrive never share a number, past 2^32 too", async () => {
  const threads = Array.from({ length: 4 }, () => new LedgerWorker());
  const positions = 20_000;
  try {
    for (let round = 0; round < 10; round++) {
      const ledger = NumberLedger.create();
      const grants: [number, number][] = [];
      // Odd rounds number from just below 2^32: nothing wraps at 32 bits.
      let next = round % 2 === 0 ? 1 + round * 7 : 2 ** 32 - 5_000 + round;
      const grant = (blocks: number) => {
        grants.push([next, next + blocks * BLOCK_SIZE - 1]);
        ledger.grant(next, blocks);
        next += blocks * BLOCK_SIZE + 1 + (grants.length % 3) * 1000; // gaps between grants
      };
      grant(1);
      let finished = false;
      const all = Promise.all(threads.map((thread) =>
        thread.run({
          mode: "take",
          buffer: ledger.buffer,
          positions,
          maxRun: 1 + round,
          waitMs: 10_000,
        })
      )).finally(() => (finished = true));
      // Grants trickle in one or two blocks at a time, so the threads cross blocks and starve.
      const deadline = Date.now() + 30_000;
      while (!finished && Date.now() < deadline) {
        if (ledger.remaining < BLOCK_SIZE) grant(1 + (grants.length % 2));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const results = await all;
      const seen = new Set<number>();
      let count = 0;
      for (const result of results) {
        assert.equal(result.refused, 0, `round ${round}: a thread gave up waiting`);
        for (const n of result.numbers) {
          count++;
          assert.ok(!seen.has(n), `round ${round}: ${n} handed out twice`);
          seen.add(n);
          assert.ok(grants.some(([lo, hi]) => n >= lo && n <= hi), `${n} outside every grant`);
        }
      }
      assert.equal(count, threads.length * positions, `round ${round}: every position numbered`);
      assert.equal(ledger.taken, threads.length * positions);
    }
  } finally {
    for (const thread of threads) thread.stop();
  }
});

test("ledger: a long-lived process keeps numbering past 2^31 blocks (2^43 positions)", () => {
  const ledger = NumberLedger.create();
  // Every position below 2^31 - 2 blocks is taken and granted: a process that has handed out
  // 2^43 numbers, 100 days at a million a second.
  const blocks = 2 ** 31 - 2;
  ledger.reserve(blocks * BLOCK_SIZE);
  ledger.grant(1, blocks);
  assert.equal(ledger.grantedBlocks, blocks);
  let next = 1 + blocks * BLOCK_SIZE;
  for (let i = 0; i < 4; i++) {
    ledger.grant(next, 1);
    const first = ledger.reserve(BLOCK_SIZE);
    assert.equal(ledger.numberAt(first), next, `block ${blocks + i}`);
    assert.equal(ledger.numberAt(first + BLOCK_SIZE - 1), next + BLOCK_SIZE - 1);
    next += BLOCK_SIZE;
  }
  assert.equal(ledger.grantedBlocks, blocks + 4);
  assert.equal(ledger.remaining, 0);
});
