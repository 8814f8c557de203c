/**
 * One client process of the hold workload: runs a {@linkcode LoadEngine} on the main thread
 * (a worker thread would cost memory and buy nothing: the open-file limit, not the core, is what
 * one process runs out of), reports its figures to the parent twice a second, asks every held
 * connection again when told, and reports its checked replies and seen numbers without closing
 * anything: the exit closes its sockets faster than closing them one by one.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import process from "node:process";
import { readJsonLines } from "../server/common/json_lines.ts";
import { LoadEngine } from "./load_engine.ts";
import { resolveLoadOptions } from "./load_options.ts";
import { chooseTransport } from "./transports/mod.ts";
import { RUNTIME } from "../server/adapters/mod.ts";
import type { FromHoldChild, HoldChildPlan, ToHoldChild, WireResult } from "./_hold_messages.ts";

function send(message: FromHoldChild): void {
  process.stdout.write(JSON.stringify(message) + "\n");
}

/**
 * Runs one client process until the parent says exit (or its stdin closes).
 *
 * @param args One argument: the {@linkcode HoldChildPlan} as JSON.
 * @returns Never, in practice: the process exits when the parent says so.
 */
export function runHoldChild(args: string[]): Promise<number> {
  const plan = JSON.parse(args[0] ?? "null") as HoldChildPlan;
  const config = resolveLoadOptions({
    workload: "hold",
    host: plan.host,
    port: plan.port,
    connections: plan.connections,
    threads: 1,
    durationMs: 3_600_000,
    timeoutMs: plan.timeoutMs,
    message: new Uint8Array(Buffer.from(plan.message, "base64")),
    greeting: plan.greeting,
    source: plan.hold.sources[0] ?? null,
  }, 1);
  const stats = new Float64Array(6);
  const engine = new LoadEngine(
    { config, thread: plan.index, connections: plan.connections, count: null, hold: plan.hold },
    stats,
    chooseTransport(config.source, RUNTIME),
  );
  const ticker = setInterval(() => {
    send({
      type: "stats",
      open: stats[4]!,
      held: stats[5]!,
      connects: stats[2]!,
      errors: engine.errorCounts(),
    });
  }, 500);
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    const result = engine.snapshot();
    const pages: Record<string, string> = {};
    for (const [index, page] of result.pages) {
      pages[index] = Buffer.from(page.buffer, page.byteOffset, page.byteLength).toString("base64");
    }
    const again = engine.again;
    const wire: WireResult = {
      transport: result.transport,
      requests: result.requests,
      replies: result.replies,
      connects: result.connects,
      errors: result.errors,
      histogram: { ...result.histogram, counts: Array.from(result.histogram.counts) },
      check: result.check,
      pages,
      activeMs: result.activeMs,
      asked: again.asked,
      answered: again.answered,
    };
    send({ type: "result", result: wire });
  };
  engine.run(() => send({ type: "held" })).catch((error) =>
    send({ type: "failed", message: String(error) })
  );
  return new Promise(() => {
    readJsonLines<ToHoldChild>(process.stdin, {
      onMessage: (message) => {
        if (message.type === "ask") {
          engine.askAgain(report);
          // Every ask ends answered or lost (a timeout closes it), so report() comes; this is
          // the guard against a bug: no progress for a reply timeout and a second ends the wait.
          let last = -1;
          const guard = setInterval(() => {
            const again = engine.again;
            const progress = again.answered + again.lost;
            if (reported) clearInterval(guard);
            else if (progress === last) {
              clearInterval(guard);
              report();
            } else last = progress;
          }, plan.timeoutMs + 1000);
        } else {
          clearInterval(ticker);
          process.exit(0);
        }
      },
      onEnd: () => process.exit(0),
    });
  });
}
