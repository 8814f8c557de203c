/**
 * Connections waiting for their process's next block of numbers on a thread that may not block:
 * the process's main thread, when it serves (server/threads/inline_thread.ts). A worker waits for
 * a block with `Atomics.wait` (NumberLedger.numberAt); the main thread cannot, since the grant it
 * waits for reaches the ledger through its own event loop (the supervisor's answer on stdin, then
 * the lease keeper), so it would wait out the whole timeout and then refuse. Here a connection
 * keeps its replies owed and is parked instead; the thread looks at the ledger every millisecond
 * while any connection is parked (a timer only then), and calls a parked connection's retry once
 * a position is granted, or with `expired` once it has waited `waitMs` in all (a connection parked
 * again after losing the block to others keeps its first deadline).
 *
 * A wait that ends with no block granted in the last `waitMs` tells the ledger
 * (`NumberLedger.starve`): until the next grant, new connections are refused at once, as after a
 * worker's wait timed out, so a source that is down costs each client no wait. One that ends while
 * blocks still come (taken first by workers beside this thread, whose positions were reserved
 * earlier) refuses that connection only.
 *
 * @module
 */

import { monotonicNow } from "../common/clock.ts";
import type { NumberLedger } from "./number_ledger.ts";

/** How often a parked connection's thread looks for a grant. */
const POLL_MS = 1;

/**
 * Called when a parked connection may go on: `expired` false when a position is granted (ask the
 * handler again), true when its wait is over (refuse it: `MessageHandler.refuse`).
 */
export type NumbersRetry = (expired: boolean) => void;

/** One thread's parked connections. */
export class NumberWaitList {
  readonly #ledger: NumberLedger;
  readonly #waitMs: number;
  #retries: NumbersRetry[] = [];
  #deadlines: number[] = [];
  /** The earliest deadline parked: until then, a tick with nothing granted looks at no one. */
  #earliest = Infinity;
  /** The deadline of the connection being woken: a retry that parks again keeps it. */
  #waking = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #seenGranted = -1;
  #grantSeenAt = 0;

  /**
   * @param ledger The thread's view of its process's ledger.
   * @param waitMs How long a connection waits in all before it is refused.
   */
  constructor(ledger: NumberLedger, waitMs: number) {
    this.#ledger = ledger;
    this.#waitMs = waitMs;
  }

  /** Connections parked now. */
  get size(): number {
    return this.#retries.length;
  }

  /** The deadline of a wait that begins now. */
  deadlineFromNow(): number {
    return monotonicNow() + this.#waitMs;
  }

  /**
   * Parks one connection; `retry` is called once, from a timer.
   *
   * @param retry What the connection does next.
   * @param deadline When its wait ends; by default `waitMs` from now, or, for a connection parked
   *   again from within its own retry, the deadline it had.
   */
  park(retry: NumbersRetry, deadline?: number): void {
    if (this.#seenGranted < 0) this.#seeGrants(monotonicNow());
    const at = deadline ?? (this.#waking > 0 ? this.#waking : this.deadlineFromNow());
    this.#retries.push(retry);
    this.#deadlines.push(at);
    if (at < this.#earliest) this.#earliest = at;
    this.#timer ??= setTimeout(this.#check, POLL_MS);
  }

  #seeGrants(now: number): void {
    const granted = this.#ledger.grantedBlocks;
    if (granted !== this.#seenGranted) {
      this.#seenGranted = granted;
      this.#grantSeenAt = now;
    }
  }

  #check = (): void => {
    this.#timer = null;
    const now = monotonicNow();
    const ledger = this.#ledger;
    this.#seeGrants(now);
    if (ledger.available || now >= this.#earliest) {
      const retries = this.#retries;
      const deadlines = this.#deadlines;
      // Taken off first: a connection parked meanwhile (by a retry) goes on the new list.
      this.#retries = [];
      this.#deadlines = [];
      this.#earliest = Infinity;
      const kept: number[] = [];
      for (let i = 0; i < retries.length; i++) {
        const deadline = deadlines[i]!;
        // In order: a connection that sends here may take the last position, and those after it
        // then stay parked (on Deno a retry only resumes a promise: every one is woken).
        if (ledger.available) {
          this.#waking = deadline;
          retries[i]!(false);
          this.#waking = 0;
        } else if (deadline <= now) {
          if (now - this.#grantSeenAt >= this.#waitMs) ledger.starve();
          retries[i]!(true);
        } else {
          kept.push(i);
        }
      }
      if (kept.length > 0) {
        const parkedMeanwhile = this.#retries;
        const deadlinesMeanwhile = this.#deadlines;
        this.#retries = kept.map((i) => retries[i]!).concat(parkedMeanwhile);
        this.#deadlines = kept.map((i) => deadlines[i]!).concat(deadlinesMeanwhile);
        for (const i of kept) if (deadlines[i]! < this.#earliest) this.#earliest = deadlines[i]!;
      }
    }
    if (this.#retries.length > 0) this.#timer ??= setTimeout(this.#check, POLL_MS);
  };
}
