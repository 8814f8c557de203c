/**
 * End to end: a listener's list of open connections (issue 27 replaced Bun's two Sets with a
 * dense array whose closed places the last one fills, and the silent ones with an array the
 * sweep compacts). Connections opened and closed in shuffled order many times over stay counted
 * right and numbered once; every idle, silent or drained connection is found and closed, however
 * many close during the same walk. The client is node:net from the test (tests/_client.ts),
 * sharing no code with the server; every loop is bounded in count and time.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { inBatches, LineClient, replyNumber } from "./_client.ts";
import { FAST_STATS, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { totals } from "./_proxy_clients.ts";
import { waitUntil } from "./_wait.ts";

async function openAnswered(port: number, count: number, numbers: number[]): Promise<LineClient[]> {
  return await inBatches(Array.from({ length: count }), 100, async () => {
    const client = await LineClient.connect(port, "127.0.0.1");
    numbers.push(replyNumber((await client.request("x\n")).trimEnd()));
    return client;
  });
}

async function openSilent(port: number, count: number): Promise<LineClient[]> {
  return await inBatches(
    Array.from({ length: count }),
    100,
    () => LineClient.connect(port, "127.0.0.1"),
  );
}

/** A deterministic shuffle (a linear congruential generator), so a failure can be replayed. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = items.slice();
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function activeIs(server: TestServer, want: number, what: string): Promise<void> {
  await waitUntil(async () => (await totals(server.admin)).connectionsActive === want, {
    what,
    timeoutMs: 15_000,
  });
}

async function allClosed(clients: LineClient[], what: string): Promise<void> {
  await waitUntil(() => clients.every((c) => c.closed), { what, timeoutMs: 15_000 });
}

test(`[${UNDER_TEST}] open connections: 2,000 opened and closed in shuffled order are counted out and numbered once; every idle, silent and drained one is closed`, async () => {
  const server = await startTallyho([
    "--threads",
    "1",
    "--framing",
    "line",
    "--max-connections-per-address",
    "0",
    "--idle-timeout",
    "3s",
    "--first-message-timeout",
    "1500ms",
  ], { env: { ...FAST_STATS } });
  const everyone: LineClient[] = [];
  try {
    // Churn: each round opens 400 more and closes a shuffled half of all open, so closed places
    // are filled from the end over and over while new connections arrive.
    const numbers: number[] = [];
    let open: LineClient[] = [];
    for (let round = 0; round < 5; round++) {
      const opened = await openAnswered(server.port, 400, numbers);
      everyone.push(...opened);
      open = shuffled([...open, ...opened], round + 1);
      const half = open.length >>> 1;
      for (const client of open.slice(0, half)) client.close();
      open = open.slice(half);
    }
    await activeIs(server, open.length, `${open.length} counted open after the churn`);
    // The ones left still answer, with their own number.
    for (const client of open.slice(0, 50)) {
      const again = replyNumber((await client.request("x\n")).trimEnd());
      assert.ok(numbers.includes(again), "a held connection keeps its number");
    }
    for (const client of open) client.close();
    await activeIs(server, 0, "every connection counted out");
    assert.equal(numbers.length, 2000);
    assert.equal(new Set(numbers).size, 2000, "no number given twice");

    // 800 answered and then idle: the full sweep closes all of them, most in one walk.
    const idle = await openAnswered(server.port, 800, numbers);
    everyone.push(...idle);
    // 400 silent: the sweep of those not heard yet closes all of them.
    const silent = await openSilent(server.port, 400);
    everyone.push(...silent);
    await allClosed(silent, "every silent connection closed by the first-message timeout");
    assert.ok(idle.every((c) => !c.closed), "the answered ones are not closed as silent");
    await allClosed(idle, "every idle connection closed by the idle timeout");
    await activeIs(server, 0, "every timed-out connection counted out");
    const figures = await totals(server.admin);
    assert.equal(figures.closedFirstMessageTimeout, 400);
    assert.equal(figures.closedIdleTimeout, 800);

    // A drain closes every connection left, answered or not.
    const held = await openAnswered(server.port, 300, numbers);
    everyone.push(...held);
    assert.equal(new Set(numbers).size, numbers.length, "no number given twice");
    assert.equal(await server.stop("SIGTERM"), 0);
    await allClosed(held, "every held connection closed by the drain");
  } finally {
    for (const client of everyone) client.close();
    await server.stop("SIGKILL").catch(() => {});
  }
});
