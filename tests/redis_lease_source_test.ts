/**
 * The Redis lease source in this process, against a real redis-server: the run each lease gets,
 * `--first-number` kept atomically, refusal of a key that is not an integer, failing fast and
 * recovering when Redis goes away and comes back (on Bun and on Deno), and the URL, password
 * and configuration rules around it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { RedisLeaseError } from "../server/lease/sources/redis/redis_lease_error.ts";
import { RedisLeaseSource } from "../server/lease/sources/redis/redis_lease_source.ts";
import { PASSWORD_ENV, readRedisPassword } from "../server/lease/sources/redis/redis_password.ts";
import { parseRedisUrl } from "../server/lease/sources/redis/redis_url.ts";
import { skipRedis, startRedis } from "./_redis.ts";
import { freePort } from "./_ports.ts";
import { sleep, waitUntil } from "./_wait.ts";

test("redis url: host, port, key and TLS are read; the path is the database, ?key= the key", () => {
  const tls = parseRedisUrl("rediss://ops@redis.example/0?key=k");
  assert.equal(tls.tls, true);
  assert.equal(tls.port, 6379, "the default port");
  assert.equal(tls.key, "k");
  assert.equal(tls.username, "ops");
  assert.equal(parseRedisUrl("redis://[::1]:7000/0?key=k").host, "::1");
  assert.equal(parseRedisUrl("redis://h/0?key=a%2Fb").key, "a/b");
});

test("redis url: the Redis convention, path the database and ?key= the key; a URL without ?key= is refused", () => {
  assert.deepEqual(parseRedisUrl("redis://10.0.0.5:6380/2?key=tallyho:numbers"), {
    tls: false,
    host: "10.0.0.5",
    port: 6380,
    key: "tallyho:numbers",
    database: 2,
    username: null,
    display: "redis://10.0.0.5:6380/2?key=tallyho:numbers",
  });
  assert.equal(parseRedisUrl("redis://h?key=n").database, 0);
  assert.equal(parseRedisUrl("redis://h/?key=a%2Fb").key, "a/b");
  // The path-as-key form of before the first release: the path is a database, the key missing.
  for (const url of ["redis://h:6379/0", "redis://10.0.0.5:6380/tallyho:numbers"]) {
    assert.throws(
      () => parseRedisUrl(url),
      (error: Error) => {
        assert.ok(error instanceof RangeError);
        assert.match(error.message, /names no key \(\?key= names the key that holds/);
        return true;
      },
    );
  }
  assert.throws(
    () => resolveConfig({ numbers: "redis://h:6379/n" }, defaultConfig(2)),
    { name: "ConfigError", field: "numbers", message: /names no key/ },
  );
  assert.throws(() => parseRedisUrl("redis://h/abc?key=n"), /path "abc" is not a number/);
  assert.throws(() => parseRedisUrl("redis://h/0?key="), /whose key is empty/);
  assert.throws(() => parseRedisUrl("redis://h/0?key=n&db=1"), /nothing after the key/);
  assert.throws(() => parseRedisUrl("redis://h/0?key=n&key=m"), /nothing after the key/);
});

test("redis url: a password is refused without echoing it, saying where to put it", () => {
  for (
    const url of ["redis://:hunter2@h:6379/k", "redis://user:hunter2@h/k", "redis://:hunter2@/"]
  ) {
    assert.throws(() => parseRedisUrl(url), (error: Error) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /--numbers-password-file or in TALLYHO_REDIS_PASSWORD/);
      assert.doesNotMatch(error.message, /hunter2/);
      return true;
    });
  }
  assert.throws(
    () => parseRedisUrl("http://h/k"),
    /must be redis:\/\/HOST:PORT\/DB\?key=KEY or rediss:\/\/HOST:PORT\/DB\?key=KEY: got "http/,
  );
  assert.throws(() => parseRedisUrl("redis://h:6379"), /names no key/);
  assert.throws(() => parseRedisUrl("redis://h:6379/"), /names no key/);
  assert.throws(() => parseRedisUrl("redis://h/k?db=2"), /nothing after the key/);
});

test("redis config: numbers and state are exclusive, and a password file needs numbers", () => {
  const base = defaultConfig(2);
  const config = resolveConfig({ numbers: "redis://127.0.0.1:6379/0?key=k" }, base);
  assert.equal(config.numbers, "redis://127.0.0.1:6379/0?key=k");
  assert.equal(config.numbersPasswordFile, null);
  assert.throws(
    () => resolveConfig({ numbers: "redis://127.0.0.1:6379/0?key=k", state: "/tmp/s" }, base),
    {
      // A user's mistake is a ConfigError (style.md rule 5); a RangeError would be a bug.
      name: "ConfigError",
      field: "numbers",
      message: `'state' and 'numbers' cannot both be set (numbers come from one place): ` +
        `got state "/tmp/s" and numbers "redis://127.0.0.1:6379/0?key=k"`,
    },
  );
  assert.throws(
    () => resolveConfig({ numbersPasswordFile: "/run/secrets/redis" }, base),
    /'numbers-password-file' is only used with 'numbers'/,
  );
  assert.throws(() => resolveConfig({ numbers: "redis://:pw@h/k" }, base), /must not hold/);
});

test("redis password: from a file without its line break, or the environment, never both", () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-pw-"));
  try {
    const file = join(dir, "pw");
    writeFileSync(file, "s3cret\n");
    assert.equal(readRedisPassword(file, {}), "s3cret");
    assert.equal(readRedisPassword(null, { [PASSWORD_ENV]: "fromenv" }), "fromenv");
    assert.equal(readRedisPassword(null, {}), null);
    assert.throws(() => readRedisPassword(file, { [PASSWORD_ENV]: "x" }), /given twice/);
    writeFileSync(file, "\n");
    assert.throws(() => readRedisPassword(file, {}), /password file .* is empty/);
    assert.throws(
      () => readRedisPassword(join(dir, "missing"), {}),
      /Cannot read .*: no such file or directory \(ENOENT\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "redis lease source: the URL's database number is SELECTed: the key is leased there, not in 0",
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    try {
      const url = `redis://127.0.0.1:${redis.port}/3?key=n`;
      const source = await RedisLeaseSource.open(url, { firstNumber: 10 });
      assert.equal(await source.lease(5), 10);
      assert.equal(source.description, `redis ${url}`);
      await source.close();
      assert.equal(await redis.command("GET", "n"), null, "nothing in database 0");
      const inThree = "redis.call('SELECT', 3) return redis.call('GET', KEYS[1])";
      assert.equal(await redis.command("EVAL", inThree, "1", "n"), "14");
    } finally {
      await redis.close();
    }
  },
);

test(
  "redis lease source: each lease is the run below the INCRBY reply, and first-number holds atomically",
  { skip: skipRedis },
  async () => {
    const redis = await startRedis();
    try {
      const fresh = await RedisLeaseSource.open(redis.url("fresh"), { firstNumber: 1000 });
      assert.equal(fresh.next, 1000, "a missing key starts at first-number");
      assert.equal(await fresh.lease(4096), 1000);
      assert.equal(await redis.command("GET", "fresh"), String(1000 + 4096 - 1));
      assert.equal(await fresh.lease(8192), 5096);
      assert.equal(fresh.next, 5096 + 8192);
      const status = fresh.status();
      assert.deepEqual(
        { ...status, lastErrorAt: null },
        {
          description: `redis ${redis.url("fresh")}`,
          connected: true,
          lastError: null,
          lastErrorAt: null,
          leaseErrors: 0,
          leases: 2,
          lastLease: { first: 5096, last: 5096 + 8192 - 1 },
          next: 5096 + 8192,
        },
      );
      await fresh.close();
      assert.equal(fresh.status().connected, false, "closed");

      // A key left below a raised --first-number: the first lease still starts at first-number.
      await redis.command("SET", "low", "5");
      const low = await RedisLeaseSource.open(redis.url("low"), { firstNumber: 1_000_000 });
      assert.equal(low.next, 1_000_000);
      assert.equal(await low.lease(4096), 1_000_000);
      await low.close();

      // A key above first-number: numbering continues above it.
      await redis.command("SET", "high", "77777");
      const high = await RedisLeaseSource.open(redis.url("high"), { firstNumber: 1 });
      assert.equal(high.next, 77778);
      assert.equal(await high.lease(10), 77778);
      await high.close();

      // A run that would pass 2^53 - 1 is refused and leaves the key as it was.
      await redis.command("SET", "top", String(2 ** 53 - 10));
      const top = await RedisLeaseSource.open(redis.url("top"));
      await assert.rejects(top.lease(4096), { name: "RangeError", message: /would pass/ });
      assert.equal(await redis.command("GET", "top"), String(2 ** 53 - 10));
      assert.equal(top.status().leaseErrors, 1);
      await top.close();
    } finally {
      await redis.close();
    }
  },
);

test("redis lease source: 4 sources on one key, 400 leases at once, never overlap", {
  skip: skipRedis,
}, async () => {
  const redis = await startRedis();
  const sources: RedisLeaseSource[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      sources.push(await RedisLeaseSource.open(redis.url("shared"), { firstNumber: 7 }));
    }
    const runs = await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        const count = 4096 * (1 + (i % 3));
        return { first: await sources[i % 4]!.lease(count), count };
      }),
    );
    runs.sort((a, b) => a.first - b.first);
    let expected = 7;
    for (const run of runs) {
      assert.equal(run.first, expected, "runs tile the number space without gap or overlap");
      expected += run.count;
    }
    assert.equal(await redis.command("GET", "shared"), String(expected - 1));
  } finally {
    for (const source of sources) await source.close();
    await redis.close();
  }
});

test("redis lease source: a key that is not an integer is refused at open and at lease time", {
  skip: skipRedis,
}, async () => {
  const redis = await startRedis();
  try {
    await redis.command("SET", "word", "hello");
    await assert.rejects(RedisLeaseSource.open(redis.url("word")), (error: Error) => {
      assert.ok(error instanceof RedisLeaseError);
      assert.equal(
        error.message,
        `Redis key "word" at ${redis.url("word")} holds "hello", not an integer high-water ` +
          `mark: refusing to guess where numbering stopped`,
      );
      return true;
    });
    await redis.command("RPUSH", "list", "1");
    await assert.rejects(RedisLeaseSource.open(redis.url("list")), /WRONGTYPE/);

    const source = await RedisLeaseSource.open(redis.url("later"));
    assert.equal(await source.lease(5), 1);
    await redis.command("SET", "later", "1.5");
    await assert.rejects(source.lease(5), /holds "1\.5", not an integer/);
    assert.equal(await redis.command("GET", "later"), "1.5", "the key is left for a person");
    await source.close();
  } finally {
    await redis.close();
  }
});

test(
  "redis lease source: a wrong or missing password and an unreachable address fail at open, naming the problem",
  { skip: skipRedis },
  async () => {
    const redis = await startRedis({ password: "right" });
    try {
      await assert.rejects(
        RedisLeaseSource.open(redis.url("k"), { password: "not-it-42" }),
        (error: Error) => {
          assert.ok(error instanceof RedisLeaseError);
          assert.match(
            error.message,
            /^Redis at redis:\/\/127\.0\.0\.1:\d+\/0\?key=k refused the password/,
          );
          assert.ok(!error.message.includes("not-it-42"), "the password is never echoed");
          return true;
        },
      );
      await assert.rejects(RedisLeaseSource.open(redis.url("k")), /needs a password/);
      const source = await RedisLeaseSource.open(redis.url("k"), { password: "right" });
      assert.equal(await source.lease(1), 1);
      await source.close();
    } finally {
      await redis.close();
    }
    const nobody = await freePort();
    await assert.rejects(
      RedisLeaseSource.open(`redis://127.0.0.1:${nobody}/0?key=k`),
      new RegExp(
        `^RedisLeaseError: Cannot reach Redis at redis://127\\.0\\.0\\.1:${nobody}/0\\?key=k: `,
      ),
    );
  },
);

test(
  "redis lease source: while Redis is down leases fail at once and are counted; after it returns they resume above the old mark",
  { skip: skipRedis },
  async () => {
    const redis = await startRedis({ durable: true });
    const lines: string[] = [];
    const source = await RedisLeaseSource.open(redis.url("k"), {
      maxReconnectDelayMs: 200,
      log: (line) => lines.push(line),
    });
    try {
      const before = await source.lease(4096);
      await redis.kill();
      // The client learns of the loss from the closed socket: leases fail from then on.
      let failures = 0;
      const deadline = Date.now() + 10_000;
      while (failures < 3 && Date.now() < deadline) {
        const started = Date.now();
        try {
          await source.lease(4096);
        } catch (error) {
          assert.ok(error instanceof RedisLeaseError, String(error));
          assert.ok(Date.now() - started < 4000, "a lease while offline does not wait for Redis");
          failures++;
        }
        await sleep(50);
      }
      assert.equal(failures, 3, "leases failed while Redis was down");
      const down = source.status();
      assert.equal(down.connected, false);
      assert.ok(down.leaseErrors >= 3, `leaseErrors ${down.leaseErrors}`);
      assert.ok(down.lastError !== null && down.lastErrorAt !== null);
      assert.ok(lines.some((l) => /^lost the connection to Redis at /.test(l)), lines.join("\n"));

      await redis.restart();
      let after = 0;
      // At most 15 s: asserted below either way.
      await waitUntil(async () => (after = await source.lease(4096)), {
        timeoutMs: 15_000,
        everyMs: 100,
      }).catch(() => {});
      assert.ok(after > before, `leasing resumed (${after}) above the run before the outage`);
      assert.equal(source.status().connected, true);
      assert.ok(lines.some((l) => /^reconnected to Redis at /.test(l)), lines.join("\n"));
    } finally {
      await source.close();
      await redis.close();
    }
  },
);
