/**
 * Where a supervisor's numbers come from. Every implementation hands out each number at most
 * once, ever: a lease returns the start of a run of numbers no earlier lease returned, and a run
 * leased and never used is abandoned, not handed out again.
 *
 * @module
 */

import { MAX_NUMBER } from "../common/max_number.ts";
import { LeaseTally } from "./_lease_tally.ts";

/** Options for {@linkcode LeaseSource.lease}. */
export interface LeaseOptions {
  /**
   * The highest number this server has already leased: a source that can check it atomically
   * with the lease (Redis) refuses a run that would not start above it with a
   * {@linkcode LeaseBehindError}, before taking the run. Others may ignore it: the
   * {@linkcode LeaseGuard} every server leases through checks each grant anyway.
   * @default {no check}
   */
  above?: number;
}

/** Where a source stands, read without leasing: see {@linkcode LeaseSource.peek}. */
export interface SourcePeek {
  /** The last number leased from the source, by any server (what the next lease starts above). */
  mark: number;
  /** What the source holds, for a message: `the key holds 5`, `the key is missing`. */
  what: string;
}

/** A source of number leases. */
export interface LeaseSource {
  /** Says what the source is, for logs and the admin API (never a secret). */
  readonly description: string;
  /**
   * Leases `count` consecutive numbers.
   *
   * @param count How many.
   * @param options What the run must start above.
   * @returns The first; the run is `first` to `first + count - 1`.
   * @throws {RangeError} When the run would pass 2^53 - 1.
   * @throws {LeaseBehindError} When the source can tell the run would not start above
   * `options.above`.
   */
  lease(count: number, options?: LeaseOptions): Promise<number>;
  /**
   * Reads where the source stands now, leasing nothing (a Redis `GET`, an etcd range): present
   * on sources many servers share, so the {@linkcode LeaseGuard} can see the source set back
   * while this server still holds numbers and asks for none.
   *
   * @returns The source's mark and what it holds.
   * @throws {Error} When the source cannot be read now (the caller ignores it: leases report
   * outages).
   */
  peek?(): Promise<SourcePeek>;
  /** The first number not yet leased (the high-water mark). */
  readonly next: number;
  /** Releases what the source holds (a lock, a connection). */
  close(): Promise<void>;
  /** How the source is doing, for logs, `/readyz` and metrics. */
  status(): LeaseSourceStatus;
}

/**
 * A lease source's health and figures. Numbers a serving process holds but has not used yet are
 * not here: they live in each process's ledger (`ProcessFigures.numbersRemaining`).
 */
export interface LeaseSourceStatus {
  /**
   * The kind of source: `memory`, `state-file`, `redis`. Set by the {@linkcode LeaseGuard} every
   * running server leases through; absent from a bare source.
   */
  kind?: string;
  /** What the source is (never a secret); the same as {@linkcode LeaseSource.description}. */
  description: string;
  /**
   * Whether the source can lease now: `false` while a remote source (Redis) is unreachable.
   * Processes then serve from the blocks they hold and refuse new clients once those run out.
   */
  connected: boolean;
  /** The message of the last failed lease or lost connection, or `null` if none yet. */
  lastError: string | null;
  /** When `lastError` happened, in milliseconds since the epoch, or `null`. */
  lastErrorAt: number | null;
  /** Leases that failed since the start. */
  leaseErrors: number;
  /** Leases granted since the start. */
  leases: number;
  /** The last run leased (both ends included), or `null` before the first. */
  lastLease: { first: number; last: number } | null;
  /** The high-water mark as this source last saw it; see {@linkcode LeaseSource.next}. */
  next: number;
  /**
   * The member of a clustered source (etcd) that requests go to now, as `HOST:PORT`; absent for
   * a source of one place.
   */
  member?: string;
  /**
   * This server's mark: the highest number it knows was leased from the source, by itself or by
   * another server as it read the source (`next - 1` at the start). A lease at or below it is
   * refused. After a source goes backwards, the source must be set at least to the highest mark
   * of every server that shares it. Set by the {@linkcode LeaseGuard}; absent from a bare source.
   */
  mark?: number;
  /**
   * Leases refused since the start because the source went backwards (they would have started
   * at or below what this server had already leased). Counted by the {@linkcode LeaseGuard}
   * every running server leases through; absent from a bare source.
   */
  leasesRefused?: number;
  /**
   * How long the last lease took, granted or failed, in ms (for the state file: the write and
   * fsync of the new mark), or `null` before the first. Set by the {@linkcode LeaseGuard}.
   */
  lastLeaseMs?: number | null;
  /**
   * For a state file: the mark it holds, written and fsynced (the first number never leased;
   * after a crash numbering resumes there). Absent for a source that keeps no file.
   */
  durableMark?: number;
  /**
   * When {@linkcode durableMark} was last written, in milliseconds since the epoch; `null` until
   * this server writes it (the mark was read at start).
   */
  durableAt?: number | null;
}

/**
 * Checks that `count` numbers from `next` stay exact.
 *
 * @param next The first number of the run.
 * @param count Its length.
 * @throws {RangeError} When the run would pass 2^53 - 1.
 */
export function assertLeaseFits(next: number, count: number): void {
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(`A lease must be a positive integer count: got ${count}`);
  }
  // Compared this way round: `next + count - 1` rounds once it passes 2^53.
  if (next > MAX_NUMBER - count + 1) {
    throw new RangeError(`Cannot lease ${count} more numbers: the next would pass ${MAX_NUMBER}`);
  }
}

/** Numbers kept in memory only: unique while the process lives, from `first` again after. */
export class MemoryLeaseSource implements LeaseSource {
  readonly description = "memory (numbers restart on the next start)";
  #next: number;
  readonly #tally = new LeaseTally();

  /** @param first The first number to lease. */
  constructor(first: number) {
    this.#next = first;
  }

  lease(count: number): Promise<number> {
    try {
      assertLeaseFits(this.#next, count);
    } catch (error) {
      this.#tally.failed(error as Error);
      return Promise.reject(error);
    }
    const first = this.#next;
    this.#next += count;
    this.#tally.granted(first, count);
    return Promise.resolve(first);
  }

  get next(): number {
    return this.#next;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  status(): LeaseSourceStatus {
    return this.#tally.status(this.description, true, this.#next);
  }
}
