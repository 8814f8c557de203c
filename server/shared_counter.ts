/**
 * One counter shared by every thread of a process.
 *
 * The count lives in a 64-bit slot of a `SharedArrayBuffer`, so numbers do not wrap at 2^31 or
 * 2^32, and every thread advances it with one `Atomics.add`: two threads can never be handed the
 * same number, however their reads interleave.
 *
 * @module
 */

import { MAX_NUMBER } from "./config.ts";

/** Bytes a counter needs in shared memory. */
export const COUNTER_BYTES = 8;

/** Thrown when the number space is used up; the caller closes the connection. */
export class NumbersExhaustedError extends RangeError {
  override name = "NumbersExhaustedError";
}

// BigInt constants made once: `Atomics.add` on a BigInt64Array takes a bigint, and `1n` is the
// common case on the hot path.
const ONE = 1n;

/**
 * A view of a shared counter. Make one with {@linkcode SharedCounter.create}, send its `buffer`
 * to workers, and wrap it there with `new SharedCounter(buffer, firstNumber)`.
 *
 * @example
 * ```ts
 * const counter = SharedCounter.create(1);
 * counter.take(1); // 1
 * counter.take(3); // 2 (and 3, 4 are reserved with it)
 * ```
 */
export class SharedCounter {
  readonly buffer: SharedArrayBuffer;
  readonly #slot: BigInt64Array;
  readonly #first: number;

  /**
   * @param buffer A shared buffer of at least {@linkcode COUNTER_BYTES} bytes.
   * @param firstNumber The number handed out when the count is zero.
   * @param byteOffset Where the 8-byte slot lies in `buffer` (a multiple of 8).
   */
  constructor(buffer: SharedArrayBuffer, firstNumber: number, byteOffset = 0) {
    this.buffer = buffer;
    this.#slot = new BigInt64Array(buffer, byteOffset, 1);
    this.#first = firstNumber;
  }

  /**
   * Makes a counter in fresh shared memory.
   *
   * @param firstNumber The first number it hands out.
   * @returns The counter.
   */
  static create(firstNumber: number): SharedCounter {
    return new SharedCounter(new SharedArrayBuffer(COUNTER_BYTES), firstNumber);
  }

  /**
   * Reserves `count` consecutive numbers with one atomic operation.
   *
   * @param count How many numbers to reserve (1 or more).
   * @returns The first reserved number; the rest follow it.
   * @throws {NumbersExhaustedError} When the reservation would pass 2^53 - 1.
   */
  take(count: number): number {
    const before = Atomics.add(this.#slot, 0, count === 1 ? ONE : BigInt(count));
    const first = this.#first + Number(before);
    // Compared as `first > MAX - count + 1`: `first + count - 1` itself rounds above 2^53.
    if (first > MAX_NUMBER - count + 1) {
      throw new NumbersExhaustedError(
        `Cannot hand out more numbers: the next would pass ${MAX_NUMBER}`,
      );
    }
    return first;
  }

  /** How many numbers have been taken so far. */
  get taken(): number {
    return Number(Atomics.load(this.#slot, 0));
  }

  /** The last number handed out, or `firstNumber - 1` when none was. */
  get last(): number {
    return this.#first + this.taken - 1;
  }
}
