/**
 * End to end: "never blocks", measured. Under load, while the things most likely to block a
 * serving thread happen (a lease written durably to the state file, a Redis stall, a
 * configuration change to every thread, a slow reader holding megabytes, a burst of 10,000
 * connects), no serving thread's event loop may run a timer later than {@linkcode BOUND_MS}.
 * And the same check must fail when a blocking call is planted in the data path, or it proves
 * nothing.
 *
 * The bound, 500 ms. A stall a person at the other end notices is a few hundred ms, so the bound
 * must not be far above that; the threads' own work is never more than a few ms at a time (one
 * read's replies, one 250 ms sweep over the connections, one accept), but this test runs on a
 * 2-core machine shared with other test runs, where the scheduler alone keeps a runnable thread
 * off a core for tens of ms and a garbage collection adds more. Measured here (printed by every
 * run), on Bun, Deno and the compiled binary with the load average between 3 and 5.4 on the 2
 * cores: per-thread maxima of 1.1 to 110 ms in 16 runs, and once 278 ms. 500 ms is nearly twice
 * that outlier and still far below a planted block of 1,000 ms per read; with only 5 ms per read
 * planted (`TALLYHO_TEST_ONLY_BLOCK_MS_PER_READ=5` in the test's environment), the first test
 * itself fails: threads' maxima of 0.57 to 0.92 s on Deno and up to 0.91 s on Bun, as reads
 * queue up behind each other. It is one of the
 * histogram's bounds, so the check is exact: no sample in any bucket above it, since each thread
 * started.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { PLANTED_BLOCK_ENV } from "../server/threads/_planted_block.ts";
import type { ThreadFigures } from "../server/threads/thread_stats.ts";
import { inBatches, LineClient, oneRequest } from "./_client.ts";
import { skipRedis, startRedis } from "./_redis.ts";
import { FAST_STATS, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

const BOUND_MS = 500;
const MiB = 1024 * 1024;

interface ThreadDelay {
  process: number;
  thread: number;
  /** Samples above the bound since the thread started. */
  over: number;
  samples: number;
  /** The largest `loopDelayMaxMs` seen while polling. */
  maxMs: number;
  /** The largest `loopDelayP99Ms` seen while polling. */
  p99Ms: number;
}

type StatsBody = { processes: { index: number; threads: ThreadFigures[] }[] };

/**
 * Polls /v1/stats every 250 ms and keeps every thread's worst figures. The server reports every
 * 50 ms (FAST_STATS), each thread takes a sample every 50 ms.
 */
function watchDelays(server: TestServer) {
  const seen = new Map<string, ThreadDelay>();
  let running = true;
  const read = async () => {
    const body = await (await server.admin("/v1/stats")).json() as StatsBody;
    for (const process of body.processes) {
      process.threads.forEach((figures, thread) => {
        const key = `${process.index}/${thread}`;
        const entry = seen.get(key) ??
          { process: process.index, thread, over: 0, samples: 0, maxMs: 0, p99Ms: 0 };
        entry.over = figures.loopDelaySamples - figures.loopDelayLe500ms;
        entry.samples = figures.loopDelaySamples;
        entry.maxMs = Math.max(entry.maxMs, figures.loopDelayMaxMs);
        entry.p99Ms = Math.max(entry.p99Ms, figures.loopDelayP99Ms);
        seen.set(key, entry);
      });
    }
  };
  const loop = (async () => {
    while (running) {
      await read().catch(() => {});
      await sleep(250);
    }
  })();
  return {
    /**
     * Waits until every thread has reported two more samples than it had (so whatever happened
     * before is in its figures), and returns every thread's figures.
     */
    async stop(): Promise<ThreadDelay[]> {
      await read();
      const had = new Map([...seen].map(([key, entry]) => [key, entry.samples]));
      await waitUntil(async () => {
        await read();
        return [...seen].every(([key, entry]) => entry.samples >= (had.get(key) ?? 0) + 2);
      }, { what: "two more samples from every thread", timeoutMs: 10_000, everyMs: 50 });
      running = false;
      await loop;
      return [...seen.values()];
    },
  };
}

function report(label: string, delays: ThreadDelay[]): string {
  return `${label} [${UNDER_TEST}] event-loop delay per thread (bound ${BOUND_MS} ms): ` +
    delays.map((d) =>
      `p${d.process}t${d.thread} max ${d.maxMs.toFixed(1)} ms, p99 ${d.p99Ms.toFixed(1)} ms, ` +
      `${d.over}/${d.samples} over`
    ).join("; ");
}

/** Writes up to `total` bytes of lines without reading a reply, for at most `ms`. */
async function slowReader(port: number, total: number, ms: number) {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  socket.pause();
  await new Promise((resolve) => socket.once("connect", resolve));
  const block = Buffer.from("a\n".repeat(MiB / 2));
  const deadline = Date.now() + ms;
  let sent = 0;
  while (sent < total && Date.now() < deadline && !socket.destroyed) {
    sent += block.length;
    if (!socket.write(block)) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        socket.once("drain", () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
  }
  return socket;
}

/**
 * `clients` connections asking `hi\n` again and again (line framing; tests/_load.ts sends no line
 * end), each reconnecting after 200 requests, for at most `ms`.
 */
function lineLoad(port: number, clients: number, ms: number) {
  const deadline = Date.now() + ms;
  let replies = 0;
  let stopped = false;
  const going = () => !stopped && Date.now() < deadline;
  const done = Promise.all(Array.from({ length: clients }, async () => {
    while (going()) {
      const client = await LineClient.connect(port).catch(() => null);
      if (client === null) {
        await sleep(50);
        continue;
      }
      try {
        for (let i = 0; i < 200 && going(); i++) {
          await client.request("hi\n", 5000);
          replies++;
        }
      } catch {
        await sleep(100);
      } finally {
        client.close();
      }
    }
  }));
  return {
    get replies() {
      return replies;
    },
    async stop(): Promise<number> {
      stopped = true;
      await done;
      return replies;
    },
  };
}

async function changeEveryThread(server: TestServer, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const response = await server.admin("/v1/config", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ "idle-timeout": `${30 + i}s` }),
    });
    assert.equal(response.status, 200, await response.text());
  }
}

/** The blockers every server here goes through, with a load running meanwhile. */
async function driveBlockers(server: TestServer, extra: () => Promise<void>): Promise<void> {
  const load = lineLoad(server.port, 4, 40_000);
  const reader = await slowReader(server.port, 16 * MiB, 4000);
  try {
    await Promise.all([
      extra(),
      changeEveryThread(server, 5),
      // 10,000 connects: each sends a line, reads its reply, closes.
      inBatches(Array.from({ length: 10_000 }), 200, () => oneRequest(server.port)).then(
        (numbers) => {
          const answered = numbers.filter((n) => n !== null).length;
          assert.ok(answered >= 9_900, `of 10,000 connects ${answered} were answered`);
        },
      ),
    ]);
  } finally {
    reader.destroy();
    const replies = await load.stop();
    assert.ok(replies > 0, "the load got no replies");
  }
}

test(`[${UNDER_TEST}] no serving thread's loop stalls past ${BOUND_MS} ms under load, durable state-file leases, config changes, a slow reader and 10,000 connects`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-lag-"));
  const server = await startTallyho([
    "--processes",
    "2",
    "--threads",
    "2",
    "--framing",
    "line",
    "--state",
    join(dir, "numbers.state"),
  ], { env: FAST_STATS });
  try {
    const watch = watchDelays(server);
    await driveBlockers(server, async () => {});
    const delays = await watch.stop();
    console.log(report("state file", delays));
    assert.equal(delays.length, 4, "every thread reported");
    for (const d of delays) {
      assert.ok(d.samples > 50, `thread ${d.process}/${d.thread} measured: ${d.samples} samples`);
      assert.equal(d.over, 0, report("stalled past the bound:", delays));
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  `[${UNDER_TEST}] no serving thread's loop stalls past ${BOUND_MS} ms while Redis sleeps 2 s (DEBUG SLEEP) under load`,
  {
    skip: skipRedis,
  },
  async () => {
    const redis = await startRedis({ debug: true });
    try {
      const server = await startTallyho([
        "--processes",
        "2",
        "--threads",
        "2",
        "--framing",
        "line",
        "--numbers",
        redis.url("tallyho:lag"),
      ], { env: FAST_STATS });
      try {
        const watch = watchDelays(server);
        const load = lineLoad(server.port, 4, 20_000);
        await waitUntil(() => load.replies > 0, { what: "the load's first replies" });
        // Redis answers nothing for 2 s: leases wait in the supervisor, never in a serving thread.
        const before = load.replies;
        await redis.command("DEBUG", "SLEEP", "2");
        assert.ok(load.replies > before, "nothing was served while Redis slept");
        await changeEveryThread(server, 2);
        const changed = load.replies;
        await waitUntil(() => load.replies > changed, { what: "replies after the changes" });
        assert.ok(await load.stop() > 0, "the load got no replies");
        const delays = await watch.stop();
        console.log(report("redis stall", delays));
        for (const d of delays) assert.equal(d.over, 0, report("stalled past the bound:", delays));
      } finally {
        await server.stop();
      }
    } finally {
      await redis.close();
    }
  },
);

test(`[${UNDER_TEST}] the same check sees a blocking call planted in the data path (${PLANTED_BLOCK_ENV})`, async () => {
  const server = await startTallyho(["--processes", "1", "--threads", "2", "--framing", "line"], {
    env: { ...FAST_STATS, [PLANTED_BLOCK_ENV]: "1000" },
  });
  try {
    const watch = watchDelays(server);
    // A handful of requests: each read blocks its thread 1 s.
    await inBatches(Array.from({ length: 8 }), 4, async () => {
      const client = await LineClient.connect(server.port);
      try {
        await client.request("hi\n", 10_000);
      } finally {
        client.close();
      }
    });
    const delays = await watch.stop();
    console.log(report("planted block", delays));
    const stalled = delays.filter((d) => d.over > 0);
    assert.ok(stalled.length > 0, report("the planted block went unseen:", delays));
    for (const d of stalled) assert.ok(d.maxMs >= 900, report("max below the block:", delays));
  } finally {
    await server.stop();
  }
});
