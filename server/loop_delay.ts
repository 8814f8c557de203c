/**
 * Measures how late a thread's event loop runs a timer: the proof that a thread never blocks.
 *
 A timer that fires every {@linkcode LOOP_DELAY_EVERY_MS}: how much later than its period it
 * fires is the time the loop was busy with something else (a long callback, a synchronous call, a
 * garbage collection). In a worker it is the thread's coarse clock's timer (limits/timeouts.ts
 * TickingClock, every 50 ms), so measuring adds no wake-up at all; nothing is done per message, so
 * the hot path pays nothing. A tick costs a few stores into the thread's stats row (about 60 ns,
 * bench/loop_delay_bench.ts) and, once a second, a sort of about 20 numbers.
 *
 * A stall shorter than the period can fall between two ticks and go unseen, and one of X ms is
 * seen as between X - period and X: the figures are a lower bound on the longest stall, exact to
 * within one period.
 *
 * The thread is the only writer of its row (see thread_stats.ts): plain stores, no atomics.
 *
 * @module
 */

import { SWEEP_EVERY_MS } from "./limits/timeouts.ts";
import { monotonicNow } from "./common/clock.ts";
import { LOOP_DELAY_BUCKETS, Stat } from "./threads/thread_stats.ts";

/** How often a sample is taken, in ms: the period of the worker's TickingClock. */
export const LOOP_DELAY_EVERY_MS = SWEEP_EVERY_MS / 5;

/** How long an interval the percentiles cover, in ms. */
export const LOOP_DELAY_INTERVAL_MS = 1000;

// Room for an interval's samples with margin: 1000 / 50 = 20 when the loop is idle.
const WINDOW_CAPACITY = 64;

// The row offsets, looked up once.
const BUCKET_INDEXES = LOOP_DELAY_BUCKETS.map((bucket) => Stat[bucket.name]);

/** Records event-loop delay samples into one thread's stats row. */
export class LoopDelayMeter {
  readonly #row: Float64Array;
  readonly #window = new Float64Array(WINDOW_CAPACITY);
  #count = 0;
  #windowStart: number;
  // The previous interval's maximum, shown until the current one has been running a whole
  // interval, so a reader polling once an interval never misses a stall at a boundary.
  #previousMax = 0;
  #currentMax = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #due = 0;
  #lastTick: number;

  /**
   * @param row The thread's stats row (`statsRow`).
   * @param now The time the meter starts, on the monotonic clock.
   */
  constructor(row: Float64Array, now: number = monotonicNow()) {
    this.#row = row;
    this.#windowStart = now;
    this.#lastTick = now;
  }

  /**
   * Records a tick of a timer that fires every {@linkcode LOOP_DELAY_EVERY_MS}: its delay is the
   * time since the last tick less the period.
   *
   * @param now The time of the tick, on the monotonic clock.
   */
  tick(now: number): void {
    this.record(now - this.#lastTick - LOOP_DELAY_EVERY_MS, now);
    this.#lastTick = now;
  }

  /**
   * Records one sample: the timer fired `delayMs` late at `now`.
   *
   * @param delayMs How late, in ms (negative values count as 0).
   * @param now The time of the sample, on the monotonic clock.
   */
  record(delayMs: number, now: number): void {
    const delay = delayMs > 0 ? delayMs : 0;
    const row = this.#row;
    for (let i = BUCKET_INDEXES.length - 1; i >= 0; i--) {
      if (delay > LOOP_DELAY_BUCKETS[i]!.boundMs) break;
      row[BUCKET_INDEXES[i]!]!++;
    }
    row[Stat.loopDelaySamples]!++;
    row[Stat.loopDelaySumMs]! += delay;
    if (this.#count < WINDOW_CAPACITY) this.#window[this.#count++] = delay;
    if (delay > this.#currentMax) this.#currentMax = delay;
    row[Stat.loopDelayMaxMs] = Math.max(this.#previousMax, this.#currentMax);
    if (now - this.#windowStart >= LOOP_DELAY_INTERVAL_MS) this.#closeInterval(now);
  }

  #closeInterval(now: number): void {
    const samples = this.#window.subarray(0, this.#count).sort();
    this.#row[Stat.loopDelayP50Ms] = percentile(samples, 0.5);
    this.#row[Stat.loopDelayP99Ms] = percentile(samples, 0.99);
    this.#previousMax = this.#currentMax;
    this.#currentMax = 0;
    this.#count = 0;
    this.#windowStart = now;
  }

  /**
   * Starts a timer of its own (for a thread without a TickingClock); each firing records how late
   * it was and arms the next.
   */
  start(): void {
    this.#due = monotonicNow() + LOOP_DELAY_EVERY_MS;
    this.#timer = setTimeout(this.#tick, LOOP_DELAY_EVERY_MS);
  }

  // One function made once, not a closure per tick.
  #tick = (): void => {
    const now = monotonicNow();
    this.record(now - this.#due, now);
    this.#due = now + LOOP_DELAY_EVERY_MS;
    this.#timer = setTimeout(this.#tick, LOOP_DELAY_EVERY_MS);
  };

  /** Stops the timer. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * The nearest-rank percentile of sorted samples.
 *
 * @param sorted Samples, smallest first.
 * @param fraction 0.5 for the median, 0.99 for p99.
 * @returns The sample at that rank, or 0 for none.
 */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}
