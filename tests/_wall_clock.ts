/**
 * A faked wall clock for tests: `Date.now` shifted, as when NTP steps the clock or an operator
 * sets it, while the monotonic clock runs on.
 *
 * @module
 */

const realDateNow = Date.now;

/**
 * Shifts `Date.now` by `offsetMs` (negative: back in time), from the read after `afterReads`
 * reads on, until the returned function restores it.
 *
 * @param offsetMs How far the wall clock jumps.
 * @param afterReads Reads that still see the old time (a jump in the middle of a computation).
 * @returns Restores the real `Date.now`.
 */
export function jumpWallClock(offsetMs: number, afterReads = 0): () => void {
  let reads = 0;
  Date.now = () => realDateNow() + (reads++ >= afterReads ? offsetMs : 0);
  return () => {
    Date.now = realDateNow;
  };
}

/** An hour: far longer than any timeout a test waits for. */
export const HOUR_MS = 3_600_000;
