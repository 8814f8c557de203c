/**
 * The lease guard every running server leases through: a source that goes backwards (any source,
 * not only Redis) is refused, counted and never served, and leasing resumes once the source is
 * above the mark again. Against a real redis-server: the script refuses a key below the mark
 * before INCRBY, so the key is left for the operator to repair, and one guard shared by every
 * process catches a key set between two processes' leases.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LeaseBehindError } from "../server/lease/lease_behind_error.ts";
import { LeaseGuard } from "../server/lease/lease_guard.ts";
import {
  type LeaseOptions,
  type LeaseSource,
  type LeaseSourceStatus,
  MemoryLeaseSource,
} from "../server/lease/lease_source.ts";
import { RedisLeaseSource } from "../server/lease/sources/redis/redis_lease_source.ts";
import { skipRedis, startRedis } from "./_redis.ts";

/** A source whose next grant the test sets: it can go backwards, like a replaced file. */
class ScriptedSource implements LeaseSource {
  readonly description = "scripted test source";
  next: number;
  asked: Array<LeaseOptions | undefined> = [];

  constructor(next: number) {
    this.next = next;
  }

  lease(count: number, options?: LeaseOptions): Promise<number> {
    this.asked.push(options);
    const first = this.next;
    this.next += count;
    return Promise.resolve(first);
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

test("lease guard refuses any source's grant at or below the server's mark, counts it, and resumes above it", async () => {
  const inner = new ScriptedSource(1);
  const guard = new LeaseGuard(inner);
  assert.equal(await guard.lease(4096), 1);
  assert.equal(await guard.lease(4096), 4097);
  assert.equal(guard.mark, 8192);
  assert.deepEqual(inner.asked, [{ above: 0 }, { above: 4096 }], "the mark is passed down");
  assert.equal(guard.refusing, false);

  inner.next = 5000; // went backwards, into numbers already leased
  await assert.rejects(guard.lease(4096), (error: Error) => {
    assert.ok(error instanceof LeaseBehindError);
    assert.equal(error.mark, 8192);
    assert.equal(
      error.message,
      "refused a lease from scripted test source: it granted 5000 to 9095, but this server's " +
        "mark is 8192 (numbers up to it were leased there, by this server or as it read the " +
        "source); serving it would repeat numbers. To resume, set the source to at least the " +
        "highest mark of every server that shares it (each logs its own; GET /v1/info shows " +
        "it as numbers.mark) and at least what it held before it went back",
    );
    return true;
  });
  inner.next = 8192; // one short: still refused
  await assert.rejects(guard.lease(1), LeaseBehindError);
  assert.equal(guard.refusing, true);
  assert.equal(guard.status().leasesRefused, 2);
  assert.equal(guard.mark, 8192, "a refused run does not move the mark");

  inner.next = 8193;
  assert.equal(await guard.lease(10), 8193);
  assert.equal(guard.refusing, false);
  assert.equal(guard.mark, 8202);
  assert.equal(guard.status().leasesRefused, 2);
});

test("lease guard starts from the source's mark: a source moved back before the first lease is refused", async () => {
  const inner = new ScriptedSource(1000);
  const guard = new LeaseGuard(inner);
  assert.equal(guard.mark, 999);
  inner.next = 500;
  await assert.rejects(guard.lease(1), /it granted 500 to 500, but this server's mark is 999 /);
  const memory = new LeaseGuard(new MemoryLeaseSource(7));
  assert.equal(await memory.lease(3), 7, "a source that never goes backwards passes through");
  assert.equal(memory.status().leasesRefused, 0);
});

test(
  "lease guard over Redis: the script refuses a key below the mark before INCRBY, for a key set between two processes' leases and for a lost key",
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    try {
      const source = await RedisLeaseSource.open(redis.url("n"));
      const guard = new LeaseGuard(source);
      // Two processes lease through the supervisor's one guard: process A gets the first run,
      // process B the second.
      const a = await guard.lease(4096);
      const b = await guard.lease(4096);
      assert.deepEqual([a, b], [1, 4097]);

      // Set between A's end and B's end: a guard per process would let A lease 5001.. (B's numbers).
      await redis.command("SET", "n", "5000");
      await assert.rejects(guard.lease(4096), (error: Error) => {
        assert.ok(error instanceof LeaseBehindError);
        assert.match(
          error.message,
          new RegExp(
            `^refused a lease from redis redis://127\\.0\\.0\\.1:${redis.port}/0\\?key=n: the key holds ` +
              `5000, but this server's mark is 8192 `,
          ),
        );
        return true;
      });
      assert.equal(await redis.command("GET", "n"), "5000", "a refused lease takes nothing");

      await redis.command("DEL", "n");
      await assert.rejects(
        guard.lease(4096),
        /the key is missing, but this server's mark is 8192 /,
      );
      assert.equal(await redis.command("GET", "n"), null, "the lost key is not recreated low");
      assert.equal(guard.status().leasesRefused, 2);
      assert.equal(guard.status().leaseErrors, 2, "the source counts them as failed leases too");

      await redis.command("SET", "n", "8192"); // repaired at the mark the error named
      assert.equal(await guard.lease(4096), 8193);
      assert.equal(guard.refusing, false);
      await guard.close();
    } finally {
      await redis.close();
    }
  },
);

test("lease guard status names the source's kind and times the last lease", async () => {
  const { sourceKind } = await import("../server/lease/lease_guard.ts");
  assert.equal(sourceKind("state file /tmp/x"), "state-file");
  assert.equal(sourceKind("redis 127.0.0.1:6379/key"), "redis");
  assert.equal(sourceKind("memory (numbers restart on the next start)"), "memory");
  const guard = new LeaseGuard(new MemoryLeaseSource(1));
  assert.equal(guard.status().lastLeaseMs, null);
  assert.equal(guard.status().kind, "memory");
  await guard.lease(10);
  const took = guard.status().lastLeaseMs;
  assert.ok(typeof took === "number" && took >= 0 && took < 1000, `last lease took ${took}`);
});
