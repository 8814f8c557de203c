/**
 * A legitimate client for the SYN flood test, run as its own process inside the flooded
 * namespace (`ip netns exec NAME <runtime> tests/_syn_flood_client.ts ...`): it makes
 * connect-request-reply rounds against 127.0.0.1 and prints one JSON line with the results.
 *
 * Usage: _syn_flood_client.ts PORT ROUNDS MIN_MS CONCURRENCY ROUND_TIMEOUT_MS DEADLINE_MS
 * It keeps CONCURRENCY rounds going until it has started ROUNDS and MIN_MS have passed, and starts
 * none after DEADLINE_MS. A round is ok when it connects, sends `hi\n` and reads a
 * `Hello World<N>` line within ROUND_TIMEOUT_MS.
 *
 * @module
 */

import { connect } from "node:net";
import process from "node:process";

interface Round {
  ok: boolean;
  connectMs: number | null;
  error: string | null;
}

const [port, rounds, minMs, concurrency, roundTimeoutMs, deadlineMs] = process.argv.slice(2).map(
  Number,
);
if (![port, rounds, minMs, concurrency, roundTimeoutMs, deadlineMs].every(Number.isInteger)) {
  console.error(
    `usage: _syn_flood_client.ts PORT ROUNDS MIN_MS CONCURRENCY ROUND_TIMEOUT_MS DEADLINE_MS: got ${
      process.argv.slice(2).join(" ")
    }`,
  );
  process.exit(2);
}

function round(): Promise<Round> {
  return new Promise((resolve) => {
    const started = performance.now();
    let connectMs: number | null = null;
    let reply = "";
    let done = false;
    const socket = connect({ host: "127.0.0.1", port: port! });
    const finish = (error: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: error === null, connectMs, error });
    };
    const timer = setTimeout(
      () => finish(connectMs === null ? "connect timeout" : "reply timeout"),
      roundTimeoutMs,
    );
    socket.once("connect", () => {
      connectMs = performance.now() - started;
      socket.write("hi\n");
    });
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\n")) {
        finish(/^Hello World[1-9]\d*\n$/.test(reply) ? null : `bad reply ${JSON.stringify(reply)}`);
      }
    });
    socket.once("error", (error: Error & { code?: string }) => finish(error.code ?? error.message));
    socket.once("close", () => finish("closed before a reply"));
  });
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)]! * 100) / 100;
}

const began = performance.now();
const results: Round[] = [];
let next = 0;
await Promise.all(
  Array.from({ length: concurrency! }, async () => {
    for (;;) {
      const elapsed = performance.now() - began;
      if (elapsed >= deadlineMs! || (next >= rounds! && elapsed >= minMs!)) break;
      next++;
      results.push(await round());
    }
  }),
);
const connects = results.filter((r) => r.ok).map((r) => r.connectMs!).sort((a, b) => a - b);
const errors: Record<string, number> = {};
for (const r of results) if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
console.log(JSON.stringify({
  attempted: results.length,
  ok: connects.length,
  failed: results.length - connects.length,
  connectMs: {
    p50: percentile(connects, 50),
    p99: percentile(connects, 99),
    max: percentile(connects, 100),
  },
  errors,
  elapsedMs: Math.round(performance.now() - began),
}));
process.exit(0);
