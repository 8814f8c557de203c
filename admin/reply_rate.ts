/**
 * Replies per second, from the reply counters of successive stats reads.
 *
 * @module
 */

import type { ProcessStats } from "./backend.ts";

interface Sample {
  at: number;
  replies: number;
}

/**
 * Turns reply counters into rates. Each thread's rate is measured against an earlier read kept as
 * a reference until it is `minIntervalMs` old, so clients that poll often still see a rate over
 * at least that interval once it has passed. The first read of a thread reports 0.
 */
export class ReplyRate {
  readonly #minIntervalMs: number;
  #samples = new Map<string, Sample>();

  /**
   * @param minIntervalMs How old a reference read gets before a newer one replaces it.
   */
  constructor(minIntervalMs = 1000) {
    this.#minIntervalMs = minIntervalMs;
  }

  /**
   * Measures every thread's rate and keeps what the next call measures against.
   *
   * @param processes A stats read.
   * @param now When it was taken, in milliseconds.
   * @returns Replies per second, indexed like `processes[p].threads[t]`.
   */
  measure(processes: ProcessStats[], now: number): number[][] {
    const next = new Map<string, Sample>();
    const rates = processes.map((process) =>
      process.threads.map((thread, index) => {
        // Keyed by pid: a restarted process starts its counters again from 0.
        const key = `${process.pid}/${index}`;
        const reference = this.#samples.get(key);
        const seconds = reference ? (now - reference.at) / 1000 : 0;
        const rate = reference && seconds > 0
          ? Math.max(0, (thread.replies - reference.replies) / seconds)
          : 0;
        next.set(
          key,
          reference && now - reference.at < this.#minIntervalMs
            ? reference
            : { at: now, replies: thread.replies },
        );
        return rate;
      })
    );
    this.#samples = next;
    return rates;
  }
}
