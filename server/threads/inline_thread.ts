/**
 * A serving thread run on the process's own main thread, spoken to like a `Worker`: the pool
 * (thread_pool.ts) starts thread 0 this way when it starts with one thread, which saves the
 * worker thread and the second copy of the modules it loads (docs/tuning.md, "Memory").
 *
 * Messages go both ways through `queueMicrotask`, so each side sees the other's messages
 * later and in order, as with a worker, never inside its own call. What a worker's death would
 * be is the process's here: an error that escapes the thread's message handler is thrown again
 * as an uncaught error, and Bun and Deno end the process on it (exit 1); the supervisor then
 * starts a new serving process, as it does for one killed.
 *
 * @module
 */

import type { RuntimeAdapter } from "../adapters/mod.ts";
import { serveThread, type ThreadChannel } from "./serve_thread.ts";
import type { FromWorker, ToWorker } from "./_thread_messages.ts";

/** The slice of `Worker` the pool uses, which {@linkcode InlineThread} provides too. */
export interface ThreadPort {
  onmessage: ((event: MessageEvent<FromWorker>) => void) | null;
  onerror: ((event: ErrorEvent) => void) | null;
  postMessage(message: ToWorker): void;
  terminate(): void;
}

/** One serving thread on the calling thread, behind the worker-shaped {@linkcode ThreadPort}. */
export class InlineThread implements ThreadPort {
  onmessage: ((event: MessageEvent<FromWorker>) => void) | null = null;
  /** Never called: an error in the thread ends the process (see the module's comment). */
  onerror: ((event: ErrorEvent) => void) | null = null;
  readonly #inside: ThreadChannel;
  readonly #stop: () => void;
  #terminated = false;

  /** @param runtime The runtime's adapter, whose listener the thread serves with. */
  constructor(runtime: RuntimeAdapter) {
    this.#inside = {
      onmessage: null,
      postMessage: (message) =>
        queueMicrotask(() => {
          if (!this.#terminated) this.onmessage?.(new MessageEvent("message", { data: message }));
        }),
    };
    this.#stop = serveThread(this.#inside, runtime, false);
  }

  /** Hands the thread a message, as `Worker.postMessage` does (the same object, not a copy). */
  postMessage(message: ToWorker): void {
    queueMicrotask(() => {
      if (this.#terminated) return;
      Promise.resolve(this.#inside.onmessage?.({ data: message })).catch((error) =>
        queueMicrotask(() => {
          throw error;
        })
      );
    });
  }

  /** Stops the thread's timers; the pool drains its listener first. */
  terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#stop();
  }
}
