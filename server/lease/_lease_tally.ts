/**
 * The figures every lease source reports in its status, kept the same way by each.
 *
 * @module
 */

import type { LeaseSourceStatus } from "./lease_source.ts";

/** Keeps the figures of a {@linkcode LeaseSourceStatus} for a source. */
export class LeaseTally {
  lastError: string | null = null;
  lastErrorAt: number | null = null;
  leaseErrors = 0;
  leases = 0;
  lastLease: { first: number; last: number } | null = null;
  /** For a durable source: the mark last made durable, and when (wall time, for display). */
  durableMark: number | undefined;
  durableAt: number | null = null;

  /** Records a granted run. */
  granted(first: number, count: number): void {
    this.leases++;
    this.lastLease = { first, last: first + count - 1 };
  }

  /**
   * Records a mark made durable (a state file written and fsynced), or found durable at start.
   *
   * @param mark The first number never leased, as the file now holds it.
   * @param written Whether this server wrote it now (else it was read at start: no time).
   */
  durable(mark: number, written: boolean): void {
    this.durableMark = mark;
    // Wall time on purpose, as lastErrorAt: shown to people and to Prometheus, not a duration.
    if (written) this.durableAt = Date.now();
  }

  /** Records a failed lease. */
  failed(error: Error): void {
    this.leaseErrors++;
    this.noteError(error.message);
  }

  /** Records a problem that is not a lease (a lost connection). */
  noteError(message: string): void {
    this.lastError = message;
    // Wall time on purpose: a time of day shown to people (/v1/info), never used as a duration.
    this.lastErrorAt = Date.now();
  }

  /** The figures, with what only the source knows. */
  status(description: string, connected: boolean, next: number): LeaseSourceStatus {
    return {
      description,
      connected,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      leaseErrors: this.leaseErrors,
      leases: this.leases,
      lastLease: this.lastLease,
      next,
      ...(this.durableMark === undefined
        ? {}
        : { durableMark: this.durableMark, durableAt: this.durableAt }),
    };
  }
}
