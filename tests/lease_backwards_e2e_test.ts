/**
 * End to end: a Redis key that goes backwards under load (set to 0, set to 1, or lost by a Redis
 * restarted empty) repeats no number. The server refuses every lease that starts at or below
 * what it already leased, logs an error naming the key and both numbers, answers `/readyz` 503
 * and counts the refusals; once the key is set above its mark it leases again without a restart.
 * Every number is recorded by a Python client that shares no code with the server.
 */
import { record } from "./_recorder.ts";
import { testNeeding } from "./_tools.ts";
import assert from "node:assert/strict";
import { skipRedis, startRedis, type TestRedis } from "./_redis.ts";
import { FAST_STATS, readyzWithin, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { waitUntil } from "./_wait.ts";

const test = testNeeding(skipRedis);

/** The key's value in Redis, read with Redis's own protocol (no tallyho code). */
async function keyValue(redis: TestRedis, key: string): Promise<number> {
  return Number(await redis.command("GET", key));
}

/**
 * Loads a 2-process server on a fresh key, runs `backwards` once the load has leased, then, once
 * the server has refused and its processes ran out of numbers and refused clients, sets the key
 * to the mark it names, loads on until service is back, and checks every number.
 */
async function backwardsUnderLoad(
  name: string,
  backwards: (redis: TestRedis, key: string) => Promise<void>,
): Promise<void> {
  const redis = await startRedis();
  const key = "n";
  let server: TestServer | null = null;
  try {
    server = await startTallyho([
      "--processes",
      "2",
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--numbers",
      redis.url(key),
    ], { env: FAST_STATS });
    const loadStart = Date.now();
    const enough = new AbortController();
    const load = record(server.port, 30, { signal: enough.signal });
    // Under load: the key has moved on since the server's first leases.
    const first = await keyValue(redis, key);
    await waitUntil(async () => await keyValue(redis, key) > first, { what: "leases under load" });
    const before = await keyValue(redis, key);
    assert.ok(before > 0, "the server leased before the fault");
    await backwards(redis, key);
    const faultAt = server.output().length;

    // The refusal, as operators see it: one error line naming the key and both numbers.
    const refusal = new RegExp(
      `error: refused a lease from redis redis://127\\.0\\.0\\.1:${redis.port}/0\\?key=${key}: ` +
        `the key (?:holds (\\d+)|is missing), but this server's mark is (\\d+) `,
    );
    let logged: RegExpExecArray | null = null;
    try {
      logged = await server.waitFor(refusal, 6000);
    } catch {
      // Asserted below, after the repeats, so a failure shows what the clients saw.
    }
    const readyWhileRefusing = await readyzWithin(server, 503, 3000);
    const info = await (await server.admin("/v1/info")).json();
    const metrics = await (await server.admin("/metrics")).text();
    if (logged) {
      // Left behind until the processes have used up what they hold and refuse clients, rather
      // than number them from the refused runs.
      const running = server;
      await waitUntil(async () => {
        const { totals } = await (await running.admin("/v1/stats")).json();
        return totals.closedNumbersUnavailable > 0;
      }, { what: "clients refused for want of numbers" });
      assert.equal((await fetch(`${server.adminUrl}/readyz`)).status, 503, "still refusing");
      // Repair: the key set at the mark the server named; leasing resumes without a restart.
      await redis.command("SET", key, logged[2]!);
    }
    const repairedAt = Math.ceil((Date.now() - loadStart) / 1000);
    const readyAfterRepair = await readyzWithin(server, 200, 8000);
    // Loaded on through the whole second after the one the repair came in, with a lease taken
    // and replies written since (the clients refused meanwhile reconnect at their own pace).
    const repaired = await keyValue(redis, key);
    const replies = async () => (await (await server!.admin("/v1/stats")).json()).totals.replies;
    const repliedBefore = await replies();
    if (logged) {
      await waitUntil(
        async () =>
          Date.now() - loadStart > (repairedAt + 2) * 1000 &&
          await keyValue(redis, key) > repaired && await replies() > repliedBefore,
        { what: "leases and replies after the repair" },
      );
    }
    enough.abort();
    const seen = await load;
    const stopped = await server.stop();
    const output = server.output().slice(faultAt);
    console.log(
      `${name}: ${seen.numbers} numbers read, ${seen.repeats} repeated, ${seen.refused} ` +
        `connections refused, per second ${seen.per_second}\n` +
        output.split("\n").filter((line) => /error: |leasing numbers again/.test(line)).join("\n"),
    );

    assert.equal(
      seen.repeats,
      0,
      `${name}: ${seen.repeats} of ${seen.numbers} numbers repeated (first ${seen.first_repeats})`,
    );
    assert.equal(seen.decreases, 0, `${name}: numbers went down on one connection`);
    assert.equal(seen.bad, 0, "every reply was a greeting and a number");
    assert.ok(logged, `${name}: no refusal was logged:\n${output.slice(-2000)}`);
    assert.ok(Number(logged[1] ?? 0) < Number(logged[2]), "the line names the key and the mark");
    assert.ok(Number(logged[2]) >= before, "the mark is at least what the key held before");
    assert.equal(readyWhileRefusing, 503, "/readyz while leases are refused");
    assert.ok(seen.refused > 0, `${name}: no client was refused while the key was behind`);
    assert.ok(info.numbers.leasesRefused >= 1, JSON.stringify(info.numbers));
    assert.match(metrics, /^tallyho_number_leases_refused_total [1-9]\d*$/m);
    assert.equal(readyAfterRepair, 200, "/readyz once the key is repaired");
    assert.match(output, /leasing numbers again from redis \S+ after \d+ failed lease/);
    // Service went on after the repair: numbers were read in the seconds after it.
    const after = seen.per_second.slice(repairedAt + 1).reduce((a, b) => a + b, 0);
    assert.ok(after > 0, `nothing served after the repair (${repairedAt} s): ${seen.per_second}`);
    assert.equal(stopped, 0, output.slice(-2000));
  } finally {
    await server?.stop("SIGKILL");
    await redis.close();
  }
}

test(`[${UNDER_TEST}] Redis key SET to 0 under load: leases refused and logged, /readyz 503, no number twice, resumes once repaired`, async () => {
  await backwardsUnderLoad("SET 0", async (redis, key) => {
    await redis.command("SET", key, "0");
  });
});

test(`[${UNDER_TEST}] Redis key SET to 1 under load: leases refused and logged, /readyz 503, no number twice, resumes once repaired`, async () => {
  await backwardsUnderLoad("SET 1", async (redis, key) => {
    await redis.command("SET", key, "1");
  });
});

test(`[${UNDER_TEST}] Redis restarted empty under load: leases refused and logged, /readyz 503, no number twice, resumes once repaired`, async () => {
  await backwardsUnderLoad("restarted empty", async (redis) => {
    await redis.restart(); // no snapshot, no append-only file: it comes back without the key
  });
});
