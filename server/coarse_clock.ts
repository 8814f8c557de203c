/**
 * The clock hot paths read.
 *
 * @module
 */

/** A clock read by hot paths: one `Date.now()` per sweep instead of one per read. */
export interface CoarseClock {
  now: number;
}
