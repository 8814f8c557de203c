/**
 * A deliberate stall in the data path, for tests only: proof that the event-loop delay
 * measurement (loop_delay.ts) sees a thread that blocks.
 *
 * The lag test must fail when serving blocks, and the only honest way to show that is to make
 * the real data path block. This is read from the environment, not from the configuration, on
 * purpose: it is no setting an operator should find, in `--help`, the config file or the admin
 * API, and it costs nothing when unset because the handler is wrapped only when it is set (the
 * hot path has no branch for it). The name says what it does to anyone who finds it in a
 * process's environment.
 *
 * @module
 */

import process from "node:process";
import { monotonicNow } from "../common/clock.ts";
import type { MessageHandler } from "../numbering/message_handler.ts";

/** The variable: busy-wait this many ms on every read a worker thread handles. */
export const PLANTED_BLOCK_ENV = "TALLYHO_TEST_ONLY_BLOCK_MS_PER_READ";

/**
 * Wraps `handler.handle` in a busy wait when {@linkcode PLANTED_BLOCK_ENV} is set to a positive
 * number; does nothing otherwise.
 *
 * @param handler The thread's handler.
 * @returns The ms each read now blocks for (0: untouched).
 */
export function plantBlock(handler: MessageHandler): number {
  const blockMs = Number(process.env[PLANTED_BLOCK_ENV] ?? 0);
  if (!(blockMs > 0)) return 0;
  const handle = handler.handle.bind(handler);
  handler.handle = (connection, chunk) => {
    const until = monotonicNow() + blockMs;
    while (monotonicNow() < until) {
      // Blocking the loop is the point.
    }
    return handle(connection, chunk);
  };
  return blockMs;
}
