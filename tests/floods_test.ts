/**
 * End to end: connection floods, slowloris, rate limits and live limit changes. Attackers connect
 * from their own loopback addresses (127.0.0.2 and up); every loop is bounded in count and time.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { inBatches, LineClient, oneRequest } from "./_client.ts";
import { FAST_STATS, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { totals } from "./_proxy_clients.ts";
import { sleep, waitUntil } from "./_wait.ts";

/**
 * Opens `count` connections from `from`, keeping those the server does not close at once: it
 * closes refused ones at once, so it waits until at most `kept` are open (300 ms at most).
 */
async function openMany(
  port: number,
  from: string,
  count: number,
  kept = count,
): Promise<LineClient[]> {
  const clients = (await inBatches(Array.from({ length: count }), 100, async () => {
    try {
      return await LineClient.connect(port, "127.0.0.1", from);
    } catch {
      return null;
    }
  })).filter((c): c is LineClient => c !== null);
  await waitUntil(() => clients.filter((c) => !c.closed).length <= kept, { timeoutMs: 300 })
    .catch(() => {}); // the caller asserts on what is left
  return clients;
}

/**
 * Waits until the server (reporting every 50 ms) counts no open connection, in a snapshot taken
 * after the connections were counted in (the first ones may predate them: all zeros).
 */
async function noneOpen(server: TestServer): Promise<void> {
  await waitUntil(async () => {
    const now = await totals(server.admin);
    return (now.connectionsAccepted ?? 0) > 0 && now.connectionsActive === 0;
  }, {
    what: "every connection counted closed",
  });
}

function refusals(server: TestServer): Record<string, number> {
  const match = /refused and closed: (\{.*\})/.exec(server.output());
  assert.ok(match, `no refusal summary in:\n${server.output()}`);
  return JSON.parse(match[1]!);
}

test(`[${UNDER_TEST}] connection flood and slowloris: the attacker is held at its cap, timeouts close the rest, everyone else is served`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--max-connections-per-address",
    "50",
    "--first-message-timeout",
    "1500ms",
    "--idle-timeout",
    "2500ms",
  ]);
  try {
    const attacker = await openMany(server.port, "127.0.0.2", 1500, 50);
    const held = attacker.filter((c) => !c.closed);
    assert.ok(held.length <= 50, `attacker holds ${held.length} connections, over its cap of 50`);
    assert.ok(held.length >= 45, `the cap admitted only ${held.length}`);
    // Slowloris: a line that never ends, one byte at a time.
    const slow = await openMany(server.port, "127.0.0.3", 5);
    const drip = setInterval(() => slow.forEach((c) => c.send("x")), 400);
    // Meanwhile, clients from other addresses (127.0.100.x) are all served.
    const served = await inBatches(Array.from({ length: 300 }), 20, () => oneRequest(server.port));
    assert.equal(served.filter((n) => n === null).length, 0, "a legitimate client was refused");
    // The attacker's silent connections hit the first-message timeout; the slowloris the idle one.
    await waitUntil(() => held.every((c) => c.closed) && slow.every((c) => c.closed), {
      timeoutMs: 3500,
    }).catch(() => {}); // asserted below
    clearInterval(drip);
    assert.equal(
      held.filter((c) => !c.closed).length,
      0,
      "silent connections outlived the timeout",
    );
    assert.equal(slow.filter((c) => !c.closed).length, 0, "slowloris outlived the idle timeout");
    attacker.forEach((c) => c.close());
    slow.forEach((c) => c.close());
  } finally {
    assert.equal(await server.stop(), 0);
  }
  const counted = refusals(server);
  assert.ok(counted.rejectedAddressCap! >= 1400, `cap refusals: ${JSON.stringify(counted)}`);
  assert.ok(counted.closedFirstMessageTimeout! >= 45, JSON.stringify(counted));
  assert.equal(counted.closedUnfinishedLine, 5, JSON.stringify(counted));
});

test(`[${UNDER_TEST}] rate limit: an address connecting at 2,000/s is cut to its rate, another is untouched`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--connection-rate",
    "100",
    "--connection-burst",
    "20",
  ]);
  let fast: (number | null)[] = [];
  let seconds = 0;
  try {
    const started = Date.now();
    const flood = (async () => {
      // 2,000 attempts in batches of 40 every 20 ms: about 2,000 per second.
      for (let batch = 0; batch < 50; batch++) {
        const round = Promise.all(
          Array.from({ length: 40 }, () => oneRequest(server.port, "127.0.0.4", 2000)),
        );
        await sleep(20);
        fast = fast.concat(await round);
      }
      seconds = (Date.now() - started) / 1000;
    })();
    // The other address stays under the rate itself: about 40 connections a second.
    const calm: (number | null)[] = [];
    for (let i = 0; i < 30; i++) {
      calm.push(await oneRequest(server.port, "127.0.0.5"));
      await sleep(25);
    }
    await flood;
    assert.equal(calm.filter((n) => n === null).length, 0, "the other address was limited");
  } finally {
    await server.stop();
  }
  const admitted = fast.filter((n) => n !== null).length;
  const allowed = 20 + 100 * seconds;
  assert.ok(
    admitted <= allowed * 1.1 + 5,
    `${admitted} admitted in ${seconds.toFixed(2)} s; allowed ${allowed}`,
  );
  assert.ok(admitted >= 20, `${admitted} admitted: not even the burst`);
  assert.ok(refusals(server).rejectedRate! >= fast.length - admitted - 5);
});

test(`[${UNDER_TEST}] the connection cap, allow and deny lists refuse at once and count by reason`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--max-connections",
    "30",
    // Off, so that one address can reach the process cap (on by default since issue 12).
    "--max-connections-per-address",
    "0",
    "--deny",
    "127.0.0.8/32",
    "--allow",
    "127.0.0.0/29,127.0.0.8",
  ], { env: FAST_STATS });
  try {
    const held = await openMany(server.port, "127.0.0.6", 40, 30);
    assert.equal(held.filter((c) => !c.closed).length, 30, "held at the per-process cap");
    held.forEach((c) => c.close());
    await noneOpen(server);
    assert.equal(await oneRequest(server.port, "127.0.0.8"), null, "denied");
    assert.equal(await oneRequest(server.port, "127.0.0.9"), null, "not in the allow list");
    assert.notEqual(await oneRequest(server.port, "127.0.0.7"), null, "allowed");
  } finally {
    await server.stop();
  }
  const counted = refusals(server);
  assert.equal(counted.rejectedMaxConnections, 10, JSON.stringify(counted));
  assert.equal(counted.rejectedDenied, 2, JSON.stringify(counted));
});

test(`[${UNDER_TEST}] limits changed at run time (SIGHUP) apply to new connections without a restart`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-limits-"));
  const file = join(dir, "tallyho.json");
  writeFileSync(
    file,
    JSON.stringify({ framing: "line", threads: 2, "max-connections-per-address": 0 }),
  );
  const server = await startTallyho(["--config", file], { env: FAST_STATS });
  try {
    const before = await openMany(server.port, "127.0.0.10", 20);
    assert.equal(before.filter((c) => !c.closed).length, 20, "no per-address cap yet");
    writeFileSync(
      file,
      JSON.stringify({ framing: "line", threads: 2, "max-connections-per-address": 5 }),
    );
    process.kill(server.pid, "SIGHUP");
    await server.waitFor(/configuration generation 2/);
    assert.equal(await oneRequest(server.port, "127.0.0.10"), null, "over the new cap");
    assert.equal(before.filter((c) => !c.closed).length, 20, "existing connections stay");
    assert.notEqual(await oneRequest(server.port, "127.0.0.11"), null, "other addresses served");
    before.forEach((c) => c.close());
    await noneOpen(server);
    assert.notEqual(await oneRequest(server.port, "127.0.0.10"), null, "room again once closed");
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
