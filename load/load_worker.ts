/**
 * Entry point of every load thread: runs a {@linkcode LoadEngine} on its share of the plan and
 * posts the figures back.
 *
 * @module
 */

import { LoadEngine } from "./load_engine.ts";
import { loadStatsRow } from "./load_stats.ts";
import { chooseTransport } from "./transports/mod.ts";
import { RUNTIME } from "../server/adapters/mod.ts";
import type { FromLoadWorker, ToLoadWorker } from "./_load_messages.ts";

// `self` in a worker on both runtimes; declared narrowly so this file needs no DOM or worker lib.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ToLoadWorker>) => void) | null;
  postMessage(message: FromLoadWorker): void;
};

let engine: LoadEngine | null = null;

scope.onmessage = async (event) => {
  const message = event.data;
  if (message.type === "stop") {
    engine?.stop("signal");
    return;
  }
  try {
    const { plan, statsBuffer } = message;
    engine = new LoadEngine(
      plan,
      loadStatsRow(statsBuffer, plan.thread),
      chooseTransport(plan.config.source, RUNTIME),
    );
    const result = await engine.run(() => scope.postMessage({ type: "held" }));
    scope.postMessage({ type: "done", result });
  } catch (error) {
    scope.postMessage({ type: "failed", message: (error as Error).message ?? String(error) });
  }
};
