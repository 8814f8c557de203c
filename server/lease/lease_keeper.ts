/**
 * Keeps a process's ledger supplied: leases blocks well before the threads run out, sized to
 * how fast they use numbers, so no thread waits on the supervisor in the common case.
 *
 * @module
 */

import { BLOCK_SIZE, type NumberLedger, RING_BLOCKS } from "./number_ledger.ts";
import { monotonicNow } from "../monotonic_clock.ts";

/** Most blocks one lease asks for unless told otherwise (a quarter of the ledger's ring). */
export const MAX_BLOCKS_PER_LEASE = 256;

/** Options for {@linkcode LeaseKeeper}. */
export interface LeaseKeeperOptions {
  /**
   * Seconds of numbers, at the measured rate, to keep leased ahead of the threads.
   * @default {1}
   */
  aheadSeconds?: number;
  /**
   * Most blocks one lease asks for.
   * @default {256}
   */
  maxBlocksPerLease?: number;
  /**
   * How often the ledger is checked, in milliseconds.
   * @default {10}
   */
  checkEveryMs?: number;
  /** Called with a lease failure; the keeper retries with backoff. */
  onError?: (error: Error) => void;
}

/** Leases blocks of numbers for one process's ledger. */
export class LeaseKeeper {
  readonly #ledger: NumberLedger;
  readonly #leaseBlocks: (blocks: number) => Promise<number>;
  readonly #aheadSeconds: number;
  readonly #maxBlocks: number;
  readonly #onError: (error: Error) => void;
  readonly #timer: ReturnType<typeof setInterval>;
  #inFlight = false;
  #rate = 0;
  #lastTaken = 0;
  #lastTime = monotonicNow();
  #retryAt = 0;
  #backoffMs = 0;
  // Blocks to keep ahead at least, doubled each time a thread starves and halved each quiet
  // second: a burst outruns a rate measured over 100 ms, and the lease in flight takes a round
  // trip to the supervisor (and to Redis), so the keeper must overshoot rather than trickle.
  #floorBlocks = 2;
  #lastStarvedAt = 0;

  /**
   * @param ledger The process's ledger.
   * @param leaseBlocks Leases `blocks * BLOCK_SIZE` numbers and resolves with the first.
   * @param options Tuning.
   */
  constructor(
    ledger: NumberLedger,
    leaseBlocks: (blocks: number) => Promise<number>,
    options: LeaseKeeperOptions = {},
  ) {
    this.#ledger = ledger;
    this.#leaseBlocks = leaseBlocks;
    this.#aheadSeconds = options.aheadSeconds ?? 1;
    this.#maxBlocks = Math.min(options.maxBlocksPerLease ?? MAX_BLOCKS_PER_LEASE, RING_BLOCKS / 2);
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(() => this.check(), options.checkEveryMs ?? 10);
  }

  /** Leases the first block; resolves once the threads can number. */
  async prime(): Promise<void> {
    const first = await this.#leaseBlocks(1);
    this.#ledger.grant(first, 1);
  }

  /** A thread had to wait for a block: lease more, and more each time it happens again. */
  starved(): void {
    this.#floorBlocks = Math.min(this.#maxBlocks, this.#floorBlocks * 2);
    this.#lastStarvedAt = monotonicNow();
    this.check();
  }

  /** Looks at the ledger and leases more if it is running low (called on a timer, or at once). */
  check(): void {
    const now = monotonicNow();
    if (this.#floorBlocks > 2 && now - this.#lastStarvedAt > 1000) {
      this.#floorBlocks = Math.max(2, this.#floorBlocks / 2);
      this.#lastStarvedAt = now;
    }
    const taken = this.#ledger.taken;
    const elapsed = now - this.#lastTime;
    if (elapsed >= 100) {
      const current = ((taken - this.#lastTaken) * 1000) / elapsed;
      // Rise at once, fall slowly: a burst should find numbers waiting.
      this.#rate = current > this.#rate ? current : this.#rate * 0.8 + current * 0.2;
      this.#lastTaken = taken;
      this.#lastTime = now;
    }
    if (this.#inFlight || now < this.#retryAt) return;
    // Never more than half the ring ahead: the ledger refuses to overwrite blocks in use.
    const target = Math.min(
      Math.max(this.#floorBlocks * BLOCK_SIZE, this.#rate * this.#aheadSeconds),
      (RING_BLOCKS / 2) * BLOCK_SIZE,
    );
    const remaining = this.#ledger.remaining;
    if (remaining >= target / 2) return;
    const blocks = Math.max(
      1,
      Math.min(this.#maxBlocks, Math.ceil((target - remaining) / BLOCK_SIZE)),
    );
    this.#inFlight = true;
    this.#leaseBlocks(blocks).then(
      (first) => {
        this.#ledger.grant(first, blocks);
        this.#backoffMs = 0;
      },
      (error: Error) => {
        this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, 50), 5000);
        this.#retryAt = monotonicNow() + this.#backoffMs;
        this.#onError(error);
      },
    ).finally(() => {
      this.#inFlight = false;
    });
  }

  /** Stops checking. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
