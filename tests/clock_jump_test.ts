// Every duration the server measures must come from a monotonic clock: a wall clock stepped back
// or forward (NTP, an operator, a VM resumed) must change none of them. Each test jumps `Date.now`
// in the middle of what it measures and checks the behaviour is the one without the jump.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { runtime } from "../server/adapters/mod.ts";
import { defaultConfig, resolveConfig } from "../server/config/resolve_config.ts";
import { Connection } from "../server/numbering/connection.ts";
import { LeaseKeeper } from "../server/numbering/lease_keeper.ts";
import { NumberLedger, NumbersUnavailableError } from "../server/numbering/number_ledger.ts";
import { ConnectionGate, createGateBuffers } from "../server/limits/connection_gate.ts";
import { overstayed } from "../server/limits/timeouts.ts";
import { TickingClock } from "../server/common/clock.ts";
import { MessageHandler } from "../server/numbering/message_handler.ts";
import { monotonicNow } from "../server/common/clock.ts";
import { DeathWindow } from "../server/process/death_window.ts";
import { createStatsBuffer, statsRow } from "../server/threads/thread_stats.ts";
import { HOUR_MS, jumpWallClock } from "./_wall_clock.ts";
import { sleep, waitUntil } from "./_wait.ts";

test("clock jump: the lease keeper retries on its backoff after the wall clock steps back", async () => {
  const ledger = NumberLedger.create();
  let calls = 0;
  let restore = () => {};
  const keeper = new LeaseKeeper(ledger, () => {
    calls++;
    return calls === 1 ? Promise.reject(new Error("source down")) : Promise.resolve(1);
  }, {
    checkEveryMs: 5,
    // The wall clock steps back an hour just after the failure set the retry time.
    onError: () => (restore = jumpWallClock(-HOUR_MS)),
  });
  try {
    // The first backoff is 50 ms; a keeper on the wall clock would wait an hour (and starve).
    await waitUntil(() => ledger.grantedBlocks > 0, {
      what: () => `a block granted (${calls} lease calls)`,
      timeoutMs: 2000,
      everyMs: 5,
    });
  } finally {
    keeper.stop();
    restore();
  }
});

test("clock jump: the lease keeper keeps its backoff after the wall clock steps forward", async () => {
  const ledger = NumberLedger.create();
  const calledAt: number[] = [];
  let restore = () => {};
  const keeper = new LeaseKeeper(ledger, () => {
    calledAt.push(performance.now());
    return Promise.reject(new Error("source down"));
  }, {
    checkEveryMs: 5,
    onError: () => calledAt.length === 1 && (restore = jumpWallClock(HOUR_MS)),
  });
  try {
    await waitUntil(() => calledAt.length >= 2, { what: "a retry", timeoutMs: 2000, everyMs: 5 });
    const gap = calledAt[1]! - calledAt[0]!;
    assert.ok(gap >= 45, `retried ${gap.toFixed(1)} ms after a failure; the backoff is 50 ms`);
  } finally {
    keeper.stop();
    restore();
  }
});

test("clock jump: a thread waiting for numbers waits its time, not the jump's", () => {
  for (const [jump, waitMs] of [[-3000, 100], [HOUR_MS, 200]] as const) {
    const ledger = NumberLedger.create();
    const position = ledger.reserve(1);
    // The jump lands between the wait's deadline and its first look at the clock.
    const restore = jumpWallClock(jump, 1);
    const started = performance.now();
    try {
      assert.throws(() => ledger.numberAt(position, waitMs), NumbersUnavailableError);
    } finally {
      restore();
    }
    const waited = performance.now() - started;
    assert.ok(
      waited >= waitMs - 10 && waited < waitMs + 500,
      `jump ${jump} ms: waited ${waited.toFixed(0)} ms for a ${waitMs} ms wait`,
    );
  }
});

test("clock jump: the crash-loop window forgets old deaths after the wall clock steps back", async () => {
  const window = new DeathWindow(100);
  for (let i = 0; i < 3; i++) window.record();
  const restore = jumpWallClock(-HOUR_MS);
  try {
    await sleep(150);
    assert.equal(window.record(), 1, "deaths older than the window still counted");
  } finally {
    restore();
  }
});

test("clock jump: the crash-loop window still sees a loop across a forward step", () => {
  const window = new DeathWindow(10_000);
  for (let i = 0; i < 3; i++) window.record();
  const restore = jumpWallClock(HOUR_MS);
  try {
    assert.equal(window.record(), 4, "deaths a moment ago forgotten");
  } finally {
    restore();
  }
});

const limitsConfig = resolveConfig({
  port: 0,
  threads: 1,
  processes: 1,
  idleTimeoutMs: 200,
  firstMessageTimeoutMs: 200,
  connectionRate: 10,
  connectionBurst: 1,
}, defaultConfig(1));

function gateAndClock(): { gate: ConnectionGate; clock: TickingClock } {
  const stats = statsRow(createStatsBuffer(1), 0);
  return {
    gate: new ConnectionGate(createGateBuffers(), limitsConfig, stats),
    clock: new TickingClock(5),
  };
}

test("clock jump: a forward step closes no connection as idle", async () => {
  const { gate, clock } = gateAndClock();
  const connection = new Connection();
  try {
    assert.ok(gate.admit(connection, "127.0.0.9", clock.now));
    const restore = jumpWallClock(HOUR_MS);
    try {
      await sleep(30);
      assert.equal(
        overstayed(connection, clock.now, limitsConfig),
        -1,
        "closed 30 ms after opening",
      );
    } finally {
      restore();
    }
  } finally {
    clock.stop();
  }
});

test("clock jump: a backward step leaves the timeouts working", async () => {
  const { gate, clock } = gateAndClock();
  const connection = new Connection();
  try {
    assert.ok(gate.admit(connection, "127.0.0.10", clock.now));
    const restore = jumpWallClock(-HOUR_MS);
    try {
      await sleep(300);
      assert.notEqual(overstayed(connection, clock.now, limitsConfig), -1, "silent 300 ms, kept");
    } finally {
      restore();
    }
  } finally {
    clock.stop();
  }
});

test("clock jump: the rate limiter refills across a backward step and not across a forward one", async () => {
  for (const jump of [-HOUR_MS, HOUR_MS]) {
    const { gate, clock } = gateAndClock();
    const address = jump < 0 ? "127.0.0.11" : "127.0.0.12";
    try {
      assert.ok(gate.admit(new Connection(), address, clock.now));
      assert.ok(!gate.admit(new Connection(), address, clock.now), "a burst of 1");
      const restore = jumpWallClock(jump);
      try {
        if (jump > 0) {
          await sleep(20); // a tick, far less than the 100 ms a token takes
          assert.ok(!gate.admit(new Connection(), address, clock.now), "refilled by the step");
        } else {
          await sleep(160); // 10 per second: a token is back after 100 ms
          assert.ok(gate.admit(new Connection(), address, clock.now), "locked out by the step");
        }
      } finally {
        restore();
      }
    } finally {
      clock.stop();
    }
  }
});

test("clock jump: a drain lasts its timeout whichever way the wall clock steps", async () => {
  const config = resolveConfig({ host: "127.0.0.1", port: 0, threads: 1 }, defaultConfig(1));
  for (const jump of [-HOUR_MS, HOUR_MS]) {
    const stats = statsRow(createStatsBuffer(1), 0);
    const clock = new TickingClock(5);
    const listener = await runtime.listen({
      host: "127.0.0.1",
      port: 0,
      handler: new MessageHandler(config, NumberLedger.create(), stats, 0, clock),
      stats,
      gate: new ConnectionGate(createGateBuffers(), config, stats),
      clock,
    });
    // A client that never closes its side: the drain must cut it at the timeout.
    const client: Socket = connect({ host: "127.0.0.1", port: listener.port, allowHalfOpen: true });
    client.on("error", () => {});
    await new Promise((resolve) => client.once("connect", resolve));
    await sleep(50);
    const started = performance.now();
    const drained = listener.shutdown(300);
    const restore = jumpWallClock(jump);
    let took = Infinity;
    try {
      took = await Promise.race([
        drained.then(() => performance.now() - started),
        sleep(2000).then(() => Infinity),
      ]);
    } finally {
      restore();
      await drained;
      client.destroy();
      clock.stop();
    }
    assert.ok(took >= 280 && took < 1500, `jump ${jump} ms: a 300 ms drain took ${took} ms`);
  }
});

test("clock: a worker started later reads the same monotonic clock as its main thread", async () => {
  // Thread clocks start at each thread's start; times in the address table cross threads, so a
  // worker (re)started later must align, or its refills and expiries would be off by its age.
  const worker = new Worker(new URL("./_clock_worker.ts", import.meta.url).href, {
    type: "module",
  });
  const messages: Array<{ type: string; now?: number; roundTrip?: number }> = [];
  let wake = () => {};
  worker.onmessage = (event) => {
    if (event.data.type === "clock") worker.postMessage({ type: "clock", now: monotonicNow() });
    else messages.push(event.data);
    wake();
  };
  const next = async (type: string) => {
    while (messages[0]?.type !== type) await new Promise<void>((resolve) => (wake = resolve));
    return messages.shift()!;
  };
  try {
    await next("ready");
    await sleep(200); // the worker's own clock is now well behind the main thread's
    worker.postMessage({ type: "align" });
    const { roundTrip } = await next("aligned");
    for (let i = 0; i < 5; i++) {
      const before = monotonicNow();
      worker.postMessage({ type: "read" });
      const { now } = await next("now");
      const after = monotonicNow();
      // Within the alignment's error (half its round trip) of the interval it was read in.
      const slack = roundTrip! / 2 + 1;
      assert.ok(
        now! >= before - slack && now! <= after + slack,
        `worker read ${now!.toFixed(2)}, main ${before.toFixed(2)}..${after.toFixed(2)}`,
      );
    }
  } finally {
    worker.terminate();
  }
});
