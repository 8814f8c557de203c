/**
 * Turns the threads of a process take to open a listener: one Int32 in memory they share, 0 when
 * free, else the id of the thread that holds it (so that a thread ended while it held it can be
 * let go of by the pool that ended it). See server/adapters/_deno_listener_fd.ts for why.
 *
 * @module
 */

import { monotonicNow } from "./clock.ts";

/** The lock and the id its holder writes into it (a positive integer, unique in the process). */
export interface ListenTurns {
  lock: Int32Array;
  holder: number;
}

/**
 * Takes the turn, waiting at most `waitMs` (blocking this thread: the turns last microseconds).
 *
 * @param turns The lock and this thread's id.
 * @param waitMs The longest wait.
 * @returns Whether it was taken; false when another held it all that time.
 */
export function takeTurn({ lock, holder }: ListenTurns, waitMs: number): boolean {
  const deadline = monotonicNow() + waitMs;
  for (;;) {
    const held = Atomics.compareExchange(lock, 0, 0, holder);
    if (held === 0) return true;
    const left = deadline - monotonicNow();
    if (left <= 0) return false;
    Atomics.wait(lock, 0, held, left);
  }
}

/**
 * Gives the turn back, if `holder` holds it: after a listen, or for a thread that was ended
 * (a worker terminated inside its turn never runs its `finally`).
 *
 * @param turns The lock and the id of the thread whose turn ends.
 */
export function endTurn({ lock, holder }: ListenTurns): void {
  if (Atomics.compareExchange(lock, 0, holder, 0) === holder) Atomics.notify(lock, 0, 1);
}
