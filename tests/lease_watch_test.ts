/**
 * The lease guard watches a source that many servers share (Redis, etcd) between leases: a
 * server that still holds numbers, and so leases nothing, says its mark as soon as it reads the
 * source below it, and every read raises the mark to what the source held, so a key set back
 * between two servers' marks is refused by a server that had read the higher one. Against a real
 * redis-server and etcd for the reads themselves.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EtcdLeaseSource } from "../server/lease/sources/etcd/etcd_lease_source.ts";
import { LeaseBehindError } from "../server/lease/lease_behind_error.ts";
import { LeaseGuard } from "../server/lease/lease_guard.ts";
import type {
  LeaseOptions,
  LeaseSource,
  LeaseSourceStatus,
  SourcePeek,
} from "../server/lease/lease_source.ts";
import { RedisLeaseSource } from "../server/lease/sources/redis/redis_lease_source.ts";
import { skipEtcd, startEtcd } from "./_etcd.ts";
import { skipRedis, startRedis } from "./_redis.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls (bounded) until `ready()` holds. */
async function until(ready: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await sleep(5);
  }
}

/** A shared key in memory: leases move it on, the test can set it back, reads can be held. */
class SharedKey implements LeaseSource {
  readonly description = "shared test key";
  value = 0;
  reads = 0;
  /** While set, a read resolves only when the test calls it (with the value read before). */
  holdRead: ((release: () => void) => void) | null = null;

  lease(count: number, options: LeaseOptions = {}): Promise<number> {
    if (this.value < (options.above ?? -1)) {
      return Promise.reject(
        new LeaseBehindError(this.description, `the key holds ${this.value}`, options.above!),
      );
    }
    this.value += count;
    return Promise.resolve(this.value - count + 1);
  }

  peek(): Promise<SourcePeek> {
    this.reads++;
    const read = { mark: this.value, what: `the key holds ${this.value}` };
    const hold = this.holdRead;
    if (hold === null) return Promise.resolve(read);
    return new Promise((resolve) => hold(() => resolve(read)));
  }

  get next(): number {
    return this.value + 1;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  status(): LeaseSourceStatus {
    return {
      description: this.description,
      connected: true,
      lastError: null,
      lastErrorAt: null,
      leaseErrors: 0,
      leases: 0,
      lastLease: null,
      next: this.next,
    };
  }
}

test("lease guard watch: a read below the mark is told with the mark while nothing is leased; a read above raises the mark", async () => {
  const key = new SharedKey();
  const guard = new LeaseGuard(key);
  const told: LeaseBehindError[] = [];
  guard.watch({ everyMs: 20, onBehind: (error) => told.push(error) });
  try {
    assert.equal(await guard.lease(4096), 1);
    key.value = 10_000; // another server leased 4097..10000
    await until(() => guard.mark === 10_000, "the read raising the mark");
    assert.equal(guard.status().mark, 10_000, "/v1/info's numbers.mark");
    assert.equal(told.length, 0);

    key.value = 2000; // set back (an older snapshot restored), this server leasing nothing
    await until(() => told.length > 0, "the key set back being told");
    const error = told[0]!;
    assert.ok(error.watched);
    assert.equal(error.mark, 10_000);
    assert.match(
      error.message,
      /^shared test key went backwards: the key holds 2000, but this server's mark is 10000 .*highest mark of every server that shares it/,
    );
    // Set back between this server's own leases (4096) and what it read (10000): refused.
    await assert.rejects(guard.lease(10), /the key holds 2000, but this server's mark is 10000 /);
    assert.equal(key.value, 2000, "nothing taken");

    key.value = 10_000; // repaired as the line says
    assert.equal(await guard.lease(10), 10_001);
    const reads = key.reads;
    await guard.close();
    await sleep(100);
    assert.equal(key.reads, reads, "no read after close");
  } finally {
    await guard.close();
  }
});

test("lease guard watch: a lease granted while a read is in flight is not taken for the key going back", async () => {
  const key = new SharedKey();
  const guard = new LeaseGuard(key);
  const told: LeaseBehindError[] = [];
  let release: (() => void) | null = null;
  key.holdRead = (go) => (release = go);
  guard.watch({ everyMs: 10, onBehind: (error) => told.push(error) });
  try {
    await until(() => release !== null, "a read starting");
    assert.equal(await guard.lease(4096), 1); // granted while the read (of 0) is in flight
    key.holdRead = null;
    release!(); // the read answers 0, below the mark of 4096 it did not know of
    await sleep(100);
    assert.equal(told.length, 0, told.map((e) => e.message).join("\n"));
    assert.equal(guard.mark, 4096);
  } finally {
    await guard.close();
  }
});

test(
  "lease guard watch over Redis: two servers on one key, the key restored to an older value; both say their mark, and the higher one holds",
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    const guards: LeaseGuard[] = [];
    try {
      const told: string[][] = [[], []];
      for (const i of [0, 1]) {
        const guard = new LeaseGuard(await RedisLeaseSource.open(redis.url("n")));
        guard.watch({ everyMs: 50, onBehind: (error) => told[i]!.push(error.message) });
        guards.push(guard);
      }
      const [a, b] = guards as [LeaseGuard, LeaseGuard];
      const snapshot = await redis.command("GET", "n"); // null: the key as a backup holds it
      assert.equal(await a.lease(4096), 1);
      assert.equal(await b.lease(4096), 4097); // b's mark is the higher; a leases no more
      await until(() => a.mark === 8192, "a reading b's lease");
      if (snapshot === null) await redis.command("DEL", "n");
      await until(() => told[0]!.length > 0 && told[1]!.length > 0, "both telling", 5000);
      for (const [i, lines] of told.entries()) {
        assert.match(
          lines[0]!,
          new RegExp(
            `^redis redis://127\\.0\\.0\\.1:${redis.port}/0\\?key=n went backwards: the key is ` +
              `missing, but this server's mark is 8192 `,
          ),
          `server ${i}`,
        );
      }
      // Following the advice (the highest mark told) leaves both above every number leased.
      await redis.command("SET", "n", "8192");
      assert.equal(await a.lease(10), 8193);
    } finally {
      for (const guard of guards) await guard.close();
      await redis.close();
    }
  },
);

test(
  "lease guard watch over etcd: the key set back is told by a server that leases nothing",
  { skip: skipEtcd },
  async () => {
    const etcd = await startEtcd(1);
    let guard: LeaseGuard | null = null;
    try {
      guard = new LeaseGuard(await EtcdLeaseSource.open(etcd.url("n")));
      const told: LeaseBehindError[] = [];
      guard.watch({ everyMs: 50, onBehind: (error) => told.push(error) });
      assert.equal(await guard.lease(100), 1);
      await fetch(`http://127.0.0.1:${etcd.clientPorts[0]}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: btoa("n"), value: btoa("40") }),
      });
      await until(() => told.length > 0, "the key set back being told");
      assert.match(
        told[0]!.message,
        new RegExp(
          `^etcd etcd://\\S+/n went backwards: the key holds 40, but this server's mark is 100 `,
        ),
      );
      assert.equal(await etcd.get("n"), "40", "a read takes nothing");
    } finally {
      await guard?.close();
      await etcd.close();
    }
  },
);
