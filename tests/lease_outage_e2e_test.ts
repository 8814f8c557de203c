/**
 * End to end: the first leases after an outage of the number source are sized by the traffic the
 * server serves, not by the clients it refused meanwhile. Redis (durable, so the key survives) is
 * killed under load and started again 4 s later; the key may move on by what the clients were
 * then served plus a few blocks per process, never by the million numbers that every client
 * refused during the outage used to cost. Every number is recorded by a Python client that
 * shares no code with the server, and none may repeat.
 */
import { record } from "./_recorder.ts";
import { testNeeding } from "./_tools.ts";
import assert from "node:assert/strict";
import { skipRedis, startRedis } from "./_redis.ts";
import { startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";

const test = testNeeding(skipRedis);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Numbers per block (server/numbering/number_ledger.ts), restated: the test shares no constant. */
const BLOCK = 4096;
const PROCESSES = 2;
/**
 * What each process may hold or have leased ahead beyond the numbers served: docs/numbering.md
 * bounds a lease at about twice a second of the traffic (2 blocks at least), and a process may
 * have one in flight beside the one it uses; 16 blocks is far above that at this load (about
 * 10,000 numbers a second) and far below the 256 blocks the first lease used to be.
 */
const SLACK_PER_PROCESS = 16 * BLOCK;

test(`[${UNDER_TEST}] Redis down 4 s under load: the leases after it are sized by the numbers served, not by the clients refused; no number twice`, async () => {
  const redis = await startRedis({ durable: true });
  let server: TestServer | null = null;
  try {
    server = await startTallyho([
      "--processes",
      String(PROCESSES),
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--numbers",
      redis.url("n"),
    ]);
    // About 10,000 numbers a second: 4 connections of 256 lines, 100 ms apart.
    const load = record(server.port, 14, { pace: 100, keep: true });
    await sleep(3000);
    const before = Number(await redis.command("GET", "n"));
    await redis.kill();
    await sleep(4000);
    await redis.restart();
    // Watching before the server's reconnect (its backoff is at least 50 ms) sees its leases.
    const watch = await redis.monitor();
    await server.waitFor(/leasing numbers again from redis/, 10_000);
    const seen = await load;
    const after = Number(await redis.command("GET", "n"));
    watch.stop();
    const stopped = await server.stop();
    const output = server.output();
    // Every lease granted after the outage: the lease script's INCRBY, as MONITOR shows it.
    const leases = watch.lines.flatMap((line) => {
      const match = /\[\d+ lua\] "INCRBY" "n" "(\d+)"/.exec(line);
      return match ? [Number(match[1])] : [];
    });
    const servedAfter = seen.all.filter((n) => n > before).length;
    const refusedLine = /closed for want of leased numbers: (\d+)/.exec(output)?.[1] ?? "?";
    console.log(
      `outage: the key moved ${after - before} while clients were served ${servedAfter} ` +
        `numbers above it; leases after it (numbers): ${leases.join(", ")}; ` +
        `${seen.numbers} numbers read, ${seen.repeats} repeated, ${seen.refused} connections ` +
        `refused (server: ${refusedLine}); per second ${seen.per_second}`,
    );

    assert.equal(seen.repeats, 0, `numbers repeated (first ${seen.first_repeats})`);
    assert.equal(seen.bad, 0, "every reply was a greeting and a number");
    assert.ok(seen.refused > 0, "clients were refused once the held numbers ran out");
    assert.ok(servedAfter > 0, `nothing served after the outage: ${seen.per_second}`);
    assert.ok(
      after - before <= servedAfter + PROCESSES * SLACK_PER_PROCESS,
      `the key moved ${after - before} after the outage for ${servedAfter} numbers served ` +
        `(leases: ${leases.join(", ")})`,
    );
    for (const count of leases) {
      assert.ok(count <= SLACK_PER_PROCESS, `a lease of ${count} numbers after the outage`);
    }
    assert.equal(stopped, 0, output.slice(-2000));
  } finally {
    await server?.stop("SIGKILL");
    await redis.close();
  }
});
