/**
 * End to end: the real server, 4 threads, thousands of concurrent connections over real TCP.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { inBatches, LineClient, replyNumber } from "./_client.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

const CONNECTIONS = 2_000;
const MESSAGES_EACH = 3;

async function openAll(port: number, count: number): Promise<LineClient[]> {
  return await inBatches(Array.from({ length: count }), 200, () => LineClient.connect(port));
}

test(`[${UNDER_TEST}] connection numbering: 2,000 concurrent clients on 4 threads get exactly 1..2000, one N each`, async () => {
  // 2,000 from 127.0.0.1: off, so the result does not hang on the host's open-file limit (the
  // default per-address cap is a quarter of the connection cap derived from it).
  const server = await startTallyho(["--threads", "4", "--max-connections-per-address", "0"]);
  try {
    const clients = await openAll(server.port, CONNECTIONS);
    // Every connection is open before any sends, so all 2,000 are concurrent.
    const perClient = await inBatches(clients, 500, async (client) => {
      const numbers: number[] = [];
      for (let i = 0; i < MESSAGES_EACH; i++) {
        numbers.push(replyNumber(await client.request(`m${i}\n`)));
      }
      return numbers;
    });
    for (const client of clients) client.close();
    const seen = new Set<number>();
    for (const numbers of perClient) {
      assert.equal(new Set(numbers).size, 1, `one N per connection, got ${numbers}`);
      assert.ok(!seen.has(numbers[0]!), `N ${numbers[0]} given to two connections`);
      seen.add(numbers[0]!);
    }
    assert.equal(seen.size, CONNECTIONS);
    for (let n = 1; n <= CONNECTIONS; n++) assert.ok(seen.has(n), `gap: ${n} missing`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
  // The shutdown line reports per-thread accepted counts: the kernel spread the load.
  const spread = /connections per thread: \[([\d, ]+)\]/.exec(server.output());
  assert.ok(spread, `per-thread counts missing from:\n${server.output()}`);
  const counts = spread[1]!.split(",").map(Number);
  assert.equal(counts.length, 4);
  assert.equal(counts.reduce((a, b) => a + b, 0), CONNECTIONS);
  assert.ok(counts.filter((c) => c > 0).length >= 2, `all connections on one thread: ${counts}`);
});

test(`[${UNDER_TEST}] message numbering: every reply on 2,000 connections carries a distinct N`, async () => {
  const server = await startTallyho([
    "--threads",
    "4",
    "--number-by",
    "message",
    "--framing",
    "line",
    "--max-connections-per-address",
    "0",
  ]);
  try {
    const clients = await openAll(server.port, CONNECTIONS);
    const perClient = await inBatches(clients, 500, async (client) => {
      // Two pipelined lines then one more: a read may carry several messages.
      client.send("a\nb\n");
      await client.lines(2);
      const lines = await client.lines(2);
      lines.push(await client.request("c\n"));
      return lines.map((line) => replyNumber(line));
    });
    for (const client of clients) client.close();
    const all = perClient.flat();
    assert.equal(all.length, CONNECTIONS * 3);
    assert.equal(new Set(all).size, all.length, "a number was repeated");
    for (const numbers of perClient) {
      assert.ok(numbers[0]! < numbers[1]! && numbers[1]! < numbers[2]!, `in order: ${numbers}`);
    }
  } finally {
    await server.stop();
  }
});

for (const first of [2 ** 31 - 3, 2 ** 32 - 3]) {
  test(`[${UNDER_TEST}] counter stays exact and unique across ${first + 3} (--first-number ${first})`, async () => {
    const server = await startTallyho([
      "--threads",
      "2",
      "--number-by",
      "message",
      "--framing",
      "line",
      "--first-number",
      String(first),
    ]);
    try {
      const clients = await openAll(server.port, 4);
      const got = await Promise.all(clients.map(async (client) => {
        client.send("x\n".repeat(5));
        return (await client.lines(5)).map((line) => replyNumber(line));
      }));
      for (const client of clients) client.close();
      const all = got.flat().sort((a, b) => a - b);
      assert.deepEqual(all, Array.from({ length: 20 }, (_, i) => first + i));
    } finally {
      await server.stop();
    }
  });
}
