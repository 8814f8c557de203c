/**
 * Connections waiting for their process's next block of numbers on a thread that may not block:
 * the process's main thread, when it serves (server/threads/inline_thread.ts). A worker waits for
 * a block with `Atomics.wait` (NumberLedger.numberAt); the main thread cannot, since the grant it
 * waits for reaches the ledger through its own event loop (the supervisor's answer on stdin, then
 * the lease keeper), so it would wait out the whole timeout and then refuse. Here a connection
 * keeps its replies owed and is parked instead; the thread looks at the ledger every millisecond
 * while any connection is parked (a timer only then), and calls each parked connection's retry
 * once a position is granted, or once it has waited `waitMs` with none (the ledger then refuses at
 * once until the next grant, as after a worker's wait timed out).
 *
 * @module
 */

import { monotonicNow } from "../common/clock.ts";
import type { NumberLedger } from "./number_ledger.ts";

/** How often a parked connection's thread looks for a grant. */
const POLL_MS = 1;

/** One thread's parked connections, in the order they were parked. */
export class NumberWaitList {
  readonly #ledger: NumberLedger;
  readonly #waitMs: number;
  #retries: (() => void)[] = [];
  #deadlines: number[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;

  /**
   * @param ledger The thread's view of its process's ledger.
   * @param waitMs How long a connection waits with no grant before its retry is told to refuse.
   */
  constructor(ledger: NumberLedger, waitMs: number) {
    this.#ledger = ledger;
    this.#waitMs = waitMs;
  }

  /** Connections parked now. */
  get size(): number {
    return this.#retries.length;
  }

  /**
   * Parks one connection; `retry` is called once, from a timer. A connection that finds no number
   * on its retry (others took the block first) is parked again, with a wait of its own again.
   *
   * @param retry Asks the handler for the connection's replies again and sends them.
   */
  park(retry: () => void): void {
    this.#retries.push(retry);
    this.#deadlines.push(monotonicNow() + this.#waitMs);
    this.#timer ??= setTimeout(this.#check, POLL_MS);
  }

  #check = (): void => {
    this.#timer = null;
    const retries = this.#retries;
    const deadlines = this.#deadlines;
    let woken = 0;
    if (this.#ledger.available) {
      woken = retries.length;
    } else {
      // Parked in order, each with the same wait: those past their deadline are a prefix.
      const now = monotonicNow();
      while (woken < deadlines.length && deadlines[woken]! <= now) woken++;
      if (woken > 0) this.#ledger.starve();
    }
    if (woken > 0) {
      // Taken off first: a retry that parks again goes on the end of the new list.
      this.#retries = retries.slice(woken);
      this.#deadlines = deadlines.slice(woken);
      for (let i = 0; i < woken; i++) retries[i]!();
    }
    if (this.#retries.length > 0) this.#timer ??= setTimeout(this.#check, POLL_MS);
  };
}
