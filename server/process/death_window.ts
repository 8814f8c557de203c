/**
 * Deaths (of threads or child processes) counted over a sliding window, to tell a crash loop from
 * unrelated deaths far apart.
 *
 * @module
 */

import { monotonicNow } from "../common/clock.ts";

/** The times of recent deaths, forgetting those older than the window. */
export class DeathWindow {
  readonly #windowMs: number;
  readonly #deaths: number[] = [];

  /** @param windowMs How far back a death still counts, in milliseconds. */
  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /**
   * Records a death now.
   *
   * @returns The deaths within the window, this one included.
   */
  record(): number {
    const now = monotonicNow();
    this.#deaths.push(now);
    while (this.#deaths.length > 0 && this.#deaths[0]! < now - this.#windowMs) {
      this.#deaths.shift();
    }
    return this.#deaths.length;
  }
}
