/**
 * The clock hot paths read.
 *
 * @module
 */

/** A clock read by hot paths: one `monotonicNow()` per tick instead of one per read. */
export interface CoarseClock {
  now: number;
}
