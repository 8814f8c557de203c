/**
 * A few descriptors held open on `/dev/null` so that the lease path can always open its files:
 * released just before a state-file write and taken again just after, with no `await` between,
 * so nothing else in the process (an accept loop) can take them in the meantime. The classic
 * defence against `EMFILE` starving the one job that must not stop (here: writing the high-water
 * mark before any number below it is handed out).
 *
 * @module
 */

import { closeSync, openSync } from "node:fs";

/** Descriptors a state-file write needs at once (the temporary file, then the directory) and some. */
export const DEFAULT_RESERVE = 4;

/** Descriptors held back for one job. */
export class DescriptorReserve {
  readonly #size: number;
  #held: number[] = [];

  /** @param size How many descriptors to hold. */
  constructor(size = DEFAULT_RESERVE) {
    this.#size = size;
    this.#refill();
  }

  /** Descriptors held now (fewer than the size only if the process was already out of them). */
  get held(): number {
    return this.#held.length;
  }

  /**
   * Runs `work` synchronously with the reserve's descriptors free for it, then takes them back.
   *
   * @param work Synchronous work that opens files.
   * @returns What `work` returns.
   */
  around<T>(work: () => T): T {
    this.#release();
    try {
      return work();
    } finally {
      this.#refill();
    }
  }

  /** Gives the descriptors back for good. */
  close(): void {
    this.#release();
  }

  #release(): void {
    for (const fd of this.#held) closeSync(fd);
    this.#held = [];
  }

  #refill(): void {
    while (this.#held.length < this.#size) {
      try {
        this.#held.push(openSync("/dev/null", "r"));
      } catch {
        // Out of descriptors (or no /dev/null): hold what we have and try again after the next
        // write; the write itself still runs and reports its own error.
        return;
      }
    }
  }
}
