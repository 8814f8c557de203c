/**
 * Keeps a process's ledger supplied: leases blocks well before the threads run out, sized to
 * how fast they use numbers, so no thread waits on the supervisor in the common case.
 *
 * It leases when told: a thread that numbers a position past the low-water mark the keeper set
 * in the ledger (`NumberLedger.tellAt`) tells it, at once, and so does one that had to wait
 * (`starved`). The timer is a backstop and measures the rate; it no longer has to poll fast
 * enough to catch a burst, so an idle process wakes for it 4 times a second, not 100 (an idle
 * serving process's CPU halved: docs/tuning.md, "Sweeps").
 *
 * @module
 */

import { BLOCK_SIZE, type NumberLedger, RING_BLOCKS } from "./number_ledger.ts";
import { monotonicNow } from "../common/clock.ts";

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
   * How often the ledger is checked without being told, in milliseconds.
   * @default {250}
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
  #stopped = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #rate = 0;
  #lastCovered = 0;
  #lastTime = monotonicNow();
  #retryAt = 0;
  #backoffMs = 0;
  // Blocks to keep ahead at least, doubled when a thread starves and halved each quiet second: a
  // burst outruns a rate measured over 100 ms, and the lease in flight takes a round trip to the
  // supervisor (and to Redis), so the keeper must overshoot rather than trickle. Doubled at most
  // once per granted lease, and not while leases fail: threads that starve during an outage of
  // the source say nothing about how big a lease should be, and every client refused in one
  // used to double it, so the first lease after any outage was 256 blocks (1,044,480 numbers
  // abandoned by a kill -9 at a few hundred numbers a second).
  #floorBlocks = 2;
  #lastStarvedAt = 0;
  #grownSinceGrant = false;

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
    this.#timer = setInterval(() => this.check(), options.checkEveryMs ?? 250);
  }

  /** Leases the first block; resolves once the threads can number. */
  async prime(): Promise<void> {
    const first = await this.#leaseBlocks(1);
    this.#ledger.grant(first, 1);
    this.check();
  }

  /** A thread had to wait for a block: lease more, and more each time it happens again. */
  starved(): void {
    if (!this.#grownSinceGrant && this.#backoffMs === 0) {
      this.#grownSinceGrant = true;
      this.#floorBlocks = Math.min(this.#maxBlocks, this.#floorBlocks * 2);
      this.#lastStarvedAt = monotonicNow();
    }
    this.check();
  }

  /** Looks at the ledger and leases more if it is running low (called on a timer, or at once). */
  check(): void {
    if (this.#stopped) return;
    const now = monotonicNow();
    if (this.#floorBlocks > 2 && now - this.#lastStarvedAt > 1000) {
      this.#floorBlocks = Math.max(2, this.#floorBlocks / 2);
      this.#lastStarvedAt = now;
    }
    // The rate of numbers served: positions refused for want of a block (the source down) are
    // not, and counting them leased for clients that were turned away.
    const covered = this.#ledger.covered;
    const elapsed = now - this.#lastTime;
    if (elapsed >= 100) {
      const current = (Math.max(0, covered - this.#lastCovered) * 1000) / elapsed;
      // Rise at once, fall slowly (to 0.8 each 100 ms, however far apart the checks come): a
      // burst should find numbers waiting, and a keeper at rest should not lease for an old one.
      const keep = 0.8 ** (elapsed / 100);
      this.#rate = current > this.#rate ? current : this.#rate * keep + current * (1 - keep);
      this.#lastCovered = covered;
      this.#lastTime = now;
    }
    if (this.#inFlight) return; // the grant checks again
    // Never more than half the ring ahead: the ledger refuses to overwrite blocks in use.
    const target = Math.min(
      Math.max(this.#floorBlocks * BLOCK_SIZE, this.#rate * this.#aheadSeconds),
      (RING_BLOCKS / 2) * BLOCK_SIZE,
    );
    const remaining = this.#ledger.remaining;
    if (now < this.#retryAt || remaining >= target / 2) {
      this.#askAt(remaining, target);
      return;
    }
    const blocks = Math.max(
      1,
      Math.min(this.#maxBlocks, Math.ceil((target - remaining) / BLOCK_SIZE)),
    );
    this.#inFlight = true;
    let grantedNow = false;
    this.#leaseBlocks(blocks).then(
      (first) => {
        const skipped = this.#ledger.skippedBlocks;
        const covered = this.#ledger.covered;
        this.#ledger.grant(first, blocks);
        // A grant that skipped refused blocks covers at once what was refused in the partial
        // block past them: clients turned away, not numbers served, so not a rise in the rate.
        if (this.#ledger.skippedBlocks > skipped) {
          this.#lastCovered += this.#ledger.covered - covered;
        }
        this.#backoffMs = 0;
        this.#grownSinceGrant = false;
        grantedNow = true;
      },
      (error: Error) => {
        this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, 50), 5000);
        this.#retryAt = monotonicNow() + this.#backoffMs;
        // Retried when the backoff is over, not at the backstop's next tick; not once stopped.
        clearTimeout(this.#retryTimer);
        if (!this.#stopped) this.#retryTimer = setTimeout(() => this.check(), this.#backoffMs);
        this.#onError(error);
      },
    ).finally(() => {
      this.#inFlight = false;
      // The next mark, or another lease if a burst outran this one.
      if (grantedNow && !this.#stopped) this.check();
    });
  }

  /**
   * Sets the ledger's low-water mark: the block holding the first position whose number leaves
   * fewer than `target / 2` remaining (exact while the floor sets the target: whole blocks), and
   * never a block begun already, whose first number has been told (then the next one).
   */
  #askAt(remaining: number, target: number): void {
    const taken = this.#ledger.taken;
    const low = Math.floor((taken + remaining - target / 2) / BLOCK_SIZE);
    const mark = Math.max(low, Math.ceil(taken / BLOCK_SIZE));
    this.#ledger.tellAt(mark);
    // A thread that began that block between the read above and the store missed the mark and
    // will not tell: take it back (unless a thread told meanwhile) and look again.
    if (this.#ledger.taken > mark * BLOCK_SIZE && this.#ledger.untell(mark)) {
      queueMicrotask(() => this.check());
    }
  }

  /** Stops checking. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retryTimer);
    this.#ledger.tellAt(-1);
  }
}
