/**
 * End to end: peers that never read. The server's memory must stay bounded and everyone else
 * must still be served.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { LineClient, replyNumber } from "./_client.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";
import { sleep } from "./_wait.ts";

const TOTAL = 200 * 1024 * 1024;
const MiB = 1024 * 1024;

/**
 * Writes up to `total` bytes of `pattern` without ever reading, for at most `seconds`, or until
 * the socket has taken nothing more for `stallMs` (the server stopped reading: held back).
 * @returns How many bytes the socket accepted.
 */
async function floodWithoutReading(
  port: number,
  pattern: string,
  total: number,
  seconds: number,
  stallMs = Infinity,
) {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  socket.pause(); // never read a reply
  await new Promise((resolve) => socket.once("connect", resolve));
  const block = Buffer.from(pattern.repeat(Math.ceil(MiB / pattern.length)).slice(0, MiB));
  const deadline = Date.now() + seconds * 1000;
  let sent = 0;
  while (sent < total && Date.now() < deadline && !socket.destroyed) {
    sent += block.length;
    if (!socket.write(block)) {
      // Wait for the kernel to take more, but never past the deadline or the stall.
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(
          () => resolve(false),
          Math.max(1, Math.min(stallMs, deadline - Date.now())),
        );
        socket.once("drain", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!drained) break;
    }
  }
  return { socket, sent: sent - socket.writableLength };
}

async function measure(framing: string, pattern: string) {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    framing,
    "--number-by",
    "message",
  ]);
  try {
    const baseline = server.rss();
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 50);
    // Until the server has taken nothing for a second (it holds the client back), or 8 s.
    const flood = floodWithoutReading(server.port, pattern, TOTAL, 8, 1000);
    // Others are served while the flood runs.
    const bystander = await LineClient.connect(server.port);
    for (let i = 0; i < 5; i++) {
      await sleep(300);
      assert.ok(replyNumber(await bystander.request("hi\n", 5000)) > 0);
    }
    const { socket, sent } = await flood;
    clearInterval(sampler);
    peak = Math.max(peak, server.rss());
    bystander.close();
    socket.destroy();
    return { baseline, peak, sent, server };
  } catch (error) {
    await server.stop("SIGKILL");
    throw error;
  }
}

test(`[${UNDER_TEST}] a client that sends 200 MB of lines and never reads is held back: bounded RSS, others served`, async () => {
  const { baseline, peak, sent, server } = await measure("line", "a\n");
  try {
    // 200 MB of 2-byte lines would be about 1.6 GB of replies: the server must stop reading.
    assert.ok(sent < TOTAL, `server kept reading: ${sent} bytes accepted`);
    assert.ok(
      peak - baseline < 96 * MiB,
      `RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB (baseline ${
        (baseline / MiB).toFixed(1)
      } MiB)`,
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] a client that sends 200 MB in chunk framing and never reads leaves RSS bounded`, async () => {
  const { baseline, peak, server } = await measure("chunk", "xyz");
  try {
    assert.ok(
      peak - baseline < 96 * MiB,
      `RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB (baseline ${
        (baseline / MiB).toFixed(1)
      } MiB)`,
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test(`[${UNDER_TEST}] a client that never reads is closed once its replies wait longer than the idle timeout`, async () => {
  const server = await startTallyho([
    "--threads",
    "2",
    "--framing",
    "line",
    "--idle-timeout",
    "1500ms",
  ]);
  try {
    const started = Date.now();
    const { socket } = await floodWithoutReading(server.port, "a\n", 64 * MiB, 2);
    // Still never reading: a write is what notices the server's reset on a paused socket.
    const closed = new Promise<boolean>((resolve) => {
      if (socket.destroyed) return resolve(true);
      socket.once("close", () => resolve(true));
      const poke = setInterval(() => socket.destroyed || socket.write("a\n"), 200);
      setTimeout(() => {
        clearInterval(poke);
        resolve(socket.destroyed);
      }, 8000);
      socket.once("close", () => clearInterval(poke));
    });
    assert.equal(await closed, true, "the server kept a client that never read");
    assert.ok(Date.now() - started < 10_000);
    const bystander = await LineClient.connect(server.port);
    assert.ok(replyNumber(await bystander.request("hi\n")) > 0);
    bystander.close();
  } finally {
    assert.equal(await server.stop(), 0);
  }
  assert.match(server.output(), /"closedSlowReader":1/);
});
