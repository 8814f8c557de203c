/**
 * A process's numbers: one virtual counter shared by its threads, mapped onto blocks of real
 * numbers that the supervisor leases to the process.
 *
 * Threads take virtual positions 0, 1, 2, ... with one `Atomics.add`, exactly as with a plain
 * counter, so with one process the real numbers stay dense and in order of arrival. Position `v`
 * lies in block `floor(v / BLOCK_SIZE)`; the main thread records each granted block's first real
 * number in a ring in shared memory, and a thread turns `v` into its real number with one lookup.
 * A block is written before it is published (the granted count is stored last), so a thread
 * never reads a block that is not there; a position whose block is not granted yet waits briefly
 * and is then refused, never guessed.
 *
 * A refused position is never numbered later, so the blocks wholly below the highest refused
 * position are skipped by the next grant rather than leased for: during an outage of the number
 * source every client refused still takes a position, and leasing real numbers for all of them
 * once the source is back would abandon as many numbers as were refused (a million after a few
 * seconds under load). A skipped block's slot never carries its tag, so a thread that still holds
 * a position in it is refused.
 *
 * @module
 */

import { MAX_NUMBER } from "../common/max_number.ts";
import { monotonicNow } from "../common/clock.ts";

/** Numbers per block. A grant carries one or more whole blocks. */
export const BLOCK_SIZE = 4096;
/** Blocks the ring remembers: how far ahead of the threads the main thread may lease. */
export const RING_BLOCKS = 1024;

// Layout of the shared buffer, in bytes.
const TAKEN_OFFSET = 0; // BigInt64: virtual positions handed out
// 64-bit counts and tags: at 2^31 blocks (2^43 positions, 100 days at a million a second) an
// Int32 count would wrap and the process would stop numbering.
const GRANTED_OFFSET = 8; // BigInt64: blocks published (indices below it are readable)
const STARTS_OFFSET = 16; // BigInt64[RING_BLOCKS]: each block's first real number
const TAGS_OFFSET = STARTS_OFFSET + RING_BLOCKS * 8; // BigInt64[RING_BLOCKS]: a slot's block
// BigInt64: one above the highest position refused for want of a block (0 when none was).
const REFUSED_OFFSET = TAGS_OFFSET + RING_BLOCKS * 8;
// BigInt64: the block whose first use the main thread asked to be told of (-1 when none).
const LOW_OFFSET = REFUSED_OFFSET + 8;
/** Bytes a ledger needs in shared memory. */
const LEDGER_BYTES = LOW_OFFSET + 8;

/** {@linkcode NumberLedger.reserveGranted}: no granted position is left; try again later. */
export const NONE_GRANTED = -1;
/** {@linkcode NumberLedger.reserveGranted}: none is left and the source is known down: refuse. */
export const REFUSE_NOW = -2;

/** Thrown when a position's block has not been leased in time; the connection is refused. */
export class NumbersUnavailableError extends Error {
  override name = "NumbersUnavailableError";
}

/**
 * One view of a ledger; every thread of a process makes its own over the same buffer.
 *
 * @example
 * ```ts
 * const ledger = NumberLedger.create();
 * ledger.grant(1, 2); // blocks 0 and 1: real numbers 1..8192
 * const v = ledger.reserve(1);
 * ledger.numberAt(v); // 1
 * ```
 */
export class NumberLedger {
  readonly buffer: SharedArrayBuffer;
  readonly #taken: BigInt64Array;
  readonly #granted: BigInt64Array;
  readonly #starts: BigInt64Array;
  readonly #tags: BigInt64Array;
  readonly #refusedBelow: BigInt64Array;
  readonly #low: BigInt64Array;
  // Blocks skipped by this view's grants (the main thread's): see `skippedBlocks`.
  #skipped = 0;
  // The last block this view looked up: most lookups hit it.
  #cachedBlock = -1;
  #cachedStart = 0;
  // The granted count when this view's last wait timed out: until it changes, a position past it
  // is refused at once, so a source that is down costs each connection no wait.
  #starvedAtGranted = -1;
  // The granted count when this view last told `onStarved` from `reserveGranted`: once per grant.
  #toldAtGranted = -1;
  /** Positions the last {@linkcode reserveGranted} reserved. */
  reservedCount = 0;
  /** Called (at most once per wait) when a thread had to wait for a block; see `onStarved`. */
  onStarved: (() => void) | null = null;
  /**
   * Called when this view is the first to number a position at or past the block the main
   * thread asked for with {@linkcode tellAt}: once per request, whichever thread gets there.
   */
  onLow: (() => void) | null = null;

  /** @param buffer A buffer of {@linkcode LEDGER_BYTES} bytes from {@linkcode create}. */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#taken = new BigInt64Array(buffer, TAKEN_OFFSET, 1);
    this.#granted = new BigInt64Array(buffer, GRANTED_OFFSET, 1);
    this.#starts = new BigInt64Array(buffer, STARTS_OFFSET, RING_BLOCKS);
    this.#tags = new BigInt64Array(buffer, TAGS_OFFSET, RING_BLOCKS);
    this.#refusedBelow = new BigInt64Array(buffer, REFUSED_OFFSET, 1);
    this.#low = new BigInt64Array(buffer, LOW_OFFSET, 1);
  }

  /** Makes a ledger in fresh shared memory, with no block granted. */
  static create(): NumberLedger {
    const ledger = new NumberLedger(new SharedArrayBuffer(LEDGER_BYTES));
    ledger.#tags.fill(-1n);
    ledger.#low[0] = -1n;
    return ledger;
  }

  /**
   * Reserves `count` consecutive virtual positions with one atomic operation.
   *
   * @param count How many (1 or more).
   * @returns The first position; turn each into a number with {@linkcode numberAt}.
   */
  reserve(count: number): number {
    return Number(Atomics.add(this.#taken, 0, count === 1 ? 1n : BigInt(count)));
  }

  /**
   * Reserves up to `count` consecutive positions whose blocks are granted already, for a thread
   * that may not wait (one on the main thread, whose event loop delivers the grants): it never
   * holds a position it cannot number, so nothing is refused or skipped on its account, and it
   * tries again once a block is granted (see {@linkcode available}).
   *
   * @param count How many (1 or more).
   * @returns The first position, with how many in {@linkcode reservedCount} (1 to `count`);
   *   {@linkcode NONE_GRANTED} when no granted position is left (`onStarved` is told, once per
   *   grant), or {@linkcode REFUSE_NOW} when none is and the last wait for one timed out with no
   *   grant since (see {@linkcode starve}): a source that is down costs each client no wait.
   */
  reserveGranted(count: number): number {
    for (;;) {
      const taken = Atomics.load(this.#taken, 0);
      const granted = this.grantedBlocks;
      const left = granted * BLOCK_SIZE - Number(taken);
      if (left <= 0) {
        if (granted === this.#starvedAtGranted) return REFUSE_NOW;
        if (granted !== this.#toldAtGranted) {
          this.#toldAtGranted = granted;
          this.onStarved?.();
        }
        return NONE_GRANTED;
      }
      const n = count < left ? count : left;
      // A compare-and-swap, not an add: threads in workers beside this one take positions too.
      if (Atomics.compareExchange(this.#taken, 0, taken, taken + BigInt(n)) === taken) {
        this.reservedCount = n;
        return Number(taken);
      }
    }
  }

  /**
   * Whether a position is granted and not yet taken: what a thread that may not wait polls for.
   */
  get available(): boolean {
    return this.grantedBlocks * BLOCK_SIZE > this.taken;
  }

  /**
   * Records that a wait for a block timed out: until the next grant, {@linkcode reserveGranted}
   * refuses at once (as `numberAt` does after its own wait timed out).
   */
  starve(): void {
    this.#starvedAtGranted = this.grantedBlocks;
  }

  /**
   * The real number at a reserved position.
   *
   * @param position A position from {@linkcode reserve}.
   * @param waitMs How long to wait for its block to be granted; only worker threads may wait.
   * @returns The number.
   * @throws {NumbersUnavailableError} When its block is not granted within `waitMs`.
   */
  numberAt(position: number, waitMs = 0): number {
    const block = Math.floor(position / BLOCK_SIZE);
    if (block === this.#cachedBlock) return this.#cachedStart + (position - block * BLOCK_SIZE);
    if (block >= this.grantedBlocks) this.#waitFor(block, position, waitMs);
    const slot = block % RING_BLOCKS;
    // The slot is reused RING_BLOCKS blocks later; a thread stalled that long could read another
    // block's start. Refusing is safe; using it would repeat a number. The start is read before
    // the tag and `grant` writes the tag before the start (both atomically): a thread that reads
    // a start written for a later block is bound to see that block's tag and refuse.
    const start = Number(Atomics.load(this.#starts, slot));
    if (Number(Atomics.load(this.#tags, slot)) !== block) {
      throw new NumbersUnavailableError(`Block ${block} is no longer in the ledger`);
    }
    this.#cachedBlock = block;
    this.#cachedStart = start;
    this.#tellIfLow(block);
    return start + (position - block * BLOCK_SIZE);
  }

  /**
   * Asks to be told ({@linkcode onLow}, on the thread that gets there) when a position in
   * `block` or past it is numbered: the lease keeper's low-water mark, so that it leases as soon
   * as the numbers run low instead of polling the ledger while nothing is taken (main thread).
   * Replaces the last request.
   *
   * @param block The block; -1 asks for nothing.
   */
  tellAt(block: number): void {
    Atomics.store(this.#low, 0, BigInt(block));
  }

  /**
   * Takes back the request for `block` made with {@linkcode tellAt}, unless a thread has told it
   * already or another request replaced it.
   *
   * @param block The block asked for.
   * @returns Whether it was still asked for (and is no longer).
   */
  untell(block: number): boolean {
    const asked = BigInt(block);
    return Atomics.compareExchange(this.#low, 0, asked, -1n) === asked;
  }

  /** Tells `onLow` once when `block` reaches the mark: a thread's first number in a block. */
  #tellIfLow(block: number): void {
    const low = Atomics.load(this.#low, 0);
    if (low < 0n || block < Number(low)) return;
    // One thread wins the request; the others see -1 (or the keeper's next mark).
    if (Atomics.compareExchange(this.#low, 0, low, -1n) === low) this.onLow?.();
  }

  #waitFor(block: number, position: number, waitMs: number): void {
    const deadline = monotonicNow() + waitMs;
    let told = false;
    for (;;) {
      const granted = this.grantedBlocks;
      if (block < granted) return;
      // Told once per wait, and not for a position refused at once after a wait that timed out:
      // the keeper grows its leases on this signal, and a client refused while the source is
      // down is no burst to lease for (once per refusal, it made the first lease after an
      // outage a million numbers).
      if (!told && granted !== this.#starvedAtGranted) {
        told = true;
        this.onStarved?.();
      }
      const left = granted === this.#starvedAtGranted ? 0 : deadline - monotonicNow();
      if (left <= 0) {
        this.#starvedAtGranted = granted;
        this.#noteRefused(position);
        throw new NumbersUnavailableError(
          `No leased numbers: block ${block} was not granted within ${waitMs} ms`,
        );
      }
      Atomics.wait(this.#granted, 0, BigInt(granted), left);
    }
  }

  /** Raises the refused mark to `position + 1` (a compare-and-swap loop: there is no atomic max). */
  #noteRefused(position: number): void {
    const end = BigInt(position + 1);
    let seen = Atomics.load(this.#refusedBelow, 0);
    while (seen < end) {
      const before = Atomics.compareExchange(this.#refusedBelow, 0, seen, end);
      if (before === seen) return;
      seen = before;
    }
  }

  /**
   * Publishes `blocks` blocks of real numbers starting at `start` (main thread only).
   *
   * @param start The first real number of the first block.
   * @param blocks How many blocks; they cover `start` to `start + blocks * BLOCK_SIZE - 1`.
   * @throws {RangeError} When the ring would overwrite blocks the threads have not used up, or
   *   the blocks would pass 2^53 - 1 (past it, numbers lose exactness and repeat).
   */
  grant(start: number, blocks: number): void {
    // Compared as `start > MAX - size + 1`: `start + size - 1` itself rounds above 2^53.
    if (!Number.isSafeInteger(start) || start < 1 || start > MAX_NUMBER - blocks * BLOCK_SIZE + 1) {
      throw new RangeError(
        `Cannot grant ${blocks} blocks from ${start}: the numbers must lie from 1 to ${MAX_NUMBER}`,
      );
    }
    // Blocks whose every position was refused would only be abandoned: skip them (see above).
    // A position refused after this read lands in a block granted below: a gap, never a repeat.
    const skip = Math.max(0, this.#skipTo - this.grantedBlocks);
    const granted = this.grantedBlocks + skip;
    const inUse = Math.floor(this.taken / BLOCK_SIZE);
    if (granted + blocks - inUse > RING_BLOCKS) {
      throw new RangeError(
        `Cannot grant ${blocks} blocks: at most ${RING_BLOCKS} may be ahead of the threads`,
      );
    }
    // Only the last RING_BLOCKS blocks of a grant keep a slot; earlier ones (all reserved
    // already, as checked above) would be overwritten within this loop and are refused anyway.
    for (let i = Math.max(0, blocks - RING_BLOCKS); i < blocks; i++) {
      const slot = (granted + i) % RING_BLOCKS;
      // Tag first, then start: see `numberAt`. Storing the start first let a stalled thread pair
      // the old tag with the new start and hand out a number of the new block.
      Atomics.store(this.#tags, slot, BigInt(granted + i));
      Atomics.store(this.#starts, slot, BigInt(start + i * BLOCK_SIZE));
    }
    // Stored last: a thread that sees the new count also sees the starts written above. The
    // skipped blocks' slots were not written: none of them carries its tag, so they are refused.
    Atomics.store(this.#granted, 0, BigInt(granted + blocks));
    Atomics.notify(this.#granted, 0);
    this.#skipped += skip;
  }

  /** The first block a grant may use: the one holding the highest refused position. */
  get #skipTo(): number {
    return Math.floor(Number(Atomics.load(this.#refusedBelow, 0)) / BLOCK_SIZE);
  }

  /** Virtual positions handed out so far. */
  get taken(): number {
    return Number(Atomics.load(this.#taken, 0));
  }

  /**
   * Positions granted and not yet handed out (negative when threads are waiting). Positions in
   * blocks the next grant skips (refused, see above) are not counted as owed.
   */
  get remaining(): number {
    return Math.max(this.grantedBlocks, this.#skipTo) * BLOCK_SIZE - this.taken;
  }

  /**
   * Positions that were granted a real number (handed out or not), excluding the blocks skipped
   * as refused: what grows with the numbers actually served, not with the clients refused.
   */
  get covered(): number {
    return Math.min(this.taken, this.grantedBlocks * BLOCK_SIZE) - this.#skipped * BLOCK_SIZE;
  }

  /** Blocks this view's grants skipped because every position in them had been refused. */
  get skippedBlocks(): number {
    return this.#skipped;
  }

  /** Blocks granted so far. */
  get grantedBlocks(): number {
    return Number(Atomics.load(this.#granted, 0));
  }
}
