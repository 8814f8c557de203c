import assert from "node:assert/strict";
import { test } from "node:test";
import { LeaseKeeper, type LeaseKeeperOptions } from "../server/numbering/lease_keeper.ts";
import { BLOCK_SIZE, NumberLedger } from "../server/numbering/number_ledger.ts";

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

/**
 * A keeper over a fresh ledger whose leases always succeed, dense from 1, and are recorded (in
 * blocks); its timer never fires unless `options` say so.
 */
function grantingKeeper(options: LeaseKeeperOptions = {}) {
  const ledger = NumberLedger.create();
  const asked: number[] = [];
  let next = 1;
  const keeper = new LeaseKeeper(ledger, (blocks) => {
    asked.push(blocks);
    const first = next;
    next += blocks * BLOCK_SIZE;
    return Promise.resolve(first);
  }, { checkEveryMs: 1_000_000, ...options });
  return { ledger, asked, keeper };
}

test("lease keeper primes one block, then leases more each time a thread starves", async () => {
  const { ledger, asked, keeper } = grantingKeeper();
  try {
    await keeper.prime();
    assert.deepEqual(asked, [1]);
    for (let round = 0; round < 4; round++) {
      // A burst uses everything leased and more: the threads are waiting.
      ledger.reserve(ledger.remaining + BLOCK_SIZE);
      keeper.starved();
      await tick();
    }
    // Each starvation asks for more than the one before (the floor doubles), not a trickle.
    for (let i = 2; i < asked.length; i++) assert.ok(asked[i]! > asked[i - 1]!, `${asked}`);
    assert.ok(asked.at(-1)! >= 16, `last lease ${asked.at(-1)} blocks`);
    // Every position reserved so far has a real number now: nothing waits.
    assert.ok(ledger.remaining >= 0);
  } finally {
    keeper.stop();
  }
});

test("lease keeper backs off after a failed lease and grants nothing it did not get", async () => {
  const ledger = NumberLedger.create();
  let calls = 0;
  const errors: string[] = [];
  const keeper = new LeaseKeeper(ledger, () => {
    calls++;
    return Promise.reject(new Error("source down"));
  }, { checkEveryMs: 1_000_000, onError: (e) => errors.push(e.message) });
  try {
    keeper.check();
    await tick();
    keeper.check(); // within the backoff: no second call
    await tick();
    assert.equal(calls, 1);
    assert.deepEqual(errors, ["source down"]);
    assert.equal(ledger.grantedBlocks, 0, "nothing granted without a lease");
  } finally {
    keeper.stop();
  }
});

test("lease keeper after an outage: clients refused meanwhile neither grow the next lease nor are leased for", async () => {
  const ledger = NumberLedger.create();
  const asked: number[] = [];
  let next = 1;
  let down = false;
  const keeper = new LeaseKeeper(ledger, (blocks) => {
    if (down) return Promise.reject(new Error("source down"));
    asked.push(blocks);
    const first = next;
    next += blocks * BLOCK_SIZE;
    return Promise.resolve(first);
  }, { checkEveryMs: 1_000_000 });
  // As a serving thread tells it (worker_main.ts), here on the main thread, which never waits.
  ledger.onStarved = () => keeper.starved();
  try {
    await keeper.prime();
    // Steady traffic of a few hundred numbers a second: the held block is used up.
    ledger.reserve(ledger.remaining);
    down = true;
    keeper.check(); // the lease fails: the source is down from now on
    await tick();
    // During the outage: 600,000 clients refused (each took a position, as a connection does).
    let refused = 0;
    for (let i = 0; i < 600_000; i++) {
      try {
        ledger.numberAt(ledger.reserve(1));
      } catch {
        refused++;
      }
    }
    assert.equal(refused, 600_000);
    assert.ok(
      ledger.remaining > -BLOCK_SIZE,
      `refused positions are not owed: ${ledger.remaining}`,
    );
    down = false;
    // Once the source is back, the next check leases (past the failed lease's backoff).
    const deadline = Date.now() + 10_000;
    const before = asked.length;
    while (asked.length === before && Date.now() < deadline) {
      keeper.check();
      await tick();
    }
    const catchUp = asked.slice(before);
    assert.equal(catchUp.length, 1, `one lease after the outage: ${catchUp}`);
    assert.ok(catchUp[0]! <= 4, `the first lease after the outage asked ${catchUp[0]} blocks`);
    // The next client gets a number from that lease, at most a block past its start: the
    // refused positions' blocks were skipped, not leased for and abandoned.
    const leasedFrom = next - catchUp[0]! * BLOCK_SIZE;
    const n = ledger.numberAt(ledger.reserve(1));
    assert.ok(n >= leasedFrom && n < leasedFrom + BLOCK_SIZE, `${n} from a lease at ${leasedFrom}`);
  } finally {
    keeper.stop();
  }
});

test("lease keeper leases when a thread numbers past its low-water mark, not when its timer polls; an idle ledger asks nothing", async () => {
  // Numbers kept ahead by the floor alone (whole blocks), not by the rate: the mark is exact.
  const { ledger, asked, keeper } = grantingKeeper({ aheadSeconds: 0 });
  let told = 0;
  let starved = 0;
  ledger.onLow = () => {
    told++;
    keeper.check();
  };
  ledger.onStarved = () => starved++;
  try {
    await keeper.prime();
    // Idle: the timer never fires here, and nothing is leased ahead of need.
    for (let i = 0; i < 5; i++) await tick();
    assert.deepEqual(asked, [1]);
    // A thread that may not wait numbers 40 blocks' worth, 1,024 a turn: every number is
    // there when it is taken, leased because the ledger told the keeper, never polled for.
    const numbers = new Set<number>();
    for (let turn = 0; turn < 40 * 4; turn++) {
      for (let i = 0; i < BLOCK_SIZE / 4; i++) {
        const position = ledger.reserveGranted(1);
        assert.ok(position >= 0, `turn ${turn}: no granted position (${position})`);
        numbers.add(ledger.numberAt(position));
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    assert.equal(numbers.size, 40 * BLOCK_SIZE, "every number once");
    assert.equal(starved, 0, "no thread found the ledger empty");
    assert.ok(told > 0 && asked.length > 1, `told ${told} times, leases ${asked}`);
  } finally {
    keeper.stop();
  }
});

test("lease keeper: once stopped it leases no more, though a lease in flight then fails", async () => {
  const ledger = NumberLedger.create();
  let calls = 0;
  const keeper = new LeaseKeeper(ledger, () => {
    calls++;
    return new Promise((_, reject) => setTimeout(() => reject(new Error("source down")), 20));
  }, { checkEveryMs: 1_000_000 });
  keeper.starved(); // a lease in flight
  keeper.stop();
  // Past the failure and two backoffs (50 then 100 ms) that a running keeper would retry after.
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.equal(calls, 1);
});

test("lease keeper: a mark set on a block a thread began meanwhile is taken back and looked at again", async () => {
  const { ledger, asked, keeper } = grantingKeeper({ aheadSeconds: 0 });
  ledger.onLow = () => keeper.check();
  try {
    await keeper.prime();
    await keeper.prime(); // blocks 0 to 1 granted
    // The keeper reads `taken` before a thread takes block 1's first position, and stores its
    // mark (block 1) after: as if the thread's look at the mark came between the two.
    ledger.tellAt(-1); // no mark standing when the thread looks
    const tellAt = ledger.tellAt.bind(ledger);
    ledger.tellAt = (block) => {
      ledger.reserve(BLOCK_SIZE + 1 - ledger.taken); // the thread begins block 1 ...
      ledger.numberAt(BLOCK_SIZE); // ... and finds no mark yet
      ledger.tellAt = tellAt;
      tellAt(block);
    };
    keeper.check();
    await new Promise((resolve) => setTimeout(resolve, 10));
    // Block 1 is the last granted and begun: the keeper leased for it all the same.
    assert.ok(asked.length > 2, `leases ${asked}`);
    assert.ok(ledger.remaining > BLOCK_SIZE, `remaining ${ledger.remaining}`);
  } finally {
    keeper.stop();
  }
});
