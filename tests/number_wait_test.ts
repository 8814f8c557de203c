/**
 * A thread that may not block (the process's main thread, which serves when a pool has one
 * thread: server/threads/inline_thread.ts) parks a connection that finds no granted number and
 * answers it once a block comes (server/numbering/number_wait_list.ts), on this runtime's real
 * listener. Blocks are granted by hand through a second view of the ledger, on the same thread, as
 * the lease keeper does; the clients are node:net sockets, which share no code with the server.
 * Each test races many connections against grants that come late and a little at a time, and
 * checks the numbers whole: none repeated, none lost (the union is exactly 1..N, so a connection
 * that waited took no position it did not use), each connection's in order.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { runtime } from "../server/adapters/mod.ts";
import type { ThreadListener } from "../server/adapters/thread_listener.ts";
import {
  defaultConfig,
  resolveConfig,
  type ServeOptions,
} from "../server/config/resolve_config.ts";
import { BLOCK_SIZE, NumberLedger } from "../server/numbering/number_ledger.ts";
import { MessageHandler } from "../server/numbering/message_handler.ts";
import { ConnectionGate, createGateBuffers } from "../server/limits/connection_gate.ts";
import { TickingClock } from "../server/common/clock.ts";
import { createStatsBuffer, Stat, statsRow } from "../server/threads/thread_stats.ts";
import { sleep, waitUntil } from "./_wait.ts";

interface Served {
  listener: ThreadListener;
  ledger: NumberLedger;
  /** The lease keeper's view of the same ledger: where the test grants. */
  keeper: NumberLedger;
  stats: Float64Array;
  starved: () => number;
  stop: () => Promise<void>;
}

async function serve(options: ServeOptions, waitMs: number): Promise<Served> {
  const config = resolveConfig(
    { host: "127.0.0.1", port: 0, threads: 1, maxConnectionsPerAddress: 0, ...options },
    defaultConfig(1),
  );
  const stats = statsRow(createStatsBuffer(1), 0);
  const clock = new TickingClock(5);
  const ledger = NumberLedger.create();
  let starved = 0;
  ledger.onStarved = () => starved++;
  const listener = await runtime.listen({
    host: "127.0.0.1",
    port: 0,
    handler: new MessageHandler(config, ledger, stats, waitMs, clock, false),
    stats,
    gate: new ConnectionGate(createGateBuffers(), config, stats),
    clock,
  });
  return {
    listener,
    ledger,
    keeper: new NumberLedger(ledger.buffer),
    stats,
    starved: () => starved,
    stop: async () => {
      await listener.shutdown(1000);
      clock.stop();
    },
  };
}

/** Sends `lines` lines in `writes` writes and reads until `lines` replies or the end. */
function client(
  port: number,
  lines: number,
  writes: number,
  halfClose = false,
): Promise<{ numbers: number[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    // With halfClose, the client sends its FIN after its lines and goes on reading.
    const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: halfClose });
    let text = "";
    const numbers: number[] = [];
    const done = (ended: boolean) => {
      socket.destroy();
      resolve({ numbers, ended });
    };
    socket.setEncoding("latin1");
    socket.on("connect", () => {
      for (let i = 0; i < writes; i++) socket.write("x\n".repeat(lines / writes));
      if (halfClose) socket.end();
    });
    socket.on("data", (chunk: string) => {
      text += chunk;
      let end: number;
      while ((end = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, end);
        text = text.slice(end + 1);
        const match = /^Hello World(\d+)$/.exec(line);
        if (match === null) {
          reject(new Error(`not a reply: ${JSON.stringify(line)}`));
          return;
        }
        numbers.push(Number(match[1]));
      }
      if (numbers.length === lines && !halfClose) done(false);
    });
    socket.on("end", () => done(true));
    socket.on("error", reject);
  });
}

/** Grants one block every `everyMs` until `blocks` are granted, from real number 1 up. */
async function grantSlowly(keeper: NumberLedger, blocks: number, everyMs: number): Promise<void> {
  for (let i = 0; i < blocks; i++) {
    await sleep(everyMs);
    keeper.grant(1 + keeper.grantedBlocks * BLOCK_SIZE, 1);
  }
}

function assertWhole(perClient: number[][], total: number): void {
  for (const numbers of perClient) {
    for (let i = 1; i < numbers.length; i++) {
      assert.ok(numbers[i]! > numbers[i - 1]!, "a connection's replies came out of order");
    }
  }
  const all = perClient.flat().sort((a, b) => a - b);
  assert.equal(all.length, total);
  for (let i = 0; i < all.length; i++) {
    if (all[i] !== i + 1) assert.fail(`numbers not exactly 1..${total}: at ${i}, ${all[i]}`);
  }
}

test(`[${runtime.runtime}] number wait: pipelined clients parked on a main thread are answered as blocks come one at a time; none repeated, lost or out of order (5 rounds)`, async () => {
  for (let round = 0; round < 5; round++) {
    const server = await serve({ framing: "line", numberBy: "message" }, 10_000);
    try {
      // 40 clients x 2,500 lines: 100,000 replies, 24.4 blocks, granted every 2-4 ms while they
      // are read, so connections park, wake, find the block taken by others and park again.
      const replies = Promise.all(
        Array.from({ length: 40 }, () => client(server.listener.port, 2500, 5)),
      );
      await waitUntil(() => server.starved() > 0, { what: "a connection waiting", everyMs: 2 });
      await grantSlowly(server.keeper, 25, 2 + (round % 3));
      const perClient = await replies;
      assert.ok(perClient.every((c) => !c.ended), "a client was closed");
      assertWhole(perClient.map((c) => c.numbers), 100_000);
      assert.equal(server.stats[Stat.closedNumbersUnavailable], 0);
    } finally {
      await server.stop();
    }
  }
});

test(`[${runtime.runtime}] number wait: connections numbered by connection wait for their one number; 600 at once, one block granted late`, async () => {
  const server = await serve({ numberBy: "connection" }, 10_000);
  try {
    const replies = Promise.all(
      Array.from({ length: 600 }, () => client(server.listener.port, 1, 1)),
    );
    await waitUntil(() => server.starved() > 0, { what: "a connection waiting", everyMs: 2 });
    await sleep(20);
    server.keeper.grant(1, 1);
    const perClient = await replies;
    assertWhole(perClient.map((c) => c.numbers), 600);
  } finally {
    await server.stop();
  }
});

test(`[${runtime.runtime}] number wait: a wait with no grant refuses (closed, counted) and takes no number; later ones are refused at once until a block comes; the next client is number 1`, async () => {
  const server = await serve({ framing: "line", numberBy: "message" }, 150);
  try {
    const refused = await Promise.all(
      Array.from({ length: 20 }, () => client(server.listener.port, 3, 1)),
    );
    assert.ok(refused.every((c) => c.ended && c.numbers.length === 0), JSON.stringify(refused));
    assert.equal(server.stats[Stat.closedNumbersUnavailable], 20);
    // The wait timed out: the next client is refused without one (its close is counted at once).
    const again = await client(server.listener.port, 1, 1);
    assert.ok(again.ended && again.numbers.length === 0);
    assert.equal(server.stats[Stat.closedNumbersUnavailable], 21);
    assert.equal(server.starved(), 1, "the keeper is told once, not once per client refused");
    assert.equal(server.ledger.taken, 0, "a refused client took a position");
    server.keeper.grant(1, 1);
    const served = await client(server.listener.port, 2, 1);
    assert.deepEqual(served.numbers, [1, 2]);
  } finally {
    await server.stop();
  }
});

test(`[${runtime.runtime}] number wait: a drain answers a connection parked when it began, then closes it`, async () => {
  const server = await serve({ framing: "line", numberBy: "message" }, 10_000);
  const reply = client(server.listener.port, 2, 1);
  await waitUntil(() => server.starved() > 0, { what: "the connection waiting", everyMs: 2 });
  const drained = server.listener.shutdown(5000);
  await sleep(20);
  server.keeper.grant(1, 1);
  const { numbers } = await reply;
  assert.deepEqual(numbers, [1, 2]);
  await drained;
  await server.stop();
});

test(`[${runtime.runtime}] number wait: a client that sends its lines and its FIN while parked is answered, then closed`, async () => {
  const server = await serve({ framing: "line", numberBy: "message" }, 10_000);
  try {
    const reply = client(server.listener.port, 2, 1, true);
    await waitUntil(() => server.starved() > 0, { what: "the connection waiting", everyMs: 2 });
    await sleep(30); // its FIN arrives while it waits
    server.keeper.grant(1, 1);
    const { numbers, ended } = await reply;
    assert.deepEqual(numbers, [1, 2]);
    assert.ok(ended, "the server closed its side after the replies");
  } finally {
    await server.stop();
  }
});

test(`[${runtime.runtime}] number wait: a connection refused while its reads were paused (its owed replies past the cap) is closed and released`, async () => {
  const server = await serve(
    { framing: "line", numberBy: "message", maxPendingReplyBytes: 4096 },
    200,
  );
  try {
    const refused = await client(server.listener.port, 20_000, 1);
    assert.ok(refused.ended && refused.numbers.length === 0);
    assert.equal(server.stats[Stat.closedNumbersUnavailable], 1);
    await waitUntil(() => server.stats[Stat.connectionsActive] === 0, {
      what: () => `the connection closed (${server.stats[Stat.connectionsActive]} open)`,
      timeoutMs: 5000,
    });
  } finally {
    await server.stop();
  }
});

test(`[${runtime.runtime}] number wait: the idle sweep leaves a parked connection be (its wait is the server's); answered when the block comes`, async () => {
  const server = await serve({ framing: "line", numberBy: "message", idleTimeoutMs: 200 }, 10_000);
  try {
    const reply = client(server.listener.port, 2, 1);
    await waitUntil(() => server.starved() > 0, { what: "the connection waiting", everyMs: 2 });
    // Past the idle timeout, with sweeps every 250 ms: the rule it must not apply here.
    await sleep(800);
    server.keeper.grant(1, 1);
    const { numbers } = await reply;
    assert.deepEqual(numbers, [1, 2]);
    assert.equal(server.stats[Stat.closedIdleTimeout], 0);
  } finally {
    await server.stop();
  }
});

test(`[${runtime.runtime}] number wait: a parked connection cut at the drain's deadline takes no number when the block comes`, async () => {
  const server = await serve({ framing: "line", numberBy: "message" }, 10_000);
  const reply = client(server.listener.port, 2, 1);
  await waitUntil(() => server.starved() > 0, { what: "the connection waiting", everyMs: 2 });
  await server.listener.shutdown(100);
  // Cut with a reset (Bun) or a close (Deno): either way no reply.
  const cut = await reply.catch((error: Error) => ({ numbers: [], ended: true, error }));
  assert.ok(cut.ended && cut.numbers.length === 0, JSON.stringify(cut));
  server.keeper.grant(1, 1);
  await sleep(50); // the wait list looks every 1 ms; nothing must happen
  assert.equal(server.ledger.taken, 0, "a cut connection took numbers");
  assert.equal(server.stats[Stat.replies], 0);
  await server.stop();
});
