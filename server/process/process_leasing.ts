/**
 * One serving process's side of the number source: what it leased through the supervisor, what
 * failed and how long the last lease took. Kept by process index, so the figures (counters to
 * Prometheus) carry on across a restart of the process at that index, as `restarts` does.
 *
 * @module
 */

import { BLOCK_SIZE } from "../numbering/number_ledger.ts";

/** A serving process's leasing figures, as `/v1/stats`, `/v1/info` and `/metrics` show them. */
export interface ProcessLeasing {
  /** Leases granted to the process. */
  leases: number;
  /** Blocks of numbers (4,096 each) granted to it. */
  blocksLeased: number;
  /** Leases it asked for that failed (the source down, or refused as gone backwards). */
  leaseErrors: number;
  /**
   * How long its last lease took in the supervisor, granted or failed, in ms (the source's
   * lease: with a state file, its write and fsync), or `null` before the first.
   */
  lastLeaseMs: number | null;
}

/** Keeps a {@linkcode ProcessLeasing} up to date. */
export class LeasingTally {
  #leases = 0;
  #blocks = 0;
  #errors = 0;
  #lastLeaseMs: number | null = null;

  /**
   * Records a granted lease.
   *
   * @param count The numbers granted (whole blocks from a serving process).
   * @param elapsedMs How long the lease took.
   */
  granted(count: number, elapsedMs: number): void {
    this.#leases++;
    this.#blocks += Math.ceil(count / BLOCK_SIZE);
    this.#lastLeaseMs = elapsedMs;
  }

  /**
   * Records a failed lease.
   *
   * @param elapsedMs How long it took to fail.
   */
  failed(elapsedMs: number): void {
    this.#errors++;
    this.#lastLeaseMs = elapsedMs;
  }

  /** The figures now. */
  figures(): ProcessLeasing {
    return {
      leases: this.#leases,
      blocksLeased: this.#blocks,
      leaseErrors: this.#errors,
      lastLeaseMs: this.#lastLeaseMs,
    };
  }
}
