/**
 * The one clock every duration in the server is measured on: timeouts, the rate limiter's refill,
 * lease retry backoff, the ledger's wait, the crash-loop window, drain deadlines; and the coarse
 * clock the hot paths read ({@linkcode CoarseClock}, kept by a {@linkcode TickingClock}).
 *
 * It is `performance.now()`, which is monotonic on Bun and Deno: stepping the wall clock (NTP, an
 * operator, a resumed VM) moves `Date.now()` and never this. `Date.now()` is for times shown to
 * people only (log lines, `lastErrorAt`); tests/clock_guard_test.ts keeps it out of the rest.
 *
 * Its origin is the thread's start, so two threads' readings differ by the time between their
 * starts (Bun 1.4.5 and Deno 2.9.6 measured; `process.hrtime()` is per thread too), and a thread
 * restarted an hour later would be an hour behind. Times cross threads in the address table
 * (refill and last-seen times), so each worker aligns its clock with its process's main thread
 * ({@linkcode alignClock}) before it serves. Times never cross processes.
 * `performance.timeOrigin + performance.now()` would share an origin but is not safe: the origin
 * is a wall-clock reading, so a step between two threads' starts would sit between their clocks.
 *
 * @module
 */

// Added to this thread's performance.now(): 0 on a main thread, set once by alignClock in a worker.
let offsetMs = 0;

/**
 * Milliseconds on the process's monotonic clock: only differences mean anything.
 *
 * @returns The time in ms, with sub-millisecond resolution.
 */
export function monotonicNow(): number {
  return performance.now() + offsetMs;
}

/**
 * Aligns this thread's {@linkcode monotonicNow} with another thread's (a worker with its main
 * thread), to within half the fastest of a few round trips.
 *
 * @param ask Asks the other thread for its `monotonicNow()` and resolves with the answer.
 * @param rounds Round trips to make; the fastest decides.
 * @returns The round trip it was aligned by, in ms: the error is at most half of it.
 */
export async function alignClock(ask: () => Promise<number>, rounds = 5): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < rounds; round++) {
    const sent = performance.now();
    const theirs = await ask();
    const received = performance.now();
    if (received - sent < best) {
      best = received - sent;
      offsetMs = theirs - (sent + received) / 2;
    }
  }
  return best;
}

/** A clock read by hot paths: one `monotonicNow()` per tick instead of one per read. */
export interface CoarseClock {
  now: number;
}

/** How often a {@linkcode TickingClock} ticks unless told: five times per 250 ms sweep. */
export const TICK_EVERY_MS = 50;

/**
 * A {@linkcode CoarseClock} brought up to date by a timer: by default five times per sweep of
 * the connections (limits/timeouts.ts sweeps every 250 ms).
 */
export class TickingClock implements CoarseClock {
  now: number = monotonicNow();
  readonly #timer: ReturnType<typeof setInterval>;

  /**
   * @param everyMs How often it is brought up to date.
   * @param onTick Called with the time at every tick: the event-loop delay meter rides on this
   *   timer rather than waking the thread with one of its own (see loop_delay.ts).
   */
  constructor(everyMs: number = TICK_EVERY_MS, onTick?: (now: number) => void) {
    this.#timer = setInterval(() => {
      this.now = monotonicNow();
      onTick?.(this.now);
    }, everyMs);
  }

  /** Stops the timer (a worker's clock runs as long as the worker). */
  stop(): void {
    clearInterval(this.#timer);
  }
}
