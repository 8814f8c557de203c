/**
 * End to end: many clients that send lines and never read, with the longest greeting, so that
 * every byte in is about a thousand bytes of replies. Each connection's backlog must stay within
 * `--max-pending-reply-bytes` whatever the greeting and input, the memory must come back when they
 * go, everyone else must be served meanwhile, and a client that reads late must still get every
 * reply, in order.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import process from "node:process";
import { test } from "node:test";
import { LineClient, replyNumber } from "./_client.ts";
import { FAST_STATS, readRss, startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

const MiB = 1024 * 1024;
const CLIENTS = 64;
/** What each client tries to send: 4 Mi lines, about 4 GiB of replies each with the greeting. */
const PER_CLIENT = 4 * MiB;
const FLOOD_SECONDS = 8;
/** The longest greeting allowed (1024 bytes): a reply is 1,025 to 1,041 bytes. */
const GREETING = "G".repeat(1024);

/** One thread pool of `threads`, a number per line, each reply after the 1 KiB greeting. */
function perMessage(threads: number): string[] {
  return [
    "--threads",
    String(threads),
    "--framing",
    "line",
    "--number-by",
    "message",
    "--greeting",
    GREETING,
  ];
}
/** The default `--max-pending-reply-bytes`. */
const CAP = MiB;
/**
 * The bound on the server tree's growth while they flood: each connection may hold up to its cap
 * of replies plus its 64 KiB read buffer, and the runtimes get 48 MiB for their own heaps, socket
 * objects and collector slack (the runtime baseline moves by about that much on a quiet server
 * serving a few requests). 64 x (1 MiB + 64 KiB) + 48 MiB = 116 MiB.
 */
const GROWTH_BOUND = CLIENTS * (CAP + 64 * 1024) + 48 * MiB;
/**
 * How near its start the tree's RSS must come back once they have gone. Freed buffers are
 * returned to the system only when the collector runs and the allocator gives pages back, which
 * neither does at once nor completely (allocators keep some arenas), so a few tens of MiB are
 * allowed; the defect this guards against kept hundreds of MiB for good.
 */
const RETURN_TOLERANCE = 32 * MiB;

function treeRss(server: TestServer): number {
  let total = 0;
  for (const pid of [server.pid, ...server.childPids().values()]) {
    try {
      total += readRss(pid);
    } catch {
      // Gone.
    }
  }
  return total;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone.
  }
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** A client that writes up to `total` bytes of `\n` without ever reading, until `deadline`. */
async function floodWithoutReading(port: number, total: number, deadline: number) {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  socket.pause(); // never read a reply
  await new Promise((resolve) => {
    socket.once("connect", resolve);
    socket.once("close", resolve); // refused: the server was stopped for passing the bound
  });
  const block = Buffer.alloc(64 * 1024, "\n");
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

test(`[${UNDER_TEST}] ${CLIENTS} clients sending newlines that never read, 1 KiB greeting: RSS stays bounded and comes back, others served`, async () => {
  const server = await startTallyho([...perMessage(2), "--idle-timeout", "120s"]);
  const sockets: Socket[] = [];
  let bystander: LineClient | null = null;
  try {
    // Settle, then take the baseline after one request has warmed the reply path.
    const client = bystander = await LineClient.connect(server.port);
    replyNumber(await client.request("warm\n", 5000), GREETING);
    await sleep(500); // settled: the collector has had a moment after the warm-up
    const baseline = treeRss(server);
    let peak = baseline;
    let over = false;
    const deadline = Date.now() + FLOOD_SECONDS * 1000;
    const flooding = Array.from(
      { length: CLIENTS },
      () => floodWithoutReading(server.port, PER_CLIENT, deadline).then((s) => sockets.push(s)),
    );
    // Sampled often, and the flood is cut as soon as the bound is passed, so that a server that
    // does not hold back fails the test before it takes the machine's memory.
    const sampler = setInterval(() => {
      peak = Math.max(peak, treeRss(server));
      if (peak - baseline > GROWTH_BOUND && !over) {
        over = true;
        for (const socket of sockets) socket.destroy();
        for (const pid of server.childPids().values()) killQuietly(pid);
        server.stop("SIGKILL");
      }
    }, 20);
    let served = 0;
    let slowest = 0;
    try {
      while (Date.now() < deadline && !over) {
        const started = Date.now();
        const reply: string = await client.request("hi\n", 5000);
        slowest = Math.max(slowest, Date.now() - started);
        assert.ok(replyNumber(reply, GREETING) > 0, `bystander got ${reply.slice(-40)}`);
        served++;
        await sleep(200);
      }
      await Promise.all(flooding);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, treeRss(server));
    const growth = `tree RSS ${mib(baseline)} at start, peak ${mib(peak)} (growth ${
      mib(peak - baseline)
    }, bound ${mib(GROWTH_BOUND)})`;
    console.log(
      `[${UNDER_TEST}] ${growth}; bystander served ${served} times, slowest ${slowest} ms`,
    );
    assert.ok(!over && peak - baseline <= GROWTH_BOUND, growth);
    assert.ok(served >= 10, `the bystander was served only ${served} times while they flooded`);

    for (const socket of sockets) socket.destroy();
    // Back near the start once they have gone; the collector runs when it likes, so wait a while.
    let after = treeRss(server);
    await waitUntil(() => (after = treeRss(server)) - baseline <= RETURN_TOLERANCE, {
      timeoutMs: 15_000,
      everyMs: 100,
    }).catch(() => {}); // asserted below
    console.log(`[${UNDER_TEST}] tree RSS after they closed: ${mib(after)}`);
    assert.ok(
      after - baseline <= RETURN_TOLERANCE,
      `tree RSS stayed at ${mib(after)} after they closed (start ${mib(baseline)}, peak ${
        mib(peak)
      }, tolerance ${mib(RETURN_TOLERANCE)})`,
    );
    // Still serving after they went.
    assert.ok(replyNumber(await client.request("hi\n", 5000), GREETING) > 0);
  } finally {
    for (const socket of sockets) socket.destroy();
    bystander?.close();
    const code = await server.stop();
    assert.ok(code === 0 || code === "SIGKILL", `server exit ${code}:\n${server.output()}`);
  }
});

test(`[${UNDER_TEST}] a client that sends 40,000 lines before it reads gets every reply in order`, async () => {
  const LINES = 40_000; // about 40 MiB of replies: far past the cap and the kernel's buffers
  const server = await startTallyho(perMessage(1));
  const socket = connect({ port: server.port, host: "127.0.0.1" });
  try {
    socket.on("error", () => {});
    socket.pause();
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(Buffer.alloc(LINES, "\n"));
    // Let the server run into the client's closed window before it reads anything.
    await sleep(1000);
    const numbers: number[] = [];
    let rest = "";
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${numbers.length} of ${LINES} replies in 30 s`)),
        30_000,
      );
      socket.on("data", (chunk: Buffer) => {
        const lines = (rest + chunk.toString("latin1")).split("\n");
        rest = lines.pop()!;
        for (const line of lines) numbers.push(replyNumber(line, GREETING));
        if (numbers.length >= LINES) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    socket.resume();
    await done;
    assert.equal(numbers.length, LINES);
    for (let i = 1; i < numbers.length; i++) {
      if (!(numbers[i]! > numbers[i - 1]!)) {
        assert.fail(`reply ${i} has number ${numbers[i]} after ${numbers[i - 1]}`);
      }
    }
  } finally {
    socket.destroy();
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] clients that reset while their replies are held back are closed at once`, async () => {
  const server = await startTallyho(perMessage(2), { env: FAST_STATS });
  try {
    // The reset follows the lines at once: the server's first write meets it, while the
    // backlog (about 100 MiB of replies) has paused the connection's reads.
    for (let i = 0; i < 40; i++) {
      const socket = connect({ port: server.port, host: "127.0.0.1" });
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.on("error", () => {});
      socket.write(Buffer.alloc(100_000, "\n"));
      socket.resetAndDestroy();
    }
    // Children publish their figures every 50 ms here: wait for figures that count them.
    let totals = { connectionsAccepted: 0, connectionsActive: -1 };
    await waitUntil(async () => {
      totals = (await (await server.admin("/v1/stats")).json()).totals;
      return totals.connectionsAccepted > 0 && totals.connectionsActive === 0;
    }, {
      what: () => `every reset connection closed (last totals: ${JSON.stringify(totals)})`,
      timeoutMs: 4000,
    });
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] a client that sends its lines and its FIN gets every reply if it reads, and is cut at the idle timeout if it never does`, async () => {
  const LINES = 20_000; // about 20 MiB of replies: the server is still writing when the FIN comes
  const server = await startTallyho([...perMessage(1), "--idle-timeout", "1s"], {
    env: FAST_STATS,
  });
  const open = async () => {
    const socket = connect({ port: server.port, host: "127.0.0.1", allowHalfOpen: true });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    return socket;
  };
  const reader = await open();
  const stuck = await open();
  try {
    stuck.pause(); // never reads
    stuck.end(Buffer.alloc(LINES, "\n"));
    let replies = 0;
    let rest = "";
    const ended = new Promise<void>((resolve) => reader.once("end", resolve));
    reader.on("data", (chunk: Buffer) => {
      const lines = (rest + chunk.toString("latin1")).split("\n");
      rest = lines.pop()!;
      replies += lines.length;
    });
    reader.end(Buffer.alloc(LINES, "\n"));
    await ended;
    assert.equal(replies, LINES, "the replies to lines sent before the FIN");
    let totals = {
      connectionsAccepted: 0,
      connectionsActive: -1,
      closedSlowReader: 0,
      closedPeerError: 0,
    };
    await waitUntil(async () => {
      totals = (await (await server.admin("/v1/stats")).json()).totals;
      // Both counted in, then out: the first snapshots may predate both connections.
      return totals.connectionsAccepted === 2 && totals.connectionsActive === 0 && totals;
    }, {
      what: () => `the client that never reads cut (last totals: ${JSON.stringify(totals)})`,
      timeoutMs: 10_000,
    });
    assert.equal(totals.closedSlowReader, 1);
    // Counted once, by why it was cut, not again for the write the cut made fail.
    assert.equal(totals.closedPeerError, 0);
  } finally {
    reader.destroy();
    stuck.destroy();
    assert.equal(await server.stop(), 0);
  }
});
