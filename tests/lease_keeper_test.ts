import assert from "node:assert/strict";
import { test } from "node:test";
import { LeaseKeeper } from "../server/lease/lease_keeper.ts";
import { BLOCK_SIZE, NumberLedger } from "../server/lease/number_ledger.ts";

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

test("lease keeper primes one block, then leases more each time a thread starves", async () => {
  const ledger = NumberLedger.create();
  const asked: number[] = [];
  let next = 1;
  const keeper = new LeaseKeeper(ledger, (blocks) => {
    asked.push(blocks);
    const first = next;
    next += blocks * BLOCK_SIZE;
    return Promise.resolve(first);
  }, { checkEveryMs: 1_000_000 });
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
