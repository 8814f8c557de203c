/**
 * End to end: two servers on one Redis key, the key restored to an older value (a backup from
 * before both leased). The server whose lease is refused says its mark, and so does the other,
 * which still holds numbers and leases nothing; following their lines (the key set to the
 * highest mark they name) repeats no number. Setting it to the refused server's mark alone, as
 * the line used to say, repeated 7,254 numbers in a review: the other server had leased above it.
 * Every number is recorded by a Python client that shares no code with the server.
 */
import { record, type Recorded } from "./_recorder.ts";
import { testNeeding } from "./_tools.ts";
import assert from "node:assert/strict";
import { skipRedis, startRedis } from "./_redis.ts";
import { startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";

const test = testNeeding(skipRedis);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls /readyz (bounded) until it answers 200; returns the last status. */
async function readyWithin(server: TestServer, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let status = 0;
  while (status !== 200 && Date.now() < deadline) {
    status = (await fetch(`${server.adminUrl}/readyz`)).status;
    if (status !== 200) await sleep(50);
  }
  return status;
}

/** The line either server logs once it knows the key went back: its mark is the number. */
const BEHIND =
  /error: (?:refused a lease from|redis \S+ went backwards:) .*?but this server's mark is (\d+) \(/;

test(`[${UNDER_TEST}] two servers on one Redis key restored to an older value: both say their mark, and the highest repeats nothing`, async () => {
  const redis = await startRedis();
  const servers: TestServer[] = [];
  try {
    const args = [
      "--processes",
      "1",
      "--threads",
      "1",
      "--framing",
      "line",
      "--number-by",
      "message",
      "--numbers",
      redis.url("n"),
    ];
    const a = await startTallyho(args);
    servers.push(a);
    const b = await startTallyho(args);
    servers.push(b);
    // The backup: the key once both had taken their first block.
    const backup = String(await redis.command("GET", "n"));
    const runs: Recorded[] = [];
    // A serves for 3 s; then B for 1 s, so B leases last and its mark is the higher, and B keeps
    // the rest of its lease (about a second of that traffic) while it serves no one.
    runs.push(await record(a.port, 3, { pace: 100, keep: true }));
    runs.push(await record(b.port, 1, { pace: 100, keep: true }));
    const highestServed = Math.max(...runs.map((run) => run.max));
    const lost = Number(await redis.command("GET", "n"));

    await redis.command("SET", "n", backup); // restored from the older backup
    const outputFrom = [a.output().length, b.output().length];
    const duringFault = record(a.port, 8, { pace: 100, keep: true });
    const said: (RegExpExecArray | null)[] = [];
    for (const [i, server] of servers.entries()) {
      const since = outputFrom[i]!;
      const deadline = Date.now() + 6000;
      let match: RegExpExecArray | null = null;
      while (match === null && Date.now() < deadline) {
        match = BEHIND.exec(server.output().slice(since));
        if (match === null) await sleep(50);
      }
      said.push(match);
    }
    const info = await Promise.all(
      servers.map(async (server) => (await (await server.admin("/v1/info")).json()).numbers),
    );
    runs.push(await duringFault);
    // The advice: the highest mark any server names (each line, or numbers.mark in /v1/info).
    const marks = said.map((match, i) => Number(match?.[1] ?? info[i]?.mark ?? 0));
    const repairTo = Math.max(...marks);
    await redis.command("SET", "n", String(repairTo));
    // Each process retries a refused lease with backoff (at most 5 s apart): ready again once one
    // is granted.
    const ready = await Promise.all(servers.map((server) => readyWithin(server, 10_000)));
    const after = await Promise.all(
      servers.map((server) => record(server.port, 4, { pace: 100, keep: true })),
    );
    runs.push(...after);

    const all = runs.flatMap((run) => run.all);
    const distinct = new Set(all).size;
    console.log(
      `key ${lost} set back to ${backup}; marks said: A ${said[0]?.[1] ?? "nothing"}, ` +
        `B ${said[1]?.[1] ?? "nothing"} (numbers.mark ${info.map((n) => n?.mark)}); ` +
        `set to ${repairTo}; ${all.length} numbers recorded, ${all.length - distinct} repeated; ` +
        `served after the repair: A ${after[0]!.numbers}, B ${after[1]!.numbers}`,
    );
    assert.equal(all.length - distinct, 0, "no number twice across both servers");
    assert.ok(said[0], `A said nothing:\n${a.output().slice(outputFrom[0]).slice(-2000)}`);
    assert.ok(said[1], `B (holding numbers) said nothing:\n${b.output().slice(outputFrom[1])}`);
    for (const [i, n] of info.entries()) {
      assert.equal(n.mark, marks[i], `server ${i}'s numbers.mark is the mark it logged`);
    }
    assert.deepEqual(ready, [200, 200], "both ready again after the repair");
    assert.ok(repairTo >= highestServed, `the advice (${repairTo}) is above ${highestServed}`);
    assert.ok(repairTo <= lost, "and no higher than the key was before it went back");
    for (const run of after) {
      assert.ok(run.numbers > 0, `served after the repair: ${run.per_second}`);
      assert.equal(run.bad, 0);
    }
  } finally {
    for (const server of servers) await server.stop("SIGKILL");
    await redis.close();
  }
});
